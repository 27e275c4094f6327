//! The Tracking Links control plane: brands, creators, campaigns, links, clicks and attribution over
//! HTTP, backed by PostgreSQL, keeping the edge's Workers KV in step.

pub mod attribution;
pub mod attribution_report;
pub mod brands;
pub mod campaigns;
pub mod client;
pub mod config;
pub mod conversions;
pub mod creator_accounts;
pub mod creator_reports;
pub mod creator_tokens;
pub mod creators;
pub mod db;
pub mod domain;
pub mod domains;
pub mod http;
pub mod ingest;
pub mod limits;
pub mod links;
pub mod money;
pub mod partitions;
pub mod periodic;
pub mod pixels;
pub mod reports;
pub mod retention;
pub mod revenue;
pub mod rollups;
pub(crate) mod schema;
pub mod secrets;
pub mod server;
pub mod sessions;
pub mod shopify;
pub mod statements;
pub mod sync;
pub mod telemetry;
pub mod users;
pub mod webhooks;

pub use config::Config;

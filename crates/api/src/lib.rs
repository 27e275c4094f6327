//! The Tracking Links control plane: brands, creators, campaigns, links, clicks and attribution over
//! HTTP, backed by PostgreSQL, keeping the edge's Workers KV in step.

pub mod attribution;
pub mod brands;
pub mod config;
pub mod conversions;
pub mod db;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod money;
pub mod reports;
pub mod revenue;
pub mod rollups;
pub mod secrets;
pub mod server;
pub mod shopify;
pub mod sync;
pub mod telemetry;
pub mod users;

pub use config::Config;

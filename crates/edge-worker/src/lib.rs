//! The Cloudflare Worker every click passes through.

//! The worker and the API wired to each other, for end-to-end tests of the whole loop.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::{ApiOptions, ApiProcess, Brand, StartError};
use crate::wrangler::{Wrangler, WranglerOptions};
use crate::{free_port, http, wait_until};

/// An iPhone Safari user agent.
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
pub const INGEST_TOKEN: &str = "loop-ingest-token-0123456789abcdefgh";
pub const SYNC_TOKEN: &str = "loop-kv-sync-token-0123456789abcdefg";

/// The worker and the API, wired to each other.
pub struct Stack {
    pub edge: Wrangler,
    pub api: ApiProcess,
    pub brand: Brand,
}

/// Starts the worker and the API (whose KV sync presents `sync_token_of_api`), and creates a brand.
///
/// Each needs the other's address: the worker posts clicks to the API's internal listener, the API
/// pushes links to the worker and names it in short URLs. The worker picks its own port and goes first,
/// told an internal port picked free a moment before; if another process took that port meanwhile, the
/// API cannot bind it, and both start again on a new one.
pub fn start(sync_token_of_api: &str) -> Stack {
    for attempt in 1..=5 {
        let internal_port = free_port();
        let edge = Wrangler::start(WranglerOptions {
            ingest_url: format!("http://127.0.0.1:{internal_port}"),
            ingest_token: INGEST_TOKEN.into(),
            kv_sync_token: Some(SYNC_TOKEN.into()),
            ..WranglerOptions::default()
        });
        let env = [
            ("EDGE_INGEST_TOKEN", INGEST_TOKEN),
            ("KV_SINK", "worker"),
            ("KV_SYNC_URL", &edge.base_url()),
            ("KV_SYNC_TOKEN", sync_token_of_api),
            ("TRACKING_BASE_URL", &edge.base_url()),
        ];
        let options = ApiOptions {
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            internal_port: Some(internal_port),
            ..ApiOptions::default()
        };
        match ApiProcess::try_start(options) {
            Ok(api) => {
                let brand = api.create_brand("Loop brand");
                return Stack { edge, api, brand };
            }
            Err(StartError::PortTaken(logs)) if attempt == 5 => panic!("the API lost its port five times:\n{logs}"),
            Err(StartError::PortTaken(_)) => eprintln!("port {internal_port} was taken before the API bound it; again"),
        }
    }
    unreachable!("the loop returns or panics")
}

impl Stack {
    pub fn create_link(&self, destination: &str) -> Value {
        let (status, link) =
            self.api.call("POST", "/v1/links", &self.brand.api_key, Some(&json!({"destination_url": destination})));
        assert_eq!(status, 201, "{link}");
        link
    }

    /// One visit to the edge: (status, cs_ref handed out, if redirected).
    pub fn visit(&self, code: &str, headers: &[(&str, &str)]) -> (u16, Option<String>) {
        let mut request = http().get(self.edge.url(&format!("/{code}")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.call().expect("the edge answers");
        let cs_ref = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split("cs_ref=").nth(1))
            .map(|r| r.chars().take(32).collect());
        (response.status().as_u16(), cs_ref)
    }

    pub fn wait_for_redirect(&self, code: &str) {
        wait_until("the link to reach the edge", Duration::from_secs(60), || {
            (self.visit(code, &[]).0 == 302).then_some(())
        });
    }

    pub fn stats(&self, link: &Value) -> Value {
        let path = format!("/v1/links/{}/stats", link["id"].as_str().unwrap());
        let (status, stats) = self.api.call("GET", &path, &self.brand.api_key, None);
        assert_eq!(status, 200, "{stats}");
        stats
    }

    /// The ids of the human clicks stored so far. (Probes without a user agent count as bots: wrangler
    /// dev sometimes hands an early HEAD probe to the worker as a GET.)
    pub fn stored_click_ids(&self) -> BTreeSet<String> {
        self.api
            .sql_scalar("select coalesce(string_agg(replace(id::text, '-', ''), ',' order by id), '') from clicks where not bot")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

//! The two places link records can be written: Cloudflare's KV REST API (production) and the worker's
//! own authenticated sync route (local development and end-to-end tests, where miniflare holds KV).

use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use url::Url;

use super::{KvPair, KvSink};

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?)
}

/// Cloudflare's REST API: `PUT …/storage/kv/namespaces/{ns}/bulk` with `[{key, value}]` and
/// `POST …/bulk/delete` with `[key]`, authorised by an API token with "Workers KV Storage Write".
pub struct CloudflareKv {
    client: reqwest::Client,
    namespace_url: String,
    token: String,
}

/// Cloudflare's response envelope for the bulk endpoints.
#[derive(Debug, Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
    result: Option<BulkResult>,
}

#[derive(Debug, Deserialize)]
struct BulkResult {
    #[serde(default)]
    unsuccessful_keys: Vec<String>,
}

impl CloudflareKv {
    pub fn new(api_base: &Url, account_id: &str, namespace_id: &str, token: String) -> anyhow::Result<Self> {
        let base = api_base.as_str().trim_end_matches('/');
        Ok(CloudflareKv {
            client: client()?,
            namespace_url: format!("{base}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}"),
            token,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<()> {
        let response = request.bearer_auth(&self.token).send().await.with_context(|| format!("KV {what}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let envelope: Envelope = serde_json::from_str(&body)
            .with_context(|| format!("KV {what}: status {status}, unreadable answer {body:.200}"))?;
        if !status.is_success() || !envelope.success {
            bail!("KV {what}: status {status}, errors {:?}", envelope.errors);
        }
        // Keys Cloudflare could not apply must be retried: fail the batch so it is sent again.
        if let Some(failed) = envelope.result.map(|r| r.unsuccessful_keys).filter(|k| !k.is_empty()) {
            bail!("KV {what}: {} keys not applied, first {:?}", failed.len(), failed.first());
        }
        Ok(())
    }
}

impl KvSink for CloudflareKv {
    /// Cloudflare's bulk endpoints take up to 10,000 keys.
    const MAX_BATCH: usize = 10_000;

    async fn put(&self, pairs: &[KvPair]) -> anyhow::Result<()> {
        self.send(self.client.put(format!("{}/bulk", self.namespace_url)).json(pairs), "bulk write").await
    }

    async fn delete(&self, keys: &[String]) -> anyhow::Result<()> {
        self.send(self.client.post(format!("{}/bulk/delete", self.namespace_url)).json(keys), "bulk delete").await
    }
}

/// The worker's `POST /_internal/kv/bulk` and `/_internal/kv/bulk/delete`, same bodies as Cloudflare's.
pub struct WorkerKv {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl WorkerKv {
    pub fn new(base: &Url, token: String) -> anyhow::Result<Self> {
        Ok(WorkerKv { client: client()?, base: base.as_str().trim_end_matches('/').to_owned(), token })
    }

    async fn send<T: serde::Serialize + ?Sized>(&self, path: &str, body: &T) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("POST {url}: status {status}: {text:.200}");
        }
        Ok(())
    }
}

impl KvSink for WorkerKv {
    /// A Worker may make at most 1,000 KV operations per invocation; the sync route enforces it.
    const MAX_BATCH: usize = 1000;

    async fn put(&self, pairs: &[KvPair]) -> anyhow::Result<()> {
        self.send("/_internal/kv/bulk", pairs).await
    }

    async fn delete(&self, keys: &[String]) -> anyhow::Result<()> {
        self.send("/_internal/kv/bulk/delete", keys).await
    }
}

//! The two places link records can be written: Cloudflare's KV REST API (production) and the worker's
//! own authenticated sync route (local development and end-to-end tests, where miniflare holds KV).
//!
//! Each answer is sorted into one of three outcomes, which decide what the drainer does next: applied
//! (maybe with keys the worker refused as stale), refused for what the batch holds (split it and find
//! the record), or unsettled (push the links' current state again later).

use std::fmt;
use std::time::Duration;

use anyhow::anyhow;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use url::Url;

use super::{KvPair, KvSink};

/// How long one request may take before its outcome counts as unknown.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(timeout).build()?)
}

/// One key to delete, with the version that deactivated its link (the worker keeps it as a tombstone,
/// so that an older record arriving late loses; Cloudflare's bulk delete takes the key alone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvDelete {
    pub key: String,
    pub version: i64,
}

/// A key the worker refused because KV holds a newer version of its link.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StaleKey {
    pub key: String,
    pub stored_version: i64,
}

/// What a sink did with a batch it accepted: everything applied but the keys refused as stale.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub stale: Vec<StaleKey>,
}

/// A batch that was not applied.
#[derive(Debug)]
pub enum PushError {
    /// The sink refused the batch for what it holds (400, 413, 414, 422), a definite answer: nothing of
    /// it was applied. The drainer splits it until the record at fault is alone, and parks that one.
    Refused(String),
    /// The outcome is unknown (timeout, connection reset, 5xx, an unreadable answer, keys Cloudflare
    /// could not apply) or the sink cannot be used right now (401, 403, 404, 429): the links' current
    /// state is pushed again later. Never a reason to park a record.
    Unsettled(anyhow::Error),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Refused(reason) => write!(f, "refused: {reason}"),
            PushError::Unsettled(e) => write!(f, "{e:#}"),
        }
    }
}

/// Whether an answer of `status` refuses the batch for its content rather than for the request as a
/// whole: only these lead to splitting and parking. An authentication or routing failure must never
/// park every record, so 401, 403 and 404 are not among them.
fn refuses_content(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 414 | 422)
}

fn unsettled(context: String) -> impl FnOnce(reqwest::Error) -> PushError {
    move |e| PushError::Unsettled(anyhow::Error::new(e).context(context))
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
            client: client(DEFAULT_TIMEOUT)?,
            namespace_url: format!("{base}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}"),
            token,
        })
    }

    /// The same sink with another request timeout.
    pub fn with_timeout(self, timeout: Duration) -> anyhow::Result<Self> {
        Ok(CloudflareKv { client: client(timeout)?, ..self })
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Applied, PushError> {
        let response = request.bearer_auth(&self.token).send().await.map_err(unsettled(format!("KV {what}")))?;
        let status = response.status();
        let body = response.text().await.map_err(unsettled(format!("KV {what}: reading the answer")))?;
        let envelope = serde_json::from_str::<Envelope>(&body);
        if refuses_content(status) {
            let errors = envelope.map(|e| format!("{:?}", e.errors)).unwrap_or_else(|_| format!("{body:.300}"));
            return Err(PushError::Refused(format!("KV {what}: status {status}, errors {errors}")));
        }
        let envelope = envelope.map_err(|e| {
            PushError::Unsettled(anyhow!("KV {what}: status {status}, unreadable answer {body:.200}: {e}"))
        })?;
        if !status.is_success() || !envelope.success {
            return Err(PushError::Unsettled(anyhow!("KV {what}: status {status}, errors {:?}", envelope.errors)));
        }
        // Keys Cloudflare could not apply must be retried: the batch is pushed again.
        if let Some(failed) = envelope.result.map(|r| r.unsuccessful_keys).filter(|k| !k.is_empty()) {
            return Err(PushError::Unsettled(anyhow!(
                "KV {what}: {} keys not applied, first {:?}",
                failed.len(),
                failed.first()
            )));
        }
        Ok(Applied::default())
    }
}

impl KvSink for CloudflareKv {
    /// Cloudflare's bulk endpoints take up to 10,000 keys.
    const MAX_BATCH: usize = 10_000;

    async fn put(&self, pairs: &[KvPair]) -> Result<Applied, PushError> {
        self.send(self.client.put(format!("{}/bulk", self.namespace_url)).json(pairs), "bulk write").await
    }

    /// Cloudflare has no conditional writes: the key is deleted whatever KV holds. (Pushes never overlap
    /// and always carry the current state; the reconciliation repairs a write that landed late.)
    async fn delete(&self, deletes: &[KvDelete]) -> Result<Applied, PushError> {
        let keys: Vec<&str> = deletes.iter().map(|d| d.key.as_str()).collect();
        self.send(self.client.post(format!("{}/bulk/delete", self.namespace_url)).json(&keys), "bulk delete").await
    }
}

/// The worker's `POST /_internal/kv/bulk` and `/_internal/kv/bulk/delete`: Cloudflare's bodies, with a
/// version on each delete, and an answer naming the keys refused as stale.
pub struct WorkerKv {
    client: reqwest::Client,
    base: String,
    token: String,
}

/// The worker's answer: `{"written": n}` or `{"deleted": n}`, with `stale` when it refused any.
#[derive(Debug, Deserialize)]
struct WorkerAnswer {
    #[serde(default)]
    stale: Vec<StaleKey>,
}

impl WorkerKv {
    pub fn new(base: &Url, token: String) -> anyhow::Result<Self> {
        Ok(WorkerKv { client: client(DEFAULT_TIMEOUT)?, base: base.as_str().trim_end_matches('/').to_owned(), token })
    }

    async fn send<T: serde::Serialize + ?Sized>(&self, path: &str, body: &T) -> Result<Applied, PushError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .post(&url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(unsettled(format!("POST {url}")))?;
        let status = response.status();
        let text = response.text().await.map_err(unsettled(format!("POST {url}: reading the answer")))?;
        if refuses_content(status) {
            return Err(PushError::Refused(format!("POST {url}: status {status}: {text:.300}")));
        }
        if !status.is_success() {
            return Err(PushError::Unsettled(anyhow!("POST {url}: status {status}: {text:.200}")));
        }
        let answer: WorkerAnswer = serde_json::from_str(&text)
            .map_err(|e| PushError::Unsettled(anyhow!("POST {url}: unreadable answer {text:.200}: {e}")))?;
        Ok(Applied { stale: answer.stale })
    }
}

impl KvSink for WorkerKv {
    /// A Worker may make at most 1,000 KV operations per invocation, and the sync route spends two per
    /// entry (it reads the stored version first); it enforces this limit.
    const MAX_BATCH: usize = 500;

    async fn put(&self, pairs: &[KvPair]) -> Result<Applied, PushError> {
        self.send("/_internal/kv/bulk", pairs).await
    }

    async fn delete(&self, deletes: &[KvDelete]) -> Result<Applied, PushError> {
        self.send("/_internal/kv/bulk/delete", deletes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_refusals_split_and_park() {
        for status in [400, 413, 414, 422] {
            assert!(refuses_content(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [200, 401, 403, 404, 405, 408, 409, 429, 500, 502, 503, 504] {
            assert!(!refuses_content(StatusCode::from_u16(status).unwrap()), "{status}");
        }
    }

    #[test]
    fn the_workers_answer_names_stale_keys_when_there_are_some() {
        let answer: WorkerAnswer = serde_json::from_str(r#"{"written":3}"#).unwrap();
        assert!(answer.stale.is_empty());
        let answer: WorkerAnswer =
            serde_json::from_str(r#"{"written":0,"stale":[{"key":"abcdefgh","stored_version":9}]}"#).unwrap();
        assert_eq!(answer.stale, vec![StaleKey { key: "abcdefgh".into(), stored_version: 9 }]);
    }
}

//! Cloudflare for SaaS custom hostnames: how a brand's domain gets its certificate and is proven.
//!
//! `POST /zones/{zone}/custom_hostnames` `{"hostname", "ssl": {"method": "http", "type": "dv"}}` creates
//! one; `GET /zones/{zone}/custom_hostnames/{id}` reads its `status` (the hostname's) and `ssl.status`
//! (the certificate's), both `active` once the brand's DNS points at the zone; `DELETE` removes it. Every
//! answer is Cloudflare's envelope `{"success", "errors": [{"code", "message"}], "result"}`. Authorised by an
//! API token with "SSL and Certificates: Edit" on the zone.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::{DnsRecord, DomainError};

/// How long one call to Cloudflare may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The custom hostnames of one zone.
#[derive(Clone)]
pub struct CustomHostnames {
    client: reqwest::Client,
    /// `{api_base}/zones/{zone_id}/custom_hostnames`.
    url: String,
    token: String,
}

/// What Cloudflare says about one custom hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnameState {
    pub id: String,
    /// Both the hostname and its certificate are active.
    pub active: bool,
    /// The records the brand must publish (ownership TXT, certificate validation TXT) while pending.
    pub records: Vec<DnsRecord>,
    /// Cloudflare's verification errors, joined, when it reports any.
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<CfError>,
    result: Option<CustomHostname>,
}

#[derive(Debug, Deserialize)]
struct CfError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct CustomHostname {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    ssl: Option<Ssl>,
    #[serde(default)]
    ownership_verification: Option<TxtRecord>,
    #[serde(default)]
    verification_errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Ssl {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    validation_records: Vec<ValidationRecord>,
    #[serde(default)]
    validation_errors: Vec<ValidationError>,
}

#[derive(Debug, Deserialize)]
struct TxtRecord {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ValidationRecord {
    #[serde(default)]
    txt_name: Option<String>,
    #[serde(default)]
    txt_value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ValidationError {
    #[serde(default)]
    message: String,
}

impl CustomHostname {
    fn into_state(self) -> HostnameState {
        let ssl_status = self.ssl.as_ref().and_then(|s| s.status.as_deref());
        let active = self.status.as_deref() == Some("active") && ssl_status == Some("active");
        let txt = |name: Option<String>, value: Option<String>| match (name, value) {
            (Some(name), Some(value)) if !name.is_empty() && !value.is_empty() => {
                Some(DnsRecord { r#type: "TXT".into(), name, value })
            }
            _ => None,
        };
        let mut records = Vec::new();
        if let Some(ov) = self.ownership_verification {
            records.extend(txt(ov.name, ov.value));
        }
        let mut errors = self.verification_errors;
        if let Some(ssl) = self.ssl {
            records.extend(ssl.validation_records.into_iter().filter_map(|r| txt(r.txt_name, r.txt_value)));
            errors.extend(ssl.validation_errors.into_iter().map(|e| e.message).filter(|m| !m.is_empty()));
        }
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        HostnameState { id: self.id, active, records, error }
    }
}

impl CustomHostnames {
    pub fn new(api_base: &Url, zone_id: &str, token: String) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("CreatorScore/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let base = api_base.as_str().trim_end_matches('/');
        Ok(CustomHostnames { client, url: format!("{base}/zones/{zone_id}/custom_hostnames"), token })
    }

    /// Creates the custom hostname, with a DV certificate validated over HTTP (automatic once the
    /// brand's CNAME points at the zone).
    pub async fn create(&self, hostname: &str) -> Result<HostnameState, DomainError> {
        let body = json!({"hostname": hostname, "ssl": {"method": "http", "type": "dv"}});
        let request = self.client.post(&self.url).json(&body);
        Ok(self.send(request, "creating the custom hostname").await?.into_state())
    }

    /// Reads the custom hostname's state.
    pub async fn get(&self, id: &str) -> Result<HostnameState, DomainError> {
        let request = self.client.get(format!("{}/{id}", self.url));
        Ok(self.send(request, "reading the custom hostname").await?.into_state())
    }

    /// Removes the custom hostname; one Cloudflare no longer has is removed already.
    pub async fn delete(&self, id: &str) -> Result<(), DomainError> {
        let request = self.client.delete(format!("{}/{id}", self.url));
        match self.send_raw(request, "removing the custom hostname").await {
            Ok(_) => Ok(()),
            Err(Failure::NotFound) => Ok(()),
            Err(Failure::Domain(e)) => Err(e),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<CustomHostname, DomainError> {
        match self.send_raw(request, what).await {
            Ok(Some(result)) => Ok(result),
            Ok(None) => Err(DomainError::Unavailable(format!("{what}: Cloudflare answered without a result"))),
            Err(Failure::NotFound) => Err(DomainError::Provider("Cloudflare no longer knows this hostname".into())),
            Err(Failure::Domain(e)) => Err(e),
        }
    }

    async fn send_raw(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Option<CustomHostname>, Failure> {
        let unavailable = |why: String| Failure::Domain(DomainError::Unavailable(why));
        let response =
            request.bearer_auth(&self.token).send().await.map_err(|e| unavailable(format!("{what}: {e}")))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| unavailable(format!("{what}: reading the answer: {e}")))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Failure::NotFound);
        }
        let envelope: Envelope = serde_json::from_str(&body)
            .map_err(|e| unavailable(format!("{what}: status {status}, unreadable answer: {e}")))?;
        if status.is_success() && envelope.success {
            return Ok(envelope.result);
        }
        let message =
            envelope.errors.iter().map(|e| format!("{} ({})", e.message, e.code)).collect::<Vec<_>>().join("; ");
        if status.is_client_error()
            && status != reqwest::StatusCode::UNAUTHORIZED
            && status != reqwest::StatusCode::FORBIDDEN
        {
            // Cloudflare refused the hostname itself (already in use elsewhere, not allowed): the brand's to know.
            return Err(Failure::Domain(DomainError::Provider(message)));
        }
        // A 401/403 is this deployment's token, a 5xx Cloudflare's trouble: the brand can only retry.
        tracing::error!(status = %status, message, "{what} failed at Cloudflare");
        Err(unavailable(format!("{what}: status {status}")))
    }
}

enum Failure {
    NotFound,
    Domain(DomainError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostname_is_active_only_when_its_certificate_is() {
        let pending: Envelope = serde_json::from_value(json!({
            "success": true, "errors": [], "messages": [],
            "result": {
                "id": "0d89c70d-ad9f-4843-b99f-6cc0252067e9", "hostname": "go.brand.example", "status": "pending",
                "ssl": {"status": "pending_validation", "method": "http", "type": "dv",
                        "validation_records": [{"txt_name": "_acme-challenge.go.brand.example", "txt_value": "ca3-x"}],
                        "validation_errors": [{"message": "caa_error: blocked"}]},
                "ownership_verification": {"type": "txt", "name": "_cf-custom-hostname.go.brand.example", "value": "5cc07c04"},
                "verification_errors": ["custom hostname does not CNAME to this zone."]
            }
        }))
        .unwrap();
        let state = pending.result.unwrap().into_state();
        assert!(!state.active);
        assert_eq!(state.records.len(), 2);
        assert_eq!(state.records[0].name, "_cf-custom-hostname.go.brand.example");
        assert_eq!(state.error.as_deref(), Some("custom hostname does not CNAME to this zone.; caa_error: blocked"));
        let active: CustomHostname = serde_json::from_value(json!({
            "id": "x", "status": "active", "ssl": {"status": "active"}
        }))
        .unwrap();
        assert!(active.into_state().active);
        let half: CustomHostname =
            serde_json::from_value(json!({"id": "x", "status": "active", "ssl": {"status": "pending_validation"}}))
                .unwrap();
        assert!(!half.into_state().active);
    }
}

//! Where outbound requests may go. A brand names the URL, so without a check it could make this service
//! call its own loopback, a private network or a cloud metadata address (server-side request forgery).
//! A target is refused when it is, or resolves to, a loopback, private, link-local, unspecified,
//! multicast or otherwise reserved address; webhooks also refuse plain http. The check is made when a
//! URL is saved and again at each delivery, through the connection's own DNS resolution, so a name that
//! starts resolving to a private address later is refused too (and no second lookup can disagree with
//! the one that was checked). `ALLOW_PRIVATE_TARGETS=true` turns it off for local development.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Whether private targets (and plain http) are allowed: `ALLOW_PRIVATE_TARGETS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    pub allow_private: bool,
}

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the URL is not a valid absolute URL")]
    Malformed,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL's host is or resolves to a loopback, private, link-local or reserved address ({0})")]
    Private(IpAddr),
}

/// Whether an address is one an outbound request must never reach.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return forbidden_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || segments[0] == 0x2001 && segments[1] == 0x0db8 // documentation
                || segments[..5] == [0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
        }
    }
}

fn forbidden_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (b & 0xc0) == 64) // shared address space (carrier-grade NAT) 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || a >= 240 // reserved
}

impl TargetPolicy {
    /// Checks a URL as written: its scheme, and its host when that is an address. A host name is checked
    /// when it is resolved ([`TargetPolicy::resolve`], and the delivery client's resolver).
    pub fn check_url(&self, raw: &str, require_https: bool) -> Result<Url, Refused> {
        let url = Url::parse(raw).map_err(|_| Refused::Malformed)?;
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => self.allow_private || !require_https,
            _ => false,
        };
        if !scheme_ok {
            return Err(Refused::NotHttps);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::Credentials);
        }
        let literal = match url.host() {
            None => return Err(Refused::Malformed),
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        };
        if let Some(ip) = literal.filter(|ip| !self.allow_private && is_forbidden(*ip)) {
            return Err(Refused::Private(ip));
        }
        Ok(url)
    }

    /// Resolves a URL's host now and refuses it if any of its addresses is forbidden. A name that does
    /// not resolve (yet) is not refused here: the delivery's own resolution decides.
    pub async fn resolve(&self, url: &Url) -> Result<(), Refused> {
        if self.allow_private {
            return Ok(());
        }
        let Some(Host::Domain(host)) = url.host() else { return Ok(()) };
        let port = url.port_or_known_default().unwrap_or(443);
        if let Ok(addrs) = tokio::net::lookup_host((host, port)).await {
            for addr in addrs {
                if is_forbidden(addr.ip()) {
                    return Err(Refused::Private(addr.ip()));
                }
            }
        }
        Ok(())
    }

    /// An HTTP client whose connections obey this policy: every name it resolves is checked, redirects
    /// are not followed (a redirect could lead anywhere), proxies from the environment are not used.
    pub fn client(&self, timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("CreatorScore-Webhooks/", env!("CARGO_PKG_VERSION")));
        let builder = if self.allow_private { builder } else { builder.dns_resolver(Arc::new(GuardedResolver)) };
        Ok(builder.build()?)
    }
}

/// Resolves like the system does, and fails when any address of the name is forbidden.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
                return Err(Box::new(Refused::Private(bad.ip())) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "ff02::1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} should be forbidden");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::5db8:d822"] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn urls_are_checked_as_written() {
        let strict = TargetPolicy { allow_private: false };
        assert!(strict.check_url("https://hooks.example.com/in", true).is_ok());
        assert_eq!(strict.check_url("http://hooks.example.com/in", true), Err(Refused::NotHttps));
        assert_eq!(strict.check_url("ftp://hooks.example.com/in", true), Err(Refused::NotHttps));
        assert_eq!(strict.check_url("https://u:p@hooks.example.com/", true), Err(Refused::Credentials));
        assert!(matches!(strict.check_url("https://127.0.0.1:9/", true), Err(Refused::Private(_))));
        assert!(matches!(strict.check_url("https://[::1]/", true), Err(Refused::Private(_))));
        assert!(matches!(strict.check_url("https://2130706433/", true), Err(Refused::Private(_))));
        assert_eq!(strict.check_url("not a url", true), Err(Refused::Malformed));
        let dev = TargetPolicy { allow_private: true };
        assert!(dev.check_url("http://127.0.0.1:9/", true).is_ok());
    }
}

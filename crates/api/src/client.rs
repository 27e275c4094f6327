//! Who a request comes from, as the rate limits see it: the client's address, taken from the TCP peer
//! or from what a trusted proxy in front of the API says (`CLIENT_IP_SOURCE`), and the key it is
//! counted under (an IPv4 address, or an IPv6 client's /64).
//!
//! A proxy header is only as good as the proxies that wrote it. `X-Forwarded-For` is a list each proxy
//! appends its peer's address to, and its left-most entries are whatever the client wrote, so the
//! client is the right-most entry that no trusted proxy wrote: with `TRUSTED_PROXY_HOPS` = N proxies in
//! front of the API, the N-th entry from the right. `CF-Connecting-IP` is set by Cloudflare and
//! trustworthy only when nothing but Cloudflare can reach the API.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU8;

/// `CLIENT_IP_SOURCE` (with `TRUSTED_PROXY_HOPS`): where a request's client address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpSource {
    /// The TCP peer (default): the API is reached directly.
    Peer,
    /// `X-Forwarded-For`, behind `trusted_hops` proxies that each append the address they were reached from
    /// (nginx with `$proxy_add_x_forwarded_for`, load balancers). `TRUST_FORWARDED_FOR=true`, the older
    /// setting, is this with one hop.
    XForwardedFor { trusted_hops: NonZeroU8 },
    /// `CF-Connecting-IP`: the API is reachable only through Cloudflare, which sets this header.
    CfConnectingIp,
}

impl ClientIpSource {
    /// The header the client address is read from, if any.
    pub fn header(self) -> Option<&'static str> {
        match self {
            ClientIpSource::Peer => None,
            ClientIpSource::XForwardedFor { .. } => Some("x-forwarded-for"),
            ClientIpSource::CfConnectingIp => Some("cf-connecting-ip"),
        }
    }

    /// Whether the proxies in front of the API also say which host the request was addressed to
    /// (`X-Forwarded-Host`). Only behind `X-Forwarded-For` proxies: Cloudflare keeps `Host` and passes a
    /// client's own `X-Forwarded-Host` through untouched.
    pub fn trusts_forwarded_host(self) -> bool {
        matches!(self, ClientIpSource::XForwardedFor { .. })
    }

    /// The client's address: from the configured header's values (every line of it, in order), or the
    /// peer when the header is missing, too short or not an address. Without a peer (requests that
    /// never crossed a socket), the unspecified address.
    pub fn client_address<'a>(self, peer: Option<IpAddr>, header_values: impl IntoIterator<Item = &'a str>) -> IpAddr {
        let from_header = match self {
            ClientIpSource::Peer => None,
            ClientIpSource::XForwardedFor { trusted_hops } => {
                let hops: Vec<&str> = header_values.into_iter().flat_map(|line| line.split(',')).collect();
                // Fewer entries than trusted proxies: the request skipped one of them, and nothing in the
                // header can be trusted.
                hops.len().checked_sub(usize::from(trusted_hops.get())).and_then(|i| parse_address(hops[i]))
            }
            // Cloudflare sets exactly one; anything else was not written by it alone.
            ClientIpSource::CfConnectingIp => {
                let mut values = header_values.into_iter();
                match (values.next(), values.next()) {
                    (Some(only), None) => parse_address(only),
                    _ => None,
                }
            }
        };
        from_header.or(peer).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, or either with a port
/// (`192.0.2.1:443`, `[2001:db8::1]:443`).
fn parse_address(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| raw.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
}

/// A client as rate limits count it: an IPv4 address, or the /64 of an IPv6 address (one subscriber's
/// prefix: a single host can use any of its 2^64 addresses). IPv4-mapped IPv6 addresses
/// (`::ffff:192.0.2.1`, what a dual-stack socket reports) are their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(IpAddr);

impl From<IpAddr> for ClientKey {
    fn from(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => ClientKey(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX)))),
            },
        }
    }
}

/// The address's bytes (an IPv6 client's /64 zero-padded), the same in every process.
impl crate::limits::LimitKey for ClientKey {
    fn write_key(&self, out: &mut Vec<u8>) {
        let bytes = match self.0 {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        crate::limits::LimitKey::write_key(&bytes, out);
    }
}

impl fmt::Display for ClientKey {
    /// `192.0.2.1`, or `2001:db8:1:2::/64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn hops(n: u8) -> ClientIpSource {
        ClientIpSource::XForwardedFor { trusted_hops: NonZeroU8::new(n).unwrap() }
    }

    #[test]
    fn the_client_is_the_right_most_entry_no_trusted_proxy_wrote() {
        let peer = Some(ip("10.0.0.9"));
        let chain = ["1.1.1.1, 203.0.113.7", "198.51.100.2"];
        assert_eq!(hops(1).client_address(peer, chain), ip("198.51.100.2"));
        assert_eq!(hops(2).client_address(peer, chain), ip("203.0.113.7"));
        assert_eq!(hops(3).client_address(peer, chain), ip("1.1.1.1"));
        // More trusted proxies than entries: the header is not trusted at all.
        assert_eq!(hops(4).client_address(peer, chain), ip("10.0.0.9"));
        assert_eq!(hops(1).client_address(peer, []), ip("10.0.0.9"));
        // Garbage where the client should be is not an address.
        assert_eq!(hops(1).client_address(peer, ["203.0.113.7, unknown"]), ip("10.0.0.9"));
        assert_eq!(ClientIpSource::Peer.client_address(peer, chain), ip("10.0.0.9"));
        assert_eq!(ClientIpSource::Peer.client_address(None, chain), ip("0.0.0.0"));
    }

    #[test]
    fn addresses_with_ports_and_brackets_are_read() {
        for (raw, want) in [
            (" 192.0.2.1 ", "192.0.2.1"),
            ("192.0.2.1:8443", "192.0.2.1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            assert_eq!(parse_address(raw), Some(ip(want)), "{raw}");
        }
        for bad in ["", "unknown", "_hidden", "192.0.2", "[192.0.2.1]"] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn cloudflare_mode_reads_its_one_header() {
        let peer = Some(ip("172.64.0.1"));
        let cf = ClientIpSource::CfConnectingIp;
        assert_eq!(cf.client_address(peer, ["2001:db8::7"]), ip("2001:db8::7"));
        assert_eq!(cf.client_address(peer, []), ip("172.64.0.1"));
        assert_eq!(cf.client_address(peer, ["192.0.2.1", "192.0.2.2"]), ip("172.64.0.1"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_by_the_ipv4_address() {
        let key = |s: &str| ClientKey::from(ip(s));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("2001:db8:1:2:3:4:5:6").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("::ffff:192.0.2.1").to_string(), "192.0.2.1");
    }
}

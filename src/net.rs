//! Outbound requests to addresses that someone configured (partner webhooks,
//! Learning Record Stores and S3 endpoints, OIDC issuers and the endpoints
//! they announce, Stripe, proctoring, Twilio): the one place that decides
//! whether Lyceum may connect to an address. Loopback, private, link-local
//! (the cloud metadata address among them), unspecified, shared (CGNAT),
//! multicast, documentation and other special-purpose addresses are refused
//! unless the operator's allow-list (`outbound_allow`) names them.
//!
//! Addresses are checked after DNS resolution, by a resolver every guarded
//! HTTP client uses, so a name that resolves to a private address is
//! refused at connect time (DNS may change after a URL was saved); URLs
//! that name an IP address skip resolvers, so they are checked before a
//! request and on every redirect. Knows no business area.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;

/// Special-purpose ranges (IANA registries for IPv4 and IPv6) that a
/// server-side request must not reach unless allowed.
static REFUSED: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",       // "this network", unspecified
        "10.0.0.0/8",      // private
        "100.64.0.0/10",   // shared address space (CGNAT)
        "127.0.0.0/8",     // loopback
        "169.254.0.0/16",  // link-local, cloud metadata at 169.254.169.254
        "172.16.0.0/12",   // private
        "192.0.0.0/24",    // IETF protocol assignments
        "192.0.2.0/24",    // documentation
        "192.88.99.0/24",  // 6to4 relay anycast
        "192.168.0.0/16",  // private
        "198.18.0.0/15",   // benchmarking
        "198.51.100.0/24", // documentation
        "203.0.113.0/24",  // documentation
        "224.0.0.0/4",     // multicast
        "240.0.0.0/4",     // reserved, broadcast
        "::/128",          // unspecified
        "::1/128",         // loopback
        "64:ff9b:1::/48",  // local-use IPv4/IPv6 translation
        "100::/64",        // discard-only
        "2001::/23",       // IETF protocol assignments (Teredo among them)
        "2001:db8::/32",   // documentation
        "2002::/16",       // 6to4: reaches the IPv4 address it embeds
        "fc00::/7",        // unique local
        "fe80::/10",       // link-local
        "fec0::/10",       // site-local (deprecated)
        "ff00::/8",        // multicast
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
});

/// Why a request was not made; the message names the rule and the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "{host} is a loopback, private, link-local or other special-purpose address ({addr}), which Lyceum does not connect to unless the operator lists it in outbound_allow (LYCEUM_OUTBOUND_ALLOW)"
    )]
    Address { host: String, addr: IpAddr },
    #[error("{0} is not an http(s) URL with a host")]
    Url(String),
    #[error("outbound_allow: “{0}” is neither an IP address, a CIDR block nor a host name")]
    Config(String),
}

/// The operator's allow-list: CIDR blocks or addresses, and host names.
#[derive(Debug, Default)]
struct Allow {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

/// The outbound policy of this process; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    allow: Arc<Allow>,
}

impl Outbound {
    /// `entries` are CIDR blocks (`10.1.0.0/16`), single addresses
    /// (`127.0.0.1`, `::1`) or host names (`lrs.internal`).
    pub fn new(entries: &[String]) -> Result<Outbound, Refused> {
        let mut allow = Allow::default();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                allow.nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                allow.nets.push(IpNet::from(ip));
            } else if url::Host::parse(entry).is_ok_and(|h| matches!(h, url::Host::Domain(_))) && !entry.contains('/') {
                allow.hosts.push(entry.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(Refused::Config(entry.to_string()));
            }
        }
        Ok(Outbound { allow: Arc::new(allow) })
    }

    /// Whether Lyceum may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.nets.iter().any(|n| n.contains(&ip)) || !REFUSED.iter().any(|n| n.contains(&ip))
    }

    fn host_listed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow.hosts.contains(&host)
    }

    /// Checks what can be checked without DNS: the URL is http(s) with a
    /// host, and a host that is an IP address is permitted.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Url(url.to_string()));
        }
        match url.host() {
            None => Err(Refused::Url(url.to_string())),
            Some(url::Host::Domain(_)) => Ok(()),
            Some(url::Host::Ipv4(ip)) => self.check_ip(&ip.to_string(), ip.into()),
            Some(url::Host::Ipv6(ip)) => self.check_ip(&ip.to_string(), ip.into()),
        }
    }

    /// Why a request to `url` would be refused without DNS, if it would:
    /// for clients built once for an operator-configured base URL.
    pub fn refusal(&self, url: &str) -> Option<String> {
        let parsed = url::Url::parse(url).map_err(|_| Refused::Url(url.to_string()));
        parsed.and_then(|u| self.check_url(&u)).err().map(|e| e.to_string())
    }

    fn check_ip(&self, host: &str, addr: IpAddr) -> Result<(), Refused> {
        if self.permits(addr) { Ok(()) } else { Err(Refused::Address { host: host.to_string(), addr }) }
    }

    /// The addresses of `host` Lyceum may connect to, an error naming the
    /// first refused one when none is left.
    fn filter(&self, host: &str, addrs: impl Iterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
        if self.host_listed(host) {
            return Ok(addrs.collect());
        }
        let mut refused = None;
        let kept: Vec<SocketAddr> = addrs
            .filter(|a| {
                let ok = self.permits(a.ip());
                if !ok {
                    refused.get_or_insert(a.ip());
                }
                ok
            })
            .collect();
        match (kept.is_empty(), refused) {
            (true, Some(addr)) => Err(Refused::Address { host: host.to_string(), addr }),
            _ => Ok(kept),
        }
    }

    /// Checks a URL as a request to it would be checked, resolving its host
    /// now (blocking: call from a blocking thread, as services run). A name
    /// that does not resolve passes: it is checked again at send time.
    pub fn check_now(&self, url: &str) -> Result<(), Refused> {
        let parsed = url::Url::parse(url).map_err(|_| Refused::Url(url.to_string()))?;
        self.check_url(&parsed)?;
        let Some(url::Host::Domain(host)) = parsed.host() else { return Ok(()) };
        let port = parsed.port_or_known_default().unwrap_or(443);
        match std::net::ToSocketAddrs::to_socket_addrs(&(host, port)) {
            Ok(addrs) => self.filter(host, addrs).map(|_| ()),
            Err(_) => Ok(()),
        }
    }

    /// Like [`Outbound::check_now`], but a name must resolve: for a request
    /// about to be made by a client that does not use [`Outbound::client`].
    pub async fn check_before_request(&self, url: &str) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|_| Refused::Url(url.to_string()).to_string())?;
        self.check_url(&parsed).map_err(|e| e.to_string())?;
        let Some(url::Host::Domain(host)) = parsed.host() else { return Ok(()) };
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?;
        self.filter(host, addrs).map(|_| ()).map_err(|e| e.to_string())
    }

    /// A reqwest client builder that resolves names through this policy,
    /// re-checks every redirect (at most five) and ignores proxy variables
    /// (a proxy would resolve the name itself, past the check).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let policy = self.clone();
        reqwest::Client::builder().no_proxy().dns_resolver(Arc::new(Resolver(self.clone()))).redirect(
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    return attempt.error("too many redirects");
                }
                match policy.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            }),
        )
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, or the NAT64 prefix)
/// is judged as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = v6.octets();
                return IpAddr::V4(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            ip
        }
        v4 => v4,
    }
}

/// Resolves with the system resolver and keeps only permitted addresses.
struct Resolver(Outbound);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept = policy.filter(&host, addrs)?;
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_special_purpose_addresses_unless_allowed() {
        let none = Outbound::default();
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!none.permits(bad.parse().unwrap()), "{bad}");
        }
        for good in ["93.184.215.14", "2606:4700::6810:84e5", "8.8.8.8"] {
            assert!(none.permits(good.parse().unwrap()), "{good}");
        }
        let some = Outbound::new(&["127.0.0.1/32".into(), "::1".into(), "lrs.internal".into()]).unwrap();
        assert!(some.permits("127.0.0.1".parse().unwrap()));
        assert!(some.permits("::1".parse().unwrap()));
        assert!(!some.permits("127.0.0.2".parse().unwrap()));
        assert!(some.host_listed("LRS.internal."));
        assert!(Outbound::new(&["10.0.0.0/33".into()]).is_err());
        assert!(Outbound::new(&["http://x".into()]).is_err());
    }

    #[test]
    fn literal_urls_are_checked_without_dns() {
        let none = Outbound::default();
        let refused = none.check_url(&"http://169.254.169.254/latest/meta-data".parse().unwrap()).unwrap_err();
        assert!(refused.to_string().contains("outbound_allow"), "{refused}");
        assert!(none.check_url(&"http://[::1]:8080/".parse().unwrap()).is_err());
        assert!(none.check_url(&"https://partner.example/hook".parse().unwrap()).is_ok());
        assert!(none.check_now("http://localhost:9/hook").is_err(), "localhost resolves to loopback");
    }
}

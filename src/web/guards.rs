//! Request guards: who is asking (`CurrentUser`, `StaffUser`) and from where
//! (`ClientInfo`). The session is resolved once per request by the session
//! fairing; guards only read that result.

use std::net::IpAddr;

use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use crate::kernel::{Role, SessionUser};

/// The outcome of resolving the session cookie, cached per request.
#[derive(Debug, Default, Clone)]
pub struct SessionState {
    pub user: Option<SessionUser>,
    /// Hash of the session token (the `sessions.id`), to end this session.
    pub session_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CurrentUser(pub SessionUser);

impl std::ops::Deref for CurrentUser {
    type Target = SessionUser;
    fn deref(&self) -> &SessionUser {
        &self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CurrentUser {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match &req.local_cache(SessionState::default).user {
            Some(user) => Outcome::Success(CurrentUser(user.clone())),
            None => Outcome::Error((Status::Unauthorized, ())),
        }
    }
}

/// A signed-in member of the operator's staff.
#[derive(Debug, Clone)]
pub struct StaffUser(pub SessionUser);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for StaffUser {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match &req.local_cache(SessionState::default).user {
            Some(user) if user.has_role(Role::Staff) => Outcome::Success(StaffUser(user.clone())),
            Some(_) => {
                crate::web::error::set_detail(req, "This page is for the operator's staff only.");
                Outcome::Error((Status::Forbidden, ()))
            }
            None => Outcome::Error((Status::Unauthorized, ())),
        }
    }
}

pub use crate::kernel::ClientInfo;

/// The proxies whose `X-Forwarded-For` and `X-Real-IP` are believed.
/// Anyone else can put any address in those headers, so for every other
/// peer the connection's own address is the client's.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// From CIDRs (`10.0.0.0/8`) or single addresses; the error names the bad entry.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<ipnet::IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("trusted_proxies: `{e}` is not an address or a CIDR such as 10.0.0.0/8"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address. The peer, unless it is a trusted proxy: then
    /// the rightmost `X-Forwarded-For` hop that is not a trusted proxy (hops
    /// to its left were written by the client and prove nothing), else
    /// `X-Real-IP`.
    pub fn client(&self, peer: Option<IpAddr>, forwarded_for: &[&str], real_ip: Option<&str>) -> Option<IpAddr> {
        let peer = peer.map(|p| p.to_canonical())?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).collect();
        if !hops.is_empty() {
            let mut client = peer;
            for hop in hops.iter().rev() {
                let Some(ip) = hop_address(hop) else { return Some(client) };
                if !self.trusts(ip) {
                    return Some(ip);
                }
                client = ip;
            }
            return Some(client);
        }
        Some(real_ip.and_then(hop_address).unwrap_or(peer))
    }
}

/// An address as proxies write it: bare, or with a port (`[::1]:443`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The client's address, as [`TrustedProxies::client`] decides it.
pub fn client_ip(req: &Request<'_>) -> Option<IpAddr> {
    let peer = req.remote().map(|r| r.ip());
    let Some(proxies) = req.rocket().state::<TrustedProxies>() else { return peer.map(|p| p.to_canonical()) };
    let forwarded: Vec<&str> = req.headers().get("X-Forwarded-For").collect();
    proxies.client(peer, &forwarded, req.headers().get_one("X-Real-IP"))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientInfo {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        Outcome::Success(ClientInfo {
            ip: client_ip(req).map(|ip| ip.to_string()),
            user_agent: req.headers().get_one("User-Agent").map(|ua| ua.chars().take(512).collect()),
        })
    }
}

/// Whoever is asking, signed in or not; never fails.
#[derive(Debug, Clone)]
pub struct Viewer(pub Option<SessionUser>);

impl Viewer {
    pub fn signed_in(&self) -> bool {
        self.0.is_some()
    }
    pub fn is_staff(&self) -> bool {
        self.0.as_ref().is_some_and(|u| u.has_role(Role::Staff))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Viewer {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        Outcome::Success(Viewer(req.local_cache(SessionState::default).user.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("203.0.113.7"), &["6.6.6.6"], Some("7.7.7.7")), ip("203.0.113.7"));
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let peer = ip("10.0.0.2");
        assert_eq!(proxies.client(peer, &["6.6.6.6, 198.51.100.20, 10.0.0.5"], None), ip("198.51.100.20"));
        assert_eq!(proxies.client(peer, &["6.6.6.6", "198.51.100.20:5555"], None), ip("198.51.100.20"));
        assert_eq!(proxies.client(peer, &["10.1.1.1"], None), ip("10.1.1.1"), "only proxies: the farthest");
        assert_eq!(proxies.client(peer, &["garbage, 10.1.1.1"], None), ip("10.1.1.1"));
        assert_eq!(proxies.client(peer, &[], Some("198.51.100.21")), ip("198.51.100.21"));
        assert_eq!(proxies.client(peer, &[], Some("nonsense")), peer);
        assert_eq!(proxies.client(ip("::ffff:10.0.0.2"), &["198.51.100.22"], None), ip("198.51.100.22"));
        assert_eq!(proxies.client(None, &["198.51.100.22"], None), None);
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err().contains("10.0.0.0/33"));
    }
}

/// Marks a route that software reads (a credential, an issuer profile): its
/// errors are RFC 9457 problem documents unless the client prefers HTML.
#[derive(Debug, Clone, Copy)]
pub struct MachineReadable;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for MachineReadable {
    type Error = std::convert::Infallible;
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        req.local_cache(|| crate::web::error::MachineReadableRoute(true));
        Outcome::Success(MachineReadable)
    }
}

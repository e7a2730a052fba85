//! Where a request came from, as services record it with consents and
//! sessions. The HTTP edge fills it in (`web::guards`, which decides which
//! forwarding headers to believe); services only read it.

/// Where a request came from, recorded with consents and sessions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// Key for rate limits: the client address, or one shared bucket when the
    /// address is unknown (tests, unusual proxies).
    pub fn rate_key(&self) -> String {
        self.ip.clone().unwrap_or_else(|| "unknown".into())
    }
}

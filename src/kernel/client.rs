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

/// Browser and operating-system families, from the user agent: nothing finer.
/// "Chrome on Linux": how a device is named to its owner.
pub fn describe_agent(user_agent: &str) -> String {
    let (browser, os) = families(user_agent);
    format!("{browser} on {os}")
}

pub fn families(user_agent: &str) -> (&'static str, &'static str) {
    let ua = user_agent.to_ascii_lowercase();
    let browser = if ua.contains("edg/") {
        "Edge"
    } else if ua.contains("opr/") || ua.contains("opera") {
        "Opera"
    } else if ua.contains("firefox/") {
        "Firefox"
    } else if ua.contains("chrome/") || ua.contains("chromium/") || ua.contains("crios/") {
        "Chrome"
    } else if ua.contains("safari/") {
        "Safari"
    } else {
        "Other"
    };
    let os = if ua.contains("android") {
        "Android"
    } else if ua.contains("iphone") || ua.contains("ipad") || ua.contains("ios") {
        "iOS"
    } else if ua.contains("windows") {
        "Windows"
    } else if ua.contains("mac os") || ua.contains("macintosh") {
        "macOS"
    } else if ua.contains("cros") {
        "ChromeOS"
    } else if ua.contains("linux") {
        "Linux"
    } else {
        "Other"
    };
    (browser, os)
}

//! The delivery policy shared by [`crate::lrs::LrsClient`] and
//! [`crate::webhook::WebhookClient`]: retry connection failures, timeouts,
//! HTTP 5xx and 429 with exponential backoff; fail at once on any other
//! non-2xx status.

use std::fmt;
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode, header};

/// At most this much of a response body is kept in an error.
const MAX_ERROR_BODY: usize = 4096;

/// How often and how patiently to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the second attempt; each later wait doubles it.
    pub base_delay: Duration,
    /// Upper bound of any wait, a server's `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 0.5 s, 1 s, 2 s, 4 s.
    fn default() -> Self {
        RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Why the last attempt of a delivery failed.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with a retryable status (5xx, 429).
    Status { status: u16, body: String },
    /// No response: connection refused or reset, timeout, etc.
    Transport(reqwest::Error),
}

/// An error with its chain of causes (reqwest's own message alone rarely
/// says what went wrong, e.g. "connection refused").
pub(crate) struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status { status, body } => write!(f, "HTTP {status}: {body}"),
            Failure::Transport(e) => write!(f, "{}", Chain(e)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The server refused the request with a status that retrying cannot fix
    /// (4xx other than 429, or an unfollowed 3xx).
    #[error("rejected with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    /// Every attempt failed with a retryable failure.
    #[error("gave up after {attempts} attempts; last failure: {last}")]
    RetriesExhausted { attempts: u32, last: Failure },
    /// The request could not be built or sent for a reason retrying cannot fix.
    #[error("request failed: {}", Chain(.0))]
    Request(#[source] reqwest::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("could not encode the body: {0}")]
    Encode(#[from] serde_json::Error),
}

impl DeliveryError {
    /// The HTTP status of the last response, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeliveryError::Rejected { status, .. } => Some(*status),
            DeliveryError::RetriesExhausted { last: Failure::Status { status, .. }, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The HTTP client both delivery clients use: a per-request timeout and no
/// redirects (a redirected POST would turn into a GET, or carry credentials
/// elsewhere; a 3xx is reported as [`DeliveryError::Rejected`] instead).
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, DeliveryError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lyceum-partner-adapters/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DeliveryError::Config(format!("HTTP client: {e}")))
}

fn retryable_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

fn retryable_error(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request()
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

async fn body_excerpt(response: Response) -> String {
    let mut body = response.text().await.unwrap_or_default();
    if body.len() > MAX_ERROR_BODY {
        let mut end = MAX_ERROR_BODY;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
        body.push('…');
    }
    body
}

/// Sends the request `build` makes (called once per attempt, so each attempt
/// can be signed afresh) until it succeeds (2xx), fails for good, or the
/// policy's attempts are spent.
pub(crate) async fn send_with_retry<F>(policy: &RetryPolicy, mut build: F) -> Result<Response, DeliveryError>
where
    F: FnMut() -> RequestBuilder,
{
    let attempts = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let (failure, server_wait) = match build().send().await {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) if retryable_status(response.status()) => {
                let status = response.status().as_u16();
                let wait = retry_after(&response);
                (Failure::Status { status, body: body_excerpt(response).await }, wait)
            }
            Ok(response) => {
                let status = response.status().as_u16();
                return Err(DeliveryError::Rejected { status, body: body_excerpt(response).await });
            }
            Err(e) if retryable_error(&e) => (Failure::Transport(e), None),
            Err(e) => return Err(DeliveryError::Request(e)),
        };
        if attempt >= attempts {
            return Err(DeliveryError::RetriesExhausted { attempts, last: failure });
        }
        let wait = server_wait.map_or(policy.delay(attempt), |w| w.max(policy.delay(attempt))).min(policy.max_delay);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        let delays: Vec<u128> = (1..=6).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(1000));
    }
}

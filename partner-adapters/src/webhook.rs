//! Signed webhooks.
//!
//! A webhook is an HTTP `POST` of a JSON body with the header
//! `Lyceum-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, where the MAC
//! is keyed with the partner's shared secret and taken over the bytes of
//! `<t>.<body>`: the `t` value exactly as it appears in the header, a full
//! stop, then the raw request body. Each delivery attempt is signed afresh
//! with the time of that attempt.
//!
//! A receiver verifies by parsing the header (comma-separated `key=value`
//! pairs; ignore keys it does not know; there may be several `v1` values
//! while a secret is being rotated), computing the MAC itself, comparing it
//! in constant time with each `v1`, and rejecting a `t` further than its
//! tolerance (e.g. 5 minutes) from its own clock in either direction, so a
//! captured request cannot be replayed later. [`verify`] does all of this.

use std::fmt;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use reqwest::{Url, header};
use serde::Serialize;
use sha2::Sha256;

use crate::retry::{DeliveryError, RetryPolicy, http_client, send_with_retry};

/// The name of the signature header.
pub const SIGNATURE_HEADER: &str = "Lyceum-Signature";
/// A sensible replay window for [`verify`].
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Lyceum-Signature` header value for `body` sent at `timestamp`
/// (Unix seconds): `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let digest = mac(secret, &t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(digest))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed Lyceum-Signature header: {0}")]
    Malformed(&'static str),
    #[error("no v1 signature matches the body")]
    Mismatch,
    #[error("signature timestamp {timestamp} is outside the {tolerance_secs} s window around {now}")]
    OutsideWindow { timestamp: i64, now: i64, tolerance_secs: u64 },
}

/// Checks a `Lyceum-Signature` header against `body` and the shared
/// `secret`, at time `now` (Unix seconds), accepting a signature time at
/// most `tolerance` before or after `now`. MACs are compared in constant
/// time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance: Duration) -> Result<(), SignatureError> {
    let mut t: Option<&str> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for element in header.split(',') {
        let (key, value) = element.trim().split_once('=').ok_or(SignatureError::Malformed("element without '='"))?;
        match key {
            "t" => {
                if t.is_some() {
                    return Err(SignatureError::Malformed("more than one t"));
                }
                if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed("t is not a Unix time in seconds"));
                }
                t = Some(value);
            }
            "v1" => {
                let sig = hex::decode(value).map_err(|_| SignatureError::Malformed("v1 is not hex"))?;
                if sig.len() != 32 {
                    return Err(SignatureError::Malformed("v1 is not 32 bytes"));
                }
                signatures.push(sig);
            }
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed("no t"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    let expected = mac(secret, t, body);
    // `verify_slice` compares in constant time; try every candidate.
    let matched = signatures.iter().fold(false, |ok, sig| expected.clone().verify_slice(sig).is_ok() | ok);
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let timestamp: i64 = t.parse().map_err(|_| SignatureError::Malformed("t is not a Unix time in seconds"))?;
    if now.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(SignatureError::OutsideWindow { timestamp, now, tolerance_secs: tolerance.as_secs() });
    }
    Ok(())
}

/// Where to send webhooks and with which secret.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: Vec<u8>,
    pub retry: RetryPolicy,
    /// Limit of one attempt, connection to last byte.
    pub timeout: Duration,
}

impl WebhookConfig {
    /// Default retry policy and a 10 s timeout.
    pub fn new(url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        WebhookConfig {
            url: url.into(),
            secret: secret.into(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// POSTs signed JSON bodies, with the same retry policy as the LRS client.
/// A retried delivery carries the same body (receivers should deduplicate
/// on an id in the payload) and a fresh signature.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    url: Url,
    secret: Vec<u8>,
    retry: RetryPolicy,
}

impl fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookClient").field("url", &self.url.as_str()).field("retry", &self.retry).finish()
    }
}

impl WebhookClient {
    pub fn new(config: WebhookConfig) -> Result<Self, DeliveryError> {
        let http = http_client(config.timeout)?;
        Self::with_http(config, http)
    }

    /// As [`WebhookClient::new`], over an HTTP client the caller built; its
    /// timeout and redirect policy are the caller's, and should follow no
    /// redirects.
    pub fn with_http(config: WebhookConfig, http: reqwest::Client) -> Result<Self, DeliveryError> {
        let url = Url::parse(&config.url).map_err(|e| DeliveryError::Config(format!("webhook URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DeliveryError::Config(format!("webhook URL {url} is not http(s)")));
        }
        if config.secret.is_empty() {
            return Err(DeliveryError::Config("webhook secret is empty".into()));
        }
        Ok(WebhookClient { http, url, secret: config.secret, retry: config.retry })
    }

    /// Serializes `payload` as JSON and sends it.
    pub async fn send_json<T: Serialize + ?Sized>(&self, payload: &T) -> Result<(), DeliveryError> {
        self.send_body(serde_json::to_vec(payload)?).await
    }

    /// Sends `body`, which must already be JSON, as is.
    pub async fn send_body(&self, body: Vec<u8>) -> Result<(), DeliveryError> {
        send_with_retry(&self.retry, || {
            let signature = sign(&self.secret, Utc::now().timestamp(), &body);
            self.http
                .post(self.url.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature)
                .body(body.clone())
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{Reply, serve};

    const SECRET: &[u8] = b"whsec_test_secret";
    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"event":"export.ready","cursor":"r-0002"}"#;
    /// HMAC-SHA256(SECRET, "1700000000." + BODY), computed outside this crate
    /// (Python's `hmac` module).
    const KNOWN_V1: &str = "7ef45018a5aead2dd731f528c5faee85e6d1a67a94a134136c023ca8e1e7c812";

    /// The documented scheme, computed with `hmac` directly.
    fn independent_v1(secret: &[u8], t: &str, body: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        m.update(format!("{t}.").as_bytes());
        m.update(body);
        hex::encode(m.finalize().into_bytes())
    }

    #[test]
    fn sign_follows_the_documented_scheme() {
        let header = sign(SECRET, T, BODY);
        assert_eq!(header, format!("t={T},v1={}", independent_v1(SECRET, "1700000000", BODY)));
        assert_eq!(header, format!("t=1700000000,v1={KNOWN_V1}"));
    }

    #[test]
    fn independently_signed_header_verifies() {
        let header = format!("t={T},v1={}", independent_v1(SECRET, &T.to_string(), BODY));
        assert_eq!(verify(SECRET, &header, BODY, T, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify(SECRET, &header, BODY, T + 300, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify(SECRET, &header, BODY, T - 300, DEFAULT_TOLERANCE), Ok(()));
        // Unknown keys are ignored; spaces after commas are tolerated.
        let extended = format!("t={T}, v0=abc, v1={KNOWN_V1}");
        assert_eq!(verify(SECRET, &extended, BODY, T, DEFAULT_TOLERANCE), Ok(()));
    }

    #[test]
    fn any_matching_v1_verifies_during_rotation() {
        let old = independent_v1(b"old-secret", &T.to_string(), BODY);
        let header = format!("t={T},v1={old},v1={KNOWN_V1}");
        assert_eq!(verify(SECRET, &header, BODY, T, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify(b"old-secret", &header, BODY, T, DEFAULT_TOLERANCE), Ok(()));
        assert_eq!(verify(b"other", &header, BODY, T, DEFAULT_TOLERANCE), Err(SignatureError::Mismatch));
    }

    #[test]
    fn tampered_body_or_wrong_secret_fails() {
        let header = sign(SECRET, T, BODY);
        let tampered = br#"{"event":"export.ready","cursor":"r-0003"}"#;
        assert_eq!(verify(SECRET, &header, tampered, T, DEFAULT_TOLERANCE), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"wrong", &header, BODY, T, DEFAULT_TOLERANCE), Err(SignatureError::Mismatch));
        // A changed timestamp breaks the MAC too.
        let moved = header.replacen("t=1700000000", "t=1700000001", 1);
        assert_eq!(verify(SECRET, &moved, BODY, T, DEFAULT_TOLERANCE), Err(SignatureError::Mismatch));
    }

    #[test]
    fn timestamps_outside_the_window_fail_both_ways() {
        let header = sign(SECRET, T, BODY);
        let late = verify(SECRET, &header, BODY, T + 301, DEFAULT_TOLERANCE);
        assert_eq!(late, Err(SignatureError::OutsideWindow { timestamp: T, now: T + 301, tolerance_secs: 300 }));
        let early = verify(SECRET, &header, BODY, T - 301, DEFAULT_TOLERANCE);
        assert_eq!(early, Err(SignatureError::OutsideWindow { timestamp: T, now: T - 301, tolerance_secs: 300 }));
    }

    #[test]
    fn malformed_headers_fail() {
        let v1 = KNOWN_V1;
        let cases = [
            String::new(),
            "garbage".to_owned(),
            format!("v1={v1}"),
            format!("t={T}"),
            format!("t=abc,v1={v1}"),
            format!("t=-5,v1={v1}"),
            format!("t={T},t={T},v1={v1}"),
            format!("t={T},v1=zz{}", &v1[2..]),
            format!("t={T},v1={}", &v1[..62]),
            format!("t={T};v1={v1}"),
        ];
        for header in cases {
            assert!(
                matches!(verify(SECRET, &header, BODY, T, DEFAULT_TOLERANCE), Err(SignatureError::Malformed(_))),
                "{header:?} should be malformed"
            );
        }
    }

    fn fast_client(url: String) -> WebhookClient {
        let mut config = WebhookConfig::new(url, SECRET.to_vec());
        config.retry =
            RetryPolicy { max_attempts: 4, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) };
        config.timeout = Duration::from_secs(5);
        WebhookClient::new(config).unwrap()
    }

    #[tokio::test]
    async fn webhook_is_signed_and_retried_on_5xx_and_429() {
        let (base, log) = serve(|i, req| {
            let header = req.header(SIGNATURE_HEADER).unwrap_or_default();
            if verify(SECRET, header, &req.body, Utc::now().timestamp(), DEFAULT_TOLERANCE).is_err() {
                return Reply::new(401, "bad signature");
            }
            match i {
                0 => Reply::new(500, "oops"),
                1 => Reply::new(429, "slow down"),
                _ => Reply::new(204, ""),
            }
        })
        .await;
        let payload = serde_json::json!({ "event": "export.ready", "cursor": "r-0002" });
        fast_client(format!("{base}/hooks/lyceum")).send_json(&payload).await.unwrap();

        let log = log.lock().unwrap();
        assert_eq!(log.len(), 3);
        for req in log.iter() {
            assert_eq!(req.method, "POST");
            assert_eq!(req.path, "/hooks/lyceum");
            assert_eq!(req.header("Content-Type"), Some("application/json"));
            assert_eq!(serde_json::from_slice::<serde_json::Value>(&req.body).unwrap(), payload);
            // Check the MAC independently of `verify`.
            let header = req.header(SIGNATURE_HEADER).unwrap();
            let (t, v1) = header.strip_prefix("t=").unwrap().split_once(",v1=").unwrap();
            assert_eq!(v1, independent_v1(SECRET, t, &req.body));
        }
    }

    #[tokio::test]
    async fn webhook_4xx_is_not_retried() {
        let (base, log) = serve(|_, _| Reply::new(410, "endpoint retired")).await;
        let err = fast_client(base).send_json(&serde_json::json!({})).await.unwrap_err();
        assert!(matches!(&err, DeliveryError::Rejected { status: 410, body } if body == "endpoint retired"), "{err:?}");
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = WebhookConfig::new("https://partner.example/hook", SECRET.to_vec());
        assert!(!format!("{config:?}").contains("whsec"));
        assert!(!format!("{:?}", WebhookClient::new(config).unwrap()).contains("whsec"));
    }
}

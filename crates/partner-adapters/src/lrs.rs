//! Sends xAPI statements to a Learning Record Store.

use std::fmt;
use std::time::Duration;

use reqwest::{Url, header};

use crate::records::SharedRecord;
use crate::retry::{DeliveryError, RetryPolicy, http_client, send_with_retry};
use crate::xapi::{Statement, XAPI_VERSION, XapiOptions, statements};

/// Where and how to send statements.
#[derive(Clone)]
pub struct LrsConfig {
    /// The LRS's xAPI endpoint, e.g. `https://lrs.example/xapi`; statements
    /// are POSTed to `<endpoint>/statements`.
    pub endpoint: String,
    /// HTTP Basic credentials (the LRS's key and secret).
    pub username: String,
    pub password: String,
    pub retry: RetryPolicy,
    /// Limit of one attempt, connection to last byte.
    pub timeout: Duration,
    /// Statements per POST in [`LrsClient::post_records`].
    pub batch_size: usize,
}

impl LrsConfig {
    /// Default retry policy, 30 s timeout, 100 statements per POST.
    pub fn new(endpoint: impl Into<String>, username: impl Into<String>, password: impl Into<String>) -> Self {
        LrsConfig {
            endpoint: endpoint.into(),
            username: username.into(),
            password: password.into(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            batch_size: 100,
        }
    }
}

/// POSTs statement batches to `<endpoint>/statements` with Basic auth and
/// `X-Experience-API-Version: 1.0.3`, retrying as [`crate::retry`] says.
///
/// Statement ids are deterministic, so a batch retried after the LRS stored
/// part of it holds the same statements; an LRS answers a statement id it
/// already holds with different content by 409, which fails at once.
#[derive(Clone)]
pub struct LrsClient {
    http: reqwest::Client,
    statements_url: Url,
    username: String,
    password: String,
    retry: RetryPolicy,
    batch_size: usize,
}

impl fmt::Debug for LrsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LrsConfig")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl fmt::Debug for LrsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LrsClient")
            .field("statements_url", &self.statements_url.as_str())
            .field("username", &self.username)
            .field("retry", &self.retry)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl LrsClient {
    pub fn new(config: LrsConfig) -> Result<Self, DeliveryError> {
        let http = http_client(config.timeout)?;
        Self::with_http(config, http)
    }

    /// As [`LrsClient::new`], over an HTTP client the caller built (one
    /// that decides which addresses may be reached, say); its timeout and
    /// redirect policy are the caller's, and should follow no redirects.
    pub fn with_http(config: LrsConfig, http: reqwest::Client) -> Result<Self, DeliveryError> {
        let endpoint = config.endpoint.trim_end_matches('/');
        let statements_url = Url::parse(&format!("{endpoint}/statements"))
            .map_err(|e| DeliveryError::Config(format!("LRS endpoint {endpoint:?}: {e}")))?;
        if !matches!(statements_url.scheme(), "http" | "https") {
            return Err(DeliveryError::Config(format!("LRS endpoint {endpoint:?} is not http(s)")));
        }
        Ok(LrsClient {
            http,
            statements_url,
            username: config.username,
            password: config.password,
            retry: config.retry,
            batch_size: config.batch_size.max(1),
        })
    }

    /// The URL statements are POSTed to.
    pub fn statements_url(&self) -> &Url {
        &self.statements_url
    }

    /// POSTs `statements` as one batch. An empty slice sends nothing.
    pub async fn post_statements(&self, statements: &[Statement]) -> Result<(), DeliveryError> {
        if statements.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(statements)?;
        send_with_retry(&self.retry, || {
            self.http
                .post(self.statements_url.clone())
                .basic_auth(&self.username, Some(&self.password))
                .header("X-Experience-API-Version", XAPI_VERSION)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await?;
        Ok(())
    }

    /// Maps `records` to statements and POSTs them in batches of the
    /// configured size, in order; stops at the first batch that fails.
    /// Returns the number of statements sent.
    pub async fn post_records(&self, records: &[SharedRecord], options: &XapiOptions) -> Result<usize, DeliveryError> {
        let mut sent = 0;
        let mut batch = Vec::with_capacity(self.batch_size);
        for rec in records {
            for s in statements(rec, options) {
                batch.push(s);
                if batch.len() == self.batch_size {
                    self.post_statements(&batch).await?;
                    sent += batch.len();
                    batch.clear();
                }
            }
        }
        self.post_statements(&batch).await?;
        Ok(sent + batch.len())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::Value;

    use super::*;
    use crate::fixtures;
    use crate::retry::Failure;
    use crate::test_server::{Received, Reply, serve};
    use crate::xapi::conformance;

    const USER: &str = "lrs-key";
    const PASS: &str = "lrs-s3cret";

    fn fast_retry(max_attempts: u32) -> RetryPolicy {
        RetryPolicy { max_attempts, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(20) }
    }

    fn client(base: &str, batch_size: usize) -> LrsClient {
        let mut config = LrsConfig::new(format!("{base}/xapi/"), USER, PASS);
        config.retry = fast_retry(3);
        config.timeout = Duration::from_secs(5);
        config.batch_size = batch_size;
        LrsClient::new(config).unwrap()
    }

    /// What a strict LRS checks before storing a batch.
    fn lrs_checks(req: &Received) -> Result<Vec<String>, String> {
        if req.method != "POST" || req.path != "/xapi/statements" {
            return Err(format!("unexpected {} {}", req.method, req.path));
        }
        if req.header("X-Experience-API-Version") != Some("1.0.3") {
            return Err("X-Experience-API-Version missing".into());
        }
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}")));
        if req.header("Authorization") != Some(expected.as_str()) {
            return Err(format!("bad Authorization {:?}", req.header("Authorization")));
        }
        if req.header("Content-Type") != Some("application/json") {
            return Err("Content-Type is not application/json".into());
        }
        let batch: Value = serde_json::from_slice(&req.body).map_err(|e| e.to_string())?;
        let batch = batch.as_array().ok_or("body is not an array")?;
        let mut ids = Vec::new();
        for s in batch {
            conformance::check(s, false)?;
            ids.push(s["id"].as_str().unwrap().to_owned());
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != ids.len() {
            return Err("duplicate statement ids in batch".into());
        }
        Ok(ids)
    }

    #[tokio::test]
    async fn statements_reach_the_lrs_and_a_503_is_retried() {
        let (base, log) = serve(|i, req| {
            if i == 0 {
                return Reply::new(503, r#"{"error":"warming up"}"#);
            }
            match lrs_checks(req) {
                Ok(ids) => Reply::new(200, serde_json::to_string(&ids).unwrap()),
                Err(e) => Reply::new(400, e),
            }
        })
        .await;
        let lrs = client(&base, 4);
        let records = fixtures::all();
        let sent = lrs.post_records(&records, &fixtures::xapi_options(true)).await.unwrap();
        assert_eq!(sent, 6);

        let log = log.lock().unwrap();
        // Batch 1 (4 statements): 503, then stored; batch 2 (2 statements): stored.
        assert_eq!(log.len(), 3);
        assert_eq!(log[0].body, log[1].body, "the retry resends the same batch");
        let mut ids = Vec::new();
        for req in &log[1..] {
            ids.extend(lrs_checks(req).unwrap());
        }
        let expected: Vec<String> = records
            .iter()
            .flat_map(|r| statements(r, &fixtures::xapi_options(true)))
            .map(|s| s.id.to_string())
            .collect();
        assert_eq!(ids, expected);
    }

    #[tokio::test]
    async fn a_400_is_not_retried() {
        let (base, log) = serve(|_, _| Reply::new(400, r#"{"message":"verb.id is not an IRI"}"#)).await;
        let lrs = client(&base, 100);
        let err = lrs.post_records(&fixtures::enrollments(), &fixtures::xapi_options(false)).await.unwrap_err();
        match &err {
            DeliveryError::Rejected { status: 400, body } => assert!(body.contains("verb.id is not an IRI")),
            other => panic!("expected Rejected 400, got {other:?}"),
        }
        assert_eq!(err.status(), Some(400));
        assert!(err.to_string().contains("HTTP 400"), "{err}");
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn persistent_5xx_gives_up_after_the_configured_attempts() {
        let (base, log) = serve(|_, _| Reply::new(502, "bad gateway")).await;
        let lrs = client(&base, 100);
        let err = lrs.post_records(&fixtures::enrollments(), &fixtures::xapi_options(false)).await.unwrap_err();
        assert!(
            matches!(&err, DeliveryError::RetriesExhausted { attempts: 3, last: Failure::Status { status: 502, .. } }),
            "{err:?}"
        );
        assert_eq!(log.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn connection_errors_are_retried() {
        // A port nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let lrs = client(&format!("http://127.0.0.1:{port}"), 100);
        let started = std::time::Instant::now();
        let err = lrs.post_records(&fixtures::enrollments(), &fixtures::xapi_options(false)).await.unwrap_err();
        assert!(
            matches!(&err, DeliveryError::RetriesExhausted { attempts: 3, last: Failure::Transport(_) }),
            "{err:?}"
        );
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
        // Two waits: 5 ms, then 10 ms.
        assert!(started.elapsed() >= Duration::from_millis(15));
    }

    #[test]
    fn endpoint_must_be_http() {
        assert!(matches!(LrsClient::new(LrsConfig::new("ftp://lrs", "u", "p")), Err(DeliveryError::Config(_))));
        assert!(matches!(LrsClient::new(LrsConfig::new("not a url", "u", "p")), Err(DeliveryError::Config(_))));
        let ok = LrsClient::new(LrsConfig::new("https://lrs.example/xapi/", USER, PASS)).unwrap();
        assert_eq!(ok.statements_url().as_str(), "https://lrs.example/xapi/statements");
        assert!(!format!("{ok:?}").contains("lrs-s3cret"));
        assert!(!format!("{:?}", LrsConfig::new("https://lrs", USER, PASS)).contains(PASS));
    }
}

//! Sends xAPI statements to a Learning Record Store.
//!
//! A batch the LRS refuses as a whole for what is in it (400, 409, 413, 422)
//! is split in halves, and the halves sent in turn, down to single
//! statements, so that one statement the LRS refuses never keeps the others
//! from it. A single statement refused is a [`Rejection`]: its id, the
//! status and the LRS's message. A 409 for a single statement whose id the
//! LRS already holds with the same content (xAPI 1.0.3 Data 2.3.1, Statement
//! Comparison Requirements) is a repeat, not a rejection: xAPI lets an LRS
//! answer a repeat with either 204 or 409, and a statement sent again after
//! a crash must count as delivered. Any other failure (401, 403, 404, a 3xx,
//! a 5xx or 429 after the retries) fails the whole send, as it says nothing
//! about one statement.

use std::fmt;
use std::time::Duration;

use reqwest::{Url, header};
use serde_json::Value;
use uuid::Uuid;

use crate::records::SharedRecord;
use crate::retry::{DeliveryError, RetryPolicy, http_client, send_with_retry};
use crate::xapi::{Statement, XAPI_VERSION, XapiOptions, statements};

/// At most this many characters of an LRS's message are kept in a [`Rejection`].
pub const MAX_REJECTION_MESSAGE: usize = 500;

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
    /// Statements per POST in [`LrsClient::send_statements`] and [`LrsClient::post_records`].
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

/// One statement the LRS refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub statement_id: Uuid,
    /// The HTTP status of the LRS's answer to that statement alone.
    pub status: u16,
    /// The LRS's answer, at most [`MAX_REJECTION_MESSAGE`] characters.
    pub message: String,
}

impl Rejection {
    fn new(statement_id: Uuid, status: u16, body: &str) -> Self {
        let body = body.trim();
        let message = match body.char_indices().nth(MAX_REJECTION_MESSAGE) {
            Some((end, _)) => format!("{}…", &body[..end]),
            None => body.to_string(),
        };
        Rejection { statement_id, status, message }
    }
}

/// What became of the statements of a send that was not failed as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// Statements the LRS stored, or already held with the same content.
    pub accepted: usize,
    /// Statements the LRS refused, in the order they were given.
    pub rejected: Vec<Rejection>,
}

/// A status by which an LRS refuses a batch for its content: something in it
/// is invalid (400, 422), conflicts with a stored statement (409) or is too
/// large (413). Splitting the batch finds what. Other statuses concern the
/// request as a whole (credentials, endpoint, rate) and fail the send.
fn refused_for_content(status: u16) -> bool {
    matches!(status, 400 | 409 | 413 | 422)
}

/// POSTs statement batches to `<endpoint>/statements` with Basic auth and
/// `X-Experience-API-Version: 1.0.3`, retrying as [`crate::retry`] says.
///
/// Statement ids are deterministic, so a batch retried after the LRS stored
/// part of it holds the same statements, which the LRS takes as repeats.
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

    /// POSTs `statements` as one batch, all or nothing: any refusal is an
    /// error. An empty slice sends nothing.
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

    /// Sends any list of statements in batches of the configured size, in
    /// order, so that statements the LRS refuses one by one are reported in
    /// [`Sent::rejected`] and every other statement reaches it. An error
    /// means the send as a whole failed (see the module doc); statements of
    /// earlier batches may have been stored, and sending the same list again
    /// repeats them harmlessly.
    pub async fn send_statements(&self, statements: &[Statement]) -> Result<Sent, DeliveryError> {
        let mut sent = Sent::default();
        for batch in statements.chunks(self.batch_size) {
            self.send_batch(batch, &mut sent).await?;
        }
        Ok(sent)
    }

    /// Sends one batch; a batch refused for its content is split in halves,
    /// each sent in turn (first half first), down to single statements.
    async fn send_batch(&self, batch: &[Statement], sent: &mut Sent) -> Result<(), DeliveryError> {
        let mut pending = vec![batch];
        while let Some(part) = pending.pop() {
            match self.post_statements(part).await {
                Ok(()) => sent.accepted += part.len(),
                Err(DeliveryError::Rejected { status, body }) if refused_for_content(status) => match part {
                    [one] if status == 409 && self.holds_same(one).await? => sent.accepted += 1,
                    [one] => sent.rejected.push(Rejection::new(one.id, status, &body)),
                    _ => {
                        let (first, second) = part.split_at(part.len() / 2);
                        pending.push(second);
                        pending.push(first);
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether the LRS holds a statement under `statement`'s id that matches
    /// it. False when it cannot tell (no such statement, or reading is not
    /// allowed to these credentials); an error when the LRS cannot be reached.
    async fn holds_same(&self, statement: &Statement) -> Result<bool, DeliveryError> {
        let mut url = self.statements_url.clone();
        url.query_pairs_mut().append_pair("statementId", &statement.id.to_string());
        let response = send_with_retry(&self.retry, || {
            self.http
                .get(url.clone())
                .basic_auth(&self.username, Some(&self.password))
                .header("X-Experience-API-Version", XAPI_VERSION)
        })
        .await;
        let answer: Value = match response {
            Ok(response) => match response.json().await {
                Ok(answer) => answer,
                Err(_) => return Ok(false),
            },
            Err(DeliveryError::Rejected { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let sent = serde_json::to_value(statement)?;
        // xAPI answers the statement itself; some LRSs (Ralph) a StatementResult.
        let stored = match answer.get("statements").and_then(Value::as_array) {
            Some(list) => list.iter().find(|s| same_uuid(&s["id"], &sent["id"])),
            None => Some(&answer),
        };
        Ok(stored.is_some_and(|stored| statements_match(&sent, stored)))
    }

    /// Maps `records` to statements and sends them as
    /// [`LrsClient::send_statements`] does, without holding more than one
    /// batch of statements.
    pub async fn post_records(&self, records: &[SharedRecord], options: &XapiOptions) -> Result<Sent, DeliveryError> {
        let mut sent = Sent::default();
        let mut batch = Vec::with_capacity(self.batch_size);
        for rec in records {
            for s in statements(rec, options) {
                batch.push(s);
                if batch.len() == self.batch_size {
                    self.send_batch(&batch, &mut sent).await?;
                    batch.clear();
                }
            }
        }
        if !batch.is_empty() {
            self.send_batch(&batch, &mut sent).await?;
        }
        Ok(sent)
    }
}

/// Whether `stored`, as an LRS returns it, is the statement `sent`, under
/// xAPI 1.0.3 Data 2.3.1: what an LRS assigns or may add (`authority`,
/// `stored`, `version`, attachments), a Verb's `display` and an Activity's
/// `definition` are not part of the statement; a `timestamp` is compared as
/// the instant it names; the id as a UUID (any case); numbers as numbers;
/// the members of a Group in any order. Everything else must be equal.
pub fn statements_match(sent: &Value, stored: &Value) -> bool {
    let (Some(sent), Some(stored)) = (sent.as_object(), stored.as_object()) else { return false };
    const ASSIGNED: &[&str] = &["authority", "stored", "version", "attachments"];
    let keys = |o: &serde_json::Map<String, Value>| -> Vec<String> {
        let mut k: Vec<String> = o.keys().filter(|k| !ASSIGNED.contains(&k.as_str())).cloned().collect();
        k.sort();
        k
    };
    if keys(sent) != keys(stored) {
        return false;
    }
    keys(sent).iter().all(|k| {
        let (a, b) = (&sent[k], &stored[k]);
        match k.as_str() {
            "id" => same_uuid(a, b),
            "timestamp" => same_instant(a, b),
            "verb" => same_value(&without(a, &["display"]), &without(b, &["display"])),
            "object" => same_object(a, b),
            "actor" => same_agent(a, b),
            "context" => same_context(a, b),
            _ => same_value(a, b),
        }
    })
}

fn same_uuid(a: &Value, b: &Value) -> bool {
    match (a.as_str().map(Uuid::parse_str), b.as_str().map(Uuid::parse_str)) {
        (Some(Ok(a)), Some(Ok(b))) => a == b,
        _ => false,
    }
}

fn same_instant(a: &Value, b: &Value) -> bool {
    let parse = |v: &Value| v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    matches!((parse(a), parse(b)), (Some(a), Some(b)) if a == b)
}

/// Equal as JSON values, numbers compared by value (`1` and `1.0` alike).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64().is_some_and(|x| y.as_f64() == Some(x)),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// An Activity's definition is not part of the statement, and its
/// `objectType` may be given or left out; another statement as object (a
/// StatementRef) is compared by its id.
fn same_object(a: &Value, b: &Value) -> bool {
    let object_type = |v: &Value| v.get("objectType").and_then(Value::as_str).unwrap_or("Activity").to_string();
    match (object_type(a).as_str(), object_type(b).as_str()) {
        ("Activity", "Activity") => {
            same_value(&without(a, &["definition", "objectType"]), &without(b, &["definition", "objectType"]))
        }
        ("StatementRef", "StatementRef") => same_uuid(&a["id"], &b["id"]),
        ("Agent" | "Group", _) => same_agent(a, b),
        _ => same_value(a, b),
    }
}

/// `v` without the properties `ignored`.
fn without(v: &Value, ignored: &[&str]) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !ignored.contains(&k.as_str()));
    }
    v
}

/// An Agent's `objectType` given or left out; a Group's members in any order.
fn same_agent(a: &Value, b: &Value) -> bool {
    let agent = |v: &Value| match v.get("objectType").and_then(Value::as_str) {
        Some("Agent") => without(v, &["objectType"]),
        _ => v.clone(),
    };
    let (a, b) = (agent(a), agent(b));
    let members = |v: &Value| v.get("member").and_then(Value::as_array).cloned();
    match (members(&a), members(&b)) {
        (None, None) => same_value(&a, &b),
        (Some(x), Some(y)) => {
            let mut unmatched: Vec<Value> = y.iter().map(agent).collect();
            let all_found = x.iter().map(agent).all(|m| match unmatched.iter().position(|n| same_value(&m, n)) {
                Some(i) => {
                    unmatched.swap_remove(i);
                    true
                }
                None => false,
            });
            all_found && unmatched.is_empty() && same_value(&without(&a, &["member"]), &without(&b, &["member"]))
        }
        _ => false,
    }
}

/// Context: `instructor` and `team` are agents; the rest as JSON.
fn same_context(a: &Value, b: &Value) -> bool {
    let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else { return same_value(a, b) };
    x.len() == y.len()
        && x.iter().all(|(k, v)| {
            y.get(k).is_some_and(|w| match k.as_str() {
                "instructor" | "team" => same_agent(v, w),
                "registration" => same_uuid(v, w),
                _ => same_value(v, w),
            })
        })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};

    use base64::Engine;

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
        assert_eq!(sent, Sent { accepted: 6, rejected: Vec::new() });

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
        let batch = all_statements();
        let err = lrs.post_statements(&batch).await.unwrap_err();
        match &err {
            DeliveryError::Rejected { status: 400, body } => assert!(body.contains("verb.id is not an IRI")),
            other => panic!("expected Rejected 400, got {other:?}"),
        }
        assert_eq!(err.status(), Some(400));
        assert!(err.to_string().contains("HTTP 400"), "{err}");
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    fn all_statements() -> Vec<Statement> {
        fixtures::all().iter().flat_map(|r| statements(r, &fixtures::xapi_options(true))).collect()
    }

    /// A strict LRS: refuses a batch with 400 when it holds a statement it
    /// finds invalid (here: an id in `invalid`), with 409 when it holds an id
    /// it already stores (whether or not the content differs, as xAPI
    /// permits), and stores nothing of a refused batch. `GET ?statementId=`
    /// returns a stored statement as an LRS does: with `stored`, `authority`
    /// and `version` added, the timestamp in another zone, and without the
    /// verb's display.
    struct StrictLrs {
        held: Mutex<HashMap<String, Value>>,
        invalid: HashSet<String>,
        /// The status of reads (200 when they are allowed).
        reads: u16,
        /// Answer a read with a StatementResult, as Ralph does, rather than
        /// the statement itself.
        wrapped: bool,
    }

    impl StrictLrs {
        fn new(invalid: &[&Statement]) -> Arc<Self> {
            Arc::new(StrictLrs {
                held: Mutex::default(),
                invalid: invalid.iter().map(|s| s.id.to_string()).collect(),
                reads: 200,
                wrapped: false,
            })
        }

        fn hold(&self, statement: Value) {
            let id = statement["id"].as_str().unwrap().to_owned();
            self.held.lock().unwrap().insert(id, statement);
        }

        fn held_ids(&self) -> HashSet<String> {
            self.held.lock().unwrap().keys().cloned().collect()
        }

        fn reply(&self, req: &Received) -> Reply {
            if req.method == "GET" {
                let Some(id) = req.path.strip_prefix("/xapi/statements?statementId=") else {
                    return Reply::new(400, "unexpected query");
                };
                if self.reads != 200 {
                    return Reply::new(self.reads, r#"{"detail":"not allowed to read"}"#);
                }
                return match self.held.lock().unwrap().get(id) {
                    Some(s) => {
                        let mut s = s.clone();
                        s["stored"] = "2025-07-01T00:00:00.000+00:00".into();
                        s["authority"] = serde_json::json!({ "mbox": "mailto:lrs@example.org" });
                        s["version"] = "1.0.3".into();
                        let t = chrono::DateTime::parse_from_rfc3339(s["timestamp"].as_str().unwrap()).unwrap();
                        let zone = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
                        s["timestamp"] = t.with_timezone(&zone).to_rfc3339().into();
                        s["verb"].as_object_mut().unwrap().remove("display");
                        if self.wrapped {
                            s = serde_json::json!({ "statements": [s] });
                        }
                        Reply::new(200, s.to_string())
                    }
                    None => Reply::new(404, r#"{"detail":"no such statement"}"#),
                };
            }
            let ids = match lrs_checks(req) {
                Ok(ids) => ids,
                Err(e) => return Reply::new(400, e),
            };
            if let Some(id) = ids.iter().find(|id| self.invalid.contains(*id)) {
                return Reply::new(400, format!(r#"{{"detail":"statement {id}: result.score.scaled out of range"}}"#));
            }
            let mut held = self.held.lock().unwrap();
            if let Some(id) = ids.iter().find(|id| held.contains_key(*id)) {
                return Reply::new(409, format!(r#"{{"detail":"a statement with id {id} is already stored"}}"#));
            }
            let batch: Vec<Value> = serde_json::from_slice(&req.body).unwrap();
            for s in batch {
                held.insert(s["id"].as_str().unwrap().to_owned(), s);
            }
            Reply::new(200, serde_json::to_string(&ids).unwrap())
        }
    }

    async fn serve_lrs(lrs: Arc<StrictLrs>) -> (String, crate::test_server::Log) {
        serve(move |_, req| lrs.reply(req)).await
    }

    #[tokio::test]
    async fn a_refused_statement_is_reported_and_every_other_statement_is_stored() {
        let all = all_statements();
        assert_eq!(all.len(), 6);
        let lrs = StrictLrs::new(&[&all[1]]);
        let (base, log) = serve_lrs(lrs.clone()).await;
        let sent = client(&base, 4).send_statements(&all).await.unwrap();

        assert_eq!(sent.accepted, 5);
        assert_eq!(sent.rejected.len(), 1);
        let r = &sent.rejected[0];
        assert_eq!((r.statement_id, r.status), (all[1].id, 400));
        assert!(r.message.contains("result.score.scaled out of range"), "{}", r.message);
        let expected: HashSet<String> = all.iter().filter(|s| s.id != all[1].id).map(|s| s.id.to_string()).collect();
        assert_eq!(lrs.held_ids(), expected);
        // The batch of 4 is split, not sent one by one: [0 1 2 3] refused,
        // [0 1] refused, [0] stored, [1] refused, [2 3] stored; then [4 5].
        let sizes: Vec<usize> =
            log.lock().unwrap().iter().map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).unwrap().len()).collect();
        assert_eq!(sizes, [4, 2, 1, 1, 2, 2]);
    }

    #[tokio::test]
    async fn a_409_for_the_same_statement_is_a_repeat_and_for_another_a_rejection() {
        for wrapped in [false, true] {
            a_409_read_back(wrapped).await;
        }
    }

    async fn a_409_read_back(wrapped: bool) {
        let all = all_statements();
        let lrs = Arc::new(StrictLrs { held: Mutex::default(), invalid: HashSet::new(), reads: 200, wrapped });
        // Sent before (the run that crashed before recording its success) …
        lrs.hold(serde_json::to_value(&all[0]).unwrap());
        // … and a statement stored under the id of another with other content.
        let mut other = serde_json::to_value(&all[3]).unwrap();
        other["verb"]["id"] = "http://adlnet.gov/expapi/verbs/attempted".into();
        lrs.hold(other.clone());
        let (base, _log) = serve_lrs(lrs.clone()).await;
        let sent = client(&base, 100).send_statements(&all).await.unwrap();

        assert_eq!(sent.accepted, 5, "{sent:?}");
        assert_eq!(sent.rejected.len(), 1, "{sent:?}");
        assert_eq!((sent.rejected[0].statement_id, sent.rejected[0].status), (all[3].id, 409));
        assert!(sent.rejected[0].message.contains("already stored"));
        let held = lrs.held.lock().unwrap();
        assert_eq!(held.len(), 6);
        assert_eq!(held[&all[3].id.to_string()], other, "the LRS's statement is left as it was");
    }

    #[tokio::test]
    async fn a_409_the_credentials_cannot_read_back_is_a_rejection() {
        let all = all_statements();
        let lrs = Arc::new(StrictLrs { held: Mutex::default(), invalid: HashSet::new(), reads: 403, wrapped: false });
        lrs.hold(serde_json::to_value(&all[0]).unwrap());
        let (base, _log) = serve_lrs(lrs.clone()).await;
        let sent = client(&base, 100).send_statements(&all).await.unwrap();
        assert_eq!(sent.accepted, 5);
        assert_eq!(sent.rejected.iter().map(|r| (r.statement_id, r.status)).collect::<Vec<_>>(), [(all[0].id, 409)]);
    }

    #[tokio::test]
    async fn refusals_of_the_request_itself_fail_the_send_without_splitting() {
        let all = all_statements();
        for status in [401, 403, 404] {
            let (base, log) = serve(move |_, _| Reply::new(status, r#"{"detail":"no"}"#)).await;
            let err = client(&base, 100).send_statements(&all).await.unwrap_err();
            assert_eq!(err.status(), Some(status), "{err}");
            assert_eq!(log.lock().unwrap().len(), 1, "HTTP {status} is not split");
        }
        let (base, log) = serve(|_, _| Reply::new(429, r#"{"detail":"slow down"}"#)).await;
        let err = client(&base, 100).send_statements(&all).await.unwrap_err();
        assert!(matches!(err, DeliveryError::RetriesExhausted { attempts: 3, .. }), "{err:?}");
        assert_eq!(log.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_rejection_keeps_a_bounded_message() {
        let all = all_statements();
        let long = format!("{{\"detail\":\"{}\"}}", "é".repeat(3000));
        let (base, _log) = serve(move |_, _| Reply::new(422, long.clone())).await;
        let sent = client(&base, 100).send_statements(&all[..1]).await.unwrap();
        let r = &sent.rejected[0];
        assert_eq!(r.status, 422);
        assert_eq!(r.message.chars().count(), MAX_REJECTION_MESSAGE + 1);
        assert!(r.message.starts_with("{\"detail\":\"éé") && r.message.ends_with('…'));
    }

    #[test]
    fn statements_match_by_the_xapi_comparison_rules() {
        let s = serde_json::to_value(&all_statements()[5]).unwrap();
        let same = |f: &dyn Fn(&mut Value)| {
            let mut t = s.clone();
            f(&mut t);
            statements_match(&s, &t)
        };
        assert!(same(&|_| {}));
        // What an LRS adds or may serialize otherwise.
        assert!(same(&|t| t["stored"] = "2025-07-01T00:00:00Z".into()));
        assert!(same(&|t| t["authority"] = serde_json::json!({ "mbox": "mailto:lrs@example.org" })));
        assert!(same(&|t| t["version"] = "1.0.0".into()));
        assert!(same(&|t| t["id"] = t["id"].as_str().unwrap().to_uppercase().into()));
        assert!(same(&|t| {
            let at = chrono::DateTime::parse_from_rfc3339(t["timestamp"].as_str().unwrap()).unwrap();
            t["timestamp"] = at.with_timezone(&chrono::FixedOffset::west_opt(5 * 3600).unwrap()).to_rfc3339().into();
        }));
        assert!(same(&|t| t["verb"]["display"] = serde_json::json!({ "fr-FR": "réussi" })));
        assert!(same(&|t| t["object"]["definition"] = serde_json::json!({ "name": { "en": "renamed" } })));
        assert!(same(&|t| {
            t["object"].as_object_mut().unwrap().remove("objectType");
            t["actor"].as_object_mut().unwrap().remove("objectType");
        }));
        // What changes the statement.
        assert!(!same(&|t| t["verb"]["id"] = "http://adlnet.gov/expapi/verbs/failed".into()));
        assert!(!same(&|t| t["timestamp"] = "2020-01-01T00:00:00Z".into()));
        assert!(!same(&|t| t["result"]["score"]["scaled"] = 0.5.into()));
        assert!(!same(&|t| t["actor"]["account"]["name"] = "someone-else".into()));
        assert!(!same(&|t| t["object"]["id"] = "https://lyceum.example/courses/other/".into()));
        assert!(!same(&|t| t["context"]["platform"] = "Other".into()));
        assert!(!same(&|t| {
            t.as_object_mut().unwrap().remove("result");
        }));
        assert!(!statements_match(&s, &Value::Null));
        // Numbers by value; Group members in any order.
        let a = serde_json::json!({ "id": "0b0e7bb6-7b0f-4bde-9a11-2a7d3e0c9d01", "result": { "score": { "raw": 1 } },
            "actor": { "objectType": "Group", "member": [ { "mbox": "mailto:a@x.org" }, { "objectType": "Agent", "mbox": "mailto:b@x.org" } ] } });
        let b = serde_json::json!({ "id": "0b0e7bb6-7b0f-4bde-9a11-2a7d3e0c9d01", "result": { "score": { "raw": 1.0 } },
            "actor": { "objectType": "Group", "member": [ { "mbox": "mailto:b@x.org" }, { "mbox": "mailto:a@x.org" } ] } });
        assert!(statements_match(&a, &b));
        let mut c = b.clone();
        c["actor"]["member"][1]["mbox"] = "mailto:c@x.org".into();
        assert!(!statements_match(&a, &c));
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

//! xAPI 1.0.3 statements.
//!
//! | record | statements (verb under `http://adlnet.gov/expapi/verbs/`) |
//! | --- | --- |
//! | enrollment | `registered`, at `enrolled_at`; `track` and `status` as context extensions |
//! | progress | `progressed`, at `last_activity_at`; `result.extensions` cmi5 `progress` (integer 0..=100) and the unit counts |
//! | result | `passed` / `failed` when `passed` is known (`result.success`), `completed` when `completed_at` is known (`result.completion`), `scored` when only the grade is known; the grade, when known, goes on the first of these as `result.score.scaled` (`grade_percent / 100`) |
//!
//! Every statement has a deterministic `id`, a UUID v5 over the record's
//! cursor and the verb id, so a replayed export sends identical statements
//! that an LRS recognises. The actor is an `account` agent
//! (`homePage` = the platform's base URL, `name` = the learner's id, a
//! pseudonym unless identity is covered); only when the caller opts in to
//! identified actors does a known email become the actor's `mbox` (replacing
//! the account, so the actor keeps exactly one identifier) and a known name
//! its `name`. The object is the course activity (`id` = course URL). A
//! `None` becomes an omitted property: a statement whose time is unknown
//! has no `timestamp` (the LRS then uses the time it stored it).
//!
//! Lyceum's own extensions are IRIs under `<base url>/xapi/extensions/`:
//! `run` and `member` (context, every statement), `track` and `status`
//! (context, registrations), `units-completed` and `units-total` (result).

use std::collections::BTreeMap;
use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::adapter::Adapter;
use crate::records::{CourseRef, Learner, SharedEnrollment, SharedProgress, SharedRecord, SharedResult};

pub const XAPI_VERSION: &str = "1.0.3";
pub const VERB_REGISTERED: &str = "http://adlnet.gov/expapi/verbs/registered";
pub const VERB_PROGRESSED: &str = "http://adlnet.gov/expapi/verbs/progressed";
pub const VERB_COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
pub const VERB_PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
pub const VERB_FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";
pub const VERB_SCORED: &str = "http://adlnet.gov/expapi/verbs/scored";
pub const ACTIVITY_TYPE_COURSE: &str = "http://adlnet.gov/expapi/activities/course";
pub const EXT_CMI5_PROGRESS: &str = "https://w3id.org/xapi/cmi5/result/extensions/progress";
/// `context.platform` of every statement.
pub const PLATFORM: &str = "Lyceum";

/// Namespace of the UUID v5 statement ids. Never change it: ids of replayed
/// statements would change with it.
pub const STATEMENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x982dab86_48ab_4edb_ba11_af9f9e2f02c1);

/// How records become statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XapiOptions {
    /// The platform's base URL, e.g. `https://lyceum.example`: the actors'
    /// `account.homePage` and the base of Lyceum's extension IRIs.
    pub platform_base_url: String,
    /// Opt-in: use a learner's email (`mbox`) and name in the actor when the
    /// consent gate supplied them. Off by default: actors are accounts.
    pub identified_actors: bool,
}

impl XapiOptions {
    pub fn new(platform_base_url: impl Into<String>) -> Self {
        XapiOptions { platform_base_url: platform_base_url.into(), identified_actors: false }
    }

    fn base(&self) -> &str {
        self.platform_base_url.trim_end_matches('/')
    }

    /// The IRI of one of Lyceum's extensions, e.g. `run`.
    pub fn extension_iri(&self, name: &str) -> String {
        format!("{}/xapi/extensions/{name}", self.base())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub id: Uuid,
    pub actor: Agent,
    pub verb: Verb,
    pub object: Activity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<StatementResult>,
    pub context: Context,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    #[serde(rename = "objectType")]
    pub object_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mbox: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    #[serde(rename = "homePage")]
    pub home_page: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verb {
    pub id: &'static str,
    pub display: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    #[serde(rename = "objectType")]
    pub object_type: &'static str,
    pub id: String,
    pub definition: ActivityDefinition,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityDefinition {
    pub name: BTreeMap<&'static str, String>,
    #[serde(rename = "type")]
    pub activity_type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StatementResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, Value>,
}

impl StatementResult {
    fn is_empty(&self) -> bool {
        self.score.is_none() && self.success.is_none() && self.completion.is_none() && self.extensions.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// In `-1.0..=1.0`.
    pub scaled: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Context {
    pub platform: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, Value>,
}

fn verb(id: &'static str) -> Verb {
    let word = id.rsplit('/').next().unwrap_or(id);
    Verb { id, display: BTreeMap::from([("en-US", word)]) }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The deterministic id of the statement with verb `verb_id` for the record at `cursor`.
pub fn statement_id(cursor: &str, verb_id: &str) -> Uuid {
    Uuid::new_v5(&STATEMENT_ID_NAMESPACE, format!("{cursor}\n{verb_id}").as_bytes())
}

fn actor(learner: &Learner, opts: &XapiOptions) -> Agent {
    let identified = opts.identified_actors;
    let mbox = learner.email.as_ref().filter(|_| identified).map(|e| format!("mailto:{e}"));
    let account = match mbox {
        Some(_) => None,
        None => Some(Account { home_page: opts.base().to_owned(), name: learner.id.clone() }),
    };
    Agent { object_type: "Agent", name: learner.name.clone().filter(|_| identified), mbox, account }
}

fn activity(course: &CourseRef) -> Activity {
    Activity {
        object_type: "Activity",
        id: course.url.clone(),
        definition: ActivityDefinition {
            name: BTreeMap::from([("en-US", course.title.clone())]),
            activity_type: ACTIVITY_TYPE_COURSE,
        },
    }
}

fn context(course: &CourseRef, opts: &XapiOptions) -> Context {
    let extensions = BTreeMap::from([
        (opts.extension_iri("run"), Value::from(course.run.clone())),
        (opts.extension_iri("member"), Value::from(course.member.clone())),
    ]);
    Context { platform: PLATFORM, extensions }
}

fn statement(
    cursor: &str,
    learner: &Learner,
    course: &CourseRef,
    verb_id: &'static str,
    at: Option<DateTime<Utc>>,
    result: StatementResult,
    opts: &XapiOptions,
) -> Statement {
    Statement {
        id: statement_id(cursor, verb_id),
        actor: actor(learner, opts),
        verb: verb(verb_id),
        object: activity(course),
        result: Some(result).filter(|r| !r.is_empty()),
        context: context(course, opts),
        timestamp: at.map(timestamp),
    }
}

fn registered(r: &SharedEnrollment, opts: &XapiOptions) -> Statement {
    let mut s = statement(
        &r.cursor,
        &r.learner,
        &r.course,
        VERB_REGISTERED,
        Some(r.enrolled_at),
        StatementResult::default(),
        opts,
    );
    s.context.extensions.insert(opts.extension_iri("track"), Value::from(r.track.clone()));
    s.context.extensions.insert(opts.extension_iri("status"), Value::from(r.status.clone()));
    s
}

fn progressed(r: &SharedProgress, opts: &XapiOptions) -> Statement {
    let mut result = StatementResult::default();
    if let Some(p) = r.progress_percent.filter(|p| p.is_finite()) {
        // cmi5 defines progress as an integer from 0 to 100.
        result.extensions.insert(EXT_CMI5_PROGRESS.to_owned(), Value::from(p.round().clamp(0.0, 100.0) as u8));
    }
    if let Some(n) = r.units_completed {
        result.extensions.insert(opts.extension_iri("units-completed"), Value::from(n));
    }
    if let Some(n) = r.units_total {
        result.extensions.insert(opts.extension_iri("units-total"), Value::from(n));
    }
    statement(&r.cursor, &r.learner, &r.course, VERB_PROGRESSED, r.last_activity_at, result, opts)
}

fn score(grade_percent: f64) -> Option<Score> {
    grade_percent
        .is_finite()
        .then(|| Score { scaled: ((grade_percent / 100.0).clamp(-1.0, 1.0) * 10_000.0).round() / 10_000.0 })
}

fn result_statements(r: &SharedResult, opts: &XapiOptions) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut grade = r.grade_percent.and_then(score);
    if let Some(passed) = r.passed {
        let verb_id = if passed { VERB_PASSED } else { VERB_FAILED };
        let result = StatementResult { score: grade.take(), success: Some(passed), ..Default::default() };
        out.push(statement(&r.cursor, &r.learner, &r.course, verb_id, r.completed_at, result, opts));
    }
    if let Some(at) = r.completed_at {
        let result = StatementResult { score: grade.take(), completion: Some(true), ..Default::default() };
        out.push(statement(&r.cursor, &r.learner, &r.course, VERB_COMPLETED, Some(at), result, opts));
    }
    if let Some(score) = grade {
        let result = StatementResult { score: Some(score), ..Default::default() };
        out.push(statement(&r.cursor, &r.learner, &r.course, VERB_SCORED, None, result, opts));
    }
    out
}

/// The statements for one record, in the order of the table in the module
/// doc. A result record with nothing known (grade, passed and completion all
/// `None`) yields none.
pub fn statements(rec: &SharedRecord, opts: &XapiOptions) -> Vec<Statement> {
    match rec {
        SharedRecord::Enrollment(r) => vec![registered(r, opts)],
        SharedRecord::Progress(r) => vec![progressed(r, opts)],
        SharedRecord::Result(r) => result_statements(r, opts),
    }
}

/// Writes statements as one JSON array (the body `POST /statements` takes),
/// one statement per line, without holding more than one record's statements.
pub struct XapiAdapter {
    options: XapiOptions,
    first: bool,
}

impl XapiAdapter {
    pub fn new(options: XapiOptions) -> Self {
        XapiAdapter { options, first: true }
    }
}

impl Adapter for XapiAdapter {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn file_extension(&self) -> &'static str {
        "json"
    }

    fn begin(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.first = true;
        out.write_all(b"[")
    }

    fn record(&mut self, rec: &SharedRecord, out: &mut dyn Write) -> io::Result<()> {
        for s in statements(rec, &self.options) {
            out.write_all(if self.first { b"\n" } else { b",\n" })?;
            self.first = false;
            serde_json::to_writer(&mut *out, &s)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(b"\n]\n")?;
        out.flush()
    }
}

/// Checks of a statement against the requirements of xAPI 1.0.3, used by
/// this crate's tests (the LRS test server runs them on what it receives).
#[cfg(test)]
pub(crate) mod conformance {
    use serde_json::Value;

    const STATEMENT_KEYS: &[&str] = &[
        "id",
        "actor",
        "verb",
        "object",
        "result",
        "context",
        "timestamp",
        "stored",
        "authority",
        "version",
        "attachments",
    ];
    const IFIS: &[&str] = &["mbox", "mbox_sha1sum", "openid", "account"];

    fn is_iri(s: &str) -> bool {
        reqwest::Url::parse(s).is_ok_and(|u| !u.cannot_be_a_base() || u.scheme() == "mailto")
    }

    /// Returns the first violation found, if any. `require_timestamp` adds
    /// a check that `timestamp` is present.
    pub fn check(s: &Value, require_timestamp: bool) -> Result<(), String> {
        let obj = s.as_object().ok_or("statement is not an object")?;
        if let Some(k) = obj.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
            return Err(format!("unknown statement property {k}"));
        }
        let id = obj.get("id").and_then(Value::as_str).ok_or("id missing")?;
        uuid::Uuid::parse_str(id).map_err(|e| format!("id {id} is not a UUID: {e}"))?;

        let actor = obj.get("actor").and_then(Value::as_object).ok_or("actor missing")?;
        match actor.get("objectType").and_then(Value::as_str) {
            None | Some("Agent") => {}
            Some(other) => return Err(format!("actor objectType {other}")),
        }
        let ifis: Vec<&str> = IFIS.iter().copied().filter(|k| actor.contains_key(*k)).collect();
        if ifis.len() != 1 {
            return Err(format!("actor has {} inverse functional identifiers: {ifis:?}", ifis.len()));
        }
        if let Some(mbox) = actor.get("mbox") {
            let mbox = mbox.as_str().ok_or("mbox not a string")?;
            if !mbox.starts_with("mailto:") || !mbox.contains('@') {
                return Err(format!("mbox {mbox} is not a mailto IRI"));
            }
        }
        if let Some(account) = actor.get("account") {
            let home = account.get("homePage").and_then(Value::as_str).ok_or("account.homePage missing")?;
            if !is_iri(home) {
                return Err(format!("account.homePage {home} is not an IRL"));
            }
            match account.get("name").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => {}
                _ => return Err("account.name missing".into()),
            }
        }
        if let Some(name) = actor.get("name") {
            name.as_str().ok_or("actor name not a string")?;
        }

        let verb_id = s.pointer("/verb/id").and_then(Value::as_str).ok_or("verb.id missing")?;
        if !is_iri(verb_id) {
            return Err(format!("verb.id {verb_id} is not an IRI"));
        }
        if let Some(display) = s.pointer("/verb/display") {
            let display = display.as_object().ok_or("verb.display not a language map")?;
            if display.values().any(|v| !v.is_string()) {
                return Err("verb.display not a language map".into());
            }
        }

        match s.pointer("/object/objectType").and_then(Value::as_str) {
            None | Some("Activity") => {}
            Some(other) => return Err(format!("object objectType {other}")),
        }
        let object_id = s.pointer("/object/id").and_then(Value::as_str).ok_or("object.id missing")?;
        if !is_iri(object_id) {
            return Err(format!("object.id {object_id} is not an IRI"));
        }

        match obj.get("timestamp") {
            Some(t) => {
                let t = t.as_str().ok_or("timestamp not a string")?;
                chrono::DateTime::parse_from_rfc3339(t).map_err(|e| format!("timestamp {t}: {e}"))?;
            }
            None if require_timestamp => return Err("timestamp missing".into()),
            None => {}
        }

        if let Some(scaled) = s.pointer("/result/score/scaled") {
            let scaled = scaled.as_f64().ok_or("score.scaled not a number")?;
            if !(-1.0..=1.0).contains(&scaled) {
                return Err(format!("score.scaled {scaled} out of range"));
            }
        }
        for path in ["/result/extensions", "/context/extensions"] {
            if let Some(ext) = s.pointer(path) {
                let ext = ext.as_object().ok_or(format!("{path} not an object"))?;
                if let Some(k) = ext.keys().find(|k| !is_iri(k)) {
                    return Err(format!("{path} key {k} is not an IRI"));
                }
            }
        }
        if let Some(platform) = s.pointer("/context/platform") {
            platform.as_str().ok_or("context.platform not a string")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::write_records;
    use crate::fixtures;

    fn xapi_output(records: &[SharedRecord], identified: bool) -> String {
        let mut out = Vec::new();
        write_records(&mut XapiAdapter::new(fixtures::xapi_options(identified)), records, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn snapshot_xapi_statements() {
        insta::assert_snapshot!(xapi_output(&fixtures::all(), false));
    }

    #[test]
    fn snapshot_xapi_identified_actors() {
        insta::assert_snapshot!(xapi_output(&fixtures::enrollments(), true));
    }

    #[test]
    fn output_is_a_json_array_of_conformant_statements() {
        for identified in [false, true] {
            let out = xapi_output(&fixtures::all(), identified);
            let v: Value = serde_json::from_str(&out).unwrap();
            let arr = v.as_array().unwrap();
            // 2 registered, 2 progressed, passed + completed, failed.
            assert_eq!(arr.len(), 7);
            for s in arr {
                conformance::check(s, false).unwrap();
                assert_eq!(s.pointer("/context/platform").unwrap(), "Lyceum");
            }
        }
        let empty: Value = serde_json::from_str(&xapi_output(&[], false)).unwrap();
        assert_eq!(empty, Value::Array(vec![]));
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let opts = fixtures::xapi_options(false);
        let first: Vec<Uuid> = fixtures::all().iter().flat_map(|r| statements(r, &opts)).map(|s| s.id).collect();
        let again: Vec<Uuid> = fixtures::all().iter().flat_map(|r| statements(r, &opts)).map(|s| s.id).collect();
        assert_eq!(first, again);
        let mut unique = first.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), first.len());
        for id in &first {
            assert_eq!(id.get_version_num(), 5);
        }
        assert_eq!(first[0], statement_id("e-0001", VERB_REGISTERED));
    }

    #[test]
    fn pseudonymous_actor_is_an_account() {
        let opts = fixtures::xapi_options(true);
        let s = &statements(&fixtures::enrollments()[0], &opts)[0];
        let v = serde_json::to_value(&s.actor).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "objectType": "Agent",
                "account": { "homePage": "https://lyceum.example", "name": "p-5f1c9e2a" }
            })
        );
    }

    #[test]
    fn identified_actor_only_when_opted_in() {
        let rec = &fixtures::enrollments()[1];
        let off = serde_json::to_value(&statements(rec, &fixtures::xapi_options(false))[0].actor).unwrap();
        assert_eq!(
            off,
            serde_json::json!({
                "objectType": "Agent",
                "account": { "homePage": "https://lyceum.example", "name": "ada" }
            })
        );
        let on = serde_json::to_value(&statements(rec, &fixtures::xapi_options(true))[0].actor).unwrap();
        assert_eq!(
            on,
            serde_json::json!({ "objectType": "Agent", "name": "Ada King Lovelace", "mbox": "mailto:ada@example.org" })
        );
    }

    #[test]
    fn progress_and_scores() {
        let opts = fixtures::xapi_options(false);
        let p = &statements(&fixtures::progress()[1], &opts)[0];
        assert_eq!(p.verb.id, VERB_PROGRESSED);
        let r = p.result.as_ref().unwrap();
        assert_eq!(r.extensions[EXT_CMI5_PROGRESS], Value::from(58u8));
        assert_eq!(r.extensions["https://lyceum.example/xapi/extensions/units-completed"], Value::from(7));
        assert_eq!(p.timestamp.as_deref(), Some("2025-04-10T18:45:00.000Z"));

        let passed = statements(&fixtures::results()[0], &opts);
        assert_eq!(passed.iter().map(|s| s.verb.id).collect::<Vec<_>>(), [VERB_PASSED, VERB_COMPLETED]);
        let r = passed[0].result.as_ref().unwrap();
        assert_eq!(r.score.as_ref().unwrap().scaled, 0.875);
        assert_eq!(r.success, Some(true));
        assert_eq!(passed[1].result.as_ref().unwrap().completion, Some(true));
        assert!(passed[1].result.as_ref().unwrap().score.is_none());

        // Only a grade known: one `scored` statement, no timestamp.
        let SharedRecord::Result(mut only_grade) = fixtures::results()[0].clone() else { unreachable!() };
        only_grade.passed = None;
        only_grade.completed_at = None;
        let s = statements(&SharedRecord::Result(only_grade), &opts);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].verb.id, VERB_SCORED);
        assert!(s[0].timestamp.is_none());
    }

    #[test]
    fn result_with_nothing_known_yields_no_statement() {
        let rec = fixtures::strip_optionals(&fixtures::results()[0]);
        assert!(statements(&rec, &fixtures::xapi_options(true)).is_empty());
    }
}

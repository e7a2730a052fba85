//! xAPI 1.0.3 statements.
//!
//! | record | statements (verb under `http://adlnet.gov/expapi/verbs/`) |
//! | --- | --- |
//! | enrollment | `registered`, at `enrolled_at`; `track` and `status` as context extensions |
//! | progress | `progressed`, at `last_activity_at`, once anything has progressed (units or percent above zero); `result.extensions` cmi5 `progress` (integer 0..=100) and the unit counts |
//! | result | only for a learner who attempted something graded (`graded_at` known) or completed: `passed` when `passed` is true (`result.success`); `failed` only when `passed` is false *and* the outcome is final (`final_at` known: the run ended or access expired), never for a learner who can still pass; `completed` when `completed_at` is known (`result.completion`); `scored` when the grade is known and neither `passed` nor `failed` carries it. The grade goes on the first of these as `result.score.scaled` (`grade_percent / 100`) |
//!
//! Every statement has a `timestamp`: the time of the fact it states
//! (`enrolled_at`, `last_activity_at`, `completed_at`, `graded_at`,
//! `final_at`), or, where the gate withheld that time, the time the snapshot
//! was taken ([`XapiOptions::as_of`]).
//!
//! A statement's `id` is a UUID v5 over its whole content (actor, verb,
//! object, result, context, timestamp), the learner's id and the course run. The same fact
//! sent again is the same statement with the same id, which an LRS accepts
//! as a repeat; new progress is a new statement with a new id. Ids never
//! repeat with different content, which an LRS would refuse with 409.
//! The actor is an `account` agent
//! (`homePage` = the platform's base URL, `name` = the learner's id, a
//! pseudonym unless identity is covered); only when the caller opts in to
//! identified actors does a known email become the actor's `mbox` (replacing
//! the account, so the actor keeps exactly one identifier) and a known name
//! its `name`. The object is the course activity (`id` = course URL).
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
pub const VERB_VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";
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
    /// When the records were read through the gate: the timestamp of a
    /// statement whose own time the gate withheld.
    pub as_of: DateTime<Utc>,
}

impl XapiOptions {
    pub fn new(platform_base_url: impl Into<String>, as_of: DateTime<Utc>) -> Self {
        XapiOptions { platform_base_url: platform_base_url.into(), identified_actors: false, as_of }
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
    pub object: Object,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<StatementResult>,
    /// Absent on voiding statements: `context.platform` is for activities only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    pub timestamp: String,
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

/// A statement's object: the course activity, or (for a voiding
/// statement) a reference to the statement it voids.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Activity(Activity),
    StatementRef(StatementRef),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementRef {
    #[serde(rename = "objectType")]
    pub object_type: &'static str,
    pub id: Uuid,
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

/// The id of `statement` for the enrollment named by `enrollment`: a UUID v5
/// over that name and the statement's content (its `id` left out). Serialization is
/// deterministic (struct fields in declaration order, maps sorted), so equal
/// content gives an equal id.
pub fn statement_id(enrollment: &str, statement: &Statement) -> Uuid {
    let mut content = Vec::with_capacity(512);
    content.extend_from_slice(enrollment.as_bytes());
    content.push(b'\n');
    let unsigned = Statement { id: Uuid::nil(), ..statement.clone() };
    // Serializing these plain structs cannot fail; an empty body would still
    // give a stable id.
    let _ = serde_json::to_writer(&mut content, &unsigned);
    Uuid::new_v5(&STATEMENT_ID_NAMESPACE, &content)
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
    learner: &Learner,
    course: &CourseRef,
    verb_id: &'static str,
    at: Option<DateTime<Utc>>,
    result: StatementResult,
    opts: &XapiOptions,
) -> Statement {
    let mut s = Statement {
        id: Uuid::nil(),
        actor: actor(learner, opts),
        verb: verb(verb_id),
        object: Object::Activity(activity(course)),
        result: Some(result).filter(|r| !r.is_empty()),
        context: Some(context(course, opts)),
        timestamp: timestamp(at.unwrap_or(opts.as_of)),
    };
    s.id = statement_id(&enrollment_key(learner, course), &s);
    s
}

/// What names one enrollment in every export alike: the learner's id for
/// the partner and the course run. Cursors cannot serve, as each export
/// seals its own.
fn enrollment_key(learner: &Learner, course: &CourseRef) -> String {
    format!("{}\n{}\n{}", learner.id, course.id, course.run)
}

/// Gives `s` the id of its (possibly changed) content.
fn sealed(enrollment: &str, mut s: Statement) -> Statement {
    s.id = statement_id(enrollment, &s);
    s
}

fn registered(r: &SharedEnrollment, opts: &XapiOptions) -> Statement {
    let mut s =
        statement(&r.learner, &r.course, VERB_REGISTERED, Some(r.enrolled_at), StatementResult::default(), opts);
    if let Some(c) = s.context.as_mut() {
        c.extensions.insert(opts.extension_iri("track"), Value::from(r.track.clone()));
        c.extensions.insert(opts.extension_iri("status"), Value::from(r.status.clone()));
    }
    sealed(&enrollment_key(&r.learner, &r.course), s)
}

/// `None` while nothing has progressed: a learner who only enrolled is
/// told by `registered`, and a zero-progress statement per push would be
/// noise in the LRS.
fn progressed(r: &SharedProgress, opts: &XapiOptions) -> Option<Statement> {
    let moved = r.units_completed.is_some_and(|n| n > 0) || r.progress_percent.is_some_and(|p| p > 0.0);
    if !moved {
        return None;
    }
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
    Some(statement(&r.learner, &r.course, VERB_PROGRESSED, r.last_activity_at, result, opts))
}

fn score(grade_percent: f64) -> Option<Score> {
    grade_percent
        .is_finite()
        .then(|| Score { scaled: ((grade_percent / 100.0).clamp(-1.0, 1.0) * 10_000.0).round() / 10_000.0 })
}

fn result_statements(r: &SharedResult, opts: &XapiOptions) -> Vec<Statement> {
    let mut out = Vec::new();
    let attempted = r.graded_at.is_some() || r.completed_at.is_some() || r.passed == Some(true);
    if !attempted {
        // Nothing graded yet: a grade of 0 and `passed: false` are the
        // absence of a result, not a result.
        return out;
    }
    let mut grade = r.grade_percent.and_then(score);
    let outcome = match (r.passed, r.final_at) {
        (Some(true), _) => Some((VERB_PASSED, true, r.completed_at.or(r.graded_at))),
        (Some(false), Some(at)) => Some((VERB_FAILED, false, Some(at))),
        // Not passed yet, and the learner can still pass: no verdict.
        _ => None,
    };
    if let Some((verb_id, success, at)) = outcome {
        let result = StatementResult { score: grade.take(), success: Some(success), ..Default::default() };
        out.push(statement(&r.learner, &r.course, verb_id, at, result, opts));
    }
    if let Some(at) = r.completed_at {
        let result = StatementResult { score: grade.take(), completion: Some(true), ..Default::default() };
        out.push(statement(&r.learner, &r.course, VERB_COMPLETED, Some(at), result, opts));
    }
    if let Some(score) = grade {
        let result = StatementResult { score: Some(score), ..Default::default() };
        out.push(statement(&r.learner, &r.course, VERB_SCORED, r.graded_at, result, opts));
    }
    out
}

/// The statements for one record, in the order of the table in the module
/// doc. A result record with nothing known (grade, passed and completion all
/// `None`) yields none.
pub fn statements(rec: &SharedRecord, opts: &XapiOptions) -> Vec<Statement> {
    match rec {
        SharedRecord::Enrollment(r) => vec![registered(r, opts)],
        SharedRecord::Progress(r) => progressed(r, opts).into_iter().collect(),
        SharedRecord::Result(r) => result_statements(r, opts),
        // A departure voids statements by their ids, which only the sender
        // knows: see [`voiding`].
        SharedRecord::Departure(_) => Vec::new(),
    }
}

/// The statement that voids statement `target` (xAPI 1.0.3, Data 2.3.2):
/// verb `voided`, object a `StatementRef` to `target`, the platform itself
/// (an account named `lyceum` on its base URL) as actor, timestamped `at`
/// (the departure's time). Its id is a UUID v5 of its content, like every
/// statement's, so voiding again for the same departure re-sends the same
/// statement. Lyceum voids what a partner must no longer hold (a departure).
pub fn voiding(target: Uuid, at: DateTime<Utc>, opts: &XapiOptions) -> Statement {
    let mut s = Statement {
        id: Uuid::nil(),
        actor: Agent {
            object_type: "Agent",
            name: None,
            mbox: None,
            account: Some(Account { home_page: opts.base().to_owned(), name: "lyceum".into() }),
        },
        verb: verb(VERB_VOIDED),
        object: Object::StatementRef(StatementRef { object_type: "StatementRef", id: target }),
        result: None,
        // xAPI allows `context.platform` only when the object is an activity.
        context: None,
        timestamp: timestamp(at),
    };
    s.id = statement_id(&format!("voided {target}"), &s);
    s
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
            // 2 registered, 2 progressed, passed + completed; the learner
            // who has not passed yet and attempted nothing has no result.
            assert_eq!(arr.len(), 6);
            for s in arr {
                conformance::check(s, true).unwrap();
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
        let s = &statements(&fixtures::all()[0], &opts)[0];
        let SharedRecord::Enrollment(e) = &fixtures::all()[0] else { unreachable!() };
        assert_eq!(first[0], statement_id(&enrollment_key(&e.learner, &e.course), s));
    }

    #[test]
    fn new_progress_gets_a_new_id_and_the_same_fact_keeps_its_id() {
        let opts = fixtures::xapi_options(false);
        let SharedRecord::Progress(mut p) = fixtures::progress()[1].clone() else { unreachable!() };
        let before = statements(&SharedRecord::Progress(p.clone()), &opts)[0].clone();
        // The same record in a later snapshot: the same statement, id and all.
        let later = XapiOptions { as_of: fixtures::at(2025, 7, 1, 0, 0), ..opts.clone() };
        assert_eq!(statements(&SharedRecord::Progress(p.clone()), &later)[0], before);
        p.units_completed = Some(8);
        p.progress_percent = Some(66.7);
        p.last_activity_at = Some(fixtures::at(2025, 4, 11, 9, 0));
        let after = statements(&SharedRecord::Progress(p), &opts)[0].clone();
        assert_ne!(after.id, before.id, "an id never names two contents");
        // The enrollment of another learner in the same run differs too.
        let SharedRecord::Enrollment(mut e) = fixtures::enrollments()[0].clone() else { unreachable!() };
        let one = statements(&SharedRecord::Enrollment(e.clone()), &opts)[0].id;
        e.learner.id = "p-00000000".into();
        assert_ne!(statements(&SharedRecord::Enrollment(e), &opts)[0].id, one);
    }

    #[test]
    fn every_statement_has_a_timestamp() {
        let opts = fixtures::xapi_options(true);
        for rec in fixtures::all() {
            for s in statements(&rec, &opts) {
                let v = serde_json::to_value(&s).unwrap();
                conformance::check(&v, true).unwrap();
            }
        }
        // Progress whose activity time the gate withheld is dated by the snapshot.
        let p = &statements(&fixtures::progress()[0], &opts)[0];
        assert_eq!(p.timestamp, "2025-06-30T12:00:00.000Z");
    }

    fn result(passed: Option<bool>, graded: bool, final_: bool, completed: bool) -> SharedRecord {
        let SharedRecord::Result(mut r) = fixtures::results()[0].clone() else { unreachable!() };
        r.grade_percent = Some(if passed == Some(true) { 87.5 } else { 40.0 });
        r.passed = passed;
        r.graded_at = graded.then(|| fixtures::at(2025, 5, 1, 10, 0));
        r.final_at = final_.then(|| fixtures::at(2025, 6, 1, 0, 0));
        r.completed_at = completed.then(|| fixtures::at(2025, 5, 20, 11, 0));
        SharedRecord::Result(r)
    }

    fn verb_ids(rec: &SharedRecord) -> Vec<&'static str> {
        statements(rec, &fixtures::xapi_options(false)).iter().map(|s| s.verb.id).collect()
    }

    #[test]
    fn failed_only_when_the_learner_can_no_longer_pass() {
        // In progress: a score, no verdict.
        assert_eq!(verb_ids(&result(Some(false), true, false, false)), [VERB_SCORED]);
        // The run ended below the pass mark: failed, dated by the end.
        let ended = result(Some(false), true, true, false);
        assert_eq!(verb_ids(&ended), [VERB_FAILED]);
        let failed = &statements(&ended, &fixtures::xapi_options(false))[0];
        assert_eq!(failed.timestamp, "2025-06-01T00:00:00.000Z");
        assert_eq!(failed.result.as_ref().unwrap().success, Some(false));
        assert_eq!(failed.result.as_ref().unwrap().score.as_ref().unwrap().scaled, 0.4);
        // Passed: passed and completed, never failed.
        assert_eq!(verb_ids(&result(Some(true), true, true, true)), [VERB_PASSED, VERB_COMPLETED]);
        // Never attempted, run over or not: no result statement at all.
        assert!(verb_ids(&result(Some(false), false, true, false)).is_empty());
        assert!(verb_ids(&result(Some(false), false, false, false)).is_empty());
    }

    #[test]
    fn nothing_progressed_sends_no_progress_statement() {
        let SharedRecord::Progress(mut p) = fixtures::progress()[1].clone() else { unreachable!() };
        p.units_completed = Some(0);
        p.progress_percent = Some(0.0);
        assert!(statements(&SharedRecord::Progress(p), &fixtures::xapi_options(false)).is_empty());
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
        assert_eq!(p.timestamp, "2025-04-10T18:45:00.000Z");

        let passed = statements(&fixtures::results()[0], &opts);
        assert_eq!(passed.iter().map(|s| s.verb.id).collect::<Vec<_>>(), [VERB_PASSED, VERB_COMPLETED]);
        let r = passed[0].result.as_ref().unwrap();
        assert_eq!(r.score.as_ref().unwrap().scaled, 0.875);
        assert_eq!(r.success, Some(true));
        assert_eq!(passed[1].result.as_ref().unwrap().completion, Some(true));
        assert!(passed[1].result.as_ref().unwrap().score.is_none());

        // Only a grade known: one `scored` statement, dated by the attempt.
        let SharedRecord::Result(mut only_grade) = fixtures::results()[0].clone() else { unreachable!() };
        only_grade.passed = None;
        only_grade.completed_at = None;
        let s = statements(&SharedRecord::Result(only_grade), &opts);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].verb.id, VERB_SCORED);
        assert_eq!(s[0].timestamp, "2025-05-20T11:00:00.000Z");
    }

    #[test]
    fn result_with_nothing_known_yields_no_statement() {
        let rec = fixtures::strip_optionals(&fixtures::results()[0]);
        assert!(statements(&rec, &fixtures::xapi_options(true)).is_empty());
    }

    #[test]
    fn a_voiding_statement_refers_to_its_target_and_is_the_same_when_sent_again() {
        let opts = fixtures::xapi_options(false);
        let target = statements(&fixtures::enrollments()[0], &opts)[0].id;
        let v = voiding(target, fixtures::generated_at(), &opts);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["verb"]["id"], VERB_VOIDED);
        assert_eq!(json["object"], serde_json::json!({ "objectType": "StatementRef", "id": target.to_string() }));
        assert_eq!(json["actor"]["account"]["name"], "lyceum");
        assert!(json.get("context").is_none(), "no platform on a statement about a statement");
        assert_eq!(v, voiding(target, fixtures::generated_at(), &opts), "the same departure, the same statement");
        assert_ne!(v.id, voiding(target, fixtures::at(2030, 1, 1, 0, 0), &opts).id, "new content, a new id");
        assert_ne!(v.id, target);
    }
}

//! Scheduled pushes to partners: S3, LRS and webhook destinations through the
//! outbox, retries into the dead-letter list, staff replay, and a worker
//! killed in the middle of a push.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use lyceum::consent::Category;
use lyceum::consent::partners::Partner;
use lyceum::consent::push::{self, Destination, NewDestination, Target};
use lyceum::db::schema::{jobs, partner_sends};
use partner_adapters::test_server::{Received, Reply, serve};
use rocket::http::Status;
use sha2::{Digest, Sha256};

use crate::common::{Learner, PASSWORD, TEST_SECRET, TestApp, service_missing};
use crate::learning::{Seeded, seed_course};
use crate::on_both;
use crate::sharing::{as_user, member_partner, offered_text, run, verified};

/// A member course with Ada sharing her name and email and Bob declining;
/// returns the member's partner.
pub(crate) async fn ada_shares_bob_declines(app: &TestApp) -> Partner {
    ada_and_bob_in_a_member_course(app).await.0
}

/// As [`ada_shares_bob_declines`], with the course they study.
pub(crate) async fn ada_and_bob_in_a_member_course(app: &TestApp) -> (Partner, Seeded) {
    let c = seed_course(app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    for (name, share) in [("ada", "yes"), ("bob", "no")] {
        let l = verified(app, name).await;
        as_user(app, &l).await;
        let text = offered_text(app, "intro-python").await;
        let res = app
            .post_form(
                "/courses/intro-python/enroll",
                &[("run", "2026"), ("track", "audit"), ("share", share), ("text_id", &text)],
            )
            .await;
        assert_eq!(res.status(), Status::SeeOther);
    }
    app.sign_out().await;
    (partner, c)
}

pub(crate) async fn destination(
    app: &TestApp,
    partner: &Partner,
    target: Target,
    records: &str,
    format: &str,
) -> Destination {
    destination_with_secret(app, partner, target, records, format, "whsec_test_secret").await
}

pub(crate) async fn destination_with_secret(
    app: &TestApp,
    partner: &Partner,
    target: Target,
    records: &str,
    format: &str,
    secret: &str,
) -> Destination {
    let (p, records, format, secret) = (partner.clone(), records.to_string(), format.to_string(), secret.to_string());
    let outbound = app.client.rocket().state::<lyceum::net::Outbound>().expect("outbound policy").clone();
    run(app, move |conn| {
        let new = NewDestination {
            name: "Registry",
            target,
            record_kind: &records,
            format: &format,
            secret: &secret,
            every_minutes: 60,
            by: None,
        };
        let d = push::create(conn, &p, &new, lyceum::db::now(), &outbound)?.expect("a valid destination");
        // Scheduled pushes would race the ones these tests queue by hand.
        push::set_enabled(conn, &p, d.id, false, lyceum::db::now())?;
        Ok::<_, diesel::result::Error>(d)
    })
    .await
}

pub(crate) async fn queue(app: &TestApp, dest: &Destination, key: &str) -> i64 {
    let (d, key) = (dest.clone(), key.to_string());
    run(app, move |conn| push::request_send(conn, &d, &key, "staff", None, lyceum::db::now()))
        .await
        .expect("a new send")
}

/// The send, its job's status and attempts.
pub(crate) async fn state(app: &TestApp, send_id: i64) -> (push::Send, String, i32) {
    run(app, move |conn| {
        let send = partner_sends::table.find(send_id).select(push::Send::as_select()).first(conn)?;
        let (status, attempts) =
            jobs::table.find(send.job_id.unwrap_or(0)).select((jobs::status, jobs::attempts)).first(conn)?;
        Ok::<_, diesel::result::Error>((send, status, attempts))
    })
    .await
}

async fn disclosed(app: &TestApp, key: &str) -> Vec<(i64, String, String)> {
    let key = key.to_string();
    run(app, move |conn| {
        let filter = lyceum::consent::manifests::Filter { export_id: Some(&key), ..Default::default() };
        let all = lyceum::consent::manifests::expand(conn, &filter)?;
        Ok::<_, diesel::result::Error>(
            all.into_iter().filter(|d| d.delivered).map(|d| (d.user_id, d.basis, d.fields)).collect::<Vec<_>>(),
        )
    })
    .await
}

/// Makes a waiting job due now, as if its backoff had passed.
pub(crate) async fn due_now(app: &TestApp, send_id: i64) {
    run(app, move |conn| {
        let job: Option<i64> = partner_sends::table.find(send_id).select(partner_sends::job_id).first(conn)?;
        diesel::update(jobs::table.find(job.unwrap_or(0))).set(jobs::run_at.eq(lyceum::db::now())).execute(conn)
    })
    .await;
}

pub(crate) fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn s3_push(app: TestApp) {
    let Ok(endpoint) = std::env::var("LYCEUM_TEST_S3_ENDPOINT") else {
        service_missing("An S3-compatible server", "LYCEUM_TEST_S3_ENDPOINT");
        return;
    };
    let partner = ada_shares_bob_declines(&app).await;
    let s3 = s3_client(&endpoint);
    let bucket = format!("lyceum-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let target = Target::S3 {
        endpoint: Some(endpoint.clone()),
        region: "us-east-1".into(),
        bucket: bucket.clone(),
        prefix: "exports/".into(),
        access_key_id: "test".into(),
    };
    let dest = destination(&app, &partner, target, "enrollments", "csv").await;
    let key = format!("d{}-nightly", dest.id);
    let send_id = queue(&app, &dest, &key).await;
    app.run_jobs().await;

    let (send, status, attempts) = state(&app, send_id).await;
    assert_eq!((status.as_str(), attempts), ("done", 1), "{send:?}");
    assert!(send.delivered_at.is_some());
    let object = format!("exports/member-northbridge/enrollments/{key}.csv");
    assert_eq!(send.location.as_deref(), Some(format!("s3://{bucket}/{object}").as_str()));
    let got = s3.get_object().bucket(&bucket).key(&object).send().await.expect("the object is there");
    let stored_digest = got.metadata().and_then(|m| m.get("sha256")).cloned();
    let body = got.body.collect().await.expect("body").into_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(stored_digest.as_deref(), send.payload_digest.as_deref(), "the digest names the bytes sent");
    assert_eq!(send.payload_digest, Some(hex::encode(Sha256::digest(&body))));
    assert_eq!(send.record_count, Some(2));
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "header and two learners:\n{text}");
    assert!(text.contains("ada@example.org") && text.contains("Ada Lovelace"));
    assert!(!text.contains("bob@example.org") && !text.contains(",bob,"), "Bob declined: de-identified only");
    // promise: SHR-5 — every record that left is disclosed under the send's key.
    let rows = disclosed(&app, &key).await;
    assert_eq!(rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), ["consent", "deidentified"]);

    // A crash after the upload but before the send was marked delivered:
    // the retry finds the object under its key and uploads nothing again.
    run(&app, move |conn| {
        diesel::update(partner_sends::table.find(send_id))
            .set(partner_sends::delivered_at.eq(None::<chrono::NaiveDateTime>))
            .execute(conn)?;
        diesel::update(jobs::table.find(send.job_id.unwrap_or(0)))
            .set((
                jobs::status.eq("queued"),
                jobs::run_at.eq(lyceum::db::now()),
                jobs::payload.eq(serde_json::json!({ "send_id": send_id }).to_string()),
            ))
            .execute(conn)
    })
    .await;
    app.run_jobs().await;
    let (again, status, _) = state(&app, send_id).await;
    let error: Option<String> = run(&app, move |conn| {
        jobs::table.find(again.job_id.unwrap_or(0)).select(jobs::last_error).first::<Option<String>>(conn)
    })
    .await;
    assert_eq!(status, "done", "{error:?}");
    assert!(again.delivered_at.is_some());
    let versions = s3.list_object_versions().bucket(&bucket).prefix(&object).send().await.expect("versions");
    assert_eq!(versions.versions().len(), 1, "one upload for one idempotency key");
    assert_eq!(disclosed(&app, &key).await.len(), 2, "no second disclosure for the same records");

    // A bucket that does not exist: the send waits for a retry with the reason.
    let target = Target::S3 {
        endpoint: Some(endpoint),
        region: "us-east-1".into(),
        bucket: format!("missing-{}", uuid::Uuid::new_v4().simple()),
        prefix: String::new(),
        access_key_id: "test".into(),
    };
    let wrong = destination(&app, &partner, target, "results", "jsonl").await;
    let failing = queue(&app, &wrong, "missing-bucket-1").await;
    app.run_jobs().await;
    let (send, status, attempts) = state(&app, failing).await;
    assert_eq!((status.as_str(), attempts, send.delivered_at), ("queued", 1, None));
    let error: Option<String> = run(&app, move |conn| {
        jobs::table.find(send.job_id.unwrap_or(0)).select(jobs::last_error).first::<Option<String>>(conn)
    })
    .await;
    assert!(error.as_deref().is_some_and(|e| e.contains("NoSuchBucket")), "{error:?}");
}
on_both!(push_to_a_real_s3_compatible_server_writes_each_key_once, s3_push);

/// Checks the xAPI 1.0.3 required properties of one statement; the reason it fails.
fn statement_problem(s: &serde_json::Value) -> Option<String> {
    let iri = |v: &serde_json::Value| v.as_str().is_some_and(|s| url::Url::parse(s).is_ok());
    if s["id"].as_str().is_none_or(|id| uuid::Uuid::parse_str(id).is_err()) {
        return Some("id is not a UUID".into());
    }
    let actor = &s["actor"];
    let ifis = ["mbox", "mbox_sha1sum", "openid", "account"].iter().filter(|k| actor.get(**k).is_some()).count();
    if ifis != 1 {
        return Some(format!("actor has {ifis} inverse functional identifiers"));
    }
    if let Some(account) = actor.get("account")
        && !(iri(&account["homePage"]) && account["name"].as_str().is_some_and(|n| !n.is_empty()))
    {
        return Some("account needs homePage and name".into());
    }
    if !iri(&s["verb"]["id"]) {
        return Some("verb.id is not an IRI".into());
    }
    if !iri(&s["object"]["id"]) {
        return Some("object.id is not an IRI".into());
    }
    if let Some(t) = s.get("timestamp")
        && chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap_or("")).is_err()
    {
        return Some("timestamp is not ISO 8601".into());
    }
    if let Some(scaled) = s.pointer("/result/score/scaled")
        && !scaled.as_f64().is_some_and(|v| (-1.0..=1.0).contains(&v))
    {
        return Some("result.score.scaled out of range".into());
    }
    None
}

/// An LRS double: Basic auth, the version header, and each statement's
/// required properties, as an LRS checks them; 400 with the reason otherwise.
fn lrs_reply(_: usize, req: &Received) -> Reply {
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("lrs-key:whsec_test_secret"));
    if req.header("Authorization") != Some(expected.as_str()) {
        return Reply::new(401, r#"{"error":"bad credentials"}"#);
    }
    if req.header("X-Experience-API-Version") != Some("1.0.3") || req.path != "/xapi/statements" {
        return Reply::new(400, r#"{"error":"version header or path"}"#);
    }
    let Ok(serde_json::Value::Array(statements)) = serde_json::from_slice(&req.body) else {
        return Reply::new(400, r#"{"error":"not an array"}"#);
    };
    for s in &statements {
        if let Some(problem) = statement_problem(s) {
            return Reply::new(400, serde_json::json!({ "error": problem, "statement": s }).to_string());
        }
    }
    Reply::new(200, serde_json::to_string(&statements.iter().map(|s| s["id"].clone()).collect::<Vec<_>>()).unwrap())
}

#[rocket::async_test]
async fn xapi_push_sends_statements_an_lrs_accepts() {
    let app = TestApp::sqlite().await;
    let partner = ada_shares_bob_declines(&app).await;
    let (url, log) = serve(lrs_reply).await;
    let target = Target::Lrs { endpoint: format!("{url}/xapi"), username: "lrs-key".into() };
    let dest = destination(&app, &partner, target, "all", "xapi").await;
    let send_id = queue(&app, &dest, "lrs-1").await;
    app.run_jobs().await;
    let (send, status, _) = state(&app, send_id).await;
    let requests = log.lock().unwrap().clone();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.method == "POST"));
    assert_eq!(status, "done", "the LRS refused: {:?}", requests.last().map(|r| String::from_utf8_lossy(&r.body)));
    let statements: Vec<serde_json::Value> =
        requests.iter().flat_map(|r| serde_json::from_slice::<Vec<serde_json::Value>>(&r.body).unwrap()).collect();
    assert_eq!(send.record_count, Some(statements.len() as i32));
    assert!(statements.iter().any(|s| s["verb"]["id"].as_str().is_some_and(|v| v.ends_with("/registered"))));
    // Actors are pseudonymous accounts by default, named by the partner's pseudonym.
    let bob_id = crate::sharing::user_id(&app, "bob").await;
    let names: std::collections::HashSet<&str> =
        statements.iter().filter_map(|s| s["actor"]["account"]["name"].as_str()).collect();
    let bob_run: i64 = run(&app, move |conn| {
        use lyceum::db::schema::enrollments;
        enrollments::table.filter(enrollments::user_id.eq(bob_id)).select(enrollments::run_id).first(conn)
    })
    .await;
    assert!(names.contains(partner.run_pseudonym(bob_id, bob_run).as_str()), "{names:?}");
    let all = serde_json::to_string(&statements).unwrap();
    assert!(!all.contains("bob@example.org") && !all.contains("mbox"), "no email in actors");
}

/// Queues a send, runs it, and checks it was delivered; returns the send.
pub(crate) async fn push_until_done(app: &TestApp, dest: &Destination, key: &str) -> push::Send {
    let send_id = queue(app, dest, key).await;
    app.run_jobs().await;
    let (send, status, _) = state(app, send_id).await;
    let job = send.job_id.unwrap_or(0);
    let error: Option<String> =
        run(app, move |conn| jobs::table.find(job).select(jobs::last_error).first::<Option<String>>(conn)).await;
    assert_eq!(status, "done", "send {key}: {error:?}");
    send
}

/// The statements the LRS holds about `actor`, read back over its own API.
async fn lrs_statements(url: &str, user: &str, password: &str, actor: &serde_json::Value) -> Vec<serde_json::Value> {
    let res = reqwest::Client::new()
        .get(format!("{url}/statements"))
        .basic_auth(user, Some(password))
        .header("X-Experience-API-Version", "1.0.3")
        .query(&[("agent", actor.to_string()), ("limit", "100".to_string())])
        .send()
        .await
        .expect("the LRS answers");
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = res.json().await.expect("a statement result");
    body["statements"].as_array().cloned().expect("statements")
}

/// Runs Ralph's xAPI 1.0.3 models over `statements` (tests/verifiers/xapi_statements.py).
pub(crate) fn ralph_models_accept(statements: &[serde_json::Value]) {
    let Ok(python) = std::env::var("LYCEUM_TEST_PYTHON_VERIFIERS") else {
        service_missing("The Python verifiers (Ralph's xAPI models)", "LYCEUM_TEST_PYTHON_VERIFIERS");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verifiers/xapi_statements.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the verifier starts");
    let input = serde_json::to_vec(statements).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Ralph's xAPI models refuse statements:\n{report}");
    assert!(report.contains(&format!("{} statements checked, 0 problems", statements.len())), "{report}");
}

fn verbs(statements: &[serde_json::Value]) -> Vec<&str> {
    statements.iter().filter_map(|s| s["verb"]["id"].as_str()).filter_map(|v| v.rsplit('/').next()).collect()
}

async fn real_lrs_push(app: TestApp) {
    let (Ok(url), Ok(user), Ok(password)) = (
        std::env::var("LYCEUM_TEST_LRS_URL"),
        std::env::var("LYCEUM_TEST_LRS_USER"),
        std::env::var("LYCEUM_TEST_LRS_PASSWORD"),
    ) else {
        service_missing(
            "A Learning Record Store",
            "LYCEUM_TEST_LRS_URL, LYCEUM_TEST_LRS_USER and LYCEUM_TEST_LRS_PASSWORD",
        );
        return;
    };
    let (partner, course) = ada_and_bob_in_a_member_course(&app).await;
    let target = Target::Lrs { endpoint: url.clone(), username: user.clone() };
    let dest = destination_with_secret(&app, &partner, target, "all", "xapi", &password).await;
    let ada = Learner { username: "ada".into(), email: "ada@example.org".into(), password: PASSWORD.into() };

    // Enrolled, nothing done yet.
    push_until_done(&app, &dest, "lrs-real-1").await;
    // Ada studies a unit and misses the pass mark on her first of two quiz attempts: in progress.
    as_user(&app, &ada).await;
    let res = app.post_form(&format!("/learn/intro-python/units/{}/complete", course.units[0]), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let res = app.post_form(&format!("/learn/intro-python/quiz/{}", course.quiz), &[("q0", "1"), ("q1", "2")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    // A push after progress: new facts, same ids for the facts already sent, and no 409.
    push_until_done(&app, &dest, "lrs-real-2").await;
    // Then she studies another unit and passes on her second attempt.
    let res = app.post_form(&format!("/learn/intro-python/units/{}/complete", course.units[1]), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let res = app.post_form(&format!("/learn/intro-python/quiz/{}", course.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let last = push_until_done(&app, &dest, "lrs-real-3").await;
    assert!(last.record_count.is_some_and(|n| n > 0));

    let ada_id = crate::sharing::user_id(&app, "ada").await;
    let bob_id = crate::sharing::user_id(&app, "bob").await;
    let bob_run: i64 = run(&app, move |conn| {
        use lyceum::db::schema::enrollments;
        enrollments::table.filter(enrollments::user_id.eq(bob_id)).select(enrollments::run_id).first(conn)
    })
    .await;
    let actor = |name: String| serde_json::json!({ "objectType": "Agent", "account": { "homePage": "http://lyceum.test", "name": name } });
    // Ada's consent names her (name and email, not the username); Bob's records are de-identified.
    let ada_statements = lrs_statements(&url, &user, &password, &actor(partner.named_pseudonym(ada_id))).await;
    let bob_statements = lrs_statements(&url, &user, &password, &actor(partner.run_pseudonym(bob_id, bob_run))).await;
    let ada_verbs = verbs(&ada_statements);
    for verb in ["registered", "progressed", "scored", "passed", "completed"] {
        assert!(ada_verbs.contains(&verb), "Ada's statements lack {verb}: {ada_verbs:?}");
    }
    assert!(!ada_verbs.contains(&"failed"), "a learner who can still pass has not failed: {ada_verbs:?}");
    let progress: std::collections::HashSet<String> = ada_statements
        .iter()
        .filter_map(|s| s.pointer("/result/extensions/https:~1~1w3id.org~1xapi~1cmi5~1result~1extensions~1progress"))
        .map(|p| p.to_string())
        .collect();
    assert!(progress.len() >= 2, "the progress of each push is kept: {progress:?}");
    assert_eq!(verbs(&bob_statements), ["registered"], "Bob only enrolled: one statement however often it is sent");
    let all: Vec<serde_json::Value> = ada_statements.iter().chain(&bob_statements).cloned().collect();
    for s in &all {
        let t = s["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {s}"));
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
    }
    let ids: std::collections::HashSet<&str> = all.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids.len(), all.len(), "one id per statement");
    ralph_models_accept(&all);
}
on_both!(a_real_lrs_accepts_every_push_with_progress_in_between, real_lrs_push);

/// The LRS's own copy of one statement, or `None` when it holds none.
async fn lrs_statement(url: &str, user: &str, password: &str, id: &str) -> Option<serde_json::Value> {
    let res = reqwest::Client::new()
        .get(format!("{url}/statements"))
        .basic_auth(user, Some(password))
        .header("X-Experience-API-Version", "1.0.3")
        .query(&[("statementId", id)])
        .send()
        .await
        .expect("the LRS answers");
    let answer: serde_json::Value = match res.status() {
        reqwest::StatusCode::OK => res.json().await.expect("a statement"),
        reqwest::StatusCode::NOT_FOUND => return None,
        other => panic!("the LRS answers {other} for statement {id}"),
    };
    // The statement itself, or (Ralph) a StatementResult holding it.
    match answer.get("statements").and_then(|s| s.as_array()) {
        Some(list) => list.iter().find(|s| s["id"] == id).cloned(),
        None => Some(answer),
    }
}

async fn real_lrs_rejection(app: TestApp) {
    let (Ok(url), Ok(user), Ok(password)) = (
        std::env::var("LYCEUM_TEST_LRS_URL"),
        std::env::var("LYCEUM_TEST_LRS_USER"),
        std::env::var("LYCEUM_TEST_LRS_PASSWORD"),
    ) else {
        service_missing(
            "A Learning Record Store",
            "LYCEUM_TEST_LRS_URL, LYCEUM_TEST_LRS_USER and LYCEUM_TEST_LRS_PASSWORD",
        );
        return;
    };
    let (partner, course) = ada_and_bob_in_a_member_course(&app).await;
    let ada = Learner { username: "ada".into(), email: "ada@example.org".into(), password: PASSWORD.into() };
    as_user(&app, &ada).await;
    let res = app.post_form(&format!("/learn/intro-python/units/{}/complete", course.units[0]), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    app.sign_out().await;

    // The statements a push carries, as a recording LRS receives them.
    let (double, log) = serve(lrs_reply).await;
    let recorder = Target::Lrs { endpoint: format!("{double}/xapi"), username: "lrs-key".into() };
    let recorder = destination(&app, &partner, recorder, "all", "xapi").await;
    push_until_done(&app, &recorder, "lrs-recorded").await;
    let statements: Vec<serde_json::Value> = log
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| serde_json::from_slice::<Vec<serde_json::Value>>(&r.body).unwrap())
        .collect();
    assert!(statements.len() >= 3, "{statements:?}");

    // The LRS already holds another statement under the id of Bob's registration.
    let bob_id = crate::sharing::user_id(&app, "bob").await;
    let bob_run: i64 = run(&app, move |conn| {
        use lyceum::db::schema::enrollments;
        enrollments::table.filter(enrollments::user_id.eq(bob_id)).select(enrollments::run_id).first(conn)
    })
    .await;
    let bob_name = partner.run_pseudonym(bob_id, bob_run);
    let bob = statements
        .iter()
        .find(|s| s["actor"]["account"]["name"] == bob_name.as_str())
        .expect("Bob's registration")
        .clone();
    let bob_statement_id = bob["id"].as_str().unwrap().to_string();
    let mut conflicting = bob.clone();
    conflicting["verb"] =
        serde_json::json!({ "id": "http://adlnet.gov/expapi/verbs/attempted", "display": { "en-US": "attempted" } });
    let res = reqwest::Client::new()
        .post(format!("{url}/statements"))
        .basic_auth(&user, Some(&password))
        .header("X-Experience-API-Version", "1.0.3")
        .json(&serde_json::json!([conflicting]))
        .send()
        .await
        .expect("the LRS answers");
    assert!(res.status().is_success(), "the LRS stores the other statement: {}", res.status());

    // A push to the LRS: it refuses the batch with 409, for Bob's statement alone.
    let target = Target::Lrs { endpoint: url.clone(), username: user.clone() };
    let dest = destination_with_secret(&app, &partner, target, "all", "xapi", &password).await;
    let send = push_until_done(&app, &dest, "lrs-with-a-conflict").await;
    assert!(send.delivered_at.is_some());
    assert_eq!(send.record_count, Some(statements.len() as i32));
    for s in &statements {
        let id = s["id"].as_str().unwrap();
        let held = lrs_statement(&url, &user, &password, id).await.unwrap_or_else(|| panic!("the LRS lacks {s}"));
        let verb = held["verb"]["id"].as_str().unwrap();
        if id == bob_statement_id {
            assert!(verb.ends_with("/attempted"), "the LRS keeps its own statement: {held}");
        } else {
            assert_eq!(Some(verb), s["verb"]["id"].as_str(), "{held}");
            // What the client compares when an LRS answers a repeat with 409.
            assert!(partner_adapters::lrs::statements_match(s, &held), "sent {s}\nheld {held}");
        }
    }

    // Staff see the rejection on the partner's page, escaped, with the id, status and message.
    let grace = verified(&app, "grace").await;
    run(&app, move |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    let (status, page) = app.get("/partners/member-northbridge").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("1 statement rejected"), "{page}");
    assert!(page.contains(&format!("<td><code>{bob_statement_id}</code></td><td>409</td>")), "{page}");
    assert!(page.contains("Differing statements already exist with the same ID"), "{page}");
    assert!(page.contains("&quot;detail&quot;") && !page.contains(r#"{"detail""#), "the LRS's message is escaped");

    // The same push again (a retry after a crash, say): Ada's statements are
    // repeats the LRS takes; Bob's is refused again, and recorded for that send.
    push_until_done(&app, &dest, "lrs-again").await;
    let (_, page) = app.get("/partners/member-northbridge").await;
    assert_eq!(page.matches("1 statement rejected").count(), 2, "{page}");
    assert_eq!(page.matches(&format!("<code>{bob_statement_id}</code>")).count(), 2, "{page}");
}
on_both!(a_statement_the_real_lrs_refuses_blocks_no_other_and_staff_see_it, real_lrs_rejection);

pub(crate) fn independent_signature_ok(secret: &[u8], req: &Received) -> bool {
    let Some(header) = req.header("Lyceum-Signature") else { return false };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&req.body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

async fn webhook_dead_letters(app: TestApp) {
    let partner = ada_shares_bob_declines(&app).await;
    let down = Arc::new(AtomicBool::new(true));
    let flag = down.clone();
    let (url, log) =
        serve(move |_, _| if flag.load(Ordering::SeqCst) { Reply::new(503, "down") } else { Reply::new(200, "{}") })
            .await;
    let dest = destination(&app, &partner, Target::Webhook { url: format!("{url}/hook") }, "all", "jsonl").await;
    let key = "hook-1";
    let send_id = queue(&app, &dest, key).await;
    run(&app, move |conn| {
        let job: Option<i64> = partner_sends::table.find(send_id).select(partner_sends::job_id).first(conn)?;
        diesel::update(jobs::table.find(job.unwrap_or(0))).set(jobs::max_attempts.eq(2)).execute(conn)
    })
    .await;
    app.run_jobs().await;
    let (_, status, attempts) = state(&app, send_id).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1), "the first failure waits with backoff");
    due_now(&app, send_id).await;
    app.run_jobs().await;
    let (send, status, attempts) = state(&app, send_id).await;
    assert_eq!((status.as_str(), attempts), ("dead", 2), "then it waits in the dead-letter list");
    assert!(send.delivered_at.is_none());
    // promise: SHR-5 — a disclosure is a delivery: nothing reached the
    // partner, so nothing is recorded as disclosed, and the learner's
    // Sharing page does not say it was shared.
    assert_eq!(disclosed(&app, key).await, vec![], "a send that never arrived discloses nothing");
    let ada = crate::common::Learner {
        username: "ada".into(),
        email: "ada@example.org".into(),
        password: crate::common::PASSWORD.into(),
    };
    as_user(&app, &ada).await;
    let (_, page) = app.get("/sharing").await;
    assert!(!page.contains("northbridge University received"), "{page}");

    // Staff see it with the reason and replay it; a partner admin cannot.
    let grace = verified(&app, "grace").await;
    run(&app, move |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    let (status, page) = app.get("/partners/member-northbridge").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Dead letters") && page.contains(key) && page.contains("HTTP 503"), "{page}");
    down.store(false, Ordering::SeqCst);
    let res = app.post_form(&format!("/partners/member-northbridge/sends/{send_id}/replay"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    app.run_jobs().await;
    let (send, status, _) = state(&app, send_id).await;
    assert_eq!(status, "done");
    assert!(send.delivered_at.is_some());
    let res = app.post_form(&format!("/partners/member-northbridge/sends/{send_id}/replay"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther, "a delivered send is not replayed");
    assert_eq!(state(&app, send_id).await.1, "done");

    // The delivered body: signed (checked with HMAC computed here), keyed, consented fields only.
    let requests = log.lock().unwrap().clone();
    let delivered = requests.last().unwrap();
    assert!(requests.iter().all(|r| independent_signature_ok(b"whsec_test_secret", r)));
    assert!(!independent_signature_ok(b"another secret", delivered));
    let body: serde_json::Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(body["id"], key);
    assert_eq!((body["part"].as_u64(), body["parts"].as_u64()), (Some(1), Some(1)));
    let text = body["records"].to_string();
    assert!(text.contains("ada@example.org") && !text.contains("bob@example.org"));
    assert_eq!(send.payload_digest, Some(hex::encode(Sha256::digest(&delivered.body))));
    // Three attempts at the HTTP level per job attempt, two job attempts, then one delivery,
    // all under one key and disclosed once.
    assert!(requests.len() >= 3);
    assert!(
        requests.iter().all(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"] == key),
        "every attempt carries the same key"
    );
    let rows = disclosed(&app, key).await;
    let ada_id = crate::sharing::user_id(&app, "ada").await;
    assert_eq!(rows.iter().filter(|r| r.0 == ada_id).count(), 1, "one disclosure per record: {rows:?}");

    // Bad destination settings get a clear message; an empty webhook secret gets a fresh one, shown once.
    let res = app
        .post_form(
            "/partners/member-northbridge/destinations",
            &[("name", "X"), ("kind", "webhook"), ("records", "all"), ("format", "jsonl"), ("endpoint", "ftp://x")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/partners/member-northbridge").await;
    assert!(page.contains("must be an http(s) URL"), "{page}");
    let res = app
        .post_form(
            "/partners/member-northbridge/destinations",
            &[
                ("name", "Events"),
                ("kind", "webhook"),
                ("records", "progress"),
                ("format", "jsonl"),
                ("every_minutes", "60"),
                ("endpoint", "https://partner.example/hook"),
            ],
        )
        .await;
    assert_eq!(res.status(), Status::Ok);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("whsec_") && page.contains("shown only this once"));
    let (_, page) = app.get("/partners/member-northbridge").await;
    assert!(page.contains("Events") && !page.contains("whsec_"), "the secret is never shown again");
}
on_both!(webhook_push_retries_into_dead_letters_and_staff_replay_it, webhook_dead_letters);

async fn scheduling(app: TestApp) {
    let partner = ada_shares_bob_declines(&app).await;
    let dest =
        destination(&app, &partner, Target::Webhook { url: "http://127.0.0.1:9/hook".into() }, "all", "jsonl").await;
    let p = partner.clone();
    let counts = run(&app, move |conn| {
        let t0 = lyceum::db::now();
        push::set_enabled(conn, &p, dest.id, true, t0)?;
        let minutes = |m| t0 + chrono::Duration::minutes(m);
        let mut counts = vec![push::schedule_due(conn, t0)?, push::schedule_due(conn, t0)?];
        counts.push(push::schedule_due(conn, minutes(30))?);
        counts.push(push::schedule_due(conn, minutes(61))?);
        // A worker down for ten hours queues one send, not ten.
        counts.push(push::schedule_due(conn, minutes(660))?);
        push::set_enabled(conn, &p, dest.id, false, t0)?;
        counts.push(push::schedule_due(conn, minutes(2000))?);
        // The same slot never yields a second send.
        let again = push::request_send(conn, &dest, &push::slot_key(&dest, t0), "schedule", None, t0)?;
        counts.push(usize::from(again.is_some()));
        Ok::<_, diesel::result::Error>(counts)
    })
    .await;
    assert_eq!(counts, [1, 0, 0, 1, 1, 0, 0]);
    let keys: Vec<String> =
        run(&app, |conn| partner_sends::table.select(partner_sends::idempotency_key).load::<String>(conn)).await;
    assert_eq!(keys.len(), 3);
    assert_eq!(keys.iter().collect::<std::collections::HashSet<_>>().len(), 3);
}
on_both!(scheduled_pushes_queue_one_send_per_slot, scheduling);

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_worker(app: &TestApp, dir: &std::path::Path) -> Worker {
    Worker(
        Command::new(env!("CARGO_BIN_EXE_lyceum"))
            .arg("worker")
            .env("LYCEUM_DATABASE_URL", &app.config.database_url)
            .env("LYCEUM_DATA_DIR", dir)
            .env("LYCEUM_DEMO", "false")
            .env("LYCEUM_SECRET_KEY", TEST_SECRET)
            .env("LYCEUM_BASE_URL", "http://lyceum.test")
            .env("LYCEUM_JOB_STALE_AFTER_SECS", "2")
            .env("LYCEUM_LOG", "warn")
            .env("LYCEUM_OUTBOUND_ALLOW", "127.0.0.1/32,::1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the lyceum binary starts"),
    )
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[rocket::async_test]
async fn a_worker_killed_mid_push_neither_loses_nor_duplicates_the_send() {
    let app = TestApp::sqlite().await;
    let partner = ada_shares_bob_declines(&app).await;
    // The partner takes the first delivery and never answers: the worker is killed while it waits.
    let (url, log) = serve(|i, _| {
        let reply = Reply::new(200, "{}");
        if i == 0 { reply.after(Duration::from_secs(3600)) } else { reply }
    })
    .await;
    let dest = destination(&app, &partner, Target::Webhook { url: format!("{url}/hook") }, "all", "jsonl").await;
    let key = "crash-1";
    let send_id = queue(&app, &dest, key).await;
    let dir = tempfile::tempdir().unwrap();

    let mut first = start_worker(&app, dir.path());
    until("the first delivery", async || log.lock().unwrap().len() == 1).await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let (send, status, attempts) = state(&app, send_id).await;
    assert_eq!((status.as_str(), attempts), ("running", 1), "the killed worker left its claim");
    assert!(send.delivered_at.is_none());

    let _second = start_worker(&app, dir.path());
    until("the send to be delivered", async || state(&app, send_id).await.0.delivered_at.is_some()).await;
    let (send, status, attempts) = state(&app, send_id).await;
    assert_eq!((status.as_str(), attempts), ("done", 2), "taken over after the stale claim, delivered once");
    let requests = log.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one interrupted attempt and one delivery");
    assert_eq!(requests[0].body, requests[1].body, "the same send, byte for byte");
    let body: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body["id"], key, "the receiver can drop the repeat by its key");
    assert!(requests.iter().all(|r| independent_signature_ok(b"whsec_test_secret", r)));
    assert_eq!(send.payload_digest, Some(hex::encode(Sha256::digest(&requests[1].body))));
    assert_eq!(disclosed(&app, key).await.len(), 2, "each record disclosed once");
    let again = run(&app, move |conn| push::request_send(conn, &dest, key, "staff", None, lyceum::db::now())).await;
    assert_eq!(again, None, "nothing is sent twice for one key");
    let sends: i64 = run(&app, |conn| partner_sends::table.count().get_result(conn)).await;
    assert_eq!(sends, 1);
}

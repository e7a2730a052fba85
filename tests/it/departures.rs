//! Departures: withdrawal, restriction and erasure reach every partner
//! channel that carried the learner's records (the pull feed, webhook
//! events, S3 files, OneRoster `tobedeleted` rows, xAPI voiding), and the
//! learner's disclosure log shows each notice as sent.

use diesel::prelude::*;
use lyceum::consent::Category;
use lyceum::consent::partners::Partner;
use lyceum::consent::push::Target;
use lyceum::db::schema::{departures, erasures};
use partner_adapters::test_server::{Reply, serve};
use rocket::http::Status;

use crate::common::{Learner, PASSWORD, TestApp, service_missing};
use crate::learning::seed_course;
use crate::on_both;
use crate::push::{destination, push_until_done};
use crate::sharing::{as_user, key_for, lines, member_partner, offered_text, pull, run, user_id, verified};

fn all_lines(body: &str) -> Vec<serde_json::Value> {
    body.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn learner(name: &str) -> Learner {
    Learner { username: name.into(), email: format!("{name}@example.org"), password: PASSWORD.into() }
}

/// A member course with Ada and Cleo sharing name, email and username, and
/// Bob declining (de-identified records); returns the member's partner.
async fn three_learners(app: &TestApp) -> Partner {
    seed_course(app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let member_id = run(app, |conn| {
        use lyceum::db::schema::members;
        members::table.select(members::id).first::<i64>(conn)
    })
    .await;
    let partner =
        member_partner(app, member_id, &[Category::ProfileUsername, Category::ProfileName, Category::ProfileEmail])
            .await;
    for (name, share) in [("ada", "yes"), ("bob", "no"), ("cleo", "yes")] {
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
    partner
}

async fn withdraw_all(app: &TestApp, who: &Learner) {
    as_user(app, who).await;
    let (_, page) = app.get("/sharing").await;
    let re = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap();
    let id = re.captures(&page).expect("a withdraw button")[1].to_string();
    let res = app.post_form(&format!("/sharing/consents/{id}/withdraw"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
}

pub(crate) async fn erase(app: &TestApp, who: &Learner) {
    let id = user_id(app, &who.username).await;
    as_user(app, who).await;
    let res = app.post_form("/account/privacy/delete", &[("password", &who.password), ("confirm", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    run(app, |conn| {
        diesel::update(erasures::table.filter(erasures::state.eq("waiting")))
            .set(erasures::run_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    crate::privacy::run_scheduled(app).await;
    let state: String = run(app, move |conn| {
        erasures::table.filter(erasures::user_id.eq(id)).order(erasures::id.desc()).select(erasures::state).first(conn)
    })
    .await;
    assert_eq!(state, "done");
}

async fn pull_feed(app: TestApp) {
    let partner = three_learners(&app).await;
    let key = key_for(&app, &partner, &["enrollments"]).await;
    let (ada, bob, cleo) = (learner("ada"), learner("bob"), learner("cleo"));

    // The partner holds Ada and Cleo by username, Bob under his run's code.
    let (status, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert_eq!(status, Status::Ok);
    let held = lines(&body);
    let bob_code = held
        .iter()
        .find(|r| r["learner_pseudonymous"] == true)
        .and_then(|r| r["learner_id"].as_str())
        .expect("Bob's code")
        .to_string();
    assert!(held.iter().any(|r| r["learner_id"] == "ada") && held.iter().any(|r| r["learner_id"] == "cleo"));
    let (status, body) = pull(&app, &key, "/api/v1/exports/departures?format=jsonl").await;
    assert_eq!(status, Status::Ok);
    assert!(lines(&body).is_empty(), "nobody has left yet: {body}");

    // Ada withdraws: the feed tells the partner to delete what it holds under "ada".
    withdraw_all(&app, &ada).await;
    let (_, body) = pull(&app, &key, "/api/v1/exports/departures?format=jsonl").await;
    let first = lines(&body);
    assert_eq!(first.len(), 1, "{body}");
    let d = &first[0];
    assert_eq!(d["type"], "departure");
    assert_eq!(d["learner_id"], "ada");
    assert_eq!(d["reason"], "withdrawn");
    assert_eq!(d["course_id"], "intro-python");
    assert_eq!(d["course_run"], "2026");
    assert_eq!(d["learner_gone"], true, "no record under \"ada\" remains shareable");
    let cursor = d["cursor"].as_str().unwrap().to_string();
    // The feed ends with the summary a partner checks completeness with.
    let summary = all_lines(&body).pop().expect("a summary line");
    assert_eq!((summary["type"].as_str(), summary["records"].as_i64()), (Some("summary"), Some(1)), "{body}");
    // Her records still flow, de-identified, under a code that is not "ada".
    let (_, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(lines(&body).iter().all(|r| r["learner_id"] != "ada"), "{body}");

    // Bob restricts all sharing: his code departs too.
    as_user(&app, &bob).await;
    let res = app.post_form("/sharing/restrict", &[("restrict", "on")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, body) = pull(&app, &key, &format!("/api/v1/exports/departures?format=jsonl&since={cursor}")).await;
    let second = lines(&body);
    assert_eq!(second.len(), 1, "only what is new after the cursor: {body}");
    assert_eq!(second[0]["learner_id"], bob_code.as_str());
    assert_eq!(second[0]["reason"], "restricted");
    let cursor = second[0]["cursor"].as_str().unwrap().to_string();

    // Cleo is erased: her username departs, with the reason.
    let cleo_id = user_id(&app, "cleo").await;
    erase(&app, &cleo).await;
    let (_, body) = pull(&app, &key, &format!("/api/v1/exports/departures?format=csv&since={cursor}")).await;
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, partner_adapters::tabular::DEPARTURE_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!((&rows[0][1], &rows[0][8]), ("cleo", "erased"));

    // Following the protocol (delete what each departure names) leaves the
    // partner holding nothing the learners no longer consent to.
    let (_, body) = pull(&app, &key, "/api/v1/exports/departures?format=jsonl").await;
    let gone: std::collections::HashSet<String> =
        lines(&body).iter().map(|d| d["learner_id"].as_str().unwrap().to_string()).collect();
    let mut kept: Vec<&serde_json::Value> =
        held.iter().filter(|r| !gone.contains(r["learner_id"].as_str().unwrap())).collect();
    assert!(kept.is_empty(), "the partner still holds {kept:?}");
    kept.clear();
    // A bad cursor is a clear 400.
    let (status, _) = pull(&app, &key, "/api/v1/exports/departures?since=not-a-cursor").await;
    assert_eq!(status, Status::BadRequest);

    // Each learner's disclosure log shows the notice as sent.
    as_user(&app, &ada).await;
    let (_, page) = app.get("/sharing").await;
    assert!(page.contains("Told to delete"), "{page}");
    let ada_id = user_id(&app, "ada").await;
    let notices: i64 = run(&app, move |conn| {
        let all = lyceum::consent::manifests::disclosures_of(conn, ada_id, i64::MAX)?;
        Ok::<_, diesel::result::Error>(all.iter().filter(|d| d.basis == "departure").count() as i64)
    })
    .await;
    assert!(notices >= 1);
    // One departure per identifier that left, none repeated.
    let n: i64 = run(&app, |conn| departures::table.count().get_result(conn)).await;
    assert_eq!(n, 3);
    // promise: RGT-2 — the erased learner is in no manifest, not even the
    // notice of her erasure sent after it; she is counted, and the chain holds.
    let (left, v) = run(&app, move |conn| {
        let left = lyceum::consent::manifests::disclosures_of(conn, cleo_id, 100)?;
        Ok::<_, diesel::result::Error>((left, lyceum::consent::manifests::verify_against(conn, &[])?))
    })
    .await;
    assert!(left.is_empty(), "{left:?}");
    assert!(v.intact() && v.erased >= 1, "{v:?}");
}
on_both!(departures_feed_tells_partners_of_withdrawal_restriction_and_erasure, pull_feed);

async fn pushed(app: TestApp) {
    let Ok(endpoint) = std::env::var("LYCEUM_TEST_S3_ENDPOINT") else {
        service_missing("An S3-compatible server", "LYCEUM_TEST_S3_ENDPOINT");
        return;
    };
    let partner = three_learners(&app).await;
    let (url, log) = serve(|_, _| Reply::new(200, "{}")).await;
    let hook = destination(&app, &partner, Target::Webhook { url: format!("{url}/hook") }, "all", "jsonl").await;
    let bucket = format!("departures-{}", uuid::Uuid::new_v4().simple());
    let s3 = crate::push::s3_client(&endpoint);
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let target = Target::S3 {
        endpoint: Some(endpoint.clone()),
        region: "us-east-1".into(),
        bucket: bucket.clone(),
        prefix: "lyceum/".into(),
        access_key_id: "test".into(),
    };
    let csv_dest = crate::push::destination_with_secret(&app, &partner, target, "enrollments", "csv", "test").await;

    push_until_done(&app, &hook, "hook-before").await;
    push_until_done(&app, &csv_dest, "csv-before").await;
    withdraw_all(&app, &learner("ada")).await;

    // The webhook receives a departures event after the records.
    push_until_done(&app, &hook, "hook-after").await;
    let bodies: Vec<serde_json::Value> =
        log.lock().unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let events: Vec<&serde_json::Value> = bodies.iter().filter(|b| b["type"] == "lyceum.departures").collect();
    assert_eq!(events.len(), 1, "{bodies:?}");
    assert_eq!(events[0]["id"], "hook-after-departures");
    let told = events[0]["departures"].as_array().unwrap();
    assert_eq!(told.len(), 1);
    assert_eq!((told[0]["learner_id"].as_str(), told[0]["reason"].as_str()), (Some("ada"), Some("withdrawn")));
    // The next push does not repeat it.
    push_until_done(&app, &hook, "hook-again").await;
    let events = log.lock().unwrap().iter().filter(|r| r.body.windows(17).any(|w| w == b"lyceum.departures")).count();
    assert_eq!(events, 1, "a departure is told once per destination");

    // The S3 destination gets a departures CSV beside the records.
    push_until_done(&app, &csv_dest, "csv-after").await;
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key("lyceum/member-northbridge/departures/csv-after.csv")
        .send()
        .await
        .expect("a departures file");
    let bytes = object.body.collect().await.unwrap().into_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.starts_with("cursor,learner_id,course_id"), "{text}");
    assert!(text.contains(",ada,intro-python,") && text.contains("withdrawn"), "{text}");
    // Each delivery is in Ada's disclosure log.
    let ada_id = user_id(&app, "ada").await;
    let keys: Vec<String> = run(&app, move |conn| {
        let all = lyceum::consent::manifests::disclosures_of(conn, ada_id, i64::MAX)?;
        Ok::<_, diesel::result::Error>(
            all.into_iter().filter(|d| d.basis == "departure").map(|d| d.export_id).collect::<Vec<_>>(),
        )
    })
    .await;
    assert!(keys.contains(&"hook-after".to_string()) && keys.contains(&"csv-after".to_string()), "{keys:?}");
}
on_both!(departures_reach_webhook_and_s3_destinations, pushed);

async fn voided(app: TestApp) {
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
    let partner = three_learners(&app).await;
    let target = Target::Lrs { endpoint: url.clone(), username: user.clone() };
    let dest = crate::push::destination_with_secret(&app, &partner, target, "all", "xapi", &password).await;
    let before = format!("lrs-void-before-{}", uuid::Uuid::new_v4().simple());
    push_until_done(&app, &dest, &before).await;
    // Ada (named by her username here) is in the LRS; her statements' ids.
    let actor =
        serde_json::json!({ "objectType": "Agent", "account": { "homePage": "http://lyceum.test", "name": "ada" } });
    let query = |params: Vec<(&'static str, String)>| {
        let (url, user, password) = (url.clone(), user.clone(), password.clone());
        async move {
            let res = reqwest::Client::new()
                .get(format!("{url}/statements"))
                .basic_auth(user, Some(password))
                .header("X-Experience-API-Version", "1.0.3")
                .query(&params)
                .send()
                .await
                .expect("the LRS answers");
            assert_eq!(res.status(), reqwest::StatusCode::OK);
            let body: serde_json::Value = res.json().await.expect("a statement result");
            body["statements"].as_array().cloned().unwrap_or_default()
        }
    };
    let recorded: Vec<(String, String)> = run(&app, |conn| {
        use lyceum::db::schema::partner_statements;
        partner_statements::table.select((partner_statements::statement_id, partner_statements::learner_id)).load(conn)
    })
    .await;
    assert!(recorded.iter().any(|(_, l)| l == "ada"), "{recorded:?}");
    // The LRS is shared with the other tests (and this test on the other
    // backend), whose learners are also called Ada: this site's statements
    // are those it recorded sending.
    let ours: std::collections::HashSet<&str> =
        recorded.iter().filter(|(_, l)| l == "ada").map(|(id, _)| id.as_str()).collect();
    let held: Vec<serde_json::Value> = query(vec![("agent", actor.to_string()), ("limit", "1000".into())])
        .await
        .into_iter()
        .filter(|s| s["id"].as_str().is_some_and(|id| ours.contains(id)))
        .collect();
    assert!(!held.is_empty(), "Ada's statements reached the LRS");

    withdraw_all(&app, &learner("ada")).await;
    let after = format!("lrs-void-after-{}", uuid::Uuid::new_v4().simple());
    let sent = push_until_done(&app, &dest, &after).await;
    let sent_id = sent.id;
    let refused: Vec<(String, i32, String)> = run(&app, move |conn| {
        use lyceum::db::schema::partner_send_rejections as r;
        r::table.filter(r::send_id.eq(sent_id)).select((r::statement_id, r::status, r::message)).load(conn)
    })
    .await;
    assert!(refused.is_empty(), "the LRS refused {refused:?}");
    // A voiding statement for each of them, as xAPI retracts a statement; the
    // platform itself is their actor (Ralph filters neither by verb nor by
    // voidedStatementId, so they are read back by actor).
    let platform =
        serde_json::json!({ "objectType": "Agent", "account": { "homePage": "http://lyceum.test", "name": "lyceum" } });
    let voiding = query(vec![("agent", platform.to_string()), ("limit", "1000".into())]).await;
    assert!(voiding.iter().all(|v| v["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"));
    for s in &held {
        let id = s["id"].as_str().unwrap();
        assert!(
            voiding.iter().any(|v| v["object"]["objectType"] == "StatementRef" && v["object"]["id"] == id),
            "statement {id} was not voided: {voiding:?}"
        );
    }
    crate::push::ralph_models_accept(&voiding);
    // Pushed again, nothing is voided twice, and the send is clean.
    let again = format!("lrs-void-again-{}", uuid::Uuid::new_v4().simple());
    let send = push_until_done(&app, &dest, &again).await;
    let send_id = send.id;
    let rejected: i64 = run(&app, move |conn| {
        use lyceum::db::schema::partner_send_rejections;
        partner_send_rejections::table.filter(partner_send_rejections::send_id.eq(send_id)).count().get_result(conn)
    })
    .await;
    assert_eq!(rejected, 0);
}
on_both!(departures_void_what_an_lrs_received, voided);

//! OneRoster 1.2 CSV as a partner receives it: Lyceum's real pushes to an
//! S3-compatible server, a first export and a later one after changes, each
//! checked by an independent validator of the 1EdTech CSV binding
//! (tests/verifiers/oneroster_csv.py, written from the specification).

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use diesel::prelude::*;
use lyceum::consent::Category;
use lyceum::consent::partners::Partner;
use lyceum::consent::push::{self, Target};
use lyceum::db::schema::enrollments;
use rocket::http::Status;

use crate::common::{Learner, TestApp, service_missing};
use crate::learning::{Seeded, seed_course};
use crate::on_both;
use crate::privacy::unzip;
use crate::push::{destination, push_until_done, s3_client};
use crate::sharing::{as_user, member_partner, offered_text, run, user_id, verified};

type Rows = Vec<BTreeMap<String, String>>;

/// Each CSV of a zip as rows of column → value.
fn tables(zip: &[u8]) -> BTreeMap<String, Rows> {
    unzip(zip)
        .into_iter()
        .map(|(name, text)| {
            let mut r = csv::Reader::from_reader(text.as_bytes());
            let header: Vec<String> = r.headers().expect("a header").iter().map(str::to_owned).collect();
            let rows = r
                .records()
                .map(|rec| header.iter().cloned().zip(rec.expect("a record").iter().map(str::to_owned)).collect())
                .collect();
            (name.trim_end_matches(".csv").to_owned(), rows)
        })
        .collect()
}

/// Runs the independent validator on a zip; panics with every violation it prints.
fn validator_accepts(python: &str, zip: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oneroster.zip");
    std::fs::write(&path, zip).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verifiers/oneroster_csv.py");
    let out = Command::new(python).arg(script).arg(&path).output().expect("the validator runs");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the OneRoster 1.2 CSV validator refuses the {what}:\n{report}");
    assert!(report.contains(" files checked, 0 problems"), "{report}");
}

/// The zip with one file's text changed by `edit`: the validator must refuse it.
fn validator_refuses_edited(python: &str, zip: &[u8], file: &str, edit: impl Fn(&str) -> String) {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in unzip(zip) {
        out.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).unwrap();
        let text = if name == file { edit(&text) } else { text };
        std::io::Write::write_all(&mut out, text.as_bytes()).unwrap();
    }
    let edited = out.finish().unwrap().into_inner();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edited.zip");
    std::fs::write(&path, edited).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verifiers/oneroster_csv.py");
    let out = Command::new(python).arg(script).arg(&path).output().expect("the validator runs");
    assert!(!out.status.success(), "the validator accepts a broken {file}: {}", String::from_utf8_lossy(&out.stdout));
}

async fn enroll(app: &TestApp, name: &str, share: &str) -> Learner {
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
    l
}

/// Signs in as `l` and submits the quiz, passing or not.
async fn quiz(app: &TestApp, l: &Learner, c: &Seeded, pass: bool) {
    as_user(app, l).await;
    let q1 = if pass { "3.5" } else { "2" };
    let res = app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", q1)]).await;
    assert_eq!(res.status(), Status::SeeOther);
}

/// The id the member's partner knows a learner by: a named pseudonym under
/// consent (name and email), a per-run code otherwise.
async fn partner_id(app: &TestApp, partner: &Partner, name: &str, consented: bool) -> String {
    let uid = user_id(app, name).await;
    if consented {
        return partner.named_pseudonym(uid);
    }
    let run_id: i64 = run(app, move |conn| {
        enrollments::table.filter(enrollments::user_id.eq(uid)).select(enrollments::run_id).first(conn)
    })
    .await;
    partner.run_pseudonym(uid, run_id)
}

/// Pushes once to the bucket and reads the zip back from it.
async fn push_and_read(app: &TestApp, s3: &aws_sdk_s3::Client, dest: &push::Destination, key: &str) -> Vec<u8> {
    let send = push_until_done(app, dest, key).await;
    let location = send.location.expect("the object's location");
    let (bucket, object) = location.trim_start_matches("s3://").split_once('/').expect("s3://bucket/key");
    assert!(object.ends_with(".zip"), "{object}");
    let got = s3.get_object().bucket(bucket).key(object).send().await.expect("the object is there");
    got.body.collect().await.expect("body").into_bytes().to_vec()
}

fn ids(rows: &Rows, column: &str) -> HashSet<String> {
    rows.iter().map(|r| r[column].clone()).collect()
}

async fn oneroster_push(app: TestApp) {
    let Ok(endpoint) = std::env::var("LYCEUM_TEST_S3_ENDPOINT") else {
        service_missing("An S3-compatible server", "LYCEUM_TEST_S3_ENDPOINT");
        return;
    };
    let Ok(python) = std::env::var("LYCEUM_TEST_PYTHON_VERIFIERS") else {
        service_missing("The Python verifiers (the OneRoster CSV validator)", "LYCEUM_TEST_PYTHON_VERIFIERS");
        return;
    };
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    // Ada and Dan share their name and email; Bob and Carol decline (de-identified records).
    let ada = enroll(&app, "ada", "yes").await;
    let bob = enroll(&app, "bob", "no").await;
    let carol = enroll(&app, "carol", "no").await;
    let _dan = enroll(&app, "dan", "yes").await;
    let erin = enroll(&app, "erin", "yes").await;
    // Ada attempts the quiz and misses the pass mark; Carol passes (completes);
    // Bob and Dan never attempt anything; Erin leaves the course.
    quiz(&app, &ada, &c, false).await;
    quiz(&app, &carol, &c, true).await;
    as_user(&app, &erin).await;
    let res = app.post_form("/courses/intro-python/unenroll", &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    app.sign_out().await;

    let s3 = s3_client(&endpoint);
    let bucket = format!("lyceum-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let target = Target::S3 {
        endpoint: Some(endpoint.clone()),
        region: "us-east-1".into(),
        bucket: bucket.clone(),
        prefix: "oneroster/".into(),
        access_key_id: "test".into(),
    };
    let dest = destination(&app, &partner, target, "all", "oneroster").await;

    // The first export: everything the partner may hold.
    let first = push_and_read(&app, &s3, &dest, "oneroster-1").await;
    validator_accepts(&python, &first, "first export");
    // The validator is not lenient: a ':' in an id, an empty required name, a header-only file.
    validator_refuses_edited(&python, &first, "classes.csv", |t| t.replace(".2026", ":2026"));
    validator_refuses_edited(&python, &first, "users.csv", |t| t.replace("Unnamed", ""));
    validator_refuses_edited(&python, &first, "orgs.csv", |t| t.lines().next().unwrap_or_default().to_owned());
    let t = tables(&first);
    let id = async |name: &str, consented: bool| partner_id(&app, &partner, name, consented).await;
    let (ada_id, bob_id, carol_id, dan_id, erin_id) = (
        id("ada", true).await,
        id("bob", false).await,
        id("carol", false).await,
        id("dan", true).await,
        id("erin", true).await,
    );
    assert_eq!(
        ids(&t["users"], "sourcedId"),
        HashSet::from([&ada_id, &bob_id, &carol_id, &dan_id, &erin_id].map(|s| s.to_string())),
    );
    let results: HashSet<String> = ids(&t["results"], "studentSourcedId");
    assert_eq!(
        results,
        HashSet::from([ada_id.clone(), carol_id.clone()]),
        "results only for learners who attempted or completed something: {:?}",
        t["results"]
    );
    let user = |rows: &Rows, id: &str| rows.iter().find(|u| u["sourcedId"] == id).cloned().expect("a user row");
    let ada_row = user(&t["users"], &ada_id);
    assert_eq!((ada_row["givenName"].as_str(), ada_row["familyName"].as_str()), ("Ada", "Lovelace"));
    assert_eq!(ada_row["email"], "ada@example.org");
    let bob_row = user(&t["users"], &bob_id);
    assert_eq!(bob_row["username"], bob_id, "a pseudonymous user's username is its pseudonym");
    assert_eq!(bob_row["email"], "", "Bob declined: no email");
    assert!(!bob_row.values().any(|v| v.to_lowercase().contains("bob")), "nothing names Bob: {bob_row:?}");
    let erin_enrollment = t["enrollments"].iter().find(|e| e["userSourcedId"] == erin_id).expect("Erin's enrollment");
    assert_eq!(erin_enrollment["status"], "tobedeleted", "Erin left the course");
    let carol_result = t["results"].iter().find(|r| r["studentSourcedId"] == carol_id).unwrap();
    assert_eq!(carol_result["metadata.lyceum.passed"], "true");
    assert!(carol_result["score"].parse::<f64>().is_ok_and(|s| s >= 60.0), "{carol_result:?}");
    assert_eq!(t["academicSessions"].len(), 1, "one session for the one course run");
    assert_eq!(t["classes"][0]["termSourcedIds"], t["academicSessions"][0]["sourcedId"]);

    // Changes, then a later export.
    quiz(&app, &bob, &c, false).await;
    quiz(&app, &ada, &c, true).await;
    let _frank = enroll(&app, "frank", "yes").await;
    app.sign_out().await;
    let later = push_and_read(&app, &s3, &dest, "oneroster-2").await;
    validator_accepts(&python, &later, "later export");
    let t2 = tables(&later);
    let frank_id = id("frank", true).await;
    assert!(ids(&t2["users"], "sourcedId").contains(&frank_id), "the new learner is there");
    assert_eq!(
        ids(&t2["results"], "studentSourcedId"),
        HashSet::from([ada_id.clone(), bob_id.clone(), carol_id.clone()]),
        "Bob has attempted now; Dan and Frank still have not"
    );
    let ada_result = t2["results"].iter().find(|r| r["studentSourcedId"] == ada_id).unwrap();
    assert_eq!(ada_result["metadata.lyceum.passed"], "true", "Ada passed on her second attempt");
    // The ids of what did not change are the same in both exports.
    for file in ["orgs", "courses", "classes", "academicSessions", "categories", "lineItems"] {
        assert_eq!(ids(&t[file], "sourcedId"), ids(&t2[file], "sourcedId"), "{file}");
    }
    let manifest: BTreeMap<String, String> = unzip(&later)["manifest.csv"]
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    for (key, mode) in &manifest {
        if key.starts_with("file.") {
            assert!(mode == "delta" || mode == "absent", "{key}={mode}: every present file is a delta");
        }
    }

    // Dan withdraws his consent and Bob restricts sharing. Under the delta
    // rules their absence would mean "unchanged": the next zip says delete.
    as_user(&app, &_dan).await;
    let (_, page) = app.get("/sharing").await;
    let consent = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap().captures(&page).unwrap()
        [1]
    .to_string();
    app.post_form(&format!("/sharing/consents/{consent}/withdraw"), &[]).await;
    as_user(&app, &bob).await;
    app.post_form("/sharing/restrict", &[("restrict", "on")]).await;
    app.sign_out().await;
    let third = push_and_read(&app, &s3, &dest, "oneroster-3").await;
    validator_accepts(&python, &third, "export after departures");
    let t3 = tables(&third);
    let status_of = |rows: &Rows, column: &str, id: &str| -> Vec<String> {
        rows.iter().filter(|r| r[column] == id).map(|r| r["status"].clone()).collect()
    };
    for gone in [&dan_id, &bob_id] {
        assert_eq!(status_of(&t3["users"], "sourcedId", gone), ["tobedeleted"], "{gone}: {:?}", t3["users"]);
        assert_eq!(status_of(&t3["enrollments"], "userSourcedId", gone), ["tobedeleted"], "{gone}");
        assert_eq!(status_of(&t3["results"], "studentSourcedId", gone), ["tobedeleted"], "{gone}");
    }
    // Bob's attempt was in the last export; now nothing of his is active.
    assert!(t3["users"].iter().filter(|u| u["status"] == "active").all(|u| u["sourcedId"] != bob_id));
    // The next push does not tell it again.
    let fourth = push_and_read(&app, &s3, &dest, "oneroster-4").await;
    validator_accepts(&python, &fourth, "export after that");
    let t4 = tables(&fourth);
    assert!(t4.get("users").is_none_or(|u| u.iter().all(|r| r["status"] == "active")), "{:?}", t4.get("users"));
}
on_both!(oneroster_exports_pass_an_independent_validator_of_the_csv_binding, oneroster_push);

//! Privacy rights: a copy of one's data (RGT-1), erasure (RGT-2), tracked
//! requests (RGT-5) and legal holds (RET-3).

use std::io::Read;

use diesel::prelude::*;
use lyceum::consent::Category;
use lyceum::db::schema::{data_exports, data_requests, erasures, jobs, users};

use rocket::http::Status;

use crate::common::{Learner, TestApp, every_row};
use crate::learning::{Seeded, seed_course};
use crate::on_both;
use crate::sharing::{as_user, key_for, member_partner, offered_text, pull, run, user_id, verified};

pub(crate) async fn staff(app: &TestApp) -> Learner {
    let grace = verified(app, "grace").await;
    run(app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    grace
}

/// A learner with a distinctive name who enrolls sharing with the member,
/// answers the quiz and posts in the course forum; the member pulls an
/// export, so a disclosure exists.
async fn active_learner(app: &TestApp) -> (Learner, Seeded) {
    let c = seed_course(app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    let key = key_for(app, &partner, &["enrollments"]).await;
    let res = app.sign_up_with("zeph", &[("first_name", "Zephyrine"), ("last_name", "Quillfeather")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let zeph =
        Learner { username: "zeph".into(), email: "zeph@example.org".into(), password: crate::common::PASSWORD.into() };
    app.verify(&zeph).await;
    as_user(app, &zeph).await;
    let text = offered_text(app, "intro-python").await;
    let res = app
        .post_form(
            "/courses/intro-python/enroll",
            &[("run", "2026"), ("track", "audit"), ("share", "yes"), ("text_id", &text)],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    let forum =
        app.client.get("/learn/intro-python/forum").dispatch().await.headers().get_one("Location").unwrap().to_string();
    app.post_form(
        &format!("{forum}/threads"),
        &[("title", "Recursion"), ("body", "Is tail recursion optimised in Python?")],
    )
    .await;
    let (status, body) = pull(app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert_eq!(status, Status::Ok);
    assert!(body.contains("zeph@example.org"), "the member received identified data");
    (zeph, c)
}

pub(crate) fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        files.insert(file.name().unwrap().to_string(), text);
    }
    files
}

async fn data_copy(app: TestApp) {
    // promise: RGT-1 — a learner downloads all data held about them, as JSON and CSV in a zip.
    let (zeph, _) = active_learner(&app).await;
    let (status, page) = app.get("/account/privacy").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Ask for a copy"));
    let res = app.post_form("/account/privacy/export", &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let again = app.post_form("/account/privacy/export", &[]).await;
    assert_eq!(again.status(), Status::SeeOther);
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("being prepared already"), "a second ask while building changes nothing");
    let count = run(&app, |conn| data_exports::table.count().get_result::<i64>(conn)).await;
    assert_eq!(count, 1);

    let link = app.mailed_link(&zeph.email, "/account/privacy/exports/").await;
    let errors: Vec<Option<String>> = run(&app, |conn| jobs::table.select(jobs::last_error).load(conn)).await;
    let link = link.unwrap_or_else(|| panic!("a download link is emailed; job errors: {errors:?}"));
    app.sign_out().await;
    let res = app.client.get(link.clone()).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther, "the link needs sign-in");
    as_user(&app, &zeph).await;
    let res = app.client.get(link.clone()).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type(), Some(rocket::http::ContentType::ZIP));
    let files = unzip(&res.into_bytes().await.unwrap());
    assert!(files.contains_key("README.md") && files.contains_key("data.json"), "{:?}", files.keys());
    let data: serde_json::Value = serde_json::from_str(&files["data.json"]).unwrap();
    let sections = &data["sections"];
    assert_eq!(sections["account"][0]["first_name"], "Zephyrine");
    assert!(sections["account"][0].get("password_hash").is_none(), "no password hash");
    assert!(sections["forum_posts"][0]["body"].as_str().unwrap().contains("tail recursion"));
    assert!(sections["quiz_answers"][0]["answers"].to_string().contains("3.5"), "{}", sections["quiz_answers"]);
    assert_eq!(sections["consent_ledger"][0]["action"], "grant");
    assert_eq!(sections["disclosures"].as_array().unwrap().len(), 1, "what the member received");
    assert_eq!(sections["enrollments"].as_array().unwrap().len(), 1);
    assert!(files["csv/forum_posts.csv"].contains("tail recursion"));
    assert!(files["csv/account.csv"].starts_with("id,username,email,first_name"), "{}", files["csv/account.csv"]);
    assert!(files["README.md"].contains("### quiz_answers"));
    // The disclosure, in the words of the Sharing page.
    let words = &files["sharing.md"];
    assert!(words.contains(" received your ") && words.contains("Each time:"), "{words}");
    assert!(!words.contains("learner.") && !words.contains("web_form"), "no stored code: {words}");
    assert!(!files.values().any(|f| f.contains("$argon2")), "no secret in any file");
    // promise: RGT-1 — every CSV opens in a spreadsheet with each value under its header:
    // read back with a CSV reader, value for value, it is its section of data.json.
    let csvs: Vec<(&String, &String)> = files.iter().filter(|(n, _)| n.starts_with("csv/")).collect();
    assert!(csvs.len() >= 5, "{:?}", files.keys());
    for (name, text) in csvs {
        let section = name.trim_start_matches("csv/").trim_end_matches(".csv");
        let rows = sections[section].as_array().unwrap_or_else(|| panic!("{section} is in data.json"));
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), rows.len(), "{section}: one row per record");
        for (record, row) in records.iter().zip(rows) {
            assert_eq!(headers.len(), row.as_object().unwrap().len(), "{section}: one column per field");
            for (header, cell) in headers.iter().zip(record.iter()) {
                let expected = match &row[header] {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                // A cell a spreadsheet would run as a formula carries a leading quote.
                let shown = cell.strip_prefix('\'').filter(|_| !expected.starts_with('\'')).unwrap_or(cell);
                assert_eq!(shown, expected, "{section}.{header}");
            }
        }
    }

    // promise: RGT-5 — the request is tracked and closed.
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("export") && page.contains("done"), "{page}");

    // Bad input: someone else's link is not found; an expired link is gone, with a message.
    let bob = verified(&app, "bob").await;
    as_user(&app, &bob).await;
    let (status, _) = app.get(&link).await;
    assert_eq!(status, Status::NotFound);
    as_user(&app, &zeph).await;
    run(&app, |conn| {
        diesel::update(data_exports::table)
            .set(data_exports::expires_at.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    let (status, page) = app.get(&link).await;
    assert_eq!(status, Status::Gone);
    assert!(page.contains("expired"), "{page}");
    // The scheduled run deletes the expired file.
    app.client.rocket().state::<lyceum::jobs::Worker>().unwrap().run_scheduled().await.unwrap();
    let left: Option<String> =
        run(&app, |conn| data_exports::table.select(data_exports::blob_key).first::<Option<String>>(conn)).await;
    assert_eq!(left, None);
}
on_both!(rgt_1_a_learner_downloads_a_copy_of_their_data, data_copy);

pub(crate) async fn run_scheduled(app: &TestApp) {
    app.client.rocket().state::<lyceum::jobs::Worker>().unwrap().run_scheduled().await.unwrap();
}

async fn erasure(app: TestApp) {
    // promise: RGT-2 — erasure after a cancellable cool-off; partners told; nothing of the name or email left.
    let (zeph, _) = active_learner(&app).await;
    let id = user_id(&app, "zeph").await;
    let res = app.post_form("/account/privacy/delete", &[("password", "not my password"), ("confirm", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("not your password"));
    let res = app.post_form("/account/privacy/delete", &[("password", &zeph.password)]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("Tick the box"));
    assert_eq!(run(&app, |conn| erasures::table.count().get_result::<i64>(conn)).await, 0, "nothing scheduled yet");

    app.post_form("/account/privacy/delete", &[("password", &zeph.password), ("confirm", "true")]).await;
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("id=\"erasure-scheduled\"") && page.contains("Cancel the deletion"), "{page}");
    // Bad input: asking twice changes nothing and says so.
    app.post_form("/account/privacy/delete", &[("password", &zeph.password), ("confirm", "true")]).await;
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("asked for your account to be deleted already"), "{page}");
    assert_eq!(run(&app, |conn| erasures::table.count().get_result::<i64>(conn)).await, 1);
    // The cool-off protects the account: the scheduled run leaves it alone.
    run_scheduled(&app).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("zeph"));
    // Cancel, then ask again.
    app.post_form("/account/privacy/delete/cancel", &[]).await;
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("deletion is cancelled") && page.contains("Delete my account"));
    app.post_form("/account/privacy/delete", &[("password", &zeph.password), ("confirm", "true")]).await;
    app.run_jobs().await;

    // The cool-off ends.
    run(&app, |conn| {
        diesel::update(erasures::table.filter(erasures::state.eq("waiting")))
            .set(erasures::run_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    run_scheduled(&app).await;
    let state: String = run(&app, move |conn| {
        erasures::table.filter(erasures::user_id.eq(id)).order(erasures::id.desc()).select(erasures::state).first(conn)
    })
    .await;
    assert_eq!(state, "done");
    assert_eq!(app.signed_in_as().await, None, "signed out everywhere");
    let res = app.sign_in(&zeph, false).await;
    assert_ne!(res.status(), Status::SeeOther, "the old password no longer signs in");

    // The member that received identified data is told, by a queued mail to its contact.
    let notices: Vec<String> = run(&app, |conn| {
        jobs::table.filter(jobs::payload.like("%erasure_notice%")).select(jobs::payload).load::<String>(conn)
    })
    .await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    // It names the learner by the identifier the member holds (the pseudonym its records carry), nothing more.
    assert!(notices[0].contains("\"pseudonym\":\"p-") && notices[0].contains("privacy@northbridge"), "{}", notices[0]);
    // With the run's own code when its records went out without identity.
    assert!(notices[0].contains("\"codes\":["), "{}", notices[0]);

    // The consents are withdrawn in the ledger, and the chain still verifies.
    let (_, log) = {
        as_user(&app, &staff(&app).await).await;
        app.get("/staff/privacy").await
    };
    for step in lyceum::privacy::erasure::STEPS {
        assert!(log.contains(&format!("{step} · <strong>done</strong>")), "{step} logged: {log}");
    }
    assert!(log.contains("1 consent(s) withdrawn"));
    let verification = run(&app, lyceum::consent::ledger::verify).await;
    assert!(verification.first_broken.is_none());

    // Nothing anywhere in the database holds the name or the email address.
    let rows = run(&app, |conn| Ok::<_, String>(every_row(conn))).await;
    for needle in ["Zephyrine", "Quillfeather", "zeph@example.org"] {
        let found: Vec<&(String, String)> = rows.iter().filter(|(_, row)| row.contains(needle)).collect();
        assert!(found.is_empty(), "{needle} is still in {found:?}");
    }
    // The forum post stays under a placeholder; the request is closed.
    let (_, page) = app.get("/forums/search?q=recursion").await;
    assert!(!page.contains("zeph"));
    let status: String = run(&app, move |conn| {
        data_requests::table
            .filter(data_requests::kind.eq("erasure"))
            .order(data_requests::id.desc())
            .select(data_requests::status)
            .first(conn)
    })
    .await;
    assert_eq!(status, "done");
    let username: String = run(&app, move |conn| users::table.find(id).select(users::username).first(conn)).await;
    assert_eq!(username, format!("retired-{id}"));
}
on_both!(rgt_2_an_erased_learner_leaves_no_name_or_email_behind, erasure);

async fn legal_hold(app: TestApp) {
    // promise: RET-3 — a legal hold stops erasure until it is lifted.
    let (zeph, _) = active_learner(&app).await;
    let id = user_id(&app, "zeph").await;
    app.post_form("/account/privacy/delete", &[("password", &zeph.password), ("confirm", "true")]).await;
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let res = app.post_form("/staff/privacy/holds", &[("login", "zeph"), ("reason", "")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/staff/privacy").await;
    assert!(page.contains("Give the reason for the hold"));
    app.post_form("/staff/privacy/holds", &[("login", "zeph"), ("reason", "Litigation ref. 2026/114")]).await;
    run(&app, |conn| {
        diesel::update(erasures::table)
            .set(erasures::run_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    run_scheduled(&app).await;
    let state: String = run(&app, |conn| erasures::table.select(erasures::state).first(conn)).await;
    assert_eq!(state, "held");
    let email: String = run(&app, move |conn| users::table.find(id).select(users::email).first(conn)).await;
    assert_eq!(email, "zeph@example.org", "nothing deleted under a hold");
    let (_, page) = app.get("/staff/privacy").await;
    assert!(page.contains("Stopped by a legal hold") && page.contains("Litigation ref. 2026/114"), "{page}");
    as_user(&app, &zeph).await;
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("The deletion is paused"), "the learner is told");

    as_user(&app, &grace).await;
    let hold: i64 = run(&app, |conn| {
        lyceum::db::schema::legal_holds::table.select(lyceum::db::schema::legal_holds::id).first::<i64>(conn)
    })
    .await;
    app.post_form(&format!("/staff/privacy/holds/{hold}/lift"), &[("reason", "Case closed")]).await;
    run_scheduled(&app).await;
    let state: String = run(&app, |conn| erasures::table.select(erasures::state).first(conn)).await;
    assert_eq!(state, "done", "lifting the hold lets the erasure finish");
    let email: String = run(&app, move |conn| users::table.find(id).select(users::email).first(conn)).await;
    assert_eq!(email, format!("retired-{id}@erased.invalid"));
}
on_both!(ret_3_a_legal_hold_stops_erasure_until_lifted, legal_hold);

async fn tracked_requests(app: TestApp) {
    // promise: RGT-5 — requests are tracked with received, due and done dates, including ones staff enter.
    let ada = verified(&app, "ada").await;
    let grace = staff(&app).await;
    as_user(&app, &ada).await;
    let (status, _) = app.get("/staff/privacy").await;
    assert_eq!(status, Status::Forbidden);
    as_user(&app, &grace).await;
    let res = app
        .post_form(
            "/staff/privacy/requests",
            &[("kind", "rectification"), ("source", "email"), ("login", "ada"), ("details", "")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/staff/privacy").await;
    assert!(page.contains("Describe the request"));
    app.post_form(
        "/staff/privacy/requests",
        &[("kind", "rectification"), ("source", "email"), ("login", "nobody-here"), ("details", "x")],
    )
    .await;
    let (_, page) = app.get("/staff/privacy").await;
    assert!(page.contains("No account has the username or email"));
    app.post_form(
        "/staff/privacy/requests",
        &[
            ("kind", "rectification"),
            ("source", "email"),
            ("login", "ada"),
            ("details", "Email of 3 May: surname misspelt"),
        ],
    )
    .await;
    let (id, received, due): (i64, chrono::NaiveDateTime, chrono::NaiveDateTime) = run(&app, |conn| {
        data_requests::table.select((data_requests::id, data_requests::received_at, data_requests::due_at)).first(conn)
    })
    .await;
    assert_eq!(due - received, chrono::Duration::days(30));
    // Overdue requests stand out.
    run(&app, move |conn| {
        diesel::update(data_requests::table.find(id))
            .set(data_requests::due_at.eq(lyceum::db::now() - chrono::Duration::days(1)))
            .execute(conn)
    })
    .await;
    let (_, page) = app.get("/staff/privacy").await;
    assert!(page.contains("1 overdue") && page.contains("surname misspelt"), "{page}");
    // Closing needs an outcome.
    app.post_form(&format!("/staff/privacy/requests/{id}"), &[("status", "done"), ("outcome", "")]).await;
    let (_, page) = app.get("/staff/privacy").await;
    assert!(page.contains("Say what was done"));
    app.post_form(&format!("/staff/privacy/requests/{id}"), &[("status", "done"), ("outcome", "Surname corrected")])
        .await;
    let done: Option<chrono::NaiveDateTime> =
        run(&app, move |conn| data_requests::table.find(id).select(data_requests::done_at).first(conn)).await;
    assert!(done.is_some());
    let res = app.post_form(&format!("/staff/privacy/requests/{id}"), &[("status", "refused"), ("outcome", "x")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/staff/privacy").await;
    assert!(page.contains("is closed already"));
    // The learner sees it on their page too.
    as_user(&app, &ada).await;
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("rectification") && page.contains("Surname corrected"), "{page}");
}
on_both!(rgt_5_requests_are_tracked_with_received_due_and_done_dates, tracked_requests);

async fn retention(app: TestApp) {
    // promise: RET-1 — a retention period per category, enforced by a scheduled job, previewed by a dry run.
    // promise: RET-2 — accounts inactive past the period are warned by email, then deleted.
    // promise: RET-3 — a legal hold overrides every retention deletion.
    use lyceum::db::schema::{forum_threads, inactivity_warnings, legal_holds};
    use lyceum::privacy::retention::{self, Periods};
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    staff(&app).await;
    let mut forum = String::new();
    for name in ["ada", "bob", "dan"] {
        let l = verified(&app, name).await;
        as_user(&app, &l).await;
        crate::learning::enroll(&app, &c.slug).await;
        forum = app
            .client
            .get("/learn/intro-python/forum")
            .dispatch()
            .await
            .headers()
            .get_one("Location")
            .unwrap()
            .to_string();
        app.post_form(
            &format!("{forum}/threads"),
            &[("title", &format!("{name}'s question")), ("body", "Old question")],
        )
        .await;
    }
    let (ada, bob, dan) = (user_id(&app, "ada").await, user_id(&app, "bob").await, user_id(&app, "dan").await);
    let grace_id = user_id(&app, "grace").await;
    // Three years and more without signing in; old threads; bob's account is on hold.
    run(&app, move |conn| {
        let long_ago = lyceum::db::now() - chrono::Duration::days(1200);
        diesel::update(users::table.filter(users::id.eq_any([ada, bob, dan, grace_id])))
            .set((users::last_sign_in_at.eq(long_ago), users::created_at.eq(long_ago)))
            .execute(conn)?;
        diesel::update(forum_threads::table).set(forum_threads::last_post_at.eq(long_ago)).execute(conn)?;
        lyceum::privacy::place_hold(conn, bob, "Regulator inquiry 7", grace_id, lyceum::db::now())
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .await;
    let periods = Periods {
        inactive_account_days: 1095,
        inactive_warning_days: 30,
        course_record_days: 0,
        forum_post_days: 365,
        log_days: 90,
        certificate_days: 0,
        proctoring_days: 0,
        exam_result_days: 0,
        page_view_days: 0,
        cookie_choice_days: 0,
        campaign_event_days: 0,
        support_request_days: 0,
    };
    let outbox = app.config.outbox_dir();
    let dry = run(&app, move |conn| retention::run(conn, &periods, &outbox, lyceum::db::now(), true)).await;
    let count = |lines: &[retention::Line], what: &str| {
        lines.iter().find(|l| l.action.contains(what)).unwrap_or_else(|| panic!("{what} in {lines:?}")).count
    };
    assert_eq!(count(&dry, "warned"), 2, "ada and dan, not staff, not the held account");
    assert_eq!(count(&dry, "spared by a legal hold"), 1);
    assert_eq!(count(&dry, "forum threads"), 2, "bob's thread is held");
    let threads = run(&app, |conn| forum_threads::table.count().get_result::<i64>(conn)).await;
    assert_eq!(threads, 3, "a dry run deletes nothing");

    let outbox = app.config.outbox_dir();
    let done = run(&app, move |conn| retention::run(conn, &periods, &outbox, lyceum::db::now(), false)).await;
    assert_eq!(count(&done, "warned"), 2);
    let threads: Vec<String> = run(&app, |conn| forum_threads::table.select(forum_threads::title).load(conn)).await;
    assert_eq!(threads, ["bob's question"]);
    app.run_jobs().await;
    let mailed = |to: &'static str| {
        let outbox = app.config.outbox_dir();
        lyceum::notify::read_outbox(&outbox, 1000)
            .into_iter()
            .filter(|m| m.to == to && m.subject.contains("unless you sign in"))
            .count()
    };
    assert_eq!(mailed("ada@example.org"), 1);
    assert_eq!(mailed("bob@example.org"), 0, "a held account is not warned either");
    let outbox = app.config.outbox_dir();
    let again = run(&app, move |conn| retention::run(conn, &periods, &outbox, lyceum::db::now(), false)).await;
    assert_eq!(count(&again, "warned"), 0, "one warning per account");

    // Dan signs in after the warning; ada does not. The warning period passes.
    let dan_login =
        Learner { username: "dan".into(), email: "dan@example.org".into(), password: crate::common::PASSWORD.into() };
    as_user(&app, &dan_login).await;
    run(&app, |conn| {
        diesel::update(inactivity_warnings::table)
            .set(inactivity_warnings::delete_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    let outbox = app.config.outbox_dir();
    let last = run(&app, move |conn| retention::run(conn, &periods, &outbox, lyceum::db::now(), false)).await;
    assert_eq!(count(&last, "erased"), 1);
    run_scheduled(&app).await;
    let statuses: Vec<(i64, String)> =
        run(&app, |conn| users::table.select((users::id, users::status)).load(conn)).await;
    let status_of = |id: i64| statuses.iter().find(|(u, _)| *u == id).unwrap().1.clone();
    assert_eq!(status_of(ada), "erased");
    assert_eq!(status_of(dan), "active", "signing in after the warning keeps the account");
    assert_eq!(status_of(bob), "active", "the hold keeps bob's account");
    let source: String = run(&app, move |conn| {
        data_requests::table.filter(data_requests::user_id.eq(ada)).select(data_requests::source).first(conn)
    })
    .await;
    assert_eq!(source, "retention", "tracked like any request");
    let holds = run(&app, |conn| legal_holds::table.count().get_result::<i64>(conn)).await;
    assert_eq!(holds, 1);
    let (_, page) = app.get(&forum).await;
    assert!(!page.contains("ada's question"));
}
on_both!(ret_1_ret_2_ret_3_retention_warns_deletes_and_respects_holds, retention);

async fn statistics_retention(app: TestApp) {
    // promise: RET-1 — page views, cookie choices, newsletter events and support
    // requests each have a retention period, enforced by the scheduled run.
    use lyceum::db::schema::{
        campaign_events, campaigns, cookie_choices, page_views, support_replies, support_requests,
    };
    use lyceum::privacy::retention::{self, Periods};
    let grace = staff(&app).await;
    verified(&app, "ada").await;
    verified(&app, "bob").await;
    let (ada, bob, grace_id) = (user_id(&app, "ada").await, user_id(&app, "bob").await, user_id(&app, "grace").await);
    let periods = Periods::from_config(&app.config);
    assert_eq!(
        (periods.page_view_days, periods.cookie_choice_days, periods.campaign_event_days, periods.support_request_days),
        (365, 730, 365, 730),
        "the defaults the README lists"
    );
    // Rows from long ago and from today; bob's account is on hold.
    run(&app, move |conn| {
        let now = lyceum::db::now();
        let ago = |days: i64| now - chrono::Duration::days(days);
        for (visitor, at) in [("old", ago(366)), ("new", ago(364))] {
            diesel::insert_into(page_views::table)
                .values((
                    page_views::visitor.eq(format!("{visitor:0>32}")),
                    page_views::path.eq("/courses"),
                    page_views::browser.eq("Firefox"),
                    page_views::os.eq("Linux"),
                    page_views::created_at.eq(at),
                ))
                .execute(conn)?;
        }
        for (visitor, at) in [("old", ago(731)), ("new", ago(729))] {
            diesel::insert_into(cookie_choices::table)
                .values((
                    cookie_choices::visitor.eq(format!("{visitor:0>32}")),
                    cookie_choices::analytics.eq(true),
                    cookie_choices::created_at.eq(at),
                ))
                .execute(conn)?;
        }
        let campaign: i64 = diesel::insert_into(campaigns::table)
            .values((
                campaigns::subject.eq("Old news"),
                campaigns::body.eq("Hello"),
                campaigns::created_by.eq(grace_id),
                campaigns::created_at.eq(ago(400)),
                campaigns::recipients.eq(2),
            ))
            .returning(campaigns::id)
            .get_result(conn)?;
        for (user, kind, at) in
            [(ada, "sent", ago(366)), (ada, "click", ago(366)), (bob, "sent", ago(366)), (ada, "open", ago(10))]
        {
            diesel::insert_into(campaign_events::table)
                .values((
                    campaign_events::campaign_id.eq(campaign),
                    campaign_events::user_id.eq(user),
                    campaign_events::kind.eq(kind),
                    campaign_events::url.eq(None::<String>),
                    campaign_events::created_at.eq(at),
                ))
                .execute(conn)?;
        }
        for (user, subject, status, at) in [
            (Some(ada), "Old and answered", "answered", ago(731)),
            (None, "Old and never answered", "open", ago(731)),
            (Some(bob), "Old, of a held account", "closed", ago(731)),
            (None, "Recent", "answered", ago(729)),
        ] {
            let id: i64 = diesel::insert_into(support_requests::table)
                .values((
                    support_requests::user_id.eq(user),
                    support_requests::name.eq("Someone"),
                    support_requests::email.eq("someone@example.org"),
                    support_requests::subject.eq(subject),
                    support_requests::message.eq("A question"),
                    support_requests::status.eq(status),
                    support_requests::created_at.eq(at),
                    support_requests::updated_at.eq(at),
                ))
                .returning(support_requests::id)
                .get_result(conn)?;
            diesel::insert_into(support_replies::table)
                .values((
                    support_replies::request_id.eq(id),
                    support_replies::staff_id.eq(grace_id),
                    support_replies::body.eq("An answer"),
                    support_replies::created_at.eq(at),
                ))
                .execute(conn)?;
        }
        lyceum::privacy::place_hold(conn, bob, "Regulator inquiry 9", grace_id, now)
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .await;

    // The dry run counts what would go and deletes nothing.
    let outbox = app.config.outbox_dir();
    let dry = run(&app, move |conn| retention::run(conn, &periods, &outbox, lyceum::db::now(), true)).await;
    let count = |lines: &[retention::Line], category: &str| {
        lines.iter().filter(|l| l.category == category).map(|l| l.count).sum::<usize>()
    };
    assert_eq!(
        [
            count(&dry, "page views"),
            count(&dry, "cookie choices"),
            count(&dry, "campaign events"),
            count(&dry, "support requests")
        ],
        [1, 1, 2, 2],
        "{dry:?}"
    );
    let views = || run(&app, |conn| page_views::table.count().get_result::<i64>(conn));
    assert_eq!(views().await, 2, "a dry run deletes nothing");

    // The scheduled run, with the configured periods.
    run_scheduled(&app).await;
    let visitors: Vec<String> = run(&app, |conn| page_views::table.select(page_views::visitor).load(conn)).await;
    assert_eq!(visitors, [format!("{:0>32}", "new")]);
    let visitors: Vec<String> =
        run(&app, |conn| cookie_choices::table.select(cookie_choices::visitor).load(conn)).await;
    assert_eq!(visitors, [format!("{:0>32}", "new")]);
    let mut events: Vec<(i64, String)> =
        run(&app, |conn| campaign_events::table.select((campaign_events::user_id, campaign_events::kind)).load(conn))
            .await;
    events.sort();
    let mut expected = vec![(ada, "open".to_string()), (bob, "sent".to_string())];
    expected.sort();
    assert_eq!(events, expected, "old events go, except a held account's");
    let mut subjects: Vec<String> =
        run(&app, |conn| support_requests::table.select(support_requests::subject).load(conn)).await;
    subjects.sort();
    assert_eq!(subjects, ["Old, of a held account", "Recent"]);
    let replies = run(&app, |conn| support_replies::table.count().get_result::<i64>(conn)).await;
    assert_eq!(replies, 2, "answers go with their request");

    // Staff see every category with its period.
    as_user(&app, &grace).await;
    let (status, page) = app.get("/staff/privacy").await;
    assert_eq!(status, Status::Ok);
    for (category, period) in [
        ("page views", "365 days"),
        ("cookie choices", "730 days"),
        ("campaign events", "365 days"),
        ("support requests", "730 days"),
        ("logs", "90 days"),
    ] {
        assert!(
            page.contains(&format!("<td>{category}</td>")) && page.contains(&format!("<td>{period}</td>")),
            "{category}: {page}"
        );
    }
}
on_both!(ret_1_statistics_choices_events_and_support_requests_expire, statistics_retention);

#[rocket::async_test]
async fn ret_1_retention_dry_run_from_the_command_line() {
    let app = TestApp::sqlite().await;
    verified(&app, "ada").await;
    run(&app, |conn| {
        diesel::update(users::table)
            .set(users::last_sign_in_at.eq(lyceum::db::now() - chrono::Duration::days(2000)))
            .execute(conn)
    })
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lyceum"))
        .args(["retention", "run", "--dry-run"])
        .env("LYCEUM_DATABASE_URL", &app.config.database_url)
        .env("LYCEUM_DATA_DIR", app.config.data_dir.clone())
        .env("LYCEUM_DEMO", "false")
        .env("LYCEUM_SECRET_KEY", crate::common::TEST_SECRET)
        .env("LYCEUM_LOG", "warn")
        .output()
        .expect("the lyceum binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Dry run: nothing was deleted."), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("would be warned") && l.contains(" 1 ")), "{stdout}");
    let warnings =
        run(&app, |conn| lyceum::db::schema::inactivity_warnings::table.count().get_result::<i64>(conn)).await;
    assert_eq!(warnings, 0);
}

/// The newest mail to `to` in the outbox, parsed: (HTML body, text body, raw headers).
pub(crate) fn newest_mail(app: &TestApp, to: &str, subject: &str) -> Option<(String, String, String)> {
    let dir = app.config.outbox_dir();
    let message = lyceum::notify::read_outbox(&dir, 1000).into_iter().find(|m| m.to == to && m.subject == subject)?;
    let raw = std::fs::read(dir.join(format!("{}.eml", message.id))).ok()?;
    let parsed = mail_parser::MessageParser::default().parse(&raw)?;
    let headers = String::from_utf8_lossy(&raw[..parsed.root_part().raw_body_offset() as usize]).to_string();
    Some((parsed.body_html(0)?.into_owned(), parsed.body_text(0)?.into_owned(), headers))
}

async fn newsletters(app: TestApp) {
    // promise: COM-1 — marketing only with opt-in (unchecked at sign-up), one-click unsubscribe in every one.
    // promise: COM-2 — opens and clicks are tracked only for learners who allowed it.
    // promise: RET-4 — the opt-in is kept until withdrawn.
    // promise: RGT-3 — a learner can object to profiling; promise: RGT-4 — opting out changes nothing else.
    use lyceum::db::schema::{campaign_events, communication_choices, communication_preferences};
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let (_, form) = app.get("/signup").await;
    assert!(form.contains(r#"name="marketing" value="true">"#), "the opt-in is not ticked by default");
    let mut learners = Vec::new();
    for (name, opt_in) in [("news", true), ("quiet", false), ("tracked", true), ("objector", true), ("late", true)] {
        let extra: &[(&str, &str)] = if opt_in { &[("marketing", "true")] } else { &[] };
        let res = app.sign_up_with(name, extra).await;
        assert_eq!(res.status(), Status::SeeOther);
        let l = Learner {
            username: name.into(),
            email: format!("{name}@example.org"),
            password: crate::common::PASSWORD.into(),
        };
        app.verify(&l).await;
        learners.push(l);
    }
    let choices: Vec<(i64, String, bool, String)> = run(&app, |conn| {
        communication_choices::table
            .select((
                communication_choices::user_id,
                communication_choices::choice,
                communication_choices::value,
                communication_choices::method,
            ))
            .load(conn)
    })
    .await;
    assert_eq!(choices.len(), 4, "each opt-in at sign-up is recorded, none for the learner who left it unticked");
    assert!(
        choices.iter().all(|(_, choice, value, method)| choice == "marketing_email" && *value && method == "signup")
    );

    // Tracking is allowed by one learner; another allows it but objects to profiling.
    as_user(&app, &learners[2]).await;
    app.post_form("/account/communications", &[("marketing_email", "true"), ("email_tracking", "true")]).await;
    as_user(&app, &learners[3]).await;
    app.post_form(
        "/account/communications",
        &[("marketing_email", "true"), ("email_tracking", "true"), ("object_profiling", "true")],
    )
    .await;
    let (_, page) = app.get("/account/communications").await;
    assert!(page.contains(r#"name="object_profiling" value="true" checked"#));
    // RGT-4: the objector learns like anyone else.
    let res = crate::learning::enroll(&app, &c.slug).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (status, _) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    assert_eq!(status, Status::Ok);

    // Staff send a newsletter; "late" withdraws in settings before it goes out.
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let (_, page) = app.get("/staff/newsletters").await;
    assert!(page.contains("4 learner(s) opted in"), "{page}");
    // Staff write links within the site as they appear on it: relative.
    let body = "New this month: [Data science](https://courses.example.org/ds?from=news&x=1), \
                [Python](/courses/intro-python), the [catalogue][c] and <a href=\"/about\">us</a>.\n\n\
                [c]: /courses";
    app.post_form("/staff/newsletters", &[("subject", "November news"), ("body", body)]).await;
    as_user(&app, &learners[4]).await;
    app.post_form("/account/communications", &[]).await;
    app.run_jobs().await;
    let mail = |name: &str| newest_mail(&app, &format!("{name}@example.org"), "November news");
    assert!(mail("quiet").is_none(), "no opt-in, no newsletter");
    assert!(mail("late").is_none(), "withdrawn before sending, nothing sent");
    let (html, text, headers) = mail("news").expect("the subscriber gets it");
    assert!(headers.contains("List-Unsubscribe: <http://lyceum.test/unsubscribe/"), "{headers}");
    assert!(headers.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{headers}");
    assert!(html.contains(r#"href="https://courses.example.org/ds?from=news&amp;x=1""#), "direct link: {html}");
    assert!(!html.contains("/o/") && !html.contains("/c/"), "no pixel, no redirect without consent");
    assert!(text.contains("Unsubscribe with one click: http://lyceum.test/unsubscribe/"));
    // Relative links are made absolute on the site's address, in both parts.
    for path in ["/courses/intro-python", "/courses", "/about"] {
        assert!(html.contains(&format!(r#"href="http://lyceum.test{path}""#)), "{path} absolute: {html}");
        assert!(text.contains(&format!("http://lyceum.test{path}")), "{path} absolute: {text}");
    }
    assert!(!html.contains(r#"href="/"#), "no relative link left: {html}");
    assert!(
        !text.contains("](/") && !text.contains("]: /") && !text.contains(r#"href="/"#),
        "no relative link left: {text}"
    );
    // The footer says what it is: the newsletter they subscribed to, not a service message.
    assert!(html.contains("newsletter") && html.contains("which you subscribed to"), "{html}");
    assert!(html.contains(r#"<a href="http://lyceum.test/unsubscribe/"#), "{html}");
    assert!(!html.contains("service message"), "{html}");
    assert!(text.contains("newsletter") && text.contains("which you subscribed to"), "{text}");
    let (service_html, _, _) =
        newest_mail(&app, "news@example.org", "Confirm your email address").expect("the verification mail");
    assert!(service_html.contains("It is a service message about your account."), "{service_html}");
    assert!(!service_html.contains("which you subscribed to"), "{service_html}");
    let (objector_html, _, _) = mail("objector").unwrap();
    assert!(!objector_html.contains("/o/") && !objector_html.contains("/c/"), "an objection switches tracking off");
    let (tracked_html, _, _) = mail("tracked").unwrap();
    let pixel = regex::Regex::new(r#"src="http://lyceum.test(/o/[^"]+)""#).unwrap().captures(&tracked_html).unwrap()[1]
        .to_string();
    let click = regex::Regex::new(r#"href="http://lyceum.test(/c/[^"]+)""#).unwrap().captures(&tracked_html).unwrap()
        [1]
    .replace("&amp;", "&");
    app.sign_out().await;
    let res = app.client.get(pixel.clone()).dispatch().await;
    assert_eq!(res.content_type(), Some(rocket::http::ContentType::GIF));
    let res = app.client.get(click.clone()).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(res.headers().get_one("Location"), Some("https://courses.example.org/ds?from=news&x=1"));
    // Bad input: no open redirect through the tracking link.
    let token = click.trim_start_matches("/c/").split('?').next().unwrap().to_string();
    let (status, _) = app.get(&format!("/c/{token}?to=https%3A%2F%2Fevil.example")).await;
    assert_eq!(status, Status::NotFound);
    let events: Vec<String> = run(&app, |conn| {
        campaign_events::table
            .filter(campaign_events::kind.ne("sent"))
            .order(campaign_events::id.asc())
            .select(campaign_events::kind)
            .load(conn)
    })
    .await;
    assert_eq!(events, ["open", "click"], "only the learner who allowed it is counted");
    // A relative link of the campaign is tracked as its absolute form.
    let wrapped = regex::Regex::new(
        r#"href="http://lyceum.test(/c/[^"]+to=http%3A%2F%2Flyceum%2Etest%2Fcourses%2Fintro%2Dpython)""#,
    )
    .unwrap()
    .captures(&tracked_html)
    .unwrap_or_else(|| panic!("the relative link is tracked: {tracked_html}"))[1]
        .to_string();
    let res = app.client.get(wrapped).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(res.headers().get_one("Location"), Some("http://lyceum.test/courses/intro-python"));

    // One-click unsubscribe (RFC 8058): no sign-in, no CSRF token.
    let link =
        headers.split("List-Unsubscribe: <http://lyceum.test").nth(1).unwrap().split('>').next().unwrap().to_string();
    let (status, page) = app.get(&link).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Stop receiving"));
    // Bad input: a forged token changes nothing.
    let forged = format!("{}0", &link[..link.len() - 1]);
    let res = app.post_raw(&forged, "List-Unsubscribe=One-Click").await;
    assert_eq!(res.status(), Status::BadRequest);
    assert!(res.into_string().await.unwrap().contains("not valid"));
    let subscribed = run(&app, |conn| {
        communication_preferences::table
            .filter(communication_preferences::marketing_email.eq(true))
            .count()
            .get_result::<i64>(conn)
    })
    .await;
    assert_eq!(subscribed, 3);
    let res = app.post_raw(&link, "List-Unsubscribe=One-Click").await;
    assert_eq!(res.status(), Status::Ok);
    assert!(res.into_string().await.unwrap().contains("no more newsletters"));
    let news = user_id(&app, "news").await;
    let last: (bool, String) = run(&app, move |conn| {
        communication_choices::table
            .filter(communication_choices::user_id.eq(news))
            .order(communication_choices::id.desc())
            .select((communication_choices::value, communication_choices::method))
            .first(conn)
    })
    .await;
    assert_eq!(last, (false, "one_click".to_string()));

    // Staff see totals only.
    as_user(&app, &grace).await;
    let (_, page) = app.get("/staff/newsletters").await;
    assert!(
        page.contains("<td>November news</td>") && page.contains("<td>4</td><td>3</td><td>1</td><td>1</td>"),
        "{page}"
    );
    assert!(!page.contains("tracked@"), "no individual is shown");

    // RET-4: years pass; retention leaves the opt-in alone until withdrawn.
    run(&app, |conn| {
        diesel::update(communication_preferences::table)
            .set(communication_preferences::updated_at.eq(lyceum::db::now() - chrono::Duration::days(4000)))
            .execute(conn)
    })
    .await;
    run_scheduled(&app).await;
    let tracked = user_id(&app, "tracked").await;
    let still: bool = run(&app, move |conn| {
        communication_preferences::table.find(tracked).select(communication_preferences::marketing_email).first(conn)
    })
    .await;
    assert!(still);
}
on_both!(com_1_com_2_ret_4_rgt_3_rgt_4_newsletters_only_with_opt_in, newsletters);

const CHROME_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

async fn browse(app: &TestApp, path: &str) -> (Status, String, Vec<String>) {
    let res =
        app.client.get(path.to_string()).header(rocket::http::Header::new("User-Agent", CHROME_UA)).dispatch().await;
    let set: Vec<String> =
        res.headers().get("Set-Cookie").map(|c| c.split('=').next().unwrap_or_default().to_string()).collect();
    let status = res.status();
    (status, res.into_string().await.unwrap_or_default(), set)
}

async fn cookie_consent(app: TestApp) {
    // promise: COM-3 — only essential cookies without consent; analytics first-party and opt-in; the choice recorded.
    // promise: COM-4 — usage data is collected only as the cookie settings allow, and shown in aggregate.
    use lyceum::db::schema::{cookie_choices, page_views};
    let views = || run(&app, |conn| page_views::table.count().get_result::<i64>(conn));
    let (status, home, set) = browse(&app, "/").await;
    assert_eq!(status, Status::Ok);
    assert!(home.contains("id=\"cookie-banner\"") && home.contains("Allow usage statistics"));
    assert!(
        set.iter().all(|name| ["lyceum_csrf", "lyceum_flash", "lyceum_session"].contains(&name.as_str())),
        "{set:?}"
    );
    browse(&app, "/courses").await;
    assert_eq!(views().await, 0, "nothing is counted before a choice");

    // Essential only: still nothing counted, and the banner is gone.
    let res = app.post_form("/cookies", &[("analytics", "false"), ("back", "/courses")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/courses"));
    let (_, page, _) = browse(&app, "/courses").await;
    assert!(!page.contains("id=\"cookie-banner\""));
    assert_eq!(views().await, 0);

    // Allowed: pages are counted with coarse facts only.
    let res = app.post_form("/cookies", &[("analytics", "true"), ("back", "//evil.example/")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/cookies"), "never sent off-site");
    browse(&app, "/courses").await;
    browse(&app, "/").await;
    browse(&app, "/static/css/lyceum.css").await;
    let rows: Vec<(String, String, String, Option<String>)> = run(&app, |conn| {
        page_views::table
            .order(page_views::id.asc())
            .select((page_views::path, page_views::browser, page_views::os, page_views::country))
            .load(conn)
    })
    .await;
    let paths: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(paths, ["/courses", "/"], "pages, not assets");
    assert!(rows.iter().all(|r| r.1 == "Chrome" && r.2 == "Linux" && r.3.is_none()));
    let choices: Vec<(String, bool)> = run(&app, |conn| {
        cookie_choices::table
            .order(cookie_choices::id.asc())
            .select((cookie_choices::visitor, cookie_choices::analytics))
            .load(conn)
    })
    .await;
    assert_eq!(choices.len(), 2, "each choice is recorded");
    assert_eq!(choices[0].0, choices[1].0, "under one visitor id");
    assert_eq!((choices[0].1, choices[1].1), (false, true));

    // Withdrawn again: counting stops.
    app.post_form("/cookies", &[("analytics", "false"), ("back", "/")]).await;
    let before = views().await;
    browse(&app, "/courses").await;
    assert_eq!(views().await, before);

    // Staff see totals, nothing about anyone.
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let (status, page) = app.get("/staff/analytics").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("<td>/courses</td><td>1</td>") && page.contains("<td>Chrome</td>"), "{page}");
    assert!(!page.contains(&choices[0].0), "no visitor id is shown");
}
on_both!(com_3_com_4_cookie_banner_and_analytics_only_with_consent, cookie_consent);

/// The columns of `table`, as the database itself describes them.
fn columns_of(conn: &mut lyceum::db::Conn, table: &str) -> Vec<String> {
    use diesel::sql_types::Text;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let sql = match conn {
        lyceum::db::DbConnection::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}')"),
        lyceum::db::DbConnection::Pg(_) => format!(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
    };
    let mut names: Vec<String> =
        diesel::sql_query(sql).load::<Name>(conn).unwrap().into_iter().map(|n| n.name).collect();
    names.sort();
    names
}

async fn statistics_without_secrets(app: TestApp) {
    // promise: COM-4 — usage statistics record which kind of page was read (its
    // route), never the path's values or the query string: no token, no user
    // id, no username, no certificate code; a visitor's choice carries no account.
    use lyceum::db::schema::page_views;
    let (ada, _grace, c) = crate::certificates::verified_learner(&app).await;
    let ada_id = user_id(&app, "ada").await;
    verified(&app, "quillfeather").await;
    as_user(&app, &ada).await;
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    let code = crate::certificates::code_of(&app).await;

    // Ada, signed in, allows statistics.
    let res = app.post_form("/cookies", &[("analytics", "true"), ("back", "/")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    // Pages whose paths carry secrets and names.
    let (status, _, _) = browse(&app, "/u/quillfeather").await;
    assert_eq!(status, Status::Ok);
    let (status, _, _) = browse(&app, &format!("/certificates/{code}")).await;
    assert_eq!(status, Status::Ok);
    let (status, _, _) = browse(&app, "/courses?q=privatesearchterm&utm_source=leakycampaign").await;
    assert_eq!(status, Status::Ok);
    let secret = app.config.resolve_secret().unwrap();
    let unsubscribe = lyceum::privacy::comms::LinkSigner::new(&secret).unsubscribe_token(ada_id);
    let (status, _, _) = browse(&app, &format!("/unsubscribe/{unsubscribe}")).await;
    assert_eq!(status, Status::Ok);
    let (status, _, _) = browse(&app, "/no-such-page/quillfeather").await;
    assert_eq!(status, Status::NotFound);
    app.sign_out().await;
    app.post_form("/password/forgot", &[("email", &ada.email)]).await;
    let reset = app.mailed_link(&ada.email, "/password/reset/").await.expect("a reset link");
    let token = reset.trim_start_matches("/password/reset/").to_string();
    assert!(token.len() >= 16, "{reset}");
    let (status, _, _) = browse(&app, &reset).await;
    assert_eq!(status, Status::Ok);

    let secrets = [
        token.as_str(),
        unsubscribe.as_str(),
        code.as_str(),
        "quillfeather",
        "privatesearchterm",
        "leakycampaign",
        "utm_source",
        "no-such-page",
    ];
    let rows = run(&app, |conn| Ok::<_, String>(every_row(conn))).await;
    let views: Vec<&String> = rows.iter().filter(|(table, _)| table == "page_views").map(|(_, row)| row).collect();
    assert!(!views.is_empty());
    for row in &views {
        for secret in secrets {
            assert!(!row.contains(secret), "{secret} is stored in a page view: {row}");
        }
    }
    let paths: Vec<String> =
        run(&app, |conn| page_views::table.order(page_views::id.asc()).select(page_views::path).load(conn)).await;
    // Signing out and asking for the link pass by the home and sign-in pages.
    let paths: Vec<&str> = paths.iter().map(String::as_str).filter(|p| !["/", "/signin"].contains(p)).collect();
    assert_eq!(
        paths,
        ["/u/{username}", "/certificates/{code}", "/courses", "/unsubscribe/{token}", "/password/reset/{token}"],
        "route templates, the 404 not at all"
    );

    // Staff read the totals: kinds of pages, none of the values.
    let grace = Learner {
        username: "grace".into(),
        email: "grace@example.org".into(),
        password: crate::common::PASSWORD.into(),
    };
    as_user(&app, &grace).await;
    let (status, page) = app.get("/staff/analytics").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("<td>/password/reset/{token}</td><td>1</td>"), "{page}");
    assert!(page.contains("<td>/certificates/{code}</td><td>1</td>"), "{page}");
    for secret in secrets {
        assert!(!page.contains(secret), "{secret} is shown on /staff/analytics");
    }

    // The choice made signed in carries no account.
    let choices = run(&app, |conn| Ok::<_, String>(every_row(conn))).await;
    let choices: Vec<serde_json::Value> = choices
        .into_iter()
        .filter(|(table, _)| table == "cookie_choices")
        .map(|(_, row)| serde_json::from_str(&row).unwrap())
        .collect();
    assert_eq!(choices.len(), 1, "the choice is recorded");
    for choice in &choices {
        let row = choice.as_object().unwrap();
        assert!(!row.keys().any(|k| k.contains("user") || k.contains("account")), "no account on a choice: {row:?}");
    }
    let cols = run(&app, |conn| Ok::<_, String>(columns_of(conn, "cookie_choices"))).await;
    assert!(!cols.iter().any(|c| c == "user_id"), "{cols:?}");
    // The cookies page says so, and for how long views are kept.
    let (_, page) = app.get("/cookies").await;
    assert!(page.contains("never linked to your name or account") && page.contains("deleted after 365 days"), "{page}");
    assert!(!page.contains("include these counts in your copy"), "{page}");
}
on_both!(com_4_statistics_keep_route_templates_and_no_account, statistics_without_secrets);

async fn statistics_migration(app: TestApp) {
    // Page views and cookie choices as versions before migration 000041 stored
    // them (raw paths, an account on a choice), then the migration.
    use diesel::connection::SimpleConnection;
    use lyceum::db::schema::{cookie_choices, page_views};
    let sqlite = app.config.database_url.starts_with("sqlite");
    let (down, up) = if sqlite {
        (
            include_str!("../../migrations/sqlite/2026-12-06-000041_statistics_without_secrets/down.sql"),
            include_str!("../../migrations/sqlite/2026-12-06-000041_statistics_without_secrets/up.sql"),
        )
    } else {
        (
            include_str!("../../migrations/postgres/2026-12-06-000041_statistics_without_secrets/down.sql"),
            include_str!("../../migrations/postgres/2026-12-06-000041_statistics_without_secrets/up.sql"),
        )
    };
    verified(&app, "ada").await;
    let ada = user_id(&app, "ada").await;
    let old_paths = [
        ("/password/reset/Zq8TopSecretResetToken", Some("/password/reset/{token}")),
        ("/unsubscribe/17.Mac0fTheUnsubscribeLink", Some("/unsubscribe/{token}")),
        ("/u/ada", Some("/u/{username}")),
        ("/certificates/LYC-7Q2K-9XPA", Some("/certificates/{code}")),
        ("/courses", Some("/courses")),
        ("/courses/intro-python", Some("/courses/{slug}")),
        ("/learn/intro-python/units/5", Some("/learn/{slug}/units/{unit_id}")),
        ("/", Some("/")),
        ("/privacy", Some("/{doc}")),
        ("/staff/support/12", Some("/staff/support/{id}")),
        ("/a/route/that/is/gone", None),
        ("/courses/intro-python/and-more", None),
    ];
    let statements = old_paths
        .iter()
        .map(|(path, _)| {
            format!(
                "INSERT INTO page_views (visitor, path, browser, os, created_at) \
                 VALUES ('0123456789abcdef0123456789abcdef', '{path}', 'Firefox', 'Linux', CURRENT_TIMESTAMP);"
            )
        })
        .collect::<String>();
    run(&app, move |conn| {
        conn.batch_execute(down)?;
        conn.batch_execute(&statements)?;
        conn.batch_execute(&format!(
            "INSERT INTO cookie_choices (visitor, user_id, analytics, created_at) \
             VALUES ('0123456789abcdef0123456789abcdef', {ada}, TRUE, CURRENT_TIMESTAMP);"
        ))?;
        conn.batch_execute(up)
    })
    .await;
    let paths: Vec<String> =
        run(&app, |conn| page_views::table.order(page_views::id.asc()).select(page_views::path).load(conn)).await;
    let expected: Vec<&str> = old_paths.iter().filter_map(|(_, route)| *route).collect();
    assert_eq!(paths, expected, "rewritten to their routes; unrecognised ones deleted");
    let choices: Vec<(String, bool)> =
        run(&app, |conn| cookie_choices::table.select((cookie_choices::visitor, cookie_choices::analytics)).load(conn))
            .await;
    assert_eq!(choices, [("0123456789abcdef0123456789abcdef".to_string(), true)], "the choice stays");
    let cols = run(&app, |conn| Ok::<_, String>(columns_of(conn, "cookie_choices"))).await;
    assert_eq!(cols, ["analytics", "created_at", "id", "visitor"], "without the account");
}
on_both!(com_4_migration_rewrites_recorded_paths_to_routes, statistics_migration);

async fn policies(app: TestApp) {
    // promise: COM-5 — versioned policies with "Last updated"; a material change is announced and must be accepted; acceptances recorded.
    use lyceum::db::schema::{policy_acceptances, policy_versions};
    for path in ["/privacy", "/terms", "/cookie-policy"] {
        let (status, page) = app.get(path).await;
        assert_eq!(status, Status::Ok, "{path}");
        assert!(page.contains("Last updated") && page.contains("(version 1)"), "{path}: {page}");
    }
    let ada = verified(&app, "ada").await;
    let ada_id = user_id(&app, "ada").await;
    let accepted = move |app: &TestApp| {
        let app_db = app.db();
        async move {
            app_db
                .run(move |conn| {
                    Ok::<_, lyceum::web::AppError>(
                        policy_acceptances::table
                            .inner_join(policy_versions::table)
                            .filter(policy_acceptances::user_id.eq(ada_id))
                            .order(policy_acceptances::id.asc())
                            .select((policy_versions::kind, policy_versions::version, policy_acceptances::method))
                            .load::<(String, i32, String)>(conn)?,
                    )
                })
                .await
                .unwrap()
        }
    };
    let at_signup = accepted(&app).await;
    assert_eq!(at_signup.len(), 3, "sign-up records the versions accepted: {at_signup:?}");
    assert!(at_signup.iter().all(|(_, v, m)| *v == 1 && m == "signup"));

    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    // Bad input: a version without a word on what changed is refused.
    app.post_form("/staff/policies", &[("kind", "terms"), ("body", "New terms"), ("changes", "")]).await;
    let (_, page) = app.get("/staff/policies").await;
    assert!(page.contains("Say in a sentence or two what changed"));
    // A minor edit: a new version, no banner, no acceptance needed.
    app.post_form(
        "/staff/policies",
        &[("kind", "terms"), ("body", "Be kind in the forums."), ("changes", "Typo fixed")],
    )
    .await;
    let (_, page) = app.get("/terms").await;
    assert!(page.contains("(version 2)") && page.contains("Be kind in the forums.") && page.contains("Typo fixed"));
    assert!(!page.contains("id=\"policy-banner\""));
    app.sign_out().await;
    let res = app.sign_in(&ada, false).await;
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"), "a minor edit asks nothing");

    // A material change: banner, email, acceptance at the next sign-in.
    as_user(&app, &grace).await;
    app.post_form(
        "/staff/policies",
        &[
            ("kind", "privacy"),
            ("body", "We now share completion with sponsors you choose."),
            ("changes", "Sponsors you choose see your completion"),
            ("material", "true"),
        ],
    )
    .await;
    // Signed in, staff accept it too before going on; anyone else sees the banner.
    let res = app.client.get("/courses").dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some("/policies/accept?next=%2Fcourses"));
    app.sign_out().await;
    let (_, page) = app.get("/courses").await;
    assert!(
        page.contains("id=\"policy-banner\"") && page.contains("Sponsors you choose see your completion"),
        "{page}"
    );
    app.run_jobs().await;
    let mailed = lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000)
        .into_iter()
        .filter(|m| m.subject == "We changed our privacy policy")
        .count();
    assert_eq!(mailed, 2, "every active account is told");
    app.sign_out().await;
    let res = app.sign_in(&ada, false).await;
    assert_eq!(res.headers().get_one("Location"), Some("/policies/accept"));
    assert_eq!(app.signed_in_as().await, None, "no session before accepting");
    let (status, page) = app.get("/policies/accept").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Privacy policy") && page.contains("Sponsors you choose see your completion"));
    let res = app.post_form("/policies/accept", &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/policies/accept"));
    assert_eq!(app.signed_in_as().await, None);
    app.post_form("/policies/accept", &[("accept", "true")]).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    let after = accepted(&app).await;
    assert_eq!(after.last().unwrap(), &("privacy".to_string(), 2, "sign_in".to_string()));
    app.sign_out().await;
    let res = app.sign_in(&ada, false).await;
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"), "accepted once, not asked again");
    // Bad input: the acceptance page without a pending sign-in sends to sign-in.
    app.sign_out().await;
    let res = app.client.get("/policies/accept").dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some("/signin"));
}
on_both!(com_5_policies_are_versioned_and_material_changes_accepted, policies);

async fn breach_notice(app: TestApp) {
    // promise: SEC-5 — staff notify affected users by email and post a notice on the home page until withdrawn.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    crate::learning::enroll(&app, &c.slug).await;
    verified(&app, "bob").await;
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    // Bad input: an unknown course or account is refused and nothing is sent.
    app.post_form(
        "/staff/notices",
        &[("title", "Exposure"), ("body", "Details"), ("audience", "course"), ("course", "nope")],
    )
    .await;
    let (_, page) = app.get("/staff/notices").await;
    assert!(page.contains("No course has the address"));
    app.post_form(
        "/staff/notices",
        &[("title", "Exposure"), ("body", "Details"), ("audience", "list"), ("list", "ada\nnobody")],
    )
    .await;
    let (_, page) = app.get("/staff/notices").await;
    assert!(page.contains("No account has the username or email “nobody”"));
    app.post_form(
        "/staff/notices",
        &[
            ("title", "Quiz answers were visible to other learners"),
            ("body", "On 20 November quiz answers of **Introduction to Python** were visible for two hours. Nothing else was exposed."),
            ("audience", "course"),
            ("course", "intro-python"),
        ],
    )
    .await;
    app.run_jobs().await;
    let told = |to: &'static str| {
        lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000)
            .into_iter()
            .filter(|m| m.to == to && m.subject.starts_with("Important:"))
            .count()
    };
    assert_eq!((told("ada@example.org"), told("bob@example.org")), (1, 0), "only the affected learners are emailed");
    app.sign_out().await;
    let (_, home) = app.get("/").await;
    assert!(
        home.contains("Quiz answers were visible to other learners")
            && home.contains("<strong>Introduction to Python</strong>")
    );
    as_user(&app, &grace).await;
    let (_, page) = app.get("/staff/notices").await;
    assert!(page.contains("learners of course intro-python") && page.contains("<td>1</td>"), "{page}");
    let id: i64 = run(&app, |conn| {
        lyceum::db::schema::breach_notices::table.select(lyceum::db::schema::breach_notices::id).first(conn)
    })
    .await;
    app.post_form(&format!("/staff/notices/{id}/withdraw"), &[]).await;
    let (_, home) = app.get("/").await;
    assert!(!home.contains("Quiz answers were visible"), "withdrawn, gone from the home page");
}
on_both!(sec_5_breach_notices_reach_the_affected_and_the_home_page, breach_notice);

async fn contact_and_support(app: TestApp) {
    // promise: COM-6 — the contact form creates a support request that staff answer by email.
    let (status, page) = app.get("/contact").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("id=\"contact-form\""));
    // Bad input: what was typed comes back with the reasons; nothing is stored.
    let res = app
        .post_form(
            "/contact",
            &[("name", "Lin"), ("email", "not an address"), ("subject", "Certificates"), ("message", "")],
        )
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Give an email address we can answer to.") && page.contains("value=\"Certificates\""));
    let count = || run(&app, |conn| lyceum::db::schema::support_requests::table.count().get_result::<i64>(conn));
    assert_eq!(count().await, 0);
    let res = app
        .post_form(
            "/contact",
            &[
                ("name", "Lin"),
                ("email", "lin@example.org"),
                ("subject", "Certificates"),
                ("message", "Do you offer certificates?"),
            ],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(count().await, 1);
    // A signed-in learner finds their details filled in.
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let (_, page) = app.get("/contact").await;
    assert!(page.contains("value=\"ada@example.org\"") && page.contains("value=\"Ada Lovelace\""));

    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let (_, list) = app.get("/staff/support").await;
    assert!(list.contains("Certificates") && list.contains("<strong>open</strong>"));
    let id: i64 = run(&app, |conn| {
        lyceum::db::schema::support_requests::table.select(lyceum::db::schema::support_requests::id).first(conn)
    })
    .await;
    let (_, page) = app.get(&format!("/staff/support/{id}")).await;
    assert!(page.contains("Do you offer certificates?") && page.contains("lin@example.org"));
    app.post_form(&format!("/staff/support/{id}/answer"), &[("body", "")]).await;
    let (_, page) = app.get(&format!("/staff/support/{id}")).await;
    assert!(page.contains("Write the answer"));
    app.post_form(&format!("/staff/support/{id}/answer"), &[("body", "Yes: verified certificates, on every course.")])
        .await;
    app.run_jobs().await;
    let answer = lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000)
        .into_iter()
        .find(|m| m.to == "lin@example.org")
        .expect("the answer is emailed");
    assert_eq!(answer.subject, "Re: Certificates");
    assert!(answer.text.contains("Yes: verified certificates") && answer.text.contains("Do you offer certificates?"));
    let (_, page) = app.get(&format!("/staff/support/{id}")).await;
    assert!(page.contains("Answered by grace") && page.contains("answered"));
    let (status, _) = app.get("/staff/support/999999").await;
    assert_eq!(status, Status::NotFound);
}
on_both!(com_6_contact_form_creates_a_request_staff_answer, contact_and_support);

async fn survey(app: TestApp) {
    // promise: CRS-6 — the survey is voluntary, answers unlinked, staff see aggregates of 5 or more only,
    // comments from 10.
    use lyceum::db::schema::{survey_completions, survey_responses};
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let names = ["sue1", "sue2", "sue3", "sue4", "sue5", "sue6"];
    let mut learners = Vec::new();
    for name in names {
        let l = verified(&app, name).await;
        as_user(&app, &l).await;
        crate::learning::enroll(&app, &c.slug).await;
        learners.push(l);
    }
    let grace = staff(&app).await;
    as_user(&app, &learners[0]).await;
    let (status, page) = app.get("/learn/intro-python/survey").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("voluntary"));
    // Bad input changes nothing.
    app.post_form("/learn/intro-python/survey", &[("rating", "9"), ("difficulty", "right")]).await;
    let (_, page) = app.get("/learn/intro-python/survey").await;
    assert!(page.contains("Choose a rating from 1 to 5."));
    assert_eq!(run(&app, |conn| survey_responses::table.count().get_result::<i64>(conn)).await, 0);
    for (i, l) in learners.iter().take(5).enumerate() {
        as_user(&app, l).await;
        let rating = (i + 1).to_string();
        let res = app
            .post_form(
                "/learn/intro-python/survey",
                &[
                    ("rating", &rating),
                    ("difficulty", "right"),
                    ("recommend", "true"),
                    ("comment", &format!("comment {i}")),
                ],
            )
            .await;
        assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));
        if i == 3 {
            as_user(&app, &grace).await;
            let (_, page) = app.get("/studio/courses/intro-python/survey").await;
            assert!(
                page.contains("No results yet: they appear once 5 learners") && !page.contains("comment 0"),
                "{page}"
            );
        }
    }
    // Once is enough.
    as_user(&app, &learners[0]).await;
    app.post_form("/learn/intro-python/survey", &[("rating", "1"), ("difficulty", "hard")]).await;
    let (_, page) = app.get("/learn/intro-python/survey").await;
    assert!(page.contains("You answered this survey already"));
    assert_eq!(run(&app, |conn| survey_responses::table.count().get_result::<i64>(conn)).await, 5);
    assert_eq!(run(&app, |conn| survey_completions::table.count().get_result::<i64>(conn)).await, 5);
    // Skipping it changes nothing: the sixth learner studies as before.
    as_user(&app, &learners[5]).await;
    let (status, _) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    assert_eq!(status, Status::Ok);
    // Five answers: totals appear, with no name and no date.
    as_user(&app, &grace).await;
    let (_, page) = app.get("/studio/courses/intro-python/survey").await;
    assert!(page.contains("<strong>5</strong> answers") && page.contains("<strong>3.0</strong>"), "{page}");
    assert!(page.contains("100% would recommend") && !page.contains("comment 4"), "{page}");
    assert!(page.contains("Comments appear once 10 people have answered"), "{page}");
    assert!(!names.iter().any(|n| page.contains(&format!("{n}@"))) && !page.contains(">sue1<"));
    // Learners cannot see results.
    as_user(&app, &learners[0]).await;
    let (status, _) = app.get("/studio/courses/intro-python/survey").await;
    assert_eq!(status, Status::NotFound);
}
on_both!(crs_6_the_course_survey_is_voluntary_anonymous_and_aggregated, survey);

async fn audit(app: TestApp) {
    // promise: SEC-4 — staff access to personal data is written to an append-only audit log that auditors search.
    use lyceum::db::schema::audit_log;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    app.get("/account/privacy").await;
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    app.get("/staff/privacy").await;
    app.post_form("/staff/privacy/holds", &[("login", "ada"), ("reason", "Court order 12")]).await;
    let (status, _) = app.get("/audit").await;
    assert_eq!(status, Status::Forbidden, "staff are not auditors");
    // Staff cannot audit themselves.
    app.post_form("/staff/auditors", &[("login", "grace")]).await;
    let (_, page) = app.get("/staff/auditors").await;
    assert!(page.contains("you cannot appoint yourself"));
    let ivy = verified(&app, "ivy").await;
    app.post_form("/staff/auditors", &[("login", "ivy")]).await;

    let lines: Vec<(String, String, String)> = run(&app, |conn| {
        audit_log::table
            .order(audit_log::id.asc())
            .select((audit_log::actor, audit_log::action, audit_log::path))
            .load(conn)
    })
    .await;
    assert!(
        lines.iter().all(|(actor, _, _)| actor == "grace"),
        "a learner reading their own page is not audited: {lines:?}"
    );
    assert!(lines.contains(&("grace".into(), "view".into(), "/staff/privacy".into())));
    assert!(lines.contains(&("grace".into(), "change".into(), "/staff/privacy/holds".into())));
    assert!(lines.contains(&("grace".into(), "view".into(), "/audit".into())), "a refused look is logged too");

    // The log cannot be changed or deleted, whatever the route to the database.
    let tampered = app
        .db()
        .run(|conn| {
            Ok::<_, lyceum::web::AppError>(
                diesel::update(audit_log::table).set(audit_log::actor.eq("nobody")).execute(conn).is_err()
                    && diesel::delete(audit_log::table).execute(conn).is_err(),
            )
        })
        .await
        .unwrap();
    assert!(tampered, "updates and deletes are refused");

    // The auditor searches.
    as_user(&app, &ivy).await;
    let (status, page) = app.get("/audit?actor=grace&action=change").await;
    assert_eq!(status, Status::Ok);
    assert!(
        page.contains("<code>/staff/privacy/holds</code>") && !page.contains("<code>/staff/privacy</code>"),
        "{page}"
    );
    let (_, page) = app.get("/audit?path=%2Fstaff%2Fprivacy&from=2000-01-01").await;
    assert!(page.contains("<code>/staff/privacy</code>"));
    let searched =
        run(&app, |conn| audit_log::table.filter(audit_log::actor.eq("ivy")).count().get_result::<i64>(conn)).await;
    assert_eq!(searched, 2, "the auditor's own searches are logged");
}
on_both!(sec_4_staff_access_is_audited_append_only, audit);

async fn sealed_fields(app: TestApp) {
    // promise: SEC-2 — sensitive fields are encrypted at rest, with key ids for rotation.
    use base64::Engine;
    let res = app.sign_up_with("pat", &[("phone", "+44 20 7946 0958")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let pat =
        Learner { username: "pat".into(), email: "pat@example.org".into(), password: crate::common::PASSWORD.into() };
    app.verify(&pat).await;
    let stored = || {
        run(&app, |conn| {
            users::table.filter(users::username.eq("pat")).select(users::phone).first::<Option<String>>(conn)
        })
    };
    let sealed = stored().await.unwrap();
    // The plain number has spaces, which base64 never does: a digit run such
    // as "7946" can turn up in random ciphertext by chance, the number cannot.
    assert!(sealed.starts_with("env1:s1:") && !sealed.contains("7946 0958"), "{sealed}");
    as_user(&app, &pat).await;
    let (_, page) = app.get("/account").await;
    assert!(page.contains("value=\"+44 20 7946 0958\""), "the owner reads it");
    // A change is sealed too.
    let res = app
        .post_form("/account/profile", &[("first_name", "Pat"), ("last_name", "Doe"), ("phone", "+1 555 0100")])
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let sealed = stored().await.unwrap();
    assert!(sealed.starts_with("env1:") && !sealed.contains("555 0100"), "{sealed}");

    // An authenticator app's secret is sealed the same way (and rotated with the rest).
    app.confirm_with_password().await;
    let page = app.post_form("/account/security/app", &[]).await.into_string().await.unwrap();
    let totp =
        regex::Regex::new(r#"id="totp-secret">([A-Z2-7]+)<"#).unwrap().captures(&page).expect("the key")[1].to_string();
    let stored_totp = || {
        run(&app, |conn| {
            use lyceum::db::schema::totp_credentials;
            totp_credentials::table.select(totp_credentials::secret).first::<String>(conn)
        })
    };

    // `lyceum keys rotate` moves every value to a new key; the old key is then no longer needed.
    let secret = app.config.resolve_secret().unwrap();
    let new_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let keys = format!("k2:{new_key},{}", lyceum::privacy::vault::derived_key_entry(&secret));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lyceum"))
        .args(["keys", "rotate"])
        .env("LYCEUM_DATABASE_URL", &app.config.database_url)
        .env("LYCEUM_DATA_DIR", app.config.data_dir.clone())
        .env("LYCEUM_DEMO", "false")
        .env("LYCEUM_SECRET_KEY", crate::common::TEST_SECRET)
        .env("LYCEUM_ENCRYPTION_KEYS", &keys)
        .env("LYCEUM_LOG", "warn")
        .output()
        .expect("the lyceum binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("2 value(s) re-sealed under key k2"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = stored().await.unwrap();
    assert!(rotated.starts_with("env1:k2:"));
    let only_new = lyceum::privacy::vault::Vault::new(Some(&format!("k2:{new_key}")), b"").unwrap();
    assert_eq!(only_new.open(lyceum::privacy::vault::PHONE, &rotated).unwrap(), "+1 555 0100");
    let rotated_totp = stored_totp().await;
    assert!(rotated_totp.starts_with("env1:k2:"), "{rotated_totp}");
    assert_eq!(only_new.open(lyceum::accounts::twofactor::TOTP_FIELD, &rotated_totp).unwrap(), totp);
}
on_both!(sec_2_phone_numbers_are_sealed_at_rest_and_keys_rotate, sealed_fields);

/// A GeoIP2-Country-shaped database written with an independent MMDB
/// writer, as an operator would download one from MaxMind.
pub(crate) fn country_database(path: &std::path::Path) {
    #[derive(serde::Serialize)]
    struct Names {
        en: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Country {
        geoname_id: u32,
        iso_code: &'static str,
        names: Names,
    }
    #[derive(serde::Serialize)]
    struct Record {
        country: Country,
    }
    let mut writer = mmdb_writer::Writer::new("GeoIP2-Country");
    for (net, geoname_id, iso_code, en) in
        [("203.0.113.0/24", 2186224, "NZ", "New Zealand"), ("2001:db8::/32", 2921044, "DE", "Germany")]
    {
        let record = Record { country: Country { geoname_id, iso_code, names: Names { en } } };
        writer.insert(net.parse::<ipnet::IpNet>().unwrap(), &record).unwrap();
    }
    std::fs::write(path, writer.to_bytes().unwrap()).unwrap();
}

#[rocket::async_test]
async fn com_4_page_views_carry_the_country_from_a_real_geoip_database() {
    // promise: COM-4 — approximate location only from the operator's GeoIP file, only for visitors who allowed statistics.
    use lyceum::db::schema::page_views;
    use std::net::{IpAddr, SocketAddr};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoLite2-Country.mmdb");
    country_database(&path);
    let app = TestApp::sqlite_with(|c| c.geoip_db = Some(path.clone())).await;
    let visit = |ip: &str, page: &'static str| {
        let remote = SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 4000);
        app.client.get(page).header(rocket::http::Header::new("User-Agent", CHROME_UA)).remote(remote).dispatch()
    };
    visit("203.0.113.9", "/courses").await;
    assert_eq!(run(&app, |conn| page_views::table.count().get_result::<i64>(conn)).await, 0, "not before consent");
    app.post_form("/cookies", &[("analytics", "true"), ("back", "/")]).await;
    visit("203.0.113.9", "/courses").await;
    visit("2001:db8::7", "/").await;
    visit("192.0.2.1", "/contact").await;
    let rows: Vec<(String, Option<String>)> = run(&app, |conn| {
        page_views::table.order(page_views::id.asc()).select((page_views::path, page_views::country)).load(conn)
    })
    .await;
    assert_eq!(
        rows,
        [("/courses".into(), Some("NZ".into())), ("/".into(), Some("DE".into())), ("/contact".into(), None)],
        "the country from the file, nothing for an unknown address"
    );
    // The address itself is never stored.
    let every = run(&app, |conn| Ok::<_, String>(every_row(conn))).await;
    assert!(every.iter().all(|(_, row)| !row.contains("203.0.113.9") && !row.contains("2001:db8::7")));
    // Staff see countries only in aggregate.
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let (_, page) = app.get("/staff/analytics").await;
    assert!(page.contains("NZ") && page.contains("DE"), "{page}");

    // A file that is not a GeoIP database stops the start with a clear message.
    let bad = dir.path().join("not.mmdb");
    std::fs::write(&bad, b"not a database").unwrap();
    let mut config = app.config.clone();
    config.geoip_db = Some(bad);
    let err = lyceum::build_rocket(config).expect_err("refused").to_string();
    assert!(err.contains("GeoIP database") && err.contains("not.mmdb"), "{err}");
}

/// The CSRF token of this browser, read from a page every session may see.
async fn token_on(app: &TestApp, session: Option<&rocket::http::Cookie<'static>>) -> String {
    let mut req = app.client.get("/privacy");
    if let Some(cookie) = session {
        req = req.cookie(cookie.clone());
    }
    let body = req.dispatch().await.into_string().await.unwrap_or_default();
    let re = regex::Regex::new(r#"name="csrf_token" value="([^"]+)""#).unwrap();
    re.captures(&body).map(|c| c[1].to_string()).expect("a CSRF token on /privacy")
}

/// A form posted from this browser, or from another browser's session (its session cookie given).
async fn post_as<'a>(
    app: &'a TestApp,
    session: Option<&rocket::http::Cookie<'static>>,
    path: &str,
    fields: &[(&str, &str)],
) -> rocket::local::asynchronous::LocalResponse<'a> {
    let token = token_on(app, session).await;
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    let mut req = app.client.post(path.to_string());
    if let Some(cookie) = session {
        req = req.cookie(cookie.clone());
    }
    req.header(rocket::http::ContentType::Form)
        .remote(std::net::SocketAddr::from(([203, 0, 113, 7], 4000)))
        .body(crate::common::encode(&all))
        .dispatch()
        .await
}

fn session_cookie(app: &TestApp) -> rocket::http::Cookie<'static> {
    app.client.cookies().get("lyceum_session").expect("a session cookie").clone().into_owned()
}

async fn policy_change_reaches_open_sessions(app: TestApp) {
    // promise: COM-5 — a material change is accepted before the next request of every open session.
    use lyceum::db::schema::{policy_acceptances, policy_versions};
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = verified(&app, "ada").await;
    let bob = verified(&app, "bob").await;
    let grace = staff(&app).await;
    let ada_id = user_id(&app, "ada").await;
    // Three open sessions: staff, bob with "Remember me", ada (this browser's own).
    app.sign_out().await;
    app.sign_in(&grace, false).await;
    let grace_session = session_cookie(&app);
    app.sign_in(&bob, true).await;
    let bob_session = session_cookie(&app);
    app.sign_in(&ada, false).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    let course = format!("/courses/{}", c.slug);
    let to_accept = |next: &str| format!("/policies/accept?next={}", urlencoding::encode(next));

    // A minor edit interrupts no one.
    let res = post_as(
        &app,
        Some(&grace_session),
        "/staff/policies",
        &[("kind", "terms"), ("body", "Be kind in the forums."), ("changes", "Typo fixed")],
    )
    .await;
    assert_eq!(res.headers().get_one("Location"), Some("/staff/policies"));
    let (status, _) = app.get("/dashboard").await;
    assert_eq!(status, Status::Ok, "a minor edit asks nothing");

    // A material change, published while ada and bob are signed in.
    let res = post_as(
        &app,
        Some(&grace_session),
        "/staff/policies",
        &[
            ("kind", "privacy"),
            ("body", "We now share completion with sponsors you choose."),
            ("changes", "Sponsors you choose see your completion"),
            ("material", "true"),
        ],
    )
    .await;
    assert_eq!(res.headers().get_one("Location"), Some("/staff/policies"));

    // Ada's next page, whatever it is, is the acceptance page, which keeps where she was going.
    let res = app.client.get(course.clone()).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(res.headers().get_one("Location"), Some(to_accept(&course).as_str()));
    let res = app.client.get("/dashboard?tab=courses").dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some(to_accept("/dashboard?tab=courses").as_str()));
    // A form posted from a page does nothing and comes back to that page once accepted.
    let token = token_on(&app, None).await;
    let res = app
        .client
        .post(format!("{course}/enroll"))
        .header(rocket::http::ContentType::Form)
        .header(rocket::http::Header::new("Referer", format!("http://lyceum.test{course}")))
        .body(crate::common::encode(&[("csrf_token", &token), ("run", "2026"), ("track", "audit")]))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(res.headers().get_one("Location"), Some(to_accept(&course).as_str()));
    let enrolled: i64 = run(&app, move |conn| {
        lyceum::db::schema::enrollments::table
            .filter(lyceum::db::schema::enrollments::user_id.eq(ada_id))
            .count()
            .get_result(conn)
    })
    .await;
    assert_eq!(enrolled, 0, "nothing is done before the acceptance");
    // Another site as Referer is not followed.
    let res = app
        .client
        .post(format!("{course}/enroll"))
        .header(rocket::http::ContentType::Form)
        .header(rocket::http::Header::new("Referer", "https://evil.example/courses"))
        .body(crate::common::encode(&[("csrf_token", &token), ("run", "2026"), ("track", "audit")]))
        .dispatch()
        .await;
    assert_eq!(res.headers().get_one("Location"), Some(to_accept("/dashboard").as_str()));
    // Software asking in JSON is told why, not sent to an HTML page.
    let res = app.get_json("/dashboard").await;
    assert_eq!(res.status(), Status::Forbidden);
    assert_eq!(res.content_type().map(|t| t.to_string()).as_deref(), Some("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_str(&res.into_string().await.unwrap()).unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("/policies/accept"), "{problem}");
    // What is needed to read and accept stays open, and so do the key-authenticated APIs.
    for open in ["/privacy", "/terms", "/cookie-policy", "/static/css/lyceum.css"] {
        let (status, _) = app.get(open).await;
        assert_eq!(status, Status::Ok, "{open}");
    }
    for api in ["/api/v1/aggregates", "/scim/v2/Users"] {
        let res = app.client.get(api).dispatch().await;
        assert_eq!(res.status(), Status::Unauthorized, "{api} answers for its key, not the session");
    }

    // The acceptance page lists the change; refusing keeps her there.
    let (status, page) = app.get(&to_accept(&course)).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Sponsors you choose see your completion"), "{page}");
    let res = post_as(&app, None, "/policies/accept", &[("next", &course)]).await;
    assert_eq!(res.headers().get_one("Location"), Some(to_accept(&course).as_str()));
    let res = app.client.get("/dashboard").dispatch().await;
    assert_eq!(res.status(), Status::SeeOther, "still not accepted");
    // Accepting records it like any acceptance and goes on where she was going.
    let res = post_as(&app, None, "/policies/accept", &[("accept", "true"), ("next", &course)]).await;
    assert_eq!(res.headers().get_one("Location"), Some(course.as_str()));
    let recorded = run(&app, move |conn| {
        policy_acceptances::table
            .inner_join(policy_versions::table)
            .filter(policy_acceptances::user_id.eq(ada_id))
            .order(policy_acceptances::id.desc())
            .select((
                policy_versions::kind,
                policy_versions::version,
                policy_acceptances::method,
                policy_acceptances::ip,
                policy_acceptances::user_agent,
            ))
            .first::<(String, i32, String, Option<String>, Option<String>)>(conn)
    })
    .await;
    assert_eq!((recorded.0.as_str(), recorded.1, recorded.2.as_str()), ("privacy", 2, "session"));
    assert_eq!(recorded.3.as_deref(), Some("203.0.113.7"), "where from, as at sign-in");
    let (status, page) = app.get(&course).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Introduction to Python"));
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"), "the same session goes on");

    // Bob's remembered session is stopped too; a `next` to another site is refused.
    let res = app.client.get("/dashboard").cookie(bob_session.clone()).dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some(to_accept("/dashboard").as_str()));
    let res =
        post_as(&app, Some(&bob_session), "/policies/accept", &[("accept", "true"), ("next", "//evil.example")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"));
    let res = app.client.get("/dashboard").cookie(bob_session.clone()).dispatch().await;
    assert_eq!(res.status(), Status::Ok, "accepted once, not asked again");
    // Signing out is never in the way.
    let res = app.client.get("/dashboard").cookie(grace_session.clone()).dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some(to_accept("/dashboard").as_str()), "staff accept too");
    let res = post_as(&app, Some(&grace_session), "/signout", &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/"));
}
on_both!(com_5_material_change_reaches_open_sessions, policy_change_reaches_open_sessions);

async fn cool_off_quoted(app: TestApp) {
    // The privacy page quotes the configured cool-off, not a fixed one.
    let l = verified(&app, "orla").await;
    as_user(&app, &l).await;
    let (status, page) = app.get("/account/privacy").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("id=\"erasure-cool-off\">After 30 days in which you can still change your mind"), "{page}");
    assert!(!page.contains("After 7 days"), "{page}");
}
on_both!(rgt_2_the_privacy_page_quotes_the_configured_cool_off, cool_off_quoted, |c| c.erasure_cool_off_days = 30);

/// The audit entries for `path`, oldest first: (id, declared, subject user ids, query).
async fn audited(app: &TestApp, path: &'static str) -> Vec<(i64, Option<String>, Vec<Option<i64>>, Option<String>)> {
    use lyceum::db::schema::{audit_log, audit_queries, audit_subjects};
    run(app, move |conn| {
        let entries: Vec<(i64, Option<String>)> = audit_log::table
            .filter(audit_log::path.eq(path))
            .order(audit_log::id.asc())
            .select((audit_log::id, audit_log::declared))
            .load(conn)?;
        let mut out = Vec::new();
        for (id, declared) in entries {
            let users: Vec<Option<i64>> = audit_subjects::table
                .filter(audit_subjects::audit_id.eq(id))
                .order(audit_subjects::id)
                .select(audit_subjects::user_id)
                .load(conn)?;
            let query: Option<String> =
                audit_queries::table.find(id).select(audit_queries::query).first(conn).optional()?;
            out.push((id, declared, users, query));
        }
        Ok::<_, diesel::result::Error>(out)
    })
    .await
}

async fn staff_access_of(app: &TestApp, user: i64) -> Vec<serde_json::Value> {
    let zip = app
        .db()
        .run(move |conn| Ok::<_, lyceum::web::AppError>(lyceum::privacy::export::build(conn, user, lyceum::db::now())))
        .await
        .unwrap()
        .expect("a copy");
    let files = unzip(&zip);
    let data: serde_json::Value = serde_json::from_str(&files["data.json"]).unwrap();
    assert!(files["README.md"].contains("### staff_access"), "the README describes the section");
    assert!(files.contains_key("csv/staff_access.csv"));
    data["sections"]["staff_access"].as_array().expect("a staff_access section").clone()
}

async fn audit_names_the_subject(app: TestApp) {
    // promise: SEC-4 — each audit entry names whose data was viewed or changed and the query that selected it;
    // the learner sees staff access in their copy; erasure leaves their id and deletes the queries naming them.
    use lyceum::db::schema::{audit_log, audit_queries, audit_subjects};
    let (zeph, _) = active_learner(&app).await;
    let zeph_id = user_id(&app, &zeph.username).await;
    verified(&app, "carol").await;
    let dave = verified(&app, "dave").await;
    verified(&app, "erin").await;
    let (carol_id, dave_id, erin_id) =
        (user_id(&app, "carol").await, user_id(&app, "dave").await, user_id(&app, "erin").await);
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    assert_eq!(app.get("/staff/sharing?login=carol").await.0, Status::Ok);
    assert_eq!(app.get("/staff/sharing?login=dave%40example.org").await.0, Status::Ok);
    assert_eq!(app.get("/staff/sharing?login=nobody-here").await.0, Status::Ok);
    // A page that shows no one's data says so.
    assert_eq!(app.get("/staff/policies").await.0, Status::Ok);

    let entries = audited(&app, "/staff/sharing").await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(entries[0].1.as_deref(), Some("subjects"));
    assert_eq!(entries[0].2, vec![Some(carol_id)], "the first look names carol");
    assert_eq!(entries[0].3.as_deref(), Some("login=carol"));
    assert_eq!(entries[1].2, vec![Some(dave_id)], "the second names dave");
    assert_eq!(entries[1].3.as_deref(), Some("login=dave@example.org"));
    assert_eq!((entries[2].1.as_deref(), entries[2].2.len()), (Some("subjects"), 0), "a search that found nobody");
    let policies = audited(&app, "/staff/policies").await;
    assert_eq!(policies[0].1.as_deref(), Some("none"), "{policies:?}");

    // The partner's API export names the partner and the export it handed out.
    let api: Vec<(i64, String, Option<i64>, Option<String>)> = run(&app, |conn| {
        audit_log::table
            .inner_join(audit_subjects::table.on(audit_subjects::audit_id.eq(audit_log::id)))
            .filter(audit_log::path.eq("/api/v1/exports/enrollments"))
            .select((audit_log::actor_id, audit_log::roles, audit_subjects::partner_id, audit_subjects::item))
            .load(conn)
    })
    .await;
    assert_eq!(api.len(), 1, "{api:?}");
    assert_eq!(api[0].0, 0, "no account: the key made the request");
    assert!(api[0].1.starts_with("partner_api:partner:") && api[0].2.is_some(), "{api:?}");
    let export_item = api[0].3.clone().unwrap_or_default();
    let export_id = export_item.trim_start_matches("export ").split(' ').next().unwrap_or_default().to_string();
    let disclosed: i64 = run(&app, move |conn| {
        let filter = lyceum::consent::manifests::Filter {
            export_id: Some(&export_id),
            user_id: Some(zeph_id),
            ..Default::default()
        };
        lyceum::consent::manifests::expand(conn, &filter).map(|all| all.len() as i64)
    })
    .await;
    assert!(disclosed > 0, "the item names the export under which each learner's disclosure is logged: {export_item}");

    // A partner's pages name the partner, found from the address when the entry is written.
    let partner_id = api[0].2.expect("the partner");
    let slug: String = run(&app, move |conn| {
        lyceum::db::schema::partners::table.find(partner_id).select(lyceum::db::schema::partners::slug).first(conn)
    })
    .await;
    let partner_page = format!("/partners/{slug}");
    assert_eq!(app.get(&partner_page).await.0, Status::Ok);
    assert_eq!(app.get("/partners/no-such-partner").await.0, Status::NotFound);
    let named = |path: String| {
        run(&app, move |conn| {
            audit_log::table
                .inner_join(audit_subjects::table.on(audit_subjects::audit_id.eq(audit_log::id)))
                .filter(audit_log::path.eq(path))
                .select(audit_subjects::partner_id)
                .load::<Option<i64>>(conn)
        })
    };
    assert_eq!(named(partner_page).await, vec![Some(partner_id)], "the partner page names its partner");
    assert!(named("/partners/no-such-partner".into()).await.is_empty(), "no partner, no subject");

    // The auditor searches by whose data it was, by username or id, and sees the query.
    let ivy = verified(&app, "ivy").await;
    app.post_form("/staff/auditors", &[("login", "ivy")]).await;
    as_user(&app, &ivy).await;
    let (status, page) = app.get("/audit?subject=carol").await;
    let page = page.replace("&#x3D;", "=");
    assert_eq!(status, Status::Ok);
    assert!(page.contains("?login=carol") && page.contains(&format!("user {carol_id} (carol)")), "{page}");
    assert!(!page.contains("login=dave"), "only entries naming carol: {page}");
    let (_, page) = app.get(&format!("/audit?subject={dave_id}")).await;
    let page = page.replace("&#x3D;", "=");
    assert!(page.contains("?login=dave@example.org") && !page.contains("login=carol"), "{page}");
    let (_, page) = app.get("/audit?path=%2Fstaff%2Fpolicies").await;
    assert!(page.contains("No one’s personal data"), "{page}");

    // Carol's copy lists the staff access to her data, by role, and nothing about the others.
    let access = staff_access_of(&app, carol_id).await;
    let sharing: Vec<&serde_json::Value> = access.iter().filter(|e| e["path"] == "/staff/sharing").collect();
    assert_eq!(sharing.len(), 1, "{access:?}");
    assert_eq!(sharing[0]["action"], "view");
    assert_eq!(sharing[0]["query"], "login=carol");
    assert!(sharing[0]["roles"].as_str().unwrap_or_default().contains("staff"), "{access:?}");
    assert!(sharing[0].get("actor").is_none() && sharing[0].get("ip").is_none(), "staff are named by role");
    assert!(access.iter().any(|e| e["path"] == "/audit"), "the auditor's look at her entries is access too");
    assert!(!serde_json::to_string(&access).unwrap().contains("dave"), "{access:?}");
    assert!(staff_access_of(&app, erin_id).await.is_empty(), "nobody looked at erin's data");

    // Dave is erased: his entries stay, by id; the queries that named him go; carol's stay.
    as_user(&app, &dave).await;
    app.post_form("/account/privacy/delete", &[("password", &dave.password), ("confirm", "true")]).await;
    run(&app, |conn| {
        diesel::update(erasures::table.filter(erasures::state.eq("waiting")))
            .set(erasures::run_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    run_scheduled(&app).await;
    let state: String = run(&app, move |conn| {
        erasures::table.filter(erasures::user_id.eq(dave_id)).select(erasures::state).first(conn)
    })
    .await;
    assert_eq!(state, "done");
    let entries = audited(&app, "/staff/sharing").await;
    assert_eq!(entries[1].2, vec![Some(dave_id)], "the entry still names dave's id");
    assert_eq!(entries[1].3, None, "the query that selected him is gone");
    assert_eq!(entries[0].3.as_deref(), Some("login=carol"), "carol's stays");
    let searched: Vec<String> = run(&app, |conn| audit_queries::table.select(audit_queries::query).load(conn)).await;
    assert!(!searched.iter().any(|q| q.contains("dave")), "the auditor's search for him is gone too: {searched:?}");
    let rows = run(&app, |conn| Ok::<_, String>(every_row(conn))).await;
    let audit_rows: Vec<&(String, String)> = rows.iter().filter(|(table, _)| table.starts_with("audit_")).collect();
    assert!(!audit_rows.is_empty());
    for needle in ["dave@example.org", "dave"] {
        let found: Vec<_> = audit_rows.iter().filter(|(_, row)| row.contains(needle)).collect();
        assert!(found.is_empty(), "{needle} is still in the audit trail: {found:?}");
    }
}
on_both!(sec_4_audit_entries_name_whose_data_and_the_query, audit_names_the_subject);

//! The job queue: retries with backoff, dead letters, replay by staff.

use diesel::prelude::*;
use lyceum::db::schema::jobs;
use lyceum::jobs::{self as queue, status};
use rocket::http::Status;

use crate::common::TestApp;
use crate::on_both;

async fn retries_and_dead_letters(app: TestApp) {
    let db = app.db();
    let id = {
        let mut conn = db.get().unwrap();
        queue::enqueue(&mut conn, "no_such_kind", &serde_json::json!({})).unwrap()
    };
    // Each failure pushes the next run into the future; make it due again and rerun.
    for attempt in 1..=queue::DEFAULT_MAX_ATTEMPTS {
        assert_eq!(app.run_jobs().await, 1, "attempt {attempt}");
        let mut conn = db.get().unwrap();
        let (st, attempts, err): (String, i32, Option<String>) =
            jobs::table.find(id).select((jobs::status, jobs::attempts, jobs::last_error)).first(&mut conn).unwrap();
        assert_eq!(attempts, attempt);
        assert!(err.unwrap().contains("no handler"));
        if attempt < queue::DEFAULT_MAX_ATTEMPTS {
            assert_eq!(st, status::QUEUED);
            assert_eq!(app.run_jobs().await, 0, "not due yet (backoff)");
            diesel::update(jobs::table.find(id)).set(jobs::run_at.eq(lyceum::db::now())).execute(&mut conn).unwrap();
        } else {
            assert_eq!(st, status::DEAD);
        }
    }
    // Staff see it and can replay it.
    let mut conn = db.get().unwrap();
    lyceum::accounts::service::ensure_staff(&mut conn, "ops@example.org", None, "Op", "Erator").unwrap();
    drop(conn);
    let staff = app.sign_up("grace").await;
    lyceum::accounts::service::ensure_staff(&mut db.get().unwrap(), &staff.email, None, "G", "H").unwrap();
    app.sign_in(&staff, false).await;
    let (s, body) = app.get("/staff/jobs?status=dead").await;
    assert_eq!(s, Status::Ok);
    assert!(body.contains("no_such_kind"));
    let res = app.post_form(&format!("/staff/jobs/{id}/retry"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let st: String = jobs::table.find(id).select(jobs::status).first(&mut db.get().unwrap()).unwrap();
    assert_eq!(st, status::QUEUED);
}
on_both!(jobs_retry_with_backoff_then_wait_in_the_dead_letter_queue, retries_and_dead_letters);

async fn email_is_sent_through_jobs(app: TestApp) {
    let ada = app.sign_up("ada").await;
    assert!(
        lyceum::notify::read_outbox(&app.config.outbox_dir(), 10).is_empty(),
        "nothing sent before the worker runs"
    );
    assert_eq!(app.run_jobs().await, 1);
    let messages = lyceum::notify::read_outbox(&app.config.outbox_dir(), 10);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].to, ada.email);
    assert!(messages[0].text.contains("/verify-email/"));
    let raw = std::fs::read_to_string(app.config.outbox_dir().join(format!("{}.eml", messages[0].id))).unwrap();
    assert!(raw.contains("multipart/alternative") && raw.contains("text/plain") && raw.contains("text/html"));
    // A finished job keeps no personal data.
    let payload: String = jobs::table.select(jobs::payload).first(&mut app.db().get().unwrap()).unwrap();
    assert_eq!(payload, "{}");
}
on_both!(email_goes_through_the_queue_with_text_and_html_parts, email_is_sent_through_jobs);

#[rocket::async_test]
async fn smtp_transport_delivers_to_a_real_server() {
    let Ok(url) = std::env::var("LYCEUM_TEST_SMTP_URL") else {
        crate::common::service_missing("SMTP", "LYCEUM_TEST_SMTP_URL");
        return;
    };
    let app = TestApp::sqlite_with(|c| c.smtp_url = Some(url)).await;
    app.sign_up("ada").await;
    assert_eq!(app.run_jobs().await, 1);
    let state: String = jobs::table.select(jobs::status).first(&mut app.db().get().unwrap()).unwrap();
    assert_eq!(state, status::DONE, "the SMTP server accepted the message");
}

async fn workers_share_the_queue(app: TestApp) {
    let db = app.db();
    let n = 120;
    {
        let mut conn = db.get().unwrap();
        for i in 0..n {
            let to = format!("learner{i}@example.org");
            lyceum::notify::enqueue_email(
                &mut conn,
                &to,
                "Your account is active",
                "account_active",
                serde_json::json!({ "first_name": "Ada" }),
            )
            .unwrap();
        }
    }
    // Two instances of the site, each with its worker, each worker running twice at once.
    let (other, dir) = app.second_instance().await;
    let a = app.client.rocket().state::<queue::Worker>().unwrap();
    let b = other.rocket().state::<queue::Worker>().unwrap();
    let (ra, rb, rc, rd) = tokio::join!(a.run_due(), b.run_due(), a.run_due(), b.run_due());
    let ran: usize = [ra, rb, rc, rd].into_iter().map(|r| r.expect("the workers run")).sum();
    assert_eq!(ran, n, "every job ran, and only once");
    let mut conn = db.get().unwrap();
    let rows: Vec<(String, i32)> = jobs::table.select((jobs::status, jobs::attempts)).load(&mut conn).unwrap();
    assert!(rows.iter().all(|(s, attempts)| s == status::DONE && *attempts == 1), "{rows:?}");
    // Each learner got one mail; the two instances wrote to their own outboxes.
    let mut to: Vec<String> = lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000)
        .into_iter()
        .chain(lyceum::notify::read_outbox(&dir.path().join("outbox"), 1000))
        .map(|m| m.to)
        .collect();
    to.sort();
    let before = to.len();
    to.dedup();
    assert_eq!((before, to.len()), (n, n), "one mail per learner");
}
on_both!(jobs_are_claimed_once_by_many_workers, workers_share_the_queue);

async fn one_slot_one_firing(app: TestApp) {
    let c = crate::learning::seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = crate::sharing::verified(&app, "ada").await;
    crate::sharing::as_user(&app, &ada).await;
    crate::learning::enroll(&app, &c.slug).await;
    app.run_jobs().await;
    // The run starts tomorrow: its start reminder is due.
    crate::sharing::run(&app, |conn| {
        use lyceum::db::schema::course_runs;
        diesel::update(course_runs::table)
            .set((
                course_runs::starts_at.eq(lyceum::db::now() + chrono::Duration::days(1)),
                course_runs::reminder_sent_at.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(conn)
    })
    .await;
    // The clock's work runs in two instances' workers at the same moment.
    let (other, dir) = app.second_instance().await;
    let a = app.client.rocket().state::<queue::Worker>().unwrap();
    let b = other.rocket().state::<queue::Worker>().unwrap();
    let (ra, rb) = tokio::join!(a.run_scheduled(), b.run_scheduled());
    ra.expect("the first worker's scheduled work");
    rb.expect("the second worker's scheduled work");
    let (ra, rb) = tokio::join!(a.run_due(), b.run_due());
    ra.unwrap();
    rb.unwrap();
    let reminders = lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000)
        .into_iter()
        .chain(lyceum::notify::read_outbox(&dir.path().join("outbox"), 1000))
        .filter(|m| m.to == ada.email && m.subject.ends_with("starts soon"))
        .count();
    assert_eq!(reminders, 1, "the slot fired once, in one worker");
}
on_both!(scheduled_work_fires_each_slot_once_across_workers, one_slot_one_firing);

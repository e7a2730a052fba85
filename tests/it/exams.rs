//! Exams with partner exam bodies (CRT-8, SHR-3): sessions, booking through
//! the consent gate, results back by API or CSV, results for the funder only
//! under consent, retention with legal holds, support needs, malpractice.

use chrono::Duration;
use diesel::prelude::*;
use lyceum::consent::PartnerKind;
use lyceum::consent::partners::{self, Partner};
use lyceum::db::schema::{audit_log, consents, exam_bookings, exam_results, exam_sessions, support_needs};
use rocket::http::{ContentType, Header, Status};
use serde_json::Value;

use crate::common::{Learner, TestApp};
use crate::learning::{enroll, seed_course};
use crate::on_both;
use crate::privacy::staff;
use crate::sharing::{as_user, key_for, pull, run, user_id, verified};

async fn exam_body(app: &TestApp, slug: &'static str, admin: &Learner) -> Partner {
    let admin_id = user_id(app, &admin.username).await;
    run(app, move |conn| {
        let now = lyceum::db::now();
        let p = partners::create(conn, PartnerKind::ExamBody, slug, "Awarding Board", None, "exams@board.example", now)
            .map_err(|e| e.to_string())?;
        partners::appoint(conn, &p, admin_id, admin_id).map_err(|e| e.to_string())?;
        Ok::<_, String>(p)
    })
    .await
}

/// Opens a session through the exam body's page; returns its id.
async fn open_session(app: &TestApp, slug: &str, course_id: i64, capacity: &str, title: &str) -> i64 {
    let when = (chrono::Utc::now() + Duration::days(30)).format("%Y-%m-%dT09:30").to_string();
    let by = (chrono::Utc::now() + Duration::days(20)).format("%Y-%m-%dT17:00").to_string();
    let course = course_id.to_string();
    let res = app
        .post_form(
            &format!("/partners/{slug}/exams"),
            &[
                ("course_id", &course),
                ("title", title),
                ("starts", &when),
                ("time_zone", "Europe/London"),
                ("mode", "centre"),
                ("location", "1 Exam Street, Leeds"),
                ("capacity", capacity),
                ("deadline", &by),
            ],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let to = res.headers().get_one("Location").unwrap().to_string();
    to.rsplit('/').next().unwrap().parse().unwrap_or_else(|_| panic!("a session page, not {to}"))
}

/// Moves every session two hours into the past: the exams took place.
async fn exams_took_place(app: &TestApp) {
    run(app, |conn| {
        diesel::update(exam_sessions::table)
            .set(exam_sessions::starts_at.eq(lyceum::db::now() - Duration::hours(2)))
            .execute(conn)
    })
    .await;
}

fn capture(re: &str, body: &str) -> Option<String> {
    regex::Regex::new(re).unwrap().captures(body).map(|c| c[1].to_string())
}

async fn course_id(app: &TestApp, slug: &'static str) -> i64 {
    use lyceum::db::schema::courses;
    run(app, move |conn| courses::table.filter(courses::slug.eq(slug)).select(courses::id).first::<i64>(conn)).await
}

async fn post_result(app: &TestApp, key: &str, body: &str) -> (Status, Value) {
    let res = app
        .client
        .post("/api/v1/exams/results")
        .header(Header::new("Authorization", format!("Bearer {key}")))
        .header(ContentType::JSON)
        .body(body)
        .dispatch()
        .await;
    let status = res.status();
    (status, serde_json::from_str(&res.into_string().await.unwrap_or_default()).unwrap_or(Value::Null))
}

fn result_json(booking: &str, grade: &str) -> String {
    serde_json::json!({ "booking": booking, "grade": grade, "score": 72.5, "passed": true }).to_string()
}

/// Ada and Bob take a sponsored place (Ada agrees to share progress, both
/// are enrolled); returns the sponsor.
async fn sponsored(app: &TestApp, run_id: i64, learners: &[&Learner]) -> Partner {
    let (sponsor, codes) = run(app, move |conn| {
        let now = lyceum::db::now();
        let p = partners::create(
            conn,
            PartnerKind::Sponsor,
            "jobs-programme",
            "Jobs Programme",
            None,
            "hr@jobs.example",
            now,
        )
        .map_err(|e| e.to_string())?;
        let a = lyceum::consent::sponsors::allocate(
            conn,
            &p,
            &lyceum::consent::sponsors::SeatRequest {
                run_id,
                seats: 5,
                expires_at: now + Duration::days(30),
                note: "",
                by: None,
            },
            now,
        )
        .map_err(|e| e.to_string())?;
        let codes = lyceum::consent::sponsors::free_codes(conn, &a).map_err(|e| e.to_string())?;
        Ok::<_, String>((p, codes))
    })
    .await;
    for (l, code) in learners.iter().zip(codes) {
        as_user(app, l).await;
        let (_, offer) = app.get(&format!("/redeem?code={code}")).await;
        let text = capture(r#"name="text_id" value="(\d+)""#, &offer).expect("a sponsorship text");
        let res = app.post_form("/redeem", &[("code", &code), ("share", "yes"), ("text_id", &text)]).await;
        assert_eq!(res.status(), Status::SeeOther);
    }
    sponsor
}

/// The booking form's hidden values: registration text, support text, and
/// the funder's result-sharing text.
struct Form {
    text: String,
    support: Option<String>,
    funder: Option<(String, String)>,
}

async fn booking_form(app: &TestApp, session: i64) -> Form {
    let (status, page) = app.get(&format!("/exams/sessions/{session}/book")).await;
    assert_eq!(status, Status::Ok, "{page}");
    assert!(page.contains("Your date of birth") && page.contains("Your full name"), "what leaves is listed");
    Form {
        text: capture(r#"name="text_id" value="(\d+)""#, &page).expect("registration text"),
        support: capture(r#"name="support_text_id" value="(\d+)""#, &page),
        funder: regex::Regex::new(r#"name="result_text\[(\d+)\]" value="(\d+)""#)
            .unwrap()
            .captures(&page)
            .map(|c| (c[1].to_string(), c[2].to_string())),
    }
}

async fn book_as(app: &TestApp, session: i64, support: bool, share_result: Option<&str>) -> String {
    let f = booking_form(app, session).await;
    let mut fields: Vec<(String, String)> = vec![("text_id".into(), f.text.clone())];
    if support {
        fields.push(("support_text_id".into(), f.support.clone().expect("a support-needs question")));
        fields.push(("share_support".into(), "true".into()));
    }
    if let (Some((partner, text)), Some(answer)) = (&f.funder, share_result) {
        fields.push((format!("result_text[{partner}]"), text.clone()));
        fields.push((format!("share_result[{partner}]"), answer.into()));
    }
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = app.post_form(&format!("/exams/sessions/{session}/book"), &borrowed).await;
    assert_eq!(res.status(), Status::SeeOther);
    res.headers().get_one("Location").unwrap().to_string()
}

async fn reference_of(app: &TestApp, username: &str) -> String {
    let uid = user_id(app, username).await;
    run(app, move |conn| {
        exam_bookings::table
            .filter(exam_bookings::user_id.eq(uid))
            .filter(exam_bookings::status.eq("booked"))
            .select(exam_bookings::reference)
            .first::<String>(conn)
    })
    .await
}

async fn exam_flow(app: TestApp) {
    // promise: CRT-8 — exams are booked with a partner exam body and its results received back; kept 1 year.
    // promise: SHR-3 — exam results go to the body that funded the course only when the learner consented.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let course = course_id(&app, "intro-python").await;
    let run_id: i64 = run(&app, |conn| {
        lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)
    })
    .await;
    let admin = verified(&app, "board").await;
    let body = exam_body(&app, "awarding-board", &admin).await;
    let ada = verified(&app, "ada").await;
    let bob = verified(&app, "bob").await;
    let carol = verified(&app, "carol").await;
    let sponsor = sponsored(&app, run_id, &[&ada, &bob]).await;
    as_user(&app, &carol).await;
    enroll(&app, &c.slug).await;

    as_user(&app, &admin).await;
    let session = open_session(&app, "awarding-board", course, "2", "Python Certificate, March").await;

    // Ada records support needs, sees the session and books, sharing her
    // needs and her result with her funder.
    as_user(&app, &ada).await;
    let res = app
        .post_form("/account/support-needs", &[("needs", "Dyslexia"), ("adjustments", "25% extra time, a reader")])
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, about) = app.get("/courses/intro-python").await;
    assert!(about.contains("Book an exam"), "the course page points to its open exams");
    let (_, mine) = app.get("/exams").await;
    assert!(mine.contains("Python Certificate, March") && mine.contains("Europe/London"), "{mine}");
    let to = book_as(&app, session, true, Some("yes")).await;
    assert_eq!(to, "/exams");
    let (_, mine) = app.get("/exams").await;
    let ada_ref = reference_of(&app, "ada").await;
    assert!(mine.contains(&ada_ref) && mine.contains("Booked"));
    assert!(mine.contains("You hold a booking for this exam"), "no second Book button for a held exam");

    // Bob books and declines to share his result with the funder.
    as_user(&app, &bob).await;
    book_as(&app, session, false, Some("no")).await;
    let bob_ref = reference_of(&app, "bob").await;

    // Carol finds the session full: refused, nothing booked, the count unchanged.
    as_user(&app, &carol).await;
    let f = booking_form(&app, session).await;
    let res = app.post_form(&format!("/exams/sessions/{session}/book"), &[("text_id", &f.text)]).await;
    assert_eq!(res.headers().get_one("Location"), Some(format!("/exams/sessions/{session}/book").as_str()));
    let (booked, carols): (i32, i64) = {
        let carol_id = user_id(&app, "carol").await;
        run(&app, move |conn| {
            let booked = exam_sessions::table.find(session).select(exam_sessions::booked).first::<i32>(conn)?;
            let n = exam_bookings::table.filter(exam_bookings::user_id.eq(carol_id)).count().get_result::<i64>(conn)?;
            Ok::<_, diesel::result::Error>((booked, n))
        })
        .await
    };
    assert_eq!((booked, carols), (2, 0), "a full session refuses the next booking");

    // The exam body reads its candidates through the gate.
    let key = key_for(&app, &body, &["exams"]).await;
    let (status, text) = pull(&app, &key, "/api/v1/exams/candidates").await;
    assert_eq!(status, Status::Ok, "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    let candidates = list["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    let ada_c = candidates.iter().find(|c| c["booking"] == ada_ref.as_str()).unwrap();
    assert_eq!(ada_c["email"], "ada@example.org");
    assert!(ada_c["date_of_birth"].is_string(), "{ada_c}");
    assert_eq!(ada_c["adjustments"], "25% extra time, a reader");
    let bob_c = candidates.iter().find(|c| c["booking"] == bob_ref.as_str()).unwrap();
    assert_eq!(bob_c["email"], "bob@example.org");
    assert!(bob_c["support_needs"].is_null(), "support needs only under their own consent");
    let purposes: Vec<String> = run(&app, |conn| {
        let all = lyceum::consent::manifests::expand(conn, &Default::default())?;
        Ok::<_, diesel::result::Error>(
            all.into_iter().filter(|d| d.purpose.starts_with("exam")).map(|d| d.purpose).collect::<Vec<_>>(),
        )
    })
    .await;
    assert!(purposes.contains(&"exam_registration".to_string()) && purposes.contains(&"exam_support".to_string()));

    // A result before the exam took place is refused, and nothing is recorded.
    let (status, r) = post_result(&app, &key, &result_json(&ada_ref, "Merit")).await;
    assert_eq!(status, Status::Conflict, "{r}");
    assert!(r["detail"].as_str().unwrap_or("").contains("has not taken place yet"), "{r}");
    let n: i64 = run(&app, |conn| exam_results::table.count().get_result(conn)).await;
    assert_eq!(n, 0, "nothing recorded before the exam");
    exams_took_place(&app).await;

    // Results come back once per booking.
    let (status, r) = post_result(&app, &key, &result_json(&ada_ref, "Merit")).await;
    assert_eq!(status, Status::Created, "{r}");
    let (status, r) = post_result(&app, &key, &result_json(&ada_ref, "Merit")).await;
    assert_eq!((status, r["duplicate"].as_bool()), (Status::Ok, Some(true)), "the same result again is acknowledged");
    let (status, r) = post_result(&app, &key, &result_json(&ada_ref, "Distinction")).await;
    assert_eq!(status, Status::Conflict, "{r}");
    let (status, _) = post_result(&app, &key, &result_json("EX-NOSUCHREF", "Pass")).await;
    assert_eq!(status, Status::NotFound);
    let (status, r) = post_result(&app, &key, r#"{"booking": 7}"#).await;
    assert_eq!(status, Status::BadRequest, "{r}");
    assert!(r["detail"].as_str().unwrap_or("").contains("JSON object"), "{r}");
    let (status, _) = post_result(&app, &key, &result_json(&bob_ref, "Pass")).await;
    assert_eq!(status, Status::Created);
    let n: i64 = run(&app, |conn| exam_results::table.count().get_result(conn)).await;
    assert_eq!(n, 2, "never doubled");

    // Ada sees her result and was emailed.
    assert_eq!(app.mailed_link("ada@example.org", "/exams").await.as_deref(), Some("/exams"));
    as_user(&app, &ada).await;
    let (_, mine) = app.get("/exams").await;
    assert!(mine.contains("Merit") && mine.contains("passed"), "{mine}");

    // The funder sees Ada's result, not Bob's, and no sign of his decline.
    let sponsor_key = key_for(&app, &sponsor, &["results"]).await;
    let (status, text) = pull(&app, &sponsor_key, "/api/v1/exams/funded-results").await;
    assert_eq!(status, Status::Ok);
    assert!(text.contains("ada@example.org") && text.contains("Merit"), "{text}");
    assert!(!text.contains("bob@example.org") && !text.contains("Pass") && !text.to_lowercase().contains("declin"));
    let sponsor_admin = verified(&app, "funder").await;
    let sid = user_id(&app, "funder").await;
    let s2 = sponsor.clone();
    run(&app, move |conn| partners::appoint(conn, &s2, sid, sid)).await;
    as_user(&app, &sponsor_admin).await;
    let (_, report) = app.get("/partners/jobs-programme/report").await;
    assert!(report.contains("Merit") && !report.contains("Pass<"), "{report}");

    // Ada withdraws: the funder sees her result no more.
    as_user(&app, &ada).await;
    let ada_id = user_id(&app, "ada").await;
    let consent: i64 = run(&app, move |conn| {
        consents::table
            .filter(consents::user_id.eq(ada_id))
            .filter(consents::purpose.eq("exam_results"))
            .select(consents::id)
            .first(conn)
    })
    .await;
    let (_, sharing) = app.get("/sharing").await;
    assert!(sharing.contains(&format!("/sharing/consents/{consent}/withdraw")), "the Sharing page offers it");
    assert!(sharing.contains("Introduction to Python, its exams"), "and names what it covers");
    assert!(sharing.contains("Exam results for the sponsor who funded your course"));
    app.post_form(&format!("/sharing/consents/{consent}/withdraw"), &[]).await;
    let (_, text) = pull(&app, &sponsor_key, "/api/v1/exams/funded-results").await;
    assert!(!text.contains("Merit"), "{text}");

    // A year and a day later the results go, except Bob's: he is under a legal hold.
    let bob_id = user_id(&app, "bob").await;
    let grace = staff(&app).await;
    let grace_id = user_id(&app, &grace.username).await;
    run(&app, move |conn| {
        lyceum::privacy::place_hold(conn, bob_id, "Appeal in court", grace_id, lyceum::db::now())
            .map_err(|e| e.to_string())?;
        diesel::update(exam_results::table)
            .set(exam_results::received_at.eq(lyceum::db::now() - Duration::days(366)))
            .execute(conn)
            .map_err(|e| e.to_string())
    })
    .await;
    let periods = lyceum::privacy::retention::Periods::from_config(&app.config);
    assert_eq!(periods.exam_result_days, 365, "one year by default");
    let outbox = app.config.outbox_dir();
    let lines =
        run(&app, move |conn| lyceum::privacy::retention::run(conn, &periods, &outbox, lyceum::db::now(), false)).await;
    let line = lines.iter().find(|l| l.category == "exam results").expect("an exam results line");
    assert_eq!(line.count, 1);
    let kept: Vec<i64> = run(&app, |conn| exam_results::table.select(exam_results::user_id).load(conn)).await;
    assert_eq!(kept, vec![bob_id], "purged after the period, but not under a legal hold");
}
on_both!(crt_8_shr_3_a_booked_exam_result_reaches_the_funder_only_under_consent_and_is_purged_unless_held, exam_flow);

async fn booking_changes(app: TestApp) {
    // promise: CRT-8 — bookings are rescheduled and cancelled; results arrive by CSV too, all rows or none.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let course = course_id(&app, "intro-python").await;
    let admin = verified(&app, "board").await;
    let body = exam_body(&app, "awarding-board", &admin).await;
    as_user(&app, &admin).await;
    // Bad input is refused with a message, and nothing is created.
    let res = app
        .post_form(
            "/partners/awarding-board/exams",
            &[
                ("course_id", &course.to_string()),
                ("title", "Bad zone"),
                ("starts", "2030-01-10T09:00"),
                ("time_zone", "Mars/Olympus"),
                ("mode", "online"),
                ("capacity", "5"),
                ("deadline", "2030-01-01T09:00"),
            ],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/awarding-board/exams"));
    let n: i64 = run(&app, |conn| exam_sessions::table.count().get_result(conn)).await;
    assert_eq!(n, 0);
    let first = open_session(&app, "awarding-board", course, "1", "March sitting").await;
    let second = open_session(&app, "awarding-board", course, "1", "April sitting").await;

    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    // Not enrolled: refused.
    let f = booking_form(&app, first).await;
    let res = app.post_form(&format!("/exams/sessions/{first}/book"), &[("text_id", &f.text)]).await;
    assert_eq!(res.headers().get_one("Location"), Some(format!("/exams/sessions/{first}/book").as_str()));
    let n: i64 = run(&app, |conn| exam_bookings::table.count().get_result(conn)).await;
    assert_eq!(n, 0, "not enrolled: nothing booked");
    enroll(&app, &c.slug).await;
    book_as(&app, first, false, None).await;
    let old_ref = reference_of(&app, "ada").await;
    // A second booking of the same exam is refused: reschedule instead.
    let f = booking_form(&app, second).await;
    let res = app.post_form(&format!("/exams/sessions/{second}/book"), &[("text_id", &f.text)]).await;
    assert_eq!(res.headers().get_one("Location"), Some(format!("/exams/sessions/{second}/book").as_str()));

    // Reschedule to April: the March seat is free again, the exam body sees the old booking cancelled.
    let booking: i64 = run(&app, move |conn| {
        exam_bookings::table.filter(exam_bookings::reference.eq(old_ref)).select(exam_bookings::id).first(conn)
    })
    .await;
    let (status, page) = app.get(&format!("/exams/bookings/{booking}/reschedule")).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("April sitting"));
    let res =
        app.post_form(&format!("/exams/bookings/{booking}/reschedule"), &[("session_id", &second.to_string())]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/exams"));
    let seats: Vec<(i64, i32)> = run(&app, |conn| {
        exam_sessions::table.order(exam_sessions::id).select((exam_sessions::id, exam_sessions::booked)).load(conn)
    })
    .await;
    assert_eq!(seats, vec![(first, 0), (second, 1)]);
    let new_ref = reference_of(&app, "ada").await;
    let key = key_for(&app, &body, &["exams"]).await;
    let (_, text) = pull(&app, &key, &format!("/api/v1/exams/candidates?session={first}")).await;
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["candidates"][0]["status"], "cancelled");
    assert!(list["candidates"][0]["email"].is_null(), "a cancelled booking carries no personal data");
    // A result for the cancelled booking is refused.
    let (status, _) =
        post_result(&app, &key, &result_json(list["candidates"][0]["booking"].as_str().unwrap(), "Pass")).await;
    assert_eq!(status, Status::Conflict);

    // Another exam body's key knows nothing of these bookings.
    let other = run(&app, move |conn| {
        partners::create(
            conn,
            PartnerKind::ExamBody,
            "other-board",
            "Other Board",
            None,
            "x@other.example",
            lyceum::db::now(),
        )
        .map_err(|e| e.to_string())
    })
    .await;
    let other_key = key_for(&app, &other, &["exams"]).await;
    let (status, _) = post_result(&app, &other_key, &result_json(&new_ref, "Pass")).await;
    assert_eq!(status, Status::NotFound);
    let (_, text) = pull(&app, &other_key, "/api/v1/exams/candidates").await;
    assert!(!text.contains("ada@example.org") && !text.contains(&new_ref));
    // A key without the exams scope is refused.
    let no_scope = key_for(&app, &body, &["results"]).await;
    let (status, _) = pull(&app, &no_scope, "/api/v1/exams/candidates").await;
    assert_eq!(status, Status::Forbidden);

    // Before the exam, an upload is refused with the row to wait for.
    as_user(&app, &admin).await;
    let early = format!("booking,grade,score,passed\n{new_ref},Pass,81,yes\n");
    let res = app.post_form(&format!("/partners/awarding-board/exams/{second}/results"), &[("csv", &early)]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Row 2") && page.contains("has not taken place yet"), "{page}");
    let n: i64 = run(&app, |conn| exam_results::table.count().get_result(conn)).await;
    assert_eq!(n, 0, "nothing recorded before the exam");
    exams_took_place(&app).await;

    // A CSV with one bad row records nothing; fixed, it records the result once.
    let bad = format!("booking,grade,score,passed\n{new_ref},Pass,81,yes\nEX-UNKNOWN,Pass,50,maybe\n");
    let res = app.post_form(&format!("/partners/awarding-board/exams/{second}/results"), &[("csv", &bad)]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Row 3") && page.contains("EX-UNKNOWN"), "the text comes back with what to fix");
    let n: i64 = run(&app, |conn| exam_results::table.count().get_result(conn)).await;
    assert_eq!(n, 0, "all rows or none");
    let unknown = format!("booking,grade,score,passed\n{new_ref},Pass,81,yes\nEX-UNKNOWN,Pass,50,no\n");
    let res = app.post_form(&format!("/partners/awarding-board/exams/{second}/results"), &[("csv", &unknown)]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity, "an unknown booking is refused");
    assert!(res.into_string().await.unwrap().contains("is not a booking in this session"));
    let good = format!("booking,grade,score,passed\n{new_ref},Pass,81,yes\n");
    for _ in 0..2 {
        let res = app.post_form(&format!("/partners/awarding-board/exams/{second}/results"), &[("csv", &good)]).await;
        assert_eq!(res.status(), Status::SeeOther);
    }
    let n: i64 = run(&app, |conn| exam_results::table.count().get_result(conn)).await;
    assert_eq!(n, 1, "a result uploaded twice is recorded once");
    let (_, page) = app.get(&format!("/partners/awarding-board/exams/{second}")).await;
    assert!(page.contains("ada@example.org") && page.contains("Pass"), "{page}");

    // With a result, the booking can no longer be cancelled.
    as_user(&app, &ada).await;
    let live: i64 = run(&app, move |conn| {
        exam_bookings::table.filter(exam_bookings::reference.eq(new_ref)).select(exam_bookings::id).first(conn)
    })
    .await;
    let res = app.post_form(&format!("/exams/bookings/{live}/cancel"), &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/exams"));
    let status: String =
        run(&app, move |conn| exam_bookings::table.find(live).select(exam_bookings::status).first(conn)).await;
    assert_eq!(status, "booked");
}
on_both!(crt_8_bookings_move_and_cancel_and_results_arrive_once_by_csv, booking_changes);

#[rocket::async_test]
async fn sec_2_sec_4_support_needs_are_sealed_read_only_by_the_support_team_and_audited() {
    // promise: SEC-2 — support needs are encrypted at rest.
    // promise: SEC-4 — only the support role reads them, and each view is in the audit log.
    let app = TestApp::sqlite().await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let res = app.post_form("/account/support-needs", &[("needs", ""), ("adjustments", "")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account/support-needs"));
    let n: i64 = run(&app, |conn| support_needs::table.count().get_result(conn)).await;
    assert_eq!(n, 0, "an empty record is refused");
    app.post_form("/account/support-needs", &[("needs", "Visual impairment"), ("adjustments", "Large print")]).await;
    let stored: (String, String) =
        run(&app, |conn| support_needs::table.select((support_needs::needs, support_needs::adjustments)).first(conn))
            .await;
    assert!(!stored.0.contains("Visual") && !stored.1.contains("Large"), "sealed: {stored:?}");
    let (_, own) = app.get("/account/support-needs").await;
    assert!(own.contains("Visual impairment"), "the learner reads their own");

    let ada_id = user_id(&app, "ada").await;
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let (status, _) = app.get(&format!("/staff/support-needs/{ada_id}")).await;
    assert_eq!(status, Status::Forbidden, "staff as such do not read support needs");
    let sam = verified(&app, "sam").await;
    let res = app.post_form("/staff/support-team", &[("login", "sam")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let res = app.post_form("/staff/support-team", &[("login", &grace.username)]).await;
    assert_eq!(res.status(), Status::SeeOther);
    as_user(&app, &sam).await;
    let (status, list) = app.get("/staff/support-needs").await;
    assert_eq!(status, Status::Ok);
    assert!(list.contains("ada"));
    let (status, page) = app.get(&format!("/staff/support-needs/{ada_id}")).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Visual impairment") && page.contains("Large print"));
    let path = format!("/staff/support-needs/{ada_id}");
    let logged: Vec<(String, i32)> = run(&app, move |conn| {
        audit_log::table.filter(audit_log::path.eq(path)).select((audit_log::actor, audit_log::status)).load(conn)
    })
    .await;
    assert!(logged.contains(&("sam".to_string(), 200)), "the view is audited: {logged:?}");
    assert!(logged.contains(&("grace".to_string(), 403)), "and so is the refused attempt: {logged:?}");

    // Deleting removes it.
    as_user(&app, &ada).await;
    app.post_form("/account/support-needs/delete", &[]).await;
    let n: i64 = run(&app, |conn| support_needs::table.count().get_result(conn)).await;
    assert_eq!(n, 0);
}

#[rocket::async_test]
async fn shr_8_a_malpractice_disclosure_to_the_exam_body_is_recorded_with_its_legal_reference() {
    // promise: SHR-8 — a disclosure required by law is recorded with its legal reference.
    let app = TestApp::sqlite().await;
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let course = course_id(&app, "intro-python").await;
    let admin = verified(&app, "board").await;
    let body = exam_body(&app, "awarding-board", &admin).await;
    as_user(&app, &admin).await;
    let session = open_session(&app, "awarding-board", course, "3", "March sitting").await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    enroll(&app, &c.slug).await;
    book_as(&app, session, false, None).await;
    let reference = reference_of(&app, "ada").await;

    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let res = app.post_form("/staff/malpractice", &[("reference", "EX-NOPE"), ("details", "Notes")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/staff/malpractice"), "an unknown booking is refused");
    let res = app
        .post_form("/staff/malpractice", &[("reference", &reference), ("details", "Phone found during the exam.")])
        .await;
    let case = res.headers().get_one("Location").unwrap().to_string();
    assert!(case.starts_with("/staff/malpractice/"));
    let res = app.post_form(&format!("{case}/disclose"), &[("legal_reference", ""), ("fields", "x")]).await;
    assert_eq!(res.headers().get_one("Location"), Some(case.as_str()));
    let res = app
        .post_form(
            &format!("{case}/disclose"),
            &[
                ("legal_reference", "Ofqual General Conditions A8.2"),
                ("fields", "booking reference, name, incident report"),
            ],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let ada_id = user_id(&app, "ada").await;
    let body_id = body.id;
    let (basis, partner, legal): (String, Option<i64>, Option<String>) = run(&app, move |conn| {
        let all = lyceum::consent::manifests::disclosures_of(conn, ada_id, i64::MAX)?;
        all.into_iter()
            .find(|d| d.basis == "legal")
            .map(|d| (d.basis, d.partner_id, d.legal_reference))
            .ok_or(diesel::result::Error::NotFound)
    })
    .await;
    assert_eq!(
        (basis.as_str(), partner, legal.as_deref()),
        ("legal", Some(body_id), Some("Ofqual General Conditions A8.2"))
    );
    let res = app.post_form(&format!("{case}/close"), &[("outcome", "Result withheld by the board.")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&case).await;
    assert!(page.contains("Result withheld by the board."));

    as_user(&app, &ada).await;
    let (_, sharing) = app.get("/sharing").await;
    assert!(sharing.contains("Ofqual General Conditions A8.2"), "the learner sees the disclosure");
}

async fn racing_for_the_last_seat(app: TestApp) {
    // promise: CRT-8 — a full session refuses the next booking, even when bookings arrive at once.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let course = course_id(&app, "intro-python").await;
    let admin = verified(&app, "board").await;
    exam_body(&app, "awarding-board", &admin).await;
    as_user(&app, &admin).await;
    let session = open_session(&app, "awarding-board", course, "1", "March sitting").await;
    let mut learners = Vec::new();
    for name in ["ana", "ben", "cat", "dan", "eve", "fay"] {
        let l = verified(&app, name).await;
        as_user(&app, &l).await;
        enroll(&app, &c.slug).await;
        let id = user_id(&app, name).await;
        learners.push(lyceum::accounts::SessionUser {
            id,
            username: name.into(),
            first_name: name.into(),
            last_name: "Racer".into(),
            email: format!("{name}@example.org"),
            email_verified: true,
            roles: Vec::new(),
        });
    }
    let text: i64 = run(&app, |conn| {
        use lyceum::db::schema::consent_texts;
        consent_texts::table
            .filter(consent_texts::purpose.eq("exam_registration"))
            .select(consent_texts::id)
            .first(conn)
    })
    .await;
    let attempts: Vec<_> = learners
        .into_iter()
        .map(|user| {
            let db = app.db();
            rocket::tokio::spawn(async move {
                db.run(move |conn| {
                    let evidence = lyceum::consent::ledger::Evidence::learner_web(
                        user.id,
                        &lyceum::web::guards::ClientInfo { ip: None, user_agent: None },
                    );
                    let choice = lyceum::exams::BookingChoice {
                        date_of_birth: None,
                        registration_text_id: text,
                        support: None,
                        funders: Vec::new(),
                    };
                    let outcome = lyceum::exams::book(conn, &user, session, &choice, &evidence, lyceum::db::now());
                    Ok::<_, lyceum::web::AppError>(outcome.map(|_| ()).map_err(|e| e.to_string()))
                })
                .await
                .expect("the pool")
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for a in attempts {
        outcomes.push(a.await.expect("a booking task"));
    }
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(won, 1, "{outcomes:?}");
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(refused.contains("This session is full"), "refused only for being full: {refused}");
    }
    let (booked, bookings): (i32, i64) = run(&app, move |conn| {
        let booked = exam_sessions::table.find(session).select(exam_sessions::booked).first::<i32>(conn)?;
        let n = exam_bookings::table.count().get_result::<i64>(conn)?;
        Ok::<_, diesel::result::Error>((booked, n))
    })
    .await;
    assert_eq!((booked, bookings), (1, 1));
}
on_both!(crt_8_bookings_racing_for_the_last_seat_never_overbook, racing_for_the_last_seat);

/// A page of an exam list as its links read once the browser decodes them.
async fn list_page(app: &TestApp, path: &str) -> String {
    let (status, body) = app.get(path).await;
    assert_eq!(status, Status::Ok, "{path}");
    body.replace("&#x3D;", "=").replace("&amp;", "&")
}

/// How many links a page has whose address is `prefix` and a number.
fn rows(page: &str, prefix: &str) -> usize {
    regex::Regex::new(&format!(r#"href="{}\d+""#, regex::escape(prefix))).unwrap().find_iter(page).count()
}

async fn exam_lists_page(app: TestApp) {
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let course = course_id(&app, "intro-python").await;
    let admin = verified(&app, "board").await;
    let body = exam_body(&app, "awarding-board", &admin).await;
    let grace = staff(&app).await;
    let grace_id = user_id(&app, &grace.username).await;
    // 51 candidates, each with a session, a booking, a malpractice case and
    // support needs: a page of 50 and one more on every list.
    let body_id = body.id;
    run(&app, move |conn| {
        let now = lyceum::db::now();
        for i in 0..51 {
            let username = format!("cand{i:02}");
            let user: i64 = diesel::insert_into(lyceum::db::schema::users::table)
                .values((
                    lyceum::db::schema::users::username.eq(&username),
                    lyceum::db::schema::users::email.eq(format!("{username}@example.org")),
                    lyceum::db::schema::users::first_name.eq("Cand"),
                    lyceum::db::schema::users::last_name.eq(&username),
                    lyceum::db::schema::users::password_hash.eq("!"),
                    lyceum::db::schema::users::status.eq("active"),
                    lyceum::db::schema::users::email_verified_at.eq(Some(now)),
                    lyceum::db::schema::users::terms_version.eq(lyceum::accounts::TERMS_VERSION),
                    lyceum::db::schema::users::terms_accepted_at.eq(now),
                    lyceum::db::schema::users::created_at.eq(now),
                    lyceum::db::schema::users::updated_at.eq(now),
                ))
                .returning(lyceum::db::schema::users::id)
                .get_result(conn)?;
            let session: i64 = diesel::insert_into(exam_sessions::table)
                .values((
                    exam_sessions::partner_id.eq(body_id),
                    exam_sessions::course_id.eq(course),
                    exam_sessions::title.eq(format!("Sitting {i:02}")),
                    exam_sessions::starts_at.eq(now + Duration::days(30 + i)),
                    exam_sessions::time_zone.eq("Europe/London"),
                    exam_sessions::mode.eq("online"),
                    exam_sessions::location.eq(""),
                    exam_sessions::capacity.eq(10),
                    exam_sessions::booked.eq(1),
                    exam_sessions::booking_deadline.eq(now + Duration::days(20 + i)),
                    exam_sessions::created_at.eq(now),
                ))
                .returning(exam_sessions::id)
                .get_result(conn)?;
            let booking: i64 = diesel::insert_into(exam_bookings::table)
                .values((
                    exam_bookings::session_id.eq(session),
                    exam_bookings::user_id.eq(user),
                    exam_bookings::reference.eq(format!("EX-PAGE{i:02}")),
                    exam_bookings::status.eq(lyceum::exams::BOOKED),
                    exam_bookings::created_at.eq(now),
                ))
                .returning(exam_bookings::id)
                .get_result(conn)?;
            diesel::insert_into(lyceum::db::schema::malpractice_cases::table)
                .values((
                    lyceum::db::schema::malpractice_cases::booking_id.eq(booking),
                    lyceum::db::schema::malpractice_cases::opened_by.eq(Some(grace_id)),
                    lyceum::db::schema::malpractice_cases::details.eq(format!("Incident {i:02}")),
                    lyceum::db::schema::malpractice_cases::status.eq("open"),
                    lyceum::db::schema::malpractice_cases::created_at.eq(now),
                ))
                .execute(conn)?;
            // The list shows who and when; it never opens the sealed text.
            diesel::insert_into(support_needs::table)
                .values((
                    support_needs::user_id.eq(user),
                    support_needs::needs.eq("sealed"),
                    support_needs::adjustments.eq("sealed"),
                    support_needs::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .await;

    // The exam body's sessions, soonest first.
    as_user(&app, &admin).await;
    let first = list_page(&app, "/partners/awarding-board/exams").await;
    assert_eq!(rows(&first, "/partners/awarding-board/exams/"), 50, "a page of 50 sessions");
    assert!(first.contains("Sitting 00") && !first.contains("Sitting 50"));
    assert!(first.contains(r#"rel="next" href="/partners/awarding-board/exams?page=2""#), "a next link");
    let second = list_page(&app, "/partners/awarding-board/exams?page=2").await;
    assert_eq!(rows(&second, "/partners/awarding-board/exams/"), 1);
    assert!(second.contains("Sitting 50") && second.contains(r#"href="/partners/awarding-board/exams?page=1""#));
    assert!(!second.contains(r#"rel="next""#));
    let past = list_page(&app, "/partners/awarding-board/exams?page=9").await;
    assert!(past.contains("No more sessions") && past.contains("id=\"new-session\""), "the form stays");

    // Malpractice cases, newest first.
    as_user(&app, &grace).await;
    let first = list_page(&app, "/staff/malpractice").await;
    assert_eq!(rows(&first, "/staff/malpractice/"), 50, "a page of 50 cases");
    assert!(first.contains("EX-PAGE50") && !first.contains("EX-PAGE00"));
    assert!(first.contains(r#"rel="next" href="/staff/malpractice?page=2""#));
    let second = list_page(&app, "/staff/malpractice?page=2").await;
    assert_eq!(rows(&second, "/staff/malpractice/"), 1);
    assert!(second.contains("EX-PAGE00") && !second.contains(r#"rel="next""#));

    // The support team's list of support needs, by username.
    let sam = verified(&app, "sam").await;
    as_user(&app, &grace).await;
    let res = app.post_form("/staff/support-team", &[("login", "sam")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    as_user(&app, &sam).await;
    let first = list_page(&app, "/staff/support-needs?page=x").await;
    assert_eq!(rows(&first, "/staff/support-needs/"), 50, "a page of 50 people");
    assert!(first.contains(">cand00<") && !first.contains(">cand50<"));
    assert!(first.contains(r#"rel="next" href="/staff/support-needs?page=2""#));
    let second = list_page(&app, "/staff/support-needs?page=2").await;
    assert_eq!(rows(&second, "/staff/support-needs/"), 1);
    assert!(second.contains(">cand50<") && !second.contains(r#"rel="next""#));
}
on_both!(exam_lists_read_one_page_at_a_time, exam_lists_page);

/// Bookings of a session on the exam body's session page.
fn candidate_rows(page: &str) -> usize {
    page.matches("<tr><td><code>EX-").count()
}

/// Disclosures of exam registration details, by learner.
async fn registration_disclosures(app: &TestApp) -> Vec<i64> {
    let mut users: Vec<i64> = run(app, |conn| lyceum::consent::manifests::expand(conn, &Default::default()))
        .await
        .into_iter()
        .filter(|d| d.purpose == "exam_registration")
        .map(|d| d.user_id)
        .collect();
    users.sort_unstable();
    users
}

async fn candidate_lists_page(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let course = course_id(&app, "intro-python").await;
    let admin = verified(&app, "board").await;
    let body = exam_body(&app, "awarding-board", &admin).await;
    as_user(&app, &admin).await;
    let session = open_session(&app, "awarding-board", course, "200", "Big sitting").await;
    // Ada books first and Bob last, both through the form (their consent
    // lets their details leave); 99 candidates between them.
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    enroll(&app, &c.slug).await;
    book_as(&app, session, false, None).await;
    run(&app, move |conn| {
        let now = lyceum::db::now();
        for i in 0..99 {
            let username = format!("cand{i:02}");
            let user: i64 = diesel::insert_into(lyceum::db::schema::users::table)
                .values((
                    lyceum::db::schema::users::username.eq(&username),
                    lyceum::db::schema::users::email.eq(format!("{username}@example.org")),
                    lyceum::db::schema::users::first_name.eq("Cand"),
                    lyceum::db::schema::users::last_name.eq(&username),
                    lyceum::db::schema::users::password_hash.eq("!"),
                    lyceum::db::schema::users::status.eq("active"),
                    lyceum::db::schema::users::email_verified_at.eq(Some(now)),
                    lyceum::db::schema::users::terms_version.eq(lyceum::accounts::TERMS_VERSION),
                    lyceum::db::schema::users::terms_accepted_at.eq(now),
                    lyceum::db::schema::users::created_at.eq(now),
                    lyceum::db::schema::users::updated_at.eq(now),
                ))
                .returning(lyceum::db::schema::users::id)
                .get_result(conn)?;
            diesel::insert_into(exam_bookings::table)
                .values((
                    exam_bookings::session_id.eq(session),
                    exam_bookings::user_id.eq(user),
                    exam_bookings::reference.eq(format!("EX-MID{i:02}")),
                    exam_bookings::status.eq(lyceum::exams::BOOKED),
                    exam_bookings::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .await;
    let bob = verified(&app, "bob").await;
    as_user(&app, &bob).await;
    enroll(&app, &c.slug).await;
    book_as(&app, session, false, None).await;
    let (ada_ref, bob_ref) = (reference_of(&app, "ada").await, reference_of(&app, "bob").await);
    let (ada_id, bob_id) = (user_id(&app, "ada").await, user_id(&app, "bob").await);

    // The API: 100 candidates a page, then a cursor to the rest.
    let key = key_for(&app, &body, &["exams"]).await;
    let path = format!("/api/v1/exams/candidates?session={session}");
    let res =
        app.client.get(path.clone()).header(Header::new("Authorization", format!("Bearer {key}"))).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let link = res.headers().get_one("Link").map(str::to_string);
    let first: Value = serde_json::from_str(&res.into_string().await.unwrap()).unwrap();
    let list = first["candidates"].as_array().unwrap();
    assert_eq!(list.len(), 100, "a page of 100 candidates");
    assert_eq!(
        (list[0]["booking"].as_str(), list[0]["email"].as_str()),
        (Some(ada_ref.as_str()), Some("ada@example.org"))
    );
    assert!(list.iter().all(|c| c["booking"] != bob_ref.as_str()), "Bob is on the next page");
    assert_eq!(registration_disclosures(&app).await, [ada_id], "only what this page handed out is disclosed");
    let next = first["next"].as_str().expect("a cursor to the next page").to_string();
    assert_eq!(link, Some(format!("<{path}&since={next}>; rel=\"next\"")), "the Link header names the next page");
    let (status, text) = pull(&app, &key, &format!("{path}&since={next}")).await;
    assert_eq!(status, Status::Ok, "{text}");
    let rest: Value = serde_json::from_str(&text).unwrap();
    let list = rest["candidates"].as_array().unwrap();
    assert_eq!(list.len(), 1, "the rest: {text}");
    assert_eq!(
        (list[0]["booking"].as_str(), list[0]["email"].as_str()),
        (Some(bob_ref.as_str()), Some("bob@example.org"))
    );
    assert!(rest["next"].is_null(), "the last page has no next cursor");
    assert_eq!(registration_disclosures(&app).await, [ada_id, bob_id], "the second page's candidate disclosed");
    // Without a session, the same pages over all sessions; a bad cursor is a 400.
    let (status, text) = pull(&app, &key, "/api/v1/exams/candidates").await;
    assert_eq!(status, Status::Ok);
    let all: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(all["candidates"].as_array().unwrap().len(), 100);
    assert!(all["next"].is_string());
    let (status, text) = pull(&app, &key, "/api/v1/exams/candidates?since=not-a-cursor").await;
    assert_eq!(status, Status::BadRequest, "{text}");

    // The session page: 50 candidates a page, a next link, the rest after.
    as_user(&app, &admin).await;
    let page_path = format!("/partners/awarding-board/exams/{session}");
    let first = list_page(&app, &page_path).await;
    assert_eq!(candidate_rows(&first), 50, "a page of 50 candidates");
    assert!(first.contains(&ada_ref) && !first.contains(&bob_ref));
    assert!(first.contains(&format!(r#"rel="next" href="{page_path}?page=2""#)), "a next link");
    let second = list_page(&app, &format!("{page_path}?page=2")).await;
    assert_eq!(candidate_rows(&second), 50);
    assert!(second.contains(&format!(r#"rel="next" href="{page_path}?page=3""#)));
    let third = list_page(&app, &format!("{page_path}?page=3")).await;
    assert_eq!(candidate_rows(&third), 1);
    assert!(third.contains(&bob_ref) && !third.contains(r#"rel="next""#) && third.contains("id=\"results-form\""));
    for junk in ["x", "0", "-2", "99999999999999999999"] {
        assert_eq!(candidate_rows(&list_page(&app, &format!("{page_path}?page={junk}")).await), 50, "page={junk}");
    }
}
on_both!(exam_candidate_lists_read_one_page_at_a_time, candidate_lists_page);

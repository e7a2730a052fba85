//! Learning: catalog and search, enrollment, content, progress and grading,
//! emails, access windows, authoring boundaries and course packages.

use diesel::prelude::*;
use lyceum::accounts::SessionUser;
use lyceum::accounts::roles::Role;
use lyceum::db::schema::{course_feedback, courses, enrollments, live_attendance, quiz_attempts};
use lyceum::learning::authoring::{self, RunInput};
use lyceum::learning::content::{BlobRef, BlockData, Question, QuestionKind, Quiz, ShowAnswers};
use lyceum::learning::service;
use rocket::http::Status;

use crate::common::{Learner, TestApp};
use crate::{on_both, on_meilisearch};

fn operator() -> SessionUser {
    SessionUser {
        id: 0,
        username: "operator".into(),
        first_name: "Op".into(),
        last_name: "Erator".into(),
        email: String::new(),
        email_verified: true,
        roles: vec![(Role::Staff, String::new())],
    }
}

pub struct Seeded {
    pub slug: String,
    pub units: Vec<i64>,
    pub quiz: i64,
    pub resource: i64,
    pub live: i64,
    pub member_id: i64,
}

/// A member with a published course: two sections, three units, every block kind.
pub async fn seed_course(app: &TestApp, member: &str, slug: &str, title: &str, access_days: Option<i32>) -> Seeded {
    let blobs = lyceum::blob_store(&app.config);
    let (member, slug, title) = (member.to_string(), slug.to_string(), title.to_string());
    app.db()
        .run(move |conn| {
            let op = operator();
            let now = lyceum::db::now();
            let m = match authoring::member_by_slug(conn, &member) {
                Ok(m) => m,
                Err(_) => {
                    authoring::create_member(conn, &op, &member, &format!("{member} University"), "A member.", now)?
                }
            };
            let input = authoring::parse_course(
                &slug,
                &title,
                "Learn it well.",
                "All about **it**.",
                "computer-science",
                "en",
                "2 hours",
            )?;
            let c = authoring::create_course(conn, &op, &m, &input, now)?;
            authoring::add_run(
                conn,
                &c,
                &RunInput {
                    key: "2026".into(),
                    starts_at: now - chrono::Duration::days(1),
                    ends_at: None,
                    enrollment_opens_at: None,
                    enrollment_closes_at: None,
                    pacing: "self".into(),
                    access_days,
                    pass_threshold: 60,
                    audit: true,
                    verified_price_cents: Some(4900),
                    currency: "USD".into(),
                },
                now,
            )?;
            authoring::add_section(conn, &c, "Basics")?;
            authoring::add_section(conn, &c, "Practice")?;
            let outline = service::outline(conn, c.id)?;
            let (s1, s2) = (outline[0].0.id, outline[1].0.id);
            let u1 = authoring::add_unit(conn, &c, s1, "Welcome")?;
            let u2 = authoring::add_unit(conn, &c, s1, "Variables")?;
            let u3 = authoring::add_unit(conn, &c, s2, "Check")?;
            let unit = |conn: &mut lyceum::db::Conn, id| service::unit_in_course(conn, c.id, id);
            let un1 = unit(conn, u1)?;
            authoring::add_block(
                conn,
                &un1,
                &BlockData::Text { markdown: "Hello **learner** <script>alert(1)</script>".into() },
                now,
            )?;
            authoring::add_block(
                conn,
                &un1,
                &BlockData::Video {
                    url: Some("https://www.youtube.com/watch?v=aqz-KE-bpKQ".into()),
                    file: None,
                    transcript: Some("A film.".into()),
                },
                now,
            )?;
            let key = lyceum::storage::store(conn, blobs.as_ref(), b"Cheat sheet: x = 1", "text/plain")
                .map_err(|e| service::LearningError::Invalid(e.to_string()))?;
            let resource = authoring::add_block(
                conn,
                &un1,
                &BlockData::Resource {
                    title: "Cheat sheet".into(),
                    file: BlobRef { key, filename: "cheatsheet.txt".into(), content_type: "text/plain".into() },
                },
                now,
            )?;
            let un2 = unit(conn, u2)?;
            authoring::add_block(conn, &un2, &BlockData::Text { markdown: "Variables hold values.".into() }, now)?;
            let live = authoring::add_block(
                conn,
                &un2,
                &BlockData::Live {
                    title: "Office hours".into(),
                    starts_at: now + chrono::Duration::days(3),
                    link: "https://meet.example.org/room".into(),
                },
                now,
            )?;
            let un3 = unit(conn, u3)?;
            let q = |kind, correct: Vec<usize>, answer| Question {
                kind,
                prompt: "Pick".into(),
                choices: vec!["a".into(), "b".into()],
                correct,
                answer,
                tolerance: 0.01,
                accepted: vec![],
                feedback: Some("Because.".into()),
                choice_feedback: vec![],
            };
            let quiz = authoring::add_block(
                conn,
                &un3,
                &BlockData::Quiz(Quiz {
                    title: "Final check".into(),
                    attempts: 2,
                    weight: 1.0,
                    show_answers: ShowAnswers::AfterLastAttempt,
                    due_at: None,
                    proctored: false,
                    questions: vec![
                        q(QuestionKind::Single, vec![1], None),
                        q(QuestionKind::Numeric, vec![], Some(3.5)),
                    ],
                }),
                now,
            )?;
            authoring::set_published(conn, &c, true, now)?;
            Ok::<_, service::LearningError>(Seeded {
                slug: c.slug,
                units: vec![u1, u2, u3],
                quiz,
                resource,
                live,
                member_id: m.id,
            })
        })
        .await
        .expect("course seeded")
}

pub(crate) async fn verified(app: &TestApp, name: &str) -> Learner {
    let l = app.sign_up(name).await;
    app.verify(&l).await;
    app.sign_in(&l, false).await;
    l
}

pub(crate) async fn enroll<'a>(app: &'a TestApp, slug: &str) -> rocket::local::asynchronous::LocalResponse<'a> {
    app.post_form(&format!("/courses/{slug}/enroll"), &[("run", "2026"), ("track", "audit")]).await
}

async fn catalog_and_enrollment(app: TestApp) {
    // promise: CRS-1 — browse a catalog, search it (typos tolerated), enroll, follow content.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    seed_course(&app, "larkfield", "statistics-basics", "Statistics for Everyone", None).await;
    app.run_jobs().await;
    let (status, body) = app.get("/courses").await;
    assert_eq!(status, Status::Ok);
    assert!(body.contains("Introduction to Python") && body.contains("Statistics for Everyone"));
    let (_, body) = app.get("/courses?q=pyhton").await;
    assert!(body.contains("Introduction to Python") && !body.contains("Statistics for Everyone"), "typo search");
    let (_, body) = app.get("/courses?member=larkfield").await;
    assert!(!body.contains("Introduction to Python") && body.contains("Statistics for Everyone"));
    let (status, body) = app.get("/courses/intro-python").await;
    assert_eq!(status, Status::Ok);
    assert!(body.contains("Enroll") && body.contains("Basics") && body.contains("northbridge University"));

    // promise: ACC-3 — an unverified learner cannot enroll.
    let ada = app.sign_up("ada").await;
    app.sign_in(&ada, false).await;
    let res = enroll(&app, &c.slug).await;
    assert_eq!(res.headers().get_one("Location"), Some("/courses/intro-python"));
    let (_, body) = app.get("/courses/intro-python").await;
    assert!(body.contains("confirm your email address") || body.contains("Confirm your email address"));
    app.verify(&ada).await;
    app.sign_out().await;
    app.sign_in(&ada, false).await;
    // The verified track is bought, and payments are not there yet: refused, not given away.
    let res = app.post_form(&format!("/courses/{}/enroll", c.slug), &[("run", "2026"), ("track", "verified")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/courses/intro-python"));
    let (_, body) = app.get("/courses/intro-python").await;
    assert!(body.contains("Enroll in the free audit track first"));
    let res = enroll(&app, &c.slug).await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));
    let (status, body) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    assert_eq!(status, Status::Ok);
    assert!(body.contains("Hello <strong>learner</strong>") && !body.contains("<script>alert"), "sanitised markdown");
    assert!(body.contains("youtube-nocookie.com/embed/aqz-KE-bpKQ"));
    // A unit of another course is not reachable through this one.
    let other = seed_course(&app, "northbridge", "other-course", "Other", None).await;
    let (status, _) = app.get(&format!("/learn/intro-python/units/{}", other.units[0])).await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = app.get(&format!("/learn/other-course/units/{}", other.units[0])).await;
    assert_eq!(status, Status::Forbidden, "not enrolled there");
}
on_both!(crs_1_catalog_search_enrollment_and_content, catalog_and_enrollment);
on_meilisearch!(crs_1_catalog_search_on_meilisearch, catalog_and_enrollment);

/// Published courses for the paging test: `n` of `member`, all with one run
/// of `pacing`, in `subject` and `language`; `title(i)` names the i-th.
async fn seed_catalog(
    app: &TestApp,
    member: &'static str,
    n: usize,
    (subject, language, pacing): (&'static str, &'static str, &'static str),
    title: fn(usize) -> String,
) {
    crate::sharing::run(app, move |conn| {
        let op = operator();
        let now = lyceum::db::now();
        let m = match authoring::member_by_slug(conn, member) {
            Ok(m) => m,
            Err(_) => authoring::create_member(conn, &op, member, &format!("{member} University"), "A member.", now)?,
        };
        for i in 0..n {
            let slug = format!("{member}-{i:02}");
            let input =
                authoring::parse_course(&slug, &title(i), "Learn it well.", "All about it.", subject, language, "")?;
            let c = authoring::create_course(conn, &op, &m, &input, now)?;
            authoring::add_run(
                conn,
                &c,
                &RunInput {
                    key: "2026".into(),
                    starts_at: now - chrono::Duration::days(1),
                    ends_at: None,
                    enrollment_opens_at: None,
                    enrollment_closes_at: None,
                    pacing: pacing.into(),
                    access_days: None,
                    pass_threshold: 60,
                    audit: true,
                    verified_price_cents: None,
                    currency: "USD".into(),
                },
                now,
            )?;
            authoring::set_published(conn, &c, true, now)?;
        }
        Ok::<_, lyceum::learning::service::LearningError>(())
    })
    .await;
}

/// The catalog as its links read once a browser decodes them, and the
/// courses of its cards in order.
async fn catalog_at(app: &TestApp, path: &str) -> (String, Vec<String>) {
    let (status, body) = app.get(path).await;
    assert_eq!(status, Status::Ok, "{path}");
    let body = body.replace("&#x3D;", "=").replace("&amp;", "&");
    let re = regex::Regex::new(r#"class="card-title"><a href="/courses/([a-z0-9-]+)""#).unwrap();
    let cards = re.captures_iter(&body).map(|c| c[1].to_string()).collect();
    (body, cards)
}

async fn catalog_pages(app: TestApp) {
    // 30 Python courses from Northbridge (a third with "python" in the
    // summary only, titled to sort first) and 26 statistics courses in
    // French from Larkfield: 56 courses, three pages of 24.
    seed_catalog(&app, "northbridge", 30, ("computer-science", "en", "self"), |i| {
        if i % 3 == 0 { format!("Applied programming {i:02}") } else { format!("Python {i:02}") }
    })
    .await;
    crate::sharing::run(&app, |conn| {
        diesel::update(courses::table.filter(courses::title.like("Applied%")))
            .set(courses::summary.eq("Programs in python, applied."))
            .execute(conn)
    })
    .await;
    seed_catalog(&app, "larkfield", 26, ("mathematics", "fr", "instructor"), |i| format!("Statistique {i:02}")).await;
    app.run_jobs().await;

    let (first, cards) = catalog_at(&app, "/courses").await;
    assert_eq!(cards.len(), 24, "one page of cards");
    assert!(first.contains("56 courses") && first.contains("Page 1 of 3"), "the count and where we are");
    assert!(first.contains(r#"rel="next" href="/courses?page=2""#) && !first.contains(r#"rel="prev""#));
    // The facets still list every member, subject and language, not only this page's.
    for option in [
        r#"value="larkfield""#,
        r#"value="northbridge""#,
        r#"value="mathematics""#,
        r#"value="computer-science""#,
        r#"value="fr""#,
        r#"value="en""#,
    ] {
        assert!(first.contains(option), "{option} in the filters");
    }
    let mut seen = cards;
    for page in [2, 3] {
        let (body, cards) = catalog_at(&app, &format!("/courses?page={page}")).await;
        assert!(body.contains(&format!("Page {page} of 3")), "page {page}");
        assert!(body.contains(&format!(r#"rel="prev" href="/courses?page={}""#, page - 1)));
        assert_eq!(body.contains(r#"rel="next""#), page < 3);
        seen.extend(cards);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), sorted.len()), (56, 56), "every course once over the pages");

    // Filters survive paging, in the links of every page.
    let filtered = "/courses?member=northbridge&subject=computer-science&language=en&pacing=self&open=true";
    let (body, cards) = catalog_at(&app, filtered).await;
    assert!(body.contains("30 courses") && body.contains("Page 1 of 2"), "{body}");
    assert_eq!(cards.len(), 24);
    let next = format!("{filtered}&page=2");
    assert!(body.contains(&format!(r#"rel="next" href="{next}""#)), "the next page keeps the filters");
    let (body, cards) = catalog_at(&app, &next).await;
    assert_eq!(cards.len(), 6);
    assert!(cards.iter().all(|c| c.starts_with("northbridge-")) && body.contains("Page 2 of 2"));
    assert!(body.contains(&format!(r#"rel="prev" href="{filtered}&page=1""#)));
    let (body, cards) = catalog_at(&app, "/courses?subject=mathematics&pacing=instructor").await;
    assert!(body.contains("26 courses") && cards.iter().all(|c| c.starts_with("larkfield-")), "{cards:?}");
    let (body, cards) = catalog_at(&app, "/courses?language=fr&page=2").await;
    assert_eq!((cards.len(), body.contains("Page 2 of 2")), (2, true));
    let (body, cards) = catalog_at(&app, "/courses?pacing=instructor&member=northbridge").await;
    assert!(cards.is_empty() && body.contains("No course matches"));

    // A search pages in the index's order, not by title, and keeps its words.
    let index = app.client.rocket().state::<std::sync::Arc<dyn lyceum::search::SearchIndex>>().unwrap().clone();
    let ranked = index.search("python", 100).await.unwrap();
    let slugs = crate::sharing::run(&app, move |conn| {
        ranked
            .iter()
            .map(|id| courses::table.find(id).select((courses::slug, courses::title)).first::<(String, String)>(conn))
            .collect::<QueryResult<Vec<_>>>()
    })
    .await;
    assert_eq!(slugs.len(), 30, "every Python course is a hit");
    let mut by_title = slugs.clone();
    by_title.sort_by(|a, b| a.1.cmp(&b.1));
    assert_ne!(slugs, by_title, "the index ranks titles above summaries");
    let slugs: Vec<String> = slugs.into_iter().map(|(slug, _)| slug).collect();
    let (body, mut cards) = catalog_at(&app, "/courses?q=python").await;
    assert!(body.contains("30 courses") && body.contains("Page 1 of 2"), "{body}");
    assert!(body.contains(r#"rel="next" href="/courses?q=python&page=2""#));
    let (_, second) = catalog_at(&app, "/courses?q=python&page=2").await;
    cards.extend(second);
    assert_eq!(cards, slugs, "the pages follow the ranking");
    let (body, cards) = catalog_at(&app, "/courses?q=python+programs&member=northbridge").await;
    assert!(body.contains(r#"for “python programs”"#) && cards.len() <= 24, "{body}");

    // A malformed page is the first; one past the end says so and links to the last.
    for junk in ["x", "0", "-1", "1%00", "2.5", "99999999999999999999999"] {
        let (body, cards) = catalog_at(&app, &format!("/courses?page={junk}")).await;
        assert_eq!((cards.len(), body.contains("Page 1 of 3")), (24, true), "page={junk}");
    }
    for past in ["4", "9999"] {
        let (body, cards) = catalog_at(&app, &format!("/courses?member=larkfield&page={past}")).await;
        assert!(cards.is_empty(), "page={past}");
        assert!(
            body.contains("There are 2 pages") && body.contains(r#"href="/courses?member=larkfield&page=2""#),
            "{body}"
        );
    }
}
on_both!(crs_1_the_catalog_pages_in_the_database_with_its_filters, catalog_pages);

async fn progress_and_grading(app: TestApp) {
    // promise: CRS-2 — enrollments, progress, attendance, results and feedback are recorded.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = verified(&app, "ada").await;
    enroll(&app, &c.slug).await;
    for u in &c.units[..2] {
        let res = app.post_form(&format!("/learn/intro-python/units/{u}/complete"), &[]).await;
        assert_eq!(res.status(), Status::SeeOther);
    }
    let (_, body) = app.get("/learn/intro-python").await;
    assert!(body.contains("2 of 3 units completed"), "progress shown");
    assert!(body.contains("In progress"));
    // Wrong-typed answers: field error, no attempt used.
    let res = app
        .post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "three and a half")])
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("Please enter a number"));
    let res = app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "9")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    // Half right: 50% < 60% pass mark.
    let res = app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "2")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, body) = app.get("/learn/intro-python").await;
    assert!(body.contains("50%") && !body.contains("data-completed"));
    // All right on the second and last attempt: passes, completes.
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    let (_, body) = app.get("/learn/intro-python").await;
    assert!(body.contains("100%") && body.contains("data-completed"), "completed once the grade passes");
    let res = app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    assert_eq!(res.status(), Status::SeeOther, "no third attempt");
    let (_, unit) = app.get(&format!("/learn/intro-python/units/{}", c.units[2])).await;
    assert!(unit.contains("Because.") && unit.contains("Answer: 3.5"), "answers shown after the last attempt");
    let db = app.db();
    let mut conn = db.get().unwrap();
    let attempts: i64 = quiz_attempts::table.count().get_result(&mut conn).unwrap();
    assert_eq!(attempts, 2);
    let (grade, passed, completed): (f64, bool, Option<chrono::NaiveDateTime>) = enrollments::table
        .select((enrollments::grade_percent, enrollments::passed, enrollments::completed_at))
        .first(&mut conn)
        .unwrap();
    assert_eq!((grade, passed), (100.0, true));
    assert!(completed.is_some());
    // Attendance through the platform's link.
    let res = app.client.get(format!("/learn/intro-python/live/{}", c.live)).dispatch().await;
    assert_eq!(res.headers().get_one("Location"), Some("https://meet.example.org/room"));
    let attended: i64 = live_attendance::table.count().get_result(&mut conn).unwrap();
    assert_eq!(attended, 1);
    // Feedback.
    let res = app.post_form("/courses/intro-python/feedback", &[("rating", "5"), ("comment", "Clear and kind.")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let rating: i32 = course_feedback::table.select(course_feedback::rating).first(&mut conn).unwrap();
    assert_eq!(rating, 5);
    // The dashboard shows it.
    let (_, dash) = app.get("/dashboard").await;
    assert!(dash.contains("Introduction to Python") && dash.contains("Completed"));
    // The gradebook, for the member's staff, by username.
    assert_eq!(ada.username, "ada");
    let staff = app.sign_up("grace").await;
    lyceum::accounts::service::ensure_staff(&mut conn, &staff.email, None, "G", "H").unwrap();
    app.sign_out().await;
    app.sign_in(&staff, false).await;
    let run_id: i64 = enrollments::table.select(enrollments::run_id).first(&mut conn).unwrap();
    let res = app.client.get(format!("/studio/runs/{run_id}/gradebook.csv")).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let csv = res.into_string().await.unwrap();
    assert!(
        csv.starts_with("username,track,enrolled_at,units_completed,Final check,grade_percent,passed,completed_at"),
        "{csv}"
    );
    assert!(csv.contains("ada,audit,") && csv.contains(",100.00,true,"), "{csv}");
    assert!(!csv.contains("Lovelace"), "no real names in the gradebook");
}
on_both!(crs_2_progress_results_attendance_and_feedback_are_recorded, progress_and_grading);

async fn course_emails(app: TestApp) {
    // promise: CRS-4 — enrollment confirmation, reminders before a run starts, announcements.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = verified(&app, "ada").await;
    enroll(&app, &c.slug).await;
    assert!(app.mailed_link(&ada.email, "/learn/intro-python").await.is_some(), "enrollment confirmation");
    let staff = app.sign_up("grace").await;
    lyceum::accounts::service::ensure_staff(&mut app.db().get().unwrap(), &staff.email, None, "G", "H").unwrap();
    app.sign_out().await;
    app.sign_in(&staff, false).await;
    let run_id: i64 = enrollments::table.select(enrollments::run_id).first(&mut app.db().get().unwrap()).unwrap();
    let res = app
        .post_form(
            &format!("/studio/runs/{run_id}/announce"),
            &[("subject", "Week 2 is live"), ("body", "New units are ready.")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    app.run_jobs().await;
    let mail = lyceum::notify::read_outbox(&app.config.outbox_dir(), 100);
    assert!(
        mail.iter().any(|m| m.to == ada.email
            && m.subject.contains("Week 2 is live")
            && m.text.contains("New units are ready."))
    );
    assert!(!mail.iter().any(|m| m.to == staff.email && m.subject.contains("Week 2")), "only enrolled learners");
    // A run starting tomorrow gets one reminder, once.
    let upcoming = seed_course(&app, "northbridge", "later-course", "Later", None).await;
    app.sign_out().await;
    app.sign_in(&ada, false).await;
    enroll(&app, &upcoming.slug).await;
    let db = app.db();
    db.run(|conn| {
        use lyceum::db::schema::{course_runs, courses};
        let id: i64 = courses::table.filter(courses::slug.eq("later-course")).select(courses::id).first(conn)?;
        diesel::update(course_runs::table.filter(course_runs::course_id.eq(id)))
            .set(course_runs::starts_at.eq(lyceum::db::now() + chrono::Duration::hours(20)))
            .execute(conn)
            .map_err(lyceum::db::DbError::from)
    })
    .await
    .unwrap();
    let mut conn = db.get().unwrap();
    assert_eq!(service::send_start_reminders(&mut conn, lyceum::db::now()).unwrap(), 1);
    assert_eq!(service::send_start_reminders(&mut conn, lyceum::db::now()).unwrap(), 0, "sent once");
    drop(conn);
    app.run_jobs().await;
    let mail = lyceum::notify::read_outbox(&app.config.outbox_dir(), 100);
    assert!(mail.iter().any(|m| m.to == ada.email && m.subject == "Later starts soon"));
}
on_both!(crs_4_enrollment_reminder_and_announcement_emails, course_emails);

async fn access_window(app: TestApp) {
    // promise: CRS-5 — access is time-limited and ends by itself.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", Some(30)).await;
    verified(&app, "ada").await;
    enroll(&app, &c.slug).await;
    let expires: Option<chrono::NaiveDateTime> =
        enrollments::table.select(enrollments::access_expires_at).first(&mut app.db().get().unwrap()).unwrap();
    let days = (expires.unwrap() - lyceum::db::now()).num_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "30 days of access, got {days} hours");
    let (status, _) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    assert_eq!(status, Status::Ok);
    // Time passes: nothing runs, access simply ends.
    diesel::update(enrollments::table)
        .set(enrollments::access_expires_at.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
        .execute(&mut app.db().get().unwrap())
        .unwrap();
    let (status, body) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    assert_eq!(status, Status::Forbidden);
    assert!(body.contains("access to this course has ended"));
    let res = app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1")]).await;
    assert_eq!(res.status(), Status::Forbidden);
    let (_, dash) = app.get("/dashboard").await;
    assert!(dash.contains("Access ended"));
}
on_both!(crs_5_course_access_ends_after_the_access_period, access_window);

async fn resources_and_live(app: TestApp) {
    // promise: CRS-7 — downloadable resources and live sessions with their links.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let (status, _) = app.get(&format!("/learn/intro-python/files/{}", c.resource)).await;
    assert_eq!(status, Status::SeeOther, "sign in first");
    verified(&app, "ada").await;
    let (status, _) = app.get(&format!("/learn/intro-python/files/{}", c.resource)).await;
    assert_eq!(status, Status::Forbidden, "enrolled learners only");
    enroll(&app, &c.slug).await;
    let (_, unit) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    assert!(unit.contains(&format!("/learn/intro-python/files/{}", c.resource)) && unit.contains("Cheat sheet"));
    let res = app.client.get(format!("/learn/intro-python/files/{}", c.resource)).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert!(res.headers().get_one("Content-Disposition").unwrap().contains("attachment; filename=\"cheatsheet.txt\""));
    assert_eq!(res.into_string().await.unwrap(), "Cheat sheet: x = 1");
    let (_, unit) = app.get(&format!("/learn/intro-python/units/{}", c.units[1])).await;
    assert!(unit.contains("Office hours") && unit.contains(&format!("/learn/intro-python/live/{}", c.live)));
}
on_both!(crs_7_resources_and_live_sessions, resources_and_live);

async fn member_isolation(app: TestApp) {
    let north = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let lark = seed_course(&app, "larkfield", "stats", "Statistics", None).await;
    // Ada instructs for Northbridge only.
    let ada = verified(&app, "ada").await;
    let mut conn = app.db().get().unwrap();
    let ada_id: i64 = lyceum::accounts::service::find_for_login(&mut conn, &ada.username).unwrap().unwrap().id;
    lyceum::accounts::roles::grant(&mut conn, ada_id, Role::Instructor, &format!("member:{}", north.member_id), None)
        .unwrap();
    diesel::update(courses::table.filter(courses::slug.eq("stats")))
        .set(courses::published.eq(false))
        .execute(&mut conn)
        .unwrap();
    drop(conn);
    let (status, _) = app.get("/studio/courses/intro-python").await;
    assert_eq!(status, Status::Ok);
    let (status, _) = app.get(&format!("/learn/intro-python/units/{}", north.units[0])).await;
    assert_eq!(status, Status::Ok, "authors preview their own content");
    for path in [
        "/studio/courses/stats".to_string(),
        format!("/studio/units/{}", lark.units[0]),
        "/courses/stats".into(),
        format!("/learn/stats/units/{}", lark.units[0]),
        "/studio/members/larkfield".into(),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, Status::NotFound, "{path}");
        assert!(!body.contains("Statistics"), "{path} leaks the draft");
    }
    for (path, fields) in [
        ("/studio/courses/stats/outline".to_string(), vec![("action", "add_section"), ("title", "Hijack")]),
        ("/studio/courses/stats/details".into(), vec![("title", "Hijacked"), ("summary", "x"), ("language", "en")]),
        ("/studio/courses/stats/publish".into(), vec![("published", "true")]),
        ("/studio/members/larkfield/staff".into(), vec![("login", "ada"), ("role", "member_admin")]),
    ] {
        let res = app.post_form(&path, &fields).await;
        assert!(matches!(res.status(), Status::NotFound | Status::Forbidden), "{path}: {}", res.status());
    }
    let title: String = courses::table
        .filter(courses::slug.eq("stats"))
        .select(courses::title)
        .first(&mut app.db().get().unwrap())
        .unwrap();
    assert_eq!(title, "Statistics");
    // A plain learner has no studio at all.
    app.sign_out().await;
    verified(&app, "bob").await;
    let (status, _) = app.get("/studio").await;
    assert_eq!(status, Status::Forbidden);
    let (status, _) = app.get("/studio/courses/intro-python").await;
    assert_eq!(status, Status::Forbidden);
}
on_both!(nobody_sees_or_edits_another_members_content, member_isolation);

async fn authoring_in_the_browser(app: TestApp) {
    // Member staff build a course with the studio's forms.
    let staff = verified(&app, "grace").await;
    lyceum::accounts::service::ensure_staff(&mut app.db().get().unwrap(), &staff.email, None, "G", "H").unwrap();
    let res = app
        .post_form(
            "/studio/members",
            &[("slug", "northbridge"), ("name", "Northbridge University"), ("description", "Founded long ago.")],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/studio/members/northbridge"));
    let res = app
        .post_form(
            "/studio/courses",
            &[
                ("member", "northbridge"),
                ("slug", "rust-101"),
                ("title", "Rust 101"),
                ("summary", "Ownership without tears."),
                ("subjects", "programming"),
                ("language", "en"),
            ],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/studio/courses/rust-101"));
    app.post_form("/studio/courses/rust-101/outline", &[("action", "add_section"), ("title", "Start")]).await;
    let (_, page) = app.get("/studio/courses/rust-101").await;
    let section = regex::Regex::new(r#"name="id" value="(\d+)">\s*<label class="visually-hidden" for="s-"#)
        .unwrap()
        .captures(&page)
        .unwrap()[1]
        .to_string();
    app.post_form(
        "/studio/courses/rust-101/outline",
        &[("action", "add_unit"), ("id", &section), ("title", "Ownership")],
    )
    .await;
    app.post_form(
        "/studio/courses/rust-101/outline",
        &[("action", "add_unit"), ("id", &section), ("title", "Borrowing")],
    )
    .await;
    let (_, page) = app.get("/studio/courses/rust-101").await;
    let units: Vec<String> = regex::Regex::new(r#"href="/studio/units/(\d+)""#)
        .unwrap()
        .captures_iter(&page)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(units.len(), 2);
    // Reorder: Borrowing first.
    app.post_form("/studio/courses/rust-101/outline", &[("action", "unit_up"), ("id", &units[1])]).await;
    let (_, page) = app.get("/studio/courses/rust-101").await;
    assert!(page.find(">Borrowing<").unwrap() < page.find(">Ownership<").unwrap());
    // Blocks through the (multipart) editor.
    let token = app.csrf().await;
    let boundary = "XyZ";
    let body = |fields: &[(&str, &str)]| {
        let mut b = String::new();
        for (k, v) in fields {
            b.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"));
        }
        b.push_str(&format!("--{boundary}--\r\n"));
        b
    };
    let ct = rocket::http::ContentType::new("multipart", "form-data").with_params(("boundary", boundary));
    let post = |fields: Vec<(&'static str, String)>| {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let b = body(&refs);
        app.client.post(format!("/studio/units/{}/blocks", units[0])).header(ct.clone()).body(b).dispatch()
    };
    let res = post(vec![
        ("csrf_token", token.clone()),
        ("action", "add".into()),
        ("kind", "text".into()),
        ("markdown", "Every value has an **owner**.".into()),
    ])
    .await;
    assert_eq!(res.status(), Status::SeeOther);
    // A quiz from the editor's fields: no TOML to type.
    let res = post(vec![
        ("csrf_token", token.clone()),
        ("action", "add".into()),
        ("kind", "quiz".into()),
        ("quiz.title", "Check".into()),
        ("quiz.attempts", "2".into()),
        ("quiz.questions[0].kind", "single".into()),
        ("quiz.questions[0].prompt", "Who owns a value?".into()),
        ("quiz.questions[0].choices[0].text", "nobody".into()),
        ("quiz.questions[0].choices[1].text", "its owner".into()),
        ("quiz.questions[0].choices[1].correct", "true".into()),
    ])
    .await;
    assert_eq!(res.status(), Status::SeeOther);
    let res = post(vec![
        ("csrf_token", token.clone()),
        ("action", "add".into()),
        ("kind", "video".into()),
        ("url", "https://evil.example/v.mp4".into()),
    ])
    .await;
    assert_eq!(res.status(), Status::UnprocessableEntity, "refused, the form shown again");
    let res = post(vec![
        ("csrf_token", "forged".into()),
        ("action", "add".into()),
        ("kind", "text".into()),
        ("markdown", "x".into()),
    ])
    .await;
    assert_eq!(res.status(), Status::Forbidden, "multipart forms are CSRF-checked too");
    let (_, page) = app.get(&format!("/studio/units/{}", units[0])).await;
    assert!(page.contains("Every value has an **owner**.") && page.contains("Who owns a value?"));
    assert!(!page.contains("evil.example"), "a disallowed video host is refused");
    // Run, publish, and a learner sees it in the catalog.
    let res = app.post_form("/studio/courses/rust-101/publish", &[("published", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/studio/courses/rust-101").await;
    assert!(page.contains("Add a run before publishing") || page.contains("draft"));
    app.post_form(
        "/studio/courses/rust-101/runs",
        &[
            ("key", "2027"),
            ("starts_at", "2026-01-01T09:00"),
            ("pacing", "self"),
            ("pass_threshold", "50"),
            ("audit", "true"),
        ],
    )
    .await;
    app.post_form("/studio/courses/rust-101/publish", &[("published", "true")]).await;
    app.run_jobs().await;
    let (_, catalog) = app.get("/courses?q=ownership").await;
    assert!(catalog.contains("Rust 101"), "published and indexed");
}
on_both!(member_staff_build_a_course_in_the_browser, authoring_in_the_browser);

pub(crate) async fn staff_browser(app: &TestApp, name: &str) -> Learner {
    let staff = verified(app, name).await;
    lyceum::accounts::service::ensure_staff(&mut app.db().get().unwrap(), &staff.email, None, "G", "H").unwrap();
    staff
}

pub(crate) fn multipart(
    fields: &[(&str, &str)],
    file: Option<(&str, &str, &[u8])>,
) -> (rocket::http::ContentType, Vec<u8>) {
    multipart_files(fields, file.as_slice())
}

/// A multipart form with any number of files.
pub(crate) fn multipart_files(
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> (rocket::http::ContentType, Vec<u8>) {
    let boundary = "LyceumBoundary7MA4YWxk";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").into_bytes(),
        );
    }
    for (name, filename, bytes) in files {
        let kind = lyceum::storage::guess_type(filename);
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {kind}\r\n\r\n")
                .into_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").into_bytes());
    (rocket::http::ContentType::new("multipart", "form-data").with_params(("boundary", boundary)), body)
}

async fn round_trip(app: TestApp) {
    // Export → import (in another site) → export gives the same package.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", Some(90)).await;
    staff_browser(&app, "grace").await;
    let res = app.client.get("/studio/courses/intro-python/export").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert!(res.headers().get_one("Content-Disposition").unwrap().contains("intro-python.zip"));
    let zip = res.into_bytes().await.unwrap();
    let first = lyceum::learning::package::read_zip(&zip).expect("exported package reads back");

    let other = TestApp::sqlite().await;
    staff_browser(&other, "hopper").await;
    other.post_form("/studio/members", &[("slug", "northbridge"), ("name", "Northbridge"), ("description", "")]).await;
    let token = other.csrf().await;
    let (ct, body) =
        multipart(&[("csrf_token", &token), ("member", "northbridge")], Some(("package", "intro-python.zip", &zip)));
    let res = other.client.post("/studio/import").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther, "imported");
    let res = other.client.get("/studio/courses/intro-python/export").dispatch().await;
    let again = lyceum::learning::package::read_zip(&res.into_bytes().await.unwrap()).unwrap();
    assert_eq!(first, again, "export → import → export reproduces the course");
    assert_eq!(first.sections.len(), 2);
    assert_eq!(first.files.values().filter(|b| b.as_slice() == b"Cheat sheet: x = 1").count(), 1);
}
on_both!(course_export_then_import_reproduces_the_course, round_trip);

async fn broken_package(app: TestApp) {
    staff_browser(&app, "grace").await;
    app.post_form("/studio/members", &[("slug", "northbridge"), ("name", "Northbridge"), ("description", "")]).await;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let files: [(&str, &str); 3] = [
        (
            "course.toml",
            "[course]\nslug = \"broken\"\ntitle = \"Broken\"\nsummary = \"x\"\nlanguage = \"en\"\n\n[[runs]]\nkey = \"r1\"\nstarts_at = \"2026-01-01T00:00:00Z\"\npacing = \"self\"\npass_threshold = 60\n\n[[sections]]\ntitle = \"S\"\nunits = [\"units/01.md\", \"units/missing.md\"]\n",
        ),
        (
            "units/01.md",
            "+++\ntitle = \"One\"\n+++\nText\n\n::: quiz file=\"quizzes/q.toml\"\n::: video url=\"https://evil.example/x\"\n",
        ),
        (
            "quizzes/q.toml",
            "title = \"Q\"\n[[questions]]\nkind = \"single\"\nprompt = \"?\"\nchoices = [\"a\", \"b\"]\ncorrect = [0, 1]\n",
        ),
    ];
    for (name, text) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, text.as_bytes()).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let token = app.csrf().await;
    let (ct, body) =
        multipart(&[("csrf_token", &token), ("member", "northbridge")], Some(("package", "broken.zip", &bytes)));
    let res = app.client.post("/studio/import").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("units/missing.md"), "missing unit named");
    assert!(page.contains("quizzes/q.toml"), "quiz problem named with its file");
    assert!(page.contains("evil.example") || page.contains("video"), "video host problem");
    let n: i64 = courses::table.count().get_result(&mut app.db().get().unwrap()).unwrap();
    assert_eq!(n, 0, "nothing half-imported");
}
on_both!(a_broken_course_package_is_refused_with_its_problems, broken_package);

async fn image_upload(app: TestApp) {
    // promise: FRM-5 — an uploaded image is re-encoded without its metadata before anyone can download it.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    staff_browser(&app, "grace").await;
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 120]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let payload = b"Exif\0\0GPSLatitude=51.5 SECRET-CAMERA-SERIAL";
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend(((payload.len() + 2) as u16).to_be_bytes());
    app1.extend_from_slice(payload);
    let doctored: Vec<u8> = [&jpeg[..2], &app1[..], &jpeg[2..]].concat();
    let token = app.csrf().await;
    let boundary = "ImgBoundary";
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"cover.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").into_bytes();
    body.extend_from_slice(&doctored);
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let ct = rocket::http::ContentType::new("multipart", "form-data").with_params(("boundary", boundary));
    let res = app.client.post("/studio/courses/intro-python/image").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, about) = app.get("/courses/intro-python").await;
    let src =
        regex::Regex::new(r#"src="(/media/[0-9a-f]{64})""#).unwrap().captures(&about).expect("course image shown")[1]
            .to_string();
    let res = app.client.get(src).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let served = res.into_bytes().await.unwrap();
    assert!(image::load_from_memory(&served).is_ok());
    let text = String::from_utf8_lossy(&served);
    assert!(
        !text.contains("SECRET-CAMERA-SERIAL") && !text.contains("GPSLatitude") && !text.contains("Exif"),
        "metadata removed"
    );
}
on_both!(frm_5_uploaded_course_image_is_served_without_metadata, image_upload);

async fn every_page_renders(app: TestApp) {
    // Every page a learner and an author can reach renders (no template error, no 500).
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", Some(365)).await;
    let staff = staff_browser(&app, "grace").await;
    enroll(&app, &c.slug).await;
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    app.post_form("/studio/members/northbridge/staff", &[("login", "grace"), ("role", "instructor")]).await;
    let run_id: i64 = enrollments::table.select(enrollments::run_id).first(&mut app.db().get().unwrap()).unwrap();
    let mut pages = vec![
        "/".to_string(),
        "/courses".into(),
        "/courses?q=python&member=northbridge&subject=computer-science&language=en&pacing=self&open=true".into(),
        "/courses/intro-python".into(),
        "/dashboard".into(),
        "/account".into(),
        "/learn/intro-python".into(),
        "/studio".into(),
        "/studio/members/northbridge".into(),
        "/studio/courses/intro-python".into(),
        format!("/studio/runs/{run_id}/gradebook"),
        "/staff".into(),
        "/staff/jobs".into(),
        "/outbox".into(),
    ];
    pages.extend(c.units.iter().map(|u| format!("/learn/intro-python/units/{u}")));
    pages.extend(c.units.iter().map(|u| format!("/studio/units/{u}")));
    for page in pages {
        let (status, body) = app.get(&page).await;
        assert_eq!(status, Status::Ok, "{page}");
        assert!(body.contains("</html>") && body.contains(&staff.username), "{page} rendered in the layout");
    }
    let (status, _) = app.get("/studio/courses/intro-python/export").await;
    assert_eq!(status, Status::Ok);
}
on_both!(every_learner_and_author_page_renders, every_page_renders);

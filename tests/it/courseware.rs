//! Courseware that guides (issue 30, item 2 and the learning parts of item
//! 9): the outline beside each unit, the course-complete page, honest
//! "continue" links, quiz results per question in a colour that matches
//! them, and the small things around a course (rating, leaving, the price,
//! the page that asks a visitor to enroll). Every page over HTTP.

use lyceum::learning::authoring;
use lyceum::learning::content::{BlockData, Question, QuestionKind, Quiz, ShowAnswers};
use lyceum::learning::service;
use rocket::http::Status;

use crate::common::TestApp;
use crate::learning::{enroll, seed_course, verified};
use crate::on_both;

/// The `<nav aria-label="Course outline">` of a unit page, as HTML.
fn outline_of(page: &str) -> &str {
    let start = page.find(r#"aria-label="Course outline""#).expect("the unit page has a course outline");
    let end = page[start..].find("</nav>").map_or(page.len(), |e| start + e);
    &page[start..end]
}

/// The `<li>` of the outline that links to `unit`.
fn outline_item<'a>(outline: &'a str, slug: &str, unit: i64) -> &'a str {
    let href = format!(r#"href="/learn/{slug}/units/{unit}""#);
    let at = outline.find(&href).unwrap_or_else(|| panic!("the outline links to unit {unit}: {outline}"));
    let start = outline[..at].rfind("<li").expect("in a list item");
    let end = outline[at..].find("</li>").map_or(outline.len(), |e| at + e);
    &outline[start..end]
}

/// The layout's flash message: its kind and text.
fn flash(page: &str) -> (String, String) {
    let re = regex::Regex::new(r#"<div class="flash flash-(\w+)" role="status">([^<]*)</div>"#).unwrap();
    let c = re.captures(page).unwrap_or_else(|| panic!("a flash message on the page"));
    (c[1].to_string(), c[2].to_string())
}

async fn outline_beside_the_unit(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    verified(&app, "ada").await;
    enroll(&app, &c.slug).await;
    let res = app.post_form(&format!("/learn/intro-python/units/{}/complete", c.units[0]), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (status, page) = app.get(&format!("/learn/intro-python/units/{}", c.units[1])).await;
    assert_eq!(status, Status::Ok);
    let outline = outline_of(&page);
    assert!(outline.contains("Basics") && outline.contains("Practice"), "sections: {outline}");
    let done = outline_item(outline, "intro-python", c.units[0]);
    assert!(done.contains("data-done") && done.contains("Completed"), "a tick on the finished unit: {done}");
    let current = outline_item(outline, "intro-python", c.units[1]);
    assert!(current.contains(r#"aria-current="page""#), "the current unit is marked: {current}");
    assert!(!current.contains("data-done"));
    let open = outline_item(outline, "intro-python", c.units[2]);
    assert!(!open.contains("data-done") && !open.contains("aria-current"), "{open}");
    assert!(page.contains("Unit 2 of 3"), "where the learner is");
    // Previous and next, by name.
    assert!(page.contains(&format!(r#"href="/learn/intro-python/units/{}" rel="prev""#, c.units[0])));
    assert!(page.contains(&format!(r#"href="/learn/intro-python/units/{}" rel="next""#, c.units[2])));
    assert!(page.contains("Welcome") && page.contains("Check"));
    // The outline folds away on a narrow screen: it is a <details> disclosure.
    let before = &page[..page.find(r#"aria-label="Course outline""#).unwrap()];
    assert!(before.rfind("<details").is_some_and(|d| before[d..].contains("course-outline")));
}
on_both!(a_unit_shows_the_course_outline_with_ticks_and_position, outline_beside_the_unit);

/// The outline's sections are kept fragments (one render for everyone who
/// sees a section the same way): each learner still sees their own ticks and
/// place, a new tick and an author's rename show at once.
async fn kept_outline_sections_follow_each_learner(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let unit2 = format!("/learn/intro-python/units/{}", c.units[1]);
    verified(&app, "ada").await;
    enroll(&app, &c.slug).await;
    let (_, page) = app.get(&unit2).await;
    let before = outline_of(&page).to_string();
    assert!(!outline_item(&before, "intro-python", c.units[0]).contains("data-done"), "nothing done yet: {before}");
    // Ada finishes the first unit: the same page now shows its tick.
    app.post_form(&format!("/learn/intro-python/units/{}/complete", c.units[0]), &[]).await;
    let (_, page) = app.get(&unit2).await;
    assert!(outline_item(outline_of(&page), "intro-python", c.units[0]).contains("data-done"), "Ada's new tick");
    // Bob, on the same unit, sees none of Ada's ticks.
    app.sign_out().await;
    verified(&app, "bob").await;
    enroll(&app, &c.slug).await;
    let (_, page) = app.get(&unit2).await;
    assert_eq!(outline_of(&page), before, "Bob sees the outline Ada saw before her tick");
    // On another unit the current mark moves.
    let (_, page) = app.get(&format!("/learn/intro-python/units/{}", c.units[2])).await;
    let here = outline_item(outline_of(&page), "intro-python", c.units[2]);
    assert!(here.contains(r#"aria-current="page""#), "{here}");
    assert!(!outline_item(outline_of(&page), "intro-python", c.units[1]).contains("aria-current"));
    // The author renames the second unit: the kept sections show the new title.
    let unit = c.units[1];
    app.db()
        .run(move |conn| {
            let course = service::course_by_slug(conn, "intro-python")?;
            authoring::outline_action(conn, &course, "rename_unit", unit, "Loops, renamed")
        })
        .await
        .expect("unit renamed");
    let (_, page) = app.get(&unit2).await;
    assert!(outline_of(&page).contains("Loops, renamed"), "the renamed unit: {}", outline_of(&page));
}
on_both!(kept_outline_sections_show_each_learner_their_own_ticks, kept_outline_sections_follow_each_learner);

async fn course_complete_page(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    verified(&app, "ada").await;
    enroll(&app, &c.slug).await;
    let (status, _) = app.get("/learn/intro-python/complete").await;
    assert_eq!(status, Status::Ok, "the page exists before the end, and says what remains");
    // Half right: 50 % under the 60 % pass mark.
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "2")]).await;
    for u in &c.units[..2] {
        let res = app.post_form(&format!("/learn/intro-python/units/{u}/complete"), &[]).await;
        assert_ne!(res.headers().get_one("Location"), Some("/learn/intro-python/complete"), "not finished yet");
    }
    let res = app.post_form(&format!("/learn/intro-python/units/{}/complete", c.units[2]), &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python/complete"), "the last unit finishes");
    let (status, page) = app.get("/learn/intro-python/complete").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("50%") && page.contains("60%"), "grade and pass mark");
    assert!(page.contains("data-not-passed") && !page.contains("data-passed"), "not passed, plainly");
    assert!(page.contains("attempt"), "what remains: an attempt at the quiz");
    assert!(page.contains(&format!("/learn/intro-python/units/{}#block-{}", c.units[2], c.quiz)));
    // Continue links on a finished course lead here, never to a finished unit.
    let (_, dash) = app.get("/dashboard").await;
    assert!(dash.contains(r#"href="/learn/intro-python/complete""#), "dashboard continues to the end page");
    assert!(!dash.contains(&format!("/learn/intro-python/units/{}", c.units[2])), "not to a finished unit");
    let (_, home) = app.get("/learn/intro-python").await;
    assert!(home.contains(r#"href="/learn/intro-python/complete""#));
    assert!(!home.contains("Continue where you left off"));
    // Passing on the last attempt: passed, and the way to a certificate.
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    let (_, page) = app.get("/learn/intro-python/complete").await;
    assert!(page.contains("100%") && page.contains("data-passed") && !page.contains("data-not-passed"));
    assert!(page.contains("verified certificate"), "the certificate path on the audit track: {page}");
    assert!(page.contains("/learn/intro-python#certificate-card"));
}
on_both!(finishing_a_course_opens_the_course_complete_page, course_complete_page);

async fn continue_is_honest(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    verified(&app, "ada").await;
    enroll(&app, &c.slug).await;
    // Unit 1 read and finished: continuing goes on to unit 2, not back to unit 1.
    app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    app.post_form(&format!("/learn/intro-python/units/{}/complete", c.units[0]), &[]).await;
    let (_, dash) = app.get("/dashboard").await;
    assert!(dash.contains(&format!(r#"href="/learn/intro-python/units/{}""#, c.units[1])), "{dash}");
    assert!(!dash.contains(&format!(r#"href="/learn/intro-python/units/{}""#, c.units[0])));
}
on_both!(continue_leads_to_the_next_unfinished_unit, continue_is_honest);

/// A course with one quiz whose choices hold inline code, three attempts.
async fn seed_code_quiz(app: &TestApp) -> (i64, i64) {
    let c = seed_course(app, "northbridge", "rust-101", "Rust 101", None).await;
    let unit = c.units[1];
    let block = app
        .db()
        .run(move |conn| {
            let course = service::course_by_slug(conn, "rust-101")?;
            let unit = service::unit_in_course(conn, course.id, unit)?;
            let q = Question {
                kind: QuestionKind::Single,
                prompt: "Which declares a mutable binding?".into(),
                choices: vec!["`let x = 1;`".into(), "`let mut x = 1;`".into()],
                correct: vec![1],
                answer: None,
                tolerance: 0.0,
                accepted: vec![],
                feedback: Some("Bindings are immutable unless marked `mut`.".into()),
                choice_feedback: vec![],
            };
            let n = Question {
                kind: QuestionKind::Numeric,
                prompt: "How many bits in a `u8`?".into(),
                choices: vec![],
                correct: vec![],
                answer: Some(8.0),
                tolerance: 0.0,
                accepted: vec![],
                feedback: Some("Eight, as the name says.".into()),
                choice_feedback: vec![],
            };
            authoring::add_block(
                conn,
                &unit,
                &BlockData::Quiz(Quiz {
                    title: "Bindings".into(),
                    attempts: 3,
                    weight: 1.0,
                    show_answers: ShowAnswers::AfterLastAttempt,
                    due_at: None,
                    proctored: false,
                    questions: vec![q, n],
                }),
                lyceum::db::now(),
            )
        })
        .await
        .expect("quiz added");
    (unit, block)
}

async fn quiz_results_per_question(app: TestApp) {
    let (unit, block) = seed_code_quiz(&app).await;
    verified(&app, "ada").await;
    enroll(&app, "rust-101").await;
    let (_, page) = app.get(&format!("/learn/rust-101/units/{unit}")).await;
    assert!(page.contains("<code>let mut x = 1;</code>"), "choices render inline code");
    assert!(!page.contains("`let mut x = 1;`"), "no raw backticks");

    // Nothing right: 0 % is not a success.
    let res = app.post_form(&format!("/learn/rust-101/quiz/{block}"), &[("q0", "0"), ("q1", "7")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let to = res.headers().get_one("Location").unwrap().split('#').next().unwrap().to_string();
    let (_, page) = app.get(&to).await;
    let (kind, message) = flash(&page);
    assert_eq!(kind, "error", "0 % is shown as a failure: {message}");
    assert!(message.contains("0%"));
    // Each question with the learner's answer and whether it was right; the
    // correct answers and explanations wait for the last attempt.
    let results = &page[page.find("data-quiz-results").expect("results beside the quiz")..];
    assert!(results.contains("0 of 2 right"), "{results}");
    assert!(results.contains("Your answer: <code>let x = 1;</code>"), "{results}");
    assert!(results.contains("Your answer: 7"), "{results}");
    assert_eq!(results.matches("data-wrong").count(), 2, "{results}");
    assert!(!page.contains("Bindings are immutable") && !page.contains("Eight, as the name says"));
    assert!(!page.contains("correct answer</span>") && !page.contains("Answer: 8"));

    // Half right: below the pass mark, so not green either.
    app.post_form(&format!("/learn/rust-101/quiz/{block}"), &[("q0", "1"), ("q1", "7")]).await;
    let (_, page) = app.get(&format!("/learn/rust-101/units/{unit}")).await;
    let (kind, message) = flash(&page);
    assert_ne!(kind, "success", "a fail is not green: {message}");
    let results = &page[page.find("data-quiz-results").unwrap()..];
    assert!(results.contains("1 of 2 right") && results.contains("data-right") && results.contains("data-wrong"));

    // The last attempt, all right: green, with the explanations revealed.
    app.post_form(&format!("/learn/rust-101/quiz/{block}"), &[("q0", "1"), ("q1", "8")]).await;
    let (_, page) = app.get(&format!("/learn/rust-101/units/{unit}")).await;
    let (kind, message) = flash(&page);
    assert_eq!(kind, "success", "{message}");
    assert!(page.contains("Bindings are immutable unless marked <code>mut</code>"), "explanations after the last");
    assert!(page.contains("Answer: 8"));
    assert!(!page.contains("Submit answers"), "no form to send once the attempts are used");
    let res = app.post_form(&format!("/learn/rust-101/quiz/{block}"), &[("q0", "1"), ("q1", "8")]).await;
    let to = res.headers().get_one("Location").unwrap().split('#').next().unwrap().to_string();
    let (_, page) = app.get(&to).await;
    assert!(flash(&page).1.contains("used all your attempts"), "the handler refuses what the page does not offer");
}
on_both!(quiz_results_show_each_question_in_a_colour_that_matches, quiz_results_per_question);

async fn small_things(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    verified(&app, "ada").await;
    // A learner who is not enrolled is offered the way in, not only the home page.
    let (status, page) = app.get("/learn/intro-python").await;
    assert_eq!(status, Status::Forbidden);
    assert!(page.contains(r#"href="/courses/intro-python#enroll""#), "the enroll action: {page}");
    assert!(page.contains("Introduction to Python"));
    let (status, page) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    assert_eq!(status, Status::Forbidden);
    assert!(page.contains(r#"href="/courses/intro-python#enroll""#));
    // Nothing can be bought here (payments are off): no price is shown.
    let (_, about) = app.get("/courses/intro-python").await;
    assert!(about.contains(r#"id="enroll""#));
    assert!(!about.contains("49.00"), "no price for what cannot be bought");
    enroll(&app, &c.slug).await;
    let (_, home) = app.get("/learn/intro-python").await;
    assert!(!home.contains("49.00") && !home.contains("It costs"), "no price on the course page");
    assert!(home.contains("cannot be bought on this site"), "an honest sentence instead");
    // No rating is chosen for the learner.
    let rating = &home[home.find(r#"name="rating""#).expect("a rating form")..];
    let rating = &rating[..rating.find("</fieldset>").expect("the rating is a fieldset")];
    assert!(!rating.contains("checked") && !rating.contains("selected"), "nothing pre-selected: {rating}");
    // Leaving asks first: the button that leaves is behind a disclosure.
    let leave = home.find(r#"action="/courses/intro-python/unenroll""#).expect("a leave form");
    let details = home[..leave].rfind("<details").expect("inside a <details>");
    assert!(home[details..leave].contains("<summary") && !home[details..leave].contains("</details>"));
    assert!(home[leave..].find("Yes, leave").is_some_and(|b| b < 400), "a confirming button");
}
on_both!(rating_leaving_price_and_enroll_first_pages, small_things);

/// A quiz of one question, `attempts` allowed, answers shown as `show`.
fn one_question(attempts: u32, show: ShowAnswers, due_at: Option<chrono::NaiveDateTime>, proctored: bool) -> Quiz {
    Quiz {
        title: "Q".into(),
        attempts,
        weight: 1.0,
        show_answers: show,
        due_at,
        proctored,
        questions: vec![Question {
            kind: QuestionKind::Single,
            prompt: "Pick".into(),
            choices: vec!["a".into(), "b".into()],
            correct: vec![1],
            answer: None,
            tolerance: 0.0,
            accepted: vec![],
            feedback: None,
            choice_feedback: vec![],
        }],
    }
}

#[test]
fn one_rule_says_who_may_submit_a_quiz_and_what_it_reveals() {
    use service::{NoSubmit, QuizStanding};
    let now = lyceum::db::now();
    let tried = |n: i32| (1..=n).map(|i| (i, 0.0, r#"{"0":["0"]}"#.to_string())).collect::<Vec<_>>();
    let quiz = one_question(2, ShowAnswers::AfterLastAttempt, None, false);
    let fresh = QuizStanding::new(&quiz, true, &[], None, now);
    assert_eq!((fresh.may_submit(), fresh.reveal(), fresh.left()), (Ok(()), false, 2));
    assert!(fresh.last.is_none());
    let once = QuizStanding::new(&quiz, true, &tried(1), None, now);
    assert_eq!((once.may_submit(), once.reveal()), (Ok(()), false), "answers wait for the last attempt");
    let last = once.last.as_ref().expect("the last attempt");
    assert_eq!((last.number, last.results.len(), last.results[0].correct), (1, 1, false));
    let used = QuizStanding::new(&quiz, true, &tried(2), None, now);
    assert_eq!((used.may_submit(), used.reveal(), used.left()), (Err(NoSubmit::AttemptsUsed), true, 0));
    // A preview sends nothing and sees nothing early.
    let preview = QuizStanding::new(&quiz, false, &[], None, now);
    assert_eq!((preview.may_submit(), preview.reveal()), (Err(NoSubmit::Preview), false));
    // Past its due date: closed, and shown when the quiz says "after the due date".
    let due = one_question(3, ShowAnswers::AfterDue, Some(now - chrono::Duration::hours(1)), false);
    let late = QuizStanding::new(&due, true, &tried(1), None, now);
    assert_eq!((late.may_submit(), late.reveal()), (Err(NoSubmit::Due), true));
    let open = one_question(3, ShowAnswers::AfterDue, Some(now + chrono::Duration::hours(1)), false);
    assert!(!QuizStanding::new(&open, true, &tried(3), None, now).reveal(), "not before the due date");
    // A proctored exam takes answers only within an open (or passed) session.
    let exam = one_question(1, ShowAnswers::AfterLastAttempt, None, true);
    assert_eq!(QuizStanding::new(&exam, true, &[], None, now).may_submit(), Err(NoSubmit::Proctoring));
    assert_eq!(QuizStanding::new(&exam, true, &[], Some("failed".into()), now).may_submit(), Err(NoSubmit::Proctoring));
    let in_session = QuizStanding::new(&exam, true, &[], Some("open".into()), now);
    assert!(in_session.may_submit().is_ok() && in_session.in_session());
    // The colour of a result follows the pass mark.
    use service::Verdict;
    assert_eq!(Verdict::of(0.0, 60), Verdict::Fail);
    assert_eq!(Verdict::of(0.5, 60), Verdict::Partial);
    assert_eq!(Verdict::of(0.6, 60), Verdict::Pass);
    assert_eq!(Verdict::of(0.0, 0), Verdict::Fail, "0 % is never a success");
}

#[test]
fn continue_never_leads_into_a_finished_course() {
    use service::{NextStep, next_step};
    use std::collections::HashSet;
    let order = [10, 20, 30];
    let done = |ids: &[i64]| ids.iter().copied().collect::<HashSet<i64>>();
    assert_eq!(next_step(&order, &done(&[]), None, false), Some(NextStep::Start(10)));
    assert_eq!(next_step(&order, &done(&[]), Some(20), false), Some(NextStep::Resume(20)));
    assert_eq!(next_step(&order, &done(&[20]), Some(20), false), Some(NextStep::Next(30)));
    assert_eq!(next_step(&order, &done(&[20, 30]), Some(30), false), Some(NextStep::Next(10)), "wraps to the start");
    assert_eq!(next_step(&order, &done(&[10, 20, 30]), Some(30), false), Some(NextStep::Finished));
    assert_eq!(next_step(&order, &done(&[10]), Some(10), true), Some(NextStep::Finished), "passed is finished");
    assert_eq!(next_step(&[], &done(&[]), None, false), None);
}

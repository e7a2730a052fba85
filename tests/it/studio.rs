//! The Studio an instructor can use (issue 30): a quiz built from form
//! fields (never TOML), a form that shows only the chosen kind's fields and
//! keeps every input on an error, blocks reordered by buttons or by a drag
//! and drop's new order, the Markdown preview through the sanitising
//! renderer, and images uploaded into text blocks.

use diesel::prelude::*;
use lyceum::db::schema::blocks;
use lyceum::learning::content::{BlockData, Question, QuestionKind, Quiz, ShowAnswers};
use rocket::http::Status;

use crate::common::TestApp;
use crate::learning::{multipart, multipart_files, seed_course, staff_browser};
use crate::on_both;

/// The blocks of a unit as stored, in their order.
fn stored(app: &TestApp, unit: i64) -> Vec<(i64, BlockData)> {
    let mut conn = app.db().get().unwrap();
    blocks::table
        .filter(blocks::unit_id.eq(unit))
        .order((blocks::position.asc(), blocks::id.asc()))
        .select((blocks::id, blocks::data))
        .load::<(i64, String)>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|(id, data)| (id, serde_json::from_str(&data).unwrap()))
        .collect()
}

/// The quiz an instructor types into the editor, as form fields.
fn quiz_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("kind", "quiz"),
        ("quiz.title", "Ownership check"),
        ("quiz.attempts", "3"),
        ("quiz.weight", "2,5"),
        ("quiz.show_answers", "after_last_attempt"),
        ("quiz.due_at", ""),
        ("quiz.questions[0].kind", "single"),
        ("quiz.questions[0].prompt", "Who owns a `String`?"),
        ("quiz.questions[0].choices[0].text", "Nobody"),
        ("quiz.questions[0].choices[1].text", "Exactly one variable"),
        ("quiz.questions[0].choices[1].correct", "true"),
        ("quiz.questions[0].choices[2].text", "Every reference"),
        ("quiz.questions[0].feedback", "One owner at a time."),
        ("quiz.questions[1].kind", "multiple"),
        ("quiz.questions[1].prompt", "Which types are `Copy`?"),
        ("quiz.questions[1].choices[0].text", "i32"),
        ("quiz.questions[1].choices[0].correct", "true"),
        ("quiz.questions[1].choices[1].text", "String"),
        ("quiz.questions[1].choices[2].text", "bool"),
        ("quiz.questions[1].choices[2].correct", "true"),
        ("quiz.questions[2].kind", "numeric"),
        ("quiz.questions[2].prompt", "How many bytes in a u32?"),
        ("quiz.questions[2].answer", "4"),
        ("quiz.questions[2].tolerance", "0.5"),
        ("quiz.questions[3].kind", "text"),
        ("quiz.questions[3].prompt", "The keyword for a move closure?"),
        ("quiz.questions[3].accepted", "move\r\nmove ||"),
    ]
}

fn expected_quiz() -> Quiz {
    let q = |kind, prompt: &str| Question {
        kind,
        prompt: prompt.into(),
        choices: vec![],
        correct: vec![],
        answer: None,
        tolerance: 0.0,
        accepted: vec![],
        feedback: None,
        choice_feedback: vec![],
    };
    Quiz {
        title: "Ownership check".into(),
        attempts: 3,
        weight: 2.5,
        show_answers: ShowAnswers::AfterLastAttempt,
        due_at: None,
        proctored: false,
        questions: vec![
            Question {
                choices: vec!["Nobody".into(), "Exactly one variable".into(), "Every reference".into()],
                correct: vec![1],
                feedback: Some("One owner at a time.".into()),
                ..q(QuestionKind::Single, "Who owns a `String`?")
            },
            Question {
                choices: vec!["i32".into(), "String".into(), "bool".into()],
                correct: vec![0, 2],
                ..q(QuestionKind::Multiple, "Which types are `Copy`?")
            },
            Question { answer: Some(4.0), tolerance: 0.5, ..q(QuestionKind::Numeric, "How many bytes in a u32?") },
            Question {
                accepted: vec!["move".into(), "move ||".into()],
                ..q(QuestionKind::Text, "The keyword for a move closure?")
            },
        ],
    }
}

/// The start tag of the element with `id`.
fn tag<'a>(page: &'a str, id: &str) -> &'a str {
    let at = page.find(&format!(" id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = page[..at].rfind('<').unwrap();
    let end = at + page[at..].find('>').unwrap();
    &page[start..=end]
}

async fn post_blocks(app: &TestApp, unit: i64, fields: &[(&str, &str)]) -> (Status, String) {
    let token = app.csrf().await;
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    let (ct, body) = multipart(&all, None);
    let res = app.client.post(format!("/studio/units/{unit}/blocks")).header(ct).body(body).dispatch().await;
    let status = res.status();
    (status, res.into_string().await.unwrap_or_default())
}

async fn quiz_editor(app: TestApp) {
    let c = seed_course(&app, "northbridge", "rust-101", "Rust 101", None).await;
    staff_browser(&app, "grace").await;
    let unit = c.units[1];
    let before = stored(&app, unit).len();

    // Choosing the kind shows that kind's fields only: the others are
    // hidden and disabled, so they are neither seen nor sent.
    let (status, page) = app.get(&format!("/studio/units/{unit}?kind=quiz")).await;
    assert_eq!(status, Status::Ok);
    assert!(!tag(&page, "n-quiz").contains("hidden"), "the quiz fields show: {}", tag(&page, "n-quiz"));
    for other in ["text", "video", "resource", "live"] {
        let t = tag(&page, &format!("n-{other}"));
        assert!(t.contains(" hidden") && t.contains(" disabled"), "{other} fields are hidden and not sent: {t}");
    }
    assert!(!page.contains("TOML"), "no TOML to type");
    assert!(page.contains(r#"<option value="quiz" selected>"#));
    let (_, page) = app.get(&format!("/studio/units/{unit}?kind=live")).await;
    assert!(!tag(&page, "n-live").contains("hidden") && tag(&page, "n-quiz").contains("hidden"));
    // Without a script the kind is chosen by a button that keeps what was typed.
    let (status, page) = post_blocks(
        &app,
        unit,
        &[("action", "add"), ("edit", "kind"), ("kind", "video"), ("url", "https://vimeo.com/1")],
    )
    .await;
    assert_eq!(status, Status::Ok);
    assert!(!tag(&page, "n-video").contains("hidden") && page.contains(r#"value="https://vimeo.com/1""#));

    // An error keeps every field's input, and names the field.
    let mut wrong: Vec<(&str, &str)> = quiz_fields()
        .into_iter()
        .filter(|(k, _)| *k != "quiz.questions[0].choices[1].correct")
        .map(|(k, v)| if k == "quiz.questions[2].answer" { (k, "four") } else { (k, v) })
        .collect();
    wrong.push(("action", "add"));
    let (status, page) = post_blocks(&app, unit, &wrong).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert_eq!(stored(&app, unit).len(), before, "nothing saved");
    for (k, v) in quiz_fields() {
        if k.ends_with(".correct") || k == "kind" || k.ends_with(".kind") || k == "quiz.show_answers" || v.is_empty() {
            continue;
        }
        let v = if k == "quiz.questions[2].answer" { "four".to_string() } else { v.replace("\r\n", "\n") };
        let shown = v.replace('`', "&#x60;");
        assert!(page.replace("\r\n", "\n").contains(&shown), "{k} keeps {v:?}");
    }
    assert!(
        page.contains(r#"<option value="numeric" selected>"#) && page.contains(r#"<option value="text" selected>"#)
    );
    assert!(page.contains(r#"<option value="quiz" selected>"#), "the kind stays Quiz");
    let correct = page.matches(r#"value="true" checked"#).count();
    assert_eq!(correct, 2, "the ticks that were sent stay ticked");
    // Each problem beside its field, tied to it, and listed at the top with a link.
    let answer = tag(&page, "n-quiz-q2-answer");
    assert!(answer.contains(r#"aria-invalid="true""#) && answer.contains("n-quiz-q2-answer-error"), "{answer}");
    assert!(page.contains(r#"id="n-quiz-q2-answer-error">The answer is a number, like 3.5.<"#));
    let choices = tag(&page, "n-quiz-q0-choices");
    assert!(choices.contains("aria-describedby=\"n-quiz-q0-choices-error\""), "{choices}");
    assert!(page.contains("Tick exactly one correct choice"));
    assert!(page.contains(r##"<a href="#n-quiz-q2-answer">"##) && page.contains(r##"<a href="#n-quiz-q0-choices">"##));

    // Adding and removing questions and choices without a script: the form
    // comes back changed, the input kept.
    let (status, page) =
        post_blocks(&app, unit, &[&quiz_fields()[..], &[("action", "add"), ("edit", "add_question")]].concat()).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains(r#"id="n-quiz-q4""#) && page.contains("Question 5") && page.contains("move ||"));
    let (_, page) =
        post_blocks(&app, unit, &[&quiz_fields()[..], &[("action", "add"), ("edit", "remove_choice-0-0")]].concat())
            .await;
    assert!(!page.contains(r#"value="Nobody""#) && page.contains(r#"value="Exactly one variable""#));
    assert!(page.contains(r#"name="quiz.questions[0].choices[0].text" value="Exactly one variable""#), "renumbered");
    let (_, page) =
        post_blocks(&app, unit, &[&quiz_fields()[..], &[("action", "add"), ("edit", "remove_question-1")]].concat())
            .await;
    assert!(
        !page.contains("Which types are") && page.contains("How many bytes") && !page.contains(r#"id="n-quiz-q3""#)
    );
    assert_eq!(stored(&app, unit).len(), before, "edits are not saves");
    let (status, _) = post_blocks(&app, unit, &[("action", "add"), ("edit", "remove_question-x")]).await;
    assert_eq!(status, Status::UnprocessableEntity, "an unknown edit is refused plainly");

    // The quiz as entered is the block stored.
    let (status, _) = post_blocks(&app, unit, &[&quiz_fields()[..], &[("action", "add")]].concat()).await;
    assert_eq!(status, Status::SeeOther);
    let after = stored(&app, unit);
    assert_eq!(after.len(), before + 1);
    let (quiz_id, data) = after.last().unwrap().clone();
    assert_eq!(data, BlockData::Quiz(expected_quiz()));
    // It comes back in the editor as fields, and saves unchanged.
    let (_, page) = app.get(&format!("/studio/units/{unit}")).await;
    assert!(page.contains(&format!(
        r#"name="quiz.questions[3].accepted" rows="3" aria-describedby="b{quiz_id}-quiz-q3-accepted-hint">move"#
    )));
    let mut update = quiz_fields();
    let id = quiz_id.to_string();
    update.extend([("action", "update"), ("block", id.as_str())]);
    update.retain(|(k, _)| *k != "quiz.attempts");
    update.push(("quiz.attempts", "1"));
    let (status, _) = post_blocks(&app, unit, &update).await;
    assert_eq!(status, Status::SeeOther);
    let Some((_, BlockData::Quiz(q))) = stored(&app, unit).into_iter().find(|(i, _)| *i == quiz_id) else { panic!() };
    assert_eq!(q, Quiz { attempts: 1, ..expected_quiz() });
    // An update with an error keeps that block's input in its own form.
    let mut bad = update.clone();
    bad.retain(|(k, _)| *k != "quiz.title");
    bad.push(("quiz.title", " "));
    let (status, page) = post_blocks(&app, unit, &bad).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(page.contains(&format!(r#"id="b{quiz_id}-quiz-title-error">Give the quiz a title.<"#)));

    // A learner sees the quiz, as entered.
    app.sign_out().await;
    crate::learning::verified(&app, "ada").await;
    assert_eq!(crate::learning::enroll(&app, "rust-101").await.status(), Status::SeeOther);
    let (status, page) = app.get(&format!("/learn/rust-101/units/{unit}")).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Ownership check") && page.contains("Who owns a <code>String</code>?"), "{page}");
    assert!(page.contains("Exactly one variable") && page.contains("How many bytes in a u32?"));
}
on_both!(an_instructor_builds_a_quiz_from_form_fields_and_an_error_keeps_every_input, quiz_editor);

async fn other_kinds_keep_input(app: TestApp) {
    let c = seed_course(&app, "northbridge", "rust-101", "Rust 101", None).await;
    staff_browser(&app, "grace").await;
    let unit = c.units[0];
    let (status, page) = post_blocks(
        &app,
        unit,
        &[
            ("action", "add"),
            ("kind", "live"),
            ("title", "Office hours"),
            ("starts_at", "2027-02-01T17:00"),
            ("link", "http://meet.example.org/room"),
        ],
    )
    .await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(!tag(&page, "n-live").contains("hidden"), "the kind does not fall back to Text");
    assert!(page.contains(r#"value="Office hours""#) && page.contains(r#"value="2027-02-01T17:00""#));
    assert!(page.contains(r#"id="n-live-link-error">The session link must be an https:// address.<"#));
    let (status, page) = post_blocks(&app, unit, &[("action", "add"), ("kind", "text"), ("markdown", "   ")]).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(page.contains(r#"id="n-text-markdown-error">A text block needs some text.<"#));
}
on_both!(the_add_block_form_keeps_the_kind_and_input_on_an_error, other_kinds_keep_input);

async fn reorder(app: TestApp) {
    let c = seed_course(&app, "northbridge", "rust-101", "Rust 101", None).await;
    staff_browser(&app, "grace").await;
    let unit = c.units[0];
    for text in ["First", "Second", "Third"] {
        let (status, _) = post_blocks(&app, unit, &[("action", "add"), ("kind", "text"), ("markdown", text)]).await;
        assert_eq!(status, Status::SeeOther);
    }
    let ids = |app: &TestApp| stored(app, unit).into_iter().map(|(i, _)| i).collect::<Vec<_>>();
    let start = ids(&app);
    let last = *start.last().unwrap();
    // The keyboard's way: the Move up button (a plain form, no script).
    let (_, page) = app.get(&format!("/studio/units/{unit}")).await;
    assert!(page.contains(r#"data-reorder="/studio/units/"#) && page.contains("/static/js/studio.js"));
    let (status, _) = post_blocks(&app, unit, &[("action", "up"), ("block", &last.to_string())]).await;
    assert_eq!(status, Status::SeeOther);
    let now = ids(&app);
    assert_eq!(now[now.len() - 2], last, "moved up one place");
    let (_, page) = app.get(&format!("/studio/units/{unit}")).await;
    assert!(page.find(">Third<").unwrap() < page.find(">Second<").unwrap());
    // A drag and drop posts the new order.
    let mut reversed = now.clone();
    reversed.reverse();
    let order = reversed.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let res = app.post_form(&format!("/studio/units/{unit}/order"), &[("order", &order)]).await;
    assert_eq!(res.status(), Status::NoContent);
    assert_eq!(ids(&app), reversed);
    // An order that is not the unit's blocks, each once, changes nothing.
    for junk in [&order[..order.rfind(',').unwrap()], "1,2,x", "999999"] {
        let res = app.post_form(&format!("/studio/units/{unit}/order"), &[("order", junk)]).await;
        assert_eq!(res.status(), Status::UnprocessableEntity, "{junk}");
    }
    assert_eq!(ids(&app), reversed);
    // Units of a section, and sections, the same way.
    let (_, page) = app.get("/studio/courses/rust-101").await;
    let section: String = regex::Regex::new(r#"data-reorder="/studio/courses/rust-101/order" data-section="(\d+)""#)
        .unwrap()
        .captures_iter(&page)
        .map(|c| c[1].to_string())
        .find(|s| s != "0")
        .unwrap();
    let list = &page[page.find(&format!(r#"data-section="{section}""#)).unwrap()..];
    let list = &list[..list.find("</ol>").unwrap()];
    let mine: Vec<String> =
        regex::Regex::new(r#"<li data-id="(\d+)">"#).unwrap().captures_iter(list).map(|c| c[1].to_string()).collect();
    assert!(!mine.is_empty());
    if mine.len() >= 2 {
        let mut order = mine.clone();
        order.reverse();
        let res = app
            .post_form("/studio/courses/rust-101/order", &[("section", &section), ("order", &order.join(","))])
            .await;
        assert_eq!(res.status(), Status::NoContent);
        let (_, page) = app.get("/studio/courses/rust-101").await;
        let first = page.find(&format!(r#"<li data-id="{}">"#, order[0])).unwrap();
        let second = page.find(&format!(r#"<li data-id="{}">"#, order[1])).unwrap();
        assert!(first < second, "the section's units in the new order");
    }
    let res = app.post_form("/studio/courses/rust-101/order", &[("section", "0"), ("order", "1")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
}
on_both!(blocks_and_units_reorder_by_buttons_and_by_a_posted_order, reorder);

async fn preview_and_images(app: TestApp) {
    let c = seed_course(&app, "northbridge", "rust-101", "Rust 101", None).await;
    let unit = c.units[0];
    let hostile =
        "# Ownership\n\n**owned** <script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))";
    // Not for learners.
    let learner = crate::learning::verified(&app, "ada").await;
    let res = app.post_form("/studio/preview", &[("markdown", "x")]).await;
    assert_eq!(res.status(), Status::Forbidden);
    app.sign_out().await;
    let _ = learner;
    staff_browser(&app, "grace").await;
    // The live preview's endpoint: sanitised HTML, as the unit page renders it.
    let res = app.post_form("/studio/preview", &[("markdown", hostile)]).await;
    assert_eq!(res.status(), Status::Ok);
    let html = res.into_string().await.unwrap();
    assert!(html.contains("<h1>Ownership</h1>") && html.contains("<strong>owned</strong>"), "{html}");
    assert!(!html.contains("<script") && !html.contains("onerror") && !html.contains("javascript:"), "{html}");
    let res = app.post_raw("/studio/preview", "csrf_token=forged&markdown=x").await;
    assert_eq!(res.status(), Status::Forbidden, "CSRF-checked");
    // Without a script: the Preview button renders it in the page, the text kept.
    let (status, page) =
        post_blocks(&app, unit, &[("action", "add"), ("kind", "text"), ("edit", "preview"), ("markdown", hostile)])
            .await;
    assert_eq!(status, Status::Ok);
    let preview = &page[page.find(r#"id="n-text-preview""#).unwrap()..];
    let preview = &preview[..preview.find("</div>").unwrap()];
    assert!(preview.contains("<strong>owned</strong>") && !preview.contains("<script"), "{preview}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the typed text is kept, escaped");

    // An image into a text block, re-encoded: by the script's endpoint…
    let mut png = Vec::new();
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let token = app.csrf().await;
    let (ct, body) = multipart_files(&[("csrf_token", &token)], &[("image", "diagram.png", &png)]);
    let res = app.client.post(format!("/studio/units/{unit}/images")).header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::Created);
    let json: serde_json::Value = serde_json::from_str(&res.into_string().await.unwrap()).unwrap();
    let url = json["url"].as_str().unwrap().to_string();
    assert_eq!(json["markdown"].as_str().unwrap(), format!("![diagram]({url})"));
    let (status, _) = app.get(&url).await;
    assert_eq!(status, Status::Ok);
    let (ct, body) = multipart_files(&[("csrf_token", &token)], &[("image", "notes.png", b"not an image")]);
    let res = app.client.post(format!("/studio/units/{unit}/images")).header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    // …and without a script, by the form's own button: the reference is
    // added to the text, which is kept.
    let (ct, body) = multipart_files(
        &[("csrf_token", &token), ("action", "add"), ("kind", "text"), ("edit", "upload_image"), ("markdown", "See:")],
        &[("image", "diagram.png", &png)],
    );
    let res = app.client.post(format!("/studio/units/{unit}/blocks")).header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let page = res.into_string().await.unwrap();
    assert!(
        regex::Regex::new(r"See:\n\n!\[diagram\]\(/media/[0-9a-f]+\)</textarea>").unwrap().is_match(&page),
        "{page}"
    );
}
on_both!(the_markdown_preview_is_sanitised_and_images_go_into_text, preview_and_images);

/// A quiz whose choices carry feedback, as the editor sends it.
fn feedback_quiz_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("kind", "quiz"),
        ("quiz.title", "Locks check"),
        ("quiz.attempts", "2"),
        ("quiz.weight", "1"),
        ("quiz.show_answers", "after_last_attempt"),
        ("quiz.questions[0].kind", "single"),
        ("quiz.questions[0].prompt", "What is a mutex?"),
        ("quiz.questions[0].choices[0].text", "A channel"),
        ("quiz.questions[0].choices[0].feedback", "Not quite: a mutex is not a channel."),
        ("quiz.questions[0].choices[1].text", "A lock"),
        ("quiz.questions[0].choices[1].correct", "true"),
        ("quiz.questions[0].choices[1].feedback", "Yes: one thread at a time."),
        ("quiz.questions[0].choices[2].text", "A thread"),
        ("quiz.questions[0].feedback", "A mutex guards data."),
        ("quiz.questions[1].kind", "multiple"),
        ("quiz.questions[1].prompt", "Which types are Copy?"),
        ("quiz.questions[1].choices[0].text", "i32"),
        ("quiz.questions[1].choices[0].correct", "true"),
        ("quiz.questions[1].choices[0].feedback", "Right, i32 is Copy."),
        ("quiz.questions[1].choices[1].text", "String"),
        ("quiz.questions[1].choices[1].feedback", "A String owns heap memory, so it is not Copy."),
        ("quiz.questions[1].choices[2].text", "bool"),
        ("quiz.questions[1].choices[2].correct", "true"),
    ]
}

/// The quizzes of an exported package, by title.
fn package_quiz(zip: &[u8], title: &str) -> lyceum::learning::package::QuizPkg {
    use lyceum::learning::package::BlockPkg;
    let pkg = lyceum::learning::package::read_zip(zip).expect("the package reads back");
    pkg.sections
        .iter()
        .flat_map(|s| &s.units)
        .flat_map(|u| &u.blocks)
        .find_map(|b| match b {
            BlockPkg::Quiz(q) if q.title == title => Some(q.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no quiz {title} in the package"))
}

async fn choice_feedback(app: TestApp) {
    let c = seed_course(&app, "northbridge", "rust-101", "Rust 101", None).await;
    staff_browser(&app, "grace").await;
    let unit = c.units[1];

    // The editor offers a feedback field per choice, and an error keeps what
    // was typed there, beside its choice.
    let (_, page) = app.get(&format!("/studio/units/{unit}?kind=quiz")).await;
    let field = tag(&page, "n-quiz-q0-c1-feedback");
    assert!(field.contains(r#"name="quiz.questions[0].choices[1].feedback""#), "{field}");
    let wrong: Vec<(&str, &str)> = feedback_quiz_fields()
        .into_iter()
        .filter(|(k, _)| *k != "quiz.questions[0].choices[1].correct")
        .chain([("action", "add")])
        .collect();
    let (status, page) = post_blocks(&app, unit, &wrong).await;
    assert_eq!(status, Status::UnprocessableEntity);
    for (i, c, text) in [
        (0, 0, "Not quite: a mutex is not a channel."),
        (0, 1, "Yes: one thread at a time."),
        (1, 1, "A String owns heap memory, so it is not Copy."),
    ] {
        let field = tag(&page, &format!("n-quiz-q{i}-c{c}-feedback"));
        assert!(field.contains(&format!(r#"value="{text}""#)), "kept: {field}");
    }
    assert!(tag(&page, "n-quiz-q0-c2-feedback").contains(r#"value="""#));
    // Removing a choice takes its feedback with it; the rest are renumbered.
    let (_, page) = post_blocks(
        &app,
        unit,
        &[&feedback_quiz_fields()[..], &[("action", "add"), ("edit", "remove_choice-0-0")]].concat(),
    )
    .await;
    assert!(!page.contains("Not quite: a mutex"), "removed with its choice");
    assert!(tag(&page, "n-quiz-q0-c0-feedback").contains(r#"value="Yes: one thread at a time.""#));

    // Saved, the feedback is the quiz's, one entry per choice.
    let (status, _) = post_blocks(&app, unit, &[&feedback_quiz_fields()[..], &[("action", "add")]].concat()).await;
    assert_eq!(status, Status::SeeOther);
    let (quiz_id, data) = stored(&app, unit).last().unwrap().clone();
    let BlockData::Quiz(quiz) = data else { panic!("a quiz") };
    assert_eq!(
        quiz.questions[0].choice_feedback,
        ["Not quite: a mutex is not a channel.", "Yes: one thread at a time.", ""]
    );
    assert_eq!(
        quiz.questions[1].choice_feedback,
        ["Right, i32 is Copy.", "A String owns heap memory, so it is not Copy.", ""]
    );
    let (_, page) = app.get(&format!("/studio/units/{unit}")).await;
    assert!(tag(&page, &format!("b{quiz_id}-quiz-q0-c0-feedback")).contains("Not quite: a mutex is not a channel."));

    // The package carries it: export, import as another course, export again.
    let res = app.client.get("/studio/courses/rust-101/export").dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let zip = res.into_bytes().await.unwrap();
    let exported = package_quiz(&zip, "Locks check");
    assert_eq!(exported.questions[0].choice_feedback, quiz.questions[0].choice_feedback);
    let mut pkg = lyceum::learning::package::read_zip(&zip).unwrap();
    pkg.course.slug = "rust-101-again".into();
    let again = lyceum::learning::package::write_zip(&pkg).unwrap();
    let token = app.csrf().await;
    let (ct, body) =
        multipart(&[("csrf_token", &token), ("member", "northbridge")], Some(("package", "again.zip", &again)));
    let res = app.client.post("/studio/import").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther, "imported");
    let res = app.client.get("/studio/courses/rust-101-again/export").dispatch().await;
    assert_eq!(package_quiz(&res.into_bytes().await.unwrap(), "Locks check"), exported, "round trip");

    // The learner reads the feedback on the choices they picked, when the
    // explanations are shown: after the last attempt, not before.
    app.sign_out().await;
    crate::learning::verified(&app, "ada").await;
    assert_eq!(crate::learning::enroll(&app, "rust-101").await.status(), Status::SeeOther);
    let answers = [("q0", "0"), ("q1", "0"), ("q1", "1")];
    let res = app.post_form(&format!("/learn/rust-101/quiz/{quiz_id}"), &answers).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&format!("/learn/rust-101/units/{unit}")).await;
    assert!(page.contains("Attempt 1"), "graded");
    assert!(
        !page.contains("Not quite: a mutex") && !page.contains("data-choice-feedback"),
        "not before the last attempt"
    );
    app.post_form(&format!("/learn/rust-101/quiz/{quiz_id}"), &answers).await;
    let (_, page) = app.get(&format!("/learn/rust-101/units/{unit}")).await;
    assert!(page.contains("Attempt 2"), "graded again");
    assert_eq!(page.matches("data-choice-feedback").count(), 3, "one for each chosen choice with feedback");
    for picked in ["Not quite: a mutex is not a channel.", "Right, i32 is Copy.", "A String owns heap memory"] {
        assert!(page.contains(picked), "{picked} shown");
    }
    assert!(!page.contains("Yes: one thread at a time."), "feedback on a choice not picked stays hidden");
    assert!(page.contains("A mutex guards data."), "with the explanation");
}
on_both!(choice_feedback_is_written_per_choice_carried_by_packages_and_shown_to_whoever_picked_it, choice_feedback);

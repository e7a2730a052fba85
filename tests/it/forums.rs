//! Forums: course forums for enrolled learners, first posts held for a
//! moderator, reports, moderation, anonymity to peers, erasure.

use diesel::prelude::*;
use lyceum::db::schema::{enrollments, forum_posts, users};
use rocket::http::Status;

use crate::common::TestApp;
use crate::learning::{enroll, seed_course};
use crate::sharing::{as_user, run, verified};
use crate::{on_both, on_meilisearch};

fn re(pattern: &str, body: &str) -> String {
    regex::Regex::new(pattern).unwrap().captures(body).unwrap_or_else(|| panic!("{pattern} not in {body}"))[1]
        .to_string()
}

async fn post_id_by_body(app: &TestApp, needle: &str) -> i64 {
    let needle = needle.to_string();
    run(app, move |conn| {
        forum_posts::table
            .filter(forum_posts::body.like(format!("%{needle}%")))
            .select(forum_posts::id)
            .first::<i64>(conn)
    })
    .await
}

async fn course_forum(app: TestApp) {
    // promise: FRM-1 — a forum per course run for its enrolled learners and staff.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    enroll(&app, &c.slug).await;
    let res = app.client.get("/learn/intro-python/forum").dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    let forum = res.headers().get_one("Location").unwrap().to_string();
    assert!(forum.starts_with("/forums/course-"), "{forum}");
    let (status, _) = app.get(&forum).await;
    assert_eq!(status, Status::Ok);

    // Bad input loses nothing: an empty post comes back with the title typed.
    let res = app.post_form(&format!("{forum}/threads"), &[("title", "Loops in Python"), ("body", "  ")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Write something first.") && page.contains("value=\"Loops in Python\""));

    // promise: FRM-3 — a first post waits for a moderator.
    let res = app
        .post_form(
            &format!("{forum}/threads"),
            &[
                ("title", "Loops in Python"),
                ("body", "How do **for** loops work? <script>alert(1)</script> [x](javascript:alert(1))"),
            ],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let thread = res.headers().get_one("Location").unwrap().to_string();
    let (_, page) = app.get(&forum).await;
    assert!(page.contains("Loops in Python") && page.contains("waiting for a moderator"), "the author sees it waiting");

    let bob = verified(&app, "bob").await;
    as_user(&app, &bob).await;
    let (status, _) = app.get(&forum).await;
    assert_eq!(status, Status::NotFound, "not enrolled, no forum");
    enroll(&app, &c.slug).await;
    let (_, page) = app.get(&forum).await;
    assert!(!page.contains("Loops in Python"), "peers do not see a waiting post");

    // A moderator sees the queue with the network details (FRM-2) and approves.
    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    let (status, queue) = app.get("/forums/moderation").await;
    assert_eq!(status, Status::Ok);
    // promise: FRM-2 — each post keeps IP address and user agent, shown to moderators only.
    assert!(queue.contains("Loops in Python") && queue.contains("203.0.113.7"), "{queue}");
    let opening = post_id_by_body(&app, "How do").await;
    let res = app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "approve")]).await;
    assert_eq!(res.status(), Status::SeeOther);

    // Now peers see it, with dangerous Markdown inert, and only usernames (ACC-7).
    as_user(&app, &bob).await;
    let (status, page) = app.get(&thread).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("<strong>for</strong>") && page.contains(">ada<"));
    assert!(!page.contains("<script>alert") && !page.contains("javascript:"), "{page}");
    // promise: ACC-7 — other learners only ever see the username.
    assert!(!page.contains("Lovelace") && !page.contains("ada@example.org"));
    assert!(!page.contains("203.0.113.7"), "network details are for moderators only");

    // Bob's first reply waits; Ada, approved once, posts at once.
    let res = app.post_form(&format!("{thread}/replies"), &[("body", "Bob's first answer")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    as_user(&app, &ada).await;
    let (_, page) = app.get(&thread).await;
    assert!(!page.contains("Bob's first answer"));
    app.post_form(&format!("{thread}/replies"), &[("body", "Ada follows up")]).await;
    app.post_form(
        &format!("{thread}/replies"),
        &[("body", "A question I'd rather ask quietly"), ("anonymous", "true")],
    )
    .await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("Ada follows up") && page.contains("A question I'd rather ask quietly"), "{page}");
    // Comments go one level deep, under a reply only.
    let reply = post_id_by_body(&app, "Ada follows up").await;
    let res =
        app.post_form(&format!("{thread}/replies"), &[("body", "a comment"), ("parent_id", &reply.to_string())]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let comment = post_id_by_body(&app, "a comment").await;
    let res =
        app.post_form(&format!("{thread}/replies"), &[("body", "too deep"), ("parent_id", &comment.to_string())]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("too deep"), "the text is kept");

    // Anonymous to peers, not to moderators.
    as_user(&app, &grace).await;
    app.post_form(
        &format!("/forums/posts/{}/moderate", post_id_by_body(&app, "Bob's first answer").await),
        &[("action", "approve")],
    )
    .await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("ada (anonymous to peers)"));
    as_user(&app, &bob).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("Anonymous") && !page.contains("anonymous to peers"));
    assert!(page.contains("Bob's first answer"));

    // A report by a trusted author hides the post at once, until a moderator decides.
    let res = app.post_form(&format!("/forums/posts/{reply}/report"), &[("reason", "Off topic and rude")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&thread).await;
    assert!(!page.contains("Ada follows up"), "hidden at once");
    as_user(&app, &grace).await;
    let (_, queue) = app.get("/forums/moderation").await;
    assert!(queue.contains("Off topic and rude") && queue.contains("Ada follows up"));
    app.post_form(&format!("/forums/posts/{reply}/moderate"), &[("action", "hide")]).await;
    as_user(&app, &bob).await;
    let (_, page) = app.get(&thread).await;
    assert!(!page.contains("Ada follows up"), "hidden from peers");

    // Votes: not for one's own post.
    let res = app.post_form(&format!("/forums/posts/{opening}/vote"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("1 upvote(s)") && page.contains("Take back upvote"));

    // A locked thread takes no replies, and says why.
    as_user(&app, &grace).await;
    let res = app.post_form(&format!("{thread}/settings"), &[("locked", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("Say why the thread is locked"));
    app.post_form(&format!("{thread}/settings"), &[("locked", "true"), ("reason", "Answered")]).await;
    as_user(&app, &bob).await;
    let res = app.post_form(&format!("{thread}/replies"), &[("body", "one more")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("This thread is locked: Answered") && page.contains("one more</textarea>"), "{page}");
    // A comment there comes back the same way, with its text.
    let res = app
        .post_form(&format!("{thread}/replies"), &[("body", "one more comment"), ("parent_id", &comment.to_string())])
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("one more comment</textarea>"));

    // An edit keeps the earlier text for moderators.
    as_user(&app, &ada).await;
    let res = app.post_form(&format!("/forums/posts/{opening}/edit"), &[("body", "How do loops work, really?")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    as_user(&app, &grace).await;
    let (_, page) = app.get(&thread).await;
    assert!(
        page.contains("How do loops work, really?") && page.contains("Earlier version: How do **for** loops work?")
    );

    // The forum is for the run's learners while their access lasts (CRS-5):
    // once Bob's has ended, neither the forum nor its threads are there for him.
    let bob_id: i64 =
        run(&app, |conn| users::table.filter(users::username.eq("bob")).select(users::id).first(conn)).await;
    run(&app, move |conn| {
        diesel::update(enrollments::table.filter(enrollments::user_id.eq(bob_id)))
            .set(enrollments::access_expires_at.eq(Some(chrono::Utc::now().naive_utc() - chrono::Duration::days(1))))
            .execute(conn)
    })
    .await;
    as_user(&app, &bob).await;
    assert_eq!(app.get(&forum).await.0, Status::NotFound);
    assert_eq!(app.get(&thread).await.0, Status::NotFound);
}
on_both!(frm_1_frm_2_frm_3_acc_7_a_course_forum_with_moderation, course_forum);

async fn site_forum_and_erasure(app: TestApp) {
    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    let res = app.post_form("/forums", &[("slug", "course-x"), ("title", "X")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/forums").await;
    assert!(page.contains("does not start with"), "course- addresses are reserved");
    app.post_form("/forums", &[("slug", "study-groups"), ("title", "Study groups"), ("description", "Find peers")])
        .await;

    let cyrus = verified(&app, "cyrus").await;
    as_user(&app, &cyrus).await;
    let (_, page) = app.get("/forums").await;
    assert!(page.contains("Study groups"));
    // Spam guard: a new author's post may carry two links at most.
    let res = app
        .post_form(
            "/forums/study-groups/threads",
            &[("title", "Deals"), ("body", "https://a.example https://b.example https://c.example")],
        )
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let res = app
        .post_form("/forums/study-groups/threads", &[("title", "Evening group"), ("body", "Who joins on Tuesdays?")])
        .await;
    let thread = res.headers().get_one("Location").unwrap().to_string();
    as_user(&app, &grace).await;
    let id = post_id_by_body(&app, "Tuesdays").await;
    app.post_form(&format!("/forums/posts/{id}/moderate"), &[("action", "approve")]).await;
    let _ = re(r#"id="post-(\d+)""#, &app.get(&thread).await.1);

    // promise: FRM-4 — an erased user's posts stay, under a placeholder, bodies blanked when configured.
    let cyrus_id: i64 =
        run(&app, |conn| users::table.filter(users::username.eq("cyrus")).select(users::id).first(conn)).await;
    let changed = run(&app, move |conn| lyceum::forums::erase_author(conn, cyrus_id, true)).await;
    assert_eq!(changed, 1);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("Former member") && page.contains("removed at the author"), "{page}");
    assert!(!page.contains("cyrus") && !page.contains("Tuesdays"));
    let ip: Option<String> =
        run(&app, move |conn| forum_posts::table.find(id).select(forum_posts::ip).first(conn)).await;
    assert_eq!(ip, None, "network details go with the account");
}
on_both!(frm_4_site_forums_and_erasure, site_forum_and_erasure);

async fn profiles(app: TestApp) {
    // promise: ACC-7 — others see the username and what the learner chose to show; never name or email.
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let res = app.post_form("/profile", &[("bio", "Night-school maths teacher"), ("visibility", "full")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let mut png = Vec::new();
    image::DynamicImage::new_rgb8(640, 400)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let token = app.csrf().await;
    let (ct, body) = crate::learning::multipart(&[("csrf_token", &token)], Some(("image", "me.png", &png)));
    let res = app.client.post("/profile/avatar").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/profile").await;
    assert!(page.contains("Your avatar is updated."), "{page}");
    // Stored as a square thumbnail, re-encoded.
    let key = re(r#"src="/media/([0-9a-f]{64})""#, &page);
    let res = app.client.get(format!("/media/{key}")).dispatch().await;
    let bytes = res.into_bytes().await.unwrap();
    let avatar = image::load_from_memory(&bytes).unwrap();
    assert_eq!((avatar.width(), avatar.height()), (192, 192));
    // Not an image: refused with a message, the avatar kept.
    let token = app.csrf().await;
    let (ct, body) = crate::learning::multipart(&[("csrf_token", &token)], Some(("image", "me.png", b"not an image")));
    app.client.post("/profile/avatar").header(ct).body(body).dispatch().await;
    let (_, page) = app.get("/profile").await;
    assert!(page.contains("src=\"/media/"), "the earlier avatar stays");

    let bob = verified(&app, "bob").await;
    as_user(&app, &bob).await;
    let (status, page) = app.get("/u/ada").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Night-school maths teacher") && page.contains("src=\"/media/"));
    assert!(!page.contains("Lovelace") && !page.contains("ada@example.org"));
    let (status, _) = app.get("/u/nobody-here").await;
    assert_eq!(status, Status::NotFound);

    as_user(&app, &ada).await;
    app.post_form("/profile", &[("bio", "Night-school maths teacher"), ("visibility", "limited")]).await;
    let res = app.post_form("/profile", &[("bio", &"x".repeat(501)), ("visibility", "full")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    as_user(&app, &bob).await;
    let (_, page) = app.get("/u/ada").await;
    assert!(page.contains("keeps their profile private") && !page.contains("Night-school"), "{page}");
}
on_both!(acc_7_profiles_show_usernames_and_chosen_details_only, profiles);

async fn honor_code(app: TestApp) {
    // promise: FRM-6 — an honor-code report is filed in a course and tracked by staff to a decision.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    for name in ["ada", "bob"] {
        let l = verified(&app, name).await;
        as_user(&app, &l).await;
        enroll(&app, &c.slug).await;
    }
    let (status, page) = app.get("/learn/intro-python").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("/learn/intro-python/honor"));
    let res = app
        .post_form(
            "/learn/intro-python/honor",
            &[
                ("subject", "nobody-here"),
                ("kind", "plagiarism"),
                ("description", "Copied the quiz answers from a website."),
            ],
        )
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("Copied the quiz answers"), "the text is kept");
    let res = app
        .post_form(
            "/learn/intro-python/honor",
            &[("subject", "ada"), ("kind", "plagiarism"), ("description", "Copied the quiz answers from a website.")],
        )
        .await;
    assert_eq!(res.status(), Status::Ok);
    let (status, _) = app.get("/studio/courses/intro-python/honor").await;
    assert_eq!(status, Status::NotFound, "learners do not see the staff list");

    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    let (status, page) = app.get("/studio/courses/intro-python/honor").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Copied the quiz answers") && page.contains("by bob") && page.contains(">open<"));
    let id = re(r#"action="/studio/courses/intro-python/honor/(\d+)""#, &page);
    app.post_form(&format!("/studio/courses/intro-python/honor/{id}"), &[("status", "investigating")]).await;
    app.post_form(&format!("/studio/courses/intro-python/honor/{id}"), &[("status", "upheld")]).await;
    let (_, page) = app.get("/studio/courses/intro-python/honor").await;
    assert!(page.contains("Give the reason for the decision") && page.contains(">investigating<"));
    app.post_form(
        &format!("/studio/courses/intro-python/honor/{id}"),
        &[("status", "upheld"), ("note", "Matched the source; quiz reset.")],
    )
    .await;
    let (_, page) = app.get("/studio/courses/intro-python/honor").await;
    assert!(page.contains(">upheld<") && page.contains("Matched the source"));
}
on_both!(frm_6_honor_code_reports_are_tracked_to_a_decision, honor_code);

/// Replies mailed to `to` about followed threads so far.
async fn reply_mails(app: &TestApp, to: &str) -> usize {
    app.run_jobs().await;
    lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000)
        .into_iter()
        .filter(|m| m.to == to && m.subject.starts_with("New reply in"))
        .count()
}

async fn follow_and_unread(app: TestApp) {
    // promise: FRM-1 — follow a thread for an email per new reply; unread threads are marked.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    let ada = verified(&app, "ada").await;
    let bob = verified(&app, "bob").await;
    for l in [&ada, &bob] {
        as_user(&app, l).await;
        enroll(&app, &c.slug).await;
    }
    let forum =
        app.client.get("/learn/intro-python/forum").dispatch().await.headers().get_one("Location").unwrap().to_string();
    as_user(&app, &ada).await;
    let res = app.post_form(&format!("{forum}/threads"), &[("title", "Week 1 questions"), ("body", "Ask here.")]).await;
    let thread = res.headers().get_one("Location").unwrap().to_string();
    as_user(&app, &grace).await;
    let opening = post_id_by_body(&app, "Ask here.").await;
    app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "approve")]).await;

    as_user(&app, &bob).await;
    let (_, page) = app.get(&forum).await;
    assert!(page.contains("badge-new"), "a thread Bob has not read is marked");
    app.get(&thread).await;
    let (_, page) = app.get(&forum).await;
    assert!(!page.contains("badge-new"), "read now");
    let res = app.post_form(&format!("{thread}/follow"), &[("follow", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);

    // Ada (trusted) replies: Bob, following, gets one email; Ada, the author, none.
    as_user(&app, &ada).await;
    app.post_form(&format!("{thread}/replies"), &[("body", "First answer")]).await;
    assert_eq!(reply_mails(&app, "bob@example.org").await, 1);
    assert_eq!(reply_mails(&app, "ada@example.org").await, 0);
    // Bob's first reply waits: Ada (following by writing) hears of it only once approved.
    as_user(&app, &bob).await;
    app.post_form(&format!("{thread}/replies"), &[("body", "Bob asks more")]).await;
    assert_eq!(reply_mails(&app, "ada@example.org").await, 0);
    as_user(&app, &grace).await;
    let waiting = post_id_by_body(&app, "Bob asks more").await;
    app.post_form(&format!("/forums/posts/{waiting}/moderate"), &[("action", "approve")]).await;
    assert_eq!(reply_mails(&app, "ada@example.org").await, 1);
    let link = app.mailed_link("ada@example.org", "/forums/").await.expect("a link to the reply");
    assert_eq!(link, format!("/forums/posts/{waiting}"), "the post's lasting address");
    let res = app.client.get(link).dispatch().await;
    let at = res.headers().get_one("Location").unwrap_or_default().to_string();
    assert!(at.starts_with(&thread) && at.ends_with(&format!("#post-{waiting}")), "{at}");
    // Unfollowing stops the emails.
    as_user(&app, &bob).await;
    app.post_form(&format!("{thread}/follow"), &[("follow", "false")]).await;
    as_user(&app, &ada).await;
    app.post_form(&format!("{thread}/replies"), &[("body", "Second answer")]).await;
    assert_eq!(reply_mails(&app, "bob@example.org").await, 1, "no more mail after unfollowing");
    as_user(&app, &bob).await;
    let (_, page) = app.get(&forum).await;
    assert!(page.contains("badge-new"), "the new reply marks the thread unread again");
}
on_both!(frm_1_follow_a_thread_and_see_what_is_new, follow_and_unread);

async fn racing_first_reads(app: TestApp) {
    // promise: FRM-1 — two first views of a thread at once both succeed and keep the newest read mark.
    use lyceum::db::schema::forum_reads;
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    enroll(&app, &c.slug).await;
    let forum =
        app.client.get("/learn/intro-python/forum").dispatch().await.headers().get_one("Location").unwrap().to_string();
    let res = app.post_form(&format!("{forum}/threads"), &[("title", "Week 1"), ("body", "Ask here.")]).await;
    let thread: i64 = re(r"/threads/(\d+)", res.headers().get_one("Location").unwrap()).parse().unwrap();
    let user = crate::sharing::user_id(&app, "ada").await;
    let db = app.db();
    let outcome = rocket::tokio::task::spawn_blocking(move || {
        // The first view writes its mark and has not committed yet when the
        // second view, which found no mark, inserts its own.
        let mut first = db.get().expect("a connection");
        first.transaction(|first| {
            diesel::insert_into(forum_reads::table)
                .values((
                    forum_reads::user_id.eq(user),
                    forum_reads::thread_id.eq(thread),
                    forum_reads::last_post_id.eq(5),
                ))
                .execute(first)?;
            let second = {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut conn = db.get().expect("a connection");
                    lyceum::forums::mark_read(&mut conn, user, thread, 9).map_err(|e| e.to_string())
                })
            };
            // Long enough for the second view to read and block on the insert.
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok::<_, diesel::result::Error>(second)
        })
    })
    .await
    .expect("the blocking task")
    .expect("the first view");
    assert_eq!(outcome.join().expect("the second view"), Ok(()), "the later view does not fail");
    let mark: i64 = run(&app, move |conn| {
        forum_reads::table.find((user, thread)).select(forum_reads::last_post_id).first::<i64>(conn)
    })
    .await;
    assert_eq!(mark, 9, "the newer mark wins");
}
on_both!(frm_1_racing_first_views_of_a_thread_keep_one_read_mark, racing_first_reads);

async fn site_moderators(app: TestApp) {
    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    let dora = verified(&app, "dora").await;
    as_user(&app, &grace).await;
    app.post_form("/forums", &[("slug", "general"), ("title", "General")]).await;
    let res = app.post_form("/forums/moderators", &[("login", "nobody-here")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/forums").await;
    assert!(page.contains("No account has that username or email."));
    app.post_form("/forums/moderators", &[("login", "dora@example.org")]).await;
    let (_, page) = app.get("/forums").await;
    assert!(page.contains("dora now moderates the forums."));
    let dora_id = re(r#"action="/forums/moderators/(\d+)/remove""#, &page);

    // A site moderator's posts appear at once, and the queue opens to them.
    as_user(&app, &dora).await;
    let (_, page) = app.get("/forums").await;
    assert!(page.contains("/forums/moderation") && !page.contains("Appoint moderator"));
    let res = app.post_form("/forums/general/threads", &[("title", "House rules"), ("body", "Be kind.")]).await;
    let thread = res.headers().get_one("Location").unwrap().to_string();
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("Be kind.") && !page.contains("waiting for a moderator"));
    let (status, _) = app.get("/forums/moderation").await;
    assert_eq!(status, Status::Ok);
    let res = app.post_form("/forums/moderators", &[("login", "dora")]).await;
    assert_eq!(res.status(), Status::Forbidden, "only staff appoint moderators");

    as_user(&app, &grace).await;
    app.post_form(&format!("/forums/moderators/{dora_id}/remove"), &[]).await;
    as_user(&app, &dora).await;
    let res = app.post_form("/forums/general/threads", &[("title", "Another"), ("body", "Now I wait.")]).await;
    let thread = res.headers().get_one("Location").unwrap().to_string();
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("waiting for a moderator"), "no longer a moderator, and never approved as an author");
}
on_both!(frm_3_staff_appoint_and_remove_site_moderators, site_moderators);

async fn search_forums(app: TestApp) {
    // promise: FRM-1 — forum search through the SearchIndex, only over what the reader may see.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    let res = app.post_form("/forums", &[("slug", "search"), ("title", "Search")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/forums").await;
    assert!(page.contains("is the address of a page"), "a forum cannot hide the search page");
    app.post_form("/forums", &[("slug", "study-groups"), ("title", "Study groups")]).await;

    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    enroll(&app, &c.slug).await;
    let forum =
        app.client.get("/learn/intro-python/forum").dispatch().await.headers().get_one("Location").unwrap().to_string();
    app.post_form(
        &format!("{forum}/threads"),
        &[
            ("title", "Loops in Python"),
            (
                "body",
                "## Loops\n\nHow do **list comprehensions** differ from [generator expressions](https://peps.python.org/pep-0289/)? \
                 Compare `[x<3 for x in xs]` with <b>care</b>.",
            ),
        ],
    )
    .await;
    app.run_jobs().await;
    let (status, page) = app.get("/forums/search?q=comprehensions").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("No thread matches"), "a waiting post is not searchable, even by its author");

    as_user(&app, &grace).await;
    let opening = post_id_by_body(&app, "comprehensions").await;
    app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "approve")]).await;
    app.run_jobs().await;
    let thread = re(r#"href="(/forums/course-[^"]+/threads/\d+)""#, &app.get(&forum).await.1);

    as_user(&app, &ada).await;
    // A typo and a word from the body, not the title, find the thread; the
    // excerpt shows the words as a reader sees them (no Markdown), the ones
    // matched marked, everything else escaped.
    let (_, page) = app.get("/forums/search?q=comprehenshions").await;
    assert!(page.contains(&format!("href=\"{thread}\"")), "{page}");
    let excerpt = re(r#"<p class="small search-excerpt">(.*?)</p>"#, &page);
    assert!(
        excerpt.contains("How do list <mark>comprehensions</mark> differ from generator expressions?"),
        "{excerpt}"
    );
    assert!(!excerpt.contains("**") && !excerpt.contains("](") && !excerpt.contains("##") && !excerpt.contains("peps"));
    assert!(excerpt.contains("[x&lt;3 for x in xs]") && !excerpt.contains("<b>"), "{excerpt}");
    let (_, page) = app.get("/forums/search?q=loops+generat").await;
    assert!(page.contains("<mark>Loops</mark> in Python"), "the title's match is marked: {page}");
    assert!(page.contains("<mark>generator</mark> expressions"), "the last word matches as a prefix: {page}");
    let (_, page) = app.get(&format!("{forum}/search?q=generator")).await;
    assert!(page.contains("Loops in Python"), "search within the course forum");
    let (_, page) = app.get("/forums/study-groups/search?q=generator").await;
    assert!(page.contains("No thread matches"), "another forum's threads are not in its results");

    // Someone outside the course finds nothing there and cannot search its forum.
    let bob = verified(&app, "bob").await;
    as_user(&app, &bob).await;
    let (_, page) = app.get("/forums/search?q=generator").await;
    assert!(page.contains("No thread matches") && !page.contains("Loops in Python"), "{page}");
    let (status, _) = app.get(&format!("{forum}/search?q=generator")).await;
    assert_eq!(status, Status::NotFound);

    // Bad input: an overlong query is refused with a message; an empty one shows the form.
    let (status, page) = app.get(&format!("/forums/search?q={}", "a".repeat(201))).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(page.contains("at most 200 characters"));
    let (status, page) = app.get("/forums/search?q=").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("name=\"q\"") && !page.contains("No thread matches"));

    // A hidden post leaves the results at once: hits are checked against the
    // database before the index job has run.
    as_user(&app, &grace).await;
    app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "hide")]).await;
    as_user(&app, &ada).await;
    let (_, page) = app.get("/forums/search?q=generator").await;
    assert!(!page.contains("Loops in Python"), "{page}");
    as_user(&app, &grace).await;
    app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "restore")]).await;
    app.run_jobs().await;
    let (_, page) = app.get("/forums/search?q=generator").await;
    assert!(page.contains("Loops in Python"), "restored, found again");

    // FRM-4: once the author is erased with bodies blanked, their words are no longer found.
    let ada_id: i64 =
        run(&app, |conn| users::table.filter(users::username.eq("ada")).select(users::id).first(conn)).await;
    run(&app, move |conn| lyceum::forums::erase_author(conn, ada_id, true)).await;
    app.run_jobs().await;
    let (_, page) = app.get("/forums/search?q=generator").await;
    assert!(page.contains("No thread matches"), "{page}");
    // The title of the thread they opened goes with their words.
    let (_, page) = app.get("/forums/search?q=loops").await;
    assert!(page.contains("No thread matches") && !page.contains("Loops in Python"), "{page}");
}
on_both!(frm_1_search_finds_only_what_the_reader_may_see, search_forums);
on_meilisearch!(frm_1_search_on_meilisearch, search_forums);

/// The CSRF tokens of a page's forms: all of them, in order.
fn csrf_tokens(page: &str) -> Vec<String> {
    regex::Regex::new(r#"name="csrf_token" value="([^"]*)""#)
        .unwrap()
        .captures_iter(page)
        .map(|c| c[1].to_string())
        .collect()
}

/// A course forum thread: everyone in `learners` enrolled, the first opens
/// the thread, and the staff moderator Grace approves it (she is signed in
/// at the end). Returns the forum and thread paths, the opening post and Grace.
async fn approved_thread(
    app: &TestApp,
    learners: &[&crate::common::Learner],
    title: &str,
    body: &str,
) -> (String, String, i64, crate::common::Learner) {
    let c = seed_course(app, "northbridge", "intro-python", "Introduction to Python", None).await;
    for l in learners {
        as_user(app, l).await;
        enroll(app, &c.slug).await;
    }
    as_user(app, learners[0]).await;
    let res = app.client.get("/learn/intro-python/forum").dispatch().await;
    let forum = res.headers().get_one("Location").unwrap().to_string();
    let res = app.post_form(&format!("{forum}/threads"), &[("title", title), ("body", body)]).await;
    let thread = res.headers().get_one("Location").unwrap().to_string();
    let opening = post_id_by_body(app, body).await;
    let grace = verified(app, "grace").await;
    run(app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(app, &grace).await;
    app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "approve")]).await;
    (forum, thread, opening, grace)
}

async fn kept_posts(app: TestApp) {
    // promise: FRM-2 — a post is rendered once and kept for everyone who sees it the
    // same way; the kept copy never carries one viewer's forms or details to another.
    let (ada, bob, carol) = (verified(&app, "ada").await, verified(&app, "bob").await, verified(&app, "carol").await);
    let (_, thread, opening, _) =
        approved_thread(&app, &[&ada, &bob, &carol], "Recursion", "What is a base case?").await;
    let (_, moderator_page) = app.get(&thread).await;
    assert!(moderator_page.contains("203.0.113.7"), "the moderator sees the network details");

    // Each viewer's page: every form carries that viewer's own token, and only
    // the author gets a link to edit.
    let mut seen = Vec::new();
    for (l, author) in [(&bob, false), (&ada, true), (&carol, false), (&bob, false)] {
        as_user(&app, l).await;
        let (status, page) = app.get(&thread).await;
        assert_eq!(status, Status::Ok);
        let tokens = csrf_tokens(&page);
        assert!(tokens.len() >= 3, "follow, upvote and reply forms: {tokens:?}");
        assert!(tokens.iter().all(|t| t == &tokens[0] && t.len() >= 32), "one token, the viewer's: {tokens:?}");
        assert!(!page.contains("203.0.113.7"), "network details are for moderators only");
        assert_eq!(page.contains(&format!("/forums/posts/{opening}/edit")), author, "editing is the author's");
        assert_eq!(page.contains("/vote"), !author, "others may upvote");
        seen.push(tokens[0].clone());
    }
    // Signing in again gives Bob a new token, which his kept view must carry too.
    let distinct: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 4, "four sign-ins, four tokens: {seen:?}");

    // The token in a kept post's form is the one that works: Carol's upvote goes through.
    as_user(&app, &carol).await;
    let res = app.post_form(&format!("/forums/posts/{opening}/vote"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("1 upvote(s)") && page.contains("Take back upvote"));
    // Bob sees the new count, without Carol's "take back".
    as_user(&app, &bob).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("1 upvote(s)") && !page.contains("Take back upvote"));
    // An edit shows at once.
    as_user(&app, &ada).await;
    app.post_form(&format!("/forums/posts/{opening}/edit"), &[("body", "What is a base case, really?")]).await;
    as_user(&app, &bob).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("What is a base case, really?") && !page.contains("What is a base case?"));

    // Each post keeps its count: Bob's vote adds one and taking it back
    // removes it; an erased voter's vote goes with their account (FRM-4).
    let vote = format!("/forums/posts/{opening}/vote");
    app.post_form(&vote, &[]).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("2 upvote(s)") && page.contains("Take back upvote"));
    app.post_form(&vote, &[]).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("1 upvote(s)") && !page.contains("Take back upvote"));
    let carol_id: i64 =
        run(&app, |conn| users::table.filter(users::username.eq("carol")).select(users::id).first(conn)).await;
    run(&app, move |conn| lyceum::forums::erase_author(conn, carol_id, false)).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("0 upvote(s)"), "{page}");
}
on_both!(frm_2_a_kept_post_shows_each_viewer_their_own_forms, kept_posts);

async fn thread_versions(app: TestApp) {
    // promise: FRM-1 — a thread page keeps the posts it read between views
    // (src/forums/cache.rs) and still shows every change at once, whichever
    // server, code path or plain SQL statement made it.
    use lyceum::db::schema::{forum_threads, profiles};
    let (ada, bob) = (verified(&app, "ada").await, verified(&app, "bob").await);
    let (_, thread, opening, grace) = approved_thread(&app, &[&ada, &bob], "Loops", "When does a loop end?").await;
    let thread_id: i64 = thread.rsplit('/').next().unwrap().parse().unwrap();
    let version = || {
        run(&app, move |conn| forum_threads::table.find(thread_id).select(forum_threads::version).first::<i64>(conn))
    };
    // Bob's first reply waits for a moderator: his page shows it, Ada's does not.
    as_user(&app, &bob).await;
    app.post_form(&format!("{thread}/replies"), &[("body", "When its condition is false.")]).await;
    let reply = post_id_by_body(&app, "When its condition is false.").await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("When its condition is false."), "{page}");
    as_user(&app, &ada).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("When does a loop end?") && !page.contains("When its condition is false."), "{page}");

    // A second server on the same database (another machine behind the load
    // balancer) approves the reply; the first one's next view shows it.
    let rocket = lyceum::build_rocket(app.config.clone()).expect("second server builds");
    let other = TestApp {
        client: rocket::local::asynchronous::Client::tracked(rocket).await.expect("second server"),
        config: app.config.clone(),
        dir: tempfile::tempdir().unwrap(),
        pg: None,
    };
    as_user(&other, &grace).await;
    let res = other.post_form(&format!("/forums/posts/{reply}/moderate"), &[("action", "approve")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("When its condition is false."), "the approved reply shows on the first server: {page}");

    // Statements no code of the site makes (an operator's SQL) count as much:
    // each raises the version in its own transaction, and the next view shows it.
    let before = version().await;
    run(&app, move |conn| {
        diesel::update(forum_posts::table.find(opening))
            .set(forum_posts::body_html.eq("<p>Rewritten in the database.</p>"))
            .execute(conn)
    })
    .await;
    assert!(version().await > before, "an update of a post raises its thread's version");
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("Rewritten in the database.") && !page.contains("When does a loop end?"), "{page}");
    run(&app, |conn| {
        diesel::update(users::table.filter(users::username.eq("bob"))).set(users::username.eq("robert")).execute(conn)
    })
    .await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains(">robert</a>") && !page.contains(">bob</a>"), "a new username shows: {page}");
    let ada_id: i64 = crate::sharing::user_id(&app, "ada").await;
    run(&app, move |conn| {
        diesel::delete(profiles::table.find(ada_id)).execute(conn)?;
        diesel::insert_into(profiles::table)
            .values((
                profiles::user_id.eq(ada_id),
                profiles::bio.eq(""),
                profiles::avatar_key.eq("avatars/ada.png"),
                profiles::visibility.eq("limited"),
                profiles::updated_at.eq(lyceum::db::now()),
            ))
            .execute(conn)
    })
    .await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("/media/avatars/ada.png"), "a new avatar shows: {page}");
    run(&app, move |conn| diesel::delete(forum_posts::table.find(reply)).execute(conn)).await;
    let (_, page) = app.get(&thread).await;
    assert!(!page.contains("When its condition is false."), "a deleted row is gone: {page}");
    // And a view changes nothing: the version stays where the last change left it.
    let settled = version().await;
    app.get(&thread).await;
    assert_eq!(version().await, settled);
}
on_both!(frm_1_a_thread_page_shows_every_change_at_once_whoever_made_it, thread_versions);

async fn bans(app: TestApp) {
    // promise: FRM-1 — a moderator bars a learner from posting in one forum, with a reason.
    let (ada, bob) = (verified(&app, "ada").await, verified(&app, "bob").await);
    let (forum, thread, spam, grace) = approved_thread(&app, &[&ada, &bob], "Buy now", "Cheap essays here").await;

    // Not without a reason, and not by a learner.
    let res = app.post_form(&format!("/forums/posts/{spam}/moderate"), &[("action", "ban"), ("reason", " ")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("Say why this person may no longer post here."));
    as_user(&app, &bob).await;
    let res = app.post_form(&format!("/forums/posts/{spam}/moderate"), &[("action", "ban"), ("reason", "spam")]).await;
    assert_eq!(res.status(), Status::Forbidden);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("id=\"reply\""), "bob may still reply");

    as_user(&app, &grace).await;
    let res = app
        .post_form(&format!("/forums/posts/{spam}/moderate"), &[("action", "ban"), ("reason", "Selling essays")])
        .await;
    assert_eq!(res.status(), Status::SeeOther);

    // Ada still reads the forum, but may no longer post, reply or comment there.
    as_user(&app, &ada).await;
    let (status, page) = app.get(&thread).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Cheap essays here") && page.contains("You can no longer post in this forum."), "{page}");
    assert!(!page.contains("id=\"reply\""), "no reply form");
    let (_, page) = app.get(&forum).await;
    assert!(page.contains("You can no longer post in this forum."));
    let res = app.post_form(&format!("{thread}/replies"), &[("body", "Still selling")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("You can no longer post in this forum."));
    let res = app.post_form(&format!("{forum}/threads"), &[("title", "Again"), ("body", "Cheap essays again")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let posts: i64 = run(&app, |conn| {
        forum_posts::table
            .filter(forum_posts::body.like("%Still selling%").or(forum_posts::body.like("%again%")))
            .count()
            .get_result(conn)
    })
    .await;
    assert_eq!(posts, 0, "nothing the banned learner sent was stored");

    // Bob, in the same forum, is not affected.
    as_user(&app, &bob).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("id=\"reply\"") && !page.contains("You can no longer post"));
    let res = app.post_form(&format!("{thread}/replies"), &[("body", "Please report this")]).await;
    assert_eq!(res.status(), Status::SeeOther);
}
on_both!(frm_1_a_banned_learner_reads_but_no_longer_posts_in_that_forum, bans);

#[rocket::async_test]
async fn frm_1_a_long_thread_is_paged_fifty_replies_at_a_time_with_their_comments() {
    // promise: FRM-1 — a course forum thread reads page by page, comments under their reply.
    let app = TestApp::sqlite_with(|c| c.demo = true).await;
    let demo = lyceum::demo::accounts().remove(1);
    let learner = crate::common::Learner { username: "learner".into(), email: demo.email, password: demo.password };
    app.sign_in(&learner, false).await;
    crate::learning::enroll(&app, "intro-python").await;
    let (status, _) = app.get("/learn/intro-python/forum").await;
    assert_eq!(status, Status::SeeOther, "the course forum opens");
    let db = app.db();
    let path = rocket::tokio::task::spawn_blocking(move || lyceum::demo::seed_thread(&db, 200))
        .await
        .expect("seeding")
        .expect("a thread");
    // Post 0 opens the thread; every fourth post (3, 7, …) is a comment under the reply before it.
    let replies: Vec<usize> = (1..200).filter(|i| i % 4 != 3).collect();
    let has = |page: &str, i: usize| page.contains(&format!("Post {i}:"));
    let (status, first) = app.get(&path).await;
    assert_eq!(status, Status::Ok);
    assert!(has(&first, 0) && has(&first, 1) && has(&first, 3) && has(&first, replies[49]));
    assert!(!has(&first, replies[50]), "the second page's replies are not on the first");
    let (_, second) = app.get(&format!("{path}?page=2")).await;
    assert!(has(&second, 0), "the opening post heads every page");
    assert!(has(&second, replies[50]) && has(&second, replies[99]) && !has(&second, replies[49]));
    let (_, last) = app.get(&format!("{path}?page=9")).await;
    assert!(has(&last, replies[148]) && has(&last, 199), "a page past the end shows the last one, with comments");
    assert!(!has(&last, replies[99]));

    // A post's address leads to the page that shows it: a reply on the
    // second page, a comment under it, the opening post on the first.
    let location = |res: &rocket::local::asynchronous::LocalResponse<'_>| {
        res.headers().get_one("Location").unwrap_or_default().to_string()
    };
    let reply = replies.iter().skip(50).find(|i| *i % 4 == 2).copied().expect("a reply with a comment on page 2");
    for (i, page) in [(0, ""), (1, ""), (reply, "?page=2"), (reply + 1, "?page=2")] {
        let id = post_id_by_body(&app, &format!("Post {i}:")).await;
        let res = app.client.get(format!("/forums/posts/{id}")).dispatch().await;
        assert_eq!(res.status(), Status::SeeOther);
        assert_eq!(location(&res), format!("{path}{page}#post-{id}"), "post {i}");
    }
    // A new reply is the 150th: after posting, its author (staff here: the
    // learner just wrote 200 posts and is held back as posting too fast)
    // lands on the third page, where it is, not on the first.
    app.sign_out().await;
    let staff = lyceum::demo::accounts().remove(0);
    app.sign_in(
        &crate::common::Learner { username: "staff".into(), email: staff.email, password: staff.password },
        false,
    )
    .await;
    let res = app.post_form(&format!("{path}/replies"), &[("body", "The newest reply")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let newest = post_id_by_body(&app, "The newest reply").await;
    assert_eq!(location(&res), format!("{path}?page=3#post-{newest}"));
    let (_, third) = app.get(&format!("{path}?page=3")).await;
    assert!(third.contains("The newest reply") && third.contains(&format!(r#"id="post-{newest}""#)));
    // Someone who may not read the forum learns nothing from an address.
    app.sign_out().await;
    let outsider = app.sign_up("outsider").await;
    app.verify(&outsider).await;
    app.sign_in(&outsider, false).await;
    let res = app.client.get(format!("/forums/posts/{newest}")).dispatch().await;
    assert!(matches!(res.status(), Status::Forbidden | Status::NotFound), "{}", res.status());
    assert!(location(&res).is_empty());
}

async fn post_pages(app: TestApp) {
    // promise: FRM-1 — reporting, editing and commenting each have a page of their
    // own; the thread links to them, and a form that fails comes back there with
    // what was typed.
    let (ada, bob) = (verified(&app, "ada").await, verified(&app, "bob").await);
    let (_, thread, opening, grace) = approved_thread(&app, &[&ada, &bob], "Recursion", "What is a base case?").await;
    as_user(&app, &bob).await;
    app.post_form(&format!("{thread}/replies"), &[("body", "The case that does not recurse.")]).await;
    let reply = post_id_by_body(&app, "The case that does not recurse.").await;
    as_user(&app, &grace).await;
    app.post_form(&format!("/forums/posts/{reply}/moderate"), &[("action", "approve")]).await;

    // Ada's thread page: one upvote form for all posts, links for the rest.
    as_user(&app, &ada).await;
    let (_, page) = app.get(&thread).await;
    assert_eq!(page.matches(r#"id="post-action""#).count(), 1);
    assert!(page.contains(&format!(r#"form="post-action" formaction="/forums/posts/{reply}/vote""#)), "{page}");
    for link in [format!("/forums/posts/{reply}/report"), format!("/forums/posts/{reply}/comment")] {
        assert!(page.contains(&format!(r#"href="{link}""#)), "{link}");
    }
    assert!(page.contains(&format!(r#"href="/forums/posts/{opening}/edit""#)));
    assert!(!page.contains(&format!("/forums/posts/{opening}/report")), "no reporting one's own post");
    assert!(!page.contains(&format!("/forums/posts/{opening}/comment")), "comments go under replies");
    assert!(!page.contains(&format!("/forums/posts/{reply}/edit")), "nor editing another's");

    // Report: the page shows the post; an empty reason comes back with the
    // message, and nothing is stored.
    let (status, form) = app.get(&format!("/forums/posts/{reply}/report")).await;
    assert_eq!(status, Status::Ok);
    assert!(form.contains("The case that does not recurse.") && form.contains(r#"name="reason""#), "{form}");
    let res = app.post_form(&format!("/forums/posts/{reply}/report"), &[("reason", "  ")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Say briefly what is wrong with this post.") && page.contains(r#"name="reason""#));
    let (_, queue) = {
        as_user(&app, &grace).await;
        app.get("/forums/moderation").await
    };
    assert!(!queue.contains("The case that does not recurse."), "no report was stored");
    as_user(&app, &ada).await;
    let (status, page) = app.get(&format!("/forums/posts/{opening}/report")).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(page.contains("You cannot report your own post; edit it instead."));

    // Edit: the author gets the Markdown source; a failed edit keeps what was typed.
    let (status, form) = app.get(&format!("/forums/posts/{opening}/edit")).await;
    assert_eq!(status, Status::Ok);
    assert!(form.contains("What is a base case?</textarea>"), "{form}");
    let res = app.post_form(&format!("/forums/posts/{opening}/edit"), &[("body", "   ")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Write something first.") && page.contains(r#"action="/forums/posts/"#), "{page}");
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("What is a base case?"), "the post is unchanged");
    as_user(&app, &bob).await;
    let (status, _) = app.get(&format!("/forums/posts/{opening}/edit")).await;
    assert_eq!(status, Status::Forbidden, "nobody edits another's post");
    as_user(&app, &grace).await;
    let (status, _) = app.get(&format!("/forums/posts/{reply}/edit")).await;
    assert_eq!(status, Status::Ok, "moderators may edit");

    // Comment: under a reply, not under the opening post; a failed comment
    // comes back on its page, still under the same reply.
    as_user(&app, &ada).await;
    let (status, form) = app.get(&format!("/forums/posts/{reply}/comment")).await;
    assert_eq!(status, Status::Ok);
    assert!(form.contains(&format!(r#"name="parent_id" value="{reply}""#)), "{form}");
    let (status, page) = app.get(&format!("/forums/posts/{opening}/comment")).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(page.contains("Comments go under a reply, one level deep."));
    let res = app.post_form(&format!("{thread}/replies"), &[("body", " "), ("parent_id", &reply.to_string())]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Write something first.") && page.contains(&format!(r#"value="{reply}""#)), "{page}");
    let res = app
        .post_form(&format!("{thread}/replies"), &[("body", "So it ends there."), ("parent_id", &reply.to_string())])
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("So it ends there."));

    // The upvote button's form: Ada's vote counts, once.
    let res = app.post_form(&format!("/forums/posts/{reply}/vote"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("1 upvote(s)") && page.contains("Take back upvote"));

    // Unknown pages and posts are not found; nor is a hidden post, to a reader.
    let (status, _) = app.get(&format!("/forums/posts/{reply}/frobnicate")).await;
    assert_eq!(status, Status::NotFound);
    let (status, _) = app.get("/forums/posts/999999/report").await;
    assert_eq!(status, Status::NotFound);
    as_user(&app, &grace).await;
    app.post_form(&format!("/forums/posts/{reply}/moderate"), &[("action", "hide")]).await;
    as_user(&app, &ada).await;
    let (status, _) = app.get(&format!("/forums/posts/{reply}/report")).await;
    assert_eq!(status, Status::NotFound);
}
on_both!(frm_1_each_post_has_a_page_to_report_edit_or_comment, post_pages);

async fn paged_lists(app: TestApp) {
    // promise: FRM-1 — the forum index and the moderation queue show one page
    // at a time, in order, whatever the forum's size.
    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    let cyrus = verified(&app, "cyrus").await;
    as_user(&app, &grace).await;
    app.post_form("/forums", &[("slug", "general"), ("title", "General")]).await;
    // 60 visible threads (each with a reply), then one waiting for a
    // moderator and 55 waiting replies: written as a busy forum would hold them.
    run(&app, |conn| {
        use lyceum::db::schema::{forum_threads, forums};
        let forum: i64 = forums::table.filter(forums::slug.eq("general")).select(forums::id).first(conn)?;
        let cyrus: i64 = users::table.filter(users::username.eq("cyrus")).select(users::id).first(conn)?;
        let start = lyceum::db::now() - chrono::Duration::days(1);
        let post = |conn: &mut lyceum::db::Conn, thread: i64, status: &str, body: String, minute: i64| {
            diesel::insert_into(forum_posts::table)
                .values((
                    forum_posts::thread_id.eq(thread),
                    forum_posts::author_id.eq(cyrus),
                    forum_posts::anonymous.eq(false),
                    forum_posts::author_erased.eq(false),
                    forum_posts::body_html.eq(format!("<p>{body}</p>")),
                    forum_posts::body.eq(body),
                    forum_posts::status.eq(status),
                    forum_posts::endorsed.eq(false),
                    forum_posts::created_at.eq(start + chrono::Duration::minutes(minute)),
                    forum_posts::vote_count.eq(0),
                ))
                .execute(conn)
        };
        for i in 0..61i64 {
            let at = start + chrono::Duration::minutes(i);
            let thread: i64 = diesel::insert_into(forum_threads::table)
                .values((
                    forum_threads::forum_id.eq(forum),
                    forum_threads::title.eq(format!("Topic {i:02}")),
                    forum_threads::pinned.eq(i == 3),
                    forum_threads::locked.eq(false),
                    forum_threads::last_post_at.eq(at),
                    forum_threads::created_at.eq(at),
                    forum_threads::version.eq(1),
                ))
                .returning(forum_threads::id)
                .get_result(conn)?;
            let waiting = i == 60;
            post(conn, thread, if waiting { "pending" } else { "visible" }, format!("Opening {i:02}"), i)?;
            if !waiting {
                post(conn, thread, if i < 55 { "pending" } else { "visible" }, format!("Reply {i:02}"), i)?;
            }
        }
        Ok::<_, diesel::result::Error>(())
    })
    .await;

    // A reader: the pinned thread first, then newest activity first, 25 a page.
    as_user(&app, &cyrus).await;
    let (status, first) = app.get("/forums/general").await;
    assert_eq!(status, Status::Ok);
    let topics = |page: &str| {
        regex::Regex::new(r"Topic (\d\d)").unwrap().captures_iter(page).map(|c| c[1].to_string()).collect::<Vec<_>>()
    };
    let shown = topics(&first);
    assert_eq!(shown.len(), 25, "{shown:?}");
    assert_eq!(&shown[..3], ["03", "60", "59"], "pinned first, then the author's own waiting thread, newest first");
    assert!(first.contains("Page 1 of 3"), "61 threads the author may see");
    let (_, last) = app.get("/forums/general?page=3").await;
    let last = topics(&last);
    assert_eq!(last.len(), 11, "{last:?}");
    assert_eq!(last[8..], ["02", "01", "00"], "{last:?}");
    // Another reader does not see the waiting thread, nor count it.
    let dora = verified(&app, "dora").await;
    as_user(&app, &dora).await;
    let (_, first) = app.get("/forums/general").await;
    assert_eq!(&topics(&first)[..2], ["03", "59"]);
    assert!(first.contains("Page 1 of 3"));
    let (_, last) = app.get("/forums/general?page=3").await;
    assert_eq!(topics(&last).len(), 10, "60 threads: the third page holds the last ten");

    // The moderator's queue: 56 waiting posts, 50 a page, oldest first.
    as_user(&app, &grace).await;
    let (status, queue) = app.get("/forums/moderation").await;
    assert_eq!(status, Status::Ok);
    let items = |page: &str| page.matches(r#"class="card stack queue-item""#).count();
    assert_eq!(items(&queue), 50);
    assert!(queue.contains("56 post(s) wait") && queue.contains("Page 1 of 2"), "{queue}");
    assert!(queue.contains("Reply 00") && !queue.contains("Opening 60"));
    assert!(queue.contains(r#"rel="next" href="/forums/moderation?page&#x3D;2""#), "{queue}");
    let (_, second) = app.get("/forums/moderation?page=2").await;
    assert_eq!(items(&second), 6);
    assert!(second.contains("Reply 54") && second.contains("Opening 60") && !second.contains("Reply 00"));
    let (status, odd) = app.get("/forums/moderation?page=abc").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(items(&odd), 50, "a page that is not a number is the first");
    // A learner moderates nothing and sees an empty queue.
    as_user(&app, &cyrus).await;
    let (_, none) = app.get("/forums/moderation").await;
    assert_eq!(items(&none), 0);
}
on_both!(frm_1_forum_index_and_moderation_queue_are_read_a_page_at_a_time, paged_lists);

/// A JPEG photo with an EXIF block naming the camera, its serial number and
/// where the photo was taken, as phones write into every photo (a TIFF
/// header and one IFD of ASCII tags in an APP1 segment, built by hand after
/// the Exif 2.32 layout: Make 0x010F, Model 0x0110, ImageDescription 0x010E).
pub(crate) fn jpeg_with_exif(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut plain = Vec::new();
    image::DynamicImage::ImageRgb8(pixels)
        .write_to(&mut std::io::Cursor::new(&mut plain), image::ImageFormat::Jpeg)
        .unwrap();
    let tags: [(u16, &[u8]); 3] =
        [(0x010E, b"GPS 48.858370 N 2.294481 E\0"), (0x010F, b"LeakyCam\0"), (0x0110, b"LeakyCam Pro 9 SN-0042\0")];
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    let mut value_at = 8 + 2 + tags.len() * 12 + 4;
    let mut values = Vec::new();
    tiff.extend((tags.len() as u16).to_le_bytes());
    for (tag, value) in tags {
        tiff.extend(tag.to_le_bytes());
        tiff.extend(2u16.to_le_bytes()); // ASCII
        tiff.extend((value.len() as u32).to_le_bytes());
        tiff.extend((value_at as u32).to_le_bytes());
        values.extend_from_slice(value);
        value_at += value.len();
    }
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(values);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut photo = plain[..2].to_vec();
    photo.extend([0xFF, 0xE1]);
    photo.extend(((app1.len() + 2) as u16).to_be_bytes());
    photo.extend(app1);
    photo.extend_from_slice(&plain[2..]);
    photo
}

/// The markers of a JPEG's segments before its image data.
pub(crate) fn jpeg_markers(bytes: &[u8]) -> Vec<u8> {
    assert_eq!(&bytes[..2], [0xFF, 0xD8], "a JPEG");
    let (mut at, mut markers) = (2, Vec::new());
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        markers.push(bytes[at + 1]);
        if bytes[at + 1] == 0xDA {
            break;
        }
        at += 2 + usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
    }
    markers
}

pub(crate) fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a phone photo's metadata gives away, none of which may be served.
pub(crate) const PHOTO_SECRETS: [&[u8]; 4] = [b"Exif", b"LeakyCam", b"SN-0042", b"48.858370"];

async fn post_multipart<'a>(
    app: &'a TestApp,
    path: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &str, &[u8])>,
) -> rocket::local::asynchronous::LocalResponse<'a> {
    let token = app.csrf().await;
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    let (ct, body) = crate::learning::multipart(&all, file);
    app.client.post(path.to_string()).header(ct).body(body).dispatch().await
}

async fn forum_images(app: TestApp) {
    // promise: FRM-5 — an image attached to a post is re-encoded without its
    // metadata (camera, GPS position) before anyone, its author included, can fetch it.
    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    app.post_form("/forums", &[("slug", "photos"), ("title", "Photos")]).await;
    let res = app.post_form("/forums", &[("slug", "images"), ("title", "Images")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    assert!(app.get("/forums").await.1.contains("is the address of a page"), "images is the images' address");

    let photo = jpeg_with_exif(800, 600);
    assert!(jpeg_markers(&photo).contains(&0xE1) && PHOTO_SECRETS.iter().all(|s| holds(&photo, s)));
    image::load_from_memory(&photo).expect("the photo with its EXIF block is a valid JPEG");
    let cyrus = verified(&app, "cyrus").await;
    as_user(&app, &cyrus).await;
    let title = ("title", "The harbour at dawn");
    let new_thread = "/forums/photos/threads";

    // Refused with what to do, the text kept: no description, not an image,
    // too large (the limit is said).
    let res =
        post_multipart(&app, new_thread, &[title, ("body", "Taken this morning.")], Some(("image", "h.jpg", &photo)))
            .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Describe the image in a few words") && page.contains("Taken this morning.</textarea>"));
    let fields = [title, ("body", "Taken this morning."), ("image_alt", "Fishing boats in a harbour at sunrise")];
    let res =
        post_multipart(&app, new_thread, &fields, Some(("image", "h.jpg", b"just some notes, not a picture"))).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("is not a PNG, JPEG, GIF or WebP image"), "{page}");
    assert!(page.contains(r#"value="Fishing boats in a harbour at sunrise""#), "the description is kept");
    let huge = vec![0xFFu8; 11 * 1024 * 1024];
    let res = post_multipart(&app, new_thread, &fields, Some(("image", "big.jpg", &huge))).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("larger than 10 MB"));
    let stored: i64 = run(&app, |conn| {
        use lyceum::db::schema::forum_attachments;
        forum_attachments::table.count().get_result(conn)
    })
    .await;
    assert_eq!(stored, 0, "nothing stored from refused posts");

    let res = post_multipart(&app, new_thread, &fields, Some(("image", "harbour.jpg", &photo))).await;
    assert_eq!(res.status(), Status::SeeOther);
    let thread = res.headers().get_one("Location").unwrap().to_string();
    let (status, page) = app.get(&thread).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Only you and the moderators see this post for now"), "the author sees why it waits");
    let img = re(r#"(<img src="/forums/images/\d+"[^>]*>)"#, &page);
    assert!(img.contains(r#"alt="Fishing boats in a harbour at sunrise""#) && img.contains(r#"width="800""#), "{img}");
    let src = re(r#"src="(/forums/images/\d+)""#, &img);
    let res = app.client.get(src.clone()).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type(), Some(rocket::http::ContentType::JPEG));
    assert_eq!(res.headers().get_one("X-Content-Type-Options"), Some("nosniff"));
    assert!(res.headers().get_one("Content-Security-Policy").unwrap().contains("sandbox"));
    let served = res.into_bytes().await.unwrap();
    assert!(!jpeg_markers(&served).contains(&0xE1), "no APP1 (EXIF/XMP) segment: {:x?}", jpeg_markers(&served));
    for secret in PHOTO_SECRETS {
        assert!(!holds(&served, secret), "{} was served", String::from_utf8_lossy(secret));
    }
    let decoded = image::load_from_memory(&served).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (800, 600));

    // Others: the waiting thread is explained, not a bare "not found", and
    // its image is not theirs to fetch yet.
    let dora = verified(&app, "dora").await;
    as_user(&app, &dora).await;
    let (status, page) = app.get(&thread).await;
    assert_eq!(status, Status::NotFound);
    assert!(page.contains("This thread waits for a moderator") && page.contains("href=\"/forums/photos\""), "{page}");
    assert!(!page.contains("harbour at dawn") && !page.contains("Taken this morning"), "nothing unread by a moderator");
    assert_eq!(app.client.get(src.clone()).dispatch().await.status(), Status::NotFound);

    // The moderator approves it in the queue and is back in the queue.
    as_user(&app, &grace).await;
    let (_, queue) = app.get("/forums/moderation").await;
    assert!(queue.contains(r#"name="from" value="queue""#) && queue.contains(&src), "the queue shows the image");
    let opening = post_id_by_body(&app, "Taken this morning.").await;
    let res = app
        .post_form(
            &format!("/forums/posts/{opening}/moderate"),
            &[("action", "approve"), ("from", "queue"), ("page", "1")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(res.headers().get_one("Location"), Some("/forums/moderation"));
    let (_, queue) = app.get("/forums/moderation").await;
    assert!(queue.contains("Approved cyrus’s post in “The harbour at dawn”"), "{queue}");

    as_user(&app, &dora).await;
    let (status, page) = app.get(&thread).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains(&img), "everyone sees the image with its description");
    assert_eq!(app.client.get(src.clone()).dispatch().await.status(), Status::Ok);

    // Trusted now, Cyrus replies with an image alone, then with an image from
    // another site: shown as a link, and he is told why.
    as_user(&app, &cyrus).await;
    let mut png = Vec::new();
    image::DynamicImage::new_rgba8(40, 30)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let res = post_multipart(
        &app,
        &format!("{thread}/replies"),
        &[("body", ""), ("image_alt", "A blank square")],
        Some(("image", "blank.png", &png)),
    )
    .await;
    assert_eq!(res.status(), Status::SeeOther);
    let res = app
        .post_form(
            &format!("{thread}/replies"),
            &[("body", "Compare ![the tide chart](https://tides.example/chart.png)")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("Images from other sites are not shown in posts"), "{page}");
    assert!(page.contains(r#"alt="A blank square""#));
    assert!(
        page.contains(r#"href="https://tides.example/chart.png""#) && page.contains(">the tide chart</a>"),
        "{page}"
    );
    assert!(!page.contains(r#"src="https://tides.example"#));

    // Junk addresses get a clear refusal, never an error: not a number, 422
    // (as every id in a path); a number that names no image, 404.
    for junk in ["/forums/images/abc", "/forums/images/1.5", "/forums/images/%00"] {
        assert_eq!(app.client.get(junk).dispatch().await.status(), Status::UnprocessableEntity, "{junk}");
    }
    for unknown in ["/forums/images/99999999", "/forums/images/-1"] {
        assert_eq!(app.client.get(unknown).dispatch().await.status(), Status::NotFound, "{unknown}");
    }

    // promise: FRM-4 — erased with their posts' text, an author's images go too, rows and files.
    let key: String = run(&app, move |conn| {
        use lyceum::db::schema::forum_attachments;
        forum_attachments::table
            .filter(forum_attachments::post_id.eq(opening))
            .select(forum_attachments::blob_key)
            .first(conn)
    })
    .await;
    let blobs = lyceum::blob_store(&app.config);
    assert!(blobs.get(&key).unwrap().is_some());
    let cyrus_id: i64 =
        run(&app, |conn| users::table.filter(users::username.eq("cyrus")).select(users::id).first(conn)).await;
    let (outbox, store) = (app.config.data_dir.join("outbox"), blobs.clone());
    run(&app, move |conn| {
        let erasing = lyceum::lifecycle::Erasing {
            step: lyceum::lifecycle::Step::PseudonymisePosts,
            user_id: cyrus_id,
            request_id: 0,
            email: "cyrus@example.org",
            username: "cyrus",
            blank_posts: true,
            blobs: store.as_ref(),
            outbox: &outbox,
            now: lyceum::db::now(),
        };
        (lyceum::forums::lifecycle::HOOKS.erase_user.unwrap())(conn, &erasing)
    })
    .await;
    assert!(blobs.get(&key).unwrap().is_none(), "the file is deleted");
    as_user(&app, &grace).await;
    assert_eq!(app.client.get(src.clone()).dispatch().await.status(), Status::NotFound);
    let (_, page) = app.get(&thread).await;
    assert!(!page.contains("/forums/images/") && page.contains("Former member"), "{page}");
}
on_both!(frm_5_a_post_carries_an_image_without_its_metadata, forum_images);

async fn waiting_explained(app: TestApp) {
    // promise: FRM-3 — a waiting post is shown to its author as waiting, with
    // why; others are told a thread waits rather than shown "not found"; a
    // moderator's decision on a waiting post returns to the queue.
    let (ada, bob) = (verified(&app, "ada").await, verified(&app, "bob").await);
    let (_, thread, opening, grace) = approved_thread(&app, &[&ada, &bob], "Recursion", "What is a base case?").await;
    as_user(&app, &bob).await;
    app.post_form(&format!("{thread}/replies"), &[("body", "Bob's waiting answer")]).await;
    let (_, page) = app.get(&thread).await;
    assert!(page.contains("Bob's waiting answer") && page.contains("Only you and the moderators see this post"));
    as_user(&app, &ada).await;
    let (_, page) = app.get(&thread).await;
    assert!(!page.contains("Bob's waiting answer") && !page.contains("Only you and the moderators"), "{page}");
    // Rejected from the thread page: back to the queue, told what happened.
    as_user(&app, &grace).await;
    let reply = post_id_by_body(&app, "Bob's waiting answer").await;
    let res = app.post_form(&format!("/forums/posts/{reply}/moderate"), &[("action", "reject")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/forums/moderation"));
    let (_, queue) = app.get("/forums/moderation").await;
    assert!(queue.contains("Rejected bob’s post in “Recursion”: nobody else will see it."), "{queue}");
    // A decision that is not on a waiting post, taken on the thread, stays there.
    let res = app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "endorse")]).await;
    assert!(res.headers().get_one("Location").unwrap().contains("/threads/"));
    // Hidden by a moderator: others are told so; the author still sees it, marked.
    let res =
        app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "hide"), ("from", "queue")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/forums/moderation"));
    as_user(&app, &bob).await;
    let (status, page) = app.get(&thread).await;
    assert_eq!(status, Status::NotFound);
    assert!(page.contains("This thread is hidden for now") && !page.contains("base case"), "{page}");
    as_user(&app, &ada).await;
    let (status, page) = app.get(&thread).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("What is a base case?") && page.contains("hidden by a moderator or reports"));
    // Junk in the moderation form is refused plainly.
    as_user(&app, &grace).await;
    let res =
        app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "frobnicate"), ("page", "x")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
}
on_both!(frm_3_waiting_posts_are_explained_and_decisions_return_to_the_queue, waiting_explained);

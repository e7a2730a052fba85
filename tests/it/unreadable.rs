//! Erased means unreadable: after an erasure nothing of the learner can be
//! read back, neither from rows (both databases) nor from the SQLite file's
//! free pages and write-ahead log, nor from mail files, nor from the forum.

use diesel::prelude::*;
use lyceum::db::schema::{erasures, jobs};
use rocket::http::Status;

use crate::common::{Learner, PASSWORD, TestApp, every_row};
use crate::learning::{enroll, seed_course};
use crate::on_both;
use crate::privacy::{run_scheduled, staff};
use crate::sharing::{as_user, run};

const EMAIL: &str = "zephyrine.q@example.org";
const USERNAME: &str = "quillfeather7";
const FIRST: &str = "Zephyrine";
const LAST: &str = "Marchbanks";
const SUPPORT_TEXT: &str = "Please fix my marmalade-tangent certificate";
const TITLE_WORD: &str = "Kestrelwhistle";

/// The bytes of a file, or none when it does not exist.
fn bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn erased_is_unreadable(app: TestApp) {
    // promise: an erased learner cannot be read back from the database file, its log, mail files or the forum.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let grace = staff(&app).await;
    let res = app.sign_up_with(USERNAME, &[("email", EMAIL), ("first_name", FIRST), ("last_name", LAST)]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let zeph = Learner { username: USERNAME.into(), email: EMAIL.into(), password: PASSWORD.into() };
    app.verify(&zeph).await;
    as_user(&app, &zeph).await;
    enroll(&app, &c.slug).await;
    let forum =
        app.client.get("/learn/intro-python/forum").dispatch().await.headers().get_one("Location").unwrap().to_string();
    let res = app
        .post_form(
            &format!("{forum}/threads"),
            &[("title", &format!("{TITLE_WORD} and recursion")), ("body", "Is tail recursion optimised?")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let thread = res.headers().get_one("Location").unwrap().to_string();
    let name = format!("{FIRST} {LAST}");
    let res = app
        .post_form(
            "/contact",
            &[("name", &name), ("email", EMAIL), ("subject", "Certificate"), ("message", SUPPORT_TEXT)],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);

    // A moderator lets the thread through: it is listed and searchable.
    as_user(&app, &grace).await;
    let opening: i64 = run(&app, |conn| {
        use lyceum::db::schema::forum_posts;
        forum_posts::table.order(forum_posts::id.desc()).select(forum_posts::id).first(conn)
    })
    .await;
    app.post_form(&format!("/forums/posts/{opening}/moderate"), &[("action", "approve")]).await;
    app.run_jobs().await;
    let (_, page) = app.get(&format!("/forums/search?q={TITLE_WORD}")).await;
    assert!(page.contains(&thread) && !page.contains("No thread matches"), "searchable before: {page}");

    // The learner asks for erasure; the cool-off ends; the worker erases.
    as_user(&app, &zeph).await;
    let res = app.post_form("/account/privacy/delete", &[("password", PASSWORD), ("confirm", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    app.run_jobs().await;
    run(&app, |conn| {
        diesel::update(erasures::table)
            .set(erasures::run_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    run_scheduled(&app).await;
    let state: String = run(&app, |conn| erasures::table.select(erasures::state).first(conn)).await;
    assert_eq!(state, "done");
    app.run_jobs().await;

    // The forum: the title is gone from the thread page, the forum page and search.
    as_user(&app, &grace).await;
    let (status, page) = app.get(&thread).await;
    assert_eq!(status, Status::Ok);
    assert!(!page.contains(TITLE_WORD), "the thread page still shows the title: {page}");
    let (_, page) = app.get(&forum).await;
    assert!(!page.contains(TITLE_WORD), "the forum page still lists the title");
    let (_, page) = app.get(&format!("/forums/search?q={TITLE_WORD}")).await;
    assert!(!page.contains(&thread) && page.contains("No thread matches"), "still searchable: {page}");

    let needles = [EMAIL, FIRST, LAST, USERNAME, SUPPORT_TEXT, TITLE_WORD];
    // No row of any table (SQLite and PostgreSQL alike).
    let rows = run(&app, |conn| Ok::<_, String>(every_row(conn))).await;
    for needle in needles {
        let found: Vec<_> = rows.iter().filter(|(_, row)| row.contains(needle)).collect();
        assert!(found.is_empty(), "{needle} is still in {found:?}");
    }
    // No mail file.
    for file in files_under(&app.config.outbox_dir()) {
        assert!(!contains(&bytes(&file), EMAIL), "{} still names the learner", file.display());
    }
    let mailed: i64 =
        run(&app, |conn| jobs::table.filter(jobs::payload.like(format!("%{EMAIL}%"))).count().get_result(conn)).await;
    assert_eq!(mailed, 0);
    // The SQLite file and its write-ahead log, byte by byte: free pages hold
    // nothing either. (PostgreSQL's own files are its vacuum's matter.)
    if app.config.is_sqlite() {
        let db = app.dir.path().join("lyceum.db");
        let wal = app.dir.path().join("lyceum.db-wal");
        for (name, content) in [("database file", bytes(&db)), ("write-ahead log", bytes(&wal))] {
            for needle in needles {
                assert!(!contains(&content, needle), "the {name} still holds {needle}");
            }
        }
    }
}
on_both!(erased_learners_leave_nothing_readable, erased_is_unreadable, |c| c.erasure_blank_posts = true);

async fn retention_removes_mail_files(app: TestApp) {
    // promise: RET-1 — finished mail jobs past the log period take their mail files with them.
    let ada = crate::sharing::verified(&app, "ada").await;
    app.run_jobs().await;
    let files =
        || files_under(&app.config.outbox_dir()).into_iter().filter(|f| contains(&bytes(f), &ada.email)).count();
    assert!(files() > 0, "the verification mail is in the outbox");
    run(&app, |conn| {
        diesel::update(jobs::table)
            .set(jobs::updated_at.eq(lyceum::db::now() - chrono::Duration::days(91)))
            .execute(conn)
    })
    .await;
    run_scheduled(&app).await;
    let left: i64 = run(&app, |conn| jobs::table.filter(jobs::kind.eq("send_email")).count().get_result(conn)).await;
    assert_eq!(left, 0, "the finished jobs went");
    assert_eq!(files(), 0, "and their mail files with them");
}
on_both!(ret_1_retention_removes_the_mail_files_of_finished_jobs, retention_removes_mail_files);

async fn texts_go_with_the_learner(app: TestApp) {
    // promise: texts kept in the outbox to an erased learner's number go with the learner.
    let ada = crate::sharing::verified(&app, "ada").await;
    as_user(&app, &ada).await;
    app.confirm_with_password().await;
    app.post_form("/account/security/text", &[("phone", "+1 415 555 0100"), ("consent", "true")]).await;
    let bea = crate::sharing::verified(&app, "bea").await;
    as_user(&app, &bea).await;
    app.confirm_with_password().await;
    app.post_form("/account/security/text", &[("phone", "+1 415 555 0199"), ("consent", "true")]).await;
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    let (_, page) = app.get("/staff/texts").await;
    assert!(page.contains("+14155550100") && page.contains("+14155550199"), "{page}");

    as_user(&app, &ada).await;
    let res = app.post_form("/account/privacy/delete", &[("password", PASSWORD), ("confirm", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    run(&app, |conn| {
        diesel::update(erasures::table)
            .set(erasures::run_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
            .execute(conn)
    })
    .await;
    run_scheduled(&app).await;
    let state: String = run(&app, |conn| erasures::table.select(erasures::state).first(conn)).await;
    assert_eq!(state, "done");
    as_user(&app, &grace).await;
    let (_, page) = app.get("/staff/texts").await;
    assert!(!page.contains("+14155550100"), "the erased learner's number is still in the outbox: {page}");
    assert!(page.contains("+14155550199"), "another learner's texts stay");
}
on_both!(texts_to_an_erased_learner_leave_the_outbox, texts_go_with_the_learner);

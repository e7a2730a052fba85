//! ASVS level 2 basics: idle sessions end, passwords have twelve characters
//! at least, sign-up does not reveal which emails are registered, and a
//! `next` value never leads off the site nor to a server error.

use diesel::prelude::*;
use lyceum::db::schema::{sessions, users};
use rocket::http::Status;

use crate::common::{Learner, PASSWORD, TestApp};
use crate::on_both;
use crate::privacy::staff;
use crate::sharing::{as_user, run, user_id, verified};

/// Moves the last use of every session of `username` back by `minutes`.
async fn idle_for(app: &TestApp, username: &str, minutes: i64) {
    let id = user_id(app, username).await;
    run(app, move |conn| {
        diesel::update(sessions::table.filter(sessions::user_id.eq(id)))
            .set(sessions::last_seen_at.eq(lyceum::db::now() - chrono::Duration::minutes(minutes)))
            .execute(conn)
    })
    .await;
}

async fn idle_sessions(app: TestApp) {
    // promise: ASVS 3.3.2 — a staff session unused for 30 minutes ends; a used one does not.
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("grace"));
    idle_for(&app, "grace", 29).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("grace"), "29 idle minutes keep a staff session");
    // That request counted as use: the clock starts again.
    let id = user_id(&app, "grace").await;
    let seen: chrono::NaiveDateTime = run(&app, move |conn| {
        sessions::table.filter(sessions::user_id.eq(id)).select(sessions::last_seen_at).first(conn)
    })
    .await;
    assert!(lyceum::db::now() - seen < chrono::Duration::minutes(2), "the request refreshed the last use");
    idle_for(&app, "grace", 31).await;
    assert_eq!(app.signed_in_as().await, None, "31 idle minutes end a staff session");
    let left: i64 =
        run(&app, move |conn| sessions::table.filter(sessions::user_id.eq(id)).count().get_result(conn)).await;
    assert_eq!(left, 0, "the idle session is gone from the list of devices");

    // A learner without "Remember me": 31 minutes are fine, two hours and a bit are not.
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    idle_for(&app, "ada", 31).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    idle_for(&app, "ada", 121).await;
    assert_eq!(app.signed_in_as().await, None, "a learner's session ends after 120 idle minutes");
    // With "Remember me" the session keeps its longer life.
    app.sign_in(&ada, true).await;
    idle_for(&app, "ada", 24 * 60).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"), "a remembered session outlives idleness");
}
on_both!(asvs_3_3_2_idle_sessions_end, idle_sessions);

async fn idle_configurable(app: TestApp) {
    // promise: the idle limits are configuration.
    let grace = staff(&app).await;
    as_user(&app, &grace).await;
    idle_for(&app, "grace", 6).await;
    assert_eq!(app.signed_in_as().await, None, "a 5-minute staff limit ends a 6-minute idle session");
}
on_both!(asvs_3_3_2_idle_limits_are_configurable, idle_configurable, |c| c.session_idle_minutes_staff = 5);

/// The text of the flash message shown on `path`, if any.
async fn flash_on(app: &TestApp, path: &str) -> Option<String> {
    let (_, page) = app.get(path).await;
    let re = regex::Regex::new(r#"class="flash [^"]*" role="status">([^<]*)<"#).unwrap();
    re.captures(&page).map(|c| c[1].to_string())
}

async fn short_passwords(app: TestApp) {
    // promise: ASVS 2.1.1 — every password that is set has 12 characters at least.
    let eleven = "violet-moon";
    assert_eq!(eleven.chars().count(), 11);
    let res = app.sign_up_with("ada", &[("password", eleven)]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Use at least 12 characters."), "{page}");
    assert!(page.contains("At least 12 characters"), "the hint says so");
    assert!(!page.contains("At least 10"), "no old hint");
    // A common password of any length is still refused.
    let res = app.sign_up_with("ada", &[("password", "password1234")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("commonly used"));

    // Reset.
    let ada = verified(&app, "ada").await;
    app.post_form("/password/forgot", &[("email", &ada.email)]).await;
    let link = app.mailed_link(&ada.email, "/password/reset/").await.expect("a reset link");
    let res = app.post_form(&link, &[("password", eleven)]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("Use at least 12 characters."));
    // Change.
    as_user(&app, &ada).await;
    let (_, settings) = app.get("/account").await;
    assert!(settings.contains("At least 12 characters") && !settings.contains("At least 10"), "the hint says so");
    let res = app.post_form("/account/password", &[("current_password", PASSWORD), ("new_password", eleven)]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("Use at least 12 characters."));
    let changed = Learner { password: eleven.into(), ..ada.clone() };
    app.sign_out().await;
    assert_ne!(app.sign_in(&changed, false).await.status(), Status::SeeOther, "the short password was not set");
    // Twelve characters are enough.
    as_user(&app, &ada).await;
    let res =
        app.post_form("/account/password", &[("current_password", PASSWORD), ("new_password", "violet-moons")]).await;
    assert_eq!(res.status(), Status::SeeOther);
}
on_both!(asvs_2_1_1_passwords_have_twelve_characters_at_least, short_passwords);

async fn signup_enumeration(app: TestApp) {
    // promise: ASVS 2.1 / 3.x — sign-up answers alike whether or not the email is registered.
    let fresh = app.sign_up_with("ada", &[]).await;
    let fresh = (fresh.status(), fresh.headers().get_one("Location").map(str::to_string));
    let fresh_flash = flash_on(&app, "/signin").await;
    assert!(fresh_flash.is_some(), "a fresh sign-up shows a message");

    let taken = app.sign_up_with("ada2", &[("email", "ada@example.org"), ("first_name", "Mallory")]).await;
    let taken = (taken.status(), taken.headers().get_one("Location").map(str::to_string));
    let taken_flash = flash_on(&app, "/signin").await;
    assert_eq!(fresh, taken, "same status and redirect");
    assert_eq!(fresh_flash, taken_flash, "same message");
    let accounts: i64 = run(&app, |conn| {
        users::table.filter(users::email.eq("ada@example.org").or(users::username.eq("ada2"))).count().get_result(conn)
    })
    .await;
    assert_eq!(accounts, 1, "no second account");

    // The owner of the address learns of it by email, with a way in.
    app.run_jobs().await;
    let mails: Vec<_> = lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000)
        .into_iter()
        .filter(|m| m.to == "ada@example.org")
        .collect();
    let notice = mails.iter().find(|m| m.text.contains("already have an account")).expect("an 'already' email");
    assert!(notice.links.iter().any(|l| l.ends_with("/signin")), "{:?}", notice.links);
    assert!(notice.links.iter().any(|l| l.ends_with("/password/forgot")), "{:?}", notice.links);
    assert!(!notice.text.contains("Mallory"), "the stranger's input is not repeated");
    assert_eq!(mails.len(), 2, "the verification of the real sign-up and the notice: {mails:?}");

    // Usernames are public: a taken one still says so.
    let res = app.sign_up_with("ada", &[("email", "other@example.org")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("That username is taken"));
}
on_both!(asvs_2_1_sign_up_does_not_reveal_registered_emails, signup_enumeration);

/// Values of `next`, raw as they appear in a query string, that must never
/// leave the site nor fail.
const ODD_NEXT: &[&str] = &[
    "%00",
    "%2F%00",
    "//evil.example",
    "%2F%2Fevil.example",
    "https://evil.example",
    "https%3A%2F%2Fevil.example%2F",
    "/%5C%5Cevil",
    "%2F%5Cevil",
    "/%5Cevil",
    "%FF%FE",
    "%2F%FF",
    "%0D%0ALocation:%20https://evil.example",
    "/ok%0Aevil",
    "javascript:alert(1)",
    "%",
    "%E2%80%AE",
];

fn long_next() -> String {
    format!("/{}", "a".repeat(10_000))
}

/// A Location that stays on the site.
fn same_site(location: Option<&str>) -> bool {
    location.is_some_and(|l| l.starts_with('/') && !l.starts_with("//") && !l.starts_with("/\\") && !l.contains('\0'))
}

async fn odd_next(app: TestApp) {
    // promise: ASVS 5.1.5 — `next` is a same-site path or ignored; odd values never give a 500.
    let ada = verified(&app, "ada").await;
    let mut values: Vec<String> = ODD_NEXT.iter().map(|v| v.to_string()).collect();
    values.push(long_next());
    for raw in &values {
        let short = &raw[..raw.len().min(40)];
        // Signed out: the form renders.
        let res = app.client.get(format!("/signin?next={raw}")).dispatch().await;
        assert_eq!(res.status(), Status::Ok, "GET /signin?next={short}");
        let page = res.into_string().await.unwrap();
        assert!(!page.contains("evil.example"), "GET /signin?next={short} keeps no foreign target");
        // Sign-in with it.
        let token = app.csrf().await;
        let body = format!(
            "csrf_token={}&login={}&password={}&next={raw}",
            crate::common::encode(&[("t", &token)]).trim_start_matches("t="),
            crate::common::encode(&[("l", &ada.email)]).trim_start_matches("l="),
            crate::common::encode(&[("p", PASSWORD)]).trim_start_matches("p="),
        );
        let res = app.post_raw("/signin", &body).await;
        assert_ne!(res.status(), Status::InternalServerError, "POST /signin next={short}");
        if res.status() == Status::SeeOther {
            let location = res.headers().get_one("Location").map(str::to_string);
            assert!(same_site(location.as_deref()), "POST /signin next={short} → {location:?}");
        } else {
            // A form the parser refused: a clear answer, and the sign-in done plainly instead.
            assert!(res.status().code < 500, "POST /signin next={short}: {}", res.status());
            app.sign_in(&ada, false).await;
        }
        // Signed in: the sign-in page sends on, within the site.
        let res = app.client.get(format!("/signin?next={raw}")).dispatch().await;
        assert_ne!(res.status(), Status::InternalServerError, "GET /signin?next={short} signed in");
        let location = res.headers().get_one("Location").map(str::to_string);
        assert!(same_site(location.as_deref()), "GET /signin?next={short} signed in → {location:?}");
        // Step-up keeps a `next` too.
        let res = app.client.get(format!("/account/security/verify?next={raw}")).dispatch().await;
        assert_eq!(res.status(), Status::Ok, "GET /account/security/verify?next={short}");
        assert!(!res.into_string().await.unwrap().contains("evil.example"));
        let token = app.csrf().await;
        let body = format!(
            "csrf_token={}&code=000000&next={raw}",
            crate::common::encode(&[("t", &token)]).trim_start_matches("t=")
        );
        let res = app.post_raw("/account/security/verify", &body).await;
        assert_ne!(res.status(), Status::InternalServerError, "POST step-up next={short}");
        let location = res.headers().get_one("Location").map(str::to_string);
        assert!(same_site(location.as_deref()), "POST step-up next={short} → {location:?}");
        let token = crate::common::encode(&[("csrf_token", &token)]);
        let res = app.post_raw(&format!("/account/security/verify/text?next={raw}"), &token).await;
        assert_ne!(res.status(), Status::InternalServerError, "POST step-up text next={short}");
        app.sign_out().await;
    }
    // A good `next` still works.
    let res =
        app.post_form("/signin", &[("login", &ada.email), ("password", PASSWORD), ("next", "/courses?q=a%20b")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/courses?q=a%20b"));
}
on_both!(asvs_5_1_5_next_stays_on_the_site_and_never_fails, odd_next);

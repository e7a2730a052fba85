//! Accounts: sign-up, verification, sign-in sessions, reset, settings.

use diesel::prelude::*;
use lyceum::db::schema::{parental_consents, users};
use rocket::http::Status;

use crate::common::{Learner, PASSWORD, TestApp};
use crate::on_both;

async fn signup_fields(app: TestApp) {
    // promise: ACC-1 — the form asks exactly for the listed fields.
    let (status, body) = app.get("/signup").await;
    assert_eq!(status, Status::Ok);
    let re = regex::Regex::new(r#"<input[^>]*name="([a-z_]+)""#).unwrap();
    // The sign-up form itself (the cookie banner has a form of its own).
    let form = body.split(r#"action="/signup""#).nth(1).and_then(|rest| rest.split("</form>").next()).unwrap();
    let mut names: Vec<String> = re.captures_iter(form).map(|c| c[1].to_string()).collect();
    names.retain(|n| n != "csrf_token");
    // The newsletter opt-in (COM-1) is a choice, not personal data: optional and unticked.
    assert!(body.contains(r#"<input type="checkbox" name="marketing" value="true">"#));
    names.retain(|n| n != "marketing");
    names.sort();
    assert_eq!(
        names,
        [
            "accept_terms",
            "company",
            "date_of_birth",
            "email",
            "first_name",
            "last_name",
            "parent_email",
            "password",
            "phone",
            "username"
        ]
    );
    for optional in ["phone", "company"] {
        let tag = regex::Regex::new(&format!(r#"<input[^>]*name="{optional}"[^>]*>"#)).unwrap();
        assert!(!tag.find(&body).unwrap().as_str().contains("required"), "{optional} must be optional");
    }
    // Phone and company may be left out entirely.
    let ada = app.sign_up("ada").await;
    let db = app.db();
    let (phone, company): (Option<String>, Option<String>) = users::table
        .filter(users::username.eq(&ada.username))
        .select((users::phone, users::company))
        .first(&mut db.get().unwrap())
        .unwrap();
    assert_eq!((phone, company), (None, None));
    // Every required field missing: each gets its own error, the values typed come back.
    let res = app.post_form("/signup", &[("first_name", "Grace<script>")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let body = res.into_string().await.unwrap();
    for field in ["last_name", "username", "email", "password", "date_of_birth", "accept_terms"] {
        assert!(
            body.contains(&format!("id=\"e-{field}\"")) || body.contains("accept the terms"),
            "no error for {field}"
        );
    }
    assert!(body.contains("value=\"Grace&lt;script&gt;\""), "typed value is re-rendered, escaped");
}
on_both!(acc_1_signup_asks_for_exactly_the_listed_fields, signup_fields);

async fn password_storage(app: TestApp) {
    // promise: ACC-2 — only an argon2id hash is stored; weak passwords refused.
    let ada = app.sign_up("ada").await;
    let hash: String = users::table
        .filter(users::username.eq(&ada.username))
        .select(users::password_hash)
        .first(&mut app.db().get().unwrap())
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "stored: {hash}");
    assert!(!hash.contains(PASSWORD));
    for weak in ["short", "qwertyuiop", "1234567890", "Password123"] {
        let res = app.sign_up_with("bob", &[("password", weak)]).await;
        assert_eq!(res.status(), Status::UnprocessableEntity, "{weak} should be refused");
        let body = res.into_string().await.unwrap();
        assert!(!body.contains(weak) || weak == "short", "the password is never echoed back");
    }
}
on_both!(acc_2_passwords_are_argon2id_hashes_and_weak_ones_refused, password_storage);

async fn reset_flow(app: TestApp) {
    // promise: ACC-2 — reset by an emailed single-use link; same answer for unknown emails.
    let ada = app.sign_up("ada").await;
    let known = app.post_form("/password/forgot", &[("email", &ada.email)]).await;
    let known_to = known.headers().get_one("Location").map(str::to_string);
    let unknown = app.post_form("/password/forgot", &[("email", "nobody@example.org")]).await;
    assert_eq!(known_to, unknown.headers().get_one("Location").map(str::to_string));
    let link = app.mailed_link(&ada.email, "/password/reset/").await.expect("reset email");
    assert!(app.mailed_link("nobody@example.org", "/").await.is_none());
    let res = app.post_form(&link, &[("password", "a brand new passphrase")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    // Single use.
    let (status, _) = app.get(&link).await;
    assert_eq!(status, Status::SeeOther);
    let again = app.post_form(&link, &[("password", "yet another passphrase")]).await;
    assert_eq!(again.headers().get_one("Location"), Some("/password/forgot"));
    let old = app.sign_in(&ada, false).await;
    assert_eq!(old.status(), Status::UnprocessableEntity);
    let new = Learner { password: "a brand new passphrase".into(), ..ada };
    assert_eq!(app.sign_in(&new, false).await.status(), Status::SeeOther);
}
on_both!(acc_2_password_reset_link_is_single_use, reset_flow);

async fn verification(app: TestApp) {
    // promise: ACC-3 — unverified accounts can sign in but are marked unverified until the link.
    let ada = app.sign_up("ada").await;
    assert_eq!(app.sign_in(&ada, false).await.status(), Status::SeeOther);
    let (_, body) = app.get("/dashboard").await;
    assert!(body.contains("Please confirm your email address"));
    let verified: Option<chrono::NaiveDateTime> = users::table
        .filter(users::username.eq("ada"))
        .select(users::email_verified_at)
        .first(&mut app.db().get().unwrap())
        .unwrap();
    assert!(verified.is_none());
    // Resend issues a new link; the old one stops working.
    let first = app.mailed_link(&ada.email, "/verify-email/").await.unwrap();
    let res = app.post_form("/account/verify/resend", &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let second = app.mailed_link(&ada.email, "/verify-email/").await.unwrap();
    assert_ne!(first, second);
    let res = app.client.get(first).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, body) = app.get("/dashboard").await;
    assert!(body.contains("invalid, used or expired"));
    app.client.get(second).dispatch().await;
    let (_, body) = app.get("/dashboard").await;
    assert!(!body.contains("Please confirm your email address"));
}
on_both!(acc_3_email_is_verified_by_single_use_link, verification);

async fn settings(app: TestApp) {
    // promise: ACC-6 — see and correct account data; the username never changes.
    let ada = app.sign_up("ada").await;
    app.verify(&ada).await;
    app.sign_in(&ada, false).await;
    let res = app
        .post_form(
            "/account/profile",
            &[("first_name", "Augusta"), ("last_name", "King"), ("phone", "+44 20 7946 0958"), ("username", "hacker")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, body) = app.get("/account").await;
    assert!(body.contains("value=\"Augusta\"") && body.contains("+44 20 7946 0958"));
    assert!(body.contains("ada") && body.contains("cannot be changed"));
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    // Invalid input re-renders with errors, nothing saved.
    let res = app.post_form("/account/profile", &[("first_name", ""), ("last_name", "King")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    // Email change takes effect only after the new address confirms.
    let res =
        app.post_form("/account/email", &[("new_email", "augusta@example.net"), ("current_password", PASSWORD)]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, body) = app.get("/account").await;
    assert!(body.contains("ada@example.org"));
    let link =
        app.mailed_link("augusta@example.net", "/account/email/confirm/").await.expect("confirmation to new address");
    assert!(app.mailed_link("ada@example.org", "/account").await.is_some(), "old address is told");
    app.client.get(link).dispatch().await;
    let (_, body) = app.get("/account").await;
    assert!(body.contains("augusta@example.net"));
    // Wrong current password: refused, and said under the form that was
    // sent (both forms on the page ask for the current password).
    let wrong = "That is not your current password.";
    let res = app
        .post_form(
            "/account/password",
            &[("current_password", "not my password"), ("new_password", "another fine passphrase")],
        )
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap_or_default();
    assert_eq!(page.matches(wrong).count(), 1, "{page}");
    assert!(page.contains(&format!(r#"id="e-password-current_password">{wrong}"#)), "{page}");
    let res = app
        .post_form("/account/email", &[("new_email", "ada@example.com"), ("current_password", "not my password")])
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap_or_default();
    assert_eq!(page.matches(wrong).count(), 1, "{page}");
    assert!(page.contains(&format!(r#"id="e-current_password">{wrong}"#)), "{page}");
}
on_both!(acc_6_account_details_can_be_corrected_but_not_the_username, settings);

fn max_age(res: &rocket::local::asynchronous::LocalResponse<'_>, name: &str) -> Option<String> {
    res.headers().get("Set-Cookie").find(|c| c.starts_with(&format!("{name}="))).map(str::to_string)
}

async fn session_cookie(app: TestApp) {
    // promise: ACC-8 — 2 days, 14 with "Remember me", removed on sign-out, nothing readable inside.
    let ada = app.sign_up("ada").await;
    let res = app.sign_in(&ada, false).await;
    let cookie = max_age(&res, "lyceum_session").expect("session cookie");
    assert!(cookie.contains("Max-Age=172800"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    let value = cookie.split(';').next().unwrap();
    for personal in ["ada", "example.org", "Lovelace"] {
        assert!(!value.contains(personal), "cookie carries personal data: {value}");
    }
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    let res = app.sign_out().await;
    let removed = max_age(&res, "lyceum_session").expect("removal cookie");
    assert!(removed.contains("Max-Age=0"), "{removed}");
    assert_eq!(app.signed_in_as().await, None);
    let res = app.sign_in(&ada, true).await;
    let cookie = max_age(&res, "lyceum_session").expect("session cookie");
    assert!(cookie.contains("Max-Age=1209600"), "{cookie}");
}
on_both!(acc_8_session_cookie_lasts_two_days_or_two_weeks, session_cookie);

async fn server_sessions(app: TestApp) {
    // promise: ACC-8 — sessions are server-side: "sign out everywhere" and a password change end others.
    let ada = app.sign_up("ada").await;
    app.sign_in(&ada, false).await;
    let other =
        rocket::local::asynchronous::Client::tracked(lyceum::build_rocket(app.config.clone()).unwrap()).await.unwrap();
    let other = TestApp { client: other, config: app.config.clone(), dir: tempfile::tempdir().unwrap(), pg: None };
    other.sign_in(&ada, false).await;
    assert_eq!(other.signed_in_as().await.as_deref(), Some("ada"));
    app.post_form("/account/sessions/end-others", &[]).await;
    assert_eq!(other.signed_in_as().await, None, "other device signed out");
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"), "this device stays");
    other.sign_in(&ada, false).await;
    let res = app
        .post_form("/account/password", &[("current_password", PASSWORD), ("new_password", "a different passphrase")])
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(other.signed_in_as().await, None, "password change ends other sessions");
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
}
on_both!(acc_8_other_sessions_end_on_request_and_on_password_change, server_sessions);

fn years_ago(years: i32, days_after: i64) -> String {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let date = today.with_year(today.year() - years).unwrap_or(today) + chrono::Duration::days(days_after);
    date.format("%Y-%m-%d").to_string()
}

async fn age_rules(app: TestApp) {
    // promise: ACC-9 — under 13 refused and nothing stored.
    let res = app.sign_up_with("kid", &[("date_of_birth", &years_ago(13, 1))]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("13 and over"));
    let count: i64 = users::table.count().get_result(&mut app.db().get().unwrap()).unwrap();
    assert_eq!(count, 0);
    assert_eq!(app.run_jobs().await, 0, "no email queued");

    // promise: ACC-9 — 13–17 needs a parent's recorded consent before the account is active.
    let res = app.sign_up_with("teen", &[("date_of_birth", &years_ago(15, 0))]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity, "parent email is required");
    let res =
        app.sign_up_with("teen", &[("date_of_birth", &years_ago(15, 0)), ("parent_email", "parent@example.org")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let teen = Learner { username: "teen".into(), email: "teen@example.org".into(), password: PASSWORD.into() };
    app.verify(&teen).await;
    let res = app.sign_in(&teen, false).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("waiting for your parent"));
    let link = app.mailed_link("parent@example.org", "/parent-consent/").await.expect("parent email");
    let (status, body) = app.get(&link).await;
    assert_eq!(status, Status::Ok);
    assert!(body.contains("teen"));
    let res = app.post_form(&link, &[("parent_name", "Pat Parent")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity, "the confirmation box must be ticked");
    let res = app.post_form(&link, &[("parent_name", "Pat Parent"), ("confirm", "true")]).await;
    assert_eq!(res.status(), Status::Ok);
    let (name, confirmed, ip, ua): (Option<String>, Option<chrono::NaiveDateTime>, Option<String>, Option<String>) =
        parental_consents::table
            .select((
                parental_consents::parent_name,
                parental_consents::confirmed_at,
                parental_consents::ip,
                parental_consents::user_agent,
            ))
            .first(&mut app.db().get().unwrap())
            .unwrap();
    assert_eq!(name.as_deref(), Some("Pat Parent"));
    assert!(confirmed.is_some());
    assert_eq!(ip.as_deref(), Some("203.0.113.7"));
    assert!(ua.is_none(), "the test client sends no user agent; a browser's would be recorded");
    assert_eq!(app.sign_in(&teen, false).await.status(), Status::SeeOther);
    assert_eq!(app.signed_in_as().await.as_deref(), Some("teen"));
}
on_both!(acc_9_age_rules_for_children_and_minors, age_rules);

async fn duplicate_accounts(app: TestApp) {
    app.sign_up("ada").await;
    let res = app.sign_up_with("ADA", &[("email", "other@example.org")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("username is taken"));
    // A taken email, in any case, makes no second account; the answer is that of a
    // new account, so it does not reveal who is registered (asvs.rs has the details).
    let res = app.sign_up_with("grace", &[("email", "ADA@example.org")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/").await;
    assert!(!page.contains("Signed in as"));
    let res = app.post_form("/signin", &[("login", "grace"), ("password", crate::common::PASSWORD)]).await;
    assert_ne!(res.status(), Status::SeeOther, "no account grace was made");
}
on_both!(usernames_and_emails_are_unique_ignoring_case, duplicate_accounts);

#[rocket::async_test]
async fn signing_in_returns_to_the_page_asked_for() {
    let app = TestApp::sqlite().await;
    let l = app.sign_up("henrietta").await;
    app.verify(&l).await;
    app.sign_out().await;
    let (status, page) = app.get("/signin?next=%2Fsharing").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains(r#"name="next" value="/sharing""#), "the form carries where to go next");
    let res = app.post_form("/signin", &[("login", &l.email), ("password", &l.password), ("next", "/sharing")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/sharing"));
}

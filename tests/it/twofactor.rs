//! Two-factor sign-in with an authenticator app and recovery codes (ACC-5),
//! step-up before sensitive changes, and rate-limited code entry (SEC-6).

use diesel::prelude::*;
use lyceum::db::schema::{security_events, sessions, totp_credentials};
use rocket::http::Status;

use crate::common::TestApp;
use crate::on_both;
use crate::sharing::{as_user, run, user_id, verified};

/// The code an authenticator app shows `offset` steps of 30 s from now.
fn app_code(secret: &str, offset: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into()).unwrap();
    totp.generate((chrono::Utc::now().timestamp() + offset * 30) as u64)
}

async fn flash_of(app: &TestApp, path: &str) -> String {
    let (_, page) = app.get(path).await;
    let re = regex::Regex::new(r#"class="flash flash-[a-z]+"[^>]*>([^<]+)<"#).unwrap();
    re.captures(&page).map(|c| c[1].to_string()).unwrap_or_default()
}

async fn totp(app: TestApp) {
    // promise: ACC-5 — authenticator-app codes and recovery codes; asked at sign-in and before sensitive changes.
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let id = user_id(&app, "ada").await;
    let (_, page) = app.get("/account/security").await;
    assert!(page.contains("Set up an authenticator app") && page.contains("this device"), "{page}");

    let res = app.post_form("/account/security/app", &[]).await;
    assert_eq!(res.status(), Status::Ok);
    let page = res.into_string().await.unwrap();
    let secret =
        regex::Regex::new(r#"id="totp-secret">([A-Z2-7]+)<"#).unwrap().captures(&page).expect("the key")[1].to_string();
    let qr = regex::Regex::new(r#"src="data:image/png;base64,([^"]+)""#).unwrap().captures(&page).expect("a QR")[1]
        .to_string();
    use base64::Engine;
    // Handlebars writes "=" as a character reference, which the browser reads back.
    let png = base64::engine::general_purpose::STANDARD.decode(qr.replace("&#x3D;", "=")).unwrap();
    assert!(image::load_from_memory(&png).is_ok(), "the QR code is an image");
    // The secret is sealed at rest (SEC-2).
    let raw: String =
        run(&app, move |conn| totp_credentials::table.find(id).select(totp_credentials::secret).first(conn)).await;
    assert!(raw.starts_with("env1:") && !raw.contains(&secret), "{raw}");

    // Bad input: a wrong code does not turn it on.
    let res = app.post_form("/account/security/app/confirm", &[("code", "000000")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account/security"));
    assert!(flash_of(&app, "/account/security").await.contains("That code is not right"));
    let page = app
        .post_form("/account/security/app/confirm", &[("code", &app_code(&secret, 0))])
        .await
        .into_string()
        .await
        .unwrap();
    let codes: Vec<String> = regex::Regex::new(r"<li><code>([A-Z2-9]{5}-[A-Z2-9]{5})</code></li>")
        .unwrap()
        .captures_iter(&page)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(codes.len(), 10, "ten recovery codes, shown once: {page}");

    // Signing in now takes the password and then a code.
    app.sign_out().await;
    let res = app.sign_in(&ada, false).await;
    assert_eq!(res.headers().get_one("Location"), Some("/signin/verify"));
    assert_eq!(app.signed_in_as().await, None, "not signed in on the password alone");
    // The parked sign-in cannot skip the code through another stage.
    let res = app.post_form("/policies/accept", &[("accept", "true")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/signin"));
    assert_eq!(app.signed_in_as().await, None);
    app.sign_in(&ada, false).await;
    // Bad input: wrong, reused and empty codes are refused with a clear message.
    app.post_form("/signin/verify", &[("code", "123456")]).await;
    assert!(flash_of(&app, "/signin/verify").await.contains("not right or has expired"));
    app.post_form("/signin/verify", &[("code", &app_code(&secret, 0))]).await;
    assert!(flash_of(&app, "/signin/verify").await.contains("already used"), "the enrolment code works once");
    app.post_form("/signin/verify", &[("code", "")]).await;
    assert!(flash_of(&app, "/signin/verify").await.contains("Enter the code"));
    assert_eq!(app.signed_in_as().await, None);
    // The next code (the app's clock may run ahead by one step) signs in.
    let res = app.post_form("/signin/verify", &[("code", &app_code(&secret, 1))]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"));
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));

    // A recovery code signs in once.
    app.sign_out().await;
    app.sign_in(&ada, false).await;
    app.post_form("/signin/verify", &[("code", &codes[0].to_lowercase())]).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    app.sign_out().await;
    app.sign_in(&ada, false).await;
    app.post_form("/signin/verify", &[("code", &codes[0])]).await;
    assert!(flash_of(&app, "/signin/verify").await.contains("already used"));
    assert_eq!(app.signed_in_as().await, None);
    app.post_form("/signin/verify", &[("code", &codes[1])]).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));

    // Step-up: ten minutes after the code, a password change asks for a fresh one.
    run(&app, move |conn| {
        diesel::update(sessions::table.filter(sessions::user_id.eq(id)))
            .set(sessions::second_factor_at.eq(lyceum::db::now() - chrono::Duration::minutes(11)))
            .execute(conn)
    })
    .await;
    let change = [("current_password", crate::common::PASSWORD), ("new_password", "a brand new passphrase here")];
    let res = app.post_form("/account/password", &change).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account/security/verify?next=%2Faccount"));
    let res = app.post_form("/account/privacy/export", &[]).await;
    assert!(res.headers().get_one("Location").unwrap().starts_with("/account/security/verify"), "export too");
    app.post_form("/account/security/verify", &[("code", "999999"), ("next", "/account")]).await;
    let res = app.post_form("/account/password", &change).await;
    assert!(res.headers().get_one("Location").unwrap().starts_with("/account/security/verify"), "still not");
    let res = app.post_form("/account/security/verify", &[("code", &codes[2]), ("next", "/account")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account"));
    let res = app.post_form("/account/password", &change).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account"), "changed after the step-up");

    // The security page lists what happened; turning it off needs no code within the step-up window.
    let (_, page) = app.get("/account/security").await;
    for event in ["signed in", "wrong code", "confirmed identity", "authenticator app added"] {
        assert!(page.contains(event), "{event} listed: {page}");
    }
    assert!(page.contains("7 recovery code(s) left"), "three used: {page}");
    app.post_form("/account/security/app/remove", &[]).await;
    let events = run(&app, move |conn| {
        security_events::table.filter(security_events::user_id.eq(id)).count().get_result::<i64>(conn)
    })
    .await;
    assert!(events >= 8);
    app.sign_out().await;
    let ada = crate::common::Learner { password: "a brand new passphrase here".into(), ..ada };
    let res = app.sign_in(&ada, false).await;
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"), "no code once it is off");
}
on_both!(acc_5_authenticator_app_recovery_codes_and_step_up, totp);

#[rocket::async_test]
async fn sec_6_code_entry_is_rate_limited() {
    // promise: SEC-6 — wrong codes count toward a limit; then even a right one waits.
    let app = TestApp::sqlite_with(|c| c.rate_limit_per_minute = 4).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let page = app.post_form("/account/security/app", &[]).await.into_string().await.unwrap();
    let secret = regex::Regex::new(r#"id="totp-secret">([A-Z2-7]+)<"#).unwrap().captures(&page).unwrap()[1].to_string();
    app.post_form("/account/security/app/confirm", &[("code", &app_code(&secret, 0))]).await;
    app.sign_out().await;
    app.sign_in(&ada, false).await;
    let mut limited = false;
    for _ in 0..6 {
        let res = app.post_form("/signin/verify", &[("code", "111111")]).await;
        if res.status() == Status::TooManyRequests {
            limited = true;
            break;
        }
    }
    assert!(limited, "wrong codes are limited");
    let res = app.post_form("/signin/verify", &[("code", &app_code(&secret, 1))]).await;
    assert_eq!(res.status(), Status::TooManyRequests);
    assert_eq!(app.signed_in_as().await, None);
}

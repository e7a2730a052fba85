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

    // Adding a factor needs a fresh step-up: with no factor yet, the password.
    let res = app.post_form("/account/security/app", &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account/security/verify?next=%2Faccount%2Fsecurity"));
    let (_, page) = app.get("/account/security/verify?next=%2Faccount%2Fsecurity").await;
    assert!(page.contains("This change needs your password"), "{page}");
    let res = app
        .post_form("/account/security/verify", &[("password", "not my password"), ("next", "/account/security")])
        .await;
    assert!(res.headers().get_one("Location").unwrap().starts_with("/account/security/verify"));
    app.confirm_with_password().await;
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
    app.confirm_with_password().await;
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

const TWILIO_SID: &str = "AC0000000000000000000000000000test";
const TWILIO_TOKEN: &str = "twilio_auth_token_test";

/// Twilio's signature of a webhook request, computed here independently.
fn twilio_sign(url: &str, fields: &[(&str, &str)]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut sorted = fields.to_vec();
    sorted.sort();
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).unwrap();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn reply(app: &TestApp, body: &str, signature: Option<String>) -> (Status, String) {
    let fields = [("From", "+447700900123"), ("To", "+15005550006"), ("Body", body), ("MessageSid", "SM1")];
    let mut req =
        app.client.post("/sms/inbound").header(rocket::http::ContentType::Form).body(crate::common::encode(&fields));
    if let Some(s) = signature {
        req = req.header(rocket::http::Header::new("X-Twilio-Signature", s));
    }
    let res = req.dispatch().await;
    (res.status(), res.into_string().await.unwrap_or_default())
}

fn signed(body: &str) -> String {
    twilio_sign(
        "http://lyceum.test/sms/inbound",
        &[("From", "+447700900123"), ("To", "+15005550006"), ("Body", body), ("MessageSid", "SM1")],
    )
}

/// The texts the Twilio double was asked to send: (to, body).
fn texts(log: &partner_adapters::test_server::Log) -> Vec<(String, String)> {
    log.lock()
        .unwrap()
        .iter()
        .map(|r| {
            let f: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            (f.get("To").cloned().unwrap_or_default(), f.get("Body").cloned().unwrap_or_default())
        })
        .collect()
}

fn code_in(text: &str) -> String {
    regex::Regex::new(r"code is (\d{6})").unwrap().captures(text).expect("a code")[1].to_string()
}

async fn texts_flow(app: TestApp, log: partner_adapters::test_server::Log) {
    // promise: ACC-5 — codes by text only with an explicit consent, for security only; STOP, HELP and START work.
    use lyceum::db::schema::sms_numbers;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let id = user_id(&app, "ada").await;
    let (_, page) = app.get("/account/security").await;
    assert!(page.contains("name=\"consent\" value=\"true\">"), "the consent box is unticked: {page}");
    app.confirm_with_password().await;
    // Bad input: without the consent, or without a country code, nothing is stored or sent.
    app.post_form("/account/security/text", &[("phone", "+44 7700 900123")]).await;
    assert!(flash_of(&app, "/account/security").await.contains("Tick the box"));
    app.post_form("/account/security/text", &[("phone", "07700 900123"), ("consent", "true")]).await;
    assert!(flash_of(&app, "/account/security").await.contains("country code"));
    assert!(texts(&log).is_empty());
    assert_eq!(run(&app, |conn| sms_numbers::table.count().get_result::<i64>(conn)).await, 0);

    let res = app.post_form("/account/security/text", &[("phone", "+44 7700 900123"), ("consent", "true")]).await;
    assert!(res.into_string().await.unwrap().contains("We texted a code to ••• 23"));
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(sent.path, format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"));
    assert!(sent.header("Authorization").unwrap().starts_with("Basic "));
    let (to, body) = texts(&log)[0].clone();
    assert_eq!(to, "+447700900123");
    // The number is sealed at rest; the consent is recorded.
    let (raw, consent): (String, chrono::NaiveDateTime) = run(&app, move |conn| {
        sms_numbers::table.find(id).select((sms_numbers::phone, sms_numbers::consent_at)).first(conn)
    })
    .await;
    assert!(raw.starts_with("env1:") && !raw.contains("7700900123"), "{raw}");
    assert!((lyceum::db::now() - consent).num_seconds() < 60);
    app.post_form("/account/security/text/confirm", &[("code", "000000")]).await;
    assert!(flash_of(&app, "/account/security").await.contains("not right or has expired"));
    let page = app
        .post_form("/account/security/text/confirm", &[("code", &code_in(&body))])
        .await
        .into_string()
        .await
        .unwrap();
    assert!(page.contains("id=\"recovery-codes\""), "recovery codes come with the first second factor");
    // The learner's copy of their data gives the number back readable (RGT-1), the lookup hash left out.
    let zip =
        run(&app, move |conn| lyceum::privacy::export::build(conn, id, lyceum::db::now()).map_err(|e| e.to_string()))
            .await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut data = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("data.json").unwrap(), &mut data).unwrap();
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    let number = &data["sections"]["text_message_number"][0];
    assert_eq!(number["phone"], "+447700900123");
    assert!(number.get("phone_hash").is_none() && !data.to_string().contains("env1:"));
    assert!(data["sections"]["security_events"].to_string().contains("text_consent_given"));

    // Signing in: the code is texted only when asked for.
    app.sign_out().await;
    let before = texts(&log).len();
    app.sign_in(&ada, false).await;
    let (_, page) = app.get("/signin/verify").await;
    assert!(page.contains("Text me a code"));
    assert_eq!(texts(&log).len(), before, "nothing texted until asked");
    app.post_form("/signin/verify/text", &[]).await;
    let code = code_in(&texts(&log).last().unwrap().1);
    app.post_form("/signin/verify", &[("code", &code)]).await;
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    app.sign_out().await;
    app.sign_in(&ada, false).await;
    app.post_form("/signin/verify", &[("code", &code)]).await;
    assert!(flash_of(&app, "/signin/verify").await.contains("expired or was already used"));

    // Replies: a forged or unsigned one is refused and changes nothing.
    assert_eq!(reply(&app, "STOP", None).await.0, Status::Forbidden);
    assert_eq!(reply(&app, "STOP", Some(signed("HELP"))).await.0, Status::Forbidden);
    let stopped = || {
        run(&app, move |conn| {
            sms_numbers::table.find(id).select(sms_numbers::stopped_at).first::<Option<chrono::NaiveDateTime>>(conn)
        })
    };
    assert!(stopped().await.is_none());
    let (status, xml) = reply(&app, "HELP", Some(signed("HELP"))).await;
    assert_eq!(status, Status::Ok);
    assert!(xml.contains("<Response><Message>Lyceum: texts carry sign-in codes only."), "{xml}");
    assert!(stopped().await.is_none(), "HELP changes nothing");

    let (_, xml) = reply(&app, "Stop", Some(signed("Stop"))).await;
    assert!(xml.contains("no more texts"), "{xml}");
    assert!(stopped().await.is_some());
    // No text goes out after STOP; the account still needs a second factor.
    let before = texts(&log).len();
    app.post_form("/signin/verify/text", &[]).await;
    assert!(flash_of(&app, "/signin/verify").await.contains("You replied STOP"));
    assert_eq!(texts(&log).len(), before);
    assert_eq!(app.signed_in_as().await, None);

    // A text never turns off two-factor sign-in: after START the number is
    // still the account's factor, and the owner was told of both replies.
    let (_, xml) = reply(&app, "START", Some(signed("START"))).await;
    assert!(xml.contains("texts are allowed again"), "{xml}");
    let (confirmed, stop): (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>) = run(&app, move |conn| {
        sms_numbers::table.find(id).select((sms_numbers::confirmed_at, sms_numbers::stopped_at)).first(conn)
    })
    .await;
    assert!(confirmed.is_some() && stop.is_none(), "texts allowed again, the factor kept");
    let res = app.sign_in(&ada, false).await;
    assert_eq!(res.headers().get_one("Location"), Some("/signin/verify"), "still asked for a second factor");
    assert_eq!(app.signed_in_as().await, None);
    let told = app.mailed_subjects(&ada.email).await;
    assert!(told.iter().filter(|s| *s == "A change to how you sign in").count() >= 3, "added, STOP, START: {told:?}");
}

async fn twilio_double() -> (String, partner_adapters::test_server::Log) {
    partner_adapters::test_server::serve(|_, _| {
        partner_adapters::test_server::Reply::new(201, r#"{"sid":"SM1","status":"queued"}"#)
    })
    .await
}

fn configure_twilio(c: &mut lyceum::config::Config, base: &str) {
    c.twilio_api_base = base.to_string();
    c.twilio_account_sid = Some(TWILIO_SID.into());
    c.twilio_auth_token = Some(TWILIO_TOKEN.into());
    c.twilio_from = Some("+15005550006".into());
}

mod acc_5_codes_by_text_need_consent_and_obey_stop_help_start {
    #[rocket::async_test]
    async fn sqlite() {
        let (base, log) = super::twilio_double().await;
        let app = crate::common::TestApp::sqlite_with(|c| super::configure_twilio(c, &base)).await;
        super::texts_flow(app, log).await
    }
    #[rocket::async_test]
    async fn postgres() {
        let (base, log) = super::twilio_double().await;
        if let Some(app) = crate::common::TestApp::postgres_with(|c| super::configure_twilio(c, &base)).await {
            super::texts_flow(app, log).await
        }
    }
}

#[rocket::async_test]
async fn acc_5_without_an_sms_service_texts_wait_in_an_outbox_for_staff() {
    // promise: ACC-5 — the default outbox: texts are kept (number sealed) for staff to read in a demo.
    let app = TestApp::sqlite().await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    app.confirm_with_password().await;
    app.post_form("/account/security/text", &[("phone", "+1 415 555 0100"), ("consent", "true")]).await;
    assert_eq!(app.get("/staff/texts").await.0, Status::Forbidden);
    assert_eq!(reply(&app, "STOP", Some(signed("STOP"))).await.0, Status::NotFound, "no inbound without a service");
    let raw: String = run(&app, |conn| {
        lyceum::db::schema::sms_outbox::table.select(lyceum::db::schema::sms_outbox::phone).first(conn)
    })
    .await;
    assert!(raw.starts_with("env1:"), "{raw}");
    let grace = crate::privacy::staff(&app).await;
    as_user(&app, &grace).await;
    let (_, page) = app.get("/staff/texts").await;
    assert!(page.contains("+14155550100") && page.contains("Your Lyceum code is"), "{page}");
}

//! CSRF, cookies, rate limits, security headers and error documents.

use rocket::http::{Header, Status};

use crate::common::{TestApp, encode};
use crate::on_both;

async fn csrf_everywhere(app: TestApp) {
    // promise: SEC-1 — every state-changing route refuses a missing or wrong CSRF token.
    let ada = app.sign_up("ada").await;
    app.sign_in(&ada, false).await;
    let posts: Vec<String> = app
        .client
        .rocket()
        .routes()
        .filter(|r| r.method == rocket::http::Method::Post)
        // RFC 8058 one-click unsubscribe: mail providers post without a CSRF token;
        // the signed token in the path is the authority (tested in privacy.rs).
        .filter(|r| !r.uri.path().starts_with("/unsubscribe/"))
        // Server-to-server callbacks (payment webhooks, proctoring verdicts, SMS replies) carry
        // no browser session; their HMAC signature is the authority (certificates.rs).
        .filter(|r| {
            !["/payments/stripe/webhook", "/proctoring/callback", "/sms/inbound"].iter().any(|p| r.uri.path() == *p)
        })
        // The SCIM API (RFC 7644) has no cookies: an organization's bearer key is the authority (scim.rs).
        .filter(|r| !r.uri.path().starts_with("/scim/v2/"))
        // So is the partner API (exam results): a partner's bearer key, never a session cookie (exams.rs).
        .filter(|r| !r.uri.path().starts_with("/api/v1/"))
        .map(|r| regex::Regex::new("<[^>]+>").unwrap().replace_all(r.uri.path(), "1").to_string())
        .collect();
    assert!(posts.len() >= 10, "found {} POST routes", posts.len());
    for path in &posts {
        let res = app.post_raw(path, "first_name=x&email=a%40b.org").await;
        assert_eq!(res.status(), Status::Forbidden, "POST {path} without a token");
        let res = app.post_raw(path, "csrf_token=forged&first_name=x").await;
        assert_eq!(res.status(), Status::Forbidden, "POST {path} with a forged token");
    }
    // A token from another browser does not work either.
    let other = TestApp::sqlite().await;
    let foreign = other.csrf().await;
    let res = app
        .post_raw("/account/profile", &encode(&[("csrf_token", &foreign), ("first_name", "X"), ("last_name", "Y")]))
        .await;
    assert_eq!(res.status(), Status::Forbidden);
    // Still signed in and unchanged.
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
}
on_both!(sec_1_every_form_is_csrf_protected, csrf_everywhere);

async fn cookie_flags(app: TestApp) {
    // promise: SEC-1 — cookies are HttpOnly and SameSite; Secure when served over TLS.
    let res = app.client.get("/signin").dispatch().await;
    let cookie = res.headers().get("Set-Cookie").find(|c| c.starts_with("lyceum_csrf=")).unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"), "{cookie}");
    let tls = TestApp::sqlite_with(|c| c.base_url = Some("https://lyceum.example".into())).await;
    let res = tls.client.get("/signin").dispatch().await;
    let cookie = res.headers().get("Set-Cookie").find(|c| c.starts_with("lyceum_csrf=")).unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(res.headers().get_one("Strict-Transport-Security").is_some());
}
on_both!(sec_1_cookies_are_httponly_samesite_and_secure_over_tls, cookie_flags);

async fn rate_limits(app: TestApp) {
    // promise: SEC-6 — sign-in, sign-up, reset and resend are rate-limited with 429 + Retry-After.
    let ada = app.sign_up("ada").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let res = app.post_form("/signin", &[("login", &ada.email), ("password", "wrong password!")]).await;
        statuses.push(res.status());
    }
    assert!(statuses.iter().take(3).all(|s| *s == Status::UnprocessableEntity), "{statuses:?}");
    let res = app.post_form("/signin", &[("login", &ada.email), ("password", "wrong password!")]).await;
    assert_eq!(res.status(), Status::TooManyRequests);
    let retry: u64 = res.headers().get_one("Retry-After").expect("Retry-After").parse().unwrap();
    assert!(retry >= 1);
    assert!(res.into_string().await.unwrap().contains("Too many attempts"));
    // Even the right password is refused while limited: guessing gains nothing.
    let res = app.sign_in(&ada, false).await;
    assert_eq!(res.status(), Status::TooManyRequests);
    for path in ["/password/forgot", "/signup"] {
        let mut last = Status::Ok;
        for _ in 0..5 {
            last = app.post_form(path, &[("email", "x@example.org")]).await.status();
        }
        assert_eq!(last, Status::TooManyRequests, "{path}");
    }
}

async fn limited_app() -> TestApp {
    TestApp::sqlite_with(|c| c.rate_limit_per_minute = 3).await
}

mod sec_6_sign_in_sign_up_and_reset_are_rate_limited {
    #[rocket::async_test]
    async fn sqlite() {
        super::rate_limits(super::limited_app().await).await
    }
    #[rocket::async_test]
    async fn postgres() {
        if let Some(app) = crate::common::TestApp::postgres_with(|c| c.rate_limit_per_minute = 3).await {
            super::rate_limits(app).await
        }
    }
}

/// Posts `fields` to `path` through `client` (another instance of the site)
/// from the address the test browser uses, with that client's CSRF token.
async fn post_through(client: &rocket::local::asynchronous::Client, path: &str, fields: &[(&str, &str)]) -> Status {
    let re = regex::Regex::new(r#"name="csrf_token" value="([^"]+)""#).unwrap();
    let page = client.get("/signin").dispatch().await.into_string().await.unwrap_or_default();
    let token = re.captures(&page).expect("a CSRF token")[1].to_string();
    let mut all: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    client
        .post(path.to_string())
        .header(rocket::http::ContentType::Form)
        .remote(std::net::SocketAddr::from(([203, 0, 113, 7], 4000)))
        .body(encode(&all))
        .dispatch()
        .await
        .status()
}

/// Attempts from one address spread over two instances of one site count
/// together: three a minute means three, not three per process.
async fn limits_hold_across_instances(app: TestApp) {
    let (second, _dir) = app.second_instance().await;
    let fields = [("email", "spread@example.org")];
    let mut answers = Vec::new();
    for i in 0..6 {
        let status = if i % 2 == 0 {
            app.post_form("/password/forgot", &fields).await.status()
        } else {
            post_through(&second, "/password/forgot", &fields).await
        };
        answers.push(status.code);
    }
    assert!(answers[..3].iter().all(|s| *s != 429), "the first three are answered: {answers:?}");
    assert!(answers[3..].iter().all(|s| *s == 429), "the fourth and later are refused on either instance: {answers:?}");
}

mod sec_6_limits_are_shared_by_every_instance {
    #[rocket::async_test]
    async fn sqlite() {
        super::limits_hold_across_instances(super::limited_app().await).await
    }
    #[rocket::async_test]
    async fn postgres() {
        if let Some(app) = crate::common::TestApp::postgres_with(|c| c.rate_limit_per_minute = 3).await {
            super::limits_hold_across_instances(app).await
        }
    }
}

async fn headers_and_errors(app: TestApp) {
    let res = app.client.get("/").dispatch().await;
    let csp = res.headers().get_one("Content-Security-Policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'")
    );
    assert_eq!(res.headers().get_one("X-Content-Type-Options"), Some("nosniff"));
    assert!(res.headers().get_one("Referrer-Policy").is_some());
    assert!(res.headers().get_one("X-Request-Id").is_some());
    assert!(res.headers().get_one("Strict-Transport-Security").is_none(), "no HSTS over plain HTTP");

    let (status, body) = app.get("/no/such/page").await;
    assert_eq!(status, Status::NotFound);
    assert!(body.contains("Page not found") && body.contains("<html"));
    let res = app.get_json("/no/such/page").await;
    assert_eq!(res.status(), Status::NotFound);
    assert_eq!(res.content_type().unwrap().to_string(), "application/problem+json");
    let problem: serde_json::Value = serde_json::from_str(&res.into_string().await.unwrap()).unwrap();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["title"], "Page not found");

    // Signed-out visitors are sent to sign in, then back.
    let res = app.client.get("/account").dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(res.headers().get_one("Location"), Some("/signin?next=%2Faccount"));
    let res = app.client.get("/account").header(Header::new("Accept", "application/json")).dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized);

    // Learners are not staff.
    let ada = app.sign_up("ada").await;
    app.sign_in(&ada, false).await;
    let (status, body) = app.get("/staff").await;
    assert_eq!(status, Status::Forbidden);
    assert!(body.contains("staff only"));
    let (status, _) = app.get("/outbox").await;
    assert_eq!(status, Status::NotFound, "outbox is staff-only outside demo mode");
    // Open redirects are not followed after sign-in.
    app.sign_out().await;
    let res = app
        .post_form("/signin", &[("login", "ada"), ("password", crate::common::PASSWORD), ("next", "//evil.example/")])
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"));
}
on_both!(security_headers_and_error_documents, headers_and_errors);

async fn methods_and_challenges(app: TestApp) {
    // A known path with a method it does not take is 405 with Allow (RFC 9110 §15.5.6), as a page or a problem.
    let res = app.client.delete("/courses").dispatch().await;
    assert_eq!(res.status(), Status::MethodNotAllowed);
    assert_eq!(res.headers().get_one("Allow"), Some("GET"));
    assert!(res.into_string().await.unwrap().contains("Method not allowed"));
    let res = app.client.put("/courses").header(Header::new("Accept", "application/json")).dispatch().await;
    assert_eq!(res.status(), Status::MethodNotAllowed);
    assert_eq!(res.content_type().unwrap().to_string(), "application/problem+json");
    assert_eq!(res.headers().get_one("Allow"), Some("GET"));
    // An unknown path stays 404, and so does a known route that finds nothing.
    assert_eq!(app.client.delete("/no/such/page").dispatch().await.status(), Status::NotFound);
    assert_eq!(app.get("/courses/no-such-course").await.0, Status::NotFound);
    let res = app.client.head("/courses/no-such-course").dispatch().await;
    assert_eq!(res.status(), Status::NotFound, "HEAD is answered by GET routes");

    // Every 401 carries a challenge (RFC 9110 §11.6.1); a rejected key is named so (RFC 6750 §3.1).
    let res = app.client.get("/api/v1/exports/progress").dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized);
    assert_eq!(res.headers().get_one("WWW-Authenticate"), Some(r#"Bearer realm="lyceum""#));
    let res = app
        .client
        .get("/api/v1/exports/progress")
        .header(Header::new("Authorization", "Bearer lyk_nope_nope"))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Unauthorized);
    let challenge = res.headers().get_one("WWW-Authenticate").unwrap_or_default().to_string();
    assert!(
        challenge.starts_with("Bearer realm=\"lyceum\"") && challenge.contains("error=\"invalid_token\""),
        "{challenge}"
    );
    let res = app.client.get("/account").header(Header::new("Accept", "application/json")).dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized);
    assert!(res.headers().get_one("WWW-Authenticate").is_some());
}
on_both!(http_405_with_allow_and_401_with_a_challenge, methods_and_challenges);

/// A form sent from `peer` with forwarding headers of the sender's choosing.
async fn post_from<'a>(
    app: &'a TestApp,
    peer: &str,
    headers: &[(&'static str, &'static str)],
    path: &str,
    fields: &[(&str, &str)],
) -> rocket::local::asynchronous::LocalResponse<'a> {
    let token = app.csrf().await;
    let mut all = vec![("csrf_token", token.as_str())];
    all.extend_from_slice(fields);
    let mut req = app
        .client
        .post(path.to_string())
        .header(rocket::http::ContentType::Form)
        .remote(std::net::SocketAddr::new(peer.parse().unwrap(), 4000));
    for (name, value) in headers {
        req = req.header(Header::new(*name, *value));
    }
    req.body(encode(&all)).dispatch().await
}

/// The address recorded with the newest session.
async fn session_ip(app: &TestApp) -> Option<String> {
    use diesel::prelude::*;
    use lyceum::db::schema::sessions;
    crate::sharing::run(app, |conn| {
        sessions::table.order(sessions::created_at.desc()).select(sessions::ip).first::<Option<String>>(conn)
    })
    .await
}

const SPOOFED: &[(&str, &str)] = &[("X-Real-IP", "6.6.6.6"), ("X-Forwarded-For", "7.7.7.7")];

async fn spoofed_headers(app: TestApp) {
    // The client address is the connection's peer: forwarding headers from anyone else prove nothing.
    let ada = app.sign_up("ada").await;
    app.verify(&ada).await;
    app.sign_out().await;
    let res =
        post_from(&app, "203.0.113.7", SPOOFED, "/signin", &[("login", &ada.email), ("password", &ada.password)]).await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(session_ip(&app).await.as_deref(), Some("203.0.113.7"), "the session records the peer");

    // A new forged address on each try does not escape the per-address limit (3 a minute here).
    let mut last = Status::Ok;
    for (i, forged) in ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5"].into_iter().enumerate() {
        let email = format!("nobody{i}@example.org");
        let headers = [("X-Real-IP", forged), ("X-Forwarded-For", forged)];
        last = post_from(&app, "198.51.100.9", &headers, "/password/forgot", &[("email", &email)]).await.status();
    }
    assert_eq!(last, Status::TooManyRequests, "one address, however it calls itself");
}
mod sec_forwarding_headers_from_untrusted_peers_are_ignored {
    #[rocket::async_test]
    async fn sqlite() {
        super::spoofed_headers(super::limited_app().await).await
    }
    #[rocket::async_test]
    async fn postgres() {
        if let Some(app) = crate::common::TestApp::postgres_with(|c| c.rate_limit_per_minute = 3).await {
            super::spoofed_headers(app).await
        }
    }
}

async fn behind_a_proxy(app: TestApp) {
    // Behind a trusted proxy, the client is the rightmost hop the proxies did not write.
    let ada = app.sign_up("ada").await;
    app.verify(&ada).await;
    app.sign_out().await;
    let login = [("login", ada.email.as_str()), ("password", ada.password.as_str())];
    let chain: &[(&str, &str)] = &[("X-Forwarded-For", "6.6.6.6, 198.51.100.20, 10.0.0.5")];
    post_from(&app, "10.0.0.2", chain, "/signin", &login).await;
    assert_eq!(session_ip(&app).await.as_deref(), Some("198.51.100.20"), "the client's hop, not what it wrote");
    app.sign_out().await;
    post_from(&app, "10.0.0.2", &[("X-Real-IP", "198.51.100.21")], "/signin", &login).await;
    assert_eq!(session_ip(&app).await.as_deref(), Some("198.51.100.21"));
    // The same headers from a peer that is no proxy are ignored.
    app.sign_out().await;
    post_from(&app, "192.0.2.30", chain, "/signin", &login).await;
    assert_eq!(session_ip(&app).await.as_deref(), Some("192.0.2.30"));
}
on_both!(sec_behind_trusted_proxies_the_forwarded_client_counts, behind_a_proxy, |c| c.trusted_proxies =
    vec!["10.0.0.0/8".into()]);

async fn guessing(app: TestApp) {
    // Guesses at one account from many addresses wait longer and longer; the owner is told; a reset still works.
    let ada = app.sign_up("ada").await;
    app.verify(&ada).await;
    app.sign_out().await;
    for i in 0..5 {
        let peer = format!("198.51.100.{i}");
        let res = post_from(&app, &peer, &[], "/signin", &[("login", &ada.email), ("password", "a wrong guess")]).await;
        assert_eq!(res.status(), Status::UnprocessableEntity);
    }
    let right = [("login", ada.email.as_str()), ("password", ada.password.as_str())];
    let res = post_from(&app, "192.0.2.99", &[], "/signin", &right).await;
    assert_eq!(res.status(), Status::TooManyRequests, "even the right password waits, from anywhere");
    assert!(res.headers().get_one("Retry-After").unwrap().parse::<u64>().unwrap() >= 1);
    assert!(app.mailed_subjects(&ada.email).await.iter().any(|s| s == "Failed sign-ins to your account"));
    // The owner's reset by email is another channel: it works, and ends the wait.
    app.post_form("/password/forgot", &[("email", &ada.email)]).await;
    let reset = app.mailed_link(&ada.email, "/password/reset/").await.expect("a reset link");
    app.post_form(&reset, &[("password", "quiet rivers run deep tonight")]).await;
    let res = app.post_form("/signin", &[("login", &ada.email), ("password", "quiet rivers run deep tonight")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"), "signed in after the reset");

    // Second-factor codes: a few wrong ones per window, then even the right one waits.
    let ada = crate::common::Learner { password: "quiet rivers run deep tonight".into(), ..ada };
    let res =
        app.post_form("/account/security/verify", &[("password", &ada.password), ("next", "/account/security")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account/security"));
    let page = app.post_form("/account/security/app", &[]).await.into_string().await.unwrap();
    let secret = regex::Regex::new(r#"id="totp-secret">([A-Z2-7]+)<"#).unwrap().captures(&page).unwrap()[1].to_string();
    let code = |offset: i64| {
        let bytes = totp_rs::Secret::Encoded(secret.clone()).to_bytes().unwrap();
        let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into()).unwrap();
        totp.generate((chrono::Utc::now().timestamp() + offset * 30) as u64)
    };
    app.post_form("/account/security/app/confirm", &[("code", &code(0))]).await;
    app.sign_out().await;
    app.sign_in(&ada, false).await;
    for i in 0..5 {
        let peer = format!("198.51.100.{}", 50 + i);
        post_from(&app, &peer, &[], "/signin/verify", &[("code", "000000")]).await;
        app.sign_in(&ada, false).await;
    }
    let res = post_from(&app, "192.0.2.99", &[], "/signin/verify", &[("code", &code(1))]).await;
    assert_eq!(res.status(), Status::TooManyRequests, "the window's tries are used up");
    assert_eq!(app.signed_in_as().await, None);
    let told = app.mailed_subjects(&ada.email).await;
    assert!(told.iter().any(|s| s == "Someone entered your password but not your second factor"), "{told:?}");
}
on_both!(sec_6_guesses_at_one_account_slow_down_and_the_owner_is_told, guessing);

const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const WINDOWS_FIREFOX: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Signs in again in this browser, as `user_agent` from `ip`: a new session
/// beside the earlier ones.
async fn sign_in_from(app: &TestApp, l: &crate::common::Learner, user_agent: &str, ip: &str) {
    let token = app.csrf().await;
    let body = encode(&[("csrf_token", &token), ("login", &l.email), ("password", &l.password), ("remember", "false")]);
    let res = app
        .client
        .post("/signin")
        .header(rocket::http::ContentType::Form)
        .header(Header::new("User-Agent", user_agent.to_string()))
        .remote(std::net::SocketAddr::new(ip.parse().unwrap(), 4000))
        .body(body)
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::SeeOther);
}

async fn readable_sessions(app: TestApp) {
    let ada = app.sign_up("ada").await;
    app.verify(&ada).await;
    sign_in_from(&app, &ada, IPHONE_SAFARI, "203.0.113.9").await;
    sign_in_from(&app, &ada, WINDOWS_FIREFOX, "2001:0db8:0000:0000:0000:0000:0000:0042").await;
    sign_in_from(&app, &ada, WINDOWS_FIREFOX, "192.0.2.1").await;
    let (status, page) = app.get("/account/security").await;
    assert_eq!(status, Status::Ok);
    let table = page.split("id=\"sessions\"").nth(1).and_then(|t| t.split("</table>").next()).expect("the sessions");
    assert!(!table.contains("Mozilla/5.0"), "no raw user agent: {table}");
    let rows: Vec<&str> = table.split("<tr").skip(2).collect();
    let row = |needle: &str| rows.iter().find(|r| r.contains(needle)).unwrap_or_else(|| panic!("{needle}: {table}"));
    // Browser and system; the country only where the operator's GeoIP file knows the address.
    assert!(row("Safari 17 on iPhone").contains("New Zealand") && row("Safari 17 on iPhone").contains("203.0.113.9"));
    assert!(row("2001:db8::42").contains("Firefox 128 on Windows") && row("2001:db8::42").contains("Germany"));
    let here = row("192.0.2.1");
    assert!(here.contains("Firefox 128 on Windows") && here.contains("this device"), "the current session: {here}");
    assert!(!here.contains("New Zealand") && !here.contains("Germany"), "no invented place: {here}");
    assert!(!here.contains("/end\""), "the current session is not signed out from here");
    // Last seen in the site's date format.
    let today = chrono::Utc::now().naive_utc().format("%e %b %Y").to_string();
    assert!(here.contains(today.trim()), "{here}");

    // Signing out the phone's session.
    let phone = row("Safari 17 on iPhone");
    let end = regex::Regex::new(r#"action="(/account/security/sessions/[^"]+/end)""#).unwrap();
    let action = end.captures(phone).expect("a sign-out button")[1].to_string();
    let res = app.post_form(&action, &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account/security"));
    let (_, page) = app.get("/account/security").await;
    assert!(page.contains("That device is signed out.") && !page.contains("Safari 17 on iPhone"), "{page}");
    assert!(page.contains("Firefox 128 on Windows"));
    // The settings page names sessions the same way.
    let (_, settings) = app.get("/account").await;
    assert!(settings.contains("Firefox 128 on Windows") && !settings.contains("Mozilla/5.0"), "{settings}");
}
on_both!(sessions_are_listed_by_browser_system_place_and_last_seen, readable_sessions, |c| {
    let path = c.data_dir.join("GeoLite2-Country.mmdb");
    crate::privacy::country_database(&path);
    c.geoip_db = Some(path);
});

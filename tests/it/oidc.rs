//! Sign-in with an OpenID Connect provider (ACC-4), against a real provider:
//! panva's `oidc-provider` on 127.0.0.1 (`tests/oidc-provider`, started by
//! `.ci/run`, found through `LYCEUM_TEST_OIDC_ISSUER`). Each test registers its
//! own client there (RFC 7591), walks the provider's login form over HTTP and
//! hands the answer to Lyceum's callback.

use diesel::prelude::*;
use lyceum::accounts::oidc::ProviderConfig;
use lyceum::db::schema::{oidc_links, oidc_pending, security_events, users};
use rocket::http::Status;

use crate::common::{TestApp, every_row_in, service_missing};
use crate::sharing::{as_user, run, user_id, verified};

const LYCEUM: &str = "http://lyceum.test";
const PROVIDER: &str = "testid";

/// A client registered at the test provider.
pub(crate) struct Registered {
    pub issuer: String,
    client_id: String,
    client_secret: String,
}

async fn register() -> Option<Registered> {
    register_for(LYCEUM).await
}

/// Registers a client whose answers come back to `site`'s callback.
pub(crate) async fn register_for(site: &str) -> Option<Registered> {
    let Ok(issuer) = std::env::var("LYCEUM_TEST_OIDC_ISSUER") else {
        service_missing("An OpenID Connect provider", "LYCEUM_TEST_OIDC_ISSUER");
        return None;
    };
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{issuer}/reg"))
        .json(&serde_json::json!({
            "redirect_uris": [format!("{site}/signin/oidc/{PROVIDER}/callback")],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }))
        .send()
        .await
        .expect("the provider answers")
        .json()
        .await
        .expect("a registration");
    Some(Registered {
        issuer: issuer.trim_end_matches('/').to_string(),
        client_id: answer["client_id"].as_str().expect("client_id").into(),
        client_secret: answer["client_secret"].as_str().expect("client_secret").into(),
    })
}

impl Registered {
    pub(crate) fn provider(&self) -> ProviderConfig {
        ProviderConfig {
            id: PROVIDER.into(),
            name: "Test ID".into(),
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
        }
    }

    async fn sqlite(&self) -> TestApp {
        TestApp::sqlite_with(|c| c.oidc_providers = vec![self.provider()]).await
    }

    /// Makes the provider's next token response for this client carry a bad ID token.
    async fn forge_next(&self, kind: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/__test/forge", self.issuer))
            .json(&serde_json::json!({ "client_id": self.client_id, "kind": kind }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "forgery {kind} armed");
    }

    /// Whether the provider still accepts an access token (RFC 7662).
    async fn active(&self, token: &str) -> bool {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["active"].as_bool().unwrap_or(false)
    }
}

/// A person's browser at the provider: its own cookies, stopping where the
/// provider sends it back to Lyceum.
struct AtProvider(reqwest::Client);

impl AtProvider {
    fn new() -> AtProvider {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().host_str() == Some("lyceum.test") { attempt.stop() } else { attempt.follow() }
        });
        AtProvider(reqwest::Client::builder().cookie_store(true).redirect(policy).build().unwrap())
    }

    /// Follows the authorization URL, signs in at the login form as `email`
    /// when asked, and returns the path (with query) the provider sends the
    /// browser back to.
    async fn answer(&self, authorize: &str, email: &str, name: &str, email_verified: bool) -> String {
        let mut res = self.0.get(authorize).send().await.unwrap();
        if !res.status().is_redirection() {
            let page = res.text().await.unwrap();
            let action =
                regex::Regex::new(r#"action="([^"]+)""#).unwrap().captures(&page).expect("a login form")[1].to_string();
            let origin = url::Url::parse(authorize).unwrap().origin().ascii_serialization();
            let mut form = vec![("email", email), ("name", name)];
            if email_verified {
                form.push(("email_verified", "on"));
            }
            res = self.0.post(format!("{origin}{action}")).form(&form).send().await.unwrap();
        }
        assert!(res.status().is_redirection(), "the provider sends the browser back: {}", res.status());
        let location = res.headers()["location"].to_str().unwrap().to_string();
        location.strip_prefix(LYCEUM).unwrap_or_else(|| panic!("back to Lyceum: {location}")).to_string()
    }
}

/// Presses "Sign in with Test ID": the provider URL Lyceum sends the browser to.
async fn press(app: &TestApp, path: &str) -> String {
    let res = app.post_form(path, &[]).await;
    assert_eq!(res.status(), Status::SeeOther, "{path}");
    res.headers().get_one("Location").expect("a redirect").to_string()
}

/// Gives the provider's answer to Lyceum: where Lyceum sends the browser next.
async fn come_back(app: &TestApp, callback: &str) -> String {
    let res = app.client.get(callback.to_string()).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther, "{callback}");
    res.headers().get_one("Location").expect("a redirect").to_string()
}

async fn flash_of(app: &TestApp, path: &str) -> String {
    let (_, page) = app.get(path).await;
    let re = regex::Regex::new(r#"class="flash flash-[a-z]+"[^>]*>([^<]+)<"#).unwrap();
    re.captures(&page).map(|c| c[1].replace("&#x27;", "'")).unwrap_or_default()
}

async fn links_of(app: &TestApp, user: i64) -> Vec<(String, Option<String>, bool)> {
    run(app, move |conn| {
        oidc_links::table
            .filter(oidc_links::user_id.eq(user))
            .select((oidc_links::provider, oidc_links::access_token, oidc_links::confirmed_at.is_not_null()))
            .load(conn)
    })
    .await
}

async fn first_sign_in_creates_an_account(app: TestApp, rp: &Registered) {
    // promise: ACC-4 — only name and email come from the provider; its password is never seen; tokens are sealed.
    let (_, signin) = app.get("/signin").await;
    assert!(signin.contains("Sign in with Test ID"), "a button on the sign-in page");
    let (_, signup) = app.get("/signup").await;
    assert!(signup.contains("Sign up with Test ID"), "and on the sign-up page");

    let browser = AtProvider::new();
    let authorize = press(&app, "/signin/oidc/testid").await;
    let query: std::collections::HashMap<String, String> =
        url::Url::parse(&authorize).unwrap().query_pairs().into_owned().collect();
    assert!(authorize.starts_with(&rp.issuer), "{authorize}");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256", "PKCE");
    assert!(query["state"].len() >= 16 && query["nonce"].len() >= 16, "state and nonce");
    assert_eq!(query["scope"], "openid email profile", "only what name and email need");
    assert!(!authorize.contains("password"));

    let callback = browser.answer(&authorize, "grace@example.org", "Grace Hopper", true).await;
    assert_eq!(come_back(&app, &callback).await, "/signin/oidc/finish");
    let (status, page) = app.get("/signin/oidc/finish").await;
    assert_eq!(status, Status::Ok);
    assert!(
        page.contains("grace@example.org") && page.contains(r#"value="Grace""#) && page.contains(r#"value="Hopper""#)
    );
    assert!(!page.contains(r#"name="password""#), "no password is asked for");
    assert_eq!(app.signed_in_as().await, None);

    // Bad input is answered on the form and loses nothing; the age gate and terms hold (ACC-9).
    let res = app
        .post_form("/signin/oidc/create", &[("first_name", "Grace"), ("last_name", "Hopper"), ("username", "grace")])
        .await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("accept the terms") && page.contains(r#"value="grace""#), "{page}");
    let young = (chrono::Utc::now().date_naive() - chrono::Duration::days(365 * 10)).to_string();
    let fields = [("first_name", "Grace"), ("last_name", "Hopper"), ("username", "grace"), ("accept_terms", "true")];
    let mut too_young = fields.to_vec();
    too_young.push(("date_of_birth", &young));
    let res = app.post_form("/signin/oidc/create", &too_young).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(res.into_string().await.unwrap().contains("13"), "the under-13 page");
    let n: i64 =
        run(&app, |conn| users::table.filter(users::email.eq("grace@example.org")).count().get_result(conn)).await;
    assert_eq!(n, 0, "nothing stored for a child");

    // Again from the provider, then an adult completes the account.
    let authorize = press(&app, "/signin/oidc/testid").await;
    let callback = browser.answer(&authorize, "grace@example.org", "Grace Hopper", true).await;
    assert_eq!(come_back(&app, &callback).await, "/signin/oidc/finish", "the provider remembered her: no login form");
    let mut adult = fields.to_vec();
    adult.push(("date_of_birth", "1986-12-09"));
    let res = app.post_form("/signin/oidc/create", &adult).await;
    assert_eq!(res.status(), Status::SeeOther);
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"));
    assert_eq!(app.signed_in_as().await.as_deref(), Some("grace"));

    let id = user_id(&app, "grace").await;
    let (email, first, last, hash, verified_at): (String, String, String, String, Option<chrono::NaiveDateTime>) =
        run(&app, move |conn| {
            users::table
                .find(id)
                .select((
                    users::email,
                    users::first_name,
                    users::last_name,
                    users::password_hash,
                    users::email_verified_at,
                ))
                .first(conn)
        })
        .await;
    assert_eq!((email.as_str(), first.as_str(), last.as_str()), ("grace@example.org", "Grace", "Hopper"));
    assert!(hash.is_empty(), "no password exists for this account");
    assert!(verified_at.is_some(), "the provider verified the address");
    let links = links_of(&app, id).await;
    assert_eq!(links.len(), 1);
    let sealed = links[0].1.clone().expect("the access token is kept to revoke it later");
    assert!(sealed.starts_with("env1:"), "sealed at rest (SEC-2): {sealed}");

    // The provider also sent a birthdate, phone number, picture and locale: none of it is stored.
    for (table, row) in every_row_in(&app.config) {
        for other in ["1990-04-01", "7946 0123", "/pictures/", "en-GB"] {
            assert!(!row.contains(other), "{other} stored in {table}: {row}");
        }
    }

    // Next time the provider's word is enough (no second factor is set up).
    app.sign_out().await;
    let authorize = press(&app, "/signin/oidc/testid").await;
    let callback = browser.answer(&authorize, "grace@example.org", "Grace Hopper", true).await;
    assert_eq!(come_back(&app, &callback).await, "/dashboard");
    assert_eq!(app.signed_in_as().await.as_deref(), Some("grace"));
    // A password never opens it.
    app.sign_out().await;
    let res = app.post_form("/signin", &[("login", "grace@example.org"), ("password", "")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert_eq!(app.signed_in_as().await, None);

    // Its only way in cannot be unlinked.
    let authorize = press(&app, "/signin/oidc/testid").await;
    come_back(&app, &browser.answer(&authorize, "grace@example.org", "Grace Hopper", true).await).await;
    let (_, page) = app.get("/account/security").await;
    assert!(page.contains("Unlink Test ID") && page.contains("has no password"), "{page}");
    app.post_form("/account/security/providers/testid/unlink", &[]).await;
    assert!(flash_of(&app, "/account/security").await.contains("only way into your account"));
    assert_eq!(links_of(&app, id).await.len(), 1);
}

#[rocket::async_test]
async fn acc_4_first_sign_in_creates_an_account_sqlite() {
    let Some(rp) = register().await else { return };
    first_sign_in_creates_an_account(rp.sqlite().await, &rp).await;
}

#[rocket::async_test]
async fn acc_4_first_sign_in_creates_an_account_postgres() {
    let Some(rp) = register().await else { return };
    let Some(app) = TestApp::postgres_with(|c| c.oidc_providers = vec![rp.provider()]).await else { return };
    first_sign_in_creates_an_account(app, &rp).await;
}

#[rocket::async_test]
async fn acc_4_forged_or_defective_id_tokens_are_refused() {
    // promise: ACC-4 — the ID token's signature, issuer, audience and expiry are checked against the real provider's keys.
    let Some(rp) = register().await else { return };
    let app = rp.sqlite().await;
    let browser = AtProvider::new();
    for kind in ["foreign-key", "tampered", "none", "wrong-audience", "expired", "wrong-issuer"] {
        rp.forge_next(kind).await;
        let authorize = press(&app, "/signin/oidc/testid").await;
        let callback = browser.answer(&authorize, "mallory@example.org", "Mallory", true).await;
        let to = come_back(&app, &callback).await;
        assert_eq!(to, "/signin", "{kind}");
        assert!(flash_of(&app, "/signin").await.contains("could not be verified"), "{kind}");
        assert_eq!(app.signed_in_as().await, None, "{kind}");
        let (status, _) = app.get("/signin/oidc/finish").await;
        assert_eq!(status, Status::SeeOther, "{kind}: nothing found to finish");
    }
    // The same flow without a forgery goes through: the refusals were the token's doing.
    let authorize = press(&app, "/signin/oidc/testid").await;
    let callback = browser.answer(&authorize, "mallory@example.org", "Mallory", true).await;
    assert_eq!(come_back(&app, &callback).await, "/signin/oidc/finish");
    let n: i64 = run(&app, |conn| oidc_links::table.count().get_result(conn)).await;
    assert_eq!(n, 0);
}

#[rocket::async_test]
async fn acc_4_a_wrong_nonce_is_refused() {
    // promise: ACC-4 — an ID token minted for another sign-in (wrong nonce) opens nothing.
    let Some(rp) = register().await else { return };
    let app = rp.sqlite().await;
    let authorize = press(&app, "/signin/oidc/testid").await;
    let mut url = url::Url::parse(&authorize).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_string(), if k == "nonce" { "someone-elses-nonce".to_string() } else { v.to_string() }))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let callback = AtProvider::new().answer(url.as_str(), "eve@example.org", "Eve", true).await;
    assert_eq!(come_back(&app, &callback).await, "/signin");
    assert!(flash_of(&app, "/signin").await.contains("could not be verified"));
    assert_eq!(app.signed_in_as().await, None);
}

#[rocket::async_test]
async fn acc_4_a_replayed_or_foreign_state_is_refused() {
    // promise: ACC-4 — the state is bound to the browser and good once.
    let Some(rp) = register().await else { return };
    let app = rp.sqlite().await;
    let browser = AtProvider::new();
    let authorize = press(&app, "/signin/oidc/testid").await;
    let callback = browser.answer(&authorize, "bob@example.org", "Bob Marley", true).await;

    // Another browser cannot finish this sign-in.
    let other = rp.sqlite().await;
    assert_eq!(come_back(&other, &callback).await, "/signin");
    assert!(flash_of(&other, "/signin").await.contains("could not be completed"));

    assert_eq!(come_back(&app, &callback).await, "/signin/oidc/finish");
    // Replayed, in the same browser: refused.
    assert_eq!(come_back(&app, &callback).await, "/signin");
    assert!(flash_of(&app, "/signin").await.contains("could not be completed"));
    // Replayed with the old state cookie put back: the server-side record is gone too.
    let authorize = press(&app, "/signin/oidc/testid").await;
    let state = url::Url::parse(&authorize).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.to_string();
    let callback = browser.answer(&authorize, "bob@example.org", "Bob Marley", true).await;
    let cookie = app.client.cookies().get_private("lyceum_oidc_state").expect("the state cookie");
    assert_eq!(cookie.value(), state);
    assert_eq!(come_back(&app, &callback).await, "/signin/oidc/finish");
    app.client.cookies().add_private(cookie);
    assert_eq!(come_back(&app, &callback).await, "/signin");
    let left: i64 = run(&app, |conn| oidc_pending::table.count().get_result(conn)).await;
    assert_eq!(left, 0, "each state was used once and removed");
    // A made-up state, and an error from the provider, change nothing.
    assert_eq!(come_back(&app, "/signin/oidc/testid/callback?code=x&state=made-up").await, "/signin");
    let (status, _) = app.get("/signin/oidc/unknown/callback?code=x&state=y").await;
    assert_eq!(status, Status::NotFound);
}

#[rocket::async_test]
async fn acc_4_an_existing_account_is_linked_only_after_proof() {
    // promise: ACC-4 — a provider account with the same email is linked only after the owner proves the account is theirs.
    let Some(rp) = register().await else { return };
    let app = rp.sqlite().await;
    let ada = verified(&app, "ada").await;
    let ada_id = user_id(&app, "ada").await;
    app.sign_out().await;
    let browser = AtProvider::new();

    // The provider has not verified the address: no way to link from here.
    let authorize = press(&app, "/signin/oidc/testid").await;
    let callback = browser.answer(&authorize, &ada.email, "Ada Lovelace", false).await;
    assert_eq!(come_back(&app, &callback).await, "/signin/oidc/finish");
    let (_, page) = app.get("/signin/oidc/finish").await;
    assert!(
        page.contains("has not confirmed that this address is yours") && !page.contains("/signin/oidc/link/password")
    );
    let res = app.post_form("/signin/oidc/link/password", &[("password", &ada.password)]).await;
    assert_eq!(res.status(), Status::Forbidden);
    assert!(links_of(&app, ada_id).await.is_empty());

    // Verified by the provider: the wrong password links nothing, the right one links and signs in.
    let browser = AtProvider::new();
    let authorize = press(&app, "/signin/oidc/testid").await;
    let callback = browser.answer(&authorize, &ada.email, "Ada Lovelace", true).await;
    come_back(&app, &callback).await;
    let (_, page) = app.get("/signin/oidc/finish").await;
    assert!(page.contains("already exists") && page.contains("Your Lyceum password"), "{page}");
    let res = app.post_form("/signin/oidc/link/password", &[("password", "not the password at all")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    assert!(links_of(&app, ada_id).await.is_empty());
    assert_eq!(app.signed_in_as().await, None);
    let res = app.post_form("/signin/oidc/link/password", &[("password", &ada.password)]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/dashboard"));
    assert_eq!(app.signed_in_as().await.as_deref(), Some("ada"));
    assert_eq!(links_of(&app, ada_id).await.len(), 1);
    let kinds: Vec<String> = run(&app, move |conn| {
        security_events::table.filter(security_events::user_id.eq(ada_id)).select(security_events::kind).load(conn)
    })
    .await;
    assert!(kinds.contains(&"provider_linked".to_string()), "{kinds:?}");

    // The other proof: a link emailed to the account.
    let bea = verified(&app, "bea").await;
    let bea_id = user_id(&app, "bea").await;
    app.sign_out().await;
    let browser = AtProvider::new();
    let authorize = press(&app, "/signin/oidc/testid").await;
    come_back(&app, &browser.answer(&authorize, &bea.email, "Bea Arthur", true).await).await;
    let res = app.post_form("/signin/oidc/link/email", &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/signin"));
    let waiting = links_of(&app, bea_id).await;
    assert!(waiting.len() == 1 && !waiting[0].2, "waiting for the emailed proof: {waiting:?}");
    // Not linked until the email's link is followed: the provider alone does not open the account.
    let authorize = press(&app, "/signin/oidc/testid").await;
    assert_eq!(
        come_back(&app, &browser.answer(&authorize, &bea.email, "Bea Arthur", true).await).await,
        "/signin/oidc/finish"
    );
    let link = app.mailed_link(&bea.email, "/signin/oidc/link/").await.expect("a link by email");
    let (status, page) = app.get(&link).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Link Test ID"));
    let res = app.post_form(&link, &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/signin"));
    assert!(links_of(&app, bea_id).await[0].2, "confirmed");
    let res = app.post_form(&link, &[]).await;
    assert_eq!(res.status(), Status::Gone, "the link works once");
    let authorize = press(&app, "/signin/oidc/testid").await;
    assert_eq!(come_back(&app, &browser.answer(&authorize, &bea.email, "Bea Arthur", true).await).await, "/dashboard");
    assert_eq!(app.signed_in_as().await.as_deref(), Some("bea"));
}

#[rocket::async_test]
async fn acc_4_providers_are_linked_and_unlinked_in_settings() {
    // promise: ACC-4 — linking and unlinking in settings; a kept token is sealed and revoked at the provider on unlink.
    let Some(rp) = register().await else { return };
    let app = rp.sqlite().await;
    let cyd = verified(&app, "cyd").await;
    as_user(&app, &cyd).await;
    let id = user_id(&app, "cyd").await;
    let (_, page) = app.get("/account/security").await;
    assert!(page.contains("Link Test ID"), "{page}");

    let browser = AtProvider::new();
    let authorize = press(&app, "/account/security/providers/testid/link").await;
    // Another email at the provider is fine: linking proves nothing about addresses.
    let callback = browser.answer(&authorize, "cy.work@example.org", "Cy Work", true).await;
    assert_eq!(come_back(&app, &callback).await, "/account/security");
    let (_, page) = app.get("/account/security").await;
    assert!(page.contains("Unlink Test ID") && page.contains("cy.work@example.org"), "{page}");
    let links = links_of(&app, id).await;
    let sealed = links[0].1.clone().unwrap();
    let secret = app.config.resolve_secret().unwrap();
    let vault = lyceum::privacy::vault::Vault::new(app.config.encryption_keys.as_deref(), &secret).unwrap();
    let token = vault.open(lyceum::accounts::oidc::ACCESS_TOKEN_FIELD, &sealed).unwrap();
    assert!(!sealed.contains(&token));
    assert!(rp.active(&token).await, "the provider's token works while linked");

    // Signed out, the provider now opens Cy's account.
    app.sign_out().await;
    let authorize = press(&app, "/signin/oidc/testid").await;
    assert_eq!(
        come_back(&app, &browser.answer(&authorize, "cy.work@example.org", "Cy Work", true).await).await,
        "/dashboard"
    );

    // The token kept is the one of the latest sign-in.
    let latest = vault
        .open(lyceum::accounts::oidc::ACCESS_TOKEN_FIELD, &links_of(&app, id).await[0].1.clone().unwrap())
        .unwrap();
    assert_ne!(latest, token);
    assert!(rp.active(&latest).await);

    // Unlinking is allowed (a password remains) and revokes the token at the provider.
    let res = app.post_form("/account/security/providers/testid/unlink", &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/account/security"));
    assert!(links_of(&app, id).await.is_empty());
    assert!(!rp.active(&latest).await, "revoked at the provider (RFC 7009)");
    let (_, page) = app.get("/account/security").await;
    assert!(page.contains("Link Test ID") && page.contains("provider unlinked"), "{page}");
    app.sign_out().await;
    let authorize = press(&app, "/signin/oidc/testid").await;
    assert_eq!(
        come_back(&app, &browser.answer(&authorize, "cy.work@example.org", "Cy Work", true).await).await,
        "/signin/oidc/finish",
        "unlinked: the provider account is a stranger again"
    );
}

#[rocket::async_test]
async fn acc_4_a_provider_does_not_skip_the_second_factor() {
    // promise: ACC-4 — signing in through a provider still asks for the account's second factor (ACC-5).
    let Some(rp) = register().await else { return };
    let app = rp.sqlite().await;
    let dee = verified(&app, "dee").await;
    as_user(&app, &dee).await;
    let browser = AtProvider::new();
    let authorize = press(&app, "/account/security/providers/testid/link").await;
    come_back(&app, &browser.answer(&authorize, &dee.email, "Dee", true).await).await;
    app.confirm_with_password().await;
    let page = app.post_form("/account/security/app", &[]).await.into_string().await.unwrap();
    let secret =
        regex::Regex::new(r#"id="totp-secret">([A-Z2-7]+)<"#).unwrap().captures(&page).expect("the key")[1].to_string();
    let bytes = totp_rs::Secret::Encoded(secret).to_bytes().unwrap();
    let code = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into())
        .unwrap()
        .generate(chrono::Utc::now().timestamp() as u64);
    app.post_form("/account/security/app/confirm", &[("code", &code)]).await;

    app.sign_out().await;
    let authorize = press(&app, "/signin/oidc/testid").await;
    assert_eq!(come_back(&app, &browser.answer(&authorize, &dee.email, "Dee", true).await).await, "/signin/verify");
    assert_eq!(app.signed_in_as().await, None, "not signed in on the provider's word alone");
}

//! Demo mode: seeded accounts shown on the home page, a public outbox.

use rocket::http::Status;

use crate::common::{Learner, TestApp};
use crate::on_both;

#[rocket::async_test]
async fn demo_mode_shows_working_credentials_and_an_open_outbox() {
    let app = TestApp::sqlite_with(|c| c.demo = true).await;
    let (status, home) = app.get("/").await;
    assert_eq!(status, Status::Ok);
    for account in lyceum::demo::accounts() {
        assert!(home.contains(&account.email) && home.contains(&account.password));
    }
    let staff = lyceum::demo::accounts().remove(0);
    let staff = Learner { username: "staff".into(), email: staff.email, password: staff.password };
    assert_eq!(app.sign_in(&staff, false).await.status(), Status::SeeOther);
    let (status, _) = app.get("/staff").await;
    assert_eq!(status, Status::Ok, "the demo staff account is staff");
    let (_, partners) = app.get("/partners").await;
    assert!(partners.contains("Acme Corp") && partners.contains("Education Research Lab"), "demo partners");
    // The demo exam body offers a sitting learners can book.
    let (status, exams) = app.get("/partners/skills-board/exams").await;
    assert_eq!(status, Status::Ok);
    assert!(exams.contains("Certificate exam, online sitting") && exams.contains("0 / 30"), "{exams}");
    app.sign_out().await;
    // The demo sponsor runs Acme Corp, which holds seats to hand out.
    let sponsor = lyceum::demo::accounts().remove(2);
    let sponsor = Learner { username: "sponsor".into(), email: sponsor.email, password: sponsor.password };
    assert_eq!(app.sign_in(&sponsor, false).await.status(), Status::SeeOther);
    let (status, acme) = app.get("/partners/acme").await;
    assert_eq!(status, Status::Ok);
    assert!(acme.contains("10 seats, 10 not yet handed out"), "{acme}");
    app.sign_out().await;
    // The demo learner holds a certificate anyone can verify.
    let learner = lyceum::demo::accounts().remove(1);
    let learner = Learner { username: "learner".into(), email: learner.email, password: learner.password };
    app.sign_in(&learner, false).await;
    let (_, mine) = app.get("/account/certificates").await;
    let code = regex::Regex::new(r#"href="/certificates/([A-Z2-9-]{19})""#).unwrap().captures(&mine).expect(&mine)[1]
        .to_string();
    app.sign_out().await;
    let (status, page) = app.get(&format!("/certificates/{code}")).await;
    assert_eq!(status, Status::Ok);
    assert!(
        page.contains("<strong>Valid.</strong>") && page.contains("Ada Lovelace") && page.contains("Climate"),
        "{page}"
    );
    // Anyone can read the outbox in demo mode and follow a link from it.
    let ada = app.sign_up("ada").await;
    app.run_jobs().await;
    let (status, outbox) = app.get("/outbox").await;
    assert_eq!(status, Status::Ok);
    assert!(outbox.contains("Confirm your email address"));
    let id = regex::Regex::new(r#"href="/outbox/(\d+)""#).unwrap().captures(&outbox).unwrap()[1].to_string();
    let (status, message) = app.get(&format!("/outbox/{id}")).await;
    assert_eq!(status, Status::Ok);
    assert!(message.contains(&ada.email) && message.contains("/verify-email/"));
    // Seeding happens once: a restart on the same database adds nobody.
    let again = lyceum::build_rocket(app.config.clone()).unwrap();
    drop(again);
    let mut conn = app.db().get().unwrap();
    assert!(!lyceum::demo::seed_if_empty(&mut conn, lyceum::blob_store(&app.config).as_ref()).unwrap());
}

#[rocket::async_test]
async fn outside_demo_mode_a_default_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path(), format!("sqlite://{}", dir.path().join("x.db").display()));
    config.secret_key = None;
    let Err(err) = lyceum::build_rocket(config) else { panic!("started with no secret outside demo mode") };
    assert!(err.to_string().contains("LYCEUM_SECRET_KEY"));
}

/// Settings as `Rocket.toml` would give them, loaded the way `Config::load`
/// does but without the process environment, so tests cannot race on it.
fn loaded(toml: &str) -> lyceum::config::Config {
    use rocket::figment::{
        Figment,
        providers::{Format, Toml},
    };
    lyceum::config::Config::from_figment(Figment::from(Toml::string(toml))).expect("config loads")
}

#[test]
fn demo_mode_is_on_by_default_only_on_a_loopback_http_site() {
    let start = loaded("");
    assert!(start.demo && start.demo_is_safe(), "the one-command start shows the demo");
    assert!(loaded(r#"base_url = "http://localhost:8000""#).demo);
    assert!(loaded(r#"base_url = "http://[::1]:8000/""#).demo);
    for unsafe_site in [
        r#"base_url = "https://learn.example.org""#,
        r#"base_url = "https://127.0.0.1:8000""#,
        r#"base_url = "http://learn.example.org""#,
        r#"base_url = "http://127.0.0.1.evil.example""#,
        r#"address = "0.0.0.0""#,
        "address = \"0.0.0.0\"\nbase_url = \"http://127.0.0.1:8000\"",
        r#"address = "192.0.2.10""#,
    ] {
        let config = loaded(unsafe_site);
        assert!(!config.demo, "demo off by default for {unsafe_site}");
        assert!(!config.demo_is_safe(), "{unsafe_site}");
    }
    // Asked for explicitly, it is on (and the server warns at start); asked off, it is off.
    let forced = loaded("demo = true\nbase_url = \"https://learn.example.org\"");
    assert!(forced.demo && !forced.demo_is_safe());
    assert!(!loaded("demo = false").demo);
}

async fn production_site_shows_no_demo(app: TestApp) {
    assert!(!app.config.demo);
    let (status, home) = app.get("/").await;
    assert_eq!(status, Status::Ok);
    for account in lyceum::demo::accounts() {
        assert!(!home.contains(&account.password) && !home.contains(&account.email), "{home}");
    }
    let (status, _) = app.get("/outbox").await;
    assert_eq!(status, Status::NotFound, "no outbox for visitors outside demo mode");
}
on_both!(https_site_without_demo_setting_shows_no_demo, production_site_shows_no_demo, |c| {
    let loaded = crate::demo::loaded(r#"base_url = "https://learn.example.org""#);
    c.base_url = loaded.base_url;
    c.demo = loaded.demo;
});

async fn explicit_demo_on_https_site_shows_it(app: TestApp) {
    assert!(app.config.demo);
    let (_, home) = app.get("/").await;
    let learner = lyceum::demo::accounts().remove(1);
    assert!(home.contains(&learner.password), "{home}");
    let (status, _) = app.get("/outbox").await;
    assert_eq!(status, Status::Ok);
}
on_both!(explicit_demo_on_https_site_is_on, explicit_demo_on_https_site_shows_it, |c| {
    let loaded = crate::demo::loaded("demo = true\nbase_url = \"https://learn.example.org\"");
    c.base_url = loaded.base_url;
    c.demo = loaded.demo;
});

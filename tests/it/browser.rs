//! The main flow in a real headless Chromium, like a person: sign up, follow
//! the verification link from the outbox page, sign in, change settings, sign out.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

use crate::common::{TEST_SECRET, service_missing};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_for(url: &str) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(url).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not come up");
}

/// Waits (up to 5 s) until an element matching `css` contains `needle`:
/// clicks navigate asynchronously, so the old page may still be showing.
async fn until(b: &fantoccini::Client, css: &str, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        if let Ok(el) = b.find(Locator::Css(css)).await
            && let Ok(text) = el.text().await
        {
            if text.contains(needle) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {css} containing {needle:?}; last seen {last:?}");
}

#[rocket::async_test]
async fn a_person_signs_up_verifies_signs_in_changes_settings_and_signs_out() {
    let Ok(chromium) = std::env::var("LYCEUM_TEST_BROWSER") else {
        service_missing("Headless Chromium", "LYCEUM_TEST_BROWSER");
        return;
    };
    let chromedriver = std::env::var("LYCEUM_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut config = crate::common::test_config(dir.path(), format!("sqlite://{}", dir.path().join("b.db").display()));
    config.port = port;
    config.base_url = None;
    config.worker = true;
    config.demo = true;
    config.secret_key = Some(TEST_SECRET.into());
    let rocket = lyceum::build_rocket(config).unwrap();
    let server = tokio::spawn(rocket.launch());
    wait_for(&format!("127.0.0.1:{port}")).await;

    let driver_port = free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    wait_for(&format!("127.0.0.1:{driver_port}")).await;
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                     format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let b = ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("webdriver session");
    let site = format!("http://127.0.0.1:{port}");
    b.set_window_size(1280, 1600).await.unwrap();

    // Sign up.
    b.goto(&format!("{site}/")).await.unwrap();
    b.find(Locator::LinkText("Create account")).await.unwrap().click().await.unwrap();
    for (id, value) in [
        ("f-first_name", "Mary"),
        ("f-last_name", "Somerville"),
        ("f-username", "mary"),
        ("f-email", "mary@example.org"),
        ("f-password", "a quiet library at dawn"),
    ] {
        b.find(Locator::Id(id)).await.unwrap().send_keys(value).await.unwrap();
    }
    b.execute("document.getElementById('f-date_of_birth').value = '1991-03-02';", vec![]).await.unwrap();
    b.find(Locator::Css("input[name=accept_terms]")).await.unwrap().click().await.unwrap();
    if let Ok(path) = std::env::var("LYCEUM_TEST_SCREENSHOTS") {
        std::fs::write(format!("{path}/signup.png"), b.screenshot().await.unwrap()).unwrap();
    }
    b.find(Locator::Css("form[action='/signup'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "We have sent you an email").await;

    // Follow the link from the outbox page (the in-process worker sends it).
    let mut found = false;
    for _ in 0..50 {
        b.goto(&format!("{site}/outbox")).await.unwrap();
        if b.find(Locator::XPath("//a[contains(., 'Confirm your email address')]")).await.is_ok() {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(found, "verification email in the outbox");
    b.find(Locator::XPath("//a[contains(., 'Confirm your email address')]")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Confirm your email address").await;
    b.find(Locator::Css("a[href*='/verify-email/']")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "confirmed").await;

    // Sign in.
    b.find(Locator::Id("f-login")).await.unwrap().send_keys("mary").await.unwrap();
    b.find(Locator::Id("f-password")).await.unwrap().send_keys("a quiet library at dawn").await.unwrap();
    b.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
    let h1 = until(&b, "h1", "Welcome").await;
    if let Ok(path) = std::env::var("LYCEUM_TEST_SCREENSHOTS") {
        std::fs::write(format!("{path}/dashboard.png"), b.screenshot().await.unwrap()).unwrap();
    }
    assert_eq!(h1, "Welcome, Mary");

    // Change settings.
    b.find(Locator::LinkText("Account")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Account settings").await;
    let first = b.find(Locator::Id("f-first_name")).await.unwrap();
    first.clear().await.unwrap();
    first.send_keys("Marie").await.unwrap();
    b.find(Locator::Css("form[action='/account/profile'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "saved").await;
    let value = b.find(Locator::Id("f-first_name")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(value.as_deref(), Some("Marie"));

    // Sign out.
    b.find(Locator::Css("form[action='/signout'] button")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "signed out").await;
    assert!(b.find(Locator::LinkText("Sign in")).await.is_ok());
    b.goto(&format!("{site}/account")).await.unwrap();
    until(&b, "h1", "Sign in").await;
    assert!(b.current_url().await.unwrap().as_str().contains("/signin"));

    b.close().await.unwrap();
    server.abort();
}

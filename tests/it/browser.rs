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

/// The site on a real port (demo mode, in-process worker) and a headless
/// Chromium session; `None` (loudly) when no browser is configured.
struct Browser {
    b: fantoccini::Client,
    site: String,
    server: tokio::task::JoinHandle<Result<rocket::Rocket<rocket::Ignite>, rocket::Error>>,
    config: lyceum::config::Config,
    _driver: Driver,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn start_browser() -> Option<Browser> {
    let Ok(chromium) = std::env::var("LYCEUM_TEST_BROWSER") else {
        service_missing("Headless Chromium", "LYCEUM_TEST_BROWSER");
        return None;
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
    let rocket = lyceum::build_rocket(config.clone()).unwrap();
    let server = tokio::spawn(rocket.launch());
    wait_for(&format!("127.0.0.1:{port}")).await;
    let driver_port = free_port();
    let driver = Driver(
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
    b.set_window_size(1280, 1600).await.unwrap();
    Some(Browser {
        b,
        site: format!("http://127.0.0.1:{port}"),
        server,
        config,
        _driver: driver,
        _dirs: (dir, profile),
    })
}

async fn shot(b: &fantoccini::Client, name: &str) {
    if let Ok(path) = std::env::var("LYCEUM_TEST_SCREENSHOTS") {
        std::fs::write(format!("{path}/{name}.png"), b.screenshot().await.unwrap()).unwrap();
    }
}

#[rocket::async_test]
async fn a_person_signs_up_verifies_signs_in_changes_settings_and_signs_out() {
    // Bound whole: the driver and folders must live until the test ends.
    let Some(browser) = start_browser().await else { return };
    let (b, site) = (browser.b.clone(), browser.site.clone());

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
    shot(&b, "signup").await;
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
    shot(&b, "dashboard").await;
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
    browser.server.abort();
}

/// Correct answers of every quiz of a course, by quiz block id, read from the database.
fn answer_key(
    config: &lyceum::config::Config,
    slug: &str,
) -> Vec<(i64, Vec<(usize, lyceum::learning::content::Question)>)> {
    use lyceum::learning::content::BlockData;
    use lyceum::learning::service;
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let mut conn = db.get().unwrap();
    let course = service::course_by_slug(&mut conn, slug).unwrap();
    let mut key = Vec::new();
    for (_, units) in service::outline(&mut conn, course.id).unwrap() {
        for u in units {
            for b in service::blocks_of(&mut conn, u.id).unwrap() {
                if let BlockData::Quiz(q) = service::block_data(&b).unwrap() {
                    key.push((b.id, q.questions.into_iter().enumerate().collect()));
                }
            }
        }
    }
    key
}

#[rocket::async_test]
async fn a_learner_finds_a_course_by_a_misspelling_and_completes_it() {
    // promise: CRS-1, CRS-2 — in a real browser, from search to completion.
    use lyceum::learning::content::QuestionKind;
    let Some(browser) = start_browser().await else { return };
    let (b, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    let learner = lyceum::demo::accounts().remove(1);
    b.goto(&format!("{site}/signin")).await.unwrap();
    b.find(Locator::Id("f-login")).await.unwrap().send_keys(&learner.email).await.unwrap();
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(&learner.password).await.unwrap();
    b.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Welcome").await;

    // Search with a typo; the demo courses are indexed by the in-process worker.
    let mut found = false;
    for _ in 0..50 {
        b.goto(&format!("{site}/courses?q=pyhton")).await.unwrap();
        if b.find(Locator::LinkText("Introduction to Python")).await.is_ok() {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(found, "a misspelt search finds the course");
    shot(&b, "catalog").await;
    b.find(Locator::LinkText("Introduction to Python")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Introduction to Python").await;
    b.find(Locator::Css("button[name=track][value=audit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "You are enrolled").await;
    let progress = |b: fantoccini::Client| async move {
        b.find(Locator::Id("progress"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap_or_default()
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(progress(b.clone()).await, 0);

    // Work through every unit, answering each quiz correctly.
    let key = answer_key(&config, "intro-python");
    b.find(Locator::LinkText("Start")).await.unwrap().click().await.unwrap();
    let mut last_progress = 0;
    loop {
        until(&b, "h1", "").await;
        for (block, questions) in &key {
            if b.find(Locator::Id(&format!("block-{block}"))).await.is_err() {
                continue;
            }
            for (i, q) in questions {
                match q.kind {
                    QuestionKind::Single | QuestionKind::Multiple => {
                        for c in &q.correct {
                            let css = format!("#block-{block} input[name=q{i}][value='{c}']");
                            let input = b.find(Locator::Css(&css)).await.unwrap();
                            b.execute("arguments[0].click();", vec![serde_json::to_value(&input).unwrap()])
                                .await
                                .unwrap();
                        }
                    }
                    QuestionKind::Numeric => {
                        let css = format!("#block-{block} input[name=q{i}]");
                        b.find(Locator::Css(&css))
                            .await
                            .unwrap()
                            .send_keys(&q.answer.unwrap().to_string())
                            .await
                            .unwrap();
                    }
                    QuestionKind::Text => {
                        let css = format!("#block-{block} input[name=q{i}]");
                        b.find(Locator::Css(&css)).await.unwrap().send_keys(&q.accepted[0]).await.unwrap();
                    }
                }
            }
            let submit = b.find(Locator::Css(&format!("#block-{block} button[type=submit]"))).await.unwrap();
            b.execute("arguments[0].click();", vec![serde_json::to_value(&submit).unwrap()]).await.unwrap();
            until(&b, ".flash", "You scored 100%").await;
        }
        let finish = b.find(Locator::Css("form[action$='/complete'] button")).await.unwrap();
        let last = finish.text().await.unwrap() == "Mark complete";
        // A click by script: what a keyboard or pointer user does, without
        // depending on the layout of a 1280-pixel headless window.
        b.execute("arguments[0].click();", vec![serde_json::to_value(&finish).unwrap()]).await.unwrap();
        if last {
            break;
        }
        until(&b, "h1", "").await;
    }
    // Back on the course page: progress has risen to 100% and the course is complete.
    until(&b, "h2", "Your progress").await;
    let now = progress(b.clone()).await;
    assert!(now > last_progress);
    last_progress = now;
    assert_eq!(last_progress, 100);
    let completed = until(&b, "[data-completed]", "Completed").await;
    assert!(completed.starts_with("Completed"));
    shot(&b, "completed").await;
    b.goto(&format!("{site}/dashboard")).await.unwrap();
    until(&b, ".grid", "Completed").await;
    b.close().await.unwrap();
    browser.server.abort();
}

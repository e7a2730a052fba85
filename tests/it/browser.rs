//! The main flow in a real headless Chromium, like a person: sign up, follow
//! the verification link from the outbox page, sign in, change settings, sign out.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

use crate::common::{TEST_SECRET, every_row_in, service_missing};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) async fn wait_for(url: &str) {
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
    let url = b.current_url().await.map(|u| u.to_string()).unwrap_or_default();
    let h1 = match b.find(Locator::Css("h1")).await {
        Ok(h) => h.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    panic!("no {css} containing {needle:?}; last seen {last:?}, on {url} headed {h1:?}");
}

/// The site on a real port (demo mode, in-process worker) and a headless
/// Chromium session; `None` (loudly) when no browser is configured.
pub(crate) struct Browser {
    pub(crate) b: fantoccini::Client,
    pub(crate) site: String,
    server: tokio::task::JoinHandle<Result<rocket::Rocket<rocket::Ignite>, rocket::Error>>,
    pub(crate) config: lyceum::config::Config,
    chromium: String,
    driver_port: u16,
    _driver: Driver,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// A headless Chromium session with its own profile (so its own cookies):
/// the client, and the profile folder, to be kept until the session ends.
async fn session(chromium: &str, driver_port: u16) -> (fantoccini::Client, tempfile::TempDir) {
    session_with(chromium, driver_port, &[]).await
}

/// [`session`] with more Chromium flags (such as `--force-dark-mode`).
async fn session_with(chromium: &str, driver_port: u16, flags: &[&str]) -> (fantoccini::Client, tempfile::TempDir) {
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                     // The stylesheet scrolls smoothly otherwise, and WebDriver clicks where an element is not yet.
                     "--force-prefers-reduced-motion",
                     // A fake camera, granted without a prompt (the identity check's photo capture).
                     "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                     format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let args = caps["goog:chromeOptions"]["args"].as_array_mut().unwrap();
    args.extend(flags.iter().map(|f| serde_json::json!(f)));
    let b = ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("webdriver session");
    b.set_window_size(1280, 1600).await.unwrap();
    (b, profile)
}

impl Browser {
    /// Another person's browser on the same site: a second session of the same driver.
    async fn another_session(&self) -> (fantoccini::Client, tempfile::TempDir) {
        session(&self.chromium, self.driver_port).await
    }

    /// Another browser on the same site, started with more Chromium flags.
    pub(crate) async fn session_with(&self, flags: &[&str]) -> (fantoccini::Client, tempfile::TempDir) {
        session_with(&self.chromium, self.driver_port, flags).await
    }
}

pub(crate) async fn start_browser() -> Option<Browser> {
    start_browser_with(free_port(), |_| {}).await
}

/// [`start_browser`] on `port` (chosen beforehand, so that services the site
/// talks to can be told its address), with the configuration adjusted by
/// `adjust` before the site is built.
async fn start_browser_with(port: u16, adjust: impl FnOnce(&mut lyceum::config::Config)) -> Option<Browser> {
    let Ok(chromium) = std::env::var("LYCEUM_TEST_BROWSER") else {
        service_missing("Headless Chromium", "LYCEUM_TEST_BROWSER");
        return None;
    };
    let chromedriver = std::env::var("LYCEUM_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::test_config(dir.path(), format!("sqlite://{}", dir.path().join("b.db").display()));
    config.port = port;
    config.base_url = None;
    config.worker = true;
    config.demo = true;
    config.secret_key = Some(TEST_SECRET.into());
    adjust(&mut config);
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
    let (b, profile) = session(&chromium, driver_port).await;
    Some(Browser {
        b,
        site: format!("http://127.0.0.1:{port}"),
        server,
        config,
        chromium,
        driver_port,
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
    // The demo member asks whether to share profile details; the learner declines.
    b.find(Locator::Css("input[name=share][value=no]")).await.unwrap().click().await.unwrap();
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
    // The last unit opens the course-complete page; the course page is a link away.
    until(&b, "h1", "You passed Introduction to Python").await;
    let back = b.find(Locator::LinkText("Back to the course")).await.unwrap();
    b.execute("arguments[0].click();", vec![serde_json::to_value(&back).unwrap()]).await.unwrap();
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

/// A script's answer in the page, as a number.
async fn count(b: &fantoccini::Client, js: &str) -> u64 {
    b.execute(js, vec![]).await.unwrap().as_u64().unwrap_or_else(|| panic!("{js} answers a number"))
}

/// Clicks `el` by script: what a keyboard or pointer user does, whatever the layout.
async fn press(b: &fantoccini::Client, el: fantoccini::elements::Element) {
    b.execute("arguments[0].click();", vec![serde_json::to_value(&el).unwrap()]).await.unwrap();
}

/// Asserts the page fits a phone's width: nothing scrolls sideways.
async fn fits_the_width(b: &fantoccini::Client, what: &str) {
    let (wide, view) =
        (count(b, "return document.documentElement.scrollWidth;").await, count(b, "return window.innerWidth;").await);
    assert!(wide <= view, "{what} is {wide} px wide in a {view} px window");
}

#[rocket::async_test]
async fn a_learner_completes_a_course_through_the_outline_to_the_course_complete_page() {
    // Courseware that guides (issue 30): the outline beside each unit with
    // ticks and position, previous and next, the course-complete page, on a
    // phone-sized window.
    let Some(browser) = start_browser().await else { return };
    let (b, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    sign_in_demo(&b, &site, &lyceum::demo::accounts().remove(1)).await;
    enroll_in_intro_python(&b, &site).await;
    let quizzes = quizzes_of(&config, "intro-python");
    let total = {
        let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
        let mut conn = db.get().unwrap();
        let course = lyceum::learning::service::course_by_slug(&mut conn, "intro-python").unwrap();
        lyceum::learning::service::unit_ids(&mut conn, course.id).unwrap().len()
    };
    assert!(total >= 2, "a course of several units");
    b.set_window_size(390, 844).await.unwrap();
    assert!(count(&b, "return window.innerWidth;").await <= 400, "a phone-sized window");
    b.find(Locator::LinkText("Start")).await.unwrap().click().await.unwrap();
    let ticks = "return document.querySelectorAll('.course-outline li[data-done]').length;";
    for finished in 0..total {
        until(&b, "nav[aria-label=Breadcrumb]", "Introduction to Python").await;
        assert_eq!(count(&b, ticks).await, finished as u64, "a tick on every finished unit");
        until(&b, ".unit-position", &format!("Unit {} of {total}", finished + 1)).await;
        let title = b.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
        let here = b.find(Locator::Css(".course-outline a[aria-current=page]")).await.unwrap().text().await.unwrap();
        assert!(here.contains(&title), "the outline marks {title:?} as the current unit, not {here:?}");
        fits_the_width(&b, &title).await;
        if finished == 1 {
            // Back one unit: it carries its tick; then on through the
            // outline, to the first unit without one.
            let unit = b.current_url().await.unwrap().to_string();
            press(&b, b.find(Locator::Css("a[rel=prev]")).await.unwrap()).await;
            until_left(&b, &unit).await;
            until(&b, ".course-outline li[data-done] a[aria-current=page]", "").await;
            b.execute("document.querySelector('.course-outline').scrollIntoView();", vec![]).await.unwrap();
            shot(&b, "courseware-phone-outline").await;
            let unit = b.current_url().await.unwrap().to_string();
            press(&b, b.find(Locator::Css(".course-outline li:not([data-done]) a")).await.unwrap()).await;
            until_left(&b, &unit).await;
            until(&b, ".unit-position", &format!("Unit {} of {total}", finished + 1)).await;
        }
        for (_, block, questions) in &quizzes {
            if b.find(Locator::Id(&format!("block-{block}"))).await.is_ok() {
                answer_quiz_correctly(&b, *block, questions).await;
                // The result sits beside the quiz, green for a pass.
                until(&b, &format!("#block-{block} .quiz-result.flash-success"), "100%").await;
                assert!(b.find(Locator::Css(&format!("#block-{block} [data-wrong]"))).await.is_err());
            }
        }
        let unit = b.current_url().await.unwrap().to_string();
        press(&b, b.find(Locator::Css("form[action$='/complete'] button")).await.unwrap()).await;
        until_left(&b, &unit).await;
    }
    // The last unit finished: the course-complete page, with the grade, the
    // pass mark and the way to a certificate.
    let h1 = until(&b, "h1", "You passed Introduction to Python").await;
    assert!(h1.starts_with("You passed"));
    until(&b, "[data-passed]", "Passed").await;
    let grade = until(&b, ".result-grade", "pass mark").await;
    assert!(grade.contains("100%"), "{grade}");
    until(&b, "#cert-h", "Certificate").await;
    fits_the_width(&b, "the course-complete page").await;
    b.execute("document.querySelector('h1').scrollIntoView();", vec![]).await.unwrap();
    shot(&b, "courseware-phone-complete").await;
    // Continuing from the dashboard leads back here, not into a finished unit.
    b.goto(&format!("{site}/dashboard")).await.unwrap();
    press(&b, b.find(Locator::LinkText("Completed: see your result")).await.unwrap()).await;
    until(&b, "h1", "You passed Introduction to Python").await;
    assert_eq!(b.current_url().await.unwrap().as_str(), format!("{site}/learn/intro-python/complete"));
    // On a wide screen the outline stands beside the unit.
    b.set_window_size(1280, 1000).await.unwrap();
    b.find(Locator::LinkText("Back to the course")).await.unwrap().click().await.unwrap();
    until(&b, "#outline-h", "Course outline").await;
    b.find(Locator::Css(".unit-list a")).await.unwrap().click().await.unwrap();
    until(&b, "nav[aria-label=Breadcrumb]", "Introduction to Python").await;
    let beside = "const u = document.querySelector('.courseware-unit').getBoundingClientRect(); \
                  const o = document.querySelector('.courseware-outline').getBoundingClientRect(); \
                  return o.left >= u.right && o.top < u.bottom;";
    assert_eq!(b.execute(beside, vec![]).await.unwrap(), serde_json::json!(true), "the outline beside the unit");
    b.execute("document.querySelector('h1').scrollIntoView();", vec![]).await.unwrap();
    shot(&b, "courseware-wide-unit").await;
    b.close().await.unwrap();
    browser.server.abort();
}

/// Someone who signs up in the browser.
struct Person {
    first: &'static str,
    last: &'static str,
    username: &'static str,
    email: &'static str,
    password: &'static str,
}

/// Opens, from the outbox page, the message with `subject` sent to `to`,
/// waiting (up to 10 s) for the in-process worker to send it.
async fn open_mail(b: &fantoccini::Client, site: &str, subject: &str, to: &str) {
    let link = format!("//li[contains(., '{subject}') and contains(., '{to}')]//a[contains(., '{subject}')]");
    for _ in 0..50 {
        b.goto(&format!("{site}/outbox")).await.unwrap();
        if let Ok(a) = b.find(Locator::XPath(&link)).await {
            a.click().await.unwrap();
            until(b, "h1", subject).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no mail {subject:?} to {to} in the outbox");
}

/// Signs up from the home page and confirms the address from the outbox;
/// ends on the sign-in page the confirmation leads to.
async fn sign_up_and_confirm(b: &fantoccini::Client, site: &str, p: &Person) {
    b.goto(&format!("{site}/")).await.unwrap();
    b.find(Locator::LinkText("Create account")).await.unwrap().click().await.unwrap();
    until(b, "h1", "Create your account").await;
    for (id, value) in [
        ("f-first_name", p.first),
        ("f-last_name", p.last),
        ("f-username", p.username),
        ("f-email", p.email),
        ("f-password", p.password),
    ] {
        b.find(Locator::Id(id)).await.unwrap().send_keys(value).await.unwrap();
    }
    b.execute("document.getElementById('f-date_of_birth').value = '1988-06-15';", vec![]).await.unwrap();
    b.find(Locator::Css("input[name=accept_terms]")).await.unwrap().click().await.unwrap();
    b.find(Locator::Css("form[action='/signup'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(b, ".flash", "We have sent you an email").await;
    open_mail(b, site, "Confirm your email address", p.email).await;
    b.find(Locator::Css("a[href*='/verify-email/']")).await.unwrap().click().await.unwrap();
    until(b, ".flash", "confirmed").await;
}

/// Fills in and sends the sign-in form on the page showing it.
async fn sign_in(b: &fantoccini::Client, p: &Person) {
    until(b, "h1", "Sign in").await;
    b.find(Locator::Id("f-login")).await.unwrap().send_keys(p.email).await.unwrap();
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(p.password).await.unwrap();
    b.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
}

/// Waits (up to 5 s) until the browser has left `url`.
async fn until_left(b: &fantoccini::Client, url: &str) {
    for _ in 0..50 {
        if b.current_url().await.unwrap().as_str() != url {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still on {url}");
}

/// `path` fetched from within the page, with the session's cookies, as the
/// person's browser would download it: (status, content type, body).
async fn fetch_in_page(b: &fantoccini::Client, path: &str) -> (u64, String, String) {
    let got = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], { credentials: 'same-origin' })
               .then(async r => done([r.status, r.headers.get('content-type') || '', await r.text()]))
               .catch(e => done([0, '', String(e)]));",
            vec![serde_json::json!(path)],
        )
        .await
        .unwrap();
    (got[0].as_u64().unwrap(), got[1].as_str().unwrap().to_string(), got[2].as_str().unwrap().to_string())
}

/// Operator staff's part, done directly: a sponsor with three seats in the
/// demo course, and `admin` appointed to act for it.
fn staff_sets_up_sponsor(config: &lyceum::config::Config, admin: &str) {
    use diesel::prelude::*;
    use lyceum::consent::{PartnerKind, partners, sponsors};
    use lyceum::db::schema::{course_runs, courses, users};
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let mut pooled = db.get().unwrap();
    let conn: &mut lyceum::db::Conn = &mut pooled;
    let user = |conn: &mut lyceum::db::Conn, name: &str| -> i64 {
        users::table.filter(users::username.eq(name)).select(users::id).first(conn).unwrap()
    };
    let (staff, admin) = (user(conn, "staff"), user(conn, admin));
    let run_id: i64 = course_runs::table
        .inner_join(courses::table)
        .filter(courses::slug.eq("intro-python"))
        .select(course_runs::id)
        .first(conn)
        .unwrap();
    let now = lyceum::db::now();
    let sponsor = partners::create(conn, PartnerKind::Sponsor, "initech", "Initech", None, "hr@initech.example", now)
        .map_err(|e| e.to_string())
        .unwrap();
    let request = sponsors::SeatRequest {
        run_id,
        seats: 3,
        expires_at: now + chrono::Duration::days(30),
        note: "Q1",
        by: Some(staff),
    };
    sponsors::allocate(conn, &sponsor, &request, now).map_err(|e| e.to_string()).unwrap();
    partners::appoint(conn, &sponsor, admin, staff).unwrap();
}

#[rocket::async_test]
async fn shr_2_sponsor_invites_learner_redeems_progresses_then_withdraws_in_a_browser() {
    let Some(browser) = start_browser().await else { return };
    let (s, site) = (browser.b.clone(), browser.site.clone());
    // The learner's own browser, with its own cookies.
    let (l, _profile) = browser.another_session().await;
    let boss = Person {
        first: "Henrietta",
        last: "Leavitt",
        username: "henrietta",
        email: "henrietta@initech.example",
        password: "variable stars of the cepheid kind",
    };
    let learner = Person {
        first: "Katherine",
        last: "Johnson",
        username: "katherine",
        email: "katherine@example.org",
        password: "orbits traced by hand at night",
    };

    // Both have accounts; staff make Initech a sponsor with seats and
    // appoint Henrietta to act for it.
    sign_up_and_confirm(&s, &site, &boss).await;
    sign_up_and_confirm(&l, &site, &learner).await;
    sign_in(&l, &learner).await;
    until(&l, "h1", "Welcome").await;
    staff_sets_up_sponsor(&browser.config, boss.username);

    // The sponsor admin signs in and invites the learner by email.
    sign_in(&s, &boss).await;
    until(&s, "h1", "Welcome").await;
    s.find(Locator::LinkText("Partners")).await.unwrap().click().await.unwrap();
    until(&s, "h1", "Partners").await;
    s.find(Locator::LinkText("Initech")).await.unwrap().click().await.unwrap();
    until(&s, "h1", "Initech").await;
    let seats = until(&s, ".allocation", "Introduction to Python").await;
    assert!(seats.contains("3 seats, 3 not yet handed out"), "{seats}");
    s.find(Locator::Css(".allocation textarea[name=emails]")).await.unwrap().send_keys(learner.email).await.unwrap();
    shot(&s, "sponsor-invites").await;
    s.find(Locator::Css(".allocation form[action$='/invite'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&s, ".flash", "1 invitation(s) sent.").await;
    until(&s, ".allocation", "2 not yet handed out").await;

    // The learner follows the emailed link and sees exactly what the sponsor
    // would see before deciding.
    open_mail(&l, &site, "Initech offers you a place in Introduction to Python", learner.email).await;
    l.find(Locator::Css("a[href*='/redeem?code=']")).await.unwrap().click().await.unwrap();
    until(&l, "h1", "A place in Introduction to Python, sponsored by Initech").await;
    let shown = l.find(Locator::Css(".shared-fields")).await.unwrap().text().await.unwrap();
    for field in ["Your full name", "Your email address", "How much of the course you have completed"] {
        assert!(shown.contains(field), "the offer shows {field:?}: {shown}");
    }
    assert!(!shown.contains("Your grade"), "grades are never offered to a sponsor: {shown}");
    shot(&l, "learner-offer").await;
    l.find(Locator::Css("input[name=share][value=yes]")).await.unwrap().click().await.unwrap();
    l.find(Locator::Css("form[action='/redeem'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&l, ".flash", "Your sponsored place in Introduction to Python is confirmed").await;
    until(&l, "h1", "Introduction to Python").await;

    // The learner completes the first unit, and sees the progress.
    l.find(Locator::LinkText("Start")).await.unwrap().click().await.unwrap();
    until(&l, "nav[aria-label=Breadcrumb]", "Introduction to Python").await;
    let unit = l.current_url().await.unwrap().to_string();
    let finish = l.find(Locator::Css("form[action$='/complete'] button")).await.unwrap();
    // By script, as in the other course test: independent of the window's layout.
    l.execute("arguments[0].click();", vec![serde_json::to_value(&finish).unwrap()]).await.unwrap();
    until_left(&l, &unit).await;
    l.find(Locator::Css("nav[aria-label=Breadcrumb] a")).await.unwrap().click().await.unwrap();
    let done = until(&l, "label[for=progress]", "1 of").await;
    let progress = l.find(Locator::Id("progress")).await.unwrap().attr("value").await.unwrap().unwrap_or_default();
    assert!(progress.parse::<u32>().is_ok_and(|p| p > 0), "{done}: {progress}");

    // The sponsor opens the report: the learner, with that progress.
    s.find(Locator::LinkText("Completion report")).await.unwrap().click().await.unwrap();
    until(&s, "h1", "Completion report").await;
    let rows = until(&s, "#report tbody", learner.email).await;
    // promise: SHR-2 — the sponsor sees the consenting learner's progress in the course.
    assert!(rows.contains("Katherine Johnson") && rows.contains("Introduction to Python"), "{rows}");
    assert!(rows.contains(&format!("{progress} %")), "the report shows {progress} %: {rows}");
    shot(&s, "sponsor-report").await;
    let (status, kind, csv) = fetch_in_page(&s, "/partners/initech/report.csv").await;
    assert_eq!(status, 200, "{csv}");
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert!(csv.contains(learner.email) && csv.contains("Katherine Johnson"), "{csv}");
    assert!(!csv.contains("grade"), "no grade column for sponsors: {csv}");

    // The learner withdraws on the Sharing page.
    l.find(Locator::LinkText("Sharing")).await.unwrap().click().await.unwrap();
    until(&l, "h1", "Sharing").await;
    let consent = until(&l, ".consent[data-partner='Initech']", "Introduction to Python").await;
    assert!(consent.contains("granted"), "{consent}");
    shot(&l, "learner-sharing").await;
    l.find(Locator::Css(".consent[data-partner='Initech'] button.withdraw")).await.unwrap().click().await.unwrap();
    until(&l, ".flash", "Withdrawn. Initech receives nothing new").await;
    let consent = l.find(Locator::Css(".consent[data-partner='Initech']")).await.unwrap().text().await.unwrap();
    assert!(!consent.contains("granted"), "{consent}");
    assert!(l.find(Locator::Css(".consent[data-partner='Initech'] button.withdraw")).await.is_err());

    // promise: SHR-5 — she reads, in plain words on a phone, what Initech received and her withdrawal.
    l.set_window_size(390, 844).await.unwrap();
    let today = chrono::Utc::now().format("%-d %b %Y").to_string();
    let log = until(&l, ".sharing-log-group[data-partner='Initech']", "Initech received your name").await;
    assert!(
        // The report page and its CSV: two disclosures of her record.
        log.contains(&format!("in Introduction to Python twice, last on {today}."))
            && log.contains("with your consent"),
        "{log}"
    );
    assert!(log.contains("You withdrew your consent to share your name, email address"), "{log}");
    assert!(log.contains("Initech receives nothing new about you under it from then on."), "{log}");
    for code in ["learner.", "progress.", "web_form", "sponsorship"] {
        assert!(!log.contains(code), "the log shows the code {code}: {log}");
    }
    // The detail, one click away: the disclosure with its time, fields and basis.
    let summary = l.find(Locator::Css(".sharing-log-group[data-partner='Initech'] details summary")).await.unwrap();
    summary.click().await.unwrap();
    let detail = until(&l, ".sharing-log-group[data-partner='Initech'] .sharing-log-detail", "UTC").await;
    assert!(detail.contains("Your name, email address") && detail.contains("with your consent"), "{detail}");
    fits_the_width(&l, "the Sharing page").await;
    shot(&l, "learner-sharing-log-phone").await;
    l.set_window_size(1280, 1600).await.unwrap();

    // The sponsor's next report and CSV no longer contain the learner.
    s.refresh().await.unwrap();
    let rows = until(&s, "#report tbody", "No learner shares their progress with you yet.").await;
    assert!(!rows.contains(learner.email) && !rows.contains("Katherine"), "{rows}");
    let page = s.source().await.unwrap();
    assert!(!page.contains(learner.email), "nowhere on the report page");
    shot(&s, "sponsor-report-after").await;
    let (status, _, csv) = fetch_in_page(&s, "/partners/initech/report.csv").await;
    assert_eq!(status, 200, "{csv}");
    assert!(!csv.contains(learner.email) && !csv.contains("Katherine"), "{csv}");

    l.close().await.unwrap();
    s.close().await.unwrap();
    browser.server.abort();
}

/// Enrolls the signed-in person in Introduction to Python from its catalog
/// page, declining the demo member's sharing question; ends on the course page.
async fn enroll_in_intro_python(b: &fantoccini::Client, site: &str) {
    b.goto(&format!("{site}/courses/intro-python")).await.unwrap();
    until(b, "h1", "Introduction to Python").await;
    b.find(Locator::Css("input[name=share][value=no]")).await.unwrap().click().await.unwrap();
    b.find(Locator::Css("button[name=track][value=audit]")).await.unwrap().click().await.unwrap();
    until(b, ".flash", "You are enrolled").await;
}

/// The page's HTML source, asserted to name none of `people` by real name or
/// email address (ACC-7): usernames only.
async fn shows_usernames_only(b: &fantoccini::Client, people: &[&Person], what: &str) -> String {
    let html = b.source().await.unwrap();
    let lower = html.to_lowercase();
    for p in people {
        for secret in [p.first, p.last, p.email] {
            assert!(!lower.contains(&secret.to_lowercase()), "{what}: the page shows {secret:?}");
        }
    }
    html
}

/// The XPath of the post (in a thread page) whose text contains `text`.
fn post_with(text: &str) -> String {
    format!(
        "//div[contains(concat(' ', @class, ' '), ' post ')][./div[contains(@class, 'prose')][contains(., '{text}')]]"
    )
}

/// Reloads until the post containing `text` is shown (`true`) or gone
/// (`false`), up to 5 s; returns the page's source.
async fn until_post(b: &fantoccini::Client, text: &str, shown: bool) -> String {
    for _ in 0..25 {
        b.refresh().await.unwrap();
        until(b, "h1", "").await;
        if b.find(Locator::XPath(&post_with(text))).await.is_ok() == shown {
            return b.source().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = b.current_url().await.unwrap();
    panic!("on {url}, the post {text:?} is still {}", if shown { "missing" } else { "shown" });
}

/// A moderator's decision from the moderation queue, on the item whose body
/// contains `text`; ends back in the queue, told what was decided.
async fn decide_in_queue(s: &fantoccini::Client, site: &str, text: &str, action: &str) -> String {
    s.goto(&format!("{site}/forums/moderation")).await.unwrap();
    until(s, "h1", "Moderation queue").await;
    let item =
        format!("//div[contains(@class, 'queue-item')][.//div[contains(@class, 'prose')][contains(., '{text}')]]");
    let shown = s.find(Locator::XPath(&item)).await.unwrap().text().await.unwrap();
    s.find(Locator::XPath(&format!("{item}//button[@value='{action}']"))).await.unwrap().click().await.unwrap();
    let told = match action {
        "approve" => "Approved",
        "reject" => "Rejected",
        "hide" => "Hid",
        _ => "Restored",
    };
    until(s, ".flash", told).await;
    until(s, "h1", "Moderation queue").await;
    shown
}

#[rocket::async_test]
async fn frm_1_frm_3_two_learners_discuss_in_a_course_forum_in_a_browser() {
    let Some(browser) = start_browser().await else { return };
    let (a, site) = (browser.b.clone(), browser.site.clone());
    // Each person's own browser, with its own cookies.
    let (b, _b_profile) = browser.another_session().await;
    let (s, _s_profile) = browser.another_session().await;
    let ann = Person {
        first: "Marguerite",
        last: "Perey",
        username: "francium87",
        email: "marguerite.perey@example.org",
        password: "element eighty-seven glows",
    };
    let ben = Person {
        first: "Rosalind",
        last: "Franklin",
        username: "photo51",
        email: "rosalind.franklin@example.org",
        password: "a helix seen in x-rays",
    };
    let people = [&ann, &ben];
    let question = "Why does range(3) stop before 3?";
    let answer = "The stop value is excluded, so you get 0, 1 and 2.";
    let thanks = "Thanks, that makes len(range(n)) equal to n.";
    let spam = "Cheap watches for sale, write to me privately.";

    // Both sign up, confirm their addresses, sign in and enroll.
    for (browser, p) in [(&a, &ann), (&b, &ben)] {
        sign_up_and_confirm(browser, &site, p).await;
        sign_in(browser, p).await;
        until(browser, "h1", "Welcome").await;
        enroll_in_intro_python(browser, &site).await;
    }
    let staff = lyceum::demo::accounts().remove(0);
    s.goto(&format!("{site}/signin")).await.unwrap();
    until(&s, "h1", "Sign in").await;
    s.find(Locator::Id("f-login")).await.unwrap().send_keys(&staff.email).await.unwrap();
    s.find(Locator::Id("f-password")).await.unwrap().send_keys(&staff.password).await.unwrap();
    s.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&s, "h1", "Welcome").await;

    // Ann opens the course forum from the course page and starts a thread.
    a.find(Locator::LinkText("Course forum")).await.unwrap().click().await.unwrap();
    until(&a, "#new-thread h2", "Start a thread").await;
    let forum = a.current_url().await.unwrap().to_string();
    assert!(forum.contains("/forums/course-intro-python"), "{forum}");
    until(&a, "main", "No threads yet. Start the first one.").await;
    shows_usernames_only(&a, &people, "Ann's empty forum").await;
    a.find(Locator::Css("#new-thread input[name=title]"))
        .await
        .unwrap()
        .send_keys("Where does range stop?")
        .await
        .unwrap();
    a.find(Locator::Css("#new-thread textarea[name=body]")).await.unwrap().send_keys(question).await.unwrap();
    a.find(Locator::Css("#new-thread button[type=submit]")).await.unwrap().click().await.unwrap();
    // promise: FRM-3 — a first post waits for a moderator, shown so to its author only.
    until(&a, ".flash", "Your first post waits for a moderator").await;
    until(&a, "h1", "Where does range stop?").await;
    let thread = a.current_url().await.unwrap().as_str().split('#').next().unwrap().to_string();
    let opening = a.find(Locator::XPath(&post_with(question))).await.unwrap().text().await.unwrap();
    assert!(opening.contains("waiting for a moderator") && opening.contains(ann.username), "{opening}");
    shot(&a, "forum-first-post-waits").await;
    shows_usernames_only(&a, &people, "Ann's waiting thread").await;
    a.goto(&forum).await.unwrap();
    let row = until(&a, "tr.thread-row", "Where does range stop?").await;
    assert!(row.contains("waiting for a moderator"), "{row}");
    shows_usernames_only(&a, &people, "Ann's forum with her waiting thread").await;

    // Ben finds the forum from the Forums page: the waiting thread is not there,
    // nor at its address.
    b.find(Locator::LinkText("Forums")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Forums").await;
    b.find(Locator::Css("a[href^='/forums/course-intro-python']")).await.unwrap().click().await.unwrap();
    until(&b, "#new-thread h2", "Start a thread").await;
    assert_eq!(b.current_url().await.unwrap().as_str(), forum);
    // promise: FRM-3 — others do not see a waiting post.
    let html = shows_usernames_only(&b, &people, "Ben's forum before approval").await;
    assert!(!html.contains("Where does range stop?") && !html.contains(ann.username), "the waiting thread is hidden");
    // At its address, Ben is told that it waits for a moderator, and nothing of it.
    b.goto(&thread).await.unwrap();
    until(&b, "h1", "This thread waits for a moderator").await;
    let html = b.source().await.unwrap();
    assert!(!html.contains(question) && !html.contains("Where does range stop?"), "not at its address either");

    // Staff approve Ann's post from the moderation queue.
    s.find(Locator::LinkText("Forums")).await.unwrap().click().await.unwrap();
    until(&s, "h1", "Forums").await;
    s.find(Locator::LinkText("Moderation queue")).await.unwrap().click().await.unwrap();
    until(&s, "h1", "Moderation queue").await;
    shot(&s, "forum-moderation-queue").await;
    shows_usernames_only(&s, &people, "the moderation queue").await;
    let item = decide_in_queue(&s, &site, question, "approve").await;
    assert!(item.contains(ann.username) && item.contains("waiting"), "{item}");
    // Back in the queue, which no longer holds the approved post.
    let flash = until(&s, ".flash", "Approved").await;
    assert!(flash.contains("Where does range stop?"), "{flash}");
    assert!(!s.source().await.unwrap().contains(question), "the queue moved on");

    // Now Ben sees the thread, under Ann's username, and replies: his first
    // post waits in turn.
    b.goto(&forum).await.unwrap();
    let row = until(&b, "tr.thread-row", "Where does range stop?").await;
    assert!(row.contains(ann.username) && !row.contains("waiting"), "{row}");
    shows_usernames_only(&b, &people, "Ben's forum after approval").await;
    b.find(Locator::LinkText("Where does range stop?")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Where does range stop?").await;
    let opening = b.find(Locator::XPath(&post_with(question))).await.unwrap().text().await.unwrap();
    assert!(opening.contains(ann.username) && !opening.contains("waiting"), "{opening}");
    b.find(Locator::Css("#reply textarea[name=body]")).await.unwrap().send_keys(answer).await.unwrap();
    b.find(Locator::Css("#reply button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "Your first post waits for a moderator").await;
    let mine = b.find(Locator::XPath(&post_with(answer))).await.unwrap().text().await.unwrap();
    assert!(mine.contains("waiting for a moderator"), "{mine}");
    shows_usernames_only(&b, &people, "Ben's thread with his waiting reply").await;
    // promise: FRM-3 — Ann does not see Ben's reply until a moderator approves it.
    a.goto(&thread).await.unwrap();
    until(&a, "h1", "Where does range stop?").await;
    until(&a, "#replies-h + p.muted", "No replies yet").await;
    assert!(!a.source().await.unwrap().contains(answer), "Ben's waiting reply is hidden from Ann");
    decide_in_queue(&s, &site, answer, "approve").await;
    let html = until_post(&a, answer, true).await;
    assert!(!html.contains("waiting for a moderator"), "nothing waits any more");
    shows_usernames_only(&a, &people, "Ann's thread with Ben's reply").await;

    // Ann, approved once, is trusted: her reply appears at once for Ben.
    a.find(Locator::Css("#reply textarea[name=body]")).await.unwrap().send_keys(thanks).await.unwrap();
    a.find(Locator::Css("#reply button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&a, ".flash", "Posted.").await;
    b.goto(&thread).await.unwrap();
    until(&b, "h1", "Where does range stop?").await;
    // promise: FRM-3 — once approved, an author's later posts appear at once.
    let reply = b.find(Locator::XPath(&post_with(thanks))).await.unwrap().text().await.unwrap();
    assert!(reply.contains(ann.username) && !reply.contains("waiting"), "{reply}");
    // Ben upvotes it: the button submits the page's one upvote form to that post.
    b.find(Locator::XPath(&format!("{}//button[.='Upvote']", post_with(thanks)))).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "Upvoted.").await;
    let reply = b.find(Locator::XPath(&post_with(thanks))).await.unwrap().text().await.unwrap();
    assert!(reply.contains("1 upvote(s)") && reply.contains("Take back upvote"), "{reply}");
    shot(&b, "forum-thread").await;
    shows_usernames_only(&b, &people, "Ben's thread with Ann's reply").await;
    // Ann's username leads to her profile, which shows no more.
    b.find(Locator::XPath(&format!("{}//a[.='{}']", post_with(thanks), ann.username)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&b, "h1", ann.username).await;
    shows_usernames_only(&b, &people, "Ann's profile as Ben sees it").await;

    // Ben, trusted too, posts something off-topic; it appears at once, and
    // Ann reports it. Her report, as a trusted author's, hides it at once.
    b.goto(&thread).await.unwrap();
    until(&b, "h1", "Where does range stop?").await;
    b.find(Locator::Css("#reply textarea[name=body]")).await.unwrap().send_keys(spam).await.unwrap();
    b.find(Locator::Css("#reply button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "Posted.").await;
    until_post(&a, spam, true).await;
    let reported = post_with(spam);
    a.find(Locator::XPath(&format!("{reported}//a[.='Report']"))).await.unwrap().click().await.unwrap();
    until(&a, "h1", "Report a post").await;
    a.find(Locator::Css("input[name=reason]"))
        .await
        .unwrap()
        .send_keys("Selling watches, not about the course")
        .await
        .unwrap();
    shot(&a, "forum-report").await;
    a.find(Locator::XPath("//form[contains(@action, '/report')]//button")).await.unwrap().click().await.unwrap();
    until(&a, ".flash", "Reported. The post is hidden until a moderator looks at it.").await;
    assert!(a.find(Locator::XPath(&reported)).await.is_err(), "gone from Ann's page");
    shows_usernames_only(&a, &people, "Ann's thread after her report").await;
    // Ben, its author, still sees it, marked hidden; the rest of the discussion stays.
    let html = until_post(&b, spam, true).await;
    let own = b.find(Locator::XPath(&post_with(spam))).await.unwrap().text().await.unwrap();
    assert!(own.contains("others do not see it"), "{own}");
    assert!(html.contains(answer) && html.contains(thanks), "the other posts stay");
    shows_usernames_only(&b, &people, "Ben's thread after the report").await;
    shot(&b, "forum-after-report").await;

    // The moderators find it hidden in their queue, with the reason.
    s.goto(&format!("{site}/forums/moderation")).await.unwrap();
    let item = until(&s, ".queue-item", spam).await;
    assert!(item.contains("hidden") && item.contains("Reported: Selling watches, not about the course"), "{item}");
    assert!(item.contains(ben.username), "{item}");
    shows_usernames_only(&s, &people, "the moderation queue with the report").await;
    shot(&s, "forum-moderation-report").await;

    a.close().await.unwrap();
    b.close().await.unwrap();
    s.close().await.unwrap();
    browser.server.abort();
}

#[rocket::async_test]
async fn frm_5_a_forum_post_with_a_photo_serves_it_without_its_exif_in_a_browser() {
    // promise: FRM-5 — in a real browser: a learner attaches a phone photo
    // (EXIF with camera, serial number and GPS position) to a forum post; the
    // post shows it with her description, and the bytes the page loads carry
    // none of that metadata. A moderator approves it from the queue and is
    // back in the queue.
    use crate::forums::{PHOTO_SECRETS, holds, jpeg_markers, jpeg_with_exif};
    let Some(browser) = start_browser().await else { return };
    let (a, site) = (browser.b.clone(), browser.site.clone());
    let (s, _s_profile) = browser.another_session().await;
    let ines = Person {
        first: "Inès",
        last: "Ferreira",
        username: "tidewatcher",
        email: "ines.ferreira@example.org",
        password: "low tide at the old harbour",
    };
    sign_up_and_confirm(&a, &site, &ines).await;
    sign_in(&a, &ines).await;
    until(&a, "h1", "Welcome").await;
    enroll_in_intro_python(&a, &site).await;

    let photo = jpeg_with_exif(1200, 900);
    assert!(jpeg_markers(&photo).contains(&0xE1) && PHOTO_SECRETS.iter().all(|x| holds(&photo, x)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("IMG_2041.jpg");
    std::fs::write(&path, &photo).unwrap();

    a.goto(&format!("{site}/learn/intro-python")).await.unwrap();
    a.find(Locator::LinkText("Course forum")).await.unwrap().click().await.unwrap();
    until(&a, "#new-thread h2", "Start a thread").await;
    let hint = a.find(Locator::Id("f-body-hint")).await.unwrap().text().await.unwrap();
    assert!(hint.contains("Images from other sites are not shown"), "{hint}");
    a.find(Locator::Css("#new-thread input[name=title]"))
        .await
        .unwrap()
        .send_keys("Loops, seen from the pier")
        .await
        .unwrap();
    a.find(Locator::Css("#new-thread textarea[name=body]"))
        .await
        .unwrap()
        .send_keys("The boats go round like a for loop.")
        .await
        .unwrap();
    a.find(Locator::Id("f-image")).await.unwrap().send_keys(path.to_str().unwrap()).await.unwrap();
    a.find(Locator::Id("f-image-alt")).await.unwrap().send_keys("Boats circling a harbour at low tide").await.unwrap();
    a.find(Locator::Css("#new-thread button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&a, ".flash", "Your first post waits for a moderator").await;
    until(&a, "h1", "Loops, seen from the pier").await;
    let opening = a.find(Locator::XPath(&post_with("like a for loop"))).await.unwrap();
    let text = opening.text().await.unwrap();
    assert!(text.contains("Only you and the moderators see this post for now"), "{text}");
    let img = opening.find(Locator::Css(".post-images img")).await.unwrap();
    assert_eq!(img.attr("alt").await.unwrap().as_deref(), Some("Boats circling a harbour at low tide"));
    let src = img.attr("src").await.unwrap().unwrap();
    assert!(src.starts_with("/forums/images/"), "{src}");
    // The page loaded it (the site's own policy allows it) and it has its pixels.
    until_true(
        &a,
        "const i = document.querySelector('.post-images img'); return i.complete && i.naturalWidth === 1200;",
        "the attached photo is shown",
    )
    .await;
    shot(&a, "forum-post-with-photo").await;
    let (status, content_type, served) = download_in_page(&a, &src).await;
    assert_eq!((status, content_type.as_str()), (200, "image/jpeg"));
    assert!(!jpeg_markers(&served).contains(&0xE1), "no EXIF segment in what the browser got");
    for secret in PHOTO_SECRETS {
        assert!(!holds(&served, secret), "the served photo carries {}", String::from_utf8_lossy(secret));
    }

    // The moderator sees the photo in the queue, approves, and is back there.
    let staff = lyceum::demo::accounts().remove(0);
    sign_in_demo(&s, &site, &staff).await;
    s.goto(&format!("{site}/forums/moderation")).await.unwrap();
    until(&s, "h1", "Moderation queue").await;
    decide_in_queue(&s, &site, "like a for loop", "approve").await;
    let flash = until(&s, ".flash", "Approved").await;
    assert!(flash.contains(ines.username) && flash.contains("Loops, seen from the pier"), "{flash}");
    assert_eq!(s.current_url().await.unwrap().path(), "/forums/moderation");
    shows_usernames_only(&s, &[&ines], "the queue after approving").await;

    a.close().await.unwrap();
    s.close().await.unwrap();
    browser.server.abort();
}

/// The first quiz of a course, read from the database: its unit, its block
/// and its questions (with their answers).
fn first_quiz(config: &lyceum::config::Config, slug: &str) -> Quiz {
    quizzes_of(config, slug).into_iter().next().unwrap_or_else(|| panic!("{slug} has no quiz"))
}

/// A quiz: its unit, its block and its questions (with their answers), by number.
type Quiz = (i64, i64, Vec<(usize, lyceum::learning::content::Question)>);

/// Every quiz of a course in the order of its outline, read from the database.
fn quizzes_of(config: &lyceum::config::Config, slug: &str) -> Vec<Quiz> {
    use lyceum::learning::content::BlockData;
    use lyceum::learning::service;
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let mut conn = db.get().unwrap();
    let course = service::course_by_slug(&mut conn, slug).unwrap();
    let mut quizzes = Vec::new();
    for (_, units) in service::outline(&mut conn, course.id).unwrap() {
        for u in units {
            for b in service::blocks_of(&mut conn, u.id).unwrap() {
                if let BlockData::Quiz(q) = service::block_data(&b).unwrap() {
                    quizzes.push((u.id, b.id, q.questions.into_iter().enumerate().collect()));
                }
            }
        }
    }
    quizzes
}

/// Answers every question of the quiz `block`, on the unit page showing it,
/// correctly, and sends it; waits for the score.
async fn answer_quiz_correctly(
    b: &fantoccini::Client,
    block: i64,
    questions: &[(usize, lyceum::learning::content::Question)],
) {
    use lyceum::learning::content::QuestionKind;
    for (i, q) in questions {
        let css = format!("#block-{block} input[name=q{i}]");
        match q.kind {
            QuestionKind::Single | QuestionKind::Multiple => {
                for c in &q.correct {
                    let input = b.find(Locator::Css(&format!("{css}[value='{c}']"))).await.unwrap();
                    b.execute("arguments[0].click();", vec![serde_json::to_value(&input).unwrap()]).await.unwrap();
                }
            }
            QuestionKind::Numeric => {
                b.find(Locator::Css(&css)).await.unwrap().send_keys(&q.answer.unwrap().to_string()).await.unwrap();
            }
            QuestionKind::Text => {
                b.find(Locator::Css(&css)).await.unwrap().send_keys(&q.accepted[0]).await.unwrap();
            }
        }
    }
    let submit = b.find(Locator::Css(&format!("#block-{block} button[type=submit]"))).await.unwrap();
    b.execute("arguments[0].click();", vec![serde_json::to_value(&submit).unwrap()]).await.unwrap();
    until(b, ".flash", "You scored 100%").await;
}

/// Starts a thread in the course forum from the course page; a newcomer's
/// first post waits for a moderator.
async fn start_thread_in_course_forum(b: &fantoccini::Client, site: &str, title: &str, body: &str) {
    b.goto(&format!("{site}/learn/intro-python")).await.unwrap();
    b.find(Locator::LinkText("Course forum")).await.unwrap().click().await.unwrap();
    until(b, "#new-thread h2", "Start a thread").await;
    b.find(Locator::Css("#new-thread input[name=title]")).await.unwrap().send_keys(title).await.unwrap();
    b.find(Locator::Css("#new-thread textarea[name=body]")).await.unwrap().send_keys(body).await.unwrap();
    b.find(Locator::Css("#new-thread button[type=submit]")).await.unwrap().click().await.unwrap();
    until(b, ".flash", "Your first post waits for a moderator").await;
    until(b, "h1", title).await;
}

/// From any signed-in page, through Account, to the privacy page.
async fn open_privacy_page(b: &fantoccini::Client) {
    b.find(Locator::LinkText("Account")).await.unwrap().click().await.unwrap();
    until(b, "h1", "Account settings").await;
    b.find(Locator::LinkText("Your data and privacy")).await.unwrap().click().await.unwrap();
    until(b, "h1", "Your data and privacy").await;
}

/// `url` downloaded from within the page, with the session's cookies, as
/// bytes (carried out of the page in base64): (status, content type, bytes).
async fn download_in_page(b: &fantoccini::Client, url: &str) -> (u64, String, Vec<u8>) {
    use base64::Engine;
    let got = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], { credentials: 'same-origin' })
               .then(async r => {
                 const bytes = new Uint8Array(await r.arrayBuffer());
                 let binary = '';
                 for (let i = 0; i < bytes.length; i += 0x8000) {
                   binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
                 }
                 done([r.status, r.headers.get('content-type') || '', btoa(binary)]);
               })
               .catch(e => done([0, '', btoa(String(e))]));",
            vec![serde_json::json!(url)],
        )
        .await
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(got[2].as_str().unwrap()).unwrap();
    (got[0].as_u64().unwrap(), got[1].as_str().unwrap().to_string(), bytes)
}

/// The files of a zip archive, by name, as text.
fn unzip_text(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        files.insert(file.name().unwrap().to_string(), text);
    }
    files
}

#[rocket::async_test]
async fn rgt_1_a_learner_downloads_their_data_in_a_browser() {
    // promise: RGT-1 — in a real browser: ask for a copy, follow the emailed link, get everything in a zip.
    let Some(browser) = start_browser().await else { return };
    let (b, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    let p = Person {
        first: "Wilhelmina",
        last: "Fairweather",
        username: "tidepool31",
        email: "wilhelmina.fairweather@example.org",
        password: "low tide reveals the anemones",
    };
    let title = "Floats and integer division";
    let post = "Does 7 // 2 give 3 or 3.5 when both are floats?";

    // She signs up, enrolls (declining to share with the member), answers
    // the first quiz and asks something in the course forum.
    sign_up_and_confirm(&b, &site, &p).await;
    sign_in(&b, &p).await;
    until(&b, "h1", "Welcome").await;
    enroll_in_intro_python(&b, &site).await;
    let (unit, block, questions) = first_quiz(&config, "intro-python");
    b.goto(&format!("{site}/learn/intro-python/units/{unit}")).await.unwrap();
    until(&b, &format!("#block-{block}"), "").await;
    answer_quiz_correctly(&b, block, &questions).await;
    start_thread_in_course_forum(&b, &site, title, post).await;

    // She asks for a copy on her privacy page.
    open_privacy_page(&b).await;
    let ask = b.find(Locator::Css("form[action='/account/privacy/export'] button[type=submit]")).await.unwrap();
    assert_eq!(ask.text().await.unwrap(), "Ask for a copy");
    ask.click().await.unwrap();
    until(&b, ".flash", "We are preparing a copy of your data").await;
    shot(&b, "privacy-copy-asked").await;

    // The in-process worker builds it and emails a link, which needs her sign-in.
    open_mail(&b, &site, "Your Lyceum data is ready to download", p.email).await;
    let link = b
        .find(Locator::Css("a[href*='/account/privacy/exports/']"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("the mail links to the copy");
    assert!(link.starts_with(&format!("{site}/account/privacy/exports/")), "{link}");
    let (status, kind, bytes) = download_in_page(&b, &link).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert!(kind.starts_with("application/zip"), "{kind}");
    let files = unzip_text(&bytes);
    assert!(files.contains_key("README.md"), "{:?}", files.keys());
    assert!(files.contains_key("csv/forum_posts.csv"), "{:?}", files.keys());
    assert!(files["csv/forum_posts.csv"].contains(post), "{}", files["csv/forum_posts.csv"]);
    let data: serde_json::Value = serde_json::from_str(&files["data.json"]).expect("data.json is JSON");
    let sections = &data["sections"];
    assert_eq!(data["username"], p.username);
    assert_eq!(sections["account"][0]["first_name"], p.first);
    assert_eq!(sections["account"][0]["email"], p.email);
    assert!(sections["account"][0].get("password_hash").is_none(), "no password hash");
    let posts = sections["forum_posts"].as_array().unwrap();
    assert!(posts.iter().any(|row| row["body"].as_str().is_some_and(|b| b.contains(post))), "{posts:?}");
    let answers = sections["quiz_answers"].as_array().unwrap();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["block_id"], block);
    assert_eq!(answers[0]["score"].as_f64(), Some(1.0), "{answers:?}");
    // The text question's answer, as she typed it.
    assert!(answers[0]["answers"].to_string().contains("elif"), "{answers:?}");
    // Her sharing decision at enrollment, in the ledger.
    let ledger = sections["consent_ledger"].as_array().unwrap();
    assert!(ledger.iter().any(|row| row["action"] == "decline" && row["purpose"] == "member_sharing"), "{ledger:?}");
    assert!(!files.values().any(|f| f.contains("$argon2")), "no secret in any file");

    // The privacy page lists the copy, ready, and the request, done.
    b.goto(&format!("{site}/account/privacy")).await.unwrap();
    let copies = until(&b, "#exports tbody", "Ready, until").await;
    assert!(copies.contains("Download ("), "{copies}");
    let requests = until(&b, "section[aria-labelledby=requests-h] tbody", "export").await;
    assert!(requests.contains("done on") && requests.contains("Copy sent by email link."), "{requests}");
    let listed = b.find(Locator::Css("#exports a[href^='/account/privacy/exports/']")).await.unwrap();
    assert!(link.ends_with(&listed.attr("href").await.unwrap().unwrap()), "the page offers the same copy");
    shot(&b, "privacy-copy-ready").await;

    b.close().await.unwrap();
    browser.server.abort();
}

/// Fills in and sends the deletion form on the privacy page.
async fn ask_for_erasure(b: &fantoccini::Client, p: &Person) {
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(p.password).await.unwrap();
    let confirm = b.find(Locator::Css("form[action='/account/privacy/delete'] input[name=confirm]")).await.unwrap();
    b.execute("arguments[0].click();", vec![serde_json::to_value(&confirm).unwrap()]).await.unwrap();
    let delete = b.find(Locator::Css("form[action='/account/privacy/delete'] button[type=submit]")).await.unwrap();
    assert_eq!(delete.text().await.unwrap(), "Delete my account");
    b.execute("arguments[0].click();", vec![serde_json::to_value(&delete).unwrap()]).await.unwrap();
    until(b, ".flash", "Your account will be deleted from").await;
    until(b, "#erasure-scheduled", "Your account will be deleted from").await;
}

#[rocket::async_test]
async fn rgt_2_a_learner_deletes_their_account_in_a_browser() {
    // promise: RGT-2 — in a real browser: ask, cancel, ask again; after the
    // cool-off the person is signed out, cannot sign in, and neither their
    // name nor their email address is left anywhere in the database.
    use diesel::prelude::*;
    use lyceum::db::schema::{erasures, jobs};
    let Some(browser) = start_browser().await else { return };
    let (b, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    let p = Person {
        first: "Perpetua",
        last: "Ravensworth",
        username: "owlet77",
        email: "perpetua.ravensworth@example.org",
        password: "a lantern in the hayloft",
    };

    // She signs up, enrolls and posts in the course forum.
    sign_up_and_confirm(&b, &site, &p).await;
    sign_in(&b, &p).await;
    until(&b, "h1", "Welcome").await;
    enroll_in_intro_python(&b, &site).await;
    start_thread_in_course_forum(
        &b,
        &site,
        "Tabs or spaces?",
        "Which indentation does the course use in its examples?",
    )
    .await;

    // She asks for her account to be deleted, changes her mind, then asks again.
    open_privacy_page(&b).await;
    ask_for_erasure(&b, &p).await;
    shot(&b, "privacy-erasure-scheduled").await;
    let cancel = b.find(Locator::Css("form[action='/account/privacy/delete/cancel'] button")).await.unwrap();
    assert_eq!(cancel.text().await.unwrap(), "Cancel the deletion");
    b.execute("arguments[0].click();", vec![serde_json::to_value(&cancel).unwrap()]).await.unwrap();
    until(&b, ".flash", "The deletion is cancelled").await;
    assert!(b.find(Locator::Id("erasure-scheduled")).await.is_err(), "nothing scheduled any more");
    let requests = until(&b, "section[aria-labelledby=requests-h] tbody", "erasure").await;
    assert!(requests.contains("cancelled"), "{requests}");
    ask_for_erasure(&b, &p).await;
    open_mail(&b, &site, "Your Lyceum account will be deleted", p.email).await;

    // Until the erasure runs, the scan below finds her.
    let rows = every_row_in(&config);
    for needle in [p.first, p.last, p.email] {
        assert!(rows.iter().any(|(table, row)| table == "users" && row.contains(needle)), "{needle} before erasure");
    }

    // Seven days pass: the test ends the cool-off and runs the scheduled work.
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    // Mail to her that is being sent when the erasure runs would outlive it;
    // in seven days it would long be sent.
    let pattern = format!("%{}%", p.email);
    let mut settled = false;
    for _ in 0..50 {
        let pending: i64 = jobs::table
            .filter(jobs::payload.like(&pattern))
            .filter(jobs::status.eq_any(["queued", "running"]))
            .count()
            .get_result(&mut *db.get().unwrap())
            .unwrap();
        if pending == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(settled, "mail to her is still being sent");
    let moved = diesel::update(erasures::table.filter(erasures::state.eq("waiting")))
        .set(erasures::run_after.eq(lyceum::db::now() - chrono::Duration::minutes(1)))
        .execute(&mut *db.get().unwrap())
        .unwrap();
    assert_eq!(moved, 1, "one erasure waits");
    let worker = lyceum::worker(&config, db.clone()).unwrap();
    worker.run_scheduled().await.unwrap();
    // The site's own worker may have claimed it first: wait until it is done either way.
    let mut state = String::new();
    for _ in 0..50 {
        state =
            erasures::table.order(erasures::id.desc()).select(erasures::state).first(&mut *db.get().unwrap()).unwrap();
        if state == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, "done");

    // Her browser is signed out: any signed-in page sends her to sign in.
    b.goto(&format!("{site}/dashboard")).await.unwrap();
    until(&b, "h1", "Sign in").await;
    assert!(b.find(Locator::LinkText("Sign in")).await.is_ok(), "the Sign in link is back");
    assert!(b.find(Locator::Css("form[action='/signout']")).await.is_err(), "no Sign out button");
    shot(&b, "erased-signed-out").await;
    // Her old email and password, or username and password, open nothing.
    for login in [p.email, p.username] {
        b.goto(&format!("{site}/signin")).await.unwrap();
        until(&b, "h1", "Sign in").await;
        b.find(Locator::Id("f-login")).await.unwrap().send_keys(login).await.unwrap();
        b.find(Locator::Id("f-password")).await.unwrap().send_keys(p.password).await.unwrap();
        b.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
        until(&b, "main", "do not match an account").await;
        assert!(b.find(Locator::LinkText("Sign in")).await.is_ok(), "still signed out after trying {login}");
    }

    // Nothing anywhere in the database holds her name or her email address.
    let rows = every_row_in(&config);
    assert!(rows.iter().any(|(table, _)| table == "forum_posts"), "the scan reads every table");
    for needle in [p.first, p.last, p.email] {
        let needle = needle.to_lowercase();
        let found: Vec<&(String, String)> =
            rows.iter().filter(|(_, row)| row.to_lowercase().contains(&needle)).collect();
        assert!(found.is_empty(), "{needle} is still in {found:?}");
    }

    b.close().await.unwrap();
    browser.server.abort();
}

/// The cookies the browser holds for the site, by name (with their value),
/// asserted first-party (host-only or for 127.0.0.1) and among `allowed`.
async fn first_party_cookies(b: &fantoccini::Client, allowed: &[&str], when: &str) -> Vec<(String, String)> {
    let cookies = b.get_all_cookies().await.unwrap();
    let mut out = Vec::new();
    for c in cookies {
        let domain = c.domain().unwrap_or_default().trim_start_matches('.').to_string();
        assert!(domain.is_empty() || domain == "127.0.0.1", "{when}: cookie {} is for {domain:?}", c.name());
        assert!(allowed.contains(&c.name()), "{when}: unexpected cookie {} (allowed: {allowed:?})", c.name());
        out.push((c.name().to_string(), c.value().to_string()));
    }
    out
}

/// A recorded page view: path, browser, os, country, visitor.
type PageView = (String, String, String, Option<String>, String);
/// A recorded cookie choice: visitor, analytics (no account, ever).
type CookieChoice = (String, bool);

/// Page views and cookie choices recorded so far, oldest first.
fn analytics_rows(config: &lyceum::config::Config) -> (Vec<PageView>, Vec<CookieChoice>) {
    use diesel::prelude::*;
    use lyceum::db::schema::{cookie_choices as cc, page_views as pv};
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let mut pooled = db.get().unwrap();
    let conn: &mut lyceum::db::Conn = &mut pooled;
    let views =
        pv::table.order(pv::id).select((pv::path, pv::browser, pv::os, pv::country, pv::visitor)).load(conn).unwrap();
    let choices = cc::table.order(cc::id).select((cc::visitor, cc::analytics)).load(conn).unwrap();
    (views, choices)
}

/// Opens `path` and waits for its heading; returns whether the cookie banner shows.
async fn visit(b: &fantoccini::Client, site: &str, path: &str) -> bool {
    b.goto(&format!("{site}{path}")).await.unwrap();
    until(b, "h1", "").await;
    match b.find(Locator::Css("section#cookie-banner")).await {
        Ok(banner) => banner.is_displayed().await.unwrap(),
        Err(_) => false,
    }
}

#[rocket::async_test]
async fn com_3_com_4_the_cookie_banner_blocks_analytics_until_allowed_in_a_browser() {
    // promise: COM-3, COM-4 — in a real browser: only essential first-party
    // cookies and no page views until the visitor allows statistics; the
    // choice is kept and recorded; staff then see the totals.
    let Some(browser) = start_browser().await else { return };
    let (b, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    const ESSENTIAL: [&str; 3] = ["lyceum_csrf", "lyceum_session", "lyceum_flash"];
    let with_choice = [ESSENTIAL.as_slice(), &["lyceum_cookies"]].concat();
    let pages = ["/", "/courses", "/courses/intro-python"];

    // A fresh browser: the banner on every page, nothing counted, essential cookies only.
    for path in pages {
        assert!(visit(&b, &site, path).await, "the banner shows on {path}");
        let (views, choices) = analytics_rows(&config);
        assert!(views.is_empty() && choices.is_empty(), "before a choice, on {path}: {views:?} {choices:?}");
    }
    let banner = b.find(Locator::Css("section#cookie-banner")).await.unwrap().text().await.unwrap();
    assert!(banner.contains("Allow usage statistics") && banner.contains("Essential cookies only"), "{banner}");
    let held = first_party_cookies(&b, &ESSENTIAL, "before a choice").await;
    assert!(held.iter().any(|(name, _)| name == "lyceum_csrf"), "the form token is set: {held:?}");
    shot(&b, "cookies-banner").await;

    // "Essential cookies only": the banner goes, the choice is kept, still nothing counted.
    let essential = b.find(Locator::Id("cookies-essential")).await.unwrap();
    b.execute("arguments[0].click();", vec![serde_json::to_value(&essential).unwrap()]).await.unwrap();
    until(&b, ".flash", "Only essential cookies are used").await;
    assert!(b.current_url().await.unwrap().as_str().ends_with("/courses/intro-python"), "back where it was");
    assert!(b.find(Locator::Css("#cookie-banner")).await.is_err(), "no banner once chosen");
    shot(&b, "cookies-essential").await;
    let held = first_party_cookies(&b, &with_choice, "after essential only").await;
    let choice = held.iter().find(|(name, _)| name == "lyceum_cookies").expect("the choice is kept").1.clone();
    let visitor = choice.strip_prefix("v1.").and_then(|v| v.strip_suffix(".e")).expect("an essential-only choice");
    assert_eq!(visitor.len(), 32, "{choice}");
    for path in pages.iter().chain(&["/cookies"]) {
        assert!(!visit(&b, &site, path).await, "no banner on {path} once chosen");
    }
    until(&b, "#cookie-settings", "Usage statistics are off.").await;
    let (views, choices) = analytics_rows(&config);
    assert!(views.is_empty(), "essential only counts nothing: {views:?}");
    assert_eq!(choices, vec![(visitor.to_string(), false)]);

    // The settings page: "Allow usage statistics"; from then on pages are counted.
    let allow = b.find(Locator::Css("#cookie-settings button[name=analytics][value=true]")).await.unwrap();
    b.execute("arguments[0].click();", vec![serde_json::to_value(&allow).unwrap()]).await.unwrap();
    until(&b, ".flash", "anonymous usage statistics are on").await;
    until(&b, "#cookie-settings", "Usage statistics are on.").await;
    let held = first_party_cookies(&b, &with_choice, "after allowing").await;
    let choice = held.iter().find(|(name, _)| name == "lyceum_cookies").expect("the choice is kept").1.clone();
    assert_eq!(choice, format!("v1.{visitor}.a"), "the same visitor, now allowing");
    for path in ["/courses", "/courses/intro-python"] {
        assert!(!visit(&b, &site, path).await, "no banner on {path}");
    }
    shot(&b, "cookies-allowed").await;
    let (views, choices) = analytics_rows(&config);
    for route in ["/courses", "/courses/{slug}"] {
        assert!(views.iter().any(|v| v.0 == route), "{route} is counted: {views:?}");
    }
    assert!(!views.iter().any(|v| v.0.contains("intro-python")), "routes, not paths: {views:?}");
    assert!(!views.iter().any(|v| v.0 == "/"), "views before allowing are not counted: {views:?}");
    for (path, browser_family, os, country, who) in &views {
        assert_eq!((browser_family.as_str(), os.as_str()), ("Chrome", "Linux"), "{path}");
        assert_eq!(country, &None, "no GeoIP database configured: {path}");
        assert_eq!(who, visitor, "{path}");
    }
    assert_eq!(choices, vec![(visitor.to_string(), false), (visitor.to_string(), true)]);

    // Staff sign in in the same browser and see the totals.
    let staff = lyceum::demo::accounts().remove(0);
    b.goto(&format!("{site}/signin")).await.unwrap();
    until(&b, "h1", "Sign in").await;
    b.find(Locator::Id("f-login")).await.unwrap().send_keys(&staff.email).await.unwrap();
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(&staff.password).await.unwrap();
    b.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Welcome").await;
    let held = first_party_cookies(&b, &with_choice, "signed in").await;
    assert!(held.iter().any(|(name, _)| name == "lyceum_session"), "signed in: {held:?}");
    b.goto(&format!("{site}/staff/analytics")).await.unwrap();
    until(&b, "h1", "Usage statistics").await;
    let totals = until(&b, "#pages", "/courses").await;
    assert!(totals.contains("/courses/{slug}"), "{totals}");
    assert!(!totals.contains("None yet."), "{totals}");
    let summary = b.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(summary.contains("by 1 visitor(s)"), "{summary}");
    shot(&b, "cookies-staff-analytics").await;

    b.close().await.unwrap();
    browser.server.abort();
}

/// Records, in the page shown, what its Content-Security-Policy refuses
/// (a form's redirect elsewhere, say), for [`until_at`] to name.
async fn watch_refusals(b: &fantoccini::Client) {
    b.execute(
        "window.refusedByPolicy = [];
         document.addEventListener('securitypolicyviolation',
           e => window.refusedByPolicy.push(e.violatedDirective + ' (' + e.originalPolicy + ') refused ' + e.blockedURI));",
        vec![],
    )
    .await
    .unwrap();
}

/// Waits (up to 5 s) until the browser is on an address starting with `prefix`; returns it.
async fn until_at(b: &fantoccini::Client, prefix: &str) -> String {
    let mut url = String::new();
    for _ in 0..50 {
        url = b.current_url().await.unwrap().to_string();
        if url.starts_with(prefix) {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = b.execute("return window.refusedByPolicy || [];", vec![]).await.unwrap_or_default();
    panic!("not on {prefix}… but still on {url}; the page's security policy refused: {refused}");
}

/// Signs a demo account in, from the sign-in page.
async fn sign_in_demo(b: &fantoccini::Client, site: &str, account: &lyceum::web::page::DemoAccount) {
    b.goto(&format!("{site}/signin")).await.unwrap();
    until(b, "h1", "Sign in").await;
    b.find(Locator::Id("f-login")).await.unwrap().send_keys(&account.email).await.unwrap();
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(&account.password).await.unwrap();
    b.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(b, "h1", "Welcome").await;
}

/// Whether `haystack` contains `needle` anywhere.
fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` (recursively), with its bytes.
fn every_file(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

/// Polls (up to 5 s) the script `js` until it returns `true`; panics with `what`
/// and the errors the page reported (see [`take_photo_with_camera`]) otherwise.
async fn until_true(b: &fantoccini::Client, js: &str, what: &str) {
    for _ in 0..50 {
        if b.execute(js, vec![]).await.unwrap() == serde_json::json!(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shot(b, "camera-failed").await;
    let errors = b.execute("return window.pageErrors || null;", vec![]).await.unwrap();
    // The page's script swallows the camera's refusal: ask for it again, to say why.
    let camera = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { done('no getUserMedia'); return; }
             navigator.mediaDevices.getUserMedia({ video: true, audio: false })
               .then(s => { s.getTracks().forEach(t => t.stop()); done('a camera is available'); })
               .catch(e => done(e.name + ': ' + e.message));",
            vec![],
        )
        .await
        .unwrap();
    panic!("{what}: the page reported {errors}; asked directly, the camera says {camera}");
}

/// On the identity page: takes a photo with the camera into the file field
/// `input` ("Use the camera", then "Take the photo") and returns its width.
async fn take_photo_with_camera(b: &fantoccini::Client, input: &str) -> u64 {
    b.execute(
        "window.pageErrors = [];
         window.addEventListener('error', e => window.pageErrors.push(String(e.message)));
         window.addEventListener('unhandledrejection', e => window.pageErrors.push('rejected: ' + String(e.reason)));",
        vec![],
    )
    .await
    .unwrap();
    let button = format!("button[data-camera='{input}']");
    until_true(
        b,
        &format!("const b = document.querySelector(\"{button}\"); return !!b && !b.hidden && b.offsetParent !== null;"),
        "the camera button is shown",
    )
    .await;
    assert!(b.find(Locator::Css(".camera")).await.unwrap().attr("hidden").await.unwrap().is_some(), "closed at first");
    b.find(Locator::Css(&button)).await.unwrap().click().await.unwrap();
    until_true(
        b,
        "const v = document.querySelector('.camera video');
         return !document.querySelector('.camera').hidden && v.videoWidth > 0 && !v.paused && v.readyState >= 2;",
        "the camera's video plays",
    )
    .await;
    let width = b.execute("return document.querySelector('.camera video').videoWidth;", vec![]).await.unwrap();
    let width = width.as_u64().unwrap();
    assert!(width > 0);
    shot(b, "crt-camera").await;
    b.find(Locator::Css(".camera [data-snap]")).await.unwrap().click().await.unwrap();
    until_true(
        b,
        &format!("return document.getElementById('{input}').files.length === 1;"),
        "the photo is in the file field",
    )
    .await;
    let file = b
        .execute(
            &format!("const f = document.getElementById('{input}').files[0]; return [f.type, f.size, f.name];"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(file[0], "image/jpeg", "{file}");
    assert!(file[1].as_u64().unwrap() > 0, "{file}");
    assert!(b.find(Locator::Css(".camera")).await.unwrap().attr("hidden").await.unwrap().is_some(), "closed after");
    let errors = b.execute("return window.pageErrors;", vec![]).await.unwrap();
    assert_eq!(errors, serde_json::json!([]), "the page reported errors");
    width
}

#[rocket::async_test]
async fn crt_a_learner_pays_verifies_identity_completes_and_gets_a_certificate_that_staff_revoke() {
    // promise: CRT-1, CRT-2, CRT-3, CRT-4 — in a real browser: the learner pays on the
    // processor's page (the card number never reaches Lyceum), sends identity photos that
    // staff approve, passes and gets a certificate anyone can check and download as PNG
    // and PDF; staff revoke it and its public page says so.
    // The site's port is chosen first: the Stripe double delivers its webhooks there.
    let port = free_port();
    let double = crate::stripe::start(Some(format!("http://127.0.0.1:{port}/payments/stripe/webhook"))).await;
    let Some(browser) = start_browser_with(port, |config| crate::stripe::configure(config, &double.base)).await else {
        return;
    };
    let (b, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    // Staff, and a visitor who checks the certificate (say, an employer), each in their own browser.
    let (s, _s_profile) = browser.another_session().await;
    let (v, _v_profile) = browser.another_session().await;
    const CARD: &str = "4242 4242 4242 4242";
    let p = Person {
        first: "Dorothy",
        last: "Hodgkin",
        username: "crystal64",
        email: "dorothy.hodgkin@example.org",
        password: "penicillin in a crystal lattice",
    };
    let reason = "The final project was copied from another learner";

    // She signs up, enrolls on the audit track and is offered the verified certificate.
    sign_up_and_confirm(&b, &site, &p).await;
    sign_in(&b, &p).await;
    until(&b, "h1", "Welcome").await;
    enroll_in_intro_python(&b, &site).await;
    let card = until(&b, "#certificate-card", "Buy the verified certificate (49.00 USD)").await;
    assert!(card.contains("Apply for financial assistance") && card.contains("verify your identity"), "{card}");
    shot(&b, "crt-offer").await;

    // promise: CRT-1 — she pays on the processor's page and comes back on the verified track.
    watch_refusals(&b).await;
    b.find(Locator::Css("#certificate-card form[action='/courses/intro-python/runs/2026/buy'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let pay_page = until_at(&b, &format!("{}/pay/", double.base)).await;
    until(&b, "h1", "Pay USD 49.00").await;
    let checkout = pay_page.rsplit('/').next().unwrap().to_string();
    b.find(Locator::Id("card")).await.unwrap().send_keys(CARD).await.unwrap();
    shot(&b, "crt-processor-page").await;
    b.find(Locator::Id("pay")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "Payment received: you are on the verified track").await;
    assert_eq!(b.current_url().await.unwrap().as_str(), format!("{site}/learn/intro-python"));
    let card = until(&b, "#certificate-card", "You are on the verified track").await;
    assert!(!card.contains("Buy the verified certificate"), "{card}");
    shot(&b, "crt-paid").await;
    // The processor's signed event reaches the site too, and is accepted (once applied, then a duplicate).
    let mut delivered = Vec::new();
    for _ in 0..50 {
        delivered = double.state.lock().unwrap().delivered.clone();
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, vec![("checkout.session.completed".to_string(), 200)]);
    assert!(double.session(&checkout).paid, "the double's checkout {checkout} is paid");
    open_mail(&b, &site, "Your receipt from Lyceum", p.email).await;

    // promise: CRT-2 — she sends a photo of her ID and of her face from the verification page.
    b.goto(&format!("{site}/learn/intro-python")).await.unwrap();
    until(&b, "#certificate-card", "verify your identity").await;
    b.find(Locator::Css("#certificate-card a[href='/account/verification']")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Verify your identity").await;
    let photos = tempfile::tempdir().unwrap();
    let id_photo = photos.path().join("passport.jpg");
    std::fs::write(&id_photo, crate::media::jpeg(640, 400)).unwrap();
    b.find(Locator::Id("id_photo")).await.unwrap().send_keys(&id_photo.display().to_string()).await.unwrap();
    // The face she takes with the camera (Chromium's fake one): a still of the video into the file field.
    let face_width = take_photo_with_camera(&b, "face_photo").await;
    shot(&b, "crt-identity-form").await;
    b.find(Locator::Css("#identity-form button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "Our staff will review your photos").await;
    until(&b, "#identity-status", "Your photos are with our reviewers").await;
    assert!(b.find(Locator::Id("identity-form")).await.is_err(), "no second submission while one waits");

    // Staff find the check in the queue, look at both photos and approve.
    sign_in_demo(&s, &site, &lyceum::demo::accounts().remove(0)).await;
    s.goto(&format!("{site}/staff/identity")).await.unwrap();
    until(&s, "#identity-queue", p.username).await;
    s.find(Locator::XPath(&format!("//table[@id='identity-queue']//a[.='{}']", p.username)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&s, "h1", p.username).await;
    assert_eq!(s.find(Locator::Id("account-name")).await.unwrap().text().await.unwrap(), "Dorothy Hodgkin");
    let mut widths = serde_json::Value::Null;
    for _ in 0..50 {
        widths = s
            .execute(
                "return Array.from(document.querySelectorAll('.identity-images img'))
                   .map(i => i.complete ? i.naturalWidth : 0);",
                vec![],
            )
            .await
            .unwrap();
        if widths == serde_json::json!([640, face_width]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(widths, serde_json::json!([640, face_width]), "the reviewer sees both photos, the face as taken");
    shot(&s, "crt-identity-review").await;
    s.find(Locator::Css("#identity-decision input[name=decision][value=approve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    s.find(Locator::Css("#identity-decision button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&s, ".flash", "Decision recorded").await;
    until(&s, "main", "No check is waiting.").await;
    b.refresh().await.unwrap();
    until(&b, "#identity-status", "Your identity is verified until").await;

    // promise: CRT-3 — she passes the course and the certificate is issued at once.
    b.goto(&format!("{site}/learn/intro-python")).await.unwrap();
    let card = until(&b, "#certificate-card", "Identity verified").await;
    assert!(card.contains("You are on the verified track"), "{card}");
    let quizzes = quizzes_of(&config, "intro-python");
    assert!(!quizzes.is_empty());
    for (unit, block, questions) in &quizzes {
        b.goto(&format!("{site}/learn/intro-python/units/{unit}")).await.unwrap();
        until(&b, &format!("#block-{block}"), "").await;
        answer_quiz_correctly(&b, *block, questions).await;
    }
    b.goto(&format!("{site}/learn/intro-python")).await.unwrap();
    until(&b, "[data-completed]", "Completed").await;
    until(&b, "#certificate-card", "Your certificate is ready.").await;
    shot(&b, "crt-certificate-ready").await;
    b.find(Locator::LinkText("See your certificate")).await.unwrap().click().await.unwrap();
    let heading = until(&b, "h1", "Certificate ").await;
    let code = heading.trim_start_matches("Certificate ").to_string();
    let public = until_at(&b, &format!("{site}/certificates/{code}")).await;
    until(&b, "#certificate-status", "Valid.").await;
    let facts = b.find(Locator::Id("certificate-facts")).await.unwrap().text().await.unwrap();
    assert!(facts.contains("Dorothy Hodgkin") && facts.contains("Introduction to Python"), "{facts}");
    shot(&b, "crt-certificate").await;
    b.goto(&format!("{site}/account/certificates")).await.unwrap();
    let mine = until(&b, "#certificates", "Introduction to Python").await;
    assert!(mine.contains("valid"), "{mine}");
    for file in ["certificate.png", "certificate.pdf"] {
        let href = format!("/certificates/{code}/{file}");
        assert!(b.find(Locator::Css(&format!("#certificates a[href='{href}']"))).await.is_ok(), "{href} listed");
    }

    // promise: CRT-4 — anyone, signed out, checks it and downloads the picture and the PDF.
    v.goto(&public).await.unwrap();
    until(&v, "#certificate-status", "Valid.").await;
    let facts = v.find(Locator::Id("certificate-facts")).await.unwrap().text().await.unwrap();
    assert!(facts.contains("Dorothy Hodgkin") && facts.contains("Introduction to Python"), "{facts}");
    assert!(v.find(Locator::LinkText("Sign in")).await.is_ok(), "the visitor is not signed in");
    let png_href = v.find(Locator::LinkText("Image (PNG)")).await.unwrap().attr("href").await.unwrap().unwrap();
    let (status, kind, png) = download_in_page(&v, &png_href).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&png));
    assert_eq!(kind, "image/png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let img = image::load_from_memory(&png).expect("the PNG decodes");
    assert_eq!((img.width(), img.height()), (1754, 1240));
    let pdf_href = v.find(Locator::LinkText("PDF")).await.unwrap().attr("href").await.unwrap().unwrap();
    let (status, kind, pdf) = download_in_page(&v, &pdf_href).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(kind, "application/pdf");
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    assert!(holds(&pdf, b"Dorothy Hodgkin") && holds(&pdf, code.as_bytes()), "the PDF names her and the code");
    // The same downloads, for her, from her list.
    let (status, kind, _) = fetch_in_page(&b, &format!("/certificates/{code}/certificate.pdf")).await;
    assert_eq!((status, kind.as_str()), (200, "application/pdf"));

    // promise: CRT-4 — staff revoke it with a reason; its public page says so.
    s.goto(&format!("{site}/staff/certificates")).await.unwrap();
    let row = format!("//table[@id='staff-certificates']//tr[td/a[.='{code}']]");
    until(&s, "#staff-certificates", &code).await;
    s.find(Locator::XPath(&format!("{row}//input[@name='reason']"))).await.unwrap().send_keys(reason).await.unwrap();
    shot(&s, "crt-staff-revoke").await;
    s.find(Locator::XPath(&format!("{row}//button[.='Revoke']"))).await.unwrap().click().await.unwrap();
    until(&s, ".flash", "Certificate revoked").await;
    let revoked = s.find(Locator::XPath(&row)).await.unwrap().text().await.unwrap();
    assert!(revoked.contains("revoked") && revoked.contains(reason), "{revoked}");
    for who in [&b, &v] {
        who.goto(&public).await.unwrap();
        let status = until(who, "#certificate-status", "Revoked").await;
        assert!(status.contains(reason), "{status}");
        assert!(!status.contains("Valid."), "{status}");
    }
    shot(&v, "crt-revoked").await;
    b.goto(&format!("{site}/learn/intro-python")).await.unwrap();
    until(&b, "#certificate-card", "Your certificate was revoked.").await;

    // promise: CRT-1 — the card number stayed with the processor: Lyceum never had it.
    assert_eq!(double.state.lock().unwrap().cards, vec![CARD.to_string()], "typed on the processor's page");
    let asked: Vec<_> =
        double.log.lock().unwrap().iter().filter(|r| r.path.starts_with("/v1/")).map(|r| r.body.clone()).collect();
    assert!(!asked.is_empty(), "Lyceum spoke to the processor");
    // The number, bare or as typed (form-encoded spaces), and any card field.
    // Not "4242" alone: it turns up in a return URL whenever the test
    // server's port holds it.
    for body in &asked {
        let text = String::from_utf8_lossy(body).replace('+', " ").replace("%20", " ");
        assert!(!text.contains("4242424242424242") && !text.contains(CARD) && !text.contains("card"), "{text}");
    }
    let rows = every_row_in(&config);
    assert!(rows.iter().any(|(table, row)| table == "payments" && row.contains(&checkout)), "the scan sees payments");
    for needle in ["4242424242424242", CARD] {
        let found: Vec<_> = rows.iter().filter(|(_, row)| row.contains(needle)).collect();
        assert!(found.is_empty(), "{needle} is in {found:?}");
        // Nor in any file of the site: the database's own files, mail, stored blobs.
        for (path, bytes) in every_file(&config.data_dir) {
            assert!(!holds(&bytes, needle.as_bytes()), "{needle} is in {}", path.display());
        }
    }

    b.close().await.unwrap();
    s.close().await.unwrap();
    v.close().await.unwrap();
    browser.server.abort();
}

/// The code an authenticator app holding `secret` (base32) shows `offset`
/// steps of 30 s from now.
fn authenticator_code(secret: &str, offset: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into()).unwrap();
    totp.generate((chrono::Utc::now().timestamp() + offset * 30) as u64)
}

/// Types `code` into the code form of the page showing it (`form` its id) and sends it.
async fn enter_code(b: &fantoccini::Client, form: &str, code: &str) {
    let field = b.find(Locator::Css(&format!("#{form} #f-code"))).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(code).await.unwrap();
    watch_refusals(b).await;
    b.find(Locator::Css(&format!("#{form} button[type=submit]"))).await.unwrap().click().await.unwrap();
}

/// Signs out with the header's button and opens the sign-in page from its link.
async fn sign_out_to_sign_in(b: &fantoccini::Client) {
    b.find(Locator::Css("form[action='/signout'] button")).await.unwrap().click().await.unwrap();
    until(b, ".flash", "signed out").await;
    b.find(Locator::LinkText("Sign in")).await.unwrap().click().await.unwrap();
}

#[rocket::async_test]
async fn acc_5_a_learner_turns_on_an_authenticator_app_and_signs_in_with_it_in_a_browser() {
    // promise: ACC-5 — in a real browser: a learner scans the QR code, turns on two-factor sign-in with
    // a code from the app, keeps a recovery code, then signs in with the password and an app code (a
    // wrong one refused), and again with the recovery code; the security page lists these events.
    let Some(browser) = start_browser().await else { return };
    let (b, site) = (browser.b.clone(), browser.site.clone());
    let p = Person {
        first: "Grace",
        last: "Hopper",
        username: "cobol59",
        email: "grace.hopper@example.org",
        password: "a nanosecond is eleven inches of wire",
    };

    // She signs up, signs in and opens the security page from her settings.
    sign_up_and_confirm(&b, &site, &p).await;
    sign_in(&b, &p).await;
    until(&b, "h1", "Welcome").await;
    b.find(Locator::LinkText("Account")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Account settings").await;
    b.find(Locator::LinkText("Security and two-factor sign-in")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Account security").await;
    until(&b, "#two-factor", "Protect your account with a second step at sign-in").await;
    watch_refusals(&b).await;
    b.find(Locator::Css("#two-factor form[action='/account/security/app'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Adding a factor needs her password first; then she starts again.
    until(&b, "h1", "Confirm it is you").await;
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(p.password).await.unwrap();
    b.find(Locator::Css("#step-up button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Account security").await;
    b.find(Locator::Css("#two-factor form[action='/account/security/app'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The setup page shows the QR code (really drawn) and the key.
    until(&b, "h1", "Set up an authenticator app").await;
    let qr_js = "const i = document.getElementById('totp-qr');
                 return i ? [i.complete, i.naturalWidth, i.naturalHeight, i.src.slice(0, 22)] : null;";
    let mut qr = serde_json::Value::Null;
    for _ in 0..50 {
        qr = b.execute(qr_js, vec![]).await.unwrap();
        if qr[0] == serde_json::json!(true) && qr[1].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(qr[1].as_u64().unwrap_or(0) > 0 && qr[2].as_u64().unwrap_or(0) > 0, "the QR code is not drawn: {qr}");
    assert_eq!(qr[3], "data:image/png;base64,", "{qr}");
    assert!(b.find(Locator::Id("totp-qr")).await.unwrap().is_displayed().await.unwrap(), "the QR code is shown");
    let secret: String =
        b.find(Locator::Id("totp-secret")).await.unwrap().text().await.unwrap().split_whitespace().collect();
    assert!(
        secret.len() >= 16 && secret.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
        "{secret}"
    );
    shot(&b, "acc5-qr").await;

    // She types the code her app shows and gets ten recovery codes, keeping one.
    let enrolment = authenticator_code(&secret, 0);
    enter_code(&b, "totp-confirm", &enrolment).await;
    until(&b, "h1", "Your recovery codes").await;
    until(&b, ".flash", "Two-factor sign-in is on.").await;
    let mut codes = Vec::new();
    for li in b.find_all(Locator::Css("#recovery-codes li")).await.unwrap() {
        codes.push(li.text().await.unwrap().trim().to_string());
    }
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert!(codes.iter().all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'), "{codes:?}");
    shot(&b, "acc5-recovery-codes").await;
    let kept = codes[3].clone();
    b.find(Locator::LinkText("I saved them")).await.unwrap().click().await.unwrap();
    until(&b, "#two-factor", "Signing in asks for a code from your authenticator app.").await;

    // Signing in now takes the password, then a code.
    sign_out_to_sign_in(&b).await;
    sign_in(&b, &p).await;
    until(&b, "h1", "Enter your code").await;
    until_at(&b, &format!("{site}/signin/verify")).await;
    assert!(b.find(Locator::Css("form[action='/signout']")).await.is_err(), "not signed in on the password alone");
    shot(&b, "acc5-code").await;
    // A wrong code is refused; so is the code already used to turn it on.
    enter_code(&b, "signin-code", "000000").await;
    until(&b, ".flash", "That code is not right or has expired").await;
    until_at(&b, &format!("{site}/signin/verify")).await;
    shot(&b, "acc5-wrong-code").await;
    enter_code(&b, "signin-code", &enrolment).await;
    until(&b, ".flash", "already used").await;
    assert!(b.find(Locator::Css("form[action='/signout']")).await.is_err(), "still not signed in");
    // The app's next code signs her in.
    enter_code(&b, "signin-code", &authenticator_code(&secret, 1)).await;
    until(&b, ".flash", "You are signed in.").await;
    assert_eq!(until(&b, "h1", "Welcome").await, "Welcome, Grace");
    until_at(&b, &format!("{site}/dashboard")).await;

    // Without her phone, the kept recovery code signs her in, and the site says it is spent.
    sign_out_to_sign_in(&b).await;
    sign_in(&b, &p).await;
    until(&b, "h1", "Enter your code").await;
    enter_code(&b, "signin-code", &kept).await;
    until(&b, ".flash", "You signed in with a recovery code, which now no longer works.").await;
    until(&b, "h1", "Welcome").await;

    // The security page says two-factor sign-in is on and lists what happened.
    b.goto(&format!("{site}/account/security")).await.unwrap();
    until(&b, "#two-factor", "9 recovery code(s) left").await;
    let events = until(&b, "#security-events", "signed in").await;
    for needle in [
        "signed in (with the app)",
        "signed in (with a recovery code)",
        "wrong code (at sign-in)",
        "authenticator app added",
    ] {
        assert!(events.contains(needle), "{needle:?} not in {events}");
    }
    shot(&b, "acc5-security-events").await;

    b.close().await.unwrap();
    browser.server.abort();
}

/// Asserts the page shown has recorded no refusal by its security policy
/// since [`watch_refusals`] started watching it.
async fn nothing_refused(b: &fantoccini::Client, when: &str) {
    let refused = b.execute("return window.refusedByPolicy || [];", vec![]).await.unwrap();
    assert_eq!(refused, serde_json::json!([]), "{when}: the page's security policy refused something");
}

/// Presses "Sign in with Test ID" on the sign-in page shown, watching for refusals.
async fn press_sign_in_with_test_id(b: &fantoccini::Client) {
    until(b, "h1", "Sign in").await;
    let button = b.find(Locator::Css("#signin-providers form[action='/signin/oidc/testid'] button")).await.unwrap();
    assert_eq!(button.text().await.unwrap(), "Sign in with Test ID");
    watch_refusals(b).await;
    button.click().await.unwrap();
}

#[rocket::async_test]
async fn acc_4_sign_in_with_a_provider_in_a_real_browser() {
    // promise: ACC-4 — in a real browser: a newcomer signs in with an OpenID Connect provider, creates
    // the account on Lyceum's page (name prefilled, no password asked), and next time the provider's
    // word alone signs them in; the Content-Security-Policy lets every form go where it must.
    // The site's port is chosen first: the provider must know its callback address.
    let port = free_port();
    let site = format!("http://127.0.0.1:{port}");
    let Some(registered) = crate::oidc::register_for(&site).await else { return };
    let (issuer, provider) = (registered.issuer.clone(), registered.provider());
    let Some(browser) = start_browser_with(port, |config| config.oidc_providers = vec![provider]).await else {
        return;
    };
    let (b, config) = (browser.b.clone(), browser.config.clone());
    assert_eq!(browser.site, site);
    assert_eq!(config.base_url(), site, "the registered callback is the site's own");

    // Both the sign-up and the sign-in pages offer the provider.
    b.goto(&format!("{site}/signup")).await.unwrap();
    until(&b, "#signin-providers", "Sign up with Test ID").await;
    b.goto(&format!("{site}/signin")).await.unwrap();
    shot(&b, "acc4-signin").await;

    // She presses "Sign in with Test ID" and signs in at the provider's own page.
    press_sign_in_with_test_id(&b).await;
    until_at(&b, &format!("{issuer}/interaction/")).await;
    until(&b, "h1", "Test ID").await;
    b.find(Locator::Id("email")).await.unwrap().send_keys("lin@example.org").await.unwrap();
    let name = b.find(Locator::Id("name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("Lin Wei").await.unwrap();
    shot(&b, "acc4-provider-login").await;
    b.find(Locator::Id("continue")).await.unwrap().click().await.unwrap();

    // Back on Lyceum: one more step, with what the provider told.
    until_at(&b, &format!("{site}/signin/oidc/finish")).await;
    until(&b, "h1", "Continue with Test ID").await;
    watch_refusals(&b).await;
    until(&b, ".flash", "Test ID told us who you are. One more step.").await;
    until(&b, "main", "lin@example.org").await;
    let value = |id: &'static str| {
        let b = b.clone();
        async move { b.find(Locator::Id(id)).await.unwrap().prop("value").await.unwrap().unwrap_or_default() }
    };
    assert_eq!(value("f-first_name").await, "Lin");
    assert_eq!(value("f-last_name").await, "Wei");
    assert_eq!(value("f-username").await, "lin", "suggested from the email address");
    assert!(b.find(Locator::Css("input[type=password]")).await.is_err(), "no password is asked for");
    let username = b.find(Locator::Id("f-username")).await.unwrap();
    username.clear().await.unwrap();
    username.send_keys("linwei").await.unwrap();
    b.execute("document.getElementById('f-date_of_birth').value = '1990-03-04';", vec![]).await.unwrap();
    b.find(Locator::Css("form[action='/signin/oidc/create'] input[name=accept_terms]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    shot(&b, "acc4-finish").await;
    nothing_refused(&b, "the finish page").await;
    let create = b.find(Locator::Css("form[action='/signin/oidc/create'] button[type=submit]")).await.unwrap();
    assert_eq!(create.text().await.unwrap(), "Create account");
    create.click().await.unwrap();

    // She lands on her dashboard, signed in.
    until_at(&b, &format!("{site}/dashboard")).await;
    until(&b, ".flash", "Welcome to Lyceum!").await;
    assert_eq!(until(&b, "h1", "Welcome").await, "Welcome, Lin");
    until(&b, ".user-menu", "Signed in as linwei").await;
    shot(&b, "acc4-dashboard").await;

    // She signs out; next time the provider remembers her: no form at all, straight in.
    sign_out_to_sign_in(&b).await;
    assert!(b.find(Locator::Css("form[action='/signout']")).await.is_err(), "signed out");
    press_sign_in_with_test_id(&b).await;
    until_at(&b, &format!("{site}/dashboard")).await;
    until(&b, ".flash", "You are signed in with Test ID.").await;
    assert_eq!(until(&b, "h1", "Welcome").await, "Welcome, Lin");
    until(&b, ".user-menu", "Signed in as linwei").await;
    shot(&b, "acc4-signed-in-again").await;

    // No Lyceum password was ever set: the account opens only through the provider.
    {
        use diesel::prelude::*;
        use lyceum::db::schema::users;
        let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
        let (email, hash): (String, String) = users::table
            .filter(users::username.eq("linwei"))
            .select((users::email, users::password_hash))
            .first(&mut *db.get().unwrap())
            .unwrap();
        assert_eq!(email, "lin@example.org");
        assert!(hash.is_empty(), "no password: {hash:?}");
    }

    b.close().await.unwrap();
    browser.server.abort();
}

/// Clicks each link in turn, waiting each time for the page whose heading it names.
async fn follow(b: &fantoccini::Client, steps: &[(&str, &str)]) {
    for (link, heading) in steps {
        b.find(Locator::LinkText(link)).await.unwrap().click().await.unwrap();
        until(b, "h1", heading).await;
    }
}

/// Operator staff's part, done directly: a partner of `kind`, with `admin`
/// appointed to act for it.
fn staff_sets_up_partner(
    config: &lyceum::config::Config,
    kind: lyceum::consent::PartnerKind,
    (slug, name, email): (&str, &str, &str),
    admin: &str,
) {
    use diesel::prelude::*;
    use lyceum::consent::partners;
    use lyceum::db::schema::users;
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let mut pooled = db.get().unwrap();
    let conn: &mut lyceum::db::Conn = &mut pooled;
    let user = |conn: &mut lyceum::db::Conn, name: &str| -> i64 {
        users::table.filter(users::username.eq(name)).select(users::id).first(conn).unwrap()
    };
    let (staff, admin) = (user(conn, "staff"), user(conn, admin));
    let partner =
        partners::create(conn, kind, slug, name, None, email, lyceum::db::now()).map_err(|e| e.to_string()).unwrap();
    partners::appoint(conn, &partner, admin, staff).unwrap();
}

/// The cells of the row of `#staff-table` naming `name`, as text.
async fn staff_row(b: &fantoccini::Client, name: &str) -> Vec<String> {
    let row = format!("//table[@id='staff-table']//tbody/tr[td[1][contains(., '{name}')]]");
    let mut cells = Vec::new();
    for td in b.find_all(Locator::XPath(&format!("{row}/td"))).await.unwrap() {
        cells.push(td.text().await.unwrap().trim().to_string());
    }
    assert_eq!(cells.len(), 9, "one row for {name}: {cells:?}");
    cells
}

/// A date as the dashboard shows it ("5 Jun 2025").
fn shown_day(d: chrono::NaiveDate) -> String {
    lyceum::web::format::day(d)
}

#[rocket::async_test]
async fn shr_7_an_organization_admin_uploads_staff_assigns_a_course_and_sees_it_completed() {
    // promise: SHR-7 — in a real browser: an organization's admin adds staff from pasted CSV, assigns them
    // the course with a due date, and sees a staff member's completion (and another's "not started")
    // on the dashboard; the staff member sets a password by email, signs in and completes the course.
    let Some(browser) = start_browser().await else { return };
    let (b, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    let boss = Person {
        first: "Olga",
        last: "Taussky",
        username: "olga",
        email: "olga@globex.example",
        password: "matrices commute only rarely",
    };
    let lin = Person {
        first: "Lin",
        last: "Wei",
        username: "lin",
        email: "lin@globex.example",
        password: "a kettle sings before it boils",
    };

    // Olga has an account; staff make Globex an organization and appoint her to act for it.
    sign_up_and_confirm(&b, &site, &boss).await;
    staff_sets_up_partner(
        &config,
        lyceum::consent::PartnerKind::Organization,
        ("globex", "Globex", "it@globex.example"),
        boss.username,
    );
    sign_in(&b, &boss).await;
    until(&b, "h1", "Welcome").await;
    follow(&b, &[("Partners", "Partners"), ("Globex", "Globex"), ("Staff and training", "Staff and training")]).await;
    let dashboard = until_at(&b, &format!("{site}/partners/globex/staff")).await;
    until(&b, "main", "No staff yet.").await;
    watch_refusals(&b).await;

    // She pastes two staff members and adds them.
    let csv = "username,email,given_name,family_name,title,department\n\
               lin,lin@globex.example,Lin,Wei,Engineer,Platform\n\
               ada,ada@globex.example,Ada,Lovelace,Analyst,Research\n";
    b.find(Locator::Id("f-csv")).await.unwrap().send_keys(csv).await.unwrap();
    shot(&b, "shr7-upload").await;
    nothing_refused(&b, "the dashboard before the upload").await;
    b.find(Locator::Css("#upload-form button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "2 staff member(s) added.").await;
    assert_eq!(until_at(&b, &dashboard).await, dashboard);
    let table = until(&b, "#staff-table", "Lin Wei").await;
    assert!(table.contains("Ada Lovelace") && table.contains("Engineer"), "{table}");
    for name in ["Lin Wei", "Ada Lovelace"] {
        let row = staff_row(&b, name).await;
        assert_eq!((row[4].as_str(), row[5].as_str()), ("never", "nothing assigned"), "{name}: {row:?}");
    }
    watch_refusals(&b).await;

    // She assigns Introduction to Python to everyone, due in a week.
    let next_week = chrono::Utc::now().date_naive() + chrono::Duration::days(7);
    b.find(Locator::XPath("//select[@id='f-assign-run']/option[starts-with(., 'Introduction to Python')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find(Locator::Css("#f-assign-target option[value=all]")).await.unwrap().click().await.unwrap();
    b.execute(&format!("document.getElementById('f-assign-due').value = '{next_week}';"), vec![]).await.unwrap();
    shot(&b, "shr7-assign").await;
    nothing_refused(&b, "the dashboard before assigning").await;
    let assign = b.find(Locator::Css("#assign-form button[type=submit]")).await.unwrap();
    assert_eq!(assign.text().await.unwrap(), "Assign");
    assign.click().await.unwrap();
    until(&b, ".flash", "Assigned to 2 staff member(s); each was emailed.").await;
    for name in ["Lin Wei", "Ada Lovelace"] {
        let row = staff_row(&b, name).await;
        assert!(row[5].starts_with("Introduction to Python ("), "{name}: {row:?}");
        assert_eq!(row[6], shown_day(next_week), "{name}: {row:?}");
        assert_eq!(row[7], "not started", "{name}: {row:?}");
    }
    shot(&b, "shr7-assigned").await;

    // Lin is told by email; she has no password yet, so she sets one from "Forgot your password?".
    sign_out_to_sign_in(&b).await;
    open_mail(&b, &site, "Globex asks you to take Introduction to Python", lin.email).await;
    b.goto(&format!("{site}/signin")).await.unwrap();
    until(&b, "h1", "Sign in").await;
    b.find(Locator::LinkText("Forgot your password?")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Reset your password").await;
    b.find(Locator::Id("f-email")).await.unwrap().send_keys(lin.email).await.unwrap();
    b.find(Locator::Css("form[action='/password/forgot'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "If an account uses that address").await;
    open_mail(&b, &site, "Reset your password", lin.email).await;
    b.find(Locator::Css("a[href*='/password/reset/']")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Choose a new password").await;
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(lin.password).await.unwrap();
    b.find(Locator::Css("form[action^='/password/reset/'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, ".flash", "Your password has been changed").await;

    // She signs in, accepting the policies if she is asked to.
    sign_in(&b, &lin).await;
    let mut url = String::new();
    for _ in 0..50 {
        url = b.current_url().await.unwrap().to_string();
        if url.starts_with(&format!("{site}/policies/accept")) || url.starts_with(&format!("{site}/dashboard")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if url.starts_with(&format!("{site}/policies/accept")) {
        until(&b, "h1", "We changed our policies").await;
        b.find(Locator::Css("input[name=accept]")).await.unwrap().click().await.unwrap();
        b.find(Locator::Css("form[action='/policies/accept'] button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until(&b, ".flash", "Thank you. You are signed in.").await;
    }
    assert_eq!(until(&b, "h1", "Welcome").await, "Welcome, Lin");

    // She enrolls and works through every unit, answering each quiz correctly.
    enroll_in_intro_python(&b, &site).await;
    let quizzes = quizzes_of(&config, "intro-python");
    assert!(!quizzes.is_empty());
    b.find(Locator::LinkText("Start")).await.unwrap().click().await.unwrap();
    loop {
        until(&b, "nav[aria-label=Breadcrumb]", "Introduction to Python").await;
        let unit = b.current_url().await.unwrap().to_string();
        for (_, block, questions) in &quizzes {
            if b.find(Locator::Id(&format!("block-{block}"))).await.is_ok() {
                answer_quiz_correctly(&b, *block, questions).await;
            }
        }
        let finish = b.find(Locator::Css("form[action$='/complete'] button")).await.unwrap();
        let last = finish.text().await.unwrap() == "Mark complete";
        // By script, as in the other course tests: independent of the window's layout.
        b.execute("arguments[0].click();", vec![serde_json::to_value(&finish).unwrap()]).await.unwrap();
        until_left(&b, &unit).await;
        if last {
            break;
        }
    }
    until(&b, "h1", "You passed Introduction to Python").await;
    let back = b.find(Locator::LinkText("Back to the course")).await.unwrap();
    b.execute("arguments[0].click();", vec![serde_json::to_value(&back).unwrap()]).await.unwrap();
    until(&b, "h2", "Your progress").await;
    until(&b, "[data-completed]", "Completed").await;
    let progress = b.find(Locator::Id("progress")).await.unwrap().attr("value").await.unwrap().unwrap_or_default();
    assert_eq!(progress, "100");
    shot(&b, "shr7-lin-completed").await;

    // Olga signs back in: Lin has completed the course; Ada has not started.
    sign_out_to_sign_in(&b).await;
    sign_in(&b, &boss).await;
    until(&b, "h1", "Welcome").await;
    b.goto(&dashboard).await.unwrap();
    until(&b, "h1", "Staff and training").await;
    watch_refusals(&b).await;
    let today = chrono::Utc::now().date_naive();
    let lin_row = staff_row(&b, "Lin Wei").await;
    assert_eq!(lin_row[7], "100%", "{lin_row:?}");
    assert!(
        [shown_day(today), shown_day(today - chrono::Duration::days(1))].contains(&lin_row[8]),
        "completed today: {lin_row:?}"
    );
    assert_ne!(lin_row[4], "never", "Lin signed in: {lin_row:?}");
    let ada_row = staff_row(&b, "Ada Lovelace").await;
    assert_eq!((ada_row[4].as_str(), ada_row[7].as_str(), ada_row[8].as_str()), ("never", "not started", ""));
    assert!(b.find(Locator::Css("#staff-table tr.overdue")).await.is_err(), "nothing is overdue yet");
    shot(&b, "shr7-dashboard").await;
    let download = b.find(Locator::Css("a[href$='staff.csv']")).await.unwrap();
    let href = download.attr("href").await.unwrap().unwrap_or_default();
    assert_eq!(href, "/partners/globex/staff.csv");
    let (status, kind, csv) = fetch_in_page(&b, &href).await;
    assert_eq!(status, 200, "{csv}");
    assert!(kind.starts_with("text/csv"), "{kind}");
    let line = csv.lines().find(|l| l.contains("lin@globex.example")).unwrap_or_else(|| panic!("{csv}"));
    assert!(line.contains(",100,"), "{line}");
    nothing_refused(&b, "the dashboard").await;

    b.close().await.unwrap();
    browser.server.abort();
}

/// An exam booking as stored: reference, status, and the result (grade,
/// score, passed, source) if one was received.
type StoredBooking = (String, String, Option<(String, Option<f64>, bool, String)>);

/// Every exam booking of the user `username`, read from the database, with its result.
fn exam_bookings_of(config: &lyceum::config::Config, username: &str) -> Vec<StoredBooking> {
    use diesel::prelude::*;
    use lyceum::db::schema::{exam_bookings, exam_results, users};
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let mut pooled = db.get().unwrap();
    let conn: &mut lyceum::db::Conn = &mut pooled;
    let user: i64 = users::table.filter(users::username.eq(username)).select(users::id).first(conn).unwrap();
    let bookings: Vec<(i64, String, String)> = exam_bookings::table
        .filter(exam_bookings::user_id.eq(user))
        .order(exam_bookings::id)
        .select((exam_bookings::id, exam_bookings::reference, exam_bookings::status))
        .load(conn)
        .unwrap();
    bookings
        .into_iter()
        .map(|(id, reference, status)| {
            let result = exam_results::table
                .filter(exam_results::booking_id.eq(id))
                .select((exam_results::grade, exam_results::score, exam_results::passed, exam_results::source))
                .first(conn)
                .optional()
                .unwrap();
            (reference, status, result)
        })
        .collect()
}

/// The day of the exam comes: every session started two hours ago.
fn exams_took_place(config: &lyceum::config::Config) {
    use diesel::prelude::*;
    use lyceum::db::schema::exam_sessions;
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let mut pooled = db.get().unwrap();
    let conn: &mut lyceum::db::Conn = &mut pooled;
    diesel::update(exam_sessions::table)
        .set(exam_sessions::starts_at.eq(lyceum::db::now() - chrono::Duration::hours(2)))
        .execute(conn)
        .unwrap();
}

/// The consents of the user `username` for exam purposes, as (purpose, scope, status), by purpose.
fn exam_consents_of(config: &lyceum::config::Config, username: &str) -> Vec<(String, String, String)> {
    use diesel::prelude::*;
    use lyceum::db::schema::{consents, users};
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let mut pooled = db.get().unwrap();
    let conn: &mut lyceum::db::Conn = &mut pooled;
    let user: i64 = users::table.filter(users::username.eq(username)).select(users::id).first(conn).unwrap();
    consents::table
        .filter(consents::user_id.eq(user))
        .filter(consents::purpose.like("exam%"))
        .order(consents::purpose)
        .select((consents::purpose, consents::scope, consents::status))
        .load(conn)
        .unwrap()
}

#[rocket::async_test]
async fn crt_8_a_learner_books_an_exam_and_sees_the_result_in_a_browser() {
    // promise: CRT-8 — in a real browser: an exam body opens a session for a course; a learner enrolled
    // in it books, agreeing to what the exam body receives and, separately, to share her support needs;
    // the exam body sees the candidate and uploads the result; the learner is emailed and sees it, and
    // can no longer cancel the booking.
    let Some(browser) = start_browser().await else { return };
    let (e, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    // The learner's own browser, with its own cookies.
    let (l, _profile) = browser.another_session().await;
    let board = Person {
        first: "Karen",
        last: "Sparck Jones",
        username: "karen",
        email: "karen@board.example",
        password: "inverse document frequency weighs words",
    };
    let learner = Person {
        first: "Annie",
        last: "Easley",
        username: "annie",
        email: "annie.easley@example.org",
        password: "centaur rockets on a winter morning",
    };
    let title = "Python Certificate, spring sitting";
    let needs = "Dyslexia";
    let adjustments = "25% extra time and a reader";
    // Local times in the exam body's zone, well ahead; the booking deadline before the start.
    let today = chrono::Utc::now().date_naive();
    let starts = format!("{}T09:30", today + chrono::Duration::days(60));
    let deadline = format!("{}T17:00", today + chrono::Duration::days(45));

    // Both have accounts; staff make Awarding Board an exam body and appoint Karen to act for it.
    sign_up_and_confirm(&e, &site, &board).await;
    sign_up_and_confirm(&l, &site, &learner).await;
    staff_sets_up_partner(
        &config,
        lyceum::consent::PartnerKind::ExamBody,
        ("awarding-board", "Awarding Board", "exams@board.example"),
        board.username,
    );

    // Karen opens the exam body's sessions from the Partners page.
    sign_in(&e, &board).await;
    until(&e, "h1", "Welcome").await;
    follow(
        &e,
        &[
            ("Partners", "Partners"),
            ("Awarding Board", "Awarding Board"),
            ("Exam sessions and results", "Exam sessions"),
        ],
    )
    .await;
    let sessions = until_at(&e, &format!("{site}/partners/awarding-board/exams")).await;
    until(&e, "main", "No sessions yet.").await;
    watch_refusals(&e).await;

    // She fills in the New session form: online, five places, London time.
    let course = e
        .find(Locator::XPath("//select[@id='f-course']/option[.='Introduction to Python']"))
        .await
        .expect("the demo course is offered");
    let course_id = course.attr("value").await.unwrap().expect("the course's id");
    course.click().await.unwrap();
    e.find(Locator::Id("f-title")).await.unwrap().send_keys(title).await.unwrap();
    for (id, value) in [("f-starts", &starts), ("f-deadline", &deadline)] {
        e.execute(
            "document.getElementById(arguments[0]).value = arguments[1];",
            vec![serde_json::json!(id), serde_json::json!(value)],
        )
        .await
        .unwrap();
        let set = e.find(Locator::Id(id)).await.unwrap().prop("value").await.unwrap();
        assert_eq!(set.as_deref(), Some(value.as_str()), "{id} holds the date and time");
    }
    e.find(Locator::Id("f-time_zone")).await.unwrap().send_keys("Europe/London").await.unwrap();
    e.find(Locator::Css("#new-session input[name=mode][value=online]")).await.unwrap().click().await.unwrap();
    e.find(Locator::Id("f-capacity")).await.unwrap().send_keys("5").await.unwrap();
    shot(&e, "crt8-new-session").await;
    nothing_refused(&e, "the sessions page before opening one").await;
    let open = e.find(Locator::Css("#new-session button[type=submit]")).await.unwrap();
    assert_eq!(open.text().await.unwrap(), "Open for booking");
    open.click().await.unwrap();

    // She lands on the session's page: no candidates yet.
    until(&e, ".flash", "The session is open for booking.").await;
    until(&e, "h1", title).await;
    let session_page = until_at(&e, &format!("{sessions}/")).await;
    let session_id: i64 = session_page.rsplit('/').next().unwrap().parse().expect("the session's page");
    let facts = e.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(facts.contains("09:30 (Europe/London)") && facts.contains("Online"), "{facts}");
    assert!(facts.contains("0 of 5 booked"), "{facts}");
    until(&e, "#candidates", "No bookings yet.").await;
    shot(&e, "crt8-session-opened").await;

    // Annie signs in, enrolls in the course and records her support needs.
    sign_in(&l, &learner).await;
    until(&l, "h1", "Welcome").await;
    enroll_in_intro_python(&l, &site).await;
    l.goto(&format!("{site}/account/support-needs")).await.unwrap();
    until(&l, "h1", "Support needs").await;
    l.find(Locator::Id("f-needs")).await.unwrap().send_keys(needs).await.unwrap();
    l.find(Locator::Id("f-adjustments")).await.unwrap().send_keys(adjustments).await.unwrap();
    l.find(Locator::Css("form[action='/account/support-needs'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&l, ".flash", "Saved. Only the support team can read it.").await;

    // My exams offers the session for her course; she opens its booking form.
    l.goto(&format!("{site}/exams")).await.unwrap();
    until(&l, "h1", "My exams").await;
    until(&l, "main", "You have not booked an exam.").await;
    let offered = until(&l, "#bookable", title).await;
    assert!(offered.contains("Introduction to Python") && offered.contains("Awarding Board"), "{offered}");
    assert!(offered.contains("5 of 5 places free") && offered.contains("Europe/London"), "{offered}");
    shot(&l, "crt8-my-exams-offered").await;
    let book = l.find(Locator::Css(&format!("#bookable a[href='/exams/sessions/{session_id}/book']"))).await.unwrap();
    assert_eq!(book.text().await.unwrap(), "Book");
    book.click().await.unwrap();
    until(&l, "h1", &format!("Book {title}")).await;

    // It shows what the exam body receives, and asks separately about her support needs, unticked.
    let shown = l.find(Locator::Css(".shared-fields")).await.unwrap().text().await.unwrap();
    for field in ["Your full name", "Your email address", "Your date of birth"] {
        assert!(shown.contains(field), "the booking form shows {field:?}: {shown}");
    }
    assert!(!shown.contains("support needs"), "support needs are not part of the registration: {shown}");
    let support = "//fieldset[legend[contains(., 'Your support needs')]]";
    let question = l.find(Locator::XPath(support)).await.expect("a separate support-needs question");
    assert!(question.text().await.unwrap().contains("Yes, send my support needs to Awarding Board"));
    let tick = l.find(Locator::XPath(&format!("{support}//input[@name='share_support']"))).await.unwrap();
    assert!(!tick.is_selected().await.unwrap(), "not ticked for her");
    assert!(l.find(Locator::Id("f-date_of_birth")).await.is_err(), "her date of birth is known already");
    tick.click().await.unwrap();
    assert!(tick.is_selected().await.unwrap());
    shot(&l, "crt8-booking-form").await;
    watch_refusals(&l).await;
    let confirm =
        l.find(Locator::Css(&format!("form[action='/exams/sessions/{session_id}/book'] button"))).await.unwrap();
    assert_eq!(confirm.text().await.unwrap(), "Book this exam");
    confirm.click().await.unwrap();

    // Booked: back on My exams, with the booking reference.
    let flash = until(&l, ".flash", "Booked. Your booking reference is EX-").await;
    until_at(&l, &format!("{site}/exams")).await;
    let reference = flash
        .split_whitespace()
        .find(|w| w.starts_with("EX-"))
        .map(|w| w.trim_end_matches('.').to_string())
        .unwrap_or_else(|| panic!("a reference in {flash:?}"));
    let booked = until(&l, "#bookings", &reference).await;
    assert!(booked.contains(title) && booked.contains("Booked"), "{booked}");
    let row = format!("//table[@id='bookings']//tr[td/code[.='{reference}']]");
    assert!(l.find(Locator::XPath(&format!("{row}//button[.='Cancel']"))).await.is_ok(), "she may still cancel");
    shot(&l, "crt8-booked").await;
    assert_eq!(exam_bookings_of(&config, learner.username), vec![(reference.clone(), "booked".into(), None)]);
    let scope = format!("course:{course_id}");
    assert_eq!(
        exam_consents_of(&config, learner.username),
        vec![
            ("exam_registration".into(), scope.clone(), "granted".into()),
            ("exam_support".into(), scope.clone(), "granted".into())
        ],
        "her two decisions, each recorded on its own"
    );

    // Karen sees Annie among the candidates, with the support needs she agreed to share.
    e.goto(&session_page).await.unwrap();
    until(&e, "h1", title).await;
    let candidates = until(&e, "#candidates tbody", learner.email).await;
    for needle in ["Annie Easley", "15 June 1988", needs, adjustments, "booked"] {
        assert!(candidates.contains(needle), "{needle:?} not in {candidates}");
    }
    let shown_ref = e.find(Locator::Css("#candidates tbody td code")).await.unwrap().text().await.unwrap();
    assert_eq!(shown_ref, reference, "the exam body knows the booking by its reference");
    let facts = e.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(facts.contains("1 of 5 booked"), "{facts}");
    shot(&e, "crt8-candidates").await;

    // After the exam, she records the result from a CSV typed into the form.
    exams_took_place(&config);
    watch_refusals(&e).await;
    e.find(Locator::Css("#results-form textarea[name=csv]"))
        .await
        .unwrap()
        .send_keys(&format!("booking,grade,score,passed\n{shown_ref},Merit,72,yes"))
        .await
        .unwrap();
    shot(&e, "crt8-results-csv").await;
    nothing_refused(&e, "the session page before the upload").await;
    let record = e.find(Locator::Css("#results-form button[type=submit]")).await.unwrap();
    assert_eq!(record.text().await.unwrap(), "Record results");
    record.click().await.unwrap();
    until(&e, ".flash", "1 result(s) recorded and the candidates emailed; 0 had been received already.").await;
    assert_eq!(until_at(&e, &session_page).await, session_page);
    let row = format!("//table[@id='candidates']//tr[td/code[.='{reference}']]");
    let cells = e.find(Locator::XPath(&format!("{row}/td[last()]"))).await.unwrap().text().await.unwrap();
    assert!(cells.starts_with("Merit (72"), "the result in the table: {cells:?}");
    shot(&e, "crt8-result-recorded").await;
    assert_eq!(
        exam_bookings_of(&config, learner.username),
        vec![(reference.clone(), "booked".into(), Some(("Merit".into(), Some(72.0), true, "csv".into())))],
        "exactly one result, from the CSV"
    );

    // Annie is emailed, and sees the result on My exams.
    open_mail(&l, &site, "Your exam result", learner.email).await;
    let mail = l.find(Locator::Css(".email-body")).await.unwrap().text().await.unwrap();
    assert!(mail.contains(title) && mail.contains("Merit") && mail.contains(&reference), "{mail}");
    l.goto(&format!("{site}/exams")).await.unwrap();
    until(&l, "h1", "My exams").await;
    let row = format!("//table[@id='bookings']//tr[td/code[.='{reference}']]");
    let mine = l.find(Locator::XPath(&row)).await.unwrap().text().await.unwrap();
    assert!(mine.contains("Merit") && mine.contains("passed") && !mine.contains("not passed"), "{mine}");
    let grade = l.find(Locator::XPath(&format!("{row}//strong"))).await.unwrap().text().await.unwrap();
    assert_eq!(grade, "Merit");
    shot(&l, "crt8-result-seen").await;

    // With a result, the booking can no longer be cancelled (nor moved).
    assert!(l.find(Locator::XPath(&format!("{row}//button[.='Cancel']"))).await.is_err(), "no Cancel button");
    assert!(l.find(Locator::XPath(&format!("{row}//a[.='Reschedule']"))).await.is_err(), "no Reschedule link");
    assert!(l.find(Locator::Css("form[action$='/cancel']")).await.is_err(), "no cancel form anywhere");
    assert_eq!(exam_bookings_of(&config, learner.username).len(), 1);

    l.close().await.unwrap();
    e.close().await.unwrap();
    browser.server.abort();
}

/// Whether a script of the review's files ran in the page the browser shows.
async fn pwned(b: &fantoccini::Client) -> bool {
    let title = b.title().await.unwrap_or_default();
    let flag = b.execute("return window.pwned === true;", vec![]).await.unwrap_or_default();
    title == "PWNED" || flag == serde_json::json!(true)
}

#[rocket::async_test]
async fn sec_uploaded_html_svg_and_script_never_run_as_staff_or_visitor() {
    let Some(browser) = start_browser().await else { return };
    let (b, site) = (browser.b.clone(), browser.site.clone());
    let (video, logo, tool, svg) = crate::uploads::plant_old_uploads(&browser.config, "intro-python");

    // A visitor opening the SVG as a public image: refused, nothing runs.
    b.goto(&format!("{site}/media/{svg}")).await.unwrap();
    assert!(!pwned(&b).await, "an SVG under /media ran script");

    // Staff, who may preview any course, open each file.
    let staff = lyceum::demo::accounts().remove(0);
    b.goto(&format!("{site}/signin")).await.unwrap();
    until(&b, "h1", "Sign in").await;
    b.find(Locator::Id("f-login")).await.unwrap().send_keys(&staff.email).await.unwrap();
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(&staff.password).await.unwrap();
    b.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&b, "h1", "Welcome").await;
    for block in [video, logo, tool] {
        b.goto(&format!("{site}/learn/intro-python/files/{block}")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!pwned(&b).await, "file of block {block} ran script as staff");
    }
    // Nor can the script be pulled into one of the site's own pages.
    b.goto(&format!("{site}/courses")).await.unwrap();
    until(&b, "h1", "Course catalog").await;
    let loaded = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const s = document.createElement('script');
             s.src = arguments[0];
             s.onload = () => done('loaded'); s.onerror = () => done('refused');
             document.head.appendChild(s);",
            vec![serde_json::json!(format!("/learn/intro-python/files/{tool}"))],
        )
        .await
        .unwrap();
    assert_eq!(loaded, serde_json::json!("refused"), "a text file is never run as script");
    assert!(!pwned(&b).await);

    b.close().await.unwrap();
    browser.server.abort();
}

/// Fills the field `css` (cleared first) with `text`.
async fn fill(b: &fantoccini::Client, css: &str, text: &str) {
    let el = b.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("no {css}"));
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// The value of the field `css`.
async fn value_of(b: &fantoccini::Client, css: &str) -> String {
    let js = format!("return document.querySelector({css:?}).value;");
    b.execute(&js, vec![]).await.unwrap().as_str().unwrap_or_default().to_string()
}

#[rocket::async_test]
async fn an_instructor_builds_a_quiz_in_the_studio_without_toml_and_a_learner_takes_it() {
    // A Studio an instructor can use (issue 30): the kind chosen switches the
    // fields, the Markdown preview follows the typing, questions and choices
    // are added in the page, an error keeps every input; then a learner
    // sees the quiz and passes it.
    let Some(browser) = start_browser().await else { return };
    let (b, site, config) = (browser.b.clone(), browser.site.clone(), browser.config.clone());
    sign_in_demo(&b, &site, &lyceum::demo::accounts().remove(0)).await;
    b.goto(&format!("{site}/studio/courses/intro-python")).await.unwrap();
    until(&b, "h1", "Introduction to Python").await;
    b.find(Locator::Css(".outline-section ol a")).await.unwrap().click().await.unwrap();
    until(&b, "#add-block-h", "Add a block").await;
    let unit = b.current_url().await.unwrap().path().rsplit('/').next().unwrap().parse::<i64>().unwrap();
    let quizzes_before = quizzes_of(&config, "intro-python").len();
    let shown = |kind: &str| format!("return !document.querySelector('#n-{kind}').hidden;");

    // Text: the preview follows the typing, rendered (and sanitised) by the server.
    assert_eq!(b.execute(&shown("text"), vec![]).await.unwrap(), serde_json::json!(true));
    assert_eq!(b.execute(&shown("quiz"), vec![]).await.unwrap(), serde_json::json!(false));
    fill(&b, "#n-text-markdown", "Some **bold** words <script>window.pwned = 1</script>").await;
    until(&b, "#n-text-preview strong", "bold").await;
    assert_eq!(b.execute("return window.pwned === undefined;", vec![]).await.unwrap(), serde_json::json!(true));
    let preview = b.find(Locator::Css("#n-text-preview")).await.unwrap().html(true).await.unwrap();
    assert!(!preview.contains("<script"), "{preview}");

    // Quiz: its fields only, switched in the page.
    b.find(Locator::Css("#n-kind option[value=quiz]")).await.unwrap().click().await.unwrap();
    until_true(&b, &shown("quiz"), "the quiz fields show").await;
    for other in ["text", "video", "resource", "live"] {
        let hidden = format!("const f = document.querySelector('#n-{other}'); return f.hidden && f.disabled;");
        assert_eq!(b.execute(&hidden, vec![]).await.unwrap(), serde_json::json!(true), "{other} hidden");
    }
    assert_eq!(count(&b, "return document.querySelectorAll('textarea.mono').length;").await, 0, "no TOML box");
    fill(&b, "#n-quiz-title", "Studio check").await;
    fill(&b, "#n-quiz-q0-prompt", "Which keyword defines a function?").await;
    fill(&b, "#n-quiz-q0-c0", "func").await;
    fill(&b, "#n-quiz-q0-c0-feedback", "Not quite: func is Go's keyword.").await;
    fill(&b, "#n-quiz-q0-c1", "def").await;
    fill(&b, "#n-quiz-q0-c1-feedback", "Yes: def starts a definition.").await;
    press(&b, b.find(Locator::Css("#n-quiz-q0 [data-add-choice]")).await.unwrap()).await;
    until_true(&b, "return !!document.querySelector('#n-quiz-q0-c2');", "a third choice").await;
    fill(&b, "#n-quiz-q0-c2", "lambda").await;
    // The new choice comes with its own, empty, feedback field.
    assert_eq!(value_of(&b, "#n-quiz-q0-c2-feedback").await, "", "a new choice's feedback starts empty");
    assert_eq!(
        b.find(Locator::Css("#n-quiz-q0-c2-feedback")).await.unwrap().attr("name").await.unwrap().as_deref(),
        Some("quiz.questions[0].choices[2].feedback")
    );
    fill(&b, "#n-quiz-q0-c2-feedback", "A lambda has no name.").await;
    press(&b, b.find(Locator::Css("input[name='quiz.questions[0].choices[1].correct']")).await.unwrap()).await;
    fill(&b, "#n-quiz-q0-feedback", "`def` starts a function definition.").await;
    press(&b, b.find(Locator::Css("[data-add-question]")).await.unwrap()).await;
    until_true(&b, "return !!document.querySelector('#n-quiz-q1');", "a second question").await;
    b.find(Locator::Css("#n-quiz-q1-kind option[value=numeric]")).await.unwrap().click().await.unwrap();
    until_true(&b, "return !document.querySelector('#n-quiz-q1 [data-for-kinds=numeric]').hidden;", "numeric fields")
        .await;
    assert_eq!(
        b.execute("return document.querySelector('#n-quiz-q1 [data-for-kinds=\"single multiple\"]').hidden;", vec![])
            .await
            .unwrap(),
        serde_json::json!(true),
        "no choices for a number"
    );
    fill(&b, "#n-quiz-q1-prompt", "What is 7 / 2?").await;
    fill(&b, "#n-quiz-q1-answer", "three and a half").await;
    fill(&b, "#n-quiz-q1-tolerance", "0.01").await;
    shot(&b, "studio-quiz-editor").await;
    let unit_url = b.current_url().await.unwrap().to_string();
    press(&b, b.find(Locator::Css("#add-block .form-actions button")).await.unwrap()).await;
    until_left(&b, &unit_url).await;

    // The error names the field; everything typed is still there.
    until(&b, "#n-problems", "The answer is a number").await;
    until(&b, "#n-quiz-q1-answer-error", "The answer is a number").await;
    assert_eq!(
        b.find(Locator::Css("#n-quiz-q1-answer")).await.unwrap().attr("aria-describedby").await.unwrap().as_deref(),
        Some("n-quiz-q1-answer-error")
    );
    for (css, want) in [
        ("#n-kind", "quiz"),
        ("#n-quiz-title", "Studio check"),
        ("#n-quiz-q0-prompt", "Which keyword defines a function?"),
        ("#n-quiz-q0-c2", "lambda"),
        ("#n-quiz-q0-c0-feedback", "Not quite: func is Go's keyword."),
        ("#n-quiz-q0-c1-feedback", "Yes: def starts a definition."),
        ("#n-quiz-q0-c2-feedback", "A lambda has no name."),
        ("#n-quiz-q0-feedback", "`def` starts a function definition."),
        ("#n-quiz-q1-kind", "numeric"),
        ("#n-quiz-q1-prompt", "What is 7 / 2?"),
        ("#n-quiz-q1-answer", "three and a half"),
        ("#n-quiz-q1-tolerance", "0.01"),
    ] {
        assert_eq!(value_of(&b, css).await, want, "{css} kept");
    }
    assert_eq!(
        b.execute(
            "return document.querySelector(\"input[name='quiz.questions[0].choices[1].correct']\").checked;",
            vec![]
        )
        .await
        .unwrap(),
        serde_json::json!(true),
        "the tick kept"
    );
    fill(&b, "#n-quiz-q1-answer", "3.5").await;
    press(&b, b.find(Locator::Css("#add-block .form-actions button")).await.unwrap()).await;
    until(&b, ".flash", "Block added.").await;
    let quizzes = quizzes_of(&config, "intro-python");
    assert_eq!(quizzes.len(), quizzes_before + 1);
    let (_, block, questions) = quizzes.iter().find(|(u, _, _)| *u == unit).cloned().expect("the quiz is in the unit");
    assert_eq!(questions.len(), 2);
    assert_eq!(questions[0].1.choices, ["func", "def", "lambda"]);
    assert_eq!(questions[0].1.correct, [1]);
    assert_eq!(
        questions[0].1.choice_feedback,
        ["Not quite: func is Go's keyword.", "Yes: def starts a definition.", "A lambda has no name."]
    );
    assert_eq!((questions[1].1.answer, questions[1].1.tolerance), (Some(3.5), 0.01));

    // A learner sees the quiz and passes it.
    let (l, _profile) = browser.another_session().await;
    sign_in_demo(&l, &site, &lyceum::demo::accounts().remove(1)).await;
    enroll_in_intro_python(&l, &site).await;
    l.goto(&format!("{site}/learn/intro-python/units/{unit}")).await.unwrap();
    until(&l, &format!("#block-{block}"), "Which keyword defines a function?").await;
    answer_quiz_correctly(&l, block, &questions).await;
    // Its only attempt used, the learner reads the feedback on the choice
    // they picked, and only that one.
    until(&l, &format!("#block-{block} [data-choice-feedback]"), "Yes: def starts a definition.").await;
    let feedback = l.find_all(Locator::Css(&format!("#block-{block} [data-choice-feedback]"))).await.unwrap();
    assert_eq!(feedback.len(), 1, "feedback on the chosen choice only");
    let unit_html = l.find(Locator::Css(&format!("#block-{block}"))).await.unwrap().html(false).await.unwrap();
    assert!(!unit_html.contains("Go's keyword") && !unit_html.contains("has no name"), "{unit_html}");
    shot(&l, "quiz-choice-feedback").await;
    l.close().await.unwrap();
    b.close().await.unwrap();
    browser.server.abort();
}

//! Accessible by a checker, not only by care. In a real headless Chromium,
//! as a visitor, each demo account, a new unverified account and each role
//! in a fresh account (the roles of the link walk in `links.rs`), the test
//! follows the link walk's rules (`links::Walk`) and runs axe-core (pinned in
//! `tests/axe/package.json`, found through `LYCEUM_TEST_AXE`) on every page
//! it reaches: zero violations of the rules tagged `wcag2a`, `wcag2aa`,
//! `wcag21a` and `wcag21aa` are allowed.
//!
//! Each page is loaded once and checked in two passes that between them
//! cover both colour schemes and both widths: light at 1280 px and dark at
//! 390 px (a phone). The page loads in the condition the previous page ended
//! in and is switched in place to the other through the DevTools protocol
//! (`Emulation.setEmulatedMedia`, `Emulation.setDeviceMetricsOverride`),
//! once its colours have settled. One browser serves the whole walk, and
//! axe's source is injected once per page. `LYCEUM_TEST_AXE_ACCOUNTS`
//! (`visitor,Staff`: who starts with these) narrows a run while mending.
//!
//! Also here: at 1280 px the header is one row for every role (the brand,
//! every link of the main navigation and the account menu side by side),
//! measured from the elements' boxes in the browser.
//!
//! Without `LYCEUM_TEST_AXE` or Chromium the tests skip loudly; under
//! `CI=true` they fail instead (`.ci/run` installs both).

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{Browser, start_browser};
use crate::common::{PASSWORD, service_missing};

/// The axe-core rule tags checked: WCAG 2.0 and 2.1, levels A and AA.
const TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// A command of the Chrome DevTools protocol, sent through chromedriver.
#[derive(Debug)]
struct Cdp(&'static str, serde_json::Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "cmd": self.0, "params": self.1 }).to_string()))
    }
}

/// A viewport and colour scheme a page is checked in.
#[derive(Clone, Copy)]
struct Condition {
    scheme: &'static str,
    width: u32,
    height: u32,
}

const LIGHT_WIDE: Condition = Condition { scheme: "light", width: 1280, height: 1600 };
const DARK_PHONE: Condition = Condition { scheme: "dark", width: 390, height: 844 };

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {} px", self.scheme, self.width)
    }
}

/// Puts the page (and the pages after it) in `condition`.
async fn emulate(b: &fantoccini::Client, condition: Condition) {
    let media = json!({ "features": [{ "name": "prefers-color-scheme", "value": condition.scheme }] });
    b.issue_cmd(Cdp("Emulation.setEmulatedMedia", media)).await.expect("the colour scheme is emulated");
    let metrics =
        json!({ "width": condition.width, "height": condition.height, "deviceScaleFactor": 1, "mobile": false });
    b.issue_cmd(Cdp("Emulation.setDeviceMetricsOverride", metrics)).await.expect("the width is emulated");
    // Colours fade (shortly: the browser prefers reduced motion, and the
    // stylesheet then makes every transition 0.01 ms long, but inherited
    // colours fade element after element); the check waits for the end.
    let settled = b.execute_async(SETTLE, vec![json!(condition.scheme), json!(condition.width)]).await.unwrap();
    assert_eq!(settled, json!(true), "the page is {condition}");
}

/// Waits for the page's transitions to end (each element's, and those they
/// set off in the elements inheriting from it); answers whether the page is
/// in the colour scheme and at the width given.
const SETTLE: &str = r#"
    const [scheme, width, done] = arguments;
    let frames = 0;
    const settled = () => {
        document.body.getBoundingClientRect();
        const running = document.getAnimations();
        if (running.length === 0 || frames > 200) {
            done(matchMedia(`(prefers-color-scheme: ${scheme})`).matches && innerWidth === width);
            return;
        }
        frames += 1;
        Promise.all(running.map((a) => a.finished.catch(() => null))).then(() => requestAnimationFrame(settled));
    };
    settled();
"#;

/// Runs axe (already in the page) and returns the colour scheme and width
/// it ran in, and its violations as (rule id, impact, description, target
/// selectors with axe's word on each).
const RUN_AXE: &str = r#"
    const done = arguments[arguments.length - 1];
    const scheme = matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
    axe.run(document, { runOnly: { type: 'tag', values: arguments[0] }, resultTypes: ['violations'] })
        .then((r) => done([scheme, innerWidth, r.violations.map((v) => [v.id, v.impact || '', v.help,
            v.nodes.map((n) => n.target.join(' ') + (n.any[0] ? ' (' + n.any[0].message + ')' : ''))])]))
        .catch((e) => done('axe failed: ' + e));
"#;

type Violation = (String, String, String, Vec<String>);

/// `path` fetched from within the page with the session's cookies:
/// (status, content type, final path after redirects, body).
async fn fetch(b: &fantoccini::Client, path: &str) -> (u64, String, String, String) {
    let got = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], { credentials: 'same-origin' })
               .then(async (r) => done([r.status, r.headers.get('content-type') || '',
                   new URL(r.url).pathname + new URL(r.url).search, await r.text()]))
               .catch((e) => done([0, '', arguments[0], String(e)]));",
            vec![json!(path)],
        )
        .await
        .unwrap();
    let text = |i: usize| got[i].as_str().unwrap_or_default().to_string();
    (got[0].as_u64().unwrap_or_default(), text(1), text(2), text(3))
}

/// Walks the site as the person signed in to `b` (if any) and runs axe on
/// every HTML page in both conditions; returns the pages checked and the
/// violations, one line each.
async fn check_walk(b: &fantoccini::Client, site: &str, who: &str, axe: &str) -> (usize, Vec<String>) {
    let mut walk = crate::links::Walk::new();
    let mut found = Vec::new();
    let mut checked = 0;
    // In the site, so that the walk's fetches go there.
    b.goto(&format!("{site}/")).await.unwrap();
    let mut current = LIGHT_WIDE;
    emulate(b, current).await;
    let mut spent = [Duration::ZERO; 3];
    while let Some((url, _from)) = walk.next() {
        let clock = Instant::now();
        let (status, content_type, landed, body) = fetch(b, &url).await;
        spent[0] += clock.elapsed();
        if landed != url {
            walk.redirected(&url, landed);
            continue;
        }
        // Error pages and broken links are the link walk's to report.
        if !(200..300).contains(&status) || !content_type.starts_with("text/html") {
            continue;
        }
        walk.found(&url, &body);
        let clock = Instant::now();
        b.goto(&format!("{site}{url}")).await.unwrap();
        b.execute(axe, vec![]).await.expect("axe-core loads into the page");
        spent[1] += clock.elapsed();
        checked += 1;
        // The page loads in the condition the last one ended in, is checked,
        // then switched to the other and checked again.
        for switch in [false, true] {
            if switch {
                current = if current.scheme == LIGHT_WIDE.scheme { DARK_PHONE } else { LIGHT_WIDE };
                emulate(b, current).await;
            }
            let clock = Instant::now();
            let result = b.execute_async(RUN_AXE, vec![json!(TAGS)]).await.unwrap();
            spent[2] += clock.elapsed();
            let (scheme, width, violations): (String, u32, Vec<Violation>) =
                serde_json::from_value(result.clone()).unwrap_or_else(|_| panic!("{who}: {url} ({current}): {result}"));
            assert_eq!((scheme.as_str(), width), (current.scheme, current.width), "{who}: {url} was checked {current}");
            for (rule, impact, help, targets) in violations {
                found.push(format!(
                    "{url} as {who}, {current}: {rule} ({impact}): {help}\n    {}",
                    targets.join("\n    ")
                ));
            }
        }
    }
    let [fetching, loading, axe] = spent;
    eprintln!(
        "{who}: {checked} pages; walk fetches {fetching:.1?}, loading with axe {loading:.1?}, axe runs {axe:.1?}"
    );
    (checked, found)
}

/// The people the walk signs in as, created in the browser site's
/// database: (who, email) of an unverified newcomer and of an account for
/// each role of the link walk; the password is [`PASSWORD`].
fn people(browser: &Browser) -> Vec<(String, String)> {
    use lyceum::accounts::domain::{Email, PersonName, Username};
    use lyceum::accounts::service::{NewAccount, create_account};
    let db = lyceum::db::Db::connect(&browser.config.database_url, 1).unwrap();
    let mut conn = db.get().unwrap();
    let hash = lyceum::accounts::passwords::hash_blocking(PASSWORD).unwrap();
    let roles = crate::links::roles_to_walk(&mut conn);
    let create = |conn: &mut lyceum::db::Conn, username: &str, verified: bool| -> i64 {
        let account = NewAccount {
            first_name: PersonName::parse("Grace", "first name").unwrap(),
            last_name: PersonName::parse("Hopper", "last name").unwrap(),
            username: Username::parse(username).unwrap(),
            email: Email::parse(&format!("{username}@example.org")).unwrap(),
            password: None,
            phone: None,
            company: None,
            date_of_birth: chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(),
            parent_email: None,
        };
        create_account(conn, &account, &hash, verified, lyceum::db::now()).map_err(|e| format!("{e:?}")).unwrap().id
    };
    create(&mut conn, "newcomer", false);
    let mut people = vec![("unverified".to_string(), "newcomer@example.org".to_string())];
    for (i, (role, scope)) in roles.into_iter().enumerate() {
        let username = format!("role{i}");
        let id = create(&mut conn, &username, true);
        lyceum::accounts::roles::grant(&mut conn, id, role, &scope, None).unwrap();
        people.push((format!("{} {scope}", role.as_str()), format!("{username}@example.org")));
    }
    people
}

/// Signs `email` in from the sign-in page and waits until the site says so.
async fn sign_in(b: &fantoccini::Client, site: &str, email: &str, password: &str) {
    b.delete_all_cookies().await.unwrap();
    b.goto(&format!("{site}/signin")).await.unwrap();
    b.find(Locator::Id("f-login")).await.unwrap().send_keys(email).await.unwrap();
    b.find(Locator::Id("f-password")).await.unwrap().send_keys(password).await.unwrap();
    b.find(Locator::Css("form[action='/signin'] button[type=submit]")).await.unwrap().click().await.unwrap();
    for _ in 0..50 {
        if b.find(Locator::Css(".user-menu strong")).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{email} could not sign in");
}

/// Everyone the walks take: (who, email and password), the visitor first.
fn everyone(browser: &Browser) -> Vec<(String, Option<(String, String)>)> {
    let mut all = vec![("visitor".to_string(), None)];
    all.extend(lyceum::demo::accounts().into_iter().map(|a| (a.role, Some((a.email, a.password)))));
    all.extend(people(browser).into_iter().map(|(who, email)| (who, Some((email, PASSWORD.to_string())))));
    all
}

/// axe-core's source, or `None` (loudly; a failure under `CI=true`).
fn axe_source() -> Option<String> {
    let Ok(path) = std::env::var("LYCEUM_TEST_AXE") else {
        service_missing("axe-core", "LYCEUM_TEST_AXE");
        return None;
    };
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("LYCEUM_TEST_AXE={path}: {e}"));
    assert!(source.starts_with("/*! axe v"), "{path} is axe-core's axe.min.js");
    Some(source)
}

#[rocket::async_test]
async fn every_page_the_link_walk_reaches_has_no_wcag_2_1_a_or_aa_violation_for_every_role_in_a_browser() {
    let Some(axe) = axe_source() else { return };
    let Some(browser) = start_browser().await else { return };
    let started = Instant::now();
    let (b, site) = (browser.b.clone(), browser.site.clone());
    let axe = format!("{axe}\n;return typeof axe.run === 'function';");
    let mut violations = Vec::new();
    let mut checked = Vec::new();
    let only = std::env::var("LYCEUM_TEST_AXE_ACCOUNTS").ok();
    for (who, credentials) in everyone(&browser) {
        if only.as_ref().is_some_and(|only| !only.split(',').any(|o| who.starts_with(o))) {
            continue;
        }
        match &credentials {
            Some((email, password)) => sign_in(&b, &site, email, password).await,
            None => b.delete_all_cookies().await.unwrap(),
        }
        let (pages, found) = check_walk(&b, &site, &who, &axe).await;
        checked.push((who, pages));
        violations.extend(found);
    }
    let elapsed = started.elapsed();
    eprintln!("axe-core checked, per account, pages in two conditions each: {checked:?} in {elapsed:.0?}");
    assert!(
        violations.is_empty(),
        "{} WCAG 2.1 A/AA violations (page as role, condition: rule (impact): what, then the elements):\n{}",
        violations.len(),
        violations.join("\n")
    );
    for (who, pages) in &checked {
        assert!(*pages > 10, "the walk as {who} reached the site's pages ({pages} checked)");
    }
}

/// The vertical extent (top, bottom) of the header's parts at the current width.
const HEADER_ROWS: &str = r#"
    const box = (el) => { const r = el.getBoundingClientRect(); return [r.top, r.bottom]; };
    return {
        brand: box(document.querySelector('.site-header .brand')),
        links: [...document.querySelectorAll('.site-nav li')].map(box),
        menu: box(document.querySelector('.site-header .user-menu')),
        names: [...document.querySelectorAll('.site-nav li')].map((li) => li.textContent.trim()),
    };
"#;

#[rocket::async_test]
async fn at_1280_px_the_header_is_one_row_for_every_role_in_a_browser() {
    let Some(browser) = start_browser().await else { return };
    let (b, site) = (browser.b.clone(), browser.site.clone());
    let mut wrapped = Vec::new();
    for (who, credentials) in everyone(&browser) {
        match &credentials {
            Some((email, password)) => sign_in(&b, &site, email, password).await,
            None => b.delete_all_cookies().await.unwrap(),
        }
        b.goto(&format!("{site}/")).await.unwrap();
        emulate(&b, LIGHT_WIDE).await;
        let rows = b.execute(HEADER_ROWS, vec![]).await.unwrap();
        let extent = |v: &serde_json::Value| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
        let (brand_top, brand_bottom) = extent(&rows["brand"]);
        let mut parts: Vec<(f64, f64)> = rows["links"].as_array().unwrap().iter().map(extent).collect();
        assert!(parts.len() >= 2, "{who}: the main navigation shows: {rows}");
        parts.push(extent(&rows["menu"]));
        // One row: every part lies within the band of the brand, give or
        // take the links' padding.
        let band = (brand_top - 12.0, brand_bottom + 12.0);
        if parts.iter().any(|(top, bottom)| *top < band.0 || *bottom > band.1) {
            wrapped.push(format!("{who}: {} ({rows})", rows["names"]));
        }
    }
    assert!(wrapped.is_empty(), "at 1280 px the header wraps to more than one row for:\n{}", wrapped.join("\n"));
}

//! Every link a person can follow leads somewhere: starting at the home
//! page, as a visitor and as each demo account, the test follows every
//! link and image of the site's own pages (breadth first) and checks that
//! none answers with an error. A broken link is a feature that exists in the
//! page but not in the site.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rocket::http::Status;

use crate::common::TestApp;

/// Pages fetched per account at most: enough to reach every kind of page of
/// the demo site (the crawl visits each path once, whatever its query).
const MAX_PAGES: usize = 700;

fn unescape(href: &str) -> String {
    href.replace("&amp;", "&").replace("&#x3D;", "=").replace("&#x2F;", "/").replace("&quot;", "\"")
}

/// The site's own links and images of a page, as paths: no other origin, no
/// fragment, no `mailto:`.
fn links(page: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"(?:href|src)="([^"]*)""#).unwrap();
    re.captures_iter(page)
        .map(|c| unescape(&c[1]))
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .map(|l| l.split('#').next().unwrap_or_default().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Links that change something when followed are forms, not links; none
/// should be here, but signing out is the one a crawler must never take.
fn followable(path: &str) -> bool {
    !path.starts_with("/signout")
}

async fn crawl(app: &TestApp, who: &str) -> (usize, Vec<String>) {
    let mut queue: VecDeque<(String, String)> = VecDeque::from([("/".to_string(), "(start)".to_string())]);
    let mut seen_urls = BTreeSet::new();
    let mut fetched_per_path: BTreeMap<String, usize> = BTreeMap::new();
    let mut broken = Vec::new();
    let mut fetched = 0;
    while let Some((url, from)) = queue.pop_front() {
        if fetched >= MAX_PAGES || !seen_urls.insert(url.clone()) || !followable(&url) {
            continue;
        }
        // One query string variant per path and a few of them at most: the
        // catalog's filters and pagers multiply otherwise.
        let path = url.split('?').next().unwrap_or_default().to_string();
        let n = fetched_per_path.entry(path).or_insert(0);
        if *n >= 3 {
            continue;
        }
        *n += 1;
        fetched += 1;
        let res = app.client.get(url.clone()).dispatch().await;
        let status = res.status();
        let location = res.headers().get_one("Location").map(str::to_string);
        let html = res.content_type().is_some_and(|c| c.is_html());
        let body = if html { res.into_string().await.unwrap_or_default() } else { String::new() };
        match status.code {
            200..=299 => {}
            300..=399 => {
                if let Some(to) = location.filter(|l| l.starts_with('/')) {
                    queue.push_back((to, format!("{url} (redirect)")));
                }
                continue;
            }
            _ => {
                broken.push(format!("{who}: GET {url} (linked from {from}) answered {status}"));
                continue;
            }
        }
        for link in links(&body) {
            if !seen_urls.contains(&link) {
                queue.push_back((link, url.clone()));
            }
        }
    }
    (fetched, broken)
}

async fn every_link_leads_somewhere(app: TestApp) {
    let mut broken = Vec::new();
    let mut reached = Vec::new();
    let (n, b) = crawl(&app, "visitor").await;
    reached.push(("visitor".to_string(), n));
    broken.extend(b);
    for account in lyceum::demo::accounts() {
        let person =
            crate::common::Learner { username: account.role.clone(), email: account.email, password: account.password };
        app.sign_in(&person, false).await;
        assert!(app.signed_in_as().await.is_some(), "the demo account {} signs in", account.role);
        let (n, b) = crawl(&app, &account.role).await;
        reached.push((account.role.clone(), n));
        broken.extend(b);
        let signed_in = app.signed_in_as().await;
        assert!(signed_in.is_some(), "{} is still signed in after the crawl: no link signed them out", account.role);
        app.sign_out().await;
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    eprintln!("pages fetched per account: {reached:?}");
    for (who, n) in &reached {
        let least = if who == "visitor" { 15 } else { 25 };
        assert!(*n > least, "the crawl as {who} reached the site's pages ({n} fetched)");
    }
    assert_eq!(app.get("/").await.0, Status::Ok);
}

mod every_link_of_the_demo_site_leads_somewhere_for_every_account {
    use crate::common::TestApp;

    #[rocket::async_test]
    async fn sqlite() {
        super::every_link_leads_somewhere(TestApp::sqlite_with(|c| c.demo = true).await).await
    }

    #[rocket::async_test]
    async fn postgres() {
        if let Some(app) = TestApp::postgres_with(|c| c.demo = true).await {
            super::every_link_leads_somewhere(app).await
        }
    }
}

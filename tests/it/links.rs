//! Every link a person can follow leads somewhere: starting at the home
//! page, as a visitor, each demo account, a new unverified account and each
//! role in a fresh account, the test follows every link and image of the
//! site's own pages (breadth first) and checks that none answers with an
//! error, that every form it met has a route that takes it, and that each
//! page is usable: nothing the Content-Security-Policy blocks, every control
//! labelled, no id twice. A broken link is a feature that exists in the page
//! but not in the site. Also here: every page template is read for what the
//! policy blocks, and every endpoint of docs/API.md must be a route. Every
//! audited page the walk is shown must have said whose personal data it
//! showed (or that it shows no one's).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rocket::http::Status;

use crate::common::TestApp;
use crate::on_both;

/// Pages fetched per account at most: enough to reach every kind of page of
/// the demo site (the crawl fetches at most three query variants of a path).
const MAX_PAGES: usize = 700;

fn unescape(href: &str) -> String {
    href.replace("&amp;", "&").replace("&#x3D;", "=").replace("&#x2F;", "/").replace("&quot;", "\"")
}

/// A compiled regular expression, compiled once per pattern for the whole run.
fn re(pattern: &'static str) -> &'static regex::Regex {
    static COMPILED: std::sync::Mutex<BTreeMap<&'static str, &'static regex::Regex>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    compiled.entry(pattern).or_insert_with(|| Box::leak(Box::new(regex::Regex::new(pattern).unwrap())))
}

/// The value of attribute `name` in an HTML start tag (or its attributes).
fn attr(tag: &str, name: &str) -> Option<String> {
    re(r#"\s([a-zA-Z-]+)\s*=\s*"([^"]*)""#).captures_iter(tag).find(|c| &c[1] == name).map(|c| unescape(&c[2]))
}

/// The site's own links and images of a page, as paths: no other origin, no
/// fragment, no `mailto:`.
fn links(page: &str) -> Vec<String> {
    re(r#"(?:href|src)="([^"]*)""#)
        .captures_iter(page)
        .map(|c| unescape(&c[1]))
        .filter(|l| l.starts_with('/') && !l.starts_with("//"))
        .map(|l| l.split('#').next().unwrap_or_default().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The forms of a page as (method, action): `action` attributes of forms and
/// `formaction` attributes of their buttons (a form without an action posts
/// to its own page).
fn forms(page: &str, url: &str) -> Vec<(String, String)> {
    let tag = re(r#"<(form|button|input)\b([^>]*)>"#);
    let mut out = Vec::new();
    let mut method = String::from("get");
    for c in tag.captures_iter(page) {
        let attrs = &c[2];
        if &c[1] == "form" {
            method = attr(attrs, "method").unwrap_or_else(|| "get".into()).to_lowercase();
            out.push((method.clone(), attr(attrs, "action").unwrap_or_else(|| url.to_string())));
        } else if let Some(to) = attr(attrs, "formaction") {
            out.push((method.clone(), to));
        }
    }
    // A browser sends no fragment: `/partners/x#assign` asks for `/partners/x`.
    out.into_iter()
        .map(|(m, a)| (m, a.split('#').next().unwrap_or_default().to_string()))
        .filter(|(_, a)| a.starts_with('/') && !a.starts_with("//"))
        .collect()
}

/// What the site's Content-Security-Policy (`script-src 'self'; style-src
/// 'self'`) blocks in a page: inline scripts, event-handler attributes,
/// style attributes and `javascript:` URLs. Each would silently do nothing.
fn inline_code(page: &str) -> Vec<String> {
    let mut found: Vec<String> = re(r#"<script\b[^>]*>"#)
        .find_iter(page)
        .map(|m| m.as_str())
        .filter(|tag| !tag.contains("src=") && !tag.contains("application/json") && !tag.contains("ld+json"))
        .map(|tag| format!("an inline script ({tag})"))
        .collect();
    let patterns = [
        (r#"<[a-zA-Z][^>]*\son[a-z]+\s*=\s*["']"#, "an event-handler attribute"),
        (r#"<[a-zA-Z][^>]*\sstyle\s*=\s*["']"#, "a style attribute"),
        (r#"(?i)\s(?:href|src|action|formaction)\s*=\s*["']\s*javascript:"#, "a javascript: URL"),
    ];
    found.extend(patterns.iter().filter_map(|(p, what)| re(p).find(page).map(|m| format!("{what} ({})", m.as_str()))));
    found
}

/// What leaves a person with a screen reader guessing: an image without
/// `alt`, a form control without a label (a `<label for>`, an enclosing
/// `<label>`, or `aria-label`/`aria-labelledby`/`title`), a link or button
/// with no name, an id used twice,
/// a page without a title or without exactly one `<h1>`.
fn unlabelled(page: &str) -> Vec<String> {
    let mut found = Vec::new();
    for img in re(r"<img\b[^>]*>").find_iter(page) {
        if attr(img.as_str(), "alt").is_none() {
            found.push(format!("an image without alt text ({})", img.as_str()));
        }
    }
    let labelled_for: Vec<String> =
        re(r#"<label\b[^>]*\sfor="([^"]+)""#).captures_iter(page).map(|c| c[1].to_string()).collect();
    // Controls inside a <label>…</label> are labelled by it.
    let inside_labels: String = re(r"(?s)<label\b[^>]*>.*?</label>").find_iter(page).map(|m| m.as_str()).collect();
    for control in re(r"<(?:input|select|textarea)\b[^>]*>").find_iter(page) {
        let tag = control.as_str();
        let kind = attr(tag, "type").unwrap_or_default();
        if ["hidden", "submit", "button", "reset", "image"].contains(&kind.as_str()) {
            continue;
        }
        let named = ["aria-label", "aria-labelledby", "title"].iter().any(|a| attr(tag, a).is_some());
        let by_for = attr(tag, "id").is_some_and(|id| labelled_for.contains(&id));
        if !named && !by_for && !inside_labels.contains(tag) {
            found.push(format!("a form control without a label ({tag})"));
        }
    }
    // A link or button read out as nothing: no text (an image's alt counts)
    // and no aria-label or title.
    for element in re(r"(?s)<(a|button)\b([^>]*)>(.*?)</(?:a|button)>").captures_iter(page) {
        let (attrs, inner) = (&element[2], &element[3]);
        let text = re(r"<[^>]*>").replace_all(inner, "");
        let alt = re(r#"<img\b[^>]*\salt="[^"]+""#).is_match(inner);
        let named = ["aria-label", "aria-labelledby", "title"].iter().any(|a| attr(attrs, a).is_some());
        if text.trim().is_empty() && !alt && !named {
            found.push(format!("a {} with no name ({})", &element[1], element.get(0).map_or("", |m| m.as_str())));
        }
    }
    let mut ids = BTreeSet::new();
    for id in re(r#"<[a-zA-Z][^>]*\sid="([^"]+)""#).captures_iter(page) {
        if !ids.insert(id[1].to_string()) {
            found.push(format!("the id \"{}\" twice (a label or link finds only the first)", &id[1]));
        }
    }
    if !re(r"<title>[^<]+</title>").is_match(page) {
        found.push("no title".into());
    }
    let h1 = re(r"<h1\b").find_iter(page).count();
    if h1 != 1 {
        found.push(format!("{h1} top-level headings (<h1>)"));
    }
    found
}

/// The actions of POST forms that carry no CSRF token: the site refuses them
/// whatever is filled in.
fn posts_without_token(page: &str) -> Vec<String> {
    re(r#"(?s)<form\b([^>]*)>(.*?)</form>"#)
        .captures_iter(page)
        .filter(|c| attr(&c[1], "method").is_some_and(|m| m.eq_ignore_ascii_case("post")))
        .filter(|c| !c[2].contains(r#"name="csrf_token""#))
        .map(|c| attr(&c[1], "action").unwrap_or_else(|| "(its own page)".to_string()))
        .collect()
}

/// Links that change something when followed are forms, not links; none
/// should be here, but signing out is the one a crawler must never take.
fn followable(path: &str) -> bool {
    !path.starts_with("/signout")
}

/// The link walk's rules, whatever fetches the pages (the app's own client
/// here, a real browser in `accessibility.rs`): breadth first from the home
/// page, each URL once, the site's own links only, at most three query
/// variants of a path and [`MAX_PAGES`] pages.
pub(crate) struct Walk {
    queue: VecDeque<(String, String)>,
    seen: BTreeSet<String>,
    per_path: BTreeMap<String, usize>,
    pub(crate) fetched: usize,
}

impl Walk {
    pub(crate) fn new() -> Walk {
        Walk {
            queue: VecDeque::from([("/".to_string(), "(start)".to_string())]),
            seen: BTreeSet::new(),
            per_path: BTreeMap::new(),
            fetched: 0,
        }
    }

    /// The next URL to fetch and the page that linked to it.
    pub(crate) fn next(&mut self) -> Option<(String, String)> {
        while let Some((url, from)) = self.queue.pop_front() {
            if self.fetched >= MAX_PAGES || !self.seen.insert(url.clone()) || !followable(&url) {
                continue;
            }
            // One query string variant per path and a few of them at most:
            // the catalog's filters and pagers multiply otherwise.
            let path = url.split('?').next().unwrap_or_default().to_string();
            let n = self.per_path.entry(path).or_insert(0);
            if *n >= 3 {
                continue;
            }
            *n += 1;
            self.fetched += 1;
            return Some((url, from));
        }
        None
    }

    /// `url` answered with a redirect to `to`.
    pub(crate) fn redirected(&mut self, url: &str, to: String) {
        if to.starts_with('/') && !to.starts_with("//") {
            self.queue.push_back((to, format!("{url} (redirect)")));
        }
    }

    /// `url` answered with the page `body`: its links join the queue.
    pub(crate) fn found(&mut self, url: &str, body: &str) {
        for link in links(body) {
            if !self.seen.contains(&link) {
                self.queue.push_back((link, url.to_string()));
            }
        }
    }
}

/// The roles the walk takes in fresh accounts, besides the demo accounts
/// and an unverified newcomer: member staff of the first member, a
/// moderator, an auditor, the support team, and an administrator of every
/// partner; as (role, scope).
pub(crate) fn roles_to_walk(conn: &mut lyceum::db::Conn) -> Vec<(lyceum::accounts::roles::Role, String)> {
    use diesel::prelude::*;
    use lyceum::accounts::roles::Role;
    use lyceum::db::schema::{members, partners};
    let member: i64 = members::table.order(members::id).select(members::id).first(conn).expect("a member");
    let partners: Vec<i64> = partners::table.order(partners::id).select(partners::id).load(conn).expect("partners");
    let mut roles = vec![
        (Role::MemberAdmin, format!("member:{member}")),
        (Role::Instructor, format!("member:{member}")),
        (Role::CourseStaff, format!("member:{member}")),
        (Role::Moderator, String::new()),
        (Role::Auditor, String::new()),
        (Role::Support, String::new()),
    ];
    roles.extend(partners.iter().map(|id| (Role::PartnerAdmin, format!("partner:{id}"))));
    roles
}

/// What a crawl found: pages fetched, broken links, and the forms met (method,
/// action, the page they were on).
struct Crawl {
    fetched: usize,
    broken: Vec<String>,
    forms: BTreeMap<(String, String), String>,
}

async fn crawl(app: &TestApp, who: &str) -> Crawl {
    let mut walk = Walk::new();
    let mut broken = Vec::new();
    let mut found_forms = BTreeMap::new();
    while let Some((url, from)) = walk.next() {
        let res = app.client.get(url.clone()).dispatch().await;
        let status = res.status();
        let location = res.headers().get_one("Location").map(str::to_string);
        let html = res.content_type().is_some_and(|c| c.is_html());
        let body = if html { res.into_string().await.unwrap_or_default() } else { String::new() };
        match status.code {
            200..=299 => {}
            300..=399 => {
                if let Some(to) = location {
                    walk.redirected(&url, to);
                }
                continue;
            }
            _ => {
                // The error page's own words (a template's missing key, in
                // a test build).
                let detail = re(r"(?s)<h1>[^<]*</h1>\s*<p>([^<]*)</p>")
                    .captures(&body)
                    .map(|c| format!(": {}", unescape(&c[1])))
                    .unwrap_or_default();
                broken.push(format!("{who}: GET {url} (linked from {from}) answered {status}{detail}"));
                continue;
            }
        }
        walk.found(&url, &body);
        for form in forms(&body, &url) {
            found_forms.entry(form).or_insert_with(|| url.clone());
        }
        for blocked in inline_code(&body) {
            broken.push(format!("{who}: {url} has {blocked}, which the Content-Security-Policy blocks"));
        }
        // Nothing was sent: a field error here came from somewhere else (a
        // partial reading a page's own `error`, say).
        if body.contains(r#"class="field-error""#) {
            broken.push(format!("{who}: {url} shows a field error though nothing was sent"));
        }
        for problem in if html { unlabelled(&body) } else { Vec::new() } {
            broken.push(format!("{who}: {url} has {problem}"));
        }
        for action in posts_without_token(&body) {
            broken.push(format!("{who}: the form posting to {action} on {url} has no CSRF token, so it always fails"));
        }
    }
    Crawl { fetched: walk.fetched, broken, forms: found_forms }
}

/// The site's routes for `method` as patterns over request paths
/// (`<name>` one segment, `<name..>` any rest).
fn routes(app: &TestApp, method: rocket::http::Method) -> Vec<regex::Regex> {
    let param = re(r"<[^>]+\.\.>|<[^>]+>");
    app.client
        .rocket()
        .routes()
        .filter(|r| r.method == method)
        .map(|r| {
            let path = r.uri.path().to_string();
            let mut pattern = String::from("^");
            let mut last = 0;
            for m in param.find_iter(&path) {
                pattern.push_str(&regex::escape(&path[last..m.start()]));
                pattern.push_str(if m.as_str().ends_with("..>") { ".*" } else { "[^/]+" });
                last = m.end();
            }
            pattern.push_str(&regex::escape(&path[last..]));
            pattern.push('$');
            regex::Regex::new(&pattern).unwrap()
        })
        .collect()
}

/// Checks each form the crawl met: a form that reads (GET) is sent as it
/// stands and must answer without an error; a form that changes something
/// (POST) must have a route that takes it. (Sending those would change the
/// demo site under the crawls that follow; every POST route gets hostile
/// values in `hostile.rs`.)
async fn check_forms(app: &TestApp, who: &str, found: &BTreeMap<(String, String), String>) -> Vec<String> {
    let posts = routes(app, rocket::http::Method::Post);
    let mut broken = Vec::new();
    for ((method, action), from) in found {
        let path = action.split('?').next().unwrap_or_default();
        let fine = if method == "post" {
            posts.iter().any(|p| p.is_match(path))
        } else {
            app.client.get(action.clone()).dispatch().await.status().code < 400
        };
        if !fine {
            broken.push(format!("{who}: {} {action} (a form on {from}) has no route or failed", method.to_uppercase()));
        }
    }
    broken
}

async fn every_link_leads_somewhere(app: TestApp) {
    let mut broken = Vec::new();
    let mut reached = Vec::new();
    let visitor = crawl(&app, "visitor").await;
    reached.push(("visitor".to_string(), visitor.fetched, visitor.forms.len()));
    broken.extend(visitor.broken);
    broken.extend(check_forms(&app, "visitor", &visitor.forms).await);
    for account in lyceum::demo::accounts() {
        let person =
            crate::common::Learner { username: account.role.clone(), email: account.email, password: account.password };
        app.sign_in(&person, false).await;
        assert!(app.signed_in_as().await.is_some(), "the demo account {} signs in", account.role);
        let found = crawl(&app, &account.role).await;
        reached.push((account.role.clone(), found.fetched, found.forms.len()));
        broken.extend(found.broken);
        let signed_in = app.signed_in_as().await;
        assert!(signed_in.is_some(), "{} is still signed in after the crawl: no link signed them out", account.role);
        broken.extend(check_forms(&app, &account.role, &found.forms).await);
        app.sign_out().await;
    }
    // A new account whose email is not verified yet: enrolling and posting
    // wait for it, and the pages must say so rather than link into refusals.
    let newcomer = app.sign_up("newcomer").await;
    app.sign_in(&newcomer, false).await;
    if app.signed_in_as().await.is_some() {
        let found = crawl(&app, "unverified").await;
        reached.push(("unverified".into(), found.fetched, found.forms.len()));
        broken.extend(found.broken);
        broken.extend(check_forms(&app, "unverified", &found.forms).await);
        app.sign_out().await;
    }
    // Each role the demo accounts do not hold, in a fresh verified account.
    let roles = roles_to_walk(&mut app.db().get().expect("a connection"));
    for (i, (role, scope)) in roles.into_iter().enumerate() {
        let who = format!("{} {scope}", role.as_str());
        let person = app.sign_up(&format!("role{i}")).await;
        app.verify(&person).await;
        let id: i64 = {
            use diesel::prelude::*;
            use lyceum::db::schema::users;
            let mut conn = app.db().get().expect("a connection");
            let id = users::table.filter(users::username.eq(&person.username)).select(users::id).first(&mut *conn);
            let id = id.expect("the new account");
            lyceum::accounts::roles::grant(&mut conn, id, role, &scope, None).expect("grant");
            id
        };
        app.sign_in(&person, false).await;
        assert!(app.signed_in_as().await.is_some(), "{who} (user {id}) signs in");
        let found = crawl(&app, &who).await;
        reached.push((who.clone(), found.fetched, found.forms.len()));
        broken.extend(found.broken);
        broken.extend(check_forms(&app, &who, &found.forms).await);
        app.sign_out().await;
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // Every audited page the walk was shown (as every role) said whose
    // personal data it showed, or that it shows no one's (SEC-4).
    let (undeclared, audited): (Vec<(String, String)>, i64) = {
        use diesel::prelude::*;
        use lyceum::db::schema::audit_log;
        let mut conn = app.db().get().expect("a connection");
        let shown = audit_log::table.filter(audit_log::method.eq("GET")).filter(audit_log::status.between(200, 299));
        let undeclared = shown
            .filter(audit_log::declared.is_null())
            .select((audit_log::path, audit_log::roles))
            .distinct()
            .load(&mut *conn)
            .expect("the audit log");
        (undeclared, shown.count().get_result(&mut *conn).expect("a count"))
    };
    assert!(audited > 50, "the walk reached the audited pages ({audited} entries)");
    assert!(undeclared.is_empty(), "audited pages that did not declare whose data they showed: {undeclared:?}");
    eprintln!("pages fetched and forms met per account: {reached:?}");
    for (who, pages, forms) in &reached {
        let least = if who == "visitor" { 15 } else { 10 };
        assert!(*pages > least, "the crawl as {who} reached the site's pages ({pages} fetched)");
        assert!(*forms > 2, "the crawl as {who} met the site's forms ({forms})");
    }
    assert_eq!(app.get("/").await.0, Status::Ok);
}

on_both!(every_link_of_the_demo_site_leads_somewhere_for_every_account, every_link_leads_somewhere, |c| c.demo = true);

/// The pages the walk cannot reach with demo data (a photo ID under review,
/// a case under appeal) come from the same templates: none of the site's
/// templates holds what the Content-Security-Policy blocks. (Emails are
/// read in mail clients, where inline styles are the only styles.)
/// A page whose context lacks a key its template shows (here the home page
/// without `notices`) fails in a test build, with a 500 page that names the
/// template and the key: a misspelt key cannot pass the walk unseen.
#[rocket::async_test]
async fn a_page_missing_a_key_of_its_template_is_a_500_that_names_the_key() {
    /// The home page's view with `notices` misspelt.
    #[derive(serde::Serialize)]
    struct Misspelt {
        signed_in: bool,
        notises: Vec<String>,
    }
    #[rocket::get("/misspelt")]
    fn misspelt() -> lyceum::web::page::Page {
        lyceum::web::page::Page::view("home", "Misspelt", Misspelt { signed_in: false, notises: Vec::new() })
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = crate::common::test_config(dir.path(), format!("sqlite://{}", dir.path().join("lyceum.db").display()));
    let rocket = lyceum::build_rocket(config).expect("app builds").mount("/test", rocket::routes![misspelt]);
    let client = rocket::local::asynchronous::Client::tracked(rocket).await.expect("valid rocket");
    let res = client.get("/test/misspelt").dispatch().await;
    assert_eq!(res.status(), Status::InternalServerError);
    let body = res.into_string().await.unwrap_or_default();
    assert!(
        body.contains("A page template failed") && body.contains("home") && body.contains("notices"),
        "the error page names the template and the missing key: {body}"
    );
    // The same page with its key renders.
    let (status, _) = crate::common::TestApp::sqlite().await.get("/").await;
    assert_eq!(status, Status::Ok);
}

#[test]
fn no_page_template_holds_code_the_content_security_policy_blocks() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("templates").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "email") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "hbs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"), &mut files);
    assert!(files.len() > 50, "the page templates were found: {}", files.len());
    let blocked: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("template");
            inline_code(&text).into_iter().map(move |b| format!("{}: {b}", f.display()))
        })
        .collect();
    assert!(blocked.is_empty(), "{}", blocked.join("\n"));
}

/// Every endpoint `docs/API.md` documents, with each method it names, is a
/// route of the site: the partner API's reference cannot drift from it.
#[rocket::async_test]
async fn every_endpoint_in_the_api_reference_is_a_route() {
    use rocket::http::Method;
    let app = TestApp::sqlite().await;
    let doc = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/API.md"))
        .expect("docs/API.md");
    let methods = [Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete];
    let mut documented: Vec<(Method, String)> = Vec::new();
    for line in doc.lines() {
        let named: Vec<Method> = methods.iter().copied().filter(|m| line.contains(m.as_str())).collect();
        // Paths in backticks, or after a method at the start of an indented
        // example; relative ones (`/Schemas`) continue the row's first path.
        let mut paths: Vec<String> = re(r"`(/[^`\s]*)`").captures_iter(line).map(|c| c[1].to_string()).collect();
        paths.extend(re(r"^\s*(?:GET|POST|PUT|PATCH|DELETE) (/\S+)").captures_iter(line).map(|c| c[1].to_string()));
        let Some(first) = paths.first().cloned() else { continue };
        if !(first.starts_with("/api/") || first.starts_with("/scim/")) || named.is_empty() {
            continue;
        }
        let base = first.rsplit_once('/').map_or(String::new(), |(b, _)| b.to_string());
        for path in paths {
            let path =
                if path.starts_with("/api/") || path.starts_with("/scim/") { path } else { format!("{base}{path}") };
            let path = re(r"\[.*\]|\?.*").replace_all(&path, "").to_string();
            let path = re(r"<[^>]+>").replace_all(&path, "1").to_string();
            for m in &named {
                documented.push((*m, path.clone()));
            }
        }
    }
    assert!(documented.len() >= 20, "the reference's endpoints were read: {documented:?}");
    let routes: BTreeMap<&str, Vec<regex::Regex>> = methods.iter().map(|m| (m.as_str(), routes(&app, *m))).collect();
    let missing: Vec<String> = documented
        .iter()
        .filter(|(m, path)| !routes[m.as_str()].iter().any(|r| r.is_match(path)))
        .map(|(m, path)| format!("{m} {path}"))
        .collect();
    assert!(missing.is_empty(), "documented in docs/API.md but not routes of the site:\n{}", missing.join("\n"));
}

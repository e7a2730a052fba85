//! Server-rendered pages: the Handlebars registries (HTML-escaped pages and
//! unescaped plain-text email bodies), the `Page` responder that wraps a page in
//! the layout, and flash messages carried in a private cookie.

use handlebars::Handlebars;
use rocket::http::{ContentType, Cookie, Status};
use rocket::request::Request;
use rocket::response::{self, Redirect, Responder, Response};
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kernel::Role;
use crate::web::csrf;
use crate::web::fairings::RequestId;
use crate::web::guards::SessionState;

#[derive(RustEmbed)]
#[folder = "templates/"]
#[include = "*.hbs"]
struct TemplateFiles;

/// Site-wide facts the layout shows on every page.
#[derive(Debug, Clone, Serialize)]
pub struct SiteInfo {
    pub name: String,
    pub demo: bool,
    pub demo_accounts: Vec<DemoAccount>,
    pub notice: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoAccount {
    pub role: String,
    pub email: String,
    pub password: String,
}

pub struct Templates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
    fragments: Fragments,
}

/// Rendered fragments of pages (a forum post with its forms), kept across
/// requests under the SHA-256 of everything they show: a change (an edit, a
/// vote, another viewer's rights) is simply a new entry, so nothing needs
/// invalidating. Forms in a fragment carry a secret placeholder instead of
/// the CSRF token; each response puts its viewer's token in its place.
struct Fragments {
    kept: dashmap::DashMap<[u8; 32], std::sync::Arc<str>>,
    /// Random per process and never sent: what a post says cannot contain it.
    placeholder: String,
    /// Random per process and never sent: the page template shows it where a
    /// list of fragments goes, and the finished page gets the fragments there
    /// (so their HTML is not copied through two template renders).
    slot: String,
}

const FRAGMENTS_MAX: usize = 10_000;

/// Handlebars' strict mode: on in debug and test builds, off in release.
const STRICT: bool = cfg!(debug_assertions);

/// A block of a page rendered once and reused: `template` with the context
/// `context` builds (a typed view, made only when the block is not kept),
/// looked up by `key` (which must hold everything the block shows, the
/// viewer's rights included).
pub struct Fragment {
    template: &'static str,
    key: [u8; 32],
    context: Box<dyn FnOnce() -> Value + Send>,
}

impl Fragment {
    /// The key of a fragment showing `shown` with `template`.
    pub fn key<K: std::hash::Hash>(template: &'static str, shown: &K) -> [u8; 32] {
        let mut hasher = Sha256Hasher(sha2::Sha256::default());
        std::hash::Hash::hash(template, &mut hasher);
        shown.hash(&mut hasher);
        sha2::Digest::finalize(hasher.0).into()
    }

    /// A fragment whose context is `context()`, any `Serialize` value (a
    /// struct of the area's `views.rs`). A context that cannot become JSON
    /// renders as none, which fails the render (with the reason in the log).
    pub fn new<T: Serialize>(
        template: &'static str,
        key: [u8; 32],
        context: impl FnOnce() -> T + Send + 'static,
    ) -> Fragment {
        let context = move || {
            serde_json::to_value(context()).unwrap_or_else(|e| {
                tracing::error!(error = %e, template, "fragment context is not JSON");
                Value::Null
            })
        };
        Fragment { template, key, context: Box::new(context) }
    }
}

/// `Hash` fed into SHA-256, so a derived `Hash` gives a collision-resistant key.
struct Sha256Hasher(sha2::Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    /// Not used: `Hash` implementations only write; the digest is the key.
    fn finish(&self) -> u64 {
        0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {0}: {1}")]
    Register(String, String),
    #[error("rendering {0}: {1}")]
    Render(String, String),
}

impl Templates {
    /// Loads every `*.hbs` under `templates/`: `*.txt.hbs` into the plain-text
    /// registry (emails), everything else into the HTML registry.
    pub fn load() -> Result<Templates, TemplateError> {
        let mut html = Handlebars::new();
        let mut text = Handlebars::new();
        text.register_escape_fn(handlebars::no_escape);
        // A key the context lacks is an error in debug and test builds, so a
        // misspelt key fails the tests (the link walk renders every page);
        // a release build renders it as nothing rather than fail a page.
        html.set_strict_mode(STRICT);
        text.set_strict_mode(STRICT);
        html.register_helper("csrf_field", Box::new(csrf_field));
        for path in TemplateFiles::iter() {
            let file =
                TemplateFiles::get(&path).ok_or_else(|| TemplateError::Register(path.to_string(), "missing".into()))?;
            let source = String::from_utf8_lossy(&file.data).into_owned();
            if let Some(name) = path.strip_suffix(".txt.hbs") {
                text.register_template_string(name, source)
                    .map_err(|e| TemplateError::Register(path.to_string(), e.to_string()))?;
            } else if let Some(name) = path.strip_suffix(".hbs") {
                html.register_template_string(name, &source)
                    .map_err(|e| TemplateError::Register(path.to_string(), e.to_string()))?;
                if let Some(partial) = name.strip_prefix("partials/") {
                    html.register_partial(partial, source)
                        .map_err(|e| TemplateError::Register(path.to_string(), e.to_string()))?;
                }
            }
        }
        let fragments = Fragments {
            kept: dashmap::DashMap::new(),
            placeholder: crate::kernel::tokens::random_token(24),
            slot: crate::kernel::tokens::random_token(24),
        };
        Ok(Templates { html, text, fragments })
    }

    /// The fragments rendered (or found rendered) one after the other, with
    /// `csrf_token` in their forms.
    /// Writes the fragments to `out`, each with `csrf_token` in its forms.
    fn write_fragments(
        &self,
        out: &mut String,
        fragments: Vec<Fragment>,
        csrf_token: &str,
    ) -> Result<(), TemplateError> {
        let token = handlebars::html_escape(csrf_token);
        for f in fragments {
            let kept = self.fragments.kept.get(&f.key).map(|k| k.clone());
            let html = match kept {
                Some(html) => html,
                None => {
                    let mut ctx = (f.context)();
                    merge(&mut ctx, json!({ "csrf_token": self.fragments.placeholder }));
                    let html: std::sync::Arc<str> = self.render_html(f.template, &ctx)?.into();
                    if self.fragments.kept.len() >= FRAGMENTS_MAX {
                        self.fragments.kept.clear();
                    }
                    self.fragments.kept.insert(f.key, html.clone());
                    html
                }
            };
            let mut parts = html.split(self.fragments.placeholder.as_str());
            out.push_str(parts.next().unwrap_or_default());
            for part in parts {
                out.push_str(&token);
                out.push_str(part);
            }
        }
        Ok(())
    }

    /// The marker a page template shows for its `i`-th list of fragments.
    fn slot(&self, i: usize) -> String {
        format!("{}-{i}-", self.fragments.slot)
    }

    /// The finished page: each list of fragments written where the page
    /// shows its slot (once; a list the page does not show is not rendered).
    fn fill_slots(&self, page: String, slots: Vec<Vec<Fragment>>, csrf_token: &str) -> Result<String, TemplateError> {
        let mut at: Vec<(usize, usize, Vec<Fragment>)> = Vec::new();
        for (i, fragments) in slots.into_iter().enumerate() {
            let slot = self.slot(i);
            if let Some(p) = page.find(&slot) {
                at.push((p, slot.len(), fragments));
            }
        }
        at.sort_by_key(|(p, _, _)| *p);
        let mut out = String::with_capacity(page.len() + 2048 * at.iter().map(|(_, _, f)| f.len()).sum::<usize>());
        let mut from = 0;
        for (p, len, fragments) in at {
            out.push_str(&page[from..p]);
            self.write_fragments(&mut out, fragments, csrf_token)?;
            from = p + len;
        }
        out.push_str(&page[from..]);
        Ok(out)
    }

    pub fn render_html(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        self.html.render(name, ctx).map_err(|e| TemplateError::Render(name.into(), e.to_string()))
    }

    pub fn render_text(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        self.text.render(name, ctx).map_err(|e| TemplateError::Render(name.into(), e.to_string()))
    }

    /// Renders `name` with `ctx` inside the layout, adding what every page shows:
    /// the signed-in user, the CSRF token, the flash message, the site facts.
    /// Both contexts are handed to Handlebars as they are: `render` would
    /// copy the whole context (every string of the view, then the rendered
    /// body) into a new JSON value before rendering.
    pub fn render_page(&self, req: &Request<'_>, name: &str, title: &str, ctx: Value) -> Result<String, TemplateError> {
        let globals = layout_globals(req, title);
        let mut page_ctx = globals.clone();
        merge(&mut page_ctx, ctx);
        let nav = page_ctx.get("nav").cloned().unwrap_or(Value::Null);
        let body = self.render_owned(name, page_ctx)?;
        let mut layout_ctx = globals;
        if let Value::Object(map) = &mut layout_ctx {
            map.insert("body".into(), Value::String(body));
            map.insert("nav".into(), nav);
        }
        self.render_owned("layout", layout_ctx)
    }

    /// Renders `name` with `ctx`, which Handlebars takes without copying it.
    fn render_owned(&self, name: &str, ctx: Value) -> Result<String, TemplateError> {
        self.html
            .render_with_context(name, &handlebars::Context::from(ctx))
            .map_err(|e| TemplateError::Render(name.into(), e.to_string()))
    }
}

/// `{{csrf_field}}`: the hidden CSRF input of a form, from the page's root
/// context. A helper rather than a partial: Handlebars clones the current
/// context for every partial it renders, and a form inside a loop (a
/// forum thread's posts) would copy each post once per form.
fn csrf_field(
    _: &handlebars::Helper<'_>,
    _: &Handlebars<'_>,
    ctx: &handlebars::Context,
    _: &mut handlebars::RenderContext<'_, '_>,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let token = ctx.data().get("csrf_token").and_then(Value::as_str).unwrap_or_default();
    out.write(r#"<input type="hidden" name="csrf_token" value=""#)?;
    out.write(&handlebars::html_escape(token))?;
    out.write(r#"">"#)?;
    Ok(())
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

fn layout_globals(req: &Request<'_>, title: &str) -> Value {
    let session = req.local_cache(SessionState::default);
    let user = session.user.as_ref().map(|u| {
        json!({
            "username": u.username,
            "first_name": u.first_name,
            "is_staff": u.is_staff(),
            "authors": u.is_staff() || u.roles.iter().any(|(r, _)| matches!(r, Role::MemberAdmin | Role::Instructor | Role::CourseStaff)),
            "partner": u.roles.iter().any(|(r, _)| matches!(r, Role::PartnerAdmin | Role::MemberAdmin)),
            "verified": u.email_verified,
            "auditor": u.has_role(Role::Auditor),
            "support": u.has_role(Role::Support),
        })
    });
    let site = req.rocket().state::<SiteInfo>().cloned();
    let mut globals = json!({
        "title": title,
        "user": user,
        "csrf_token": csrf::token(req),
        "flash": take_flash(req),
        "site": site,
        "request_id": req.local_cache(RequestId::default).0,
        "path": req.uri().path().as_str(),
    });
    if let (Some(parts), Value::Object(map)) = (req.rocket().state::<LayoutParts>(), &mut globals) {
        for (key, part) in &parts.0 {
            map.insert((*key).to_string(), part(req));
        }
    }
    globals
}

/// A value every page's layout shows, computed from the request.
pub type LayoutPart = fn(&Request<'_>) -> Value;

/// What the areas add to every page's layout context (the sign-in
/// providers, the policy and cookie banners), registered in `lib.rs` so
/// the HTTP edge knows no area.
#[derive(Default)]
pub struct LayoutParts(Vec<(&'static str, LayoutPart)>);

impl LayoutParts {
    /// Adds `key`, whose value `part` computes for each page.
    pub fn with(mut self, key: &'static str, part: LayoutPart) -> Self {
        self.0.push((key, part));
        self
    }
}

/// A page: a template, its context, a title and a status.
pub struct Page {
    template: &'static str,
    title: String,
    context: Value,
    status: Status,
    /// Context fields filled, when the page is sent, with these fragments' HTML.
    fragments: Vec<(&'static str, Vec<Fragment>)>,
}

impl Page {
    /// A page whose context is a typed view (a `Serialize` struct of the
    /// area's `views.rs`). A view that cannot become JSON (a map with
    /// non-string keys) leaves the page without context, which fails its
    /// render as a 500 (with the reason in the log).
    pub fn view(template: &'static str, title: impl Into<String>, view: impl Serialize) -> Page {
        let context = serde_json::to_value(view).unwrap_or_else(|e| {
            tracing::error!(error = %e, template, "page view is not JSON");
            Value::Null
        });
        Page { template, title: title.into(), context, status: Status::Ok, fragments: Vec::new() }
    }

    /// Puts the HTML of `fragments`, one after the other, in the context
    /// field `field` (for the template to show with `{{{field}}}`).
    pub fn with_fragments(mut self, field: &'static str, fragments: Vec<Fragment>) -> Page {
        self.fragments.push((field, fragments));
        self
    }

    /// Form re-rendered with field errors answers 422, as the issue asks.
    pub fn with_status(mut self, status: Status) -> Page {
        self.status = status;
        self
    }
}

impl<'r> Responder<'r, 'static> for Page {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let templates = req.rocket().state::<Templates>().ok_or(Status::InternalServerError)?;
        let failed = |e: TemplateError| {
            tracing::error!(error = %e, "template failed");
            // In debug and test builds the error page says which template
            // and key failed (a missing key, in strict mode); a release
            // build shows the usual apology.
            if STRICT {
                crate::web::error::set_detail(req, format!("A page template failed: {e}"));
            }
            Status::InternalServerError
        };
        let mut context = self.context;
        let mut slots = Vec::with_capacity(self.fragments.len());
        for (i, (field, fragments)) in self.fragments.into_iter().enumerate() {
            merge(&mut context, json!({ field: templates.slot(i) }));
            slots.push(fragments);
        }
        let mut html = templates.render_page(req, self.template, &self.title, context).map_err(failed)?;
        if !slots.is_empty() {
            html = templates.fill_slots(html, slots, &csrf::token(req)).map_err(failed)?;
        }
        Response::build()
            .status(self.status)
            .header(ContentType::HTML)
            .sized_body(html.len(), std::io::Cursor::new(html))
            .ok()
    }
}

const FLASH_COOKIE: &str = "lyceum_flash";

#[derive(Debug, Serialize, Deserialize)]
struct FlashMessage {
    kind: String,
    message: String,
}

fn take_flash(req: &Request<'_>) -> Option<Value> {
    let cookie = req.cookies().get_private(FLASH_COOKIE)?;
    req.cookies().remove_private(Cookie::build(FLASH_COOKIE).path("/"));
    let msg: FlashMessage = serde_json::from_str(cookie.value()).ok()?;
    Some(json!({ "kind": msg.kind, "message": msg.message }))
}

/// A redirect that shows a message on the next page.
pub struct Flash {
    to: String,
    kind: &'static str,
    message: String,
}

impl Flash {
    pub fn success(to: impl Into<String>, message: impl Into<String>) -> Flash {
        Flash { to: to.into(), kind: "success", message: message.into() }
    }
    pub fn info(to: impl Into<String>, message: impl Into<String>) -> Flash {
        Flash { to: to.into(), kind: "info", message: message.into() }
    }
    pub fn error(to: impl Into<String>, message: impl Into<String>) -> Flash {
        Flash { to: to.into(), kind: "error", message: message.into() }
    }
}

impl<'r> Responder<'r, 'static> for Flash {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let value = serde_json::to_string(&FlashMessage { kind: self.kind.into(), message: self.message })
            .map_err(|_| Status::InternalServerError)?;
        req.cookies().add_private(csrf::essential_cookie(csrf::is_tls(req), FLASH_COOKIE, value));
        Redirect::to(safe_location(&self.to)).respond_to(req)
    }
}

/// Characters a typed path segment may carry that a Location header may not.
const UNSAFE_IN_LOCATION: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'\'')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// A redirect target built from request data (a path segment, say) made safe
/// to send back, so odd input gives a redirect and never a server error.
pub fn safe_location(to: &str) -> String {
    percent_encoding::utf8_percent_encode(to, UNSAFE_IN_LOCATION).to_string()
}

pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::{Fragment, Templates};

    /// A post for `forums/post_block` as a moderator sees it: the only copy
    /// that carries a form (and so the viewer's token).
    fn post_fragment(renders: &Arc<AtomicUsize>, votes: i64) -> Fragment {
        let renders = renders.clone();
        let key = Fragment::key("forums/post_block", &(7, votes));
        Fragment::new("forums/post_block", key, move || {
            renders.fetch_add(1, Ordering::SeqCst);
            json!({
                "post": { "id": 7, "author": "ada", "body_html": "<p>Base case</p>", "status": "visible",
                          "actionable": true, "votes": votes, "created": "24 Nov 2026 09:05",
                          "created_at": "2026-11-24T09:05:00", "ip": null, "user_agent": null, "history": [],
                          "comments": [] },
                "moderator": true, "can_comment": true, "forum": { "slug": "f" }, "thread": { "id": 1 },
            })
        })
    }

    /// Strict mode as Handlebars applies it, which is what a page context
    /// must respect: every key a template prints, walks or enters is there
    /// (`null` for "none"), lists are lists.
    #[test]
    fn templates_are_strict_in_test_builds_and_a_misspelt_key_is_an_error() {
        let templates = Templates::load().unwrap();
        let mut hb = templates.html.clone();
        assert!(hb.strict_mode(), "strict in debug and test builds");
        let render = |hb: &mut handlebars::Handlebars<'static>, t: &str, ctx: serde_json::Value| {
            hb.register_template_string("t", t).unwrap();
            hb.render("t", &ctx)
        };
        // Printing a key the context lacks fails and names the key.
        let e = render(&mut hb, "<p>{{titel}}</p>", json!({ "title": "Rust" })).unwrap_err();
        assert!(e.to_string().contains("titel"), "{e}");
        assert!(render(&mut hb, "{{course.titel}}", json!({ "course": { "title": "Rust" } })).is_err());
        // A key that is there but null prints nothing.
        assert_eq!(render(&mut hb, "[{{note}}]", json!({ "note": null })).unwrap(), "[]");
        // `#if`/`#unless` read a missing key as false: they do not catch a misspelling.
        assert_eq!(render(&mut hb, "{{#if shwn}}x{{else}}y{{/if}}", json!({ "shown": true })).unwrap(), "y");
        // `#each` and `#with` over a missing key or null fail unless the block has `{{else}}`;
        // an empty list is fine.
        assert!(render(&mut hb, "{{#each rows}}x{{/each}}", json!({})).is_err());
        assert!(render(&mut hb, "{{#each rows}}x{{/each}}", json!({ "rows": null })).is_err());
        assert_eq!(render(&mut hb, "{{#each rows}}x{{/each}}", json!({ "rows": [] })).unwrap(), "");
        assert_eq!(render(&mut hb, "{{#each rows}}x{{else}}none{{/each}}", json!({ "rows": null })).unwrap(), "none");
        assert!(render(&mut hb, "{{#with card}}{{code}}{{/with}}", json!({ "card": null })).is_err());
        assert_eq!(
            render(&mut hb, "{{#if card}}{{#with card}}{{code}}{{/with}}{{/if}}", json!({ "card": null })).unwrap(),
            ""
        );
        // A partial's hash parameter naming a missing key arrives as null (no error);
        // a parameter not passed at all is missing inside the partial.
        hb.register_partial("p", "[{{v}}]").unwrap();
        assert_eq!(render(&mut hb, "{{> p v=nope}}", json!({})).unwrap(), "[]");
        assert!(render(&mut hb, "{{> p}}", json!({})).is_err());
        // Helpers: a missing parameter of a built-in comparison fails.
        assert!(render(&mut hb, "{{#if (eq kind \"a\")}}x{{/if}}", json!({})).is_err());
        // The page template itself: the home page without its `notices` list fails.
        assert!(templates.render_html("home", &json!({ "signed_in": false, "notises": [] })).is_err());
    }

    #[test]
    fn a_fragment_is_rendered_once_per_key_and_carries_each_viewers_token() {
        let templates = Templates::load().unwrap();
        let renders = Arc::new(AtomicUsize::new(0));
        // A page shows its first list of fragments; its second is not on it.
        let page = |t: &Templates| format!("<main>{}</main>", t.slot(0));
        let fill = |votes, token| {
            let lists = vec![vec![post_fragment(&renders, votes)], vec![post_fragment(&renders, 99)]];
            templates.fill_slots(page(&templates), lists, token).unwrap()
        };
        let a = fill(0, "token-of-a");
        let b = fill(0, "token-of-b");
        assert_eq!(
            renders.load(Ordering::SeqCst),
            1,
            "the second viewer gets the kept HTML; a list not shown is not rendered"
        );
        assert!(a.starts_with("<main>") && a.ends_with("</main>") && !a.contains(&templates.slot(0)), "{a}");
        assert!(a.contains("Base case") && a.contains("/forums/posts/7/vote"));
        assert!(a.contains(r#"value="token-of-a""#) && !a.contains("token-of-b"));
        assert!(b.contains(r#"value="token-of-b""#) && !b.contains("token-of-a"));
        assert!(!a.contains(&templates.fragments.placeholder) && !b.contains(&templates.fragments.placeholder));
        // Anything it shows changes the key: an upvote renders it again.
        let c = fill(1, "token-of-a");
        assert_eq!(renders.load(Ordering::SeqCst), 2);
        assert!(c.contains("1 upvote(s)") && a.contains("0 upvote(s)"));
    }
}

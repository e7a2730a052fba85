//! Cookie consent and first-party analytics (COM-3, COM-4).
//!
//! Without a choice, only essential cookies exist: the sign-in session, the
//! CSRF token, the one-shot flash message and, once a choice is made, the
//! choice itself (`lyceum_cookies`: a random visitor id and the choice). No
//! third-party or advertising cookie exists at all; pages load nothing from
//! another origin (the CSP forbids it).
//!
//! Analytics are off until the visitor allows them. Then the `Analytics`
//! fairing records each HTML page they view: the route that served it (its
//! template, `/password/reset/{token}`, never the path or the query string:
//! paths carry reset and unsubscribe tokens, usernames and certificate codes),
//! time, browser and operating system family, and the country when the
//! operator configured a GeoIP database (`geoip_db`); never the account, the
//! IP address or the full user agent: views carry only the random visitor id.
//! Every choice is recorded, under that visitor id alone, even when made
//! signed in: nothing links a visitor id, or its views, to a person. Staff see
//! only totals. Views and choices are deleted after their retention periods
//! (`retention_page_view_days`, `retention_cookie_choice_days`). Counting is
//! profiling (`profiling::Use::UsageStatistics`): pages viewed signed in by
//! someone who objected to profiling are not counted.

use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Cookie, CookieJar, Method, SameSite, Status};
use rocket::{Request, Response};
use serde::Serialize;

use crate::db::schema::{cookie_choices, page_views};
use crate::db::{Conn, Db};
pub use crate::kernel::client::families;

pub const COOKIE: &str = "lyceum_cookies";
/// Choices are asked again after a year.
const CHOICE_DAYS: i64 = 365;

/// A visitor's choice, as their cookie holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub visitor: String,
    pub analytics: bool,
}

/// Whether every page's layout shows the cookie banner: until the visitor
/// chose (COM-3), except on the cookie pages themselves
/// (`web::page::LayoutParts`).
pub fn layout_banner(req: &rocket::Request<'_>) -> serde_json::Value {
    serde_json::Value::Bool(choice(req.cookies()).is_none() && !req.uri().path().as_str().starts_with("/cookies"))
}

/// The choice in the request's cookie; `None` until the visitor made one.
pub fn choice(cookies: &CookieJar<'_>) -> Option<Choice> {
    parse(cookies.get(COOKIE)?.value())
}

/// A choice cookie's value; anything malformed is no choice at all.
fn parse(value: &str) -> Option<Choice> {
    let mut parts = value.split('.');
    let (Some("v1"), Some(visitor), Some(flag), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let valid = visitor.len() == 32 && visitor.chars().all(|c| c.is_ascii_hexdigit());
    let analytics = match flag {
        "a" => true,
        "e" => false,
        _ => return None,
    };
    valid.then(|| Choice { visitor: visitor.to_string(), analytics })
}

/// Stores a choice in the cookie (keeping the visitor id of an earlier one) and returns it.
pub fn set_choice(cookies: &CookieJar<'_>, analytics: bool, secure: bool) -> Choice {
    let visitor = choice(cookies).map(|c| c.visitor).unwrap_or_else(|| {
        let mut bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        hex::encode(bytes)
    });
    let value = format!("v1.{visitor}.{}", if analytics { "a" } else { "e" });
    let cookie = Cookie::build((COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(rocket::time::Duration::days(CHOICE_DAYS))
        .build();
    cookies.add(cookie);
    Choice { visitor, analytics }
}

/// Records a choice (COM-3: the choice itself is kept), under the visitor id
/// only: never the account of whoever made it.
pub fn record(conn: &mut Conn, choice: &Choice, now: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(cookie_choices::table)
        .values((
            cookie_choices::visitor.eq(&choice.visitor),
            cookie_choices::analytics.eq(choice.analytics),
            cookie_choices::created_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

pub use crate::kernel::places::{GeoIp, Places};

/// Records page views of visitors who allowed analytics.
pub struct Analytics {
    pub geoip: Option<Arc<GeoIp>>,
}

/// Paths that are not pages a person reads.
fn counted(path: &str) -> bool {
    !["/static/", "/media/", "/o/", "/c/", "/healthz", "/readyz", "/metrics", "/api/", "/outbox"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// What a page view records in place of a path no route served.
pub const UNMATCHED: &str = "(no route)";

/// A route's path template as statistics show it: `/password/reset/<token>`
/// becomes `/password/reset/{token}`, `/static/<path..>` `/static/{path}`.
/// Only the template: the values in the requested path never appear.
pub fn template(route_path: &str) -> String {
    route_path
        .split('/')
        .map(|segment| match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            Some(name) => format!("{{{}}}", name.trim_end_matches("..")),
            None => segment.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[rocket::async_trait]
impl Fairing for Analytics {
    fn info(&self) -> Info {
        Info { name: "first-party analytics (with consent)", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        if req.method() != Method::Get || res.status() != Status::Ok {
            return;
        }
        let html = res.content_type().is_some_and(|t| t.is_html());
        if !html || !counted(req.uri().path().as_str()) {
            return;
        }
        let path = req.route().map_or_else(|| UNMATCHED.to_string(), |route| template(route.uri.path()));
        let Some(choice) = choice(req.cookies()).filter(|c| c.analytics) else { return };
        let Some(db) = req.rocket().state::<Db>() else { return };
        let (browser, os) = families(req.headers().get_one("User-Agent").unwrap_or_default());
        let country = self.geoip.as_ref().zip(crate::web::guards::client_ip(req)).and_then(|(geo, ip)| geo.country(ip));
        // Usage statistics are profiling: a signed-in person who objected is
        // not counted, whatever this browser's choice (the view itself still
        // carries no account).
        let signed_in = req.local_cache(crate::web::guards::SessionState::default).user.as_ref().map(|u| u.id);
        let recorded = db
            .run(move |conn| {
                if let Some(user_id) = signed_in {
                    let prefs = super::comms::preferences(conn, user_id)?;
                    if !super::profiling::allows(&prefs, super::profiling::Use::UsageStatistics) {
                        return Ok(0);
                    }
                }
                diesel::insert_into(page_views::table)
                    .values((
                        page_views::visitor.eq(&choice.visitor),
                        page_views::path.eq(path.chars().take(300).collect::<String>()),
                        page_views::browser.eq(browser),
                        page_views::os.eq(os),
                        page_views::country.eq(country),
                        page_views::created_at.eq(crate::db::now()),
                    ))
                    .execute(conn)
                    .map_err(crate::db::DbError::from)
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record a page view");
        }
    }
}

/// One row of a total.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub key: String,
    pub views: i64,
}

/// Totals for staff over the last `days`: views per page, day, browser, OS and country, and visitors.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub views: i64,
    pub visitors: i64,
    pub pages: Vec<Count>,
    pub days: Vec<Count>,
    pub browsers: Vec<Count>,
    pub systems: Vec<Count>,
    pub countries: Vec<Count>,
}

pub fn totals(conn: &mut Conn, days: i64, now: NaiveDateTime) -> QueryResult<Totals> {
    let since = now - Duration::days(days);
    let rows: Vec<(String, String, String, Option<String>, NaiveDateTime, String)> = page_views::table
        .filter(page_views::created_at.ge(since))
        .select((
            page_views::path,
            page_views::browser,
            page_views::os,
            page_views::country,
            page_views::created_at,
            page_views::visitor,
        ))
        .load(conn)?;
    fn count(keys: impl Iterator<Item = String>, top: usize) -> Vec<Count> {
        let mut map: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for key in keys {
            *map.entry(key).or_default() += 1;
        }
        let mut counts: Vec<Count> = map.into_iter().map(|(key, views)| Count { key, views }).collect();
        counts.sort_by(|a, b| b.views.cmp(&a.views).then(a.key.cmp(&b.key)));
        counts.truncate(top);
        counts
    }
    let visitors = rows.iter().map(|r| &r.5).collect::<std::collections::HashSet<_>>().len() as i64;
    let mut by_day = count(rows.iter().map(|r| r.4.date().to_string()), usize::MAX);
    by_day.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Totals {
        views: rows.len() as i64,
        visitors,
        pages: count(rows.iter().map(|r| r.0.clone()), 20),
        days: by_day,
        browsers: count(rows.iter().map(|r| r.1.clone()), 10),
        systems: count(rows.iter().map(|r| r.2.clone()), 10),
        countries: count(rows.iter().map(|r| r.3.clone().unwrap_or_else(|| "unknown".into())), 20),
    })
}

#[cfg(test)]
mod tests {
    use super::{Choice, families, parse, template};

    #[test]
    fn templates_keep_no_values() {
        assert_eq!(template("/password/reset/<token>"), "/password/reset/{token}");
        assert_eq!(template("/learn/<slug>/units/<unit_id>"), "/learn/{slug}/units/{unit_id}");
        assert_eq!(template("/static/<path..>"), "/static/{path}");
        assert_eq!(template("/courses"), "/courses");
        assert_eq!(template("/"), "/");
    }

    #[test]
    fn only_well_formed_choices_count() {
        let visitor = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse(&format!("v1.{visitor}.a")), Some(Choice { visitor: visitor.into(), analytics: true }));
        assert_eq!(parse(&format!("v1.{visitor}.e")).map(|c| c.analytics), Some(false));
        for bad in
            ["", "v1.nothex.a", &format!("v2.{visitor}.a"), &format!("v1.{visitor}.x"), &format!("v1.{visitor}.a.b")]
        {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn families_are_coarse() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36";
        assert_eq!(families(chrome), ("Chrome", "Linux"));
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(families(safari), ("Safari", "iOS"));
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0";
        assert_eq!(families(firefox), ("Firefox", "Windows"));
        assert_eq!(families(""), ("Other", "Other"));
    }
}

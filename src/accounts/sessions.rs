//! Sign-in sessions (ACC-8). The browser holds a random token in a private
//! (encrypted, signed) cookie; the server keeps a row keyed by the token's
//! SHA-256, so sessions can be listed and ended ("sign out of all devices",
//! password change) and a stolen database cannot forge one.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::accounts::{SessionUser, model::AccountStatus, model::User, roles, tokens::digest};
use crate::db::{Conn, Db, DbError, schema::role_grants, schema::sessions, schema::users};
use crate::kernel::ClientInfo;

pub const COOKIE: &str = "lyceum_session";

/// Only refresh `last_seen_at` this often, to keep most reads from becoming
/// writes; the idle limits below are then exact to a minute.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// How long a session may go unused before it ends (ASVS 3.3.2). Staff
/// sessions have the shorter limit whether or not "Remember me" was ticked:
/// they reach everyone's data. Other sessions with "Remember me" keep only
/// their lifetime, as asked for. Zero turns a limit off.
#[derive(Debug, Clone, Copy)]
pub struct IdleLimits {
    pub staff: Duration,
    pub others: Duration,
}

impl IdleLimits {
    pub fn from_config(config: &crate::config::Config) -> IdleLimits {
        IdleLimits {
            staff: Duration::minutes(config.session_idle_minutes_staff),
            others: Duration::minutes(config.session_idle_minutes),
        }
    }

    fn allows(&self, idle: Duration, staff: bool, remember: bool) -> bool {
        let within = |limit: Duration| limit <= Duration::zero() || idle <= limit;
        if staff { within(self.staff) } else { remember || within(self.others) }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: i64,
    pub remember: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// Starts a session; returns the token for the cookie.
pub fn start(
    conn: &mut Conn,
    user_id: i64,
    lifetime: Duration,
    remember: bool,
    client: &ClientInfo,
    second_factor: bool,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let token = crate::kernel::tokens::random_token(32);
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(digest(&token)),
            sessions::user_id.eq(user_id),
            sessions::remember.eq(remember),
            sessions::user_agent.eq(client.user_agent.as_deref()),
            sessions::ip.eq(client.ip.as_deref()),
            sessions::created_at.eq(now),
            sessions::last_seen_at.eq(now),
            sessions::expires_at.eq(now + lifetime),
            sessions::second_factor_at.eq(second_factor.then_some(now)),
        ))
        .execute(conn)?;
    diesel::update(users::table.find(user_id)).set(users::last_sign_in_at.eq(now)).execute(conn)?;
    Ok(token)
}

/// A role grant as stored: role, scope.
type Grant = (String, String);

/// The live session and its active user for a cookie token.
/// A session unused past its idle limit is ended here, on its next request.
pub async fn resolve(db: &Db, token: String, idle: IdleLimits) -> Result<Option<(String, SessionUser)>, DbError> {
    db.run(move |conn| {
        let now = crate::db::now();
        let id = digest(&token);
        // The session, its user and the user's roles in one round trip: a
        // row per role grant, or one row with no grant.
        let rows: Vec<(SessionRow, User, Option<Grant>)> = crate::on_backend!(conn, |c| sessions::table
            .inner_join(users::table.left_join(role_grants::table))
            .filter(sessions::id.eq(&id))
            .filter(sessions::expires_at.gt(now))
            .filter(users::status.eq(AccountStatus::Active.as_str()))
            .select((SessionRow::as_select(), User::as_select(), (role_grants::role, role_grants::scope).nullable()))
            .load(c))?;
        let roles = roles::from_grants(rows.iter().filter_map(|(_, _, grant)| grant.clone()));
        let Some((session, user, _)) = rows.into_iter().next() else { return Ok(None) };
        let staff = roles.iter().any(|(role, _)| *role == crate::kernel::Role::Staff);
        if !idle.allows(now - session.last_seen_at, staff, session.remember) {
            diesel::delete(sessions::table.find(&id)).execute(conn)?;
            return Ok(None);
        }
        if now - session.last_seen_at > TOUCH_EVERY {
            diesel::update(sessions::table.find(&id)).set(sessions::last_seen_at.eq(now)).execute(conn)?;
        }
        Ok(Some((
            id,
            SessionUser {
                id: user.id,
                username: user.username,
                first_name: user.first_name,
                last_name: user.last_name,
                email: user.email,
                email_verified: user.email_verified_at.is_some(),
                roles,
            },
        )))
    })
    .await
}

pub fn end(conn: &mut Conn, session_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(session_id)).execute(conn)
}

/// Ends every session of the user except `keep` (the one making the request).
pub fn end_others(conn: &mut Conn, user_id: i64, keep: Option<&str>) -> QueryResult<usize> {
    let query = sessions::table.filter(sessions::user_id.eq(user_id));
    match keep {
        Some(keep) => diesel::delete(query.filter(sessions::id.ne(keep))).execute(conn),
        None => diesel::delete(query).execute(conn),
    }
}

pub fn list(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Vec<SessionRow>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .order(sessions::last_seen_at.desc())
        .select(SessionRow::as_select())
        .load(conn)
}

/// Resolves the session cookie once per request into
/// [`SessionState`](crate::web::guards::SessionState), which the guards
/// (`CurrentUser`, `StaffUser`, `Viewer`) read. Attached after
/// `web::fairings::RequestContext`, whose request id it logs with.
pub struct ResolveSession;

#[rocket::async_trait]
impl rocket::fairing::Fairing for ResolveSession {
    fn info(&self) -> rocket::fairing::Info {
        rocket::fairing::Info { name: "session", kind: rocket::fairing::Kind::Request }
    }

    async fn on_request(&self, req: &mut rocket::Request<'_>, _: &mut rocket::Data<'_>) {
        use crate::web::fairings::RequestId;
        use crate::web::guards::SessionState;
        if req.uri().path().starts_with("/static/") {
            return;
        }
        let Some(token) = req.cookies().get_private(COOKIE).map(|c| c.value().to_string()) else {
            return;
        };
        let Some(db) = req.rocket().state::<Db>().cloned() else { return };
        let request_id = req.local_cache(RequestId::default).0.clone();
        let idle = req.rocket().state::<crate::config::Config>().map(IdleLimits::from_config);
        let Some(idle) = idle else { return };
        match resolve(&db, token, idle).await {
            Ok(Some((session_id, user))) => {
                req.local_cache(|| SessionState { user: Some(user), session_id: Some(session_id) });
            }
            Ok(None) => {}
            Err(e) => tracing::error!(request_id = %request_id, error = %e, "session lookup failed"),
        }
    }
}

/// A session's browser and system as its owner knows them, read from the
/// user agent by `woothee` ("Firefox 128 on Windows", "Safari 17 on iPhone").
/// Only what the string says: Windows 10 and 11 send the same version, so
/// both are "Windows"; macOS browsers freeze their version, so none is shown.
pub fn device(user_agent: Option<&str>) -> String {
    const UNKNOWN: &str = woothee::woothee::VALUE_UNKNOWN;
    let parsed = user_agent.filter(|ua| !ua.trim().is_empty()).and_then(|ua| woothee::parser::Parser::new().parse(ua));
    let Some(found) = parsed.filter(|f| f.name != UNKNOWN || f.os != UNKNOWN) else {
        return "Unknown browser".into();
    };
    let major = found.version.split('.').next().filter(|v| !v.is_empty() && *v != UNKNOWN);
    let browser = match (found.name, major) {
        (UNKNOWN, _) => "Unknown browser".to_string(),
        (name, Some(v)) => format!("{name} {v}"),
        (name, None) => name.to_string(),
    };
    let system = match found.os {
        UNKNOWN => return browser,
        "Mac OSX" => "macOS",
        os if os.starts_with("Windows 10") || os == "Windows UNKNOWN Ver" => "Windows",
        os => os,
    };
    format!("{browser} on {system}")
}

/// A stored client address as people read it: IPv6 in its short form, an
/// IPv4 address carried in IPv6 as IPv4.
pub fn readable_address(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

#[cfg(test)]
mod device_tests {
    use super::{device, readable_address};

    #[test]
    fn devices_are_named_by_browser_and_system() {
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(device(Some(firefox)), "Firefox 128 on Windows");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
        assert_eq!(device(Some(safari)), "Safari 17 on iPhone");
        let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(device(Some(chrome)), "Chrome 131 on macOS");
        assert_eq!(device(Some("Lyceum-probe/1.0")), "Unknown browser");
        assert_eq!(device(None), "Unknown browser");
        assert_eq!(device(Some("")), "Unknown browser");
    }

    #[test]
    fn addresses_read_in_their_short_form() {
        assert_eq!(readable_address("2001:0db8:0000:0000:0000:0000:0000:0007"), "2001:db8::7");
        assert_eq!(readable_address("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(readable_address("203.0.113.9"), "203.0.113.9");
        assert_eq!(readable_address("not an address"), "not an address");
    }
}

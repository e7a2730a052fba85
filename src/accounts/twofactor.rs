//! Two-factor sign-in (ACC-5) with an authenticator app (TOTP, RFC 6238)
//! and single-use recovery codes; step-up for sensitive changes; the
//! account's security events. Codes are checked only when the person starts
//! an action that needs one, each works once, and entry is rate-limited by
//! the routes (SEC-6).
//!
//! A password sign-in that still needs a second factor (or the acceptance
//! of changed policies) is parked in a private cookie (`HeldSignIn`):
//! encrypted and authenticated, so it cannot be forged or moved forward a
//! stage without the check of that stage.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::db::Conn;
use crate::db::schema::{recovery_codes, security_events, sessions, totp_credentials};
use crate::kernel::ClientInfo;
use crate::kernel::vault;

/// The sealed column of TOTP secrets (SEC-2).
pub const TOTP_FIELD: &str = "totp_credentials.secret";
/// A second factor entered this recently covers a sensitive change.
pub const STEP_UP_MINUTES: i64 = 10;
pub const RECOVERY_CODES: usize = 10;
const STEP_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("{0}")]
    Keys(String),
}

impl From<TwoFactorError> for crate::web::AppError {
    fn from(e: TwoFactorError) -> Self {
        match e {
            TwoFactorError::Invalid(m) => crate::web::AppError::Unprocessable(m),
            TwoFactorError::Db(e) => e.into(),
            TwoFactorError::Keys(m) => crate::web::AppError::Internal(m),
        }
    }
}

/// A wrong or stale code is the person's to correct; the rest is the site's.
impl crate::web::outcome::UserFault for TwoFactorError {
    fn for_user(self) -> Result<String, Self> {
        match self {
            TwoFactorError::Invalid(m) => Ok(m),
            e => Err(e),
        }
    }
}

fn totp(secret: &[u8], account: &str) -> Result<TOTP, TwoFactorError> {
    TOTP::new(Algorithm::SHA1, 6, 1, STEP_SECS, secret.to_vec(), Some("Lyceum".into()), account.to_string())
        .map_err(|e| TwoFactorError::Keys(e.to_string()))
}

/// A TOTP credential opened: the secret, when it was confirmed, the last step used.
type Credential = (Vec<u8>, Option<NaiveDateTime>, i64);

fn unseal(conn: &mut Conn, user_id: i64) -> Result<Option<Credential>, TwoFactorError> {
    let row: Option<(String, Option<NaiveDateTime>, i64)> = totp_credentials::table
        .find(user_id)
        .select((totp_credentials::secret, totp_credentials::confirmed_at, totp_credentials::last_step))
        .first(conn)
        .optional()?;
    let Some((sealed, confirmed, last)) = row else { return Ok(None) };
    let b32 = vault::open(TOTP_FIELD, &sealed).map_err(|e| TwoFactorError::Keys(e.to_string()))?;
    let bytes = Secret::Encoded(b32).to_bytes().map_err(|e| TwoFactorError::Keys(format!("{e:?}")))?;
    Ok(Some((bytes, confirmed, last)))
}

/// Whether the account signs in with a second factor (an app or texts).
pub fn enabled(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
    Ok(app_enabled(conn, user_id)? || super::sms::enabled(conn, user_id)?)
}

/// Whether an authenticator app is set up.
pub fn app_enabled(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
    let n: i64 = totp_credentials::table
        .filter(totp_credentials::user_id.eq(user_id))
        .filter(totp_credentials::confirmed_at.is_not_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// What the enrolment page shows: the secret for typing, the `otpauth://`
/// URL and a QR code of it (PNG, base64).
pub struct Enrolment {
    pub secret: String,
    pub url: String,
    pub qr_png_base64: String,
}

/// Starts (or restarts) enrolment with a fresh secret, sealed at rest.
pub fn begin(conn: &mut Conn, user_id: i64, account: &str, now: NaiveDateTime) -> Result<Enrolment, TwoFactorError> {
    if app_enabled(conn, user_id)? {
        return Err(TwoFactorError::Invalid("An authenticator app is already set up; remove it first.".into()));
    }
    let Secret::Encoded(b32) = Secret::generate_secret().to_encoded() else {
        return Err(TwoFactorError::Keys("secret encoding".into()));
    };
    let sealed = vault::seal(TOTP_FIELD, &b32).map_err(|e| TwoFactorError::Keys(e.to_string()))?;
    diesel::delete(totp_credentials::table.find(user_id)).execute(conn)?;
    diesel::insert_into(totp_credentials::table)
        .values((
            totp_credentials::user_id.eq(user_id),
            totp_credentials::secret.eq(sealed),
            totp_credentials::last_step.eq(0i64),
            totp_credentials::created_at.eq(now),
        ))
        .execute(conn)?;
    let bytes = Secret::Encoded(b32.clone()).to_bytes().map_err(|e| TwoFactorError::Keys(format!("{e:?}")))?;
    let t = totp(&bytes, account)?;
    Ok(Enrolment { secret: b32, url: t.get_url(), qr_png_base64: t.get_qr_base64().map_err(TwoFactorError::Keys)? })
}

/// The time step a code belongs to (this step or one either side, for
/// clock drift), if it is right and newer than the last one used.
fn matching_step(secret: &[u8], code: &str, last_step: i64, now: NaiveDateTime) -> Result<Option<i64>, TwoFactorError> {
    let t = totp(secret, "")?;
    let current = now.and_utc().timestamp() / STEP_SECS as i64;
    for step in [current - 1, current, current + 1] {
        if step > last_step && step >= 0 && t.generate(step as u64 * STEP_SECS) == code {
            return Ok(Some(step));
        }
    }
    Ok(None)
}

fn normalise(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// The unsalted hash codes were stored under before salting; such a code
/// still works until it is used or the codes are renewed.
fn legacy_hash(code: &str) -> String {
    hex::encode(Sha256::new_with_prefix(b"lyceum recovery code\0").chain_update(normalise(code)).finalize())
}

/// `s1$<salt>$<hash>`: a random salt of its own for every stored code, so
/// one code on two accounts hashes differently and a table of precomputed
/// hashes is of no use. A fast hash suffices for 50 random bits per code.
fn salted_hash(code: &str, salt: &str) -> String {
    let digest = Sha256::new_with_prefix(b"lyceum recovery code\0")
        .chain_update(salt.as_bytes())
        .chain_update(b"\0")
        .chain_update(normalise(code))
        .finalize();
    format!("s1${salt}${}", hex::encode(digest))
}

fn hash(code: &str) -> String {
    let salt: [u8; 16] = rand::thread_rng().r#gen();
    salted_hash(code, &hex::encode(salt))
}

/// Whether `stored` (salted or legacy) is the hash of `code`, compared in constant time.
fn matches(stored: &str, code: &str) -> bool {
    let expected = match stored.strip_prefix("s1$").and_then(|rest| rest.split_once('$')) {
        Some((salt, _)) => salted_hash(code, salt),
        None => legacy_hash(code),
    };
    expected.len() == stored.len() && expected.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Confirms enrolment with a code from the app; returns new recovery codes
/// (shown once) unless some already exist.
pub fn confirm(conn: &mut Conn, user_id: i64, code: &str, now: NaiveDateTime) -> Result<Vec<String>, TwoFactorError> {
    let Some((secret, confirmed, last)) = unseal(conn, user_id)? else {
        return Err(TwoFactorError::Invalid("Start again: scan a new code with your app.".into()));
    };
    if confirmed.is_some() {
        return Err(TwoFactorError::Invalid("Your authenticator app is already set up.".into()));
    }
    let Some(step) = matching_step(&secret, &normalise(code), last, now)? else {
        return Err(TwoFactorError::Invalid(
            "That code is not right. Enter the 6-digit code your app shows now (check the phone's clock).".into(),
        ));
    };
    diesel::update(totp_credentials::table.find(user_id))
        .set((totp_credentials::confirmed_at.eq(now), totp_credentials::last_step.eq(step)))
        .execute(conn)?;
    first_recovery_codes(conn, user_id, now).map_err(Into::into)
}

/// The first second factor comes with recovery codes (returned, shown once);
/// a later one keeps those.
pub fn first_recovery_codes(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    if recovery_left(conn, user_id)? > 0 {
        return Ok(Vec::new());
    }
    new_recovery_codes(conn, user_id, now)
}

/// Replaces the recovery codes with ten new ones; returns them (shown once).
pub fn new_recovery_codes(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw: String = (0..10).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect();
    store_recovery_codes(conn, user_id, &codes, now)?;
    Ok(codes)
}

/// Replaces the account's recovery codes with `codes`.
pub fn store_recovery_codes(conn: &mut Conn, user_id: i64, codes: &[String], now: NaiveDateTime) -> QueryResult<()> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)?;
    for code in codes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(hash(code)),
                recovery_codes::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn recovery_left(conn: &mut Conn, user_id: i64) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

/// How a second factor was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    App,
    Text,
    RecoveryCode,
}

/// Checks a code from the app (each works once) or a recovery code (each
/// works once); a wrong, expired or reused code is an error with a clear message.
pub fn verify(conn: &mut Conn, user_id: i64, code: &str, now: NaiveDateTime) -> Result<Method, TwoFactorError> {
    let code = normalise(code);
    if code.is_empty() {
        return Err(TwoFactorError::Invalid("Enter the code from your authenticator app or a recovery code.".into()));
    }
    if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        // A code we texted (when codes by text are on), else the app's.
        if super::sms::enabled(conn, user_id)? {
            if super::sms::use_code(conn, user_id, &code, now)? {
                return Ok(Method::Text);
            }
            if super::sms::stale_code(conn, user_id, &code)? {
                return Err(TwoFactorError::Invalid(
                    "That texted code has expired or was already used. Ask for a new one.".into(),
                ));
            }
        }
        let Some((secret, Some(_), last)) = unseal(conn, user_id)? else {
            return Err(TwoFactorError::Invalid("That code is not right or has expired.".into()));
        };
        let current = now.and_utc().timestamp() / STEP_SECS as i64;
        return match matching_step(&secret, &code, last, now)? {
            Some(step) => {
                // Only a newer step is accepted: a code cannot be replayed.
                let n =
                    diesel::update(totp_credentials::table.find(user_id).filter(totp_credentials::last_step.lt(step)))
                        .set(totp_credentials::last_step.eq(step))
                        .execute(conn)?;
                if n == 1 { Ok(Method::App) } else { Err(used()) }
            }
            None if last >= current - 1 && matching_step(&secret, &code, current - 2, now)?.is_some() => Err(used()),
            None => Err(TwoFactorError::Invalid(
                "That code is not right or has expired. Enter the code your app shows now.".into(),
            )),
        };
    }
    // Salted hashes cannot be looked up: the account's unused codes (ten at most) are compared one by one.
    let unused: Vec<(i64, String)> = recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .select((recovery_codes::id, recovery_codes::code_hash))
        .load(conn)?;
    let n = match unused.iter().find(|(_, stored)| matches(stored, &code)) {
        // The `used_at` filter makes a concurrent second use of the same code lose.
        Some((id, _)) => diesel::update(recovery_codes::table.find(id).filter(recovery_codes::used_at.is_null()))
            .set(recovery_codes::used_at.eq(now))
            .execute(conn)?,
        None => 0,
    };
    if n == 1 {
        Ok(Method::RecoveryCode)
    } else {
        Err(TwoFactorError::Invalid("That recovery code is not right or was already used.".into()))
    }
}

fn used() -> TwoFactorError {
    TwoFactorError::Invalid("That code was already used. Wait for the next code in your app.".into())
}

/// Removes the app; the recovery codes go too when no second factor is left.
pub fn disable(conn: &mut Conn, user_id: i64) -> QueryResult<()> {
    diesel::delete(totp_credentials::table.find(user_id)).execute(conn)?;
    drop_recovery_if_unused(conn, user_id)
}

/// Recovery codes only make sense beside a second factor.
pub fn drop_recovery_if_unused(conn: &mut Conn, user_id: i64) -> QueryResult<()> {
    if !enabled(conn, user_id)? {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)?;
    }
    Ok(())
}

/// Records that this session just gave a second factor.
pub fn mark_session(conn: &mut Conn, session_id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(sessions::table.find(session_id)).set(sessions::second_factor_at.eq(now)).execute(conn).map(|_| ())
}

/// Whether a sensitive change may go ahead in this session: no second factor
/// is set up, or one was given within `STEP_UP_MINUTES`.
pub fn stepped_up(conn: &mut Conn, user_id: i64, session_id: Option<&str>, now: NaiveDateTime) -> QueryResult<bool> {
    if !enabled(conn, user_id)? {
        return Ok(true);
    }
    let Some(id) = session_id else { return Ok(false) };
    let at: Option<Option<NaiveDateTime>> =
        sessions::table.find(id).select(sessions::second_factor_at).first(conn).optional()?;
    Ok(at.flatten().is_some_and(|t| now - t < Duration::minutes(STEP_UP_MINUTES)))
}

/// Whether this session proved itself within `STEP_UP_MINUTES`, whatever
/// factors the account has: what adding or replacing a second factor needs,
/// so that a stolen session cannot enrol a factor of its own. Enrolling never
/// counts. An account with neither a password nor a factor (an identity
/// provider's word only) has nothing else to give, so a sign-in within that
/// time counts for it.
pub fn freshly_stepped_up(
    conn: &mut Conn,
    user_id: i64,
    session_id: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let Some(id) = session_id else { return Ok(false) };
    let row: Option<(Option<NaiveDateTime>, NaiveDateTime)> = sessions::table
        .find(id)
        .filter(sessions::user_id.eq(user_id))
        .select((sessions::second_factor_at, sessions::created_at))
        .first(conn)
        .optional()?;
    let Some((at, started)) = row else { return Ok(false) };
    let fresh = |t: NaiveDateTime| now - t < Duration::minutes(STEP_UP_MINUTES);
    if at.is_some_and(fresh) {
        return Ok(true);
    }
    Ok(!enabled(conn, user_id)? && !has_password(conn, user_id)? && fresh(started))
}

/// Whether the account has a password of its own.
pub fn has_password(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
    Ok(password_hash(conn, user_id)?.is_some())
}

/// The account's password hash, when it has a password.
pub fn password_hash(conn: &mut Conn, user_id: i64) -> QueryResult<Option<String>> {
    use crate::db::schema::users;
    let hash: Option<String> = users::table.find(user_id).select(users::password_hash).first(conn).optional()?;
    Ok(hash.filter(|h| !h.is_empty()))
}

/// Changes to how an account signs in: each one is emailed to its owner, so
/// that no change of factors, by any path, goes unseen.
const FACTOR_CHANGES: &[(&str, &str)] = &[
    ("authenticator_app_added", "An authenticator app was set up for your account."),
    ("authenticator_app_removed", "The authenticator app was removed from your account."),
    ("text_codes_added", "Sign-in codes by text were turned on for your account."),
    ("text_codes_removed", "Sign-in codes by text were turned off for your account."),
    ("recovery_codes_renewed", "New recovery codes were made for your account; the old ones no longer work."),
    (
        "text_consent_withdrawn",
        "A STOP reply from your phone stopped our texts. Your account still asks for a second factor at sign-in: use your authenticator app or a recovery code.",
    ),
    ("texts_allowed_again", "A START reply from your phone allowed our texts again; codes by text work again."),
];

/// Appends to the account's security events; a change of factors is also
/// emailed to the owner.
pub fn record(
    conn: &mut Conn,
    user_id: i64,
    kind: &str,
    detail: Option<&str>,
    client: &ClientInfo,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(security_events::table)
        .values((
            security_events::user_id.eq(user_id),
            security_events::kind.eq(kind),
            security_events::detail.eq(detail),
            security_events::ip.eq(client.ip.as_deref()),
            security_events::user_agent.eq(client.user_agent.as_deref()),
            security_events::created_at.eq(now),
        ))
        .execute(conn)?;
    if let Some((_, change)) = FACTOR_CHANGES.iter().find(|(k, _)| *k == kind) {
        use crate::db::schema::users;
        let (email, first): (String, String) =
            users::table.find(user_id).select((users::email, users::first_name)).first(conn)?;
        crate::notify::enqueue_email(
            conn,
            &email,
            "A change to how you sign in",
            "security_factor_changed",
            serde_json::json!({
                "first_name": first, "change": change,
                "when": crate::web::format::moment(now),
            }),
        )?;
    }
    Ok(())
}

pub type Event = (String, Option<String>, Option<String>, Option<String>, NaiveDateTime);

pub fn events(conn: &mut Conn, user_id: i64, limit: i64) -> QueryResult<Vec<Event>> {
    security_events::table
        .filter(security_events::user_id.eq(user_id))
        .order(security_events::id.desc())
        .limit(limit)
        .select((
            security_events::kind,
            security_events::detail,
            security_events::ip,
            security_events::user_agent,
            security_events::created_at,
        ))
        .load(conn)
}

/// A sign-in whose password was right, waiting for the next stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldSignIn {
    pub user_id: i64,
    pub remember: bool,
    pub next: String,
    /// `second_factor` (a code is still needed) or `policies` (changed
    /// policies must be accepted; any second factor was given).
    pub stage: String,
    pub second_factor: bool,
    until: i64,
}

pub const HELD_COOKIE: &str = "lyceum_pending_signin";
/// Minutes a held sign-in lasts.
const HELD_MINUTES: i64 = 15;

pub mod stage {
    pub const SECOND_FACTOR: &str = "second_factor";
    pub const POLICIES: &str = "policies";
}

impl HeldSignIn {
    pub fn new(
        user_id: i64,
        remember: bool,
        next: &crate::web::next::NextPath,
        stage: &str,
        second_factor: bool,
    ) -> HeldSignIn {
        HeldSignIn {
            user_id,
            remember,
            next: next.as_str().to_string(),
            stage: stage.to_string(),
            second_factor,
            until: (crate::db::now() + Duration::minutes(HELD_MINUTES)).and_utc().timestamp(),
        }
    }

    pub fn hold(&self, cookies: &rocket::http::CookieJar<'_>, tls: bool) {
        let value = serde_json::to_string(self).unwrap_or_default();
        cookies.add_private(crate::web::csrf::essential_cookie(tls, HELD_COOKIE, value));
    }

    /// The held sign-in at `stage`, if one is there and still fresh.
    pub fn take(cookies: &rocket::http::CookieJar<'_>, stage: &str) -> Option<HeldSignIn> {
        let held: HeldSignIn = serde_json::from_str(cookies.get_private(HELD_COOKIE)?.value()).ok()?;
        (held.stage == stage && held.until >= crate::db::now().and_utc().timestamp()).then_some(held)
    }

    pub fn clear(cookies: &rocket::http::CookieJar<'_>) {
        cookies.remove_private(rocket::http::Cookie::build(HELD_COOKIE).path("/"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only_once_newer() {
        let secret = b"12345678901234567890".to_vec();
        let now = chrono::DateTime::from_timestamp(59, 0).unwrap().naive_utc();
        // RFC 6238 test vector (SHA-1, T = 59 s): 94287082, 6 digits → 287082.
        assert_eq!(matching_step(&secret, "287082", 0, now).unwrap(), Some(1));
        assert_eq!(matching_step(&secret, "287082", 1, now).unwrap(), None, "not twice");
        assert_eq!(matching_step(&secret, "000000", 0, now).unwrap(), None);
        assert_eq!(normalise(" abcde-fghij "), "ABCDEFGHIJ");
    }
}

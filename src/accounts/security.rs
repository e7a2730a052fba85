//! The account security page (sessions, the authenticator app, recovery
//! codes, recent events), the second step of signing in, and step-up before
//! sensitive changes (ACC-5, ACC-8, SEC-6).

use rocket::http::CookieJar;
use rocket::{Either, FromForm, State, get, post};

use super::hooks::AccountHooks;
use super::routes::SessionGuard;
use super::sessions;
use super::sms::{self, Sms};
use super::twofactor::{self, HeldSignIn, TwoFactorError, stage};
use super::views;
use crate::config::Config;
use crate::db::{Db, now};
use crate::web::csrf::CsrfOnly;
use crate::web::next::NextPath;
use crate::web::ratelimit::{Action, RateLimits};
use crate::web::{AppError, AppResult, ClientInfo, CsrfForm, CurrentUser, Flash, Page};

/// A short, stable handle for a session in forms (never the whole id).
fn handle(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[get("/account/security")]
pub async fn page(
    db: &State<Db>,
    providers: &State<super::oidc::Providers>,
    places: &State<crate::kernel::places::Places>,
    user: CurrentUser,
    state: SessionGuard,
) -> AppResult<Page> {
    let (user_id, current) = (user.id, state.0.session_id.clone());
    let (providers, places) = (providers.inner().clone(), places.inner().clone());
    let view = db
        .run(move |conn| {
            let t = now();
            let list = sessions::list(conn, user_id, t)?;
            let events = twofactor::events(conn, user_id, 20)?;
            Ok::<_, AppError>(views::Security {
                sessions: list
                    .iter()
                    .map(|s| views::SecuritySession {
                        handle: handle(&s.id).to_string(),
                        current: current.as_deref() == Some(s.id.as_str()),
                        device: sessions::device(s.user_agent.as_deref()),
                        address: s.ip.as_deref().map(sessions::readable_address),
                        place: s.ip.as_deref().and_then(|ip| places.country(ip)),
                        started: s.created_at.into(),
                        seen: s.last_seen_at.into(),
                    })
                    .collect(),
                places_known: places.0.is_some(),
                app: twofactor::app_enabled(conn, user_id)?,
                text: sms::number(conn, user_id)?.map(|(phone, confirmed, stopped)| views::TextNumber {
                    to: masked(&phone),
                    on: confirmed && !stopped,
                    stopped,
                }),
                any: twofactor::enabled(conn, user_id)?,
                recovery_left: twofactor::recovery_left(conn, user_id)?,
                providers: super::signin_with::for_security_page(conn, &providers, user_id)?,
                events: events
                    .into_iter()
                    .map(|(kind, detail, ip, agent, at)| views::SecurityEvent {
                        kind: kind.replace('_', " "),
                        detail,
                        ip,
                        device: agent.as_deref().map(|a| sessions::device(Some(a))),
                        at: at.into(),
                    })
                    .collect(),
            })
        })
        .await?;
    Ok(Page::view("accounts/security", "Account security", view))
}

#[post("/account/security/sessions/<id>/end", data = "<_form>")]
pub async fn end_session(
    db: &State<Db>,
    user: CurrentUser,
    client: ClientInfo,
    id: &str,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    let (user_id, prefix) = (user.id, id.to_string());
    let ended = db
        .run(move |conn| {
            let t = now();
            let target = sessions::list(conn, user_id, t)?.into_iter().find(|s| handle(&s.id) == prefix);
            let Some(s) = target else { return Ok::<_, AppError>(false) };
            sessions::end(conn, &s.id)?;
            twofactor::record(conn, user_id, "session_ended", s.user_agent.as_deref(), &client, t)?;
            Ok(true)
        })
        .await?;
    if !ended {
        return Err(AppError::NotFound);
    }
    Ok(Flash::success("/account/security", "That device is signed out."))
}

/// A rule for whether this session has proved itself recently enough.
type StepUpRule = fn(&mut crate::db::Conn, i64, Option<&str>, chrono::NaiveDateTime) -> diesel::QueryResult<bool>;

/// `None` when `rule` holds for this session; else where to go to prove it.
async fn step_up_unless(
    db: &Db,
    user_id: i64,
    session_id: Option<String>,
    next: &str,
    rule: StepUpRule,
    message: &'static str,
) -> AppResult<Option<Flash>> {
    let ok = db.run(move |conn| rule(conn, user_id, session_id.as_deref(), now()).map_err(AppError::from)).await?;
    Ok((!ok).then(|| Flash::info(format!("/account/security/verify?next={}", urlencoding::encode(next)), message)))
}

/// Whether this session may make a sensitive change now; else where to go.
pub async fn require_step_up(
    db: &Db,
    user_id: i64,
    session_id: Option<String>,
    next: &str,
) -> AppResult<Option<Flash>> {
    let message = "For your security, enter a code from your authenticator app (or a recovery code) first.";
    step_up_unless(db, user_id, session_id, next, twofactor::stepped_up, message).await
}

/// Adding or replacing a second factor: the session must have proved itself
/// just now, with a factor the account already has or (having none) its
/// password; else where to go to do so.
pub async fn require_fresh_step_up(
    db: &Db,
    user_id: i64,
    session_id: Option<String>,
    next: &str,
) -> AppResult<Option<Flash>> {
    let message = "For your security, confirm it is you first.";
    step_up_unless(db, user_id, session_id, next, twofactor::freshly_stepped_up, message).await
}

#[post("/account/security/app", data = "<_form>")]
pub async fn begin_app(
    db: &State<Db>,
    user: CurrentUser,
    state: SessionGuard,
    _form: CsrfOnly,
) -> AppResult<Either<Page, Flash>> {
    if let Some(go) = require_fresh_step_up(db, user.id, state.0.session_id.clone(), "/account/security").await? {
        return Ok(Either::Right(go));
    }
    let (user_id, account) = (user.id, user.email.clone());
    let outcome = db.run(move |conn| Ok::<_, AppError>(twofactor::begin(conn, user_id, &account, now()))).await?;
    match outcome {
        Ok(e) => Ok(Either::Left(Page::view(
            "accounts/security_app",
            "Set up an authenticator app",
            views::AppSetup { secret: e.secret, url: e.url, qr: e.qr_png_base64 },
        ))),
        Err(e) => Ok(Either::Right(Flash::refused("/account/security", e)?)),
    }
}

#[derive(FromForm)]
pub struct CodeForm {
    #[field(default = String::new())]
    code: String,
    /// A step-up of an account with no second factor yet.
    #[field(default = String::new())]
    password: String,
    next: NextPath,
}

#[post("/account/security/app/confirm", data = "<form>")]
pub async fn confirm_app(
    db: &State<Db>,
    limits: &State<RateLimits>,
    user: CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    form: CsrfForm<CodeForm>,
) -> AppResult<Either<Page, Flash>> {
    let added = (twofactor::confirm as Confirm, "authenticator_app_added", "Your authenticator app is set up.");
    confirm_factor(db, limits, &user, state, client, &form.form.code, added).await
}

/// Confirms a second factor being set up, and what the outcome is called.
type Confirm = fn(&mut crate::db::Conn, i64, &str, chrono::NaiveDateTime) -> Result<Vec<String>, TwoFactorError>;

/// Checks the code that confirms a new second factor (rate-limited), records
/// the event and shows the recovery codes when they are new. Confirming a
/// factor being enrolled is not a step-up: the session is not marked.
async fn confirm_factor(
    db: &Db,
    limits: &RateLimits,
    user: &CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    code: &str,
    (confirm, event, done): (Confirm, &'static str, &'static str),
) -> AppResult<Either<Page, Flash>> {
    limit_codes(limits, user.id, &client).await?;
    // The enrolment began after a fresh step-up; it must still be fresh.
    if let Some(go) = require_fresh_step_up(db, user.id, state.0.session_id.clone(), "/account/security").await? {
        return Ok(Either::Right(go));
    }
    let (user_id, code) = (user.id, code.to_string());
    let outcome = db
        .run(move |conn| {
            let t = now();
            let codes = confirm(conn, user_id, &code, t);
            if codes.is_ok() {
                twofactor::record(conn, user_id, event, None, &client, t)?;
            }
            Ok::<_, AppError>(codes)
        })
        .await?;
    codes_or_flash(outcome, done)
}

/// Every code entry counts against the account and the client (SEC-6).
async fn limit_codes(limits: &RateLimits, user_id: i64, client: &ClientInfo) -> AppResult<()> {
    limits
        .check_all(Action::CodeEntry, &[&format!("user:{user_id}"), &client.rate_key()])
        .await
        .map_err(|retry_after| AppError::RateLimited { retry_after })
}

/// New recovery codes are shown once; without new ones, a flash saying `done`.
fn codes_or_flash(outcome: Result<Vec<String>, TwoFactorError>, done: &str) -> AppResult<Either<Page, Flash>> {
    match outcome {
        Ok(codes) if !codes.is_empty() => Ok(Either::Left(Page::view(
            "accounts/security_codes",
            "Your recovery codes",
            views::RecoveryCodes { codes, first: true },
        ))),
        outcome => Ok(Either::Right(Flash::settle("/account/security", outcome, done)?)),
    }
}

#[post("/account/security/app/remove", data = "<_form>")]
pub async fn remove_app(
    db: &State<Db>,
    user: CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    let removed = "The authenticator app is removed.";
    remove_factor(db, &user, state, client, twofactor::disable, "authenticator_app_removed", removed).await
}

/// Removes a second factor after a step-up, recording the event.
async fn remove_factor(
    db: &Db,
    user: &CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    remove: fn(&mut crate::db::Conn, i64) -> diesel::QueryResult<()>,
    event: &'static str,
    done: &'static str,
) -> AppResult<Flash> {
    if let Some(go) = require_step_up(db, user.id, state.0.session_id.clone(), "/account/security").await? {
        return Ok(go);
    }
    let user_id = user.id;
    db.run(move |conn| {
        remove(conn, user_id)?;
        twofactor::record(conn, user_id, event, None, &client, now())?;
        Ok::<_, AppError>(())
    })
    .await?;
    Ok(Flash::success("/account/security", done))
}

#[post("/account/security/recovery-codes", data = "<_form>")]
pub async fn renew_codes(
    db: &State<Db>,
    user: CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    _form: CsrfOnly,
) -> AppResult<Either<Page, Flash>> {
    if let Some(go) = require_step_up(db, user.id, state.0.session_id.clone(), "/account/security").await? {
        return Ok(Either::Right(go));
    }
    let user_id = user.id;
    let codes = db
        .run(move |conn| {
            if !twofactor::enabled(conn, user_id)? {
                return Ok::<_, AppError>(None);
            }
            let codes = twofactor::new_recovery_codes(conn, user_id, now())?;
            twofactor::record(conn, user_id, "recovery_codes_renewed", None, &client, now())?;
            Ok(Some(codes))
        })
        .await?;
    match codes {
        Some(codes) => Ok(Either::Left(Page::view(
            "accounts/security_codes",
            "Your recovery codes",
            views::RecoveryCodes { codes, first: false },
        ))),
        None => Ok(Either::Right(Flash::error("/account/security", "Set up an authenticator app first."))),
    }
}

/// Checks a code for `user_id`, rate-limited per account and client (SEC-6);
/// records the outcome among the account's security events.
async fn check_code(
    db: &Db,
    limits: &RateLimits,
    client: &ClientInfo,
    user_id: i64,
    code: &str,
    what: &'static str,
) -> AppResult<Result<twofactor::Method, String>> {
    limit_codes(limits, user_id, client).await?;
    let (code, client) = (code.to_string(), client.clone());
    db.run(move |conn| {
        let t = now();
        // A few tries per window for the account, across addresses and instances.
        if let Some(retry_after) = super::guesses::code_wait(conn, user_id, t)? {
            return Err(AppError::RateLimited { retry_after });
        }
        match twofactor::verify(conn, user_id, &code, t) {
            Ok(m) => {
                let detail = match m {
                    twofactor::Method::RecoveryCode => "with a recovery code",
                    twofactor::Method::Text => "with a texted code",
                    twofactor::Method::App => "with the app",
                };
                twofactor::record(conn, user_id, what, Some(detail), &client, t)?;
                Ok(Ok(m))
            }
            Err(TwoFactorError::Invalid(m)) => {
                let when = if what == "signed_in" { "at sign-in" } else { "before a change" };
                twofactor::record(conn, user_id, "wrong_code", Some(when), &client, t)?;
                // An empty form guesses nothing.
                if !code.trim().is_empty() {
                    super::guesses::code_failed(conn, user_id, t)?;
                }
                Ok(Err(m))
            }
            Err(e) => Err(AppError::from(e)),
        }
    })
    .await
}

#[get("/signin/verify")]
pub async fn signin_code_form(db: &State<Db>, cookies: &CookieJar<'_>) -> AppResult<Either<Page, Flash>> {
    let Some(held) = HeldSignIn::take(cookies, stage::SECOND_FACTOR) else {
        return Ok(Either::Right(Flash::info("/signin", "Please sign in again.")));
    };
    let user_id = held.user_id;
    let text = db.run(move |conn| Ok::<_, AppError>(sms::enabled(conn, user_id)?)).await?;
    Ok(Either::Left(Page::view("accounts/signin_code", "Enter your code", views::SignInCode { text })))
}

/// The second step of signing in: a code from the app or a recovery code.
#[post("/signin/verify", data = "<form>")]
pub async fn signin_code(
    db: &State<Db>,
    hooks: &State<AccountHooks>,
    config: &State<Config>,
    limits: &State<RateLimits>,
    cookies: &CookieJar<'_>,
    client: ClientInfo,
    form: CsrfForm<CodeForm>,
) -> AppResult<Flash> {
    let Some(held) = HeldSignIn::take(cookies, stage::SECOND_FACTOR) else {
        return Ok(Flash::info("/signin", "Please sign in again."));
    };
    match check_code(db, limits, &client, held.user_id, &form.form.code, "signed_in").await? {
        Err(m) => Ok(Flash::error("/signin/verify", m)),
        Ok(method) => {
            let done = finish_sign_in(db, hooks, config, cookies, &client, held, true).await?;
            Ok(if method == twofactor::Method::RecoveryCode {
                Flash::info(
                    done,
                    "You signed in with a recovery code, which now no longer works. Renew your codes on the security page if few are left.",
                )
            } else {
                Flash::success(done, "You are signed in.")
            })
        }
    }
}

/// After the password (or a provider's word, ACC-4): a second factor comes
/// next when the account has one (ACC-5), then changed policies. Returns where
/// to go.
#[allow(clippy::too_many_arguments)]
pub async fn continue_sign_in(
    db: &Db,
    hooks: &AccountHooks,
    config: &Config,
    cookies: &CookieJar<'_>,
    client: &ClientInfo,
    user_id: i64,
    remember: bool,
    next: &NextPath,
) -> AppResult<String> {
    let (enabled, status) = db
        .run(move |conn| {
            let status = super::service::find(conn, user_id)?.map(|u| u.status).unwrap_or_default();
            Ok::<_, AppError>((twofactor::enabled(conn, user_id)?, status))
        })
        .await?;
    // An account its organization switched off (SHR-7), or being erased, opens no session.
    if status == super::model::AccountStatus::Deactivated || status == super::model::AccountStatus::Erased {
        return Err(AppError::Forbidden(
            "This account is switched off. If your organization manages it, ask its administrator.".into(),
        ));
    }
    if enabled {
        HeldSignIn::new(user_id, remember, next, stage::SECOND_FACTOR, false).hold(cookies, config.is_tls());
        return Ok("/signin/verify".into());
    }
    let held = HeldSignIn::new(user_id, remember, next, stage::POLICIES, false);
    finish_sign_in(db, hooks, config, cookies, client, held, false).await
}

/// After the password (and any second factor): changed policies wait for
/// acceptance; otherwise the session starts. Returns where to go.
pub async fn finish_sign_in(
    db: &Db,
    hooks: &AccountHooks,
    config: &Config,
    cookies: &CookieJar<'_>,
    client: &ClientInfo,
    held: HeldSignIn,
    second_factor: bool,
) -> AppResult<String> {
    let user_id = held.user_id;
    let pending = hooks.policies_pending;
    if db.run(move |conn| Ok::<_, AppError>(pending(conn, user_id)?)).await? {
        HeldSignIn::new(user_id, held.remember, &NextPath::or_home(Some(&held.next)), stage::POLICIES, second_factor)
            .hold(cookies, config.is_tls());
        return Ok("/policies/accept".into());
    }
    HeldSignIn::clear(cookies);
    super::routes::start_session(db, config, cookies, client, user_id, held.remember, second_factor).await?;
    Ok(NextPath::or_home(Some(&held.next)).into_string())
}

#[get("/account/security/verify?<next>")]
pub async fn step_up_form(db: &State<Db>, user: CurrentUser, next: Option<NextPath>) -> AppResult<Page> {
    let user_id = user.id;
    let (text, factor) = db
        .run(move |conn| Ok::<_, AppError>((sms::enabled(conn, user_id)?, twofactor::enabled(conn, user_id)?)))
        .await?;
    let next = next.unwrap_or_else(NextPath::home).into_string();
    let next_encoded = urlencoding::encode(&next).into_owned();
    Ok(Page::view(
        "accounts/step_up",
        "Confirm it is you",
        views::StepUp { next, next_encoded, text, password: !factor },
    ))
}

/// Step-up: a fresh second factor for this session before a sensitive change.
#[post("/account/security/verify", data = "<form>")]
pub async fn step_up(
    db: &State<Db>,
    limits: &State<RateLimits>,
    user: CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    form: CsrfForm<CodeForm>,
) -> AppResult<Flash> {
    let next = form.form.next.as_str().to_string();
    let Some(session) = state.0.session_id.clone() else { return Err(AppError::Unauthorized) };
    let user_id = user.id;
    if !db.run(move |conn| Ok::<_, AppError>(twofactor::enabled(conn, user_id)?)).await? {
        return step_up_with_password(db, limits, &client, user_id, session, &form.form.password, next).await;
    }
    match check_code(db, limits, &client, user.id, &form.form.code, "confirmed_identity").await? {
        Err(m) => Ok(Flash::error(format!("/account/security/verify?next={}", urlencoding::encode(&next)), m)),
        Ok(_) => {
            db.run(move |conn| twofactor::mark_session(conn, &session, now()).map_err(AppError::from)).await?;
            Ok(Flash::success(next, "Thank you. You can make the change now."))
        }
    }
}

/// The step-up of an account with no second factor yet: its password,
/// limited like codes.
async fn step_up_with_password(
    db: &Db,
    limits: &RateLimits,
    client: &ClientInfo,
    user_id: i64,
    session: String,
    password: &str,
    next: String,
) -> AppResult<Flash> {
    limit_codes(limits, user_id, client).await?;
    let again = format!("/account/security/verify?next={}", urlencoding::encode(&next));
    let hash = db
        .run(move |conn| match super::guesses::password_wait(conn, user_id, now())? {
            Some(retry_after) => Err(AppError::RateLimited { retry_after }),
            None => Ok(twofactor::password_hash(conn, user_id)?),
        })
        .await?;
    let Some(hash) = hash else {
        return Ok(Flash::error(
            again,
            "Your account has no password: sign out and sign in again to confirm it is you.",
        ));
    };
    let ok = super::passwords::verify(password.to_string(), Some(hash)).await;
    let client = client.clone();
    db.run(move |conn| {
        let t = now();
        if ok {
            twofactor::mark_session(conn, &session, t)?;
            twofactor::record(conn, user_id, "confirmed_identity", Some("with the password"), &client, t)?;
            super::guesses::password_succeeded(conn, user_id)?;
        } else {
            twofactor::record(conn, user_id, "wrong_password", Some("before a change"), &client, t)?;
            super::guesses::password_failed(conn, user_id, t)?;
        }
        Ok::<_, AppError>(())
    })
    .await?;
    Ok(if ok {
        Flash::success(next, "Thank you. You can make the change now.")
    } else {
        Flash::error(again, "That password is not right.")
    })
}

// ---------------------------------------------------------------- codes by text

/// "••• 23": enough of a number for its owner to recognise it.
fn masked(phone: &str) -> String {
    format!("••• {}", &phone[phone.len().saturating_sub(2)..])
}

/// Texts a new code to the user's number (confirmed or being enrolled);
/// the error is for the person. Limited like resending a link.
async fn text_code(db: &Db, sms: &Sms, limits: &RateLimits, user_id: i64) -> AppResult<Result<String, String>> {
    limits
        .check_all(Action::VerificationResend, &[&format!("text:{user_id}")])
        .await
        .map_err(|retry_after| AppError::RateLimited { retry_after })?;
    let found = db
        .run(move |conn| {
            let Some((phone, _, stopped)) = sms::number(conn, user_id)? else {
                return Ok::<_, AppError>(Err("No number is set up for codes by text.".to_string()));
            };
            if stopped {
                return Ok(Err("You replied STOP, so we send no texts. Reply START to allow them again.".into()));
            }
            Ok(Ok((phone, sms::new_code(conn, user_id, now())?)))
        })
        .await?;
    let (phone, code) = match found {
        Ok(v) => v,
        Err(m) => return Ok(Err(m)),
    };
    let body = format!("Your Lyceum code is {code}. It expires in {} minutes. Never share it.", sms::CODE_MINUTES);
    if let Err(e) = sms.sender.send(&phone, &body).await {
        tracing::error!(error = %e, "sending a text failed");
        return Ok(Err("We could not send the text just now; please try again in a minute.".into()));
    }
    Ok(Ok(masked(&phone)))
}

#[derive(FromForm)]
pub struct PhoneForm {
    #[field(default = String::new())]
    phone: String,
    #[field(default = false)]
    consent: bool,
}

/// Enrols a number: consent (unticked by default) is required and recorded.
#[post("/account/security/text", data = "<form>")]
pub async fn begin_text(
    db: &State<Db>,
    sms: &State<Sms>,
    limits: &State<RateLimits>,
    user: CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    form: CsrfForm<PhoneForm>,
) -> AppResult<Either<Page, Flash>> {
    if let Some(go) = require_fresh_step_up(db, user.id, state.0.session_id.clone(), "/account/security").await? {
        return Ok(Either::Right(go));
    }
    let (user_id, phone, consent, keys) = (user.id, form.form.phone.clone(), form.form.consent, sms.inner().clone());
    let enrolled = db
        .run(move |conn| {
            let t = now();
            let enrolled = sms::enrol(conn, &keys, user_id, &phone, consent, t);
            if enrolled.is_ok() {
                let detail = Some("codes by text, security only");
                twofactor::record(conn, user_id, "text_consent_given", detail, &client, t)?;
            }
            Ok::<_, AppError>(enrolled)
        })
        .await?;
    if let Err(e) = enrolled {
        return Ok(Either::Right(Flash::refused("/account/security", e)?));
    }
    match text_code(db, sms, limits, user_id).await? {
        Ok(to) => {
            Ok(Either::Left(Page::view("accounts/security_text", "Confirm your number", views::ConfirmNumber { to })))
        }
        Err(m) => Ok(Either::Right(Flash::error("/account/security", m))),
    }
}

#[post("/account/security/text/confirm", data = "<form>")]
pub async fn confirm_text(
    db: &State<Db>,
    limits: &State<RateLimits>,
    user: CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    form: CsrfForm<CodeForm>,
) -> AppResult<Either<Page, Flash>> {
    let added = (sms::confirm as Confirm, "text_codes_added", "Codes by text are on.");
    confirm_factor(db, limits, &user, state, client, &form.form.code, added).await
}

#[post("/account/security/text/remove", data = "<_form>")]
pub async fn remove_text(
    db: &State<Db>,
    user: CurrentUser,
    state: SessionGuard,
    client: ClientInfo,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    let remove = |conn: &mut crate::db::Conn, user_id: i64| {
        sms::remove(conn, user_id)?;
        twofactor::drop_recovery_if_unused(conn, user_id)
    };
    let removed = "Your number is removed; we will not text it.";
    remove_factor(db, &user, state, client, remove, "text_codes_removed", removed).await
}

/// "Text me a code" at sign-in.
#[post("/signin/verify/text", data = "<_form>")]
pub async fn signin_text(
    db: &State<Db>,
    sms: &State<Sms>,
    limits: &State<RateLimits>,
    cookies: &CookieJar<'_>,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    let Some(held) = HeldSignIn::take(cookies, stage::SECOND_FACTOR) else {
        return Ok(Flash::info("/signin", "Please sign in again."));
    };
    let user_id = held.user_id;
    if !db.run(move |conn| Ok::<_, AppError>(sms::enabled(conn, user_id)?)).await? {
        return Ok(Flash::error("/signin/verify", "Codes by text are not set up; use your app or a recovery code."));
    }
    Ok(match text_code(db, sms, limits, user_id).await? {
        Ok(to) => Flash::info("/signin/verify", format!("We texted a code to {to}.")),
        Err(m) => Flash::error("/signin/verify", m),
    })
}

/// "Text me a code" for a step-up.
#[post("/account/security/verify/text?<next>", data = "<_form>")]
pub async fn step_up_text(
    db: &State<Db>,
    sms: &State<Sms>,
    limits: &State<RateLimits>,
    user: CurrentUser,
    next: Option<NextPath>,
    _form: CsrfOnly,
) -> AppResult<Flash> {
    let next = next.unwrap_or_else(NextPath::home);
    let back = format!("/account/security/verify?next={}", urlencoding::encode(next.as_str()));
    Ok(match text_code(db, sms, limits, user.id).await? {
        Ok(to) => Flash::info(back, format!("We texted a code to {to}.")),
        Err(m) => Flash::error(back, m),
    })
}

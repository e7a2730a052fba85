//! "Sign in with Google / Microsoft / …" (ACC-4): the pages and the links
//! between accounts and providers. The protocol itself is in `oidc`.
//!
//! - A sign-in sent away leaves a row in `oidc_pending` found by the hash of
//!   its `state`, and the state itself in an encrypted cookie, so the answer
//!   must come back to the same browser, once, within ten minutes.
//! - A known provider account signs in (through a second factor when the
//!   account has one). An unknown one either creates an account (age gate and
//!   terms as at sign-up; the password is never asked for) or, when an account
//!   already has that email address, is linked only after the person proves
//!   they own it: its password, or a link emailed to it.
//! - Linking from the security page needs a fresh second factor (when the
//!   account has one); unlinking refuses to remove the last way to sign in.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rocket::http::CookieJar;
use rocket::response::Redirect;
use rocket::{Either, FromForm, State, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::domain::FieldErrors;
use super::hooks::AccountHooks;
use super::oidc::{self, Identity, OidcError, Provider, Providers};
use super::routes::{SessionGuard, form_page, limited, record_signup};
use super::service::{self, AccountError, SignupInput, SignupRejection};
use super::tokens::{self, Purpose};
use super::views::{self, Values};
use super::{passwords, twofactor};
use crate::config::Config;
use crate::db::schema::{oidc_links, oidc_pending, users};
use crate::db::{Conn, Db, now};
use crate::notify::enqueue_email;
use crate::web::csrf::{CsrfOnly, essential_cookie};
use crate::web::guards::Viewer;
use crate::web::next::NextPath;
use crate::web::ratelimit::{Action, RateLimits};
use crate::web::{AppError, AppResult, ClientInfo, CsrfForm, CurrentUser, Flash, Page};

const STATE_COOKIE: &str = "lyceum_oidc_state";
const FOUND_COOKIE: &str = "lyceum_oidc_found";
/// Minutes a sign-in may spend at the provider, and a found identity may wait
/// for the account to be created or proven.
const PENDING_MINUTES: i64 = 10;

mod purpose {
    pub const SIGN_IN: &str = "sign_in";
    pub const LINK: &str = "link";
}

#[derive(Queryable)]
struct Pending {
    provider: String,
    nonce: String,
    pkce_verifier: String,
    purpose: String,
    user_id: Option<i64>,
    remember: bool,
    next: String,
    created_at: NaiveDateTime,
}

/// A provider account no Lyceum account is linked to yet, waiting in an
/// encrypted cookie while the person creates an account or proves one.
#[derive(Serialize, Deserialize)]
struct Found {
    provider: String,
    identity: Identity,
    access_token: Option<String>,
    refresh_token: Option<String>,
    remember: bool,
    next: String,
    until: i64,
}

impl Found {
    fn hold(&self, cookies: &CookieJar<'_>, tls: bool) {
        let value = serde_json::to_string(self).unwrap_or_default();
        cookies.add_private(essential_cookie(tls, FOUND_COOKIE, value));
    }

    fn take(cookies: &CookieJar<'_>) -> Option<Found> {
        let found: Found = serde_json::from_str(cookies.get_private(FOUND_COOKIE)?.value()).ok()?;
        (found.until >= now().and_utc().timestamp()).then_some(found)
    }

    fn clear(cookies: &CookieJar<'_>) {
        cookies.remove_private(rocket::http::Cookie::build(FOUND_COOKIE).path("/"));
    }

    fn email(&self) -> &str {
        self.identity.email.as_deref().unwrap_or_default()
    }
}

/// A link's sealed tokens (SEC-2): (access, refresh).
fn sealed(access: Option<&str>, refresh: Option<&str>) -> AppResult<(Option<String>, Option<String>)> {
    let seal = |field: &str, t: Option<&str>| {
        t.map(|t| crate::kernel::vault::seal(field, t)).transpose().map_err(|e| AppError::Internal(e.to_string()))
    };
    Ok((seal(oidc::ACCESS_TOKEN_FIELD, access)?, seal(oidc::REFRESH_TOKEN_FIELD, refresh)?))
}

/// The account a provider's subject is linked to (confirmed links only).
fn linked_user(conn: &mut Conn, provider: &str, subject: &str) -> QueryResult<Option<i64>> {
    oidc_links::table
        .filter(oidc_links::provider.eq(provider))
        .filter(oidc_links::subject.eq(subject))
        .filter(oidc_links::confirmed_at.is_not_null())
        .select(oidc_links::user_id)
        .first(conn)
        .optional()
}

enum Linked {
    Done,
    Already,
    /// The provider account belongs to another Lyceum account.
    Elsewhere,
}

/// Links a provider account to `user_id`: confirmed at once, or waiting for
/// the emailed link when `confirmed` is false.
fn link(
    conn: &mut Conn,
    user_id: i64,
    provider: &str,
    identity: &Identity,
    tokens: (Option<String>, Option<String>),
    confirmed: bool,
    t: NaiveDateTime,
) -> QueryResult<Linked> {
    crate::db::transaction(conn, |conn| {
        match linked_user(conn, provider, &identity.subject)? {
            Some(id) if id == user_id => return Ok(Linked::Already),
            Some(_) => return Ok(Linked::Elsewhere),
            None => {}
        }
        // An unconfirmed link for this subject, or earlier ones waiting for this account, give way.
        diesel::delete(
            oidc_links::table.filter(oidc_links::confirmed_at.is_null()).filter(
                oidc_links::user_id
                    .eq(user_id)
                    .or(oidc_links::provider.eq(provider).and(oidc_links::subject.eq(&identity.subject))),
            ),
        )
        .execute(conn)?;
        diesel::insert_into(oidc_links::table)
            .values((
                oidc_links::user_id.eq(user_id),
                oidc_links::provider.eq(provider),
                oidc_links::subject.eq(&identity.subject),
                oidc_links::email.eq(&identity.email),
                oidc_links::access_token.eq(tokens.0),
                oidc_links::refresh_token.eq(tokens.1),
                oidc_links::confirmed_at.eq(confirmed.then_some(t)),
                oidc_links::last_used_at.eq(confirmed.then_some(t)),
                oidc_links::created_at.eq(t),
            ))
            .execute(conn)?;
        Ok(Linked::Done)
    })
}

fn unavailable(back: &str, e: OidcError) -> Flash {
    tracing::warn!(error = %e, "signing in with a provider failed");
    match e {
        OidcError::Unavailable(..) => Flash::error(back, e.to_string()),
        OidcError::Refused { provider, .. } => Flash::error(
            back,
            format!("We could not sign you in with {provider}: its answer could not be verified. Please try again."),
        ),
    }
}

/// Sends the browser to the provider, remembering what must come back.
#[allow(clippy::too_many_arguments)]
async fn send_away(
    db: &Db,
    providers: &Providers,
    config: &Config,
    cookies: &CookieJar<'_>,
    provider: &Provider,
    purpose: &'static str,
    user_id: Option<i64>,
    remember: bool,
    next: &NextPath,
    back: &str,
) -> AppResult<Either<Redirect, Flash>> {
    let started = match providers.start(provider).await {
        Ok(s) => s,
        Err(e) => return Ok(Either::Right(unavailable(back, e))),
    };
    let (id, next) = (provider.config.id.clone(), next.as_str().to_string());
    let (hash, nonce, verifier) =
        (tokens::digest(&started.state), started.nonce.clone(), started.pkce_verifier.clone());
    db.run(move |conn| {
        let t = now();
        diesel::delete(
            oidc_pending::table.filter(oidc_pending::created_at.lt(t - chrono::Duration::minutes(PENDING_MINUTES))),
        )
        .execute(conn)?;
        diesel::insert_into(oidc_pending::table)
            .values((
                oidc_pending::state_hash.eq(hash),
                oidc_pending::provider.eq(id),
                oidc_pending::nonce.eq(nonce),
                oidc_pending::pkce_verifier.eq(verifier),
                oidc_pending::purpose.eq(purpose),
                oidc_pending::user_id.eq(user_id),
                oidc_pending::remember.eq(remember),
                oidc_pending::next.eq(next),
                oidc_pending::created_at.eq(t),
            ))
            .execute(conn)
            .map_err(AppError::from)
    })
    .await?;
    let mut cookie = essential_cookie(config.is_tls(), STATE_COOKIE, started.state);
    cookie.set_max_age(rocket::time::Duration::minutes(PENDING_MINUTES));
    cookies.add_private(cookie);
    Ok(Either::Left(Redirect::to(started.url)))
}

#[derive(FromForm)]
pub struct StartForm {
    #[field(default = false)]
    remember: bool,
    next: NextPath,
}

/// "Sign in with …" on the sign-in and sign-up pages.
#[post("/signin/oidc/<id>", data = "<form>")]
pub async fn start(
    id: &str,
    form: CsrfForm<StartForm>,
    viewer: Viewer,
    db: &State<Db>,
    providers: &State<Providers>,
    config: &State<Config>,
    cookies: &CookieJar<'_>,
) -> AppResult<Either<Redirect, Flash>> {
    let provider = providers.get(id).ok_or(AppError::NotFound)?;
    if viewer.signed_in() {
        return Ok(Either::Left(Redirect::to(form.form.next.as_str().to_string())));
    }
    let f = &form.form;
    send_away(db, providers, config, cookies, &provider, purpose::SIGN_IN, None, f.remember, &f.next, "/signin").await
}

/// "Link" on the security page.
#[allow(clippy::too_many_arguments)]
#[post("/account/security/providers/<id>/link", data = "<_form>")]
pub async fn start_link(
    id: &str,
    _form: CsrfOnly,
    user: CurrentUser,
    state: SessionGuard,
    db: &State<Db>,
    providers: &State<Providers>,
    config: &State<Config>,
    cookies: &CookieJar<'_>,
) -> AppResult<Either<Redirect, Flash>> {
    let provider = providers.get(id).ok_or(AppError::NotFound)?;
    if let Some(step_up) =
        super::security::require_step_up(db, user.id, state.0.session_id.clone(), "/account/security").await?
    {
        return Ok(Either::Right(step_up));
    }
    let back = "/account/security";
    let next = NextPath::parse(back).unwrap_or_else(NextPath::home);
    send_away(db, providers, config, cookies, &provider, purpose::LINK, Some(user.id), false, &next, back).await
}

/// Where the provider sends the browser back.
#[allow(clippy::too_many_arguments)]
#[get("/signin/oidc/<id>/callback?<code>&<state>&<error>&<iss>")]
pub async fn callback(
    id: &str,
    code: Option<&str>,
    state: Option<&str>,
    error: Option<&str>,
    iss: Option<&str>,
    viewer: Viewer,
    db: &State<Db>,
    hooks: &State<AccountHooks>,
    providers: &State<Providers>,
    config: &State<Config>,
    cookies: &CookieJar<'_>,
    client: ClientInfo,
) -> AppResult<Flash> {
    let provider = providers.get(id).ok_or(AppError::NotFound)?;
    let name = provider.config.name.clone();
    let again = format!(
        "This sign-in with {name} could not be completed (it was already used, has expired, or was started in another browser). Please try again."
    );
    // The state must be this browser's, and is good once.
    let ours = cookies.get_private(STATE_COOKIE).map(|c| c.value().to_string());
    cookies.remove_private(rocket::http::Cookie::build(STATE_COOKIE).path("/"));
    let (Some(state), Some(ours)) = (state, ours) else { return Ok(Flash::error("/signin", again)) };
    if !crate::kernel::tokens::constant_time_eq(state.as_bytes(), ours.as_bytes()) {
        return Ok(Flash::error("/signin", again));
    }
    let hash = tokens::digest(state);
    let pending: Option<Pending> = db
        .run(move |conn| {
            diesel::delete(oidc_pending::table.filter(oidc_pending::state_hash.eq(hash)))
                .returning((
                    oidc_pending::provider,
                    oidc_pending::nonce,
                    oidc_pending::pkce_verifier,
                    oidc_pending::purpose,
                    oidc_pending::user_id,
                    oidc_pending::remember,
                    oidc_pending::next,
                    oidc_pending::created_at,
                ))
                .get_result(conn)
                .optional()
                .map_err(AppError::from)
        })
        .await?;
    let fresh = |p: &Pending| p.created_at >= now() - chrono::Duration::minutes(PENDING_MINUTES);
    let Some(pending) = pending.filter(|p| p.provider == provider.config.id && fresh(p)) else {
        return Ok(Flash::error("/signin", again));
    };
    let back = if pending.purpose == purpose::LINK { "/account/security" } else { "/signin" };
    if error.is_some() {
        return Ok(Flash::info(back, format!("Signing in with {name} was cancelled.")));
    }
    // RFC 9207: an answer naming another issuer is a mix-up.
    if iss.is_some_and(|i| !oidc::issuer_matches(&provider.config.issuer, i)) {
        return Ok(unavailable(
            back,
            OidcError::Refused { provider: name, reason: "the answer names another issuer".into() },
        ));
    }
    let Some(code) = code else { return Ok(Flash::error(back, again)) };
    let identity = match providers.finish(&provider, code, &pending.pkce_verifier, &pending.nonce).await {
        Ok(i) => i,
        Err(e) => return Ok(unavailable(back, e)),
    };
    let tokens = sealed(identity.access_token.as_deref(), identity.refresh_token.as_deref())?;
    let provider_id = provider.config.id.clone();

    if pending.purpose == purpose::LINK {
        let Some(user_id) = pending.user_id.filter(|u| viewer.0.as_ref().is_some_and(|v| v.id == *u)) else {
            return Ok(Flash::error("/signin", "Please sign in again, then link your account from the security page."));
        };
        let (who, detail) = (identity.clone(), name.clone());
        let linked = db
            .run(move |conn| {
                let linked = link(conn, user_id, &provider_id, &who, tokens, true, now())?;
                if matches!(linked, Linked::Done) {
                    twofactor::record(conn, user_id, "provider_linked", Some(&detail), &client, now())?;
                }
                Ok::<_, AppError>(linked)
            })
            .await?;
        return Ok(match linked {
            Linked::Done => Flash::success(back, format!("{name} is linked: you can now sign in with it.")),
            Linked::Already => Flash::info(back, format!("This {name} account was already linked to yours.")),
            Linked::Elsewhere => Flash::error(
                back,
                format!("This {name} account is linked to another Lyceum account. Unlink it there first."),
            ),
        });
    }

    // Signing in: a linked provider account opens its Lyceum account.
    let (subject, access) = (identity.subject.clone(), tokens.0.clone());
    let known = db
        .run(move |conn| {
            let Some(user_id) = linked_user(conn, &provider_id, &subject)? else { return Ok::<_, AppError>(None) };
            diesel::update(
                oidc_links::table
                    .filter(oidc_links::provider.eq(&provider_id))
                    .filter(oidc_links::subject.eq(&subject)),
            )
            .set((oidc_links::last_used_at.eq(now()), oidc_links::access_token.eq(access)))
            .execute(conn)?;
            Ok(service::find(conn, user_id)?)
        })
        .await?;
    if let Some(user) = known {
        if user.status == super::model::AccountStatus::PendingParent {
            return Ok(Flash::info(
                "/signin",
                "Your account is waiting for your parent or guardian to confirm it. We emailed them a link.",
            ));
        }
        let next = super::security::continue_sign_in(
            db,
            hooks,
            config,
            cookies,
            &client,
            user.id,
            pending.remember,
            &NextPath::or_home(Some(&pending.next)),
        )
        .await?;
        return Ok(Flash::success(next, format!("You are signed in with {name}.")));
    }
    if identity.email.is_none() {
        return Ok(Flash::error(
            "/signin",
            format!(
                "{name} did not share an email address with us, and an account needs one. Please sign up with your email address instead."
            ),
        ));
    }
    Found {
        provider: provider.config.id.clone(),
        identity,
        access_token: tokens.0,
        refresh_token: tokens.1,
        remember: pending.remember,
        next: pending.next,
        until: (now() + chrono::Duration::minutes(PENDING_MINUTES)).and_utc().timestamp(),
    }
    .hold(cookies, config.is_tls());
    Ok(Flash::info("/signin/oidc/finish", format!("{name} told us who you are. One more step.")))
}

/// The account with the found email address, if there is one: (id, has a password).
fn account_with_email(conn: &mut Conn, email: &str) -> QueryResult<Option<(i64, bool)>> {
    let found: Option<(i64, String)> =
        users::table.filter(users::email.eq(email)).select((users::id, users::password_hash)).first(conn).optional()?;
    Ok(found.map(|(id, hash)| (id, !hash.is_empty())))
}

fn suggested_username(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let cleaned: String = local
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(30)
        .collect();
    cleaned.trim_matches(|c| c == '-' || c == '_').to_string()
}

async fn finish_page(
    db: &Db,
    providers: &Providers,
    found: &Found,
    values: Values,
    errors: &FieldErrors,
) -> AppResult<Page> {
    let name = providers.get(&found.provider).map(|p| p.config.name.clone()).unwrap_or_default();
    let email = found.email().to_string();
    let existing = db.run(move |conn| account_with_email(conn, &email).map_err(AppError::from)).await?;
    let view = views::SignInWith {
        provider: name.clone(),
        email: found.email().to_string(),
        verified: found.identity.email_verified,
        existing: existing.is_some(),
        has_password: existing.is_some_and(|(_, p)| p),
    };
    let mut values = values;
    if values.is_empty() {
        let first_name = found.identity.given_name.clone().or_else(|| found.identity.name.clone()).unwrap_or_default();
        values = Values::from([
            ("first_name".to_string(), first_name),
            ("last_name".to_string(), found.identity.family_name.clone().unwrap_or_default()),
            ("username".to_string(), suggested_username(found.email())),
        ]);
    }
    Ok(form_page("accounts/signin_with", &format!("Continue with {name}"), values, errors, view))
}

#[get("/signin/oidc/finish")]
pub async fn finish_form(
    db: &State<Db>,
    providers: &State<Providers>,
    cookies: &CookieJar<'_>,
) -> AppResult<Either<Page, Flash>> {
    let Some(found) = Found::take(cookies) else {
        return Ok(Either::Right(Flash::info("/signin", "That took too long. Please sign in again.")));
    };
    Ok(Either::Left(finish_page(db, providers, &found, Values::new(), &FieldErrors::new()).await?))
}

#[derive(FromForm)]
pub struct CreateForm {
    #[field(default = String::new())]
    first_name: String,
    #[field(default = String::new())]
    last_name: String,
    #[field(default = String::new())]
    username: String,
    #[field(default = String::new())]
    date_of_birth: String,
    #[field(default = String::new())]
    parent_email: String,
    #[field(default = false)]
    accept_terms: bool,
    #[field(default = false)]
    marketing: bool,
}

/// Creates an account for a provider account nobody has linked: the same
/// rules as sign-up (ACC-9, terms, COM-1), without a password.
#[allow(clippy::too_many_arguments)]
#[post("/signin/oidc/create", data = "<form>")]
pub async fn create(
    form: CsrfForm<CreateForm>,
    db: &State<Db>,
    hooks: &State<AccountHooks>,
    providers: &State<Providers>,
    config: &State<Config>,
    limits: &State<RateLimits>,
    cookies: &CookieJar<'_>,
    client: ClientInfo,
) -> AppResult<Either<Flash, Page>> {
    limited(limits, Action::SignUp, &[&client.rate_key()]).await?;
    let Some(found) = Found::take(cookies) else {
        return Ok(Either::Left(Flash::info("/signin", "That took too long. Please sign in again.")));
    };
    let f = &form.form;
    let values = form.values.clone();
    let input = SignupInput {
        first_name: &f.first_name,
        last_name: &f.last_name,
        username: &f.username,
        email: found.email(),
        date_of_birth: &f.date_of_birth,
        parent_email: &f.parent_email,
        accept_terms: f.accept_terms,
        without_password: true,
        ..Default::default()
    };
    let account = match service::parse_signup(&input, chrono::Utc::now().date_naive()) {
        Ok(a) => a,
        Err(SignupRejection::TooYoung) => {
            Found::clear(cookies);
            return Ok(Either::Right(
                Page::view("accounts/too_young", "We're sorry", views::Nothing {})
                    .with_status(rocket::http::Status::UnprocessableEntity),
            ));
        }
        Err(SignupRejection::Fields(errors)) => {
            return Ok(Either::Right(finish_page(db, providers, &found, values, &errors).await?));
        }
    };
    let minor = account.parent_email.is_some();
    let (marketing, verified, provider) = (f.marketing, found.identity.email_verified, found.provider.clone());
    let (identity, tokens) = (found.identity.clone(), (found.access_token.clone(), found.refresh_token.clone()));
    let signup_client = client.clone();
    let record = hooks.record_signup;
    let created = db
        .run(move |conn| {
            crate::db::transaction(conn, |conn| {
                let user = match service::create_account(conn, &account, "", verified, now()) {
                    Ok(u) => u,
                    Err(e @ (AccountError::UsernameTaken | AccountError::EmailTaken)) => return Ok(Err(e)),
                    Err(AccountError::Db(e)) => return Err(AppError::from(e)),
                };
                record_signup(conn, record, user.id, marketing, &signup_client)?;
                if !matches!(link(conn, user.id, &provider, &identity, tokens, true, now())?, Linked::Done) {
                    // Linked to someone else meanwhile: create nothing.
                    return Err(AppError::Unprocessable("This account was just linked elsewhere.".into()));
                }
                Ok(Ok(user))
            })
        })
        .await?;
    let user = match created {
        Ok(u) => u,
        Err(e) => {
            let field = if matches!(e, AccountError::UsernameTaken) { "username" } else { "email" };
            let errors = FieldErrors::from([(field, e.to_string())]);
            return Ok(Either::Right(finish_page(db, providers, &found, values, &errors).await?));
        }
    };
    Found::clear(cookies);
    if minor {
        return Ok(Either::Left(Flash::info(
            "/signin",
            "Your account is almost ready. We have emailed your parent or guardian: once they confirm, you can sign in.",
        )));
    }
    let next = super::security::continue_sign_in(
        db,
        hooks,
        config,
        cookies,
        &client,
        user.id,
        found.remember,
        &NextPath::or_home(Some(&found.next)),
    )
    .await?;
    let welcome = if verified {
        "Welcome to Lyceum!".to_string()
    } else {
        "Welcome to Lyceum! We have sent you an email: follow its link to confirm your address.".to_string()
    };
    Ok(Either::Left(Flash::success(next, welcome)))
}

#[derive(FromForm)]
pub struct ProveForm {
    #[field(default = String::new())]
    password: String,
}

/// The found email address belongs to an account whose password the person
/// knows: link, then sign in as with the password (second factor included).
#[allow(clippy::too_many_arguments)]
#[post("/signin/oidc/link/password", data = "<form>")]
pub async fn prove_with_password(
    form: CsrfForm<ProveForm>,
    db: &State<Db>,
    hooks: &State<AccountHooks>,
    providers: &State<Providers>,
    config: &State<Config>,
    limits: &State<RateLimits>,
    cookies: &CookieJar<'_>,
    client: ClientInfo,
) -> AppResult<Either<Flash, Page>> {
    let Some(found) = Found::take(cookies) else {
        return Ok(Either::Left(Flash::info("/signin", "That took too long. Please sign in again.")));
    };
    limited(limits, Action::SignIn, &[&client.rate_key(), &format!("login:{}", found.email())]).await?;
    if !found.identity.email_verified {
        return Err(AppError::Forbidden("The provider has not verified this address.".into()));
    }
    let email = found.email().to_string();
    let user = db.run(move |conn| service::find_for_login(conn, &email).map_err(AppError::from)).await?;
    let ok = passwords::verify(form.form.password.clone(), user.as_ref().map(|u| u.password_hash.clone())).await;
    let Some(user) = user.filter(|u| ok && !u.password_hash.is_empty()) else {
        let errors = FieldErrors::from([("password", "That password is not right.".to_string())]);
        return Ok(Either::Right(finish_page(db, providers, &found, Values::new(), &errors).await?));
    };
    if user.status == super::model::AccountStatus::PendingParent {
        return Ok(Either::Left(Flash::info(
            "/signin",
            "Your account is waiting for your parent or guardian to confirm it. We emailed them a link.",
        )));
    }
    let (user_id, provider, identity) = (user.id, found.provider.clone(), found.identity.clone());
    let tokens = (found.access_token.clone(), found.refresh_token.clone());
    let detail = providers.get(&found.provider).map(|p| p.config.name.clone());
    let linking_client = client.clone();
    let linked = db
        .run(move |conn| {
            let linked = link(conn, user_id, &provider, &identity, tokens, true, now())?;
            if matches!(linked, Linked::Done) {
                twofactor::record(conn, user_id, "provider_linked", detail.as_deref(), &linking_client, now())?;
            }
            Ok::<_, AppError>(linked)
        })
        .await?;
    Found::clear(cookies);
    if matches!(linked, Linked::Elsewhere) {
        return Ok(Either::Left(Flash::error("/signin", "That provider account is linked to another Lyceum account.")));
    }
    let next = super::security::continue_sign_in(
        db,
        hooks,
        config,
        cookies,
        &client,
        user_id,
        found.remember,
        &NextPath::or_home(Some(&found.next)),
    )
    .await?;
    Ok(Either::Left(Flash::success(next, "Your accounts are linked.")))
}

/// Or: prove it by a link emailed to the account's address.
#[post("/signin/oidc/link/email", data = "<_form>")]
pub async fn prove_by_email(
    _form: CsrfOnly,
    db: &State<Db>,
    providers: &State<Providers>,
    limits: &State<RateLimits>,
    cookies: &CookieJar<'_>,
    client: ClientInfo,
) -> AppResult<Flash> {
    let Some(found) = Found::take(cookies) else {
        return Ok(Flash::info("/signin", "That took too long. Please sign in again."));
    };
    limited(limits, Action::VerificationResend, &[&client.rate_key(), &format!("login:{}", found.email())]).await?;
    if !found.identity.email_verified {
        return Err(AppError::Forbidden("The provider has not verified this address.".into()));
    }
    let name = providers.get(&found.provider).map(|p| p.config.name.clone()).unwrap_or_default();
    let (email, provider, identity) = (found.email().to_string(), found.provider.clone(), found.identity.clone());
    let tokens = (found.access_token.clone(), found.refresh_token.clone());
    let provider_name = name.clone();
    db.run(move |conn| {
        crate::db::transaction(conn, |conn| {
            let Some(user) = service::find_for_login(conn, &email)? else { return Ok::<_, AppError>(()) };
            if matches!(link(conn, user.id, &provider, &identity, tokens, false, now())?, Linked::Done) {
                let token = tokens::issue(conn, user.id, Purpose::LinkProvider, None, now())?;
                enqueue_email(
                    conn,
                    &user.email,
                    &format!("Link {provider_name} to your Lyceum account?"),
                    "link_provider",
                    json!({ "first_name": user.first_name, "provider": provider_name, "path": format!("/signin/oidc/link/{token}") }),
                )?;
            }
            Ok(())
        })
    })
    .await?;
    Found::clear(cookies);
    Ok(Flash::info(
        "/signin",
        format!(
            "We emailed {}. Follow the link in it within an hour to link {name}, then sign in with {name}.",
            found.email()
        ),
    ))
}

/// The provider waiting for `user_id`'s emailed confirmation: (link id, provider, email).
fn waiting_link(conn: &mut Conn, user_id: i64) -> QueryResult<Option<(i64, String, Option<String>)>> {
    oidc_links::table
        .filter(oidc_links::user_id.eq(user_id))
        .filter(oidc_links::confirmed_at.is_null())
        .order(oidc_links::id.desc())
        .select((oidc_links::id, oidc_links::provider, oidc_links::email))
        .first(conn)
        .optional()
}

#[get("/signin/oidc/link/<token>")]
pub async fn confirm_link_form(token: &str, db: &State<Db>, providers: &State<Providers>) -> AppResult<Page> {
    let token = token.to_string();
    let waiting = db
        .run(move |conn| {
            let Some((user_id, _)) = tokens::peek(conn, &token, Purpose::LinkProvider, now())? else {
                return Ok::<_, AppError>(None);
            };
            Ok(waiting_link(conn, user_id)?)
        })
        .await?;
    let Some((_, provider, email)) = waiting else {
        return Err(AppError::Gone("This link has expired or was already used. Please sign in again.".into()));
    };
    let name = providers.get(&provider).map(|p| p.config.name.clone()).unwrap_or(provider);
    let title = format!("Link {name}");
    Ok(Page::view("accounts/signin_with_confirm", title, views::LinkConfirm { provider: name, email }))
}

#[post("/signin/oidc/link/<token>", data = "<_form>")]
pub async fn confirm_link(
    token: &str,
    _form: CsrfOnly,
    db: &State<Db>,
    providers: &State<Providers>,
    client: ClientInfo,
) -> AppResult<Flash> {
    let token = token.to_string();
    let names: Vec<(String, String)> = providers.names();
    let linked = db
        .run(move |conn| {
            crate::db::transaction(conn, |conn| {
                let Some((user_id, _)) = tokens::consume(conn, &token, Purpose::LinkProvider, now())? else {
                    return Ok::<_, AppError>(None);
                };
                let Some((id, provider, _)) = waiting_link(conn, user_id)? else { return Ok(None) };
                let t = now();
                diesel::update(oidc_links::table.find(id)).set(oidc_links::confirmed_at.eq(t)).execute(conn)?;
                let name = names.iter().find(|(i, _)| *i == provider).map(|(_, n)| n.clone()).unwrap_or(provider);
                twofactor::record(conn, user_id, "provider_linked", Some(&name), &client, t)?;
                Ok(Some(name))
            })
        })
        .await?;
    match linked {
        Some(name) => Ok(Flash::success("/signin", format!("{name} is linked to your account. Sign in with {name}."))),
        None => Err(AppError::Gone("This link has expired or was already used. Please sign in again.".into())),
    }
}

/// Removes a link, unless it is the last way into the account.
#[post("/account/security/providers/<id>/unlink", data = "<_form>")]
pub async fn unlink(
    id: &str,
    _form: CsrfOnly,
    user: CurrentUser,
    state: SessionGuard,
    db: &State<Db>,
    providers: &State<Providers>,
    client: ClientInfo,
) -> AppResult<Flash> {
    let provider = providers.get(id).ok_or(AppError::NotFound)?;
    if let Some(step_up) =
        super::security::require_step_up(db, user.id, state.0.session_id.clone(), "/account/security").await?
    {
        return Ok(step_up);
    }
    let (user_id, provider_id, name) = (user.id, provider.config.id.clone(), provider.config.name.clone());
    let detail = name.clone();
    let removed = db
        .run(move |conn| {
            crate::db::transaction(conn, |conn| {
                let has_password = has_password(conn, user_id)?;
                let others: i64 = oidc_links::table
                    .filter(oidc_links::user_id.eq(user_id))
                    .filter(oidc_links::confirmed_at.is_not_null())
                    .filter(oidc_links::provider.ne(&provider_id))
                    .count()
                    .get_result(conn)?;
                let link = oidc_links::table
                    .filter(oidc_links::user_id.eq(user_id))
                    .filter(oidc_links::provider.eq(&provider_id))
                    .select((oidc_links::id, oidc_links::access_token))
                    .first::<(i64, Option<String>)>(conn)
                    .optional()?;
                let Some((link_id, token)) = link else { return Ok::<_, AppError>(Err("not linked")) };
                if !has_password && others == 0 {
                    return Ok(Err("last"));
                }
                diesel::delete(oidc_links::table.find(link_id)).execute(conn)?;
                twofactor::record(conn, user_id, "provider_unlinked", Some(&detail), &client, now())?;
                Ok(Ok(token))
            })
        })
        .await?;
    match removed {
        Ok(token) => {
            if let Some(token) = token.and_then(|t| crate::kernel::vault::open(oidc::ACCESS_TOKEN_FIELD, &t).ok()) {
                providers.revoke(&provider, &token).await;
            }
            Ok(Flash::success("/account/security", format!("{name} is unlinked.")))
        }
        Err("last") => Ok(Flash::error(
            "/account/security",
            format!(
                "{name} is the only way into your account. Set a password first (\"Forgot your password?\" on the sign-in page sends a link), or link another provider."
            ),
        )),
        Err(_) => Err(AppError::NotFound),
    }
}

/// Whether a password opens the account (one created through a provider has none).
fn has_password(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
    Ok(!users::table.find(user_id).select(users::password_hash).first::<String>(conn)?.is_empty())
}

/// The providers on the security page: each with its link, if any.
pub fn for_security_page(conn: &mut Conn, providers: &Providers, user_id: i64) -> QueryResult<views::LinkedProviders> {
    let links: Vec<(String, Option<String>, NaiveDateTime)> = oidc_links::table
        .filter(oidc_links::user_id.eq(user_id))
        .filter(oidc_links::confirmed_at.is_not_null())
        .select((oidc_links::provider, oidc_links::email, oidc_links::created_at))
        .load(conn)?;
    Ok(views::LinkedProviders {
        has_password: has_password(conn, user_id)?,
        list: providers
            .names()
            .into_iter()
            .map(|(id, name)| {
                let link = links.iter().find(|(p, _, _)| *p == id);
                views::LinkedProvider {
                    id,
                    name,
                    linked: link.is_some(),
                    email: link.and_then(|l| l.1.clone()),
                    since: link.map(|l| l.2.into()),
                }
            })
            .collect(),
    })
}

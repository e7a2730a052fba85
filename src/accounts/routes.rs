//! Account pages: thin handlers that parse, call one service function and
//! render. No SQL here.

use rocket::Either;
use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::{FromForm, State, get, post};

use crate::accounts::domain::{Email, FieldErrors, NewPassword, PersonName};
use crate::accounts::hooks::{AccountHooks, RecordSignup};
use crate::accounts::service::{self, AccountError, SignupInput, SignupRejection};
pub use crate::accounts::signin::{SessionGuard, start_session};
use crate::accounts::views::{self, Form, Nothing, Values};
use crate::accounts::{passwords, sessions};
use crate::config::Config;
use crate::db::{Db, now};
use crate::web::csrf::{self, CsrfOnly};
use crate::web::guards::Viewer;
use crate::web::next::NextPath;
use crate::web::ratelimit::{Action, RateLimits};
use crate::web::{AppError, AppResult, ClientInfo, CsrfForm, CurrentUser, Flash, Page};

type PageOr<R> = AppResult<Either<R, Page>>;

/// A form page showing `values` and `errors` beside what the page itself
/// shows (`page`); 422 when there are errors.
pub(crate) fn form_page<P: serde::Serialize>(
    template: &'static str,
    title: &str,
    values: Values,
    errors: &FieldErrors,
    page: P,
) -> Page {
    let page = Page::view(template, title, Form::new(values, errors, page));
    if errors.is_empty() { page } else { page.with_status(Status::UnprocessableEntity) }
}

pub(crate) async fn limited(limits: &RateLimits, action: Action, keys: &[&str]) -> AppResult<()> {
    limits.check_all(action, keys).await.map_err(|retry_after| AppError::RateLimited { retry_after })
}

#[get("/")]
pub fn home(viewer: Viewer, hooks: &State<AccountHooks>) -> Page {
    Page::view(
        "home",
        "Learn from the world's institutions",
        views::Home { signed_in: viewer.signed_in(), notices: (hooks.home_notices)() },
    )
}

#[get("/signup")]
pub fn signup_form(viewer: Viewer) -> Either<Redirect, Page> {
    if viewer.signed_in() {
        return Either::Left(Redirect::to("/dashboard"));
    }
    Either::Right(form_page(
        "accounts/signup",
        "Create your account",
        Values::new(),
        &FieldErrors::new(),
        views::Next { next: None },
    ))
}

#[derive(FromForm)]
pub struct SignupForm {
    #[field(default = String::new())]
    first_name: String,
    #[field(default = String::new())]
    last_name: String,
    #[field(default = String::new())]
    username: String,
    #[field(default = String::new())]
    email: String,
    #[field(default = String::new())]
    password: String,
    #[field(default = String::new())]
    phone: String,
    #[field(default = String::new())]
    company: String,
    #[field(default = String::new())]
    date_of_birth: String,
    #[field(default = String::new())]
    parent_email: String,
    #[field(default = false)]
    accept_terms: bool,
    /// The newsletter opt-in (COM-1): unchecked unless the learner ticks it.
    #[field(default = false)]
    marketing: bool,
}

#[post("/signup", data = "<form>")]
pub async fn signup(
    form: CsrfForm<SignupForm>,
    db: &State<Db>,
    hooks: &State<AccountHooks>,
    limits: &State<RateLimits>,
    client: ClientInfo,
) -> PageOr<Flash> {
    limited(limits, Action::SignUp, &[&client.rate_key()]).await?;
    let f = &form.form;
    let values = form.values.clone();
    let input = SignupInput {
        first_name: &f.first_name,
        last_name: &f.last_name,
        username: &f.username,
        email: &f.email,
        password: &f.password,
        phone: &f.phone,
        company: &f.company,
        date_of_birth: &f.date_of_birth,
        parent_email: &f.parent_email,
        accept_terms: f.accept_terms,
        without_password: false,
    };
    let account = match service::parse_signup(&input, chrono::Utc::now().date_naive()) {
        Ok(a) => a,
        Err(SignupRejection::TooYoung) => {
            return Ok(Either::Right(
                Page::view("accounts/too_young", "We're sorry", Nothing {}).with_status(Status::UnprocessableEntity),
            ));
        }
        Err(SignupRejection::Fields(errors)) => {
            return Ok(Either::Right(form_page(
                "accounts/signup",
                "Create your account",
                values,
                &errors,
                views::Next { next: None },
            )));
        }
    };
    let hash = match &account.password {
        Some(p) => passwords::hash(p.expose().to_string()).await.map_err(AppError::Internal)?,
        None => String::new(),
    };
    let minor = account.parent_email.is_some();
    let marketing = f.marketing;
    let record = hooks.record_signup;
    let created = db
        .run(move |conn| {
            let created = service::create_account(conn, &account, &hash, false, now());
            match &created {
                Ok(user) => record_signup(conn, record, user.id, marketing, &client)?,
                Err(AccountError::EmailTaken) => service::tell_owner_of_taken_email(conn, &account.email)?,
                Err(_) => {}
            }
            Ok::<_, AppError>(created)
        })
        .await?;
    // A taken email is answered exactly like a new account (ASVS 2.1, no
    // enumeration of who is registered); its owner is told by email instead.
    match created {
        Ok(_) | Err(AccountError::EmailTaken) if minor => Ok(Either::Left(Flash::info(
            "/signin",
            "Your account is almost ready. We have emailed your parent or guardian: once they confirm, and you have confirmed your own email address, you can sign in.",
        ))),
        Ok(_) | Err(AccountError::EmailTaken) => Ok(Either::Left(Flash::success(
            "/signin",
            "Welcome to Lyceum! We have sent you an email: follow its link to confirm your address, then sign in.",
        ))),
        // Usernames are public (profiles, forums): saying one is taken reveals nothing.
        Err(e @ AccountError::UsernameTaken) => {
            let errors = FieldErrors::from([("username", e.to_string())]);
            Ok(Either::Right(form_page(
                "accounts/signup",
                "Create your account",
                values,
                &errors,
                views::Next { next: None },
            )))
        }
        Err(AccountError::Db(e)) => Err(e.into()),
    }
}

/// What every new account records at once, through `record` (privacy's):
/// each current policy version ticked at sign-up (COM-5) and the newsletter
/// choice, off unless ticked (COM-1).
pub fn record_signup(
    conn: &mut crate::db::Conn,
    record: RecordSignup,
    user_id: i64,
    marketing: bool,
    client: &ClientInfo,
) -> AppResult<()> {
    Ok(record(conn, user_id, marketing, client, now())?)
}

#[get("/signin?<next>")]
pub fn signin_form(viewer: Viewer, next: Option<NextPath>) -> Either<Redirect, Page> {
    if viewer.signed_in() {
        return Either::Left(Redirect::to(next.unwrap_or_else(NextPath::home).into_string()));
    }
    Either::Right(form_page(
        "accounts/signin",
        "Sign in",
        Values::new(),
        &FieldErrors::new(),
        views::Next { next: next.as_ref().map(|n| n.as_str().to_string()) },
    ))
}

#[derive(FromForm)]
pub struct SigninForm {
    #[field(default = String::new())]
    login: String,
    #[field(default = String::new())]
    password: String,
    #[field(default = false)]
    remember: bool,
    next: NextPath,
}

#[post("/signin", data = "<form>")]
pub async fn signin(
    form: CsrfForm<SigninForm>,
    db: &State<Db>,
    hooks: &State<AccountHooks>,
    config: &State<Config>,
    limits: &State<RateLimits>,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
) -> PageOr<Redirect> {
    let f = &form.form;
    let login = f.login.trim().to_lowercase();
    limited(limits, Action::SignIn, &[&client.rate_key(), &format!("login:{login}")]).await?;
    let values = form.values.clone();
    let failed = |message: &str| {
        let errors = FieldErrors::from([("login", message.to_string())]);
        Ok(Either::Right(form_page(
            "accounts/signin",
            "Sign in",
            values.clone(),
            &errors,
            views::Next { next: Some(f.next.as_str().to_string()) },
        )))
    };
    if login.is_empty() || f.password.is_empty() {
        return failed("Please enter your email or username and your password.");
    }
    let lookup = login.clone();
    let user = db.run(move |conn| service::find_for_login(conn, &lookup).map_err(AppError::from)).await?;
    // An account someone has been guessing at waits, wherever the tries come from.
    if let Some(id) = user.as_ref().map(|u| u.id)
        && let Some(retry_after) =
            db.run(move |conn| super::guesses::password_wait(conn, id, now()).map_err(AppError::from)).await?
    {
        return Err(AppError::RateLimited { retry_after });
    }
    let ok = passwords::verify(f.password.clone(), user.as_ref().map(|u| u.password_hash.clone())).await;
    if let Some(id) = user.as_ref().map(|u| u.id) {
        db.run(move |conn| {
            let counted = if ok {
                super::guesses::password_succeeded(conn, id)
            } else {
                super::guesses::password_failed(conn, id, now())
            };
            counted.map_err(AppError::from)
        })
        .await?;
    }
    let Some(user) = user.filter(|_| ok) else {
        return failed("That email or username and password do not match an account.");
    };
    if user.status == crate::accounts::model::AccountStatus::PendingParent {
        return failed("Your account is waiting for your parent or guardian to confirm it. We emailed them a link.");
    }
    let next =
        super::security::continue_sign_in(db, hooks, config, cookies, &client, user.id, f.remember, &f.next).await?;
    Ok(Either::Left(Redirect::to(next)))
}

#[post("/signout", data = "<_form>")]
pub async fn signout(
    _form: CsrfOnly,
    db: &State<Db>,
    config: &State<Config>,
    state: SessionGuard,
    cookies: &CookieJar<'_>,
) -> AppResult<Flash> {
    if let Some(id) = state.0.session_id {
        db.run(move |conn| sessions::end(conn, &id).map_err(AppError::from)).await?;
    }
    cookies.remove_private(rocket::http::Cookie::build(sessions::COOKIE).path("/"));
    csrf::rotate(cookies, config.is_tls());
    Ok(Flash::info("/", "You have signed out."))
}

#[get("/verify-email/<token>")]
pub async fn verify_email(token: &str, db: &State<Db>, viewer: Viewer) -> AppResult<Flash> {
    let token = token.to_string();
    let ok = db.run(move |conn| service::verify_email(conn, &token, now()).map_err(AppError::from)).await?;
    let to = if viewer.signed_in() { "/dashboard" } else { "/signin" };
    Ok(if ok {
        Flash::success(to, "Thank you: your email address is confirmed.")
    } else {
        Flash::error(to, "That confirmation link is invalid, used or expired. Sign in and ask for a new one.")
    })
}

#[post("/account/verify/resend", data = "<_form>")]
pub async fn resend_verification(
    _form: CsrfOnly,
    user: CurrentUser,
    db: &State<Db>,
    limits: &State<RateLimits>,
    client: ClientInfo,
) -> AppResult<Flash> {
    limited(limits, Action::VerificationResend, &[&client.rate_key(), &format!("user:{}", user.id)]).await?;
    if user.email_verified {
        return Ok(Flash::info("/dashboard", "Your email address is already confirmed."));
    }
    let id = user.id;
    db.run(move |conn| {
        let u = service::find(conn, id)?.ok_or(AppError::NotFound)?;
        service::send_verification(conn, &u, now()).map_err(AppError::from)
    })
    .await?;
    Ok(Flash::success("/dashboard", format!("We sent a new confirmation link to {}.", user.email)))
}

#[get("/password/forgot")]
pub fn forgot_form() -> Page {
    form_page("accounts/forgot", "Reset your password", Values::new(), &FieldErrors::new(), Nothing {})
}

#[derive(FromForm)]
pub struct ForgotForm {
    #[field(default = String::new())]
    email: String,
}

const RESET_SENT: &str =
    "If an account uses that address, we have sent it a link to reset the password. The link works once, for one hour.";

#[post("/password/forgot", data = "<form>")]
pub async fn forgot(
    form: CsrfForm<ForgotForm>,
    db: &State<Db>,
    limits: &State<RateLimits>,
    client: ClientInfo,
) -> PageOr<Flash> {
    let raw = form.form.email.trim().to_lowercase();
    limited(limits, Action::PasswordReset, &[&client.rate_key(), &format!("email:{raw}")]).await?;
    let email = match Email::parse(&form.form.email) {
        Ok(e) => e,
        Err(msg) => {
            let errors = FieldErrors::from([("email", msg)]);
            return Ok(Either::Right(form_page(
                "accounts/forgot",
                "Reset your password",
                form.values.clone(),
                &errors,
                Nothing {},
            )));
        }
    };
    db.run(move |conn| service::request_password_reset(conn, &email, now()).map_err(AppError::from)).await?;
    Ok(Either::Left(Flash::info("/signin", RESET_SENT)))
}

#[get("/password/reset/<token>")]
pub async fn reset_form(token: &str, db: &State<Db>) -> AppResult<Either<Flash, Page>> {
    let t = token.to_string();
    let user = db.run(move |conn| service::reset_token_user(conn, &t, now()).map_err(AppError::from)).await?;
    match user {
        Some(_) => Ok(Either::Right(form_page(
            "accounts/reset",
            "Choose a new password",
            Values::new(),
            &FieldErrors::new(),
            views::Reset { token: token.to_string() },
        ))),
        None => Ok(Either::Left(Flash::error(
            "/password/forgot",
            "That reset link is invalid, used or expired. Please ask for a new one.",
        ))),
    }
}

#[derive(FromForm)]
pub struct ResetForm {
    #[field(default = String::new())]
    password: String,
}

#[post("/password/reset/<token>", data = "<form>")]
pub async fn reset(
    token: &str,
    form: CsrfForm<ResetForm>,
    db: &State<Db>,
    limits: &State<RateLimits>,
    client: ClientInfo,
) -> PageOr<Flash> {
    limited(limits, Action::PasswordReset, &[&client.rate_key()]).await?;
    let t = token.to_string();
    let Some(user) = db.run(move |conn| service::reset_token_user(conn, &t, now()).map_err(AppError::from)).await?
    else {
        return Ok(Either::Left(Flash::error(
            "/password/forgot",
            "That reset link is invalid, used or expired. Please ask for a new one.",
        )));
    };
    let password = match NewPassword::parse(&form.form.password, Some(&user.username)) {
        Ok(p) => p,
        Err(msg) => {
            let errors = FieldErrors::from([("password", msg)]);
            return Ok(Either::Right(form_page(
                "accounts/reset",
                "Choose a new password",
                Values::new(),
                &errors,
                views::Reset { token: token.to_string() },
            )));
        }
    };
    let hash = passwords::hash(password.expose().to_string()).await.map_err(AppError::Internal)?;
    let t = token.to_string();
    let ok = db.run(move |conn| service::reset_password(conn, &t, &hash, now()).map_err(AppError::from)).await?;
    Ok(Either::Left(if ok {
        Flash::success("/signin", "Your password has been changed and every session signed out. Please sign in.")
    } else {
        Flash::error("/password/forgot", "That reset link is invalid, used or expired. Please ask for a new one.")
    }))
}

async fn settings_page(
    db: &Db,
    user: &CurrentUser,
    session_id: Option<String>,
    errors: FieldErrors,
    values: Values,
) -> AppResult<Page> {
    let id = user.id;
    let (account, sessions) = db
        .run(move |conn| {
            let account = service::find(conn, id)?.ok_or(AppError::NotFound)?;
            let sessions = sessions::list(conn, id, now())?;
            Ok::<_, AppError>((account, sessions))
        })
        .await?;
    let sessions: Vec<views::SettingsSession> = sessions
        .iter()
        .map(|s| views::SettingsSession {
            current: Some(&s.id) == session_id.as_ref(),
            device: sessions::device(s.user_agent.as_deref()),
            created_at: s.created_at.into(),
            last_seen_at: s.last_seen_at.into(),
        })
        .collect();
    let profile = views::ProfileDetails {
        phone: service::open_phone(account.phone.as_deref()),
        email_verified: account.email_verified_at.is_some(),
        username: account.username,
        email: account.email,
        first_name: account.first_name,
        last_name: account.last_name,
        company: account.company,
    };
    let mut shown = profile.values();
    shown.extend(values);
    let other_sessions = sessions.len() > 1;
    let page = Page::view(
        "accounts/settings",
        "Account settings",
        views::Settings { profile, values: shown, errors: errors.clone(), sessions, other_sessions },
    );
    Ok(if errors.is_empty() { page } else { page.with_status(Status::UnprocessableEntity) })
}

#[get("/account")]
pub async fn settings(user: CurrentUser, state: SessionGuard, db: &State<Db>) -> AppResult<Page> {
    settings_page(db, &user, state.0.session_id, FieldErrors::new(), Values::new()).await
}

#[derive(FromForm)]
pub struct ProfileForm {
    #[field(default = String::new())]
    first_name: String,
    #[field(default = String::new())]
    last_name: String,
    #[field(default = String::new())]
    phone: String,
    #[field(default = String::new())]
    company: String,
}

#[post("/account/profile", data = "<form>")]
pub async fn update_profile(
    form: CsrfForm<ProfileForm>,
    user: CurrentUser,
    state: SessionGuard,
    db: &State<Db>,
) -> PageOr<Flash> {
    let f = &form.form;
    let update = match service::parse_profile(&f.first_name, &f.last_name, &f.phone, &f.company) {
        Ok(u) => u,
        Err(errors) => {
            return Ok(Either::Right(settings_page(db, &user, state.0.session_id, errors, form.values.clone()).await?));
        }
    };
    let id = user.id;
    db.run(move |conn| service::update_profile(conn, id, &update, now()).map_err(AppError::from)).await?;
    Ok(Either::Left(Flash::success("/account", "Your details are saved.")))
}

#[derive(FromForm)]
pub struct EmailForm {
    #[field(default = String::new())]
    new_email: String,
    #[field(default = String::new())]
    current_password: String,
}

async fn check_password(db: &Db, user_id: i64, password: &str) -> AppResult<Option<crate::accounts::model::User>> {
    let account =
        db.run(move |conn| service::find(conn, user_id).map_err(AppError::from)).await?.ok_or(AppError::NotFound)?;
    let ok = passwords::verify(password.to_string(), Some(account.password_hash.clone())).await;
    Ok(ok.then_some(account))
}

#[post("/account/email", data = "<form>")]
pub async fn change_email(
    form: CsrfForm<EmailForm>,
    user: CurrentUser,
    state: SessionGuard,
    db: &State<Db>,
    limits: &State<RateLimits>,
) -> PageOr<Flash> {
    limited(limits, Action::CodeEntry, &[&format!("user:{}", user.id)]).await?;
    // With two-factor sign-in, a sensitive change needs a fresh second factor (ACC-5).
    if let Some(go) = super::security::require_step_up(db, user.id, state.0.session_id.clone(), "/account").await? {
        return Ok(Either::Left(go));
    }
    let f = &form.form;
    let values = form.values.clone();
    let session_id = state.0.session_id.clone();
    let fail = async |field: &'static str, msg: String| {
        let errors = FieldErrors::from([(field, msg)]);
        Ok::<_, AppError>(Either::Right(settings_page(db, &user, session_id.clone(), errors, values.clone()).await?))
    };
    let new_email = match Email::parse(&f.new_email) {
        Ok(e) => e,
        Err(msg) => return fail("new_email", msg).await,
    };
    let Some(account) = check_password(db, user.id, &f.current_password).await? else {
        return fail("current_password", "That is not your current password.".into()).await;
    };
    let requested = new_email.clone();
    let result =
        db.run(move |conn| Ok::<_, AppError>(service::request_email_change(conn, &account, &requested, now()))).await?;
    match result {
        Ok(()) => Ok(Either::Left(Flash::info(
            "/account",
            format!("We sent a confirmation link to {}. Your address changes once you follow it.", new_email.as_str()),
        ))),
        Err(AccountError::Db(e)) => Err(e.into()),
        Err(e) => fail("new_email", e.to_string()).await,
    }
}

#[get("/account/email/confirm/<token>")]
pub async fn confirm_email(token: &str, db: &State<Db>) -> AppResult<Flash> {
    let t = token.to_string();
    let result = db.run(move |conn| Ok::<_, AppError>(service::confirm_email_change(conn, &t, now()))).await?;
    Flash::settle_with("/account", result, |back, confirmed| {
        if confirmed {
            Flash::success(back, "Your new email address is confirmed and in use.")
        } else {
            Flash::error(back, "That confirmation link is invalid, used or expired.")
        }
    })
}

#[derive(FromForm)]
pub struct PasswordForm {
    #[field(default = String::new())]
    current_password: String,
    #[field(default = String::new())]
    new_password: String,
}

#[post("/account/password", data = "<form>")]
pub async fn change_password(
    form: CsrfForm<PasswordForm>,
    user: CurrentUser,
    state: SessionGuard,
    db: &State<Db>,
    limits: &State<RateLimits>,
) -> PageOr<Flash> {
    limited(limits, Action::CodeEntry, &[&format!("user:{}", user.id)]).await?;
    if let Some(go) = super::security::require_step_up(db, user.id, state.0.session_id.clone(), "/account").await? {
        return Ok(Either::Left(go));
    }
    let f = &form.form;
    let session_id = state.0.session_id.clone();
    let fail = async |field: &'static str, msg: String| {
        let errors = FieldErrors::from([(field, msg)]);
        Ok::<_, AppError>(Either::Right(
            settings_page(db, &user, state.0.session_id.clone(), errors, Values::new()).await?,
        ))
    };
    // Its own key: the email form on the same page has a current password too.
    if check_password(db, user.id, &f.current_password).await?.is_none() {
        return fail("password_current_password", "That is not your current password.".into()).await;
    }
    let password = match NewPassword::parse(&f.new_password, Some(&user.username)) {
        Ok(p) => p,
        Err(msg) => return fail("new_password", msg).await,
    };
    let hash = passwords::hash(password.expose().to_string()).await.map_err(AppError::Internal)?;
    let id = user.id;
    db.run(move |conn| service::set_password(conn, id, &hash, session_id.as_deref(), now()).map_err(AppError::from))
        .await?;
    Ok(Either::Left(Flash::success("/account", "Your password is changed. Your other sessions were signed out.")))
}

#[post("/account/sessions/end-others", data = "<_form>")]
pub async fn end_other_sessions(
    _form: CsrfOnly,
    user: CurrentUser,
    state: SessionGuard,
    db: &State<Db>,
) -> AppResult<Flash> {
    let id = user.id;
    let keep = state.0.session_id;
    let n = db.run(move |conn| sessions::end_others(conn, id, keep.as_deref()).map_err(AppError::from)).await?;
    Ok(Flash::success("/account", format!("Signed out of {n} other device(s).")))
}

/// The parent-consent page for a live link (with `errors` and `values` after a
/// failed submit), or the "link expired" page.
async fn parent_consent_page(
    db: &Db,
    token: &str,
    values: Values,
    errors: &FieldErrors,
) -> AppResult<Result<(Page, crate::accounts::model::User), Page>> {
    let t = token.to_string();
    let learner = db.run(move |conn| service::parent_consent_subject(conn, &t, now()).map_err(AppError::from)).await?;
    let Some(learner) = learner else {
        let expired = views::ParentConsentDone { expired: true, first_name: None };
        return Ok(Err(
            Page::view("accounts/parent_consent_done", "Link expired", expired).with_status(Status::NotFound)
        ));
    };
    let page = form_page(
        "accounts/parent_consent",
        "Confirm your child's account",
        values,
        errors,
        views::ParentConsent {
            token: token.to_string(),
            learner: views::Learner { first_name: learner.first_name.clone(), username: learner.username.clone() },
        },
    );
    Ok(Ok((page, learner)))
}

#[get("/parent-consent/<token>")]
pub async fn parent_consent_form(token: &str, db: &State<Db>) -> AppResult<Page> {
    Ok(match parent_consent_page(db, token, Values::new(), &FieldErrors::new()).await? {
        Ok((page, _)) | Err(page) => page,
    })
}

#[derive(FromForm)]
pub struct ParentForm {
    #[field(default = String::new())]
    parent_name: String,
    #[field(default = false)]
    confirm: bool,
}

#[post("/parent-consent/<token>", data = "<form>")]
pub async fn parent_consent(
    token: &str,
    form: CsrfForm<ParentForm>,
    db: &State<Db>,
    client: ClientInfo,
) -> AppResult<Page> {
    let mut errors = FieldErrors::new();
    let name = PersonName::parse(&form.form.parent_name, "full name").map_err(|e| errors.insert("parent_name", e)).ok();
    if !form.form.confirm {
        errors.insert("confirm", "Please tick the box to confirm you are the parent or guardian and agree.".into());
    }
    let (page, learner) = match parent_consent_page(db, token, form.values.clone(), &errors).await? {
        Ok(found) => found,
        Err(expired) => return Ok(expired),
    };
    let Some(name) = name.filter(|_| errors.is_empty()) else { return Ok(page) };
    let t = token.to_string();
    let ok = db
        .run(move |conn| service::confirm_parent_consent(conn, &t, &name, &client, now()).map_err(AppError::from))
        .await?;
    Ok(Page::view(
        "accounts/parent_consent_done",
        "Thank you",
        views::ParentConsentDone { expired: !ok, first_name: Some(learner.first_name) },
    ))
}

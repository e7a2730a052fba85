//! Account logic over a connection: no HTTP, no HTML. Every function that
//! writes mail queues it in the same transaction as the change it reports.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use crate::accounts::domain::{self, AgeBand, Email, FieldErrors, NewPassword, PersonName, Username};
use crate::accounts::model::{AccountStatus, NewUser, User};
use crate::accounts::tokens::{self, Purpose};
use crate::accounts::{TERMS_VERSION, sessions};
use crate::db::schema::{parental_consents, users};
use crate::db::{Conn, is_unique_violation};
use crate::kernel::ClientInfo;
use crate::notify::enqueue_email;

pub use crate::db::lower;

/// Raw sign-up fields as typed.
#[derive(Debug, Default, Clone)]
pub struct SignupInput<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub phone: &'a str,
    pub company: &'a str,
    pub date_of_birth: &'a str,
    pub parent_email: &'a str,
    pub accept_terms: bool,
    /// Signing up through a provider (ACC-4): no password is asked for.
    pub without_password: bool,
}

/// A sign-up that passed every rule (ACC-1, ACC-2, ACC-9).
pub struct NewAccount {
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub username: Username,
    pub email: Email,
    /// None for an account that signs in through a provider only.
    pub password: Option<NewPassword>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub date_of_birth: NaiveDate,
    pub parent_email: Option<Email>,
}

#[derive(Debug)]
pub enum SignupRejection {
    Fields(FieldErrors),
    /// Under 13: refused, nothing stored (ACC-9).
    TooYoung,
}

pub fn parse_signup(input: &SignupInput<'_>, today: NaiveDate) -> Result<NewAccount, SignupRejection> {
    let mut errors = FieldErrors::new();
    let first_name = PersonName::parse(input.first_name, "first name").map_err(|e| errors.insert("first_name", e)).ok();
    let last_name = PersonName::parse(input.last_name, "last name").map_err(|e| errors.insert("last_name", e)).ok();
    let username = Username::parse(input.username).map_err(|e| errors.insert("username", e)).ok();
    let email = Email::parse(input.email).map_err(|e| errors.insert("email", e)).ok();
    let password = if input.without_password {
        Some(None)
    } else {
        NewPassword::parse(input.password, username.as_ref().map(|u| u.as_str()))
            .map_err(|e| errors.insert("password", e))
            .ok()
            .map(Some)
    };
    let phone = domain::phone(input.phone).map_err(|e| errors.insert("phone", e)).ok().flatten();
    let company =
        domain::optional_text(input.company, "company", 120).map_err(|e| errors.insert("company", e)).ok().flatten();
    let dob =
        domain::parse_date_of_birth(input.date_of_birth, today).map_err(|e| errors.insert("date_of_birth", e)).ok();
    let band = dob.map(|d| domain::age_band(d, today));
    if band == Some(AgeBand::Child) {
        return Err(SignupRejection::TooYoung);
    }
    let parent_email = if band == Some(AgeBand::Minor) {
        match Email::parse(input.parent_email) {
            Ok(p) if email.as_ref() == Some(&p) => {
                errors.insert("parent_email", "Please give your parent's or guardian's own email address.".into());
                None
            }
            Ok(p) => Some(p),
            Err(_) => {
                errors.insert(
                    "parent_email",
                    "As you are under 18, we need the email address of a parent or guardian to confirm your account."
                        .into(),
                );
                None
            }
        }
    } else {
        None
    };
    if !input.accept_terms {
        errors.insert("accept_terms", "Please accept the terms of use to create an account.".into());
    }
    match (first_name, last_name, username, email, password, dob) {
        (Some(first_name), Some(last_name), Some(username), Some(email), Some(password), Some(date_of_birth))
            if errors.is_empty() =>
        {
            Ok(NewAccount {
                first_name,
                last_name,
                username,
                email,
                password,
                phone,
                company,
                date_of_birth,
                parent_email,
            })
        }
        _ => Err(SignupRejection::Fields(errors)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("That username is taken. Please choose another.")]
    UsernameTaken,
    #[error("An account with this email address already exists. Sign in, or reset your password.")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl From<AccountError> for crate::web::AppError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Db(e) => e.into(),
            e => crate::web::AppError::Conflict(e.to_string()),
        }
    }
}

/// A taken name or address is the person's to change; the rest is the site's.
impl crate::web::outcome::UserFault for AccountError {
    fn for_user(self) -> Result<String, Self> {
        match self {
            AccountError::Db(e) => Err(AccountError::Db(e)),
            e => Ok(e.to_string()),
        }
    }
}

pub fn username_taken(conn: &mut Conn, username: &str) -> QueryResult<bool> {
    let n: i64 = users::table.filter(lower(users::username).eq(username.to_lowercase())).count().get_result(conn)?;
    Ok(n > 0)
}

fn email_taken(conn: &mut Conn, email: &str) -> QueryResult<bool> {
    let n: i64 = users::table.filter(users::email.eq(email)).count().get_result(conn)?;
    Ok(n > 0)
}

pub fn find(conn: &mut Conn, user_id: i64) -> QueryResult<Option<User>> {
    users::table.find(user_id).select(User::as_select()).first(conn).optional()
}

/// The account a sign-in names, by email or username (case-insensitive).
pub fn find_for_login(conn: &mut Conn, login: &str) -> QueryResult<Option<User>> {
    let login = login.trim().to_lowercase();
    // Two lookups, each on its own index: joined by OR, PostgreSQL scans
    // the whole table. An email match comes first.
    if login.contains('@')
        && let Some(user) =
            users::table.filter(users::email.eq(&login)).select(User::as_select()).first(conn).optional()?
    {
        return Ok(Some(user));
    }
    users::table.filter(lower(users::username).eq(&login)).select(User::as_select()).first(conn).optional()
}

/// Creates the account, queues the verification email (unless a provider
/// already verified the address) and, for a minor, the parent's consent
/// request. The account of a minor stays pending. An empty `password_hash`
/// makes an account no password opens.
pub fn create_account(
    conn: &mut Conn,
    acct: &NewAccount,
    password_hash: &str,
    email_verified: bool,
    now: NaiveDateTime,
) -> Result<User, AccountError> {
    crate::db::transaction(conn, |conn| {
        if username_taken(conn, acct.username.as_str())? {
            return Err(AccountError::UsernameTaken);
        }
        if email_taken(conn, acct.email.as_str())? {
            return Err(AccountError::EmailTaken);
        }
        let status =
            if acct.parent_email.is_some() { AccountStatus::PendingParent } else { AccountStatus::Active }.as_str();
        let sealed_phone = seal_phone(acct.phone.as_deref())?;
        let user_id: i64 = diesel::insert_into(users::table)
            .values(NewUser {
                username: acct.username.as_str(),
                email: acct.email.as_str(),
                first_name: acct.first_name.as_str(),
                last_name: acct.last_name.as_str(),
                phone: sealed_phone.as_deref(),
                company: acct.company.as_deref(),
                date_of_birth: Some(acct.date_of_birth),
                password_hash,
                status,
                email_verified_at: email_verified.then_some(now),
                terms_version: TERMS_VERSION,
                terms_accepted_at: now,
                created_at: now,
                updated_at: now,
            })
            .returning(users::id)
            .get_result(conn)
            .map_err(|e| if is_unique_violation(&e) { AccountError::UsernameTaken } else { AccountError::Db(e) })?;
        let user = find(conn, user_id)?.ok_or(diesel::result::Error::NotFound)?;
        if !email_verified {
            send_verification(conn, &user, now)?;
        }
        if let Some(parent) = &acct.parent_email {
            diesel::insert_into(parental_consents::table)
                .values((
                    parental_consents::user_id.eq(user.id),
                    parental_consents::parent_email.eq(parent.as_str()),
                    parental_consents::created_at.eq(now),
                ))
                .execute(conn)?;
            let token = tokens::issue(conn, user.id, Purpose::ParentConsent, None, now)?;
            enqueue_email(
                conn,
                parent.as_str(),
                "Please confirm your child's Lyceum account",
                "parent_consent",
                json!({ "learner_first_name": user.first_name, "username": user.username, "path": format!("/parent-consent/{token}") }),
            )?;
        }
        Ok(user)
    })
}

/// Someone signed up with the address of an existing account: its owner
/// learns of it, with the way to sign in or to reset the password, and the
/// stranger learns nothing (the page they see is that of a new account).
pub fn tell_owner_of_taken_email(conn: &mut Conn, email: &Email) -> QueryResult<()> {
    let owner: Option<String> =
        users::table.filter(users::email.eq(email.as_str())).select(users::first_name).first(conn).optional()?;
    let Some(first_name) = owner else { return Ok(()) };
    enqueue_email(
        conn,
        email.as_str(),
        "You already have a Lyceum account",
        "account_exists",
        json!({ "first_name": first_name }),
    )?;
    Ok(())
}

pub fn send_verification(conn: &mut Conn, user: &User, now: NaiveDateTime) -> QueryResult<()> {
    let token = tokens::issue(conn, user.id, Purpose::VerifyEmail, None, now)?;
    enqueue_email(
        conn,
        &user.email,
        "Confirm your email address",
        "verify_email",
        json!({ "first_name": user.first_name, "path": format!("/verify-email/{token}") }),
    )?;
    Ok(())
}

/// Marks the email verified (ACC-3); `false` for an unknown, used or expired link.
pub fn verify_email(conn: &mut Conn, token: &str, now: NaiveDateTime) -> QueryResult<bool> {
    crate::db::transaction(conn, |conn| {
        let Some((user_id, _)) = tokens::consume(conn, token, Purpose::VerifyEmail, now)? else { return Ok(false) };
        diesel::update(users::table.find(user_id))
            .set((users::email_verified_at.eq(now), users::updated_at.eq(now)))
            .execute(conn)?;
        Ok(true)
    })
}

/// Sends a reset link if the account exists; says nothing either way.
pub fn request_password_reset(conn: &mut Conn, email: &Email, now: NaiveDateTime) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        let Some(user) =
            users::table.filter(users::email.eq(email.as_str())).select(User::as_select()).first(conn).optional()?
        else {
            return Ok(());
        };
        let token = tokens::issue(conn, user.id, Purpose::ResetPassword, None, now)?;
        enqueue_email(
            conn,
            &user.email,
            "Reset your password",
            "reset_password",
            json!({ "first_name": user.first_name, "path": format!("/password/reset/{token}") }),
        )?;
        Ok(())
    })
}

pub fn reset_token_user(conn: &mut Conn, token: &str, now: NaiveDateTime) -> QueryResult<Option<User>> {
    match tokens::peek(conn, token, Purpose::ResetPassword, now)? {
        Some((user_id, _)) => find(conn, user_id),
        None => Ok(None),
    }
}

/// Sets a new password from a reset link and ends every session.
pub fn reset_password(conn: &mut Conn, token: &str, password_hash: &str, now: NaiveDateTime) -> QueryResult<bool> {
    crate::db::transaction(conn, |conn| {
        let Some((user_id, _)) = tokens::consume(conn, token, Purpose::ResetPassword, now)? else { return Ok(false) };
        set_password(conn, user_id, password_hash, None, now)?;
        // Proved by the mailbox: whatever someone else guessed no longer counts.
        super::guesses::password_succeeded(conn, user_id)?;
        Ok(true)
    })
}

/// Replaces the hash, ends other sessions and tells the owner.
pub fn set_password(
    conn: &mut Conn,
    user_id: i64,
    password_hash: &str,
    keep_session: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((users::password_hash.eq(password_hash), users::updated_at.eq(now)))
        .execute(conn)?;
    sessions::end_others(conn, user_id, keep_session)?;
    if let Some(user) = find(conn, user_id)? {
        enqueue_email(
            conn,
            &user.email,
            "Your password was changed",
            "password_changed",
            json!({ "first_name": user.first_name }),
        )?;
    }
    Ok(())
}

pub struct ProfileUpdate {
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub phone: Option<String>,
    pub company: Option<String>,
}

pub fn parse_profile(first: &str, last: &str, phone: &str, company: &str) -> Result<ProfileUpdate, FieldErrors> {
    let mut errors = FieldErrors::new();
    let first_name = PersonName::parse(first, "first name").map_err(|e| errors.insert("first_name", e)).ok();
    let last_name = PersonName::parse(last, "last name").map_err(|e| errors.insert("last_name", e)).ok();
    let phone = domain::phone(phone).map_err(|e| errors.insert("phone", e)).ok().flatten();
    let company =
        domain::optional_text(company, "company", 120).map_err(|e| errors.insert("company", e)).ok().flatten();
    match (first_name, last_name) {
        (Some(first_name), Some(last_name)) if errors.is_empty() => {
            Ok(ProfileUpdate { first_name, last_name, phone, company })
        }
        _ => Err(errors),
    }
}

/// Changes what the user may change (ACC-6); the username is not among it.
/// Phone numbers are sealed at rest (SEC-2).
fn seal_phone(phone: Option<&str>) -> QueryResult<Option<String>> {
    phone
        .map(|p| crate::kernel::vault::seal(crate::kernel::vault::PHONE, p))
        .transpose()
        .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
}

/// A stored phone number, readable again.
pub fn open_phone(stored: Option<&str>) -> Option<String> {
    stored.and_then(|p| match crate::kernel::vault::open(crate::kernel::vault::PHONE, p) {
        Ok(phone) => Some(phone),
        Err(e) => {
            tracing::error!(error = %e, "a phone number cannot be decrypted");
            None
        }
    })
}

pub fn update_profile(conn: &mut Conn, user_id: i64, p: &ProfileUpdate, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::first_name.eq(p.first_name.as_str()),
            users::last_name.eq(p.last_name.as_str()),
            users::phone.eq(seal_phone(p.phone.as_deref())?),
            users::company.eq(p.company.as_deref()),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Starts an email change: the new address must confirm before it takes
/// effect; the old address is told.
pub fn request_email_change(
    conn: &mut Conn,
    user: &User,
    new_email: &Email,
    now: NaiveDateTime,
) -> Result<(), AccountError> {
    crate::db::transaction(conn, |conn| {
        if email_taken(conn, new_email.as_str())? {
            return Err(AccountError::EmailTaken);
        }
        let token = tokens::issue(conn, user.id, Purpose::ChangeEmail, Some(new_email.as_str()), now)?;
        enqueue_email(
            conn,
            new_email.as_str(),
            "Confirm your new email address",
            "change_email",
            json!({ "first_name": user.first_name, "path": format!("/account/email/confirm/{token}") }),
        )?;
        enqueue_email(
            conn,
            &user.email,
            "A change of your email address was requested",
            "email_change_notice",
            json!({ "first_name": user.first_name, "new_email": new_email.as_str() }),
        )?;
        Ok(())
    })
}

pub fn confirm_email_change(conn: &mut Conn, token: &str, now: NaiveDateTime) -> Result<bool, AccountError> {
    crate::db::transaction(conn, |conn| {
        let Some((user_id, Some(new_email))) = tokens::consume(conn, token, Purpose::ChangeEmail, now)? else {
            return Ok(false);
        };
        if email_taken(conn, &new_email)? {
            return Err(AccountError::EmailTaken);
        }
        diesel::update(users::table.find(user_id))
            .set((users::email.eq(&new_email), users::email_verified_at.eq(now), users::updated_at.eq(now)))
            .execute(conn)
            .map_err(|e| if is_unique_violation(&e) { AccountError::EmailTaken } else { AccountError::Db(e) })?;
        Ok(true)
    })
}

/// The learner a parental-consent link is about, while the link is live.
pub fn parent_consent_subject(conn: &mut Conn, token: &str, now: NaiveDateTime) -> QueryResult<Option<User>> {
    match tokens::peek(conn, token, Purpose::ParentConsent, now)? {
        Some((user_id, _)) => find(conn, user_id),
        None => Ok(None),
    }
}

/// Records the parent's confirmation (who, when, IP, user agent) and
/// activates the minor's account (ACC-9).
pub fn confirm_parent_consent(
    conn: &mut Conn,
    token: &str,
    parent_name: &PersonName,
    client: &ClientInfo,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    crate::db::transaction(conn, |conn| {
        let Some((user_id, _)) = tokens::consume(conn, token, Purpose::ParentConsent, now)? else { return Ok(false) };
        diesel::update(
            parental_consents::table
                .filter(parental_consents::user_id.eq(user_id))
                .filter(parental_consents::confirmed_at.is_null()),
        )
        .set((
            parental_consents::parent_name.eq(parent_name.as_str()),
            parental_consents::confirmed_at.eq(now),
            parental_consents::ip.eq(client.ip.as_deref()),
            parental_consents::user_agent.eq(client.user_agent.as_deref()),
        ))
        .execute(conn)?;
        diesel::update(users::table.find(user_id))
            .set((users::status.eq(AccountStatus::Active.as_str()), users::updated_at.eq(now)))
            .execute(conn)?;
        if let Some(user) = find(conn, user_id)? {
            enqueue_email(
                conn,
                &user.email,
                "Your Lyceum account is ready",
                "account_active",
                json!({ "first_name": user.first_name }),
            )?;
        }
        Ok(true)
    })
}

pub enum StaffOutcome {
    Granted,
    Created { username: String, password: String },
}

/// `lyceum admin create-staff`: grants the staff role to the account with this
/// email, creating a verified account with a generated password if none exists.
pub fn ensure_staff(
    conn: &mut Conn,
    email: &str,
    username: Option<&str>,
    first: &str,
    last: &str,
) -> Result<StaffOutcome, String> {
    use crate::accounts::roles::{self, Role};
    let email = Email::parse(email)?;
    let existing = users::table
        .filter(users::email.eq(email.as_str()))
        .select(users::id)
        .first::<i64>(conn)
        .optional()
        .map_err(|e| e.to_string())?;
    if let Some(id) = existing {
        roles::grant(conn, id, Role::Staff, "", None).map_err(|e| e.to_string())?;
        return Ok(StaffOutcome::Granted);
    }
    let local = email.as_str().split('@').next().unwrap_or("staff");
    let username = Username::parse(username.unwrap_or(local))?;
    let first_name = PersonName::parse(first, "first name")?;
    let last_name = PersonName::parse(last, "last name")?;
    let password = crate::kernel::tokens::random_token(18);
    let hash = crate::accounts::passwords::hash_blocking(&password)?;
    if username_taken(conn, username.as_str()).map_err(|e| e.to_string())? {
        return Err(format!("the username {} is taken; pass --username", username.as_str()));
    }
    crate::db::transaction::<_, diesel::result::Error, _>(conn, |conn| {
        let id = insert_operator_account(conn, &username, &email, &first_name, &last_name, &hash)?;
        roles::grant(conn, id, Role::Staff, "", None)
    })
    .map_err(|e| e.to_string())?;
    Ok(StaffOutcome::Created { username: username.as_str().to_string(), password })
}

/// An account made by the operator (CLI, demo seed), not through sign-up: the
/// email counts as verified and the terms as accepted by the operator's process.
pub fn insert_operator_account(
    conn: &mut Conn,
    username: &Username,
    email: &Email,
    first_name: &PersonName,
    last_name: &PersonName,
    password_hash: &str,
) -> QueryResult<i64> {
    let now = crate::db::now();
    diesel::insert_into(users::table)
        .values(NewUser {
            username: username.as_str(),
            email: email.as_str(),
            first_name: first_name.as_str(),
            last_name: last_name.as_str(),
            phone: None,
            company: None,
            // Operator accounts are adults; the date is not asked for.
            date_of_birth: None,
            password_hash,
            status: AccountStatus::Active.as_str(),
            email_verified_at: Some(now),
            terms_version: TERMS_VERSION,
            terms_accepted_at: now,
            created_at: now,
            updated_at: now,
        })
        .returning(users::id)
        .get_result(conn)
}

/// The audit trail's subject named by a form's login field
/// (`web::trail::Trail` knows no accounts).
pub trait TrailAccount {
    /// The account a form names by username or email (nobody when none does).
    fn account(&self, db: &crate::db::Db, login: &str) -> impl std::future::Future<Output = &Self> + Send;
}

impl TrailAccount for crate::web::trail::Trail<'_> {
    async fn account(&self, db: &crate::db::Db, login: &str) -> &Self {
        let login = login.trim().to_string();
        let found = db
            .run(move |conn| {
                crate::accounts::service::find_for_login(conn, &login)
                    .map(|u| u.map(|u| u.id))
                    .map_err(crate::db::DbError::from)
            })
            .await;
        self.users(found.ok().flatten())
    }
}

//! The accounts area's lifecycle hooks (see `crate::lifecycle`): erasure
//! signs the learner out, deletes their profile, roles and sign-in records,
//! and retires the `users` row; the copy of their data gives their account
//! and its security records; retention deletes expired sign-ins, old links
//! and texts.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::model::AccountStatus;
use crate::db::Conn;
use crate::db::schema::{
    account_tokens, oidc_links, oidc_pending, parental_consents, profiles, recovery_codes, role_grants,
    security_events, sessions, sign_in_guesses, sms_codes, sms_numbers, sms_outbox, totp_credentials, users,
};
use crate::lifecycle::{AreaHooks, Covered, Erased, Erasing, Expiring, Line, Section, Step, failure};

pub const HOOKS: AreaHooks = AreaHooks {
    name: "accounts",
    covers: &[
        Covered::deleted("sessions", "user_id"),
        Covered::deleted("account_tokens", "user_id"),
        Covered::deleted("profiles", "user_id"),
        Covered::deleted("role_grants", "user_id"),
        Covered::kept(
            "role_grants",
            "granted_by",
            "who granted someone else's role, for the record: a retired id only",
        ),
        Covered::deleted("parental_consents", "user_id"),
        Covered::deleted("sign_in_guesses", "user_id"),
        Covered::deleted("oidc_links", "user_id"),
        Covered::deleted("oidc_pending", "user_id"),
        Covered::deleted("totp_credentials", "user_id"),
        Covered::deleted("recovery_codes", "user_id"),
        Covered::deleted("sms_numbers", "user_id"),
        Covered::deleted("sms_codes", "user_id"),
        Covered::deleted("security_events", "user_id"),
    ],
    erase_user: Some(erase_user),
    export_user: EXPORT,
    expire: Some(expire),
};

fn erase_user(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<Erased> {
    let user_id = e.user_id;
    match e.step {
        Step::SignOut => {
            let n = diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?;
            diesel::delete(account_tokens::table.filter(account_tokens::user_id.eq(user_id))).execute(conn)?;
            Ok(Erased::detail(format!("{n} session(s) ended; sign-in, reset and verification links cancelled.")))
        }
        Step::DeletePersonalData => {
            // The file first: a failure leaves the row, so the retry finds the key again.
            let avatar: Option<Option<String>> =
                profiles::table.find(user_id).select(profiles::avatar_key).first(conn).optional()?;
            let avatar = avatar.flatten();
            if let Some(key) = &avatar {
                e.blobs.delete(key).map_err(failure)?;
            }
            let mut n = diesel::delete(profiles::table.filter(profiles::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(role_grants::table.filter(role_grants::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(parental_consents::table.filter(parental_consents::user_id.eq(user_id)))
                .execute(conn)?;
            n += diesel::delete(sign_in_guesses::table.filter(sign_in_guesses::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(oidc_links::table.filter(oidc_links::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(oidc_pending::table.filter(oidc_pending::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(totp_credentials::table.filter(totp_credentials::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)?;
            // Before the number itself: it is what finds the texts.
            n += super::sms::erase_outbox_texts(conn, user_id)?;
            n += diesel::delete(sms_numbers::table.filter(sms_numbers::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(sms_codes::table.filter(sms_codes::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(security_events::table.filter(security_events::user_id.eq(user_id))).execute(conn)?;
            Ok(Erased { records: n, files: usize::from(avatar.is_some()), ..Erased::default() })
        }
        Step::RetireAccount => {
            diesel::update(users::table.find(user_id))
                .set((
                    users::username.eq(format!("retired-{user_id}")),
                    users::email.eq(format!("retired-{user_id}@erased.invalid")),
                    users::first_name.eq(""),
                    users::last_name.eq(""),
                    users::phone.eq(None::<String>),
                    users::company.eq(None::<String>),
                    users::date_of_birth.eq(None::<NaiveDate>),
                    // No password hash verifies against this.
                    users::password_hash.eq("!erased"),
                    users::status.eq(AccountStatus::Erased.as_str()),
                    users::email_verified_at.eq(None::<NaiveDateTime>),
                    users::last_sign_in_at.eq(None::<NaiveDateTime>),
                    users::updated_at.eq(e.now),
                ))
                .execute(conn)?;
            Ok(Erased::detail(
                "Account retired: name, email, username, phone, company and date of birth replaced.".into(),
            ))
        }
        _ => Ok(Erased::default()),
    }
}

fn expire(conn: &mut Conn, x: &Expiring<'_>) -> QueryResult<Vec<Line>> {
    let p = x.periods;
    let mut lines = Vec::new();
    if p.log_days > 0 {
        let before = x.now - chrono::Duration::days(p.log_days);
        let expired = sessions::table.filter(sessions::expires_at.le(x.now)).filter(sessions::user_id.ne_all(x.held));
        let n = if x.dry_run {
            expired.count().get_result::<i64>(conn)? as usize
        } else {
            diesel::delete(expired).execute(conn)?
        };
        lines.push(Line { category: "logs", count: n, action: "expired sign-ins".into() });
        let stale = account_tokens::table
            .filter(account_tokens::expires_at.le(before).or(account_tokens::used_at.le(before)))
            .filter(account_tokens::user_id.ne_all(x.held));
        let n = if x.dry_run {
            stale.count().get_result::<i64>(conn)? as usize
        } else {
            diesel::delete(stale).execute(conn)?
        };
        lines.push(Line {
            category: "logs",
            count: n,
            action: format!("used or expired email links from before {}", before.date()),
        });
        let texts = sms_outbox::table.filter(sms_outbox::created_at.le(before));
        let n = if x.dry_run {
            texts.count().get_result::<i64>(conn)? as usize
        } else {
            diesel::delete(texts).execute(conn)?
        };
        lines.push(Line {
            category: "logs",
            count: n,
            action: format!("texts kept in the outbox from before {}", before.date()),
        });
    }
    Ok(lines)
}

const EXPORT: &[Section] = &[
    Section {
        name: "account",
        table: "users",
        filter: "id = {u}",
        withheld: &["password_hash"],
        sealed: &[("phone", crate::kernel::vault::PHONE)],
        about: "Your account: username, name, email, phone, company, date of birth, status, when you accepted the terms and last signed in. The password is stored only as a one-way hash, which is left out.",
    },
    Section {
        name: "profile",
        table: "profiles",
        filter: "user_id = {u}",
        withheld: &["avatar_key"],
        sealed: &[],
        about: "Your public profile: bio and who may see it.",
    },
    Section {
        name: "roles",
        table: "role_grants",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Roles you hold on the site (staff, instructor, moderator…) and their scope.",
    },
    Section {
        name: "sessions",
        table: "sessions",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Your current sign-ins: device (user agent), IP address, when they started and expire.",
    },
    Section {
        name: "parental_consent",
        table: "parental_consents",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "When you signed up under 18: the parent who confirmed, and when.",
    },
    Section {
        name: "security_events",
        table: "security_events",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Your account's security events: sign-ins with a second factor, wrong codes, changes to two-factor sign-in, replies to our texts, with the address and browser of each.",
    },
    Section {
        name: "failed_sign_ins",
        table: "sign_in_guesses",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Failed sign-ins counted against your account: wrong passwords in a row and until when signing in with a password waits, wrong second-factor codes in the current window, and when we last emailed you about them.",
    },
    Section {
        name: "text_message_number",
        table: "sms_numbers",
        filter: "user_id = {u}",
        withheld: &["phone_hash"],
        sealed: &[("phone", super::sms::PHONE_FIELD)],
        about: "The number we text sign-in codes to, when you agreed to it, and whether you replied STOP. It is used for security only.",
    },
    Section {
        name: "linked_sign_in_accounts",
        table: "oidc_links",
        filter: "user_id = {u}",
        withheld: &["access_token", "refresh_token"],
        sealed: &[],
        about: "Accounts at other services (such as Google or Microsoft) you sign in with: the service, its identifier for you, the email address it gave, and when the link was made and last used. The tokens the service issued are left out: they are credentials, and stored encrypted.",
    },
    Section {
        name: "authenticator_app",
        table: "totp_credentials",
        filter: "user_id = {u}",
        withheld: &["secret", "last_step"],
        sealed: &[],
        about: "When you set up an authenticator app. Its secret key is left out: it would let anyone make your codes. Recovery codes are kept only as one-way hashes and are not listed.",
    },
];

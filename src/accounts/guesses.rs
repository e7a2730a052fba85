//! Guessing, counted per account in the database (SEC-6): every instance of
//! the site sees the same counts, and no change of address escapes them.
//!
//! Passwords: after [`FREE_PASSWORD_FAILURES`] wrong passwords in a row,
//! each further try waits twice as long as the one before (15 s, 30 s, 1 min
//! … up to an hour), so guessing gets a few dozen tries a day instead of
//! hundreds an hour. Second-factor codes: at most [`CODE_TRIES`] wrong codes
//! per [`CODE_WINDOW_MINUTES`]. The owner is emailed when either starts.
//!
//! Only the password and code steps wait. A password reset by email, and
//! signing in through an identity provider, are other channels: someone
//! else's guessing never locks the owner out of them, and completing a reset
//! clears the count.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::{sign_in_guesses, users};

/// Wrong passwords in a row before trying starts to wait.
pub const FREE_PASSWORD_FAILURES: i32 = 5;
/// The longest wait between two password tries.
pub const MAX_PASSWORD_WAIT_SECS: i64 = 3600;
/// Wrong second-factor codes allowed per window.
pub const CODE_TRIES: i32 = 5;
pub const CODE_WINDOW_MINUTES: i64 = 10;

type Row = (i32, Option<NaiveDateTime>, i32, Option<NaiveDateTime>, Option<NaiveDateTime>);

fn row(conn: &mut Conn, user_id: i64) -> QueryResult<Option<Row>> {
    sign_in_guesses::table
        .find(user_id)
        .select((
            sign_in_guesses::password_failures,
            sign_in_guesses::password_wait_until,
            sign_in_guesses::code_failures,
            sign_in_guesses::code_window_from,
            sign_in_guesses::notified_at,
        ))
        .first(conn)
        .optional()
}

fn ensure_row(conn: &mut Conn, user_id: i64) -> QueryResult<()> {
    if row(conn, user_id)?.is_none() {
        // Two instances may both insert; the second one's conflict is harmless.
        let _ = diesel::insert_into(sign_in_guesses::table)
            .values(sign_in_guesses::user_id.eq(user_id))
            .execute(conn)
            .or_else(|e| if crate::db::is_unique_violation(&e) { Ok(0) } else { Err(e) })?;
    }
    Ok(())
}

fn seconds_until(t: Option<NaiveDateTime>, now: NaiveDateTime) -> Option<u64> {
    t.filter(|t| *t > now).map(|t| (t - now).num_seconds().max(1) as u64)
}

/// Seconds a password try for this account must still wait, if any.
pub fn password_wait(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Option<u64>> {
    Ok(row(conn, user_id)?.and_then(|(_, until, ..)| seconds_until(until, now)))
}

/// The wait after the `failures`-th wrong password in a row.
fn wait_after(failures: i32) -> Option<Duration> {
    let over = failures - FREE_PASSWORD_FAILURES;
    (over >= 0).then(|| Duration::seconds((15i64 << over.min(20)).min(MAX_PASSWORD_WAIT_SECS)))
}

/// Counts a wrong password; the owner is emailed when the waits begin.
pub fn password_failed(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        ensure_row(conn, user_id)?;
        let (failures, ..) = row(conn, user_id)?.unwrap_or_default();
        let failures = failures.saturating_add(1);
        diesel::update(sign_in_guesses::table.find(user_id))
            .set((
                sign_in_guesses::password_failures.eq(failures),
                sign_in_guesses::password_wait_until.eq(wait_after(failures).map(|w| now + w)),
            ))
            .execute(conn)?;
        if failures == FREE_PASSWORD_FAILURES {
            notify(conn, user_id, "password", now)?;
        }
        Ok(())
    })
}

/// The right password (or a completed reset) ends the streak.
pub fn password_succeeded(conn: &mut Conn, user_id: i64) -> QueryResult<()> {
    diesel::update(sign_in_guesses::table.find(user_id))
        .set((sign_in_guesses::password_failures.eq(0), sign_in_guesses::password_wait_until.eq(None::<NaiveDateTime>)))
        .execute(conn)
        .map(|_| ())
}

/// Seconds before another code may be tried, when this window's tries are used up.
pub fn code_wait(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<Option<u64>> {
    Ok(row(conn, user_id)?.and_then(|(_, _, failures, from, _)| {
        let end = from.map(|f| f + Duration::minutes(CODE_WINDOW_MINUTES));
        if failures >= CODE_TRIES { seconds_until(end, now) } else { None }
    }))
}

/// Counts a wrong code in the current window (a new window starts when the
/// last one is over); the owner is emailed when the tries run out, since
/// whoever is guessing may know the password.
pub fn code_failed(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<()> {
    crate::db::transaction(conn, |conn| {
        ensure_row(conn, user_id)?;
        let (_, _, failures, from, _) = row(conn, user_id)?.unwrap_or_default();
        let current = from.filter(|f| now - *f < Duration::minutes(CODE_WINDOW_MINUTES));
        let (failures, from) = match current {
            Some(f) => (failures.saturating_add(1), f),
            None => (1, now),
        };
        diesel::update(sign_in_guesses::table.find(user_id))
            .set((sign_in_guesses::code_failures.eq(failures), sign_in_guesses::code_window_from.eq(from)))
            .execute(conn)?;
        if failures == CODE_TRIES {
            notify(conn, user_id, "code", now)?;
        }
        Ok(())
    })
}

/// Emails the owner that someone is guessing. Each kind is sent once per
/// streak of passwords (until the right one) or window of codes, so a
/// guesser cannot flood the owner's mailbox.
fn notify(conn: &mut Conn, user_id: i64, what: &str, now: NaiveDateTime) -> QueryResult<()> {
    let Some((email, first)) = users::table
        .find(user_id)
        .select((users::email, users::first_name))
        .first::<(String, String)>(conn)
        .optional()?
    else {
        return Ok(());
    };
    let (subject, detail) = match what {
        "code" => (
            "Someone entered your password but not your second factor",
            "Several wrong second-factor codes were entered after the right password for your account. Whoever did it knows your password: change it now.",
        ),
        _ => (
            "Failed sign-ins to your account",
            "Several wrong passwords in a row were entered for your account. Signing in with a password now waits longer after each wrong try.",
        ),
    };
    crate::notify::enqueue_email(
        conn,
        &email,
        subject,
        "sign_in_guesses",
        serde_json::json!({ "first_name": first, "detail": detail }),
    )?;
    diesel::update(sign_in_guesses::table.find(user_id)).set(sign_in_guesses::notified_at.eq(now)).execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_tries_and_stop_at_an_hour() {
        assert_eq!(wait_after(4), None);
        assert_eq!(wait_after(5), Some(Duration::seconds(15)));
        assert_eq!(wait_after(6), Some(Duration::seconds(30)));
        assert_eq!(wait_after(9), Some(Duration::seconds(240)));
        assert_eq!(wait_after(13), Some(Duration::seconds(3600)));
        assert_eq!(wait_after(i32::MAX), Some(Duration::seconds(3600)));
    }
}

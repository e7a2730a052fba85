//! The notify area's lifecycle hooks (see `crate::lifecycle`): erasure
//! deletes the mail to the learner, both the mail files that name them and
//! the messages still queued (their payload holds the address); retention
//! deletes finished jobs, and the mail files of the messages they carried
//! (the queue itself knows no area).

use chrono::Duration;
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::jobs;
use crate::lifecycle::{AreaHooks, Erased, Erasing, Expiring, Line, Step, failure};

pub const HOOKS: AreaHooks =
    AreaHooks { name: "notify", covers: &[], erase_user: Some(erase_user), export_user: &[], expire: Some(expire) };

fn erase_user(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<Erased> {
    if e.step != Step::DeletePersonalData {
        return Ok(Erased::default());
    }
    let mails = super::remove_outbox_mail_naming(e.outbox, e.email).map_err(|e| failure(format!("outbox: {e}")))?;
    // Mail to the learner in the queue (its payload holds the address). One
    // being sent right now would survive the delete: the step waits for it.
    let pattern = format!("%\"to\":\"{}\"%", e.email.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let to_learner = || {
        jobs::table.filter(jobs::kind.eq(super::SEND_EMAIL)).filter(jobs::payload.like(pattern.clone()).escape('\\'))
    };
    let sending: i64 = to_learner().filter(jobs::status.eq(crate::jobs::status::RUNNING)).count().get_result(conn)?;
    if sending > 0 {
        return Err(failure("a message to the learner is being sent right now; the step is retried once it is out"));
    }
    let records = diesel::delete(to_learner()).execute(conn)?;
    Ok(Erased { records, mails, ..Erased::default() })
}

/// Finished jobs (done or dead) older than the log period, with the mail
/// files of the messages they carried.
fn expire(conn: &mut Conn, x: &Expiring<'_>) -> QueryResult<Vec<Line>> {
    let days = x.periods.log_days;
    if days <= 0 {
        return Ok(Vec::new());
    }
    let before = x.now - Duration::days(days);
    let finished = jobs::table
        .filter(jobs::status.eq_any([crate::jobs::status::DONE, crate::jobs::status::DEAD]))
        .filter(jobs::updated_at.le(before));
    let n = if x.dry_run {
        finished.count().get_result::<i64>(conn)? as usize
    } else {
        let mail: Vec<i64> = finished.clone().filter(jobs::kind.eq(super::SEND_EMAIL)).select(jobs::id).load(conn)?;
        let n = diesel::delete(finished).execute(conn)?;
        // After the rows: a failure here leaves files, never a row without its file.
        super::remove_outbox_mail(x.outbox, &mail).map_err(|e| failure(format!("outbox: {e}")))?;
        n
    };
    Ok(vec![Line {
        category: "logs",
        count: n,
        action: format!("finished jobs (and the mail they carried) from before {}", before.date()),
    }])
}

//! The notify area's lifecycle hooks (see `crate::lifecycle`): erasure
//! deletes the mail to the learner, both the mail files that name them and
//! the messages still queued (their payload holds the address).

use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::jobs;
use crate::lifecycle::{AreaHooks, Erased, Erasing, Step, failure};

pub const HOOKS: AreaHooks =
    AreaHooks { name: "notify", covers: &[], erase_user: Some(erase_user), export_user: &[], expire: None };

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

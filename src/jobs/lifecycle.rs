//! The job queue's lifecycle hook (see `crate::lifecycle`): retention deletes
//! finished jobs, and the mail files of the messages they carried.

use chrono::Duration;
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::jobs;
use crate::lifecycle::{AreaHooks, Expiring, Line, failure};

pub const HOOKS: AreaHooks =
    AreaHooks { name: "jobs", covers: &[], erase_user: None, export_user: &[], expire: Some(expire) };

fn expire(conn: &mut Conn, x: &Expiring<'_>) -> QueryResult<Vec<Line>> {
    let days = x.periods.log_days;
    if days <= 0 {
        return Ok(Vec::new());
    }
    let before = x.now - Duration::days(days);
    let finished = jobs::table
        .filter(jobs::status.eq_any([super::status::DONE, super::status::DEAD]))
        .filter(jobs::updated_at.le(before));
    let n = if x.dry_run {
        finished.count().get_result::<i64>(conn)? as usize
    } else {
        let mail: Vec<i64> =
            finished.clone().filter(jobs::kind.eq(crate::notify::SEND_EMAIL)).select(jobs::id).load(conn)?;
        let n = diesel::delete(finished).execute(conn)?;
        // After the rows: a failure here leaves files, never a row without its file.
        crate::notify::remove_outbox_mail(x.outbox, &mail).map_err(|e| failure(format!("outbox: {e}")))?;
        n
    };
    Ok(vec![Line {
        category: "logs",
        count: n,
        action: format!("finished jobs (and the mail they carried) from before {}", before.date()),
    }])
}

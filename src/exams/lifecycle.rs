//! The exams area's lifecycle hooks (see `crate::lifecycle`): erasure
//! deletes the learner's support needs and bookings (with their results and
//! cases); the copy of their data gives them; retention deletes exam results
//! past their period (CRT-8).

use chrono::Duration;
use diesel::prelude::*;

use crate::db::Conn;
use crate::lifecycle::{AreaHooks, Covered, Erased, Erasing, Expiring, Line, Section, Step};

pub const HOOKS: AreaHooks = AreaHooks {
    name: "exams",
    covers: &[
        Covered::deleted("exam_bookings", "user_id"),
        Covered::deleted("exam_results", "user_id"),
        Covered::deleted("support_needs", "user_id"),
        Covered::kept("malpractice_cases", "opened_by", "staff who opened a case, for the record"),
    ],
    erase_user: Some(erase_user),
    export_user: EXPORT,
    expire: Some(expire),
};

fn erase_user(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<Erased> {
    if e.step != Step::DeletePersonalData {
        return Ok(Erased::default());
    }
    super::erase(conn, e.user_id).map(Erased::records)
}

fn expire(conn: &mut Conn, x: &Expiring<'_>) -> QueryResult<Vec<Line>> {
    let days = x.periods.exam_result_days;
    if days <= 0 {
        return Ok(Vec::new());
    }
    let n = super::purge_results(conn, days, x.held, x.now, x.dry_run)?;
    let before = x.now - Duration::days(days);
    Ok(vec![Line {
        category: "exam results",
        count: n,
        action: format!("exam results received before {}, except under a legal hold", before.date()),
    }])
}

const EXPORT: &[Section] = &[
    Section {
        name: "exam_bookings",
        table: "exam_bookings",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Exams you booked with an exam body: the session, your booking reference, and whether the booking stands or was cancelled.",
    },
    Section {
        name: "exam_results",
        table: "exam_results",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Exam results the exam body sent back: grade, score, whether you passed, and when they arrived. They are kept one year by default.",
    },
    Section {
        name: "support_needs",
        table: "support_needs",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[("needs", super::NEEDS_FIELD), ("adjustments", super::ADJUSTMENTS_FIELD)],
        about: "The support needs and adjustments you recorded, stored encrypted and given back here readable.",
    },
];

//! Sponsors: seats allocated in a run (by staff for now), codes that redeem
//! them, email invitations, and redemption, where the learner sees exactly
//! what the sponsor will see and decides. A decline is never revealed to the
//! sponsor: the seat is used either way and the gate simply yields nothing.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::Rng;
use serde_json::json;

use super::ledger::{Action, Entry, Evidence};
use super::partners::Partner;
use super::{PartnerKind, Purpose, run_scope, texts};
use crate::db::Conn;
use crate::db::schema::{course_runs, courses, sponsor_allocations, sponsor_codes, sponsorships};
use crate::kernel::SessionUser;
use crate::learning::model::{Course, Run};
use crate::learning::service::{self as learning, LearningError};
use crate::notify::enqueue_email;

#[derive(Debug, thiserror::Error)]
pub enum SponsorError {
    #[error("{0}")]
    Invalid(String),
    #[error("This code is not valid. Check it against your invitation.")]
    UnknownCode,
    #[error("This code has already been used.")]
    Used,
    #[error("This code has expired. Ask your sponsor for a new one.")]
    Expired,
    #[error(transparent)]
    Learning(#[from] LearningError),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sponsor_allocations)]
pub struct Allocation {
    pub id: i64,
    pub partner_id: i64,
    pub run_id: i64,
    pub seats: i32,
    pub expires_at: NaiveDateTime,
    pub note: String,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sponsor_codes)]
pub struct Code {
    pub id: i64,
    pub allocation_id: i64,
    pub code: String,
    pub invited_email: Option<String>,
    pub invited_at: Option<NaiveDateTime>,
    pub redeemed_by: Option<i64>,
    pub redeemed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// Codes avoid look-alike characters so they can be typed from paper.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let part = |rng: &mut rand::rngs::ThreadRng| -> String {
        (0..4).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
    };
    format!("{}-{}-{}", part(&mut rng), part(&mut rng), part(&mut rng))
}

pub fn normalise_code(code: &str) -> String {
    code.trim().to_uppercase().replace(' ', "")
}

/// Staff allocate `seats` seats in a run to a sponsor; one code per seat.
/// Seats asked for in one allocation.
pub struct SeatRequest<'a> {
    pub run_id: i64,
    pub seats: i32,
    pub expires_at: NaiveDateTime,
    pub note: &'a str,
    pub by: Option<i64>,
}

pub fn allocate(
    conn: &mut Conn,
    partner: &Partner,
    request: &SeatRequest<'_>,
    now: NaiveDateTime,
) -> Result<Allocation, SponsorError> {
    let SeatRequest { run_id, seats, expires_at, note, by } = *request;
    if partner.kind() != PartnerKind::Sponsor {
        return Err(SponsorError::Invalid("Seats can only be allocated to a sponsor.".into()));
    }
    if !(1..=10_000).contains(&seats) {
        return Err(SponsorError::Invalid("Allocate between 1 and 10,000 seats.".into()));
    }
    if expires_at <= now {
        return Err(SponsorError::Invalid("The codes' expiry date must be in the future.".into()));
    }
    crate::db::transaction(conn, |conn| {
        course_runs::table
            .find(run_id)
            .select(course_runs::id)
            .first::<i64>(conn)
            .optional()?
            .ok_or_else(|| SponsorError::Invalid("That course run does not exist.".into()))?;
        let id: i64 = diesel::insert_into(sponsor_allocations::table)
            .values((
                sponsor_allocations::partner_id.eq(partner.id),
                sponsor_allocations::run_id.eq(run_id),
                sponsor_allocations::seats.eq(seats),
                sponsor_allocations::expires_at.eq(expires_at),
                sponsor_allocations::note.eq(note.trim()),
                sponsor_allocations::created_by.eq(by),
                sponsor_allocations::created_at.eq(now),
            ))
            .returning(sponsor_allocations::id)
            .get_result(conn)?;
        for _ in 0..seats {
            diesel::insert_into(sponsor_codes::table)
                .values((
                    sponsor_codes::allocation_id.eq(id),
                    sponsor_codes::code.eq(new_code()),
                    sponsor_codes::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(sponsor_allocations::table.find(id).select(Allocation::as_select()).first(conn)?)
    })
}

/// A sponsor's allocations with course title and run key, and how many codes
/// are still free to hand out (neither invited nor redeemed), newest first.
pub fn allocations(conn: &mut Conn, partner: &Partner) -> QueryResult<Vec<(Allocation, String, String, i64)>> {
    allocations_page(conn, partner, 0, i64::MAX)
}

/// [`allocations`], `limit` of them from `offset`: the free codes are
/// counted for those only.
pub fn allocations_page(
    conn: &mut Conn,
    partner: &Partner,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<(Allocation, String, String, i64)>> {
    let rows: Vec<(Allocation, String, String)> = sponsor_allocations::table
        .inner_join(course_runs::table.inner_join(courses::table))
        .filter(sponsor_allocations::partner_id.eq(partner.id))
        .order(sponsor_allocations::id.desc())
        .limit(limit)
        .offset(offset)
        .select((Allocation::as_select(), courses::title, course_runs::run_key))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|(a, _, _)| a.id).collect();
    let free: std::collections::HashMap<i64, i64> = sponsor_codes::table
        .filter(sponsor_codes::allocation_id.eq_any(&ids))
        .filter(sponsor_codes::invited_email.is_null())
        .filter(sponsor_codes::redeemed_by.is_null())
        .group_by(sponsor_codes::allocation_id)
        .select((sponsor_codes::allocation_id, diesel::dsl::count_star()))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    Ok(rows.into_iter().map(|(a, title, key)| (a.clone(), title, key, free.get(&a.id).copied().unwrap_or(0))).collect())
}

/// Codes not yet handed out, for the sponsor to distribute themselves.
pub fn free_codes(conn: &mut Conn, allocation: &Allocation) -> QueryResult<Vec<String>> {
    sponsor_codes::table
        .filter(sponsor_codes::allocation_id.eq(allocation.id))
        .filter(sponsor_codes::invited_email.is_null())
        .filter(sponsor_codes::redeemed_by.is_null())
        .order(sponsor_codes::id)
        .select(sponsor_codes::code)
        .load(conn)
}

pub fn allocation(conn: &mut Conn, partner: &Partner, id: i64) -> QueryResult<Option<Allocation>> {
    sponsor_allocations::table
        .filter(sponsor_allocations::id.eq(id))
        .filter(sponsor_allocations::partner_id.eq(partner.id))
        .select(Allocation::as_select())
        .first(conn)
        .optional()
}

/// Emails an invitation with a free code. Whether it is later redeemed (and
/// whether the learner agreed to share) is not shown to the sponsor.
pub fn invite(
    conn: &mut Conn,
    partner: &Partner,
    allocation: &Allocation,
    email: &str,
    now: NaiveDateTime,
) -> Result<(), SponsorError> {
    let email = email.trim();
    if !email.contains('@') || email.len() > 254 || email.contains(char::is_whitespace) {
        return Err(SponsorError::Invalid(format!("“{email}” is not an email address.")));
    }
    if allocation.expires_at <= now {
        return Err(SponsorError::Invalid("These seats have expired.".into()));
    }
    crate::db::transaction(conn, |conn| {
        let code: Option<Code> = sponsor_codes::table
            .filter(sponsor_codes::allocation_id.eq(allocation.id))
            .filter(sponsor_codes::invited_email.is_null())
            .filter(sponsor_codes::redeemed_by.is_null())
            .order(sponsor_codes::id)
            .select(Code::as_select())
            .first(conn)
            .optional()?;
        let code = code.ok_or_else(|| SponsorError::Invalid("Every seat of this allocation is taken.".into()))?;
        let claimed = diesel::update(sponsor_codes::table.find(code.id).filter(sponsor_codes::invited_email.is_null()))
            .set((sponsor_codes::invited_email.eq(email), sponsor_codes::invited_at.eq(now)))
            .execute(conn)?;
        if claimed != 1 {
            return Err(SponsorError::Invalid("That seat was just taken; please try again.".into()));
        }
        let (title, slug): (String, String) = course_runs::table
            .inner_join(courses::table)
            .filter(course_runs::id.eq(allocation.run_id))
            .select((courses::title, courses::slug))
            .first(conn)?;
        enqueue_email(
            conn,
            email,
            &format!("{} offers you a place in {title}", partner.name),
            "sponsor_invitation",
            json!({
                "sponsor": partner.name, "course": title, "course_path": format!("/courses/{slug}"),
                "code": code.code, "path": format!("/redeem?code={}", code.code),
                "expires": allocation.expires_at.format("%e %B %Y").to_string(),
            }),
        )?;
        Ok(())
    })
}

/// What a code offers, for the redemption page.
pub struct Offer {
    pub code: Code,
    pub allocation: Allocation,
    pub partner: Partner,
    pub run: Run,
    pub course: Course,
}

pub fn offer(conn: &mut Conn, code: &str, now: NaiveDateTime) -> Result<Offer, SponsorError> {
    let code = normalise_code(code);
    let found: Option<Code> =
        sponsor_codes::table.filter(sponsor_codes::code.eq(&code)).select(Code::as_select()).first(conn).optional()?;
    let code = found.ok_or(SponsorError::UnknownCode)?;
    if code.redeemed_by.is_some() {
        return Err(SponsorError::Used);
    }
    let allocation: Allocation =
        sponsor_allocations::table.find(code.allocation_id).select(Allocation::as_select()).first(conn)?;
    if allocation.expires_at <= now {
        return Err(SponsorError::Expired);
    }
    let partner = super::partners::by_id(conn, allocation.partner_id)?;
    let (run, course) = learning::run_by_id(conn, allocation.run_id)?;
    Ok(Offer { code, allocation, partner, run, course })
}

/// The learner's decisions on the redemption form.
pub struct Decision {
    pub share: bool,
    /// Separate, never bundled, unchecked by default (SHR-1).
    pub marketing: bool,
    pub text_id: i64,
    pub marketing_text_id: Option<i64>,
}

/// Redeems a code: enrolls the learner on the sponsored seat (verified
/// track), records the sponsorship and the consent decision in one
/// transaction.
pub fn redeem(
    conn: &mut Conn,
    user: &SessionUser,
    code: &str,
    decision: &Decision,
    evidence: &Evidence,
    now: NaiveDateTime,
) -> Result<Course, SponsorError> {
    crate::db::transaction(conn, |conn| {
        let offer = offer(conn, code, now)?;
        let text = texts::by_id(conn, decision.text_id)
            .optional()?
            .filter(|t| text_fits(t, &offer.partner, Purpose::Sponsorship))
            .ok_or_else(|| SponsorError::Invalid("The consent text you saw is not valid for this sponsor.".into()))?;
        let taken =
            diesel::update(sponsor_codes::table.find(offer.code.id).filter(sponsor_codes::redeemed_by.is_null()))
                .set((sponsor_codes::redeemed_by.eq(user.id), sponsor_codes::redeemed_at.eq(now)))
                .execute(conn)?;
        if taken != 1 {
            return Err(SponsorError::Used);
        }
        learning::enroll_paid_by_other(conn, user, &offer.course, &offer.run.run_key, now)?;
        let already: i64 = sponsorships::table
            .filter(sponsorships::partner_id.eq(offer.partner.id))
            .filter(sponsorships::user_id.eq(user.id))
            .filter(sponsorships::run_id.eq(offer.run.id))
            .count()
            .get_result(conn)?;
        if already > 0 {
            return Err(SponsorError::Invalid("This sponsor already sponsors your place in this course.".into()));
        }
        diesel::insert_into(sponsorships::table)
            .values((
                sponsorships::partner_id.eq(offer.partner.id),
                sponsorships::user_id.eq(user.id),
                sponsorships::run_id.eq(offer.run.id),
                sponsorships::code_id.eq(offer.code.id),
                sponsorships::created_at.eq(now),
            ))
            .execute(conn)?;
        let scope = run_scope(offer.run.id);
        // A minor's yes goes to their parent to decide.
        super::parents::grant_or_ask(
            conn,
            Entry {
                user_id: user.id,
                partner_id: Some(offer.partner.id),
                purpose: Purpose::Sponsorship.as_str(),
                scope: &scope,
                action: if decision.share { Action::Grant } else { Action::Decline },
                categories: &Purpose::Sponsorship.ceiling(),
                text: Some(&text),
                evidence,
            },
            now,
        )?;
        if decision.marketing {
            record_marketing(conn, user.id, &offer.partner, decision.marketing_text_id, evidence, now)?;
        }
        Ok(offer.course)
    })
}

/// A text may be recorded for a partner when it is that partner's own or
/// its kind's, for the purpose.
pub fn text_fits(text: &texts::ConsentText, partner: &Partner, purpose: Purpose) -> bool {
    text.purpose == purpose.as_str()
        && (text.partner_id == Some(partner.id)
            || (text.partner_id.is_none() && text.partner_kind.as_deref() == Some(partner.kind().as_str())))
}

/// Records the separate partner-marketing consent.
pub fn record_marketing(
    conn: &mut Conn,
    user_id: i64,
    partner: &Partner,
    text_id: Option<i64>,
    evidence: &Evidence,
    now: NaiveDateTime,
) -> Result<(), SponsorError> {
    let text = match text_id {
        Some(id) => texts::by_id(conn, id).optional()?,
        None => None,
    }
    .filter(|t| text_fits(t, partner, Purpose::PartnerMarketing))
    .ok_or_else(|| SponsorError::Invalid("The marketing consent text you saw is not valid.".into()))?;
    super::parents::grant_or_ask(
        conn,
        Entry {
            user_id,
            partner_id: Some(partner.id),
            purpose: Purpose::PartnerMarketing.as_str(),
            scope: "all",
            action: Action::Grant,
            categories: &Purpose::PartnerMarketing.ceiling(),
            text: Some(&text),
            evidence,
        },
        now,
    )?;
    Ok(())
}

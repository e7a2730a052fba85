//! Consent texts: the exact words a learner is shown, per partner (or per
//! partner kind) + purpose + locale, versioned and never edited in place.
//! A ledger row names the version and SHA-256 of the text it was given
//! under, and keeps its own categories, so a new version never extends a
//! consent given to an old one.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::partners::Partner;
use super::{PartnerKind, Purpose};
use crate::db::Conn;
use crate::db::schema::consent_texts;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = consent_texts)]
pub struct ConsentText {
    pub id: i64,
    pub partner_id: Option<i64>,
    pub partner_kind: Option<String>,
    pub purpose: String,
    pub locale: String,
    pub version: i32,
    pub body: String,
    pub sha256: String,
    pub created_by: Option<i64>,
    pub created_at: NaiveDateTime,
}

pub fn sha256_hex(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// Whom a text is written for: one partner, or every partner of a kind.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    Partner(&'a Partner),
    Kind(PartnerKind),
}

fn latest(conn: &mut Conn, audience: Audience<'_>, purpose: Purpose, locale: &str) -> QueryResult<Option<ConsentText>> {
    let q = consent_texts::table
        .filter(consent_texts::purpose.eq(purpose.as_str()))
        .filter(consent_texts::locale.eq(locale))
        .order(consent_texts::version.desc())
        .select(ConsentText::as_select());
    match audience {
        Audience::Partner(p) => q.filter(consent_texts::partner_id.eq(p.id)).first(conn).optional(),
        Audience::Kind(k) => q
            .filter(consent_texts::partner_id.is_null())
            .filter(consent_texts::partner_kind.eq(k.as_str()))
            .first(conn)
            .optional(),
    }
}

/// The text to show now: the partner's own, else its kind's; the locale
/// asked for, else English.
pub fn current(conn: &mut Conn, partner: &Partner, purpose: Purpose, locale: &str) -> QueryResult<Option<ConsentText>> {
    let kind = partner.kind();
    for loc in [locale, "en"] {
        if let Some(t) = latest(conn, Audience::Partner(partner), purpose, loc)? {
            return Ok(Some(t));
        }
        if let Some(t) = latest(conn, Audience::Kind(kind), purpose, loc)? {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

pub fn by_id(conn: &mut Conn, id: i64) -> QueryResult<ConsentText> {
    consent_texts::table.find(id).select(ConsentText::as_select()).first(conn)
}

/// Publishes a new version (the previous ones stay, with the consents given
/// under them).
pub fn publish(
    conn: &mut Conn,
    audience: Audience<'_>,
    purpose: Purpose,
    locale: &str,
    body: &str,
    by: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<ConsentText> {
    crate::db::transaction(conn, |conn| {
        let previous = latest(conn, audience, purpose, locale)?.map_or(0, |t| t.version);
        let (partner_id, kind) = match audience {
            Audience::Partner(p) => (Some(p.id), None),
            Audience::Kind(k) => (None, Some(k.as_str())),
        };
        let id: i64 = diesel::insert_into(consent_texts::table)
            .values((
                consent_texts::partner_id.eq(partner_id),
                consent_texts::partner_kind.eq(kind),
                consent_texts::purpose.eq(purpose.as_str()),
                consent_texts::locale.eq(locale),
                consent_texts::version.eq(previous + 1),
                consent_texts::body.eq(body),
                consent_texts::sha256.eq(sha256_hex(body)),
                consent_texts::created_by.eq(by),
                consent_texts::created_at.eq(now),
            ))
            .returning(consent_texts::id)
            .get_result(conn)?;
        by_id(conn, id)
    })
}

/// Every version, newest first, for the staff page.
pub fn all(conn: &mut Conn) -> QueryResult<Vec<ConsentText>> {
    consent_texts::table
        .order((consent_texts::purpose, consent_texts::id.desc()))
        .select(ConsentText::as_select())
        .load(conn)
}

/// The default texts. None lists fields: every form shows, beneath the
/// text, the list generated from the categories the consent covers
/// (`partners::offered`), the one place they are written.
const DEFAULTS: [(PartnerKind, Purpose, &str); 7] = [
    (
        PartnerKind::Member,
        Purpose::MemberSharing,
        "The institution that runs this course receives records of your study in its own courses. Without your agreement they do not identify you: they carry a code made for the institution alone. If you agree, they come with the details listed here, so that it can recognise you as its learner. If you do not agree, you are still enrolled and lose nothing. You can withdraw at any time on your Sharing page; the institution receives nothing new about you from then on.",
    ),
    (
        PartnerKind::Sponsor,
        Purpose::Sponsorship,
        "Your sponsor pays for your place in this course. If you agree, your sponsor sees the details listed here, for the sponsored course only, and nothing else. If you do not agree, you can still take the course; your sponsor is not told. You can withdraw at any time on your Sharing page, and your sponsor stops seeing them at once.",
    ),
    (
        PartnerKind::Member,
        Purpose::PartnerMarketing,
        "If you agree, the institution may email you about its other courses and programmes, using the details listed here. This is separate from your course records, is never required, and you can withdraw at any time on your Sharing page.",
    ),
    (
        PartnerKind::Sponsor,
        Purpose::PartnerMarketing,
        "If you agree, your sponsor may email you about its own offers, using the details listed here. This is separate from progress reports, is never required, and you can withdraw at any time on your Sharing page.",
    ),
    (
        PartnerKind::ExamBody,
        Purpose::ExamRegistration,
        "To register you as a candidate, the exam body receives the details listed here, with your booking reference and the session you chose. It needs them to admit you to the exam and to issue your result, and receives nothing else about you. If you cancel, it is told the booking is cancelled. You can withdraw on your Sharing page; the exam body then receives nothing new about you, which may mean it cannot admit you.",
    ),
    (
        PartnerKind::ExamBody,
        Purpose::ExamSupport,
        "If you agree, the exam body also receives what is listed here, so that it can arrange your adjustments for this exam. This is separate from your registration and never required; without it you are registered just the same, and the exam body learns nothing about your needs. You can withdraw at any time on your Sharing page.",
    ),
    (
        PartnerKind::Sponsor,
        Purpose::ExamResults,
        "Your sponsor paid for your course. If you agree, it sees the details listed here about your exam for that course. If you do not agree, your sponsor sees no result and is not told that you declined. You can withdraw at any time on your Sharing page, and your sponsor stops seeing your result at once.",
    ),
];

/// Earlier default texts, which listed fields in their own words (and
/// said a sponsor saw "nothing else" while the list beneath included name
/// and email). Where one is still the latest version, never replaced by
/// an operator's own, the current default is published after it.
const SUPERSEDED: [(PartnerKind, Purpose, &str); 7] = [
    (
        PartnerKind::Member,
        Purpose::MemberSharing,
        "The institution that runs this course receives a record of your enrollment, your activity and your results in its own courses. If you agree, it also receives the profile details listed here, so that it can recognise you as its learner. If you do not agree, you are still enrolled and lose nothing; the institution then receives only records that do not identify you. You can withdraw at any time on your Sharing page; the institution receives nothing new about you from then on.",
    ),
    (
        PartnerKind::Sponsor,
        Purpose::Sponsorship,
        "Your sponsor pays for your place in this course. If you agree, your sponsor sees that you enrolled, when you were last active, how far you have progressed and whether you completed the course, for the sponsored course only, and nothing else. If you do not agree, you can still take the course; your sponsor is not told. You can withdraw at any time on your Sharing page, and your sponsor stops seeing your progress at once.",
    ),
    (
        PartnerKind::Member,
        Purpose::PartnerMarketing,
        "If you agree, the institution may email you about its other courses and programmes using your name and email address. This is separate from your course records, is never required, and you can withdraw at any time on your Sharing page.",
    ),
    (
        PartnerKind::Sponsor,
        Purpose::PartnerMarketing,
        "If you agree, your sponsor may email you about its own offers using your name and email address. This is separate from progress reports, is never required, and you can withdraw at any time on your Sharing page.",
    ),
    (
        PartnerKind::ExamBody,
        Purpose::ExamRegistration,
        "To register you as a candidate, the exam body receives your full name, your email address and your date of birth, with your booking reference and the session you chose. It needs these to admit you to the exam and to issue your result, and receives nothing else about you. If you cancel, it is told the booking is cancelled. You can withdraw on your Sharing page; the exam body then receives nothing new about you, which may mean it cannot admit you.",
    ),
    (
        PartnerKind::ExamBody,
        Purpose::ExamSupport,
        "If you agree, the exam body also receives the support needs and adjustments you recorded on Lyceum, so that it can arrange them for this exam. This is separate from your registration and never required; without it you are registered just the same, and the exam body learns nothing about your needs. You can withdraw at any time on your Sharing page.",
    ),
    (
        PartnerKind::Sponsor,
        Purpose::ExamResults,
        "Your sponsor paid for your course. If you agree, it sees the result of your exam for that course: your name, your email address, your grade and score, and whether you passed. If you do not agree, your sponsor sees no result and is not told that you declined. You can withdraw at any time on your Sharing page, and your sponsor stops seeing your result at once.",
    ),
];

/// Publishes the default texts where none exists yet, and as a new version
/// where the latest is an earlier default (consents given under it keep it).
pub fn ensure_defaults(conn: &mut Conn, now: NaiveDateTime) -> QueryResult<()> {
    for (kind, purpose, body) in DEFAULTS {
        let stale = match latest(conn, Audience::Kind(kind), purpose, "en")? {
            None => true,
            Some(t) => {
                t.created_by.is_none()
                    && SUPERSEDED.iter().any(|(k, p, old)| *k == kind && *p == purpose && t.body == *old)
            }
        };
        if stale {
            publish(conn, Audience::Kind(kind), purpose, "en", body, None, now)?;
        }
    }
    Ok(())
}

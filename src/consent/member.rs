//! Member sharing at enrollment (CRS-3): the enroll page lists exactly which
//! fields the member institution will receive; the learner's decision is
//! recorded with the text shown. Declining never blocks enrolling (RGT-4):
//! the member then receives de-identified records only.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ledger::{Action, Entry, Evidence};
use super::partners::{self, Partner};
use super::sponsors::text_fits;
use super::texts::{self, ConsentText};
use super::{Categories, Category, Purpose, run_scope};
use crate::db::Conn;
use crate::learning::hooks::SharingAnswer;
use crate::learning::model::Member;

pub struct MemberOffer {
    pub partner: Partner,
    /// Everything the member receives with consent.
    pub with_consent: Categories,
    /// What it receives without (de-identified).
    pub without_consent: Categories,
    pub text: Option<ConsentText>,
}

impl MemberOffer {
    /// Consent changes anything only when the member asks for profile fields.
    pub fn asks_consent(&self) -> bool {
        self.with_consent.iter().any(Category::is_identity) && self.text.is_some()
    }

    pub fn json(&self) -> serde_json::Value {
        let labels = |c: &Categories| c.iter().map(|c| c.label()).collect::<Vec<_>>();
        let profile = Categories::of(self.with_consent.iter().filter(|c| c.is_identity()));
        serde_json::json!({
            "partner": self.partner.name,
            "asks": self.asks_consent(),
            "profile": labels(&profile),
            "always": labels(&self.without_consent),
            "always_in_words": self.without_consent.in_words(),
            "text": self.text.as_ref().map(|t| t.body.clone()),
            "text_id": self.text.as_ref().map(|t| t.id),
            "version": self.text.as_ref().map(|t| t.version),
        })
    }
}

pub fn offer(conn: &mut Conn, member: &Member) -> QueryResult<MemberOffer> {
    let partner = partners::for_member(conn, member)?;
    let text = texts::current(conn, &partner, Purpose::MemberSharing, "en")?;
    Ok(MemberOffer {
        with_consent: partners::member_offer(&partner),
        without_consent: super::sharing::deidentified(),
        partner,
        text,
    })
}

/// The sharing question on the course page (learning's `sharing_offer`).
pub fn offer_json(conn: &mut Conn, member: &Member) -> QueryResult<serde_json::Value> {
    Ok(offer(conn, member)?.json())
}

/// The answer on the enroll form, recorded when the member asks for consent
/// (learning's `sharing_answered`), as the learner's own on the web.
pub fn answered_at_enrollment(
    conn: &mut Conn,
    member: &Member,
    answer: &SharingAnswer<'_>,
    now: NaiveDateTime,
) -> QueryResult<Result<(), String>> {
    let offer = offer(conn, member)?;
    match (offer.asks_consent(), answer.share) {
        (true, Some(share)) => {
            let evidence = Evidence::learner_web(answer.user_id, answer.client);
            decide(conn, answer.user_id, &offer, answer.run_id, share, &evidence, now)
        }
        _ => Ok(Ok(())),
    }
}

/// Records the decision made on the enroll form. `text_id` is the version
/// the page showed; it must belong to this member (or to member institutions).
pub fn decide(
    conn: &mut Conn,
    user_id: i64,
    offer: &MemberOffer,
    run_id: i64,
    (share, text_id): (bool, Option<i64>),
    evidence: &Evidence,
    now: NaiveDateTime,
) -> QueryResult<Result<(), String>> {
    let text = match text_id {
        Some(id) => texts::by_id(conn, id).optional()?,
        None => None,
    }
    .filter(|t| text_fits(t, &offer.partner, Purpose::MemberSharing));
    let Some(text) = text else {
        return Ok(Err("The sharing text you saw is no longer valid; please reload the page and choose again.".into()));
    };
    let scope = run_scope(run_id);
    // A minor's yes goes to their parent to decide.
    super::parents::grant_or_ask(
        conn,
        Entry {
            user_id,
            partner_id: Some(offer.partner.id),
            purpose: Purpose::MemberSharing.as_str(),
            scope: &scope,
            action: if share { Action::Grant } else { Action::Decline },
            categories: &offer.with_consent,
            text: Some(&text),
            evidence,
        },
        now,
    )?;
    Ok(Ok(()))
}

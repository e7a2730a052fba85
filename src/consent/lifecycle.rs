//! The consent area's lifecycle hooks (see `crate::lifecycle`): erasure
//! withdraws the learner's consents in the ledger, tells every partner that
//! received their data, and deletes their current sharing state and
//! sponsorships; the ledger and the disclosure manifests stay as evidence
//! (the learner's own entries taken out of them, counted). The copy of
//! their data gives all of it.

use diesel::prelude::*;
use serde_json::json;

use super::Categories;
use super::ledger::{self, Action, Entry, Evidence};
use crate::db::Conn;
use crate::db::schema::{
    consents, enrollments, parent_sharing_requests, partners, sharing_restrictions, sponsor_codes, sponsorships,
};
use crate::lifecycle::{AreaHooks, Covered, Erased, Erasing, Section, Step};

const EVIDENCE: &str = "evidence of what was decided or given, kept for good (hash-chained, never changed)";

pub const HOOKS: AreaHooks = AreaHooks {
    name: "consent",
    covers: &[
        Covered::deleted("consents", "user_id"),
        Covered::deleted("sharing_restrictions", "user_id"),
        Covered::deleted("parent_sharing_requests", "user_id"),
        Covered::deleted("sponsorships", "user_id"),
        Covered::kept("consent_ledger", "user_id", EVIDENCE),
        Covered::kept("consent_ledger", "actor_user_id", EVIDENCE),
        Covered::kept(
            "manifests",
            "recorded_by",
            "who entered a legal disclosure: the record of every disclosure stays (the erased learner's own entries \
             are taken out of the manifests' learner sets, counted)",
        ),
        Covered::kept("departures", "user_id", "the notices that tell partners to delete the learner's records"),
        Covered::kept(
            "sponsor_codes",
            "redeemed_by",
            "a sponsor's count of seats used; the invited address is blanked",
        ),
        Covered::kept("consent_texts", "created_by", "staff who wrote a consent text, for the record"),
        Covered::kept("sponsor_allocations", "created_by", "staff who allocated seats, for the record"),
        Covered::kept("partner_api_keys", "created_by", "staff who issued a key, for the record"),
        Covered::kept("partner_destinations", "created_by", "staff who set up a destination, for the record"),
        Covered::kept("partner_sends", "requested_by", "staff who asked for a send, for the record"),
    ],
    erase_user: Some(erase_user),
    export_user: EXPORT,
    expire: None,
};

fn erase_user(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<Erased> {
    let user_id = e.user_id;
    match e.step {
        Step::WithdrawConsents => {
            let live: Vec<(i64, String, String, String)> = consents::table
                .filter(consents::user_id.eq(user_id))
                .filter(consents::status.eq(super::ConsentStatus::Granted.as_str()))
                .select((consents::partner_id, consents::purpose, consents::scope, consents::categories))
                .load(conn)?;
            let evidence = Evidence {
                method: "erasure",
                actor: "learner",
                actor_user_id: Some(user_id),
                actor_name: None,
                note: Some(format!("Account erasure, request #{}", e.request_id)),
                ip: None,
                user_agent: None,
            };
            for (partner_id, purpose, scope, categories) in &live {
                let categories = Categories::parse(categories);
                ledger::append(
                    conn,
                    Entry {
                        user_id,
                        partner_id: Some(*partner_id),
                        purpose,
                        scope,
                        action: Action::Withdraw,
                        categories: &categories,
                        text: None,
                        evidence: &evidence,
                    },
                    e.now,
                )?;
            }
            Ok(Erased::detail(format!("{} consent(s) withdrawn in the ledger.", live.len())))
        }
        Step::NotifyPartners => notify_partners(conn, e).map(Erased::detail),
        Step::DeletePersonalData => {
            let mut n =
                diesel::delete(parent_sharing_requests::table.filter(parent_sharing_requests::user_id.eq(user_id)))
                    .execute(conn)?;
            n += diesel::delete(sponsorships::table.filter(sponsorships::user_id.eq(user_id))).execute(conn)?;
            n += diesel::update(sponsor_codes::table.filter(sponsor_codes::invited_email.eq(e.email)))
                .set(sponsor_codes::invited_email.eq(None::<String>))
                .execute(conn)?;
            n += diesel::delete(consents::table.filter(consents::user_id.eq(user_id))).execute(conn)?;
            n += diesel::delete(sharing_restrictions::table.filter(sharing_restrictions::user_id.eq(user_id)))
                .execute(conn)?;
            Ok(Erased::records(n))
        }
        _ => Ok(Erased::default()),
    }
}

/// Every identifier any partner holds departs, on every channel it came by,
/// and each partner that received the learner's data is emailed a notice.
fn notify_partners(conn: &mut Conn, e: &Erasing<'_>) -> QueryResult<String> {
    let user_id = e.user_id;
    let departed = super::departures::reconcile(conn, user_id, super::departures::Reason::Erased, true, e.now)?;
    let sent: Vec<super::manifests::Disclosure> =
        super::manifests::disclosures_of(conn, user_id, i64::MAX)?.into_iter().filter(|d| d.delivered).collect();
    let told: Vec<i64> =
        sent.iter().filter_map(|d| d.partner_id).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut names = Vec::new();
    for partner_id in told {
        let partner = super::partners::by_id(conn, partner_id)?;
        let theirs = || sent.iter().filter(|d| d.partner_id == Some(partner_id));
        // The identifiers this partner holds: the username in identified records, the pseudonym in the others.
        let identified = theirs().filter(|d| d.fields.contains("learner.username")).count() as i64;
        // And the code of each run whose records reached it without identity.
        let keys: Vec<String> = theirs().filter(|d| d.basis == "deidentified").map(|d| d.record_key.clone()).collect();
        let eids: Vec<i64> = keys.iter().filter_map(|k| k.strip_prefix("enrollment:")?.parse().ok()).collect();
        let runs: Vec<i64> = enrollments::table
            .filter(enrollments::id.eq_any(&eids))
            .select(enrollments::run_id)
            .distinct()
            .load(conn)?;
        let codes: Vec<String> = runs.iter().map(|run| partner.run_pseudonym(user_id, *run)).collect();
        let contact: String = partners::table.find(partner_id).select(partners::contact_email).first(conn)?;
        // Through the job queue: durable, retried, and visible to staff when it fails.
        crate::notify::enqueue_email(
            conn,
            &contact,
            "Erasure notice: delete a learner's data",
            "erasure_notice",
            json!({
                "partner": partner.name,
                "username": (identified > 0).then_some(e.username),
                "pseudonym": partner.pseudonym(user_id),
                "named": partner.named_pseudonym(user_id),
                "codes": codes,
                "request": e.request_id,
            }),
        )?;
        names.push(partner.name);
    }
    // Once the partners are told, the learner's entries leave the manifests:
    // out of their sets, counted, their digests kept, so the chain verifies.
    super::manifests::erase(conn, user_id)?;
    Ok(if names.is_empty() {
        "No partner ever received this learner's data.".into()
    } else {
        format!(
            "Erasure notice sent to {}; {departed} departure(s) queued for their feeds and pushes.",
            names.join(", ")
        )
    })
}

const EXPORT: &[Section] = &[
    Section {
        name: "consent_ledger",
        table: "consent_ledger",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Every sharing decision you (or a parent, or staff for you) made: grant, decline, withdraw, restrict, lift, with the exact text's version and SHA-256, the time, IP address, device and method. Rows are chained by hash so none can be changed unnoticed.",
    },
    Section {
        name: "consents",
        table: "consents",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Your sharing decisions as they stand now, per partner and purpose.",
    },
    Section {
        name: "sharing_restriction",
        table: "sharing_restrictions",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Whether you froze all sharing, and since when.",
    },
    Section {
        name: "disclosures",
        // Read from the manifests by `privacy::export`, one row per record.
        table: "manifests",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Every record about you that was given to a partner: which partner, which fields, on what basis, when.",
    },
    Section {
        name: "sponsorships",
        table: "sponsorships",
        filter: "user_id = {u}",
        withheld: &[],
        sealed: &[],
        about: "Courses a sponsor paid for you.",
    },
    Section {
        name: "sponsor_codes",
        table: "sponsor_codes",
        filter: "redeemed_by = {u}",
        withheld: &[],
        sealed: &[],
        about: "Sponsor codes you redeemed.",
    },
    Section {
        name: "parent_sharing_requests",
        table: "parent_sharing_requests",
        filter: "user_id = {u}",
        withheld: &["token_hash"],
        sealed: &[],
        about: "Sharing decisions that waited for a parent, and what the parent decided.",
    },
];

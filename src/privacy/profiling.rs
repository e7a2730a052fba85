//! Profiling (RGT-3): every use the platform makes of a person's activity to
//! measure or tailor, in one list, and the objection that stops them all.
//!
//! [`PROFILING_USES`] is the only description of what profiling there is: the
//! learner's privacy page and the email and profiling settings render it, and
//! each place in the code that profiles asks [`allows`] with its own
//! [`Use`], so a use needs a variant here (the match in [`allows`] is
//! exhaustive, and a test checks each variant is listed once) and the pages
//! cannot say less than the code does.
//!
//! An objection is a `communication_preferences` choice; setting or
//! withdrawing it is recorded as a data request carried out at once
//! (`comms::set`).

use diesel::prelude::*;
use serde::Serialize;

use crate::db::Conn;
use crate::db::schema::campaign_events;

use super::comms::Preferences;

/// A use of a person's activity that is profiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Use {
    /// The tracking image in newsletters (`comms::newsletter_payload`, `comms::record_open`).
    NewsletterOpens,
    /// Newsletter links passed through `/c/…` (`comms::newsletter_payload`, `comms::record_click`).
    NewsletterClicks,
    /// Page views recorded under the visitor id (`cookies::Analytics`).
    UsageStatistics,
}

/// One entry of the list shown to learners.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProfilingUse {
    pub key: Use,
    /// A short name.
    pub name: &'static str,
    /// What it does with the person's activity.
    pub does: &'static str,
    /// What an objection changes.
    pub objection: &'static str,
}

/// Every profiling use of the platform.
pub const PROFILING_USES: &[ProfilingUse] = &[
    ProfilingUse {
        key: Use::NewsletterOpens,
        name: "Newsletter opens",
        does: "For learners who allow it in their email settings, each newsletter carries a tracking image that records when they open it; staff see how many people opened each newsletter.",
        objection: "Newsletters reach you without the tracking image, no opening is recorded, and the openings already recorded are deleted.",
    },
    ProfilingUse {
        key: Use::NewsletterClicks,
        name: "Newsletter link clicks",
        does: "For learners who allow it in their email settings, newsletter links pass through this site, which records which link each reader followed; staff see how many people clicked.",
        objection: "Newsletter links lead straight to where they point, no click is recorded, and the clicks already recorded are deleted.",
    },
    ProfilingUse {
        key: Use::UsageStatistics,
        name: "Usage statistics",
        does: "When usage statistics are allowed in the cookie settings of a browser, each page viewed is recorded under a random visitor id, with its time, browser and system family and country, for the statistics staff see.",
        objection: "No page you view while signed in is recorded, whatever the cookie settings of the browser you use.",
    },
];

/// What reads a person's activity without being profiling, and why; shown
/// beside the list so that nobody looks for these in it.
pub const NOT_PROFILING: &[(&str, &str)] = &[
    ("Course start reminders", "sent to everyone enrolled in a run two days before it starts, by date alone."),
    (
        "Training reminders",
        "sent when a course your organization assigned to you is due and not completed, because the organization asked for it.",
    ),
    (
        "Inactivity warnings",
        "sent before an account that has not been signed in to for the retention period is deleted, so that you can keep it.",
    ),
];

/// Whether a person's choices allow a use. An objection stops every use; the
/// newsletter counts also need the person's consent to them.
pub fn allows(prefs: &Preferences, what_use: Use) -> bool {
    if prefs.object_profiling {
        return false;
    }
    match what_use {
        Use::NewsletterOpens | Use::NewsletterClicks => prefs.email_tracking,
        Use::UsageStatistics => true,
    }
}

/// Whether a signed-in person objected to profiling.
pub fn objects(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
    Ok(super::comms::preferences(conn, user_id)?.object_profiling)
}

/// What an objection does at once, beyond stopping each use from now on:
/// the newsletter openings and clicks recorded about the person go (page
/// views carry no account, so there is nothing of theirs to find). Returns
/// how many records went.
pub fn on_objection(conn: &mut Conn, user_id: i64) -> QueryResult<usize> {
    diesel::delete(
        campaign_events::table
            .filter(campaign_events::user_id.eq(user_id))
            .filter(campaign_events::kind.eq_any(["open", "click"])),
    )
    .execute(conn)
}

/// The outcome recorded on the objection's request: each use and what stopped.
pub fn objection_outcome(removed: usize) -> String {
    let stopped: Vec<&str> = PROFILING_USES.iter().map(|u| u.name).collect();
    format!("Stopped at once: {}. {removed} newsletter opening and click record(s) deleted.", stopped.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_objection_stops_every_use_whatever_else_is_allowed() {
        let everything = Preferences { marketing_email: true, email_tracking: true, object_profiling: false };
        let objecting = Preferences { object_profiling: true, ..everything };
        for u in PROFILING_USES {
            assert!(allows(&everything, u.key), "{} allowed without an objection", u.name);
            assert!(!allows(&objecting, u.key), "{} stopped by the objection", u.name);
        }
    }

    #[test]
    fn every_use_is_listed_once() {
        // A new `Use` fails to compile here until it is added, then fails below until listed.
        for u in [Use::NewsletterOpens, Use::NewsletterClicks, Use::UsageStatistics] {
            match u {
                Use::NewsletterOpens | Use::NewsletterClicks | Use::UsageStatistics => {}
            }
            assert_eq!(PROFILING_USES.iter().filter(|e| e.key == u).count(), 1, "{u:?}");
        }
    }
}

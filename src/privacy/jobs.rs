//! The privacy area's background work: newsletters and copies of one's data
//! are queued jobs; retention, due erasures and expired copies run by the
//! clock. `lib.rs` registers them with the worker.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::db::{Conn, Db, DbError};
use crate::jobs::Run;
use crate::notify::Mailer;
use crate::privacy::comms::LinkSigner;
use crate::storage::BlobStore;

/// Runs a `newsletter.send` job ([`super::comms::SEND_NEWSLETTER`]): one
/// campaign's message to one subscriber, unless they withdrew since.
pub async fn run_newsletter(
    db: Db,
    mailer: Arc<Mailer>,
    signer: LinkSigner,
    base_url: String,
    job: Run,
) -> Result<(), String> {
    let payload = job.payload;
    let campaign = payload["campaign_id"].as_i64().ok_or("payload has no campaign_id")?;
    let user = payload["user_id"].as_i64().ok_or("payload has no user_id")?;
    let mail = db
        .run(move |conn| {
            crate::privacy::comms::newsletter_payload(conn, &signer, &base_url, campaign, user, crate::db::now())
                .map_err(DbError::from)
        })
        .await
        .map_err(|e| e.to_string())?;
    match mail {
        // Withdrawn since the campaign was sent: nothing goes out.
        None => Ok(()),
        Some(mail) => {
            let job_id = job.id;
            tokio::task::spawn_blocking(move || mailer.deliver(job_id, &mail)).await.map_err(|e| e.to_string())?
        }
    }
}

/// Runs a `privacy.export` job ([`super::export::EXPORT`]): builds the copy.
pub async fn run_export(db: Db, blobs: Arc<dyn BlobStore>, base_url: String, job: Run) -> Result<(), String> {
    let payload = job.payload;
    let id = payload["export_id"].as_i64().ok_or("payload has no export_id")?;
    db.run(move |conn| Ok::<_, DbError>(crate::privacy::export::run(conn, blobs.as_ref(), id, &base_url)))
        .await
        .map_err(|e| e.to_string())?
}

/// What the scheduled privacy work needs.
#[derive(Clone)]
pub struct Scheduled {
    pub blobs: Arc<dyn BlobStore>,
    /// Blank an erased learner's forum posts rather than keep their text.
    pub erasure_blank_posts: bool,
    pub retention: crate::privacy::retention::Periods,
    /// The mail file outbox, whose files erasure and retention remove.
    pub outbox: PathBuf,
}

impl Scheduled {
    /// Retention, then erasures whose cool-off is over, then data copies
    /// whose link expired; answers how many erasures and copies it handled.
    pub fn run(&self, conn: &mut Conn, now: NaiveDateTime) -> Result<usize, DbError> {
        let settings = crate::privacy::erasure::Settings {
            blank_posts: self.erasure_blank_posts,
            blobs: self.blobs.as_ref(),
            outbox: &self.outbox,
        };
        // Retention first: an account it hands to erasure is erased in the same run.
        let retained = crate::privacy::retention::run(conn, &self.retention, &self.outbox, now, false)?;
        let erased = crate::privacy::erasure::run_due(conn, &settings, now)?;
        let expired = crate::privacy::export::expire(conn, self.blobs.as_ref(), now)?;
        for line in retained.iter().filter(|line| line.count > 0) {
            tracing::info!(category = line.category, count = line.count, "retention: {}", line.action);
        }
        Ok(erased + expired)
    }
}

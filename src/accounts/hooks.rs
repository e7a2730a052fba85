//! What accounts' pages take from the privacy area, which is built on top of
//! accounts, without using it: the policies and the newsletter choice a new
//! account records, the policies to accept before a session starts, the
//! notices on the home page. Privacy offers plain functions, `lib.rs` puts
//! them in one `AccountHooks`, which Rocket manages; the handlers that need
//! it take it as state.

use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde_json::Value;

use crate::db::Conn;
use crate::kernel::ClientInfo;

/// Records what a new account agrees to at sign-up (user, newsletter
/// ticked, where from, when): each current policy version (COM-5) and the
/// newsletter choice, off unless ticked (COM-1).
pub type RecordSignup = fn(&mut Conn, i64, bool, &ClientInfo, NaiveDateTime) -> QueryResult<()>;

/// Whether the account has policy versions to accept before its session starts.
pub type PoliciesPending = fn(&mut Conn, i64) -> QueryResult<bool>;

#[derive(Clone)]
pub struct AccountHooks {
    pub record_signup: RecordSignup,
    pub policies_pending: PoliciesPending,
    /// The notices in force that the home page shows (SEC-5), as the privacy
    /// area words them; `null` when there are none.
    pub home_notices: Arc<dyn Fn() -> Value + Send + Sync>,
}

//! What consent's pages take from the areas built on top of it, without
//! using them: the runs a sponsor can buy seats in (certificates, which
//! takes the payments), and the data request that a restriction of sharing
//! is (privacy, which keeps the register of requests). Those areas offer
//! plain functions, `lib.rs` puts them in one `ConsentHooks`, which Rocket
//! manages; the handlers that need it take it as state.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde_json::Value;

use super::ledger::Evidence;
use crate::db::Conn;

/// Records that all of a learner's sharing was restricted (`true`) or the
/// restriction lifted, as a data request carried out at once (RGT-5): the
/// learner's own, or staff's for the learner with the note in `evidence`.
pub type RestrictionCarriedOut = fn(&mut Conn, i64, bool, &Evidence, NaiveDateTime) -> QueryResult<()>;

#[derive(Clone, Copy)]
pub struct ConsentHooks {
    /// Seats can be bought here (a payment provider is configured).
    pub buying: bool,
    /// The runs a sponsor can buy seats in with their price per seat, as
    /// `{id, label}` (CRT-1).
    pub priced_runs: fn(&mut Conn) -> QueryResult<Vec<Value>>,
    pub restriction_carried_out: RestrictionCarriedOut,
}

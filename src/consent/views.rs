//! What the consent and partner pages show, as `Serialize` structs (one per
//! page context, field for field the keys its template reads). Lists that
//! can grow carry a `PageNav` for the `pages` partial.

use serde::Serialize;
use serde_json::Value;

use super::log::Group;
use super::push::RejectionView;
use super::report::Chart;
use super::sharing::FundedResult;
use crate::web::format::{Day, Moment};
use crate::web::paging::PageNav;

/// A value and its label, for a select or a list of checkboxes.
#[derive(Debug, Serialize)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

/// A checkbox, ticked or not.
#[derive(Debug, Serialize)]
pub struct Checkbox {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

#[derive(Debug, Serialize)]
pub struct PartnerItem {
    pub slug: String,
    pub name: String,
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub struct MemberItem {
    pub slug: String,
    pub name: String,
}

/// `/partners` (`consent/partners`): the partners a person acts for, a page
/// at a time, and (for staff) the form to add one.
#[derive(Debug, Serialize)]
pub struct PartnersPage {
    pub partners: Vec<PartnerItem>,
    pub nav: PageNav,
    pub is_staff: bool,
    pub kinds: Vec<Choice>,
    pub members: Vec<MemberItem>,
}

#[derive(Debug, Serialize)]
pub struct PartnerHead {
    pub slug: String,
    pub name: String,
    pub kind: &'static str,
    pub contact_email: String,
    pub member: bool,
    pub sponsor: bool,
    pub organization: bool,
    pub exam_body: bool,
}

#[derive(Debug, Serialize)]
pub struct KeyItem {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created: Day,
    pub last_used: Option<Moment>,
    pub revoked: bool,
}

#[derive(Debug, Serialize)]
pub struct AllocationItem {
    pub id: i64,
    pub course: String,
    pub run: String,
    pub seats: i32,
    pub free: i64,
    pub expires: Day,
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct TextItem {
    pub purpose: &'static str,
    pub label: &'static str,
    pub version: i32,
    pub body: String,
    pub own: bool,
}

#[derive(Debug, Serialize)]
pub struct DestinationItem {
    pub id: i64,
    pub name: String,
    pub target: String,
    pub records: String,
    pub format: String,
    pub every_minutes: i32,
    pub enabled: bool,
    pub next_run: Moment,
}

#[derive(Debug, Serialize)]
pub struct SendItem {
    pub id: i64,
    pub destination: String,
    pub key: String,
    pub trigger: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt: Option<Moment>,
    /// The first 16 hex digits of the payload's SHA-256.
    pub digest: Option<String>,
    pub records: Option<i32>,
    pub location: Option<String>,
    pub created: Moment,
    pub delivered: Option<Moment>,
    pub replayable: bool,
    /// "3 statements rejected", when the LRS refused any.
    pub rejected: Option<String>,
    pub rejections: Vec<RejectionView>,
    /// Rejections beyond those listed.
    pub rejections_hidden: Option<i64>,
}

/// A webhook's signing secret, shown once on the response that made it.
#[derive(Debug, Serialize)]
pub struct NewSecret {
    pub destination: String,
    pub secret: String,
}

/// `/partners/<slug>` (`consent/partner`): a partner's settings, keys,
/// seats, texts and pushes; seats, destinations, sends and dead letters a
/// page at a time.
#[derive(Debug, Serialize)]
pub struct PartnerPage {
    pub partner: PartnerHead,
    pub is_staff: bool,
    /// An API key just made, shown on this response only.
    pub new_key: Option<String>,
    pub new_secret: Option<NewSecret>,
    pub keys: Vec<KeyItem>,
    pub scopes: Vec<Checkbox>,
    pub profile_fields: Vec<Checkbox>,
    pub allocations: Vec<AllocationItem>,
    pub allocations_nav: PageNav,
    /// Course runs to allocate seats in (staff), as the learning area offers them.
    pub runs: Option<crate::learning::service::RunChoices>,
    /// Priced runs a sponsor may buy seats in, when payments are on.
    pub buy_runs: Vec<Value>,
    pub texts: Vec<TextItem>,
    pub purposes: Vec<Choice>,
    pub pushes: bool,
    pub destinations: Vec<DestinationItem>,
    pub destinations_nav: PageNav,
    pub sends: Vec<SendItem>,
    pub sends_nav: PageNav,
    pub dead: Vec<SendItem>,
    pub dead_nav: PageNav,
}

#[derive(Debug, Serialize)]
pub struct PartnerLink {
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct ReportRow {
    pub learner: String,
    pub email: String,
    pub course: String,
    pub run: String,
    pub enrolled_at: Option<Day>,
    pub last_activity_at: Option<Day>,
    /// Whole percent.
    pub progress: Option<String>,
    pub completed_at: Option<Day>,
    pub certificate: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CourseChoice {
    pub slug: String,
    pub title: String,
    pub selected: bool,
}

/// `/partners/<slug>/report` (`consent/report`): the sponsor's completion report.
#[derive(Debug, Serialize)]
pub struct ReportPage {
    pub partner: PartnerLink,
    pub rows: Vec<ReportRow>,
    pub anyone_shares: bool,
    pub count: u64,
    pub shown_from: usize,
    pub shown_to: usize,
    pub page: usize,
    pub pages: usize,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub courses: Vec<CourseChoice>,
    pub status: String,
    pub query: String,
    pub charts: Vec<Chart>,
    /// Exam results of the courses it funded, each under its own consent.
    pub exam_results: Vec<FundedResult>,
}

/// `/staff/legal-disclosures` (`consent/legal`): an empty form.
#[derive(Debug, Serialize)]
pub struct LegalPage {}

/// A consent text as the learner was shown it.
#[derive(Debug, Serialize)]
pub struct TextShown {
    pub body: String,
    pub version: i32,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct ConsentItem {
    pub id: i64,
    pub partner: String,
    pub purpose: String,
    pub scope: String,
    pub status: String,
    pub granted: bool,
    pub categories: Vec<&'static str>,
    pub since: Option<Moment>,
    pub text: Option<TextShown>,
}

#[derive(Debug, Serialize)]
pub struct EmployerItem {
    pub name: String,
    pub what: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct WaitingItem {
    pub partner: String,
    pub purpose: String,
    pub asked: Moment,
}

#[derive(Debug, Serialize)]
pub struct HistoryItem {
    pub when: Moment,
    pub sentence: String,
    pub how: &'static str,
    pub partner: bool,
    pub hash: String,
}

/// The learner a staff member acts for.
#[derive(Debug, Serialize)]
pub struct OnBehalf {
    pub username: String,
    pub name: String,
}

/// `/sharing` and `/staff/sharing?login=` (`consent/sharing`): every
/// consent, every disclosure, every decision.
#[derive(Debug, Serialize)]
pub struct SharingPage {
    /// Where the page's forms post: the learner's own, or staff's for them.
    pub base: String,
    pub on_behalf: Option<OnBehalf>,
    pub employers: Vec<EmployerItem>,
    pub waiting: Vec<WaitingItem>,
    pub consents: Vec<ConsentItem>,
    pub restricted: bool,
    pub restricted_since: Option<Moment>,
    pub log: Vec<Group>,
    pub shared_anything: bool,
    pub log_rows: i64,
    pub log_full: bool,
    pub history: Vec<HistoryItem>,
}

/// `/staff/sharing` before (or after a failed) look-up.
#[derive(Debug, Serialize)]
pub struct SharingLookup {
    pub lookup: bool,
    pub login: Option<String>,
    pub not_found: bool,
}

#[derive(Debug, Serialize)]
pub struct MarketingOffer {
    pub text: String,
    pub text_id: i64,
    pub shown: Vec<&'static str>,
}

/// `/redeem?code=` (`consent/redeem`): what a sponsor's code offers, and the consent asked.
#[derive(Debug, Serialize)]
pub struct RedeemPage {
    pub code: String,
    pub sponsor: String,
    pub course: String,
    pub course_slug: String,
    pub run: String,
    pub starts: Day,
    pub shown: Vec<&'static str>,
    pub not_shown: String,
    pub text: String,
    pub text_id: i64,
    pub version: i32,
    pub marketing: Option<MarketingOffer>,
}

/// `/redeem` (`consent/redeem_code`): the form for a code, with why one failed.
#[derive(Debug, Serialize)]
pub struct RedeemCodePage {
    pub error: Option<String>,
    pub code: Option<String>,
}

/// `/parent-sharing/<token>` (`consent/parent_sharing`): what a child asked to share.
#[derive(Debug, Serialize)]
pub struct ParentAskPage {
    pub token: String,
    pub learner: String,
    pub partner: String,
    pub purpose: String,
    pub categories: Vec<&'static str>,
    pub text: TextShown,
}

/// The parent's link is used up or expired.
#[derive(Debug, Serialize)]
pub struct ParentGonePage {
    pub gone: bool,
}

/// The parent's decision, recorded.
#[derive(Debug, Serialize)]
pub struct ParentDonePage {
    pub done: String,
}

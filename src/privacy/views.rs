//! What the privacy pages show: one `Serialize` struct per page context
//! (and its rows), field for field the keys the templates read. Dates come
//! formatted; `None` is `null` in the page.

use serde::Serialize;

use crate::web::format::{Day, Moment};
use crate::web::paging::PageNav;

use super::profiling::ProfilingUse;

/// The profiling section of the privacy and communications pages.
#[derive(Debug, Serialize)]
pub struct Profiling {
    pub objects: bool,
    pub uses: &'static [ProfilingUse],
    pub not_profiling: Vec<NotProfiling>,
}

#[derive(Debug, Serialize)]
pub struct NotProfiling {
    pub name: &'static str,
    pub why: &'static str,
}

impl Profiling {
    /// From the one list of what the code does.
    pub fn of(objects: bool) -> Profiling {
        Profiling {
            objects,
            uses: super::profiling::PROFILING_USES,
            not_profiling: super::profiling::NOT_PROFILING
                .iter()
                .map(|(name, why)| NotProfiling { name, why })
                .collect(),
        }
    }
}

/// `/account/privacy`.
#[derive(Debug, Serialize)]
pub struct PrivacyPage {
    pub exports: Vec<ExportRow>,
    pub requests: Vec<MyRequestRow>,
    pub due_days: i64,
    pub profiling: Profiling,
    pub cool_off_days: i64,
    pub cool_off_plural: bool,
    pub export_days: i64,
    pub erasure: Option<OpenErasure>,
}

#[derive(Debug, Serialize)]
pub struct ExportRow {
    pub id: i64,
    pub status: String,
    pub asked: Day,
    pub ready: bool,
    pub building: bool,
    pub expires: Option<Day>,
    pub size_kib: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct MyRequestRow {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub received: Day,
    pub due: Day,
    pub done: Option<Day>,
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OpenErasure {
    pub when: Day,
    pub asked: Day,
    pub cancellable: bool,
    pub held: bool,
}

/// `/staff/privacy`.
#[derive(Debug, Serialize)]
pub struct StaffPage {
    pub open_requests: Vec<RequestRow>,
    pub open_nav: PageNav,
    pub closed_requests: Vec<RequestRow>,
    pub closed_nav: PageNav,
    /// Open requests past their due date, of all (not only this page's).
    pub overdue: i64,
    pub erasures: Vec<ErasureRow>,
    pub erasures_nav: PageNav,
    pub holds: Vec<HoldRow>,
    pub holds_nav: PageNav,
    pub kinds: &'static [&'static str],
    pub due_days: i64,
    pub sources: &'static [&'static str],
    pub retention: Vec<super::retention::Category>,
}

#[derive(Debug, Serialize)]
pub struct RequestRow {
    pub id: i64,
    pub username: Option<String>,
    pub kind: String,
    pub source: String,
    pub details: String,
    pub status: String,
    pub open: bool,
    pub overdue: bool,
    pub received: Day,
    pub due: Day,
    pub done: Option<Day>,
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ErasureRow {
    pub id: i64,
    pub username: String,
    pub state: String,
    pub asked: Day,
    pub run_after: Moment,
    pub step: &'static str,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub log: Vec<ErasureLogRow>,
}

#[derive(Debug, Serialize)]
pub struct ErasureLogRow {
    pub step: String,
    pub outcome: String,
    pub detail: String,
    pub at: Moment,
}

#[derive(Debug, Serialize)]
pub struct HoldRow {
    pub id: i64,
    pub username: String,
    pub reason: String,
    pub since: Day,
}

/// `/account/communications`.
#[derive(Debug, Serialize)]
pub struct Communications {
    pub choices: Choices,
    pub profiling: Profiling,
}

#[derive(Debug, Serialize)]
pub struct Choices {
    pub marketing_email: bool,
    pub email_tracking: bool,
    pub object_profiling: bool,
}

/// `/unsubscribe/<token>`: the button, what it did, or a bad link.
#[derive(Debug, Default, Serialize)]
pub struct Unsubscribe {
    pub invalid: bool,
    pub done: bool,
    pub token: Option<String>,
    pub subscribed: bool,
}

/// `/staff/newsletters`.
#[derive(Debug, Serialize)]
pub struct Newsletters {
    pub subscribers: i64,
    pub campaigns: Vec<CampaignRow>,
    pub nav: PageNav,
}

#[derive(Debug, Serialize)]
pub struct CampaignRow {
    pub id: i64,
    pub subject: String,
    pub sent_on: Day,
    pub recipients: i32,
    pub sent: i64,
    pub opened_by: i64,
    pub clicked_by: i64,
}

/// `/cookies`.
#[derive(Debug, Serialize)]
pub struct CookieSettings {
    pub chosen: bool,
    pub analytics: bool,
    pub kept_days: Option<i64>,
}

/// `/staff/analytics`.
#[derive(Debug, Serialize)]
pub struct Analytics {
    pub days: i64,
    pub totals: super::cookies::Totals,
    pub kept: Option<i64>,
}

/// A policy page (`/privacy`, `/terms`, …).
#[derive(Debug, Serialize)]
pub struct Policy {
    pub title: &'static str,
    pub version: i32,
    pub updated: Day,
    pub body_html: String,
    pub history: Vec<PolicyVersionRow>,
}

#[derive(Debug, Serialize)]
pub struct PolicyVersionRow {
    pub version: i32,
    pub date: Day,
    pub changes: String,
    pub material: bool,
}

/// `/staff/policies`.
#[derive(Debug, Serialize)]
pub struct StaffPolicies {
    pub docs: Vec<PolicyDoc>,
}

#[derive(Debug, Serialize)]
pub struct PolicyDoc {
    pub kind: &'static str,
    pub path: &'static str,
    pub title: &'static str,
    pub version: Option<i32>,
    pub updated: Option<Day>,
    pub body: Option<String>,
}

/// `/policies/accept`.
#[derive(Debug, Serialize)]
pub struct Accept {
    pub pending: Vec<PendingPolicy>,
    pub next: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PendingPolicy {
    pub title: &'static str,
    pub path: &'static str,
    pub version: i32,
    pub date: Day,
    pub changes: String,
}

/// `/contact`.
#[derive(Debug, Serialize)]
pub struct Contact {
    pub values: ContactValues,
    pub errors: std::collections::BTreeMap<&'static str, String>,
}

/// What the contact form holds (as typed, when it comes back).
#[derive(Debug, Default, Serialize)]
pub struct ContactValues {
    pub name: String,
    pub email: String,
    pub subject: String,
    pub message: String,
}

/// `/staff/support`.
#[derive(Debug, Serialize)]
pub struct SupportList {
    pub open: Vec<SupportRow>,
    pub open_nav: PageNav,
    pub answered: Vec<SupportRow>,
    pub answered_nav: PageNav,
}

#[derive(Debug, Serialize)]
pub struct SupportRow {
    pub id: i64,
    pub name: String,
    pub subject: String,
    pub status: String,
    pub received: Moment,
    pub open: bool,
}

/// `/staff/support/<id>`.
#[derive(Debug, Serialize)]
pub struct SupportRequest {
    pub request: super::support::SupportRequest,
    pub received: Moment,
    pub closed: bool,
    pub replies: Vec<SupportReply>,
}

#[derive(Debug, Serialize)]
pub struct SupportReply {
    pub body: String,
    pub by: Option<String>,
    pub at: Moment,
}

/// `/staff/notices`.
#[derive(Debug, Serialize)]
pub struct Notices {
    pub notices: Vec<NoticeRow>,
    pub nav: PageNav,
}

#[derive(Debug, Serialize)]
pub struct NoticeRow {
    pub id: i64,
    pub title: String,
    pub audience: String,
    pub recipients: i32,
    pub published: Day,
    pub withdrawn: Option<Day>,
}

/// A breach notice in force, as the home page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveNotice {
    pub title: String,
    pub body_html: String,
    pub date: Day,
}

/// The banner every page shows for a recently changed policy.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyBanner {
    pub title: &'static str,
    pub path: &'static str,
    pub date: Day,
    pub changes: String,
}

/// `/audit`.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub values: AuditSearch,
    /// A page of the lines found.
    pub entries: Vec<AuditRow>,
    /// Lines per page.
    pub limit: i64,
    pub nav: PageNav,
}

/// The search as typed.
#[derive(Debug, Serialize)]
pub struct AuditSearch {
    pub actor: Option<String>,
    pub path: Option<String>,
    pub action: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub roles: String,
    pub action: String,
    pub path: String,
    pub status: i32,
    pub ip: Option<String>,
    pub query: Option<String>,
    pub subjects: Vec<String>,
    pub more: usize,
    pub no_personal_data: bool,
    pub undeclared: bool,
}

/// `/staff/auditors` and `/staff/support-team`.
#[derive(Debug, Serialize)]
pub struct Holders {
    pub title: &'static str,
    pub about: &'static str,
    pub path: &'static str,
    pub holders: Vec<Holder>,
    pub nav: PageNav,
}

#[derive(Debug, Serialize)]
pub struct Holder {
    pub id: i64,
    pub username: String,
}

/// A course as a page names it.
#[derive(Debug, Serialize)]
pub struct CourseRef {
    pub slug: String,
    pub title: String,
}

/// `/learn/<slug>/survey`.
#[derive(Debug, Serialize)]
pub struct Survey {
    pub course: CourseRef,
    pub done: bool,
    pub group: i64,
    pub comments: i64,
    pub difficulty: Vec<Choice>,
}

#[derive(Debug, Serialize)]
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
}

/// `/studio/courses/<slug>/survey`.
#[derive(Debug, Serialize)]
pub struct SurveyResults {
    pub course: CourseRef,
    pub runs: Vec<RunResults>,
    pub group: i64,
    pub comments: i64,
}

#[derive(Debug, Serialize)]
pub struct RunResults {
    pub run: String,
    pub answers: i64,
    pub results: Option<Results>,
}

/// A run's answers, once enough people answered.
#[derive(Debug, Serialize)]
pub struct Results {
    pub average: String,
    pub ratings: Vec<i64>,
    pub difficulty: Vec<DifficultyCount>,
    pub recommend_percent: i64,
    /// A page of the comments, once enough people answered.
    pub comments: Option<Vec<String>>,
    pub comments_shown: bool,
    pub comments_nav: PageNav,
}

#[derive(Debug, Serialize)]
pub struct DifficultyCount {
    pub label: &'static str,
    pub count: usize,
}

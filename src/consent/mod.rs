//! Consent and partner sharing. Owns partners and their API keys, consent
//! texts, the hash-chained consent ledger (and the current state derived from
//! it), sharing restrictions, disclosures and sponsorships.
//!
//! `sharing` is the gate: the only code that reads learner data for a
//! partner. Everything a partner receives (exports, pushes, sponsor reports)
//! is built from what it yields.

pub mod api;
pub mod departures;
pub mod feed;
pub mod hooks;
pub mod ledger;
pub mod lifecycle;
pub mod log;
pub mod manifests;
pub mod member;
pub mod outbox;
pub mod parents;
pub mod partner_pages;
pub mod partners;
pub mod push;
pub mod report;
pub mod routes;
pub mod seal;
pub mod sharing;
pub mod sponsors;
pub mod texts;
pub mod views;

use std::collections::BTreeSet;
use std::fmt;

/// What a partner may learn about a learner. Stored by name in ledger rows
/// and consents, so names never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    ProfileName,
    ProfileEmail,
    ProfileUsername,
    ProfileCompany,
    Enrollment,
    Activity,
    Progress,
    Grades,
    Completion,
    /// For exam registration only.
    DateOfBirth,
    /// Learning difficulties, disabilities and adjustments; for an exam body
    /// only under its own consent.
    SupportNeeds,
    /// An exam's grade, score and outcome.
    ExamResult,
    /// The certificate issued for the course, if any: its code, which opens
    /// its public verification page. Asked for on its own, so a consent given
    /// before it existed never covers it.
    Certificate,
}

impl Category {
    pub const ALL: [Category; 13] = [
        Category::ProfileName,
        Category::ProfileEmail,
        Category::ProfileUsername,
        Category::ProfileCompany,
        Category::Enrollment,
        Category::Activity,
        Category::Progress,
        Category::Grades,
        Category::Completion,
        Category::DateOfBirth,
        Category::SupportNeeds,
        Category::ExamResult,
        Category::Certificate,
    ];
    /// Course records: what enrollment-based sharing can ever concern (the
    /// first nine; the exam categories follow them).
    pub const COURSE: &'static [Category] = Category::ALL.split_at(9).0;
    /// Profile fields a member institution may ask for at enrollment.
    pub const PROFILE: [Category; 4] =
        [Category::ProfileName, Category::ProfileEmail, Category::ProfileUsername, Category::ProfileCompany];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::ProfileName => "profile.name",
            Category::ProfileEmail => "profile.email",
            Category::ProfileUsername => "profile.username",
            Category::ProfileCompany => "profile.company",
            Category::Enrollment => "enrollment",
            Category::Activity => "activity",
            Category::Progress => "progress",
            Category::Grades => "grades",
            Category::Completion => "completion",
            Category::DateOfBirth => "profile.date_of_birth",
            Category::SupportNeeds => "support_needs",
            Category::ExamResult => "exam.result",
            Category::Certificate => "certificate",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// How the category is described to the learner.
    pub fn label(self) -> &'static str {
        match self {
            Category::ProfileName => "Your full name",
            Category::ProfileEmail => "Your email address",
            Category::ProfileUsername => "Your username",
            Category::ProfileCompany => "Your company or organisation",
            Category::Enrollment => "That you enrolled, when, and in which track",
            Category::Activity => "When you were last active in the course",
            Category::Progress => "How much of the course you have completed",
            Category::Grades => "Your grade and whether you passed",
            Category::Completion => "Whether and when you completed the course",
            Category::DateOfBirth => "Your date of birth",
            Category::SupportNeeds => "The support needs and adjustments you recorded",
            Category::ExamResult => "Your exam result: grade, score and whether you passed",
            Category::Certificate => {
                "Your certificate for the course, if one is issued: its code and the link to its public page, which shows the grade on the certificate"
            }
        }
    }

    /// The category in a sentence, after "your": "your name, email address
    /// and progress".
    pub fn short_label(self) -> &'static str {
        match self {
            Category::ProfileName => "name",
            Category::ProfileEmail => "email address",
            Category::ProfileUsername => "username",
            Category::ProfileCompany => "company or organisation",
            Category::Enrollment => "enrollment",
            Category::Activity => "last activity",
            Category::Progress => "progress",
            Category::Grades => "grades",
            Category::Completion => "completion",
            Category::DateOfBirth => "date of birth",
            Category::SupportNeeds => "support needs and adjustments",
            Category::ExamResult => "exam result",
            Category::Certificate => "certificate",
        }
    }

    /// The fields of records that carry this category, as disclosure rows
    /// name them.
    pub fn fields(self) -> impl Iterator<Item = &'static str> {
        FIELDS.iter().filter(move |f| f.category == Some(self)).map(|f| f.code)
    }

    /// The category a field a disclosure row names belongs to; `None` for
    /// the identifier every record carries and for names not in [`FIELDS`].
    pub fn of_field(code: &str) -> Option<Category> {
        FIELDS.iter().find(|f| f.code == code).and_then(|f| f.category)
    }

    pub fn is_identity(self) -> bool {
        Category::PROFILE.contains(&self)
    }
}

/// A field a record can carry to a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The name disclosure rows give it.
    pub code: &'static str,
    /// What a consent must cover for it to leave; `None` for the identifier
    /// every record carries (a username, or a code made for the partner).
    pub category: Option<Category>,
}

/// Every field the gate hands out, by category: the one definition of what
/// a category contains. The gate writes these codes in disclosure rows;
/// consent forms list the categories; the Sharing page reads the rows back
/// through [`Category::of_field`] and the categories' labels.
pub const FIELDS: &[Field] = {
    use Category::*;
    const fn f(code: &'static str, category: Category) -> Field {
        Field { code, category: Some(category) }
    }
    &[
        Field { code: "learner.pseudonym", category: None },
        f("learner.username", ProfileUsername),
        f("learner.name", ProfileName),
        f("learner.email", ProfileEmail),
        f("learner.company", ProfileCompany),
        f("learner.date_of_birth", DateOfBirth),
        f("enrollment.course", Enrollment),
        f("enrollment.track", Enrollment),
        f("enrollment.status", Enrollment),
        f("enrollment.enrolled_at", Enrollment),
        f("progress.last_activity_at", Activity),
        f("progress.units_completed", Progress),
        f("progress.units_total", Progress),
        f("progress.percent", Progress),
        f("result.grade_percent", Grades),
        f("result.passed", Grades),
        f("result.graded_at", Grades),
        f("result.final_at", Grades),
        f("result.completed_at", Completion),
        f("result.certificate", Certificate),
        f("support_needs.needs", SupportNeeds),
        f("support_needs.adjustments", SupportNeeds),
        f("exam.grade", ExamResult),
        f("exam.score", ExamResult),
        f("exam.passed", ExamResult),
    ]
};

/// "a, b and c".
pub fn in_words<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => {
            format!("{} and {}", init.iter().map(|s| s.as_ref()).collect::<Vec<_>>().join(", "), last.as_ref())
        }
    }
}

/// A set of categories, stored as a sorted comma-separated list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Categories(pub BTreeSet<Category>);

impl Categories {
    pub fn of(cats: impl IntoIterator<Item = Category>) -> Categories {
        Categories(cats.into_iter().collect())
    }

    /// Unknown names are dropped: a stored list never grants more than it names.
    pub fn parse(s: &str) -> Categories {
        Categories(s.split(',').filter_map(|c| Category::parse(c.trim())).collect())
    }

    pub fn contains(&self, c: Category) -> bool {
        self.0.contains(&c)
    }

    pub fn intersect(&self, other: &Categories) -> Categories {
        Categories(self.0.intersection(&other.0).copied().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Category> + '_ {
        self.0.iter().copied()
    }

    /// How each category is described to the learner, in order.
    pub fn labels(&self) -> Vec<&'static str> {
        self.iter().map(Category::label).collect()
    }

    /// The categories in a sentence: "your name, email address and progress".
    pub fn in_words(&self) -> String {
        let shorts: Vec<&str> = self.iter().map(Category::short_label).collect();
        if shorts.is_empty() { String::new() } else { format!("your {}", in_words(&shorts)) }
    }
}

impl fmt::Display for Categories {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|c| c.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartnerKind {
    Member,
    Sponsor,
    ExamBody,
    Organization,
    Researcher,
}

impl PartnerKind {
    pub const ALL: [PartnerKind; 5] = [
        PartnerKind::Member,
        PartnerKind::Sponsor,
        PartnerKind::ExamBody,
        PartnerKind::Organization,
        PartnerKind::Researcher,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartnerKind::Member => "member",
            PartnerKind::Sponsor => "sponsor",
            PartnerKind::ExamBody => "exam_body",
            PartnerKind::Organization => "organization",
            PartnerKind::Researcher => "researcher",
        }
    }

    pub fn parse(s: &str) -> Option<PartnerKind> {
        PartnerKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            PartnerKind::Member => "Member institution",
            PartnerKind::Sponsor => "Sponsor",
            PartnerKind::ExamBody => "Exam body",
            PartnerKind::Organization => "Organization",
            PartnerKind::Researcher => "Researcher",
        }
    }
}

/// The state of a consent as it stands (`consents.status`), derived from
/// the ledger; the one definition of the text stored for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentStatus {
    Granted,
    Declined,
    Withdrawn,
}

impl ConsentStatus {
    pub const ALL: [ConsentStatus; 3] = [ConsentStatus::Granted, ConsentStatus::Declined, ConsentStatus::Withdrawn];

    /// The text stored in `consents.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Granted => "granted",
            ConsentStatus::Declined => "declined",
            ConsentStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<ConsentStatus> {
        ConsentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl PartialEq<ConsentStatus> for String {
    fn eq(&self, other: &ConsentStatus) -> bool {
        self == other.as_str()
    }
}

/// Why data is shared. Partner marketing is its own purpose and is never
/// asked for together with another (SHR-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    MemberSharing,
    Sponsorship,
    PartnerMarketing,
    /// An organization's training records of its own staff, shared on the
    /// recorded basis "processor for organization X" rather than on the
    /// learner's consent (SHR-7).
    StaffTraining,
    /// The candidate details an exam body needs for a booking (CRT-8).
    ExamRegistration,
    /// A candidate's support needs, for the exam body's adjustments; asked
    /// for separately, never bundled with the registration.
    ExamSupport,
    /// Exam results for the sponsor who funded the course (SHR-3).
    ExamResults,
}

impl Purpose {
    /// The purposes a learner consents to (texts, offers, the consent form).
    pub const ALL: [Purpose; 6] = [
        Purpose::MemberSharing,
        Purpose::Sponsorship,
        Purpose::PartnerMarketing,
        Purpose::ExamRegistration,
        Purpose::ExamSupport,
        Purpose::ExamResults,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::MemberSharing => "member_sharing",
            Purpose::Sponsorship => "sponsorship",
            Purpose::PartnerMarketing => "partner_marketing",
            Purpose::StaffTraining => "staff_training",
            Purpose::ExamRegistration => "exam_registration",
            Purpose::ExamSupport => "exam_support",
            Purpose::ExamResults => "exam_results",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().chain([Purpose::StaffTraining]).find(|p| p.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Purpose::MemberSharing => "Course records for the institution that runs the course",
            Purpose::Sponsorship => "Progress reports for the sponsor who pays for your place",
            Purpose::PartnerMarketing => "Offers and news from the partner",
            Purpose::StaffTraining => "Training records for your employer, as its processor",
            Purpose::ExamRegistration => "Candidate details for the exam body you booked with",
            Purpose::ExamSupport => "Your support needs, for the exam body's adjustments",
            Purpose::ExamResults => "Exam results for the sponsor who funded your course",
        }
    }

    /// The most a consent for this purpose can ever cover, whatever a text or
    /// a form says. Sponsors see enrollment, participation, progress and
    /// completion only (SHR-2).
    pub fn ceiling(self) -> Categories {
        use Category::*;
        match self {
            Purpose::MemberSharing => Categories::of(Category::COURSE.iter().copied()),
            // The sponsor knows whom it invited; it may see who they are on
            // its report, and their course status, nothing more.
            // The certificate is the proof of that completion.
            Purpose::Sponsorship => {
                Categories::of([ProfileName, ProfileEmail, Enrollment, Activity, Progress, Completion, Certificate])
            }
            Purpose::PartnerMarketing => Categories::of([ProfileName, ProfileEmail]),
            // Usage and progress of the courses staff take; never their other profile fields.
            Purpose::StaffTraining => {
                Categories::of([ProfileName, ProfileEmail, Enrollment, Activity, Progress, Grades, Completion])
            }
            Purpose::ExamRegistration => Categories::of([ProfileName, ProfileEmail, DateOfBirth]),
            Purpose::ExamSupport => Categories::of([SupportNeeds]),
            // The sponsor knows whom it funded; it learns the result and nothing else.
            Purpose::ExamResults => Categories::of([ProfileName, ProfileEmail, ExamResult]),
        }
    }
}

/// Scope of a run-bound consent.
pub fn run_scope(run_id: i64) -> String {
    format!("run:{run_id}")
}

/// Exam bookings as consent's sharing discloses them to exam bodies: the
/// scope of exam consents, the booked status and the sealed support-needs
/// fields. The exams area, built on consent, uses these same names
/// (`exams::course_scope`…).
pub mod exam_records {
    pub const BOOKED: &str = "booked";
    /// Sealed columns (SEC-2).
    pub const NEEDS_FIELD: &str = "support_needs.needs";
    pub const ADJUSTMENTS_FIELD: &str = "support_needs.adjustments";

    /// Scope of exam consents: one exam body and one course, so a reschedule
    /// or a second booking stays under the decision the learner made.
    pub fn course_scope(course_id: i64) -> String {
        format!("course:{course_id}")
    }
}

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::page,
        routes::withdraw,
        routes::restrict,
        routes::redeem_page,
        routes::redeem,
        partner_pages::index,
        partner_pages::create,
        partner_pages::show,
        partner_pages::appoint,
        partner_pages::create_key,
        partner_pages::revoke_key,
        partner_pages::profile_fields,
        partner_pages::publish_text,
        routes::staff_page,
        routes::parent_page,
        routes::parent_decide,
        routes::staff_withdraw,
        routes::staff_restrict,
        outbox::create,
        outbox::schedule,
        outbox::push_now,
        outbox::replay,
        partner_pages::allocate,
        partner_pages::invite,
        partner_pages::report_page,
        partner_pages::report_csv,
        partner_pages::legal_form,
        partner_pages::record_legal,
        api::aggregates,
        api::export,
        api::departures,
        api::export_summary,
    ]
}

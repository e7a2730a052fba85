//! 1EdTech OneRoster 1.2 CSV binding: a zip of `manifest.csv` and one CSV
//! file per entity type.
//!
//! **Buffering.** A zip cannot be streamed file by file while the records of
//! every file arrive interleaved, so this adapter keeps every row in memory
//! (one row per distinct entity, see below) and writes the zip in `finish`.
//! Memory grows with the number of distinct learners, classes, enrollments
//! and results in the export; split very large exports by course.
//!
//! **Processing mode.** Every present file is declared `delta` in the
//! manifest, with `status` (`active`, or `tobedeleted` for an enrollment
//! whose Lyceum status is `unenrolled` or `expired`) and `dateLastModified`
//! (the export's time) on every row: an export is an increment from a
//! cursor, and a `bulk` file would tell the receiver to drop everything it
//! does not list. Files without rows are declared `absent` (the binding
//! forbids header-only files). The rows of each file are built by one
//! function each (`user_row`, `enrollment_row`, `result_row`, …) from ids
//! and a [`RowStatus`], so a `tobedeleted` row is built like an `active` one.
//!
//! **sourcedIds.** The binding permits only URL-safe characters in a
//! sourcedId, so ids are built from parts joined by `.`: each part is a
//! Lyceum identifier (course and member slugs, run keys, usernames and
//! pseudonyms use only letters, digits, `-` and `_`) kept as it is; any
//! other character in a part is written `~` and two upper-case hex digits
//! per UTF-8 byte. A part never contains `.` nor a bare `~`, so two
//! different part lists never give the same id, and an id never changes
//! from one export to the next. Ids are unique within their file.
//!
//! **Mapping.**
//!
//! | file | one row per | sourcedId |
//! | --- | --- | --- |
//! | `academicSessions.csv` | course run, `type` `term`, `startDate` the run's start, `endDate` its end (`9999-12-31` for a run without an end), `schoolYear` the year it ends (starts, without an end) | `<course id>.<run>.term` |
//! | `categories.csv` | the final grade category (title `Final grade`) | `final-grade` |
//! | `classes.csv` | course run, `classType` `scheduled`, `classCode` the run key, `termSourcedIds` its session | `<course id>.<run>` |
//! | `courses.csv` | course | `<course id>` |
//! | `enrollments.csv` | enrollment record, `role` `student` | `<course id>.<run>.<learner id>` |
//! | `lineItems.csv` | course run with results: its final grade, 0–100, `assignDate`/`dueDate` the session's dates, the final grade category and the run's session | `<course id>.<run>.final` |
//! | `orgs.csv` | member institution, `type` `school`, `name` its slug | `<member>` |
//! | `results.csv` | result record of a learner who attempted something graded or completed | `<course id>.<run>.final.<learner id>` |
//! | `roles.csv` | learner × member, `role` `student`; `primary` for the learner's first member, `secondary` after | `<learner id>.<member>` |
//! | `users.csv` | learner | the learner's `id` (a pseudonym unless identity is covered) |
//!
//! Progress records have no place in OneRoster and are skipped. When several
//! records map to the same row (the same learner, or the same enrollment
//! twice), the later record's values replace the earlier ones: records
//! arrive in cursor order, so the row reflects the latest consent.
//!
//! **Results only for what was attempted.** A result record of a learner
//! who has neither a graded attempt (`graded_at`) nor a completion
//! (`completed_at`) writes no `results.csv` row: a grade of 0 there would
//! say the learner was graded zero. A graded result is `fully graded` with
//! its `score` and `scoreDate` the day of the latest graded attempt, and
//! `inProgress` `true` while the learner can still change the outcome
//! (`final_at` unset); a completion without a covered grade is `submitted`,
//! dated by the completion, with no score. `metadata.lyceum.passed` is
//! `true` once passed, `false` only once the outcome is final, empty while
//! the learner can still pass.
//!
//! **Values.** A learner's `name` is split at its last space into
//! `givenName` and `familyName`; a single word is written in both. The
//! binding requires `username`, `givenName` and `familyName`: a learner
//! whose consent does not cover the username has the learner id (the
//! pseudonym) as `username`, and one whose name is not covered is named
//! `Unnamed` `Learner`, which says only that no name was shared. `email`
//! and the other identity fields stay empty unless covered. Lyceum-only
//! values go in `metadata.lyceum.*` columns at the right: `users`
//! `company`, `courses` `url`, `enrollments` `track`, `results` `passed`.
//! Carriage returns and line feeds inside values (which the binding
//! forbids) become spaces.

use std::collections::HashMap;
use std::io::{self, Write};

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use crate::adapter::Adapter;
use crate::cell::spreadsheet_safe;
use crate::records::{CourseRef, Learner, SharedDeparture, SharedEnrollment, SharedRecord, SharedResult};

pub const MANIFEST_COLUMNS: &[&str] = &["propertyName", "value"];

pub const ACADEMIC_SESSIONS_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "type",
    "startDate",
    "endDate",
    "parentSourcedId",
    "schoolYear",
];

pub const CATEGORIES_COLUMNS: &[&str] = &["sourcedId", "status", "dateLastModified", "title", "weight"];

pub const ORGS_COLUMNS: &[&str] =
    &["sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"];

pub const COURSES_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "schoolYearSourcedId",
    "title",
    "courseCode",
    "grades",
    "orgSourcedId",
    "subjects",
    "subjectCodes",
    "metadata.lyceum.url",
];

pub const CLASSES_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "grades",
    "courseSourcedId",
    "classCode",
    "classType",
    "location",
    "schoolSourcedId",
    "termSourcedIds",
    "subjects",
    "subjectCodes",
    "periods",
];

pub const USERS_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
    "userMasterIdentifier",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
    "metadata.lyceum.company",
];

pub const ROLES_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "userSourcedId",
    "roleType",
    "role",
    "beginDate",
    "endDate",
    "orgSourcedId",
    "userProfileSourcedId",
];

pub const ENROLLMENTS_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "classSourcedId",
    "schoolSourcedId",
    "userSourcedId",
    "role",
    "primary",
    "beginDate",
    "endDate",
    "metadata.lyceum.track",
];

pub const LINE_ITEMS_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "description",
    "assignDate",
    "dueDate",
    "classSourcedId",
    "categorySourcedId",
    "academicSessionSourcedId",
    "resultValueMin",
    "resultValueMax",
    "schoolSourcedId",
];

pub const RESULTS_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "lineItemSourcedId",
    "studentSourcedId",
    "scoreStatus",
    "score",
    "scoreDate",
    "comment",
    "textScore",
    "classSourcedId",
    "inProgress",
    "incomplete",
    "late",
    "missing",
    "metadata.lyceum.passed",
];

/// The data files of the OneRoster 1.2 CSV binding, in manifest order.
/// Those this adapter writes have a column set; the others are always
/// `absent`.
const MANIFEST_FILES: &[(&str, Option<&[&str]>)] = &[
    ("academicSessions", Some(ACADEMIC_SESSIONS_COLUMNS)),
    ("categories", Some(CATEGORIES_COLUMNS)),
    ("classes", Some(CLASSES_COLUMNS)),
    ("classResources", None),
    ("courses", Some(COURSES_COLUMNS)),
    ("courseResources", None),
    ("demographics", None),
    ("enrollments", Some(ENROLLMENTS_COLUMNS)),
    ("lineItemLearningObjectiveIds", None),
    ("lineItems", Some(LINE_ITEMS_COLUMNS)),
    ("lineItemScoreScales", None),
    ("orgs", Some(ORGS_COLUMNS)),
    ("resources", None),
    ("resultLearningObjectiveIds", None),
    ("results", Some(RESULTS_COLUMNS)),
    ("resultScoreScales", None),
    ("roles", Some(ROLES_COLUMNS)),
    ("scoreScales", None),
    ("userProfiles", None),
    ("userResources", None),
    ("users", Some(USERS_COLUMNS)),
];

/// The sourcedId of the one grade category: the course run's final grade.
pub const FINAL_GRADE_CATEGORY: &str = "final-grade";

/// `endDate` and `dueDate` of a run without an end: open-ended.
const OPEN_END: &str = "9999-12-31";

/// Names written for a learner whose name is not shared (the binding requires both).
const UNNAMED: (&str, &str) = ("Unnamed", "Learner");

/// The `status` of a row of a `delta` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    Active,
    /// The receiver deletes what it holds under the row's sourcedId.
    ToBeDeleted,
}

impl RowStatus {
    fn as_str(self) -> &'static str {
        match self {
            RowStatus::Active => "active",
            RowStatus::ToBeDeleted => "tobedeleted",
        }
    }
}

/// Rows of one file, in first-seen order, keyed by sourcedId (column 0).
struct Table {
    columns: &'static [&'static str],
    rows: Vec<Vec<String>>,
    index: HashMap<String, usize>,
}

impl Table {
    fn new(columns: &'static [&'static str]) -> Self {
        Table { columns, rows: Vec::new(), index: HashMap::new() }
    }

    /// Adds `row`, or replaces the row with the same sourcedId in place.
    fn upsert(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.columns.len());
        match self.index.get(&row[0]) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.index.insert(row[0].clone(), self.rows.len());
                self.rows.push(row);
            }
        }
    }
}

/// A cell: CR and LF (forbidden inside OneRoster values) become spaces.
fn cell(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn opt(s: Option<&str>) -> String {
    s.map(cell).unwrap_or_default()
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// `Ada King Lovelace` → (`Ada King`, `Lovelace`); `Plato` → (`Plato`, `Plato`).
fn split_name(name: &str) -> (&str, &str) {
    let name = name.trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((given, family)) => (given.trim_end(), family),
        None => (name, name),
    }
}

/// One part of a sourcedId: letters, digits, `-` and `_` as they are, any
/// other character as `~` and two hex digits per UTF-8 byte.
fn id_part(part: &str, out: &mut String) {
    for c in part.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("~{b:02X}"));
            }
        }
    }
}

/// A sourcedId of the parts, joined by `.` (see the module documentation).
pub fn sourced_id(parts: &[&str]) -> String {
    let mut id = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            id.push('.');
        }
        id_part(part, &mut id);
    }
    id
}

pub fn org_id(member: &str) -> String {
    sourced_id(&[member])
}

pub fn course_id(c: &CourseRef) -> String {
    sourced_id(&[&c.id])
}

pub fn class_id(c: &CourseRef) -> String {
    sourced_id(&[&c.id, &c.run])
}

pub fn session_id(c: &CourseRef) -> String {
    sourced_id(&[&c.id, &c.run, "term"])
}

pub fn line_item_id(c: &CourseRef) -> String {
    sourced_id(&[&c.id, &c.run, "final"])
}

pub fn user_id(learner_id: &str) -> String {
    sourced_id(&[learner_id])
}

pub fn role_id(learner_id: &str, member: &str) -> String {
    sourced_id(&[learner_id, member])
}

pub fn enrollment_id(c: &CourseRef, learner_id: &str) -> String {
    sourced_id(&[&c.id, &c.run, learner_id])
}

pub fn result_id(c: &CourseRef, learner_id: &str) -> String {
    sourced_id(&[&c.id, &c.run, "final", learner_id])
}

fn number(x: f64) -> String {
    if x.is_finite() { x.to_string() } else { String::new() }
}

/// A run's end date, or the open end.
fn end_date(c: &CourseRef) -> String {
    c.ends_at.map(date).unwrap_or_else(|| OPEN_END.to_owned())
}

/// What a `results.csv` row says; built only for a learner who attempted
/// something graded or completed (see [`ResultFacts::of`]).
pub struct ResultFacts {
    pub score_status: &'static str,
    pub score: Option<f64>,
    pub score_date: DateTime<Utc>,
    pub in_progress: Option<bool>,
    pub passed: Option<bool>,
}

impl ResultFacts {
    /// `None` for a learner with neither a graded attempt nor a completion:
    /// nothing was earned yet, and no row says otherwise.
    pub fn of(r: &SharedResult) -> Option<ResultFacts> {
        let graded = r.graded_at.is_some();
        let score_date = r.graded_at.or(r.completed_at)?;
        let is_final = r.final_at.is_some();
        Some(ResultFacts {
            score_status: if graded { "fully graded" } else { "submitted" },
            score: if graded { r.grade_percent } else { None },
            score_date,
            in_progress: r.passed.is_some().then_some(!is_final),
            // Not passed yet is a failure only once the outcome is final.
            passed: r.passed.filter(|p| *p || is_final),
        })
    }
}

/// See the module documentation.
pub struct OneRosterAdapter {
    date_last_modified: String,
    zip_time: zip::DateTime,
    academic_sessions: Table,
    categories: Table,
    orgs: Table,
    courses: Table,
    classes: Table,
    users: Table,
    roles: Table,
    enrollments: Table,
    line_items: Table,
    results: Table,
    /// Learner id → the member of the learner's first record.
    primary_org: HashMap<String, String>,
}

impl OneRosterAdapter {
    /// `generated_at` is written as every row's `dateLastModified` and as
    /// the zip entries' modification time.
    pub fn new(generated_at: DateTime<Utc>) -> Self {
        let zip_time = u16::try_from(generated_at.year())
            .ok()
            .and_then(|y| {
                zip::DateTime::from_date_and_time(
                    y,
                    generated_at.month() as u8,
                    generated_at.day() as u8,
                    generated_at.hour() as u8,
                    generated_at.minute() as u8,
                    generated_at.second() as u8,
                )
                .ok()
            })
            .unwrap_or_default();
        OneRosterAdapter {
            date_last_modified: generated_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            zip_time,
            academic_sessions: Table::new(ACADEMIC_SESSIONS_COLUMNS),
            categories: Table::new(CATEGORIES_COLUMNS),
            orgs: Table::new(ORGS_COLUMNS),
            courses: Table::new(COURSES_COLUMNS),
            classes: Table::new(CLASSES_COLUMNS),
            users: Table::new(USERS_COLUMNS),
            roles: Table::new(ROLES_COLUMNS),
            enrollments: Table::new(ENROLLMENTS_COLUMNS),
            line_items: Table::new(LINE_ITEMS_COLUMNS),
            results: Table::new(RESULTS_COLUMNS),
            primary_org: HashMap::new(),
        }
    }

    /// The three columns every data file begins with, then `rest`.
    fn row(&self, sourced_id: String, status: RowStatus, rest: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut row = vec![sourced_id, status.as_str().to_owned(), self.date_last_modified.clone()];
        row.extend(rest);
        row
    }

    pub fn org_row(&self, member: &str, status: RowStatus) -> Vec<String> {
        self.row(org_id(member), status, [cell(member), "school".into(), String::new(), String::new()])
    }

    pub fn course_row(&self, c: &CourseRef, status: RowStatus) -> Vec<String> {
        self.row(
            course_id(c),
            status,
            [
                String::new(),
                cell(&c.title),
                cell(&c.id),
                String::new(),
                org_id(&c.member),
                String::new(),
                String::new(),
                cell(&c.url),
            ],
        )
    }

    pub fn session_row(&self, c: &CourseRef, status: RowStatus) -> Vec<String> {
        let year = c.ends_at.unwrap_or(c.starts_at).year();
        self.row(
            session_id(c),
            status,
            [
                cell(&format!("{} ({})", c.title, c.run)),
                "term".into(),
                date(c.starts_at),
                end_date(c),
                String::new(),
                format!("{year:04}"),
            ],
        )
    }

    pub fn class_row(&self, c: &CourseRef, status: RowStatus) -> Vec<String> {
        self.row(
            class_id(c),
            status,
            [
                cell(&c.title),
                String::new(),
                course_id(c),
                cell(&c.run),
                "scheduled".into(),
                String::new(),
                org_id(&c.member),
                session_id(c),
                String::new(),
                String::new(),
                String::new(),
            ],
        )
    }

    pub fn category_row(&self, status: RowStatus) -> Vec<String> {
        self.row(FINAL_GRADE_CATEGORY.to_owned(), status, ["Final grade".into(), String::new()])
    }

    pub fn line_item_row(&self, c: &CourseRef, status: RowStatus) -> Vec<String> {
        self.row(
            line_item_id(c),
            status,
            [
                cell(&format!("{} ({}): final grade", c.title, c.run)),
                String::new(),
                date(c.starts_at),
                end_date(c),
                class_id(c),
                FINAL_GRADE_CATEGORY.to_owned(),
                session_id(c),
                "0".into(),
                "100".into(),
                org_id(&c.member),
            ],
        )
    }

    /// A `users.csv` row; `primary_org` is the member of the learner's first record.
    pub fn user_row(&self, l: &Learner, primary_org: &str, status: RowStatus) -> Vec<String> {
        let name = l.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        let (given, family) = name.map(split_name).unwrap_or(UNNAMED);
        self.row(
            user_id(&l.id),
            status,
            [
                "true".into(),
                cell(l.username.as_deref().unwrap_or(&l.id)),
                String::new(),
                cell(given),
                cell(family),
                String::new(),
                String::new(),
                opt(l.email.as_deref()),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                org_id(primary_org),
                String::new(),
                opt(l.company.as_deref()),
            ],
        )
    }

    pub fn role_row(&self, learner_id: &str, member: &str, primary: bool, status: RowStatus) -> Vec<String> {
        self.row(
            role_id(learner_id, member),
            status,
            [
                user_id(learner_id),
                if primary { "primary" } else { "secondary" }.into(),
                "student".into(),
                String::new(),
                String::new(),
                org_id(member),
                String::new(),
            ],
        )
    }

    pub fn enrollment_row(
        &self,
        c: &CourseRef,
        learner_id: &str,
        enrolled_at: Option<DateTime<Utc>>,
        track: &str,
        status: RowStatus,
    ) -> Vec<String> {
        self.row(
            enrollment_id(c, learner_id),
            status,
            [
                class_id(c),
                org_id(&c.member),
                user_id(learner_id),
                "student".into(),
                String::new(),
                enrolled_at.map(date).unwrap_or_default(),
                String::new(),
                cell(track),
            ],
        )
    }

    pub fn result_row(&self, c: &CourseRef, learner_id: &str, facts: &ResultFacts, status: RowStatus) -> Vec<String> {
        let flag = |b: Option<bool>| b.map(|b| b.to_string()).unwrap_or_default();
        self.row(
            result_id(c, learner_id),
            status,
            [
                line_item_id(c),
                user_id(learner_id),
                facts.score_status.into(),
                facts.score.map(number).unwrap_or_default(),
                date(facts.score_date),
                String::new(),
                String::new(),
                class_id(c),
                flag(facts.in_progress),
                String::new(),
                String::new(),
                String::new(),
                flag(facts.passed),
            ],
        )
    }

    /// The org, course, session and class of a record's course run.
    fn course_rows(&mut self, c: &CourseRef) {
        self.orgs.upsert(self.org_row(&c.member, RowStatus::Active));
        self.courses.upsert(self.course_row(c, RowStatus::Active));
        self.academic_sessions.upsert(self.session_row(c, RowStatus::Active));
        self.classes.upsert(self.class_row(c, RowStatus::Active));
    }

    fn learner_rows(&mut self, l: &Learner, member: &str) {
        let primary = self.primary_org.entry(l.id.clone()).or_insert_with(|| member.to_owned()).clone();
        self.users.upsert(self.user_row(l, &primary, RowStatus::Active));
        self.roles.upsert(self.role_row(&l.id, member, primary == member, RowStatus::Active));
    }

    fn enrollment(&mut self, r: &SharedEnrollment) {
        self.course_rows(&r.course);
        self.learner_rows(&r.learner, &r.course.member);
        let status = if r.status == "active" { RowStatus::Active } else { RowStatus::ToBeDeleted };
        self.enrollments.upsert(self.enrollment_row(&r.course, &r.learner.id, Some(r.enrolled_at), &r.track, status));
    }

    fn result(&mut self, r: &SharedResult) {
        self.course_rows(&r.course);
        self.learner_rows(&r.learner, &r.course.member);
        let Some(facts) = ResultFacts::of(r) else { return };
        self.categories.upsert(self.category_row(RowStatus::Active));
        self.line_items.upsert(self.line_item_row(&r.course, RowStatus::Active));
        self.results.upsert(self.result_row(&r.course, &r.learner.id, &facts, RowStatus::Active));
    }

    /// A departure: the enrollment and result under the departed id in that
    /// run become `tobedeleted`; when no record under the id remains, its
    /// user and role too. Under the delta rules a missing row means
    /// "unchanged", so these rows are how a receiver learns to delete.
    fn departure(&mut self, d: &SharedDeparture) {
        self.course_rows(&d.course);
        let gone = RowStatus::ToBeDeleted;
        self.enrollments.upsert(self.enrollment_row(&d.course, &d.learner_id, None, "", gone));
        let facts = ResultFacts {
            score_status: "not submitted",
            score: None,
            score_date: d.departed_at,
            in_progress: None,
            passed: None,
        };
        self.results.upsert(self.result_row(&d.course, &d.learner_id, &facts, gone));
        if d.learner_gone {
            let learner = Learner {
                id: d.learner_id.clone(),
                pseudonymous: true,
                username: None,
                name: None,
                email: None,
                company: None,
            };
            let primary = self.primary_org.get(&d.learner_id).cloned().unwrap_or_else(|| d.course.member.clone());
            self.users.upsert(self.user_row(&learner, &primary, gone));
            self.roles.upsert(self.role_row(&d.learner_id, &d.course.member, primary == d.course.member, gone));
        }
    }

    fn table(&self, file: &str) -> Option<&Table> {
        match file {
            "academicSessions" => Some(&self.academic_sessions),
            "categories" => Some(&self.categories),
            "orgs" => Some(&self.orgs),
            "courses" => Some(&self.courses),
            "classes" => Some(&self.classes),
            "users" => Some(&self.users),
            "roles" => Some(&self.roles),
            "enrollments" => Some(&self.enrollments),
            "lineItems" => Some(&self.line_items),
            "results" => Some(&self.results),
            _ => None,
        }
    }

    /// The tables with rows, in manifest order.
    fn present(&self) -> Vec<(&'static str, &Table)> {
        MANIFEST_FILES
            .iter()
            .filter_map(|(name, _)| self.table(name).filter(|t| !t.rows.is_empty()).map(|t| (*name, t)))
            .collect()
    }

    fn manifest_rows(&self) -> Vec<Vec<String>> {
        let present = self.present();
        let mut rows = vec![
            vec!["manifest.version".to_owned(), "1.0".to_owned()],
            vec!["oneroster.version".to_owned(), "1.2".to_owned()],
        ];
        for (name, _) in MANIFEST_FILES {
            let mode = if present.iter().any(|(p, _)| p == name) { "delta" } else { "absent" };
            rows.push(vec![format!("file.{name}"), mode.to_owned()]);
        }
        rows.push(vec!["source.systemName".to_owned(), "Lyceum".to_owned()]);
        rows
    }
}

fn write_csv<'r, W: Write>(
    out: W,
    columns: &[&str],
    rows: impl IntoIterator<Item = &'r Vec<String>>,
) -> io::Result<()> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
    w.write_record(columns).map_err(io::Error::other)?;
    for row in rows {
        // Every cell is text here, dates and scores included; numbers pass unchanged.
        let cells: Vec<_> = row.iter().map(|cell| spreadsheet_safe(cell)).collect();
        w.write_record(cells.iter().map(|cell| cell.as_bytes())).map_err(io::Error::other)?;
    }
    w.flush()
}

impl Adapter for OneRosterAdapter {
    fn content_type(&self) -> &'static str {
        "application/zip"
    }

    fn file_extension(&self) -> &'static str {
        "zip"
    }

    fn begin(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }

    fn record(&mut self, rec: &SharedRecord, _out: &mut dyn Write) -> io::Result<()> {
        match rec {
            SharedRecord::Enrollment(r) => self.enrollment(r),
            SharedRecord::Result(r) => self.result(r),
            SharedRecord::Progress(_) => {}
            SharedRecord::Departure(r) => self.departure(r),
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(self.zip_time)
            .unix_permissions(0o644);
        let mut zip = ZipWriter::new_stream(&mut *out);
        zip.start_file("manifest.csv", options).map_err(io::Error::other)?;
        write_csv(&mut zip, MANIFEST_COLUMNS, &self.manifest_rows())?;
        for (name, table) in self.present() {
            zip.start_file(format!("{name}.csv"), options).map_err(io::Error::other)?;
            write_csv(&mut zip, table.columns, &table.rows)?;
        }
        zip.finish().map_err(io::Error::other)?;
        out.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::io::{Cursor, Read};

    use super::*;
    use crate::adapter::write_records;
    use crate::fixtures;

    pub(crate) fn zip_of(records: &[SharedRecord]) -> Vec<u8> {
        let mut out = Vec::new();
        write_records(&mut OneRosterAdapter::new(fixtures::generated_at()), records, &mut out).unwrap();
        out
    }

    /// File name → contents, in archive order.
    pub(crate) fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut f = archive.by_index(i).unwrap();
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                (f.name().unwrap().into_owned(), s)
            })
            .collect()
    }

    /// Parsed rows of each file, as column → value maps.
    fn tables(bytes: &[u8]) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
        unzip(bytes)
            .into_iter()
            .map(|(name, text)| {
                let mut r = csv::Reader::from_reader(text.as_bytes());
                let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
                let rows = r
                    .records()
                    .map(|rec| header.iter().cloned().zip(rec.unwrap().iter().map(str::to_owned)).collect())
                    .collect();
                (name.trim_end_matches(".csv").to_owned(), rows)
            })
            .collect()
    }

    #[test]
    fn snapshot_oneroster() {
        let files = unzip(&zip_of(&fixtures::all()));
        let mut rendered = String::new();
        for (name, text) in files {
            assert!(text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'), "{name}: CRLF line ends");
            rendered.push_str(&format!("=== {name}\n{}\n", text.replace("\r\n", "\n")));
        }
        insta::assert_snapshot!(rendered);
    }

    #[test]
    fn formula_names_are_written_as_text_and_numbers_as_numbers() {
        let mut records = fixtures::all();
        for rec in &mut records {
            let learner = match rec {
                SharedRecord::Enrollment(r) => &mut r.learner,
                SharedRecord::Progress(r) => &mut r.learner,
                SharedRecord::Result(r) => &mut r.learner,
                SharedRecord::Departure(_) => continue,
            };
            if !learner.pseudonymous {
                learner.name = Some(r#"=HYPERLINK("http://evil","x") -2+3"#.into());
                learner.company = Some("@corp".into());
            }
        }
        let t = tables(&zip_of(&records));
        let user = t["users"].iter().find(|u| u["username"] == "ada").expect("the identified learner");
        assert_eq!(user["givenName"], r#"'=HYPERLINK("http://evil","x")"#);
        assert_eq!(user["familyName"], "'-2+3");
        assert_eq!(user["metadata.lyceum.company"], "'@corp");
        assert!(t["results"].iter().all(|r| !r["score"].starts_with('\'')), "scores stay numbers");
    }

    #[test]
    fn zip_holds_manifest_first_then_present_files() {
        let names: Vec<String> = unzip(&zip_of(&fixtures::all())).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "manifest.csv",
                "academicSessions.csv",
                "categories.csv",
                "classes.csv",
                "courses.csv",
                "enrollments.csv",
                "lineItems.csv",
                "orgs.csv",
                "results.csv",
                "roles.csv",
                "users.csv"
            ]
        );
    }

    #[test]
    fn manifest_lists_every_file_of_the_binding() {
        let t = tables(&zip_of(&fixtures::enrollments()));
        let manifest: BTreeMap<&str, &str> =
            t["manifest"].iter().map(|r| (r["propertyName"].as_str(), r["value"].as_str())).collect();
        assert_eq!(manifest["manifest.version"], "1.0");
        assert_eq!(manifest["oneroster.version"], "1.2");
        assert_eq!(manifest.keys().filter(|k| k.starts_with("file.")).count(), 21);
        // Enrollments only: no line items or results, so those are absent.
        assert_eq!(manifest["file.enrollments"], "delta");
        assert_eq!(manifest["file.results"], "absent");
        assert_eq!(manifest["file.lineItems"], "absent");
        assert_eq!(manifest["file.academicSessions"], "delta", "every class has its term");
        assert_eq!(manifest["file.categories"], "absent");
        for (key, mode) in &manifest {
            if let Some(file) = key.strip_prefix("file.") {
                assert_eq!(*mode == "delta", t.contains_key(file), "{key}");
            }
        }
    }

    #[test]
    fn empty_export_is_a_manifest_alone() {
        let files = unzip(&zip_of(&[]));
        assert_eq!(files.len(), 1);
        assert!(!files[0].1.contains(",delta"));
    }

    #[test]
    fn every_reference_resolves_within_the_zip() {
        let t = tables(&zip_of(&fixtures::all()));
        let ids = |file: &str| -> HashSet<String> { t[file].iter().map(|r| r["sourcedId"].clone()).collect() };
        let (orgs, courses, classes, users, line_items) =
            (ids("orgs"), ids("courses"), ids("classes"), ids("users"), ids("lineItems"));
        let (sessions, categories) = (ids("academicSessions"), ids("categories"));
        let refs: &[(&str, &str, &HashSet<String>)] = &[
            ("classes", "termSourcedIds", &sessions),
            ("lineItems", "categorySourcedId", &categories),
            ("lineItems", "academicSessionSourcedId", &sessions),
            ("courses", "orgSourcedId", &orgs),
            ("classes", "courseSourcedId", &courses),
            ("classes", "schoolSourcedId", &orgs),
            ("users", "primaryOrgSourcedId", &orgs),
            ("roles", "userSourcedId", &users),
            ("roles", "orgSourcedId", &orgs),
            ("enrollments", "classSourcedId", &classes),
            ("enrollments", "schoolSourcedId", &orgs),
            ("enrollments", "userSourcedId", &users),
            ("lineItems", "classSourcedId", &classes),
            ("lineItems", "schoolSourcedId", &orgs),
            ("results", "lineItemSourcedId", &line_items),
            ("results", "studentSourcedId", &users),
            ("results", "classSourcedId", &classes),
        ];
        for (file, column, targets) in refs {
            for row in &t[*file] {
                assert!(targets.contains(&row[*column]), "{file}.{column} = {:?} dangles", row[*column]);
            }
        }
        for (file, rows) in &t {
            if file == "manifest" {
                continue;
            }
            let unique: HashSet<&String> = rows.iter().map(|r| &r["sourcedId"]).collect();
            assert_eq!(unique.len(), rows.len(), "{file}: sourcedIds are unique");
            for row in rows {
                assert!(matches!(row["status"].as_str(), "active" | "tobedeleted"));
                assert_eq!(row["dateLastModified"], "2025-06-30T12:00:00.000Z");
            }
        }
    }

    #[test]
    fn pseudonymous_learner_has_only_an_id() {
        let t = tables(&zip_of(&fixtures::all()));
        let user = t["users"].iter().find(|u| u["sourcedId"] == "p-5f1c9e2a").unwrap();
        // The binding requires a username and both names: the pseudonym, and names that say none was shared.
        assert_eq!(user["username"], "p-5f1c9e2a");
        assert_eq!((user["givenName"].as_str(), user["familyName"].as_str()), ("Unnamed", "Learner"));
        for column in ["email", "metadata.lyceum.company", "middleName", "identifier"] {
            assert_eq!(user[column], "", "{column}");
        }
        let ada = t["users"].iter().find(|u| u["sourcedId"] == "ada").unwrap();
        assert_eq!((ada["givenName"].as_str(), ada["familyName"].as_str()), ("Ada King", "Lovelace"));
        assert_eq!(ada["username"], "ada");
    }

    #[test]
    fn results_only_for_learners_who_attempted_or_completed() {
        let t = tables(&zip_of(&fixtures::results()));
        // r-0001 was graded; r-0002 (ada) never attempted anything graded nor completed.
        let students: Vec<&str> = t["results"].iter().map(|r| r["studentSourcedId"].as_str()).collect();
        assert_eq!(students, ["p-5f1c9e2a"]);
        let r = &t["results"][0];
        assert_eq!(r["scoreStatus"], "fully graded");
        assert_eq!((r["score"].as_str(), r["scoreDate"].as_str()), ("87.5", "2025-05-20"));
        assert_eq!((r["inProgress"].as_str(), r["metadata.lyceum.passed"].as_str()), ("true", "true"));
        // Nobody attempted anything: no results file, no line item, no zero.
        let none: Vec<SharedRecord> = fixtures::results().into_iter().skip(1).collect();
        let names: Vec<String> = unzip(&zip_of(&none)).into_iter().map(|(n, _)| n).collect();
        assert!(!names.iter().any(|n| n == "results.csv" || n == "lineItems.csv"), "{names:?}");
    }

    #[test]
    fn result_facts_say_what_is_known() {
        let SharedRecord::Result(base) = fixtures::results()[0].clone() else { unreachable!() };
        let day = |d| fixtures::at(2025, 5, d, 11, 0);
        // Graded below the pass mark while the learner can still pass: no failure yet.
        let open = SharedResult { grade_percent: Some(40.0), passed: Some(false), completed_at: None, ..base.clone() };
        let f = ResultFacts::of(&open).unwrap();
        assert_eq!((f.score_status, f.score, f.in_progress, f.passed), ("fully graded", Some(40.0), Some(true), None));
        // The same once the run has ended: failed, final.
        let ended = SharedResult { final_at: Some(day(30)), ..open };
        let f = ResultFacts::of(&ended).unwrap();
        assert_eq!((f.in_progress, f.passed), (Some(false), Some(false)));
        // A completion whose consent covers no grade: submitted, dated, no score.
        let completed = SharedResult {
            grade_percent: None,
            passed: None,
            graded_at: None,
            final_at: None,
            completed_at: Some(day(21)),
            ..base
        };
        let f = ResultFacts::of(&completed).unwrap();
        assert_eq!((f.score_status, f.score, f.score_date, f.in_progress), ("submitted", None, day(21), None));
    }

    #[test]
    fn sourced_ids_use_permitted_characters_and_stay_distinct() {
        let t = tables(&zip_of(&fixtures::all()));
        let permitted = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        for (file, rows) in &t {
            for row in rows {
                for (column, value) in row {
                    if column == "sourcedId" || column.ends_with("SourcedId") || column.ends_with("SourcedIds") {
                        assert!(value.chars().all(permitted), "{file}.{column} = {value:?}");
                    }
                }
            }
        }
        assert_eq!(t["classes"][0]["sourcedId"], "rust-101.2025-spring");
        assert_eq!(t["results"][0]["sourcedId"], "rust-101.2025-spring.final.p-5f1c9e2a");
        // Characters outside Lyceum's identifiers are escaped, never merged.
        assert_eq!(sourced_id(&["a.b", "c"]), "a~2Eb.c");
        assert_ne!(sourced_id(&["a.b"]), sourced_id(&["a", "b"]));
        assert_ne!(sourced_id(&["a~2E"]), sourced_id(&["a."]));
        assert_eq!(sourced_id(&["é:"]), "~C3~A9~3A");
    }

    #[test]
    fn later_records_replace_earlier_rows() {
        let mut records = fixtures::enrollments();
        let SharedRecord::Enrollment(mut again) = records[1].clone() else { unreachable!() };
        again.cursor = "e-0003".into();
        again.status = "active".into();
        again.learner.email = None;
        records.push(SharedRecord::Enrollment(again));
        let t = tables(&zip_of(&records));
        assert_eq!(t["enrollments"].len(), 2);
        assert_eq!(t["enrollments"][1]["status"], "active");
        assert_eq!(t["users"].len(), 2);
        assert_eq!(t["users"][1]["email"], "");
    }

    #[test]
    fn names_split_at_the_last_space() {
        assert_eq!(split_name("Ada King Lovelace"), ("Ada King", "Lovelace"));
        assert_eq!(split_name(" Plato "), ("Plato", "Plato"));
        assert_eq!(split_name("Jean  Valjean"), ("Jean", "Valjean"));
    }

    #[test]
    fn line_breaks_in_values_become_spaces() {
        let mut records = fixtures::results();
        for rec in &mut records {
            if let SharedRecord::Result(r) = rec {
                r.course.title = "Two\r\nlines".into();
            }
        }
        let t = tables(&zip_of(&records));
        assert_eq!(t["courses"][0]["title"], "Two  lines");
    }
}

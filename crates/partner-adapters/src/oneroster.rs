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
//! forbids header-only files).
//!
//! **Mapping.**
//!
//! | file | one row per | sourcedId |
//! | --- | --- | --- |
//! | `orgs.csv` | member institution, `type` `school`, `name` its slug | `<member>` |
//! | `courses.csv` | course | `<course id>` |
//! | `classes.csv` | course run, `classType` `scheduled`, `classCode` the run key | `<course id>:<run>` |
//! | `users.csv` | learner | the learner's `id` (a pseudonym unless identity is covered) |
//! | `roles.csv` | learner × member, `role` `student`; `primary` for the learner's first member, `secondary` after | `<learner id>:<member>` |
//! | `enrollments.csv` | enrollment record, `role` `student` | `<course id>:<run>:<learner id>` |
//! | `lineItems.csv` | course run with results: its final grade, 0–100 | `<course id>:<run>:final` |
//! | `results.csv` | result record | `<course id>:<run>:final:<learner id>` |
//!
//! Progress records have no place in OneRoster and are skipped. When several
//! records map to the same row (the same learner, or the same enrollment
//! twice), the later record's values replace the earlier ones: records
//! arrive in cursor order, so the row reflects the latest consent.
//!
//! Only values present in the records are written. A learner's `name` is
//! split at its last space into `givenName` and `familyName` (no space: all
//! of it is `givenName`); a pseudonymous learner's `username`, names and
//! `email` are empty. Fields OneRoster requires but Lyceum has no value for
//! stay empty: `classes.termSourcedIds`, `lineItems.assignDate`, `dueDate`,
//! `categorySourcedId` and `academicSessionSourcedId`, and the identity
//! fields the consent does not cover. So no `academicSessions.csv` or
//! `categories.csv` is written and every non-empty reference resolves
//! within the zip. Lyceum-only values go in `metadata.lyceum.*` columns at
//! the right: `users` `company`, `courses` `url`, `enrollments` `track`,
//! `results` `passed`. Carriage returns and line feeds inside values (which
//! the binding forbids) become spaces.

use std::collections::HashMap;
use std::io::{self, Write};

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use crate::adapter::Adapter;
use crate::cell::spreadsheet_safe;
use crate::records::{CourseRef, Learner, SharedEnrollment, SharedRecord, SharedResult};

pub const MANIFEST_COLUMNS: &[&str] = &["propertyName", "value"];

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
    ("academicSessions", None),
    ("categories", None),
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

    fn contains(&self, sourced_id: &str) -> bool {
        self.index.contains_key(sourced_id)
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

/// `Ada King Lovelace` → (`Ada King`, `Lovelace`); `Plato` → (`Plato`, ``).
fn split_name(name: &str) -> (&str, &str) {
    let name = name.trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((given, family)) => (given.trim_end(), family),
        None => (name, ""),
    }
}

fn class_id(c: &CourseRef) -> String {
    format!("{}:{}", c.id, c.run)
}

fn line_item_id(c: &CourseRef) -> String {
    format!("{}:final", class_id(c))
}

fn number(x: f64) -> String {
    if x.is_finite() { x.to_string() } else { String::new() }
}

/// See the module documentation.
pub struct OneRosterAdapter {
    date_last_modified: String,
    zip_time: zip::DateTime,
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

    fn meta(&self, sourced_id: String, status: &str) -> Vec<String> {
        vec![sourced_id, status.to_owned(), self.date_last_modified.clone()]
    }

    fn course_rows(&mut self, c: &CourseRef) {
        let mut org = self.meta(cell(&c.member), "active");
        org.extend([cell(&c.member), "school".into(), String::new(), String::new()]);
        self.orgs.upsert(org);

        let mut course = self.meta(cell(&c.id), "active");
        course.extend([
            String::new(),
            cell(&c.title),
            cell(&c.id),
            String::new(),
            cell(&c.member),
            String::new(),
            String::new(),
            cell(&c.url),
        ]);
        self.courses.upsert(course);

        let mut class = self.meta(cell(&class_id(c)), "active");
        class.extend([
            cell(&c.title),
            String::new(),
            cell(&c.id),
            cell(&c.run),
            "scheduled".into(),
            String::new(),
            cell(&c.member),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        self.classes.upsert(class);
    }

    fn learner_rows(&mut self, l: &Learner, member: &str) {
        let primary = self.primary_org.entry(l.id.clone()).or_insert_with(|| member.to_owned()).clone();
        let (given, family) = l.name.as_deref().map(split_name).unwrap_or_default();
        let mut user = self.meta(cell(&l.id), "active");
        user.extend([
            "true".into(),
            opt(l.username.as_deref()),
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
            cell(&primary),
            String::new(),
            opt(l.company.as_deref()),
        ]);
        self.users.upsert(user);

        let role_type = if primary == member { "primary" } else { "secondary" };
        let mut role = self.meta(cell(&format!("{}:{member}", l.id)), "active");
        role.extend([
            cell(&l.id),
            role_type.into(),
            "student".into(),
            String::new(),
            String::new(),
            cell(member),
            String::new(),
        ]);
        self.roles.upsert(role);
    }

    fn enrollment(&mut self, r: &SharedEnrollment) {
        self.course_rows(&r.course);
        self.learner_rows(&r.learner, &r.course.member);
        let status = if r.status == "active" { "active" } else { "tobedeleted" };
        let mut row = self.meta(cell(&format!("{}:{}", class_id(&r.course), r.learner.id)), status);
        row.extend([
            cell(&class_id(&r.course)),
            cell(&r.course.member),
            cell(&r.learner.id),
            "student".into(),
            String::new(),
            date(r.enrolled_at),
            String::new(),
            cell(&r.track),
        ]);
        self.enrollments.upsert(row);
    }

    fn result(&mut self, r: &SharedResult) {
        self.course_rows(&r.course);
        self.learner_rows(&r.learner, &r.course.member);
        let line_item = line_item_id(&r.course);
        if !self.line_items.contains(&cell(&line_item)) {
            let mut row = self.meta(cell(&line_item), "active");
            row.extend([
                cell(&format!("{} ({}): final grade", r.course.title, r.course.run)),
                String::new(),
                String::new(),
                String::new(),
                cell(&class_id(&r.course)),
                String::new(),
                String::new(),
                "0".into(),
                "100".into(),
                cell(&r.course.member),
            ]);
            self.line_items.upsert(row);
        }
        let score_status = if r.grade_percent.is_some() || r.passed.is_some() {
            "fully graded"
        } else if r.completed_at.is_some() {
            "submitted"
        } else {
            ""
        };
        let mut row = self.meta(cell(&format!("{line_item}:{}", r.learner.id)), "active");
        row.extend([
            cell(&line_item),
            cell(&r.learner.id),
            score_status.into(),
            r.grade_percent.map(number).unwrap_or_default(),
            r.completed_at.map(date).unwrap_or_default(),
            String::new(),
            String::new(),
            cell(&class_id(&r.course)),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            r.passed.map(|p| p.to_string()).unwrap_or_default(),
        ]);
        self.results.upsert(row);
    }

    fn table(&self, file: &str) -> Option<&Table> {
        match file {
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
            SharedRecord::Departure(_) => {} // XXX-ONEROSTER-DEPARTURE
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
        assert_eq!(manifest["file.academicSessions"], "absent");
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
        let refs: &[(&str, &str, &HashSet<String>)] = &[
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
        for column in ["username", "givenName", "familyName", "email", "metadata.lyceum.company"] {
            assert_eq!(user[column], "", "{column}");
        }
        let ada = t["users"].iter().find(|u| u["sourcedId"] == "ada").unwrap();
        assert_eq!((ada["givenName"].as_str(), ada["familyName"].as_str()), ("Ada King", "Lovelace"));
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
        assert_eq!(split_name(" Plato "), ("Plato", ""));
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

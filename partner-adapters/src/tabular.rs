//! Plain CSV and JSON Lines: one flat row per record.
//!
//! Both formats use the same flat field names: the record's own fields, with
//! the learner's and the course's fields prefixed `learner_` and `course_`.
//! A CSV file holds one kind of record and its header is that kind's full
//! column set ([`ENROLLMENT_COLUMNS`], [`PROGRESS_COLUMNS`],
//! [`RESULT_COLUMNS`]), identity columns included: a `None` is an empty cell.
//! A JSON Lines file may mix kinds; each object starts with `"type"`
//! (`enrollment`, `progress`, `result` or `departure`) and a `None` is `null`.
//! Departure notices have their own columns ([`DEPARTURE_COLUMNS`]).
//! Timestamps are RFC 3339 in UTC.

use std::borrow::Cow;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::adapter::{Adapter, RecordKind};
use crate::cell::{as_given, spreadsheet_safe};
use crate::records::{SharedDeparture, SharedEnrollment, SharedProgress, SharedRecord, SharedResult};

/// Header of a CSV export of enrollments.
pub const ENROLLMENT_COLUMNS: &[&str] = &[
    "cursor",
    "learner_id",
    "learner_pseudonymous",
    "learner_username",
    "learner_name",
    "learner_email",
    "learner_company",
    "course_id",
    "course_title",
    "course_run",
    "course_member",
    "course_url",
    "track",
    "status",
    "enrolled_at",
];

/// Header of a CSV export of progress.
pub const PROGRESS_COLUMNS: &[&str] = &[
    "cursor",
    "learner_id",
    "learner_pseudonymous",
    "learner_username",
    "learner_name",
    "learner_email",
    "learner_company",
    "course_id",
    "course_title",
    "course_run",
    "course_member",
    "course_url",
    "last_activity_at",
    "units_completed",
    "units_total",
    "progress_percent",
];

/// Header of a CSV export of results.
pub const RESULT_COLUMNS: &[&str] = &[
    "cursor",
    "learner_id",
    "learner_pseudonymous",
    "learner_username",
    "learner_name",
    "learner_email",
    "learner_company",
    "course_id",
    "course_title",
    "course_run",
    "course_member",
    "course_url",
    "grade_percent",
    "passed",
    "completed_at",
];

/// Header of a CSV of departure notices.
pub const DEPARTURE_COLUMNS: &[&str] = &[
    "cursor",
    "learner_id",
    "course_id",
    "course_title",
    "course_run",
    "course_member",
    "course_url",
    "learner_gone",
    "reason",
    "departed_at",
];

/// The CSV header of one kind of record.
pub fn columns(kind: RecordKind) -> &'static [&'static str] {
    match kind {
        RecordKind::Enrollment => ENROLLMENT_COLUMNS,
        RecordKind::Progress => PROGRESS_COLUMNS,
        RecordKind::Result => RESULT_COLUMNS,
        RecordKind::Departure => DEPARTURE_COLUMNS,
    }
}

/// How a row's text fields are written: [`spreadsheet_safe`] for CSV,
/// [`as_given`] for JSON.
type Cell = for<'x> fn(&'x str) -> Cow<'x, str>;

// The row structs' field order is the column order above (a test checks it).

#[derive(Serialize)]
struct EnrollmentRow<'a> {
    cursor: Cow<'a, str>,
    learner_id: Cow<'a, str>,
    learner_pseudonymous: bool,
    learner_username: Option<Cow<'a, str>>,
    learner_name: Option<Cow<'a, str>>,
    learner_email: Option<Cow<'a, str>>,
    learner_company: Option<Cow<'a, str>>,
    course_id: Cow<'a, str>,
    course_title: Cow<'a, str>,
    course_run: Cow<'a, str>,
    course_member: Cow<'a, str>,
    course_url: Cow<'a, str>,
    track: Cow<'a, str>,
    status: Cow<'a, str>,
    enrolled_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct ProgressRow<'a> {
    cursor: Cow<'a, str>,
    learner_id: Cow<'a, str>,
    learner_pseudonymous: bool,
    learner_username: Option<Cow<'a, str>>,
    learner_name: Option<Cow<'a, str>>,
    learner_email: Option<Cow<'a, str>>,
    learner_company: Option<Cow<'a, str>>,
    course_id: Cow<'a, str>,
    course_title: Cow<'a, str>,
    course_run: Cow<'a, str>,
    course_member: Cow<'a, str>,
    course_url: Cow<'a, str>,
    last_activity_at: Option<DateTime<Utc>>,
    units_completed: Option<u32>,
    units_total: Option<u32>,
    progress_percent: Option<f64>,
}

#[derive(Serialize)]
struct ResultRow<'a> {
    cursor: Cow<'a, str>,
    learner_id: Cow<'a, str>,
    learner_pseudonymous: bool,
    learner_username: Option<Cow<'a, str>>,
    learner_name: Option<Cow<'a, str>>,
    learner_email: Option<Cow<'a, str>>,
    learner_company: Option<Cow<'a, str>>,
    course_id: Cow<'a, str>,
    course_title: Cow<'a, str>,
    course_run: Cow<'a, str>,
    course_member: Cow<'a, str>,
    course_url: Cow<'a, str>,
    grade_percent: Option<f64>,
    passed: Option<bool>,
    completed_at: Option<DateTime<Utc>>,
}

fn enrollment_row(r: &SharedEnrollment, text: Cell) -> EnrollmentRow<'_> {
    EnrollmentRow {
        cursor: text(&r.cursor),
        learner_id: text(&r.learner.id),
        learner_pseudonymous: r.learner.pseudonymous,
        learner_username: r.learner.username.as_deref().map(text),
        learner_name: r.learner.name.as_deref().map(text),
        learner_email: r.learner.email.as_deref().map(text),
        learner_company: r.learner.company.as_deref().map(text),
        course_id: text(&r.course.id),
        course_title: text(&r.course.title),
        course_run: text(&r.course.run),
        course_member: text(&r.course.member),
        course_url: text(&r.course.url),
        track: text(&r.track),
        status: text(&r.status),
        enrolled_at: r.enrolled_at,
    }
}

fn progress_row(r: &SharedProgress, text: Cell) -> ProgressRow<'_> {
    ProgressRow {
        cursor: text(&r.cursor),
        learner_id: text(&r.learner.id),
        learner_pseudonymous: r.learner.pseudonymous,
        learner_username: r.learner.username.as_deref().map(text),
        learner_name: r.learner.name.as_deref().map(text),
        learner_email: r.learner.email.as_deref().map(text),
        learner_company: r.learner.company.as_deref().map(text),
        course_id: text(&r.course.id),
        course_title: text(&r.course.title),
        course_run: text(&r.course.run),
        course_member: text(&r.course.member),
        course_url: text(&r.course.url),
        last_activity_at: r.last_activity_at,
        units_completed: r.units_completed,
        units_total: r.units_total,
        progress_percent: r.progress_percent,
    }
}

fn result_row(r: &SharedResult, text: Cell) -> ResultRow<'_> {
    ResultRow {
        cursor: text(&r.cursor),
        learner_id: text(&r.learner.id),
        learner_pseudonymous: r.learner.pseudonymous,
        learner_username: r.learner.username.as_deref().map(text),
        learner_name: r.learner.name.as_deref().map(text),
        learner_email: r.learner.email.as_deref().map(text),
        learner_company: r.learner.company.as_deref().map(text),
        course_id: text(&r.course.id),
        course_title: text(&r.course.title),
        course_run: text(&r.course.run),
        course_member: text(&r.course.member),
        course_url: text(&r.course.url),
        grade_percent: r.grade_percent,
        passed: r.passed,
        completed_at: r.completed_at,
    }
}

#[derive(Serialize)]
struct DepartureRow<'a> {
    cursor: Cow<'a, str>,
    learner_id: Cow<'a, str>,
    course_id: Cow<'a, str>,
    course_title: Cow<'a, str>,
    course_run: Cow<'a, str>,
    course_member: Cow<'a, str>,
    course_url: Cow<'a, str>,
    learner_gone: bool,
    reason: Cow<'a, str>,
    departed_at: DateTime<Utc>,
}

fn departure_row(r: &SharedDeparture, text: Cell) -> DepartureRow<'_> {
    DepartureRow {
        cursor: text(&r.cursor),
        learner_id: text(&r.learner_id),
        course_id: text(&r.course.id),
        course_title: text(&r.course.title),
        course_run: text(&r.course.run),
        course_member: text(&r.course.member),
        course_url: text(&r.course.url),
        learner_gone: r.learner_gone,
        reason: text(&r.reason),
        departed_at: r.departed_at,
    }
}

fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("csv: {other:?}")),
    }
}

fn csv_writer(out: &mut dyn Write) -> csv::Writer<&mut dyn Write> {
    csv::WriterBuilder::new().has_headers(false).buffer_capacity(1024).from_writer(out)
}

/// CSV of one kind of record (RFC 4180, `\n` line ends, UTF-8 without BOM).
pub struct CsvAdapter {
    kind: RecordKind,
}

impl CsvAdapter {
    pub fn new(kind: RecordKind) -> Self {
        CsvAdapter { kind }
    }
}

impl Adapter for CsvAdapter {
    fn content_type(&self) -> &'static str {
        "text/csv; charset=utf-8"
    }

    fn file_extension(&self) -> &'static str {
        "csv"
    }

    fn begin(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut w = csv_writer(out);
        w.write_record(columns(self.kind)).map_err(csv_error)?;
        w.flush()
    }

    fn record(&mut self, rec: &SharedRecord, out: &mut dyn Write) -> io::Result<()> {
        if rec.kind() != self.kind {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a CSV export of {} records cannot take a {} record", self.kind.as_str(), rec.kind().as_str()),
            ));
        }
        let mut w = csv_writer(out);
        match rec {
            SharedRecord::Enrollment(r) => w.serialize(enrollment_row(r, spreadsheet_safe)),
            SharedRecord::Progress(r) => w.serialize(progress_row(r, spreadsheet_safe)),
            SharedRecord::Result(r) => w.serialize(result_row(r, spreadsheet_safe)),
            SharedRecord::Departure(r) => w.serialize(departure_row(r, spreadsheet_safe)),
        }
        .map_err(csv_error)?;
        w.flush()
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.flush()
    }
}

#[derive(Serialize)]
struct Tagged<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    row: T,
}

/// JSON Lines: one flat JSON object per line, any mix of kinds.
#[derive(Default)]
pub struct JsonLinesAdapter;

impl JsonLinesAdapter {
    pub fn new() -> Self {
        JsonLinesAdapter
    }
}

impl Adapter for JsonLinesAdapter {
    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn file_extension(&self) -> &'static str {
        "jsonl"
    }

    fn begin(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }

    fn record(&mut self, rec: &SharedRecord, out: &mut dyn Write) -> io::Result<()> {
        let kind = rec.kind().as_str();
        let line = match rec {
            SharedRecord::Enrollment(r) => serde_json::to_vec(&Tagged { kind, row: enrollment_row(r, as_given) }),
            SharedRecord::Progress(r) => serde_json::to_vec(&Tagged { kind, row: progress_row(r, as_given) }),
            SharedRecord::Result(r) => serde_json::to_vec(&Tagged { kind, row: result_row(r, as_given) }),
            SharedRecord::Departure(r) => serde_json::to_vec(&Tagged { kind, row: departure_row(r, as_given) }),
        }?;
        out.write_all(&line)?;
        out.write_all(b"\n")
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::adapter::write_records;
    use crate::fixtures;

    fn csv_of(kind: RecordKind, records: &[SharedRecord]) -> String {
        let mut out = Vec::new();
        write_records(&mut CsvAdapter::new(kind), records, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn jsonl_of(records: &[SharedRecord]) -> String {
        let mut out = Vec::new();
        write_records(&mut JsonLinesAdapter::new(), records, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn snapshot_csv_enrollments() {
        insta::assert_snapshot!(csv_of(RecordKind::Enrollment, &fixtures::enrollments()));
    }

    #[test]
    fn snapshot_csv_progress() {
        insta::assert_snapshot!(csv_of(RecordKind::Progress, &fixtures::progress()));
    }

    #[test]
    fn snapshot_csv_results() {
        insta::assert_snapshot!(csv_of(RecordKind::Result, &fixtures::results()));
    }

    #[test]
    fn snapshot_jsonl() {
        insta::assert_snapshot!(jsonl_of(&fixtures::all()));
    }

    #[test]
    fn csv_cells_are_spreadsheet_safe_but_json_is_as_given() {
        let name = r#"=HYPERLINK("http://evil","x")"#;
        let mut records = fixtures::enrollments();
        for rec in &mut records {
            if let SharedRecord::Enrollment(e) = rec {
                e.learner.name = Some(name.into());
                e.course.title = "+1 course".into();
            }
        }
        let csv = csv_of(RecordKind::Enrollment, &records);
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        for row in reader.deserialize::<BTreeMap<String, String>>() {
            let row = row.unwrap();
            assert_eq!(row["learner_name"], format!("'{name}"));
            assert_eq!(row["course_title"], "'+1 course");
        }
        let jsonl = jsonl_of(&records);
        assert!(jsonl.lines().all(|l| l.contains(r#""learner_name":"=HYPERLINK(\"http://evil\",\"x\")""#)), "{jsonl}");
    }

    #[test]
    fn csv_header_is_written_without_records() {
        assert_eq!(csv_of(RecordKind::Progress, &[]), format!("{}\n", PROGRESS_COLUMNS.join(",")));
    }

    /// The column constants and the row structs' field order agree: CSV
    /// cells line up with the header, and JSON keys are the column names.
    #[test]
    fn columns_match_serialized_fields() {
        for rec in fixtures::all().into_iter().chain(fixtures::departures()) {
            let line = jsonl_of(std::slice::from_ref(&rec));
            let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).unwrap();
            let keys: Vec<&str> = obj.keys().map(String::as_str).filter(|k| *k != "type").collect();
            let mut expected: Vec<&str> = columns(rec.kind()).to_vec();
            // serde_json's Map is sorted; compare as sets, then check the CSV order.
            expected.sort_unstable();
            let mut keys_sorted = keys.clone();
            keys_sorted.sort_unstable();
            assert_eq!(keys_sorted, expected);

            let csv = csv_of(rec.kind(), std::slice::from_ref(&rec));
            let mut reader = csv::Reader::from_reader(csv.as_bytes());
            let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
            let row = reader.records().next().unwrap().unwrap();
            assert_eq!(header.len(), row.len());
            for (name, cell) in header.iter().zip(row.iter()) {
                let value = &obj[name.as_str()];
                let as_cell = match value {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert_eq!(cell, as_cell, "column {name}");
            }
        }
    }

    #[test]
    fn departures_are_a_csv_of_their_own_and_typed_lines() {
        let csv = csv_of(RecordKind::Departure, &fixtures::departures());
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), DEPARTURE_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][1], "ada");
        assert_eq!(&rows[1][7], "true");
        let lines = jsonl_of(&fixtures::departures());
        for line in lines.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["type"], "departure");
        }
        // A departure never enters a CSV of another kind.
        let mut a = CsvAdapter::new(RecordKind::Enrollment);
        assert!(a.record(&fixtures::departures()[0], &mut Vec::new()).is_err());
    }

    #[test]
    fn csv_rejects_another_kind() {
        let mut out = Vec::new();
        let mut a = CsvAdapter::new(RecordKind::Enrollment);
        a.begin(&mut out).unwrap();
        let err = a.record(&fixtures::results()[0], &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn jsonl_is_one_object_per_line() {
        let out = jsonl_of(&fixtures::all());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), fixtures::all().len());
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.is_object());
        }
    }
}

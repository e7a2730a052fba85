//! The streaming [`Adapter`] trait, the [`Format`] registry and the options
//! every format is built from.

use std::io::{self, Write};

use chrono::{DateTime, Utc};

use crate::oneroster::OneRosterAdapter;
use crate::records::{CourseRef, SharedRecord};
use crate::tabular::{CsvAdapter, JsonLinesAdapter};
use crate::xapi::{XapiAdapter, XapiOptions};

/// Writes records in one partner format, one record at a time.
///
/// Call [`begin`](Adapter::begin) once, [`record`](Adapter::record) for each
/// record, then [`finish`](Adapter::finish) once, always with the same writer.
/// CSV, JSON Lines and xAPI write each record as it arrives and keep no state
/// that grows with the number of records. OneRoster is a zip of several CSV
/// files and buffers its rows in memory until `finish` (see
/// [`crate::oneroster`]).
pub trait Adapter: Send {
    /// MIME type of the whole output, for a `Content-Type` header.
    fn content_type(&self) -> &'static str;
    /// File extension of the whole output, without the dot.
    fn file_extension(&self) -> &'static str;
    /// Writes whatever precedes the first record (a CSV header, `[`).
    fn begin(&mut self, out: &mut dyn Write) -> io::Result<()>;
    /// Writes one record. Fails with [`io::ErrorKind::InvalidInput`] if the
    /// format cannot take this kind of record (a CSV export holds one kind).
    fn record(&mut self, rec: &SharedRecord, out: &mut dyn Write) -> io::Result<()>;
    /// Writes whatever follows the last record and flushes `out`.
    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()>;
}

/// Runs an adapter over `records` from `begin` to `finish`.
pub fn write_records<'a, I>(adapter: &mut dyn Adapter, records: I, out: &mut dyn Write) -> io::Result<()>
where
    I: IntoIterator<Item = &'a SharedRecord>,
{
    adapter.begin(out)?;
    for rec in records {
        adapter.record(rec, out)?;
    }
    adapter.finish(out)
}

/// The kind of a [`SharedRecord`]; a CSV export holds one kind only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Enrollment,
    Progress,
    Result,
    /// Departure notices ([`crate::records::SharedDeparture`]).
    Departure,
}

impl RecordKind {
    /// Accepts `enrollments`, `progress`, `results` and `departures` (and the singulars).
    pub fn parse(s: &str) -> Option<RecordKind> {
        match s {
            "enrollments" | "enrollment" => Some(RecordKind::Enrollment),
            "progress" => Some(RecordKind::Progress),
            "results" | "result" => Some(RecordKind::Result),
            "departures" | "departure" => Some(RecordKind::Departure),
            _ => None,
        }
    }

    /// The value of the `type` field in JSON Lines output.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Enrollment => "enrollment",
            RecordKind::Progress => "progress",
            RecordKind::Result => "result",
            RecordKind::Departure => "departure",
        }
    }
}

impl SharedRecord {
    pub fn kind(&self) -> RecordKind {
        match self {
            SharedRecord::Enrollment(_) => RecordKind::Enrollment,
            SharedRecord::Progress(_) => RecordKind::Progress,
            SharedRecord::Result(_) => RecordKind::Result,
            SharedRecord::Departure(_) => RecordKind::Departure,
        }
    }

    pub fn course(&self) -> &CourseRef {
        match self {
            SharedRecord::Enrollment(r) => &r.course,
            SharedRecord::Progress(r) => &r.course,
            SharedRecord::Result(r) => &r.course,
            SharedRecord::Departure(r) => &r.course,
        }
    }
}

/// Everything a format may need. Only the fields a format uses matter to it.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// CSV only: the one kind of record the file holds (it sets the header).
    pub kind: RecordKind,
    /// xAPI: mapping options (actor homePage, identified actors opt-in).
    pub xapi: XapiOptions,
    /// OneRoster: the export's time, written as `dateLastModified`.
    pub generated_at: DateTime<Utc>,
}

impl ExportOptions {
    /// Options with xAPI's defaults (account actors only).
    pub fn new(kind: RecordKind, platform_base_url: impl Into<String>, generated_at: DateTime<Utc>) -> Self {
        ExportOptions { kind, xapi: XapiOptions::new(platform_base_url, generated_at), generated_at }
    }
}

/// The partner formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    JsonLines,
    OneRoster,
    Xapi,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Csv, Format::JsonLines, Format::OneRoster, Format::Xapi];

    /// Accepts `csv`, `jsonl`, `oneroster` and `xapi`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "jsonl" => Some(Format::JsonLines),
            "oneroster" => Some(Format::OneRoster),
            "xapi" => Some(Format::Xapi),
            _ => None,
        }
    }

    /// The name [`Format::parse`] accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::JsonLines => "jsonl",
            Format::OneRoster => "oneroster",
            Format::Xapi => "xapi",
        }
    }

    pub fn adapter(self, options: &ExportOptions) -> Box<dyn Adapter> {
        match self {
            Format::Csv => Box::new(CsvAdapter::new(options.kind)),
            Format::JsonLines => Box::new(JsonLinesAdapter::new()),
            Format::OneRoster => Box::new(OneRosterAdapter::new(options.generated_at)),
            Format::Xapi => Box::new(XapiAdapter::new(options.xapi.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse("CSV"), None);
        assert_eq!(Format::parse("json"), None);
    }

    #[test]
    fn record_kind_names() {
        assert_eq!(RecordKind::parse("enrollments"), Some(RecordKind::Enrollment));
        assert_eq!(RecordKind::parse("progress"), Some(RecordKind::Progress));
        assert_eq!(RecordKind::parse("results"), Some(RecordKind::Result));
        assert_eq!(RecordKind::parse("grades"), None);
    }
}

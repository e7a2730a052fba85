//! Partner formats for records that passed Lyceum's consent gate.
//!
//! This crate depends on neither Diesel nor the `lyceum` crate: it can only
//! format what it is handed. Every field a consent does not cover arrives as
//! `None`, and every adapter writes only what is in the records: a `None` is
//! an empty CSV cell, a JSON `null`, or an omitted xAPI property.
//!
//! # Formats
//!
//! Pick one with [`Format::parse`] and build its streaming [`Adapter`] with
//! [`Format::adapter`]; then `begin`, `record` for each record, `finish`
//! (or [`write_records`]).
//!
//! | name | format | content type | notes |
//! | --- | --- | --- | --- |
//! | `csv` | CSV, one record kind per file | `text/csv; charset=utf-8` | header: [`tabular::ENROLLMENT_COLUMNS`], [`tabular::PROGRESS_COLUMNS`] or [`tabular::RESULT_COLUMNS`] |
//! | `jsonl` | JSON Lines, kinds mixed | `application/x-ndjson` | same field names as the CSV columns, plus `type` |
//! | `oneroster` | 1EdTech OneRoster 1.2 CSV binding (zip) | `application/zip` | delta files; buffers rows in memory until `finish` ([`oneroster`]) |
//! | `xapi` | xAPI 1.0.3 statements as one JSON array | `application/json` | deterministic statement ids; account actors unless opted in ([`xapi`]) |
//!
//! CSV, JSON Lines and xAPI write each record as it arrives; their memory
//! does not grow with the number of records. [`LrsClient`] POSTs statements
//! to a Learning Record Store.
//!
//! # Webhook signatures
//!
//! [`WebhookClient`] POSTs JSON with the header
//!
//! ```text
//! Lyceum-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
//! ```
//!
//! where the MAC is keyed with the partner's shared secret and taken over
//! the bytes `<t>.<body>`: the `t` value as it appears in the header, a full
//! stop, then the raw request body, unchanged. To verify, a receiver:
//!
//! 1. splits the header at commas into `key=value` pairs, ignoring keys it
//!    does not know (there may be several `v1` values while a secret is
//!    being rotated; any one matching is enough);
//! 2. computes HMAC-SHA256 over `<t>.<raw body>` with the shared secret and
//!    compares its hex form with each `v1` in constant time;
//! 3. rejects the request if `t` is more than its tolerance (5 minutes is
//!    usual) before or after its own clock, so a captured request cannot be
//!    replayed.
//!
//! A retried delivery carries the same body with a fresh signature.
//! [`webhook::verify`] implements these steps; [`webhook::sign`] the
//! sender's side.
//!
//! # Delivery
//!
//! [`LrsClient`] and [`WebhookClient`] share one [`RetryPolicy`]: connection
//! failures, timeouts, HTTP 5xx and 429 are retried with exponential backoff
//! (honouring a `Retry-After` in seconds, up to `max_delay`); any other
//! non-2xx answer fails at once with [`DeliveryError::Rejected`], which
//! carries the status and the body.
//! [`LrsClient::send_statements`] goes one step further for statements: a
//! batch an LRS refuses for its content (400, 409, 413, 422) is split until
//! each refused statement is known, and those come back as [`Rejection`]s
//! while every other statement is delivered (see [`lrs`]).

pub mod adapter;
pub mod cell;
pub mod lrs;
pub mod oneroster;
pub mod records;
pub mod retry;
pub mod tabular;
pub mod webhook;
pub mod xapi;

#[cfg(test)]
mod fixtures;
#[cfg(any(test, feature = "test-server"))]
pub mod test_server;

pub use adapter::{Adapter, ExportOptions, Format, RecordKind, write_records};
pub use lrs::{LrsClient, LrsConfig, Rejection, Sent};
pub use records::{CourseRef, Learner, SharedDeparture, SharedEnrollment, SharedProgress, SharedRecord, SharedResult};
pub use retry::{DeliveryError, Failure, RetryPolicy};
pub use webhook::{SIGNATURE_HEADER, SignatureError, WebhookClient, WebhookConfig};
pub use xapi::{Statement, XapiOptions};

/// `None` never becomes a value in any format.
#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::fixtures;

    fn output(format: Format, kind: RecordKind, records: &[SharedRecord]) -> Vec<u8> {
        let options =
            ExportOptions { kind, xapi: fixtures::xapi_options(true), generated_at: fixtures::generated_at() };
        let mut out = Vec::new();
        write_records(format.adapter(&options).as_mut(), records, &mut out).unwrap();
        out
    }

    fn stripped(records: Vec<SharedRecord>) -> Vec<SharedRecord> {
        records.iter().map(fixtures::strip_optionals).collect()
    }

    /// The values the stripped fields had; none may appear anywhere.
    const SENTINELS: &[&str] =
        &["Lovelace", "ada@example.org", "Analytical", "87.5", "0.875", "58.3", "2025-04-10", "2025-05-20", "mbox"];

    fn text_of(format: Format, kind: RecordKind, records: &[SharedRecord]) -> String {
        let bytes = output(format, kind, records);
        if format == Format::OneRoster {
            oneroster::tests::unzip(&bytes).into_iter().map(|(_, text)| text).collect()
        } else {
            String::from_utf8(bytes).unwrap()
        }
    }

    #[test]
    fn no_sentinel_of_a_none_field_appears_in_any_format() {
        let sets = [
            (RecordKind::Enrollment, fixtures::enrollments()),
            (RecordKind::Progress, fixtures::progress()),
            (RecordKind::Result, fixtures::results()),
        ];
        for (kind, records) in sets {
            for format in Format::ALL {
                // The sentinels are there when the fields are Some...
                // (OneRoster has no place for progress records.)
                let full = text_of(format, kind, &records);
                let skipped = format == Format::OneRoster && kind == RecordKind::Progress;
                assert!(skipped || SENTINELS.iter().any(|s| full.contains(s)), "{format:?} {kind:?}: no sentinels");
                // ...and gone when they are None.
                let text = text_of(format, kind, &stripped(records.clone()));
                for s in SENTINELS {
                    assert!(!text.contains(s), "{format:?} {kind:?} output contains {s:?}:\n{text}");
                }
            }
        }
    }

    #[test]
    fn csv_cells_of_none_fields_are_empty() {
        let optional = [
            "learner_username",
            "learner_name",
            "learner_email",
            "learner_company",
            "last_activity_at",
            "units_completed",
            "units_total",
            "progress_percent",
            "grade_percent",
            "passed",
            "completed_at",
        ];
        for (kind, records) in [
            (RecordKind::Enrollment, fixtures::enrollments()),
            (RecordKind::Progress, fixtures::progress()),
            (RecordKind::Result, fixtures::results()),
        ] {
            let out = output(Format::Csv, kind, &stripped(records));
            let mut reader = csv::Reader::from_reader(out.as_slice());
            let header = reader.headers().unwrap().clone();
            assert!(header.iter().any(|c| c == "learner_name"), "identity columns stay in the header");
            for row in reader.records() {
                let row = row.unwrap();
                for (column, value) in header.iter().zip(row.iter()) {
                    if optional.contains(&column) {
                        assert_eq!(value, "", "{kind:?} {column}");
                    }
                }
            }
        }
    }

    #[test]
    fn json_lines_fields_of_none_are_null() {
        let out = output(Format::JsonLines, RecordKind::Enrollment, &stripped(fixtures::all()));
        for line in String::from_utf8(out).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            for key in ["learner_username", "learner_name", "learner_email", "learner_company"] {
                assert_eq!(v[key], Value::Null, "{key}");
            }
            for key in
                ["progress_percent", "units_total", "last_activity_at", "grade_percent", "passed", "completed_at"]
            {
                if let Some(value) = v.get(key) {
                    assert_eq!(value, &Value::Null, "{key}");
                }
            }
        }
    }

    #[test]
    fn xapi_omits_none_properties_even_for_identified_actors() {
        let out = output(Format::Xapi, RecordKind::Enrollment, &stripped(fixtures::all()));
        let statements: Vec<Value> = serde_json::from_slice(&out).unwrap();
        // Stripped results and progress carry nothing: only the registrations remain.
        assert_eq!(statements.len(), 2);
        for s in &statements {
            let actor = s["actor"].as_object().unwrap();
            assert!(!actor.contains_key("name") && !actor.contains_key("mbox"), "{actor:?}");
            assert!(actor.contains_key("account"));
            assert!(s.get("result").is_none(), "{s}");
            assert!(s["timestamp"].is_string(), "every statement is dated: {s}");
        }
    }

    #[test]
    fn oneroster_cells_of_none_fields_are_empty_or_neutral() {
        let bytes = output(Format::OneRoster, RecordKind::Enrollment, &stripped(fixtures::all()));
        let files = oneroster::tests::unzip(&bytes);
        // Nothing graded nor completed is known: no result, not a zero.
        assert!(files.iter().all(|(name, _)| name != "results.csv"), "{files:?}");
        let (_, users) = files.iter().find(|(name, _)| name == "users.csv").expect("users.csv");
        let mut reader = csv::Reader::from_reader(users.as_bytes());
        let header = reader.headers().unwrap().clone();
        let at = |column: &str| header.iter().position(|c| c == column).unwrap();
        for row in reader.records() {
            let row = row.unwrap();
            // The binding requires these: the pseudonym, and names that say none was shared.
            assert_eq!(&row[at("username")], &row[at("sourcedId")]);
            assert_eq!((&row[at("givenName")], &row[at("familyName")]), ("Unnamed", "Learner"));
            for column in ["email", "metadata.lyceum.company"] {
                assert_eq!(&row[at(column)], "", "users.csv {column}");
            }
        }
    }

    /// CSV, JSON Lines and xAPI hand each record to the writer at once:
    /// nothing is held back until `finish`.
    #[test]
    fn streaming_formats_write_each_record_immediately() {
        let records = fixtures::enrollments();
        for format in [Format::Csv, Format::JsonLines, Format::Xapi] {
            let options = ExportOptions::new(RecordKind::Enrollment, fixtures::BASE_URL, fixtures::generated_at());
            let mut adapter = format.adapter(&options);
            let mut out = Vec::new();
            adapter.begin(&mut out).unwrap();
            for rec in &records {
                let before = out.len();
                adapter.record(rec, &mut out).unwrap();
                let written = String::from_utf8_lossy(&out[before..]).into_owned();
                assert!(written.contains(rec.cursor()) || written.contains(rec.learner_id()), "{format:?}: {written}");
            }
            adapter.finish(&mut out).unwrap();
        }
    }

    #[test]
    fn adapters_report_their_media_types() {
        let options = ExportOptions {
            kind: RecordKind::Enrollment,
            xapi: fixtures::xapi_options(false),
            generated_at: fixtures::generated_at(),
        };
        let described: Vec<(&str, &str)> = Format::ALL
            .iter()
            .map(|f| {
                let a = f.adapter(&options);
                (a.content_type(), a.file_extension())
            })
            .collect();
        assert_eq!(
            described,
            [
                ("text/csv; charset=utf-8", "csv"),
                ("application/x-ndjson", "jsonl"),
                ("application/zip", "zip"),
                ("application/json", "json")
            ]
        );
    }
}

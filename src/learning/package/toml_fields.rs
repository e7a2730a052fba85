//! Reading TOML tables field by field, keeping the line of every field and
//! reporting every wrong field rather than stopping at the first (which a
//! serde derive would do).

use super::PackageProblem;
use super::check::Spot;
use chrono::{DateTime, Utc};
use std::ops::RangeInclusive;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// TOML text and where it sits in its file (front matter starts on line 2).
pub(super) struct Src<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub first_line: usize,
}

impl<'a> Src<'a> {
    pub fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.first_line + self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count()
    }

    /// Parses the document; a syntax error is reported with its line.
    pub fn parse(&self, out: &mut Vec<PackageProblem>) -> Option<DeTable<'a>> {
        match DeTable::parse(self.text) {
            Ok(table) => Some(table.into_inner()),
            Err(e) => {
                let line = e.span().map(|span| self.line(span.start));
                let message = format!("invalid TOML: {}", e.message().trim());
                out.push(PackageProblem { file: self.file.to_string(), line, message });
                None
            }
        }
    }
}

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// One table being read; problems collect here and move out with [`Fields::finish`].
pub(super) struct Fields<'a, 'i> {
    src: &'a Src<'a>,
    table: &'a DeTable<'i>,
    spot: Spot,
    problems: Vec<PackageProblem>,
}

pub(super) const DATE_EXAMPLE: &str = "like \"2026-01-15T09:00:00Z\"";

/// RFC 3339 with an offset; stored in UTC.
pub(super) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|d| d.with_timezone(&Utc))
}

impl<'a, 'i> Fields<'a, 'i> {
    /// Starts reading `table` (whose header is on `line`), reporting keys outside `allowed`.
    pub fn new(src: &'a Src<'a>, table: &'a DeTable<'i>, line: Option<usize>, allowed: &[&str]) -> Self {
        let mut fields = Fields { src, table, spot: Spot::new(src.file, line), problems: Vec::new() };
        for (key, _) in table.iter() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                let line = fields.src.line(key.span().start);
                let message = format!("unknown key `{}` (expected one of: {})", key.get_ref(), allowed.join(", "));
                fields.problems.push(PackageProblem { file: src.file.to_string(), line: Some(line), message });
            }
        }
        fields
    }

    pub fn line_of(&self, value: &Value<'_>) -> usize {
        self.src.line(value.span().start)
    }

    /// Reports a problem with `key` and marks it broken for the rule checks.
    pub fn problem(&mut self, key: &'static str, message: impl Into<String>) {
        self.spot.broken.insert(key);
        self.problems.push(self.spot.problem(key, message));
    }

    /// Reports a problem at a specific line (an array element).
    pub fn problem_at(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(PackageProblem {
            file: self.src.file.to_string(),
            line: Some(line),
            message: message.into(),
        });
    }

    /// The raw value, recording the field's line.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value<'i>> {
        let (k, v) = self.table.get_key_value(key)?;
        self.spot.fields.insert(key, self.src.line(k.span().start));
        Some(v)
    }

    fn required(&mut self, key: &'static str) -> Option<&'a Value<'i>> {
        let value = self.raw(key);
        if value.is_none() {
            self.problem(key, format!("`{key}` is required"));
        }
        value
    }

    pub fn string(&mut self, key: &'static str, required: bool) -> Option<String> {
        let value = if required { self.required(key)? } else { self.raw(key)? };
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.problem(key, format!("`{key}` must be a string"));
                None
            }
        }
    }

    pub fn boolean(&mut self, key: &'static str) -> Option<bool> {
        match self.raw(key)?.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.problem(key, format!("`{key}` must be true or false"));
                None
            }
        }
    }

    /// A whole number within `range`; anything else is reported as `message`.
    pub fn int(&mut self, key: &'static str, required: bool, range: RangeInclusive<i64>, message: &str) -> Option<i64> {
        let value = if required { self.required(key)? } else { self.raw(key)? };
        match integer(value.get_ref()) {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.problem(key, message);
                None
            }
        }
    }

    pub fn float(&mut self, key: &'static str, message: &str) -> Option<f64> {
        let value = self.raw(key)?;
        match value.get_ref() {
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(f) => Some(f),
                Err(_) => {
                    self.problem(key, message);
                    None
                }
            },
            // Integers are numbers too: `weight = 1`.
            other => match integer(other) {
                Some(n) => Some(n as f64),
                None => {
                    self.problem(key, message);
                    None
                }
            },
        }
    }

    /// A date and time with an offset, as an RFC 3339 string or a TOML datetime.
    pub fn date(&mut self, key: &'static str, required: bool) -> Option<DateTime<Utc>> {
        let value = if required { self.required(key)? } else { self.raw(key)? };
        let parsed = match value.get_ref() {
            DeValue::String(s) => parse_date(s),
            DeValue::Datetime(d) => parse_date(&d.to_string()),
            _ => None,
        };
        if parsed.is_none() {
            self.problem(key, format!("`{key}` must be a date and time with a time zone, {DATE_EXAMPLE}"));
        }
        parsed
    }

    pub fn strings(&mut self, key: &'static str) -> Option<Vec<String>> {
        let value = self.raw(key)?;
        let list = match value.get_ref() {
            DeValue::Array(items) => {
                items.iter().map(|v| v.get_ref().as_str().map(str::to_string)).collect::<Option<Vec<_>>>()
            }
            _ => None,
        };
        if list.is_none() {
            self.problem(key, format!("`{key}` must be a list of strings"));
        }
        list
    }

    /// Choice indices: whole numbers from 0.
    pub fn indices(&mut self, key: &'static str) -> Option<Vec<usize>> {
        let value = self.raw(key)?;
        let list = match value.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .map(|v| integer(v.get_ref()).and_then(|n| usize::try_from(n).ok()))
                .collect::<Option<Vec<_>>>(),
            _ => None,
        };
        if list.is_none() {
            self.problem(key, format!("`{key}` must be a list of choice numbers, counting from 0"));
        }
        list
    }

    /// Hands over the problems and the field lines.
    pub fn finish(self, out: &mut Vec<PackageProblem>) -> Spot {
        out.extend(self.problems);
        self.spot
    }
}

fn integer(value: &DeValue<'_>) -> Option<i64> {
    match value {
        DeValue::Integer(n) => i64::from_str_radix(n.as_str(), n.radix()).ok(),
        _ => None,
    }
}

/// The table inside a value (a `[table]` or `{ inline }`).
pub(super) fn as_table<'a, 'i>(value: &'a Value<'i>) -> Option<&'a DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

/// The items of an array value.
pub(super) fn as_array<'a, 'i>(value: &'a Value<'i>) -> Option<&'a [Value<'i>]> {
    match value.get_ref() {
        DeValue::Array(items) => Some(items),
        _ => None,
    }
}

//! How pages write dates, moments and numbers: one human format each, so a
//! learner reads the same "7 Dec 2026, 14:03 UTC" on every page. Every
//! moment Lyceum stores is UTC, and a moment shown says so.
//!
//! Typed views hold [`Day`] and [`Moment`] fields, which serialize as the
//! human text; machine formats (feeds, CSV, APIs) use [`iso`].
//!
//! The text is written directly rather than through chrono's `format`, which
//! parses its pattern on every call (a thread page shows a moment per post).

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use serde::{Serialize, Serializer};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn month_short(month0: u32) -> &'static str {
    &MONTHS[month0 as usize % 12][..3]
}

/// A calendar day as people read it: "7 December 2026".
pub fn day(d: NaiveDate) -> String {
    format!("{} {} {}", d.day(), MONTHS[d.month0() as usize % 12], d.year())
}

/// A moment as people read it, with its time zone: "7 Dec 2026, 14:03 UTC".
pub fn moment(t: NaiveDateTime) -> String {
    format!("{} {} {}, {:02}:{:02} UTC", t.day(), month_short(t.month0()), t.year(), t.hour(), t.minute())
}

/// A moment for machines (feeds, CSV, JSON): "2026-12-07T14:03:00Z".
pub fn iso(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A whole number with thousands separated: "1,234,567".
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A day in a typed view; serializes as [`day`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day(pub NaiveDate);

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&day(self.0))
    }
}

impl From<NaiveDate> for Day {
    fn from(d: NaiveDate) -> Day {
        Day(d)
    }
}

impl From<NaiveDateTime> for Day {
    fn from(t: NaiveDateTime) -> Day {
        Day(t.date())
    }
}

/// A moment in a typed view; serializes as [`moment`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Moment(pub NaiveDateTime);

impl Serialize for Moment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&moment(self.0))
    }
}

impl From<NaiveDateTime> for Moment {
    fn from(t: NaiveDateTime) -> Moment {
        Moment(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, 5).unwrap()
    }

    #[test]
    fn one_human_format_for_days_and_moments() {
        assert_eq!(day(NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()), "7 December 2026");
        assert_eq!(moment(at(2026, 12, 7, 14, 3)), "7 Dec 2026, 14:03 UTC");
        assert_eq!(moment(at(2027, 1, 31, 0, 0)), "31 Jan 2027, 00:00 UTC");
        assert_eq!(iso(at(2026, 12, 7, 14, 3)), "2026-12-07T14:03:05Z");
        // The direct writer says what chrono's pattern says.
        let t = at(2026, 5, 9, 8, 7);
        assert_eq!(moment(t), t.format("%-d %b %Y, %H:%M UTC").to_string());
        assert_eq!(day(t.date()), t.format("%-d %B %Y").to_string());
    }

    #[test]
    fn views_serialize_the_human_text() {
        let t = at(2026, 12, 7, 14, 3);
        assert_eq!(serde_json::to_value(Moment(t)).unwrap(), "7 Dec 2026, 14:03 UTC");
        assert_eq!(serde_json::to_value(Day::from(t)).unwrap(), "7 December 2026");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-12_345), "-12,345");
    }
}

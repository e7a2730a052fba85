//! Spreadsheet-safe CSV cells. A spreadsheet evaluates a cell that starts
//! with `=`, `+`, `-` or `@` as a formula (and tab or carriage return can
//! smuggle one past a leading-character check), so a learner named
//! `=HYPERLINK(…)` would run in the reader's spreadsheet. Following OWASP's
//! guidance on CSV injection, such a cell is written with a leading `'`,
//! which spreadsheets show as text.
//!
//! Every CSV cell Lyceum writes passes through [`spreadsheet_safe`]: the
//! partner formats here, and the site's own CSVs through the `lyceum` crate's
//! writer. A cell that is a plain number (it parses as an `f64`, such as a
//! negative score `-1.5`) is left alone: a spreadsheet reads it as the number
//! it is, not as a formula, and a quote would turn data into text.

use std::borrow::Cow;

/// Leading characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `value` as a cell no spreadsheet will evaluate.
pub fn spreadsheet_safe(value: &str) -> Cow<'_, str> {
    if value.starts_with(FORMULA_STARTS) && value.parse::<f64>().is_err() {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// Text as given, for formats that no spreadsheet evaluates (JSON).
pub fn as_given(value: &str) -> Cow<'_, str> {
    Cow::Borrowed(value)
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formula_starts_are_quoted() {
        for (given, written) in [
            (r#"=HYPERLINK("http://evil","x")"#, r#"'=HYPERLINK("http://evil","x")"#),
            ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "'\r=1+1"),
            ("-", "'-"),
        ] {
            assert_eq!(spreadsheet_safe(given), written, "{given:?}");
        }
    }

    #[test]
    fn ordinary_text_and_numbers_are_unchanged() {
        for value in ["Ada Lovelace", "", "a=b", "ada@example.org", "1+1", "-1.5", "+7", "-0", "2026-01-01", " =x"] {
            assert_eq!(spreadsheet_safe(value), value, "{value:?}");
        }
    }
}

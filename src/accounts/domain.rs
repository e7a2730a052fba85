//! Account input parsed once at the edge into domain types; services never
//! look at raw strings again.

use chrono::{Datelike, NaiveDate};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Field name → message, in form order, for re-rendering a form.
pub type FieldErrors = BTreeMap<&'static str, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("Please enter your email address.".into());
        }
        if s.len() > 254 {
            return Err("That email address is too long.".into());
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err("Please enter an email address like name@example.org.".into());
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"@".contains(c));
        if !domain_ok || !local_ok {
            return Err("Please enter an email address like name@example.org.".into());
        }
        // Stored and compared lower-cased: one address, one account.
        Ok(Email(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Username, String> {
        let s = raw.trim();
        if s.chars().count() < 3 || s.chars().count() > 30 {
            return Err("Usernames are 3 to 30 characters long.".into());
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err("Use only letters, digits, '-' and '_' in your username.".into());
        }
        if !s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
            return Err("Your username must start with a letter or a digit.".into());
        }
        Ok(Username(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str, what: &str) -> Result<PersonName, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(format!("Please enter your {what}."));
        }
        if s.chars().count() > 100 {
            return Err(format!("Your {what} can be at most 100 characters."));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(format!("Your {what} contains characters we cannot store."));
        }
        Ok(PersonName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Optional free text (phone, company): empty means absent.
pub fn optional_text(raw: &str, what: &str, max: usize) -> Result<Option<String>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > max || s.chars().any(|c| c.is_control()) {
        return Err(format!("Please enter a valid {what} (at most {max} characters)."));
    }
    Ok(Some(s.to_string()))
}

pub fn phone(raw: &str) -> Result<Option<String>, String> {
    let Some(p) = optional_text(raw, "phone number", 32)? else { return Ok(None) };
    let digits = p.chars().filter(|c| c.is_ascii_digit()).count();
    if digits < 6 || !p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return Err("Please enter a phone number with digits, like +44 20 7946 0958.".into());
    }
    Ok(Some(p))
}

static COMMON_PASSWORDS: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt").lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect()
});

/// ASVS 2.1.1: twelve characters at least, with the common-password check below.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A password that passed the rules; only ever hashed, never stored or shown.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str, username: Option<&str>) -> Result<NewPassword, String> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(format!("Use at least {MIN_PASSWORD_CHARS} characters."));
        }
        if raw.len() > 1024 {
            return Err("That password is too long (at most 1024 bytes).".into());
        }
        if COMMON_PASSWORDS.contains(raw.to_lowercase().as_str()) {
            return Err("That password is on a list of commonly used passwords. Please choose another.".into());
        }
        if username.is_some_and(|u| raw.to_lowercase().contains(&u.to_lowercase())) {
            return Err("Your password must not contain your username.".into());
        }
        Ok(NewPassword(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeBand {
    /// Under 13: cannot register (ACC-9).
    Child,
    /// 13–17: needs a recorded parental consent (ACC-9).
    Minor,
    Adult,
}

pub fn parse_date_of_birth(raw: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| "Please enter your date of birth as YYYY-MM-DD.".to_string())?;
    if date > today || date.year() < today.year() - 120 {
        return Err("Please enter your real date of birth.".into());
    }
    Ok(date)
}

pub fn age_on(dob: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - dob.year();
    if (today.month(), today.day()) < (dob.month(), dob.day()) {
        age -= 1;
    }
    age
}

pub fn age_band(dob: NaiveDate, today: NaiveDate) -> AgeBand {
    match age_on(dob, today) {
        a if a < 13 => AgeBand::Child,
        a if a < 18 => AgeBand::Minor,
        _ => AgeBand::Adult,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_whole_years() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let born = NaiveDate::from_ymd_opt(2013, 11, 24).unwrap();
        assert_eq!(age_on(born, today), 12);
        assert_eq!(age_band(born, today), AgeBand::Child);
        let born = NaiveDate::from_ymd_opt(2013, 11, 23).unwrap();
        assert_eq!(age_band(born, today), AgeBand::Minor);
        let born = NaiveDate::from_ymd_opt(2008, 11, 23).unwrap();
        assert_eq!(age_band(born, today), AgeBand::Adult);
    }

    #[test]
    fn emails_are_parsed_once() {
        assert_eq!(Email::parse(" Ada@Example.ORG ").unwrap().as_str(), "ada@example.org");
        assert!(Email::parse("no-at-sign").is_err());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("a b@c.org").is_err());
        assert!(Email::parse("<script>@x.org").is_err());
    }

    #[test]
    fn common_and_short_passwords_are_refused() {
        assert!(NewPassword::parse("short", None).is_err());
        assert!(NewPassword::parse("qwertyuiop", None).is_err());
        assert!(NewPassword::parse("violet-moon", None).is_err(), "eleven characters");
        assert!(NewPassword::parse("violet-moons", None).is_ok(), "twelve characters");
        assert!(NewPassword::parse("Password123", None).is_err());
        assert!(NewPassword::parse("ada-lovelace-2026", Some("ada")).is_err());
        assert!(NewPassword::parse("correct horse battery", Some("ada")).is_ok());
    }
}

//! Where a browser goes back to after signing in or stepping up (`next`):
//! parsed once, at the edge, into a same-site path. Anything else (another
//! site, a scheme, a backslash, control characters, an oversized value)
//! falls back to the dashboard, so a crafted link can neither send a person
//! off the site (ASVS 5.1.5) nor make the redirect fail.

use rocket::form::{self, FromFormField, ValueField};
use rocket::http::uri::Origin;

/// Longer than any page address of the site; short enough to travel in a
/// cookie while a sign-in waits for its second factor.
const MAX_BYTES: usize = 2048;

/// Where to go when `next` is missing or refused.
const HOME: &str = "/dashboard";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextPath(String);

impl NextPath {
    /// A same-site path, ready for a `Location` header, or `None`.
    pub fn parse(raw: &str) -> Option<NextPath> {
        let same_site = raw.starts_with('/') && !raw.starts_with("//");
        if !same_site || raw.len() > MAX_BYTES || raw.contains('\\') || raw.chars().any(char::is_control) {
            return None;
        }
        // Browsers read a backslash as a slash, so `/\evil` would be another
        // host: refused above. What is left is made a valid origin-form URI
        // (spaces and non-ASCII percent-encoded), and checked to be one.
        let encoded = crate::web::page::safe_location(raw);
        Origin::parse(&encoded).ok().filter(|o| o.path().as_str().starts_with('/'))?;
        Some(NextPath(encoded))
    }

    /// The value given, when it is a same-site path; else the dashboard.
    pub fn or_home(raw: Option<&str>) -> NextPath {
        raw.and_then(NextPath::parse).unwrap_or_else(NextPath::home)
    }

    pub fn home() -> NextPath {
        NextPath(HOME.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for NextPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// In a form or a query, an odd value is not an error the person can fix:
/// it becomes the dashboard.
#[rocket::async_trait]
impl<'v> FromFormField<'v> for NextPath {
    fn from_value(field: ValueField<'v>) -> form::Result<'v, Self> {
        Ok(NextPath::or_home(Some(field.value)))
    }

    fn default() -> Option<Self> {
        Some(NextPath::home())
    }
}

#[cfg(test)]
mod tests {
    use super::NextPath;

    #[test]
    fn only_same_site_paths_pass() {
        for good in ["/", "/courses", "/courses?q=a%20b", "/account/security?tab=codes"] {
            assert_eq!(NextPath::parse(good).map(|n| n.into_string()).as_deref(), Some(good), "{good}");
        }
        assert_eq!(NextPath::parse("/cours es").unwrap().as_str(), "/cours%20es");
        assert_eq!(NextPath::parse("/café").unwrap().as_str(), "/caf%C3%A9");
        let long = format!("/{}", "a".repeat(10_000));
        for bad in [
            "",
            "dashboard",
            "//evil.example",
            "/\\evil",
            "/\\\\evil",
            "https://evil.example",
            "javascript:alert(1)",
            "\0",
            "/\0",
            "/ok\nLocation: https://evil.example",
            "\u{202e}/x",
            long.as_str(),
        ] {
            assert!(NextPath::parse(bad).is_none(), "{bad:?} refused");
        }
        assert_eq!(NextPath::or_home(Some("//evil.example")).as_str(), "/dashboard");
        assert_eq!(NextPath::or_home(None).as_str(), "/dashboard");
    }
}

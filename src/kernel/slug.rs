//! Slugs: the short names in URLs that staff choose (partners, forums).

/// 2 to 60 lowercase ASCII letters, digits and hyphens, not starting or
/// ending with a hyphen.
pub fn valid_slug(slug: &str) -> bool {
    (2..=60).contains(&slug.len())
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

//! Typed page contexts of the certificates area.

use serde::Serialize;

/// A verification code that names no certificate: what was typed, whether
/// it had the shape of a code at all, and a form to try again.
#[derive(Serialize)]
pub struct NoSuchCertificate {
    pub code: String,
    pub well_formed: bool,
}

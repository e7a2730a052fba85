//! Accounts: sign-up (with the age rules of ACC-9), email verification,
//! sign-in sessions, password reset, account settings and roles. Owns the
//! `users`, `sessions`, `account_tokens`, `parental_consents` and `role_grants`
//! tables. Must not read course, consent or partner data.

pub mod domain;
pub mod guesses;
pub mod lifecycle;
pub mod model;
pub mod oidc;
pub mod passwords;
pub mod profiles;
pub mod roles;
pub mod routes;
pub mod security;
pub mod service;
pub mod sessions;
pub mod signin_with;
pub mod sms;
pub mod tokens;
pub mod twofactor;

pub use crate::kernel::SessionUser;

/// Version of the terms a learner accepts at sign-up.
pub const TERMS_VERSION: &str = "2026-11-01";

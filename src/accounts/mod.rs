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

use roles::Role;

/// Version of the terms a learner accepts at sign-up.
pub const TERMS_VERSION: &str = "2026-11-01";

/// What a request knows about its signed-in user: no password hash, no phone.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub email_verified: bool,
    pub roles: Vec<(Role, String)>,
}

impl SessionUser {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|(r, _)| *r == role)
    }

    pub fn has_role_in(&self, role: Role, scope: &str) -> bool {
        self.roles.iter().any(|(r, s)| *r == role && s == scope)
    }

    pub fn is_staff(&self) -> bool {
        self.has_role(Role::Staff)
    }
}

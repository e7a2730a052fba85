//! Accounts: sign-up (with the age rules of ACC-9), email verification,
//! sign-in sessions, password reset, account settings and roles. Owns the
//! `users`, `sessions`, `account_tokens`, `parental_consents` and `role_grants`
//! tables. Must not read course, consent or partner data.

pub mod domain;
pub mod guesses;
pub mod hooks;
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
pub mod signin;
pub mod signin_with;
pub mod sms;
pub mod sms_service;
pub mod tokens;
pub mod twofactor;
pub mod views;

pub use crate::kernel::SessionUser;

/// Version of the terms a learner accepts at sign-up.
pub const TERMS_VERSION: &str = "2026-11-01";

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::home,
        routes::signup_form,
        routes::signup,
        routes::signin_form,
        routes::signin,
        routes::signout,
        routes::verify_email,
        routes::resend_verification,
        routes::forgot_form,
        routes::forgot,
        routes::reset_form,
        routes::reset,
        routes::settings,
        routes::update_profile,
        routes::change_email,
        routes::confirm_email,
        routes::change_password,
        routes::end_other_sessions,
        routes::parent_consent_form,
        routes::parent_consent,
        security::page,
        security::end_session,
        security::begin_app,
        security::confirm_app,
        security::remove_app,
        security::renew_codes,
        security::signin_code_form,
        security::signin_code,
        security::step_up_form,
        security::step_up,
        security::begin_text,
        security::confirm_text,
        security::remove_text,
        security::signin_text,
        security::step_up_text,
        signin_with::start,
        signin_with::start_link,
        signin_with::callback,
        signin_with::finish_form,
        signin_with::create,
        signin_with::prove_with_password,
        signin_with::prove_by_email,
        signin_with::confirm_link_form,
        signin_with::confirm_link,
        signin_with::unlink,
        sms_service::inbound,
        sms_service::staff_outbox,
        profiles::edit_page,
        profiles::save,
        profiles::avatar,
        profiles::remove_avatar,
        profiles::show,
    ]
}

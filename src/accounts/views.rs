//! What the account pages show: one `Serialize` struct per page context
//! (and its rows), field for field the keys the templates read. Moments are
//! `web::format::Moment` and days `Day`, so they read as every other page's;
//! `None` is `null` in the page.

use std::collections::BTreeMap;

use serde::Serialize;

use super::domain::FieldErrors;
use crate::web::format::{Day, Moment};

/// What a form's fields held when it was sent (or what they start with),
/// by field name.
pub type Values = BTreeMap<String, String>;

/// A page with nothing of its own to show.
#[derive(Debug, Default, Serialize)]
pub struct Nothing {}

/// `/`: the home page.
#[derive(Debug, Serialize)]
pub struct Home {
    pub signed_in: bool,
    /// The notices in force, as the privacy area words them (`null` when none).
    pub notices: serde_json::Value,
}

/// A form page: the values typed, the errors by field, and what the page
/// itself shows (`page`, its keys beside these).
#[derive(Debug, Serialize)]
pub struct Form<P: Serialize> {
    pub values: Values,
    pub errors: FieldErrors,
    pub has_errors: bool,
    #[serde(flatten)]
    pub page: P,
}

impl<P: Serialize> Form<P> {
    pub fn new(values: Values, errors: &FieldErrors, page: P) -> Form<P> {
        Form { values, errors: errors.clone(), has_errors: !errors.is_empty(), page }
    }
}

/// Sign-in and sign-up: where to go afterwards (the "Sign in with …"
/// buttons carry it too).
#[derive(Debug, Serialize)]
pub struct Next {
    pub next: Option<String>,
}

/// `/password/reset/<token>`.
#[derive(Debug, Serialize)]
pub struct Reset {
    pub token: String,
}

/// `/parent-consent/<token>`.
#[derive(Debug, Serialize)]
pub struct ParentConsent {
    pub token: String,
    pub learner: Learner,
}

#[derive(Debug, Serialize)]
pub struct Learner {
    pub first_name: String,
    pub username: String,
}

/// The parent-consent outcome: done, or the link no longer works.
#[derive(Debug, Serialize)]
pub struct ParentConsentDone {
    pub expired: bool,
    pub first_name: Option<String>,
}

/// `/account`: the settings page.
#[derive(Debug, Serialize)]
pub struct Settings {
    pub profile: ProfileDetails,
    pub values: Values,
    pub errors: FieldErrors,
    pub sessions: Vec<SettingsSession>,
    pub other_sessions: bool,
}

#[derive(Debug, Serialize)]
pub struct ProfileDetails {
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub company: Option<String>,
}

impl ProfileDetails {
    /// The details as the form's starting values.
    pub fn values(&self) -> Values {
        let mut v = Values::new();
        v.insert("username".into(), self.username.clone());
        v.insert("email".into(), self.email.clone());
        v.insert("first_name".into(), self.first_name.clone());
        v.insert("last_name".into(), self.last_name.clone());
        if let Some(phone) = &self.phone {
            v.insert("phone".into(), phone.clone());
        }
        if let Some(company) = &self.company {
            v.insert("company".into(), company.clone());
        }
        v
    }
}

#[derive(Debug, Serialize)]
pub struct SettingsSession {
    pub current: bool,
    pub device: String,
    pub created_at: Moment,
    pub last_seen_at: Moment,
}

/// `/account/security`.
#[derive(Debug, Serialize)]
pub struct Security {
    pub sessions: Vec<SecuritySession>,
    pub places_known: bool,
    pub app: bool,
    pub text: Option<TextNumber>,
    pub any: bool,
    pub recovery_left: i64,
    pub providers: LinkedProviders,
    pub events: Vec<SecurityEvent>,
}

#[derive(Debug, Serialize)]
pub struct SecuritySession {
    /// A short, stable handle of the session for its form (never the whole id).
    pub handle: String,
    pub current: bool,
    pub device: String,
    pub address: Option<String>,
    pub place: Option<String>,
    pub started: Moment,
    pub seen: Moment,
}

/// The number codes are texted to, masked.
#[derive(Debug, Serialize)]
pub struct TextNumber {
    pub to: String,
    pub on: bool,
    pub stopped: bool,
}

/// The "Sign in with …" providers on the security page, each with its link.
#[derive(Debug, Serialize)]
pub struct LinkedProviders {
    pub has_password: bool,
    pub list: Vec<LinkedProvider>,
}

#[derive(Debug, Serialize)]
pub struct LinkedProvider {
    pub id: String,
    pub name: String,
    pub linked: bool,
    pub email: Option<String>,
    pub since: Option<Day>,
}

#[derive(Debug, Serialize)]
pub struct SecurityEvent {
    pub kind: String,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub device: Option<String>,
    pub at: Moment,
}

/// Setting up an authenticator app: its key, as text, link and QR code.
#[derive(Debug, Serialize)]
pub struct AppSetup {
    pub secret: String,
    pub url: String,
    pub qr: String,
}

/// New recovery codes, shown once (`first`: two-factor sign-in just came on).
#[derive(Debug, Serialize)]
pub struct RecoveryCodes {
    pub codes: Vec<String>,
    pub first: bool,
}

/// The second step of signing in (`text`: codes by text are on).
#[derive(Debug, Serialize)]
pub struct SignInCode {
    pub text: bool,
}

/// Confirming it is you before a sensitive change.
#[derive(Debug, Serialize)]
pub struct StepUp {
    pub next: String,
    pub next_encoded: String,
    pub text: bool,
    /// The account has no second factor: its password confirms instead.
    pub password: bool,
}

/// Confirming a number for codes by text (`to`: masked).
#[derive(Debug, Serialize)]
pub struct ConfirmNumber {
    pub to: String,
}

/// `/staff/texts`: texts kept instead of sent.
#[derive(Debug, Serialize)]
pub struct Texts {
    pub live: bool,
    pub texts: Vec<KeptText>,
}

#[derive(Debug, Serialize)]
pub struct KeptText {
    pub to: String,
    pub body: String,
    pub at: Moment,
}

/// Finishing a sign-in with a provider: the account it found (or would create).
#[derive(Debug, Serialize)]
pub struct SignInWith {
    pub provider: String,
    pub email: String,
    pub verified: bool,
    pub existing: bool,
    pub has_password: bool,
}

/// Confirming, from the emailed link, a provider's link to the account.
#[derive(Debug, Serialize)]
pub struct LinkConfirm {
    pub provider: String,
    pub email: Option<String>,
}

/// A "Sign in with …" button of the layout.
#[derive(Debug, Serialize)]
pub struct ProviderButton {
    pub id: String,
    pub name: String,
}

/// `/profile`: one's own profile, to edit.
#[derive(Debug, Serialize)]
pub struct ProfileEdit {
    pub username: String,
    pub bio: String,
    pub full: bool,
    pub avatar: Option<String>,
    pub bio_max: usize,
}

/// `/u/<username>`: someone's profile as another signed-in person sees it.
#[derive(Debug, Serialize)]
pub struct Profile {
    pub username: String,
    pub own: bool,
    pub full: bool,
    pub avatar: Option<String>,
    pub bio: Option<String>,
    pub courses: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A form's own keys sit beside its values and errors, as the templates read them.
    #[test]
    fn a_form_page_flattens_its_own_keys_beside_values_and_errors() {
        let errors = FieldErrors::from([("token", "bad".to_string())]);
        let v = serde_json::to_value(Form::new(Values::new(), &errors, Reset { token: "t".into() })).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "values": {}, "errors": { "token": "bad" }, "has_errors": true, "token": "t" })
        );
        let v = serde_json::to_value(Form::new(Values::new(), &FieldErrors::new(), Nothing {})).unwrap();
        assert_eq!(v, serde_json::json!({ "values": {}, "errors": {}, "has_errors": false }));
    }
}

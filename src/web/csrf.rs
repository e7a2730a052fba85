//! CSRF protection: one random token per browser session, kept in a private
//! (encrypted) cookie and echoed in a hidden field of every form. `CsrfForm`
//! is the only way a handler receives a urlencoded form body, so no POST can
//! skip the check.

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::form::{Form, FromForm};
use rocket::http::{Cookie, SameSite, Status};
use rocket::outcome::Outcome;
use rocket::request::Request;
use std::collections::BTreeMap;

use crate::config::Config;
use crate::kernel::tokens::{constant_time_eq, random_token};
use crate::web::error::set_detail;

const CSRF_COOKIE: &str = "lyceum_csrf";
pub const CSRF_FIELD: &str = "csrf_token";

#[derive(Default)]
struct CachedToken(Option<String>);

/// An essential cookie: HttpOnly, SameSite=Lax, Secure when served over TLS.
pub fn essential_cookie(secure: bool, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value)).path("/").http_only(true).same_site(SameSite::Lax).secure(secure).build()
}

/// The body of a form that carries nothing but its CSRF token (sign-out,
/// retry buttons).
#[derive(FromForm)]
pub struct NoFields {
    #[field(name = "csrf_token")]
    _token: Option<String>,
}

pub type CsrfOnly = CsrfForm<NoFields>;

pub fn is_tls(req: &Request<'_>) -> bool {
    req.rocket().state::<Config>().map(|c| c.is_tls()).unwrap_or(false)
}

/// The browser's CSRF token, created (and its cookie set) on first use.
pub fn token(req: &Request<'_>) -> String {
    let cached = req.local_cache(|| {
        let existing = req.cookies().get_private(CSRF_COOKIE).map(|c| c.value().to_string());
        CachedToken(existing.or_else(|| {
            let fresh = random_token(32);
            req.cookies().add_private(essential_cookie(is_tls(req), CSRF_COOKIE, fresh.clone()));
            Some(fresh)
        }))
    });
    cached.0.clone().unwrap_or_default()
}

/// A fresh token after sign-in and sign-out, so a token seen before cannot be
/// replayed in the new session.
pub fn rotate(cookies: &rocket::http::CookieJar<'_>, secure: bool) {
    cookies.add_private(essential_cookie(secure, CSRF_COOKIE, random_token(32)));
}

/// A urlencoded form whose CSRF token matched. `values` keeps what was typed
/// (never password fields) so a form with errors re-renders it.
pub struct CsrfForm<T> {
    pub form: T,
    pub values: BTreeMap<String, String>,
}

#[rocket::async_trait]
impl<'r, T: FromForm<'r> + Send + 'r> FromData<'r> for CsrfForm<T> {
    type Error = String;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let fail = |status: Status, msg: &str| {
            set_detail(req, msg);
            Outcome::Error((status, msg.to_string()))
        };
        let is_form = req.content_type().map(|ct| ct.is_form()).unwrap_or(false);
        if !is_form {
            return fail(Status::UnsupportedMediaType, "This form must be sent as application/x-www-form-urlencoded.");
        }
        let limit = req.limits().get("form").unwrap_or(64.kibibytes());
        let body = match data.open(limit).into_string().await {
            Ok(s) if s.is_complete() => s.into_inner(),
            Ok(_) => return fail(Status::PayloadTooLarge, "What you sent is larger than this form accepts."),
            Err(_) => return fail(Status::BadRequest, "The form could not be read: it is not valid UTF-8 text."),
        };
        // Decoded once (percent-escapes and '+'; invalid UTF-8 escapes become U+FFFD)
        // and kept for the request's lifetime, as Rocket's form parser borrows them.
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(body.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let pairs: &'r [(String, String)] = rocket::request::local_cache!(req, pairs);
        let mut values = BTreeMap::new();
        let mut sent_token = None;
        for (k, v) in pairs {
            if k == CSRF_FIELD {
                sent_token = Some(v.clone());
            } else if !k.contains("password") {
                values.insert(k.clone(), v.clone());
            }
        }
        let expected = req.cookies().get_private(CSRF_COOKIE).map(|c| c.value().to_string());
        match (sent_token, expected) {
            (Some(sent), Some(expected)) if constant_time_eq(sent.as_bytes(), expected.as_bytes()) => {}
            _ => {
                return fail(
                    Status::Forbidden,
                    "This form has expired or did not come from this site. Please go back, reload the page and try again.",
                );
            }
        }
        let fields = pairs.iter().map(|(k, v)| rocket::form::ValueField::from((k.as_str(), v.as_str())));
        match Form::<T>::parse_iter(fields) {
            Ok(form) => Outcome::Success(CsrfForm { form, values }),
            Err(errors) => {
                let msg = errors
                    .iter()
                    .map(|e| match e.name.as_ref() {
                        Some(n) => format!("{n}: {}", e.kind),
                        None => e.kind.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                fail(Status::UnprocessableEntity, &format!("The form could not be processed: {msg}"))
            }
        }
    }
}

/// The check `CsrfForm` does, for multipart forms (file uploads), whose
/// handlers receive the token as a field of their own form type.
pub fn verify_token(cookies: &rocket::http::CookieJar<'_>, sent: &str) -> Result<(), crate::web::AppError> {
    let expected = cookies.get_private(CSRF_COOKIE).map(|c| c.value().to_string());
    match expected {
        Some(expected) if constant_time_eq(sent.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(crate::web::AppError::Forbidden(
            "This form has expired or did not come from this site. Please go back, reload the page and try again."
                .into(),
        )),
    }
}

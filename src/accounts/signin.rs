//! Starting a signed-in session (the private cookie holding its token, a
//! fresh CSRF token) and the guard for handlers that end one. Used by
//! accounts' sign-in pages and by the policy re-acceptance that finishes a
//! held sign-in.

use rocket::http::CookieJar;

use crate::accounts::sessions;
use crate::config::Config;
use crate::db::{Db, now};
use crate::web::csrf::{self, essential_cookie};
use crate::web::guards::SessionState;
use crate::web::{AppError, AppResult, ClientInfo};

/// Starts a session for `user_id` and sets its cookie.
pub async fn start_session(
    db: &Db,
    config: &Config,
    cookies: &CookieJar<'_>,
    client: &ClientInfo,
    user_id: i64,
    remember: bool,
    second_factor: bool,
) -> AppResult<()> {
    let days = if remember { config.remember_days } else { config.session_days };
    let client = client.clone();
    let token = db
        .run(move |conn| {
            sessions::start(conn, user_id, chrono::Duration::days(days), remember, &client, second_factor, now())
                .map_err(AppError::from)
        })
        .await?;
    let mut cookie = essential_cookie(config.is_tls(), sessions::COOKIE, token);
    cookie.set_max_age(rocket::time::Duration::days(days));
    cookies.add_private(cookie);
    csrf::rotate(cookies, config.is_tls());
    Ok(())
}

/// The resolved session, for handlers that end it.
pub struct SessionGuard(pub SessionState);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for SessionGuard {
    type Error = ();
    async fn from_request(req: &'r rocket::Request<'_>) -> rocket::request::Outcome<Self, ()> {
        rocket::outcome::Outcome::Success(SessionGuard(req.local_cache(SessionState::default).clone()))
    }
}

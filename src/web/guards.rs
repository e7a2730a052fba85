//! Request guards: who is asking (`CurrentUser`, `StaffUser`) and from where
//! (`ClientInfo`). The session is resolved once per request by the session
//! fairing; guards only read that result.

use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};

use crate::accounts::SessionUser;
use crate::accounts::roles::Role;

/// The outcome of resolving the session cookie, cached per request.
#[derive(Debug, Default, Clone)]
pub struct SessionState {
    pub user: Option<SessionUser>,
    /// Hash of the session token (the `sessions.id`), to end this session.
    pub session_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CurrentUser(pub SessionUser);

impl std::ops::Deref for CurrentUser {
    type Target = SessionUser;
    fn deref(&self) -> &SessionUser {
        &self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CurrentUser {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match &req.local_cache(SessionState::default).user {
            Some(user) => Outcome::Success(CurrentUser(user.clone())),
            None => Outcome::Error((Status::Unauthorized, ())),
        }
    }
}

/// A signed-in member of the operator's staff.
#[derive(Debug, Clone)]
pub struct StaffUser(pub SessionUser);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for StaffUser {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match &req.local_cache(SessionState::default).user {
            Some(user) if user.has_role(Role::Staff) => Outcome::Success(StaffUser(user.clone())),
            Some(_) => {
                crate::web::error::set_detail(req, "This page is for the operator's staff only.");
                Outcome::Error((Status::Forbidden, ()))
            }
            None => Outcome::Error((Status::Unauthorized, ())),
        }
    }
}

/// Where a request came from, recorded with consents and sessions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// Key for rate limits: the client address, or one shared bucket when the
    /// address is unknown (tests, unusual proxies).
    pub fn rate_key(&self) -> String {
        self.ip.clone().unwrap_or_else(|| "unknown".into())
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientInfo {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        Outcome::Success(ClientInfo {
            ip: req.client_ip().map(|ip| ip.to_string()),
            user_agent: req.headers().get_one("User-Agent").map(|ua| ua.chars().take(512).collect()),
        })
    }
}

/// Whoever is asking, signed in or not; never fails.
#[derive(Debug, Clone)]
pub struct Viewer(pub Option<SessionUser>);

impl Viewer {
    pub fn signed_in(&self) -> bool {
        self.0.is_some()
    }
    pub fn is_staff(&self) -> bool {
        self.0.as_ref().is_some_and(|u| u.has_role(Role::Staff))
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Viewer {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        Outcome::Success(Viewer(req.local_cache(SessionState::default).user.clone()))
    }
}

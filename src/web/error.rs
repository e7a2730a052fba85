//! One error type for the web layer, mapped once to an HTML error page or an
//! RFC 9457 problem document depending on what the client accepts.

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Redirect, Responder, Response};

use crate::db::DbError;
use crate::web::fairings::RequestId;
use crate::web::page::Templates;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("The page you asked for does not exist.")]
    NotFound,
    /// A named thing that does not exist, in words for the client (404).
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("Please sign in to continue.")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    /// An upload over its limit; the message names the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The request contradicts what is recorded (a second, different result).
    #[error("{0}")]
    Conflict(String),
    /// The thing existed but is no longer available (an expired download).
    #[error("{0}")]
    Gone(String),
    #[error("Too many attempts. Please wait {retry_after} seconds and try again.")]
    RateLimited { retry_after: u64 },
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
    /// The search backend failed (a Meilisearch server that is down); the
    /// detail is logged, the client hears that search is unavailable (503).
    #[error("search: {0}")]
    SearchUnavailable(String),
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Db(DbError::Query(e))
    }
}

impl AppError {
    pub fn status(&self) -> Status {
        match self {
            AppError::NotFound | AppError::Missing(_) => Status::NotFound,
            AppError::Forbidden(_) => Status::Forbidden,
            AppError::Unauthorized => Status::Unauthorized,
            AppError::BadRequest(_) => Status::BadRequest,
            AppError::Unprocessable(_) => Status::UnprocessableEntity,
            AppError::TooLarge(_) => Status::PayloadTooLarge,
            AppError::Conflict(_) => Status::Conflict,
            AppError::Gone(_) => Status::Gone,
            AppError::RateLimited { .. } => Status::TooManyRequests,
            AppError::Db(e) if e.is_nul_in_text() => Status::BadRequest,
            AppError::Db(_) | AppError::Internal(_) => Status::InternalServerError,
            AppError::SearchUnavailable(_) => Status::ServiceUnavailable,
        }
    }

    /// What the client is told: internal details stay in the log.
    pub fn public_detail(&self) -> String {
        match self {
            AppError::Db(e) if e.is_nul_in_text() => NUL_IN_TEXT.into(),
            AppError::Db(_) | AppError::Internal(_) => {
                "Something went wrong on our side. The error has been logged; please try again.".into()
            }
            AppError::SearchUnavailable(_) => {
                "Search is unavailable right now. Please try again in a few minutes; browsing works meanwhile.".into()
            }
            other => other.to_string(),
        }
    }
}

const NUL_IN_TEXT: &str =
    "The request holds a NUL character (U+0000), which no text here may contain. Remove it and try again.";

/// Detail text a guard leaves for the catcher that renders its failure.
#[derive(Debug, Default, Clone)]
pub struct ErrorDetail(pub Option<String>);

pub fn set_detail(req: &Request<'_>, detail: impl Into<String>) {
    let detail = detail.into();
    req.local_cache(|| ErrorDetail(Some(detail)));
}

/// Set by the `MachineReadable` guard on routes that software reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct MachineReadableRoute(pub bool);

/// JSON when the client prefers it (API clients, `fetch` with JSON accept),
/// and on routes that software reads unless the client prefers HTML: a
/// verifier fetching a credential sends `*/*`, its own type or nothing, and a
/// browser sends `text/html` first.
pub fn wants_json(req: &Request<'_>) -> bool {
    if req.uri().path().starts_with("/api/") {
        return true;
    }
    if req.local_cache(MachineReadableRoute::default).0 {
        return !req.accept().is_some_and(|a| a.preferred().media_type().is_html());
    }
    match req.accept() {
        Some(accept) => {
            let preferred = accept.preferred().media_type();
            preferred.is_json() || (preferred.top() == "application" && preferred.sub().as_str().ends_with("json"))
        }
        None => false,
    }
}

fn title_for(status: Status) -> &'static str {
    match status.code {
        400 => "Bad request",
        401 => "Sign-in required",
        403 => "Not allowed",
        404 => "Page not found",
        405 => "Method not allowed",
        409 => "Conflict",
        410 => "No longer available",
        413 => "Too large",
        422 => "Cannot process this request",
        429 => "Too many requests",
        503 => "Temporarily unavailable",
        _ if status.code >= 500 => "Server error",
        _ => status.reason_lossy(),
    }
}

/// Renders an error for `status` as HTML or problem JSON.
pub fn render_error<'o>(req: &Request<'_>, status: Status, detail: &str, retry_after: Option<u64>) -> Response<'o> {
    let request_id = req.local_cache(RequestId::default).0.clone();
    let title = title_for(status);
    let (content_type, body) = if wants_json(req) {
        let problem = serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": status.code,
            "detail": detail,
            "instance": req.uri().path().as_str(),
            "request_id": request_id,
        });
        (ContentType::new("application", "problem+json"), problem.to_string())
    } else {
        let html = req
            .rocket()
            .state::<Templates>()
            .and_then(|t| {
                let view = crate::web::views::ErrorPage { code: status.code, title, detail, request_id: &request_id };
                // Four fields of text and a number always become JSON.
                let ctx = serde_json::to_value(view).ok()?;
                t.render_page(req, "errors/error", title, ctx).ok()
            })
            .unwrap_or_else(|| format!("<!doctype html><title>{title}</title><h1>{title}</h1>"));
        (ContentType::HTML, html)
    };
    let mut response = Response::build();
    response.status(status).header(content_type).sized_body(body.len(), std::io::Cursor::new(body));
    if let Some(seconds) = retry_after {
        response.header(Header::new("Retry-After", seconds.to_string()));
    }
    if status == Status::Unauthorized {
        response.header(www_authenticate(req));
    }
    response.finalize()
}

/// The challenge every 401 carries (RFC 9110 §11.6.1). Keys are bearer
/// tokens (RFC 6750): a request that sent one is told it was not accepted.
pub fn www_authenticate(req: &Request<'_>) -> Header<'static> {
    let sent_bearer = req
        .headers()
        .get_one("Authorization")
        .is_some_and(|h| h.trim().get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer ")));
    let value = if sent_bearer {
        r#"Bearer realm="lyceum", error="invalid_token", error_description="The key is not valid or was revoked""#
    } else {
        r#"Bearer realm="lyceum""#
    };
    Header::new("WWW-Authenticate", value)
}

/// Whether a route pattern (`/courses/<slug>`, `/static/<path..>`) matches
/// the decoded path segments.
fn pattern_matches(pattern: &str, path: &[&str]) -> bool {
    let pattern = pattern.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        if part.starts_with('<') && part.ends_with("..>") {
            return true;
        }
        let Some(segment) = path.get(i) else { return false };
        if !(part.starts_with('<') && part.ends_with('>')) && part != segment {
            return false;
        }
    }
    parts.len() == path.len()
}

/// For a request no route answered: the methods that routes at the same path
/// accept, when none of them is the request's own (then the path is known and
/// only the method is wrong: 405, not 404). Empty otherwise.
pub fn allowed_methods(req: &Request<'_>) -> Vec<&'static str> {
    use rocket::http::Method;
    let path: Vec<&str> = req.uri().path().segments().collect();
    // Rocket answers HEAD with the GET route.
    let asked = if req.method() == Method::Head { Method::Get } else { req.method() };
    let mut others = std::collections::BTreeSet::new();
    for route in req.rocket().routes() {
        if pattern_matches(route.uri.as_str(), &path) {
            if route.method == asked {
                return Vec::new();
            }
            others.insert(route.method.as_str());
        }
    }
    others.into_iter().collect()
}

/// 405 with the `Allow` header (RFC 9110 §15.5.6), rendered like every error.
fn method_not_allowed(req: &Request<'_>, allowed: &[&str]) -> Response<'static> {
    let list = allowed.join(", ");
    let detail = format!("This address does not accept {}; it accepts {list}.", req.method());
    let mut res = render_error(req, Status::MethodNotAllowed, &detail, None);
    res.set_header(Header::new("Allow", list));
    res
}

impl<'r> Responder<'r, 'static> for AppError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let status = self.status();
        if status.code >= 500 {
            let id = req.local_cache(RequestId::default).0.clone();
            tracing::error!(request_id = %id, error = %self, "request failed");
        }
        if let AppError::Unauthorized = self
            && !wants_json(req)
        {
            let next = req.uri().to_string();
            return Redirect::to(format!("/signin?next={}", crate::web::page::url_encode(&next))).respond_to(req);
        }
        let retry = match self {
            AppError::RateLimited { retry_after } => Some(retry_after),
            _ => None,
        };
        Ok(render_error(req, status, &self.public_detail(), retry))
    }
}

/// Catchers: every status Rocket produces on its own (unknown route, failed
/// guard, bad form) goes through the same renderer.
#[rocket::catch(default)]
pub fn default_catcher(status: Status, req: &Request<'_>) -> CatcherResponse {
    if status == Status::NotFound {
        let allowed = allowed_methods(req);
        if !allowed.is_empty() {
            return CatcherResponse::Error(method_not_allowed(req, &allowed));
        }
    }
    let detail = req.local_cache(ErrorDetail::default).0.clone();
    let detail = detail.unwrap_or_else(|| match status.code {
        400 => "The request could not be understood. Please check what you sent and try again.".into(),
        401 => "Please sign in to continue.".into(),
        403 => "You are not allowed to do that.".into(),
        404 => "The page you asked for does not exist.".into(),
        413 => match req.limits().get("data-form") {
            Some(limit) if req.content_type().is_some_and(|ct| ct.is_form_data()) => format!(
                "What you sent is larger than {}, the most one form may carry. Please send a smaller file.",
                crate::web::upload::size_words(limit.as_u64())
            ),
            _ => "What you sent is larger than this form accepts.".into(),
        },
        415 => "This endpoint does not accept that content type.".into(),
        422 => "Some of what you sent could not be processed. Please check the form and try again.".into(),
        429 => "Too many attempts. Please wait a minute and try again.".into(),
        _ if status.code >= 500 => "Something went wrong on our side. Please try again.".into(),
        _ => status.reason_lossy().to_string(),
    });
    if status == Status::Unauthorized && !wants_json(req) {
        let next = req.uri().to_string();
        return CatcherResponse::Redirect(Redirect::to(format!(
            "/signin?next={}",
            crate::web::page::url_encode(&next)
        )));
    }
    let retry = req.local_cache(ratelimit::RetryAfter::default).0;
    CatcherResponse::Error(render_error(req, status, &detail, retry))
}

use crate::web::ratelimit;

pub enum CatcherResponse {
    Redirect(Redirect),
    Error(Response<'static>),
}

impl<'r> Responder<'r, 'static> for CatcherResponse {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            CatcherResponse::Redirect(r) => r.respond_to(req),
            CatcherResponse::Error(r) => Ok(r),
        }
    }
}

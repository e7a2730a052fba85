//! Fairings: a request id, one log line and the request metrics per
//! request, and the security headers on every response.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};

use crate::config::Config;

#[derive(Debug, Default, Clone)]
pub struct RequestId(pub String);

struct Started(std::time::Instant);

/// Gives each request an id (echoed as `X-Request-Id`) and logs the request
/// with its id when it ends. The session cookie is resolved by the accounts
/// area's fairing (`accounts::sessions::ResolveSession`), attached after this
/// one, into [`crate::web::guards::SessionState`].
pub struct RequestContext;

#[rocket::async_trait]
impl Fairing for RequestContext {
    fn info(&self) -> Info {
        Info { name: "request context", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        req.local_cache(|| RequestId(id));
        req.local_cache(|| Started(std::time::Instant::now()));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let id = req.local_cache(RequestId::default).0.clone();
        let elapsed = req.local_cache(|| Started(std::time::Instant::now())).0.elapsed();
        res.set_header(Header::new("X-Request-Id", id.clone()));
        tracing::info!(
            request_id = %id,
            method = %req.method(),
            path = %req.uri().path(),
            status = res.status().code,
            ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        if let Some(metrics) = req.rocket().state::<crate::web::metrics::Metrics>() {
            let route = crate::web::metrics::route_label(req);
            metrics.observe(&route, req.method().as_str(), res.status().code, elapsed.as_secs_f64());
        }
    }
}

/// Security headers: a CSP with no inline script, no framing, no sniffing,
/// a conservative referrer policy, and HSTS when served over TLS.
pub struct SecurityHeaders {
    csp: String,
}

impl SecurityHeaders {
    /// `form_targets`: origins a form may lead to besides the site (browsers
    /// apply `form-action` to the redirect after a POST too, so the payment
    /// provider's checkout page must be listed).
    /// `media_origin`: the user-content origin, where course videos play from.
    pub fn new(form_targets: &[String], media_origin: Option<&str>) -> SecurityHeaders {
        let mut form_action = "'self'".to_string();
        for origin in form_targets {
            form_action.push(' ');
            form_action.push_str(origin);
        }
        SecurityHeaders {
            csp: format!(
                "default-src 'self'; script-src 'self'; style-src 'self'; \
                 img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; \
                 form-action {form_action}; frame-ancestors 'none'; \
                 frame-src https://www.youtube-nocookie.com https://player.vimeo.com; media-src 'self'{}",
                media_origin.map(|o| format!(" {o}")).unwrap_or_default()
            ),
        }
    }
}

/// Pages that may use the camera (the identity check's photo capture).
const CAMERA_PAGES: &[&str] = &["/account/verification"];

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info { name: "security headers", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        // A response that brings its own policy (a user's file, sandboxed) keeps it.
        if !res.headers().contains("Content-Security-Policy") {
            res.set_header(Header::new("Content-Security-Policy", self.csp.clone()));
        }
        res.set_header(Header::new("X-Content-Type-Options", "nosniff"));
        res.set_header(Header::new("Referrer-Policy", "strict-origin-when-cross-origin"));
        res.set_header(Header::new("X-Frame-Options", "DENY"));
        let camera = if CAMERA_PAGES.contains(&req.uri().path().as_str()) { "(self)" } else { "()" };
        res.set_header(Header::new("Permissions-Policy", format!("camera={camera}, microphone=(), geolocation=()")));
        if req.rocket().state::<Config>().map(|c| c.is_tls()).unwrap_or(false) {
            res.set_header(Header::new("Strict-Transport-Security", "max-age=63072000; includeSubDomains"));
        }
        if !req.uri().path().starts_with("/static/") {
            res.set_header(Header::new("Cache-Control", "no-store"));
        }
    }
}

//! What an operator's tools ask of a running site: readiness for a load
//! balancer (`/readyz`; liveness is `/healthz` in `web::assets`), metrics
//! for Prometheus (`/metrics`), and backups of a SQLite site
//! (`lyceum backup`, `lyceum restore`). Depends on the areas it reports on;
//! nothing depends on it but the application's assembly.

pub mod backup;

use std::sync::Arc;

use rocket::http::{ContentType, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{State, get};
use serde::Serialize;

use crate::config::Config;
use crate::db::{Db, DbError};
use crate::search::SearchIndex;
use crate::web::metrics::Metrics;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![readyz, metrics]
}

#[derive(Serialize)]
pub struct Readiness {
    /// `ready` or `not ready`.
    status: &'static str,
    checks: Vec<Check>,
}

#[derive(Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// Ready to serve: the database answers, every migration this build knows
/// is applied (an instance of a newer build waits until `lyceum migrate`
/// ran), and the search server answers when one is configured. 503 with the
/// failing checks otherwise, so a load balancer sends no traffic here.
#[get("/readyz")]
pub async fn readyz(
    db: &State<Db>,
    search: &State<Arc<dyn SearchIndex>>,
    config: &State<Config>,
) -> (Status, Json<Readiness>) {
    let mut checks = Vec::new();
    let database = db.run(crate::db::pending_migrations).await;
    match database {
        Ok(0) => {
            checks.push(Check { name: "database", ok: true, detail: db_name(db) });
            checks.push(Check { name: "migrations", ok: true, detail: "all applied".into() });
        }
        Ok(n) => {
            checks.push(Check { name: "database", ok: true, detail: db_name(db) });
            checks.push(Check {
                name: "migrations",
                ok: false,
                detail: format!("{n} migration(s) of this build are not applied: run `lyceum migrate`"),
            });
        }
        Err(e) => {
            let e: DbError = e;
            checks.push(Check { name: "database", ok: false, detail: e.to_string() });
        }
    }
    if config.search_url.is_some() {
        let answer = search.ready().await;
        checks.push(Check {
            name: "search",
            ok: answer.is_ok(),
            detail: match answer {
                Ok(()) => search.backend_name().to_string(),
                Err(e) => e.to_string(),
            },
        });
    }
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready { Status::Ok } else { Status::ServiceUnavailable };
    (status, Json(Readiness { status: if ready { "ready" } else { "not ready" }, checks }))
}

fn db_name(db: &Db) -> String {
    match db.backend() {
        crate::db::Backend::Sqlite => "SQLite".into(),
        crate::db::Backend::Postgres => "PostgreSQL".into(),
    }
}

/// May read the metrics: with `metrics_token` set, a request bearing it;
/// without, only a request made on this machine (loopback, not forwarded
/// by a proxy), so the figures never leak to the internet by default.
pub struct MetricsReader;

/// Why a metrics request was refused, and with which status.
#[derive(Debug)]
pub struct Refused(Status, &'static str);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for MetricsReader {
    type Error = Refused;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Refused> {
        let Some(config) = req.rocket().state::<Config>() else {
            let why = Refused(Status::InternalServerError, "no configuration");
            return Outcome::Error((why.0, why));
        };
        match config.metrics_token.as_deref() {
            Some(token) => {
                let given = req.headers().get_one("Authorization").and_then(|h| h.strip_prefix("Bearer "));
                match given {
                    Some(g) if crate::kernel::tokens::constant_time_eq(g.trim().as_bytes(), token.as_bytes()) => {
                        Outcome::Success(MetricsReader)
                    }
                    _ => {
                        let why = Refused(
                            Status::Unauthorized,
                            "metrics need `Authorization: Bearer <LYCEUM_METRICS_TOKEN>`",
                        );
                        Outcome::Error((why.0, why))
                    }
                }
            }
            None => {
                let local = req.remote().is_some_and(|r| r.ip().to_canonical().is_loopback());
                let forwarded = req.headers().contains("X-Forwarded-For") || req.headers().contains("X-Real-IP");
                if local && !forwarded {
                    Outcome::Success(MetricsReader)
                } else {
                    let why = Refused(
                        Status::Forbidden,
                        "metrics are served to this machine only; set LYCEUM_METRICS_TOKEN to read them from elsewhere",
                    );
                    Outcome::Error((why.0, why))
                }
            }
        }
    }
}

/// Prometheus' text format: requests by route and status, latency
/// histograms, and, read when scraped, the database pool, background jobs
/// by status (queue depth and dead letters) and partner sends by state.
#[get("/metrics")]
pub async fn metrics(
    reader: Result<MetricsReader, Refused>,
    metrics: &State<Metrics>,
    db: &State<Db>,
) -> (Status, (ContentType, String)) {
    let text = ContentType::new("text", "plain").with_params([("version", "0.0.4"), ("charset", "utf-8")]);
    if let Err(Refused(status, why)) = reader {
        return (status, (ContentType::Plain, format!("{why}\n")));
    }
    let (connections, idle) = db.pool_state();
    metrics.set("db_pool", "open", i64::from(connections));
    metrics.set("db_pool", "idle", i64::from(idle));
    let state = db
        .run(|conn| {
            let jobs = crate::jobs::open_counts(conn)?;
            let sends = crate::consent::push::send_counts(conn)?;
            Ok::<_, DbError>((jobs, sends))
        })
        .await;
    match state {
        Ok((jobs, sends)) => {
            for status in [crate::jobs::status::QUEUED, crate::jobs::status::RUNNING, crate::jobs::status::DEAD] {
                let n = jobs.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                metrics.set("jobs", status, n);
            }
            for (state, n) in sends {
                metrics.set("partner_sends", state, n);
            }
            metrics.set("database", "up", 1);
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics could not read the database");
            metrics.set("database", "up", 0);
        }
    }
    (Status::Ok, (text, metrics.render()))
}

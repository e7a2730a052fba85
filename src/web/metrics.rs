//! Request metrics in Prometheus' text format: how many requests each route
//! answered with which status, and how long they took. Routes are labelled by
//! their pattern (`/courses/<slug>`), never by the path a client sent, so the
//! number of series stays bounded whatever clients ask for. Gauges that need
//! the database (pool, job queue, partner sends) are set by whoever serves
//! `/metrics` just before it renders ([`Metrics::render`]).

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Request latency buckets in seconds: most pages answer within a few
/// milliseconds; the top buckets catch exports and slow disks.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    gauges: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("lyceum_http_requests_total", "HTTP requests answered, by route pattern, method and status."),
            &["route", "method", "status"],
        )
        .expect("static metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "lyceum_http_request_duration_seconds",
                "Time to answer an HTTP request, by route pattern.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("static metric definition");
        let gauges = IntGaugeVec::new(
            Opts::new(
                "lyceum_state",
                "The site's state when scraped: database pool connections, background jobs by status, \
                 partner sends by state.",
            ),
            &["what", "state"],
        )
        .expect("static metric definition");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(gauges.clone()),
        ] {
            registry.register(collector).expect("each metric is registered once");
        }
        Metrics { registry, requests, latency, gauges }
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.requests.with_label_values(&[route, method, status.as_str()]).inc();
        self.latency.with_label_values(&[route, method]).observe(seconds);
    }

    /// Sets a gauge of the site's state, e.g. `("jobs", "queued")`.
    pub fn set(&self, what: &str, state: &str, value: i64) {
        self.gauges.with_label_values(&[what, state]).set(value);
    }

    /// Everything in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on metric families the encoder
        // cannot express; ours are counters, gauges and histograms.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The label for a request: its route's pattern, or `unmatched` (404s,
/// catchers), so unknown paths share one series.
pub fn route_label(req: &rocket::Request<'_>) -> String {
    match req.route() {
        Some(route) => route.uri.origin.path().to_string(),
        None => "unmatched".to_string(),
    }
}

//! One integration-test binary, a module per area.

mod common;

mod accessibility;
mod accounts;
mod architecture;
mod asvs;
mod author_limits;
// The benchmarks' own tests, with the `bench` feature (`cargo test --all-features`).
#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "bench")]
mod bench_scale;
mod browser;
mod certificates;
mod courseware;
mod csv_safety;
mod demo;
mod departures;
mod exams;
mod exports;
mod forums;
mod hostile;
mod instances;
mod jobs;
mod learning;
mod lifecycle;
mod links;
mod manifests;
mod media;
mod oidc;
mod oneroster;
mod operations;
mod orgs;
mod outbound;
mod package;
mod paging;
mod privacy;
mod promises;
mod push;
mod rights;
mod schema;
mod scim;
mod screenshots;
mod search;
mod secrets;
mod security;
mod sharing;
mod sharing_props;
mod storage;
mod stripe;
mod studio;
mod stylesheet;
mod surveys;
mod twofactor;
mod unreadable;
mod uploads;
mod views;

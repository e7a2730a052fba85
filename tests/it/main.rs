//! One integration-test binary, a module per area.

mod common;

mod accounts;
mod asvs;
mod author_limits;
mod bench;
mod browser;
mod certificates;
mod csv_safety;
mod demo;
mod exams;
mod forums;
mod hostile;
mod jobs;
mod learning;
mod links;
mod media;
mod oidc;
mod orgs;
mod outbound;
mod package;
mod privacy;
mod push;
mod schema;
mod scim;
mod search;
mod secrets;
mod security;
mod sharing;
mod sharing_props;
mod storage;
mod stripe;
mod surveys;
mod twofactor;
mod unreadable;
mod uploads;

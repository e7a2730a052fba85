//! One integration-test binary, a module per area.

mod common;

mod accounts;
mod browser;
mod demo;
mod hostile;
mod jobs;
mod schema;
mod security;

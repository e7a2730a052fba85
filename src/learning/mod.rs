//! Learning: members, courses and runs, content, enrollment, progress and
//! grading, the catalog. Owns the course tables; reads accounts only through
//! `accounts`.

pub mod authoring;
pub mod catalog;
pub mod content;
pub mod lifecycle;
pub mod model;
pub mod package;
pub mod routes;
pub mod service;
pub mod studio;
pub mod transfer;
pub mod views;

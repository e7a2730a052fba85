//! Learning: members, courses and runs, content, enrollment, progress and
//! grading, the catalog. Owns the course tables; reads accounts only through
//! `accounts`.

pub mod authoring;
pub mod block_editor;
pub mod catalog;
pub mod content;
pub mod hooks;
pub mod lifecycle;
pub mod model;
pub mod package;
pub mod quiz_form;
pub mod routes;
pub mod service;
pub mod studio;
pub mod transfer;
pub mod views;

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::catalog_page,
        routes::about,
        routes::enroll,
        routes::unenroll,
        routes::dashboard,
        routes::course_home,
        routes::course_complete,
        routes::unit,
        routes::complete,
        routes::submit_quiz,
        routes::join_live,
        routes::file,
        routes::media,
        routes::signed_file,
        routes::feedback,
        studio::index,
        studio::create_member,
        studio::member,
        studio::appoint,
        studio::member_logo,
        studio::course_image,
        studio::create_course,
        studio::course,
        studio::update_course,
        studio::publish,
        studio::add_run,
        studio::outline,
        block_editor::unit,
        block_editor::blocks,
        block_editor::preview,
        block_editor::image,
        block_editor::block_order,
        block_editor::outline_order,
        studio::import,
        studio::export,
        studio::gradebook,
        studio::gradebook_csv,
        studio::announce,
    ]
}

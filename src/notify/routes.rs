//! The outbox pages: the mail the site would have sent, read back from the
//! `.eml` files. Open to everyone in demo mode (so a new user can follow a
//! verification link without a mail server), staff-only otherwise (a 404 to
//! everyone else).

use rocket::State;
use serde_json::json;

use crate::config::Config;
use crate::web::{AppError, AppResult, Page, guards::Viewer};

fn allowed(config: &Config, viewer: &Viewer) -> AppResult<()> {
    if config.smtp_url.is_some() {
        return Err(AppError::NotFound);
    }
    if config.demo || viewer.is_staff() {
        return Ok(());
    }
    // Outside demo mode the page does not exist for anyone but staff.
    Err(AppError::NotFound)
}

#[rocket::get("/outbox")]
pub fn outbox(config: &State<Config>, viewer: Viewer) -> AppResult<Page> {
    allowed(config, &viewer)?;
    let messages = crate::notify::read_outbox(&config.outbox_dir(), 100);
    Ok(Page::new("staff/outbox", "Outbox", json!({ "messages": messages, "demo": config.demo })))
}

#[rocket::get("/outbox/<id>")]
pub fn message(config: &State<Config>, viewer: Viewer, id: &str) -> AppResult<Page> {
    allowed(config, &viewer)?;
    let message = crate::notify::read_message(&config.outbox_dir(), id).ok_or(AppError::NotFound)?;
    Ok(Page::new("staff/message", message.subject.clone(), json!({ "message": message })))
}

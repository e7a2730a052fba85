//! The outbox pages: the mail the site would have sent, read back from the
//! `.eml` files. Open to everyone in demo mode (so a new user can follow a
//! verification link without a mail server), staff-only otherwise (a 404 to
//! everyone else).

use rocket::State;

use super::views;

use crate::config::Config;
use crate::db::Db;
use crate::web::trail::{Subject, Trail};
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

/// Whose mail a page shows, for the audit log: the account each message went
/// to, or the message alone when its address belongs to no account.
async fn recipients(db: &Db, messages: Vec<(String, String)>) -> AppResult<Vec<Subject>> {
    db.run(move |conn| {
        use crate::db::schema::users;
        use diesel::prelude::*;
        let mut out = Vec::new();
        for (id, to) in messages {
            let user: Option<i64> = users::table
                .filter(crate::db::lower(users::email).eq(to.trim().to_lowercase()))
                .select(users::id)
                .first(conn)
                .optional()?;
            let s = Subject::default().item(format!("mail {id}"));
            out.push(Subject { user_id: user, ..s });
        }
        Ok::<_, AppError>(out)
    })
    .await
}

#[rocket::get("/outbox")]
pub async fn outbox(config: &State<Config>, db: &State<Db>, viewer: Viewer, trail: Trail<'_>) -> AppResult<Page> {
    allowed(config, &viewer)?;
    let messages = crate::notify::read_outbox(&config.outbox_dir(), 100);
    trail.add_all(recipients(db, messages.iter().map(|m| (m.id.clone(), m.to.clone())).collect()).await?);
    let messages = messages.into_iter().map(views::Message::from).collect();
    Ok(Page::view("staff/outbox", "Outbox", views::Outbox { messages, demo: config.demo }))
}

#[rocket::get("/outbox/<id>")]
pub async fn message(
    config: &State<Config>,
    db: &State<Db>,
    viewer: Viewer,
    trail: Trail<'_>,
    id: &str,
) -> AppResult<Page> {
    allowed(config, &viewer)?;
    let message = crate::notify::read_message(&config.outbox_dir(), id).ok_or(AppError::NotFound)?;
    trail.add_all(recipients(db, vec![(message.id.clone(), message.to.clone())]).await?);
    let title = message.subject.clone();
    Ok(Page::view("staff/message", title, views::OneMessage { message: message.into() }))
}

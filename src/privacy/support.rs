//! Contact and support (COM-6): anyone, signed in or not, writes through the
//! contact form; the message becomes a support request staff read and answer
//! from the site, the answer going out by email and staying with the request.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::db::Conn;
use crate::db::schema::{support_replies, support_requests, users};

pub mod status {
    pub const OPEN: &str = "open";
    pub const ANSWERED: &str = "answered";
    pub const CLOSED: &str = "closed";
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = support_requests)]
pub struct SupportRequest {
    pub id: i64,
    pub user_id: Option<i64>,
    pub name: String,
    pub email: String,
    pub subject: String,
    pub message: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = support_replies)]
pub struct Reply {
    pub id: i64,
    pub request_id: i64,
    pub staff_id: Option<i64>,
    pub body: String,
    pub created_at: NaiveDateTime,
}

/// What the contact form sends.
pub struct Contact<'a> {
    pub user_id: Option<i64>,
    pub name: &'a str,
    pub email: &'a str,
    pub subject: &'a str,
    pub message: &'a str,
}

/// Field errors, by field name.
pub type Errors = Vec<(&'static str, String)>;

/// Records a request; returns its id, or what to correct.
pub fn create(
    conn: &mut Conn,
    c: &Contact<'_>,
    now: NaiveDateTime,
) -> Result<Result<i64, Errors>, diesel::result::Error> {
    let mut errors: Errors = Vec::new();
    let (name, email, subject, message) = (c.name.trim(), c.email.trim(), c.subject.trim(), c.message.trim());
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(("name", "Tell us your name (at most 200 characters).".into()));
    }
    if email.parse::<lettre::Address>().is_err() {
        errors.push(("email", "Give an email address we can answer to.".into()));
    }
    if subject.is_empty() || subject.chars().count() > 200 {
        errors.push(("subject", "Give your message a subject (at most 200 characters).".into()));
    }
    if message.is_empty() || message.chars().count() > 10_000 {
        errors.push(("message", "Write your message (at most 10 000 characters).".into()));
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let id = diesel::insert_into(support_requests::table)
        .values((
            support_requests::user_id.eq(c.user_id),
            support_requests::name.eq(name),
            support_requests::email.eq(email),
            support_requests::subject.eq(subject),
            support_requests::message.eq(message),
            support_requests::status.eq(status::OPEN),
            support_requests::created_at.eq(now),
            support_requests::updated_at.eq(now),
        ))
        .returning(support_requests::id)
        .get_result(conn)?;
    Ok(Ok(id))
}

/// A page of the open requests for staff, the oldest first: `limit` rows from `offset`.
pub fn open(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<SupportRequest>> {
    support_requests::table
        .filter(support_requests::status.eq(status::OPEN))
        .order(support_requests::id.asc())
        .offset(offset)
        .limit(limit)
        .select(SupportRequest::as_select())
        .load(conn)
}

/// A page of the answered or closed requests for staff, the latest first.
pub fn answered(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<SupportRequest>> {
    support_requests::table
        .filter(support_requests::status.ne(status::OPEN))
        .order((support_requests::updated_at.desc(), support_requests::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(SupportRequest::as_select())
        .load(conn)
}

/// A request with its answers and who wrote them.
pub type Conversation = (SupportRequest, Vec<(Reply, Option<String>)>);

pub fn get(conn: &mut Conn, id: i64) -> QueryResult<Option<Conversation>> {
    let Some(request) = support_requests::table.find(id).select(SupportRequest::as_select()).first(conn).optional()?
    else {
        return Ok(None);
    };
    let replies = support_replies::table
        .left_join(users::table.on(support_replies::staff_id.eq(users::id.nullable())))
        .filter(support_replies::request_id.eq(id))
        .order(support_replies::id.asc())
        .select((Reply::as_select(), users::username.nullable()))
        .load(conn)?;
    Ok(Some((request, replies)))
}

/// Staff answer: stored with the request and emailed to the person.
pub fn answer(conn: &mut Conn, id: i64, staff_id: i64, body: &str, now: NaiveDateTime) -> Result<(), String> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > 20_000 {
        return Err("Write the answer (at most 20 000 characters).".into());
    }
    crate::db::transaction(conn, |conn| {
        let request: SupportRequest =
            support_requests::table.find(id).select(SupportRequest::as_select()).first(conn)?;
        diesel::insert_into(support_replies::table)
            .values((
                support_replies::request_id.eq(id),
                support_replies::staff_id.eq(staff_id),
                support_replies::body.eq(body),
                support_replies::created_at.eq(now),
            ))
            .execute(conn)?;
        diesel::update(support_requests::table.find(id))
            .set((support_requests::status.eq(status::ANSWERED), support_requests::updated_at.eq(now)))
            .execute(conn)?;
        crate::notify::enqueue_email(
            conn,
            &request.email,
            &format!("Re: {}", request.subject),
            "support_answer",
            json!({ "name": request.name, "subject": request.subject, "message": request.message, "answer": body }),
        )?;
        Ok::<_, diesel::result::Error>(())
    })
    .map_err(|e| e.to_string())
}

pub fn close(conn: &mut Conn, id: i64, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(support_requests::table.find(id))
        .set((support_requests::status.eq(status::CLOSED), support_requests::updated_at.eq(now)))
        .execute(conn)
        .map(|n| n == 1)
}

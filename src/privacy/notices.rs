//! Breach notices (SEC-5): staff compose a notice, choose who is affected
//! (everyone, a list of accounts, the learners of a course, or everyone who
//! signed in since a date), and it is emailed to each of them and shown on
//! the home page until withdrawn. Who was notified is kept as proof.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;

use crate::db::Conn;
use crate::db::schema::{breach_notices, breach_recipients, course_runs, courses, enrollments, users};

/// Who a notice is for.
pub enum Audience {
    All,
    /// Usernames or email addresses, one per line or comma-separated.
    List(String),
    /// Everyone ever enrolled in the course with this slug.
    Course(String),
    /// Everyone who signed in on or after this date.
    SignedInSince(NaiveDate),
}

impl Audience {
    fn describe(&self) -> String {
        match self {
            Audience::All => "all accounts".into(),
            Audience::List(_) => "a list of accounts".into(),
            Audience::Course(slug) => format!("learners of course {slug}"),
            Audience::SignedInSince(day) => format!("accounts signed in since {day}"),
        }
    }

    fn resolve(&self, conn: &mut Conn) -> Result<Vec<i64>, String> {
        let active = users::table.filter(users::status.eq(crate::accounts::model::AccountStatus::Active.as_str()));
        let ids: Vec<i64> = match self {
            Audience::All => active.select(users::id).load(conn).map_err(|e| e.to_string())?,
            Audience::List(text) => {
                let mut ids = Vec::new();
                for login in text.split([',', '\n', ';']).map(str::trim).filter(|l| !l.is_empty()) {
                    let user = crate::accounts::service::find_for_login(conn, login).map_err(|e| e.to_string())?;
                    ids.push(user.ok_or_else(|| format!("No account has the username or email “{login}”."))?.id);
                }
                ids
            }
            Audience::Course(slug) => {
                let course: Option<i64> = courses::table
                    .filter(courses::slug.eq(slug.trim()))
                    .select(courses::id)
                    .first(conn)
                    .optional()
                    .map_err(|e| e.to_string())?;
                let course = course.ok_or_else(|| format!("No course has the address “{}”.", slug.trim()))?;
                enrollments::table
                    .inner_join(course_runs::table)
                    .inner_join(users::table)
                    .filter(course_runs::course_id.eq(course))
                    .filter(users::status.eq(crate::accounts::model::AccountStatus::Active.as_str()))
                    .select(enrollments::user_id)
                    .distinct()
                    .load(conn)
                    .map_err(|e| e.to_string())?
            }
            Audience::SignedInSince(day) => active
                .filter(users::last_sign_in_at.ge(day.and_hms_opt(0, 0, 0).unwrap_or_default()))
                .select(users::id)
                .load(conn)
                .map_err(|e| e.to_string())?,
        };
        let mut ids = ids;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

/// Publishes a notice: emails every affected account and shows it on the home page. Returns (id, recipients).
pub fn publish(
    conn: &mut Conn,
    title: &str,
    body: &str,
    audience: &Audience,
    by: i64,
    now: NaiveDateTime,
) -> Result<(i64, usize), String> {
    let (title, body) = (title.trim(), body.trim());
    if title.is_empty() || title.chars().count() > 200 {
        return Err("Give the notice a title of at most 200 characters.".into());
    }
    if body.is_empty() || body.len() > 50_000 {
        return Err("Say what happened, what it means for people and what they should do (Markdown).".into());
    }
    let ids = audience.resolve(conn)?;
    if ids.is_empty() {
        return Err("Nobody matches this choice of affected accounts; nothing was sent.".into());
    }
    crate::db::transaction(conn, |conn| {
        let id: i64 = diesel::insert_into(breach_notices::table)
            .values((
                breach_notices::title.eq(title),
                breach_notices::body.eq(body),
                breach_notices::audience.eq(audience.describe()),
                breach_notices::recipients.eq(ids.len() as i32),
                breach_notices::created_by.eq(by),
                breach_notices::published_at.eq(now),
            ))
            .returning(breach_notices::id)
            .get_result(conn)?;
        let html = crate::learning::content::render_markdown(body);
        let people: Vec<(i64, String, String)> = users::table
            .filter(users::id.eq_any(&ids))
            .select((users::id, users::email, users::username))
            .load(conn)?;
        for (user, email, username) in people {
            diesel::insert_into(breach_recipients::table)
                .values((breach_recipients::notice_id.eq(id), breach_recipients::user_id.eq(user)))
                .execute(conn)?;
            crate::notify::enqueue_email(
                conn,
                &email,
                &format!("Important: {title}"),
                "breach_notice",
                json!({ "username": username, "title": title, "body_html": html, "body_text": body }),
            )?;
        }
        Ok::<_, diesel::result::Error>((id, ids.len()))
    })
    .map_err(|e| e.to_string())
}

pub fn withdraw(conn: &mut Conn, id: i64, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(breach_notices::table.find(id).filter(breach_notices::withdrawn_at.is_null()))
        .set(breach_notices::withdrawn_at.eq(now))
        .execute(conn)
        .map(|n| n == 1)
}

/// (id, title, body, audience, recipients, published, withdrawn) for staff, newest first.
pub type NoticeRow = (i64, String, String, String, i32, NaiveDateTime, Option<NaiveDateTime>);

/// A page of notices, the newest first: `limit` rows from `offset`.
pub fn page(conn: &mut Conn, offset: i64, limit: i64) -> QueryResult<Vec<NoticeRow>> {
    breach_notices::table
        .order(breach_notices::id.desc())
        .offset(offset)
        .limit(limit)
        .select((
            breach_notices::id,
            breach_notices::title,
            breach_notices::body,
            breach_notices::audience,
            breach_notices::recipients,
            breach_notices::published_at,
            breach_notices::withdrawn_at,
        ))
        .load(conn)
}

/// The notices in force, for the home page; held in memory.
#[derive(Clone, Default)]
pub struct Notices(pub super::Shown<Vec<super::views::LiveNotice>>);

impl Notices {
    pub fn refresh(&self, conn: &mut Conn) -> QueryResult<()> {
        let live: Vec<(String, String, NaiveDateTime)> = breach_notices::table
            .filter(breach_notices::withdrawn_at.is_null())
            .order(breach_notices::id.desc())
            .select((breach_notices::title, breach_notices::body, breach_notices::published_at))
            .load(conn)?;
        self.0.set(Some(
            live.iter()
                .map(|(title, body, at)| super::views::LiveNotice {
                    title: title.clone(),
                    body_html: crate::learning::content::render_markdown(body),
                    date: crate::web::format::Day::from(*at),
                })
                .collect(),
        ));
        Ok(())
    }

    /// The notices in force (none before the first refresh).
    pub fn get(&self) -> Vec<super::views::LiveNotice> {
        self.0.get().unwrap_or_default()
    }
}

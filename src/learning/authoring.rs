//! Authoring: members and their staff, courses, runs, the outline and blocks.
//! Every function checks that the acting user may author for the member the
//! thing belongs to; a course change queues a search reindex of the course.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use crate::accounts::roles::{self, Role};
use crate::db::schema::{blocks, course_runs, courses, members, role_grants, sections, units, users};
use crate::db::{Conn, is_unique_violation};
use crate::kernel::SessionUser;
use crate::learning::content::BlockData;
use crate::learning::model::{Block, Course, Member, Section, Unit};
use crate::learning::service::{self, LResult, LearningError, can_author, can_manage_member};

pub const INDEX_COURSE: &str = "index_course";

pub fn queue_reindex(conn: &mut Conn, course_id: i64) -> QueryResult<()> {
    let payload = json!({ "course_id": course_id });
    crate::jobs::enqueue_with_attempts(conn, INDEX_COURSE, &payload, crate::search::INDEX_JOB_MAX_ATTEMPTS).map(drop)
}

pub fn valid_slug(s: &str, what: &str) -> LResult<String> {
    let s = s.trim().to_lowercase();
    let ok = (3..=60).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s)
    } else {
        Err(LearningError::Invalid(format!("The {what} must be 3–60 characters: lower-case letters, digits and '-'.")))
    }
}

pub fn text(s: &str, what: &str, max: usize) -> LResult<String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(LearningError::Invalid(format!("Please enter the {what}.")));
    }
    if s.chars().count() > max {
        return Err(LearningError::Invalid(format!("The {what} can be at most {max} characters.")));
    }
    Ok(s.to_string())
}

pub fn members_for(conn: &mut Conn, user: &SessionUser) -> QueryResult<Vec<Member>> {
    let all: Vec<Member> = members::table.order(members::name.asc()).select(Member::as_select()).load(conn)?;
    Ok(all.into_iter().filter(|m| can_author(user, m.id)).collect())
}

pub fn member_by_slug(conn: &mut Conn, slug: &str) -> LResult<Member> {
    members::table
        .filter(members::slug.eq(slug))
        .select(Member::as_select())
        .first(conn)
        .optional()?
        .ok_or(LearningError::NotFound)
}

pub fn create_member(
    conn: &mut Conn,
    user: &SessionUser,
    slug: &str,
    name: &str,
    description: &str,
    now: NaiveDateTime,
) -> LResult<Member> {
    if !user.is_staff() {
        return Err(LearningError::Forbidden("Only the operator's staff can add member institutions.".into()));
    }
    let slug = valid_slug(slug, "member's short name")?;
    let name = text(name, "name", 200)?;
    let description = description.trim().chars().take(5000).collect::<String>();
    let id: i64 = diesel::insert_into(members::table)
        .values((
            members::slug.eq(&slug),
            members::name.eq(&name),
            members::description.eq(&description),
            members::created_at.eq(now),
            members::updated_at.eq(now),
        ))
        .returning(members::id)
        .get_result(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                LearningError::Invalid("A member with that short name exists.".into())
            } else {
                e.into()
            }
        })?;
    service::member(conn, id)
}

pub fn member_role(s: &str) -> Option<Role> {
    match s {
        "member_admin" => Some(Role::MemberAdmin),
        "instructor" => Some(Role::Instructor),
        "course_staff" => Some(Role::CourseStaff),
        _ => None,
    }
}

/// Staff appoint member admins; member admins appoint their own staff.
pub fn appoint(conn: &mut Conn, user: &SessionUser, member: &Member, login: &str, role: Role) -> LResult<String> {
    if !can_manage_member(user, member.id) {
        return Err(LearningError::Forbidden("Only this member's administrators can appoint staff.".into()));
    }
    let target = crate::accounts::service::find_for_login(conn, login)?
        .ok_or_else(|| LearningError::Invalid("No account has that username or email.".into()))?;
    roles::grant(conn, target.id, role, &format!("member:{}", member.id), Some(user.id))?;
    Ok(target.username)
}

/// (username, role) of each of the member's staff.
pub fn member_staff(conn: &mut Conn, member_id: i64) -> QueryResult<Vec<(String, String)>> {
    role_grants::table
        .inner_join(users::table.on(users::id.eq(role_grants::user_id)))
        .filter(role_grants::scope.eq(format!("member:{member_id}")))
        .order(users::username.asc())
        .select((users::username, role_grants::role))
        .load(conn)
}

pub fn set_member_logo(
    conn: &mut Conn,
    user: &SessionUser,
    member: &Member,
    key: &str,
    now: NaiveDateTime,
) -> LResult<()> {
    if !can_manage_member(user, member.id) {
        return Err(LearningError::Forbidden("Only this member's administrators can change its logo.".into()));
    }
    diesel::update(members::table.find(member.id))
        .set((members::logo_blob.eq(key), members::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

pub struct CourseInput {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub description: String,
    pub subjects: String,
    pub language: String,
    pub effort: Option<String>,
}

pub fn parse_course(
    slug: &str,
    title: &str,
    summary: &str,
    description: &str,
    subjects: &str,
    language: &str,
    effort: &str,
) -> LResult<CourseInput> {
    let subjects: Vec<String> =
        subjects.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect();
    for s in &subjects {
        valid_slug(s, "subject")?;
    }
    let language = language.trim().to_lowercase();
    if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_lowercase()) {
        return Err(LearningError::Invalid("The language is a 2–3 letter code, like en or fr.".into()));
    }
    crate::learning::content::check_text(description)
        .map_err(|limit| LearningError::Invalid(format!("Description: {limit}")))?;
    Ok(CourseInput {
        slug: valid_slug(slug, "course's short name")?,
        title: text(title, "title", 200)?,
        summary: text(summary, "summary", 300)?,
        description: description.trim().chars().take(50_000).collect(),
        subjects: subjects.join(","),
        language,
        effort: Some(effort.trim().to_string()).filter(|e| !e.is_empty()).map(|e| e.chars().take(100).collect()),
    })
}

pub fn create_course(
    conn: &mut Conn,
    user: &SessionUser,
    member: &Member,
    input: &CourseInput,
    now: NaiveDateTime,
) -> LResult<Course> {
    if !can_author(user, member.id) {
        return Err(LearningError::Forbidden("You are not on this member's staff.".into()));
    }
    let id: i64 = diesel::insert_into(courses::table)
        .values((
            courses::member_id.eq(member.id),
            courses::slug.eq(&input.slug),
            courses::title.eq(&input.title),
            courses::summary.eq(&input.summary),
            courses::description.eq(&input.description),
            courses::subjects.eq(&input.subjects),
            courses::language.eq(&input.language),
            courses::effort.eq(&input.effort),
            courses::published.eq(false),
            courses::created_at.eq(now),
            courses::updated_at.eq(now),
        ))
        .returning(courses::id)
        .get_result(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                LearningError::Invalid("A course with that short name exists.".into())
            } else {
                e.into()
            }
        })?;
    courses::table.find(id).select(Course::as_select()).first(conn).map_err(Into::into)
}

/// The course, if the user may author it; otherwise "not found" for drafts
/// (their existence is not revealed) and "forbidden" for published courses.
pub fn authorable(conn: &mut Conn, user: &SessionUser, slug: &str) -> LResult<Course> {
    let course = service::course_by_slug(conn, slug)?;
    if can_author(user, course.member_id) {
        Ok(course)
    } else if course.published {
        Err(LearningError::Forbidden("You are not on the staff of this course's member.".into()))
    } else {
        Err(LearningError::NotFound)
    }
}

pub fn update_course(conn: &mut Conn, course: &Course, input: &CourseInput, now: NaiveDateTime) -> LResult<()> {
    diesel::update(courses::table.find(course.id))
        .set((
            courses::title.eq(&input.title),
            courses::summary.eq(&input.summary),
            courses::description.eq(&input.description),
            courses::subjects.eq(&input.subjects),
            courses::language.eq(&input.language),
            courses::effort.eq(&input.effort),
            courses::updated_at.eq(now),
        ))
        .execute(conn)?;
    queue_reindex(conn, course.id)?;
    Ok(())
}

pub fn set_course_image(conn: &mut Conn, course: &Course, key: &str, now: NaiveDateTime) -> LResult<()> {
    diesel::update(courses::table.find(course.id))
        .set((courses::image_blob.eq(key), courses::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

pub fn set_published(conn: &mut Conn, course: &Course, published: bool, now: NaiveDateTime) -> LResult<()> {
    if published && service::runs(conn, course.id)?.is_empty() {
        return Err(LearningError::Invalid("Add a run before publishing: learners enroll in runs.".into()));
    }
    diesel::update(courses::table.find(course.id))
        .set((courses::published.eq(published), courses::updated_at.eq(now)))
        .execute(conn)?;
    queue_reindex(conn, course.id)?;
    Ok(())
}

pub struct RunInput {
    pub key: String,
    pub starts_at: NaiveDateTime,
    pub ends_at: Option<NaiveDateTime>,
    pub enrollment_opens_at: Option<NaiveDateTime>,
    pub enrollment_closes_at: Option<NaiveDateTime>,
    pub pacing: String,
    pub access_days: Option<i32>,
    pub pass_threshold: i32,
    pub audit: bool,
    pub verified_price_cents: Option<i32>,
    pub currency: String,
}

/// Accepts `2026-09-01`, `2026-09-01T09:00` (UTC) or full RFC 3339.
pub fn parse_time(s: &str, what: &str) -> LResult<Option<NaiveDateTime>> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc).naive_utc()));
    }
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(Some(t));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0));
    }
    Err(LearningError::Invalid(format!("The {what} must be a date like 2026-09-01 or 2026-09-01T09:00.")))
}

pub fn add_run(conn: &mut Conn, course: &Course, run: &RunInput, now: NaiveDateTime) -> LResult<()> {
    valid_slug(&run.key, "run key").or_else(|_| {
        if (1..=40).contains(&run.key.len()) && run.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Ok(run.key.clone())
        } else {
            Err(LearningError::Invalid("The run key uses letters, digits and '-'.".into()))
        }
    })?;
    if !(0..=100).contains(&run.pass_threshold) {
        return Err(LearningError::Invalid("The pass threshold is a percentage from 0 to 100.".into()));
    }
    if run.pacing != "self" && run.pacing != "instructor" {
        return Err(LearningError::Invalid("Pacing is self-paced or instructor-paced.".into()));
    }
    if run.ends_at.is_some_and(|e| e <= run.starts_at) {
        return Err(LearningError::Invalid("A run must end after it starts.".into()));
    }
    if run.access_days.is_some_and(|d| d < 1) {
        return Err(LearningError::Invalid("Access length is at least one day.".into()));
    }
    diesel::insert_into(course_runs::table)
        .values((
            course_runs::course_id.eq(course.id),
            course_runs::run_key.eq(&run.key),
            course_runs::starts_at.eq(run.starts_at),
            course_runs::ends_at.eq(run.ends_at),
            course_runs::enrollment_opens_at.eq(run.enrollment_opens_at),
            course_runs::enrollment_closes_at.eq(run.enrollment_closes_at),
            course_runs::pacing.eq(&run.pacing),
            course_runs::access_days.eq(run.access_days),
            course_runs::pass_threshold.eq(run.pass_threshold),
            course_runs::audit.eq(run.audit),
            course_runs::verified_price_cents.eq(run.verified_price_cents),
            course_runs::currency.eq(&run.currency),
            course_runs::created_at.eq(now),
            course_runs::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                LearningError::Invalid("This course already has a run with that key.".into())
            } else {
                e.into()
            }
        })?;
    Ok(())
}

fn next_position<T>(positions: &[T], pos: impl Fn(&T) -> i32) -> i32 {
    positions.iter().map(pos).max().unwrap_or(0) + 1
}

pub fn add_section(conn: &mut Conn, course: &Course, title: &str) -> LResult<()> {
    let title = text(title, "section title", 200)?;
    let existing: Vec<Section> =
        sections::table.filter(sections::course_id.eq(course.id)).select(Section::as_select()).load(conn)?;
    diesel::insert_into(sections::table)
        .values((
            sections::course_id.eq(course.id),
            sections::position.eq(next_position(&existing, |s| s.position)),
            sections::title.eq(title),
        ))
        .execute(conn)?;
    Ok(())
}

fn section_of(conn: &mut Conn, course: &Course, id: i64) -> LResult<Section> {
    let s: Section =
        sections::table.find(id).select(Section::as_select()).first(conn).optional()?.ok_or(LearningError::NotFound)?;
    if s.course_id != course.id {
        return Err(LearningError::NotFound);
    }
    Ok(s)
}

fn unit_of(conn: &mut Conn, course: &Course, id: i64) -> LResult<Unit> {
    service::unit_in_course(conn, course.id, id)
}

pub fn add_unit(conn: &mut Conn, course: &Course, section_id: i64, title: &str) -> LResult<i64> {
    let section = section_of(conn, course, section_id)?;
    let title = text(title, "unit title", 200)?;
    let existing: Vec<Unit> =
        units::table.filter(units::section_id.eq(section.id)).select(Unit::as_select()).load(conn)?;
    let id = diesel::insert_into(units::table)
        .values((
            units::section_id.eq(section.id),
            units::position.eq(next_position(&existing, |u| u.position)),
            units::title.eq(title),
        ))
        .returning(units::id)
        .get_result(conn)?;
    Ok(id)
}

/// Outline edits: rename, move up/down, delete for sections and units.
pub fn outline_action(conn: &mut Conn, course: &Course, action: &str, id: i64, title: &str) -> LResult<()> {
    crate::db::transaction(conn, |conn| {
        match action {
            "rename_section" => {
                let s = section_of(conn, course, id)?;
                diesel::update(sections::table.find(s.id))
                    .set(sections::title.eq(text(title, "section title", 200)?))
                    .execute(conn)?;
            }
            "delete_section" => {
                let s = section_of(conn, course, id)?;
                diesel::delete(sections::table.find(s.id)).execute(conn)?;
            }
            "section_up" | "section_down" => {
                let s = section_of(conn, course, id)?;
                let ids: Vec<i64> = sections::table
                    .filter(sections::course_id.eq(course.id))
                    .order((sections::position.asc(), sections::id.asc()))
                    .select(sections::id)
                    .load(conn)?;
                for (position, id) in moved(&ids, s.id, action == "section_up").into_iter().flatten() {
                    diesel::update(sections::table.find(id)).set(sections::position.eq(position)).execute(conn)?;
                }
            }
            "rename_unit" => {
                let u = unit_of(conn, course, id)?;
                diesel::update(units::table.find(u.id))
                    .set(units::title.eq(text(title, "unit title", 200)?))
                    .execute(conn)?;
            }
            "delete_unit" => {
                let u = unit_of(conn, course, id)?;
                diesel::delete(units::table.find(u.id)).execute(conn)?;
            }
            "unit_up" | "unit_down" => {
                let u = unit_of(conn, course, id)?;
                let ids: Vec<i64> = units::table
                    .filter(units::section_id.eq(u.section_id))
                    .order((units::position.asc(), units::id.asc()))
                    .select(units::id)
                    .load(conn)?;
                for (position, id) in moved(&ids, u.id, action == "unit_up").into_iter().flatten() {
                    diesel::update(units::table.find(id)).set(units::position.eq(position)).execute(conn)?;
                }
            }
            _ => return Err(LearningError::Invalid("Unknown outline action.".into())),
        }
        Ok(())
    })
}

/// The unit and its course, when the user may author it.
pub fn authorable_unit(conn: &mut Conn, user: &SessionUser, unit_id: i64) -> LResult<(Course, Unit)> {
    let course: Course = units::table
        .inner_join(sections::table.inner_join(courses::table))
        .filter(units::id.eq(unit_id))
        .select(Course::as_select())
        .first(conn)
        .optional()?
        .ok_or(LearningError::NotFound)?;
    if !can_author(user, course.member_id) {
        return Err(LearningError::NotFound);
    }
    let unit = unit_of(conn, &course, unit_id)?;
    Ok((course, unit))
}

pub fn add_block(conn: &mut Conn, unit: &Unit, data: &BlockData, now: NaiveDateTime) -> LResult<i64> {
    data.check_limits().map_err(|limit| LearningError::Invalid(limit.to_string()))?;
    let existing: Vec<Block> = service::blocks_of(conn, unit.id)?;
    let id = diesel::insert_into(blocks::table)
        .values((
            blocks::unit_id.eq(unit.id),
            blocks::position.eq(next_position(&existing, |b| b.position)),
            blocks::kind.eq(data.kind()),
            blocks::data.eq(serde_json::to_string(data).map_err(|e| LearningError::Invalid(e.to_string()))?),
            blocks::created_at.eq(now),
            blocks::updated_at.eq(now),
        ))
        .returning(blocks::id)
        .get_result(conn)?;
    Ok(id)
}

pub fn update_block(conn: &mut Conn, unit: &Unit, block_id: i64, data: &BlockData, now: NaiveDateTime) -> LResult<()> {
    data.check_limits().map_err(|limit| LearningError::Invalid(limit.to_string()))?;
    let n = diesel::update(blocks::table.find(block_id).filter(blocks::unit_id.eq(unit.id)))
        .set((
            blocks::kind.eq(data.kind()),
            blocks::data.eq(serde_json::to_string(data).map_err(|e| LearningError::Invalid(e.to_string()))?),
            blocks::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 { Err(LearningError::NotFound) } else { Ok(()) }
}

pub fn block_action(conn: &mut Conn, unit: &Unit, block_id: i64, action: &str) -> LResult<()> {
    crate::db::transaction(conn, |conn| {
        let ids: Vec<i64> = service::blocks_of(conn, unit.id)?.iter().map(|b| b.id).collect();
        if !ids.contains(&block_id) {
            return Err(LearningError::NotFound);
        }
        match action {
            "delete" => {
                diesel::delete(blocks::table.find(block_id)).execute(conn)?;
            }
            "up" | "down" => {
                for (position, id) in moved(&ids, block_id, action == "up").into_iter().flatten() {
                    diesel::update(blocks::table.find(id)).set(blocks::position.eq(position)).execute(conn)?;
                }
            }
            _ => return Err(LearningError::Invalid("Unknown block action.".into())),
        }
        Ok(())
    })
}

/// Puts `order` (every id of `current`, each once) in positions 1, 2, 3…
fn reorder(current: &[i64], order: &[i64], what: &str) -> LResult<Vec<(i32, i64)>> {
    let mut a = current.to_vec();
    let mut b = order.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    if a != b {
        return Err(LearningError::Invalid(format!(
            "The new order must list each of the {} {what} once; reload the page and try again.",
            current.len()
        )));
    }
    Ok(order.iter().enumerate().map(|(p, id)| (p as i32 + 1, *id)).collect())
}

/// A unit's blocks in a new order (drag and drop in the editor).
pub fn reorder_blocks(conn: &mut Conn, unit: &Unit, order: &[i64]) -> LResult<()> {
    crate::db::transaction(conn, |conn| {
        let ids: Vec<i64> = service::blocks_of(conn, unit.id)?.iter().map(|b| b.id).collect();
        for (position, id) in reorder(&ids, order, "blocks of this unit")? {
            diesel::update(blocks::table.find(id)).set(blocks::position.eq(position)).execute(conn)?;
        }
        Ok(())
    })
}

/// A section's units in a new order.
pub fn reorder_units(conn: &mut Conn, course: &Course, section_id: i64, order: &[i64]) -> LResult<()> {
    crate::db::transaction(conn, |conn| {
        let section = section_of(conn, course, section_id)?;
        let ids: Vec<i64> = units::table.filter(units::section_id.eq(section.id)).select(units::id).load(conn)?;
        for (position, id) in reorder(&ids, order, "units of this section")? {
            diesel::update(units::table.find(id)).set(units::position.eq(position)).execute(conn)?;
        }
        Ok(())
    })
}

/// A course's sections in a new order.
pub fn reorder_sections(conn: &mut Conn, course: &Course, order: &[i64]) -> LResult<()> {
    crate::db::transaction(conn, |conn| {
        let ids: Vec<i64> =
            sections::table.filter(sections::course_id.eq(course.id)).select(sections::id).load(conn)?;
        for (position, id) in reorder(&ids, order, "sections of this course")? {
            diesel::update(sections::table.find(id)).set(sections::position.eq(position)).execute(conn)?;
        }
        Ok(())
    })
}

/// The new (position, id) order after moving `id` one place up or down, or
/// `None` when it cannot move (first/last, or not in the list).
fn moved(ids: &[i64], id: i64, up: bool) -> Option<Vec<(i32, i64)>> {
    let i = ids.iter().position(|x| *x == id)?;
    let j = if up { i.checked_sub(1)? } else { Some(i + 1).filter(|j| *j < ids.len())? };
    let mut order = ids.to_vec();
    order.swap(i, j);
    Some(order.into_iter().enumerate().map(|(p, id)| (p as i32 + 1, id)).collect())
}

pub fn courses_of_member(conn: &mut Conn, member_id: i64) -> QueryResult<Vec<Course>> {
    courses::table
        .filter(courses::member_id.eq(member_id))
        .order(courses::title.asc())
        .select(Course::as_select())
        .load(conn)
}

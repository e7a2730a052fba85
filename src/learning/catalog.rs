//! The catalog: published courses with their member and runs, filtered, and
//! the documents the search index holds for them.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::Conn;
use crate::db::schema::{course_runs, courses, members};
use crate::learning::model::{Course, Member, Run};
use crate::search::CourseDocument;

#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub member: Option<String>,
    pub subject: Option<String>,
    pub language: Option<String>,
    pub pacing: Option<String>,
    pub open_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub member: String,
    pub member_slug: String,
    pub subjects: Vec<String>,
    pub language: String,
    pub effort: Option<String>,
    pub image: Option<String>,
    pub pacing: Option<String>,
    pub open: bool,
    pub starts: Option<crate::web::format::Day>,
}

/// Published courses matching the filters; with `ranked` ids (from search),
/// only those, in that order.
pub fn cards(conn: &mut Conn, filters: &Filters, ranked: Option<&[i64]>, now: NaiveDateTime) -> QueryResult<Vec<Card>> {
    let mut query = courses::table
        .inner_join(members::table)
        .filter(courses::published.eq(true))
        .select((Course::as_select(), Member::as_select()))
        .order(courses::title.asc())
        .into_boxed();
    if let Some(m) = &filters.member {
        query = query.filter(members::slug.eq(m.clone()));
    }
    if let Some(l) = &filters.language {
        query = query.filter(courses::language.eq(l.clone()));
    }
    if let Some(ids) = ranked {
        query = query.filter(courses::id.eq_any(ids.to_vec()));
    }
    let rows: Vec<(Course, Member)> = query.load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|(c, _)| c.id).collect();
    let all_runs: Vec<Run> = course_runs::table
        .filter(course_runs::course_id.eq_any(&ids))
        .order(course_runs::starts_at.asc())
        .select(Run::as_select())
        .load(conn)?;
    let mut runs_by: HashMap<i64, Vec<Run>> = HashMap::new();
    for r in all_runs {
        runs_by.entry(r.course_id).or_default().push(r);
    }
    let mut cards: Vec<(i64, Card)> = rows
        .into_iter()
        .filter_map(|(c, m)| {
            let runs = runs_by.remove(&c.id).unwrap_or_default();
            let open_run = runs.iter().find(|r| r.enrollment_open(now));
            let shown = open_run.or(runs.last());
            let subjects = c.subject_list();
            if filters.subject.as_ref().is_some_and(|s| !subjects.contains(s)) {
                return None;
            }
            if filters.pacing.as_ref().is_some_and(|p| !runs.iter().any(|r| &r.pacing == p)) {
                return None;
            }
            if filters.open_only && open_run.is_none() {
                return None;
            }
            Some((
                c.id,
                Card {
                    slug: c.slug,
                    title: c.title,
                    summary: c.summary,
                    member: m.name,
                    member_slug: m.slug,
                    subjects,
                    language: c.language,
                    effort: c.effort,
                    image: c.image_blob.map(|k| format!("/media/{k}")),
                    pacing: shown.map(|r| r.pacing.clone()),
                    open: open_run.is_some(),
                    starts: shown.map(|r| r.starts_at.into()),
                },
            ))
        })
        .collect();
    if let Some(order) = ranked {
        let rank: HashMap<i64, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        cards.sort_by_key(|(id, _)| rank.get(id).copied().unwrap_or(usize::MAX));
    }
    Ok(cards.into_iter().map(|(_, c)| c).collect())
}

/// Values for the filter menus, from published courses.
pub struct Facets {
    /// (slug, name) of members with published courses.
    pub members: Vec<(String, String)>,
    pub subjects: Vec<String>,
    pub languages: Vec<String>,
}

pub fn facets(conn: &mut Conn) -> QueryResult<Facets> {
    let rows: Vec<(String, String, String, String)> = crate::on_backend!(conn, |c| courses::table
        .inner_join(members::table)
        .filter(courses::published.eq(true))
        .select((members::slug, members::name, courses::subjects, courses::language))
        .load(c))?;
    let mut ms: Vec<(String, String)> = rows.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
    ms.sort();
    ms.dedup();
    let mut subjects: Vec<String> =
        rows.iter().flat_map(|r| r.2.split(',').map(|s| s.trim().to_string())).filter(|s| !s.is_empty()).collect();
    subjects.sort();
    subjects.dedup();
    let mut langs: Vec<String> = rows.iter().map(|r| r.3.clone()).collect();
    langs.sort();
    langs.dedup();
    Ok(Facets { members: ms, subjects, languages: langs })
}

/// Runs an `index_course` job (`authoring::INDEX_COURSE`): the course's
/// document is rebuilt from the database, or removed when it is not published.
pub async fn run_index_course(
    db: crate::db::Db,
    search: std::sync::Arc<dyn crate::search::SearchIndex>,
    job: crate::jobs::Run,
) -> Result<(), String> {
    let payload = job.payload;
    let id = payload["course_id"].as_i64().ok_or("payload has no course_id")?;
    let doc =
        db.run(move |conn| document(conn, id).map_err(crate::db::DbError::from)).await.map_err(|e| e.to_string())?;
    match doc {
        Some((true, doc)) => search.upsert(vec![doc]).await.map_err(|e| e.to_string()),
        _ => search.remove(id).await.map_err(|e| e.to_string()),
    }
}

/// What the search index holds for a course.
pub fn document(conn: &mut Conn, course_id: i64) -> QueryResult<Option<(bool, CourseDocument)>> {
    let row: Option<(Course, Member)> = courses::table
        .inner_join(members::table)
        .filter(courses::id.eq(course_id))
        .select((Course::as_select(), Member::as_select()))
        .first(conn)
        .optional()?;
    Ok(row.map(|(c, m)| {
        let subjects = c.subject_list();
        (
            c.published,
            CourseDocument {
                id: c.id,
                slug: c.slug,
                title: c.title,
                summary: c.summary,
                description: c.description,
                member: m.name,
                subjects,
                language: c.language,
            },
        )
    }))
}

pub fn all_course_ids(conn: &mut Conn) -> QueryResult<Vec<i64>> {
    courses::table.select(courses::id).order(courses::id.asc()).load(conn)
}

/// Rebuilds the course search index from the published courses, beside the
/// live one (`lyceum search reindex`); returns how many were indexed.
pub async fn reindex(
    db: &crate::db::Db,
    index: &std::sync::Arc<dyn crate::search::SearchIndex>,
    progress: impl FnMut(u64, u64),
) -> Result<u64, crate::search::reindex::ReindexError> {
    let ids = db.run(|conn| all_course_ids(conn).map_err(crate::db::DbError::from)).await?;
    let jobs = crate::search::reindex::IndexJobs { kind: super::authoring::INDEX_COURSE, key: "course_id" };
    crate::search::reindex::rebuild(db, index, ids, published_document, jobs, progress).await
}

fn published_document(conn: &mut Conn, id: i64) -> diesel::QueryResult<Option<crate::search::CourseDocument>> {
    document(conn, id).map(|doc| doc.filter(|(published, _)| *published).map(|(_, d)| d))
}

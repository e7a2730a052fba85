//! The catalog: published courses with their member and runs, filtered and
//! paged in the database (a page of cards costs the same in a catalog of
//! twenty courses as of two thousand), and the documents the search index
//! holds for them.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::Conn;
use crate::db::schema::{course_runs, courses, members};
use crate::learning::model::{Course, Member, Run};
use crate::search::CourseDocument;
use crate::web::paging::PageRequest;

#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub member: Option<String>,
    pub subject: Option<String>,
    pub language: Option<String>,
    pub pacing: Option<String>,
    pub open_only: bool,
}

/// Cards on a page of the catalog.
pub const PAGE_SIZE: i64 = 24;

impl Filters {
    /// The catalog's address with these filters, the search `q` and `page`.
    pub fn link(&self, q: Option<&str>, page: i64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let fields = [
            ("q", q),
            ("member", self.member.as_deref()),
            ("subject", self.subject.as_deref()),
            ("language", self.language.as_deref()),
            ("pacing", self.pacing.as_deref()),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                query.append_pair(key, v);
            }
        }
        if self.open_only {
            query.append_pair("open", "true");
        }
        query.append_pair("page", &page.to_string());
        format!("/courses?{}", query.finish())
    }
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

/// A page of the catalog: its cards, and how many courses match in all.
pub struct CatalogPage {
    pub cards: Vec<Card>,
    pub total: i64,
}

type Backend = <Conn as diesel::Connection>::Backend;

/// Published courses matching the filters, as a query the caller selects
/// from; `None` when no course can match (a subject that is no slug).
fn matching(filters: &Filters, now: NaiveDateTime) -> Option<courses::BoxedQuery<'static, Backend>> {
    let mut query = courses::table.filter(courses::published.eq(true)).into_boxed();
    if let Some(m) = &filters.member {
        query = query
            .filter(courses::member_id.eq_any(members::table.filter(members::slug.eq(m.clone())).select(members::id)));
    }
    if let Some(l) = &filters.language {
        query = query.filter(courses::language.eq(l.clone()));
    }
    if let Some(s) = &filters.subject {
        // Subjects are stored as slugs joined by commas (`authoring::parse_course`),
        // so a slug, which holds no LIKE wildcard, is found between commas.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return None;
        }
        query = query.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("(',' || courses.subjects || ',') LIKE ")
                .bind::<diesel::sql_types::Text, _>(format!("%,{s},%")),
        );
    }
    if let Some(p) = &filters.pacing {
        query = query.filter(
            courses::id
                .eq_any(course_runs::table.filter(course_runs::pacing.eq(p.clone())).select(course_runs::course_id)),
        );
    }
    if filters.open_only {
        // As `Run::enrollment_open`.
        let open = course_runs::table
            .filter(course_runs::enrollment_opens_at.is_null().or(course_runs::enrollment_opens_at.le(now)))
            .filter(course_runs::enrollment_closes_at.is_null().or(course_runs::enrollment_closes_at.gt(now)))
            .filter(course_runs::ends_at.is_null().or(course_runs::ends_at.gt(now)))
            .select(course_runs::course_id);
        query = query.filter(courses::id.eq_any(open));
    }
    Some(query)
}

/// One page of the published courses matching the filters, by title; with
/// `ranked` ids (from search, best first), of those only, in that order. A
/// page past the last has no cards; `total` says how many there are.
pub fn page(
    conn: &mut Conn,
    filters: &Filters,
    ranked: Option<&[i64]>,
    at: PageRequest,
    now: NaiveDateTime,
) -> QueryResult<CatalogPage> {
    let (total, ids) = match ranked {
        // A search answers a bounded list of ids: keep those that pass the
        // filters, in the index's order, and cut the page from them.
        Some(order) => {
            let Some(query) = matching(filters, now) else { return Ok(CatalogPage { cards: Vec::new(), total: 0 }) };
            let passing: std::collections::HashSet<i64> = query
                .filter(courses::id.eq_any(order.to_vec()))
                .select(courses::id)
                .load::<i64>(conn)?
                .into_iter()
                .collect();
            let kept: Vec<i64> = order.iter().copied().filter(|id| passing.contains(id)).collect();
            let ids = kept.iter().copied().skip(at.offset() as usize).take(at.per_page() as usize).collect();
            (kept.len() as i64, ids)
        }
        None => {
            let (Some(count), Some(query)) = (matching(filters, now), matching(filters, now)) else {
                return Ok(CatalogPage { cards: Vec::new(), total: 0 });
            };
            let total: i64 = count.count().get_result(conn)?;
            let ids = if at.past(total) {
                Vec::new()
            } else {
                query
                    .order((courses::title.asc(), courses::id.asc()))
                    .select(courses::id)
                    .offset(at.offset())
                    .limit(at.per_page())
                    .load(conn)?
            };
            (total, ids)
        }
    };
    Ok(CatalogPage { cards: cards(conn, &ids, now)?, total })
}

/// The cards of these courses, in this order.
fn cards(conn: &mut Conn, ids: &[i64], now: NaiveDateTime) -> QueryResult<Vec<Card>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    type Row = (i64, String, String, String, String, String, Option<String>, Option<String>, String, String);
    let rows: Vec<Row> = crate::on_backend!(conn, |c| courses::table
        .inner_join(members::table)
        .filter(courses::id.eq_any(ids))
        .select((
            courses::id,
            courses::slug,
            courses::title,
            courses::summary,
            courses::subjects,
            courses::language,
            courses::effort,
            courses::image_blob,
            members::name,
            members::slug,
        ))
        .load(c))?;
    let all_runs: Vec<Run> = course_runs::table
        .filter(course_runs::course_id.eq_any(ids))
        .order(course_runs::starts_at.asc())
        .select(Run::as_select())
        .load(conn)?;
    let mut runs_by: HashMap<i64, Vec<Run>> = HashMap::new();
    for r in all_runs {
        runs_by.entry(r.course_id).or_default().push(r);
    }
    let mut by_id: HashMap<i64, Card> = rows
        .into_iter()
        .map(|(id, slug, title, summary, subjects, language, effort, image, member, member_slug)| {
            let runs = runs_by.remove(&id).unwrap_or_default();
            let open_run = runs.iter().find(|r| r.enrollment_open(now));
            let shown = open_run.or(runs.last());
            let card = Card {
                slug,
                title,
                summary,
                member,
                member_slug,
                subjects: subjects.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
                language,
                effort,
                image: image.map(|k| format!("/media/{k}")),
                pacing: shown.map(|r| r.pacing.clone()),
                open: open_run.is_some(),
                starts: shown.map(|r| r.starts_at.into()),
            };
            (id, card)
        })
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

/// Values for the filter menus, from published courses, found by the
/// database: a member, subject list or language once however many courses
/// share it.
pub struct Facets {
    /// (slug, name) of members with published courses.
    pub members: Vec<(String, String)>,
    pub subjects: Vec<String>,
    pub languages: Vec<String>,
}

pub fn facets(conn: &mut Conn) -> QueryResult<Facets> {
    let published = || courses::table.filter(courses::published.eq(true));
    let members: Vec<(String, String)> = crate::on_backend!(conn, |c| members::table
        .filter(members::id.eq_any(published().select(courses::member_id)))
        .order((members::slug.asc(), members::name.asc()))
        .select((members::slug, members::name))
        .load(c))?;
    let lists: Vec<String> = crate::on_backend!(conn, |c| published().select(courses::subjects).distinct().load(c))?;
    let mut subjects: Vec<String> =
        lists.iter().flat_map(|l| l.split(',').map(|s| s.trim().to_string())).filter(|s| !s.is_empty()).collect();
    subjects.sort();
    subjects.dedup();
    let languages: Vec<String> = crate::on_backend!(conn, |c| published()
        .select(courses::language)
        .distinct()
        .order(courses::language.asc())
        .load(c))?;
    Ok(Facets { members, subjects, languages })
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

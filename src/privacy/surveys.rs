//! The end-of-course survey (CRS-6): voluntary, anonymous, shown only in aggregate.
//!
//! An answer is stored with a random id, the run and nothing else: no
//! learner, no time. That a learner answered is recorded apart
//! (`survey_completions`) so nobody answers twice. Course staff see results
//! per run only once `MIN_GROUP` learners answered; comments then come in no
//! particular order, without dates.

use diesel::prelude::*;
use rocket::{FromForm, State, get, post};
use serde_json::json;

use crate::db::schema::{survey_completions, survey_responses};
use crate::db::{Conn, Db, now};
use crate::learning::service as learning;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

/// Fewer answers than this are not shown at all.
pub const MIN_GROUP: i64 = 5;

pub const DIFFICULTY: [(&str, &str); 3] = [("easy", "Too easy"), ("right", "About right"), ("hard", "Too hard")];

/// Whether the learner answered this run's survey already.
pub fn answered(conn: &mut Conn, user_id: i64, run_id: i64) -> QueryResult<bool> {
    Ok(survey_completions::table.find((user_id, run_id)).count().get_result::<i64>(conn)? > 0)
}

/// An answer as the form sends it.
pub struct Answer<'a> {
    pub rating: i32,
    pub difficulty: &'a str,
    pub recommend: bool,
    pub comment: &'a str,
}

/// Stores an answer, unlinked, and records separately that the learner answered.
pub fn submit(conn: &mut Conn, user_id: i64, run_id: i64, a: &Answer<'_>) -> Result<(), String> {
    if !(1..=5).contains(&a.rating) {
        return Err("Choose a rating from 1 to 5.".into());
    }
    if !DIFFICULTY.iter().any(|(v, _)| *v == a.difficulty) {
        return Err("Say whether the course was too easy, about right or too hard.".into());
    }
    let comment = a.comment.trim();
    if comment.chars().count() > 2000 {
        return Err("Keep the comment under 2000 characters.".into());
    }
    crate::db::transaction(conn, |conn| {
        if answered(conn, user_id, run_id)? {
            return Ok(Err("You answered this survey already. Thank you!".to_string()));
        }
        diesel::insert_into(survey_completions::table)
            .values((survey_completions::user_id.eq(user_id), survey_completions::run_id.eq(run_id)))
            .execute(conn)?;
        diesel::insert_into(survey_responses::table)
            .values((
                survey_responses::id.eq(uuid::Uuid::new_v4().simple().to_string()),
                survey_responses::run_id.eq(run_id),
                survey_responses::rating.eq(a.rating),
                survey_responses::difficulty.eq(a.difficulty),
                survey_responses::recommend.eq(a.recommend),
                survey_responses::comment.eq((!comment.is_empty()).then_some(comment)),
            ))
            .execute(conn)?;
        Ok::<_, diesel::result::Error>(Ok(()))
    })
    .map_err(|e| e.to_string())?
}

/// A run's results, or `None` under `MIN_GROUP` answers.
pub fn results(conn: &mut Conn, run_id: i64) -> QueryResult<(i64, Option<serde_json::Value>)> {
    let rows: Vec<(i32, String, bool, Option<String>)> = survey_responses::table
        .filter(survey_responses::run_id.eq(run_id))
        .order(survey_responses::id.asc())
        .select((
            survey_responses::rating,
            survey_responses::difficulty,
            survey_responses::recommend,
            survey_responses::comment,
        ))
        .load(conn)?;
    let n = rows.len() as i64;
    if n < MIN_GROUP {
        return Ok((n, None));
    }
    let average = rows.iter().map(|r| f64::from(r.0)).sum::<f64>() / n as f64;
    let ratings: Vec<i64> = (1..=5).map(|s| rows.iter().filter(|r| r.0 == s).count() as i64).collect();
    let difficulty: Vec<serde_json::Value> = DIFFICULTY
        .iter()
        .map(|(v, label)| json!({ "label": label, "count": rows.iter().filter(|r| r.1 == *v).count() }))
        .collect();
    let recommend = rows.iter().filter(|r| r.2).count() as i64 * 100 / n;
    // Ordered by the random id: no trace of who answered when.
    let comments: Vec<String> = rows.into_iter().filter_map(|r| r.3).collect();
    Ok((
        n,
        Some(json!({
            "average": format!("{average:.1}"), "ratings": ratings, "difficulty": difficulty,
            "recommend_percent": recommend, "comments": comments,
        })),
    ))
}

#[get("/learn/<slug>/survey")]
pub async fn form(db: &State<Db>, user: CurrentUser, slug: &str) -> AppResult<Page> {
    let (slug, user) = (slug.to_string(), user.0);
    let ctx = db
        .run(move |conn| {
            let course = learning::course_by_slug(conn, &slug)?;
            let (_, run) = learning::active_enrollment(conn, user.id, course.id, now())?;
            let done = answered(conn, user.id, run.id)?;
            Ok::<_, AppError>(json!({
                "course": { "slug": course.slug, "title": course.title }, "done": done,
                "difficulty": DIFFICULTY.iter().map(|(v, l)| json!({ "value": v, "label": l })).collect::<Vec<_>>(),
            }))
        })
        .await?;
    Ok(Page::new("privacy/survey", "Course survey", ctx))
}

#[derive(FromForm)]
pub struct SurveyForm {
    #[field(default = 0)]
    rating: i32,
    #[field(default = String::new())]
    difficulty: String,
    #[field(default = false)]
    recommend: bool,
    #[field(default = String::new())]
    comment: String,
}

#[post("/learn/<slug>/survey", data = "<form>")]
pub async fn submit_form(
    db: &State<Db>,
    user: CurrentUser,
    slug: &str,
    form: CsrfForm<SurveyForm>,
) -> AppResult<Flash> {
    let (slug, user, f) = (slug.to_string(), user.0, form.form);
    db.run(move |conn| {
        let course = learning::course_by_slug(conn, &slug)?;
        let (_, run) = learning::active_enrollment(conn, user.id, course.id, now())?;
        let answer =
            Answer { rating: f.rating, difficulty: &f.difficulty, recommend: f.recommend, comment: &f.comment };
        Ok::<_, AppError>(match submit(conn, user.id, run.id, &answer) {
            Ok(()) => Flash::success(format!("/learn/{slug}"), "Thank you! Your answers are anonymous."),
            Err(m) => Flash::error(format!("/learn/{slug}/survey"), m),
        })
    })
    .await
}

#[get("/studio/courses/<slug>/survey")]
pub async fn course_results(db: &State<Db>, user: CurrentUser, slug: &str) -> AppResult<Page> {
    let (slug, user) = (slug.to_string(), user.0);
    let ctx = db
        .run(move |conn| {
            let course = crate::learning::authoring::authorable(conn, &user, &slug).map_err(|e| match e {
                crate::learning::service::LearningError::Forbidden(_) => AppError::NotFound,
                other => other.into(),
            })?;
            let mut runs = Vec::new();
            for run in learning::runs(conn, course.id)? {
                let (n, results) = results(conn, run.id)?;
                runs.push(json!({ "run": run.run_key, "answers": n, "results": results }));
            }
            Ok::<_, AppError>(
                json!({ "course": { "slug": course.slug, "title": course.title }, "runs": runs, "min": MIN_GROUP }),
            )
        })
        .await?;
    Ok(Page::new("privacy/survey_results", "Survey results", ctx))
}

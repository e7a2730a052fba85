//! The end-of-course survey (CRS-6): voluntary, anonymous, shown only in aggregate.
//!
//! Nothing ties an answer to the learner who gave it, neither in what staff
//! see nor in the database:
//! * That a learner answered is recorded apart (`survey_completions`: the
//!   learner and the run, no time) so that nobody answers twice.
//! * An answer first joins its run's pending group (`survey_pending`): one
//!   row per run holding the waiting answers, shuffled and sealed with the
//!   site's field keys ([`crate::privacy::vault`]), rewritten whole at each
//!   answer. Someone reading the database can neither read a waiting answer
//!   nor tell which one is new.
//! * Once the group has [`Groups::size`] answers they are all written to
//!   `survey_responses` in one go, in random order, each with a fresh random
//!   id and no time, and the group starts again. Rows written together share
//!   their place and their transaction, so the most a reader of the database
//!   learns is which group of learners gave which group of answers.
//! * Staff see released answers only: totals grow by whole groups, so
//!   reading them before and after one answer shows nothing of it; comments
//!   appear once [`Groups::comments`] answers are released, ordered by their
//!   random ids.

use diesel::prelude::*;
use rand::seq::SliceRandom;
use rocket::{FromForm, State, get, post};
use serde::{Deserialize, Serialize};

use super::views;
use crate::config::Config;
use crate::db::schema::{course_runs, survey_completions, survey_pending, survey_responses};
use crate::db::{Conn, Db, DbConnection, now};
use crate::learning::service as learning;
use crate::privacy::vault;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

pub use crate::config::SMALLEST_SURVEY_GROUP as SMALLEST_GROUP;

/// The sealed field holding a run's waiting answers.
pub const PENDING_FIELD: &str = "survey_pending.answers";

pub const DIFFICULTY: [(&str, &str); 3] = [("easy", "Too easy"), ("right", "About right"), ("hard", "Too hard")];

/// How answers reach staff: in groups of `size`, comments once `comments`
/// answers are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Groups {
    pub size: i64,
    pub comments: i64,
}

impl Groups {
    /// From the configuration: the group size no smaller than
    /// [`SMALLEST_GROUP`], the comments' threshold rounded up to whole
    /// groups (answers are released by whole groups only).
    pub fn of(config: &Config) -> Groups {
        let size = config.survey_min_group.max(SMALLEST_GROUP);
        let comments = (config.survey_comments_min.max(size) + size - 1) / size * size;
        Groups { size, comments }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    /// What the learner should change or know, in words for them.
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    #[error("the waiting survey answers cannot be opened: {0}")]
    Vault(#[from] vault::VaultError),
    #[error("the waiting survey answers are damaged: {0}")]
    Damaged(#[from] serde_json::Error),
}

impl From<SurveyError> for AppError {
    fn from(e: SurveyError) -> AppError {
        match e {
            SurveyError::Invalid(m) => AppError::Unprocessable(m),
            SurveyError::Db(e) => e.into(),
            other => AppError::Internal(other.to_string()),
        }
    }
}

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

/// An answer waiting in its run's pending group.
#[derive(Serialize, Deserialize)]
struct Waiting {
    rating: i32,
    difficulty: String,
    recommend: bool,
    comment: Option<String>,
}

/// Records that the learner answered and adds the answer to the run's
/// pending group; when that completes the group, releases the whole group
/// in random order.
pub fn submit(conn: &mut Conn, user_id: i64, run_id: i64, a: &Answer<'_>, groups: Groups) -> Result<(), SurveyError> {
    if !(1..=5).contains(&a.rating) {
        return Err(SurveyError::Invalid("Choose a rating from 1 to 5.".into()));
    }
    if !DIFFICULTY.iter().any(|(v, _)| *v == a.difficulty) {
        return Err(SurveyError::Invalid("Say whether the course was too easy, about right or too hard.".into()));
    }
    let comment = a.comment.trim();
    if comment.chars().count() > 2000 {
        return Err(SurveyError::Invalid("Keep the comment under 2000 characters.".into()));
    }
    let answer = Waiting {
        rating: a.rating,
        difficulty: a.difficulty.to_string(),
        recommend: a.recommend,
        comment: (!comment.is_empty()).then(|| comment.to_string()),
    };
    crate::db::transaction(conn, |conn| {
        // One answer at a time per run, as the pending group is read and
        // written whole (SQLite's transaction already holds the write lock).
        if let DbConnection::Pg(c) = conn {
            course_runs::table.find(run_id).select(course_runs::id).for_no_key_update().first::<i64>(c)?;
        }
        if answered(conn, user_id, run_id)? {
            return Err(SurveyError::Invalid("You answered this survey already. Thank you!".into()));
        }
        diesel::insert_into(survey_completions::table)
            .values((survey_completions::user_id.eq(user_id), survey_completions::run_id.eq(run_id)))
            .execute(conn)?;
        let sealed: Option<String> =
            survey_pending::table.find(run_id).select(survey_pending::answers).first(conn).optional()?;
        let mut group: Vec<Waiting> = match sealed {
            Some(sealed) => serde_json::from_str(&vault::open(PENDING_FIELD, &sealed)?)?,
            None => Vec::new(),
        };
        group.push(answer);
        group.shuffle(&mut rand::thread_rng());
        if (group.len() as i64) < groups.size {
            let sealed = vault::seal(PENDING_FIELD, &serde_json::to_string(&group)?)?;
            let updated = diesel::update(survey_pending::table.find(run_id))
                .set(survey_pending::answers.eq(&sealed))
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(survey_pending::table)
                    .values((survey_pending::run_id.eq(run_id), survey_pending::answers.eq(&sealed)))
                    .execute(conn)?;
            }
            return Ok(());
        }
        diesel::delete(survey_pending::table.find(run_id)).execute(conn)?;
        for w in group {
            diesel::insert_into(survey_responses::table)
                .values((
                    survey_responses::id.eq(uuid::Uuid::new_v4().simple().to_string()),
                    survey_responses::run_id.eq(run_id),
                    survey_responses::rating.eq(w.rating),
                    survey_responses::difficulty.eq(w.difficulty),
                    survey_responses::recommend.eq(w.recommend),
                    survey_responses::comment.eq(w.comment),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// A run's released answers: their number, and the results once there are
/// at least `groups.size` of them (comments once there are `groups.comments`).
pub fn results(conn: &mut Conn, run_id: i64, groups: Groups) -> QueryResult<(i64, Option<views::Results>)> {
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
    if n < groups.size {
        return Ok((n, None));
    }
    let average = rows.iter().map(|r| f64::from(r.0)).sum::<f64>() / n as f64;
    let ratings: Vec<i64> = (1..=5).map(|s| rows.iter().filter(|r| r.0 == s).count() as i64).collect();
    let difficulty: Vec<views::DifficultyCount> = DIFFICULTY
        .iter()
        .map(|(v, label)| views::DifficultyCount { label, count: rows.iter().filter(|r| r.1 == *v).count() })
        .collect();
    let recommend = rows.iter().filter(|r| r.2).count() as i64 * 100 / n;
    // Ordered by the random id: no trace of who answered when.
    let comments: Option<Vec<String>> = (n >= groups.comments).then(|| rows.into_iter().filter_map(|r| r.3).collect());
    Ok((
        n,
        Some(views::Results {
            average: format!("{average:.1}"),
            ratings,
            difficulty,
            recommend_percent: recommend,
            comments_shown: comments.is_some(),
            comments,
        }),
    ))
}

#[get("/learn/<slug>/survey")]
pub async fn form(db: &State<Db>, config: &State<Config>, user: CurrentUser, slug: &str) -> AppResult<Page> {
    let (slug, user, groups) = (slug.to_string(), user.0, Groups::of(config));
    let ctx = db
        .run(move |conn| {
            let course = learning::course_by_slug(conn, &slug)?;
            let (_, run) = learning::active_enrollment(conn, user.id, course.id, now())?;
            let done = answered(conn, user.id, run.id)?;
            Ok::<_, AppError>(views::Survey {
                course: views::CourseRef { slug: course.slug, title: course.title },
                done,
                group: groups.size,
                comments: groups.comments,
                difficulty: DIFFICULTY.iter().map(|(value, label)| views::Choice { value, label }).collect(),
            })
        })
        .await?;
    Ok(Page::view("privacy/survey", "Course survey", ctx))
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
    config: &State<Config>,
    user: CurrentUser,
    slug: &str,
    form: CsrfForm<SurveyForm>,
) -> AppResult<Flash> {
    let (slug, user, f, groups) = (slug.to_string(), user.0, form.form, Groups::of(config));
    db.run(move |conn| {
        let course = learning::course_by_slug(conn, &slug)?;
        let (_, run) = learning::active_enrollment(conn, user.id, course.id, now())?;
        let answer =
            Answer { rating: f.rating, difficulty: &f.difficulty, recommend: f.recommend, comment: &f.comment };
        Ok::<_, AppError>(match submit(conn, user.id, run.id, &answer, groups) {
            Ok(()) => Flash::success(format!("/learn/{slug}"), "Thank you! Your answers are anonymous."),
            Err(SurveyError::Invalid(m)) => Flash::error(format!("/learn/{slug}/survey"), m),
            Err(e) => return Err(e.into()),
        })
    })
    .await
}

#[get("/studio/courses/<slug>/survey")]
pub async fn course_results(
    db: &State<Db>,
    config: &State<Config>,
    user: CurrentUser,
    trail: crate::privacy::audit::Trail<'_>,
    slug: &str,
) -> AppResult<Page> {
    // Anonymous totals, released only for groups large enough (item 1).
    trail.nobody();
    let (slug, user, groups) = (slug.to_string(), user.0, Groups::of(config));
    let ctx = db
        .run(move |conn| {
            let course = crate::learning::authoring::authorable(conn, &user, &slug).map_err(|e| match e {
                crate::learning::service::LearningError::Forbidden(_) => AppError::NotFound,
                other => other.into(),
            })?;
            let mut runs = Vec::new();
            for run in learning::runs(conn, course.id)? {
                let (n, results) = results(conn, run.id, groups)?;
                runs.push(views::RunResults { run: run.run_key, answers: n, results });
            }
            Ok::<_, AppError>(views::SurveyResults {
                course: views::CourseRef { slug: course.slug, title: course.title },
                runs,
                group: groups.size,
                comments: groups.comments,
            })
        })
        .await?;
    Ok(Page::view("privacy/survey_results", "Survey results", ctx))
}

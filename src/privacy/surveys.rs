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
use crate::web::paging::PageRequest;
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

/// Comments per page of the results.
pub const COMMENTS_PAGE: i64 = 50;

/// A run's released answers: their number, and the results once there are
/// at least `groups.size` of them (comments once there are `groups.comments`,
/// the page `comments` asks for; `link` makes the address of a page of them).
/// The figures are counted in the database; only a page of comments is read.
pub fn results(
    conn: &mut Conn,
    run_id: i64,
    groups: Groups,
    comments: PageRequest,
    link: impl Fn(i64) -> String,
) -> QueryResult<(i64, Option<views::Results>)> {
    use diesel::dsl::count_star;
    let released = || survey_responses::table.filter(survey_responses::run_id.eq(run_id));
    let by_rating: Vec<(i32, i64)> =
        released().group_by(survey_responses::rating).select((survey_responses::rating, count_star())).load(conn)?;
    let n: i64 = by_rating.iter().map(|(_, count)| count).sum();
    if n < groups.size {
        return Ok((n, None));
    }
    let average = by_rating.iter().map(|(rating, count)| f64::from(*rating) * *count as f64).sum::<f64>() / n as f64;
    let rated = |s: i32| by_rating.iter().filter(|(rating, _)| *rating == s).map(|(_, count)| *count).sum::<i64>();
    let ratings: Vec<i64> = (1..=5).map(rated).collect();
    let by_difficulty: Vec<(String, i64)> = released()
        .group_by(survey_responses::difficulty)
        .select((survey_responses::difficulty, count_star()))
        .load(conn)?;
    let difficulty: Vec<views::DifficultyCount> = DIFFICULTY
        .iter()
        .map(|(v, label)| views::DifficultyCount {
            label,
            count: by_difficulty.iter().filter(|(d, _)| d == v).map(|(_, count)| *count as usize).sum(),
        })
        .collect();
    let recommending: i64 = released().filter(survey_responses::recommend.eq(true)).count().get_result(conn)?;
    let recommend = recommending * 100 / n;
    // Ordered by the random id: no trace of who answered when.
    let shown = n >= groups.comments;
    let (comments, comments_nav) = if shown {
        let page: Vec<String> = released()
            .filter(survey_responses::comment.is_not_null())
            .order(survey_responses::id.asc())
            .select(survey_responses::comment.assume_not_null())
            .offset(comments.offset())
            .limit(comments.fetch())
            .load(conn)?;
        let (page, nav) = comments.finish(page, link);
        (Some(page), nav)
    } else {
        (None, comments.nav(false, link))
    };
    Ok((
        n,
        Some(views::Results {
            average: format!("{average:.1}"),
            ratings,
            difficulty,
            recommend_percent: recommend,
            comments_shown: comments.is_some(),
            comments,
            comments_nav,
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

/// The results of each run of a course; `run` and `comments` name a page
/// of one run's comments (the others show their first).
#[get("/studio/courses/<slug>/survey?<run>&<comments>")]
pub async fn course_results(
    db: &State<Db>,
    config: &State<Config>,
    user: CurrentUser,
    trail: crate::privacy::audit::Trail<'_>,
    slug: &str,
    run: Option<&str>,
    comments: Option<&str>,
) -> AppResult<Page> {
    // Anonymous totals, released only for groups large enough (item 1).
    trail.nobody();
    let (slug, user, groups) = (slug.to_string(), user.0, Groups::of(config));
    let (asked_run, asked_page) = (run.map(str::to_string), comments.map(str::to_string));
    let ctx = db
        .run(move |conn| {
            let course = crate::learning::authoring::authorable(conn, &user, &slug).map_err(|e| match e {
                crate::learning::service::LearningError::Forbidden(_) => AppError::NotFound,
                other => other.into(),
            })?;
            let mut runs = Vec::new();
            for run in learning::runs(conn, course.id)? {
                let asked = asked_page.as_deref().filter(|_| asked_run.as_deref() == Some(run.run_key.as_str()));
                let page = PageRequest::parse(asked, COMMENTS_PAGE);
                let link = |n: i64| {
                    format!(
                        "/studio/courses/{}/survey?run={}&comments={n}",
                        course.slug,
                        urlencoding::encode(&run.run_key)
                    )
                };
                let (n, results) = results(conn, run.id, groups, page, link)?;
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

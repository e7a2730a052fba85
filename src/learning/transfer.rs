//! Course packages in and out of the database: import (all or nothing, with
//! files stored as blobs and images re-encoded) and export (the same package
//! back, so export → import reproduces a course).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::Conn;
use crate::db::schema::courses;
use crate::learning::authoring::{self, CourseInput, RunInput};
use crate::learning::content::{BlobRef, BlockData, Question, QuestionKind, Quiz, ShowAnswers};
use crate::learning::model::{Course, Member};
use crate::learning::package::{
    self, BlockPkg, CourseMeta, CoursePackage, Pacing, PackageProblem, QuestionKind as PkgKind, QuestionPkg, QuizPkg,
    RunMeta, SectionPkg, ShowAnswers as PkgShow, UnitPkg,
};
use crate::learning::service;
use crate::media::files;
use crate::storage::{self, BlobStore};

fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

pub fn quiz_from_pkg(q: &QuizPkg) -> Quiz {
    Quiz {
        title: q.title.clone(),
        attempts: q.attempts,
        weight: q.weight,
        show_answers: match q.show_answers {
            PkgShow::AfterLastAttempt => ShowAnswers::AfterLastAttempt,
            PkgShow::AfterDue => ShowAnswers::AfterDue,
        },
        due_at: q.due_at.map(naive),
        proctored: q.proctored,
        questions: q
            .questions
            .iter()
            .map(|x| Question {
                kind: match x.kind {
                    PkgKind::Single => QuestionKind::Single,
                    PkgKind::Multiple => QuestionKind::Multiple,
                    PkgKind::Numeric => QuestionKind::Numeric,
                    PkgKind::Text => QuestionKind::Text,
                },
                prompt: x.prompt.clone(),
                choices: x.choices.clone(),
                correct: x.correct.clone(),
                answer: x.answer,
                tolerance: x.tolerance,
                accepted: x.accepted.clone(),
                feedback: x.feedback.clone(),
                choice_feedback: choice_feedback(&x.choice_feedback),
            })
            .collect(),
    }
}

/// Feedback on choices as stored and carried: none at all when no choice
/// has any, else one entry per choice, trimmed.
pub fn choice_feedback(given: &[String]) -> Vec<String> {
    if given.iter().all(|f| f.trim().is_empty()) {
        Vec::new()
    } else {
        given.iter().map(|f| f.trim().to_string()).collect()
    }
}

pub fn quiz_to_pkg(q: &Quiz) -> QuizPkg {
    QuizPkg {
        title: q.title.clone(),
        attempts: q.attempts,
        weight: q.weight,
        show_answers: match q.show_answers {
            ShowAnswers::AfterLastAttempt => PkgShow::AfterLastAttempt,
            ShowAnswers::AfterDue => PkgShow::AfterDue,
        },
        due_at: q.due_at.map(utc),
        proctored: q.proctored,
        questions: q
            .questions
            .iter()
            .map(|x| {
                // Only the fields that apply to the kind: the package format refuses the rest.
                let choice = matches!(x.kind, QuestionKind::Single | QuestionKind::Multiple);
                let numeric = x.kind == QuestionKind::Numeric;
                QuestionPkg {
                    kind: match x.kind {
                        QuestionKind::Single => PkgKind::Single,
                        QuestionKind::Multiple => PkgKind::Multiple,
                        QuestionKind::Numeric => PkgKind::Numeric,
                        QuestionKind::Text => PkgKind::Text,
                    },
                    prompt: x.prompt.clone(),
                    choices: if choice { x.choices.clone() } else { Vec::new() },
                    correct: if choice { x.correct.clone() } else { Vec::new() },
                    answer: if numeric { x.answer } else { None },
                    tolerance: if numeric { x.tolerance } else { 0.0 },
                    accepted: if x.kind == QuestionKind::Text { x.accepted.clone() } else { Vec::new() },
                    feedback: x.feedback.clone(),
                    choice_feedback: if choice { choice_feedback(&x.choice_feedback) } else { Vec::new() },
                }
            })
            .collect(),
    }
}

/// A quiz written in the browser, in the package's quiz TOML format.
pub fn quiz_from_toml(source: &str) -> Result<Quiz, String> {
    package::parse_quiz("quiz.toml", source)
        .map(|q| quiz_from_pkg(&q))
        .map_err(|problems| problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))
}

pub fn quiz_to_toml(quiz: &Quiz) -> String {
    package::quiz_to_toml(&quiz_to_pkg(quiz))
}

fn problem(file: &str, message: impl Into<String>) -> PackageProblem {
    PackageProblem { file: file.to_string(), line: None, message: message.into() }
}

/// Stores an attached file under the type its bytes show (the package's
/// check already refused any type `usage` does not allow).
fn store_file(
    conn: &mut Conn,
    blobs: &dyn BlobStore,
    pkg: &CoursePackage,
    path: &str,
    usage: files::Use,
) -> Result<BlobRef, Vec<PackageProblem>> {
    let bytes = pkg.files.get(path).ok_or_else(|| vec![problem(path, "file is referenced but missing")])?;
    let kind = files::check(bytes, usage, path).map_err(|e| vec![problem(path, e.to_string())])?;
    let key = storage::store(conn, blobs, bytes, kind.content_type).map_err(|e| vec![problem(path, e.to_string())])?;
    let filename = files::named(path.rsplit('/').next().unwrap_or(path), kind.extension);
    Ok(BlobRef { key, filename, content_type: kind.content_type.to_string() })
}

fn text_file(pkg: &CoursePackage, path: &str) -> Result<String, Vec<PackageProblem>> {
    let bytes = pkg.files.get(path).ok_or_else(|| vec![problem(path, "file is referenced but missing")])?;
    String::from_utf8(bytes.clone()).map_err(|_| vec![problem(path, "must be UTF-8 text")])
}

/// Imports a whole package for `member`, or nothing: every problem is
/// reported and the transaction is rolled back.
pub fn import(
    conn: &mut Conn,
    blobs: &dyn BlobStore,
    user: &crate::kernel::SessionUser,
    member: &Member,
    pkg: &CoursePackage,
) -> Result<Course, Vec<PackageProblem>> {
    let mut problems = package::validate(pkg);
    if !service::can_author(user, member.id) {
        problems.push(problem("course.toml", "you are not on this member's staff"));
    }
    let exists: i64 = courses::table
        .filter(courses::slug.eq(&pkg.course.slug))
        .count()
        .get_result(conn)
        .map_err(|e| vec![problem("course.toml", e.to_string())])?;
    if exists > 0 {
        problems.push(problem("course.toml", format!("a course with slug '{}' already exists", pkg.course.slug)));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let now = crate::db::now();
    let db_err = |e: String| vec![problem("course.toml", e)];
    crate::db::transaction::<_, ImportFailure, _>(conn, |conn| {
        let c = &pkg.course;
        let input = CourseInput {
            slug: c.slug.clone(),
            title: c.title.clone(),
            summary: c.summary.clone(),
            description: c.description.clone().unwrap_or_default(),
            subjects: c.subjects.join(","),
            language: c.language.clone(),
            effort: c.effort.clone(),
        };
        let course = authoring::create_course(conn, user, member, &input, now).map_err(|e| db_err(e.to_string()))?;
        if let Some(path) = &c.image {
            let bytes = pkg.files.get(path).ok_or_else(|| vec![problem(path, "image is missing")])?;
            let image = crate::media::reencode(bytes, 1600).map_err(|e| vec![problem(path, e.to_string())])?;
            let key = storage::store(conn, blobs, &image.bytes, image.content_type)
                .map_err(|e| vec![problem(path, e.to_string())])?;
            authoring::set_course_image(conn, &course, &key, now).map_err(|e| db_err(e.to_string()))?;
        }
        for r in &pkg.runs {
            let run = RunInput {
                key: r.key.clone(),
                starts_at: naive(r.starts_at),
                ends_at: r.ends_at.map(naive),
                enrollment_opens_at: r.enrollment_opens_at.map(naive),
                enrollment_closes_at: r.enrollment_closes_at.map(naive),
                pacing: match r.pacing {
                    Pacing::SelfPaced => "self".into(),
                    Pacing::InstructorPaced => "instructor".into(),
                },
                access_days: r.access_days.map(|d| d as i32),
                pass_threshold: i32::from(r.pass_threshold),
                audit: r.audit,
                verified_price_cents: r.verified_price_cents.map(|c| c as i32),
                currency: r.currency.clone(),
            };
            authoring::add_run(conn, &course, &run, now)
                .map_err(|e| vec![problem("course.toml", format!("run {}: {e}", r.key))])?;
        }
        for s in &pkg.sections {
            authoring::add_section(conn, &course, &s.title).map_err(|e| db_err(e.to_string()))?;
            let section_id = service::outline(conn, course.id)
                .map_err(|e| db_err(e.to_string()))?
                .last()
                .map(|(s, _)| s.id)
                .ok_or_else(|| db_err("section".into()))?;
            for u in &s.units {
                let unit_id =
                    authoring::add_unit(conn, &course, section_id, &u.title).map_err(|e| db_err(e.to_string()))?;
                let unit = service::unit_in_course(conn, course.id, unit_id).map_err(|e| db_err(e.to_string()))?;
                for b in &u.blocks {
                    let data = match b {
                        BlockPkg::Text { markdown } => BlockData::Text { markdown: markdown.clone() },
                        BlockPkg::Video { url, file, transcript } => BlockData::Video {
                            url: url.clone(),
                            file: match file {
                                Some(f) => Some(store_file(conn, blobs, pkg, f, files::Use::Video)?),
                                None => None,
                            },
                            transcript: match transcript {
                                Some(t) => Some(text_file(pkg, t)?),
                                None => None,
                            },
                        },
                        BlockPkg::Quiz(q) => BlockData::Quiz(quiz_from_pkg(q)),
                        BlockPkg::Resource { title, file } => BlockData::Resource {
                            title: title.clone(),
                            file: store_file(conn, blobs, pkg, file, files::Use::Resource)?,
                        },
                        BlockPkg::Live { title, starts_at, link } => {
                            BlockData::Live { title: title.clone(), starts_at: naive(*starts_at), link: link.clone() }
                        }
                    };
                    authoring::add_block(conn, &unit, &data, now).map_err(|e| db_err(e.to_string()))?;
                }
            }
        }
        authoring::queue_reindex(conn, course.id).map_err(|e| db_err(e.to_string()))?;
        Ok(course)
    })
    .map_err(|f| f.0)
}

/// Problems that end an import; a database error becomes one more problem,
/// and either rolls the whole import back.
struct ImportFailure(Vec<PackageProblem>);

impl From<Vec<PackageProblem>> for ImportFailure {
    fn from(p: Vec<PackageProblem>) -> Self {
        ImportFailure(p)
    }
}

impl From<diesel::result::Error> for ImportFailure {
    fn from(e: diesel::result::Error) -> Self {
        ImportFailure(vec![problem("course.toml", e.to_string())])
    }
}

/// The course as a package: what `import` turns back into the same course.
pub fn export(conn: &mut Conn, blobs: &dyn BlobStore, course: &Course) -> Result<CoursePackage, String> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let fetch = |key: &str| -> Result<Vec<u8>, String> {
        blobs.get(key).map_err(|e| e.to_string())?.ok_or_else(|| format!("blob {key} is missing"))
    };
    let image = match &course.image_blob {
        Some(key) => {
            let ct = storage::content_type(conn, key).map_err(|e| e.to_string())?.unwrap_or_default();
            let path = format!("files/cover.{}", if ct == "image/png" { "png" } else { "jpg" });
            files.insert(path.clone(), fetch(key)?);
            Some(path)
        }
        None => None,
    };
    let runs = service::runs(conn, course.id)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| RunMeta {
            key: r.run_key,
            starts_at: utc(r.starts_at),
            ends_at: r.ends_at.map(utc),
            enrollment_opens_at: r.enrollment_opens_at.map(utc),
            enrollment_closes_at: r.enrollment_closes_at.map(utc),
            pacing: if r.pacing == "instructor" { Pacing::InstructorPaced } else { Pacing::SelfPaced },
            access_days: r.access_days.map(|d| d as u32),
            pass_threshold: r.pass_threshold.clamp(0, 100) as u8,
            audit: r.audit,
            verified_price_cents: r.verified_price_cents.map(|c| c as u32),
            currency: r.currency,
        })
        .collect();
    let mut sections = Vec::new();
    let mut used_names: BTreeMap<String, usize> = BTreeMap::new();
    let mut unique = |dir: &str, name: &str| -> String {
        let n = used_names.entry(format!("{dir}/{name}")).or_insert(0);
        *n += 1;
        if *n == 1 { format!("{dir}/{name}") } else { format!("{dir}/{}-{}", n, name) }
    };
    for (s, us) in service::outline(conn, course.id).map_err(|e| e.to_string())? {
        let mut units = Vec::new();
        for u in us {
            let mut blocks = Vec::new();
            for b in service::blocks_of(conn, u.id).map_err(|e| e.to_string())? {
                let data = service::block_data(&b).map_err(|e| e.to_string())?;
                blocks.push(match data {
                    BlockData::Text { markdown } => BlockPkg::Text { markdown },
                    BlockData::Video { url, file, transcript } => {
                        let file = match file {
                            Some(f) => {
                                let path = unique("files", &f.filename);
                                files.insert(path.clone(), fetch(&f.key)?);
                                Some(path)
                            }
                            None => None,
                        };
                        let transcript = transcript.map(|t| {
                            let path = unique("files", &format!("transcript-{}.txt", b.id));
                            files.insert(path.clone(), t.into_bytes());
                            path
                        });
                        BlockPkg::Video { url, file, transcript }
                    }
                    BlockData::Quiz(q) => BlockPkg::Quiz(quiz_to_pkg(&q)),
                    BlockData::Resource { title, file } => {
                        let path = unique("files", &file.filename);
                        files.insert(path.clone(), fetch(&file.key)?);
                        BlockPkg::Resource { title, file: path }
                    }
                    BlockData::Live { title, starts_at, link } => {
                        BlockPkg::Live { title, starts_at: utc(starts_at), link }
                    }
                });
            }
            units.push(UnitPkg { title: u.title, blocks });
        }
        sections.push(SectionPkg { title: s.title, units });
    }
    Ok(CoursePackage {
        course: CourseMeta {
            slug: course.slug.clone(),
            title: course.title.clone(),
            summary: course.summary.clone(),
            description: Some(course.description.clone()).filter(|d| !d.is_empty()),
            subjects: course.subject_list(),
            language: course.language.clone(),
            effort: course.effort.clone(),
            image,
        },
        runs,
        sections,
        files,
    })
}

//! Writing the canonical layout: course.toml, `units/NN-title.md` and
//! `quizzes/NN-title.toml` numbered across the whole course, every file of
//! `files` at its own path, and the description where its bytes already are
//! (or `files/about.md`). Everything is rendered in memory first so a bad
//! package fails before anything touches the disk.

use super::check::{attachments, check_path};
use super::{BlockPkg, CoursePackage, QuizPkg, UnitPkg, directive, normalize_markdown};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::Path;

/// File names the writer gives to the parts of a package.
pub(super) struct Layout {
    /// `[section][unit]`
    pub units: Vec<Vec<String>>,
    /// `[section][unit][block]`: the file of each quiz block.
    pub quizzes: Vec<Vec<Vec<Option<String>>>>,
    /// The description's path, and whether it must be added (no file in `files` holds it).
    pub description: Option<(String, bool)>,
}

pub(super) fn layout(pkg: &CoursePackage) -> Layout {
    let mut taken: BTreeSet<String> = pkg.files.keys().cloned().collect();
    taken.insert("course.toml".to_string());
    let description = pkg.course.description.as_deref().map(|text| description_path(pkg, text, &mut taken));
    let units = pkg.sections.iter().map(|s| s.units.len()).sum();
    let quizzes = pkg
        .sections
        .iter()
        .flat_map(|s| &s.units)
        .flat_map(|u| &u.blocks)
        .filter(|b| matches!(b, BlockPkg::Quiz(_)))
        .count();
    let (unit_width, quiz_width) = (width(units), width(quizzes));
    let (mut unit_no, mut quiz_no) = (0, 0);
    let mut layout = Layout { units: Vec::new(), quizzes: Vec::new(), description };
    for section in &pkg.sections {
        let mut unit_names = Vec::new();
        let mut quiz_names = Vec::new();
        for unit in &section.units {
            unit_no += 1;
            let stem = format!("{unit_no:0unit_width$}-{}", slugify(&unit.title, "unit"));
            unit_names.push(free_name(&mut taken, "units", &stem, "md"));
            let mut names = Vec::new();
            for block in &unit.blocks {
                names.push(match block {
                    BlockPkg::Quiz(quiz) => {
                        quiz_no += 1;
                        let stem = format!("{quiz_no:0quiz_width$}-{}", slugify(&quiz.title, "quiz"));
                        Some(free_name(&mut taken, "quizzes", &stem, "toml"))
                    }
                    _ => None,
                });
            }
            quiz_names.push(names);
        }
        layout.units.push(unit_names);
        layout.quizzes.push(quiz_names);
    }
    layout
}

/// Digits for the number prefix: at least two, more when needed so names sort.
fn width(count: usize) -> usize {
    count.to_string().len().max(2)
}

/// `dir/stem.ext`, or `dir/stem-2.ext`… when an attached file already has the name.
fn free_name(taken: &mut BTreeSet<String>, dir: &str, stem: &str, ext: &str) -> String {
    let mut name = format!("{dir}/{stem}.{ext}");
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{dir}/{stem}-{n}.{ext}");
        n += 1;
    }
    name
}

/// Lower-case ASCII words joined by `-`, at most 40 characters.
fn slugify(title: &str, fallback: &str) -> String {
    let mut slug = String::new();
    let mut gap = false;
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !slug.is_empty() {
                slug.push('-');
            }
            gap = false;
            slug.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    slug.truncate(40);
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() { fallback.to_string() } else { slug.to_string() }
}

/// Where `description` points. The reader keeps the description's file in
/// `files`, so reuse the path holding those bytes; a file outside `files/`
/// that nothing else refers to must be the one, or it would be dropped on the
/// next read.
fn description_path(pkg: &CoursePackage, text: &str, taken: &mut BTreeSet<String>) -> (String, bool) {
    let referenced: BTreeSet<&str> = attachments(pkg).into_iter().collect();
    let same: Vec<&String> =
        pkg.files.iter().filter(|(_, bytes)| bytes.as_slice() == text.as_bytes()).map(|(path, _)| path).collect();
    let chosen = same
        .iter()
        .find(|p| !p.starts_with("files/") && !referenced.contains(p.as_str()))
        .or_else(|| same.iter().find(|p| p.as_str() == "files/about.md"))
        .or_else(|| same.first());
    match chosen {
        Some(path) => ((*path).clone(), false),
        None => (free_name(taken, "files", "about", "md"), true),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn no_strings(v: &&[String]) -> bool {
    v.is_empty()
}

#[derive(Serialize)]
struct CourseToml<'a> {
    course: CourseOut<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<RunOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sections: Vec<SectionOut<'a>>,
}

#[derive(Serialize)]
struct CourseOut<'a> {
    slug: &'a str,
    title: &'a str,
    summary: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "no_strings")]
    subjects: &'a [String],
    language: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
}

#[derive(Serialize)]
struct RunOut<'a> {
    key: &'a str,
    starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollment_opens_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollment_closes_at: Option<String>,
    pacing: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_days: Option<u32>,
    pass_threshold: u8,
    audit: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_price_cents: Option<u32>,
    /// Only with a price: the reader defaults it otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
}

#[derive(Serialize)]
struct SectionOut<'a> {
    title: &'a str,
    units: &'a [String],
}

#[derive(Serialize)]
struct QuizOut<'a> {
    title: &'a str,
    attempts: u32,
    weight: f64,
    show_answers: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    proctored: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    questions: Vec<QuestionOut<'a>>,
}

#[derive(Serialize)]
struct QuestionOut<'a> {
    kind: &'static str,
    prompt: &'a str,
    #[serde(skip_serializing_if = "no_strings")]
    choices: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    correct: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tolerance: Option<f64>,
    #[serde(skip_serializing_if = "no_strings")]
    accepted: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    feedback: Option<&'a str>,
    #[serde(skip_serializing_if = "no_strings")]
    choice_feedback: &'a [String],
}

#[derive(Serialize)]
struct FrontMatter<'a> {
    title: &'a str,
}

fn to_toml<T: Serialize>(value: &T) -> io::Result<String> {
    // Inline arrays as in the format's examples; multi-line strings stay multi-line.
    toml::to_string(value).map_err(io::Error::other)
}

fn course_toml(pkg: &CoursePackage, layout: &Layout) -> io::Result<String> {
    let c = &pkg.course;
    let doc = CourseToml {
        course: CourseOut {
            slug: &c.slug,
            title: &c.title,
            summary: &c.summary,
            description: layout.description.as_ref().map(|(path, _)| path.as_str()),
            subjects: &c.subjects,
            language: &c.language,
            effort: c.effort.as_deref(),
            image: c.image.as_deref(),
        },
        runs: pkg
            .runs
            .iter()
            .map(|r| RunOut {
                key: &r.key,
                starts_at: rfc3339(&r.starts_at),
                ends_at: r.ends_at.as_ref().map(rfc3339),
                enrollment_opens_at: r.enrollment_opens_at.as_ref().map(rfc3339),
                enrollment_closes_at: r.enrollment_closes_at.as_ref().map(rfc3339),
                pacing: r.pacing.as_str(),
                access_days: r.access_days,
                pass_threshold: r.pass_threshold,
                audit: r.audit,
                verified_price_cents: r.verified_price_cents,
                currency: r.verified_price_cents.map(|_| r.currency.as_str()),
            })
            .collect(),
        sections: pkg
            .sections
            .iter()
            .zip(&layout.units)
            .map(|(s, units)| SectionOut { title: &s.title, units })
            .collect(),
    };
    to_toml(&doc)
}

pub(super) fn quiz_toml(quiz: &QuizPkg) -> io::Result<String> {
    let doc = QuizOut {
        title: &quiz.title,
        attempts: quiz.attempts,
        weight: quiz.weight,
        show_answers: quiz.show_answers.as_str(),
        due_at: quiz.due_at.as_ref().map(rfc3339),
        proctored: quiz.proctored,
        questions: quiz
            .questions
            .iter()
            .map(|q| QuestionOut {
                kind: q.kind.as_str(),
                prompt: &q.prompt,
                choices: &q.choices,
                correct: q.correct.iter().map(|&i| i as u64).collect(),
                answer: q.answer,
                tolerance: (q.tolerance != 0.0).then_some(q.tolerance),
                accepted: &q.accepted,
                feedback: q.feedback.as_deref(),
                choice_feedback: &q.choice_feedback,
            })
            .collect(),
    };
    to_toml(&doc)
}

fn unit_md(unit: &UnitPkg, quiz_files: &[Option<String>]) -> io::Result<String> {
    let mut out = format!("+++\n{}+++\n", to_toml(&FrontMatter { title: &unit.title })?);
    let mut previous_was_text = None;
    for (block, quiz_file) in unit.blocks.iter().zip(quiz_files) {
        let (is_text, body) = match block {
            BlockPkg::Text { markdown } => {
                let markdown = normalize_markdown(markdown);
                if markdown.is_empty() {
                    continue;
                }
                (true, markdown)
            }
            BlockPkg::Video { url, file, transcript } => {
                let attrs: Vec<(&str, &str)> = [("url", url), ("file", file), ("transcript", transcript)]
                    .into_iter()
                    .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
                    .collect();
                (false, directive::render("video", &attrs))
            }
            BlockPkg::Quiz(_) => {
                (false, directive::render("quiz", &[("file", quiz_file.as_deref().unwrap_or_default())]))
            }
            BlockPkg::Resource { title, file } => {
                (false, directive::render("resource", &[("file", file), ("title", title)]))
            }
            BlockPkg::Live { title, starts_at, link } => {
                let starts_at = rfc3339(starts_at);
                (false, directive::render("live", &[("title", title), ("starts_at", &starts_at), ("link", link)]))
            }
        };
        // Blank lines around text keep the file readable; they never become content.
        if is_text || previous_was_text != Some(false) {
            out.push('\n');
        }
        out.push_str(&body);
        out.push('\n');
        previous_was_text = Some(is_text);
    }
    Ok(out)
}

/// Every file of the package, path → bytes, in writing order.
fn render(pkg: &CoursePackage) -> io::Result<Vec<(String, Vec<u8>)>> {
    // The paths come from the caller: never let one escape the target folder.
    for path in pkg.files.keys() {
        check_path(path).map_err(|message| invalid(format!("file path `{path}` {message}")))?;
        if path == "course.toml" {
            return Err(invalid("course.toml cannot be an attached file".into()));
        }
    }
    let layout = layout(pkg);
    let mut entries = vec![("course.toml".to_string(), course_toml(pkg, &layout)?.into_bytes())];
    for (s, section) in pkg.sections.iter().enumerate() {
        for (u, unit) in section.units.iter().enumerate() {
            let quiz_files = &layout.quizzes[s][u];
            entries.push((layout.units[s][u].clone(), unit_md(unit, quiz_files)?.into_bytes()));
            for (block, file) in unit.blocks.iter().zip(quiz_files) {
                if let (BlockPkg::Quiz(quiz), Some(file)) = (block, file) {
                    entries.push((file.clone(), quiz_toml(quiz)?.into_bytes()));
                }
            }
        }
    }
    if let (Some((path, true)), Some(text)) = (&layout.description, &pkg.course.description) {
        entries.push((path.clone(), text.clone().into_bytes()));
    }
    entries.extend(pkg.files.iter().map(|(path, bytes)| (path.clone(), bytes.clone())));
    let names: BTreeSet<&str> = entries.iter().map(|(path, _)| path.as_str()).collect();
    for name in &names {
        for (slash, _) in name.match_indices('/') {
            if names.contains(&name[..slash]) {
                return Err(invalid(format!("`{}` is both a file and a folder", &name[..slash])));
            }
        }
    }
    Ok(entries)
}

pub(super) fn write_dir(pkg: &CoursePackage, root: &Path) -> io::Result<()> {
    let entries = render(pkg)?;
    match std::fs::read_dir(root) {
        Ok(mut listing) => {
            if listing.next().is_some() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} is not empty", root.display())));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(root)?;
    for (path, bytes) in entries {
        let target = path.split('/').fold(root.to_path_buf(), |dir, part| dir.join(part));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // create_new: never follow or overwrite something that appeared meanwhile.
        std::fs::OpenOptions::new().write(true).create_new(true).open(&target)?.write_all(&bytes)?;
    }
    Ok(())
}

/// Formats that are already compressed gain nothing from deflate.
fn precompressed(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp4", ".webm", ".mov", ".mp3", ".ogg", ".zip", ".gz"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

pub(super) fn write_zip(pkg: &CoursePackage) -> io::Result<Vec<u8>> {
    let entries = render(pkg)?;
    let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for (path, bytes) in &entries {
        let method =
            if precompressed(path) { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated };
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        zip.start_file(path.as_str(), options).map_err(io::Error::other)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish().map_err(io::Error::other)?.into_inner())
}

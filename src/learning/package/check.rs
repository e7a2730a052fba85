//! The rules a package must follow beyond its syntax, shared by the reader
//! (which knows file and line of every field) and [`super::validate`] (which
//! checks packages built in memory and names the files the writer would
//! produce). Each entity comes with a [`Spot`] telling where its fields are
//! and which fields the reader already found broken, so a field that failed to
//! parse is reported once, not again as a rule violation.

use super::directive::PREFIX;
use super::{BlockPkg, CoursePackage, QuestionKind, QuestionPkg, QuizPkg, RunMeta, ShowAnswers, write};
use super::{DEFAULT_CURRENCY, PackageProblem, allowed_video_url};
use crate::learning::content::check_text;
use crate::media::files::Use;
use std::collections::{BTreeSet, HashMap, HashSet};

pub(super) const MSG_THRESHOLD: &str = "pass_threshold must be a whole percentage from 0 to 100";
pub(super) const MSG_ACCESS_DAYS: &str = "access_days must be a whole number of at least 1";
pub(super) const MSG_PRICE: &str = "verified_price_cents must be a whole number of cents, 0 or more";
pub(super) const MSG_ATTEMPTS: &str = "attempts must be a whole number of at least 1";
pub(super) const MSG_WEIGHT: &str = "weight must be a number greater than 0";
const SUMMARY_MAX_CHARS: usize = 300;
const IMAGE_KINDS: &str = "a PNG, JPEG, GIF or WebP image";

/// Where an entity lives: its file, its own line (a table header, a directive),
/// the line of each field, and fields the reader has already reported.
#[derive(Debug, Clone, Default)]
pub(super) struct Spot {
    pub file: String,
    pub line: Option<usize>,
    /// Used instead of a line when there is none: "run 2", "question 3".
    pub label: Option<String>,
    pub fields: HashMap<&'static str, usize>,
    pub broken: HashSet<&'static str>,
    /// Everything about this entity was already reported (e.g. a missing table).
    pub silent: bool,
}

impl Spot {
    pub fn new(file: &str, line: Option<usize>) -> Spot {
        Spot { file: file.to_string(), line, ..Spot::default() }
    }

    fn labelled(file: &str, label: String) -> Spot {
        Spot { file: file.to_string(), label: Some(label), ..Spot::default() }
    }

    /// Whether none of `fields` was found broken while reading.
    pub fn ok(&self, fields: &[&str]) -> bool {
        !self.silent && fields.iter().all(|f| !self.broken.contains(f))
    }

    /// A problem about `field` (or the entity itself when the field has no line).
    pub fn problem(&self, field: &str, message: impl Into<String>) -> PackageProblem {
        let line = self.fields.get(field).copied().or(self.line);
        let message = match (&self.label, line) {
            (Some(label), None) => format!("{label}: {}", message.into()),
            _ => message.into(),
        };
        PackageProblem { file: self.file.clone(), line, message }
    }

    /// Reports a rule violation unless the field already failed to parse.
    pub fn report(&self, out: &mut Vec<PackageProblem>, field: &str, message: impl Into<String>) {
        if self.ok(&[field]) {
            out.push(self.problem(field, message));
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Places {
    pub course: Spot,
    pub runs: Vec<Spot>,
    pub sections: Vec<SectionPlaces>,
}

#[derive(Debug, Default)]
pub(super) struct SectionPlaces {
    pub spot: Spot,
    pub units: Vec<UnitPlaces>,
}

#[derive(Debug, Default)]
pub(super) struct UnitPlaces {
    pub spot: Spot,
    pub blocks: Vec<BlockPlaces>,
}

#[derive(Debug, Default)]
pub(super) struct BlockPlaces {
    pub spot: Spot,
    pub quiz: Option<QuizPlaces>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct QuizPlaces {
    pub spot: Spot,
    pub questions: Vec<Spot>,
}

/// Package paths: relative, `/`-separated, no `..`. The predicate completes
/// "path `x` …".
pub(super) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.starts_with('/') {
        return Err("must be relative to the package root (not start with `/`)".into());
    }
    if path.contains('\\') {
        return Err("must use `/` between folders, not `\\`".into());
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if path.len() > 1024 {
        return Err("is too long".into());
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.contains(&"..") {
        return Err("must not contain `..`".into());
    }
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        return Err("must not contain empty or `.` parts".into());
    }
    // `C:/…` is absolute on Windows.
    if parts[0].len() == 2 && parts[0].ends_with(':') {
        return Err("must be relative to the package root".into());
    }
    Ok(())
}

pub(super) fn is_slug(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Every attachment path the model refers to (image and block files), in order.
pub(super) fn attachments(pkg: &CoursePackage) -> Vec<&str> {
    let mut paths: Vec<&str> = pkg.course.image.iter().map(String::as_str).collect();
    for block in pkg.sections.iter().flat_map(|s| &s.units).flat_map(|u| &u.blocks) {
        match block {
            BlockPkg::Video { file, transcript, .. } => {
                paths.extend(file.as_deref());
                paths.extend(transcript.as_deref());
            }
            BlockPkg::Resource { file, .. } => paths.push(file),
            BlockPkg::Text { .. } | BlockPkg::Quiz(_) | BlockPkg::Live { .. } => {}
        }
    }
    paths
}

/// Sorted by file and line (discovery order within a line), duplicates
/// removed (a quiz used twice is checked twice).
pub(super) fn finish(mut problems: Vec<PackageProblem>) -> Vec<PackageProblem> {
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    let mut seen = HashSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    problems
}

pub(super) fn validate(pkg: &CoursePackage) -> Vec<PackageProblem> {
    let layout = write::layout(pkg);
    let mut places = Places { course: Spot::new("course.toml", None), ..Places::default() };
    for i in 0..pkg.runs.len() {
        places.runs.push(Spot::labelled("course.toml", format!("run {}", i + 1)));
    }
    for (s, section) in pkg.sections.iter().enumerate() {
        let mut sp = SectionPlaces { spot: Spot::labelled("course.toml", format!("section {}", s + 1)), units: vec![] };
        for (u, unit) in section.units.iter().enumerate() {
            let file = &layout.units[s][u];
            let mut up = UnitPlaces { spot: Spot::new(file, None), blocks: vec![] };
            for (b, block) in unit.blocks.iter().enumerate() {
                let quiz = match (block, &layout.quizzes[s][u][b]) {
                    (BlockPkg::Quiz(q), Some(quiz_file)) => Some(QuizPlaces {
                        spot: Spot::new(quiz_file, None),
                        questions: (0..q.questions.len())
                            .map(|i| Spot::labelled(quiz_file, format!("question {}", i + 1)))
                            .collect(),
                    }),
                    _ => None,
                };
                up.blocks.push(BlockPlaces { spot: Spot::labelled(file, format!("block {}", b + 1)), quiz });
            }
            sp.units.push(up);
        }
        places.sections.push(sp);
    }
    let mut out = Vec::new();
    for path in pkg.files.keys() {
        if let Err(message) = check_path(path) {
            out.push(PackageProblem { file: path.clone(), line: None, message: format!("path {message}") });
        } else if path == "course.toml" {
            out.push(PackageProblem {
                file: path.clone(),
                line: None,
                message: "course.toml cannot be an attached file".into(),
            });
        }
    }
    package(pkg, &places, &mut out);
    finish(out)
}

/// All rules over the model; `places` parallels `pkg`.
pub(super) fn package(pkg: &CoursePackage, places: &Places, out: &mut Vec<PackageProblem>) {
    course(pkg, &places.course, out);
    let mut keys = BTreeSet::new();
    for (run, spot) in pkg.runs.iter().zip(&places.runs) {
        self::run(run, spot, out);
        if spot.ok(&["key"]) && !keys.insert(run.key.as_str()) {
            spot.report(out, "key", format!("run key `{}` is used by another run", run.key));
        }
    }
    for (section, sp) in pkg.sections.iter().zip(&places.sections) {
        one_line(&section.title, "title", &sp.spot, out);
        for (unit, up) in section.units.iter().zip(&sp.units) {
            one_line(&unit.title, "title", &up.spot, out);
            for (block, bp) in unit.blocks.iter().zip(&up.blocks) {
                self::block(pkg, block, bp, out);
            }
        }
    }
}

fn one_line(value: &str, field: &str, spot: &Spot, out: &mut Vec<PackageProblem>) {
    if value.trim().is_empty() {
        spot.report(out, field, format!("{field} must not be empty"));
    } else if value.chars().any(char::is_control) {
        spot.report(out, field, format!("{field} must be one line of text"));
    }
}

/// A file the package attaches; `usage` says which types its bytes may be
/// (none for a transcript, which is read as text).
fn attachment(
    pkg: &CoursePackage,
    path: &str,
    field: &str,
    usage: Option<Use>,
    spot: &Spot,
    out: &mut Vec<PackageProblem>,
) {
    if let Err(message) = check_path(path) {
        spot.report(out, field, format!("path `{path}` {message}"));
    } else if path == "course.toml" {
        spot.report(out, field, "course.toml cannot be an attached file");
    } else {
        match (pkg.files.get(path), usage) {
            (None, _) => spot.report(out, field, format!("file `{path}` is not in the package")),
            (Some(bytes), Some(usage)) => {
                if let Err(e) = crate::media::files::check(bytes, usage, &format!("file `{path}`")) {
                    spot.report(out, field, e.to_string());
                }
            }
            (Some(_), None) => {}
        }
    }
}

fn course(pkg: &CoursePackage, spot: &Spot, out: &mut Vec<PackageProblem>) {
    let c = &pkg.course;
    if !is_slug(&c.slug, 3, 60) {
        spot.report(out, "slug", "slug must be 3–60 characters of a-z, 0-9 and -");
    }
    one_line(&c.title, "title", spot, out);
    if let Some(Err(limit)) = c.description.as_deref().map(check_text) {
        spot.report(out, "description", limit.to_string());
    }
    if c.summary.trim().is_empty() {
        spot.report(out, "summary", "summary must not be empty");
    } else if c.summary.chars().count() > SUMMARY_MAX_CHARS {
        let count = c.summary.chars().count();
        spot.report(out, "summary", format!("summary must be at most {SUMMARY_MAX_CHARS} characters (it has {count})"));
    }
    let mut seen = BTreeSet::new();
    for subject in &c.subjects {
        if !is_slug(subject, 1, 60) {
            spot.report(out, "subjects", format!("subject `{subject}` must be a slug: a-z, 0-9 and -"));
        } else if !seen.insert(subject) {
            spot.report(out, "subjects", format!("subject `{subject}` is listed twice"));
        }
    }
    if !(2..=3).contains(&c.language.len()) || !c.language.chars().all(|ch| ch.is_ascii_lowercase()) {
        spot.report(out, "language", "language must be a 2–3 letter code like \"en\"");
    }
    if c.effort.as_deref().is_some_and(|e| e.trim().is_empty()) {
        spot.report(out, "effort", "effort must not be empty (leave it out instead)");
    }
    if let Some(image) = &c.image {
        let before = out.len();
        attachment(pkg, image, "image", None, spot, out);
        if out.len() == before {
            let lower = image.to_ascii_lowercase();
            let named = [".png", ".jpg", ".jpeg", ".gif", ".webp"].iter().any(|ext| lower.ends_with(ext));
            let bytes = pkg.files.get(image).map(Vec::as_slice).unwrap_or_default();
            if !named || !looks_like_image(bytes) {
                spot.report(out, "image", format!("image `{image}` must be {IMAGE_KINDS}"));
            }
        }
    }
}

/// Magic numbers: the extension alone would let any file pose as a cover.
fn looks_like_image(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || bytes.starts_with(b"GIF87a")
        || bytes.starts_with(b"GIF89a")
        || (bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP")
}

fn run(run: &RunMeta, spot: &Spot, out: &mut Vec<PackageProblem>) {
    if !is_slug(&run.key, 1, 60) {
        spot.report(out, "key", "run key must be 1–60 characters of a-z, 0-9 and -");
    }
    if run.pass_threshold > 100 {
        spot.report(out, "pass_threshold", MSG_THRESHOLD);
    }
    if run.access_days == Some(0) {
        spot.report(out, "access_days", MSG_ACCESS_DAYS);
    }
    if let Some(ends_at) = run.ends_at
        && spot.ok(&["starts_at"])
        && ends_at <= run.starts_at
    {
        spot.report(out, "ends_at", "ends_at must be after starts_at");
    }
    if let (Some(opens), Some(closes)) = (run.enrollment_opens_at, run.enrollment_closes_at)
        && spot.ok(&["enrollment_opens_at"])
        && closes <= opens
    {
        spot.report(out, "enrollment_closes_at", "enrollment_closes_at must be after enrollment_opens_at");
    }
    if run.currency.len() != 3 || !run.currency.chars().all(|c| c.is_ascii_uppercase()) {
        spot.report(out, "currency", "currency must be a 3-letter code like \"USD\"");
    } else if run.verified_price_cents.is_none()
        && run.currency != DEFAULT_CURRENCY
        && spot.ok(&["verified_price_cents"])
    {
        spot.report(out, "currency", "currency applies only with verified_price_cents");
    }
}

fn web_link(link: &str) -> bool {
    !link.chars().any(|c| c.is_whitespace() || c.is_control())
        && url::Url::parse(link).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

fn block(pkg: &CoursePackage, block: &BlockPkg, places: &BlockPlaces, out: &mut Vec<PackageProblem>) {
    let spot = &places.spot;
    match block {
        BlockPkg::Text { markdown } => {
            if let Err(limit) = check_text(markdown) {
                spot.report(out, "markdown", limit.to_string());
            }
            if markdown.lines().any(|l| l.starts_with(PREFIX)) {
                spot.report(
                    out,
                    "markdown",
                    format!("text has a line starting with `{PREFIX}`, which reads as a directive"),
                );
            }
        }
        BlockPkg::Video { url, file, transcript } => {
            match (url, file) {
                (Some(_), Some(_)) => spot.report(out, "url", "a video has either url or file, not both"),
                (None, None) => spot.report(out, "url", "a video needs url or file"),
                _ => {}
            }
            if let Some(url) = url
                && !allowed_video_url(url)
            {
                // A URL with a line break in it would garble the message.
                let shown = if url.chars().any(char::is_control) { String::new() } else { format!(" `{url}`") };
                let hosts = super::VIDEO_HOSTS.join(", ");
                spot.report(out, "url", format!("video url{shown} must be https on an allowed host ({hosts})"));
            }
            if let Some(file) = file {
                attachment(pkg, file, "file", Some(Use::Video), spot, out);
            }
            if let Some(transcript) = transcript {
                attachment(pkg, transcript, "transcript", None, spot, out);
            }
        }
        BlockPkg::Quiz(quiz) => {
            if let Some(qp) = &places.quiz {
                self::quiz(quiz, qp, out);
            }
        }
        BlockPkg::Resource { title, file } => {
            one_line(title, "title", spot, out);
            attachment(pkg, file, "file", Some(Use::Resource), spot, out);
        }
        BlockPkg::Live { title, link, .. } => {
            one_line(title, "title", spot, out);
            if !web_link(link) {
                spot.report(out, "link", "link must be an http:// or https:// address");
            }
        }
    }
}

pub(super) fn quiz(quiz: &QuizPkg, places: &QuizPlaces, out: &mut Vec<PackageProblem>) {
    let spot = &places.spot;
    one_line(&quiz.title, "title", spot, out);
    if quiz.attempts == 0 {
        spot.report(out, "attempts", MSG_ATTEMPTS);
    }
    if !(quiz.weight.is_finite() && quiz.weight > 0.0) {
        spot.report(out, "weight", MSG_WEIGHT);
    }
    if quiz.show_answers == ShowAnswers::AfterDue && quiz.due_at.is_none() && spot.ok(&["due_at"]) {
        spot.report(out, "show_answers", "show_answers = \"after_due\" needs due_at");
    }
    if quiz.questions.is_empty() {
        spot.report(out, "questions", "a quiz needs at least one question");
    }
    for (q, qs) in quiz.questions.iter().zip(&places.questions) {
        question(q, qs, out);
    }
}

fn question(q: &QuestionPkg, spot: &Spot, out: &mut Vec<PackageProblem>) {
    if q.prompt.trim().is_empty() {
        spot.report(out, "prompt", "prompt must not be empty");
    }
    if let Err(limit) = check_text(&q.prompt) {
        spot.report(out, "prompt", limit.to_string());
    }
    if let Some(Err(limit)) = q.feedback.as_deref().map(check_text) {
        spot.report(out, "feedback", limit.to_string());
    }
    if let Some(Err(limit)) = q.choice_feedback.iter().map(|f| check_text(f)).find(Result::is_err) {
        spot.report(out, "choice_feedback", limit.to_string());
    }
    if !spot.ok(&["kind"]) {
        return;
    }
    let kind = q.kind.as_str();
    let mut not_for_kind = |field: &str, set: bool| {
        if set {
            spot.report(out, field, format!("`{field}` does not apply to a {kind} question"));
        }
    };
    let choice_kind = matches!(q.kind, QuestionKind::Single | QuestionKind::Multiple);
    not_for_kind("choices", !choice_kind && !q.choices.is_empty());
    not_for_kind("correct", !choice_kind && !q.correct.is_empty());
    not_for_kind("choice_feedback", !choice_kind && !q.choice_feedback.is_empty());
    not_for_kind("answer", q.kind != QuestionKind::Numeric && q.answer.is_some());
    not_for_kind("tolerance", q.kind != QuestionKind::Numeric && q.tolerance != 0.0);
    not_for_kind("accepted", q.kind != QuestionKind::Text && !q.accepted.is_empty());
    match q.kind {
        QuestionKind::Single | QuestionKind::Multiple => {
            if q.choices.len() < 2 {
                spot.report(out, "choices", format!("a {kind} question needs at least two choices"));
            } else if q.choices.iter().any(|c| c.trim().is_empty()) {
                spot.report(out, "choices", "choices must not be blank");
            }
            if !q.choice_feedback.is_empty() && q.choice_feedback.len() != q.choices.len() && spot.ok(&["choices"]) {
                let (n, m) = (q.choice_feedback.len(), q.choices.len());
                spot.report(
                    out,
                    "choice_feedback",
                    format!("choice_feedback has {n} entries for {m} choices: give one per choice, \"\" for none"),
                );
            }
            let mut seen = BTreeSet::new();
            for &index in &q.correct {
                if index >= q.choices.len() && spot.ok(&["choices"]) {
                    let n = q.choices.len();
                    spot.report(
                        out,
                        "correct",
                        format!("correct answer {index} is not one of the {n} choices (they are numbered from 0)"),
                    );
                } else if !seen.insert(index) {
                    spot.report(out, "correct", format!("correct lists choice {index} twice"));
                }
            }
            if q.kind == QuestionKind::Single && q.correct.len() != 1 {
                spot.report(out, "correct", "single-choice question needs exactly one correct answer");
            }
            if q.kind == QuestionKind::Multiple && q.correct.is_empty() {
                spot.report(out, "correct", "multiple-choice question needs at least one correct answer");
            }
        }
        QuestionKind::Numeric => {
            match q.answer {
                None => spot.report(out, "answer", "numeric question needs an answer"),
                Some(a) if !a.is_finite() => spot.report(out, "answer", "answer must be a finite number"),
                Some(_) => {}
            }
            if !(q.tolerance.is_finite() && q.tolerance >= 0.0) {
                spot.report(out, "tolerance", "tolerance must be a number ≥ 0");
            }
        }
        QuestionKind::Text => {
            if q.accepted.is_empty() {
                spot.report(out, "accepted", "text question needs at least one accepted answer");
            } else if q.accepted.iter().any(|a| a.trim().is_empty()) {
                spot.report(out, "accepted", "accepted answers must not be blank");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_paths() {
        assert!(check_path("files/a b.pdf").is_ok());
        assert!(check_path("cover.png").is_ok());
        for bad in ["", "/etc/passwd", "../x", "files/../../x", "files\\x", "files//x", "./x", "C:/x", "a\nb"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_path("../secret.txt").unwrap_err(), "must not contain `..`");
    }

    #[test]
    fn spots_skip_broken_fields_and_fall_back_to_the_entity_line() {
        let mut spot = Spot::new("quizzes/a.toml", Some(4));
        spot.fields.insert("correct", 7);
        spot.broken.insert("kind");
        let mut out = vec![];
        spot.report(&mut out, "kind", "ignored");
        spot.report(&mut out, "correct", "c");
        spot.report(&mut out, "prompt", "p");
        let shown: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["quizzes/a.toml:7: c", "quizzes/a.toml:4: p"]);
    }

    #[test]
    fn images_are_recognised_by_content() {
        assert!(looks_like_image(b"\x89PNG\r\n\x1a\nrest"));
        assert!(looks_like_image(b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!looks_like_image(b"<svg xmlns=...>"));
    }
}

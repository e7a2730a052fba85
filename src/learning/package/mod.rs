//! Course packages (docs/COURSE_PACKAGE.md): a folder or `.zip` holding one
//! course, its runs and its content. This module is pure — no database, no
//! HTTP: it turns package bytes into a [`CoursePackage`] (or a list of every
//! problem found, each with file and line) and writes a [`CoursePackage`] back
//! in the canonical layout, so that `read(write(pkg)) == pkg`.
//!
//! Normalisation rules that make the round trip exact:
//! * A text block is the Markdown between directives with CRLF turned into LF,
//!   leading blank lines dropped and trailing whitespace trimmed
//!   ([`normalize_markdown`]); blank-only text is dropped. The writer applies
//!   the same rule, so text built in memory is normalised on the way out.
//! * `files` holds every file under `files/` plus every other file the package
//!   refers to (image, description, video files, transcripts, resources).
//!   The description is also kept, byte for byte, as text in
//!   [`CourseMeta::description`]; the writer points `description` at a file in
//!   `files` holding exactly those bytes (one outside `files/` that nothing else
//!   uses first, since only the description keeps it; then `files/about.md`),
//!   and writes a new `files/about.md` (`about-2.md`… if taken) only when none does.
//! * Unit and quiz file names are not part of the model: the writer numbers
//!   them across the whole course (`units/01-welcome.md`, `quizzes/01-check.toml`).
//! * Names starting with `.` (and `__MACOSX/` in zips) are ignored when reading.

mod check;
mod directive;
mod read;
mod source;
mod toml_fields;
mod write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Refuse packages larger than this when unpacked (zip bombs, runaway folders).
pub const MAX_PACKAGE_BYTES: u64 = 200 * 1024 * 1024;
/// Refuse packages with more entries than this.
pub const MAX_PACKAGE_ENTRIES: usize = 5000;

/// Hosts a video `url` may point at; embedding anything else would let a
/// package pull arbitrary pages into ours.
pub const VIDEO_HOSTS: &[&str] =
    &["www.youtube.com", "youtube.com", "youtu.be", "www.youtube-nocookie.com", "vimeo.com", "player.vimeo.com"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoursePackage {
    pub course: CourseMeta,
    pub runs: Vec<RunMeta>,
    pub sections: Vec<SectionPkg>,
    /// Package path → bytes: everything under `files/` and every referenced file.
    pub files: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CourseMeta {
    pub slug: String,
    pub title: String,
    pub summary: String,
    /// The Markdown text of the about page (not its path).
    pub description: Option<String>,
    pub subjects: Vec<String>,
    pub language: String,
    pub effort: Option<String>,
    /// Package path of the cover image (a key of [`CoursePackage::files`]).
    pub image: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Pacing {
    #[default]
    #[serde(rename = "self")]
    SelfPaced,
    #[serde(rename = "instructor")]
    InstructorPaced,
}

impl Pacing {
    pub fn as_str(self) -> &'static str {
        match self {
            Pacing::SelfPaced => "self",
            Pacing::InstructorPaced => "instructor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub key: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub enrollment_opens_at: Option<DateTime<Utc>>,
    pub enrollment_closes_at: Option<DateTime<Utc>>,
    pub pacing: Pacing,
    pub access_days: Option<u32>,
    /// Percent, 0–100.
    pub pass_threshold: u8,
    pub audit: bool,
    pub verified_price_cents: Option<u32>,
    pub currency: String,
}

impl Default for RunMeta {
    fn default() -> Self {
        RunMeta {
            key: String::new(),
            starts_at: DateTime::<Utc>::default(),
            ends_at: None,
            enrollment_opens_at: None,
            enrollment_closes_at: None,
            pacing: Pacing::SelfPaced,
            access_days: None,
            pass_threshold: 0,
            audit: true,
            verified_price_cents: None,
            currency: DEFAULT_CURRENCY.to_string(),
        }
    }
}

pub const DEFAULT_CURRENCY: &str = "USD";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SectionPkg {
    pub title: String,
    pub units: Vec<UnitPkg>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UnitPkg {
    pub title: String,
    pub blocks: Vec<BlockPkg>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockPkg {
    Text {
        markdown: String,
    },
    /// Exactly one of `url` (an allowed host) and `file` (a package path).
    Video {
        url: Option<String>,
        file: Option<String>,
        transcript: Option<String>,
    },
    Quiz(QuizPkg),
    Resource {
        title: String,
        file: String,
    },
    Live {
        title: String,
        starts_at: DateTime<Utc>,
        link: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShowAnswers {
    #[default]
    AfterLastAttempt,
    AfterDue,
}

impl ShowAnswers {
    pub fn as_str(self) -> &'static str {
        match self {
            ShowAnswers::AfterLastAttempt => "after_last_attempt",
            ShowAnswers::AfterDue => "after_due",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuizPkg {
    pub title: String,
    pub attempts: u32,
    pub weight: f64,
    pub show_answers: ShowAnswers,
    pub due_at: Option<DateTime<Utc>>,
    pub questions: Vec<QuestionPkg>,
    pub proctored: bool,
}

impl Default for QuizPkg {
    fn default() -> Self {
        QuizPkg {
            title: String::new(),
            attempts: 1,
            weight: 1.0,
            show_answers: ShowAnswers::AfterLastAttempt,
            due_at: None,
            questions: Vec::new(),
            proctored: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    #[default]
    Single,
    Multiple,
    Numeric,
    Text,
}

impl QuestionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::Single => "single",
            QuestionKind::Multiple => "multiple",
            QuestionKind::Numeric => "numeric",
            QuestionKind::Text => "text",
        }
    }
}

/// One question; only the fields of its kind are set (validation insists).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QuestionPkg {
    pub kind: QuestionKind,
    pub prompt: String,
    /// single / multiple
    pub choices: Vec<String>,
    /// single / multiple: 0-based indices into `choices`.
    pub correct: Vec<usize>,
    /// numeric
    pub answer: Option<f64>,
    /// numeric: absolute, ≥ 0.
    pub tolerance: f64,
    /// text: compared trimmed and case-insensitively.
    pub accepted: Vec<String>,
    pub feedback: Option<String>,
    /// single / multiple: feedback for a learner who picked each choice,
    /// one per choice (`""` for none), or empty.
    pub choice_feedback: Vec<String>,
}

/// One thing wrong with a package: the file, the line when known, and what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageProblem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PackageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for PackageProblem {}

/// Reads a package folder. On failure, every problem found, sorted by file and line.
pub fn read_dir(path: &Path) -> Result<CoursePackage, Vec<PackageProblem>> {
    let tree = source::load_dir(path)?;
    read::read_tree(tree)
}

/// Reads a zipped package: the folder's contents at the root of the zip, or
/// all under one top folder (what "compress this folder" produces).
pub fn read_zip(bytes: &[u8]) -> Result<CoursePackage, Vec<PackageProblem>> {
    let tree = source::load_zip(bytes)?;
    read::read_tree(tree)
}

/// Writes the canonical layout into `path`, which must not exist or be an
/// empty directory (an export never mixes with stale files).
pub fn write_dir(pkg: &CoursePackage, path: &Path) -> std::io::Result<()> {
    write::write_dir(pkg, path)
}

/// Writes the canonical layout as a zip, entries at the root.
pub fn write_zip(pkg: &CoursePackage) -> std::io::Result<Vec<u8>> {
    write::write_zip(pkg)
}

/// Checks a package built in memory against the same rules the reader
/// applies. Problems name the file the writer would produce (no line numbers).
pub fn validate(pkg: &CoursePackage) -> Vec<PackageProblem> {
    check::validate(pkg)
}

/// Reads one quiz in the package's quiz format (`file` names it in
/// problems), with the same rules as a quiz inside a package.
pub fn parse_quiz(file: &str, source: &str) -> Result<QuizPkg, Vec<PackageProblem>> {
    read::quiz_from_str(file, source)
}

/// One quiz in the package's quiz format, as the writer puts it in `quizzes/`.
pub fn quiz_to_toml(quiz: &QuizPkg) -> String {
    // Serialising plain strings and numbers cannot fail in practice; should it,
    // the comment makes the result fail to read (no title) instead of passing silently.
    write::quiz_toml(quiz).unwrap_or_else(|e| format!("# the quiz could not be written: {e}\n"))
}

/// Whether a video URL is `https` on one of [`VIDEO_HOSTS`] (no credentials, default port).
pub fn allowed_video_url(url: &str) -> bool {
    // The URL parser silently drops tabs and line breaks; a directive cannot hold them.
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Ok(parsed) = url::Url::parse(url) else { return false };
    parsed.scheme() == "https"
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.port().is_none()
        && parsed.host_str().is_some_and(|host| VIDEO_HOSTS.contains(&host))
}

/// The canonical form of a text block: LF line ends, no leading blank lines,
/// no trailing whitespace. Reader and writer both apply it.
pub fn normalize_markdown(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        start += line.len();
    }
    text[start..].trim_end().to_string()
}

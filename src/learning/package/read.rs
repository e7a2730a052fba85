//! From a loaded tree to a [`CoursePackage`]: course.toml, then each listed
//! unit in order, each quiz a unit places, then the shared rules. Every
//! problem is collected; a package with any problem is refused as a whole.

use super::check::{self, BlockPlaces, MSG_ACCESS_DAYS, MSG_ATTEMPTS, MSG_PRICE, MSG_THRESHOLD, MSG_WEIGHT};
use super::check::{Places, QuizPlaces, SectionPlaces, Spot, UnitPlaces, check_path};
use super::directive::{self, Directive, PREFIX};
use super::source::Tree;
use super::toml_fields::{DATE_EXAMPLE, Fields, Src, Value, as_array, as_table, parse_date};
use super::{BlockPkg, CourseMeta, CoursePackage, DEFAULT_CURRENCY, Pacing, PackageProblem, QuestionKind, QuestionPkg};
use super::{QuizPkg, RunMeta, SectionPkg, ShowAnswers, UnitPkg, normalize_markdown};
use std::collections::{BTreeMap, HashMap, HashSet};

const COURSE_KEYS: &[&str] = &["slug", "title", "summary", "description", "subjects", "language", "effort", "image"];
const RUN_KEYS: &[&str] = &[
    "key",
    "starts_at",
    "ends_at",
    "enrollment_opens_at",
    "enrollment_closes_at",
    "pacing",
    "access_days",
    "pass_threshold",
    "audit",
    "verified_price_cents",
    "currency",
];
const SECTION_KEYS: &[&str] = &["title", "units"];
const QUIZ_KEYS: &[&str] = &["title", "attempts", "weight", "show_answers", "due_at", "proctored", "questions"];
const QUESTION_KEYS: &[&str] =
    &["kind", "prompt", "choices", "correct", "answer", "tolerance", "accepted", "feedback", "choice_feedback"];
const U32_MAX: i64 = u32::MAX as i64;

fn problem(file: &str, line: Option<usize>, message: impl Into<String>) -> PackageProblem {
    PackageProblem { file: file.to_string(), line, message: message.into() }
}

struct Reader<'t> {
    tree: &'t Tree,
    out: Vec<PackageProblem>,
    units_seen: HashSet<String>,
    /// Parsed once per path: a quiz placed twice is read (and reported) once.
    quizzes: HashMap<String, Option<(QuizPkg, QuizPlaces)>>,
}

/// Parses the tree, then moves the package's files out of it (no copy of
/// what may be 200 MB).
pub(super) fn read_tree(mut tree: Tree) -> Result<CoursePackage, Vec<PackageProblem>> {
    let (parsed, mut out) = {
        let mut reader = Reader { tree: &tree, out: Vec::new(), units_seen: HashSet::new(), quizzes: HashMap::new() };
        let parsed = reader.package();
        (parsed, reader.out)
    };
    let Some((mut pkg, places, description_path)) = parsed else { return Err(check::finish(out)) };
    let referenced: HashSet<String> =
        check::attachments(&pkg).into_iter().map(str::to_string).chain(description_path).collect();
    tree.retain(|path, _| path.starts_with("files/") || referenced.contains(path));
    pkg.files = tree;
    check::package(&pkg, &places, &mut out);
    if out.is_empty() { Ok(pkg) } else { Err(check::finish(out)) }
}

/// One quiz file's text on its own (a quiz edited in the browser).
pub(super) fn quiz_from_str(file: &str, source: &str) -> Result<QuizPkg, Vec<PackageProblem>> {
    let tree = Tree::new();
    let mut reader = Reader { tree: &tree, out: Vec::new(), units_seen: HashSet::new(), quizzes: HashMap::new() };
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let parsed = reader.quiz_text(file, source);
    if let Some((quiz, places)) = &parsed {
        check::quiz(quiz, places, &mut reader.out);
    }
    match parsed {
        Some((quiz, _)) if reader.out.is_empty() => Ok(quiz),
        _ => Err(check::finish(reader.out)),
    }
}

impl<'t> Reader<'t> {
    fn text(&mut self, path: &str, bytes: &'t [u8]) -> Option<&'t str> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Some(text.strip_prefix('\u{feff}').unwrap_or(text)),
            Err(e) => {
                let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
                self.out.push(problem(path, Some(line), "not valid UTF-8 text"));
                None
            }
        }
    }

    /// The package without its files, where each part was found, and the
    /// description's path when it was read.
    fn package(&mut self) -> Option<(CoursePackage, Places, Option<String>)> {
        let tree = self.tree;
        let Some(bytes) = tree.get("course.toml") else {
            self.out.push(problem("course.toml", None, "the package has no course.toml at its root"));
            return None;
        };
        let text = self.text("course.toml", bytes)?;
        let src = Src { file: "course.toml", text, first_line: 1 };
        let doc = src.parse(&mut self.out)?;
        let mut top = Fields::new(&src, &doc, None, &["course", "runs", "sections"]);
        let (course_v, runs_v, sections_v) = (top.raw("course"), top.raw("runs"), top.raw("sections"));

        let mut places = Places::default();
        let (course, description_path) = self.course(&src, course_v, &mut top, &mut places);
        let mut runs = Vec::new();
        for (run, spot) in self.runs(&src, runs_v, &mut top) {
            runs.push(run);
            places.runs.push(spot);
        }
        let sections = self.sections(&src, sections_v, &mut top, &mut places);
        top.finish(&mut self.out);

        Some((CoursePackage { course, runs, sections, files: BTreeMap::new() }, places, description_path))
    }

    /// The `[course]` table, and the description's path when it was read.
    fn course(
        &mut self,
        src: &Src<'_>,
        value: Option<&Value<'_>>,
        top: &mut Fields<'_, '_>,
        places: &mut Places,
    ) -> (CourseMeta, Option<String>) {
        let silent = Spot { file: src.file.to_string(), silent: true, ..Spot::default() };
        let Some(value) = value else {
            top.problem("course", "the [course] table is missing");
            places.course = silent;
            return (CourseMeta::default(), None);
        };
        let Some(table) = as_table(value) else {
            top.problem("course", "`course` must be a table: [course]");
            places.course = silent;
            return (CourseMeta::default(), None);
        };
        let mut f = Fields::new(src, table, Some(top.line_of(value)), COURSE_KEYS);
        let slug = f.string("slug", true).unwrap_or_default();
        let title = f.string("title", true).unwrap_or_default();
        let summary = f.string("summary", true).unwrap_or_default();
        let mut description = None;
        let mut description_path = None;
        if let Some(path) = f.string("description", false) {
            let tree = self.tree;
            if let Err(message) = check_path(&path) {
                f.problem("description", format!("path `{path}` {message}"));
            } else if let Some(bytes) = tree.get(&path) {
                match std::str::from_utf8(bytes) {
                    Ok(text) => {
                        description = Some(text.to_string());
                        description_path = Some(path);
                    }
                    Err(_) => f.problem("description", format!("`{path}` is not valid UTF-8 text")),
                }
            } else {
                f.problem("description", format!("file `{path}` is not in the package"));
            }
        }
        let subjects = f.strings("subjects").unwrap_or_default();
        let language = f.string("language", true).unwrap_or_default();
        let effort = f.string("effort", false);
        let image = f.string("image", false);
        places.course = f.finish(&mut self.out);
        (CourseMeta { slug, title, summary, description, subjects, language, effort, image }, description_path)
    }

    fn runs(&mut self, src: &Src<'_>, value: Option<&Value<'_>>, top: &mut Fields<'_, '_>) -> Vec<(RunMeta, Spot)> {
        let Some(value) = value else { return Vec::new() };
        let Some(items) = as_array(value) else {
            top.problem("runs", "`runs` must be a list of [[runs]] tables");
            return Vec::new();
        };
        let mut runs = Vec::new();
        for item in items {
            let line = top.line_of(item);
            let Some(table) = as_table(item) else {
                top.problem_at(line, "each entry of `runs` must be a table");
                continue;
            };
            let mut f = Fields::new(src, table, Some(line), RUN_KEYS);
            let key = f.string("key", true).unwrap_or_default();
            let starts_at = f.date("starts_at", true).unwrap_or_default();
            let ends_at = f.date("ends_at", false);
            let enrollment_opens_at = f.date("enrollment_opens_at", false);
            let enrollment_closes_at = f.date("enrollment_closes_at", false);
            let pacing = match f.string("pacing", true).as_deref() {
                Some("self") | None => Pacing::SelfPaced,
                Some("instructor") => Pacing::InstructorPaced,
                Some(other) => {
                    f.problem("pacing", format!("unknown pacing `{other}` (expected \"self\" or \"instructor\")"));
                    Pacing::SelfPaced
                }
            };
            let access_days =
                f.int("access_days", false, 1..=U32_MAX, MSG_ACCESS_DAYS).and_then(|n| u32::try_from(n).ok());
            let pass_threshold =
                f.int("pass_threshold", true, 0..=100, MSG_THRESHOLD).and_then(|n| u8::try_from(n).ok()).unwrap_or(0);
            let audit = f.boolean("audit").unwrap_or(true);
            let verified_price_cents =
                f.int("verified_price_cents", false, 0..=U32_MAX, MSG_PRICE).and_then(|n| u32::try_from(n).ok());
            let currency = f.string("currency", false).unwrap_or_else(|| DEFAULT_CURRENCY.to_string());
            let run = RunMeta {
                key,
                starts_at,
                ends_at,
                enrollment_opens_at,
                enrollment_closes_at,
                pacing,
                access_days,
                pass_threshold,
                audit,
                verified_price_cents,
                currency,
            };
            runs.push((run, f.finish(&mut self.out)));
        }
        runs
    }

    fn sections(
        &mut self,
        src: &Src<'_>,
        value: Option<&Value<'_>>,
        top: &mut Fields<'_, '_>,
        places: &mut Places,
    ) -> Vec<SectionPkg> {
        let Some(value) = value else { return Vec::new() };
        let Some(items) = as_array(value) else {
            top.problem("sections", "`sections` must be a list of [[sections]] tables");
            return Vec::new();
        };
        let mut sections = Vec::new();
        for item in items {
            let line = top.line_of(item);
            let Some(table) = as_table(item) else {
                top.problem_at(line, "each entry of `sections` must be a table");
                continue;
            };
            let mut f = Fields::new(src, table, Some(line), SECTION_KEYS);
            let title = f.string("title", true).unwrap_or_default();
            let mut units = Vec::new();
            let mut unit_places = Vec::new();
            if let Some(list) = f.raw("units") {
                match as_array(list) {
                    None => f.problem("units", "`units` must be a list of unit file paths"),
                    Some(paths) => {
                        for path in paths {
                            let line = f.line_of(path);
                            match path.get_ref().as_str() {
                                None => f.problem_at(line, "each unit must be a file path string"),
                                Some(path) => {
                                    if let Some((unit, up)) = self.unit_ref(path, line) {
                                        units.push(unit);
                                        unit_places.push(up);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            sections.push(SectionPkg { title, units });
            places.sections.push(SectionPlaces { spot: f.finish(&mut self.out), units: unit_places });
        }
        sections
    }

    /// A unit listed in course.toml at `line`.
    fn unit_ref(&mut self, path: &str, line: usize) -> Option<(UnitPkg, UnitPlaces)> {
        if let Err(message) = check_path(path) {
            self.out.push(problem("course.toml", Some(line), format!("unit path `{path}` {message}")));
            return None;
        }
        if !self.units_seen.insert(path.to_string()) {
            self.out.push(problem("course.toml", Some(line), format!("unit `{path}` is listed twice")));
            return None;
        }
        let tree = self.tree;
        let Some(bytes) = tree.get(path) else {
            self.out.push(problem("course.toml", Some(line), format!("unit file `{path}` is not in the package")));
            return None;
        };
        self.unit(path, bytes)
    }

    fn unit(&mut self, path: &str, bytes: &'t [u8]) -> Option<(UnitPkg, UnitPlaces)> {
        let text = self.text(path, bytes)?.replace("\r\n", "\n");
        let lines: Vec<&str> = text.split('\n').collect();
        let (title, spot, body_start) = if lines.first().is_some_and(|l| l.trim_end() == "+++") {
            let Some(close) = lines.iter().skip(1).position(|l| l.trim_end() == "+++").map(|i| i + 1) else {
                self.out.push(problem(path, Some(1), "the front matter opened on line 1 is never closed with `+++`"));
                return None;
            };
            let front = lines[1..close].join("\n");
            let src = Src { file: path, text: &front, first_line: 2 };
            match src.parse(&mut self.out) {
                Some(table) => {
                    let mut f = Fields::new(&src, &table, Some(1), &["title"]);
                    let title = f.string("title", true).unwrap_or_default();
                    (title, f.finish(&mut self.out), close + 1)
                }
                None => (String::new(), untitled(path), close + 1),
            }
        } else {
            self.out.push(problem(path, Some(1), "a unit file must start with `+++` front matter holding its title"));
            (String::new(), untitled(path), 0)
        };

        let mut unit = UnitPkg { title, blocks: Vec::new() };
        let mut places = UnitPlaces { spot, blocks: Vec::new() };
        let mut text_block = TextBuffer::default();
        for (index, line) in lines.iter().enumerate().skip(body_start) {
            let number = index + 1;
            if let Some(rest) = line.strip_prefix(PREFIX) {
                text_block.flush(path, &mut unit, &mut places);
                if let Some((block, bp)) = self.directive(path, number, rest) {
                    unit.blocks.push(block);
                    places.blocks.push(bp);
                }
            } else {
                text_block.push(number, line);
            }
        }
        text_block.flush(path, &mut unit, &mut places);
        Some((unit, places))
    }

    fn directive(&mut self, path: &str, line: usize, rest: &str) -> Option<(BlockPkg, BlockPlaces)> {
        let d = match directive::parse_directive(rest) {
            Ok(d) => d,
            Err(message) => {
                self.out.push(problem(path, Some(line), message));
                return None;
            }
        };
        let allowed: &[&str] = match d.name.as_str() {
            "video" => &["url", "file", "transcript"],
            "quiz" => &["file"],
            "resource" => &["file", "title"],
            "live" => &["title", "starts_at", "link"],
            other => {
                let names = directive::NAMES.join(", ");
                self.out.push(problem(
                    path,
                    Some(line),
                    format!("unknown directive `{other}` (expected one of: {names})"),
                ));
                return None;
            }
        };
        for (name, _) in &d.attrs {
            if !allowed.contains(&name.as_str()) {
                let expected = allowed.join(", ");
                let message = format!("`{}` has no attribute `{name}` (expected one of: {expected})", d.name);
                self.out.push(problem(path, Some(line), message));
            }
        }
        let mut spot = Spot::new(path, Some(line));
        let block = match d.name.as_str() {
            "video" => BlockPkg::Video {
                url: d.get("url").map(str::to_string),
                file: d.get("file").map(str::to_string),
                transcript: d.get("transcript").map(str::to_string),
            },
            "resource" => {
                let file = need(&mut self.out, &mut spot, &d, "file");
                BlockPkg::Resource { title: need(&mut self.out, &mut spot, &d, "title"), file }
            }
            "live" => {
                let title = need(&mut self.out, &mut spot, &d, "title");
                let raw = need(&mut self.out, &mut spot, &d, "starts_at");
                let starts_at = if spot.ok(&["starts_at"]) {
                    parse_date(&raw).unwrap_or_else(|| {
                        let message = format!("starts_at must be a date and time with a time zone, {DATE_EXAMPLE}");
                        self.out.push(problem(path, Some(line), message));
                        spot.broken.insert("starts_at");
                        Default::default()
                    })
                } else {
                    Default::default()
                };
                BlockPkg::Live { title, starts_at, link: need(&mut self.out, &mut spot, &d, "link") }
            }
            _ => {
                let file = need(&mut self.out, &mut spot, &d, "file");
                if !spot.ok(&["file"]) {
                    return None;
                }
                if let Err(message) = check_path(&file) {
                    self.out.push(problem(path, Some(line), format!("quiz path `{file}` {message}")));
                    return None;
                }
                if !self.tree.contains_key(&file) {
                    self.out.push(problem(path, Some(line), format!("quiz file `{file}` is not in the package")));
                    return None;
                }
                let (quiz, quiz_places) = self.quiz(&file)?;
                return Some((BlockPkg::Quiz(quiz), BlockPlaces { spot, quiz: Some(quiz_places) }));
            }
        };
        Some((block, BlockPlaces { spot, quiz: None }))
    }

    fn quiz(&mut self, path: &str) -> Option<(QuizPkg, QuizPlaces)> {
        if let Some(parsed) = self.quizzes.get(path) {
            return parsed.clone();
        }
        let parsed = self.parse_quiz(path);
        self.quizzes.insert(path.to_string(), parsed.clone());
        parsed
    }

    fn parse_quiz(&mut self, path: &str) -> Option<(QuizPkg, QuizPlaces)> {
        let tree = self.tree;
        let text = self.text(path, tree.get(path)?)?;
        self.quiz_text(path, text)
    }

    fn quiz_text(&mut self, path: &str, text: &str) -> Option<(QuizPkg, QuizPlaces)> {
        let src = Src { file: path, text, first_line: 1 };
        let doc = src.parse(&mut self.out)?;
        let mut f = Fields::new(&src, &doc, None, QUIZ_KEYS);
        let title = f.string("title", true).unwrap_or_default();
        let attempts = f.int("attempts", false, 1..=U32_MAX, MSG_ATTEMPTS).and_then(|n| u32::try_from(n).ok());
        let weight = f.float("weight", MSG_WEIGHT).unwrap_or(1.0);
        let show_answers = match f.string("show_answers", false).as_deref() {
            None | Some("after_last_attempt") => ShowAnswers::AfterLastAttempt,
            Some("after_due") => ShowAnswers::AfterDue,
            Some(other) => {
                let message =
                    format!("unknown show_answers `{other}` (expected \"after_last_attempt\" or \"after_due\")");
                f.problem("show_answers", message);
                ShowAnswers::AfterLastAttempt
            }
        };
        let due_at = f.date("due_at", false);
        let proctored = f.boolean("proctored").unwrap_or(false);
        let mut questions = Vec::new();
        let mut question_spots = Vec::new();
        if let Some(value) = f.raw("questions") {
            match as_array(value) {
                None => f.problem("questions", "`questions` must be a list of [[questions]] tables"),
                Some(items) => {
                    for item in items {
                        let line = f.line_of(item);
                        match as_table(item) {
                            None => f.problem_at(line, "each entry of `questions` must be a table"),
                            Some(table) => {
                                let (question, spot) = self.question(&src, table, line);
                                questions.push(question);
                                question_spots.push(spot);
                            }
                        }
                    }
                }
            }
        }
        let quiz =
            QuizPkg { title, attempts: attempts.unwrap_or(1), weight, show_answers, due_at, questions, proctored };
        Some((quiz, QuizPlaces { spot: f.finish(&mut self.out), questions: question_spots }))
    }

    fn question(&mut self, src: &Src<'_>, table: &toml::de::DeTable<'_>, line: usize) -> (QuestionPkg, Spot) {
        let mut f = Fields::new(src, table, Some(line), QUESTION_KEYS);
        let kind = match f.string("kind", true).as_deref() {
            Some("single") | None => QuestionKind::Single,
            Some("multiple") => QuestionKind::Multiple,
            Some("numeric") => QuestionKind::Numeric,
            Some("text") => QuestionKind::Text,
            Some(other) => {
                f.problem(
                    "kind",
                    format!("unknown question kind `{other}` (expected single, multiple, numeric or text)"),
                );
                QuestionKind::Single
            }
        };
        let question = QuestionPkg {
            kind,
            prompt: f.string("prompt", true).unwrap_or_default(),
            choices: f.strings("choices").unwrap_or_default(),
            correct: f.indices("correct").unwrap_or_default(),
            answer: f.float("answer", "answer must be a number"),
            tolerance: f.float("tolerance", "tolerance must be a number ≥ 0").unwrap_or(0.0),
            accepted: f.strings("accepted").unwrap_or_default(),
            feedback: f.string("feedback", false),
            choice_feedback: f.strings("choice_feedback").unwrap_or_default(),
        };
        (question, f.finish(&mut self.out))
    }
}

/// A unit whose title could not be read (already reported).
fn untitled(path: &str) -> Spot {
    let mut spot = Spot::new(path, Some(1));
    spot.broken.insert("title");
    spot
}

/// A required directive attribute; a missing one is reported and marked broken.
fn need(out: &mut Vec<PackageProblem>, spot: &mut Spot, d: &Directive, key: &'static str) -> String {
    match d.get(key) {
        Some(value) => value.to_string(),
        None => {
            out.push(spot.problem(key, format!("`{}` needs {key}=\"…\"", d.name)));
            spot.broken.insert(key);
            String::new()
        }
    }
}

/// Markdown lines collected between directives.
#[derive(Default)]
struct TextBuffer {
    text: String,
    first_line: Option<usize>,
}

impl TextBuffer {
    fn push(&mut self, number: usize, line: &str) {
        if self.first_line.is_none() && !line.trim().is_empty() {
            self.first_line = Some(number);
        }
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// Ends the current text block; blank-only text is dropped.
    fn flush(&mut self, path: &str, unit: &mut UnitPkg, places: &mut UnitPlaces) {
        let markdown = normalize_markdown(&self.text);
        if !markdown.is_empty() {
            unit.blocks.push(BlockPkg::Text { markdown });
            places.blocks.push(BlockPlaces { spot: Spot::new(path, self.first_line), quiz: None });
        }
        *self = TextBuffer::default();
    }
}

//! Course packages: reading a realistic package, exact round trips through
//! folders and zips, and a broken package reporting every problem with its
//! file and line.

use chrono::{DateTime, Utc};
use lyceum::learning::package::*;
use std::io::Write;
use std::path::Path;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-not-a-real-image";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The start of an MP4 file (an `ftyp` box): what a course video's bytes must show.
const MP4: &[u8] = &[0, 0, 0, 0x18, b'f', b't', b'y', b'p', b'i', b's', b'o', b'm', 0, 0, 2, 0, b'i', b's', b'o', b'm'];

fn put(root: &Path, path: &str, bytes: impl AsRef<[u8]>) {
    let target = root.join(path);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(target, bytes).unwrap();
}

fn shown(problems: &[PackageProblem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

fn read_ok(path: &Path) -> CoursePackage {
    read_dir(path).unwrap_or_else(|problems| panic!("{:#?}", shown(&problems)))
}

const COURSE_TOML: &str = r#"[course]
slug = "intro-python"
title = "Introduction to Python"
summary = "One sentence for the catalog card."
description = "files/about.md"
subjects = ["computer-science", "programming"]
language = "en"
effort = "3 hours a week"
image = "files/cover.png"

[[runs]]
key = "2026-t1"
starts_at = "2026-01-15T09:00:00Z"
ends_at = "2026-06-30T23:59:59Z"
enrollment_opens_at = "2025-12-01T00:00:00Z"
enrollment_closes_at = "2026-06-01T00:00:00+02:00"
pacing = "instructor"
access_days = 365
pass_threshold = 60
audit = true
verified_price_cents = 4_900
currency = "EUR"

[[runs]]
key = "self-paced"
starts_at = 2026-02-01T00:00:00Z   # a TOML datetime works too
pacing = "self"
pass_threshold = 50
audit = false

[[sections]]
title = "Getting started"
units = ["units/01-welcome.md"]

[[sections]]
title = "Basics"
units = ["units/02-variables.md"]
"#;

const WELCOME: &str = r#"+++
title = "Welcome"
+++

Text in **Markdown**.

    indented code stays as it is

::: video url="https://www.youtube.com/watch?v=abc123" transcript="files/variables.txt"
::: resource file="files/cheatsheet.pdf" title="Cheat \"sheet\""

More text.
"#;

const QUIZ: &str = r#"title = "Check your understanding"
attempts = 3
weight = 2
show_answers = "after_due"
due_at = "2026-03-01T00:00:00Z"
proctored = true

[[questions]]
kind = "single"
prompt = "Which keyword defines a function?"
choices = ["func", "def", "lambda"]
correct = [1]
feedback = "`def` starts a function definition."
choice_feedback = ["Not quite: `func` is Go's keyword.", "", "A `lambda` is an anonymous function."]

[[questions]]
kind = "multiple"
prompt = "Which are numbers?"
choices = ["1", "'1'", "1.0"]
correct = [0, 2]

[[questions]]
kind = "numeric"
prompt = "What is 7 / 2?"
answer = 3.5
tolerance = 0.01

[[questions]]
kind = "text"
prompt = """
Name the built-in
that prints."""
accepted = ["print", "print()"]
"#;

/// The example package of docs/COURSE_PACKAGE.md, with every block kind.
fn write_example(root: &Path) {
    put(root, "course.toml", COURSE_TOML);
    put(root, "units/01-welcome.md", WELCOME);
    // Windows line ends and trailing blank lines are normalised away.
    let variables = "+++\r\ntitle = \"Variables\"\r\n+++\r\n::: video file=\"files/intro.mp4\"\r\n\
                     ::: quiz file=\"quizzes/variables.toml\"\r\n\
                     ::: live title=\"Office hours\" starts_at=\"2026-02-01T17:00:00Z\" link=\"https://meet.example.org/room\"\r\n\
                     \r\nClosing words.  \r\n\r\n";
    put(root, "units/02-variables.md", variables);
    put(root, "quizzes/variables.toml", QUIZ);
    put(root, "files/about.md", "# About\n\nA friendly course.\n");
    put(root, "files/cover.png", PNG);
    put(root, "files/variables.txt", "Transcript text.\n");
    put(root, "files/cheatsheet.pdf", b"%PDF-1.4 fake");
    put(root, "files/intro.mp4", MP4);
    put(root, "files/extra/notes.txt", "kept: everything under files/ is part of the package");
    put(root, "drafts/unused.md", "not referenced, not under files/: left out");
    put(root, ".DS_Store", "ignored");
}

fn expected_quiz() -> QuizPkg {
    QuizPkg {
        title: "Check your understanding".into(),
        attempts: 3,
        weight: 2.0,
        show_answers: ShowAnswers::AfterDue,
        due_at: Some(at("2026-03-01T00:00:00Z")),
        proctored: true,
        questions: vec![
            QuestionPkg {
                kind: QuestionKind::Single,
                prompt: "Which keyword defines a function?".into(),
                choices: vec!["func".into(), "def".into(), "lambda".into()],
                correct: vec![1],
                feedback: Some("`def` starts a function definition.".into()),
                choice_feedback: vec![
                    "Not quite: `func` is Go's keyword.".into(),
                    String::new(),
                    "A `lambda` is an anonymous function.".into(),
                ],
                ..QuestionPkg::default()
            },
            QuestionPkg {
                kind: QuestionKind::Multiple,
                prompt: "Which are numbers?".into(),
                choices: vec!["1".into(), "'1'".into(), "1.0".into()],
                correct: vec![0, 2],
                ..QuestionPkg::default()
            },
            QuestionPkg {
                kind: QuestionKind::Numeric,
                prompt: "What is 7 / 2?".into(),
                answer: Some(3.5),
                tolerance: 0.01,
                ..QuestionPkg::default()
            },
            QuestionPkg {
                kind: QuestionKind::Text,
                prompt: "Name the built-in\nthat prints.".into(),
                accepted: vec!["print".into(), "print()".into()],
                ..QuestionPkg::default()
            },
        ],
    }
}

#[test]
fn reads_a_realistic_package() {
    let dir = tempfile::tempdir().unwrap();
    write_example(dir.path());
    let pkg = read_ok(dir.path());

    assert_eq!(
        pkg.course,
        CourseMeta {
            slug: "intro-python".into(),
            title: "Introduction to Python".into(),
            summary: "One sentence for the catalog card.".into(),
            description: Some("# About\n\nA friendly course.\n".into()),
            subjects: vec!["computer-science".into(), "programming".into()],
            language: "en".into(),
            effort: Some("3 hours a week".into()),
            image: Some("files/cover.png".into()),
        }
    );
    assert_eq!(
        pkg.runs,
        vec![
            RunMeta {
                key: "2026-t1".into(),
                starts_at: at("2026-01-15T09:00:00Z"),
                ends_at: Some(at("2026-06-30T23:59:59Z")),
                enrollment_opens_at: Some(at("2025-12-01T00:00:00Z")),
                enrollment_closes_at: Some(at("2026-05-31T22:00:00Z")),
                pacing: Pacing::InstructorPaced,
                access_days: Some(365),
                pass_threshold: 60,
                audit: true,
                verified_price_cents: Some(4900),
                currency: "EUR".into(),
            },
            RunMeta {
                key: "self-paced".into(),
                starts_at: at("2026-02-01T00:00:00Z"),
                ends_at: None,
                enrollment_opens_at: None,
                enrollment_closes_at: None,
                pacing: Pacing::SelfPaced,
                access_days: None,
                pass_threshold: 50,
                audit: false,
                verified_price_cents: None,
                currency: "USD".into(),
            },
        ]
    );
    assert_eq!(
        pkg.sections,
        vec![
            SectionPkg {
                title: "Getting started".into(),
                units: vec![UnitPkg {
                    title: "Welcome".into(),
                    blocks: vec![
                        BlockPkg::Text { markdown: "Text in **Markdown**.\n\n    indented code stays as it is".into() },
                        BlockPkg::Video {
                            url: Some("https://www.youtube.com/watch?v=abc123".into()),
                            file: None,
                            transcript: Some("files/variables.txt".into()),
                        },
                        BlockPkg::Resource { title: "Cheat \"sheet\"".into(), file: "files/cheatsheet.pdf".into() },
                        BlockPkg::Text { markdown: "More text.".into() },
                    ],
                }],
            },
            SectionPkg {
                title: "Basics".into(),
                units: vec![UnitPkg {
                    title: "Variables".into(),
                    blocks: vec![
                        BlockPkg::Video { url: None, file: Some("files/intro.mp4".into()), transcript: None },
                        BlockPkg::Quiz(expected_quiz()),
                        BlockPkg::Live {
                            title: "Office hours".into(),
                            starts_at: at("2026-02-01T17:00:00Z"),
                            link: "https://meet.example.org/room".into(),
                        },
                        BlockPkg::Text { markdown: "Closing words.".into() },
                    ],
                }],
            },
        ]
    );
    let files: Vec<&str> = pkg.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "files/about.md",
            "files/cheatsheet.pdf",
            "files/cover.png",
            "files/extra/notes.txt",
            "files/intro.mp4",
            "files/variables.txt"
        ]
    );
    assert_eq!(pkg.files["files/intro.mp4"], MP4);
    assert_eq!(validate(&pkg), vec![]);
}

#[test]
fn round_trips_through_zip_and_folder_exactly() {
    let source = tempfile::tempdir().unwrap();
    write_example(source.path());
    let first = read_ok(source.path());

    let zip = write_zip(&first).unwrap();
    let from_zip = read_zip(&zip).unwrap_or_else(|p| panic!("{:#?}", shown(&p)));
    assert_eq!(from_zip, first);

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("export");
    write_dir(&from_zip, &target).unwrap();
    assert_eq!(read_ok(&target), first);

    // The canonical layout: numbered across the course, description in files/about.md.
    for path in
        ["course.toml", "units/01-welcome.md", "units/02-variables.md", "quizzes/01-check-your-understanding.toml"]
    {
        assert!(target.join(path).is_file(), "{path}");
    }
    let unit = std::fs::read_to_string(target.join("units/02-variables.md")).unwrap();
    assert!(unit.contains("::: quiz file=\"quizzes/01-check-your-understanding.toml\"\n"), "{unit}");
    let course = std::fs::read_to_string(target.join("course.toml")).unwrap();
    assert!(course.contains("description = \"files/about.md\""), "{course}");

    // Writing is deterministic: the same package gives the same bytes.
    assert_eq!(write_zip(&read_ok(&target)).unwrap(), zip);
    // An export never mixes with what is already in a folder.
    assert_eq!(write_dir(&first, &target).unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
}

#[test]
fn packages_built_in_memory_are_normalised_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    write_example(dir.path());
    let mut pkg = read_ok(dir.path());
    // Text with stray blank lines and CRLF reads back in its canonical form.
    pkg.sections[0].units[0].blocks[0] = BlockPkg::Text { markdown: "\n\r\nHello\r\nthere \n\n".into() };
    // A description held by no file goes to files/about.md (taken here, so about-2).
    pkg.course.description = Some("New about text.".into());
    let back = read_zip(&write_zip(&pkg).unwrap()).unwrap_or_else(|p| panic!("{:#?}", shown(&p)));
    assert_eq!(back.sections[0].units[0].blocks[0], BlockPkg::Text { markdown: "Hello\nthere".into() });
    assert_eq!(back.course.description.as_deref(), Some("New about text."));
    assert_eq!(back.files["files/about-2.md"], b"New about text.");

    pkg.sections[1].units[0].blocks[0] = BlockPkg::Video {
        url: Some("http://youtu.be/x".into()),
        file: None,
        transcript: Some("files/gone.txt".into()),
    };
    if let BlockPkg::Quiz(quiz) = &mut pkg.sections[1].units[0].blocks[1] {
        quiz.questions[0].correct = vec![0, 1];
    }
    pkg.runs[1].key = "2026-t1".into();
    pkg.files.insert("../escape.txt".into(), vec![]);
    assert_eq!(
        shown(&validate(&pkg)),
        [
            "../escape.txt: path must not contain `..`",
            "course.toml: run 2: run key `2026-t1` is used by another run",
            "quizzes/01-check-your-understanding.toml: question 1: single-choice question needs exactly one correct answer",
            "units/02-variables.md: block 1: video url `http://youtu.be/x` must be https on an allowed host \
             (www.youtube.com, youtube.com, youtu.be, www.youtube-nocookie.com, vimeo.com, player.vimeo.com)",
            "units/02-variables.md: block 1: file `files/gone.txt` is not in the package",
        ]
    );
    // Writing refuses paths that would escape the target.
    assert_eq!(write_zip(&pkg).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_broken_package_reports_every_problem_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(
        root,
        "course.toml",
        r#"[course]
slug = "broken-course"
title = "Broken"
summary = "Has problems."
language = "en"

[[runs]]
key = "r1"
starts_at = "2026-01-15T09:00:00Z"
pacing = "weekly"
pass_threshold = 150

[[sections]]
title = "Only section"
units = [
  "units/01-a.md",
  "units/02-missing.md",
  "units/01-a.md",
]
"#,
    );
    put(
        root,
        "units/01-a.md",
        r#"+++
title = "A"
+++
Intro text.
::: video url="https://evil.example.com/v.mp4"
::: quiz file="quizzes/syntax.toml"
::: quiz file="quizzes/rules.toml"
::: poll question="Why?"
::: resource file="../secret.txt" title="Secret"
::: live title="Office hours" starts_at="tomorrow" link="https://meet.example.org/x"
::: video file="files/v.mp4" url="https://youtu.be/x" title="x"
::: resource file="files/a.pdf" title=Unquoted
"#,
    );
    put(
        root,
        "quizzes/syntax.toml",
        r#"title = "Syntax"

[[questions]]
kind = "single"
prompt = "Missing quote?
choices = ["a", "b"]
"#,
    );
    put(
        root,
        "quizzes/rules.toml",
        r#"title = "Rules"
show_answers = "after_due"
attempts = 0

[[questions]]
kind = "single"
prompt = "Pick one"
choices = ["a", "b", "c"]
correct = [0, 2]

[[questions]]
kind = "essay"
prompt = "Write"

[[questions]]
kind = "numeric"
prompt = "How many?"
colour = "red"
"#,
    );
    put(root, "files/v.mp4", "video");

    let problems = shown(&read_dir(root).unwrap_err());
    let hosts = "www.youtube.com, youtube.com, youtu.be, www.youtube-nocookie.com, vimeo.com, player.vimeo.com";
    let expected = [
        "course.toml:10: unknown pacing `weekly` (expected \"self\" or \"instructor\")".to_string(),
        "course.toml:11: pass_threshold must be a whole percentage from 0 to 100".into(),
        "course.toml:17: unit file `units/02-missing.md` is not in the package".into(),
        "course.toml:18: unit `units/01-a.md` is listed twice".into(),
        "quizzes/rules.toml:2: show_answers = \"after_due\" needs due_at".into(),
        "quizzes/rules.toml:3: attempts must be a whole number of at least 1".into(),
        "quizzes/rules.toml:9: single-choice question needs exactly one correct answer".into(),
        "quizzes/rules.toml:12: unknown question kind `essay` (expected single, multiple, numeric or text)".into(),
        "quizzes/rules.toml:15: numeric question needs an answer".into(),
        "quizzes/rules.toml:18: unknown key `colour` (expected one of: kind, prompt, choices, correct, answer, \
         tolerance, accepted, feedback, choice_feedback)"
            .into(),
        "quizzes/syntax.toml:5: invalid TOML: …".into(),
        format!(
            "units/01-a.md:5: video url `https://evil.example.com/v.mp4` must be https on an allowed host ({hosts})"
        ),
        "units/01-a.md:8: unknown directive `poll` (expected one of: video, quiz, resource, live)".into(),
        "units/01-a.md:9: path `../secret.txt` must not contain `..`".into(),
        "units/01-a.md:10: starts_at must be a date and time with a time zone, like \"2026-01-15T09:00:00Z\"".into(),
        "units/01-a.md:11: `video` has no attribute `title` (expected one of: url, file, transcript)".into(),
        "units/01-a.md:11: a video has either url or file, not both".into(),
        "units/01-a.md:11: file `files/v.mp4` is not a file type a course can offer here (it is text/plain; charset=utf-8). Accepted: MP4, WebM or Ogg video.".into(),
        "units/01-a.md:12: the value of `title` must be in double quotes".into(),
    ];
    // The TOML parser's wording is its own; the file and line are ours.
    let problems: Vec<String> = problems
        .into_iter()
        .map(|p| {
            if p.starts_with("quizzes/syntax.toml:5: invalid TOML: ") {
                "quizzes/syntax.toml:5: invalid TOML: …".into()
            } else {
                p
            }
        })
        .collect();
    assert_eq!(problems, expected);
}

#[test]
fn course_toml_problems_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    put(
        dir.path(),
        "course.toml",
        r#"[course]
slug = "No Caps"
summary = 42
language = "english"
image = "files/cover.svg"
tags = ["x"]

[[runs]]
key = "a"
starts_at = "15 January 2026"
pacing = "self"
pass_threshold = 60
currency = "EUR"

[[runs]]
key = "a"
starts_at = "2026-01-15T09:00:00Z"
ends_at = "2026-01-01T00:00:00Z"
pass_threshold = -1
"#,
    );
    put(dir.path(), "files/cover.svg", "<svg/>");
    assert_eq!(
        shown(&read_dir(dir.path()).unwrap_err()),
        [
            "course.toml:1: `title` is required",
            "course.toml:2: slug must be 3–60 characters of a-z, 0-9 and -",
            "course.toml:3: `summary` must be a string",
            "course.toml:4: language must be a 2–3 letter code like \"en\"",
            "course.toml:5: image `files/cover.svg` must be a PNG, JPEG, GIF or WebP image",
            "course.toml:6: unknown key `tags` (expected one of: slug, title, summary, description, subjects, \
             language, effort, image)",
            "course.toml:10: `starts_at` must be a date and time with a time zone, like \"2026-01-15T09:00:00Z\"",
            "course.toml:13: currency applies only with verified_price_cents",
            "course.toml:15: `pacing` is required",
            "course.toml:16: run key `a` is used by another run",
            "course.toml:18: ends_at must be after starts_at",
            "course.toml:19: pass_threshold must be a whole percentage from 0 to 100",
        ]
    );
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn zips_may_hold_one_top_folder_but_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    write_example(dir.path());
    let pkg = read_ok(dir.path());
    // Re-pack the canonical export under `intro-python/`, as "compress folder" does.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(write_zip(&pkg).unwrap())).unwrap();
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        entries.push((format!("intro-python/{}", file.name().unwrap()), bytes));
    }
    entries.push(("__MACOSX/intro-python/._course.toml".into(), b"junk".to_vec()));
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    assert_eq!(read_zip(&zip_of(&refs)).unwrap_or_else(|p| panic!("{:#?}", shown(&p))), pkg);

    let evil = zip_of(&[("course.toml", b"[course]"), ("../../etc/cron.d/x", b"boom"), ("/abs", b"x")]);
    assert_eq!(
        shown(&read_zip(&evil).unwrap_err()),
        [
            "../../etc/cron.d/x: path must not contain `..`",
            "/abs: path must be relative to the package root (not start with `/`)"
        ]
    );
    assert_eq!(shown(&read_zip(b"not a zip").unwrap_err())[0].split(':').next(), Some("(package)"));
}

#[test]
fn zips_with_too_many_entries_are_refused() {
    let names: Vec<String> = (0..=MAX_PACKAGE_ENTRIES).map(|i| format!("files/{i}.txt")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    assert_eq!(
        shown(&read_zip(&zip_of(&entries)).unwrap_err()),
        [format!("(package): the package has more than {MAX_PACKAGE_ENTRIES} entries")]
    );
}

#[test]
fn a_quiz_reads_and_writes_on_its_own() {
    let quiz = parse_quiz("quiz.toml", QUIZ).unwrap();
    assert_eq!(quiz, expected_quiz());
    assert_eq!(parse_quiz("quiz.toml", &quiz_to_toml(&quiz)).unwrap(), quiz);
    assert_eq!(
        shown(&parse_quiz("quiz.toml", "title = \"T\"\n[[questions]]\nkind = \"text\"\nprompt = \"?\"\n").unwrap_err()),
        ["quiz.toml:2: text question needs at least one accepted answer"]
    );
}

#[test]
fn feedback_on_choices_is_one_per_choice_and_only_on_choice_questions() {
    let written = quiz_to_toml(&expected_quiz());
    assert!(written.contains(r#"choice_feedback = ["#), "{written}");
    let quiz = |question: &str| format!("title = \"T\"\n[[questions]]\n{question}");
    let problems = |question: &str| shown(&parse_quiz("quiz.toml", &quiz(question)).unwrap_err());
    let choices = "prompt = \"?\"\nchoices = [\"a\", \"b\"]\ncorrect = [0]\n";
    assert_eq!(
        problems(&format!("kind = \"single\"\n{choices}choice_feedback = [\"Right.\"]\n")),
        ["quiz.toml:7: choice_feedback has 1 entries for 2 choices: give one per choice, \"\" for none"]
    );
    assert_eq!(
        problems("kind = \"numeric\"\nprompt = \"?\"\nanswer = 1\nchoice_feedback = [\"\"]\n"),
        ["quiz.toml:6: `choice_feedback` does not apply to a numeric question"]
    );
    assert_eq!(
        problems(&format!("kind = \"multiple\"\n{choices}choice_feedback = \"Right.\"\n")),
        ["quiz.toml:7: `choice_feedback` must be a list of strings"]
    );
    let ok =
        parse_quiz("quiz.toml", &quiz(&format!("kind = \"single\"\n{choices}choice_feedback = [\"\", \"No: a.\"]\n")))
            .unwrap();
    assert_eq!(ok.questions[0].choice_feedback, ["", "No: a."]);
}

#[test]
fn video_hosts_are_an_allow_list() {
    assert!(allowed_video_url("https://www.youtube.com/watch?v=abc123"));
    assert!(allowed_video_url("https://player.vimeo.com/video/1"));
    assert!(!allowed_video_url("http://youtu.be/x"));
    assert!(!allowed_video_url("https://youtube.com.evil.org/x"));
    assert!(!allowed_video_url("https://user@youtu.be/x"));
    assert!(!allowed_video_url("https://youtu.be:8443/x"));
    assert!(!allowed_video_url("https://you\ntu.be/x"));
    assert!(!allowed_video_url("javascript:alert(1)"));
}

/// The demo courses are imported at start-up through this reader; they must
/// read cleanly and survive a round trip.
#[test]
fn demo_packages_read_and_round_trip() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/courses");
    let mut seen = 0;
    for course in std::fs::read_dir(&demo).unwrap() {
        let course = course.unwrap().path();
        let copy = tempfile::tempdir().unwrap();
        copy_without_member(&course, copy.path());
        let pkg = read_ok(copy.path());
        assert_eq!(validate(&pkg), vec![], "{}", course.display());
        assert_eq!(read_zip(&write_zip(&pkg).unwrap()).unwrap(), pkg, "{}", course.display());
        seen += 1;
    }
    assert!(seen > 0);
}

/// `member = "…"` is the demo loader's own key, removed before import.
fn copy_without_member(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_without_member(&entry.path(), &target);
        } else if entry.file_name() == "course.toml" {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let kept: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("member =")).collect();
            std::fs::write(target, kept.join("\n") + "\n").unwrap();
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `zip_of(entries)` with every `from` name rewritten to `to` (of the same
/// length): the zip crate writes no two entries of one name, a hand-made
/// or damaged zip can.
fn renamed(zip: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = zip;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    out
}

#[test]
fn a_zip_with_two_entries_of_one_name_is_refused_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    write_example(dir.path());
    let pkg = read_ok(dir.path());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(write_zip(&pkg).unwrap())).unwrap();
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        entries.push((file.name().unwrap().to_string(), bytes));
    }
    entries.push(("files/notes-a.txt".into(), b"the first".to_vec()));
    entries.push(("files/notes-b.txt".into(), b"the second".to_vec()));
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let twice = renamed(zip_of(&refs), "files/notes-b.txt", "files/notes-a.txt");
    assert_eq!(
        shown(&read_zip(&twice).unwrap_err()),
        ["files/notes-a.txt: appears twice in the zip: keep one entry of this name and zip the package again"]
    );
}

#[test]
fn a_zip_over_the_package_limit_is_refused_naming_the_limit() {
    // The bound the web upload and `lyceum course import` share.
    let zeros = vec![0u8; MAX_PACKAGE_BYTES as usize + 1];
    assert_eq!(shown(&read_zip(&zeros).unwrap_err()), ["(package): the zip file is larger than 200 MB"]);
}

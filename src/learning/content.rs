//! Course content as stored: blocks keep their kind-specific data as JSON in
//! `blocks.data`. Rendering Markdown (sanitised) and grading quizzes live here
//! too, so the learner view, the preview and the package round trip agree.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobRef {
    pub key: String,
    pub filename: String,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockData {
    Text { markdown: String },
    Video { url: Option<String>, file: Option<BlobRef>, transcript: Option<String> },
    Quiz(Quiz),
    Resource { title: String, file: BlobRef },
    Live { title: String, starts_at: NaiveDateTime, link: String },
}

impl BlockData {
    pub fn kind(&self) -> &'static str {
        match self {
            BlockData::Text { .. } => "text",
            BlockData::Video { .. } => "video",
            BlockData::Quiz(_) => "quiz",
            BlockData::Resource { .. } => "resource",
            BlockData::Live { .. } => "live",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    Single,
    Multiple,
    Numeric,
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub kind: QuestionKind,
    pub prompt: String,
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(default)]
    pub correct: Vec<usize>,
    pub answer: Option<f64>,
    #[serde(default)]
    pub tolerance: f64,
    #[serde(default)]
    pub accepted: Vec<String>,
    pub feedback: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShowAnswers {
    AfterLastAttempt,
    AfterDue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quiz {
    pub title: String,
    pub attempts: u32,
    pub weight: f64,
    pub show_answers: ShowAnswers,
    pub due_at: Option<NaiveDateTime>,
    pub questions: Vec<Question>,
    /// An exam taken under a third-party proctoring session (CRT-7).
    #[serde(default)]
    pub proctored: bool,
}

/// A learner's answers: question index → the values sent (several for multiple choice).
pub type Answers = BTreeMap<usize, Vec<String>>;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionResult {
    pub correct: bool,
}

/// Why an answer could not be graded: the form is shown again with this next
/// to the question, and no attempt is used up.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerError {
    pub question: usize,
    pub message: String,
}

impl Quiz {
    /// Checks the answers' types before grading (a numeric answer must be a
    /// number, a choice must be one of the choices).
    pub fn check(&self, answers: &Answers) -> Vec<AnswerError> {
        let mut errors = Vec::new();
        for (i, q) in self.questions.iter().enumerate() {
            let given = answers.get(&i).map(Vec::as_slice).unwrap_or(&[]);
            let err = |m: &str| AnswerError { question: i, message: m.to_string() };
            match q.kind {
                QuestionKind::Single | QuestionKind::Multiple => {
                    if given.iter().any(|v| v.parse::<usize>().map(|c| c >= q.choices.len()).unwrap_or(true)) {
                        errors.push(err("Please choose one of the options shown."));
                    } else if q.kind == QuestionKind::Single && given.len() > 1 {
                        errors.push(err("Please choose only one option."));
                    }
                }
                QuestionKind::Numeric => {
                    if let Some(v) = given.first().filter(|v| !v.trim().is_empty())
                        && parse_number(v).is_none()
                    {
                        errors.push(err("Please enter a number, like 3.5."));
                    }
                }
                QuestionKind::Text => {
                    if given.first().is_some_and(|v| v.chars().count() > 500) {
                        errors.push(err("Please keep your answer under 500 characters."));
                    }
                }
            }
        }
        errors
    }

    /// Score in 0..=1 and per-question results. Unanswered questions are wrong.
    pub fn grade(&self, answers: &Answers) -> (f64, Vec<QuestionResult>) {
        let results: Vec<QuestionResult> = self
            .questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let given = answers.get(&i).map(Vec::as_slice).unwrap_or(&[]);
                let correct = match q.kind {
                    QuestionKind::Single | QuestionKind::Multiple => {
                        let mut chosen: Vec<usize> = given.iter().filter_map(|v| v.parse().ok()).collect();
                        chosen.sort_unstable();
                        chosen.dedup();
                        let mut want = q.correct.clone();
                        want.sort_unstable();
                        chosen == want
                    }
                    QuestionKind::Numeric => match (given.first().and_then(|v| parse_number(v)), q.answer) {
                        (Some(v), Some(a)) => (v - a).abs() <= q.tolerance + 1e-9,
                        _ => false,
                    },
                    QuestionKind::Text => given.first().is_some_and(|v| {
                        let v = v.trim().to_lowercase();
                        q.accepted.iter().any(|a| a.trim().to_lowercase() == v)
                    }),
                };
                QuestionResult { correct }
            })
            .collect();
        let total = self.questions.len().max(1) as f64;
        let right = results.iter().filter(|r| r.correct).count() as f64;
        (right / total, results)
    }
}

fn parse_number(s: &str) -> Option<f64> {
    let v: f64 = s.trim().replace(',', ".").parse().ok()?;
    v.is_finite().then_some(v)
}

/// Rendered HTML by the SHA-256 of its Markdown: content-addressed, so an
/// edit is simply a new entry and nothing needs invalidating. Rendering and
/// sanitising is the costliest part of a unit page; learners view the same
/// text again and again.
static RENDERED: std::sync::LazyLock<dashmap::DashMap<[u8; 32], std::sync::Arc<str>>> =
    std::sync::LazyLock::new(dashmap::DashMap::new);
const RENDERED_MAX: usize = 20_000;

/// Markdown to HTML with anything unsafe removed (scripts, event handlers,
/// `javascript:` links); what authors write is shown to every learner.
pub fn render_markdown(markdown: &str) -> String {
    use sha2::Digest;
    let key: [u8; 32] = sha2::Sha256::digest(markdown.as_bytes()).into();
    if let Some(html) = RENDERED.get(&key) {
        return html.to_string();
    }
    let html = render_markdown_uncached(markdown);
    if RENDERED.len() >= RENDERED_MAX {
        RENDERED.clear();
    }
    RENDERED.insert(key, std::sync::Arc::from(html.as_str()));
    html
}

fn render_markdown_uncached(markdown: &str) -> String {
    use pulldown_cmark::{Options, Parser, html};
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut out = String::new();
    html::push_html(&mut out, Parser::new_ext(markdown, options));
    ammonia::Builder::default().link_rel(Some("noopener noreferrer nofollow")).clean(&out).to_string()
}

/// `https://www.youtube.com/watch?v=ID` and friends → an embeddable URL.
pub fn embed_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    match host {
        "www.youtube.com" | "youtube.com" | "www.youtube-nocookie.com" => {
            let id = parsed
                .query_pairs()
                .find(|(k, _)| k == "v")
                .map(|(_, v)| v.into_owned())
                .or_else(|| parsed.path().strip_prefix("/embed/").map(str::to_string))?;
            Some(format!("https://www.youtube-nocookie.com/embed/{}", id_only(&id)?))
        }
        "youtu.be" => {
            Some(format!("https://www.youtube-nocookie.com/embed/{}", id_only(parsed.path().trim_start_matches('/'))?))
        }
        "vimeo.com" | "player.vimeo.com" => {
            let id = parsed.path().rsplit('/').find(|s| !s.is_empty())?;
            Some(format!("https://player.vimeo.com/video/{}", id_only(id)?))
        }
        _ => None,
    }
}

fn id_only(id: &str) -> Option<&str> {
    (!id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiz() -> Quiz {
        let q = |kind, correct: Vec<usize>| Question {
            kind,
            prompt: "?".into(),
            choices: vec!["a".into(), "b".into(), "c".into()],
            correct,
            answer: Some(3.5),
            tolerance: 0.01,
            accepted: vec!["Print".into()],
            feedback: None,
        };
        Quiz {
            title: "Q".into(),
            attempts: 2,
            weight: 1.0,
            show_answers: ShowAnswers::AfterLastAttempt,
            due_at: None,
            proctored: false,
            questions: vec![
                q(QuestionKind::Single, vec![1]),
                q(QuestionKind::Multiple, vec![0, 2]),
                q(QuestionKind::Numeric, vec![]),
                q(QuestionKind::Text, vec![]),
            ],
        }
    }

    #[test]
    fn grades_each_kind() {
        let answers: Answers = [
            (0, vec!["1".into()]),
            (1, vec!["2".into(), "0".into()]),
            (2, vec!["3,505".into()]),
            (3, vec![" print ".into()]),
        ]
        .into();
        assert_eq!(quiz().grade(&answers).0, 1.0);
        let half: Answers = [(0, vec!["1".into()]), (2, vec!["3.6".into()]), (3, vec!["print".into()])].into();
        assert_eq!(quiz().grade(&half).0, 0.5);
    }

    #[test]
    fn wrong_types_are_reported_not_graded() {
        let bad: Answers = [(0, vec!["7".into()]), (2, vec!["three".into()])].into();
        let errors = quiz().check(&bad);
        assert_eq!(errors.iter().map(|e| e.question).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn markdown_is_sanitised() {
        let html = render_markdown("Hi <script>alert(1)</script> [x](javascript:alert(1)) **b**");
        assert!(!html.contains("<script") && !html.contains("javascript:") && html.contains("<strong>b</strong>"));
    }

    #[test]
    fn videos_embed_only_from_known_hosts() {
        assert_eq!(
            embed_url("https://www.youtube.com/watch?v=aqz-KE-bpKQ").as_deref(),
            Some("https://www.youtube-nocookie.com/embed/aqz-KE-bpKQ")
        );
        assert_eq!(embed_url("https://vimeo.com/12345").as_deref(), Some("https://player.vimeo.com/video/12345"));
        assert!(embed_url("https://evil.example/watch?v=x").is_none());
    }
}

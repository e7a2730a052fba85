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
    /// Single / multiple: what a learner who picked each choice reads
    /// ("Not quite: a mutex is not a channel"), by the choice's index, `""`
    /// where the choice has none; empty when no choice has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choice_feedback: Vec<String>,
}

impl Question {
    /// The author's feedback on choice `index`, when it has some.
    pub fn feedback_on(&self, index: usize) -> Option<&str> {
        self.choice_feedback.get(index).map(|f| f.trim()).filter(|f| !f.is_empty())
    }
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

/// Largest author text (a text block, a description, a prompt): far above
/// any real lesson, far below what would tie up a worker rendering it.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Deepest nesting of Markdown containers and HTML elements together. Real
/// courses stay within a dozen; the HTML parser behind the sanitiser slows
/// down with every level (100 000 nested `<div>`s took half a minute).
pub const MAX_NESTING: usize = 64;

/// Why an author text is refused at save (and not rendered if stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextLimit {
    #[error("The text is longer than 256 KB (262 144 bytes); please split it over several blocks or units.")]
    TooLong,
    #[error("The text is nested too deeply (more than 64 levels of HTML elements, lists or quotes).")]
    TooDeep,
}

/// Checks an author text against [`MAX_TEXT_BYTES`] and [`MAX_NESTING`]; in
/// linear time, so it can run before every render.
pub fn check_text(markdown: &str) -> Result<(), TextLimit> {
    use pulldown_cmark::{Event, Parser};
    if markdown.len() > MAX_TEXT_BYTES {
        return Err(TextLimit::TooLong);
    }
    let mut markdown_depth = 0usize;
    let mut html = HtmlDepth::default();
    for event in Parser::new_ext(markdown, markdown_options()) {
        match event {
            Event::Start(_) => markdown_depth += 1,
            Event::End(_) => markdown_depth = markdown_depth.saturating_sub(1),
            Event::Html(text) | Event::InlineHtml(text) => html.feed(&text),
            _ => {}
        }
        if markdown_depth + html.open.len() > MAX_NESTING {
            return Err(TextLimit::TooDeep);
        }
    }
    Ok(())
}

/// The open HTML elements of the raw HTML in a text, as far as nesting goes:
/// void elements and those whose end tag may be left out (`p`, `li`, `td`…,
/// which the next sibling closes) do not nest, so they are not counted.
#[derive(Default)]
struct HtmlDepth {
    open: Vec<String>,
}

impl HtmlDepth {
    const NOT_NESTING: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
        "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot", "colgroup",
        "caption", "rb", "rt", "rp", "html", "head", "body",
    ];

    fn feed(&mut self, html: &str) {
        let mut rest = html;
        while let Some(at) = rest.find('<') {
            rest = &rest[at + 1..];
            if let Some(comment) = rest.strip_prefix("!--") {
                rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
                continue;
            }
            let closing = rest.starts_with('/');
            let name_from = usize::from(closing);
            let name: String = rest[name_from..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if name.is_empty() || !rest[name_from..].starts_with(|c: char| c.is_ascii_alphabetic()) {
                continue;
            }
            let tag_end = rest.find('>');
            let self_closing = tag_end.is_some_and(|end| rest[..end].ends_with('/'));
            if closing {
                if let Some(at) = self.open.iter().rposition(|open| *open == name) {
                    self.open.truncate(at);
                }
            } else if !self_closing && !Self::NOT_NESTING.contains(&name.as_str()) {
                self.open.push(name);
            }
            if self.open.len() > MAX_NESTING {
                return;
            }
        }
    }
}

pub fn markdown_options() -> pulldown_cmark::Options {
    use pulldown_cmark::Options;
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options
}

impl BlockData {
    /// Every author text of the block within [`check_text`]'s limits.
    pub fn check_limits(&self) -> Result<(), TextLimit> {
        match self {
            BlockData::Text { markdown } => check_text(markdown),
            BlockData::Video { transcript, .. } => transcript.as_deref().map_or(Ok(()), check_text),
            BlockData::Quiz(quiz) => quiz.questions.iter().try_for_each(|q| {
                check_text(&q.prompt)?;
                q.feedback.as_deref().map_or(Ok(()), check_text)
            }),
            BlockData::Resource { .. } | BlockData::Live { .. } => Ok(()),
        }
    }
}

/// Rendered HTML by the SHA-256 of its Markdown: content-addressed, so an
/// edit is simply a new entry and nothing needs invalidating. Rendering and
/// sanitising is the costliest part of a unit page; learners view the same
/// text again and again.
static RENDERED: std::sync::LazyLock<dashmap::DashMap<[u8; 32], std::sync::Arc<str>>> =
    std::sync::LazyLock::new(dashmap::DashMap::new);
const RENDERED_MAX: usize = 20_000;

/// Markdown to HTML with anything unsafe removed (scripts, event handlers,
/// `javascript:` links); what authors write is shown to every learner. Text
/// over the limits (stored before they were enforced) becomes a short notice
/// instead of tying up the server.
pub fn render_markdown(markdown: &str) -> String {
    use sha2::Digest;
    let key: [u8; 32] = sha2::Sha256::digest(markdown.as_bytes()).into();
    if let Some(html) = RENDERED.get(&key) {
        return html.to_string();
    }
    let html = match check_text(markdown) {
        Ok(()) => render_markdown_uncached(markdown),
        Err(limit) => format!("<p class=\"notice\" role=\"note\">This text is not shown. {limit}</p>"),
    };
    if RENDERED.len() >= RENDERED_MAX {
        RENDERED.clear();
    }
    RENDERED.insert(key, std::sync::Arc::from(html.as_str()));
    html
}

fn render_markdown_uncached(markdown: &str) -> String {
    use pulldown_cmark::{Parser, html};
    let mut out = String::new();
    html::push_html(&mut out, Parser::new_ext(markdown, markdown_options()));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        // A code block wider than the screen scrolls sideways: with the
        // keyboard too (WCAG 2.1.1), so it takes the focus.
        .set_tag_attribute_value("pre", "tabindex", "0")
        .clean(&out)
        .to_string()
}

/// A short author text that sits inside a line (an answer choice, a
/// learner's chosen answer): its inline Markdown (`code`, *emphasis*,
/// **strong**, ~~strike~~) as HTML, every other element dropped with its
/// text kept, so it fits in a `<label>`.
pub fn render_inline_markdown(markdown: &str) -> String {
    use pulldown_cmark::{Parser, html};
    if check_text(markdown).is_err() {
        return ammonia::clean_text(markdown);
    }
    let mut out = String::new();
    html::push_html(&mut out, Parser::new_ext(markdown, markdown_options()));
    let html =
        ammonia::Builder::empty().add_tags(["code", "em", "strong", "del", "sub", "sup"]).clean(&out).to_string();
    html.trim().to_string()
}

/// Markdown as sanitised HTML for a page read away from the site (an email):
/// every relative link and image resolved against `base`, so `/courses/x`
/// becomes `https://site/courses/x`.
pub fn render_markdown_absolute(markdown: &str, base: &url::Url) -> String {
    if let Err(limit) = check_text(markdown) {
        return format!("<p class=\"notice\" role=\"note\">This text is not shown. {limit}</p>");
    }
    use pulldown_cmark::{Parser, html};
    let mut out = String::new();
    html::push_html(&mut out, Parser::new_ext(markdown, markdown_options()));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_relative(ammonia::UrlRelative::Custom(Box::new(AbsoluteOn(base.clone()))))
        .clean(&out)
        .to_string()
}

/// Resolves a relative URL against a base; a fragment alone (`#top`) stays.
struct AbsoluteOn(url::Url);

impl AbsoluteOn {
    fn resolve(&self, dest: &str) -> Option<String> {
        let dest = dest.trim();
        if dest.is_empty() || dest.starts_with('#') {
            return None;
        }
        match url::Url::parse(dest) {
            Err(url::ParseError::RelativeUrlWithoutBase) => self.0.join(dest).ok().map(String::from),
            _ => None,
        }
    }
}

impl ammonia::UrlRelativeEvaluate<'static> for AbsoluteOn {
    fn evaluate<'a>(&self, url: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        Some(self.resolve(url).map_or(std::borrow::Cow::Borrowed(url), std::borrow::Cow::Owned))
    }
}

/// The Markdown source with every relative link destination resolved
/// against `base` (inline links and images, reference definitions, `href` and
/// `src` of inline HTML): the plain-text twin of [`render_markdown_absolute`].
/// A destination written with escapes that differ from its value is left.
pub fn markdown_with_absolute_links(markdown: &str, base: &url::Url) -> String {
    use pulldown_cmark::{Event, Parser, Tag};
    let on = AbsoluteOn(base.clone());
    let absolute = |dest: &str| on.resolve(dest);
    // (where in the source, how long, the absolute form)
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let last_in = |range: std::ops::Range<usize>, dest: &str, abs: String| {
        let at = markdown.get(range.clone())?.rfind(dest)?;
        Some((range.start + at, dest.len(), abs))
    };
    let parser = Parser::new_ext(markdown, markdown_options());
    for (_, def) in parser.reference_definitions().iter() {
        if let Some(abs) = absolute(&def.dest) {
            edits.extend(last_in(def.span.clone(), &def.dest, abs));
        }
    }
    let attr = regex::Regex::new(r#"(?i)\b(?:href|src)\s*=\s*["']([^"']*)["']"#).expect("a valid pattern");
    for (event, range) in parser.into_offset_iter() {
        match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                if let Some(abs) = absolute(&dest_url) {
                    edits.extend(last_in(range, &dest_url, abs));
                }
            }
            Event::Html(_) | Event::InlineHtml(_) => {
                let Some(text) = markdown.get(range.clone()) else { continue };
                for c in attr.captures_iter(text) {
                    let value = c.get(1).expect("the pattern has a group");
                    if let Some(abs) = absolute(value.as_str()) {
                        edits.push((range.start + value.start(), value.len(), abs));
                    }
                }
            }
            _ => {}
        }
    }
    // From the end, so earlier offsets hold; never two edits in one place.
    edits.sort_by_key(|(at, _, _)| std::cmp::Reverse(*at));
    let mut out = markdown.to_string();
    let mut before = usize::MAX;
    for (at, len, abs) in edits {
        if at + len > before || len == 0 {
            continue;
        }
        out.replace_range(at..at + len, &abs);
        before = at;
    }
    out
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

    #[test]
    fn relative_links_become_absolute_and_others_stay() {
        let base = url::Url::parse("https://lyceum.example/").unwrap();
        let md = "[a](/courses/x) [b](https://other.example/y) [c](#top) [d](mailto:a@b.example) \
                  ![i](/media/p.png) [e][r] <a href='/about' title=\"t\">f</a>\n\n[r]: /courses";
        let text = markdown_with_absolute_links(md, &base);
        assert_eq!(
            text,
            "[a](https://lyceum.example/courses/x) [b](https://other.example/y) [c](#top) [d](mailto:a@b.example) \
             ![i](https://lyceum.example/media/p.png) [e][r] <a href='https://lyceum.example/about' title=\"t\">f</a>\n\n\
             [r]: https://lyceum.example/courses"
        );
        let html = render_markdown_absolute(md, &base);
        for link in
            ["https://lyceum.example/courses/x", "https://lyceum.example/courses", "https://lyceum.example/about"]
        {
            assert!(html.contains(&format!("href=\"{link}\"")), "{link}: {html}");
        }
        assert!(
            html.contains("src=\"https://lyceum.example/media/p.png\"") && html.contains("href=\"#top\""),
            "{html}"
        );
    }

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
            choice_feedback: vec![],
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
    fn a_code_block_can_be_scrolled_with_the_keyboard() {
        let html = render_markdown_uncached("```python\nprint('a long line')\n```\n\n<pre onclick=x>raw</pre>");
        assert_eq!(html.matches(r#"<pre tabindex="0">"#).count(), 2, "{html}");
    }

    #[test]
    fn markdown_is_sanitised() {
        let html = render_markdown("Hi <script>alert(1)</script> [x](javascript:alert(1)) **b**");
        assert!(!html.contains("<script") && !html.contains("javascript:") && html.contains("<strong>b</strong>"));
    }

    #[test]
    fn text_limits_count_html_and_markdown_nesting() {
        let divs = |n: usize| format!("{}x{}", "<div>".repeat(n), "</div>".repeat(n));
        assert_eq!(check_text(&divs(MAX_NESTING - 2)), Ok(()));
        assert_eq!(check_text(&divs(MAX_NESTING + 1)), Err(TextLimit::TooDeep));
        assert_eq!(check_text(&"<div>".repeat(100_000)), Err(TextLimit::TooLong));
        assert_eq!(check_text(&"<span>".repeat(1000)), Err(TextLimit::TooDeep), "unclosed elements nest");
        assert_eq!(check_text(&format!("{}x", "> ".repeat(100))), Err(TextLimit::TooDeep));
        assert_eq!(check_text(&format!("{}x", "- ".repeat(100))), Err(TextLimit::TooDeep));
        // Siblings, void elements, self-closed tags and end-tag-optional elements do not nest.
        assert_eq!(check_text(&"<div>x</div>".repeat(5000)), Ok(()));
        assert_eq!(check_text(&"<br><img src=a.png><hr/><p>para<li>item".repeat(1000)), Ok(()));
        assert_eq!(check_text(&"`<div>` ".repeat(1000)), Ok(()), "code is text, not HTML");
        let real = "# Week 1\n\n> A quote with a list:\n> - one\n>   - two\n\n<details><summary>Hint</summary>\n\n**Try** it.\n\n</details>\n";
        assert_eq!(check_text(real), Ok(()));
        assert_eq!(check_text(&"a".repeat(MAX_TEXT_BYTES)), Ok(()));
        assert_eq!(check_text(&"a".repeat(MAX_TEXT_BYTES + 1)), Err(TextLimit::TooLong));
    }

    #[test]
    fn over_deep_text_renders_as_a_notice() {
        let html = render_markdown(&"<div>".repeat(50_000));
        assert!(html.contains("nested too deeply") && !html.contains("<div>"), "{html}");
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

//! Typed page contexts of the learner's pages: what each template reads, as
//! `Serialize` structs. Every key a template uses is a field, present even
//! when empty (`None` becomes `null`, lists are empty lists), so the pages
//! render the same in Handlebars' strict mode and a misspelt key is a
//! compile error rather than a blank.

use std::collections::HashSet;

use serde::Serialize;

use crate::learning::content::{Answers, Question, QuestionKind, Quiz, render_inline_markdown, render_markdown};
use crate::learning::model::{Course, Section, Unit};
use crate::learning::service::{NextStep, QuizStanding, Standing, Verdict};
use crate::web::format::{Day, Moment};

/// A course as its pages name it.
#[derive(Debug, Clone, Serialize)]
pub struct CourseSummary {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub subjects: Vec<String>,
    pub language: String,
    pub effort: Option<String>,
    pub image: Option<String>,
    pub published: bool,
}

impl CourseSummary {
    pub fn of(c: &Course) -> CourseSummary {
        CourseSummary {
            slug: c.slug.clone(),
            title: c.title.clone(),
            summary: c.summary.clone(),
            subjects: c.subject_list(),
            language: c.language.clone(),
            effort: c.effort.clone(),
            image: c.image_blob.as_ref().map(|k| format!("/media/{k}")),
            published: c.published,
        }
    }
}

// ------------------------------------------------------------ about page

#[derive(Debug, Serialize)]
pub struct AboutView {
    pub exams: i64,
    pub course: CourseSummary,
    pub description_html: String,
    pub member: MemberView,
    pub runs: Vec<RunView>,
    pub outline: Vec<AboutSection>,
    pub enrolled: bool,
    pub expired: bool,
    pub signed_in: bool,
    pub verified: bool,
    pub rating: Option<String>,
    pub ratings: i64,
    pub may_author: bool,
    /// The member's sharing question, as the consent area words it.
    pub sharing: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct MemberView {
    pub name: String,
    pub slug: String,
    pub description: String,
    pub logo: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub key: String,
    pub starts: Day,
    pub ends: Option<Day>,
    pub pacing: &'static str,
    pub access_days: Option<i32>,
    pub pass_threshold: i32,
    pub open: bool,
    pub audit: bool,
    /// The price of the verified certificate, only when it can be bought here.
    pub verified_price: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AboutSection {
    pub title: String,
    pub units: Vec<AboutUnit>,
}

#[derive(Debug, Serialize)]
pub struct AboutUnit {
    pub title: String,
}

// ------------------------------------------------------------ the outline

/// The course outline with the learner's ticks and position. `Hash`: a
/// section beside a unit is a kept fragment keyed by all it shows.
#[derive(Debug, Serialize, Hash)]
pub struct OutlineSection {
    pub title: String,
    pub units: Vec<OutlineUnit>,
}

#[derive(Debug, Serialize, Hash)]
pub struct OutlineUnit {
    pub id: i64,
    pub title: String,
    pub href: String,
    pub done: bool,
    /// The unit the page shows.
    pub current: bool,
}

pub fn outline(
    slug: &str,
    sections: &[(Section, Vec<Unit>)],
    done: &HashSet<i64>,
    current: Option<i64>,
) -> Vec<OutlineSection> {
    sections
        .iter()
        .map(|(s, us)| OutlineSection {
            title: s.title.clone(),
            units: us
                .iter()
                .map(|u| OutlineUnit {
                    id: u.id,
                    title: u.title.clone(),
                    href: format!("/learn/{slug}/units/{}", u.id),
                    done: done.contains(&u.id),
                    current: current == Some(u.id),
                })
                .collect(),
        })
        .collect()
}

/// A link onwards: to a unit, or to the course-complete page.
#[derive(Debug, Serialize)]
pub struct StepLink {
    pub href: String,
    pub label: &'static str,
    /// The course is finished: the link leads to its end page.
    pub finished: bool,
}

impl StepLink {
    pub fn of(slug: &str, step: NextStep) -> StepLink {
        let unit = |u: i64| format!("/learn/{slug}/units/{u}");
        match step {
            NextStep::Start(u) => StepLink { href: unit(u), label: "Start", finished: false },
            NextStep::Resume(u) => StepLink { href: unit(u), label: "Continue where you left off", finished: false },
            NextStep::Next(u) => StepLink { href: unit(u), label: "Continue with the next unit", finished: false },
            NextStep::Finished => StepLink {
                href: format!("/learn/{slug}/complete"),
                label: "Completed: see your result",
                finished: true,
            },
        }
    }
}

// ------------------------------------------------------------ course page

#[derive(Debug, Serialize)]
pub struct CourseHomeView {
    /// The verified-certificate card, as the certificates area words it.
    pub certificate: Option<serde_json::Value>,
    pub course: CourseSummary,
    pub preview: bool,
    pub standing: Option<Standing>,
    pub pass_threshold: Option<i32>,
    pub next_step: Option<StepLink>,
    pub sections: Vec<OutlineSection>,
}

// ------------------------------------------------------------ dashboard

#[derive(Debug, Serialize)]
pub struct DashboardView {
    pub me: Me,
    pub courses: Vec<DashboardCourse>,
}

#[derive(Debug, Serialize)]
pub struct Me {
    pub first_name: String,
    pub verified: bool,
    pub email: String,
}

#[derive(Debug, Serialize)]
pub struct DashboardCourse {
    pub certificate: Option<CertificateBadge>,
    pub title: String,
    pub slug: String,
    pub standing: Standing,
    pub next_step: Option<StepLink>,
    pub access: bool,
    pub access_until: Option<Day>,
    pub starts: Day,
    pub track: String,
}

#[derive(Debug, Serialize)]
pub struct CertificateBadge {
    pub code: String,
    pub valid: bool,
}

// ------------------------------------------------------------ unit page

/// A unit page; its outline is shown as kept fragments, one per section
/// (`learning/outline_section`, built from [`outline`]).
#[derive(Debug, Serialize)]
pub struct UnitView {
    pub course: CourseSummary,
    pub unit: UnitHead,
    pub blocks: Vec<BlockView>,
    pub prev: Option<UnitLink>,
    pub next: Option<UnitLink>,
    pub preview: bool,
    /// "Unit `position` of `total`".
    pub position: usize,
    pub total: usize,
    pub units_done: usize,
    /// The section the unit is in.
    pub section: String,
}

#[derive(Debug, Serialize)]
pub struct UnitHead {
    pub id: i64,
    pub title: String,
    pub done: bool,
}

#[derive(Debug, Serialize)]
pub struct UnitLink {
    pub id: i64,
    pub title: String,
    pub href: String,
}

impl UnitLink {
    pub fn of(slug: &str, u: &Unit) -> UnitLink {
        UnitLink { id: u.id, title: u.title.clone(), href: format!("/learn/{slug}/units/{}", u.id) }
    }
}

/// A block as the unit template shows it; `kind` names the variant.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockView {
    Text { id: i64, html: String },
    Video { id: i64, embed: Option<String>, url: Option<String>, file: Option<String>, transcript_html: Option<String> },
    Resource { id: i64, title: String, filename: String, href: String },
    Live { id: i64, title: String, starts: Moment, href: String, attended: bool, past: bool },
    Quiz(QuizView),
}

#[derive(Debug, Serialize)]
pub struct QuizView {
    pub id: i64,
    pub title: String,
    pub attempts: u32,
    pub used: u32,
    pub left: u32,
    pub proctored: bool,
    pub in_session: bool,
    pub session_status: Option<String>,
    pub proctoring_action: String,
    pub can_submit: bool,
    pub reveal: bool,
    pub best: Option<String>,
    pub due: Option<Moment>,
    pub action: String,
    pub questions: Vec<QuestionView>,
    /// The last attempt's result, beside the quiz.
    pub result: Option<ResultView>,
}

/// The last attempt: its score and a colour that matches it.
#[derive(Debug, Serialize)]
pub struct ResultView {
    pub attempt: i32,
    pub percent: String,
    pub right: usize,
    pub total: usize,
    pub verdict: Verdict,
    /// The flash colour: success, warning or error.
    pub tone: &'static str,
    pub pass_threshold: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct QuestionView {
    pub index: usize,
    pub number: usize,
    pub prompt_html: String,
    pub single: bool,
    pub multiple: bool,
    pub numeric: bool,
    pub text: bool,
    pub choices: Vec<ChoiceView>,
    pub value: String,
    pub answered: bool,
    pub was_correct: bool,
    /// The learner's last answer, as HTML ("no answer" when left empty).
    pub given_html: Option<String>,
    pub feedback_html: Option<String>,
    /// The author's feedback on each choice the learner picked, shown when
    /// the explanations are (`reveal`).
    pub choice_feedback: Vec<ChoiceFeedbackView>,
    pub solution: Option<String>,
    pub error: Option<String>,
}

/// Feedback on a choice the learner picked: the choice, and what the
/// author says to whoever picks it.
#[derive(Debug, Serialize)]
pub struct ChoiceFeedbackView {
    pub label_html: String,
    pub html: String,
}

#[derive(Debug, Serialize)]
pub struct ChoiceView {
    pub index: usize,
    pub label_html: String,
    pub checked: bool,
    pub correct: bool,
}

pub fn tone(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "success",
        Verdict::Partial => "warning",
        Verdict::Fail => "error",
    }
}

impl QuizView {
    /// The quiz in block `id` for a learner with `standing`, in a run whose
    /// pass mark is `pass_threshold` (none in a preview); `answer_errors`
    /// are the field errors of answers just refused.
    pub fn new(
        id: i64,
        slug: &str,
        quiz: &Quiz,
        standing: &QuizStanding,
        pass_threshold: Option<i32>,
        answer_errors: &[(usize, String)],
    ) -> QuizView {
        let reveal = standing.reveal();
        let empty = Answers::new();
        let last_answers = standing.last.as_ref().map_or(&empty, |l| &l.answers);
        let result = standing.last.as_ref().map(|l| {
            let verdict = Verdict::of(l.score, pass_threshold.unwrap_or(100));
            ResultView {
                attempt: l.number,
                percent: format!("{:.0}", l.score * 100.0),
                right: l.results.iter().filter(|r| r.correct).count(),
                total: l.results.len(),
                verdict,
                tone: tone(verdict),
                pass_threshold,
            }
        });
        let questions = quiz
            .questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let given = last_answers.get(&i).cloned().unwrap_or_default();
                let answered = standing.last.is_some();
                QuestionView {
                    index: i,
                    number: i + 1,
                    prompt_html: render_markdown(&q.prompt),
                    single: q.kind == QuestionKind::Single,
                    multiple: q.kind == QuestionKind::Multiple,
                    numeric: q.kind == QuestionKind::Numeric,
                    text: q.kind == QuestionKind::Text,
                    choices: q
                        .choices
                        .iter()
                        .enumerate()
                        .map(|(ci, c)| ChoiceView {
                            index: ci,
                            label_html: render_inline_markdown(c),
                            checked: given.contains(&ci.to_string()),
                            correct: reveal && q.correct.contains(&ci),
                        })
                        .collect(),
                    value: given.first().cloned().unwrap_or_default(),
                    answered,
                    was_correct: standing.last.as_ref().is_some_and(|l| l.results.get(i).is_some_and(|r| r.correct)),
                    given_html: answered.then(|| given_html(q, &given)),
                    feedback_html: q.feedback.as_deref().filter(|_| reveal).map(render_markdown),
                    choice_feedback: if reveal && answered { chosen_feedback(q, &given) } else { Vec::new() },
                    solution: if reveal {
                        match q.kind {
                            QuestionKind::Numeric => q.answer.map(|a| a.to_string()),
                            QuestionKind::Text => q.accepted.first().cloned(),
                            _ => None,
                        }
                    } else {
                        None
                    },
                    error: answer_errors.iter().find(|(qi, _)| *qi == i).map(|(_, m)| m.clone()),
                }
            })
            .collect();
        QuizView {
            id,
            title: quiz.title.clone(),
            attempts: quiz.attempts,
            used: standing.used,
            left: standing.left(),
            proctored: quiz.proctored,
            in_session: standing.in_session(),
            session_status: standing.session_status.clone(),
            proctoring_action: format!("/learn/{slug}/exams/{id}/proctoring"),
            can_submit: standing.may_submit().is_ok(),
            reveal,
            best: standing.best.map(|s| format!("{:.0}", s * 100.0)),
            due: quiz.due_at.map(Moment),
            action: format!("/learn/{slug}/quiz/{id}"),
            questions,
            result,
        }
    }
}

/// The feedback on the choices in `given` that have some, in the choices' order.
fn chosen_feedback(q: &Question, given: &[String]) -> Vec<ChoiceFeedbackView> {
    if !matches!(q.kind, QuestionKind::Single | QuestionKind::Multiple) {
        return Vec::new();
    }
    let chosen: HashSet<usize> = given.iter().filter_map(|v| v.parse().ok()).collect();
    q.choices
        .iter()
        .enumerate()
        .filter(|(i, _)| chosen.contains(i))
        .filter_map(|(i, c)| {
            q.feedback_on(i)
                .map(|f| ChoiceFeedbackView { label_html: render_inline_markdown(c), html: render_markdown(f) })
        })
        .collect()
}

/// What the learner answered, as HTML: the chosen choices' labels, or the
/// value typed.
fn given_html(q: &Question, given: &[String]) -> String {
    let shown: Vec<String> = match q.kind {
        QuestionKind::Single | QuestionKind::Multiple => given
            .iter()
            .filter_map(|v| v.parse::<usize>().ok())
            .filter_map(|c| q.choices.get(c))
            .map(|c| render_inline_markdown(c))
            .collect(),
        QuestionKind::Numeric | QuestionKind::Text => {
            given.iter().filter(|v| !v.trim().is_empty()).map(|v| handlebars::html_escape(v.trim())).collect()
        }
    };
    if shown.is_empty() { "<em>no answer</em>".to_string() } else { shown.join(", ") }
}

// ------------------------------------------------------------ course complete

#[derive(Debug, Serialize)]
pub struct CompleteView {
    pub course: CourseSummary,
    /// Every unit finished.
    pub finished: bool,
    pub units_done: usize,
    pub units_total: usize,
    pub grade: String,
    pub pass_threshold: i32,
    pub passed: bool,
    pub completed_at: Option<Day>,
    /// Units not finished yet (first few).
    pub remaining: Vec<UnitLink>,
    pub more_remaining: usize,
    /// Quizzes that can still raise the grade.
    pub retry: Vec<RetryQuiz>,
    pub certificate: CertificatePath,
}

#[derive(Debug, Serialize)]
pub struct RetryQuiz {
    pub title: String,
    pub href: String,
    pub best: String,
    pub left: u32,
}

/// The way to a certificate, from where the learner stands.
#[derive(Debug, Serialize)]
pub struct CertificatePath {
    /// The certificate, once issued.
    pub issued: Option<CertificateBadge>,
    /// The run offers a verified certificate.
    pub offered: bool,
    pub verified_track: bool,
    pub identity_ok: bool,
    pub identity_pending: bool,
    /// Where the learner acts on it (the course page's certificate card).
    pub card: String,
}

/// A grade in percent as people write it: `50`, `66.67`.
pub fn percent(grade: f64) -> String {
    let s = format!("{grade:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

// ------------------------------------------------------------ enroll first

/// The 403 page of a course's content for someone not (or no longer)
/// enrolled: why, and the way in.
#[derive(Debug, Serialize)]
pub struct EnrollFirstView {
    pub course: CourseSummary,
    pub message: String,
    /// The course page's enrollment section.
    pub enroll_href: String,
}

// ------------------------------------------------------------ the Studio's editors

/// One field of the Studio's editors, as the `studio_field` and
/// `studio_textarea` partials read it.
#[derive(Debug, Clone, Serialize)]
pub struct FieldView {
    pub id: String,
    pub name: String,
    pub value: String,
    pub error: Option<String>,
}

/// An option of a select.
#[derive(Debug, Clone, Serialize)]
pub struct OptionView {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// The `quiz_editor` partial's context (`QuizFields::view`).
#[derive(Debug, Clone, Serialize)]
pub struct QuizEditorView {
    pub prefix: String,
    pub title: FieldView,
    pub attempts: FieldView,
    pub weight: FieldView,
    pub due_at: FieldView,
    pub show_answers: FieldView,
    pub after_due: bool,
    pub proctored: bool,
    pub questions: Vec<QuestionEditorView>,
    /// Where a problem with the questions as a whole shows.
    pub questions_field: FieldView,
    pub can_add_question: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuestionEditorView {
    pub index: usize,
    pub n: usize,
    pub id: String,
    pub kind: FieldView,
    pub kinds: Vec<OptionView>,
    pub has_choices: bool,
    pub is_numeric: bool,
    pub is_text: bool,
    pub prompt: FieldView,
    pub choices: Vec<ChoiceEditorView>,
    /// Where a problem with the choices as a whole shows.
    pub choices_field: FieldView,
    pub can_add_choice: bool,
    pub answer: FieldView,
    pub tolerance: FieldView,
    pub accepted: FieldView,
    pub feedback: FieldView,
}

/// A choice in the editor: its text field (flattened: `id`, `name`,
/// `value`, `error`), whether it is correct, and its own feedback field.
#[derive(Debug, Clone, Serialize)]
pub struct ChoiceEditorView {
    #[serde(flatten)]
    pub field: FieldView,
    pub index: usize,
    pub n: usize,
    pub correct: bool,
    pub feedback: FieldView,
}

/// One kind's part of the block form: whether it is on the page at all
/// (the add form carries every kind, a stored block only its own) and
/// whether it is the one shown.
#[derive(Debug, Clone, Serialize)]
pub struct KindSection {
    pub present: bool,
    pub active: bool,
    pub id: String,
}

/// A problem listed at the top of a block form, linking to its field.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemLink {
    pub id: String,
    pub message: String,
}

/// The `block_editor` partial's context (`Draft::view`).
#[derive(Debug, Clone, Serialize)]
pub struct BlockEditorView {
    pub prefix: String,
    pub unit_id: i64,
    pub kind: String,
    pub choose_kind: bool,
    pub kinds: Vec<OptionView>,
    pub problems: Vec<ProblemLink>,
    pub problem_count: usize,
    pub notice: Option<String>,
    pub text: KindSection,
    pub video: KindSection,
    pub quiz_section: KindSection,
    pub resource: KindSection,
    pub live: KindSection,
    pub markdown: FieldView,
    pub image: FieldView,
    pub preview: Option<String>,
    pub url: FieldView,
    pub video_file: FieldView,
    pub transcript: FieldView,
    pub resource_title: FieldView,
    pub resource_file: FieldView,
    pub live_title: FieldView,
    pub starts_at: FieldView,
    pub link: FieldView,
    pub file_now: Option<String>,
    pub quiz: QuizEditorView,
}

// ------------------------------------------------------------ Studio pages

/// A course in the Studio's lists.
#[derive(Debug, Clone, Serialize)]
pub struct StudioCourse {
    pub slug: String,
    pub title: String,
    pub published: bool,
}

impl StudioCourse {
    pub fn of(c: &Course) -> StudioCourse {
        StudioCourse { slug: c.slug.clone(), title: c.title.clone(), published: c.published }
    }
}

#[derive(Debug, Serialize)]
pub struct StudioIndexView {
    pub members: Vec<StudioMemberCard>,
    pub is_staff: bool,
}

#[derive(Debug, Serialize)]
pub struct StudioMemberCard {
    pub slug: String,
    pub name: String,
    pub courses: Vec<StudioCourse>,
    pub manage: bool,
}

#[derive(Debug, Serialize)]
pub struct StudioMemberView {
    pub member: MemberView,
    pub staff: Vec<StaffMember>,
    pub courses: Vec<StudioCourse>,
    pub manage: bool,
}

#[derive(Debug, Serialize)]
pub struct StaffMember {
    pub username: String,
    pub role: String,
}

#[derive(Debug, Serialize)]
pub struct StudioCourseView {
    pub course: StudioCourseDetails,
    pub member: MemberLink,
    pub runs: Vec<StudioRun>,
    pub sections: Vec<StudioSection>,
}

#[derive(Debug, Serialize)]
pub struct StudioCourseDetails {
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub description: String,
    /// As typed: subjects separated by commas.
    pub subjects: String,
    pub language: String,
    pub effort: Option<String>,
    pub published: bool,
    pub image: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MemberLink {
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct StudioRun {
    pub id: i64,
    pub key: String,
    pub starts: Moment,
    pub ends: Option<Day>,
    pub pacing: String,
    pub access_days: Option<i32>,
    pub pass_threshold: i32,
}

#[derive(Debug, Serialize)]
pub struct StudioSection {
    pub id: i64,
    pub title: String,
    pub units: Vec<StudioUnit>,
}

#[derive(Debug, Serialize)]
pub struct StudioUnit {
    pub id: i64,
    pub title: String,
}

/// The unit editor: every block in its form, and the add form.
#[derive(Debug, Serialize)]
pub struct StudioUnitView {
    pub course: CourseLink,
    pub unit: StudioUnit,
    pub blocks: Vec<StudioBlock>,
    /// The add form holds a draft that was not saved.
    pub adding: bool,
    pub new_block: BlockEditorView,
}

#[derive(Debug, Serialize)]
pub struct CourseLink {
    pub slug: String,
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct StudioBlock {
    pub id: i64,
    pub kind: &'static str,
    pub kind_label: &'static str,
    pub heading: Option<String>,
    /// This block's form holds a draft that was not saved.
    pub editing: bool,
    pub form: BlockEditorView,
}

#[derive(Debug, Serialize)]
pub struct ImportProblemsView {
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct GradebookView {
    pub course: CourseLink,
    pub run: GradebookRun,
    /// The quizzes' titles.
    pub columns: Vec<String>,
    pub rows: Vec<GradebookLine>,
    pub truncated: bool,
}

#[derive(Debug, Serialize)]
pub struct GradebookRun {
    pub id: i64,
    pub key: String,
    pub pass_threshold: i32,
}

#[derive(Debug, Serialize)]
pub struct GradebookLine {
    pub username: String,
    pub track: String,
    pub enrolled: Day,
    pub units_done: usize,
    /// Per quiz, the best score in percent (none: not taken).
    pub scores: Vec<Option<String>>,
    pub grade: String,
    pub passed: bool,
    pub completed: Option<Day>,
}

// ------------------------------------------------------------ catalog

#[derive(Debug, Serialize)]
pub struct CatalogView {
    /// One page of the matching courses.
    pub cards: Vec<crate::learning::catalog::Card>,
    pub q: Option<String>,
    /// Courses matching, on every page.
    pub count: i64,
    pub nav: crate::web::paging::PageNav,
    /// The page asked for lies past the last one.
    pub past_end: bool,
    pub members: Vec<MemberFacet>,
    pub subjects: Vec<SubjectFacet>,
    pub languages: Vec<LanguageFacet>,
    pub pacing: Option<String>,
    pub open: bool,
}

#[derive(Debug, Serialize)]
pub struct MemberFacet {
    pub slug: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Debug, Serialize)]
pub struct SubjectFacet {
    pub slug: String,
    pub selected: bool,
}

#[derive(Debug, Serialize)]
pub struct LanguageFacet {
    pub code: String,
    pub selected: bool,
}

//! The Studio's quiz editor: a quiz as plain form fields (questions, choices,
//! correct answers, tolerance, feedback, attempts, weight) and back. Authors
//! never type TOML (that stays the package format); every problem names the
//! field it is about, so the form shows it there with all the input kept.

use std::collections::BTreeMap;

use rocket::FromForm;

use crate::learning::content::{Question, QuestionKind, Quiz, ShowAnswers, check_text};
use crate::learning::views::{ChoiceEditorView, FieldView, OptionView, QuestionEditorView, QuizEditorView};

/// Most questions one quiz holds in the editor.
pub const MAX_QUESTIONS: usize = 100;
/// Most choices one question offers.
pub const MAX_CHOICES: usize = 20;

/// The kinds of question, as the editor offers them.
const QUESTION_KINDS: &[(&str, &str)] = &[
    ("single", "One correct choice"),
    ("multiple", "Several correct choices"),
    ("numeric", "A number"),
    ("text", "A short text"),
];

#[derive(Debug, Clone, PartialEq, FromForm)]
pub struct QuizFields {
    #[field(default = String::new())]
    pub title: String,
    #[field(default = String::from("1"))]
    pub attempts: String,
    #[field(default = String::from("1"))]
    pub weight: String,
    #[field(default = String::from("after_last_attempt"))]
    pub show_answers: String,
    #[field(default = String::new())]
    pub due_at: String,
    #[field(default = false)]
    pub proctored: bool,
    pub questions: Vec<QuestionFields>,
}

#[derive(Debug, Clone, PartialEq, FromForm)]
pub struct QuestionFields {
    #[field(default = String::from("single"))]
    pub kind: String,
    #[field(default = String::new())]
    pub prompt: String,
    pub choices: Vec<ChoiceFields>,
    #[field(default = String::new())]
    pub answer: String,
    #[field(default = String::new())]
    pub tolerance: String,
    /// Text questions: one accepted answer a line.
    #[field(default = String::new())]
    pub accepted: String,
    #[field(default = String::new())]
    pub feedback: String,
}

#[derive(Debug, Clone, PartialEq, FromForm)]
pub struct ChoiceFields {
    #[field(default = String::new())]
    pub text: String,
    #[field(default = false)]
    pub correct: bool,
    /// What a learner who picks this choice reads (optional).
    #[field(default = String::new())]
    pub feedback: String,
}

impl ChoiceFields {
    fn blank() -> ChoiceFields {
        ChoiceFields { text: String::new(), correct: false, feedback: String::new() }
    }
}

impl QuestionFields {
    pub fn blank() -> QuestionFields {
        QuestionFields {
            kind: "single".into(),
            prompt: String::new(),
            choices: vec![ChoiceFields::blank(), ChoiceFields::blank()],
            answer: String::new(),
            tolerance: String::new(),
            accepted: String::new(),
            feedback: String::new(),
        }
    }
}

impl Default for QuizFields {
    /// A new quiz: one single-choice question with two empty choices.
    fn default() -> QuizFields {
        QuizFields {
            title: String::new(),
            attempts: "1".into(),
            weight: "1".into(),
            show_answers: "after_last_attempt".into(),
            due_at: String::new(),
            proctored: false,
            questions: vec![QuestionFields::blank()],
        }
    }
}

/// A change to the form that is not a save: the form comes back with it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    AddQuestion,
    RemoveQuestion(usize),
    AddChoice(usize),
    RemoveChoice(usize, usize),
}

impl Edit {
    /// `add_question`, `remove_question-2`, `add_choice-0`, `remove_choice-0-3`.
    pub fn parse(s: &str) -> Option<Edit> {
        let mut parts = s.split('-');
        let name = parts.next()?;
        let mut n = || parts.next().and_then(|p| p.parse::<usize>().ok());
        let edit = match name {
            "add_question" => Edit::AddQuestion,
            "remove_question" => Edit::RemoveQuestion(n()?),
            "add_choice" => Edit::AddChoice(n()?),
            "remove_choice" => Edit::RemoveChoice(n()?, n()?),
            _ => return None,
        };
        Some(edit)
    }
}

/// Problems by field key: `title`, `questions`, `q2.prompt`, `q2.choices`, `q2.c1`…
pub type Problems = BTreeMap<String, String>;

impl QuizFields {
    /// The form of a stored quiz.
    pub fn of(quiz: &Quiz) -> QuizFields {
        QuizFields {
            title: quiz.title.clone(),
            attempts: quiz.attempts.to_string(),
            weight: number(quiz.weight),
            show_answers: match quiz.show_answers {
                ShowAnswers::AfterLastAttempt => "after_last_attempt",
                ShowAnswers::AfterDue => "after_due",
            }
            .into(),
            due_at: quiz.due_at.map(|d| d.format("%Y-%m-%dT%H:%M").to_string()).unwrap_or_default(),
            proctored: quiz.proctored,
            questions: quiz
                .questions
                .iter()
                .map(|q| QuestionFields {
                    kind: kind_name(q.kind).into(),
                    prompt: q.prompt.clone(),
                    choices: q
                        .choices
                        .iter()
                        .enumerate()
                        .map(|(i, c)| ChoiceFields {
                            text: c.clone(),
                            correct: q.correct.contains(&i),
                            feedback: q.feedback_on(i).unwrap_or_default().to_string(),
                        })
                        .collect(),
                    answer: q.answer.map(number).unwrap_or_default(),
                    tolerance: if q.kind == QuestionKind::Numeric { number(q.tolerance) } else { String::new() },
                    accepted: q.accepted.join("\n"),
                    feedback: q.feedback.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Makes `edit`; an edit naming no question or choice changes nothing.
    pub fn apply(&mut self, edit: Edit) {
        match edit {
            Edit::AddQuestion if self.questions.len() < MAX_QUESTIONS => self.questions.push(QuestionFields::blank()),
            Edit::RemoveQuestion(q) if q < self.questions.len() => {
                self.questions.remove(q);
            }
            Edit::AddChoice(q) => {
                if let Some(q) = self.questions.get_mut(q).filter(|q| q.choices.len() < MAX_CHOICES) {
                    q.choices.push(ChoiceFields::blank());
                }
            }
            Edit::RemoveChoice(q, c) => {
                if let Some(q) = self.questions.get_mut(q).filter(|q| c < q.choices.len()) {
                    q.choices.remove(c);
                }
            }
            _ => {}
        }
    }

    /// The quiz the fields describe, or every problem with the field it is about.
    pub fn quiz(&self) -> Result<Quiz, Problems> {
        let mut problems = Problems::new();
        let mut say = |key: String, message: &str| {
            problems.entry(key).or_insert_with(|| message.to_string());
        };
        let title = self.title.trim();
        if title.is_empty() {
            say("title".into(), "Give the quiz a title.");
        } else if title.chars().count() > 200 || title.contains(['\n', '\r']) {
            say("title".into(), "The title is one line of at most 200 characters.");
        }
        let attempts = match self.attempts.trim().parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                say("attempts".into(), "Attempts is a whole number from 1 to 100.");
                1
            }
        };
        let weight = match decimal(&self.weight) {
            Some(w) if w > 0.0 && w <= 1000.0 => w,
            _ => {
                say("weight".into(), "The weight is a number greater than 0 (1 is the usual weight), like 1 or 2.5.");
                1.0
            }
        };
        let show_answers = match self.show_answers.as_str() {
            "after_due" => ShowAnswers::AfterDue,
            "after_last_attempt" => ShowAnswers::AfterLastAttempt,
            _ => {
                say("show_answers".into(), "Choose when learners see the answers.");
                ShowAnswers::AfterLastAttempt
            }
        };
        let due_at = match crate::learning::authoring::parse_time(&self.due_at, "due date") {
            Ok(d) => d,
            Err(e) => {
                say("due_at".into(), &e.to_string());
                None
            }
        };
        if show_answers == ShowAnswers::AfterDue && due_at.is_none() && self.due_at.trim().is_empty() {
            say("due_at".into(), "Answers shown after the due date need a due date.");
        }
        if self.questions.is_empty() {
            say("questions".into(), "A quiz needs at least one question: add one.");
        } else if self.questions.len() > MAX_QUESTIONS {
            say("questions".into(), &format!("A quiz holds at most {MAX_QUESTIONS} questions."));
        }
        let mut questions = Vec::new();
        for (i, q) in self.questions.iter().enumerate() {
            let key = |field: &str| format!("q{i}.{field}");
            let kind = match q.kind.as_str() {
                "single" => QuestionKind::Single,
                "multiple" => QuestionKind::Multiple,
                "numeric" => QuestionKind::Numeric,
                "text" => QuestionKind::Text,
                _ => {
                    say(key("kind"), "Choose the kind of question.");
                    QuestionKind::Single
                }
            };
            let prompt = q.prompt.trim().to_string();
            if prompt.is_empty() {
                say(key("prompt"), "Write the question.");
            } else if let Err(limit) = check_text(&prompt) {
                say(key("prompt"), &limit.to_string());
            }
            let feedback = Some(q.feedback.trim().to_string()).filter(|f| !f.is_empty());
            if let Some(Err(limit)) = feedback.as_deref().map(check_text) {
                say(key("feedback"), &limit.to_string());
            }
            let mut question = Question {
                kind,
                prompt,
                choices: Vec::new(),
                correct: Vec::new(),
                answer: None,
                tolerance: 0.0,
                accepted: Vec::new(),
                feedback,
                choice_feedback: Vec::new(),
            };
            match kind {
                QuestionKind::Single | QuestionKind::Multiple => {
                    for (c, choice) in q.choices.iter().enumerate() {
                        let text = choice.text.trim();
                        if text.is_empty() {
                            say(format!("q{i}.c{c}"), "Write this choice, or remove it.");
                        } else if text.chars().count() > 1000 {
                            say(format!("q{i}.c{c}"), "A choice is at most 1000 characters.");
                        }
                        question.choices.push(text.to_string());
                        if choice.correct {
                            question.correct.push(c);
                        }
                        let feedback = choice.feedback.trim();
                        if let Err(limit) = check_text(feedback) {
                            say(format!("q{i}.c{c}.feedback"), &limit.to_string());
                        }
                        question.choice_feedback.push(feedback.to_string());
                    }
                    question.choice_feedback = crate::learning::transfer::choice_feedback(&question.choice_feedback);
                    if q.choices.len() < 2 {
                        say(key("choices"), "A choice question needs at least two choices: add one.");
                    } else if q.choices.len() > MAX_CHOICES {
                        say(key("choices"), &format!("A question offers at most {MAX_CHOICES} choices."));
                    } else if kind == QuestionKind::Single && question.correct.len() != 1 {
                        say(key("choices"), "Tick exactly one correct choice (or make it a multiple-choice question).");
                    } else if kind == QuestionKind::Multiple && question.correct.is_empty() {
                        say(key("choices"), "Tick at least one correct choice.");
                    }
                }
                QuestionKind::Numeric => {
                    match decimal(&q.answer) {
                        Some(a) => question.answer = Some(a),
                        None => say(key("answer"), "The answer is a number, like 3.5."),
                    }
                    if !q.tolerance.trim().is_empty() {
                        match decimal(&q.tolerance) {
                            Some(t) if t >= 0.0 => question.tolerance = t,
                            _ => say(key("tolerance"), "The tolerance is a number of 0 or more, like 0.01."),
                        }
                    }
                }
                QuestionKind::Text => {
                    question.accepted =
                        q.accepted.lines().map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
                    if question.accepted.is_empty() {
                        say(key("accepted"), "Give at least one accepted answer, one a line.");
                    } else if question.accepted.iter().any(|a| a.chars().count() > 500) {
                        say(key("accepted"), "An accepted answer is at most 500 characters.");
                    }
                }
            }
            questions.push(question);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let quiz = Quiz {
            title: title.to_string(),
            attempts,
            weight,
            show_answers,
            due_at,
            questions,
            proctored: self.proctored,
        };
        // The package format's own rules, the same as at import: a quiz saved
        // here always exports and imports again.
        let toml = crate::learning::transfer::quiz_to_toml(&quiz);
        match crate::learning::transfer::quiz_from_toml(&toml) {
            Ok(_) => Ok(quiz),
            Err(m) => Err(Problems::from([("questions".to_string(), m)])),
        }
    }

    /// The form as the `quiz_editor` partial shows it: every field's value,
    /// its problem (or none) and the ids that tie them together. `prefix`
    /// makes the ids unique on a page with several editors.
    pub fn view(&self, prefix: &str, problems: &Problems) -> QuizEditorView {
        let field = |key: &str, value: &str| FieldView {
            id: format!("{prefix}-{}", key.replace('.', "-")),
            name: field_name(key),
            value: value.to_string(),
            error: problems.get(key).cloned(),
        };
        let questions = self
            .questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let k = |f: &str| format!("q{i}.{f}");
                QuestionEditorView {
                    index: i,
                    n: i + 1,
                    id: format!("{prefix}-q{i}"),
                    kind: field(&k("kind"), &q.kind),
                    kinds: QUESTION_KINDS
                        .iter()
                        .map(|(value, label)| OptionView { value, label, selected: q.kind == *value })
                        .collect(),
                    has_choices: !["numeric", "text"].contains(&q.kind.as_str()),
                    is_numeric: q.kind == "numeric",
                    is_text: q.kind == "text",
                    prompt: field(&k("prompt"), &q.prompt),
                    choices: q
                        .choices
                        .iter()
                        .enumerate()
                        .map(|(c, choice)| ChoiceEditorView {
                            field: field(&format!("q{i}.c{c}"), &choice.text),
                            index: c,
                            n: c + 1,
                            correct: choice.correct,
                            feedback: field(&format!("q{i}.c{c}.feedback"), &choice.feedback),
                        })
                        .collect(),
                    choices_field: field(&k("choices"), ""),
                    can_add_choice: q.choices.len() < MAX_CHOICES,
                    answer: field(&k("answer"), &q.answer),
                    tolerance: field(&k("tolerance"), &q.tolerance),
                    accepted: field(&k("accepted"), &q.accepted),
                    feedback: field(&k("feedback"), &q.feedback),
                }
            })
            .collect();
        QuizEditorView {
            prefix: prefix.to_string(),
            title: field("title", &self.title),
            attempts: field("attempts", &self.attempts),
            weight: field("weight", &self.weight),
            due_at: field("due_at", &self.due_at),
            show_answers: field("show_answers", &self.show_answers),
            after_due: self.show_answers == "after_due",
            proctored: self.proctored,
            questions,
            questions_field: field("questions", ""),
            can_add_question: self.questions.len() < MAX_QUESTIONS,
        }
    }
}

/// The form field a problem key stands for: `q1.prompt` is
/// `quiz.questions[1].prompt`, `q1.c2` the text of its third choice and
/// `q1.c2.feedback` that choice's feedback.
fn field_name(key: &str) -> String {
    match key.split_once('.') {
        Some((q, field)) if q.starts_with('q') => {
            let i = &q[1..];
            let (choice, rest) = field.split_once('.').unwrap_or((field, "text"));
            match choice.strip_prefix('c').filter(|c| c.parse::<usize>().is_ok()) {
                Some(c) => format!("quiz.questions[{i}].choices[{c}].{rest}"),
                None => format!("quiz.questions[{i}].{field}"),
            }
        }
        _ => format!("quiz.{key}"),
    }
}

fn kind_name(kind: QuestionKind) -> &'static str {
    match kind {
        QuestionKind::Single => "single",
        QuestionKind::Multiple => "multiple",
        QuestionKind::Numeric => "numeric",
        QuestionKind::Text => "text",
    }
}

/// A number as an author writes it: `3.5` or `3,5`, finite.
fn decimal(s: &str) -> Option<f64> {
    let v: f64 = s.trim().replace(',', ".").parse().ok()?;
    v.is_finite().then_some(v)
}

/// A number as the form shows it: `1`, not `1.0`.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { v.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> QuizFields {
        QuizFields {
            title: "Check".into(),
            attempts: "2".into(),
            weight: "1,5".into(),
            questions: vec![
                QuestionFields {
                    prompt: "Who owns a value?".into(),
                    choices: vec![
                        ChoiceFields {
                            text: "nobody".into(),
                            correct: false,
                            feedback: "Not quite: someone always owns it.".into(),
                        },
                        ChoiceFields { text: "its owner".into(), correct: true, feedback: String::new() },
                    ],
                    feedback: "One owner at a time.".into(),
                    ..QuestionFields::blank()
                },
                QuestionFields {
                    kind: "numeric".into(),
                    prompt: "7 / 2?".into(),
                    answer: "3.5".into(),
                    tolerance: "0.01".into(),
                    ..QuestionFields::blank()
                },
                QuestionFields {
                    kind: "text".into(),
                    prompt: "The built-in that prints?".into(),
                    accepted: "print\n\nprint()\n".into(),
                    ..QuestionFields::blank()
                },
            ],
            ..QuizFields::default()
        }
    }

    #[test]
    fn a_filled_form_is_a_quiz_and_back() {
        let quiz = filled().quiz().unwrap();
        assert_eq!(quiz.weight, 1.5);
        assert_eq!(quiz.questions[0].correct, vec![1]);
        assert_eq!(quiz.questions[1].answer, Some(3.5));
        assert!(quiz.questions[1].choices.is_empty(), "fields of other kinds are ignored");
        assert_eq!(quiz.questions[2].accepted, vec!["print", "print()"]);
        assert_eq!(quiz.questions[0].choice_feedback, vec!["Not quite: someone always owns it.", ""]);
        assert_eq!(quiz.questions[0].feedback_on(1), None);
        assert!(quiz.questions[1].choice_feedback.is_empty(), "a number has no choices to comment on");
        assert_eq!(QuizFields::of(&quiz).quiz().unwrap(), quiz);
        // No feedback on any choice is no feedback at all, not a list of blanks.
        let mut f = filled();
        f.questions[0].choices[0].feedback = "  ".into();
        assert!(f.quiz().unwrap().questions[0].choice_feedback.is_empty());
    }

    #[test]
    fn a_choice_s_feedback_has_its_own_field() {
        assert_eq!(field_name("q1.c2"), "quiz.questions[1].choices[2].text");
        assert_eq!(field_name("q1.c2.feedback"), "quiz.questions[1].choices[2].feedback");
        assert_eq!(field_name("q1.feedback"), "quiz.questions[1].feedback");
        let view = filled().view("n-quiz", &Problems::from([("q0.c0.feedback".to_string(), "Too long.".to_string())]));
        let feedback = &view.questions[0].choices[0].feedback;
        assert_eq!(feedback.id, "n-quiz-q0-c0-feedback");
        assert_eq!(feedback.name, "quiz.questions[0].choices[0].feedback");
        assert_eq!(feedback.value, "Not quite: someone always owns it.");
        assert_eq!(feedback.error.as_deref(), Some("Too long."));
    }

    #[test]
    fn problems_name_their_fields() {
        let mut f = filled();
        f.attempts = "0".into();
        f.questions[0].choices[1].correct = false;
        f.questions[1].answer = "three".into();
        f.questions[2].accepted = " \n".into();
        let problems = f.quiz().unwrap_err();
        let keys: Vec<&str> = problems.keys().map(String::as_str).collect();
        assert_eq!(keys, ["attempts", "q0.choices", "q1.answer", "q2.accepted"]);
    }

    #[test]
    fn edits_add_and_remove_within_bounds() {
        let mut f = filled();
        f.apply(Edit::parse("add_choice-0").unwrap());
        assert_eq!(f.questions[0].choices.len(), 3);
        f.apply(Edit::parse("remove_choice-0-0").unwrap());
        assert_eq!(f.questions[0].choices[0].text, "its owner");
        f.apply(Edit::parse("remove_question-1").unwrap());
        assert_eq!(f.questions.len(), 2);
        f.apply(Edit::parse("remove_question-9").unwrap());
        f.apply(Edit::parse("add_question").unwrap());
        assert_eq!(f.questions.len(), 3);
        assert_eq!(Edit::parse("remove_choice-x"), None);
    }
}

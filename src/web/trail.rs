//! The audit trail's request guard: every handler of a page that shows or
//! changes other people's data takes a [`Trail`] and says whose data it was
//! (or that it shows no one's). The audit log (`privacy::audit`) writes the
//! declaration with its entry; areas name their subjects here without
//! depending on the privacy area.

use rocket::Request;
use serde::Serialize;

/// Who made an audited request without a session: a partner's API key, as
/// (key id, key prefix, partner id). The key's guard sets it; the audit log
/// reads it.
#[derive(Debug, Default, Clone)]
pub struct ApiCaller(pub Option<(i64, String, i64)>);

/// Subjects kept per entry at most; a longer list ends with an item saying
/// how many more there were (pages of people are shorter than this).
pub const MAX_SUBJECTS: usize = 500;

/// One subject of an entry: a person, and the partner or course where it
/// applies; or, for a page about many people at once (a partner's export),
/// the partner or course and an item naming what was shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Subject {
    pub user_id: Option<i64>,
    pub partner_id: Option<i64>,
    pub course_id: Option<i64>,
    pub item: Option<String>,
}

impl Subject {
    pub fn user(id: i64) -> Subject {
        Subject { user_id: Some(id), ..Subject::default() }
    }
    pub fn of_partner(id: i64) -> Subject {
        Subject { partner_id: Some(id), ..Subject::default() }
    }
    pub fn of_course(id: i64) -> Subject {
        Subject { course_id: Some(id), ..Subject::default() }
    }
    pub fn partner(mut self, id: i64) -> Subject {
        self.partner_id = Some(id);
        self
    }
    pub fn course(mut self, id: i64) -> Subject {
        self.course_id = Some(id);
        self
    }
    pub fn item(mut self, item: impl Into<String>) -> Subject {
        self.item = Some(item.into());
        self
    }
}

/// What a handler declared, as the audit log's fairing reads it.
#[derive(Debug, Default)]
pub struct Declaration {
    /// The page shows no one's personal data.
    pub nobody: bool,
    /// The handler named its subjects (possibly none).
    pub named: bool,
    pub subjects: Vec<Subject>,
    /// Subjects beyond [`MAX_SUBJECTS`].
    pub more: usize,
    /// Partners named by the slug of their pages, resolved when the entry is written.
    pub partner_slugs: Vec<String>,
}

/// The request's declaration, kept in its local cache.
#[derive(Debug, Default)]
pub struct Declared(std::sync::Mutex<Declaration>);

impl Declared {
    /// The declaration, leaving an empty one.
    pub fn take(&self) -> Declaration {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A request guard every audited handler takes, to say whose personal data
/// it showed or changed (`user`, `users`, `add`) or that the page shows no
/// one's (`nobody`). The `Audit` fairing writes it with the entry. A page
/// answering 2xx to a GET without declaring anything is logged as an error,
/// and the link walk of every role fails on it.
pub struct Trail<'r>(&'r Declared);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Trail<'r> {
    type Error = std::convert::Infallible;
    async fn from_request(req: &'r Request<'_>) -> rocket::request::Outcome<Self, Self::Error> {
        rocket::request::Outcome::Success(Trail(req.local_cache(Declared::default)))
    }
}

impl Trail<'_> {
    fn with(&self, f: impl FnOnce(&mut Declaration)) -> &Self {
        let mut d = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut d);
        self
    }
    /// This page shows no one's personal data.
    pub fn nobody(&self) -> &Self {
        self.with(|d| d.nobody = true)
    }
    /// The page showed or changed these subjects (possibly none: an empty list).
    pub fn add_all(&self, subjects: impl IntoIterator<Item = Subject>) -> &Self {
        self.with(|d| {
            d.named = true;
            for s in subjects {
                if d.subjects.contains(&s) {
                    continue;
                }
                if d.subjects.len() < MAX_SUBJECTS {
                    d.subjects.push(s);
                } else {
                    d.more += 1;
                }
            }
        })
    }
    pub fn add(&self, subject: Subject) -> &Self {
        self.add_all([subject])
    }
    /// One person's data.
    pub fn user(&self, id: i64) -> &Self {
        self.add(Subject::user(id))
    }
    /// A list of people (possibly empty).
    pub fn users(&self, ids: impl IntoIterator<Item = i64>) -> &Self {
        self.add_all(ids.into_iter().map(Subject::user))
    }
    /// The partner a page under `/partners/<slug>` acts for. The audit log
    /// resolves the slug in the transaction that writes the entry, so the
    /// page pays no lookup of its own (no subject when there is no such
    /// partner: the page answers 404 then).
    pub fn partner_page(&self, slug: &str) -> &Self {
        self.with(|d| {
            d.named = true;
            d.partner_slugs.push(slug.chars().take(200).collect());
        })
    }
    /// People shown as learners of a partner; the partner alone when none.
    pub fn partner_users(&self, partner: i64, ids: impl IntoIterator<Item = i64>) -> &Self {
        let mut list: Vec<Subject> = ids.into_iter().map(|id| Subject::user(id).partner(partner)).collect();
        if list.is_empty() {
            list.push(Subject::of_partner(partner));
        }
        self.add_all(list)
    }
    /// People shown as learners of a course; the course alone when none.
    pub fn course_users(&self, course: i64, ids: impl IntoIterator<Item = i64>) -> &Self {
        let mut list: Vec<Subject> = ids.into_iter().map(|id| Subject::user(id).course(course)).collect();
        if list.is_empty() {
            list.push(Subject::of_course(course));
        }
        self.add_all(list)
    }
}

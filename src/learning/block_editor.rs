//! The Studio's unit editor: a unit's blocks, each in a form of its kind's
//! fields only (a quiz as questions and choices, never TOML), the "add a
//! block" form, the Markdown preview, images uploaded into text, and the
//! new order of blocks, units and sections after a drag and drop.
//!
//! Everything works without JavaScript: a form with a problem comes back
//! with every field as typed and the problem beside its field; adding or
//! removing a question or choice, previewing Markdown and choosing the kind
//! are submit buttons that bring the form back changed. `static/js/studio.js`
//! does the same in the page.

use std::sync::Arc;

use rocket::form::Form;
use rocket::http::{ContentType, CookieJar, Status};
use rocket::{Either, FromForm, State, get, post};
use serde_json::{Value, json};

use crate::db::{Conn, Db, now};
use crate::learning::authoring;
use crate::learning::content::{BlobRef, BlockData, render_markdown};
use crate::learning::package;
use crate::learning::quiz_form::{Edit, Problems, QuizFields};
use crate::learning::service::{self as learning, LearningError};
use crate::learning::studio::CourseFileLimit;
use crate::learning::views::{
    BlockEditorView, CourseLink, FieldView, KindSection, OptionView, ProblemLink, StudioBlock, StudioUnit,
    StudioUnitView,
};
use crate::media::files;
use crate::storage::{self, BlobStore};
use crate::web::csrf::verify_token;
use crate::web::trail::Trail;
use crate::web::upload::{ImageLimit, ImageShape, ImageUpload, Upload, store_image};
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

/// The kinds of block, as the kind chooser lists them.
const KINDS: &[(&str, &str)] = &[
    ("text", "Text"),
    ("video", "Video"),
    ("quiz", "Quiz"),
    ("resource", "Downloadable resource"),
    ("live", "Live session"),
];

fn kind_label(kind: &str) -> &'static str {
    KINDS.iter().find(|(k, _)| *k == kind).map_or("Block", |(_, l)| l)
}

/// What one block form shows: a stored block's values, or what the author
/// just sent with its problems.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    kind: String,
    markdown: String,
    url: String,
    transcript: String,
    title: String,
    starts_at: String,
    link: String,
    /// The file a stored video or resource has now.
    file_now: Option<String>,
    quiz: QuizFields,
    /// Problems of the kind's own fields (`markdown`, `url`, `file`…).
    problems: Problems,
    quiz_problems: Problems,
    notice: Option<String>,
    /// The Markdown rendered for "Preview".
    preview: Option<String>,
}

impl Draft {
    fn new(kind: &str) -> Draft {
        let kind = if KINDS.iter().any(|(k, _)| *k == kind) { kind } else { "text" };
        Draft { kind: kind.to_string(), ..Draft::default() }
    }

    fn of(data: &BlockData) -> Draft {
        let mut d = Draft::new(data.kind());
        match data {
            BlockData::Text { markdown } => d.markdown = markdown.clone(),
            BlockData::Video { url, file, transcript } => {
                d.url = url.clone().unwrap_or_default();
                d.file_now = file.as_ref().map(|f| f.filename.clone());
                d.transcript = transcript.clone().unwrap_or_default();
            }
            BlockData::Quiz(q) => d.quiz = QuizFields::of(q),
            BlockData::Resource { title, file } => {
                d.title = title.clone();
                d.file_now = Some(file.filename.clone());
            }
            BlockData::Live { title, starts_at, link } => {
                d.title = title.clone();
                d.starts_at = starts_at.format("%Y-%m-%dT%H:%M").to_string();
                d.link = link.clone();
            }
        }
        d
    }

    fn has_problems(&self) -> bool {
        !self.problems.is_empty() || !self.quiz_problems.is_empty()
    }

    /// The `block_editor` partial's context. `choose_kind`: the add form,
    /// where the kind is chosen (the others show their own kind only).
    fn view(&self, prefix: &str, unit_id: i64, choose_kind: bool) -> BlockEditorView {
        let field = |kind: &str, name: &str, value: &str| FieldView {
            id: format!("{prefix}-{kind}-{name}"),
            name: name.to_string(),
            value: value.to_string(),
            error: if self.kind == kind { self.problems.get(name).cloned() } else { None },
        };
        let section = |kind: &str| KindSection {
            present: choose_kind || self.kind == kind,
            active: self.kind == kind,
            id: format!("{prefix}-{kind}"),
        };
        let quiz_prefix = format!("{prefix}-quiz");
        let none = Problems::new();
        let mut problems: Vec<ProblemLink> = self
            .problems
            .iter()
            .map(|(k, m)| ProblemLink { id: format!("{prefix}-{}-{k}", self.kind), message: m.clone() })
            .collect();
        problems.extend(
            self.quiz_problems
                .iter()
                .map(|(k, m)| ProblemLink { id: format!("{quiz_prefix}-{}", k.replace('.', "-")), message: m.clone() }),
        );
        BlockEditorView {
            prefix: prefix.to_string(),
            unit_id,
            kind: self.kind.clone(),
            choose_kind,
            kinds: KINDS
                .iter()
                .map(|(value, label)| OptionView { value, label, selected: *value == self.kind })
                .collect(),
            problem_count: problems.len(),
            problems,
            notice: self.notice.clone(),
            text: section("text"),
            video: section("video"),
            quiz_section: section("quiz"),
            resource: section("resource"),
            live: section("live"),
            markdown: field("text", "markdown", &self.markdown),
            image: field("text", "image", ""),
            preview: self.preview.clone(),
            url: field("video", "url", &self.url),
            video_file: field("video", "file", ""),
            transcript: field("video", "transcript", &self.transcript),
            resource_title: field("resource", "title", &self.title),
            resource_file: field("resource", "file", ""),
            live_title: field("live", "title", &self.title),
            starts_at: field("live", "starts_at", &self.starts_at),
            link: field("live", "link", &self.link),
            file_now: self.file_now.clone(),
            quiz: self.quiz.view(&quiz_prefix, if self.kind == "quiz" { &self.quiz_problems } else { &none }),
        }
    }
}

/// Which form a draft fills: the add form, or a stored block's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    New,
    Block(i64),
}

/// The unit editor's page context: every block in its form (the one
/// `draft` is for shows the draft instead), and the add form.
fn unit_page(
    conn: &mut Conn,
    user: &crate::kernel::SessionUser,
    id: i64,
    new_kind: &str,
    draft: Option<(Target, Draft)>,
) -> AppResult<Page> {
    let (course, unit) = authoring::authorable_unit(conn, user, id)?;
    let (draft_target, draft) = match draft {
        Some((t, d)) => (Some(t), Some(d)),
        None => (None, None),
    };
    let mut blocks = Vec::new();
    for b in learning::blocks_of(conn, unit.id)? {
        let data = learning::block_data(&b)?;
        let heading = match &data {
            BlockData::Quiz(q) => Some(q.title.clone()),
            BlockData::Resource { title, .. } | BlockData::Live { title, .. } => Some(title.clone()),
            _ => None,
        };
        let editing = draft_target == Some(Target::Block(b.id));
        let form = match (&draft, editing) {
            (Some(d), true) => {
                let mut d = d.clone();
                d.file_now = Draft::of(&data).file_now;
                d
            }
            _ => Draft::of(&data),
        };
        blocks.push(StudioBlock {
            id: b.id,
            kind: data.kind(),
            kind_label: kind_label(data.kind()),
            heading,
            editing,
            form: form.view(&format!("b{}", b.id), unit.id, false),
        });
    }
    let (new_draft, adding) = match (draft_target, draft) {
        (Some(Target::New), Some(d)) => (d, true),
        _ => (Draft::new(new_kind), false),
    };
    let status = if new_draft.has_problems() && adding || blocks.iter().any(|b| b.editing && b.form.problem_count != 0)
    {
        Status::UnprocessableEntity
    } else {
        Status::Ok
    };
    let title = format!("Edit unit: {}", unit.title);
    let view = StudioUnitView {
        course: CourseLink { slug: course.slug, title: course.title },
        unit: StudioUnit { id: unit.id, title: unit.title },
        blocks,
        adding,
        new_block: new_draft.view("n", unit.id, true),
    };
    Ok(Page::view("studio/unit", title, view).with_status(status))
}

#[get("/studio/units/<id>?<kind>")]
pub async fn unit(db: &State<Db>, user: CurrentUser, trail: Trail<'_>, id: i64, kind: Option<&str>) -> AppResult<Page> {
    // A unit's content.
    trail.nobody();
    let kind = kind.unwrap_or("text").to_string();
    db.run(move |conn| unit_page(conn, &user, id, &kind, None)).await
}

#[derive(FromForm)]
pub struct BlockForm {
    #[field(default = String::new())]
    csrf_token: String,
    #[field(default = String::new())]
    action: String,
    /// A change that is not a save: `preview`, `kind`, `upload_image`, or a
    /// quiz edit (`add_question`, `remove_choice-0-2`…).
    #[field(default = String::new())]
    edit: String,
    #[field(default = 0)]
    block: i64,
    #[field(default = String::new())]
    kind: String,
    #[field(default = String::new())]
    markdown: String,
    #[field(default = String::new())]
    url: String,
    #[field(default = String::new())]
    transcript: String,
    #[field(default = String::new())]
    title: String,
    #[field(default = String::new())]
    starts_at: String,
    #[field(default = String::new())]
    link: String,
    quiz: QuizFields,
    file: Upload<CourseFileLimit>,
    /// An image to put into a text block.
    image: Upload<ImageLimit>,
}

/// Builds block data from a draft; `file` is the uploaded file, if any. A
/// refusal names the field it is about.
fn block_from_draft(
    d: &Draft,
    file: Option<BlobRef>,
    previous: Option<BlockData>,
) -> Result<BlockData, (&'static str, String)> {
    let prev_file = |p: &Option<BlockData>| match p {
        Some(BlockData::Video { file, .. }) => file.clone(),
        Some(BlockData::Resource { file, .. }) => Some(file.clone()),
        _ => None,
    };
    let no = |field: &'static str, m: &str| Err((field, m.to_string()));
    match d.kind.as_str() {
        "text" => {
            if d.markdown.trim().is_empty() {
                return no("markdown", "A text block needs some text.");
            }
            Ok(BlockData::Text { markdown: d.markdown.trim_end().to_string() })
        }
        "video" => {
            let url = Some(d.url.trim().to_string()).filter(|u| !u.is_empty());
            let file = file.or_else(|| if url.is_none() { prev_file(&previous) } else { None });
            match (&url, &file) {
                (Some(u), None) if !package::allowed_video_url(u) => {
                    no("url", "Videos are embedded from YouTube or Vimeo (https) only; or upload a video file.")
                }
                (None, None) => no("url", "Give a YouTube or Vimeo link, or upload a video file."),
                _ => Ok(BlockData::Video {
                    url,
                    file,
                    transcript: Some(d.transcript.trim().to_string()).filter(|t| !t.is_empty()),
                }),
            }
        }
        "resource" => {
            let title = d.title.trim();
            if title.is_empty() {
                return no("title", "A resource needs a title.");
            }
            let Some(file) = file.or_else(|| prev_file(&previous)) else {
                return no("file", "Please choose the file to offer.");
            };
            Ok(BlockData::Resource { title: title.to_string(), file })
        }
        "live" => {
            if d.title.trim().is_empty() {
                return no("title", "A live session needs a title.");
            }
            let starts_at = match authoring::parse_time(&d.starts_at, "start") {
                Ok(Some(t)) => t,
                Ok(None) => return no("starts_at", "Please give the session's start time."),
                Err(e) => return no("starts_at", &e.to_string()),
            };
            let link = d.link.trim();
            if !link.starts_with("https://") || url::Url::parse(link).is_err() {
                return no("link", "The session link must be an https:// address.");
            }
            Ok(BlockData::Live { title: d.title.trim().to_string(), starts_at, link: link.to_string() })
        }
        _ => no("kind", "Choose a block kind: text, video, quiz, resource or live session."),
    }
}

/// The field a limit refusal at save is about, by kind.
fn main_field(kind: &str) -> &'static str {
    match kind {
        "video" => "transcript",
        "resource" | "live" => "title",
        _ => "markdown",
    }
}

/// An uploaded file's name, reduced to safe characters.
fn upload_name(raw_name: Option<&str>, fallback: &str) -> String {
    let name = raw_name.unwrap_or(fallback);
    let name: String = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(fallback)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_ ".contains(*c))
        .take(100)
        .collect();
    if name.trim().is_empty() { fallback.to_string() } else { name }
}

/// The Markdown that shows an uploaded image, its file name as the
/// description until the author writes a better one.
fn image_markdown(key: &str, name: &str) -> String {
    let alt: String = name.rsplit_once('.').map_or(name, |(stem, _)| stem).replace(['[', ']', '\\'], " ");
    format!("![{}](/media/{key})", alt.trim())
}

#[post("/studio/units/<id>/blocks", data = "<form>")]
pub async fn blocks(
    trail: Trail<'_>,
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    cookies: &CookieJar<'_>,
    id: i64,
    form: Form<BlockForm>,
) -> AppResult<Either<Flash, Page>> {
    trail.nobody();
    verify_token(cookies, &form.csrf_token)?;
    let back = format!("/studio/units/{id}");
    let action = form.action.clone();
    let block_id = form.block;
    if matches!(action.as_str(), "up" | "down" | "delete") {
        let (u, a) = (user.0.clone(), action.clone());
        let r = db
            .run(move |conn| {
                let (_, unit) = authoring::authorable_unit(conn, &u, id)?;
                Ok::<_, AppError>(authoring::block_action(conn, &unit, block_id, &a))
            })
            .await?;
        return Ok(Either::Left(match r {
            Ok(()) => Flash::success(back, if action == "delete" { "Block deleted." } else { "Block moved." }),
            Err(LearningError::Invalid(m)) => Flash::error(back, m),
            Err(e) => return Err(e.into()),
        }));
    }
    let target = match action.as_str() {
        "add" => Target::New,
        "update" => Target::Block(block_id),
        _ => return Err(AppError::Unprocessable("Unknown action: add a block, or save, move or delete one.".into())),
    };
    let mut draft = Draft::new(&form.kind);
    draft.markdown = form.markdown.clone();
    draft.url = form.url.clone();
    draft.transcript = form.transcript.clone();
    draft.title = form.title.clone();
    draft.starts_at = form.starts_at.clone();
    draft.link = form.link.clone();
    // A kind switched to Quiz in the page starts from one blank question.
    draft.quiz = if draft.kind == "quiz" { form.quiz.clone() } else { QuizFields::default() };
    let u = user.0.clone();
    let show = move |draft: Draft| {
        let kind = draft.kind.clone();
        let u = u.clone();
        async move { db.run(move |conn| unit_page(conn, &u, id, &kind, Some((target, draft)))).await.map(Either::Right) }
    };
    // The unit must be the author's before anything is stored for it.
    let u = user.0.clone();
    db.run(move |conn| authoring::authorable_unit(conn, &u, id).map(|_| ()).map_err(AppError::from)).await?;

    // An image for a text block: re-encoded without metadata, stored, and
    // its Markdown put at the end of the text.
    if draft.kind == "text" && form.image.is_chosen() {
        let name = upload_name(form.image.raw_name(), "image");
        match store_image(db, blobs, &form.image, ImageShape::Fit(1600)).await? {
            Ok(key) => {
                let reference = image_markdown(&key, &name);
                let text = draft.markdown.trim_end();
                draft.markdown = if text.is_empty() { reference } else { format!("{text}\n\n{reference}") };
                draft.notice =
                    Some("The image is uploaded; its Markdown is at the end of the text. Describe the image between the brackets.".into());
            }
            Err(m) => {
                draft.problems.insert("image".into(), m);
                return show(draft).await;
            }
        }
    }
    match form.edit.as_str() {
        "" => {}
        "upload_image" => {
            if draft.notice.is_none() {
                draft.problems.insert("image".into(), "Please choose an image file (PNG, JPEG, GIF or WebP).".into());
            }
            return show(draft).await;
        }
        "kind" => return show(draft).await,
        "preview" => {
            draft.preview = Some(render_markdown(&draft.markdown));
            return show(draft).await;
        }
        other => match Edit::parse(other) {
            Some(edit) => {
                draft.quiz.apply(edit);
                return show(draft).await;
            }
            None => return Err(AppError::Unprocessable("Unknown change to the form.".into())),
        },
    }

    // A quiz is checked before any file is read (it has none).
    let quiz = if draft.kind == "quiz" {
        match draft.quiz.quiz() {
            Ok(q) => Some(q),
            Err(problems) => {
                draft.quiz_problems = problems;
                return show(draft).await;
            }
        }
    } else {
        None
    };
    let upload = match &form.file {
        Upload::File { bytes, raw_name, .. } if matches!(draft.kind.as_str(), "video" | "resource") => {
            Some((bytes.clone(), upload_name(raw_name.as_deref(), "file")))
        }
        Upload::TooLarge if matches!(draft.kind.as_str(), "video" | "resource") => {
            draft.problems.insert("file".into(), Upload::<CourseFileLimit>::too_large_message());
            return show(draft).await;
        }
        _ => None,
    };
    let blobs = blobs.inner().clone();
    let u = user.0.clone();
    let d = draft.clone();
    let saved = db
        .run(move |conn| {
            let (course, unit) = authoring::authorable_unit(conn, &u, id)?;
            // The file's bytes decide its type, against what the block offers.
            let usage = if d.kind == "video" { files::Use::Video } else { files::Use::Resource };
            let file = match upload {
                Some((bytes, name)) => match files::check(&bytes, usage, &name) {
                    Ok(kind) => {
                        let key = storage::store(conn, blobs.as_ref(), &bytes, kind.content_type)
                            .map_err(|e| AppError::Internal(e.to_string()))?;
                        Some(BlobRef {
                            key,
                            filename: files::named(&name, kind.extension),
                            content_type: kind.content_type.to_string(),
                        })
                    }
                    Err(e) => return Ok(Err(("file", e.to_string()))),
                },
                None => None,
            };
            let previous = match target {
                Target::Block(b) => Some(learning::block_data(&learning::block_in_course(conn, course.id, b)?)?),
                Target::New => None,
            };
            let data = match quiz {
                Some(q) => BlockData::Quiz(q),
                None => match block_from_draft(&d, file, previous) {
                    Ok(data) => data,
                    Err(e) => return Ok(Err(e)),
                },
            };
            let r = match target {
                Target::New => authoring::add_block(conn, &unit, &data, now()),
                Target::Block(b) => authoring::update_block(conn, &unit, b, &data, now()).map(|()| b),
            };
            match r {
                Ok(b) => Ok(Ok(b)),
                Err(LearningError::Invalid(m)) => Ok(Err((main_field(&d.kind), m))),
                Err(e) => Err(AppError::from(e)),
            }
        })
        .await?;
    match saved {
        Ok(_) => {
            Ok(Either::Left(Flash::success(back, if target == Target::New { "Block added." } else { "Block saved." })))
        }
        Err((field, message)) => {
            if draft.kind == "quiz" {
                draft.quiz_problems.insert("questions".into(), message);
            } else {
                draft.problems.insert(field.into(), message);
            }
            show(draft).await
        }
    }
}

#[derive(FromForm)]
pub struct PreviewForm {
    #[field(default = String::new())]
    markdown: String,
}

/// Markdown as the unit page shows it, through the same sanitising
/// renderer: the editor's live preview.
#[post("/studio/preview", data = "<form>")]
pub async fn preview(
    user: CurrentUser,
    trail: Trail<'_>,
    form: CsrfForm<PreviewForm>,
) -> AppResult<(ContentType, String)> {
    trail.nobody();
    if !user.is_staff() && !user.0.roles.iter().any(|(r, _)| authoring_role(*r)) {
        return Err(AppError::Forbidden("The preview is for course authors.".into()));
    }
    let markdown = form.form.markdown;
    let html = tokio::task::spawn_blocking(move || render_markdown(&markdown))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((ContentType::HTML, html))
}

fn authoring_role(r: crate::kernel::Role) -> bool {
    use crate::kernel::Role;
    matches!(r, Role::MemberAdmin | Role::Instructor | Role::CourseStaff)
}

/// An image for a text block, from the editor's script: re-encoded without
/// metadata and stored; the answer is the Markdown that shows it.
#[post("/studio/units/<id>/images", data = "<form>")]
pub async fn image(
    trail: Trail<'_>,
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    cookies: &CookieJar<'_>,
    id: i64,
    form: Form<ImageUpload>,
) -> AppResult<(Status, rocket::serde::json::Json<Value>)> {
    trail.nobody();
    verify_token(cookies, &form.csrf_token)?;
    let u = user.0.clone();
    db.run(move |conn| authoring::authorable_unit(conn, &u, id).map(|_| ()).map_err(AppError::from)).await?;
    let name = upload_name(form.image.raw_name(), "image");
    match store_image(db, blobs, &form.image, ImageShape::Fit(1600)).await? {
        Ok(key) => Ok((
            Status::Created,
            json!({ "url": format!("/media/{key}"), "markdown": image_markdown(&key, &name) }).into(),
        )),
        Err(m) => Ok((Status::UnprocessableEntity, json!({ "error": m }).into())),
    }
}

#[derive(FromForm)]
pub struct OrderForm {
    /// Ids in their new order, separated by commas.
    #[field(default = String::new())]
    order: String,
    /// For units: their section.
    #[field(default = 0)]
    section: i64,
}

fn ids(order: &str) -> Result<Vec<i64>, AppError> {
    order
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| AppError::Unprocessable("The order is a list of ids separated by commas.".into()))
}

/// A unit's blocks in a new order (the editor's drag and drop).
#[post("/studio/units/<id>/order", data = "<form>")]
pub async fn block_order(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    id: i64,
    form: CsrfForm<OrderForm>,
) -> AppResult<Status> {
    trail.nobody();
    let order = ids(&form.form.order)?;
    db.run(move |conn| {
        let (_, unit) = authoring::authorable_unit(conn, &user, id)?;
        authoring::reorder_blocks(conn, &unit, &order)?;
        Ok::<_, AppError>(Status::NoContent)
    })
    .await
}

/// A course's sections (`section` 0) or one section's units in a new order.
#[post("/studio/courses/<slug>/order", data = "<form>")]
pub async fn outline_order(
    db: &State<Db>,
    user: CurrentUser,
    trail: Trail<'_>,
    slug: &str,
    form: CsrfForm<OrderForm>,
) -> AppResult<Status> {
    trail.nobody();
    let order = ids(&form.form.order)?;
    let section = form.form.section;
    let slug = slug.to_string();
    db.run(move |conn| {
        let course = authoring::authorable(conn, &user, &slug)?;
        if section == 0 {
            authoring::reorder_sections(conn, &course, &order)?;
        } else {
            authoring::reorder_units(conn, &course, section, &order)?;
        }
        authoring::queue_reindex(conn, course.id)?;
        Ok::<_, AppError>(Status::NoContent)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_described_by_its_file_name() {
        assert_eq!(image_markdown("k1", "ownership [diagram].png"), "![ownership  diagram](/media/k1)");
    }
}

//! Profiles (ACC-7): what other signed-in people see of someone is their
//! username, an avatar, and, only when they chose full visibility, a short
//! bio and the courses they take. Real names and email addresses never
//! appear. Avatars go through the one image path (re-encoded, no metadata).

use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rocket::form::Form;
use rocket::http::CookieJar;
use rocket::{FromForm, State, get, post};

use crate::db::schema::{course_runs, courses, enrollments, profiles, users};
use crate::db::{Conn, Db, now};
use crate::storage::BlobStore;
use crate::web::{AppError, AppResult, CsrfForm, CurrentUser, Flash, Page};

pub const BIO_MAX: usize = 500;
/// Avatars are stored as square thumbnails of this side (shown at 96 px on
/// profiles, 24 px beside forum posts).
pub const AVATAR_SIDE: u32 = 192;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = profiles)]
pub struct Profile {
    pub user_id: i64,
    pub bio: String,
    pub avatar_key: Option<String>,
    pub visibility: String,
    pub updated_at: NaiveDateTime,
}

impl Profile {
    pub fn full(&self) -> bool {
        self.visibility == "full"
    }
}

pub fn of(conn: &mut Conn, user_id: i64) -> QueryResult<Option<Profile>> {
    profiles::table.find(user_id).select(Profile::as_select()).first(conn).optional()
}

fn upsert(
    conn: &mut Conn,
    user_id: i64,
    bio: Option<&str>,
    visibility: Option<&str>,
    avatar: Option<Option<&str>>,
) -> QueryResult<()> {
    let current = of(conn, user_id)?;
    let now = now();
    let bio = bio.map(str::to_string).or(current.as_ref().map(|p| p.bio.clone())).unwrap_or_default();
    let visibility =
        visibility.map(str::to_string).or(current.as_ref().map(|p| p.visibility.clone())).unwrap_or("limited".into());
    let avatar = match avatar {
        Some(a) => a.map(str::to_string),
        None => current.as_ref().and_then(|p| p.avatar_key.clone()),
    };
    if current.is_some() {
        diesel::update(profiles::table.find(user_id))
            .set((
                profiles::bio.eq(bio),
                profiles::visibility.eq(visibility),
                profiles::avatar_key.eq(avatar),
                profiles::updated_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        diesel::insert_into(profiles::table)
            .values((
                profiles::user_id.eq(user_id),
                profiles::bio.eq(bio),
                profiles::visibility.eq(visibility),
                profiles::avatar_key.eq(avatar),
                profiles::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

#[get("/profile")]
pub async fn edit_page(db: &State<Db>, user: CurrentUser) -> AppResult<Page> {
    let id = user.id;
    let username = user.username.clone();
    let p = db.run(move |conn| Ok::<_, AppError>(of(conn, id)?)).await?;
    let view = super::views::ProfileEdit {
        username,
        bio: p.as_ref().map(|p| p.bio.clone()).unwrap_or_default(),
        full: p.as_ref().is_some_and(Profile::full),
        avatar: p.and_then(|p| p.avatar_key),
        bio_max: BIO_MAX,
    };
    Ok(Page::view("accounts/profile_edit", "Your profile", view))
}

#[derive(FromForm)]
pub struct ProfileForm {
    #[field(default = String::new())]
    bio: String,
    #[field(default = String::new())]
    visibility: String,
}

#[post("/profile", data = "<form>")]
pub async fn save(db: &State<Db>, user: CurrentUser, form: CsrfForm<ProfileForm>) -> AppResult<Flash> {
    let f = form.form;
    let bio = f.bio.trim().to_string();
    if bio.chars().count() > BIO_MAX {
        return Ok(Flash::error("/profile", format!("A bio can be at most {BIO_MAX} characters.")));
    }
    if bio.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
        return Ok(Flash::error("/profile", "The bio contains characters we cannot store."));
    }
    let visibility = match f.visibility.as_str() {
        "limited" | "full" => f.visibility.clone(),
        _ => return Ok(Flash::error("/profile", "Choose who sees your bio and courses.")),
    };
    let id = user.id;
    db.run(move |conn| upsert(conn, id, Some(&bio), Some(&visibility), None).map_err(AppError::from)).await?;
    Ok(Flash::success("/profile", "Your profile is saved."))
}

#[post("/profile/avatar", data = "<form>")]
pub async fn avatar(
    db: &State<Db>,
    blobs: &State<Arc<dyn BlobStore>>,
    user: CurrentUser,
    cookies: &CookieJar<'_>,
    form: Form<crate::web::upload::ImageUpload>,
) -> AppResult<Flash> {
    crate::web::csrf::verify_token(cookies, &form.csrf_token)?;
    let key = match crate::web::upload::store_image(
        db,
        blobs,
        &form.image,
        crate::web::upload::ImageShape::Square(AVATAR_SIDE),
    )
    .await?
    {
        Ok(k) => k,
        Err(m) => return Ok(Flash::error("/profile", m)),
    };
    let id = user.id;
    db.run(move |conn| upsert(conn, id, None, None, Some(Some(&key))).map_err(AppError::from)).await?;
    Ok(Flash::success("/profile", "Your avatar is updated."))
}

#[post("/profile/avatar/remove", data = "<_form>")]
pub async fn remove_avatar(db: &State<Db>, user: CurrentUser, _form: crate::web::csrf::CsrfOnly) -> AppResult<Flash> {
    let id = user.id;
    db.run(move |conn| upsert(conn, id, None, None, Some(None)).map_err(AppError::from)).await?;
    Ok(Flash::success("/profile", "Your avatar is removed."))
}

/// Someone's profile as another signed-in person sees it.
#[get("/u/<username>")]
pub async fn show(db: &State<Db>, viewer: CurrentUser, username: &str) -> AppResult<Page> {
    let username = username.to_string();
    let viewer_id = viewer.id;
    let view = db
        .run(move |conn| {
            let found: Option<(i64, String)> = users::table
                .filter(users::username.eq(&username))
                .filter(users::status.eq(super::model::AccountStatus::Active.as_str()))
                .select((users::id, users::username))
                .first(conn)
                .optional()?;
            let Some((id, username)) = found else { return Err(AppError::NotFound) };
            let p = of(conn, id)?;
            let full = p.as_ref().is_some_and(Profile::full);
            let courses: Vec<String> = if full {
                enrollments::table
                    .inner_join(course_runs::table.inner_join(courses::table))
                    .filter(enrollments::user_id.eq(id))
                    .filter(enrollments::status.eq("active"))
                    .filter(courses::published.eq(true))
                    .order(courses::title.asc())
                    .select(courses::title)
                    .load(conn)?
            } else {
                Vec::new()
            };
            Ok(super::views::Profile {
                username,
                own: id == viewer_id,
                full,
                avatar: p.as_ref().and_then(|p| p.avatar_key.clone()),
                bio: if full { p.map(|p| p.bio) } else { None },
                courses,
            })
        })
        .await?;
    Ok(Page::view("accounts/profile", "Profile", view))
}

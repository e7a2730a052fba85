//! Static files (CSS, JS, images) embedded in the binary, so one executable is
//! the whole site. Served with long caching: names change when content does.

use std::path::PathBuf;

use rocket::http::{ContentType, Header};
use rocket::response::Responder;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct StaticFiles;

#[derive(Responder)]
pub struct Asset {
    body: Vec<u8>,
    content_type: ContentType,
    cache: Header<'static>,
}

#[rocket::get("/static/<path..>")]
pub fn asset(path: PathBuf) -> Option<Asset> {
    let name = path.to_str()?.replace('\\', "/");
    let file = StaticFiles::get(&name)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let content_type = ContentType::from_extension(ext).unwrap_or(ContentType::Binary);
    Some(Asset {
        body: file.data.into_owned(),
        content_type,
        cache: Header::new("Cache-Control", "public, max-age=3600"),
    })
}

/// Liveness for load balancers (and the benchmark's baseline): plain text,
/// no database, no template.
#[rocket::get("/healthz")]
pub fn healthz() -> &'static str {
    "ok"
}

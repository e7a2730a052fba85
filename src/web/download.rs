//! A file sent as a download (or inline), with its type and a
//! Content-Disposition header whose file name is reduced to safe characters.

use rocket::http::ContentType;

/// A file sent with its type and a Content-Disposition header.
#[derive(rocket::Responder)]
pub struct Download<B> {
    pub body: B,
    pub content_type: ContentType,
    pub disposition: rocket::http::Header<'static>,
}

impl<B> Download<B> {
    pub fn new(body: B, content_type: ContentType, filename: &str, inline: bool) -> Self {
        let safe: String = filename.chars().filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c)).collect();
        let disposition = format!("{}; filename=\"{}\"", if inline { "inline" } else { "attachment" }, safe);
        Download { body, content_type, disposition: rocket::http::Header::new("Content-Disposition", disposition) }
    }
}

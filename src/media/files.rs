//! Uploaded files that are not images: what a course may offer (a video, a
//! resource to download) and how each is served. The type of a file is read
//! from its bytes (its magic number), never from its name or the type the
//! uploader's browser claimed, and checked against an allow-list per use.
//!
//! Nothing on the allow-lists is active content: no HTML, SVG, XML,
//! JavaScript, Flash or executables. Plain text is accepted, but text that
//! opens with markup is refused, and text is always served as a download.
//! [`Served`] says how a stored file goes out: a type from this module's own
//! list, `nosniff`, a `sandbox` Content-Security-Policy, and
//! `Content-Disposition: attachment` unless the file is a PDF or a video the
//! page plays. Files stored before these checks are classified again when
//! served, so an old upload of active content goes out as an opaque download.

/// What an uploaded file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A video file played by the unit page's `<video>` element.
    Video,
    /// A file a learner downloads from a unit.
    Resource,
}

/// What the bytes of an accepted file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub content_type: &'static str,
    /// The usual extension, without the dot.
    pub extension: &'static str,
    /// Shown in the browser rather than downloaded (PDF, media).
    pub inline: bool,
}

const fn kind(content_type: &'static str, extension: &'static str, inline: bool) -> Kind {
    Kind { content_type, extension, inline }
}

/// Videos the page can play: every current browser plays these containers.
const VIDEOS: &[Kind] =
    &[kind("video/mp4", "mp4", true), kind("video/webm", "webm", true), kind("video/ogg", "ogv", true)];

/// Files a course may offer for download. Raster images are offered as they
/// are (not re-encoded: the author's file is the point), so they download
/// rather than display.
const RESOURCES: &[Kind] = &[
    kind("application/pdf", "pdf", true),
    kind("image/png", "png", false),
    kind("image/jpeg", "jpg", false),
    kind("image/gif", "gif", false),
    kind("image/webp", "webp", false),
    kind("text/plain; charset=utf-8", "txt", false),
    kind("application/zip", "zip", false),
    kind("application/epub+zip", "epub", false),
    kind("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", false),
    kind("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", false),
    kind("application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx", false),
    kind("application/vnd.oasis.opendocument.text", "odt", false),
    kind("application/vnd.oasis.opendocument.spreadsheet", "ods", false),
    kind("application/vnd.oasis.opendocument.presentation", "odp", false),
    kind("application/msword", "doc", false),
    kind("application/vnd.ms-excel", "xls", false),
    kind("application/vnd.ms-powerpoint", "ppt", false),
    kind("audio/mpeg", "mp3", false),
    kind("audio/ogg", "ogg", false),
    kind("audio/x-wav", "wav", false),
    kind("video/mp4", "mp4", false),
    kind("video/webm", "webm", false),
];

/// Said to the author whose file was refused.
pub const VIDEO_TYPES: &str = "MP4, WebM or Ogg video";
pub const RESOURCE_TYPES: &str = "PDF, PNG, JPEG, GIF or WebP image, plain text, ZIP, EPUB, Word, Excel, \
     PowerPoint or OpenDocument file, MP3, Ogg or WAV audio, MP4 or WebM video";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{name} is not a file type a course can offer here ({found}). Accepted: {accepted}.")]
    Refused { name: String, found: String, accepted: &'static str },
    #[error("{name} is empty.")]
    Empty { name: String },
}

/// The type of `bytes` if it is on the allow-list for `usage`; `name` is only
/// for the message.
pub fn check(bytes: &[u8], usage: Use, name: &str) -> Result<Kind, FileError> {
    let accepted = match usage {
        Use::Video => VIDEO_TYPES,
        Use::Resource => RESOURCE_TYPES,
    };
    if bytes.is_empty() {
        return Err(FileError::Empty { name: name.to_string() });
    }
    let found = sniff(bytes);
    let allowed = match usage {
        Use::Video => VIDEOS,
        Use::Resource => RESOURCES,
    };
    match found.and_then(|ct| allowed.iter().find(|k| k.content_type == ct)) {
        Some(k) => Ok(*k),
        None => Err(FileError::Refused { name: name.to_string(), found: describe(bytes, found), accepted }),
    }
}

/// The content type the bytes carry, in this module's own spelling, or
/// `None` when they are nothing it knows.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if let Some(t) = infer::get(bytes) {
        let ct = match t.mime_type() {
            "audio/ogg" | "video/ogg" | "application/ogg" => "video/ogg",
            "audio/wav" | "audio/x-wav" | "audio/vnd.wave" => "audio/x-wav",
            "video/x-m4v" => "video/mp4",
            // OLE compound files: infer names each Office format by its
            // stream; anything else in that container is refused below.
            other => other,
        };
        if let Some(k) = VIDEOS.iter().chain(RESOURCES).find(|k| k.content_type == ct) {
            return Some(k.content_type);
        }
        // infer recognises HTML, XML and shell scripts as text: never accepted.
        if t.matcher_type() != infer::MatcherType::Text {
            return None;
        }
    }
    plain_text(bytes).then_some("text/plain; charset=utf-8")
}

/// UTF-8 without control characters (other than tab, line breaks and form
/// feed) and not opening with markup: a browser told `nosniff` and given it as
/// a download cannot run it, and refusing markup keeps an author from
/// believing an HTML page will display.
fn plain_text(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    let body = text.trim_start_matches('\u{feff}').trim_start();
    if body.starts_with('<') {
        return false;
    }
    text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
}

fn describe(bytes: &[u8], found: Option<&str>) -> String {
    if let Some(ct) = found {
        return format!("it is {ct}");
    }
    match infer::get(bytes) {
        Some(t) => format!("it is {}", t.mime_type()),
        None if std::str::from_utf8(bytes).is_ok() => "it is text with markup or control characters".into(),
        None => "its type is unknown".into(),
    }
}

/// How a stored file goes out to a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub content_type: String,
    pub inline: bool,
    /// The name offered for saving, its extension matching the type.
    pub filename: String,
}

/// The Content-Security-Policy of every response carrying a user's file: it
/// may load nothing, run nothing and is its own opaque origin.
pub const CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// How to serve a stored file of `usage`, classified again from its bytes so
/// that whatever was stored before the checks existed is served safely.
pub fn serve(bytes: &[u8], usage: Use, filename: &str) -> Served {
    match check(bytes, usage, filename).or_else(|_| check(bytes, Use::Resource, filename)) {
        Ok(k) => Served {
            content_type: k.content_type.to_string(),
            inline: k.inline && (usage == Use::Video || k.content_type == "application/pdf"),
            filename: named(filename, k.extension),
        },
        Err(_) => {
            Served { content_type: "application/octet-stream".into(), inline: false, filename: named(filename, "bin") }
        }
    }
}

/// `filename` kept when its extension already says `extension`, else with it
/// appended, so a saved file opens as what it is.
pub fn named(filename: &str, extension: &str) -> String {
    let lower = filename.to_ascii_lowercase();
    let same = lower.rsplit_once('.').is_some_and(|(_, ext)| {
        ext == extension
            || matches!(
                (ext, extension),
                ("jpeg", "jpg") | ("text", "txt") | ("csv", "txt") | ("md", "txt") | ("m4v", "mp4")
            )
    });
    if same { filename.to_string() } else { format!("{filename}.{extension}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
    const MP4: &[u8] =
        &[0, 0, 0, 0x18, b'f', b't', b'y', b'p', b'i', b's', b'o', b'm', 0, 0, 2, 0, b'i', b's', b'o', b'm'];

    #[test]
    fn markup_and_scripts_are_refused_or_inert() {
        for (bytes, name) in [
            (&b"<!DOCTYPE html><html><script>alert(1)</script></html>"[..], "page.html"),
            (&b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>"[..], "logo.svg"),
            (&b"  <?xml version=\"1.0\"?><x/>"[..], "data.xml"),
            (&b"\xef\xbb\xbf<html>"[..], "bom.html"),
        ] {
            let e = check(bytes, Use::Resource, name).unwrap_err();
            assert!(e.to_string().contains("Accepted: PDF"), "{e}");
            assert_eq!(serve(bytes, Use::Resource, name).content_type, "application/octet-stream");
        }
        // Script as plain text is a download: never inline, never a script type.
        let js = check(b"fetch('/staff').then(r => r.text())\n", Use::Resource, "x.js").unwrap();
        assert_eq!(js.content_type, "text/plain; charset=utf-8");
        let served = serve(b"alert(1)", Use::Resource, "x.js");
        assert!(!served.inline);
        assert_eq!(served.filename, "x.js.txt");
        // A "video" that is HTML is refused with the accepted types named.
        let e = check(b"<html><script>alert(1)</script>", Use::Video, "v.mp4").unwrap_err();
        assert!(e.to_string().contains("MP4, WebM or Ogg video"), "{e}");
    }

    #[test]
    fn course_files_are_told_by_their_bytes() {
        assert_eq!(check(PDF, Use::Resource, "notes").unwrap().content_type, "application/pdf");
        assert!(serve(PDF, Use::Resource, "notes").inline);
        assert_eq!(serve(PDF, Use::Resource, "notes").filename, "notes.pdf");
        assert_eq!(check(MP4, Use::Video, "a.mp4").unwrap().content_type, "video/mp4");
        assert!(serve(MP4, Use::Video, "a.mp4").inline);
        assert!(!serve(MP4, Use::Resource, "a.mp4").inline);
        assert!(check(PDF, Use::Video, "a.pdf").is_err());
        assert_eq!(check(b"name,score\nada,3\n", Use::Resource, "s.csv").unwrap().extension, "txt");
        assert_eq!(named("s.csv", "txt"), "s.csv");
        assert!(matches!(check(b"", Use::Resource, "e"), Err(FileError::Empty { .. })));
        assert!(check(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", Use::Resource, "a.exe").is_err());
    }
}

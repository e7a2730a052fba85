//! User content is untrusted content: a file someone uploaded is typed by its
//! bytes against an allow-list (Studio and course packages alike) and is
//! never served as active content from the site's origin, including files
//! stored before those checks existed.

use diesel::prelude::*;
use lyceum::db::schema::{blob_files, blocks};
use lyceum::learning::content::{BlobRef, BlockData};
use rocket::http::Status;
use rocket::local::asynchronous::LocalResponse;

use crate::common::TestApp;
use crate::learning::{multipart, seed_course, staff_browser};
use crate::on_both;

pub const HTML: &[u8] =
    b"<!DOCTYPE html><html><body><script>document.title='PWNED';fetch('/staff')</script>hello</body></html>";
pub const SVG: &[u8] = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>document.title='PWNED'</script></svg>";
pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
pub const MP4: &[u8] =
    &[0, 0, 0, 0x18, b'f', b't', b'y', b'p', b'i', b's', b'o', b'm', 0, 0, 2, 0, b'i', b's', b'o', b'm', 0, 0, 0, 8];

fn blob_count(app: &TestApp) -> i64 {
    blob_files::table.count().get_result(&mut app.db().get().unwrap()).unwrap()
}

/// The newest block of `unit` (the one just added).
fn newest_block(app: &TestApp, unit: i64) -> i64 {
    blocks::table
        .filter(blocks::unit_id.eq(unit))
        .order(blocks::id.desc())
        .select(blocks::id)
        .first(&mut app.db().get().unwrap())
        .unwrap()
}

async fn add_block(app: &TestApp, unit: i64, kind: &str, title: &str, file: (&str, &[u8])) -> String {
    let token = app.csrf().await;
    let (ct, body) = multipart(
        &[("csrf_token", &token), ("action", "add"), ("kind", kind), ("title", title)],
        Some(("file", file.0, file.1)),
    );
    let res = app.client.post(format!("/studio/units/{unit}/blocks")).header(ct).body(body).dispatch().await;
    if res.status() == Status::UnprocessableEntity {
        // Refused: the form comes back with the problem beside the file field.
        return res.into_string().await.unwrap_or_default();
    }
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get(&format!("/studio/units/{unit}")).await;
    page
}

/// The headers that keep a user's file from acting as a page of the site.
fn assert_inert(res: &LocalResponse<'_>, content_type: &str, disposition: &str) {
    let h = res.headers();
    assert_eq!(h.get_one("Content-Type"), Some(content_type));
    assert_eq!(h.get_one("X-Content-Type-Options"), Some("nosniff"));
    let csp = h.get_one("Content-Security-Policy").unwrap();
    assert!(csp.contains("sandbox") && csp.contains("default-src 'none'"), "{csp}");
    let d = h.get_one("Content-Disposition").unwrap();
    assert!(d.starts_with(disposition), "{d}");
}

async fn studio_uploads(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    staff_browser(&app, "grace").await;
    let unit = c.units[1];
    let before = blob_count(&app);

    // Active content is refused, with the accepted types named; nothing is stored.
    let page = add_block(&app, unit, "video", "", ("clip.mp4", HTML)).await;
    assert!(page.contains("MP4, WebM or Ogg video"), "the refusal names the accepted types");
    let page = add_block(&app, unit, "resource", "Logo", ("logo.svg", SVG)).await;
    assert!(page.contains("Accepted: PDF"), "an SVG is no resource");
    let page = add_block(&app, unit, "resource", "Page", ("page.html", HTML)).await;
    assert!(page.contains("not a file type a course can offer"));
    assert_eq!(blob_count(&app), before, "nothing refused was stored");

    // Script as text is stored as text and goes out as a download.
    add_block(&app, unit, "resource", "Script", ("app.js", b"document.title='PWNED';\n")).await;
    let js = newest_block(&app, unit);
    let res = app.client.get(format!("/learn/intro-python/files/{js}")).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_inert(&res, "text/plain; charset=utf-8", "attachment; filename=\"app.js.txt\"");

    // A PDF and a video show in the browser, still sandboxed.
    add_block(&app, unit, "resource", "Notes", ("notes.pdf", PDF)).await;
    let pdf = newest_block(&app, unit);
    let res = app.client.get(format!("/learn/intro-python/files/{pdf}")).dispatch().await;
    assert_inert(&res, "application/pdf", "inline; filename=\"notes.pdf\"");
    add_block(&app, unit, "video", "", ("clip.mp4", MP4)).await;
    let video = newest_block(&app, unit);
    let res = app.client.get(format!("/learn/intro-python/files/{video}")).dispatch().await;
    assert_inert(&res, "video/mp4", "inline");

    // The site's pages keep their own policy.
    let res = app.client.get(format!("/learn/intro-python/units/{unit}")).dispatch().await;
    assert!(res.headers().get_one("Content-Security-Policy").unwrap().contains("script-src 'self'"));
}
on_both!(sec_uploads_are_typed_by_their_bytes_and_served_inert, studio_uploads);

/// Files stored before the checks, as the review found them, in the first
/// unit of course `slug`: an HTML "video", an SVG resource, a script
/// resource typed as JavaScript, and the SVG recorded as an image. Returns
/// (video block, SVG block, script block, SVG key).
pub fn plant_old_uploads(config: &lyceum::config::Config, slug: &str) -> (i64, i64, i64, String) {
    let blobs = lyceum::blob_store(config);
    let db = lyceum::db::Db::connect(&config.database_url, 1).unwrap();
    let conn = &mut *db.get().unwrap();
    let course = lyceum::learning::service::course_by_slug(conn, slug).unwrap();
    let outline = lyceum::learning::service::outline(conn, course.id).unwrap();
    let unit = outline[0].1[0].clone();
    let now = lyceum::db::now();
    let file = |key: &str, name: &str, ct: &str| BlobRef {
        key: key.to_string(),
        filename: name.into(),
        content_type: ct.into(),
    };
    let js = lyceum::storage::store(conn, blobs.as_ref(), JS, "application/javascript").unwrap();
    let add = |conn: &mut lyceum::db::Conn, data: BlockData| {
        lyceum::learning::authoring::add_block(conn, &unit, &data, now).unwrap()
    };
    let tool =
        add(conn, BlockData::Resource { title: "Tool".into(), file: file(&js, "tool.js", "application/javascript") });
    // Inline script is stopped by the site's policy; a same-origin script file was not.
    let src = format!("/learn/{slug}/files/{tool}");
    let page = format!("<!DOCTYPE html><html><head><script src=\"{src}\"></script></head><body>hello</body></html>");
    let image = format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><script href=\"{src}\"/></svg>");
    let html = lyceum::storage::store(conn, blobs.as_ref(), page.as_bytes(), "text/html").unwrap();
    let svg = lyceum::storage::store(conn, blobs.as_ref(), image.as_bytes(), "image/svg+xml").unwrap();
    let video =
        add(conn, BlockData::Video { url: None, file: Some(file(&html, "clip.html", "text/html")), transcript: None });
    let logo = add(conn, BlockData::Resource { title: "Logo".into(), file: file(&svg, "logo.svg", "image/svg+xml") });
    (video, logo, tool, svg)
}

/// A script that marks the page it ran in.
pub const JS: &[u8] = b"document.title='PWNED';window.pwned=true;\n";

async fn old_uploads(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    staff_browser(&app, "grace").await;
    let (video, logo, tool, svg) = plant_old_uploads(&app.config, "intro-python");
    assert!(c.units.len() == 3);
    for block in [video, logo] {
        let res = app.client.get(format!("/learn/intro-python/files/{block}")).dispatch().await;
        assert_eq!(res.status(), Status::Ok);
        assert_inert(&res, "application/octet-stream", "attachment");
    }
    let res = app.client.get(format!("/learn/intro-python/files/{tool}")).dispatch().await;
    assert_inert(&res, "text/plain; charset=utf-8", "attachment; filename=\"tool.js.txt\"");
    // An SVG is never served as a public image, to anyone.
    app.sign_out().await;
    let (status, _) = app.get(&format!("/media/{svg}")).await;
    assert_eq!(status, Status::NotFound);
}
on_both!(sec_files_stored_before_the_checks_are_served_as_opaque_downloads, old_uploads);

/// A course package whose "video" is an HTML page and whose resource is a
/// script, as the review built it.
fn hostile_package(video: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let files: [(&str, &[u8]); 4] = [
        (
            "course.toml",
            b"[course]\nslug = \"hostile\"\ntitle = \"Hostile\"\nsummary = \"x\"\nlanguage = \"en\"\n\n[[runs]]\nkey = \"r1\"\nstarts_at = \"2026-01-01T00:00:00Z\"\npacing = \"self\"\npass_threshold = 60\n\n[[sections]]\ntitle = \"S\"\nunits = [\"units/01.md\"]\n",
        ),
        (
            "units/01.md",
            b"+++\ntitle = \"One\"\n+++\nText\n\n::: video file=\"files/clip.mp4\"\n\n::: resource title=\"Tool\" file=\"files/tool.js\"\n",
        ),
        ("files/clip.mp4", video),
        ("files/tool.js", b"document.title='PWNED';\n"),
    ];
    for (name, bytes) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

async fn package_uploads(app: TestApp) {
    staff_browser(&app, "grace").await;
    app.post_form("/studio/members", &[("slug", "northbridge"), ("name", "Northbridge"), ("description", "")]).await;
    let token = app.csrf().await;
    let (ct, body) = multipart(
        &[("csrf_token", &token), ("member", "northbridge")],
        Some(("package", "hostile.zip", &hostile_package(HTML))),
    );
    let res = app.client.post("/studio/import").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("files/clip.mp4") && page.contains("MP4, WebM or Ogg video"), "the video is refused");
    let n: i64 = lyceum::db::schema::courses::table.count().get_result(&mut app.db().get().unwrap()).unwrap();
    assert_eq!(n, 0, "nothing half-imported");

    // With a real video, the script comes in as text and goes out as a download.
    let token = app.csrf().await;
    let (ct, body) = multipart(
        &[("csrf_token", &token), ("member", "northbridge")],
        Some(("package", "hostile.zip", &hostile_package(MP4))),
    );
    let res = app.client.post("/studio/import").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    let stored: Vec<String> =
        blob_files::table.select(blob_files::content_type).load(&mut app.db().get().unwrap()).unwrap();
    assert!(stored.iter().all(|t| t == "video/mp4" || t == "text/plain; charset=utf-8"), "{stored:?}");
    let tool: i64 = blocks::table
        .filter(blocks::kind.eq("resource"))
        .select(blocks::id)
        .first(&mut app.db().get().unwrap())
        .unwrap();
    let res = app.client.get(format!("/learn/hostile/files/{tool}")).dispatch().await;
    assert_inert(&res, "text/plain; charset=utf-8", "attachment; filename=\"tool.js.txt\"");
}
on_both!(sec_course_packages_carry_no_active_content, package_uploads);

async fn separate_origin(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    staff_browser(&app, "grace").await;
    // The site's own origin only redirects to a short-lived signed link.
    let res = app.client.get(format!("/learn/intro-python/files/{}", c.resource)).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    let location = res.headers().get_one("Location").unwrap().to_string();
    let path = location.strip_prefix("https://usercontent.lyceum.test").expect("sent to the user-content origin");
    assert!(path.starts_with("/files/"));
    // There, without any session, the file is served inert.
    app.sign_out().await;
    let res = app.client.get(path.to_string()).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_inert(&res, "text/plain; charset=utf-8", "attachment; filename=\"cheatsheet.txt\"");
    assert_eq!(res.into_string().await.unwrap(), "Cheat sheet: x = 1");
    // A link that was tampered with leads nowhere.
    let forged = path.replacen("/files/", "/files/0", 1);
    assert_eq!(app.get(&forged).await.0, Status::NotFound);
    // The site's policy lets videos play from that origin.
    let res = app.client.get("/").dispatch().await;
    let csp = res.headers().get_one("Content-Security-Policy").unwrap().to_string();
    assert!(csp.contains("media-src 'self' https://usercontent.lyceum.test"), "{csp}");
}
on_both!(sec_a_user_content_origin_serves_course_files_by_signed_links, separate_origin, |c| c.media_base_url =
    Some("https://usercontent.lyceum.test/".into()));

const MB: usize = 1024 * 1024;

/// The site on a real port, and an HTTP client carrying the test browser's
/// cookies (its session and CSRF token), following redirects.
async fn over_http(app: &TestApp) -> (String, reqwest::Client) {
    let base = crate::exports::serve(app).await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let url: reqwest::Url = base.parse().unwrap();
    for cookie in app.client.cookies().iter() {
        jar.add_cookie_str(&format!("{}={}; Path=/", cookie.name(), cookie.value()), &url);
    }
    let client = reqwest::Client::builder().cookie_provider(jar).build().unwrap();
    (base, client)
}

async fn send(
    http: &reqwest::Client,
    url: String,
    accept: &str,
    (ct, body): (rocket::http::ContentType, Vec<u8>),
) -> (u16, String, String) {
    let res = http
        .post(url)
        .header("Content-Type", ct.to_string())
        .header("Accept", accept)
        .body(body)
        .send()
        .await
        .expect("the site answers");
    let status = res.status().as_u16();
    let kind = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, kind, res.text().await.unwrap())
}

async fn oversize_uploads(app: TestApp) {
    staff_browser(&app, "grace").await;
    app.post_form("/studio/members", &[("slug", "northbridge"), ("name", "Northbridge"), ("description", "")]).await;
    let token = app.csrf().await;
    let (base, http) = over_http(&app).await;
    const HTML: &str = "text/html";

    // An 11 MB avatar: the message names the image limit, on the page the form returns to.
    let avatar = multipart(&[("csrf_token", &token)], Some(("image", "photo.jpg", &vec![0xFF; 11 * MB])));
    let (status, _, page) = send(&http, format!("{base}/profile/avatar"), HTML, avatar).await;
    assert_eq!(status, 200);
    assert!(page.contains("That image is larger than 10 MB, the limit for images."), "{page}");
    assert!(!page.contains("Please choose an image"), "not taken for a missing file");

    // A 15 MB package is within the package limit: it is read, and what is wrong with it is said.
    let fields = [("csrf_token", token.as_str()), ("member", "northbridge")];
    let package = multipart(&fields, Some(("package", "course.zip", &vec![7; 15 * MB])));
    let (status, _, page) = send(&http, format!("{base}/studio/import"), HTML, package).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("not a readable zip archive") && !page.contains("Please choose"), "{page}");

    // Over the package limit (the one `lyceum course import` has too): 413, the limit named,
    // as a page for a browser and as a problem document for a program.
    let over = vec![7; 200 * MB + 1];
    let package = multipart(&fields, Some(("package", "course.zip", &over)));
    let (status, kind, page) = send(&http, format!("{base}/studio/import"), HTML, package).await;
    assert_eq!((status, kind.starts_with("text/html")), (413, true), "{page}");
    assert!(page.contains("That course package is larger than 200 MB"), "{page}");
    let package = multipart(&fields, Some(("package", "course.zip", &over)));
    drop(over);
    let (status, kind, body) = send(&http, format!("{base}/studio/import"), "application/json", package).await;
    assert_eq!((status, kind.as_str()), (413, "application/problem+json"), "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("larger than 200 MB"), "{problem}");
    let n: i64 = lyceum::db::schema::courses::table.count().get_result(&mut app.db().get().unwrap()).unwrap();
    assert_eq!(n, 0);
}
on_both!(uploads_over_their_limit_are_refused_naming_the_limit, oversize_uploads);

async fn twice_named_package(app: TestApp) {
    staff_browser(&app, "grace").await;
    app.post_form("/studio/members", &[("slug", "northbridge"), ("name", "Northbridge"), ("description", "")]).await;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in [("course.toml", &b"[course]"[..]), ("files/a.txt", b"one"), ("files/b.txt", b"two")] {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, bytes).unwrap();
    }
    let mut bytes = zip.finish().unwrap().into_inner();
    // Both the entry's own header and the central directory: a zip with two "files/a.txt".
    let from = b"files/b.txt";
    for i in 0..bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(b"files/a.txt");
        }
    }
    let token = app.csrf().await;
    let (ct, body) =
        multipart(&[("csrf_token", &token), ("member", "northbridge")], Some(("package", "course.zip", &bytes)));
    let res = app.client.post("/studio/import").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("files/a.txt: appears twice in the zip"), "{page}");
}
on_both!(a_package_with_two_entries_of_one_name_is_refused_naming_it, twice_named_package);

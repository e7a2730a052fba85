//! Bounded author input: text that would stall rendering (too long, nested
//! too deeply) is refused at save in the Studio and at package import, and
//! such text already stored renders as a short notice, quickly.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use lyceum::db::schema::{blocks, courses};
use lyceum::learning::content::BlockData;
use rocket::http::Status;

use crate::common::TestApp;
use crate::learning::{enroll, multipart, seed_course, staff_browser};
use crate::on_both;
use crate::sharing::{as_user, verified};

fn nested_divs(depth: usize) -> String {
    format!("{}deep{}", "<div>".repeat(depth), "</div>".repeat(depth))
}

fn text_blocks(app: &TestApp) -> Vec<String> {
    let mut conn = app.db().get().unwrap();
    blocks::table.select(blocks::data).load::<String>(&mut conn).unwrap()
}

async fn studio_refuses(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    staff_browser(&app, "grace").await;
    let before = text_blocks(&app);
    let token = app.csrf().await;
    let unit = c.units[0];
    for (markdown, message) in [
        (nested_divs(1000), "nested too deeply"),
        (format!("{}x", "> ".repeat(200)), "nested too deeply"),
        ("All about ownership. ".repeat(13_000), "longer than 256 KB"),
    ] {
        let (ct, body) =
            multipart(&[("csrf_token", &token), ("action", "add"), ("kind", "text"), ("markdown", &markdown)], None);
        let res = app.client.post(format!("/studio/units/{unit}/blocks")).header(ct).body(body).dispatch().await;
        // The editor comes back with the text kept and the limit named beside it.
        assert_eq!(res.status(), Status::UnprocessableEntity);
        let page = res.into_string().await.unwrap();
        assert!(page.contains(message), "the editor names the limit ({message}): {page}");
        assert!(page.contains(r#"id="n-text-markdown-error""#), "beside the text field");
    }
    assert_eq!(text_blocks(&app), before, "nothing was stored");
    // A real text of ordinary depth and size is still saved.
    let (ct, body) =
        multipart(&[("csrf_token", &token), ("action", "add"), ("kind", "text"), ("markdown", &nested_divs(20))], None);
    app.client.post(format!("/studio/units/{unit}/blocks")).header(ct).body(body).dispatch().await;
    assert_eq!(text_blocks(&app).len(), before.len() + 1);

    // The course description is author Markdown too.
    let res = app
        .post_form(
            "/studio/courses/intro-python/details",
            &[
                ("member", "northbridge"),
                ("slug", "intro-python"),
                ("title", "Introduction to Python"),
                ("summary", "Learn it well."),
                ("description", &format!("{}x", "* ".repeat(300))),
                ("subjects", "computer-science"),
                ("language", "en"),
                ("effort", "2 hours"),
            ],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/studio/courses/intro-python").await;
    assert!(page.contains("nested too deeply"), "{page}");
    let description: String = courses::table.select(courses::description).first(&mut app.db().get().unwrap()).unwrap();
    assert_eq!(description, "All about **it**.", "the description is unchanged");
}
on_both!(an_over_deep_or_over_long_text_is_refused_in_the_studio, studio_refuses);

async fn import_refuses(app: TestApp) {
    staff_browser(&app, "grace").await;
    app.post_form("/studio/members", &[("slug", "northbridge"), ("name", "Northbridge"), ("description", "")]).await;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let unit = format!("+++\ntitle = \"One\"\n+++\n{}\n", nested_divs(5000));
    let files: [(&str, &str); 2] = [
        (
            "course.toml",
            "[course]\nslug = \"deep\"\ntitle = \"Deep\"\nsummary = \"x\"\nlanguage = \"en\"\n\n[[runs]]\nkey = \"r1\"\nstarts_at = \"2026-01-01T00:00:00Z\"\npacing = \"self\"\npass_threshold = 60\n\n[[sections]]\ntitle = \"S\"\nunits = [\"units/01.md\"]\n",
        ),
        ("units/01.md", &unit),
    ];
    for (name, text) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, text.as_bytes()).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let token = app.csrf().await;
    let (ct, body) =
        multipart(&[("csrf_token", &token), ("member", "northbridge")], Some(("package", "deep.zip", &bytes)));
    let res = app.client.post("/studio/import").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("units/01.md") && page.contains("nested too deeply"), "{page}");
    let n: i64 = courses::table.count().get_result(&mut app.db().get().unwrap()).unwrap();
    assert_eq!(n, 0, "nothing imported");
}
on_both!(a_package_with_an_over_deep_unit_is_refused, import_refuses);

async fn stored_renders_notice(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    // Stored before the limits existed: written straight to the database.
    let deep = BlockData::Text { markdown: "<div>".repeat(50_000) };
    let long = BlockData::Text { markdown: "All about ownership. ".repeat(13_000) };
    {
        let mut conn = app.db().get().unwrap();
        let ids: Vec<i64> = blocks::table
            .filter(blocks::unit_id.eq(c.units[0]))
            .filter(blocks::kind.eq("text"))
            .select(blocks::id)
            .load(&mut conn)
            .unwrap();
        assert!(!ids.is_empty(), "the seeded unit has a text block");
        diesel::update(blocks::table.find(ids[0]))
            .set(blocks::data.eq(serde_json::to_string(&deep).unwrap()))
            .execute(&mut conn)
            .unwrap();
        diesel::insert_into(blocks::table)
            .values((
                blocks::unit_id.eq(c.units[0]),
                blocks::position.eq(99),
                blocks::kind.eq("text"),
                blocks::data.eq(serde_json::to_string(&long).unwrap()),
                blocks::created_at.eq(lyceum::db::now()),
                blocks::updated_at.eq(lyceum::db::now()),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    enroll(&app, &c.slug).await;
    let started = Instant::now();
    let (status, page) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    let took = started.elapsed();
    assert_eq!(status, Status::Ok);
    assert!(took < Duration::from_secs(2), "rendered in {took:?}");
    assert!(page.contains("nested too deeply") && page.contains("longer than 256 KB"), "notices shown");
    assert!(!page.contains("<div><div><div>"), "the over-deep text itself is not sent");
}
on_both!(stored_over_deep_text_renders_a_notice_quickly, stored_renders_notice);

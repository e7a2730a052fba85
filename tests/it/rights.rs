//! Rights as requests (RGT-5) and the objection to profiling (RGT-3): a
//! restriction, an objection and their lifting are tracked requests, and an
//! objection stops every profiling use the platform has.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rocket::http::Status;

use crate::common::{Learner, TestApp};
use crate::on_both;
use crate::privacy::{newest_mail, staff, unzip};
use crate::sharing::{as_user, run, user_id, verified};

type RequestRow =
    (String, String, String, Option<String>, String, NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>, Option<i64>);

async fn requests_of(app: &TestApp, user: i64) -> Vec<RequestRow> {
    use lyceum::db::schema::data_requests as r;
    run(app, move |conn| {
        r::table
            .filter(r::user_id.eq(user))
            .order(r::id.asc())
            .select((
                r::kind,
                r::source,
                r::status,
                r::outcome,
                r::details,
                r::received_at,
                r::due_at,
                r::done_at,
                r::entered_by,
            ))
            .load::<RequestRow>(conn)
    })
    .await
}

async fn rights_as_requests(app: TestApp) {
    // promise: RGT-5 — a restriction, an objection and their lifting are requests tracked with their dates.
    let ada = verified(&app, "ada").await;
    let ada_id = user_id(&app, "ada").await;
    as_user(&app, &ada).await;
    // Each click twice: a repeated click is no second request.
    for choice in ["on", "on", "off", "off"] {
        let res = app.post_form("/sharing/restrict", &[("restrict", choice)]).await;
        assert_eq!(res.status(), Status::SeeOther);
    }
    for _ in 0..2 {
        let res = app.post_form("/account/communications", &[("object_profiling", "true")]).await;
        assert_eq!(res.status(), Status::SeeOther);
    }
    for _ in 0..2 {
        app.post_form("/account/communications", &[]).await;
    }
    let rows = requests_of(&app, ada_id).await;
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(kinds, ["restriction", "restriction_lifted", "objection", "objection_withdrawn"], "{rows:?}");
    for (kind, source, status, outcome, _, received, due, done, entered_by) in &rows {
        assert_eq!(source, "self_service", "{kind}");
        assert_eq!(status, "done", "{kind}: carried out as it was made");
        assert_eq!(*done, Some(*received), "{kind}: received and done at once");
        assert_eq!(*due - *received, chrono::Duration::days(30), "{kind}");
        assert!(outcome.as_deref().is_some_and(|o| !o.is_empty()), "{kind}: says what was done");
        assert_eq!(*entered_by, None, "{kind}");
    }
    assert!(rows[0].3.as_deref().unwrap().contains("All sharing frozen"), "{rows:?}");
    assert!(rows[2].3.as_deref().unwrap().contains("Newsletter opens"), "the objection names each use: {rows:?}");

    // The learner sees them among their requests, and in their copy of their data.
    let (_, page) = app.get("/account/privacy").await;
    for text in ["restriction lifted", "objection withdrawn", "All sharing frozen", "Stopped at once"] {
        assert!(page.contains(text), "{text}: {page}");
    }
    let zip = run(&app, move |conn| lyceum::privacy::export::build(conn, ada_id, lyceum::db::now())).await;
    let data: serde_json::Value = serde_json::from_str(&unzip(&zip)["data.json"]).unwrap();
    let exported: Vec<&str> = data["sections"]["data_requests"]
        .as_array()
        .expect("requests are exported")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    for kind in ["restriction", "restriction_lifted", "objection", "objection_withdrawn"] {
        assert!(exported.contains(&kind), "{kind} in the export: {exported:?}");
    }

    // Staff act for the learner: a request that came by post is answered by
    // the restriction, not doubled; the lifting they do is traced to them.
    let grace = staff(&app).await;
    let grace_id = user_id(&app, "grace").await;
    as_user(&app, &grace).await;
    app.post_form(
        "/staff/privacy/requests",
        &[
            ("kind", "restriction"),
            ("source", "post"),
            ("login", "ada"),
            ("details", "Letter of 2 December: please freeze my sharing"),
        ],
    )
    .await;
    let res = app
        .post_form(&format!("/staff/sharing/{ada_id}/restrict"), &[("restrict", "on"), ("note", "Her letter")])
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let res = app
        .post_form(
            &format!("/staff/sharing/{ada_id}/restrict"),
            &[("restrict", "off"), ("note", "Phone call of 4 December")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let rows = requests_of(&app, ada_id).await;
    assert_eq!(rows.len(), 6, "the letter's request is answered, not doubled: {rows:?}");
    let letter = &rows[4];
    assert_eq!((letter.0.as_str(), letter.1.as_str(), letter.2.as_str()), ("restriction", "post", "done"));
    assert!(letter.3.as_deref().unwrap().contains("All sharing frozen") && letter.7.is_some(), "{letter:?}");
    let lift = &rows[5];
    assert_eq!((lift.0.as_str(), lift.1.as_str(), lift.2.as_str()), ("restriction_lifted", "staff", "done"));
    assert!(lift.4.contains("Phone call of 4 December"), "staff's note: {lift:?}");
    assert_eq!(lift.8, Some(grace_id), "traced to the staff member");
    // All of them are in the staff queue.
    let (_, page) = app.get("/staff/privacy").await;
    for text in ["restriction lifted", "objection withdrawn", "Phone call of 4 December", "Letter of 2 December"] {
        assert!(page.contains(text), "{text}: {page}");
    }
}
on_both!(rgt_5_restriction_objection_and_their_lifting_are_tracked_requests, rights_as_requests);

const CHROME_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

async fn browse(app: &TestApp, path: &str) {
    let res =
        app.client.get(path.to_string()).header(rocket::http::Header::new("User-Agent", CHROME_UA)).dispatch().await;
    assert_eq!(res.status(), Status::Ok, "{path}");
}

async fn subscriber(app: &TestApp, name: &str) -> Learner {
    let res = app.sign_up_with(name, &[("marketing", "true")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let l = Learner {
        username: name.into(),
        email: format!("{name}@example.org"),
        password: crate::common::PASSWORD.into(),
    };
    app.verify(&l).await;
    as_user(app, &l).await;
    app.post_form("/account/communications", &[("marketing_email", "true"), ("email_tracking", "true")]).await;
    l
}

/// Staff send a newsletter; the tracking pixel and a tracked link in each reader's copy, when it has them.
async fn newsletter(
    app: &TestApp,
    staff: &Learner,
    subject: &str,
    readers: &[&str],
) -> Vec<(Option<String>, Option<String>)> {
    as_user(app, staff).await;
    let body = "Read [the catalogue](https://courses.example.org/catalogue).";
    app.post_form("/staff/newsletters", &[("subject", subject), ("body", body)]).await;
    app.run_jobs().await;
    let pixel = regex::Regex::new(r#"src="http://lyceum.test(/o/[^"]+)""#).unwrap();
    let click = regex::Regex::new(r#"href="http://lyceum.test(/c/[^"]+)""#).unwrap();
    readers
        .iter()
        .map(|name| {
            let (html, _, _) = newest_mail(app, &format!("{name}@example.org"), subject).expect("the newsletter");
            (pixel.captures(&html).map(|c| c[1].to_string()), click.captures(&html).map(|c| c[1].replace("&amp;", "&")))
        })
        .collect()
}

async fn events(app: &TestApp, user: i64) -> Vec<String> {
    use lyceum::db::schema::campaign_events as e;
    run(app, move |conn| {
        e::table.filter(e::user_id.eq(user)).filter(e::kind.ne("sent")).order(e::id.asc()).select(e::kind).load(conn)
    })
    .await
}

async fn objection_stops_profiling(app: TestApp) {
    // promise: RGT-3 — an objection to profiling stops every profiling use, and those already recorded go.
    use lyceum::db::schema::page_views;
    let views = || run(&app, |conn| page_views::table.count().get_result::<i64>(conn));
    let keen = subscriber(&app, "keen").await;
    let objector = subscriber(&app, "objector").await;
    let (keen_id, objector_id) = (user_id(&app, "keen").await, user_id(&app, "objector").await);
    let grace = staff(&app).await;

    // Before objecting, the objector's opens and clicks are counted like anyone's.
    let first = newsletter(&app, &grace, "December news", &["keen", "objector"]).await;
    let (Some(old_pixel), Some(old_click)) = first[1].clone() else {
        panic!("tracked before the objection: {first:?}")
    };
    app.sign_out().await;
    app.client.get(old_pixel.clone()).dispatch().await;
    app.client.get(old_click.clone()).dispatch().await;
    assert_eq!(events(&app, objector_id).await, ["open", "click"]);

    as_user(&app, &objector).await;
    let res = app
        .post_form(
            "/account/communications",
            &[("marketing_email", "true"), ("email_tracking", "true"), ("object_profiling", "true")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    assert!(events(&app, objector_id).await.is_empty(), "the opens and clicks recorded go with the objection");

    // Newsletter opens: no pixel, and the old one records nothing.
    let second = newsletter(&app, &grace, "January news", &["keen", "objector"]).await;
    assert!(second[0].0.is_some() && second[0].1.is_some(), "the learner who did not object is tracked: {second:?}");
    assert!(second[1].0.is_none(), "no tracking image for the objector");
    app.sign_out().await;
    let res = app.client.get(old_pixel).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert!(!events(&app, objector_id).await.contains(&"open".to_string()), "Newsletter opens: none recorded");

    // Newsletter link clicks: plain links, and the old tracked link records nothing.
    assert!(second[1].1.is_none(), "no tracked link for the objector");
    let res = app.client.get(old_click).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther, "the old link still leads on");
    assert!(!events(&app, objector_id).await.contains(&"click".to_string()), "Newsletter link clicks: none recorded");
    // The same links count for the learner who did not object.
    app.client.get(second[0].0.clone().unwrap()).dispatch().await;
    app.client.get(second[0].1.clone().unwrap()).dispatch().await;
    assert_eq!(events(&app, keen_id).await, ["open", "click"]);

    // Usage statistics: a browser that allows them counts the pages of someone
    // who did not object, and none of the objector's while signed in.
    app.post_form("/cookies", &[("analytics", "true"), ("back", "/")]).await;
    as_user(&app, &keen).await;
    let before = views().await;
    browse(&app, "/courses").await;
    assert_eq!(views().await, before + 1, "counted without an objection");
    as_user(&app, &objector).await;
    let before = views().await;
    browse(&app, "/courses").await;
    browse(&app, "/account/privacy").await;
    assert_eq!(views().await, before, "Usage statistics: nothing recorded for the objector");

    // Withdrawn: counting is as the other choices allow again.
    app.post_form("/account/communications", &[("marketing_email", "true"), ("email_tracking", "true")]).await;
    browse(&app, "/courses").await;
    assert_eq!(views().await, before + 1);
}
on_both!(rgt_3_an_objection_stops_every_profiling_use, objection_stops_profiling);

async fn profiling_listed(app: TestApp) {
    // promise: RGT-3 — the privacy page says which profiling there is, from the list the code obeys.
    use lyceum::privacy::profiling::{NOT_PROFILING, PROFILING_USES};
    let l = verified(&app, "pia").await;
    as_user(&app, &l).await;
    let (status, page) = app.get("/account/privacy").await;
    assert_eq!(status, Status::Ok);
    assert!(!PROFILING_USES.is_empty());
    for u in PROFILING_USES {
        assert!(page.contains(u.name) && page.contains(u.does) && page.contains(u.objection), "{}: {page}", u.name);
    }
    for (name, why) in NOT_PROFILING {
        assert!(page.contains(name) && page.contains(why), "{name}: {page}");
    }
    assert!(page.contains("You can object to all of it at once"), "{page}");
    let (_, settings) = app.get("/account/communications").await;
    for u in PROFILING_USES {
        assert!(settings.contains(u.name), "{}: {settings}", u.name);
    }
    app.post_form("/account/communications", &[("object_profiling", "true")]).await;
    let (_, page) = app.get("/account/privacy").await;
    assert!(page.contains("You object to profiling"), "{page}");
}
on_both!(rgt_3_the_privacy_page_lists_every_profiling_use, profiling_listed);

//! Staff lists page in the database (issue: cost that follows the viewer):
//! one page and one more row are read, links lead to the neighbours, and
//! any `?page=` value, junk included, answers a page rather than an error.

use diesel::prelude::*;
use lyceum::db::schema::payments;
use rocket::http::Status;

use crate::common::TestApp;
use crate::on_both;
use crate::privacy::staff;
use crate::sharing::{as_user, run};

/// A page as its links read once the browser decodes them.
async fn get(app: &TestApp, path: &str) -> (Status, String) {
    let (status, body) = app.get(path).await;
    (status, body.replace("&#x3D;", "=").replace("&amp;", "&"))
}

/// Rows of the table with `id` on a page, in order.
fn ids(page: &str, id: &str) -> Vec<i64> {
    let re = regex::Regex::new(&format!(r#"<tr><td>{id}(\d+)</td>"#)).unwrap();
    re.captures_iter(page).map(|c| c[1].parse().unwrap()).collect()
}

async fn staff_lists_page(app: TestApp) {
    let grace = staff(&app).await;
    as_user(&app, &grace).await;

    // 101 dead jobs: a page of 100 and one more.
    let first = run(&app, |conn| {
        let mut first = 0;
        for i in 0..101 {
            let id = lyceum::jobs::enqueue(conn, "paging.test", &serde_json::json!({ "n": i }))?;
            first = if first == 0 { id } else { first };
        }
        diesel::update(lyceum::db::schema::jobs::table.filter(lyceum::db::schema::jobs::kind.eq("paging.test")))
            .set(lyceum::db::schema::jobs::status.eq("dead"))
            .execute(conn)?;
        Ok::<_, diesel::result::Error>(first)
    })
    .await;
    let (status, page) = get(&app, "/staff/jobs?status=dead").await;
    assert_eq!(status, Status::Ok);
    let shown = ids(&page, "");
    assert_eq!(shown.len(), 100, "a page of 100 jobs");
    assert_eq!(shown[0], first + 100, "newest first");
    assert!(page.contains(r#"href="/staff/jobs?status=dead&page=2""#), "a link to the next page keeps the filter");
    assert!(!page.contains(r#"rel="prev""#));
    let (_, second) = get(&app, "/staff/jobs?status=dead&page=2").await;
    assert_eq!(ids(&second, ""), [first], "the oldest on page two");
    assert!(second.contains(r#"href="/staff/jobs?status=dead&page=1""#) && !second.contains(r#"rel="next""#));
    // Junk is the first page; a page past the end says so and links back.
    for junk in ["x", "0", "-1", "1%00", "99999999999999999999999"] {
        let (status, body) = get(&app, &format!("/staff/jobs?status=dead&page={junk}")).await;
        assert_eq!((status, ids(&body, "").len()), (Status::Ok, 100), "page={junk}");
    }
    let (status, past) = get(&app, "/staff/jobs?status=dead&page=50").await;
    assert_eq!(status, Status::Ok);
    assert!(past.contains("No more jobs") && past.contains(r#"href="/staff/jobs?status=dead&page=49""#), "{past}");

    // 51 payments: a page of 50 and one more.
    run(&app, |conn| {
        let now = lyceum::db::now();
        for i in 0..51 {
            diesel::insert_into(payments::table)
                .values((
                    payments::purpose.eq("certificate"),
                    payments::quantity.eq(1),
                    payments::provider.eq("stripe"),
                    payments::checkout_id.eq(format!("cs_paging_{i}")),
                    payments::amount_cents.eq(4900),
                    payments::currency.eq("USD"),
                    payments::status.eq("pending"),
                    payments::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .await;
    let (_, page) = get(&app, "/staff/payments").await;
    assert_eq!(ids(&page, "").len(), 50);
    assert!(page.contains(r#"href="/staff/payments?page=2""#));
    let (_, second) = get(&app, "/staff/payments?page=2").await;
    assert_eq!(ids(&second, "").len(), 1);

    // The other lists answer any page too.
    for path in ["/staff/certificates?q=x&page=2", "/staff/identity?page=abc", "/staff/assistance?page=7"] {
        assert_eq!(app.get(path).await.0, Status::Ok, "{path}");
    }
}
on_both!(staff_lists_read_one_page_at_a_time, staff_lists_page);

/// Partners in the list of `/partners`, by address name.
fn partner_links(page: &str) -> Vec<String> {
    let re = regex::Regex::new(r#"<li><a href="/partners/([a-z0-9-]+)">"#).unwrap();
    re.captures_iter(page).map(|c| c[1].to_string()).collect()
}

/// Seat allocations on a sponsor's page, by id.
fn allocation_ids(page: &str, slug: &str) -> Vec<i64> {
    let re = regex::Regex::new(&format!(r#"action="/partners/{slug}/allocations/(\d+)/invite""#)).unwrap();
    re.captures_iter(page).map(|c| c[1].parse().unwrap()).collect()
}

async fn partner_lists_page(app: TestApp) {
    use lyceum::consent::{PartnerKind, partners, sponsors};
    use lyceum::db::schema::course_runs;
    let grace = staff(&app).await;
    as_user(&app, &grace).await;

    // 51 more partners: the list shows 50 a page.
    let total = run(&app, |conn| {
        let now = lyceum::db::now();
        for i in 0..51 {
            partners::create(
                conn,
                PartnerKind::Sponsor,
                &format!("paging-{i:02}"),
                &format!("Paging sponsor {i:02}"),
                None,
                "hr@paging.example",
                now,
            )
            .map_err(|e| e.to_string())?;
        }
        lyceum::db::schema::partners::table.count().get_result::<i64>(conn).map_err(|e| e.to_string())
    })
    .await;
    let (status, page) = get(&app, "/partners").await;
    assert_eq!(status, Status::Ok);
    let first = partner_links(&page);
    assert_eq!(first.len(), 50, "a page of 50 partners: {page}");
    assert!(page.contains(r#"rel="next" href="/partners?page=2""#), "a link to the next page");
    assert!(!page.contains(r#"rel="prev""#));
    let (_, second) = get(&app, "/partners?page=2").await;
    let rest = partner_links(&second);
    assert_eq!(rest.len() as i64, total - 50, "the rest on page two");
    assert!(rest.iter().all(|s| !first.contains(s)), "no partner twice");
    assert!(second.contains(r#"href="/partners?page=1""#) && !second.contains(r#"rel="next""#));
    // Junk is the first page; past the end says so and links back.
    for junk in ["x", "0", "-1", "99999999999999999999999"] {
        let (status, body) = get(&app, &format!("/partners?page={junk}")).await;
        assert_eq!((status, partner_links(&body).len()), (Status::Ok, 50), "page={junk}");
    }
    let (status, past) = get(&app, "/partners?page=9").await;
    assert_eq!(status, Status::Ok);
    assert!(past.contains("No more partners") && past.contains(r#"href="/partners?page=8""#), "{past}");

    // 21 seat allocations of one sponsor: its page shows 20, newest first.
    crate::learning::seed_course(&app, "northbridge", "paging-course", "Paging course", None).await;
    as_user(&app, &grace).await;
    let run_id: i64 = run(&app, |conn| course_runs::table.select(course_runs::id).first(conn)).await;
    let oldest = run(&app, move |conn| {
        let now = lyceum::db::now();
        let p = partners::by_slug(conn, "paging-00").map_err(|e| e.to_string())?.ok_or("no sponsor")?;
        let mut oldest = None;
        for i in 0..21 {
            let request = sponsors::SeatRequest {
                run_id,
                seats: 1,
                expires_at: now + chrono::Duration::days(30),
                note: "paging",
                by: None,
            };
            let a = sponsors::allocate(conn, &p, &request, now + chrono::Duration::seconds(i))
                .map_err(|e| e.to_string())?;
            oldest = oldest.or(Some(a.id));
        }
        oldest.ok_or_else(|| "no allocation".to_string())
    })
    .await;
    let (status, page) = get(&app, "/partners/paging-00").await;
    assert_eq!(status, Status::Ok);
    let shown = allocation_ids(&page, "paging-00");
    assert_eq!(shown.len(), 20, "a page of 20 allocations");
    assert!(!shown.contains(&oldest), "newest first");
    assert!(page.contains(r#"rel="next" href="/partners/paging-00?allocations=2""#), "a link to the next page");
    let (status, second) = get(&app, "/partners/paging-00?allocations=2").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(allocation_ids(&second, "paging-00"), [oldest], "the oldest on page two");
    assert!(second.contains(r#"rel="prev" href="/partners/paging-00""#) && !second.contains(r#"rel="next""#));
    // Any page of any of the page's lists answers a page.
    for query in ["allocations=abc", "destinations=0&sends=-4&dead=x", "sends=99999999999999999999"] {
        let (status, body) = get(&app, &format!("/partners/paging-00?{query}")).await;
        assert_eq!((status, allocation_ids(&body, "paging-00").len()), (Status::Ok, 20), "{query}");
    }
}
on_both!(partner_lists_read_one_page_at_a_time, partner_lists_page);

/// Rows of the table with `id` on a page (its header row left out).
fn table_rows(page: &str, id: &str) -> usize {
    let Some(start) = page.find(&format!(r#"id="{id}""#)) else { return 0 };
    let table = &page[start..];
    let table = &table[..table.find("</table>").expect("the table ends")];
    table.matches("<tr").count() - 1
}

/// Items of the list after the heading with `heading_id`, up to the next section.
fn section_items(page: &str, heading_id: &str, item: &str) -> usize {
    let Some(start) = page.find(&format!(r#"id="{heading_id}""#)) else { return 0 };
    let section = &page[start..];
    let section = &section[..section.find("</section>").unwrap_or(section.len())];
    section.matches(item).count()
}

async fn privacy_and_org_lists_page(app: TestApp) {
    use lyceum::db::schema::{breach_notices, campaigns, data_requests, legal_holds, org_staff, support_requests};

    // An organization with 51 staff, uploaded (each gets an account).
    let olga_login = crate::sharing::verified(&app, "olga").await;
    let olga = crate::sharing::user_id(&app, "olga").await;
    run(&app, move |conn| {
        let now = lyceum::db::now();
        let org = lyceum::consent::partners::create(
            conn,
            lyceum::consent::PartnerKind::Organization,
            "globex",
            "Globex",
            None,
            "it@globex.example",
            now,
        )
        .map_err(|e| e.to_string())?;
        lyceum::consent::partners::appoint(conn, &org, olga, olga).map_err(|e| e.to_string())
    })
    .await;
    as_user(&app, &olga_login).await;
    let csv: String = std::iter::once("username,email\n".to_string())
        .chain((0..51).map(|i| format!("staff{i:02},staff{i:02}@globex.example\n")))
        .collect();
    let res = app.post_form("/partners/globex/staff/upload", &[("csv", &csv)]).await;
    assert_eq!(res.status(), Status::SeeOther, "the upload is taken");
    let staff_users: Vec<i64> = run(&app, |conn| {
        org_staff::table.order(org_staff::user_name_key.asc()).select(org_staff::user_id).load::<i64>(conn)
    })
    .await;
    assert_eq!(staff_users.len(), 51);
    // 26 rights requests filed for them.
    let filed = staff_users.clone();
    run(&app, move |conn| {
        let now = lyceum::db::now();
        for (i, user) in filed.iter().take(26).enumerate() {
            lyceum::privacy::open_request(
                conn,
                Some(*user),
                "export",
                lyceum::privacy::source::ORGANIZATION,
                "Filed for paging",
                None,
                now + chrono::Duration::seconds(i as i64),
            )?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .await;
    let (status, page) = get(&app, "/partners/globex/staff").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(table_rows(&page, "staff-table"), 50, "a page of 50 staff");
    assert!(page.contains("staff00@globex.example") && !page.contains("staff50@globex.example"));
    assert!(page.contains(r#"href="/partners/globex/staff?page=2""#), "a link to the next staff page");
    assert_eq!(table_rows(&page, "requests-table"), 25, "a page of 25 requests");
    assert!(page.contains(r#"href="/partners/globex/staff?requests=2""#), "a link to the next requests page");
    assert!(page.contains("51 active staff member(s)"), "the count is of everyone, not of the page");
    let (_, second) = get(&app, "/partners/globex/staff?page=2&requests=2").await;
    assert_eq!(table_rows(&second, "staff-table"), 1);
    assert!(second.contains("staff50@globex.example"));
    assert_eq!(table_rows(&second, "requests-table"), 1);
    assert!(
        second.contains(r#"href="/partners/globex/staff?requests=2""#),
        "back to staff page 1 keeps the requests page"
    );
    // A request can be filed for a person typed by user name.
    let res = app
        .post_form(
            "/partners/globex/staff/requests",
            &[("staff_id", "Staff50"), ("kind", "rectification"), ("details", "Typed by user name.")],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/globex/staff#requests"));
    let typed: i64 =
        run(&app, |conn| data_requests::table.filter(data_requests::kind.eq("rectification")).count().get_result(conn))
            .await;
    assert_eq!(typed, 1);

    // Site staff: 51 auditors, 51 open and 51 answered requests, 51 holds,
    // 51 open and 51 answered support requests, 26 newsletters and notices.
    let grace = staff(&app).await;
    let grace_id = crate::sharing::user_id(&app, "grace").await;
    let auditors = staff_users.clone();
    run(&app, move |conn| {
        let now = lyceum::db::now();
        diesel::delete(data_requests::table).execute(conn)?;
        for (i, user) in auditors.iter().enumerate() {
            lyceum::accounts::roles::grant(conn, *user, lyceum::accounts::roles::Role::Auditor, "", Some(grace_id))?;
            let open = lyceum::privacy::open_request(conn, Some(grace_id), "export", "email", "open one", None, now)?;
            diesel::update(data_requests::table.find(open))
                .set(data_requests::due_at.eq(now - chrono::Duration::days(1) + chrono::Duration::seconds(i as i64)))
                .execute(conn)?;
            let closed =
                lyceum::privacy::open_request(conn, Some(grace_id), "export", "email", "closed one", None, now)?;
            diesel::update(data_requests::table.find(closed))
                .set((
                    data_requests::status.eq("done"),
                    data_requests::outcome.eq("Sent"),
                    data_requests::done_at.eq(now - chrono::Duration::seconds(i as i64)),
                ))
                .execute(conn)?;
            diesel::insert_into(legal_holds::table)
                .values((
                    legal_holds::user_id.eq(grace_id),
                    legal_holds::reason.eq(format!("Case {i}")),
                    legal_holds::placed_at.eq(now),
                ))
                .execute(conn)?;
            for status in ["open", "closed"] {
                diesel::insert_into(support_requests::table)
                    .values((
                        support_requests::name.eq("Visitor"),
                        support_requests::email.eq("visitor@example.org"),
                        support_requests::subject.eq(format!("Question {i}")),
                        support_requests::message.eq("A question."),
                        support_requests::status.eq(status),
                        support_requests::created_at.eq(now),
                        support_requests::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            if i < 26 {
                diesel::insert_into(campaigns::table)
                    .values((
                        campaigns::subject.eq(format!("Letter {i}")),
                        campaigns::body.eq("News."),
                        campaigns::created_at.eq(now),
                        campaigns::recipients.eq(0),
                    ))
                    .execute(conn)?;
                diesel::insert_into(breach_notices::table)
                    .values((
                        breach_notices::title.eq(format!("Notice {i}")),
                        breach_notices::body.eq("What happened."),
                        breach_notices::audience.eq("all"),
                        breach_notices::recipients.eq(0),
                        breach_notices::published_at.eq(now),
                        breach_notices::withdrawn_at.eq(now),
                    ))
                    .execute(conn)?;
            }
        }
        Ok::<_, diesel::result::Error>(())
    })
    .await;
    as_user(&app, &grace).await;

    let (status, page) = get(&app, "/staff/privacy").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(table_rows(&page, "requests"), 50, "a page of 50 open requests");
    assert_eq!(table_rows(&page, "closed-requests"), 50, "a page of 50 answered requests");
    assert_eq!(section_items(&page, "holds-h", "<li><strong>"), 50, "a page of 50 holds");
    assert!(page.contains("51 overdue"), "every overdue request counts, not only this page's");
    for link in ["/staff/privacy?open=2", "/staff/privacy?closed=2", "/staff/privacy?holds=2"] {
        assert!(page.contains(&format!(r#"href="{link}""#)), "{link}");
    }
    let (_, second) = get(&app, "/staff/privacy?open=2").await;
    assert_eq!((table_rows(&second, "requests"), table_rows(&second, "closed-requests")), (1, 50));
    assert!(second.contains(r#"href="/staff/privacy?open=2&closed=2""#), "the other list's link keeps this page");
    let (_, second) = get(&app, "/staff/privacy?closed=2&holds=2").await;
    assert_eq!(table_rows(&second, "closed-requests"), 1);
    assert_eq!(section_items(&second, "holds-h", "<li><strong>"), 1);

    let (_, page) = get(&app, "/staff/support").await;
    assert_eq!((table_rows(&page, "support"), table_rows(&page, "support-answered")), (50, 50));
    assert!(page.contains(r#"href="/staff/support?open=2""#) && page.contains(r#"href="/staff/support?answered=2""#));
    let (_, second) = get(&app, "/staff/support?open=2&answered=2").await;
    assert_eq!((table_rows(&second, "support"), table_rows(&second, "support-answered")), (1, 1));

    let (_, page) = get(&app, "/staff/auditors").await;
    assert_eq!(page.matches(r#"/remove" class="inline""#).count(), 50, "a page of 50 auditors");
    assert!(page.contains(r#"href="/staff/auditors?page=2""#));
    let (_, second) = get(&app, "/staff/auditors?page=2").await;
    assert_eq!(second.matches(r#"/remove" class="inline""#).count(), 1);

    for (path, table) in [("/staff/newsletters", "campaigns"), ("/staff/notices", "notices")] {
        let (_, page) = get(&app, path).await;
        assert_eq!(table_rows(&page, table), 25, "{path}");
        assert!(page.contains(&format!(r#"href="{path}?page=2""#)), "{path}");
        let (_, second) = get(&app, &format!("{path}?page=2")).await;
        assert_eq!(table_rows(&second, table), 1, "{path}");
    }

    // Junk and pages past the end are pages, not errors.
    for path in [
        "/staff/privacy?open=x&closed=-1&erasures=0&holds=99999999999999999999",
        "/staff/support?open=abc&answered=9",
        "/staff/auditors?page=0",
        "/staff/support-team?page=x",
        "/staff/newsletters?page=-4",
        "/staff/notices?page=500",
    ] {
        assert_eq!(app.get(path).await.0, Status::Ok, "{path}");
    }
    let (_, past) = get(&app, "/staff/support?answered=9").await;
    assert!(past.contains("No more answered requests") && past.contains(r#"href="/staff/support?answered=8""#));
}
on_both!(privacy_and_organization_lists_read_one_page_at_a_time, privacy_and_org_lists_page);

/// Lines of the audit log's table whose page starts with `/staff/paging-`.
fn audit_lines(page: &str) -> usize {
    page.matches("<td><code>/staff/paging-").count()
}

async fn audit_log_pages(app: TestApp) {
    use lyceum::db::schema::audit_log;
    let grace = staff(&app).await;
    let ivy = crate::sharing::verified(&app, "ivy").await;
    as_user(&app, &grace).await;
    app.post_form("/staff/auditors", &[("login", "ivy")]).await;
    let grace_id = crate::sharing::user_id(&app, &grace.username).await;
    // 201 lines the search finds (a page of 200 and one more), and some it does not.
    run(&app, move |conn| {
        let now = lyceum::db::now();
        for i in 0..205 {
            let (actor, path) = if i < 201 { ("robot", format!("/staff/paging-{i}")) } else { ("other", "/x".into()) };
            diesel::insert_into(audit_log::table)
                .values((
                    audit_log::actor_id.eq(grace_id),
                    audit_log::actor.eq(actor),
                    audit_log::roles.eq("staff"),
                    audit_log::action.eq("view"),
                    audit_log::method.eq("GET"),
                    audit_log::path.eq(path),
                    audit_log::status.eq(200),
                    audit_log::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .await;
    as_user(&app, &ivy).await;
    let (status, page) = get(&app, "/audit?actor=robot&path=%2Fstaff%2Fpaging&action=view&from=&to=&subject=").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(audit_lines(&page), 200, "a page of 200 lines");
    assert!(page.contains("/staff/paging-200<") && !page.contains("/staff/paging-0<"), "newest first");
    let next = "/audit?actor=robot&path=%2Fstaff%2Fpaging&action=view&page=2";
    assert!(page.contains(&format!(r#"rel="next" href="{next}""#)), "a next link keeping the search: {page}");
    let (status, second) = get(&app, next).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(audit_lines(&second), 1, "the rest");
    assert!(second.contains("/staff/paging-0<") && !second.contains(r#"rel="next""#));
    assert!(second.contains(r#"rel="prev" href="/audit?actor=robot&path=%2Fstaff%2Fpaging&action=view""#));
    // The search form keeps its values on every page; junk pages are pages.
    assert!(second.contains(r#"name="actor" value="robot""#));
    for junk in ["x", "0", "-1", "99999999999999999999"] {
        let (status, body) = get(&app, &format!("/audit?actor=robot&page={junk}")).await;
        assert_eq!((status, audit_lines(&body)), (Status::Ok, 200), "page={junk}");
    }
}
on_both!(the_audit_log_pages_with_its_search, audit_log_pages);

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

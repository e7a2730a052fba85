//! Spreadsheet-safe CSV: a learner whose name is a formula reaches the CSVs
//! Lyceum writes (a member's export, a sponsor's report, the learner's own
//! data copy) as text a spreadsheet will not evaluate. OneRoster, pushed
//! only, is checked in the partner-adapters crate.

use lyceum::consent::partners;
use lyceum::consent::{Category, PartnerKind, sponsors};
use rocket::http::{Header, Status};

use crate::common::{Learner, TestApp};
use crate::learning::seed_course;
use crate::on_both;
use crate::privacy::unzip;
use crate::sharing::{as_user, key_for, member_partner, offered_text, run, user_id, verified};

const FORMULA: &str = r#"=HYPERLINK("http://evil","x")"#;

/// The cells of column `column` in a CSV text.
fn column(csv: &str, column: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let at = reader.headers().expect("a header").iter().position(|h| h == column).unwrap_or_else(|| panic!("{csv}"));
    reader.records().map(|r| r.expect("a record")[at].to_string()).collect()
}

async fn pull_bytes(app: &TestApp, key: &str, path: &str) -> Vec<u8> {
    let res =
        app.client.get(path.to_string()).header(Header::new("Authorization", format!("Bearer {key}"))).dispatch().await;
    assert_eq!(res.status(), Status::Ok, "{path}");
    res.into_bytes().await.unwrap_or_default()
}

async fn formula_name(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    let key = key_for(&app, &partner, &["enrollments", "progress", "results"]).await;
    let res = app.sign_up_with("mallory", &[("first_name", FORMULA), ("last_name", "-2+3")]).await;
    assert_eq!(res.status(), Status::SeeOther, "such a name is allowed: it is only text");
    let mallory = Learner {
        username: "mallory".into(),
        email: "mallory@example.org".into(),
        password: crate::common::PASSWORD.into(),
    };
    app.verify(&mallory).await;
    as_user(&app, &mallory).await;
    let text = offered_text(&app, "intro-python").await;
    let res = app
        .post_form(
            "/courses/intro-python/enroll",
            &[("run", "2026"), ("track", "audit"), ("share", "yes"), ("text_id", &text)],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);

    // The member's CSV export.
    let csv = String::from_utf8(pull_bytes(&app, &key, "/api/v1/exports/enrollments?format=csv").await).unwrap();
    let names = column(&csv, "learner_name");
    assert_eq!(names, vec![format!("'{FORMULA} -2+3")], "{csv}");
    // The JSON export is not a spreadsheet: the name there is exactly as given.
    let (_, jsonl) = crate::sharing::pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(jsonl.contains(r#""learner_name":"=HYPERLINK(\"http://evil\",\"x\") -2+3""#), "{jsonl}");

    // A sponsor's completion report.
    let run_id: i64 = run(&app, |conn| {
        use diesel::prelude::*;
        lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)
    })
    .await;
    let sponsor = run(&app, move |conn| {
        let now = lyceum::db::now();
        let p = partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "hr@acme.example", now)
            .map_err(|e| e.to_string())?;
        sponsors::allocate(
            conn,
            &p,
            &sponsors::SeatRequest {
                run_id,
                seats: 3,
                expires_at: now + chrono::Duration::days(30),
                note: "Q1",
                by: None,
            },
            now,
        )
        .map_err(|e| e.to_string())?;
        Ok::<_, String>(p)
    })
    .await;
    let boss = verified(&app, "boss").await;
    let boss_id = user_id(&app, "boss").await;
    run(&app, move |conn| partners::appoint(conn, &sponsor, boss_id, boss_id)).await;
    as_user(&app, &boss).await;
    let (_, page) = app.get("/partners/acme").await;
    let re = regex::Regex::new(r#"action="/partners/acme/allocations/(\d+)/invite""#).unwrap();
    let alloc = re.captures(&page).expect("an allocation")[1].to_string();
    app.post_form(&format!("/partners/acme/allocations/{alloc}/invite"), &[("emails", "mallory@example.org")]).await;
    let link = app.mailed_link("mallory@example.org", "/redeem").await.expect("an invitation");
    as_user(&app, &mallory).await;
    let (_, offer) = app.get(&link).await;
    let code = link.split("code=").nth(1).unwrap().to_string();
    let text =
        regex::Regex::new(r#"name="text_id" value="(\d+)""#).unwrap().captures(&offer).expect(&offer)[1].to_string();
    app.post_form("/redeem", &[("code", &code), ("share", "yes"), ("text_id", &text)]).await;
    as_user(&app, &boss).await;
    let (status, csv) = app.get("/partners/acme/report.csv").await;
    assert_eq!(status, Status::Ok);
    let learners = column(&csv, "learner");
    assert!(!learners.is_empty() && learners.iter().all(|l| l.starts_with("'=HYPERLINK")), "{csv}");

    // The learner's own copy of their data.
    as_user(&app, &mallory).await;
    assert_eq!(app.post_form("/account/privacy/export", &[]).await.status(), Status::SeeOther);
    let link = app.mailed_link(&mallory.email, "/account/privacy/exports/").await.expect("a download link");
    let res = app.client.get(link).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    let files = unzip(&res.into_bytes().await.unwrap());
    assert_eq!(column(&files["csv/account.csv"], "first_name"), vec![format!("'{FORMULA}")]);
    assert_eq!(column(&files["csv/account.csv"], "last_name"), vec!["'-2+3".to_string()]);
    let data: serde_json::Value = serde_json::from_str(&files["data.json"]).unwrap();
    assert_eq!(data["sections"]["account"][0]["first_name"], FORMULA, "JSON keeps the text as given");
}
on_both!(a_formula_in_a_name_is_neutralised_in_every_csv, formula_name);

//! Consent and partner sharing: the ledger, the gate, member exports, sponsor
//! seats and reports, the learner's Sharing page.

use diesel::prelude::*;
use lyceum::consent::ledger;
use lyceum::consent::partners::{self, Partner};
use lyceum::consent::sharing::{self, Want};
use lyceum::consent::{Categories, Category, PartnerKind, Purpose, sponsors};
use lyceum::db::schema::{consent_ledger, enrollments, users};
use rocket::http::{Header, Status};

use crate::common::{Learner, TestApp};

/// Runs a query on the app's database; panics with the error's text.
pub(crate) async fn run<T, E, F>(app: &TestApp, f: F) -> T
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
    F: FnOnce(&mut lyceum::db::Conn) -> Result<T, E> + Send + 'static,
{
    app.db()
        .run(move |conn| Ok::<_, lyceum::web::AppError>(f(conn).map_err(|e| e.to_string())))
        .await
        .expect("database")
        .expect("query")
}
use crate::learning::seed_course;
use crate::on_both;

pub(crate) async fn verified(app: &TestApp, name: &str) -> Learner {
    let l = app.sign_up(name).await;
    app.verify(&l).await;
    l
}

pub(crate) async fn as_user(app: &TestApp, l: &Learner) {
    app.sign_out().await;
    app.sign_in(l, false).await;
}

pub(crate) async fn user_id(app: &TestApp, username: &str) -> i64 {
    let u = username.to_string();
    run(app, move |conn| users::table.filter(users::username.eq(u)).select(users::id).first::<i64>(conn)).await
}

/// The member partner of a seeded course's member, asking for name and email.
pub(crate) async fn member_partner(app: &TestApp, member_id: i64, fields: &[Category]) -> Partner {
    let fields = Categories::of(fields.iter().copied());
    run(app, move |conn| {
        let m = lyceum::learning::service::member(conn, member_id).map_err(|e| e.to_string())?;
        let p = partners::for_member(conn, &m).map_err(|e| e.to_string())?;
        partners::set_profile_fields(conn, &p, &fields).map_err(|e| e.to_string())?;
        partners::by_id(conn, p.id).map_err(|e| e.to_string())
    })
    .await
}

pub(crate) async fn key_for(app: &TestApp, partner: &Partner, scopes: &[&'static str]) -> String {
    let p = partner.clone();
    let scopes = scopes.to_vec();
    run(app, move |conn| partners::create_key(conn, &p, "test", &scopes, None).map_err(|e| e.to_string())).await
}

/// The text id the about page offers for member sharing.
pub(crate) async fn offered_text(app: &TestApp, slug: &str) -> String {
    let (_, body) = app.get(&format!("/courses/{slug}")).await;
    let re = regex::Regex::new(r#"name="text_id" value="(\d+)""#).expect("regex");
    re.captures(&body).map(|c| c[1].to_string()).expect("the enroll form offers a sharing text")
}

pub(crate) async fn pull(app: &TestApp, key: &str, path: &str) -> (Status, String) {
    let res =
        app.client.get(path.to_string()).header(Header::new("Authorization", format!("Bearer {key}"))).dispatch().await;
    let status = res.status();
    (status, res.into_string().await.unwrap_or_default())
}

/// The record lines of a JSON Lines export (not its closing summary line).
pub(crate) fn lines(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v["type"] != "summary")
        .collect()
}

async fn member_sharing(app: TestApp) {
    // promise: CRS-3 — the member receives profile fields listed at enrollment only with consent.
    // promise: SHR-4 — sharing rests on a recorded consent naming partner, purpose, categories and text.
    // promise: RGT-4 — declining never blocks enrolling.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    let key = key_for(&app, &partner, &["enrollments", "progress", "results"]).await;

    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let (_, about) = app.get("/courses/intro-python").await;
    assert!(about.contains("Your full name") && about.contains("Your email address"), "the page lists the fields");
    let text = offered_text(&app, "intro-python").await;
    let res = app
        .post_form(
            "/courses/intro-python/enroll",
            &[("run", "2026"), ("track", "audit"), ("share", "yes"), ("text_id", &text)],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));

    let bob = verified(&app, "bob").await;
    as_user(&app, &bob).await;
    let res = app
        .post_form(
            "/courses/intro-python/enroll",
            &[("run", "2026"), ("track", "audit"), ("share", "no"), ("text_id", &text)],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"), "a decliner is enrolled all the same");
    let (status, _) = app.get(&format!("/learn/intro-python/units/{}", c.units[0])).await;
    assert_eq!(status, Status::Ok, "and learns all the same");

    // The ledger row names the text version and its hash.
    let rows = run(&app, |conn| consent_ledger::table.select(ledger::LedgerRow::as_select()).load(conn)).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.text_sha256.as_deref().is_some_and(|h| h.len() == 64) && r.text_version == Some(1)));
    assert_eq!(rows[0].action, "grant");
    assert_eq!(rows[1].action, "decline");
    assert_eq!(rows[0].ip.as_deref(), Some("203.0.113.7"));

    let (status, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert_eq!(status, Status::Ok);
    let recs = lines(&body);
    assert_eq!(recs.len(), 2, "{body}");
    let ada_rec = recs.iter().find(|r| r["learner_email"] == "ada@example.org").expect("ada identified");
    assert_eq!(ada_rec["learner_name"], "Ada Lovelace");
    let bob_rec = recs.iter().find(|r| r["learner_email"].is_null()).expect("bob de-identified");
    assert!(bob_rec["learner_name"].is_null() && bob_rec["learner_pseudonymous"] == true);
    assert!(!body.contains("bob"), "nothing identifies the decliner");

    // promise: SHR-5 — every record handed out has a disclosure row.
    let ds = run(&app, |conn| lyceum::consent::manifests::expand(conn, &Default::default())).await;
    assert_eq!(ds.len(), 2);
    assert!(
        ds.iter().any(|d| d.basis == "consent" && d.fields.contains("learner.email") && d.consent_ledger_id.is_some())
    );
    assert!(ds.iter().any(|d| d.basis == "deidentified" && !d.fields.contains("learner.email")));
    as_user(&app, &ada).await;
    let (_, page) = app.get("/sharing").await;
    assert!(
        page.contains(
            "northbridge University received your name, email address and enrollment in Introduction to Python once"
        ),
        "the learner sees the log, in words: {page}"
    );

    // Withdrawal takes effect for the next export at once.
    let re = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap();
    let id = re.captures(&page).expect("a withdraw button")[1].to_string();
    let res = app.post_form(&format!("/sharing/consents/{id}/withdraw"), &[]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(!body.contains("ada@example.org") && !body.contains("Ada Lovelace"), "{body}");
    assert_eq!(lines(&body).len(), 2, "de-identified records remain");

    // CSV carries the same gate's output; results and progress too.
    let (status, csv) = pull(&app, &key, "/api/v1/exports/results?format=csv").await;
    assert_eq!(status, Status::Ok);
    assert!(csv.starts_with("cursor") || csv.contains("grade_percent"), "{csv}");
    assert!(!csv.contains("ada@example.org"));
}
on_both!(crs_3_shr_4_rgt_4_member_sharing_follows_the_consent_given_at_enrollment, member_sharing);

async fn keys_are_scoped(app: TestApp) {
    // promise: SEC-3 — a partner's key reads only what is shared with that partner.
    let a = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let b = seed_course(&app, "larkfield", "statistics-basics", "Statistics", None).await;
    let pa = member_partner(&app, a.member_id, &[Category::ProfileName]).await;
    let pb = member_partner(&app, b.member_id, &[Category::ProfileName]).await;
    let ka = key_for(&app, &pa, &["enrollments"]).await;
    let kb = key_for(&app, &pb, &["enrollments", "results"]).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    for slug in ["intro-python", "statistics-basics"] {
        let text = offered_text(&app, slug).await;
        app.post_form(&format!("/courses/{slug}/enroll"), &[("run", "2026"), ("share", "yes"), ("text_id", &text)])
            .await;
    }
    let (_, body) = pull(&app, &ka, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(body.contains("intro-python") && !body.contains("statistics-basics"), "{body}");
    let (_, body) = pull(&app, &kb, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(body.contains("statistics-basics") && !body.contains("intro-python"), "{body}");
    // A's pseudonym for Ada is not B's.
    let (_, resa) = pull(&app, &ka, "/api/v1/exports/enrollments?format=csv").await;
    let (_, resb) = pull(&app, &kb, "/api/v1/exports/enrollments?format=csv").await;
    let pseud = regex::Regex::new(r"[dn]-[0-9a-f]{24}").unwrap();
    let (x, y) = (pseud.find(&resa).map(|m| m.as_str().to_string()), pseud.find(&resb).map(|m| m.as_str().to_string()));
    assert!(x.is_some() && x != y, "pseudonyms differ per partner");

    // Bad input gets clear 4xx answers.
    let (status, body) = pull(&app, &ka, "/api/v1/exports/results?format=jsonl").await;
    assert_eq!(status, Status::Forbidden, "{body}");
    let (status, body) = pull(&app, &ka, "/api/v1/exports/enrollments?format=xml").await;
    assert_eq!(status, Status::BadRequest);
    assert!(body.contains("Unknown format"), "{body}");
    let (status, body) = pull(&app, &ka, "/api/v1/exports/enrollments?since=%%%not-a-cursor").await;
    assert_eq!(status, Status::BadRequest);
    assert!(body.contains("cursor"), "{body}");
    let (status, _) = pull(&app, &ka, "/api/v1/exports/grades").await;
    assert_eq!(status, Status::NotFound);
    let (status, body) = pull(&app, "lyk_nope_nope", "/api/v1/exports/enrollments").await;
    assert_eq!(status, Status::Unauthorized);
    assert!(body.contains("not valid"), "{body}");
    let res = app.client.get("/api/v1/exports/enrollments").dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized);
    assert_eq!(res.content_type().map(|c| c.to_string()), Some("application/problem+json".into()));

    // Resuming with the cursor of the last record returns only later ones.
    let (_, all) = pull(&app, &kb, "/api/v1/exports/enrollments?format=jsonl").await;
    let cursor = lines(&all).last().unwrap()["cursor"].as_str().unwrap().to_string();
    let (status, rest) = pull(&app, &kb, &format!("/api/v1/exports/enrollments?format=jsonl&since={cursor}")).await;
    assert_eq!(status, Status::Ok);
    assert!(lines(&rest).is_empty());

    // A revoked key is refused.
    let pa2 = pa.clone();
    let keys = run(&app, move |conn| partners::keys(conn, &pa2)).await;
    let pa3 = pa.clone();
    let id = keys[0].id;
    run(&app, move |conn| partners::revoke_key(conn, &pa3, id)).await;
    let (status, body) = pull(&app, &ka, "/api/v1/exports/enrollments").await;
    assert_eq!(status, Status::Unauthorized);
    assert!(body.contains("revoked"), "{body}");
}
on_both!(sec_3_a_partner_key_reads_only_its_own_courses, keys_are_scoped);

async fn sponsor_flow(app: TestApp) {
    // promise: SHR-2 — a sponsor sees only enrollment, participation, progress and completion, only under consent.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let run_id: i64 = run(&app, |conn| {
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
    let s2 = sponsor.clone();
    run(&app, move |conn| partners::appoint(conn, &s2, boss_id, boss_id)).await;
    as_user(&app, &boss).await;
    let (status, page) = app.get("/partners/acme").await;
    assert_eq!(status, Status::Ok);
    let re = regex::Regex::new(r#"action="/partners/acme/allocations/(\d+)/invite""#).unwrap();
    let alloc = re.captures(&page).expect("an allocation")[1].to_string();
    let res = app
        .post_form(
            &format!("/partners/acme/allocations/{alloc}/invite"),
            &[("emails", "ada@example.org\nbob@example.org")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);

    let ada = verified(&app, "ada").await;
    let link = app.mailed_link("ada@example.org", "/redeem").await.expect("an invitation");
    as_user(&app, &ada).await;
    let (status, offer) = app.get(&link).await;
    assert_eq!(status, Status::Ok);
    assert!(offer.contains("Acme Corp") && offer.contains("How much of the course you have completed"));
    assert!(!offer.contains("Your grade"), "grades are never offered to a sponsor");
    let code = link.split("code=").nth(1).unwrap().to_string();
    let text = regex::Regex::new(r#"name="text_id" value="(\d+)""#).unwrap().captures(&offer).unwrap()[1].to_string();
    let res = app.post_form("/redeem", &[("code", &code), ("share", "yes"), ("text_id", &text)]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));
    let track: String = run(&app, |conn| enrollments::table.select(enrollments::track).first(conn)).await;
    assert_eq!(track, "verified", "a sponsored seat is the verified track");
    app.post_form(&format!("/learn/intro-python/units/{}/complete", c.units[0]), &[]).await;
    // A used code is refused with a clear message.
    let (status, body) = app.get(&format!("/redeem?code={code}")).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(body.contains("already been used"));

    // Bob redeems and declines: enrolled, and invisible to the sponsor.
    let bob = verified(&app, "bob").await;
    let link = app.mailed_link("bob@example.org", "/redeem").await.expect("an invitation");
    as_user(&app, &bob).await;
    let code_b = link.split("code=").nth(1).unwrap().to_string();
    let res = app.post_form("/redeem", &[("code", &code_b), ("share", "no"), ("text_id", &text)]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));

    as_user(&app, &boss).await;
    let (status, report) = app.get("/partners/acme/report").await;
    assert_eq!(status, Status::Ok);
    assert!(report.contains("ada@example.org") && report.contains("Ada Lovelace"), "{report}");
    assert!(!report.contains("bob@example.org"), "a decline is never revealed");
    // promise: SHR-6 — the charts count only the learners the table lists (never a decline), so they hide nothing.
    assert!(report.contains("Enrolled: 1") && !report.contains("fewer than"), "{report}");
    let (status, csv) = app.get("/partners/acme/report.csv").await;
    assert_eq!(status, Status::Ok);
    assert!(csv.contains("ada@example.org") && !csv.contains("bob@example.org"));
    assert!(!csv.contains("grade"), "no grade column for sponsors");

    // Withdrawal: the next report and CSV no longer contain her.
    as_user(&app, &ada).await;
    let (_, page) = app.get("/sharing").await;
    let re = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap();
    let id = re.captures(&page).expect("withdraw")[1].to_string();
    app.post_form(&format!("/sharing/consents/{id}/withdraw"), &[]).await;
    as_user(&app, &boss).await;
    let (_, report) = app.get("/partners/acme/report").await;
    assert!(!report.contains("ada@example.org"));
    let (_, csv) = app.get("/partners/acme/report.csv").await;
    assert!(!csv.contains("ada@example.org"));
    // Another partner's admin cannot see this report.
    let (status, _) = app.get("/partners/member-northbridge/report").await;
    assert_eq!(status, Status::NotFound);
}
on_both!(shr_2_shr_6_sponsor_sees_consented_progress_only, sponsor_flow);

/// Disclosure rows a sponsor's report views have written so far.
async fn report_disclosures(app: &TestApp) -> i64 {
    run(app, |conn| {
        let all = lyceum::consent::manifests::expand(conn, &Default::default())?;
        Ok::<_, diesel::result::Error>(all.iter().filter(|d| d.export_id.starts_with("report-")).count() as i64)
    })
    .await
}

/// A sponsor "acme" with `learners` seats on the first run, each redeemed by a
/// learner (`learner000`…) who shares their progress.
async fn sponsored_learners(app: &TestApp, learners: usize) {
    run(app, move |conn| {
        use lyceum::accounts::domain::{Email, PersonName, Username};
        let now = lyceum::db::now();
        let run_id: i64 =
            lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)?;
        let p = partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "hr@acme.example", now)
            .map_err(|e| e.to_string())?;
        let seats = sponsors::SeatRequest {
            run_id,
            seats: learners as i32,
            expires_at: now + chrono::Duration::days(30),
            note: "cohort",
            by: None,
        };
        let allocation = sponsors::allocate(conn, &p, &seats, now).map_err(|e| e.to_string())?;
        let text = lyceum::consent::texts::current(conn, &p, Purpose::Sponsorship, "en")?.expect("a default text");
        for (i, code) in sponsors::free_codes(conn, &allocation)?.into_iter().enumerate() {
            let username = format!("learner{i:03}");
            let (first, last) = ("Learner".to_string(), format!("Number{i:03}"));
            let email = format!("{username}@example.org");
            let id = lyceum::accounts::service::insert_operator_account(
                conn,
                &Username::parse(&username).map_err(|e| e.to_string())?,
                &Email::parse(&email).map_err(|e| e.to_string())?,
                &PersonName::parse(&first, "first name").map_err(|e| e.to_string())?,
                &PersonName::parse(&last, "last name").map_err(|e| e.to_string())?,
                "not-a-password-hash",
            )?;
            let user = lyceum::accounts::SessionUser {
                id,
                username,
                first_name: first,
                last_name: last,
                email,
                email_verified: true,
                roles: Vec::new(),
            };
            let decision =
                sponsors::Decision { share: true, marketing: false, text_id: text.id, marketing_text_id: None };
            let evidence =
                ledger::Evidence::learner_web(id, &lyceum::web::guards::ClientInfo { ip: None, user_agent: None });
            sponsors::redeem(conn, &user, &code, &decision, &evidence, now).map_err(|e| e.to_string())?;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
    .await;
}

async fn paged_report(app: TestApp) {
    // promise: SHR-5 — a report discloses the learners it shows: one page of the table, or all of them in the CSV.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    const LEARNERS: usize = 105;
    sponsored_learners(&app, LEARNERS).await;
    let boss = verified(&app, "boss").await;
    let boss_id = user_id(&app, "boss").await;
    run(&app, move |conn| {
        let p = partners::by_slug(conn, "acme")?.expect("the sponsor");
        partners::appoint(conn, &p, boss_id, boss_id)
    })
    .await;
    as_user(&app, &boss).await;
    let table_rows = |page: &str| page.matches("@example.org</td>").count();

    let (status, page) = app.get("/partners/acme/report").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("105 learner(s). Showing 1–100.") && page.contains("Page 1 of 2"), "{page}");
    // Handlebars escapes "=" in attributes as "&#x3D;"; a browser reads it back.
    assert!(
        page.contains(r#"rel="next" href="/partners/acme/report?course&#x3D;&amp;status&#x3D;&amp;page&#x3D;2""#),
        "{page}"
    );
    assert_eq!(table_rows(&page), 100);
    assert!(page.contains("learner000@example.org") && !page.contains("learner100@example.org"));
    // The charts count everyone who matches, not only the page.
    assert!(page.contains("Enrolled: 105"), "the funnel counts all 105");
    assert_eq!(report_disclosures(&app).await, 100, "only the page shown left");

    let (status, page) = app.get("/partners/acme/report?page=2").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Showing 101–105.") && page.contains(r#"rel="prev""#) && !page.contains(r#"rel="next""#));
    assert_eq!(table_rows(&page), 5);
    assert!(page.contains("learner104@example.org") && !page.contains("learner000@example.org"));
    assert_eq!(report_disclosures(&app).await, 105);

    // A page past the end shows the last one; a filter that matches nobody shows no one.
    let (status, page) = app.get("/partners/acme/report?page=9").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Page 2 of 2") && table_rows(&page) == 5);
    // A page number that is not a number is the first page.
    let (status, page) = app.get("/partners/acme/report?page=abc").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Page 1 of 2") && table_rows(&page) == 100);
    let (status, page) = app.get("/partners/acme/report?status=completed").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("0 learner(s).") && table_rows(&page) == 0, "{page}");
    assert_eq!(report_disclosures(&app).await, 210);

    // The CSV is everyone who matches, each disclosed.
    let (status, csv) = app.get("/partners/acme/report.csv").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(csv.lines().count(), 1 + LEARNERS);
    assert_eq!(report_disclosures(&app).await, 210 + LEARNERS as i64);
}
on_both!(shr_5_a_paged_report_discloses_the_page_it_shows, paged_report);

async fn report_reads_beside_writers(app: TestApp) {
    // promise: SHR-5 — a report reads without holding the database's write
    // lock, yet every record it hands out matches the consent of one instant.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    sponsored_learners(&app, 6).await;
    // A second connection that never waits for a lock: a learner's request.
    let other = lyceum::db::Db::connect_with_busy_timeout(&app.config.database_url, 1, 0).expect("a second connection");
    let (shown, writes, reads) = run(&app, move |conn| {
        let now = lyceum::db::now();
        let p = partners::by_slug(conn, "acme")?.expect("the sponsor");
        let mut learner = other.get().map_err(|e| e.to_string())?;
        let withdrawing: (i64, i64) = users::table
            .inner_join(enrollments::table)
            .filter(users::username.eq("learner000"))
            .select((users::id, enrollments::run_id))
            .first(conn)?;
        let (mut reads, mut writes) = (0, Vec::new());
        let (_, shared) =
            sharing::picked(conn, &p, Purpose::Sponsorship, Want::ALL, "report-beside", "http://x", now, |all| {
                reads += 1;
                // While the report reads, a learner marks progress …
                let wrote = diesel::update(enrollments::table)
                    .set(enrollments::last_activity_at.eq(Some(now)))
                    .execute(&mut *learner)
                    .map_err(|e| e.to_string());
                writes.push(wrote);
                // … and, the first time, one of the six withdraws.
                if reads == 1 {
                    let evidence = ledger::Evidence::learner_web(
                        withdrawing.0,
                        &lyceum::web::guards::ClientInfo { ip: None, user_agent: None },
                    );
                    let entry = ledger::Entry {
                        user_id: withdrawing.0,
                        partner_id: Some(p.id),
                        purpose: Purpose::Sponsorship.as_str(),
                        scope: &lyceum::consent::run_scope(withdrawing.1),
                        action: ledger::Action::Withdraw,
                        categories: &Categories::default(),
                        text: None,
                        evidence: &evidence,
                    };
                    writes.push(ledger::append(&mut learner, entry, now).map(|_| 1).map_err(|e| e.to_string()));
                }
                vec![true; all.len()]
            })?;
        let shown: Vec<String> = shared.iter().filter_map(|s| s.learner.email.clone()).collect();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((shown, writes, reads))
    })
    .await;
    for w in &writes {
        assert!(w.is_ok(), "a learner's write waited for the report: {w:?}");
    }
    let disclosed: Vec<i64> = run(&app, |conn| {
        let filter = lyceum::consent::manifests::Filter { export_id: Some("report-beside"), ..Default::default() };
        lyceum::consent::manifests::expand(conn, &filter)
            .map(|all| all.into_iter().map(|d| d.user_id).collect::<Vec<i64>>())
    })
    .await;
    if app.db().backend() == lyceum::db::Backend::Sqlite {
        // The report read a snapshot; the withdrawal is newer than it, so
        // the report decides again and hands out the five who still share.
        assert_eq!(reads, 2, "the withdrawal during the first read makes the report decide again");
        assert_eq!(shown.len(), 5, "{shown:?}");
        assert!(!shown.contains(&"learner000@example.org".to_string()), "a withdrawn learner never leaves");
    } else {
        // PostgreSQL's readers never block writers: the report decides in
        // one transaction, before the withdrawal committed, and is written
        // under that decision.
        assert_eq!((reads, shown.len()), (1, 6), "{shown:?}");
    }
    assert_eq!(disclosed.len(), shown.len(), "one disclosure per record handed out");
}
on_both!(shr_5_a_report_reads_beside_learners_writes, report_reads_beside_writers);

async fn restriction_and_legal(app: TestApp) {
    // promise: RGT-3 — restricting freezes all sharing at once.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileEmail]).await;
    let key = key_for(&app, &partner, &["enrollments"]).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let text = offered_text(&app, "intro-python").await;
    app.post_form("/courses/intro-python/enroll", &[("run", "2026"), ("share", "yes"), ("text_id", &text)]).await;
    let (_, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert_eq!(lines(&body).len(), 1);
    app.post_form("/sharing/restrict", &[("restrict", "on")]).await;
    let (_, page) = app.get("/sharing").await;
    assert!(page.contains("Sharing is frozen"));
    let (_, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(lines(&body).is_empty(), "nothing at all leaves, not even de-identified: {body}");
    let res = app.post_form("/sharing/restrict", &[("restrict", "maybe")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    app.post_form("/sharing/restrict", &[("restrict", "off")]).await;
    let (_, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(body.contains("ada@example.org"));

    // promise: SHR-8 — a disclosure required by law is recorded with its legal reference.
    let staff_id = user_id(&app, "ada").await;
    run(&app, move |conn| {
        let d = sharing::LegalDisclosure {
            partner_id: None,
            user_id: staff_id,
            recipient: "Regional Court",
            legal_reference: "Order 2026/1187",
            fields: "profile.name,profile.email",
            note: "Production order",
            recorded_by: staff_id,
        };
        sharing::record_legal(conn, &d, lyceum::db::now())
    })
    .await;
    let (_, page) = app.get("/sharing").await;
    assert!(page.contains("Order 2026/1187") && page.contains("Regional Court"));
    // The staff form refuses a disclosure without its legal reference.
    let res = app.post_form("/staff/legal-disclosures", &[("login", "ada"), ("recipient", "X")]).await;
    assert_eq!(res.status(), Status::Forbidden, "only staff record legal disclosures");
}
on_both!(rgt_3_shr_8_restriction_freezes_sharing_and_legal_disclosures_are_logged, restriction_and_legal);

async fn marketing_is_separate(app: TestApp) {
    // promise: SHR-1 — partner marketing needs its own consent, never bundled.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let run_id: i64 = run(&app, |conn| {
        lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)
    })
    .await;
    let (sponsor, codes) = run(&app, move |conn| {
        let now = lyceum::db::now();
        let p = partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "hr@acme.example", now)
            .map_err(|e| e.to_string())?;
        let a = sponsors::allocate(
            conn,
            &p,
            &sponsors::SeatRequest {
                run_id,
                seats: 2,
                expires_at: now + chrono::Duration::days(30),
                note: "",
                by: None,
            },
            now,
        )
        .map_err(|e| e.to_string())?;
        let codes = sponsors::free_codes(conn, &a).map_err(|e| e.to_string())?;
        Ok::<_, String>((p, codes))
    })
    .await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let (_, offer) = app.get(&format!("/redeem?code={}", codes[0])).await;
    assert!(offer.contains(r#"name="marketing" value="true">"#), "unchecked by default");
    let text = regex::Regex::new(r#"name="text_id" value="(\d+)""#).unwrap().captures(&offer).unwrap()[1].to_string();
    let mtext = regex::Regex::new(r#"name="marketing_text_id" value="(\d+)""#).unwrap().captures(&offer).unwrap()[1]
        .to_string();
    app.post_form("/redeem", &[("code", &codes[0]), ("share", "yes"), ("text_id", &text)]).await;
    let bob = verified(&app, "bob").await;
    as_user(&app, &bob).await;
    app.post_form(
        "/redeem",
        &[
            ("code", &codes[1]),
            ("share", "yes"),
            ("text_id", &text),
            ("marketing", "true"),
            ("marketing_text_id", &mtext),
        ],
    )
    .await;
    let s = sponsor.clone();
    let contacts = run(&app, move |conn| sharing::marketing_contacts(conn, &s, "m-1", lyceum::db::now())).await;
    assert_eq!(contacts.len(), 1, "only the learner who ticked the separate box");
    assert_eq!(contacts[0].email, "bob@example.org");
    // A sponsorship consent never yields marketing, and marketing never yields course records.
    let s = sponsor.clone();
    let shared = run(&app, move |conn| {
        sharing::all(conn, &s, Purpose::PartnerMarketing, Want::ALL, "m-2", "http://x", lyceum::db::now())
    })
    .await;
    assert!(shared.is_empty());
}
on_both!(shr_1_partner_marketing_needs_its_own_consent, marketing_is_separate);

async fn ledger_chain(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileName]).await;
    for name in ["ada", "bob", "cyrus"] {
        let l = verified(&app, name).await;
        as_user(&app, &l).await;
        let text = offered_text(&app, "intro-python").await;
        app.post_form("/courses/intro-python/enroll", &[("run", "2026"), ("share", "yes"), ("text_id", &text)]).await;
    }
    let v = run(&app, ledger::verify).await;
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.rows, v.sealed), (3, 3), "every new row is sealed");

    // The database refuses changes to the ledger outright.
    let refused = run(&app, |conn| {
        Ok::<_, String>(
            diesel::sql_query("UPDATE consent_ledger SET categories = 'profile.email' WHERE id = 2")
                .execute(conn)
                .is_err(),
        )
    })
    .await;
    assert!(refused, "the ledger is append-only");

    // Someone with full database access drops the guard and edits a row: caught.
    let pg = app.config.database_url.starts_with("postgres");
    run(&app, move |conn| {
        if pg {
            diesel::sql_query("ALTER TABLE consent_ledger DISABLE TRIGGER consent_ledger_no_change").execute(conn)?;
        } else {
            diesel::sql_query("DROP TRIGGER consent_ledger_no_update").execute(conn)?;
        }
        let second: i64 =
            consent_ledger::table.order(consent_ledger::id).select(consent_ledger::id).offset(1).first(conn)?;
        diesel::update(consent_ledger::table.find(second))
            .set(consent_ledger::categories.eq("profile.name,profile.email"))
            .execute(conn)
    })
    .await;
    let second: i64 = run(&app, |conn| {
        consent_ledger::table.order(consent_ledger::id).select(consent_ledger::id).offset(1).first(conn)
    })
    .await;
    let v = run(&app, ledger::verify).await;
    assert_eq!(v.first_broken.map(|(id, _)| id), Some(second), "the tampered row is named");

    // A new text version does not extend consents given under the old one.
    let p = partner.clone();
    run(&app, move |conn| {
        partners::set_profile_fields(conn, &p, &Categories::of([Category::ProfileName, Category::ProfileEmail]))?;
        lyceum::consent::texts::publish(
            conn,
            lyceum::consent::texts::Audience::Partner(&p),
            Purpose::MemberSharing,
            "en",
            "Version two asks for your email address as well as your name.",
            None,
            lyceum::db::now(),
        )
    })
    .await;
    let p = partners::Partner { ..partner.clone() };
    let shared = run(&app, move |conn| {
        sharing::all(conn, &p, Purpose::MemberSharing, Want::ALL, "x", "http://x", lyceum::db::now())
    })
    .await;
    assert!(shared.iter().all(|s| s.learner.email.is_none()), "old consents keep what they covered");
}
on_both!(consent_ledger_is_append_only_and_tampering_is_caught, ledger_chain);

/// Drops the ledger's append-only guard, as someone with full database access could.
fn drop_ledger_guard(conn: &mut lyceum::db::Conn, pg: bool) -> diesel::QueryResult<usize> {
    if pg {
        diesel::sql_query("ALTER TABLE consent_ledger DISABLE TRIGGER consent_ledger_no_change").execute(conn)
    } else {
        diesel::sql_query("DROP TRIGGER consent_ledger_no_update").execute(conn)?;
        diesel::sql_query("DROP TRIGGER consent_ledger_no_delete").execute(conn)
    }
}

/// Three learners grant member sharing at enrollment; answers the partner.
async fn three_grants(app: &TestApp) -> Partner {
    let c = seed_course(app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    for name in ["ada", "bob", "cyrus"] {
        let l = verified(app, name).await;
        as_user(app, &l).await;
        let text = offered_text(app, "intro-python").await;
        app.post_form("/courses/intro-python/enroll", &[("run", "2026"), ("share", "yes"), ("text_id", &text)]).await;
    }
    partner
}

async fn recomputed_chain(app: TestApp) {
    three_grants(&app).await;
    let pg = app.config.database_url.starts_with("postgres");
    // Someone with the database alone edits the first row and recomputes
    // every later hash: the SHA-256 chain holds, the seals do not.
    let first = run(&app, move |conn| {
        drop_ledger_guard(conn, pg)?;
        let rows: Vec<ledger::LedgerRow> =
            consent_ledger::table.order(consent_ledger::id).select(ledger::LedgerRow::as_select()).load(conn)?;
        let mut prev = ledger::GENESIS.to_string();
        for mut row in rows.clone() {
            if row.id == rows[0].id {
                row.categories = "profile.name,profile.email,profile.company".into();
            }
            row.prev_hash = prev;
            row.row_hash = row.compute_hash();
            diesel::update(consent_ledger::table.find(row.id))
                .set((
                    consent_ledger::categories.eq(&row.categories),
                    consent_ledger::prev_hash.eq(&row.prev_hash),
                    consent_ledger::row_hash.eq(&row.row_hash),
                ))
                .execute(conn)?;
            prev = row.row_hash;
        }
        Ok::<_, diesel::result::Error>(rows[0].id)
    })
    .await;
    let v = run(&app, ledger::verify).await;
    let (id, why) = v.first_broken.clone().expect("a recomputed chain is caught");
    assert_eq!(id, first, "{v:?}");
    assert!(why.contains("seal"), "{why}");
}
on_both!(shr_5_a_ledger_recomputed_without_the_key_is_caught, recomputed_chain);

async fn forged_and_truncated(app: TestApp) {
    three_grants(&app).await;
    let pg = app.config.database_url.starts_with("postgres");
    let path = app.dir.path().join("consent-anchor.jsonl");
    let p = path.clone();
    let published = run(&app, move |conn| lyceum::consent::seal::publish(conn, &p, lyceum::db::now())).await;
    assert_eq!(published, 1);
    let p = path.clone();
    let again = run(&app, move |conn| lyceum::consent::seal::publish(conn, &p, lyceum::db::now())).await;
    assert_eq!(again, 0, "an unchanged head is not written again");
    let anchors = lyceum::consent::seal::read(&path).expect("the anchor file reads");
    assert_eq!(anchors.len(), 1);
    let a = anchors.clone();
    let v = run(&app, move |conn| ledger::verify_against(conn, &a)).await;
    assert!(v.intact(), "{v:?}");
    assert_eq!(v.newest_anchor, Some(anchors[0].ledger_id));

    // A row appended with a correct hash but without the key: caught.
    let forged = run(&app, |conn| {
        let mut row: ledger::LedgerRow = consent_ledger::table
            .order(consent_ledger::id.desc())
            .select(ledger::LedgerRow::as_select())
            .first(conn)?;
        row.prev_hash = row.row_hash.clone();
        row.action = "grant".into();
        row.created_at = lyceum::db::now();
        row.row_hash = row.compute_hash();
        diesel::insert_into(consent_ledger::table)
            .values((
                consent_ledger::user_id.eq(row.user_id),
                consent_ledger::partner_id.eq(row.partner_id),
                consent_ledger::purpose.eq(&row.purpose),
                consent_ledger::scope.eq(&row.scope),
                consent_ledger::action.eq(&row.action),
                consent_ledger::categories.eq(&row.categories),
                consent_ledger::method.eq(&row.method),
                consent_ledger::actor.eq(&row.actor),
                consent_ledger::created_at.eq(row.created_at),
                consent_ledger::prev_hash.eq(&row.prev_hash),
                consent_ledger::row_hash.eq(&row.row_hash),
            ))
            .returning(consent_ledger::id)
            .get_result::<i64>(conn)
    })
    .await;
    let v = run(&app, ledger::verify).await;
    assert_eq!(v.first_broken.as_ref().map(|(id, _)| *id), Some(forged), "{v:?}");

    // Deleting the newest rows leaves a chain that holds, but the published
    // head is gone.
    let newest = anchors[0].ledger_id;
    run(&app, move |conn| {
        drop_ledger_guard(conn, pg)?;
        diesel::delete(consent_ledger::table.filter(consent_ledger::id.ge(newest))).execute(conn)
    })
    .await;
    let v = run(&app, ledger::verify).await;
    assert!(v.first_broken.is_none() && v.rows == 2, "without the anchor the cut is invisible: {v:?}");
    let a = anchors.clone();
    let v = run(&app, move |conn| ledger::verify_against(conn, &a)).await;
    let why = v.anchor_broken.expect("the published head is missing");
    assert!(why.contains(&format!("row {newest}")) && why.contains("deleted"), "{why}");

    // An anchor line edited by someone without the key is refused as such.
    let mut edited = anchors[0].clone();
    edited.ledger_id -= 1;
    let v = run(&app, move |conn| ledger::verify_against(conn, &[edited])).await;
    assert!(v.anchor_broken.is_some_and(|w| w.contains("seal")));
}
on_both!(shr_5_forged_rows_and_deleted_newest_rows_are_caught, forged_and_truncated);

async fn consent_state(app: TestApp) {
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    let key = key_for(&app, &partner, &["enrollments"]).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let text = offered_text(&app, "intro-python").await;
    app.post_form("/courses/intro-python/enroll", &[("run", "2026"), ("share", "yes"), ("text_id", &text)]).await;
    let (_, page) = app.get("/sharing").await;
    let re = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap();
    let id = re.captures(&page).expect("a withdraw button")[1].to_string();
    app.post_form(&format!("/sharing/consents/{id}/withdraw"), &[]).await;
    let v = run(&app, ledger::verify).await;
    assert!(v.intact(), "{v:?}");

    // Setting the withdrawn consent back to granted outside the ledger is
    // refused by the database itself.
    let set_back = "UPDATE consents SET status = 'granted'";
    let refused = run(&app, move |conn| Ok::<_, String>(diesel::sql_query(set_back).execute(conn).is_err())).await;
    assert!(refused, "the consent state follows the ledger");
    let (_, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(!body.contains("ada@example.org"), "{body}");

    // With the guard dropped the change goes through, and verify names it.
    let pg = app.config.database_url.starts_with("postgres");
    run(&app, move |conn| {
        if pg {
            diesel::sql_query("ALTER TABLE consents DISABLE TRIGGER consents_follow_ledger").execute(conn)?;
        } else {
            diesel::sql_query("DROP TRIGGER consents_follow_ledger_update").execute(conn)?;
        }
        diesel::sql_query(set_back).execute(conn)
    })
    .await;
    let v = run(&app, ledger::verify).await;
    assert!(v.first_broken.is_none(), "the ledger itself is untouched: {v:?}");
    let why = v.state_broken.expect("the consent state is checked against the ledger");
    assert!(why.contains("changed outside the ledger"), "{why}");
}
on_both!(shr_4_the_consent_state_the_gate_reads_cannot_be_set_outside_the_ledger, consent_state);

async fn bad_codes(app: TestApp) {
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let codes = run(&app, |conn| {
        use lyceum::db::schema::{course_runs, sponsor_allocations};
        let now = lyceum::db::now();
        let run_id: i64 = course_runs::table.select(course_runs::id).first(conn).map_err(|e| e.to_string())?;
        let p = partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "hr@acme.example", now)
            .map_err(|e| e.to_string())?;
        let request =
            sponsors::SeatRequest { run_id, seats: 1, expires_at: now + chrono::Duration::days(1), note: "", by: None };
        let a = sponsors::allocate(conn, &p, &request, now).map_err(|e| e.to_string())?;
        // Seats cannot be allocated with an expiry in the past.
        let past = sponsors::SeatRequest { expires_at: now - chrono::Duration::days(1), ..request };
        assert!(sponsors::allocate(conn, &p, &past, now).is_err());
        let codes = sponsors::free_codes(conn, &a).map_err(|e| e.to_string())?;
        diesel::update(sponsor_allocations::table.find(a.id))
            .set(sponsor_allocations::expires_at.eq(now - chrono::Duration::hours(1)))
            .execute(conn)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(codes)
    })
    .await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let (status, body) = app.get(&format!("/redeem?code={}", codes[0])).await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(body.contains("expired"), "{body}");
    let (status, body) = app.get("/redeem?code=NOPE-NOPE-NOPE").await;
    assert_eq!(status, Status::UnprocessableEntity);
    assert!(body.contains("not valid"));
    let res = app.post_form("/redeem", &[("code", &codes[0]), ("share", "yes"), ("text_id", "1")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, body) = app.get(res.headers().get_one("Location").unwrap()).await;
    assert!(body.contains("expired"), "the error is shown and nothing is enrolled");
    let n: i64 = run(&app, |conn| enrollments::table.count().get_result::<i64>(conn)).await;
    assert_eq!(n, 0);
    let res = app.post_form("/redeem", &[("code", &codes[0]), ("share", "perhaps")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
}
on_both!(expired_and_unknown_sponsor_codes_are_refused_clearly, bad_codes);

async fn staff_on_behalf(app: TestApp) {
    // promise: RGT-3 — a learner who asks by letter or phone gets the same withdrawal and restriction, recorded.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    member_partner(&app, c.member_id, &[Category::ProfileName]).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let text = offered_text(&app, "intro-python").await;
    app.post_form(
        "/courses/intro-python/enroll",
        &[("run", "2026"), ("track", "audit"), ("share", "yes"), ("text_id", &text)],
    )
    .await;
    let (status, _) = app.get("/staff/sharing?login=ada").await;
    assert_eq!(status, Status::Forbidden, "learners cannot act for others");

    let grace = verified(&app, "grace").await;
    run(&app, |conn| lyceum::accounts::service::ensure_staff(conn, "grace@example.org", None, "Grace", "H")).await;
    as_user(&app, &grace).await;
    let (status, page) = app.get("/staff/sharing?login=nobody-here").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("No account has that username or email."));
    let (status, page) = app.get("/staff/sharing?login=ada@example.org").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Sharing of Ada Lovelace"), "{page}");
    let re = regex::Regex::new(r#"action="(/staff/sharing/\d+/consents/\d+/withdraw)""#).unwrap();
    let withdraw = re.captures(&page).expect("a withdraw form")[1].to_string();

    let res = app.post_form(&withdraw, &[("note", "")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity, "a staff entry needs its note");
    let res = app.post_form(&withdraw, &[("note", "Letter of 2 November, signed by the learner")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let ada_id = user_id(&app, "ada").await;
    let res = app
        .post_form(
            &format!("/staff/sharing/{ada_id}/restrict"),
            &[("restrict", "on"), ("note", "Phone call, ID checked")],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);

    let rows = run(&app, |conn| {
        consent_ledger::table.order(consent_ledger::id).select(ledger::LedgerRow::as_select()).load(conn)
    })
    .await;
    let grace_id = user_id(&app, "grace").await;
    let staff_rows: Vec<_> = rows.iter().filter(|r| r.actor == "staff").collect();
    assert_eq!(staff_rows.len(), 2);
    assert_eq!(staff_rows[0].action, "withdraw");
    assert_eq!(staff_rows[0].note.as_deref(), Some("Letter of 2 November, signed by the learner"));
    assert_eq!(staff_rows[1].action, "restrict");
    assert!(
        staff_rows
            .iter()
            .all(|r| r.method == "staff_entry" && r.actor_user_id == Some(grace_id) && r.user_id == ada_id)
    );
    let verification = run(&app, ledger::verify).await;
    assert_eq!(verification.first_broken, None, "staff entries are chained like every other");

    // The learner sees what was done for them, with the note.
    as_user(&app, &ada).await;
    let (_, page) = app.get("/sharing").await;
    assert!(
        page.contains("Our staff, for you, restricted all sharing") && page.contains("“Phone call, ID checked”"),
        "{page}"
    );
    assert!(page.contains("Sharing is frozen"), "{page}");
}
on_both!(rgt_3_staff_act_for_a_learner_with_a_note, staff_on_behalf);

/// Walks the member export under one fixed export id; the ledger ids its disclosure rows name.
async fn walk(app: &TestApp, partner: &Partner) -> Vec<Option<i64>> {
    let p = partner.clone();
    run(app, move |conn| {
        sharing::all(conn, &p, Purpose::MemberSharing, Want::ALL, "push-key-1", "http://x", lyceum::db::now())?;
        let filter = lyceum::consent::manifests::Filter { export_id: Some("push-key-1"), ..Default::default() };
        lyceum::consent::manifests::expand(conn, &filter)
            .map(|all| all.into_iter().map(|d| d.consent_ledger_id).collect::<Vec<Option<i64>>>())
    })
    .await
}

async fn rewalk(app: TestApp) {
    // promise: SHR-5 — a re-walked export (a retried push) logs each record once per basis it left under.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileName]).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let text = offered_text(&app, "intro-python").await;
    app.post_form(
        "/courses/intro-python/enroll",
        &[("run", "2026"), ("track", "audit"), ("share", "yes"), ("text_id", &text)],
    )
    .await;
    let first = walk(&app, &partner).await;
    assert_eq!(first.len(), 1);
    assert_eq!(walk(&app, &partner).await, first, "the same record on the same basis is logged once");
    // Withdrawn, then granted again for the same fields: the next walk leaves under the new consent.
    let (_, page) = app.get("/sharing").await;
    let id = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap().captures(&page).unwrap()[1]
        .to_string();
    app.post_form(&format!("/sharing/consents/{id}/withdraw"), &[]).await;
    let ada_id = user_id(&app, "ada").await;
    let p = partner.clone();
    let run_id: i64 = run(&app, |conn| {
        lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)
    })
    .await;
    run(&app, move |conn| {
        let cats: String = lyceum::db::schema::consents::table
            .filter(lyceum::db::schema::consents::user_id.eq(ada_id))
            .select(lyceum::db::schema::consents::categories)
            .first(conn)?;
        let evidence =
            ledger::Evidence::learner_web(ada_id, &lyceum::web::guards::ClientInfo { ip: None, user_agent: None });
        ledger::append(
            conn,
            ledger::Entry {
                user_id: ada_id,
                partner_id: Some(p.id),
                purpose: Purpose::MemberSharing.as_str(),
                scope: &lyceum::consent::run_scope(run_id),
                action: ledger::Action::Grant,
                categories: &Categories::parse(&cats),
                text: None,
                evidence: &evidence,
            },
            lyceum::db::now(),
        )
    })
    .await;
    let second = walk(&app, &partner).await;
    assert_eq!(second.len(), 2, "{second:?}");
    assert_ne!(second[0], second[1], "the new row names the new consent");
}
on_both!(shr_5_a_rewalked_export_logs_each_basis_once, rewalk);

async fn research(app: TestApp) {
    // promise: SHR-6 — researchers get aggregates only, and no group smaller than five.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let member = member_partner(&app, c.member_id, &[Category::ProfileName]).await;
    let names = ["ada", "bob", "cyrus", "dora", "emil", "fay", "gus"];
    for (i, name) in names.iter().enumerate() {
        let l = verified(&app, name).await;
        as_user(&app, &l).await;
        let text = offered_text(&app, "intro-python").await;
        app.post_form(
            "/courses/intro-python/enroll",
            &[("run", "2026"), ("track", "audit"), ("share", "no"), ("text_id", &text)],
        )
        .await;
        if i < 5 {
            app.post_form(&format!("/learn/intro-python/units/{}/complete", c.units[0]), &[]).await;
        }
        if *name == "gus" {
            // Restricted learners are not counted at all.
            app.post_form("/sharing/restrict", &[("restrict", "on")]).await;
        }
    }
    let lab = run(&app, |conn| {
        partners::create(
            conn,
            PartnerKind::Researcher,
            "edlab",
            "Education Lab",
            None,
            "lab@uni.example",
            lyceum::db::now(),
        )
        .map_err(|e| e.to_string())
    })
    .await;
    let key = key_for(&app, &lab, &["aggregates"]).await;
    let (status, body) = pull(&app, &key, "/api/v1/aggregates").await;
    assert_eq!(status, Status::Ok, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r["course"], "intro-python");
    assert_eq!(r["enrolled"], 6, "six counted; the restricted learner is not");
    assert_eq!(r["progress"][1], 5, "five learners completed a third of the units");
    assert_eq!(r["progress"][0], serde_json::Value::Null, "a group of one is hidden");
    assert_eq!(r["completed"], serde_json::Value::Null);
    assert_eq!(r["mean_grade_percent"], serde_json::Value::Null);
    for name in names {
        assert!(!body.contains(name), "no learner appears in aggregates");
    }
    // Only research partners, only with the scope.
    let member_key = key_for(&app, &member, &["aggregates"]).await;
    let (status, _) = pull(&app, &member_key, "/api/v1/aggregates").await;
    assert_eq!(status, Status::Forbidden);
    let narrow = key_for(&app, &lab, &["enrollments"]).await;
    let (status, body) = pull(&app, &narrow, "/api/v1/aggregates").await;
    assert_eq!(status, Status::Forbidden);
    assert!(body.contains("may not read aggregates"));
}
on_both!(shr_6_researchers_get_aggregates_without_small_groups, research);

async fn minor_asks_parent(app: TestApp) {
    // promise: ACC-9 — a minor's consent to sharing is their parent's decision, recorded as theirs.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    let key = key_for(&app, &partner, &["enrollments"]).await;
    let born = (chrono::Utc::now().date_naive() - chrono::Duration::days(15 * 366)).format("%Y-%m-%d").to_string();
    let res = app.sign_up_with("teen", &[("date_of_birth", &born), ("parent_email", "parent@example.org")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let teen = crate::common::Learner {
        username: "teen".into(),
        email: "teen@example.org".into(),
        password: crate::common::PASSWORD.into(),
    };
    app.verify(&teen).await;
    let link = app.mailed_link("parent@example.org", "/parent-consent/").await.expect("account confirmation");
    app.post_form(&link, &[("parent_name", "Pat Parent"), ("confirm", "true")]).await;
    as_user(&app, &teen).await;
    let text = offered_text(&app, "intro-python").await;
    let res = app
        .post_form(
            "/courses/intro-python/enroll",
            &[("run", "2026"), ("track", "audit"), ("share", "yes"), ("text_id", &text)],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"), "the minor is enrolled at once");
    let granted: i64 =
        run(&app, |conn| consent_ledger::table.filter(consent_ledger::action.eq("grant")).count().get_result(conn))
            .await;
    assert_eq!(granted, 0, "a minor's yes is not a consent");
    let (_, page) = app.get("/sharing").await;
    assert!(page.contains("Waiting for your parent or guardian"), "{page}");
    let (_, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(!body.contains("teen@example.org"), "nothing identified leaves before the parent agrees");

    // The parent sees the exact text and categories, and decides with their name.
    app.sign_out().await;
    let link = app.mailed_link("parent@example.org", "/parent-sharing/").await.expect("a request to the parent");
    let (status, page) = app.get(&link).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Your email address") && page.contains("Version 1"), "{page}");
    let res = app.post_form(&link, &[("decision", "yes"), ("parent_name", "")]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity, "the parent signs with their name");
    let res = app.post_form(&link, &[("decision", "yes"), ("parent_name", "Pat Parent")]).await;
    assert_eq!(res.status(), Status::Ok);
    let (status, _) = app.get(&link).await;
    assert_eq!(status, Status::NotFound, "a link decides once");
    let rows = run(&app, |conn| {
        consent_ledger::table
            .filter(consent_ledger::action.eq("grant"))
            .select(ledger::LedgerRow::as_select())
            .load(conn)
    })
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].actor.as_str(), rows[0].method.as_str()), ("parent", "email_link"));
    assert_eq!(rows[0].actor_name.as_deref(), Some("Pat Parent"));
    assert!(rows[0].text_sha256.is_some());
    let (_, body) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    assert!(body.contains("teen@example.org"), "shared once the parent agreed: {body}");
    // The learner may still decline or withdraw alone.
    as_user(&app, &teen).await;
    let (_, page) = app.get("/sharing").await;
    assert!(page.contains("Your parent or guardian agreed") && !page.contains("Waiting for your parent"), "{page}");
}
on_both!(acc_9_a_minors_sharing_consent_comes_from_their_parent, minor_asks_parent);

/// Every value a JSON Lines export line carries, as text.
fn values(rec: &serde_json::Value) -> Vec<String> {
    rec.as_object()
        .unwrap()
        .values()
        .filter(|v| !v.is_null())
        .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
        .collect()
}

async fn unlinkable(app: TestApp) {
    // De-identified records link to nothing: not to records that name the learner, not across runs, not across exports.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    seed_course(&app, "northbridge", "data-101", "Data 101", None).await;
    let partner = member_partner(&app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    let key = key_for(&app, &partner, &["enrollments", "progress", "results"]).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    // Ada shares her identity in one course and not in the other.
    for (slug, share) in [("intro-python", "yes"), ("data-101", "no")] {
        let text = offered_text(&app, slug).await;
        app.post_form(
            &format!("/courses/{slug}/enroll"),
            &[("run", "2026"), ("track", "audit"), ("share", share), ("text_id", &text)],
        )
        .await;
    }
    let (_, first) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    let first = lines(&first);
    let named = first.iter().find(|r| r["learner_email"] == "ada@example.org").expect("named in intro-python");
    let other = first.iter().find(|r| r["learner_email"].is_null()).expect("de-identified in data-101");
    assert_eq!(other["course_id"], "data-101", "{first:?}");
    let named_values = values(named);
    for v in values(other) {
        assert!(
            !named_values.contains(&v)
                || ["2026", "audit", "active", "northbridge", "false", "true", "enrollment"].contains(&v.as_str()),
            "the de-identified record shares {v:?} with the named one"
        );
    }
    assert!(other["enrolled_at"].as_str().unwrap().ends_with("T00:00:00Z"), "the day only: {other}");

    // Ada withdraws: intro-python's records now come without identity and link to neither.
    as_user(&app, &ada).await;
    let (_, page) = app.get("/sharing").await;
    let id = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap().captures(&page).unwrap()[1]
        .to_string();
    app.post_form(&format!("/sharing/consents/{id}/withdraw"), &[]).await;
    let (_, second) = pull(&app, &key, "/api/v1/exports/enrollments?format=jsonl").await;
    let second = lines(&second);
    assert!(second.iter().all(|r| r["learner_email"].is_null() && r["learner_name"].is_null()), "nobody named now");
    let ids: Vec<&str> = second.iter().map(|r| r["learner_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "two runs, two unrelated codes");
    for r in &second {
        let id = r["learner_id"].as_str().unwrap();
        assert!(id != "ada" && !first.iter().any(|f| f["cursor"] == r["cursor"]), "a cursor repeats across exports");
        assert!(!named_values.iter().any(|v| v == id));
    }
    // The same run keeps its code from export to export, for the course team's counts.
    assert!(ids.contains(&other["learner_id"].as_str().unwrap()));
    // The learner is told what each partner can link.
    let (_, page) = app.get("/sharing").await;
    assert!(page.contains("cannot link"), "the Sharing page explains the codes");
}
on_both!(shr_4_deidentified_records_cannot_be_linked_to_named_ones, unlinkable);

/// The categories the `n`-th list of fields on a consent form (`ul.shared-fields`) names, read
/// back from their labels; a label that names no category fails.
fn listed(page: &str, n: usize) -> std::collections::BTreeSet<Category> {
    let lists: Vec<&str> = page.split(r#"<ul class="shared-fields">"#).skip(1).collect();
    let list = lists.get(n).unwrap_or_else(|| panic!("no list #{n} of fields on the form: {page}"));
    let list = &list[..list.find("</ul>").expect("a closed list")];
    list.split("<li>")
        .skip(1)
        .map(|li| {
            let label = li.split("</li>").next().unwrap().trim();
            Category::ALL
                .into_iter()
                .find(|c| c.label() == label)
                .unwrap_or_else(|| panic!("the form lists {label:?}, which is no category's label"))
        })
        .collect()
}

/// The categories of what left for a learner under a purpose, from the
/// disclosure rows' fields; a field outside the table of fields fails.
pub(crate) async fn released(app: &TestApp, username: &str, purpose: Purpose) -> std::collections::BTreeSet<Category> {
    let uid = user_id(app, username).await;
    let fields: Vec<String> = run(app, move |conn| {
        let all = lyceum::consent::manifests::disclosures_of(conn, uid, i64::MAX)?;
        Ok::<_, diesel::result::Error>(
            all.into_iter().filter(|d| d.purpose == purpose.as_str()).map(|d| d.fields).collect::<Vec<String>>(),
        )
    })
    .await;
    assert!(!fields.is_empty(), "nothing left for {username} under {}", purpose.as_str());
    fields
        .iter()
        .flat_map(|f| f.split(','))
        .filter(|f| *f != "learner.pseudonym")
        .map(|f| Category::of_field(f).unwrap_or_else(|| panic!("{f} is in no category")))
        .collect()
}

/// Consent texts never list fields in their own words: the list under each
/// is generated, so the two cannot disagree.
pub(crate) async fn texts_list_no_fields(app: &TestApp) {
    let texts = run(app, lyceum::consent::texts::all).await;
    assert!(texts.len() >= 7, "the default texts");
    for t in texts {
        for c in Category::ALL {
            let words = format!("your {}", c.short_label());
            assert!(!t.body.contains(&words), "the {} text names “{words}” itself: {}", t.purpose, t.body);
        }
    }
}

async fn consent_lists_what_leaves(app: TestApp) {
    // promise: SHR-2 — the list a learner agrees to is exactly what leaves, generated from one table of fields.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    texts_list_no_fields(&app).await;

    // Member sharing: the course page's list, and what the member's exports carry.
    let member = member_partner(&app, c.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    let key = key_for(&app, &member, &["enrollments", "progress", "results"]).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let (_, about) = app.get("/courses/intro-python").await;
    let text = offered_text(&app, "intro-python").await;
    app.post_form(
        "/courses/intro-python/enroll",
        &[("run", "2026"), ("track", "audit"), ("share", "yes"), ("text_id", &text)],
    )
    .await;
    for what in ["enrollments", "progress", "results"] {
        let (status, _) = pull(&app, &key, &format!("/api/v1/exports/{what}?format=jsonl")).await;
        assert_eq!(status, Status::Ok);
    }
    assert_eq!(listed(&about, 0), released(&app, "ada", Purpose::MemberSharing).await);

    // Sponsorship and the sponsor's separate marketing question: the
    // redemption form's two lists, and what the report and the contact list release.
    let run_id: i64 = run(&app, |conn| {
        lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)
    })
    .await;
    let (sponsor, codes) = run(&app, move |conn| {
        let now = lyceum::db::now();
        let p = partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "hr@acme.example", now)
            .map_err(|e| e.to_string())?;
        let seats = sponsors::SeatRequest {
            run_id,
            seats: 1,
            expires_at: now + chrono::Duration::days(30),
            note: "",
            by: None,
        };
        let a = sponsors::allocate(conn, &p, &seats, now).map_err(|e| e.to_string())?;
        let codes = sponsors::free_codes(conn, &a).map_err(|e| e.to_string())?;
        Ok::<_, String>((p, codes))
    })
    .await;
    let bob = verified(&app, "bob").await;
    as_user(&app, &bob).await;
    let (_, offer) = app.get(&format!("/redeem?code={}", codes[0])).await;
    let capture = |re: &str| regex::Regex::new(re).unwrap().captures(&offer).unwrap()[1].to_string();
    let (text, mtext) =
        (capture(r#"name="text_id" value="(\d+)""#), capture(r#"name="marketing_text_id" value="(\d+)""#));
    let res = app
        .post_form(
            "/redeem",
            &[
                ("code", &codes[0]),
                ("share", "yes"),
                ("text_id", &text),
                ("marketing", "true"),
                ("marketing_text_id", &mtext),
            ],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let boss = verified(&app, "boss").await;
    let boss_id = user_id(&app, "boss").await;
    let s = sponsor.clone();
    run(&app, move |conn| partners::appoint(conn, &s, boss_id, boss_id)).await;
    as_user(&app, &boss).await;
    let (status, _) = app.get("/partners/acme/report").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(listed(&offer, 0), released(&app, "bob", Purpose::Sponsorship).await);
    let s = sponsor.clone();
    let contacts = run(&app, move |conn| sharing::marketing_contacts(conn, &s, "m-1", lyceum::db::now())).await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(listed(&offer, 1), released(&app, "bob", Purpose::PartnerMarketing).await);
}
on_both!(shr_2_every_consent_lists_exactly_what_the_gate_releases, consent_lists_what_leaves);

/// A sponsor "acme" with one seat each for `who` on the first run; each
/// redeems it, sharing or not. Returns the boss who reads the report.
async fn sponsor_with(app: &TestApp, who: &[(&Learner, bool)]) -> Learner {
    let run_id: i64 =
        run(app, |conn| lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn))
            .await;
    let seats = who.len() as i32;
    let codes = run(app, move |conn| {
        let now = lyceum::db::now();
        let p = partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "hr@acme.example", now)
            .map_err(|e| e.to_string())?;
        let seats =
            sponsors::SeatRequest { run_id, seats, expires_at: now + chrono::Duration::days(30), note: "", by: None };
        let a = sponsors::allocate(conn, &p, &seats, now).map_err(|e| e.to_string())?;
        sponsors::free_codes(conn, &a).map_err(|e| e.to_string())
    })
    .await;
    let text_id = regex::Regex::new(r#"name="text_id" value="(\d+)""#).unwrap();
    for ((l, share), code) in who.iter().zip(codes) {
        as_user(app, l).await;
        let (_, offer) = app.get(&format!("/redeem?code={code}")).await;
        let text = text_id.captures(&offer).unwrap()[1].to_string();
        let answer = if *share { "yes" } else { "no" };
        let res = app.post_form("/redeem", &[("code", &code), ("share", answer), ("text_id", &text)]).await;
        assert_eq!(res.status(), Status::SeeOther);
    }
    let boss = verified(app, "boss").await;
    let boss_id = user_id(app, "boss").await;
    run(app, move |conn| {
        let p = partners::by_slug(conn, "acme")?.expect("the sponsor");
        partners::appoint(conn, &p, boss_id, boss_id)
    })
    .await;
    boss
}

async fn sharing_in_plain_words(app: TestApp) {
    // promise: SHR-5 — the learner reads what was shared, with whom, for what and on what basis, in words.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = verified(&app, "ada").await;
    let boss = sponsor_with(&app, &[(&ada, true)]).await;
    as_user(&app, &boss).await;
    // Two views of the report: two disclosures of the same record.
    app.get("/partners/acme/report").await;
    app.get("/partners/acme/report").await;
    as_user(&app, &ada).await;
    let (_, page) = app.get("/sharing").await;
    let re = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap();
    let id = re.captures(&page).expect("a withdraw button")[1].to_string();
    app.post_form(&format!("/sharing/consents/{id}/withdraw"), &[]).await;
    let (status, page) = app.get("/sharing").await;
    assert_eq!(status, Status::Ok);
    let today = chrono::Utc::now().format("%-d %b %Y").to_string();
    assert!(
        page.contains(&format!(
            "Acme Corp received your name, email address, enrollment, last activity, progress, completion and \
             certificate in Introduction to Python twice, last on {today}."
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!("You withdrew your consent to share your name, email address, enrollment, last activity, progress, completion and certificate on {today}; Acme Corp receives nothing new about you under it from then on.")),
        "{page}"
    );
    assert!(page.contains("Progress reports for the sponsor who pays for your place, with your consent"), "{page}");
    // The detail, one click away: each disclosure with its time, fields and basis.
    assert!(page.contains("<details") && page.contains("Your name, email address, enrollment"), "{page}");
    // No stored code anywhere on the page.
    for code in
        ["learner.", "progress.", "enrollment.", "result.", "web_form", "deidentified", ">grant<", "sponsorship"]
    {
        assert!(!page.contains(code), "the page shows the code {code}: {page}");
    }
}
on_both!(shr_5_the_sharing_page_tells_the_log_in_plain_words, sharing_in_plain_words);

async fn report_worth_looking_at(app: TestApp) {
    // promise: SHR-6 — a chart hides small groups only where it would tell what the table beside it does not.
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let (ada, bob) = (verified(&app, "ada").await, verified(&app, "bob").await);
    let boss = sponsor_with(&app, &[(&ada, true), (&bob, false)]).await;
    // Ada holds a certificate for the course.
    let ada_id = user_id(&app, "ada").await;
    run(&app, move |conn| {
        use lyceum::db::schema::{certificates, course_runs};
        let run_id: i64 = course_runs::table.select(course_runs::id).first(conn)?;
        diesel::insert_into(certificates::table)
            .values((
                certificates::code.eq("ABCD-EFGH-JKLM"),
                certificates::user_id.eq(Some(ada_id)),
                certificates::run_id.eq(Some(run_id)),
                certificates::member_slug.eq("northbridge"),
                certificates::name_at_issue.eq("Ada Lovelace"),
                certificates::course_title.eq("Introduction to Python"),
                certificates::member_name.eq("northbridge University"),
                certificates::run_key.eq("2026"),
                certificates::grade_percent.eq(91.0),
                certificates::issued_at.eq(lyceum::db::now()),
                certificates::status_index.eq(7),
            ))
            .execute(conn)
    })
    .await;
    as_user(&app, &boss).await;
    let (status, page) = app.get("/partners/acme/report").await;
    assert_eq!(status, Status::Ok);
    // The table lists Ada with her figures, so the charts show her exactly;
    // Bob declined and is in neither (a count of two would tell).
    assert!(page.contains("Ada Lovelace") && !page.contains("bob@example.org"), "{page}");
    assert!(!page.contains("fewer than"), "nothing is hidden that the table shows: {page}");
    let charts: Vec<&str> = page.split("<svg").skip(1).map(|s| &s[..s.find("</svg>").unwrap()]).collect();
    assert_eq!(charts.len(), 3, "{page}");
    let size = regex::Regex::new(r#"font-size="(\d+)""#).unwrap();
    let view = regex::Regex::new(r#"viewBox="0 0 (\d+) \d+""#).unwrap();
    for chart in &charts {
        assert!(chart.contains(r#"role="img""#) && chart.contains("<title") && chart.contains("<desc"), "{chart}");
        let width: u32 = view.captures(chart).expect("a viewBox")[1].parse().unwrap();
        assert!(width <= 400, "drawn for a phone's width, so labels are not shrunk below 12 px: {chart}");
        for px in size.captures_iter(chart) {
            assert!(px[1].parse::<u32>().unwrap() >= 14, "a label under 14 units: {chart}");
        }
    }
    assert!(charts[0].contains("Enrolled: 1"), "the funnel counts Ada only: {}", charts[0]);
    // Each chart has its figures as a table too.
    assert!(page.contains(r#"<table class="chart-figures""#), "{page}");
    // The certificate, linked to its public page.
    assert!(page.contains(r#"<a href="/certificates/ABCD-EFGH-JKLM">ABCD-EFGH-JKLM</a>"#), "{page}");
    let (_, csv) = app.get("/partners/acme/report.csv").await;
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "learner,email,course,run,enrolled_at,last_activity_at,progress_percent,completed_at,certificate"
    );
    assert!(csv.lines().nth(1).unwrap().ends_with("/certificates/ABCD-EFGH-JKLM"), "{csv}");
    // A filter that matches nobody says so, not that nobody shares.
    let (_, page) = app.get("/partners/acme/report?status=completed").await;
    assert!(page.contains("No learner matches this filter.") && !page.contains("No learner shares"), "{page}");
    // After Ada withdraws nobody shares.
    as_user(&app, &ada).await;
    let (_, sharing) = app.get("/sharing").await;
    let id = regex::Regex::new(r#"action="/sharing/consents/(\d+)/withdraw""#).unwrap().captures(&sharing).unwrap()[1]
        .to_string();
    app.post_form(&format!("/sharing/consents/{id}/withdraw"), &[]).await;
    as_user(&app, &boss).await;
    let (_, page) = app.get("/partners/acme/report?status=completed").await;
    assert!(page.contains("No learner shares their progress with you yet."), "{page}");
}
on_both!(shr_6_the_sponsor_report_charts_what_its_table_shows, report_worth_looking_at);

/// One seat of `sponsor` on `run_id` (the partner made if need be),
/// redeemed by `who`, who shares (or not).
async fn redeem_seat(app: &TestApp, sponsor: &str, run_id: i64, who: &Learner, share: bool) {
    let slug = sponsor.to_string();
    let code = run(app, move |conn| {
        let now = lyceum::db::now();
        let p = match partners::by_slug(conn, &slug).map_err(|e| e.to_string())? {
            Some(p) => p,
            None => partners::create(conn, PartnerKind::Sponsor, &slug, &slug, None, "hr@sponsor.example", now)
                .map_err(|e| e.to_string())?,
        };
        let seats = sponsors::SeatRequest {
            run_id,
            seats: 1,
            expires_at: now + chrono::Duration::days(30),
            note: "",
            by: None,
        };
        let a = sponsors::allocate(conn, &p, &seats, now).map_err(|e| e.to_string())?;
        sponsors::free_codes(conn, &a).map_err(|e| e.to_string())?.pop().ok_or_else(|| "no code".to_string())
    })
    .await;
    as_user(app, who).await;
    let (_, offer) = app.get(&format!("/redeem?code={code}")).await;
    let text = regex::Regex::new(r#"name="text_id" value="(\d+)""#).unwrap().captures(&offer).expect("an offer")[1]
        .to_string();
    let answer = if share { "yes" } else { "no" };
    let res = app.post_form("/redeem", &[("code", &code), ("share", answer), ("text_id", &text)]).await;
    assert_eq!(res.status(), Status::SeeOther);
}

/// A ledger entry of `username`'s for acme's sponsorship of `run_id`.
async fn acme_consent(app: &TestApp, username: &str, run_id: i64, action: ledger::Action, cats: &[Category]) {
    let user = user_id(app, username).await;
    let cats = Categories::of(cats.iter().copied());
    run(app, move |conn| {
        let p = partners::by_slug(conn, "acme").map_err(|e| e.to_string())?.expect("acme");
        let text = lyceum::consent::texts::current(conn, &p, Purpose::Sponsorship, "en")
            .map_err(|e| e.to_string())?
            .expect("a text");
        let evidence =
            ledger::Evidence::learner_web(user, &lyceum::web::guards::ClientInfo { ip: None, user_agent: None });
        let entry = ledger::Entry {
            user_id: user,
            partner_id: Some(p.id),
            purpose: Purpose::Sponsorship.as_str(),
            scope: &lyceum::consent::run_scope(run_id),
            action,
            categories: &cats,
            text: (action == ledger::Action::Grant).then_some(&text),
            evidence: &evidence,
        };
        ledger::append(conn, entry, lyceum::db::now()).map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
}

/// `username`'s enrollment in `run_id`: `units` of the course's units
/// completed, completed `completed` days ago (or not), access expired or not.
async fn progress_of(app: &TestApp, username: &str, run_id: i64, units: &[i64], completed: Option<i64>, expired: bool) {
    use lyceum::db::schema::unit_completions;
    let user = user_id(app, username).await;
    let units = units.to_vec();
    run(app, move |conn| {
        let now = lyceum::db::now();
        let e: i64 = enrollments::table
            .filter(enrollments::user_id.eq(user))
            .filter(enrollments::run_id.eq(run_id))
            .select(enrollments::id)
            .first(conn)?;
        for u in units {
            diesel::insert_into(unit_completions::table)
                .values((
                    unit_completions::enrollment_id.eq(e),
                    unit_completions::unit_id.eq(u),
                    unit_completions::completed_at.eq(now),
                ))
                .execute(conn)?;
        }
        diesel::update(enrollments::table.filter(enrollments::id.eq(e)))
            .set((
                enrollments::completed_at.eq(completed.map(|d| now - chrono::Duration::days(d))),
                enrollments::access_expires_at.eq(expired.then(|| now - chrono::Duration::days(1))),
            ))
            .execute(conn)
    })
    .await;
}

/// The text of a chart's description ("Enrolled: 3, Started: 2, …").
fn chart_desc(page: &str, id: &str) -> Option<String> {
    let re = regex::Regex::new(&format!(r#"<desc id="{id}-d">([^<]*)</desc>"#)).unwrap();
    re.captures(page).map(|c| c[1].replace("&amp;", "&"))
}

/// The charts' descriptions as the report should draw them for these CSV
/// rows (learner, email, course, run, enrolled, active, progress, completed, …).
fn charts_of(rows: &[csv::StringRecord]) -> Option<[String; 3]> {
    if rows.is_empty() {
        return None;
    }
    let progress = |r: &csv::StringRecord| r[6].parse::<f64>().unwrap_or(0.0);
    let n = rows.len();
    let started = rows.iter().filter(|r| progress(r) > 0.0).count();
    let half = rows.iter().filter(|r| progress(r) >= 50.0).count();
    let done = rows.iter().filter(|r| !r[7].is_empty()).count();
    let funnel = format!("Enrolled: {n}, Started: {started}, Half-way: {half}, Completed: {done}");
    let mut dist = [0; 5];
    for r in rows {
        let p = progress(r);
        dist[if p >= 100.0 { 4 } else { (p / 25.0) as usize }] += 1;
    }
    let labels = ["0–24 %", "25–49 %", "50–74 %", "75–99 %", "100 %"];
    let dist = labels.iter().zip(dist).map(|(l, c)| format!("{l}: {c}")).collect::<Vec<_>>().join(", ");
    let today = chrono::Utc::now().date_naive();
    let monday = today - chrono::Duration::days(chrono::Datelike::weekday(&today).num_days_from_monday() as i64);
    let weeks = (0..8)
        .rev()
        .map(|w| {
            let start = monday - chrono::Duration::weeks(w);
            let count = rows
                .iter()
                .filter_map(|r| chrono::NaiveDate::parse_from_str(&r[7], "%Y-%m-%d").ok())
                .filter(|d| *d >= start && *d < start + chrono::Duration::weeks(1))
                .count();
            format!("Week of {}: {count}", start.format("%-d %b"))
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some([funnel, dist, weeks])
}

async fn report_figures_follow_the_gate(app: TestApp) {
    // promise: SHR-6 — the report's charts, counted in the database, count exactly the learners the gate lists.
    let python = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let data = seed_course(&app, "northbridge", "data-science", "Data Science", None).await;
    let run_of = |slug: &'static str| {
        let app = &app;
        async move {
            run(app, move |conn| {
                use lyceum::db::schema::{course_runs, courses};
                course_runs::table
                    .inner_join(courses::table)
                    .filter(courses::slug.eq(slug))
                    .select(course_runs::id)
                    .first::<i64>(conn)
            })
            .await
        }
    };
    let (a, b) = (run_of("intro-python").await, run_of("data-science").await);
    let names = ["ada", "bob", "cleo", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim", "lea", "moe"];
    let mut people = std::collections::HashMap::new();
    for n in names {
        people.insert(n, verified(&app, n).await);
    }
    let p = |n: &str| &people[n];
    // Sharing on the first course: in progress, completed, access expired.
    redeem_seat(&app, "acme", a, p("ada"), true).await;
    progress_of(&app, "ada", a, &python.units[..1], None, false).await;
    redeem_seat(&app, "acme", a, p("fay"), true).await;
    progress_of(&app, "fay", a, &python.units, Some(0), false).await;
    redeem_seat(&app, "acme", a, p("lea"), true).await;
    progress_of(&app, "lea", a, &python.units[..2], None, true).await;
    // Declined, withdrawn, restricted, erased: none of them counts.
    redeem_seat(&app, "acme", a, p("bob"), false).await;
    redeem_seat(&app, "acme", a, p("cleo"), true).await;
    progress_of(&app, "cleo", a, &python.units, Some(1), false).await;
    acme_consent(&app, "cleo", a, ledger::Action::Withdraw, &[]).await;
    redeem_seat(&app, "acme", a, p("dan"), true).await;
    progress_of(&app, "dan", a, &python.units, Some(1), false).await;
    as_user(&app, p("dan")).await;
    app.post_form("/sharing/restrict", &[("restrict", "on")]).await;
    redeem_seat(&app, "acme", a, p("eve"), true).await;
    progress_of(&app, "eve", a, &python.units[..2], None, false).await;
    crate::departures::erase(&app, p("eve")).await;
    // Enrolled with a consent for acme but not sponsored by it; sponsored by another.
    as_user(&app, p("jon")).await;
    let (_, about) = app.get("/courses/intro-python").await;
    let mut form = vec![("run", "2026".to_string()), ("track", "audit".to_string()), ("share", "no".to_string())];
    if let Some(c) = regex::Regex::new(r#"name="text_id" value="(\d+)""#).unwrap().captures(&about) {
        form.push(("text_id", c[1].to_string()));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = app.post_form("/courses/intro-python/enroll", &form).await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));
    acme_consent(&app, "jon", a, ledger::Action::Grant, &[Category::ProfileEmail, Category::Enrollment]).await;
    redeem_seat(&app, "globex", a, p("kim"), true).await;
    progress_of(&app, "kim", a, &python.units, Some(0), false).await;
    // The second course: completed three weeks ago, completed long ago, a
    // consent that does not cover progress nor completion, and one that
    // yields no record at all.
    redeem_seat(&app, "acme", b, p("gus"), true).await;
    progress_of(&app, "gus", b, &data.units[..2], Some(21), false).await;
    redeem_seat(&app, "acme", b, p("moe"), true).await;
    progress_of(&app, "moe", b, &data.units, Some(200), false).await;
    redeem_seat(&app, "acme", b, p("hal"), true).await;
    progress_of(&app, "hal", b, &data.units, Some(2), false).await;
    acme_consent(&app, "hal", b, ledger::Action::Grant, &[Category::ProfileEmail, Category::Enrollment]).await;
    redeem_seat(&app, "acme", b, p("ivy"), true).await;
    progress_of(&app, "ivy", b, &data.units, Some(2), false).await;
    acme_consent(&app, "ivy", b, ledger::Action::Grant, &[Category::ProfileName]).await;

    let boss = verified(&app, "boss").await;
    let boss_id = user_id(&app, "boss").await;
    run(&app, move |conn| {
        let p = partners::by_slug(conn, "acme")?.expect("the sponsor");
        partners::appoint(conn, &p, boss_id, boss_id)
    })
    .await;
    as_user(&app, &boss).await;
    let read_csv = |text: &str| {
        csv::Reader::from_reader(text.as_bytes()).records().map(|r| r.expect("a CSV row")).collect::<Vec<_>>()
    };
    let (_, all) = app.get("/partners/acme/report.csv").await;
    let all = read_csv(&all);
    let mut listed: Vec<&str> = all.iter().map(|r| r.get(1).unwrap()).collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "ada@example.org",
            "fay@example.org",
            "gus@example.org",
            "hal@example.org",
            "lea@example.org",
            "moe@example.org"
        ],
        "the gate lets through those who share, sponsored by acme, and nobody else"
    );
    let titles: std::collections::BTreeSet<&str> = all.iter().map(|r| r.get(2).unwrap()).collect();
    let counted = regex::Regex::new(r"(\d+) learner\(s\)\.").unwrap();
    let option = regex::Regex::new(r#"<option value="[a-z-]+"(?: selected)?>([^<]+)</option>"#).unwrap();
    for course in ["", "intro-python", "data-science", "no-such-course"] {
        for status in ["", "completed", "in_progress", "nonsense"] {
            let query = format!("course={course}&status={status}");
            let (status_code, page) = app.get(&format!("/partners/acme/report?{query}")).await;
            assert_eq!(status_code, Status::Ok);
            let (_, csv) = app.get(&format!("/partners/acme/report.csv?{query}")).await;
            let rows = read_csv(&csv);
            let count = counted.captures(&page).expect("a count")[1].parse::<usize>().unwrap();
            assert_eq!(count, rows.len(), "{query}: the count is the CSV's rows: {csv}");
            let drawn = ["chart-funnel", "chart-progress", "chart-weekly"].map(|id| chart_desc(&page, id));
            match charts_of(&rows) {
                Some(expected) => assert_eq!(drawn.map(|d| d.unwrap_or_default()), expected, "{query}: {csv}"),
                None => assert!(drawn.iter().all(Option::is_none), "{query}: no chart for nobody"),
            }
            // The table lists the CSV's learners (one page holds them all).
            for r in &rows {
                assert!(page.contains(&format!("<td>{}</td>", &r[1])), "{query}: {} is listed", &r[1]);
            }
            assert_eq!(page.matches("@example.org</td>").count(), rows.len(), "{query}");
            // The course choices are every course of the report, whatever the filter.
            let offered: std::collections::BTreeSet<String> = option
                .captures_iter(&page[page.find(r#"name="course""#).unwrap()..page.find("</select>").unwrap()])
                .map(|c| c[1].to_string())
                .collect();
            assert_eq!(offered.iter().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), titles);
            assert!(!page.contains("No learner shares"), "{query}: learners share");
        }
    }
    // The mix counts something in every chart.
    let (_, page) = app.get("/partners/acme/report").await;
    assert_eq!(
        chart_desc(&page, "chart-funnel").as_deref(),
        Some("Enrolled: 6, Started: 5, Half-way: 4, Completed: 3"),
        "hal's consent shows neither progress nor completion; moe's completion is long ago"
    );
}
on_both!(shr_6_the_report_counts_in_the_database_what_the_gate_lists, report_figures_follow_the_gate);

/// What one view of the report disclosed: (learner, record key) pairs of
/// the export ids not in `before`.
async fn new_disclosures(app: &TestApp, before: &std::collections::BTreeSet<String>) -> Vec<(i64, String)> {
    let before = before.clone();
    let mut out: Vec<(i64, String)> = run(app, move |conn| {
        let all = lyceum::consent::manifests::expand(conn, &Default::default())?;
        Ok::<_, diesel::result::Error>(
            all.into_iter()
                .filter(|d| d.export_id.starts_with("report-") && !before.contains(&d.export_id))
                .map(|d| (d.user_id, d.record_key))
                .collect(),
        )
    })
    .await;
    out.sort();
    out
}

async fn report_exports(app: &TestApp) -> std::collections::BTreeSet<String> {
    run(app, |conn| {
        let all = lyceum::consent::manifests::expand(conn, &Default::default())?;
        Ok::<_, diesel::result::Error>(all.into_iter().map(|d| d.export_id).collect())
    })
    .await
}

/// The (learner, record key) of each of these learners' enrollments.
async fn records_of(app: &TestApp, usernames: Vec<String>) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = run(app, move |conn| {
        users::table
            .inner_join(enrollments::table)
            .filter(users::username.eq_any(usernames))
            .select((users::id, enrollments::id))
            .load::<(i64, i64)>(conn)
    })
    .await
    .into_iter()
    .map(|(u, e)| (u, format!("enrollment:{e}")))
    .collect();
    out.sort();
    out
}

async fn report_page_reads_its_page(app: TestApp) {
    // promise: SHR-5 — a page of the report reads and discloses the learners it shows, and no one else.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    sponsored_learners(&app, 105).await;
    // Three of them completed the course: learner001, learner050 and learner102.
    for who in ["learner001", "learner050", "learner102"] {
        let run_id: i64 = run(&app, |conn| {
            lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)
        })
        .await;
        progress_of(&app, who, run_id, &c.units, Some(0), false).await;
    }
    let boss = verified(&app, "boss").await;
    let boss_id = user_id(&app, "boss").await;
    run(&app, move |conn| {
        let p = partners::by_slug(conn, "acme")?.expect("the sponsor");
        partners::appoint(conn, &p, boss_id, boss_id)
    })
    .await;
    as_user(&app, &boss).await;
    let names = |range: std::ops::Range<usize>| range.map(|i| format!("learner{i:03}")).collect::<Vec<_>>();

    // On SQLite a value the gate cannot read tells whether a page reads a
    // learner at all: learner000's enrollment date, on page one only.
    let sqlite = app.db().backend() == lyceum::db::Backend::Sqlite;
    if sqlite {
        run(&app, |conn| {
            diesel::sql_query(
                "UPDATE enrollments SET enrolled_at = 'unreadable' WHERE user_id = \
                 (SELECT id FROM users WHERE username = 'learner000')",
            )
            .execute(conn)
        })
        .await;
    }
    let before = report_exports(&app).await;
    let (status, page) = app.get("/partners/acme/report?page=2").await;
    assert_eq!(status, Status::Ok, "page two never reads learner000 through the gate: {page}");
    assert!(page.contains("105 learner(s). Showing 101–105.") && page.contains("Enrolled: 105"), "{page}");
    assert_eq!(new_disclosures(&app, &before).await, records_of(&app, names(100..105)).await, "page two, no more");
    if sqlite {
        run(&app, |conn| {
            diesel::sql_query(
                "UPDATE enrollments SET enrolled_at = '2026-01-01 00:00:00' WHERE user_id = \
                 (SELECT id FROM users WHERE username = 'learner000')",
            )
            .execute(conn)
        })
        .await;
    }

    let before = report_exports(&app).await;
    let (_, page) = app.get("/partners/acme/report?status=completed").await;
    assert!(page.contains("3 learner(s). Showing 1–3.") && page.contains("Completed: 3"), "{page}");
    let done = vec!["learner001".to_string(), "learner050".to_string(), "learner102".to_string()];
    assert_eq!(new_disclosures(&app, &before).await, records_of(&app, done).await, "the completed, no one else");

    let before = report_exports(&app).await;
    let (_, page) = app.get("/partners/acme/report?status=in_progress&page=2").await;
    assert!(page.contains("102 learner(s). Showing 101–102."), "{page}");
    assert_eq!(
        new_disclosures(&app, &before).await,
        records_of(&app, vec!["learner103".to_string(), "learner104".to_string()]).await,
        "the last two of those in progress"
    );

    // The CSV, a full download, discloses everyone it lists.
    let before = report_exports(&app).await;
    let (_, csv) = app.get("/partners/acme/report.csv?status=in_progress").await;
    assert_eq!(csv.lines().count(), 1 + 102);
    let mut rest = names(0..105);
    rest.retain(|n| !["learner001", "learner050", "learner102"].contains(&n.as_str()));
    assert_eq!(new_disclosures(&app, &before).await, records_of(&app, rest).await);
}
on_both!(shr_5_a_report_page_reads_the_gate_for_its_rows_only, report_page_reads_its_page);

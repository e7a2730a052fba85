//! An organization's own pages (SHR-7): staff uploaded from CSV, courses
//! assigned with a due date, progress and overdue training on the dashboard
//! and in its CSV, reminders by email.

use diesel::prelude::*;
use lyceum::consent::PartnerKind;
use lyceum::consent::partners;
use lyceum::db::schema::{org_assignments, org_staff};
use rocket::http::Status;

use crate::common::{PASSWORD, TestApp};
use crate::learning::{enroll, seed_course};
use crate::on_both;
use crate::sharing::{as_user, run, user_id, verified};

/// Signs in a staff member the organization created: they set a password by
/// email first (their account has none) and accept the policies.
async fn staff_signs_in(app: &TestApp, email: &str) {
    app.sign_out().await;
    app.post_form("/password/forgot", &[("email", email)]).await;
    let reset = app.mailed_link(email, "/password/reset/").await.expect("a reset link");
    app.post_form(&reset, &[("password", PASSWORD)]).await;
    let res = app.post_form("/signin", &[("login", email), ("password", PASSWORD)]).await;
    if res.headers().get_one("Location") == Some("/policies/accept") {
        app.post_form("/policies/accept", &[("accept", "true")]).await;
    }
    assert!(app.signed_in_as().await.is_some(), "{email} signed in");
}

async fn dashboard(app: TestApp) {
    // promise: SHR-7 — the organization uploads its staff, assigns training and sees their usage and progress.
    let c = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let olga = verified(&app, "olga").await;
    let olga_id = user_id(&app, "olga").await;
    let org_id = run(&app, move |conn| {
        let now = lyceum::db::now();
        let org = partners::create(conn, PartnerKind::Organization, "globex", "Globex", None, "it@globex.example", now)
            .map_err(|e| e.to_string())?;
        partners::appoint(conn, &org, olga_id, olga_id).map_err(|e| e.to_string())?;
        Ok::<_, String>(org.id)
    })
    .await;
    as_user(&app, &olga).await;
    let (status, page) = app.get("/partners/globex/staff").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("No staff yet"), "{page}");

    // Bad rows: nothing is added, every problem is named, the text stays.
    let bad = "username,email,given_name\nada,ada@globex.example,Ada\nlin,not-an-email,Lin\n";
    let res = app.post_form("/partners/globex/staff/upload", &[("csv", bad)]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Nothing was added") && page.contains("Row 3"), "{page}");
    assert!(page.contains("ada@globex.example"), "what was typed is kept");
    let n: i64 = run(&app, |conn| org_staff::table.count().get_result(conn)).await;
    assert_eq!(n, 0);

    let good = "username,email,given_name,family_name,title,department\n\
                ada,ada@globex.example,Ada,Lovelace,Analyst,Research\n\
                lin,lin@globex.example,Lin,Wei,Engineer,Platform\n";
    let res = app.post_form("/partners/globex/staff/upload", &[("csv", good)]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/globex/staff"));
    let (_, page) = app.get("/partners/globex/staff").await;
    assert!(page.contains("Ada Lovelace") && page.contains("Lin Wei") && page.contains("Engineer"), "{page}");
    // The same person twice (already there) undoes the whole upload.
    let again = "username,email\nzed,zed@globex.example\nada,ada2@globex.example\n";
    let res = app.post_form("/partners/globex/staff/upload", &[("csv", again)]).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let n: i64 = run(&app, |conn| org_staff::table.count().get_result(conn)).await;
    assert_eq!(n, 2, "all rows or none");

    // Assigning: a date in the past is refused; then everyone, emailed.
    let run_id: i64 = run(&app, |conn| {
        use lyceum::db::schema::course_runs;
        course_runs::table.select(course_runs::id).first(conn)
    })
    .await;
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Duration::days(1)).to_string();
    let next_week = (chrono::Utc::now().date_naive() + chrono::Duration::days(7)).to_string();
    let rid = run_id.to_string();
    app.post_form("/partners/globex/staff/assign", &[("run_id", &rid), ("target", "all"), ("due_on", &yesterday)])
        .await;
    assert_eq!(run(&app, |conn| org_assignments::table.count().get_result::<i64>(conn)).await, 0);
    let res = app
        .post_form("/partners/globex/staff/assign", &[("run_id", &rid), ("target", "all"), ("due_on", &next_week)])
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/globex/staff"));
    assert_eq!(run(&app, |conn| org_assignments::table.count().get_result::<i64>(conn)).await, 2);
    assert!(app.mailed_link("lin@globex.example", "/courses/intro-python").await.is_some(), "Lin is told");
    app.post_form("/partners/globex/staff/assign", &[("run_id", &rid), ("target", "all"), ("due_on", &next_week)])
        .await;
    assert_eq!(run(&app, |conn| org_assignments::table.count().get_result::<i64>(conn)).await, 2, "not twice");

    // Lin completes the course; Ada does not start.
    staff_signs_in(&app, "lin@globex.example").await;
    enroll(&app, &c.slug).await;
    app.post_form(&format!("/learn/intro-python/quiz/{}", c.quiz), &[("q0", "1"), ("q1", "3.5")]).await;
    for u in &c.units {
        app.post_form(&format!("/learn/intro-python/units/{u}/complete"), &[]).await;
    }
    // Ada's assignment is overdue.
    run(&app, |conn| {
        let ada: String = org_staff::table.filter(org_staff::user_name.eq("ada")).select(org_staff::id).first(conn)?;
        diesel::update(org_assignments::table.filter(org_assignments::staff_id.eq(ada)))
            .set(org_assignments::due_on.eq(chrono::Utc::now().date_naive() - chrono::Duration::days(2)))
            .execute(conn)
    })
    .await;

    // A stranger sees nothing of it.
    let eve = verified(&app, "eve").await;
    as_user(&app, &eve).await;
    assert_eq!(app.get("/partners/globex/staff").await.0, Status::NotFound);
    assert_eq!(app.get("/partners/globex/staff.csv").await.0, Status::NotFound);

    as_user(&app, &olga).await;
    let (_, page) = app.get("/partners/globex/staff").await;
    assert!(page.contains("1 overdue"), "{page}");
    let lin_row = page.split("<tr").find(|r| r.contains("Lin Wei")).unwrap();
    assert!(lin_row.contains("100%") && !lin_row.contains("never"), "progress and last sign-in: {lin_row}");
    let ada_row = page.split("<tr").find(|r| r.contains("Ada Lovelace")).unwrap();
    assert!(ada_row.contains("overdue") && ada_row.contains("not started") && ada_row.contains("never"), "{ada_row}");
    let res = app.client.get("/partners/globex/staff.csv").dispatch().await;
    assert_eq!(res.content_type(), Some(rocket::http::ContentType::CSV));
    let csv = res.into_string().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let lin = rows.iter().find(|r| &r[1] == "lin@globex.example").unwrap();
    assert_eq!((&lin[9], &lin[11]), ("100", "false"));
    assert!(!lin[10].is_empty(), "completed: {lin:?}");
    let ada = rows.iter().find(|r| &r[1] == "ada@globex.example").unwrap();
    assert_eq!(&ada[11], "true");

    // What the organization saw is disclosed, on the processor basis.
    let bases: Vec<String> = run(&app, move |conn| {
        let filter = lyceum::consent::manifests::Filter { partner_id: Some(org_id), ..Default::default() };
        lyceum::consent::manifests::expand(conn, &filter)
            .map(|all| all.into_iter().map(|d| d.basis).collect::<Vec<String>>())
    })
    .await;
    assert!(!bases.is_empty() && bases.iter().all(|b| b == "processor"), "{bases:?}");

    // Reminders: Ada (overdue, not done) gets one, once; Lin (done) none.
    crate::privacy::run_scheduled(&app).await;
    crate::privacy::run_scheduled(&app).await;
    app.run_jobs().await;
    let mail = lyceum::notify::read_outbox(&app.config.outbox_dir(), 1000);
    let reminders = |to: &str| mail.iter().filter(|m| m.to == to && m.subject.starts_with("Reminder:")).count();
    assert_eq!(reminders("ada@globex.example"), 1);
    assert_eq!(reminders("lin@globex.example"), 0);
}
on_both!(shr_7_an_organization_assigns_training_and_sees_progress, dashboard);

/// An organization "globex" administered by a signed-in "olga", with Ada and Lin as staff.
async fn organization_with_staff(app: &TestApp) -> i64 {
    let olga = verified(app, "olga").await;
    let olga_id = user_id(app, "olga").await;
    let org_id = run(app, move |conn| {
        let now = lyceum::db::now();
        let org = partners::create(conn, PartnerKind::Organization, "globex", "Globex", None, "it@globex.example", now)
            .map_err(|e| e.to_string())?;
        partners::appoint(conn, &org, olga_id, olga_id).map_err(|e| e.to_string())?;
        Ok::<_, String>(org.id)
    })
    .await;
    as_user(app, &olga).await;
    let staff = "username,email,given_name\nada,ada@globex.example,Ada\nlin,lin@globex.example,Lin\n";
    app.post_form("/partners/globex/staff/upload", &[("csv", staff)]).await;
    org_id
}

async fn rights_through_the_employer(app: TestApp) {
    // promise: SHR-7 — staff exercise their rights through the organization, in the tracked request flow (RGT-5).
    organization_with_staff(&app).await;
    let ada: String =
        run(&app, |conn| org_staff::table.filter(org_staff::user_name.eq("ada")).select(org_staff::id).first(conn))
            .await;
    let (_, page) = app.get("/partners/globex/staff").await;
    assert!(page.contains("Rights requests for your staff") && page.contains("A copy of their data"));

    // Bad input: too short, someone else's person.
    app.post_form("/partners/globex/staff/requests", &[("staff_id", &ada), ("kind", "export"), ("details", "x")]).await;
    app.post_form(
        "/partners/globex/staff/requests",
        &[("staff_id", "nobody"), ("kind", "export"), ("details", "Please.")],
    )
    .await;
    app.post_form("/partners/globex/staff/requests", &[("staff_id", &ada), ("kind", "dance"), ("details", "Please.")])
        .await;
    let n: i64 = run(&app, |conn| {
        use lyceum::db::schema::data_requests;
        data_requests::table.count().get_result(conn)
    })
    .await;
    assert_eq!(n, 0, "nothing filed from bad input");

    let res = app
        .post_form(
            "/partners/globex/staff/requests",
            &[("staff_id", &ada), ("kind", "export"), ("details", "Ada asked for a copy by email on Monday.")],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/globex/staff#requests"));
    let (kind, source, details, entered_by): (String, String, String, Option<i64>) = run(&app, |conn| {
        use lyceum::db::schema::data_requests;
        data_requests::table
            .select((data_requests::kind, data_requests::source, data_requests::details, data_requests::entered_by))
            .first(conn)
    })
    .await;
    assert_eq!((kind.as_str(), source.as_str()), ("export", "organization"));
    assert!(details.contains("Filed by Globex for ada") && entered_by.is_some(), "{details}");
    let (_, page) = app.get("/partners/globex/staff").await;
    assert!(page.contains("requests-table") && page.contains("received"), "{page}");

    // End of contract: the wrong word changes nothing; the slug erases everyone.
    app.post_form("/partners/globex/staff/end", &[("confirm", "yes")]).await;
    assert_eq!(run(&app, |conn| org_staff::table.count().get_result::<i64>(conn)).await, 2);
    let res = app.post_form("/partners/globex/staff/end", &[("confirm", "globex")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/globex/staff"));
    assert_eq!(run(&app, |conn| org_staff::table.count().get_result::<i64>(conn)).await, 0);
    let (erasures, off): (i64, i64) = run(&app, |conn| {
        use lyceum::db::schema::{erasures, users};
        let e = erasures::table.count().get_result(conn)?;
        let off = users::table.filter(users::status.eq("deactivated")).count().get_result(conn)?;
        Ok::<_, diesel::result::Error>((e, off))
    })
    .await;
    assert_eq!((erasures, off), (2, 2), "both switched off and being erased");
}
on_both!(shr_7_rgt_5_staff_rights_go_through_the_organization, rights_through_the_employer);

async fn invitations(app: TestApp) {
    // promise: SHR-7 — people with accounts of their own join an organization's staff by invitation, knowing what it sees.
    organization_with_staff(&app).await;
    let res = app.post_form("/partners/globex/staff/invite", &[("email", "not an email")]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/globex/staff"));
    app.post_form("/partners/globex/staff/invite", &[("email", "kim@example.org")]).await;
    let link = app.mailed_link("kim@example.org", "/orgs/join/").await.expect("an invitation");

    // Kim has an account already; signed out, the link asks to sign in first.
    let kim = verified(&app, "kim").await;
    app.sign_out().await;
    let res = app.client.get(link.clone()).dispatch().await;
    assert!(res.headers().get_one("Location").unwrap().starts_with("/signin?next="));
    as_user(&app, &kim).await;
    let (status, page) = app.get(&link).await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Join Globex") && page.contains("How much of the course you have completed"), "{page}");
    let (_, sharing) = app.get("/sharing").await;
    assert!(!sharing.contains("Your employer"), "nothing before the choice");
    let res = app.post_form(&link, &[]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/sharing"));
    let (_, sharing) = app.get("/sharing").await;
    assert!(sharing.contains("Your employer") && sharing.contains("Globex"));
    let kim_id = user_id(&app, "kim").await;
    let n: i64 =
        run(&app, move |conn| org_staff::table.filter(org_staff::user_id.eq(kim_id)).count().get_result(conn)).await;
    assert_eq!(n, 1);
    // The link works once.
    assert_eq!(app.post_form(&link, &[]).await.status(), Status::Gone);
}
on_both!(shr_7_staff_join_by_invitation, invitations);

/// A multipart staff upload: pasted text and a file (`None`: no file chosen).
async fn upload_staff<'a>(
    app: &'a TestApp,
    pasted: &str,
    file: Option<&[u8]>,
) -> rocket::local::asynchronous::LocalResponse<'a> {
    let token = app.csrf().await;
    let files: Vec<(&str, &str, &[u8])> = file.map(|bytes| ("csv_file", "staff.csv", bytes)).into_iter().collect();
    let (ct, body) = crate::learning::multipart_files(&[("csrf_token", &token), ("csv", pasted)], &files);
    app.client.post("/partners/globex/staff/upload").header(ct).body(body).dispatch().await
}

fn given_names(app: &TestApp) -> Vec<String> {
    let mut conn = app.db().get().unwrap();
    let mut names: Vec<Option<String>> = org_staff::table.select(org_staff::given_name).load(&mut conn).unwrap();
    names.sort();
    names.into_iter().flatten().collect()
}

async fn csv_encodings(app: TestApp) {
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let olga = verified(&app, "olga").await;
    let olga_id = user_id(&app, "olga").await;
    run(&app, move |conn| {
        let now = lyceum::db::now();
        let org = partners::create(conn, PartnerKind::Organization, "globex", "Globex", None, "it@globex.example", now)
            .map_err(|e| e.to_string())?;
        partners::appoint(conn, &org, olga_id, olga_id).map_err(|e| e.to_string())
    })
    .await;
    as_user(&app, &olga).await;

    // A file saved by a spreadsheet in Windows-1252 (Latin-1): converted, and said so.
    let latin1 = b"username,email,given_name\nzoe,zoe@globex.example,Zo\xE9\n";
    let res = upload_staff(&app, "", Some(latin1)).await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/partners/globex/staff").await;
    assert!(page.contains("1 staff member(s) added. The file was read as windows-1252 text and converted."), "{page}");
    assert_eq!(given_names(&app), ["Zoé"]);

    // UTF-16 with its byte order mark ("Unicode text"), tab or comma alike: converted.
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(
        "username,email,given_name\r\nfrancois,francois@globex.example,François\r\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    assert_eq!(upload_staff(&app, "", Some(&utf16)).await.status(), Status::SeeOther);
    // UTF-8 with a byte order mark (Excel's "CSV UTF-8"): the mark is not part of the first column's name.
    let bom =
        [b"\xEF\xBB\xBF".as_slice(), "username,email,given_name\nines,ines@globex.example,Inês\n".as_bytes()].concat();
    assert_eq!(upload_staff(&app, "", Some(&bom)).await.status(), Status::SeeOther);
    assert_eq!(given_names(&app), ["François", "Inês", "Zoé"]);

    // Text already damaged (U+FFFD) is refused with its line, never stored.
    let damaged = "username,email,given_name\nyves,yves@globex.example,Yv\u{FFFD}s\n";
    let res = upload_staff(&app, damaged, None).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("Line 2 holds the character"), "{page}");
    // A file in an encoding that is not Western European: refused, naming the line and the likely encoding.
    let (cyrillic, _, _) = encoding_rs::WINDOWS_1251
        .encode("username,email,given_name\nivan,ivan@globex.example,Иван Сергеевич Петров\nolga2,olga2@globex.example,Ольга Александровна\n");
    let res = upload_staff(&app, "", Some(&cyrillic)).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("line 2 has bytes that are not UTF-8") && page.contains("windows-1251"), "{page}");
    // A file over the CSV limit: the limit is named and the pasted text is still there.
    let pasted = "username,email\nkept,kept@globex.example\n";
    let big = [b"username,email\n".as_slice(), &vec![b'x'; 5 * 1024 * 1024]].concat();
    let res = upload_staff(&app, pasted, Some(&big)).await;
    assert_eq!(res.status(), Status::UnprocessableEntity);
    let page = res.into_string().await.unwrap();
    assert!(page.contains("That CSV file is larger than 5 MB"), "{page}");
    assert!(page.contains("kept@globex.example"), "what was pasted is kept");
    assert_eq!(given_names(&app), ["François", "Inês", "Zoé"], "nothing added by a refused upload");
    assert!(!given_names(&app).iter().any(|n| n.contains('\u{FFFD}')));
}
on_both!(staff_csv_files_are_read_in_their_encoding_or_refused_with_the_line, csv_encodings);

async fn seat_keeps_enrollment_date(app: TestApp) {
    use lyceum::consent::sponsors;
    use lyceum::db::schema::enrollments;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    assert_eq!(enroll(&app, "intro-python").await.status(), Status::SeeOther);
    // Enrolled in January, on the audit track.
    let january = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap().and_hms_opt(9, 30, 0).unwrap();
    run(&app, move |conn| diesel::update(enrollments::table).set(enrollments::enrolled_at.eq(january)).execute(conn))
        .await;
    let code = run(&app, |conn| {
        let now = lyceum::db::now();
        let run_id: i64 =
            lyceum::db::schema::course_runs::table.select(lyceum::db::schema::course_runs::id).first(conn)?;
        let p = partners::create(conn, PartnerKind::Sponsor, "acme", "Acme Corp", None, "hr@acme.example", now)
            .map_err(|e| e.to_string())?;
        let seats = sponsors::SeatRequest {
            run_id,
            seats: 1,
            expires_at: now + chrono::Duration::days(30),
            note: "Q1",
            by: None,
        };
        let allocation = sponsors::allocate(conn, &p, &seats, now).map_err(|e| e.to_string())?;
        let code = sponsors::free_codes(conn, &allocation)?.remove(0);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(code)
    })
    .await;
    let (_, offer) = app.get(&format!("/redeem?code={code}")).await;
    let text =
        regex::Regex::new(r#"name="text_id" value="(\d+)""#).unwrap().captures(&offer).expect(&offer)[1].to_string();
    let res = app.post_form("/redeem", &[("code", &code), ("share", "yes"), ("text_id", &text)]).await;
    assert_eq!(res.headers().get_one("Location"), Some("/learn/intro-python"));
    let (track, enrolled_at): (String, chrono::NaiveDateTime) =
        run(&app, |conn| enrollments::table.select((enrollments::track, enrollments::enrolled_at)).first(conn)).await;
    assert_eq!(track, "verified", "the seat upgrades the enrollment");
    assert_eq!(enrolled_at, january, "and keeps the date the learner enrolled");
}
on_both!(a_sponsored_seat_keeps_the_original_enrollment_date, seat_keeps_enrollment_date);

/// The learners whose records this partner was handed.
async fn disclosed_to(app: &TestApp, partner_id: i64) -> Vec<i64> {
    let mut users: Vec<i64> = run(app, move |conn| {
        let filter = lyceum::consent::manifests::Filter { partner_id: Some(partner_id), ..Default::default() };
        lyceum::consent::manifests::expand(conn, &filter)
    })
    .await
    .into_iter()
    .map(|d| d.user_id)
    .collect();
    users.sort_unstable();
    users.dedup();
    users
}

/// The dashboard reads its page of staff through the gate, not the whole
/// organization: what leaves (and is disclosed) is what the page shows,
/// while the overdue total still counts everyone by the gate's rule.
async fn dashboard_follows_its_page(app: TestApp) {
    use lyceum::db::schema::{course_runs, enrollments};
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let olga = verified(&app, "olga").await;
    let olga_id = user_id(&app, "olga").await;
    let org_id = run(&app, move |conn| {
        let now = lyceum::db::now();
        let org = partners::create(conn, PartnerKind::Organization, "globex", "Globex", None, "it@globex.example", now)
            .map_err(|e| e.to_string())?;
        partners::appoint(conn, &org, olga_id, olga_id).map_err(|e| e.to_string())?;
        Ok::<_, String>(org.id)
    })
    .await;
    as_user(&app, &olga).await;
    // 51 staff: a page of 50 and one more; the course assigned to all.
    let csv: String = std::iter::once("username,email,given_name,family_name\n".to_string())
        .chain((0..51).map(|i| format!("staff{i:02},staff{i:02}@globex.example,Staff,Number{i:02}\n")))
        .collect();
    let res = app.post_form("/partners/globex/staff/upload", &[("csv", &csv)]).await;
    assert_eq!(res.status(), rocket::http::Status::SeeOther);
    let run_id: i64 = run(&app, |conn| course_runs::table.select(course_runs::id).first(conn)).await;
    let next_week = (chrono::Utc::now().date_naive() + chrono::Duration::days(7)).to_string();
    let res = app
        .post_form(
            "/partners/globex/staff/assign",
            &[("run_id", &run_id.to_string()), ("target", "all"), ("due_on", &next_week)],
        )
        .await;
    assert_eq!(res.headers().get_one("Location"), Some("/partners/globex/staff"));
    // Every assignment is past due; staff00 (page one) and staff50 (page
    // two) completed the course, staff01 enrolled without finishing.
    let (first, last) = run(&app, move |conn| {
        let now = lyceum::db::now();
        diesel::update(org_assignments::table)
            .set(org_assignments::due_on.eq(chrono::Utc::now().date_naive() - chrono::Duration::days(2)))
            .execute(conn)?;
        let user = |conn: &mut lyceum::db::Conn, name: &str| {
            org_staff::table.filter(org_staff::user_name.eq(name.to_string())).select(org_staff::user_id).first(conn)
        };
        let (first, middle, last): (i64, i64, i64) =
            (user(conn, "staff00")?, user(conn, "staff01")?, user(conn, "staff50")?);
        for (who, done) in [(first, true), (middle, false), (last, true)] {
            diesel::insert_into(enrollments::table)
                .values((
                    enrollments::user_id.eq(who),
                    enrollments::run_id.eq(run_id),
                    enrollments::track.eq("audit"),
                    enrollments::status.eq("active"),
                    enrollments::enrolled_at.eq(now),
                    enrollments::grade_percent.eq(0.0),
                    enrollments::passed.eq(false),
                    enrollments::completed_at.eq(done.then_some(now)),
                ))
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>((first, last))
    })
    .await;

    let (_, page) = app.get("/partners/globex/staff").await;
    assert!(page.contains("49 overdue"), "every late, unfinished assignment counts, page two's too: {page}");
    let done = page.split("<tr").find(|r| r.contains("Number00")).unwrap();
    assert!(!done.contains("overdue") && done.contains("0%"), "{done}");
    let started = page.split("<tr").find(|r| r.contains("Number01")).unwrap();
    assert!(started.contains("overdue") && started.contains("0%"), "{started}");
    assert!(!page.contains("Number50"));
    let seen = disclosed_to(&app, org_id).await;
    assert!(seen.contains(&first), "page one's records are disclosed");
    assert!(!seen.contains(&last), "page two's are not read for page one: {seen:?}");

    let (_, page) = app.get("/partners/globex/staff?page=2").await;
    let row = page.split("<tr").find(|r| r.contains("Number50")).expect("staff50 on page two");
    assert!(!row.contains("overdue") && !row.contains("not started"), "{row}");
    assert!(page.contains("49 overdue"));
    assert!(disclosed_to(&app, org_id).await.contains(&last), "shown, so disclosed");
}
on_both!(shr_7_the_dashboard_reads_the_gate_for_its_page_only, dashboard_follows_its_page);

/// An organization larger than the number of values SQLite binds in one
/// statement (32,766) downloads its staff CSV: the gate walks such a
/// partner's learners a bounded page at a time instead of naming them all
/// in one `IN (…)` list, which failed with "too many SQL variables".
#[tokio::test]
async fn shr_7_an_organization_of_33000_staff_downloads_its_csv() {
    use lyceum::db::schema::course_runs;
    const STAFF: i64 = 33_000;
    let app = TestApp::sqlite().await;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let olga = verified(&app, "olga").await;
    let olga_id = user_id(&app, "olga").await;
    let run_id: i64 = run(&app, |conn| course_runs::table.select(course_runs::id).first(conn)).await;
    run(&app, move |conn| {
        let now = lyceum::db::now();
        let org = partners::create(conn, PartnerKind::Organization, "globex", "Globex", None, "it@globex.example", now)
            .map_err(|e| e.to_string())?;
        partners::appoint(conn, &org, olga_id, olga_id).map_err(|e| e.to_string())?;
        let series = format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {STAFF}) SELECT n FROM s) AS g"
        );
        let t = "'2026-01-05 10:00:00'";
        for sql in [
            format!(
                "INSERT INTO users (username, email, first_name, last_name, password_hash, status, email_verified_at, \
                   terms_version, terms_accepted_at, created_at, updated_at) \
                 SELECT 'many' || g.n, 'many' || g.n || '@globex.example', 'Staff', 'Number ' || g.n, d.password_hash, \
                   'active', {t}, d.terms_version, {t}, {t}, {t} FROM {series} CROSS JOIN users d WHERE d.id = {olga_id}"
            ),
            format!(
                "INSERT INTO org_staff (id, partner_id, user_id, user_name, user_name_key, given_name, family_name, \
                   display_name, work_email, active, version, created_at, updated_at, provisioned) \
                 SELECT 'many-' || u.id, {}, u.id, u.username, lower(u.username), u.first_name, u.last_name, \
                   u.first_name || ' ' || u.last_name, u.email, TRUE, 1, {t}, {t}, FALSE \
                 FROM users u WHERE u.username LIKE 'many%'",
                org.id
            ),
            format!(
                "INSERT INTO enrollments (user_id, run_id, track, status, enrolled_at, grade_percent, passed) \
                 SELECT u.id, {run_id}, 'audit', 'active', {t}, 0.0, FALSE FROM users u WHERE u.username LIKE 'many%'"
            ),
            format!(
                "INSERT INTO org_assignments (partner_id, staff_id, run_id, due_on, assigned_by, created_at) \
                 SELECT {}, s.id, {run_id}, '2026-01-01', {olga_id}, {t} FROM org_staff s WHERE s.partner_id = {}",
                org.id, org.id
            ),
        ] {
            diesel::sql_query(sql).execute(conn).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    })
    .await;
    as_user(&app, &olga).await;
    let res = app.client.get("/partners/globex/staff.csv").dispatch().await;
    assert_eq!(res.status(), Status::Ok, "the CSV of a large organization is served");
    let csv = res.into_string().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let assigned = rows.iter().filter(|r| r[7].starts_with("Introduction to Python")).count();
    assert_eq!(assigned as i64, STAFF, "every staff member's assignment is in it");
    let read = rows.iter().filter(|r| r[9] == *"0" && &r[11] == "true").count();
    assert_eq!(read as i64, STAFF, "with the progress the gate let through: none, overdue");
    let (status, page) = app.get("/partners/globex/staff").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("Number 1"), "the dashboard's first page: {page}");
}

/// The dashboard reads the gate for its page of staff by their own rows:
/// every read of the organization's staff list names a learner (an index
/// probe), where the gate once read the whole list again for each person on
/// the page (at 20,000 staff, 50 reads of 20,000 rows a page view). The
/// plans are SQLite's (`EXPLAIN QUERY PLAN`); on PostgreSQL the same page is
/// read and checked for what it hands over.
async fn gate_reads_its_page_by_learner(app: TestApp) {
    use diesel::connection::InstrumentationEvent;
    use lyceum::consent::Purpose;
    use lyceum::consent::sharing::{self, Want};
    use lyceum::db::schema::course_runs;
    use std::sync::{Arc, Mutex};
    const STAFF: i64 = 120;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let run_id: i64 = run(&app, |conn| course_runs::table.select(course_runs::id).first(conn)).await;
    let sqlite = app.pg.is_none();
    let statements = Arc::new(Mutex::new(Vec::<String>::new()));
    let heard = statements.clone();
    let shown = run(&app, move |conn| {
        let now = lyceum::db::now();
        let org = partners::create(conn, PartnerKind::Organization, "globex", "Globex", None, "it@globex.example", now)
            .map_err(|e| e.to_string())?;
        let t = "'2026-01-05 10:00:00'";
        for i in 0..STAFF {
            diesel::sql_query(format!(
                "INSERT INTO users (username, email, first_name, last_name, password_hash, status, email_verified_at, \
                   terms_version, terms_accepted_at, created_at, updated_at) \
                 VALUES ('many{i:03}', 'many{i:03}@globex.example', 'Staff', 'Number {i:03}', '', 'active', {t}, \
                   '1', {t}, {t}, {t})"
            ))
            .execute(conn)
            .map_err(|e| e.to_string())?;
        }
        for sql in [
            format!(
                "INSERT INTO org_staff (id, partner_id, user_id, user_name, user_name_key, given_name, family_name, \
                   display_name, work_email, active, version, created_at, updated_at, provisioned) \
                 SELECT 'many-' || u.id, {}, u.id, u.username, lower(u.username), u.first_name, u.last_name, \
                   u.first_name || ' ' || u.last_name, u.email, TRUE, 1, {t}, {t}, FALSE \
                 FROM users u WHERE u.username LIKE 'many%'",
                org.id
            ),
            format!(
                "INSERT INTO enrollments (user_id, run_id, track, status, enrolled_at, grade_percent, passed) \
                 SELECT u.id, {run_id}, 'audit', 'active', {t}, 0.0, FALSE FROM users u WHERE u.username LIKE 'many%'"
            ),
        ] {
            diesel::sql_query(sql).execute(conn).map_err(|e| e.to_string())?;
        }
        // The dashboard's first page: 50 of the 120.
        let page: Vec<i64> = org_staff::table
            .filter(org_staff::partner_id.eq(org.id))
            .order(org_staff::user_name_key.asc())
            .select(org_staff::user_id)
            .limit(50)
            .load(conn)
            .map_err(|e| e.to_string())?;
        let listen = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                heard.lock().unwrap().push(query.to_string());
            }
        };
        conn.set_instrumentation(listen);
        let shared = sharing::of_learners(
            conn,
            &org,
            Purpose::StaffTraining,
            Want::ALL,
            &page,
            "dashboard:test",
            "http://lyceum.test",
            now,
        );
        conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        let shared = shared.map_err(|e| e.to_string())?;
        let mut users: Vec<String> = shared.iter().filter_map(|s| s.learner.email.clone()).collect();
        users.sort();
        Ok::<_, String>(users)
    })
    .await;
    let expected: Vec<String> = (0..50).map(|i| format!("many{i:03}@globex.example")).collect();
    assert_eq!(shown, expected, "the page's learners and no one else");
    if !sqlite {
        return;
    }
    let statements: Vec<String> = statements.lock().unwrap().clone();
    let reads: Vec<String> = statements
        .iter()
        .map(|s| s.split(" -- binds:").next().unwrap_or(s).to_string())
        .filter(|s| s.trim_start().starts_with("SELECT") && s.contains("org_staff"))
        .collect();
    assert!(!reads.is_empty(), "the gate reads the staff list: {statements:?}");
    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let plans = run(&app, move |conn| {
        let mut plans = Vec::new();
        for sql in reads {
            let steps: Vec<Step> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(conn)?;
            plans.extend(steps.into_iter().map(|s| s.detail).filter(|d| d.contains("org_staff")));
        }
        Ok::<_, diesel::result::Error>(plans)
    })
    .await;
    assert!(!plans.is_empty());
    for step in &plans {
        assert!(
            step.contains("(user_id=?)"),
            "every read of the staff list is by learner, not the whole list: {plans:?}"
        );
    }
}
on_both!(shr_7_the_dashboard_reads_its_pages_staff_by_learner, gate_reads_its_page_by_learner);

/// 60 past runs of a second course and one open run of a third: the
/// assignment form lists a page of runs, open ones first, says how many
/// there are, and a search finds a run the page did not list.
async fn runs_to_assign(app: TestApp) {
    use lyceum::db::schema::course_runs;
    use lyceum::db::schema::courses;
    seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    seed_course(&app, "northbridge", "archive-statistics", "Archived Statistics", None).await;
    let olga = verified(&app, "olga").await;
    let olga_id = user_id(&app, "olga").await;
    let (open_run, oldest_run) = run(&app, move |conn| {
        let now = lyceum::db::now();
        let course = |conn: &mut lyceum::db::Conn, slug: &str| {
            courses::table.filter(courses::slug.eq(slug)).select(courses::id).first::<i64>(conn)
        };
        let python_id = course(conn, "intro-python").map_err(|e| e.to_string())?;
        let old_id = course(conn, "archive-statistics").map_err(|e| e.to_string())?;
        let org = partners::create(conn, PartnerKind::Organization, "globex", "Globex", None, "it@globex.example", now)
            .map_err(|e| e.to_string())?;
        partners::appoint(conn, &org, olga_id, olga_id).map_err(|e| e.to_string())?;
        let run = |conn: &mut lyceum::db::Conn, course: i64, key: String, starts: i64, ends: i64| {
            diesel::insert_into(course_runs::table)
                .values((
                    course_runs::course_id.eq(course),
                    course_runs::run_key.eq(key),
                    course_runs::starts_at.eq(now - chrono::Duration::days(starts)),
                    course_runs::ends_at.eq(now - chrono::Duration::days(ends)),
                    course_runs::pacing.eq("self"),
                    course_runs::pass_threshold.eq(70),
                    course_runs::audit.eq(true),
                    course_runs::currency.eq("usd"),
                    course_runs::created_at.eq(now),
                    course_runs::updated_at.eq(now),
                ))
                .returning(course_runs::id)
                .get_result::<i64>(conn)
        };
        let mut oldest = 0;
        for i in 0..60 {
            oldest = run(conn, old_id, format!("past-{i:02}"), 400 + i, 300 + i).map_err(|e| e.to_string())?;
        }
        let open = run(conn, python_id, "spring".into(), 10, -90).map_err(|e| e.to_string())?;
        Ok::<_, String>((open, oldest))
    })
    .await;
    as_user(&app, &olga).await;
    let option = |id: i64| format!("<option value=\"{id}\">");

    let (status, page) = app.get("/partners/globex/staff").await;
    assert_eq!(status, Status::Ok);
    let listed = page.matches("<option value=\"").count() - page.matches("value=\"all\"").count();
    assert_eq!(listed, lyceum::learning::service::RUN_CHOICES as usize, "a page of runs, not all 63");
    assert!(page.contains("Listing 50 of 63 course runs"), "{page}");
    let open_at = page.find(&option(open_run)).expect("the open run is listed");
    let first_past = page.find("(past-00)").expect("a past run is listed");
    assert!(open_at < first_past, "runs not yet ended come first");
    assert!(!page.contains(&option(oldest_run)), "the oldest past run is not on the first page");

    // A search finds it; a search that matches nothing says so.
    let (_, page) = app.get("/partners/globex/staff?course=past-59").await;
    assert!(page.contains(&option(oldest_run)), "{page}");
    assert_eq!(page.matches("(past-").count(), 1, "only the run searched for");
    assert!(page.contains("value=\"past-59\""), "the search stays in its field");
    // The course's own run (not ended) and its 60 past runs.
    let (_, page) = app.get("/partners/globex/staff?course=ARCHIVED%20stat").await;
    assert!(page.contains("Listing 50 of 61 course runs"), "titles match whatever their case: {page}");
    assert_eq!(page.matches("(past-").count(), 49, "the open run, then the latest 49 past ones");
    let (status, page) = app.get("/partners/globex/staff?course=%25_nothing").await;
    assert_eq!(status, Status::Ok);
    assert!(page.contains("No course run matches"), "{page}");

    // What was found is assigned as before.
    let res =
        app.post_form("/partners/globex/staff/upload", &[("csv", "username,email\nada,ada@globex.example\n")]).await;
    assert_eq!(res.status(), Status::SeeOther);
    let next_week = (chrono::Utc::now().date_naive() + chrono::Duration::days(7)).to_string();
    let res = app
        .post_form(
            "/partners/globex/staff/assign",
            &[("run_id", &oldest_run.to_string()), ("target", "all"), ("due_on", &next_week)],
        )
        .await;
    assert_eq!(res.status(), Status::SeeOther);
    let assigned: Vec<i64> = run(&app, |conn| org_assignments::table.select(org_assignments::run_id).load(conn)).await;
    assert_eq!(assigned, vec![oldest_run]);
}
on_both!(shr_7_the_assignment_form_lists_a_page_of_runs_and_finds_the_rest, runs_to_assign);

//! Disclosure manifests (SHR-5, RGT-2): a manifest per delivered page or
//! send instead of a row per record; attempts told apart from deliveries;
//! the chain and its anchor; erasure inside the chain; the move of the rows
//! logged before manifests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use diesel::prelude::*;
use lyceum::consent::manifests::{self, Filter};
use lyceum::consent::push::Target;
use lyceum::consent::sharing::{self, Want};
use lyceum::consent::{Purpose, seal};
use lyceum::db::DbConnection;
use lyceum::db::schema::{course_runs, enrollments, jobs, manifests as manifest_rows, partner_sends, users};
use partner_adapters::test_server::{Reply, serve};

use crate::common::{Learner, PASSWORD, TestApp};
use crate::learning::seed_course;
use crate::on_both;
use crate::push::{ada_shares_bob_declines, destination, due_now, queue, state};
use crate::sharing::{as_user, member_partner, run};

async fn user_id(app: &TestApp, name: &str) -> i64 {
    let name = name.to_string();
    run(app, move |conn| users::table.filter(users::username.eq(name)).select(users::id).first::<i64>(conn)).await
}

fn ada() -> Learner {
    Learner { username: "ada".into(), email: "ada@example.org".into(), password: PASSWORD.into() }
}

/// Lets a test change what the append-only triggers guard, as someone with
/// the database alone could.
fn drop_manifest_guard(conn: &mut lyceum::db::Conn) -> QueryResult<usize> {
    match conn {
        DbConnection::Pg(_) => {
            diesel::sql_query("ALTER TABLE manifests DISABLE TRIGGER manifests_append_only").execute(conn)
        }
        DbConnection::Sqlite(_) => {
            diesel::sql_query("DROP TRIGGER manifests_no_update").execute(conn)?;
            diesel::sql_query("DROP TRIGGER manifests_no_delete").execute(conn)
        }
    }
}

async fn failed_push(app: TestApp) {
    let partner = ada_shares_bob_declines(&app).await;
    let down = Arc::new(AtomicBool::new(true));
    let flag = down.clone();
    let (url, _log) =
        serve(move |_, _| if flag.load(Ordering::SeqCst) { Reply::new(503, "down") } else { Reply::new(200, "{}") })
            .await;
    let dest = destination(&app, &partner, Target::Webhook { url: format!("{url}/hook") }, "all", "jsonl").await;
    let key = "hook-attempted";
    let send_id = queue(&app, &dest, key).await;
    run(&app, move |conn| {
        let job: Option<i64> = partner_sends::table.find(send_id).select(partner_sends::job_id).first(conn)?;
        diesel::update(jobs::table.find(job.unwrap_or(0))).set(jobs::max_attempts.eq(2)).execute(conn)
    })
    .await;
    app.run_jobs().await;
    due_now(&app, send_id).await;
    app.run_jobs().await;
    assert_eq!(state(&app, send_id).await.1, "dead");
    // promise: SHR-5 — an attempt is recorded as one, once however often it
    // was retried, and never as a delivery.
    let all =
        run(&app, move |conn| manifests::expand(conn, &Filter { export_id: Some(key), ..Filter::default() })).await;
    assert_eq!(all.len(), 2, "Ada's record and Bob's de-identified one, once each: {all:?}");
    assert!(all.iter().all(|d| !d.delivered), "{all:?}");
    as_user(&app, &ada()).await;
    let (_, page) = app.get("/sharing").await;
    assert!(page.contains("never arrived"), "the attempt is told: {page}");
    assert!(!page.contains("northbridge University received"), "and not as shared: {page}");

    // Once it arrives, it is a delivery.
    down.store(false, Ordering::SeqCst);
    run(&app, move |conn| {
        let job: Option<i64> = partner_sends::table.find(send_id).select(partner_sends::job_id).first(conn)?;
        lyceum::jobs::retry(conn, job.unwrap_or(0))
    })
    .await;
    app.run_jobs().await;
    assert_eq!(state(&app, send_id).await.1, "done");
    let all =
        run(&app, move |conn| manifests::expand(conn, &Filter { export_id: Some(key), ..Filter::default() })).await;
    assert_eq!(all.iter().filter(|d| d.delivered).count(), 2, "{all:?}");
    as_user(&app, &ada()).await;
    let (_, page) = app.get("/sharing").await;
    assert!(page.contains("received"), "{page}");
}
on_both!(shr_5_a_push_that_never_arrived_shows_as_attempted_never_as_shared, failed_push);

async fn one_per_group(app: TestApp) {
    let partner = ada_shares_bob_declines(&app).await;
    let p = partner.clone();
    let (shared, rows, entries) = run(&app, move |conn| {
        let now = lyceum::db::now();
        let shared = sharing::all(conn, &p, Purpose::MemberSharing, Want::ALL, "pull-1", "http://x", now)?;
        // Asked again under the same export id (a resumed pull): nothing new.
        sharing::all(conn, &p, Purpose::MemberSharing, Want::ALL, "pull-1", "http://x", now)?;
        let rows: i64 = manifest_rows::table.filter(manifest_rows::export_id.eq("pull-1")).count().get_result(conn)?;
        let entries: Vec<i64> = manifest_rows::table
            .filter(manifest_rows::export_id.eq("pull-1"))
            .select(manifest_rows::entries)
            .load(conn)?;
        Ok::<_, diesel::result::Error>((shared.len(), rows, entries.iter().sum::<i64>()))
    })
    .await;
    assert_eq!(shared, 2);
    assert_eq!(rows, 2, "one manifest per basis and fields (Ada's consent, Bob's de-identified record)");
    assert_eq!(entries, 2, "recorded once, however often the export asked");
}
on_both!(shr_5_a_page_is_one_manifest_per_group_and_a_resume_records_nothing_twice, one_per_group);

/// Two exports of Ada's and Bob's records, and the head published.
async fn two_exports(app: &TestApp) -> Vec<seal::Anchor> {
    let partner = ada_shares_bob_declines(app).await;
    let path = app.dir.path().join("consent-anchor.jsonl");
    let p = path.clone();
    run(app, move |conn| {
        let now = lyceum::db::now();
        sharing::all(conn, &partner, Purpose::MemberSharing, Want::ALL, "chain-1", "http://x", now)?;
        sharing::all(conn, &partner, Purpose::MemberSharing, Want::ALL, "chain-2", "http://x", now)?;
        seal::publish(conn, &p, now).map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .await;
    seal::read(&path).expect("the anchor file reads")
}

async fn chain(app: TestApp) {
    let anchors = two_exports(&app).await;
    assert!(anchors[0].manifest_id.is_some(), "the head names the newest manifest");
    let a = anchors.clone();
    let v = run(&app, move |conn| manifests::verify_against(conn, &a)).await;
    assert!(v.intact() && v.manifests == 4 && v.entries == 4, "{v:?}");

    // The triggers refuse an edit and a deletion.
    let refused = run(&app, |conn| {
        let edit = diesel::update(manifest_rows::table).set(manifest_rows::fields.eq("x")).execute(conn).is_err();
        let delete = diesel::delete(manifest_rows::table).execute(conn).is_err();
        Ok::<_, diesel::result::Error>(edit && delete)
    })
    .await;
    assert!(refused, "manifests are append-only");

    // A forged learner set (Cyrus added to the first manifest): caught.
    let (first, learners) = run(&app, |conn| {
        drop_manifest_guard(conn)?;
        manifest_rows::table
            .order(manifest_rows::id)
            .select((manifest_rows::id, manifest_rows::learners))
            .first::<(i64, Vec<u8>)>(conn)
    })
    .await;
    let mut forged = manifests::decode(&learners).expect("a bitmap");
    forged.insert(424242);
    let bytes = manifests::encode(&forged);
    run(&app, move |conn| {
        diesel::update(manifest_rows::table.find(first)).set(manifest_rows::learners.eq(bytes)).execute(conn)
    })
    .await;
    let v = run(&app, |conn| manifests::verify_against(conn, &[])).await;
    let (id, why) = v.first_broken.expect("a forged set is caught");
    assert_eq!(id, first);
    assert!(why.contains("set was changed"), "{why}");
    run(&app, move |conn| {
        diesel::update(manifest_rows::table.find(first)).set(manifest_rows::learners.eq(learners)).execute(conn)
    })
    .await;

    // An edited manifest: caught.
    let fields: String = run(&app, move |conn| {
        let f: String = manifest_rows::table.find(first).select(manifest_rows::fields).first(conn)?;
        diesel::update(manifest_rows::table.find(first))
            .set(manifest_rows::fields.eq(format!("{f},learner.date_of_birth")))
            .execute(conn)?;
        Ok::<_, diesel::result::Error>(f)
    })
    .await;
    let v = run(&app, |conn| manifests::verify_against(conn, &[])).await;
    assert!(v.first_broken.is_some_and(|(id, why)| id == first && why.contains("changed")));
    run(&app, move |conn| {
        diesel::update(manifest_rows::table.find(first)).set(manifest_rows::fields.eq(fields)).execute(conn)
    })
    .await;
    let v = run(&app, |conn| manifests::verify_against(conn, &[])).await;
    assert!(v.intact(), "{v:?}");

    // A widened learner range class (which would hide the manifest from a
    // learner's lookup, which reads one range per class): caught.
    let span: i16 = run(&app, move |conn| {
        let s: i16 = manifest_rows::table.find(first).select(manifest_rows::user_span).first(conn)?;
        diesel::update(manifest_rows::table.find(first)).set(manifest_rows::user_span.eq(s + 7)).execute(conn)?;
        Ok::<_, diesel::result::Error>(s)
    })
    .await;
    let v = run(&app, |conn| manifests::verify_against(conn, &[])).await;
    let (id, why) = v.first_broken.clone().expect("an edited range class is caught");
    assert_eq!(id, first, "{v:?}");
    assert!(why.contains("class"), "{why}");
    run(&app, move |conn| {
        diesel::update(manifest_rows::table.find(first)).set(manifest_rows::user_span.eq(span)).execute(conn)
    })
    .await;
    let v = run(&app, |conn| manifests::verify_against(conn, &[])).await;
    assert!(v.intact(), "{v:?}");

    // The newest manifest deleted: the chain still holds, the anchor does not.
    let newest = anchors[0].manifest_id.unwrap();
    run(&app, move |conn| diesel::delete(manifest_rows::table.find(newest)).execute(conn)).await;
    let v = run(&app, |conn| manifests::verify_against(conn, &[])).await;
    assert!(v.intact() && v.manifests == 3, "without the anchor the cut is invisible: {v:?}");
    let a = anchors.clone();
    let v = run(&app, move |conn| manifests::verify_against(conn, &a)).await;
    let why = v.anchor_broken.expect("the published manifest is missing");
    assert!(why.contains(&format!("manifest {newest}")) && why.contains("deleted"), "{why}");
}
on_both!(shr_5_edited_deleted_and_forged_manifests_are_caught, chain);

async fn erased(app: TestApp) {
    let anchors = two_exports(&app).await;
    let (ada_id, bob_id) = (user_id(&app, "ada").await, user_id(&app, "bob").await);
    let before = run(&app, move |conn| manifests::disclosures_of(conn, ada_id, 100)).await;
    assert_eq!(before.len(), 2, "{before:?}");
    // promise: RGT-2 — erasure takes the learner out of the manifests
    // (the only update the triggers let through), and the chain holds.
    let taken = run(&app, move |conn| manifests::erase(conn, ada_id)).await;
    assert_eq!(taken, 2);
    let after = run(&app, move |conn| manifests::disclosures_of(conn, ada_id, 100)).await;
    assert!(after.is_empty(), "{after:?}");
    let bob = run(&app, move |conn| manifests::disclosures_of(conn, bob_id, 100)).await;
    assert_eq!(bob.len(), 2, "the others' entries stay: {bob:?}");
    let a = anchors.clone();
    let v = run(&app, move |conn| manifests::verify_against(conn, &a)).await;
    assert!(v.intact() && v.erased == 2, "{v:?}");
    // Erasure cannot put anyone back: a smaller erased count is refused.
    let refused = run(&app, |conn| {
        Ok::<_, diesel::result::Error>(
            diesel::update(manifest_rows::table).set(manifest_rows::erased.eq(0)).execute(conn).is_err(),
        )
    })
    .await;
    assert!(refused);
}
on_both!(rgt_2_an_erased_learner_leaves_the_manifests_and_the_chain_still_verifies, erased);

async fn payload(app: TestApp) {
    let partner = ada_shares_bob_declines(&app).await;
    let (url, log) = serve(|_, _| Reply::new(200, "{}")).await;
    let dest = destination(&app, &partner, Target::Webhook { url: format!("{url}/hook") }, "all", "jsonl").await;
    crate::push::push_until_done(&app, &dest, "payload-1").await;
    let body: Vec<u8> = log.lock().unwrap().iter().flat_map(|r| r.body.clone()).collect();
    let found = run(&app, move |conn| manifests::match_payload(conn, &body)).await;
    match found {
        manifests::PayloadMatch::Manifests { export_id, entries, state, .. } => {
            assert_eq!((export_id.as_str(), entries, state.as_str()), ("payload-1", 2, "delivered"));
        }
        other => panic!("the body the partner received matches its manifests: {other:?}"),
    }
    let other = run(&app, |conn| manifests::match_payload(conn, b"something else")).await;
    assert_eq!(other, manifests::PayloadMatch::Nothing);
}
on_both!(shr_5_a_payload_a_partner_received_is_matched_to_its_manifests, payload);

/// Runs this backend's migrations up to and including 000051.
fn migrate_to_51(conn: &mut DbConnection) {
    use diesel::migration::MigrationSource;
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};
    fn upto<DB: diesel::backend::Backend>(h: &mut impl MigrationHarness<DB>, source: FileBasedMigrations)
    where
        FileBasedMigrations: MigrationSource<DB>,
    {
        for m in h.pending_migrations(source).expect("migrations") {
            if m.name().version().to_string().as_str() > "20261207000051" {
                break;
            }
            h.run_migration(&*m).expect("a migration");
        }
    }
    match conn {
        DbConnection::Sqlite(c) => upto(c, FileBasedMigrations::from_path("migrations/sqlite").unwrap()),
        DbConnection::Pg(c) => upto(c, FileBasedMigrations::from_path("migrations/postgres").unwrap()),
    }
}

type Told =
    (i64, Option<i64>, String, String, String, String, Option<i64>, Option<String>, Option<String>, String, String);

fn legacy(url: &str, fresh_schema: bool) {
    // As at start: the keys, and the step that moves set-aside rows after migrating.
    let config = lyceum::config::Config {
        secret_key: Some(crate::common::TEST_SECRET.into()),
        ..lyceum::config::Config::default()
    };
    lyceum::install_keys(&config).expect("keys");
    let db = lyceum::db::Db::connect(url, 1).expect("connect");
    let mut conn = db.get().expect("a connection");
    if fresh_schema {
        diesel::sql_query("DROP SCHEMA public CASCADE").execute(&mut *conn).unwrap();
        diesel::sql_query("CREATE SCHEMA public").execute(&mut *conn).unwrap();
    }
    migrate_to_51(&mut conn);
    let c = &mut *conn;
    let at = |h: u32| chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap().and_hms_opt(h, 0, 0).unwrap();
    diesel::sql_query(
        "INSERT INTO partners (kind, slug, name, contact_email, profile_fields, pseudonym_salt, created_at, updated_at) \
         VALUES ('sponsor', 'acme', 'Acme Corp', 'a@example.org', '', 'salt', '2026-12-01 00:00:00', '2026-12-01 00:00:00')",
    )
    .execute(c)
    .unwrap();
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let partner = diesel::sql_query("SELECT id FROM partners").get_result::<Id>(c).unwrap().id;
    let (ada, bob) = (1001i64, 1002i64);
    let mut ledger = Vec::new();
    for (user, hour) in [(ada, 1), (bob, 1), (ada, 3)] {
        diesel::sql_query(
            "INSERT INTO consent_ledger (user_id, partner_id, purpose, scope, action, categories, method, actor, \
             created_at, prev_hash, row_hash) VALUES ($1, $2, 'partner_marketing', 'all', 'grant', 'profile.email', \
             'web_form', 'learner', $3, 'p', 'h')",
        )
        .bind::<diesel::sql_types::BigInt, _>(user)
        .bind::<diesel::sql_types::BigInt, _>(partner)
        .bind::<diesel::sql_types::Timestamp, _>(at(hour))
        .execute(c)
        .unwrap();
        ledger.push(diesel::sql_query("SELECT max(id) AS id FROM consent_ledger").get_result::<Id>(c).unwrap().id);
    }
    // Rows as the gate, the marketing list and staff wrote them before manifests.
    let rows: Vec<Told> = vec![
        (
            ada,
            Some(partner),
            "Acme Corp".into(),
            "partner_marketing".into(),
            "learner.email".into(),
            "consent".into(),
            Some(ledger[0]),
            None,
            None,
            "mk-1".into(),
            format!("contact:{ada}"),
        ),
        (
            bob,
            Some(partner),
            "Acme Corp".into(),
            "partner_marketing".into(),
            "learner.email".into(),
            "consent".into(),
            Some(ledger[1]),
            None,
            None,
            "mk-1".into(),
            format!("contact:{bob}"),
        ),
        (
            ada,
            None,
            "County Police".into(),
            "legal_obligation".into(),
            "learner.name".into(),
            "legal".into(),
            None,
            Some("s.29 DPA 2018".into()),
            Some("Asked in writing".into()),
            "legal-1".into(),
            format!("user:{ada}"),
        ),
        (
            ada,
            Some(partner),
            "Acme Corp".into(),
            "partner_marketing".into(),
            "learner.email".into(),
            "consent".into(),
            Some(ledger[2]),
            None,
            None,
            "mk-2".into(),
            format!("contact:{ada}"),
        ),
    ];
    for (i, r) in rows.iter().enumerate() {
        diesel::sql_query(
            "INSERT INTO disclosures (user_id, partner_id, recipient, purpose, fields, basis, consent_ledger_id, \
             legal_reference, note, recorded_by, export_id, record_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind::<diesel::sql_types::BigInt, _>(r.0)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>, _>(r.1)
        .bind::<diesel::sql_types::Text, _>(&r.2)
        .bind::<diesel::sql_types::Text, _>(&r.3)
        .bind::<diesel::sql_types::Text, _>(&r.4)
        .bind::<diesel::sql_types::Text, _>(&r.5)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>, _>(r.6)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(&r.7)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(&r.8)
        .bind::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>, _>(r.7.as_ref().map(|_| 7i64))
        .bind::<diesel::sql_types::Text, _>(&r.9)
        .bind::<diesel::sql_types::Text, _>(&r.10)
        .bind::<diesel::sql_types::Timestamp, _>(at(if i == 3 { 4 } else { 2 }))
        .execute(c)
        .unwrap();
    }
    // The rest of the migrations, and the move.
    lyceum::db::migrate_connection(&mut conn).expect("migrate");
    let told = |d: &manifests::Disclosure| -> Told {
        (
            d.user_id,
            d.partner_id,
            d.recipient.clone(),
            d.purpose.clone(),
            d.fields.clone(),
            d.basis.clone(),
            d.consent_ledger_id,
            d.legal_reference.clone(),
            d.note.clone(),
            d.export_id.clone(),
            d.record_key.clone(),
        )
    };
    for user in [ada, bob] {
        let mut expected: Vec<Told> = rows.iter().filter(|r| r.0 == user).cloned().collect();
        let mut got: Vec<Told> = manifests::disclosures_of(&mut conn, user, 100).unwrap().iter().map(told).collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "learner {user}'s log reads the same after the move");
    }
    let legal = manifests::disclosures_of(&mut conn, ada, 100).unwrap();
    assert!(legal.iter().any(|d| d.recorded_by == Some(7) && d.created_at == at(2)), "{legal:?}");
    let v = manifests::verify_against(&mut conn, &[]).unwrap();
    assert!(v.intact() && v.entries == 4, "{v:?}");
    let gone = diesel::sql_query("SELECT count(*) AS id FROM disclosures_legacy").get_result::<Id>(&mut *conn);
    assert!(gone.is_err(), "the old table is dropped once moved");
}

#[test]
fn shr_5_disclosure_rows_logged_before_manifests_move_into_them_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    legacy(&format!("sqlite://{}", dir.path().join("old.db").display()), false);
}

#[test]
fn shr_5_disclosure_rows_logged_before_manifests_move_into_them_postgres() {
    let Some(db) = crate::common::postgres::TestDatabase::create() else { return };
    legacy(&db.url, true);
}

/// Eight learners of one member, two courses each, whose enrollments arrived
/// interleaved, as they do (in time, not by learner): learner 1, 8, 2, 7, 3,
/// 6, 4, 5 in the first course, then the same in the second. Answers the
/// member's partner and the learners' ids, in id order.
async fn interleaved(app: &TestApp) -> (lyceum::consent::partners::Partner, Vec<i64>) {
    let c = seed_course(app, "northbridge", "intro-python", "Introduction to Python", None).await;
    seed_course(app, "northbridge", "data-science", "Data Science", None).await;
    let partner = member_partner(app, c.member_id, &[]).await;
    let learners = run(app, |conn| {
        let now = lyceum::db::now();
        let mut ids = Vec::new();
        for i in 0..8 {
            let username = format!("learner{i}");
            let id: i64 = diesel::insert_into(users::table)
                .values((
                    users::username.eq(&username),
                    users::email.eq(format!("{username}@example.org")),
                    users::first_name.eq("Learner"),
                    users::last_name.eq(&username),
                    users::password_hash.eq("!"),
                    users::status.eq("active"),
                    users::email_verified_at.eq(Some(now)),
                    users::terms_version.eq(lyceum::accounts::TERMS_VERSION),
                    users::terms_accepted_at.eq(now),
                    users::created_at.eq(now),
                    users::updated_at.eq(now),
                ))
                .returning(users::id)
                .get_result(conn)?;
            ids.push(id);
        }
        let runs: Vec<i64> = course_runs::table.order(course_runs::id).select(course_runs::id).load(conn)?;
        for run in runs {
            for i in [0, 7, 1, 6, 2, 5, 3, 4] {
                diesel::insert_into(enrollments::table)
                    .values((
                        enrollments::user_id.eq(ids[i]),
                        enrollments::run_id.eq(run),
                        enrollments::track.eq("audit"),
                        enrollments::status.eq("active"),
                        enrollments::enrolled_at.eq(now),
                        enrollments::grade_percent.eq(0.0),
                        enrollments::passed.eq(false),
                    ))
                    .execute(conn)?;
            }
        }
        Ok::<_, diesel::result::Error>(ids)
    })
    .await;
    (partner, learners)
}

/// Pulls the member's enrollments under `export_id`, `limit` a page, from the
/// start; answers the enrollment ids in the order they left.
async fn pull_pages(
    app: &TestApp,
    partner: &lyceum::consent::partners::Partner,
    export_id: &str,
    limit: i64,
) -> Vec<i64> {
    let (p, export_id) = (partner.clone(), export_id.to_string());
    run(app, move |conn| {
        let mut after = sharing::Position::START;
        let mut eids = Vec::new();
        loop {
            let req = sharing::Request {
                partner: &p,
                purpose: Purpose::MemberSharing,
                want: Want { enrollment: true, progress: false, result: false },
                after,
                limit,
                export_id: &export_id,
                base_url: "http://x",
            };
            let page = sharing::next_page(conn, &req, lyceum::db::now())?;
            for s in &page.shared {
                let cursor = s.records().next().map(|r| r.cursor().to_string()).unwrap_or_default();
                eids.push(sharing::decode_cursor(&cursor).unwrap_or(-1));
            }
            match page.next_after {
                Some(next) => after = next,
                None => return Ok::<_, diesel::result::Error>(eids),
            }
        }
    })
    .await
}

/// promise: SHR-5 — a learner's own log is found in about one manifest per
/// export: the member export goes by learner, then enrollment, so a page's
/// learner range is its own and no other page's range holds the learner.
async fn one_manifest_per_export(app: TestApp) {
    let (partner, learners) = interleaved(&app).await;
    let eids = pull_pages(&app, &partner, "paged", 4).await;
    assert_eq!(eids.len(), 16, "every enrollment left once: {eids:?}");
    let owners: Vec<i64> = {
        let e = eids.clone();
        run(&app, move |conn| {
            let mut out = Vec::new();
            for id in e {
                out.push(enrollments::table.find(id).select(enrollments::user_id).first::<i64>(conn)?);
            }
            Ok::<_, diesel::result::Error>(out)
        })
        .await
    };
    let mut ordered: Vec<(i64, i64)> = owners.iter().copied().zip(eids.iter().copied()).collect();
    ordered.sort_unstable();
    assert_eq!(
        owners.iter().copied().zip(eids.iter().copied()).collect::<Vec<_>>(),
        ordered,
        "by learner, then enrollment"
    );
    for (i, u) in learners.iter().copied().enumerate() {
        let holding: i64 = run(&app, move |conn| {
            manifest_rows::table
                .filter(manifest_rows::export_id.eq("paged"))
                .filter(manifest_rows::user_min.le(u))
                .filter(manifest_rows::user_max.ge(u))
                .count()
                .get_result(conn)
        })
        .await;
        assert_eq!(holding, 1, "learner {i}'s lookup touches one manifest of the export, not {holding}");
        let log = run(&app, move |conn| manifests::disclosures_of(conn, u, i64::MAX)).await;
        let mut theirs: Vec<String> = log.iter().map(|d| d.record_key.clone()).collect();
        theirs.sort();
        let mut want: Vec<String> =
            owners.iter().zip(&eids).filter(|(o, _)| **o == u).map(|(_, e)| format!("enrollment:{e}")).collect();
        want.sort();
        assert_eq!(theirs, want, "learner {i}'s log is their two records, no one else's");
        assert!(log.iter().all(|d| d.user_id == u && d.export_id == "paged" && d.basis == "deidentified"));
    }

    // An export's cursor seals (learner, enrollment), differs between
    // exports, and names its enrollment; one of the former order (an
    // enrollment alone) cannot resume in this one and is told apart.
    let p = sharing::Position { user_id: learners[3], enrollment_id: eids[7] };
    let cursor = sharing::encode_position(p, "paged");
    assert_eq!(sharing::decode_position(&cursor), Ok(p));
    assert_eq!(sharing::decode_cursor(&cursor), Some(eids[7]));
    assert_ne!(cursor, sharing::encode_position(p, "another"));
    assert_eq!(sharing::decode_position(&sharing::encode_cursor(eids[7], "paged")), Err(sharing::CursorError::Former));
    assert_eq!(sharing::decode_position("%%%"), Err(sharing::CursorError::Malformed));

    // Pulled again under the same export id (a resume from the start):
    // nothing is recorded twice.
    pull_pages(&app, &partner, "paged", 4).await;
    let entries: Vec<i64> = run(&app, |conn| {
        manifest_rows::table.filter(manifest_rows::export_id.eq("paged")).select(manifest_rows::entries).load(conn)
    })
    .await;
    assert_eq!(entries.iter().sum::<i64>(), 16, "{entries:?}");
}
on_both!(shr_5_a_learners_log_is_found_in_one_manifest_per_export, one_manifest_per_export);

/// A later page of a member export bounds the joined learners from below as
/// well as the enrollments: PostgreSQL does not carry the lower bound on
/// `enrollments.user_id` over to `users.id`, and at a million learners it
/// read the users' key from the first learner for every page (found by `lyceum
/// bench-export`: pages slowed from 12,000 to 6,500 rows a second as the
/// export went on; `EXPLAIN ANALYZE` of a page after learner 700,000 read
/// 700,999 index entries of `users_pkey`, 203 ms, against 1,000 and 4.5 ms
/// with the bound). Small test databases plan it otherwise, so this checks
/// the statement the gate sends.
async fn later_pages_bound_the_learners(app: TestApp) {
    use diesel::connection::InstrumentationEvent;
    use std::sync::Mutex;
    let partner = ada_shares_bob_declines(&app).await;
    let ada = user_id(&app, "ada").await;
    let heard = Arc::new(Mutex::new(Vec::<String>::new()));
    let listen = heard.clone();
    let shared = run(&app, move |conn| {
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                listen.lock().unwrap().push(query.to_string());
            }
        });
        let req = sharing::Request {
            partner: &partner,
            purpose: Purpose::MemberSharing,
            want: Want::ALL,
            after: sharing::Position { user_id: ada, enrollment_id: 0 },
            limit: 1_000,
            export_id: "later-page",
            base_url: "http://lyceum.test",
        };
        let page = sharing::next_page(conn, &req, lyceum::db::now());
        conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        page.map(|p| p.shared.len())
    })
    .await;
    assert!(shared >= 1, "Ada's record (and Bob's after her) are on the page");
    // SQLite's statements quote names with backticks, PostgreSQL's with double quotes.
    let statements: Vec<String> = heard.lock().unwrap().iter().map(|s| s.replace('`', "\"")).collect();
    let walk: Vec<&String> = statements
        .iter()
        .filter(|s| s.trim_start().starts_with("SELECT") && s.contains(r#""enrollments" INNER JOIN"#))
        .filter(|s| s.contains(r#""users"."username""#))
        .collect();
    assert_eq!(walk.len(), 1, "one candidate read: {statements:#?}");
    assert!(walk[0].contains(r#""users"."id" >= "#), "the learners are bounded too: {}", walk[0]);
    // The position is one row comparison, which PostgreSQL estimates as the
    // rows left after it. Written as `user_id >= $1 AND (user_id > $1 OR id
    // > $2)`, the two terms' selectivities were multiplied (and again by the
    // learners' bound): near the end of a million-row export the planner
    // expected a few hundred rows where 60,000 were left, hash-joined and
    // sorted them all for each page (164 ms a page after learner 940,000,
    // against 5 ms), and the last tenth of the export took 12 s of its 40.
    assert!(
        walk[0].contains("(enrollments.user_id, enrollments.id) > ("),
        "the position is one row comparison: {}",
        walk[0]
    );
    assert!(!walk[0].contains(r#""enrollments"."user_id" >= "#), "and no separate learner bound: {}", walk[0]);
}
on_both!(shr_5_a_later_export_page_bounds_the_learners_it_joins, later_pages_bound_the_learners);

/// A year of daily exports is a million manifests: a learner's lookup must
/// read the few whose learner range holds them through `manifests_reach`,
/// not walk the table. 3,000 manifests of one width class (as a site's
/// exports are), the statistics `ANALYZE` gathers, and the lookup the
/// Sharing page makes: with `ORDER BY id` in the statement, SQLite chose to
/// scan the table in id order (1,095,000 manifests, minutes a view); the
/// manifests found are the ones whose range holds the learner, oldest first.
async fn learner_lookup_reads_by_index(app: TestApp) {
    use diesel::connection::InstrumentationEvent;
    use std::sync::Mutex;
    const LEARNER: i64 = 15_005;
    let sqlite = app.pg.is_none();
    let heard = Arc::new(Mutex::new(Vec::<String>::new()));
    let listen = heard.clone();
    let (found, expected) = run(&app, move |conn| {
        let (at, empty) = match conn {
            DbConnection::Pg(_) => ("TIMESTAMP '2026-01-05 03:00:00'", "decode('', 'hex')"),
            DbConnection::Sqlite(_) => ("'2026-01-05 03:00:00'", "X''"),
        };
        let zero = "0".repeat(64);
        // Manifest i names learners 10·i … 10·i + 300 (width class 9).
        diesel::sql_query(format!(
            "INSERT INTO manifests (partner_id, recipient, purpose, basis, fields, record_kind, export_id, part, \
               state, created_at, ledger_head, learners, records, user_min, user_max, record_min, record_max, \
               entries, erased, set_digest, erased_digest, prev_hash, hash, user_span) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
             SELECT NULL, 'Partner', 'member_sharing', 'deidentified', 'course', 'enrollment', \
               'lookup-' || (i / 100), i % 100, 'delivered', {at}, 0, {empty}, {empty}, 10 * i, 10 * i + 300, \
               i, i, 1, 0, '{zero}', '{zero}', '{zero}', '{zero}', 9 FROM n"
        ))
        .execute(conn)?;
        assert_eq!(manifests::span_class(10, 310), 9);
        diesel::sql_query(if sqlite { "ANALYZE" } else { "ANALYZE manifests" }).execute(conn)?;
        let expected: Vec<i64> = manifest_rows::table
            .filter(manifest_rows::user_min.le(LEARNER))
            .filter(manifest_rows::user_max.ge(LEARNER))
            .order(manifest_rows::id.asc())
            .select(manifest_rows::id)
            .load(conn)?;
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                listen.lock().unwrap().push(query.to_string());
            }
        });
        let found = manifests::read_for(conn, LEARNER);
        conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
        Ok::<_, diesel::result::Error>((found?, expected))
    })
    .await;
    assert_eq!(expected.len(), 30, "manifests 1471 to 1500");
    assert_eq!(found, expected, "the manifests holding the learner, oldest first");
    if !sqlite {
        return;
    }
    let lookups: Vec<String> = heard
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.split(" -- binds:").next().unwrap_or(s).to_string())
        .filter(|s| s.trim_start().starts_with("SELECT") && s.contains("manifests"))
        .collect();
    assert_eq!(lookups.len(), 1, "one lookup: {lookups:#?}");
    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    let sql = lookups[0].clone();
    let plan: Vec<String> = run(&app, move |conn| {
        let steps: Vec<Step> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load(conn)?;
        Ok::<_, diesel::result::Error>(steps.into_iter().map(|s| s.detail).collect())
    })
    .await;
    assert!(
        plan.iter().all(|s| !s.starts_with("SCAN manifests")) && plan.iter().any(|s| s.contains("manifests_reach")),
        "the lookup reads manifests_reach, not the table: {plan:#?}"
    );
}
on_both!(shr_5_a_learners_lookup_reads_the_manifests_holding_them_by_index, learner_lookup_reads_by_index);

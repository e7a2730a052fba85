//! Secrets at rest (issue 26, item 7): partner destination secrets sealed in
//! the database and still usable for pushes, recovery codes hashed with a
//! salt, and the files Lyceum creates readable by its own user only.

use diesel::prelude::*;
use lyceum::accounts::twofactor;
use lyceum::consent::push::Target;
use lyceum::db::schema::{partner_destinations, recovery_codes};
use partner_adapters::test_server::{Reply, serve};
use sha2::{Digest, Sha256};

use crate::common::{TestApp, every_row_in};
use crate::on_both;
use crate::push::{ada_shares_bob_declines, destination, independent_signature_ok, queue, state};
use crate::sharing::{run, user_id, verified};

/// The secret `push::destination` gives every destination it creates.
const SECRET: &str = "whsec_test_secret";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The raw bytes of the SQLite database and its write-ahead log.
fn sqlite_bytes(app: &TestApp) -> Vec<u8> {
    let db = app.dir.path().join("lyceum.db");
    let mut bytes = std::fs::read(&db).expect("database file");
    bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    bytes
}

async fn destination_secrets_sealed(app: TestApp) {
    let partner = ada_shares_bob_declines(&app).await;
    let (url, log) = serve(|_, _| Reply::new(200, "{}")).await;
    let dest = destination(&app, &partner, Target::Webhook { url: format!("{url}/hook") }, "all", "jsonl").await;
    let send_id = queue(&app, &dest, "sealed-1").await;
    app.run_jobs().await;
    assert_eq!(state(&app, send_id).await.1, "done", "the push works with the sealed secret");
    let requests = log.lock().unwrap().clone();
    assert!(!requests.is_empty() && requests.iter().all(|r| independent_signature_ok(SECRET.as_bytes(), r)));

    let rows = every_row_in(&app.config);
    let leaks: Vec<_> = rows.iter().filter(|(_, row)| row.contains(SECRET)).collect();
    assert!(leaks.is_empty(), "the destination secret is readable in the database: {leaks:?}");
    if app.config.is_sqlite() {
        assert!(!contains(&sqlite_bytes(&app), SECRET), "the secret is in the SQLite file or its log");
    }

    // A secret stored in plain text before sealing is sealed at start-up and keeps working.
    let legacy = "legacy-plain-hook-secret";
    let id = dest.id;
    run(&app, move |conn| {
        diesel::update(partner_destinations::table.find(id)).set(partner_destinations::secret.eq(legacy)).execute(conn)
    })
    .await;
    lyceum::build_rocket(app.config.clone()).expect("the app starts again");
    let stored: String =
        run(&app, move |conn| partner_destinations::table.find(id).select(partner_destinations::secret).first(conn))
            .await;
    assert!(stored.starts_with("env1:") && !stored.contains(legacy), "sealed at start-up: {stored}");
    let send_id = queue(&app, &dest, "sealed-2").await;
    app.run_jobs().await;
    assert_eq!(state(&app, send_id).await.1, "done");
    let last = log.lock().unwrap().last().cloned().expect("a request");
    assert!(independent_signature_ok(legacy.as_bytes(), &last));
}
on_both!(destination_secrets_are_sealed_in_the_database_and_pushes_still_work, destination_secrets_sealed);

async fn recovery_codes_salted(app: TestApp) {
    verified(&app, "ada").await;
    verified(&app, "bob").await;
    let (ada, bob) = (user_id(&app, "ada").await, user_id(&app, "bob").await);
    let code = "ABCDE-FGHJK";
    let hashes: Vec<String> = run(&app, move |conn| {
        for user in [ada, bob] {
            twofactor::store_recovery_codes(conn, user, &[code.to_string()], lyceum::db::now())?;
        }
        recovery_codes::table.order(recovery_codes::user_id).select(recovery_codes::code_hash).load(conn)
    })
    .await;
    assert_eq!(hashes.len(), 2);
    assert_ne!(hashes[0], hashes[1], "one code, two accounts, two different hashes");
    let unsalted =
        hex::encode(Sha256::new_with_prefix(b"lyceum recovery code\0").chain_update("ABCDEFGHJK").finalize());
    assert!(hashes.iter().all(|h| !h.contains(&unsalted)), "no unsalted hash is stored");

    // Each account's code works once.
    for user in [ada, bob] {
        let outcome = run(&app, move |conn| {
            let first = twofactor::verify(conn, user, "abcde fghjk", lyceum::db::now()).map(|_| ());
            let again = twofactor::verify(conn, user, code, lyceum::db::now()).map(|_| ());
            Ok::<_, String>((first.is_ok(), again.is_ok()))
        })
        .await;
        assert_eq!(outcome, (true, false), "accepted once, then refused");
    }

    // A code stored before salting (a bare SHA-256) still works, once.
    let old = "MNPQR-STUVW";
    let old_hash =
        hex::encode(Sha256::new_with_prefix(b"lyceum recovery code\0").chain_update("MNPQRSTUVW").finalize());
    let outcome = run(&app, move |conn| {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::user_id.eq(ada),
                recovery_codes::code_hash.eq(old_hash),
                recovery_codes::created_at.eq(lyceum::db::now()),
            ))
            .execute(conn)
            .map_err(|e| e.to_string())?;
        let first = twofactor::verify(conn, ada, old, lyceum::db::now()).is_ok();
        let again = twofactor::verify(conn, ada, old, lyceum::db::now()).is_ok();
        Ok::<_, String>((first, again))
    })
    .await;
    assert_eq!(outcome, (true, false));
}
on_both!(recovery_codes_are_hashed_with_a_salt_of_their_own_and_work_once, recovery_codes_salted);

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[cfg(unix)]
async fn private_files(app: TestApp) {
    // Mail in the outbox, a blob, the search index.
    verified(&app, "ada").await;
    let blobs = app.client.rocket().state::<std::sync::Arc<dyn lyceum::storage::BlobStore>>().expect("blobs").clone();
    let key = lyceum::storage::key_for(b"a private file");
    blobs.put(&key, b"a private file").expect("blob stored");
    let data = app.dir.path();
    let mut files = vec![data.join("blobs").join(&key[..2]).join(&key)];
    let outbox = app.config.outbox_dir();
    files.extend(std::fs::read_dir(&outbox).expect("outbox").map(|e| e.expect("entry").path()));
    if app.config.is_sqlite() {
        // Both files of a database in WAL mode, written and kept open.
        files.extend([data.join("lyceum.db"), data.join("lyceum.db-wal"), data.join("lyceum.db-shm")]);
    }
    for file in &files {
        assert_eq!(mode(file), 0o600, "{} is readable by others", file.display());
    }
    let dirs = [
        outbox,
        data.join("blobs"),
        data.join("blobs").join(&key[..2]),
        data.join("search"),
        data.join("search-forums"),
    ];
    for dir in &dirs {
        assert_eq!(mode(dir), 0o700, "{} is open to others", dir.display());
    }

    // The key file demo mode generates.
    let demo_dir = tempfile::tempdir().expect("temp dir");
    let config = lyceum::config::Config {
        data_dir: demo_dir.path().join("data"),
        demo: true,
        secret_key: None,
        ..lyceum::config::Config::default()
    };
    config.resolve_secret().expect("a generated secret");
    assert_eq!(mode(&demo_dir.path().join("data").join("secret.key")), 0o600);
    assert_eq!(mode(&demo_dir.path().join("data")), 0o700);
}
#[cfg(unix)]
on_both!(files_lyceum_creates_are_readable_by_its_own_user_only, private_files);

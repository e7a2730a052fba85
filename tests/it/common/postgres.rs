//! A fresh PostgreSQL database per test, cloned from a template that has the
//! migrations applied (one template per migration set, made once).

use diesel::{Connection, PgConnection, RunQueryDsl};
use std::sync::Mutex;

static TEMPLATE: Mutex<Option<String>> = Mutex::new(None);

pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

fn admin_url() -> Option<String> {
    match std::env::var("LYCEUM_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => None,
    }
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    format!("{root}/{name}{query}")
}

fn migrations_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hasher = Sha256::new();
    for f in files {
        hasher.update(f.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&f).unwrap_or_default());
    }
    hex::encode(hasher.finalize())[..12].to_string()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

fn template(admin: &str) -> String {
    let mut guard = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(name) = guard.as_ref() {
        return name.clone();
    }
    let name = format!("lyceum_tmpl_{}", migrations_fingerprint());
    let mut conn = PgConnection::establish(admin).expect("connect to PostgreSQL");
    let exists: i64 = diesel::sql_query(format!("SELECT 1 AS one FROM pg_database WHERE datname = '{name}'"))
        .execute(&mut conn)
        .expect("query pg_database") as i64;
    if exists == 0 {
        let building = format!("{name}_build_{}", std::process::id());
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {building}")).execute(&mut conn).expect("drop");
        diesel::sql_query(format!("CREATE DATABASE {building}")).execute(&mut conn).expect("create template");
        {
            let db = lyceum::db::Db::connect(&with_database(admin, &building), 1).expect("connect template");
            db.migrate().expect("migrate template");
        }
        // Rename into place only when complete, so a crash leaves no half template.
        diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
            .execute(&mut conn)
            .expect("rename template");
    }
    *guard = Some(name.clone());
    name
}

impl TestDatabase {
    pub fn create() -> Option<TestDatabase> {
        let Some(admin) = admin_url() else {
            super::service_missing("PostgreSQL", "LYCEUM_TEST_POSTGRES_URL");
            return None;
        };
        let template = template(&admin);
        let name = format!("lyceum_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(&admin).expect("connect to PostgreSQL");
        diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .execute(&mut conn)
            .expect("clone template");
        Some(TestDatabase { url: with_database(&admin, &name), admin_url: admin, name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut conn);
        }
    }
}

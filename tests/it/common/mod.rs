//! The `TestApp` harness: each test gets a fresh app on its own SQLite file
//! and, when `LYCEUM_TEST_POSTGRES_URL` is set, the same test runs again on
//! its own PostgreSQL database cloned from a migrated template. Helpers read
//! like a person's steps: `app.sign_up("ada")`, `app.verify(&ada)`.

#![allow(dead_code)]

pub mod postgres;

use lyceum::config::Config;
use lyceum::db::Db;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub const TEST_SECRET: &str =
    "dGVzdC1zZWNyZXQta2V5LWZvci1seWNldW0tdGVzdHMtb25seS0wMTIzNDU2Nzg5YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=";
pub const PASSWORD: &str = "correct horse battery staple";

/// Runs a test body on SQLite and on PostgreSQL (when available); with a
/// third argument, on apps whose configuration that closure adjusts (for
/// example `|c| c.demo = true`).
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:ident, $adjust:expr) => {
        mod $name {
            #[rocket::async_test]
            async fn sqlite() {
                super::$body($crate::common::TestApp::sqlite_with($adjust).await).await
            }
            #[rocket::async_test]
            async fn postgres() {
                if let Some(app) = $crate::common::TestApp::postgres_with($adjust).await {
                    super::$body(app).await
                }
            }
        }
    };
    ($name:ident, $body:ident) => {
        mod $name {
            #[rocket::async_test]
            async fn sqlite() {
                super::$body($crate::common::TestApp::sqlite().await).await
            }
            #[rocket::async_test]
            async fn postgres() {
                if let Some(app) = $crate::common::TestApp::postgres().await {
                    super::$body(app).await
                }
            }
        }
    };
}

/// Runs a test body on SQLite with the search indexes on the test
/// Meilisearch (`LYCEUM_TEST_MEILI_URL`, `LYCEUM_TEST_MEILI_KEY`) instead of
/// the embedded ones; skipped loudly without it, failed under `CI=true`.
#[macro_export]
macro_rules! on_meilisearch {
    ($name:ident, $body:ident) => {
        mod $name {
            #[rocket::async_test]
            async fn sqlite_meilisearch() {
                if let Some(app) = $crate::common::TestApp::meilisearch().await {
                    super::$body(app).await
                }
            }
        }
    };
}

/// The test Meilisearch's URL and key, or `None` (with a loud message) when
/// none is configured, unless `CI=true`, where that fails the test.
pub fn meilisearch() -> Option<(String, Option<String>)> {
    match std::env::var("LYCEUM_TEST_MEILI_URL").ok().filter(|u| !u.trim().is_empty()) {
        Some(url) => Some((url, std::env::var("LYCEUM_TEST_MEILI_KEY").ok().filter(|k| !k.is_empty()))),
        None => {
            service_missing("Meilisearch", "LYCEUM_TEST_MEILI_URL");
            None
        }
    }
}

/// An index name (or prefix) no other test uses, so tests share the server in parallel.
pub fn unique_index_name() -> String {
    format!("lyceum_test_{}", uuid::Uuid::new_v4().simple())
}

pub struct TestApp {
    pub client: Client,
    pub config: Config,
    /// Kept so the files live as long as the app; dropped after the client.
    pub dir: tempfile::TempDir,
    pub pg: Option<postgres::TestDatabase>,
}

#[derive(Debug, Clone)]
pub struct Learner {
    pub username: String,
    pub email: String,
    pub password: String,
}

pub fn test_config(dir: &std::path::Path, database_url: String) -> Config {
    Config {
        database_url,
        data_dir: dir.to_path_buf(),
        demo: false,
        secret_key: Some(TEST_SECRET.into()),
        worker: false,
        db_pool_size: 4,
        rate_limit_per_minute: 1000,
        base_url: Some("http://lyceum.test".into()),
        // The tests' own services (webhook and LRS receivers, the OIDC provider, S3) listen on loopback.
        outbound_allow: vec!["127.0.0.1/32".into(), "::1".into()],
        ..Config::default()
    }
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        Self::sqlite_with(|_| {}).await
    }

    pub async fn sqlite_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path(), format!("sqlite://{}", dir.path().join("lyceum.db").display()));
        adjust(&mut config);
        Self::start(config, dir, None).await
    }

    /// `None` (with a loud message) when no PostgreSQL is configured, unless
    /// `CI=true`, where a missing service fails the test.
    pub async fn postgres() -> Option<TestApp> {
        Self::postgres_with(|_| {}).await
    }

    pub async fn postgres_with(adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let db = postgres::TestDatabase::create()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path(), db.url.clone());
        adjust(&mut config);
        Some(Self::start(config, dir, Some(db)).await)
    }

    /// An app on SQLite whose search indexes live on the test Meilisearch,
    /// under a prefix of their own; `None` as [`meilisearch`] says.
    pub async fn meilisearch() -> Option<TestApp> {
        let (url, key) = meilisearch()?;
        let prefix = format!("{}_", unique_index_name());
        Some(
            Self::sqlite_with(|c| {
                c.search_url = Some(url);
                c.search_key = key;
                c.search_index_prefix = prefix;
            })
            .await,
        )
    }

    async fn start(config: Config, dir: tempfile::TempDir, pg: Option<postgres::TestDatabase>) -> TestApp {
        let rocket = lyceum::build_rocket(config.clone()).expect("app builds");
        let client = Client::tracked(rocket).await.expect("valid rocket");
        TestApp { client, config, dir, pg }
    }

    /// Another instance of the same site: its own process state (caches,
    /// worker) and data directory (on SQLite the embedded search index serves
    /// one process), the same database. The directory lives as long as the
    /// returned handle.
    pub async fn second_instance(&self) -> (Client, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config { data_dir: dir.path().to_path_buf(), ..self.config.clone() };
        let rocket = lyceum::build_rocket(config).expect("app builds");
        (Client::tracked(rocket).await.expect("valid rocket"), dir)
    }

    pub fn db(&self) -> Db {
        self.client.rocket().state::<Db>().expect("db").clone()
    }

    pub async fn run_jobs(&self) -> usize {
        self.client.rocket().state::<lyceum::jobs::Worker>().expect("worker").run_due().await.expect("jobs run")
    }

    pub async fn get(&self, path: &str) -> (Status, String) {
        let res = self.client.get(path.to_string()).dispatch().await;
        let status = res.status();
        (status, res.into_string().await.unwrap_or_default())
    }

    pub async fn get_json(&self, path: &str) -> LocalResponse<'_> {
        self.client.get(path.to_string()).header(Header::new("Accept", "application/json")).dispatch().await
    }

    /// The CSRF token of this browser (creates it on first call).
    pub async fn csrf(&self) -> String {
        let re = regex::Regex::new(r#"name="csrf_token" value="([^"]+)""#).expect("regex");
        // Signed out, the sign-in page has a form; signed in, every page has the sign-out form,
        // and a session held until a changed policy is accepted still reads the policies.
        for page in ["/signin", "/", "/privacy"] {
            let (_, body) = self.get(page).await;
            if let Some(c) = re.captures(&body) {
                return c[1].to_string();
            }
        }
        panic!("no page with a CSRF token")
    }

    /// Posts a form the way the browser does: with this browser's CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> LocalResponse<'_> {
        let token = self.csrf().await;
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &encode(&all)).await
    }

    pub async fn post_raw(&self, path: &str, body: &str) -> LocalResponse<'_> {
        self.client
            .post(path.to_string())
            .header(ContentType::Form)
            .remote(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 4000))
            .body(body)
            .dispatch()
            .await
    }

    pub fn adult_birthday() -> String {
        "1990-05-17".into()
    }

    pub async fn sign_up_with(&self, username: &str, extra: &[(&str, &str)]) -> LocalResponse<'_> {
        let email = format!("{username}@example.org");
        let dob = Self::adult_birthday();
        let mut fields: Vec<(&str, &str)> = vec![
            ("first_name", "Ada"),
            ("last_name", "Lovelace"),
            ("username", username),
            ("email", &email),
            ("password", PASSWORD),
            ("date_of_birth", &dob),
            ("accept_terms", "true"),
        ];
        for (k, v) in extra {
            fields.retain(|(name, _)| name != k);
            fields.push((k, v));
        }
        let fields: Vec<(String, String)> = fields.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post_form("/signup", &refs).await
    }

    /// Signs up an adult learner and checks it worked.
    pub async fn sign_up(&self, username: &str) -> Learner {
        let res = self.sign_up_with(username, &[]).await;
        let status = res.status();
        if status != Status::SeeOther {
            let body = res.into_string().await.unwrap_or_default();
            let re = regex::Regex::new(r#"class="field-error"[^>]*>([^<]+)<"#).expect("regex");
            let errors: Vec<_> = re.captures_iter(&body).map(|c| c[1].to_string()).collect();
            panic!("sign-up of {username} should succeed, got {status}: {errors:?}");
        }
        Learner { username: username.into(), email: format!("{username}@example.org"), password: PASSWORD.into() }
    }

    /// Sends queued mail and returns the path of the first link in the newest
    /// message to `to` whose link path starts with `prefix`.
    pub async fn mailed_link(&self, to: &str, prefix: &str) -> Option<String> {
        self.run_jobs().await;
        let base = self.config.base_url();
        lyceum::notify::read_outbox(&self.config.outbox_dir(), 1000)
            .into_iter()
            .filter(|m| m.to == to)
            .flat_map(|m| m.links)
            .filter_map(|l| l.strip_prefix(&base).map(str::to_string))
            .find(|p| p.starts_with(prefix))
    }

    /// The signed-in person confirms it is them with their password, as an
    /// account with no second factor does before adding one.
    pub async fn confirm_with_password(&self) {
        let res =
            self.post_form("/account/security/verify", &[("password", PASSWORD), ("next", "/account/security")]).await;
        assert_eq!(res.headers().get_one("Location"), Some("/account/security"), "stepped up with the password");
    }

    /// Subjects of the mail sent to `to` so far (after running due jobs), newest first.
    pub async fn mailed_subjects(&self, to: &str) -> Vec<String> {
        self.run_jobs().await;
        lyceum::notify::read_outbox(&self.config.outbox_dir(), 1000)
            .into_iter()
            .filter(|m| m.to == to)
            .map(|m| m.subject)
            .collect()
    }

    pub async fn verify(&self, learner: &Learner) {
        let link = self.mailed_link(&learner.email, "/verify-email/").await.expect("a verification email");
        let res = self.client.get(link).dispatch().await;
        assert_eq!(res.status(), Status::SeeOther);
    }

    pub async fn sign_in(&self, learner: &Learner, remember: bool) -> LocalResponse<'_> {
        let remember = if remember { "true" } else { "false" };
        self.post_form("/signin", &[("login", &learner.email), ("password", &learner.password), ("remember", remember)])
            .await
    }

    pub async fn sign_out(&self) -> LocalResponse<'_> {
        self.post_form("/signout", &[]).await
    }

    /// The page the current browser sees at `path` after following redirects once.
    pub async fn signed_in_as(&self) -> Option<String> {
        let (_, body) = self.get("/").await;
        let re = regex::Regex::new(r"Signed in as <strong>([^<]+)</strong>").expect("regex");
        re.captures(&body).map(|c| c[1].to_string())
    }
}

pub fn encode(fields: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Fails under CI, otherwise prints a loud skip notice.
pub fn service_missing(service: &str, variable: &str) -> bool {
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{service} is required under CI=true but {variable} is not set");
    }
    eprintln!("\n*** SKIPPED: {service} tests need {variable}; set it to run them. ***\n");
    true
}

/// Every row of every table as JSON text, to search for what must be gone.
pub fn every_row(conn: &mut lyceum::db::Conn) -> Vec<(String, String)> {
    use diesel::prelude::*;
    use diesel::sql_types::Text;
    use lyceum::db::DbConnection;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        row: String,
    }
    let sqlite = matches!(conn, DbConnection::Sqlite(_));
    let tables_sql = if sqlite {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    } else {
        "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = current_schema()"
    };
    let tables: Vec<Name> = diesel::sql_query(tables_sql).load(conn).unwrap();
    let mut out = Vec::new();
    for Name { name: table } in tables {
        let sql = if sqlite {
            let cols: Vec<Name> =
                diesel::sql_query(format!("SELECT name FROM pragma_table_info('{table}')")).load(conn).unwrap();
            let pairs: Vec<String> = cols.iter().map(|c| format!("'{0}', CAST(\"{0}\" AS TEXT)", c.name)).collect();
            format!("SELECT json_object({}) AS row FROM \"{table}\"", pairs.join(", "))
        } else {
            format!("SELECT row_to_json(t)::text AS row FROM \"{table}\" t")
        };
        for Row { row } in diesel::sql_query(sql).load::<Row>(conn).unwrap() {
            out.push((table.clone(), row));
        }
    }
    out
}

/// Every row of every table of the app's database (SQLite or PostgreSQL), read
/// over a connection of its own.
pub fn every_row_in(config: &Config) -> Vec<(String, String)> {
    let db = Db::connect(&config.database_url, 1).unwrap();
    let mut pooled = db.get().unwrap();
    every_row(&mut pooled)
}

//! Two `lyceum serve` processes serve one site behind nginx (round-robin, on
//! loopback), on one PostgreSQL, one S3 bucket and one Meilisearch: a
//! learner's whole journey alternates between them, guessing a password over
//! both is still stopped, and the journey goes on when one is killed.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::browser::free_port;
use crate::common::{self, TestApp, service_missing};
use crate::learning::seed_course;
use crate::sharing::{key_for, lines, member_partner};
use lyceum::consent::Category;

/// Processes killed when the test ends, however it ends.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(addr: &str, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "{what} did not start listening on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A browser: cookies kept, redirects not followed, every answer's upstream noted.
struct Browser {
    http: reqwest::Client,
    base: String,
    upstreams: BTreeSet<String>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Browser { http, base: base.to_string(), upstreams: BTreeSet::new() }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
        let res = req.send().await.expect("nginx answers");
        if let Some(up) = res.headers().get("X-Upstream").and_then(|v| v.to_str().ok()) {
            self.upstreams.insert(up.to_string());
        }
        let status = res.status().as_u16();
        let location = res.headers().get("Location").and_then(|v| v.to_str().ok()).map(str::to_string);
        (status, location, res.text().await.unwrap_or_default())
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let req = self.http.get(format!("{}{path}", self.base));
        let (status, _, body) = self.send(req).await;
        (status, body)
    }

    async fn csrf(&mut self) -> String {
        let re = regex::Regex::new(r#"name="csrf_token" value="([^"]+)""#).unwrap();
        for page in ["/signin", "/", "/privacy"] {
            let (_, body) = self.get(page).await;
            if let Some(c) = re.captures(&body) {
                return c[1].to_string();
            }
        }
        panic!("no page with a CSRF token")
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let token = self.csrf().await;
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        let req = self.http.post(format!("{}{path}", self.base)).form(&all);
        self.send(req).await
    }
}

#[rocket::async_test]
async fn two_instances_behind_nginx_serve_one_site() {
    let Ok(nginx) = std::env::var("LYCEUM_TEST_NGINX") else {
        service_missing("nginx", "LYCEUM_TEST_NGINX");
        return;
    };
    let Ok(s3_endpoint) = std::env::var("LYCEUM_TEST_S3_ENDPOINT") else {
        service_missing("An S3-compatible server", "LYCEUM_TEST_S3_ENDPOINT");
        return;
    };
    let Some((meili_url, meili_key)) = common::meilisearch() else { return };
    let s3 = lyceum::storage::s3::client(Some(&s3_endpoint), "us-east-1", "test", "test");
    let bucket = format!("blobs-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let prefix = format!("{}_", common::unique_index_name());
    let (b, e, u, k, p) = (bucket.clone(), s3_endpoint.clone(), meili_url.clone(), meili_key.clone(), prefix.clone());
    // The test's own handle on the database, to seed a course and a partner.
    let Some(app) = TestApp::postgres_with(move |c| {
        c.blob_s3_bucket = Some(b);
        c.blob_s3_endpoint = Some(e);
        c.blob_s3_prefix = "lyceum/".into();
        c.blob_s3_access_key_id = Some("test".into());
        c.blob_s3_secret_access_key = Some("test".into());
        c.search_url = Some(u);
        c.search_key = k;
        c.search_index_prefix = p;
    })
    .await
    else {
        return;
    };
    let course = seed_course(&app, "northbridge", "intro-python", "Introduction to Python", None).await;
    let partner = member_partner(&app, course.member_id, &[Category::ProfileName, Category::ProfileEmail]).await;
    let key = key_for(&app, &partner, &["enrollments", "progress", "results"]).await;

    let (port_a, port_b, port_lb) = (free_port(), free_port(), free_port());
    let base = format!("http://127.0.0.1:{port_lb}");
    let shared = app.config.data_dir.clone(); // the mail outbox both instances write to
    let instance = |port: u16| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lyceum"));
        cmd.arg("serve")
            .env("LYCEUM_DATABASE_URL", &app.config.database_url)
            .env("LYCEUM_DATA_DIR", &shared)
            .env("LYCEUM_DEMO", "false")
            .env("LYCEUM_SECRET_KEY", common::TEST_SECRET)
            .env("LYCEUM_BASE_URL", &base)
            .env("LYCEUM_ADDRESS", "127.0.0.1")
            .env("LYCEUM_PORT", port.to_string())
            .env("LYCEUM_WORKER", "true") // both run jobs: each must still run once
            .env("LYCEUM_TRUSTED_PROXIES", "127.0.0.1")
            .env("LYCEUM_RATE_LIMIT_PER_MINUTE", "1000")
            .env("LYCEUM_BLOB_S3_BUCKET", &bucket)
            .env("LYCEUM_BLOB_S3_ENDPOINT", &s3_endpoint)
            .env("LYCEUM_BLOB_S3_PREFIX", "lyceum/")
            .env("LYCEUM_BLOB_S3_ACCESS_KEY_ID", "test")
            .env("LYCEUM_BLOB_S3_SECRET_ACCESS_KEY", "test")
            .env("LYCEUM_SEARCH_URL", &meili_url)
            .env("LYCEUM_SEARCH_KEY", meili_key.clone().unwrap_or_default())
            .env("LYCEUM_SEARCH_INDEX_PREFIX", &prefix)
            .env("LYCEUM_LOG", "warn")
            .env_remove("LYCEUM_SMTP_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().expect("lyceum serve starts")
    };
    let mut running = Running(vec![instance(port_a), instance(port_b)]);

    let lb_dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(lb_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_body_buffer_size 1m;
    upstream lyceum {{
        server 127.0.0.1:{port_a} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:{port_b} max_fails=1 fail_timeout=30s;
    }}
    server {{
        listen 127.0.0.1:{port_lb};
        location / {{
            proxy_pass http://lyceum;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_buffering off;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"#,
        dir = lb_dir.path().display()
    );
    std::fs::write(lb_dir.path().join("nginx.conf"), conf).unwrap();
    let lb = Command::new(&nginx)
        .arg("-p")
        .arg(lb_dir.path())
        .arg("-c")
        .arg(lb_dir.path().join("nginx.conf"))
        .arg("-e")
        .arg(lb_dir.path().join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    running.0.push(lb);
    for (addr, what) in [
        (format!("127.0.0.1:{port_a}"), "the first instance"),
        (format!("127.0.0.1:{port_b}"), "the second instance"),
        (format!("127.0.0.1:{port_lb}"), "nginx"),
    ] {
        wait_for(&addr, what);
    }

    let mut ada = Browser::new(&base);
    // Both instances answer, in turn.
    for _ in 0..4 {
        let (status, _) = ada.get("/readyz").await;
        assert_eq!(status, 200);
    }
    assert_eq!(ada.upstreams.len(), 2, "round-robin reaches both instances: {:?}", ada.upstreams);

    // Sign up; the verification mail is sent once, by whichever worker claimed the job.
    let (status, _, body) = ada
        .post(
            "/signup",
            &[
                ("first_name", "Ada"),
                ("last_name", "Lovelace"),
                ("username", "ada"),
                ("email", "ada@example.org"),
                ("password", common::PASSWORD),
                ("date_of_birth", "1990-05-17"),
                ("accept_terms", "true"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let outbox = app.config.outbox_dir();
    let started = Instant::now();
    let link = loop {
        let mail: Vec<_> =
            lyceum::notify::read_outbox(&outbox, 1000).into_iter().filter(|m| m.to == "ada@example.org").collect();
        if let Some(link) = mail.iter().flat_map(|m| m.links.clone()).find(|l| l.contains("/verify-email/")) {
            break link;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no verification mail arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let path = link.strip_prefix(&base).expect("the link points at the load balancer").to_string();
    let (status, _) = ada.get(&path).await;
    assert_eq!(status, 303);
    let (status, _, body) = ada
        .post("/signin", &[("login", "ada@example.org"), ("password", common::PASSWORD), ("remember", "false")])
        .await;
    assert_eq!(status, 303, "{body}");
    let (_, home) = ada.get("/").await;
    assert!(home.contains("Signed in as <strong>ada</strong>"), "one session, both instances");
    let (_, again) = ada.get("/").await;
    assert!(again.contains("Signed in as <strong>ada</strong>"));

    // Search on the shared Meilisearch: the seeded course was indexed by a worker.
    let started = Instant::now();
    loop {
        let (_, page) = ada.get("/courses?q=pyhton").await;
        if page.contains("Introduction to Python") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the course never showed in search");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Enroll, sharing name and email with the member; study.
    let (_, about) = ada.get("/courses/intro-python").await;
    let text = regex::Regex::new(r#"name="text_id" value="(\d+)""#).unwrap().captures(&about).expect("a sharing text")
        [1]
    .to_string();
    let (status, location, _) = ada
        .post(
            "/courses/intro-python/enroll",
            &[("run", "2026"), ("track", "audit"), ("share", "yes"), ("text_id", &text)],
        )
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/learn/intro-python")));
    let (status, unit) = ada.get(&format!("/learn/intro-python/units/{}", course.units[0])).await;
    assert_eq!(status, 200);
    assert!(unit.contains("Hello <strong>learner</strong>"), "the unit renders");
    // The resource lives in the bucket; either instance serves it.
    for _ in 0..2 {
        let (status, file) = ada.get(&format!("/learn/intro-python/files/{}", course.resource)).await;
        assert_eq!((status, file.as_str()), (200, "Cheat sheet: x = 1"));
    }
    let (status, _, _) = ada.post(&format!("/learn/intro-python/units/{}/complete", course.units[0]), &[]).await;
    assert_eq!(status, 303);

    // Guessing another learner's password over both instances is still stopped.
    let mut eve = Browser::new(&base);
    let mut refused = Vec::new();
    for _ in 0..7 {
        let (status, _, _) =
            eve.post("/signin", &[("login", "ada@example.org"), ("password", "not-her-password-1")]).await;
        refused.push(status);
    }
    assert_eq!(eve.upstreams.len(), 2, "the guesses went to both instances");
    assert_eq!(&refused[..5], &[422; 5], "{refused:?}");
    assert!(
        refused[5..].iter().all(|s| *s == 429),
        "after five wrong passwords every instance makes them wait: {refused:?}"
    );

    // One instance dies mid-journey; the journey goes on through the other.
    let first = &mut running.0[0];
    first.kill().expect("kill the first instance");
    first.wait().unwrap();
    ada.upstreams.clear();
    let (status, forum_redirect, _) = {
        let req = ada.http.get(format!("{base}/learn/intro-python/forum"));
        ada.send(req).await
    };
    assert_eq!(status, 303);
    let forum = forum_redirect.expect("the course forum").replace(&base, "");
    let (status, location, body) =
        ada.post(&format!("{forum}/threads"), &[("title", "Loops in Python"), ("body", "How do loops end?")]).await;
    assert_eq!(status, 303, "{body}");
    let (status, thread) = ada.get(location.as_deref().unwrap()).await;
    assert_eq!(status, 200);
    assert!(thread.contains("How do loops end?"));
    let (status, _, _) = ada.post(&format!("/learn/intro-python/units/{}/complete", course.units[1]), &[]).await;
    assert_eq!(status, 303);
    // nginx names every upstream it tried: the dead one (refused) and then the survivor, which answered.
    let survivor = format!("127.0.0.1:{port_b}");
    assert!(ada.upstreams.iter().all(|u| u.ends_with(&survivor)), "only the survivor answered: {:?}", ada.upstreams);

    // The member's export through the load balancer: ada's record, with the consented fields.
    let res =
        ada.http.get(format!("{base}/api/v1/exports/enrollments?format=jsonl")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body = res.text().await.unwrap();
    let records = lines(&body);
    assert_eq!(records.len(), 1, "{body}");
    assert_eq!(records[0]["learner_email"], "ada@example.org");

    // Every job ran once: one verification mail, however many workers ran.
    let verification = lyceum::notify::read_outbox(&outbox, 1000)
        .into_iter()
        .filter(|m| m.to == "ada@example.org" && m.links.iter().any(|l| l.contains("/verify-email/")))
        .count();
    assert_eq!(verification, 1, "the verification mail went out once");
}

async fn home_of(client: &rocket::local::asynchronous::Client, path: &str) -> String {
    client.get(path.to_string()).dispatch().await.into_string().await.unwrap_or_default()
}

/// Polls `path` on `client` until `check` holds, for at most `SHARED_RECHECK` and a bit.
async fn within_recheck(
    client: &rocket::local::asynchronous::Client,
    path: &str,
    check: impl Fn(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + lyceum::privacy::SHARED_RECHECK + Duration::from_secs(3);
    loop {
        if check(&home_of(client, path).await) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn caches_follow_other_instances(app: TestApp) {
    let (other, _other_dir) = app.second_instance().await;
    let grace = crate::privacy::staff(&app).await;
    crate::sharing::as_user(&app, &grace).await;

    // A breach notice published through one instance reaches the other's home page.
    app.post_form(
        "/staff/notices",
        &[("title", "Passwords were reset"), ("body", "We reset every password."), ("audience", "all")],
    )
    .await;
    assert!(home_of(&app.client, "/").await.contains("Passwords were reset"), "the publishing instance shows it");
    assert!(
        within_recheck(&other, "/", |page| page.contains("Passwords were reset")).await,
        "the other instance shows the notice within {:?}",
        lyceum::privacy::SHARED_RECHECK
    );

    // Withdrawn through one instance, gone from the other.
    let id: i64 = crate::sharing::run(&app, |conn| {
        use diesel::prelude::*;
        lyceum::db::schema::breach_notices::table.select(lyceum::db::schema::breach_notices::id).first(conn)
    })
    .await;
    app.post_form(&format!("/staff/notices/{id}/withdraw"), &[]).await;
    assert!(!home_of(&app.client, "/").await.contains("Passwords were reset"));
    assert!(
        within_recheck(&other, "/", |page| !page.contains("Passwords were reset")).await,
        "a withdrawn notice leaves the other instance too"
    );

    // A material policy change's banner, too.
    app.post_form(
        "/staff/policies",
        &[
            ("kind", "privacy"),
            ("body", "We now keep logs for 30 days."),
            ("changes", "Logs are kept for 30 days"),
            ("material", "true"),
        ],
    )
    .await;
    assert!(
        within_recheck(&other, "/courses", |page| page.contains("Logs are kept for 30 days")).await,
        "the other instance shows the policy banner"
    );
}
crate::on_both!(caches_follow_a_change_made_through_another_instance, caches_follow_other_instances);

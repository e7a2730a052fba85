//! What an operator's tools ask of a running site: readiness, Prometheus
//! metrics, JSON logs, a graceful stop, and backups restored for real.

use std::io::{BufRead, Read, Write};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rocket::http::{Header, Status};

use crate::browser::free_port;
use crate::common::{self, TestApp};
use crate::on_both;
use crate::sharing::{as_user, run, verified};

async fn ready_and_measured(app: TestApp) {
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, Status::Ok, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["status"], "ready", "{body}");
    let names: Vec<&str> = ready["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["database", "migrations"], "no search check without a search server: {body}");

    // An instance of a newer build than its database is not ready, and says why.
    run(&app, |conn| {
        diesel::sql_query(
            "DELETE FROM __diesel_schema_migrations WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations)",
        )
        .execute(conn)
    })
    .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, Status::ServiceUnavailable, "{body}");
    assert!(body.contains("1 migration(s) of this build are not applied: run `lyceum migrate`"), "{body}");

    // Metrics: not for anyone on the internet.
    let res = app.client.get("/metrics").dispatch().await;
    assert_eq!(res.status(), Status::Forbidden, "no peer address: not known to be local");
    let res = app
        .client
        .get("/metrics")
        .remote("127.0.0.1:40000".parse().unwrap())
        .header(Header::new("X-Forwarded-For", "203.0.113.9"))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Forbidden, "forwarded by a local proxy: not local");
    let body = res.into_string().await.unwrap();
    assert!(body.contains("LYCEUM_METRICS_TOKEN"), "{body}");

    // From this machine: requests by route pattern and status, latency, the state.
    let l = verified(&app, "mira").await;
    as_user(&app, &l).await;
    app.get("/courses/no-such-course").await;
    let res = app.client.get("/metrics").remote("127.0.0.1:40000".parse().unwrap()).dispatch().await;
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type().map(|c| c.to_string()).as_deref(), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = res.into_string().await.unwrap();
    assert!(text.contains(r#"lyceum_http_requests_total{method="GET",route="/readyz",status="503"} 1"#), "{text}");
    assert!(text.contains(r#"lyceum_http_requests_total{method="GET",route="/readyz",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"route="/courses/<slug>",status="404"} 1"#), "{text}");
    assert!(!text.contains("no-such-course"), "paths are labelled by their route pattern: {text}");
    assert!(text.contains(r#"lyceum_http_request_duration_seconds_bucket{method="GET",route="/readyz",le="0.001"}"#));
    assert!(text.contains(r#"lyceum_state{state="queued",what="jobs"} "#), "{text}");
    assert!(text.contains(r#"lyceum_state{state="dead",what="jobs"} 0"#), "{text}");
    assert!(text.contains(r#"lyceum_state{state="delivered",what="partner_sends"} 0"#), "{text}");
    assert!(text.contains(r#"lyceum_state{state="open",what="db_pool"}"#), "{text}");
    assert!(text.contains(r#"lyceum_state{state="up",what="database"} 1"#), "{text}");
    assert!(!text.contains("mira"), "no personal data in the metrics");
}
on_both!(ops_1_readiness_and_metrics, ready_and_measured);

#[rocket::async_test]
async fn ops_1_metrics_behind_a_token() {
    let app = TestApp::sqlite_with(|c| c.metrics_token = Some("scrape-0123456789".into())).await;
    for auth in [None, Some("Bearer wrong"), Some("scrape-0123456789")] {
        let mut req = app.client.get("/metrics").remote("127.0.0.1:40000".parse().unwrap());
        if let Some(a) = auth {
            req = req.header(Header::new("Authorization", a));
        }
        let res = req.dispatch().await;
        assert_eq!(res.status(), Status::Unauthorized, "{auth:?}: a token is set, even local requests need it");
    }
    let res = app
        .client
        .get("/metrics")
        .remote("198.51.100.7:40000".parse().unwrap())
        .header(Header::new("Authorization", "Bearer scrape-0123456789"))
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    assert!(res.into_string().await.unwrap().contains("lyceum_http_requests_total"));
}

#[rocket::async_test]
async fn ops_1_readiness_asks_the_search_server() {
    let Some((url, key)) = common::meilisearch() else { return };
    let app = TestApp::sqlite_with(|c| {
        c.search_url = Some(url);
        c.search_key = key;
        c.search_index_prefix = format!("{}_", common::unique_index_name());
    })
    .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, Status::Ok, "{body}");
    assert!(body.contains(r#"{"name":"search","ok":true,"detail":"meilisearch"}"#), "{body}");

    // A search server that does not answer: not ready, with the reason.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = TestApp::sqlite_with(|c| {
        c.search_url = Some(format!("http://{closed}"));
        c.search_key = Some("k".repeat(16));
    })
    .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, Status::ServiceUnavailable, "{body}");
    assert!(body.contains(r#""name":"search","ok":false"#), "{body}");
}

fn lyceum(config: &lyceum::config::Config) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lyceum"));
    cmd.env("LYCEUM_DATABASE_URL", &config.database_url)
        .env("LYCEUM_DATA_DIR", &config.data_dir)
        .env("LYCEUM_DEMO", "false")
        .env("LYCEUM_SECRET_KEY", common::TEST_SECRET)
        .env("LYCEUM_LOG", "warn")
        .env_remove("LYCEUM_SEARCH_URL")
        .env_remove("LYCEUM_BLOB_S3_BUCKET");
    cmd
}

fn output(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().expect("the lyceum binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

#[rocket::async_test]
async fn ops_2_a_sqlite_site_backed_up_while_it_runs_is_restored_whole() {
    let app = TestApp::sqlite().await;
    let ada = verified(&app, "ada").await;
    as_user(&app, &ada).await;
    let mut png = Vec::new();
    image::DynamicImage::new_rgb8(300, 300)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let token = app.csrf().await;
    let (ct, body) = crate::learning::multipart(&[("csrf_token", &token)], Some(("image", "me.png", &png)));
    let res = app.client.post("/profile/avatar").header(ct).body(body).dispatch().await;
    assert_eq!(res.status(), Status::SeeOther);
    let (_, page) = app.get("/profile").await;
    let avatar = regex::Regex::new(r#"src="/media/([0-9a-f]{64})""#).unwrap().captures(&page).unwrap()[1].to_string();
    let original = app.client.get(format!("/media/{avatar}")).dispatch().await.into_bytes().await.unwrap();

    // Backed up while the site holds its database open.
    let out = tempfile::tempdir().unwrap();
    let backup = out.path().join("backup-1");
    let (ok, text) = output(lyceum(&app.config).arg("backup").arg(&backup));
    assert!(ok, "{text}");
    assert!(text.contains("1 uploaded file(s)"), "{text}");
    // Into a folder that already holds something: refused, nothing touched.
    let (ok, text) = output(lyceum(&app.config).arg("backup").arg(&backup));
    assert!(!ok && text.contains("is not empty: back up into a new folder"), "{text}");

    // A change after the backup is not in it.
    let bo = verified(&app, "bob").await;

    // Restored into a new place, the site comes back with its people and files.
    let restored = tempfile::tempdir().unwrap();
    let mut config =
        common::test_config(restored.path(), format!("sqlite://{}", restored.path().join("lyceum.db").display()));
    config.data_dir = restored.path().to_path_buf();
    let (ok, text) = output(lyceum(&config).arg("restore").arg(&backup));
    assert!(ok, "{text}");
    assert!(text.contains("1 uploaded file(s)"), "{text}");
    // Again over the restored database: refused without --replace.
    let (ok, text) = output(lyceum(&config).arg("restore").arg(&backup));
    assert!(!ok && text.contains("--replace"), "{text}");
    let (ok, text) = output(lyceum(&config).arg("restore").arg(&backup).arg("--replace"));
    assert!(ok, "{text}");
    let kept = std::fs::read_dir(restored.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("lyceum.db.before-restore-"))
        .count();
    assert!(kept >= 1, "the replaced database is kept beside the restored one");

    let db_url = config.database_url.clone();
    let data_dir = config.data_dir.clone();
    let back = TestApp::sqlite_with(|c| {
        c.database_url = db_url;
        c.data_dir = data_dir;
    })
    .await;
    let res = back.sign_in(&ada, false).await;
    assert_eq!(res.status(), Status::SeeOther);
    drop(res);
    assert_eq!(back.signed_in_as().await.as_deref(), Some("ada"));
    let served = back.client.get(format!("/media/{avatar}")).dispatch().await.into_bytes().await.unwrap();
    assert_eq!(served, original, "the uploaded file comes back byte for byte");
    back.sign_out().await;
    let res = back.sign_in(&bo, false).await;
    drop(res);
    assert_eq!(back.signed_in_as().await, None, "bo signed up after the backup");

    // Not a backup: a clear refusal.
    let (ok, text) = output(lyceum(&config).arg("restore").arg(out.path()).arg("--replace"));
    assert!(!ok && text.contains("is it a folder written by `lyceum backup`?"), "{text}");
    std::fs::write(out.path().join("lyceum.db"), b"not a database").unwrap();
    let (ok, text) = output(lyceum(&config).arg("restore").arg(out.path()).arg("--replace"));
    assert!(!ok && text.contains("not a readable SQLite database"), "{text}");
}

#[rocket::async_test]
async fn ops_2_postgres_backups_point_at_pg_dump() {
    let Some(app) = TestApp::postgres().await else { return };
    let out = tempfile::tempdir().unwrap();
    let (ok, text) = output(lyceum(&app.config).arg("backup").arg(out.path().join("b")));
    assert!(!ok, "{text}");
    assert!(text.contains("pg_dump"), "{text}");
}

#[test]
fn ops_3_sigterm_lets_a_request_in_flight_finish_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path(), format!("sqlite://{}", dir.path().join("lyceum.db").display()));
    let port = free_port();
    let mut server = lyceum(&config)
        .arg("serve")
        .env("LYCEUM_PORT", port.to_string())
        .env("LYCEUM_LOG", "info,rocket=warn,_=warn,hyper=warn")
        .env("LYCEUM_LOG_FORMAT", "json")
        .env("LYCEUM_SHUTDOWN_GRACE_SECS", "5")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("lyceum serve starts");
    let started = Instant::now();
    let addr = format!("127.0.0.1:{port}");
    let up = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: lyceum.test\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                break true;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !up {
        let _ = server.kill();
        panic!("the server did not come up");
    }

    // A sign-in whose body is still on its way when the stop signal comes.
    let body = "username=nobody&password=wrong-password-1";
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        slow,
        "POST /signin HTTP/1.1\r\nHost: lyceum.test\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::process::Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.try_wait().unwrap().is_none(), "the server waits for the request in flight");
    slow.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 "), "the request in flight is answered: {answer:?}");
    assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            panic!("the server did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "a graceful stop exits 0: {status:?}");

    // Every log line is one JSON object; the request lines carry their fields.
    let stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut requests = Vec::new();
    let mut lines = Vec::new();
    for line in stdout.lines().map_while(Result::ok) {
        lines.push(line.clone());
        if !line.starts_with('{') {
            continue; // the start-up banner
        }
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if entry["message"] == "request" {
            requests.push(entry);
        }
    }
    assert!(
        requests.iter().any(|r| r["method"] == "POST" && r["path"] == "/signin" && r["status"].is_u64()),
        "{lines:?}"
    );
}

#[test]
fn ops_3_a_worker_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::test_config(dir.path(), format!("sqlite://{}", dir.path().join("lyceum.db").display()));
    let (ok, text) = output(lyceum(&config).arg("migrate"));
    assert!(ok, "{text}");
    let mut worker = lyceum(&config)
        .arg("worker")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("lyceum worker starts");
    let mut first = String::new();
    std::io::BufReader::new(worker.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("Job worker running"), "{first}");
    let killed = std::process::Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = worker.kill();
            panic!("the worker did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a worker asked to stop exits 0: {status:?}");
}

//! `lyceum bench`: serves a fresh demo site on a loopback port and measures,
//! over real HTTP with keep-alive connections, the throughput and latency of
//! the catalog page, a course unit page and a 200-post forum thread against
//! the plain-text health route of the same server, and the floor under every
//! page rendered from the database (routes of its own doing one statement,
//! with and without the layout). Loopback only, bounded in time.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::config::Config;

pub struct Options {
    pub database_url: Option<String>,
    pub clients: usize,
    pub seconds: u64,
}

pub(crate) struct Conn {
    stream: BufReader<TcpStream>,
    port: u16,
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) set_cookies: Vec<String>,
    pub(crate) body: String,
}

/// Whether to decode the body: the measured loop only needs the status, and
/// decoding would spend the shared cores on the client instead of the server.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Body {
    Keep,
    Discard,
}

impl Conn {
    pub(crate) async fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream: BufReader::new(stream), port })
    }

    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        cookie: &str,
        form: Option<&str>,
    ) -> std::io::Result<Reply> {
        self.send_with(method, path, cookie, form, Body::Keep).await
    }

    pub(crate) async fn send_with(
        &mut self,
        method: &str,
        path: &str,
        cookie: &str,
        form: Option<&str>,
        keep: Body,
    ) -> std::io::Result<Reply> {
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: lyceum-bench\r\n", self.port);
        if !cookie.is_empty() {
            req.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        match form {
            Some(body) => req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            None => req.push_str("\r\n"),
        }
        self.stream.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let (mut length, mut chunked, mut set_cookies) = (0usize, false, Vec::new());
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            } else if lower.starts_with("set-cookie:") {
                set_cookies.push(l["set-cookie:".len()..].trim().to_string());
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length, 0);
            self.stream.read_exact(&mut body).await?;
        }
        let body = if keep == Body::Keep { String::from_utf8_lossy(&body).into_owned() } else { String::new() };
        Ok(Reply { status, set_cookies, body })
    }
}

/// Keeps the cookie jar of one signed-in browser.
pub(crate) fn merge_cookies(jar: &mut Vec<(String, String)>, set: &[String]) {
    for c in set {
        let pair = c.split(';').next().unwrap_or("");
        if let Some((k, v)) = pair.split_once('=') {
            jar.retain(|(name, _)| name != k);
            if !v.is_empty() {
                jar.push((k.to_string(), v.to_string()));
            }
        }
    }
}

pub(crate) fn cookie_header(jar: &[(String, String)]) -> String {
    jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

pub(crate) fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf_token\" value=\"")? + "name=\"csrf_token\" value=\"".len();
    Some(html[at..].split('"').next()?.to_string())
}

/// Signs an account in through the sign-in form; returns the browser's cookies.
pub(crate) async fn sign_in(port: u16, login: &str, password: &str) -> Result<String, String> {
    let err = |e: std::io::Error| e.to_string();
    let mut c = Conn::open(port).await.map_err(err)?;
    let mut jar = Vec::new();
    let page = c.send("GET", "/signin", "", None).await.map_err(err)?;
    merge_cookies(&mut jar, &page.set_cookies);
    let token = csrf_in(&page.body).ok_or("no CSRF token on /signin")?;
    let form = format!(
        "csrf_token={}&login={}&password={}",
        crate::web::page::url_encode(&token),
        crate::web::page::url_encode(login),
        crate::web::page::url_encode(password)
    );
    let signed = c.send("POST", "/signin", &cookie_header(&jar), Some(&form)).await.map_err(err)?;
    merge_cookies(&mut jar, &signed.set_cookies);
    if signed.status != 303 {
        return Err(format!("the sign-in of {login} answered {}", signed.status));
    }
    Ok(cookie_header(&jar))
}

/// Waits (at most 5 s) until the server takes connections on `port`.
pub(crate) async fn wait_for(port: u16) {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs the demo learner in, enrolls them, and returns their cookies and a unit path.
async fn learner_session(port: u16) -> Result<(String, String), String> {
    let err = |e: std::io::Error| e.to_string();
    let mut c = Conn::open(port).await.map_err(err)?;
    let mut jar = Vec::new();
    let page = c.send("GET", "/signin", "", None).await.map_err(err)?;
    merge_cookies(&mut jar, &page.set_cookies);
    let token = csrf_in(&page.body).ok_or("no CSRF token on /signin")?;
    let learner = crate::demo::accounts().remove(1);
    let form = format!(
        "csrf_token={}&login={}&password={}",
        crate::web::page::url_encode(&token),
        crate::web::page::url_encode(&learner.email),
        crate::web::page::url_encode(&learner.password)
    );
    let signed = c.send("POST", "/signin", &cookie_header(&jar), Some(&form)).await.map_err(err)?;
    merge_cookies(&mut jar, &signed.set_cookies);
    if signed.status != 303 {
        return Err(format!("sign-in answered {}", signed.status));
    }
    let about = c.send("GET", "/courses/intro-python", &cookie_header(&jar), None).await.map_err(err)?;
    merge_cookies(&mut jar, &about.set_cookies);
    let token = csrf_in(&about.body).ok_or("no CSRF token on the course page")?;
    // The demo member asks whether to share profile details; the bench learner declines.
    let text_id = about
        .body
        .split("name=\"text_id\" value=\"")
        .nth(1)
        .map(|r| r.chars().take_while(char::is_ascii_digit).collect::<String>());
    let form = format!(
        "csrf_token={}&run=2026&track=audit&share=no&text_id={}",
        crate::web::page::url_encode(&token),
        text_id.unwrap_or_default()
    );
    c.send("POST", "/courses/intro-python/enroll", &cookie_header(&jar), Some(&form)).await.map_err(err)?;
    let course = c.send("GET", "/learn/intro-python", &cookie_header(&jar), None).await.map_err(err)?;
    let at = course.body.find("/learn/intro-python/units/").ok_or("no unit link")?;
    let unit: String = course.body[at..].chars().take_while(|c| *c != '"').collect();
    let forum = c.send("GET", "/learn/intro-python/forum", &cookie_header(&jar), None).await.map_err(err)?;
    if forum.status != 303 {
        return Err(format!("the course forum answered {}", forum.status));
    }
    Ok((cookie_header(&jar), unit))
}

pub struct Measurement {
    pub name: String,
    pub requests: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
    /// Size of one response body, in bytes.
    pub bytes: usize,
    /// CPU time the whole machine spent per request (server, load
    /// generator, database, kernel), in milliseconds; `None` where
    /// `/proc/stat` cannot be read. Steadier than requests/s on a shared
    /// machine: time stolen by other guests is not counted.
    pub cpu_ms: Option<f64>,
}

/// Busy CPU time of the whole machine so far, in milliseconds: user, nice,
/// system, irq and softirq of the `cpu` line of `/proc/stat` (in USER_HZ,
/// 1/100 s on Linux); idle, iowait and time stolen by other guests are not
/// busy.
pub(crate) fn machine_busy_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let busy = [0, 1, 2, 5, 6].iter().map(|&i| f.get(i).copied()).sum::<Option<u64>>()?;
    Some(busy as f64 * 10.0)
}

pub(crate) async fn measure(
    name: &str,
    port: u16,
    path: &str,
    cookie: &str,
    clients: usize,
    seconds: u64,
) -> Measurement {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let busy_before = machine_busy_ms();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (path, cookie) = (path.to_string(), cookie.to_string());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let Ok(mut conn) = Conn::open(port).await else { return (latencies, 1) };
            while Instant::now() < deadline {
                let t = Instant::now();
                match conn.send_with("GET", &path, &cookie, None, Body::Discard).await {
                    Ok(r) if r.status == 200 => latencies.push(t.elapsed()),
                    _ => {
                        errors += 1;
                        match Conn::open(port).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_ms = match (busy_before, machine_busy_ms()) {
        (Some(before), Some(after)) if !all.is_empty() => Some((after - before) / all.len() as f64),
        _ => None,
    };
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Measurement {
        name: name.to_string(),
        requests: all.len(),
        per_second: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        bytes: 0,
        cpu_ms,
    }
}

/// The floor under every page rendered from the database: one trivial
/// statement through the pool (a hop to a blocking thread, a connection
/// checkout, a round trip to the database), as plain text.
#[rocket::get("/statement")]
async fn floor_statement(db: &rocket::State<crate::db::Db>) -> Result<&'static str, crate::web::error::AppError> {
    one_statement(db).await?;
    Ok("1")
}

/// The same statement, then the site's layout around an empty page, as
/// every HTML page has it. Signed in, the session lookup comes on top.
#[rocket::get("/page")]
async fn floor_page(db: &rocket::State<crate::db::Db>) -> Result<crate::web::page::Page, crate::web::error::AppError> {
    one_statement(db).await?;
    Ok(crate::web::page::Page::view("bench/floor", "Floor", Floor {}))
}

/// The floor page shows nothing of its own.
#[derive(serde::Serialize)]
struct Floor {}

async fn one_statement(db: &crate::db::Db) -> Result<i32, crate::db::DbError> {
    use diesel::{IntoSql, RunQueryDsl};
    db.run(|conn| {
        crate::on_backend!(conn, |c| diesel::select(1.into_sql::<diesel::sql_types::Integer>()).get_result(c))
            .map_err(crate::db::DbError::from)
    })
    .await
}

pub async fn run(base: &Config, opts: Options) -> Result<Vec<Measurement>, String> {
    let dir = std::env::temp_dir().join(format!("lyceum-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let config = Config {
        database_url: opts
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display())),
        data_dir: dir.clone(),
        address: "127.0.0.1".into(),
        port,
        base_url: None,
        demo: true,
        secret_key: None,
        rate_limit_per_minute: 100_000,
        log: "error".into(),
        ..base.clone()
    };
    let rocket = crate::build_rocket(config.clone())
        .map_err(|e| e.to_string())?
        .mount("/bench-floor", rocket::routes![floor_statement, floor_page]);
    let server = tokio::spawn(rocket.launch());
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cookie, unit) = learner_session(port).await?;
    let db = crate::open_database(&config).map_err(|e| e.to_string())?;
    let thread =
        tokio::task::spawn_blocking(move || crate::demo::seed_thread(&db, 200)).await.map_err(|e| e.to_string())??;
    let mut results = Vec::new();
    for (name, path, cookie) in [
        ("plain-text /healthz", "/healthz", ""),
        ("floor: one statement", "/bench-floor/statement", ""),
        ("floor: one statement, layout", "/bench-floor/page", ""),
        ("floor: signed in, one statement, layout", "/bench-floor/page", cookie.as_str()),
        ("catalog /courses", "/courses", ""),
        ("course unit page", unit.as_str(), cookie.as_str()),
        ("forum thread, 200 posts", thread.as_str(), cookie.as_str()),
    ] {
        // A short warm-up, then the measured run.
        measure(name, port, path, cookie, opts.clients, 1).await;
        let mut m = measure(name, port, path, cookie, opts.clients, opts.seconds).await;
        let mut c = Conn::open(port).await.map_err(|e| e.to_string())?;
        m.bytes = c.send("GET", path, cookie, None).await.map_err(|e| e.to_string())?.body.len();
        results.push(m);
    }
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(results)
}

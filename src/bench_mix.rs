//! `lyceum bench-mix`: simulated learners doing what learners do, with
//! think time, on a site seeded by `bench-scale`, ramped up in steps.
//!
//! Each simulated learner is a seeded learner with a session (made in the
//! database, its cookie sealed with the site's key, as a sign-in would), in
//! their own course's run. Between requests they think for an exponentially
//! distributed time (mean `--think-ms`, 10 s by default); then they browse
//! the catalog or search it, open their course or one of its units, read a
//! thread of its forum, or write: mark a unit complete, submit the quiz,
//! reply in the thread (about one request in five writes). A connection
//! idle for 4 s is closed and opened anew, as the server closes it at 5 s.
//!
//! Steps add learners (`--learners 250,500,1000`); each step runs
//! `--step-seconds`, then reports active learners, requests/s, p50/p99,
//! errors (anything but 200 or a redirect, or a failed connection), and the
//! CPU time of this process per request (server and simulated learners: they
//! share the process) and of the whole machine. The ramp stops after the
//! first step whose p99 passes `--p99-limit-ms` (100 ms) or that has an error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use rand::{Rng, SeedableRng};

use crate::bench::{self, Body};
use crate::bench_scale::{self, Seeded, err};
use crate::config::Config;

pub struct Options {
    pub database_url: Option<String>,
    pub scale: f64,
    /// Active learners of each step, ascending.
    pub learners: Vec<usize>,
    pub step_seconds: u64,
    /// Mean think time between a learner's requests.
    pub think_ms: u64,
    /// The ramp stops after the first step whose p99 passes this (ms).
    pub p99_limit_ms: f64,
    pub dir: Option<std::path::PathBuf>,
    /// A kept site's folder, as `bench_scale::Options::site`.
    pub site: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub learners: usize,
    pub requests: usize,
    pub writes: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
    /// What went wrong, a few examples.
    pub error_samples: Vec<String>,
    /// CPU of this process (server and simulated learners) per request, ms.
    pub process_cpu_ms: Option<f64>,
    /// Busy CPU of the whole machine per request, ms.
    pub machine_cpu_ms: Option<f64>,
    /// Resident memory of this process at the end of the step, MiB.
    pub rss_mib: f64,
}

pub struct Results {
    pub backend: &'static str,
    pub scale: f64,
    pub seeded: bench_scale::Counts,
    pub seed_seconds: f64,
    pub think_ms: u64,
    pub step_seconds: u64,
    pub steps: Vec<Step>,
}

/// One course's addresses.
#[derive(Clone)]
struct Course {
    slug: String,
    units: Vec<i64>,
    quiz: Option<(i64, i64)>,
    forum: String,
    thread: i64,
}

struct Learner {
    cookie: String,
    csrf: String,
    course: Arc<Course>,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    writes: usize,
    errors: usize,
    samples: Vec<String>,
}

struct Shared {
    port: u16,
    think_ms: f64,
    quiz_form: String,
    tally: Mutex<Tally>,
    stop: AtomicBool,
}

impl Shared {
    fn record(&self, took: Duration, write: bool, failure: Option<String>) {
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        match failure {
            None => {
                t.latencies.push(took);
                if write {
                    t.writes += 1;
                }
            }
            Some(why) => {
                t.errors += 1;
                if t.samples.len() < 5 {
                    t.samples.push(why);
                }
            }
        }
    }
}

fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 * 10.0)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The courses of the first learners' runs (learner u's first enrollment is in course 2 + u mod (courses − 1)).
fn courses(conn: &mut crate::db::Conn, s: &Seeded) -> Result<Vec<Arc<Course>>, String> {
    let n = s.counts.courses;
    let (first, last) = (s.first_course, s.first_course + n - 1);
    let units = bench_scale::pairs(
        conn,
        &format!(
            "SELECT s.course_id AS a, u.id AS b FROM units u JOIN sections s ON s.id = u.section_id \
             WHERE s.course_id BETWEEN {first} AND {last} ORDER BY u.id"
        ),
    )?;
    let quizzes = bench_scale::pairs(
        conn,
        &format!(
            "SELECT u.id AS a, b.id AS b FROM blocks b JOIN units u ON u.id = b.unit_id JOIN sections s ON s.id = u.section_id \
             WHERE b.kind = 'quiz' AND s.course_id BETWEEN {first} AND {last} ORDER BY b.id"
        ),
    )?;
    let threads = bench_scale::pairs(
        conn,
        &format!(
            "SELECT forum_id AS a, MIN(id) AS b FROM forum_threads WHERE forum_id BETWEEN {} AND {} AND id <> {} \
             GROUP BY forum_id",
            s.first_forum,
            s.first_forum + n - 1,
            s.big_thread
        ),
    )?;
    let slugs: Vec<(i64, String)> = {
        use crate::db::schema::forums;
        crate::on_backend!(conn, |c| forums::table
            .filter(forums::id.between(s.first_forum, s.first_forum + n - 1))
            .order(forums::id.asc())
            .select((forums::id, forums::slug))
            .load(c))
        .map_err(err)?
    };
    let mut out = Vec::new();
    for k in 0..n {
        let course_id = first + k;
        let forum_id = s.first_forum + k;
        let units: Vec<i64> = units.iter().filter(|(c, _)| *c == course_id).map(|(_, u)| *u).collect();
        let quiz = quizzes.iter().find(|(u, _)| units.contains(u)).copied();
        let forum = slugs.iter().find(|(id, _)| *id == forum_id).map(|(_, s)| s.clone()).ok_or("a course forum")?;
        let thread = threads.iter().find(|(f, _)| *f == forum_id).map(|(_, t)| *t).unwrap_or(s.big_thread);
        out.push(Arc::new(Course { slug: format!("scale-{}", k + 1), units, quiz, forum, thread }));
    }
    Ok(out)
}

/// Sessions for learners `1..=count`, made in the database; returns each
/// one's cookies (sealed with the site's key) and CSRF token.
fn sessions(
    conn: &mut crate::db::Conn,
    s: &Seeded,
    secret: &[u8],
    count: usize,
    courses: &[Arc<Course>],
) -> Result<Vec<Learner>, String> {
    use crate::db::schema::sessions;
    use rocket::http::private::cookie::{Cookie, CookieJar, Key};
    let key = Key::from(secret);
    let now = crate::db::now();
    let runs_but_one = s.counts.courses - 1;
    let mut out = Vec::with_capacity(count);
    let mut rows = Vec::new();
    for u in 1..=count as i64 {
        let token = crate::kernel::tokens::random_token(32);
        let csrf = crate::kernel::tokens::random_token(32);
        rows.push((
            sessions::id.eq(crate::accounts::tokens::digest(&token)),
            sessions::user_id.eq(s.first_user + u - 1),
            sessions::remember.eq(true),
            sessions::created_at.eq(now),
            sessions::last_seen_at.eq(now),
            sessions::expires_at.eq(now + chrono::Duration::days(30)),
        ));
        let mut jar = CookieJar::new();
        jar.private_mut(&key).add(Cookie::new(crate::accounts::sessions::COOKIE, token));
        jar.private_mut(&key).add(Cookie::new("lyceum_csrf", csrf.clone()));
        let cookie = jar.iter().map(|c| format!("{}={}", c.name(), c.value())).collect::<Vec<_>>().join("; ");
        let course = courses[(1 + u % runs_but_one) as usize].clone();
        out.push(Learner { cookie, csrf, course });
    }
    for chunk in rows.chunks(1000) {
        crate::on_backend!(conn, |c| diesel::insert_into(sessions::table).values(chunk).execute(c)).map_err(err)?;
    }
    Ok(out)
}

/// The quiz's answers as a form: the first choice of every question, as the
/// unit page shows it.
async fn quiz_form(port: u16, learner: &Learner) -> Result<String, String> {
    let Some((unit, block)) = learner.course.quiz else { return Ok(String::new()) };
    let mut c = bench::Conn::open(port).await.map_err(err)?;
    let path = format!("/learn/{}/units/{unit}", learner.course.slug);
    let page = c.send("GET", &path, &learner.cookie, None).await.map_err(err)?;
    if page.status != 200 {
        return Err(format!("{path} answered {} to a seeded learner", page.status));
    }
    let action = format!("/quiz/{block}\"");
    let Some(at) = page.body.find(&action) else { return Ok(String::new()) };
    let form = &page.body[at..page.body[at..].find("</form>").map_or(page.body.len(), |e| at + e)];
    let mut fields: Vec<(String, String)> = Vec::new();
    for tag in form.split('<').filter(|t| t.starts_with("input") || t.starts_with("textarea")) {
        let attr = |name: &str| {
            let marker = format!("{name}=\"");
            tag.find(&marker).map(|i| tag[i + marker.len()..].split('"').next().unwrap_or("").to_string())
        };
        let Some(name) = attr("name").filter(|n| n.starts_with('q')) else { continue };
        if fields.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let value = attr("value").filter(|v| !v.is_empty()).unwrap_or_else(|| "1".into());
        fields.push((name, value));
    }
    Ok(fields
        .iter()
        .map(|(n, v)| format!("{}={}", crate::web::page::url_encode(n), crate::web::page::url_encode(v)))
        .collect::<Vec<_>>()
        .join("&"))
}

async fn simulate(shared: Arc<Shared>, me: Learner, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let think = |rng: &mut rand::rngs::StdRng| {
        let u: f64 = rng.r#gen();
        Duration::from_secs_f64(-shared.think_ms / 1000.0 * (1.0 - u).ln())
    };
    // Arrivals spread over the first think time.
    tokio::time::sleep(Duration::from_secs_f64(rng.gen_range(0.0..shared.think_ms / 1000.0))).await;
    let mut conn: Option<(bench::Conn, Instant)> = None;
    let c = &me.course;
    let token = format!("csrf_token={}", crate::web::page::url_encode(&me.csrf));
    while !shared.stop.load(Ordering::Relaxed) {
        let unit = c.units[rng.gen_range(0..c.units.len())];
        let roll = rng.gen_range(0..100);
        let (method, path, form): (&str, String, Option<String>) = match roll {
            0..12 => ("GET", "/courses".into(), None),
            12..20 => ("GET", "/courses?q=python".into(), None),
            20..30 => ("GET", format!("/learn/{}", c.slug), None),
            30..65 => ("GET", format!("/learn/{}/units/{unit}", c.slug), None),
            65..80 => ("GET", format!("/forums/{}/threads/{}", c.forum, c.thread), None),
            80..90 => ("POST", format!("/learn/{}/units/{unit}/complete", c.slug), Some(token.clone())),
            90..95 => match c.quiz {
                Some((_, block)) if !shared.quiz_form.is_empty() => {
                    ("POST", format!("/learn/{}/quiz/{block}", c.slug), Some(format!("{token}&{}", shared.quiz_form)))
                }
                _ => ("POST", format!("/learn/{}/units/{unit}/complete", c.slug), Some(token.clone())),
            },
            _ => (
                "POST",
                format!("/forums/{}/threads/{}/replies", c.forum, c.thread),
                Some(format!(
                    "{token}&body={}",
                    crate::web::page::url_encode("Thanks, that helped me with the exercise in this unit.")
                )),
            ),
        };
        let started = Instant::now();
        if conn.as_ref().is_some_and(|(_, used)| used.elapsed() > Duration::from_secs(4)) {
            conn = None;
        }
        let open = match conn.take() {
            Some((c, _)) => Ok(c),
            None => bench::Conn::open(shared.port).await,
        };
        let outcome = match open {
            Ok(mut c) => match c.send_with(method, &path, &me.cookie, form.as_deref(), Body::Discard).await {
                Ok(r) if r.status == 200 || r.status == 303 => {
                    conn = Some((c, Instant::now()));
                    None
                }
                Ok(r) => {
                    conn = Some((c, Instant::now()));
                    Some(format!("{method} {path} answered {}", r.status))
                }
                Err(e) => Some(format!("{method} {path}: {e}")),
            },
            Err(e) => Some(format!("connecting: {e}")),
        };
        shared.record(started.elapsed(), method == "POST", outcome);
        tokio::time::sleep(think(&mut rng)).await;
    }
}

pub async fn run(base: &Config, opts: Options) -> Result<Results, String> {
    let mut wanted = opts.learners.clone();
    wanted.sort_unstable();
    wanted.dedup();
    let most = *wanted.last().ok_or("--learners names no step")?;
    let counts = bench_scale::Counts::at(opts.scale);
    if most as i64 > counts.learners {
        return Err(format!(
            "--scale {} seeds {} learners; the last step asks for {most}",
            opts.scale, counts.learners
        ));
    }
    if opts.think_ms == 0 || opts.step_seconds == 0 {
        return Err("--think-ms and --step-seconds must be above 0".into());
    }
    let site =
        bench_scale::serve(base, opts.database_url.clone(), opts.dir.clone(), opts.site.clone(), opts.scale).await?;
    let result = ramp(&site, &opts, &wanted).await;
    let (seeded, seed_seconds, backend) = (site.seeded.counts, site.seed_seconds, site.backend);
    site.stop();
    Ok(Results {
        backend,
        scale: opts.scale,
        seeded,
        seed_seconds,
        think_ms: opts.think_ms,
        step_seconds: opts.step_seconds,
        steps: result?,
    })
}

async fn ramp(site: &bench_scale::Site, opts: &Options, wanted: &[usize]) -> Result<Vec<Step>, String> {
    let most = wanted.last().copied().unwrap_or(0);
    let (seeded, secret, db) = (site.seeded.clone(), site.secret.clone(), site.db.clone());
    let mut learners = tokio::task::spawn_blocking(move || -> Result<Vec<Learner>, String> {
        let mut conn = db.get().map_err(err)?;
        let courses = courses(&mut conn, &seeded)?;
        sessions(&mut conn, &seeded, &secret, most, &courses)
    })
    .await
    .map_err(err)??;
    let quiz = match learners.first() {
        Some(l) => quiz_form(site.port, l).await?,
        None => String::new(),
    };
    let shared = Arc::new(Shared {
        port: site.port,
        think_ms: opts.think_ms as f64,
        quiz_form: quiz,
        tally: Mutex::new(Tally::default()),
        stop: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    let mut steps = Vec::new();
    let mut started_learners = 0;
    learners.reverse();
    for &active in wanted {
        while started_learners < active {
            let Some(me) = learners.pop() else { break };
            tasks.push(tokio::spawn(simulate(shared.clone(), me, started_learners as u64)));
            started_learners += 1;
        }
        eprintln!("{active} active learners for {} s…", opts.step_seconds);
        // Learners joining spread their first request over a think time: wait one out.
        tokio::time::sleep(Duration::from_millis(opts.think_ms)).await;
        *shared.tally.lock().unwrap_or_else(|e| e.into_inner()) = Tally::default();
        let (cpu0, busy0, t0) = (process_cpu_ms(), bench::machine_busy_ms(), Instant::now());
        tokio::time::sleep(Duration::from_secs(opts.step_seconds)).await;
        let tally = std::mem::take(&mut *shared.tally.lock().unwrap_or_else(|e| e.into_inner()));
        let elapsed = t0.elapsed().as_secs_f64();
        let (cpu1, busy1) = (process_cpu_ms(), bench::machine_busy_ms());
        let mut l = tally.latencies;
        l.sort_unstable();
        let n = l.len();
        let pct = |p: f64| {
            l.get(((n as f64 * p) as usize).min(n.saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if n > 0 => Some((b - a) / n as f64),
            _ => None,
        };
        let step = Step {
            learners: active,
            requests: n,
            writes: tally.writes,
            per_second: n as f64 / elapsed,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            errors: tally.errors,
            error_samples: tally.samples,
            process_cpu_ms: per(cpu0, cpu1),
            machine_cpu_ms: per(busy0, busy1),
            rss_mib: rss_mib(),
        };
        eprintln!(
            "  {:.1} requests/s, p50 {:.1} ms, p99 {:.1} ms, {} errors {:?}",
            step.per_second, step.p50_ms, step.p99_ms, step.errors, step.error_samples
        );
        let over = step.p99_ms > opts.p99_limit_ms || step.errors > 0;
        steps.push(step);
        if over {
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    Ok(steps)
}

/// The results as Markdown.
pub fn markdown(r: &Results) -> String {
    let mut out = format!(
        "{}, scale {} ({} learners, {} enrollments, {} posts; seeded in {:.0} s, not a result); think time {} ms \
         (exponential), {} s a step.\n\n\
         | active learners | requests/s | writes | p50 ms | p99 ms | errors | CPU ms/request (process) | CPU ms/request (machine) | RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        r.backend,
        r.scale,
        r.seeded.learners,
        r.seeded.enrollments,
        r.seeded.posts,
        r.seed_seconds,
        r.think_ms,
        r.step_seconds
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for s in &r.steps {
        out.push_str(&format!(
            "| {} | {:.1} | {} | {:.2} | {:.2} | {} | {} | {} | {:.0} |\n",
            s.learners,
            s.per_second,
            s.writes,
            s.p50_ms,
            s.p99_ms,
            s.errors,
            ms(s.process_cpu_ms),
            ms(s.machine_cpu_ms),
            s.rss_mib
        ));
    }
    for s in r.steps.iter().filter(|s| !s.error_samples.is_empty()) {
        out.push_str(&format!("\nErrors at {} learners, for example: {}\n", s.learners, s.error_samples.join("; ")));
    }
    out
}

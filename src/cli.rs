//! The command line: `serve` (default), `migrate`, `seed-demo`, `worker`,
//! `admin create-staff`. Parses, then calls into the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "lyceum",
    version,
    about = "Lyceum: a learning platform (courses, forums, certificates, consented sharing)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the site (the default). Applies migrations; in demo mode seeds demo accounts.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Seed the demo accounts into an empty database.
    SeedDemo,
    /// Run the background job worker (email, exports) without the web server.
    /// SIGTERM or Ctrl-C stops it; a job it was running is taken up again later.
    Worker,
    /// Copy a running SQLite site (database, uploaded files) into a new folder.
    Backup {
        /// A folder that does not exist yet or is empty.
        to: std::path::PathBuf,
    },
    /// Put a backup in place of the site's database and files (stop the site first),
    /// then rebuild the search index.
    Restore {
        /// A folder written by `lyceum backup`.
        from: std::path::PathBuf,
        /// Replace an existing database (it is kept beside the restored one).
        #[arg(long)]
        replace: bool,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        task: AdminTask,
    },
    /// Course packages (docs/COURSE_PACKAGE.md).
    Course {
        #[command(subcommand)]
        task: CourseTask,
    },
    /// Measure page throughput and latency against the plain-text route, over loopback HTTP.
    #[cfg(feature = "bench")]
    Bench {
        /// Database to measure on (default: a fresh SQLite file); e.g. a PostgreSQL URL of an empty database.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Measure the partner export (through the consent gate, without it, against PostgreSQL COPY)
    /// and the sponsor completion report, on an empty PostgreSQL database it seeds.
    #[cfg(feature = "bench")]
    BenchExport {
        /// An empty PostgreSQL database (`createdb lyceum_bench`); the seeded rows are kept.
        #[arg(long)]
        database_url: String,
        /// Enrollment rows of the member institution to export.
        #[arg(long, default_value_t = 1_000_000)]
        rows: i64,
        /// Sponsored, consented learners on the sponsor report.
        #[arg(long, default_value_t = 10_000)]
        learners: i64,
        /// Timed report requests (after one warm-up).
        #[arg(long, default_value_t = 10)]
        report_runs: usize,
    },
    /// A learner's Sharing page after a year of daily member exports to several partners: seeds the
    /// disclosure manifests directly (benches/README.md says what is not real), then times the page.
    #[cfg(feature = "bench")]
    BenchSharing {
        /// An empty PostgreSQL database (the rows are kept); default a fresh SQLite file, removed afterwards.
        #[arg(long)]
        database_url: Option<String>,
        /// Daily exports per partner.
        #[arg(long, default_value_t = 365)]
        days: i64,
        #[arg(long, default_value_t = 3)]
        partners: i64,
        /// Records of each export.
        #[arg(long, default_value_t = 1_000_000)]
        records: i64,
        /// Records of each learner in an export.
        #[arg(long, default_value_t = 5)]
        per_learner: i64,
        /// Timed requests of the page, one at a time.
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// Seed a site at MOOC size (`--scale 1` = a million learners, 5 million enrollments, 30 million unit
    /// completions, 5 million forum posts) with set-based SQL, then measure its pages over loopback HTTP.
    #[cfg(feature = "bench")]
    BenchScale {
        /// An empty PostgreSQL database (the rows are kept); default a fresh SQLite file, removed afterwards.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 0.1)]
        scale: f64,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Folder for the SQLite file and the site's files (a fresh subfolder, removed afterwards).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// A folder that keeps the seeded site: the first run seeds it, later runs serve it again without seeding.
        #[arg(long)]
        site: Option<std::path::PathBuf>,
    },
    /// Simulated, signed-in learners with think time (browse, study, complete units, submit quizzes, post)
    /// on a site seeded as by bench-scale, ramped up in steps until p99 passes 100 ms or an error appears.
    #[cfg(feature = "bench")]
    BenchMix {
        /// An empty PostgreSQL database (the rows are kept); default a fresh SQLite file, removed afterwards.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 0.01)]
        scale: f64,
        /// Active learners of each step.
        #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000,8000")]
        learners: Vec<usize>,
        #[arg(long, default_value_t = 60)]
        step_seconds: u64,
        /// Mean think time between a learner's requests (exponential).
        #[arg(long, default_value_t = 10_000)]
        think_ms: u64,
        /// The ramp stops after the first step whose p99 passes this many ms (or that has an error).
        #[arg(long, default_value_t = 100.0)]
        p99_limit_ms: f64,
        /// Folder for the SQLite file and the site's files (a fresh subfolder, removed afterwards).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// A folder that keeps the seeded site: the first run seeds it, later runs serve it again without seeding.
        #[arg(long)]
        site: Option<std::path::PathBuf>,
    },
    /// The course search index.
    Search {
        #[command(subcommand)]
        task: SearchTask,
    },
    /// The consent ledger.
    Consent {
        #[command(subcommand)]
        task: ConsentTask,
    },
    /// The master keys of sensitive fields.
    Keys {
        #[command(subcommand)]
        task: KeysTask,
    },
    /// The retention rules (periods from the configuration).
    Retention {
        #[command(subcommand)]
        task: RetentionTask,
    },
}

#[derive(Subcommand)]
enum KeysTask {
    /// Re-seal every sensitive field under the first key of LYCEUM_ENCRYPTION_KEYS.
    Rotate,
}

#[derive(Subcommand)]
enum RetentionTask {
    /// Apply every retention rule now (the worker also does, once a minute).
    Run {
        /// List what would be deleted and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum ConsentTask {
    /// Check the consent ledger and the disclosure manifests: both hash
    /// chains, each row's seal, the heads published in the anchor file, that
    /// the consent state the gate reads matches the ledger, and that every
    /// manifest's learner set is the one it was written with (less what
    /// erasure took out). Names the first thing broken.
    Verify {
        /// The published heads (default: `consent_anchor`, or
        /// `data_dir/consent-anchor.jsonl`).
        #[arg(long)]
        anchor: Option<std::path::PathBuf>,
        /// A payload a partner received: says which manifest (a push's body
        /// or object) or which pull export it matches, by its SHA-256.
        #[arg(long)]
        payload: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum CourseTask {
    /// Import a package (a folder or a .zip) as a new course of a member.
    Import {
        path: std::path::PathBuf,
        /// The member's short name.
        #[arg(long)]
        member: String,
        /// Publish the course after importing it.
        #[arg(long)]
        publish: bool,
    },
    /// Export a course as a package: a .zip when OUT ends in .zip, else a folder.
    Export {
        slug: String,
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum SearchTask {
    /// Rebuild the search index from the database.
    Reindex,
}

#[derive(Subcommand)]
enum AdminTask {
    /// Give an existing account the staff role, or create a staff account
    /// (a generated password is printed once).
    CreateStaff {
        #[arg(long)]
        email: String,
        /// Username for a new account (default: the part of the email before @).
        #[arg(long)]
        username: Option<String>,
        #[arg(long, default_value = "Staff")]
        first_name: String,
        #[arg(long, default_value = "Member")]
        last_name: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _log = init_tracing(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stdout through a writer thread: a request never waits on the
/// terminal or pipe behind stdout, nor on the other requests' lines (a
/// synchronous write holds stdout's lock and wakes the reader on every
/// line). Nothing is dropped when the queue is full; the line waits. The
/// guard flushes what is queued when it is dropped at exit.
fn init_tracing(config: &Config) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) =
        tracing_appender::non_blocking::NonBlockingBuilder::default().lossy(false).finish(std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(writer);
    let _ = if config.log_format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    guard
}

async fn run(command: Command, config: Config) -> Result<(), String> {
    match command {
        Command::Serve => {
            let rocket = crate::build_rocket(config.clone()).map_err(|e| e.to_string())?;
            println!("Lyceum is running at {}", config.base_url());
            if config.demo {
                println!("Demo mode is on (LYCEUM_DEMO=false turns it off). Demo accounts:");
                for a in crate::demo::accounts() {
                    println!("  {:8} {}  password: {}", a.role, a.email, a.password);
                }
                println!(
                    "Mail is written to {} and readable at {}/outbox",
                    config.outbox_dir().display(),
                    config.base_url()
                );
            }
            rocket.launch().await.map(|_| ()).map_err(|e| e.to_string())
        }
        Command::Migrate => {
            let db = crate::db::Db::connect(&config.database_url, 1).map_err(|e| e.to_string())?;
            let n = db.migrate().map_err(|e| e.to_string())?;
            println!("{n} migration(s) applied.");
            Ok(())
        }
        Command::SeedDemo => {
            let db = crate::db::Db::connect(&config.database_url, 1).map_err(|e| e.to_string())?;
            db.migrate().map_err(|e| e.to_string())?;
            let mut conn = db.get().map_err(|e| e.to_string())?;
            if crate::demo::seed_if_empty(&mut conn, crate::blob_store(&config).as_ref())? {
                println!("Demo accounts created:");
                for a in crate::demo::accounts() {
                    println!("  {:8} {}  password: {}", a.role, a.email, a.password);
                }
            } else {
                println!("The database already has accounts; nothing seeded.");
            }
            Ok(())
        }
        Command::Worker => {
            let db = crate::open_database(&config).map_err(|e| e.to_string())?;
            let worker = crate::worker(&config, db).map_err(|e| e.to_string())?;
            println!("Job worker running; Ctrl-C or SIGTERM stops it.");
            tokio::select! {
                _ = worker.run_forever() => Ok(()),
                _ = stop_signal() => Ok(()),
            }
        }
        Command::Course { task } => course_task(task, &config),
        #[cfg(feature = "bench")]
        Command::Bench { database_url, clients, seconds } => {
            let backend = if database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
                "PostgreSQL"
            } else {
                "SQLite"
            };
            let results = crate::bench::run(&config, crate::bench::Options { database_url, clients, seconds }).await?;
            let base = results.first().map(|m| m.per_second).unwrap_or(1.0);
            println!(
                "| page ({backend}, {clients} clients, {seconds} s) | requests/s | vs plain text | p50 ms | p99 ms | errors | KB | CPU ms/request |"
            );
            println!("|---|---|---|---|---|---|---|---|");
            for m in &results {
                println!(
                    "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.1} | {} |",
                    m.name,
                    m.per_second,
                    m.per_second / base,
                    m.p50_ms,
                    m.p99_ms,
                    m.errors,
                    m.bytes as f64 / 1024.0,
                    m.cpu_ms.map_or("-".to_string(), |ms| format!("{ms:.3}"))
                );
            }
            Ok(())
        }
        #[cfg(feature = "bench")]
        Command::BenchExport { database_url, rows, learners, report_runs } => {
            let opts = crate::bench_export::Options { database_url, rows, learners, report_runs };
            let results = crate::bench_export::run(&config, opts).await?;
            print!("{}", crate::bench_export::markdown(&results));
            Ok(())
        }
        #[cfg(feature = "bench")]
        Command::BenchSharing { database_url, days, partners, records, per_learner, requests } => {
            let opts = crate::bench_sharing::Options { database_url, days, partners, records, per_learner, requests };
            let results = crate::bench_sharing::run(&config, opts).await?;
            print!("{}", crate::bench_sharing::markdown(&results));
            Ok(())
        }
        #[cfg(feature = "bench")]
        Command::BenchScale { database_url, scale, clients, seconds, dir, site } => {
            let opts = crate::bench_scale::Options { database_url, scale, clients, seconds, dir, site };
            let results = crate::bench_scale::run(&config, opts).await?;
            print!("{}", crate::bench_scale::markdown(&results));
            Ok(())
        }
        #[cfg(feature = "bench")]
        Command::BenchMix { database_url, scale, learners, step_seconds, think_ms, p99_limit_ms, dir, site } => {
            let opts = crate::bench_mix::Options {
                database_url,
                scale,
                learners,
                step_seconds,
                think_ms,
                p99_limit_ms,
                dir,
                site,
            };
            let results = crate::bench_mix::run(&config, opts).await?;
            print!("{}", crate::bench_mix::markdown(&results));
            Ok(())
        }
        Command::Search { task: SearchTask::Reindex } => reindex(&config).await,
        Command::Backup { to } => {
            let copied = crate::ops::backup::backup(&config, &to)?;
            println!(
                "Backed up to {}: the database ({} bytes), {} uploaded file(s){}.",
                to.display(),
                copied.database_bytes,
                copied.files,
                if copied.secret { " and the generated secret key" } else { "" }
            );
            if config.secret_key.is_some() || config.encryption_keys.is_some() {
                println!(
                    "LYCEUM_SECRET_KEY and LYCEUM_ENCRYPTION_KEYS are not in the backup: keep them apart from it."
                );
            }
            Ok(())
        }
        Command::Restore { from, replace } => {
            let copied = crate::ops::backup::restore(&config, &from, replace)?;
            println!(
                "Restored from {}: the database ({} bytes), {} uploaded file(s){}.",
                from.display(),
                copied.database_bytes,
                copied.files,
                if copied.secret { " and the generated secret key" } else { "" }
            );
            println!("Rebuilding the search index from the restored database…");
            reindex(&config).await
        }
        Command::Keys { task: KeysTask::Rotate } => {
            let db = crate::db::Db::connect(&config.database_url, 1).map_err(|e| e.to_string())?;
            db.migrate().map_err(|e| e.to_string())?;
            let secret = config.resolve_secret().map_err(|e| e.to_string())?;
            let vault = crate::privacy::vault::Vault::new(config.encryption_keys.as_deref(), &secret)
                .map_err(|e| e.to_string())?;
            let mut conn = db.get().map_err(|e| e.to_string())?;
            let mut changed = crate::privacy::vault::rotate(&mut conn, &vault)?;
            let blobs = crate::blob_store(&config);
            changed += crate::certificates::identity::rewrap_images(&mut conn, blobs.as_ref(), &vault)
                .map_err(|e| e.to_string())?;
            println!("{changed} value(s) re-sealed under key {}.", vault.current_key());
            Ok(())
        }
        Command::Retention { task: RetentionTask::Run { dry_run } } => {
            let db = crate::db::Db::connect(&config.database_url, 1).map_err(|e| e.to_string())?;
            db.migrate().map_err(|e| e.to_string())?;
            let mut conn = db.get().map_err(|e| e.to_string())?;
            let periods = crate::privacy::retention::Periods::from_config(&config);
            let lines =
                crate::privacy::retention::run(&mut conn, &periods, &config.outbox_dir(), crate::db::now(), dry_run)
                    .map_err(|e| e.to_string())?;
            println!("{}", if dry_run { "Dry run: nothing was deleted." } else { "Retention applied." });
            for line in lines {
                println!("{line}");
            }
            if !dry_run {
                println!("Accounts handed to erasure are erased by the worker's next scheduled run.");
            }
            Ok(())
        }
        Command::Consent { task: ConsentTask::Verify { anchor, payload } } => {
            crate::install_keys(&config).map_err(|e| e.to_string())?;
            let db = crate::db::Db::connect(&config.database_url, 1).map_err(|e| e.to_string())?;
            let mut conn = db.get().map_err(|e| e.to_string())?;
            let path = anchor.unwrap_or_else(|| config.consent_anchor_path());
            let anchors = crate::consent::seal::read(&path).map_err(|e| e.to_string())?;
            let v = crate::consent::ledger::verify_against(&mut conn, &anchors).map_err(|e| e.to_string())?;
            if let Some((id, why)) = v.first_broken {
                return Err(format!("Consent ledger broken at row {id}: {why}."));
            }
            if let Some(why) = v.anchor_broken {
                return Err(format!("Consent ledger does not match its published head: {why}."));
            }
            if let Some(why) = v.state_broken {
                return Err(format!("Consent state does not match the ledger: {why}."));
            }
            println!("Consent ledger intact: {} row(s) verified, {} sealed.", v.rows, v.sealed);
            match v.newest_anchor {
                Some(id) => {
                    println!("{} published head(s) in {} match; the newest is row {id}.", v.anchors, path.display())
                }
                None => println!(
                    "No published head in {}: deleting the newest rows would not be noticed (the worker publishes \
                     one a minute).",
                    path.display()
                ),
            }
            println!("The consent state the gate reads matches the ledger.");
            let m = crate::consent::manifests::verify_against(&mut conn, &anchors).map_err(|e| e.to_string())?;
            if let Some((id, why)) = m.first_broken {
                return Err(format!("Disclosure manifests broken at manifest {id}: {why}."));
            }
            if let Some(why) = m.anchor_broken {
                return Err(format!("Disclosure manifests do not match their published head: {why}."));
            }
            println!(
                "Disclosure manifests intact: {} manifest(s) verified, naming {} record(s), {} taken out by erasure.",
                m.manifests, m.entries, m.erased
            );
            if let Some(path) = payload {
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                use crate::consent::manifests::PayloadMatch;
                match crate::consent::manifests::match_payload(&mut conn, &bytes).map_err(|e| e.to_string())? {
                    PayloadMatch::Manifests { export_id, ids, recipient, entries, state } => println!(
                        "{} matches send {export_id} to {recipient}: manifest(s) {} ({entries} record(s), {state}).",
                        path.display(),
                        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                    ),
                    PayloadMatch::PullExport { export_id, records } => println!(
                        "{} matches pull export {export_id} ({records} record(s)), whose pages are its manifests.",
                        path.display()
                    ),
                    PayloadMatch::Nothing => {
                        return Err(format!(
                            "{} matches no manifest and no export: it did not leave from here.",
                            path.display()
                        ));
                    }
                }
            }
            Ok(())
        }
        Command::Admin { task: AdminTask::CreateStaff { email, username, first_name, last_name } } => {
            let db = crate::db::Db::connect(&config.database_url, 1).map_err(|e| e.to_string())?;
            db.migrate().map_err(|e| e.to_string())?;
            let mut conn = db.get().map_err(|e| e.to_string())?;
            let outcome = crate::accounts::service::ensure_staff(
                &mut conn,
                &email,
                username.as_deref(),
                &first_name,
                &last_name,
            )?;
            match outcome {
                crate::accounts::service::StaffOutcome::Granted => println!("{email} now has the staff role."),
                crate::accounts::service::StaffOutcome::Created { username, password } => {
                    println!(
                        "Created staff account {username} <{email}>.\nPassword (shown once, change it after signing in): {password}"
                    )
                }
            }
            Ok(())
        }
    }
}

/// The command line acts as the operator: staff, not a particular person.
fn operator() -> crate::kernel::SessionUser {
    crate::kernel::SessionUser {
        id: 0,
        username: "operator".into(),
        first_name: "Operator".into(),
        last_name: String::new(),
        email: String::new(),
        email_verified: true,
        roles: vec![(crate::kernel::Role::Staff, String::new())],
    }
}

fn course_task(task: CourseTask, config: &Config) -> Result<(), String> {
    use crate::learning::{authoring, package, service, transfer};
    let db = crate::db::Db::connect(&config.database_url, 1).map_err(|e| e.to_string())?;
    db.migrate().map_err(|e| e.to_string())?;
    let mut conn = db.get().map_err(|e| e.to_string())?;
    let blobs = crate::blob_store(config);
    match task {
        CourseTask::Import { path, member, publish } => {
            let pkg = if path.is_dir() {
                package::read_dir(&path)
            } else {
                // At most one byte past the limit: `read_zip` names the limit.
                let mut bytes = Vec::new();
                std::fs::File::open(&path)
                    .and_then(|f| {
                        std::io::Read::read_to_end(
                            &mut std::io::Read::take(f, package::MAX_PACKAGE_BYTES + 1),
                            &mut bytes,
                        )
                    })
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                package::read_zip(&bytes)
            };
            let list = |problems: Vec<package::PackageProblem>| {
                let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
                format!("the package was not imported:\n{}", lines.join("\n"))
            };
            let pkg = pkg.map_err(list)?;
            let member = authoring::member_by_slug(&mut conn, &member).map_err(|_| format!("no member '{member}'"))?;
            let course = transfer::import(&mut conn, blobs.as_ref(), &operator(), &member, &pkg).map_err(list)?;
            if publish {
                authoring::set_published(&mut conn, &course, true, crate::db::now()).map_err(|e| e.to_string())?;
            }
            println!("Imported {} ({}){}.", course.title, course.slug, if publish { ", published" } else { "" });
            Ok(())
        }
        CourseTask::Export { slug, out } => {
            let course = service::course_by_slug(&mut conn, &slug).map_err(|_| format!("no course '{slug}'"))?;
            let pkg = transfer::export(&mut conn, blobs.as_ref(), &course)?;
            if out.extension().is_some_and(|e| e == "zip") {
                std::fs::write(&out, package::write_zip(&pkg).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            } else {
                package::write_dir(&pkg, &out).map_err(|e| e.to_string())?;
            }
            println!("Exported {} to {}.", course.slug, out.display());
            Ok(())
        }
    }
}

async fn reindex(config: &Config) -> Result<(), String> {
    let db = crate::db::Db::connect(&config.database_url, 2).map_err(|e| e.to_string())?;
    db.migrate().map_err(|e| e.to_string())?;
    let courses = crate::search_index(config).map_err(|e| e.to_string())?;
    let bar = progress_bar();
    let indexed = crate::learning::catalog::reindex(&db, &courses, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await
    .map_err(|e| e.to_string())?;
    bar.finish_with_message(format!("done: {indexed} published course(s) indexed with {}", courses.backend_name()));
    let threads = crate::forum_search_index(config).map_err(|e| e.to_string())?;
    let bar = progress_bar();
    let indexed = crate::forums::search::reindex(&db, &threads, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await
    .map_err(|e| e.to_string())?;
    bar.finish_with_message(format!("done: {indexed} forum thread(s) indexed with {}", threads.backend_name()));
    Ok(())
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM (what service managers and
/// container runtimes send to stop a process).
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

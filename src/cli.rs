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
    Worker,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        task: AdminTask,
    },
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
    init_tracing(&config);
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

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
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
            if crate::demo::seed_if_empty(&mut conn)? {
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
            println!("Job worker running; Ctrl-C stops it.");
            tokio::select! {
                _ = worker.run_forever() => Ok(()),
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
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

//! Lyceum: a learning platform. `build_rocket` is the one place where routes,
//! fairings and state are assembled; `cli` holds the commands.

pub mod accounts;
#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "bench")]
pub mod bench_export;
#[cfg(feature = "bench")]
pub mod bench_mix;
#[cfg(feature = "bench")]
pub mod bench_scale;
#[cfg(feature = "bench")]
pub mod bench_sharing;
pub mod certificates;
pub mod cli;
pub mod config;
pub mod consent;
pub mod db;
pub mod demo;
pub mod exams;
pub mod forums;
pub mod jobs;
pub mod kernel;
pub mod learning;
pub mod lifecycle;
pub mod media;
pub mod net;
pub mod notify;
pub mod ops;
pub mod orgs;
pub mod privacy;
pub mod private_files;
pub mod search;
pub mod staff;
pub mod storage;
pub mod web;

use std::sync::Arc;

use rocket::{Build, Rocket, catchers, routes};

use crate::config::{Config, ConfigError};
use crate::db::{Db, DbError};
use crate::notify::{Mailer, MailerError};
use crate::web::page::{SiteInfo, TemplateError, Templates};
use crate::web::ratelimit::RateLimits;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Templates(#[from] TemplateError),
    #[error(transparent)]
    Mailer(#[from] MailerError),
    #[error("demo seed: {0}")]
    Seed(String),
    #[error("search index: {0}")]
    Search(String),
    #[error("{0}")]
    GeoIp(String),
    #[error(transparent)]
    Vault(#[from] kernel::vault::VaultError),
    #[error(transparent)]
    CredentialKey(#[from] certificates::credential::KeyError),
    #[error("{0}")]
    Oidc(String),
    #[error("{0}")]
    Proxies(String),
    #[error("sealing stored secrets: {0}")]
    Seal(String),
    #[error("{0}")]
    Outbound(String),
}

/// Opens and migrates the database, seeding demo accounts and courses in demo mode.
pub fn open_database(config: &Config) -> Result<Db, StartError> {
    install_keys(config)?;
    let db = Db::connect_with_busy_timeout(&config.database_url, config.db_pool_size, config.db_busy_timeout_ms)?;
    db.migrate()?;
    {
        let mut conn = db.get()?;
        consent::texts::ensure_defaults(&mut conn, db::now()).map_err(DbError::Query)?;
        privacy::policies::ensure_defaults(&mut conn, db::now()).map_err(DbError::Query)?;
        consent::push::seal_plaintext_secrets(&mut conn).map_err(StartError::Seal)?;
    }
    if config.demo {
        let mut conn = db.get()?;
        demo::seed_if_empty(&mut conn, blob_store(config).as_ref()).map_err(StartError::Seed)?;
    }
    Ok(db)
}

/// The S3 bucket when one is configured (`Config::load` refuses one without
/// credentials), else files under `data_dir/blobs`.
pub fn blob_store(config: &Config) -> Arc<dyn storage::BlobStore> {
    match config.blob_s3() {
        Ok(Some(settings)) => Arc::new(storage::S3Blobs::new(&settings)),
        _ => Arc::new(storage::LocalBlobs::new(config.data_dir.join("blobs"))),
    }
}

pub fn search_index(config: &Config) -> Result<Arc<dyn search::SearchIndex>, StartError> {
    search::open(
        &config.data_dir,
        config.search_url.as_deref(),
        config.search_key.as_deref(),
        &config.search_index("courses"),
    )
    .map_err(|e| StartError::Search(e.to_string()))
}

/// The forum threads' index, beside the courses' (FRM-1).
pub fn forum_search_index(config: &Config) -> Result<Arc<dyn search::SearchIndex<search::ThreadDocument>>, StartError> {
    search::open_for(
        &config.data_dir,
        config.search_url.as_deref(),
        config.search_key.as_deref(),
        &config.search_index("forum_threads"),
    )
    .map_err(|e| StartError::Search(e.to_string()))
}

/// Installs the master keys of sensitive fields for this process (SEC-2).
pub fn install_keys(config: &Config) -> Result<(), StartError> {
    let secret = config.resolve_secret()?;
    consent::sharing::install_cursor_key(&secret);
    consent::seal::install_key(&secret);
    db::after_migrations(|conn| consent::manifests::convert_legacy(conn).map(|_| ()).map_err(|e| e.to_string()));
    kernel::vault::install(kernel::vault::Vault::new(config.encryption_keys.as_deref(), &secret)?);
    Ok(())
}

/// What the web process and the job worker share: built once from the
/// configuration, managed by Rocket and captured by the job handlers.
#[derive(Clone)]
pub struct Services {
    pub mailer: Arc<Mailer>,
    pub search: Arc<dyn search::SearchIndex>,
    pub forum_search: Arc<dyn search::SearchIndex<search::ThreadDocument>>,
    pub blobs: Arc<dyn storage::BlobStore>,
    /// Where pushes to partners (and sign-in providers) may connect.
    pub outbound: net::Outbound,
    /// Signs unsubscribe and tracking links in newsletters.
    pub signer: privacy::comms::LinkSigner,
    /// The site banner announcing a material policy change, refreshed each scheduled run.
    pub policy_banner: privacy::policies::Banner,
    /// Breach notices in force, shown on the home page.
    pub notices: privacy::notices::Notices,
}

/// Builds the shared services from the configuration.
pub fn services(config: &Config) -> Result<Services, StartError> {
    let secret = config.resolve_secret()?;
    Ok(Services {
        mailer: Arc::new(Mailer::new(config)?),
        search: search_index(config)?,
        forum_search: forum_search_index(config)?,
        blobs: blob_store(config),
        outbound: net::Outbound::new(&config.outbound_allow).map_err(|e| StartError::Outbound(e.to_string()))?,
        signer: privacy::comms::LinkSigner::new(&secret),
        policy_banner: privacy::policies::Banner::default(),
        notices: privacy::notices::Notices::default(),
    })
}

/// The job worker with its own services (`lyceum worker`).
pub fn worker(config: &Config, db: Db) -> Result<jobs::Worker, StartError> {
    install_keys(config)?;
    let services = services(config)?;
    Ok(worker_with(config, db, &services))
}

/// The job worker over `services`: every area's job kinds and the work
/// that is due by the clock, registered here so `jobs` knows no area.
pub fn worker_with(config: &Config, db: Db, services: &Services) -> jobs::Worker {
    let base_url = config.base_url();
    let mut registry = jobs::Registry::default();
    let mailer = services.mailer.clone();
    registry.handle(notify::SEND_EMAIL, move |job| notify::run_send_email(mailer.clone(), job));
    let (d, search) = (db.clone(), services.search.clone());
    registry.handle(learning::authoring::INDEX_COURSE, move |job| {
        learning::catalog::run_index_course(d.clone(), search.clone(), job)
    });
    let (d, forum_search) = (db.clone(), services.forum_search.clone());
    registry.handle(forums::search::INDEX_THREAD, move |job| {
        forums::search::run_index_thread(d.clone(), forum_search.clone(), job)
    });
    let (d, mailer, signer, url) = (db.clone(), services.mailer.clone(), services.signer.clone(), base_url.clone());
    registry.handle(privacy::comms::SEND_NEWSLETTER, move |job| {
        privacy::jobs::run_newsletter(d.clone(), mailer.clone(), signer.clone(), url.clone(), job)
    });
    let (d, blobs, url) = (db.clone(), services.blobs.clone(), base_url.clone());
    registry.handle(privacy::export::EXPORT, move |job| {
        privacy::jobs::run_export(d.clone(), blobs.clone(), url.clone(), job)
    });
    let (d, url, outbound) = (db.clone(), base_url, services.outbound.clone());
    registry
        .handle(consent::push::PUSH, move |job| consent::push::run_push(d.clone(), url.clone(), outbound.clone(), job));

    // By the clock, in this order: run-start reminders, partner pushes whose
    // slot has come, retention, erasures whose cool-off is over and data
    // copies whose link expired.
    let (banner, notices) = (services.policy_banner.clone(), services.notices.clone());
    registry.every_minute(move |conn, now| {
        banner.refresh(conn, now)?;
        notices.refresh(conn)?;
        Ok(0)
    });
    registry.every_minute(|conn, now| Ok(learning::service::send_start_reminders(conn, now)?));
    registry.every_minute(|conn, now| Ok(orgs::send_due_reminders(conn, now)?));
    registry.every_minute(|conn, now| Ok(consent::push::schedule_due(conn, now)?));
    let privacy_work = privacy::jobs::Scheduled {
        blobs: services.blobs.clone(),
        erasure_blank_posts: config.erasure_blank_posts,
        retention: privacy::retention::Periods::from_config(config),
        outbox: config.outbox_dir(),
    };
    registry.every_minute(move |conn, now| privacy_work.run(conn, now));
    // The consent ledger's head, sealed, where `lyceum consent verify` finds it.
    let anchor = config.consent_anchor_path();
    registry.every_minute(move |conn, now| match consent::seal::publish(conn, &anchor, now) {
        Ok(n) => Ok(n),
        Err(consent::seal::AnchorError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "the consent ledger's head could not be published");
            Ok(0)
        }
    });
    jobs::Worker {
        db,
        registry: Arc::new(registry),
        stale_after: chrono::Duration::seconds(config.job_stale_after_secs.max(1)),
    }
}

/// What accounts' pages take from privacy, built on top of accounts (see
/// `accounts::hooks`).
pub fn account_hooks(notices: privacy::notices::Notices) -> accounts::hooks::AccountHooks {
    accounts::hooks::AccountHooks {
        record_signup: privacy::policies::record_signup,
        policies_pending: privacy::policies::any_pending,
        home_notices: Arc::new(move || serde_json::to_value(notices.0.get()).unwrap_or_default()),
    }
}

/// What learning takes from certificates, exams and consent, built on top of
/// it (see `learning::hooks`); `buying`: a payment provider is configured.
pub fn learning_hooks(buying: bool) -> learning::hooks::LearningHooks {
    learning::hooks::LearningHooks {
        buying,
        certificate_card: certificates::views::card,
        certificate: certificates::badge,
        on_pass: certificates::on_passing_grade,
        proctoring_status: certificates::proctoring::latest_status,
        open_exams: exams::open_count,
        sharing_offer: consent::member::offer_json,
        sharing_answered: consent::member::answered_at_enrollment,
    }
}

/// What consent's pages take from certificates and privacy, built on top of
/// it (see `consent::hooks`).
pub fn consent_hooks(buying: bool) -> consent::hooks::ConsentHooks {
    consent::hooks::ConsentHooks {
        buying,
        priced_runs: certificates::payments::priced_runs,
        restriction_carried_out: privacy::restriction_carried_out,
    }
}

/// Every area's pages and APIs: each area lists its own routes.
fn area_routes() -> Vec<rocket::Route> {
    [
        accounts::routes(),
        exams::routes(),
        orgs::routes(),
        notify::routes(),
        learning::routes(),
        staff::routes(),
        consent::routes(),
        forums::routes(),
        privacy::routes(),
        certificates::routes(),
    ]
    .concat()
}

pub fn build_rocket(config: Config) -> Result<Rocket<Build>, StartError> {
    use base64::Engine;
    if config.demo && !config.demo_is_safe() {
        tracing::warn!(
            base_url = %config.base_url(),
            address = %config.address,
            "DEMO MODE IS ON FOR A SITE OTHERS CAN REACH: the home page shows the demo passwords and /outbox \
             shows every mailed link (password resets included) to anyone. Set LYCEUM_DEMO=false for production."
        );
    }
    let secret = config.resolve_secret()?;
    // Rocket takes exactly 64 bytes; any longer or shorter (≥ 32) secret is stretched.
    let secret = if secret.len() == 64 {
        secret
    } else {
        use sha2::Digest;
        sha2::Sha512::digest(&secret).to_vec()
    };
    let db = open_database(&config)?;
    let templates = Templates::load()?;
    let services = services(&config)?;
    let worker = worker_with(&config, db.clone(), &services);
    services.policy_banner.refresh(&mut *db.get()?, db::now()).map_err(DbError::Query)?;
    services.notices.refresh(&mut *db.get()?).map_err(DbError::Query)?;
    let policies_required = privacy::policies::Required::default();
    policies_required.refresh(&mut *db.get()?).map_err(DbError::Query)?;
    let geoip = match &config.geoip_db {
        Some(path) => Some(Arc::new(privacy::cookies::GeoIp::open(path).map_err(StartError::GeoIp)?)),
        None => None,
    };
    let site = SiteInfo {
        name: "Lyceum".into(),
        demo: config.demo,
        demo_accounts: if config.demo { demo::accounts() } else { Vec::new() },
        notice: None,
    };
    let figment = rocket::Config::figment()
        .merge(("address", config.address.clone()))
        .merge(("port", config.port))
        .merge(("secret_key", base64::engine::general_purpose::STANDARD.encode(&secret)))
        .merge(("log_level", rocket::config::LogLevel::Off))
        .merge(("cli_colors", false))
        // The client address comes from `web::guards::client_ip`, which
        // believes forwarding headers only from `trusted_proxies`.
        .merge(("ip_header", false))
        // SIGTERM and Ctrl-C stop taking connections, then let requests in
        // flight finish for this long.
        .merge(("shutdown.grace", config.shutdown_grace_secs))
        .merge(("shutdown.mercy", 2))
        .merge(("limits.form", 64 * 1024))
        // Each file field keeps to its own kind's limit (`web::upload`); a
        // whole multipart form to the largest of them plus text fields.
        .merge(("limits.file", media::MAX_UPLOAD_BYTES))
        .merge((
            "limits.data-form",
            learning::package::MAX_PACKAGE_BYTES.max(media::MAX_UPLOAD_BYTES as u64) + web::upload::FORM_ALLOWANCE,
        ));
    let issuer = certificates::credential::Issuer::new(config.credential_key.as_deref(), &secret, &config.base_url())?;
    let payments = certificates::payments::Payments::from_config(&config);
    let providers =
        accounts::oidc::Providers::from_config(&config.oidc_providers, &config.base_url(), &services.outbound)
            .map_err(StartError::Oidc)?;
    let form_targets: Vec<String> = payments.checkout_origins().into_iter().chain(providers.origins()).collect();
    let recheck = privacy::SharedRecheck {
        db: db.clone(),
        banner: services.policy_banner.clone(),
        notices: services.notices.clone(),
        required: policies_required.clone(),
    };
    let buying = payments.0.is_some();
    let mut rocket = rocket::custom(figment)
        // What lower areas take from the areas built on them.
        .manage(account_hooks(services.notices.clone()))
        .manage(learning_hooks(buying))
        .manage(consent_hooks(buying))
        .manage(services.outbound.clone())
        .manage(issuer)
        .manage(payments.clone())
        .manage(providers)
        .manage(certificates::proctoring::Proctoring::from_config(&config, &secret))
        .manage(accounts::sms::Sms::from_config(&config, db.clone(), &secret))
        .manage(RateLimits::shared(config.rate_limit_per_minute, db.clone(), &secret))
        .manage(web::guards::TrustedProxies::parse(&config.trusted_proxies).map_err(StartError::Proxies)?)
        .manage(db)
        .manage(templates)
        // What every page's layout shows beside the user and the flash.
        .manage(
            web::page::LayoutParts::default()
                .with("signin_providers", accounts::oidc::layout_providers)
                .with("policy_banner", privacy::policies::layout_banner)
                .with("cookie_banner", privacy::cookies::layout_banner),
        )
        .manage(site)
        .manage(services.blobs.clone())
        .manage(services.search.clone())
        .manage(services.forum_search.clone())
        .manage(forums::cache::ThreadPosts::default())
        .manage(web::metrics::Metrics::new())
        .manage(services.signer.clone())
        .manage(services.policy_banner.clone())
        .manage(services.notices.clone())
        .manage(policies_required)
        .attach(web::fairings::RequestContext)
        .attach(accounts::sessions::ResolveSession)
        .attach(privacy::policies::Reacceptance)
        .attach(web::fairings::SecurityHeaders::new(&form_targets, config.media_base_url().as_deref()))
        .manage(privacy::cookies::Places(geoip.clone()))
        .attach(privacy::cookies::Analytics { geoip })
        .attach(privacy::audit::Audit)
        .attach(recheck)
        .register("/", catchers![web::error::default_catcher])
        .register("/scim/v2", catchers![orgs::scim::catcher])
        .mount("/", routes![web::assets::asset, web::assets::healthz])
        .mount("/", ops::routes())
        .mount("/", area_routes());
    if config.worker {
        let background = worker.clone();
        rocket = rocket.attach(rocket::fairing::AdHoc::on_liftoff("job worker", move |_| {
            Box::pin(async move {
                tokio::spawn(background.run_forever());
            })
        }));
    }
    Ok(rocket.manage(worker).manage(config))
}

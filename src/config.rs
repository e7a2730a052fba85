//! The typed configuration: the one place that reads `Rocket.toml` and the
//! `LYCEUM_*` environment. Everything else receives a `Config`.

use std::path::PathBuf;

use rocket::figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// The secret every fresh checkout would share; refusing it outside demo mode
/// keeps production sessions from being forgeable.
pub const DEFAULT_SECRET_HINT: &str = "generate with: openssl rand -base64 48";

/// The smallest group a survey's answers are shown for (`survey_min_group`
/// may only raise it): with two, each of the pair could read the other's
/// answer off the totals.
pub const SMALLEST_SURVEY_GROUP: i64 = 3;

/// Stripe's API, the default `stripe_api_base`.
pub const STRIPE_API: &str = "https://api.stripe.com";

/// One configured OpenID Connect provider (`oidc_providers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// Short name in URLs, e.g. `google`.
    pub id: String,
    /// Shown on buttons: "Sign in with {name}".
    pub name: String,
    /// The issuer URL, e.g. `https://accounts.google.com`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `sqlite://path` or `postgres://…`.
    pub database_url: String,
    /// Root of local state: blobs, outbox, search index, generated secret.
    pub data_dir: PathBuf,
    pub address: String,
    pub port: u16,
    /// Public base URL used in emailed links; `http://address:port` when unset.
    pub base_url: Option<String>,
    /// Demo mode: seeds demo accounts, shows their credentials, opens the outbox page.
    /// When not set, on only for a loopback site ([`Config::demo_is_safe`]).
    pub demo: bool,
    /// Base64 secret (≥ 32 bytes) for private cookies. In demo mode a random one is
    /// generated and kept in `data_dir/secret.key` when none is given.
    pub secret_key: Option<String>,
    /// `smtp://host:port` (or `smtps://`); unset means `.eml` files in `data_dir/outbox`.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    /// Run the job worker inside the web process.
    pub worker: bool,
    /// Seconds a job may stay running before another worker takes it over
    /// (its worker is presumed crashed). Longer than the slowest job.
    pub job_stale_after_secs: i64,
    /// Meilisearch URL; unset means the embedded index in `data_dir/search`.
    /// S3 bucket for blobs; unset means files under `data_dir/blobs`.
    pub blob_s3_bucket: Option<String>,
    pub blob_s3_region: String,
    /// For S3-compatible services (path-style); AWS itself when unset.
    pub blob_s3_endpoint: Option<String>,
    pub blob_s3_prefix: String,
    /// Credentials; `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when unset.
    pub blob_s3_access_key_id: Option<String>,
    pub blob_s3_secret_access_key: Option<String>,
    pub search_url: Option<String>,
    pub search_key: Option<String>,
    /// Put before the Meilisearch index names (`courses`, `forum_threads`),
    /// so several sites (or test runs) can share one server.
    pub search_index_prefix: String,
    pub db_pool_size: u32,
    /// SQLite only: how long a statement waits for another connection's
    /// write lock before it fails ("database is locked").
    pub db_busy_timeout_ms: u32,
    /// Attempts per minute and client for sign-in, sign-up, reset and resend.
    pub rate_limit_per_minute: u32,
    /// Days a sign-in lasts without and with "Remember me".
    pub session_days: i64,
    pub remember_days: i64,
    /// Minutes a session without "Remember me" may go unused before it ends
    /// (ASVS 3.3.2); staff sessions, remembered or not, have their own, shorter limit.
    pub session_idle_minutes: i64,
    pub session_idle_minutes_staff: i64,
    pub log: String,
    /// `text` (the default) or `json`: one JSON object per log line, for a
    /// log collector.
    pub log_format: String,
    /// The bearer token `/metrics` asks for. Unset, metrics are served only
    /// to requests from this machine that no proxy forwarded.
    pub metrics_token: Option<String>,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish
    /// before their connections are closed, in seconds.
    pub shutdown_grace_secs: u32,
    /// Days between asking for erasure and the erasure, during which the learner can cancel.
    pub erasure_cool_off_days: i64,
    /// Blank an erased learner's forum posts (true) or keep their text under a placeholder (false).
    pub erasure_blank_posts: bool,
    /// Survey answers reach course staff in groups of this many, never one
    /// by one (CRS-6); at least [`SMALLEST_SURVEY_GROUP`].
    pub survey_min_group: i64,
    /// Survey comments are shown once this many answers are released
    /// (rounded up to whole groups).
    pub survey_comments_min: i64,
    /// Retention periods in days (RET-1); 0 keeps the category for ever.
    /// Accounts not signed in to for this long are erased (RET-2)…
    pub retention_inactive_account_days: i64,
    /// …after a warning email this many days before.
    pub retention_inactive_warning_days: i64,
    /// Ended enrollments with their progress, results and answers.
    pub retention_course_record_days: i64,
    /// Forum threads with no new post.
    pub retention_forum_post_days: i64,
    /// Finished jobs (and the mail in them), expired sign-ins, used links.
    pub retention_log_days: i64,
    /// A MaxMind GeoIP2/GeoLite2 Country or City database; when set, analytics
    /// (for visitors who allowed them) record the country of a page view.
    pub geoip_db: Option<PathBuf>,
    /// Where the consent ledger's sealed head is published once a minute
    /// (JSON Lines, one checkpoint a line), for `lyceum consent verify`:
    /// keep it, or a copy, where someone with the database alone cannot
    /// rewrite it. Unset: `data_dir/consent-anchor.jsonl`.
    pub consent_anchor: Option<PathBuf>,
    /// Master keys for sensitive fields (SEC-2): `id:base64key,…`, the first
    /// current. Unset: one key derived from the site secret.
    pub encryption_keys: Option<String>,
    /// Stripe (CRT-1): with both keys set, learners buy the verified track;
    /// without, it is reached through assistance, sponsorship or staff grant.
    pub stripe_secret_key: Option<String>,
    pub stripe_webhook_secret: Option<String>,
    /// Stripe's API address (a local double in tests).
    pub stripe_api_base: String,
    /// Days an approved identity check stays valid (CRT-2).
    pub identity_valid_days: i64,
    /// Certificates are kept this many days after issue, even after the
    /// learner's erasure (CRT-6); 0 keeps them for ever.
    pub retention_certificate_days: i64,
    /// The P-256 key that signs credentials (CRT-4): PKCS#8 PEM or base64 of
    /// the DER; a 32-byte base64 Ed25519 seed from before ES256 is still
    /// accepted. Unset: derived from the site secret.
    pub credential_key: Option<String>,
    /// A proctoring service for exams marked `proctored` (CRT-7): its REST
    /// base URL, API key and the secret its callbacks are signed with.
    pub proctoring_url: Option<String>,
    pub proctoring_key: Option<String>,
    pub proctoring_secret: Option<String>,
    /// Days proctoring session references are kept (CRT-7); 0 keeps them.
    pub retention_proctoring_days: i64,
    /// Days exam results are kept after they arrive (CRT-8); 0 keeps them.
    pub retention_exam_result_days: i64,
    /// Days usage statistics (page views) are kept; 0 keeps them.
    pub retention_page_view_days: i64,
    /// Days a recorded cookie choice is kept; 0 keeps them. The choice
    /// itself is asked again after a year.
    pub retention_cookie_choice_days: i64,
    /// Days newsletter events (sent, opened, clicked) are kept; 0 keeps them.
    pub retention_campaign_event_days: i64,
    /// Days a support request (with its answers) is kept after its last
    /// activity; 0 keeps them.
    pub retention_support_request_days: i64,
    /// Twilio for codes by text (ACC-5); unset, texts go to an outbox staff can read.
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    /// The sending number, E.164.
    pub twilio_from: Option<String>,
    pub twilio_api_base: String,
    /// Sign-in with OpenID Connect providers (ACC-4): Google, Microsoft or any
    /// other issuer, each `{ id, name, issuer, client_id, client_secret }`.
    pub oidc_providers: Vec<ProviderConfig>,
    /// A separate origin for files people uploaded (`https://usercontent.example.org`):
    /// course files are fetched there under short-lived signed links, so no
    /// upload is ever served from the site's own origin. Unset, they are
    /// served from the site with a sandbox policy.
    pub media_base_url: Option<String>,
    /// Proxies whose `X-Forwarded-For` / `X-Real-IP` are believed (CIDRs or
    /// addresses). Empty: the client address is the connection's peer.
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
    /// Loopback, private and other special-purpose addresses that outbound
    /// requests to configured URLs may reach after all (`crate::net`):
    /// CIDR blocks, addresses or host names; in the environment a
    /// comma-separated list. Empty: none.
    #[serde(deserialize_with = "list_or_commas")]
    pub outbound_allow: Vec<String>,
}

/// Settings that are text even when they look like something else: the
/// environment's values are otherwise read as TOML-like values, so
/// `LYCEUM_TWILIO_FROM=+15005550006` would be the integer 15005550006 and
/// stop the server, and a token `0123` would lose its zero.
const TEXT_SETTINGS: &[&str] = &["twilio_from", "twilio_account_sid", "twilio_auth_token", "metrics_token"];

/// The `LYCEUM_` variables of [`TEXT_SETTINGS`], as written. A value quoted
/// as a string (`"+15005550006"`, the old workaround) is unquoted as before.
fn text_settings_from_env() -> std::collections::BTreeMap<String, String> {
    Env::prefixed("LYCEUM_")
        .only(TEXT_SETTINGS)
        .iter()
        .map(|(key, raw)| {
            let text = match raw.parse::<rocket::figment::value::Value>() {
                Ok(rocket::figment::value::Value::String(_, s)) if raw.trim_start().starts_with('"') => s,
                _ => raw,
            };
            (key.as_str().to_ascii_lowercase(), text)
        })
        .collect()
}

/// A list given as a TOML array or as one comma-separated string (an
/// environment variable).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let list = match List::deserialize(d)? {
        List::One(s) => s.split(',').map(str::to_string).collect(),
        List::Many(v) => v,
    };
    Ok(list.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/lyceum.db".into(),
            data_dir: PathBuf::from("data"),
            address: "127.0.0.1".into(),
            port: 8000,
            base_url: None,
            demo: true,
            secret_key: None,
            smtp_url: None,
            mail_from: "Lyceum <no-reply@lyceum.local>".into(),
            worker: true,
            job_stale_after_secs: 600,
            blob_s3_bucket: None,
            blob_s3_region: "us-east-1".into(),
            blob_s3_endpoint: None,
            blob_s3_prefix: "blobs/".into(),
            blob_s3_access_key_id: None,
            blob_s3_secret_access_key: None,
            search_url: None,
            search_key: None,
            search_index_prefix: String::new(),
            db_pool_size: 8,
            db_busy_timeout_ms: 10_000,
            rate_limit_per_minute: 10,
            session_days: 2,
            remember_days: 14,
            session_idle_minutes: 120,
            session_idle_minutes_staff: 30,
            log: "info,rocket=warn,_=warn,hyper=warn".into(),
            log_format: "text".into(),
            metrics_token: None,
            shutdown_grace_secs: 10,
            erasure_cool_off_days: 7,
            erasure_blank_posts: false,
            survey_min_group: 5,
            survey_comments_min: 10,
            retention_inactive_account_days: 1095,
            retention_inactive_warning_days: 30,
            retention_course_record_days: 0,
            retention_forum_post_days: 0,
            retention_log_days: 90,
            geoip_db: None,
            consent_anchor: None,
            encryption_keys: None,
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: STRIPE_API.into(),
            identity_valid_days: 365,
            retention_certificate_days: 7 * 365 + 2,
            credential_key: None,
            proctoring_url: None,
            proctoring_key: None,
            proctoring_secret: None,
            retention_proctoring_days: 365,
            retention_exam_result_days: 365,
            retention_page_view_days: 365,
            retention_cookie_choice_days: 730,
            retention_campaign_event_days: 365,
            retention_support_request_days: 730,
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_from: None,
            twilio_api_base: "https://api.twilio.com".into(),
            oidc_providers: Vec::new(),
            media_base_url: None,
            trusted_proxies: Vec::new(),
            outbound_allow: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<rocket::figment::Error>),
    #[error(
        "LYCEUM_SECRET_KEY is not set. Outside demo mode Lyceum refuses to start with a default secret; {DEFAULT_SECRET_HINT}"
    )]
    MissingSecret,
    #[error("LYCEUM_SECRET_KEY must be base64 of at least 32 bytes")]
    WeakSecret,
    #[error(
        "LYCEUM_BLOB_S3_BUCKET is set but no credentials are: set LYCEUM_BLOB_S3_ACCESS_KEY_ID and LYCEUM_BLOB_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    BlobCredentials,
    #[error(
        "LYCEUM_SURVEY_MIN_GROUP must be at least {}: survey answers are released to staff in groups of that many",
        SMALLEST_SURVEY_GROUP
    )]
    SurveyGroup,
    #[error(
        "LYCEUM_SEARCH_INDEX_PREFIX may hold only letters, digits, '-' and '_' (at most 100): Meilisearch index names allow no more"
    )]
    SearchIndexPrefix,
    #[error("cannot keep the generated secret in {0}: {1}")]
    SecretFile(PathBuf, std::io::Error),
}

impl Config {
    /// Defaults, then `Rocket.toml` (`[default.lyceum]` style keys are not used:
    /// top-level keys of the selected profile), then `LYCEUM_*` variables.
    pub fn figment() -> Figment {
        Figment::from(Serialized::defaults(Config::default())).merge(Self::settings())
    }

    /// What the operator set, without the defaults: `demo` is resolved from
    /// whether it appears here.
    fn settings() -> Figment {
        Figment::new()
            .merge(Toml::file("Rocket.toml").nested())
            .merge(Env::prefixed("LYCEUM_").ignore(TEXT_SETTINGS))
            .merge(Serialized::defaults(text_settings_from_env()))
            .merge(Env::raw().only(&["DATABASE_URL"]))
    }

    pub fn load() -> Result<Config, ConfigError> {
        Self::from_figment(Self::settings())
    }

    /// The configuration from the operator's `settings` over the defaults.
    /// Demo mode, when not set, is on only where [`Config::demo_is_safe`].
    pub fn from_figment(settings: Figment) -> Result<Config, ConfigError> {
        let demo_set = settings.find_value("demo").is_ok();
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(settings)
            .extract()
            .map_err(|e| ConfigError::Figment(Box::new(e)))?;
        if !demo_set {
            config.demo = config.demo_is_safe();
        }
        config.blob_s3()?;
        if config.survey_min_group < SMALLEST_SURVEY_GROUP {
            return Err(ConfigError::SurveyGroup);
        }
        let prefix = config.search_index_prefix.trim();
        if prefix.len() > 100 || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::SearchIndexPrefix);
        }
        Ok(config)
    }

    /// Demo mode publishes passwords and every mailed link; that is safe only
    /// where nobody but this machine can reach the site: a loopback address,
    /// and a plain-HTTP loopback base URL when one is set.
    pub fn demo_is_safe(&self) -> bool {
        let loopback_host = |host: url::Host<&str>| match host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        let address_is_loopback = match self.address.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.address.eq_ignore_ascii_case("localhost"),
        };
        let base_is_loopback = match &self.base_url {
            None => true,
            Some(base) => url::Url::parse(base.trim())
                .ok()
                .is_some_and(|url| url.scheme() == "http" && url.host().is_some_and(loopback_host)),
        };
        address_is_loopback && base_is_loopback
    }

    /// The S3 blob settings when a bucket is configured.
    pub fn blob_s3(&self) -> Result<Option<crate::storage::S3Settings>, ConfigError> {
        let Some(bucket) = self.blob_s3_bucket.clone().filter(|b| !b.trim().is_empty()) else { return Ok(None) };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let key = self.blob_s3_access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = self.blob_s3_secret_access_key.clone().or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let (Some(access_key_id), Some(secret_access_key)) = (key, secret) else {
            return Err(ConfigError::BlobCredentials);
        };
        Ok(Some(crate::storage::S3Settings {
            endpoint: self.blob_s3_endpoint.clone().filter(|e| !e.trim().is_empty()),
            region: self.blob_s3_region.clone(),
            bucket,
            prefix: self.blob_s3_prefix.clone(),
            access_key_id,
            secret_access_key,
        }))
    }

    /// The cookie secret as bytes, generating and persisting one in demo mode.
    pub fn resolve_secret(&self) -> Result<Vec<u8>, ConfigError> {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        if let Some(given) = &self.secret_key {
            let bytes = engine.decode(given.trim()).map_err(|_| ConfigError::WeakSecret)?;
            if bytes.len() < 32 {
                return Err(ConfigError::WeakSecret);
            }
            return Ok(bytes);
        }
        if !self.demo {
            return Err(ConfigError::MissingSecret);
        }
        let path = self.data_dir.join("secret.key");
        if let Ok(existing) = std::fs::read_to_string(&path)
            && let Ok(bytes) = engine.decode(existing.trim())
            && bytes.len() >= 64
        {
            return Ok(bytes);
        }
        let mut bytes = vec![0u8; 64];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        crate::private_files::create_dir_all(&self.data_dir).map_err(|e| ConfigError::SecretFile(path.clone(), e))?;
        crate::private_files::write(&path, engine.encode(&bytes).as_bytes())
            .map_err(|e| ConfigError::SecretFile(path.clone(), e))?;
        Ok(bytes)
    }

    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}:{}", self.address, self.port),
        }
    }

    /// The user-content origin, without a trailing slash, when one is set.
    pub fn media_base_url(&self) -> Option<String> {
        self.media_base_url.as_deref().map(|u| u.trim().trim_end_matches('/').to_string()).filter(|u| !u.is_empty())
    }

    /// Where the consent ledger's head is published.
    pub fn consent_anchor_path(&self) -> PathBuf {
        self.consent_anchor.clone().unwrap_or_else(|| self.data_dir.join("consent-anchor.jsonl"))
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// The Meilisearch index name for `name`, after `search_index_prefix`.
    pub fn search_index(&self, name: &str) -> String {
        format!("{}{name}", self.search_index_prefix.trim())
    }

    /// Cookies get `Secure` and responses HSTS when the site is served over TLS.
    pub fn is_tls(&self) -> bool {
        self.base_url().starts_with("https://")
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:") || !self.database_url.contains("://")
    }
}

/// The configuration read from the environment. The jail sets variables and
/// changes directory; no other unit test reads either.
#[cfg(test)]
mod environment_tests {
    use rocket::figment::Jail;

    #[test]
    #[allow(clippy::result_large_err)] // the jail's closure returns figment's own error type
    fn a_phone_number_in_the_environment_is_text() {
        Jail::expect_with(|jail| {
            // As an operator writes it: the leading '+' would make it an integer.
            jail.set_env("LYCEUM_TWILIO_FROM", "+15005550006");
            let config = super::Config::load().map_err(|e| e.to_string())?;
            assert_eq!(config.twilio_from.as_deref(), Some("+15005550006"));
            jail.set_env("LYCEUM_TWILIO_AUTH_TOKEN", "0123456789");
            let config = super::Config::load().map_err(|e| e.to_string())?;
            assert_eq!(config.twilio_auth_token.as_deref(), Some("0123456789"), "leading zeros kept");

            // The former workaround, quoted twice, still reads the same.
            jail.set_env("LYCEUM_TWILIO_FROM", "\"+15005550006\"");
            let config = super::Config::load().map_err(|e| e.to_string())?;
            assert_eq!(config.twilio_from.as_deref(), Some("+15005550006"));

            // Other settings keep their types from the environment.
            jail.set_env("LYCEUM_SURVEY_MIN_GROUP", "12");
            let config = super::Config::load().map_err(|e| e.to_string())?;
            assert_eq!(config.survey_min_group, 12);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // the jail's closure returns figment's own error type
    fn the_search_index_prefix_goes_before_each_index_name() {
        Jail::expect_with(|jail| {
            // Meilisearch index names: the prefix goes before each, and must fit their alphabet.
            jail.set_env("LYCEUM_SEARCH_INDEX_PREFIX", "site-2_");
            let config = super::Config::load().map_err(|e| e.to_string())?;
            assert_eq!(config.search_index("courses"), "site-2_courses");
            jail.set_env("LYCEUM_SEARCH_INDEX_PREFIX", "my site/");
            let error = super::Config::load().expect_err("a prefix Meilisearch refuses").to_string();
            assert!(error.contains("LYCEUM_SEARCH_INDEX_PREFIX"), "{error}");
            Ok(())
        });
    }
}

//! Email: every message is a job (`send_email`) carrying the recipient, a
//! subject and a template context; the worker renders a plain-text and an HTML
//! part from `templates/email/` and hands them to the transport: SMTP when
//! configured, otherwise `.eml` files in `data/outbox` that staff (and anyone,
//! in demo mode) can read in the site. Must not decide *whether* to write to
//! someone: callers do that.

pub mod lifecycle;
pub mod routes;
pub mod views;

use std::path::PathBuf;

use diesel::QueryResult;
use lettre::message::{Mailbox, MultiPart, header::MessageId};
use lettre::{Message, SmtpTransport, Transport};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Config;
use crate::db::Conn;
use crate::web::Templates;

pub const SEND_EMAIL: &str = "send_email";

/// Queues an email in the caller's transaction.
pub fn enqueue_email(conn: &mut Conn, to: &str, subject: &str, template: &str, ctx: Value) -> QueryResult<i64> {
    crate::jobs::enqueue(conn, SEND_EMAIL, &json!({ "to": to, "subject": subject, "template": template, "ctx": ctx }))
}

/// Runs a `send_email` job: renders and hands the message to the transport.
pub async fn run_send_email(mailer: std::sync::Arc<Mailer>, job: crate::jobs::Run) -> Result<(), String> {
    let (job_id, payload) = (job.id, job.payload);
    tokio::task::spawn_blocking(move || mailer.deliver(job_id, &payload)).await.map_err(|e| e.to_string())?
}

enum Transport_ {
    Outbox(PathBuf),
    Smtp(Box<SmtpTransport>),
}

pub struct Mailer {
    templates: Templates,
    transport: Transport_,
    from: Mailbox,
    base_url: String,
    site_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("mail_from '{0}' is not a valid mailbox")]
    From(String),
    #[error("smtp_url: {0}")]
    Smtp(String),
    #[error("templates: {0}")]
    Templates(String),
}

impl Mailer {
    pub fn new(config: &Config) -> Result<Mailer, MailerError> {
        let templates = Templates::load().map_err(|e| MailerError::Templates(e.to_string()))?;
        let from = config.mail_from.parse().map_err(|_| MailerError::From(config.mail_from.clone()))?;
        let transport = match &config.smtp_url {
            Some(url) => Transport_::Smtp(Box::new(
                SmtpTransport::from_url(url).map_err(|e| MailerError::Smtp(e.to_string()))?.build(),
            )),
            None => Transport_::Outbox(config.outbox_dir()),
        };
        Ok(Mailer { templates, transport, from, base_url: config.base_url(), site_name: "Lyceum".into() })
    }

    /// Renders and sends one queued email. Idempotent: the Message-ID and the
    /// outbox file name derive from the job id, so a retry replaces, not adds.
    pub fn deliver(&self, job_id: i64, payload: &Value) -> Result<(), String> {
        let to = payload["to"].as_str().ok_or("payload has no recipient")?;
        let subject = payload["subject"].as_str().ok_or("payload has no subject")?;
        let template = payload["template"].as_str().ok_or("payload has no template")?;
        let mut ctx = payload["ctx"].clone();
        if let Value::Object(map) = &mut ctx {
            map.insert("base_url".into(), json!(self.base_url));
            map.insert("site_name".into(), json!(self.site_name));
            map.insert("subject".into(), json!(subject));
        }
        let text = self.templates.render_text(&format!("email/{template}"), &ctx).map_err(|e| e.to_string())?;
        let body_html = self.templates.render_html(&format!("email/{template}"), &ctx).map_err(|e| e.to_string())?;
        let mut layout_ctx = ctx.clone();
        if let Value::Object(map) = &mut layout_ctx {
            map.insert("body".into(), json!(body_html));
        }
        let html = self.templates.render_html("email/layout", &layout_ctx).map_err(|e| e.to_string())?;
        let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
        let domain = self.from.email.domain().to_string();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(MessageId::from(format!("<job-{job_id}@{domain}>")));
        // RFC 8058 one-click unsubscribe, for marketing mail.
        if let Some(link) = payload["list_unsubscribe"].as_str() {
            use lettre::message::header::{HeaderName, HeaderValue};
            builder = builder
                .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("List-Unsubscribe"), format!("<{link}>")))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        let message = builder.multipart(MultiPart::alternative_plain_html(text, html)).map_err(|e| e.to_string())?;
        match &self.transport {
            Transport_::Outbox(dir) => {
                crate::private_files::create_dir_all(dir).map_err(|e| format!("outbox: {e}"))?;
                let path = outbox_file(dir, job_id);
                let tmp = dir.join(format!(".{job_id:010}.eml.tmp"));
                crate::private_files::write(&tmp, &message.formatted()).map_err(|e| format!("outbox: {e}"))?;
                std::fs::rename(&tmp, &path).map_err(|e| format!("outbox: {e}"))
            }
            Transport_::Smtp(smtp) => smtp.send(&message).map(|_| ()).map_err(|e| format!("smtp: {e}")),
        }
    }
}

/// The outbox file of a mail job (named after the job, see `deliver`).
fn outbox_file(dir: &std::path::Path, job_id: i64) -> PathBuf {
    dir.join(format!("{job_id:010}.eml"))
}

/// Deletes the outbox files of these mail jobs (retention removes the jobs);
/// a file already gone is no error. Returns how many went.
pub fn remove_outbox_mail(dir: &std::path::Path, job_ids: &[i64]) -> std::io::Result<usize> {
    let mut removed = 0;
    for id in job_ids {
        match std::fs::remove_file(outbox_file(dir, *id)) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Deletes every outbox file that names `address` anywhere (recipient,
/// quoted text), for an erasure. Compared without regard to case, as mail
/// addresses are; returns how many went.
pub fn remove_outbox_mail_naming(dir: &std::path::Path, address: &str) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let needle = address.to_ascii_lowercase().into_bytes();
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path)?.to_ascii_lowercase();
        if !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// One message of the file outbox, decoded for reading in the site.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxMessage {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub date: String,
    pub text: String,
    /// Links found in the text, so they can be followed with one click.
    pub links: Vec<String>,
}

/// Messages in the outbox folder, newest first.
pub fn read_outbox(dir: &std::path::Path, limit: usize) -> Vec<OutboxMessage> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    names.into_iter().take(limit).filter_map(|n| read_message(dir, n.trim_end_matches(".eml"))).collect()
}

pub fn read_message(dir: &std::path::Path, id: &str) -> Option<OutboxMessage> {
    if !id.chars().all(|c| c.is_ascii_digit()) || id.is_empty() {
        return None;
    }
    let raw = std::fs::read(dir.join(format!("{id}.eml"))).ok()?;
    let parsed = mail_parser::MessageParser::default().parse(&raw)?;
    let to = parsed.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_string();
    let text = parsed.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    Some(OutboxMessage {
        id: id.to_string(),
        to,
        subject: parsed.subject().unwrap_or_default().to_string(),
        date: parsed.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
        text: text.clone(),
        links: text
            .split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(|w| w.trim_end_matches(['.', ',', ')', '>']).to_string())
            .collect(),
    })
}

/// The area's pages and APIs, mounted at the site's root by `build_rocket`.
pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![routes::outbox, routes::message,]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::web::Templates;

    /// The HTML emails' buttons come from one partial: a path on the site
    /// gets the site's address in front, a whole address is used as it is.
    #[test]
    fn an_email_button_links_to_a_path_on_the_site_or_to_a_whole_address() {
        let templates = Templates::load().unwrap();
        let site = json!({ "base_url": "https://lyceum.example", "site_name": "Lyceum", "subject": "s" });
        let with = |extra: serde_json::Value| {
            let mut ctx = site.clone();
            ctx.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            ctx
        };
        let verify = templates
            .render_html("email/verify_email", &with(json!({ "first_name": "Ada", "path": "/verify-email/t0k" })))
            .unwrap();
        assert!(
            verify.contains(r#"href="https://lyceum.example/verify-email/t0k">Confirm my email address</a>"#),
            "{verify}"
        );
        assert!(verify.contains("display:inline-block"), "styled inline, as mail clients need: {verify}");
        let ready = templates
            .render_html(
                "email/data_export_ready",
                &with(json!({ "username": "ada", "link": "https://files.example/x.zip", "expires": "x" })),
            )
            .unwrap();
        assert!(ready.contains(r#"href="https://files.example/x.zip">Download your data</a>"#), "{ready}");
        let fixed = templates.render_html("email/account_exists", &with(json!({ "first_name": "Ada" }))).unwrap();
        assert!(fixed.contains(r#"href="https://lyceum.example/signin">Sign in</a>"#), "{fixed}");
    }
}

//! A local double of the Stripe endpoints Lyceum uses, speaking their
//! documented protocol: form-encoded requests with a bearer secret key, JSON
//! answers, Checkout Sessions with a hosted payment page, refunds, and
//! webhook events signed `t=…,v1=HMAC-SHA256(secret, "t.body")`.
//!
//! The hosted page asks for a card number, as Stripe's does, so tests can
//! prove the number never reaches Lyceum. When given a webhook address the
//! double delivers `checkout.session.completed` after the payment and
//! `charge.refunded` after a refund, like Stripe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use partner_adapters::test_server::{Log, Received, Reply, serve};
use serde_json::{Value, json};
use sha2::Sha256;

pub const SECRET_KEY: &str = "sk_test_lyceum_double";
pub const WEBHOOK_SECRET: &str = "whsec_lyceum_double";

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub name: String,
    pub success_url: String,
    pub cancel_url: String,
    pub email: String,
    pub paid: bool,
    pub refunded: bool,
    pub payment_intent: String,
}

#[derive(Default)]
pub struct State {
    pub sessions: HashMap<String, Session>,
    /// Card numbers typed into the hosted page (they stay here).
    pub cards: Vec<String>,
    /// Webhook deliveries made: (event type, Lyceum's HTTP status).
    pub delivered: Vec<(String, u16)>,
}

pub struct StripeDouble {
    pub base: String,
    pub log: Log,
    pub state: Arc<Mutex<State>>,
}

impl StripeDouble {
    pub fn session(&self, id: &str) -> Session {
        self.state.lock().unwrap().sessions[id].clone()
    }
}

pub fn sign(body: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// An event as Stripe sends it, with its signature header for now.
pub fn event(id: &str, kind: &str, object: Value) -> (String, String) {
    let body = json!({
        "id": id, "object": "event", "type": kind, "api_version": "2024-06-20",
        "created": chrono::Utc::now().timestamp(), "data": { "object": object },
    })
    .to_string();
    let header = sign(&body, chrono::Utc::now().timestamp());
    (body, header)
}

pub fn session_object(s: &Session) -> Value {
    json!({
        "id": s.id, "object": "checkout.session", "mode": "payment",
        "payment_status": if s.paid { "paid" } else { "unpaid" },
        "status": if s.paid { "complete" } else { "open" },
        "amount_total": s.amount, "currency": s.currency.to_lowercase(),
        "payment_intent": if s.paid { json!(s.payment_intent) } else { Value::Null },
        "customer_email": s.email, "url": Value::Null,
    })
}

pub fn charge_refunded(s: &Session) -> Value {
    json!({ "id": format!("ch_{}", &s.id[3..]), "object": "charge", "payment_intent": s.payment_intent, "amount": s.amount, "amount_refunded": s.amount, "refunded": true })
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn deliver(state: Arc<Mutex<State>>, to: Option<String>, kind: &'static str, object: Value) {
    let Some(to) = to else { return };
    tokio::spawn(async move {
        let (body, header) = event(&format!("evt_{}", uuid::Uuid::new_v4().simple()), kind, object);
        let status = reqwest::Client::new()
            .post(&to)
            .header("Stripe-Signature", header)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        state.lock().unwrap().delivered.push((kind.to_string(), status));
    });
}

fn page(status: u16, html: String) -> Reply {
    Reply::new(status, html).header("Content-Type", "text/html; charset=utf-8")
}

fn respond(state: &Arc<Mutex<State>>, webhook: &Option<String>, req: &Received) -> Reply {
    let path = req.path.split('?').next().unwrap_or("").to_string();
    if path.starts_with("/v1/") && req.header("Authorization") != Some(&format!("Bearer {SECRET_KEY}")) {
        return Reply::new(401, r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}"#);
    }
    let host = req.header("Host").unwrap_or("127.0.0.1").to_string();
    match (req.method.as_str(), path.as_str()) {
        ("POST", "/v1/checkout/sessions") => {
            let f = form(&req.body);
            let need = |k: &str| f.get(k).cloned();
            let (Some(amount), Some(currency), Some(success), Some(cancel), Some("payment")) = (
                need("line_items[0][price_data][unit_amount]").and_then(|a| a.parse::<i64>().ok()),
                need("line_items[0][price_data][currency]"),
                need("success_url"),
                need("cancel_url"),
                f.get("mode").map(String::as_str),
            ) else {
                return Reply::new(
                    400,
                    r#"{"error":{"type":"invalid_request_error","message":"Missing required param"}}"#,
                );
            };
            let quantity = need("line_items[0][quantity]").and_then(|q| q.parse::<i64>().ok()).unwrap_or(1);
            let mut st = state.lock().unwrap();
            let id = format!("cs_test_{}", st.sessions.len() + 1);
            let session = Session {
                id: id.clone(),
                amount: amount * quantity,
                currency,
                name: need("line_items[0][price_data][product_data][name]").unwrap_or_default(),
                success_url: success,
                cancel_url: cancel,
                email: need("customer_email").unwrap_or_default(),
                paid: false,
                refunded: false,
                payment_intent: format!("pi_{}", uuid::Uuid::new_v4().simple()),
            };
            let mut body = session_object(&session);
            body["url"] = json!(format!("http://{host}/pay/{id}"));
            st.sessions.insert(id, session);
            Reply::new(200, body.to_string())
        }
        ("GET", p) if p.starts_with("/v1/checkout/sessions/") => {
            let id = &p["/v1/checkout/sessions/".len()..];
            match state.lock().unwrap().sessions.get(id) {
                Some(s) => Reply::new(200, session_object(s).to_string()),
                None => Reply::new(
                    404,
                    r#"{"error":{"type":"invalid_request_error","message":"No such checkout.session"}}"#,
                ),
            }
        }
        ("POST", "/v1/refunds") => {
            let f = form(&req.body);
            let pi = f.get("payment_intent").cloned().unwrap_or_default();
            let mut st = state.lock().unwrap();
            let Some(s) = st.sessions.values_mut().find(|s| s.paid && s.payment_intent == pi) else {
                return Reply::new(
                    400,
                    r#"{"error":{"type":"invalid_request_error","message":"No such payment_intent"}}"#,
                );
            };
            s.refunded = true;
            let object = charge_refunded(s);
            drop(st);
            deliver(state.clone(), webhook.clone(), "charge.refunded", object);
            Reply::new(
                200,
                json!({ "id": "re_1", "object": "refund", "payment_intent": pi, "status": "succeeded" }).to_string(),
            )
        }
        ("GET", p) if p.starts_with("/pay/") => {
            let id = &p["/pay/".len()..];
            let st = state.lock().unwrap();
            let Some(s) = st.sessions.get(id) else { return page(404, "<h1>No such checkout</h1>".into()) };
            page(
                200,
                format!(
                    "<!doctype html><title>Checkout</title><h1>Pay {} {:.2}</h1><p>{}</p>\
                     <form method=post action=/pay/{id}><label for=card>Card number</label><input id=card name=card autocomplete=cc-number>\
                     <button id=pay type=submit>Pay</button></form><p><a id=cancel href=\"{}\">Cancel</a></p>",
                    s.currency.to_uppercase(),
                    s.amount as f64 / 100.0,
                    s.name,
                    s.cancel_url
                ),
            )
        }
        ("POST", p) if p.starts_with("/pay/") => {
            let id = p["/pay/".len()..].to_string();
            let card = form(&req.body).remove("card").unwrap_or_default();
            let mut st = state.lock().unwrap();
            st.cards.push(card);
            let Some(s) = st.sessions.get_mut(&id) else { return page(404, "<h1>No such checkout</h1>".into()) };
            s.paid = true;
            let object = session_object(s);
            let back = s.success_url.replace("{CHECKOUT_SESSION_ID}", &id);
            drop(st);
            deliver(state.clone(), webhook.clone(), "checkout.session.completed", object);
            page(303, String::new()).header("Location", back)
        }
        _ => Reply::new(404, r#"{"error":{"type":"invalid_request_error","message":"Unrecognized request URL"}}"#),
    }
}

/// Starts the double; `webhook` is where it delivers events (a real port), if anywhere.
pub async fn start(webhook: Option<String>) -> StripeDouble {
    let state: Arc<Mutex<State>> = Arc::default();
    let shared = state.clone();
    let (base, log) = serve(move |_, req| respond(&shared, &webhook, req)).await;
    StripeDouble { base, log, state }
}

/// Points a configuration at the double.
pub fn configure(config: &mut lyceum::config::Config, base: &str) {
    config.stripe_api_base = base.to_string();
    config.stripe_secret_key = Some(SECRET_KEY.into());
    config.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
}

//! Codes by text message (ACC-5) behind `SmsSender`: Twilio's REST API, or
//! an outbox table staff can read (the default, for demos). A number is
//! enrolled only with an explicit consent, recorded; it serves security
//! only; texts are sent only when the person starts an action that needs a
//! code. Replies reach the inbound webhook (Twilio's signature checked):
//! STOP withdraws the consent and stops every text, HELP answers with help,
//! START allows texts again, after which codes by text must be set up anew.

use base64::Engine;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::twofactor::TwoFactorError;
use crate::db::Conn;
use crate::db::schema::{sms_codes, sms_numbers, sms_outbox};
use crate::kernel::vault;

pub const PHONE_FIELD: &str = "sms_numbers.phone";
pub const OUTBOX_FIELD: &str = "sms_outbox.phone";
/// Minutes a texted code works.
pub const CODE_MINUTES: i64 = 10;

pub const HELP_TEXT: &str = "Lyceum: texts carry sign-in codes only. Reply STOP to stop all texts, START to allow them again. Help: see Account security on the site.";
pub const STOP_TEXT: &str = "Lyceum: you will get no more texts from us. Reply START to allow them again.";
pub const START_TEXT: &str =
    "Lyceum: texts are allowed again. Set up codes by text again on the Account security page.";

#[rocket::async_trait]
pub trait SmsSender: Send + Sync {
    async fn send(&self, to: &str, body: &str) -> Result<(), String>;
    /// Checks an inbound webhook's signature: the full URL it was posted to
    /// and its form fields. `None` for senders without inbound messages.
    fn verify_inbound(&self, signature: Option<&str>, url: &str, fields: &[(String, String)]) -> Option<bool>;
}

/// Twilio's Messages API and signed inbound webhooks.
pub struct Twilio {
    api_base: String,
    account_sid: String,
    auth_token: String,
    from: String,
    http: reqwest::Client,
    /// Why the configured API base may not be reached, if it may not.
    refused: Option<String>,
}

impl Twilio {
    pub fn new(
        api_base: &str,
        account_sid: &str,
        auth_token: &str,
        from: &str,
        outbound: &crate::net::Outbound,
    ) -> Twilio {
        Twilio {
            refused: outbound.refusal(api_base),
            api_base: api_base.trim_end_matches('/').to_string(),
            account_sid: account_sid.to_string(),
            auth_token: auth_token.to_string(),
            from: from.to_string(),
            http: outbound.client_builder().timeout(std::time::Duration::from_secs(15)).build().unwrap_or_default(),
        }
    }
}

/// Twilio's request signature: base64 HMAC-SHA1 over the URL followed by
/// each form field's name and value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[rocket::async_trait]
impl SmsSender for Twilio {
    async fn send(&self, to: &str, body: &str) -> Result<(), String> {
        if let Some(refused) = &self.refused {
            return Err(format!("Twilio: {refused}"));
        }
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", self.api_base, self.account_sid);
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&[("To", to), ("From", self.from.as_str()), ("Body", body)])
            .send()
            .await
            .map_err(|e| format!("Twilio: {e}"))?;
        if response.status().is_success() { Ok(()) } else { Err(format!("Twilio answered {}", response.status())) }
    }

    fn verify_inbound(&self, signature: Option<&str>, url: &str, fields: &[(String, String)]) -> Option<bool> {
        let expected = twilio_signature(&self.auth_token, url, fields);
        Some(signature.is_some_and(|s| {
            use subtle_eq::eq;
            eq(s.as_bytes(), expected.as_bytes())
        }))
    }
}

/// Constant-time comparison of two byte strings.
mod subtle_eq {
    pub fn eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Texts kept in the `sms_outbox` table (numbers sealed) instead of sent.
pub struct Outbox(pub crate::db::Db);

#[rocket::async_trait]
impl SmsSender for Outbox {
    async fn send(&self, to: &str, body: &str) -> Result<(), String> {
        let (to, body) = (to.to_string(), body.to_string());
        self.0
            .run(move |conn| {
                let phone = vault::seal(OUTBOX_FIELD, &to).map_err(|e| {
                    crate::db::DbError::Query(diesel::result::Error::QueryBuilderError(e.to_string().into()))
                })?;
                diesel::insert_into(sms_outbox::table)
                    .values((
                        sms_outbox::phone.eq(phone),
                        sms_outbox::body.eq(body),
                        sms_outbox::created_at.eq(crate::db::now()),
                    ))
                    .execute(conn)
                    .map_err(crate::db::DbError::from)
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn verify_inbound(&self, _: Option<&str>, _: &str, _: &[(String, String)]) -> Option<bool> {
        None
    }
}

/// The configured sender and the key numbers are hashed under for lookup.
#[derive(Clone)]
pub struct Sms {
    pub sender: std::sync::Arc<dyn SmsSender>,
    lookup_key: [u8; 32],
    /// Whether texts really leave (Twilio) or stay in the outbox.
    pub live: bool,
}

impl Sms {
    pub fn from_config(config: &crate::config::Config, db: crate::db::Db, site_secret: &[u8]) -> Sms {
        let lookup_key = Sha256::new_with_prefix(b"lyceum phone lookup\0").chain_update(site_secret).finalize().into();
        match (&config.twilio_account_sid, &config.twilio_auth_token, &config.twilio_from) {
            (Some(sid), Some(token), Some(from)) if !sid.trim().is_empty() => Sms {
                sender: std::sync::Arc::new(Twilio::new(
                    &config.twilio_api_base,
                    sid,
                    token,
                    from,
                    &crate::net::Outbound::new(&config.outbound_allow).unwrap_or_default(),
                )),
                lookup_key,
                live: true,
            },
            _ => Sms { sender: std::sync::Arc::new(Outbox(db)), lookup_key, live: false },
        }
    }

    pub fn phone_hash(&self, phone: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.lookup_key).expect("HMAC takes any key");
        mac.update(phone.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The accounts that registered any of these numbers (for the audit log).
pub fn owners_of(conn: &mut Conn, sms: &Sms, phones: &[String]) -> QueryResult<Vec<i64>> {
    let hashes: Vec<String> = phones.iter().map(|p| sms.phone_hash(p)).collect();
    sms_numbers::table.filter(sms_numbers::phone_hash.eq_any(hashes)).select(sms_numbers::user_id).load(conn)
}

/// A number as E.164 (`+` and 8 to 15 digits), from what people type.
pub fn normalise_phone(input: &str) -> Option<String> {
    let trimmed = input.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let plus = trimmed.starts_with('+') || trimmed.starts_with("00");
    let digits = if trimmed.starts_with("00") { digits[2..].to_string() } else { digits };
    let allowed = trimmed.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    (plus && allowed && (8..=15).contains(&digits.len()) && !digits.starts_with('0')).then(|| format!("+{digits}"))
}

/// The enrolled number: (phone, confirmed, stopped).
pub fn number(conn: &mut Conn, user_id: i64) -> Result<Option<(String, bool, bool)>, TwoFactorError> {
    let row: Option<(String, Option<NaiveDateTime>, Option<NaiveDateTime>)> = sms_numbers::table
        .find(user_id)
        .select((sms_numbers::phone, sms_numbers::confirmed_at, sms_numbers::stopped_at))
        .first(conn)
        .optional()?;
    let Some((sealed, confirmed, stopped)) = row else { return Ok(None) };
    let phone = vault::open(PHONE_FIELD, &sealed).map_err(|e| TwoFactorError::Keys(e.to_string()))?;
    Ok(Some((phone, confirmed.is_some(), stopped.is_some())))
}

/// Whether codes by text are set up (confirmed). After a STOP they stay set
/// up but no text is sent: signing in then takes the app or a recovery
/// code, so a STOP cannot switch the second factor off.
pub fn enabled(conn: &mut Conn, user_id: i64) -> QueryResult<bool> {
    let n: i64 = sms_numbers::table
        .filter(sms_numbers::user_id.eq(user_id))
        .filter(sms_numbers::confirmed_at.is_not_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Records a number with the person's consent (unconfirmed until a code
/// texted to it is entered).
pub fn enrol(
    conn: &mut Conn,
    sms: &Sms,
    user_id: i64,
    phone: &str,
    consent: bool,
    now: NaiveDateTime,
) -> Result<String, TwoFactorError> {
    if !consent {
        return Err(TwoFactorError::Invalid(
            "Tick the box to agree that we text this number, for sign-in codes only.".into(),
        ));
    }
    let Some(phone) = normalise_phone(phone) else {
        return Err(TwoFactorError::Invalid("Enter the number with its country code, like +44 7700 900123.".into()));
    };
    let sealed = vault::seal(PHONE_FIELD, &phone).map_err(|e| TwoFactorError::Keys(e.to_string()))?;
    diesel::delete(sms_numbers::table.find(user_id)).execute(conn)?;
    diesel::insert_into(sms_numbers::table)
        .values((
            sms_numbers::user_id.eq(user_id),
            sms_numbers::phone.eq(sealed),
            sms_numbers::phone_hash.eq(sms.phone_hash(&phone)),
            sms_numbers::consent_at.eq(now),
            sms_numbers::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(phone)
}

fn hash(code: &str) -> String {
    hex::encode(Sha256::new_with_prefix(b"lyceum sms code\0").chain_update(code.trim()).finalize())
}

/// A new code for the user (earlier unused ones stop working); returns it.
pub fn new_code(conn: &mut Conn, user_id: i64, now: NaiveDateTime) -> QueryResult<String> {
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
    diesel::update(sms_codes::table.filter(sms_codes::user_id.eq(user_id)).filter(sms_codes::used_at.is_null()))
        .set(sms_codes::used_at.eq(now))
        .execute(conn)?;
    diesel::insert_into(sms_codes::table)
        .values((
            sms_codes::user_id.eq(user_id),
            sms_codes::code_hash.eq(hash(&code)),
            sms_codes::expires_at.eq(now + Duration::minutes(CODE_MINUTES)),
            sms_codes::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(code)
}

/// Uses a texted code: right, unexpired and unused.
pub fn use_code(conn: &mut Conn, user_id: i64, code: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let n = diesel::update(
        sms_codes::table
            .filter(sms_codes::user_id.eq(user_id))
            .filter(sms_codes::code_hash.eq(hash(code)))
            .filter(sms_codes::used_at.is_null())
            .filter(sms_codes::expires_at.gt(now)),
    )
    .set(sms_codes::used_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

/// Whether this code was texted to the user and has expired or been used.
pub fn stale_code(conn: &mut Conn, user_id: i64, code: &str) -> QueryResult<bool> {
    let n: i64 = sms_codes::table
        .filter(sms_codes::user_id.eq(user_id))
        .filter(sms_codes::code_hash.eq(hash(code)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Confirms the number with a code texted to it; returns new recovery codes
/// when it is the first second factor.
pub fn confirm(conn: &mut Conn, user_id: i64, code: &str, now: NaiveDateTime) -> Result<Vec<String>, TwoFactorError> {
    if !use_code(conn, user_id, code, now)? {
        return Err(TwoFactorError::Invalid("That code is not right or has expired. Ask for a new one.".into()));
    }
    diesel::update(sms_numbers::table.find(user_id)).set(sms_numbers::confirmed_at.eq(now)).execute(conn)?;
    Ok(super::twofactor::first_recovery_codes(conn, user_id, now)?)
}

pub fn remove(conn: &mut Conn, user_id: i64) -> QueryResult<()> {
    diesel::delete(sms_numbers::table.find(user_id)).execute(conn)?;
    diesel::delete(sms_codes::table.filter(sms_codes::user_id.eq(user_id))).execute(conn)?;
    Ok(())
}

/// What a reply to our texts asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Help,
    Start,
    Other,
}

pub fn keyword(body: &str) -> Keyword {
    match body.trim().to_ascii_uppercase().as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE" | "OPTOUT" => Keyword::Stop,
        "HELP" | "INFO" => Keyword::Help,
        "START" | "YES" | "UNSTOP" => Keyword::Start,
        _ => Keyword::Other,
    }
}

/// Applies a reply from `phone` (E.164) and returns the accounts it
/// concerned. STOP withdraws the consent (no more texts; the number stays the
/// account's factor, so sign-in asks for the app or a recovery code instead);
/// START allows texts again.
pub fn reply(conn: &mut Conn, sms: &Sms, phone: &str, word: Keyword, now: NaiveDateTime) -> QueryResult<Vec<i64>> {
    let ids: Vec<i64> = sms_numbers::table
        .filter(sms_numbers::phone_hash.eq(sms.phone_hash(phone)))
        .select(sms_numbers::user_id)
        .load(conn)?;
    match word {
        Keyword::Stop => {
            diesel::update(sms_numbers::table.filter(sms_numbers::user_id.eq_any(&ids)))
                .set(sms_numbers::stopped_at.eq(now))
                .execute(conn)?;
        }
        // START only allows texts again. It never removes the number as a
        // factor: a text cannot turn off two-factor sign-in.
        Keyword::Start => {
            diesel::update(sms_numbers::table.filter(sms_numbers::user_id.eq_any(&ids)))
                .set(sms_numbers::stopped_at.eq(None::<NaiveDateTime>))
                .execute(conn)?;
        }
        Keyword::Help | Keyword::Other => {}
    }
    Ok(ids)
}

/// Deletes the texts kept in the outbox for the user's number, for an
/// erasure: staff could otherwise still read the number there. The numbers
/// are sealed with a fresh nonce each, so each is opened to compare.
pub fn erase_outbox_texts(conn: &mut Conn, user_id: i64) -> QueryResult<usize> {
    let keys = |e: vault::VaultError| diesel::result::Error::QueryBuilderError(e.to_string().into());
    let sealed: Option<String> = sms_numbers::table.find(user_id).select(sms_numbers::phone).first(conn).optional()?;
    let Some(sealed) = sealed else { return Ok(0) };
    let phone = vault::open(PHONE_FIELD, &sealed).map_err(keys)?;
    let rows: Vec<(i64, String)> = sms_outbox::table.select((sms_outbox::id, sms_outbox::phone)).load(conn)?;
    let mut theirs = Vec::new();
    for (id, stored) in rows {
        if vault::open(OUTBOX_FIELD, &stored).map_err(keys)? == phone {
            theirs.push(id);
        }
    }
    diesel::delete(sms_outbox::table.filter(sms_outbox::id.eq_any(&theirs))).execute(conn)
}

/// The outbox for staff: (number, text, when), newest first.
pub fn outbox(conn: &mut Conn, limit: i64) -> Result<Vec<(String, String, NaiveDateTime)>, TwoFactorError> {
    let rows: Vec<(String, String, NaiveDateTime)> = sms_outbox::table
        .order(sms_outbox::id.desc())
        .limit(limit)
        .select((sms_outbox::phone, sms_outbox::body, sms_outbox::created_at))
        .load(conn)?;
    rows.into_iter()
        .map(|(p, b, t)| Ok((vault::open(OUTBOX_FIELD, &p).map_err(|e| TwoFactorError::Keys(e.to_string()))?, b, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_need_a_country_code() {
        assert_eq!(normalise_phone("+44 7700 900123").as_deref(), Some("+447700900123"));
        assert_eq!(normalise_phone("0044 (7700) 900-123").as_deref(), Some("+447700900123"));
        assert_eq!(normalise_phone("07700 900123"), None);
        assert_eq!(normalise_phone("+1 555 CALL ME"), None);
        assert_eq!(keyword(" stop "), Keyword::Stop);
        assert_eq!(keyword("Help"), Keyword::Help);
        assert_eq!(keyword("start"), Keyword::Start);
    }

    #[test]
    fn twilio_signs_the_url_and_sorted_fields() {
        // The value Python's hmac module computes for the request of Twilio's documentation.
        let fields: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &fields),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}

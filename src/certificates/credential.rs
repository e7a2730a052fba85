//! Machine-verifiable certificates (CRT-4): each certificate as an Open
//! Badges 3.0 `OpenBadgeCredential`, signed as a VC-JWT with Ed25519
//! (`alg: EdDSA`); the public key published as a JWKS at
//! `/.well-known/jwks.json`; an issuer profile per member; revocation through
//! a W3C Bitstring Status List, itself a signed credential.
//!
//! The JWT payload is the credential itself (its members at the top level)
//! with the registered claims `iss` (the issuer's id), `jti` (the
//! credential's id) and `nbf` (its `validFrom`), as the Open Badges 3.0
//! VC-JWT proof format asks.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{NaiveDateTime, SecondsFormat};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Certificate;

pub const VC_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
pub const OB_CONTEXT: &str = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json";
pub const OB_SCHEMA: &str =
    "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json";

/// Entries in the status list: the specification's minimum (16 KiB of bits),
/// so the list does not reveal how many certificates exist.
pub const STATUS_LIST_BITS: usize = 131_072;

/// The site's credential-signing key.
#[derive(Clone)]
pub struct Issuer {
    key: SigningKey,
    kid: String,
    base_url: String,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("kid", &self.kid).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("LYCEUM_CREDENTIAL_KEY must be base64 of a 32-byte Ed25519 seed")]
pub struct KeyError;

fn iso(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Issuer {
    /// The key from `LYCEUM_CREDENTIAL_KEY` (base64 of a 32-byte seed), or
    /// one derived from the site secret when unset.
    pub fn new(configured: Option<&str>, secret: &[u8], base_url: &str) -> Result<Issuer, KeyError> {
        let seed: [u8; 32] = match configured.map(str::trim).filter(|s| !s.is_empty()) {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| KeyError)?
                .try_into()
                .map_err(|_| KeyError)?,
            None => Sha256::new_with_prefix(b"lyceum credential signing\0").chain_update(secret).finalize().into(),
        };
        let key = SigningKey::from_bytes(&seed);
        let kid = hex::encode(&Sha256::digest(key.verifying_key().as_bytes())[..8]);
        Ok(Issuer { key, kid, base_url: base_url.trim_end_matches('/').to_string() })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid,
            "x": B64URL.encode(self.key.verifying_key().as_bytes()),
        })
    }

    /// The JSON Web Key Set published at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// A compact JWS (`header.payload.signature`) over `payload`.
    pub fn sign(&self, payload: &Value) -> String {
        let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid, "jwk": self.public_jwk() });
        let signing_input =
            format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(payload.to_string().as_bytes()));
        let signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64URL.encode(signature.to_bytes()))
    }

    pub fn issuer_id(&self, member_slug: &str) -> String {
        format!("{}/issuers/{member_slug}", self.base_url)
    }

    pub fn status_list_id(&self) -> String {
        format!("{}/credentials/status/revocation", self.base_url)
    }

    /// The issuer profile of a member (an Open Badges `Profile`).
    pub fn profile(&self, member_slug: &str, name: &str, description: &str) -> Value {
        json!({
            "@context": [VC_CONTEXT, OB_CONTEXT],
            "id": self.issuer_id(member_slug),
            "type": ["Profile"],
            "name": name,
            "description": description,
            "url": format!("{}/catalog?member={member_slug}", self.base_url),
        })
    }

    /// The certificate as an `OpenBadgeCredential` (unsigned).
    pub fn credential(&self, c: &Certificate, course_slug: Option<&str>, pass_threshold: Option<i32>) -> Value {
        let id = format!("{}/certificates/{}", self.base_url, c.code);
        let achievement_id = match course_slug {
            Some(slug) => format!("{}/courses/{slug}#{}", self.base_url, c.run_key),
            None => format!("{id}#achievement"),
        };
        let criteria = match pass_threshold {
            Some(t) => format!(
                "Passed the course run {} on the verified track with a grade of at least {t} %, after an identity check.",
                c.run_key
            ),
            None => format!("Passed the course run {} on the verified track, after an identity check.", c.run_key),
        };
        json!({
            "@context": [VC_CONTEXT, OB_CONTEXT],
            "id": id,
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "issuer": {
                "id": self.issuer_id(&c.member_slug),
                "type": ["Profile"],
                "name": c.member_name,
            },
            "validFrom": iso(c.issued_at),
            "name": format!("Verified certificate: {}", c.course_title),
            "credentialSubject": {
                "type": ["AchievementSubject"],
                "identifier": [{
                    "type": "IdentityObject",
                    "identityHash": c.name_at_issue,
                    "identityType": "name",
                    "hashed": false,
                }],
                "achievement": {
                    "id": achievement_id,
                    "type": ["Achievement"],
                    "achievementType": "Certificate",
                    "name": c.course_title,
                    "description": format!("{} ({}), offered by {}.", c.course_title, c.run_key, c.member_name),
                    "criteria": { "narrative": criteria },
                },
                "result": [{ "type": ["Result"], "value": format!("{:.1}", c.grade_percent) }],
            },
            "credentialStatus": {
                "id": format!("{}#{}", self.status_list_id(), c.status_index),
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": c.status_index.to_string(),
                "statusListCredential": self.status_list_id(),
            },
            "credentialSchema": [{ "id": OB_SCHEMA, "type": "1EdTechJsonSchemaValidator2019" }],
        })
    }

    /// The credential signed as a VC-JWT.
    pub fn vc_jwt(&self, c: &Certificate, course_slug: Option<&str>, pass_threshold: Option<i32>) -> String {
        let mut payload = self.credential(c, course_slug, pass_threshold);
        payload["iss"] = json!(self.issuer_id(&c.member_slug));
        payload["jti"] = payload["id"].clone();
        payload["nbf"] = json!(c.issued_at.and_utc().timestamp());
        self.sign(&payload)
    }

    /// The revocation list as a signed `BitstringStatusListCredential`: bit
    /// `i` (most significant bit first) is set when the certificate with
    /// status index `i` is revoked.
    /// The list grows past the minimum size when `issued` (the number of
    /// status indexes handed out) needs it.
    pub fn status_list(&self, revoked: &[i64], issued: i64, now: NaiveDateTime) -> String {
        let size = STATUS_LIST_BITS.max(usize::try_from(issued).unwrap_or(0).next_multiple_of(STATUS_LIST_BITS));
        let mut bits = vec![0u8; size / 8];
        for &i in revoked {
            if let Ok(i) = usize::try_from(i)
                && i < size
            {
                bits[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bits).expect("writing to memory");
        let compressed = gz.finish().expect("writing to memory");
        let id = self.status_list_id();
        let mut payload = json!({
            "@context": [VC_CONTEXT],
            "id": id,
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": self.base_url,
            "validFrom": iso(now),
            "credentialSubject": {
                "id": format!("{id}#list"),
                "type": "BitstringStatusList",
                "statusPurpose": "revocation",
                "encodedList": format!("u{}", B64URL.encode(compressed)),
            },
        });
        payload["iss"] = json!(self.base_url);
        payload["jti"] = json!(id);
        payload["nbf"] = json!(now.and_utc().timestamp());
        self.sign(&payload)
    }
}

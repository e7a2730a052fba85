//! Machine-verifiable certificates (CRT-4): each certificate as an Open
//! Badges 3.0 `OpenBadgeCredential`, signed as a VC-JWT with ECDSA on P-256
//! (`alg: ES256`, which 1EdTech's validator accepts; it refuses EdDSA); the
//! public keys published as a JWKS at `/.well-known/jwks.json`; an issuer
//! profile per member; revocation through a W3C Bitstring Status List,
//! itself a signed credential.
//!
//! The JWT payload is the credential itself (its members at the top level)
//! with the registered claims `iss` (the issuer's id), `jti` (the
//! credential's id), `nbf` (its `validFrom`) and `sub` (its subject's id), as
//! the VC-JWT proof format of Open Badges 3.0 lists them. The JOSE header is
//! `alg`, `kid` and `typ` only (the format allows no others); `kid` is an
//! absolute URL that dereferences to the key in the JWKS.
//!
//! Credentials were signed with Ed25519 before; that public key stays in the
//! JWKS under its old `kid` so credentials already handed out still verify.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{NaiveDateTime, SecondsFormat};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey as _;
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

/// The site's credential-signing key, and the public part of the Ed25519 key
/// that signed credentials before ES256, when there was one.
#[derive(Clone)]
pub struct Issuer {
    key: p256::ecdsa::SigningKey,
    kid: String,
    legacy: Option<ed25519_dalek::VerifyingKey>,
    base_url: String,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("kid", &self.kid).finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "LYCEUM_CREDENTIAL_KEY must be a P-256 private key in PKCS#8: PEM (-----BEGIN PRIVATE KEY-----) or base64 of the \
     DER, as `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes it; or, kept from before ES256, \
     base64 of a 32-byte Ed25519 seed"
)]
pub struct KeyError;

fn iso(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A P-256 key derived from `material`: the hash is a valid secret scalar
/// except with probability about 2^-32, when the next counter value is used.
fn derive_p256(material: &[u8]) -> p256::ecdsa::SigningKey {
    (0u32..)
        .find_map(|counter| {
            let scalar = Sha256::new_with_prefix(b"lyceum credential signing p-256\0")
                .chain_update(material)
                .chain_update(counter.to_be_bytes())
                .finalize();
            p256::ecdsa::SigningKey::from_slice(&scalar).ok()
        })
        .expect("some counter gives a scalar in range")
}

/// The JWK thumbprint of RFC 7638: stable for a key, different for another.
fn thumbprint(jwk_members: &Value) -> String {
    // serde_json keeps object members sorted, as the thumbprint's canonical form requires.
    B64URL.encode(Sha256::digest(jwk_members.to_string().as_bytes()))
}

impl Issuer {
    /// The key from `LYCEUM_CREDENTIAL_KEY`, or one derived from the site
    /// secret when unset.
    ///
    /// - PKCS#8 (PEM, or base64 of the DER): that P-256 key signs; no earlier
    ///   key is published.
    /// - base64 of 32 bytes: the Ed25519 seed of a site configured before
    ///   ES256. Its public key stays published for the credentials it signed;
    ///   the P-256 key is derived from it, so the value need not change.
    /// - unset: both derived from the secret, the Ed25519 one as before.
    pub fn new(configured: Option<&str>, secret: &[u8], base_url: &str) -> Result<Issuer, KeyError> {
        let (key, legacy_seed): (p256::ecdsa::SigningKey, Option<[u8; 32]>) =
            match configured.map(str::trim).filter(|s| !s.is_empty()) {
                Some(pem) if pem.starts_with("-----BEGIN") => {
                    (p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError)?, None)
                }
                Some(b64) => {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| KeyError)?;
                    match <[u8; 32]>::try_from(bytes.as_slice()) {
                        Ok(seed) => (derive_p256(&seed), Some(seed)),
                        Err(_) => (p256::ecdsa::SigningKey::from_pkcs8_der(&bytes).map_err(|_| KeyError)?, None),
                    }
                }
                None => {
                    let seed: [u8; 32] =
                        Sha256::new_with_prefix(b"lyceum credential signing\0").chain_update(secret).finalize().into();
                    (derive_p256(&seed), Some(seed))
                }
            };
        let legacy = legacy_seed.map(|seed| ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key());
        let base_url = base_url.trim_end_matches('/').to_string();
        let kid = format!("{base_url}/.well-known/jwks.json#{}", thumbprint(&Self::ec_members(&key)));
        Ok(Issuer { key, kid, legacy, base_url })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The members of the public key that its thumbprint covers.
    fn ec_members(key: &p256::ecdsa::SigningKey) -> Value {
        let point = key.verifying_key().to_sec1_point(false);
        let coordinate = |c: Option<&[u8]>| B64URL.encode(c.expect("an uncompressed point has both coordinates"));
        json!({ "crv": "P-256", "kty": "EC", "x": coordinate(point.x().map(|x| x.as_slice())), "y": coordinate(point.y().map(|y| y.as_slice())) })
    }

    /// The JSON Web Key Set published at `/.well-known/jwks.json`: the
    /// signing key first, then the earlier Ed25519 key under its old `kid`.
    pub fn jwks(&self) -> Value {
        let mut current = Self::ec_members(&self.key);
        current["alg"] = json!("ES256");
        current["use"] = json!("sig");
        current["kid"] = json!(self.kid);
        let mut keys = vec![current];
        if let Some(old) = &self.legacy {
            keys.push(json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                "kid": hex::encode(&Sha256::digest(old.as_bytes())[..8]),
                "x": B64URL.encode(old.as_bytes()),
            }));
        }
        json!({ "keys": keys })
    }

    /// A compact JWS (`header.payload.signature`) over `payload`.
    pub fn sign(&self, payload: &Value) -> String {
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        let signing_input =
            format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(payload.to_string().as_bytes()));
        // ECDSA with SHA-256; JWS wants the fixed 64-byte r || s form (RFC 7518 §3.4).
        let signature: p256::ecdsa::Signature = self.key.sign(signing_input.as_bytes());
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
                // A URI for the recipient that names no account: it resolves to
                // the certificate's public page, which shows the name at issue.
                "id": format!("{id}#recipient"),
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
        payload["sub"] = payload["credentialSubject"]["id"].clone();
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
        payload["sub"] = payload["credentialSubject"]["id"].clone();
        self.sign(&payload)
    }
}

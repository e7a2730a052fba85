//! Sensitive fields at rest (SEC-2): one envelope-encryption helper.
//!
//! Each value gets its own random data key; the value is sealed with it
//! (AES-256-GCM, the field's name as associated data, so a value cannot be
//! moved to another column), and the data key is sealed with a master key
//! named by an id. Stored form: `env1:<key id>:<sealed data key>:<sealed value>`
//! (base64). Rotation (`lyceum keys rotate`) re-seals only the data keys under
//! the current master key, so values are never decrypted in bulk.
//!
//! Master keys come from `LYCEUM_ENCRYPTION_KEYS` (`id:base64,…`, 32-byte
//! keys, the first one current; older ones stay listed until rotation is
//! done). Without it, one key (`s1`) is derived from the site secret. Values
//! written before encryption (no `env1:` prefix) are read as they are and
//! sealed by the next rotation.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use rand::RngCore;

const PREFIX: &str = "env1";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("LYCEUM_ENCRYPTION_KEYS: {0}")]
    Config(String),
    #[error("an encrypted value names key {0}, which is not configured")]
    UnknownKey(String),
    #[error("an encrypted value is damaged or was sealed for another field")]
    Damaged,
    #[error("no encryption keys are installed in this process")]
    NotInstalled,
}

/// The master keys, the first one current.
pub struct Vault {
    current: String,
    keys: HashMap<String, [u8; 32]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only, never key bytes.
        f.debug_struct("Vault").field("current", &self.current).field("keys", &self.keys.keys()).finish()
    }
}

fn derived(secret: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::new_with_prefix(b"lyceum field encryption\0").chain_update(secret).finalize().into()
}

/// The key derived from the site secret, as an `LYCEUM_ENCRYPTION_KEYS`
/// entry: list it after a new key to move values off the derived one.
pub fn derived_key_entry(secret: &[u8]) -> String {
    format!("s1:{}", base64::engine::general_purpose::STANDARD.encode(derived(secret)))
}

fn seal_with(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> String {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(key.into());
    let sealed =
        cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad }).expect("AES-GCM seals any input");
    let mut out = nonce.to_vec();
    out.extend(sealed);
    B64.encode(out)
}

fn open_with(key: &[u8; 32], sealed: &str, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let bytes = B64.decode(sealed).map_err(|_| VaultError::Damaged)?;
    if bytes.len() < 12 + 16 {
        return Err(VaultError::Damaged);
    }
    let (nonce, body) = bytes.split_at(12);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| VaultError::Damaged)
}

impl Vault {
    /// `spec` is `id:base64key,…` (first current); `None` derives one key from the site secret.
    pub fn new(spec: Option<&str>, secret: &[u8]) -> Result<Vault, VaultError> {
        let spec = spec.map(str::trim).filter(|s| !s.is_empty());
        let Some(spec) = spec else {
            return Ok(Vault { current: "s1".into(), keys: HashMap::from([("s1".to_string(), derived(secret))]) });
        };
        let mut keys = HashMap::new();
        let mut current = None;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, key) =
                part.split_once(':').ok_or_else(|| VaultError::Config(format!("“{part}” is not id:base64key")))?;
            let valid_id = !id.is_empty() && id.len() <= 16 && id.chars().all(|c| c.is_ascii_alphanumeric());
            if !valid_id {
                return Err(VaultError::Config(format!("key id “{id}” must be 1–16 letters or digits")));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .map_err(|_| VaultError::Config(format!("key {id} is not base64")))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| VaultError::Config(format!("key {id} must be 32 bytes (44 base64 characters)")))?;
            current.get_or_insert_with(|| id.to_string());
            keys.insert(id.to_string(), key);
        }
        let current = current.ok_or_else(|| VaultError::Config("no key given".into()))?;
        Ok(Vault { current, keys })
    }

    pub fn current_key(&self) -> &str {
        &self.current
    }

    /// Seals `plaintext` for `field` (e.g. `users.phone`) under the current key.
    pub fn seal(&self, field: &str, plaintext: &str) -> String {
        let mut data_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut data_key);
        let value = seal_with(&data_key, plaintext.as_bytes(), field.as_bytes());
        let wrapped = seal_with(&self.keys[&self.current], &data_key, self.current.as_bytes());
        format!("{PREFIX}:{}:{wrapped}:{value}", self.current)
    }

    fn parts<'s>(&self, stored: &'s str) -> Result<Option<Opened<'s>>, VaultError> {
        let Some(rest) = stored.strip_prefix(PREFIX).and_then(|r| r.strip_prefix(':')) else { return Ok(None) };
        let mut it = rest.splitn(3, ':');
        let (Some(id), Some(wrapped), Some(value)) = (it.next(), it.next(), it.next()) else {
            return Err(VaultError::Damaged);
        };
        let master = self.keys.get(id).ok_or_else(|| VaultError::UnknownKey(id.to_string()))?;
        let data_key: [u8; 32] =
            open_with(master, wrapped, id.as_bytes())?.try_into().map_err(|_| VaultError::Damaged)?;
        Ok(Some((id, data_key, value)))
    }

    /// The plaintext of a stored value (one written before encryption is returned as is).
    pub fn open(&self, field: &str, stored: &str) -> Result<String, VaultError> {
        match self.parts(stored)? {
            None => Ok(stored.to_string()),
            Some((_, data_key, value)) => {
                String::from_utf8(open_with(&data_key, value, field.as_bytes())?).map_err(|_| VaultError::Damaged)
            }
        }
    }

    /// Seals a file (identity images) for `field`: the same envelope as
    /// [`Vault::seal`], the value's nonce and ciphertext kept as raw bytes
    /// after the text header `env1:<key id>:<sealed data key>:`.
    pub fn seal_bytes(&self, field: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut data_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut data_key);
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = Aes256Gcm::new((&data_key).into())
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: field.as_bytes() })
            .expect("AES-GCM seals any input");
        let wrapped = seal_with(&self.keys[&self.current], &data_key, self.current.as_bytes());
        let mut out = format!("{PREFIX}:{}:{wrapped}:", self.current).into_bytes();
        out.extend_from_slice(&nonce);
        out.extend(sealed);
        out
    }

    /// Opens what [`Vault::seal_bytes`] sealed for `field`.
    pub fn open_bytes(&self, field: &str, stored: &[u8]) -> Result<Vec<u8>, VaultError> {
        // The header is three colon-terminated text parts; the rest is binary.
        let mut colons = stored.iter().enumerate().filter(|(_, b)| **b == b':').map(|(i, _)| i);
        let (Some(_), Some(_), Some(end)) = (colons.next(), colons.next(), colons.next()) else {
            return Err(VaultError::Damaged);
        };
        let header = std::str::from_utf8(&stored[..end]).map_err(|_| VaultError::Damaged)?;
        let Some((_, data_key, _)) = self.parts(&format!("{header}:"))? else { return Err(VaultError::Damaged) };
        let body = &stored[end + 1..];
        if body.len() < 12 + 16 {
            return Err(VaultError::Damaged);
        }
        let (nonce, sealed) = body.split_at(12);
        Aes256Gcm::new((&data_key).into())
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: field.as_bytes() })
            .map_err(|_| VaultError::Damaged)
    }

    /// The value re-sealed under the current key, or `None` when it already is.
    /// Only the data key is re-sealed; a plaintext value is sealed whole.
    pub fn rewrap(&self, field: &str, stored: &str) -> Result<Option<String>, VaultError> {
        match self.parts(stored)? {
            None => Ok(Some(self.seal(field, stored))),
            Some((id, _, _)) if id == self.current => Ok(None),
            Some((_, data_key, value)) => {
                // Check the value opens before replacing anything.
                open_with(&data_key, value, field.as_bytes())?;
                let wrapped = seal_with(&self.keys[&self.current], &data_key, self.current.as_bytes());
                Ok(Some(format!("{PREFIX}:{}:{wrapped}:{value}", self.current)))
            }
        }
    }
}

/// A sealed value taken apart: its key id, its data key, its sealed text.
type Opened<'s> = (&'s str, [u8; 32], &'s str);

static INSTALLED: RwLock<Option<Arc<Vault>>> = RwLock::new(None);

/// Makes the keys available to the synchronous services of this process.
pub fn install(vault: Vault) {
    if let Ok(mut slot) = INSTALLED.write() {
        *slot = Some(Arc::new(vault));
    }
}

pub fn installed() -> Result<Arc<Vault>, VaultError> {
    INSTALLED.read().ok().and_then(|v| v.clone()).ok_or(VaultError::NotInstalled)
}

/// Seals a field value with the installed keys.
pub fn seal(field: &str, plaintext: &str) -> Result<String, VaultError> {
    Ok(installed()?.seal(field, plaintext))
}

/// Opens a field value with the installed keys.
pub fn open(field: &str, stored: &str) -> Result<String, VaultError> {
    installed()?.open(field, stored)
}

/// The users' phone numbers (profile).
pub const PHONE: &str = "users.phone";

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn seals_opens_and_rotates_by_rewrapping() {
        let old = Vault::new(Some(&format!("k1:{}", key(1))), b"").unwrap();
        let sealed = old.seal("users.phone", "+44 20 7946 0958");
        assert!(sealed.starts_with("env1:k1:") && !sealed.contains("7946"));
        assert_eq!(old.open("users.phone", &sealed).unwrap(), "+44 20 7946 0958");
        assert!(matches!(old.open("users.email", &sealed), Err(VaultError::Damaged)), "bound to its field");
        assert_ne!(old.seal("users.phone", "+44 20 7946 0958"), sealed, "a fresh data key and nonce each time");

        let both = Vault::new(Some(&format!("k2:{},k1:{}", key(2), key(1))), b"").unwrap();
        let rotated = both.rewrap("users.phone", &sealed).unwrap().unwrap();
        assert!(rotated.starts_with("env1:k2:"));
        assert_eq!(rotated.rsplit(':').next(), sealed.rsplit(':').next(), "the value itself is not re-encrypted");
        assert_eq!(both.rewrap("users.phone", &rotated).unwrap(), None, "already current");
        let only_new = Vault::new(Some(&format!("k2:{}", key(2))), b"").unwrap();
        assert_eq!(only_new.open("users.phone", &rotated).unwrap(), "+44 20 7946 0958");
        assert!(matches!(only_new.open("users.phone", &sealed), Err(VaultError::UnknownKey(_))));
        assert_eq!(only_new.open("users.phone", "+1 555 0100").unwrap(), "+1 555 0100", "legacy plaintext reads");
    }

    #[test]
    fn bad_key_lists_are_refused() {
        for bad in [
            "k1",
            "k1:notbase64!",
            &format!("k1:{}", base64::engine::general_purpose::STANDARD.encode([0u8; 16])),
            "bad id:AAAA",
        ] {
            assert!(Vault::new(Some(bad), b"").is_err(), "{bad}");
        }
        assert_eq!(Vault::new(None, b"secret").unwrap().current_key(), "s1");
    }
}

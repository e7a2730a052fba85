//! Password hashing with argon2id (ACC-2). Hashing is deliberately slow, so it
//! runs on the blocking pool, never on the async executor.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};

/// A hash of a throwaway password, verified against when no account matches so
/// that "no such account" and "wrong password" take the same time.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0VfvkKfTgm7B2DUm8Mu3OxK7l0qOhOO7Lr2d8Yl0xZM";

pub fn hash_blocking(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

pub fn verify_blocking(password: &str, hash: Option<&str>) -> bool {
    let stored = hash.unwrap_or(DECOY_HASH);
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && hash.is_some()
}

pub async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await.map_err(|e| e.to_string())?
}

pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&password, hash.as_deref())).await.unwrap_or(false)
}

//! User passwords: argon2id hashes (PHC strings) in the store, checked for
//! SASL PLAIN inside PT-TLS. Hashing is slow on purpose (argon2's default
//! cost, 19 MiB and 2 passes), so the check runs off the async threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use pki::rand::SecureRandom;

/// A PHC string for `password` with a fresh 16-byte salt.
pub fn hash_password(password: &str, rng: &dyn SecureRandom) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)
        .map_err(|_| "no randomness for the salt".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `hash` (argon2's comparison is constant-time).
/// An unknown user is checked against a fixed hash, so the answer takes as
/// long as for a known one.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    // argon2id of "not a password" with default parameters.
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$dGhpcyBpcyBhIHNhbHQ$6Y3qR9Q7dQc4w2u8l2n7b0kZ3G1dQ2c6pX9h7v3yK0A";
    let known = hash.is_some();
    let Ok(parsed) = PasswordHash::new(hash.unwrap_or(DUMMY)) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    known && ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let rng = pki::rand::SystemRandom::new();
        let h = hash_password("correct horse", &rng).unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(Some(&h), "correct horse"));
        assert!(!verify_password(Some(&h), "correct horse "));
        assert!(!verify_password(None, "correct horse"));
        assert!(!verify_password(Some("not a hash"), "x"));
        assert_ne!(h, hash_password("correct horse", &rng).unwrap(), "salted");
    }
}

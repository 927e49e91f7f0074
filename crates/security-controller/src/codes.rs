//! PIN codes, stored as Argon2id hashes in PHC string form (`$argon2id$v=19$m=…`).
//!
//! `security-controller hash-pin` prints the hash of a PIN for the config file; the PIN itself is
//! never stored, logged, or put in an error message.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Why a PIN cannot be hashed. Never contains the PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a PIN is 4 to 12 digits")]
    BadPin,
    #[error("a tag's id is 4 to 64 letters, digits, `:` or `-` (as the reader sends it)")]
    BadTag,
    #[error("cannot hash the PIN: {0}")]
    Hash(String),
}

/// Hashes `pin` with Argon2id's default parameters and a random salt.
pub fn hash_pin(pin: &str) -> Result<String, CodeError> {
    hash_pin_with(pin, Params::default())
}

/// Hashes with explicit parameters (tests use cheap ones; verification reads them from the hash).
pub fn hash_pin_with(pin: &str, params: Params) -> Result<String, CodeError> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::BadPin);
    }
    hash_with(pin, params)
}

/// Hashes a tag's id (an RFID or NFC reader's `04A2B3C4`) as a PIN is hashed, in upper case (the
/// bridge sends every reader's id so: readers differ in the case of their hex).
pub fn hash_tag(tag: &str) -> Result<String, CodeError> {
    hash_tag_with(tag, Params::default())
}

/// [`hash_tag`] with explicit parameters.
pub fn hash_tag_with(tag: &str, params: Params) -> Result<String, CodeError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b':' || b == b'-';
    if !(4..=64).contains(&tag.len()) || !tag.bytes().all(allowed) {
        return Err(CodeError::BadTag);
    }
    hash_with(&tag.to_ascii_uppercase(), params)
}

fn hash_with(secret: &str, params: Params) -> Result<String, CodeError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CodeError::Hash(e.to_string()))
}

/// Whether `pin` matches `phc_hash`. A malformed hash matches nothing.
pub fn verify_pin(pin: &str, phc_hash: &str) -> bool {
    match PasswordHash::new(phc_hash) {
        Ok(hash) => Argon2::default().verify_password(pin.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// Whether `phc_hash` is a usable hash.
pub fn is_valid_hash(phc_hash: &str) -> bool {
    PasswordHash::new(phc_hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// Cheap parameters for tests: hashing must not dominate a test suite.
#[doc(hidden)]
pub fn test_params() -> Params {
    Params::new(8, 1, 1, None).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hash = hash_pin_with("1234", test_params()).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("1234"));
        assert!(verify_pin("1234", &hash));
        assert!(!verify_pin("1235", &hash));
        assert!(!verify_pin("", &hash));
        assert!(is_valid_hash(&hash));
    }

    #[test]
    fn two_hashes_of_one_pin_differ_by_salt() {
        let a = hash_pin_with("4321", test_params()).unwrap();
        let b = hash_pin_with("4321", test_params()).unwrap();
        assert_ne!(a, b);
        assert!(verify_pin("4321", &a) && verify_pin("4321", &b));
    }

    #[test]
    fn bad_pins_and_hashes_are_refused_without_echo() {
        for bad in ["123", "1234567890123", "12a4", "", "12 34"] {
            let err = hash_pin_with(bad, test_params()).unwrap_err().to_string();
            assert_eq!(err, "a PIN is 4 to 12 digits");
        }
        assert!(!verify_pin("1234", "not a hash"));
        assert!(!verify_pin("1234", "$argon2id$v=19$m=8,t=1,p=1$broken"));
        assert!(!is_valid_hash("plain-1234"));
    }
}

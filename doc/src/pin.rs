//! Staff PINs as the hall's devices and the relay keep them: only an Argon2id hash in PHC form
//! (salt and parameters inside), never the PIN. One place for the rule, so that a hash a hall PC
//! writes is the one the relay checks when it verifies a sign-in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

/// A PIN that is not 4 to 8 digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a PIN is 4 to 8 digits")]
pub struct BadPin;

/// Argon2id with 19 MiB and two passes (OWASP's first recommended setting): about 50 ms to
/// check one PIN on a hall PC, and the same for every guess of whoever copied the hashes. A
/// PIN of four to eight digits is weak however it is hashed, which is why wrong PINs are also
/// slowed down where they are typed (the app and the relay) and the hashes never leave hall
/// devices.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `pin` has a PIN's shape: 4 to 8 ASCII digits.
pub fn check_pin_shape(pin: &str) -> Result<(), BadPin> {
    if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadPin);
    }
    Ok(())
}

/// The PHC string of `pin`'s Argon2id hash with a fresh random salt.
pub fn hash_pin(pin: &str) -> Result<String, BadPin> {
    check_pin_shape(pin)?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| BadPin)?;
    let hash = hasher().hash_password(pin.as_bytes(), &salt).map_err(|_| BadPin)?;
    Ok(hash.to_string())
}

/// Whether `pin` matches the PHC string `hash`. A hash that does not parse matches nothing.
pub fn pin_matches(pin: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    hasher().verify_password(pin.as_bytes(), &parsed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_pin_only() {
        let hash = hash_pin("2580").unwrap();
        assert!(hash.starts_with("$argon2id$") && !hash.contains("2580"));
        assert!(pin_matches("2580", &hash));
        assert!(!pin_matches("2581", &hash));
        assert!(!pin_matches("2580", "not a hash"));
        assert_eq!(hash_pin("12"), Err(BadPin));
        assert_eq!(hash_pin("12a4"), Err(BadPin));
    }
}

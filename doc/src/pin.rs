//! Staff PINs as the hall's devices and the relay keep them: only an Argon2id hash in PHC form
//! (salt and parameters inside), never the PIN. One place for the rule, so that a hash a hall PC
//! writes is the one the relay checks when it verifies a sign-in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use std::time::Duration;

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

/// A 256-bit key derived from `pin` and `salt` by the same Argon2id setting: what unlocks a
/// device's store (the key that encrypts it is wrapped by this one). On a cheap phone (a
/// Cortex-A53 at 1.4 GHz is about five times slower than a PC) it is estimated at five times
/// this machine's measured figure, `unlock_with_pin_ms` of `gridwalk-bench encryption` (13 to
/// 15 ms in release on the 2-core build machine, `bench/results/encryption-release-2026-12-06*.json`):
/// well inside the 300 ms an unlock may take.
pub fn derive_key(pin: &str, salt: &[u8; 16]) -> Result<[u8; 32], BadPin> {
    check_pin_shape(pin)?;
    let mut key = [0u8; 32];
    hasher().hash_password_into(pin.as_bytes(), salt, &mut key).map_err(|_| BadPin)?;
    Ok(key)
}

/// Wrong PINs allowed in a row before attempts are slowed down.
pub const FREE_ATTEMPTS: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_secs(30);
const LONGEST_DELAY: Duration = Duration::from_secs(3600);

/// How long the next PIN attempt must still wait at `now` (milliseconds since the epoch), after
/// `wrong` wrong PINs in a row, the last at `last`: nothing for the first [`FREE_ATTEMPTS`], then
/// a delay that doubles with each further one (30 s, 1 min, 2 min… at most an hour). One rule for
/// a staff sign-in on a hall PC and for unlocking a walker's phone.
pub fn wrong_pin_wait(wrong: u32, last: Option<i64>, now: i64) -> Option<Duration> {
    let last = last?;
    if wrong < FREE_ATTEMPTS {
        return None;
    }
    let delay = FIRST_DELAY.saturating_mul(1 << (wrong - FREE_ATTEMPTS).min(7)).min(LONGEST_DELAY);
    // A clock set back counts as no time passed.
    let elapsed = Duration::from_millis(u64::try_from(now.saturating_sub(last)).unwrap_or(0));
    delay.checked_sub(elapsed).filter(|d| !d.is_zero())
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

    #[test]
    fn a_derived_key_depends_on_pin_and_salt() {
        let salt = [7u8; 16];
        let key = derive_key("2580", &salt).unwrap();
        assert_eq!(key, derive_key("2580", &salt).unwrap());
        assert_ne!(key, derive_key("2581", &salt).unwrap());
        assert_ne!(key, derive_key("2580", &[8u8; 16]).unwrap());
        assert_eq!(derive_key("25", &salt), Err(BadPin));
    }

    #[test]
    fn wrong_pins_wait_longer_each_time_after_five() {
        assert_eq!(wrong_pin_wait(4, Some(0), 0), None);
        assert_eq!(wrong_pin_wait(5, Some(0), 0), Some(Duration::from_secs(30)));
        assert_eq!(wrong_pin_wait(6, Some(0), 10_000), Some(Duration::from_secs(50)));
        assert_eq!(wrong_pin_wait(5, Some(0), 30_000), None);
        assert_eq!(wrong_pin_wait(30, Some(0), 0), Some(Duration::from_secs(3600)));
        // A clock set back gives no fresh tries.
        assert_eq!(wrong_pin_wait(5, Some(10_000), 0), Some(Duration::from_secs(30)));
    }
}

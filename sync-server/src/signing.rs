//! The relay's signing key (Ed25519): what a device checks before it wipes itself.
//!
//! A revoked device is told so (401 `device_revoked`) and then destroys its key and its records.
//! Over plain HTTP on a hall's network anyone able to answer in the relay's place could say that
//! to every phone. So the device asks for proof (`GET /v1/revocation`, with its own token) and
//! checks the relay's signature against the key the relay gave it at enrolment
//! ([`gridwalk_protocol::EnrollResponse::relay_key`]); a device wipes itself only on a signature
//! that holds. The key is made once and kept in the relay's store, shared by every relay on one
//! database.

use std::sync::OnceLock;

use ed25519_dalek::{Signer, SigningKey};
use gridwalk_protocol::{revocation_message, RevocationProof};
use rand::RngCore;

use crate::relay::{sha256, Relay, RelayError, RelayResult};

/// The setting that holds the signing key's seed, hex.
const SIGNING_SETTING: &str = "signing_key";

/// The signing key, cached once read: it never changes once stored.
pub(crate) struct RelaySigningKey(OnceLock<SigningKey>);

impl RelaySigningKey {
    pub(crate) fn new() -> Self {
        RelaySigningKey(OnceLock::new())
    }
}

impl Relay {
    fn signing_key(&self) -> RelayResult<&SigningKey> {
        if let Some(key) = self.signing.0.get() {
            return Ok(key);
        }
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let stored = self.store().setting_or_insert(SIGNING_SETTING, &hex::encode(seed))?;
        let damaged = || RelayError::new(500, "signing_key_damaged", "the relay's signing key is damaged");
        let bytes: [u8; 32] = hex::decode(stored).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
            tracing::error!("the relay's stored signing key does not read");
            damaged()
        })?;
        Ok(self.signing.0.get_or_init(|| SigningKey::from_bytes(&bytes)))
    }

    /// The relay's public key, hex, as a device keeps it from its enrolment.
    pub fn relay_key(&self) -> RelayResult<String> {
        Ok(hex::encode(self.signing_key()?.verifying_key().as_bytes()))
    }

    /// The relay's signature over its escrow recipient (see
    /// `gridwalk_protocol::escrow_recipient_message`), hex.
    pub fn signed_escrow_recipient(&self) -> RelayResult<(String, String)> {
        let recipient = self.escrow_recipient()?;
        let signature = self.signing_key()?.sign(&gridwalk_protocol::escrow_recipient_message(&recipient));
        Ok((recipient, hex::encode(signature.to_bytes())))
    }

    /// The signed word that the device holding `token` is revoked; 403 `not_revoked` for a
    /// token of no revoked device.
    pub fn revocation_proof(&self, token: &str) -> RelayResult<RevocationProof> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RelayError::unauthorized());
        }
        let id = self
            .store()
            .revoked_device_by_token(&sha256(token.as_bytes()))?
            .ok_or_else(|| RelayError::new(403, "not_revoked", "this device is not revoked"))?;
        let signature = self.signing_key()?.sign(&revocation_message(&id));
        Ok(RevocationProof { device_id: id, signature: hex::encode(signature.to_bytes()) })
    }
}

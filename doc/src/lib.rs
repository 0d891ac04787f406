//! Gridwalk's documents and the rules that hold inside one: the header every document carries,
//! visits, requests and their closed loop (events and the fold that derives a status), meetings,
//! a grid's roster, the photos a document names, and time.
//!
//! This crate owns no storage and does no I/O. The device's store (`gridwalk-core`) and the relay
//! (`gridwalk-relay`) both read and check documents through it, so a document either side accepts
//! is one the other can read. See `ARCHITECTURE.md` at the repository root.

pub mod doc_view;
pub mod docs;
pub mod error;
pub mod incoming;
pub mod lifecycle;
pub mod meeting;
pub mod model;
pub mod numbers;
pub mod permissions;
pub mod photos;
pub mod pin;
pub mod privacy;
pub mod roster;
pub mod time;

use std::sync::Mutex;

use rand::RngCore;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

pub use error::{DocError, Result};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};

/// Who does something, from which device, and when (the device's time). Every change to a
/// document is made inside one.
pub struct ActionContext {
    /// The walker or staff member acting.
    pub actor: String,
    /// The device the change is made on; also its Automerge actor.
    pub device: String,
    /// The moment of the action, read from a clock by the caller.
    pub at: Timestamp,
    ids: IdSource,
}

enum IdSource {
    Random,
    Seeded(Box<Mutex<ChaCha8Rng>>),
}

impl ActionContext {
    pub fn new(actor: impl Into<String>, device: impl Into<String>, at: impl Into<Timestamp>) -> Self {
        ActionContext { actor: actor.into(), device: device.into(), at: at.into(), ids: IdSource::Random }
    }

    /// Ids drawn from a seeded generator, so a seeded demo town comes out the same every time.
    pub fn seeded(actor: impl Into<String>, device: impl Into<String>, at: impl Into<Timestamp>, seed: u64) -> Self {
        ActionContext {
            ids: IdSource::Seeded(Box::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed)))),
            ..ActionContext::new(actor, device, at)
        }
    }

    /// The same actor and id source at another moment.
    pub fn at(&mut self, at: impl Into<Timestamp>) -> &mut Self {
        self.at = at.into();
        self
    }

    /// A fresh random (version 4) UUID, as text.
    pub fn new_id(&self) -> String {
        let mut bytes = [0u8; 16];
        match &self.ids {
            IdSource::Random => rand::rng().fill_bytes(&mut bytes),
            IdSource::Seeded(rng) => {
                rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).fill_bytes(&mut bytes)
            }
        }
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }
}

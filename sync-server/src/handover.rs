//! Handing a forgotten-PIN phone's unsent work to the same walker's new enrolment (issue 14).
//!
//! A walker's phone store is encrypted with a key only her PIN unwraps. When she forgets the
//! PIN, her phone sets the locked store aside and is enrolled again; what she had recorded but
//! not yet sent would be lost with it. So, while the phone still knows its key, it also wraps it
//! to the relay's **escrow key** (an age X25519 key pair the relay makes once and keeps in its
//! store, shared by every relay on one database): an [`EscrowedStoreKey`], kept in the phone's
//! key file and useless without the relay.
//!
//! After the forgotten PIN:
//!
//! 1. The new enrolment sends the escrowed key with a reply recipient it made for this purpose
//!    (`POST /v1/handovers`). The relay opens it only to read which device it belongs to, and
//!    refuses unless that device was enrolled for the same walker as the new one. The key is
//!    not kept opened: the hand-over stands `pending`.
//! 2. An admin at a hall PC, with her own PIN, confirms that the person in front of her is that
//!    walker (`POST /v1/handovers/confirm`). Only then does the relay open the escrowed key and
//!    wrap it again to the reply recipient: `released`.
//! 3. The new enrolment fetches it (`GET /v1/handovers`), opens the old store, takes its unsent
//!    documents and photos into its own outbox, destroys the old store and says so
//!    (`POST /v1/handovers/done`). The relay then records the old device as revoked and wiped,
//!    and from a confirmed hand-over on it accepts the old device's request numbers from the
//!    new one (they are the walker's, given on her old enrolment).
//!
//! Someone with only the phone learns nothing: the escrowed key opens with the relay's key
//! alone, and the relay releases it to a new enrolment of the same walker after a person at the
//! hall confirmed her. Someone with the relay's database and a copied phone can open the store;
//! the relay's backups are encrypted for that reason.

use std::sync::OnceLock;

use age::secrecy::ExposeSecret;
use gridwalk_protocol::{ConfirmHandoverRequest, EscrowedStoreKey, HandoverDone, HandoverRequest, HandoverView};

use crate::relay::{Relay, RelayError, RelayResult};
use crate::store::{Device, Handover, HandoverState, Role};

/// The setting that holds the escrow identity (`AGE-SECRET-KEY-1…`).
const ESCROW_SETTING: &str = "escrow_identity";

/// The largest escrowed key or reply recipient the relay reads: both are a few hundred bytes.
const MAX_HANDOVER_FIELD: usize = 4096;

fn handover_refused(why: impl Into<String>) -> RelayError {
    RelayError::new(403, "handover_forbidden", why)
}

fn not_found(from: &str) -> RelayError {
    RelayError::new(404, "no_such_handover", format!("no hand-over of device {from} was asked for"))
}

/// The escrow identity, cached once read: it never changes once stored.
pub(crate) struct EscrowKey(OnceLock<age::x25519::Identity>);

impl EscrowKey {
    pub(crate) fn new() -> Self {
        EscrowKey(OnceLock::new())
    }
}

impl Relay {
    fn escrow_identity(&self) -> RelayResult<&age::x25519::Identity> {
        if let Some(identity) = self.escrow.0.get() {
            return Ok(identity);
        }
        let candidate = age::x25519::Identity::generate();
        let stored = self.store().setting_or_insert(ESCROW_SETTING, candidate.to_string().expose_secret())?;
        let identity = stored.parse::<age::x25519::Identity>().map_err(|e| {
            tracing::error!("the relay's stored escrow key does not read: {e}");
            RelayError::new(500, "escrow_key_damaged", "the relay's escrow key is damaged")
        })?;
        Ok(self.escrow.0.get_or_init(|| identity))
    }

    /// The escrow recipient (`age1…`) a walker's phone wraps its store key to.
    pub fn escrow_recipient(&self) -> RelayResult<String> {
        Ok(self.escrow_identity()?.to_public().to_string())
    }

    /// Opens an escrowed store key (hex of an age file) with the escrow identity.
    fn open_escrowed(&self, escrowed: &str) -> RelayResult<EscrowedStoreKey> {
        let bad = |why: String| RelayError::bad("bad_escrowed_key", why);
        if escrowed.len() > MAX_HANDOVER_FIELD * 2 {
            return Err(bad("an escrowed key is a few hundred bytes".into()));
        }
        let bytes = hex::decode(escrowed).map_err(|_| bad("the escrowed key is not hex".into()))?;
        let plain = age::decrypt(self.escrow_identity()?, &bytes)
            .map_err(|_| bad("the escrowed key was not wrapped to this relay's escrow key".into()))?;
        serde_json::from_slice(&plain).map_err(|e| bad(format!("the escrowed key does not read: {e}")))
    }

    fn view(&self, h: &Handover, for_device: Option<&str>) -> RelayResult<HandoverView> {
        let devices = self.devices()?;
        let name = |id: &str| devices.iter().find(|d| d.id == id).map(|d| d.name.clone()).unwrap_or_default();
        Ok(HandoverView {
            from_device: h.from_device.clone(),
            from_device_name: name(&h.from_device),
            to_device: h.to_device.clone(),
            to_device_name: name(&h.to_device),
            walker: h.walker.clone(),
            state: h.state.as_str().to_string(),
            requested_at: h.requested_at,
            confirmed_by: h.confirmed_by.clone(),
            confirmed_at: h.confirmed_at,
            done_at: h.done_at,
            taken_documents: h.taken_documents,
            taken_photos: h.taken_photos,
            released_key: h.released_key.clone().filter(|_| Some(h.to_device.as_str()) == for_device),
        })
    }

    /// A walker's new enrolment asks for the work in a store set aside after a forgotten PIN.
    /// Asked again (a retry, a restart) it answers the hand-over as it stands.
    pub fn request_handover(&self, device: &Device, req: &HandoverRequest) -> RelayResult<HandoverView> {
        let Some(walker) = device.walker.clone().filter(|_| device.role == Role::Walker) else {
            return Err(handover_refused("only a walker's phone takes over the work of her earlier phone store"));
        };
        if req.reply_recipient.len() > MAX_HANDOVER_FIELD
            || req.reply_recipient.parse::<age::x25519::Recipient>().is_err()
        {
            return Err(RelayError::bad("bad_reply_recipient", "the reply recipient is not an age X25519 recipient"));
        }
        let escrowed = self.open_escrowed(&req.escrowed)?;
        if escrowed.device_id == device.id {
            return Err(RelayError::bad("bad_escrowed_key", "a device does not hand its own store over to itself"));
        }
        let old_walker = self.store().device_walker(&escrowed.device_id)?;
        if old_walker.as_deref() != Some(walker.as_str()) {
            return Err(handover_refused(
                "that store belongs to another walker's phone (or to no phone this relay enrolled); \
                 its work goes only to a new phone of the same walker",
            ));
        }
        let handover = Handover {
            from_device: escrowed.device_id,
            to_device: device.id.clone(),
            walker,
            state: HandoverState::Pending,
            requested_at: self.now(),
            escrowed: req.escrowed.clone(),
            reply_recipient: req.reply_recipient.clone(),
            confirmed_by: None,
            confirmed_at: None,
            released_key: None,
            done_at: None,
            taken_documents: None,
            taken_photos: None,
        };
        let mut stored = self.store().insert_handover(&handover)?;
        if stored.to_device != device.id {
            // Asked for by an earlier enrolment of hers that has since gone (revoked, or itself
            // set aside and handed over): the work goes to this one instead, once the hall
            // confirms again. Never while that enrolment is in use.
            let earlier_gone = self.devices()?.iter().any(|d| d.id == stored.to_device && d.revoked_at.is_some());
            if !earlier_gone || stored.state == HandoverState::Done || stored.walker != handover.walker {
                return Err(handover_refused(format!(
                    "the work of device {} was already asked for by another enrolment",
                    stored.from_device
                )));
            }
            let expected = stored.state;
            let rebound = Handover { requested_at: stored.requested_at, ..handover.clone() };
            if !self.store().update_handover(expected, &rebound)? {
                return Err(RelayError::new(409, "conflict", "the hand-over changed meanwhile; ask again"));
            }
            tracing::info!(from = %rebound.from_device, to = %device.id, "a hand-over moved to the walker's newer enrolment");
            stored = rebound;
        }
        if stored.requested_at == handover.requested_at && stored.state == HandoverState::Pending {
            tracing::info!(from = %stored.from_device, to = %device.id, "a hand-over after a forgotten PIN waits for the hall");
        }
        self.view(&stored, Some(&device.id))
    }

    /// The hand-overs a device may see: a hall PC every one, a walker's phone those to itself.
    pub fn handovers(&self, device: &Device) -> RelayResult<Vec<HandoverView>> {
        let all = self.store().handovers()?;
        all.iter()
            .filter(|h| device.role != Role::Walker || h.to_device == device.id)
            .map(|h| self.view(h, Some(&device.id)))
            .collect()
    }

    /// An admin at a hall PC confirms, with her own PIN, that the walker is who the hand-over
    /// says: the old store's key is released to the new enrolment.
    pub fn confirm_handover(&self, device: &Device, req: &ConfirmHandoverRequest) -> RelayResult<HandoverView> {
        if device.role == Role::Walker {
            return Err(handover_refused("a hand-over is confirmed at a hall PC, not on a walker's phone"));
        }
        let actor = self.asker(&req.actor, &req.actor_pin)?;
        if actor.role != gridwalk_doc::model::Role::Admin {
            return Err(handover_refused(format!("{} is no admin: only an admin confirms a hand-over", req.actor)));
        }
        self.release_handover(&req.from_device, &actor.id)
    }

    /// Releases a pending hand-over's key to its new enrolment, confirmed by `by` (an admin at a
    /// hall PC, or the relay's operator at its command line).
    pub fn release_handover(&self, from_device: &str, by: &str) -> RelayResult<HandoverView> {
        let store = self.store();
        let current = store
            .handovers()?
            .into_iter()
            .find(|h| h.from_device == from_device)
            .ok_or_else(|| not_found(from_device))?;
        if current.state != HandoverState::Pending {
            return self.view(&current, None);
        }
        let escrowed = self.open_escrowed(&current.escrowed)?;
        let recipient = current.reply_recipient.parse::<age::x25519::Recipient>().map_err(|_| {
            RelayError::bad("bad_reply_recipient", "the stored reply recipient is not an age X25519 recipient")
        })?;
        let plain = serde_json::to_vec(&escrowed)
            .map_err(|e| RelayError::new(500, "internal", format!("cannot write the released key: {e}")))?;
        let wrapped = age::encrypt(&recipient, &plain)
            .map_err(|e| RelayError::new(500, "internal", format!("cannot wrap the released key: {e}")))?;
        let next = Handover {
            state: HandoverState::Released,
            confirmed_by: Some(by.to_string()),
            confirmed_at: Some(self.now()),
            released_key: Some(hex::encode(wrapped)),
            ..current
        };
        if !store.update_handover(HandoverState::Pending, &next)? {
            // Another relay or another admin confirmed it at the same moment: theirs stands.
            let now = store
                .handovers()?
                .into_iter()
                .find(|h| h.from_device == from_device)
                .ok_or_else(|| not_found(from_device))?;
            return self.view(&now, None);
        }
        tracing::info!(from = %from_device, to = %next.to_device, by, "a hand-over was confirmed at the hall");
        self.view(&next, None)
    }

    /// The new enrolment took the old store's work over and destroyed it: the old device is
    /// recorded as revoked and wiped, so `gridwalk-relay devices` shows where its work went.
    pub fn finish_handover(&self, device: &Device, req: &HandoverDone) -> RelayResult<HandoverView> {
        let store = self.store();
        let current = store
            .handovers()?
            .into_iter()
            .find(|h| h.from_device == req.from_device)
            .ok_or_else(|| not_found(&req.from_device))?;
        if current.to_device != device.id {
            return Err(handover_refused("only the enrolment that asked for a hand-over finishes it"));
        }
        match current.state {
            HandoverState::Done => {
                // A retry after the relay failed between recording it done and revoking the old
                // device: both are idempotent, so they run again.
                store.revoke(&current.from_device, current.done_at.unwrap_or_else(|| self.now()))?;
                store.record_wipe(&current.from_device, current.done_at.unwrap_or_else(|| self.now()))?;
                return self.view(&current, Some(&device.id));
            }
            HandoverState::Pending => {
                return Err(RelayError::new(
                    409,
                    "handover_not_confirmed",
                    "the hall has not confirmed this hand-over yet",
                ))
            }
            HandoverState::Released => {}
        }
        let now = self.now();
        let next = Handover {
            state: HandoverState::Done,
            done_at: Some(now),
            released_key: None,
            taken_documents: Some(req.taken_documents),
            taken_photos: Some(req.taken_photos),
            ..current
        };
        if store.update_handover(HandoverState::Released, &next)? {
            store.revoke(&next.from_device, now)?;
            store.record_wipe(&next.from_device, now)?;
            tracing::info!(
                from = %next.from_device, to = %device.id, documents = req.taken_documents, photos = req.taken_photos,
                "a forgotten-PIN store's work was taken over and the store destroyed"
            );
        }
        let now = store
            .handovers()?
            .into_iter()
            .find(|h| h.from_device == req.from_device)
            .ok_or_else(|| not_found(&req.from_device))?;
        self.view(&now, Some(&device.id))
    }

    /// Every hand-over, for the relay's operator (`gridwalk-relay handovers`): no keys.
    pub fn all_handovers(&self) -> RelayResult<Vec<HandoverView>> {
        self.store().handovers()?.iter().map(|h| self.view(h, None)).collect()
    }

    /// The short number of `old_device` when its work was handed over to `device` and the hall
    /// confirmed it: its request numbers are then accepted from `device` too.
    pub(crate) fn handed_over_number(&self, device: &Device, old_device: &str) -> RelayResult<Option<Option<u32>>> {
        let confirmed = self
            .store()
            .handovers()?
            .into_iter()
            .any(|h| h.from_device == old_device && h.to_device == device.id && h.state != HandoverState::Pending);
        if !confirmed {
            return Ok(None);
        }
        let number = self.devices()?.into_iter().find(|d| d.id == old_device).and_then(|d| d.number);
        Ok(Some(number.and_then(|n| u32::try_from(n).ok())))
    }
}

//! Taking over the unsent work of a store set aside after a forgotten PIN (issue 14).
//!
//! Once the hall confirmed the hand-over and the relay released the old store's key (see
//! `keys::HandoverKey` and the relay's `handover` module), the walker's new enrolment opens the
//! old store and takes into its own what never reached the relay: every document with changes
//! in the old outbox, whole, and every photo the relay never acknowledged. What the relay holds
//! already comes back with the new enrolment's pull.

use rusqlite::params;

use super::Store;
use crate::error::{CoreError, Result};
use crate::photo::PhotoError;
use gridwalk_doc::docs;
use gridwalk_doc::time::Timestamp;

/// What a new enrolment took over from its walker's earlier store.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TakenOver {
    /// Documents with unsent changes, now in this store's outbox.
    pub documents: u32,
    /// Photos the relay never acknowledged, now waiting to be uploaded from here.
    pub photos: u32,
    /// Unsent documents of grids this enrolment does not hold (the hall moved the walker in
    /// between): the relay would refuse them from this device, so they are left behind, counted.
    pub outside_grids: u32,
    /// Lines of the old store's access log the relay had not received (who saw a full number,
    /// who exported): kept here, so the admin's record has no gap.
    pub access_lines: u32,
}

impl Store {
    /// Escrows this store's key with the relay's escrow key `recipient` (see `keys::escrow`),
    /// under this device's id. False when it was escrowed to it already, or when the store is
    /// not encrypted (nothing to escrow).
    pub fn escrow_key(&self, recipient: &str) -> Result<bool> {
        let Some(key) = &self.key else { return Ok(false) };
        let link = self.relay_link()?.ok_or(CoreError::NotJoined)?;
        super::keys::escrow(&self.path, key, &link.device_id, recipient)
    }

    /// Takes the unsent documents and photos of `old` (the walker's earlier store, opened with
    /// its released key) into this store and its outbox. Documents are merged, so taking over
    /// twice (a crash between the take-over and the relay hearing of it) changes nothing the
    /// second time but the outbox. Photos go first, so no document here names a photo this
    /// store would then look for on the relay.
    pub fn take_over_unsent(&self, old: &Store, at: Timestamp) -> Result<TakenOver> {
        let link = self.relay_link()?.ok_or(CoreError::NotJoined)?;
        let mut taken = TakenOver::default();
        for hash in old.unacknowledged_photos().map_err(photo_error)? {
            let Some(photo) = old.stored_photo(&hash).map_err(photo_error)? else { continue };
            let bytes = old.photo_bytes(&hash).map_err(photo_error)?;
            let thumb = old.thumbnail_bytes(&hash).map_err(photo_error)?;
            let blobs = self.blobs();
            self.photo_action(|conn| {
                blobs.put(&photo.hash, &bytes)?;
                blobs.put(&photo.thumb_hash, &thumb)?;
                conn.prepare_cached(
                    "INSERT INTO photos (hash, bytes, width, height, thumb_hash, thumb_bytes, thumb_width,
                         thumb_height, created_at, acknowledged_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)
                     ON CONFLICT (hash) DO NOTHING",
                )?
                .execute(params![
                    photo.hash,
                    photo.bytes as i64,
                    photo.width,
                    photo.height,
                    photo.thumb_hash,
                    photo.thumb_bytes as i64,
                    photo.thumb_width,
                    photo.thumb_height,
                    photo.created_at.millis(),
                ])?;
                conn.execute("DELETE FROM photo_wanted WHERE hash = ?1", [&photo.hash])?;
                Ok(())
            })
            .map_err(photo_error)?;
            taken.photos += 1;
        }
        // The access log first of all: what was shown or exported on the old store stays on record.
        for line in old.unsent_access(usize::MAX >> 1)? {
            self.connection().execute(
                "INSERT INTO access_log (at, person, device, kind, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![line.at, line.person, line.device, line.kind, line.subject, line.detail],
            )?;
            taken.access_lines += 1;
        }
        let ids: Vec<String> = old
            .connection()
            .prepare("SELECT DISTINCT doc_id FROM outbox ORDER BY doc_id")?
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        for id in ids {
            let bytes = old.document_bytes(&id)?;
            let grid = docs::read_header(
                &automerge::AutoCommit::load(&bytes)
                    .map_err(|e| CoreError::DamagedDocument { id: id.clone(), message: e.to_string() })?,
            )?
            .grid;
            if !link.grids.is_empty() && !link.grids.contains(&grid) {
                tracing::warn!(doc = %id, grid = %grid, "an unsent document of a grid this phone no longer holds is left behind");
                taken.outside_grids += 1;
                continue;
            }
            let received = self.decode_remote(&id, &bytes)?;
            self.atomically(|conn| {
                Self::merge_remote(conn, &id, &bytes, received)?;
                Self::push_outbox(conn, &id, &bytes, at)
            })?;
            taken.documents += 1;
        }
        Ok(taken)
    }
}

fn photo_error(e: PhotoError) -> CoreError {
    match e {
        PhotoError::Core(e) => *e,
        other => CoreError::HandoverPhoto(other.to_string()),
    }
}

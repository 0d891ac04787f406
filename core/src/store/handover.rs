//! Taking over the unsent work of a store set aside after a forgotten PIN (issue 14).
//!
//! Once the hall confirmed the hand-over and the relay released the old store's key (see
//! `keys::HandoverKey` and the relay's `handover` module), the walker's new enrolment opens the
//! old store and takes into its own what never reached the relay: every document with changes
//! in the old outbox, whole, every photo the relay never acknowledged, the camera photos still
//! waiting to be shrunk, the half-filled forms (drafts) and the access-log lines not yet sent.
//! What the relay holds already comes back with the new enrolment's pull.

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
    /// Half-filled forms, where this store has none of its own under the same name.
    pub drafts: u32,
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
        // A take-over run again (the phone stopped before it noted it done) adds no line twice.
        for line in old.unsent_access(usize::MAX >> 1)? {
            taken.access_lines += self.connection().execute(
                "INSERT INTO access_log (at, person, device, kind, subject, detail)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS (SELECT 1 FROM access_log
                    WHERE at = ?1 AND person = ?2 AND device = ?3 AND kind = ?4 AND subject = ?5 AND detail = ?6)",
                params![line.at, line.person, line.device, line.kind, line.subject, line.detail],
            )? as u32;
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
        // Camera photos still waiting to be shrunk, for the records now here: this store's photo
        // worker processes them like its own (counted with the photos).
        let queued: Vec<QueuedRow> = old
            .connection()
            .prepare(
                "SELECT doc_id, role, file_name, bytes, lat, lon, accuracy_m, actor, device, queued_at
                   FROM photo_queue ORDER BY id",
            )?
            .query_map([], |r| {
                Ok(QueuedRow {
                    doc_id: r.get(0)?,
                    role: r.get(1)?,
                    file_name: r.get(2)?,
                    bytes: r.get(3)?,
                    lat: r.get(4)?,
                    lon: r.get(5)?,
                    accuracy_m: r.get(6)?,
                    actor: r.get(7)?,
                    device: r.get(8)?,
                    queued_at: r.get(9)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        for q in queued {
            let here =
                self.connection().prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?.exists([&q.doc_id])?;
            if !here {
                continue;
            }
            taken.photos += self.connection().execute(
                "INSERT INTO photo_queue (doc_id, role, file_name, bytes, lat, lon, accuracy_m, actor, device, queued_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE NOT EXISTS (SELECT 1 FROM photo_queue
                    WHERE doc_id = ?1 AND file_name = ?3 AND device = ?9 AND queued_at = ?10)",
                params![
                    q.doc_id,
                    q.role,
                    q.file_name,
                    q.bytes,
                    q.lat,
                    q.lon,
                    q.accuracy_m,
                    q.actor,
                    q.device,
                    q.queued_at
                ],
            )? as u32;
        }
        // Half-filled forms: one she started here since keeps its place.
        let drafts: Vec<(String, String, i64)> = old
            .connection()
            .prepare("SELECT key, value, updated_at FROM drafts ORDER BY key")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<_, _>>()?;
        for (key, value, updated_at) in drafts {
            taken.drafts += self.connection().execute(
                "INSERT OR IGNORE INTO drafts (key, value, updated_at) VALUES (?1, ?2, ?3)",
                params![key, value, updated_at],
            )? as u32;
        }
        Ok(taken)
    }
}

/// A camera photo waiting in the old store's queue.
struct QueuedRow {
    doc_id: String,
    role: String,
    file_name: String,
    bytes: Vec<u8>,
    lat: Option<f64>,
    lon: Option<f64>,
    accuracy_m: Option<f64>,
    actor: String,
    device: String,
    queued_at: i64,
}

fn photo_error(e: PhotoError) -> CoreError {
    match e {
        PhotoError::Core(e) => *e,
        other => CoreError::HandoverPhoto(other.to_string()),
    }
}

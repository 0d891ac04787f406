//! Photos that wait to be processed: the instant save.
//!
//! Shrinking a 12-megapixel photo takes seconds on a cheap phone, and a walker on a doorstep
//! should not wait for it. So a request (or a later "after" photo) is saved with its photos as
//! the camera wrote them, in the same transaction as the record itself: the document, its index
//! rows, its outbox entry and one `photo_queue` row per photo. A background worker then takes
//! the rows one at a time, shrinks each photo ([`ingest`]) outside any transaction, and attaches
//! it in one transaction that also deletes the row. Nothing is lost if the app is killed at any
//! point: a row is deleted only in the transaction that attached its photo, so the next start
//! finds it still waiting.
//!
//! The cheap checks (is it an image we read, is it too large) run at the tap, so a walker who
//! picked a video hears so at once; the rest (a file damaged in its middle) shows on the request
//! as "failed", with the reason and a retry.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{NewRequest, Store};
use crate::docs::GeoPoint;
use crate::error::CoreError;
use crate::photo::{ingest, precheck, Attachment, IngestOptions, PhotoError, PhotoRef, Role};
use crate::time::Timestamp;
use crate::ActionContext;

type PhotoResult<T> = Result<T, PhotoError>;

/// One photo as the walker picked it, to be saved with a record and processed later.
#[derive(Debug, Clone)]
pub struct PhotoToQueue<'a> {
    /// The file's name on the phone, shown while the photo waits ("IMG_2031.jpg").
    pub file_name: String,
    pub role: Role,
    pub bytes: &'a [u8],
    pub gps: Option<GeoPoint>,
}

/// Where a waiting photo stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum QueuedPhotoState {
    /// Waiting for the worker, or being processed now.
    Processing,
    /// Processing failed; the photo waits for a retry or to be discarded.
    Failed { code: String, message: String },
}

/// A photo saved with a record that is not attached to it yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueuedPhoto {
    pub id: i64,
    pub doc_id: String,
    pub role: Role,
    pub file_name: String,
    pub bytes: u64,
    pub queued_at: Timestamp,
    pub attempts: u32,
    #[serde(flatten)]
    pub state: QueuedPhotoState,
}

/// What processing one waiting photo came to.
#[derive(Debug)]
pub enum PhotoProcessed {
    /// Shrunk, stored and attached; the waiting row is gone.
    Attached(PhotoRef),
    /// The photo could not be read; the row stays, marked failed with this error.
    Failed(PhotoError),
    /// Nothing to do: the row was discarded or already processed meanwhile.
    Gone,
}

/// How many photos wait, and how many of those failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PhotoQueueCounts {
    pub processing: usize,
    pub failed: usize,
}

impl Store {
    /// 诉求 with photos, saved at once: raises the request and keeps its photos to be processed in
    /// the background, all in one transaction. The photos' cheap checks run first, so a file that
    /// is not a photo we can read refuses the whole save and nothing is written.
    pub fn raise_request_with_photos(
        &self,
        ctx: &ActionContext,
        request: NewRequest,
        photos: &[PhotoToQueue<'_>],
        options: &IngestOptions,
    ) -> PhotoResult<(String, Vec<QueuedPhoto>)> {
        for photo in photos {
            precheck_named(photo, options)?;
        }
        self.photo_action(|conn| {
            // Inside this transaction `raise_request` runs as a savepoint of it.
            let id = self.raise_request(ctx, request)?;
            let queued = photos.iter().map(|p| Self::insert_queued(conn, ctx, &id, p)).collect::<PhotoResult<_>>()?;
            Ok((id, queued))
        })
    }

    /// Keeps one photo for a visit or request that already exists, to be processed in the
    /// background (the hall's "after" photos, a photo added to a request later).
    pub fn queue_photo(
        &self,
        ctx: &ActionContext,
        doc_id: &str,
        photo: &PhotoToQueue<'_>,
        options: &IngestOptions,
    ) -> PhotoResult<QueuedPhoto> {
        precheck_named(photo, options)?;
        self.photo_action(|conn| {
            if Self::load_kind(conn, doc_id)?.is_none() {
                return Err(CoreError::NotFound { kind: "record", id: doc_id.to_string() }.into());
            }
            Self::insert_queued(conn, ctx, doc_id, photo)
        })
    }

    fn insert_queued(
        conn: &Connection,
        ctx: &ActionContext,
        doc_id: &str,
        photo: &PhotoToQueue<'_>,
    ) -> PhotoResult<QueuedPhoto> {
        if let Some(gps) = &photo.gps {
            gps.validate()?;
        }
        let file_name = display_name(&photo.file_name);
        conn.prepare_cached(
            "INSERT INTO photo_queue (doc_id, role, file_name, bytes, lat, lon, accuracy_m, actor, device, queued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            doc_id,
            photo.role.as_str(),
            file_name,
            photo.bytes,
            photo.gps.map(|g| g.lat),
            photo.gps.map(|g| g.lon),
            photo.gps.and_then(|g| g.accuracy_m),
            ctx.actor,
            ctx.device,
            ctx.at.millis(),
        ])?;
        Ok(QueuedPhoto {
            id: conn.last_insert_rowid(),
            doc_id: doc_id.to_string(),
            role: photo.role,
            file_name,
            bytes: photo.bytes.len() as u64,
            queued_at: ctx.at,
            attempts: 0,
            state: QueuedPhotoState::Processing,
        })
    }

    /// The photos of one record that are not attached yet, in the order they were taken.
    pub fn queued_photos(&self, doc_id: &str) -> PhotoResult<Vec<QueuedPhoto>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, doc_id, role, file_name, length(bytes), queued_at, attempts, failed_code, failed_message
             FROM photo_queue WHERE doc_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([doc_id], queued_row)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(QueuedRow::into_queued).collect()
    }

    /// How many photos wait on this device, and how many of them failed.
    pub fn photo_queue_counts(&self) -> PhotoResult<PhotoQueueCounts> {
        let (processing, failed): (i64, i64) = self.conn.query_row(
            "SELECT count(*) FILTER (WHERE failed_code IS NULL), count(*) FILTER (WHERE failed_code IS NOT NULL)
             FROM photo_queue",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(PhotoQueueCounts { processing: processing as usize, failed: failed as usize })
    }

    /// The oldest photo waiting to be processed (failed ones wait for a retry instead).
    pub fn next_queued_photo(&self) -> PhotoResult<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT id FROM photo_queue WHERE failed_code IS NULL ORDER BY id LIMIT 1", [], |r| r.get(0))
            .optional()?)
    }

    /// Processes one waiting photo: shrinks it outside any transaction, then stores and attaches
    /// it and deletes its row in one. The attachment carries the moment, person and device of
    /// the tap that saved it, not of the processing, so the record reads as the walker did it.
    /// A photo that cannot be read is marked failed and kept; a storage error is returned and
    /// leaves the row waiting, so the next attempt tries again.
    pub fn process_queued_photo(&self, id: i64, options: &IngestOptions) -> PhotoResult<PhotoProcessed> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT doc_id, role, bytes, lat, lon, accuracy_m, actor, device, queued_at
                 FROM photo_queue WHERE id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, Option<f64>>(4)?,
                    r.get::<_, Option<f64>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            })
            .optional()?;
        let Some((doc_id, role, bytes, lat, lon, accuracy_m, actor, device, queued_at)) = row else {
            return Ok(PhotoProcessed::Gone);
        };
        let (Some(role), Ok(queued_at)) = (Role::parse(&role), Timestamp::from_millis(queued_at)) else {
            // A row only a hand-edited store holds: set aside, so it does not block the line.
            let e = PhotoError::from(bad_role(id, &role));
            self.mark_queued_failed(id, &e)?;
            return Ok(PhotoProcessed::Failed(e));
        };
        let gps = match (lat, lon) {
            (Some(lat), Some(lon)) => Some(GeoPoint { lat, lon, accuracy_m }),
            _ => None,
        };
        let ctx = ActionContext::new(actor, device, queued_at);
        let photo = match ingest(&bytes, options).map_err(PhotoError::from) {
            Ok(photo) => photo,
            Err(e) => {
                self.mark_queued_failed(id, &e)?;
                return Ok(PhotoProcessed::Failed(e));
            }
        };
        drop(bytes);
        let attached = self.photo_action(|conn| {
            // Discarded while it was being processed: nothing to attach.
            let still_here: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM photo_queue WHERE id = ?1)")?
                .query_row([id], |r| r.get(0))?;
            if !still_here {
                return Ok(None);
            }
            let entry = self.add_photo(&ctx, &doc_id, &photo, &Attachment { role, caption: None, gps })?;
            conn.prepare_cached("DELETE FROM photo_queue WHERE id = ?1")?.execute([id])?;
            Ok(Some(entry))
        });
        match attached {
            Ok(Some(entry)) => Ok(PhotoProcessed::Attached(entry)),
            Ok(None) => Ok(PhotoProcessed::Gone),
            // A storage failure (disk full, a locked file) is worth trying again as it is; an
            // error about the record itself (it was refused, it is damaged) is not, and is shown.
            Err(PhotoError::Core(e)) if matches!(*e, CoreError::Storage(_) | CoreError::Io(_)) => {
                Err(PhotoError::Core(e))
            }
            Err(e) => {
                self.mark_queued_failed(id, &e)?;
                Ok(PhotoProcessed::Failed(e))
            }
        }
    }

    /// Sets a waiting photo aside as failed with `e` (the worker, after storage errors in a row).
    pub fn set_queued_photo_failed(&self, id: i64, e: &PhotoError) -> PhotoResult<()> {
        self.mark_queued_failed(id, e)
    }

    fn mark_queued_failed(&self, id: i64, e: &PhotoError) -> PhotoResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE photo_queue SET attempts = attempts + 1, failed_code = ?2, failed_message = ?3 WHERE id = ?1",
            )?
            .execute(params![id, e.code(), e.to_string()])?;
        Ok(())
    }

    /// Puts a failed photo back in line. Returns false when there is no such waiting photo.
    pub fn retry_queued_photo(&self, id: i64) -> PhotoResult<bool> {
        let changed = self
            .conn
            .prepare_cached("UPDATE photo_queue SET failed_code = NULL, failed_message = NULL WHERE id = ?1")?
            .execute([id])?;
        Ok(changed > 0)
    }

    /// Throws a photo whose processing failed away (the walker chose to). Returns false when
    /// there is no such failed photo: attached meanwhile, or still being processed.
    pub fn discard_queued_photo(&self, id: i64) -> PhotoResult<bool> {
        // Only a failed one: a photo still being processed is on its way into the record.
        let changed = self
            .conn
            .prepare_cached("DELETE FROM photo_queue WHERE id = ?1 AND failed_code IS NOT NULL")?
            .execute([id])?;
        Ok(changed > 0)
    }
}

/// The cheap checks of [`precheck`], with the file's name in front of the message so that a
/// walker who picked three photos knows which one is refused.
fn precheck_named(photo: &PhotoToQueue<'_>, options: &IngestOptions) -> PhotoResult<()> {
    precheck(photo.bytes, options)
        .map(|_| ())
        .map_err(|e| PhotoError::Named { file_name: display_name(&photo.file_name), inner: Box::new(e.into()) })
}

/// A file name fit to show: its last path part, at most 80 characters, or "photo" when empty.
fn display_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let short: String = last.chars().take(80).collect();
    if short.is_empty() {
        "photo".to_string()
    } else {
        short
    }
}

/// Only a store edited by hand holds a role the app never writes.
fn bad_role(id: i64, role: &str) -> CoreError {
    CoreError::DamagedDocument {
        id: format!("waiting photo {id}"),
        message: format!("its role '{role}' is neither before nor after"),
    }
}

struct QueuedRow {
    id: i64,
    doc_id: String,
    role: String,
    file_name: String,
    bytes: i64,
    queued_at: i64,
    attempts: i64,
    failed_code: Option<String>,
    failed_message: Option<String>,
}

fn queued_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedRow> {
    Ok(QueuedRow {
        id: r.get(0)?,
        doc_id: r.get(1)?,
        role: r.get(2)?,
        file_name: r.get(3)?,
        bytes: r.get(4)?,
        queued_at: r.get(5)?,
        attempts: r.get(6)?,
        failed_code: r.get(7)?,
        failed_message: r.get(8)?,
    })
}

impl QueuedRow {
    fn into_queued(self) -> PhotoResult<QueuedPhoto> {
        let role = Role::parse(&self.role).ok_or_else(|| bad_role(self.id, &self.role))?;
        let state = match self.failed_code {
            Some(code) => QueuedPhotoState::Failed { code, message: self.failed_message.unwrap_or_default() },
            None => QueuedPhotoState::Processing,
        };
        Ok(QueuedPhoto {
            id: self.id,
            doc_id: self.doc_id,
            role,
            file_name: self.file_name,
            bytes: self.bytes as u64,
            queued_at: Timestamp::from_millis(self.queued_at)?,
            attempts: self.attempts as u32,
            state,
        })
    }
}

//! Photos in the store: the files beside the SQLite file, their rows, and the document changes
//! that attach and remove them.
//!
//! Adding a photo is one user action and so one transaction: the files are written (each whole or
//! not at all) while the transaction holds the write lock, then the row and the document change
//! commit together. If the action fails after the files were written, they are left without a row
//! and the next garbage collection removes them; a row never names a file that was not written
//! first. Because the files are written under the write lock, a garbage collection (which holds
//! that lock too) never sees a file whose row is about to be committed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::Store;
use crate::doc_view::DocView;
use crate::docs::{self, DocKind};
use crate::error::CoreError;
use crate::lifecycle::Action;
use crate::photo::attach::{self, PhotoRef};
use crate::photo::blobs::{validate_hash, BlobStore};
use crate::photo::{
    ingest, Attachment, ExportedPhoto, GcReport, IngestOptions, IngestedPhoto, PhotoError, RequestExport, Role,
    StoredPhoto,
};
use crate::store::keys;
use crate::time::Timestamp;
use crate::ActionContext;

type PhotoResult<T> = Result<T, PhotoError>;

impl Store {
    /// The folder holding this store's photo files: beside the store file, named after it
    /// (`town.gridwalk` → `town.gridwalk-blobs/`), like SQLite's own `-wal` file. Two stores in
    /// one folder therefore never share, or collect, each other's photos.
    pub fn blob_dir(&self) -> PathBuf {
        Self::blob_dir_of(&self.path)
    }

    /// The photo folder of the store at `path`.
    pub(crate) fn blob_dir_of(path: &Path) -> PathBuf {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "gridwalk".into());
        name.push("-blobs");
        path.with_file_name(name)
    }

    /// The store's photo files: sealed with the store's key when the store is encrypted.
    pub(super) fn blobs(&self) -> BlobStore {
        match &self.key {
            Some(key) => BlobStore::sealed(self.blob_dir(), key.photo_key()),
            None => BlobStore::new(self.blob_dir()),
        }
    }

    /// `atomically` for photo actions, whose steps can fail with photo errors (a file that could
    /// not be written) as well as core ones. Any error rolls the transaction back and is returned
    /// as it was.
    pub(super) fn photo_action<T>(&self, f: impl FnOnce(&Connection) -> PhotoResult<T>) -> PhotoResult<T> {
        let mut photo_error = None;
        let result = self.atomically(|conn| match f(conn) {
            Ok(value) => Ok(value),
            Err(PhotoError::Core(e)) => Err(*e),
            Err(e) => {
                photo_error = Some(e);
                // Only makes `atomically` roll back; the photo error above is what is returned.
                Err(CoreError::Export("photo action failed".into()))
            }
        });
        match (result, photo_error) {
            (_, Some(e)) => Err(e),
            (result, None) => result.map_err(PhotoError::from),
        }
    }

    /// Reads, shrinks and stores a photo file, and attaches it to a visit or request: the
    /// convenience the app and the CLI use. The document is checked first, so a wrong id is
    /// reported before the photo is decoded; decoding happens outside the transaction, so the
    /// store is not locked while it runs.
    pub fn add_photo_file(
        &self,
        ctx: &ActionContext,
        doc_id: &str,
        bytes: &[u8],
        options: &IngestOptions,
        attachment: &Attachment,
    ) -> PhotoResult<(IngestedPhoto, PhotoRef)> {
        if Self::load_kind(&self.conn, doc_id)?.is_none() {
            return Err(not_found(doc_id).into());
        }
        let photo = ingest(bytes, options)?;
        let entry = self.add_photo(ctx, doc_id, &photo, attachment)?;
        Ok((photo, entry))
    }

    /// Stores an ingested photo and attaches it to a visit or a request, in one transaction.
    /// Adding the same photo again attaches it again (say, as "after" as well as "before") but
    /// stores its files once.
    pub fn add_photo(
        &self,
        ctx: &ActionContext,
        doc_id: &str,
        photo: &IngestedPhoto,
        attachment: &Attachment,
    ) -> PhotoResult<PhotoRef> {
        let caption = attachment.caption.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(str::to_string);
        if let Some(gps) = &attachment.gps {
            gps.validate()?;
        }
        let entry = PhotoRef {
            hash: photo.full.hash.clone(),
            role: attachment.role,
            caption,
            added_at: ctx.at,
            added_by: ctx.actor.clone(),
            gps: attachment.gps,
            removed: false,
            removed_at: None,
            removed_by: None,
        };
        let blobs = self.blobs();
        self.photo_action(|conn| {
            let Some((kind, _, mut am)) = Self::load_automerge(conn, doc_id)? else {
                return Err(not_found(doc_id).into());
            };
            blobs.put(&photo.full.hash, &photo.full.bytes)?;
            blobs.put(&photo.thumb.hash, &photo.thumb.bytes)?;
            conn.prepare_cached(
                "INSERT INTO photos (hash, bytes, width, height, thumb_hash, thumb_bytes, thumb_width,
                     thumb_height, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (hash) DO NOTHING",
            )?
            .execute(params![
                photo.full.hash,
                photo.full.bytes.len() as i64,
                photo.full.width,
                photo.full.height,
                photo.thumb.hash,
                photo.thumb.bytes.len() as i64,
                photo.thumb.width,
                photo.thumb.height,
                ctx.at.millis(),
            ])?;
            am.set_actor(docs::actor_for_device(&ctx.device));
            let before = am.get_heads();
            attach::attach(&mut am, &entry)?;
            let message = format!("add {} photo", entry.role.as_str());
            Self::commit_changes(&mut am, ctx.at, &message);
            Self::save_changes(conn, doc_id, &mut am, &before, ctx.at, true)?;
            Self::reindex(conn, kind, &am)?;
            Ok(entry.clone())
        })
    }

    /// Marks a photo as removed from a visit or request (only the entries with `role`, when
    /// given). The entry stays in the record, with who removed it and when. Refused when the
    /// photo is not attached there.
    pub fn remove_photo(
        &self,
        ctx: &ActionContext,
        doc_id: &str,
        hash: &str,
        role: Option<Role>,
    ) -> PhotoResult<usize> {
        validate_hash(hash)?;
        self.photo_action(|conn| {
            let Some((kind, _, mut am)) = Self::load_automerge(conn, doc_id)? else {
                return Err(not_found(doc_id).into());
            };
            am.set_actor(docs::actor_for_device(&ctx.device));
            let before = am.get_heads();
            let marked = attach::mark_removed(&mut am, hash, role, ctx.at, &ctx.actor)?;
            if marked == 0 {
                return Err(PhotoError::NotAttached { hash: hash.to_string(), doc: doc_id.to_string() });
            }
            Self::commit_changes(&mut am, ctx.at, "remove photo");
            Self::save_changes(conn, doc_id, &mut am, &before, ctx.at, true)?;
            Self::reindex(conn, kind, &am)?;
            Ok(marked)
        })
    }

    /// Every photo entry of a visit or request, removed ones included, oldest first.
    pub fn photos_of(&self, doc_id: &str) -> PhotoResult<Vec<PhotoRef>> {
        let Some((_, _, am)) = Self::load_automerge(&self.conn, doc_id)? else {
            return Err(not_found(doc_id).into());
        };
        Ok(attach::photos(&DocView::new(&am))?)
    }

    /// The row of a stored photo, if this device has it.
    pub fn stored_photo(&self, hash: &str) -> PhotoResult<Option<StoredPhoto>> {
        validate_hash(hash)?;
        let row = self
            .conn
            .prepare_cached(
                "SELECT hash, bytes, width, height, thumb_hash, thumb_bytes, thumb_width, thumb_height,
                        created_at, acknowledged_at
                 FROM photos WHERE hash = ?1",
            )?
            .query_row([hash], |r| {
                Ok((
                    StoredPhoto {
                        hash: r.get(0)?,
                        bytes: r.get::<_, i64>(1)? as u64,
                        width: r.get(2)?,
                        height: r.get(3)?,
                        thumb_hash: r.get(4)?,
                        thumb_bytes: r.get::<_, i64>(5)? as u64,
                        thumb_width: r.get(6)?,
                        thumb_height: r.get(7)?,
                        created_at: Timestamp(chrono::DateTime::UNIX_EPOCH),
                        acknowledged_at: None,
                    },
                    r.get::<_, i64>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ))
            })
            .optional()?;
        let Some((mut photo, created, acknowledged)) = row else {
            return Ok(None);
        };
        photo.created_at = Timestamp::from_millis(created)?;
        photo.acknowledged_at = acknowledged.map(Timestamp::from_millis).transpose()?;
        Ok(Some(photo))
    }

    /// Where a stored photo's file is, for showing it without copying it.
    pub fn photo_path(&self, hash: &str) -> PhotoResult<PathBuf> {
        self.blobs().path(hash)
    }

    /// A stored photo's JPEG bytes, checked against its id.
    pub fn photo_bytes(&self, hash: &str) -> PhotoResult<Vec<u8>> {
        self.blobs().read(hash)
    }

    /// The thumbnail of a stored photo, checked against its id.
    pub fn thumbnail_bytes(&self, hash: &str) -> PhotoResult<Vec<u8>> {
        let photo = self.stored_photo(hash)?.ok_or_else(|| PhotoError::BlobMissing { hash: hash.to_string() })?;
        self.blobs().read(&photo.thumb_hash)
    }

    /// Photos the relay has not acknowledged yet, oldest first: what sync uploads.
    pub fn unacknowledged_photos(&self) -> PhotoResult<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash FROM photos WHERE acknowledged_at IS NULL ORDER BY created_at, hash")?;
        let hashes = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(hashes)
    }

    /// Records that the relay holds this photo durably (called by sync), at `at`. Returns false
    /// when this device has no such photo. A second acknowledgement keeps the first time.
    pub fn mark_blob_acknowledged(&self, hash: &str, at: Timestamp) -> PhotoResult<bool> {
        validate_hash(hash)?;
        let changed = self.conn.execute(
            "UPDATE photos SET acknowledged_at = COALESCE(acknowledged_at, ?2) WHERE hash = ?1",
            params![hash, at.millis()],
        )?;
        Ok(changed > 0)
    }

    /// Where photo downloads that have not finished keep their bytes: one file per photo, named
    /// by its id, beside the blob folder (`town.gridwalk-partial/`). A download cut off by a lost
    /// connection or a dead battery resumes from the end of its file.
    pub fn partial_dir(&self) -> PathBuf {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "gridwalk".into());
        name.push("-partial");
        self.path.with_file_name(name)
    }

    fn partial_path(&self, hash: &str) -> PhotoResult<PathBuf> {
        validate_hash(hash)?;
        Ok(self.partial_dir().join(hash))
    }

    /// How many bytes of a photo being downloaded are on disk (0 when none). In an encrypted
    /// store the file is a run of sealed pieces (see [`Store::append_partial`]); a piece torn by
    /// a crash while it was written is cut off here, so the download resumes from the last
    /// whole one.
    pub fn partial_len(&self, hash: &str) -> PhotoResult<u64> {
        let path = self.partial_path(hash)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        if self.key.is_none() {
            return Ok(bytes.len() as u64);
        }
        let (plain, whole) = self.partial_pieces(hash, &bytes);
        if whole < bytes.len() {
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        Ok(plain.len() as u64)
    }

    /// Appends the next bytes of a photo being downloaded, flushed to the disk before it
    /// returns (a resumed download trusts what is there). An encrypted store seals each piece
    /// on its own, with the photo's id and the piece's offset as its context, so pieces can be
    /// neither swapped nor moved.
    pub fn append_partial(&self, hash: &str, offset: u64, bytes: &[u8]) -> PhotoResult<()> {
        use std::io::Write;
        let path = self.partial_path(hash)?;
        std::fs::create_dir_all(self.partial_dir())?;
        let record = match &self.key {
            None => bytes.to_vec(),
            Some(key) => {
                let sealed = keys::seal(&key.photo_key(), &piece_context(hash, offset), bytes)?;
                let mut record = (sealed.len() as u32).to_le_bytes().to_vec();
                record.extend_from_slice(&sealed);
                record
            }
        };
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(&record)?;
        file.sync_data()?;
        Ok(())
    }

    /// The bytes of a photo being downloaded, as far as they go.
    pub fn read_partial(&self, hash: &str) -> PhotoResult<Vec<u8>> {
        let bytes = std::fs::read(self.partial_path(hash)?)?;
        if self.key.is_none() {
            return Ok(bytes);
        }
        Ok(self.partial_pieces(hash, &bytes).0)
    }

    /// Deletes a photo's partial download, if any.
    pub fn remove_partial(&self, hash: &str) -> PhotoResult<()> {
        match std::fs::remove_file(self.partial_path(hash)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The plain bytes of the whole sealed pieces of a partial file, and where the last whole
    /// piece ends. A piece that does not open (torn, or not this store's) ends the run.
    fn partial_pieces(&self, hash: &str, file: &[u8]) -> (Vec<u8>, usize) {
        let Some(key) = &self.key else { return (file.to_vec(), file.len()) };
        let key = key.photo_key();
        let (mut plain, mut at) = (Vec::new(), 0usize);
        while let Some(len) = file.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize) {
            let Some(sealed) = file.get(at + 4..at + 4 + len) else { break };
            let Some(piece) = keys::open(&key, &piece_context(hash, plain.len() as u64), sealed) else { break };
            plain.extend_from_slice(&piece);
            at += 4 + len;
        }
        (plain, at)
    }

    /// Photos that documents on this device name (live entries and `Resolved` evidence) and that
    /// it does not hold: what sync downloads, in the order they became known.
    pub fn wanted_photos(&self) -> PhotoResult<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT hash FROM photo_wanted WHERE hash NOT IN (SELECT hash FROM photos) ORDER BY rowid",
        )?;
        let hashes = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(hashes)
    }

    /// Records which of the photos `doc` needs this device lacks. A document whose photo list or
    /// events cannot be read names no photos here; reading it elsewhere reports the damage.
    /// The photos a document needs kept on this device (see `attach::referenced_hashes`); none
    /// when its photo list cannot be read, which is logged and must not stop a sync.
    pub(super) fn photos_named(doc: &DocView) -> Vec<String> {
        attach::referenced_hashes(doc).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a document's photos could not be read");
            Vec::new()
        })
    }

    /// Notes photos a document names that this device lacks, for the next photo download.
    pub(super) fn note_wanted_photos(conn: &Connection, hashes: &[String]) -> rusqlite::Result<()> {
        let mut insert = conn.prepare_cached(
            "INSERT OR IGNORE INTO photo_wanted (hash)
             SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM photos WHERE hash = ?1)",
        )?;
        for hash in hashes {
            insert.execute([hash])?;
        }
        Ok(())
    }

    /// Stores a photo received from the relay: the JPEG exactly as its author's device made it
    /// (its bytes are its id), and a thumbnail made here from it. The relay holds the photo, so
    /// it is recorded as acknowledged at `received_at` and never uploaded back. Refuses bytes
    /// that do not have this id, and anything that is not a photo this pipeline could have made.
    pub fn store_received_photo(&self, hash: &str, bytes: &[u8], received_at: Timestamp) -> PhotoResult<StoredPhoto> {
        validate_hash(hash)?;
        if crate::photo::content_hash(bytes) != hash {
            return Err(PhotoError::BlobCorrupt { hash: hash.to_string() });
        }
        // Decoding happens before the transaction, so the store is not locked while it runs.
        let received = crate::photo::thumbnail_of_received(bytes, &IngestOptions::default())?;
        let blobs = self.blobs();
        self.photo_action(|conn| {
            blobs.put(hash, bytes)?;
            blobs.put(&received.thumb.hash, &received.thumb.bytes)?;
            conn.prepare_cached(
                "INSERT INTO photos (hash, bytes, width, height, thumb_hash, thumb_bytes, thumb_width,
                     thumb_height, created_at, acknowledged_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                 ON CONFLICT (hash) DO NOTHING",
            )?
            .execute(params![
                hash,
                bytes.len() as i64,
                received.width,
                received.height,
                received.thumb.hash,
                received.thumb.bytes.len() as i64,
                received.thumb.width,
                received.thumb.height,
                received_at.millis(),
            ])?;
            conn.execute("DELETE FROM photo_wanted WHERE hash = ?1", [hash])?;
            Ok(())
        })?;
        self.stored_photo(hash)?.ok_or_else(|| PhotoError::BlobMissing { hash: hash.to_string() })
    }

    /// Deletes the photos that no document needs any more (no live entry, no `Resolved` event
    /// names them) and that the relay has acknowledged, so a photo is never lost before the hall
    /// has it. Files with no row, left by actions that failed, go too. One transaction: the files
    /// are deleted while it holds the write lock, so no photo can be added meanwhile.
    pub fn collect_garbage(&self) -> PhotoResult<GcReport> {
        let blobs = self.blobs();
        let partial_dir = self.partial_dir();
        self.photo_action(|conn| {
            let mut report = GcReport::default();
            let rows: Vec<(String, String, i64, i64, bool)> = conn
                .prepare("SELECT hash, thumb_hash, bytes, thumb_bytes, acknowledged_at IS NOT NULL FROM photos")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<_, _>>()?;
            let partials: Vec<std::path::PathBuf> = match std::fs::read_dir(&partial_dir) {
                Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let needed =
                if rows.is_empty() && partials.is_empty() { BTreeSet::new() } else { Self::referenced_photos(conn)? };
            let mut keep_files: BTreeSet<String> = BTreeSet::new();
            let mut doomed: Vec<(String, String, u64)> = Vec::new();
            for (hash, thumb, bytes, thumb_bytes, acknowledged) in rows {
                if needed.contains(&hash) {
                    keep_files.insert(hash);
                    keep_files.insert(thumb);
                } else if !acknowledged {
                    report.kept_unacknowledged.push(hash.clone());
                    keep_files.insert(hash);
                    keep_files.insert(thumb);
                } else {
                    doomed.push((hash, thumb, (bytes + thumb_bytes) as u64));
                }
            }
            for (hash, _, bytes) in &doomed {
                conn.execute("DELETE FROM photos WHERE hash = ?1", [hash])?;
                report.deleted.push(hash.clone());
                report.bytes_freed += bytes;
            }
            // Every file that no remaining row names is deleted: the doomed photos and their
            // thumbnails (unless a kept photo shares the thumbnail), and strays.
            let doomed_files: BTreeSet<&String> = doomed.iter().flat_map(|(h, t, _)| [h, t]).collect();
            let (on_disk, temps) = blobs.scan()?;
            for hash in on_disk {
                if keep_files.contains(&hash) {
                    continue;
                }
                blobs.remove(&hash)?;
                if !doomed_files.contains(&hash) {
                    report.stray_files_removed += 1;
                }
            }
            for temp in temps {
                std::fs::remove_file(temp)?;
                report.stray_files_removed += 1;
            }
            // Interrupted downloads of photos that no document needs any more, or that are
            // stored whole by now. Those still needed stay, for the next sync to resume.
            for path in partials {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if needed.contains(&name) && !keep_files.contains(&name) {
                    continue;
                }
                std::fs::remove_file(&path)?;
                report.stray_files_removed += 1;
            }
            Ok(report)
        })
    }

    /// The hashes every document on this device needs. Reads every document: collection is rare
    /// (after a sync), and a document is the only place that knows its photos, including those
    /// attached on other phones and merged in by sync.
    pub(super) fn referenced_photos(conn: &Connection) -> Result<BTreeSet<String>, CoreError> {
        let ids: Vec<String> =
            conn.prepare("SELECT id FROM documents")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let mut needed = BTreeSet::new();
        for id in ids {
            if let Some((_, _, am)) = Self::load_automerge(conn, &id)? {
                needed.extend(attach::referenced_hashes(&DocView::new(&am))?);
            }
        }
        Ok(needed)
    }

    /// Writes a request and its photos into `dir` (created if missing; it must be empty): the
    /// request with its whole history as `request.json`, its Automerge document as
    /// `request.automerge` (the record as signed by its changes, for audits), and each photo it
    /// shows (live "before" and "after" photos, and photos named by `Resolved` events) as
    /// `NN-role-<id prefix>.jpg`. Photos not on this device are listed as missing, not fatal.
    pub fn export_request_with_photos(
        &self,
        ctx: &ActionContext,
        request_id: &str,
        dir: &Path,
    ) -> PhotoResult<RequestExport> {
        let export = self.write_request_with_photos(request_id, dir)?;
        let detail = format!("the request and {} photos to {}", export.photos.len(), dir.display());
        self.record_access(
            ctx,
            crate::store::access::AccessKind::ExportEvidence,
            &format!("request:{request_id}"),
            &detail,
        )?;
        Ok(export)
    }

    fn write_request_with_photos(&self, request_id: &str, dir: &Path) -> PhotoResult<RequestExport> {
        let view = self.request(request_id)?;
        let Some((_, _, mut am)) = Self::load_automerge(&self.conn, request_id)? else {
            return Err(not_found(request_id).into());
        };
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(CoreError::invalid(
                "folder",
                format!("{} is not empty: choose a new or empty folder", dir.display()),
            )
            .into());
        }
        std::fs::create_dir_all(dir)?;

        let mut items: Vec<ExportedPhoto> = attach::live_photos(&DocView::new(&am))?
            .into_iter()
            .map(|p| ExportedPhoto {
                file: None,
                hash: p.hash,
                role: p.role,
                caption: p.caption,
                added_at: Some(p.added_at),
                added_by: Some(p.added_by),
                gps: p.gps,
            })
            .collect();
        let listed: BTreeSet<String> = items.iter().map(|p| p.hash.clone()).collect();
        let mut from_events: BTreeSet<String> = BTreeSet::new();
        for entry in &view.history {
            if let Action::Resolved { photos, .. } = &entry.event.action {
                for hash in photos {
                    if !listed.contains(hash) && from_events.insert(hash.clone()) {
                        items.push(ExportedPhoto {
                            file: None,
                            hash: hash.clone(),
                            role: Role::After,
                            caption: None,
                            added_at: Some(entry.event.at),
                            added_by: Some(entry.event.by.clone()),
                            gps: None,
                        });
                    }
                }
            }
        }

        let blobs = self.blobs();
        let mut missing = Vec::new();
        for (i, item) in items.iter_mut().enumerate() {
            let bytes = match validate_hash(&item.hash).and_then(|()| blobs.read(&item.hash)) {
                Ok(bytes) => bytes,
                Err(PhotoError::BlobMissing { .. } | PhotoError::BadHash { .. }) => {
                    missing.push(item.hash.clone());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let name = format!("{:02}-{}-{}.jpg", i + 1, item.role.as_str(), &item.hash[..12]);
            std::fs::write(dir.join(&name), bytes)?;
            item.file = Some(name);
        }
        let json = serde_json::json!({ "request": view, "photos": items, "missing": missing });
        let text = serde_json::to_string_pretty(&json).map_err(|e| CoreError::Export(e.to_string()))?;
        std::fs::write(dir.join("request.json"), text)?;
        std::fs::write(dir.join("request.automerge"), am.save())?;
        Ok(RequestExport { request: request_id.to_string(), dir: dir.to_path_buf(), photos: items, missing })
    }

    pub(super) fn load_kind(conn: &Connection, id: &str) -> Result<Option<DocKind>, CoreError> {
        let kind: Option<String> = conn
            .prepare_cached("SELECT kind FROM documents WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(kind.and_then(|k| DocKind::parse(&k)))
    }
}

fn not_found(id: &str) -> CoreError {
    CoreError::NotFound { kind: "visit or request", id: id.to_string() }
}

/// What a sealed piece of a partial download is bound to: its photo and its place in it.
fn piece_context(hash: &str, offset: u64) -> Vec<u8> {
    format!("gridwalk partial {hash} {offset}").into_bytes()
}

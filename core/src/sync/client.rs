//! The device's side of sync.
//!
//! [`SyncSession`] is the protocol as a state machine with no network in it: it says what to
//! send next ([`Outgoing`]) and digests what came back ([`Incoming`]), reading the outbox and
//! writing pulled pages through the store. [`run`] drives a session over any [`Transport`]: the
//! real one is [`HttpTransport`] (reqwest), tests use an in-memory relay. Everything a session
//! knows lives in the store (outbox, cursor), so a sync that is cut off anywhere resumes where it
//! stopped by simply running again.
//!
//! A sync runs in four phases: push the outbox, pull pages, upload the photos the relay has not
//! acknowledged, download the photos local documents name that this device lacks. Documents go
//! first because they are small and are what the hall works from; photos follow, and a photo
//! the relay refuses or does not have yet is noted in [`Progress`] and skipped, so one bad photo
//! never holds up the rest. Photo transfers resume too: an upload asks the relay what it already
//! holds and sends the rest; a download keeps its bytes in a partial file (see
//! [`Store::partial_dir`]) and asks the relay only for the bytes after its end.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::protocol::{
    self, BlobBytes, BlobStatus, DocChanges, EnrollRequest, EnrollResponse, ErrorBody, PullResponse, PushRequest,
    PushResponse, MAX_BLOB_BYTES, PROTOCOL_VERSION,
};
use crate::error::{CoreError, Result};
use crate::photo::blobs::validate_hash;
use crate::photo::{content_hash, PhotoError};
use crate::store::{RelayLink, Store};
use crate::time::Timestamp;

/// What the session wants sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Push(PushRequest),
    Pull {
        cursor: String,
        limit: usize,
    },
    /// What does the relay hold of this blob? Answered with [`Incoming::BlobStatus`].
    BlobStatus {
        hash: String,
    },
    /// The bytes of a blob of `total` bytes from `offset` on. Answered with
    /// [`Incoming::BlobStatus`].
    BlobUpload {
        hash: String,
        offset: u64,
        total: u64,
        bytes: Vec<u8>,
    },
    /// Up to `max_len` bytes of a blob from `offset` on. Answered with [`Incoming::BlobBytes`].
    BlobDownload {
        hash: String,
        offset: u64,
        max_len: u64,
    },
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Pushed(PushResponse),
    Pulled(PullResponse),
    BlobStatus(BlobStatus),
    BlobBytes(BlobBytes),
}

/// Which way a photo was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// A photo this sync could not move, and why. It stays queued: the next sync tries again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhotoProblem {
    pub hash: String,
    pub direction: Direction,
    pub code: String,
    pub message: String,
}

/// Progress for a progress bar: documents and bytes each way, then photos and their bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    pub docs_to_push: usize,
    pub docs_pushed: usize,
    pub bytes_pushed: u64,
    pub docs_pulled: usize,
    pub bytes_pulled: u64,
    pub pages_pulled: usize,
    /// Photos the relay has not acknowledged, and their size, as the upload phase began.
    pub photos_to_upload: usize,
    pub photo_bytes_to_upload: u64,
    /// Photos the relay now holds (including those it turned out to have already).
    pub photos_uploaded: usize,
    /// Photo bytes the relay accepted from this sync: only what it did not already hold.
    pub photo_bytes_up: u64,
    /// Photos local documents name that this device lacked as the download phase began.
    pub photos_to_download: usize,
    pub photos_downloaded: usize,
    /// Photo bytes received in this sync: only what an interrupted download had not kept.
    pub photo_bytes_down: u64,
    /// Photos the relay does not have yet (their device has not uploaded them): a later sync
    /// fetches them.
    pub photos_waiting: usize,
    /// Photos refused or damaged on the way; each is tried again by the next sync.
    pub photo_problems: Vec<PhotoProblem>,
    /// Every phase is finished.
    pub done: bool,
    /// What the sync is doing now.
    pub stage: Stage,
}

/// The stage a sync is in, in the order they come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Sending this device's changes.
    #[default]
    Sending,
    /// Receiving what others changed, page by page.
    Receiving,
    /// Uploading photos the relay lacks.
    PhotosUp,
    /// Downloading photos this device lacks.
    PhotosDown,
    Done,
}

impl Stage {
    fn of(phase: &Phase) -> Stage {
        match phase {
            Phase::Push | Phase::AwaitPush { .. } => Stage::Sending,
            Phase::Pull | Phase::AwaitPull => Stage::Receiving,
            Phase::Uploads | Phase::UploadStatus { .. } | Phase::UploadFrom { .. } | Phase::AwaitUpload { .. } => {
                Stage::PhotosUp
            }
            Phase::Done => Stage::Done,
            _ => Stage::PhotosDown,
        }
    }
}

impl Progress {
    /// How far the sync has come, 0 to 1, for a progress bar: the one model the app and the
    /// command line show. Each stage has a fixed share (sending 35 %, receiving 35 %, photos up
    /// 20 %, photos down 10 %); the stages before the current one count whole, the current one by
    /// its own count, the later ones not at all. So the figure never goes back within a sync,
    /// even when a later stage turns out to hold more work than expected, and only a finished
    /// sync reaches 1. Receiving has no known end (the relay does not say how much is left), so
    /// each page halves what is left of its share.
    pub fn fraction(&self) -> f64 {
        if self.done || self.stage == Stage::Done {
            return 1.0;
        }
        let part = |done: f64, total: f64| if total > 0.0 { (done / total).clamp(0.0, 1.0) } else { 0.0 };
        let stages = [
            (Stage::Sending, 0.35, part(self.docs_pushed as f64, self.docs_to_push as f64)),
            (Stage::Receiving, 0.35, 1.0 - 0.5f64.powi(self.pages_pulled.min(60) as i32)),
            (
                Stage::PhotosUp,
                0.20,
                if self.photo_bytes_to_upload > 0 {
                    part(self.photo_bytes_up as f64, self.photo_bytes_to_upload as f64)
                } else {
                    part(self.photos_uploaded as f64, self.photos_to_upload as f64)
                },
            ),
            (Stage::PhotosDown, 0.10, part(self.photos_downloaded as f64, self.photos_to_download as f64)),
        ];
        let mut sum = 0.0;
        for (stage, share, current) in stages {
            if stage == self.stage {
                sum += share * current;
                break;
            }
            sum += share;
        }
        sum.clamp(0.0, 0.99)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Outbox entries per push.
    pub push_entries: usize,
    /// Bytes of changes per push (a batch stops growing past this).
    pub push_bytes: usize,
    /// Documents per pulled page, each page one transaction: the relay's largest page by
    /// default, because every commit writes each index page the page's documents touched, and
    /// fewer, larger pages write each of them fewer times (P2 of `gridwalk-bench sync` at 500
    /// and at 2,000 is in `bench/results/`).
    pub pull_page: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { push_entries: 5_000, push_bytes: 8 * 1024 * 1024, pull_page: 2_000 }
    }
}

/// Photo bytes per upload or download request. Small enough that a chunk crosses weak hall
/// Wi-Fi in a second or two, so an interruption costs little; large enough that a 1600 px photo
/// takes only a few requests.
pub const DEFAULT_BLOB_CHUNK: usize = 256 * 1024;

/// How often one photo may be sent back to ask the relay's status again (after a 409 or a
/// range that no longer fits) before it is given up for this sync.
const BLOB_RETRIES: u32 = 3;

enum Phase {
    Push,
    /// Waiting for the relay to acknowledge the batch up to this outbox sequence number.
    AwaitPush {
        up_to: i64,
        docs: usize,
        hashes: Vec<(String, Vec<[u8; 32]>)>,
    },
    Pull,
    AwaitPull,
    /// Taking the next photo to upload.
    Uploads,
    UploadStatus {
        hash: String,
    },
    UploadFrom {
        hash: String,
        offset: u64,
    },
    /// Waiting for the relay's status of an upload; `sent` bytes from `offset` went with the
    /// request (none for a plain status question).
    AwaitUpload {
        hash: String,
        offset: u64,
        sent: u64,
    },
    /// Taking the next photo to download.
    Downloads,
    DownloadStatus {
        hash: String,
    },
    DownloadFrom {
        hash: String,
        offset: u64,
        total: u64,
        checked_at: i64,
    },
    AwaitDownloadStatus {
        hash: String,
    },
    AwaitDownload {
        hash: String,
        offset: u64,
        total: u64,
        checked_at: i64,
    },
    Done,
}

pub struct SyncSession<'s> {
    store: &'s Store,
    limits: SessionLimits,
    blob_chunk: usize,
    phase: Phase,
    progress: Progress,
    uploads: Option<VecDeque<String>>,
    /// The photo being uploaded, read once rather than once per chunk.
    upload_bytes: Option<(String, Vec<u8>)>,
    downloads: Option<VecDeque<String>>,
    blob_retries: u32,
    /// Documents whose changes the relay acknowledged this sync: a document whose outbox
    /// entries went up in two pushes is one document, not two.
    pushed_docs: BTreeSet<String>,
}

/// A photo error as a sync error: the core's own errors keep their kind, the rest (a damaged
/// file, say) become input errors that name the photo.
fn core_error(e: PhotoError) -> CoreError {
    match e {
        PhotoError::Core(e) => *e,
        other => CoreError::invalid("photo", other.to_string()),
    }
}

impl<'s> SyncSession<'s> {
    pub fn new(store: &'s Store, limits: SessionLimits) -> Result<Self> {
        let docs_to_push = store.outbox_docs()?;
        Ok(SyncSession {
            store,
            limits,
            blob_chunk: DEFAULT_BLOB_CHUNK,
            phase: Phase::Push,
            progress: Progress { docs_to_push, ..Progress::default() },
            uploads: None,
            upload_bytes: None,
            downloads: None,
            blob_retries: 0,
            pushed_docs: BTreeSet::new(),
        })
    }

    /// Photo bytes per request (at least 1).
    pub fn with_blob_chunk(mut self, bytes: usize) -> Self {
        self.blob_chunk = bytes.max(1);
        self
    }

    pub fn progress(&mut self) -> &Progress {
        self.progress.stage = Stage::of(&self.phase);
        &self.progress
    }

    fn problem(&mut self, hash: &str, direction: Direction, code: &str, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(photo = %hash, ?direction, code, %message, "photo not synced");
        self.progress.photo_problems.push(PhotoProblem {
            hash: hash.to_string(),
            direction,
            code: code.to_string(),
            message,
        });
    }

    /// The bytes of the photo being uploaded, read from the store the first time.
    fn upload_bytes(&mut self, hash: &str) -> std::result::Result<&[u8], PhotoError> {
        if self.upload_bytes.as_ref().is_none_or(|(h, _)| h != hash) {
            let bytes = self.store.photo_bytes(hash)?;
            self.upload_bytes = Some((hash.to_string(), bytes));
        }
        Ok(self.upload_bytes.as_ref().map(|(_, b)| b.as_slice()).unwrap_or_default())
    }

    /// Stores a downloaded photo whose bytes are all in its partial file. Returns false (and
    /// deletes the file) when they are not the photo the id names.
    fn finish_download(&mut self, hash: &str, checked_at: i64) -> Result<bool> {
        let bytes = self.store.read_partial(hash).map_err(core_error)?;
        if content_hash(&bytes) != hash {
            self.store.remove_partial(hash).map_err(core_error)?;
            return Ok(false);
        }
        match self.store.store_received_photo(hash, &bytes, Timestamp::from_millis(checked_at)?) {
            Ok(_) => self.progress.photos_downloaded += 1,
            Err(e @ PhotoError::Core(_)) => return Err(core_error(e)),
            // Bytes with the right id that are no photo: another device uploaded garbage under
            // an id a document names. Nothing is stored; the hall has to look at that record.
            Err(e) => self.problem(hash, Direction::Down, e.code(), e.to_string()),
        }
        self.store.remove_partial(hash).map_err(core_error)?;
        Ok(true)
    }

    /// The next message to send, or `None` when the sync is complete.
    pub fn next_request(&mut self) -> Result<Option<Outgoing>> {
        loop {
            // The phase is taken out to be matched by value; every arm puts the next one back.
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Push => {
                    // Stays here should reading the outbox fail.
                    self.phase = Phase::Push;
                    let entries = self.store.outbox(self.limits.push_entries)?;
                    if entries.is_empty() {
                        self.phase = Phase::Pull;
                        continue;
                    }
                    // Changes of one document travel together, in outbox order.
                    let mut by_doc: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    let mut order: Vec<String> = Vec::new();
                    let mut up_to = 0;
                    let mut bytes = 0usize;
                    for e in entries {
                        if bytes > 0 && bytes + e.bytes.len() > self.limits.push_bytes {
                            break;
                        }
                        bytes += e.bytes.len();
                        up_to = e.seq;
                        if !by_doc.contains_key(&e.doc_id) {
                            order.push(e.doc_id.clone());
                        }
                        by_doc.entry(e.doc_id).or_default().extend_from_slice(&e.bytes);
                    }
                    let mut hashes = Vec::new();
                    let docs: Vec<DocChanges> = order
                        .into_iter()
                        .map(|id| {
                            let bytes = by_doc.remove(&id).unwrap_or_default();
                            let changes = crate::docs::decode_changes_strict(&bytes).unwrap_or_default();
                            hashes.push((id.clone(), changes.iter().map(|c| c.hash().0).collect()));
                            DocChanges { doc_id: id, bytes }
                        })
                        .collect();
                    self.phase = Phase::AwaitPush { up_to, docs: docs.len(), hashes };
                    self.progress.bytes_pushed += bytes as u64;
                    return Ok(Some(Outgoing::Push(PushRequest { version: PROTOCOL_VERSION, docs })));
                }
                Phase::Pull => {
                    self.phase = Phase::AwaitPull;
                    return Ok(Some(Outgoing::Pull {
                        cursor: self.store.pull_cursor()?,
                        limit: self.limits.pull_page,
                    }));
                }
                Phase::Uploads => {
                    self.phase = Phase::Uploads;
                    if self.uploads.is_none() {
                        let hashes = self.store.unacknowledged_photos().map_err(core_error)?;
                        self.progress.photos_to_upload = hashes.len();
                        for h in &hashes {
                            if let Some(p) = self.store.stored_photo(h).map_err(core_error)? {
                                self.progress.photo_bytes_to_upload += p.bytes;
                            }
                        }
                        self.uploads = Some(hashes.into());
                    }
                    match self.uploads.as_mut().and_then(VecDeque::pop_front) {
                        Some(hash) => {
                            self.blob_retries = 0;
                            self.phase = Phase::UploadStatus { hash };
                        }
                        None => {
                            self.upload_bytes = None;
                            self.phase = Phase::Downloads;
                        }
                    }
                }
                Phase::UploadStatus { hash } => {
                    self.phase = Phase::AwaitUpload { hash: hash.clone(), offset: 0, sent: 0 };
                    return Ok(Some(Outgoing::BlobStatus { hash }));
                }
                Phase::UploadFrom { hash, offset } => {
                    let chunk = self.blob_chunk as u64;
                    let bytes = match self.upload_bytes(&hash) {
                        Ok(bytes) => bytes,
                        Err(e @ PhotoError::Core(_)) => return Err(core_error(e)),
                        Err(e) => {
                            // The photo's file is gone or damaged on this device: nothing to send.
                            self.problem(&hash, Direction::Up, e.code(), e.to_string());
                            self.phase = Phase::Uploads;
                            continue;
                        }
                    };
                    let total = bytes.len() as u64;
                    if offset >= total {
                        let message =
                            format!("the relay holds {offset} bytes of a {total}-byte photo but not the photo");
                        self.problem(&hash, Direction::Up, "relay_out_of_step", message);
                        self.phase = Phase::Uploads;
                        continue;
                    }
                    let end = (offset + chunk).min(total);
                    let part = bytes[offset as usize..end as usize].to_vec();
                    self.phase = Phase::AwaitUpload { hash: hash.clone(), offset, sent: end - offset };
                    return Ok(Some(Outgoing::BlobUpload { hash, offset, total, bytes: part }));
                }
                Phase::Downloads => {
                    self.phase = Phase::Downloads;
                    if self.downloads.is_none() {
                        let hashes = self.store.wanted_photos().map_err(core_error)?;
                        self.progress.photos_to_download = hashes.len();
                        self.downloads = Some(hashes.into());
                    }
                    match self.downloads.as_mut().and_then(VecDeque::pop_front) {
                        Some(hash) => {
                            self.blob_retries = 0;
                            self.phase = Phase::DownloadStatus { hash };
                        }
                        None => {
                            self.phase = Phase::Done;
                            self.progress.done = true;
                        }
                    }
                }
                Phase::DownloadStatus { hash } => {
                    self.phase = Phase::AwaitDownloadStatus { hash: hash.clone() };
                    return Ok(Some(Outgoing::BlobStatus { hash }));
                }
                Phase::DownloadFrom { hash, offset, total, checked_at } => {
                    let max_len = (self.blob_chunk as u64).min(total - offset);
                    self.phase = Phase::AwaitDownload { hash: hash.clone(), offset, total, checked_at };
                    return Ok(Some(Outgoing::BlobDownload { hash, offset, max_len }));
                }
                awaiting @ (Phase::AwaitPush { .. }
                | Phase::AwaitPull
                | Phase::AwaitUpload { .. }
                | Phase::AwaitDownloadStatus { .. }
                | Phase::AwaitDownload { .. }) => {
                    self.phase = awaiting;
                    return Err(CoreError::invalid("sync", "a reply is still awaited"));
                }
                Phase::Done => return Ok(None),
            }
        }
    }

    /// Digests a reply. A push reply lets the outbox go; a pull page is applied in one
    /// transaction together with its cursor.
    pub fn handle(&mut self, incoming: Incoming) -> Result<()> {
        match (std::mem::replace(&mut self.phase, Phase::Done), incoming) {
            (Phase::AwaitPush { up_to, docs, hashes }, Incoming::Pushed(resp)) => {
                for (doc, _) in &hashes {
                    self.pushed_docs.insert(doc.clone());
                }
                for (doc, hs) in &hashes {
                    // The relay's first receipt of each change; a relay that does not say gets
                    // the push's time.
                    let told = resp.receipts.iter().find(|r| &r.doc_id == doc);
                    for h in hs {
                        let at = told
                            .and_then(|t| t.receipts.iter().find(|r| &r.hash == h))
                            .map_or(resp.received_at, |r| r.received_at);
                        self.store.record_receipts(doc, std::slice::from_ref(h), at)?;
                    }
                }
                self.store.acknowledge_outbox(up_to)?;
                let _ = docs;
                // Distinct documents; one saved locally during the sync raises the total with it,
                // so "pushed" never passes "to push".
                self.progress.docs_pushed = self.pushed_docs.len();
                self.progress.docs_to_push = self.progress.docs_to_push.max(self.progress.docs_pushed);
                self.phase = Phase::Push;
            }
            (Phase::AwaitPull, Incoming::Pulled(page)) => {
                let bytes: usize = page.docs.iter().map(|d| d.bytes.len()).sum();
                self.store.apply_pull_page(&page.docs, &page.cursor)?;
                self.progress.docs_pulled += page.docs.len();
                self.progress.bytes_pulled += bytes as u64;
                self.progress.pages_pulled += 1;
                self.phase = if page.more {
                    Phase::Pull
                } else {
                    // A first pull left the list indexes to build once its rows were in.
                    self.store.build_deferred_indexes()?;
                    Phase::Uploads
                };
            }
            (Phase::AwaitUpload { hash, offset, sent }, Incoming::BlobStatus(status)) => {
                if status.complete {
                    self.progress.photo_bytes_up += sent;
                    self.store
                        .mark_blob_acknowledged(&hash, Timestamp::from_millis(status.checked_at)?)
                        .map_err(core_error)?;
                    self.progress.photos_uploaded += 1;
                    self.phase = Phase::Uploads;
                    return Ok(());
                }
                if sent > 0 {
                    if status.size_received == offset + sent {
                        self.progress.photo_bytes_up += sent;
                    } else {
                        // The relay holds something other than what it just accepted (another
                        // device uploading the same photo at once, say): start from its status,
                        // but not forever.
                        self.blob_retries += 1;
                        if self.blob_retries > BLOB_RETRIES {
                            let message = format!(
                                "the relay holds {} bytes after accepting bytes up to {}",
                                status.size_received,
                                offset + sent
                            );
                            self.problem(&hash, Direction::Up, "relay_out_of_step", message);
                            self.phase = Phase::Uploads;
                            return Ok(());
                        }
                    }
                }
                self.phase = Phase::UploadFrom { hash, offset: status.size_received };
            }
            (Phase::AwaitDownloadStatus { hash }, Incoming::BlobStatus(status)) => {
                self.phase = Phase::Downloads;
                if !status.complete {
                    self.progress.photos_waiting += 1;
                    return Ok(());
                }
                let total = status.size_received;
                if total == 0 || total > MAX_BLOB_BYTES {
                    self.problem(
                        &hash,
                        Direction::Down,
                        "blob_too_large",
                        format!("the relay offers a photo of {total} bytes"),
                    );
                    return Ok(());
                }
                let mut have = self.store.partial_len(&hash).map_err(core_error)?;
                if have > total {
                    self.store.remove_partial(&hash).map_err(core_error)?;
                    have = 0;
                }
                // A download that received every byte but stopped before storing them (the
                // battery died) needs no request at all.
                if have == total && self.finish_download(&hash, status.checked_at)? {
                    return Ok(());
                }
                let offset = if have == total { 0 } else { have };
                self.phase = Phase::DownloadFrom { hash, offset, total, checked_at: status.checked_at };
            }
            (Phase::AwaitDownload { hash, offset, total, checked_at }, Incoming::BlobBytes(part)) => {
                let len = part.bytes.len() as u64;
                if part.start != offset || part.total != total || len == 0 || offset + len > total {
                    let message = format!(
                        "asked for bytes from {offset} of {total}, received {len} from {} of {}",
                        part.start, part.total
                    );
                    self.problem(&hash, Direction::Down, "relay_out_of_step", message);
                    let _ = self.store.remove_partial(&hash);
                    self.phase = Phase::Downloads;
                    return Ok(());
                }
                // On disk before it counts: a resumed download trusts what is there.
                self.store.append_partial(&hash, offset, &part.bytes).map_err(core_error)?;
                self.progress.photo_bytes_down += len;
                if offset + len < total {
                    self.phase = Phase::DownloadFrom { hash, offset: offset + len, total, checked_at };
                    return Ok(());
                }
                self.phase = Phase::Downloads;
                if !self.finish_download(&hash, checked_at)? {
                    self.problem(
                        &hash,
                        Direction::Down,
                        "hash_mismatch",
                        "the downloaded bytes do not have the photo's SHA-256; nothing was kept",
                    );
                }
            }
            (phase, _) => {
                self.phase = phase;
                return Err(CoreError::invalid("sync", "a reply that does not answer the last request"));
            }
        }
        Ok(())
    }

    /// Digests a refusal of the last request. A relay's refusal of one photo (forbidden, not
    /// there yet, out of step) is noted and the session moves on to the next photo; anything
    /// else, and every refusal of a document message, ends the sync with the error.
    pub fn handle_refusal(&mut self, error: CoreError) -> Result<()> {
        let CoreError::Relay { status, code, message } = &error else {
            return Err(error);
        };
        // A device the relay no longer knows, or a relay in trouble, stops the whole sync.
        if *status == 401 || *status >= 500 {
            return Err(error);
        }
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::AwaitUpload { hash, .. } => {
                if *status == 409 && self.blob_retries < BLOB_RETRIES {
                    // Someone else's bytes or a lost reply moved the relay on: ask again.
                    self.blob_retries += 1;
                    self.phase = Phase::UploadStatus { hash };
                } else {
                    self.problem(&hash, Direction::Up, code, message.clone());
                    self.phase = Phase::Uploads;
                }
            }
            Phase::AwaitDownloadStatus { hash } | Phase::AwaitDownload { hash, .. } => {
                if *status == 404 {
                    self.progress.photos_waiting += 1;
                    self.phase = Phase::Downloads;
                } else if *status == 416 && self.blob_retries < BLOB_RETRIES {
                    // The partial file no longer fits the relay's blob: start it again.
                    self.blob_retries += 1;
                    let _ = self.store.remove_partial(&hash);
                    self.phase = Phase::DownloadStatus { hash };
                } else {
                    self.problem(&hash, Direction::Down, code, message.clone());
                    self.phase = Phase::Downloads;
                }
            }
            phase => {
                self.phase = phase;
                return Err(error);
            }
        }
        Ok(())
    }
}

/// Carries protocol messages to a relay and back.
pub trait Transport {
    fn send(&mut self, message: &Outgoing) -> Result<Incoming>;
}

/// How `run` retries after a network failure.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 5, first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }
}

/// Syncs until done, retrying network failures with backoff. A relay's refusal (4xx) is not
/// retried: it will not change by asking again. `cancel` stops between messages.
pub fn run(
    store: &Store,
    transport: &mut dyn Transport,
    limits: SessionLimits,
    retry: Retry,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Progress> {
    run_session(SyncSession::new(store, limits)?, transport, retry, cancel, on_progress)
}

/// [`run`] for a session set up by the caller (a smaller photo chunk, say).
pub fn run_session(
    session: SyncSession<'_>,
    transport: &mut dyn Transport,
    retry: Retry,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Progress> {
    let store = session.store;
    let outcome = run_session_messages(session, transport, retry, cancel, on_progress);
    if outcome.is_err() {
        // A first pull cut off midway leaves no list index unbuilt behind it: lists would
        // still be right without them, but slow until the next pull completes.
        if let Err(e) = store.build_deferred_indexes() {
            tracing::warn!(error = %e, "building the list indexes after an interrupted first pull failed");
        }
    }
    outcome
}

fn run_session_messages(
    mut session: SyncSession<'_>,
    transport: &mut dyn Transport,
    retry: Retry,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Progress> {
    on_progress(session.progress());
    while let Some(message) = session.next_request()? {
        let mut delay = retry.first_delay;
        let mut attempt = 0;
        let reply = loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(CoreError::Cancelled);
            }
            match transport.send(&message) {
                Ok(reply) => break Ok(reply),
                Err(CoreError::Network(_)) | Err(CoreError::Relay { status: 500..=599, .. })
                    if attempt + 1 < retry.attempts =>
                {
                    attempt += 1;
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(retry.max_delay);
                }
                Err(e) => break Err(e),
            }
        };
        match reply {
            Ok(reply) => session.handle(reply)?,
            Err(e) => session.handle_refusal(e)?,
        }
        on_progress(session.progress());
    }
    Ok(session.progress().clone())
}

/// The real transport: HTTP to the relay.
///
/// While the session applies a pulled page that says more follow, the next page is already
/// being fetched (and decoded) on a helper thread: applying a page of a first pull and the
/// relay reading the next one then overlap instead of taking turns. A pull asked for with
/// another cursor or page size than the one fetched ahead is fetched afresh; the page fetched
/// ahead is only ever used as the answer to exactly the request it was fetched for.
pub struct HttpTransport {
    base: String,
    token: String,
    http: Http,
    next_page: Option<PageFetchedAhead>,
}

/// How long a connection may move no bytes before it is dropped and the request retried. A
/// hall's Wi-Fi can stall a connection without closing it; without this a sync waited for the
/// whole request timeout, again on every retry. Slow but moving transfers are never cut: the
/// clock restarts with every byte read.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP client and the small runtime that drives it. reqwest's asynchronous client is used
/// for its read timeout (per read, not per request), which its blocking client does not offer;
/// callers stay synchronous.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    runtime: std::sync::Arc<tokio::runtime::Runtime>,
}

impl Http {
    fn new() -> Result<Http> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(STALL_TIMEOUT)
            // A backstop for what a read timeout cannot see (a peer that stops taking an
            // upload): no one request may take longer than this.
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| CoreError::Network(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gridwalk-http")
            .enable_all()
            .build()
            .map_err(|e| CoreError::Network(format!("cannot start the network thread: {e}")))?;
        Ok(Http { client, runtime: std::sync::Arc::new(runtime) })
    }

    /// Runs one request to its end on the runtime.
    fn run<T>(&self, request: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(request)
    }
}

/// Drops its runtime on a thread of its own: a runtime may not be dropped inside another
/// runtime's context (the app's worker runs on one).
impl Drop for HttpTransport {
    fn drop(&mut self) {
        let http = self.http.clone();
        let next = self.next_page.take();
        let _ = std::thread::Builder::new().name("gridwalk-http-drop".into()).spawn(move || {
            drop(next);
            drop(http);
        });
    }
}

/// A pull sent ahead of the session's asking for it.
struct PageFetchedAhead {
    cursor: String,
    limit: usize,
    reply: std::thread::JoinHandle<Result<Incoming>>,
}

impl HttpTransport {
    pub fn new(link: &RelayLink) -> Result<Self> {
        Ok(HttpTransport {
            base: link.url.trim_end_matches('/').to_string(),
            token: link.token.clone(),
            http: Http::new()?,
            next_page: None,
        })
    }

    /// A pull's reply: the page fetched ahead when it was fetched for exactly this request,
    /// else a fresh fetch. Either way, the page after it is then fetched ahead if there is one.
    fn pull(&mut self, cursor: &str, limit: usize) -> Result<Incoming> {
        let reply = match self.next_page.take() {
            Some(ahead) if ahead.cursor == cursor && ahead.limit == limit => {
                ahead.reply.join().unwrap_or_else(|_| Err(CoreError::Network("fetching the next page stopped".into())))
            }
            // A page fetched for another request is left to finish on its own and dropped.
            _ => fetch_page(&self.http, &self.base, &self.token, cursor, limit),
        };
        if let Ok(Incoming::Pulled(page)) = &reply {
            if page.more {
                let (http, base, token, next) =
                    (self.http.clone(), self.base.clone(), self.token.clone(), page.cursor.clone());
                let ahead = std::thread::Builder::new()
                    .name("gridwalk-next-page".into())
                    .spawn(move || fetch_page(&http, &base, &token, &next, limit));
                // A thread that cannot be started only means the next page is fetched when asked.
                if let Ok(reply) = ahead {
                    self.next_page = Some(PageFetchedAhead { cursor: page.cursor.clone(), limit, reply });
                }
            }
        }
        reply
    }
}

/// One `GET /v1/pull`, decoded.
fn fetch_page(http: &Http, base: &str, token: &str, cursor: &str, limit: usize) -> Result<Incoming> {
    http.run(async {
        let resp = http
            .client
            .get(format!("{base}/v1/pull"))
            .bearer_auth(token)
            .query(&[("cursor", cursor), ("limit", &limit.to_string())])
            .send()
            .await
            .map_err(network)?;
        let body = success(resp).await?.bytes().await.map_err(network)?;
        Ok(Incoming::Pulled(protocol::decode(&body)?))
    })
}

fn network(e: reqwest::Error) -> CoreError {
    CoreError::Network(e.to_string())
}

/// Turns a non-success reply into the relay's `{code, message}`.
async fn refusal(resp: reqwest::Response) -> CoreError {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => CoreError::Relay { status, code: e.code, message: e.message },
        Err(_) => CoreError::Relay {
            status,
            code: "http_error".into(),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        },
    }
}

impl HttpTransport {
    /// The URL of a blob, for an id checked to be a photo id: nothing else ever reaches a path.
    fn blob_url(&self, hash: &str, suffix: &str) -> Result<String> {
        validate_hash(hash).map_err(|e| CoreError::invalid("photo", e.to_string()))?;
        Ok(format!("{}/v1/blobs/{hash}{suffix}", self.base))
    }
}

/// A reply's body when its status is a success, the relay's refusal otherwise.
async fn success(resp: reqwest::Response) -> Result<reqwest::Response> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(refusal(resp).await)
    }
}

/// `bytes a-b/total` → (a, total).
fn content_range(value: &str) -> Option<(u64, u64)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

impl Transport for HttpTransport {
    fn send(&mut self, message: &Outgoing) -> Result<Incoming> {
        let http = &self.http;
        let (base, token) = (&self.base, &self.token);
        match message {
            Outgoing::Push(req) => http.run(async {
                let resp = http
                    .client
                    .post(format!("{base}/v1/push"))
                    .bearer_auth(token)
                    .header(reqwest::header::CONTENT_TYPE, protocol::BINARY_CONTENT_TYPE)
                    .body(protocol::encode(req))
                    .send()
                    .await
                    .map_err(network)?;
                let body = success(resp).await?.bytes().await.map_err(network)?;
                Ok(Incoming::Pushed(protocol::decode(&body)?))
            }),
            Outgoing::Pull { cursor, limit } => self.pull(cursor, *limit),
            Outgoing::BlobStatus { hash } => {
                let url = self.blob_url(hash, "/status")?;
                http.run(async {
                    let resp = http.client.get(url).bearer_auth(token).send().await.map_err(network)?;
                    Ok(Incoming::BlobStatus(success(resp).await?.json().await.map_err(network)?))
                })
            }
            Outgoing::BlobUpload { hash, offset, total, bytes } => {
                let url = self.blob_url(hash, "")?;
                http.run(async {
                    let resp = http
                        .client
                        .put(url)
                        .bearer_auth(token)
                        .query(&[("offset", offset), ("total", total)])
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes.clone())
                        .send()
                        .await
                        .map_err(network)?;
                    Ok(Incoming::BlobStatus(success(resp).await?.json().await.map_err(network)?))
                })
            }
            Outgoing::BlobDownload { hash, offset, max_len } => {
                let url = self.blob_url(hash, "")?;
                let last = offset + max_len.max(&1) - 1;
                http.run(async {
                    let resp = http
                        .client
                        .get(url)
                        .bearer_auth(token)
                        .header(reqwest::header::RANGE, format!("bytes={offset}-{last}"))
                        .send()
                        .await
                        .map_err(network)?;
                    let resp = success(resp).await?;
                    let partial = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
                    let range = resp
                        .headers()
                        .get(reqwest::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(content_range);
                    let bytes = resp.bytes().await.map_err(network)?.to_vec();
                    let (start, total) = match (partial, range) {
                        (true, Some(range)) => range,
                        // A whole blob (a relay that ignored the range): it starts at 0.
                        (false, _) => (0, bytes.len() as u64),
                        (true, None) => {
                            return Err(CoreError::Network("a partial reply without a Content-Range".into()))
                        }
                    };
                    Ok(Incoming::BlobBytes(BlobBytes { start, total, bytes }))
                })
            }
        }
    }
}

/// Enrols this device with a relay using a one-time code from the hall, and remembers the relay.
pub fn join(store: &Store, relay_url: &str, code: &str, device_name: &str) -> Result<RelayLink> {
    let link = enroll(relay_url, code, device_name)?;
    store.set_relay_link(&link)?;
    Ok(link)
}

/// Presents an enrolment code to a relay and returns the link it grants, without a store: a new
/// app learns from it whose device it is before it creates its store.
///
/// A lost reply is retried with the same device key, which the relay answers for the same
/// device: the code is not used up by a reply that never arrived.
pub fn enroll(relay_url: &str, code: &str, device_name: &str) -> Result<RelayLink> {
    let base = relay_url.trim_end_matches('/');
    let mut key = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    let request = EnrollRequest {
        code: code.to_string(),
        device_name: device_name.to_string(),
        device_key: Some(hex::encode(key)),
    };
    let body: EnrollResponse = std::thread::scope(|scope| {
        // On a thread of its own, runtime and all: the caller may be inside another runtime.
        scope
            .spawn(|| {
                let http = Http::new()?;
                let mut delay = Duration::from_millis(300);
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let reply = http.run(async {
                        let resp = http
                            .client
                            .post(format!("{base}/v1/enroll"))
                            .json(&request)
                            .send()
                            .await
                            .map_err(network)?;
                        success(resp).await?.json::<EnrollResponse>().await.map_err(network)
                    });
                    match reply {
                        Err(CoreError::Network(_)) if attempt < ENROL_ATTEMPTS => {
                            std::thread::sleep(delay);
                            delay *= 2;
                        }
                        other => return other,
                    }
                }
            })
            .join()
            .unwrap_or_else(|_| Err(CoreError::Network("the enrolment request stopped".into())))
    })?;
    Ok(RelayLink {
        url: base.to_string(),
        device_id: body.device_id,
        token: body.token,
        role: body.role,
        grids: body.grids,
        walker: body.walker,
        device_number: body.device_number,
        staff_sign_in: body.staff_sign_in,
    })
}

/// Posts `request` as JSON to the relay's `path` with the device's token and a short timeout,
/// on a thread of its own (the caller may be inside an async runtime, where a blocking client
/// may not run). `Err(Network)` when the relay is out of reach; its `{code, message}` when it
/// refuses.
fn post_to_relay<Req, Resp>(link: &RelayLink, path: &str, request: &Req) -> Result<Resp>
where
    Req: serde::Serialize + Sync,
    Resp: serde::de::DeserializeOwned + Send,
{
    let url = format!("{}{path}", link.url.trim_end_matches('/'));
    short_request(
        |client| client.post(&url).bearer_auth(&link.token).json(request),
        |resp| resp.json().map_err(|e| CoreError::Network(e.to_string())),
    )
}

/// One short request to the relay (a few seconds at most), on a thread of its own: reqwest's
/// blocking client must not run on an async runtime's thread, which a caller may be on. `read`
/// takes a successful answer; any other is the relay's `{code, message}` refusal.
fn short_request<T: Send>(
    build: impl FnOnce(&reqwest::blocking::Client) -> reqwest::blocking::RequestBuilder + Send,
    read: impl FnOnce(reqwest::blocking::Response) -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let client = reqwest::blocking::Client::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(6))
                    .build()
                    .map_err(|e| CoreError::Network(e.to_string()))?;
                let resp = build(&client).send().map_err(|e| CoreError::Network(e.to_string()))?;
                let status = resp.status().as_u16();
                if resp.status().is_success() {
                    return read(resp);
                }
                let body: Option<ErrorBody> = resp.json().ok();
                let (code, message) = body.map(|b| (b.code, b.message)).unwrap_or_default();
                Err(CoreError::Relay { status, code, message })
            })
            .join()
            .unwrap_or_else(|_| Err(CoreError::Network("the request to the relay stopped".into())))
    })
}

/// Asks the relay whether `pin` is `person`'s PIN, by its newest staff list: `Ok(Some)` with
/// who she is when it is, `Ok(None)` when it is not. `Err(Network)` when the relay is out of
/// reach within a few seconds (the hall PC then checks the hash it holds), and the relay's own
/// refusal otherwise (429 after too many wrong PINs; 404 before the hall has a staff list).
pub fn sign_in_with_relay(
    link: &RelayLink,
    person: &str,
    pin: &str,
) -> Result<Option<gridwalk_protocol::StaffSignInResponse>> {
    let request = gridwalk_protocol::StaffSignInRequest { person: person.to_string(), pin: pin.to_string() };
    match post_to_relay(link, "/v1/staff/sign-in", &request) {
        Ok(who) => Ok(Some(who)),
        Err(CoreError::Relay { code, .. }) if code == "wrong_pin" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Asks the relay to change the hall's staff list (see `gridwalk_relay::staff`): it checks the
/// asker's own PIN and whether she may, and writes the change; this device receives it by its
/// next pull. Needs the relay in reach: nobody's word alone changes who signs in.
pub fn change_staff(
    link: &RelayLink,
    request: &gridwalk_protocol::StaffChangeRequest,
) -> Result<gridwalk_protocol::StaffChangeResponse> {
    post_to_relay(link, "/v1/staff/change", request)
}

/// Asks the relay for a one-time enrolment code for a new device, as an admin with her own PIN
/// (`POST /v1/enrollments`): the relay checks both. Needs the relay in reach.
pub fn issue_enrollment(
    link: &RelayLink,
    request: &gridwalk_protocol::IssueEnrollmentRequest,
) -> Result<gridwalk_protocol::IssueEnrollmentResponse> {
    post_to_relay(link, "/v1/enrollments", request)
}

/// Tells the relay that this device, which it revoked, destroyed its key and its records
/// (`POST /v1/wiped` with the revoked device's own token).
pub fn confirm_wipe(relay_url: &str, token: &str) -> Result<()> {
    let url = format!("{}/v1/wiped", relay_url.trim_end_matches('/'));
    short_request(|client| client.post(&url).bearer_auth(token), |_| Ok(()))
}

/// How often an enrolment is tried when the network fails it.
const ENROL_ATTEMPTS: u32 = 4;

/// The device as its relay knows it now (`GET /v1/device`): its role and grids.
pub fn fetch_device(link: &RelayLink) -> Result<gridwalk_protocol::DeviceView> {
    let url = format!("{}/v1/device", link.url.trim_end_matches('/'));
    short_request(
        |client| client.get(&url).bearer_auth(&link.token),
        |resp| resp.json().map_err(|e| CoreError::Network(e.to_string())),
    )
}

/// A walker's phone asks its relay which grids it serves now, before it syncs, and forgets the
/// records of a grid the hall moved it off (`Store::move_to_grids`). A relay that cannot say
/// (an older one) changes nothing; one that refuses the device ends the sync with its answer.
fn follow_grid_move(store: &Store, link: &RelayLink) -> Result<()> {
    if link.role != "walker" {
        return Ok(());
    }
    let view = match fetch_device(link) {
        Ok(view) => view,
        Err(e @ CoreError::Relay { status: 401, .. }) => return Err(e),
        Err(e) => {
            tracing::warn!("cannot ask the relay for this device's grids: {e}");
            return Ok(());
        }
    };
    let mut now = view.grids;
    now.sort();
    let mut had = link.grids.clone();
    had.sort();
    if now != had && !now.is_empty() {
        let moved = store.move_to_grids(&now)?;
        tracing::info!(?moved, "the hall moved this phone to other grids");
        if let Err(e) = store.collect_garbage() {
            tracing::warn!("photo files of the grids left stay until the next collection: {e}");
        }
    }
    Ok(())
}

/// Syncs with the joined relay over HTTP.
pub fn sync_over_http(store: &Store, cancel: &AtomicBool, on_progress: &mut dyn FnMut(&Progress)) -> Result<Progress> {
    let link = store.relay_link()?.ok_or(CoreError::NotJoined)?;
    follow_grid_move(store, &link)?;
    let mut transport = HttpTransport::new(&link)?;
    run(store, &mut transport, SessionLimits::default(), Retry::default(), cancel, on_progress)
}

/// Documents waiting in the outbox (distinct), for "still waiting to go up".
pub fn pending_documents(store: &Store) -> Result<BTreeSet<String>> {
    Ok(store.outbox(usize::MAX >> 1)?.into_iter().map(|e| e.doc_id).collect())
}

/// Whether the relay answers its `/health` within a couple of seconds: the app's online mark
/// and its cue to start syncing by itself.
pub fn relay_reachable(relay_url: &str) -> bool {
    let Ok(client) = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return false;
    };
    client
        .get(format!("{}/health", relay_url.trim_end_matches('/')))
        .send()
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

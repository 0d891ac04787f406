//! The device's side of sync, as a state machine that owns no I/O (the samod shape).
//!
//! [`SyncSession`] says what to send next ([`Outgoing`]) and digests what came back
//! ([`Incoming`]), reading the outbox and writing pulled pages through a [`SyncStore`]: the
//! device's SQLite store implements it in `gridwalk-core`, and nothing here knows SQLite, HTTP
//! or a clock. [`run`] drives a session over any [`Transport`]: the real one is the core's
//! `HttpTransport` (reqwest), tests use an in-process relay. Everything a session knows lives in
//! the store (outbox, cursor), so a sync that is cut off anywhere resumes where it stopped by
//! simply running again.
//!
//! A sync runs in four phases: push the outbox, pull pages, upload the photos the relay has not
//! acknowledged, download the photos local documents name that this device lacks. Documents go
//! first because they are small and are what the hall works from; photos follow, and a photo
//! the relay refuses or does not have yet is noted in [`Progress`] and skipped, so one bad photo
//! never holds up the rest. Photo transfers resume too: an upload asks the relay what it already
//! holds and sends the rest; a download keeps its bytes in a partial file the store keeps
//! ([`SyncStore::append_partial`]) and asks the relay only for the bytes after its end.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use gridwalk_protocol::{
    BlobBytes, BlobStatus, DocChanges, PullResponse, PulledDoc, PushRequest, PushResponse, MAX_BLOB_BYTES,
    PROTOCOL_VERSION,
};

/// Why a sync message failed or a sync stopped, as the session and its transport see it. A
/// store's own errors are its own type ([`SyncStore::Error`]), which takes these in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncFailure {
    /// The relay could not be reached, or the connection broke: worth trying again.
    #[error("network: {0}")]
    Network(String),
    /// The relay answered with a refusal (`{code, message}` and its HTTP status).
    #[error("relay refused ({status} {code}): {message}")]
    Relay { status: u16, code: String, message: String },
    /// The caller asked the sync to stop.
    #[error("the sync was cancelled")]
    Cancelled,
    /// A message out of turn: a reply that answers nothing asked, or a question asked while a
    /// reply is still awaited. A bug in the driver, not in the relay.
    #[error("sync out of step: {0}")]
    OutOfStep(&'static str),
    /// A reply that is no valid sync message, or a request that cannot be made (a photo id that
    /// is none): asking again would not help.
    #[error("{0}")]
    BadMessage(String),
}

/// One change waiting in the outbox for the relay's acknowledgement.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub seq: i64,
    pub doc_id: String,
    pub bytes: Vec<u8>,
}

/// A photo this device cannot send or keep: its file is gone or damaged, or the bytes received
/// are no photo. Named by a stable code; the sync goes on with the next photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoRefusal {
    pub code: String,
    pub message: String,
}

/// What a session needs of the device's store. Each call is its own transaction in the store;
/// the session keeps nothing else, so a sync cut off between any two calls resumes by running
/// again. The core's SQLite `Store` is the implementation the app uses.
pub trait SyncStore {
    /// The store's own error. A session's and a transport's failures become it too.
    type Error: From<SyncFailure> + std::fmt::Display;
    /// How many documents have changes waiting in the outbox.
    fn outbox_docs(&self) -> Result<usize, Self::Error>;
    /// The oldest `limit` outbox entries, in order.
    fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, Self::Error>;
    /// The relay's first receipt time of these changes of `doc` (milliseconds).
    fn record_receipts(&self, doc: &str, hashes: &[[u8; 32]], received_at: i64) -> Result<(), Self::Error>;
    /// The relay holds every outbox entry up to `seq`: they go.
    fn acknowledge_outbox(&self, up_to: i64) -> Result<(), Self::Error>;
    fn pull_cursor(&self) -> Result<String, Self::Error>;
    /// One pulled page and the cursor after it, in one transaction.
    fn apply_pull_page(&self, docs: &[PulledDoc], cursor: &str) -> Result<(), Self::Error>;
    /// A first pull left its list indexes to its end: they are built now (nothing otherwise).
    fn build_deferred_indexes(&self) -> Result<(), Self::Error>;
    /// Photos the relay has not acknowledged yet.
    fn unacknowledged_photos(&self) -> Result<Vec<String>, Self::Error>;
    /// A stored photo's size in bytes, `None` when this device does not hold it.
    fn photo_size(&self, hash: &str) -> Result<Option<u64>, Self::Error>;
    /// A stored photo's bytes; the inner error when its file is gone or damaged.
    fn photo_bytes(&self, hash: &str) -> Result<Result<Vec<u8>, PhotoRefusal>, Self::Error>;
    /// The relay holds the photo whole (its check time, milliseconds).
    fn mark_photo_acknowledged(&self, hash: &str, checked_at: i64) -> Result<(), Self::Error>;
    /// Photos local documents name that this device lacks.
    fn wanted_photos(&self) -> Result<Vec<String>, Self::Error>;
    /// How many bytes of a photo being downloaded are kept.
    fn partial_len(&self, hash: &str) -> Result<u64, Self::Error>;
    fn remove_partial(&self, hash: &str) -> Result<(), Self::Error>;
    /// Keeps `bytes` of a photo being downloaded, from `offset`, durably before it returns.
    fn append_partial(&self, hash: &str, offset: u64, bytes: &[u8]) -> Result<(), Self::Error>;
    fn read_partial(&self, hash: &str) -> Result<Vec<u8>, Self::Error>;
    /// Stores a downloaded photo whose bytes hash to `hash`; the inner error when they are no
    /// photo this device accepts.
    fn store_received_photo(
        &self,
        hash: &str,
        bytes: &[u8],
        checked_at: i64,
    ) -> Result<Result<(), PhotoRefusal>, Self::Error>;
}

/// The id of a photo: the SHA-256 of its bytes, in lowercase hex (the protocol's blob id).
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

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

pub struct SyncSession<'s, S: SyncStore> {
    store: &'s S,
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

impl<'s, S: SyncStore> SyncSession<'s, S> {
    pub fn new(store: &'s S, limits: SessionLimits) -> Result<Self, S::Error> {
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
    fn upload_bytes(&mut self, hash: &str) -> Result<Result<&[u8], PhotoRefusal>, S::Error> {
        if self.upload_bytes.as_ref().is_none_or(|(h, _)| h != hash) {
            match self.store.photo_bytes(hash)? {
                Ok(bytes) => self.upload_bytes = Some((hash.to_string(), bytes)),
                Err(refusal) => return Ok(Err(refusal)),
            }
        }
        Ok(Ok(self.upload_bytes.as_ref().map(|(_, b)| b.as_slice()).unwrap_or_default()))
    }

    /// Stores a downloaded photo whose bytes are all in its partial file. Returns false (and
    /// deletes the file) when they are not the photo the id names.
    fn finish_download(&mut self, hash: &str, checked_at: i64) -> Result<bool, S::Error> {
        let bytes = self.store.read_partial(hash)?;
        if content_hash(&bytes) != hash {
            self.store.remove_partial(hash)?;
            return Ok(false);
        }
        match self.store.store_received_photo(hash, &bytes, checked_at)? {
            Ok(()) => self.progress.photos_downloaded += 1,
            // Bytes with the right id that are no photo: another device uploaded garbage under
            // an id a document names. Nothing is stored; the hall has to look at that record.
            Err(refusal) => self.problem(hash, Direction::Down, &refusal.code, refusal.message),
        }
        self.store.remove_partial(hash)?;
        Ok(true)
    }

    /// The next message to send, or `None` when the sync is complete.
    pub fn next_request(&mut self) -> Result<Option<Outgoing>, S::Error> {
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
                            let changes = gridwalk_doc::docs::decode_changes_strict(&bytes).unwrap_or_default();
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
                        let hashes = self.store.unacknowledged_photos()?;
                        self.progress.photos_to_upload = hashes.len();
                        for h in &hashes {
                            if let Some(bytes) = self.store.photo_size(h)? {
                                self.progress.photo_bytes_to_upload += bytes;
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
                    let bytes = match self.upload_bytes(&hash)? {
                        Ok(bytes) => bytes,
                        Err(refusal) => {
                            // The photo's file is gone or damaged on this device: nothing to send.
                            self.problem(&hash, Direction::Up, &refusal.code, refusal.message);
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
                        let hashes = self.store.wanted_photos()?;
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
                    return Err(SyncFailure::OutOfStep("a reply is still awaited").into());
                }
                Phase::Done => return Ok(None),
            }
        }
    }

    /// Digests a reply. A push reply lets the outbox go; a pull page is applied in one
    /// transaction together with its cursor.
    pub fn handle(&mut self, incoming: Incoming) -> Result<(), S::Error> {
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
                    self.store.mark_photo_acknowledged(&hash, status.checked_at)?;
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
                let mut have = self.store.partial_len(&hash)?;
                if have > total {
                    self.store.remove_partial(&hash)?;
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
                self.store.append_partial(&hash, offset, &part.bytes)?;
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
                return Err(SyncFailure::OutOfStep("a reply that does not answer the last request").into());
            }
        }
        Ok(())
    }

    /// Digests a refusal of the last request. A relay's refusal of one photo (forbidden, not
    /// there yet, out of step) is noted and the session moves on to the next photo; anything
    /// else, and every refusal of a document message, ends the sync with the error.
    pub fn handle_refusal(&mut self, error: SyncFailure) -> Result<(), S::Error> {
        let SyncFailure::Relay { status, code, message } = &error else {
            return Err(error.into());
        };
        // A device the relay no longer knows, or a relay in trouble, stops the whole sync.
        if *status == 401 || *status >= 500 {
            return Err(error.into());
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
                return Err(error.into());
            }
        }
        Ok(())
    }
}

/// Carries protocol messages to a relay and back.
pub trait Transport {
    fn send(&mut self, message: &Outgoing) -> Result<Incoming, SyncFailure>;
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
pub fn run<S: SyncStore>(
    store: &S,
    transport: &mut dyn Transport,
    limits: SessionLimits,
    retry: Retry,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Progress, S::Error> {
    run_session(SyncSession::new(store, limits)?, transport, retry, cancel, on_progress)
}

/// [`run`] for a session set up by the caller (a smaller photo chunk, say).
pub fn run_session<S: SyncStore>(
    session: SyncSession<'_, S>,
    transport: &mut dyn Transport,
    retry: Retry,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Progress, S::Error> {
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

fn run_session_messages<S: SyncStore>(
    mut session: SyncSession<'_, S>,
    transport: &mut dyn Transport,
    retry: Retry,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Progress, S::Error> {
    on_progress(session.progress());
    while let Some(message) = session.next_request()? {
        let mut delay = retry.first_delay;
        let mut attempt = 0;
        let reply = loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(SyncFailure::Cancelled.into());
            }
            match transport.send(&message) {
                Ok(reply) => break Ok(reply),
                Err(SyncFailure::Network(_)) | Err(SyncFailure::Relay { status: 500..=599, .. })
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
    // The finished sync too: the bar a person watches ends at 100 %, not at the last message's.
    let done = session.progress().clone();
    on_progress(&done);
    Ok(done)
}

//! The sync session with no SQLite and no network: an in-memory store and a scripted relay in
//! this file. What the session promises is checked here on its own: the outbox goes up in
//! batches and goes only once the relay acknowledges it; pages are applied with their cursor
//! until the relay says no more; photos go up from what the relay already holds and come down
//! resuming a kept partial, a refused or damaged one is noted and the rest carry on; the
//! progress never goes back and ends at 1. The device's SQLite store and the real relay run the
//! same session in `sync-server/tests`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;

use gridwalk_protocol::{
    BlobBytes, BlobStatus, DocReceipts, PullResponse, PulledDoc, PushResponse, Receipt, PROTOCOL_VERSION,
};
use gridwalk_sync::{
    content_hash, run, run_session, Direction, Incoming, OutboxEntry, Outgoing, PhotoRefusal, Progress, Retry,
    SessionLimits, SyncFailure, SyncSession, SyncStore, Transport,
};

/// The store's error: the session's failures, kept as they came.
#[derive(Debug, PartialEq)]
struct MemoryError(SyncFailure);

impl From<SyncFailure> for MemoryError {
    fn from(f: SyncFailure) -> Self {
        MemoryError(f)
    }
}

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Default)]
struct State {
    outbox: Vec<OutboxEntry>,
    receipts: BTreeMap<String, i64>,
    cursor: String,
    docs: BTreeMap<String, Vec<u8>>,
    deferred_built: usize,
    photos: BTreeMap<String, Vec<u8>>,
    acknowledged: BTreeSet<String>,
    wanted: Vec<String>,
    partials: BTreeMap<String, Vec<u8>>,
}

/// A device store in memory.
#[derive(Default)]
struct MemoryStore(RefCell<State>);

impl SyncStore for MemoryStore {
    type Error = MemoryError;
    fn outbox_docs(&self) -> Result<usize, MemoryError> {
        Ok(self.0.borrow().outbox.iter().map(|e| &e.doc_id).collect::<BTreeSet<_>>().len())
    }
    fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, MemoryError> {
        Ok(self.0.borrow().outbox.iter().take(limit).cloned().collect())
    }
    fn record_receipts(&self, doc: &str, _: &[[u8; 32]], received_at: i64) -> Result<(), MemoryError> {
        self.0.borrow_mut().receipts.insert(doc.to_string(), received_at);
        Ok(())
    }
    fn acknowledge_outbox(&self, up_to: i64) -> Result<(), MemoryError> {
        self.0.borrow_mut().outbox.retain(|e| e.seq > up_to);
        Ok(())
    }
    fn pull_cursor(&self) -> Result<String, MemoryError> {
        Ok(self.0.borrow().cursor.clone())
    }
    fn apply_pull_page(&self, docs: &[PulledDoc], cursor: &str) -> Result<(), MemoryError> {
        let mut s = self.0.borrow_mut();
        for d in docs {
            s.docs.insert(d.doc_id.clone(), d.bytes.clone());
        }
        s.cursor = cursor.to_string();
        Ok(())
    }
    fn build_deferred_indexes(&self) -> Result<(), MemoryError> {
        self.0.borrow_mut().deferred_built += 1;
        Ok(())
    }
    fn unacknowledged_photos(&self) -> Result<Vec<String>, MemoryError> {
        let s = self.0.borrow();
        Ok(s.photos.keys().filter(|h| !s.acknowledged.contains(*h)).cloned().collect())
    }
    fn photo_size(&self, hash: &str) -> Result<Option<u64>, MemoryError> {
        Ok(self.0.borrow().photos.get(hash).map(|b| b.len() as u64))
    }
    fn photo_bytes(&self, hash: &str) -> Result<Result<Vec<u8>, PhotoRefusal>, MemoryError> {
        Ok(match self.0.borrow().photos.get(hash) {
            Some(b) if content_hash(b) == hash => Ok(b.clone()),
            Some(_) => Err(PhotoRefusal { code: "photo_corrupt".into(), message: "damaged".into() }),
            None => Err(PhotoRefusal { code: "photo_missing".into(), message: "gone".into() }),
        })
    }
    fn mark_photo_acknowledged(&self, hash: &str, _: i64) -> Result<(), MemoryError> {
        self.0.borrow_mut().acknowledged.insert(hash.to_string());
        Ok(())
    }
    fn wanted_photos(&self) -> Result<Vec<String>, MemoryError> {
        let s = self.0.borrow();
        Ok(s.wanted.iter().filter(|h| !s.photos.contains_key(*h)).cloned().collect())
    }
    fn partial_len(&self, hash: &str) -> Result<u64, MemoryError> {
        Ok(self.0.borrow().partials.get(hash).map_or(0, |b| b.len() as u64))
    }
    fn remove_partial(&self, hash: &str) -> Result<(), MemoryError> {
        self.0.borrow_mut().partials.remove(hash);
        Ok(())
    }
    fn append_partial(&self, hash: &str, offset: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        let mut s = self.0.borrow_mut();
        let p = s.partials.entry(hash.to_string()).or_default();
        p.truncate(offset as usize);
        p.extend_from_slice(bytes);
        Ok(())
    }
    fn read_partial(&self, hash: &str) -> Result<Vec<u8>, MemoryError> {
        Ok(self.0.borrow().partials.get(hash).cloned().unwrap_or_default())
    }
    fn store_received_photo(&self, hash: &str, bytes: &[u8], _: i64) -> Result<Result<(), PhotoRefusal>, MemoryError> {
        if bytes.starts_with(b"not a photo") {
            return Ok(Err(PhotoRefusal { code: "photo_not_an_image".into(), message: "no photo".into() }));
        }
        self.0.borrow_mut().photos.insert(hash.to_string(), bytes.to_vec());
        Ok(Ok(()))
    }
}

/// A relay in a few lines: documents by id in arrival order, blobs by id, and what to refuse.
#[derive(Default)]
struct ScriptedRelay {
    docs: Vec<(String, Vec<u8>)>,
    pushes: usize,
    blobs: BTreeMap<String, Vec<u8>>,
    /// Blobs the relay holds only partly (an upload cut off earlier).
    partial_uploads: BTreeMap<String, usize>,
    /// Blob ids the relay answers 403 for.
    forbidden: BTreeSet<String>,
    /// Network failures to give before answering, message by message.
    drops: Vec<bool>,
    sent: usize,
    download_offsets: Vec<u64>,
}

impl Transport for ScriptedRelay {
    fn send(&mut self, message: &Outgoing) -> Result<Incoming, SyncFailure> {
        let n = self.sent;
        self.sent += 1;
        if self.drops.get(n).copied().unwrap_or(false) {
            return Err(SyncFailure::Network("dropped".into()));
        }
        let refuse = |status, code: &str| SyncFailure::Relay { status, code: code.into(), message: code.into() };
        Ok(match message {
            Outgoing::Push(req) => {
                self.pushes += 1;
                for d in &req.docs {
                    self.docs.push((d.doc_id.clone(), d.bytes.clone()));
                }
                let receipts = req
                    .docs
                    .iter()
                    .map(|d| DocReceipts { doc_id: d.doc_id.clone(), receipts: Vec::<Receipt>::new() })
                    .collect();
                Incoming::Pushed(PushResponse {
                    stored: req.docs.len() as u32,
                    duplicates: 0,
                    received_at: 7,
                    receipts,
                })
            }
            Outgoing::Pull { cursor, limit } => {
                let from: usize = cursor.parse().unwrap_or(0);
                let page: Vec<PulledDoc> = self
                    .docs
                    .iter()
                    .skip(from)
                    .take(*limit)
                    .map(|(id, bytes)| PulledDoc {
                        doc_id: id.clone(),
                        snapshot: false,
                        bytes: bytes.clone(),
                        receipts: vec![],
                    })
                    .collect();
                let next = from + page.len();
                Incoming::Pulled(PullResponse {
                    version: PROTOCOL_VERSION,
                    docs: page,
                    cursor: next.to_string(),
                    more: next < self.docs.len(),
                })
            }
            Outgoing::BlobStatus { hash } => {
                if self.forbidden.contains(hash) {
                    return Err(refuse(403, "forbidden_photo"));
                }
                // As the relay answers: what it holds of the blob, nothing for one it never saw.
                let held = self.partial_uploads.get(hash).copied();
                let status = |size: usize, complete| BlobStatus { size_received: size as u64, complete, checked_at: 9 };
                match (self.blobs.get(hash), held) {
                    (Some(b), None) => Incoming::BlobStatus(status(b.len(), true)),
                    (Some(_), Some(n)) => Incoming::BlobStatus(status(n, false)),
                    (None, _) => Incoming::BlobStatus(status(0, false)),
                }
            }
            Outgoing::BlobUpload { hash, offset, total, bytes } => {
                let held = self.partial_uploads.get(hash).copied().unwrap_or(0);
                if *offset as usize != held {
                    return Err(refuse(409, "wrong_offset"));
                }
                let blob = self.blobs.entry(hash.clone()).or_default();
                blob.truncate(held);
                blob.extend_from_slice(bytes);
                let now = blob.len();
                if now as u64 == *total {
                    self.partial_uploads.remove(hash);
                    Incoming::BlobStatus(BlobStatus { size_received: now as u64, complete: true, checked_at: 9 })
                } else {
                    self.partial_uploads.insert(hash.clone(), now);
                    Incoming::BlobStatus(BlobStatus { size_received: now as u64, complete: false, checked_at: 0 })
                }
            }
            Outgoing::BlobDownload { hash, offset, max_len } => {
                self.download_offsets.push(*offset);
                let b = self.blobs.get(hash).ok_or_else(|| refuse(404, "no_such_blob"))?;
                let end = (*offset + *max_len).min(b.len() as u64);
                Incoming::BlobBytes(BlobBytes {
                    start: *offset,
                    total: b.len() as u64,
                    bytes: b[*offset as usize..end as usize].to_vec(),
                })
            }
        })
    }
}

/// An outbox entry holding one real Automerge change, so the session can name its hash.
fn entry(seq: i64, doc: &str) -> OutboxEntry {
    use automerge::transaction::Transactable;
    let mut d = automerge::AutoCommit::new();
    d.put(automerge::ROOT, "seq", seq).unwrap();
    d.commit();
    let bytes = d.get_last_local_change().unwrap().raw_bytes().to_vec();
    OutboxEntry { seq, doc_id: doc.into(), bytes }
}

/// Runs a whole sync, recording every progress figure shown on the way.
fn sync(
    store: &MemoryStore,
    relay: &mut ScriptedRelay,
    limits: SessionLimits,
    chunk: usize,
) -> (Result<Progress, MemoryError>, Vec<f64>) {
    let mut shown = Vec::new();
    let session = SyncSession::new(store, limits).unwrap().with_blob_chunk(chunk);
    let result = run_session(
        session,
        relay,
        Retry { attempts: 3, first_delay: Default::default(), max_delay: Default::default() },
        &AtomicBool::new(false),
        &mut |p| shown.push(p.fraction()),
    );
    (result, shown)
}

fn never_back_and_ends_at_one(shown: &[f64]) {
    assert!(shown.windows(2).all(|w| w[1] >= w[0]), "the progress went back: {shown:?}");
    assert!(shown.iter().all(|f| (0.0..=1.0).contains(f)), "{shown:?}");
    assert_eq!(shown.last().copied(), Some(1.0));
}

#[test]
fn the_outbox_goes_up_in_batches_and_pages_come_down_with_their_cursor_until_no_more() {
    let phone = MemoryStore::default();
    phone.0.borrow_mut().outbox = vec![entry(1, "a"), entry(2, "b"), entry(3, "a"), entry(4, "c"), entry(5, "d")];
    let mut relay = ScriptedRelay { docs: vec![("x".into(), b"x".to_vec())], ..ScriptedRelay::default() };
    let limits = SessionLimits { push_entries: 2, push_bytes: 1 << 20, pull_page: 2 };
    let (result, shown) = sync(&phone, &mut relay, limits, 4);
    let progress = result.unwrap();
    assert_eq!(relay.pushes, 3, "five entries two at a time");
    assert!(phone.0.borrow().outbox.is_empty(), "acknowledged entries leave the outbox");
    assert_eq!((progress.docs_to_push, progress.docs_pushed), (4, 4), "documents, not entries");
    let receipts: Vec<(String, i64)> = phone.0.borrow().receipts.clone().into_iter().collect();
    assert_eq!(receipts, vec![("a".into(), 7), ("b".into(), 7), ("c".into(), 7), ("d".into(), 7)], "the relay's time");
    // The relay's six documents (its own and the four pushed, "a" twice) come down in pages of two.
    assert_eq!(progress.pages_pulled, 3);
    assert_eq!(phone.0.borrow().cursor, "6");
    assert_eq!(phone.0.borrow().deferred_built, 1, "the deferred indexes are built once, at the end");
    never_back_and_ends_at_one(&shown);

    // Nothing new: one empty page, nothing pushed.
    let (result, _) = sync(&phone, &mut relay, limits, 4);
    assert_eq!(result.unwrap().docs_pulled, 0);
    assert_eq!(relay.pushes, 3);
}

#[test]
fn a_push_whose_reply_is_lost_leaves_the_outbox_and_is_sent_again() {
    let phone = MemoryStore::default();
    phone.0.borrow_mut().outbox = vec![entry(1, "a")];
    // Every attempt of the first message fails: the sync ends with the network error.
    let mut relay = ScriptedRelay { drops: vec![true, true, true], ..ScriptedRelay::default() };
    let (result, _) = sync(&phone, &mut relay, SessionLimits::default(), 4);
    assert!(matches!(result, Err(MemoryError(SyncFailure::Network(_)))), "{result:?}");
    assert_eq!(phone.0.borrow().outbox.len(), 1, "nothing acknowledged, nothing lost");
    // The next sync sends it.
    let (result, _) = sync(&phone, &mut relay, SessionLimits::default(), 4);
    result.unwrap();
    assert!(phone.0.borrow().outbox.is_empty());
    assert_eq!(relay.pushes, 1);
}

#[test]
fn photos_go_up_from_what_the_relay_holds_and_come_down_resuming_a_kept_part() {
    let photo = b"a photo of a broken streetlight, in twenty-nine bytes".to_vec();
    let up = content_hash(&photo);
    let phone = MemoryStore::default();
    phone.0.borrow_mut().photos.insert(up.clone(), photo.clone());
    // The relay kept 8 bytes of an upload cut off earlier.
    let mut relay = ScriptedRelay::default();
    relay.blobs.insert(up.clone(), photo[..8].to_vec());
    relay.partial_uploads.insert(up.clone(), 8);

    // A photo to come down, of which the phone kept the first 10 bytes.
    let theirs = b"a photo of the same streetlight, mended".to_vec();
    let down = content_hash(&theirs);
    relay.blobs.insert(down.clone(), theirs.clone());
    phone.0.borrow_mut().wanted = vec![down.clone()];
    phone.0.borrow_mut().partials.insert(down.clone(), theirs[..10].to_vec());

    let (result, shown) = sync(&phone, &mut relay, SessionLimits::default(), 16);
    let p = result.unwrap();
    assert_eq!(relay.blobs[&up], photo, "the upload went on from the relay's 8 bytes");
    assert_eq!(p.photo_bytes_up, (photo.len() - 8) as u64, "only what the relay lacked");
    assert!(phone.0.borrow().acknowledged.contains(&up));
    assert_eq!(phone.0.borrow().photos[&down], theirs);
    assert_eq!(relay.download_offsets[0], 10, "the download resumed after the kept bytes");
    assert_eq!(p.photo_bytes_down, (theirs.len() - 10) as u64);
    assert!(phone.0.borrow().partials.is_empty());
    assert!(p.photo_problems.is_empty(), "{:?}", p.photo_problems);
    never_back_and_ends_at_one(&shown);
}

#[test]
fn a_refused_damaged_or_missing_photo_is_noted_and_the_rest_carry_on() {
    let good = b"a good photo".to_vec();
    let phone = MemoryStore::default();
    {
        let mut s = phone.0.borrow_mut();
        s.photos.insert(content_hash(&good), good.clone());
        // A photo whose file is damaged on this device.
        s.photos.insert(content_hash(b"what it was"), b"what it is now".to_vec());
        // A photo the relay refuses, and one it does not have yet, and one that is no photo.
        s.wanted = vec![content_hash(b"forbidden"), content_hash(b"not uploaded yet"), content_hash(b"not a photo!")];
    }
    let mut relay = ScriptedRelay::default();
    relay.forbidden.insert(content_hash(b"forbidden"));
    relay.blobs.insert(content_hash(b"not a photo!"), b"not a photo!".to_vec());
    let (result, shown) = sync(&phone, &mut relay, SessionLimits::default(), 64);
    let p = result.unwrap();
    let problems: Vec<(Direction, &str)> = p.photo_problems.iter().map(|x| (x.direction, x.code.as_str())).collect();
    assert_eq!(
        problems,
        vec![
            (Direction::Up, "photo_corrupt"),
            (Direction::Down, "forbidden_photo"),
            (Direction::Down, "photo_not_an_image")
        ]
    );
    assert_eq!(p.photos_waiting, 1, "the photo not uploaded yet waits for a later sync");
    assert_eq!(relay.blobs[&content_hash(&good)], good, "the good photo went up all the same");
    never_back_and_ends_at_one(&shown);
}

#[test]
fn a_relay_that_no_longer_knows_the_device_ends_the_sync_with_its_refusal() {
    struct Revoked;
    impl Transport for Revoked {
        fn send(&mut self, _: &Outgoing) -> Result<Incoming, SyncFailure> {
            Err(SyncFailure::Relay { status: 401, code: "device_revoked".into(), message: "revoked".into() })
        }
    }
    let phone = MemoryStore::default();
    phone.0.borrow_mut().outbox = vec![entry(1, "a")];
    let result =
        run(&phone, &mut Revoked, SessionLimits::default(), Retry::default(), &AtomicBool::new(false), &mut |_| {});
    assert!(matches!(&result, Err(MemoryError(SyncFailure::Relay { status: 401, .. }))), "{result:?}");
    assert_eq!(phone.0.borrow().outbox.len(), 1);
}

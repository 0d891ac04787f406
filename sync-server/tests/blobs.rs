//! Photos through the relay: a photo taken on one phone reaches the hall and the grid's other
//! walkers byte for byte, with thumbnails made where they are shown; grids fence photos as they
//! fence documents; bad ids, chunks and contents are refused and leave the relay as it was; and
//! uploads and downloads cut off anywhere resume without sending again what already arrived.
//! Most run through the relay's logic in process; the last runs the real relay process over
//! loopback and kills it with SIGKILL mid-upload and mid-download.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::TimeZone;
use common::InMemoryTransport;
use common::{add_photo, device_store, noise_png, t};
use gridwalk_core::docs::{Reporter, Source, Urgency};
use gridwalk_core::lifecycle::{Action, TriageDecision};
use gridwalk_core::photo::{content_hash, Role as PhotoRole};
use gridwalk_core::store::{NewRequest, Store};
use gridwalk_core::sync::protocol::{BlobStatus, DocChanges, EnrollRequest, PushRequest, PROTOCOL_VERSION};
use gridwalk_core::{CoreError, ManualClock};
use gridwalk_relay::blobs::ByteRange;
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{Device, PostgresRelayStore, Role, SqliteRelayStore};
use gridwalk_transport::client::{
    self, Direction, HttpTransport, Incoming, Outgoing, Progress, Retry, SessionLimits, SyncFailure, SyncSession,
    Transport,
};

// ----- set-up ------------------------------------------------------------------------------------

fn relay_in(dir: &Path) -> Relay {
    let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
    Relay::new(Box::new(SqliteRelayStore::open(&dir.join("relay.db")).unwrap()), clock)
}

fn enrol(relay: &Relay, name: &str, role: Role, grids: &[&str]) -> String {
    let grids: Vec<String> = grids.iter().map(|g| g.to_string()).collect();
    let code = relay.create_enrollment(name, role, &grids).unwrap();
    relay.enroll(&EnrollRequest { code, device_name: name.into(), device_key: None }).unwrap().token
}

fn raise(store: &Store, grid: &str, minute: i64) -> String {
    store
        .raise_request(
            &store.context(t(minute)),
            NewRequest {
                id: None,
                grid: grid.into(),
                micro_grid: None,
                reporter: Reporter::Anonymous,
                address: format!("{grid} 村道 3 号路灯"),
                gps: None,
                category: "streetlight".into(),
                description: "路灯不亮".into(),
                urgency: Urgency::Normal,
                source: Source::Visit,
                visit: None,
            },
        )
        .unwrap()
}

const CHUNK: usize = 16 * 1024;

fn run(store: &Store, transport: &mut dyn Transport) -> gridwalk_core::Result<Progress> {
    let session = SyncSession::new(store, SessionLimits::default()).unwrap().with_blob_chunk(CHUNK);
    client::run_session(
        session,
        transport,
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        &mut |_| {},
    )
}

fn sync(store: &Store, relay: &Relay, token: &str) -> Progress {
    run(store, &mut InMemoryTransport::new(relay, token)).unwrap()
}

/// Pushes a store's documents without running a sync, so that its photos stay un-uploaded.
fn push_documents(store: &Store, relay: &Relay, device: &Device) {
    let docs = store
        .document_ids()
        .unwrap()
        .into_iter()
        .map(|id| DocChanges { bytes: store.document_bytes(&id).unwrap(), doc_id: id })
        .collect();
    relay.push(device, &PushRequest { version: PROTOCOL_VERSION, docs }).unwrap();
}

/// Every file under `dir`, with its bytes, for "nothing changed" comparisons.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

/// Wraps a transport: counts the photo bytes that actually reach it, records download offsets,
/// and can fail one chosen photo message, before or after the relay handled it.
struct Watch<T> {
    inner: T,
    bytes_up: u64,
    bytes_down: u64,
    download_offsets: Vec<u64>,
    blob_messages: usize,
    /// Fail the blob message with this index (0-based, counting status questions too).
    fail_at: Option<usize>,
    /// Fail it after the relay handled it (a lost reply) rather than before.
    lose_reply: bool,
}

impl<T: Transport> Watch<T> {
    fn new(inner: T) -> Self {
        Watch {
            inner,
            bytes_up: 0,
            bytes_down: 0,
            download_offsets: Vec::new(),
            blob_messages: 0,
            fail_at: None,
            lose_reply: false,
        }
    }
}

impl<T: Transport> Transport for Watch<T> {
    fn send(&mut self, message: &Outgoing) -> Result<Incoming, SyncFailure> {
        let is_blob = !matches!(message, Outgoing::Push(_) | Outgoing::Pull { .. });
        let fail = is_blob && self.fail_at == Some(self.blob_messages);
        if is_blob {
            self.blob_messages += 1;
        }
        if fail && !self.lose_reply {
            return Err(SyncFailure::Network("connection dropped".into()));
        }
        if let Outgoing::BlobUpload { bytes, .. } = message {
            self.bytes_up += bytes.len() as u64;
        }
        if let Outgoing::BlobDownload { offset, .. } = message {
            self.download_offsets.push(*offset);
        }
        let reply = self.inner.send(message)?;
        if let Incoming::BlobBytes(b) = &reply {
            self.bytes_down += b.bytes.len() as u64;
        }
        if fail {
            return Err(SyncFailure::Network("reply lost".into()));
        }
        Ok(reply)
    }
}

fn assert_thumbnail(store: &Store, hash: &str) {
    let row = store.stored_photo(hash).unwrap().expect("the photo has a row");
    let thumb = store.thumbnail_bytes(hash).unwrap();
    let img = image::load_from_memory(&thumb).expect("the thumbnail is an image");
    assert_eq!((img.width(), img.height()), (row.thumb_width, row.thumb_height));
    assert!(row.thumb_width.max(row.thumb_height) <= 320, "{row:?}");
    assert_eq!(content_hash(&thumb), row.thumb_hash);
    assert!(row.acknowledged_at.is_some(), "a photo that came from the relay is never sent back");
}

// ----- in process ----------------------------------------------------------------------------------

#[test]
fn a_photo_reaches_the_hall_and_the_grids_other_walker_byte_identical_with_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let b = device_store(dir.path(), "phone-b", "wb");
    let c = device_store(dir.path(), "phone-c", "wc");
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let tb = enrol(&relay, "phone-b", Role::Walker, &["g1"]);
    let tc = enrol(&relay, "phone-c", Role::Walker, &["g2"]);
    let th = enrol(&relay, "hall-pc", Role::Hall, &[]);

    let request = raise(&a, "g1", 0);
    let big = add_photo(&a, &request, 640, 480, 1, PhotoRole::Before, 1);
    // Smaller than a thumbnail: its own thumbnail on the phone, and again where it arrives.
    let small = add_photo(&a, &request, 200, 150, 2, PhotoRole::Before, 2);
    let sizes = a.photo_bytes(&big).unwrap().len() as u64 + a.photo_bytes(&small).unwrap().len() as u64;
    assert!(a.photo_bytes(&big).unwrap().len() > 3 * CHUNK, "the photo spans several chunks");
    let c_request = raise(&c, "g2", 3);

    let up = sync(&a, &relay, &ta);
    assert_eq!(
        (up.photos_to_upload, up.photos_uploaded, up.photo_bytes_to_upload, up.photo_bytes_up),
        (2, 2, sizes, sizes)
    );
    assert!(up.photo_problems.is_empty(), "{:?}", up.photo_problems);
    assert!(up.done);
    assert!(a.unacknowledged_photos().unwrap().is_empty());
    assert!(a.stored_photo(&big).unwrap().unwrap().acknowledged_at.is_some());
    // The relay's copy is the phone's file, byte for byte, under its id.
    let root = relay.blob_dir().unwrap();
    assert_eq!(std::fs::read(root.join(&big[..2]).join(&big[2..])).unwrap(), a.photo_bytes(&big).unwrap());

    for (store, token) in [(&b, &tb), (&hall, &th)] {
        let down = sync(store, &relay, token);
        assert_eq!((down.photos_to_download, down.photos_downloaded, down.photo_bytes_down), (2, 2, sizes));
        assert_eq!((down.photos_to_upload, down.photo_bytes_up), (0, 0));
        for hash in [&big, &small] {
            assert_eq!(store.photo_bytes(hash).unwrap(), a.photo_bytes(hash).unwrap());
            assert_thumbnail(store, hash);
        }
        assert_eq!(store.photos_of(&request).unwrap().len(), 2);
        assert!(
            !store.partial_dir().exists() || std::fs::read_dir(store.partial_dir()).unwrap().next().is_none(),
            "no partial file is left"
        );
        // Nothing moves the second time.
        let again = sync(store, &relay, token);
        assert_eq!(
            (again.photos_to_upload, again.photos_to_download, again.photo_bytes_up, again.photo_bytes_down),
            (0, 0, 0, 0)
        );
    }
    let small_row = b.stored_photo(&small).unwrap().unwrap();
    assert_eq!(small_row.thumb_hash, small, "a photo no larger than a thumbnail is its own thumbnail");

    // The walker of grid g2 gets neither g1's request nor its photos.
    let pc = sync(&c, &relay, &tc);
    assert_eq!((pc.photos_to_download, pc.photo_bytes_down), (0, 0));
    assert!(c.stored_photo(&big).unwrap().is_none());
    assert_eq!(c.document_ids().unwrap(), vec![c_request]);

    // The hall fixes the light and resolves with an "after" photo; the walker receives it.
    let ctx = hall.context(t(60));
    hall.act(&ctx, &request, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    let after = add_photo(&hall, &request, 500, 400, 3, PhotoRole::After, 61);
    hall.act(
        &hall.context(t(62)),
        &request,
        Action::Resolved { note: "已更换灯泡".into(), photos: vec![after.clone()] },
    )
    .unwrap();
    let hall_up = sync(&hall, &relay, &th);
    assert_eq!(hall_up.photos_uploaded, 1, "only the new photo goes up; the received ones are acknowledged");
    for (store, token) in [(&a, &ta), (&b, &tb)] {
        let down = sync(store, &relay, token);
        assert_eq!(down.photos_downloaded, 1);
        assert_eq!(store.photo_bytes(&after).unwrap(), hall.photo_bytes(&after).unwrap());
        assert_thumbnail(store, &after);
    }
    // Photos a device holds and its documents need survive its garbage collection.
    assert!(a.collect_garbage().unwrap().deleted.is_empty());
}

#[test]
fn a_walker_of_another_grid_is_refused_every_blob_call() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let tb = enrol(&relay, "phone-b", Role::Walker, &["g2"]);
    let request = raise(&a, "g1", 0);
    let hash = add_photo(&a, &request, 300, 200, 7, PhotoRole::Before, 1);
    let bytes = a.photo_bytes(&hash).unwrap();
    let device_a = relay.authenticate(&ta).unwrap();
    let device_b = relay.authenticate(&tb).unwrap();

    // Before the document that names it is pushed, not even its own phone may upload it.
    let early = relay.put_blob(&device_a, &hash, 0, bytes.len() as u64, &bytes).unwrap_err();
    assert_eq!((early.status, early.code), (403, "forbidden"));
    assert!(early.message.contains("push the document"), "{}", early.message);

    sync(&a, &relay, &ta);
    assert!(relay.blob_status(&device_a, &hash).unwrap().complete);
    let total = bytes.len() as u64;
    let refusals = [
        relay.blob_status(&device_b, &hash).map(|_| ()),
        relay.put_blob(&device_b, &hash, total, total, b"x").map(|_| ()),
        relay.read_blob(&device_b, &hash, None).map(|_| ()),
        relay.read_blob(&device_b, &hash, Some(ByteRange::FromTo(0, 9))).map(|_| ()),
    ];
    for r in refusals {
        let e = r.unwrap_err();
        assert_eq!((e.status, e.code), (403, "forbidden"), "{e:?}");
    }
    // An id no document names anywhere looks exactly the same: a device learns nothing.
    let unknown = content_hash(b"nobody's photo");
    let e = relay.blob_status(&device_a, &unknown).unwrap_err();
    assert_eq!((e.status, e.code), (403, "forbidden"));
    assert_eq!(relay.read_blob(&device_a, &hash, None).unwrap().bytes, bytes);
}

#[test]
fn bad_blob_ids_are_refused_before_the_disk_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let request = raise(&a, "g1", 0);
    let hash = add_photo(&a, &request, 200, 150, 9, PhotoRole::Before, 1);
    sync(&a, &relay, &ta);
    let device = relay.authenticate(&ta).unwrap();
    // SQLite's shared-memory files change under any reader, so everything else is compared by
    // content and those by name only.
    let snapshot = || -> Vec<(PathBuf, Vec<u8>)> {
        files_under(dir.path())
            .into_iter()
            .map(|(p, b)| if p.to_string_lossy().ends_with("-shm") { (p, Vec::new()) } else { (p, b) })
            .collect()
    };
    let before = snapshot();
    for bad in [
        hash.to_uppercase(),
        hash[..63].to_string(),
        format!("{hash}0"),
        String::new(),
        "..".to_string(),
        "../../etc/passwd".to_string(),
        "%2e%2e".to_string(),
        "%2e%2e%2f%2e%2e%2frelay.db".to_string(),
        format!("{}/../{}", &hash[..2], &hash[3..]),
        "g".repeat(64),
    ] {
        for (what, result) in [
            ("status", relay.blob_status(&device, &bad).map(|_| ())),
            ("upload", relay.put_blob(&device, &bad, 0, 3, b"abc").map(|_| ())),
            ("download", relay.read_blob(&device, &bad, None).map(|_| ())),
        ] {
            let e = result.unwrap_err();
            assert_eq!((e.status, e.code), (400, "bad_blob_id"), "{what} {bad:?}");
            assert!(e.message.contains("64 lowercase hexadecimal"), "{}", e.message);
        }
    }
    assert_eq!(snapshot(), before, "no file was created, changed or removed");
}

#[test]
fn misplaced_truncated_and_oversized_chunks_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let device = relay.authenticate(&ta).unwrap();
    let request = raise(&a, "g1", 0);
    let hash = add_photo(&a, &request, 400, 300, 11, PhotoRole::Before, 1);
    push_documents(&a, &relay, &device);
    let bytes = a.photo_bytes(&hash).unwrap();
    let total = bytes.len() as u64;
    assert!(total > 3000);

    let first = relay.put_blob(&device, &hash, 0, total, &bytes[..1000]).unwrap();
    assert_eq!((first.size_received, first.complete), (1000, false));
    let held = files_under(relay.blob_dir().unwrap());
    let refusals = [
        ("the same chunk again", relay.put_blob(&device, &hash, 0, total, &bytes[..1000]), 409, "wrong_offset"),
        ("a gap", relay.put_blob(&device, &hash, 2000, total, &bytes[2000..3000]), 409, "wrong_offset"),
        ("past the end", relay.put_blob(&device, &hash, 1000, 1500, &bytes[1000..2000]), 400, "bad_chunk"),
        ("a total below what is held", relay.put_blob(&device, &hash, 1000, 900, &bytes[1000..1100]), 400, "bad_chunk"),
        ("an empty chunk", relay.put_blob(&device, &hash, 1000, total, &[]), 400, "bad_chunk"),
        ("an empty blob", relay.put_blob(&device, &hash, 0, 0, &[]), 400, "bad_chunk"),
        (
            "over the size limit",
            relay.put_blob(&device, &hash, 1000, 21 * 1024 * 1024, &bytes[1000..2000]),
            413,
            "blob_too_large",
        ),
    ];
    for (what, result, status, code) in refusals {
        let e = result.unwrap_err();
        assert_eq!((e.status, e.code), (status, code), "{what}: {e:?}");
        if status == 409 {
            assert!(e.message.contains("holds 1000 bytes"), "{what}: the refusal says where to go on: {}", e.message);
        }
    }
    assert_eq!(files_under(relay.blob_dir().unwrap()), held, "the relay's bytes are unchanged");
    assert_eq!(relay.blob_status(&device, &hash).unwrap().size_received, 1000);
    // Reading an unfinished blob is refused: only verified blobs are served.
    assert_eq!(relay.read_blob(&device, &hash, None).unwrap_err().status, 404);

    // The rest, sent properly, completes it.
    let done = relay.put_blob(&device, &hash, 1000, total, &bytes[1000..]).unwrap();
    assert_eq!((done.size_received, done.complete), (total, true));
    assert_eq!(relay.read_blob(&device, &hash, None).unwrap().bytes, bytes);
    let tail = relay.read_blob(&device, &hash, Some(ByteRange::Last(10))).unwrap();
    assert_eq!((tail.start, tail.total, tail.bytes.as_slice()), (total - 10, total, &bytes[bytes.len() - 10..]));
    assert_eq!(relay.read_blob(&device, &hash, Some(ByteRange::From(total))).unwrap_err().status, 416);
}

#[test]
fn bytes_that_are_not_the_named_photo_are_refused_and_nothing_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let device = relay.authenticate(&ta).unwrap();
    let request = raise(&a, "g1", 0);
    let hash = add_photo(&a, &request, 300, 200, 13, PhotoRole::Before, 1);
    push_documents(&a, &relay, &device);
    let bytes = a.photo_bytes(&hash).unwrap();
    let total = bytes.len() as u64;

    // Right start, wrong end: every byte received for it goes.
    let mut forged = bytes.clone();
    *forged.last_mut().unwrap() ^= 0xFF;
    relay.put_blob(&device, &hash, 0, total, &forged[..2000]).unwrap();
    let e = relay.put_blob(&device, &hash, 2000, total, &forged[2000..]).unwrap_err();
    assert_eq!((e.status, e.code), (400, "hash_mismatch"));
    // A different photo altogether, in one go.
    let other = noise_png(50, 50, 99);
    let e = relay.put_blob(&device, &hash, 0, other.len() as u64, &other).unwrap_err();
    assert_eq!((e.status, e.code), (400, "hash_mismatch"));
    assert_eq!(
        relay.blob_status(&device, &hash).unwrap(),
        BlobStatus { size_received: 0, complete: false, checked_at: relay_time() }
    );
    assert!(
        files_under(relay.blob_dir().unwrap()).is_empty(),
        "nothing kept: {:?}",
        files_under(relay.blob_dir().unwrap())
    );
    // The real photo still goes up afterwards.
    let up = sync(&a, &relay, &ta);
    assert_eq!((up.photos_uploaded, up.photo_bytes_up), (1, total));
}

fn relay_time() -> i64 {
    chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap().timestamp_millis()
}

#[test]
fn an_interrupted_upload_resumes_and_sends_only_what_the_relay_lacks() {
    for lose_reply in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay_in(dir.path());
        let a = device_store(dir.path(), "phone-a", "wa");
        let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
        let device = relay.authenticate(&ta).unwrap();
        let request = raise(&a, "g1", 0);
        let hash = add_photo(&a, &request, 640, 480, 21, PhotoRole::Before, 1);
        let total = a.photo_bytes(&hash).unwrap().len() as u64;
        assert!(total > 6 * CHUNK as u64);

        // Blob messages: a status question, then chunks; the fifth chunk is cut off.
        let mut cut = Watch::new(InMemoryTransport::new(&relay, ta.as_str()));
        cut.fail_at = Some(5);
        cut.lose_reply = lose_reply;
        let err = run(&a, &mut cut).unwrap_err();
        assert!(matches!(err, CoreError::Network(_)), "{err}");
        assert_eq!(a.unacknowledged_photos().unwrap(), vec![hash.clone()]);
        let held = relay.blob_status(&device, &hash).unwrap().size_received;
        // Four chunks arrived; a fifth too when only its reply was lost.
        let arrived = if lose_reply { 5 } else { 4 } * CHUNK as u64;
        assert_eq!(held, arrived, "lose_reply={lose_reply}");
        assert_eq!(cut.bytes_up, arrived, "nothing else reached the relay");

        let mut rest = Watch::new(InMemoryTransport::new(&relay, ta.as_str()));
        let progress = run(&a, &mut rest).unwrap();
        assert_eq!(rest.bytes_up, total - held, "only the missing bytes are sent (lose_reply={lose_reply})");
        assert_eq!((progress.photo_bytes_up, progress.photos_uploaded), (total - held, 1));
        assert!(a.unacknowledged_photos().unwrap().is_empty());
        assert_eq!(relay.read_blob(&device, &hash, None).unwrap().bytes, a.photo_bytes(&hash).unwrap());
    }
}

#[test]
fn an_interrupted_download_resumes_with_a_range_from_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let th = enrol(&relay, "hall-pc", Role::Hall, &[]);
    let request = raise(&a, "g1", 0);
    let hash = add_photo(&a, &request, 640, 480, 31, PhotoRole::Before, 1);
    let bytes = a.photo_bytes(&hash).unwrap();
    let total = bytes.len() as u64;
    sync(&a, &relay, &ta);

    // Blob messages: a status question, then ranges; the reply to the fourth range is lost.
    let mut cut = Watch::new(InMemoryTransport::new(&relay, th.as_str()));
    cut.fail_at = Some(4);
    cut.lose_reply = true;
    assert!(matches!(run(&hall, &mut cut), Err(CoreError::Network(_))));
    assert!(hall.stored_photo(&hash).unwrap().is_none());
    let partial = hall.partial_dir().join(&hash);
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert_eq!(kept, 3 * CHUNK as u64, "three ranges were written; the lost one was not");
    assert_eq!(std::fs::read(&partial).unwrap(), bytes[..kept as usize]);
    // Garbage collection keeps a partial download that is still needed, and only that.
    let stray = hall.partial_dir().join(content_hash(b"a photo nobody needs"));
    std::fs::write(&stray, b"a photo").unwrap();
    assert_eq!(hall.collect_garbage().unwrap().stray_files_removed, 1);
    assert!(!stray.exists());
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), kept);

    let mut rest = Watch::new(InMemoryTransport::new(&relay, th.as_str()));
    let progress = run(&hall, &mut rest).unwrap();
    assert_eq!(rest.download_offsets.first(), Some(&kept), "the download resumes at the end of the partial file");
    assert_eq!(rest.bytes_down, total - kept);
    assert_eq!((progress.photo_bytes_down, progress.photos_downloaded), (total - kept, 1));
    assert_eq!(hall.photo_bytes(&hash).unwrap(), bytes);
    assert!(!partial.exists());
    assert_thumbnail(&hall, &hash);
}

#[test]
fn a_finished_or_damaged_partial_download_is_handled_without_asking_twice() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let request = raise(&a, "g1", 0);
    let whole = add_photo(&a, &request, 300, 200, 41, PhotoRole::Before, 1);
    let damaged = add_photo(&a, &request, 300, 200, 42, PhotoRole::Before, 2);
    sync(&a, &relay, &ta);

    // Both downloads were interrupted after their last byte was written, before the photo was
    // stored: one file is whole, the other was damaged on the way (a torn write).
    let b = device_store(dir.path(), "phone-b", "wb");
    let tb = enrol(&relay, "phone-b", Role::Walker, &["g1"]);
    let docs_only = run(&b, &mut Watch { fail_at: Some(0), ..Watch::new(InMemoryTransport::new(&relay, tb.as_str())) });
    assert!(docs_only.is_err());
    assert_eq!(b.wanted_photos().unwrap().len(), 2);
    std::fs::create_dir_all(b.partial_dir()).unwrap();
    std::fs::write(b.partial_dir().join(&whole), a.photo_bytes(&whole).unwrap()).unwrap();
    let mut torn = a.photo_bytes(&damaged).unwrap();
    torn[100] ^= 1;
    std::fs::write(b.partial_dir().join(&damaged), &torn).unwrap();

    let mut watch = Watch::new(InMemoryTransport::new(&relay, tb.as_str()));
    let progress = run(&b, &mut watch).unwrap();
    assert_eq!(progress.photos_downloaded, 2);
    let damaged_len = torn.len() as u64;
    assert_eq!(watch.bytes_down, damaged_len, "the whole file needed no bytes; the damaged one was fetched again");
    assert_eq!(watch.download_offsets.first(), Some(&0));
    for h in [&whole, &damaged] {
        assert_eq!(b.photo_bytes(h).unwrap(), a.photo_bytes(h).unwrap());
    }
    assert!(b.wanted_photos().unwrap().is_empty());
}

#[test]
fn photos_the_relay_lacks_or_refuses_do_not_stop_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let b = device_store(dir.path(), "phone-b", "wb");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let tb = enrol(&relay, "phone-b", Role::Walker, &["g1"]);
    let device_a = relay.authenticate(&ta).unwrap();
    let request = raise(&a, "g1", 0);
    let first = add_photo(&a, &request, 300, 200, 51, PhotoRole::Before, 1);
    let second = add_photo(&a, &request, 300, 200, 52, PhotoRole::Before, 2);
    // A's documents arrive, and only the second photo: the first is still on A's phone.
    push_documents(&a, &relay, &device_a);
    let second_bytes = a.photo_bytes(&second).unwrap();
    relay.put_blob(&device_a, &second, 0, second_bytes.len() as u64, &second_bytes).unwrap();

    let progress = sync(&b, &relay, &tb);
    assert_eq!((progress.photos_to_download, progress.photos_downloaded, progress.photos_waiting), (2, 1, 1));
    assert!(progress.done && progress.photo_problems.is_empty(), "{progress:?}");
    assert_eq!(b.wanted_photos().unwrap(), vec![first.clone()], "the missing photo stays wanted");

    sync(&a, &relay, &ta);
    let later = sync(&b, &relay, &tb);
    assert_eq!((later.photos_downloaded, later.photos_waiting), (1, 0));
    assert_eq!(b.photo_bytes(&first).unwrap(), a.photo_bytes(&first).unwrap());

    // A photo whose file was lost on the phone is reported, and the sync still finishes.
    let request2 = raise(&a, "g1", 10);
    let lost = add_photo(&a, &request2, 300, 200, 53, PhotoRole::Before, 11);
    std::fs::remove_file(a.photo_path(&lost).unwrap()).unwrap();
    let p = sync(&a, &relay, &ta);
    assert!(p.done);
    assert_eq!(p.photo_problems.len(), 1, "{:?}", p.photo_problems);
    assert_eq!((p.photo_problems[0].hash.as_str(), p.photo_problems[0].direction), (lost.as_str(), Direction::Up));
    assert_eq!(p.photo_problems[0].code, "photo_missing");
    assert_eq!(a.unacknowledged_photos().unwrap(), vec![lost], "it stays queued for a later sync");
}

#[test]
fn a_relay_with_photos_from_before_the_blob_index_indexes_them_when_it_opens() {
    // A relay database at schema version 1 that already holds a document naming a photo (an
    // older relay): opening it fills the blob index from its documents.
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let request = raise(&a, "g1", 0);
    let hash = add_photo(&a, &request, 200, 150, 61, PhotoRole::Before, 1);
    push_documents(&a, &relay, &relay.authenticate(&ta).unwrap());
    drop(relay);
    let db = dir.path().join("relay.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        // Back to the layout of version 1: no blob index, no walker columns, no device numbers, no wipe times,
        // no settings, hand-overs, leaving grids or access log.
        conn.execute_batch(
            "DROP TABLE access_log; DROP TABLE device_leaving_grids; DROP TABLE settings; DROP TABLE handovers; ALTER TABLE devices DROP COLUMN wiped_at; DROP INDEX devices_by_number; ALTER TABLE devices DROP COLUMN number; DROP TABLE chain_head; ALTER TABLE changes DROP COLUMN chain;
             ALTER TABLE enrollments DROP COLUMN device_key_hash; DROP TABLE blob_grants; DROP TABLE blob_refs;
             ALTER TABLE enrollments DROP COLUMN walker; ALTER TABLE devices DROP COLUMN walker; PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let relay = relay_in(dir.path());
    let device = relay.authenticate(&ta).unwrap();
    assert_eq!(relay.blob_status(&device, &hash).unwrap().size_received, 0, "the photo is known again");
    // The device enrolled before numbers existed is numbered by the upgrade.
    assert_eq!(relay.devices().unwrap().iter().map(|d| d.number).collect::<Vec<_>>(), [Some(1)]);
    let up = sync(&a, &relay, &ta);
    assert_eq!(up.photos_uploaded, 1);
}

// ----- the real relay process ------------------------------------------------------------------------

const RELAY: &str = env!("CARGO_BIN_EXE_gridwalk-relay");

struct RelayProcess {
    child: Child,
    url: String,
    data: PathBuf,
}

impl RelayProcess {
    fn start(data: &Path, port: u16) -> RelayProcess {
        let mut child = Command::new(RELAY)
            .args(["--data-dir", data.to_str().unwrap(), "serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the relay");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        RelayProcess { child, url, data: data.to_path_buf() }
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn enroll(&self, name: &str, role: &str, grids: &str) -> String {
        let mut args = vec!["enroll", "--name", name, "--role", role];
        if !grids.is_empty() {
            args.extend(["--grids", grids]);
        }
        let out = Command::new(RELAY).arg("--data-dir").arg(&self.data).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn kill(&mut self) {
        // SIGKILL: no graceful shutdown, as when the hall PC loses power.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One raw HTTP/1.1 exchange, so that paths reach the relay exactly as written (an HTTP client
/// library would normalise `..` and `%2e%2e` away before sending). Returns the status, the
/// headers and the body.
fn raw(port: u16, head: &str, body: &[u8], close_early: bool) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    if close_early {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text_end = reply.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(reply.len());
    let headers = String::from_utf8_lossy(&reply[..text_end]).to_string();
    let status = headers.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, headers, reply[text_end..].to_vec())
}

fn run_http(store: &Store, chunk: usize, on_progress: &mut dyn FnMut(&Progress)) -> gridwalk_core::Result<Progress> {
    let link = store.relay_link().unwrap().unwrap();
    let session = SyncSession::new(store, SessionLimits::default()).unwrap().with_blob_chunk(chunk);
    client::run_session(
        session,
        &mut HttpTransport::new(&link).unwrap(),
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        on_progress,
    )
}

#[test]
fn photos_cross_a_real_relay_killed_mid_upload_and_mid_download_without_resending() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let mut relay = RelayProcess::start(&data, 0);
    let port = relay.port();
    let a = device_store(dir.path(), "phone-a", "wa");
    let c = device_store(dir.path(), "phone-c", "wc");
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let link_a = client::join(&a, &relay.url, &relay.enroll("phone-a", "walker", "g1"), "phone-a").unwrap();
    let link_c = client::join(&c, &relay.url, &relay.enroll("phone-c", "walker", "g2"), "phone-c").unwrap();
    client::join(&hall, &relay.url, &relay.enroll("hall-pc", "hall", ""), "hall-pc").unwrap();
    let request = raise(&a, "g1", 0);
    let hash = add_photo(&a, &request, 1200, 900, 71, PhotoRole::Before, 1);
    let bytes = a.photo_bytes(&hash).unwrap();
    let total = bytes.len() as u64;
    let chunk = 64 * 1024;
    assert!(total > 6 * chunk as u64, "{total} bytes");

    // The relay loses power once half the photo is up.
    let mut first_up = 0;
    let cut = run_http(&a, chunk, &mut |p| {
        if p.photo_bytes_up >= total / 2 && first_up == 0 {
            first_up = p.photo_bytes_up;
            relay.kill();
        }
    });
    assert!(matches!(cut, Err(CoreError::Network(_))), "{cut:?}");
    assert!(first_up > 0 && first_up < total);
    relay = RelayProcess::start(&data, port);
    let http = reqwest::blocking::Client::new();
    let status_url = format!("{}/v1/blobs/{hash}/status", relay.url);
    let status: BlobStatus = http.get(&status_url).bearer_auth(&link_a.token).send().unwrap().json().unwrap();
    assert_eq!((status.size_received, status.complete), (first_up, false), "every acknowledged chunk survived SIGKILL");
    let resumed = run_http(&a, chunk, &mut |_| {}).unwrap();
    assert_eq!((resumed.photo_bytes_up, resumed.photos_uploaded), (total - first_up, 1), "only the rest was sent");
    assert!(a.unacknowledged_photos().unwrap().is_empty());

    // The hall's download is cut the same way, and resumes with a Range.
    let mut first_down = 0;
    let cut = run_http(&hall, chunk, &mut |p| {
        if p.photo_bytes_down >= total / 2 && first_down == 0 {
            first_down = p.photo_bytes_down;
            relay.kill();
        }
    });
    assert!(matches!(cut, Err(CoreError::Network(_))), "{cut:?}");
    assert_eq!(std::fs::metadata(hall.partial_dir().join(&hash)).unwrap().len(), first_down);
    relay = RelayProcess::start(&data, port);
    let resumed = run_http(&hall, chunk, &mut |_| {}).unwrap();
    assert_eq!((resumed.photo_bytes_down, resumed.photos_downloaded), (total - first_down, 1));
    assert_eq!(hall.photo_bytes(&hash).unwrap(), bytes, "byte-identical after two interruptions");
    assert_thumbnail(&hall, &hash);

    // Range over HTTP.
    let blob_url = format!("{}/v1/blobs/{hash}", relay.url);
    let part = http.get(&blob_url).bearer_auth(&link_a.token).header("Range", "bytes=10-19").send().unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.headers()["content-range"].to_str().unwrap(), format!("bytes 10-19/{total}"));
    assert_eq!(part.bytes().unwrap().as_ref(), &bytes[10..20]);
    let whole = http.get(&blob_url).bearer_auth(&link_a.token).send().unwrap();
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(whole.bytes().unwrap().as_ref(), bytes.as_slice());
    let json_error = |resp: reqwest::blocking::Response, status: u16| -> String {
        assert_eq!(resp.status().as_u16(), status);
        let body: serde_json::Value = resp.json().expect("errors are JSON");
        assert!(body["message"].is_string(), "{body}");
        body["code"].as_str().unwrap().to_string()
    };
    assert_eq!(
        json_error(
            http.get(&blob_url).bearer_auth(&link_a.token).header("Range", format!("bytes={total}-")).send().unwrap(),
            416
        ),
        "range_not_satisfiable"
    );
    assert_eq!(
        json_error(http.get(&blob_url).bearer_auth(&link_a.token).header("Range", "pages=1").send().unwrap(), 400),
        "bad_range"
    );

    // Grid g2's walker: 403 on every blob call for g1's photo; no token: 401.
    assert_eq!(json_error(http.get(&status_url).bearer_auth(&link_c.token).send().unwrap(), 403), "forbidden");
    assert_eq!(json_error(http.get(&blob_url).bearer_auth(&link_c.token).send().unwrap(), 403), "forbidden");
    let put = http
        .put(format!("{blob_url}?offset=0&total={total}"))
        .bearer_auth(&link_c.token)
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(json_error(put, 403), "forbidden");
    assert_eq!(json_error(http.get(&status_url).send().unwrap(), 401), "unauthorized");

    // Ids that are no ids, as an attacker would send them: refused, nothing touched.
    let relay_files = files_under(&data.join("relay.db-blobs"));
    let auth = format!("Authorization: Bearer {}\r\n", link_a.token);
    for path in [
        format!("/v1/blobs/{}/status", hash.to_uppercase()),
        format!("/v1/blobs/{}/status", &hash[..40]),
        "/v1/blobs/../status".to_string(),
        "/v1/blobs/..%2F..%2Frelay.db".to_string(),
        "/v1/blobs/%2e%2e/status".to_string(),
        "/v1/blobs/%2e%2e%2f%2e%2e%2frelay.db".to_string(),
        "/v1/blobs/../../relay.db".to_string(),
        "/v1/blobs/%ff%fe".to_string(),
    ] {
        let (status, _, body) =
            raw(port, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"), b"", false);
        assert!(status == 400 || status == 404, "{path}: {status}");
        let body: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{path}: JSON error body"));
        assert!(body["code"].is_string(), "{path}: {body}");
        if path.contains(&hash[..40]) || path.contains("%2e") || path.contains("%2F") {
            assert_eq!(status, 400, "{path}");
        }
    }
    // A chunk cut off mid-body (the connection closes before Content-Length bytes): nothing
    // written.
    let request2 = raise(&a, "g1", 5);
    let hash2 = add_photo(&a, &request2, 300, 200, 72, PhotoRole::Before, 6);
    let bytes2 = a.photo_bytes(&hash2).unwrap();
    let total2 = bytes2.len();
    let docs_only = run(&a, &mut Watch { fail_at: Some(0), ..Watch::new(HttpTransport::new(&link_a).unwrap()) });
    assert!(docs_only.is_err(), "the documents went up, the photo did not");
    let head = format!(
        "PUT /v1/blobs/{hash2}?offset=0&total={total2} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/octet-stream\r\nContent-Length: {total2}\r\nConnection: close\r\n\r\n"
    );
    let (status, _, _) = raw(port, &head, &bytes2[..total2 / 2], true);
    assert!(status == 0 || (400..500).contains(&status), "{status}");
    let status2: BlobStatus = http
        .get(format!("{}/v1/blobs/{hash2}/status", relay.url))
        .bearer_auth(&link_a.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!((status2.size_received, status2.complete), (0, false), "a truncated chunk stores nothing");
    assert_eq!(files_under(&data.join("relay.db-blobs")), relay_files, "the relay's photo files are unchanged");
    // And the relay still serves.
    assert_eq!(http.get(format!("{}/health", relay.url)).send().unwrap().status().as_u16(), 200);
    let finished = client::sync_over_http(&a, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!((finished.photos_uploaded, finished.photo_bytes_up), (1, total2 as u64));
}

/// A hall's relay moves from its SQLite file onto PostgreSQL with nothing lost: devices keep
/// their tokens, documents and receipts are equal by digest, a finished photo is served and a
/// half-uploaded one resumes where it stopped.
#[test]
fn a_sqlite_relay_moves_onto_postgres_with_its_photos_and_a_half_finished_upload() {
    let server = common::pg::TempPostgres::start();
    let url = server.new_database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay-data");
    std::fs::create_dir_all(&data).unwrap();
    let clock = || Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
    let (phone_token, partial_hash, partial_total, held, stats_before) = {
        let relay = Relay::new(Box::new(SqliteRelayStore::open(&data.join("relay.db")).unwrap()), clock());
        let phone = device_store(dir.path(), "phone-a", "wa");
        let token = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
        let device = relay.authenticate(&token).unwrap();
        let request = raise(&phone, "g1", 0);
        add_photo(&phone, &request, 320, 240, 5, PhotoRole::Before, 1);
        sync(&phone, &relay, &token);
        // A second photo whose upload stopped halfway.
        let second = add_photo(&phone, &request, 640, 480, 6, PhotoRole::Before, 2);
        push_documents(&phone, &relay, &device);
        let bytes = phone.photo_bytes(&second).unwrap();
        let half = (bytes.len() / 2) as u64;
        relay.put_blob(&device, &second, 0, bytes.len() as u64, &bytes[..half as usize]).unwrap();
        (token, second, bytes.len() as u64, half, relay.stats().unwrap())
    };

    let relay_bin = env!("CARGO_BIN_EXE_gridwalk-relay");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(relay_bin).arg("--data-dir").arg(&data).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let digest_sqlite = cli(&["digest"]);
    let moved: serde_json::Value = serde_json::from_str(&cli(&["migrate-to-postgres", "--to", &url])).unwrap();
    assert_eq!(moved["digest_before"], moved["digest_after"], "{moved}");
    assert_eq!(moved["photos_copied"], 2, "the finished photo and the half upload: {moved}");
    assert_eq!(moved["photo_digest_before"], moved["photo_digest_after"], "{moved}");
    assert_eq!(
        cli(&["--database", &url, "digest"]),
        digest_sqlite,
        "the digest the relay prints is equal after the move"
    );
    // A second move into the same database is refused: moves never merge relays.
    let again = std::process::Command::new(relay_bin)
        .arg("--data-dir")
        .arg(&data)
        .args(["migrate-to-postgres", "--to", &url])
        .output()
        .unwrap();
    assert!(!again.status.success());

    // The relay on PostgreSQL, photos in the database as `serve --database` keeps them.
    let relay = Relay::new(Box::new(PostgresRelayStore::open(&url).unwrap()), clock());
    assert!(relay.blob_dir().is_none(), "no photo folder: the photos are rows");
    let stats = relay.stats().unwrap();
    assert_eq!(
        (stats.devices, stats.documents, stats.changes, stats.change_bytes, stats.snapshot_bytes),
        (
            stats_before.devices,
            stats_before.documents,
            stats_before.changes,
            stats_before.change_bytes,
            stats_before.snapshot_bytes
        )
    );
    let device = relay.authenticate(&phone_token).expect("the phone's token still works");
    let status = relay.blob_status(&device, &partial_hash).unwrap();
    assert_eq!((status.size_received, status.complete), (held, false), "the half upload is still half there");
    // The phone finishes its upload from where it stopped; a new hall PC receives everything.
    let phone = Store::open(dir.path().join("phone-a.db")).unwrap();
    sync(&phone, &relay, &phone_token);
    assert!(phone.unacknowledged_photos().unwrap().is_empty());
    assert_eq!(relay.blob_status(&device, &partial_hash).unwrap().size_received, partial_total);
    // A second relay on the same database (another process, another machine) serves a new
    // hall PC every photo, with no folder shared between them.
    let second = Relay::new(Box::new(PostgresRelayStore::open(&url).unwrap()), clock());
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let hall_token = enrol(&second, "hall-pc", Role::Hall, &[]);
    sync(&hall, &second, &hall_token);
    let mut photos = 0;
    for hash in phone.document_ids().unwrap().iter().flat_map(|id| phone.photos_of(id).unwrap()) {
        assert_eq!(hall.photo_bytes(&hash.hash).unwrap(), phone.photo_bytes(&hash.hash).unwrap());
        photos += 1;
    }
    assert_eq!(photos, 2);
}

/// A document's change that names `hash` as one of its photos, made with the document API
/// directly (no store: the device need not hold the photo).
fn naming_photo(bytes: &[u8], hash: &str, by: &str) -> Vec<u8> {
    let mut am = automerge::AutoCommit::load(bytes).unwrap().with_actor(automerge::ActorId::random());
    let before = am.get_heads();
    let entry = gridwalk_core::photo::PhotoRef {
        hash: hash.to_string(),
        role: PhotoRole::Before,
        caption: None,
        added_at: t(50),
        added_by: by.to_string(),
        gps: None,
        removed: false,
        removed_at: None,
        removed_by: None,
    };
    gridwalk_core::photo::attach::attach(&mut am, &entry).unwrap();
    am.commit();
    am.get_changes(&before).iter().flat_map(|c| c.raw_bytes().to_vec()).collect()
}

/// Regression: knowing a photo's hash was enough to read it. A walker of grid 1 who named grid
/// 2's photo in her own request could then download it, because the relay granted a photo to
/// any device whose grids held a document naming it. Now a photo is read only in the grids of
/// the device that uploaded it; a push naming a photo the pusher may not see is refused, and a
/// name that slipped in before the upload grants nothing.
#[test]
fn a_photo_named_from_another_grid_is_never_served_and_the_push_naming_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let b = device_store(dir.path(), "phone-b", "wb");
    let tb = enrol(&relay, "phone-b", Role::Walker, &["g2"]);
    let b_request = raise(&b, "g2", 0);
    let photo = add_photo(&b, &b_request, 320, 240, 31, PhotoRole::Before, 1);
    sync(&b, &relay, &tb);
    let a = device_store(dir.path(), "phone-a", "wa");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let a_device = relay.authenticate(&ta).unwrap();
    let a_request = raise(&a, "g1", 2);
    sync(&a, &relay, &ta);
    let before = relay.stats().unwrap();

    // 1. Naming grid 2's photo in her own request is refused, and nothing is stored.
    let push = |doc: &str, bytes: Vec<u8>| {
        relay.push(
            &a_device,
            &PushRequest { version: PROTOCOL_VERSION, docs: vec![DocChanges { doc_id: doc.into(), bytes }] },
        )
    };
    let e = push(&a_request, naming_photo(&a.document_bytes(&a_request).unwrap(), &photo, "wa")).unwrap_err();
    assert_eq!((e.status, e.code), (403, "forbidden_photo"), "{e:?}");
    assert_eq!(relay.stats().unwrap().changes, before.changes);
    let e = relay.read_blob(&a_device, &photo, None).unwrap_err();
    assert_eq!(e.status, 403, "the photo is never served to her: {e:?}");

    // 2. A name that reaches the relay before the photo does grants nothing either.
    let c = device_store(dir.path(), "phone-c", "wc");
    let tc = enrol(&relay, "phone-c", Role::Walker, &["g2"]);
    let c_device = relay.authenticate(&tc).unwrap();
    let c_request = raise(&c, "g2", 3);
    let later = add_photo(&c, &c_request, 320, 240, 32, PhotoRole::Before, 4);
    push_documents(&c, &relay, &c_device);
    assert_eq!(push(&a_request, naming_photo(&a.document_bytes(&a_request).unwrap(), &later, "wa")).unwrap().stored, 1);
    sync(&c, &relay, &tc);
    assert_eq!(relay.read_blob(&a_device, &later, None).unwrap_err().status, 403);
    // "Uploading" a photo the relay already holds, with no bytes, grants nothing.
    let total = c.photo_bytes(&later).unwrap().len() as u64;
    let answer = relay.put_blob(&a_device, &later, total, total, &[]);
    assert!(answer.map(|s| s.complete).unwrap_or(true));
    assert_eq!(relay.read_blob(&a_device, &later, None).unwrap_err().status, 403);
    // Her phone syncs on; the photo it may not have is simply not fetched.
    sync(&a, &relay, &ta);
    assert!(a.photo_bytes(&later).is_err());

    // 3. The grid's own walkers and the hall still read both photos.
    let d = device_store(dir.path(), "phone-d", "wd");
    let td = enrol(&relay, "phone-d", Role::Walker, &["g2"]);
    sync(&d, &relay, &td);
    assert_eq!(d.photo_bytes(&photo).unwrap(), b.photo_bytes(&photo).unwrap());
    assert_eq!(d.photo_bytes(&later).unwrap(), c.photo_bytes(&later).unwrap());
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let th = enrol(&relay, "hall-pc", Role::Hall, &[]);
    sync(&hall, &relay, &th);
    assert_eq!(hall.photo_bytes(&photo).unwrap(), b.photo_bytes(&photo).unwrap());
}

/// Regression: the sync bar went 0.99 → 0.25 → 0.5 when the photo stage turned out to hold
/// work, and "up 7294/7247 documents" counted a document twice when its changes went up in two
/// pushes. Now every progress a sync reports (the same model the app and the command line
/// show) never goes back, never passes 1, counts documents once, and ends at 1.
#[test]
fn a_syncs_progress_never_goes_back_counts_documents_once_and_ends_at_one() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let phone = device_store(dir.path(), "phone-a", "wa");
    let token = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    for n in 0..6 {
        let request = raise(&phone, "g1", n);
        // Several changes per document, so that one document spans several small pushes.
        phone.act(&phone.context(t(n + 100)), &request, Action::Progress { note: "已联系".into() }).ok();
        if n % 2 == 0 {
            add_photo(&phone, &request, 320, 240, 40 + n as u64, PhotoRole::Before, n + 200);
        }
    }
    let docs = phone.outbox_docs().unwrap();
    let mut seen = Vec::new();
    let session = SyncSession::new(&phone, SessionLimits { push_entries: 2, push_bytes: 1024, pull_page: 2 })
        .unwrap()
        .with_blob_chunk(CHUNK);
    let last = client::run_session(
        session,
        &mut InMemoryTransport::new(&relay, token.as_str()),
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        &mut |p| seen.push((p.fraction(), p.docs_pushed, p.docs_to_push, p.stage)),
    )
    .unwrap();
    assert!(seen.len() > 5, "{seen:?}");
    for w in seen.windows(2) {
        assert!(w[1].0 >= w[0].0, "the bar went back: {:?} then {:?}", w[0], w[1]);
    }
    assert!(seen.iter().all(|(f, pushed, to_push, _)| *f <= 1.0 && pushed <= to_push), "{seen:?}");
    assert_eq!((last.docs_pushed, last.docs_to_push), (docs, docs), "each document counted once");
    assert_eq!(last.fraction(), 1.0);
    // A second device receives it all (pages, then photo downloads): the same holds.
    let other = device_store(dir.path(), "phone-b", "wb");
    let token_b = enrol(&relay, "phone-b", Role::Walker, &["g1"]);
    let mut seen = Vec::new();
    let session = SyncSession::new(&other, SessionLimits { push_entries: 2, push_bytes: 1024, pull_page: 2 })
        .unwrap()
        .with_blob_chunk(CHUNK);
    let last = client::run_session(
        session,
        &mut InMemoryTransport::new(&relay, token_b.as_str()),
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        &mut |p| seen.push(p.fraction()),
    )
    .unwrap();
    seen.push(last.fraction());
    assert!(seen.len() > 4 && seen.windows(2).all(|w| w[1] >= w[0]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(1.0));
    assert!(last.photos_downloaded > 0, "the photo stage ran");
}

//! One conformance suite for every place the relay keeps photos (`gridwalk_relay::blobs`): files
//! in a folder (the embedded default), rows in PostgreSQL (shared by every relay on one
//! database) and memory. Each must keep the same promises: resumable uploads at the held offset
//! only, verified before readable, ranges read exactly, unfinished uploads listed and movable,
//! and two uploads of one photo at once never interleaving.

mod common;

use std::sync::Arc;
use std::thread;

use gridwalk_relay::blobs::{
    blob_digest, copy_blobs, BlobError, BlobFiles, BlobSlice, BlobStore, ByteRange, HeldBlob, MemoryBlobs,
};
use gridwalk_relay::store::PostgresRelayStore;
use sha2::{Digest, Sha256};

const MAX: u64 = 5 << 20;

/// Bytes that differ from one position to the next (so a misplaced piece is caught), `n` long.
fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + i / 257) as u8) ^ seed).collect()
}

fn id(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn uploads_resume_and_finish_verified(store: &dyn BlobStore) {
    let bytes = data(1000, 1);
    let hash = id(&bytes);
    assert_eq!(store.status(&hash).unwrap(), HeldBlob { size: 0, complete: false });
    assert!(matches!(store.read(&hash, None), Err(BlobError::NotFound)));
    assert_eq!(store.append(&hash, 0, 1000, &bytes[..400], MAX).unwrap(), HeldBlob { size: 400, complete: false });
    assert!(matches!(
        store.append(&hash, 0, 1000, &bytes[..400], MAX),
        Err(BlobError::WrongOffset { have: 400, offset: 0 })
    ));
    assert!(matches!(store.append(&hash, 400, 1000, &bytes[400..], 999), Err(BlobError::TooLarge { .. })));
    assert!(matches!(store.append(&hash, 400, 1000, &[], MAX), Err(BlobError::BadChunk(_))));
    assert!(matches!(store.append(&hash, 400, 0, &bytes[400..], MAX), Err(BlobError::BadChunk(_))));
    assert!(matches!(store.append(&hash, 400, 1000, &data(700, 1), MAX), Err(BlobError::BadChunk(_))), "past the end");
    assert!(matches!(store.read(&hash, None), Err(BlobError::NotFound)), "half a photo is not served");
    assert_eq!(store.read_partial(&hash).unwrap(), bytes[..400]);
    assert!(store.list().unwrap().contains(&(hash.clone(), HeldBlob { size: 400, complete: false })));
    assert_eq!(store.append(&hash, 400, 1000, &bytes[400..], MAX).unwrap(), HeldBlob { size: 1000, complete: true });
    assert_eq!(store.read(&hash, None).unwrap(), BlobSlice { start: 0, total: 1000, bytes: bytes.clone() });
    assert!(store.list().unwrap().contains(&(hash.clone(), HeldBlob { size: 1000, complete: true })));
    assert!(matches!(store.read_partial(&hash), Err(BlobError::NotFound)));
    // Sending it again changes nothing.
    assert_eq!(store.append(&hash, 0, 1000, &bytes, MAX).unwrap(), HeldBlob { size: 1000, complete: true });
    assert_eq!(store.read(&hash, None).unwrap().bytes, bytes);

    // Bytes that are not what the id names leave nothing behind.
    let lie = id(b"the real photo");
    assert!(matches!(store.append(&lie, 0, 5, b"lies!", MAX), Err(BlobError::HashMismatch)));
    assert_eq!(store.status(&lie).unwrap(), HeldBlob { size: 0, complete: false });
    assert!(!store.list().unwrap().iter().any(|(h, _)| *h == lie));
    for bad in ["../../etc/passwd", "ABCDEF", &hash.to_uppercase(), ""] {
        assert!(matches!(store.status(bad), Err(BlobError::BadId(_))), "{bad}");
        assert!(matches!(store.append(bad, 0, 1, b"x", MAX), Err(BlobError::BadId(_))), "{bad}");
    }
}

fn ranges_read_exactly_across_pieces(store: &dyn BlobStore) {
    // Larger than one PostgreSQL row (256 KiB) and sent in chunks that do not line up with rows.
    let bytes = data(700_001, 2);
    let hash = id(&bytes);
    let mut at = 0;
    for len in [100_000, 300_000, 1, 299_999, 1] {
        store.append(&hash, at as u64, bytes.len() as u64, &bytes[at..at + len], MAX).unwrap();
        at += len;
    }
    assert_eq!(store.status(&hash).unwrap(), HeldBlob { size: 700_001, complete: true });
    let total = bytes.len() as u64;
    for (range, start, end) in [
        (ByteRange::FromTo(0, 0), 0, 1),
        (ByteRange::FromTo(262_143, 262_144), 262_143, 262_145),
        (ByteRange::FromTo(100_000, 600_000), 100_000, 600_001),
        (ByteRange::FromTo(699_990, 2_000_000), 699_990, 700_001),
        (ByteRange::From(524_288), 524_288, 700_001),
        (ByteRange::Last(10), 699_991, 700_001),
        (ByteRange::Last(9_000_000), 0, 700_001),
    ] {
        let slice = store.read(&hash, Some(range)).unwrap();
        assert_eq!((slice.start, slice.total), (start as u64, total), "{range:?}");
        assert!(slice.bytes == bytes[start..end], "{range:?}: the bytes");
    }
    assert!(matches!(
        store.read(&hash, Some(ByteRange::From(700_001))),
        Err(BlobError::RangeNotSatisfiable { total: 700_001 })
    ));
}

fn unfinished_uploads_move_and_resume(store: &dyn BlobStore) {
    let bytes = data(5000, 3);
    let hash = id(&bytes);
    store.import_partial(&hash, &bytes[..2000]).unwrap();
    assert_eq!(store.status(&hash).unwrap(), HeldBlob { size: 2000, complete: false });
    // Less than is held changes nothing.
    store.import_partial(&hash, &bytes[..10]).unwrap();
    assert_eq!(store.status(&hash).unwrap().size, 2000);
    assert_eq!(store.append(&hash, 2000, 5000, &bytes[2000..], MAX).unwrap(), HeldBlob { size: 5000, complete: true });
    assert_eq!(store.read(&hash, None).unwrap().bytes, bytes);
    store.import_partial(&hash, &bytes[..4000]).unwrap();
    assert_eq!(store.status(&hash).unwrap(), HeldBlob { size: 5000, complete: true }, "a finished blob stays");
}

/// Devices sending one photo at once, each from the offset it is told, in chunks: the photo
/// ends whole and right, whatever the interleaving.
fn uploads_of_one_photo_at_once_never_interleave(store: Arc<dyn BlobStore>) {
    let bytes = Arc::new(data(300_000, 4));
    let hash = id(&bytes);
    let senders: Vec<_> = (0..4)
        .map(|n| {
            let (store, bytes, hash) = (store.clone(), bytes.clone(), hash.clone());
            thread::spawn(move || {
                let chunk = 10_000 + n * 7_000;
                for _ in 0..200 {
                    let held = store.status(&hash).unwrap();
                    if held.complete {
                        return;
                    }
                    let at = held.size as usize;
                    let end = (at + chunk).min(bytes.len());
                    match store.append(&hash, at as u64, bytes.len() as u64, &bytes[at..end], MAX) {
                        Ok(_) | Err(BlobError::WrongOffset { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                panic!("the upload never finished");
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(store.read(&hash, None).unwrap().bytes, *bytes);
}

fn blobs_copy_between_stores(from: &dyn BlobStore, to: &dyn BlobStore) {
    let whole = data(3000, 5);
    let half = data(4000, 6);
    from.append(&id(&whole), 0, 3000, &whole, MAX).unwrap();
    from.append(&id(&half), 0, 4000, &half[..1500], MAX).unwrap();
    copy_blobs(from, to).unwrap();
    assert_eq!(blob_digest(to).unwrap(), blob_digest(from).unwrap());
    assert_eq!(to.read(&id(&whole), None).unwrap().bytes, whole);
    assert_eq!(to.read_partial(&id(&half)).unwrap(), half[..1500]);
    // Copying again changes nothing.
    assert_eq!(copy_blobs(from, to).unwrap().0, 1, "only the unfinished one is offered again");
    assert_eq!(blob_digest(to).unwrap(), blob_digest(from).unwrap());
}

fn conformance(make: impl Fn() -> Arc<dyn BlobStore>) {
    uploads_resume_and_finish_verified(&*make());
    ranges_read_exactly_across_pieces(&*make());
    unfinished_uploads_move_and_resume(&*make());
    uploads_of_one_photo_at_once_never_interleave(make());
    blobs_copy_between_stores(&*make(), &*make());
}

#[test]
fn photos_in_memory_conform() {
    conformance(|| Arc::new(MemoryBlobs::new()));
}

#[test]
fn photo_files_conform() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance(|| {
        Arc::new(BlobFiles::new(
            dir.path().join(format!("blobs-{}", n.fetch_add(1, std::sync::atomic::Ordering::SeqCst))),
        ))
    });
}

#[test]
fn photos_in_postgres_conform() {
    let server = common::pg::TempPostgres::start();
    conformance(|| Arc::new(PostgresRelayStore::open(&server.new_database()).unwrap().blobs()));
}

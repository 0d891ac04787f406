//! One suite every relay store must pass (the way samod tests each storage backend): the
//! in-memory store of the deterministic tests and the embedded SQLite store. It includes many
//! writers pushing at once while readers pull by cursor, proving that no change is ever skipped
//! or delivered twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

mod common;

use gridwalk_relay::store::{
    DocWrite, Enrollment, MemoryRelayStore, NewChange, PostgresRelayStore, RelayStore, Role, SqliteRelayStore,
    StoreError,
};

fn hash(n: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&n.to_be_bytes());
    h[31] = 1;
    h
}

fn write(doc: &str, grid: &str, base: Option<i64>, changes: &[u64], photos: &[&str]) -> DocWrite {
    DocWrite {
        id: doc.into(),
        grid: grid.into(),
        kind: "request".into(),
        snapshot: format!("snapshot of {doc} after {changes:?}").into_bytes(),
        new_changes: changes.iter().map(|n| NewChange { hash: hash(*n), bytes: n.to_le_bytes().repeat(3) }).collect(),
        blob_refs: photos.iter().map(|p| photo(p)).collect(),
        base_last_seq: base,
    }
}

/// A photo id (64 hex characters) named by a short tag.
fn photo(tag: &str) -> String {
    format!("{:0>64}", tag.bytes().map(|b| format!("{b:02x}")).collect::<String>())
}

fn enrollment(name: &str, role: Role, grids: &[&str]) -> Enrollment {
    Enrollment {
        device_name: name.into(),
        role,
        grids: grids.iter().map(|g| g.to_string()).collect(),
        walker: Some(format!("{name}-person")),
    }
}

fn last_seq(store: &dyn RelayStore, doc: &str) -> Option<i64> {
    store.load_doc(doc).unwrap().map(|d| d.last_seq)
}

/// Enrolment codes are used once, expire, and make devices that a token finds until revoked.
fn enrolment_and_devices(store: &dyn RelayStore) {
    store.create_enrollment(&[1; 32], &enrollment("phone", Role::Walker, &["g2", "g1"]), 0, 1_000).unwrap();
    store.create_enrollment(&[2; 32], &enrollment("late", Role::Walker, &["g1"]), 0, 1_000).unwrap();
    let key = Some(&[7u8; 32]);
    assert!(store.redeem_enrollment(&[9; 32], "dev-x", &[90; 32], 10, key).unwrap().is_none(), "an unknown code");
    assert!(store.redeem_enrollment(&[2; 32], "dev-late", &[91; 32], 1_000, key).unwrap().is_none(), "an expired code");
    let r = store.redeem_enrollment(&[1; 32], "dev-1", &[12; 32], 10, key).unwrap().expect("a fresh code");
    assert_eq!(
        (r.enrollment.device_name.as_str(), r.enrollment.role, r.device_id.as_str()),
        ("phone", Role::Walker, "dev-1")
    );
    assert!(
        store.redeem_enrollment(&[1; 32], "dev-2", &[11; 32], 11, Some(&[8; 32])).unwrap().is_none(),
        "a used code"
    );
    assert!(store.redeem_enrollment(&[1; 32], "dev-2", &[11; 32], 11, None).unwrap().is_none(), "a used code, no key");
    // The same app asking again (its reply was lost): the same device, with the new token only.
    let again = store.redeem_enrollment(&[1; 32], "dev-3", &[10; 32], 12, key).unwrap().expect("the same key");
    assert_eq!(again.device_id, "dev-1");
    // Devices are numbered 1, 2, 3… as they enrol; a retried enrolment keeps its number.
    assert_eq!((r.device_number, again.device_number), (1, 1));
    assert!(store.device_by_token(&[12; 32]).unwrap().is_none(), "the lost token no longer works");
    assert_eq!(store.devices().unwrap().len(), 1, "no second device");
    let device = store.device_by_token(&[10; 32]).unwrap().expect("the device");
    assert_eq!(device.id, "dev-1");
    assert_eq!(device.grids, vec!["g1".to_string(), "g2".to_string()]);
    assert_eq!(device.walker.as_deref(), Some("phone-person"));
    assert!(store.device_by_token(&[11; 32]).unwrap().is_none());
    store.touch_device("dev-1", 100_000).unwrap();
    assert!(!store.record_wipe("dev-1", 150_000).unwrap(), "a device not revoked has nothing to confirm");
    // The hall moves its walker to other grids: the token finds the new ones.
    assert!(store.set_device_grids("dev-1", &["g3".to_string()], 100).unwrap());
    assert_eq!(store.device_by_token(&[10; 32]).unwrap().unwrap().grids, vec!["g3".to_string()]);
    assert!(store.set_device_grids("dev-1", &["g1".to_string(), "g2".to_string()], 100).unwrap());
    assert!(!store.set_device_grids("nobody", &["g1".to_string()], 100).unwrap());
    assert!(store.revoke("dev-1", 200_000).unwrap());
    assert!(!store.revoke("dev-1", 200_001).unwrap(), "revoked once");
    assert!(store.device_by_token(&[10; 32]).unwrap().is_none(), "a revoked token finds nothing");
    assert!(!store.set_device_grids("dev-1", &["g1".to_string()], 100).unwrap(), "a revoked device is moved nowhere");
    // ...but is known as revoked, so the device can be told to wipe itself, and confirm it once.
    assert_eq!(store.revoked_device_by_token(&[10; 32]).unwrap().as_deref(), Some("dev-1"));
    assert_eq!(store.revoked_device_by_token(&[77; 32]).unwrap(), None, "an unknown token is not a revoked one");
    assert_eq!(store.devices().unwrap()[0].wiped_at, None);
    assert!(store.record_wipe("dev-1", 210_000).unwrap());
    assert!(!store.record_wipe("dev-1", 220_000).unwrap(), "the first confirmation counts");
    assert_eq!(store.devices().unwrap()[0].wiped_at, Some(210_000));
    let listed = store.devices().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].last_seen_at, listed[0].revoked_at), (Some(100_000), Some(200_000)));
    let stats = store.stats().unwrap();
    assert_eq!((stats.devices, stats.revoked_devices), (0, 1));
    // The next device takes the next number, even after one was revoked (numbers are never
    // reused, or an old request number could be given twice).
    store.create_enrollment(&[3; 32], &enrollment("hall", Role::Hall, &[]), 0, 1_000).unwrap();
    let hall = store.redeem_enrollment(&[3; 32], "dev-hall", &[13; 32], 20, None).unwrap().expect("a fresh code");
    assert_eq!(hall.device_number, 2);
    let numbers: Vec<_> = store.devices().unwrap().iter().map(|d| (d.id.clone(), d.number)).collect();
    assert_eq!(numbers, vec![("dev-1".to_string(), Some(1)), ("dev-hall".to_string(), Some(2))]);
}

/// Pushes, documents, changes by cursor and scope, receipts, photos, and the optimistic check.
fn pushes_and_pulls(store: &dyn RelayStore) {
    assert_eq!(store.store_push(&[write("a", "g1", None, &[1, 2], &[])], "dev-1", 1_000).unwrap(), 2);
    assert_eq!(store.store_push(&[write("b", "g2", None, &[3], &["p1"])], "dev-2", 2_000).unwrap(), 1);
    // A duplicate change is not stored again and keeps its first receipt time.
    let base = last_seq(store, "a");
    assert_eq!(store.store_push(&[write("a", "g1", base, &[2, 4], &["p2"])], "dev-2", 3_000).unwrap(), 1);
    let receipts: BTreeMap<[u8; 32], i64> = store.receipts("a").unwrap().into_iter().collect();
    assert_eq!(receipts, BTreeMap::from([(hash(1), 1_000), (hash(2), 1_000), (hash(4), 3_000)]));
    // Sequence numbers follow the order changes were stored in; they need not be dense.
    let log = store.changes_since(0, None, "nobody", 10).unwrap();
    assert_eq!(log.iter().map(|c| c.hash).collect::<Vec<_>>(), vec![hash(1), hash(2), hash(3), hash(4)]);
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    let seq_of = |n: u64| log.iter().find(|c| c.hash == hash(n)).unwrap().seq;
    let a = store.load_doc("a").unwrap().unwrap();
    assert_eq!((a.grid.as_str(), a.first_seq, a.last_seq), ("g1", seq_of(1), seq_of(4)));
    assert!(a.snapshot.ends_with(b"[2, 4]"), "the latest snapshot is kept");
    assert_eq!(store.max_seq().unwrap(), seq_of(4));
    // Changes by cursor, leaving out the reader's own and other grids'.
    let hashes = |after, scope: Option<&[String]>, except, limit| -> Vec<[u8; 32]> {
        store.changes_since(after, scope, except, limit).unwrap().iter().map(|c| c.hash).collect()
    };
    assert_eq!(hashes(seq_of(1), None, "nobody", 2), vec![hash(2), hash(3)]);
    assert_eq!(hashes(0, None, "dev-1", 10), vec![hash(3), hash(4)]);
    assert_eq!(hashes(0, Some(&["g1".to_string()]), "nobody", 10), vec![hash(1), hash(2), hash(4)]);
    assert_eq!(hashes(0, Some(&[]), "nobody", 10), Vec::<[u8; 32]>::new());
    let c = &store.changes_since(seq_of(3), None, "nobody", 1).unwrap()[0];
    assert_eq!((c.doc_id.as_str(), c.hash, c.received_at), ("a", hash(4), 3_000));
    let doc_log: Vec<[u8; 32]> = store.doc_changes("a").unwrap().iter().map(|c| c.hash).collect();
    assert_eq!(doc_log, vec![hash(1), hash(2), hash(4)]);
    // Whole documents in id order, only those with someone else's changes.
    let ids = |after, scope: Option<&[String]>, except, limit| -> Vec<String> {
        store.docs_after(after, scope, except, limit).unwrap().into_iter().map(|d| d.id).collect()
    };
    assert_eq!(ids("", None, "nobody", 10), vec!["a", "b"]);
    assert_eq!(ids("a", None, "nobody", 10), vec!["b"]);
    assert_eq!(ids("", None, "dev-2", 10), vec!["a"], "b is only dev-2's own");
    assert_eq!(ids("", Some(&["g2".to_string()]), "nobody", 1), vec!["b"]);
    // Photos a document names, by grid; a push replaces what its document named.
    assert!(store.blob_referenced(&photo("p2"), Some(&["g1".to_string()])).unwrap());
    assert!(!store.blob_referenced(&photo("p2"), Some(&["g2".to_string()])).unwrap());
    assert!(store.blob_referenced(&photo("p1"), None).unwrap());
    assert_eq!(store.blob_grids(&photo("p2")).unwrap(), vec!["g1".to_string()]);
    // Where a photo may be read is granted by grid, apart from who names it.
    assert!(!store.blob_granted(&photo("p2"), None).unwrap(), "naming grants nothing");
    store.grant_blob(&photo("p2"), &["g1".to_string()]).unwrap();
    store.grant_blob(&photo("p2"), &["g1".to_string()]).unwrap();
    assert!(store.blob_granted(&photo("p2"), Some(&["g1".to_string()])).unwrap());
    assert!(!store.blob_granted(&photo("p2"), Some(&["g2".to_string()])).unwrap());
    assert!(store.blob_granted(&photo("p2"), None).unwrap());
    let base = last_seq(store, "b");
    store.store_push(&[write("b", "g2", base, &[5], &[])], "dev-2", 4_000).unwrap();
    assert!(!store.blob_referenced(&photo("p1"), None).unwrap(), "b no longer names p1");
    // A push prepared from an old state is refused whole, and nothing of it is written.
    let stale = a.last_seq;
    let before = store.stats().unwrap();
    store.store_push(&[write("a", "g1", Some(stale), &[6], &[])], "dev-1", 5_000).unwrap();
    let err = store
        .store_push(&[write("c", "g1", None, &[7], &[]), write("a", "g1", Some(stale), &[8], &[])], "dev-1", 6_000)
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { ref doc } if doc == "a"), "{err}");
    assert!(store.load_doc("c").unwrap().is_none(), "the other document of the refused push is not written");
    let new_doc_again = store.store_push(&[write("a", "g1", None, &[9], &[])], "dev-1", 6_000).unwrap_err();
    assert!(matches!(new_doc_again, StoreError::Conflict { .. }), "a document new to the pusher exists already");
    let after = store.stats().unwrap();
    assert_eq!((after.documents, after.changes), (before.documents, before.changes + 1));
}

/// Writers push at once, to their own documents and to one they share, while readers follow
/// the change log by cursor in small pages: every reader sees every change exactly once, in
/// sequence order, and the shared document keeps every writer's changes.
fn concurrent_pushes_and_pulls(store: Arc<dyn RelayStore>) {
    const WRITERS: u64 = 4;
    const PUSHES: u64 = 40;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (store, done) = (store.clone(), done.clone());
            thread::spawn(move || {
                let mut cursor = 0;
                let mut seen = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = store.changes_since(cursor, None, "reader", 3 + r).unwrap();
                    for c in &page {
                        assert!(c.seq > cursor, "sequence numbers only grow along the cursor");
                        cursor = c.seq;
                        seen.push(c.hash);
                    }
                    if page.is_empty() && finished {
                        return seen;
                    }
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            thread::spawn(move || {
                let mut conflicts = 0;
                for i in 0..PUSHES {
                    let own = 1_000_000 * (w + 1) + 2 * i;
                    loop {
                        let docs = [format!("own-{w}"), "shared".to_string()];
                        let pushes = [
                            write(&docs[0], "g1", last_seq(&*store, &docs[0]), &[own], &[]),
                            write(&docs[1], "g1", last_seq(&*store, &docs[1]), &[own + 1], &[]),
                        ];
                        match store.store_push(&pushes, &format!("dev-{w}"), i as i64) {
                            Ok(stored) => {
                                assert_eq!(stored, 2);
                                break;
                            }
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    done.store(true, Ordering::SeqCst);
    let total = (WRITERS * PUSHES * 2) as usize;
    for reader in readers {
        let seen = reader.join().unwrap();
        assert_eq!(seen.len(), total, "every change reached the reader");
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), total, "and none twice");
    }
    assert_eq!(store.doc_changes("shared").unwrap().len(), (WRITERS * PUSHES) as usize);
    assert!(store.max_seq().unwrap() >= total as i64);
    eprintln!("{total} changes by {WRITERS} writers, {conflicts} pushes prepared again after a conflict");
}

/// Devices enrolling at the same moment each get a number of their own: 1 to N, none twice.
fn concurrent_enrolments(store: Arc<dyn RelayStore>) {
    const DEVICES: u8 = 8;
    for n in 0..DEVICES {
        store.create_enrollment(&[100 + n; 32], &enrollment("phone", Role::Walker, &["g1"]), 0, 1_000).unwrap();
    }
    let enrolling: Vec<_> = (0..DEVICES)
        .map(|n| {
            let store = store.clone();
            thread::spawn(move || {
                let r = store.redeem_enrollment(&[100 + n; 32], &format!("dev-{n}"), &[100 + n; 32], 10, None);
                r.unwrap().expect("a fresh code").device_number
            })
        })
        .collect();
    let mut numbers: Vec<i64> = enrolling.into_iter().map(|t| t.join().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=i64::from(DEVICES)).collect::<Vec<_>>());
}

/// Relay-wide settings keep the first value stored, and a hand-over is recorded once per old
/// device and moved on only from the state its writer saw (two relays confirming at once: one
/// wins).
fn settings_and_handovers(store: Arc<dyn RelayStore>) {
    use gridwalk_relay::store::{Handover, HandoverState};
    let answers: Vec<String> = std::thread::scope(|s| {
        let tries: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                s.spawn(move || store.setting_or_insert("escrow_identity", &format!("key-{i}")).unwrap())
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| a == &answers[0]), "every caller gets the one stored first: {answers:?}");
    assert_eq!(store.setting_or_insert("escrow_identity", "later").unwrap(), answers[0]);

    store.create_enrollment(&hash(1), &enrollment("phone", Role::Walker, &["g1"]), 0, 1_000_000).unwrap();
    store.redeem_enrollment(&hash(1), "dev-old", &hash(2), 10, None).unwrap().unwrap();
    let mut e = enrollment("hall", Role::Hall, &[]);
    e.walker = None;
    store.create_enrollment(&hash(3), &e, 0, 1_000_000).unwrap();
    store.redeem_enrollment(&hash(3), "dev-hall", &hash(4), 10, None).unwrap().unwrap();
    assert_eq!(store.device_walker("dev-old").unwrap().as_deref(), Some("phone-person"));
    assert_eq!(store.device_walker("dev-hall").unwrap(), None, "a hall PC is no walker's phone");
    assert_eq!(store.device_walker("dev-none").unwrap(), None);

    let asked = Handover {
        from_device: "dev-old".into(),
        to_device: "dev-new".into(),
        walker: "walker-1".into(),
        state: HandoverState::Pending,
        requested_at: 100,
        escrowed: "ab".into(),
        reply_recipient: "age1x".into(),
        confirmed_by: None,
        confirmed_at: None,
        released_key: None,
        done_at: None,
        taken_documents: None,
        taken_photos: None,
    };
    assert_eq!(store.insert_handover(&asked).unwrap(), asked);
    let other = Handover { to_device: "dev-other".into(), requested_at: 200, ..asked.clone() };
    assert_eq!(store.insert_handover(&other).unwrap(), asked, "the first request for an old device stands");
    let released = Handover {
        state: HandoverState::Released,
        confirmed_by: Some("admin".into()),
        released_key: Some("cd".into()),
        ..asked.clone()
    };
    let confirmations: Vec<bool> = std::thread::scope(|s| {
        let tries: Vec<_> = (0..4)
            .map(|_| {
                let (store, released) = (store.clone(), released.clone());
                s.spawn(move || store.update_handover(HandoverState::Pending, &released).unwrap())
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(confirmations.iter().filter(|c| **c).count(), 1, "one confirmation wins: {confirmations:?}");
    assert_eq!(store.handovers().unwrap(), vec![released]);
}

/// A walker moved off a grid keeps pushing there until her phone says it forgot it; a grid
/// given back is hers again, not leaving.
fn leaving_grids(store: &dyn RelayStore) {
    use gridwalk_relay::store::LeavingGrid;
    let left = |grid: &str, since: i64| LeavingGrid { grid: grid.into(), since };
    store.create_enrollment(&hash(1), &enrollment("phone", Role::Walker, &["g1", "g2"]), 0, 1_000_000).unwrap();
    store.redeem_enrollment(&hash(1), "dev-1", &hash(2), 10, None).unwrap().unwrap();
    let device = || store.device_by_token(&hash(2)).unwrap().unwrap();
    assert!(device().leaving.is_empty());
    assert!(store.set_device_grids("dev-1", &["g2".to_string(), "g3".to_string()], 500).unwrap());
    let moved = device();
    assert_eq!(moved.grids, ["g2", "g3"]);
    assert_eq!(moved.leaving, [left("g1", 500)]);
    assert!(moved.may_push("g1") && !moved.may_see("g1"), "the grid left takes pushes, gives nothing");
    assert_eq!(store.devices().unwrap()[0].leaving_grids, [left("g1", 500)]);
    assert!(store.set_device_grids("dev-1", &["g1".to_string()], 900).unwrap());
    assert_eq!(device().leaving, [left("g2", 900), left("g3", 900)], "g1 is hers again; g2 and g3 are left");
    // Said by a phone that still serves what it served before the last move: nothing closes.
    assert!(!store.finish_leaving("dev-1", &["g2".to_string(), "g3".to_string()]).unwrap());
    assert_eq!(device().leaving.len(), 2);
    assert!(store.finish_leaving("dev-1", &["g1".to_string()]).unwrap());
    assert!(!store.finish_leaving("dev-1", &["g1".to_string()]).unwrap(), "nothing left to forget");
    let done = device();
    assert!(done.leaving.is_empty() && !done.may_push("g2"));
}

fn conformance(make: impl Fn() -> Arc<dyn RelayStore>) {
    enrolment_and_devices(&*make());
    leaving_grids(&*make());
    settings_and_handovers(make());
    pushes_and_pulls(&*make());
    concurrent_pushes_and_pulls(make());
    concurrent_enrolments(make());
}

#[test]
fn the_in_memory_store_conforms() {
    conformance(|| Arc::new(MemoryRelayStore::new()));
}

#[test]
fn the_sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance(|| {
        let path = dir.path().join(format!("relay-{}.db", n.fetch_add(1, Ordering::SeqCst)));
        Arc::new(SqliteRelayStore::open(&path).unwrap())
    });
}

#[test]
fn the_postgres_store_conforms() {
    let server = common::pg::TempPostgres::start();
    conformance(|| Arc::new(PostgresRelayStore::open(&server.new_database()).unwrap()));
}

/// Relays started at once migrate one database once: the advisory lock makes the others wait
/// and find the schema in place.
#[test]
fn relays_opening_one_new_postgres_database_at_once_migrate_it_once() {
    let server = common::pg::TempPostgres::start();
    let url = server.new_database();
    let opened: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || PostgresRelayStore::open(&url).map(|_| ()))
        })
        .collect();
    for o in opened {
        o.join().unwrap().unwrap();
    }
    let store = PostgresRelayStore::open(&url).unwrap();
    assert_eq!(store.store_push(&[write("a", "g1", None, &[1], &[])], "dev-1", 1).unwrap(), 1);
}

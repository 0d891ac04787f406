//! Sync through the relay's logic over a deterministic in-memory network: convergence over many
//! seeds, resumption after lost messages, grid scoping, and refusals of bad input.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::TimeZone;
use common::InMemoryTransport;
use common::{device_store, fingerprint, random_edit};
use gridwalk_core::store::{RequestFilter, Store};
use gridwalk_core::sync::protocol::{DocChanges, PushRequest, PROTOCOL_VERSION};
use gridwalk_core::{CoreError, ManualClock};
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{MemoryRelayStore, Role, SqliteRelayStore};
use gridwalk_transport::client::{self, Retry, SessionLimits};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

/// The deterministic harness runs on the in-memory store, which passes the same conformance
/// suite as the SQLite one (`tests/conformance.rs`); `dir` holds the devices' stores and photos.
fn relay_in(dir: &std::path::Path) -> Relay {
    let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
    Relay::new(Box::new(MemoryRelayStore::new()), clock).with_blob_dir(dir.join("relay-blobs"))
}

fn enrol(relay: &Relay, name: &str, role: Role, grids: &[&str]) -> String {
    let grids: Vec<String> = grids.iter().map(|g| g.to_string()).collect();
    let code = relay.create_enrollment(name, role, &grids).unwrap();
    relay
        .enroll(&gridwalk_core::sync::protocol::EnrollRequest { code, device_name: name.into(), device_key: None })
        .unwrap()
        .token
}

fn sync(store: &Store, relay: &Relay, token: &str, limits: SessionLimits) -> gridwalk_core::Result<client::Progress> {
    let mut transport = InMemoryTransport::new(relay, token);
    client::run(
        store,
        &mut transport,
        limits,
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        &mut |_| {},
    )
}

fn small_pages() -> SessionLimits {
    SessionLimits { push_entries: 7, push_bytes: 4096, pull_page: 5 }
}

#[test]
fn devices_editing_offline_and_syncing_in_random_orders_converge() {
    for seed in 0..12u64 {
        let dir = tempfile::tempdir().unwrap();
        let relay = relay_in(dir.path());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Three walkers of g1, one hall PC that sees every grid.
        let mut devices: Vec<(Store, String)> = (0..3)
            .map(|i| {
                let store = device_store(dir.path(), &format!("phone-{i}"), &format!("w{i}"));
                let token = enrol(&relay, &format!("phone-{i}"), Role::Walker, &["g1"]);
                (store, token)
            })
            .collect();
        devices.push((device_store(dir.path(), "hall-pc", "hall-1"), enrol(&relay, "hall-pc", Role::Hall, &[])));
        let mut minute = 0;
        for _round in 0..6 {
            for _ in 0..rng.random_range(5..20) {
                let d = rng.random_range(0..devices.len());
                minute += 1;
                random_edit(&devices[d].0, &mut rng, "g1", minute);
            }
            // Some devices sync, in a random order, with random page sizes.
            let mut order: Vec<usize> = (0..devices.len()).filter(|_| rng.random_bool(0.6)).collect();
            order.shuffle(&mut rng);
            for d in order {
                let limits = SessionLimits {
                    push_entries: rng.random_range(1..20),
                    push_bytes: 64 * 1024,
                    pull_page: rng.random_range(1..10),
                };
                sync(&devices[d].0, &relay, &devices[d].1, limits).unwrap();
            }
        }
        // Everyone syncs twice: the second round brings what others pushed during the first.
        for _ in 0..2 {
            for (store, token) in &devices {
                sync(store, &relay, token, small_pages()).unwrap();
            }
        }
        let expected = fingerprint(&devices[0].0);
        assert!(!expected.0.is_empty(), "seed {seed}: some documents were made");
        for (store, _) in &devices[1..] {
            assert_eq!(fingerprint(store), expected, "seed {seed}: a device differs");
        }
        for (store, _) in &devices {
            assert_eq!(store.outbox_len().unwrap(), 0);
            assert!(store.check().unwrap().index_matches_documents);
        }
        let stats = relay.stats().unwrap();
        assert_eq!(stats.documents as usize, expected.0.len(), "seed {seed}: the relay holds every document once");
    }
}

#[test]
fn lost_requests_and_lost_replies_resume_without_losing_or_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let phone = device_store(dir.path(), "phone", "w1");
    let hall = device_store(dir.path(), "hall", "hall-1");
    let phone_token = enrol(&relay, "phone", Role::Walker, &["g1"]);
    let hall_token = enrol(&relay, "hall", Role::Hall, &[]);
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for m in 0..60 {
        random_edit(&phone, &mut rng, "g1", m);
    }
    // Every second message is lost, some before and some after the relay stored it.
    for attempt in 0..20 {
        let mut transport = InMemoryTransport::new(&relay, phone_token.as_str());
        transport.drop_requests = (0..50).map(|i| i % 4 == 1).collect();
        transport.drop_replies = (0..50).map(|i| i % 4 == 3).collect();
        let result = client::run(
            &phone,
            &mut transport,
            small_pages(),
            Retry { attempts: 1, ..Retry::default() },
            &AtomicBool::new(false),
            &mut |_| {},
        );
        match result {
            Ok(p) if p.done => break,
            Ok(_) => {}
            Err(CoreError::Network(_)) => assert!(attempt < 19, "never finished"),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(phone.outbox_len().unwrap(), 0);
    sync(&hall, &relay, &hall_token, small_pages()).unwrap();
    assert_eq!(fingerprint(&hall), fingerprint(&phone));
    let stats = relay.stats().unwrap();
    assert_eq!(stats.documents as usize, phone.document_ids().unwrap().len());
    // Each change is stored once although some were pushed twice.
    let distinct_changes: usize = phone
        .document_ids()
        .unwrap()
        .iter()
        .map(|id| automerge::AutoCommit::load(&phone.document_bytes(id).unwrap()).unwrap().get_changes(&[]).len())
        .sum();
    assert_eq!(stats.changes as usize, distinct_changes);
}

#[test]
fn a_walker_never_receives_or_writes_another_grids_documents() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let a = device_store(dir.path(), "phone-a", "wa");
    let b = device_store(dir.path(), "phone-b", "wb");
    let hall = device_store(dir.path(), "hall", "hall-1");
    let ta = enrol(&relay, "phone-a", Role::Walker, &["g1"]);
    let tb = enrol(&relay, "phone-b", Role::Walker, &["g2"]);
    let th = enrol(&relay, "hall", Role::Hall, &[]);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for m in 0..20 {
        random_edit(&a, &mut rng, "g1", m);
        random_edit(&b, &mut rng, "g2", m);
    }
    for (s, t) in [(&a, &ta), (&b, &tb), (&hall, &th), (&a, &ta), (&b, &tb)] {
        sync(s, &relay, t, small_pages()).unwrap();
    }
    let grids_of = |s: &Store| {
        s.list_requests(&RequestFilter { limit: 1000, ..Default::default() })
            .unwrap()
            .into_iter()
            .map(|r| r.grid)
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(grids_of(&a).into_iter().collect::<Vec<_>>(), vec!["g1".to_string()]);
    assert_eq!(grids_of(&b).into_iter().collect::<Vec<_>>(), vec!["g2".to_string()]);
    assert_eq!(grids_of(&hall).len(), 2);

    // Walker B forges a push of a g1 request it copied from the hall: refused, nothing stored.
    let g1_doc =
        hall.list_requests(&RequestFilter { grids: vec!["g1".into()], limit: 1, ..Default::default() }).unwrap()[0]
            .id
            .clone();
    let before = relay.stats().unwrap();
    let device_b = relay.authenticate(&tb).unwrap();
    let forged = PushRequest {
        version: PROTOCOL_VERSION,
        docs: vec![DocChanges { doc_id: g1_doc.clone(), bytes: hall.document_bytes(&g1_doc).unwrap() }],
    };
    let err = relay.push(&device_b, &forged).unwrap_err();
    assert_eq!((err.status, err.code), (403, "forbidden"));
    // A new document in g1 made on B's phone is refused too.
    let intruder = device_store(dir.path(), "intruder", "wb");
    random_edit_request(&intruder, "g1");
    let id = intruder.document_ids().unwrap()[0].clone();
    let err = relay
        .push(
            &device_b,
            &PushRequest {
                version: PROTOCOL_VERSION,
                docs: vec![DocChanges { doc_id: id.clone(), bytes: intruder.document_bytes(&id).unwrap() }],
            },
        )
        .unwrap_err();
    assert_eq!(err.status, 403);
    let after = relay.stats().unwrap();
    assert_eq!((before.documents, before.changes), (after.documents, after.changes));

    // Revoked and unknown tokens are refused on the very next request.
    assert!(relay.revoke(&device_b.id).unwrap());
    assert_eq!(relay.authenticate(&tb).unwrap_err().status, 401);
    assert_eq!(relay.authenticate(&"0".repeat(64)).unwrap_err().status, 401);
    assert_eq!(relay.authenticate("short").unwrap_err().status, 401);
    assert!(matches!(sync(&b, &relay, &tb, small_pages()), Err(CoreError::Relay { status: 401, .. })));
}

fn random_edit_request(store: &Store, grid: &str) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    loop {
        random_edit(store, &mut rng, grid, 1);
        if !store.document_ids().unwrap().is_empty() {
            return;
        }
    }
}

#[test]
fn bad_pushes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let phone = device_store(dir.path(), "phone", "w1");
    let token = enrol(&relay, "phone", Role::Walker, &["g1"]);
    let device = relay.authenticate(&token).unwrap();
    random_edit_request(&phone, "g1");
    let id = phone.document_ids().unwrap()[0].clone();
    let good = phone.document_bytes(&id).unwrap();
    sync(&phone, &relay, &token, small_pages()).unwrap();
    let before = relay.stats().unwrap();
    let push = |doc_id: &str, bytes: Vec<u8>| {
        relay.push(
            &device,
            &PushRequest { version: PROTOCOL_VERSION, docs: vec![DocChanges { doc_id: doc_id.into(), bytes }] },
        )
    };
    for (what, result) in [
        ("not automerge", push(&id, b"hello relay".to_vec())),
        ("truncated", push(&id, good[..good.len() / 2].to_vec())),
        ("empty", push(&id, Vec::new())),
        ("wrong id", push("another-doc", good.clone())),
        ("empty id", push("", good.clone())),
    ] {
        let err = result.expect_err(what);
        assert!((400..500).contains(&err.status), "{what}: {err:?}");
        assert!(!err.message.is_empty());
    }
    // A replayed push is accepted as a no-op.
    let replay = push(&id, good.clone()).unwrap();
    assert_eq!(replay.stored, 0);
    assert!(replay.duplicates > 0);
    let wrong_version = relay.push(&device, &PushRequest { version: 99, docs: vec![] }).unwrap_err();
    assert_eq!(wrong_version.code, "protocol_version");
    assert!(relay.pull(&device, "zzz", 10).is_err());
    assert!(relay.pull(&device, "c-5", 10).is_err());
    let after = relay.stats().unwrap();
    assert_eq!(
        (before.documents, before.changes, before.change_bytes),
        (after.documents, after.changes, after.change_bytes)
    );
}

#[test]
fn a_new_device_receives_compact_snapshots_and_relay_receipt_times() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let phone = device_store(dir.path(), "phone", "w1");
    let token = enrol(&relay, "phone", Role::Walker, &["g1"]);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for m in 0..40 {
        random_edit(&phone, &mut rng, "g1", m);
    }
    sync(&phone, &relay, &token, small_pages()).unwrap();
    let fresh = device_store(dir.path(), "new-phone", "w1");
    let fresh_token = enrol(&relay, "new-phone", Role::Walker, &["g1"]);
    let device = relay.authenticate(&fresh_token).unwrap();
    let first = relay.pull(&device, "", 1000).unwrap();
    assert!(first.docs.iter().all(|d| d.snapshot), "a new device gets whole documents");
    assert_eq!(first.docs.len(), phone.document_ids().unwrap().len());
    sync(&fresh, &relay, &fresh_token, small_pages()).unwrap();
    assert_eq!(fingerprint(&fresh), fingerprint(&phone));
    // The history shows when the relay first saw each event.
    let any = fresh.list_requests(&RequestFilter { limit: 1, ..Default::default() }).unwrap()[0].id.clone();
    let view = fresh.request(&any).unwrap();
    assert!(view.history.iter().all(|h| h.relay_received_at.is_some()), "{:?}", view.history);
    // A no-op sync moves nothing.
    let progress = sync(&fresh, &relay, &fresh_token, small_pages()).unwrap();
    assert_eq!((progress.docs_pushed, progress.docs_pulled), (0, 0));
}

#[test]
fn a_document_new_to_a_synced_device_arrives_in_its_smaller_form() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let (a, b) = (device_store(dir.path(), "phone-a", "wa"), device_store(dir.path(), "phone-b", "wb"));
    let (token_a, token_b) =
        (enrol(&relay, "phone-a", Role::Walker, &["g1"]), enrol(&relay, "phone-b", Role::Walker, &["g1"]));
    // b has synced (it holds a changes cursor) before a makes anything.
    sync(&b, &relay, &token_b, small_pages()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for m in 0..20 {
        random_edit(&a, &mut rng, "g1", m);
    }
    sync(&a, &relay, &token_a, small_pages()).unwrap();
    let cursor = b.pull_cursor().unwrap();
    assert!(cursor.starts_with('c'), "{cursor}");
    let device = relay.authenticate(&token_b).unwrap();
    let page = relay.pull(&device, &cursor, 2000).unwrap();
    assert_eq!(page.docs.len(), a.document_ids().unwrap().len(), "each new document once");
    for d in &page.docs {
        let snapshot = a.document_bytes(&d.doc_id).unwrap();
        let changes = gridwalk_core::docs::decode_changes_strict(&d.bytes).unwrap();
        assert_eq!(changes.len(), d.receipts.len(), "a receipt for each change of {}", d.doc_id);
        if !d.snapshot {
            assert!(
                d.bytes.len() <= snapshot.len() + 64,
                "{}: {} bytes of changes against a {}-byte snapshot",
                d.doc_id,
                d.bytes.len(),
                snapshot.len()
            );
        }
    }
    assert!(page.docs.iter().any(|d| !d.snapshot), "a document made of a change or two travels as its changes");
    sync(&b, &relay, &token_b, small_pages()).unwrap();
    assert_eq!(fingerprint(&b), fingerprint(&a));
}

/// The names of a store's secondary indexes.
fn index_names(store: &Store) -> Vec<String> {
    store
        .connection()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Cuts the network after `pulls` pull replies, as a hall's Wi-Fi might in a first pull.
struct CutAfterPulls<'a> {
    inner: InMemoryTransport<'a>,
    pulls: usize,
}

impl client::Transport for CutAfterPulls<'_> {
    fn send(&mut self, message: &client::Outgoing) -> Result<client::Incoming, client::SyncFailure> {
        if matches!(message, client::Outgoing::Pull { .. }) {
            if self.pulls == 0 {
                return Err(client::SyncFailure::Network("the hall's Wi-Fi dropped".into()));
            }
            self.pulls -= 1;
        }
        self.inner.send(message)
    }
}

/// A new device's first pull defers its list indexes (schema 14) and builds them when the pull
/// ends, and also when the pull is cut off midway: either way the device ends with every index
/// a store that kept them all along has, and the same documents and index rows as the sender.
#[test]
fn a_first_pull_ends_with_every_list_index_whether_it_completes_or_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let phone = device_store(dir.path(), "phone", "w1");
    let token = enrol(&relay, "phone", Role::Walker, &["g1"]);
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut m = 0;
    while phone.document_ids().unwrap().len() < 260 {
        random_edit(&phone, &mut rng, "g1", m);
        m += 1;
    }
    sync(&phone, &relay, &token, SessionLimits::default()).unwrap();
    // A first page of at least 100 documents defers the indexes.
    let pages = SessionLimits { pull_page: 120, ..SessionLimits::default() };
    assert!(phone.document_ids().unwrap().len() > 2 * pages.pull_page, "the pull takes several pages");

    let whole = device_store(dir.path(), "new-phone", "w1");
    let whole_token = enrol(&relay, "new-phone", Role::Walker, &["g1"]);
    sync(&whole, &relay, &whole_token, pages).unwrap();
    assert_eq!(index_names(&whole), index_names(&phone));
    assert_eq!(fingerprint(&whole), fingerprint(&phone));

    let cut = device_store(dir.path(), "cut-phone", "w1");
    let cut_token = enrol(&relay, "cut-phone", Role::Walker, &["g1"]);
    let mut transport = CutAfterPulls { inner: InMemoryTransport::new(&relay, &cut_token), pulls: 1 };
    let outcome = client::run(
        &cut,
        &mut transport,
        pages,
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        &mut |_| {},
    );
    assert!(matches!(outcome, Err(CoreError::Network(_))), "{outcome:?}");
    assert_eq!(cut.document_ids().unwrap().len(), pages.pull_page, "one page came in");
    assert_eq!(index_names(&cut), index_names(&phone));
    // The rest comes in on the next sync, row by row, into the indexes built.
    sync(&cut, &relay, &cut_token, pages).unwrap();
    assert_eq!(index_names(&cut), index_names(&phone));
    assert_eq!(fingerprint(&cut), fingerprint(&phone));
}

/// The relay holds no lock of its own around its store: pushes are prepared side by side and a
/// push whose document changed meanwhile is prepared again. Six walkers report progress on the
/// same request offline and all sync at the same moment, on the SQLite store: every report is
/// kept, and every device ends with the same request.
#[test]
fn walkers_pushing_to_one_request_at_the_same_moment_all_keep_their_steps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
    let relay = Relay::new(Box::new(SqliteRelayStore::open(&dir.path().join("relay.db")).unwrap()), clock);
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let hall_token = enrol(&relay, "hall-pc", Role::Hall, &[]);
    random_edit_request(&hall, "g1");
    let id = hall.list_requests(&RequestFilter::default()).unwrap()[0].id.clone();
    hall.act(
        &hall.context(common::t(2)),
        &id,
        gridwalk_core::lifecycle::Action::Triaged { decision: gridwalk_core::lifecycle::TriageDecision::Accept },
    )
    .unwrap();
    sync(&hall, &relay, &hall_token, small_pages()).unwrap();
    let walkers: Vec<(Store, String)> = (0..6)
        .map(|i| {
            let store = device_store(dir.path(), &format!("phone-{i}"), &format!("w{i}"));
            let token = enrol(&relay, &format!("phone-{i}"), Role::Walker, &["g1"]);
            sync(&store, &relay, &token, small_pages()).unwrap();
            let note = format!("{i} 号网格员的进展");
            store
                .act(&store.context(common::t(10 + i)), &id, gridwalk_core::lifecycle::Action::Progress { note })
                .unwrap();
            (store, token)
        })
        .collect();
    let start = std::sync::Barrier::new(walkers.len());
    let walkers: Vec<(Store, String)> = std::thread::scope(|s| {
        let running: Vec<_> = walkers
            .into_iter()
            .map(|(store, token)| {
                let (relay, start) = (&relay, &start);
                s.spawn(move || {
                    start.wait();
                    sync(&store, relay, &token, SessionLimits::default()).unwrap();
                    (store, token)
                })
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (store, token) in &walkers {
        sync(store, &relay, token, SessionLimits::default()).unwrap();
    }
    sync(&hall, &relay, &hall_token, SessionLimits::default()).unwrap();
    let progress =
        hall.request(&id).unwrap().history.iter().filter(|h| h.event.action.verb() == "add progress to").count();
    assert_eq!(progress, walkers.len(), "every walker's report is kept");
    let expected = fingerprint(&hall).0;
    for (store, _) in &walkers {
        assert_eq!(
            fingerprint(store).0.into_iter().filter(|(d, _)| d == &id).collect::<Vec<_>>(),
            expected.iter().filter(|(d, _)| d == &id).cloned().collect::<Vec<_>>()
        );
    }
}

//! Fuzzing the relay's request decoding with proptest over raw bytes: the push body decoder,
//! the strict Automerge change decoder, whole pushes with mutated valid bodies, and pull cursors.
//! Whatever arrives, the relay answers with a 4xx error or a success, never a panic or a 5xx,
//! and a refused push leaves its store unchanged.
//!
//! CI runs a few thousand cases; `PROPTEST_CASES=200000 cargo test --release -p gridwalk-relay
//! --test fuzz` runs a long session.

mod common;

use std::sync::Arc;
use std::sync::OnceLock;

use chrono::TimeZone;
use gridwalk_core::docs::decode_changes_strict;
use gridwalk_core::sync::protocol::{self, DocChanges, PushRequest, PROTOCOL_VERSION};
use gridwalk_core::ManualClock;
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{Device, Role, SqliteRelayStore};
use proptest::prelude::*;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

struct Fixture {
    relay: Relay,
    device: Device,
    /// A real document's saved bytes and its id, to mutate.
    doc_id: String,
    good: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static std::sync::Mutex<Fixture> {
    static FIXTURE: OnceLock<std::sync::Mutex<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
        let relay = Relay::new(Box::new(SqliteRelayStore::open(&dir.path().join("relay.db")).unwrap()), clock);
        let code = relay.create_enrollment("fuzz", Role::Walker, &["g1".to_string()]).unwrap();
        let token = relay
            .enroll(&protocol::EnrollRequest { code, device_name: "fuzz".into(), device_key: None })
            .unwrap()
            .token;
        let device = relay.authenticate(&token).unwrap();
        let store = common::device_store(dir.path(), "phone", "w1");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        while store.document_ids().unwrap().is_empty() {
            common::random_edit(&store, &mut rng, "g1", 1);
        }
        let doc_id = store.document_ids().unwrap()[0].clone();
        let good = store.document_bytes(&doc_id).unwrap();
        std::sync::Mutex::new(Fixture { relay, device, doc_id, good, _dir: dir })
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = protocol::decode::<PushRequest>(&bytes);
        let _ = protocol::decode::<protocol::PullResponse>(&bytes);
        let _ = decode_changes_strict(&bytes);
        // With the Automerge magic number in front, the decoder gets past the first check.
        let mut magic = vec![0x85, 0x6f, 0x4a, 0x83];
        magic.extend_from_slice(&bytes);
        let _ = decode_changes_strict(&magic);
    }

    #[test]
    fn mutated_pushes_are_refused_with_4xx_or_stored_whole(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let f = fixture().lock().unwrap();
        let mut bytes = f.good.clone();
        for (at, value) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let before = f.relay.stats().unwrap();
        let body = protocol::encode(&PushRequest { version: PROTOCOL_VERSION, docs: vec![DocChanges { doc_id: f.doc_id.clone(), bytes }] });
        // Through the same decoder the HTTP layer uses.
        let request: PushRequest = protocol::decode(&body).unwrap();
        match f.relay.push(&f.device, &request) {
            Ok(_) => {}
            Err(e) => {
                prop_assert!((400..500).contains(&e.status), "{e:?}");
                let after = f.relay.stats().unwrap();
                prop_assert_eq!((before.documents, before.changes, before.change_bytes), (after.documents, after.changes, after.change_bytes));
            }
        }
    }

    #[test]
    fn arbitrary_push_bodies_and_cursors_get_4xx_not_5xx(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        cursor in ".{0,24}",
        limit in any::<usize>(),
    ) {
        let f = fixture().lock().unwrap();
        if let Ok(request) = protocol::decode::<PushRequest>(&body) {
            if let Err(e) = f.relay.push(&f.device, &request) {
                prop_assert!((400..500).contains(&e.status), "{e:?}");
            }
        }
        if let Err(e) = f.relay.pull(&f.device, &cursor, limit) {
            prop_assert!((400..500).contains(&e.status), "{e:?}");
        }
    }
}

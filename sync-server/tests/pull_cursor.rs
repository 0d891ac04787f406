//! The pull cursor through the relay itself, with pushes committing while pulls read, on every
//! store: no change is ever passed over.
//!
//! Regression (found by the load benchmark, P6): a pull read the changes after its cursor and
//! then the newest change number, and moved the cursor to that number. A push that committed
//! between the two reads was passed over for good: on PostgreSQL three of 120 changes never
//! reached the phones of their grid. The newest number is now read first.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use automerge::AutoCommit;
use chrono::TimeZone;
use gridwalk_core::docs::{self as core_docs, Place, Reporter, RequestBody, RequestDocument, Source, Urgency};
use gridwalk_core::sync::protocol::{DocChanges, EnrollRequest, PushRequest, PROTOCOL_VERSION};
use gridwalk_core::{ActionContext, ManualClock};
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{MemoryRelayStore, PostgresRelayStore, RelayStore, Role, SqliteRelayStore};

const PUSHERS: usize = 4;
const REQUESTS: usize = 40;

fn request_changes(pusher: usize, n: usize) -> (String, Vec<u8>, [u8; 32]) {
    let id = format!("r-{pusher}-{n}");
    let body = RequestBody {
        reporter: Reporter::Anonymous,
        place: Place { address: "村道".into(), gps: None },
        micro_grid: None,
        category: "streetlight".into(),
        description: format!("路灯不亮 {pusher}-{n}"),
        urgency: Urgency::Normal,
        source: Source::Visit,
        visit: None,
        number: None,
    };
    let ctx = ActionContext::new(format!("hall-{pusher}"), format!("pc-{pusher}"), common::t(n as i64));
    let mut doc = RequestDocument::create(&ctx, &id, "g1", &body).unwrap();
    let changes = doc.automerge().get_changes(&[]);
    assert_eq!(changes.len(), 1);
    (id, changes[0].raw_bytes().to_vec(), changes[0].hash().0)
}

fn received(page: &gridwalk_core::sync::protocol::PullResponse, into: &mut HashSet<[u8; 32]>) {
    for d in &page.docs {
        if d.snapshot {
            into.extend(AutoCommit::load(&d.bytes).unwrap().get_changes(&[]).iter().map(|c| c.hash().0));
        } else {
            into.extend(core_docs::decode_changes_strict(&d.bytes).unwrap().iter().map(|c| c.hash().0));
        }
    }
}

fn no_change_is_passed_over(store: Box<dyn RelayStore>) {
    let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
    let relay = Arc::new(Relay::new(store, clock));
    let token = |name: &str| {
        let code = relay.create_enrollment(name, Role::Hall, &[]).unwrap();
        relay.enroll(&EnrollRequest { code, device_name: name.into(), device_key: None }).unwrap().token
    };
    let pushers: Vec<String> = (0..PUSHERS).map(|i| token(&format!("pc-{i}"))).collect();
    let pullers: Vec<String> = (0..2).map(|i| token(&format!("reader-{i}"))).collect();
    let done = Arc::new(AtomicBool::new(false));

    // Readers pull in a loop, small pages, while the pushers commit.
    let readers: Vec<_> = pullers
        .into_iter()
        .map(|t| {
            let (relay, done) = (relay.clone(), done.clone());
            thread::spawn(move || {
                let device = relay.authenticate(&t).unwrap();
                let (mut cursor, mut got) = (String::new(), HashSet::new());
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = relay.pull(&device, &cursor, 7).unwrap();
                    received(&page, &mut got);
                    cursor = page.cursor;
                    if finished && !page.more {
                        return got;
                    }
                }
            })
        })
        .collect();
    let writers: Vec<_> = pushers
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let relay = relay.clone();
            thread::spawn(move || {
                let device = relay.authenticate(&t).unwrap();
                (0..REQUESTS)
                    .map(|n| {
                        let (id, bytes, hash) = request_changes(i, n);
                        let docs = vec![DocChanges { doc_id: id, bytes }];
                        relay.push(&device, &PushRequest { version: PROTOCOL_VERSION, docs }).unwrap();
                        hash
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let pushed: HashSet<[u8; 32]> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    done.store(true, Ordering::SeqCst);
    assert_eq!(pushed.len(), PUSHERS * REQUESTS);
    for r in readers {
        let got = r.join().unwrap();
        let missing = pushed.difference(&got).count();
        assert_eq!(missing, 0, "{missing} of {} changes never reached a reader", pushed.len());
    }
}

#[test]
fn no_change_is_passed_over_by_a_pull_in_memory() {
    no_change_is_passed_over(Box::new(MemoryRelayStore::new()));
}

#[test]
fn no_change_is_passed_over_by_a_pull_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    no_change_is_passed_over(Box::new(SqliteRelayStore::open(&dir.path().join("relay.db")).unwrap()));
}

#[test]
fn no_change_is_passed_over_by_a_pull_on_postgres() {
    let server = common::pg::TempPostgres::start();
    no_change_is_passed_over(Box::new(PostgresRelayStore::open(&server.new_database()).unwrap()));
}

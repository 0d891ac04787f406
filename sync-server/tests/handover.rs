//! Issue 14 at the relay, with requests crafted straight to it: the hand-over of a
//! forgotten-PIN store (whose work goes to which enrolment, and when), and the grids a walker
//! was moved off (what they still take from her phone, and until when).

mod common;

use std::sync::Arc;

use chrono::TimeZone;
use common::{device_store, t};
use gridwalk_core::store::NewVisit;
use gridwalk_core::sync::protocol::{
    DocChanges, EnrollRequest, EscrowedStoreKey, HandoverDone, HandoverRequest, PushRequest, PROTOCOL_VERSION,
};
use gridwalk_core::ManualClock;
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{MemoryRelayStore, Role};

/// A relay whose clock reads 2026-11-02 09:00 (an hour after `t(0)`).
fn relay() -> Relay {
    let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
    Relay::new(Box::new(MemoryRelayStore::new()), clock)
}

fn enrol(relay: &Relay, name: &str, grids: &[&str], walker: &str) -> (String, String) {
    let grids: Vec<String> = grids.iter().map(|g| g.to_string()).collect();
    let code = relay.create_enrollment_for(name, Role::Walker, &grids, Some(walker)).unwrap();
    let r = relay.enroll(&EnrollRequest { code, device_name: name.into(), device_key: None }).unwrap();
    (r.device_id, r.token)
}

/// What a phone escrows: its store key and id, age-encrypted to the relay's escrow recipient.
fn escrowed(relay: &Relay, device: &str) -> String {
    let to: age::x25519::Recipient = relay.escrow_recipient().unwrap().parse().unwrap();
    let plain = serde_json::to_vec(&EscrowedStoreKey { device_id: device.into(), store_key: "11".repeat(32) }).unwrap();
    hex::encode(age::encrypt(&to, &plain).unwrap())
}

fn ask(
    relay: &Relay,
    token: &str,
    escrowed: &str,
) -> Result<gridwalk_core::sync::protocol::HandoverView, (u16, String)> {
    let device = relay.authenticate(token).unwrap();
    let reply = age::x25519::Identity::generate().to_public().to_string();
    relay
        .request_handover(&device, &HandoverRequest { escrowed: escrowed.into(), reply_recipient: reply })
        .map_err(|e| (e.status, e.code.to_string()))
}

#[test]
fn a_forgotten_pins_work_goes_to_the_walkers_newest_enrolment_only_and_never_to_another_walker() {
    let relay = relay();
    let (old, _) = enrol(&relay, "old", &["g1"], "w1");
    let (_, first) = enrol(&relay, "first", &["g1"], "w1");
    let (_, second) = enrol(&relay, "second", &["g1"], "w1");
    let (_, stranger) = enrol(&relay, "stranger", &["g2"], "w2");
    let key = escrowed(&relay, &old);

    assert_eq!(ask(&relay, &stranger, &key).unwrap_err(), (403, "handover_forbidden".into()), "another walker");
    assert_eq!(ask(&relay, &first, &key).unwrap().state, "pending");
    // A second enrolment of hers may not take it while the first is in use...
    assert_eq!(ask(&relay, &second, &key).unwrap_err(), (403, "handover_forbidden".into()));
    // ...but once the first is gone (revoked, or itself set aside and handed over), it may, and
    // the hall confirms again.
    let first_id = relay.authenticate(&first).unwrap().id;
    relay.revoke(&first_id).unwrap();
    let rebound = ask(&relay, &second, &key).unwrap();
    assert_eq!((rebound.state.as_str(), rebound.to_device_name.as_str()), ("pending", "second"));
    let released = relay.release_handover(&old, "admin").unwrap();
    assert_eq!(released.state, "released");
    assert!(released.released_key.is_none(), "the operator's view carries no key");
    let me = relay.authenticate(&second).unwrap();
    let mine = relay.handovers(&me).unwrap();
    assert!(mine[0].released_key.is_some(), "the enrolment it goes to gets the key");
    let other = relay.authenticate(&stranger).unwrap();
    assert!(relay.handovers(&other).unwrap().is_empty(), "another walker's phone sees nothing of it");
    // Done: the old device is shown revoked and wiped, also when the phone says it twice.
    for _ in 0..2 {
        let done = relay
            .finish_handover(&me, &HandoverDone { from_device: old.clone(), taken_documents: 2, taken_photos: 1 })
            .unwrap();
        assert_eq!(done.state, "done");
    }
    let shown = relay.devices().unwrap().into_iter().find(|d| d.id == old).unwrap();
    assert!(shown.revoked_at.is_some() && shown.wiped_at.is_some());
    // A garbled or foreign escrow is refused with a clear code.
    assert_eq!(ask(&relay, &second, "zz").unwrap_err().0, 400);
    let foreign = {
        let to = age::x25519::Identity::generate().to_public();
        hex::encode(age::encrypt(&to, b"{}").unwrap())
    };
    assert_eq!(ask(&relay, &second, &foreign).unwrap_err(), (400, "bad_escrowed_key".into()));
}

fn visit_at(store: &gridwalk_core::store::Store, minutes: i64) -> String {
    store
        .record_visit(
            &store.context(t(minutes)),
            NewVisit {
                id: None,
                grid: "g1".into(),
                micro_grid: None,
                target: gridwalk_core::docs::VisitTarget::Household { id: "g1-h0".into() },
                kind: gridwalk_core::docs::VisitKind::Daily,
                visited_at: None,
                other_walkers: vec![],
                companions: vec![],
                notes: format!("走访 {minutes}"),
                gps: None,
            },
        )
        .unwrap()
}

fn push(relay: &Relay, token: &str, store: &gridwalk_core::store::Store, id: &str) -> Result<(), u16> {
    let device = relay.authenticate(token).unwrap();
    let docs = vec![DocChanges { doc_id: id.into(), bytes: store.document_bytes(id).unwrap() }];
    relay.push(&device, &PushRequest { version: PROTOCOL_VERSION, docs }).map(|_| ()).map_err(|e| e.status)
}

#[test]
fn a_grid_left_takes_only_what_was_recorded_there_before_the_move_and_only_until_the_phone_forgot_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay();
    let (id, token) = enrol(&relay, "phone", &["g1", "g2"], "w1");
    let store = device_store(dir.path(), "phone", "w1");
    let before = visit_at(&store, 0);
    let also_before = visit_at(&store, 10);
    let after = visit_at(&store, 24 * 60);
    assert!(relay.set_device_grids(&id, &["g2".to_string()]).unwrap());
    assert_eq!(push(&relay, &token, &store, &before), Ok(()), "recorded before the move: taken");
    assert_eq!(push(&relay, &token, &store, &after), Err(403), "recorded after the move: refused");
    let device = relay.authenticate(&token).unwrap();
    // Said while serving other grids than the relay gives it (a second move meanwhile): kept open.
    assert_eq!(relay.finish_leaving(&device, &["g1".to_string(), "g2".to_string()]).unwrap_err().status, 409);
    relay.finish_leaving(&device, &["g2".to_string()]).unwrap();
    assert_eq!(push(&relay, &token, &store, &also_before), Err(403), "forgotten: nothing more is taken");
}

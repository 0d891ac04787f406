//! People, not devices (issue 13): staff sign in on a shared hall PC with their name and PIN,
//! every action is taken in the name of whoever is signed in, a session ends when left idle,
//! wrong PINs are slowed down, another hall PC checks a PIN with the relay out of reach, and the
//! relay refuses a hall device's events that name anyone not on the staff roster.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gridwalk_app_api::{App, SyncSettings};
use gridwalk_core::lifecycle::{Action, TriageDecision};
use gridwalk_core::store::{Identity, RequestFilter, Store};
use gridwalk_core::sync::client;
use gridwalk_core::{ActionContext, SystemClock};
use serde_json::json;

fn new_request_of(app: &App) -> String {
    let page = app.call("requests", json!({"statuses": ["new"], "limit": 1})).unwrap();
    page["items"][0]["id"].as_str().expect("the town has a new request").to_string()
}

/// The events of a request, as (step, person) pairs, oldest first.
fn steps(app: &App, id: &str) -> Vec<(String, String)> {
    let detail = app.call("request", json!({"id": id})).unwrap();
    let mut history = detail["history"].as_array().unwrap().clone();
    history.sort_by_key(|h| h["at"].as_i64());
    history
        .iter()
        .map(|h| (h["type"].as_str().unwrap().to_string(), h["actor"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn two_staff_sign_in_one_after_the_other_and_each_acts_in_her_own_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let mut relay = RelayServer::start(&dir.path().join("relay"), None);
    let data = dir.path().join("hall");
    std::fs::create_dir_all(&data).unwrap();
    drop(hall_at(&data.join(gridwalk_app_api::STORE_FILE), &relay));
    let settings = SyncSettings { sign_in_idle: Duration::from_millis(1500), ..settings() };
    let app = App::open(&data, Arc::new(SystemClock), settings).unwrap();

    // Before any PIN is set, the PC acts as before; the admin gives two staff their PINs.
    let status = app.call("status", json!({})).unwrap();
    assert_eq!(status["sign_in_required"], false);
    assert_eq!(app.call("set_pin", json!({"person": "w001", "pin": "1234"})).unwrap_err().code, "invalid_input");
    assert_eq!(app.call("set_pin", json!({"person": "hall-2", "pin": "12"})).unwrap_err().code, "invalid_input");
    app.call("set_pin", json!({"person": "hall-1", "pin": "2580"})).unwrap();
    // From the first PIN on, nobody acts here without signing in.
    let status = app.call("status", json!({})).unwrap();
    assert_eq!((status["sign_in_required"].as_bool(), status["signed_in"].is_null()), (Some(true), true));
    assert_eq!(app.call("set_pin", json!({"person": "hall-2", "pin": "1357"})).unwrap_err().code, "sign_in_required");
    let id = new_request_of(&app);
    let accept = json!({"id": id, "action": {"type": "triaged", "decision": {"kind": "accept"}}});
    assert_eq!(app.call("act", accept.clone()).unwrap_err().code, "sign_in_required");
    assert_eq!(app.call("request", json!({"id": id})).unwrap()["allowed"], json!([]), "nothing offered signed out");
    // The PIN is kept only as a slow salted hash.
    let store = Store::open(data.join(gridwalk_app_api::STORE_FILE)).unwrap();
    let hash: String = store
        .connection()
        .query_row("SELECT pin_hash FROM staff_pins WHERE person = 'hall-1'", [], |r| r.get(0))
        .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("2580"), "{hash}");

    // 陈 (hall-1) signs in, sets 王's PIN and accepts the request; then signs out.
    assert_eq!(app.call("sign_in", json!({"person": "hall-1", "pin": "0000"})).unwrap_err().code, "wrong_pin");
    let signed = app.call("sign_in", json!({"person": "hall-1", "pin": "2580"})).unwrap();
    assert_eq!(signed["signed_in"]["id"], "hall-1");
    app.call("set_pin", json!({"person": "hall-2", "pin": "1357"})).unwrap();
    app.call("act", accept).unwrap();
    app.call("sign_out", json!({})).unwrap();
    // 王 (hall-2) signs in on the same PC and assigns it.
    app.call("sign_in", json!({"person": "hall-2", "pin": "1357"})).unwrap();
    let office = app.call("reference", json!({})).unwrap()["departments"][0]["id"].as_str().unwrap().to_string();
    let deadline = chrono::Utc::now().timestamp_millis() + 7 * 86_400_000;
    app.call(
        "act",
        json!({"id": id, "action": {"type": "assigned", "department": office, "deadline": deadline, "level": "town"}}),
    )
    .unwrap();
    let done = steps(&app, &id);
    // Each step by its person, by name (the demo town's hall-1 is 陈国平, hall-2 王丽华).
    assert_eq!(&done[done.len() - 2..], [("triaged".into(), "陈国平".into()), ("assigned".into(), "王丽华".into())]);

    // Taps and typing keep the session going (the UI says `still_here`); the screens' own
    // reloads do not: left on a page, the session ends by itself.
    std::thread::sleep(Duration::from_millis(900));
    app.call("still_here", json!({})).unwrap();
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(app.call("status", json!({})).unwrap()["signed_in"]["id"], "hall-2", "kept going by a tap");
    for _ in 0..3 {
        app.call("request", json!({"id": id})).unwrap();
        app.call("inbox", json!({})).unwrap();
        std::thread::sleep(Duration::from_millis(600));
    }
    assert!(app.call("status", json!({})).unwrap()["signed_in"].is_null());
    assert_eq!(
        app.call("act", json!({"id": id, "action": {"type": "progress", "note": "x"}})).unwrap_err().code,
        "sign_in_required"
    );

    // Everything reaches the relay, accepted: both are on the staff roster.
    app.call("sync_now", json!({})).unwrap();
    wait_for(&app, "the hall PC's work to go up", |s| s["pending_documents"] == 0 && s["syncing"] == false);

    // A second hall PC receives the staff roster and the steps with their people; with the
    // relay gone, 王 still signs in there, her PIN checked against the hash it holds.
    let code = relay.relay().create_enrollment("hall-2", gridwalk_relay::store::Role::Hall, &[]).unwrap();
    let second = App::open(dir.path().join("second"), Arc::new(SystemClock), settings).unwrap();
    second.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "二号前台电脑"})).unwrap();
    wait_for(&second, "the second PC's first sync", |s| s["last_sync_at"].is_number() && s["syncing"] == false);
    let there = steps(&second, &id);
    assert_eq!(&there[there.len() - 2..], &done[done.len() - 2..]);
    relay.stop();
    assert_eq!(second.call("status", json!({})).unwrap()["sign_in_required"], true);
    assert_eq!(second.call("sign_in", json!({"person": "hall-2", "pin": "2580"})).unwrap_err().code, "wrong_pin");
    assert_eq!(
        second.call("sign_in", json!({"person": "hall-2", "pin": "1357"})).unwrap()["signed_in"]["id"],
        "hall-2"
    );
}

#[test]
fn wrong_pins_are_slowed_down_after_five_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hall");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::create(
        data.join(gridwalk_app_api::STORE_FILE),
        Identity { device: "hall-pc".into(), walker: "hall-1".into() },
    )
    .unwrap();
    store
        .put_walker(&gridwalk_core::model::Walker {
            id: "hall-1".into(),
            name: "陈国平".into(),
            phone: None,
            role: gridwalk_core::model::Role::Hall,
            work_group: None,
            grids: vec![],
        })
        .unwrap();
    store.set_staff_pin(&store.context(now()), "hall-1", "2580").unwrap();
    drop(store);
    let app = App::open(&data, Arc::new(SystemClock), SyncSettings { automatic: false, ..settings() }).unwrap();
    for _ in 0..5 {
        assert_eq!(app.call("sign_in", json!({"person": "hall-1", "pin": "1111"})).unwrap_err().code, "wrong_pin");
    }
    // Even the right PIN waits now: whoever is guessing cannot tell.
    let slowed = app.call("sign_in", json!({"person": "hall-1", "pin": "2580"})).unwrap_err();
    assert_eq!(slowed.code, "pin_attempts_slowed", "{slowed:?}");
    assert!(slowed.message.contains("30 seconds") || slowed.message.contains("29 seconds"), "{}", slowed.message);
}

/// The check lives in the relay, not only in the app: a hall device whose software skips the
/// sign-in and writes events in the name of someone not on the staff roster is refused.
#[test]
fn the_relay_refuses_a_hall_devices_events_in_the_name_of_someone_not_on_the_staff_roster() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let relay = RelayServer::start(&dir.path().join("relay"), None);
    let hall = hall_at(&dir.path().join("hall.db"), &relay);
    hall.set_staff_pin(&hall.context(now()), "hall-1", "2580").unwrap();
    client::sync_over_http(&hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let digest_before = relay.digest();

    let id = hall.list_requests(&RequestFilter { limit: 1, ..new_filter() }).unwrap().remove(0).id;
    let mallory = ActionContext::new("mallory", "hall-pc", now());
    hall.act(&mallory, &id, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    let refused = client::sync_over_http(&hall, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(
        matches!(&refused, gridwalk_core::CoreError::Relay { status: 403, code, message } if code == "forbidden_action" && message.contains("mallory")),
        "{refused:?}"
    );
    assert_eq!(relay.digest(), digest_before, "nothing of the push was stored");

    // The same step in the name of a staff member on the roster goes through.
    let fresh = tempfile::tempdir().unwrap();
    let honest =
        Store::create(fresh.path().join("h.db"), Identity { device: "hall-pc2".into(), walker: "hall-1".into() })
            .unwrap();
    let code = relay.relay().create_enrollment("hall-pc2", gridwalk_relay::store::Role::Hall, &[]).unwrap();
    client::join(&honest, &relay.url(), &code, "hall-pc2").unwrap();
    client::sync_over_http(&honest, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let other = honest.list_requests(&RequestFilter { limit: 1, ..new_filter() }).unwrap().remove(0).id;
    honest.act(&honest.context(now()), &other, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    client::sync_over_http(&honest, &AtomicBool::new(false), &mut |_| {}).unwrap();

    // Nor in the name of a hall colleague who has no PIN: nobody can have signed in as him.
    let next = honest.list_requests(&RequestFilter { limit: 1, ..new_filter() }).unwrap().remove(0).id;
    let unsigned = ActionContext::new("hall-3", "hall-pc2", now());
    honest.act(&unsigned, &next, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    let refused = client::sync_over_http(&honest, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(
        matches!(&refused, gridwalk_core::CoreError::Relay { status: 403, code, message } if code == "forbidden_action" && message.contains("hall-3")),
        "{refused:?}"
    );
    // (Its refused step stays in this store's outbox; a fresh store goes on.)
    let fresh2 = tempfile::tempdir().unwrap();
    let honest =
        Store::create(fresh2.path().join("h.db"), Identity { device: "hall-pc3".into(), walker: "hall-1".into() })
            .unwrap();
    let code = relay.relay().create_enrollment("hall-pc3", gridwalk_relay::store::Role::Hall, &[]).unwrap();
    client::join(&honest, &relay.url(), &code, "hall-pc3").unwrap();
    client::sync_over_http(&honest, &AtomicBool::new(false), &mut |_| {}).unwrap();

    // Nor may a hall device take a hall's step in a walker's name: the roster knows w001 as a
    // walker, and a walker does not triage.
    let next = honest.list_requests(&RequestFilter { limit: 1, ..new_filter() }).unwrap().remove(0).id;
    let as_walker = ActionContext::new("w001", "hall-pc3", now());
    honest.act(&as_walker, &next, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    let refused = client::sync_over_http(&honest, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(
        matches!(&refused, gridwalk_core::CoreError::Relay { status: 403, code, message } if code == "forbidden_action" && message.contains("w001")),
        "{refused:?}"
    );
}

fn new_filter() -> RequestFilter {
    RequestFilter { statuses: vec![gridwalk_core::lifecycle::Status::New], ..RequestFilter::default() }
}

//! People, not devices (issue 13): staff sign in on a shared hall PC with their name and PIN,
//! every action is taken in the name of whoever is signed in, a session ends when left idle,
//! wrong PINs are slowed down, another hall PC checks a PIN with the relay out of reach, the
//! relay refuses a hall device's events that name anyone not on the staff list, and only the
//! relay changes that list, for a person who proves herself with her own PIN.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gridwalk_app_api::{App, SyncSettings};
use gridwalk_core::docs::RequestDocument;
use gridwalk_core::lifecycle::{Action, TriageDecision};
use gridwalk_core::store::{Identity, RequestFilter, Store};
use gridwalk_core::sync::protocol::{DocChanges, PushRequest, PROTOCOL_VERSION};
use gridwalk_core::{ActionContext, SystemClock};
use gridwalk_transport::client::{self, HttpTransport, Outgoing, Transport};
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

/// Names the demo town's admin at the relay (its operator's first step) and gives `people`
/// their PINs through the relay, as that admin; `hall` then pulls the list.
fn staff_at_relay(relay: &RelayServer, hall: &Store, people: &[(&str, &str)]) {
    relay.relay().add_admin("admin", "系统管理员", "9630").unwrap();
    client::sync_over_http(hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let admin = ActionContext::new("admin", hall.identity().device.clone(), now());
    let link = hall.relay_link().unwrap().unwrap();
    for (person, pin) in people {
        client::change_staff(&link, &hall.staff_pin_request(&admin, person, pin, "9630").unwrap()).unwrap();
    }
    client::sync_over_http(hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
}

/// Waits until the app's store holds `person` on its staff list (pulled from the relay).
fn wait_for_staff(app: &App, person: &str) {
    for _ in 0..100 {
        let staff = app.call("staff", json!({})).unwrap();
        if staff.as_array().unwrap().iter().any(|s| s["id"] == person && s["has_pin"] == true) {
            return;
        }
        app.call("sync_now", json!({})).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{person} never reached the app's staff list");
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

    // Before the relay's operator names an admin, the PC acts as before, and nobody can give
    // PINs: the staff list is the relay's.
    let status = app.call("status", json!({})).unwrap();
    assert_eq!(status["sign_in_required"], false);
    let no_list = app.call("set_pin", json!({"person": "hall-1", "pin": "2580", "my_pin": "0000"})).unwrap_err();
    assert_eq!(no_list.code, "no_staff_roster", "{no_list:?}");
    assert_eq!(
        app.call("set_pin", json!({"person": "w001", "pin": "1234", "my_pin": "0"})).unwrap_err().code,
        "invalid_input"
    );
    relay.relay().add_admin("admin", "系统管理员", "9630").unwrap();
    wait_for_staff(&app, "admin");
    // From then on, nobody acts here without signing in.
    let status = app.call("status", json!({})).unwrap();
    assert_eq!((status["sign_in_required"].as_bool(), status["signed_in"].is_null()), (Some(true), true));
    let pin = |person: &str, new: &str, mine: &str| json!({"person": person, "pin": new, "my_pin": mine});
    assert_eq!(app.call("set_pin", pin("hall-2", "1357", "9630")).unwrap_err().code, "sign_in_required");
    let id = new_request_of(&app);
    let accept = json!({"id": id, "action": {"type": "triaged", "decision": {"kind": "accept"}}});
    assert_eq!(app.call("act", accept.clone()).unwrap_err().code, "sign_in_required");
    assert_eq!(app.call("request", json!({"id": id})).unwrap()["allowed"], json!([]), "nothing offered signed out");

    // The admin signs in and gives two staff their PINs; her own PIN is checked by the relay.
    app.call("sign_in", json!({"person": "admin", "pin": "9630"})).unwrap();
    // The monthly list leaves the PC: its line in the access log names the admin (issue 14).
    app.call("export_monthly_xlsx", json!({"month": "2026-10", "scope": {"kind": "all"}})).unwrap();
    let log = app.call("access_log", json!({})).unwrap();
    assert_eq!((log[0]["kind"].as_str(), log[0]["person"].as_str()), (Some("export_monthly"), Some("admin")), "{log}");
    assert_eq!(app.call("set_pin", pin("hall-1", "2580", "1111")).unwrap_err().code, "wrong_pin");
    app.call("set_pin", pin("hall-1", "2580", "9630")).unwrap();
    app.call("set_pin", pin("hall-2", "1357", "9630")).unwrap();
    // An admin does not triage: she acts in her own role, as the relay judges.
    assert_eq!(app.call("act", accept.clone()).unwrap_err().code, "forbidden");
    app.call("sign_out", json!({})).unwrap();
    wait_for_staff(&app, "hall-2");
    // The PIN is kept only as a slow salted hash.
    let store = gridwalk_app_api::open_device_store(&data, None).unwrap();
    let hash: String = store
        .connection()
        .query_row("SELECT pin_hash FROM staff_pins WHERE person = 'hall-1'", [], |r| r.get(0))
        .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("2580"), "{hash}");
    drop(store);

    // 陈 (hall-1) signs in. She may not set a colleague's PIN (she could then sign in as him),
    // changes her own only with her old one, and accepts the request; then signs out.
    assert_eq!(app.call("sign_in", json!({"person": "hall-1", "pin": "0000"})).unwrap_err().code, "wrong_pin");
    let signed = app.call("sign_in", json!({"person": "hall-1", "pin": "2580"})).unwrap();
    assert_eq!(signed["signed_in"]["id"], "hall-1");
    assert_eq!(app.call("set_pin", pin("hall-2", "2222", "2580")).unwrap_err().code, "staff_change_forbidden");
    assert_eq!(app.call("set_pin", pin("hall-1", "2468", "1111")).unwrap_err().code, "wrong_pin");
    app.call("set_pin", pin("hall-1", "2468", "2580")).unwrap();
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

    // Everything reaches the relay, accepted: both are on the staff list.
    app.call("sync_now", json!({})).unwrap();
    wait_for(&app, "the hall PC's work to go up", |s| s["pending_documents"] == 0 && s["syncing"] == false);

    // A second hall PC receives the staff list and the steps with their people; with the
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
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let mut relay = RelayServer::start(&dir.path().join("relay"), None);
    let data = dir.path().join("hall");
    std::fs::create_dir_all(&data).unwrap();
    let hall = hall_at(&data.join(gridwalk_app_api::STORE_FILE), &relay);
    staff_at_relay(&relay, &hall, &[("hall-1", "2580")]);
    drop(hall);
    // Out of the relay's reach: this PC counts on its own.
    relay.stop();
    let settings = SyncSettings { automatic: false, ..settings() };
    let app = App::open(&data, Arc::new(SystemClock), settings).unwrap();
    for _ in 0..5 {
        assert_eq!(app.call("sign_in", json!({"person": "hall-1", "pin": "1111"})).unwrap_err().code, "wrong_pin");
    }
    // Even the right PIN waits now: whoever is guessing cannot tell.
    let slowed = app.call("sign_in", json!({"person": "hall-1", "pin": "2580"})).unwrap_err();
    assert_eq!(slowed.code, "pin_attempts_slowed", "{slowed:?}");
    assert!(slowed.message.contains("30 seconds") || slowed.message.contains("29 seconds"), "{}", slowed.message);
    // Restarting the app gives no fresh tries: the count is kept in the store.
    drop(app);
    let app = App::open(&data, Arc::new(SystemClock), settings).unwrap();
    assert_eq!(
        app.call("sign_in", json!({"person": "hall-1", "pin": "2580"})).unwrap_err().code,
        "pin_attempts_slowed"
    );
}

/// The change that appends `action` to a request in `person`'s name, made with the document
/// API directly (no store, no permission check), pushed straight to the relay as a modified
/// hall app would.
fn push_step_bypassing_the_core(store: &Store, id: &str, person: &str, action: Action) -> gridwalk_core::Result<()> {
    let am = automerge::AutoCommit::load(&store.document_bytes(id).unwrap()).unwrap();
    let mut doc = RequestDocument::from_automerge(am.with_actor(automerge::ActorId::random()));
    let before = doc.automerge().get_heads();
    doc.apply(&ActionContext::new(person, store.identity().device.clone(), now()), action).unwrap();
    doc.automerge().commit();
    let bytes = doc.automerge().get_changes(&before).iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    push_bytes(store, id, bytes)
}

fn push_bytes(store: &Store, id: &str, bytes: Vec<u8>) -> gridwalk_core::Result<()> {
    let mut transport = HttpTransport::new(&store.relay_link().unwrap().unwrap()).unwrap();
    let docs = vec![DocChanges { doc_id: id.into(), bytes }];
    transport.send(&Outgoing::Push(PushRequest { version: PROTOCOL_VERSION, docs })).map(|_| ()).map_err(Into::into)
}

/// The staff roster as `store` holds it, changed by `edit` with the document API directly,
/// pushed straight to the relay by the hall PC, as a modified app would.
fn push_staff_roster_edit(
    store: &Store,
    edit: impl FnOnce(&mut gridwalk_core::roster::RosterBody),
) -> gridwalk_core::Result<()> {
    let id = gridwalk_core::roster::staff_roster_id();
    let mut am = automerge::AutoCommit::load(&store.document_bytes(&id).unwrap())
        .unwrap()
        .with_actor(automerge::ActorId::random());
    let before = am.get_heads();
    let mut body: gridwalk_core::roster::RosterBody = autosurgeon::hydrate_prop(&am, automerge::ROOT, "body").unwrap();
    edit(&mut body);
    autosurgeon::reconcile_prop(&mut am, automerge::ROOT, "body", &body).unwrap();
    am.commit();
    let bytes = am.get_changes(&before).iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    push_bytes(store, &id, bytes)
}

/// A change a modified app makes to the staff roster's body.
type RosterEdit<'a> = Box<dyn FnOnce(&mut gridwalk_core::roster::RosterBody) + 'a>;

fn refused_naming(result: gridwalk_core::Result<()>, name: &str) {
    assert!(
        matches!(&result, Err(gridwalk_core::CoreError::Relay { status: 403, code, message }) if code == "forbidden_action" && message.contains(name)),
        "{result:?}"
    );
}

/// The check lives in the relay, not only in the app: a hall device whose software skips the
/// sign-in and writes events in the name of someone not on the staff list is refused; and no
/// device can change the staff list itself, whoever it claims to act for.
#[test]
fn the_relay_refuses_a_hall_devices_events_in_the_name_of_someone_not_on_the_staff_roster() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let relay = RelayServer::start(&dir.path().join("relay"), None);
    let hall = hall_at(&dir.path().join("hall.db"), &relay);
    // Before the operator names an admin, no device may start the staff list (with itself on
    // it as admin), whatever its role.
    let admin_pc = {
        let code = relay.relay().create_enrollment("admin-pc", gridwalk_relay::store::Role::Admin, &[]).unwrap();
        let store = Store::create(
            dir.path().join("admin-pc.db"),
            Identity { device: "admin-pc".into(), walker: "admin".into() },
        )
        .unwrap();
        client::join(&store, &relay.url(), &code, "admin-pc").unwrap();
        store
    };
    for pc in [&hall, &admin_pc] {
        let id = gridwalk_core::roster::staff_roster_id();
        let mut am = automerge::AutoCommit::new();
        let header = gridwalk_core::docs::DocHeader {
            id: id.clone(),
            kind: gridwalk_core::docs::DocKind::Roster,
            grid: gridwalk_core::roster::STAFF_GRID.into(),
            created_at: now(),
            created_by: "hall-1".into(),
            device: pc.identity().device.clone(),
            schema: gridwalk_core::docs::DOC_SCHEMA,
        };
        autosurgeon::reconcile_prop(&mut am, automerge::ROOT, "header", &header).unwrap();
        let body = gridwalk_core::roster::RosterBody {
            areas: vec![],
            households: vec![],
            enterprises: vec![],
            departments: vec![],
            walkers: vec![],
            people: vec![],
            staff: vec![gridwalk_core::roster::StaffMember {
                id: "hall-1".into(),
                name: "陈国平".into(),
                role: gridwalk_core::model::Role::Admin,
                office: None,
                pin_hash: gridwalk_core::store::staff::hash_pin("1111").unwrap(),
                set_by: "hall-1".into(),
            }],
            quick_phrases: vec![],
            published_at: now(),
            published_by: "hall-1".into(),
        };
        autosurgeon::reconcile_prop(&mut am, automerge::ROOT, "body", &body).unwrap();
        am.commit();
        let refused = push_bytes(pc, &id, am.save());
        assert!(
            matches!(&refused, Err(gridwalk_core::CoreError::Relay { status: 403, code, message }) if code == "forbidden_action" && message.contains("operator")),
            "{refused:?}"
        );
    }
    staff_at_relay(&relay, &hall, &[("hall-1", "2580"), ("hall-2", "1357")]);
    client::sync_over_http(&admin_pc, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let digest_before = relay.digest();

    // The core refuses a step in the name of someone the list does not name, or of a
    // colleague without a PIN; a modified app that skips the core is refused by the relay.
    let id = hall.list_requests(&RequestFilter { limit: 1, ..new_filter() }).unwrap().remove(0).id;
    let accept = Action::Triaged { decision: TriageDecision::Accept };
    for person in ["mallory", "hall-3"] {
        let ctx = ActionContext::new(person, "hall-pc", now());
        let core = hall.act(&ctx, &id, accept.clone()).unwrap_err();
        assert!(matches!(core, gridwalk_core::CoreError::Forbidden(_)), "{core:?}");
        refused_naming(push_step_bypassing_the_core(&hall, &id, person, accept.clone()), person);
    }
    // Nor may a hall device take a hall's step in a walker's name: the list knows w001 as a
    // walker, and a walker does not triage.
    refused_naming(push_step_bypassing_the_core(&hall, &id, "w001", accept.clone()), "w001");
    assert_eq!(relay.digest(), digest_before, "nothing of the pushes was stored");
    // The same step in the name of a staff member on the list goes through.
    push_step_bypassing_the_core(&hall, &id, "hall-2", accept).unwrap();

    // No device writes the staff list, whoever it names as having set an entry: not a
    // colleague's PIN hash (its user could then sign in as her everywhere), not one claimed to
    // be set by the admin or by her herself, not a second entry for her, not her own role.
    let digest_before = relay.digest();
    let known_pin = gridwalk_core::store::staff::hash_pin("1111").unwrap();
    let edits: Vec<RosterEdit> = vec![
        Box::new(|b| {
            let m = b.staff.iter_mut().find(|m| m.id == "hall-2").unwrap();
            (m.pin_hash, m.set_by) = (known_pin.clone(), "hall-1".into());
        }),
        Box::new(|b| {
            let m = b.staff.iter_mut().find(|m| m.id == "hall-2").unwrap();
            (m.pin_hash, m.set_by) = (known_pin.clone(), "admin".into());
            b.published_by = "admin".into();
        }),
        Box::new(|b| {
            let m = b.staff.iter_mut().find(|m| m.id == "hall-2").unwrap();
            (m.pin_hash, m.set_by) = (known_pin.clone(), "hall-2".into());
        }),
        Box::new(|b| {
            let mut twin = b.staff.iter().find(|m| m.id == "hall-2").unwrap().clone();
            twin.pin_hash = known_pin.clone();
            b.staff.insert(0, twin);
        }),
        Box::new(|b| b.staff.iter_mut().find(|m| m.id == "hall-1").unwrap().role = gridwalk_core::model::Role::Admin),
        Box::new(|b| b.staff.retain(|m| m.id != "admin")),
    ];
    for (n, edit) in edits.into_iter().enumerate() {
        // Half from the hall PC, half from an admin's own PC: no device role changes the list.
        let refused = push_staff_roster_edit(if n % 2 == 0 { &hall } else { &admin_pc }, edit);
        assert!(
            matches!(&refused, Err(gridwalk_core::CoreError::Relay { status: 403, code, message }) if code == "forbidden_action" && message.contains("staff list")),
            "{refused:?}"
        );
    }
    assert_eq!(relay.digest(), digest_before, "nothing of the pushes was stored");
    // A hall PC may bring the names the hall knows up to date (a new walker, say).
    push_staff_roster_edit(&hall, |b| {
        b.people.push(gridwalk_core::model::Walker {
            id: "w999".into(),
            name: "新网格员".into(),
            phone: None,
            role: gridwalk_core::model::Role::Walker,
            work_group: None,
            grids: vec![],
        });
        b.published_by = "hall-1".into();
    })
    .unwrap();

    // At the relay, a person proves herself with her own PIN: 陈 may not reset 王's PIN, with a
    // wrong PIN she is nobody, and she changes her own.
    let link = hall.relay_link().unwrap().unwrap();
    let chen = ActionContext::new("hall-1", "hall-pc", now());
    let reset = hall.staff_pin_request(&chen, "hall-2", "2222", "2580").unwrap();
    let refused = client::change_staff(&link, &reset).unwrap_err();
    assert!(
        matches!(&refused, gridwalk_core::CoreError::Relay { status: 403, code, .. } if code == "staff_change_forbidden"),
        "{refused:?}"
    );
    let wrong = hall.staff_pin_request(&chen, "hall-1", "2468", "0000").unwrap();
    let refused = client::change_staff(&link, &wrong).unwrap_err();
    assert!(
        matches!(&refused, gridwalk_core::CoreError::Relay { status: 401, code, .. } if code == "wrong_pin"),
        "{refused:?}"
    );
    client::change_staff(&link, &hall.staff_pin_request(&chen, "hall-1", "2468", "2580").unwrap()).unwrap();
    assert!(client::sign_in_with_relay(&link, "hall-1", "2468").unwrap().is_some());
    assert!(client::sign_in_with_relay(&link, "hall-2", "1111").unwrap().is_none(), "王's PIN is hers still");
}

/// Regression (review): a hall PC enrolled after the hall's staff had PINs acted as itself until
/// its first pull brought the staff list, and the relay then refused what it did; the refused
/// step stayed in its outbox and failed every later sync. The enrolment reply now says staff
/// sign in here, and the app asks for a sign-in from the first moment.
#[test]
fn regression_a_hall_pc_enrolled_after_pins_exist_asks_for_a_sign_in_before_its_first_pull() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let relay = RelayServer::start(&dir.path().join("relay"), None);
    let hall = hall_at(&dir.path().join("hall.db"), &relay);
    staff_at_relay(&relay, &hall, &[]);

    let code = relay.relay().create_enrollment("hall-pc2", gridwalk_relay::store::Role::Hall, &[]).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let second =
        Store::create(fresh.path().join("h.db"), Identity { device: "hall-pc2".into(), walker: "hall-1".into() })
            .unwrap();
    client::join(&second, &relay.url(), &code, "hall-pc2").unwrap();
    assert!(second.sign_in_required().unwrap(), "the relay said so at enrolment");
    let refused = second.publish_rosters(&second.context(now()), &[]).unwrap_err();
    assert!(matches!(refused, gridwalk_core::CoreError::Forbidden(_)), "{refused:?}");
    assert_eq!(second.outbox_len().unwrap(), 0);
    // Its first pull brings the staff list; the admin signs in with the PIN it carries.
    client::sync_over_http(&second, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(second.verify_staff_pin("admin", "9630").unwrap().map(|s| s.role), Some("admin".into()));
}

fn new_filter() -> RequestFilter {
    RequestFilter { statuses: vec![gridwalk_core::lifecycle::Status::New], ..RequestFilter::default() }
}

/// Sign-in is checked by the relay while it is in reach, against its staff list: a PIN an admin
/// changed a moment ago counts at once here, before this PC has pulled it. Wrong PINs are
/// limited per person however many are sent at once. Out of reach, this PC checks the hash it
/// holds.
#[test]
fn the_relay_checks_a_sign_in_while_in_reach_and_the_pc_alone_when_not() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let mut relay = RelayServer::start(&dir.path().join("relay"), None);
    let hall = hall_at(&dir.path().join("hall.db"), &relay);
    staff_at_relay(&relay, &hall, &[("hall-1", "2580"), ("hall-2", "1357")]);

    let code = relay.relay().create_enrollment("hall-pc2", gridwalk_relay::store::Role::Hall, &[]).unwrap();
    let second = App::open(dir.path().join("second"), Arc::new(SystemClock), settings()).unwrap();
    second.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "二号前台电脑"})).unwrap();
    wait_for(&second, "the second PC's first sync", |s| s["last_sync_at"].is_number() && s["syncing"] == false);

    // The admin resets 陈's PIN from the first PC; the second has not pulled it.
    let admin = ActionContext::new("admin", "hall-pc", now());
    let link = hall.relay_link().unwrap().unwrap();
    client::change_staff(&link, &hall.staff_pin_request(&admin, "hall-1", "1111", "9630").unwrap()).unwrap();
    let held = gridwalk_app_api::open_device_store(&dir.path().join("second"), None).unwrap();
    assert!(held.verify_staff_pin("hall-1", "2580").unwrap().is_some(), "the second PC still holds the old hash");
    drop(held);
    // The old PIN no longer opens the second PC, the new one does: the relay said so.
    assert_eq!(second.call("sign_in", json!({"person": "hall-1", "pin": "2580"})).unwrap_err().code, "wrong_pin");
    let signed = second.call("sign_in", json!({"person": "hall-1", "pin": "1111"})).unwrap();
    assert_eq!(signed["signed_in"]["name"], "陈国平");
    second.call("sign_out", json!({})).unwrap();

    // Ten wrong PINs for 王 sent at once (as a modified app would, past any PC's own count):
    // at most five are checked, the rest wait; then even her right PIN waits at the relay.
    let tries: Vec<_> = (0..10)
        .map(|_| {
            let link = link.clone();
            std::thread::spawn(move || client::sign_in_with_relay(&link, "hall-2", "0000"))
        })
        .collect();
    let answers: Vec<_> = tries.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = answers.iter().filter(|a| matches!(a, Ok(None))).count();
    let waited =
        answers.iter().filter(|a| matches!(a, Err(gridwalk_core::CoreError::Relay { status: 429, .. }))).count();
    assert_eq!((checked, waited), (5, 5), "{answers:?}");
    let limited = client::sign_in_with_relay(&link, "hall-2", "1357").unwrap_err();
    assert!(matches!(&limited, gridwalk_core::CoreError::Relay { status: 429, .. }), "{limited:?}");
    assert!(client::sign_in_with_relay(&link, "hall-1", "1111").unwrap().is_some(), "others are not locked out");
    // The relay's word is final on a hall PC too: checking the hash held there instead would
    // let the guesser go on from another PC.
    let waited = second.call("sign_in", json!({"person": "hall-2", "pin": "1357"})).unwrap_err();
    assert_eq!(waited.code, "pin_attempts_slowed", "{waited:?}");

    // Out of reach, the PC checks the hash it holds.
    relay.stop();
    let by_pc = second.call("sign_in", json!({"person": "hall-2", "pin": "1357"})).unwrap();
    assert_eq!(by_pc["signed_in"]["name"], "王丽华");
}

/// Issue 16: the hall console enrols a new phone by QR. An admin signed in on a hall PC asks
/// the relay for a one-time code with her own PIN; the relay checks it (a hall clerk, a wrong
/// PIN, a walker's phone and a bad role are refused), and the code the QR holds enrols the phone
/// for its walker and grid.
#[test]
fn an_admin_at_a_hall_pc_issues_an_enrolment_code_that_enrols_a_phone_and_nobody_else_can() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let relay = RelayServer::start(&dir.path().join("relay"), None);
    let data = dir.path().join("hall");
    std::fs::create_dir_all(&data).unwrap();
    let hall = hall_at(&data.join(gridwalk_app_api::STORE_FILE), &relay);
    staff_at_relay(&relay, &hall, &[("hall-1", "2580")]);
    let grid = hall.grids().unwrap().into_iter().find(|g| !g.enterprise_grid).unwrap().id;
    let her = hall.walkers().unwrap().into_iter().find(|w| w.grids.contains(&grid)).unwrap();
    drop(hall);
    let app = App::open(&data, Arc::new(SystemClock), settings()).unwrap();
    wait_for_staff(&app, "hall-1");
    let ask = |pin: &str, role: &str| {
        app.call(
            "issue_enrollment",
            json!({"device_name": "王芳的新手机", "role": role, "walker": her.id, "grids": [grid], "my_pin": pin}),
        )
    };

    // A hall clerk is no admin; the admin's own PIN is checked; a role the console does not give.
    app.call("sign_in", json!({"person": "hall-1", "pin": "2580"})).unwrap();
    assert_eq!(ask("2580", "walker").unwrap_err().code, "enrolment_forbidden");
    app.call("sign_out", json!({})).unwrap();
    app.call("sign_in", json!({"person": "admin", "pin": "9630"})).unwrap();
    assert_eq!(ask("1111", "walker").unwrap_err().code, "wrong_pin");
    assert_eq!(ask("9630", "admin").unwrap_err().code, "invalid_input");
    let no_walker = app
        .call("issue_enrollment", json!({"device_name": "手机", "role": "walker", "grids": [grid], "my_pin": "9630"}))
        .unwrap_err();
    assert_eq!(no_walker.code, "invalid_input");

    let issued = ask("9630", "walker").unwrap();
    let code = issued["code"].as_str().unwrap().to_string();
    assert_eq!(
        issued["link"],
        json!(format!("gridwalk:enrol?relay={}&code={code}", relay.url().trim_end_matches('/')))
    );
    assert!(issued["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis());

    // The code enrols the phone for her and her grid.
    let phone = App::open(dir.path().join("phone"), Arc::new(SystemClock), settings()).unwrap();
    let status =
        phone.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "王芳的新手机"})).unwrap();
    assert_eq!(status["walker"]["id"], json!(her.id), "{status}");

    // A walker's phone cannot issue codes: the relay refuses it whatever PIN it sends.
    let code = relay
        .relay()
        .create_enrollment_for(
            "另一部手机",
            gridwalk_relay::store::Role::Walker,
            std::slice::from_ref(&grid),
            Some(&her.id),
        )
        .unwrap();
    let token = relay
        .relay()
        .enroll(&gridwalk_core::sync::protocol::EnrollRequest {
            code,
            device_name: "另一部手机".into(),
            device_key: None,
        })
        .unwrap()
        .token;
    let walker_phone = relay.relay().authenticate(&token).unwrap();
    let refused = relay
        .relay()
        .issue_enrollment(
            &walker_phone,
            &gridwalk_core::sync::protocol::IssueEnrollmentRequest {
                actor: "admin".into(),
                actor_pin: "9630".into(),
                device_name: "x".into(),
                role: "walker".into(),
                walker: Some(her.id.clone()),
                grids: vec![grid.clone()],
            },
        )
        .unwrap_err();
    assert_eq!((refused.status, refused.code), (403, "enrolment_forbidden"), "{}", refused.message);
}

//! Residents' privacy on the device (issue 14), through the app's commands against a real
//! relay: the PIN lock (on open, after the idle time, wrong PINs slowed down), the PIN a walker
//! chooses after enrolment, and the wipe of a device the hall revoked.

use std::sync::Arc;
use std::time::Duration;

use gridwalk_app_api::{App, SyncSettings};
use gridwalk_core::SystemClock;
use serde_json::{json, Value};

mod common;

use common::*;

struct Town {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    relay: RelayServer,
    grid: String,
    walker: String,
    household: String,
    head_name: String,
}

fn town() -> Town {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    std::fs::create_dir_all(path.join("relay")).unwrap();
    let relay = RelayServer::start(&path.join("relay"), None);
    let hall = hall(&path, &relay);
    let grid = hall.grids().unwrap().into_iter().find(|g| !g.enterprise_grid).unwrap().id;
    let walker = hall.walkers().unwrap().into_iter().find(|w| w.grids.contains(&grid)).unwrap().id;
    let household = hall.households(&grid).unwrap().into_iter().next().unwrap();
    Town { _dir: dir, dir: path, relay, grid, walker, household: household.id, head_name: household.head_name }
}

impl Town {
    fn code(&self, name: &str) -> String {
        self.relay
            .relay()
            .create_enrollment_for(
                name,
                gridwalk_relay::store::Role::Walker,
                std::slice::from_ref(&self.grid),
                Some(&self.walker),
            )
            .unwrap()
    }

    fn phone(&self, name: &str, settings: SyncSettings, pin: Option<&str>) -> App {
        let app = App::open(self.dir.join(name), Arc::new(SystemClock), settings).unwrap();
        let mut args = json!({"relay_url": self.relay.url(), "code": self.code(name), "device_name": name});
        if let Some(pin) = pin {
            args["pin"] = json!(pin);
        }
        app.call("enroll", args).unwrap();
        if settings.automatic {
            wait_for(&app, "the first sync", |s| s["last_sync_at"].is_number());
        }
        app
    }

    /// A phone enrolled (PIN 2580) for the town's walker in her grid and another, synced once;
    /// and that other grid.
    fn phone_in_two_grids(&self, name: &str) -> (App, String) {
        let other_grid = {
            let store = gridwalk_core::Store::open(self.dir.join("hall.db")).unwrap();
            store.grids().unwrap().into_iter().find(|g| !g.enterprise_grid && g.id != self.grid).unwrap().id
        };
        let both = [self.grid.clone(), other_grid.clone()];
        let code = self
            .relay
            .relay()
            .create_enrollment_for(name, gridwalk_relay::store::Role::Walker, &both, Some(&self.walker))
            .unwrap();
        let phone = App::open(self.dir.join(name), Arc::new(SystemClock), settings()).unwrap();
        phone
            .call("enroll", json!({"relay_url": self.relay.url(), "code": code, "device_name": name, "pin": "2580"}))
            .unwrap();
        wait_for(&phone, "the first sync", |s| s["last_sync_at"].is_number());
        (phone, other_grid)
    }

    fn visit(&self, app: &App, notes: &str) -> String {
        let visit = app
            .call(
                "record_visit",
                json!({"grid": self.grid, "target": {"kind": "household", "id": self.household}, "kind": "daily", "notes": notes}),
            )
            .unwrap();
        visit["id"].as_str().unwrap().to_string()
    }
}

fn code_of(result: Result<Value, gridwalk_app_api::CommandError>) -> String {
    result.map(|v| format!("ok {v}")).unwrap_or_else(|e| e.code)
}

#[test]
fn a_walkers_phone_opens_with_her_pin_only_and_slows_down_wrong_ones() {
    let town = town();
    let settings = settings();
    let phone = town.phone("phone", settings, Some("2580"));
    let status = phone.call("status", json!({})).unwrap();
    assert_eq!((status["lock"]["lock"].as_str(), status["lock"]["pin_needed"].as_bool()), (Some("pin"), Some(false)));
    let visit = town.visit(&phone, "老人身体尚可");
    drop(phone);

    // Opened again (the app was closed): locked, but still an enrolled device.
    let phone = App::open(town.dir.join("phone"), Arc::new(SystemClock), settings).unwrap();
    let status = phone.call("status", json!({})).unwrap();
    assert_eq!((status["enrolled"].as_bool(), status["lock"]["locked"].as_bool()), (Some(true), Some(true)));
    assert_eq!(code_of(phone.call("visits", json!({"grid": town.grid}))), "app_locked");
    assert_eq!(code_of(phone.call("still_here", json!({}))), "app_locked");
    for left in (0..5).rev() {
        let e = phone.call("unlock", json!({"pin": "1111"})).unwrap_err();
        assert_eq!(e.code, "wrong_pin");
        assert!(e.message.contains(&format!("{left} more")), "{}", e.message);
    }
    // The sixth waits, even the right PIN, and the status says how long.
    assert_eq!(code_of(phone.call("unlock", json!({"pin": "2580"}))), "pin_attempts_slowed");
    let wait = phone.call("status", json!({})).unwrap()["lock"]["wait_seconds"].as_u64().unwrap();
    assert!((25..=30).contains(&wait), "{wait}");
    // A restart gives no fresh tries: the count is in the key file.
    drop(phone);
    let phone = App::open(town.dir.join("phone"), Arc::new(SystemClock), settings).unwrap();
    assert_eq!(code_of(phone.call("unlock", json!({"pin": "2580"}))), "pin_attempts_slowed");
    drop(phone);

    // After the wait, the right PIN opens everything as before.
    let key_file = town.dir.join("phone").join("gridwalk.db.key");
    let mut file: Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    file["last_wrong_at"] = json!(0);
    std::fs::write(&key_file, serde_json::to_vec(&file).unwrap()).unwrap();
    let phone = App::open(town.dir.join("phone"), Arc::new(SystemClock), settings).unwrap();
    let status = phone.call("unlock", json!({"pin": "2580"})).unwrap();
    assert_eq!(status["lock"]["locked"], false);
    let visits = phone.call("visits", json!({"grid": town.grid})).unwrap();
    assert!(visits.to_string().contains(&visit), "{visits}");
    // The lock button locks at once.
    assert_eq!(phone.call("lock", json!({})).unwrap()["lock"]["locked"], true);
    assert_eq!(code_of(phone.call("visits", json!({"grid": town.grid}))), "app_locked");
    phone.call("unlock", json!({"pin": "2580"})).unwrap();
    // Changing the PIN needs the current one.
    assert_eq!(code_of(phone.call("set_device_pin", json!({"pin": "1357", "current_pin": "0000"}))), "wrong_pin");
    phone.call("set_device_pin", json!({"pin": "1357", "current_pin": "2580"})).unwrap();
    drop(phone);
    let phone = App::open(town.dir.join("phone"), Arc::new(SystemClock), settings).unwrap();
    assert_eq!(code_of(phone.call("unlock", json!({"pin": "2580"}))), "wrong_pin");
    phone.call("unlock", json!({"pin": "1357"})).unwrap();
}

#[test]
fn an_app_left_alone_locks_itself_and_keeps_syncing_what_was_saved() {
    let town = town();
    let settings = SyncSettings { app_lock_idle: Duration::from_millis(1500), ..settings() };
    let phone = town.phone("phone", settings, Some("2580"));
    // Tapping keeps it open past the idle time.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(500));
        phone.call("still_here", json!({})).unwrap();
    }
    let baseline = town.relay.relay().stats().unwrap().changes;
    town.visit(&phone, "路灯坏了");
    std::thread::sleep(Duration::from_millis(1700));
    assert_eq!(phone.call("status", json!({})).unwrap()["lock"]["locked"], true);
    assert_eq!(code_of(phone.call("visits", json!({"grid": town.grid}))), "app_locked");
    // The visit saved before the lock still reaches the hall while it is locked.
    let start = std::time::Instant::now();
    while town.relay.relay().stats().unwrap().changes <= baseline {
        assert!(start.elapsed() < Duration::from_secs(30), "the visit never reached the relay");
        std::thread::sleep(Duration::from_millis(100));
    }
    phone.call("unlock", json!({"pin": "2580"})).unwrap();
    assert!(phone.call("visits", json!({"grid": town.grid})).is_ok());
}

#[test]
fn a_walker_enrolled_without_a_pin_is_asked_for_one_and_her_store_is_encrypted_meanwhile() {
    let town = town();
    let phone = town.phone("phone", settings(), None);
    let status = phone.call("status", json!({})).unwrap();
    assert_eq!(
        (status["lock"]["lock"].as_str(), status["lock"]["pin_needed"].as_bool()),
        (Some("keystore"), Some(true))
    );
    // The data directory alone opens nothing: its key is sealed by the keystore beside it.
    let head = town.head_name.as_bytes();
    for entry in std::fs::read_dir(town.dir.join("phone")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.windows(head.len()).any(|w| w == head), "{} names a resident", path.display());
        }
    }
    assert_eq!(code_of(phone.call("set_device_pin", json!({"pin": "12"}))), "invalid_input");
    let status = phone.call("set_device_pin", json!({"pin": "2580"})).unwrap();
    assert_eq!((status["lock"]["lock"].as_str(), status["lock"]["pin_needed"].as_bool()), (Some("pin"), Some(false)));
}

#[test]
fn a_revoked_phone_wipes_itself_on_its_next_sync_and_the_relay_shows_the_wipe() {
    let town = town();
    let lost = town.phone("lost", settings(), Some("2580"));
    let kept = town.phone("kept", settings(), Some("1357"));
    town.visit(&lost, "独居老人，需要关注");
    let kept_visit = town.visit(&kept, "一切正常");
    wait_for(&lost, "the visit sent", |s| s["pending_documents"] == 0 && s["last_sync_at"].is_number());
    let lost_id = town.relay.relay().devices().unwrap().into_iter().find(|d| d.name == "lost").unwrap().id;
    let before = std::fs::read_dir(town.dir.join("lost")).unwrap().count();
    assert!(before >= 2, "a store and its key");

    // The hall revokes the lost phone; it has one more record waiting when it next syncs.
    assert!(town.relay.relay().revoke(&lost_id).unwrap());
    let changes_before = town.relay.relay().stats().unwrap().changes;
    let _ = lost.call("record_visit", json!({"grid": town.grid, "target": {"kind": "household", "id": town.household}, "kind": "daily", "notes": "撤销后"}));
    lost.call("sync_now", json!({})).unwrap();
    let status = wait_for(&lost, "the wipe", |s| s["lock"]["wiped_at"].is_number());
    assert_eq!(status["enrolled"], false);
    assert_eq!(status["last_error"]["code"], "device_revoked");
    // Nothing of the store is left: no database, log, key, photos or partial downloads.
    let left: Vec<String> = std::fs::read_dir(town.dir.join("lost"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gridwalk.db"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(code_of(lost.call("visits", json!({"grid": town.grid}))), "not_enrolled");
    // It pushed nothing more, and the relay shows the wipe to the hall.
    assert_eq!(town.relay.relay().stats().unwrap().changes, changes_before);
    let device = town.relay.relay().devices().unwrap().into_iter().find(|d| d.id == lost_id).unwrap();
    assert!(device.revoked_at.is_some() && device.wiped_at.is_some(), "{device:?}");
    assert!(!town.dir.join("lost").join("wiped.json").exists(), "the relay heard of the wipe");

    // The phone that was not revoked is untouched.
    kept.call("sync_now", json!({})).unwrap();
    let status = kept.call("status", json!({})).unwrap();
    assert_eq!((status["enrolled"].as_bool(), status["lock"]["wiped_at"].is_null()), (Some(true), true));
    assert!(kept.call("visits", json!({"grid": town.grid})).unwrap().to_string().contains(&kept_visit));
    let kept_device = town.relay.relay().devices().unwrap().into_iter().find(|d| d.name == "kept").unwrap();
    assert!(kept_device.revoked_at.is_none() && kept_device.wiped_at.is_none());
}

#[test]
fn an_unknown_token_is_no_reason_to_wipe() {
    // A relay that does not know the device (another relay at the same address, a restored
    // backup) answers "unauthorized", never "revoked": the device keeps its records.
    let town = town();
    let phone = town.phone("phone", settings(), Some("2580"));
    let visit = town.visit(&phone, "门口路灯坏了");
    let mut relay = town.relay;
    let addr = relay.addr;
    relay.stop();
    let other = tempfile::tempdir().unwrap();
    let _stranger = RelayServer::start(other.path(), Some(addr));
    phone.call("sync_now", json!({})).unwrap();
    let status = wait_for(&phone, "the refusal", |s| s["last_error"]["code"] == "unauthorized");
    assert_eq!(status["lock"]["wiped_at"], Value::Null);
    assert!(phone.call("visits", json!({"grid": town.grid})).unwrap().to_string().contains(&visit));
}

#[test]
fn lists_mask_residents_phones_and_a_full_number_is_shown_on_a_tap_that_is_logged() {
    let town = town();
    let phone = town.phone("phone", settings(), Some("2580"));
    let places = phone.call("places", json!({"grid": town.grid})).unwrap();
    let with_phone: Vec<&Value> = places.as_array().unwrap().iter().filter(|p| p["phone"].is_string()).collect();
    assert!(!with_phone.is_empty(), "the demo town's households have phones");
    for p in &with_phone {
        let shown = p["phone"].as_str().unwrap();
        assert!(shown.contains("****"), "{shown} is not masked");
    }
    let place = with_phone[0];
    let kind = place["kind"].as_str().unwrap();
    let full = phone.call("reveal_phone", json!({"of": kind, "id": place["id"]})).unwrap();
    let full = full["phone"].as_str().unwrap().to_string();
    assert!(!full.contains('*') && full.len() >= 7, "{full}");
    assert_eq!(gridwalk_core::privacy::mask_phone(&full), place["phone"].as_str().unwrap());
    // Only an admin reads the log; the walker's own reveal is in it.
    assert_eq!(code_of(phone.call("access_log", json!({}))), "forbidden");
    let store_dir = town.dir.join("phone");
    drop(phone);
    let store = gridwalk_app_api::open_device_store(&store_dir, Some("2580")).unwrap();
    let log = store.access_log(10).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].kind.as_str(), log[0].subject.clone()),
        ("reveal_phone", format!("{kind}:{}", place["id"].as_str().unwrap()))
    );
}

#[test]
fn regression_a_hall_pc_takes_no_device_pin_and_an_enrolment_never_replaces_a_store_it_cannot_open() {
    let town = town();
    // A hall PC opens with its keystore; nobody at its screen may lock the staff out with a PIN.
    let hall = App::open(town.dir.join("hall-pc"), Arc::new(SystemClock), settings()).unwrap();
    let code = town.relay.relay().create_enrollment("hall-pc-2", gridwalk_relay::store::Role::Hall, &[]).unwrap();
    let status =
        hall.call("enroll", json!({"relay_url": town.relay.url(), "code": code, "device_name": "hall-pc-2"})).unwrap();
    assert_eq!(
        (status["lock"]["lock"].as_str(), status["lock"]["pin_needed"].as_bool()),
        (Some("keystore"), Some(false))
    );
    assert_eq!(code_of(hall.call("set_device_pin", json!({"pin": "2580"}))), "forbidden");

    // A store file this app cannot open (here: one that appeared after it started) is kept, and
    // the enrolment code is not used up by trying.
    let dir = town.dir.join("phone");
    let app = App::open(&dir, Arc::new(SystemClock), settings()).unwrap();
    let held = b"records this app cannot read".to_vec();
    std::fs::write(dir.join(gridwalk_app_api::STORE_FILE), &held).unwrap();
    let code = town.code("phone");
    let args = json!({"relay_url": town.relay.url(), "code": code, "device_name": "phone", "pin": "2580"});
    assert_eq!(code_of(app.call("enroll", args.clone())), "store_locked");
    assert_eq!(std::fs::read(dir.join(gridwalk_app_api::STORE_FILE)).unwrap(), held);
    let elsewhere = App::open(town.dir.join("other"), Arc::new(SystemClock), settings()).unwrap();
    assert_eq!(elsewhere.call("enroll", args).unwrap()["enrolled"], true, "the code was not used up");
}

#[test]
fn a_walker_moved_off_a_grid_forgets_its_records_at_her_next_sync() {
    let town = town();
    let hall = town.relay.relay();
    let (phone, other_grid) = town.phone_in_two_grids("moved");
    let visit = town.visit(&phone, "独居老人");
    wait_for(&phone, "the visit sent", |s| s["pending_documents"] == 0);
    let grids_of = |app: &App| -> Vec<String> {
        let mut g: Vec<String> = app
            .call("grids", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect();
        g.sort();
        g
    };
    assert_eq!(grids_of(&phone).len(), 2);

    // The hall moves her off the first grid.
    let id = hall.devices().unwrap().into_iter().find(|d| d.name == "moved").unwrap().id;
    assert!(hall.set_device_grids(&id, std::slice::from_ref(&other_grid)).unwrap());
    phone.call("sync_now", json!({})).unwrap();
    let start = std::time::Instant::now();
    while grids_of(&phone) != [other_grid.clone()] {
        assert!(start.elapsed() < Duration::from_secs(30), "the phone still serves {:?}", grids_of(&phone));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(phone.call("status", json!({})).unwrap()["grids"], json!([other_grid]));
    // Nothing more can be recorded in the grid she left (the relay would refuse it and stop
    // every later sync), and her syncs go on.
    let stale = phone.call(
        "record_visit",
        json!({"grid": town.grid, "target": {"kind": "household", "id": town.household}, "kind": "daily", "notes": "旧网格"}),
    );
    assert!(stale.is_err(), "a visit in the grid she left is refused: {stale:?}");
    let before = phone.call("status", json!({})).unwrap()["last_sync_at"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    phone.call("sync_now", json!({})).unwrap();
    let after = wait_for(&phone, "a later sync", |s| s["last_sync_at"].as_i64().is_some_and(|t| t > before));
    assert!(after["last_error"].is_null(), "{after}");
    drop(phone);
    let store = gridwalk_app_api::open_device_store(&town.dir.join("moved"), Some("2580")).unwrap();
    let left: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM documents WHERE grid = ?1", [&town.grid], |r| r.get(0))
        .unwrap();
    let households: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM households WHERE grid = ?1", [&town.grid], |r| r.get(0))
        .unwrap();
    assert_eq!((left, households), (0, 0), "nothing of the grid she left stays on her phone");
    assert!(store.document_ids().unwrap().iter().all(|d| d != &visit));
    let check = store.check().unwrap();
    assert!(check.index_matches_documents, "{check:?}");
    // The other grid's records are all there.
    let kept: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM documents WHERE grid = ?1", [&other_grid], |r| r.get(0))
        .unwrap();
    assert!(kept > 0);
    // And the relay gives her nothing of it any more.
    assert!(hall.set_device_grids(&id, &[]).is_err(), "a phone always serves some grid");
    // A grid id the hall has no roster for (a typo) is refused, naming it; nothing moves.
    let typo = hall.set_device_grids(&id, &[format!("{other_grid}x")]).unwrap_err();
    assert_eq!(typo.code, "unknown_grid");
    assert!(typo.message.contains(&format!("{other_grid}x")), "{}", typo.message);
    let device = hall.devices().unwrap().into_iter().find(|d| d.id == id).unwrap();
    assert_eq!(device.grids, [other_grid]);
}

#[test]
fn a_forgotten_pin_sets_the_records_aside_still_encrypted_and_the_phone_enrols_again() {
    let town = town();
    let phone = town.phone("phone", settings(), Some("2580"));
    town.visit(&phone, "独居老人，需要关注");
    assert_eq!(code_of(phone.call("set_store_aside", json!({"confirm": true}))), "not_locked");
    phone.call("lock", json!({})).unwrap();
    assert_eq!(code_of(phone.call("set_store_aside", json!({"confirm": false}))), "invalid_input");
    let status = phone.call("set_store_aside", json!({"confirm": true})).unwrap();
    assert_eq!((status["enrolled"].as_bool(), status["lock"]["locked"].as_bool()), (Some(false), Some(false)));
    // The records are kept, whole and encrypted, in held/<moment>/; nothing of them is left in
    // the data folder itself.
    let data = town.dir.join("phone");
    assert!(!data.join(gridwalk_app_api::STORE_FILE).exists());
    let held: Vec<_> = std::fs::read_dir(data.join("held")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(held.len(), 1);
    assert!(held[0].join("gridwalk.db").exists() && held[0].join("gridwalk.db.key").exists());
    let head = town.head_name.as_bytes();
    let bytes = std::fs::read(held[0].join("gridwalk.db")).unwrap();
    assert!(!bytes.windows(head.len()).any(|w| w == head), "the set-aside store is still encrypted");
    // The phone enrols again and works.
    let code = town.code("phone-again");
    let again = phone
        .call(
            "enroll",
            json!({"relay_url": town.relay.url(), "code": code, "device_name": "phone-again", "pin": "1357"}),
        )
        .unwrap();
    assert_eq!(again["enrolled"], true);
    wait_for(&phone, "the first sync of the new enrolment", |s| s["last_sync_at"].is_number());
    assert!(phone.call("grids", json!({})).is_ok());
    // Revoked later, the phone wipes what it set aside too.
    let id = town.relay.relay().devices().unwrap().into_iter().find(|d| d.name == "phone-again").unwrap().id;
    town.relay.relay().revoke(&id).unwrap();
    phone.call("sync_now", json!({})).unwrap();
    wait_for(&phone, "the wipe", |s| s["lock"]["wiped_at"].is_number());
    assert!(!data.join("held").exists(), "the records set aside are wiped with the rest");
}

/// What the relay holds of one document, if anything.
fn relay_has(town: &Town, doc: &str) -> bool {
    gridwalk_relay::store::SqliteRelayStore::open(&town.dir.join("relay").join("relay.db"))
        .unwrap()
        .dump()
        .unwrap()
        .docs
        .iter()
        .any(|d| d.id == doc)
}

#[test]
fn a_forgotten_pins_unsent_work_reaches_the_relay_through_the_new_enrolment_once_the_hall_confirms() {
    let mut town = town();
    town.relay.relay().add_admin("admin", "系统管理员", "9630").unwrap();
    let phone = town.phone("phone", settings(), Some("2580"));
    let data = town.dir.join("phone");
    // Its first sync escrowed the store key with the relay.
    assert!(gridwalk_core::store::keys::escrowed(&data.join(gridwalk_app_api::STORE_FILE)).unwrap().is_some());
    // Work done out of reach of the relay, then the PIN forgotten.
    let addr = town.relay.addr;
    town.relay.stop();
    let visit = town.visit(&phone, "独居老人，需要关注");
    let raised = phone
        .call(
            "raise_request",
            json!({"grid": town.grid, "category": "streetlight", "description": "门口路灯不亮一周了", "urgency": "normal",
                   "reporter": {"kind": "anonymous"},
                   "photos": [{"file_name": "lamp.jpg", "data_base64": base64_of(&tiny_jpeg())}]}),
        )
        .unwrap();
    let request = raised["id"].as_str().unwrap().to_string();
    // A full number shown on the old store, out of reach: its access-log line must not be lost.
    let places = phone.call("places", json!({"grid": town.grid})).unwrap();
    let place = places.as_array().unwrap().iter().find(|p| p["phone"].is_string()).unwrap().clone();
    phone.call("reveal_phone", json!({"of": place["kind"], "id": place["id"]})).unwrap();
    wait_for(&phone, "the photo processed", |s| s["processing_photos"] == 0);
    phone.call("lock", json!({})).unwrap();
    phone.call("set_store_aside", json!({"confirm": true})).unwrap();
    town.relay = RelayServer::start(&town.dir.join("relay"), Some(addr));
    let old_device = town.relay.relay().devices().unwrap().into_iter().find(|d| d.name == "phone").unwrap().id;

    // Another walker's phone cannot claim the escrowed key: the relay refuses it.
    let held_dir = std::fs::read_dir(data.join("held")).unwrap().next().unwrap().unwrap().path();
    let escrowed = gridwalk_core::store::keys::escrowed(&held_dir.join("gridwalk.db")).unwrap().unwrap();
    let other_walker = {
        let store = gridwalk_core::store::Store::open(town.dir.join("hall.db")).unwrap();
        store.walkers().unwrap().into_iter().find(|w| w.id != town.walker && !w.grids.is_empty()).unwrap()
    };
    let stranger_code = town
        .relay
        .relay()
        .create_enrollment_for(
            "stranger",
            gridwalk_relay::store::Role::Walker,
            &other_walker.grids,
            Some(&other_walker.id),
        )
        .unwrap();
    let stranger = gridwalk_transport::client::enroll(&town.relay.url(), &stranger_code, "stranger").unwrap();
    let claim = gridwalk_core::sync::protocol::HandoverRequest {
        escrowed: escrowed.clone(),
        reply_recipient: gridwalk_core::store::keys::HandoverKey::generate().recipient(),
    };
    match gridwalk_transport::client::request_handover(&stranger, &claim) {
        Err(gridwalk_core::CoreError::Relay { status: 403, code, .. }) => assert_eq!(code, "handover_forbidden"),
        other => panic!("another walker's phone was not refused: {other:?}"),
    }

    // The walker enrols again; her phone asks for the hand-over, which waits for the hall.
    let code = town.code("phone-again");
    phone
        .call(
            "enroll",
            json!({"relay_url": town.relay.url(), "code": code, "device_name": "phone-again", "pin": "1357"}),
        )
        .unwrap();
    let status = wait_for(&phone, "the hand-over asked for", |s| s["held_stores"][0]["state"] == "pending");
    assert_eq!(status["held_stores"].as_array().unwrap().len(), 1);
    phone.call("sync_now", json!({})).unwrap();
    wait_for(&phone, "a sync while pending", |s| s["last_sync_at"].is_number() && !s["syncing"].as_bool().unwrap());
    assert!(!relay_has(&town, &visit) && !relay_has(&town, &request), "nothing goes up before the hall confirms");

    // At the hall: a wrong PIN, a walker's phone and a non-admin are refused; the admin confirms.
    let hall_link = gridwalk_core::store::Store::open(town.dir.join("hall.db")).unwrap().relay_link().unwrap().unwrap();
    let confirm = |pin: &str| gridwalk_core::sync::protocol::ConfirmHandoverRequest {
        actor: "admin".into(),
        actor_pin: pin.into(),
        from_device: old_device.clone(),
    };
    match gridwalk_transport::client::confirm_handover(&hall_link, &confirm("0000")) {
        Err(gridwalk_core::CoreError::Relay { code, .. }) => assert_eq!(code, "wrong_pin"),
        other => panic!("a wrong PIN confirmed a hand-over: {other:?}"),
    }
    match gridwalk_transport::client::confirm_handover(&stranger, &confirm("9630")) {
        Err(gridwalk_core::CoreError::Relay { code, .. }) => assert_eq!(code, "handover_forbidden"),
        other => panic!("a walker's phone confirmed a hand-over: {other:?}"),
    }
    let listed = gridwalk_transport::client::handovers(&hall_link).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].state.as_str(), listed[0].from_device_name.as_str()), ("pending", "phone"));
    assert!(listed[0].released_key.is_none(), "a hall PC never sees a key");
    let confirmed = gridwalk_transport::client::confirm_handover(&hall_link, &confirm("9630")).unwrap();
    assert_eq!(confirmed.state, "released");
    assert!(confirmed.released_key.is_none(), "the released key goes only to the new enrolment");

    // The phone takes the work over, pushes it, and the old store is gone.
    phone.call("sync_now", json!({})).unwrap();
    let status = wait_for(&phone, "the hand-over done", |s| s["held_stores"][0]["state"] == "done");
    assert_eq!(status["held_stores"][0]["taken_documents"], 2);
    assert_eq!(status["held_stores"][0]["taken_photos"], 1);
    wait_for(&phone, "the work pushed", |s| s["pending_documents"] == 0 && s["pending_photos"] == 0);
    assert!(relay_has(&town, &visit) && relay_has(&town, &request), "the unsent visit and request reached the relay");
    assert!(!held_dir.exists(), "the old store is destroyed once taken over");
    let old = town.relay.relay().devices().unwrap().into_iter().find(|d| d.id == old_device).unwrap();
    assert!(old.revoked_at.is_some() && old.wiped_at.is_some(), "the relay shows the old device revoked and wiped");
    let detail = phone.call("request", json!({"id": request})).unwrap();
    assert_eq!(detail["photos"].as_array().map(|p| p.len()), Some(1), "the request keeps its photo: {detail}");
    // The reveal made on the old store reaches the admin's log too.
    let subject = format!("{}:{}", place["kind"].as_str().unwrap(), place["id"].as_str().unwrap());
    let start = std::time::Instant::now();
    while !gridwalk_transport::client::fetch_access_log(&hall_link, 50)
        .unwrap()
        .iter()
        .any(|l| l.line.kind == "reveal_phone" && l.line.subject == subject)
    {
        assert!(start.elapsed() < Duration::from_secs(30), "the old store's reveal never reached the relay");
        phone.call("sync_now", json!({})).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn regression_a_visit_recorded_in_a_grid_the_hall_just_moved_her_off_still_reaches_the_relay() {
    let mut town = town();
    let hall = town.relay.relay();
    let (phone, other_grid) = town.phone_in_two_grids("moved");
    // Out of reach, she records a visit in her first grid; meanwhile the hall moves her off it.
    let addr = town.relay.addr;
    town.relay.stop();
    let visit = town.visit(&phone, "独居老人，移交前最后一次走访");
    let id = hall.devices().unwrap().into_iter().find(|d| d.name == "moved").unwrap().id;
    assert!(hall.set_device_grids(&id, std::slice::from_ref(&other_grid)).unwrap());
    let leaving = hall.devices().unwrap().into_iter().find(|d| d.id == id).unwrap().leaving_grids;
    assert_eq!(leaving.iter().map(|l| l.grid.as_str()).collect::<Vec<_>>(), [town.grid.as_str()]);
    town.relay = RelayServer::start(&town.dir.join("relay"), Some(addr));
    phone.call("sync_now", json!({})).unwrap();
    wait_for(&phone, "the move followed", |s| s["grids"] == json!([other_grid]) && s["pending_documents"] == 0);
    // The visit went up before the phone forgot the grid, and the relay heard it forgot.
    let relay_store = gridwalk_relay::store::SqliteRelayStore::open(&town.dir.join("relay").join("relay.db")).unwrap();
    let sent = relay_store.dump().unwrap().docs.into_iter().find(|d| d.id == visit);
    assert!(sent.is_some(), "the visit recorded before the move reached the relay");
    let device = town.relay.relay().devices().unwrap().into_iter().find(|d| d.id == id).unwrap();
    assert!(device.leaving_grids.is_empty(), "the grid left takes nothing more: {device:?}");
    // And a push to it from her phone is refused now.
    drop(phone);
    let token = gridwalk_app_api::open_device_store(&town.dir.join("moved"), Some("2580"))
        .unwrap()
        .relay_link()
        .unwrap()
        .unwrap()
        .token;
    let relay = town.relay.relay();
    let me = relay.authenticate(&token).unwrap();
    let again = gridwalk_core::sync::protocol::PushRequest {
        version: gridwalk_core::sync::protocol::PROTOCOL_VERSION,
        docs: vec![gridwalk_core::sync::protocol::DocChanges { doc_id: visit.clone(), bytes: sent.unwrap().snapshot }],
    };
    let refused = relay.push(&me, &again).unwrap_err();
    assert_eq!(refused.status, 403, "{refused:?}");
}

#[test]
fn regression_a_walkers_reveal_on_her_phone_reaches_the_admins_access_log_at_the_hall() {
    let town = town();
    town.relay.relay().add_admin("admin", "系统管理员", "9630").unwrap();
    let phone = town.phone("张桂英的手机", settings(), Some("2580"));
    let places = phone.call("places", json!({"grid": town.grid})).unwrap();
    let place = places.as_array().unwrap().iter().find(|p| p["phone"].is_string()).unwrap().clone();
    phone.call("reveal_phone", json!({"of": place["kind"], "id": place["id"]})).unwrap();
    phone.call("sync_now", json!({})).unwrap();
    let hall_link = gridwalk_core::store::Store::open(town.dir.join("hall.db")).unwrap().relay_link().unwrap().unwrap();
    let start = std::time::Instant::now();
    let line = loop {
        let log = gridwalk_transport::client::fetch_access_log(&hall_link, 50).unwrap();
        if let Some(l) = log.into_iter().find(|l| l.line.kind == "reveal_phone") {
            break l;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the reveal never reached the relay");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((line.device_name.as_str(), line.line.person.as_str()), ("张桂英的手机", town.walker.as_str()));
    assert_eq!(line.line.subject, format!("{}:{}", place["kind"].as_str().unwrap(), place["id"].as_str().unwrap()));

    // The admin signed in on a hall PC reads it there, with her PC's own export.
    let code =
        town.relay.relay().create_enrollment_for("前台电脑", gridwalk_relay::store::Role::Hall, &[], None).unwrap();
    let hall = App::open(town.dir.join("hall-app"), Arc::new(SystemClock), settings()).unwrap();
    hall.call("enroll", json!({"relay_url": town.relay.url(), "code": code, "device_name": "前台电脑"})).unwrap();
    wait_for(&hall, "the hall's first sync", |s| s["last_sync_at"].is_number());
    hall.call("sign_in", json!({"person": "admin", "pin": "9630"})).unwrap();
    let rows = hall.call("access_log", json!({})).unwrap();
    let rows = rows.as_array().unwrap();
    let reveal = rows.iter().find(|r| r["kind"] == "reveal_phone").expect("the walker's reveal is in the admin's log");
    assert_eq!(
        (reveal["device_name"].as_str(), reveal["person"].as_str()),
        (Some("张桂英的手机"), Some(town.walker.as_str()))
    );

    // Straight to the relay: a walker's phone speaks for its walker alone, a kind nobody knows is
    // refused, and a line sent twice is kept once.
    let stranger_code = town
        .relay
        .relay()
        .create_enrollment_for(
            "手机2",
            gridwalk_relay::store::Role::Walker,
            std::slice::from_ref(&town.grid),
            Some(&town.walker),
        )
        .unwrap();
    let link = gridwalk_transport::client::enroll(&town.relay.url(), &stranger_code, "手机2").unwrap();
    let line = |seq: i64, person: &str, kind: &str| gridwalk_core::sync::protocol::AccessLine {
        seq,
        at: 1,
        person: person.into(),
        kind: kind.into(),
        subject: "household:h1".into(),
        detail: String::new(),
    };
    match gridwalk_transport::client::push_access_log(&link, vec![line(1, "admin", "reveal_phone")]) {
        Err(gridwalk_core::CoreError::Relay { status: 403, code, .. }) => assert_eq!(code, "forbidden_action"),
        other => panic!("a phone wrote a line in someone else's name: {other:?}"),
    }
    match gridwalk_transport::client::push_access_log(&link, vec![line(1, &town.walker, "peeked")]) {
        Err(gridwalk_core::CoreError::Relay { status: 400, code, .. }) => assert_eq!(code, "bad_access_line"),
        other => panic!("an unknown kind was kept: {other:?}"),
    }
    let before = gridwalk_transport::client::fetch_access_log(&hall_link, 100).unwrap().len();
    for _ in 0..2 {
        gridwalk_transport::client::push_access_log(&link, vec![line(1, &town.walker, "reveal_phone")]).unwrap();
    }
    assert_eq!(gridwalk_transport::client::fetch_access_log(&hall_link, 100).unwrap().len(), before + 1);
    match gridwalk_transport::client::fetch_access_log(&link, 10) {
        Err(gridwalk_core::CoreError::Relay { status: 403, .. }) => {}
        other => panic!("a walker's phone read the access log: {other:?}"),
    }
}

#[test]
fn regression_a_revocation_the_relay_did_not_sign_wipes_nothing() {
    // Someone answering in the relay's place (a plain-HTTP hall network) says every device is
    // revoked, and even offers a "proof" signed by a key of its own: the phone keeps its
    // records and says what happened.
    use axum::routing::get;
    let town = town();
    let phone = town.phone("phone", settings(), Some("2580"));
    let visit = town.visit(&phone, "门口路灯坏了");
    wait_for(&phone, "the visit sent", |s| s["pending_documents"] == 0);
    let mut relay = town.relay;
    let addr = relay.addr;
    relay.stop();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let revoked = || async {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": "device_revoked", "message": "the hall revoked this device"})),
        )
    };
    let forged = |device: String| {
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let signature = key.sign(&gridwalk_core::sync::protocol::revocation_message(&device));
        json!({"device_id": device, "signature": hex::encode(signature.to_bytes())})
    };
    let device_id = gridwalk_relay::store::SqliteRelayStore::open(&town.dir.join("relay").join("relay.db"))
        .unwrap()
        .dump()
        .unwrap()
        .devices
        .into_iter()
        .find(|d| d.name == "phone")
        .unwrap()
        .id;
    let proof = forged(device_id);
    let impostor = axum::Router::new()
        .route("/health", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/v1/revocation", get(move || async move { axum::Json(proof) }))
        .fallback(revoked);
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr)).unwrap();
    runtime.spawn(async move { axum::serve(listener, impostor).await.unwrap() });
    phone.call("sync_now", json!({})).unwrap();
    let status = wait_for(&phone, "the unproven revocation", |s| s["last_error"]["code"] == "revocation_unverified");
    assert_eq!(status["lock"]["wiped_at"], Value::Null, "nothing was wiped");
    assert!(phone.call("visits", json!({"grid": town.grid})).unwrap().to_string().contains(&visit));
    assert!(town.dir.join("phone").join(gridwalk_app_api::STORE_FILE).exists());
    runtime.shutdown_background();
}

#[test]
fn devices_enrolled_before_relays_signed_learn_the_relays_key_at_their_next_sync() {
    // As an enrolment with an older relay left them: no relay key kept. A hall PC and a phone
    // each learn it at their next sync, and keep the first one.
    let town = town();
    let phone = town.phone("phone", settings(), Some("2580"));
    drop(phone);
    let forget_key = |store: &gridwalk_core::store::Store| {
        store.connection().execute("DELETE FROM meta WHERE key = 'relay_key'", []).unwrap();
        assert!(store.relay_link().unwrap().unwrap().relay_key.is_none());
    };
    let relay_key = town.relay.relay().relay_key().unwrap();
    let hall = gridwalk_core::store::Store::open(town.dir.join("hall.db")).unwrap();
    forget_key(&hall);
    gridwalk_transport::client::sync_over_http(&hall, &std::sync::atomic::AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(hall.relay_link().unwrap().unwrap().relay_key.as_deref(), Some(relay_key.as_str()), "the hall PC");
    let store = gridwalk_app_api::open_device_store(&town.dir.join("phone"), Some("2580")).unwrap();
    forget_key(&store);
    gridwalk_transport::client::sync_over_http(&store, &std::sync::atomic::AtomicBool::new(false), &mut |_| {})
        .unwrap();
    assert_eq!(store.relay_link().unwrap().unwrap().relay_key.as_deref(), Some(relay_key.as_str()), "the phone");
}

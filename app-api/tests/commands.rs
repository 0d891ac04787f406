//! The app's commands against a real relay over loopback HTTP: a hall store filled with a small
//! demo town publishes its rosters, a walker's app enrols with a code, receives only her grid,
//! records a visit and a request with a photo, keeps working while the relay is down, and
//! everything reaches the hall once the relay is back. No command is stubbed.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridwalk_app_api::{App, SyncSettings};
use gridwalk_core::store::RequestFilter;
use gridwalk_core::SystemClock;
use gridwalk_transport::client;
use serde_json::json;

mod common;

use common::*;

#[test]
fn a_walker_app_enrols_receives_her_grid_works_offline_and_reaches_the_hall() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let mut relay = RelayServer::start(&dir.path().join("relay"), None);
    let hall = hall(dir.path(), &relay);
    let grid = hall.grids().unwrap().into_iter().find(|g| !g.enterprise_grid).unwrap().id;
    let walker = hall.walkers().unwrap().into_iter().find(|w| w.grids.contains(&grid)).unwrap();
    let code = relay
        .relay()
        .create_enrollment_for(
            "王芳的手机",
            gridwalk_relay::store::Role::Walker,
            std::slice::from_ref(&grid),
            Some(&walker.id),
        )
        .unwrap();

    let app = App::open(dir.path().join("phone"), Arc::new(SystemClock), settings()).unwrap();
    let before = app.call("status", json!({})).unwrap();
    assert_eq!(before["enrolled"], false);
    assert_eq!(app.call("grids", json!({})).unwrap_err().code, "not_enrolled");
    let bad =
        app.call("enroll", json!({"relay_url": relay.url(), "code": "WRONG-CODE", "device_name": "x"})).unwrap_err();
    assert_eq!(bad.code, "bad_enrollment_code");
    let status =
        app.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "王芳的手机"})).unwrap();
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["walker"]["id"], walker.id.as_str());
    wait_for(&app, "the first sync", |s| s["last_sync_at"].is_number());

    // Her grid's roster arrived: her grid, its households, named walkers; no other grid.
    let grids = app.call("grids", json!({})).unwrap();
    assert_eq!(grids.as_array().unwrap().len(), 1, "{grids}");
    assert_eq!(grids[0]["id"], grid.as_str());
    assert_eq!(grids[0]["households"].as_u64().unwrap() as usize, hall.households(&grid).unwrap().len());
    let status = app.call("status", json!({})).unwrap();
    assert_eq!(status["walker"]["name"], walker.name.as_str());
    let requests = app.call("requests", json!({"limit": 500})).unwrap();
    let expected =
        hall.count_requests(&RequestFilter { grids: vec![grid.clone()], ..RequestFilter::default() }).unwrap();
    assert_eq!(requests["total"].as_i64().unwrap(), expected);
    assert!(requests["items"].as_array().unwrap().iter().all(|r| r["grid"] == grid.as_str()));

    // Search by pinyin initials of a household head's name.
    let household = hall.households(&grid).unwrap().into_iter().next().unwrap();
    let initials = gridwalk_core::search::pinyin_initials(&household.head_name);
    let found = app.call("places", json!({"grid": grid, "query": initials})).unwrap();
    assert!(found.as_array().unwrap().iter().any(|p| p["id"] == household.id.as_str()), "{initials} → {found}");

    // The relay goes away; the walker keeps working.
    let addr = relay.addr;
    relay.stop();
    wait_for(&app, "the offline mark", |s| s["online"] == false);
    let visit = app
        .call("record_visit", json!({"grid": grid, "target": {"kind": "household", "id": household.id}, "kind": "daily", "companions": ["村医李"], "notes": "门口路灯坏了"}))
        .unwrap();
    let visit_id = visit["id"].as_str().unwrap().to_string();
    let raised = app
        .call(
            "raise_request",
            json!({"grid": grid, "category": "streetlight", "description": "门口路灯不亮一周了", "urgency": "normal",
                   "address": household.address, "reporter": {"kind": "resident", "name": household.head_name}, "visit": visit_id,
                   "photos": [{"file_name": "lamp.jpg", "data_base64": base64_of(&tiny_jpeg())}]}),
        )
        .unwrap();
    let request_id = raised["id"].as_str().unwrap().to_string();
    // Saved at once with its photo waiting; the photo worker attaches it by itself.
    assert_eq!(raised["waiting_photos"][0]["file_name"], "lamp.jpg");
    assert_eq!(raised["waiting_photos"][0]["state"], "processing");
    wait_for(&app, "the photo to be processed", |s| s["processing_photos"] == 0);
    let detail = app.call("request", json!({"id": request_id})).unwrap();
    assert_eq!(detail["waiting_photos"], json!([]));
    let photo = detail["photos"][0].clone();
    assert_eq!(photo["here"], true, "{detail:#}");
    let waiting = app.call("status", json!({})).unwrap();
    assert!(waiting["pending_documents"].as_u64().unwrap() >= 2, "{waiting}");
    assert_eq!(waiting["pending_photos"], 1);
    let detail = app.call("request", json!({"id": request_id})).unwrap();
    assert_eq!(detail["history"][0]["type"], "collected");
    assert!(detail["history"][0]["relay_received_at"].is_null());

    // The relay comes back on the same address: the app syncs by itself.
    relay = RelayServer::start(&dir.path().join("relay"), Some(addr));
    let done = wait_for(&app, "everything to go up", |s| {
        s["online"] == true && s["pending_documents"] == 0 && s["pending_photos"] == 0 && s["syncing"] == false
    });
    assert_eq!(done["progress"]["fraction"], 1.0);
    let detail = app.call("request", json!({"id": request_id})).unwrap();
    assert!(detail["history"][0]["relay_received_at"].is_number(), "{detail:#}");

    // The hall receives the request, the visit and the photo.
    client::sync_over_http(&hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let at_hall = hall.request(&request_id).unwrap();
    assert_eq!(at_hall.body.description, "门口路灯不亮一周了");
    assert_eq!(hall.visit(&visit_id).unwrap().body.notes, "门口路灯坏了");
    let hash = photo["hash"].as_str().unwrap();
    assert!(hall.stored_photo(hash).unwrap().is_some());
    relay.stop();
}

#[test]
fn bad_commands_and_arguments_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let mut relay = RelayServer::start(&dir.path().join("relay"), None);
    let hall = hall(dir.path(), &relay);
    let grid = hall.grids().unwrap().into_iter().find(|g| !g.enterprise_grid).unwrap().id;
    let code = relay
        .relay()
        .create_enrollment("phone", gridwalk_relay::store::Role::Walker, std::slice::from_ref(&grid))
        .unwrap();
    let app = App::open(dir.path().join("phone"), Arc::new(SystemClock), settings()).unwrap();
    assert_eq!(
        app.call("enroll", json!({"relay_url": "ftp://x", "code": code, "device_name": "p"})).unwrap_err().code,
        "invalid_input"
    );
    app.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "p"})).unwrap();
    wait_for(&app, "the first sync", |s| s["last_sync_at"].is_number());
    let known = app.call("requests", json!({})).unwrap()["total"].clone();
    assert_eq!(
        app.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "p"})).unwrap_err().code,
        "already_enrolled"
    );
    assert_eq!(app.call("no_such_thing", json!({})).unwrap_err().code, "unknown_command");
    assert_eq!(app.call("request", json!({"idd": 1})).unwrap_err().code, "bad_arguments");
    assert_eq!(app.call("request", json!({"id": "missing"})).unwrap_err().code, "not_found");
    let err = app
        .call("raise_request", json!({"grid": grid, "category": "nonsense", "description": "x", "urgency": "normal", "reporter": {"kind": "anonymous"}}))
        .unwrap_err();
    assert_eq!(err.code, "invalid_input", "{err:?}");
    let err = app
        .call("raise_request", json!({"grid": grid, "category": "streetlight", "description": "x", "urgency": "now!", "reporter": {"kind": "anonymous"}}))
        .unwrap_err();
    assert_eq!(err.code, "invalid_input");
    assert_eq!(app.call("photo", json!({"hash": "../../etc/passwd"})).unwrap_err().code, "photo_bad_id");
    // A video picked as a photo is refused at the tap, naming the file, and nothing is saved.
    let err = app
        .call(
            "raise_request",
            json!({"grid": grid, "category": "streetlight", "description": "x", "urgency": "normal",
              "address": "村口", "reporter": {"kind": "anonymous"},
              "photos": [{"file_name": "VID_1.mp4", "data_base64": base64_of(b"\0\0\0\x18ftypmp42\0\0\0\0isom")}]}),
        )
        .unwrap_err();
    assert_eq!(err.code, "photo_unsupported_format", "{err:?}");
    assert!(err.message.starts_with("VID_1.mp4: "), "{err:?}");
    let after = app.call("requests", json!({})).unwrap();
    assert_eq!(after["total"], known, "nothing was written by the refused commands");
    assert_eq!(app.call("status", json!({})).unwrap()["pending_documents"], 0);

    // A photo damaged inside passes the tap's checks and fails in the background: the request
    // shows it failed, with the reason's code; a retry fails again; discarding it clears it.
    let mut damaged = tiny_png();
    let idat = damaged.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut damaged[idat + 6..idat + 12] {
        *b ^= 0x5A;
    }
    let raised = app
        .call(
            "raise_request",
            json!({"grid": grid, "category": "streetlight", "description": "桥头灯不亮", "urgency": "normal",
              "address": "桥头", "reporter": {"kind": "anonymous"},
              "photos": [{"file_name": "bad.png", "data_base64": base64_of(&damaged)}]}),
        )
        .unwrap();
    let id = raised["id"].as_str().unwrap().to_string();
    wait_for(&app, "the damaged photo to fail", |s| s["failed_photos"] == 1 && s["processing_photos"] == 0);
    let detail = app.call("request", json!({"id": id})).unwrap();
    let failed = &detail["waiting_photos"][0];
    assert_eq!(
        (failed["state"].as_str(), failed["error"]["code"].as_str()),
        (Some("failed"), Some("photo_damaged")),
        "{failed}"
    );
    let queued = failed["id"].clone();
    app.call("retry_photo", json!({"id": queued})).unwrap();
    wait_for(&app, "the retry to fail again", |s| s["failed_photos"] == 1 && s["processing_photos"] == 0);
    app.call("discard_photo", json!({"id": queued})).unwrap();
    assert_eq!(app.call("discard_photo", json!({"id": queued})).unwrap_err().code, "not_found");
    let status = app.call("status", json!({})).unwrap();
    assert_eq!((status["failed_photos"].as_u64(), status["processing_photos"].as_u64()), (Some(0), Some(0)));
    assert_eq!(app.call("request", json!({"id": id})).unwrap()["waiting_photos"], json!([]));

    // Drafts: saved, read back after the app restarts, deleted.
    app.call("draft_put", json!({"key": "request:new", "value": {"description": "半句话"}})).unwrap();
    drop(app);
    let app =
        App::open(dir.path().join("phone"), Arc::new(SystemClock), SyncSettings { automatic: false, ..settings() })
            .unwrap();
    let draft = app.call("draft_get", json!({"key": "request:new"})).unwrap();
    assert_eq!(draft["value"]["description"], "半句话");
    app.call("draft_delete", json!({"key": "request:new"})).unwrap();
    assert!(app.call("draft_get", json!({"key": "request:new"})).unwrap()["value"].is_null());
    relay.stop();
}

#[test]
fn on_the_doorstep_feedback_and_rating_work_offline_and_the_hall_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let mut relay = RelayServer::start(&dir.path().join("relay"), None);
    let hall = hall(dir.path(), &relay);
    let resolved = hall
        .list_requests(&RequestFilter {
            statuses: vec![gridwalk_core::lifecycle::Status::Resolved],
            limit: 1,
            ..RequestFilter::default()
        })
        .unwrap()
        .pop()
        .expect("the demo town has a resolved request");
    let code = relay
        .relay()
        .create_enrollment("phone", gridwalk_relay::store::Role::Walker, std::slice::from_ref(&resolved.grid))
        .unwrap();
    let app = App::open(dir.path().join("phone"), Arc::new(SystemClock), settings()).unwrap();
    app.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "p"})).unwrap();
    wait_for(&app, "the first sync", |s| s["last_sync_at"].is_number());
    let addr = relay.addr;
    relay.stop();
    let detail = app.call("request", json!({"id": resolved.id})).unwrap();
    assert!(detail["allowed"].as_array().unwrap().iter().any(|a| a == "feedback_given"), "{}", detail["allowed"]);
    app.call("act", json!({"id": resolved.id, "action": {"type": "feedback_given", "note": "已告知路灯修好"}}))
        .unwrap();
    let rated = app
        .call("act", json!({"id": resolved.id, "action": {"type": "rated", "rating": "satisfied", "comment": "很快"}}))
        .unwrap();
    assert_eq!(rated["status"], "rated");
    assert_eq!(rated["rating"], "satisfied");
    let refused = app
        .call("act", json!({"id": resolved.id, "action": {"type": "rated", "rating": "satisfied", "comment": ""}}))
        .unwrap_err();
    assert_eq!(refused.code, "invalid_transition");

    relay = RelayServer::start(&dir.path().join("relay"), Some(addr));
    wait_for(&app, "the rating to go up", |s| {
        s["pending_documents"] == 0 && s["online"] == true && s["syncing"] == false
    });
    client::sync_over_http(&hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(hall.request(&resolved.id).unwrap().state.status, gridwalk_core::lifecycle::Status::Rated);
    relay.stop();
}

/// A second hall PC (a PC like any other, whose tables come from the rosters it pulls) and
/// a walker's phone for `grid`, both enrolled at `relay` and through their first sync.
fn second_hall_and_phone(dir: &std::path::Path, relay: &RelayServer, grid: &str, walker: &str) -> (App, App) {
    let code = relay.relay().create_enrollment("大厅二号机", gridwalk_relay::store::Role::Hall, &[]).unwrap();
    let admin = App::open(dir.join("hall2"), Arc::new(SystemClock), settings()).unwrap();
    admin.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "大厅二号机"})).unwrap();
    wait_for(&admin, "the hall's first sync", |s| s["last_sync_at"].is_number());
    let code = relay
        .relay()
        .create_enrollment_for("王芳的手机", gridwalk_relay::store::Role::Walker, &[grid.to_string()], Some(walker))
        .unwrap();
    let phone = App::open(dir.join("phone"), Arc::new(SystemClock), settings()).unwrap();
    phone.call("enroll", json!({"relay_url": relay.url(), "code": code, "device_name": "王芳的手机"})).unwrap();
    wait_for(&phone, "the phone's first sync", |s| s["last_sync_at"].is_number());
    (admin, phone)
}

#[test]
fn an_admins_new_office_and_a_walkers_new_grid_reach_phones_and_halls_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let relay = RelayServer::start(&dir.path().join("relay"), None);
    let first_hall = hall(dir.path(), &relay);
    let grids: Vec<String> =
        first_hall.grids().unwrap().into_iter().filter(|g| !g.enterprise_grid).map(|g| g.id).collect();
    let (grid, other_grid) = (grids[0].clone(), grids[1].clone());
    let walkers = first_hall.walkers().unwrap();
    let her = walkers.iter().find(|w| w.grids.contains(&grid)).unwrap().clone();
    let moved =
        walkers.iter().find(|w| w.grids == vec![other_grid.clone()]).expect("a walker of only the other grid").clone();

    let (admin, phone) = second_hall_and_phone(dir.path(), &relay, &grid, &her.id);

    // A phone is no admin: refused, and nothing is written.
    let refused = phone.call("admin_save_department", json!({"name": "不该有的科室", "level": "town"})).unwrap_err();
    assert_eq!(refused.code, "forbidden");
    let bad = admin.call("admin_save_department", json!({"name": "  ", "level": "town"})).unwrap_err();
    assert_eq!(bad.code, "invalid_input");
    let taken = first_hall.departments().unwrap()[0].name.clone();
    let bad = admin.call("admin_save_department", json!({"name": taken, "level": "town"})).unwrap_err();
    assert_eq!(bad.code, "invalid_input", "a second office of the same name");
    let bad = admin.call("admin_assign_walker", json!({"walker": moved.id, "grids": ["no-such-grid"]})).unwrap_err();
    assert_eq!(bad.code, "unknown_grid");
    assert_eq!(admin.call("status", json!({})).unwrap()["pending_documents"], 0);

    // The admin adds an office and moves a walker from the other grid into hers.
    let saved = admin.call("admin_save_department", json!({"name": "信访办", "level": "town"})).unwrap();
    let office = saved["id"].as_str().unwrap().to_string();
    assert!(saved["published"]["updated"].as_u64().unwrap() >= 2, "{saved}");
    let assigned = admin.call("admin_assign_walker", json!({"walker": moved.id, "grids": [grid]})).unwrap();
    assert_eq!(assigned["published"]["updated"], 2, "her grid and the grid he left: {assigned}");
    let lists = admin.call("admin_lists", json!({})).unwrap();
    let w = lists["walkers"].as_array().unwrap().iter().find(|w| w["id"] == moved.id.as_str()).unwrap().clone();
    assert_eq!(w["grids"], json!([grid]));

    // Her phone learns both with its next sync (it pulls every minute by itself; here it is
    // asked): the office and who walks her grid now.
    wait_for(&admin, "the admin's changes to go up", |s| s["pending_documents"] == 0 && s["syncing"] == false);
    let start = Instant::now();
    loop {
        phone.call("sync_now", json!({})).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let reference = phone.call("reference", json!({})).unwrap();
        let has_office = reference["departments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == office.as_str() && d["name"] == "信访办");
        let has_walker = reference["walkers"].as_array().unwrap().iter().any(|w| w["id"] == moved.id.as_str());
        if has_office && has_walker {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the phone never received the admin's changes: {reference}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The other grid's roster is not hers to receive.
    assert_eq!(phone.call("grids", json!({})).unwrap().as_array().unwrap().len(), 1);

    // The first hall PC pulls the same rosters: the office, and the walker in one grid only.
    wait_for(&admin, "the admin's changes to go up", |s| s["pending_documents"] == 0 && s["syncing"] == false);
    client::sync_over_http(&first_hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(first_hall.departments().unwrap().iter().any(|d| d.id == office && d.name == "信访办"));
    let there = first_hall.walkers().unwrap().into_iter().find(|w| w.id == moved.id).unwrap();
    assert_eq!(there.grids, vec![grid.clone()]);
}

/// Issue 16: quick phrases for visit notes are the hall's to edit. The admin's list reaches a
/// walker's phone with its grid's roster; clearing it brings back the built-in phrases there.
#[test]
fn the_halls_quick_phrases_reach_a_walkers_phone_and_clearing_them_brings_back_the_built_in_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("relay")).unwrap();
    let relay = RelayServer::start(&dir.path().join("relay"), None);
    let first_hall = hall(dir.path(), &relay);
    let grid = first_hall.grids().unwrap().into_iter().find(|g| !g.enterprise_grid).unwrap().id;
    let her = first_hall.walkers().unwrap().into_iter().find(|w| w.grids.contains(&grid)).unwrap();

    let (admin, phone) = second_hall_and_phone(dir.path(), &relay, &grid, &her.id);
    assert_eq!(phone.call("quick_phrases", json!({})).unwrap(), json!([]), "none set: the built-in ones");

    let refused = phone.call("admin_save_quick_phrases", json!({"phrases": ["手机上改的"]})).unwrap_err();
    assert_eq!(refused.code, "forbidden");
    let long = "很".repeat(41);
    let bad = admin.call("admin_save_quick_phrases", json!({"phrases": [long]})).unwrap_err();
    assert_eq!(bad.code, "invalid_input");
    let too_many: Vec<String> = (0..25).map(|i| format!("常用语{i}")).collect();
    let bad = admin.call("admin_save_quick_phrases", json!({"phrases": too_many})).unwrap_err();
    assert_eq!(bad.code, "invalid_input");

    let saved = admin
        .call("admin_save_quick_phrases", json!({"phrases": ["  已查看燃气灶 ", "", "已查看燃气灶", "子女每周来看望"]}))
        .unwrap();
    assert_eq!(saved["phrases"], json!(["已查看燃气灶", "子女每周来看望"]), "trimmed, blanks and repeats dropped");
    assert!(saved["published"]["updated"].as_u64().unwrap() >= 1, "{saved}");

    let phrases_on_phone = |want: serde_json::Value| {
        wait_for(&admin, "the admin's change to go up", |s| s["pending_documents"] == 0 && s["syncing"] == false);
        let start = Instant::now();
        loop {
            phone.call("sync_now", json!({})).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            let got = phone.call("quick_phrases", json!({})).unwrap();
            if got == want {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the phone has {got}, not {want}");
        }
    };
    phrases_on_phone(json!(["已查看燃气灶", "子女每周来看望"]));
    admin.call("admin_save_quick_phrases", json!({"phrases": []})).unwrap();
    phrases_on_phone(json!([]));
    // The first hall PC has the same (empty) list after its pull.
    client::sync_over_http(&first_hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(first_hall.quick_phrases().unwrap().is_empty());
}

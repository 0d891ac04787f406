//! The hall console's commands on a real store filled with a small generated town: the inbox,
//! duplicate suggestions, the dashboard and its drills, the monthly list and its XLSX export, the
//! admin lists. Expected values are computed here from the store's own lists, not by the code
//! under test.

use std::sync::Arc;

use chrono::TimeZone;
use gridwalk_app_api::{App, SyncSettings};
use gridwalk_core::demo::{generate, DemoConfig};
use gridwalk_core::lifecycle::Status;
use gridwalk_core::store::{Identity, RequestFilter, Store};
use gridwalk_core::ManualClock;
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;

/// A hall app over a store with a generated town; the clock stands at the end of the demo period.
fn hall_app(dir: &std::path::Path) -> (App, Arc<ManualClock>) {
    let until = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let data = dir.join("hall");
    std::fs::create_dir_all(&data).unwrap();
    {
        let mut store = Store::create(
            data.join(gridwalk_app_api::STORE_FILE),
            Identity { device: "hall-pc".into(), walker: "staff".into() },
        )
        .unwrap();
        let cfg = DemoConfig {
            villages: 2,
            households: 60,
            enterprises: 6,
            enterprise_grids: 1,
            requests: 80,
            visits: 40,
            days: 60,
            ..DemoConfig::street(7, until)
        };
        generate(&mut store, &cfg).unwrap();
    }
    let clock = Arc::new(ManualClock::new(until + chrono::Duration::hours(1)));
    let app = App::open(&data, clock.clone(), SyncSettings::default()).unwrap();
    (app, clock)
}

fn store_of(dir: &std::path::Path) -> Store {
    gridwalk_app_api::open_device_store(&dir.join("hall"), None).unwrap()
}

fn grid_of(app: &App) -> String {
    let lists = app.call("admin_lists", json!({})).unwrap();
    lists["grids"].as_array().unwrap().iter().find(|g| g["enterprise_grid"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn raise(app: &App, grid: &str, category: &str, address: &str, description: &str) -> String {
    let r = app
        .call(
            "raise_request",
            json!({"grid": grid, "category": category, "description": description, "urgency": "normal",
                   "address": address, "reporter": {"kind": "anonymous"}}),
        )
        .unwrap();
    r["id"].as_str().unwrap().to_string()
}

#[test]
fn the_inbox_lists_new_and_reopened_requests_newest_first_with_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (app, clock) = hall_app(dir.path());
    let store = store_of(dir.path());
    let expected = store
        .count_requests(&RequestFilter { statuses: vec![Status::New, Status::Reopened], ..RequestFilter::default() })
        .unwrap();
    let inbox = app.call("inbox", json!({"limit": 500})).unwrap();
    assert_eq!(inbox["total"].as_i64().unwrap(), expected);
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items.len() as i64, expected);
    assert!(items.iter().all(|r| r["status"] == "new" || r["status"] == "reopened"));
    let created: Vec<i64> = items.iter().map(|r| r["created_at"].as_i64().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // A request raised now comes first; its owner (首问责任制) is the one who received it.
    clock.advance(chrono::Duration::minutes(5));
    let grid = grid_of(&app);
    let id = raise(&app, &grid, "streetlight", "测试村1组", "路灯不亮");
    let inbox = app.call("inbox", json!({"limit": 5})).unwrap();
    assert_eq!(inbox["items"][0]["id"], id.as_str());
    assert_eq!(inbox["items"][0]["owner"], "staff");
    assert_eq!(inbox["total"].as_i64().unwrap(), expected + 1);
    // Accepted, it leaves the inbox.
    app.call("act", json!({"id": id, "action": {"type": "triaged", "decision": {"kind": "accept"}}})).unwrap();
    let inbox = app.call("inbox", json!({"limit": 500})).unwrap();
    assert!(inbox["items"].as_array().unwrap().iter().all(|r| r["id"] != id.as_str()));
    // One grid only.
    let only = app.call("inbox", json!({"grid": grid, "limit": 500})).unwrap();
    assert!(only["items"].as_array().unwrap().iter().all(|r| r["grid"] == grid.as_str()));
}

#[test]
fn duplicates_are_open_requests_of_the_same_grid_and_category_most_alike_first() {
    let dir = tempfile::tempdir().unwrap();
    let (app, clock) = hall_app(dir.path());
    let grid = grid_of(&app);
    let first = raise(&app, &grid, "streetlight", "马社村3组12号门口", "马社村3组门口路灯不亮一周了");
    clock.advance(chrono::Duration::minutes(1));
    let unlike = raise(&app, &grid, "streetlight", "新华路88号", "桥头灯杆倾斜");
    clock.advance(chrono::Duration::minutes(1));
    let other_category = raise(&app, &grid, "environment", "马社村3组12号门口", "马社村3组门口垃圾满溢");
    clock.advance(chrono::Duration::minutes(1));
    let second = raise(&app, &grid, "streetlight", "马社村3组12号", "3组门口路灯坏了不亮");
    let found = app.call("duplicates", json!({"id": second, "limit": 10})).unwrap();
    let ids: Vec<&str> = found.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], first, "{found:#}");
    assert!(!ids.contains(&second.as_str()), "not itself");
    assert!(!ids.contains(&other_category.as_str()), "same category only");
    if let Some(pos) = ids.iter().position(|i| *i == unlike) {
        assert!(pos > 0);
    }
    assert!(found.as_array().unwrap().iter().all(|c| c["grid"] == grid.as_str() && c["category"] == "streetlight"));
    let scores: Vec<f64> = found.as_array().unwrap().iter().map(|c| c["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    // Merged, the first is no longer offered (not open).
    app.call(
        "act",
        json!({"id": first, "action": {"type": "triaged", "decision": {"kind": "merge_into", "target": second}}}),
    )
    .unwrap();
    let found = app.call("duplicates", json!({"id": second, "limit": 10})).unwrap();
    assert!(found.as_array().unwrap().iter().all(|c| c["id"] != first.as_str()));
    assert_eq!(app.call("duplicates", json!({"id": "missing"})).unwrap_err().code, "not_found");
}

#[test]
fn the_dashboard_resolution_rate_moves_by_one_resolved_request_and_drills_to_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let (app, clock) = hall_app(dir.path());
    let before = app.call("dashboard", json!({"scope": {"kind": "all"}})).unwrap();
    let f = &before["figures"];
    let (handled, resolved) = (f["handled"].as_i64().unwrap(), f["resolved"].as_i64().unwrap());
    assert!(handled > 0);
    assert!((f["resolution_rate"].as_f64().unwrap() - resolved as f64 / handled as f64).abs() < 1e-9);

    // The headline figures drill down to lists of the same length.
    for measure in ["total", "handled", "resolved", "overdue", "rated"] {
        let list = app.call("drill", json!({"scope": {"kind": "all"}, "what": "requests", "measure": measure, "slice": {"by": "all"}, "limit": 500})).unwrap();
        assert_eq!(list["kind"], "request");
        assert_eq!(list["total"].as_i64().unwrap(), f[measure].as_i64().unwrap(), "{measure}");
        assert_eq!(list["items"].as_array().unwrap().len() as i64, f[measure].as_i64().unwrap().min(500));
    }
    let overdue = app.call("drill", json!({"what": "requests", "measure": "overdue", "slice": {"by": "all"}})).unwrap();
    assert!(overdue["items"].as_array().unwrap().iter().all(|r| r["overdue"] == true));
    // Breakdown rows drill to their slice.
    let cat = &before["by_category"][0];
    let list = app
        .call("drill", json!({"what": "requests", "measure": "total", "slice": {"by": "category", "key": cat["key"]}, "limit": 500}))
        .unwrap();
    assert_eq!(list["total"], cat["total"]);
    assert!(list["items"].as_array().unwrap().iter().all(|r| r["category"] == cat["key"]));
    // Coverage drills.
    let cov = &before["coverage"];
    let grids = app.call("drill", json!({"what": "grids_not_walked"})).unwrap();
    assert_eq!(grids["kind"], "grid");
    assert_eq!(grids["total"], cov["grids_not_walked"]);
    let households = app.call("drill", json!({"what": "households_not_visited", "limit": 3})).unwrap();
    assert_eq!(households["total"], cov["households_not_visited"]);
    assert!(households["items"].as_array().unwrap().len() <= 3);
    if let Some(h) = households["items"].as_array().unwrap().first() {
        assert_ne!(h["name"], h["id"], "named from the reference lists");
    }

    // A new request, accepted, assigned and resolved: handled and resolved both go up by one.
    clock.advance(chrono::Duration::minutes(10));
    let grid = grid_of(&app);
    let id = raise(&app, &grid, "road_traffic", "测试路", "路面塌陷");
    app.call("act", json!({"id": id, "action": {"type": "triaged", "decision": {"kind": "accept"}}})).unwrap();
    let now = clock_ms(&app);
    app.call("act", json!({"id": id, "action": {"type": "assigned", "department": first_department(&app), "deadline": now + 3 * DAY, "level": "town"}})).unwrap();
    clock.advance(chrono::Duration::hours(2));
    app.call("act", json!({"id": id, "action": {"type": "resolved", "note": "已修复"}})).unwrap();
    let after = app.call("dashboard", json!({})).unwrap();
    assert_eq!(after["figures"]["handled"].as_i64().unwrap(), handled + 1);
    assert_eq!(after["figures"]["resolved"].as_i64().unwrap(), resolved + 1);
    let expected = (resolved + 1) as f64 / (handled + 1) as f64;
    assert!((after["figures"]["resolution_rate"].as_f64().unwrap() - expected).abs() < 1e-9);

    // Scope and period are checked.
    assert_eq!(
        app.call("dashboard", json!({"scope": {"kind": "grid", "id": "nope"}})).unwrap_err().code,
        "unknown_grid"
    );
    assert_eq!(app.call("dashboard", json!({"from": now, "to": now - DAY})).unwrap_err().code, "invalid_input");
    assert_eq!(app.call("drill", json!({"what": "nothing"})).unwrap_err().code, "bad_arguments");
    let grid_dash = app.call("dashboard", json!({"scope": {"kind": "grid", "id": grid}})).unwrap();
    assert!(grid_dash["figures"]["total"].as_i64().unwrap() <= after["figures"]["total"].as_i64().unwrap());
}

fn clock_ms(app: &App) -> i64 {
    app.call("status", json!({})).unwrap()["now"].as_i64().unwrap()
}

fn first_department(app: &App) -> String {
    app.call("reference", json!({})).unwrap()["departments"][0]["id"].as_str().unwrap().to_string()
}

#[test]
fn the_monthly_list_and_its_xlsx_export_for_a_village() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _clock) = hall_app(dir.path());
    let lists = app.call("admin_lists", json!({})).unwrap();
    let village = lists["villages"][0]["id"].as_str().unwrap().to_string();
    let village_grids: Vec<String> = lists["villages"][0]["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    let list =
        app.call("monthly_list", json!({"month": "2026-10", "scope": {"kind": "village", "id": village}})).unwrap();
    assert_eq!(list["month"], "2026-10");
    let rows = list["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| village_grids.contains(&r["grid"].as_str().unwrap().to_string())));
    // Independently: the village's requests created in October (China time).
    let store = store_of(dir.path());
    let from = chrono::FixedOffset::east_opt(8 * 3600).unwrap().with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let to = chrono::FixedOffset::east_opt(8 * 3600).unwrap().with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let expected = store
        .count_requests(&RequestFilter {
            grids: village_grids.clone(),
            created_from: Some(from.with_timezone(&chrono::Utc).into()),
            created_before: Some(to.with_timezone(&chrono::Utc).into()),
            ..RequestFilter::default()
        })
        .unwrap();
    // And those of earlier months still open, carried over.
    let carried: usize = [Status::New, Status::Accepted, Status::Assigned, Status::Reopened]
        .into_iter()
        .map(|status| {
            store
                .list_requests(&RequestFilter {
                    grids: village_grids.clone(),
                    statuses: vec![status],
                    created_before: Some(from.with_timezone(&chrono::Utc).into()),
                    limit: 10_000,
                    ..RequestFilter::default()
                })
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(rows.len() as i64, expected + carried as i64);
    assert_eq!(rows.iter().filter(|r| r["carried_over"] == true).count(), carried);
    assert_eq!(list["total"]["total"].as_i64().unwrap(), expected);
    assert_eq!(list["total"]["carried_over"].as_i64().unwrap(), carried as i64);

    let file = app
        .call("export_monthly_xlsx", json!({"month": "2026-10", "scope": {"kind": "village", "id": village}}))
        .unwrap();
    let path = std::path::PathBuf::from(file["path"].as_str().unwrap());
    assert!(path.starts_with(dir.path().join("hall").join("exports")), "{path:?}");
    assert!(path.exists());
    let name = file["file_name"].as_str().unwrap();
    assert!(name.starts_with("驻网办事清单_") && name.ends_with("_2026-10.xlsx"), "{name}");
    assert_eq!(file["requests"].as_i64().unwrap(), expected + carried as i64, "every listed request is in the file");
    assert_eq!(file["sheets"][0], "汇总");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(file["data_base64"].as_str().unwrap()).unwrap();
    assert_eq!(bytes, std::fs::read(&path).unwrap());
    assert_eq!(&bytes[..2], b"PK", "an XLSX is a zip");

    assert_eq!(app.call("monthly_list", json!({"month": "October"})).unwrap_err().code, "invalid_input");
    let whole = app.call("monthly_list", json!({"month": "2026-10"})).unwrap();
    assert!(whole["rows"].as_array().unwrap().len() >= rows.len());
}

#[test]
fn admin_lists_show_offices_grids_and_walkers_grid_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _clock) = hall_app(dir.path());
    let store = store_of(dir.path());
    let lists = app.call("admin_lists", json!({})).unwrap();
    assert_eq!(lists["departments"].as_array().unwrap().len(), store.departments().unwrap().len());
    assert_eq!(lists["grids"].as_array().unwrap().len(), store.grids().unwrap().len());
    let walkers = store.walkers().unwrap();
    assert_eq!(lists["walkers"].as_array().unwrap().len(), walkers.len());
    let w: &Value = lists["walkers"].as_array().unwrap().iter().find(|x| x["id"] == walkers[0].id.as_str()).unwrap();
    assert_eq!(w["grids"], json!(walkers[0].grids));
    assert_eq!(lists["villages"].as_array().unwrap().len(), 2);
}

/// The hall sees how many records this PC holds but cannot read, and which (the admin screen's
/// list), while everything else lists as before.
#[test]
fn the_hall_sees_the_records_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _clock) = hall_app(dir.path());
    let lists = app.call("admin_lists", json!({})).unwrap();
    assert_eq!(lists["damaged"], json!([]));
    let grid = grid_of(&app);
    let id = raise(&app, &grid, "streetlight", "村口", "路灯不亮");
    // A change from elsewhere that deletes the request's body.
    let store = store_of(dir.path());
    let mut doc = automerge::AutoCommit::load(&store.document_bytes(&id).unwrap()).unwrap();
    let before = doc.get_heads();
    automerge::transaction::Transactable::delete(&mut doc, automerge::ROOT, "body").unwrap();
    doc.commit();
    let bytes: Vec<u8> = doc.get_changes(&before).iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
    store.apply_remote(&id, &bytes).unwrap();
    let lists = app.call("admin_lists", json!({})).unwrap();
    let damaged = lists["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0]["doc_id"], id.as_str());
    assert_eq!(damaged[0]["field"], "body");
    // The inbox lists the rest.
    let inbox = app.call("inbox", json!({})).unwrap();
    let items = inbox["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.iter().all(|r| r["id"] != id.as_str()));
}

//! The demo town generator: seeded, consistent, and carried through the real domain API.

use chrono::{TimeZone, Utc};
use gridwalk_core::demo::{generate, DemoConfig};
use gridwalk_core::lifecycle::Status;
use gridwalk_core::store::{Identity, RequestFilter, Store};

fn small(seed: u64) -> DemoConfig {
    DemoConfig {
        seed,
        villages: 3,
        households: 300,
        enterprises: 12,
        enterprise_grids: 2,
        requests: 200,
        visits: 400,
        until: Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap(),
        days: 365,
    }
}

fn town(seed: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        Store::create(dir.path().join("town.db"), Identity { device: "hall-pc".into(), walker: "hall-1".into() })
            .unwrap();
    generate(&mut store, &small(seed)).unwrap();
    (dir, store)
}

#[test]
fn demo_town_has_the_requested_shape_and_a_consistent_index() {
    let (_dir, store) = town(7);
    let grids = store.grids().unwrap();
    assert_eq!(grids.iter().filter(|g| g.enterprise_grid).count(), 2);
    assert_eq!(store.count_requests(&RequestFilter::default()).unwrap(), 200);
    let households: usize = grids.iter().map(|g| store.households(&g.id).unwrap().len()).sum();
    assert_eq!(households, 300);
    // Lifecycles went somewhere: some requests are finished, some still open.
    let resolved = store
        .count_requests(&RequestFilter {
            statuses: vec![Status::Resolved, Status::FeedbackGiven, Status::Rated, Status::Closed],
            ..Default::default()
        })
        .unwrap();
    assert!(resolved > 50, "only {resolved} resolved");
    let open = store
        .count_requests(&RequestFilter {
            statuses: vec![Status::Assigned, Status::New, Status::Accepted, Status::Reopened],
            ..Default::default()
        })
        .unwrap();
    assert!(open > 0);
    let report = store.check().unwrap();
    assert_eq!(report.integrity, "ok");
    assert!(report.index_matches_documents);
    // Demo data arrives as if synced: nothing waits to go up.
    assert_eq!(store.outbox_len().unwrap(), 0);
}

#[test]
fn the_same_seed_makes_the_same_town() {
    let (_a, a) = town(11);
    let (_b, b) = town(11);
    assert_eq!(a.index_dump().unwrap(), b.index_dump().unwrap());
    let (_c, c) = town(12);
    assert_ne!(a.index_dump().unwrap(), c.index_dump().unwrap());
}

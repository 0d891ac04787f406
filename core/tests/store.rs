//! The local store: document round trips, one action = one transaction, migrations, index
//! rebuilds, search, and merging changes from other replicas.

use automerge::AutoCommit;
use chrono::{Duration, TimeZone, Utc};
use gridwalk_core::docs::{
    GeoPoint, Place, Reporter, RequestBody, RequestDocument, Source, Urgency, VisitBody, VisitDocument, VisitKind,
    VisitTarget,
};
use gridwalk_core::lifecycle::{Action, Assignment, Status, TriageDecision};
use gridwalk_core::model::{Area, AreaKind, Department, Household, Level};
use gridwalk_core::store::{schema, Identity, NewRequest, NewVisit, RequestFilter, Store, VisitFilter};
use gridwalk_core::{ActionContext, CoreError, Timestamp};

fn t(day: i64) -> Timestamp {
    Timestamp(Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0).unwrap() + Duration::days(day))
}

fn store_in(dir: &tempfile::TempDir, name: &str, device: &str) -> Store {
    let store = Store::create(dir.path().join(name), Identity { device: device.into(), walker: "w1".into() }).unwrap();
    let area = |id: &str, kind, parent: Option<&str>| Area {
        id: id.into(),
        kind,
        name: format!("{id} 名"),
        parent: parent.map(Into::into),
        enterprise_grid: false,
    };
    store.put_area(&area("street", AreaKind::Town, None)).unwrap();
    store.put_area(&area("v1", AreaKind::Village, Some("street"))).unwrap();
    store.put_area(&area("g1", AreaKind::Grid, Some("v1"))).unwrap();
    store.put_area(&area("g2", AreaKind::Grid, Some("v1"))).unwrap();
    store.put_area(&area("g1-m1", AreaKind::MicroGrid, Some("g1"))).unwrap();
    for (id, grid) in [("h1", "g1"), ("h2", "g1"), ("h3", "g2")] {
        store
            .put_household(&Household {
                id: id.into(),
                grid: grid.into(),
                micro_grid: None,
                address: format!("马厩村{id}号"),
                head_name: "王建国".into(),
                phone: None,
                members: 3,
                tags: vec!["独居老人".into()],
            })
            .unwrap();
    }
    store.put_department(&Department { id: "dept-urban".into(), name: "城建办".into(), level: Level::Town }).unwrap();
    store
}

fn streetlight(grid: &str, visit: Option<String>) -> NewRequest {
    NewRequest {
        id: None,
        grid: grid.into(),
        micro_grid: None,
        reporter: Reporter::Resident {
            name: "王建国".into(),
            phone: Some("13800000000".into()),
            household: Some("h1".into()),
        },
        address: "马厩村第3组".into(),
        gps: Some(GeoPoint { lat: 30.7, lon: 121.0, accuracy_m: Some(10.0) }),
        category: "streetlight".into(),
        description: "村道路灯不亮已有一周，晚上出行不便".into(),
        urgency: Urgency::High,
        source: if visit.is_some() { Source::Visit } else { Source::WalkIn },
        visit,
    }
}

fn visit_to(household: &str) -> NewVisit {
    NewVisit {
        id: None,
        grid: "g1".into(),
        micro_grid: Some("g1-m1".into()),
        target: VisitTarget::Household { id: household.into() },
        kind: VisitKind::Daily,
        visited_at: None,
        other_walkers: vec!["w2".into()],
        companions: vec!["村书记".into()],
        notes: "身体健康".into(),
        gps: None,
    }
}

fn file_rows(store: &Store, table: &str) -> i64 {
    store.connection().query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

#[test]
fn documents_round_trip_through_autosurgeon_and_automerge_bytes() {
    let ctx = ActionContext::new("w1", "phone-1", t(0));
    let body = RequestBody {
        reporter: Reporter::Enterprise { id: "e1".into(), contact: Some("李经理".into()) },
        place: Place {
            address: "工业园区兴业路8号".into(),
            gps: Some(GeoPoint { lat: 30.1, lon: 121.2, accuracy_m: None }),
        },
        micro_grid: Some("g1-m1".into()),
        category: "enterprise_service".into(),
        description: "消防审批卡在验收环节".into(),
        urgency: Urgency::Urgent,
        source: Source::Phone,
        visit: None,
        number: Some("261205-3-1".into()),
    };
    let mut doc = RequestDocument::create(&ctx, "r1", "g1", &body).unwrap();
    let bytes = doc.automerge().save();
    let loaded = RequestDocument::load(&bytes, None).unwrap();
    assert_eq!(loaded.body().unwrap(), body);
    let header = loaded.header().unwrap();
    assert_eq!((header.id.as_str(), header.grid.as_str(), header.created_by.as_str()), ("r1", "g1", "w1"));
    assert_eq!(header.created_at, t(0));

    for target in [
        VisitTarget::Household { id: "h1".into() },
        VisitTarget::Enterprise { id: "e1".into() },
        VisitTarget::Place { address: "菜场".into() },
    ] {
        for kind in [VisitKind::Daily, VisitKind::Sweep, VisitKind::EveningTalk] {
            let body = VisitBody {
                target: target.clone(),
                micro_grid: None,
                kind,
                visited_at: t(1),
                walkers: vec!["w1".into(), "w2".into()],
                companions: vec![],
                notes: "昼访夜谈".into(),
                requests_raised: vec!["r1".into()],
                gps: None,
            };
            let mut v = VisitDocument::create(&ctx, "v1", "g1", &body).unwrap();
            let again = VisitDocument::load(&v.automerge().save(), None).unwrap();
            assert_eq!(again.body().unwrap(), body);
        }
    }
    // The bytes are standard Automerge: a plain document sees the header as a map.
    let plain = AutoCommit::load(&bytes).unwrap();
    use automerge::ReadDoc;
    assert!(plain.get(automerge::ROOT, "header").unwrap().is_some());
}

#[test]
fn one_action_is_one_transaction_and_a_refused_action_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "a.db", "phone-1");
    let visit = store.record_visit(&store.context(t(0)), visit_to("h1")).unwrap();
    let request = store.raise_request(&store.context(t(0)), streetlight("g1", Some(visit.clone()))).unwrap();
    // The visit now lists the request, in the same transaction.
    assert_eq!(store.visit(&visit).unwrap().body.requests_raised, vec![request.clone()]);
    assert_eq!(file_rows(&store, "outbox"), 3, "visit, request, and the visit's change");

    let before_docs = file_rows(&store, "documents");
    let before_outbox = file_rows(&store, "outbox");
    let before_index = store.index_dump().unwrap();
    // A request on a visit of another grid fails after the request document was built: nothing
    // of it may remain.
    let err = store.raise_request(&store.context(t(1)), streetlight("g2", Some(visit.clone()))).unwrap_err();
    assert!(matches!(err, CoreError::InvalidInput { .. }), "{err}");
    let err = store.raise_request(&store.context(t(1)), streetlight("nowhere", None)).unwrap_err();
    assert!(matches!(err, CoreError::UnknownGrid(_)));
    let err =
        store.act(&store.context(t(1)), &request, Action::Resolved { note: "".into(), photos: vec![] }).unwrap_err();
    assert!(matches!(err, CoreError::InvalidInput { .. }));
    let err = store.act(&store.context(t(1)), &request, Action::FeedbackGiven { note: "已告知".into() }).unwrap_err();
    assert!(matches!(err, CoreError::InvalidTransition { .. }));
    let err = store.act(&store.context(t(1)), &request, Action::Triaged { decision: TriageDecision::Accept }).and_then(
        |_| {
            store.act(
                &store.context(t(1)),
                &request,
                Action::Assigned {
                    assignment: Assignment {
                        department: "no-such-office".into(),
                        person: None,
                        deadline: t(9),
                        level: Level::Town,
                    },
                },
            )
        },
    );
    assert!(matches!(err, Err(CoreError::NotFound { kind: "department", .. })));
    assert_eq!(file_rows(&store, "documents"), before_docs);
    assert_eq!(file_rows(&store, "outbox"), before_outbox + 1, "only the accepted triage went out");
    assert_ne!(store.index_dump().unwrap(), before_index, "the accepted triage changed the index");
    assert_eq!(store.request(&request).unwrap().state.status, Status::Accepted);
}

#[test]
fn lists_filter_sort_and_search_chinese_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "a.db", "phone-1");
    let mut ids = Vec::new();
    for day in 0..5 {
        ids.push(store.raise_request(&store.context(t(day)), streetlight("g1", None)).unwrap());
    }
    let mut other = streetlight("g2", None);
    other.category = "environment".into();
    other.description = "河道漂浮垃圾较多，希望安排保洁".into();
    other.reporter = Reporter::Anonymous;
    let river = store.raise_request(&store.context(t(6)), other).unwrap();

    let page = store.list_requests(&RequestFilter { grids: vec!["g1".into()], ..Default::default() }).unwrap();
    assert_eq!(page.len(), 5);
    assert_eq!(page[0].id, ids[4], "newest first");
    let two = store
        .list_requests(&RequestFilter { grids: vec!["g1".into()], limit: 2, offset: 2, ..Default::default() })
        .unwrap();
    assert_eq!(two.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), vec![ids[2].clone(), ids[1].clone()]);

    // Two characters (below a trigram) and longer phrases both find Chinese text.
    let hits = |text: &str| {
        store
            .list_requests(&RequestFilter { text: Some(text.into()), limit: 100, ..Default::default() })
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(hits("河道").len(), 1);
    assert_eq!(hits("漂浮垃圾"), vec![river.clone()]);
    assert_eq!(hits("路灯").len(), 5);
    assert_eq!(hits("路灯不亮已有").len(), 5);
    assert!(hits("不存在的词").is_empty());
    assert!(hits("50%").is_empty(), "LIKE wildcards are escaped");

    // Overdue: assigned with a deadline that has passed at the moment asked.
    store.act(&store.context(t(1)), &ids[0], Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    store
        .act(
            &store.context(t(1)),
            &ids[0],
            Action::Assigned {
                assignment: Assignment {
                    department: "dept-urban".into(),
                    person: None,
                    deadline: t(3),
                    level: Level::Town,
                },
            },
        )
        .unwrap();
    let overdue = |at| store.list_requests(&RequestFilter { overdue_at: Some(at), ..Default::default() }).unwrap();
    assert!(overdue(t(2)).is_empty());
    assert_eq!(overdue(t(4)).len(), 1);
    assert_eq!(
        store.count_requests(&RequestFilter { department: Some("dept-urban".into()), ..Default::default() }).unwrap(),
        1
    );
    assert_eq!(store.count_requests(&RequestFilter { statuses: vec![Status::New], ..Default::default() }).unwrap(), 5);
}

#[test]
fn visits_are_listed_and_last_visit_dates_mark_the_unvisited() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "a.db", "phone-1");
    let mut v = visit_to("h1");
    v.visited_at = Some(t(0));
    store.record_visit(&store.context(t(0)), v.clone()).unwrap();
    v.visited_at = Some(t(20));
    store.record_visit(&store.context(t(20)), v).unwrap();
    let places = store.places_by_last_visit("g1", t(25), 14).unwrap();
    let h1 = places.iter().find(|p| p.id == "h1").unwrap();
    assert_eq!(h1.last_visited_at, Some(t(20).millis()));
    assert!(!h1.overdue_for_visit);
    let h2 = places.iter().find(|p| p.id == "h2").unwrap();
    assert!(h2.overdue_for_visit && h2.last_visited_at.is_none());
    assert_eq!(places[0].id, "h2", "never-visited first");
    assert_eq!(store.list_visits(&VisitFilter { walker: Some("w2".into()), ..Default::default() }).unwrap().len(), 2);
    assert_eq!(
        store
            .list_visits(&VisitFilter { target: Some("h1".into()), from: Some(t(10)), ..Default::default() })
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.grid_last_visits().unwrap(), vec![("g1".to_string(), t(20).millis())]);
    // Visiting a household of another grid is refused.
    let mut wrong = visit_to("h3");
    wrong.micro_grid = None;
    assert!(store.record_visit(&store.context(t(21)), wrong).is_err());
}

#[test]
fn rebuilding_the_index_from_documents_gives_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_in(&dir, "a.db", "phone-1");
    let cfg = gridwalk_core::demo::DemoConfig {
        seed: 3,
        villages: 2,
        households: 120,
        enterprises: 6,
        enterprise_grids: 1,
        requests: 80,
        visits: 150,
        until: t(0).0,
        days: 200,
    };
    gridwalk_core::demo::generate(&mut store, &cfg).unwrap();
    let before = store.index_dump().unwrap();
    assert!(before.len() > 300);
    // Damage the index in several ways, then rebuild.
    store
        .connection()
        .execute_batch(
            "DELETE FROM request_index WHERE rowid % 3 = 0; UPDATE visit_index SET notes = 'x';
             DELETE FROM last_visit; DELETE FROM request_fts WHERE rowid % 2 = 0;",
        )
        .unwrap();
    assert!(!store.check().unwrap().index_matches_documents);
    let documents = store.rebuild_index().unwrap();
    assert_eq!(documents as i64, file_rows(&store, "documents"));
    assert_eq!(store.index_dump().unwrap(), before);
    let report = store.check().unwrap();
    assert!(report.index_matches_documents && report.integrity == "ok");
}

/// Every row of every table (SQLite's own and the search index's shadow tables aside), as text,
/// table by table in a fixed order.
fn table_contents(conn: &rusqlite::Connection) -> Vec<(String, Vec<String>)> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'request_fts%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
            let n = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            (t, rows)
        })
        .collect()
}

#[test]
fn migrations_run_from_an_empty_file_and_from_every_earlier_version() {
    // From empty: a fresh store is at the latest version and passes SQLite's own validation.
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "new.db", "phone-1");
    let version: i64 = store.connection().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version as usize, gridwalk_core::store::LATEST_VERSION);
    assert!(schema::migrations().validate().is_ok());

    // From each earlier version: copy a real store's tables of that version into a file made at
    // that version, then open it. From version 1 the migrations must fill the last-visit and
    // search tables from what version 1 indexed.
    let mut source = store_in(&dir, "source.db", "phone-1");
    gridwalk_core::demo::generate(
        &mut source,
        &gridwalk_core::demo::DemoConfig {
            seed: 5,
            villages: 1,
            households: 60,
            enterprises: 3,
            enterprise_grids: 1,
            requests: 40,
            visits: 60,
            until: t(0).0,
            days: 100,
        },
    )
    .unwrap();
    // Relay receipts for a few documents (version 4 on); version 15 keys them by document.
    for (i, id) in source.document_ids().unwrap().iter().take(5).enumerate() {
        source.record_receipts(id, &[[i as u8; 32], [i as u8 + 100; 32]], 1_800_000_000_000 + i as i64).unwrap();
    }
    let receipts = |conn: &rusqlite::Connection| -> Vec<(String, Vec<u8>, i64)> {
        conn.prepare("SELECT doc_id, hash, received_at FROM relay_receipts ORDER BY doc_id, hash")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    // A draft and a request in the outbox (the outbox and drafts tables exist from version 1
    // and version 3), so the copies below carry them.
    source.put_draft("request-form", "{\"reporter\":\"王建国\"}", t(1)).unwrap();
    source.raise_request(&source.context(t(2)), streetlight("g1", None)).unwrap();
    let expected_outbox = source.outbox_len().unwrap();
    assert!(expected_outbox > 0);
    let expected_receipts = receipts(source.connection());
    assert_eq!(expected_receipts.len(), 10);
    let expected = source.index_dump().unwrap();
    drop(source);
    // Every earlier version, the one just before the latest included, upgrades to the same index.
    for version in 1..gridwalk_core::store::LATEST_VERSION {
        let old_path = dir.path().join(format!("v{version}.db"));
        {
            let mut conn = rusqlite::Connection::open(&old_path).unwrap();
            schema::migrations().to_version(&mut conn, version).unwrap();
            conn.execute("ATTACH DATABASE ?1 AS src", [dir.path().join("source.db").to_str().unwrap()]).unwrap();
            // Copy what existed at that version: plain tables row for row, the search table
            // through its columns (its shadow tables belong to SQLite).
            let tables: Vec<String> = conn
                .prepare("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'request_fts%' AND name != 'sqlite_sequence'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            // The running counts are left out: from version 11 on, triggers fill them as the
            // request rows are copied, and copying them as well would count every request twice.
            // Column by column, by name: a later version may hold a table's columns in another
            // order (version 15's `relay_receipts`).
            for table in tables.iter().filter(|t| !t.ends_with("_tally")) {
                let columns: Vec<String> = conn
                    .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let columns = columns.join(", ");
                conn.execute(&format!("INSERT INTO main.{table} ({columns}) SELECT {columns} FROM src.{table}"), [])
                    .unwrap();
            }
            if tables.iter().any(|t| t == "last_visit") {
                // Versions 2 to 5 keyed the search entries by request id; later ones by rowid.
                let fts_columns: Vec<String> = conn
                    .prepare("SELECT name FROM pragma_table_info('request_fts')")
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let copy = if fts_columns.iter().any(|c| c == "id") {
                    "INSERT INTO main.request_fts (id, body) SELECT r.id, f.body FROM src.request_fts f JOIN src.request_index r ON r.rowid = f.rowid"
                } else {
                    "INSERT INTO main.request_fts (rowid, body) SELECT rowid, body FROM src.request_fts"
                };
                conn.execute(copy, []).unwrap();
            }
            conn.execute("DETACH DATABASE src", []).unwrap();
            let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v as usize, version);
        }
        // The same plain store of this version, encrypted on its first keyed open (issue 14).
        let encrypted_path = dir.path().join(format!("v{version}-encrypted.db"));
        std::fs::copy(&old_path, &encrypted_path).unwrap();
        let upgraded = Store::open(&old_path).unwrap();
        let v: i64 = upgraded.connection().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v as usize, gridwalk_core::store::LATEST_VERSION, "from version {version}");
        let migrated = upgraded.index_dump().unwrap();
        // Version 2 fills last-visit dates and the search index from what version 1 indexed.
        let derived = |rows: &[String]| {
            rows.iter()
                .filter(|r| r.starts_with("Text(\"last_visit\")") || r.starts_with("Text(\"fts\")"))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert!(!derived(&migrated).is_empty());
        assert_eq!(derived(&migrated), derived(&expected), "from version {version}");
        assert_eq!(migrated, expected, "from version {version}");
        if version >= 4 {
            assert_eq!(receipts(upgraded.connection()), expected_receipts, "from version {version}");
        }
        assert!(upgraded.check().unwrap().index_matches_documents);
        assert_eq!(upgraded.outbox_len().unwrap(), expected_outbox, "from version {version}");

        let key = gridwalk_core::store::keys::StoreKey::generate();
        let encrypted = Store::open_encrypted(&encrypted_path, key.clone()).unwrap();
        assert!(encrypted.is_encrypted());
        // Every table, row for row, as the same store upgraded without encryption holds it:
        // documents, chunks, outbox, drafts, photo rows, receipts, reference lists, indexes.
        assert_eq!(
            table_contents(encrypted.connection()),
            table_contents(upgraded.connection()),
            "from version {version}"
        );
        assert_eq!(encrypted.index_dump().unwrap(), expected, "encrypted from version {version}");
        if version >= 4 {
            assert_eq!(receipts(encrypted.connection()), expected_receipts, "encrypted from version {version}");
        }
        let report = encrypted.check().unwrap();
        assert!(report.index_matches_documents && report.integrity == "ok", "encrypted from version {version}");
        drop(encrypted);
        assert!(matches!(Store::open(&encrypted_path), Err(CoreError::Locked { .. })), "from version {version}");
        assert!(Store::open_encrypted(&encrypted_path, key).is_ok());
    }
}

#[test]
fn changes_from_another_replica_merge_and_reindex_but_a_moved_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let phone = store_in(&dir, "phone.db", "phone-1");
    let hall = store_in(&dir, "hall.db", "hall-pc");
    let id = phone.raise_request(&phone.context(t(0)), streetlight("g1", None)).unwrap();
    for entry in phone.outbox(100).unwrap() {
        hall.apply_remote(&entry.doc_id, &entry.bytes).unwrap();
    }
    // Applying the same changes twice changes nothing.
    for entry in phone.outbox(100).unwrap() {
        assert!(!hall.apply_remote(&entry.doc_id, &entry.bytes).unwrap());
    }
    hall.act(&hall.context(t(1)), &id, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    let hall_changes = hall.outbox(100).unwrap();
    assert_eq!(hall_changes.len(), 1, "received changes do not go back out");
    phone.apply_remote(&id, &hall_changes[0].bytes).unwrap();
    assert_eq!(phone.request(&id).unwrap().state.status, Status::Accepted);
    assert_eq!(phone.document_heads(&id).unwrap(), hall.document_heads(&id).unwrap());

    // A forged change that moves the document to another grid is refused; nothing changes.
    let mut forged = AutoCommit::load(&hall.document_bytes(&id).unwrap()).unwrap();
    let before_heads = forged.get_heads();
    forged.set_actor(automerge::ActorId::from(b"intruder".as_slice()));
    let mut header: gridwalk_core::docs::DocHeader =
        autosurgeon::hydrate_prop(&forged, automerge::ROOT, "header").unwrap();
    header.grid = "g2".into();
    autosurgeon::reconcile_prop(&mut forged, automerge::ROOT, "header", &header).unwrap();
    let bytes = forged.save_after(&before_heads);
    let dump = phone.index_dump().unwrap();
    let err = phone.apply_remote(&id, &bytes).unwrap_err();
    assert!(matches!(err, CoreError::HeaderChanged { field: "grid", .. }), "{err}");
    assert_eq!(phone.index_dump().unwrap(), dump);
    // Bytes that are not Automerge are refused too.
    assert!(phone.apply_remote(&id, b"not automerge").is_err());
    assert!(phone.apply_remote("new-doc", b"\x85o\x4a\x83garbage").is_err());
    assert_eq!(phone.index_dump().unwrap(), dump);
}

#[test]
fn many_edits_compact_into_a_snapshot_without_losing_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "a.db", "phone-1");
    let id = store.raise_request(&store.context(t(0)), streetlight("g1", None)).unwrap();
    store.act(&store.context(t(0)), &id, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    for i in 0..70 {
        store.act(&store.context(t(0)), &id, Action::Progress { note: format!("第{i}次进展") }).unwrap();
    }
    let chunks: i64 =
        store.connection().query_row("SELECT chunk_count FROM documents WHERE id = ?1", [&id], |r| r.get(0)).unwrap();
    assert!(chunks < 32, "compacted along the way, {chunks} chunks left");
    assert_eq!(store.request(&id).unwrap().history.len(), 72);
    store.compact().unwrap();
    assert_eq!(file_rows(&store, "doc_chunks"), 0);
    assert_eq!(store.request(&id).unwrap().history.len(), 72);
    assert!(store.check().unwrap().index_matches_documents);
}

#[test]
fn opening_a_missing_or_foreign_file_is_a_clear_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    assert!(matches!(Store::open(&missing), Err(CoreError::NotInitialised { .. })));
    assert!(!missing.exists());
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "这不是数据库").unwrap();
    assert!(Store::open(&text).is_err());
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "这不是数据库");
    let existing = dir.path().join("a.db");
    drop(store_in(&dir, "a.db", "p"));
    assert!(matches!(
        Store::create(&existing, Identity { device: "d".into(), walker: "w".into() }),
        Err(CoreError::AlreadyExists { .. })
    ));
}

/// A page of documents new to the device, as a first pull brings them: read on a helper thread,
/// written on the store's. Pages with a document twice, or one whose bytes are damaged, must
/// come out exactly as if every document had been applied one by one.
fn a_page_of(store: &Store, n: usize) -> Vec<gridwalk_core::sync::protocol::PulledDoc> {
    for i in 0..n {
        let id = store
            .raise_request(&store.context(t(i as i64)), streetlight(if i % 2 == 0 { "g1" } else { "g2" }, None))
            .unwrap();
        if i % 3 == 0 {
            store
                .act(&store.context(t(i as i64 + 1)), &id, Action::Triaged { decision: TriageDecision::Accept })
                .unwrap();
        }
    }
    store
        .document_ids()
        .unwrap()
        .into_iter()
        .map(|id| gridwalk_core::sync::protocol::PulledDoc {
            bytes: store.document_bytes(&id).unwrap(),
            doc_id: id,
            snapshot: true,
            receipts: Vec::new(),
        })
        .collect()
}

#[test]
fn a_pulled_page_read_on_a_helper_thread_gives_the_same_store_as_one_document_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let hall = store_in(&dir, "hall.db", "hall-pc");
    let mut page = a_page_of(&hall, 40);
    // The same document twice in one page: the second time it is already here and merges.
    page.push(page[3].clone());

    let by_page = store_in(&dir, "by-page.db", "pc-a");
    assert_eq!(by_page.apply_pull_page(&page, "cursor-1").unwrap(), 40);
    let one_by_one = store_in(&dir, "one-by-one.db", "pc-b");
    for d in &page {
        one_by_one.apply_remote(&d.doc_id, &d.bytes).unwrap();
    }
    assert_eq!(by_page.index_dump().unwrap(), one_by_one.index_dump().unwrap());
    assert_eq!(by_page.index_dump().unwrap(), hall.index_dump().unwrap());
    for d in &page {
        assert_eq!(by_page.document_heads(&d.doc_id).unwrap(), hall.document_heads(&d.doc_id).unwrap());
    }
    assert_eq!(by_page.pull_cursor().unwrap(), "cursor-1");
    assert!(by_page.check().unwrap().index_matches_documents);
}

#[test]
fn a_pulled_page_with_damaged_bytes_is_refused_whole_and_one_naming_another_document_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let hall = store_in(&dir, "hall.db", "hall-pc");
    let good = a_page_of(&hall, 30);
    let device = store_in(&dir, "device.db", "pc-a");
    let dump = device.index_dump().unwrap();
    // Damage far into the page, so the helper has read many documents ahead of the writer.
    for damage in [b"\x85o\x4a\x83garbage".to_vec(), good[25].bytes[..good[25].bytes.len() / 2].to_vec()] {
        let mut page = good.clone();
        page[25].bytes = damage;
        assert!(device.apply_pull_page(&page, "cursor-1").is_err());
        assert_eq!(device.index_dump().unwrap(), dump);
        assert!(device.document_ids().unwrap().is_empty());
        assert_eq!(device.pull_cursor().unwrap(), "");
    }
    // Bytes that read as a whole document but name another one cannot be filed under either
    // id: they are set aside and named, and the rest of the page goes in (the relay checks
    // every push; such bytes come only from a damaged relay, and must not stop every pull).
    let mut page = good.clone();
    page[25].doc_id = "a-document-the-bytes-do-not-name".into();
    assert_eq!(device.apply_pull_page(&page, "cursor-1").unwrap(), 29);
    assert_eq!(device.document_ids().unwrap().len(), 29);
    let damaged = device.damaged_documents().unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!((damaged[0].doc_id.as_str(), damaged[0].field.as_str()), ("a-document-the-bytes-do-not-name", "header"));
    // And the good page brings the rest, with the index the hall has.
    assert_eq!(device.apply_pull_page(&good, "cursor-2").unwrap(), 1);
    assert_eq!(device.index_dump().unwrap(), hall.index_dump().unwrap());
}

/// Regression for the pulled page whose loaded documents are freed on the reader thread that
/// loaded them: a roster among many new documents is still applied from its document, so a
/// device that held no reference data gets the grids, and its index equals the hall's.
#[test]
fn a_roster_in_a_page_read_on_helper_threads_fills_the_reference_tables() {
    let dir = tempfile::tempdir().unwrap();
    let hall = store_in(&dir, "hall.db", "hall-pc");
    hall.publish_rosters(&hall.context(t(0)), &[]).unwrap();
    let page = a_page_of(&hall, 20);
    assert!(page.len() > 20, "the rosters are in the page");
    let device =
        Store::create(dir.path().join("fresh.db"), Identity { device: "pc-c".into(), walker: "w2".into() }).unwrap();
    assert!(device.areas().unwrap().is_empty());
    device.apply_pull_page(&page, "cursor-1").unwrap();
    let ids: Vec<String> = device.areas().unwrap().into_iter().map(|a| a.id).collect();
    for id in ["street", "v1", "g1", "g2"] {
        assert!(ids.iter().any(|a| a == id), "{id} in {ids:?}");
    }
    assert_eq!(device.index_dump().unwrap(), hall.index_dump().unwrap());
    assert!(device.check().unwrap().index_matches_documents);
}

/// The app opens the store a second time (its window beside its sync worker) while the worker's
/// first pull is under way: opening builds what the pull left for its end, and the pages after
/// that are counted and indexed row by row, so the pull still ends exactly where the hall is.
#[test]
fn a_store_opened_beside_a_first_pull_builds_what_waits_and_the_pull_still_ends_right() {
    let dir = tempfile::tempdir().unwrap();
    let hall = store_in(&dir, "hall.db", "hall-pc");
    let page = a_page_of(&hall, 150);
    let device = store_in(&dir, "device.db", "pc-a");
    let (first, second) = page.split_at(110);
    device.apply_pull_page(first, "cursor-1").unwrap();
    assert!(list_indexes(&device).len() < list_indexes(&hall).len());
    let window = Store::open(dir.path().join("device.db")).unwrap();
    assert_eq!(list_indexes(&window), list_indexes(&hall));
    device.apply_pull_page(second, "cursor-2").unwrap();
    assert_eq!(device.build_deferred_indexes().unwrap(), 0, "nothing waits any more");
    assert_eq!(window.index_dump().unwrap(), hall.index_dump().unwrap());
    let search = RequestFilter { text: Some("路灯".into()), limit: 1000, ..Default::default() };
    assert_eq!(window.list_requests(&search).unwrap().len(), 150);
}

/// The secondary indexes and the triggers of the tables a first pull touches, by name, as
/// SQLite holds them.
fn list_indexes(store: &Store) -> Vec<(String, String)> {
    store
        .connection()
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL
               AND tbl_name IN ('request_index', 'visit_index', 'visit_walkers', 'relay_receipts', 'areas') ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A device's first pull builds the list indexes, the running counts and the search entries
/// after its rows (schema 14 on): while they wait, lists give the hall's answers; built, the
/// device has exactly the indexes, triggers and index rows of a store that kept them all along.
/// A refused first page drops nothing, and a pull cut off midway (the process killed) has them
/// built when the store is next opened.
#[test]
fn a_first_pull_builds_the_list_indexes_after_its_rows_and_loses_none_when_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let hall = store_in(&dir, "hall.db", "hall-pc");
    let page = a_page_of(&hall, 150);
    let all_indexes = list_indexes(&hall);
    assert!(all_indexes.len() >= 10, "{all_indexes:?}");
    let filters = [
        RequestFilter { limit: 1000, ..Default::default() },
        RequestFilter { grids: vec!["g1".into()], limit: 1000, ..Default::default() },
        RequestFilter { statuses: vec![Status::Accepted], limit: 1000, ..Default::default() },
    ];
    let lists = |s: &Store| filters.iter().map(|f| s.list_requests(f).unwrap()).collect::<Vec<_>>();
    let search = RequestFilter { text: Some("路灯".into()), limit: 1000, ..Default::default() };
    assert_eq!(hall.list_requests(&search).unwrap().len(), 150);
    // The index rows a first pull writes as its documents arrive (the rest waits for its end).
    let row_by_row = |s: &Store| {
        let waiting = ["Text(\"tally\")", "Text(\"resolved_tally\")", "Text(\"deadline_tally\")", "Text(\"fts\")"];
        s.index_dump().unwrap().into_iter().filter(|l| !waiting.iter().any(|w| l.starts_with(w))).collect::<Vec<_>>()
    };

    let device = store_in(&dir, "device.db", "pc-a");
    // A damaged first page is refused whole: its index drops are rolled back with it.
    let mut damaged = page.clone();
    damaged[120].bytes = b"\x85o\x4a\x83garbage".to_vec();
    assert!(device.apply_pull_page(&damaged, "cursor-1").is_err());
    assert_eq!(list_indexes(&device), all_indexes);

    let (first, second) = page.split_at(110);
    device.apply_pull_page(first, "cursor-1").unwrap();
    let waiting = list_indexes(&device);
    assert!(waiting.len() < all_indexes.len(), "the first page deferred indexes: {waiting:?}");
    assert!(waiting.iter().all(|(n, _)| !n.contains("tally")), "the running counts' triggers wait too: {waiting:?}");
    // The reports name two indexes; they stay.
    for kept in ["request_open_by_deadline", "request_open_by_grid_deadline"] {
        assert!(waiting.iter().any(|(n, _)| n == kept), "{kept}");
    }
    // Regression (the first draft deferred `visit_walkers_by_visit`, and a 100k pull then
    // scanned the table for every visit): the statements that write a pulled document find
    // their rows through an index while the list indexes wait.
    for statement in [
        "DELETE FROM visit_walkers WHERE visit_id = 'v'",
        "SELECT 1 FROM documents WHERE id = 'd'",
        "SELECT rowid FROM request_index WHERE id = 'r'",
        "SELECT visited_at FROM last_visit WHERE scope = 'grid' AND id = 'g1'",
        "SELECT 1 FROM relay_receipts WHERE doc_id = 'd' AND hash = x'00'",
    ] {
        let plan: Vec<String> = device
            .connection()
            .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().all(|step| !step.starts_with("SCAN")), "{statement}: {plan:?}");
    }
    // A later page of the same pull does not defer anything more, and the answers are right.
    device.apply_pull_page(second, "cursor-2").unwrap();
    assert_eq!(lists(&device), lists(&hall));
    assert_eq!(row_by_row(&device), row_by_row(&hall));
    assert_ne!(device.index_dump().unwrap(), hall.index_dump().unwrap(), "counts and search entries wait");

    // Killed here: the next open builds them.
    drop(device);
    let device = Store::open(dir.path().join("device.db")).unwrap();
    assert_eq!(list_indexes(&device), all_indexes);
    assert_eq!(device.build_deferred_indexes().unwrap(), 0);
    assert_eq!(lists(&device), lists(&hall));
    assert_eq!(device.list_requests(&search).unwrap(), hall.list_requests(&search).unwrap());
    assert_eq!(device.index_dump().unwrap(), hall.index_dump().unwrap());
    assert!(device.check().unwrap().index_matches_documents);

    // The same pull run to its end by the caller builds them there.
    let other = store_in(&dir, "other.db", "pc-b");
    other.apply_pull_page(&page, "cursor-1").unwrap();
    assert!(other.build_deferred_indexes().unwrap() > 0);
    assert_eq!(list_indexes(&other), all_indexes);
    assert_eq!(lists(&other), lists(&hall));
    // The triggers are back: a request raised now is counted and found like any other.
    for s in [&hall, &device] {
        s.raise_request(&s.context(t(500)), streetlight("g1", None)).unwrap();
    }
    let counts = |s: &Store| -> i64 {
        s.connection()
            .query_row("SELECT SUM(total) FROM request_tally WHERE area = '*' AND dim = 'all'", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!((counts(&device), counts(&hall)), (151, 151));
    assert_eq!(device.list_requests(&search).unwrap().len(), 151);
}

/// A merged duplicate names the request it went into, and that request lists its duplicates:
/// their reporters are owed feedback too. The index keeps it through a rebuild.
#[test]
fn the_request_a_duplicate_was_merged_into_lists_its_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "hall.db", "hall-pc");
    let first = store.raise_request(&store.context(t(0)), streetlight("g1", None)).unwrap();
    let second = store.raise_request(&store.context(t(1)), streetlight("g1", None)).unwrap();
    let third = store.raise_request(&store.context(t(2)), streetlight("g1", None)).unwrap();
    assert!(store.duplicates_of(&first).unwrap().is_empty());
    for dup in [&third, &second] {
        let merge = Action::Triaged { decision: TriageDecision::MergeInto { target: first.clone() } };
        store.act(&store.context(t(3)), dup, merge).unwrap();
    }
    let ids =
        |list: Vec<gridwalk_core::store::query::RequestSummary>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.duplicates_of(&first).unwrap()), vec![second.clone(), third.clone()], "oldest first");
    assert!(store.duplicates_of(&second).unwrap().is_empty());
    store.rebuild_index().unwrap();
    assert_eq!(ids(store.duplicates_of(&first).unwrap()), vec![second, third]);
    assert!(store.check().unwrap().index_matches_documents);
}

/// Regression (issue 16): a merged duplicate's reporter never heard how her matter ended; the
/// merged-into request listed her, but feedback could be given only on that request. Now she is
/// owed it once that request is resolved: the duplicate is listed as owed feedback, takes one
/// feedback step (and stays merged, out of every rate), and is then no longer owed.
#[test]
fn regression_the_reporters_of_merged_duplicates_are_told_the_outcome_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, "hall.db", "hall-pc");
    let first = store.raise_request(&store.context(t(0)), streetlight("g1", None)).unwrap();
    let duplicate = store.raise_request(&store.context(t(1)), streetlight("g1", None)).unwrap();
    let merge = Action::Triaged { decision: TriageDecision::MergeInto { target: first.clone() } };
    store.act(&store.context(t(2)), &duplicate, merge).unwrap();
    let tell = || Action::FeedbackGiven { note: "已告知：路灯已修好".into() };
    let owed = |store: &Store| -> Vec<String> {
        let filter = RequestFilter { owed_feedback: true, limit: 100, ..RequestFilter::default() };
        let mut ids: Vec<String> = store.list_requests(&filter).unwrap().into_iter().map(|r| r.id).collect();
        ids.sort();
        ids
    };

    // Nothing to tell before the request it went into is resolved.
    let early = store.act(&store.context(t(3)), &duplicate, tell()).unwrap_err();
    assert!(matches!(early, CoreError::InvalidTransition { .. }), "{early:?}");
    assert!(owed(&store).is_empty());

    store.act(&store.context(t(3)), &first, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    store.act(&store.context(t(4)), &first, Action::Resolved { note: "换了灯泡".into(), photos: vec![] }).unwrap();
    let mut both = vec![first.clone(), duplicate.clone()];
    both.sort();
    assert_eq!(owed(&store), both, "both reporters are owed the outcome");

    store.act(&store.context(t(5)), &duplicate, tell()).unwrap();
    let view = store.request(&duplicate).unwrap();
    assert_eq!(view.state.status, Status::Merged, "a duplicate stays merged when its reporter is told");
    assert_eq!(view.state.told_at, Some(t(5)));
    assert_eq!(owed(&store), vec![first.clone()]);
    let again = store.act(&store.context(t(6)), &duplicate, tell()).unwrap_err();
    assert!(matches!(again, CoreError::InvalidTransition { .. }), "told once: {again:?}");

    // A rebuilt index says the same, and the duplicate counts in no rate.
    store.rebuild_index().unwrap();
    assert_eq!(owed(&store), vec![first]);
    assert!(store.check().unwrap().index_matches_documents);
    let d = gridwalk_core::report::dashboard(
        &store,
        &gridwalk_core::report::DashboardQuery::new(gridwalk_core::report::Scope::All, t(7)),
    )
    .unwrap();
    assert_eq!((d.figures.total, d.figures.handled, d.figures.resolved), (2, 1, 1));
}

fn at_shanghai(day: u32, hour: u32, minute: u32) -> Timestamp {
    // Shanghai is UTC+8 all year.
    Timestamp(Utc.with_ymd_and_hms(2026, 12, day, hour, minute, 0).unwrap() - Duration::hours(8))
}

fn numbers_of(store: &Store, text: &str) -> Vec<String> {
    let filter = RequestFilter { text: Some(text.into()), limit: 100, ..RequestFilter::default() };
    let mut numbers: Vec<String> =
        store.list_requests(&filter).unwrap().into_iter().map(|r| r.number.expect("a number")).collect();
    numbers.sort();
    numbers
}

/// Regression: nobody could read a request number over the phone (the app showed the start of
/// a uuid). Requests now get `day-device-count` numbers, the device being the relay's number
/// for it, counted per local day; a typed number, or its start, finds them.
#[test]
fn requests_get_short_numbers_by_local_day_and_device_that_a_search_finds() {
    let dir = tempfile::tempdir().unwrap();
    let numbered = |name: &str, device: &str, number: u32| {
        let store = store_in(&dir, name, device);
        store
            .set_relay_link(&gridwalk_core::store::RelayLink {
                url: "http://relay.example".into(),
                device_id: device.into(),
                token: "t".into(),
                role: "walker".into(),
                grids: vec!["g1".into()],
                walker: Some("w1".into()),
                device_number: Some(number),
                staff_sign_in: false,
                relay_key: None,
            })
            .unwrap();
        store
    };
    let phone = numbered("phone.gridwalk", "dev-aaaa0001", 7);
    let other = numbered("other.gridwalk", "dev-bbbb0002", 8);
    let raise = |store: &Store, at: Timestamp| {
        let id = store.raise_request(&store.context(at), streetlight("g1", None)).unwrap();
        store.request(&id).unwrap().body.number.expect("a number")
    };
    assert_eq!(raise(&phone, at_shanghai(5, 9, 0)), "261205-7-1");
    assert_eq!(raise(&phone, at_shanghai(5, 14, 0)), "261205-7-2");
    // Half past eleven at night is still the 5th in Shanghai (15:30 UTC).
    assert_eq!(raise(&phone, at_shanghai(5, 23, 30)), "261205-7-3");
    assert_eq!(raise(&phone, at_shanghai(6, 0, 10)), "261206-7-1");
    // Another device the same day counts on its own, with its own number: no clash.
    assert_eq!(raise(&other, at_shanghai(5, 9, 0)), "261205-8-1");
    // A request made here in another device's name (the demo, an import) uses that device's id.
    let ctx = ActionContext::new("w1", "phone-w012", at_shanghai(5, 10, 0));
    let id = phone.raise_request(&ctx, streetlight("g1", None)).unwrap();
    assert_eq!(phone.request(&id).unwrap().body.number.as_deref(), Some("261205-W012-1"));

    // The other device's request arrives here; all of them are found by number.
    let from_other = other.list_requests(&RequestFilter::default()).unwrap().remove(0).id;
    phone.apply_remote(&from_other, &other.document_bytes(&from_other).unwrap()).unwrap();
    assert_eq!(numbers_of(&phone, "261205-7"), ["261205-7-1", "261205-7-2", "261205-7-3"]);
    assert_eq!(numbers_of(&phone, "261206-7-1"), ["261206-7-1"]);
    assert_eq!(numbers_of(&phone, "261205-8-1"), ["261205-8-1"]);
    assert_eq!(numbers_of(&phone, "261205-w012"), ["261205-W012-1"]);
    assert_eq!(numbers_of(&phone, "261205").len(), 5);

    // The numbers are part of the documents: a rebuilt index has them all again.
    phone.rebuild_index().unwrap();
    assert!(phone.check().unwrap().index_matches_documents);
    assert_eq!(numbers_of(&phone, "261205").len(), 5);
}

/// Review finding (issue 16): a hall PC that pulled rosters carrying the hall's quick phrases
/// before it could keep them, and was upgraded later, must take them from those rosters, or
/// its next publication would send an empty list over them to every phone.
#[test]
fn regression_an_upgraded_hall_pc_keeps_the_quick_phrases_its_rosters_already_carry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hall.db");
    let store = store_in(&dir, "hall.db", "hall-pc");
    store.save_quick_phrases(&store.context(t(1)), &["已查看燃气灶".into(), "子女每周来看望".into()]).unwrap();
    // As the older version left it: the rosters carry the phrases, no table holds them, and
    // the schema is at version 23 (what versions 24 and 25 added taken out).
    store
        .connection()
        .execute_batch(
            "DROP INDEX access_log_unsent;
             ALTER TABLE access_log DROP COLUMN sent_at;
             DROP TABLE quick_phrases;
             DROP INDEX request_owed_feedback;
             ALTER TABLE request_index DROP COLUMN told_at;
             PRAGMA user_version = 23;",
        )
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.quick_phrases().unwrap(), vec!["已查看燃气灶".to_string(), "子女每周来看望".to_string()]);
    assert!(store.check().unwrap().index_matches_documents);
    // Publishing again changes no roster.
    let report = store.publish_rosters(&store.context(t(2)), &[]).unwrap();
    assert_eq!(report.updated, 0, "{report:?}");
}

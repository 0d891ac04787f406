//! No poisoned records: a device that writes a document other devices cannot read (with the
//! automerge crate directly, bypassing the core) is refused by the relay with 422
//! `document_unreadable`, nothing is stored, and every other device syncs on as before.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjType, ReadDoc, ScalarValue, ROOT};
use chrono::TimeZone;
use common::{device_store, fingerprint, t, InMemoryTransport};
use gridwalk_core::docs::{Reporter, Source, Urgency, VisitKind, VisitTarget};
use gridwalk_core::store::{NewRequest, NewVisit, Store};
use gridwalk_core::sync::protocol::{DocChanges, EnrollRequest, PushRequest, PROTOCOL_VERSION};
use gridwalk_core::ManualClock;
use gridwalk_relay::relay::{Relay, RelayError};
use gridwalk_relay::store::{Device, Role, SqliteRelayStore};
use gridwalk_transport::client::{self, Retry, SessionLimits};

fn relay_in(dir: &std::path::Path) -> Relay {
    let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
    Relay::new(Box::new(SqliteRelayStore::open(&dir.join("relay.db")).unwrap()), clock)
}

fn enrol(relay: &Relay, name: &str, role: Role, grids: &[&str]) -> String {
    let grids: Vec<String> = grids.iter().map(|g| g.to_string()).collect();
    let code = relay.create_enrollment(name, role, &grids).unwrap();
    relay.enroll(&EnrollRequest { code, device_name: name.into(), device_key: None }).unwrap().token
}

fn sync(store: &Store, relay: &Relay, token: &str) -> gridwalk_core::Result<client::Progress> {
    client::run(
        store,
        &mut InMemoryTransport::new(relay, token),
        SessionLimits::default(),
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        &mut |_| {},
    )
}

/// A foreign writer's change to a document: what `edit` does, as Automerge change bytes.
fn crafted(bytes: &[u8], edit: impl FnOnce(&mut AutoCommit)) -> Vec<u8> {
    let mut doc = AutoCommit::load(bytes).unwrap().with_actor(ActorId::random());
    let before = doc.get_heads();
    edit(&mut doc);
    doc.commit();
    let changes = doc.get_changes(&before);
    assert!(!changes.is_empty(), "the edit made a change");
    changes.iter().flat_map(|c| c.raw_bytes().to_vec()).collect()
}

fn map(doc: &AutoCommit, obj: &automerge::ObjId, key: &str) -> automerge::ObjId {
    match doc.get(obj, key).unwrap() {
        Some((automerge::Value::Object(_), id)) => id,
        other => panic!("{key} is not an object: {other:?}"),
    }
}

/// An anonymous streetlight request in g1, as a walker raises it on a visit.
fn streetlight(description: &str) -> NewRequest {
    NewRequest {
        id: None,
        grid: "g1".into(),
        micro_grid: None,
        reporter: Reporter::Anonymous,
        address: "g1 村道".into(),
        gps: None,
        category: "streetlight".into(),
        description: description.into(),
        urgency: Urgency::Normal,
        source: Source::Visit,
        visit: None,
    }
}

struct Town {
    _dir: tempfile::TempDir,
    relay: Relay,
    phone: Store,
    phone_device: Device,
    other: Store,
    other_token: String,
    hall: Store,
    hall_token: String,
    request: String,
    visit: String,
}

/// A walker who raised a request and recorded a visit in g1, synced; a second walker of g1 and
/// the hall, synced too.
fn town() -> Town {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let phone = device_store(dir.path(), "phone", "w1");
    let token = enrol(&relay, "phone", Role::Walker, &["g1"]);
    let ctx = phone.context(t(1));
    let request = phone.raise_request(&ctx, streetlight("路灯不亮")).unwrap();
    let visit = phone
        .record_visit(
            &ctx,
            NewVisit {
                id: None,
                grid: "g1".into(),
                micro_grid: None,
                target: VisitTarget::Household { id: "g1-h0".into() },
                kind: VisitKind::Daily,
                visited_at: None,
                other_walkers: vec![],
                companions: vec![],
                notes: "身体健康".into(),
                gps: None,
            },
        )
        .unwrap();
    sync(&phone, &relay, &token).unwrap();
    let phone_device = relay.authenticate(&token).unwrap();
    let other = device_store(dir.path(), "other", "w2");
    let other_token = enrol(&relay, "other", Role::Walker, &["g1"]);
    sync(&other, &relay, &other_token).unwrap();
    let hall = device_store(dir.path(), "hall", "hall-1");
    let hall_token = enrol(&relay, "hall", Role::Hall, &[]);
    sync(&hall, &relay, &hall_token).unwrap();
    Town { _dir: dir, relay, phone, phone_device, other, other_token, hall, hall_token, request, visit }
}

impl Town {
    fn push(&self, doc_id: &str, bytes: Vec<u8>) -> Result<u32, RelayError> {
        self.relay
            .push(
                &self.phone_device,
                &PushRequest { version: PROTOCOL_VERSION, docs: vec![DocChanges { doc_id: doc_id.into(), bytes }] },
            )
            .map(|r| r.stored)
    }
}

#[test]
fn documents_no_device_could_read_are_refused_with_422_and_nothing_is_stored() {
    let town = town();
    let request_bytes = town.phone.document_bytes(&town.request).unwrap();
    let visit_bytes = town.phone.document_bytes(&town.visit).unwrap();
    let before = town.relay.stats().unwrap();
    let (other_before, hall_before) = (fingerprint(&town.other), fingerprint(&town.hall));

    type Edit = Box<dyn FnOnce(&mut AutoCommit)>;
    let cases: Vec<(&str, &str, &[u8], Edit)> = vec![
        (
            "header: grid deleted",
            "header",
            &request_bytes,
            Box::new(|d| {
                let h = map(d, &ROOT, "header");
                d.delete(&h, "grid").unwrap();
            }),
        ),
        (
            "header: kind unknown",
            "header",
            &request_bytes,
            Box::new(|d| {
                let h = map(d, &ROOT, "header");
                d.put(&h, "kind", "petition").unwrap();
            }),
        ),
        ("body deleted", "body", &request_bytes, Box::new(|d| d.delete(ROOT, "body").unwrap())),
        (
            "body: a required field deleted",
            "body",
            &request_bytes,
            Box::new(|d| {
                let b = map(d, &ROOT, "body");
                d.delete(&b, "category").unwrap();
            }),
        ),
        (
            "body: description as Automerge Text",
            "body",
            &request_bytes,
            Box::new(|d| {
                let b = map(d, &ROOT, "body");
                let text = d.put_object(&b, "description", ObjType::Text).unwrap();
                d.splice_text(&text, 0, 0, "路灯不亮（另一个实现写的）").unwrap();
            }),
        ),
        (
            "body: wrong type",
            "body",
            &request_bytes,
            Box::new(|d| {
                let b = map(d, &ROOT, "body");
                d.put(&b, "urgency", 5_i64).unwrap();
            }),
        ),
        (
            "body: unknown enum variant",
            "body",
            &request_bytes,
            Box::new(|d| {
                let b = map(d, &ROOT, "body");
                d.put(&b, "urgency", "apocalyptic").unwrap();
            }),
        ),
        ("events deleted", "events", &request_bytes, Box::new(|d| d.delete(ROOT, "events").unwrap())),
        (
            "events replaced by a string",
            "events",
            &request_bytes,
            Box::new(|d| {
                d.put(ROOT, "events", "closed").unwrap();
            }),
        ),
        (
            "events: an event of an unknown kind",
            "events",
            &request_bytes,
            Box::new(|d| {
                let events = map(d, &ROOT, "events");
                let n = d.length(&events);
                let e = d.insert_object(&events, n, ObjType::Map).unwrap();
                d.put(&e, "id", "x").unwrap();
                d.put(&e, "action", "bribed").unwrap();
            }),
        ),
        (
            "events: emptied, so no collection",
            "events",
            &request_bytes,
            Box::new(|d| {
                let events = map(d, &ROOT, "events");
                while d.length(&events) > 0 {
                    d.delete(&events, 0).unwrap();
                }
            }),
        ),
        (
            "photos: an entry of the wrong type",
            "photos",
            &request_bytes,
            Box::new(|d| {
                let photos = d.put_object(ROOT, "photos", ObjType::List).unwrap();
                d.insert(&photos, 0, ScalarValue::Int(7)).unwrap();
            }),
        ),
        (
            // Regression (found by the JavaScript writer's probe): a string put over the photo
            // list hid every photo entry, removals included, from every device, and was stored.
            "photos: the list replaced by a string",
            "photos",
            &request_bytes,
            Box::new(|d| {
                d.put(ROOT, "photos", "no photos here").unwrap();
            }),
        ),
        (
            "visit body: notes as a number",
            "body",
            &visit_bytes,
            Box::new(|d| {
                let b = map(d, &ROOT, "body");
                d.put(&b, "notes", 42_i64).unwrap();
            }),
        ),
    ];
    for (what, field, bytes, edit) in cases {
        let doc_id = if std::ptr::eq(bytes, visit_bytes.as_slice()) { &town.visit } else { &town.request };
        let err = town.push(doc_id, crafted(bytes, edit)).expect_err(what);
        assert_eq!((err.status, err.code), (422, "document_unreadable"), "{what}: {err:?}");
        assert!(err.message.contains(doc_id.as_str()), "{what}: names the document: {}", err.message);
        assert!(err.message.contains(&format!("its {field} cannot be read")), "{what}: names {field}: {}", err.message);
    }
    let after = town.relay.stats().unwrap();
    assert_eq!(
        (before.documents, before.changes, before.change_bytes, before.snapshot_bytes),
        (after.documents, after.changes, after.change_bytes, after.snapshot_bytes),
        "nothing was stored"
    );
    // Every other device syncs on and receives nothing.
    sync(&town.other, &town.relay, &town.other_token).unwrap();
    sync(&town.hall, &town.relay, &town.hall_token).unwrap();
    assert_eq!(fingerprint(&town.other), other_before);
    assert_eq!(fingerprint(&town.hall), hall_before);

    // The control: a well-formed change by the same means is stored and reaches them.
    let stored = town
        .push(
            &town.request,
            crafted(&request_bytes, |d| {
                let b = map(d, &ROOT, "body");
                d.put(&b, "description", "路灯不亮，已两周").unwrap();
            }),
        )
        .unwrap();
    assert_eq!(stored, 1);
    sync(&town.hall, &town.relay, &town.hall_token).unwrap();
    assert_eq!(town.hall.request(&town.request).unwrap().body.description, "路灯不亮，已两周");
}

/// The bytes and `DocWrite` of a document after `edit`, written straight into the relay's
/// store as if an older relay had accepted it (no validation on the way).
fn plant(town: &Town, doc_id: &str, grid: &str, kind: &str, base: Option<&[u8]>, edit: impl FnOnce(&mut AutoCommit)) {
    let mut doc = match base {
        Some(bytes) => AutoCommit::load(bytes).unwrap(),
        None => AutoCommit::new(),
    }
    .with_actor(ActorId::random());
    let before = doc.get_heads();
    edit(&mut doc);
    doc.commit();
    let new_changes = doc
        .get_changes(&before)
        .iter()
        .map(|c| gridwalk_relay::store::NewChange { hash: c.hash().0, bytes: c.raw_bytes().to_vec() })
        .collect();
    use gridwalk_relay::store::RelayStore;
    let store = SqliteRelayStore::open(&town._dir.path().join("relay.db")).unwrap();
    let write = gridwalk_relay::store::DocWrite {
        id: doc_id.into(),
        grid: grid.into(),
        kind: kind.into(),
        snapshot: doc.save(),
        new_changes,
        blob_refs: vec![],
        base_last_seq: store.load_doc(doc_id).unwrap().map(|d| d.last_seq),
    };
    store.store_push(&[write], "planted", 1_790_000_000_000).unwrap();
}

#[test]
fn a_device_sets_aside_documents_it_cannot_read_and_syncs_lists_and_rebuilds_the_rest() {
    let town = town();
    let request_bytes = town.phone.document_bytes(&town.request).unwrap();
    // 1. An existing request whose body a planted change deleted.
    plant(&town, &town.request, "g1", "request", Some(&request_bytes), |d| d.delete(ROOT, "body").unwrap());
    // 2. A new visit whose notes another implementation wrote as Automerge Text.
    let visit_bytes = town.phone.document_bytes(&town.visit).unwrap();
    let text_visit = "visit-with-text-notes";
    plant(&town, text_visit, "g1", "visit", None, |d| {
        let original = AutoCommit::load(&visit_bytes).unwrap();
        let header: gridwalk_core::docs::DocHeader = autosurgeon::hydrate_prop(&original, ROOT, "header").unwrap();
        let body: gridwalk_core::docs::VisitBody = autosurgeon::hydrate_prop(&original, ROOT, "body").unwrap();
        let header = gridwalk_core::docs::DocHeader { id: text_visit.into(), ..header };
        autosurgeon::reconcile_prop(d, ROOT, "header", &header).unwrap();
        autosurgeon::reconcile_prop(d, ROOT, "body", &body).unwrap();
        let b = map(d, &ROOT, "body");
        let notes = d.put_object(&b, "notes", ObjType::Text).unwrap();
        d.splice_text(&notes, 0, 0, "夜谈记录").unwrap();
    });
    // 3. A new document with no readable header at all.
    let headless = "no-header-at-all";
    plant(&town, headless, "g1", "request", None, |d| {
        d.put(ROOT, "header", "?").unwrap();
    });

    // Every device of the grid, the hall, and one enrolled afterwards all sync on.
    sync(&town.other, &town.relay, &town.other_token).unwrap();
    sync(&town.hall, &town.relay, &town.hall_token).unwrap();
    let newcomer = device_store(town._dir.path(), "newcomer", "w3");
    let newcomer_token = enrol(&town.relay, "newcomer", Role::Walker, &["g1"]);
    sync(&newcomer, &town.relay, &newcomer_token).unwrap();

    for (who, store) in [("other walker", &town.other), ("hall", &town.hall), ("newcomer", &newcomer)] {
        let damaged = store.damaged_documents().unwrap();
        let named: Vec<(&str, &str)> = damaged.iter().map(|d| (d.doc_id.as_str(), d.field.as_str())).collect();
        let mut expected = vec![(headless, "header"), (town.request.as_str(), "body"), (text_visit, "body")];
        expected.sort();
        assert_eq!(named, expected, "{who}: the damaged documents are named with their part");
        // Lists skip them and show everything else.
        let requests = store.list_requests(&Default::default()).unwrap();
        assert!(requests.iter().all(|r| r.id != town.request), "{who}: the damaged request is not listed");
        let visits = store.list_visits(&Default::default()).unwrap();
        let visit_ids: Vec<&str> = visits.iter().map(|v| v.id.as_str()).collect();
        assert!(visit_ids.contains(&town.visit.as_str()), "{who}: the good visit is listed: {visit_ids:?}");
        assert!(!visit_ids.contains(&text_visit), "{who}: the damaged visit is not listed");
        // Rebuilding carries on past them, and the check names them and passes.
        store.rebuild_index().unwrap();
        let report = store.check().unwrap();
        assert!(report.index_matches_documents, "{who}: {report:?}");
        assert_eq!(report.damaged.len(), 2, "{who}: the two stored damaged documents: {report:?}");
    }
    // The walker's own further work still goes up and reaches the others.
    let ctx = town.other.context(t(30));
    let later = town
        .other
        .record_visit(
            &ctx,
            NewVisit {
                id: None,
                grid: "g1".into(),
                micro_grid: None,
                target: VisitTarget::Household { id: "g1-h1".into() },
                kind: VisitKind::Sweep,
                visited_at: None,
                other_walkers: vec![],
                companions: vec![],
                notes: "之后的走访".into(),
                gps: None,
            },
        )
        .unwrap();
    sync(&town.other, &town.relay, &town.other_token).unwrap();
    sync(&town.hall, &town.relay, &town.hall_token).unwrap();
    assert!(town.hall.list_visits(&Default::default()).unwrap().iter().any(|v| v.id == later));
}

/// A request's events as the devices read them, changed by `edit` and written back, as another
/// implementation could write them.
fn with_events(bytes: &[u8], edit: impl FnOnce(&mut Vec<gridwalk_core::lifecycle::LifecycleEvent>)) -> Vec<u8> {
    crafted(bytes, |d| {
        let mut events: Vec<gridwalk_core::lifecycle::LifecycleEvent> =
            autosurgeon::hydrate_prop(&*d, ROOT, "events").unwrap();
        edit(&mut events);
        autosurgeon::reconcile_prop(d, ROOT, "events", &events).unwrap();
    })
}

/// Regression (found by the JavaScript writer's probe): another walker of the grid added her
/// own `collected` event, sorted first, to a request w1 raised; the relay took it as raising a
/// request, and the request became hers to settle on the spot (首问责任制 bypassed).
#[test]
fn regression_a_second_collected_event_cannot_take_a_request_over() {
    let town = town();
    let other = town.relay.authenticate(&town.other_token).unwrap();
    let bytes = town.phone.document_bytes(&town.request).unwrap();
    let forged = with_events(&bytes, |events| {
        let mut mine = events[0].clone();
        mine.id = "forged-collected".into();
        mine.by = "w2".into();
        mine.lamport = 0;
        events.push(mine);
    });
    let digest = fingerprint_relay(&town);
    let refused = town
        .relay
        .push(
            &other,
            &PushRequest {
                version: PROTOCOL_VERSION,
                docs: vec![DocChanges { doc_id: town.request.clone(), bytes: forged }],
            },
        )
        .unwrap_err();
    assert_eq!((refused.status, refused.code), (422, "document_unreadable"), "{}", refused.message);
    assert!(refused.message.contains("collected once"), "{}", refused.message);
    assert_eq!(fingerprint_relay(&town), digest, "nothing was stored");
}

/// Regression (found by the JavaScript writer's probe): an event numbered 2^64 − 1 was stored,
/// and the next honest step on the request overflowed its number on every device.
#[test]
fn regression_an_event_numbered_beyond_any_history_is_refused() {
    let town = town();
    let bytes = town.phone.document_bytes(&town.request).unwrap();
    let forged = with_events(&bytes, |events| {
        let mut next = events[0].clone();
        next.id = "huge".into();
        next.lamport = u64::MAX;
        next.action = gridwalk_core::lifecycle::Action::Progress { note: "x".into() };
        events.push(next);
    });
    let digest = fingerprint_relay(&town);
    let refused = town.push(&town.request, forged).unwrap_err();
    assert_eq!((refused.status, refused.code), (422, "document_unreadable"), "{}", refused.message);
    assert_eq!(fingerprint_relay(&town), digest, "nothing was stored");
    // And the walker's own next step still works on the document as it was.
    let solved = gridwalk_core::lifecycle::TriageDecision::SolvedOnSpot { note: "当场修好".into() };
    let ctx = town.phone.context(t(2));
    town.phone.act(&ctx, &town.request, gridwalk_core::lifecycle::Action::Triaged { decision: solved }).unwrap();
}

fn fingerprint_relay(town: &Town) -> (i64, i64) {
    let s = town.relay.stats().unwrap();
    (s.documents, s.changes)
}

/// Regression (found in review): a walker's visit named like the staff roster (`roster-_hall`)
/// was stored; from then on every push of every device was answered 500 and the real staff
/// roster could never be stored. Only a roster has a roster's id, and only its own grid's.
#[test]
fn regression_a_document_named_like_a_roster_that_is_no_roster_is_refused() {
    let town = town();
    let visit = town
        .phone
        .record_visit(
            &town.phone.context(t(3)),
            NewVisit {
                id: Some("roster-_hall".into()),
                grid: "g1".into(),
                micro_grid: None,
                target: VisitTarget::Household { id: "g1-h0".into() },
                kind: VisitKind::Daily,
                visited_at: None,
                other_walkers: vec![],
                companions: vec![],
                notes: "冒名的名册".into(),
                gps: None,
            },
        )
        .unwrap();
    let refused = town.push(&visit, town.phone.document_bytes(&visit).unwrap()).unwrap_err();
    assert_eq!((refused.status, refused.code), (400, "misnamed_roster"), "{}", refused.message);
    // Every device's pushes go on as before.
    let other = town.relay.authenticate(&town.other_token).unwrap();
    let empty = PushRequest { version: PROTOCOL_VERSION, docs: vec![] };
    town.relay.push(&other, &empty).unwrap();
}

/// Regression (issue 16 review): the relay took any request number a device wrote, so a phone
/// could give out another device's numbers and two requests answered to one number. A request
/// a device raised must carry that device's own code and the day it was raised, and a number
/// never changes once stored. Crafted with the automerge crate, past the core's own rule.
#[test]
fn regression_a_device_cannot_give_out_another_devices_request_numbers_or_change_one() {
    let town = town();
    // A phone whose store is its relay identity, as an enrolled phone's is.
    let dir = tempfile::tempdir().unwrap();
    let me = &town.phone_device;
    let number = me.number.expect("an enrolled device has a number");
    let phone = device_store(dir.path(), &me.id, "w1");
    phone
        .set_relay_link(&gridwalk_core::store::RelayLink {
            url: "http://relay.example".into(),
            device_id: me.id.clone(),
            token: "t".into(),
            role: "walker".into(),
            grids: vec!["g1".into()],
            walker: Some("w1".into()),
            device_number: Some(number),
            staff_sign_in: false,
            relay_key: None,
        })
        .unwrap();
    let raise = |description: &str| phone.raise_request(&phone.context(t(3)), streetlight(description)).unwrap();
    let set_number = |to: String| {
        move |d: &mut AutoCommit| {
            let b = map(d, &ROOT, "body");
            d.put(&b, "number", to).unwrap();
        }
    };
    let honest = raise("井盖松动");
    let own = phone.request(&honest).unwrap().body.number.unwrap();
    assert!(own.ends_with(&format!("-{number}-1")), "{own}");
    let day = own.split('-').next().unwrap().to_string();

    let forged = raise("路灯不亮");
    let bytes = phone.document_bytes(&forged).unwrap();
    let digest = fingerprint_relay(&town);
    // Review finding: the header is the pusher's to write, so naming another device in it must
    // not free a phone to give out that device's numbers.
    let other_device = |d: &mut AutoCommit| {
        let h = map(d, &ROOT, "header");
        d.put(&h, "device", "dev-someone-else").unwrap();
    };
    for (what, number, forge_header) in [
        ("another device's number", format!("{day}-{}-1", number + 1), false),
        ("another device's number, the header naming another device", format!("{day}-{}-1", number + 1), true),
        ("another day", format!("261231-{number}-2"), false),
        ("no count", format!("{day}-{number}-0"), false),
        ("not a number at all", "第一号".to_string(), false),
    ] {
        let mut all = bytes.clone();
        all.extend(crafted(&bytes, |d| {
            if forge_header {
                other_device(d);
            }
            set_number(number.clone())(d);
        }));
        let refused = town.push(&forged, all).unwrap_err();
        assert_eq!((refused.status, refused.code), (422, "bad_request_number"), "{what}: {}", refused.message);
        assert_eq!(fingerprint_relay(&town), digest, "{what}: nothing was stored");
    }

    // Its own numbers are taken; and once stored, a number stays.
    assert!(town.push(&honest, phone.document_bytes(&honest).unwrap()).is_ok());
    let honest_bytes = phone.document_bytes(&honest).unwrap();
    let digest = fingerprint_relay(&town);
    let refused = town.push(&honest, crafted(&honest_bytes, set_number(format!("{day}-{number}-9")))).unwrap_err();
    assert_eq!((refused.status, refused.code), (422, "request_number_changed"), "{}", refused.message);
    assert_eq!(fingerprint_relay(&town), digest, "nothing was stored");
}

/// The relay refuses a roster whose quick phrases could weigh on every phone of its grids (a
/// hall token is enough to publish rosters), and phones offer at most the hall form's 24.
#[test]
fn regression_a_roster_with_quick_phrases_beyond_any_halls_list_is_refused() {
    let town = town();
    let hall_device = town.relay.authenticate(&town.hall_token).unwrap();
    let ctx = town.hall.context(t(5));
    town.hall.save_quick_phrases(&ctx, &["已查看燃气灶".to_string()]).unwrap();
    sync(&town.hall, &town.relay, &town.hall_token).unwrap();
    let roster = gridwalk_core::roster::roster_id("g1");
    let bytes = town.hall.document_bytes(&roster).unwrap();
    let digest = fingerprint_relay(&town);
    let flood = crafted(&bytes, |d| {
        let body = map(d, &ROOT, "body");
        let list = d.put_object(&body, "quick_phrases", ObjType::List).unwrap();
        for i in 0..201 {
            d.insert(&list, i, format!("常用语{i}")).unwrap();
        }
    });
    let push =
        PushRequest { version: PROTOCOL_VERSION, docs: vec![DocChanges { doc_id: roster.clone(), bytes: flood }] };
    let refused = town.relay.push(&hall_device, &push).unwrap_err();
    assert_eq!((refused.status, refused.code), (422, "bad_roster"), "{}", refused.message);
    assert_eq!(fingerprint_relay(&town), digest, "nothing was stored");

    // Within what the relay holds, a phone offers the first 24, each cut at 40 characters.
    let long: Vec<String> = (0..30).map(|i| format!("{i}{}", "很".repeat(50))).collect();
    let offered = gridwalk_core::roster::offered_quick_phrases(&long);
    assert_eq!(offered.len(), 24);
    assert!(offered.iter().all(|p| p.chars().count() == 40));
}

/// Review finding (issue 16): telling a merged duplicate's reporter before the request it went
/// into is resolved was refused only by the core. Crafted with the automerge crate and pushed
/// straight to the relay, it is refused there too; once that request is resolved, the same
/// push is stored.
#[test]
fn regression_a_duplicates_reporter_told_before_its_request_is_resolved_is_refused_by_the_relay() {
    use gridwalk_core::lifecycle::{Action, TriageDecision};
    let town = town();
    let dup = town.phone.raise_request(&town.phone.context(t(2)), streetlight("路灯又坏了")).unwrap();
    town.push(&dup, town.phone.document_bytes(&dup).unwrap()).unwrap();
    sync(&town.hall, &town.relay, &town.hall_token).unwrap();
    let merge = Action::Triaged { decision: TriageDecision::MergeInto { target: town.request.clone() } };
    town.hall.act(&town.hall.context(t(3)), &dup, merge).unwrap();
    sync(&town.hall, &town.relay, &town.hall_token).unwrap();

    // The duplicate as the relay holds it, merged, with a feedback step the core would refuse.
    let merged = town.hall.document_bytes(&dup).unwrap();
    let told = with_events(&merged, |events| {
        let mut feedback = events.last().unwrap().clone();
        feedback.id = "told-too-early".into();
        feedback.lamport += 1;
        feedback.by = "w1".into();
        feedback.at = t(4);
        feedback.action = Action::FeedbackGiven { note: "已告知".into() };
        events.push(feedback);
    });
    let digest = fingerprint_relay(&town);
    let refused = town.push(&dup, told.clone()).unwrap_err();
    assert_eq!((refused.status, refused.code), (422, "duplicate_told_too_early"), "{}", refused.message);
    assert_eq!(fingerprint_relay(&town), digest, "nothing was stored");

    // The hall resolves the request it went into; the same push is stored now.
    let ctx = town.hall.context(t(5));
    town.hall.act(&ctx, &town.request, Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    town.hall.act(&ctx, &town.request, Action::Resolved { note: "修好了".into(), photos: vec![] }).unwrap();
    sync(&town.hall, &town.relay, &town.hall_token).unwrap();
    assert_eq!(town.push(&dup, told).unwrap(), 1);
}

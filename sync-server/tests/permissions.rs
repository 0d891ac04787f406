//! The permission table (gridwalk_doc::permissions), every role × every step of the loop:
//! through the device's core (refused with `forbidden`, the store unchanged) and through the
//! relay with changes crafted by the automerge crate, bypassing the core (refused with 403
//! `forbidden_action`, the relay unchanged, no device receiving anything). And a stolen phone.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use automerge::{ActorId, AutoCommit};
use chrono::TimeZone;
use common::{device_store, fingerprint, t, InMemoryTransport};
use gridwalk_core::docs::{Reporter, RequestDocument, Source, Urgency};
use gridwalk_core::lifecycle::{Action, Assignment, Rating, Status, TriageDecision};
use gridwalk_core::model::{Level, Role as PersonRole};
use gridwalk_core::report::{dashboard, DashboardQuery, Scope};
use gridwalk_core::store::{NewRequest, Store};
use gridwalk_core::sync::protocol::{DocChanges, EnrollRequest, PushRequest, PROTOCOL_VERSION};
use gridwalk_core::{ActionContext, CoreError, ManualClock};
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{Device, Role, SqliteRelayStore};
use gridwalk_transport::client::{self, Retry, SessionLimits};

fn relay_in(dir: &std::path::Path) -> Relay {
    let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
    Relay::new(Box::new(SqliteRelayStore::open(&dir.join("relay.db")).unwrap()), clock)
}

fn enrol(relay: &Relay, name: &str, role: Role, grids: &[&str], walker: Option<&str>) -> String {
    let grids: Vec<String> = grids.iter().map(|g| g.to_string()).collect();
    let code = relay.create_enrollment_for(name, role, &grids, walker).unwrap();
    relay.enroll(&EnrollRequest { code, device_name: name.into(), device_key: None }).unwrap().token
}

fn sync(store: &Store, relay: &Relay, token: &str) {
    client::run(
        store,
        &mut InMemoryTransport::new(relay, token),
        SessionLimits::default(),
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
}

fn assignment() -> Assignment {
    Assignment { department: "dept-urban".into(), person: None, deadline: t(7 * 1440), level: Level::Town }
}

/// Every step of the loop after collection, with the status the request must be in for the
/// lifecycle to allow it (so only the permission table can refuse it), and whether a walker,
/// the hall, office staff of the assigned office, an admin and a leader may take it.
fn the_loop(merge_target: &str) -> Vec<(&'static str, Status, Action, [bool; 5])> {
    //                                                                   walker hall  office admin leader
    vec![
        (
            "accept",
            Status::New,
            Action::Triaged { decision: TriageDecision::Accept },
            [false, true, false, false, false],
        ),
        (
            "merge",
            Status::New,
            Action::Triaged { decision: TriageDecision::MergeInto { target: merge_target.into() } },
            [false, true, false, false, false],
        ),
        (
            "reject",
            Status::New,
            Action::Triaged { decision: TriageDecision::Reject { reason: "不属于受理范围".into() } },
            [false, true, false, false, false],
        ),
        // Raised by the hall here, so a walker is not its first receiver.
        (
            "solve on the spot",
            Status::New,
            Action::Triaged { decision: TriageDecision::SolvedOnSpot { note: "当场解决".into() } },
            [false, true, false, false, false],
        ),
        ("assign", Status::Accepted, Action::Assigned { assignment: assignment() }, [false, true, false, false, false]),
        (
            "reassign",
            Status::Assigned,
            Action::Reassigned { assignment: assignment(), reason: "换人".into() },
            [false, true, false, false, false],
        ),
        (
            "escalate",
            Status::Accepted,
            Action::Escalated { level: Level::County, department: None, reason: "需县级协调".into() },
            [false, true, false, false, false],
        ),
        (
            "progress",
            Status::Assigned,
            Action::Progress { note: "已联系供电所".into() },
            [true, true, true, false, false],
        ),
        (
            "resolve",
            Status::Assigned,
            Action::Resolved { note: "已更换灯头".into(), photos: vec![] },
            [false, true, true, false, false],
        ),
        (
            "feedback",
            Status::Resolved,
            Action::FeedbackGiven { note: "已上门告知".into() },
            [true, true, false, false, false],
        ),
        (
            "rate",
            Status::Resolved,
            Action::Rated { rating: Rating::Satisfied, comment: String::new() },
            [true, true, false, false, false],
        ),
        ("reopen", Status::Resolved, Action::Reopened { reason: "又坏了".into() }, [false, true, false, false, false]),
        ("close", Status::Resolved, Action::Closed { note: "归档".into() }, [false, true, false, false, false]),
        (
            "meeting decision",
            Status::Accepted,
            Action::MeetingDecision { meeting: "m-1".into(), decision: "复用闲置路灯".into() },
            [false, true, false, false, false],
        ),
    ]
}

/// A request raised by the hall and brought to `status`.
fn request_in(hall: &Store, status: Status, n: i64) -> String {
    let ctx = hall.context(t(n));
    let id = hall
        .raise_request(
            &ctx,
            NewRequest {
                id: None,
                grid: "g1".into(),
                micro_grid: None,
                reporter: Reporter::Anonymous,
                address: "g1 村道".into(),
                gps: None,
                category: "streetlight".into(),
                description: format!("路灯不亮 {n}"),
                urgency: Urgency::Normal,
                source: Source::Visit,
                visit: None,
            },
        )
        .unwrap();
    let path: &[Action] = match status {
        Status::New => &[],
        Status::Accepted => &[Action::Triaged { decision: TriageDecision::Accept }],
        Status::Assigned => {
            &[Action::Triaged { decision: TriageDecision::Accept }, Action::Assigned { assignment: assignment() }]
        }
        Status::Resolved => &[
            Action::Triaged { decision: TriageDecision::Accept },
            Action::Assigned { assignment: assignment() },
            Action::Resolved { note: "已修好".into(), photos: vec![] },
        ],
        other => panic!("no path to {other:?}"),
    };
    for (k, a) in path.iter().enumerate() {
        hall.act(&hall.context(t(n + 1 + k as i64)), &id, a.clone()).unwrap();
    }
    assert_eq!(hall.request(&id).unwrap().state.status, status);
    id
}

/// The change that appends `action` to the request, made with the document API directly (no
/// store, no permission check), as a modified app would.
fn crafted_step(bytes: &[u8], person: &str, device: &str, action: Action) -> Vec<u8> {
    let am = AutoCommit::load(bytes).unwrap().with_actor(ActorId::random());
    let mut doc = RequestDocument::from_automerge(am);
    let before = doc.automerge().get_heads();
    doc.apply(&ActionContext::new(person, device, t(5000)), action).unwrap();
    let am = doc.automerge();
    am.commit();
    am.get_changes(&before).iter().flat_map(|c| c.raw_bytes().to_vec()).collect()
}

fn push(
    relay: &Relay,
    device: &Device,
    doc_id: &str,
    bytes: Vec<u8>,
) -> Result<u32, gridwalk_relay::relay::RelayError> {
    relay
        .push(
            device,
            &PushRequest { version: PROTOCOL_VERSION, docs: vec![DocChanges { doc_id: doc_id.into(), bytes }] },
        )
        .map(|r| r.stored)
}

#[test]
fn every_role_and_every_step_through_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let roles = [
        (PersonRole::Walker, "w1"),
        (PersonRole::Hall, "hall-2"),
        (PersonRole::Office, "office-1"),
        (PersonRole::Admin, "admin-1"),
        (PersonRole::Leader, "leader-1"),
    ];
    let target = request_in(&hall, Status::New, 0);
    for (i, (name, status, action, allowed)) in the_loop(&target).into_iter().enumerate() {
        for (r, (role, person)) in roles.iter().enumerate() {
            let id = request_in(&hall, status, 100 * (i as i64 * 5 + r as i64 + 1));
            let store = device_store(dir.path(), &format!("{name}-{person}"), person);
            store.set_role(*role).unwrap();
            if *role == PersonRole::Office {
                store.set_office("dept-urban").unwrap();
            }
            for doc in [&id, &target] {
                store.apply_remote(doc, &hall.document_bytes(doc).unwrap()).unwrap();
            }
            let (dump, bytes, outbox) =
                (store.index_dump().unwrap(), store.document_bytes(&id).unwrap(), store.outbox_len().unwrap());
            let result = store.act(&store.context(t(9000)), &id, action.clone());
            if allowed[r] {
                result.unwrap_or_else(|e| panic!("{} may {name}: {e}", role.as_str()));
            } else {
                match result {
                    Err(CoreError::Forbidden(f)) => assert_eq!(f.role, role.as_str()),
                    other => panic!("{} may not {name}, but: {other:?}", role.as_str()),
                }
                assert_eq!(store.index_dump().unwrap(), dump, "{} {name}: the index is unchanged", role.as_str());
                assert_eq!(
                    store.document_bytes(&id).unwrap(),
                    bytes,
                    "{} {name}: the document is unchanged",
                    role.as_str()
                );
                assert_eq!(store.outbox_len().unwrap(), outbox, "{} {name}: nothing waits to go up", role.as_str());
            }
        }
    }
    // A walker settles on the spot what she received herself, and only that; and her phone acts
    // only as her (`gridwalk --as` included).
    let phone = device_store(dir.path(), "phone", "w1");
    let ctx = phone.context(t(1));
    let own = phone
        .raise_request(
            &ctx,
            NewRequest {
                id: None,
                grid: "g1".into(),
                micro_grid: None,
                reporter: Reporter::Anonymous,
                address: "g1 村口".into(),
                gps: None,
                category: "streetlight".into(),
                description: "路灯不亮".into(),
                urgency: Urgency::Normal,
                source: Source::Visit,
                visit: None,
            },
        )
        .unwrap();
    let as_other = ActionContext::new("w2", phone.identity().device.clone(), t(2));
    assert!(matches!(
        phone.act(&as_other, &own, Action::Progress { note: "冒名".into() }),
        Err(CoreError::Forbidden(_))
    ));
    phone
        .act(
            &phone.context(t(3)),
            &own,
            Action::Triaged { decision: TriageDecision::SolvedOnSpot { note: "当场修好".into() } },
        )
        .unwrap();
}

#[test]
fn every_role_and_every_step_through_the_relay_with_crafted_changes() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let hall_token = enrol(&relay, "hall-pc", Role::Hall, &[], None);
    let watcher = device_store(dir.path(), "watcher", "w9");
    let watcher_token = enrol(&relay, "watcher", Role::Walker, &["g1"], Some("w9"));
    let devices = [
        (Role::Walker, "w1", enrol(&relay, "phone", Role::Walker, &["g1"], Some("w1")), 0),
        (Role::Hall, "hall-2", enrol(&relay, "second-hall-pc", Role::Hall, &[], None), 1),
        (Role::Admin, "admin-1", enrol(&relay, "admin-pc", Role::Admin, &[], None), 3),
    ];
    let target = request_in(&hall, Status::New, 0);
    let mut cases = Vec::new();
    for (i, (name, status, action, allowed)) in the_loop(&target).into_iter().enumerate() {
        for (d, _) in devices.iter().enumerate() {
            cases.push((
                name,
                request_in(&hall, status, 100 * (i as i64 * 3 + d as i64 + 1)),
                action.clone(),
                allowed,
                d,
            ));
        }
    }
    sync(&hall, &relay, &hall_token);
    sync(&watcher, &relay, &watcher_token);
    for (name, id, action, allowed, d) in cases {
        let (role, person, token, column) = &devices[d];
        let device = relay.authenticate(token).unwrap();
        let bytes = crafted_step(&hall.document_bytes(&id).unwrap(), person, &device.id, action);
        let before = relay.stats().unwrap();
        match push(&relay, &device, &id, bytes) {
            Ok(stored) => {
                assert!(allowed[*column], "{} may not {name}, yet the relay stored it", role.as_str());
                assert_eq!(stored, 1);
            }
            Err(e) => {
                assert!(!allowed[*column], "{} may {name}, yet: {e:?}", role.as_str());
                assert_eq!((e.status, e.code), (403, "forbidden_action"), "{name}");
                assert!(e.message.contains(&id), "the message names the document: {}", e.message);
                let after = relay.stats().unwrap();
                assert_eq!((before.changes, before.change_bytes), (after.changes, after.change_bytes), "{name}");
            }
        }
    }
    // A walker's phone signs only as its walker, whatever the step.
    let (_, _, token, _) = &devices[0];
    let phone = relay.authenticate(token).unwrap();
    let id = request_in(&hall, Status::Resolved, 90_000);
    sync(&hall, &relay, &hall_token);
    let forged = crafted_step(
        &hall.document_bytes(&id).unwrap(),
        "w2",
        &phone.id,
        Action::FeedbackGiven { note: "冒名反馈".into() },
    );
    let e = push(&relay, &phone, &id, forged).unwrap_err();
    assert_eq!((e.status, e.code), (403, "forbidden_action"));
    assert!(e.message.contains("belongs to w1"), "{}", e.message);
    // The watcher of the grid received only what was allowed: the same as the hall has.
    sync(&watcher, &relay, &watcher_token);
    sync(&hall, &relay, &hall_token);
    let (watcher_docs, _) = fingerprint(&watcher);
    let (hall_docs, _) = fingerprint(&hall);
    let hall_g1: Vec<_> = hall_docs.into_iter().filter(|(id, _)| watcher_docs.iter().any(|(w, _)| w == id)).collect();
    assert_eq!(watcher_docs, hall_g1, "every device holds exactly the permitted history");
}

#[test]
fn a_stolen_phone_cannot_resolve_or_close_its_grids_requests() {
    let dir = tempfile::tempdir().unwrap();
    let relay = relay_in(dir.path());
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let hall_token = enrol(&relay, "hall-pc", Role::Hall, &[], None);
    let open: Vec<String> = (0..4).map(|n| request_in(&hall, Status::Assigned, 10 * n)).collect();
    let done = request_in(&hall, Status::Resolved, 500);
    sync(&hall, &relay, &hall_token);
    let now = t(20_000);
    let figures = |store: &Store| dashboard(store, &DashboardQuery::new(Scope::All, now)).unwrap().figures;
    let before = figures(&hall);
    let stats = relay.stats().unwrap();

    let token = enrol(&relay, "王芳的手机", Role::Walker, &["g1"], Some("w1"));
    let phone = relay.authenticate(&token).unwrap();
    for id in &open {
        let resolved = crafted_step(
            &hall.document_bytes(id).unwrap(),
            "w1",
            &phone.id,
            Action::Resolved { note: "已办结".into(), photos: vec![] },
        );
        let e = push(&relay, &phone, id, resolved).unwrap_err();
        assert_eq!((e.status, e.code), (403, "forbidden_action"), "{e:?}");
    }
    let closed =
        crafted_step(&hall.document_bytes(&done).unwrap(), "w1", &phone.id, Action::Closed { note: "".into() });
    assert_eq!(push(&relay, &phone, &done, closed).unwrap_err().status, 403);

    let after = relay.stats().unwrap();
    assert_eq!((stats.changes, stats.change_bytes), (after.changes, after.change_bytes));
    sync(&hall, &relay, &hall_token);
    assert_eq!(figures(&hall), before, "the hall's dashboard figures are unchanged");
}

/// Regression (review): the core judged a person signed in on a hall PC by the PC's role, the
/// relay by her own. An admin or a leader signed in there could triage; the relay then refused
/// the step, which stayed in the outbox and failed every later sync. Now the core acts in the
/// signed-in person's own role and office, as the relay does. And any hall user could reset a
/// colleague's PIN and then sign in as her: now the relay keeps the staff list, and only an
/// admin, proven by her own PIN, gives PINs.
#[test]
fn regression_on_a_hall_pc_each_person_acts_in_her_own_role_and_only_an_admin_gives_pins() {
    let dir = tempfile::tempdir().unwrap();
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let person = |id: &str, role| gridwalk_core::model::Walker {
        id: id.into(),
        name: id.into(),
        phone: None,
        role,
        work_group: None,
        grids: vec![],
    };
    for (id, role) in [
        ("hall-1", PersonRole::Hall),
        ("hall-2", PersonRole::Hall),
        ("admin-1", PersonRole::Admin),
        ("leader-1", PersonRole::Leader),
        ("office-1", PersonRole::Office),
    ] {
        hall.put_walker(&person(id, role)).unwrap();
    }
    hall.put_department(&gridwalk_core::model::Department {
        id: "dept-water".into(),
        name: "水务站".into(),
        level: Level::Town,
    })
    .unwrap();
    let new = request_in(&hall, Status::New, 1);
    let ours = request_in(&hall, Status::Assigned, 2);
    let theirs = request_in(&hall, Status::Accepted, 3);
    let water = Assignment { department: "dept-water".into(), ..assignment() };
    hall.act(&hall.context(t(4)), &theirs, Action::Assigned { assignment: water }).unwrap();

    // The relay's operator names the admin, who gives the others their PINs at the relay; the
    // hall PC pulls the list.
    let relay = relay_in(dir.path());
    let token = enrol(&relay, "hall-pc", Role::Hall, &[], None);
    let device = relay.authenticate(&token).unwrap();
    sync(&hall, &relay, &token);
    relay.add_admin("admin-1", "admin-1", "9630").unwrap();
    sync(&hall, &relay, &token);
    let as_ = |p: &str| ActionContext::new(p, "hall-pc", t(10));
    for p in ["hall-1", "hall-2", "leader-1", "office-1"] {
        relay.change_staff(&device, &hall.staff_pin_request(&as_("admin-1"), p, "2580", "9630").unwrap()).unwrap();
    }
    relay
        .change_staff(&device, &hall.staff_office_request(&as_("admin-1"), "office-1", "dept-urban", "9630").unwrap())
        .unwrap();
    // A hall colleague may not reset another's PIN, nor set an office.
    for refused in [
        hall.staff_pin_request(&as_("hall-1"), "hall-2", "1111", "2580").unwrap(),
        hall.staff_office_request(&as_("hall-1"), "office-1", "dept-water", "2580").unwrap(),
    ] {
        let e = relay.change_staff(&device, &refused).unwrap_err();
        assert_eq!((e.status, e.code), (403, "staff_change_forbidden"), "{e:?}");
    }
    sync(&hall, &relay, &token);
    assert!(hall.verify_staff_pin("hall-2", "2580").unwrap().is_some());

    // Each acts in her own role: the admin and the leader do not triage; hall staff do.
    let accept = Action::Triaged { decision: TriageDecision::Accept };
    for p in ["admin-1", "leader-1", "office-1"] {
        assert!(matches!(hall.act(&as_(p), &new, accept.clone()), Err(CoreError::Forbidden(_))), "{p}");
    }
    hall.act(&as_("hall-2"), &new, accept).unwrap();
    // Office staff resolve what is assigned to their own office, not another's.
    let resolve = Action::Resolved { note: "已修好".into(), photos: vec![] };
    assert!(matches!(hall.act(&as_("office-1"), &theirs, resolve.clone()), Err(CoreError::Forbidden(_))));
    hall.act(&as_("office-1"), &ours, resolve).unwrap();
}

/// Regression (review): two staff-list changes at once were each decided on the list as it was
/// read, then merged: two admins taking each other off at the same moment left the hall with
/// no admin. Each change is now decided again on the list as it stands when it is written.
#[test]
fn regression_two_admins_removing_each_other_at_once_leave_one_admin() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Arc::new(relay_in(dir.path()));
    let token = enrol(&relay, "hall-pc", Role::Hall, &[], None);
    let device = relay.authenticate(&token).unwrap();
    relay.add_admin("admin-1", "甲", "1111").unwrap();
    relay.add_admin("admin-2", "乙", "2222").unwrap();
    let ask = |actor: &str, pin: &str, person: &str| gridwalk_core::sync::protocol::StaffChangeRequest {
        actor: actor.into(),
        actor_pin: pin.into(),
        person: person.into(),
        name: None,
        role: None,
        new_pin: None,
        office: None,
        remove: true,
    };
    // A CI run on a busy machine once found both removed (the change was stored onto a newer
    // list than the one it was decided on): twenty rounds give the race room.
    for _ in 0..20 {
        let both = [ask("admin-1", "1111", "admin-2"), ask("admin-2", "2222", "admin-1")].map(|req| {
            let (relay, device) = (relay.clone(), device.clone());
            std::thread::spawn(move || relay.change_staff(&device, &req))
        });
        let _ = both.map(|t| t.join().unwrap());
        let admins = relay.staff_list().unwrap().iter().filter(|m| m.role == PersonRole::Admin).count();
        assert_eq!(admins, 1, "{:?}", relay.staff_list().unwrap());
        // Back to two for the next round.
        relay.add_admin("admin-1", "甲", "1111").unwrap();
        relay.add_admin("admin-2", "乙", "2222").unwrap();
    }
}

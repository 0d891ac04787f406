//! The closed loop as events: replicas that act offline and merge in any order derive the same
//! status, owner and deadline; invalid actions are refused; concurrent valid ones are all kept.

use automerge::AutoCommit;
use chrono::{Duration, TimeZone, Utc};
use gridwalk_doc::docs::{Place, Reporter, RequestBody, RequestDocument, Source, Urgency};
use gridwalk_doc::lifecycle::{self, Action, Assignment, Rating, Status, TriageDecision};
use gridwalk_doc::model::Level;
use gridwalk_doc::{ActionContext, DocError, Timestamp};
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

fn body() -> RequestBody {
    RequestBody {
        reporter: Reporter::Resident { name: "王建国".into(), phone: None, household: None },
        place: Place { address: "马厩村第3组12号".into(), gps: None },
        micro_grid: None,
        category: "streetlight".into(),
        description: "村道路灯不亮".into(),
        urgency: Urgency::Normal,
        source: Source::Visit,
        visit: None,
        number: None,
    }
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

fn ctx(replica: usize, minutes: i64) -> ActionContext {
    ActionContext::new(format!("person-{replica}"), format!("device-{replica}"), t0() + Duration::minutes(minutes))
}

/// Every action a person could try, with parameters drawn from `p`.
fn candidates(p: u32, state: &lifecycle::RequestState) -> Vec<Action> {
    let deadline = Timestamp(t0() + Duration::days(7 + i64::from(p % 20)));
    let dept = ["dept-urban", "dept-power", "dept-office"][p as usize % 3].to_string();
    let higher = match state.level {
        None | Some(Level::Village) => Level::Town,
        Some(_) => Level::County,
    };
    vec![
        Action::Triaged { decision: TriageDecision::Accept },
        Action::Triaged { decision: TriageDecision::Reject { reason: "不属于受理范围".into() } },
        Action::Triaged { decision: TriageDecision::SolvedOnSpot { note: "当场解决".into() } },
        Action::Triaged { decision: TriageDecision::MergeInto { target: "other-request".into() } },
        Action::Assigned {
            assignment: Assignment {
                department: dept.clone(),
                person: Some(format!("p{}", p % 4)),
                deadline,
                level: Level::Town,
            },
        },
        Action::Reassigned {
            assignment: Assignment { department: dept.clone(), person: None, deadline, level: Level::Village },
            reason: "改派".into(),
        },
        Action::Escalated { level: higher, department: Some(dept), reason: "需要上级协调".into() },
        Action::Progress { note: format!("进展 {p}") },
        Action::Resolved { note: "已修好".into(), photos: vec![] },
        Action::FeedbackGiven { note: "已告知".into() },
        Action::Rated {
            rating: [Rating::Satisfied, Rating::Basically, Rating::NotSatisfied][p as usize % 3],
            comment: String::new(),
        },
        Action::Reopened { reason: "又坏了".into() },
        Action::Closed { note: "归档".into() },
        Action::MeetingDecision { meeting: "m1".into(), decision: "复用闲置太阳能路灯".into() },
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// Replica `r` does the `pick`-th valid action, with parameter `p`.
    Act { r: usize, pick: usize, p: u32 },
    /// Replica `to` receives everything replica `from` has.
    Sync { from: usize, to: usize },
}

fn op(replicas: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..replicas, 0..16usize, 0..1000u32).prop_map(|(r, pick, p)| Op::Act { r, pick, p }),
        1 => (0..replicas, 0..replicas).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn run(replicas: usize, ops: &[Op], merge_seed: u64) -> Vec<RequestDocument> {
    let mut origin = RequestDocument::create(&ctx(0, 0), "req-1", "g1", &body()).unwrap();
    let saved = origin.automerge().save();
    let mut docs: Vec<RequestDocument> =
        (0..replicas).map(|r| RequestDocument::load(&saved, Some(&format!("device-{r}"))).unwrap()).collect();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Act { r, pick, p } => {
                let state = docs[r].state().unwrap();
                let valid: Vec<Action> =
                    candidates(p, &state).into_iter().filter(|a| lifecycle::check(&state, a).is_ok()).collect();
                if valid.is_empty() {
                    continue;
                }
                let action = valid[pick % valid.len()].clone();
                docs[r].apply(&ctx(r, step as i64 + 1), action).expect("a valid action is accepted");
            }
            Op::Sync { from, to } if from != to => {
                let mut source: AutoCommit = docs[from].automerge().clone();
                docs[to].automerge().merge(&mut source).unwrap();
            }
            Op::Sync { .. } => {}
        }
    }
    // Everyone meets at the hall: merge all into all, each replica in its own random order.
    let mut rng = ChaCha8Rng::seed_from_u64(merge_seed);
    let snapshots: Vec<Vec<u8>> = docs.iter_mut().map(|d| d.automerge().save()).collect();
    for d in docs.iter_mut() {
        let mut order: Vec<usize> = (0..replicas).collect();
        order.shuffle(&mut rng);
        for i in order {
            let mut other = AutoCommit::load(&snapshots[i]).unwrap();
            d.automerge().merge(&mut other).unwrap();
        }
    }
    docs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn replicas_merging_in_any_order_derive_the_same_state(
        replicas in 2usize..5,
        ops in proptest::collection::vec(op(4), 1..40),
        merge_seed in any::<u64>(),
    ) {
        let ops: Vec<Op> = ops.into_iter().map(|o| match o {
            Op::Act { r, pick, p } => Op::Act { r: r % replicas, pick, p },
            Op::Sync { from, to } => Op::Sync { from: from % replicas, to: to % replicas },
        }).collect();
        let mut docs = run(replicas, &ops, merge_seed);
        let first_state = docs[0].state().unwrap();
        let mut first_heads = docs[0].automerge().get_heads();
        first_heads.sort();
        let acted = ops.iter().filter(|o| matches!(o, Op::Act { .. })).count();
        for d in docs.iter_mut().skip(1) {
            let state = d.state().unwrap();
            prop_assert_eq!(&state, &first_state);
            prop_assert_eq!(state.status, first_state.status);
            prop_assert_eq!(&state.owner, &first_state.owner);
            prop_assert_eq!(state.deadline, first_state.deadline);
            let mut heads = d.automerge().get_heads();
            heads.sort();
            prop_assert_eq!(heads, first_heads.clone());
        }
        // Nothing is lost: every event ever appended is in every replica.
        let events = docs[0].events().unwrap();
        prop_assert!(events.len() <= acted + 1);
        prop_assert_eq!(events[0].action.clone(), Action::Collected);
        // The fold does not depend on the order the events are listed in.
        let mut shuffled = events.clone();
        shuffled.reverse();
        prop_assert_eq!(lifecycle::fold(&shuffled).unwrap(), first_state);
    }
}

#[test]
fn a_rating_before_resolution_is_refused_with_the_status() {
    let mut doc = RequestDocument::create(&ctx(0, 0), "req-1", "g1", &body()).unwrap();
    let err = doc.apply(&ctx(0, 1), Action::Rated { rating: Rating::Satisfied, comment: String::new() }).unwrap_err();
    match &err {
        DocError::InvalidTransition { status, action, .. } => {
            assert_eq!(*status, "new");
            assert_eq!(*action, "rate");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("a rating needs a resolved request"), "{err}");
    assert_eq!(doc.events().unwrap().len(), 1, "a refused action appends nothing");
}

fn resolved_request() -> RequestDocument {
    let mut doc = RequestDocument::create(&ctx(0, 0), "req-1", "g1", &body()).unwrap();
    doc.apply(&ctx(0, 1), Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    let deadline = Timestamp(t0() + Duration::days(10));
    doc.apply(
        &ctx(0, 2),
        Action::Assigned {
            assignment: Assignment {
                department: "dept-urban".into(),
                person: Some("李工".into()),
                deadline,
                level: Level::Town,
            },
        },
    )
    .unwrap();
    doc.apply(&ctx(0, 3), Action::Resolved { note: "换了灯头".into(), photos: vec![] }).unwrap();
    doc
}

#[test]
fn not_satisfied_reopens_and_keeps_the_office() {
    let mut doc = resolved_request();
    doc.apply(&ctx(0, 4), Action::Rated { rating: Rating::NotSatisfied, comment: "又不亮了".into() }).unwrap();
    let state = doc.state().unwrap();
    assert_eq!(state.status, Status::Reopened);
    assert_eq!(state.reopen_count, 1);
    assert_eq!(state.department.as_deref(), Some("dept-urban"));
    assert_eq!(state.owner, "李工");
    assert!(state.resolved_at.is_none());
}

#[test]
fn two_offline_ratings_are_both_kept_and_the_fold_picks_one() {
    let mut hall = resolved_request();
    let saved = hall.automerge().save();
    let mut walker_a = RequestDocument::load(&saved, Some("phone-a")).unwrap();
    let mut walker_b = RequestDocument::load(&saved, Some("phone-b")).unwrap();
    let a = ActionContext::new("walker-a", "phone-a", t0() + Duration::days(3));
    let b = ActionContext::new("walker-b", "phone-b", t0() + Duration::days(3));
    walker_a.apply(&a, Action::Rated { rating: Rating::Satisfied, comment: String::new() }).unwrap();
    walker_b.apply(&b, Action::Rated { rating: Rating::NotSatisfied, comment: String::new() }).unwrap();
    walker_a.automerge().merge(walker_b.automerge()).unwrap();
    walker_b.automerge().merge(&mut walker_a.automerge().clone()).unwrap();
    let events = walker_a.events().unwrap();
    assert_eq!(events.len(), 6, "both ratings are in the history");
    let sa = walker_a.state().unwrap();
    let sb = walker_b.state().unwrap();
    assert_eq!(sa, sb);
    assert_eq!(sa.not_applied.len(), 1, "the second rating in fold order is kept but not applied");
    // The rating that won is the one whose event id sorts first among the equal lamports.
    let mut ratings: Vec<_> = events.iter().filter(|e| matches!(e.action, Action::Rated { .. })).collect();
    ratings.sort_by(|x, y| x.id.cmp(&y.id));
    let winner = match &ratings[0].action {
        Action::Rated { rating, .. } => *rating,
        _ => unreachable!(),
    };
    assert_eq!(sa.rating, Some(winner));
}

#[test]
fn an_escalation_must_go_up() {
    let mut doc = RequestDocument::create(&ctx(0, 0), "req-1", "g1", &body()).unwrap();
    doc.apply(&ctx(0, 1), Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    let deadline = Timestamp(t0() + Duration::days(10));
    doc.apply(
        &ctx(0, 2),
        Action::Assigned {
            assignment: Assignment { department: "dept-urban".into(), person: None, deadline, level: Level::Town },
        },
    )
    .unwrap();
    let down = doc.apply(&ctx(0, 3), Action::Escalated { level: Level::Village, department: None, reason: "x".into() });
    assert!(down.is_err());
    doc.apply(
        &ctx(0, 3),
        Action::Escalated {
            level: Level::County,
            department: Some("dept-county-housing".into()),
            reason: "需要市住建局".into(),
        },
    )
    .unwrap();
    let state = doc.state().unwrap();
    assert_eq!(state.level, Some(Level::County));
    assert_eq!(state.owner, "dept-county-housing");
}

#[test]
fn overdue_is_derived_from_the_deadline_and_the_moment_asked() {
    let mut doc = RequestDocument::create(&ctx(0, 0), "req-1", "g1", &body()).unwrap();
    doc.apply(&ctx(0, 1), Action::Triaged { decision: TriageDecision::Accept }).unwrap();
    let deadline = Timestamp(t0() + Duration::days(5));
    doc.apply(
        &ctx(0, 2),
        Action::Assigned {
            assignment: Assignment { department: "dept-urban".into(), person: None, deadline, level: Level::Town },
        },
    )
    .unwrap();
    let state = doc.state().unwrap();
    assert!(!state.is_overdue(Timestamp(t0() + Duration::days(4))));
    assert!(state.is_overdue(Timestamp(t0() + Duration::days(6))));
    doc.apply(&ctx(0, 3), Action::Resolved { note: "done".into(), photos: vec![] }).unwrap();
    assert!(!doc.state().unwrap().is_overdue(Timestamp(t0() + Duration::days(6))), "a resolved request is not overdue");
}

/// A request written before request numbers existed has no `number` key in its body: it still
/// reads, with no number, on every replica and on the relay.
#[test]
fn a_request_from_before_numbers_reads_with_no_number() {
    use automerge::transaction::Transactable;
    use automerge::ReadDoc;
    let numbered = RequestBody { number: Some("261205-7-1".into()), ..body() };
    let mut doc = RequestDocument::create(&ctx(0, 0), "r-old", "g1", &numbered).unwrap();
    let am: &mut AutoCommit = doc.automerge();
    let (_, body_obj) = am.get(automerge::ROOT, "body").unwrap().expect("a body");
    am.delete(&body_obj, "number").unwrap();
    let bytes = am.save();
    let old = RequestDocument::load(&bytes, None).unwrap();
    assert_eq!(old.body().unwrap(), body());
    let loaded = AutoCommit::load(&bytes).unwrap();
    assert!(gridwalk_doc::incoming::read_whole("r-old", &gridwalk_doc::doc_view::DocView::new(&loaded)).is_ok());
}

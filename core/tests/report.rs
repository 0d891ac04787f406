//! Reports (issue 6): every figure of the dashboard and every line of the monthly list, on a
//! generated town, against values computed here independently — by loading every request and
//! visit document through the store and folding them — never by the code under test. The XLSX
//! export is read back with calamine.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use calamine::{open_workbook, Data, Reader, Xlsx};
use chrono::{DateTime, Duration, TimeZone, Utc};
use gridwalk_core::demo::{generate, DemoConfig};
use gridwalk_core::docs::VisitTarget;
use gridwalk_core::lifecycle::{Action, Assignment, Rating, RequestState, Status, TriageDecision};
use gridwalk_core::model::AreaKind;
use gridwalk_core::report::{
    self, dashboard, drill, monthly_list, write_monthly_xlsx, Completion, DashboardQuery, Drill, Figures, Measure,
    Month, Scope, Slice, ALL_MEASURES,
};
use gridwalk_core::store::{Identity, Store};
use gridwalk_core::sync::protocol::PulledDoc;
use gridwalk_core::{CoreError, Timestamp};

fn until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap()
}

fn town() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        Store::create(dir.path().join("town.db"), Identity { device: "hall-pc".into(), walker: "hall-1".into() })
            .unwrap();
    generate(
        &mut store,
        &DemoConfig {
            seed: 61,
            villages: 3,
            households: 300,
            enterprises: 14,
            enterprise_grids: 2,
            requests: 420,
            visits: 520,
            until: until(),
            days: 365,
        },
    )
    .unwrap();
    // A street that works has few old requests still open; the monthly list must still show
    // one carried over in every scope it is checked in, so one is raised in September in the
    // first grid (of the first village) and left open.
    let grid = store.grids().unwrap().into_iter().filter(|g| !g.enterprise_grid).map(|g| g.id).min().unwrap();
    let ctx = store.context(Timestamp(Utc.with_ymd_and_hms(2026, 9, 10, 2, 0, 0).unwrap()));
    store
        .raise_request(
            &ctx,
            gridwalk_core::store::NewRequest {
                id: None,
                grid,
                micro_grid: None,
                reporter: gridwalk_core::docs::Reporter::Anonymous,
                address: "村口桥头".into(),
                gps: None,
                category: "streetlight".into(),
                description: "桥头路灯坏了两个月".into(),
                urgency: gridwalk_core::docs::Urgency::Normal,
                source: gridwalk_core::docs::Source::WalkIn,
                visit: None,
            },
        )
        .unwrap();
    // And one resident not satisfied with a resolution in October, the request reopened since:
    // a street that works has few, and the figures must count them.
    let october = |day: u32, hour: u32| Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap();
    let grid = store.grids().unwrap().into_iter().filter(|g| !g.enterprise_grid).map(|g| g.id).max().unwrap();
    let body = gridwalk_core::docs::RequestBody {
        reporter: gridwalk_core::docs::Reporter::Anonymous,
        place: gridwalk_core::docs::Place { address: "村道东段".into(), gps: None },
        micro_grid: None,
        category: "road_traffic".into(),
        description: "村道坑洼，补了又坏".into(),
        urgency: gridwalk_core::docs::Urgency::Normal,
        source: gridwalk_core::docs::Source::WalkIn,
        visit: None,
        number: Some("261001-1-99".into()),
    };
    let hall = |day: u32, hour: u32| gridwalk_core::ActionContext::new("hall-1", "hall-pc", october(day, hour));
    let walker = |day: u32| gridwalk_core::ActionContext::new("w001", "phone-w001", october(day, 9));
    let mut doc = gridwalk_core::docs::RequestDocument::create(&hall(1, 2), "r-not-satisfied", &grid, &body).unwrap();
    let steps: Vec<(gridwalk_core::ActionContext, gridwalk_core::lifecycle::Action)> = vec![
        (hall(1, 3), Action::Triaged { decision: TriageDecision::Accept }),
        (
            hall(1, 4),
            Action::Assigned {
                assignment: Assignment {
                    department: "dept-urban".into(),
                    person: None,
                    deadline: Timestamp(october(20, 0)),
                    level: gridwalk_core::model::Level::Town,
                },
            },
        ),
        (hall(10, 4), Action::Resolved { note: "已修补".into(), photos: vec![] }),
        (walker(12), Action::FeedbackGiven { note: "已告知".into() }),
        (walker(12), Action::Rated { rating: Rating::NotSatisfied, comment: "又坏了".into() }),
    ];
    for (ctx, action) in steps {
        doc.apply(&ctx, action).unwrap();
        gridwalk_core::docs::commit(doc.automerge(), ctx.at, "test");
    }
    store.import_document(doc.automerge()).unwrap();
    // And a grid drawn this week that nobody has walked yet: the town's other grids are walked
    // every fortnight, and coverage must tell the two apart.
    store
        .put_area(&gridwalk_core::model::Area {
            id: "v01-g99".into(),
            kind: AreaKind::Grid,
            name: "新划网格".into(),
            parent: Some("v01".into()),
            enterprise_grid: false,
        })
        .unwrap();
    (dir, store)
}

// ----- the independent side: every document, folded -------------------------------------------

/// One request as its document says, with the fold's state.
struct Req {
    id: String,
    grid: String,
    category: String,
    created: i64,
    state: RequestState,
}

struct Visit {
    grid: String,
    target: Option<String>,
    at: i64,
}

fn documents(store: &Store) -> (Vec<Req>, Vec<Visit>) {
    let mut requests = Vec::new();
    let mut visits = Vec::new();
    for id in store.document_ids().unwrap() {
        match store.request(&id) {
            Ok(view) => {
                requests.push(Req {
                    id: view.header.id.clone(),
                    grid: view.header.grid.clone(),
                    category: view.body.category.clone(),
                    created: view.header.created_at.millis(),
                    state: view.state,
                });
                continue;
            }
            Err(CoreError::NotFound { .. }) => {}
            Err(e) => panic!("{id}: {e}"),
        }
        if let Ok(v) = store.visit(&id) {
            let target = match v.body.target {
                VisitTarget::Household { id } | VisitTarget::Enterprise { id } => Some(id),
                VisitTarget::Place { .. } => None,
            };
            visits.push(Visit { grid: v.header.grid, target, at: v.body.visited_at.millis() });
        }
    }
    (requests, visits)
}

/// The month of a moment in Asia/Shanghai, through the time zone database.
fn month_of(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).unwrap().with_timezone(&chrono_tz::Asia::Shanghai).format("%Y-%m").to_string()
}

fn resolved(r: &Req) -> bool {
    r.state.resolved_at.is_some()
}

fn holds(r: &Req, m: Measure, now: Timestamp) -> bool {
    let s = &r.state;
    let open_after_triage = matches!(s.status, Status::Accepted | Status::Assigned | Status::Reopened);
    let with_deadline = resolved(r) && s.deadline.is_some();
    match m {
        Measure::Total => true,
        Measure::Untriaged => s.status == Status::New,
        Measure::Handled => open_after_triage || resolved(r),
        Measure::Resolved => resolved(r),
        Measure::Unresolved => open_after_triage && !resolved(r),
        Measure::ResolvedWithDeadline => with_deadline,
        Measure::OnTime => with_deadline && s.resolved_at.unwrap() <= s.deadline.unwrap(),
        Measure::Late => with_deadline && s.resolved_at.unwrap() > s.deadline.unwrap(),
        Measure::Rated => s.rating.is_some(),
        Measure::Satisfied => matches!(s.rating, Some(Rating::Satisfied | Rating::Basically)),
        Measure::NotSatisfied => s.rating == Some(Rating::NotSatisfied),
        Measure::Overdue => s.is_overdue(now),
    }
}

fn expected_figures(rs: &[&Req], now: Timestamp) -> Figures {
    let n = |m| rs.iter().filter(|r| holds(r, m, now)).count() as i64;
    let rate = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
    Figures {
        total: n(Measure::Total),
        untriaged: n(Measure::Untriaged),
        handled: n(Measure::Handled),
        resolved: n(Measure::Resolved),
        unresolved: n(Measure::Unresolved),
        resolved_with_deadline: n(Measure::ResolvedWithDeadline),
        on_time: n(Measure::OnTime),
        late: n(Measure::Late),
        rated: n(Measure::Rated),
        satisfied: n(Measure::Satisfied),
        not_satisfied: n(Measure::NotSatisfied),
        overdue: n(Measure::Overdue),
        resolution_rate: rate(n(Measure::Resolved), n(Measure::Handled)),
        on_time_rate: rate(n(Measure::OnTime), n(Measure::ResolvedWithDeadline)),
        satisfaction_rate: rate(n(Measure::Satisfied), n(Measure::Rated)),
    }
}

/// The grids of a scope, from the reference tables.
fn grids_of(store: &Store, scope: &Scope) -> BTreeSet<String> {
    store
        .areas()
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == AreaKind::Grid)
        .filter(|a| match scope {
            Scope::All => true,
            Scope::Village(v) => a.parent.as_deref() == Some(v.as_str()),
            Scope::Grid(g) => &a.id == g,
        })
        .map(|a| a.id)
        .collect()
}

fn in_set<'a>(store: &Store, all: &'a [Req], q: &DashboardQuery) -> Vec<&'a Req> {
    let grids = grids_of(store, &q.scope);
    all.iter()
        .filter(|r| grids.contains(&r.grid))
        .filter(|r| q.from.is_none_or(|f| r.created >= f.millis()))
        .filter(|r| q.to.is_none_or(|t| r.created < t.millis()))
        .collect()
}

fn in_slice(r: &Req, slice: &Slice) -> bool {
    match slice {
        Slice::All => true,
        Slice::Category(c) => &r.category == c,
        Slice::Department(d) => &r.state.department == d,
        Slice::Grid(g) => &r.grid == g,
        Slice::Month(m) => &month_of(r.created) == m,
        Slice::ResolvedInMonth(m) => r.state.resolved_at.is_some_and(|t| &month_of(t.millis()) == m),
    }
}

/// The scopes and periods every test looks at: the street, a village, a household grid and an
/// enterprise grid; all time and a quarter; `now` at the end of the generated year, a month
/// later (more overdue, less coverage), and in the middle of a month inside the year, where open
/// requests have deadlines before now's month (counted), earlier in now's month (read as rows)
/// and after now (not overdue yet).
fn queries(store: &Store) -> Vec<DashboardQuery> {
    let areas = store.areas().unwrap();
    let village = areas.iter().find(|a| a.kind == AreaKind::Village).unwrap().id.clone();
    let grid = areas.iter().find(|a| a.kind == AreaKind::Grid && !a.enterprise_grid).unwrap().id.clone();
    let egrid = areas.iter().find(|a| a.kind == AreaKind::Grid && a.enterprise_grid).unwrap().id.clone();
    let from = Timestamp(Utc.with_ymd_and_hms(2026, 3, 31, 16, 0, 0).unwrap()); // 2026-04-01 CST
    let to = Timestamp(Utc.with_ymd_and_hms(2026, 6, 30, 16, 0, 0).unwrap()); // 2026-07-01 CST
                                                                              // Periods that do not start or end on a month's first moment: the dashboard counts whole
                                                                              // months from its running counts and the part-months at the ends from the rows.
    let ragged_from = Timestamp(Utc.with_ymd_and_hms(2026, 4, 15, 2, 0, 0).unwrap()); // 04-15 10:00 CST
    let ragged_to = Timestamp(Utc.with_ymd_and_hms(2026, 6, 19, 16, 0, 0).unwrap()); // 06-20 CST
    let within_from = Timestamp(Utc.with_ymd_and_hms(2026, 5, 3, 0, 0, 0).unwrap());
    let within_to = Timestamp(Utc.with_ymd_and_hms(2026, 5, 20, 0, 0, 0).unwrap());
    let periods = [
        (None, None),
        (Some(from), Some(to)),
        (Some(ragged_from), Some(ragged_to)),
        (Some(within_from), Some(within_to)),
        (Some(ragged_from), None),
        (None, Some(ragged_to)),
    ];
    let mut out = Vec::new();
    let mid_year = Utc.with_ymd_and_hms(2026, 6, 12, 3, 0, 0).unwrap();
    for now in [until(), until() + Duration::days(30), mid_year] {
        for scope in
            [Scope::All, Scope::Village(village.clone()), Scope::Grid(grid.clone()), Scope::Grid(egrid.clone())]
        {
            for (from, to) in periods {
                out.push(DashboardQuery { scope: scope.clone(), from, to, now: Timestamp(now) });
            }
        }
    }
    out
}

/// Every figure of the dashboard for `q` (headline, breakdowns, trend) equals a fold over the
/// documents of its set.
fn assert_dashboard_matches_the_fold(store: &Store, all: &[Req], q: &DashboardQuery) {
    let d = dashboard(store, q).unwrap();
    let set = in_set(store, all, q);
    let ctx = format!("{:?} from {:?} to {:?} now {:?}", q.scope, q.from, q.to, q.now);
    assert_eq!(d.figures, expected_figures(&set, q.now), "headline figures of {ctx}");

    let group = |key: &dyn Fn(&Req) -> Option<String>| {
        let mut m: BTreeMap<Option<String>, Vec<&Req>> = BTreeMap::new();
        for r in &set {
            m.entry(key(r)).or_default().push(r);
        }
        m.into_iter().map(|(k, rs)| (k, expected_figures(&rs, q.now))).collect::<Vec<_>>()
    };
    let got = |b: &[report::Breakdown]| b.iter().map(|x| (x.key.clone(), x.figures.clone())).collect::<Vec<_>>();
    assert_eq!(got(&d.by_category), group(&|r| Some(r.category.clone())), "by category, {ctx}");
    assert_eq!(got(&d.by_department), group(&|r| r.state.department.clone()), "by office, {ctx}");
    assert_eq!(got(&d.by_grid), group(&|r| Some(r.grid.clone())), "by grid, {ctx}");

    // The trend: every month something was raised or resolved in.
    let mut months: BTreeSet<String> = set.iter().map(|r| month_of(r.created)).collect();
    months.extend(set.iter().filter_map(|r| r.state.resolved_at.map(|t| month_of(t.millis()))));
    let expected: Vec<(String, Figures, i64)> = months
        .into_iter()
        .map(|m| {
            let raised: Vec<&Req> = set.iter().copied().filter(|r| month_of(r.created) == m).collect();
            let resolved_in = set.iter().filter(|r| in_slice(r, &Slice::ResolvedInMonth(m.clone()))).count() as i64;
            let f = expected_figures(&raised, q.now);
            (m, f, resolved_in)
        })
        .collect();
    let trend: Vec<(String, Figures, i64)> =
        d.by_month.iter().map(|p| (p.month.clone(), p.figures.clone(), p.resolved_in_month)).collect();
    assert_eq!(trend, expected, "monthly trend, {ctx}");

    // Labels are for people: Chinese category names, office and grid names.
    for b in &d.by_category {
        assert!(b.label.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{}", b.label);
    }
}

// ----- the tests -------------------------------------------------------------------------------
/// The requests as they stood at `at`: every one raised by then, folded from its events up to
/// then (by their device time), independently of the report's split between rows that did not
/// change since and rows folded again.
fn documents_as_of(store: &Store, at: Timestamp) -> Vec<Req> {
    let mut out = Vec::new();
    for id in store.document_ids().unwrap() {
        let Ok(view) = store.request(&id) else { continue };
        if view.header.created_at > at {
            continue;
        }
        let events: Vec<_> = view.history.iter().map(|h| h.event.clone()).filter(|e| e.at <= at).collect();
        let Some(state) = gridwalk_core::lifecycle::fold(&events) else { continue };
        out.push(Req {
            id: view.header.id.clone(),
            grid: view.header.grid.clone(),
            category: view.body.category.clone(),
            created: view.header.created_at.millis(),
            state,
        });
    }
    out
}

/// Issue 16: each KPI shows its change since last week and last month. The figures a week and
/// a month back (and at a moment mid-year) equal a fold of every document's events up to then,
/// for every scope and period; at `now` itself they equal the dashboard's.
#[test]
fn the_figures_a_week_and_a_month_ago_match_a_fold_of_the_events_up_to_then() {
    let (_dir, store) = town();
    let mut checked = 0;
    for q in queries(&store).into_iter().filter(|q| q.now == Timestamp(until())) {
        assert_eq!(report::figures_as_of(&store, &q, q.now).unwrap(), dashboard(&store, &q).unwrap().figures);
        let changes = report::kpi_changes(&store, &q).unwrap();
        let mid_year = Timestamp(Utc.with_ymd_and_hms(2026, 6, 12, 3, 0, 0).unwrap());
        // A week and a month back, the period moves back with now.
        let week_q = report::query_back(&q, report::WEEK_MS).unwrap();
        let month_q = report::query_back(&q, report::MONTH_MS).unwrap();
        assert_eq!((changes.week_ago.at, changes.month_ago.at), (week_q.now.millis(), month_q.now.millis()));
        for (then_q, got) in [
            (week_q, changes.week_ago.figures.clone()),
            (month_q, changes.month_ago.figures.clone()),
            (q.clone(), report::figures_as_of(&store, &q, mid_year).unwrap()),
        ] {
            let at = if then_q.now == q.now { mid_year } else { then_q.now };
            let then = documents_as_of(&store, at);
            let set = in_set(&store, &then, &then_q);
            assert_eq!(
                got,
                expected_figures(&set, at),
                "{:?} from {:?} to {:?} at {at:?}",
                then_q.scope,
                then_q.from,
                then_q.to
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * 6 * 3);
    // The town changed in its last month: the comparison is not trivially equal.
    let q = DashboardQuery::new(Scope::All, Timestamp(until()));
    let month_ago = report::kpi_changes(&store, &q).unwrap().month_ago.figures;
    let now = dashboard(&store, &q).unwrap().figures;
    assert!(month_ago.total < now.total && month_ago.resolved < now.resolved, "{month_ago:?} vs {now:?}");
}

#[test]
fn every_dashboard_figure_matches_a_fold_over_every_document() {
    let (_dir, store) = town();
    let (all, _) = documents(&store);
    assert_eq!(all.len(), 422, "the generated 420, the open one from September and the reopened one");
    // The running counts the dashboard reads, kept by triggers through every action the town's
    // generator took, equal counts rebuilt from the documents.
    let tally_rows: i64 =
        store.connection().query_row("SELECT COUNT(*) FROM request_tally WHERE total != 0", [], |r| r.get(0)).unwrap();
    assert!(tally_rows > 0);
    assert!(store.check().unwrap().index_matches_documents);
    for q in queries(&store) {
        assert_dashboard_matches_the_fold(&store, &all, &q);
    }

    // The town is not trivial: each figure has something to count and something to leave out.
    let q = DashboardQuery::new(Scope::All, Timestamp(until()));
    let f = dashboard(&store, &q).unwrap().figures;
    for (name, n, of) in [
        ("handled", f.handled, f.total),
        ("resolved", f.resolved, f.handled),
        ("on time", f.on_time, f.resolved_with_deadline),
        ("resolved with a deadline", f.resolved_with_deadline, f.resolved),
        ("satisfied", f.satisfied, f.rated),
        ("overdue", f.overdue, f.total),
    ] {
        assert!(n > 0 && n < of, "{name}: {n} of {of}");
    }
    assert!(f.late > 0 && f.not_satisfied > 0, "{f:?}");
}

/// A second hall PC's empty store beside the town's, in the same directory.
fn second_hall(dir: &tempfile::TempDir, file: &str) -> Store {
    Store::create(dir.path().join(file), Identity { device: "hall-pc-2".into(), walker: "hall-2".into() }).unwrap()
}

/// Copies the areas (each parent before its children) and the offices of `from` into `to`, as a
/// roster would bring them; the areas, in that order.
fn copy_reference_data(from: &Store, to: &Store) -> Vec<gridwalk_core::model::Area> {
    let mut areas = from.areas().unwrap();
    areas.sort_by_key(|a| match a.kind {
        AreaKind::Town => 0,
        AreaKind::Village => 1,
        AreaKind::Grid => 2,
        AreaKind::MicroGrid => 3,
    });
    for a in &areas {
        to.put_area(a).unwrap();
    }
    for d in from.departments().unwrap() {
        to.put_department(&d).unwrap();
    }
    areas
}

/// A village's running counts (schema 13) are those of the grids `areas` puts under it, however
/// the two arrive: here a device receives every document before the reference tables (a roster
/// synced after the requests), and then a grid moves to another village. Both villages' every
/// figure still equals the fold.
#[test]
fn a_village_counts_the_grids_it_holds_when_they_arrive_after_their_requests_or_move_to_another_village() {
    let (dir, store) = town();
    let (all, _) = documents(&store);
    let late = second_hall(&dir, "late.db");
    for id in store.document_ids().unwrap() {
        late.apply_remote(&id, &store.document_bytes(&id).unwrap()).unwrap();
    }
    let count_villages = |s: &Store| -> i64 {
        s.connection()
            .query_row("SELECT COUNT(*) FROM request_tally WHERE total != 0 AND area IN (SELECT id FROM areas WHERE kind = 'village')", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count_villages(&late), 0, "no village is known yet");
    let areas = copy_reference_data(&store, &late);
    assert!(count_villages(&late) > 0);
    assert_eq!(late.index_dump().unwrap(), store.index_dump().unwrap());
    assert!(late.check().unwrap().index_matches_documents);

    // A grid with requests moves from the first village to the second.
    let villages: Vec<String> = areas.iter().filter(|a| a.kind == AreaKind::Village).map(|a| a.id.clone()).collect();
    let mut moved = areas
        .iter()
        .find(|a| a.kind == AreaKind::Grid && a.parent.as_deref() == Some(villages[0].as_str()))
        .unwrap()
        .clone();
    assert!(all.iter().any(|r| r.grid == moved.id));
    moved.parent = Some(villages[1].clone());
    for s in [&store, &late] {
        s.put_area(&moved).unwrap();
        assert!(s.check().unwrap().index_matches_documents);
        for now in [until(), Utc.with_ymd_and_hms(2026, 6, 12, 3, 0, 0).unwrap()] {
            for v in &villages[..2] {
                let from = Timestamp(Utc.with_ymd_and_hms(2026, 3, 31, 16, 0, 0).unwrap());
                for (from, to) in [(None, None), (Some(from), None)] {
                    let q = DashboardQuery { scope: Scope::Village(v.clone()), from, to, now: Timestamp(now) };
                    assert_dashboard_matches_the_fold(s, &all, &q);
                }
            }
            assert_dashboard_matches_the_fold(s, &all, &DashboardQuery::new(Scope::All, Timestamp(now)));
        }
    }
    assert_eq!(late.index_dump().unwrap(), store.index_dump().unwrap());
}

/// A device's first pull counts its running counts once, set-wise, at its end instead of by
/// triggers row by row (schema 15): over a whole generated town, every count must come out
/// exactly as the triggers count it, and every dashboard as the fold over the documents.
#[test]
fn a_first_pull_counts_a_whole_town_at_its_end_exactly_as_the_triggers_count_it() {
    let (dir, store) = town();
    let (all, _) = documents(&store);
    let device = second_hall(&dir, "device.db");
    // The reference data first, as a hall PC set up from the same roster has it, so the
    // recount meets every grid's village.
    let areas = copy_reference_data(&store, &device);
    let page: Vec<PulledDoc> = store
        .document_ids()
        .unwrap()
        .into_iter()
        .map(|id| PulledDoc {
            bytes: store.document_bytes(&id).unwrap(),
            doc_id: id,
            snapshot: true,
            receipts: Vec::new(),
        })
        .collect();
    assert!(page.len() > 900);
    device.apply_pull_page(&page, "cursor-1").unwrap();
    let counted = |s: &Store| -> i64 {
        s.connection().query_row("SELECT COUNT(*) FROM request_tally WHERE total != 0", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(counted(&device), 0, "the counts wait for the pull's end");
    assert!(device.build_deferred_indexes().unwrap() > 0);
    assert!(counted(&device) > 100);
    assert_eq!(device.index_dump().unwrap(), store.index_dump().unwrap());
    assert!(device.check().unwrap().index_matches_documents);
    let villages: Vec<String> = areas.iter().filter(|a| a.kind == AreaKind::Village).map(|a| a.id.clone()).collect();
    for now in [until(), Utc.with_ymd_and_hms(2026, 6, 12, 3, 0, 0).unwrap()] {
        for v in &villages {
            assert_dashboard_matches_the_fold(
                &device,
                &all,
                &DashboardQuery::new(Scope::Village(v.clone()), Timestamp(now)),
            );
        }
        assert_dashboard_matches_the_fold(&device, &all, &DashboardQuery::new(Scope::All, Timestamp(now)));
    }
}

#[test]
fn every_figure_drills_down_to_exactly_the_requests_it_counts() {
    let (_dir, store) = town();
    let (all, _) = documents(&store);
    let qs = queries(&store);
    // The street over all time, a village over a quarter, and a grid a month later.
    for q in [&qs[0], &qs[3], &qs[12]] {
        let d = dashboard(&store, q).unwrap();
        let set = in_set(&store, &all, q);
        let mut slices: Vec<(Slice, Figures)> = vec![(Slice::All, d.figures.clone())];
        slices.extend(d.by_category.iter().map(|b| (Slice::Category(b.key.clone().unwrap()), b.figures.clone())));
        slices.extend(d.by_department.iter().map(|b| (Slice::Department(b.key.clone()), b.figures.clone())));
        slices.extend(d.by_grid.iter().map(|b| (Slice::Grid(b.key.clone().unwrap()), b.figures.clone())));
        slices.extend(d.by_month.iter().map(|p| (Slice::Month(p.month.clone()), p.figures.clone())));
        let mut checked = 0;
        for (slice, figures) in &slices {
            for m in ALL_MEASURES {
                let list = drill(&store, q, &Drill::Requests { measure: m, slice: slice.clone() }).unwrap();
                assert_eq!(list.kind, "request");
                let expected: BTreeSet<String> =
                    set.iter().filter(|r| in_slice(r, slice) && holds(r, m, q.now)).map(|r| r.id.clone()).collect();
                let got: BTreeSet<String> = list.ids.iter().cloned().collect();
                assert_eq!(got.len(), list.ids.len(), "no request twice");
                assert_eq!(got, expected, "{m:?} of {slice:?} in {:?}", q.scope);
                assert_eq!(list.ids.len() as i64, figures.get(m), "the figure {m:?} of {slice:?} counts its list");
                checked += 1;
            }
        }
        for p in &d.by_month {
            let list = drill(
                &store,
                q,
                &Drill::Requests { measure: Measure::Total, slice: Slice::ResolvedInMonth(p.month.clone()) },
            )
            .unwrap();
            assert_eq!(list.ids.len() as i64, p.resolved_in_month, "resolved in {}", p.month);
            let expected: BTreeSet<String> = set
                .iter()
                .filter(|r| in_slice(r, &Slice::ResolvedInMonth(p.month.clone())))
                .map(|r| r.id.clone())
                .collect();
            assert_eq!(list.ids.into_iter().collect::<BTreeSet<_>>(), expected);
        }
        assert!(checked > 100);
    }
}

#[test]
fn visit_coverage_counts_and_lists_what_was_not_walked_within_14_days() {
    let (_dir, store) = town();
    let (_, visits) = documents(&store);
    let mut last: HashMap<String, i64> = HashMap::new();
    for v in &visits {
        for key in std::iter::once(format!("grid:{}", v.grid)).chain(v.target.iter().map(|t| format!("place:{t}"))) {
            let e = last.entry(key).or_insert(v.at);
            *e = (*e).max(v.at);
        }
    }
    let areas = store.areas().unwrap();
    let mut seen_stale_grid = false;
    for q in queries(&store) {
        let since = q.now.millis() - 14 * 86_400_000;
        let stale = |key: String| last.get(&key).is_none_or(|&t| t < since);
        let grids = grids_of(&store, &q.scope);
        let grid_areas: Vec<_> = areas.iter().filter(|a| grids.contains(&a.id)).collect();
        let hh: Vec<String> = grids.iter().flat_map(|g| store.households(g).unwrap()).map(|h| h.id).collect();
        let ent: Vec<String> = grids.iter().flat_map(|g| store.enterprises(g).unwrap()).map(|e| e.id).collect();

        let expect_grids = |enterprise: bool| -> BTreeSet<String> {
            grid_areas
                .iter()
                .filter(|a| a.enterprise_grid == enterprise && stale(format!("grid:{}", a.id)))
                .map(|a| a.id.clone())
                .collect()
        };
        let expect_places = |ids: &[String]| -> BTreeSet<String> {
            ids.iter().filter(|id| stale(format!("place:{id}"))).cloned().collect()
        };

        let c = dashboard(&store, &q).unwrap().coverage;
        let ctx = format!("{:?} now {:?}", q.scope, q.now);
        assert_eq!(c.days, 14);
        assert_eq!(c.grids, grid_areas.iter().filter(|a| !a.enterprise_grid).count() as i64, "{ctx}");
        assert_eq!(c.enterprise_grids, grid_areas.iter().filter(|a| a.enterprise_grid).count() as i64, "{ctx}");
        assert_eq!(c.households, hh.len() as i64, "{ctx}");
        assert_eq!(c.enterprises, ent.len() as i64, "{ctx}");
        for (what, count, expected) in [
            (Drill::GridsNotWalked, c.grids_not_walked, expect_grids(false)),
            (Drill::EnterpriseGridsNotWalked, c.enterprise_grids_not_walked, expect_grids(true)),
            (Drill::HouseholdsNotVisited, c.households_not_visited, expect_places(&hh)),
            (Drill::EnterprisesNotVisited, c.enterprises_not_visited, expect_places(&ent)),
        ] {
            let list = drill(&store, &q, &what).unwrap();
            assert_eq!(count, expected.len() as i64, "{what:?}, {ctx}");
            assert_eq!(list.ids.iter().cloned().collect::<BTreeSet<_>>(), expected, "{what:?}, {ctx}");
        }
        seen_stale_grid |= c.grids_not_walked > 0 && c.grids_not_walked < c.grids;
        if matches!(q.scope, Scope::All) && q.now == Timestamp(until()) {
            assert!(c.households_not_visited > 0 && c.households_not_visited < c.households, "{c:?}");
        }
    }
    assert!(seen_stale_grid, "some scope has both walked and unwalked grids");
}

fn expected_completion(r: &Req, now: Timestamp) -> Completion {
    let s = &r.state;
    if resolved(r) {
        Completion::Resolved
    } else if s.is_overdue(now) {
        Completion::Overdue
    } else {
        match s.status {
            Status::New => Completion::Untriaged,
            Status::Accepted | Status::Assigned | Status::Reopened => Completion::InProgress,
            Status::Rejected => Completion::Rejected,
            Status::Merged => Completion::Merged,
            _ => Completion::ClosedUnresolved,
        }
    }
}

#[test]
fn the_monthly_list_has_every_request_of_the_month_classified() {
    let (_dir, store) = town();
    let (all, _) = documents(&store);
    let areas: HashMap<String, gridwalk_core::model::Area> =
        store.areas().unwrap().into_iter().map(|a| (a.id.clone(), a)).collect();
    let departments: HashMap<String, String> =
        store.departments().unwrap().into_iter().map(|d| (d.id, d.name)).collect();
    let now = Timestamp(until());
    let month = Month::parse("2026-10").unwrap();
    let village = areas.values().filter(|a| a.kind == AreaKind::Village).map(|a| a.id.clone()).min().unwrap();
    let grid =
        areas.values().filter(|a| a.kind == AreaKind::Grid && !a.enterprise_grid).map(|a| a.id.clone()).min().unwrap();
    for scope in [Scope::All, Scope::Village(village), Scope::Grid(grid)] {
        let list = monthly_list(&store, &scope, month, now).unwrap();
        let grids = grids_of(&store, &scope);
        let expected: Vec<&Req> =
            all.iter().filter(|r| grids.contains(&r.grid) && month_of(r.created) == "2026-10").collect();
        // What a service day works through besides: every request of an earlier month still open.
        let carried: Vec<&Req> = all
            .iter()
            .filter(|r| grids.contains(&r.grid) && month_of(r.created).as_str() < "2026-10" && r.state.status.is_open())
            .collect();
        assert!(!expected.is_empty());
        assert!(!carried.is_empty(), "{scope:?}: the town has open requests from earlier months");
        assert_eq!(list.rows.len(), expected.len() + carried.len(), "{scope:?}");
        assert_eq!(list.rows.iter().filter(|r| r.carried_over).count(), carried.len(), "{scope:?}");
        assert_eq!(list.total.carried_over, carried.len() as i64);
        let by_id: HashMap<&str, &Req> = expected.iter().chain(&carried).map(|r| (r.id.as_str(), *r)).collect();
        for row in &list.rows {
            let r = by_id.get(row.id.as_str()).unwrap_or_else(|| panic!("{} is not of the month", row.id));
            let grid = &areas[&r.grid];
            assert_eq!(row.grid, r.grid);
            assert_eq!(row.grid_name, grid.name);
            let village = grid.parent.as_ref().map(|p| &areas[p]).filter(|p| p.kind == AreaKind::Village);
            assert_eq!(row.village, village.map(|v| v.id.clone()));
            assert_eq!(row.village_name, village.map(|v| v.name.clone()).unwrap_or_default());
            let view = store.request(&r.id).unwrap();
            assert_eq!(row.micro_grid, view.body.micro_grid);
            assert_eq!(
                row.micro_grid_name,
                view.body.micro_grid.as_ref().map(|m| areas[m].name.clone()).unwrap_or_default()
            );
            assert_eq!(row.category, r.category);
            assert_eq!(row.category_name, gridwalk_core::model::category(&r.category).unwrap().zh);
            assert_eq!(row.department, r.state.department);
            assert_eq!(
                row.department_name,
                r.state.department.as_ref().map(|d| departments[d].clone()).unwrap_or_default()
            );
            assert_eq!(row.deadline, r.state.deadline.map(|d| d.millis()));
            assert_eq!(row.level.as_deref(), r.state.level.map(|l| l.as_str()));
            assert_eq!(row.status, r.state.status.as_str());
            assert_eq!(row.completion, expected_completion(r, now), "{}", row.id);
            assert_eq!(row.resolved_at, r.state.resolved_at.map(|t| t.millis()));
            assert_eq!(row.carried_over, month_of(r.created) != "2026-10", "{}", row.id);
        }
        // Grouped by grid, oldest first within a grid.
        let mut seen = BTreeSet::new();
        for w in list.rows.windows(2) {
            if w[0].grid != w[1].grid {
                assert!(seen.insert(w[0].grid.clone()), "grid {} comes back", w[0].grid);
            } else {
                assert!(w[0].created_at <= w[1].created_at);
            }
        }
        // One summary line per grid of the scope; the lines add up to the total.
        assert_eq!(list.grids.iter().map(|g| g.grid.clone()).collect::<BTreeSet<_>>(), grids);
        for g in &list.grids {
            let mine: Vec<&&Req> = expected.iter().filter(|r| r.grid == g.grid).collect();
            let count = |c: Completion| mine.iter().filter(|r| expected_completion(r, now) == c).count() as i64;
            assert_eq!(g.total, mine.len() as i64);
            assert_eq!(g.resolved, count(Completion::Resolved));
            assert_eq!(g.in_progress, count(Completion::InProgress));
            assert_eq!(g.overdue, count(Completion::Overdue));
            assert_eq!(g.untriaged, count(Completion::Untriaged));
            assert_eq!(g.carried_over, carried.iter().filter(|r| r.grid == g.grid).count() as i64);
        }
        assert_eq!(list.total.total, expected.len() as i64);
        assert_eq!(list.total.resolved, list.grids.iter().map(|g| g.resolved).sum::<i64>());
    }
    assert!(matches!(Month::parse("2026-13"), Err(CoreError::InvalidInput { .. })));
    assert_eq!(Month::parse("2026年9月").unwrap().key(), "2026-09");
}

fn text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Empty => String::new(),
        other => other.to_string(),
    }
}

#[test]
fn the_monthly_xlsx_has_a_summary_and_a_sheet_per_grid_with_chinese_intact() {
    let (dir, store) = town();
    let now = Timestamp(until());
    let list = monthly_list(&store, &Scope::All, Month::parse("2026-10").unwrap(), now).unwrap();
    let path = dir.path().join("清单-2026-10.xlsx");
    let report = write_monthly_xlsx(&list, &path).unwrap();
    assert_eq!(report.requests, list.rows.len());

    let mut book: Xlsx<_> = open_workbook(&path).unwrap();
    let names = book.sheet_names().to_vec();
    let grids_with_requests: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for r in &list.rows {
            if v.last() != Some(&r.grid_name) {
                v.push(r.grid_name.clone());
            }
        }
        v
    };
    let mut expected_names = vec!["汇总".to_string()];
    expected_names.extend(grids_with_requests.iter().cloned());
    assert_eq!(names, expected_names);
    assert_eq!(report.sheets, expected_names);
    assert!(names.iter().skip(1).all(|n| n.contains("网格")), "{names:?}");

    // The summary: title, headers, a line per grid of the street, then the total.
    let summary = book.worksheet_range("汇总").unwrap();
    let rows: Vec<Vec<String>> = summary.rows().map(|r| r.iter().map(text).collect()).collect();
    assert!(
        rows[0][0].contains("曹桥街道") && rows[0][0].contains("2026年10月") && rows[0][0].contains("驻网办事清单")
    );
    assert_eq!(rows[1], report::SUMMARY_HEADERS.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(rows.len(), 2 + list.grids.len() + 1);
    for (row, g) in rows[2..].iter().zip(&list.grids) {
        assert_eq!(row[1], g.grid_name);
        assert_eq!(row[2], g.total.to_string());
        assert_eq!(row[3], g.resolved.to_string());
    }
    let last = rows.last().unwrap();
    assert_eq!(last[1], "合计");
    assert_eq!(last[2], list.total.total.to_string());
    assert_eq!(last[9], list.total.carried_over.to_string());

    // Each grid's sheet: its requests (carried-over ones marked), 17 columns, Chinese as written.
    let mut total_rows = 0;
    for name in &names[1..] {
        let range = book.worksheet_range(name).unwrap();
        let rows: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(text).collect()).collect();
        assert!(
            rows[0][0].contains(name.as_str()) && rows[0][0].ends_with("2026年10月 驻网办事清单"),
            "{}",
            rows[0][0]
        );
        assert_eq!(rows[1].len(), 17);
        assert_eq!(rows[1][0], "序号");
        assert_eq!(rows[1][5], "诉求类别");
        assert_eq!(rows[1][9], "责任科室");
        assert_eq!(rows[1][15], "完成情况");
        let mine: Vec<_> = list.rows.iter().filter(|r| &r.grid_name == name).collect();
        assert_eq!(rows.len() - 2, mine.len(), "{name}");
        for (i, (row, r)) in rows[2..].iter().zip(&mine).enumerate() {
            assert_eq!(row[0], (i + 1).to_string());
            // The number people read, never the uuid (the demo town's requests all have one).
            assert_eq!(Some(&row[1]), r.number.as_ref(), "{}", r.id);
            assert_eq!(row[3], r.grid_name);
            assert_eq!(row[4], r.micro_grid_name);
            assert_eq!(row[5], r.category_name);
            assert_eq!(row[6], r.description);
            assert_eq!(row[7], r.address);
            assert_eq!(row[9], r.department_name);
            assert_eq!(row[14], r.status_name);
            assert_eq!(row[15], r.completion_name);
            assert_eq!(row[16], if r.carried_over { "是" } else { "" });
        }
        total_rows += mine.len();
    }
    assert_eq!(total_rows, list.rows.len());
    // Nothing half-written is left beside it.
    assert!(!dir.path().join("清单-2026-10.xlsx.partial").exists());
}

#[test]
fn unknown_scopes_and_empty_periods_are_refused() {
    let (_dir, store) = town();
    let now = Timestamp(until());
    assert!(matches!(
        dashboard(&store, &DashboardQuery::new(Scope::Grid("nope".into()), now)),
        Err(CoreError::UnknownGrid(_))
    ));
    assert!(matches!(
        dashboard(&store, &DashboardQuery::new(Scope::Village("v01-g01".into()), now)),
        Err(CoreError::NotFound { kind: "village", .. })
    ));
    let q = DashboardQuery { scope: Scope::All, from: Some(now), to: Some(now), now };
    assert!(matches!(dashboard(&store, &q), Err(CoreError::InvalidInput { .. })));
}

/// The definitions on seven requests whose figures are known by hand: closing a rejected request
/// does not make it resolved, a "not satisfied" rating takes a resolution back, a request solved
/// on the spot is resolved without a deadline, and one waiting for triage is not yet handled.
#[test]
fn the_definitions_hold_on_a_hand_made_grid() {
    use gridwalk_core::docs::{Reporter, Source, Urgency};
    use gridwalk_core::model::{Area, Department, Level};
    use gridwalk_core::store::NewRequest;

    let t = |day: i64| Timestamp(Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0).unwrap() + Duration::days(day));
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::create(dir.path().join("s.db"), Identity { device: "hall-pc".into(), walker: "hall-1".into() }).unwrap();
    for (id, kind, parent) in [
        ("street", AreaKind::Town, None),
        ("v1", AreaKind::Village, Some("street")),
        ("g1", AreaKind::Grid, Some("v1")),
    ] {
        store
            .put_area(&Area {
                id: id.into(),
                kind,
                name: format!("{id}名"),
                parent: parent.map(Into::into),
                enterprise_grid: false,
            })
            .unwrap();
    }
    store.put_department(&Department { id: "dept-urban".into(), name: "城建办".into(), level: Level::Town }).unwrap();
    let raise = |day: i64| {
        store
            .raise_request(
                &store.context(t(day)),
                NewRequest {
                    id: None,
                    grid: "g1".into(),
                    micro_grid: None,
                    reporter: Reporter::Anonymous,
                    address: "马厩村第3组".into(),
                    gps: None,
                    category: "streetlight".into(),
                    description: "村道路灯不亮".into(),
                    urgency: Urgency::Normal,
                    source: Source::WalkIn,
                    visit: None,
                },
            )
            .unwrap()
    };
    let act = |id: &str, day: i64, action: Action| {
        store.act(&store.context(t(day)), id, action).unwrap();
    };
    let assign = |id: &str, day: i64, deadline_day: i64| {
        act(id, day, Action::Triaged { decision: TriageDecision::Accept });
        let assignment =
            Assignment { department: "dept-urban".into(), person: None, deadline: t(deadline_day), level: Level::Town };
        act(id, day, Action::Assigned { assignment });
    };
    let resolve = |id: &str, day: i64| act(id, day, Action::Resolved { note: "已修复".into(), photos: vec![] });
    let rate = |id: &str, day: i64, rating: Rating| act(id, day, Action::Rated { rating, comment: String::new() });

    let on_time = raise(0);
    assign(&on_time, 1, 10);
    resolve(&on_time, 5);
    rate(&on_time, 6, Rating::Satisfied);
    let late = raise(0);
    assign(&late, 1, 3);
    resolve(&late, 8);
    rate(&late, 9, Rating::Basically);
    let on_spot = raise(1);
    act(&on_spot, 1, Action::Triaged { decision: TriageDecision::SolvedOnSpot { note: "当场解决".into() } });
    rate(&on_spot, 2, Rating::NotSatisfied);
    let rejected = raise(2);
    act(&rejected, 2, Action::Triaged { decision: TriageDecision::Reject { reason: "不属于受理范围".into() } });
    act(&rejected, 3, Action::Closed { note: "归档".into() });
    let merged = raise(2);
    act(&merged, 2, Action::Triaged { decision: TriageDecision::MergeInto { target: on_time.clone() } });
    let overdue = raise(3);
    assign(&overdue, 3, 4);
    let untriaged = raise(4);

    let q = DashboardQuery::new(Scope::Grid("g1".into()), t(20));
    let f = dashboard(&store, &q).unwrap().figures;
    assert_eq!(
        (f.total, f.untriaged, f.handled, f.resolved, f.unresolved, f.resolved_with_deadline, f.on_time, f.late),
        (7, 1, 4, 2, 2, 2, 1, 1),
        "{f:?}"
    );
    assert_eq!((f.rated, f.satisfied, f.not_satisfied, f.overdue), (3, 2, 1, 1), "{f:?}");
    assert_eq!((f.resolution_rate, f.on_time_rate), (Some(0.5), Some(0.5)));
    assert_eq!(f.satisfaction_rate, Some(2.0 / 3.0));
    let ids = |m: Measure| {
        let mut v = drill(&store, &q, &Drill::Requests { measure: m, slice: Slice::All }).unwrap().ids;
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(ids(Measure::Handled), sorted(vec![on_time.clone(), late.clone(), on_spot.clone(), overdue.clone()]));
    assert_eq!(ids(Measure::Resolved), sorted(vec![on_time.clone(), late.clone()]));
    assert_eq!(ids(Measure::Overdue), vec![overdue.clone()]);
    assert_eq!(ids(Measure::Untriaged), vec![untriaged.clone()]);

    let list = monthly_list(&store, &Scope::Village("v1".into()), Month::parse("2026-10").unwrap(), t(20)).unwrap();
    let completion: HashMap<String, Completion> = list.rows.iter().map(|r| (r.id.clone(), r.completion)).collect();
    assert_eq!(completion[&on_time], Completion::Resolved);
    assert_eq!(completion[&on_spot], Completion::InProgress);
    assert_eq!(completion[&rejected], Completion::ClosedUnresolved);
    assert_eq!(completion[&merged], Completion::Merged);
    assert_eq!(completion[&overdue], Completion::Overdue);
    assert_eq!(completion[&untriaged], Completion::Untriaged);
    assert_eq!(list.total.resolution_rate, Some(0.5));
    // A month with nothing in it is an empty list, not an error.
    let empty = monthly_list(&store, &Scope::All, Month::parse("2026-09").unwrap(), t(20)).unwrap();
    assert!(empty.rows.is_empty() && empty.grids.len() == 1 && empty.total.total == 0);
}

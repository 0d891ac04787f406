//! Sync (issue 3): our relay and sync client over real loopback, side by side in one run with
//! samod (the Rust automerge-repo) on the same documents.
//!
//! * P1, the hall burst: N devices (30), each back from a day offline with its own visits,
//!   requests and lifecycle edits, all start syncing at once; the clock stops when every device
//!   holds every document of the grid at its final heads. Goals: at least 10× faster than samod,
//!   and bytes on the wire at most 1.2× the payload.
//! * P2: a new device pulls 100k documents. Goals: at most 2× reading the same saved bytes from a
//!   local SQLite file and loading each with Automerge, and a peak resident set of at most 200 MB.
//! * P3: a sync with nothing to do, right after P2. Goals: at most 2 KB on the wire and at most
//!   2× a bare `GET /health` round trip.
//!
//! How it is measured, and why:
//! - Our relay is the real `gridwalk-relay` binary in its own process, and the pulling device of
//!   P2 is the real `gridwalk` CLI in its own process, both found next to this binary, so a
//!   release run measures release builds. The P1 devices are threads of this process, each with
//!   its own store file, calling the same `client::sync_over_http` the app calls.
//! - samod runs in this process on a tokio runtime with in-memory storage: its server accepts
//!   axum websockets, its devices dial them with tokio-tungstenite. Both systems get the same
//!   documents: each device's day of work is taken from its outbox, as saved Automerge bytes,
//!   and loaded into samod documents.
//! - Every byte of both systems passes through the same counting TCP proxy in this process, so
//!   "on the wire" includes HTTP headers and websocket framing alike, and both pay the same hop.
//! - P1 rounds alternate between the two systems, so drift hits both alike.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use automerge::{AutoCommit, Automerge, ChangeHash};
use chrono::{DateTime, TimeZone, Utc};
use futures::{SinkExt, StreamExt};
use gridwalk_core::demo::{self, DemoConfig};
use gridwalk_core::docs::{self as core_docs, GeoPoint, Reporter, Source, Urgency, VisitKind, VisitTarget};
use gridwalk_core::lifecycle::{self, Action, Assignment, Rating, TriageDecision};
use gridwalk_core::model::{Area, AreaKind, Department, Household, Level};
use gridwalk_core::store::{Identity, NewRequest, NewVisit, RequestFilter, LATEST_VERSION};
use gridwalk_core::{Store, Timestamp};
use gridwalk_transport::client;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{Connection, OpenFlags};
use samod::{BackoffConfig, DialError, Dialer, DocumentId, PeerId, Repo, RepoEvent, RepoObserver, Transport};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// The one grid of P1. Every device is a walker of it, so every document must reach every
/// device: the largest fan-out a burst can have, the same as if every device were the hall's.
const GRID: &str = "g1";

/// Bump when the P2 data this benchmark generates changes shape, so that a kept copy of an older
/// shape is not reused by mistake.
const P2_SHAPE: u32 = 1;

#[derive(clap::Args)]
pub struct Args {
    /// P1: devices syncing at once.
    #[arg(long, default_value_t = 30)]
    devices: usize,
    /// P1: visits each device recorded during its day.
    #[arg(long, default_value_t = 40)]
    visits: usize,
    /// P1: requests each device raised during its day.
    #[arg(long, default_value_t = 12)]
    requests: usize,
    /// P1: lifecycle edits each device made during its day, on the grid's older requests and its
    /// own new ones.
    #[arg(long, default_value_t = 15)]
    edits: usize,
    /// P1: requests the grid already had before the day, held by every device and the relay.
    #[arg(long, default_value_t = 100)]
    history: usize,
    /// P1: timed rounds of ours; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// P1: timed rounds of samod, interleaved with ours (at full size one takes many minutes).
    #[arg(long, default_value_t = 1)]
    samod_rounds: usize,
    /// P1: how long one of our devices waits before syncing again when its last sync may have
    /// missed a later device's push (our protocol is pull-based; samod's server pushes).
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// P2: documents the new device pulls.
    #[arg(long, default_value_t = 100_000)]
    docs: usize,
    /// P2: timed pulls (each by a newly enrolled device), each paired with a baseline run.
    #[arg(long, default_value_t = 3)]
    pulls: usize,
    /// P3: no-op syncs, each paired with a bare /health round trip.
    #[arg(long, default_value_t = 31)]
    noop_runs: usize,
    #[arg(long, default_value_t = 3)]
    seed: u64,
    /// Which scenarios to run: p1, p2 (P3 runs right after P2, on its device).
    #[arg(long, value_delimiter = ',', default_value = "p1,p2")]
    scenarios: Vec<String>,
    /// Give up on a samod round that has not converged after this many seconds.
    #[arg(long, default_value_t = 3600)]
    samod_timeout_s: u64,
    /// A few devices and few documents, to check in CI that the benchmark works; the figures
    /// mean little then.
    #[arg(long)]
    smoke: bool,
    /// Keep the generated P2 relay data and baseline SQLite file here and reuse them on the next
    /// run with the same document count and seed. Each run works on a copy.
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// Internal: run this command (a JSON array: program, then arguments) and print its wall
    /// time, peak resident set and CPU time. See `measured`.
    #[arg(long, hide = true)]
    rss_of: Option<String>,
    /// Internal: the P2 baseline. Read every document's saved bytes from this SQLite file and
    /// load each with Automerge.
    #[arg(long, hide = true)]
    child_load: Option<PathBuf>,
}

/// The arguments once `--smoke` has shrunk them.
struct Cfg {
    devices: usize,
    visits: usize,
    requests: usize,
    edits: usize,
    history: usize,
    rounds: usize,
    samod_rounds: usize,
    poll: Duration,
    docs: usize,
    pulls: usize,
    noop_runs: usize,
    seed: u64,
    samod_timeout: Duration,
    smoke: bool,
}

impl Cfg {
    fn from(args: &Args) -> Cfg {
        let mut cfg = Cfg {
            devices: args.devices,
            visits: args.visits,
            requests: args.requests,
            edits: args.edits,
            history: args.history,
            rounds: args.rounds,
            samod_rounds: args.samod_rounds.min(args.rounds),
            poll: Duration::from_millis(args.poll_ms),
            docs: args.docs,
            pulls: args.pulls,
            noop_runs: args.noop_runs,
            seed: args.seed,
            samod_timeout: Duration::from_secs(args.samod_timeout_s),
            smoke: args.smoke,
        };
        if args.smoke {
            cfg.devices = 3;
            cfg.visits = 6;
            cfg.requests = 3;
            cfg.edits = 4;
            cfg.history = 6;
            cfg.rounds = 1;
            cfg.samod_rounds = 1;
            cfg.docs = 320;
            cfg.pulls = 1;
            cfg.noop_runs = 5;
            cfg.samod_timeout = Duration::from_secs(60);
        }
        cfg
    }
}

pub fn run(args: &Args) -> anyhow::Result<Value> {
    if let Some(command) = &args.rss_of {
        return probe(command);
    }
    if let Some(file) = &args.child_load {
        return load_every_document(file);
    }
    let cfg = Cfg::from(args);
    ensure!(cfg.devices >= 2, "--devices must be at least 2: a burst needs someone to sync with");
    ensure!(
        cfg.rounds >= 1 && cfg.samod_rounds >= 1 && cfg.pulls >= 1 && cfg.noop_runs >= 1,
        "--rounds, --samod-rounds, --pulls and --noop-runs must be at least 1"
    );
    for s in &args.scenarios {
        ensure!(s == "p1" || s == "p2", "unknown scenario '{s}': choose from p1, p2 (P3 runs with P2)");
    }
    let relay_bin = sibling("gridwalk-relay")?;
    let cli_bin = sibling("gridwalk")?;
    let work = tempfile::Builder::new().prefix("gridwalk-sync-bench").tempdir()?;
    if let Some(dir) = &args.keep_dir {
        std::fs::create_dir_all(dir)?;
    }
    // The proxy's runtime: two workers, as many as the machine has cores. samod runs on a runtime
    // of its own per round (see `p1`).
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let proxy = Proxy::start(&rt)?;

    let mut report = json!({
        "benchmark": "sync (issue 3): gridwalk relay + client against samod 0.16 over loopback",
        "mode": if cfg.smoke { "smoke: tiny sizes, the figures mean little" } else { "full" },
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "work_dir": work.path().display().to_string(),
        "load_average_at_start": load_average(),
        "wire": "every byte of both directions through a counting TCP proxy in front of the server: HTTP headers and bodies for ours, the websocket upgrade and frames for samod",
    });
    if args.scenarios.iter().any(|s| s == "p1") {
        report["p1_hall_burst"] = p1(&cfg, &proxy, &relay_bin, work.path())?;
    }
    if args.scenarios.iter().any(|s| s == "p2") {
        let (p2, p3) = p2_and_p3(&cfg, &proxy, &relay_bin, &cli_bin, work.path(), args.keep_dir.as_deref())?;
        report["p2_new_device_pull"] = p2;
        report["p3_noop_sync"] = p3;
    }
    rt.shutdown_timeout(Duration::from_secs(10));
    report["load_average_at_end"] = json!(load_average());
    Ok(report)
}

// ----- P1: the hall burst ----------------------------------------------------------------------

/// Everything the rounds of P1 start from: a relay that holds the grid's history, and device
/// stores that hold it too plus a day of offline work each.
struct P1Template {
    relay_dir: PathBuf,
    device_files: Vec<PathBuf>,
    /// The grid's older documents as every device and the relay hold them (saved bytes).
    history: Vec<(String, Vec<u8>)>,
    /// Per device, its outbox: (document, Automerge chunk) in the order they were written.
    outboxes: Vec<Vec<(String, Vec<u8>)>>,
    /// Every document's sorted heads once everyone has everything.
    expected: BTreeMap<String, Vec<ChangeHash>>,
    /// Per device, the bytes of the new Automerge changes it made (each change's raw chunk).
    new_change_bytes: Vec<u64>,
    /// The same changes, each compressed as Automerge compresses a change chunk on its own.
    new_change_bytes_compressed: u64,
    new_changes: usize,
    edits_made: usize,
}

fn p1(cfg: &Cfg, proxy: &Proxy, relay_bin: &Path, work: &Path) -> anyhow::Result<Value> {
    let setup_started = Instant::now();
    let template = p1_template(cfg, proxy, relay_bin, work)?;
    let setup_seconds = setup_started.elapsed().as_secs_f64();
    eprintln!("p1: set up {} devices in {setup_seconds:.1} s", cfg.devices);

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..cfg.rounds {
        // Alternate which system goes first, so neither always runs on a warmer machine.
        let mut run_ours = || -> anyhow::Result<()> {
            let r = p1_ours_round(cfg, &template, proxy, relay_bin, work, round)?;
            eprintln!("p1 round {round}: gridwalk converged in {:.0} ms", r.ms);
            ours.push(r);
            Ok(())
        };
        if round % 2 == 0 {
            run_ours()?;
        }
        if round < cfg.samod_rounds {
            // Each samod round runs on a runtime of its own, so a round stopped at its time
            // limit can be torn down whole: nothing of it keeps running into the next round.
            let samod_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let r = samod_rt.block_on(p1_samod_round(cfg, &template, proxy));
            samod_rt.shutdown_timeout(Duration::from_secs(10));
            let r = r?;
            eprintln!(
                "p1 round {round}: samod {} in {:.0} ms",
                if r.finished { "converged" } else { "was stopped unconverged" },
                r.ms
            );
            theirs.push(r);
        }
        if round % 2 == 1 {
            run_ours()?;
        }
    }

    let n = cfg.devices as u64;
    let up_total: u64 = template.new_change_bytes.iter().sum();
    // Each device's new changes go up once and come down to every other device once.
    let payload = up_total * n;
    let ours_ms = median(ours.iter().map(|r| r.ms).collect());
    let theirs_ms = median(theirs.iter().map(|r| r.ms).collect());
    let ours_wire = median(ours.iter().map(|r| r.wire.total() as f64).collect());
    let theirs_wire = median(theirs.iter().map(|r| r.wire.total() as f64).collect());
    let edited_history: BTreeSet<&str> = template
        .outboxes
        .iter()
        .flatten()
        .map(|(id, _)| id.as_str())
        .filter(|id| template.history.iter().any(|(h, _)| h == id))
        .collect();
    Ok(json!({
        "what": "every device starts syncing at once; the clock stops when every device holds every document of the grid at its final heads (checked against heads computed independently by merging every device's changes)",
        "setup": {
            "devices": cfg.devices,
            "scope": format!("every device is a walker of the one grid {GRID}: every document must reach every device, as for hall devices"),
            "per_device": { "visits": cfg.visits, "requests": cfg.requests, "edits": cfg.edits },
            "edits_made": template.edits_made,
            "history_requests": cfg.history,
            "documents_in_grid": template.expected.len(),
            "history_documents_edited_today": edited_history.len(),
            "new_changes": template.new_changes,
            "rounds": { "gridwalk": cfg.rounds, "samod": cfg.samod_rounds },
            "setup_seconds": round2(setup_seconds),
        },
        "payload": {
            "definition": "the raw bytes of every Automerge change made during the day (each change as its own uncompressed change chunk, the form Automerge's sync messages carry and its hashes cover), counted once for its trip up to the server and once for each of the other devices it must reach: new_change_bytes × devices",
            "new_change_bytes": up_total,
            "bytes": payload,
            "compressed_alternative": {
                "definition": "the same, with each change deflated on its own as Automerge does for a stored change chunk",
                "new_change_bytes": template.new_change_bytes_compressed,
                "bytes": template.new_change_bytes_compressed * n,
                "gridwalk_wire_over_it": round3(ours_wire / (template.new_change_bytes_compressed * n) as f64),
            },
        },
        "gridwalk": {
            "how": format!("the gridwalk-relay process; each device a thread calling client::sync_over_http on its own store file: push, then pull; a device whose sync may have started before the last device's push was durable syncs again after {} ms", cfg.poll.as_millis()),
            "converge_ms": ours.iter().map(|r| round2(r.ms)).collect::<Vec<_>>(),
            "median_ms": round2(ours_ms),
            "wire_bytes": ours.iter().map(|r| r.wire.to_json()).collect::<Vec<_>>(),
            "median_wire_bytes": ours_wire,
            "wire_over_payload": round3(ours_wire / payload as f64),
            "rounds_detail": ours.iter().map(|r| r.extra.clone()).collect::<Vec<_>>(),
        },
        "samod": {
            "how": "samod 0.16 in this process (tokio, in-memory storage): an axum websocket server repo holding the grid's history; each device a repo that synced the history before the day, made the same day of work offline (the same Automerge bytes), then dials the server; every device is told every document id, waits until the server has announced each one to it (its observer's DocumentOpened), finds it and follows changes() until it has the final heads",
            "converge_ms": theirs.iter().map(|r| round2(r.ms)).collect::<Vec<_>>(),
            "median_ms": round2(theirs_ms),
            "wire_bytes": theirs.iter().map(|r| r.wire.to_json()).collect::<Vec<_>>(),
            "median_wire_bytes": theirs_wire,
            "wire_over_payload": round3(theirs_wire / payload as f64),
            "finished": theirs.iter().all(|r| r.finished),
            "rounds_detail": theirs.iter().map(|r| r.extra.clone()).collect::<Vec<_>>(),
            "wait_fallbacks_note": "times a device's find came back 'unavailable' after the document had been announced and was tried again 500 ms later; any number of them would mean the waiting, not samod, set its time",
        },
        "ratios": {
            "samod_over_gridwalk_time": round2(theirs_ms / ours_ms),
            "samod_over_gridwalk_time_is_a_lower_bound": !theirs.iter().all(|r| r.finished),
            "gridwalk_wire_over_payload": round3(ours_wire / payload as f64),
            "samod_wire_over_payload": round3(theirs_wire / payload as f64),
        },
        "goals": {
            "at_least_10x_faster_than_samod": theirs_ms >= 10.0 * ours_ms,
            "wire_at_most_1_2x_payload": ours_wire <= 1.2 * payload as f64,
        },
    }))
}

fn t(minutes: i64) -> Timestamp {
    Timestamp(Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap() + chrono::Duration::minutes(minutes))
}

/// A device's store with the reference data every device gets from the hall.
fn device_store(path: &Path, device: &str, walker: &str) -> anyhow::Result<Store> {
    let store = Store::create(path, Identity { device: device.into(), walker: walker.into() })?;
    let area = |id: &str, kind, parent: Option<&str>| Area {
        id: id.into(),
        kind,
        name: id.into(),
        parent: parent.map(Into::into),
        enterprise_grid: false,
    };
    store.put_area(&area("street", AreaKind::Town, None))?;
    store.put_area(&area("v1", AreaKind::Village, Some("street")))?;
    store.put_area(&area(GRID, AreaKind::Grid, Some("v1")))?;
    for h in 0..20 {
        store.put_household(&Household {
            id: format!("{GRID}-h{h:02}"),
            grid: GRID.into(),
            micro_grid: None,
            address: format!("马厩村第{}组{}号", h % 4 + 1, h + 1),
            head_name: "王芳".into(),
            phone: None,
            members: 3,
            tags: vec![],
        })?;
    }
    store.put_department(&Department { id: "dept-urban".into(), name: "城建办".into(), level: Level::Town })?;
    Ok(store)
}

fn new_request(rng: &mut ChaCha8Rng, visit: Option<String>, n: usize) -> NewRequest {
    let (category, text) = *[
        ("streetlight", "村道一带路灯不亮已有一周，晚上出行不便，老人担心摔倒。"),
        ("parking", "村道有车辆长期违规停放，堵住了消防通道。"),
        ("public_facility", "电瓶车库坡道没有雨棚，雨天老人推车容易滑倒。"),
        ("environment", "垃圾桶满了没人清运，气味很大。"),
    ]
    .choose(rng)
    .unwrap();
    let h = rng.random_range(0..20);
    NewRequest {
        id: None,
        grid: GRID.into(),
        micro_grid: None,
        reporter: if rng.random_bool(0.7) {
            Reporter::Resident { name: "王芳".into(), phone: None, household: Some(format!("{GRID}-h{h:02}")) }
        } else {
            Reporter::Anonymous
        },
        address: format!("马厩村第{}组{}号", h % 4 + 1, h + 1),
        gps: Some(GeoPoint {
            lat: 30.70 + rng.random_range(0.0..0.01),
            lon: 121.0 + rng.random_range(0.0..0.01),
            accuracy_m: Some(15.0),
        }),
        category: category.into(),
        description: format!("{text}（第{n}条）"),
        urgency: *[Urgency::Normal, Urgency::Normal, Urgency::High, Urgency::Low].choose(rng).unwrap(),
        source: Source::Visit,
        visit,
    }
}

/// Lifecycle steps a walker or the hall may take; the ones the request's state allows are used.
fn candidate_actions(rng: &mut ChaCha8Rng, minutes: i64) -> Vec<Action> {
    vec![
        Action::Triaged { decision: TriageDecision::Accept },
        Action::Assigned {
            assignment: Assignment {
                department: "dept-urban".into(),
                person: None,
                deadline: t(minutes + 7 * 1440),
                level: Level::Town,
            },
        },
        Action::Progress { note: "已联系责任科室，正在办理。".into() },
        Action::Resolved { note: "已派人现场处理完毕。".into(), photos: vec![] },
        Action::FeedbackGiven { note: "已上门告知处理结果。".into() },
        Action::Rated {
            rating: *[Rating::Satisfied, Rating::Satisfied, Rating::Basically, Rating::NotSatisfied]
                .choose(rng)
                .unwrap(),
            comment: "处理很及时。".into(),
        },
        Action::Closed { note: "闭环归档。".into() },
    ]
}

/// The grid's older requests, raised and carried some way through their loop by the hall.
fn grid_history(store: &Store, rng: &mut ChaCha8Rng, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        // Spread over the month before the day, hours apart, so every step is in the past.
        let minutes = -30 * 1440 + (i as i64) * (29 * 1440 / n.max(1) as i64);
        let id = store.raise_request(&store.context(t(minutes)), new_request(rng, None, i))?;
        store.act(&store.context(t(minutes + 60)), &id, Action::Triaged { decision: TriageDecision::Accept })?;
        if rng.random_bool(0.8) {
            let assignment = Assignment {
                department: "dept-urban".into(),
                person: None,
                deadline: t(minutes + 10 * 1440),
                level: Level::Town,
            };
            store.act(&store.context(t(minutes + 120)), &id, Action::Assigned { assignment })?;
            if rng.random_bool(0.5) {
                store.act(
                    &store.context(t(minutes + 1440)),
                    &id,
                    Action::Resolved { note: "已修好".into(), photos: vec![] },
                )?;
            }
        }
    }
    Ok(())
}

/// One walker's day offline: visits, requests (half of them raised on the visit just made) and
/// lifecycle edits on the grid's requests, in a shuffled order, through the real core API.
/// Returns how many edits found a request whose state allowed one.
fn day_of_work(store: &Store, rng: &mut ChaCha8Rng, cfg: &Cfg, device: usize) -> anyhow::Result<usize> {
    let mut plan: Vec<u8> = std::iter::repeat_n(0u8, cfg.visits)
        .chain(std::iter::repeat_n(1u8, cfg.requests))
        .chain(std::iter::repeat_n(2u8, cfg.edits))
        .collect();
    plan.shuffle(rng);
    let mut last_visit: Option<String> = None;
    let mut edits = 0;
    for (k, step) in plan.into_iter().enumerate() {
        let minutes = (k as i64) * 7;
        let ctx = store.context(t(minutes));
        match step {
            0 => {
                let h = rng.random_range(0..20);
                last_visit = Some(
                    store.record_visit(
                        &ctx,
                        NewVisit {
                            id: None,
                            grid: GRID.into(),
                            micro_grid: None,
                            target: VisitTarget::Household { id: format!("{GRID}-h{h:02}") },
                            kind: *[VisitKind::Daily, VisitKind::Daily, VisitKind::Sweep, VisitKind::EveningTalk]
                                .choose(rng)
                                .unwrap(),
                            visited_at: None,
                            other_walkers: vec![],
                            companions: if rng.random_bool(0.25) { vec!["网格长".into()] } else { vec![] },
                            notes: "了解家庭近况，叮嘱注意用电安全，留下联系电话。".into(),
                            gps: Some(GeoPoint {
                                lat: 30.7 + rng.random_range(0.0..0.01),
                                lon: 121.0 + rng.random_range(0.0..0.01),
                                accuracy_m: Some(20.0),
                            }),
                        },
                    )?,
                );
            }
            1 => {
                let on_visit = if rng.random_bool(0.5) { last_visit.clone() } else { None };
                store.raise_request(&ctx, new_request(rng, on_visit, device * 1000 + k))?;
            }
            _ => {
                let requests = store.list_requests(&RequestFilter {
                    grids: vec![GRID.into()],
                    limit: 100_000,
                    ..Default::default()
                })?;
                for _ in 0..20 {
                    let Some(r) = requests.choose(rng) else { break };
                    let state = store.request(&r.id)?.state;
                    // What this device's role may do (walkers report and rate; the hall runs
                    // the loop), as the app offers it.
                    let mut valid = Vec::new();
                    for a in candidate_actions(rng, minutes) {
                        if lifecycle::check(&state, &a).is_ok() && store.allows(&ctx, &state, &a)? {
                            valid.push(a);
                        }
                    }
                    if let Some(action) = valid.choose(rng) {
                        store.act(&ctx, &r.id, action.clone())?;
                        edits += 1;
                        break;
                    }
                }
            }
        }
    }
    Ok(edits)
}

fn p1_template(cfg: &Cfg, proxy: &Proxy, relay_bin: &Path, work: &Path) -> anyhow::Result<P1Template> {
    let dir = work.join("p1-template");
    let relay_dir = dir.join("relay");
    std::fs::create_dir_all(&relay_dir)?;
    let seed_code = enroll(relay_bin, &relay_dir, "hall-pc", "hall", &[])?;
    let codes = (0..cfg.devices)
        .map(|i| enroll(relay_bin, &relay_dir, &format!("phone-{i:02}"), "walker", &[GRID]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let relay = RelayProcess::start(relay_bin, &relay_dir)?;
    proxy.set_upstream(relay.addr);
    let url = proxy.url();
    let cancel = AtomicBool::new(false);

    // The hall made the grid's history and the relay holds it.
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let seed = device_store(&dir.join("hall-pc.db"), "hall-pc", "hall-1")?;
    grid_history(&seed, &mut rng, cfg.history)?;
    client::join(&seed, &url, &seed_code, "hall-pc")?;
    client::sync_over_http(&seed, &cancel, &mut |_| {})?;
    let history = seed
        .document_ids()?
        .into_iter()
        .map(|id| seed.document_bytes(&id).map(|b| (id, b)))
        .collect::<Result<Vec<_>, _>>()?;

    // Each walker's phone synced that history, then went out for the day with no signal.
    let mut device_files = Vec::new();
    let mut outboxes = Vec::new();
    let mut edits_made = 0;
    for (i, code) in codes.iter().enumerate() {
        let path = dir.join(format!("phone-{i:02}.db"));
        let store = device_store(&path, &format!("phone-{i:02}"), &format!("w{i:02}"))?;
        client::join(&store, &url, code, &format!("phone-{i:02}"))?;
        let got = client::sync_over_http(&store, &cancel, &mut |_| {})?;
        ensure!(
            got.docs_pulled == history.len(),
            "phone {i} pulled {} of the {} history documents",
            got.docs_pulled,
            history.len()
        );
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(1000).wrapping_add(i as u64 + 1));
        edits_made += day_of_work(&store, &mut rng, cfg, i)?;
        outboxes.push(store.outbox(usize::MAX >> 1)?.into_iter().map(|e| (e.doc_id, e.bytes)).collect::<Vec<_>>());
        drop(store);
        device_files.push(path);
    }
    drop(seed);
    relay.stop()?;

    // The final state, merged here independently of either system.
    let mut merged: BTreeMap<String, AutoCommit> = BTreeMap::new();
    for (id, bytes) in &history {
        merged.insert(id.clone(), AutoCommit::load(bytes)?);
    }
    let mut new_change_bytes = Vec::new();
    let mut new_change_bytes_compressed = 0u64;
    let mut new_changes = 0;
    for outbox in &outboxes {
        let mut bytes = 0u64;
        for (id, chunk) in outbox {
            merged.entry(id.clone()).or_default().load_incremental(chunk)?;
            let mut changes = core_docs::decode_changes_strict(chunk)?;
            new_changes += changes.len();
            bytes += changes.iter().map(|c| c.raw_bytes().len() as u64).sum::<u64>();
            new_change_bytes_compressed += changes.iter_mut().map(|c| c.bytes().len() as u64).sum::<u64>();
        }
        new_change_bytes.push(bytes);
    }
    let expected = merged
        .into_iter()
        .map(|(id, mut doc)| {
            let mut heads = doc.get_heads();
            heads.sort();
            (id, heads)
        })
        .collect();
    Ok(P1Template {
        relay_dir,
        device_files,
        history,
        outboxes,
        expected,
        new_change_bytes,
        new_change_bytes_compressed,
        new_changes,
        edits_made,
    })
}

struct RoundResult {
    ms: f64,
    wire: Wire,
    /// Ours: sync sessions run by all devices together. samod: how far it got, and how often its
    /// waits fell back.
    extra: Value,
    /// Every device converged within the time limit; if not, `ms` is a lower bound.
    finished: bool,
}

fn p1_ours_round(
    cfg: &Cfg,
    template: &P1Template,
    proxy: &Proxy,
    relay_bin: &Path,
    work: &Path,
    round: usize,
) -> anyhow::Result<RoundResult> {
    // Every round starts from copies of the same files, so no round sees another's changes.
    let dir = work.join(format!("p1-ours-{round}"));
    let relay_dir = dir.join("relay");
    std::fs::create_dir_all(&relay_dir)?;
    copy_database(&template.relay_dir.join("relay.db"), &relay_dir.join("relay.db"))?;
    let mut paths = Vec::new();
    for file in &template.device_files {
        let to = dir.join(file.file_name().context("device file name")?);
        copy_database(file, &to)?;
        paths.push(to);
    }
    let relay = RelayProcess::start(relay_bin, &relay_dir)?;
    proxy.set_upstream(relay.addr);
    let stores = paths.iter().map(Store::open).collect::<Result<Vec<_>, _>>()?;

    let n = stores.len();
    let pushed = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(n + 1));
    let deadline = Duration::from_secs(if cfg.smoke { 60 } else { 600 });
    let mut threads = Vec::new();
    for store in stores {
        let (pushed, start, poll) = (pushed.clone(), start.clone(), cfg.poll);
        threads.push(std::thread::spawn(move || -> anyhow::Result<(Store, u64)> {
            let cancel = AtomicBool::new(false);
            let mut has_pushed = false;
            let mut sessions = 0u64;
            start.wait();
            let began = Instant::now();
            loop {
                // The progress callback runs after each reply, before the next request goes out.
                // Once this device's push is acknowledged it counts itself; if by then every
                // device's push is durable, the pull that follows sees everything and this
                // device is done after this session.
                let mut complete = false;
                let mut on_progress = |p: &client::Progress| {
                    if p.pages_pulled == 0 && p.docs_pushed >= p.docs_to_push {
                        if !has_pushed {
                            has_pushed = true;
                            pushed.fetch_add(1, Ordering::SeqCst);
                        }
                        complete = pushed.load(Ordering::SeqCst) == n;
                    }
                };
                client::sync_over_http(&store, &cancel, &mut on_progress)?;
                sessions += 1;
                if complete {
                    return Ok((store, sessions));
                }
                ensure!(began.elapsed() < deadline, "a device had not converged after {deadline:?}");
                std::thread::sleep(poll);
            }
        }));
    }
    proxy.reset();
    let relay_cpu_before = process_cpu_ms(relay.pid());
    let own_cpu_before = own_cpu_ms();
    start.wait();
    let began = Instant::now();
    let mut results = Vec::new();
    for thread in threads {
        results.push(thread.join().map_err(|_| anyhow::anyhow!("a device thread panicked"))??);
    }
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    let wire = proxy.wire();
    // Where the CPU went: the relay process, and this process (the simulated phones, which share
    // the machine's two cores here but would each have their own, plus the proxy).
    let cpu = json!({
        "relay_cpu_ms": round2(process_cpu_ms(relay.pid()) - relay_cpu_before),
        "devices_and_proxy_cpu_ms": round2(own_cpu_ms() - own_cpu_before),
    });
    relay.stop()?;

    // Untimed: every device must now hold exactly the expected documents at the expected heads.
    let sessions: u64 = results.iter().map(|(_, s)| s).sum();
    for (store, _) in &results {
        let ids = store.document_ids()?;
        ensure!(
            ids.len() == template.expected.len() && ids.iter().all(|id| template.expected.contains_key(id)),
            "device {} holds {} documents, {} expected",
            store.identity().device,
            ids.len(),
            template.expected.len()
        );
        for (id, heads) in &template.expected {
            ensure!(&store.document_heads(id)? == heads, "device {} has other heads for {id}", store.identity().device);
        }
    }
    drop(results);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RoundResult { ms, wire, extra: json!({ "sync_sessions": sessions, "cpu": cpu }), finished: true })
}

/// A websocket dialer for samod's devices: tokio-tungstenite over plain TCP (samod's own
/// tungstenite dialer needs its TLS feature, which loopback does not).
pub(crate) struct WsDialer {
    pub(crate) url: url::Url,
}

impl Dialer for WsDialer {
    type Error = std::convert::Infallible;

    fn url(&self) -> url::Url {
        self.url.clone()
    }

    fn connect(&self) -> futures::future::BoxFuture<'static, Result<Transport, DialError<Self::Error>>> {
        use tokio_tungstenite::tungstenite::{Error as WsError, Message};
        let url = self.url.clone();
        Box::pin(async move {
            let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.map_err(DialError::transient)?;
            let (sink, stream) = socket.split();
            // samod speaks binary messages; pings and pongs are the socket's own business.
            let stream = stream.filter_map(|message| async move {
                match message {
                    Ok(Message::Binary(bytes)) => Some(Ok(bytes.to_vec())),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                }
            });
            let sink = sink.with(|bytes: Vec<u8>| async move { Ok::<_, WsError>(Message::Binary(bytes.into())) });
            Ok(Transport::new(Box::pin(stream), Box::pin(sink)))
        })
    }
}

pub(crate) fn sorted_heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort();
    heads
}

/// The documents a samod repo has opened (spawned an actor for), told by its observer: a
/// device learns of a document the server announces to it without asking for it.
#[derive(Default)]
pub(crate) struct Opened {
    inner: Mutex<OpenedInner>,
}

#[derive(Default)]
struct OpenedInner {
    seen: HashSet<DocumentId>,
    waiting: HashMap<DocumentId, Vec<tokio::sync::oneshot::Sender<()>>>,
}

impl Opened {
    /// Resolves once the repo has opened `id` (at once if it already has).
    async fn wait(&self, id: &DocumentId) {
        let rx = {
            let mut inner = self.inner.lock().unwrap();
            if inner.seen.contains(id) {
                return;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            inner.waiting.entry(id.clone()).or_default().push(tx);
            rx
        };
        let _ = rx.await;
    }
}

pub(crate) struct OpenedObserver(pub(crate) Arc<Opened>);

impl RepoObserver for OpenedObserver {
    fn observe(&self, event: &RepoEvent) {
        if let RepoEvent::DocumentOpened { document_id } = event {
            let mut inner = self.0.inner.lock().unwrap();
            inner.seen.insert(document_id.clone());
            for tx in inner.waiting.remove(document_id).unwrap_or_default() {
                let _ = tx.send(());
            }
        }
    }
}

/// Counts of the times a samod device's wait fell back from being told to asking or looking.
#[derive(Default)]
pub(crate) struct Fallbacks {
    /// A find ended with the document unavailable, so the device waited 500 ms to try again.
    unavailable: AtomicU64,
}

impl Fallbacks {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "retries_after_unavailable": self.unavailable.load(Ordering::Relaxed),
        })
    }
}

/// Waits until `repo` holds document `id` at `expected` heads.
///
/// In the burst (`announced`), the device waits to be told of the document: samod's server, with
/// its default share policy, announces every document it holds to every connected peer, so this
/// is samod's own path, and the waiting adds no requests of its own (searching for documents the
/// server does not have yet makes it answer "unavailable" and the device ask again, which slows
/// the server down). Once the repo has opened the document, `find` returns it from memory, and
/// the device follows its changes until the heads match. Before the burst (the history everyone
/// synced earlier) the device simply finds each document. The one fallback (a find that says
/// "unavailable" is tried again after 500 ms) is counted in the report.
pub(crate) async fn converge(
    repo: Repo,
    opened: Arc<Opened>,
    announced: bool,
    id: DocumentId,
    expected: Arc<Vec<ChangeHash>>,
    fallbacks: Arc<Fallbacks>,
) -> anyhow::Result<()> {
    let handle = loop {
        if announced {
            opened.wait(&id).await;
        }
        match repo.find(id.clone()).await.map_err(|_| anyhow::anyhow!("samod repo stopped"))? {
            Some(handle) => break handle,
            None => {
                fallbacks.unavailable.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    // Subscribe before looking, so a change between the look and the wait is not missed. After
    // the one look, the heads come with each change notification: looking again would cost
    // samod work of its own (every `with_document` runs a turn of the document's actor).
    let mut changes = handle.changes();
    if handle.with_document(|d| sorted_heads(d)) == *expected {
        return Ok(());
    }
    while let Some(changed) = changes.next().await {
        let mut heads = changed.new_heads;
        heads.sort();
        if heads == *expected {
            return Ok(());
        }
    }
    bail!("samod stopped notifying changes of a document before it converged")
}

/// samod's server side: `server` accepting websockets on a free loopback port, served until the
/// task returned is aborted.
pub(crate) async fn samod_server(
    server: &Repo,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = server
        .make_acceptor(url::Url::parse(&format!("ws://{addr}/"))?)
        .map_err(|_| anyhow::anyhow!("samod repo stopped"))?;
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move |upgrade: axum::extract::ws::WebSocketUpgrade| {
            let acceptor = acceptor.clone();
            async move {
                upgrade.on_upgrade(move |socket| async move {
                    let _ = acceptor.accept_axum(socket, None);
                })
            }
        }),
    );
    Ok((addr, tokio::spawn(async move { axum::serve(listener, app).await })))
}

async fn p1_samod_round(cfg: &Cfg, template: &P1Template, proxy: &Proxy) -> anyhow::Result<RoundResult> {
    let stopped = |_| anyhow::anyhow!("samod repo stopped");
    let server = Repo::build_tokio().with_peer_id(PeerId::from("hall-server")).load().await;
    let mut ids: BTreeMap<String, DocumentId> = BTreeMap::new();
    let mut history_heads = Vec::new();
    for (id, bytes) in &template.history {
        let doc = Automerge::load(bytes)?;
        history_heads.push(Arc::new(sorted_heads(&doc)));
        let handle = server.create(doc).await.map_err(stopped)?;
        ids.insert(id.clone(), handle.document_id().clone());
    }
    let (addr, server_task) = samod_server(&server).await?;
    proxy.set_upstream(addr);
    let url = url::Url::parse(&format!("ws://{}/", proxy.addr))?;
    let fallbacks = Arc::new(Fallbacks::default());

    // Untimed: each device syncs the grid's history, as ours did before the day, then goes
    // offline and makes the same day of work from the same bytes.
    let mut devices = Vec::new();
    let mut new_handles = Vec::new();
    for (i, outbox) in template.outboxes.iter().enumerate() {
        let seen = Arc::new(Opened::default());
        let repo = Repo::build_tokio()
            .with_peer_id(PeerId::from(format!("phone-{i:02}")))
            .with_observer(OpenedObserver(seen.clone()))
            .load()
            .await;
        let dialer = repo.dial(BackoffConfig::default(), Arc::new(WsDialer { url: url.clone() })).map_err(stopped)?;
        dialer.established().await.map_err(|e| anyhow::anyhow!("samod dial failed: {e:?}"))?;
        let waits = template.history.iter().zip(&history_heads).map(|((id, _), heads)| {
            converge(repo.clone(), seen.clone(), false, ids[id].clone(), heads.clone(), fallbacks.clone())
        });
        futures::future::try_join_all(waits).await?;
        dialer.close();
        // The day's chunks of each document, concatenated in the order they were written.
        let mut by_doc: Vec<(String, Vec<u8>)> = Vec::new();
        for (id, chunk) in outbox {
            match by_doc.iter_mut().find(|(d, _)| d == id) {
                Some((_, bytes)) => bytes.extend_from_slice(chunk),
                None => by_doc.push((id.clone(), chunk.clone())),
            }
        }
        for (id, bytes) in by_doc {
            if let Some(doc_id) = ids.get(&id).filter(|_| template.history.iter().any(|(h, _)| *h == id)) {
                let handle = repo
                    .find(doc_id.clone())
                    .await
                    .map_err(stopped)?
                    .context("a history document vanished from a samod device")?;
                handle.with_document(|d| d.load_incremental(&bytes))?;
            } else {
                let handle = repo.create(Automerge::load(&bytes)?).await.map_err(stopped)?;
                ids.insert(id.clone(), handle.document_id().clone());
                new_handles.push(handle);
            }
        }
        devices.push((repo, seen));
    }
    ensure!(
        ids.len() == template.expected.len(),
        "samod got {} documents, {} expected",
        ids.len(),
        template.expected.len()
    );
    let expected: Arc<Vec<(DocumentId, Arc<Vec<ChangeHash>>)>> =
        Arc::new(template.expected.iter().map(|(id, heads)| (ids[id].clone(), Arc::new(heads.clone()))).collect());
    // Let the setup connections close before the burst, so their goodbyes are not counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fallbacks = Arc::new(Fallbacks::default());

    let converged = Arc::new(AtomicUsize::new(0));
    proxy.reset();
    let own_cpu_before = own_cpu_ms();
    let began = Instant::now();
    let mut dialers = Vec::new();
    let mut tasks = Vec::new();
    for (repo, seen) in &devices {
        dialers.push(repo.dial(BackoffConfig::default(), Arc::new(WsDialer { url: url.clone() })).map_err(stopped)?);
        let (repo, seen, expected, fallbacks, converged) =
            (repo.clone(), seen.clone(), expected.clone(), fallbacks.clone(), converged.clone());
        tasks.push(tokio::spawn(async move {
            let waits = expected.iter().map(|(id, heads)| {
                let converged = converged.clone();
                let wait = converge(repo.clone(), seen.clone(), true, id.clone(), heads.clone(), fallbacks.clone());
                async move {
                    wait.await?;
                    converged.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, anyhow::Error>(())
                }
            });
            futures::future::try_join_all(waits).await.map(|_| ())
        }));
    }
    // A long burst says how far it has got, on stderr, so a stuck run can be told from a slow one.
    let reporter = {
        let (converged, fallbacks, total) = (converged.clone(), fallbacks.clone(), expected.len() * devices.len());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "samod burst: {}/{total} document copies converged after {:.0} s (fallbacks {})",
                    converged.load(Ordering::Relaxed),
                    began.elapsed().as_secs_f64(),
                    fallbacks.to_json()
                );
            }
        })
    };
    // A round that runs past the time limit is stopped and reported as such: its time is then a
    // lower bound, with how far it had got.
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let all = futures::future::join_all(tasks);
    let outcome = tokio::time::timeout(cfg.samod_timeout, all).await;
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    let wire = proxy.wire();
    let cpu_ms = round2(own_cpu_ms() - own_cpu_before);
    reporter.abort();
    let finished = match outcome {
        Ok(results) => {
            for r in results {
                r??;
            }
            true
        }
        Err(_) => {
            for a in &aborts {
                a.abort();
            }
            false
        }
    };
    let total = expected.len() * devices.len();

    for dialer in &dialers {
        dialer.close();
    }
    drop(new_handles);
    // A samod stopped at its time limit is still working through its backlog and may take as
    // long again to stop; its runtime is shut down instead (see `p1`).
    if finished {
        for (repo, _) in &devices {
            repo.stop().await;
        }
        server.stop().await;
    }
    server_task.abort();
    Ok(RoundResult {
        ms,
        wire,
        finished,
        extra: json!({
            "finished": finished,
            "document_copies_converged": converged.load(Ordering::Relaxed),
            "document_copies": total,
            "fallbacks": fallbacks.to_json(),
            "server_devices_and_proxy_cpu_ms": cpu_ms,
        }),
    })
}

// ----- P2 and P3: a new device pulls everything, then syncs with nothing to do -------------------

/// The end of the generated year. Fixed, so kept data is the same on every run.
fn until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 31, 0, 0, 0).single().expect("a valid date")
}

/// A demo street with `docs` documents: the generator raises 60% of requests on a visit it makes
/// alongside, and makes no other visits here, so requests = 5/8 of the documents.
fn p2_demo_config(docs: usize, seed: u64) -> DemoConfig {
    let mut cfg = DemoConfig::street(seed, until());
    cfg.requests = (docs * 5 / 8).max(1);
    cfg.visits = cfg.requests * 6 / 10;
    cfg
}

struct P2Data {
    relay_db: PathBuf,
    baseline_db: PathBuf,
    meta: Value,
    reused: bool,
}

/// The relay data and the baseline file for P2: from `keep_dir` when an earlier run left them
/// there, otherwise generated: a demo street made by the core's generator in a hall store, pushed
/// whole to a real relay by the real client, and the relay's saved documents copied into a
/// plain SQLite file for the baseline.
fn p2_data(cfg: &Cfg, relay_bin: &Path, work: &Path, keep_dir: Option<&Path>) -> anyhow::Result<P2Data> {
    let name = format!("sync-p2-shape{P2_SHAPE}-v{LATEST_VERSION}-d{}-s{}", cfg.docs, cfg.seed);
    let dir = keep_dir.unwrap_or(work).join(&name);
    let found = |reused| -> anyhow::Result<P2Data> {
        Ok(P2Data {
            relay_db: dir.join("relay").join("relay.db"),
            baseline_db: dir.join("baseline.sqlite"),
            meta: serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)?,
            reused,
        })
    };
    if dir.join("meta.json").is_file() {
        return found(true);
    }
    // Built under a temporary name and renamed when complete, so an interrupted run never leaves
    // half the data for a later run to trust.
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    let relay_dir = staging.join("relay");
    std::fs::create_dir_all(&relay_dir)?;

    let started = Instant::now();
    let source_path = staging.join("source.db");
    let mut source =
        Store::create(&source_path, Identity { device: "hall-pc-source".into(), walker: "hall-1".into() })?;
    let town = demo::generate(&mut source, &p2_demo_config(cfg.docs, cfg.seed))?;
    let queued = source.requeue_all_documents(Timestamp(until()))?;
    let generate_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let code = enroll(relay_bin, &relay_dir, "hall-pc-source", "hall", &[])?;
    let relay = RelayProcess::start(relay_bin, &relay_dir)?;
    client::join(&source, &format!("http://{}", relay.addr), &code, "hall-pc-source")?;
    let pushed = client::sync_over_http(&source, &AtomicBool::new(false), &mut |_| {})?;
    relay.stop()?;
    let push_seconds = started.elapsed().as_secs_f64();
    drop(source);
    std::fs::remove_file(&source_path)?;

    let relay_db = relay_dir.join("relay.db");
    let baseline = Connection::open(staging.join("baseline.sqlite"))?;
    baseline.execute_batch("CREATE TABLE docs (id TEXT PRIMARY KEY, snapshot BLOB NOT NULL)")?;
    baseline.execute("ATTACH DATABASE ?1 AS relay", [relay_db.to_string_lossy()])?;
    let (documents, snapshot_bytes): (i64, i64) =
        baseline
            .query_row("SELECT COUNT(*), SUM(LENGTH(snapshot)) FROM relay.docs", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    baseline
        .execute_batch("INSERT INTO docs SELECT id, snapshot FROM relay.docs ORDER BY id; DETACH DATABASE relay;")?;
    drop(baseline);

    let meta = json!({
        "documents": documents,
        "snapshot_bytes": snapshot_bytes,
        "town": town,
        "documents_pushed": pushed.docs_pushed,
        "documents_queued": queued,
        "generate_seconds": round2(generate_seconds),
        "push_to_relay_seconds": round2(push_seconds),
        "relay_db_bytes": file_size(&relay_db),
    });
    std::fs::write(staging.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    std::fs::rename(&staging, &dir)?;
    found(false)
}

fn p2_and_p3(
    cfg: &Cfg,
    proxy: &Proxy,
    relay_bin: &Path,
    cli_bin: &Path,
    work: &Path,
    keep_dir: Option<&Path>,
) -> anyhow::Result<(Value, Value)> {
    let me = std::env::current_exe()?;
    let data = p2_data(cfg, relay_bin, work, keep_dir)?;
    let documents = data.meta["documents"].as_i64().context("documents in meta.json")?;

    // The relay runs on a copy: enrolments and contact times would otherwise change kept data.
    let relay_dir = work.join("p2-relay");
    std::fs::create_dir_all(&relay_dir)?;
    copy_database(&data.relay_db, &relay_dir.join("relay.db"))?;
    let relay = RelayProcess::start(relay_bin, &relay_dir)?;
    proxy.set_upstream(relay.addr);
    let url = proxy.url();

    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut wires = Vec::new();
    let mut last_store = None;
    for run in 0..cfg.pulls {
        let code = enroll(relay_bin, &relay_dir, &format!("new-hall-pc-{run}"), "hall", &[])?;
        let store = work.join(format!("p2-device-{run}.db"));
        cli(cli_bin, &store, &["init", "--device", &format!("new-hall-pc-{run}"), "--walker", "hall-1"])?;
        cli(cli_bin, &store, &["join", "--relay", &url, "--code", &code])?;
        let baseline_args =
            vec!["sync".to_string(), "--child-load".to_string(), data.baseline_db.display().to_string()];
        let sync_args =
            vec!["--store".to_string(), store.display().to_string(), "--json".to_string(), "sync".to_string()];
        // Alternate the order, so neither side always finds the page cache warmed by the other.
        if run % 2 == 1 {
            base.push(measured(&me, &me, &baseline_args)?);
        }
        proxy.reset();
        ours.push(measured(&me, cli_bin, &sync_args)?);
        wires.push(proxy.wire());
        if run % 2 == 0 {
            base.push(measured(&me, &me, &baseline_args)?);
        }
        let pulled: i64 = Connection::open_with_flags(&store, OpenFlags::SQLITE_OPEN_READ_ONLY)?.query_row(
            "SELECT COUNT(*) FROM documents",
            [],
            |r| r.get(0),
        )?;
        ensure!(pulled == documents, "the new device holds {pulled} documents, the relay {documents}");
        if let Some(previous) = last_store.replace(store) {
            remove_database(&previous);
        }
    }

    let ours_ms = median(ours.iter().map(|m| m.wall_ms).collect());
    let base_ms = median(base.iter().map(|m| m.wall_ms).collect());
    let peak_rss_mb = ours.iter().map(|m| m.max_rss_kb).max().unwrap_or(0) as f64 / 1024.0;
    let p2 = json!({
        "what": "a newly enrolled hall device (it may see every grid) pulls every document from the relay: `gridwalk sync` as a child process, joined beforehand; the time runs from its start to its exit",
        "documents": documents,
        "data": data.meta,
        "data_reused_from_keep_dir": data.reused,
        "gridwalk": {
            "wall_ms": ours.iter().map(|m| round2(m.wall_ms)).collect::<Vec<_>>(),
            "median_ms": round2(ours_ms),
            "cpu_ms": ours.iter().map(|m| round2(m.cpu_ms)).collect::<Vec<_>>(),
            "peak_rss_mb": round2(peak_rss_mb),
            "wire_bytes": wires.iter().copied().map(Wire::to_json).collect::<Vec<_>>(),
        },
        "baseline": {
            "what": "a child process opens a SQLite file holding the relay's saved bytes of every document (table docs: id, snapshot), runs SELECT snapshot FROM docs, and loads each row with automerge::AutoCommit::load, keeping none; it writes nothing and builds no index",
            "wall_ms": base.iter().map(|m| round2(m.wall_ms)).collect::<Vec<_>>(),
            "median_ms": round2(base_ms),
            "cpu_ms": base.iter().map(|m| round2(m.cpu_ms)).collect::<Vec<_>>(),
            "peak_rss_mb": round2(base.iter().map(|m| m.max_rss_kb).max().unwrap_or(0) as f64 / 1024.0),
        },
        "ratios": { "gridwalk_over_baseline": round2(ours_ms / base_ms) },
        "goals": {
            "within_2x_of_sqlite_load": ours_ms <= 2.0 * base_ms,
            "peak_rss_at_most_200_mb": peak_rss_mb <= 200.0,
        },
    });

    // P3, on the device that has just pulled everything: in this process, as the app would call
    // it, against a bare /health round trip. Both build a fresh HTTP client each time, as
    // `sync_over_http` does, so both pay a new connection.
    let store = Store::open(last_store.as_ref().context("no P2 device")?)?;
    let cancel = AtomicBool::new(false);
    let fresh_client = || {
        reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
    };
    let health_url = format!("{url}/health");
    let (mut sync_ms, mut sync_wire, mut health_ms, mut health_wire) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cfg.noop_runs {
        proxy.reset();
        let began = Instant::now();
        let progress = client::sync_over_http(&store, &cancel, &mut |_| {})?;
        sync_ms.push(began.elapsed().as_secs_f64() * 1000.0);
        sync_wire.push(proxy.wire());
        ensure!(progress.docs_pulled == 0 && progress.docs_pushed == 0, "a no-op sync moved documents: {progress:?}");

        proxy.reset();
        let began = Instant::now();
        let resp = fresh_client()?.get(&health_url).send()?;
        ensure!(resp.status().is_success(), "/health answered {}", resp.status());
        resp.bytes()?;
        health_ms.push(began.elapsed().as_secs_f64() * 1000.0);
        health_wire.push(proxy.wire());
    }
    // For the reader: the same round trip on a connection kept open, i.e. the network floor.
    let kept = fresh_client()?;
    kept.get(&health_url).send()?.bytes()?;
    let mut kept_ms = Vec::new();
    for _ in 0..cfg.noop_runs {
        let began = Instant::now();
        kept.get(&health_url).send()?.bytes()?;
        kept_ms.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    drop(store);
    relay.stop()?;

    let noop_ms = median(sync_ms.clone());
    let bare_ms = median(health_ms.clone());
    let noop_bytes = median(sync_wire.iter().map(|w| w.total() as f64).collect());
    let p3 = json!({
        "what": "client::sync_over_http on the P2 device right after its pull (nothing to push, nothing new), against GET /health; both through the same proxy, each with a fresh client and connection",
        "runs": cfg.noop_runs,
        "gridwalk_noop_sync": {
            "median_ms": round3(noop_ms),
            "min_ms": round3(sync_ms.iter().copied().fold(f64::INFINITY, f64::min)),
            "median_wire_bytes": noop_bytes,
            "wire_bytes_first": sync_wire.first().copied().map(Wire::to_json),
        },
        "bare_health": {
            "median_ms": round3(bare_ms),
            "min_ms": round3(health_ms.iter().copied().fold(f64::INFINITY, f64::min)),
            "median_wire_bytes": median(health_wire.iter().map(|w| w.total() as f64).collect()),
            "kept_connection_median_ms": round3(median(kept_ms)),
        },
        "ratios": { "noop_sync_over_health": round2(noop_ms / bare_ms) },
        "goals": {
            "at_most_2_kb_on_the_wire": noop_bytes <= 2048.0,
            "within_2x_of_health": noop_ms <= 2.0 * bare_ms,
        },
    });
    Ok((p2, p3))
}

// ----- processes -------------------------------------------------------------------------------

/// A program built next to this one (the same profile), so a release benchmark measures release
/// binaries.
pub(crate) fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    ensure!(
        path.is_file(),
        "{} is missing: build it with this benchmark first, e.g. `cargo build --release -p gridwalk-bench -p gridwalk-cli -p gridwalk-relay`",
        path.display()
    );
    Ok(path)
}

/// The relay binary serving `data_dir` on a free loopback port.
pub(crate) struct RelayProcess {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
}

impl RelayProcess {
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub(crate) fn start(bin: &Path, data_dir: &Path) -> anyhow::Result<RelayProcess> {
        Self::start_on(bin, data_dir, None)
    }

    /// A relay on PostgreSQL (`database`), or on its embedded SQLite file under `data_dir`.
    pub(crate) fn start_on(bin: &Path, data_dir: &Path, database: Option<&str>) -> anyhow::Result<RelayProcess> {
        let mut child = Command::new(bin)
            .args(database.map(|url| vec!["--database", url]).unwrap_or_default())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut out = BufReader::new(child.stdout.take().context("the relay's stdout")?);
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if out.read_line(&mut line)? == 0 {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the relay exited before it listened");
            }
            if let Some(rest) = line.trim().strip_prefix("listening on http://") {
                break rest.parse().with_context(|| format!("the relay's address in '{}'", line.trim()))?;
            }
        };
        // The relay logs to stdout too; reading it to the end keeps it from blocking on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Ok(RelayProcess { child: Some(child), addr })
    }

    /// Stops the relay the way an operator would (Ctrl-C), so SQLite closes cleanly and its
    /// file can be copied.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("relay already stopped")?;
        // SAFETY: kill(2) on the id of our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the relay did not stop within 20 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RelayProcess {
    /// A benchmark that fails half-way must not leave a relay running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A one-time enrolment code from the relay's own CLI.
pub(crate) fn enroll(bin: &Path, data_dir: &Path, name: &str, role: &str, grids: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(bin);
    command.arg("--data-dir").arg(data_dir).args(["enroll", "--name", name, "--role", role]);
    if !grids.is_empty() {
        command.args(["--grids", &grids.join(",")]);
    }
    let out = command.stdin(Stdio::null()).output().context("running gridwalk-relay enroll")?;
    ensure!(out.status.success(), "gridwalk-relay enroll failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn cli(bin: &Path, store: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running gridwalk")?;
    ensure!(out.status.success(), "gridwalk {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(())
}

struct Measured {
    wall_ms: f64,
    max_rss_kb: u64,
    cpu_ms: f64,
}

/// Runs `program` through a small probe process (this binary, `--rss-of`) and returns its wall
/// time, peak resident set and CPU time. Linux carries a forked child's resident high-water mark
/// from before its `exec` into what `wait4` reports; measured from here, after P1's samod repos,
/// every child would seem at least as large as this process. The probe holds next to nothing.
fn measured(me: &Path, program: &Path, args: &[String]) -> anyhow::Result<Measured> {
    let mut command = vec![program.display().to_string()];
    command.extend(args.iter().cloned());
    let out = Command::new(me)
        .args(["sync", "--rss-of", &serde_json::to_string(&command)?])
        .stdin(Stdio::null())
        .output()
        .context("starting the measuring probe")?;
    ensure!(out.status.success(), "measuring {}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).context("the probe's report")?;
    Ok(Measured {
        wall_ms: report["wall_ms"].as_f64().context("wall_ms")?,
        max_rss_kb: report["max_rss_kb"].as_u64().context("max_rss_kb")?,
        cpu_ms: report["cpu_ms"].as_f64().context("cpu_ms")?,
    })
}

/// The probe: runs the command to its end and reports what `wait4` says of that one child.
fn probe(command: &str) -> anyhow::Result<Value> {
    let command: Vec<String> = serde_json::from_str(command).context("--rss-of takes a JSON array")?;
    let (program, args) = command.split_first().context("--rss-of needs a program")?;
    let began = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that `wait4` fills in; the pid is our own child, not yet
    // reaped: its `Child` handle is never waited on.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall_ms = began.elapsed().as_secs_f64() * 1000.0;
    ensure!(reaped == pid, "waiting for {program}: {}", std::io::Error::last_os_error());
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        bail!("{} failed (status {status}): {err}", command.join(" "));
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    // Linux reports ru_maxrss in KiB.
    Ok(json!({ "wall_ms": wall_ms, "max_rss_kb": usage.ru_maxrss, "cpu_ms": ms(usage.ru_utime) + ms(usage.ru_stime) }))
}

/// The P2 baseline, run as its own process: every document's saved bytes read from SQLite and
/// loaded with Automerge. The blob is borrowed from SQLite's row, not copied, and each document
/// is dropped after loading: the cheapest honest way to load them all.
fn load_every_document(file: &Path) -> anyhow::Result<Value> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT snapshot FROM docs")?;
    let mut rows = stmt.query([])?;
    let (mut docs, mut bytes, mut heads) = (0u64, 0u64, 0u64);
    while let Some(row) = rows.next()? {
        let blob = row.get_ref(0)?.as_blob()?;
        let mut doc = AutoCommit::load(blob)?;
        heads += doc.get_heads().len() as u64;
        bytes += blob.len() as u64;
        docs += 1;
    }
    Ok(json!({ "docs": docs, "bytes": bytes, "heads": heads }))
}

// ----- the counting proxy ----------------------------------------------------------------------

/// Bytes through the proxy since its last reset.
#[derive(Debug, Clone, Copy)]
struct Wire {
    up: u64,
    down: u64,
    connections: u64,
}

impl Wire {
    fn total(&self) -> u64 {
        self.up + self.down
    }
    fn to_json(self) -> Value {
        json!({ "total": self.total(), "to_server": self.up, "from_server": self.down, "tcp_connections": self.connections })
    }
}

/// A TCP proxy on loopback that counts every byte each way. Both systems' servers sit behind it,
/// one at a time; where it forwards is switched between scenarios.
#[derive(Clone)]
struct Proxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl Proxy {
    fn start(rt: &Runtime) -> anyhow::Result<Proxy> {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let proxy = Proxy {
            addr: listener.local_addr()?,
            upstream: Arc::new(Mutex::new(None)),
            up: Arc::new(AtomicU64::new(0)),
            down: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
        };
        let p = proxy.clone();
        rt.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                let p = p.clone();
                tokio::spawn(async move {
                    let _ = p.forward(client).await;
                });
            }
        });
        Ok(proxy)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_upstream(&self, addr: SocketAddr) {
        *self.upstream.lock().unwrap() = Some(addr);
    }

    fn reset(&self) {
        self.up.store(0, Ordering::SeqCst);
        self.down.store(0, Ordering::SeqCst);
        self.connections.store(0, Ordering::SeqCst);
    }

    fn wire(&self) -> Wire {
        Wire {
            up: self.up.load(Ordering::SeqCst),
            down: self.down.load(Ordering::SeqCst),
            connections: self.connections.load(Ordering::SeqCst),
        }
    }

    async fn forward(&self, client: TcpStream) -> std::io::Result<()> {
        let target = (*self.upstream.lock().unwrap()).ok_or_else(|| std::io::Error::other("no upstream"))?;
        let server = TcpStream::connect(target).await?;
        // No Nagle delay on either leg: the proxy must not add latency the direct path lacks.
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        self.connections.fetch_add(1, Ordering::SeqCst);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let up = tokio::spawn(pump(client_read, server_write, self.up.clone()));
        pump(server_read, client_write, self.down.clone()).await;
        let _ = up.await;
        Ok(())
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, count: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

// ----- small helpers ---------------------------------------------------------------------------

/// Copies a closed SQLite file, with its WAL should one have been left behind.
fn copy_database(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    let wal = |p: &Path| PathBuf::from(format!("{}-wal", p.display()));
    if wal(from).is_file() {
        std::fs::copy(wal(from), wal(to))?;
    }
    Ok(())
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// User + system CPU time of another process so far (ms), from /proc.
pub(crate) fn process_cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name in parentheses may hold spaces; the fields after it are plain.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) * 1000.0 / hz
}

/// User + system CPU time of this process so far (ms), every thread included.
pub(crate) fn own_cpu_ms() -> f64 {
    // SAFETY: `rusage` is plain data that getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// The 1, 5 and 15 minute load averages: on a shared 2-core machine they say how much else ran.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn median(mut samples: Vec<f64>) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

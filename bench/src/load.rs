//! P6 (issue 15): the relay under many devices at once, side by side in one run with samod (the
//! Rust automerge-repo) on the same work.
//!
//! N simulated walkers' phones (500) in a few grids. Each has a small day of work — requests
//! it raises and settles on the spot, a visit — made beforehand as Automerge changes with the
//! document API, exactly what the app would push. Two parts, for every system:
//!
//! * **Burst**: every phone comes back into range at once and pushes its day, one push per
//!   change, pulling after each. This is where capacity shows: accepted changes per second is
//!   every change stored divided by the time until the last was acknowledged.
//! * **Steady day**: then, for a fixed time, every phone pulls about once a second, and each
//!   pushes one more change at a random moment. Pull and push latencies here are what a walker
//!   feels on an ordinary day with the whole street connected.
//!
//! Configurations: (a) one relay on its embedded SQLite; (b) one relay on PostgreSQL; (c) three
//! relays on one PostgreSQL, each phone going round robin from one request to the next; and
//! samod, whose server and phones run in this process over websockets with the same documents
//! (its phones push as soon as they connect; the server announces every document to every
//! phone, which is its protocol). Our relays are the real `gridwalk-relay` binary in their own
//! processes, so their CPU and peak memory are measured apart from the phones'; PostgreSQL is a
//! throwaway server, its CPU counted too.
//!
//! Nothing may be lost: at the end every phone pulls until nothing is left, and must then hold
//! every change of its grid exactly once (a change delivered twice by the cursor is counted).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use automerge::{AutoCommit, Automerge, ChangeHash};
use gridwalk_core::docs::{
    self as core_docs, Place, Reporter, RequestBody, RequestDocument, Source, Urgency, VisitBody, VisitDocument,
    VisitKind, VisitTarget,
};
use gridwalk_core::lifecycle::Action;
use gridwalk_core::sync::protocol::{
    self as wire, DocChanges, EnrollRequest, EnrollResponse, PullResponse, PushRequest, PushResponse, PROTOCOL_VERSION,
};
use gridwalk_core::{ActionContext, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use samod::{BackoffConfig, DocumentId, PeerId, Repo};
use serde_json::{json, Value};

use crate::sync::{
    converge, load_average, own_cpu_ms, process_cpu_ms, round2, samod_server, sibling, sorted_heads, Fallbacks, Opened,
    OpenedObserver, RelayProcess, WsDialer,
};

#[derive(clap::Args)]
pub struct Args {
    /// Simulated walkers' phones.
    #[arg(long, default_value_t = 500)]
    devices: usize,
    /// Grids they are spread over.
    #[arg(long, default_value_t = 5)]
    grids: usize,
    /// Requests each phone raises in its day (each also settled on the spot; there is one visit).
    #[arg(long, default_value_t = 2)]
    requests: usize,
    /// Length of the steady part of the day, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// samod's burst is stopped after this many seconds and reported as far as it got.
    #[arg(long, default_value_t = 120)]
    samod_timeout_s: u64,
    /// A short run for the test command: 20 phones, 2 s.
    #[arg(long)]
    smoke: bool,
}

/// One push of a phone's day: the new changes of one document.
struct Push {
    doc_id: String,
    bytes: Vec<u8>,
    hashes: Vec<[u8; 32]>,
}

struct Phone {
    name: String,
    walker: String,
    grid: String,
    day: Vec<Push>,
    /// The one change pushed during the steady part.
    later: Push,
}

fn at(minutes: i64) -> Timestamp {
    Timestamp(chrono::DateTime::from_timestamp(1_764_547_200 + minutes * 60, 0).expect("a fixed date"))
}

fn changes_since(doc: &mut AutoCommit, heads: &[ChangeHash]) -> Push {
    let changes = doc.get_changes(heads);
    Push {
        doc_id: String::new(),
        bytes: changes.iter().flat_map(|c| c.raw_bytes().to_vec()).collect(),
        hashes: changes.iter().map(|c| c.hash().0).collect(),
    }
}

/// A phone's day, made with the document API as the app would make it.
fn phone(i: usize, grids: usize, requests: usize) -> anyhow::Result<Phone> {
    let (name, walker, grid) = (format!("phone-{i:03}"), format!("w{i:03}"), format!("g{}", i % grids));
    let ctx = |m: i64| ActionContext::new(walker.clone(), name.clone(), at(m));
    let mut day = Vec::new();
    let mut later = None;
    for r in 0..requests {
        let id = format!("r-{i:03}-{r}");
        let body = RequestBody {
            reporter: Reporter::Anonymous,
            place: Place { address: format!("{grid} 村道 {r} 号"), gps: None },
            micro_grid: None,
            category: "streetlight".into(),
            description: format!("路灯不亮（{name} 第 {r} 件）"),
            urgency: Urgency::Normal,
            source: Source::Visit,
            visit: None,
            number: None,
        };
        let mut doc = RequestDocument::create(&ctx(r as i64), &id, &grid, &body)?;
        day.push(Push { doc_id: id.clone(), ..changes_since(doc.automerge(), &[]) });
        // Settled on the spot by the walker who received it (首问责任制), and later in the day
        // she tells the resident so (the one change of the steady part).
        let heads = doc.automerge().get_heads();
        let settled = gridwalk_core::lifecycle::TriageDecision::SolvedOnSpot { note: "当场已修好".into() };
        doc.apply(&ctx(r as i64 + 10), Action::Triaged { decision: settled })?;
        doc.automerge().commit();
        day.push(Push { doc_id: id.clone(), ..changes_since(doc.automerge(), &heads) });
        if r == 0 {
            let heads = doc.automerge().get_heads();
            doc.apply(&ctx(r as i64 + 90), Action::FeedbackGiven { note: "已告知居民".into() })?;
            doc.automerge().commit();
            later = Some(Push { doc_id: id, ..changes_since(doc.automerge(), &heads) });
        }
    }
    let visit = VisitBody {
        target: VisitTarget::Place { address: format!("{grid} 村委会") },
        micro_grid: None,
        kind: VisitKind::Daily,
        visited_at: at(30),
        walkers: vec![walker.clone()],
        companions: Vec::new(),
        notes: "走访正常".into(),
        requests_raised: Vec::new(),
        gps: None,
    };
    let vid = format!("v-{i:03}");
    let mut doc = VisitDocument::create(&ctx(30), &vid, &grid, &visit)?;
    day.push(Push { doc_id: vid, ..changes_since(doc.automerge(), &[]) });
    Ok(Phone { name, walker, grid, day, later: later.context("a phone raises at least one request")? })
}

/// Latency samples of one kind (ms).
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl Samples {
    fn add(&self, ms: f64) {
        self.0.lock().unwrap().push(ms);
    }
    fn json(&self) -> Value {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| if v.is_empty() { f64::NAN } else { v[((v.len() - 1) as f64 * p).round() as usize] };
        json!({ "count": v.len(), "p50_ms": round2(q(0.5)), "p99_ms": round2(q(0.99)), "max_ms": round2(q(1.0)) })
    }
    fn p99(&self) -> f64 {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() - 1) as f64 * 0.99).round() as usize]
        }
    }
}

#[derive(Default)]
struct Stats {
    burst_push: Samples,
    steady_push: Samples,
    pull: Samples,
    errors: AtomicU64,
    stored: AtomicU64,
    duplicates_stored: AtomicU64,
    /// When the last change of the burst was acknowledged, in µs after the start.
    burst_done_us: AtomicU64,
}

/// What a phone received: each change once (a second delivery is counted).
#[derive(Default)]
struct Received {
    hashes: HashSet<[u8; 32]>,
    twice: u64,
}

impl Received {
    fn take(&mut self, page: &PullResponse) -> anyhow::Result<()> {
        for d in &page.docs {
            let hashes: Vec<[u8; 32]> = if d.snapshot {
                AutoCommit::load(&d.bytes)?.get_changes(&[]).iter().map(|c| c.hash().0).collect()
            } else {
                core_docs::decode_changes_strict(&d.bytes)?.iter().map(|c| c.hash().0).collect()
            };
            for h in hashes {
                if !self.hashes.insert(h) {
                    self.twice += 1;
                }
            }
        }
        Ok(())
    }
}

struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    token: String,
    turn: AtomicUsize,
}

impl Client {
    /// The next relay, round robin.
    fn url(&self) -> &str {
        &self.urls[self.turn.fetch_add(1, Ordering::Relaxed) % self.urls.len()]
    }

    async fn push(&self, p: &Push) -> anyhow::Result<PushResponse> {
        let body = wire::encode(&PushRequest {
            version: PROTOCOL_VERSION,
            docs: vec![DocChanges { doc_id: p.doc_id.clone(), bytes: p.bytes.clone() }],
        });
        let resp = self
            .http
            .post(format!("{}/v1/push", self.url()))
            .bearer_auth(&self.token)
            .header("content-type", wire::BINARY_CONTENT_TYPE)
            .body(body)
            .send()
            .await?;
        ensure!(resp.status().is_success(), "push: {} {}", resp.status(), resp.text().await.unwrap_or_default());
        Ok(wire::decode(&resp.bytes().await?)?)
    }

    async fn pull(&self, cursor: &str) -> anyhow::Result<PullResponse> {
        let resp = self
            .http
            .get(format!("{}/v1/pull", self.url()))
            .query(&[("cursor", cursor), ("limit", "500")])
            .bearer_auth(&self.token)
            .send()
            .await?;
        ensure!(resp.status().is_success(), "pull: {} {}", resp.status(), resp.text().await.unwrap_or_default());
        Ok(wire::decode(&resp.bytes().await?)?)
    }
}

/// Tries an operation up to five times; a failure is counted as an error either way.
async fn with_retries<T, F: std::future::Future<Output = anyhow::Result<T>>>(
    stats: &Stats,
    mut op: impl FnMut() -> F,
) -> anyhow::Result<(T, f64)> {
    let mut last = None;
    for _ in 0..5 {
        let began = Instant::now();
        match op().await {
            Ok(v) => return Ok((v, began.elapsed().as_secs_f64() * 1000.0)),
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(last.expect("five tries"))
}

/// One phone's whole run against our relay(s). Returns what it received. A phone that fails
/// still says it is done pushing, so the others' final pulls are not kept waiting for it.
async fn our_phone(
    client: Arc<Client>,
    phone: Arc<Phone>,
    stats: Arc<Stats>,
    began: Instant,
    steady_for: Duration,
    everyone_pushed: Arc<tokio::sync::Barrier>,
    seed: u64,
) -> anyhow::Result<Received> {
    let arrived = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let result =
        phone_day(client, phone, stats, began, steady_for, everyone_pushed.clone(), seed, arrived.clone()).await;
    if !arrived.load(Ordering::SeqCst) {
        everyone_pushed.wait().await;
    }
    result
}

async fn phone_day(
    client: Arc<Client>,
    phone: Arc<Phone>,
    stats: Arc<Stats>,
    began: Instant,
    steady_for: Duration,
    everyone_pushed: Arc<tokio::sync::Barrier>,
    seed: u64,
    arrived: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Received> {
    let mut received = Received::default();
    let mut cursor = String::new();
    let pull = |cursor: String| {
        let (client, stats) = (client.clone(), stats.clone());
        async move {
            let (page, ms) = with_retries(&stats, || client.pull(&cursor)).await?;
            stats.pull.add(ms);
            Ok::<_, anyhow::Error>(page)
        }
    };
    // The burst: the whole day, one push per change, a pull after each.
    for p in &phone.day {
        let (resp, ms) = with_retries(&stats, || client.push(p)).await?;
        stats.burst_push.add(ms);
        stats.stored.fetch_add(u64::from(resp.stored), Ordering::Relaxed);
        stats.duplicates_stored.fetch_add(u64::from(resp.duplicates), Ordering::Relaxed);
        let page = pull(cursor.clone()).await?;
        received.take(&page)?;
        cursor = page.cursor;
    }
    stats.burst_done_us.fetch_max(began.elapsed().as_micros() as u64, Ordering::Relaxed);
    // The steady day: a pull about once a second, one more change at a random moment.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let steady_began = Instant::now();
    let push_at = steady_for.mul_f64(rng.random_range(0.1..0.8));
    let mut pushed_later = false;
    while steady_began.elapsed() < steady_for {
        tokio::time::sleep(Duration::from_millis(rng.random_range(700..1300))).await;
        if !pushed_later && steady_began.elapsed() >= push_at {
            let (resp, ms) = with_retries(&stats, || client.push(&phone.later)).await?;
            stats.steady_push.add(ms);
            stats.stored.fetch_add(u64::from(resp.stored), Ordering::Relaxed);
            pushed_later = true;
        }
        let page = pull(cursor.clone()).await?;
        received.take(&page)?;
        cursor = page.cursor;
    }
    if !pushed_later {
        let (resp, ms) = with_retries(&stats, || client.push(&phone.later)).await?;
        stats.steady_push.add(ms);
        stats.stored.fetch_add(u64::from(resp.stored), Ordering::Relaxed);
    }
    // Everyone's last change is in; pull until nothing is left.
    arrived.store(true, Ordering::SeqCst);
    everyone_pushed.wait().await;
    loop {
        let page = pull(cursor.clone()).await?;
        received.take(&page)?;
        cursor = page.cursor;
        if !page.more {
            break;
        }
    }
    Ok(received)
}

/// Peak resident memory of a process so far (MB), from /proc.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    round2(kb / 1024.0)
}

/// CPU of a process and its living children (the PostgreSQL server's backends), ms.
fn tree_cpu_ms(pid: u32) -> f64 {
    let mut total = process_cpu_ms(pid);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if parent == Some(pid) {
                total += process_cpu_ms(child);
            }
        }
    }
    total
}

/// One configuration of our relays: start them, enrol every phone, run the day, check.
fn ours(
    label: &str,
    phones: &[Arc<Phone>],
    relay_bin: &Path,
    work: &Path,
    database: Option<(&str, Option<u32>)>,
    relays: usize,
    steady_for: Duration,
) -> anyhow::Result<Value> {
    let data = work.join(label);
    std::fs::create_dir_all(&data)?;
    let url = database.map(|(u, _)| u);
    let processes: Vec<RelayProcess> = (0..relays)
        .map(|r| RelayProcess::start_on(relay_bin, &data.join(format!("relay-{r}")), url))
        .collect::<anyhow::Result<_>>()?;
    let urls: Vec<String> = processes.iter().map(|p| format!("http://{}", p.addr)).collect();
    // Enrolment, untimed: a code from the relay's command line for each phone, redeemed over HTTP.
    let mut tokens = Vec::with_capacity(phones.len());
    let http = reqwest::blocking::Client::new();
    for (i, p) in phones.iter().enumerate() {
        let mut command = std::process::Command::new(relay_bin);
        if let Some(url) = url {
            command.args(["--database", url]);
        }
        command
            .arg("--data-dir")
            .arg(data.join("relay-0"))
            .args(["enroll", "--name", &p.name, "--role", "walker", "--grids", &p.grid, "--walker", &p.walker]);
        let out = command.output().context("gridwalk-relay enroll")?;
        ensure!(out.status.success(), "enroll: {}", String::from_utf8_lossy(&out.stderr));
        let code = String::from_utf8(out.stdout)?.trim().to_string();
        let reply: EnrollResponse = http
            .post(format!("{}/v1/enroll", urls[i % urls.len()]))
            .json(&EnrollRequest { code, device_name: p.name.clone(), device_key: None })
            .send()?
            .error_for_status()?
            .json()?;
        tokens.push(reply.token);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let stats = Arc::new(Stats::default());
    let cpu_before: Vec<f64> = processes.iter().map(|p| process_cpu_ms(p.pid())).collect();
    let pg_cpu_before = database.and_then(|(_, pid)| pid).map(tree_cpu_ms).unwrap_or(0.0);
    let own_before = own_cpu_ms();
    let began = Instant::now();
    let results: Vec<anyhow::Result<Received>> = runtime.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(4).build()?;
        let barrier = Arc::new(tokio::sync::Barrier::new(phones.len()));
        let tasks: Vec<_> = phones
            .iter()
            .zip(&tokens)
            .enumerate()
            .map(|(i, (p, token))| {
                let client = Arc::new(Client {
                    http: http.clone(),
                    urls: urls.clone(),
                    token: token.clone(),
                    turn: AtomicUsize::new(i),
                });
                tokio::spawn(our_phone(client, p.clone(), stats.clone(), began, steady_for, barrier.clone(), i as u64))
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(anyhow::Error::from).and_then(|r| r));
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    let wall_s = began.elapsed().as_secs_f64();
    let relay_cpu_ms: f64 = processes.iter().zip(&cpu_before).map(|(p, b)| process_cpu_ms(p.pid()) - b).sum();
    let pg_cpu_ms = database.and_then(|(_, pid)| pid).map(tree_cpu_ms).unwrap_or(0.0) - pg_cpu_before;
    let rss: Vec<f64> = processes.iter().map(|p| peak_rss_mb(p.pid())).collect();

    // Nothing lost: every phone holds every change of its grid but its own (a phone is never
    // sent back what it pushed). A change pulled a second time (inside a first pull's whole
    // document and again as a change) is counted, and costs the phone nothing: it drops it by
    // hash. What must never happen is a change stored twice or passed over.
    let mut expected: HashMap<&str, HashSet<[u8; 32]>> = HashMap::new();
    for p in phones {
        let set = expected.entry(p.grid.as_str()).or_default();
        for push in p.day.iter().chain([&p.later]) {
            set.extend(push.hashes.iter().copied());
        }
    }
    let (mut complete, mut lost, mut twice, mut failed) = (0usize, 0usize, 0u64, 0usize);
    for (p, r) in phones.iter().zip(results) {
        match r {
            Ok(r) => {
                let own: HashSet<[u8; 32]> =
                    p.day.iter().chain([&p.later]).flat_map(|push| push.hashes.iter().copied()).collect();
                let want: HashSet<[u8; 32]> = expected[p.grid.as_str()].difference(&own).copied().collect();
                let missing = want.difference(&r.hashes).count();
                lost += missing;
                twice += r.twice;
                complete += usize::from(missing == 0);
            }
            Err(e) => {
                eprintln!("{label}: {} failed: {e:#}", p.name);
                failed += 1;
            }
        }
    }
    let changes: usize = phones.iter().map(|p| p.day.iter().map(|d| d.hashes.len()).sum::<usize>()).sum();
    let all_changes = changes + phones.iter().map(|p| p.later.hashes.len()).sum::<usize>();
    let burst_s = stats.burst_done_us.load(Ordering::Relaxed) as f64 / 1e6;
    drop(processes);
    Ok(json!({
        "relays": relays,
        "store": if database.is_some() { "postgres" } else { "sqlite" },
        "burst": {
            "changes": changes,
            "seconds": round2(burst_s),
            "accepted_changes_per_s": round2(changes as f64 / burst_s),
            "push": stats.burst_push.json(),
        },
        "steady": { "seconds": steady_for.as_secs(), "push": stats.steady_push.json() },
        "pull": stats.pull.json(),
        "changes_pushed": all_changes,
        "changes_stored": stats.stored.load(Ordering::Relaxed),
        "changes_answered_as_already_stored": stats.duplicates_stored.load(Ordering::Relaxed),
        "errors_retried": stats.errors.load(Ordering::Relaxed),
        "phones_failed": failed,
        "phones_holding_their_grid_whole": complete,
        "changes_lost": lost,
        "changes_pulled_a_second_time": twice,
        "relay_cpu_ms": round2(relay_cpu_ms),
        "postgres_cpu_ms": round2(pg_cpu_ms),
        "phones_cpu_ms": round2(own_cpu_ms() - own_before),
        "relay_peak_rss_mb": rss,
        "wall_s": round2(wall_s),
        "_p99_steady_push": stats.steady_push.p99(),
        "_p99_burst_push": stats.burst_push.p99(),
    }))
}

/// samod on the same day: its server and every phone in this process, over websockets. The
/// burst's clock stops when the server holds every document at its day's heads.
async fn samod_burst(phones: &[Arc<Phone>], timeout: Duration) -> anyhow::Result<Value> {
    let stopped = |_| anyhow::anyhow!("samod repo stopped");
    let seen = Arc::new(Opened::default());
    let server = Repo::build_tokio()
        .with_peer_id(PeerId::from("hall-server"))
        .with_observer(OpenedObserver(seen.clone()))
        .load()
        .await;
    let (addr, server_task) = samod_server(&server).await?;
    let url = url::Url::parse(&format!("ws://{addr}/"))?;
    // Each phone's documents at the end of its day, as the server must come to hold them.
    let mut days = Vec::new();
    for p in phones {
        let mut docs: Vec<(String, Vec<u8>)> = Vec::new();
        for push in &p.day {
            match docs.iter_mut().find(|(d, _)| *d == push.doc_id) {
                Some((_, bytes)) => bytes.extend_from_slice(&push.bytes),
                None => docs.push((push.doc_id.clone(), push.bytes.clone())),
            }
        }
        days.push(docs);
    }
    let changes: usize = phones.iter().map(|p| p.day.iter().map(|d| d.hashes.len()).sum::<usize>()).sum();
    let converged_changes = Arc::new(AtomicUsize::new(0));
    let fallbacks = Arc::new(Fallbacks::default());
    // Every phone's repo is made and connected first, as ours are enrolled first; this too
    // must fit in the time samod is given (with 500 phones it may not), and the burst runs
    // with the phones that connected.
    let deadline = Instant::now() + timeout;
    let mut repos = Vec::new();
    let connecting = Instant::now();
    for i in 0..days.len() {
        if Instant::now() >= deadline {
            break;
        }
        let repo = Repo::build_tokio().with_peer_id(PeerId::from(format!("phone-{i:03}"))).load().await;
        let dialer = repo.dial(BackoffConfig::default(), Arc::new(WsDialer { url: url.clone() })).map_err(stopped)?;
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, dialer.established()).await {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("samod dial failed: {e:?}"))?,
            Err(_) => break,
        };
        repos.push((repo, dialer));
    }
    let connect_s = connecting.elapsed().as_secs_f64();
    let connected = repos.len();
    eprintln!("samod: {connected} of {} phones connected in {connect_s:.1} s", days.len());
    // The burst: every phone makes its day's documents at once; the server must come to hold
    // each at its heads.
    let own_before = own_cpu_ms();
    let began = Instant::now();
    let mut waits = Vec::new();
    for ((repo, _), docs) in repos.iter().zip(days) {
        for (_, bytes) in docs {
            let (repo, server, seen, fallbacks, converged) =
                (repo.clone(), server.clone(), seen.clone(), fallbacks.clone(), converged_changes.clone());
            waits.push(tokio::spawn(async move {
                let doc = Automerge::load(&bytes)?;
                let n = doc.get_changes(&[]).len();
                let heads = Arc::new(sorted_heads(&doc));
                let handle = repo.create(doc).await.map_err(|_| anyhow::anyhow!("samod repo stopped"))?;
                let id: DocumentId = handle.document_id().clone();
                converge(server, seen, true, id, heads, fallbacks).await?;
                converged.fetch_add(n, Ordering::Relaxed);
                drop(handle);
                Ok::<_, anyhow::Error>(())
            }));
        }
    }
    let all = futures::future::join_all(waits);
    let finished = connected == phones.len()
        && tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), all).await.is_ok();
    let seconds = began.elapsed().as_secs_f64();
    let accepted = converged_changes.load(Ordering::Relaxed);
    let cpu = own_cpu_ms() - own_before;
    server_task.abort();
    Ok(json!({
        "finished": finished,
        "phones_connected": connected,
        "connecting_s": round2(connect_s),
        "changes": changes,
        "changes_on_the_server": accepted,
        "seconds": round2(seconds),
        "accepted_changes_per_s": round2(accepted as f64 / seconds),
        "server_and_phones_cpu_ms": round2(cpu),
        "fallbacks": fallbacks.to_json(),
    }))
}

pub fn run(args: &Args) -> anyhow::Result<Value> {
    let (devices, seconds, samod_timeout) = if args.smoke {
        (20, 2, Duration::from_secs(30))
    } else {
        (args.devices, args.seconds, Duration::from_secs(args.samod_timeout_s))
    };
    ensure!(
        devices >= 1 && args.grids >= 1 && args.requests >= 1,
        "--devices, --grids and --requests must be at least 1"
    );
    let relay_bin = sibling("gridwalk-relay")?;
    let work = tempfile::tempdir()?;
    let phones: Vec<Arc<Phone>> =
        (0..devices).map(|i| phone(i, args.grids, args.requests).map(Arc::new)).collect::<anyhow::Result<_>>()?;
    let steady = Duration::from_secs(seconds);
    let load_before = load_average();

    // Each configuration's figures go to stderr as soon as they are known, so a run stopped
    // half-way still says what it measured.
    let sqlite = ours("sqlite", &phones, &relay_bin, work.path(), None, 1, steady)?;
    eprintln!("a_sqlite: {sqlite}");
    let pg = gridwalk_tests::pg::TempPostgres::start();
    let pid = pg.postmaster_pid();
    let one_db = pg.new_database();
    let postgres_one = ours("postgres-1", &phones, &relay_bin, work.path(), Some((&one_db, pid)), 1, steady)?;
    eprintln!("b_postgres_one_relay: {postgres_one}");
    let three_db = pg.new_database();
    let postgres_three = ours("postgres-3", &phones, &relay_bin, work.path(), Some((&three_db, pid)), 3, steady)?;
    eprintln!("c_postgres_three_relays: {postgres_three}");
    let samod_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let samod = samod_runtime.block_on(samod_burst(&phones, samod_timeout))?;
    // A samod stopped at its time limit is still working through its backlog; its runtime is
    // left to stop in the background rather than waited for.
    samod_runtime.shutdown_background();

    let rate = |v: &Value| v["burst"]["accepted_changes_per_s"].as_f64().unwrap_or(0.0);
    let samod_rate = samod["accepted_changes_per_s"].as_f64().unwrap_or(0.0);
    let p99 = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    let whole =
        |v: &Value| v["changes_lost"] == 0 && v["phones_failed"] == 0 && v["changes_stored"] == v["changes_pushed"];
    let rss_ok = |v: &Value| {
        v["relay_peak_rss_mb"].as_array().is_some_and(|a| a.iter().all(|m| m.as_f64().unwrap_or(0.0) <= 200.0))
    };
    let goals = json!({
        "a_sqlite_at_least_10x_samod_changes_per_s": rate(&sqlite) >= 10.0 * samod_rate,
        "c_three_relays_at_least_1_8x_one_on_postgres": rate(&postgres_three) >= 1.8 * rate(&postgres_one),
        "p99_push_at_most_250_ms_in_a_and_c_steady": p99(&sqlite, "_p99_steady_push") <= 250.0 && p99(&postgres_three, "_p99_steady_push") <= 250.0,
        "p99_push_at_most_250_ms_in_a_and_c_burst": p99(&sqlite, "_p99_burst_push") <= 250.0 && p99(&postgres_three, "_p99_burst_push") <= 250.0,
        "nothing_lost_or_stored_twice": whole(&sqlite) && whole(&postgres_one) && whole(&postgres_three),
        "relay_rss_at_most_200_mb": rss_ok(&sqlite) && rss_ok(&postgres_one) && rss_ok(&postgres_three),
    });
    let ratios = json!({
        "a_over_samod_changes_per_s": round2(rate(&sqlite) / samod_rate),
        "c_over_b_changes_per_s": round2(rate(&postgres_three) / rate(&postgres_one)),
        "b_over_a_changes_per_s": round2(rate(&postgres_one) / rate(&sqlite)),
    });
    let strip = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.retain(|k, _| !k.starts_with('_'));
        }
        v
    };
    let result = json!({
        "benchmark": "P6 load (issue 15): gridwalk-relay on SQLite, on PostgreSQL, three relays on one PostgreSQL, against samod 0.16",
        "smoke": args.smoke,
        "devices": devices,
        "grids": args.grids,
        "changes_per_device": phones[0].day.iter().map(|d| d.hashes.len()).sum::<usize>() + 1,
        "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "load_average_before": load_before, "load_average_after": load_average() },
        "a_sqlite": strip(sqlite),
        "b_postgres_one_relay": strip(postgres_one),
        "c_postgres_three_relays": strip(postgres_three),
        "samod": samod,
        "ratios": ratios,
        "goals": goals,
    });
    // A relay that loses or doubles a change fails the run, smoke run included.
    ensure!(
        result["goals"]["nothing_lost_or_stored_twice"] == true,
        "changes were lost or stored twice: {}",
        serde_json::to_string_pretty(&result)?
    );
    Ok(result)
}

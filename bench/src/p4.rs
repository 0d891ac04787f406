//! P4 (issue 2): the first page (50) of a grid's requests in one status, newest change first, on
//! a small and a large town, each measured against the same SQL written by hand on the same
//! file; and one request creation (document, index, full-text row and outbox entry in one
//! transaction) against a plain INSERT of the same document bytes.
//!
//! The goals, from the issue: the large town's page costs at most twice the small town's, and
//! the API costs at most 1.5 times the raw SQL. Every comparison is interleaved (API and raw SQL
//! on the same connection, and the towns with each other), so drift (other work on the machine,
//! its clock speed, the page cache) hits both sides alike.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, TimeZone, Utc};
use gridwalk_core::demo::{self, DemoConfig};
use gridwalk_core::docs::{GeoPoint, Reporter, Source, Urgency};
use gridwalk_core::lifecycle::Status;
use gridwalk_core::store::{Identity, NewRequest, RequestFilter, RequestSort, LATEST_VERSION};
use gridwalk_core::{ActionContext, Store};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

/// The page size of the acceptance.
const PAGE: usize = 50;

/// The same page as `Store::list_requests` asks for, written as a person would write it by hand.
const RAW_SQL: &str = "SELECT id, grid, status, category, urgency, department, owner, deadline, \
     updated_at, created_at, address, description FROM request_index \
     WHERE grid = ?1 AND status = ?2 ORDER BY updated_at DESC, id LIMIT 50";

/// The statement `list_requests` builds for this filter (see `core/src/store/query.rs`). It is
/// used only to show its query plan next to the raw one; the timings call the API itself.
const API_SQL_FOR_PLAN: &str = "SELECT id, grid, status, category, urgency, department, owner, \
     deadline, updated_at, created_at, address, description FROM request_index \
     WHERE grid IN (?1) AND status IN (?2) ORDER BY updated_at DESC, id LIMIT 50 OFFSET 0";

/// Bump when the towns this benchmark asks the generator for change (or the generator changes what
/// it makes), so that a kept town of an older shape is not reused by mistake. A new schema version
/// alone needs no bump: a kept town is upgraded by the store's own migrations.
const TOWN_SHAPE: u32 = 1;

#[derive(clap::Args)]
pub struct Args {
    /// Request counts of the towns to compare, smallest first.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    scales: Vec<usize>,
    /// Timed repetitions of each query, per town.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Timed request creations (and as many raw inserts).
    #[arg(long, default_value_t = 200)]
    creations: usize,
    /// Seed of the generated towns.
    #[arg(long, default_value_t = 4)]
    seed: u64,
    /// Keep generated towns here, by scale and seed, and reuse them on the next run. Each run
    /// works on a copy, so the benchmark's own writes never reach a kept town; only the store's
    /// schema upgrades do.
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// Tiny towns and few repetitions, to check in CI that the benchmark runs; the figures mean
    /// little.
    #[arg(long)]
    smoke: bool,
}

pub fn run(args: &Args) -> anyhow::Result<Value> {
    let (scales, iterations, creations) = if args.smoke {
        // A debug build generates about a hundred requests a second, so the larger town stays at
        // a thousand for the smoke run to finish well within a minute.
        (vec![200, 1000], 20, 10)
    } else {
        (args.scales.clone(), args.iterations, args.creations)
    };
    ensure!(scales.len() >= 2, "give at least two scales, smallest first");
    ensure!(scales.windows(2).all(|w| w[0] < w[1]), "give the scales smallest first, without repeats");
    ensure!(iterations > 0 && creations > 0, "iterations and creations must be positive");

    // Work copies live beside the kept towns when there are some, so copying them stays on one
    // disk and the timed writes hit the same file system the towns are kept on.
    if let Some(dir) = &args.keep_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let work = match &args.keep_dir {
        Some(dir) => tempfile::Builder::new().prefix("p4-work-").tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("p4-work-").tempdir()?,
    };

    let grids = grids_for(scales[0]);
    let mut cases = Vec::new();
    for &requests in &scales {
        let town = prepare_town(requests, grids, args.seed, args.keep_dir.as_deref(), work.path())?;
        let store = Store::open(&town.path).with_context(|| format!("opening the town at {}", town.path.display()))?;
        let target = pick_target(store.connection())?;
        cases.push(Case { requests, town, store, target });
    }
    let timings = time_first_pages(&cases, iterations)?;

    let mut scale_reports = Vec::new();
    let mut api_medians = Vec::new();
    let mut raw_medians = Vec::new();
    let mut api_over_raw_ok = true;
    for (case, timing) in cases.iter().zip(&timings) {
        let api = Stats::of(&timing.api);
        let raw = Stats::of(&timing.raw);
        let api_over_raw = api.median / raw.median;
        api_over_raw_ok &= api_over_raw <= 1.5;
        api_medians.push(api.median);
        raw_medians.push(raw.median);
        let conn = case.store.connection();
        scale_reports.push(json!({
            "requests": case.requests,
            "generate_seconds": round(case.town.generate_seconds, 2),
            "generated_this_run": case.town.generated_now,
            "generated_at_schema": case.town.generated_at_schema,
            "town": case.town.demo,
            "file_mb": round(std::fs::metadata(&case.town.path)?.len() as f64 / 1e6, 1),
            "grid": case.target.grid,
            "status": case.target.status.as_str(),
            "matches": case.target.matches,
            "page_rows": timing.page_rows,
            "api_us": api.to_json(),
            "raw_sql_us": raw.to_json(),
            "api_over_raw": round(api_over_raw, 3),
            "plan": {
                "raw": query_plan(conn, RAW_SQL, &case.target)?,
                "api": query_plan(conn, API_SQL_FOR_PLAN, &case.target)?,
            },
        }));
    }

    // One creation is measured on the largest town: its indexes are the deepest, so that is
    // where a user action costs the most.
    let largest = cases.last().expect("at least two scales");
    let store = &largest.store;
    let create = time_creation(store, &largest.target.grid, creations)?;
    let create_api = Stats::of(&create.api);
    let create_raw = Stats::of(&create.raw);

    let large_over_small = api_medians[api_medians.len() - 1] / api_medians[0];
    let raw_large_over_small = raw_medians[raw_medians.len() - 1] / raw_medians[0];
    let journal_mode: String = store.connection().pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    let synchronous: i64 = store.connection().pragma_query_value(None, "synchronous", |r| r.get(0))?;
    // FULL is what the store promises: every commit waits for the disk.
    let synchronous = match synchronous {
        0 => "OFF".to_string(),
        1 => "NORMAL".to_string(),
        2 => "FULL".to_string(),
        3 => "EXTRA".to_string(),
        other => other.to_string(),
    };
    Ok(json!({
        "benchmark": "p4",
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "work_dir_fs": file_system_of(work.path()),
            "sqlite": rusqlite::version(),
        },
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "smoke": args.smoke,
        "store_schema": LATEST_VERSION,
        "seed": args.seed,
        "iterations": iterations,
        "grids_per_town": grids,
        "scales": scale_reports,
        "ratio_large_over_small_api": round(large_over_small, 3),
        "ratio_large_over_small_raw": round(raw_large_over_small, 3),
        "goals": {
            "large_over_small_le_2": large_over_small <= 2.0,
            "api_over_raw_le_1_5": api_over_raw_ok,
        },
        "create": {
            "town_requests": largest.requests,
            "grid": largest.target.grid,
            "creations": creations,
            "journal_mode": journal_mode,
            "synchronous": synchronous,
            "document_bytes": Stats::of(&create.sizes).median as u64,
            "api_us": create_api.to_json(),
            "raw_insert_us": create_raw.to_json(),
            "ratio": round(create_api.median / create_raw.median, 3),
        },
    }))
}

// ----- towns ---------------------------------------------------------------------------------

/// The end of the generated year. Fixed, so a kept town is the same town on every run.
fn until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 30, 0, 0, 0).single().expect("a valid date")
}

/// Requests per grid in the smallest town. A page of 50 in one status needs about this many: the
/// commonest status holds roughly half of a grid's requests, and the pair chosen should fill the
/// page with room to spare.
const SMALLEST_TOWN_REQUESTS_PER_GRID: usize = 200;

/// How many grids every town of a run has. The issue compares a full first page on a small and
/// on a large town, so the small town must have a grid and status with at least 50 requests. The
/// street of `DemoConfig::street` has 47 grids, about 21 requests per grid at 1,000 requests and
/// so never more than a dozen or so in one status: its page would hold a fraction of the rows the
/// large town's does and the ratio would measure page sizes, not scaling. So all towns of a run
/// share one shape with fewer grids, and only the number of requests differs between them.
fn grids_for(smallest_scale: usize) -> usize {
    (smallest_scale / SMALLEST_TOWN_REQUESTS_PER_GRID).clamp(1, 40)
}

fn town_config(requests: usize, grids: usize, seed: u64) -> DemoConfig {
    let mut cfg = DemoConfig::street(seed, until());
    cfg.requests = requests;
    // The generator puts 50 households in a grid and at least one grid in each village.
    cfg.villages = grids;
    cfg.households = grids * 50;
    // Enterprise grids would add grids without households; the list works the same on them.
    cfg.enterprise_grids = 0;
    cfg.enterprises = 0;
    // Few plain visits, so that generating the town is mostly generating its requests. (Requests
    // raised on a visit still bring theirs: the generator makes them alongside.)
    cfg.visits = requests.min(2000);
    cfg
}

struct Town {
    /// This run's working copy.
    path: PathBuf,
    generate_seconds: f64,
    generated_now: bool,
    /// The schema version of the store the town was generated into: the generation time was
    /// measured with that version's indexes.
    generated_at_schema: Option<u64>,
    demo: Value,
}

/// Gives a working copy of the town with `requests` requests: generated now, or copied from
/// `keep_dir` when an earlier run left it there.
fn prepare_town(
    requests: usize,
    grids: usize,
    seed: u64,
    keep_dir: Option<&Path>,
    work: &Path,
) -> anyhow::Result<Town> {
    let name = format!("p4-town-shape{TOWN_SHAPE}-g{grids}-r{requests}-s{seed}");
    let path = work.join(format!("{name}.sqlite"));
    if let Some(dir) = keep_dir {
        let kept = dir.join(format!("{name}.sqlite"));
        let sidecar = dir.join(format!("{name}.json"));
        if kept.is_file() && sidecar.is_file() {
            let meta: Value = serde_json::from_slice(&std::fs::read(&sidecar)?)?;
            // Opening a store brings its schema up to date. Doing it on the kept town, once,
            // spares every later run the migration, and a 100,000-request town regenerating
            // whenever the schema grows.
            drop(Store::open(&kept).with_context(|| format!("upgrading the kept town {}", kept.display()))?);
            copy_database(&kept, &path)?;
            return Ok(Town {
                path,
                generate_seconds: meta["generate_seconds"].as_f64().unwrap_or(f64::NAN),
                generated_now: false,
                generated_at_schema: meta["schema"].as_u64(),
                demo: meta["town"].clone(),
            });
        }
    }

    let started = Instant::now();
    let mut store = Store::create(
        &path,
        Identity {
            device: "bench-device".into(),
            // A walker the demo town has: the creations below act as them.
            walker: "w001".into(),
        },
    )?;
    let report = demo::generate(&mut store, &town_config(requests, grids, seed))?;
    // Closing the only connection checkpoints the WAL into the file, so the file alone is the
    // whole town and can be copied.
    drop(store);
    let generate_seconds = started.elapsed().as_secs_f64();
    let demo = serde_json::to_value(&report)?;

    if let Some(dir) = keep_dir {
        // Copy under a temporary name and rename, so an interrupted run never leaves half a town
        // that a later run would trust.
        let partial = dir.join(format!("{name}.sqlite.partial"));
        copy_database(&path, &partial)?;
        std::fs::rename(&partial, dir.join(format!("{name}.sqlite")))?;
        let meta = json!({ "generate_seconds": generate_seconds, "schema": LATEST_VERSION, "town": demo });
        std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(&meta)?)?;
    }
    Ok(Town { path, generate_seconds, generated_now: true, generated_at_schema: Some(LATEST_VERSION as u64), demo })
}

/// Copies a closed SQLite file, with its WAL should one have been left behind.
fn copy_database(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    let wal = |p: &Path| PathBuf::from(format!("{}-wal", p.display()));
    if wal(from).is_file() {
        std::fs::copy(wal(from), wal(to))?;
    }
    Ok(())
}

// ----- the first page --------------------------------------------------------------------------

struct Target {
    grid: String,
    status: Status,
    matches: i64,
}

/// Chooses the grid and status to list, from the index alone and deterministically: a pair that
/// fills the page if there is one, preferring the statuses a list is usually opened on (with an
/// office, or rated), then the most rows, then the grid's id.
fn pick_target(conn: &Connection) -> anyhow::Result<Target> {
    let (grid, status, matches): (String, String, i64) = conn
        .query_row(
            "SELECT grid, status, COUNT(*) AS n FROM request_index GROUP BY grid, status
             ORDER BY n >= ?1 DESC, status IN ('assigned', 'rated') DESC, n DESC, grid, status
             LIMIT 1",
            [PAGE as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .context("the town has no requests")?;
    let status = Status::parse(&status).with_context(|| format!("unknown status {status} in the index"))?;
    Ok(Target { grid, status, matches })
}

/// One town of the run, open for the whole of it.
struct Case {
    requests: usize,
    town: Town,
    store: Store,
    target: Target,
}

struct PageTiming {
    api: Vec<f64>,
    raw: Vec<f64>,
    page_rows: usize,
}

/// Times the first page on every town, the API and the raw SQL side by side. The towns take turns
/// within each iteration rather than one after the other: the ratio between towns is a goal, and
/// timing them minutes apart would let the machine's drift (other work on it, its clock speed)
/// into that ratio as well.
fn time_first_pages(cases: &[Case], iterations: usize) -> anyhow::Result<Vec<PageTiming>> {
    let filters: Vec<RequestFilter> = cases
        .iter()
        .map(|case| RequestFilter {
            grids: vec![case.target.grid.clone()],
            statuses: vec![case.target.status],
            sort: RequestSort::UpdatedDesc,
            limit: PAGE,
            ..Default::default()
        })
        .collect();
    // The raw side keeps each town's last page of ids here, to compare with the API's.
    let mut raw_ids: Vec<Vec<String>> = cases.iter().map(|_| Vec::with_capacity(PAGE)).collect();

    // Both sides must list the same requests in the same order, or the comparison means nothing.
    let agree = |k: usize, raw_ids: &[String]| -> anyhow::Result<usize> {
        let case = &cases[k];
        let api_ids: Vec<String> = case.store.list_requests(&filters[k])?.into_iter().map(|r| r.id).collect();
        if api_ids != raw_ids {
            bail!(
                "list_requests and the raw SQL disagree on grid {} status {} of the {}-request town: \
                 {api_ids:?} against {raw_ids:?}",
                case.target.grid,
                case.target.status.as_str(),
                case.requests
            );
        }
        Ok(api_ids.len())
    };
    let mut page_rows = Vec::new();
    for (k, ids) in raw_ids.iter_mut().enumerate() {
        raw_page(cases[k].store.connection(), &cases[k].target, ids)?;
        page_rows.push(agree(k, ids)?);
    }

    let api_once = |k: usize| -> anyhow::Result<f64> {
        let started = Instant::now();
        // The caller's whole cost: the query, the summaries and freeing them again.
        let rows = cases[k].store.list_requests(&filters[k])?;
        black_box(&rows);
        drop(rows);
        Ok(micros(started.elapsed()))
    };
    let raw_once = |k: usize, ids: &mut Vec<String>| -> anyhow::Result<f64> {
        let started = Instant::now();
        raw_page(cases[k].store.connection(), &cases[k].target, ids)?;
        Ok(micros(started.elapsed()))
    };

    let warm_up = (iterations / 10).max(5);
    let mut timings: Vec<PageTiming> = page_rows
        .into_iter()
        .map(|page_rows| PageTiming {
            api: Vec::with_capacity(iterations),
            raw: Vec::with_capacity(iterations),
            page_rows,
        })
        .collect();
    for i in 0..warm_up + iterations {
        for j in 0..cases.len() {
            // Rotate which town goes first, and within a town which side goes first, so that
            // none always runs on caches another has just warmed (or cooled).
            let k = (i + j) % cases.len();
            let (api, raw) = if (i + k).is_multiple_of(2) {
                let api = api_once(k)?;
                (api, raw_once(k, &mut raw_ids[k])?)
            } else {
                let raw = raw_once(k, &mut raw_ids[k])?;
                (api_once(k)?, raw)
            };
            if i >= warm_up {
                timings[k].api.push(api);
                timings[k].raw.push(raw);
            }
        }
    }

    // And they must still agree after the run.
    for (k, ids) in raw_ids.iter().enumerate() {
        agree(k, ids)?;
    }
    Ok(timings)
}

/// The hand-written page: every column read into a local of its type, as a caller of plain SQL
/// would, and the ids kept so the two sides can be compared.
fn raw_page(conn: &Connection, target: &Target, ids: &mut Vec<String>) -> rusqlite::Result<()> {
    // Clearing here frees the previous page inside the timed call, as dropping its summaries
    // does on the API side.
    ids.clear();
    let mut stmt = conn.prepare_cached(RAW_SQL)?;
    let mut rows = stmt.query(params![target.grid, target.status.as_str()])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let grid: String = r.get(1)?;
        let status: String = r.get(2)?;
        let category: String = r.get(3)?;
        let urgency: String = r.get(4)?;
        let department: Option<String> = r.get(5)?;
        let owner: String = r.get(6)?;
        let deadline: Option<i64> = r.get(7)?;
        let updated_at: i64 = r.get(8)?;
        let created_at: i64 = r.get(9)?;
        let address: String = r.get(10)?;
        let description: String = r.get(11)?;
        black_box((
            &grid,
            &status,
            &category,
            &urgency,
            &department,
            &owner,
            deadline,
            updated_at,
            created_at,
            &address,
            &description,
        ));
        ids.push(id);
    }
    Ok(())
}

/// SQLite's plan for `sql` with the target bound, one line per step.
fn query_plan(conn: &Connection, sql: &str, target: &Target) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows = stmt.query_map(params![target.grid, target.status.as_str()], |r| r.get::<_, String>(3))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ----- one creation ------------------------------------------------------------------------------

struct CreateTiming {
    api: Vec<f64>,
    raw: Vec<f64>,
    sizes: Vec<f64>,
}

fn time_creation(store: &Store, grid: &str, creations: usize) -> anyhow::Result<CreateTiming> {
    let conn = store.connection();
    // A resident of the grid reports it, so the creation also checks the household, as a
    // walker's report does. (Should the grid have no households, any household stands in.)
    let (household, household_grid, head, address): (String, String, String, String) = conn.query_row(
        "SELECT id, grid, head_name, address FROM households ORDER BY grid = ?1 DESC, id LIMIT 1",
        [grid],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    // The plain table the raw inserts go to: in the same file, on the same connection, so it
    // shares the journal mode, the synchronous setting and the disk.
    conn.execute_batch("CREATE TABLE IF NOT EXISTS bench_raw (id TEXT PRIMARY KEY, bytes BLOB NOT NULL)")?;
    let insert_raw = |id: &str, bytes: &[u8]| -> anyhow::Result<Duration> {
        let started = Instant::now();
        // One transaction per insert, taken the way the store takes its own.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let inserted = conn
            .prepare_cached("INSERT INTO bench_raw (id, bytes) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![id, bytes]));
        match inserted {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                conn.execute_batch("ROLLBACK")?;
                return Err(e.into());
            }
        }
        Ok(started.elapsed())
    };

    // Seeded ids, one moment per creation after the generated year: reruns make the same
    // documents.
    let mut ctx = ActionContext::seeded(&store.identity().walker, &store.identity().device, until(), 0x9411);
    let request = |i: usize| NewRequest {
        id: None,
        grid: household_grid.clone(),
        micro_grid: None,
        reporter: Reporter::Resident { name: head.clone(), phone: None, household: Some(household.clone()) },
        address: address.clone(),
        gps: Some(GeoPoint { lat: 30.75, lon: 121.05, accuracy_m: Some(15.0) }),
        category: "streetlight".into(),
        description: format!("{address}一带路灯不亮已有一周，晚上出行不便，老人担心摔倒。（第{i}次）"),
        urgency: Urgency::Normal,
        source: Source::WalkIn,
        visit: None,
    };

    let warm_up = (creations / 10).max(3);
    let mut timing = CreateTiming {
        api: Vec::with_capacity(creations),
        raw: Vec::with_capacity(creations),
        sizes: Vec::with_capacity(creations),
    };
    for i in 0..warm_up + creations {
        ctx.at(until() + chrono::Duration::seconds(i as i64 + 1));
        let new = request(i);
        let started = Instant::now();
        let id = store.raise_request(&ctx, new)?;
        let api = started.elapsed();
        // The raw side stores exactly the bytes the document came to, under the same id.
        let bytes = store.document_bytes(&id)?;
        let raw = insert_raw(&id, &bytes)?;
        if i >= warm_up {
            timing.api.push(micros(api));
            timing.raw.push(micros(raw));
            timing.sizes.push(bytes.len() as f64);
        }
    }
    Ok(timing)
}

// ----- figures -----------------------------------------------------------------------------------

struct Stats {
    median: f64,
    p90: f64,
    min: f64,
    samples: usize,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        // Nearest rank: a figure that was actually measured, not an interpolation.
        let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Stats { median: rank(0.5), p90: rank(0.9), min: sorted[0], samples: sorted.len() }
    }

    fn to_json(&self) -> Value {
        json!({
            "median": round(self.median, 1),
            "p90": round(self.p90, 1),
            "min": round(self.min, 1),
            "samples": self.samples,
        })
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// The file system type `path` lives on (from `/proc/mounts`), because the cost of a durable
/// commit depends on it more than on anything in Gridwalk: tmpfs makes fsync free.
fn file_system_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = fields.next()?;
            let fs_type = fields.next()?;
            path.starts_with(mount_point).then(|| (mount_point.len(), fs_type.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs_type)| fs_type)
}

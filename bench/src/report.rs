//! Reports (issue 6): the dashboard and the monthly list (驻网办事清单) on a town of a thousand and
//! of a hundred thousand requests. The goal: the larger town's figures cost at most three times
//! the smaller town's, because they come from the index, not from loading documents. The anchor
//! beside them is the same grid dashboard computed by loading every request document of the grid
//! and folding it, as a report without the index would have to.
//!
//! The towns grow the way towns do: a hundred thousand requests come from a city of a thousand
//! grids (Pinghu has 702), not from one street's 47 grids a hundred times busier. Both towns have
//! about a hundred requests per grid over the same year, five grids per village, a tenth of the
//! grids enterprise grids. So a grid's or a village's dashboard and monthly list read the same
//! number of rows in both towns, and the ratio shows what the growth of everything else costs
//! them. The whole-street dashboard and list are measured too; in a wider town they cover more
//! grids and households (the list prints every request of the month, the dashboard a row per
//! grid and the coverage of every household), so they grow with the town and are reported
//! without a goal in this shape.
//!
//! `--shape busy` is the other way a store grows: one street of 47 grids, the same geography at
//! both scales, a hundred times busier. There every dashboard, the whole street's included, must
//! stay within three times the small town's, because whole months come from running counts
//! (`request_tally`), not from the requests. A monthly list prints every request of its month,
//! so in this shape its output grows a hundredfold and it is reported without a goal.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use chrono::{DateTime, TimeZone, Utc};
use gridwalk_core::demo::{self, DemoConfig};
use gridwalk_core::report::{self, DashboardQuery, Month, Scope};
use gridwalk_core::store::{Identity, RequestFilter, LATEST_VERSION};
use gridwalk_core::{Store, Timestamp};
use serde_json::{json, Value};

/// Bump when the towns this benchmark asks the generator for change.
const TOWN_SHAPE: u32 = 3;

/// Requests per grid over the generated year, in every town of the wide shape.
const REQUESTS_PER_GRID: usize = 100;

/// How the larger town differs from the smaller.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// More grids, each as busy: a city instead of a street.
    Wide,
    /// The same 47 grids, more requests in each.
    Busy,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide",
            Shape::Busy => "busy",
        }
    }
}

/// Household grids of the busy street (nine villages of five), besides its enterprise grids.
const BUSY_VILLAGES: usize = 9;
const BUSY_ENTERPRISE_GRIDS: usize = 2;

#[derive(clap::Args)]
pub struct Args {
    /// Request counts of the towns to compare, smallest first.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    scales: Vec<usize>,
    /// Timed repetitions of each report, per town.
    #[arg(long, default_value_t = 40)]
    iterations: usize,
    #[arg(long, default_value_t = 6)]
    seed: u64,
    /// Wide: the larger town has more grids; busy: the same grids, more requests.
    #[arg(long, value_enum, default_value = "wide")]
    shape: Shape,
    /// Keep generated towns here and reuse them on the next run (each run works on a copy).
    #[arg(long)]
    keep_dir: Option<PathBuf>,
    /// Tiny towns and few repetitions, to check that the benchmark runs; the figures mean little.
    #[arg(long)]
    smoke: bool,
    /// Time only these reports (names as printed, e.g. `dashboard_village_year`); all by default.
    /// For looking closely at one report; the goal is judged only on a run of every report.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// The end of the generated year, fixed so a kept town is the same town on every run.
fn until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 30, 0, 0, 0).single().expect("a valid date")
}

/// The month the monthly lists are made for: the last full month of the year.
const MONTH: &str = "2025-05";

fn town_config(shape: Shape, requests: usize, seed: u64) -> DemoConfig {
    if shape == Shape::Busy {
        let mut cfg = DemoConfig::street(seed, until());
        cfg.requests = requests;
        cfg.villages = BUSY_VILLAGES;
        cfg.households = BUSY_VILLAGES * 5 * 50;
        cfg.enterprise_grids = BUSY_ENTERPRISE_GRIDS;
        cfg.enterprises = BUSY_ENTERPRISE_GRIDS * 12;
        cfg.visits = requests * 7 / 10;
        cfg.days = 365;
        return cfg;
    }
    let grids = (requests / REQUESTS_PER_GRID).max(2);
    let enterprise_grids = (grids / 10).max(1);
    // Five household grids to a village, in every town: a village's reports then cover the same
    // number of grids at every scale.
    let villages = ((grids - enterprise_grids) as f64 / 5.0).round().max(1.0) as usize;
    let household_grids = villages * 5;
    let mut cfg = DemoConfig::street(seed, until());
    cfg.requests = requests;
    cfg.villages = villages;
    // The generator puts 50 households in a grid.
    cfg.households = household_grids * 50;
    cfg.enterprise_grids = enterprise_grids;
    cfg.enterprises = enterprise_grids * 12;
    // Six in ten requests are raised on a visit, which the generator makes with them; one plain
    // visit for every ten requests besides (visits are not what these reports read most).
    cfg.visits = requests * 7 / 10;
    cfg.days = 365;
    cfg
}

struct Town {
    path: PathBuf,
    generate_seconds: f64,
    generated_now: bool,
    demo: Value,
}

fn prepare_town(
    shape: Shape,
    requests: usize,
    seed: u64,
    keep_dir: Option<&Path>,
    work: &Path,
) -> anyhow::Result<Town> {
    let name = match shape {
        Shape::Wide => format!("report-town-shape{TOWN_SHAPE}-r{requests}-s{seed}"),
        Shape::Busy => format!("report-town-busy{TOWN_SHAPE}-r{requests}-s{seed}"),
    };
    let path = work.join(format!("{name}.sqlite"));
    if let Some(dir) = keep_dir {
        let kept = dir.join(format!("{name}.sqlite"));
        let sidecar = dir.join(format!("{name}.json"));
        if kept.is_file() && sidecar.is_file() {
            let meta: Value = serde_json::from_slice(&std::fs::read(&sidecar)?)?;
            drop(Store::open(&kept).with_context(|| format!("upgrading the kept town {}", kept.display()))?);
            std::fs::copy(&kept, &path)?;
            return Ok(Town {
                path,
                generate_seconds: meta["generate_seconds"].as_f64().unwrap_or(f64::NAN),
                generated_now: false,
                demo: meta["town"].clone(),
            });
        }
    }
    let started = Instant::now();
    let mut store = Store::create(&path, Identity { device: "bench-hall".into(), walker: "hall-1".into() })?;
    let report = demo::generate(&mut store, &town_config(shape, requests, seed))?;
    // Closing the only connection checkpoints the WAL: the file alone is the town.
    drop(store);
    let generate_seconds = started.elapsed().as_secs_f64();
    let demo = serde_json::to_value(&report)?;
    if let Some(dir) = keep_dir {
        let partial = dir.join(format!("{name}.sqlite.partial"));
        std::fs::copy(&path, &partial)?;
        std::fs::rename(&partial, dir.join(format!("{name}.sqlite")))?;
        let meta = json!({ "generate_seconds": generate_seconds, "schema": LATEST_VERSION, "town": demo });
        std::fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(&meta)?)?;
    }
    Ok(Town { path, generate_seconds, generated_now: true, demo })
}

/// One report the benchmark times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    DashboardGrid,
    DashboardGridMonth,
    DashboardVillage,
    MonthlyGrid,
    MonthlyVillage,
    MonthlyGridXlsx,
    DashboardStreet,
    DashboardStreetMonth,
    MonthlyStreet,
    /// The change beside each KPI (issue 16): the headline figures a week and a month back.
    /// It folds again every request that changed within the month, so it grows with the
    /// month's activity, not with the store; no ratio goal applies.
    KpiChangesGrid,
    KpiChangesStreet,
    /// The anchor: the grid's headline figures from its documents.
    GridFromDocuments,
}

const OPS: [Op; 12] = [
    Op::DashboardGrid,
    Op::DashboardGridMonth,
    Op::DashboardVillage,
    Op::MonthlyGrid,
    Op::MonthlyVillage,
    Op::MonthlyGridXlsx,
    Op::DashboardStreet,
    Op::DashboardStreetMonth,
    Op::MonthlyStreet,
    Op::KpiChangesGrid,
    Op::KpiChangesStreet,
    Op::GridFromDocuments,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::DashboardGrid => "dashboard_grid_year",
            Op::DashboardGridMonth => "dashboard_grid_month",
            Op::DashboardVillage => "dashboard_village_year",
            Op::MonthlyGrid => "monthly_list_grid",
            Op::MonthlyVillage => "monthly_list_village",
            Op::MonthlyGridXlsx => "monthly_list_grid_xlsx",
            Op::DashboardStreet => "dashboard_street_year",
            Op::DashboardStreetMonth => "dashboard_street_month",
            Op::MonthlyStreet => "monthly_list_street",
            Op::KpiChangesGrid => "kpi_changes_grid",
            Op::KpiChangesStreet => "kpi_changes_street",
            Op::GridFromDocuments => "anchor_grid_figures_from_documents",
        }
    }

    /// Whether the ratio goal applies. Wide: the reports of one grid or village, which cover
    /// the same grids at both scales. Busy: every dashboard, which covers the same grids and
    /// households at both scales; not the lists, which print a hundred times the requests.
    fn has_goal(self, shape: Shape) -> bool {
        match shape {
            Shape::Wide => matches!(
                self,
                Op::DashboardGrid
                    | Op::DashboardGridMonth
                    | Op::DashboardVillage
                    | Op::MonthlyGrid
                    | Op::MonthlyVillage
            ),
            Shape::Busy => matches!(
                self,
                Op::DashboardGrid
                    | Op::DashboardGridMonth
                    | Op::DashboardVillage
                    | Op::DashboardStreet
                    | Op::DashboardStreetMonth
            ),
        }
    }
}

struct Case {
    requests: usize,
    town: Town,
    store: Store,
    grid: String,
    village: String,
    xlsx: PathBuf,
}

/// Runs one report; the number of requests it covered.
fn run_op(case: &Case, op: Op) -> anyhow::Result<i64> {
    let now = Timestamp(until());
    let month = Month::parse(MONTH)?;
    let (from, to) = month.bounds();
    let grid = Scope::Grid(case.grid.clone());
    let village = Scope::Village(case.village.clone());
    let dash = |scope: Scope, month_only: bool| -> anyhow::Result<i64> {
        let mut q = DashboardQuery::new(scope, now);
        if month_only {
            q.from = Some(Timestamp::from_millis(from)?);
            q.to = Some(Timestamp::from_millis(to)?);
        }
        let d = report::dashboard(&case.store, &q)?;
        let n = d.figures.total;
        black_box(&d);
        Ok(n)
    };
    let list = |scope: Scope| -> anyhow::Result<i64> {
        let l = report::monthly_list(&case.store, &scope, month, now)?;
        let n = l.rows.len() as i64;
        black_box(&l);
        Ok(n)
    };
    Ok(match op {
        Op::DashboardGrid => dash(grid, false)?,
        Op::DashboardGridMonth => dash(grid, true)?,
        Op::DashboardVillage => dash(village, false)?,
        Op::MonthlyGrid => list(grid)?,
        Op::MonthlyVillage => list(village)?,
        Op::MonthlyGridXlsx => {
            let l = report::monthly_list(&case.store, &grid, month, now)?;
            report::write_monthly_xlsx(&l, &case.xlsx)?;
            l.rows.len() as i64
        }
        Op::DashboardStreet => dash(Scope::All, false)?,
        Op::DashboardStreetMonth => dash(Scope::All, true)?,
        Op::MonthlyStreet => list(Scope::All)?,
        Op::KpiChangesGrid | Op::KpiChangesStreet => {
            let scope = if op == Op::KpiChangesGrid { grid } else { Scope::All };
            let c = report::kpi_changes(&case.store, &DashboardQuery::new(scope, now))?;
            let n = c.month_ago.figures.total;
            black_box(&c);
            n
        }
        Op::GridFromDocuments => {
            // What a report without the index does: find the grid's requests, load each, fold.
            let ids = case.store.list_requests(&RequestFilter {
                grids: vec![case.grid.clone()],
                limit: 1_000_000,
                ..Default::default()
            })?;
            let (mut resolved, mut overdue) = (0, 0);
            for summary in &ids {
                let view = case.store.request(&summary.id)?;
                resolved += i64::from(view.state.resolved_at.is_some());
                overdue += i64::from(view.state.is_overdue(now));
            }
            black_box((resolved, overdue));
            ids.len() as i64
        }
    })
}

pub fn run(args: &Args) -> anyhow::Result<Value> {
    let (scales, iterations) = if args.smoke { (vec![500, 1000], 5) } else { (args.scales.clone(), args.iterations) };
    ensure!(scales.len() >= 2, "give at least two scales, smallest first");
    ensure!(scales.windows(2).all(|w| w[0] < w[1]), "give the scales smallest first, without repeats");
    ensure!(iterations > 0, "iterations must be positive");
    if let Some(dir) = &args.keep_dir {
        std::fs::create_dir_all(dir)?;
    }
    let work = match &args.keep_dir {
        Some(dir) => tempfile::Builder::new().prefix("report-work-").tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("report-work-").tempdir()?,
    };

    for name in &args.only {
        ensure!(OPS.iter().any(|op| op.name() == name), "no report is named '{name}'");
    }
    let ops: Vec<Op> =
        OPS.iter().copied().filter(|op| args.only.is_empty() || args.only.iter().any(|n| n == op.name())).collect();

    let mut cases = Vec::new();
    for &requests in &scales {
        let town = prepare_town(args.shape, requests, args.seed, args.keep_dir.as_deref(), work.path())?;
        let store = Store::open(&town.path)?;
        cases.push(Case {
            requests,
            xlsx: work.path().join(format!("list-{requests}.xlsx")),
            town,
            store,
            // Every town of this shape has these.
            grid: "v01-g01".into(),
            village: "v01".into(),
        });
    }

    // Rows each report covers, and a warm-up.
    let mut rows: Vec<Vec<i64>> = Vec::new();
    for case in &cases {
        let mut r = Vec::new();
        for op in &ops {
            r.push(run_op(case, *op)?);
        }
        rows.push(r);
    }
    let mut samples: Vec<Vec<Vec<f64>>> = cases.iter().map(|_| ops.iter().map(|_| Vec::new()).collect()).collect();
    // Interleaved: each iteration runs every report on every town, rotating the order, so the
    // machine's drift reaches both towns alike.
    for i in 0..iterations {
        for j in 0..cases.len() {
            let k = (i + j) % cases.len();
            for (o, op) in ops.iter().enumerate() {
                let started = Instant::now();
                run_op(&cases[k], *op)?;
                samples[k][o].push(micros(started.elapsed()));
            }
        }
    }

    let mut reports = Vec::new();
    let mut ratios = serde_json::Map::new();
    let mut goal_met = true;
    let first = 0;
    let last = cases.len() - 1;
    for (o, op) in ops.iter().enumerate() {
        let small = Stats::of(&samples[first][o]).median;
        let large = Stats::of(&samples[last][o]).median;
        let ratio = large / small;
        let has_goal = op.has_goal(args.shape);
        if has_goal {
            goal_met &= ratio <= 3.0;
        }
        ratios.insert(
            op.name().into(),
            json!({ "ratio": round(ratio, 2), "goal_le_3": if has_goal { json!(ratio <= 3.0) } else { Value::Null } }),
        );
    }
    for (k, case) in cases.iter().enumerate() {
        let mut by_op = serde_json::Map::new();
        for (o, op) in ops.iter().enumerate() {
            by_op.insert(
                op.name().into(),
                json!({ "requests_covered": rows[k][o], "us": Stats::of(&samples[k][o]).to_json() }),
            );
        }
        reports.push(json!({
            "requests": case.requests,
            "generate_seconds": round(case.town.generate_seconds, 1),
            "generated_this_run": case.town.generated_now,
            "town": case.town.demo,
            "file_mb": round(std::fs::metadata(&case.town.path)?.len() as f64 / 1e6, 1),
            "grid": case.grid,
            "village": case.village,
            "reports": by_op,
        }));
    }
    Ok(json!({
        "benchmark": "report",
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "sqlite": rusqlite::version(),
        },
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "smoke": args.smoke,
        "store_schema": LATEST_VERSION,
        "seed": args.seed,
        "iterations": iterations,
        "month": MONTH,
        "shape": args.shape.name(),
        "requests_per_grid": if args.shape == Shape::Wide { json!(REQUESTS_PER_GRID) } else { Value::Null },
        "scales": reports,
        "large_over_small": ratios,
        "goal": {
            "applies_to": OPS.iter().filter(|o| o.has_goal(args.shape)).map(|o| o.name()).collect::<Vec<_>>(),
            // Not judged when some reports were left out.
            "large_over_small_le_3": if ops.len() == OPS.len() { json!(goal_met) } else { Value::Null },
        },
    }))
}

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
        // Nearest rank: a figure that was actually measured.
        let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Stats { median: rank(0.5), p90: rank(0.9), min: sorted[0], samples: sorted.len() }
    }

    fn to_json(&self) -> Value {
        json!({ "median": round(self.median, 1), "p90": round(self.p90, 1), "min": round(self.min, 1), "samples": self.samples })
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

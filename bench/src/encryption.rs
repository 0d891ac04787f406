//! Encryption at rest (issue 14): what the encrypted store costs, side by side with the plain one
//! in the same run. Four figures, each a median of interleaved runs (plain, encrypted, plain…):
//!
//! - **P2, a new device's pull**: a hall device joins a real relay (its own process, on loopback)
//!   and pulls every document, in this process through `client::sync_over_http`, into a plain
//!   store and into an encrypted one.
//! - **P4, the list page**: the first 50 requests of the fullest grid and status on those two
//!   stores (`Store::list_requests`).
//! - **Request creation**: `Store::raise_request`, one transaction each, on both stores.
//! - **Photo ingest**: a 12 MP JPEG shrunk, stored and attached (`Store::add_photo_file`): the
//!   encrypted store seals its two files.
//!
//! The goal: each encrypted figure at most 1.15 times its plain one. Unlocking (deriving the
//! key from a PIN with Argon2id) is timed too: it is paid once per app start, not per action.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use chrono::{TimeZone, Utc};
use gridwalk_core::demo::{self, DemoConfig};
use gridwalk_core::docs::{Reporter, Source, Urgency};
use gridwalk_core::photo::{Attachment, IngestOptions, Role};
use gridwalk_core::store::keys::{self, Lock, StoreKey};
use gridwalk_core::store::{Identity, NewRequest, RequestFilter, RequestSort, Store};
use gridwalk_core::Timestamp;
use gridwalk_transport::client;
use serde_json::{json, Value};

use crate::photo::{median, photo_jpeg};
use crate::sync::{enroll, load_average, round2, sibling, RelayProcess};

#[derive(clap::Args)]
pub struct Args {
    /// Documents in the town the devices pull (about 5/8 requests, the rest visits and lists).
    #[arg(long, default_value_t = 20_000)]
    docs: usize,
    /// Pulls of each kind.
    #[arg(long, default_value_t = 3)]
    pulls: usize,
    /// List pages of each kind.
    #[arg(long, default_value_t = 300)]
    pages: usize,
    /// Request creations of each kind.
    #[arg(long, default_value_t = 100)]
    creations: usize,
    /// Photo ingests of each kind.
    #[arg(long, default_value_t = 6)]
    photos: usize,
    #[arg(long, default_value_t = 14)]
    seed: u64,
    /// A tiny town and few runs, to check in CI that the benchmark runs; the figures mean little.
    #[arg(long)]
    smoke: bool,
}

const GOAL: f64 = 1.15;

fn until() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 18, 0, 0).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The plain and encrypted medians of one figure, their ratio and whether it meets the goal.
fn compare(what: &str, plain: &mut [f64], encrypted: &mut [f64]) -> Value {
    let (p, e) = (median(plain), median(encrypted));
    let ratio = e / p;
    json!({
        "what": what,
        "runs_each": plain.len(),
        "plain_median_ms": round3(p),
        "encrypted_median_ms": round3(e),
        "encrypted_over_plain": round3(ratio),
        "goal_at_most": GOAL,
        "goal_met": ratio <= GOAL,
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub fn run(args: &Args) -> anyhow::Result<Value> {
    let (docs, pulls, pages, creations, photos, (w, h)) = if args.smoke {
        (200, 1, 20, 5, 1, (800, 600))
    } else {
        (args.docs, args.pulls, args.pages, args.creations, args.photos, (4000, 3000))
    };
    ensure!(pulls >= 1 && pages >= 1 && creations >= 1 && photos >= 1, "every count must be at least 1");
    let relay_bin = sibling("gridwalk-relay")?;
    let work = tempfile::Builder::new().prefix("gridwalk-encryption-bench").tempdir()?;

    // The town, pushed whole to a real relay by a hall store.
    let relay_dir = work.path().join("relay");
    std::fs::create_dir_all(&relay_dir)?;
    let mut source = Store::create(
        work.path().join("source.db"),
        Identity { device: "hall-source".into(), walker: "hall-1".into() },
    )?;
    let mut cfg = DemoConfig::street(args.seed, until());
    cfg.requests = (docs * 5 / 8).max(1);
    cfg.visits = cfg.requests * 6 / 10;
    let town = demo::generate(&mut source, &cfg)?;
    // The rosters carry the grids and households to the devices, as a hall publishes them.
    source.publish_rosters(&source.context(Timestamp(until())), &[])?;
    source.requeue_all_documents(Timestamp(until()))?;
    let code = enroll(&relay_bin, &relay_dir, "hall-source", "hall", &[])?;
    let relay = RelayProcess::start(&relay_bin, &relay_dir)?;
    let url = format!("http://{}", relay.addr);
    client::join(&source, &url, &code, "hall-source")?;
    client::sync_over_http(&source, &AtomicBool::new(false), &mut |_| {})?;
    let documents = source.document_ids()?.len();
    drop(source);

    // Unlocking: the Argon2id derivation a PIN costs, paid once when the app opens.
    let unlock_path = work.path().join("unlock.db");
    let mut unlocks = Vec::new();
    keys::set_up(&unlock_path, Lock::Pin("2580"), None)?;
    for _ in 0..5 {
        let started = Instant::now();
        keys::unlock(&unlock_path, Lock::Pin("2580"), None, 0)?;
        unlocks.push(ms(started.elapsed()));
    }

    // P2: a new hall device pulls everything, into a plain and an encrypted store in turn.
    let (mut plain_pull, mut encrypted_pull) = (Vec::new(), Vec::new());
    let mut last: [Option<Store>; 2] = [None, None];
    for run in 0..pulls {
        // Alternate which goes first, so neither always meets the page cache the other warmed.
        let order = if run % 2 == 0 { [false, true] } else { [true, false] };
        for encrypted in order {
            let name = format!("device-{run}-{}", if encrypted { "encrypted" } else { "plain" });
            let code = enroll(&relay_bin, &relay_dir, &name, "hall", &[])?;
            let path = work.path().join(format!("{name}.db"));
            let identity = Identity { device: name.clone(), walker: "hall-1".into() };
            let started = Instant::now();
            let store = if encrypted {
                Store::create_encrypted(&path, identity, StoreKey::generate())?
            } else {
                Store::create(&path, identity)?
            };
            client::join(&store, &url, &code, &name)?;
            client::sync_over_http(&store, &AtomicBool::new(false), &mut |_| {})?;
            let took = ms(started.elapsed());
            ensure!(
                store.document_ids()?.len() == documents,
                "{name} pulled {} of {documents} documents",
                store.document_ids()?.len()
            );
            if encrypted {
                encrypted_pull.push(took);
            } else {
                plain_pull.push(took);
            }
            last[usize::from(encrypted)] = Some(store);
        }
    }
    relay.stop()?;
    let plain = last[0].take().context("a plain device")?;
    let encrypted = last[1].take().context("an encrypted device")?;

    // P4: the first page of the fullest grid and status, on both.
    let (grid, status): (String, String) = plain.connection().query_row(
        "SELECT grid, status FROM request_index GROUP BY grid, status ORDER BY COUNT(*) DESC, grid, status LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let filter = RequestFilter {
        grids: vec![grid.clone()],
        statuses: vec![gridwalk_core::lifecycle::Status::parse(&status).with_context(|| format!("status {status}"))?],
        sort: RequestSort::UpdatedDesc,
        limit: 50,
        ..Default::default()
    };
    let (mut plain_page, mut encrypted_page) = (Vec::new(), Vec::new());
    for i in 0..pages {
        for enc in if i % 2 == 0 { [false, true] } else { [true, false] } {
            let store = if enc { &encrypted } else { &plain };
            let started = Instant::now();
            let rows = std::hint::black_box(store.list_requests(&filter)?);
            let took = ms(started.elapsed());
            ensure!(!rows.is_empty(), "the page is empty");
            if enc {
                encrypted_page.push(took)
            } else {
                plain_page.push(took)
            }
        }
    }

    // Request creation and photo ingest: a walker's request in that grid, with its photo.
    let request = |n: usize| NewRequest {
        id: None,
        grid: grid.clone(),
        micro_grid: None,
        reporter: Reporter::Resident { name: "王建国".into(), phone: Some("13812345678".into()), household: None },
        address: "马厩村第3组".into(),
        gps: None,
        category: "streetlight".into(),
        description: format!("村道路灯不亮已有一周（第{n}次）"),
        urgency: Urgency::Normal,
        source: Source::WalkIn,
        visit: None,
    };
    let (mut plain_create, mut encrypted_create) = (Vec::new(), Vec::new());
    let mut made: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for i in 0..creations {
        for enc in if i % 2 == 0 { [false, true] } else { [true, false] } {
            let store = if enc { &encrypted } else { &plain };
            let at = Timestamp(until() + chrono::Duration::seconds(i as i64 + 1));
            let ctx = store.context(at);
            let started = Instant::now();
            let id = store.raise_request(&ctx, request(i))?;
            let took = ms(started.elapsed());
            made[usize::from(enc)].push(id);
            if enc {
                encrypted_create.push(took)
            } else {
                plain_create.push(took)
            }
        }
    }
    let jpeg = photo_jpeg(w, h);
    let attachment = Attachment { role: Role::Before, caption: Some("路灯".into()), gps: None };
    let (mut plain_photo, mut encrypted_photo) = (Vec::new(), Vec::new());
    for i in 0..photos {
        for enc in if i % 2 == 0 { [false, true] } else { [true, false] } {
            let store = if enc { &encrypted } else { &plain };
            let target = &made[usize::from(enc)][i % creations];
            let ctx = store.context(Timestamp(until() + chrono::Duration::hours(1 + i as i64)));
            let started = Instant::now();
            store.add_photo_file(&ctx, target, &jpeg, &IngestOptions::default(), &attachment)?;
            let took = ms(started.elapsed());
            if enc {
                encrypted_photo.push(took)
            } else {
                plain_photo.push(took)
            }
        }
    }
    ensure!(encrypted.is_encrypted() && !plain.is_encrypted(), "the two stores are what they say");

    let p2 = compare(
        "a new hall device pulls every document from a real relay (join + sync_over_http, in this process)",
        &mut plain_pull,
        &mut encrypted_pull,
    );
    let p4 = compare(
        "Store::list_requests: first 50 of the fullest grid and status, newest change first",
        &mut plain_page,
        &mut encrypted_page,
    );
    let create = compare(
        "Store::raise_request: one request (document, index, search row, outbox) in one transaction",
        &mut plain_create,
        &mut encrypted_create,
    );
    let photo = compare(
        &format!("Store::add_photo_file: a {w}×{h} JPEG shrunk, stored and attached"),
        &mut plain_photo,
        &mut encrypted_photo,
    );
    let all_met = [&p2, &p4, &create, &photo].iter().all(|v| v["goal_met"] == true);
    Ok(json!({
        "benchmark": "encryption at rest (issue 14): SQLCipher store and sealed photo files against the plain store, interleaved in one run",
        "mode": if args.smoke { "smoke: tiny sizes, the figures mean little" } else { "full" },
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "load_average_at_start": load_average(),
        "documents": documents,
        "town": town,
        "p2_new_device_pull": p2,
        "p4_list_page": p4,
        "request_creation": create,
        "photo_ingest": photo,
        "unlock_with_pin_ms": {
            "what": "keys::unlock with a PIN: Argon2id (19 MiB, 2 passes) and opening the wrapped key, once per app start",
            "median": round2(median(&mut unlocks)),
        },
        "all_goals_met": all_met,
    }))
}

//! `crash-writer <store path> <count> [--start N]`: raises `count` requests in the store, one
//! transaction each, numbered `N`, `N+1`, … (N defaults to 1), and prints `done <seq> <id>` after
//! each commit. The crash test (`tests/tests/crash.rs`) SIGKILLs it at random moments and then
//! checks that every request it reported done survived.
//!
//! This is a binary edge like the CLI: the only place the clock is read.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use gridwalk_core::docs::{Reporter, Source, Urgency};
use gridwalk_core::model::{Area, AreaKind};
use gridwalk_core::store::{Identity, NewRequest};
use gridwalk_core::{Clock, Store, SystemClock};

/// The grid every request is raised in.
const GRID: &str = "g1";

/// What the crash test reads back from each request's description to recover its number (it
/// spells the same text).
const DESCRIPTION_PREFIX: &str = "crash-writer request seq=";

struct Args {
    store: PathBuf,
    count: u64,
    start: u64,
}

fn parse_args() -> Result<Args> {
    let usage = "usage: crash-writer <store path> <count> [--start N]";
    let mut positional = Vec::new();
    let mut start = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--start" {
            let value = args.next().context(usage)?;
            start = value.parse().with_context(|| format!("--start {value}: not a number"))?;
        } else {
            positional.push(arg);
        }
    }
    let [store, count] = <[String; 2]>::try_from(positional).map_err(|_| anyhow::anyhow!(usage))?;
    Ok(Args {
        store: PathBuf::from(store),
        count: count.parse().with_context(|| format!("count {count}: not a number"))?,
        start,
    })
}

/// The file beside `path` with `suffix` appended to its name (`x.db` → `x.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens the store, creating it with its reference data first if it does not exist yet.
///
/// The store is built under a staging name and renamed into place only once it is complete.
/// `Store::create` is not atomic (the file appears before its schema and identity are
/// committed), and a store that exists but has no identity can neither be opened nor created
/// again; the writer may be killed during its very first milliseconds, so it must never leave
/// such a file at `path`. A staging file left by an earlier killed run is simply discarded.
fn open_or_create(path: &Path) -> Result<Store> {
    if path.exists() {
        return Store::open(path).with_context(|| format!("opening {}", path.display()));
    }
    let staging = sibling(path, ".creating");
    for leftover in [staging.clone(), sibling(&staging, "-wal"), sibling(&staging, "-shm")] {
        match std::fs::remove_file(&leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", leftover.display()))
            }
            _ => {}
        }
    }
    {
        let store = Store::create(&staging, Identity { device: "crash-phone".into(), walker: "w1".into() })
            .with_context(|| format!("creating {}", staging.display()))?;
        let area = |id: &str, kind, name: &str, parent: Option<&str>| Area {
            id: id.into(),
            kind,
            name: name.into(),
            parent: parent.map(str::to_string),
            enterprise_grid: false,
        };
        store.put_area(&area("t1", AreaKind::Town, "曹桥街道", None))?;
        store.put_area(&area("v1", AreaKind::Village, "马厍村", Some("t1")))?;
        store.put_area(&area(GRID, AreaKind::Grid, "第一网格", Some("v1")))?;
    }
    // Closing the last connection checkpoints the WAL into the main file and deletes it. Were a
    // WAL left behind, renaming the main file alone would lose the reference data in it.
    ensure!(!sibling(&staging, "-wal").exists(), "{} still has a WAL after closing", staging.display());
    std::fs::rename(&staging, path).with_context(|| format!("moving {} to {}", staging.display(), path.display()))?;
    Store::open(path).with_context(|| format!("opening {}", path.display()))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let store = open_or_create(&args.store)?;
    let clock = SystemClock;
    let mut out = std::io::stdout().lock();
    for seq in args.start..args.start + args.count {
        let request = NewRequest {
            id: None,
            grid: GRID.into(),
            micro_grid: None,
            reporter: Reporter::Anonymous,
            address: format!("{seq} Crash Lane"),
            gps: None,
            category: "streetlight".into(),
            description: format!("{DESCRIPTION_PREFIX}{seq}"),
            urgency: Urgency::Normal,
            source: Source::WalkIn,
            visit: None,
        };
        let id = store
            .raise_request(&store.context(clock.now()), request)
            .with_context(|| format!("raising request {seq}"))?;
        // One write per line, flushed at once: the test may count a request as done only once it
        // is committed, and must see every line written before the kill.
        let line = format!("done {seq} {id}\n");
        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            bail!("reporting request {seq}: {e}");
        }
    }
    Ok(())
}

//! Crash safety (issue 2): a writer process raising 1,000 requests is SIGKILLed at random moments,
//! several times over one store file. After every kill the store is reopened and must hold every
//! request the writer reported done, with documents and index in agreement and SQLite's own
//! integrity check passing.
//!
//! The kill moments come from a seeded generator; the seed is printed, and setting
//! `GRIDWALK_CRASH_SEED` replays the same plan. (The moments are wall-clock times, so a replay
//! kills at the same times, not necessarily at the same instructions.)

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use gridwalk_core::store::RequestFilter;
use gridwalk_core::Store;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{Connection, OpenFlags};

/// Requests in the store once the last run has finished.
const TARGET: u64 = 1_000;
/// Runs in all; every run but the last is killed.
const RUNS: usize = 6;
/// The prefix `crash-writer` puts before each request's sequence number in its description.
const DESCRIPTION_PREFIX: &str = "crash-writer request seq=";
/// How long one writer may take before the test gives up on it. A debug build raises 1,000
/// requests in about three seconds; this only stops a hung writer from hanging the test.
const WRITER_TIMEOUT: Duration = Duration::from_secs(40);

/// When to kill a writer.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after it was started: lands anywhere, including in start-up and store creation.
    AfterDelay(Duration),
    /// As soon as it has reported this many requests done: lands somewhere in the next commits.
    AfterDone(usize),
    /// Let it finish.
    Never,
}

/// What one writer run did.
struct Run {
    /// `(seq, id)` of every `done` line, in the order printed.
    done: Vec<(u64, String)>,
    status: ExitStatus,
    stderr: String,
}

impl Run {
    fn killed(&self) -> bool {
        self.status.signal() == Some(libc::SIGKILL)
    }
}

fn parse_done(line: &str) -> (u64, String) {
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("done"), Some(seq), Some(id), None) => {
            (seq.parse().unwrap_or_else(|_| panic!("bad sequence number in {line:?}")), id.to_string())
        }
        _ => panic!("the writer printed an unexpected line: {line:?}"),
    }
}

/// Runs `crash-writer` to raise `count` requests numbered from `start`, killing it as `kill` says.
fn run_writer(store: &Path, start: u64, count: u64, kill: Kill) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(store)
        .arg(count.to_string())
        .arg("--start")
        .arg(start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crash-writer");
    let started = Instant::now();

    // Lines are read on their own thread so the test can watch the count while waiting for the
    // kill moment. A pipe keeps what was written to it after its writer dies, so every line the
    // writer printed before the kill still arrives, and the channel closes at end of file.
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the writer's stdout");
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let deadline = started + WRITER_TIMEOUT;
    let kill_at = match kill {
        Kill::AfterDelay(delay) => Some(started + delay),
        _ => None,
    };
    let mut done = Vec::new();
    loop {
        let until = kill_at.map_or(deadline, |k| k.min(deadline));
        match lines.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                done.push(parse_done(&line));
                if matches!(kill, Kill::AfterDone(n) if done.len() >= n) {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) if kill_at.is_some_and(|k| Instant::now() >= k) => break,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("crash-writer took longer than {WRITER_TIMEOUT:?}");
            }
            // End of the writer's output: it has exited on its own.
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if !matches!(kill, Kill::Never) {
        // SIGKILL on Unix. It fails only if the child was already reaped, which it was not; a
        // child that already exited by itself is a zombie and takes the signal harmlessly.
        child.kill().expect("SIGKILL crash-writer");
    }
    let status = child.wait().expect("wait for crash-writer");
    reader.join().expect("stdout reader");
    done.extend(lines.try_iter().map(|line| parse_done(&line)));
    let stderr = stderr_reader.join().expect("stderr reader");
    Run { done, status, stderr }
}

/// SQLite's own verdict on the file, from a plain connection that knows nothing of the core.
/// Run first after each kill, so it judges the file exactly as the crash left it.
fn sqlite_integrity(path: &Path) -> Vec<String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).expect("open with rusqlite");
    let mut stmt = conn.prepare("PRAGMA integrity_check").expect("prepare integrity_check");
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("run integrity_check");
    rows.collect::<Result<_, _>>().expect("read integrity_check")
}

/// Reopens the store and checks it; returns every request in it as `seq → id`.
fn verify(path: &Path) -> BTreeMap<u64, String> {
    assert_eq!(sqlite_integrity(path), ["ok"], "PRAGMA integrity_check");

    let store = Store::open(path).expect("reopen the store after the kill");
    let report = store.check().expect("check the store");
    assert_eq!(report.integrity, "ok", "check(): {report:?}");
    assert!(report.index_matches_documents, "check(): index and documents disagree: {report:?}");

    // Read every request from its document, not from the index, and recover its number.
    let mut by_seq = BTreeMap::new();
    for id in store.document_ids().expect("list documents") {
        let view = store.request(&id).unwrap_or_else(|e| panic!("request {id} does not load: {e}"));
        let seq: u64 = view
            .body
            .description
            .strip_prefix(DESCRIPTION_PREFIX)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("request {id} has a foreign description {:?}", view.body.description));
        if let Some(other) = by_seq.insert(seq, id.clone()) {
            panic!("request number {seq} is in the store twice, as {other} and {id}");
        }
    }
    let count = by_seq.len() as u64;
    assert_eq!(report.documents as u64, count, "documents counted by check()");
    let indexed = store.count_requests(&RequestFilter::default()).expect("count requests");
    assert_eq!(indexed as u64, count, "requests in the index");
    // Each run starts at the number after the last request in the store, so the numbers present
    // must be exactly 1..=count: a gap would be a lost commit that was followed by later ones.
    if let (Some(&first), Some(&last)) = (by_seq.keys().next(), by_seq.keys().next_back()) {
        assert_eq!((first, last), (1, count), "request numbers are not contiguous");
    }
    by_seq
}

#[test]
fn killed_writers_lose_nothing_they_reported_done() {
    let seed = std::env::var("GRIDWALK_CRASH_SEED")
        .map(|s| s.parse().expect("GRIDWALK_CRASH_SEED must be a number"))
        .unwrap_or_else(|_| rand::random());
    println!("crash test seed: {seed} (set GRIDWALK_CRASH_SEED={seed} to replay)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crash.gridwalk");
    // Every request ever reported done, across all runs: seq → id.
    let mut reported: BTreeMap<u64, String> = BTreeMap::new();
    let mut reported_ids = HashSet::new();
    let mut in_store = 0u64;
    let mut killed_mid_way = 0;
    let mut killed_mid_write = 0;
    let mut unreported = 0;

    for run_no in 1..=RUNS {
        let kill = if run_no == RUNS {
            Kill::Never
        } else if rng.random_bool(0.5) {
            Kill::AfterDelay(Duration::from_millis(rng.random_range(2..=500)))
        } else {
            Kill::AfterDone(rng.random_range(1..=150))
        };
        let start = in_store + 1;
        let count = TARGET - in_store;
        let run = run_writer(&path, start, count, kill);
        let context = format!("run {run_no} ({kill:?}, seed {seed}), writer stderr: {}", run.stderr);

        if run.killed() {
            if (run.done.len() as u64) < count {
                killed_mid_way += 1;
                if !run.done.is_empty() {
                    killed_mid_write += 1;
                }
            }
        } else {
            assert!(run.status.success(), "crash-writer failed: {:?}; {context}", run.status);
            assert_eq!(run.done.len() as u64, count, "a writer that finished reported every request; {context}");
        }

        // The writer raises and reports requests strictly in order.
        let numbers: Vec<u64> = run.done.iter().map(|(seq, _)| *seq).collect();
        let expected: Vec<u64> = (start..start + run.done.len() as u64).collect();
        assert_eq!(numbers, expected, "done lines out of order; {context}");
        for (seq, id) in &run.done {
            assert!(reported_ids.insert(id.clone()), "id {id} reported twice; {context}");
            reported.insert(*seq, id.clone());
        }

        if !path.exists() {
            // Killed before the store was in place: nothing can have been committed.
            assert!(run.done.is_empty(), "requests reported done but no store exists; {context}");
            println!("run {run_no}: {kill:?}, killed before the store existed");
            continue;
        }
        let present = verify(&path);
        for (seq, id) in &reported {
            assert_eq!(
                present.get(seq),
                Some(id),
                "request {seq} was reported done as {id} but is not in the store; {context}"
            );
        }
        // The writer commits a request and only then prints its line, so a kill between the two
        // leaves exactly one request committed but never reported: the one after the last line.
        // More than one, or any other, would mean requests appeared that the writer never
        // finished raising.
        let new = present.len() as u64 - in_store;
        let done = run.done.len() as u64;
        assert!(
            new == done || (new == done + 1 && run.killed()),
            "{new} requests committed in this run, {done} reported done; {context}"
        );
        unreported += new - done;
        in_store = present.len() as u64;
        println!("run {run_no}: {kill:?}, {done} reported done, {new} committed, {in_store} in store");
    }

    // Guards against a test that passes without testing: the kills must have interrupted
    // writers that were busy committing, and the last run must have completed the set.
    assert!(killed_mid_way >= 1, "no run was killed before finishing (seed {seed})");
    assert!(killed_mid_write >= 1, "no run was killed between commits (seed {seed})");
    assert_eq!(in_store, TARGET, "the final run completes the store to {TARGET} requests");
    assert!(reported.len() as u64 + unreported == TARGET);
    println!(
        "crash test: seed {seed}, {RUNS} runs, {killed_mid_way} killed mid-way ({killed_mid_write} after some commits), \
         {in_store} requests in store, {unreported} committed but unreported, all checks ok"
    );
}

//! Faults over real loopback: a TCP proxy that cuts connections at random byte counts, a relay
//! killed with SIGKILL mid-sync, and a device's sync process killed with SIGKILL mid-sync. After
//! each, everything converges, no acknowledged change is lost, and nothing is duplicated.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{add_photo, device_store, fingerprint, random_edit};
use gridwalk_core::photo::Role as PhotoRole;
use gridwalk_core::store::Store;
use gridwalk_transport::client;
use rand::Rng;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

const RELAY: &str = env!("CARGO_BIN_EXE_gridwalk-relay");

fn gridwalk_cli() -> PathBuf {
    let path = Path::new(RELAY).with_file_name("gridwalk");
    assert!(path.exists(), "{} is missing: build the workspace first (cargo build --workspace)", path.display());
    path
}

struct Relay {
    child: Child,
    port: u16,
    data: PathBuf,
    database: Option<String>,
}

impl Relay {
    fn start(data: &Path, port: u16) -> Relay {
        Self::start_on(data, port, None)
    }

    /// A relay on a PostgreSQL database (`database`), or on its embedded SQLite file.
    fn start_on(data: &Path, port: u16, database: Option<&str>) -> Relay {
        let mut child = Command::new(RELAY)
            .args(database.map(|url| vec!["--database", url]).unwrap_or_default())
            .args(["--data-dir", data.to_str().unwrap(), "serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
        Relay { child, port, data: data.to_path_buf(), database: database.map(str::to_string) }
    }
    fn enroll(&self, name: &str, role: &str, grids: &str) -> String {
        let mut args = vec![
            "--data-dir".to_string(),
            self.data.display().to_string(),
            "enroll".into(),
            "--name".into(),
            name.into(),
            "--role".into(),
            role.into(),
        ];
        if !grids.is_empty() {
            args.extend(["--grids".into(), grids.into()]);
        }
        if let Some(url) = &self.database {
            args.extend(["--database".into(), url.clone()]);
        }
        let out = Command::new(RELAY).args(&args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
    /// `gridwalk-relay audit verify` on this relay's record passes.
    fn audit_holds(&self) {
        let mut cmd = Command::new(RELAY);
        if let Some(url) = &self.database {
            cmd.args(["--database", url]);
        }
        let out = cmd.arg("--data-dir").arg(&self.data).args(["audit", "verify"]).output().unwrap();
        assert!(
            out.status.success(),
            "audit verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy that forwards to `upstream` and cuts each connection, with probability
/// `cut_chance`, after a random number of bytes in either direction.
struct CuttingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    pub cuts: Arc<AtomicU64>,
}

impl CuttingProxy {
    fn start(upstream: u16, seed: u64, cut_chance: f64, max_bytes: u64) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU64::new(0));
        let rng = Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed)));
        let (stop2, cuts2) = (stop.clone(), cuts.clone());
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        let budget = {
                            let mut r = rng.lock().unwrap();
                            if r.random_bool(cut_chance) {
                                r.random_range(0..max_bytes)
                            } else {
                                u64::MAX
                            }
                        };
                        let used = Arc::new(AtomicU64::new(0));
                        for (mut from, mut to) in
                            [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                        {
                            let (used, cuts) = (used.clone(), cuts2.clone());
                            thread::spawn(move || {
                                let mut buf = [0u8; 4096];
                                loop {
                                    let n = match from.read(&mut buf) {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => n,
                                    };
                                    let before = used.fetch_add(n as u64, Ordering::Relaxed);
                                    if before + n as u64 > budget {
                                        // Forward part of the chunk, then drop the line.
                                        let keep = budget.saturating_sub(before) as usize;
                                        let _ = to.write_all(&buf[..keep.min(n)]);
                                        cuts.fetch_add(1, Ordering::Relaxed);
                                        break;
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                let _ = from.shutdown(Shutdown::Both);
                                let _ = to.shutdown(Shutdown::Both);
                            });
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        CuttingProxy { port, stop, cuts }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sync(store: &Store) -> gridwalk_core::Result<client::Progress> {
    client::sync_over_http(store, &AtomicBool::new(false), &mut |_| {})
}

/// Syncs until a sync succeeds; every failure must be a network failure, never a refusal.
fn sync_until_done(store: &Store) -> usize {
    for attempt in 0..200 {
        match sync(store) {
            Ok(p) if p.done => return attempt,
            Ok(_) => {}
            Err(gridwalk_core::CoreError::Network(_)) => {}
            Err(e) => panic!("sync failed with something other than the network: {e}"),
        }
    }
    panic!("never got through");
}

/// Everything the relay holds for each document, seen through a hall device on a clean line.
fn relay_documents(relay: &Relay, dir: &Path, name: &str) -> Store {
    let hall = device_store(dir, name, "hall-1");
    client::join(&hall, &format!("http://127.0.0.1:{}", relay.port), &relay.enroll(name, "hall", ""), name).unwrap();
    sync_until_done(&hall);
    hall
}

/// Phones syncing through proxies that cut connections at random byte counts, each sync to one
/// of `relays` in turn (round robin), raising requests with photos on the way: their documents
/// and photos end equal on every device and on the relay, each change once.
fn connections_cut_at_random(relays: &[&Relay], dir: &Path, seed: u64) {
    let proxies: Vec<CuttingProxy> = relays
        .iter()
        .enumerate()
        .map(|(i, relay)| CuttingProxy::start(relay.port, seed + i as u64, 0.6, 6_000))
        .collect();
    let urls: Vec<String> = proxies.iter().map(|p| format!("http://127.0.0.1:{}", p.port)).collect();
    let mut devices = Vec::new();
    for i in 0..3 {
        let store = device_store(dir, &format!("phone-{i}"), &format!("w{i}"));
        // Enrolment goes over a clean line: a cut enrolment reply would burn the one-time code.
        let relay = relays[i % relays.len()];
        client::join(
            &store,
            &format!("http://127.0.0.1:{}", relay.port),
            &relay.enroll(&format!("phone-{i}"), "walker", "g1"),
            "p",
        )
        .unwrap();
        devices.push(store);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut retries = 0;
    for round in 0..5 {
        for _ in 0..12 {
            let d = rng.random_range(0..devices.len());
            let minute = round * 100 + rng.random_range(0..100);
            random_edit(&devices[d], &mut rng, "g1", minute);
        }
        // A streetlight photographed on two of the rounds, by every phone.
        if round % 2 == 1 {
            for (d, store) in devices.iter().enumerate() {
                let request = store.document_ids().unwrap().into_iter().find(|id| store.request(id).is_ok()).unwrap();
                add_photo(
                    store,
                    &request,
                    160,
                    120,
                    seed * 100 + (round * 10) as u64 + d as u64,
                    PhotoRole::Before,
                    round * 100 + 99,
                );
            }
        }
        for (d, store) in devices.iter().enumerate() {
            point_at(store, &urls[(round as usize + d) % urls.len()]);
            retries += sync_until_done(store);
        }
    }
    for store in &devices {
        retries += sync_until_done(store);
    }
    // The client retries a cut connection by itself, so most cuts never surface as a failed
    // sync; the proxies' counts show they happened.
    let cuts: u64 = proxies.iter().map(|p| p.cuts.load(Ordering::Relaxed)).sum();
    assert!(cuts > 5, "the proxies really cut connections");
    eprintln!("cuts: {cuts}, failed syncs retried by the test: {retries}");
    let expected = fingerprint(&devices[0]);
    for d in &devices[1..] {
        assert_eq!(fingerprint(d), expected);
    }
    let hall = relay_documents(relays[relays.len() - 1], dir, "hall-check");
    assert_eq!(fingerprint(&hall), expected, "the relay holds exactly what the devices hold, once");
    let mut photos = 0;
    for store in &devices {
        assert!(store.unacknowledged_photos().unwrap().is_empty(), "every photo reached the relay");
        for id in store.document_ids().unwrap() {
            for photo in store.photos_of(&id).unwrap() {
                assert_eq!(hall.photo_bytes(&photo.hash).unwrap(), store.photo_bytes(&photo.hash).unwrap());
                photos += 1;
            }
        }
    }
    assert!(photos >= 6, "the photos went through the cut connections: {photos}");
    relays[0].audit_holds();
    for d in &devices {
        assert_eq!(d.outbox_len().unwrap(), 0);
    }
}

#[test]
fn connections_cut_at_random_byte_counts_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), 0);
    connections_cut_at_random(&[&relay], dir.path(), 77);
}

/// The same through two relays on one PostgreSQL database, round robin: documents and photos
/// are the database's, whichever relay a connection reached.
#[test]
fn connections_cut_at_random_to_two_relays_on_postgres_lose_and_duplicate_nothing() {
    let server = common::pg::TempPostgres::start();
    let url = server.new_database();
    let dir = tempfile::tempdir().unwrap();
    let first = Relay::start_on(&dir.path().join("relay-1"), 0, Some(&url));
    let second = Relay::start_on(&dir.path().join("relay-2"), 0, Some(&url));
    connections_cut_at_random(&[&first, &second], dir.path(), 91);
}

#[test]
fn a_relay_and_a_device_killed_mid_sync_recover_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let mut relay = Relay::start(&data, 0);
    let port = relay.port;
    let url = format!("http://127.0.0.1:{port}");
    let phone_path = dir.path().join("phone.db");
    let phone = device_store(dir.path(), "phone", "w1");
    assert_eq!(phone.path(), phone_path);
    client::join(&phone, &url, &relay.enroll("phone", "walker", "g1"), "phone").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for m in 0..300 {
        random_edit(&phone, &mut rng, "g1", m);
    }
    let made = phone.document_ids().unwrap().len();
    drop(phone);

    // The phone's sync runs as its own process, killed at random moments; the relay too.
    let cli = gridwalk_cli();
    let mut kills = 0;
    for round in 0..8 {
        let mut child = Command::new(&cli)
            .args(["--store", phone_path.to_str().unwrap(), "--json", "sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(rng.random_range(5..120)));
        if round % 3 == 2 {
            relay.kill();
            relay = Relay::start(&data, port);
        } else {
            let _ = child.kill();
        }
        let _ = child.wait();
        kills += 1;
    }
    assert!(kills > 0);
    let started = Instant::now();
    let phone = Store::open(&phone_path).unwrap();
    sync_until_done(&phone);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(phone.outbox_len().unwrap(), 0);
    assert_eq!(phone.document_ids().unwrap().len(), made);
    assert!(phone.check().unwrap().index_matches_documents);
    let hall = relay_documents(&relay, dir.path(), "hall-check");
    assert_eq!(fingerprint(&hall), fingerprint(&phone), "every change reached the relay exactly once");
    relay.audit_holds();
}

/// A proxy that lets requests through whole but swallows the reply to the first `cut` requests
/// that start with `request_line` (e.g. `POST /v1/push`): the relay has done the work, the
/// device never hears so and asks again.
struct PushReplyCutter {
    port: u16,
    stop: Arc<AtomicBool>,
    cut_left: Arc<AtomicU64>,
}

impl PushReplyCutter {
    fn start(upstream: u16, cut: u64) -> PushReplyCutter {
        Self::start_for(upstream, cut, b"POST /v1/push")
    }

    fn start_for(upstream: u16, cut: u64, request_line: &'static [u8]) -> PushReplyCutter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let cut_left = Arc::new(AtomicU64::new(cut));
        let (stop2, cut2) = (stop.clone(), cut_left.clone());
        thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let cut = cut2.clone();
                thread::spawn(move || {
                    // Requests go up as they come; a connection that carried a push gets its
                    // reply swallowed while cuts are left.
                    let mut up_client = client.try_clone().unwrap();
                    let mut up_server = server.try_clone().unwrap();
                    let pushed = Arc::new(AtomicBool::new(false));
                    let pushed_up = pushed.clone();
                    let up = thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            match up_client.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if buf[..n].windows(request_line.len()).any(|w| w == request_line) {
                                        pushed_up.store(true, Ordering::SeqCst);
                                    }
                                    if up_server.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = up_server.shutdown(Shutdown::Write);
                    });
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let swallow = pushed.load(Ordering::SeqCst)
                                    && cut
                                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                                        .is_ok();
                                if swallow {
                                    // The relay answered (so it stored the push); the device
                                    // sees the line drop instead.
                                    let _ = client.shutdown(Shutdown::Both);
                                    let _ = server.shutdown(Shutdown::Both);
                                    break;
                                }
                                if client.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = up.join();
                });
            }
        });
        PushReplyCutter { port, stop, cut_left }
    }
}

impl Drop for PushReplyCutter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Regression: a push stored by the relay whose reply was lost was retried and answered with
/// the retry's time, which the device kept while every other device held the first receipt
/// time. Now the retry is answered with the first receipt times.
#[test]
fn a_retried_push_after_a_lost_reply_leaves_the_same_relay_time_on_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), 0);
    let direct = format!("http://127.0.0.1:{}", relay.port);
    let phone = device_store(dir.path(), "phone", "w1");
    client::join(&phone, &direct, &relay.enroll("phone", "walker", "g1"), "phone").unwrap();
    let cutter = PushReplyCutter::start(relay.port, 1);
    let mut link = phone.relay_link().unwrap().unwrap();
    link.url = format!("http://127.0.0.1:{}", cutter.port);
    phone.set_relay_link(&link).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    while phone.list_requests(&Default::default()).unwrap().is_empty() {
        random_edit(&phone, &mut rng, "g1", 1);
    }
    sync_until_done(&phone);
    assert_eq!(cutter.cut_left.load(Ordering::SeqCst), 0, "the first push's reply was cut");
    let other = device_store(dir.path(), "other", "w2");
    client::join(&other, &direct, &relay.enroll("other", "walker", "g1"), "other").unwrap();
    sync_until_done(&other);
    let hall = relay_documents(&relay, dir.path(), "hall-check");
    let times = |store: &Store| -> Vec<(String, Vec<Option<i64>>)> {
        store
            .document_ids()
            .unwrap()
            .into_iter()
            .filter_map(|id| {
                store.request(&id).ok().map(|r| (id, r.history.iter().map(|h| h.relay_received_at).collect()))
            })
            .collect()
    };
    let on_phone = times(&phone);
    assert!(!on_phone.is_empty() && on_phone.iter().all(|(_, t)| t.iter().all(Option::is_some)), "{on_phone:?}");
    assert_eq!(on_phone, times(&other), "the phone and another walker show the same relay times");
    assert_eq!(on_phone, times(&hall), "and so does the hall");
}

/// Several relays on one PostgreSQL database serve as one: devices talk to either from one
/// sync to the next, and when one relay is SIGKILLed in the middle of a burst they carry on
/// through the other, losing and duplicating nothing.
#[test]
fn two_relays_on_one_postgres_database_serve_as_one_and_survive_one_being_killed() {
    let server = common::pg::TempPostgres::start();
    let url = server.new_database();
    let dir = tempfile::tempdir().unwrap();
    // Each relay has its own data folder: documents, devices and photos are the database's.
    let first = Relay::start_on(&dir.path().join("relay-1"), 0, Some(&url));
    let second = Relay::start_on(&dir.path().join("relay-2"), 0, Some(&url));
    let urls = [format!("http://127.0.0.1:{}", first.port), format!("http://127.0.0.1:{}", second.port)];
    let mut devices = Vec::new();
    for i in 0..3 {
        let store = device_store(dir.path(), &format!("phone-{i}"), &format!("w{i}"));
        // Enrolled through one relay with a code the other relay made: one relay, seen twice.
        client::join(&store, &urls[i % 2], &second.enroll(&format!("phone-{i}"), "walker", "g1"), "p").unwrap();
        devices.push(store);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut first = Some(first);
    for round in 0..6usize {
        for _ in 0..10 {
            let d = rng.random_range(0..devices.len());
            let minute = (round * 100) as i64 + rng.random_range(0..100);
            random_edit(&devices[d], &mut rng, "g1", minute);
        }
        // In round 3 the first relay is SIGKILLed while the devices are syncing with both.
        let killer = (round == 3).then(|| {
            let mut relay = first.take().unwrap();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(15));
                relay.kill();
            })
        });
        let alive_first = first.is_some() || killer.is_some();
        devices = devices
            .into_iter()
            .enumerate()
            .map(|(d, store)| {
                let urls = urls.clone();
                thread::spawn(move || {
                    // Round robin from one sync to the next, over the relays thought to be up.
                    let choice = if alive_first { (round + d) % 2 } else { 1 };
                    point_at(&store, &urls[choice]);
                    if sync(&store).is_err() {
                        point_at(&store, &urls[1]);
                        sync_until_done(&store);
                    }
                    store
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        if let Some(k) = killer {
            k.join().unwrap();
        }
    }
    for store in &devices {
        point_at(store, &urls[1]);
        sync_until_done(store);
    }
    let expected = fingerprint(&devices[0]);
    for d in &devices[1..] {
        assert_eq!(fingerprint(d), expected, "every device holds the same documents and index");
    }
    let hall = relay_documents(&second, dir.path(), "hall-check");
    assert_eq!(fingerprint(&hall), expected, "the database holds exactly what the devices hold, once");
    second.audit_holds();
    for d in &devices {
        assert_eq!(d.outbox_len().unwrap(), 0);
    }
}

fn point_at(store: &Store, url: &str) {
    let mut link = store.relay_link().unwrap().unwrap();
    link.url = url.to_string();
    store.set_relay_link(&link).unwrap();
}

/// A proxy whose first `stall` connections are taken and then left silent, open, forever (the
/// hall's Wi-Fi on a bad day); the connections after them are passed through.
struct StallingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    stalled: Arc<AtomicU64>,
}

impl StallingProxy {
    fn start(upstream: u16, stall: u64) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicU64::new(0));
        let (stop2, stalled2) = (stop.clone(), stalled.clone());
        thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if stalled2.load(Ordering::SeqCst) < stall {
                    stalled2.fetch_add(1, Ordering::SeqCst);
                    // Kept open and never answered: no bytes, no close.
                    held.push(client);
                    continue;
                }
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        StallingProxy { port, stop, stalled }
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Regression: a connection the network stalled without closing held a sync for the whole
/// request timeout (120 s), again on each retry, up to about ten minutes per sync. Now a
/// connection that moves no bytes for `STALL_TIMEOUT` (15 s) is dropped and the request retried.
#[test]
fn a_sync_through_a_stalled_connection_completes_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), 0);
    let phone = device_store(dir.path(), "phone", "w1");
    client::join(&phone, &format!("http://127.0.0.1:{}", relay.port), &relay.enroll("phone", "walker", "g1"), "p")
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for minute in 0..8 {
        random_edit(&phone, &mut rng, "g1", minute);
    }
    // Two connections stall: a walker's phone first asks which grids it serves (a short
    // request, given up after a few seconds and passed by), then the sync's own first request.
    let proxy = StallingProxy::start(relay.port, 2);
    point_at(&phone, &format!("http://127.0.0.1:{}", proxy.port));
    let started = Instant::now();
    let progress = sync(&phone).expect("the sync gets through after the stall");
    let took = started.elapsed();
    assert!(progress.done);
    assert_eq!(proxy.stalled.load(Ordering::SeqCst), 2, "the grid question and the sync's first request stalled");
    assert!(took >= client::STALL_TIMEOUT, "the stalled request was waited on ({took:?})");
    assert!(took < Duration::from_secs(60), "the sync finished within a minute of the stall ({took:?})");
    assert_eq!(phone.outbox_len().unwrap(), 0);
}

/// Regression: when the reply to an enrolment was lost, the code was used up and the hall had
/// to issue a new one. The app now retries with the same device key and the relay answers the
/// retry for the same device: one code, one device, a working token.
#[test]
fn an_enrolment_whose_reply_is_cut_succeeds_on_retry_with_the_same_code() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), 0);
    let cutter = PushReplyCutter::start_for(relay.port, 1, b"POST /v1/enroll");
    let code = relay.enroll("王芳的手机", "walker", "g1");
    let phone = device_store(dir.path(), "phone", "w1");
    let link = client::join(&phone, &format!("http://127.0.0.1:{}", cutter.port), &code, "王芳的手机")
        .expect("the enrolment gets through on its retry");
    assert_eq!(cutter.cut_left.load(Ordering::SeqCst), 0, "the first reply was cut");
    // One device for the one code, and the token the phone holds works.
    let devices =
        Command::new(RELAY).args(["--data-dir", relay.data.to_str().unwrap(), "devices", "--json"]).output().unwrap();
    let devices: serde_json::Value = serde_json::from_slice(&devices.stdout).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    assert_eq!(devices[0]["id"], link.device_id.as_str());
    point_at(&phone, &format!("http://127.0.0.1:{}", relay.port));
    sync_until_done(&phone);
    // Another app with the same code is still refused: the code is used.
    let other = device_store(dir.path(), "other", "w2");
    let refused = client::join(&other, &format!("http://127.0.0.1:{}", relay.port), &code, "别人的手机").unwrap_err();
    assert!(matches!(refused, gridwalk_core::CoreError::Relay { status: 401, .. }), "{refused}");
}

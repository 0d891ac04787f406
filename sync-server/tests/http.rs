//! The real relay process over real loopback HTTP: enrolment, convergence, access, bad input,
//! and a relay killed with SIGKILL mid-work and restarted.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;

use common::{device_store, fingerprint, random_edit};
use gridwalk_core::store::{RequestFilter, Store};
use gridwalk_core::CoreError;
use gridwalk_transport::client;
use rand::Rng;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

const RELAY: &str = env!("CARGO_BIN_EXE_gridwalk-relay");

struct RelayProcess {
    child: Child,
    url: String,
    data: PathBuf,
}

impl RelayProcess {
    fn start(data: &Path, port: u16) -> RelayProcess {
        Self::start_with(data, port, &[])
    }

    fn start_with(data: &Path, port: u16, extra: &[&str]) -> RelayProcess {
        let mut child = Command::new(RELAY)
            .args(["--data-dir", data.to_str().unwrap(), "serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the relay");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        RelayProcess { child, url, data: data.to_path_buf() }
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(RELAY).arg("--data-dir").arg(&self.data).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn enroll(&self, name: &str, role: &str, grids: &str) -> String {
        let mut args = vec!["enroll", "--name", name, "--role", role];
        if !grids.is_empty() {
            args.extend(["--grids", grids]);
        }
        self.admin(&args).trim().to_string()
    }

    fn kill(&mut self) {
        // Child::kill sends SIGKILL: no graceful shutdown, as when the hall PC loses power.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sync(store: &Store) -> gridwalk_core::Result<client::Progress> {
    client::sync_over_http(store, &AtomicBool::new(false), &mut |_| {})
}

#[test]
fn devices_converge_through_a_real_relay_even_when_it_is_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    let mut relay = RelayProcess::start(&data, 0);
    let port = relay.port();
    let mut devices = Vec::new();
    for i in 0..3 {
        let store = device_store(dir.path(), &format!("phone-{i}"), &format!("w{i}"));
        let code = relay.enroll(&format!("phone-{i}"), "walker", "g1");
        client::join(&store, &relay.url, &code, &format!("phone-{i}")).unwrap();
        devices.push(store);
    }
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    client::join(&hall, &relay.url, &relay.enroll("hall-pc", "hall", ""), "hall-pc").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut minute = 0;
    for round in 0..4 {
        for _ in 0..15 {
            minute += 1;
            let d = rng.random_range(0..devices.len());
            random_edit(&devices[d], &mut rng, "g1", minute);
        }
        for d in &devices {
            if rng.random_bool(0.7) {
                sync(d).unwrap();
            }
        }
        if round == 1 {
            // Power cut at the hall; the relay comes back on the same port and data.
            relay.kill();
            assert!(matches!(sync(&devices[0]), Err(CoreError::Network(_))));
            relay = RelayProcess::start(&data, port);
        }
    }
    for _ in 0..2 {
        for d in devices.iter().chain([&hall]) {
            sync(d).unwrap();
        }
    }
    let expected = fingerprint(&devices[0]);
    assert!(expected.0.len() > 5);
    for d in devices.iter().skip(1).chain([&hall]) {
        assert_eq!(fingerprint(d), expected);
    }
    let stats: serde_json::Value = serde_json::from_str(&relay.admin(&["stats"])).unwrap();
    assert_eq!(stats["documents"].as_u64().unwrap() as usize, expected.0.len());
}

/// The HTTP transport fetches the next page while the session applies the one before. A page
/// fetched ahead must answer only the very pull it was fetched for, and a pull of many small
/// pages must end exactly where one of a single page does.
#[test]
fn a_page_fetched_ahead_answers_only_the_pull_it_was_fetched_for() {
    use client::{HttpTransport, Incoming, Outgoing, Retry, SessionLimits, SyncSession, Transport};
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), 0);
    let phone = device_store(dir.path(), "phone-1", "w1");
    client::join(&phone, &relay.url, &relay.enroll("phone-1", "walker", "g1"), "phone-1").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for minute in 0..40 {
        random_edit(&phone, &mut rng, "g1", minute);
    }
    sync(&phone).unwrap();
    let held = fingerprint(&phone).0.len();
    assert!(held > 12, "enough documents for several pages of 4: {held}");

    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    let link = client::join(&hall, &relay.url, &relay.enroll("hall-pc", "hall", ""), "hall-pc").unwrap();
    let page = |reply: Result<Incoming, client::SyncFailure>| match reply.unwrap() {
        Incoming::Pulled(page) => page,
        other => panic!("a pull answered with {other:?}"),
    };
    let pull = |cursor: &str, limit| Outgoing::Pull { cursor: cursor.into(), limit };
    let mut ahead = HttpTransport::new(&link).unwrap();
    let first = page(ahead.send(&pull("", 4)));
    assert!(first.more && first.docs.len() == 4);
    // Asked for the first page again, the transport must not hand out the second.
    assert_eq!(page(ahead.send(&pull("", 4))), first);
    // Nor the second when the page size differs from the one it fetched ahead with.
    let mut fresh = HttpTransport::new(&link).unwrap();
    assert_eq!(page(ahead.send(&pull(&first.cursor, 3))), page(fresh.send(&pull(&first.cursor, 3))));
    // And for exactly the request it fetched ahead, the same page a fresh fetch returns.
    let _ = page(ahead.send(&pull("", 4)));
    assert_eq!(page(ahead.send(&pull(&first.cursor, 4))), page(fresh.send(&pull(&first.cursor, 4))));

    // A whole first pull in pages of 4, every one but the first fetched ahead.
    let limits = SessionLimits { pull_page: 4, ..SessionLimits::default() };
    let progress = client::run_session(
        SyncSession::new(&hall, limits).unwrap(),
        &mut HttpTransport::new(&link).unwrap(),
        Retry::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(progress.docs_pulled, held);
    assert!(progress.pages_pulled >= held / 4);
    assert_eq!(fingerprint(&hall), fingerprint(&phone));
}

#[test]
fn every_endpoint_enforces_tokens_and_grids_and_refuses_bad_input_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), 0);
    let http = reqwest::blocking::Client::new();
    let a = device_store(dir.path(), "phone-a", "wa");
    let b = device_store(dir.path(), "phone-b", "wb");
    let link_a = client::join(&a, &relay.url, &relay.enroll("phone-a", "walker", "g1"), "phone-a").unwrap();
    let link_b = client::join(&b, &relay.url, &relay.enroll("phone-b", "walker", "g2"), "phone-b").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for m in 0..15 {
        random_edit(&a, &mut rng, "g1", m);
        random_edit(&b, &mut rng, "g2", m);
    }
    sync(&a).unwrap();
    sync(&b).unwrap();
    sync(&a).unwrap();
    let grids = |s: &Store| {
        s.list_requests(&RequestFilter { limit: 1000, ..Default::default() })
            .unwrap()
            .into_iter()
            .all(|r| r.grid == "g1")
    };
    assert!(grids(&a), "walker A holds only grid g1");

    // A code works once.
    let code = relay.enroll("once", "walker", "g1");
    let spare = device_store(dir.path(), "spare", "w9");
    client::join(&spare, &relay.url, &code, "once").unwrap();
    let again = client::join(&spare, &relay.url, &code, "twice").unwrap_err();
    assert!(matches!(again, CoreError::Relay { status: 401, .. }), "{again}");

    let expect_json_error = |resp: reqwest::blocking::Response, status: u16| {
        assert_eq!(resp.status().as_u16(), status);
        let body: serde_json::Value = resp.json().expect("errors are JSON");
        assert!(body["code"].is_string() && body["message"].is_string(), "{body}");
        body["code"].as_str().unwrap().to_string()
    };
    let pull = |token: Option<&str>| {
        let mut req = http.get(format!("{}/v1/pull?cursor=&limit=10", relay.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    };
    let push = |token: &str, body: Vec<u8>| {
        http.post(format!("{}/v1/push", relay.url)).bearer_auth(token).body(body).send().unwrap()
    };
    // No, unknown and malformed tokens.
    expect_json_error(pull(None), 401);
    expect_json_error(pull(Some(&"ab".repeat(32))), 401);
    expect_json_error(pull(Some("../../etc/passwd")), 401);
    expect_json_error(push(&"ab".repeat(32), vec![1, 2, 3]), 401);
    // B's phone cannot write A's grid.
    let a_doc = a.list_requests(&RequestFilter { limit: 1, ..Default::default() }).unwrap()[0].id.clone();
    let forged = gridwalk_core::sync::protocol::encode(&gridwalk_core::sync::protocol::PushRequest {
        version: gridwalk_core::sync::protocol::PROTOCOL_VERSION,
        docs: vec![gridwalk_core::sync::protocol::DocChanges {
            doc_id: a_doc.clone(),
            bytes: a.document_bytes(&a_doc).unwrap(),
        }],
    });
    assert_eq!(expect_json_error(push(&link_b.token, forged), 403), "forbidden");
    // Bad bodies and cursors.
    expect_json_error(push(&link_a.token, b"\xff\xfe garbage".to_vec()), 400);
    expect_json_error(push(&link_a.token, Vec::new()), 400);
    expect_json_error(
        http.get(format!("{}/v1/pull?cursor=zz&limit=5", relay.url)).bearer_auth(&link_a.token).send().unwrap(),
        400,
    );
    expect_json_error(
        http.get(format!("{}/v1/pull?limit=lots", relay.url)).bearer_auth(&link_a.token).send().unwrap(),
        400,
    );
    // On a client of its own: the relay answers 413 and closes the connection before reading
    // the whole body, and a pooled connection in that state would fail the next request.
    let oversize = reqwest::blocking::Client::new()
        .post(format!("{}/v1/push", relay.url))
        .bearer_auth(&link_a.token)
        .body(vec![0u8; 33 * 1024 * 1024])
        .send()
        .unwrap();
    expect_json_error(oversize, 413);
    expect_json_error(http.post(format!("{}/v1/enroll", relay.url)).body("{not json").send().unwrap(), 400);
    expect_json_error(http.get(format!("{}/v1/nothing-here", relay.url)).send().unwrap(), 404);
    // Still serving.
    assert_eq!(http.get(format!("{}/health", relay.url)).send().unwrap().status().as_u16(), 200);
    let metrics = http.get(format!("{}/metrics", relay.url)).send().unwrap().text().unwrap();
    assert!(metrics.contains("gridwalk_relay_client_errors_total"), "{metrics}");

    // Revocation takes effect on the very next request.
    relay.admin(&["revoke", &link_b.device_id]);
    assert!(matches!(sync(&b), Err(CoreError::Relay { status: 401, .. })));
    let devices: serde_json::Value = serde_json::from_str(&relay.admin(&["devices", "--json"])).unwrap();
    assert!(devices
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["id"] == link_b.device_id.as_str() && d["revoked_at"].is_number()));

    // The relay's files hold no token and no code in plain text.
    let backup = dir.path().join("backup.db");
    relay.admin(&["backup", backup.to_str().unwrap(), "--plaintext"]);
    for file in std::fs::read_dir(dir.path().join("relay")).unwrap().map(|e| e.unwrap().path()).chain([backup]) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in [&link_a.token, &link_b.token, &code] {
            assert!(!contains(&bytes, secret.as_bytes()), "{} holds a secret", file.display());
            assert!(!contains(&bytes, &hex_decode(secret)), "{} holds a secret's bytes", file.display());
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn hex_decode(s: &str) -> Vec<u8> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Vec::new();
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Regression: 200 wrong enrolment codes could be tried in 0.19 s with no 429 and no lock-out.
/// Now wrong codes are counted per address: past the limit the relay answers 429 with a clear
/// message and Retry-After, checks no code at all, and lets the address try again once the
/// window has passed; enrolled devices are never held up meanwhile.
#[test]
fn wrong_enrolment_codes_are_limited_per_address_without_locking_out_the_hall() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start_with(
        &dir.path().join("relay"),
        0,
        &["--enrol-attempts-per-address", "5", "--enrol-attempt-window-s", "3"],
    );
    let hall = device_store(dir.path(), "hall-pc", "hall-1");
    client::join(&hall, &relay.url, &relay.enroll("hall-pc", "hall", ""), "hall-pc").unwrap();
    let http = reqwest::blocking::Client::new();
    let enrol = |code: &str| {
        http.post(format!("{}/v1/enroll", relay.url))
            .json(&serde_json::json!({ "code": code, "device_name": "猜码的手机" }))
            .send()
            .unwrap()
    };
    let mut statuses = Vec::new();
    for n in 0..200 {
        let r = enrol(&format!("WRONG{n:05}"));
        let status = r.status().as_u16();
        if status == 429 {
            assert!(r.headers().get("retry-after").is_some(), "429 says when to try again");
            let body: serde_json::Value = r.json().unwrap();
            assert_eq!(body["code"], "too_many_attempts");
            assert!(body["message"].as_str().unwrap().contains("new code"), "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..5], &[401; 5], "the first wrong codes are simply wrong");
    assert!(statuses[5..].iter().all(|s| *s == 429), "then the address is held off: {:?}", &statuses[..12]);
    // Even a right code waits out the window: no code is checked while the address is held off.
    let code = relay.enroll("王芳的手机", "walker", "g1");
    assert_eq!(enrol(&code).status().as_u16(), 429);
    // The hall's enrolled PC syncs on, untouched by the limit.
    hall.publish_rosters(&hall.context(common::t(0)), &[]).unwrap();
    client::sync_over_http(&hall, &AtomicBool::new(false), &mut |_| {}).unwrap();
    // After the window the same address enrols with the right code.
    std::thread::sleep(std::time::Duration::from_millis(3_200));
    assert_eq!(enrol(&code).status().as_u16(), 200);
}

/// `enroll --qr` prints a QR code in the terminal holding the relay's address and the code; read
/// back from the printed blocks by a QR decoder (as a phone's camera would), it is the link the
/// app understands, and the code in it enrols a device.
#[test]
fn the_enrolment_qr_code_printed_in_the_terminal_reads_back_as_the_link_and_enrols() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&dir.path().join("relay"), 0);
    let out = Command::new(RELAY)
        .arg("--data-dir")
        .arg(&relay.data)
        .args(["enroll", "--name", "王芳的手机", "--grids", "g1", "--qr", "--relay-url", &relay.url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let code = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let blocks: Vec<Vec<char>> = String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .filter(|l| l.contains('█') || l.contains('▀') || l.contains('▄'))
        .map(|l| l.chars().collect())
        .collect();
    // Each character is two modules, top and bottom; the code is printed light on dark, so a
    // full block is a light module pair.
    let width = blocks.iter().map(Vec::len).max().unwrap();
    let height = blocks.len() * 2;
    let scale = 4;
    let dark_at = |x: usize, y: usize| -> bool {
        let c = blocks[y / 2].get(x).copied().unwrap_or('█');
        let (top_light, bottom_light) = match c {
            '█' => (true, true),
            '▀' => (true, false),
            '▄' => (false, true),
            _ => (false, false),
        };
        !(if y.is_multiple_of(2) { top_light } else { bottom_light })
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width * scale, height * scale, |x, y| {
        if dark_at(x / scale, y / scale) {
            0
        } else {
            255
        }
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the terminal");
    let (_, text) = grids[0].decode().expect("the QR code reads");
    assert_eq!(text, format!("gridwalk:enrol?relay={}&code={code}", relay.url));
    // The code in it enrols a phone.
    let phone = device_store(dir.path(), "phone", "w1");
    client::join(&phone, &relay.url, &code, "王芳的手机").unwrap();
}

//! The tamper-evident record: `gridwalk-relay audit verify` passes on a relay that devices
//! synced with, and names the receipt or document when any one row of its database was edited,
//! removed, moved or replaced afterwards (done here with SQL, as whoever holds the file could).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::TimeZone;
use common::{device_store, random_edit, InMemoryTransport};
use gridwalk_core::store::Store;
use gridwalk_core::sync::protocol::EnrollRequest;
use gridwalk_core::ManualClock;
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{Role, SqliteRelayStore};
use gridwalk_transport::client::{self, Retry, SessionLimits};
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

const RELAY: &str = env!("CARGO_BIN_EXE_gridwalk-relay");

fn sync(store: &Store, relay: &Relay, token: &str) {
    client::run(
        store,
        &mut InMemoryTransport::new(relay, token),
        SessionLimits { push_entries: 5, push_bytes: 64 * 1024, pull_page: 20 },
        Retry { attempts: 1, ..Retry::default() },
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
}

/// `audit verify` on the relay in `data`: whether it passed, and what it said.
fn audit(data: &Path) -> (bool, String) {
    let out = Command::new(RELAY).arg("--data-dir").arg(data).args(["audit", "verify"]).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn audit_verify_passes_on_a_synced_relay_and_names_every_kind_of_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
    {
        let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
        let relay = Relay::new(Box::new(SqliteRelayStore::open(&data.join("relay.db")).unwrap()), clock.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let devices: Vec<(Store, String)> = (0..3)
            .map(|i| {
                let store = device_store(dir.path(), &format!("phone-{i}"), &format!("w{i}"));
                let code = relay.create_enrollment(&format!("phone-{i}"), Role::Walker, &["g1".to_string()]).unwrap();
                let token = relay
                    .enroll(&EnrollRequest { code, device_name: format!("phone-{i}"), device_key: None })
                    .unwrap()
                    .token;
                (store, token)
            })
            .collect();
        for round in 0..4 {
            for (store, token) in &devices {
                for k in 0..4 {
                    random_edit(store, &mut rng, "g1", round * 100 + k);
                }
                clock.advance(chrono::Duration::minutes(7));
                sync(store, &relay, token);
            }
        }
    }
    let (ok, said) = audit(&data);
    assert!(ok, "the untouched record holds: {said}");
    assert!(said.contains("the record holds"), "{said}");

    // Each tampering on its own copy of the database.
    let original = rusqlite::Connection::open(data.join("relay.db")).unwrap();
    let seqs: Vec<i64> = original
        .prepare("SELECT seq FROM changes ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(seqs.len() > 20, "enough receipts to tamper with: {}", seqs.len());
    let (first, middle, next, last) = (seqs[0], seqs[seqs.len() / 2], seqs[seqs.len() / 2 + 1], *seqs.last().unwrap());
    let docs: Vec<String> = original
        .prepare("SELECT id FROM docs ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let cases: Vec<(&str, String, String)> = vec![
        (
            "a receipt time edited",
            format!("UPDATE changes SET received_at = received_at - 3600000 WHERE seq = {middle}"),
            format!("receipt {middle} "),
        ),
        ("a receipt removed", format!("DELETE FROM changes WHERE seq = {middle}"), format!("receipt {next} ")),
        (
            "the last receipt removed",
            format!("DELETE FROM changes WHERE seq = {last}"),
            format!("receipt {last} as its last"),
        ),
        (
            "two receipts swapped",
            format!(
                "UPDATE changes SET seq = -1 WHERE seq = {first}; UPDATE changes SET seq = {first} WHERE seq = {middle};
                 UPDATE changes SET seq = {middle} WHERE seq = -1"
            ),
            format!("receipt {first} "),
        ),
        (
            "a device swapped on a receipt",
            format!("UPDATE changes SET device_id = 'dev-someone-else' WHERE seq = {middle}"),
            format!("receipt {middle} "),
        ),
        (
            "a change's bytes edited",
            format!("UPDATE changes SET bytes = zeroblob(length(bytes)) WHERE seq = {middle}"),
            format!("bytes of receipt {middle} "),
        ),
        (
            "a document replaced by another",
            format!(
                "UPDATE docs SET snapshot = (SELECT snapshot FROM docs WHERE id = '{}') WHERE id = '{}'",
                docs[1], docs[0]
            ),
            format!("document {} ", docs[0]),
        ),
    ];
    for (n, (what, sql, named)) in cases.into_iter().enumerate() {
        let copy = dir.path().join(format!("case-{n}"));
        std::fs::create_dir_all(&copy).unwrap();
        original.execute("VACUUM INTO ?1", [copy.join("relay.db").to_string_lossy()]).unwrap();
        rusqlite::Connection::open(copy.join("relay.db")).unwrap().execute_batch(&sql).unwrap();
        let (ok, said) = audit(&copy);
        assert!(!ok, "{what}: audit verify must fail");
        assert!(said.contains(&named), "{what}: names {named:?}: {said}");
    }
}

/// A request's history can be carried away as an evidence file and checked anywhere, with no
/// relay: the file from `gridwalk-relay audit export` verifies (`gridwalk audit verify` is this
/// check), and the same file with any one byte changed does not.
#[test]
fn an_exported_evidence_file_verifies_offline_and_one_changed_byte_anywhere_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
    {
        let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
        let relay = Relay::new(Box::new(SqliteRelayStore::open(&data.join("relay.db")).unwrap()), clock.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let store = device_store(dir.path(), "phone", "w1");
        let code = relay.create_enrollment("phone", Role::Walker, &["g1".to_string()]).unwrap();
        let token = relay.enroll(&EnrollRequest { code, device_name: "phone".into(), device_key: None }).unwrap().token;
        for round in 0..3 {
            for k in 0..5 {
                random_edit(&store, &mut rng, "g1", round * 100 + k);
            }
            clock.advance(chrono::Duration::minutes(9));
            sync(&store, &relay, &token);
        }
    }
    // The request with the most receipts.
    let db = rusqlite::Connection::open(data.join("relay.db")).unwrap();
    let (doc, receipts): (String, i64) = db
        .query_row(
            "SELECT c.doc_id, COUNT(*) FROM changes c JOIN docs d ON d.id = c.doc_id WHERE d.kind = 'request'
              GROUP BY c.doc_id ORDER BY 2 DESC, 1 LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let file = dir.path().join("evidence.txt");
    let out = Command::new(RELAY)
        .arg("--data-dir")
        .arg(&data)
        .args(["audit", "export", "--doc", &doc, "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    let report = gridwalk_core::evidence::verify_evidence(&text).expect("the exported file verifies");
    assert_eq!((report.document.as_str(), report.receipts as i64), (doc.as_str(), receipts));
    assert!(!report.steps.is_empty() && report.steps[0].step == "collected", "{:?}", report.steps);

    // One byte changed: in a change, in a device name, in a receipt time, in the layout, in the
    // digest line. Each is caught.
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} in the file"));
    let change_byte = at("\"change\": \"") + 20;
    let device_byte = at("\"device\": \"") + 12;
    let time_byte = at("\"received_at\": ") + 16;
    let layout_byte = at("\n  \"document\"");
    let digest_byte = text.rfind("sha256 ").unwrap() + 10;
    for (what, i) in [
        ("a change", change_byte),
        ("a device", device_byte),
        ("a receipt time", time_byte),
        ("the layout", layout_byte),
        ("the digest line", digest_byte),
    ] {
        let mut bytes = text.clone().into_bytes();
        bytes[i] = if bytes[i] == b'1' {
            b'2'
        } else if bytes[i] == b'\n' {
            b' '
        } else {
            b'1'
        };
        let changed = String::from_utf8(bytes).unwrap();
        assert_ne!(changed, text, "{what}: the byte changed");
        let err = gridwalk_core::evidence::verify_evidence(&changed).expect_err(what);
        assert_eq!(err.code(), "invalid_input", "{what}: {err}");
    }
    // A receipt edited and the file's digest recomputed to match: the chain still catches it.
    let edited = text.replacen("\"device\": \"", "\"device\": \"x", 1);
    let body = &edited[..edited.rfind("sha256 ").unwrap()];
    use sha2::Digest as _;
    let forged = format!("{body}sha256 {}\n", hex::encode(sha2::Sha256::digest(body.as_bytes())));
    let err = gridwalk_core::evidence::verify_evidence(&forged).unwrap_err();
    assert!(err.to_string().contains("does not follow from the value before it"), "{err}");
}

//! A relay backup on a USB stick reads nothing without its key: `gridwalk-relay backup` writes
//! an encrypted file (to a passphrase or to a recipient key), `restore` brings it back whole,
//! and a plain copy needs `--plaintext` said out loud.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::TimeZone;
use common::{device_store, random_edit, InMemoryTransport};
use gridwalk_core::sync::protocol::EnrollRequest;
use gridwalk_core::ManualClock;
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{Role, SqliteRelayStore};
use gridwalk_transport::client::{self, Retry, SessionLimits};
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

const RELAY: &str = env!("CARGO_BIN_EXE_gridwalk-relay");

fn relay_cli(data: &Path, args: &[&str]) -> Output {
    Command::new(RELAY).arg("--data-dir").arg(data).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_relay_backup_is_encrypted_unless_asked_otherwise_and_restores_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    std::fs::create_dir_all(&data).unwrap();
    // A relay with a walker's phone and a morning of her records.
    {
        let clock = Arc::new(ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()));
        let relay = Relay::new(Box::new(SqliteRelayStore::open(&data.join("relay.db")).unwrap()), clock);
        let code = relay.create_enrollment("王芳的手机", Role::Walker, &["g1".to_string()]).unwrap();
        let token =
            relay.enroll(&EnrollRequest { code, device_name: "王芳的手机".into(), device_key: None }).unwrap().token;
        let phone = device_store(dir.path(), "phone", "w1");
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for minute in 0..12 {
            random_edit(&phone, &mut rng, "g1", minute);
        }
        client::run(
            &phone,
            &mut InMemoryTransport::new(&relay, token.as_str()),
            SessionLimits::default(),
            Retry::default(),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
    }
    let digest = ok(relay_cli(&data, &["digest"]));
    let name = "王芳的手机".as_bytes();
    assert!(contains(&std::fs::read(data.join("relay.db")).unwrap(), name), "the live database names her phone");

    // No key, no backup.
    let stick = dir.path().join("usb");
    std::fs::create_dir_all(&stick).unwrap();
    let refused = relay_cli(&data, &["backup", stick.join("none.age").to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--plaintext"));
    assert!(!stick.join("none.age").exists());

    // To a passphrase.
    let pass = dir.path().join("passphrase.txt");
    std::fs::write(&pass, "马厩村服务中心 2026 冬\n").unwrap();
    let file = stick.join("relay-pass.age");
    ok(relay_cli(&data, &["backup", file.to_str().unwrap(), "--passphrase-file", pass.to_str().unwrap()]));
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1"), "an age file");
    assert!(!contains(&bytes, b"SQLite format 3") && !contains(&bytes, name), "nothing readable in it");
    assert!(std::fs::read_dir(&data).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("backup-in-progress")));
    let back = dir.path().join("restored-pass");
    ok(relay_cli(&back, &["restore", file.to_str().unwrap(), "--passphrase-file", pass.to_str().unwrap()]));
    assert_eq!(ok(relay_cli(&back, &["digest"])), digest, "restored whole");
    // A wrong passphrase restores nothing and says why.
    let wrong = dir.path().join("wrong.txt");
    std::fs::write(&wrong, "猜的密码\n").unwrap();
    let nothing = dir.path().join("restored-wrong");
    let out = relay_cli(&nothing, &["restore", file.to_str().unwrap(), "--passphrase-file", wrong.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be opened"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!nothing.join("relay.db").exists() && !nothing.join("relay.db.partial").exists());

    // To a recipient key made at set-up; only its identity opens it.
    let key = dir.path().join("backup-key.txt");
    let recipient = ok(relay_cli(&data, &["backup-key", "--out", key.to_str().unwrap()])).trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let file = stick.join("relay-key.age");
    ok(relay_cli(&data, &["backup", file.to_str().unwrap(), "--recipient", &recipient]));
    assert!(!contains(&std::fs::read(&file).unwrap(), name));
    let back = dir.path().join("restored-key");
    ok(relay_cli(&back, &["restore", file.to_str().unwrap(), "--identity", key.to_str().unwrap()]));
    assert_eq!(ok(relay_cli(&back, &["digest"])), digest);
    let out = relay_cli(
        &dir.path().join("restored-by-pass"),
        &["restore", file.to_str().unwrap(), "--passphrase-file", pass.to_str().unwrap()],
    );
    assert!(!out.status.success(), "a passphrase does not open a key's backup");

    // A plain copy, said out loud.
    let plain = stick.join("relay-plain.db");
    ok(relay_cli(&data, &["backup", plain.to_str().unwrap(), "--plaintext"]));
    assert!(std::fs::read(&plain).unwrap().starts_with(b"SQLite format 3"));
}

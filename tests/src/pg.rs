//! A throwaway PostgreSQL server for tests: its own data directory in a temporary folder, a
//! Unix socket in that folder, no TCP port, stopped when dropped. No mock: the real server
//! Debian ships (`postgresql-15`; `scripts/setup.sh` installs it where it is missing).
//!
//! `initdb` refuses to run as root, and CI runs as root: the server then runs as the
//! `postgres` user, which owns the folder.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    databases: std::sync::atomic::AtomicUsize,
}

/// The newest PostgreSQL's programs: Debian keeps them under /usr/lib/postgresql/<major>/bin.
fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's server programs are not installed (initdb, pg_ctl): run `bash scripts/setup.sh` first")
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl TempPostgres {
    pub fn start() -> TempPostgres {
        let dir = tempfile::tempdir().unwrap();
        let pg = TempPostgres { dir, bin: server_bin(), as_postgres: is_root(), databases: Default::default() };
        if pg.as_postgres {
            let ok = Command::new("chown").arg("-R").arg("postgres:postgres").arg(pg.dir.path()).status().unwrap();
            assert!(ok.success(), "chown the test server's folder to postgres");
        }
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-U", "gridwalk", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
        let options =
            format!("-k {} -c listen_addresses='' -c fsync=off -c max_connections=200", pg.socket_dir().display());
        let log = pg.dir.path().join("server.log");
        pg.run("pg_ctl", &["-D", &data, "-l", &log.to_string_lossy(), "-o", &options, "-w", "start"]);
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let out = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        }
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A connection string for database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("host={} user=gridwalk dbname={name}", self.socket_dir().display())
    }

    /// A new, empty database on this server, and its connection string.
    /// The server's main process (from its `postmaster.pid`), whose children serve connections:
    /// for measuring the CPU the database spent.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(Path::new(&self.data()).join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    pub fn new_database(&self) -> String {
        let n = self.databases.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("relay_{n}");
        let mut admin =
            postgres::Client::connect(&self.url("postgres"), postgres::NoTls).expect("connect to the test server");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url(&name)
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let args = ["-D", data.as_str(), "-m", "fast", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

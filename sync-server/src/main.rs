//! `gridwalk-relay`: run the relay, and manage it from the hall's server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use gridwalk_doc::SystemClock;
use gridwalk_relay::backup::{self, BackupKey, RestoreKey};
use gridwalk_relay::blobs::{blob_digest, copy_blobs, BlobFiles};
use gridwalk_relay::http::{router, AppState, AttemptLimiter, AttemptLimits};
use gridwalk_relay::relay::Relay;
use gridwalk_relay::store::{chain, PostgresRelayStore, RelayStore, Role, SqliteRelayStore};

#[derive(Parser)]
#[command(name = "gridwalk-relay", version, about = "The service hall's Gridwalk relay")]
struct Cli {
    /// Where the relay keeps its database (the embedded SQLite file) and photos.
    #[arg(long, global = true, env = "GRIDWALK_RELAY_DATA", default_value = "relay-data")]
    data_dir: PathBuf,
    /// A PostgreSQL database to keep documents and devices in instead of the embedded SQLite
    /// file, e.g. `postgres://gridwalk@db-host/gridwalk`. Any number of relays may serve from
    /// one database at once.
    #[arg(long, global = true, env = "GRIDWALK_RELAY_DATABASE")]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve devices over HTTP.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8470")]
        listen: SocketAddr,
        /// Wrong enrolment codes tolerated from one address per window before 429.
        #[arg(long, default_value_t = 10)]
        enrol_attempts_per_address: u32,
        /// Wrong enrolment codes tolerated from all addresses together per window.
        #[arg(long, default_value_t = 100)]
        enrol_attempts_in_all: u32,
        /// The window those counts are kept for, in seconds.
        #[arg(long, default_value_t = 600)]
        enrol_attempt_window_s: u64,
    },
    /// Create a one-time code that enrols one device.
    Enroll {
        /// A name people recognise, e.g. "王芳的手机".
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["walker", "hall", "admin"], default_value = "walker")]
        role: String,
        /// Grids a walker's device may see (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        grids: Vec<String>,
        /// The walker (person) the device is for, e.g. "w001"; her phone records in her name.
        #[arg(long)]
        walker: Option<String>,
        #[arg(long)]
        json: bool,
        /// Also print a QR code holding the relay's address and the code, for the app to scan.
        #[arg(long)]
        qr: bool,
        /// The address phones reach this relay at, e.g. http://192.168.1.20:8470 (for the QR code).
        #[arg(long, requires = "qr")]
        relay_url: Option<String>,
    },
    /// List enrolled devices with their last contact.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device: its token is refused from the next request on.
    Revoke { device_id: String },
    /// Give a walker's phone other grids (its walker moved): it sees only those from its next
    /// request on, and forgets the records of the grids it left at its next sync.
    SetGrids {
        device_id: String,
        #[arg(long, value_delimiter = ',', required = true)]
        grids: Vec<String>,
    },
    /// List the hand-overs of forgotten-PIN phone stores to their walkers' new enrolments.
    Handovers {
        #[arg(long)]
        json: bool,
    },
    /// Confirm, having seen the walker, that a forgotten-PIN store's unsent work may go to her
    /// new enrolment (a hall admin does this at the console with her own PIN).
    ConfirmHandover {
        /// The old device, as `handovers` lists it.
        from_device: String,
        /// Who confirms (recorded with the hand-over).
        #[arg(long)]
        by: String,
    },
    /// Write a consistent copy of the relay's database while it keeps serving, encrypted: to the
    /// recipient key of `backup-key` (kept off this machine), or to a passphrase read from a
    /// file. A plain copy only with --plaintext. Photos are files under
    /// `<data-dir>/relay.db-blobs/` that never change once written; copy that folder with
    /// ordinary file tools (its `partial/` subfolder holds unfinished uploads and may be left out).
    Backup {
        to: PathBuf,
        /// Encrypt to this recipient key (age1…, from `gridwalk-relay backup-key`); repeatable.
        #[arg(long)]
        recipient: Vec<String>,
        /// Encrypt to the passphrase in this file (its first line).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Write an unencrypted copy: anyone holding the file reads every resident's record.
        #[arg(long)]
        plaintext: bool,
    },
    /// Put a backup back as this data directory's database (which must not exist yet).
    Restore {
        from: PathBuf,
        /// The identity file the backup was encrypted to (from `backup-key`).
        #[arg(long)]
        identity: Option<PathBuf>,
        /// The file holding the backup's passphrase.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// The backup is a plain copy (`backup --plaintext`).
        #[arg(long)]
        plaintext: bool,
    },
    /// Make the key pair backups are encrypted to: the identity (secret) is written to --out
    /// with owner-only permissions and belongs off this machine; the recipient key is printed.
    BackupKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// Counts of devices, documents and changes.
    Stats,
    /// The hall's staff list (who signs in on a hall PC), kept by the relay.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Check the relay's record: the receipt chain and the stored documents.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The SHA-256 of every row the relay holds (devices, codes, documents, changes, photo
    /// references), to compare two relays or one relay before and after a move.
    Digest,
    /// Move this hall's relay from its embedded SQLite file onto PostgreSQL: devices (their
    /// tokens stay valid), enrolment codes, documents, every change with its sequence number
    /// and receipt time, and the photo files. Stop the relay first. The SQLite file is left as
    /// it was; the move is refused unless the PostgreSQL database is empty, and fails unless the
    /// digest after the move equals the digest before.
    MigrateToPostgres {
        /// The PostgreSQL database to move into, e.g. `postgres://gridwalk@db-host/gridwalk`.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Name an admin with her PIN: the first of the staff list (which this starts), another,
    /// or the same again when she forgot her PIN. Every later change is made by an admin signed
    /// in on a hall PC (基础信息 → 工作人员, or `gridwalk staff set-pin`).
    AddAdmin {
        /// Her person id, as events name her, e.g. "admin".
        #[arg(long)]
        person: String,
        #[arg(long)]
        name: String,
        /// 4 to 8 digits; only its Argon2id hash is kept.
        #[arg(long)]
        pin: String,
    },
    /// Who is on the staff list, in which role, and who last set each entry (never the PINs).
    List,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk every receipt in order and every stored document; name the first that does not hold
    /// (a receipt edited, removed or moved, a change's bytes altered, a document replaced).
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write one request's evidence file: its changes with the receipts that chain them, to be
    /// checked anywhere, with no relay, by `gridwalk audit verify FILE`.
    Export {
        /// The request (or visit) document's id.
        #[arg(long)]
        doc: String,
        #[arg(long)]
        out: PathBuf,
    },
}

fn open_relay(data_dir: &Path, database: Option<&str>) -> Result<Relay> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    Ok(match database {
        None => {
            let store = SqliteRelayStore::open(&data_dir.join("relay.db")).context("cannot open the relay database")?;
            Relay::new(Box::new(store), Arc::new(SystemClock))
        }
        // Photos live in the database too, so every relay on it serves every photo. Photo files
        // an earlier version kept under <data-dir>/blobs are moved in once (already there: skipped).
        Some(url) => {
            let store = PostgresRelayStore::open(url).context("cannot open the relay's PostgreSQL database")?;
            let old_files = data_dir.join("blobs");
            if old_files.exists() {
                let (blobs, bytes) = copy_blobs(&BlobFiles::new(&old_files), &store.blobs())
                    .context("cannot move the photo files into the database")?;
                if blobs > 0 {
                    tracing::info!(blobs, bytes, "photo files moved into the database");
                }
            }
            Relay::new(Box::new(store), Arc::new(SystemClock))
        }
    })
}

fn migrate_to_postgres(data_dir: &Path, url: &str) -> Result<()> {
    let file = data_dir.join("relay.db");
    if !file.exists() {
        bail!("there is no relay database at {}: give the --data-dir the relay serves from", file.display());
    }
    let sqlite = SqliteRelayStore::open(&file).context("cannot open the relay database")?;
    let before = sqlite.dump().context("cannot read the relay database")?;
    let digest_before = before.digest();
    let postgres = PostgresRelayStore::open(url).context("cannot open the PostgreSQL database")?;
    postgres.load_dump(&before).context("cannot write into the PostgreSQL database")?;
    // Photos go into the database, each verified again on the way in; unfinished uploads go
    // as they stand, so they resume where they stopped.
    let files = BlobFiles::new(sqlite.blob_dir().context("the SQLite relay database has no photo folder beside it")?);
    let photos_before = blob_digest(&files).context("cannot read the photo files")?;
    let (photo_files, photo_bytes) =
        copy_blobs(&files, &postgres.blobs()).context("cannot copy the photos into the database")?;
    let photos_after = blob_digest(&postgres.blobs()).context("cannot read the photos back")?;
    let digest_after = postgres.dump().context("cannot read the PostgreSQL database back")?.digest();
    println!(
        "{}",
        serde_json::json!({
            "devices": before.devices.len(),
            "enrollments": before.enrollments.len(),
            "documents": before.docs.len(),
            "changes": before.changes.len(),
            "photo_references": before.blob_refs.len(),
            "photos_copied": photo_files,
            "photo_bytes_copied": photo_bytes,
            "digest_before": digest_before,
            "digest_after": digest_after,
            "photo_digest_before": photos_before,
            "photo_digest_after": photos_after,
        })
    );
    if photos_before != photos_after {
        bail!("the PostgreSQL database does not hold exactly the photos the folder holds; do not serve from it");
    }
    if digest_before != digest_after {
        bail!("the PostgreSQL database does not hold exactly what the SQLite file holds; do not serve from it");
    }
    eprintln!("moved: serve with --database {url} --data-dir {}", data_dir.display());
    Ok(())
}

/// The QR code of the enrolment link as text blocks, two rows of modules a line, with a quiet
/// zone: it scans from a terminal.
fn enrolment_qr(relay_url: Option<&str>, code: &str) -> Result<String> {
    let qr = qrcode::QrCode::new(gridwalk_protocol::enrolment_link(relay_url, code).as_bytes())
        .context("cannot make the QR code")?;
    Ok(qr
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// The first line of a passphrase file.
fn read_passphrase(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.trim().is_empty() {
        bail!("{} holds no passphrase", file.display());
    }
    Ok(line)
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::MigrateToPostgres { to } = &cli.command {
        return migrate_to_postgres(&cli.data_dir, to);
    }
    if let Command::Audit { command: AuditCommand::Export { doc, out } } = &cli.command {
        std::fs::create_dir_all(&cli.data_dir)?;
        let dump = match cli.database.as_deref() {
            Some(url) => PostgresRelayStore::open(url)?.dump()?,
            None => SqliteRelayStore::open(&cli.data_dir.join("relay.db"))?.dump()?,
        };
        let now = chrono::Utc::now().timestamp_millis();
        let Some(evidence) = chain::evidence(&dump, doc, now) else {
            bail!("the relay holds no change of document {doc}: check the id (`gridwalk request show` prints it)");
        };
        std::fs::write(out, gridwalk_protocol::evidence::write(&evidence))
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("{} receipts of document {doc} written to {}", evidence.receipts.len(), out.display());
        return Ok(());
    }
    if let Command::Audit { command: AuditCommand::Verify { json } } = &cli.command {
        std::fs::create_dir_all(&cli.data_dir)?;
        let dump = match cli.database.as_deref() {
            Some(url) => PostgresRelayStore::open(url)?.dump()?,
            None => SqliteRelayStore::open(&cli.data_dir.join("relay.db"))?.dump()?,
        };
        return match chain::verify(&dump, dump.head()) {
            Ok(v) => {
                if *json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!(
                        "the record holds: {} receipts, {} documents, chain head {}",
                        v.receipts, v.documents, v.head
                    );
                }
                Ok(())
            }
            Err(broken) => bail!("the record does not hold: {broken}"),
        };
    }
    if let Command::BackupKey { out } = &cli.command {
        if out.exists() {
            bail!("{} exists; choose a new file name", out.display());
        }
        let (secret, recipient) = backup::new_identity();
        write_private(out, &format!("# gridwalk-relay backup key; recipient: {recipient}\n{secret}\n"))?;
        println!("{recipient}");
        eprintln!(
            "identity written to {}: keep it off this machine; backups use --recipient {recipient}",
            out.display()
        );
        return Ok(());
    }
    if let Command::Restore { from, identity, passphrase_file, plaintext } = &cli.command {
        std::fs::create_dir_all(&cli.data_dir)?;
        let db = cli.data_dir.join("relay.db");
        if db.exists() {
            bail!("{} exists: restore into a new --data-dir", db.display());
        }
        match (identity, passphrase_file, plaintext) {
            (Some(id), None, false) => backup::decrypt_file(from, &db, &RestoreKey::IdentityFile(id.clone()))?,
            (None, Some(file), false) => {
                backup::decrypt_file(from, &db, &RestoreKey::Passphrase(read_passphrase(file)?))?
            }
            (None, None, true) => {
                std::fs::copy(from, &db).with_context(|| format!("cannot copy {}", from.display()))?;
            }
            _ => bail!("give one of --identity, --passphrase-file or --plaintext"),
        }
        // What came back must be a relay database.
        if let Err(e) = SqliteRelayStore::open(&db).and_then(|s| s.stats()) {
            let _ = std::fs::remove_file(&db);
            bail!("{} is not a relay backup: {e}", from.display());
        }
        println!("restored into {}", db.display());
        return Ok(());
    }
    if let Command::Digest = &cli.command {
        std::fs::create_dir_all(&cli.data_dir)?;
        let digest = match cli.database.as_deref() {
            Some(url) => PostgresRelayStore::open(url)?.dump()?.digest(),
            None => SqliteRelayStore::open(&cli.data_dir.join("relay.db"))?.dump()?.digest(),
        };
        println!("{digest}");
        return Ok(());
    }
    let relay = open_relay(&cli.data_dir, cli.database.as_deref())?;
    match cli.command {
        Command::Serve { listen, enrol_attempts_per_address, enrol_attempts_in_all, enrol_attempt_window_s } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
                )
                .init();
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let state = Arc::new(AppState {
                    enrol_attempts: AttemptLimiter::new(AttemptLimits {
                        per_source: enrol_attempts_per_address,
                        in_all: enrol_attempts_in_all,
                        window: std::time::Duration::from_secs(enrol_attempt_window_s),
                    }),
                    ..AppState::new(relay)
                });
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                // Tests and scripts read this line to learn the port when asked for port 0.
                println!("listening on http://{}", listener.local_addr()?);
                use std::io::Write;
                std::io::stdout().flush()?;
                // The peer's address is kept for counting wrong enrolment codes per source.
                axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await?;
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Command::Enroll { name, role, grids, walker, json, qr, relay_url } => {
            let role = Role::parse(&role).expect("clap checked the role");
            let code = relay
                .create_enrollment_for(&name, role, &grids, walker.as_deref())
                .map_err(|e| anyhow::anyhow!(e.message))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "code": code, "name": name, "role": role.as_str(), "grids": grids, "walker": walker, "expires_in_hours": relay.limits.enrollment_ttl_hours })
                );
            } else {
                println!("{code}");
                eprintln!(
                    "enrolment code for {name} ({}), valid once for {} hours",
                    role.as_str(),
                    relay.limits.enrollment_ttl_hours
                );
            }
            if qr {
                // On stderr, so that stdout stays the code alone for scripts.
                eprintln!("{}", enrolment_qr(relay_url.as_deref(), &code)?);
            }
        }
        Command::Devices { json } => {
            let devices = relay.devices().map_err(|e| anyhow::anyhow!(e.message))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                for d in devices {
                    let fmt = |t: Option<i64>| {
                        t.and_then(chrono::DateTime::from_timestamp_millis)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "-".into())
                    };
                    println!(
                        "no. {}\t{}\t{}\t{}\t{}{}\tlast contact {}{}{}",
                        d.number.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                        d.id,
                        d.name,
                        d.role,
                        d.grids.join(","),
                        if d.leaving_grids.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (leaving {}: its unsent work there still comes up)",
                                d.leaving_grids.iter().map(|l| l.grid.as_str()).collect::<Vec<_>>().join(",")
                            )
                        },
                        fmt(d.last_seen_at),
                        if d.revoked_at.is_some() { "\tREVOKED" } else { "" },
                        d.wiped_at.map(|t| format!("\twiped at {}", fmt(Some(t)))).unwrap_or_default()
                    );
                }
            }
        }
        Command::SetGrids { device_id, grids } => {
            if !relay.set_device_grids(&device_id, &grids).map_err(|e| anyhow::anyhow!(e.message))? {
                bail!("no active device {device_id}");
            }
            println!("{device_id} now serves {}", grids.join(","));
        }
        Command::Handovers { json } => {
            let list = relay.all_handovers().map_err(|e| anyhow::anyhow!(e.message))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no hand-overs");
            } else {
                for h in list {
                    println!(
                        "{}  {} ({}) -> {} ({})  walker {}  {}{}",
                        h.state,
                        h.from_device_name,
                        h.from_device,
                        h.to_device_name,
                        h.to_device,
                        h.walker,
                        h.confirmed_by.map(|b| format!("confirmed by {b}")).unwrap_or_default(),
                        match (h.taken_documents, h.taken_photos) {
                            (Some(d), Some(p)) => format!("; took over {d} documents, {p} photos"),
                            _ => String::new(),
                        }
                    );
                }
            }
        }
        Command::ConfirmHandover { from_device, by } => {
            if by.trim().is_empty() {
                bail!("say who confirms: --by <your name>");
            }
            let view = relay.release_handover(&from_device, by.trim()).map_err(|e| anyhow::anyhow!(e.message))?;
            println!("{}: {} -> {} is {}", from_device, view.from_device_name, view.to_device_name, view.state);
        }
        Command::Revoke { device_id } => {
            if !relay.revoke(&device_id).map_err(|e| anyhow::anyhow!(e.message))? {
                bail!("no active device {device_id}");
            }
            println!("revoked {device_id}");
        }
        Command::Backup { to, recipient, passphrase_file, plaintext } => {
            if to.exists() {
                bail!("{} exists; choose a new file name", to.display());
            }
            let key = match (recipient.is_empty(), passphrase_file, plaintext) {
                (false, None, false) => BackupKey::Recipients(
                    recipient.iter().map(|r| backup::parse_recipient(r)).collect::<Result<_, _>>()?,
                ),
                (true, Some(file), false) => BackupKey::Passphrase(read_passphrase(&file)?),
                (true, None, true) => {
                    relay.backup(&to).map_err(|e| anyhow::anyhow!(e.message))?;
                    println!("backed up to {} (not encrypted)", to.display());
                    return Ok(());
                }
                (true, None, false) => bail!(
                    "a backup holds every resident's record: encrypt it with --recipient (a key from \
                     `gridwalk-relay backup-key`) or --passphrase-file, or ask for --plaintext"
                ),
                _ => bail!("give one of --recipient, --passphrase-file or --plaintext"),
            };
            // The plain copy lives only beside the relay's own database, and only until encrypted.
            let plain = cli.data_dir.join(".backup-in-progress.db");
            let _ = std::fs::remove_file(&plain);
            let result = relay
                .backup(&plain)
                .map_err(|e| anyhow::anyhow!(e.message))
                .and_then(|()| Ok(backup::encrypt_file(&plain, &to, &key)?));
            let _ = std::fs::remove_file(&plain);
            result?;
            println!("backed up to {} (encrypted)", to.display());
        }
        Command::Stats => {
            println!("{}", serde_json::to_string_pretty(&relay.stats().map_err(|e| anyhow::anyhow!(e.message))?)?);
        }
        Command::Staff { command: StaffCommand::AddAdmin { person, name, pin } } => {
            relay.add_admin(person.trim(), name.trim(), pin.trim()).map_err(|e| anyhow::anyhow!(e.message))?;
            println!("{person} ({name}) is an admin of this hall's staff list; hall PCs learn it on their next sync");
        }
        Command::Staff { command: StaffCommand::List } => {
            for m in relay.staff_list().map_err(|e| anyhow::anyhow!(e.message))? {
                println!(
                    "{}\t{}\t{}\t{}\tset by {}",
                    m.id,
                    m.name,
                    m.role.as_str(),
                    m.office.as_deref().unwrap_or("-"),
                    if m.set_by.is_empty() { "-" } else { &m.set_by }
                );
            }
        }
        Command::Digest
        | Command::MigrateToPostgres { .. }
        | Command::Audit { .. }
        | Command::Restore { .. }
        | Command::BackupKey { .. } => {
            unreachable!("handled before the relay opens")
        }
    }
    Ok(())
}

//! The embedded default: one SQLite file (WAL, `synchronous = FULL`), a small pool of
//! connections. SQLite lets many readers work beside one writer; writes take the write lock with
//! `BEGIN IMMEDIATE` and commit in the order they took it, so change sequence numbers commit in
//! order and a pull cursor never passes a change that commits later.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};

use super::*;

const SCHEMA_V1: &str = r#"
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    enrolled_at INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at INTEGER
);
CREATE TABLE device_grids (
    device_id TEXT NOT NULL REFERENCES devices(id),
    grid TEXT NOT NULL,
    PRIMARY KEY (device_id, grid)
) WITHOUT ROWID;
CREATE TABLE enrollments (
    code_hash BLOB PRIMARY KEY,
    device_name TEXT NOT NULL,
    role TEXT NOT NULL,
    grids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    device_id TEXT
);
CREATE TABLE docs (
    id TEXT PRIMARY KEY,
    grid TEXT NOT NULL,
    kind TEXT NOT NULL,
    snapshot BLOB NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE INDEX docs_by_grid ON docs(grid, id);
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    grid TEXT NOT NULL,
    hash BLOB NOT NULL,
    bytes BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    UNIQUE (doc_id, hash)
);
CREATE INDEX changes_by_grid_seq ON changes(grid, seq);
"#;

/// Version 2: which documents name which blobs (photos), with the document's grid, so the relay
/// can tell whether a device's grids entitle it to a photo without reading documents. Filled
/// from the documents already stored by the hook below.
const SCHEMA_V2: &str = r#"
CREATE TABLE blob_refs (
    hash TEXT NOT NULL CHECK (length(hash) = 64),
    doc_id TEXT NOT NULL,
    grid TEXT NOT NULL,
    PRIMARY KEY (hash, grid, doc_id)
) WITHOUT ROWID;
CREATE INDEX blob_refs_by_doc ON blob_refs(doc_id);
"#;

/// Version 3: an enrolment (and the device it made) may name the walker it is for.
const SCHEMA_V3: &str = r#"
ALTER TABLE enrollments ADD COLUMN walker TEXT;
ALTER TABLE devices ADD COLUMN walker TEXT;
"#;

/// Version 4: the grids in which a photo may be read. A photo is granted to the grids of the
/// device that uploaded it (or of a device that may see it and named it in another grid's
/// document), never to a grid merely because a document there names its hash. Photos already
/// on the relay keep the grids whose documents name them.
const SCHEMA_V4: &str = r#"
CREATE TABLE blob_grants (
    hash TEXT NOT NULL CHECK (length(hash) = 64),
    grid TEXT NOT NULL,
    PRIMARY KEY (hash, grid)
) WITHOUT ROWID;
INSERT OR IGNORE INTO blob_grants (hash, grid) SELECT DISTINCT hash, grid FROM blob_refs;
"#;

/// Version 5: the key the enrolling app sent with a code, so that the same app asking again
/// after a lost reply is answered again (only its SHA-256 is kept).
const SCHEMA_V5: &str = r#"
ALTER TABLE enrollments ADD COLUMN device_key_hash BLOB;
"#;

/// Version 6: the receipt chain (see `chain.rs`): each change's chain value, and the last
/// receipt with its value. Receipts stored before it are chained in log order here.
const SCHEMA_V6: &str = r#"
ALTER TABLE changes ADD COLUMN chain BLOB;
CREATE TABLE chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    chain BLOB NOT NULL
);
"#;

/// Version 7: each device's short number, given at enrolment and never reused; the devices
/// already enrolled are numbered in the order they enrolled.
const SCHEMA_V7: &str = r#"
ALTER TABLE devices ADD COLUMN number INTEGER;
UPDATE devices SET number = (SELECT COUNT(*) FROM devices d
    WHERE d.enrolled_at < devices.enrolled_at OR (d.enrolled_at = devices.enrolled_at AND d.id <= devices.id));
CREATE UNIQUE INDEX devices_by_number ON devices(number);
"#;

/// Version 8: when a revoked device confirmed it destroyed its key and records (issue 14).
const SCHEMA_V8: &str = r#"
ALTER TABLE devices ADD COLUMN wiped_at INTEGER;
"#;

/// Version 9: relay-wide settings (the escrow key) and forgotten-PIN hand-overs (issue 14).
const SCHEMA_V9: &str = r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE handovers (
    from_device TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
"#;

/// Version 10: grids a walker's phone was moved off, open to its pushes until it forgot them.
const SCHEMA_V10: &str = r#"
CREATE TABLE device_leaving_grids (
    device_id TEXT NOT NULL REFERENCES devices(id),
    grid TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (device_id, grid)
) WITHOUT ROWID;
"#;

/// Version 11: every device's access-log lines (who saw a full phone number, who exported
/// residents' data), for the admin.
const SCHEMA_V11: &str = r#"
CREATE TABLE access_log (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    person TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE INDEX access_log_by_time ON access_log(at);
"#;

fn access_row(r: &rusqlite::Row) -> rusqlite::Result<StoredAccess> {
    Ok(StoredAccess {
        device_id: r.get(0)?,
        line: gridwalk_protocol::AccessLine {
            seq: r.get(1)?,
            at: r.get(2)?,
            person: r.get(3)?,
            kind: r.get(4)?,
            subject: r.get(5)?,
            detail: r.get(6)?,
        },
        received_at: r.get(7)?,
    })
}

fn fill_chain(tx: &rusqlite::Transaction) -> rusqlite_migration::HookResult {
    let rows: Vec<(i64, String, Vec<u8>, String, i64)> = tx
        .prepare("SELECT seq, doc_id, hash, device_id, received_at FROM changes ORDER BY seq")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<_, _>>()?;
    let mut prev = chain::GENESIS;
    let mut last = 0;
    for (seq, doc, hash, device, at) in rows {
        prev = chain::link(&prev, seq, &doc, &hash, &device, at);
        tx.execute("UPDATE changes SET chain = ?2 WHERE seq = ?1", params![seq, &prev[..]])?;
        last = seq;
    }
    if last > 0 {
        tx.execute("INSERT INTO chain_head (id, seq, chain) VALUES (1, ?1, ?2)", params![last, &prev[..]])?;
    }
    Ok(())
}

fn fill_blob_refs(tx: &rusqlite::Transaction) -> rusqlite_migration::HookResult {
    let docs: Vec<(String, String, Vec<u8>)> = tx
        .prepare("SELECT id, grid, snapshot FROM docs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (id, grid, snapshot) in docs {
        // Every stored document loaded when it was pushed; one that no longer does names no
        // photos rather than stopping the relay from starting.
        let Ok(doc) = automerge::AutoCommit::load(&snapshot) else {
            tracing::warn!(doc = %id, "a stored document does not load; its photos are not indexed");
            continue;
        };
        let hashes =
            gridwalk_doc::photos::blob_references(&gridwalk_doc::doc_view::DocView::new(&doc)).unwrap_or_default();
        for hash in hashes {
            tx.execute(
                "INSERT OR IGNORE INTO blob_refs (hash, doc_id, grid) VALUES (?1, ?2, ?3)",
                params![hash, id, grid],
            )?;
        }
    }
    Ok(())
}

/// Idle connections kept for reuse; more are opened while many callers are busy at once.
const MAX_IDLE_CONNECTIONS: usize = 8;

pub struct SqliteRelayStore {
    path: PathBuf,
    /// Idle connections. A call takes one for its length and puts it back; the lock guards the
    /// list only, never a query.
    idle: Mutex<Vec<Connection>>,
}

/// A connection taken from the pool, put back when dropped.
/// The connection is `Some` from `conn()` until `drop` takes it back, so the `expect`s in `Deref`
/// guard an invariant of this type, not anything a request can reach; the `Option` exists only so
/// that `drop` can move the connection back into the pool without `unsafe`.
struct Pooled<'s> {
    store: &'s SqliteRelayStore,
    conn: Option<Connection>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a pooled connection")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("a pooled connection")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.store.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE_CONNECTIONS {
                idle.push(conn);
            }
        }
    }
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path)?;
    // Writers wait their turn for SQLite's write lock rather than fail.
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // A push is acknowledged only once it would survive a power cut.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteRelayStore {
    pub fn open(path: &Path) -> StoreResult<Self> {
        let mut conn = connect(path)?;
        Migrations::new(vec![
            M::up(SCHEMA_V1),
            M::up_with_hook(SCHEMA_V2, fill_blob_refs),
            M::up(SCHEMA_V3),
            M::up(SCHEMA_V4),
            M::up(SCHEMA_V5),
            M::up_with_hook(SCHEMA_V6, fill_chain),
            M::up(SCHEMA_V7),
            M::up(SCHEMA_V8),
            M::up(SCHEMA_V9),
            M::up(SCHEMA_V10),
            M::up(SCHEMA_V11),
        ])
        .to_latest(&mut conn)?;
        Ok(SqliteRelayStore { path: path.to_path_buf(), idle: Mutex::new(vec![conn]) })
    }

    fn conn(&self) -> StoreResult<Pooled<'_>> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        Ok(Pooled { store: self, conn: Some(conn) })
    }

    fn grids_of(conn: &Connection, device_id: &str) -> StoreResult<Vec<String>> {
        let mut stmt = conn.prepare_cached("SELECT grid FROM device_grids WHERE device_id = ?1 ORDER BY grid")?;
        let grids = stmt.query_map([device_id], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(grids)
    }

    fn leaving_of(conn: &Connection, device_id: &str) -> StoreResult<Vec<LeavingGrid>> {
        let mut stmt =
            conn.prepare_cached("SELECT grid, since FROM device_leaving_grids WHERE device_id = ?1 ORDER BY grid")?;
        let grids = stmt
            .query_map([device_id], |r| Ok(LeavingGrid { grid: r.get(0)?, since: r.get(1)? }))?
            .collect::<Result<_, _>>()?;
        Ok(grids)
    }
}

fn scope_clause(scope: Option<&[String]>, column: &str, first_param: usize) -> (String, Vec<rusqlite::types::Value>) {
    match scope {
        None => (String::new(), Vec::new()),
        Some(grids) => {
            let placeholders: Vec<String> = (0..grids.len()).map(|i| format!("?{}", first_param + i)).collect();
            let clause = if grids.is_empty() {
                " AND 0".to_string()
            } else {
                format!(" AND {column} IN ({})", placeholders.join(", "))
            };
            (clause, grids.iter().cloned().map(rusqlite::types::Value::Text).collect())
        }
    }
}

fn stored_doc(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredDoc> {
    Ok(StoredDoc {
        id: r.get(0)?,
        grid: r.get(1)?,
        kind: r.get(2)?,
        snapshot: r.get(3)?,
        first_seq: r.get(4)?,
        last_seq: r.get(5)?,
    })
}

fn hash_from(v: Vec<u8>) -> [u8; 32] {
    let mut h = [0u8; 32];
    if v.len() == 32 {
        h.copy_from_slice(&v);
    }
    h
}

impl RelayStore for SqliteRelayStore {
    fn create_enrollment(
        &self,
        code_hash: &[u8; 32],
        e: &Enrollment,
        created_at: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.conn()?.execute(
            "INSERT INTO enrollments (code_hash, device_name, role, grids, created_at, expires_at, walker)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &code_hash[..],
                e.device_name,
                e.role.as_str(),
                e.grids.join(","),
                created_at,
                expires_at,
                e.walker
            ],
        )?;
        Ok(())
    }

    fn redeem_enrollment(
        &self,
        code_hash: &[u8; 32],
        device_id: &str,
        token_hash: &[u8; 32],
        now: i64,
        device_key_hash: Option<&[u8; 32]>,
    ) -> StoreResult<Option<Redeemed>> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        type Row = (String, String, String, Option<String>, Option<i64>, Option<String>, Option<Vec<u8>>);
        let row: Option<Row> = tx
            .query_row(
                "SELECT device_name, role, grids, walker, used_at, device_id, device_key_hash FROM enrollments
                 WHERE code_hash = ?1 AND expires_at > ?2",
                params![&code_hash[..], now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()?;
        let Some((name, role, grids, walker, used_at, used_by, used_key)) = row else {
            return Ok(None);
        };
        let role = Role::parse(&role).unwrap_or(Role::Walker);
        let grids: Vec<String> = grids.split(',').filter(|g| !g.is_empty()).map(str::to_string).collect();
        let enrollment = Enrollment { device_name: name.clone(), role, grids: grids.clone(), walker: walker.clone() };
        if used_at.is_some() {
            // The same app asking again: its device gets a fresh token (the first never arrived).
            let same_key = matches!((&used_key, device_key_hash), (Some(k), Some(h)) if k.as_slice() == &h[..]);
            let Some(existing) = used_by.filter(|_| same_key) else { return Ok(None) };
            let number: Option<i64> = tx
                .query_row(
                    "UPDATE devices SET token_hash = ?2 WHERE id = ?1 AND revoked_at IS NULL RETURNING number",
                    params![existing, &token_hash[..]],
                    |r| r.get(0),
                )
                .optional()?;
            tx.commit()?;
            return Ok(number.map(|device_number| Redeemed { enrollment, device_id: existing, device_number }));
        }
        // The write lock is held (IMMEDIATE), so no other enrolment takes the same number.
        let device_number: i64 = tx.query_row("SELECT COALESCE(MAX(number), 0) + 1 FROM devices", [], |r| r.get(0))?;
        tx.execute(
            "UPDATE enrollments SET used_at = ?2, device_id = ?3, device_key_hash = ?4 WHERE code_hash = ?1",
            params![&code_hash[..], now, device_id, device_key_hash.map(|h| &h[..])],
        )?;
        tx.execute(
            "INSERT INTO devices (id, name, role, token_hash, enrolled_at, walker, number)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![device_id, name, role.as_str(), &token_hash[..], now, walker, device_number],
        )?;
        for g in &grids {
            tx.execute("INSERT INTO device_grids (device_id, grid) VALUES (?1, ?2)", params![device_id, g])?;
        }
        tx.commit()?;
        Ok(Some(Redeemed { enrollment, device_id: device_id.to_string(), device_number }))
    }

    fn device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Device>> {
        let conn = self.conn()?;
        // id, name, role, walker, number.
        type DeviceRow = (String, String, String, Option<String>, Option<i64>);
        let row: Option<DeviceRow> = conn
            .prepare_cached(
                "SELECT id, name, role, walker, number FROM devices WHERE token_hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([&token_hash[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .optional()?;
        let Some((id, name, role, walker, number)) = row else {
            return Ok(None);
        };
        let grids = Self::grids_of(&conn, &id)?;
        let leaving = Self::leaving_of(&conn, &id)?;
        let number = number.and_then(|n| u32::try_from(n).ok());
        Ok(Some(Device { id, name, role: Role::parse(&role).unwrap_or(Role::Walker), grids, walker, number, leaving }))
    }

    fn device_walker(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(self
            .conn()?
            .query_row("SELECT walker FROM devices WHERE id = ?1 AND role = 'walker'", [id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    fn touch_device(&self, id: &str, now: i64) -> StoreResult<()> {
        // To the minute: a device's every request would otherwise be a durable write (an fsync)
        // before the relay could answer, even a pull with nothing to send.
        self.conn()?
            .prepare_cached("UPDATE devices SET last_seen_at = ?2 WHERE id = ?1 AND (last_seen_at IS NULL OR last_seen_at <= ?2 - ?3)")?
            .execute(params![id, now, LAST_SEEN_RESOLUTION_MS])?;
        Ok(())
    }

    fn set_device_grids(&self, id: &str, grids: &[String], now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let active: bool =
            tx.query_row("SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1 AND revoked_at IS NULL)", [id], |r| {
                r.get(0)
            })?;
        if !active {
            return Ok(false);
        }
        let had = Self::grids_of(&tx, id)?;
        for g in had.iter().filter(|g| !grids.contains(g)) {
            tx.execute(
                "INSERT OR IGNORE INTO device_leaving_grids (device_id, grid, since) VALUES (?1, ?2, ?3)",
                params![id, g, now],
            )?;
        }
        tx.execute("DELETE FROM device_grids WHERE device_id = ?1", [id])?;
        for g in grids {
            tx.execute("INSERT OR IGNORE INTO device_grids (device_id, grid) VALUES (?1, ?2)", params![id, g])?;
            tx.execute("DELETE FROM device_leaving_grids WHERE device_id = ?1 AND grid = ?2", params![id, g])?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn finish_leaving(&self, id: &str, holds: &[String]) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut serves = Self::grids_of(&tx, id)?;
        let mut holds = holds.to_vec();
        serves.sort();
        holds.sort();
        holds.dedup();
        if serves != holds {
            return Ok(false);
        }
        let changed = tx.execute("DELETE FROM device_leaving_grids WHERE device_id = ?1", [id])? > 0;
        tx.commit()?;
        Ok(changed)
    }

    fn revoked_device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<String>> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT id FROM devices WHERE token_hash = ?1 AND revoked_at IS NOT NULL")?
            .query_row([&token_hash[..]], |r| r.get(0))
            .optional()?)
    }

    fn record_wipe(&self, id: &str, now: i64) -> StoreResult<bool> {
        Ok(self.conn()?.execute(
            "UPDATE devices SET wiped_at = ?2 WHERE id = ?1 AND revoked_at IS NOT NULL AND wiped_at IS NULL",
            params![id, now],
        )? > 0)
    }

    fn devices(&self) -> StoreResult<Vec<DeviceInfo>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, name, role, enrolled_at, last_seen_at, revoked_at, number, wiped_at FROM devices ORDER BY enrolled_at, id",
        )?;
        let mut devices: Vec<DeviceInfo> = stmt
            .query_map([], |r| {
                Ok(DeviceInfo {
                    id: r.get(0)?,
                    number: r.get(6)?,
                    name: r.get(1)?,
                    role: r.get(2)?,
                    grids: Vec::new(),
                    enrolled_at: r.get(3)?,
                    last_seen_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                    wiped_at: r.get(7)?,
                    leaving_grids: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        for d in &mut devices {
            d.grids = Self::grids_of(&conn, &d.id)?;
            d.leaving_grids = Self::leaving_of(&conn, &d.id)?;
        }
        Ok(devices)
    }

    fn revoke(&self, id: &str, now: i64) -> StoreResult<bool> {
        Ok(self
            .conn()?
            .execute("UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", params![id, now])?
            > 0)
    }

    fn load_doc(&self, id: &str) -> StoreResult<Option<StoredDoc>> {
        Ok(self
            .conn()?
            .prepare_cached("SELECT id, grid, kind, snapshot, first_seq, last_seq FROM docs WHERE id = ?1")?
            .query_row([id], stored_doc)
            .optional()?)
    }

    fn store_push(&self, writes: &[DocWrite], device: &str, received_at: i64) -> StoreResult<u32> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut stored = 0u32;
        // The receipt chain goes on from the last receipt, under the same write lock.
        let mut chain: [u8; 32] = tx
            .query_row("SELECT chain FROM chain_head WHERE id = 1", [], |r| r.get::<_, Vec<u8>>(0))
            .optional()?
            .and_then(|c| c.try_into().ok())
            .unwrap_or(chain::GENESIS);
        let mut head_seq = None;
        for w in writes {
            // Under the write lock: the document is still as the push was prepared from it, or
            // nothing is written and the relay prepares the push again.
            let current: Option<i64> = tx
                .prepare_cached("SELECT last_seq FROM docs WHERE id = ?1")?
                .query_row([&w.id], |r| r.get(0))
                .optional()?;
            if current != w.base_last_seq {
                return Err(StoreError::Conflict { doc: w.id.clone() });
            }
            let mut first: Option<i64> = None;
            let mut last: Option<i64> = None;
            for c in &w.new_changes {
                let inserted = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO changes (doc_id, grid, hash, bytes, received_at, device_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![w.id, w.grid, &c.hash[..], c.bytes, received_at, device])?;
                if inserted > 0 {
                    stored += 1;
                    let seq = tx.last_insert_rowid();
                    chain = chain::link(&chain, seq, &w.id, &c.hash, device, received_at);
                    tx.prepare_cached("UPDATE changes SET chain = ?2 WHERE seq = ?1")?
                        .execute(params![seq, &chain[..]])?;
                    head_seq = Some(seq);
                    first.get_or_insert(seq);
                    last = Some(seq);
                }
            }
            let Some(last) = last else { continue };
            let first = first.unwrap_or(last);
            tx.prepare_cached(
                "INSERT INTO docs (id, grid, kind, snapshot, first_seq, last_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, last_seq = excluded.last_seq",
            )?
            .execute(params![w.id, w.grid, w.kind, w.snapshot, first, last])?;
            tx.prepare_cached("DELETE FROM blob_refs WHERE doc_id = ?1")?.execute([&w.id])?;
            let mut insert =
                tx.prepare_cached("INSERT OR IGNORE INTO blob_refs (hash, doc_id, grid) VALUES (?1, ?2, ?3)")?;
            for hash in &w.blob_refs {
                insert.execute(params![hash, w.id, w.grid])?;
            }
        }
        if let Some(seq) = head_seq {
            tx.prepare_cached(
                "INSERT INTO chain_head (id, seq, chain) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, chain = excluded.chain",
            )?
            .execute(params![seq, &chain[..]])?;
        }
        tx.commit()?;
        Ok(stored)
    }

    fn max_seq(&self) -> StoreResult<i64> {
        Ok(self.conn()?.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| r.get(0))?)
    }

    fn changes_since(
        &self,
        after_seq: i64,
        scope: Option<&[String]>,
        except_device: &str,
        limit: usize,
    ) -> StoreResult<Vec<ChangeRow>> {
        let (clause, mut values) = scope_clause(scope, "grid", 4);
        let sql = format!(
            "SELECT seq, doc_id, hash, bytes, received_at FROM changes
             WHERE seq > ?1 AND device_id != ?3{clause} ORDER BY seq LIMIT ?2"
        );
        let mut all = vec![
            rusqlite::types::Value::Integer(after_seq),
            rusqlite::types::Value::Integer(limit as i64),
            rusqlite::types::Value::Text(except_device.to_string()),
        ];
        all.append(&mut values);
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(all), |r| {
                Ok(ChangeRow {
                    seq: r.get(0)?,
                    doc_id: r.get(1)?,
                    hash: hash_from(r.get(2)?),
                    bytes: r.get(3)?,
                    received_at: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn docs_after(
        &self,
        after_id: &str,
        scope: Option<&[String]>,
        except_device: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredDoc>> {
        let (clause, mut values) = scope_clause(scope, "grid", 4);
        let sql = format!(
            "SELECT id, grid, kind, snapshot, first_seq, last_seq FROM docs
             WHERE id > ?1{clause}
               AND EXISTS (SELECT 1 FROM changes c WHERE c.doc_id = docs.id AND c.device_id != ?3)
             ORDER BY id LIMIT ?2"
        );
        let mut all = vec![
            rusqlite::types::Value::Text(after_id.to_string()),
            rusqlite::types::Value::Integer(limit as i64),
            rusqlite::types::Value::Text(except_device.to_string()),
        ];
        all.append(&mut values);
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(all), stored_doc)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn receipts(&self, doc_id: &str) -> StoreResult<Vec<([u8; 32], i64)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT hash, received_at FROM changes WHERE doc_id = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([doc_id], |r| Ok((hash_from(r.get(0)?), r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn doc_changes(&self, doc_id: &str) -> StoreResult<Vec<ChangeRow>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, doc_id, hash, bytes, received_at FROM changes WHERE doc_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([doc_id], |r| {
                Ok(ChangeRow {
                    seq: r.get(0)?,
                    doc_id: r.get(1)?,
                    hash: hash_from(r.get(2)?),
                    bytes: r.get(3)?,
                    received_at: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn blob_referenced(&self, hash: &str, scope: Option<&[String]>) -> StoreResult<bool> {
        let (clause, mut values) = scope_clause(scope, "grid", 2);
        let sql = format!("SELECT EXISTS (SELECT 1 FROM blob_refs WHERE hash = ?1{clause})");
        let mut all = vec![rusqlite::types::Value::Text(hash.to_string())];
        all.append(&mut values);
        Ok(self.conn()?.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(all), |r| r.get(0))?)
    }

    fn blob_grids(&self, hash: &str) -> StoreResult<Vec<String>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT DISTINCT grid FROM blob_refs WHERE hash = ?1 ORDER BY grid")?;
        let grids = stmt.query_map([hash], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(grids)
    }

    fn grant_blob(&self, hash: &str, grids: &[String]) -> StoreResult<()> {
        let conn = self.conn()?;
        let mut insert = conn.prepare_cached("INSERT OR IGNORE INTO blob_grants (hash, grid) VALUES (?1, ?2)")?;
        for g in grids {
            insert.execute(params![hash, g])?;
        }
        Ok(())
    }

    fn blob_granted(&self, hash: &str, scope: Option<&[String]>) -> StoreResult<bool> {
        let (clause, mut values) = scope_clause(scope, "grid", 2);
        let sql = format!("SELECT EXISTS (SELECT 1 FROM blob_grants WHERE hash = ?1{clause})");
        let mut all = vec![rusqlite::types::Value::Text(hash.to_string())];
        all.append(&mut values);
        Ok(self.conn()?.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(all), |r| r.get(0))?)
    }

    fn blob_dir(&self) -> Option<PathBuf> {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "relay".into());
        name.push("-blobs");
        Some(self.path.with_file_name(name))
    }

    fn backup(&self, to: &Path) -> StoreResult<()> {
        // VACUUM INTO writes a consistent copy while the relay keeps serving.
        self.conn()?.execute("VACUUM INTO ?1", [to.to_string_lossy()])?;
        Ok(())
    }

    fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        let conn = self.conn()?;
        conn.execute("INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)", params![key, value])?;
        Ok(conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))?)
    }

    fn insert_handover(&self, handover: &Handover) -> StoreResult<Handover> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT OR IGNORE INTO handovers (from_device, state, requested_at, body) VALUES (?1, ?2, ?3, ?4)",
            params![handover.from_device, handover.state.as_str(), handover.requested_at, handover_json(handover)?],
        )?;
        let body: String =
            conn.query_row("SELECT body FROM handovers WHERE from_device = ?1", [&handover.from_device], |r| r.get(0))?;
        handover_from_json(&body)
    }

    fn handovers(&self) -> StoreResult<Vec<Handover>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT body FROM handovers ORDER BY requested_at, from_device")?;
        let bodies: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        bodies.iter().map(|b| handover_from_json(b)).collect()
    }

    fn update_handover(&self, expected: HandoverState, next: &Handover) -> StoreResult<bool> {
        Ok(self.conn()?.execute(
            "UPDATE handovers SET state = ?3, body = ?4 WHERE from_device = ?1 AND state = ?2",
            params![next.from_device, expected.as_str(), next.state.as_str(), handover_json(next)?],
        )? > 0)
    }

    fn store_access(
        &self,
        device: &str,
        lines: &[gridwalk_protocol::AccessLine],
        received_at: i64,
    ) -> StoreResult<u32> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut new = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO access_log (device_id, seq, at, person, kind, subject, detail, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for l in lines {
                new +=
                    insert.execute(params![device, l.seq, l.at, l.person, l.kind, l.subject, l.detail, received_at])?
                        as u32;
            }
        }
        tx.commit()?;
        Ok(new)
    }

    fn access_log(&self, limit: usize) -> StoreResult<Vec<StoredAccess>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT device_id, seq, at, person, kind, subject, detail, received_at FROM access_log
              ORDER BY received_at DESC, at DESC, device_id, seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit.min(i64::MAX as usize) as i64], access_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn stats(&self) -> StoreResult<Stats> {
        let conn = self.conn()?;
        let one = |sql: &str| -> StoreResult<i64> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
        Ok(Stats {
            devices: one("SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL")?,
            revoked_devices: one("SELECT COUNT(*) FROM devices WHERE revoked_at IS NOT NULL")?,
            documents: one("SELECT COUNT(*) FROM docs")?,
            changes: one("SELECT COUNT(*) FROM changes")?,
            change_bytes: one("SELECT COALESCE(SUM(LENGTH(bytes)), 0) FROM changes")?,
            snapshot_bytes: one("SELECT COALESCE(SUM(LENGTH(snapshot)), 0) FROM docs")?,
        })
    }
}

impl SqliteRelayStore {
    /// Every row, for moving the relay elsewhere and for its digest (see `dump.rs`). Read in
    /// one transaction, so it is one consistent state even while the relay serves.
    pub fn dump(&self) -> StoreResult<RelayDump> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut dump = RelayDump::default();
        let mut devices = tx.prepare(
            "SELECT id, name, role, token_hash, enrolled_at, last_seen_at, revoked_at, walker, number, wiped_at
             FROM devices ORDER BY id",
        )?;
        for row in devices.query_map([], |r| {
            Ok(DumpDevice {
                id: r.get(0)?,
                number: r.get(8)?,
                name: r.get(1)?,
                role: r.get(2)?,
                token_hash: r.get(3)?,
                enrolled_at: r.get(4)?,
                last_seen_at: r.get(5)?,
                revoked_at: r.get(6)?,
                wiped_at: r.get(9)?,
                walker: r.get(7)?,
                grids: Vec::new(),
                leaving: Vec::new(),
            })
        })? {
            let mut d = row?;
            d.grids = Self::grids_of(&tx, &d.id)?;
            d.leaving = Self::leaving_of(&tx, &d.id)?;
            dump.devices.push(d);
        }
        drop(devices);
        dump.enrollments = tx
            .prepare(
                "SELECT code_hash, device_name, role, grids, created_at, expires_at, used_at, device_id, walker,
                        device_key_hash
                   FROM enrollments ORDER BY code_hash",
            )?
            .query_map([], |r| {
                Ok(DumpEnrollment {
                    code_hash: r.get(0)?,
                    device_name: r.get(1)?,
                    role: r.get(2)?,
                    grids: r.get(3)?,
                    created_at: r.get(4)?,
                    expires_at: r.get(5)?,
                    used_at: r.get(6)?,
                    device_id: r.get(7)?,
                    walker: r.get(8)?,
                    device_key_hash: r.get(9)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        dump.docs = tx
            .prepare("SELECT id, grid, kind, snapshot, first_seq, last_seq FROM docs ORDER BY id")?
            .query_map([], stored_doc)?
            .collect::<Result<_, _>>()?;
        dump.changes = tx
            .prepare("SELECT seq, doc_id, grid, hash, bytes, received_at, device_id, chain FROM changes ORDER BY seq")?
            .query_map([], |r| {
                Ok(DumpChange {
                    seq: r.get(0)?,
                    doc_id: r.get(1)?,
                    grid: r.get(2)?,
                    hash: r.get(3)?,
                    bytes: r.get(4)?,
                    received_at: r.get(5)?,
                    device_id: r.get(6)?,
                    chain: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        dump.chain_head = tx
            .query_row("SELECT seq, chain FROM chain_head WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        dump.blob_refs = tx
            .prepare("SELECT hash, doc_id, grid FROM blob_refs ORDER BY hash, doc_id, grid")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        dump.blob_grants = tx
            .prepare("SELECT hash, grid FROM blob_grants ORDER BY hash, grid")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        dump.settings = tx
            .prepare("SELECT key, value FROM settings ORDER BY key")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        dump.handovers = tx
            .prepare("SELECT from_device, state, body FROM handovers ORDER BY from_device")?
            .query_map([], |r| Ok(DumpHandover { from_device: r.get(0)?, state: r.get(1)?, body: r.get(2)? }))?
            .collect::<Result<_, _>>()?;
        dump.access = tx
            .prepare(
                "SELECT device_id, seq, at, person, kind, subject, detail, received_at FROM access_log
                  ORDER BY device_id, seq",
            )?
            .query_map([], access_row)?
            .collect::<Result<_, _>>()?;
        Ok(dump)
    }
}

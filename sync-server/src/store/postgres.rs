//! The relay on PostgreSQL, for when one hall machine is not enough: any number of relay
//! processes share one database (`gridwalk-relay serve --database postgres://…`).
//!
//! The pull cursor must never pass a change that commits later. PostgreSQL hands out sequence
//! values in the order transactions ask, not the order they commit, so a reader taking
//! `seq > cursor` could see change 12 committed while 11 is still in flight, move its cursor to
//! 12, and never receive 11. Every push therefore locks one counter row (`change_counter`) for
//! the length of its transaction and numbers its changes from it: pushes that write changes
//! commit one after another, in the order of their numbers, so whatever a reader sees is a
//! prefix of the log. The lock is held only while rows are written; decoding and checking a
//! push happen before, outside any transaction, in parallel across relays. (The alternative,
//! reading by commit order through transaction-id watermarks, lets writers overlap but makes
//! every read reason about in-flight transactions; pushes are small and few per device, so the
//! simple lock is the better trade here.)
//!
//! A pull reads in one REPEATABLE READ transaction where it asks more than one question.
//! Migrations take an advisory lock, so relays started at once do not race to create tables.

use std::sync::Arc;

use ::postgres::NoTls;

use super::*;
use crate::blobs::{BlobError, BlobSlice, ByteRange, HeldBlob};
use sha2::{Digest, Sha256};

/// Connections one relay process keeps open at most. Beyond them, a request waits for one to be
/// free rather than opening more: the database serves every relay on it, and a burst of phones
/// at one relay must not take every connection the server has (PostgreSQL's default is 100).
const MAX_CONNECTIONS: u32 = 16;

/// The advisory lock key migrations hold (any fixed number; "gridwalk" in ASCII, folded).
const MIGRATION_LOCK: i64 = 0x6772_6964_7761_6c6b;

/// The schema, in versions; each is applied once, in order, under the advisory lock.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE devices (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    enrolled_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    revoked_at BIGINT,
    walker TEXT
);
CREATE TABLE device_grids (
    device_id TEXT COLLATE "C" NOT NULL REFERENCES devices(id),
    grid TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (device_id, grid)
);
CREATE TABLE enrollments (
    code_hash BYTEA PRIMARY KEY,
    device_name TEXT NOT NULL,
    role TEXT NOT NULL,
    grids TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    device_id TEXT,
    walker TEXT
);
CREATE TABLE docs (
    id TEXT COLLATE "C" PRIMARY KEY,
    grid TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    snapshot BYTEA NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL
);
CREATE INDEX docs_by_grid ON docs (grid, id);
CREATE TABLE changes (
    seq BIGINT PRIMARY KEY,
    doc_id TEXT COLLATE "C" NOT NULL,
    grid TEXT COLLATE "C" NOT NULL,
    hash BYTEA NOT NULL,
    bytes BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    UNIQUE (doc_id, hash)
);
CREATE INDEX changes_by_grid_seq ON changes (grid, seq);
CREATE TABLE blob_refs (
    hash TEXT NOT NULL CHECK (length(hash) = 64),
    doc_id TEXT COLLATE "C" NOT NULL,
    grid TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (hash, grid, doc_id)
);
CREATE INDEX blob_refs_by_doc ON blob_refs (doc_id);
CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_counter (id, seq) VALUES (1, 0);
"#,
    r#"
CREATE TABLE blob_grants (
    hash TEXT NOT NULL CHECK (length(hash) = 64),
    grid TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (hash, grid)
);
INSERT INTO blob_grants (hash, grid) SELECT DISTINCT hash, grid FROM blob_refs ON CONFLICT DO NOTHING;
"#,
    r#"
ALTER TABLE enrollments ADD COLUMN device_key_hash BYTEA;
"#,
    r#"
ALTER TABLE changes ADD COLUMN chain BYTEA;
CREATE TABLE chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    chain BYTEA NOT NULL
);
"#,
    // Each device's short number, given at enrolment; the devices already enrolled are numbered
    // in the order they enrolled.
    r#"
ALTER TABLE devices ADD COLUMN number BIGINT;
UPDATE devices SET number = r.n
  FROM (SELECT id, row_number() OVER (ORDER BY enrolled_at, id) AS n FROM devices) r
 WHERE devices.id = r.id;
CREATE UNIQUE INDEX devices_by_number ON devices(number);
"#,
    // Photos in the database, so that every relay on it serves every photo: one row per blob
    // (bytes so far, whether complete) and its bytes in chunks of at most `BLOB_ROW_BYTES`.
    r#"
CREATE TABLE blobs (
    hash TEXT COLLATE "C" PRIMARY KEY CHECK (length(hash) = 64),
    size BIGINT NOT NULL,
    complete BOOLEAN NOT NULL
);
CREATE TABLE blob_chunks (
    hash TEXT COLLATE "C" NOT NULL REFERENCES blobs(hash) ON DELETE CASCADE,
    start BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (hash, start)
);
"#,
    // When a revoked device confirmed it destroyed its key and records (issue 14).
    r#"
ALTER TABLE devices ADD COLUMN wiped_at BIGINT;
"#,
    // Relay-wide settings (the escrow key) and forgotten-PIN hand-overs (issue 14).
    r#"
CREATE TABLE settings (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE handovers (
    from_device TEXT COLLATE "C" PRIMARY KEY,
    state TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
"#,
    // Grids a walker's phone was moved off, open to its pushes until it forgot them.
    r#"
CREATE TABLE device_leaving_grids (
    device_id TEXT COLLATE "C" NOT NULL REFERENCES devices(id),
    grid TEXT COLLATE "C" NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (device_id, grid)
);
"#,
    // Every device's access-log lines, for the admin.
    r#"
CREATE TABLE access_log (
    device_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    person TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX access_log_by_time ON access_log(at);
"#,
];

fn access_row(r: &::postgres::Row) -> StoredAccess {
    StoredAccess {
        device_id: r.get(0),
        line: gridwalk_protocol::AccessLine {
            seq: r.get(1),
            at: r.get(2),
            person: r.get(3),
            kind: r.get(4),
            subject: r.get(5),
            detail: r.get(6),
        },
        received_at: r.get(7),
    }
}

/// The most bytes one row of `blob_chunks` holds: a device's chunk is split into rows of this
/// size, so that no row is large enough to strain the server's memory when read.
const BLOB_ROW_BYTES: usize = 256 * 1024;

/// The advisory lock an enrolment holds while it takes the next device number, so that two
/// relays enrolling at once never hand out the same one ("devnum" in ASCII).
const DEVICE_NUMBER_LOCK: i64 = 0x6465_766e_756d;

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        // The server's own words (and SQLSTATE) where it said something; "db error" alone
        // tells an admin nothing.
        StoreError::Postgres(match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        })
    }
}

pub struct PostgresRelayStore {
    pool: Arc<PgPool>,
}

/// Connections to one database, shared by the relay's store and its photos: a pool (r2d2) of at
/// most `MAX_CONNECTIONS`, a broken connection (the server restarted) dropped when handed back.
struct PgPool {
    pool: r2d2_postgres::r2d2::Pool<r2d2_postgres::PostgresConnectionManager<NoTls>>,
}

/// A connection taken from the pool, handed back when dropped.
type Pooled = r2d2_postgres::r2d2::PooledConnection<r2d2_postgres::PostgresConnectionManager<NoTls>>;

impl PgPool {
    fn open(config: ::postgres::Config) -> StoreResult<PgPool> {
        let pool = r2d2_postgres::r2d2::Pool::builder()
            .max_size(MAX_CONNECTIONS)
            .min_idle(Some(1))
            // Checked when handed back (a closed connection is dropped), not by a query each time
            // one is taken: that would cost every request a round trip.
            .test_on_check_out(false)
            .connection_timeout(std::time::Duration::from_secs(30))
            .build(r2d2_postgres::PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| StoreError::Postgres(e.to_string()))?;
        Ok(PgPool { pool })
    }

    fn conn(&self) -> StoreResult<Pooled> {
        self.pool.get().map_err(|e| StoreError::Postgres(format!("no database connection: {e}")))
    }
}

fn row_hash(v: Vec<u8>) -> [u8; 32] {
    let mut h = [0u8; 32];
    if v.len() == 32 {
        h.copy_from_slice(&v);
    }
    h
}

fn scope_vec(scope: Option<&[String]>) -> Option<Vec<String>> {
    scope.map(<[String]>::to_vec)
}

impl PostgresRelayStore {
    /// Connects to `url` (`postgres://user@host/db` or `host=/run/sock user=… dbname=…`) and
    /// brings the schema up to date, one relay at a time.
    pub fn open(url: &str) -> StoreResult<Self> {
        let config: ::postgres::Config =
            url.parse().map_err(|e: ::postgres::Error| StoreError::Postgres(e.to_string()))?;
        let store = PostgresRelayStore { pool: Arc::new(PgPool::open(config)?) };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> StoreResult<()> {
        let mut client = self.conn()?;
        client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
        let result = (|| -> StoreResult<()> {
            client.batch_execute("CREATE TABLE IF NOT EXISTS relay_schema (version INTEGER NOT NULL)")?;
            let version: i32 =
                client.query_opt("SELECT version FROM relay_schema", &[])?.map(|r| r.get(0)).unwrap_or(0);
            for (n, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                let mut tx = client.transaction()?;
                tx.batch_execute(sql)?;
                tx.execute("DELETE FROM relay_schema", &[])?;
                tx.execute("INSERT INTO relay_schema (version) VALUES ($1)", &[&(n as i32 + 1)])?;
                tx.commit()?;
            }
            // Receipts stored before the chain existed are chained once, in log order.
            let unchained: bool =
                client.query_one("SELECT EXISTS (SELECT 1 FROM changes WHERE chain IS NULL)", &[])?.get(0);
            if unchained {
                let mut tx = client.transaction()?;
                let mut prev = chain::GENESIS;
                let mut last = 0i64;
                for r in tx.query("SELECT seq, doc_id, hash, device_id, received_at FROM changes ORDER BY seq", &[])? {
                    let (seq, doc, hash, device, at): (i64, String, Vec<u8>, String, i64) =
                        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                    prev = chain::link(&prev, seq, &doc, &hash, &device, at);
                    tx.execute("UPDATE changes SET chain = $2 WHERE seq = $1", &[&seq, &&prev[..]])?;
                    last = seq;
                }
                tx.execute(
                    "INSERT INTO chain_head (id, seq, chain) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, chain = excluded.chain",
                    &[&last, &&prev[..]],
                )?;
                tx.commit()?;
            }
            Ok(())
        })();
        client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])?;
        result
    }

    fn conn(&self) -> StoreResult<Pooled> {
        self.pool.conn()
    }

    /// The photos kept in this database, on the same connections.
    pub fn blobs(&self) -> PostgresBlobs {
        PostgresBlobs { pool: self.pool.clone() }
    }

    fn grids_of(client: &mut impl ::postgres::GenericClient, device_id: &str) -> StoreResult<Vec<String>> {
        Ok(client
            .query("SELECT grid FROM device_grids WHERE device_id = $1 ORDER BY grid", &[&device_id])?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn leaving_of(client: &mut impl ::postgres::GenericClient, device_id: &str) -> StoreResult<Vec<LeavingGrid>> {
        Ok(client
            .query("SELECT grid, since FROM device_leaving_grids WHERE device_id = $1 ORDER BY grid", &[&device_id])?
            .into_iter()
            .map(|r| LeavingGrid { grid: r.get(0), since: r.get(1) })
            .collect())
    }

    /// Empties every table (for tests that share one server): the schema stays.
    pub fn clear_for_tests(&self) -> StoreResult<()> {
        self.conn()?.batch_execute(
            "TRUNCATE devices, device_grids, device_leaving_grids, enrollments, docs, changes, blob_refs, blob_grants,
                      chain_head, blobs, blob_chunks, settings, handovers, access_log;
             UPDATE change_counter SET seq = 0;",
        )?;
        Ok(())
    }
}

/// Photos in PostgreSQL (see `crate::blobs` for the promises every blob store keeps). An
/// upload's chunks are appended under a lock on its `blobs` row (`FOR UPDATE`), so two relays
/// receiving the same photo at once take turns and the offset check sees the other's bytes; the
/// chunk, the new size and, with the last byte, the SHA-256 check and `complete` commit in one
/// transaction, so an acknowledged chunk is durable and a blob is complete only when verified.
pub struct PostgresBlobs {
    pool: Arc<PgPool>,
}

impl PostgresBlobs {
    fn checked(hash: &str) -> Result<(), BlobError> {
        gridwalk_protocol::validate_blob_id(hash).map_err(|_| BlobError::BadId(hash.to_string()))
    }

    fn conn(&self) -> Result<Pooled, BlobError> {
        self.pool.conn().map_err(pg_blob_error)
    }

    /// The bytes of `hash` from `start` to `end`, read from the rows that hold them.
    fn bytes(
        client: &mut impl ::postgres::GenericClient,
        hash: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<u8>, BlobError> {
        let mut out = Vec::with_capacity((end - start) as usize);
        let rows = client
            .query(
                "SELECT start, bytes FROM blob_chunks
                  WHERE hash = $1 AND start < $3 AND start + length(bytes) > $2 ORDER BY start",
                &[&hash, &(start as i64), &(end as i64)],
            )
            .map_err(pg_blob_error)?;
        for r in rows {
            let (row_start, bytes): (i64, Vec<u8>) = (r.get(0), r.get(1));
            let row_start = row_start as u64;
            let from = start.saturating_sub(row_start) as usize;
            let to = ((end - row_start) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..to]);
        }
        if out.len() as u64 != end - start {
            return Err(BlobError::Io(std::io::Error::other(format!(
                "blob {hash}: the database holds {} of bytes {start}..{end}",
                out.len()
            ))));
        }
        Ok(out)
    }
}

impl PostgresBlobs {
    /// The upload of `hash` (bytes held, complete), its row made if new and locked until the
    /// transaction ends: uploads of one photo through several relays take turns.
    fn locked_upload(tx: &mut ::postgres::Transaction<'_>, hash: &str) -> Result<(u64, bool), BlobError> {
        tx.execute("INSERT INTO blobs (hash, size, complete) VALUES ($1, 0, false) ON CONFLICT DO NOTHING", &[&hash])
            .map_err(pg_blob_error)?;
        let row = tx
            .query_one("SELECT size, complete FROM blobs WHERE hash = $1 FOR UPDATE", &[&hash])
            .map_err(pg_blob_error)?;
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, bool>(1)))
    }
}

fn pg_blob_error(e: impl Into<StoreError>) -> BlobError {
    BlobError::Io(std::io::Error::other(e.into().to_string()))
}

impl crate::blobs::BlobStore for PostgresBlobs {
    fn status(&self, hash: &str) -> Result<HeldBlob, BlobError> {
        Self::checked(hash)?;
        let row = self
            .conn()?
            .query_opt("SELECT size, complete FROM blobs WHERE hash = $1", &[&hash])
            .map_err(pg_blob_error)?;
        Ok(row.map_or(HeldBlob { size: 0, complete: false }, |r| HeldBlob {
            size: r.get::<_, i64>(0) as u64,
            complete: r.get(1),
        }))
    }

    fn append(&self, hash: &str, offset: u64, total: u64, bytes: &[u8], max_total: u64) -> Result<HeldBlob, BlobError> {
        Self::checked(hash)?;
        let mut client = self.conn()?;
        let mut tx = client.transaction().map_err(pg_blob_error)?;
        let (have, complete) = Self::locked_upload(&mut tx, hash)?;
        if complete {
            return Ok(HeldBlob { size: have, complete: true });
        }
        let end = crate::blobs::check_chunk(have, offset, total, bytes, max_total)?;
        for (i, piece) in bytes.chunks(BLOB_ROW_BYTES).enumerate() {
            let start = (offset + (i * BLOB_ROW_BYTES) as u64) as i64;
            tx.execute("INSERT INTO blob_chunks (hash, start, bytes) VALUES ($1, $2, $3)", &[&hash, &start, &piece])
                .map_err(pg_blob_error)?;
        }
        let finished = end == total;
        if finished {
            let mut hasher = Sha256::new();
            let mut at = 0;
            // Read back in pieces, so a large photo is never held twice in memory.
            while at < total {
                let next = (at + 8 * BLOB_ROW_BYTES as u64).min(total);
                hasher.update(Self::bytes(&mut tx, hash, at, next)?);
                at = next;
            }
            if hex::encode(hasher.finalize()) != hash {
                tx.execute("DELETE FROM blobs WHERE hash = $1", &[&hash]).map_err(pg_blob_error)?;
                tx.commit().map_err(pg_blob_error)?;
                return Err(BlobError::HashMismatch);
            }
        }
        tx.execute("UPDATE blobs SET size = $2, complete = $3 WHERE hash = $1", &[&hash, &(end as i64), &finished])
            .map_err(pg_blob_error)?;
        tx.commit().map_err(pg_blob_error)?;
        Ok(HeldBlob { size: end, complete: finished })
    }

    fn read(&self, hash: &str, range: Option<ByteRange>) -> Result<BlobSlice, BlobError> {
        Self::checked(hash)?;
        let mut client = self.conn()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(::postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_blob_error)?;
        let total = match tx.query_opt("SELECT size FROM blobs WHERE hash = $1 AND complete", &[&hash]) {
            Ok(Some(r)) => r.get::<_, i64>(0) as u64,
            Ok(None) => return Err(BlobError::NotFound),
            Err(e) => return Err(pg_blob_error(e)),
        };
        let (start, end) = crate::blobs::range_bounds(range, total)?;
        let bytes = Self::bytes(&mut tx, hash, start, end)?;
        tx.commit().map_err(pg_blob_error)?;
        Ok(BlobSlice { start, total, bytes })
    }

    fn list(&self) -> Result<Vec<(String, HeldBlob)>, BlobError> {
        Ok(self
            .conn()?
            .query("SELECT hash, size, complete FROM blobs ORDER BY hash", &[])
            .map_err(pg_blob_error)?
            .into_iter()
            .map(|r| (r.get(0), HeldBlob { size: r.get::<_, i64>(1) as u64, complete: r.get(2) }))
            .collect())
    }

    fn read_partial(&self, hash: &str) -> Result<Vec<u8>, BlobError> {
        Self::checked(hash)?;
        let mut client = self.conn()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(::postgres::IsolationLevel::RepeatableRead)
            .start()
            .map_err(pg_blob_error)?;
        let size = match tx.query_opt("SELECT size FROM blobs WHERE hash = $1 AND NOT complete", &[&hash]) {
            Ok(Some(r)) => r.get::<_, i64>(0) as u64,
            Ok(None) => return Err(BlobError::NotFound),
            Err(e) => return Err(pg_blob_error(e)),
        };
        let bytes = Self::bytes(&mut tx, hash, 0, size)?;
        tx.commit().map_err(pg_blob_error)?;
        Ok(bytes)
    }

    fn import_partial(&self, hash: &str, bytes: &[u8]) -> Result<(), BlobError> {
        Self::checked(hash)?;
        let mut client = self.conn()?;
        let mut tx = client.transaction().map_err(pg_blob_error)?;
        let (have, complete) = Self::locked_upload(&mut tx, hash)?;
        if complete || have >= bytes.len() as u64 {
            return Ok(());
        }
        tx.execute("DELETE FROM blob_chunks WHERE hash = $1", &[&hash]).map_err(pg_blob_error)?;
        for (i, piece) in bytes.chunks(BLOB_ROW_BYTES).enumerate() {
            let start = (i * BLOB_ROW_BYTES) as i64;
            tx.execute("INSERT INTO blob_chunks (hash, start, bytes) VALUES ($1, $2, $3)", &[&hash, &start, &piece])
                .map_err(pg_blob_error)?;
        }
        tx.execute("UPDATE blobs SET size = $2 WHERE hash = $1", &[&hash, &(bytes.len() as i64)])
            .map_err(pg_blob_error)?;
        tx.commit().map_err(pg_blob_error)?;
        Ok(())
    }
}

fn stored_doc(r: &::postgres::Row) -> StoredDoc {
    StoredDoc {
        id: r.get(0),
        grid: r.get(1),
        kind: r.get(2),
        snapshot: r.get(3),
        first_seq: r.get(4),
        last_seq: r.get(5),
    }
}

fn change_row(r: &::postgres::Row) -> ChangeRow {
    ChangeRow { seq: r.get(0), doc_id: r.get(1), hash: row_hash(r.get(2)), bytes: r.get(3), received_at: r.get(4) }
}

impl RelayStore for PostgresRelayStore {
    fn create_enrollment(
        &self,
        code_hash: &[u8; 32],
        e: &Enrollment,
        created_at: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.conn()?.execute(
            "INSERT INTO enrollments (code_hash, device_name, role, grids, created_at, expires_at, walker)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &&code_hash[..],
                &e.device_name,
                &e.role.as_str(),
                &e.grids.join(","),
                &created_at,
                &expires_at,
                &e.walker,
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
        let mut client = self.conn()?;
        let mut tx = client.transaction()?;
        // Locked for the transaction: two relays redeeming one code at once take turns.
        let row = tx.query_opt(
            "SELECT device_name, role, grids, walker, used_at, device_id, device_key_hash FROM enrollments
              WHERE code_hash = $1 AND expires_at > $2 FOR UPDATE",
            &[&&code_hash[..], &now],
        )?;
        let Some(row) = row else { return Ok(None) };
        let (name, role, grids, walker): (String, String, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let (used_at, used_by, used_key): (Option<i64>, Option<String>, Option<Vec<u8>>) =
            (row.get(4), row.get(5), row.get(6));
        let role = Role::parse(&role).unwrap_or(Role::Walker);
        let grids: Vec<String> = grids.split(',').filter(|g| !g.is_empty()).map(str::to_string).collect();
        let enrollment = Enrollment { device_name: name.clone(), role, grids: grids.clone(), walker: walker.clone() };
        if used_at.is_some() {
            // The same app asking again: its device gets a fresh token (the first never arrived).
            let same_key = matches!((&used_key, device_key_hash), (Some(k), Some(h)) if k.as_slice() == &h[..]);
            let Some(existing) = used_by.filter(|_| same_key) else { return Ok(None) };
            let number = tx.query_opt(
                "UPDATE devices SET token_hash = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING number",
                &[&existing, &&token_hash[..]],
            )?;
            tx.commit()?;
            return Ok(number.map(|r| Redeemed { enrollment, device_id: existing, device_number: r.get(0) }));
        }
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DEVICE_NUMBER_LOCK])?;
        let device_number: i64 = tx.query_one("SELECT COALESCE(MAX(number), 0) + 1 FROM devices", &[])?.get(0);
        let key: Option<&[u8]> = device_key_hash.map(|h| &h[..]);
        tx.execute(
            "UPDATE enrollments SET used_at = $2, device_id = $3, device_key_hash = $4 WHERE code_hash = $1",
            &[&&code_hash[..], &now, &device_id, &key],
        )?;
        tx.execute(
            "INSERT INTO devices (id, name, role, token_hash, enrolled_at, walker, number)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&device_id, &name, &role.as_str(), &&token_hash[..], &now, &walker, &device_number],
        )?;
        for g in &grids {
            tx.execute("INSERT INTO device_grids (device_id, grid) VALUES ($1, $2)", &[&device_id, g])?;
        }
        tx.commit()?;
        Ok(Some(Redeemed { enrollment, device_id: device_id.to_string(), device_number }))
    }

    fn device_walker(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(self
            .conn()?
            .query_opt("SELECT walker FROM devices WHERE id = $1 AND role = 'walker'", &[&id])?
            .and_then(|r| r.get::<_, Option<String>>(0)))
    }

    fn device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Device>> {
        let mut client = self.conn()?;
        let row = client.query_opt(
            "SELECT id, name, role, walker, number FROM devices WHERE token_hash = $1 AND revoked_at IS NULL",
            &[&&token_hash[..]],
        )?;
        let Some(row) = row else { return Ok(None) };
        let (id, name, role, walker, number): (String, String, String, Option<String>, Option<i64>) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let grids = Self::grids_of(&mut *client, &id)?;
        let leaving = Self::leaving_of(&mut *client, &id)?;
        let number = number.and_then(|n| u32::try_from(n).ok());
        Ok(Some(Device { id, name, role: Role::parse(&role).unwrap_or(Role::Walker), grids, walker, number, leaving }))
    }

    fn touch_device(&self, id: &str, now: i64) -> StoreResult<()> {
        self.conn()?.execute(
            "UPDATE devices SET last_seen_at = $2 WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at <= $2::BIGINT - $3::BIGINT)",
            &[&id, &now, &LAST_SEEN_RESOLUTION_MS],
        )?;
        Ok(())
    }

    fn set_device_grids(&self, id: &str, grids: &[String], now: i64) -> StoreResult<bool> {
        let mut client = self.conn()?;
        let mut tx = client.transaction()?;
        // The device's row is locked, so two moves at once end in one of them, whole.
        if tx.query_opt("SELECT 1 FROM devices WHERE id = $1 AND revoked_at IS NULL FOR UPDATE", &[&id])?.is_none() {
            return Ok(false);
        }
        let had = Self::grids_of(&mut tx, id)?;
        for g in had.iter().filter(|g| !grids.contains(g)) {
            tx.execute(
                "INSERT INTO device_leaving_grids (device_id, grid, since) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&id, g, &now],
            )?;
        }
        tx.execute("DELETE FROM device_grids WHERE device_id = $1", &[&id])?;
        for g in grids {
            tx.execute("INSERT INTO device_grids (device_id, grid) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&id, g])?;
            tx.execute("DELETE FROM device_leaving_grids WHERE device_id = $1 AND grid = $2", &[&id, g])?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn finish_leaving(&self, id: &str, holds: &[String]) -> StoreResult<bool> {
        let mut client = self.conn()?;
        let mut tx = client.transaction()?;
        // The device's row is locked, so a move at the same moment comes before or after, whole.
        if tx.query_opt("SELECT 1 FROM devices WHERE id = $1 FOR UPDATE", &[&id])?.is_none() {
            return Ok(false);
        }
        let mut serves = Self::grids_of(&mut tx, id)?;
        let mut holds = holds.to_vec();
        serves.sort();
        holds.sort();
        holds.dedup();
        if serves != holds {
            return Ok(false);
        }
        let changed = tx.execute("DELETE FROM device_leaving_grids WHERE device_id = $1", &[&id])? > 0;
        tx.commit()?;
        Ok(changed)
    }

    fn revoked_device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<String>> {
        Ok(self
            .conn()?
            .query_opt("SELECT id FROM devices WHERE token_hash = $1 AND revoked_at IS NOT NULL", &[&&token_hash[..]])?
            .map(|r| r.get(0)))
    }

    fn record_wipe(&self, id: &str, now: i64) -> StoreResult<bool> {
        Ok(self.conn()?.execute(
            "UPDATE devices SET wiped_at = $2 WHERE id = $1 AND revoked_at IS NOT NULL AND wiped_at IS NULL",
            &[&id, &now],
        )? > 0)
    }

    fn devices(&self) -> StoreResult<Vec<DeviceInfo>> {
        let mut client = self.conn()?;
        let rows = client.query(
            "SELECT id, name, role, enrolled_at, last_seen_at, revoked_at, number, wiped_at FROM devices ORDER BY enrolled_at, id",
            &[],
        )?;
        let mut devices = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.get(0);
            let grids = Self::grids_of(&mut *client, &id)?;
            let leaving_grids = Self::leaving_of(&mut *client, &id)?;
            devices.push(DeviceInfo {
                id,
                number: r.get(6),
                name: r.get(1),
                role: r.get(2),
                grids,
                enrolled_at: r.get(3),
                last_seen_at: r.get(4),
                revoked_at: r.get(5),
                wiped_at: r.get(7),
                leaving_grids,
            });
        }
        Ok(devices)
    }

    fn revoke(&self, id: &str, now: i64) -> StoreResult<bool> {
        Ok(self
            .conn()?
            .execute("UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", &[&id, &now])?
            > 0)
    }

    fn load_doc(&self, id: &str) -> StoreResult<Option<StoredDoc>> {
        Ok(self
            .conn()?
            .query_opt("SELECT id, grid, kind, snapshot, first_seq, last_seq FROM docs WHERE id = $1", &[&id])?
            .map(|r| stored_doc(&r)))
    }

    fn store_push(&self, writes: &[DocWrite], device: &str, received_at: i64) -> StoreResult<u32> {
        let mut client = self.conn()?;
        let mut tx = client.transaction()?;
        // The counter row, locked until commit: pushes write one after another, in the order of
        // their sequence numbers (see the module comment).
        let mut next: i64 = tx.query_one("SELECT seq FROM change_counter WHERE id = 1 FOR UPDATE", &[])?.get(0);
        // The receipt chain goes on from the last receipt, under the same lock.
        let mut chain: [u8; 32] = tx
            .query_opt("SELECT chain FROM chain_head WHERE id = 1", &[])?
            .and_then(|r| r.get::<_, Vec<u8>>(0).try_into().ok())
            .unwrap_or(chain::GENESIS);
        let mut stored = 0u32;
        for w in writes {
            let current: Option<i64> =
                tx.query_opt("SELECT last_seq FROM docs WHERE id = $1", &[&w.id])?.map(|r| r.get(0));
            if current != w.base_last_seq {
                return Err(StoreError::Conflict { doc: w.id.clone() });
            }
            let mut first = None;
            let mut last = None;
            for c in &w.new_changes {
                let seq = next + 1;
                let linked = chain::link(&chain, seq, &w.id, &c.hash, device, received_at);
                let inserted = tx.execute(
                    "INSERT INTO changes (seq, doc_id, grid, hash, bytes, received_at, device_id, chain)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (doc_id, hash) DO NOTHING",
                    &[&seq, &w.id, &w.grid, &&c.hash[..], &c.bytes, &received_at, &device, &&linked[..]],
                )?;
                if inserted > 0 {
                    next = seq;
                    chain = linked;
                    stored += 1;
                    first.get_or_insert(seq);
                    last = Some(seq);
                }
            }
            let Some(last) = last else { continue };
            let first = first.unwrap_or(last);
            tx.execute(
                "INSERT INTO docs (id, grid, kind, snapshot, first_seq, last_seq) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, last_seq = excluded.last_seq",
                &[&w.id, &w.grid, &w.kind, &w.snapshot, &first, &last],
            )?;
            tx.execute("DELETE FROM blob_refs WHERE doc_id = $1", &[&w.id])?;
            for hash in &w.blob_refs {
                tx.execute(
                    "INSERT INTO blob_refs (hash, doc_id, grid) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[hash, &w.id, &w.grid],
                )?;
            }
        }
        tx.execute("UPDATE change_counter SET seq = $1 WHERE id = 1", &[&next])?;
        if stored > 0 {
            tx.execute(
                "INSERT INTO chain_head (id, seq, chain) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, chain = excluded.chain",
                &[&next, &&chain[..]],
            )?;
        }
        tx.commit()?;
        Ok(stored)
    }

    fn max_seq(&self) -> StoreResult<i64> {
        Ok(self.conn()?.query_one("SELECT seq FROM change_counter WHERE id = 1", &[])?.get(0))
    }

    fn changes_since(
        &self,
        after_seq: i64,
        scope: Option<&[String]>,
        except_device: &str,
        limit: usize,
    ) -> StoreResult<Vec<ChangeRow>> {
        let rows = self.conn()?.query(
            "SELECT seq, doc_id, hash, bytes, received_at FROM changes
              WHERE seq > $1 AND device_id <> $3 AND ($4::text[] IS NULL OR grid = ANY($4))
              ORDER BY seq LIMIT $2",
            &[&after_seq, &(limit as i64), &except_device, &scope_vec(scope)],
        )?;
        Ok(rows.iter().map(change_row).collect())
    }

    fn docs_after(
        &self,
        after_id: &str,
        scope: Option<&[String]>,
        except_device: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredDoc>> {
        let rows = self.conn()?.query(
            "SELECT id, grid, kind, snapshot, first_seq, last_seq FROM docs
              WHERE id > $1 AND ($4::text[] IS NULL OR grid = ANY($4))
                AND EXISTS (SELECT 1 FROM changes c WHERE c.doc_id = docs.id AND c.device_id <> $3)
              ORDER BY id LIMIT $2",
            &[&after_id, &(limit as i64), &except_device, &scope_vec(scope)],
        )?;
        Ok(rows.iter().map(stored_doc).collect())
    }

    fn receipts(&self, doc_id: &str) -> StoreResult<Vec<([u8; 32], i64)>> {
        let rows =
            self.conn()?.query("SELECT hash, received_at FROM changes WHERE doc_id = $1 ORDER BY seq", &[&doc_id])?;
        Ok(rows.into_iter().map(|r| (row_hash(r.get(0)), r.get(1))).collect())
    }

    fn doc_changes(&self, doc_id: &str) -> StoreResult<Vec<ChangeRow>> {
        let rows = self.conn()?.query(
            "SELECT seq, doc_id, hash, bytes, received_at FROM changes WHERE doc_id = $1 ORDER BY seq",
            &[&doc_id],
        )?;
        Ok(rows.iter().map(change_row).collect())
    }

    fn blob_referenced(&self, hash: &str, scope: Option<&[String]>) -> StoreResult<bool> {
        Ok(self
            .conn()?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM blob_refs WHERE hash = $1 AND ($2::text[] IS NULL OR grid = ANY($2)))",
                &[&hash, &scope_vec(scope)],
            )?
            .get(0))
    }

    fn blob_grids(&self, hash: &str) -> StoreResult<Vec<String>> {
        Ok(self
            .conn()?
            .query("SELECT DISTINCT grid FROM blob_refs WHERE hash = $1 ORDER BY grid", &[&hash])?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn grant_blob(&self, hash: &str, grids: &[String]) -> StoreResult<()> {
        let mut client = self.conn()?;
        for g in grids {
            client
                .execute("INSERT INTO blob_grants (hash, grid) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&hash, g])?;
        }
        Ok(())
    }

    fn blob_granted(&self, hash: &str, scope: Option<&[String]>) -> StoreResult<bool> {
        Ok(self
            .conn()?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM blob_grants WHERE hash = $1 AND ($2::text[] IS NULL OR grid = ANY($2)))",
                &[&hash, &scope_vec(scope)],
            )?
            .get(0))
    }

    fn blob_store(&self) -> Option<Box<dyn crate::blobs::BlobStore>> {
        Some(Box::new(self.blobs()))
    }

    fn backup(&self, _to: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Unsupported("back up a PostgreSQL relay with pg_dump or the database's own backups"))
    }

    fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        let mut client = self.conn()?;
        client.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &value],
        )?;
        Ok(client.query_one("SELECT value FROM settings WHERE key = $1", &[&key])?.get(0))
    }

    fn insert_handover(&self, handover: &Handover) -> StoreResult<Handover> {
        let mut client = self.conn()?;
        client.execute(
            "INSERT INTO handovers (from_device, state, requested_at, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (from_device) DO NOTHING",
            &[&handover.from_device, &handover.state.as_str(), &handover.requested_at, &handover_json(handover)?],
        )?;
        let body: String =
            client.query_one("SELECT body FROM handovers WHERE from_device = $1", &[&handover.from_device])?.get(0);
        handover_from_json(&body)
    }

    fn handovers(&self) -> StoreResult<Vec<Handover>> {
        let rows = self.conn()?.query("SELECT body FROM handovers ORDER BY requested_at, from_device", &[])?;
        rows.iter().map(|r| handover_from_json(&r.get::<_, String>(0))).collect()
    }

    fn update_handover(&self, expected: HandoverState, next: &Handover) -> StoreResult<bool> {
        Ok(self.conn()?.execute(
            "UPDATE handovers SET state = $3, body = $4 WHERE from_device = $1 AND state = $2",
            &[&next.from_device, &expected.as_str(), &next.state.as_str(), &handover_json(next)?],
        )? > 0)
    }

    fn store_access(
        &self,
        device: &str,
        lines: &[gridwalk_protocol::AccessLine],
        received_at: i64,
    ) -> StoreResult<u32> {
        let mut client = self.conn()?;
        let mut tx = client.transaction()?;
        let insert = tx.prepare(
            "INSERT INTO access_log (device_id, seq, at, person, kind, subject, detail, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )?;
        let mut new = 0;
        for l in lines {
            new += tx
                .execute(&insert, &[&device, &l.seq, &l.at, &l.person, &l.kind, &l.subject, &l.detail, &received_at])?
                as u32;
        }
        tx.commit()?;
        Ok(new)
    }

    fn access_log(&self, limit: usize) -> StoreResult<Vec<StoredAccess>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        Ok(self
            .conn()?
            .query(
                "SELECT device_id, seq, at, person, kind, subject, detail, received_at FROM access_log
                  ORDER BY received_at DESC, at DESC, device_id, seq DESC LIMIT $1",
                &[&limit],
            )?
            .iter()
            .map(access_row)
            .collect())
    }

    fn stats(&self) -> StoreResult<Stats> {
        let row = self.conn()?.query_one(
            "SELECT (SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL),
                    (SELECT COUNT(*) FROM devices WHERE revoked_at IS NOT NULL),
                    (SELECT COUNT(*) FROM docs),
                    (SELECT COUNT(*) FROM changes),
                    (SELECT COALESCE(SUM(LENGTH(bytes)), 0)::BIGINT FROM changes),
                    (SELECT COALESCE(SUM(LENGTH(snapshot)), 0)::BIGINT FROM docs)",
            &[],
        )?;
        Ok(Stats {
            devices: row.get(0),
            revoked_devices: row.get(1),
            documents: row.get(2),
            changes: row.get(3),
            change_bytes: row.get(4),
            snapshot_bytes: row.get(5),
        })
    }
}

impl PostgresRelayStore {
    /// Every row, in the same order as the SQLite store's dump, read in one REPEATABLE READ
    /// transaction (one consistent state while relays serve).
    pub fn dump(&self) -> StoreResult<RelayDump> {
        let mut client = self.conn()?;
        let mut tx = client.build_transaction().isolation_level(::postgres::IsolationLevel::RepeatableRead).start()?;
        let mut dump = RelayDump::default();
        for r in tx.query(
            "SELECT id, name, role, token_hash, enrolled_at, last_seen_at, revoked_at, walker, number, wiped_at
               FROM devices ORDER BY id",
            &[],
        )? {
            let id: String = r.get(0);
            let grids = Self::grids_of(&mut tx, &id)?;
            let leaving = Self::leaving_of(&mut tx, &id)?;
            dump.devices.push(DumpDevice {
                id,
                number: r.get(8),
                name: r.get(1),
                role: r.get(2),
                token_hash: r.get(3),
                enrolled_at: r.get(4),
                last_seen_at: r.get(5),
                revoked_at: r.get(6),
                wiped_at: r.get(9),
                walker: r.get(7),
                grids,
                leaving,
            });
        }
        dump.enrollments = tx
            .query(
                "SELECT code_hash, device_name, role, grids, created_at, expires_at, used_at, device_id, walker,
                        device_key_hash
                   FROM enrollments ORDER BY code_hash",
                &[],
            )?
            .into_iter()
            .map(|r| DumpEnrollment {
                code_hash: r.get(0),
                device_name: r.get(1),
                role: r.get(2),
                grids: r.get(3),
                created_at: r.get(4),
                expires_at: r.get(5),
                used_at: r.get(6),
                device_id: r.get(7),
                walker: r.get(8),
                device_key_hash: r.get(9),
            })
            .collect();
        dump.docs = tx
            .query("SELECT id, grid, kind, snapshot, first_seq, last_seq FROM docs ORDER BY id", &[])?
            .iter()
            .map(stored_doc)
            .collect();
        dump.changes = tx
            .query(
                "SELECT seq, doc_id, grid, hash, bytes, received_at, device_id, chain FROM changes ORDER BY seq",
                &[],
            )?
            .into_iter()
            .map(|r| DumpChange {
                seq: r.get(0),
                doc_id: r.get(1),
                grid: r.get(2),
                hash: r.get(3),
                bytes: r.get(4),
                received_at: r.get(5),
                device_id: r.get(6),
                chain: r.get(7),
            })
            .collect();
        dump.chain_head =
            tx.query_opt("SELECT seq, chain FROM chain_head WHERE id = 1", &[])?.map(|r| (r.get(0), r.get(1)));
        dump.blob_refs = tx
            .query("SELECT hash, doc_id, grid FROM blob_refs ORDER BY hash, doc_id, grid", &[])?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        dump.blob_grants = tx
            .query("SELECT hash, grid FROM blob_grants ORDER BY hash, grid", &[])?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        dump.settings = tx
            .query("SELECT key, value FROM settings ORDER BY key", &[])?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        dump.handovers = tx
            .query("SELECT from_device, state, body FROM handovers ORDER BY from_device", &[])?
            .into_iter()
            .map(|r| DumpHandover { from_device: r.get(0), state: r.get(1), body: r.get(2) })
            .collect();
        dump.access = tx
            .query(
                "SELECT device_id, seq, at, person, kind, subject, detail, received_at FROM access_log
                  ORDER BY device_id, seq",
                &[],
            )?
            .iter()
            .map(access_row)
            .collect();
        tx.commit()?;
        Ok(dump)
    }

    /// Writes a whole dump into this database in one transaction, sequence numbers and receipt
    /// times as they were, and moves the change counter past them. Refuses a database that
    /// already holds devices or documents: a move never merges two relays.
    pub fn load_dump(&self, dump: &RelayDump) -> StoreResult<()> {
        let mut client = self.conn()?;
        let mut tx = client.transaction()?;
        tx.query_one("SELECT seq FROM change_counter WHERE id = 1 FOR UPDATE", &[])?;
        let used: i64 = tx
            .query_one(
                "SELECT (SELECT COUNT(*) FROM devices) + (SELECT COUNT(*) FROM docs) + (SELECT COUNT(*) FROM enrollments)",
                &[],
            )?
            .get(0);
        if used > 0 {
            return Err(StoreError::Unsupported(
                "the PostgreSQL database already holds a relay's devices or documents; move into an empty one",
            ));
        }
        for d in &dump.devices {
            tx.execute(
                "INSERT INTO devices (id, name, role, token_hash, enrolled_at, last_seen_at, revoked_at, walker, number, wiped_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &d.id,
                    &d.name,
                    &d.role,
                    &d.token_hash,
                    &d.enrolled_at,
                    &d.last_seen_at,
                    &d.revoked_at,
                    &d.walker,
                    &d.number,
                    &d.wiped_at,
                ],
            )?;
            for g in &d.grids {
                tx.execute("INSERT INTO device_grids (device_id, grid) VALUES ($1, $2)", &[&d.id, g])?;
            }
            for l in &d.leaving {
                tx.execute(
                    "INSERT INTO device_leaving_grids (device_id, grid, since) VALUES ($1, $2, $3)",
                    &[&d.id, &l.grid, &l.since],
                )?;
            }
        }
        for e in &dump.enrollments {
            tx.execute(
                "INSERT INTO enrollments (code_hash, device_name, role, grids, created_at, expires_at, used_at, device_id, walker,
                                          device_key_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &e.code_hash,
                    &e.device_name,
                    &e.role,
                    &e.grids,
                    &e.created_at,
                    &e.expires_at,
                    &e.used_at,
                    &e.device_id,
                    &e.walker,
                    &e.device_key_hash,
                ],
            )?;
        }
        for d in &dump.docs {
            tx.execute(
                "INSERT INTO docs (id, grid, kind, snapshot, first_seq, last_seq) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&d.id, &d.grid, &d.kind, &d.snapshot, &d.first_seq, &d.last_seq],
            )?;
        }
        let insert = tx.prepare(
            "INSERT INTO changes (seq, doc_id, grid, hash, bytes, received_at, device_id, chain)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )?;
        for c in &dump.changes {
            tx.execute(
                &insert,
                &[&c.seq, &c.doc_id, &c.grid, &c.hash, &c.bytes, &c.received_at, &c.device_id, &c.chain],
            )?;
        }
        if let Some((seq, chain)) = &dump.chain_head {
            tx.execute("INSERT INTO chain_head (id, seq, chain) VALUES (1, $1, $2)", &[seq, chain])?;
        }
        for (hash, doc, grid) in &dump.blob_refs {
            tx.execute("INSERT INTO blob_refs (hash, doc_id, grid) VALUES ($1, $2, $3)", &[hash, doc, grid])?;
        }
        for (hash, grid) in &dump.blob_grants {
            tx.execute("INSERT INTO blob_grants (hash, grid) VALUES ($1, $2)", &[hash, grid])?;
        }
        // The hall's escrow key wins over one a relay on this database may have made meanwhile:
        // the hall's phones wrapped their keys to it.
        for (key, value) in &dump.settings {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[key, value],
            )?;
        }
        for x in &dump.handovers {
            let requested_at = handover_from_json(&x.body)?.requested_at;
            tx.execute(
                "INSERT INTO handovers (from_device, state, requested_at, body) VALUES ($1, $2, $3, $4)",
                &[&x.from_device, &x.state, &requested_at, &x.body],
            )?;
        }
        for a in &dump.access {
            let l = &a.line;
            tx.execute(
                "INSERT INTO access_log (device_id, seq, at, person, kind, subject, detail, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&a.device_id, &l.seq, &l.at, &l.person, &l.kind, &l.subject, &l.detail, &a.received_at],
            )?;
        }
        let top = dump.changes.iter().map(|c| c.seq).max().unwrap_or(0);
        tx.execute("UPDATE change_counter SET seq = $1 WHERE id = 1", &[&top])?;
        tx.commit()?;
        Ok(())
    }
}

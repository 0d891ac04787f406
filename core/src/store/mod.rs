//! The local store: one SQLite file (WAL) holding every document as Automerge bytes, the list
//! indexes beside them, the reference data and the outbox of changes a relay has not yet
//! acknowledged.
//!
//! The rule that keeps a walker's records safe: one user action is one SQLite transaction. The
//! new document bytes, the index rows and the outbox entry commit together or not at all, so a
//! phone that dies mid-action comes back with either the whole action or none of it.

pub mod access;
mod admin;
mod drafts;
pub mod handover;
mod index;
pub mod keys;
mod meetings;
mod photo_queue;
mod photos;
pub mod query;
mod reference;
mod roster;
pub mod schema;
pub mod staff;
mod sync_state;

use std::path::{Path, PathBuf};

use automerge::{AutoCommit, ChangeHash};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::doc_view::DocView;
use crate::docs::{
    self, DocHeader, DocKind, GeoPoint, Place, Reporter, RequestBody, RequestDocument, Source, Urgency, VisitBody,
    VisitDocument, VisitKind, VisitTarget,
};
use crate::error::{CoreError, Result};
use crate::lifecycle::{self, Action, LifecycleEvent, RequestState};
use crate::model::Role;
use crate::time::Timestamp;
use crate::ActionContext;
use gridwalk_doc::permissions::{self, Actor, Forbidden, Step};

pub use meetings::{MeetingSummary, MeetingView};
pub use photo_queue::{PhotoProcessed, PhotoQueueCounts, PhotoToQueue, QueuedPhoto, QueuedPhotoState};
pub use query::{RequestFilter, RequestSort, RequestSummary, VisitFilter, VisitSummary};
pub use roster::PublishReport;
pub use schema::LATEST_VERSION;
pub use sync_state::{GridMove, RelayLink};

/// After this many incremental chunks a document is saved whole again (compaction).
const COMPACT_AFTER_CHUNKS: i64 = 32;

/// Who this store belongs to: the device and the person using it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub device: String,
    pub walker: String,
}

/// A visit as the walker enters it.
#[derive(Debug, Clone)]
pub struct NewVisit {
    /// Leave empty for a fresh random id.
    pub id: Option<String>,
    pub grid: String,
    pub micro_grid: Option<String>,
    pub target: VisitTarget,
    pub kind: VisitKind,
    /// When the visit happened; the action's time when not given.
    pub visited_at: Option<Timestamp>,
    /// Other cadres who went; the acting walker is always listed first.
    pub other_walkers: Vec<String>,
    pub companions: Vec<String>,
    pub notes: String,
    pub gps: Option<GeoPoint>,
}

/// A request as it is raised.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: Option<String>,
    pub grid: String,
    pub micro_grid: Option<String>,
    pub reporter: Reporter,
    pub address: String,
    pub gps: Option<GeoPoint>,
    pub category: String,
    pub description: String,
    pub urgency: Urgency,
    pub source: Source,
    /// The visit it was raised on; the visit then lists it too, in the same transaction.
    pub visit: Option<String>,
}

/// One event of a request's history, in fold order, with whether the fold applied it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub event: LifecycleEvent,
    pub applied: bool,
    /// When the relay first saw this event (milliseconds), once it has.
    pub relay_received_at: Option<i64>,
}

/// A request with everything known about it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub header: DocHeader,
    pub body: RequestBody,
    pub state: RequestState,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VisitView {
    pub header: DocHeader,
    pub body: VisitBody,
}

/// One change waiting for a relay's acknowledgement (the sync crate's type: the session reads
/// the outbox through it).
pub use gridwalk_sync::OutboxEntry;

/// What `check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub integrity: String,
    pub documents: i64,
    pub index_matches_documents: bool,
    pub index_rows: usize,
    /// Documents held here that cannot be read; they have no index rows (see `damaged_documents`).
    pub damaged: Vec<DamagedDocument>,
}

/// A document this device holds but cannot read, and which part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedDocument {
    pub doc_id: String,
    /// `header`, `body`, `events` or `photos`.
    pub field: String,
    pub message: String,
}

impl From<&gridwalk_doc::incoming::Unreadable> for DamagedDocument {
    fn from(u: &gridwalk_doc::incoming::Unreadable) -> Self {
        DamagedDocument { doc_id: u.doc.clone(), field: u.field.to_string(), message: u.message.clone() }
    }
}

/// What a document's index rows are made from, read from the document alone. Reading needs no
/// database, so a pulled page's new documents are read on helper threads while the writing
/// thread stores the ones before them.
pub(crate) enum Derived {
    Request {
        header: DocHeader,
        body: RequestBody,
        state: RequestState,
        events: usize,
    },
    Visit {
        header: DocHeader,
        body: VisitBody,
    },
    Meeting {
        header: DocHeader,
        body: crate::meeting::MeetingBody,
    },
    /// A roster feeds the reference tables, not the lists; it is written into them only when it
    /// arrives from elsewhere (see `apply_remote`), so rebuilding the lists on the hall never
    /// overwrites the tables the roster was published from.
    Roster {
        published_at: Option<Timestamp>,
    },
}

/// What indexing a received document came to.
enum Indexed {
    /// Indexed; the time of its latest change as the document records it, where it has one.
    Readable(Option<Timestamp>),
    /// It cannot be read: no index rows, listed in `damaged_documents`.
    Damaged,
}

impl Derived {
    fn kind(&self) -> DocKind {
        match self {
            Derived::Request { .. } => DocKind::Request,
            Derived::Visit { .. } => DocKind::Visit,
            Derived::Meeting { .. } => DocKind::Meeting,
            Derived::Roster { .. } => DocKind::Roster,
        }
    }

    /// Reads document `id` whole, through the same check the relay runs on every push
    /// (`gridwalk_doc::incoming::read_whole`); a document that cannot be read is
    /// `CoreError::Unreadable`.
    pub(crate) fn read(id: &str, doc: &DocView) -> Result<Derived> {
        use gridwalk_doc::incoming::{read_whole, Readable};
        Ok(match read_whole(id, doc).map_err(CoreError::Unreadable)? {
            Readable::Request { header, body, events, state } => {
                Derived::Request { header, body, state, events: events.len() }
            }
            Readable::Visit { header, body } => Derived::Visit { header, body },
            Readable::Meeting { header, body } => Derived::Meeting { header, body },
            Readable::Roster { body, .. } => Derived::Roster { published_at: Some(body.published_at) },
        })
    }

    /// Writes the index rows.
    pub(crate) fn write(&self, conn: &Connection) -> Result<()> {
        match self {
            Derived::Request { header, body, state, events } => {
                index::index_request(conn, header, body, state, *events)
            }
            Derived::Visit { header, body } => index::index_visit(conn, header, body),
            Derived::Meeting { header, body } => index::index_meeting(conn, header, body),
            Derived::Roster { .. } => Ok(()),
        }
    }

    /// The time of the document's latest change as the document itself records it (the last
    /// lifecycle event of a request), where it has one.
    pub(crate) fn updated_at(&self) -> Option<Timestamp> {
        match self {
            Derived::Request { state, .. } => Some(state.updated_at),
            Derived::Visit { header, .. } | Derived::Meeting { header, .. } => Some(header.created_at),
            Derived::Roster { published_at } => *published_at,
        }
    }
}

/// A document new to this store, loaded from received bytes and read, ready to be stored.
pub(crate) struct NewDocument {
    id: String,
    /// `None` when not even the header can be read; such a document is only listed as damaged.
    header: Option<DocHeader>,
    /// Why the document cannot be read, when it cannot; it is then stored with no index rows.
    damaged: Option<gridwalk_doc::incoming::Unreadable>,
    /// Kept only for a roster, which is applied from the document itself; any other document
    /// is dropped on the thread that loaded it (see `read`).
    roster: Option<AutoCommit>,
    derived: Option<Derived>,
    wanted_photos: Vec<String>,
    snapshot: Vec<u8>,
}

impl NewDocument {
    /// Loads and checks received bytes for document `id`, which this store does not hold.
    /// Strict: bytes that are not a whole, well-formed document with every change it builds on
    /// are refused.
    pub(crate) fn read(id: &str, bytes: &[u8]) -> Result<NewDocument> {
        let chunks = docs::split_chunks(bytes)?;
        let damaged = |message: String| CoreError::DamagedDocument { id: id.to_string(), message };
        // A document new here is loaded from the received bytes in one go. Decoding a saved
        // document into its changes and applying them one by one costs over ten times as much,
        // and a new device receives its whole grid this way.
        let mut doc =
            AutoCommit::load(bytes).map_err(|e| CoreError::invalid("changes", format!("bad document: {e}")))?;
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(damaged("the changes build on changes this device has not received".into()));
        }
        // One view serves the header, the index and the photo list, so each part of the
        // document is read from Automerge once.
        let view = DocView::new(&doc);
        // A document that cannot be read is kept aside, not refused: refusing it would stop the
        // pull of every document after it, on every device of its grid, on every attempt.
        let (header, derived, damaged) = match Derived::read(id, &view) {
            Ok(derived) => (Some(docs::read_header(&view)?), Some(derived), None),
            Err(CoreError::Unreadable(u)) => (docs::read_header(&view).ok().filter(|h| h.id == id), None, Some(u)),
            Err(e) => return Err(e),
        };
        let wanted_photos = if damaged.is_none() { Store::photos_named(&view) } else { Vec::new() };
        drop(view);
        // A single saved document is kept exactly as received: saving it again would only
        // produce the same bytes at a cost.
        let snapshot = match chunks.as_slice() {
            [(docs::DOCUMENT_CHUNK, _)] => bytes.to_vec(),
            _ => doc.save(),
        };
        // The loaded document is freed here, on the thread that allocated it, unless it is
        // needed later. Freed on the store's thread instead (a pulled page's documents are read
        // on helper threads), its many small allocations go back to another thread's arena, and
        // a profile of P2 of `gridwalk-bench sync` showed that as a large part of the store
        // thread's work.
        let roster = (damaged.is_none() && header.as_ref().is_some_and(|h| h.kind == DocKind::Roster)).then_some(doc);
        Ok(NewDocument { id: id.to_string(), header, damaged, roster, derived, wanted_photos, snapshot })
    }
}

/// Bytes received for one document, checked and decoded before the write lock is taken.
struct Received {
    /// The changes, for a document this store already holds; a new one is loaded whole.
    changes: Option<Vec<automerge::Change>>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    identity: Identity,
    /// The key the file and its photos are encrypted with; `None` for a plain store.
    key: Option<keys::StoreKey>,
}

/// The first 16 bytes of every plain SQLite file. An encrypted file's first bytes are random.
const PLAIN_SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Whether the file at `path` is a plain (unencrypted) SQLite database.
fn is_plain_sqlite(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(path)?;
    Ok(file.read_exact(&mut header).is_ok() && &header == PLAIN_SQLITE_HEADER)
}

/// SQLCipher's page authentication with HMAC-SHA256 instead of its default SHA-512: the ARMv8
/// crypto extensions of a cheap phone (and x86's SHA-NI) compute SHA-256 in hardware, SHA-512
/// mostly not, and every page written is authenticated. With a 256-bit random key the shorter
/// MAC is as strong as anything here needs. Set on every connection right after the key, and
/// as the default for the encrypted copy `encrypt_in_place` attaches.
const CIPHER_SETTINGS: &str = "PRAGMA cipher_hmac_algorithm = HMAC_SHA256;";
const CIPHER_DEFAULTS: &str = "PRAGMA cipher_default_hmac_algorithm = HMAC_SHA256;";

/// Gives SQLCipher the key; it must be the first statement on a connection. The key is checked
/// at once by reading the schema, so a wrong key is reported as such and not as a damaged file.
fn apply_key(conn: &Connection, key: &keys::StoreKey, path: &Path) -> Result<()> {
    conn.execute_batch(&format!("PRAGMA key = \"{}\";", key.sqlcipher_literal().as_str()))?;
    conn.execute_batch(CIPHER_SETTINGS)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))
        .map_err(|_| CoreError::StoreKey(format!("this key does not open the store at {}", path.display())))?;
    Ok(())
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a walker's phone may lose power, not only crash; a committed action must survive.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 32 MB of page cache (SQLite's default is 2 MB). A pulled page of 500 documents touches
    // more index pages than 2 MB hold, and SQLite then writes dirty pages to the log before the
    // transaction ends and reads them back. The cache is only filled as pages are used.
    conn.pragma_update(None, "cache_size", -32_768)?;
    Ok(())
}

impl Store {
    /// Creates a new plain store file for this device and person (tests, benchmarks and the
    /// command line's scratch stores). Devices use [`Store::create_encrypted`].
    pub fn create(path: impl AsRef<Path>, identity: Identity) -> Result<Store> {
        Self::create_with(path.as_ref(), identity, None)
    }

    /// Creates a new store file encrypted with `key` (see `keys`). Refuses to overwrite one.
    pub fn create_encrypted(path: impl AsRef<Path>, identity: Identity, key: keys::StoreKey) -> Result<Store> {
        Self::create_with(path.as_ref(), identity, Some(key))
    }

    fn create_with(path: &Path, identity: Identity, key: Option<keys::StoreKey>) -> Result<Store> {
        if identity.device.trim().is_empty() || identity.walker.trim().is_empty() {
            return Err(CoreError::invalid("identity", "device and walker ids must not be empty"));
        }
        if path.exists() {
            return Err(CoreError::AlreadyExists { id: format!("a store at {}", path.display()) });
        }
        // The store is built under a temporary name and renamed into place once complete, so a
        // crash during creation never leaves a half-made store that can be neither opened nor
        // created again.
        let mut staging_name = path.file_name().unwrap_or_default().to_os_string();
        staging_name.push(".creating");
        let staging = path.with_file_name(staging_name);
        for leftover in [&staging, &staging.with_extension("creating-wal"), &staging.with_extension("creating-shm")] {
            let _ = std::fs::remove_file(leftover);
        }
        {
            let mut conn = Connection::open(&staging)?;
            if let Some(key) = &key {
                apply_key(&conn, key, &staging)?;
            }
            configure(&conn)?;
            schema::migrations().to_latest(&mut conn)?;
            let tx = conn.transaction()?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('device', ?1)", [&identity.device])?;
            tx.execute("INSERT INTO meta (key, value) VALUES ('walker', ?1)", [&identity.walker])?;
            tx.commit()?;
            // Closing checkpoints the WAL into the main file, so the rename moves everything.
            conn.close().map_err(|(_, e)| e)?;
        }
        std::fs::rename(&staging, path)?;
        Self::open_with(path, key)
    }

    /// Opens an existing plain store, bringing its schema up to date. An encrypted one is
    /// refused with `Locked`: it opens only with its key ([`Store::open_encrypted`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(path.as_ref(), None)
    }

    /// Opens the store at `path` with its key. A plain store (made before encryption) is first
    /// encrypted in place with this key, photos included: see [`Store::encrypt_in_place`].
    pub fn open_encrypted(path: impl AsRef<Path>, key: keys::StoreKey) -> Result<Store> {
        let path = path.as_ref();
        if path.is_file() && is_plain_sqlite(path)? {
            Self::encrypt_in_place(path, &key)?;
        }
        Self::open_with(path, Some(key))
    }

    /// Encrypts a plain store with `key`, once: its photo files are sealed first, then the
    /// database is copied into an encrypted file by SQLCipher's `sqlcipher_export`, which is
    /// flushed and renamed over the plain one. Every step can be interrupted: the key is already
    /// in its key file, sealed photos are read like plain ones, and a plain database still in
    /// place is simply encrypted again on the next open.
    pub fn encrypt_in_place(path: &Path, key: &keys::StoreKey) -> Result<()> {
        // One at a time in this process: the app and its workers may all open a plain store at
        // once, and two copies exported into one staging file would make a store of neither.
        static ENCRYPTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = ENCRYPTING.lock().unwrap_or_else(|p| p.into_inner());
        let not_initialised = || CoreError::NotInitialised { path: path.display().to_string() };
        if !path.is_file() {
            return Err(not_initialised());
        }
        // Looked at again under the lock: another thread may have just encrypted it.
        if !is_plain_sqlite(path)? {
            return Ok(());
        }
        let mut staging_name = path.file_name().unwrap_or_default().to_os_string();
        staging_name.push(".encrypting");
        let staging = path.with_file_name(staging_name);
        let _ = std::fs::remove_file(&staging);
        {
            // CREATE: the attached encrypted copy is made through this connection.
            let conn =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version == 0 {
                return Err(not_initialised());
            }
            // Whatever the write-ahead log holds goes into the main file first, so the copy below
            // and the rename that follows leave nothing behind in a plain `-wal` file.
            // A checkpoint another connection holds up would leave changes behind in the log,
            // which the copy would miss: then nothing is encrypted now, and the next open tries again.
            let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy != 0 {
                return Err(CoreError::StoreKey(format!(
                    "{} is in use by another connection; it is encrypted when next opened alone",
                    path.display()
                )));
            }
            let photo_dir = Self::blob_dir_of(path);
            let photos = crate::photo::blobs::BlobStore::sealed(photo_dir, key.photo_key());
            photos.seal_plain_files().map_err(|e| CoreError::Export(format!("cannot seal the photo files: {e}")))?;
            // Plain leftovers are not kept: half-written photo files, and half-downloaded photos
            // (those download again, sealed).
            for temp in photos.scan().map_err(|e| CoreError::Export(e.to_string()))?.1 {
                std::fs::remove_file(temp)?;
            }
            let mut partial = path.file_name().unwrap_or_default().to_os_string();
            partial.push("-partial");
            match std::fs::remove_dir_all(path.with_file_name(partial)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            conn.execute_batch(CIPHER_DEFAULTS)?;
            conn.execute(
                "ATTACH DATABASE ?1 AS encrypted KEY ?2",
                params![staging.to_string_lossy(), key.sqlcipher_literal().as_str()],
            )?;
            conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))?;
            // The export copies tables and indexes, not the schema version.
            conn.execute_batch(&format!("PRAGMA encrypted.user_version = {version}; DETACH DATABASE encrypted;"))?;
            conn.close().map_err(|(_, e)| e)?;
        }
        std::fs::File::open(&staging)?.sync_all()?;
        std::fs::rename(&staging, path)?;
        // The plain file's log and shared-memory index: empty after the checkpoint, and of no
        // use to the encrypted file.
        for suffix in ["-wal", "-shm"] {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(path.with_file_name(name));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    fn open_with(path: &Path, key: Option<keys::StoreKey>) -> Result<Store> {
        let not_initialised = || CoreError::NotInitialised { path: path.display().to_string() };
        if !path.is_file() {
            return Err(not_initialised());
        }
        if key.is_none() && !is_plain_sqlite(path)? && std::fs::metadata(path)?.len() > 0 {
            return Err(CoreError::Locked { path: path.display().to_string() });
        }
        let mut conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        if let Some(key) = &key {
            apply_key(&conn, key, path)?;
        }
        configure(&conn)?;
        let migrations = schema::migrations();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version == 0 {
            return Err(not_initialised());
        }
        // Indexes a first pull left to build are built before anything else reads the store,
        // and before a migration that may expect them.
        if version >= 14 {
            sync_state::build_deferred_indexes(&conn)?;
        }
        if (version as usize) < LATEST_VERSION {
            migrations.to_latest(&mut conn)?;
        }
        let get = |key: &str| -> Result<String> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?
                .ok_or_else(not_initialised)
        };
        let identity = Identity { device: get("device")?, walker: get("walker")? };
        Ok(Store { conn, path: path.to_path_buf(), identity, key })
    }

    /// Whether this store's file and photos are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw connection, for benchmarks comparing against plain SQL and for tests.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A context for an action by this store's person on this device at `at`.
    pub fn context(&self, at: impl Into<Timestamp>) -> ActionContext {
        ActionContext::new(self.identity.walker.clone(), self.identity.device.clone(), at)
    }

    /// Runs `f` as one atomic unit: a transaction of its own, or a savepoint inside a `bulk`.
    fn atomically<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let top = self.conn.is_autocommit();
        // IMMEDIATE: take the write lock before reading the document, so two processes on one
        // store never build on the same document state.
        self.conn.execute_batch(if top { "BEGIN IMMEDIATE" } else { "SAVEPOINT action" })?;
        match f(&self.conn) {
            Ok(value) => {
                let end = if top { "COMMIT" } else { "RELEASE action" };
                if let Err(e) = self.conn.execute_batch(end) {
                    let _ =
                        self.conn.execute_batch(if top { "ROLLBACK" } else { "ROLLBACK TO action; RELEASE action" });
                    return Err(e.into());
                }
                Ok(value)
            }
            Err(e) => {
                let _ = self.conn.execute_batch(if top { "ROLLBACK" } else { "ROLLBACK TO action; RELEASE action" });
                Err(e)
            }
        }
    }

    /// Runs many actions in one transaction (imports, the demo generator). Each action inside is
    /// still atomic on its own through a savepoint.
    pub fn bulk<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    // ----- documents on disk -----------------------------------------------------------------

    fn load_automerge(conn: &Connection, id: &str) -> Result<Option<(DocKind, String, AutoCommit)>> {
        let row: Option<(String, String, Vec<u8>, i64)> = conn
            .prepare_cached("SELECT kind, grid, snapshot, chunk_count FROM documents WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        let Some((kind, grid, snapshot, chunks)) = row else {
            return Ok(None);
        };
        let damaged = |message: String| CoreError::DamagedDocument { id: id.to_string(), message };
        let kind = DocKind::parse(&kind).ok_or_else(|| damaged(format!("unknown kind {kind}")))?;
        let mut doc = AutoCommit::load(&snapshot).map_err(|e| damaged(e.to_string()))?;
        if chunks > 0 {
            let mut stmt = conn.prepare_cached("SELECT bytes FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
            let mut rows = stmt.query([id])?;
            while let Some(row) = rows.next()? {
                let bytes: Vec<u8> = row.get(0)?;
                doc.load_incremental(&bytes).map_err(|e| damaged(e.to_string()))?;
            }
        }
        Ok(Some((kind, grid, doc)))
    }

    fn commit_changes(doc: &mut AutoCommit, at: Timestamp, message: &str) {
        docs::commit(doc, at, message);
    }

    fn insert_new_document(
        conn: &Connection,
        header: &DocHeader,
        doc: &mut AutoCommit,
        updated_at: Timestamp,
        to_outbox: bool,
    ) -> Result<()> {
        let bytes = doc.save();
        Self::insert_document_bytes(conn, header, &bytes, updated_at)?;
        if to_outbox {
            Self::push_outbox(conn, &header.id, &bytes, updated_at)?;
        }
        Ok(())
    }

    /// Inserts a document that is new here with `snapshot` as its saved bytes.
    fn insert_document_bytes(
        conn: &Connection,
        header: &DocHeader,
        snapshot: &[u8],
        updated_at: Timestamp,
    ) -> Result<()> {
        let inserted = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO documents (id, kind, grid, snapshot, chunk_count, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)",
            )?
            .execute(params![header.id, header.kind.as_str(), header.grid, snapshot, updated_at.millis()])?;
        if inserted == 0 {
            return Err(CoreError::AlreadyExists { id: header.id.clone() });
        }
        Ok(())
    }

    fn push_outbox(conn: &Connection, id: &str, bytes: &[u8], at: Timestamp) -> Result<()> {
        conn.prepare_cached("INSERT INTO outbox (doc_id, bytes, created_at) VALUES (?1, ?2, ?3)")?.execute(params![
            id,
            bytes,
            at.millis()
        ])?;
        Ok(())
    }

    /// Saves the changes made to `doc` since `before` as one incremental chunk; compacts the
    /// document into a fresh snapshot once enough chunks have piled up.
    fn save_changes(
        conn: &Connection,
        id: &str,
        doc: &mut AutoCommit,
        before: &[ChangeHash],
        updated_at: Timestamp,
        to_outbox: bool,
    ) -> Result<bool> {
        let bytes = doc.save_after(before);
        if bytes.is_empty() {
            return Ok(false);
        }
        let chunks: i64 =
            conn.prepare_cached("SELECT chunk_count FROM documents WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
        if chunks + 1 >= COMPACT_AFTER_CHUNKS {
            let snapshot = doc.save();
            conn.prepare_cached("DELETE FROM doc_chunks WHERE doc_id = ?1")?.execute([id])?;
            conn.prepare_cached(
                "UPDATE documents SET snapshot = ?2, chunk_count = 0,
                    updated_at = MAX(updated_at, ?3) WHERE id = ?1",
            )?
            .execute(params![id, snapshot, updated_at.millis()])?;
        } else {
            conn.prepare_cached("INSERT INTO doc_chunks (doc_id, seq, bytes) VALUES (?1, ?2, ?3)")?
                .execute(params![id, chunks + 1, bytes])?;
            conn.prepare_cached(
                "UPDATE documents SET chunk_count = ?2, updated_at = MAX(updated_at, ?3) WHERE id = ?1",
            )?
            .execute(params![id, chunks + 1, updated_at.millis()])?;
        }
        if to_outbox {
            Self::push_outbox(conn, id, &bytes, updated_at)?;
        }
        Ok(true)
    }

    /// Writes the document's index rows. Returns the time of its latest change as the
    /// document itself records it (the last lifecycle event of a request), where it has one.
    fn reindex(conn: &Connection, kind: DocKind, doc: &AutoCommit) -> Result<Option<Timestamp>> {
        Self::reindex_view(conn, kind, &DocView::new(doc))
    }

    /// [`Self::reindex`] through a view the caller goes on reading the document with.
    fn reindex_view(conn: &Connection, kind: DocKind, doc: &DocView) -> Result<Option<Timestamp>> {
        let id = docs::read_header(doc)?.id;
        let derived = Derived::read(&id, doc)?;
        if derived.kind() != kind {
            return Err(CoreError::DamagedDocument { id, message: format!("expected a {} document", kind.as_str()) });
        }
        derived.write(conn)?;
        Ok(derived.updated_at())
    }

    /// Indexes a document that came from elsewhere, or was merged with changes from elsewhere.
    /// One that cannot be read loses its index rows and is listed in `damaged_documents`
    /// instead of stopping the sync or rebuild it is part of; one that reads again (a later
    /// change repaired it) leaves that list. `Err` only for a storage error.
    fn reindex_received(conn: &Connection, id: &str, doc: &DocView) -> Result<Indexed> {
        match Derived::read(id, doc) {
            Ok(derived) => {
                conn.prepare_cached("DELETE FROM damaged_documents WHERE doc_id = ?1")?.execute([id])?;
                derived.write(conn)?;
                Ok(Indexed::Readable(derived.updated_at()))
            }
            Err(CoreError::Unreadable(u)) => {
                index::unindex(conn, id)?;
                Self::note_damaged(conn, &u)?;
                Ok(Indexed::Damaged)
            }
            Err(e) => Err(e),
        }
    }

    fn note_damaged(conn: &Connection, u: &gridwalk_doc::incoming::Unreadable) -> Result<()> {
        tracing::warn!(doc = %u.doc, field = u.field, "a received document cannot be read: {}", u.message);
        conn.prepare_cached(
            "INSERT INTO damaged_documents (doc_id, field, message) VALUES (?1, ?2, ?3)
             ON CONFLICT (doc_id) DO UPDATE SET field = excluded.field, message = excluded.message",
        )?
        .execute(params![u.doc, u.field, u.message])?;
        Ok(())
    }

    fn listed_damaged(conn: &Connection, id: &str) -> Result<bool> {
        Ok(conn
            .prepare_cached("SELECT 1 FROM damaged_documents WHERE doc_id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The documents this device holds but cannot read (see `reindex_received`), by id.
    pub fn damaged_documents(&self) -> Result<Vec<DamagedDocument>> {
        Ok(self
            .conn
            .prepare_cached("SELECT doc_id, field, message FROM damaged_documents ORDER BY doc_id")?
            .query_map([], |r| Ok(DamagedDocument { doc_id: r.get(0)?, field: r.get(1)?, message: r.get(2)? }))?
            .collect::<Result<_, _>>()?)
    }

    // ----- who may act --------------------------------------------------------------------------

    /// The role this store acts in: the relay's word once enrolled, else what `gridwalk init
    /// --role` recorded, else hall (a store never enrolled is a hall workstation's or a test's;
    /// a phone enrols before it has a store).
    pub fn role(&self) -> Result<Role> {
        for key in ["relay_role", "role"] {
            if let Some(text) = self.meta(key)?.filter(|r| !r.is_empty()) {
                return Role::parse(&text).ok_or_else(|| CoreError::invalid("role", format!("'{text}' is not a role")));
            }
        }
        Ok(Role::Hall)
    }

    /// Records the role of a store that is not enrolled yet (`gridwalk init --role`).
    pub fn set_role(&self, role: Role) -> Result<()> {
        self.set_meta("role", role.as_str())
    }

    /// The office (责任科室) an office-staff store acts for, when it is one.
    pub fn office(&self) -> Result<Option<String>> {
        self.meta("office")
    }

    pub fn set_office(&self, office: &str) -> Result<()> {
        self.set_meta("office", office)
    }

    /// The role, and for office staff the office, that the person in `ctx` acts in here — the
    /// same the relay judges her steps by. A walker's phone acts in its own role, only as its
    /// walker. On a hall or admin PC where staff sign in (once an admin gave anyone a PIN), each
    /// person acts in her own role from the staff roster: an admin signed in acts as an admin, a
    /// leader as a leader; someone the roster does not name, or a colleague without a PIN (whom
    /// nobody can have signed in as), acts in none. Before any PIN exists, the PC's own role.
    pub fn acting_role(&self, ctx: &ActionContext) -> Result<(Role, Option<String>)> {
        let device_role = self.role()?;
        let forbidden = |why: &'static str| {
            CoreError::Forbidden(Forbidden {
                person: ctx.actor.clone(),
                role: device_role.as_str(),
                what: "act on this device",
                why,
            })
        };
        if device_role == Role::Walker {
            if ctx.actor != self.identity.walker {
                return Err(forbidden("a walker's device acts only as the walker it belongs to"));
            }
            return Ok((Role::Walker, None));
        }
        if !self.sign_in_required()? {
            return Ok((device_role, self.office()?));
        }
        let person: Option<(String, Option<String>, bool)> = self
            .conn
            .prepare_cached(
                "SELECT w.role, p.office, p.person IS NOT NULL FROM walkers w
                   LEFT JOIN staff_pins p ON p.person = w.id WHERE w.id = ?1",
            )?
            .query_row([&ctx.actor], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match person {
            None => Err(forbidden("the hall's staff roster does not name this person")),
            Some((role, office, has_pin)) => match Role::parse(&role) {
                // A hall PC may pass a walker's own steps on in her name (she signs nothing here).
                Some(Role::Walker) => Ok((Role::Walker, None)),
                Some(_) if !has_pin => Err(forbidden("this colleague has no PIN, so nobody can have signed in as her")),
                Some(role) => Ok((role, office)),
                None => Err(forbidden("this person's role is unknown")),
            },
        }
    }

    /// Checks the permission table (`gridwalk_doc::permissions`) before a write: may the person
    /// in `ctx`, in the role she acts in here (`acting_role`), take `step` (on a request in
    /// `state`)?
    fn may(&self, ctx: &ActionContext, step: Step, state: Option<&RequestState>) -> Result<()> {
        let (role, office) = self.acting_role(ctx)?;
        let actor = Actor { role, person: &ctx.actor, office: office.as_deref() };
        permissions::permitted(&actor, step, state).map_err(CoreError::Forbidden)
    }

    /// Whether the person in `ctx` may take `action` on a request in `state` here, by the
    /// permission table: what the app offers and what `act` accepts are the same thing.
    pub fn allows(&self, ctx: &ActionContext, state: &RequestState, action: &Action) -> Result<bool> {
        match self.may(ctx, Step::of(action), Some(state)) {
            Ok(()) => Ok(true),
            Err(CoreError::Forbidden(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The rule an action meets that depends on another request, which only a device holding
    /// that request can check (so it lives here, not in the fold every replica runs): a merged
    /// duplicate's reporter is told the outcome only once the request it went into is resolved,
    /// since before that there is no outcome to tell her. Everything else passes.
    pub fn check_linked_request_rule(&self, request_id: &str, state: &RequestState, action: &Action) -> Result<()> {
        Self::check_linked_request(&self.conn, request_id, state, action)
    }

    fn check_linked_request(conn: &Connection, request_id: &str, state: &RequestState, action: &Action) -> Result<()> {
        let (Action::FeedbackGiven { .. }, Some(target)) = (action, &state.merged_into) else {
            return Ok(());
        };
        if state.status != lifecycle::Status::Merged {
            return Ok(());
        }
        let resolved: Option<Option<i64>> = conn
            .prepare_cached("SELECT resolved_at FROM request_index WHERE id = ?1")?
            .query_row([target], |r| r.get(0))
            .optional()?;
        match resolved {
            Some(Some(_)) => Ok(()),
            Some(None) => Err(CoreError::InvalidTransition {
                request: request_id.to_string(),
                action: action.verb(),
                status: state.status.as_str(),
                why: "the request it was merged into is not resolved yet: its reporter is told once it is",
            }),
            None => Err(CoreError::NotFound { kind: "request it was merged into", id: target.clone() }),
        }
    }

    // ----- user actions ------------------------------------------------------------------------

    /// 走访: records a visit. One transaction: document, index rows, last-visit dates, outbox.
    pub fn record_visit(&self, ctx: &ActionContext, visit: NewVisit) -> Result<String> {
        self.may(ctx, Step::RecordVisit, None)?;
        self.atomically(|conn| {
            reference::require_grid(conn, &visit.grid)?;
            if let Some(mg) = &visit.micro_grid {
                reference::require_micro_grid(conn, &visit.grid, mg)?;
            }
            match &visit.target {
                VisitTarget::Household { id } => reference::require_household_in(conn, id, &visit.grid)?,
                VisitTarget::Enterprise { id } => reference::require_enterprise_in(conn, id, &visit.grid)?,
                VisitTarget::Place { address } => {
                    if address.trim().is_empty() {
                        return Err(CoreError::invalid("address", "a visit to a place needs its address"));
                    }
                }
            }
            if let Some(gps) = &visit.gps {
                gps.validate()?;
            }
            let mut walkers = vec![ctx.actor.clone()];
            for w in &visit.other_walkers {
                if !walkers.contains(w) {
                    walkers.push(w.clone());
                }
            }
            let id = visit.id.clone().unwrap_or_else(|| ctx.new_id());
            let body = VisitBody {
                target: visit.target.clone(),
                micro_grid: visit.micro_grid.clone(),
                kind: visit.kind,
                visited_at: visit.visited_at.unwrap_or(ctx.at),
                walkers,
                companions: visit.companions.clone(),
                notes: visit.notes.clone(),
                requests_raised: Vec::new(),
                gps: visit.gps,
            };
            let mut doc = VisitDocument::create(ctx, &id, &visit.grid, &body)?;
            let header = doc.header()?;
            Self::commit_changes(doc.automerge(), ctx.at, "record visit");
            Self::insert_new_document(conn, &header, doc.automerge(), ctx.at, true)?;
            index::index_visit(conn, &header, &body)?;
            Ok(id)
        })
    }

    /// 诉求: raises a request (its first event is `Collected`). When raised on a visit, the visit
    /// lists it too, in the same transaction.
    pub fn raise_request(&self, ctx: &ActionContext, request: NewRequest) -> Result<String> {
        self.may(ctx, Step::RaiseRequest, None)?;
        self.atomically(|conn| {
            reference::require_grid(conn, &request.grid)?;
            if let Some(mg) = &request.micro_grid {
                reference::require_micro_grid(conn, &request.grid, mg)?;
            }
            if crate::model::category(&request.category).is_none() {
                let known: Vec<_> = crate::model::CATEGORIES.iter().map(|c| c.code).collect();
                return Err(CoreError::invalid(
                    "category",
                    format!("'{}' is not a category; use one of {}", request.category, known.join(", ")),
                ));
            }
            if request.description.trim().is_empty() {
                return Err(CoreError::invalid("description", "say what the resident asks for"));
            }
            if let Some(gps) = &request.gps {
                gps.validate()?;
            }
            let mut reporter = request.reporter.clone();
            match &mut reporter {
                // A resident of a known household who gives no number is reached on the
                // household's: the walker need not read it off a list (where it is masked) and
                // type it again.
                Reporter::Resident { household: Some(h), phone, .. } => {
                    let household_phone = reference::phone_of(conn, "households", h)?
                        .ok_or_else(|| CoreError::NotFound { kind: "household", id: h.clone() })?;
                    if phone.as_deref().is_none_or(|p| p.trim().is_empty()) {
                        *phone = household_phone;
                    }
                }
                Reporter::Enterprise { id, .. } => reference::require_enterprise(conn, id)?,
                _ => {}
            }
            let id = request.id.clone().unwrap_or_else(|| ctx.new_id());
            let number = self.next_request_number(conn, ctx)?;
            let body = RequestBody {
                reporter,
                place: Place { address: request.address.clone(), gps: request.gps },
                micro_grid: request.micro_grid.clone(),
                category: request.category.clone(),
                description: request.description.clone(),
                urgency: request.urgency,
                source: request.source,
                visit: request.visit.clone(),
                number: Some(number),
            };
            let mut doc = RequestDocument::create(ctx, &id, &request.grid, &body)?;
            let header = doc.header()?;
            Self::commit_changes(doc.automerge(), ctx.at, "raise request");
            Self::insert_new_document(conn, &header, doc.automerge(), ctx.at, true)?;
            let state = doc.state()?;
            index::index_request(conn, &header, &body, &state, 1)?;

            if let Some(visit_id) = &request.visit {
                let visit_missing = || CoreError::NotFound { kind: "visit", id: visit_id.clone() };
                let Some((DocKind::Visit, visit_grid, mut am)) = Self::load_automerge(conn, visit_id)? else {
                    return Err(visit_missing());
                };
                if visit_grid != request.grid {
                    return Err(CoreError::invalid(
                        "visit",
                        format!("visit {visit_id} was in grid {visit_grid}, not in {}", request.grid),
                    ));
                }
                am.set_actor(docs::actor_for_device(&ctx.device));
                let before = am.get_heads();
                let mut visit = VisitDocument::from_automerge(am);
                visit.add_raised_request(&id)?;
                let am = visit.automerge();
                Self::commit_changes(am, ctx.at, "raise request on visit");
                Self::save_changes(conn, visit_id, am, &before, ctx.at, true)?;
                Self::reindex(conn, DocKind::Visit, am)?;
            }
            Ok(id)
        })
    }

    /// The number the request raised now by `ctx`'s device gets (`gridwalk_doc::numbers`): this
    /// device's relay number when it is this store's own device, and one more than the highest
    /// number it gave that day. The request is written in the same transaction, and the device's
    /// own requests are all in its index, so no number is given twice.
    fn next_request_number(&self, conn: &Connection, ctx: &ActionContext) -> Result<String> {
        let device_number = match self.meta("relay_device_id")? {
            Some(own) if own == ctx.device => self.meta("relay_device_number")?.and_then(|n| n.parse().ok()),
            _ => None,
        };
        let code = crate::numbers::device_code(device_number, &ctx.device);
        let day = crate::numbers::number_day(ctx.at);
        let prefix = crate::numbers::number_prefix(day, &code);
        let last: Option<i64> = conn
            .prepare_cached(
                "SELECT MAX(CAST(substr(number, ?3) AS INTEGER)) FROM request_index
                 WHERE number >= ?1 AND number < ?2",
            )?
            .query_row(params![prefix, format!("{prefix}~"), prefix.len() as i64 + 1], |r| r.get(0))?;
        let seq = u32::try_from(last.unwrap_or(0) + 1).unwrap_or(u32::MAX);
        Ok(crate::numbers::request_number(day, &code, seq))
    }

    /// Applies one lifecycle action to a request: checked against the current state, appended,
    /// saved and re-indexed in one transaction.
    pub fn act(&self, ctx: &ActionContext, request_id: &str, action: Action) -> Result<LifecycleEvent> {
        self.atomically(|conn| {
            let Some((DocKind::Request, _, mut am)) = Self::load_automerge(conn, request_id)? else {
                return Err(CoreError::NotFound { kind: "request", id: request_id.to_string() });
            };
            match &action {
                Action::Assigned { assignment } | Action::Reassigned { assignment, .. } => {
                    reference::require_department(conn, &assignment.department)?;
                }
                Action::Escalated { department: Some(d), .. } => reference::require_department(conn, d)?,
                Action::Triaged { decision: lifecycle::TriageDecision::MergeInto { target } }
                    if index::grid_of_request(conn, target)?.is_none() =>
                {
                    return Err(CoreError::NotFound { kind: "request to merge into", id: target.clone() });
                }
                _ => {}
            }
            am.set_actor(docs::actor_for_device(&ctx.device));
            let before = am.get_heads();
            let mut doc = RequestDocument::from_automerge(am);
            let state = doc.state()?;
            self.may(ctx, Step::of(&action), Some(&state))?;
            Self::check_linked_request(conn, request_id, &state, &action)?;
            let event = doc.apply(ctx, action)?;
            let message = event.action.verb();
            let am = doc.automerge();
            Self::commit_changes(am, ctx.at, message);
            Self::save_changes(conn, request_id, am, &before, ctx.at, true)?;
            Self::reindex(conn, DocKind::Request, am)?;
            Ok(event)
        })
    }

    // ----- reading documents -------------------------------------------------------------------

    pub fn request(&self, id: &str) -> Result<RequestView> {
        let Some((DocKind::Request, _, am)) = Self::load_automerge(&self.conn, id)? else {
            return Err(CoreError::NotFound { kind: "request", id: id.to_string() });
        };
        let mut doc = RequestDocument::from_automerge(am);
        let mut events = doc.events()?;
        lifecycle::fold_order(&mut events);
        let state = doc.state()?;
        let carriers: std::collections::HashMap<String, ChangeHash> = doc.event_changes().into_iter().collect();
        let history = events
            .into_iter()
            .map(|event| {
                let relay_received_at = match carriers.get(&event.id) {
                    Some(hash) => self.receipt_of(id, &hash.0)?,
                    None => None,
                };
                Ok(HistoryEntry { applied: !state.not_applied.contains(&event.id), relay_received_at, event })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RequestView { header: doc.header()?, body: doc.body()?, state, history })
    }

    /// A request's lifecycle events, in no particular order: what a report needs to fold the
    /// request as it stood at an earlier moment, without the rest of [`Self::request`].
    pub fn request_events(&self, id: &str) -> Result<Vec<LifecycleEvent>> {
        let Some((DocKind::Request, _, am)) = Self::load_automerge(&self.conn, id)? else {
            return Err(CoreError::NotFound { kind: "request", id: id.to_string() });
        };
        Ok(RequestDocument::from_automerge(am).events()?)
    }

    pub fn visit(&self, id: &str) -> Result<VisitView> {
        let Some((DocKind::Visit, _, am)) = Self::load_automerge(&self.conn, id)? else {
            return Err(CoreError::NotFound { kind: "visit", id: id.to_string() });
        };
        let doc = VisitDocument::from_automerge(am);
        Ok(VisitView { header: doc.header()?, body: doc.body()? })
    }

    /// The whole document as one Automerge save (what a relay or an export receives).
    pub fn document_bytes(&self, id: &str) -> Result<Vec<u8>> {
        match Self::load_automerge(&self.conn, id)? {
            Some((_, _, mut am)) => Ok(am.save()),
            None => Err(CoreError::NotFound { kind: "document", id: id.to_string() }),
        }
    }

    /// Heads of a document, for comparing replicas.
    pub fn document_heads(&self, id: &str) -> Result<Vec<ChangeHash>> {
        match Self::load_automerge(&self.conn, id)? {
            Some((_, _, mut am)) => {
                let mut heads = am.get_heads();
                heads.sort();
                Ok(heads)
            }
            None => Err(CoreError::NotFound { kind: "document", id: id.to_string() }),
        }
    }

    pub fn document_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT id FROM documents ORDER BY id")?;
        let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    // ----- changes from elsewhere --------------------------------------------------------------

    /// Merges Automerge changes for a document received from another replica (through a relay,
    /// or in tests directly). Creates the document if it is new here. A change that would alter
    /// an existing header is refused and nothing is stored. Received changes do not go into the
    /// outbox: they came from outside.
    pub fn apply_remote(&self, id: &str, bytes: &[u8]) -> Result<bool> {
        // Checking the framing first refuses garbage before the write lock is taken.
        let received = self.decode_remote(id, bytes)?;
        self.atomically(|conn| Self::merge_remote(conn, id, bytes, received))
    }

    /// Checks the framing of bytes received for document `id` and, when the document is
    /// already here, decodes them into changes.
    fn decode_remote(&self, id: &str, bytes: &[u8]) -> Result<Received> {
        docs::split_chunks(bytes)?;
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some();
        let changes = if exists { Some(docs::decode_changes_strict(bytes)?) } else { None };
        Ok(Received { changes })
    }

    /// Merges decoded bytes into document `id`, inside the caller's transaction: the document,
    /// its index rows and the photos it names. Returns whether anything changed.
    fn merge_remote(conn: &Connection, id: &str, bytes: &[u8], received: Received) -> Result<bool> {
        let Received { changes } = received;
        let damaged = |message: String| CoreError::DamagedDocument { id: id.to_string(), message };
        let Some((_, _, mut am)) = Self::load_automerge(conn, id)? else {
            return Self::store_new_document(conn, NewDocument::read(id, bytes)?);
        };
        let old_header = docs::read_header(&am)?;
        let before = am.get_heads();
        let changes = match changes {
            Some(changes) => changes,
            // Another process stored the document between the check and the lock.
            None => docs::decode_changes_strict(bytes)?,
        };
        am.apply_changes(changes).map_err(|e| damaged(e.to_string()))?;
        if !am.get_missing_deps(&[]).is_empty() {
            return Err(damaged("the changes build on changes this device has not received".into()));
        }
        let header = match docs::read_header(&am) {
            Ok(header) if header.id == id => header,
            // The changes are kept (so what comes after them still merges) under the header the
            // document had; the document is listed as damaged and leaves the lists.
            unreadable => {
                let message = match unreadable {
                    Ok(h) => format!("it names another document, {}", h.id),
                    Err(e) => e.to_string(),
                };
                let u = gridwalk_doc::incoming::Unreadable { doc: id.to_string(), field: "header", message };
                index::unindex(conn, id)?;
                Self::note_damaged(conn, &u)?;
                Self::save_changes(conn, id, &mut am, &before, old_header.created_at, false)?;
                return Ok(true);
            }
        };
        check_header_unchanged(&old_header, &header)?;
        if am.get_heads() == before {
            return Ok(false);
        }
        // One view serves the index and the photo list, so each part of the document is read
        // from Automerge once.
        let view = DocView::new(&am);
        let indexed = Self::reindex_received(conn, id, &view)?;
        if let Indexed::Readable(_) = indexed {
            // Photos attached elsewhere arrive with the document that names them; the next
            // photo download fetches them.
            Self::note_wanted_photos(conn, &Self::photos_named(&view))?;
        }
        let updated = match indexed {
            Indexed::Readable(at) => at.unwrap_or(header.created_at),
            Indexed::Damaged => header.created_at,
        };
        Self::save_changes(conn, id, &mut am, &before, updated, false)?;
        if header.kind == DocKind::Roster && matches!(indexed, Indexed::Readable(_)) {
            Self::apply_roster(conn, &am)?;
        }
        Ok(true)
    }

    /// Stores a document new here, read beforehand, inside the caller's transaction. When the
    /// store holds it after all (it came twice in one page, or another process stored it
    /// meanwhile), the bytes are merged into it instead.
    fn store_new_document(conn: &Connection, new: NewDocument) -> Result<bool> {
        let NewDocument { id, header, damaged, roster, derived, wanted_photos, snapshot } = new;
        let exists = conn
            .prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?
            .query_row([&id], |_| Ok(()))
            .optional()?
            .is_some();
        if exists {
            let received = Received { changes: Some(docs::decode_changes_strict(&snapshot)?) };
            return Self::merge_remote(conn, &id, &snapshot, received);
        }
        match &damaged {
            Some(u) => Self::note_damaged(conn, u)?,
            None => {
                conn.prepare_cached("DELETE FROM damaged_documents WHERE doc_id = ?1")?.execute([&id])?;
            }
        }
        // With no readable header there is no kind or grid to file it under: it is only listed.
        let Some(header) = header else { return Ok(false) };
        let updated_at = derived.as_ref().and_then(Derived::updated_at).unwrap_or(header.created_at);
        if let Some(derived) = &derived {
            derived.write(conn)?;
        }
        Self::note_wanted_photos(conn, &wanted_photos)?;
        Self::insert_document_bytes(conn, &header, &snapshot, updated_at)?;
        if let Some(doc) = &roster {
            Self::apply_roster(conn, doc)?;
        }
        Ok(true)
    }

    /// Stores a document built elsewhere (the demo generator) as if it had arrived by sync.
    pub fn import_document(&self, doc: &mut AutoCommit) -> Result<()> {
        let header = docs::read_header(doc)?;
        let bytes = doc.save();
        self.apply_remote(&header.id, &bytes).map(|_| ())
    }

    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self.conn.prepare_cached("SELECT seq, doc_id, bytes FROM outbox ORDER BY seq LIMIT ?1")?;
        let rows = stmt
            .query_map([limit as i64], |r| Ok(OutboxEntry { seq: r.get(0)?, doc_id: r.get(1)?, bytes: r.get(2)? }))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// How many distinct documents have changes waiting to go up.
    pub fn outbox_docs(&self) -> Result<usize> {
        Ok(self.conn.query_row("SELECT COUNT(DISTINCT doc_id) FROM outbox", [], |r| r.get::<_, i64>(0))? as usize)
    }

    pub fn outbox_len(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?)
    }

    /// Puts every document, whole, into the outbox: for a store whose documents never went
    /// through a relay (an imported or generated town) or a hall moving to a new relay. Pushing
    /// what a relay already has costs bytes, never correctness.
    pub fn requeue_all_documents(&mut self, at: Timestamp) -> Result<usize> {
        self.bulk(|store| {
            let ids = store.document_ids()?;
            for id in &ids {
                let bytes = store.document_bytes(id)?;
                Self::push_outbox(&store.conn, id, &bytes, at)?;
            }
            Ok(ids.len())
        })
    }

    /// Forgets outbox entries up to and including `seq`, once a relay has stored them durably.
    pub fn acknowledge_outbox(&self, up_to_seq: i64) -> Result<usize> {
        Ok(self.conn.execute("DELETE FROM outbox WHERE seq <= ?1", [up_to_seq])?)
    }

    // ----- index maintenance -----------------------------------------------------------------

    /// Throws the list indexes away and rebuilds them from the documents, in one transaction.
    pub fn rebuild_index(&self) -> Result<usize> {
        self.atomically(|conn| {
            index::clear(conn)?;
            let ids: Vec<String> = conn
                .prepare("SELECT id FROM documents ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in &ids {
                if let Some((_, _, am)) = Self::load_automerge(conn, id)? {
                    Self::reindex_received(conn, id, &DocView::new(&am))?;
                }
            }
            Ok(ids.len())
        })
    }

    /// Every index row as text, in a fixed order (for comparing stores and rebuilds).
    pub fn index_dump(&self) -> Result<Vec<String>> {
        index::dump(&self.conn)
    }

    /// Checks SQLite's integrity and that the index is exactly what the documents imply. Changes
    /// nothing: the rebuild it compares against is rolled back.
    pub fn check(&self) -> Result<CheckReport> {
        let integrity: String = self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        let documents: i64 = self.conn.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0))?;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let current = index::dump(&self.conn)?;
            index::clear(&self.conn)?;
            let ids: Vec<String> = self
                .conn
                .prepare("SELECT id FROM documents")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut damaged = Vec::new();
            for id in &ids {
                if let Some((_, _, am)) = Self::load_automerge(&self.conn, id)? {
                    if let Err(CoreError::Unreadable(u)) = Derived::read(id, &DocView::new(&am)) {
                        damaged.push(DamagedDocument::from(&u));
                    }
                    Self::reindex_received(&self.conn, id, &DocView::new(&am))?;
                }
            }
            let rebuilt = index::dump(&self.conn)?;
            damaged.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
            Ok::<_, CoreError>((current.len(), current == rebuilt, damaged))
        })();
        self.conn.execute_batch("ROLLBACK")?;
        let (index_rows, index_matches_documents, damaged) = result?;
        Ok(CheckReport { integrity, documents, index_matches_documents, index_rows, damaged })
    }

    /// Saves every document whole again and drops its incremental chunks.
    pub fn compact(&self) -> Result<usize> {
        self.atomically(|conn| {
            let ids: Vec<String> = conn
                .prepare("SELECT id FROM documents WHERE chunk_count > 0")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in &ids {
                if let Some((_, _, mut am)) = Self::load_automerge(conn, id)? {
                    let snapshot = am.save();
                    conn.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [id])?;
                    conn.execute(
                        "UPDATE documents SET snapshot = ?2, chunk_count = 0 WHERE id = ?1",
                        params![id, snapshot],
                    )?;
                }
            }
            Ok(ids.len())
        })
    }
}

fn check_header_unchanged(old: &DocHeader, new: &DocHeader) -> Result<()> {
    let field = if old.id != new.id {
        "id"
    } else if old.kind != new.kind {
        "kind"
    } else if old.grid != new.grid {
        "grid"
    } else if old.created_at != new.created_at {
        "created_at"
    } else if old.created_by != new.created_by {
        "created_by"
    } else {
        return Ok(());
    };
    Err(CoreError::HeaderChanged { id: old.id.clone(), field })
}

//! Where the relay keeps devices, enrolment codes, documents and changes.
//!
//! Storage sits behind [`RelayStore`] so the relay can move from its embedded SQLite file onto
//! PostgreSQL when one hall server is no longer enough; the relay logic only ever talks to the
//! trait. Every write that acknowledges a push is committed durably before the call returns.
//!
//! A store serves many callers at once (`&self`): the relay decodes and checks a push's
//! Automerge outside any database lock and hands the store only finished writes. Every
//! implementation passes one conformance suite (`tests/conformance.rs`): [`MemoryRelayStore`]
//! for the deterministic tests, [`SqliteRelayStore`] (the embedded default) and
//! [`PostgresRelayStore`] (several relays on one database).

use std::path::{Path, PathBuf};

use thiserror::Error;

pub mod chain;
mod dump;
mod memory;
mod postgres;
mod sqlite;

pub use self::postgres::PostgresRelayStore;
pub use dump::{DumpChange, DumpDevice, DumpEnrollment, DumpHandover, RelayDump};
pub use memory::MemoryRelayStore;
pub use sqlite::SqliteRelayStore;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("relay storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("relay schema migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// A document changed between preparing a push and storing it.
    #[error("document {doc} changed while the push was prepared")]
    Conflict { doc: String },
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("relay storage (PostgreSQL): {0}")]
    Postgres(String),
    /// A row the store wrote cannot be written or read back as its type.
    #[error("relay storage: {0}")]
    Encoding(String),
}

/// A hand-over as the stores keep it, in JSON.
pub(crate) fn handover_json(h: &Handover) -> StoreResult<String> {
    serde_json::to_string(h).map_err(|e| StoreError::Encoding(format!("cannot write a hand-over: {e}")))
}

pub(crate) fn handover_from_json(body: &str) -> StoreResult<Handover> {
    serde_json::from_str(body).map_err(|e| StoreError::Encoding(format!("a stored hand-over does not read: {e}")))
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Walker,
    Hall,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Walker => "walker",
            Role::Hall => "hall",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "walker" => Some(Role::Walker),
            "hall" => Some(Role::Hall),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An enrolled, authenticated device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// For walkers, the grids it may see; hall and admin devices see every grid.
    pub grids: Vec<String>,
    /// The walker (person) a walker's phone is bound to at enrolment: every event it pushes
    /// must be hers.
    pub walker: Option<String>,
    /// Its short number, given at enrolment: the middle of its request numbers
    /// (`gridwalk_doc::numbers`). Devices from before numbers were given have one by migration.
    pub number: Option<u32>,
    /// Grids the hall moved a walker's phone off that still take its pushes (never its pulls)
    /// until the phone says it has forgotten them: what it recorded there before it heard of
    /// the move is sent, not lost.
    pub leaving: Vec<LeavingGrid>,
}

/// A grid a walker's phone was moved off (see [`Device::leaving`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeavingGrid {
    pub grid: String,
    /// When the hall moved it off (the relay's clock): only what was recorded before may come.
    pub since: i64,
}

/// How long a grid left stays open to what a phone recorded there before the move: a phone
/// that does not sync for this long has its last work there refused.
pub const LEAVING_GRID_DAYS: i64 = 30;

impl Device {
    pub fn may_see(&self, grid: &str) -> bool {
        self.role != Role::Walker || self.grids.iter().any(|g| g == grid)
    }
    /// `None` means every grid.
    pub fn scope(&self) -> Option<&[String]> {
        (self.role == Role::Walker).then_some(self.grids.as_slice())
    }
    /// Whether the device may push to `grid`: a grid it sees, or one it is leaving.
    pub fn may_push(&self, grid: &str) -> bool {
        self.may_see(grid) || self.leaving_since(grid).is_some()
    }
    /// When the device was moved off `grid`, if it is leaving it.
    pub fn leaving_since(&self, grid: &str) -> Option<i64> {
        self.leaving.iter().find(|l| l.grid == grid).map(|l| l.since)
    }
    /// The grids it may push to (`None`: every grid).
    pub fn push_scope(&self) -> Option<Vec<String>> {
        (self.role == Role::Walker)
            .then(|| self.grids.iter().cloned().chain(self.leaving.iter().map(|l| l.grid.clone())).collect())
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceInfo {
    pub id: String,
    /// The device's short number, given at enrolment (1, 2, 3…): part of every request number
    /// the device gives, which is how those stay unique without the devices talking.
    pub number: Option<i64>,
    pub name: String,
    pub role: String,
    pub grids: Vec<String>,
    pub enrolled_at: i64,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// When the device, told it was revoked, confirmed it destroyed its key and its records.
    pub wiped_at: Option<i64>,
    /// Grids it was moved off whose unsent work it has not yet said it sent and forgot.
    pub leaving_grids: Vec<LeavingGrid>,
}

/// A redeemed enrolment: what it was for, and the device it made (or made before, for a retry).
#[derive(Debug, Clone)]
pub struct Redeemed {
    pub enrollment: Enrollment,
    pub device_id: String,
    /// The device's short number (see [`DeviceInfo::number`]); the same on a retry.
    pub device_number: i64,
}

/// A pending enrolment.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub device_name: String,
    pub role: Role,
    pub grids: Vec<String>,
    /// The walker (person) the device is for, so the app knows whose phone it is.
    pub walker: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    pub id: String,
    pub grid: String,
    pub kind: String,
    pub snapshot: Vec<u8>,
    pub first_seq: i64,
    pub last_seq: i64,
}

/// One new change to store.
#[derive(Debug, Clone)]
pub struct NewChange {
    pub hash: [u8; 32],
    pub bytes: Vec<u8>,
}

/// Everything a push writes for one document.
#[derive(Debug, Clone)]
pub struct DocWrite {
    pub id: String,
    pub grid: String,
    pub kind: String,
    pub snapshot: Vec<u8>,
    pub new_changes: Vec<NewChange>,
    /// The blob (photo) ids the document names after this push: they replace what it named
    /// before.
    pub blob_refs: Vec<String>,
    /// The document's `last_seq` when the push was prepared from it; `None` for a document
    /// new to the relay.
    pub base_last_seq: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub seq: i64,
    pub doc_id: String,
    pub hash: [u8; 32],
    pub bytes: Vec<u8>,
    pub received_at: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub devices: i64,
    pub revoked_devices: i64,
    pub documents: i64,
    pub changes: i64,
    pub change_bytes: i64,
    pub snapshot_bytes: i64,
}

/// Where a forgotten-PIN phone's hand-over stands (see `crate::handover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverState {
    /// The new enrolment asked; the hall has not confirmed it is the same walker.
    Pending,
    /// The hall confirmed: the old store's key waits, wrapped for the new enrolment only.
    Released,
    /// The new enrolment took the old store's unsent work over and destroyed the old store.
    Done,
}

impl HandoverState {
    pub fn as_str(self) -> &'static str {
        match self {
            HandoverState::Pending => "pending",
            HandoverState::Released => "released",
            HandoverState::Done => "done",
        }
    }
}

/// One hand-over of a set-aside store's unsent work from the device it was made on to the
/// same walker's new enrolment. Kept whole as JSON by every store; only `from_device` (one
/// hand-over per old device) and `state` (changed by compare-and-swap) are columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Handover {
    /// The device the store was made on (its id inside the escrowed key, checked by the relay).
    pub from_device: String,
    /// The new enrolment that asked for it.
    pub to_device: String,
    /// The walker both devices belong to.
    pub walker: String,
    pub state: HandoverState,
    pub requested_at: i64,
    /// The old store's key as the old phone escrowed it: age-encrypted to the relay's escrow
    /// key, hex. Opened by the relay only when the hall confirms.
    pub escrowed: String,
    /// The age recipient the new enrolment made for this hand-over: the key is released to it.
    pub reply_recipient: String,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<i64>,
    /// The old store's key, age-encrypted to `reply_recipient`, hex (once released).
    pub released_key: Option<String>,
    pub done_at: Option<i64>,
    /// What the new enrolment took over, as it reported when done.
    pub taken_documents: Option<u32>,
    pub taken_photos: Option<u32>,
}

/// One access-log line as the relay keeps it (see `gridwalk_protocol::AccessLine`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAccess {
    pub device_id: String,
    pub line: gridwalk_protocol::AccessLine,
    pub received_at: i64,
}

/// How stale a device's last contact time may get before a request writes it again.
pub const LAST_SEEN_RESOLUTION_MS: i64 = 60_000;

pub trait RelayStore: Send + Sync {
    fn create_enrollment(
        &self,
        code_hash: &[u8; 32],
        e: &Enrollment,
        created_at: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Marks the code used and creates the device with the next free short number, atomically,
    /// remembering the device key the
    /// enrolling app sent. A code already used answers again, for the same device with a new
    /// token, when the same device key comes back (the first reply was lost on the way); `None`
    /// if the code is unknown or expired, or used by another key.
    fn redeem_enrollment(
        &self,
        code_hash: &[u8; 32],
        device_id: &str,
        token_hash: &[u8; 32],
        now: i64,
        device_key_hash: Option<&[u8; 32]>,
    ) -> StoreResult<Option<Redeemed>>;
    fn device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Device>>;
    /// The walker a device (revoked or not) was enrolled for; `None` for a device that is not a
    /// walker's phone, or that this relay never enrolled.
    fn device_walker(&self, id: &str) -> StoreResult<Option<String>>;
    /// Records the device's last contact, to within [`LAST_SEEN_RESOLUTION_MS`].
    fn touch_device(&self, id: &str, now: i64) -> StoreResult<()>;
    fn devices(&self) -> StoreResult<Vec<DeviceInfo>>;
    fn revoke(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// Gives an active device these grids instead of its own (the hall moved its walker);
    /// false when there is no such active device. The grids it had and no longer has become
    /// its leaving grids (see [`Device::leaving`]); a grid given back is no longer leaving.
    fn set_device_grids(&self, id: &str, grids: &[String], now: i64) -> StoreResult<bool>;
    /// The device has forgotten the grids it left: they take nothing more from it. Only while
    /// it serves exactly `holds` (what the phone holds now): a phone that forgot its grids
    /// before a second move does not close the grids of that move. False when nothing changed.
    fn finish_leaving(&self, id: &str, holds: &[String]) -> StoreResult<bool>;
    /// The id of the revoked device this token belonged to, if it belonged to one.
    fn revoked_device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<String>>;
    /// Records that a revoked device wiped itself; false when it is not revoked or already
    /// recorded (the first confirmation counts).
    fn record_wipe(&self, id: &str, now: i64) -> StoreResult<bool>;
    fn load_doc(&self, id: &str) -> StoreResult<Option<StoredDoc>>;
    /// Writes a push in one durable transaction; returns how many changes were new. Refuses
    /// the whole push with [`StoreError::Conflict`], writing nothing, when a document changed
    /// since the push was prepared from it (its `last_seq` is no longer `base_last_seq`): the
    /// relay prepares it again from the new state. Pushes are prepared outside any lock, so
    /// two devices may push to one document at once; this is what keeps both.
    fn store_push(&self, writes: &[DocWrite], device: &str, received_at: i64) -> StoreResult<u32>;
    fn max_seq(&self) -> StoreResult<i64>;
    /// Changes after `after_seq` in `scope`, leaving out those `except_device` pushed itself.
    fn changes_since(
        &self,
        after_seq: i64,
        scope: Option<&[String]>,
        except_device: &str,
        limit: usize,
    ) -> StoreResult<Vec<ChangeRow>>;
    /// Documents after `after_id` in `scope`, leaving out those made only of `except_device`'s
    /// own changes.
    fn docs_after(
        &self,
        after_id: &str,
        scope: Option<&[String]>,
        except_device: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredDoc>>;
    fn receipts(&self, doc_id: &str) -> StoreResult<Vec<([u8; 32], i64)>>;
    /// Every change of a document, in the order the relay received them (an order in which
    /// each change's dependencies come before it).
    fn doc_changes(&self, doc_id: &str) -> StoreResult<Vec<ChangeRow>>;
    /// Whether a document in `scope` (`None`: any grid) names this blob.
    fn blob_referenced(&self, hash: &str, scope: Option<&[String]>) -> StoreResult<bool>;
    /// The grids whose documents name this blob.
    fn blob_grids(&self, hash: &str) -> StoreResult<Vec<String>>;
    /// Records that the photo may be read in these grids: it was uploaded by a device entitled
    /// to them, or named there by a push from a device that may see it.
    fn grant_blob(&self, hash: &str, grids: &[String]) -> StoreResult<()>;
    /// Whether the photo may be read in some grid of `scope` (`None`: in any grid).
    fn blob_granted(&self, hash: &str, scope: Option<&[String]>) -> StoreResult<bool>;
    fn backup(&self, to: &Path) -> StoreResult<()>;
    /// A relay-wide setting every relay on one database shares (the escrow key): the stored
    /// value, or `value` stored now when there is none. Two relays asking at once both get the
    /// one that was stored first.
    fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String>;
    /// Records a new hand-over; when the old device already has one, that one is returned
    /// unchanged (a retry, or another enrolment asking for the same store).
    fn insert_handover(&self, handover: &Handover) -> StoreResult<Handover>;
    /// Every hand-over, oldest first.
    fn handovers(&self) -> StoreResult<Vec<Handover>>;
    /// Replaces the old device's hand-over with `next` only if it still stands in state
    /// `expected`: false when it does not (another relay moved it first).
    fn update_handover(&self, expected: HandoverState, next: &Handover) -> StoreResult<bool>;
    /// Keeps a device's access-log lines, each once (a line sent again after a lost reply is
    /// not kept twice); returns how many were new. Durable before it returns.
    fn store_access(&self, device: &str, lines: &[gridwalk_protocol::AccessLine], received_at: i64)
        -> StoreResult<u32>;
    /// The newest `limit` lines of every device, newest first (by when the relay received them,
    /// then the device's time: a device's clock cannot push others' lines out of view).
    fn access_log(&self, limit: usize) -> StoreResult<Vec<StoredAccess>>;
    fn stats(&self) -> StoreResult<Stats>;
    /// Where this store keeps blob (photo) files by default. A store that lives in a file keeps
    /// them beside it, so a relay opened on a data directory finds its photos there; a store on
    /// a database server has no such place and the relay is given one
    /// ([`crate::relay::Relay::with_blob_dir`]).
    fn blob_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Where this store keeps photos by default: files in `blob_dir`, or a store of its own
    /// (PostgreSQL keeps them in the database, shared by every relay on it).
    fn blob_store(&self) -> Option<Box<dyn crate::blobs::BlobStore>> {
        self.blob_dir().map(|dir| Box::new(crate::blobs::BlobFiles::new(dir)) as Box<dyn crate::blobs::BlobStore>)
    }
}

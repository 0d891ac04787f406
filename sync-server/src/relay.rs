//! The relay's logic, free of HTTP: enrolment, authentication, push and pull. The HTTP layer
//! (`http.rs`) and the deterministic in-memory tests both drive this same code.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use automerge::AutoCommit;
use gridwalk_doc::doc_view::DocView;
use gridwalk_doc::docs::{self, DocHeader};
use gridwalk_doc::incoming;
use gridwalk_doc::photos as attach;
use gridwalk_doc::Clock;
use gridwalk_protocol::validate_blob_id as validate_hash;
use gridwalk_protocol::{
    BlobStatus, DocChanges, DocReceipts, EnrollRequest, EnrollResponse, PullResponse, PulledDoc, PushRequest,
    PushResponse, Receipt, MAX_BLOB_BYTES, PROTOCOL_VERSION,
};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::blobs::{BlobError, BlobFiles, BlobSlice, BlobStore, ByteRange};
use crate::store::{Device, DocWrite, Enrollment, NewChange, RelayStore, Role, StoreError};

/// One pushed document, decoded and checked, ready to store.
struct PreparedDoc {
    /// `None` when the push holds nothing new for it.
    write: Option<DocWrite>,
    duplicates: u32,
    /// Every change hash of the push for this document, new or not.
    hashes: Vec<[u8; 32]>,
    /// Photos the relay holds that the document names for the first time (checked: the pusher
    /// may see them); once stored, they may be read in the document's grid too.
    newly_named_photos: Vec<String>,
}

/// How often a push is prepared again when its documents keep changing under it.
const MAX_PUSH_ATTEMPTS: u32 = 16;

/// Limits that keep one device from exhausting the relay.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_docs_per_push: usize,
    /// A document's full saved size after a push.
    pub max_document_bytes: usize,
    pub max_pull_page: usize,
    pub enrollment_ttl_hours: i64,
    /// The largest blob (photo) accepted.
    pub max_blob_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_docs_per_push: 5_000,
            max_document_bytes: 4 * 1024 * 1024,
            max_pull_page: 2_000,
            enrollment_ttl_hours: 24,
            max_blob_bytes: MAX_BLOB_BYTES,
        }
    }
}

/// An error as a device sees it: an HTTP status, a stable code and an explanation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RelayError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl RelayError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        RelayError { status, code, message: message.into() }
    }
    pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "unknown or revoked device token; enrol this device again")
    }
    fn revoked() -> Self {
        Self::new(
            401,
            "device_revoked",
            "the hall revoked this device: it must destroy its records and be enrolled again to work",
        )
    }
    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }
}

impl From<BlobError> for RelayError {
    fn from(e: BlobError) -> Self {
        let message = e.to_string();
        match e {
            BlobError::BadId(_) => RelayError::bad("bad_blob_id", message),
            BlobError::WrongOffset { .. } => RelayError::new(409, "wrong_offset", message),
            BlobError::TooLarge { .. } => RelayError::new(413, "blob_too_large", message),
            BlobError::BadChunk(_) => RelayError::bad("bad_chunk", message),
            BlobError::HashMismatch => RelayError::bad("hash_mismatch", message),
            BlobError::NotFound => RelayError::new(404, "blob_not_found", message),
            BlobError::RangeNotSatisfiable { .. } => RelayError::new(416, "range_not_satisfiable", message),
            BlobError::Io(e) => {
                tracing::error!(error = %e, "relay blob storage failed");
                RelayError::new(
                    503,
                    "storage_unavailable",
                    "the relay could not write or read its photo files; try again shortly",
                )
            }
        }
    }
}

impl From<StoreError> for RelayError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "relay storage failed");
        RelayError::new(503, "storage_unavailable", "the relay could not reach its storage; try again shortly")
    }
}

pub type RelayResult<T> = Result<T, RelayError>;

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Letters that cannot be mistaken for one another when read aloud or typed on a phone.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

fn random_code() -> String {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char).collect()
}

fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

pub struct Relay {
    /// Serves many callers at once; the relay holds no lock of its own around it.
    store: Box<dyn RelayStore>,
    clock: Arc<dyn Clock>,
    /// Photos; `None` when the store has no place for them and none was given.
    blobs: Option<Box<dyn BlobStore>>,
    /// The folder photos are kept in, when they are files (for backups and moves).
    blob_dir: Option<std::path::PathBuf>,
    pub limits: Limits,
    /// The escrow key phones wrap their store keys to (see `crate::handover`).
    pub(crate) escrow: crate::handover::EscrowKey,
    /// The key revocations are signed with (see `crate::signing`).
    pub(crate) signing: crate::signing::RelaySigningKey,
}

/// A cursor says where a device's next pull begins.
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    /// Handing out whole documents, ordered by id, up to change `high_water`.
    Snapshots { high_water: i64, after_id: String },
    /// Handing out changes after `seq`.
    Changes { seq: i64 },
}

impl Cursor {
    fn parse(text: &str) -> RelayResult<Option<Cursor>> {
        if text.is_empty() {
            return Ok(None);
        }
        let bad = || RelayError::bad("bad_cursor", format!("'{text}' is not a cursor this relay issued"));
        if let Some(rest) = text.strip_prefix('c') {
            let seq = rest.parse::<i64>().map_err(|_| bad())?;
            return if seq >= 0 { Ok(Some(Cursor::Changes { seq })) } else { Err(bad()) };
        }
        if let Some(rest) = text.strip_prefix('s') {
            let (hw, after) = rest.split_once(':').ok_or_else(bad)?;
            let high_water = hw.parse::<i64>().map_err(|_| bad())?;
            return Ok(Some(Cursor::Snapshots { high_water, after_id: after.to_string() }));
        }
        Err(bad())
    }
    fn text(&self) -> String {
        match self {
            Cursor::Snapshots { high_water, after_id } => format!("s{high_water}:{after_id}"),
            Cursor::Changes { seq } => format!("c{seq}"),
        }
    }
}

impl Relay {
    /// A relay over `store`, keeping photos where the store keeps them by default: files beside
    /// an SQLite file, rows in a PostgreSQL database (shared by every relay on it).
    pub fn new(store: Box<dyn RelayStore>, clock: Arc<dyn Clock>) -> Self {
        let blob_dir = store.blob_dir();
        let blobs = store.blob_store();
        Relay {
            store,
            clock,
            blobs,
            blob_dir,
            limits: Limits::default(),
            escrow: crate::handover::EscrowKey::new(),
            signing: crate::signing::RelaySigningKey::new(),
        }
    }

    /// Keeps photo files under `dir` instead.
    pub fn with_blob_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        let dir = dir.into();
        self.blobs = Some(Box::new(BlobFiles::new(&dir)));
        self.blob_dir = Some(dir);
        self
    }

    /// Keeps photos in `blobs` instead.
    pub fn with_blob_store(mut self, blobs: Box<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self.blob_dir = None;
        self
    }

    /// Where photo files are kept, when they are files.
    pub fn blob_dir(&self) -> Option<&std::path::Path> {
        self.blob_dir.as_deref()
    }

    /// Where photos are kept, if anywhere.
    pub fn blob_store(&self) -> Option<&dyn BlobStore> {
        self.blobs.as_deref()
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    pub(crate) fn store(&self) -> &dyn RelayStore {
        &*self.store
    }

    /// Creates a one-time enrolment code for a device (admin, on the relay machine).
    pub fn create_enrollment(&self, device_name: &str, role: Role, grids: &[String]) -> RelayResult<String> {
        self.create_enrollment_for(device_name, role, grids, None)
    }

    /// Like [`Relay::create_enrollment`], naming the walker (person) the device is for; the
    /// device learns it when it enrols, so her phone knows whose records it writes.
    pub fn create_enrollment_for(
        &self,
        device_name: &str,
        role: Role,
        grids: &[String],
        walker: Option<&str>,
    ) -> RelayResult<String> {
        Ok(self.create_enrollment_until(device_name, role, grids, walker)?.0)
    }

    /// [`Relay::create_enrollment_for`], with the moment the code stops working (milliseconds).
    pub fn create_enrollment_until(
        &self,
        device_name: &str,
        role: Role,
        grids: &[String],
        walker: Option<&str>,
    ) -> RelayResult<(String, i64)> {
        self.create_enrollment_within(device_name, role, grids, walker, self.limits.enrollment_ttl_hours * 3_600_000)
    }

    /// [`Relay::create_enrollment_until`] with a code that works for `ttl_ms` only.
    pub fn create_enrollment_within(
        &self,
        device_name: &str,
        role: Role,
        grids: &[String],
        walker: Option<&str>,
        ttl_ms: i64,
    ) -> RelayResult<(String, i64)> {
        if walker.is_some_and(|w| w.trim().is_empty() || w.contains(',')) {
            return Err(RelayError::bad("invalid_input", "a walker id must not be empty or contain a comma"));
        }
        if device_name.trim().is_empty() {
            return Err(RelayError::bad("invalid_input", "the device needs a name"));
        }
        if role == Role::Walker && grids.is_empty() {
            return Err(RelayError::bad("invalid_input", "a walker's device needs at least one grid"));
        }
        // The staff roster's grid carries the hall's PIN hashes: no device is enrolled "for" it.
        if grids.iter().any(|g| g == gridwalk_doc::roster::STAFF_GRID) {
            return Err(RelayError::bad(
                "invalid_input",
                "the _hall grid holds the staff roster; it is no area to walk",
            ));
        }
        let code = random_code();
        let now = self.now();
        let expires = now + ttl_ms;
        let e = Enrollment {
            device_name: device_name.to_string(),
            role,
            grids: grids.to_vec(),
            walker: walker.map(|w| w.trim().to_string()),
        };
        self.store().create_enrollment(&sha256(normalise_code(&code).as_bytes()), &e, now, expires)?;
        Ok((code, expires))
    }

    pub fn enroll(&self, req: &EnrollRequest) -> RelayResult<EnrollResponse> {
        let code = normalise_code(&req.code);
        if code.is_empty() {
            return Err(RelayError::bad("invalid_input", "type the enrolment code shown at the hall"));
        }
        let mut id_bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut id_bytes);
        let device_id = format!("dev-{}", hex::encode(id_bytes));
        let mut token_bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut token_bytes);
        let token = hex::encode(token_bytes);
        let key = req.device_key.as_deref().filter(|k| !k.is_empty()).map(|k| sha256(k.as_bytes()));
        let enrolled = self.store().redeem_enrollment(
            &sha256(code.as_bytes()),
            &device_id,
            &sha256(token.as_bytes()),
            self.now(),
            key.as_ref(),
        )?;
        match enrolled {
            Some(crate::store::Redeemed { enrollment: e, device_id, device_number }) => {
                tracing::info!(device = %device_id, name = %e.device_name, role = e.role.as_str(), "device enrolled");
                Ok(EnrollResponse {
                    device_id,
                    token,
                    role: e.role.as_str().to_string(),
                    grids: e.grids,
                    walker: e.walker,
                    device_number: u32::try_from(device_number).ok(),
                    staff_sign_in: e.role != Role::Walker && staff_on_roster(self.store())?.is_some(),
                    relay_key: Some(self.relay_key()?),
                })
            }
            None => Err(RelayError::new(
                401,
                "bad_enrollment_code",
                "this enrolment code is unknown, used or expired; ask the hall for a new one",
            )),
        }
    }

    pub fn authenticate(&self, token: &str) -> RelayResult<Device> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RelayError::unauthorized());
        }
        let store = self.store();
        let token_hash = sha256(token.as_bytes());
        let Some(device) = store.device_by_token(&token_hash)? else {
            // A revoked device is told so, by its own token: it then destroys its key and its
            // records (issue 14) and confirms with `confirm_wipe`. An unknown token is only
            // "unauthorized": a device must never wipe itself because it met a relay (or an
            // address) that does not know it.
            if store.revoked_device_by_token(&token_hash)?.is_some() {
                return Err(RelayError::revoked());
            }
            return Err(RelayError::unauthorized());
        };
        let now = self.now();
        store.touch_device(&device.id, now)?;
        // A grid left long ago takes nothing more, whether or not the phone ever said it forgot it.
        let mut device = device;
        device.leaving.retain(|l| now - l.since < crate::store::LEAVING_GRID_DAYS * 86_400_000);
        Ok(device)
    }

    /// Moves a walker's phone to other grids (the hall gave its walker other grids): from its
    /// next request on it sees only those, and at its next sync it forgets the records of a
    /// grid it left (`GET /v1/device` tells it).
    pub fn set_device_grids(&self, id: &str, grids: &[String]) -> RelayResult<bool> {
        let grids: Vec<String> = grids.iter().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect();
        if grids.is_empty() {
            return Err(RelayError::bad("no_grids", "give the grids the device serves from now on"));
        }
        let Some(device) = self.store().devices()?.into_iter().find(|d| d.id == id && d.revoked_at.is_none()) else {
            return Ok(false);
        };
        if device.role != Role::Walker.as_str() {
            return Err(RelayError::bad("not_a_walker", "hall and admin devices see every grid"));
        }
        if grids.iter().any(|g| g == gridwalk_doc::roster::STAFF_GRID) {
            return Err(RelayError::bad("unknown_grid", "the staff list is no grid a phone serves"));
        }
        let unknown = self.unknown_grids(&grids)?;
        if !unknown.is_empty() {
            return Err(RelayError::bad(
                "unknown_grid",
                format!(
                    "the hall has published no roster for grid {}: check the grid id (a phone given a grid the hall \
                     does not serve would record what nobody receives)",
                    unknown.join(", ")
                ),
            ));
        }
        Ok(self.store().set_device_grids(id, &grids, self.now())?)
    }

    /// A walker's phone moved to other grids has sent what it recorded in the grids it left and
    /// forgotten them: they take nothing more from it.
    /// `holds` is what the phone serves now: a phone that forgot its grids before a second move
    /// does not close the grids of that move (409 `grids_changed`; it is asked again).
    pub fn finish_leaving(&self, device: &Device, holds: &[String]) -> RelayResult<()> {
        if self.store().finish_leaving(&device.id, holds)? {
            tracing::info!(device = %device.id, left = ?device.leaving, "a moved phone forgot the grids it left");
            return Ok(());
        }
        let mut serves = device.grids.clone();
        let mut holds = holds.to_vec();
        serves.sort();
        holds.sort();
        holds.dedup();
        if serves != holds {
            return Err(RelayError::new(
                409,
                "grids_changed",
                "the hall moved this phone again; follow the move before saying the grids left are forgotten",
            ));
        }
        Ok(())
    }

    /// Those of `grids` the hall has published no roster for, once it has published any (a
    /// relay whose hall has published none yet cannot tell, and takes every grid).
    fn unknown_grids(&self, grids: &[String]) -> RelayResult<Vec<String>> {
        let store = self.store();
        // The staff roster is no grid's: it sorts first among rosters, so two are read.
        let staff = gridwalk_doc::roster::staff_roster_id();
        let any_roster =
            store.docs_after("roster-", None, "", 2)?.iter().any(|d| d.id.starts_with("roster-") && d.id != staff);
        if !any_roster {
            return Ok(Vec::new());
        }
        let mut unknown = Vec::new();
        for grid in grids {
            if store.load_doc(&gridwalk_doc::roster::roster_id(grid))?.is_none() {
                unknown.push(grid.clone());
            }
        }
        Ok(unknown)
    }

    /// A revoked device confirms it destroyed its key and its records: the hall sees "wiped
    /// at" in `gridwalk-relay devices`. Only a revoked device's own token is accepted here;
    /// the first confirmation counts and a repeat is answered the same.
    pub fn confirm_wipe(&self, token: &str) -> RelayResult<()> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RelayError::unauthorized());
        }
        let store = self.store();
        let id = store
            .revoked_device_by_token(&sha256(token.as_bytes()))?
            .ok_or_else(|| RelayError::new(403, "not_revoked", "only a device the hall revoked confirms a wipe"))?;
        if store.record_wipe(&id, self.now())? {
            tracing::info!(device = %id, "a revoked device confirmed it wiped its records");
        }
        Ok(())
    }

    /// Validates every document of a push, then stores all of it in one durable transaction.
    /// Nothing is stored unless everything is valid.
    pub fn push(&self, device: &Device, req: &PushRequest) -> RelayResult<PushResponse> {
        self.push_within(device, req, MAX_PUSH_ATTEMPTS, None)
    }

    /// `push`, giving up with 409 `conflict` when another push changed one of its documents
    /// `attempts` times while it was prepared. The relay's own writes use one attempt: a change
    /// decided on one state must not be merged onto another.
    ///
    /// `expected_base`: the version (last sequence number, `None` for a new document) the
    /// writer decided its change on. A push whose documents stand elsewhere now is refused with
    /// `conflict` before it is stored: the relay's own staff-list writes are decided on one
    /// version and must never be merged onto another.
    pub(crate) fn push_within(
        &self,
        device: &Device,
        req: &PushRequest,
        attempts: u32,
        expected_base: Option<Option<i64>>,
    ) -> RelayResult<PushResponse> {
        if req.version != PROTOCOL_VERSION {
            return Err(RelayError::bad(
                "protocol_version",
                format!("this relay speaks protocol {PROTOCOL_VERSION}, the device sent {}", req.version),
            ));
        }
        if req.docs.len() > self.limits.max_docs_per_push {
            return Err(RelayError::new(
                413,
                "too_many_documents",
                format!("at most {} documents per push", self.limits.max_docs_per_push),
            ));
        }
        let mut seen = HashSet::new();
        for d in &req.docs {
            if !seen.insert(d.doc_id.as_str()) {
                return Err(RelayError::bad(
                    "duplicate_document",
                    format!("document {} appears twice in one push", d.doc_id),
                ));
            }
        }
        let store = self.store();
        // The people who may act on a hall PC, read once for the whole push.
        let staff = staff_on_roster(store)?;
        // The push is prepared (decoded, merged, checked) outside any lock. If another push
        // changed one of its documents meanwhile, the store refuses it whole and it is prepared
        // again from the new state; each round makes progress, since the other push committed.
        let mut attempt = 0;
        let (writes, duplicates, pushed, stored, received_at) = loop {
            attempt += 1;
            let mut writes = Vec::with_capacity(req.docs.len());
            let mut duplicates = 0u32;
            let mut pushed = Vec::with_capacity(req.docs.len());
            let mut newly_named = Vec::new();
            for d in &req.docs {
                let prepared = self.prepare_write(store, device, d, staff.as_ref())?;
                duplicates += prepared.duplicates;
                pushed.push((d.doc_id.clone(), prepared.hashes));
                if let Some(w) = prepared.write {
                    newly_named.extend(prepared.newly_named_photos.into_iter().map(|h| (h, w.grid.clone())));
                    writes.push(w);
                }
            }
            if let Some(expected) = expected_base {
                if let Some(w) = writes.iter().find(|w| w.base_last_seq != expected) {
                    return Err(RelayError::new(
                        409,
                        "conflict",
                        format!("document {} changed meanwhile; try again", w.id),
                    ));
                }
            }
            let received_at = self.now();
            match store.store_push(&writes, &device.id, received_at) {
                Ok(stored) => {
                    // A photo the pusher may see, newly named in a document of another grid,
                    // may be read there too from now on.
                    for (hash, grid) in &newly_named {
                        if self.blob_complete(hash)? {
                            store.grant_blob(hash, std::slice::from_ref(grid))?;
                        }
                    }
                    break (writes, duplicates, pushed, stored, received_at);
                }
                Err(StoreError::Conflict { doc }) if attempt < attempts => {
                    tracing::debug!(doc, attempt, "a document changed while the push was prepared; again");
                }
                Err(StoreError::Conflict { doc }) => {
                    return Err(RelayError::new(
                        409,
                        "conflict",
                        format!("document {doc} changed meanwhile; try again"),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        };
        // Every change's first receipt time, the stored one for a change seen before: the same
        // answer whether this is the first try or a retry after a lost reply.
        let mut receipts = Vec::with_capacity(pushed.len());
        for (doc_id, hashes) in pushed {
            let first: std::collections::HashMap<[u8; 32], i64> = store.receipts(&doc_id)?.into_iter().collect();
            let receipts_of_doc = hashes
                .into_iter()
                .map(|hash| Receipt { hash, received_at: first.get(&hash).copied().unwrap_or(received_at) })
                .collect();
            receipts.push(DocReceipts { doc_id, receipts: receipts_of_doc });
        }
        Ok(PushResponse {
            stored,
            duplicates: duplicates + (writes.iter().map(|w| w.new_changes.len() as u32).sum::<u32>() - stored),
            received_at,
            receipts,
        })
    }

    fn prepare_write(
        &self,
        store: &dyn RelayStore,
        device: &Device,
        d: &DocChanges,
        staff: Option<&KnownPeople>,
    ) -> RelayResult<PreparedDoc> {
        let doc_err = |code: &'static str, m: String| RelayError::bad(code, format!("document {}: {m}", d.doc_id));
        if d.doc_id.is_empty() || d.doc_id.len() > 100 {
            return Err(doc_err("invalid_document_id", "a document id has 1 to 100 characters".into()));
        }
        let changes = docs::decode_changes_strict(&d.bytes).map_err(|e| doc_err("not_automerge", e.to_string()))?;
        let existing = store.load_doc(&d.doc_id)?;
        let (mut doc, old_header) = match &existing {
            Some(stored) => {
                // A grid the hall just moved the walker off still takes what she recorded there
                // before her phone heard of the move (see `Device::leaving`).
                if !device.may_push(&stored.grid) {
                    return Err(RelayError::forbidden(format!(
                        "document {} is in grid {}, outside this device's grids",
                        d.doc_id, stored.grid
                    )));
                }
                let doc = AutoCommit::load(&stored.snapshot).map_err(|e| {
                    RelayError::new(500, "damaged_document", format!("stored document {} does not load: {e}", d.doc_id))
                })?;
                let header = docs::read_header(&doc).ok();
                (doc, header)
            }
            None => (AutoCommit::new(), None),
        };
        let mut fresh = Vec::new();
        let mut dup = 0;
        for c in &changes {
            if doc.get_change_by_hash(&c.hash()).is_some() {
                dup += 1;
            } else {
                fresh.push(NewChange { hash: c.hash().0, bytes: c.raw_bytes().to_vec() });
            }
        }
        let hashes: Vec<[u8; 32]> = changes.iter().map(|c| c.hash().0).collect();
        if fresh.is_empty() {
            return Ok(PreparedDoc { write: None, duplicates: dup, hashes, newly_named_photos: Vec::new() });
        }
        // What the document was before this push, for the permission check: which events and
        // body the push adds. A stored document that no longer reads counts as new.
        let (before, refs_before) = match &existing {
            Some(_) => {
                let view = DocView::new(&doc);
                (incoming::read_whole(&d.doc_id, &view).ok(), attach::blob_references(&view).unwrap_or_default())
            }
            None => (None, Vec::new()),
        };
        doc.apply_changes(changes.iter().cloned()).map_err(|e| doc_err("not_automerge", e.to_string()))?;
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(doc_err(
                "missing_dependencies",
                "these changes build on changes the relay does not have; push older changes first".into(),
            ));
        }
        // The header first, so that a document outside the device's grids is refused as such.
        let header: DocHeader = docs::read_header(&doc).map_err(|e| {
            let u = incoming::Unreadable { doc: d.doc_id.clone(), field: "header", message: e.to_string() };
            RelayError::new(422, "document_unreadable", u.to_string())
        })?;
        if let Some(old) = &old_header {
            if old.grid != header.grid
                || old.kind != header.kind
                || old.created_at != header.created_at
                || old.created_by != header.created_by
            {
                return Err(doc_err("header_changed", "a document's header cannot change".into()));
            }
        }
        // In a grid she is leaving, only what she recorded before the move: a new document
        // there made after it is refused like any other outside her grids.
        let recorded_before_move = match (device.may_see(&header.grid), device.leaving_since(&header.grid)) {
            (false, Some(since)) => existing.is_some() || header.created_at.millis() <= since,
            _ => true,
        };
        if !device.may_push(&header.grid) || !recorded_before_move {
            return Err(RelayError::forbidden(format!(
                "document {} is in grid {}, outside this device's grids",
                d.doc_id, header.grid
            )));
        }
        // A roster's id names its grid, and only a roster has such an id: a visit named like
        // the staff roster would otherwise stand in its place on every device and the relay.
        let is_roster = header.kind == gridwalk_doc::docs::DocKind::Roster;
        if d.doc_id.starts_with("roster-") != is_roster
            || (is_roster && d.doc_id != gridwalk_doc::roster::roster_id(&header.grid))
        {
            return Err(doc_err(
                "misnamed_roster",
                "a roster's id is roster-<its grid>, and no other document's id starts with roster-".into(),
            ));
        }
        // Then every part of it must read through the typed mapping the devices use: a document
        // one device cannot read would stop every other device's pull of its grid.
        let view = DocView::new(&doc);
        let after = incoming::read_whole(&d.doc_id, &view)
            .map_err(|u| RelayError::new(422, "document_unreadable", u.to_string()))?;
        // A request new to the relay whose header names another device: that device's numbers
        // are accepted from this one when the hall confirmed a hand-over of its work.
        let handed_over = match (&before, &after) {
            (None, incoming::Readable::Request { header, .. }) if header.device != device.id => {
                self.handed_over_number(device, &header.device)?
            }
            _ => None,
        };
        check_permitted(device, staff, &d.doc_id, before.as_ref(), &after, handed_over)?;
        check_duplicate_told(store, &d.doc_id, before.as_ref(), &after)?;
        // The photos it names decide who may upload and read them, so a document whose photo
        // list or events cannot be read is refused rather than stored with no photos.
        let blob_refs = attach::blob_references(&view)
            .map_err(|e| doc_err("bad_photo_list", format!("its photos or events cannot be read: {e}")))?;
        drop(view);
        // Naming a photo grants nothing: a photo the relay already holds may be newly named only
        // by a device that may see it (photos follow the grid, not a reference).
        let newly_named: Vec<String> = blob_refs.iter().filter(|h| !refs_before.contains(h)).cloned().collect();
        for hash in &newly_named {
            if self.blob_complete(hash)? && !store.blob_granted(hash, device.scope())? {
                return Err(RelayError::new(
                    403,
                    "forbidden_photo",
                    format!(
                        "document {} names photo {hash}, which belongs to a grid this device may not see; nothing of this push was stored",
                        d.doc_id
                    ),
                ));
            }
        }
        let snapshot = doc.save();
        if snapshot.len() > self.limits.max_document_bytes {
            return Err(RelayError::new(
                413,
                "document_too_large",
                format!("document {} would grow past {} bytes", d.doc_id, self.limits.max_document_bytes),
            ));
        }
        Ok(PreparedDoc {
            write: Some(DocWrite {
                id: d.doc_id.clone(),
                grid: header.grid.clone(),
                kind: header.kind.as_str().to_string(),
                snapshot,
                new_changes: fresh,
                blob_refs,
                base_last_seq: existing.as_ref().map(|e| e.last_seq),
            }),
            duplicates: dup,
            hashes,
            newly_named_photos: newly_named,
        })
    }

    /// One page of everything in the device's grids after `cursor`.
    pub fn pull(&self, device: &Device, cursor: &str, limit: usize) -> RelayResult<PullResponse> {
        let limit = limit.clamp(1, self.limits.max_pull_page);
        let store = self.store();
        let scope = device.scope();
        let cursor = match Cursor::parse(cursor)? {
            Some(c) => c,
            None => Cursor::Snapshots { high_water: store.max_seq()?, after_id: String::new() },
        };
        match cursor {
            Cursor::Snapshots { high_water, after_id } => {
                let page = store.docs_after(&after_id, scope, &device.id, limit)?;
                let full = page.len() == limit;
                let mut docs = Vec::with_capacity(page.len());
                for d in &page {
                    let receipts = store
                        .receipts(&d.id)?
                        .into_iter()
                        .map(|(hash, received_at)| Receipt { hash, received_at })
                        .collect();
                    docs.push(PulledDoc { doc_id: d.id.clone(), snapshot: true, bytes: d.snapshot.clone(), receipts });
                }
                let next = if full {
                    Cursor::Snapshots { high_water, after_id: page.last().map(|d| d.id.clone()).unwrap_or_default() }
                } else {
                    Cursor::Changes { seq: high_water }
                };
                let more = full || store.max_seq()? > high_water;
                Ok(PullResponse { version: PROTOCOL_VERSION, docs, cursor: next.text(), more })
            }
            Cursor::Changes { seq } => {
                // What is committed now, read before the changes: changes commit in the order of
                // their numbers (see `store`), so every change up to `ceiling` is among those
                // the next read sees. Read after it, a push committed between the two reads
                // would be passed over for good.
                let ceiling = store.max_seq()?;
                // A device is never sent back the changes it pushed itself.
                let rows = store.changes_since(seq, scope, &device.id, limit)?;
                let more = rows.len() == limit;
                let last = rows.last().map(|r| r.seq).unwrap_or(seq);
                // With nothing more to send, the cursor moves past everything committed, the
                // device's own changes included, so the next pull does not scan them again.
                let next_seq = if more { last } else { ceiling.max(last).max(seq) };
                let mut docs: Vec<PulledDoc> = Vec::new();
                let mut whole: HashSet<String> = HashSet::new();
                for row in rows {
                    if whole.contains(&row.doc_id) {
                        continue;
                    }
                    let stored = store.load_doc(&row.doc_id)?;
                    // A document the device has never had arrives whole, in whichever form is
                    // smaller: its compact snapshot, or all its changes (a document made today
                    // of a change or two is smaller as changes, which are also what the device
                    // applies most cheaply).
                    if let Some(stored) = stored.filter(|s| s.first_seq > seq) {
                        whole.insert(stored.id.clone());
                        docs.push(Self::whole_document(store, stored)?);
                        continue;
                    }
                    match docs.last_mut() {
                        Some(last) if last.doc_id == row.doc_id && !last.snapshot => {
                            last.bytes.extend_from_slice(&row.bytes);
                            last.receipts.push(Receipt { hash: row.hash, received_at: row.received_at });
                        }
                        _ => docs.push(PulledDoc {
                            doc_id: row.doc_id,
                            snapshot: false,
                            bytes: row.bytes,
                            receipts: vec![Receipt { hash: row.hash, received_at: row.received_at }],
                        }),
                    }
                }
                Ok(PullResponse {
                    version: PROTOCOL_VERSION,
                    docs,
                    cursor: Cursor::Changes { seq: next_seq }.text(),
                    more,
                })
            }
        }
    }

    /// A document for a device that has never had it: its snapshot, or all its changes when
    /// they take fewer bytes.
    fn whole_document(store: &dyn RelayStore, stored: crate::store::StoredDoc) -> RelayResult<PulledDoc> {
        let changes = store.doc_changes(&stored.id)?;
        let receipts = changes.iter().map(|c| Receipt { hash: c.hash, received_at: c.received_at }).collect();
        let change_bytes: usize = changes.iter().map(|c| c.bytes.len()).sum();
        if change_bytes <= stored.snapshot.len() {
            let mut bytes = Vec::with_capacity(change_bytes);
            for c in &changes {
                bytes.extend_from_slice(&c.bytes);
            }
            return Ok(PulledDoc { doc_id: stored.id, snapshot: false, bytes, receipts });
        }
        Ok(PulledDoc { doc_id: stored.id, snapshot: true, bytes: stored.snapshot, receipts })
    }

    /// Checks a blob id and that a document in the device's grids names it, and returns the
    /// relay's photo files. The id is checked first, so a malformed one (a path, say) is
    /// refused before anything is looked up; an id no document in scope names gets the same
    /// 403 whether or not the relay holds it, so a device learns nothing about other grids.
    /// Whether the relay holds the whole photo.
    fn blob_complete(&self, hash: &str) -> RelayResult<bool> {
        match &self.blobs {
            Some(blobs) => Ok(blobs.status(hash)?.complete),
            None => Ok(false),
        }
    }

    fn blob_access(&self, device: &Device, hash: &str, writing: bool) -> RelayResult<&dyn BlobStore> {
        validate_hash(hash).map_err(|_| RelayError::from(BlobError::BadId(hash.chars().take(80).collect())))?;
        let blobs = self
            .blobs
            .as_deref()
            .ok_or_else(|| RelayError::new(503, "no_blob_storage", "this relay has no place for photos configured"))?;
        // Uploads also for the grids it is leaving (its photos there go up with their records);
        // reads only where it sees.
        let push_scope = device.push_scope();
        let scope = if writing { push_scope.as_deref() } else { device.scope() };
        if !self.store().blob_referenced(hash, scope)? {
            return Err(RelayError::forbidden(format!(
                "no document in this device's grids names blob {hash}; push the document that names a photo before the photo"
            )));
        }
        Ok(blobs)
    }

    fn blob_status_of(&self, held: crate::blobs::HeldBlob) -> BlobStatus {
        BlobStatus { size_received: held.size, complete: held.complete, checked_at: self.now() }
    }

    /// What the relay holds of a blob.
    pub fn blob_status(&self, device: &Device, hash: &str) -> RelayResult<BlobStatus> {
        let blobs = self.blob_access(device, hash, true)?;
        Ok(self.blob_status_of(blobs.status(hash)?))
    }

    /// Stores the bytes of a blob of `total` bytes from `offset` on, durably, and finishes the
    /// blob (hash checked) when they are its last.
    pub fn put_blob(
        &self,
        device: &Device,
        hash: &str,
        offset: u64,
        total: u64,
        bytes: &[u8],
    ) -> RelayResult<BlobStatus> {
        let blobs = self.blob_access(device, hash, true)?;
        let was_complete = blobs.status(hash)?.complete;
        let held = blobs.append(hash, offset, total, bytes, self.limits.max_blob_bytes)?;
        if held.complete && !was_complete {
            // Finished by this device, which sent every byte: the photo may be read in its
            // grids that name it. Answering "already complete" to anyone grants nothing.
            let grids: Vec<String> =
                self.store().blob_grids(hash)?.into_iter().filter(|g| device.may_push(g)).collect();
            self.store().grant_blob(hash, &grids)?;
            tracing::info!(device = %device.id, blob = %hash, bytes = total, "blob stored");
        }
        Ok(self.blob_status_of(held))
    }

    /// Part (or all) of a complete blob.
    pub fn read_blob(&self, device: &Device, hash: &str, range: Option<ByteRange>) -> RelayResult<BlobSlice> {
        let blobs = self.blob_access(device, hash, false)?;
        // An unfinished photo is answered 404 below, whoever asks; a finished one only where granted.
        if blobs.status(hash)?.complete && !self.store().blob_granted(hash, device.scope())? {
            return Err(RelayError::forbidden(format!(
                "photo {hash} belongs to a grid this device may not see; naming it in a document grants nothing"
            )));
        }
        Ok(blobs.read(hash, range)?)
    }

    pub fn devices(&self) -> RelayResult<Vec<crate::store::DeviceInfo>> {
        Ok(self.store().devices()?)
    }

    pub fn revoke(&self, id: &str) -> RelayResult<bool> {
        Ok(self.store().revoke(id, self.now())?)
    }

    pub fn backup(&self, to: &std::path::Path) -> RelayResult<()> {
        Ok(self.store().backup(to)?)
    }

    pub fn stats(&self) -> RelayResult<crate::store::Stats> {
        Ok(self.store().stats()?)
    }
}

/// Everyone the hall's staff roster names, with the role and office each acts in.
type KnownPeople = HashMap<String, (gridwalk_doc::model::Role, Option<String>)>;

/// The people the hall's staff roster (`gridwalk_doc::roster::staff_roster_id`) names, or `None`
/// while the hall has none (before an admin gave anyone a PIN, hall devices act as before).
fn staff_on_roster(store: &dyn RelayStore) -> RelayResult<Option<KnownPeople>> {
    let Some(stored) = store.load_doc(&gridwalk_doc::roster::staff_roster_id())? else { return Ok(None) };
    let Ok(doc) = AutoCommit::load(&stored.snapshot) else {
        tracing::warn!("the staff roster does not load; hall devices act as before it");
        return Ok(None);
    };
    let mut known = KnownPeople::new();
    match incoming::read_whole(&stored.id, &DocView::new(&doc)) {
        Ok(incoming::Readable::Roster { body, header }) if header.grid == gridwalk_doc::roster::STAFF_GRID => {
            // Walkers act on their own phones; a hall device may pass their steps on. Anyone
            // else acts on a hall PC only signed in, so only with a PIN (on the staff list):
            // a hall-role person with none is someone nobody can have signed in as.
            known.extend(
                body.people
                    .into_iter()
                    .filter(|p| p.role == gridwalk_doc::model::Role::Walker)
                    .map(|p| (p.id, (p.role, None))),
            );
            known.extend(body.staff.into_iter().map(|s| (s.id, (s.role, s.office))));
        }
        // Not a staff roster after all (stored before rosters' ids were checked): no staff list,
        // rather than refusing every device's every push.
        _ => {
            tracing::warn!("{} is not the hall's staff roster; hall devices act as before it", stored.id);
            return Ok(None);
        }
    }
    Ok((!known.is_empty()).then_some(known))
}

/// A merged duplicate's reporter is told the outcome only once the request it went into is
/// resolved (the core asks the same of the device that records it, `check_linked_request_rule`).
/// The rule needs a second document, which the relay holds whenever the merge came through it:
/// a push that tells the reporter while that request is open is refused. A target this relay
/// does not hold cannot be judged here, and is let through.
fn check_duplicate_told(
    store: &dyn RelayStore,
    doc_id: &str,
    before: Option<&incoming::Readable>,
    after: &incoming::Readable,
) -> RelayResult<()> {
    use gridwalk_doc::lifecycle::Status;
    use incoming::Readable;
    let Readable::Request { state, .. } = after else { return Ok(()) };
    let told_before = matches!(before, Some(Readable::Request { state: old, .. }) if old.told_at.is_some());
    let (Status::Merged, Some(_), false, Some(target)) =
        (state.status, state.told_at, told_before, state.merged_into.as_deref())
    else {
        return Ok(());
    };
    let Some(stored) = store.load_doc(target)? else { return Ok(()) };
    let resolved = AutoCommit::load(&stored.snapshot)
        .ok()
        .and_then(|doc| match incoming::read_whole(target, &DocView::new(&doc)) {
            Ok(Readable::Request { state, .. }) => Some(state.resolved_at.is_some()),
            _ => None,
        })
        .unwrap_or(false);
    if resolved {
        return Ok(());
    }
    Err(RelayError::new(
        422,
        "duplicate_told_too_early",
        format!(
            "document {doc_id}: its reporter is told the outcome once the request it was merged into \
             ({target}) is resolved, and it is not; nothing of this push was stored"
        ),
    ))
}

/// The permission table (`gridwalk_doc::permissions`, the one place it lives) applied to what a
/// push adds to one document: each lifecycle event it adds, judged against the request as it
/// stood before that event, a changed request body, a new or changed visit, meeting or roster.
/// A walker's phone is bound to its walker: every event it adds must be hers. A hall or admin
/// device is shared by staff who sign in: once the hall has a staff roster, every event it adds
/// must name someone on it, and is judged by that person's role (a walker's visit that the hall
/// PC passes on is a walker's; a triage in a walker's name is refused).
fn check_permitted(
    device: &Device,
    staff: Option<&KnownPeople>,
    doc_id: &str,
    before: Option<&incoming::Readable>,
    after: &incoming::Readable,
    handed_over: Option<Option<u32>>,
) -> RelayResult<()> {
    use gridwalk_doc::lifecycle::{fold, fold_order};
    use gridwalk_doc::model::Role as PersonRole;
    use gridwalk_doc::permissions::{permitted, Actor, Step};
    use incoming::Readable;

    let role = match device.role {
        Role::Walker => PersonRole::Walker,
        Role::Hall => PersonRole::Hall,
        Role::Admin => PersonRole::Admin,
    };
    let refuse = |what: String| {
        RelayError::new(403, "forbidden_action", format!("document {doc_id}: {what}; nothing of this push was stored"))
    };
    // On a shared hall device, whom the staff roster names acts in her own role.
    let known = staff.filter(|_| device.role != Role::Walker && device.walker.is_none());
    let judge = |person: &str, step: Step, state: Option<&gridwalk_doc::lifecycle::RequestState>| {
        let (role, office) = match known.and_then(|k| k.get(person)) {
            Some((role, office)) => (*role, office.as_deref()),
            None => (role, None),
        };
        permitted(&Actor { role, person, office }, step, state).map_err(|f| refuse(f.to_string()))
    };
    let bound = |person: &str, what: &str| match (device.walker.as_deref(), known) {
        (Some(walker), _) if walker != person => Err(refuse(format!(
            "{what} is signed by {person}, but this device belongs to {walker} and may act only as her or him"
        ))),
        (None, Some(known)) if !known.contains_key(person) => Err(refuse(format!(
            "{what} is signed by {person}, whom the hall's staff roster does not name: on a hall PC only \
             staff signed in with their own PIN act"
        ))),
        _ => Ok(()),
    };
    match after {
        Readable::Request { events, body, header, .. } => {
            let (known, old): (HashSet<&str>, _) = match before {
                Some(Readable::Request { events, body, state, .. }) => {
                    (events.iter().map(|e| e.id.as_str()).collect(), Some((body, state)))
                }
                _ => (HashSet::new(), None),
            };
            let mut ordered = events.clone();
            fold_order(&mut ordered);
            for (i, event) in ordered.iter().enumerate() {
                if known.contains(event.id.as_str()) {
                    continue;
                }
                bound(&event.by, &format!("the '{}' step", event.action.verb()))?;
                let state = if i == 0 { None } else { fold(&ordered[..i]) };
                judge(&event.by, Step::of(&event.action), state.as_ref())?;
            }
            // A request's number is its raising device's, given once (`gridwalk_doc::numbers`).
            match (&old, &body.number) {
                (Some((old_body, _)), _) if old_body.number != body.number => {
                    return Err(RelayError::new(
                        422,
                        "request_number_changed",
                        format!("document {doc_id}: a request's number cannot change; nothing of this push was stored"),
                    ));
                }
                (None, Some(number)) => {
                    // A request a walker's phone pushes new carries this phone's code: its
                    // relay number, or the end of its id. The header is the pusher's to write,
                    // so a request whose header names another device may also carry that
                    // device's id-end code, but never a code of digits only: those are relay
                    // numbers, which only their own device gives out. A hall PC also passes on
                    // requests other devices raised (a resend after a relay was lost), whose
                    // numbers only their form and day can vouch for, unless its header names the
                    // PC itself.
                    let codes = if device.role == Role::Walker || header.device == device.id {
                        let mut codes = vec![gridwalk_doc::numbers::device_code(None, &device.id)];
                        if device.number.is_some() {
                            codes.push(gridwalk_doc::numbers::device_code(device.number, &device.id));
                        }
                        let theirs = gridwalk_doc::numbers::device_code(None, &header.device);
                        if header.device != device.id && !theirs.bytes().all(|b| b.is_ascii_digit()) {
                            codes.push(theirs);
                        }
                        // The walker's earlier phone store, handed over after a forgotten PIN
                        // and confirmed by the hall: its relay number is hers too.
                        if let Some(Some(number)) = handed_over {
                            codes.push(gridwalk_doc::numbers::device_code(Some(number), &header.device));
                        }
                        codes
                    } else {
                        Vec::new()
                    };
                    if let Some(why) = gridwalk_doc::numbers::number_refusal(number, header.created_at, &codes) {
                        return Err(RelayError::new(
                            422,
                            "bad_request_number",
                            format!("document {doc_id}: {why}; nothing of this push was stored"),
                        ));
                    }
                }
                _ => {}
            }
            if let Some((old_body, old_state)) = old {
                if old_body != body {
                    let person = device.walker.as_deref().unwrap_or(&header.created_by);
                    judge(person, Step::EditRequest, Some(old_state))?;
                }
            }
        }
        Readable::Visit { header, body } => {
            let changed = !matches!(before, Some(Readable::Visit { body: old, .. }) if old == body);
            if changed {
                if before.is_none() {
                    bound(&header.created_by, "the visit")?;
                }
                judge(device.walker.as_deref().unwrap_or(&header.created_by), Step::RecordVisit, None)?;
            }
        }
        Readable::Meeting { header, .. } => {
            if before.is_none() {
                bound(&header.created_by, "the meeting")?;
            }
            judge(&header.created_by, Step::Meeting, None)?
        }
        Readable::Roster { header, body } => {
            if let Some(why) = gridwalk_doc::roster::quick_phrases_refusal(&body.quick_phrases) {
                return Err(RelayError::new(
                    422,
                    "bad_roster",
                    format!("document {doc_id}: {why}; nothing of this push was stored"),
                ));
            }
            // Who published this version, rather than who first created the roster.
            let publisher = if body.published_by.is_empty() { &header.created_by } else { &body.published_by };
            if header.grid == gridwalk_doc::roster::STAFF_GRID {
                // The staff list is the relay's own (see `crate::staff`): a device may change
                // only who the hall knows by name (`people`), never who signs in with what.
                if device.id != crate::staff::RELAY_WRITER {
                    match before {
                        Some(Readable::Roster { body: old, .. }) if old.staff == body.staff => {}
                        Some(_) => {
                            return Err(refuse(
                                "the staff list (who signs in, in which role, with which PIN) is changed only at the \
                                 relay, by a person with her own PIN"
                                    .into(),
                            ))
                        }
                        None => {
                            return Err(refuse(
                                "the staff roster is started by the relay's operator (gridwalk-relay staff add-admin)"
                                    .into(),
                            ))
                        }
                    }
                    bound(publisher, "the staff roster")?;
                    judge(publisher, Step::PublishRoster, None)?;
                }
            } else {
                bound(publisher, "the roster")?;
                judge(publisher, Step::PublishRoster, None)?;
            }
        }
    }
    Ok(())
}

//! The device's lock (issue 14): its store is encrypted (see `gridwalk_core::store::keys`), a
//! walker's phone opens only with her PIN and locks itself again after [`APP_LOCK_IDLE`] without
//! her at the screen, and a device the hall revoked destroys its key and its records.
//!
//! - **A walker's phone** is locked by her PIN (with the platform's keystore sealed over it where
//!   there is one). Until she has chosen a PIN (just after enrolment, or on a phone whose store
//!   was made before encryption) the key is sealed by the keystore alone and the app asks her to
//!   choose one (`pin_needed`).
//! - **A hall PC** is locked by its keystore: it opens by itself, and its staff sign in one by
//!   one with their own PINs (`session`).
//! - **While locked** nothing but the status and the unlock command is answered. The background
//!   sync goes on: it holds its own connection, opened with the key while it was unlocked, so
//!   work saved before the lock still reaches the hall.
//! - **Wrong PINs** are counted in the key file and slowed down by the one rule in
//!   `gridwalk_doc::pin`.
//! - **Revoked**: when the relay answers the device's token with `device_revoked`, the device
//!   pushes nothing more, destroys its key file, deletes its store, photos and partial
//!   downloads, and then tells the relay (`POST /v1/wiped`), which shows "wiped at" to the hall.
//!   If the relay cannot be told at once, the confirmation waits in `wiped.json` (the revoked
//!   token and the relay's address only) and is sent when the app next starts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gridwalk_core::store::keys::{self, Keystore, Lock, LockKind, StoreKey};
use gridwalk_core::store::{RelayLink, Store};
use gridwalk_transport::client;
use serde::{Deserialize, Serialize};

use crate::{CommandError, CommandResult};

/// How long the app stays unlocked without someone at the screen.
pub const APP_LOCK_IDLE: Duration = Duration::from_secs(5 * 60);

/// The file a wiped device keeps until the relay has heard of the wipe.
const WIPE_RECEIPT: &str = "wiped.json";

/// The key the app unlocked, shared with the background workers, which open their own
/// connections with it. The generation changes whenever the key does (set, or destroyed by a
/// wipe), so a worker knows to drop a connection made with the old one.
#[derive(Default)]
pub(crate) struct KeyCell {
    key: Mutex<Option<StoreKey>>,
    generation: AtomicU64,
    /// Held (shared) by a worker while it uses its connection for one piece of work, and
    /// (exclusively) by a wipe: the wipe waits for work under way, and no worker starts writing
    /// into files being deleted.
    pub(crate) gate: std::sync::RwLock<()>,
    /// Worker connections open now: a store's files move or go only once none is left (SQLite
    /// removes a closing connection's log by its path, which may by then be another store's).
    open_connections: std::sync::atomic::AtomicUsize,
}

impl KeyCell {
    pub fn get(&self) -> Option<StoreKey> {
        self.key.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) until no worker holds a connection; workers drop theirs at their
    /// next look once the key has changed. False when one still does.
    pub(crate) fn wait_for_workers(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while self.open_connections.load(Ordering::SeqCst) > 0 {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    pub(crate) fn set(&self, key: Option<StoreKey>) {
        *self.key.lock().unwrap_or_else(|p| p.into_inner()) = key;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// A worker's connection to the store, opened with the app's key once there is one, and
/// dropped when the key changes. Workers never open a store without the key: a plain store is
/// encrypted in place (renamed over) when its PIN is set, and a connection to the old file
/// would write where nobody reads.
pub(crate) struct WorkerStore {
    path: PathBuf,
    keys: Arc<KeyCell>,
    store: Option<(u64, Store)>,
}

impl WorkerStore {
    pub fn new(path: PathBuf, keys: Arc<KeyCell>) -> Self {
        WorkerStore { path, keys, store: None }
    }

    /// The store, opened (again) if the key changed; `None` while the app is locked from its
    /// start, not enrolled, or wiped.
    pub fn get(&mut self, who: &str) -> Option<&Store> {
        let generation = self.keys.generation();
        if self.store.as_ref().is_some_and(|(g, _)| *g != generation) {
            self.close();
        }
        if self.store.is_none() && self.path.exists() {
            let key = self.keys.get()?;
            match Store::open_encrypted(&self.path, key) {
                Ok(s) => {
                    self.keys.open_connections.fetch_add(1, Ordering::SeqCst);
                    self.store = Some((generation, s));
                }
                Err(e) => tracing::warn!("the {who} cannot open the store: {e}"),
            }
        }
        self.store.as_ref().map(|(_, s)| s)
    }

    pub fn close(&mut self) {
        if self.store.take().is_some() {
            self.keys.open_connections.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The folder the store is in (where `held/` stores wait for their hand-over).
    pub fn data_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The gate a worker holds (shared) while it works (see [`KeyCell::gate`]).
    pub fn gate(&self) -> Arc<KeyCell> {
        self.keys.clone()
    }
}

impl Drop for WorkerStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Debug)]
struct LockState {
    /// Locked: only the status and `unlock` are answered.
    locked: bool,
    last_active: Instant,
}

pub(crate) struct DeviceLock {
    pub(crate) keystore: Option<Arc<dyn Keystore>>,
    idle_limit: Duration,
    state: Mutex<LockState>,
    pub(crate) keys: Arc<KeyCell>,
    /// When this device wiped itself after the relay said it was revoked (for the UI's notice).
    wiped_at: Mutex<Option<i64>>,
}

/// What the UI needs to know about the lock (part of `app_status`).
#[derive(Debug, Clone, Serialize)]
pub struct LockStatus {
    /// The app is locked: show the PIN pad.
    pub locked: bool,
    /// A walker's phone without a PIN yet: ask her to choose one.
    pub pin_needed: bool,
    /// How this store is locked: `pin`, `keystore`, or `none` (a plain store on a platform
    /// without a keystore, until its walker chooses a PIN).
    pub lock: &'static str,
    /// Seconds to wait before the next PIN may be tried.
    pub wait_seconds: Option<u64>,
    /// The device wiped itself because the hall revoked it (milliseconds since the epoch).
    pub wiped_at: Option<i64>,
}

impl DeviceLock {
    pub fn new(keystore: Option<Arc<dyn Keystore>>, idle_limit: Duration) -> Self {
        DeviceLock {
            keystore,
            idle_limit,
            state: Mutex::new(LockState { locked: false, last_active: Instant::now() }),
            keys: Arc::new(KeyCell::default()),
            wiped_at: Mutex::new(None),
        }
    }

    fn keystore(&self) -> Option<&dyn Keystore> {
        self.keystore.as_deref()
    }

    /// Opens the store in `data_dir` as its lock allows at start: a keystore lock opens at once,
    /// a PIN lock waits for `unlock`, and a store made before encryption is encrypted now when
    /// the platform has a keystore.
    pub fn open_at_start(&self, path: &Path) -> CommandResult<Option<Store>> {
        if !path.exists() {
            return Ok(None);
        }
        match keys::lock_kind(path)? {
            Some(LockKind::Keystore) => {
                let key = keys::unlock(path, Lock::Keystore, self.keystore(), 0)?;
                match Store::open_encrypted(path, key.clone()) {
                    Ok(store) => {
                        // Only now do the workers get the key: they never race the app's own
                        // open (which may be encrypting or migrating the file).
                        self.keys.set(Some(key));
                        Ok(Some(store))
                    }
                    Err(e) => self.open_plain_after(path, e),
                }
            }
            Some(LockKind::Pin) => {
                self.state.lock().unwrap_or_else(|p| p.into_inner()).locked = true;
                Ok(None)
            }
            None if self.keystore.is_some() => {
                let key = keys::set_up(path, Lock::Keystore, self.keystore())?;
                match Store::open_encrypted(path, key.clone()) {
                    Ok(store) => {
                        self.keys.set(Some(key));
                        Ok(Some(store))
                    }
                    Err(e) => self.open_plain_after(path, e),
                }
            }
            // No keystore: the plain store stays as it is until its walker chooses a PIN, and
            // the workers wait until then.
            None => Ok(Some(Store::open(path)?)),
        }
    }

    /// A store made before encryption that could not be encrypted now (no room for the
    /// encrypted copy, the file in use): the walker still reaches her records, the workers wait
    /// (they open only with a key), and the next start tries again. An encrypted store that
    /// cannot be opened is an error as before.
    fn open_plain_after(&self, path: &Path, error: gridwalk_core::CoreError) -> CommandResult<Option<Store>> {
        match Store::open(path) {
            Ok(store) => {
                tracing::error!("the store could not be encrypted now, it stays plain until the next start: {error}");
                Ok(Some(store))
            }
            Err(_) => Err(error.into()),
        }
    }

    /// The key for a new store, as enrolment makes it: the walker's PIN if she gave one, else
    /// the keystore (she is then asked for a PIN at once). Checked before the relay is asked,
    /// so an enrolment code is never used up by a device that then cannot make its store.
    pub fn check_new_store_lock(&self, pin: Option<&str>) -> CommandResult<()> {
        match pin {
            Some(pin) => gridwalk_core::pin::check_pin_shape(pin)
                .map_err(|e| CommandError::new("invalid_input", format!("invalid pin: {e}"))),
            None if self.keystore.is_some() => Ok(()),
            None => Err(CommandError::new("pin_required", "choose a PIN of 4 to 8 digits for this device")),
        }
    }

    pub fn key_for_new_store(&self, path: &Path, pin: Option<&str>) -> CommandResult<StoreKey> {
        let lock = match pin {
            Some(pin) => Lock::Pin(pin),
            None => Lock::Keystore,
        };
        Ok(keys::set_up(path, lock, self.keystore())?)
    }

    /// The app has opened its store with `key`: the workers may open theirs now.
    pub fn share_key(&self, key: StoreKey) {
        if self.keys.get().is_none() {
            self.keys.set(Some(key));
        }
    }

    pub fn status(&self, path: &Path, store: Option<&Store>, now: i64) -> LockStatus {
        let kind = keys::lock_kind(path).ok().flatten();
        let walker = store.and_then(|s| s.role().ok()).is_some_and(|r| r == gridwalk_core::model::Role::Walker);
        LockStatus {
            locked: self.is_locked(),
            pin_needed: store.is_some() && walker && kind != Some(LockKind::Pin),
            lock: match kind {
                Some(LockKind::Pin) => "pin",
                Some(LockKind::Keystore) => "keystore",
                None => "none",
            },
            wait_seconds: keys::pin_wait(path, now).ok().flatten().map(|d| d.as_secs().max(1)),
            wiped_at: *self.wiped_at.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Whether the app is locked now; a PIN-locked app left alone past the idle limit locks here.
    pub fn is_locked(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.locked
    }

    /// Locks a PIN-locked app that has been left alone past the idle limit.
    pub fn lock_if_idle(&self, path: &Path) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.locked
            && state.last_active.elapsed() > self.idle_limit
            && keys::lock_kind(path).ok().flatten() == Some(LockKind::Pin)
        {
            state.locked = true;
        }
    }

    /// Someone is at the screen: the idle time counts from now.
    pub fn touch(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).last_active = Instant::now();
    }

    /// The store was set aside (a forgotten PIN): nothing is locked any more, and no key is
    /// held; the phone waits to be enrolled again.
    pub fn forget_lock(&self) {
        self.keys.set(None);
        self.state.lock().unwrap_or_else(|p| p.into_inner()).locked = false;
    }

    /// Locks now (the lock button), if the store has a PIN to unlock it with.
    pub fn lock_now(&self, path: &Path) -> CommandResult<()> {
        if keys::lock_kind(path)? != Some(LockKind::Pin) {
            return Err(CommandError::new("no_pin", "this device has no PIN to lock with; choose one first"));
        }
        self.state.lock().unwrap_or_else(|p| p.into_inner()).locked = true;
        Ok(())
    }

    /// Checks the PIN. Returns the key; the app is unlocked by [`DeviceLock::unlocked`] once
    /// the store is open.
    pub fn check_pin(&self, path: &Path, pin: &str, now: i64) -> CommandResult<StoreKey> {
        Ok(keys::unlock(path, Lock::Pin(pin), self.keystore(), now)?)
    }

    /// The PIN was right and the store is open: unlocked, and the workers may use the key.
    pub fn unlocked(&self, key: StoreKey) {
        self.share_key(key);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.locked = false;
        state.last_active = Instant::now();
    }

    /// Wraps the key under a new PIN. With a PIN already set, `current` must be it.
    pub fn set_pin(&self, path: &Path, pin: &str, current: Option<&str>, now: i64) -> CommandResult<StoreKey> {
        gridwalk_core::pin::check_pin_shape(pin)
            .map_err(|e| CommandError::new("invalid_input", format!("invalid pin: {e}")))?;
        let key = match keys::lock_kind(path)? {
            Some(LockKind::Pin) => {
                let current = current.ok_or_else(|| CommandError::new("wrong_pin", "give the current PIN first"))?;
                keys::unlock(path, Lock::Pin(current), self.keystore(), now)?
            }
            Some(LockKind::Keystore) => keys::unlock(path, Lock::Keystore, self.keystore(), now)?,
            None => return Ok(keys::set_up(path, Lock::Pin(pin), self.keystore())?),
        };
        keys::rewrap(path, &key, Lock::Pin(pin), self.keystore())?;
        Ok(key)
    }

    /// Destroys the key and every file of the store, after the relay said this device is
    /// revoked. `store` is the app's own connection, closed first.
    pub fn wipe(&self, data_dir: &Path, store_path: &Path, link: &RelayLink, now: i64) {
        // Work under way (a photo being shrunk) finishes first; none starts until the files
        // are gone, and then none finds a key to open them with.
        let gate = self.keys.gate.write().unwrap_or_else(|p| p.into_inner());
        self.keys.set(None);
        let mut whole = true;
        if let Err(e) = keys::destroy(store_path) {
            tracing::error!("cannot destroy the store's key: {e}");
            whole = false;
        }
        // The store's files and folders, and the exports made on this device (plain files the
        // hall saved: the monthly lists).
        let prefix = store_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(data_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with(&prefix) && name != "exports" && name != "held" {
                    continue;
                }
                if name == "held" {
                    // Stores set aside after a forgotten PIN: their keys are destroyed too.
                    for held in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                        if let Err(e) = keys::destroy(&held.path().join(&prefix)) {
                            tracing::error!("cannot destroy a held store's key: {e}");
                            whole = false;
                        }
                    }
                }
                let path = entry.path();
                let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                if let Err(e) = removed {
                    tracing::error!("cannot remove {} while wiping: {e}", path.display());
                    whole = false;
                }
            }
        }
        drop(gate);
        if !whole {
            // The hall is not told "wiped" about a device that is not.
            tracing::error!("the wipe did not remove everything; the relay is not told it is done");
            *self.wiped_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
            return;
        }
        *self.wiped_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        self.state.lock().unwrap_or_else(|p| p.into_inner()).locked = false;
        let receipt = WipeReceipt { relay_url: link.url.clone(), token: link.token.clone(), wiped_at: now };
        let file = data_dir.join(WIPE_RECEIPT);
        if let Ok(text) = serde_json::to_vec(&receipt) {
            let _ = std::fs::write(&file, text);
        }
        tracing::warn!("the relay revoked this device: its key and records are destroyed");
        confirm_pending_wipe(data_dir);
    }

    /// A wipe from an earlier run (its receipt still waits): shown to the UI as such.
    pub fn note_earlier_wipe(&self, data_dir: &Path) {
        if let Some(receipt) = read_receipt(data_dir) {
            *self.wiped_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(receipt.wiped_at);
        }
    }

    pub fn clear_wipe_notice(&self) {
        *self.wiped_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[derive(Serialize, Deserialize)]
struct WipeReceipt {
    relay_url: String,
    token: String,
    wiped_at: i64,
}

fn read_receipt(data_dir: &Path) -> Option<WipeReceipt> {
    let text = std::fs::read(data_dir.join(WIPE_RECEIPT)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Tells the relay about a wipe that waits in its receipt; the receipt goes once it has heard.
pub(crate) fn confirm_pending_wipe(data_dir: &Path) {
    let Some(receipt) = read_receipt(data_dir) else { return };
    match client::confirm_wipe(&receipt.relay_url, &receipt.token) {
        Ok(()) => {
            let _ = std::fs::remove_file(data_dir.join(WIPE_RECEIPT));
        }
        Err(e) => tracing::warn!("the relay has not heard of this device's wipe yet: {e}"),
    }
}

//! The app's commands: the one boundary between the walker's (and the hall's) user interface and
//! the core. `App::call(name, args)` takes a command name and JSON arguments and returns JSON, or
//! an error as `{code, message}`. The Tauri shell exposes it as a single Tauri command; the
//! browser bridge exposes it as `POST /api/<name>`. Neither adds logic of its own, so what the
//! browser tests exercise is what the real app runs. The contract is `docs/app-commands.md`.
//!
//! This crate also runs the background sync ([`worker`]): the device checks its relay every few
//! seconds and syncs by itself when the relay is reachable; and the background photo worker
//! ([`photo_worker`]), which shrinks and attaches the photos a record was saved with.

mod access;
mod commands;
mod dto;
mod hall;
mod handover;
mod lock;
mod meetings;
mod photo_worker;
mod session;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use gridwalk_core::store::Store;
use gridwalk_core::{Clock, CoreError};
use serde::Serialize;
use serde_json::Value;

pub use dto::*;
pub use lock::{LockStatus, APP_LOCK_IDLE};
pub use worker::SyncSettings;

use gridwalk_core::store::keys::{FileKeystore, Keystore};

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// Stable, machine-readable; the UI maps it to a sentence in the user's language.
    pub code: String,
    /// An English explanation, for logs and for codes the UI does not know yet.
    pub message: String,
}

impl CommandError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CommandError { code: code.to_string(), message: message.into() }
    }

    /// Whether the fault lies with the caller (a 4xx in the browser bridge) rather than with
    /// this device's storage (a 5xx).
    pub fn is_callers_fault(&self) -> bool {
        !matches!(self.code.as_str(), "storage" | "internal" | "io")
    }
}

impl From<CoreError> for CommandError {
    fn from(e: CoreError) -> Self {
        match e {
            // The relay's own code says more than "the relay refused" (e.g. a used enrolment
            // code, a revoked device), and the UI words each one.
            CoreError::Relay { code, message, .. } => CommandError { code, message },
            e => CommandError { code: e.code().to_string(), message: e.to_string() },
        }
    }
}

impl From<gridwalk_core::docs::DocError> for CommandError {
    fn from(e: gridwalk_core::docs::DocError) -> Self {
        CoreError::from(e).into()
    }
}

impl From<gridwalk_core::photo::PhotoError> for CommandError {
    fn from(e: gridwalk_core::photo::PhotoError) -> Self {
        CommandError { code: e.code().to_string(), message: e.to_string() }
    }
}

pub type CommandResult<T> = std::result::Result<T, CommandError>;

/// The file the device's store lives in, inside the app's data directory.
pub const STORE_FILE: &str = "gridwalk.db";

/// The desktop keystore of a data directory when the embedding names none: a file beside the
/// data directory, not in it (`<data>` → `<data>-keystore/device-key`), so that a copy of the
/// data directory alone opens nothing. The Tauri shell passes the user's configuration folder.
pub fn default_keystore(data_dir: &Path) -> FileKeystore {
    let mut name = data_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "gridwalk".into());
    name.push("-keystore");
    FileKeystore::new(data_dir.with_file_name(name).join("device-key"))
}

/// Opens a device's store outside the app (tests, and the command line on a hall PC), with the
/// default keystore and, for a walker's phone, her PIN.
pub fn open_device_store(data_dir: &Path, pin: Option<&str>) -> CommandResult<Store> {
    use gridwalk_core::store::keys::{self, Lock};
    let path = data_dir.join(STORE_FILE);
    let keystore = default_keystore(data_dir);
    let lock = match pin {
        Some(pin) => Lock::Pin(pin),
        None => Lock::Keystore,
    };
    let key = keys::unlock(&path, lock, Some(&keystore), 0)?;
    Ok(Store::open_encrypted(&path, key)?)
}

/// One device's app: its store (once enrolled and unlocked), its lock and its background sync.
pub struct App {
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    store: Arc<Mutex<Option<Store>>>,
    sync: worker::SyncHandle,
    photos: photo_worker::PhotoWorker,
    sessions: session::Sessions,
    lock: Arc<lock::DeviceLock>,
    /// The last KPI changes computed, by what was asked and the hour (see `hall::kpi_changes`).
    kpi_changes: Mutex<Option<(String, serde_json::Value)>>,
}

impl App {
    /// Opens the app on a data directory (created if missing), with the default desktop
    /// keystore beside it ([`default_keystore`]).
    pub fn open(data_dir: impl Into<PathBuf>, clock: Arc<dyn Clock>, settings: SyncSettings) -> CommandResult<App> {
        let data_dir = data_dir.into();
        let keystore: Arc<dyn Keystore> = Arc::new(default_keystore(&data_dir));
        Self::open_with_keystore(data_dir, clock, settings, Some(keystore))
    }

    /// Opens the app on a data directory (created if missing). An existing store is opened as
    /// its lock allows (see `lock`) and its background sync started; without one the app waits
    /// for `enroll`. `keystore` is the platform's (`None` where there is none: a walker's PIN
    /// is then all that locks her store).
    pub fn open_with_keystore(
        data_dir: impl Into<PathBuf>,
        clock: Arc<dyn Clock>,
        settings: SyncSettings,
        keystore: Option<Arc<dyn Keystore>>,
    ) -> CommandResult<App> {
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| CommandError::new("storage", format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(STORE_FILE);
        let lock = Arc::new(lock::DeviceLock::new(keystore, settings.app_lock_idle));
        lock.note_earlier_wipe(&data_dir);
        // Offline, telling the relay takes seconds: not while the app opens.
        {
            let data_dir = data_dir.clone();
            let _ = std::thread::Builder::new()
                .name("gridwalk-wipe-receipt".into())
                .spawn(move || lock::confirm_pending_wipe(&data_dir));
        }
        let store = Arc::new(Mutex::new(lock.open_at_start(&path)?));
        // What the sync worker does when the relay says this device is revoked: close the
        // app's own connection, then destroy the key and the files.
        let on_revoked: worker::OnRevoked = {
            let (store, lock, data_dir, path, clock) =
                (store.clone(), lock.clone(), data_dir.clone(), path.clone(), clock.clone());
            Arc::new(move |link| {
                drop(store.lock().unwrap_or_else(|p| p.into_inner()).take());
                let now = gridwalk_core::time::Timestamp::from(clock.now()).millis();
                lock.wipe(&data_dir, &path, link, now);
            })
        };
        let sync = worker::SyncHandle::start(path.clone(), lock.keys.clone(), clock.clone(), settings, on_revoked);
        let photos = photo_worker::PhotoWorker::start(path, lock.keys.clone(), sync.nudger());
        Ok(App {
            data_dir,
            clock,
            store,
            sync,
            photos,
            sessions: session::Sessions::new(settings.sign_in_idle),
            lock,
            kpi_changes: Mutex::new(None),
        })
    }

    pub(crate) fn store_path(&self) -> PathBuf {
        self.data_dir.join(STORE_FILE)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Answers one command. Unknown names and malformed arguments are the caller's errors;
    /// nothing here panics on input.
    pub fn call(&self, name: &str, args: Value) -> CommandResult<Value> {
        // A locked app answers only its status and the PIN pad; the idle limit locks it here,
        // before anything else is answered.
        self.lock.lock_if_idle(&self.store_path());
        if self.lock.is_locked() && !matches!(name, "status" | "unlock" | "set_store_aside") {
            return Err(CommandError::new("app_locked", "the app is locked: unlock it with this device's PIN"));
        }
        // What only someone at the screen does keeps her session going. The screens' own reloads
        // (after each sync, while photos process) must not, or a hall PC left on a page would
        // never sign out.
        if !session::is_activity(name) {
            return commands::dispatch(self, name, args);
        }
        self.sessions.touch();
        self.lock.touch();
        let result = commands::dispatch(self, name, args);
        // She was at the screen while it ran (a PIN checked at the relay takes a moment): the
        // idle time counts from its end.
        self.sessions.touch();
        self.lock.touch();
        result
    }

    pub(crate) fn now(&self) -> gridwalk_core::time::Timestamp {
        gridwalk_core::time::Timestamp::from(self.clock.now())
    }

    /// The store, or `not_enrolled` before the device has joined a relay.
    pub(crate) fn store(&self) -> CommandResult<StoreGuard<'_>> {
        let guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if self.lock.is_locked() {
                return Err(CommandError::new("app_locked", "the app is locked: unlock it with this device's PIN"));
            }
            return Err(CommandError::new("not_enrolled", "this device has not been enrolled with a relay yet"));
        }
        Ok(StoreGuard(guard))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.photos.stop();
        self.sync.stop();
    }
}

pub(crate) struct StoreGuard<'a>(MutexGuard<'a, Option<Store>>);

impl std::ops::Deref for StoreGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.0.as_ref().expect("checked when the guard was made")
    }
}

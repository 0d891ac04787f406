//! The app's commands: the one boundary between the walker's (and the hall's) user interface and
//! the core. `App::call(name, args)` takes a command name and JSON arguments and returns JSON, or
//! an error as `{code, message}`. The Tauri shell exposes it as a single Tauri command; the
//! browser bridge exposes it as `POST /api/<name>`. Neither adds logic of its own, so what the
//! browser tests exercise is what the real app runs. The contract is `docs/app-commands.md`.
//!
//! This crate also runs the background sync ([`worker`]): the device checks its relay every few
//! seconds and syncs by itself when the relay is reachable; and the background photo worker
//! ([`photo_worker`]), which shrinks and attaches the photos a record was saved with.

mod commands;
mod dto;
mod hall;
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
pub use worker::SyncSettings;

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

/// One device's app: its store (once enrolled) and its background sync.
pub struct App {
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    store: Mutex<Option<Store>>,
    sync: worker::SyncHandle,
    photos: photo_worker::PhotoWorker,
    sessions: session::Sessions,
}

impl App {
    /// Opens the app on a data directory (created if missing). An existing store is opened and
    /// its background sync started; without one the app waits for `enroll`.
    pub fn open(data_dir: impl Into<PathBuf>, clock: Arc<dyn Clock>, settings: SyncSettings) -> CommandResult<App> {
        let data_dir = data_dir.into();
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| CommandError::new("storage", format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(STORE_FILE);
        let store = if path.exists() { Some(Store::open(&path)?) } else { None };
        let sync = worker::SyncHandle::start(path.clone(), clock.clone(), settings);
        let photos = photo_worker::PhotoWorker::start(path, sync.nudger());
        Ok(App {
            data_dir,
            clock,
            store: Mutex::new(store),
            sync,
            photos,
            sessions: session::Sessions::new(settings.sign_in_idle),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Answers one command. Unknown names and malformed arguments are the caller's errors;
    /// nothing here panics on input.
    pub fn call(&self, name: &str, args: Value) -> CommandResult<Value> {
        // What only someone at the screen does keeps her session going. The screens' own reloads
        // (after each sync, while photos process) must not, or a hall PC left on a page would
        // never sign out.
        if !session::is_activity(name) {
            return commands::dispatch(self, name, args);
        }
        self.sessions.touch();
        let result = commands::dispatch(self, name, args);
        // She was at the screen while it ran (a PIN checked at the relay takes a moment): the
        // idle time counts from its end.
        self.sessions.touch();
        result
    }

    pub(crate) fn now(&self) -> gridwalk_core::time::Timestamp {
        gridwalk_core::time::Timestamp::from(self.clock.now())
    }

    /// The store, or `not_enrolled` before the device has joined a relay.
    pub(crate) fn store(&self) -> CommandResult<StoreGuard<'_>> {
        let guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
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

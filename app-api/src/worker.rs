//! The background sync: a thread with its own connection to the device's store. Every few seconds
//! it asks the relay's `/health` (the online mark) and, when the relay answers, syncs if anything
//! is waiting to go up, if someone asked, or if the last sync is a minute old. Progress is kept
//! for the UI's progress bar.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gridwalk_core::store::RelayLink;
use gridwalk_core::Clock;
use gridwalk_transport::client::{self, Progress};

use crate::lock::{KeyCell, WorkerStore};
use crate::CommandError;

/// What the worker calls when the relay says this device is revoked (the app wipes itself).
pub(crate) type OnRevoked = Arc<dyn Fn(&RelayLink) + Send + Sync>;

/// How often the worker looks at the relay and how often it syncs with nothing waiting.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    pub check_every: Duration,
    pub refresh_every: Duration,
    /// Whether to sync by itself at all (tests of the commands alone turn it off).
    pub automatic: bool,
    /// How long a staff member stays signed in on a hall PC without a command (see `session`).
    pub sign_in_idle: Duration,
    /// How long a walker's phone stays unlocked without her at the screen (see `lock`).
    pub app_lock_idle: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        // A look at the relay twice a second: a walker back in range sees it within a second.
        SyncSettings {
            check_every: Duration::from_millis(500),
            refresh_every: Duration::from_secs(60),
            automatic: true,
            sign_in_idle: crate::session::IDLE_LIMIT,
            app_lock_idle: crate::lock::APP_LOCK_IDLE,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SyncSnapshot {
    pub online: bool,
    pub syncing: bool,
    pub progress: Option<Progress>,
    pub last_error: Option<CommandError>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<SyncSnapshot>,
    /// Someone asked for a sync now (the button, or a new enrolment).
    requested: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
    cancel: AtomicBool,
}

pub(crate) struct SyncHandle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SyncHandle {
    pub fn start(
        store_path: PathBuf,
        keys: Arc<KeyCell>,
        clock: Arc<dyn Clock>,
        settings: SyncSettings,
        on_revoked: OnRevoked,
    ) -> SyncHandle {
        let shared = Arc::new(Shared::default());
        let thread = if settings.automatic {
            let worker = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("gridwalk-sync".into())
                    .spawn(move || run(worker, WorkerStore::new(store_path, keys), clock, settings, on_revoked))
                    .expect("the sync thread starts"),
            )
        } else {
            None
        };
        SyncHandle { shared, thread: Mutex::new(thread) }
    }

    pub fn snapshot(&self) -> SyncSnapshot {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks for a sync as soon as the relay answers.
    pub fn request(&self) {
        *self.shared.requested.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
    }

    /// Something new waits to go up: look at the relay now rather than at the next tick.
    pub fn nudge(&self) {
        self.shared.wake.notify_all();
    }

    /// `nudge`, for another thread to call (the photo worker, after it attached a photo).
    pub fn nudger(&self) -> Box<dyn Fn() + Send> {
        let shared = self.shared.clone();
        Box::new(move || shared.wake.notify_all())
    }

    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cancel.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn run(
    shared: Arc<Shared>,
    mut store: WorkerStore,
    clock: Arc<dyn Clock>,
    settings: SyncSettings,
    on_revoked: OnRevoked,
) {
    let mut last_success: Option<Instant> = None;
    loop {
        // Sleep until the next tick, or until someone asks or nudges.
        {
            let requested = shared.requested.lock().unwrap_or_else(|p| p.into_inner());
            if !*requested {
                let _ = shared.wake.wait_timeout(requested, settings.check_every);
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        // Held for this round: a wipe waits for it, and none starts during a wipe.
        let gate = store.gate();
        let _work = gate.gate.read().unwrap_or_else(|p| p.into_inner());
        let data_dir = store.data_dir().to_path_buf();
        let Some(s) = store.get("sync worker") else { continue };
        let link = match s.relay_link() {
            Ok(Some(link)) => link,
            _ => continue,
        };
        let online = client::relay_reachable(&link.url);
        let requested = std::mem::take(&mut *shared.requested.lock().unwrap_or_else(|p| p.into_inner()));
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.online = online;
            if !online && requested {
                state.last_error =
                    Some(CommandError::new("relay_unreachable", format!("the relay at {} does not answer", link.url)));
            }
        }
        if !online {
            continue;
        }
        let waiting = client::pending_documents(s).map(|d| !d.is_empty()).unwrap_or(false)
            || s.unacknowledged_photos().map(|p| !p.is_empty()).unwrap_or(false)
            || s.wanted_photos().map(|p| !p.is_empty()).unwrap_or(false);
        let stale = last_success.is_none_or(|t| t.elapsed() >= settings.refresh_every);
        if !(requested || waiting || stale) {
            continue;
        }
        // A forgotten-PIN store set aside on this phone: its hand-over moves on a step, on the
        // rounds that sync (not on every look at the relay), and what it hands over goes up
        // with this round's push.
        if link.role == "walker" {
            if let Some(key) = gate.get() {
                let now = gridwalk_core::time::Timestamp::from(clock.now());
                crate::handover::advance(&data_dir, s, &key, &link, now);
            }
        }
        {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.syncing = true;
            state.progress = Some(Progress::default());
        }
        shared.cancel.store(false, Ordering::SeqCst);
        let progress_state = shared.clone();
        let result = client::sync_over_http(s, &shared.cancel, &mut |p: &Progress| {
            progress_state.state.lock().unwrap_or_else(|p| p.into_inner()).progress = Some(p.clone());
        });
        // Asked of the relay before the state is locked: the app's status must not wait on it.
        let revoked = matches!(&result, Err(gridwalk_core::CoreError::Relay { status: 401, code, .. }) if code == "device_revoked");
        let proven = revoked && revocation_proven(&link);
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.syncing = false;
        match result {
            Ok(progress) => {
                tracing::info!(pushed = progress.docs_pushed, pulled = progress.docs_pulled, at = %clock.now(), "sync finished");
                state.progress = Some(progress);
                state.last_error = None;
                if let Err(e) = s.set_last_sync(gridwalk_core::time::Timestamp::from(clock.now()).millis()) {
                    tracing::warn!("cannot record the sync time: {e}");
                }
                // Who saw a full number or exported residents' data, for the admin's page.
                crate::access::send_lines(s, &link, gridwalk_core::time::Timestamp::from(clock.now()).millis());
                last_success = Some(Instant::now());
            }
            Err(gridwalk_core::CoreError::Relay { status: 401, code, .. }) if code == "device_revoked" && !proven => {
                // Said by someone who cannot prove it (anyone may answer in the relay's place on
                // an open network): nothing is destroyed, and the walker is told.
                tracing::error!("a device_revoked answer came without the relay's signature; nothing was wiped");
                state.last_error = Some(CommandError::new(
                    "revocation_unverified",
                    "something answering as the relay said this device is revoked, but could not prove it; nothing was removed",
                ));
            }
            Err(gridwalk_core::CoreError::Relay { status: 401, code, .. }) if code == "device_revoked" => {
                // The hall revoked this device: it pushes nothing more and forgets everything.
                drop(state);
                store.close();
                drop(_work);
                on_revoked(&link);
                let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                state.progress = None;
                state.last_error = Some(CommandError::new(
                    "device_revoked",
                    "the hall revoked this device; its records were removed from it",
                ));
            }
            Err(e) => {
                tracing::warn!("sync failed: {e}");
                state.online = !matches!(e, gridwalk_core::CoreError::Network(_));
                state.last_error = Some(e.into());
            }
        }
    }
}

/// Whether a `device_revoked` answer is the relay's own signed word (see
/// `client::revocation_is_genuine`). Not proven when the proof cannot be had now: the next
/// round asks again, and a device is never wiped on doubt.
fn revocation_proven(link: &gridwalk_core::store::RelayLink) -> bool {
    match client::revocation_is_genuine(link) {
        Ok(genuine) => genuine,
        Err(e) => {
            tracing::warn!("cannot check the relay's revocation now: {e}");
            false
        }
    }
}

//! The background photo worker: a thread with its own connection to the device's store that
//! shrinks and attaches the photos a request was saved with (see `gridwalk_core::store`'s photo
//! queue). It takes one photo at a time, so a cheap phone never holds two decoded 12-megapixel
//! images at once, and it wakes as soon as a command queues a photo, or every few seconds (which
//! also picks up, after a restart, the photos an app killed mid-way left waiting).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gridwalk_core::photo::IngestOptions;
use gridwalk_core::store::PhotoProcessed;

use crate::lock::{KeyCell, WorkerStore};

/// How long the worker sleeps when nothing wakes it. A queued photo wakes it at once; this only
/// bounds how late it notices a store that appeared (enrolment) or a storage error that passed.
const IDLE_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Shared {
    /// Set by `wake` and taken by the worker, so that a wake-up between two looks is not lost.
    woken: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
}

pub(crate) struct PhotoWorker {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl PhotoWorker {
    /// Starts the worker on the store at `path` (which may not exist yet). `attached` runs after
    /// each photo is attached: the app uses it to ask the sync worker to send it up.
    pub fn start(path: PathBuf, keys: Arc<KeyCell>, attached: Box<dyn Fn() + Send>) -> PhotoWorker {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("gridwalk-photos".into())
            .spawn(move || run(worker, WorkerStore::new(path, keys), attached))
            .map_err(|e| tracing::error!("the photo worker cannot start: {e}"))
            .ok();
        PhotoWorker { shared, thread: Mutex::new(thread) }
    }

    /// A photo was queued: process it now rather than at the next tick.
    pub fn wake(&self) {
        *self.shared.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
    }

    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.wake();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn run(shared: Arc<Shared>, mut store: WorkerStore, attached: Box<dyn Fn() + Send>) {
    let options = IngestOptions::default();
    // Storage errors in a row on the same photo: after three it is set aside as failed, so one
    // photo the store cannot take does not hold up every photo behind it.
    let mut stuck: (i64, u32) = (0, 0);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let mut busy = false;
        let gate = store.gate();
        let work = gate.gate.read().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = store.get("photo worker") {
            match s.next_queued_photo() {
                Ok(Some(id)) => {
                    busy = true;
                    match s.process_queued_photo(id, &options) {
                        Ok(PhotoProcessed::Attached(entry)) => {
                            tracing::info!(photo = %entry.hash, "waiting photo attached");
                            attached();
                        }
                        Ok(PhotoProcessed::Failed(e)) => tracing::warn!(queued = id, "a waiting photo failed: {e}"),
                        Ok(PhotoProcessed::Gone) => {}
                        Err(e) => {
                            // Storage trouble (a full disk): the photo keeps waiting; try again
                            // after a pause rather than spinning on it.
                            tracing::warn!(queued = id, "cannot process a waiting photo now: {e}");
                            stuck = if stuck.0 == id { (id, stuck.1 + 1) } else { (id, 1) };
                            if stuck.1 >= 3 {
                                let _ = s.set_queued_photo_failed(id, &e);
                            }
                            busy = false;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("the photo worker cannot read the queue: {e}"),
            }
        }
        drop(work);
        if busy {
            continue;
        }
        let woken = shared.woken.lock().unwrap_or_else(|p| p.into_inner());
        let mut woken = if *woken {
            woken
        } else {
            shared.wake.wait_timeout(woken, IDLE_WAIT).map(|(g, _)| g).unwrap_or_else(|p| p.into_inner().0)
        };
        *woken = false;
    }
}

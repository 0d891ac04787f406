//! `join` and `sync`: enrol this device with the hall's relay, and exchange changes with it.

use std::io::Write;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use gridwalk_transport::client;

use crate::table::time_text;
use crate::Env;

pub fn join(env: &Env, relay: &str, code: &str, name: Option<String>) -> Result<()> {
    let store = env.open()?;
    let name = name.unwrap_or_else(|| store.identity().device.clone());
    let link = client::join(&store, relay, code, &name)?;
    env.emit(&link, || {
        let grids = if link.grids.is_empty() { "every grid".to_string() } else { link.grids.join(", ") };
        format!("joined {} as {} ({}), seeing {grids}", link.url, link.device_id, link.role)
    })
}

pub fn sync(env: &Env, resend_all: bool) -> Result<()> {
    let mut store = env.open()?;
    if store.relay_link()?.is_none() {
        return Err(gridwalk_core::CoreError::NotJoined.into());
    }
    if resend_all {
        store.requeue_all_documents(env.now)?;
    }
    let cancel = AtomicBool::new(false);
    let json = env.json;
    let mut on_progress = |p: &client::Progress| {
        if !json {
            // One line rewritten in place: a progress bar for a terminal.
            eprint!(
                "\rsync {:>3}%: up {}/{} documents ({} bytes), down {} documents ({} bytes); photos up {}/{} ({}/{} bytes), down {}/{} ({} bytes)   ",
                (p.fraction() * 100.0).floor(),
                p.docs_pushed,
                p.docs_to_push,
                p.bytes_pushed,
                p.docs_pulled,
                p.bytes_pulled,
                p.photos_uploaded,
                p.photos_to_upload,
                p.photo_bytes_up,
                p.photo_bytes_to_upload,
                p.photos_downloaded,
                p.photos_to_download,
                p.photo_bytes_down
            );
            let _ = std::io::stderr().flush();
        }
    };
    let progress = client::sync_over_http(&store, &cancel, &mut on_progress)?;
    if !json {
        eprintln!();
        if progress.photos_waiting > 0 {
            eprintln!(
                "{} photos are not on the relay yet (their phone has not synced them); the next sync fetches them",
                progress.photos_waiting
            );
        }
        for problem in &progress.photo_problems {
            eprintln!(
                "photo {} not synced: {} ({}); the next sync tries again",
                problem.hash, problem.message, problem.code
            );
        }
    }
    store.set_last_sync(env.now.millis())?;
    env.emit(&progress, || format!("sync finished at {}", time_text(Some(env.now.millis()))))
}

pub fn status(env: &Env) -> Result<()> {
    let store = env.open()?;
    let link = store.relay_link()?;
    let waiting = client::pending_documents(&store)?;
    let last = store.last_sync()?;
    let value = serde_json::json!({ "relay": link, "waiting_documents": waiting.len(), "last_sync": last });
    env.emit(&value, || {
        let relay =
            link.as_ref().map(|l| format!("{} ({})", l.url, l.device_id)).unwrap_or_else(|| "not joined".into());
        format!("relay: {relay}\nwaiting to go up: {} documents\nlast sync: {}", waiting.len(), time_text(last))
    })
}

//! A forgotten PIN, continued: the store set aside in `held/` hands its unsent work to the
//! walker's new enrolment once the hall confirmed it is the same walker (issue 14; the relay's
//! side is `gridwalk_relay::handover`).
//!
//! Each held store goes, one sync round at a time, through:
//!
//! 1. **asked**: the phone made a one-time hand-over key, sealed it under its new store's key in
//!    `handover.json` beside the held store, and sent the old store's escrowed key with the
//!    key's public half to the relay (`POST /v1/handovers`);
//! 2. **pending** until an admin at the hall confirms with her PIN; then **released**: the relay
//!    has wrapped the old store key to the hand-over key;
//! 3. **taken**: the phone opened the old store and took its unsent documents and photos into
//!    its own outbox (`Store::take_over_unsent`), which the same sync then pushes;
//! 4. the relay is told (`POST /v1/handovers/done`), the old store's key is destroyed and its
//!    folder removed; a small receipt (`held/done-….json`) tells the walker what came over.
//!
//! Every step is written before the next begins and can run again, so a phone switched off at
//! any point finishes at a later round. A held store whose key was never escrowed (set aside by
//! an app from before escrow) stays as it is: only its old PIN opens it.

use std::path::{Path, PathBuf};

use gridwalk_core::store::keys::{self, HandoverKey, StoreKey};
use gridwalk_core::store::{RelayLink, Store};
use gridwalk_transport::client;
use serde::{Deserialize, Serialize};

use crate::{App, CommandError, CommandResult, STORE_FILE};

/// Where a held store's hand-over stands, as the phone keeps it beside the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HandoverFile {
    /// The hand-over key's secret half, sealed under the new store's key.
    sealed_key: String,
    /// `asked`, `pending`, `released` or `taken`.
    state: String,
    /// The old device, as the relay read it from the escrowed key.
    #[serde(default)]
    from_device: Option<String>,
    #[serde(default)]
    taken_documents: u32,
    #[serde(default)]
    taken_photos: u32,
    /// Unsent documents of grids the new enrolment does not serve, left behind.
    #[serde(default)]
    left_behind: u32,
}

const HANDOVER_FILE: &str = "handover.json";

/// A held store as the walker's screen shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldStoreDto {
    /// When it was set aside (milliseconds).
    pub set_aside_at: i64,
    /// `no_escrow` (only its old PIN opens it), `asked`, `pending` (waiting for the hall),
    /// `released`, `taken`, or `done` (its work came over; the store is gone).
    pub state: String,
    pub taken_documents: u32,
    pub taken_photos: u32,
    /// Unsent records of grids her new enrolment does not serve (the hall moved her meanwhile):
    /// the relay would refuse them from it, so they stayed behind and went with the old store.
    pub left_behind: u32,
}

fn held_root(data_dir: &Path) -> PathBuf {
    data_dir.join("held")
}

/// `held/<moment>-<n>`: the moment the store was set aside.
fn set_aside_at(dir: &Path) -> i64 {
    dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.split('-').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn read_file(dir: &Path) -> Option<HandoverFile> {
    serde_json::from_slice(&std::fs::read(dir.join(HANDOVER_FILE)).ok()?).ok()
}

fn write_file(dir: &Path, file: &HandoverFile) -> std::io::Result<()> {
    let text = serde_json::to_vec(file).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{HANDOVER_FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(tmp, dir.join(HANDOVER_FILE))
}

/// The held stores and finished hand-overs, for the walker's screen.
pub(crate) fn held_stores(data_dir: &Path) -> Vec<HeldStoreDto> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(held_root(data_dir)).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("done-").and_then(|n| n.strip_suffix(".json")) {
            if let Some(done) = std::fs::read(&path).ok().and_then(|t| serde_json::from_slice::<HandoverFile>(&t).ok())
            {
                out.push(HeldStoreDto {
                    set_aside_at: rest.split('-').next().and_then(|n| n.parse().ok()).unwrap_or(0),
                    state: "done".into(),
                    taken_documents: done.taken_documents,
                    taken_photos: done.taken_photos,
                    left_behind: done.left_behind,
                });
            }
            continue;
        }
        if !path.is_dir() {
            continue;
        }
        let store = path.join(STORE_FILE);
        let escrowed = keys::escrowed(&store).ok().flatten().is_some();
        let file = read_file(&path);
        out.push(HeldStoreDto {
            set_aside_at: set_aside_at(&path),
            state: match (&file, escrowed) {
                (Some(f), _) => f.state.clone(),
                (None, true) => "asked".into(),
                (None, false) => "no_escrow".into(),
            },
            taken_documents: file.as_ref().map_or(0, |f| f.taken_documents),
            taken_photos: file.as_ref().map_or(0, |f| f.taken_photos),
            left_behind: file.as_ref().map_or(0, |f| f.left_behind),
        });
    }
    out.sort_by_key(|h| h.set_aside_at);
    out
}

/// Moves every held store one step on (see the module's comment). Called by the sync worker of
/// a walker's phone before it syncs, with its own store and key. Returns whether work was taken
/// over (the sync that follows pushes it).
pub(crate) fn advance(
    data_dir: &Path,
    store: &Store,
    key: &StoreKey,
    link: &RelayLink,
    now: gridwalk_core::time::Timestamp,
) -> bool {
    if link.role != "walker" {
        return false;
    }
    let mut taken_any = false;
    let Ok(entries) = std::fs::read_dir(held_root(data_dir)) else { return false };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        match advance_one(&dir, store, key, link, now) {
            Ok(taken) => taken_any |= taken,
            Err(e) => tracing::warn!(held = %dir.display(), "the hand-over of a held store waits: {e}"),
        }
    }
    taken_any
}

fn advance_one(
    dir: &Path,
    store: &Store,
    key: &StoreKey,
    link: &RelayLink,
    now: gridwalk_core::time::Timestamp,
) -> Result<bool, String> {
    let held_store = dir.join(STORE_FILE);
    let Some(escrowed) = keys::escrowed(&held_store).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    // The hand-over key, made once and kept sealed under this store's key; made again when it
    // was sealed under another (an enrolment since set aside itself).
    let (mut file, handover_key) = match read_file(dir) {
        Some(f) => match HandoverKey::open_under(&f.sealed_key, key) {
            Ok(k) => (f, k),
            Err(_) => fresh_file(dir, key)?,
        },
        None => fresh_file(dir, key)?,
    };
    if file.state == "asked" || file.from_device.is_none() {
        let view = client::request_handover(
            link,
            &gridwalk_core::sync::protocol::HandoverRequest {
                escrowed: escrowed.clone(),
                reply_recipient: handover_key.recipient(),
            },
        )
        .map_err(|e| e.to_string())?;
        file.from_device = Some(view.from_device);
        file.state = view.state;
        write_file(dir, &file).map_err(|e| e.to_string())?;
    }
    let Some(from_device) = file.from_device.clone() else { return Ok(false) };
    let mut taken_now = false;
    if file.state != "taken" {
        let views = client::handovers(link).map_err(|e| e.to_string())?;
        let Some(view) = views.into_iter().find(|v| v.from_device == from_device) else {
            return Err(format!("the relay no longer knows the hand-over of {from_device}"));
        };
        match (view.state.as_str(), view.released_key) {
            ("released", Some(released)) => {
                let (device, old_key) = handover_key.open_released(&released).map_err(|e| e.to_string())?;
                if device != from_device {
                    return Err(format!("the released key is {device}'s, not {from_device}'s"));
                }
                let old = Store::open_encrypted(&held_store, old_key).map_err(|e| e.to_string())?;
                let taken = store.take_over_unsent(&old, now).map_err(|e| e.to_string())?;
                drop(old);
                tracing::info!(?taken, from = %from_device, "the unsent work of a forgotten-PIN store was taken over");
                file.state = "taken".into();
                file.taken_documents = taken.documents;
                file.taken_photos = taken.photos;
                file.left_behind = taken.outside_grids;
                write_file(dir, &file).map_err(|e| e.to_string())?;
                taken_now = true;
            }
            (state, _) => {
                if file.state != state {
                    file.state = state.to_string();
                    write_file(dir, &file).map_err(|e| e.to_string())?;
                }
                return Ok(false);
            }
        }
    }
    // Taken: the relay hears of it, then the old store goes, key first.
    client::finish_handover(
        link,
        &gridwalk_core::sync::protocol::HandoverDone {
            from_device: from_device.clone(),
            taken_documents: file.taken_documents,
            taken_photos: file.taken_photos,
        },
    )
    .map_err(|e| e.to_string())?;
    keys::destroy(&held_store).map_err(|e| e.to_string())?;
    let receipt = dir.with_file_name(format!("done-{}.json", dir.file_name().and_then(|n| n.to_str()).unwrap_or("0")));
    file.sealed_key.clear();
    if let Ok(text) = serde_json::to_vec(&file) {
        let _ = std::fs::write(receipt, text);
    }
    std::fs::remove_dir_all(dir).map_err(|e| e.to_string())?;
    Ok(taken_now)
}

fn fresh_file(dir: &Path, key: &StoreKey) -> Result<(HandoverFile, HandoverKey), String> {
    let handover_key = HandoverKey::generate();
    let file = HandoverFile {
        sealed_key: handover_key.seal_under(key).map_err(|e| e.to_string())?,
        state: "asked".into(),
        from_device: None,
        taken_documents: 0,
        taken_photos: 0,
        left_behind: 0,
    };
    write_file(dir, &file).map_err(|e| e.to_string())?;
    Ok((file, handover_key))
}

/// A hand-over as the hall console lists it: people's and devices' names, not ids (the old
/// device's id is kept only to say which one to confirm).
#[derive(Debug, Clone, Serialize)]
pub struct HandoverDto {
    pub from_device: String,
    pub from_device_name: String,
    pub to_device_name: String,
    pub walker: String,
    pub walker_name: String,
    /// `pending`, `released` or `done`.
    pub state: String,
    pub requested_at: i64,
    pub confirmed_by_name: Option<String>,
    pub confirmed_at: Option<i64>,
    pub done_at: Option<i64>,
    pub taken_documents: Option<u32>,
    pub taken_photos: Option<u32>,
}

fn hall_link(app: &App) -> CommandResult<(RelayLink, Vec<(String, String)>)> {
    let store = app.store()?;
    let link = store.relay_link()?.ok_or(gridwalk_core::CoreError::NotJoined)?;
    if link.role == "walker" {
        return Err(CommandError::new("forbidden", "hand-overs are confirmed at a hall PC"));
    }
    let mut names: Vec<(String, String)> = store.walkers()?.into_iter().map(|w| (w.id, w.name)).collect();
    names.extend(store.staff()?.into_iter().map(|m| (m.id, m.name)));
    Ok((link, names))
}

fn dto(view: gridwalk_core::sync::protocol::HandoverView, names: &[(String, String)]) -> HandoverDto {
    let name = |id: &str| names.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone()).unwrap_or_else(|| id.to_string());
    HandoverDto {
        walker_name: name(&view.walker),
        confirmed_by_name: view.confirmed_by.as_deref().map(name),
        from_device: view.from_device,
        from_device_name: view.from_device_name,
        to_device_name: view.to_device_name,
        walker: view.walker,
        state: view.state,
        requested_at: view.requested_at,
        confirmed_at: view.confirmed_at,
        done_at: view.done_at,
        taken_documents: view.taken_documents,
        taken_photos: view.taken_photos,
    }
}

/// Every hand-over the relay holds, newest first, for the hall console.
pub(crate) fn hall_handovers(app: &App) -> CommandResult<Vec<HandoverDto>> {
    let (link, names) = hall_link(app)?;
    let mut list: Vec<HandoverDto> = client::handovers(&link)?.into_iter().map(|v| dto(v, &names)).collect();
    list.sort_by_key(|h| std::cmp::Reverse(h.requested_at));
    Ok(list)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ConfirmHandoverArgs {
    pub from_device: String,
    /// The PIN of the admin signed in here: the relay checks it.
    pub my_pin: String,
}

/// The admin signed in on this hall PC confirms, with her own PIN, that the walker in front of
/// her is the one whose earlier phone store is handed over.
pub(crate) fn confirm_handover(app: &App, a: ConfirmHandoverArgs) -> CommandResult<HandoverDto> {
    let (link, names) = hall_link(app)?;
    let actor = {
        let store = app.store()?;
        crate::commands::context(app, &store)?.actor
    };
    let view = client::confirm_handover(
        &link,
        &gridwalk_core::sync::protocol::ConfirmHandoverRequest {
            actor,
            actor_pin: a.my_pin.trim().to_string(),
            from_device: a.from_device,
        },
    )?;
    Ok(dto(view, &names))
}

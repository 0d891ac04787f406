//! One function per command; each parses its arguments, calls the core once and shapes the
//! answer. Domain rules stay in the core: what is here is translation.

use std::collections::HashMap;

use base64::Engine as _;
use gridwalk_core::docs::{GeoPoint, Reporter, Source, Urgency, VisitKind, VisitTarget};
use gridwalk_core::lifecycle::{self, Action, Assignment, Rating, Status, TriageDecision};
use gridwalk_core::model::{Level, CATEGORIES};
use gridwalk_core::photo::{attach, IngestOptions};
use gridwalk_core::privacy::mask_phone;
use gridwalk_core::search::place_matches;
use gridwalk_core::store::{
    Identity, NewRequest, NewVisit, PhotoToQueue, RequestFilter, RequestSort, Store, VisitFilter,
};
use gridwalk_core::time::Timestamp;
use gridwalk_transport::client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::dto::*;
use crate::{App, CommandError, CommandResult, STORE_FILE};

/// A household or enterprise not visited within this many days is marked (every grid walked
/// within 14 days, as the seeds ask).
const STALE_DAYS: i64 = 14;

pub(crate) fn dispatch(app: &App, name: &str, args: Value) -> CommandResult<Value> {
    match name {
        "status" => out(status(app)?),
        "enroll" => out(enroll(app, parse(args)?)?),
        "unlock" => out(unlock(app, parse(args)?)?),
        "lock" => {
            app.lock.lock_now(&app.store_path())?;
            out(status(app)?)
        }
        "set_device_pin" => out(set_device_pin(app, parse(args)?)?),
        "set_store_aside" => out(set_store_aside(app, parse(args)?)?),
        "reveal_phone" => out(reveal_phone(app, parse(args)?)?),
        "access_log" => out(access_log(app, parse(args)?)?),
        "sync_now" => {
            app.sync.request();
            out(status(app)?)
        }
        "staff" => out(app.store()?.staff()?),
        "issue_enrollment" => out(issue_enrollment(app, parse(args)?)?),
        "handovers" => out(crate::handover::hall_handovers(app)?),
        "confirm_handover" => out(crate::handover::confirm_handover(app, parse(args)?)?),
        "sign_in" => out(crate::session::sign_in(app, args)?),
        "sign_out" => out(crate::session::sign_out(app)?),
        // Someone tapped or typed: `App::call` has kept her session going.
        "still_here" => out(status(app)?),
        "set_pin" => {
            // The staff list is the relay's: it checks the asker's own PIN and writes the
            // change, which comes back here with the next pull (asked for at once).
            let a: SetPinArgs = parse(args)?;
            let (request, link) = {
                let store = app.store()?;
                let request =
                    store.staff_pin_request(&context(app, &store)?, a.person.trim(), a.pin.trim(), a.my_pin.trim())?;
                (request, store.relay_link()?.ok_or(gridwalk_core::CoreError::NotJoined)?)
            };
            gridwalk_transport::client::change_staff(&link, &request)?;
            app.sync.request();
            out(app.store()?.staff()?)
        }
        "reference" => out(reference(app)?),
        "grids" => out(grids(app)?),
        "quick_phrases" => out(app.store()?.quick_phrases()?),
        "places" => out(places(app, parse(args)?)?),
        "record_visit" => out(record_visit(app, parse(args)?)?),
        "visits" => out(visits(app, parse(args)?)?),
        "raise_request" => out(raise_request(app, parse(args)?)?),
        "add_photo" => out(add_photo(app, parse(args)?)?),
        "retry_photo" => retry_photo(app, parse(args)?),
        "discard_photo" => discard_photo(app, parse(args)?),
        "requests" => out(requests(app, parse(args)?)?),
        "request" => {
            let a: IdArgs = parse(args)?;
            out(request_detail(app, &*app.store()?, &a.id)?)
        }
        "act" => out(act(app, parse(args)?)?),
        "photo" => out(photo(app, parse(args)?)?),
        "draft_get" => {
            let a: DraftKeyArgs = parse(args)?;
            let draft = app.store()?.draft(&a.key)?;
            Ok(match draft {
                Some((text, at)) => json!({
                    "value": serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
                    "updated_at": at,
                }),
                None => json!({ "value": null, "updated_at": null }),
            })
        }
        "draft_put" => {
            let a: DraftPutArgs = parse(args)?;
            app.store()?.put_draft(&a.key, &a.value.to_string(), app.now())?;
            Ok(json!({}))
        }
        "draft_delete" => {
            let a: DraftKeyArgs = parse(args)?;
            app.store()?.delete_draft(&a.key)?;
            Ok(json!({}))
        }
        // The hall console's and the meetings' commands live in their own modules.
        other => crate::meetings::dispatch(app, other, args),
    }
}

pub(crate) fn unknown(name: &str) -> CommandResult<Value> {
    Err(CommandError::new("unknown_command", format!("there is no command '{name}'")))
}

pub(crate) fn parse<T: DeserializeOwned>(args: Value) -> CommandResult<T> {
    // A command without arguments may be sent `null`.
    let args = if args.is_null() { json!({}) } else { args };
    serde_json::from_value(args).map_err(|e| CommandError::new("bad_arguments", e.to_string()))
}

pub(crate) fn out<T: Serialize>(value: T) -> CommandResult<Value> {
    serde_json::to_value(value).map_err(|e| CommandError::new("internal", e.to_string()))
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> CommandError {
    CommandError::new("invalid_input", format!("invalid {field}: {}", message.into()))
}

// ----- device and sync -------------------------------------------------------------------------

pub(crate) fn status(app: &App) -> CommandResult<AppStatus> {
    let sync = app.sync.snapshot();
    let now = app.now().millis();
    let guard = app.store.lock().unwrap_or_else(|p| p.into_inner());
    let lock = app.lock.status(&app.store_path(), guard.as_ref(), now);
    let Some(store) = guard.as_ref() else {
        return Ok(AppStatus {
            // A store locked since the app started is an enrolled device's.
            enrolled: lock.locked,
            lock,
            device_name: None,
            walker: None,
            role: None,
            relay_url: None,
            grids: vec![],
            online: false,
            syncing: false,
            progress: None,
            last_sync_at: None,
            // A wiped device says why it has nothing.
            last_error: sync.last_error,
            pending_documents: 0,
            pending_photos: 0,
            processing_photos: 0,
            failed_photos: 0,
            sign_in_required: false,
            signed_in: None,
            held_stores: crate::handover::held_stores(&app.data_dir),
            now,
        });
    };
    let link = store.relay_link()?;
    let queue = store.photo_queue_counts()?;
    let identity = store.identity().clone();
    let walker_name = store
        .walkers()?
        .into_iter()
        .find(|w| w.id == identity.walker)
        .map(|w| w.name)
        .unwrap_or_else(|| identity.walker.clone());
    Ok(AppStatus {
        enrolled: link.is_some(),
        lock,
        device_name: store.device_name()?,
        walker: Some(WalkerRef { id: identity.walker.clone(), name: walker_name }),
        role: link.as_ref().map(|l| l.role.clone()),
        relay_url: link.as_ref().map(|l| l.url.clone()),
        grids: link.as_ref().map(|l| l.grids.clone()).unwrap_or_default(),
        online: sync.online,
        syncing: sync.syncing,
        progress: sync.progress.as_ref().map(ProgressDto::of),
        last_sync_at: store.last_sync()?,
        last_error: sync.last_error,
        pending_documents: client::pending_documents(store)?.len(),
        pending_photos: store.unacknowledged_photos()?.len(),
        processing_photos: queue.processing,
        failed_photos: queue.failed,
        sign_in_required: crate::session::required(store)?,
        signed_in: app.sessions.signed_in(),
        held_stores: crate::handover::held_stores(&app.data_dir),
        now,
    })
}

#[derive(serde::Deserialize)]
struct RevealPhoneArgs {
    /// `household`, `enterprise` or `request` (its resident reporter's number).
    of: String,
    id: String,
}

/// A resident's full phone number, shown on a tap: recorded in the access log with who and when.
fn reveal_phone(app: &App, a: RevealPhoneArgs) -> CommandResult<Value> {
    use gridwalk_core::store::access::PhoneOf;
    let of = match a.of.as_str() {
        "household" => PhoneOf::Household,
        "enterprise" => PhoneOf::Enterprise,
        "request" => PhoneOf::Request,
        _ => return Err(invalid("of", "say whose number: household, enterprise or request")),
    };
    let store = app.store()?;
    let ctx = context(app, &store)?;
    Ok(json!({ "phone": store.reveal_phone(&ctx, of, a.id.trim())? }))
}

#[derive(serde::Deserialize)]
struct AccessLogArgs {
    #[serde(default)]
    limit: Option<usize>,
}

/// The access log of every device (full numbers shown, data exported), from the relay: for an
/// admin only (see `crate::access`).
fn access_log(app: &App, a: AccessLogArgs) -> CommandResult<Vec<crate::access::AccessRow>> {
    crate::access::access_log(app, a.limit.unwrap_or(200).min(1000))
}

#[derive(serde::Deserialize)]
struct UnlockArgs {
    pin: String,
}

/// The PIN pad: checks the walker's PIN and unlocks, opening the store if it was locked since
/// the app started.
fn unlock(app: &App, a: UnlockArgs) -> CommandResult<AppStatus> {
    let path = app.store_path();
    let key = app.lock.check_pin(&path, a.pin.trim(), app.now().millis())?;
    let mut guard = app.store.lock().unwrap_or_else(|p| p.into_inner());
    let opened_now = guard.is_none();
    if opened_now {
        // Unlocked only once the store is open: a store that cannot be opened leaves the app
        // locked (never looking unenrolled), and the workers get the key only after this open.
        *guard = Some(Store::open_encrypted(&path, key.clone())?);
    }
    drop(guard);
    app.lock.unlocked(key);
    if opened_now {
        app.sync.request();
        app.photos.wake();
    }
    status(app)
}

#[derive(serde::Deserialize)]
struct SetStoreAsideArgs {
    /// The walker said yes to "enrol again; the records here stay locked".
    confirm: bool,
}

/// A forgotten PIN: the locked store (its file, key file, photos) is moved, whole and still
/// encrypted, into `held/<moment>/` in the data folder, and the phone can be enrolled again.
/// Nothing is deleted: should the PIN come back to her, the hall can still open it. Only while
/// the app is locked by a PIN: an unlocked phone has nothing to forget.
fn set_store_aside(app: &App, a: SetStoreAsideArgs) -> CommandResult<AppStatus> {
    if !a.confirm {
        return Err(invalid("confirm", "say yes to enrolling again"));
    }
    let path = app.store_path();
    if !app.lock.is_locked() {
        return Err(CommandError::new("not_locked", "only a phone locked by a PIN nobody remembers is set aside"));
    }
    // As for a wipe: the workers lose the key and close their connections, work under way
    // finishes, the app's own connection closes, and only then do the files move.
    app.lock.keys.set(None);
    app.sync.nudge();
    app.photos.wake();
    if !app.lock.keys.wait_for_workers(std::time::Duration::from_secs(10)) {
        return Err(CommandError::new("busy", "the phone is still busy with its records; try again in a moment"));
    }
    let gate = app.lock.keys.gate.write().unwrap_or_else(|p| p.into_inner());
    drop(app.store.lock().unwrap_or_else(|p| p.into_inner()).take());
    let io = |what: String| move |e: std::io::Error| CommandError::new("io", format!("{what}: {e}"));
    let held_root = app.data_dir.join("held");
    std::fs::create_dir_all(&held_root).map_err(io(format!("cannot create {}", held_root.display())))?;
    // A folder of its own, never one made before (a clock set back must not mix two stores).
    let mut n = 0;
    let held = loop {
        let candidate = held_root.join(format!("{}-{n}", app.now().millis()));
        match std::fs::create_dir(&candidate) {
            Ok(()) => break candidate,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(io(format!("cannot create {}", candidate.display()))(e)),
        }
    };
    // The key file first; all or nothing, moved back on any failure, so a store is never left
    // half here and half there for an enrolment to take for "no store".
    let mut names: Vec<String> = std::fs::read_dir(&app.data_dir)
        .map_err(io(format!("cannot read {}", app.data_dir.display())))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(STORE_FILE))
        .collect();
    names.sort_by_key(|n| !n.ends_with(".key"));
    let mut moved: Vec<String> = Vec::new();
    for name in &names {
        if let Err(e) = std::fs::rename(app.data_dir.join(name), held.join(name)) {
            for back in moved.iter().rev() {
                let _ = std::fs::rename(held.join(back), app.data_dir.join(back));
            }
            return Err(io(format!("cannot move {name} aside"))(e));
        }
        moved.push(name.clone());
    }
    app.lock.forget_lock();
    drop(gate);
    debug_assert!(!path.exists());
    tracing::warn!(held = %held.display(), "a locked store was set aside for a new enrolment");
    status(app)
}

#[derive(serde::Deserialize)]
struct SetDevicePinArgs {
    pin: String,
    /// The PIN now, when the device has one.
    #[serde(default)]
    current_pin: Option<String>,
}

/// A walker chooses (or changes) the PIN her phone opens with. A store made before encryption
/// on a platform without a keystore is encrypted here, in place.
fn set_device_pin(app: &App, a: SetDevicePinArgs) -> CommandResult<AppStatus> {
    let path = app.store_path();
    gridwalk_core::pin::check_pin_shape(a.pin.trim())
        .map_err(|e| CommandError::new("invalid_input", format!("invalid pin: {e}")))?;
    let mut guard = app.store.lock().unwrap_or_else(|p| p.into_inner());
    let Some(store) = guard.as_ref() else {
        return Err(CommandError::new("not_enrolled", "this device has not been enrolled with a relay yet"));
    };
    // A phone belongs to its walker; a hall PC opens with its keystore and its staff sign in one
    // by one, so nobody at its screen may lock the others out with a PIN only she knows.
    if store.role()? != gridwalk_core::model::Role::Walker {
        return Err(CommandError::new("forbidden", "only a walker's phone has a PIN of its own"));
    }
    let was_plain = !store.is_encrypted();
    let current = a.current_pin.as_deref().map(str::trim);
    if was_plain {
        // The plain store's connection closes before the file is encrypted and renamed over.
        drop(guard.take());
    }
    let key = match app.lock.set_pin(&path, a.pin.trim(), current, app.now().millis()) {
        Ok(key) => key,
        Err(e) => {
            if was_plain {
                *guard = Some(Store::open(&path)?);
            }
            return Err(e);
        }
    };
    if was_plain {
        *guard = Some(Store::open_encrypted(&path, key.clone())?);
    }
    drop(guard);
    app.lock.share_key(key);
    app.sync.request();
    status(app)
}

fn enroll(app: &App, a: EnrollArgs) -> CommandResult<AppStatus> {
    let relay_url = a.relay_url.trim().trim_end_matches('/').to_string();
    if !(relay_url.starts_with("http://") || relay_url.starts_with("https://")) {
        return Err(invalid("relay_url", "the relay's address starts with http:// or https://"));
    }
    let device_name = a.device_name.trim();
    if device_name.is_empty() {
        return Err(invalid("device_name", "give this device a name the hall will recognise"));
    }
    {
        let guard = app.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = guard.as_ref() {
            if store.relay_link()?.is_some() {
                return Err(CommandError::new("already_enrolled", "this device is already enrolled with a relay"));
            }
        }
    }
    let pin = a.pin.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let path = app.data_dir.join(STORE_FILE);
    {
        let guard = app.store.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() && path.exists() {
            // A store file the app could not open (its key lost, or locked) is never replaced:
            // its records stay on the device. Said before the enrolment code is used up.
            return Err(CommandError::new(
                "store_locked",
                "this device already holds a store it cannot open; it is kept as it is",
            ));
        }
    }
    if !path.exists() {
        app.lock.check_new_store_lock(pin)?;
    }
    // The relay says whose device this is; only then can the store be created in her name.
    let link = client::enroll(&relay_url, a.code.trim(), device_name)?;
    let mut guard = app.store.lock().unwrap_or_else(|p| p.into_inner());
    let store = match guard.take() {
        Some(store) => store,
        None => {
            // Checked above; a store that appeared since is kept all the same.
            if path.exists() {
                return Err(CommandError::new(
                    "store_locked",
                    "this device already holds a store it cannot open; it is kept as it is",
                ));
            }
            // A key left by a store that was wiped or never finished belongs to nothing.
            gridwalk_core::store::keys::destroy(&path)?;
            let key = app.lock.key_for_new_store(&path, pin)?;
            let store = Store::create_encrypted(
                &path,
                Identity {
                    device: link.device_id.clone(),
                    walker: link.walker.clone().unwrap_or_else(|| device_name.to_string()),
                },
                key.clone(),
            )?;
            app.lock.share_key(key);
            store
        }
    };
    app.lock.clear_wipe_notice();
    store.set_relay_link(&link)?;
    store.set_device_name(device_name)?;
    *guard = Some(store);
    drop(guard);
    app.sync.request();
    status(app)
}

// ----- reference lists -------------------------------------------------------------------------

/// A one-time enrolment code for a new phone or hall PC, issued at the relay by the admin signed
/// in here, with what its QR code holds (the relay's address and the code).
fn issue_enrollment(app: &App, a: IssueEnrollmentArgs) -> CommandResult<Value> {
    let (request, link) = {
        let store = app.store()?;
        let link = store.relay_link()?.ok_or(gridwalk_core::CoreError::NotJoined)?;
        if link.role == "walker" {
            return Err(CommandError::new("forbidden", "a walker's phone does not enrol other devices"));
        }
        let ctx = context(app, &store)?;
        let request = gridwalk_core::sync::protocol::IssueEnrollmentRequest {
            actor: ctx.actor,
            actor_pin: a.my_pin.trim().to_string(),
            device_name: a.device_name.trim().to_string(),
            role: a.role,
            walker: a.walker,
            grids: a.grids,
        };
        (request, link)
    };
    let issued = gridwalk_transport::client::issue_enrollment(&link, &request)?;
    Ok(json!({
        "code": issued.code,
        "expires_at": issued.expires_at,
        "relay_url": link.url,
        "link": gridwalk_core::sync::protocol::enrolment_link(Some(&link.url), &issued.code),
    }))
}

fn reference(app: &App) -> CommandResult<ReferenceDto> {
    let store = app.store()?;
    Ok(ReferenceDto {
        categories: CATEGORIES
            .iter()
            .map(|c| CategoryDto { code: c.code.into(), zh: c.zh.into(), en: c.en.into() })
            .collect(),
        departments: store
            .departments()?
            .into_iter()
            .map(|d| DepartmentDto { id: d.id, name: d.name, level: d.level.as_str().into() })
            .collect(),
        walkers: store.walkers()?.into_iter().map(|w| WalkerDto { id: w.id, name: w.name, grids: w.grids }).collect(),
    })
}

/// The grids this device works in: its enrolled grids, or every grid for the hall.
fn my_grids(store: &Store) -> CommandResult<Vec<String>> {
    let enrolled = store.relay_link()?.map(|l| l.grids).unwrap_or_default();
    Ok(store.grids()?.into_iter().map(|g| g.id).filter(|g| enrolled.is_empty() || enrolled.contains(g)).collect())
}

fn grids(app: &App) -> CommandResult<Vec<GridSummary>> {
    let store = app.store()?;
    let areas = store.areas()?;
    let mine = my_grids(&store)?;
    let now = app.now();
    let mut out = Vec::new();
    for area in areas.iter().filter(|a| mine.contains(&a.id)) {
        let places = store.places_by_last_visit(&area.id, now, STALE_DAYS)?;
        out.push(GridSummary {
            id: area.id.clone(),
            name: area.name.clone(),
            village: area.parent.as_ref().and_then(|p| areas.iter().find(|a| &a.id == p)).map(|a| a.name.clone()),
            enterprise_grid: area.enterprise_grid,
            households: places.iter().filter(|p| p.kind == "household").count(),
            enterprises: places.iter().filter(|p| p.kind == "enterprise").count(),
            stale_places: places.iter().filter(|p| p.overdue_for_visit).count(),
        });
    }
    Ok(out)
}

fn places(app: &App, a: PlacesArgs) -> CommandResult<Vec<PlaceDto>> {
    let store = app.store()?;
    let query = a.query.unwrap_or_default();
    let households: HashMap<String, _> = store.households(&a.grid)?.into_iter().map(|h| (h.id.clone(), h)).collect();
    let enterprises: HashMap<String, _> = store.enterprises(&a.grid)?.into_iter().map(|e| (e.id.clone(), e)).collect();
    let mut out = Vec::new();
    for p in store.places_by_last_visit(&a.grid, app.now(), STALE_DAYS)? {
        let (micro_grid, tags, phone) = match p.kind.as_str() {
            "household" => households
                .get(&p.id)
                .map(|h| (h.micro_grid.clone(), h.tags.clone(), h.phone.clone()))
                .unwrap_or_default(),
            _ => enterprises.get(&p.id).map(|e| (None, e.tags.clone(), e.phone.clone())).unwrap_or_default(),
        };
        let tag_text = tags.join(" ");
        if !place_matches(&query, &[&p.name, &p.address, &p.id, &tag_text]) {
            continue;
        }
        out.push(PlaceDto {
            id: p.id,
            kind: p.kind,
            name: p.name,
            address: p.address,
            micro_grid,
            tags,
            phone: phone.as_deref().map(mask_phone),
            last_visited_at: p.last_visited_at,
            stale: p.overdue_for_visit,
        });
    }
    Ok(out)
}

// ----- visits ----------------------------------------------------------------------------------

fn gps(g: Option<GpsArgs>) -> Option<GeoPoint> {
    g.map(|g| GeoPoint { lat: g.lat, lon: g.lon, accuracy_m: g.accuracy_m })
}

fn record_visit(app: &App, a: NewVisitArgs) -> CommandResult<Value> {
    let store = app.store()?;
    let kind = VisitKind::parse(&a.kind)
        .ok_or_else(|| invalid("kind", format!("'{}' is not daily, sweep or evening_talk", a.kind)))?;
    let micro_grid = match &a.target {
        TargetArgs::Household { id } => {
            store.households(&a.grid)?.into_iter().find(|h| &h.id == id).and_then(|h| h.micro_grid)
        }
        _ => None,
    };
    let target = match a.target {
        TargetArgs::Household { id } => VisitTarget::Household { id },
        TargetArgs::Enterprise { id } => VisitTarget::Enterprise { id },
        TargetArgs::Place { address } => VisitTarget::Place { address },
    };
    let ctx = context(app, &store)?;
    let id = store.record_visit(
        &ctx,
        NewVisit {
            id: None,
            grid: a.grid,
            micro_grid,
            target,
            kind,
            visited_at: None,
            other_walkers: a.other_walkers,
            companions: a.companions.into_iter().map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect(),
            notes: a.notes,
            gps: gps(a.gps),
        },
    )?;
    Ok(json!({ "id": id }))
}

fn visits(app: &App, a: VisitsArgs) -> CommandResult<Value> {
    let store = app.store()?;
    let list = store.list_visits(&VisitFilter {
        grid: a.grid,
        target: a.target,
        limit: a.limit.unwrap_or(50).min(500),
        ..VisitFilter::default()
    })?;
    // The index keeps a visit's walkers as one comma-joined column; the UI gets a list.
    let list: Vec<Value> = list
        .into_iter()
        .map(|v| {
            let walkers: Vec<&str> = v.walkers.split(',').filter(|w| !w.is_empty()).collect();
            let mut value = serde_json::to_value(&v).unwrap_or(Value::Null);
            value["walkers"] = json!(walkers);
            value
        })
        .collect();
    out(list)
}

/// The moment, person and device of an action taken now: on a hall PC, the staff member
/// signed in (`sign_in_required` when nobody is).
pub(crate) fn context(app: &App, store: &Store) -> CommandResult<gridwalk_core::ActionContext> {
    let person = crate::session::acting_person(app, store)?;
    Ok(gridwalk_core::ActionContext::new(person, store.identity().device.clone(), app.now()))
}

// ----- requests --------------------------------------------------------------------------------

fn raise_request(app: &App, a: NewRequestArgs) -> CommandResult<Value> {
    let store = app.store()?;
    let urgency = Urgency::parse(&a.urgency)
        .ok_or_else(|| invalid("urgency", format!("'{}' is not low, normal, high or urgent", a.urgency)))?;
    let reporter = match a.reporter {
        ReporterArgs::Anonymous => Reporter::Anonymous,
        ReporterArgs::Resident { name, phone, household } => Reporter::Resident {
            name: name.trim().to_string(),
            phone: phone.map(|p| p.trim().to_string()).filter(|p| !p.is_empty()),
            household: household.filter(|h| !h.is_empty()),
        },
    };
    let files =
        a.photos.iter().map(|p| Ok((p.file_name.as_str(), decode_photo(p)?))).collect::<CommandResult<Vec<_>>>()?;
    let photos: Vec<PhotoToQueue<'_>> = files
        .iter()
        .map(|(name, bytes)| PhotoToQueue { file_name: name.to_string(), role: attach::Role::Before, bytes, gps: None })
        .collect();
    let ctx = context(app, &store)?;
    let (id, waiting) = store.raise_request_with_photos(
        &ctx,
        NewRequest {
            id: None,
            grid: a.grid,
            micro_grid: None,
            reporter,
            address: a.address.trim().to_string(),
            gps: gps(a.gps),
            category: a.category,
            description: a.description.trim().to_string(),
            urgency,
            source: if a.visit.is_some() { Source::Visit } else { Source::WalkIn },
            visit: a.visit,
        },
        &photos,
        &IngestOptions::default(),
    )?;
    drop(store);
    if !waiting.is_empty() {
        app.photos.wake();
    }
    app.sync.nudge();
    let waiting: Vec<_> = waiting.into_iter().map(WaitingPhotoDto::of).collect();
    Ok(json!({ "id": id, "waiting_photos": waiting }))
}

/// A photo's bytes from the UI's base64 (a `data:` URL prefix is accepted, since that is what a
/// file reader hands the UI).
fn decode_photo(p: &PhotoUpload) -> CommandResult<Vec<u8>> {
    let data = p.data_base64.split_once(";base64,").map(|(_, d)| d).unwrap_or(&p.data_base64);
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| invalid("data_base64", format!("the photo of '{}' is not valid base64: {e}", p.file_name)))
}

/// Keeps a photo for a record that exists (the hall's "after" photos): saved at once, processed
/// in the background like the photos a request is raised with.
fn add_photo(app: &App, a: AddPhotoArgs) -> CommandResult<WaitingPhotoDto> {
    let store = app.store()?;
    let role = attach::Role::parse(&a.role).ok_or_else(|| invalid("role", "a photo is 'before' or 'after'"))?;
    let bytes = decode_photo(&PhotoUpload { file_name: a.file_name.clone(), data_base64: a.data_base64 })?;
    let ctx = context(app, &store)?;
    let waiting = store.queue_photo(
        &ctx,
        &a.doc_id,
        &PhotoToQueue { file_name: a.file_name, role, bytes: &bytes, gps: None },
        &IngestOptions::default(),
    )?;
    drop(store);
    app.photos.wake();
    Ok(WaitingPhotoDto::of(waiting))
}

/// Puts a photo whose processing failed back in line.
fn retry_photo(app: &App, a: WaitingPhotoArgs) -> CommandResult<Value> {
    let store = app.store()?;
    context(app, &store)?;
    let found = store.retry_queued_photo(a.id)?;
    drop(store);
    if !found {
        return Err(CommandError::new("not_found", format!("no waiting photo {}: it was attached or discarded", a.id)));
    }
    app.photos.wake();
    Ok(json!({ "ok": true }))
}

/// Throws away a photo whose processing failed (the walker chose to).
fn discard_photo(app: &App, a: WaitingPhotoArgs) -> CommandResult<Value> {
    let store = app.store()?;
    context(app, &store)?;
    let found = store.discard_queued_photo(a.id)?;
    if !found {
        return Err(CommandError::new("not_found", format!("no waiting photo {}: it was attached or discarded", a.id)));
    }
    Ok(json!({ "ok": true }))
}

fn status_is_open(status: &str) -> bool {
    Status::parse(status).is_some_and(|s| s.is_open())
}

fn row(s: gridwalk_core::store::RequestSummary, now: i64) -> RequestRow {
    let overdue = status_is_open(&s.status) && s.deadline.is_some_and(|d| d < now);
    RequestRow {
        id: s.id,
        grid: s.grid,
        status: s.status,
        category: s.category,
        urgency: s.urgency,
        department: s.department,
        owner: s.owner,
        deadline: s.deadline,
        updated_at: s.updated_at,
        created_at: s.created_at,
        address: s.address,
        description: s.description,
        overdue,
        number: s.number,
    }
}

fn requests(app: &App, a: RequestsArgs) -> CommandResult<RequestPage> {
    let store = app.store()?;
    let now = app.now();
    let grids = match a.grid {
        Some(g) => vec![g],
        None => store.relay_link()?.map(|l| l.grids).unwrap_or_default(),
    };
    let statuses = a
        .statuses
        .iter()
        .map(|s| Status::parse(s).ok_or_else(|| invalid("statuses", format!("'{s}' is not a status"))))
        .collect::<CommandResult<Vec<_>>>()?;
    let text = a.text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let limit = a.limit.unwrap_or(50).clamp(1, 500);
    let offset = a.offset.unwrap_or(0);
    let base = RequestFilter { grids, statuses, text, owed_feedback: a.owed_feedback, ..RequestFilter::default() };
    // Overdue first (the longest overdue at the top), then the rest, most recently changed first.
    let overdue_filter =
        RequestFilter { overdue_at: Some(now), sort: RequestSort::DeadlineAsc, limit: offset + limit, ..base.clone() };
    let overdue = store.list_requests(&overdue_filter)?;
    let overdue_total = store.count_requests(&overdue_filter)?;
    if a.overdue_only {
        let items = overdue.into_iter().skip(offset).take(limit).map(|s| row(s, now.millis())).collect();
        return Ok(RequestPage { items, total: overdue_total });
    }
    let total = store.count_requests(&base)?;
    let mut items: Vec<RequestRow> = overdue.into_iter().map(|s| row(s, now.millis())).collect();
    if items.len() < offset + limit {
        // Rows after the overdue ones; overdue rows are skipped here since they came first.
        let rest = store.list_requests(&RequestFilter {
            sort: RequestSort::UpdatedDesc,
            limit: offset + limit + overdue_total as usize,
            ..base
        })?;
        items.extend(rest.into_iter().map(|s| row(s, now.millis())).filter(|r| !r.overdue));
    }
    let items = items.into_iter().skip(offset).take(limit).collect();
    Ok(RequestPage { items, total })
}

/// Every action type the UI may offer, with a stand-in of each to ask the core whether the
/// request's current state allows it.
fn candidate_actions(now: Timestamp) -> Vec<(&'static str, Action)> {
    vec![
        ("triaged", Action::Triaged { decision: TriageDecision::Accept }),
        (
            "assigned",
            Action::Assigned {
                assignment: Assignment {
                    department: "any".into(),
                    person: None,
                    deadline: Timestamp::from_millis(now.millis() + 86_400_000).unwrap_or(now),
                    level: Level::Town,
                },
            },
        ),
        ("progress", Action::Progress { note: "-".into() }),
        ("resolved", Action::Resolved { note: "-".into(), photos: vec![] }),
        ("feedback_given", Action::FeedbackGiven { note: "-".into() }),
        ("rated", Action::Rated { rating: Rating::Satisfied, comment: String::new() }),
        ("reopened", Action::Reopened { reason: "-".into() }),
        ("closed", Action::Closed { note: "-".into() }),
    ]
}

pub(crate) fn request_detail(app: &App, store: &Store, id: &str) -> CommandResult<RequestDetail> {
    let view = store.request(id)?;
    let now = app.now();
    let names: HashMap<String, String> = store.walkers()?.into_iter().map(|w| (w.id, w.name)).collect();
    let name_of = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let state = &view.state;
    let photos = attach_list(store, id)?;
    let waiting_photos = store.queued_photos(id)?.into_iter().map(WaitingPhotoDto::of).collect();
    let history = view
        .history
        .iter()
        .map(|h| {
            let mut details = serde_json::to_value(&h.event.action).unwrap_or(Value::Null);
            let kind = details.get("type").and_then(Value::as_str).unwrap_or("unknown").to_string();
            if let Some(map) = details.as_object_mut() {
                map.remove("type");
            }
            HistoryDto {
                id: h.event.id.clone(),
                kind,
                at: h.event.at.millis(),
                relay_received_at: h.relay_received_at,
                actor: name_of(&h.event.by),
                device: h.event.device.clone(),
                applied: h.applied,
                details,
            }
        })
        .collect();
    // Nobody signed in on a hall PC may take any step.
    let ctx = context(app, store).ok();
    let mut allowed = Vec::new();
    for (name, action) in candidate_actions(now) {
        let Some(ctx) = &ctx else { break };
        if lifecycle::check(state, &action).is_ok()
            && store.allows(ctx, state, &action)?
            && store.check_linked_request_rule(id, state, &action).is_ok()
        {
            allowed.push(name.to_string());
        }
    }
    let linked = |other: &str| -> CommandResult<Option<LinkedRequestDto>> {
        let Ok(v) = store.request(other) else { return Ok(None) };
        let reporter = match &v.body.reporter {
            Reporter::Resident { name, .. } if !name.trim().is_empty() => Some(name.clone()),
            _ => None,
        };
        Ok(Some(LinkedRequestDto {
            id: v.header.id.clone(),
            number: v.body.number.clone(),
            description: v.body.description.clone(),
            address: v.body.place.address.clone(),
            status: v.state.status.as_str().into(),
            reporter,
            told: v.state.told_at.is_some(),
        }))
    };
    let merged_into = match &state.merged_into {
        Some(target) => linked(target)?,
        None => None,
    };
    let mut duplicates = Vec::new();
    for d in store.duplicates_of(id)? {
        duplicates.extend(linked(&d.id)?);
    }
    let gps = view.body.place.gps.map(|g| GpsDto { lat: g.lat, lon: g.lon, accuracy_m: g.accuracy_m });
    let row = RequestRow {
        id: view.header.id.clone(),
        grid: view.header.grid.clone(),
        status: state.status.as_str().into(),
        category: view.body.category.clone(),
        urgency: view.body.urgency.as_str().into(),
        department: state.department.clone(),
        owner: name_of(&state.owner),
        deadline: state.deadline.map(|d| d.millis()),
        updated_at: state.updated_at.millis(),
        created_at: view.header.created_at.millis(),
        address: view.body.place.address.clone(),
        description: view.body.description.clone(),
        overdue: state.is_overdue(now),
        number: view.body.number.clone(),
    };
    let reporter = match &view.body.reporter {
        Reporter::Anonymous => json!({ "kind": "anonymous" }),
        // Masked: the full number only through `reveal_phone`, which is logged.
        Reporter::Resident { name, phone, household } => {
            json!({ "kind": "resident", "name": name, "phone": phone.as_deref().map(mask_phone), "household": household })
        }
        Reporter::Enterprise { id, contact } => json!({ "kind": "enterprise", "id": id, "contact": contact }),
    };
    Ok(RequestDetail {
        row,
        reporter,
        source: view.body.source.as_str().into(),
        visit: view.body.visit.clone(),
        assignee: state.assignee.as_deref().map(name_of),
        level: state.level.map(|l| l.as_str().into()),
        rating: state.rating.map(|r| r.as_str().into()),
        created_by: name_of(&view.header.created_by),
        photos,
        waiting_photos,
        history,
        allowed,
        gps,
        merged_into,
        duplicates,
    })
}

fn attach_list(store: &Store, id: &str) -> CommandResult<Vec<PhotoRefDto>> {
    let mut out = Vec::new();
    for p in store.photos_of(id)? {
        let here = store.stored_photo(&p.hash)?.is_some();
        out.push(PhotoRefDto { hash: p.hash, role: p.role.as_str().into(), removed: p.removed, here });
    }
    Ok(out)
}

fn act(app: &App, a: ActArgs) -> CommandResult<RequestDetail> {
    let store = app.store()?;
    let action = match a.action {
        ActionArgs::FeedbackGiven { note } => Action::FeedbackGiven { note },
        ActionArgs::Rated { rating, comment } => Action::Rated {
            rating: Rating::parse(&rating)
                .ok_or_else(|| invalid("rating", format!("'{rating}' is not satisfied, basically or not_satisfied")))?,
            comment,
        },
        ActionArgs::Progress { note } => Action::Progress { note },
        ActionArgs::Triaged { decision } => Action::Triaged {
            decision: match decision {
                DecisionArgs::Accept => TriageDecision::Accept,
                DecisionArgs::MergeInto { target } => TriageDecision::MergeInto { target },
                DecisionArgs::Reject { reason } => TriageDecision::Reject { reason },
                DecisionArgs::SolvedOnSpot { note } => TriageDecision::SolvedOnSpot { note },
            },
        },
        ActionArgs::Assigned { department, person, deadline, level } => Action::Assigned {
            assignment: Assignment {
                department,
                person: person.filter(|p| !p.trim().is_empty()),
                deadline: Timestamp::from_millis(deadline)?,
                level: Level::parse(&level)
                    .ok_or_else(|| invalid("level", format!("'{level}' is not village, town or county")))?,
            },
        },
        ActionArgs::Resolved { note } => Action::Resolved { note, photos: vec![] },
        ActionArgs::Reopened { reason } => Action::Reopened { reason },
        ActionArgs::Closed { note } => Action::Closed { note },
    };
    let ctx = context(app, &store)?;
    store.act(&ctx, &a.id, action)?;
    app.sync.nudge();
    request_detail(app, &store, &a.id)
}

fn photo(app: &App, a: PhotoArgs) -> CommandResult<Value> {
    let store = app.store()?;
    gridwalk_core::photo::blobs::validate_hash(&a.hash)?;
    if store.stored_photo(&a.hash)?.is_none() {
        return Err(CommandError::new(
            "photo_not_here_yet",
            format!("photo {} has not reached this device yet; the next sync brings it", a.hash),
        ));
    }
    let bytes = if a.thumbnail { store.thumbnail_bytes(&a.hash)? } else { store.photo_bytes(&a.hash)? };
    Ok(json!({ "mime": "image/jpeg", "data_base64": base64::engine::general_purpose::STANDARD.encode(bytes) }))
}

//! Who is signed in on a hall PC. Several staff share the service hall's PC; each signs in with
//! her name and PIN, every action is then taken in her name, and the session ends by itself
//! after [`IDLE_LIMIT`] without a command, so the next person at the desk cannot act as her.
//! A walker's phone has no sessions: it belongs to its walker.
//!
//! Wrong PINs are slowed down: after [`FREE_ATTEMPTS`] wrong ones in a row, each further attempt
//! waits a delay that doubles every time (30 s, 1 min, 2 min… at most an hour), counted on this
//! PC in its store (restarting the app gives no fresh tries). A right PIN resets it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use gridwalk_core::model::Role;
use gridwalk_core::store::Store;
use gridwalk_transport::client;
use serde_json::Value;

use crate::commands::{invalid, parse, status};
use crate::dto::{AppStatus, WalkerRef};
use crate::{App, CommandError, CommandResult};

/// How long a session lasts without a command.
pub const IDLE_LIMIT: Duration = Duration::from_secs(15 * 60);
pub use gridwalk_core::pin::FREE_ATTEMPTS;

#[derive(Debug, Clone)]
struct Session {
    person: WalkerRef,
    last_active: Instant,
}

pub(crate) struct Sessions {
    idle_limit: Duration,
    current: Mutex<Option<Session>>,
    /// Held from a PIN's check to its count (which lives in the store): attempts sent at once
    /// take turns, so none slips past the slow-down.
    attempts: Mutex<()>,
}

impl Sessions {
    pub fn new(idle_limit: Duration) -> Self {
        Sessions { idle_limit, current: Mutex::new(None), attempts: Mutex::new(()) }
    }

    /// The person signed in now, if her session has not run out.
    pub fn signed_in(&self) -> Option<WalkerRef> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|s| s.last_active.elapsed() > self.idle_limit) {
            *current = None;
        }
        current.as_ref().map(|s| s.person.clone())
    }

    /// A command was given: the session lasts another idle limit from now.
    pub fn touch(&self) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_mut() {
            Some(s) if s.last_active.elapsed() <= self.idle_limit => s.last_active = Instant::now(),
            _ => *current = None,
        }
    }

    fn sign_out(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// How long the next attempt must still wait at `now`: the one rule in `gridwalk_doc::pin`.
    fn wait_left((wrong, last): (u32, Option<i64>), now: i64) -> Option<Duration> {
        gridwalk_core::pin::wrong_pin_wait(wrong, last, now)
    }
}

/// Commands only a person at the screen gives: a step taken or a record written, or the UI's
/// `still_here`, sent when she taps or types. Reading a list or a request is not among them:
/// screens reload those by themselves.
pub(crate) fn is_activity(name: &str) -> bool {
    matches!(
        name,
        "still_here"
            | "act"
            | "raise_request"
            | "add_photo"
            | "retry_photo"
            | "discard_photo"
            | "record_visit"
            | "record_meeting"
            | "set_pin"
            | "reveal_phone"
            | "enroll"
            | "unlock"
            | "set_device_pin"
            | "sync_now"
            | "admin_save_department"
            | "admin_assign_walker"
            | "export_monthly_xlsx"
    )
}

/// Whether actions on this device need someone signed in: a hall or admin device on which an
/// admin has given staff PINs.
pub(crate) fn required(store: &Store) -> CommandResult<bool> {
    Ok(store.role()? != Role::Walker && store.sign_in_required()?)
}

/// The person actions are taken in the name of: the walker a phone belongs to, or on a hall PC
/// the staff member signed in (an error when nobody is).
pub(crate) fn acting_person(app: &App, store: &Store) -> CommandResult<String> {
    if !required(store)? {
        return Ok(store.identity().walker.clone());
    }
    app.sessions.signed_in().map(|p| p.id).ok_or_else(|| {
        CommandError::new("sign_in_required", "sign in with your name and PIN before acting on this hall PC")
    })
}

#[derive(serde::Deserialize)]
struct SignInArgs {
    person: String,
    pin: String,
}

pub(crate) fn sign_in(app: &App, args: Value) -> CommandResult<AppStatus> {
    let a: SignInArgs = parse(args)?;
    let (person, pin) = (a.person.trim(), a.pin.trim());
    let turn = app.sessions.attempts.lock().unwrap_or_else(|p| p.into_inner());
    let now = app.now().millis();
    let link = {
        let store = app.store()?;
        if store.role()? == Role::Walker {
            return Err(invalid("person", "a walker's phone belongs to its walker; nobody signs in on it"));
        }
        if let Some(wait) = Sessions::wait_left(store.wrong_pins()?, now) {
            return Err(CommandError::new(
                "pin_attempts_slowed",
                format!("too many wrong PINs on this PC: try again in {} seconds", wait.as_secs().max(1)),
            ));
        }
        store.relay_link()?
    };
    // The relay checks first while it is in reach: it keeps the staff list, so a PIN an admin
    // changed a moment ago, or a person taken off the list, counts here at once, and it limits
    // wrong PINs per person across every PC (its "wait" is final: checking the hash held here
    // instead would let a guesser go on, or an old PIN work). Out of reach, or before the hall
    // has a list, this PC checks the hash it holds.
    let by_relay = match link.as_ref().map(|l| client::sign_in_with_relay(l, person, pin)) {
        Some(Ok(Some(who))) => Some(Some(WalkerRef { id: who.person, name: who.name })),
        Some(Ok(None)) => Some(None),
        Some(Err(gridwalk_core::CoreError::Relay { status: 429, message, .. })) => {
            return Err(CommandError::new("pin_attempts_slowed", message));
        }
        Some(Err(_)) | None => None,
    };
    let found = {
        let store = app.store()?;
        let found = match by_relay {
            Some(answer) => answer,
            None => store.verify_staff_pin(person, pin)?.map(|s| WalkerRef { id: s.id, name: s.name }),
        };
        store.record_wrong_pin(if found.is_some() { None } else { Some(now) })?;
        found.ok_or(store.wrong_pins()?.0)
    };
    drop(turn);
    match found {
        Ok(person) => {
            *app.sessions.current.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Session { person, last_active: Instant::now() });
            // A staff member the relay knows and this PC not yet: its next pull brings her.
            app.sync.nudge();
            status(app)
        }
        Err(wrong) => {
            let left = FREE_ATTEMPTS.saturating_sub(wrong);
            Err(CommandError::new(
                "wrong_pin",
                format!("that name and PIN do not match ({left} more tries before attempts are slowed down)"),
            ))
        }
    }
}

pub(crate) fn sign_out(app: &App) -> CommandResult<AppStatus> {
    app.sessions.sign_out();
    status(app)
}

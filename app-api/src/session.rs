//! Who is signed in on a hall PC. Several staff share the service hall's PC; each signs in with
//! her name and PIN, every action is then taken in her name, and the session ends by itself
//! after [`IDLE_LIMIT`] without a command, so the next person at the desk cannot act as her.
//! A walker's phone has no sessions: it belongs to its walker.
//!
//! Wrong PINs are slowed down: after [`FREE_ATTEMPTS`] wrong ones in a row, each further attempt
//! waits a delay that doubles every time (30 s, 1 min, 2 min… at most an hour), counted on this
//! PC. A right PIN resets it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use gridwalk_core::model::Role;
use gridwalk_core::store::Store;
use serde_json::Value;

use crate::commands::{invalid, parse, status};
use crate::dto::{AppStatus, WalkerRef};
use crate::{App, CommandError, CommandResult};

/// How long a session lasts without a command.
pub const IDLE_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Wrong PINs allowed in a row before attempts are slowed down.
pub const FREE_ATTEMPTS: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_secs(30);
const LONGEST_DELAY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
struct Session {
    person: WalkerRef,
    last_active: Instant,
}

pub(crate) struct Sessions {
    idle_limit: Duration,
    current: Mutex<Option<Session>>,
    /// Wrong PINs in a row, and when the last one was typed.
    failures: Mutex<(u32, Option<Instant>)>,
}

impl Sessions {
    pub fn new(idle_limit: Duration) -> Self {
        Sessions { idle_limit, current: Mutex::new(None), failures: Mutex::new((0, None)) }
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

    /// How long the next attempt must still wait, if wrong PINs are being slowed down.
    fn wait_left(failures: &(u32, Option<Instant>)) -> Option<Duration> {
        let (wrong, last) = *failures;
        let last = last?;
        if wrong < FREE_ATTEMPTS {
            return None;
        }
        let delay = FIRST_DELAY.saturating_mul(1 << (wrong - FREE_ATTEMPTS).min(7)).min(LONGEST_DELAY);
        delay.checked_sub(last.elapsed()).filter(|d| !d.is_zero())
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
    // Held from the check to the count: attempts sent at once take turns, so none slips past
    // the slow-down. (The count lives in memory: restarting the app gives five more tries.)
    let mut failures = app.sessions.failures.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(wait) = Sessions::wait_left(&failures) {
        return Err(CommandError::new(
            "pin_attempts_slowed",
            format!("too many wrong PINs on this PC: try again in {} seconds", wait.as_secs().max(1)),
        ));
    }
    let found = {
        let store = app.store()?;
        if store.role()? == Role::Walker {
            return Err(invalid("person", "a walker's phone belongs to its walker; nobody signs in on it"));
        }
        store.verify_staff_pin(a.person.trim(), a.pin.trim())?
    };
    match found {
        Some(staff) => {
            *failures = (0, None);
            drop(failures);
            *app.sessions.current.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Session { person: WalkerRef { id: staff.id, name: staff.name }, last_active: Instant::now() });
            status(app)
        }
        None => {
            *failures = (failures.0 + 1, Some(Instant::now()));
            let left = FREE_ATTEMPTS.saturating_sub(failures.0);
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

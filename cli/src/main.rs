//! `gridwalk`: the same core the app uses, for hall staff, scripts and tests.
//!
//! This is the edge of the system: the only place the clock is read and the only place errors
//! become text and exit codes. Everything else is the core's. A command first checks what can be
//! checked without the store (dates, positions), then opens the store; the core does every write
//! of one command in one transaction, so a command that fails leaves the store as it was.

mod args;
mod photo_cmd;
mod reference;
mod report_cmd;
mod requests;
mod sync_cmd;
mod table;
mod visits;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use gridwalk_core::{ActionContext, Clock, CoreError, Store, SystemClock, Timestamp};
use serde::Serialize;

use args::{Cli, Command};

/// What every command may need besides its own arguments.
pub struct Env {
    pub store_path: PathBuf,
    pub json: bool,
    /// The moment of this run: `--now`, or the system clock read once at start.
    pub now: Timestamp,
    pub acting_as: Option<String>,
}

impl Env {
    /// Opens the existing store. Never creates one: only `init` does. A device's encrypted
    /// store (the app's `gridwalk.db` with its key file) opens with its keystore, kept beside
    /// the app's data folder (`<data>-keystore/`), or with the walker's PIN from GRIDWALK_PIN.
    pub fn open(&self) -> Result<Store> {
        use gridwalk_core::store::keys::{self, FileKeystore, Lock};
        if keys::lock_kind(&self.store_path)?.is_none() {
            return Ok(Store::open(&self.store_path)?);
        }
        let data_dir = self.store_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut keystore_dir = data_dir.canonicalize()?.into_os_string();
        keystore_dir.push("-keystore");
        let keystore = FileKeystore::new(PathBuf::from(keystore_dir).join("device-key"));
        let pin = std::env::var("GRIDWALK_PIN").ok();
        let lock = match pin.as_deref() {
            Some(pin) => Lock::Pin(pin),
            None => Lock::Keystore,
        };
        let key = keys::unlock(&self.store_path, lock, Some(&keystore), self.now.millis())?;
        Ok(Store::open_encrypted(&self.store_path, key)?)
    }

    /// The context of an action taken now by the acting person on this store's device.
    pub fn context(&self, store: &Store) -> ActionContext {
        let identity = store.identity();
        let actor = self.acting_as.clone().unwrap_or_else(|| identity.walker.clone());
        ActionContext::new(actor, identity.device.clone(), self.now)
    }

    /// Prints `value` as JSON with `--json`, else the text `human` makes.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) -> Result<()> {
        let mut text = if self.json { serde_json::to_string_pretty(value)? } else { human() };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut out = std::io::stdout().lock();
        // A reader that stops early (`gridwalk request list | head`) is not an error.
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            result => Ok(result?),
        }
    }
}

/// A failure that is not the core's, with its own code for `--json`.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An input the user typed that cannot be used; the core's own error, so it carries the core's
/// code (`invalid_input`).
pub fn invalid(field: &str, message: impl Into<String>) -> CoreError {
    CoreError::InvalidInput { field: field.to_string(), message: message.into() }
}

/// Reads a date or time typed by the user.
pub fn parse_time(field: &str, text: &str, end_of_day: bool) -> Result<Timestamp> {
    Ok(Timestamp(gridwalk_core::time::parse_user_time(field, text, end_of_day)?))
}

fn run(cli: Cli) -> Result<()> {
    let now = match &cli.now {
        Some(text) => parse_time("now", text, false)?,
        None => Timestamp(SystemClock.now()),
    };
    if cli.acting_as.as_deref().is_some_and(|w| w.trim().is_empty()) {
        return Err(invalid("as", "the walker id is empty").into());
    }
    let env = Env { store_path: cli.store, json: cli.json, now, acting_as: cli.acting_as };
    match cli.command {
        Command::Init { device, walker, role, office } => reference::init(&env, device, walker, role, office),
        Command::Import { kind, file } => reference::import(&env, kind, &file),
        Command::Demo(demo) => reference::demo(&env, &demo),
        Command::Visit(command) => visits::run(&env, command),
        Command::Request(command) => requests::run(&env, command),
        Command::Index(command) => reference::index(&env, command),
        Command::Export(args::ExportCommand::Requests(export)) => requests::export(&env, export),
        Command::Export(args::ExportCommand::Reference { out, grids }) => {
            let store = env.open()?;
            let report = gridwalk_core::export::export_reference(&store, &env.context(&store), &out, &grids)?;
            env.emit(&report, || {
                format!(
                    "wrote {}: {} areas, {} households, {} enterprises, {} departments, {} walkers",
                    report.dir, report.areas, report.households, report.enterprises, report.departments, report.walkers
                )
            })
        }
        Command::Grids => reference::grids(&env),
        Command::Households { grid } => reference::households(&env, &grid),
        Command::Departments => reference::departments(&env),
        Command::Roster(args::RosterCommand::Publish { grid }) => reference::publish_rosters(&env, &grid),
        Command::Audit(args::AuditCommand::Verify { file }) => reference::verify_evidence(&env, &file),
        Command::Staff(args::StaffCommand::List) => reference::staff(&env),
        Command::Staff(args::StaffCommand::SetPin { person, pin, my_pin }) => {
            reference::set_pin(&env, &person, &pin, &my_pin)
        }
        Command::Staff(args::StaffCommand::SetOffice { person, office, my_pin }) => {
            reference::set_staff_office(&env, &person, &office, &my_pin)
        }
        Command::Categories => reference::categories(&env),
        Command::Photo(command) => photo_cmd::run(&env, command),
        Command::Report(command) => report_cmd::run(&env, command),
        Command::Join { relay, code, name } => sync_cmd::join(&env, &relay, &code, name),
        Command::Sync { resend_all } => sync_cmd::sync(&env, resend_all),
        Command::SyncStatus => sync_cmd::status(&env),
    }
}

/// The stable code of an error: the core's when a core error is anywhere in the chain.
fn error_code(err: &anyhow::Error) -> &'static str {
    err.chain()
        .find_map(|cause| {
            cause
                .downcast_ref::<CoreError>()
                .map(CoreError::code)
                .or_else(|| cause.downcast_ref::<gridwalk_core::docs::DocError>().map(|e| e.code()))
                .or_else(|| cause.downcast_ref::<Failure>().map(|f| f.code))
        })
        .unwrap_or("error")
}

/// The error and its causes in one line. The core's wrapping errors already print their cause
/// (`file error: {0}`) and also report it as their source, so a cause whose text the line
/// already holds is left out rather than said twice.
fn error_message(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|previous| previous.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // `run` has returned, and with it dropped and closed the store, before anything is reported:
    // a closed store leaves no write-ahead log behind.
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = error_message(&err);
            if json {
                let body = serde_json::json!({ "code": error_code(&err), "message": message });
                eprintln!("{body}");
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_said_once_and_the_code_is_the_cores() {
        let err = anyhow::Error::from(CoreError::Io(std::io::Error::other("disk full")));
        assert_eq!(error_message(&err), "file error: disk full");
        assert_eq!(error_code(&err), "io");
        let err = anyhow::Error::from(Failure { code: "check_failed", message: "the index does not match".into() })
            .context("checking the store");
        assert_eq!(error_message(&err), "checking the store: the index does not match");
        assert_eq!(error_code(&err), "check_failed");
    }
}

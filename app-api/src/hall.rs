//! The hall console's commands: the inbox, triage help, the overdue view, the monthly list and
//! the dashboard. Each is a translation onto `gridwalk_core::report` and the store.

use serde_json::Value;

use crate::{App, CommandResult};

pub(crate) fn dispatch(_app: &App, name: &str, _args: Value) -> CommandResult<Value> {
    crate::commands::unknown(name)
}

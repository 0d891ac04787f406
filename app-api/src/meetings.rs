//! Meetings (网格议事会, 驻网办事日): recording one, listing them; a decision about a request
//! becomes a lifecycle event on that request.

use serde_json::Value;

use crate::{App, CommandResult};

pub(crate) fn dispatch(app: &App, name: &str, args: Value) -> CommandResult<Value> {
    match name {
        other => crate::hall::dispatch(app, other, args),
    }
}

//! The boundary between the Tauri app and the core. The Tauri shell itself arrives with issue 5;
//! what is here already is the rule every command will follow: errors cross the boundary as
//! `{code, message}`, with the stable code from the core so the UI can say it in Chinese.

use gridwalk_core::CoreError;
use serde::Serialize;

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandError {
    /// Stable, machine-readable; the UI maps it to a sentence in the user's language.
    pub code: String,
    /// The core's English explanation, for logs and for codes the UI does not know yet.
    pub message: String,
}

impl From<CoreError> for CommandError {
    fn from(e: CoreError) -> Self {
        CommandError {
            code: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_cross_the_boundary_as_code_and_message() {
        let e: CommandError = CoreError::UnknownGrid("g9".into()).into();
        assert_eq!(e.code, "unknown_grid");
        assert!(e.message.contains("g9"));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "unknown_grid");
    }
}

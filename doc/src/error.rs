//! What can be wrong with a document or an action on one. The core turns each variant into the
//! `CoreError` of the same name, so the app and the CLI see one set of codes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DocError {
    #[error("cannot {action} request {request}: it is '{status}'; {why}")]
    InvalidTransition { request: String, action: &'static str, status: &'static str, why: &'static str },
    #[error("invalid {field}: {message}")]
    InvalidInput { field: String, message: String },
    #[error("document {id} is damaged: {message}")]
    DamagedDocument { id: String, message: String },
    #[error("Automerge error: {0}")]
    Automerge(automerge::AutomergeError),
    #[error("document mapping error: {0}")]
    Reconcile(autosurgeon::ReconcileError),
    #[error("document mapping error: {0}")]
    Hydrate(autosurgeon::HydrateError),
}

// As in the core's error: the wrapped errors are part of the message, not a `source()`, so a
// printer walking the chain does not say the same cause twice.
impl From<automerge::AutomergeError> for DocError {
    fn from(e: automerge::AutomergeError) -> Self {
        DocError::Automerge(e)
    }
}
impl From<autosurgeon::ReconcileError> for DocError {
    fn from(e: autosurgeon::ReconcileError) -> Self {
        DocError::Reconcile(e)
    }
}
impl From<autosurgeon::HydrateError> for DocError {
    fn from(e: autosurgeon::HydrateError) -> Self {
        DocError::Hydrate(e)
    }
}

impl DocError {
    /// The stable code, the same as the core's error of the same name.
    pub fn code(&self) -> &'static str {
        match self {
            DocError::InvalidTransition { .. } => "invalid_transition",
            DocError::InvalidInput { .. } => "invalid_input",
            DocError::DamagedDocument { .. } => "damaged_document",
            DocError::Automerge(_) => "automerge",
            DocError::Reconcile(_) | DocError::Hydrate(_) => "document_mapping",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DocError::InvalidInput { field: field.into(), message: message.into() }
    }
}

pub type Result<T, E = DocError> = std::result::Result<T, E>;

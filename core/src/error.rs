//! The one error type of the core. Every variant says, in the domain's words, what was wrong and
//! what the user can do; `code()` gives a stable machine-readable code for the app boundary.

use thiserror::Error;

/// Everything that can go wrong inside the core.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("unknown grid '{0}': import the area list first or check the grid id")]
    UnknownGrid(String),
    #[error("unknown {kind} '{id}'")]
    NotFound { kind: &'static str, id: String },
    #[error("{id} already exists")]
    AlreadyExists { id: String },
    #[error("cannot {action} request {request}: it is '{status}'; {why}")]
    InvalidTransition { request: String, action: &'static str, status: &'static str, why: &'static str },
    #[error("invalid {field}: {message}")]
    InvalidInput { field: String, message: String },
    #[error("{file}, line {line}: {message}")]
    BadImportRow { file: String, line: u64, message: String },
    #[error("cannot read {file}: {message}")]
    ImportFile { file: String, message: String },
    #[error("the store at {path} is not initialised: run `gridwalk init` first")]
    NotInitialised { path: String },
    #[error("document {id} is damaged: {message}")]
    DamagedDocument { id: String, message: String },
    #[error("{0}")]
    Unreadable(gridwalk_doc::incoming::Unreadable),
    #[error("not allowed: {0}")]
    Forbidden(gridwalk_doc::permissions::Forbidden),
    #[error("document {id} may not change its {field}: a document's header is immutable")]
    HeaderChanged { id: String, field: &'static str },
    #[error("storage error: {0}")]
    Storage(rusqlite::Error),
    #[error("schema migration failed: {0}")]
    Migration(rusqlite_migration::Error),
    #[error("Automerge error: {0}")]
    Automerge(automerge::AutomergeError),
    #[error("document mapping error: {0}")]
    Reconcile(autosurgeon::ReconcileError),
    #[error("document mapping error: {0}")]
    Hydrate(autosurgeon::HydrateError),
    #[error("export failed: {0}")]
    Export(String),
    #[error("file error: {0}")]
    Io(std::io::Error),
    #[error("the relay refused: {message} ({code})")]
    Relay { status: u16, code: String, message: String },
    #[error("cannot reach the relay: {0}")]
    Network(String),
    #[error("this device has not joined a relay: run `gridwalk join` with the hall's address and code")]
    NotJoined,
    /// A photo of a forgotten-PIN store could not be taken over by the new enrolment.
    #[error("a photo of the earlier store cannot be taken over: {0}")]
    HandoverPhoto(String),
    #[error("sync was cancelled")]
    Cancelled,
    #[error("the store at {path} is encrypted: unlock it with this device's PIN")]
    Locked { path: String },
    #[error("wrong PIN ({left} more tries before attempts are slowed down)")]
    WrongPin { left: u32 },
    #[error("too many wrong PINs: try again in {seconds} seconds")]
    PinAttemptsSlowed { seconds: u64 },
    #[error("the store's key cannot be read: {0}")]
    StoreKey(String),
}

// The wrapped errors are written into the message and deliberately not exposed as `source()`:
// a printer that walks the error chain would otherwise say the same cause twice.
macro_rules! wrap {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for CoreError {
            fn from(e: $ty) -> Self {
                CoreError::$variant(e)
            }
        }
    )*};
}

wrap!(
    Storage(rusqlite::Error),
    Migration(rusqlite_migration::Error),
    Automerge(automerge::AutomergeError),
    Reconcile(autosurgeon::ReconcileError),
    Hydrate(autosurgeon::HydrateError),
    Io(std::io::Error),
);

// A document's errors keep their names and codes in the core's error.
impl From<gridwalk_doc::DocError> for CoreError {
    fn from(e: gridwalk_doc::DocError) -> Self {
        use gridwalk_doc::DocError as D;
        match e {
            D::InvalidTransition { request, action, status, why } => {
                CoreError::InvalidTransition { request, action, status, why }
            }
            D::InvalidInput { field, message } => CoreError::InvalidInput { field, message },
            D::DamagedDocument { id, message } => CoreError::DamagedDocument { id, message },
            D::Automerge(e) => CoreError::Automerge(e),
            D::Reconcile(e) => CoreError::Reconcile(e),
            D::Hydrate(e) => CoreError::Hydrate(e),
        }
    }
}

impl From<gridwalk_protocol::ProtocolError> for CoreError {
    fn from(e: gridwalk_protocol::ProtocolError) -> Self {
        match e {
            gridwalk_protocol::ProtocolError::BadMessage(m) => {
                CoreError::invalid("body", format!("not a valid sync message: {m}"))
            }
            gridwalk_protocol::ProtocolError::BadBlobId(id) => {
                CoreError::invalid("photo", format!("'{id}' is not a photo id"))
            }
        }
    }
}

impl CoreError {
    /// A short, stable code for the app and CLI boundary (`{code, message}`).
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::UnknownGrid(_) => "unknown_grid",
            CoreError::NotFound { .. } => "not_found",
            CoreError::AlreadyExists { .. } => "already_exists",
            CoreError::InvalidTransition { .. } => "invalid_transition",
            CoreError::InvalidInput { .. } => "invalid_input",
            CoreError::BadImportRow { .. } => "bad_import_row",
            CoreError::ImportFile { .. } => "import_file",
            CoreError::NotInitialised { .. } => "not_initialised",
            CoreError::DamagedDocument { .. } => "damaged_document",
            CoreError::Unreadable(_) => "document_unreadable",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::HeaderChanged { .. } => "header_changed",
            CoreError::Storage(_) => "storage",
            CoreError::Migration(_) => "migration",
            CoreError::Automerge(_) => "automerge",
            CoreError::Reconcile(_) | CoreError::Hydrate(_) => "document_mapping",
            CoreError::Export(_) => "export",
            CoreError::Io(_) => "io",
            CoreError::Relay { .. } => "relay_refused",
            CoreError::Network(_) => "network",
            CoreError::NotJoined => "not_joined",
            CoreError::HandoverPhoto(_) => "handover_photo",
            CoreError::Cancelled => "cancelled",
            CoreError::Locked { .. } => "store_locked",
            CoreError::WrongPin { .. } => "wrong_pin",
            CoreError::PinAttemptsSlowed { .. } => "pin_attempts_slowed",
            CoreError::StoreKey(_) => "store_key",
        }
    }

    /// Input that cannot be taken, naming its field (`invalid_input` at the boundary).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::InvalidInput { field: field.into(), message: message.into() }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl From<gridwalk_sync::SyncFailure> for CoreError {
    fn from(f: gridwalk_sync::SyncFailure) -> Self {
        use gridwalk_sync::SyncFailure as F;
        match f {
            F::Network(m) => CoreError::Network(m),
            F::Relay { status, code, message } => CoreError::Relay { status, code, message },
            F::Cancelled => CoreError::Cancelled,
            F::OutOfStep(why) => CoreError::invalid("sync", why),
            F::BadMessage(m) => CoreError::invalid("sync", m),
        }
    }
}

/// A transport's failure as the session sees it: the network, the relay's refusal, a stop; any
/// other error of the core (a reply that does not decode) ends the sync as it is.
impl From<CoreError> for gridwalk_sync::SyncFailure {
    fn from(e: CoreError) -> Self {
        use gridwalk_sync::SyncFailure as F;
        match e {
            CoreError::Network(m) => F::Network(m),
            CoreError::Relay { status, code, message } => F::Relay { status, code, message },
            CoreError::Cancelled => F::Cancelled,
            other => F::BadMessage(other.to_string()),
        }
    }
}

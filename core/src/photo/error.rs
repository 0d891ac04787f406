//! What can go wrong with a photo. Messages are in English and say what the user can do; the app
//! translates them by [`PhotoError::code`], which never changes once released.

use thiserror::Error;

use crate::error::CoreError;

#[derive(Debug, Error)]
pub enum PhotoError {
    /// The file could not be turned into a photo (`gridwalk-photo`): its own code and advice.
    #[error(transparent)]
    Ingest(#[from] gridwalk_photo::IngestError),

    #[error("photo {hash} is not stored on this device: sync to fetch it from the service hall")]
    BlobMissing { hash: String },

    #[error(
        "the stored file of photo {hash} is damaged (its content no longer matches its id): sync to fetch it again"
    )]
    BlobCorrupt { hash: String },

    #[error("'{hash}' is not a photo id: a photo id is 64 lowercase hexadecimal characters")]
    BadHash { hash: String },

    #[error("photo {hash} is not attached to {doc}")]
    NotAttached { hash: String, doc: String },

    /// One of the errors above, about one of several files the user picked.
    #[error("{file_name}: {inner}")]
    Named { file_name: String, inner: Box<PhotoError> },

    /// An error of the rest of the core (storage, a record that does not exist...). Boxed so
    /// that every `Result` with a photo error stays small.
    #[error(transparent)]
    Core(Box<CoreError>),
}

impl PhotoError {
    /// A short, stable code for the app and CLI boundary. Errors that come from the rest of the
    /// core keep the core's code, so one table of codes covers both.
    pub fn code(&self) -> &'static str {
        match self {
            PhotoError::Ingest(e) => e.code(),
            PhotoError::BlobMissing { .. } => "photo_missing",
            PhotoError::BlobCorrupt { .. } => "photo_corrupt",
            PhotoError::BadHash { .. } => "photo_bad_id",
            PhotoError::NotAttached { .. } => "photo_not_attached",
            PhotoError::Named { inner, .. } => inner.code(),
            PhotoError::Core(e) => e.code(),
        }
    }
}

impl From<CoreError> for PhotoError {
    fn from(e: CoreError) -> Self {
        PhotoError::Core(Box::new(e))
    }
}

impl From<std::io::Error> for PhotoError {
    fn from(e: std::io::Error) -> Self {
        CoreError::Io(e).into()
    }
}

impl From<rusqlite::Error> for PhotoError {
    fn from(e: rusqlite::Error) -> Self {
        CoreError::Storage(e).into()
    }
}

impl From<gridwalk_doc::DocError> for PhotoError {
    fn from(e: gridwalk_doc::DocError) -> Self {
        CoreError::from(e).into()
    }
}

//! What can go wrong with a photo. Messages are in English and say what the user can do; the app
//! translates them by [`PhotoError::code`], which never changes once released.

use thiserror::Error;

use crate::error::CoreError;

#[derive(Debug, Error)]
pub enum PhotoError {
    #[error("the file is empty (0 bytes): choose the photo again, or take it again")]
    Empty,

    #[error("this file is not an image (it contains {looks_like}): choose a photo in JPEG, PNG or WebP format")]
    NotAnImage { looks_like: &'static str },

    #[error("{format} images are not supported: {advice}")]
    UnsupportedFormat {
        /// The format's common name, e.g. "HEIC".
        format: String,
        advice: &'static str,
    },

    #[error(
        "the {format} image is {width} × {height} pixels, more than the {limit_megapixels} megapixels \
         a photo may have: take the photo at a lower resolution or shrink it first"
    )]
    TooLarge { format: &'static str, width: u64, height: u64, limit_megapixels: u64 },

    #[error(
        "the {format} file is damaged or incomplete ({detail}): copy it again from the camera, or take the photo again"
    )]
    Damaged { format: &'static str, detail: String },

    #[error("not enough memory to open this {width} × {height} image: close other apps and try again")]
    OutOfMemory { width: u32, height: u32 },

    #[error("could not write the photo as JPEG: {0}")]
    Encode(String),

    #[error("invalid photo settings: {0}")]
    InvalidOptions(String),

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
            PhotoError::Empty => "photo_empty",
            PhotoError::NotAnImage { .. } => "photo_not_an_image",
            PhotoError::UnsupportedFormat { .. } => "photo_unsupported_format",
            PhotoError::TooLarge { .. } => "photo_too_large",
            PhotoError::Damaged { .. } => "photo_damaged",
            PhotoError::OutOfMemory { .. } => "photo_out_of_memory",
            PhotoError::Encode(_) => "photo_encode",
            PhotoError::InvalidOptions(_) => "invalid_input",
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

/// An ingest error keeps its variant, so its code and message are the same through the core.
impl From<gridwalk_photo::IngestError> for PhotoError {
    fn from(e: gridwalk_photo::IngestError) -> Self {
        use gridwalk_photo::IngestError as I;
        match e {
            I::Empty => PhotoError::Empty,
            I::NotAnImage { looks_like } => PhotoError::NotAnImage { looks_like },
            I::UnsupportedFormat { format, advice } => PhotoError::UnsupportedFormat { format, advice },
            I::TooLarge { format, width, height, limit_megapixels } => {
                PhotoError::TooLarge { format, width, height, limit_megapixels }
            }
            I::Damaged { format, detail } => PhotoError::Damaged { format, detail },
            I::OutOfMemory { width, height } => PhotoError::OutOfMemory { width, height },
            I::Encode(m) => PhotoError::Encode(m),
            I::InvalidOptions(m) => PhotoError::InvalidOptions(m),
        }
    }
}

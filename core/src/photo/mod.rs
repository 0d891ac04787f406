//! Photos: the evidence a walker takes of a broken streetlight, and staff take of its repair.
//!
//! - [`ingest`] turns a camera file (JPEG, PNG or WebP) into an upright JPEG of at most 1600 px
//!   and a 320 px thumbnail, with no metadata, each named by the SHA-256 of its bytes.
//! - [`blobs`] keeps those files content-addressed beside the store.
//! - [`attach`] records them in visit and request documents, as "before" or "after" photos.
//! - The [`Store`](crate::Store) ties the three together: storing the files, their rows and the
//!   document change in one transaction, and collecting the files nothing needs any more.

// How a document names its photos is part of the document, shared with the relay.
pub use gridwalk_doc::photos as attach;
pub mod blobs;
mod error;
/// The codecs are their own crate (`gridwalk-photo`): only the device links them.
pub use gridwalk_photo as ingest;

pub use attach::{PhotoRef, Role};
pub use blobs::BlobStore;
pub use error::PhotoError;
pub use ingest::{
    content_hash, ingest, precheck, thumbnail_of_received, EncodedJpeg, IngestError, IngestOptions, IngestedPhoto,
    ReceivedPhoto, SourceFormat,
};

use serde::Serialize;

use crate::docs::GeoPoint;
use crate::time::Timestamp;

/// How a photo is attached: its role, an optional caption and, when the user allowed it, where
/// it was taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub role: Role,
    pub caption: Option<String>,
    pub gps: Option<GeoPoint>,
}

/// A stored photo's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPhoto {
    pub hash: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    pub thumb_hash: String,
    pub thumb_bytes: u64,
    pub thumb_width: u32,
    pub thumb_height: u32,
    pub created_at: Timestamp,
    /// When the relay confirmed it holds the photo; `None` until then.
    pub acknowledged_at: Option<Timestamp>,
}

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    /// Photos deleted: no document needs them and the relay holds them.
    pub deleted: Vec<String>,
    /// Photos no document needs that are kept until the relay acknowledges them.
    pub kept_unacknowledged: Vec<String>,
    /// Files with no row (left by an action that was rolled back), interrupted writes, and
    /// interrupted downloads of photos no document needs any more.
    pub stray_files_removed: usize,
    pub bytes_freed: u64,
}

/// One photo written by an export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportedPhoto {
    /// The file's name in the export folder; `None` when the photo is not on this device.
    pub file: Option<String>,
    pub hash: String,
    pub role: Role,
    pub caption: Option<String>,
    pub added_at: Option<Timestamp>,
    pub added_by: Option<String>,
    pub gps: Option<GeoPoint>,
}

/// What `export_request_with_photos` wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestExport {
    pub request: String,
    pub dir: std::path::PathBuf,
    pub photos: Vec<ExportedPhoto>,
    /// Photos the record names that are not on this device (not yet synced here).
    pub missing: Vec<String>,
}

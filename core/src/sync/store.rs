//! The device's SQLite store as the sync session's store (`gridwalk_sync::SyncStore`). Each
//! method is one of the store's own calls; a photo's problem that is not a storage failure (its
//! file gone or damaged, received bytes that are no photo) is handed back as a
//! `PhotoRefusal`, so the session notes it and goes on with the next photo.

use gridwalk_protocol::PulledDoc;
use gridwalk_sync::{OutboxEntry, PhotoRefusal, SyncStore};

use crate::error::{CoreError, Result};
use crate::photo::PhotoError;
use crate::store::Store;
use crate::time::Timestamp;

/// A photo error as the session's: the core's own errors (storage) stay errors, the rest
/// concern one photo.
fn refusal<T>(r: std::result::Result<T, PhotoError>) -> Result<std::result::Result<T, PhotoRefusal>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(PhotoError::Core(e)) => Err(*e),
        Err(e) => Ok(Err(PhotoRefusal { code: e.code().to_string(), message: e.to_string() })),
    }
}

/// A photo error where only the core's own errors can happen, or any is an error of the sync.
fn core(e: PhotoError) -> CoreError {
    match e {
        PhotoError::Core(e) => *e,
        other => CoreError::invalid("photo", other.to_string()),
    }
}

impl SyncStore for Store {
    type Error = CoreError;

    fn outbox_docs(&self) -> Result<usize> {
        Store::outbox_docs(self)
    }
    fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        Store::outbox(self, limit)
    }
    fn record_receipts(&self, doc: &str, hashes: &[[u8; 32]], received_at: i64) -> Result<()> {
        Store::record_receipts(self, doc, hashes, received_at)
    }
    fn acknowledge_outbox(&self, up_to: i64) -> Result<()> {
        Store::acknowledge_outbox(self, up_to).map(|_| ())
    }
    fn pull_cursor(&self) -> Result<String> {
        Store::pull_cursor(self)
    }
    fn apply_pull_page(&self, docs: &[PulledDoc], cursor: &str) -> Result<()> {
        Store::apply_pull_page(self, docs, cursor).map(|_| ())
    }
    fn build_deferred_indexes(&self) -> Result<()> {
        Store::build_deferred_indexes(self).map(|_| ())
    }
    fn unacknowledged_photos(&self) -> Result<Vec<String>> {
        Store::unacknowledged_photos(self).map_err(core)
    }
    fn photo_size(&self, hash: &str) -> Result<Option<u64>> {
        Ok(Store::stored_photo(self, hash).map_err(core)?.map(|p| p.bytes))
    }
    fn photo_bytes(&self, hash: &str) -> Result<std::result::Result<Vec<u8>, PhotoRefusal>> {
        refusal(Store::photo_bytes(self, hash))
    }
    fn mark_photo_acknowledged(&self, hash: &str, checked_at: i64) -> Result<()> {
        Store::mark_blob_acknowledged(self, hash, Timestamp::from_millis(checked_at)?).map(|_| ()).map_err(core)
    }
    fn wanted_photos(&self) -> Result<Vec<String>> {
        Store::wanted_photos(self).map_err(core)
    }
    fn partial_len(&self, hash: &str) -> Result<u64> {
        Store::partial_len(self, hash).map_err(core)
    }
    fn remove_partial(&self, hash: &str) -> Result<()> {
        Store::remove_partial(self, hash).map_err(core)
    }
    fn append_partial(&self, hash: &str, offset: u64, bytes: &[u8]) -> Result<()> {
        Store::append_partial(self, hash, offset, bytes).map_err(core)
    }
    fn read_partial(&self, hash: &str) -> Result<Vec<u8>> {
        Store::read_partial(self, hash).map_err(core)
    }
    fn store_received_photo(
        &self,
        hash: &str,
        bytes: &[u8],
        checked_at: i64,
    ) -> Result<std::result::Result<(), PhotoRefusal>> {
        refusal(Store::store_received_photo(self, hash, bytes, Timestamp::from_millis(checked_at)?).map(|_| ()))
    }
}

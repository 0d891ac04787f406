//! The relay's photos: content-addressed, resumable, verified, behind one trait
//! ([`BlobStore`]) with three implementations that pass one conformance suite
//! (`sync-server/tests/blob_conformance.rs`): files in a directory (the embedded default,
//! [`BlobFiles`]), rows in PostgreSQL (shared by every relay on one database,
//! `store::postgres::PostgresBlobs`) and memory (for tests, [`MemoryBlobs`]).
//!
//! Every implementation keeps the same promises: an acknowledged chunk is durable; chunks are
//! accepted only at the offset the store holds, so an upload resumes where it stopped and two
//! devices sending one photo at once cannot interleave; a blob becomes readable only once its
//! bytes have the SHA-256 its id names, and a finished blob never changes.
//!
//! ## Files
//!
//! A finished blob lives at `<root>/ab/cdef…` (its SHA-256 in lowercase hex, split after two
//! characters so no directory grows huge), exactly as on the devices. An upload in progress is
//! a file `<root>/partial/<hash>` holding the bytes received so far, in order: its length is
//! what the relay reports as received, so nothing else needs to survive a crash. Each chunk is
//! appended and flushed to the disk before the relay answers, so an acknowledged chunk is never
//! lost. When the last byte arrives the file's SHA-256 is checked; if it matches, the file is
//! renamed to its final name (the rename is atomic and the directory is flushed), otherwise it
//! is deleted. A blob is therefore either complete and verified, or absent, never half there.
//!
//! Only ids checked by [`validate_hash`] ever reach a path here, so no request can name a file
//! outside the root. Whether a device may touch a blob is decided by the relay, not here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gridwalk_protocol::validate_blob_id as validate_hash;
use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BlobError {
    #[error("'{0}' is not a blob id: a blob id is the SHA-256 of its bytes as 64 lowercase hexadecimal characters")]
    BadId(String),
    #[error("the relay holds {have} bytes of this blob; send the bytes from offset {have}, not {offset}")]
    WrongOffset { have: u64, offset: u64 },
    #[error("{0}")]
    BadChunk(String),
    #[error("a blob may have at most {max} bytes, not {total}")]
    TooLarge { max: u64, total: u64 },
    #[error("the bytes do not have the SHA-256 the blob id names; everything received for it was discarded")]
    HashMismatch,
    #[error("the relay does not have this blob (yet): the device that holds it has not uploaded it")]
    NotFound,
    #[error("the range starts past the end of the {total}-byte blob")]
    RangeNotSatisfiable { total: u64 },
    #[error("blob storage: {0}")]
    Io(#[from] io::Error),
}

/// What the relay holds of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBlob {
    /// Bytes of a partial upload, or the blob's size once complete.
    pub size: u64,
    pub complete: bool,
}

/// The part of a blob a download asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b`: from `a` to `b`, both included.
    FromTo(u64, u64),
    /// `bytes=a-`: from `a` to the end.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Last(u64),
}

impl ByteRange {
    /// Parses a `Range` header's value. Only one range is served: a download needs no more.
    pub fn parse(value: &str) -> Option<ByteRange> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let num = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten()
        };
        match (a.trim().is_empty(), b.trim().is_empty()) {
            (false, false) => {
                let (a, b) = (num(a)?, num(b)?);
                (a <= b).then_some(ByteRange::FromTo(a, b))
            }
            (false, true) => Some(ByteRange::From(num(a)?)),
            (true, false) => Some(ByteRange::Last(num(b)?)),
            (true, true) => None,
        }
    }

    /// The first and one-past-the-last byte of this range in a blob of `total` bytes.
    fn bounds(self, total: u64) -> Result<(u64, u64), BlobError> {
        let (start, end) = match self {
            ByteRange::FromTo(a, b) => (a, b.saturating_add(1).min(total)),
            ByteRange::From(a) => (a, total),
            ByteRange::Last(n) => (total.saturating_sub(n), total),
        };
        if start >= total || start >= end {
            return Err(BlobError::RangeNotSatisfiable { total });
        }
        Ok((start, end))
    }
}

/// Part of a complete blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSlice {
    pub start: u64,
    pub total: u64,
    pub bytes: Vec<u8>,
}

/// Where the relay keeps photos. Ids reaching it have been checked to be blob ids (the
/// implementations check again); whether a device may touch a blob is the relay's decision.
pub trait BlobStore: Send + Sync {
    /// What is held of `hash`: the bytes received so far, or the whole blob.
    fn status(&self, hash: &str) -> Result<HeldBlob, BlobError>;
    /// Appends `bytes` at `offset` to the upload of a blob of `total` bytes, durably, and
    /// finishes the blob when they are its last bytes. `max_total` bounds `total`. A blob
    /// already complete answers complete and takes nothing.
    fn append(&self, hash: &str, offset: u64, total: u64, bytes: &[u8], max_total: u64) -> Result<HeldBlob, BlobError>;
    /// Reads part (or all) of a complete blob.
    fn read(&self, hash: &str, range: Option<ByteRange>) -> Result<BlobSlice, BlobError>;
    /// Every blob held, complete or not, by id: for moving a relay's photos elsewhere and for
    /// comparing two relays.
    fn list(&self) -> Result<Vec<(String, HeldBlob)>, BlobError>;
    /// The bytes of an upload not finished yet.
    fn read_partial(&self, hash: &str) -> Result<Vec<u8>, BlobError>;
    /// Puts the bytes of an unfinished upload here as they are, to be resumed by its device
    /// (moving a relay's photos elsewhere). Nothing happens when this store holds the blob or
    /// more of its upload.
    fn import_partial(&self, hash: &str, bytes: &[u8]) -> Result<(), BlobError>;
}

/// Copies every blob of `from` into `to` (complete ones verified again on the way in;
/// unfinished uploads as they stand, to be resumed), leaving what `to` holds. Returns the
/// number of blobs and of bytes copied.
pub fn copy_blobs(from: &dyn BlobStore, to: &dyn BlobStore) -> Result<(u64, u64), BlobError> {
    let (mut blobs, mut bytes) = (0, 0);
    for (hash, held) in from.list()? {
        if held.complete {
            if to.status(&hash)?.complete {
                continue;
            }
            let whole = from.read(&hash, None)?;
            // An upload begun in `to` is started afresh from the whole blob.
            let have = to.status(&hash)?.size;
            to.append(&hash, have, whole.total, &whole.bytes[have as usize..], u64::MAX)?;
            bytes += whole.total;
        } else {
            let part = from.read_partial(&hash)?;
            to.import_partial(&hash, &part)?;
            bytes += part.len() as u64;
        }
        blobs += 1;
    }
    Ok((blobs, bytes))
}

/// A digest of every blob a store holds (id, size, complete), the same for two stores holding
/// the same photos whatever their kind: what a move must keep equal.
pub fn blob_digest(store: &dyn BlobStore) -> Result<String, BlobError> {
    let mut all = store.list()?;
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (hash, held) in all {
        hasher.update(format!("{hash} {} {}\n", held.size, held.complete));
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks the shape of an upload's next chunk against what is held; the one place the rules
/// for a chunk live, shared by every implementation.
pub fn check_chunk(have: u64, offset: u64, total: u64, bytes: &[u8], max_total: u64) -> Result<u64, BlobError> {
    if total == 0 {
        return Err(BlobError::BadChunk("a blob has at least one byte (total=0)".into()));
    }
    if total > max_total {
        return Err(BlobError::TooLarge { max: max_total, total });
    }
    if offset != have {
        return Err(BlobError::WrongOffset { have, offset });
    }
    if bytes.is_empty() {
        return Err(BlobError::BadChunk("the chunk is empty: send the bytes from the offset on".into()));
    }
    let end = offset + bytes.len() as u64;
    if end > total {
        return Err(BlobError::BadChunk(format!(
            "the chunk ends at byte {end}, past the end of the {total}-byte blob"
        )));
    }
    Ok(end)
}

/// The part of `total` bytes a read asks for, as (start, end).
pub fn range_bounds(range: Option<ByteRange>, total: u64) -> Result<(u64, u64), BlobError> {
    match range {
        Some(r) => r.bounds(total),
        None => Ok((0, total)),
    }
}

/// Photos in memory, for the deterministic tests: the same promises, nothing durable.
#[derive(Default)]
pub struct MemoryBlobs {
    /// Id → (bytes so far, complete).
    blobs: Mutex<std::collections::BTreeMap<String, (Vec<u8>, bool)>>,
}

impl MemoryBlobs {
    pub fn new() -> Self {
        Self::default()
    }

    fn checked(hash: &str) -> Result<(), BlobError> {
        validate_hash(hash).map_err(|_| BlobError::BadId(hash.to_string()))
    }
}

impl BlobStore for MemoryBlobs {
    fn status(&self, hash: &str) -> Result<HeldBlob, BlobError> {
        Self::checked(hash)?;
        let blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(blobs
            .get(hash)
            .map_or(HeldBlob { size: 0, complete: false }, |(b, c)| HeldBlob { size: b.len() as u64, complete: *c }))
    }

    fn append(&self, hash: &str, offset: u64, total: u64, bytes: &[u8], max_total: u64) -> Result<HeldBlob, BlobError> {
        Self::checked(hash)?;
        let mut blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let (have, complete) = blobs.get(hash).map_or((0, false), |(b, c)| (b.len() as u64, *c));
        if complete {
            return Ok(HeldBlob { size: have, complete: true });
        }
        let end = check_chunk(have, offset, total, bytes, max_total)?;
        let entry = blobs.entry(hash.to_string()).or_default();
        entry.0.extend_from_slice(bytes);
        if end < total {
            return Ok(HeldBlob { size: end, complete: false });
        }
        if hex::encode(Sha256::digest(&entry.0)) != hash {
            blobs.remove(hash);
            return Err(BlobError::HashMismatch);
        }
        entry.1 = true;
        Ok(HeldBlob { size: total, complete: true })
    }

    fn read(&self, hash: &str, range: Option<ByteRange>) -> Result<BlobSlice, BlobError> {
        Self::checked(hash)?;
        let blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let Some((bytes, true)) = blobs.get(hash) else { return Err(BlobError::NotFound) };
        let total = bytes.len() as u64;
        let (start, end) = range_bounds(range, total)?;
        Ok(BlobSlice { start, total, bytes: bytes[start as usize..end as usize].to_vec() })
    }

    fn list(&self) -> Result<Vec<(String, HeldBlob)>, BlobError> {
        let blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(blobs.iter().map(|(h, (b, c))| (h.clone(), HeldBlob { size: b.len() as u64, complete: *c })).collect())
    }

    fn read_partial(&self, hash: &str) -> Result<Vec<u8>, BlobError> {
        Self::checked(hash)?;
        let blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        match blobs.get(hash) {
            Some((bytes, false)) => Ok(bytes.clone()),
            _ => Err(BlobError::NotFound),
        }
    }

    fn import_partial(&self, hash: &str, bytes: &[u8]) -> Result<(), BlobError> {
        Self::checked(hash)?;
        let mut blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let entry = blobs.entry(hash.to_string()).or_default();
        if !entry.1 && entry.0.len() < bytes.len() {
            entry.0 = bytes.to_vec();
        }
        Ok(())
    }
}

pub struct BlobFiles {
    root: PathBuf,
    /// Uploads append to a file and then may rename it; one at a time, so two devices sending
    /// the same photo at once cannot interleave their bytes. Reads need no lock: a finished
    /// blob never changes and appears by an atomic rename.
    writing: Mutex<()>,
}

impl BlobFiles {
    /// Blob files under `root`. Nothing is created until the first upload.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        BlobFiles { root: root.into(), writing: Mutex::new(()) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn final_path(&self, hash: &str) -> Result<PathBuf, BlobError> {
        validate_hash(hash).map_err(|_| BlobError::BadId(hash.to_string()))?;
        Ok(self.root.join(&hash[..2]).join(&hash[2..]))
    }

    fn partial_path(&self, hash: &str) -> Result<PathBuf, BlobError> {
        validate_hash(hash).map_err(|_| BlobError::BadId(hash.to_string()))?;
        Ok(self.root.join("partial").join(hash))
    }
}

impl BlobStore for BlobFiles {
    fn status(&self, hash: &str) -> Result<HeldBlob, BlobError> {
        if let Some(size) = file_len(&self.final_path(hash)?)? {
            return Ok(HeldBlob { size, complete: true });
        }
        let size = file_len(&self.partial_path(hash)?)?.unwrap_or(0);
        Ok(HeldBlob { size, complete: false })
    }

    fn append(&self, hash: &str, offset: u64, total: u64, bytes: &[u8], max_total: u64) -> Result<HeldBlob, BlobError> {
        let final_path = self.final_path(hash)?;
        let partial = self.partial_path(hash)?;
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(size) = file_len(&final_path)? {
            // Already here (another device sent it, or a reply was lost): nothing to do.
            return Ok(HeldBlob { size, complete: true });
        }
        let have = file_len(&partial)?.unwrap_or(0);
        let end = check_chunk(have, offset, total, bytes, max_total)?;
        let dir = partial.parent().expect("a partial path has a parent");
        fs::create_dir_all(dir)?;
        let mut file = OpenOptions::new().create(true).append(true).open(&partial)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        if end < total {
            return Ok(HeldBlob { size: end, complete: false });
        }
        drop(file);
        if sha256_of_file(&partial)? != hash {
            fs::remove_file(&partial)?;
            return Err(BlobError::HashMismatch);
        }
        let shard = final_path.parent().expect("a blob path has a parent");
        fs::create_dir_all(shard)?;
        fs::rename(&partial, &final_path)?;
        sync_dir(shard)?;
        sync_dir(dir)?;
        Ok(HeldBlob { size: total, complete: true })
    }

    /// The bytes were verified when the blob was finished, and a finished blob is never
    /// written again.
    fn read(&self, hash: &str, range: Option<ByteRange>) -> Result<BlobSlice, BlobError> {
        let path = self.final_path(hash)?;
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let total = file.metadata()?.len();
        let (start, end) = range_bounds(range, total)?;
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = vec![0; (end - start) as usize];
        file.read_exact(&mut bytes)?;
        Ok(BlobSlice { start, total, bytes })
    }

    fn list(&self) -> Result<Vec<(String, HeldBlob)>, BlobError> {
        let mut all = Vec::new();
        let Ok(shards) = fs::read_dir(&self.root) else { return Ok(all) };
        for shard in shards {
            let shard = shard?;
            let name = shard.file_name().to_string_lossy().to_string();
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(shard.path())? {
                let file = file?;
                let rest = file.file_name().to_string_lossy().to_string();
                let hash = if name == "partial" { rest } else { format!("{name}{rest}") };
                // Anything else in the folder (a stray file) is not a blob.
                if validate_hash(&hash).is_err() {
                    continue;
                }
                let size = file.metadata()?.len();
                all.push((hash, HeldBlob { size, complete: name != "partial" }));
            }
        }
        // A blob finished while its partial file was being listed appears once, complete.
        all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.complete.cmp(&a.1.complete)));
        all.dedup_by(|a, b| a.0 == b.0);
        Ok(all)
    }

    fn read_partial(&self, hash: &str) -> Result<Vec<u8>, BlobError> {
        match fs::read(self.partial_path(hash)?) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    fn import_partial(&self, hash: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let (final_path, partial) = (self.final_path(hash)?, self.partial_path(hash)?);
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        if file_len(&final_path)?.is_some() || file_len(&partial)?.unwrap_or(0) >= bytes.len() as u64 {
            return Ok(());
        }
        let dir = self.root.join("partial");
        fs::create_dir_all(&dir)?;
        let mut file = File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        sync_dir(&dir)?;
        Ok(())
    }
}

fn file_len(path: &Path) -> io::Result<Option<u64>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn sha256_of_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Flushes a directory, so that a rename in it survives a power cut.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_http_writes_them() {
        assert_eq!(ByteRange::parse("bytes=0-99"), Some(ByteRange::FromTo(0, 99)));
        assert_eq!(ByteRange::parse("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(ByteRange::parse("bytes=-5"), Some(ByteRange::Last(5)));
        for bad in ["bytes=5-1", "bytes=-", "bytes=a-b", "items=0-1", "bytes=0-1,3-4", "bytes=+1-2", ""] {
            assert_eq!(ByteRange::parse(bad), None, "{bad}");
        }
        assert_eq!(ByteRange::FromTo(2, 1000).bounds(10).unwrap(), (2, 10));
        assert_eq!(ByteRange::Last(1000).bounds(10).unwrap(), (0, 10));
        assert!(matches!(ByteRange::From(10).bounds(10), Err(BlobError::RangeNotSatisfiable { total: 10 })));
    }

    #[test]
    fn an_upload_in_chunks_finishes_verified_and_a_wrong_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::new(dir.path().join("blobs"));
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let hash = hex::encode(Sha256::digest(&data));
        assert_eq!(files.status(&hash).unwrap(), HeldBlob { size: 0, complete: false });
        assert!(!dir.path().join("blobs").exists(), "asking creates nothing");
        assert_eq!(files.append(&hash, 0, 1000, &data[..400], 5000).unwrap(), HeldBlob { size: 400, complete: false });
        assert!(matches!(
            files.append(&hash, 0, 1000, &data[..400], 5000),
            Err(BlobError::WrongOffset { have: 400, offset: 0 })
        ));
        assert!(matches!(files.append(&hash, 400, 1000, &data[400..], 999), Err(BlobError::TooLarge { .. })));
        assert_eq!(
            files.append(&hash, 400, 1000, &data[400..900], 5000).unwrap(),
            HeldBlob { size: 900, complete: false }
        );
        assert!(
            matches!(files.append(&hash, 900, 1000, &data[800..], 5000), Err(BlobError::BadChunk(_))),
            "past the end"
        );
        assert_eq!(
            files.append(&hash, 900, 1000, &data[900..], 5000).unwrap(),
            HeldBlob { size: 1000, complete: true }
        );
        assert_eq!(files.read(&hash, None).unwrap().bytes, data);
        assert_eq!(
            files.read(&hash, Some(ByteRange::From(990))).unwrap(),
            BlobSlice { start: 990, total: 1000, bytes: data[990..].to_vec() }
        );
        // Sending it again changes nothing.
        assert_eq!(files.append(&hash, 0, 1000, &data, 5000).unwrap(), HeldBlob { size: 1000, complete: true });

        let other = hex::encode(Sha256::digest(b"other"));
        assert!(matches!(files.append(&other, 0, 5, b"lies!", 5000), Err(BlobError::HashMismatch)));
        assert_eq!(files.status(&other).unwrap(), HeldBlob { size: 0, complete: false });
        assert!(matches!(files.read(&other, None), Err(BlobError::NotFound)));
        assert!(matches!(files.status("../../etc/passwd"), Err(BlobError::BadId(_))));
    }
}

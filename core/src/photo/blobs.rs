//! Content-addressed photo files: `<root>/ab/cdef…` for a blob whose SHA-256 is `abcdef…`.
//!
//! A file appears whole or not at all: it is written to a temporary file in the same directory,
//! flushed to the disk, and renamed over its final name, and the directory is flushed too, so a
//! phone that loses power mid-write is left with either the complete photo or a stray temporary
//! file that the next garbage collection removes. Since a name is the hash of the content, a file
//! that already exists never needs writing again.
//!
//! On a device whose store is encrypted, every file is sealed (XChaCha20-Poly1305 under a key
//! derived from the store key, see `store::keys`): the file holds [`SEALED_MAGIC`], a nonce and
//! the sealed bytes, and names nothing but the hash of the plain JPEG, so sync, dedup and the
//! relay's checks see the same ids as before. A plain file (a store made before encryption, not
//! yet migrated) is still read, and checked against its hash like any other.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use zeroize::Zeroizing;

use super::error::PhotoError;
use super::ingest::content_hash;
use crate::store::keys;

/// Prefix of temporary files, so a listing can tell them from blobs.
const TEMP_PREFIX: &str = ".tmp-";

/// The first bytes of a sealed photo file. A JPEG starts with FF D8, so the two never mix.
pub const SEALED_MAGIC: &[u8; 8] = b"GWPHOTO1";

#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// The key files are sealed with; `None` on a device whose store is not encrypted.
    seal_key: Option<Arc<Zeroizing<[u8; 32]>>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore").field("root", &self.root).field("sealed", &self.seal_key.is_some()).finish()
    }
}

/// Checks that `hash` is a SHA-256 in lowercase hex, so it can never name a path outside the
/// blob directory.
pub fn validate_hash(hash: &str) -> Result<(), PhotoError> {
    // The one rule for what a photo id is lives with the protocol, which the relay shares.
    gridwalk_protocol::validate_blob_id(hash).map_err(|_| PhotoError::BadHash { hash: hash.to_string() })
}

impl BlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        BlobStore { root: root.into(), seal_key: None }
    }

    /// A blob store whose files are sealed with `key` (the photo key of an encrypted store).
    pub fn sealed(root: impl Into<PathBuf>, key: Zeroizing<[u8; 32]>) -> Self {
        BlobStore { root: root.into(), seal_key: Some(Arc::new(key)) }
    }

    /// The bytes as they are written to the file: sealed when this store seals, with the hash
    /// as the sealed data's context, so a file renamed to another photo's name is refused.
    fn file_bytes(&self, hash: &str, bytes: &[u8]) -> Result<Vec<u8>, PhotoError> {
        let Some(key) = &self.seal_key else { return Ok(bytes.to_vec()) };
        let sealed = keys::seal(key, hash.as_bytes(), bytes).map_err(|e| PhotoError::Core(Box::new(e)))?;
        let mut out = Vec::with_capacity(SEALED_MAGIC.len() + sealed.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Writes `bytes` (already as they go on disk) under `target`, whole or not at all.
    fn write_file(target: &Path, bytes: &[u8]) -> Result<(), PhotoError> {
        let dir = target.parent().ok_or_else(|| PhotoError::BadHash { hash: target.display().to_string() })?;
        fs::create_dir_all(dir)?;
        let mut temp = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(target).map_err(|e| e.error)?;
        sync_dir(dir)?;
        Ok(())
    }

    /// Seals every plain file in place (a store being encrypted). Returns how many were sealed.
    /// A file already sealed is left alone, so a migration interrupted half-way simply runs again.
    pub fn seal_plain_files(&self) -> Result<usize, PhotoError> {
        if self.seal_key.is_none() {
            return Ok(0);
        }
        let mut sealed = 0;
        for hash in self.scan()?.0 {
            let path = self.path(&hash)?;
            let bytes = fs::read(&path)?;
            if bytes.starts_with(SEALED_MAGIC) {
                continue;
            }
            if content_hash(&bytes) != hash {
                // A damaged plain file is no photo anyone can use, and plain: it goes, and the
                // photo downloads again if the relay has it.
                fs::remove_file(&path)?;
                continue;
            }
            Self::write_file(&path, &self.file_bytes(&hash, &bytes)?)?;
            sealed += 1;
        }
        Ok(sealed)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this hash lives (whether or not it is there).
    pub fn path(&self, hash: &str) -> Result<PathBuf, PhotoError> {
        validate_hash(hash)?;
        Ok(self.root.join(&hash[..2]).join(&hash[2..]))
    }

    pub fn contains(&self, hash: &str) -> Result<bool, PhotoError> {
        Ok(self.path(hash)?.is_file())
    }

    /// Stores `bytes` under `hash`. Returns false when the blob was already there. Refuses bytes
    /// that do not have this hash: a content address that lies would break every later check.
    pub fn put(&self, hash: &str, bytes: &[u8]) -> Result<bool, PhotoError> {
        let target = self.path(hash)?;
        if content_hash(bytes) != hash {
            return Err(PhotoError::BlobCorrupt { hash: hash.to_string() });
        }
        if target.is_file() {
            return Ok(false);
        }
        Self::write_file(&target, &self.file_bytes(hash, bytes)?)?;
        Ok(true)
    }

    /// The blob's bytes, checked against its hash.
    pub fn read(&self, hash: &str) -> Result<Vec<u8>, PhotoError> {
        let path = self.path(hash)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PhotoError::BlobMissing { hash: hash.to_string() })
            }
            Err(e) => return Err(e.into()),
        };
        let bytes = match bytes.strip_prefix(SEALED_MAGIC.as_slice()) {
            None => bytes,
            Some(sealed) => {
                let corrupt = || PhotoError::BlobCorrupt { hash: hash.to_string() };
                let key = self.seal_key.as_ref().ok_or_else(corrupt)?;
                keys::open(key, hash.as_bytes(), sealed).ok_or_else(corrupt)?.to_vec()
            }
        };
        if content_hash(&bytes) != hash {
            return Err(PhotoError::BlobCorrupt { hash: hash.to_string() });
        }
        Ok(bytes)
    }

    /// Deletes the blob; false when it was not there.
    pub fn remove(&self, hash: &str) -> Result<bool, PhotoError> {
        match fs::remove_file(self.path(hash)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The hashes of every blob on disk, and the paths of temporary files left by interrupted
    /// writes.
    pub fn scan(&self) -> Result<(Vec<String>, Vec<PathBuf>), PhotoError> {
        let mut hashes = Vec::new();
        let mut temps = Vec::new();
        let top = match fs::read_dir(&self.root) {
            Ok(top) => top,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((hashes, temps)),
            Err(e) => return Err(e.into()),
        };
        for shard in top {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            let prefix = shard.file_name().to_string_lossy().into_owned();
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(TEMP_PREFIX) {
                    temps.push(entry.path());
                    continue;
                }
                let hash = format!("{prefix}{name}");
                if validate_hash(&hash).is_ok() {
                    hashes.push(hash);
                }
            }
        }
        hashes.sort();
        Ok((hashes, temps))
    }
}

/// Flushes a directory, so that a rename in it survives a power cut. Directories cannot be opened
/// for this on Windows, where the rename is durable by other means.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()?;
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
    fn a_blob_is_stored_once_under_its_hash_and_read_back_checked() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path().join("blobs"));
        let bytes = b"not really a jpeg".to_vec();
        let hash = content_hash(&bytes);
        assert!(blobs.put(&hash, &bytes).unwrap());
        assert!(!blobs.put(&hash, &bytes).unwrap(), "the second put finds it there");
        let path = blobs.path(&hash).unwrap();
        assert!(path.starts_with(dir.path().join("blobs").join(&hash[..2])));
        assert_eq!(blobs.read(&hash).unwrap(), bytes);
        assert_eq!(blobs.scan().unwrap(), (vec![hash.clone()], vec![]));

        fs::write(&path, b"tampered").unwrap();
        assert!(matches!(blobs.read(&hash), Err(PhotoError::BlobCorrupt { .. })));
        assert!(blobs.remove(&hash).unwrap());
        assert!(matches!(blobs.read(&hash), Err(PhotoError::BlobMissing { .. })));
    }

    #[test]
    fn bytes_that_do_not_match_their_hash_and_bad_hashes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let other = content_hash(b"other");
        assert!(matches!(blobs.put(&other, b"this"), Err(PhotoError::BlobCorrupt { .. })));
        assert!(matches!(blobs.path("../../etc/passwd"), Err(PhotoError::BadHash { .. })));
        assert!(matches!(blobs.path(&other.to_uppercase()), Err(PhotoError::BadHash { .. })));
        assert_eq!(blobs.scan().unwrap().0, Vec::<String>::new());
    }
}

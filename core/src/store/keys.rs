//! The store's key: what encrypts a device's SQLite file (SQLCipher) and its photo files, and
//! how that key is kept so that a copied data directory, a lost phone or a backup stick reads
//! nothing.
//!
//! The key is 256 random bits, made once when the store is set up and never written in plain
//! text. What is written, in a small JSON file beside the store (`gridwalk.db.key`), is the key
//! *wrapped*:
//!
//! - **by the walker's PIN** (`Lock::Pin`): XChaCha20-Poly1305 under a key derived from the PIN
//!   with Argon2id (`gridwalk_doc::pin::derive_key`; its cost is in `gridwalk-bench encryption`). A wrong PIN
//!   fails the cipher's check, so the PIN itself is stored nowhere. Where the platform has a
//!   keystore, the PIN-wrapped key is sealed by it too: a copy of the data directory taken off
//!   the phone then cannot even be guessed at offline, because the keystore's key never leaves
//!   the phone.
//! - **by the keystore alone** (`Lock::Keystore`): for a hall PC, where staff sign in one by one
//!   with their own PINs and nobody owns the machine. A copy of the data directory alone reads
//!   nothing; the PC itself, running, does.
//!
//! Wrong PINs are counted in the key file (the store cannot be read before the PIN is right),
//! and slowed down by the one rule in `gridwalk_doc::pin::wrong_pin_wait`.
//!
//! A walker's phone also keeps its key **escrowed** in the key file: wrapped (with age) to the
//! relay's escrow key, together with the device's id. Nothing on the phone opens it. When she
//! forgets her PIN, her new enrolment hands it to the relay, which releases the key to that
//! enrolment only after the hall confirmed it is the same walker (the relay's `handover`
//! module), so the work she had not sent yet is not lost with the PIN.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{CoreError, Result};
use crate::pin;

/// The 256-bit key that encrypts one store and its photos. Wiped from memory when dropped.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

impl StoreKey {
    /// A fresh random key, from the operating system's generator.
    pub fn generate() -> StoreKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        StoreKey(key)
    }

    fn from_slice(bytes: &[u8]) -> Result<StoreKey> {
        let array: [u8; 32] =
            bytes.try_into().map_err(|_| CoreError::StoreKey("the unwrapped key is not 32 bytes".into()))?;
        Ok(StoreKey(Zeroizing::new(array)))
    }

    /// The key as SQLCipher's raw-key literal (`x'…'`): a raw key skips SQLCipher's own
    /// passphrase derivation, which would otherwise cost every connection a second or more.
    pub(crate) fn sqlcipher_literal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(&self.0[..])))
    }

    /// The key a hand-over's secret half is sealed with while it waits (see [`HandoverKey`]).
    fn handover_key(&self) -> Zeroizing<[u8; 32]> {
        let mut hasher = Sha256::new();
        hasher.update(b"gridwalk hand-over v1");
        hasher.update(&self.0[..]);
        Zeroizing::new(hasher.finalize().into())
    }

    /// The key photo files are sealed with: derived from the store key so that one secret
    /// unlocks everything, and a different key for a different use.
    pub(crate) fn photo_key(&self) -> Zeroizing<[u8; 32]> {
        let mut hasher = Sha256::new();
        hasher.update(b"gridwalk photo files v1");
        hasher.update(&self.0[..]);
        Zeroizing::new(hasher.finalize().into())
    }
}

/// What stands between a copied key file and the store key.
#[derive(Debug, Clone, Copy)]
pub enum Lock<'a> {
    /// The walker's PIN (4 to 8 digits).
    Pin(&'a str),
    /// The platform's keystore alone (a hall PC).
    Keystore,
}

/// How a store's key file is locked, as the app asks before it shows a PIN pad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    Pin,
    Keystore,
}

/// The platform's keystore: a key that seals and opens small secrets and never leaves the
/// device. On Android this is the Android Keystore, reached through a Tauri plugin (see the
/// README's Android section); on a desktop, [`FileKeystore`].
pub trait Keystore: Send + Sync {
    /// Written in the key file, so that a key sealed by one keystore is never given to another.
    fn name(&self) -> &str;
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>>;
    fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// The desktop's keystore: a random machine key in a file only its user may read, kept in the
/// user's configuration folder and not in the app's data folder. A copy of the data folder (a
/// backup, a folder sent by mistake) therefore holds nothing that opens the store. It is weaker
/// than a hardware keystore: someone who copies both folders, or runs code as the user, has
/// the key. Linux desktops offer nothing better that works without a signed-in session (the
/// Secret Service needs one, and a hall PC's app may start before anyone signs in).
pub struct FileKeystore {
    path: PathBuf,
}

impl FileKeystore {
    pub fn new(path: impl Into<PathBuf>) -> FileKeystore {
        FileKeystore { path: path.into() }
    }

    /// The machine key, made on first use.
    fn machine_key(&self) -> Result<Zeroizing<[u8; 32]>> {
        let io = |e: std::io::Error| CoreError::StoreKey(format!("keystore {}: {e}", self.path.display()));
        match fs::read(&self.path) {
            Ok(bytes) => {
                let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    CoreError::StoreKey(format!("keystore {} is damaged (not 32 bytes)", self.path.display()))
                })?;
                return Ok(Zeroizing::new(array));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let key = StoreKey::generate();
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        write_private(&self.path, &key.0[..]).map_err(io)?;
        Ok(Zeroizing::new(*key.0))
    }
}

impl Keystore for FileKeystore {
    fn name(&self) -> &str {
        "desktop-file"
    }

    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        seal(&*self.machine_key()?, b"gridwalk keystore v1", plain)
    }

    fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        open(&*self.machine_key()?, b"gridwalk keystore v1", sealed)
            .ok_or_else(|| CoreError::StoreKey("this keystore did not seal this store's key".into()))
    }
}

/// The key file as written: everything in it is either public (the salt) or sealed.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    lock: LockKind,
    /// The keystore that sealed `wrapped`, if any.
    keystore: Option<String>,
    /// Argon2id's salt for a PIN lock.
    salt: Option<String>,
    wrapped: String,
    /// Wrong PINs in a row, and when the last was typed (milliseconds since the epoch).
    wrong_pins: u32,
    last_wrong_at: Option<i64>,
    /// The key escrowed with the relay (see the module's comment). Absent from key files made
    /// before escrow, and until the phone first hears the relay's escrow key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    escrow: Option<Escrow>,
}

/// The store key wrapped to a relay's escrow key.
#[derive(Serialize, Deserialize, Clone)]
struct Escrow {
    /// The relay's escrow recipient (`age1…`) it is wrapped to.
    recipient: String,
    /// An age file holding `gridwalk_protocol::EscrowedStoreKey` as JSON, hex.
    wrapped: String,
}

const KEY_FILE_VERSION: u32 = 1;

/// Held while a key file is read, checked and written back: PINs tried at once (the app runs
/// commands on several threads) take turns, so each is counted and none slips past a wait, and
/// a PIN being changed is not written over by an attempt that read the file before.
static KEY_FILE_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn key_file_turn() -> std::sync::MutexGuard<'static, ()> {
    KEY_FILE_TURN.lock().unwrap_or_else(|p| p.into_inner())
}
const PIN_CONTEXT: &[u8] = b"gridwalk store key v1";

/// The key file of the store at `store_path`: `gridwalk.db` → `gridwalk.db.key`.
pub fn key_file_path(store_path: &Path) -> PathBuf {
    let mut name = store_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".key");
    store_path.with_file_name(name)
}

/// How the store at `store_path` is locked, or `None` for a store without a key (a plain store
/// made before encryption, or by a test).
pub fn lock_kind(store_path: &Path) -> Result<Option<LockKind>> {
    Ok(read_key_file(store_path)?.map(|f| f.lock))
}

/// How long the next PIN must still wait at `now`, after wrong ones (see [`unlock`]).
pub fn pin_wait(store_path: &Path, now: i64) -> Result<Option<std::time::Duration>> {
    Ok(read_key_file(store_path)?
        .filter(|f| f.lock == LockKind::Pin)
        .and_then(|f| pin::wrong_pin_wait(f.wrong_pins, f.last_wrong_at, now)))
}

/// Makes a new key for the store at `store_path` and writes it wrapped as `lock` says. Refuses
/// when the store already has one: a second key would lose the first.
pub fn set_up(store_path: &Path, lock: Lock<'_>, keystore: Option<&dyn Keystore>) -> Result<StoreKey> {
    let _turn = key_file_turn();
    if read_key_file(store_path)?.is_some() {
        return Err(CoreError::AlreadyExists { id: format!("a key for {}", store_path.display()) });
    }
    let key = StoreKey::generate();
    write_key_file(store_path, &wrap(&key, lock, keystore)?)?;
    Ok(key)
}

/// Unwraps the store's key. A wrong PIN is counted in the key file, and after
/// [`pin::FREE_ATTEMPTS`] wrong ones each further attempt must wait (`PinAttemptsSlowed`),
/// whether it would be right or not.
pub fn unlock(store_path: &Path, lock: Lock<'_>, keystore: Option<&dyn Keystore>, now: i64) -> Result<StoreKey> {
    let _turn = key_file_turn();
    let mut file = read_key_file(store_path)?
        .ok_or_else(|| CoreError::NotInitialised { path: key_file_path(store_path).display().to_string() })?;
    let sealed = B64.decode(&file.wrapped).map_err(|_| damaged(store_path))?;
    let inner = match (&file.keystore, keystore) {
        (None, _) => Zeroizing::new(sealed),
        (Some(name), Some(ks)) if ks.name() == name => ks.open(&sealed)?,
        (Some(name), _) => {
            return Err(CoreError::StoreKey(format!(
                "this store's key is sealed by the keystore '{name}', which this device does not have"
            )))
        }
    };
    match (file.lock, lock) {
        (LockKind::Keystore, _) => StoreKey::from_slice(&inner),
        (LockKind::Pin, Lock::Keystore) => Err(CoreError::Locked { path: store_path.display().to_string() }),
        (LockKind::Pin, Lock::Pin(pin)) => {
            if let Some(wait) = pin::wrong_pin_wait(file.wrong_pins, file.last_wrong_at, now) {
                return Err(CoreError::PinAttemptsSlowed { seconds: wait.as_secs().max(1) });
            }
            let salt = file.salt.as_deref().and_then(|s| B64.decode(s).ok()).ok_or_else(|| damaged(store_path))?;
            let salt: [u8; 16] = salt.as_slice().try_into().map_err(|_| damaged(store_path))?;
            pin::check_pin_shape(pin)
                .map_err(|e| CoreError::InvalidInput { field: "pin".into(), message: e.to_string() })?;
            // Counted as wrong before it is checked, and forgiven only once it proved right: a
            // guess whose count could not be written is never checked, and one cut off half-way
            // (the app killed during the derivation) stays counted.
            file.wrong_pins = file.wrong_pins.saturating_add(1);
            file.last_wrong_at = Some(now);
            write_key_file(store_path, &file)?;
            let kek = pin_key(pin, &salt)?;
            match open(&kek, PIN_CONTEXT, &inner) {
                Some(key) => {
                    file.wrong_pins = 0;
                    file.last_wrong_at = None;
                    write_key_file(store_path, &file)?;
                    StoreKey::from_slice(&key)
                }
                None => Err(CoreError::WrongPin { left: pin::FREE_ATTEMPTS.saturating_sub(file.wrong_pins) }),
            }
        }
    }
}

/// Wraps the (unlocked) key anew under `lock`: a new PIN, or a PIN for a store that had none.
/// The escrowed key stays as it was.
pub fn rewrap(store_path: &Path, key: &StoreKey, lock: Lock<'_>, keystore: Option<&dyn Keystore>) -> Result<()> {
    let _turn = key_file_turn();
    let escrow = read_key_file(store_path)?.and_then(|f| f.escrow);
    write_key_file(store_path, &KeyFile { escrow, ..wrap(key, lock, keystore)? })
}

/// Escrows the (unlocked) key with the relay whose escrow recipient is `recipient`, for
/// `device_id`: written into the key file beside the PIN-wrapped key. Nothing happens when it
/// is escrowed to that recipient already; false then.
pub fn escrow(store_path: &Path, key: &StoreKey, device_id: &str, recipient: &str) -> Result<bool> {
    let to: age::x25519::Recipient = recipient.parse().map_err(|e| {
        CoreError::StoreKey(format!("the relay's escrow key '{recipient}' is not an age recipient: {e}"))
    })?;
    let _turn = key_file_turn();
    let mut file = read_key_file(store_path)?
        .ok_or_else(|| CoreError::NotInitialised { path: key_file_path(store_path).display().to_string() })?;
    if file.escrow.as_ref().is_some_and(|e| e.recipient == recipient) {
        return Ok(false);
    }
    let plain = Zeroizing::new(
        serde_json::to_vec(&gridwalk_protocol::EscrowedStoreKey {
            device_id: device_id.to_string(),
            store_key: hex::encode(&key.0[..]),
        })
        .map_err(|e| CoreError::StoreKey(e.to_string()))?,
    );
    let wrapped = age::encrypt(&to, &plain).map_err(|e| CoreError::StoreKey(format!("cannot escrow the key: {e}")))?;
    file.escrow = Some(Escrow { recipient: recipient.to_string(), wrapped: hex::encode(wrapped) });
    write_key_file(store_path, &file)?;
    Ok(true)
}

/// The escrowed key of the store at `store_path` (hex of an age file), as the relay's
/// hand-over takes it; `None` when the key was never escrowed.
pub fn escrowed(store_path: &Path) -> Result<Option<String>> {
    Ok(read_key_file(store_path)?.and_then(|f| f.escrow).map(|e| e.wrapped))
}

/// A one-time age key pair for one hand-over: the relay releases the old store's key to its
/// public half; the secret half is kept sealed under the new store's key until the key arrives.
pub struct HandoverKey(age::x25519::Identity);

impl HandoverKey {
    pub fn generate() -> HandoverKey {
        HandoverKey(age::x25519::Identity::generate())
    }

    /// The recipient (`age1…`) the relay wraps the released key to.
    pub fn recipient(&self) -> String {
        self.0.to_public().to_string()
    }

    /// The secret half sealed under `key` (the new store's), hex: kept beside the old store.
    pub fn seal_under(&self, key: &StoreKey) -> Result<String> {
        use age::secrecy::ExposeSecret;
        let secret = self.0.to_string();
        Ok(hex::encode(seal(&key.handover_key(), HANDOVER_CONTEXT, secret.expose_secret().as_bytes())?))
    }

    /// Opens what [`HandoverKey::seal_under`] sealed with the same store key.
    pub fn open_under(sealed: &str, key: &StoreKey) -> Result<HandoverKey> {
        let bad = || CoreError::StoreKey("the hand-over key does not open with this store's key".into());
        let bytes = hex::decode(sealed).map_err(|_| bad())?;
        let plain = open(&key.handover_key(), HANDOVER_CONTEXT, &bytes).ok_or_else(bad)?;
        let text = std::str::from_utf8(&plain).map_err(|_| bad())?;
        Ok(HandoverKey(text.parse().map_err(|_| bad())?))
    }

    /// Opens the key the relay released (hex of an age file): the old device's id and its
    /// store key.
    pub fn open_released(&self, released: &str) -> Result<(String, StoreKey)> {
        let bad = |why: &str| CoreError::StoreKey(format!("the released key {why}"));
        let bytes = hex::decode(released).map_err(|_| bad("is not hex"))?;
        let plain =
            Zeroizing::new(age::decrypt(&self.0, &bytes).map_err(|_| bad("was not wrapped for this hand-over"))?);
        let escrowed: gridwalk_protocol::EscrowedStoreKey =
            serde_json::from_slice(&plain).map_err(|_| bad("does not read"))?;
        let key = Zeroizing::new(hex::decode(&escrowed.store_key).map_err(|_| bad("holds no key"))?);
        Ok((escrowed.device_id, StoreKey::from_slice(&key)?))
    }
}

const HANDOVER_CONTEXT: &[u8] = b"gridwalk hand-over key v1";

/// Destroys the key file: overwritten, flushed and removed. Without it, whatever is left of the
/// store and its photos (a flash cell the file system did not erase) can no longer be read.
pub fn destroy(store_path: &Path) -> Result<()> {
    let _turn = key_file_turn();
    let path = key_file_path(store_path);
    if let Ok(len) = fs::metadata(&path).map(|m| m.len()) {
        let mut f = fs::OpenOptions::new().write(true).open(&path)?;
        f.write_all(&vec![0u8; len as usize])?;
        f.sync_all()?;
    }
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn wrap(key: &StoreKey, lock: Lock<'_>, keystore: Option<&dyn Keystore>) -> Result<KeyFile> {
    let (kind, salt, inner) = match lock {
        Lock::Pin(pin) => {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            let kek = pin_key(pin, &salt)?;
            (LockKind::Pin, Some(B64.encode(salt)), seal(&kek, PIN_CONTEXT, &key.0[..])?)
        }
        Lock::Keystore => {
            if keystore.is_none() {
                return Err(CoreError::StoreKey("a keystore lock needs a keystore".into()));
            }
            (LockKind::Keystore, None, key.0.to_vec())
        }
    };
    let wrapped = match keystore {
        Some(ks) => ks.seal(&inner)?,
        None => inner,
    };
    Ok(KeyFile {
        version: KEY_FILE_VERSION,
        lock: kind,
        keystore: keystore.map(|k| k.name().to_string()),
        salt,
        wrapped: B64.encode(wrapped),
        wrong_pins: 0,
        last_wrong_at: None,
        escrow: None,
    })
}

fn pin_key(pin: &str, salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>> {
    pin::derive_key(pin, salt)
        .map(Zeroizing::new)
        .map_err(|e| CoreError::InvalidInput { field: "pin".into(), message: e.to_string() })
}

fn damaged(store_path: &Path) -> CoreError {
    CoreError::StoreKey(format!("{} is damaged", key_file_path(store_path).display()))
}

fn read_key_file(store_path: &Path) -> Result<Option<KeyFile>> {
    let path = key_file_path(store_path);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let file: KeyFile = serde_json::from_str(&text).map_err(|_| damaged(store_path))?;
    if file.version != KEY_FILE_VERSION {
        return Err(CoreError::StoreKey(format!(
            "{} is of version {}, which this app does not know",
            path.display(),
            file.version
        )));
    }
    Ok(Some(file))
}

fn write_key_file(store_path: &Path, file: &KeyFile) -> Result<()> {
    let text = serde_json::to_vec_pretty(file).map_err(|e| CoreError::StoreKey(e.to_string()))?;
    write_private(&key_file_path(store_path), &text)?;
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all (a temporary file, flushed, then renamed), and
/// readable by this user only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// XChaCha20-Poly1305: a random 24-byte nonce, then the sealed bytes. A nonce this long can be
/// drawn at random for every seal without ever repeating in practice.
pub(crate) fn seal(key: &[u8; 32], context: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad: context })
        .map_err(|_| CoreError::StoreKey("sealing failed".into()))?;
    let mut out = Vec::with_capacity(24 + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] made with the same key and context; `None` for anything else.
pub(crate) fn open(key: &[u8; 32], context: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 24 + 16 {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let (nonce, body) = sealed.split_at(24);
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad: context }).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_locked_key_opens_with_its_pin_only_and_slows_down_guessing() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("gridwalk.db");
        let key = set_up(&store, Lock::Pin("2580"), None).unwrap();
        let text = fs::read_to_string(key_file_path(&store)).unwrap();
        assert!(!text.contains(&hex::encode(&key.0[..])), "the key is never written in plain text");
        assert_eq!(unlock(&store, Lock::Pin("2580"), None, 0).unwrap().0, key.0);
        for n in 1..=5 {
            match unlock(&store, Lock::Pin("1111"), None, n * 1000) {
                Err(CoreError::WrongPin { left }) => assert_eq!(left, 5 - n as u32),
                other => panic!("expected a wrong PIN, got {other:?}"),
            }
        }
        // The sixth attempt waits, even with the right PIN, and counts nothing.
        assert!(matches!(
            unlock(&store, Lock::Pin("2580"), None, 6_000),
            Err(CoreError::PinAttemptsSlowed { seconds: 29 })
        ));
        assert_eq!(unlock(&store, Lock::Pin("2580"), None, 40_000).unwrap().0, key.0);
        // The right PIN reset the count.
        assert!(matches!(unlock(&store, Lock::Pin("1111"), None, 41_000), Err(CoreError::WrongPin { left: 4 })));
        assert!(matches!(set_up(&store, Lock::Pin("2580"), None), Err(CoreError::AlreadyExists { .. })));
    }

    #[test]
    fn regression_pins_tried_at_once_are_each_counted_and_none_slips_past_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("gridwalk.db");
        set_up(&store, Lock::Pin("2580"), None).unwrap();
        let answers: Vec<_> = std::thread::scope(|s| {
            let store = &store;
            let tries: Vec<_> =
                (0..8).map(|i| s.spawn(move || unlock(store, Lock::Pin("1111"), None, 1000 + i))).collect();
            tries.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let wrong = answers.iter().filter(|a| matches!(a, Err(CoreError::WrongPin { .. }))).count();
        let slowed = answers.iter().filter(|a| matches!(a, Err(CoreError::PinAttemptsSlowed { .. }))).count();
        assert_eq!((wrong, slowed), (5, 3), "five checked, the rest made to wait");
        let file = read_key_file(&store).unwrap().unwrap();
        assert_eq!(file.wrong_pins, 5);
        // Even the right PIN waits now.
        assert!(matches!(unlock(&store, Lock::Pin("2580"), None, 2000), Err(CoreError::PinAttemptsSlowed { .. })));
    }

    #[test]
    fn a_keystore_sealed_key_needs_that_keystore() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("data").join("gridwalk.db");
        fs::create_dir_all(store.parent().unwrap()).unwrap();
        let keystore = FileKeystore::new(dir.path().join("config").join("device-key"));
        let key = set_up(&store, Lock::Pin("2580"), Some(&keystore)).unwrap();
        assert_eq!(unlock(&store, Lock::Pin("2580"), Some(&keystore), 0).unwrap().0, key.0);
        // Another machine's keystore (a copy of the data folder elsewhere) opens nothing.
        let elsewhere = FileKeystore::new(dir.path().join("other").join("device-key"));
        assert!(matches!(unlock(&store, Lock::Pin("2580"), Some(&elsewhere), 0), Err(CoreError::StoreKey(_))));
        assert!(matches!(unlock(&store, Lock::Pin("2580"), None, 0), Err(CoreError::StoreKey(_))));

        let hall = dir.path().join("data").join("hall.db");
        let key = set_up(&hall, Lock::Keystore, Some(&keystore)).unwrap();
        assert_eq!(unlock(&hall, Lock::Keystore, Some(&keystore), 0).unwrap().0, key.0);
        destroy(&hall).unwrap();
        assert!(lock_kind(&hall).unwrap().is_none());
    }
}

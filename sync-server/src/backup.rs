//! Encrypted backups of the relay's database. A backup goes onto a USB stick and holds every
//! resident's name, phone number and request, so it is written encrypted (the age format) unless
//! the admin asks for a plain copy by name: to a passphrase (scrypt), or to the recipient key of
//! an identity made once at set-up (`gridwalk-relay backup-key`) and kept off the relay machine.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;

/// What a backup is encrypted to.
pub enum BackupKey {
    Passphrase(String),
    Recipients(Vec<age::x25519::Recipient>),
}

/// What a backup is decrypted with.
pub enum RestoreKey {
    Passphrase(String),
    /// An identity file as `gridwalk-relay backup-key` writes it.
    IdentityFile(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("'{0}' is not a backup recipient key: it starts with age1 and comes from `gridwalk-relay backup-key`")]
    BadRecipient(String),
    #[error("cannot read the identity file {0}: {1}")]
    BadIdentity(PathBuf, String),
    #[error("the backup cannot be opened with this passphrase or key (or it is not a Gridwalk backup): {0}")]
    Decrypt(String),
    #[error("cannot encrypt the backup: {0}")]
    Encrypt(String),
}

pub fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, BackupError> {
    text.trim().parse().map_err(|_| BackupError::BadRecipient(text.to_string()))
}

/// Encrypts the file `plain` into `to`, written under a temporary name and renamed once whole.
pub fn encrypt_file(plain: &Path, to: &Path, key: &BackupKey) -> Result<(), BackupError> {
    let encryptor = match key {
        BackupKey::Passphrase(p) => age::Encryptor::with_user_passphrase(SecretString::from(p.clone())),
        BackupKey::Recipients(rs) => age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| BackupError::Encrypt(e.to_string()))?,
    };
    write_whole(to, |out| {
        let mut writer = encryptor.wrap_output(out)?;
        std::io::copy(&mut BufReader::new(File::open(plain)?), &mut writer)?;
        Ok(writer.finish()?)
    })
}

/// Decrypts the backup `from` into the file `to`, written under a temporary name and renamed
/// once whole; nothing is left behind when the key is wrong.
pub fn decrypt_file(from: &Path, to: &Path, key: &RestoreKey) -> Result<(), BackupError> {
    let decryptor =
        age::Decryptor::new(BufReader::new(File::open(from)?)).map_err(|e| BackupError::Decrypt(e.to_string()))?;
    let identities: Vec<Box<dyn age::Identity + Send + Sync>> = match key {
        RestoreKey::Passphrase(p) => vec![Box::new(age::scrypt::Identity::new(SecretString::from(p.clone())))],
        RestoreKey::IdentityFile(path) => age::IdentityFile::from_file(path.to_string_lossy().into_owned())
            .map_err(|e| BackupError::BadIdentity(path.clone(), e.to_string()))?
            .into_identities()
            .map_err(|e| BackupError::BadIdentity(path.clone(), e.to_string()))?,
    };
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| BackupError::Decrypt(e.to_string()))?;
    write_whole(to, |mut out| {
        std::io::copy(&mut reader, &mut out).map_err(|e| BackupError::Decrypt(e.to_string()))?;
        Ok(out)
    })
}

/// Writes `to` through `write` under a temporary name, flushed and synced, and renames it into
/// place once whole; on an error nothing is left behind.
fn write_whole(
    to: &Path,
    write: impl FnOnce(BufWriter<File>) -> Result<BufWriter<File>, BackupError>,
) -> Result<(), BackupError> {
    let partial = partial_name(to);
    let result = File::create(&partial).map_err(BackupError::from).and_then(|f| {
        let mut out = write(BufWriter::new(f))?;
        out.flush()?;
        out.get_ref().sync_all()?;
        Ok(())
    });
    match result {
        Ok(()) => Ok(std::fs::rename(&partial, to)?),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// A new identity: its secret (for the identity file, kept off the relay) and its recipient key
/// (what `backup --recipient` encrypts to).
pub fn new_identity() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    (identity.to_string().expose_secret().to_string(), identity.to_public().to_string())
}

fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

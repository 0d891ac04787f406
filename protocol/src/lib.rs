//! The sync protocol between devices and the relay, shared by both sides.
//!
//! Small control messages (enrolment, errors) are JSON. The two that carry documents — push and
//! pull — are postcard-encoded binary bodies (`application/x-gridwalk`): Automerge bytes travel as
//! they are, with a few bytes of framing, so a sync costs about what changed and no base64.
//!
//! * `POST /v1/enroll` — JSON [`EnrollRequest`] → [`EnrollResponse`]. No token needed: the
//!   one-time code is the credential.
//! * `POST /v1/push` — [`PushRequest`] → [`PushResponse`]. Batched changes for many documents.
//!   The relay answers only after they are durable; pushing the same changes again is harmless.
//! * `GET /v1/pull?cursor=C&limit=N` — [`PullResponse`]: everything in the device's grids since a
//!   relay-issued cursor, in pages. A device with no cursor (or a document it has never had)
//!   receives compact snapshots instead of every change.
//! * `POST /v1/staff/sign-in` — JSON [`StaffSignInRequest`] → [`StaffSignInResponse`], from a
//!   hall or admin device: is this the staff member's PIN, by the relay's newest staff roster?
//!   401 `wrong_pin` when it is not; 429 after too many wrong ones for one person.
//! * `POST /v1/staff/change` — JSON [`StaffChangeRequest`] → [`StaffChangeResponse`], from a
//!   hall or admin device: the hall's staff list is changed by the relay itself, after it has
//!   checked the PIN of the person asking (an admin changes anyone; anyone her own PIN). No
//!   device writes the staff list, so no device's word about who is signed in can change it.
//! * `POST /v1/enrollments` — JSON [`IssueEnrollmentRequest`] → [`IssueEnrollmentResponse`],
//!   from a hall or admin device: a one-time enrolment code for a new phone or hall PC, issued
//!   by an admin whose PIN the relay checks, valid for 30 minutes (the hall console shows it as a
//!   QR code). 403
//!   `enrolment_forbidden` for anyone not an admin.
//! * Errors: a 4xx/5xx status with JSON [`ErrorBody`] `{code, message}`.
//!
//! Photos and other blobs travel on their own, after the documents that name them, because a
//! photo is a thousand times larger than a day's changes and must be able to stop and resume
//! anywhere. A blob is addressed by the SHA-256 of its bytes; `{hash}` must be exactly 64
//! lowercase hexadecimal characters, anything else is refused with 400 before the relay looks at
//! its disk. A device may upload or ask about a blob only if a document in its grids names it
//! (in its photo list, removed entries included, or as a `Resolved` event's evidence), so a
//! device pushes its documents before their photos; otherwise the answer is 403. It may read a
//! blob only in the grids the blob was granted to: those of the device that finished uploading
//! it, and those where a device that may see it named it. Naming a hash grants nothing: a push
//! that newly names a blob the relay holds, which the pusher may not see, is refused with 403
//! `forbidden_photo`.
//!
//! * `GET /v1/blobs/{hash}/status` — JSON [`BlobStatus`]: how many bytes the relay holds and
//!   whether the blob is complete (verified and stored).
//! * `PUT /v1/blobs/{hash}?offset=N&total=T` — the body is the blob's bytes from `offset`, of a
//!   blob of `total` bytes (at most [`MAX_BLOB_BYTES`]). `offset` must equal what the relay
//!   already holds, otherwise 409 `wrong_offset` (ask the status again and send the rest). Each
//!   chunk is on disk before the answer, a JSON [`BlobStatus`], so an upload cut off by a dropped
//!   connection or a relay that lost power resumes from what the status says. When the last byte
//!   arrives the relay checks the SHA-256: a mismatch is refused with 400 `hash_mismatch` and
//!   everything received for the blob is discarded. Uploading a blob the relay already has is
//!   answered with its complete status and changes nothing.
//! * `GET /v1/blobs/{hash}` — the blob's bytes; with `Range: bytes=a-b` (or `a-`, or `-n`) only
//!   that part, as 206 with `Content-Range: bytes a-b/total`, so a download resumes where it
//!   stopped. 404 while the blob is not complete on the relay; 416 for a range past its end.

pub mod evidence;

use serde::{Deserialize, Serialize};

/// Bytes that are not a message of this protocol, or a blob id that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("not a valid sync message: {0}")]
    BadMessage(String),
    #[error("'{0}' is not a photo id: expected the 64 lowercase hexadecimal characters of a SHA-256")]
    BadBlobId(String),
}

pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

/// A blob (photo) id is the SHA-256 of its bytes as exactly 64 lowercase hexadecimal characters.
/// Nothing else is ever used to name a file, on a device or on the relay.
pub fn validate_blob_id(id: &str) -> Result<()> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(ProtocolError::BadBlobId(id.to_string()))
    }
}

pub const PROTOCOL_VERSION: u32 = 1;
pub const BINARY_CONTENT_TYPE: &str = "application/x-gridwalk";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub code: String,
    pub device_name: String,
    /// A random key the app makes for one enrolment and sends again with every retry of it:
    /// when the reply to the first try was lost, the relay answers the retry for the same
    /// device instead of refusing a used code (the hall need not issue a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub device_id: String,
    /// The device's secret; the relay keeps only its hash.
    pub token: String,
    pub role: String,
    /// The grids this device may read and write (empty for hall and admin: all grids).
    pub grids: Vec<String>,
    /// The walker the hall enrolled this device for, when it named one.
    #[serde(default)]
    pub walker: Option<String>,
    /// The device's short number on this relay (1, 2, 3…), part of every request number it
    /// gives. Absent from relays older than it.
    #[serde(default)]
    pub device_number: Option<u32>,
    /// Whether the hall's staff sign in with their PINs (its staff roster exists): a hall PC
    /// enrolled then must not act before someone signed in, even before its first pull brings
    /// the roster. Absent from relays older than it.
    #[serde(default)]
    pub staff_sign_in: bool,
    /// The relay's public signing key (Ed25519, hex): a revocation signed by it is the only
    /// word a device wipes itself on ([`RevocationProof`]). Absent from relays older than it.
    #[serde(default)]
    pub relay_key: Option<String>,
}

/// A staff member signing in on a hall PC, checked by the relay while it is in reach: it holds
/// the newest staff roster, so a PIN an admin just changed or a person just taken off the list
/// counts at once on every hall PC that can reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffSignInRequest {
    pub person: String,
    pub pin: String,
}

/// A change to the hall's staff list, asked for by `actor` with her own PIN. An admin adds a
/// person (with `name` and `role`), gives or resets a PIN, sets an office or takes someone off
/// the list; anyone else only gives herself a new PIN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffChangeRequest {
    pub actor: String,
    pub actor_pin: String,
    pub person: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub new_pin: Option<String>,
    #[serde(default)]
    pub office: Option<String>,
    #[serde(default)]
    pub remove: bool,
}

/// The person's entry on the staff list after the change (`None` once taken off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffChangeResponse {
    pub person: Option<StaffSignInResponse>,
}

/// `POST /v1/enrollments`: an admin at a hall PC issues a one-time enrolment code, as the relay's
/// operator does with `gridwalk-relay enroll`. `role` is `walker` (then `walker` and at least one
/// grid are required) or `hall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueEnrollmentRequest {
    pub actor: String,
    pub actor_pin: String,
    pub device_name: String,
    pub role: String,
    #[serde(default)]
    pub walker: Option<String>,
    #[serde(default)]
    pub grids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueEnrollmentResponse {
    pub code: String,
    /// When the code stops working (milliseconds).
    pub expires_at: i64,
}

/// The text an enrolment QR code holds: `gridwalk:enrol?relay=<address>&code=<code>` (the
/// address left out when not given), which the app reads whether scanned or pasted. Printed by
/// `gridwalk-relay enroll --qr` and shown by the hall console.
pub fn enrolment_link(relay_url: Option<&str>, code: &str) -> String {
    match relay_url {
        Some(url) => format!("gridwalk:enrol?relay={}&code={code}", url.trim_end_matches('/')),
        None => format!("gridwalk:enrol?code={code}"),
    }
}

/// `GET /v1/device`: the device as the relay knows it now. A walker's phone compares the grids
/// with those it was enrolled for and forgets the records of a grid the hall moved it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub device_id: String,
    pub role: String,
    /// The grids it may see (empty for hall and admin devices: every grid).
    pub grids: Vec<String>,
    /// Grids the hall moved it off that still take its pushes until it says it forgot them
    /// (`POST /v1/device/left`): what it recorded there before it heard of the move goes up
    /// first. Absent from relays older than it.
    #[serde(default)]
    pub leaving_grids: Vec<String>,
    /// The relay's escrow key (an age X25519 recipient), to walkers' phones: a phone wraps its
    /// store key to it too, before its first sync, so that a forgotten PIN does not lose the
    /// work it has not sent (see [`EscrowedStoreKey`]). Absent from relays older than it.
    #[serde(default)]
    pub escrow_recipient: Option<String>,
    /// The relay's signature over [`escrow_recipient_message`], hex: a phone escrows its key
    /// only to a recipient its own relay signed (anyone answering in the relay's place could
    /// otherwise hand it a key of their own).
    #[serde(default)]
    pub escrow_signature: Option<String>,
    /// The relay's public signing key (as [`EnrollResponse::relay_key`]), for a device enrolled
    /// before relays signed: it keeps the first it is given.
    #[serde(default)]
    pub relay_key: Option<String>,
}

/// What a walker's phone escrows with the relay while it still knows its store key (at
/// enrolment, and at the sync after a relay first offers an escrow key): this, as JSON,
/// age-encrypted to the relay's escrow recipient. It stays on the phone, in its key file, until
/// the walker forgets her PIN; then her new enrolment hands it to the relay
/// ([`HandoverRequest`]), which opens it only once the hall confirmed it is the same walker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscrowedStoreKey {
    /// The device the store belongs to: the relay hands its work over only to the same walker.
    pub device_id: String,
    /// The store key, hex.
    pub store_key: String,
}

/// `POST /v1/handovers`: a walker's new enrolment asks for the work left unsent in a store set
/// aside after a forgotten PIN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoverRequest {
    /// The old store's [`EscrowedStoreKey`], age-encrypted to the relay's escrow key, hex.
    pub escrowed: String,
    /// An age X25519 recipient (`age1…`) the new enrolment made for this hand-over: the relay
    /// releases the key to it alone.
    pub reply_recipient: String,
}

/// `POST /v1/handovers/confirm`: an admin at a hall PC confirms, with her own PIN, that the
/// walker in front of her is the one whose old phone store is handed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmHandoverRequest {
    pub actor: String,
    pub actor_pin: String,
    pub from_device: String,
}

/// `POST /v1/handovers/done`: the new enrolment took the work over and destroyed the old store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoverDone {
    pub from_device: String,
    pub taken_documents: u32,
    pub taken_photos: u32,
}

/// A hand-over as `GET /v1/handovers` shows it: to a hall PC every one, to a walker's phone its
/// own (with the released key once the hall confirmed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoverView {
    pub from_device: String,
    pub from_device_name: String,
    pub to_device: String,
    pub to_device_name: String,
    /// The walker's id (the hall's screens show her name from the roster).
    pub walker: String,
    /// `pending`, `released` or `done`.
    pub state: String,
    pub requested_at: i64,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<i64>,
    pub done_at: Option<i64>,
    pub taken_documents: Option<u32>,
    pub taken_photos: Option<u32>,
    /// The old store's key age-encrypted to the reply recipient, hex: only to the new enrolment,
    /// only once released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_key: Option<String>,
}

/// One line of a device's access log (a full phone number shown, residents' data exported):
/// `POST /v1/access-log` carries a device's unsent lines, numbered by the device (`seq`), so a
/// line sent twice is kept once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessLine {
    pub seq: i64,
    /// When, by the device's clock (milliseconds).
    pub at: i64,
    /// Who: the walker, or the staff member signed in on a hall PC.
    pub person: String,
    /// `reveal_phone`, `export_requests`, `export_monthly`, `export_reference`, `export_evidence`.
    pub kind: String,
    /// Whose data (`household:<id>`, `request:<id>`, an export's scope).
    pub subject: String,
    /// What exactly (the file written, how many records).
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessLogPush {
    pub lines: Vec<AccessLine>,
}

/// A line of the access log as the relay keeps it: which device sent it, and when it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessLogEntry {
    pub device_id: String,
    pub device_name: String,
    #[serde(flatten)]
    pub line: AccessLine,
    pub received_at: i64,
}

/// The kinds of access line a relay takes.
pub const ACCESS_KINDS: &[&str] =
    &["reveal_phone", "export_requests", "export_monthly", "export_reference", "export_evidence"];

/// `GET /v1/revocation`, with a revoked device's own token: the relay's signature (Ed25519, by
/// the key it gave the device at enrolment, [`EnrollResponse::relay_key`]) over
/// [`revocation_message`]. A device wipes itself only on this: anyone able to answer in the
/// relay's place on the hall's network can say `device_revoked`, nobody else can sign it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevocationProof {
    pub device_id: String,
    /// The signature, hex.
    pub signature: String,
}

/// What the relay signs to vouch for its escrow recipient.
pub fn escrow_recipient_message(recipient: &str) -> Vec<u8> {
    format!("gridwalk escrow recipient v1\n{recipient}").into_bytes()
}

/// What the relay signs to say a device is revoked.
pub fn revocation_message(device_id: &str) -> Vec<u8> {
    format!("gridwalk revocation v1\n{device_id}").into_bytes()
}

/// `POST /v1/device/left`: a walker's phone sent what it recorded in the grids it was moved off
/// and forgot them; `holds` is what it serves now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceLeft {
    pub holds: Vec<String>,
}

/// Who signed in, as the relay's staff roster names her.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffSignInResponse {
    pub person: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// Changes to one document: Automerge change (or document) chunks, concatenated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocChanges {
    pub doc_id: String,
    #[serde(with = "serde_bytes_compat")]
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    pub version: u32,
    pub docs: Vec<DocChanges>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// Changes the relay had not seen before and now holds durably.
    pub stored: u32,
    /// Changes it already had.
    pub duplicates: u32,
    /// The relay's clock when it stored them (milliseconds since the epoch).
    pub received_at: i64,
    /// For every change of the push, new or not, when the relay first received it. A push
    /// retried after its reply was lost is answered with the first receipt times, so every
    /// device shows the same "received by the relay" time for one step.
    pub receipts: Vec<DocReceipts>,
}

/// The relay's first receipt times of one document's pushed changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocReceipts {
    pub doc_id: String,
    pub receipts: Vec<Receipt>,
}

/// When the relay first saw a change; the change is named by its Automerge hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub hash: [u8; 32],
    pub received_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PulledDoc {
    pub doc_id: String,
    /// A whole compacted document rather than single changes.
    pub snapshot: bool,
    #[serde(with = "serde_bytes_compat")]
    pub bytes: Vec<u8>,
    pub receipts: Vec<Receipt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    pub version: u32,
    pub docs: Vec<PulledDoc>,
    /// Where the next pull starts. Opaque to the device.
    pub cursor: String,
    /// More pages wait behind this one.
    pub more: bool,
}

/// The largest blob (photo) the relay accepts. A stored photo is a JPEG of at most 1600 px, far
/// below this; the limit only keeps a hostile device from filling the relay's disk in one go.
pub const MAX_BLOB_BYTES: u64 = 20 * 1024 * 1024;

/// What the relay holds of one blob (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobStatus {
    /// Bytes held: of a partial upload, or the whole blob's size once complete.
    pub size_received: u64,
    /// The blob is whole, its hash checked, and durable on the relay.
    pub complete: bool,
    /// The relay's clock when it answered (milliseconds since the epoch): a device records it as
    /// the moment the relay confirmed it holds the photo.
    pub checked_at: i64,
}

/// Part of a blob, as a download receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobBytes {
    /// Where in the blob `bytes` begin.
    pub start: u64,
    /// The whole blob's size.
    pub total: u64,
    pub bytes: Vec<u8>,
}

/// Encodes a binary protocol message.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    postcard::to_stdvec(message).expect("protocol messages always encode")
}

/// Decodes a binary protocol message; anything malformed is an input error, never a panic.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| ProtocolError::BadMessage(e.to_string()))
}

/// Byte vectors as one length-prefixed run: serde writes a plain `Vec<u8>` element by element,
/// which postcard would frame byte by byte.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_messages_round_trip_with_little_framing() {
        let msg = PushRequest {
            version: PROTOCOL_VERSION,
            docs: vec![DocChanges { doc_id: "a".repeat(36), bytes: vec![7; 1000] }],
        };
        let bytes = encode(&msg);
        assert!(bytes.len() < 1000 + 36 + 8, "{} bytes", bytes.len());
        assert_eq!(decode::<PushRequest>(&bytes).unwrap(), msg);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [&b""[..], b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x01\x01\xff\xff\xff\xff\x0f"] {
            assert!(decode::<PushRequest>(junk).is_err());
        }
    }
}

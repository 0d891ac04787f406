//! A request's evidence file: its history as the relay received it, checkable offline.
//!
//! The discipline commission asks that the record be traceable (有迹可循). The relay chains its
//! receipts (each receipt's chain value is the SHA-256 of the one before it and its own fields),
//! so editing, removing or moving any receipt breaks every value after it. An evidence file
//! (`gridwalk-relay audit export`) carries one document's receipts, each with the chain value
//! before it, its own, and the change it received; `gridwalk audit verify FILE` checks, with no
//! relay in reach, that every receipt follows from the value before it, that every change is
//! the one its receipt names, and that the document they make reads whole. Its chain values can
//! be compared with the relay's head (`gridwalk-relay audit verify` prints it) at any later day.
//!
//! The file is JSON followed by one line, `sha256 <hex>`, over every byte before that line: a
//! file damaged in copying is caught. Someone who edits a change and recomputes every chain value
//! after it and the digest makes a file that checks out on its own; what catches that is the
//! chain head it carries, compared with the relay's (`gridwalk-relay audit verify` prints it, and
//! the hall can write it down or publish it each day).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The chain value before the first receipt.
pub const GENESIS: [u8; 32] = [0; 32];

/// What the first line of the format says.
pub const FORMAT: &str = "gridwalk evidence v1";

/// The chain value of one receipt, from the one before it: the one rule for the relay that
/// writes receipts and for whoever checks them.
pub fn receipt_link(prev: &[u8; 32], seq: i64, doc_id: &str, hash: &[u8], device: &str, received_at: i64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"gridwalk receipt v1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    for field in [doc_id.as_bytes(), hash, device.as_bytes()] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.update(received_at.to_be_bytes());
    h.finalize().into()
}

/// One receipt of the document, with the change it received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceReceipt {
    /// Its place in the relay's log.
    pub seq: i64,
    /// The chain value of the receipt before it in the log (of whatever document), hex.
    pub prev_chain: String,
    /// Its own chain value, hex.
    pub chain: String,
    /// The Automerge hash of the change, hex.
    pub change_hash: String,
    /// The device that pushed it.
    pub device: String,
    /// When the relay first received it (milliseconds since the epoch).
    pub received_at: i64,
    /// The change's bytes, hex.
    pub change: String,
}

/// A request's evidence, as exported from the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub format: String,
    pub document: String,
    /// The relay's clock when it exported the file.
    pub exported_at: i64,
    /// The relay's last receipt then: its place and chain value (hex).
    pub head_seq: i64,
    pub head_chain: String,
    /// The document's receipts in log order.
    pub receipts: Vec<EvidenceReceipt>,
}

/// Why an evidence file does not hold, in words a reader can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("this is not a Gridwalk evidence file: {0}")]
    NotEvidence(String),
    #[error("the file was changed after it was exported: its content no longer matches its last line's SHA-256")]
    Altered,
    #[error("receipt {seq} does not follow from the value before it: it was edited after the relay chained it")]
    BrokenLink { seq: i64 },
    #[error("receipt {seq} is out of order: it follows receipt {after}")]
    OutOfOrder { seq: i64, after: i64 },
    #[error("receipt {seq} names another document, {doc}")]
    OtherDocument { seq: i64, doc: String },
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The file's text: the JSON, then `sha256 <hex>` of everything before that line.
pub fn write(evidence: &Evidence) -> String {
    let mut text = serde_json::to_string_pretty(evidence).unwrap_or_default();
    text.push('\n');
    let digest = sha256_hex(text.as_bytes());
    format!("{text}sha256 {digest}\n")
}

/// Reads a file's text and checks everything that needs no Automerge: its digest line, and that
/// every receipt names the document, follows the one before it in the log, and follows from the
/// chain value before it. The changes themselves are checked by the caller.
pub fn read_and_check(text: &str) -> Result<Evidence, EvidenceError> {
    let body_end =
        text.trim_end_matches('\n').rfind('\n').ok_or_else(|| EvidenceError::NotEvidence("no digest line".into()))?;
    let (body, last) = text.split_at(body_end + 1);
    let digest = last
        .trim_end_matches('\n')
        .strip_prefix("sha256 ")
        .ok_or_else(|| EvidenceError::NotEvidence("its last line is not the SHA-256 of the rest".into()))?;
    if sha256_hex(body.as_bytes()) != digest {
        return Err(EvidenceError::Altered);
    }
    let evidence: Evidence = serde_json::from_str(body).map_err(|e| EvidenceError::NotEvidence(e.to_string()))?;
    if evidence.format != FORMAT {
        return Err(EvidenceError::NotEvidence(format!("its format is '{}'", evidence.format)));
    }
    let mut after = 0;
    for r in &evidence.receipts {
        if r.seq <= after {
            return Err(EvidenceError::OutOfOrder { seq: r.seq, after });
        }
        after = r.seq;
        let broken = || EvidenceError::BrokenLink { seq: r.seq };
        let prev: [u8; 32] = hex::decode(&r.prev_chain).ok().and_then(|b| b.try_into().ok()).ok_or_else(broken)?;
        let hash = hex::decode(&r.change_hash).map_err(|_| broken())?;
        let expected = receipt_link(&prev, r.seq, &evidence.document, &hash, &r.device, r.received_at);
        if hex::encode(expected) != r.chain {
            return Err(broken());
        }
    }
    Ok(evidence)
}

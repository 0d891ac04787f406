//! The receipt chain: the relay's record of what it received, made tamper-evident.
//!
//! Every change the relay stores gets a receipt row (its place in the log, the document, the
//! change hash, the device that pushed it, the relay's time of receipt) and a `chain` value:
//! the SHA-256 of the previous row's chain value and this row's fields. Whoever holds the
//! database file can still edit it, but editing, deleting or reordering any one row changes
//! every chain value from there on, and a row deleted from the end no longer matches the
//! `chain_head` the relay keeps. `gridwalk-relay audit verify` walks the chain and the stored
//! documents and names the first row that does not hold.

use super::RelayDump;

// The rule lives in the protocol crate, shared with whoever checks an evidence file offline.
pub use gridwalk_protocol::evidence::{receipt_link as link, GENESIS};

/// What `audit verify` found when everything holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    pub receipts: usize,
    pub documents: usize,
    /// The chain value of the last receipt, to write down and compare later.
    pub head: String,
}

/// The first row that does not hold, in words an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct Broken {
    /// The receipt's place in the log, where the break is at a receipt.
    pub seq: Option<i64>,
    pub what: String,
}

/// Walks every receipt in log order and every stored document.
pub fn verify(dump: &RelayDump, head: Option<(i64, [u8; 32])>) -> Result<Verified, Broken> {
    let broken = |seq: Option<i64>, what: String| Err(Broken { seq, what });
    let mut prev = GENESIS;
    let mut last_seq = 0;
    for c in &dump.changes {
        if c.seq <= last_seq {
            return broken(Some(c.seq), format!("receipt {} is out of order: it follows receipt {last_seq}", c.seq));
        }
        let expected = link(&prev, c.seq, &c.doc_id, &c.hash, &c.device_id, c.received_at);
        if c.chain.as_deref() != Some(&expected[..]) {
            return broken(
                Some(c.seq),
                format!(
                    "receipt {} (document {}, change {}) does not follow from the receipt before it: \
                     it, or a receipt before it, was edited, removed or moved",
                    c.seq,
                    c.doc_id,
                    hex::encode(&c.hash)
                ),
            );
        }
        match automerge::Change::try_from(&c.bytes[..]) {
            Ok(change) if change.hash().0[..] == c.hash[..] => {}
            _ => {
                return broken(
                    Some(c.seq),
                    format!("the bytes of receipt {} (document {}) are not the change it names", c.seq, c.doc_id),
                )
            }
        }
        prev = expected;
        last_seq = c.seq;
    }
    match head {
        Some((seq, chain)) if seq != last_seq || chain != prev => {
            return broken(
                Some(seq),
                format!(
                    "the log ends at receipt {last_seq}, but the relay recorded receipt {seq} as its last: \
                     receipts were removed from the end, or the head was edited"
                ),
            )
        }
        None if last_seq != 0 => {
            return broken(None, "the relay's record of its last receipt is missing".to_string());
        }
        _ => {}
    }
    // Every stored document is exactly the changes the log holds for it.
    let mut logged: std::collections::BTreeMap<&str, std::collections::BTreeSet<Vec<u8>>> = Default::default();
    for c in &dump.changes {
        logged.entry(c.doc_id.as_str()).or_default().insert(c.hash.clone());
    }
    for d in &dump.docs {
        let held: std::collections::BTreeSet<Vec<u8>> = match automerge::AutoCommit::load(&d.snapshot) {
            Ok(mut doc) => doc.get_changes(&[]).iter().map(|c| c.hash().0.to_vec()).collect(),
            Err(e) => return broken(None, format!("document {} does not load: {e}", d.id)),
        };
        if logged.get(d.id.as_str()) != Some(&held) {
            return broken(
                None,
                format!("document {} does not hold exactly the changes the log received for it: it was replaced", d.id),
            );
        }
    }
    let logged_docs = logged.len();
    if logged_docs != dump.docs.len() {
        return broken(None, format!("the log names {logged_docs} documents but {} are stored", dump.docs.len()));
    }
    Ok(Verified { receipts: dump.changes.len(), documents: dump.docs.len(), head: hex::encode(prev) })
}

/// One document's evidence (see `gridwalk_protocol::evidence`): its receipts in log order, each
/// with the chain value of the receipt before it, and the relay's head. `None` when the relay
/// holds no change of that document.
pub fn evidence(dump: &RelayDump, doc_id: &str, now: i64) -> Option<gridwalk_protocol::evidence::Evidence> {
    use gridwalk_protocol::evidence::{Evidence, EvidenceReceipt, FORMAT};
    let mut prev = GENESIS.to_vec();
    let mut receipts = Vec::new();
    for c in &dump.changes {
        let chain = c.chain.clone().unwrap_or_default();
        if c.doc_id == doc_id {
            receipts.push(EvidenceReceipt {
                seq: c.seq,
                prev_chain: hex::encode(&prev),
                chain: hex::encode(&chain),
                change_hash: hex::encode(&c.hash),
                device: c.device_id.clone(),
                received_at: c.received_at,
                change: hex::encode(&c.bytes),
            });
        }
        prev = chain;
    }
    if receipts.is_empty() {
        return None;
    }
    let (head_seq, head_chain) = dump.head().map(|(s, c)| (s, hex::encode(c))).unwrap_or((0, hex::encode(GENESIS)));
    Some(Evidence { format: FORMAT.into(), document: doc_id.into(), exported_at: now, head_seq, head_chain, receipts })
}

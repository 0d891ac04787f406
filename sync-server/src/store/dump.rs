//! Every row a relay store holds, in one fixed order: what moves a hall's relay from its
//! embedded SQLite file onto PostgreSQL (`gridwalk-relay migrate-to-postgres`), and the digest
//! that proves the move lost and changed nothing.

use sha2::{Digest, Sha256};

/// One enrolled (or revoked) device.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpDevice {
    pub id: String,
    pub number: Option<i64>,
    pub name: String,
    pub role: String,
    pub token_hash: Vec<u8>,
    pub enrolled_at: i64,
    pub last_seen_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// When the revoked device confirmed it destroyed its key and records.
    pub wiped_at: Option<i64>,
    pub walker: Option<String>,
    pub grids: Vec<String>,
    /// Grids it was moved off that still take its pushes, and since when.
    pub leaving: Vec<super::LeavingGrid>,
}

/// One enrolment code, used or not (only its SHA-256 is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct DumpEnrollment {
    pub code_hash: Vec<u8>,
    pub device_name: String,
    pub role: String,
    pub grids: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub device_id: Option<String>,
    pub walker: Option<String>,
    pub device_key_hash: Option<Vec<u8>>,
}

/// One change as the relay received it.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpChange {
    pub seq: i64,
    pub doc_id: String,
    pub grid: String,
    pub hash: Vec<u8>,
    pub bytes: Vec<u8>,
    pub received_at: i64,
    pub device_id: String,
    /// The receipt chain's value at this change (see `chain.rs`).
    pub chain: Option<Vec<u8>>,
}

/// One hand-over, as the store keeps it: its old device, state and whole JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpHandover {
    pub from_device: String,
    pub state: String,
    pub body: String,
}

/// Everything in a relay store, each list in its key's byte order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelayDump {
    pub devices: Vec<DumpDevice>,
    pub enrollments: Vec<DumpEnrollment>,
    pub docs: Vec<super::StoredDoc>,
    pub changes: Vec<DumpChange>,
    /// (photo hash, document, grid).
    pub blob_refs: Vec<(String, String, String)>,
    /// (photo hash, grid where it may be read).
    pub blob_grants: Vec<(String, String)>,
    /// The last receipt the relay recorded, and its chain value.
    pub chain_head: Option<(i64, Vec<u8>)>,
    /// Relay-wide settings (the escrow key phones wrap their store keys to): a relay moved
    /// without it could no longer hand a forgotten-PIN phone's work over.
    pub settings: Vec<(String, String)>,
    pub handovers: Vec<DumpHandover>,
    /// Every device's access-log lines, by device and its numbering.
    pub access: Vec<super::StoredAccess>,
}

/// Feeds a value into the digest with its length, so that no two different dumps hash alike
/// by shifting bytes from one field into the next.
fn feed(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn feed_opt_i64(h: &mut Sha256, v: Option<i64>) {
    match v {
        Some(v) => feed(h, &v.to_be_bytes()),
        None => feed(h, b"-"),
    }
}

fn feed_opt_str(h: &mut Sha256, v: &Option<String>) {
    match v {
        Some(v) => feed(h, format!("+{v}").as_bytes()),
        None => feed(h, b"-"),
    }
}

impl RelayDump {
    /// The chain head as `chain::verify` takes it.
    pub fn head(&self) -> Option<(i64, [u8; 32])> {
        self.chain_head.as_ref().and_then(|(seq, chain)| Some((*seq, <[u8; 32]>::try_from(chain.as_slice()).ok()?)))
    }

    /// SHA-256 over every row, as hex.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        feed(&mut h, b"devices");
        for d in &self.devices {
            for s in [&d.id, &d.name, &d.role] {
                feed(&mut h, s.as_bytes());
            }
            feed(&mut h, &d.token_hash);
            feed(&mut h, &d.enrolled_at.to_be_bytes());
            feed_opt_i64(&mut h, d.last_seen_at);
            feed_opt_i64(&mut h, d.revoked_at);
            feed_opt_str(&mut h, &d.walker);
            feed(&mut h, d.grids.join(",").as_bytes());
            feed_opt_i64(&mut h, d.number);
            feed_opt_i64(&mut h, d.wiped_at);
            for l in &d.leaving {
                feed(&mut h, l.grid.as_bytes());
                feed(&mut h, &l.since.to_be_bytes());
            }
        }
        feed(&mut h, b"enrollments");
        for e in &self.enrollments {
            feed(&mut h, &e.code_hash);
            for s in [&e.device_name, &e.role, &e.grids] {
                feed(&mut h, s.as_bytes());
            }
            feed(&mut h, &e.created_at.to_be_bytes());
            feed(&mut h, &e.expires_at.to_be_bytes());
            feed_opt_i64(&mut h, e.used_at);
            feed_opt_str(&mut h, &e.device_id);
            feed_opt_str(&mut h, &e.walker);
            match &e.device_key_hash {
                Some(k) => feed(&mut h, k),
                None => feed(&mut h, b"-"),
            }
        }
        feed(&mut h, b"docs");
        for d in &self.docs {
            for s in [&d.id, &d.grid, &d.kind] {
                feed(&mut h, s.as_bytes());
            }
            feed(&mut h, &d.snapshot);
            feed(&mut h, &d.first_seq.to_be_bytes());
            feed(&mut h, &d.last_seq.to_be_bytes());
        }
        feed(&mut h, b"changes");
        for c in &self.changes {
            feed(&mut h, &c.seq.to_be_bytes());
            for s in [&c.doc_id, &c.grid, &c.device_id] {
                feed(&mut h, s.as_bytes());
            }
            feed(&mut h, &c.hash);
            feed(&mut h, &c.bytes);
            feed(&mut h, &c.received_at.to_be_bytes());
            feed(&mut h, c.chain.as_deref().unwrap_or(b"-"));
        }
        feed(&mut h, b"blob_refs");
        for (hash, doc, grid) in &self.blob_refs {
            for s in [hash, doc, grid] {
                feed(&mut h, s.as_bytes());
            }
        }
        feed(&mut h, b"chain_head");
        if let Some((seq, chain)) = &self.chain_head {
            feed(&mut h, &seq.to_be_bytes());
            feed(&mut h, chain);
        }
        feed(&mut h, b"blob_grants");
        for (hash, grid) in &self.blob_grants {
            feed(&mut h, hash.as_bytes());
            feed(&mut h, grid.as_bytes());
        }
        feed(&mut h, b"settings");
        for (key, value) in &self.settings {
            feed(&mut h, key.as_bytes());
            feed(&mut h, value.as_bytes());
        }
        feed(&mut h, b"handovers");
        for x in &self.handovers {
            for s in [&x.from_device, &x.state, &x.body] {
                feed(&mut h, s.as_bytes());
            }
        }
        feed(&mut h, b"access");
        for a in &self.access {
            feed(&mut h, a.device_id.as_bytes());
            feed(&mut h, &a.line.seq.to_be_bytes());
            feed(&mut h, &a.line.at.to_be_bytes());
            for s in [&a.line.person, &a.line.kind, &a.line.subject, &a.line.detail] {
                feed(&mut h, s.as_bytes());
            }
            feed(&mut h, &a.received_at.to_be_bytes());
        }
        hex::encode(h.finalize())
    }
}

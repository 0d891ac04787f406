//! Checking a request's evidence file offline (`gridwalk audit verify FILE`): the chain rule and
//! the file's digest are the protocol crate's (`gridwalk_protocol::evidence`); here every change
//! is checked to be the one its receipt names, and the document they make is read whole, with
//! its history, as every device reads it.

use automerge::AutoCommit;
use serde::Serialize;

use crate::doc_view::DocView;
use crate::error::{CoreError, Result};
use crate::lifecycle::fold_order;
use gridwalk_doc::incoming::{read_whole, Readable};
use gridwalk_protocol::evidence::{read_and_check, Evidence};

/// One step of the request as the evidence shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceStep {
    pub step: String,
    pub by: String,
    pub device: String,
    /// The device's time of the step.
    pub at: i64,
}

/// What a verified evidence file holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceReport {
    pub document: String,
    pub number: Option<String>,
    pub status: Option<String>,
    pub receipts: usize,
    pub first_received_at: i64,
    pub last_received_at: i64,
    /// The relay's head when it exported the file, to compare with its head on any later day.
    pub head_seq: i64,
    pub head_chain: String,
    pub steps: Vec<EvidenceStep>,
}

fn refused(why: impl Into<String>) -> CoreError {
    CoreError::invalid("evidence", why.into())
}

/// Checks an evidence file's text. Any byte changed anywhere makes it fail, naming what.
pub fn verify_evidence(text: &str) -> Result<EvidenceReport> {
    let evidence: Evidence = read_and_check(text).map_err(|e| refused(e.to_string()))?;
    let mut doc = AutoCommit::new();
    for r in &evidence.receipts {
        let bytes = hex::decode(&r.change).map_err(|_| refused(format!("receipt {}: its change is not hex", r.seq)))?;
        let change = automerge::Change::try_from(&bytes[..])
            .map_err(|e| refused(format!("receipt {}: its change does not decode: {e}", r.seq)))?;
        if hex::encode(change.hash().0) != r.change_hash {
            return Err(refused(format!("receipt {}: its change is not the change the receipt names", r.seq)));
        }
        doc.apply_changes([change]).map_err(|e| refused(format!("receipt {}: {e}", r.seq)))?;
    }
    if !doc.get_missing_deps(&[]).is_empty() {
        return Err(refused("a change the document builds on is missing from the file"));
    }
    let view = DocView::new(&doc);
    let readable = read_whole(&evidence.document, &view).map_err(|u| refused(u.to_string()))?;
    let (number, status, steps) = match readable {
        Readable::Request { body, mut events, state, .. } => {
            fold_order(&mut events);
            let steps = events
                .iter()
                .map(|e| EvidenceStep {
                    // The step's name as the app's history names it (`collected`, `assigned`…).
                    step: serde_json::to_value(&e.action)
                        .ok()
                        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
                        .unwrap_or_else(|| e.action.verb().to_string()),
                    by: e.by.clone(),
                    device: e.device.clone(),
                    at: e.at.millis(),
                })
                .collect();
            (body.number, Some(state.status.as_str().to_string()), steps)
        }
        _ => (None, None, Vec::new()),
    };
    let times = evidence.receipts.iter().map(|r| r.received_at);
    Ok(EvidenceReport {
        document: evidence.document.clone(),
        number,
        status,
        receipts: evidence.receipts.len(),
        first_received_at: times.clone().min().unwrap_or(0),
        last_received_at: times.max().unwrap_or(0),
        head_seq: evidence.head_seq,
        head_chain: evidence.head_chain,
        steps,
    })
}

//! The device's side of sync.
//!
//! [`SyncSession`] is the protocol as a state machine with no network in it: it says what to
//! send next ([`Outgoing`]) and digests what came back ([`Incoming`]), reading the outbox and
//! writing pulled pages through the store. [`run`] drives a session over any [`Transport`]: the
//! real one is [`HttpTransport`] (reqwest), tests use an in-memory relay. Everything a session
//! knows lives in the store (outbox, cursor), so a sync that is cut off anywhere resumes where it
//! stopped by simply running again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::protocol::{self, DocChanges, EnrollRequest, EnrollResponse, ErrorBody, PullResponse, PushRequest, PushResponse, PROTOCOL_VERSION};
use crate::error::{CoreError, Result};
use crate::store::{RelayLink, Store};

/// What the session wants sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Push(PushRequest),
    Pull { cursor: String, limit: usize },
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Pushed(PushResponse),
    Pulled(PullResponse),
}

/// Progress for a progress bar: documents and bytes each way.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    pub docs_to_push: usize,
    pub docs_pushed: usize,
    pub bytes_pushed: u64,
    pub docs_pulled: usize,
    pub bytes_pulled: u64,
    pub pages_pulled: usize,
    /// Both directions are finished.
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Outbox entries per push.
    pub push_entries: usize,
    /// Bytes of changes per push (a batch stops growing past this).
    pub push_bytes: usize,
    pub pull_page: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { push_entries: 5_000, push_bytes: 8 * 1024 * 1024, pull_page: 500 }
    }
}

enum Phase {
    Push,
    /// Waiting for the relay to acknowledge the batch up to this outbox sequence number.
    AwaitPush { up_to: i64, docs: usize, hashes: Vec<(String, Vec<[u8; 32]>)> },
    Pull,
    AwaitPull,
    Done,
}

pub struct SyncSession<'s> {
    store: &'s Store,
    limits: SessionLimits,
    phase: Phase,
    progress: Progress,
}

impl<'s> SyncSession<'s> {
    pub fn new(store: &'s Store, limits: SessionLimits) -> Result<Self> {
        let docs_to_push = store.outbox_docs()?;
        Ok(SyncSession { store, limits, phase: Phase::Push, progress: Progress { docs_to_push, ..Progress::default() } })
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The next message to send, or `None` when the sync is complete.
    pub fn next_request(&mut self) -> Result<Option<Outgoing>> {
        loop {
            match self.phase {
                Phase::Push => {
                    let entries = self.store.outbox(self.limits.push_entries)?;
                    if entries.is_empty() {
                        self.phase = Phase::Pull;
                        continue;
                    }
                    // Changes of one document travel together, in outbox order.
                    let mut by_doc: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    let mut order: Vec<String> = Vec::new();
                    let mut up_to = 0;
                    let mut bytes = 0usize;
                    for e in entries {
                        if bytes > 0 && bytes + e.bytes.len() > self.limits.push_bytes {
                            break;
                        }
                        bytes += e.bytes.len();
                        up_to = e.seq;
                        if !by_doc.contains_key(&e.doc_id) {
                            order.push(e.doc_id.clone());
                        }
                        by_doc.entry(e.doc_id).or_default().extend_from_slice(&e.bytes);
                    }
                    let mut hashes = Vec::new();
                    let docs: Vec<DocChanges> = order
                        .into_iter()
                        .map(|id| {
                            let bytes = by_doc.remove(&id).unwrap_or_default();
                            let changes = crate::docs::decode_changes_strict(&bytes).unwrap_or_default();
                            hashes.push((id.clone(), changes.iter().map(|c| c.hash().0).collect()));
                            DocChanges { doc_id: id, bytes }
                        })
                        .collect();
                    self.phase = Phase::AwaitPush { up_to, docs: docs.len(), hashes };
                    self.progress.bytes_pushed += bytes as u64;
                    return Ok(Some(Outgoing::Push(PushRequest { version: PROTOCOL_VERSION, docs })));
                }
                Phase::Pull => {
                    self.phase = Phase::AwaitPull;
                    return Ok(Some(Outgoing::Pull { cursor: self.store.pull_cursor()?, limit: self.limits.pull_page }));
                }
                Phase::AwaitPush { .. } | Phase::AwaitPull => {
                    return Err(CoreError::invalid("sync", "a reply is still awaited"));
                }
                Phase::Done => return Ok(None),
            }
        }
    }

    /// Digests a reply. A push reply lets the outbox go; a pull page is applied in one
    /// transaction together with its cursor.
    pub fn handle(&mut self, incoming: Incoming) -> Result<()> {
        match (std::mem::replace(&mut self.phase, Phase::Done), incoming) {
            (Phase::AwaitPush { up_to, docs, hashes }, Incoming::Pushed(resp)) => {
                for (doc, hs) in &hashes {
                    self.store.record_receipts(doc, hs, resp.received_at)?;
                }
                self.store.acknowledge_outbox(up_to)?;
                self.progress.docs_pushed += docs;
                self.phase = Phase::Push;
            }
            (Phase::AwaitPull, Incoming::Pulled(page)) => {
                let bytes: usize = page.docs.iter().map(|d| d.bytes.len()).sum();
                self.store.apply_pull_page(&page.docs, &page.cursor)?;
                self.progress.docs_pulled += page.docs.len();
                self.progress.bytes_pulled += bytes as u64;
                self.progress.pages_pulled += 1;
                if page.more {
                    self.phase = Phase::Pull;
                } else {
                    self.phase = Phase::Done;
                    self.progress.done = true;
                }
            }
            (phase, _) => {
                self.phase = phase;
                return Err(CoreError::invalid("sync", "a reply that does not answer the last request"));
            }
        }
        Ok(())
    }
}

/// Carries protocol messages to a relay and back.
pub trait Transport {
    fn send(&mut self, message: &Outgoing) -> Result<Incoming>;
}

/// How `run` retries after a network failure.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 5, first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }
}

/// Syncs until done, retrying network failures with backoff. A relay's refusal (4xx) is not
/// retried: it will not change by asking again. `cancel` stops between messages.
pub fn run(
    store: &Store,
    transport: &mut dyn Transport,
    limits: SessionLimits,
    retry: Retry,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Progress> {
    let mut session = SyncSession::new(store, limits)?;
    on_progress(session.progress());
    while let Some(message) = session.next_request()? {
        let mut delay = retry.first_delay;
        let mut attempt = 0;
        let reply = loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(CoreError::Cancelled);
            }
            match transport.send(&message) {
                Ok(reply) => break reply,
                Err(CoreError::Network(_)) | Err(CoreError::Relay { status: 500..=599, .. }) if attempt + 1 < retry.attempts => {
                    attempt += 1;
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(retry.max_delay);
                }
                Err(e) => return Err(e),
            }
        };
        session.handle(reply)?;
        on_progress(session.progress());
    }
    Ok(session.progress().clone())
}

/// The real transport: HTTP to the relay.
pub struct HttpTransport {
    base: String,
    token: String,
    client: reqwest::blocking::Client,
}

impl HttpTransport {
    pub fn new(link: &RelayLink) -> Result<Self> {
        Ok(HttpTransport {
            base: link.url.trim_end_matches('/').to_string(),
            token: link.token.clone(),
            client: http_client()?,
        })
    }
}

fn http_client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| CoreError::Network(e.to_string()))
}

fn network(e: reqwest::Error) -> CoreError {
    CoreError::Network(e.to_string())
}

/// Turns a non-success reply into the relay's `{code, message}`.
fn refusal(resp: reqwest::blocking::Response) -> CoreError {
    let status = resp.status().as_u16();
    let body = resp.bytes().unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => CoreError::Relay { status, code: e.code, message: e.message },
        Err(_) => CoreError::Relay { status, code: "http_error".into(), message: String::from_utf8_lossy(&body).chars().take(200).collect() },
    }
}

impl Transport for HttpTransport {
    fn send(&mut self, message: &Outgoing) -> Result<Incoming> {
        let resp = match message {
            Outgoing::Push(req) => self
                .client
                .post(format!("{}/v1/push", self.base))
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, protocol::BINARY_CONTENT_TYPE)
                .body(protocol::encode(req))
                .send(),
            Outgoing::Pull { cursor, limit } => self
                .client
                .get(format!("{}/v1/pull", self.base))
                .bearer_auth(&self.token)
                .query(&[("cursor", cursor.as_str()), ("limit", &limit.to_string())])
                .send(),
        }
        .map_err(network)?;
        if !resp.status().is_success() {
            return Err(refusal(resp));
        }
        let body = resp.bytes().map_err(network)?;
        Ok(match message {
            Outgoing::Push(_) => Incoming::Pushed(protocol::decode(&body)?),
            Outgoing::Pull { .. } => Incoming::Pulled(protocol::decode(&body)?),
        })
    }
}

/// Enrols this device with a relay using a one-time code from the hall, and remembers the relay.
pub fn join(store: &Store, relay_url: &str, code: &str, device_name: &str) -> Result<RelayLink> {
    let base = relay_url.trim_end_matches('/');
    let resp = http_client()?
        .post(format!("{base}/v1/enroll"))
        .json(&EnrollRequest { code: code.to_string(), device_name: device_name.to_string() })
        .send()
        .map_err(network)?;
    if !resp.status().is_success() {
        return Err(refusal(resp));
    }
    let body: EnrollResponse = resp.json().map_err(network)?;
    let link = RelayLink { url: base.to_string(), device_id: body.device_id, token: body.token, role: body.role, grids: body.grids };
    store.set_relay_link(&link)?;
    Ok(link)
}

/// Syncs with the joined relay over HTTP.
pub fn sync_over_http(store: &Store, cancel: &AtomicBool, on_progress: &mut dyn FnMut(&Progress)) -> Result<Progress> {
    let link = store.relay_link()?.ok_or(CoreError::NotJoined)?;
    let mut transport = HttpTransport::new(&link)?;
    run(store, &mut transport, SessionLimits::default(), Retry::default(), cancel, on_progress)
}

/// Documents waiting in the outbox (distinct), for "still waiting to go up".
pub fn pending_documents(store: &Store) -> Result<BTreeSet<String>> {
    Ok(store.outbox(usize::MAX >> 1)?.into_iter().map(|e| e.doc_id).collect())
}

//! The Automerge documents: one per visit (走访) and one per request (诉求).
//!
//! Each document's root holds an immutable `header` (id, kind, grid, creation time and author),
//! written once with the first change and never reconciled again, and a `body` that autosurgeon
//! maps to Rust types. A request also holds `events`, the append-only lifecycle list: new events
//! are inserted at the end with `reconcile_insert`, so concurrent appends from two replicas are
//! both kept by Automerge's list merge.

use automerge::{transaction::Transactable, ActorId, AutoCommit, ObjType, ReadDoc, ROOT};
use autosurgeon::{hydrate_prop, reconcile_insert, reconcile_prop, Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

pub use crate::error::DocError;
use crate::error::Result;
use crate::lifecycle::{self, Action, LifecycleEvent, RequestState};
use crate::time::Timestamp;
use crate::ActionContext;

/// Bumped when the document layout changes incompatibly.
pub const DOC_SCHEMA: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Visit,
    Request,
    /// A grid's reference lists (网格名册), published by the hall; see [`crate::roster`].
    Roster,
    /// A grid meeting or service day (议事); see [`crate::meeting`].
    Meeting,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Visit => "visit",
            DocKind::Request => "request",
            DocKind::Roster => "roster",
            DocKind::Meeting => "meeting",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "visit" => Some(DocKind::Visit),
            "request" => Some(DocKind::Request),
            "roster" => Some(DocKind::Roster),
            "meeting" => Some(DocKind::Meeting),
            _ => None,
        }
    }
}

/// Written once when the document is created; never changed afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct DocHeader {
    pub id: String,
    pub kind: DocKind,
    pub grid: String,
    pub created_at: Timestamp,
    pub created_by: String,
    pub device: String,
    pub schema: u64,
}

impl DocHeader {
    /// The header of a document of `kind` created now by the person and device in `ctx`.
    pub fn new(ctx: &ActionContext, id: &str, kind: DocKind, grid: &str) -> Self {
        DocHeader {
            id: id.to_string(),
            kind,
            grid: grid.to_string(),
            created_at: ctx.at,
            created_by: ctx.actor.clone(),
            device: ctx.device.clone(),
            schema: DOC_SCHEMA,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
    /// Accuracy radius in metres, as the phone reported it.
    pub accuracy_m: Option<f64>,
}

impl GeoPoint {
    pub fn validate(&self) -> Result<()> {
        if !(-90.0..=90.0).contains(&self.lat) || !(-180.0..=180.0).contains(&self.lon) {
            return Err(DocError::invalid("gps", format!("{},{} is not a position on Earth", self.lat, self.lon)));
        }
        Ok(())
    }
}

/// 日常走访, 地毯式走访, 昼访夜谈.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    Daily,
    Sweep,
    EveningTalk,
}

impl VisitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitKind::Daily => "daily",
            VisitKind::Sweep => "sweep",
            VisitKind::EveningTalk => "evening_talk",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "daily" | "日常走访" => VisitKind::Daily,
            "sweep" | "地毯式走访" => VisitKind::Sweep,
            "evening_talk" | "evening" | "昼访夜谈" => VisitKind::EveningTalk,
            _ => return None,
        })
    }
}

/// Whom a visit was to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum VisitTarget {
    Household {
        id: String,
    },
    Enterprise {
        id: String,
    },
    /// A place with no registered household, e.g. a lane or a market.
    Place {
        address: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct VisitBody {
    pub target: VisitTarget,
    pub micro_grid: Option<String>,
    pub kind: VisitKind,
    /// When the visit happened (device time).
    pub visited_at: Timestamp,
    /// Cadres who went (ids), the recorder first.
    pub walkers: Vec<String>,
    /// Others who came along, e.g. "村书记 王建国".
    pub companions: Vec<String>,
    pub notes: String,
    /// Requests raised during the visit.
    pub requests_raised: Vec<String>,
    pub gps: Option<GeoPoint>,
}

/// Who raised a request. A resident may stay anonymous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Reporter {
    Anonymous,
    Resident { name: String, phone: Option<String>, household: Option<String> },
    Enterprise { id: String, contact: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Place {
    pub address: String,
    pub gps: Option<GeoPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low,
    Normal,
    High,
    Urgent,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
            Urgency::Urgent => "urgent",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "low" | "低" => Urgency::Low,
            "normal" | "一般" => Urgency::Normal,
            "high" | "较急" => Urgency::High,
            "urgent" | "紧急" => Urgency::Urgent,
            _ => return None,
        })
    }
}

/// How the request reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Visit,
    WalkIn,
    Phone,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Visit => "visit",
            Source::WalkIn => "walk_in",
            Source::Phone => "phone",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "visit" | "走访" => Source::Visit,
            "walk_in" | "walk-in" | "来访" => Source::WalkIn,
            "phone" | "电话" => Source::Phone,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct RequestBody {
    pub reporter: Reporter,
    pub place: Place,
    pub micro_grid: Option<String>,
    /// A code from [`crate::model::CATEGORIES`].
    pub category: String,
    pub description: String,
    pub urgency: Urgency,
    pub source: Source,
    /// The visit it was raised on, when `source` is a visit.
    pub visit: Option<String>,
    /// The number people read and search for (see [`crate::numbers`]); absent from requests
    /// raised before numbers existed, which show the start of their id instead.
    #[serde(default)]
    #[autosurgeon(missing = "Default::default")]
    pub number: Option<String>,
}

/// Closes the pending Automerge change with the action's time (seconds, as the change metadata
/// expects) and a short message. Automerge itself never reads the clock for us.
pub fn commit(doc: &mut AutoCommit, at: Timestamp, message: &str) {
    doc.commit_with(
        automerge::transaction::CommitOptions::default().with_time(at.0.timestamp()).with_message(message.to_string()),
    );
}

/// A change's message names the lifecycle event it carries, so the relay's receipt time of the
/// change can be shown next to that event.
fn event_message(verb: &str, event_id: &str) -> String {
    format!("{verb} #{event_id}")
}

/// The event id a change's message names, if any.
pub fn event_of_message(message: &str) -> Option<&str> {
    message.rsplit_once(" #").map(|(_, id)| id)
}

/// The Automerge actor for a device: stable, so that one device's changes form one sequence.
pub fn actor_for_device(device: &str) -> ActorId {
    ActorId::from(device.as_bytes())
}

fn header_of(doc: &AutoCommit) -> Result<DocHeader> {
    Ok(hydrate_prop(doc, ROOT, "header")?)
}

/// A request document and the operations on it. Holds an in-memory Automerge document; the
/// store loads and saves it.
pub struct RequestDocument {
    doc: AutoCommit,
}

/// A visit document.
pub struct VisitDocument {
    doc: AutoCommit,
}

pub fn new_doc(ctx: &ActionContext, header: &DocHeader) -> Result<AutoCommit> {
    let mut doc = AutoCommit::new().with_actor(actor_for_device(&ctx.device));
    reconcile_prop(&mut doc, ROOT, "header", header)?;
    Ok(doc)
}

fn load_doc(bytes: &[u8], ctx_device: Option<&str>) -> Result<AutoCommit> {
    let mut doc = AutoCommit::load(bytes)?;
    if let Some(device) = ctx_device {
        doc.set_actor(actor_for_device(device));
    }
    Ok(doc)
}

impl RequestDocument {
    /// Creates a request with its first event, `Collected`, by the context's actor.
    pub fn create(ctx: &ActionContext, id: &str, grid: &str, body: &RequestBody) -> Result<Self> {
        let header = DocHeader::new(ctx, id, DocKind::Request, grid);
        let mut doc = new_doc(ctx, &header)?;
        reconcile_prop(&mut doc, ROOT, "body", body)?;
        doc.put_object(ROOT, "events", ObjType::List)?;
        let mut this = RequestDocument { doc };
        let collected = this.append_event(ctx, Action::Collected, 1)?;
        commit(&mut this.doc, ctx.at, &event_message("raise request", &collected.id));
        Ok(this)
    }

    /// Wraps saved bytes; `device` sets the actor for changes made through this value.
    pub fn load(bytes: &[u8], device: Option<&str>) -> Result<Self> {
        let this = RequestDocument { doc: load_doc(bytes, device)? };
        let header = this.header()?;
        if header.kind != DocKind::Request {
            return Err(DocError::DamagedDocument { id: header.id, message: "expected a request document".into() });
        }
        Ok(this)
    }

    pub fn from_automerge(doc: AutoCommit) -> Self {
        RequestDocument { doc }
    }

    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    pub fn header(&self) -> Result<DocHeader> {
        header_of(&self.doc)
    }

    pub fn body(&self) -> Result<RequestBody> {
        Ok(hydrate_prop(&self.doc, ROOT, "body")?)
    }

    /// Which change carried which event: event id → change hash.
    pub fn event_changes(&mut self) -> Vec<(String, automerge::ChangeHash)> {
        self.doc
            .get_changes(&[])
            .iter()
            .filter_map(|c| {
                let id = event_of_message(c.message()?)?;
                Some((id.to_string(), c.hash()))
            })
            .collect()
    }

    /// All events in the document's list order (not the fold order).
    pub fn events(&self) -> Result<Vec<LifecycleEvent>> {
        Ok(hydrate_prop(&self.doc, ROOT, "events")?)
    }

    pub fn state(&self) -> Result<RequestState> {
        let events = self.events()?;
        lifecycle::fold(&events).ok_or_else(|| DocError::DamagedDocument {
            id: self.header().map(|h| h.id).unwrap_or_default(),
            message: "the request has no 'collected' event".into(),
        })
    }

    /// Checks `action` against the current state and appends it. An invalid action is refused
    /// with an error that names the status and why; nothing is changed then.
    pub fn apply(&mut self, ctx: &ActionContext, action: Action) -> Result<LifecycleEvent> {
        let events = self.events()?;
        let state = lifecycle::fold(&events).ok_or_else(|| DocError::DamagedDocument {
            id: self.header().map(|h| h.id).unwrap_or_default(),
            message: "the request has no 'collected' event".into(),
        })?;
        let id = self.header()?.id;
        validate_action_content(&action)?;
        if let Action::Triaged { decision: lifecycle::TriageDecision::MergeInto { target } } = &action {
            if *target == id {
                return Err(DocError::invalid("target", "a request cannot be merged into itself"));
            }
        }
        if let Err(why) = lifecycle::check(&state, &action) {
            return Err(DocError::InvalidTransition {
                request: id,
                action: action.verb(),
                status: state.status.as_str(),
                why,
            });
        }
        // Saturating: a document read through `incoming::read_whole` never carries a number near
        // the top, but a step on an unchecked one must not panic.
        let lamport = events.iter().map(|e| e.lamport).max().unwrap_or(0).saturating_add(1);
        // Each device writes under its own Automerge actor, whoever loaded the document.
        let actor = actor_for_device(&ctx.device);
        if self.doc.get_actor() != &actor {
            self.doc.set_actor(actor);
        }
        let event = self.append_event(ctx, action, lamport)?;
        // One action is one Automerge change: never leave a transaction open that a clone or a
        // merge could commit behind our back.
        commit(&mut self.doc, ctx.at, &event_message(event.action.verb(), &event.id));
        Ok(event)
    }

    fn append_event(&mut self, ctx: &ActionContext, action: Action, lamport: u64) -> Result<LifecycleEvent> {
        let event = LifecycleEvent {
            id: ctx.new_id(),
            lamport,
            at: ctx.at,
            by: ctx.actor.clone(),
            device: ctx.device.clone(),
            action,
        };
        let list = match self.doc.get(ROOT, "events")? {
            Some((automerge::Value::Object(ObjType::List), id)) => id,
            _ => {
                return Err(DocError::DamagedDocument {
                    id: self.header()?.id,
                    message: "the events list is missing".into(),
                })
            }
        };
        let len = self.doc.length(&list);
        reconcile_insert(&mut self.doc, list, len, &event)?;
        Ok(event)
    }

    /// Replaces the body's editable fields (category, description, place...). The header is
    /// not touched.
    pub fn update_body(&mut self, body: &RequestBody) -> Result<()> {
        reconcile_prop(&mut self.doc, ROOT, "body", body)?;
        Ok(())
    }
}

fn validate_action_content(action: &Action) -> Result<()> {
    let nonempty = |field: &str, text: &str| {
        if text.trim().is_empty() {
            Err(DocError::invalid(field, "must not be empty"))
        } else {
            Ok(())
        }
    };
    match action {
        Action::Triaged { decision } => match decision {
            lifecycle::TriageDecision::Reject { reason } => nonempty("reason", reason),
            lifecycle::TriageDecision::MergeInto { target } => nonempty("target", target),
            lifecycle::TriageDecision::SolvedOnSpot { note } => nonempty("note", note),
            lifecycle::TriageDecision::Accept => Ok(()),
        },
        Action::Assigned { assignment } | Action::Reassigned { assignment, .. } => {
            nonempty("department", &assignment.department)
        }
        Action::Escalated { reason, .. } => nonempty("reason", reason),
        Action::Progress { note } => nonempty("note", note),
        Action::Resolved { note, .. } => nonempty("note", note),
        Action::Reopened { reason } => nonempty("reason", reason),
        Action::MeetingDecision { decision, .. } => nonempty("decision", decision),
        _ => Ok(()),
    }
}

impl VisitDocument {
    pub fn create(ctx: &ActionContext, id: &str, grid: &str, body: &VisitBody) -> Result<Self> {
        let header = DocHeader::new(ctx, id, DocKind::Visit, grid);
        let mut doc = new_doc(ctx, &header)?;
        reconcile_prop(&mut doc, ROOT, "body", body)?;
        commit(&mut doc, ctx.at, "record visit");
        Ok(VisitDocument { doc })
    }

    pub fn from_automerge(doc: AutoCommit) -> Self {
        VisitDocument { doc }
    }

    pub fn load(bytes: &[u8], device: Option<&str>) -> Result<Self> {
        let this = VisitDocument { doc: load_doc(bytes, device)? };
        let header = this.header()?;
        if header.kind != DocKind::Visit {
            return Err(DocError::DamagedDocument { id: header.id, message: "expected a visit document".into() });
        }
        Ok(this)
    }

    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    pub fn header(&self) -> Result<DocHeader> {
        header_of(&self.doc)
    }

    pub fn body(&self) -> Result<VisitBody> {
        Ok(hydrate_prop(&self.doc, ROOT, "body")?)
    }

    pub fn update_body(&mut self, body: &VisitBody) -> Result<()> {
        reconcile_prop(&mut self.doc, ROOT, "body", body)?;
        Ok(())
    }

    /// Notes a request raised on this visit. Appends to the list so concurrent additions merge.
    pub fn add_raised_request(&mut self, request: &str) -> Result<()> {
        let body = match self.doc.get(ROOT, "body")? {
            Some((_, id)) => id,
            None => {
                return Err(DocError::DamagedDocument {
                    id: self.header()?.id,
                    message: "the visit body is missing".into(),
                })
            }
        };
        let list = match self.doc.get(&body, "requests_raised")? {
            Some((automerge::Value::Object(ObjType::List), id)) => id,
            _ => {
                return Err(DocError::DamagedDocument {
                    id: self.header()?.id,
                    message: "the requests_raised list is missing".into(),
                })
            }
        };
        let len = self.doc.length(&list);
        self.doc.insert(&list, len, request)?;
        Ok(())
    }
}

/// Reads only the header of any Gridwalk document.
pub fn read_header<D: autosurgeon::ReadDoc>(doc: &D) -> Result<DocHeader> {
    Ok(hydrate_prop(doc, ROOT, "header")?)
}

/// Decodes bytes received from elsewhere into Automerge changes, strictly: every byte must
/// belong to a well-formed document or change chunk with a valid checksum. (Automerge's own
/// `load_incremental` forgives a truncated tail, which is right for reading our own disk after a
/// crash but wrong for input from the network: half a push must be refused, not half-applied.)
pub fn decode_changes_strict(bytes: &[u8]) -> Result<Vec<automerge::Change>> {
    let bad = |message: String| DocError::invalid("changes", message);
    let mut changes = Vec::new();
    for (chunk_type, chunk) in split_chunks(bytes)? {
        match chunk_type {
            0 => {
                let doc = automerge::Automerge::load(chunk).map_err(|e| bad(format!("bad document chunk: {e}")))?;
                changes.extend(doc.get_changes(&[]));
            }
            _ => {
                changes.push(automerge::Change::try_from(chunk).map_err(|e| bad(format!("bad change: {e}")))?);
            }
        }
    }
    Ok(changes)
}

/// The chunk type of an Automerge document chunk (a saved document).
pub const DOCUMENT_CHUNK: u8 = 0;

/// Splits received bytes into Automerge chunks by their headers, without decoding them: every
/// byte must belong to a chunk with the Automerge magic, a known type (document, change or
/// compressed change) and a length that fits. Checksums are checked when the chunks are decoded.
pub fn split_chunks(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let bad = |message: String| DocError::invalid("changes", message);
    if bytes.is_empty() {
        return Err(bad("no changes in the body".into()));
    }
    let mut chunks = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 9 || rest[..4] != MAGIC {
            return Err(bad("not Automerge data (bad chunk header)".into()));
        }
        let chunk_type = rest[8];
        if chunk_type > 2 {
            return Err(bad(format!("unsupported chunk type {chunk_type}")));
        }
        // The chunk length is an unsigned LEB128 number after the type byte.
        let mut len: u64 = 0;
        let mut shift = 0;
        let mut pos = 9;
        loop {
            let Some(&b) = rest.get(pos) else {
                return Err(bad("truncated chunk header".into()));
            };
            if shift > 56 {
                return Err(bad("chunk length out of range".into()));
            }
            len |= u64::from(b & 0x7f) << shift;
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= rest.len())
            .ok_or_else(|| bad("truncated chunk".into()))?;
        chunks.push((chunk_type, &rest[..end]));
        rest = &rest[end..];
    }
    Ok(chunks)
}

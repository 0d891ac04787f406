//! The one check a document from elsewhere must pass: every part of it reads through the typed
//! mapping the devices use. The relay runs it on every pushed document after applying the push
//! (and refuses the push when it fails); a device runs it on every document it receives and on
//! every document it indexes, so whatever the relay accepts a device can read, and a document
//! that still cannot be read (older data, a bug) is set aside instead of stopping everything else.
//!
//! Another implementation, or a hostile device with the Automerge library, can write anything
//! into a document: a `body` deleted, `events` replaced by a string, a description as Automerge
//! Text, an unknown status. Each of those is named here, by document and field.

use automerge::ROOT;
use autosurgeon::hydrate_prop;

use crate::doc_view::DocView;
use crate::docs::{self, DocHeader, DocKind, RequestBody, VisitBody};
use crate::lifecycle::{self, LifecycleEvent, RequestState};
use crate::meeting::MeetingBody;
use crate::photos::{self, PhotoRef};
use crate::roster::RosterBody;

/// A document some part of which cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {doc}: its {field} cannot be read ({message})")]
pub struct Unreadable {
    pub doc: String,
    /// `header`, `body`, `events` or `photos`.
    pub field: &'static str,
    pub message: String,
}

/// A document read whole: what lists, indexes and the relay's checks need of it.
#[derive(Debug, Clone)]
pub enum Readable {
    Request { header: DocHeader, body: RequestBody, events: Vec<LifecycleEvent>, state: RequestState },
    Visit { header: DocHeader, body: VisitBody },
    Meeting { header: DocHeader, body: MeetingBody },
    Roster { header: DocHeader, body: RosterBody },
}

impl Readable {
    pub fn header(&self) -> &DocHeader {
        match self {
            Readable::Request { header, .. }
            | Readable::Visit { header, .. }
            | Readable::Meeting { header, .. }
            | Readable::Roster { header, .. } => header,
        }
    }
}

/// The largest order number (`LifecycleEvent::lamport`) an event may carry: a request's steps
/// number one more than the highest before them, so even a request handled every minute for a
/// century stays far below it.
pub const MAX_LAMPORT: u64 = 1 << 32;

/// Reads every part of document `doc_id`: its header (which must name `doc_id`), its body as
/// its kind's type, a request's events (which must fold: a request begins with its collection),
/// and the photo list of a visit or request.
pub fn read_whole(doc_id: &str, doc: &DocView) -> Result<Readable, Unreadable> {
    let unreadable = |field: &'static str, message: String| Unreadable { doc: doc_id.to_string(), field, message };
    let header = docs::read_header(doc).map_err(|e| unreadable("header", e.to_string()))?;
    if header.id != doc_id {
        return Err(unreadable("header", format!("it names another document, {}", header.id)));
    }
    let readable = match header.kind {
        DocKind::Request => {
            let body: RequestBody = hydrate_prop(doc, ROOT, "body").map_err(|e| unreadable("body", e.to_string()))?;
            let events: Vec<LifecycleEvent> =
                hydrate_prop(doc, ROOT, "events").map_err(|e| unreadable("events", e.to_string()))?;
            // A request is collected once, when it is raised: a second `Collected` (another
            // device's, sorted first) would take the request over from whoever received it first.
            let collected = events.iter().filter(|e| e.action == lifecycle::Action::Collected).count();
            if collected > 1 {
                return Err(unreadable(
                    "events",
                    format!(
                        "a request is collected once, when it is raised; this one has {collected} 'collected' events"
                    ),
                ));
            }
            // Lamport numbers grow by one per step; one beyond any real history would overflow
            // the next step's number on every device.
            if let Some(e) = events.iter().find(|e| e.lamport > MAX_LAMPORT) {
                return Err(unreadable(
                    "events",
                    format!("event {} has the order number {}, beyond any real request's history", e.id, e.lamport),
                ));
            }
            let state = lifecycle::fold(&events)
                .ok_or_else(|| unreadable("events", "the request has no 'collected' event".into()))?;
            Readable::Request { header, body, events, state }
        }
        DocKind::Visit => {
            let body: VisitBody = hydrate_prop(doc, ROOT, "body").map_err(|e| unreadable("body", e.to_string()))?;
            Readable::Visit { header, body }
        }
        DocKind::Meeting => {
            let body: MeetingBody = hydrate_prop(doc, ROOT, "body").map_err(|e| unreadable("body", e.to_string()))?;
            Readable::Meeting { header, body }
        }
        DocKind::Roster => {
            let body: RosterBody = hydrate_prop(doc, ROOT, "body").map_err(|e| unreadable("body", e.to_string()))?;
            Readable::Roster { header, body }
        }
    };
    if matches!(readable, Readable::Request { .. } | Readable::Visit { .. }) {
        if !photos::photo_key_is_lists(doc.doc()).map_err(|e| unreadable("photos", e.to_string()))? {
            return Err(unreadable("photos", "'photos' holds something other than a list of photo entries".into()));
        }
        let _: Vec<PhotoRef> = photos::photos(doc).map_err(|e| unreadable("photos", e.to_string()))?;
    }
    Ok(readable)
}

//! Photos in visit and request documents: a list `photos` at the document's root, one
//! [`PhotoRef`] per attachment, appended with `reconcile_insert` so that photos added on two
//! phones at once are both kept by Automerge's list merge. Removing a photo sets `removed` on its
//! entry: the entry, and with it who added the photo and when, stays in the record.
//!
//! The list is created lazily by the first photo, because documents made before photos existed
//! have none. Two replicas that both add a first photo offline each create a list under the same
//! key; Automerge then shows one of them and keeps the other as a conflicting value. Reading
//! therefore takes the entries of every conflicting list, so no photo is lost that way.

use automerge::{transaction::Transactable, AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};
use autosurgeon::{hydrate_prop, reconcile_insert, Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::doc_view::DocView;
use crate::docs::GeoPoint;
use crate::error::Result;
use crate::lifecycle::{Action, LifecycleEvent};
use crate::time::Timestamp;

/// The key of the photo list in a document's root.
pub const PHOTOS_KEY: &str = "photos";

/// What a photo shows: the problem as found, or the fix (办结 evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Before,
    After,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Before => "before",
            Role::After => "after",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "before" | "整改前" | "问题" => Role::Before,
            "after" | "整改后" | "办结" => Role::After,
            _ => return None,
        })
    }
}

/// One photo attached to a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct PhotoRef {
    /// SHA-256 of the stored JPEG, lowercase hex: the photo's id.
    pub hash: String,
    pub role: Role,
    pub caption: Option<String>,
    pub added_at: Timestamp,
    pub added_by: String,
    /// Where the photo was taken, when the user allowed the position to be kept. It lives here,
    /// in the record, and never in the image file.
    pub gps: Option<GeoPoint>,
    pub removed: bool,
    pub removed_at: Option<Timestamp>,
    pub removed_by: Option<String>,
}

/// Every `photos` list in the document: the visible one first, then any that lost a conflict.
fn photo_lists(doc: &AutoCommit) -> Result<Vec<ObjId>> {
    Ok(doc
        .get_all(ROOT, PHOTOS_KEY)?
        .into_iter()
        .filter_map(|(value, id)| matches!(value, Value::Object(ObjType::List)).then_some(id))
        .collect())
}

/// Whether the document's `photos` key holds only lists (two devices that each started the list
/// at once leave two, both read). Anything else there, a string say, would hide every photo entry
/// and every removal from every device, so a document holding it is not readable.
pub fn photo_key_is_lists(doc: &AutoCommit) -> Result<bool> {
    Ok(doc.get_all(ROOT, PHOTOS_KEY)?.iter().all(|(value, _)| matches!(value, Value::Object(ObjType::List))))
}

/// Appends `photo` to the document's photo list, creating the list if the document has none.
/// The caller commits the change.
pub fn attach(doc: &mut AutoCommit, photo: &PhotoRef) -> Result<()> {
    let list = match doc.get(ROOT, PHOTOS_KEY)? {
        Some((Value::Object(ObjType::List), id)) => id,
        _ => doc.put_object(ROOT, PHOTOS_KEY, ObjType::List)?,
    };
    let len = doc.length(&list);
    reconcile_insert(doc, list, len, photo)?;
    Ok(())
}

/// Every photo entry of the document, removed ones included, ordered by when they were added.
pub fn photos(doc: &DocView) -> Result<Vec<PhotoRef>> {
    let mut all = Vec::new();
    for list in photo_lists(doc.doc())? {
        for i in 0..autosurgeon::ReadDoc::length(doc, &list) {
            all.push(hydrate_prop::<_, PhotoRef, _, _>(doc, &list, i)?);
        }
    }
    // Stable: entries added at the same moment keep their list order.
    all.sort_by_key(|p| p.added_at);
    Ok(all)
}

/// The photos that are still attached (not removed).
pub fn live_photos(doc: &DocView) -> Result<Vec<PhotoRef>> {
    Ok(photos(doc)?.into_iter().filter(|p| !p.removed).collect())
}

/// Marks the live entries with this hash (and this role, when given) as removed, and returns
/// how many there were. The caller commits the change.
pub fn mark_removed(doc: &mut AutoCommit, hash: &str, role: Option<Role>, at: Timestamp, by: &str) -> Result<usize> {
    let mut marked = 0;
    for list in photo_lists(doc)? {
        for i in 0..doc.length(&list) {
            let entry: PhotoRef = hydrate_prop(&*doc, &list, i)?;
            if entry.removed || entry.hash != hash || role.is_some_and(|r| r != entry.role) {
                continue;
            }
            let Some((Value::Object(ObjType::Map), obj)) = doc.get(&list, i)? else {
                continue;
            };
            // Only the three fields that change are written, so the change in the document's
            // history says exactly what happened and nothing else.
            doc.put(&obj, "removed", true)?;
            doc.put(&obj, "removed_at", ScalarValue::Timestamp(at.millis()))?;
            doc.put(&obj, "removed_by", by)?;
            marked += 1;
        }
    }
    Ok(marked)
}

/// The photo hashes this document needs kept on the device: those of live entries, and those
/// named as evidence by a `Resolved` event (an event is never removed).
pub fn referenced_hashes(doc: &DocView) -> Result<Vec<String>> {
    let mut hashes: Vec<String> = live_photos(doc)?.into_iter().map(|p| p.hash).collect();
    if let Some((Value::Object(ObjType::List), _)) = autosurgeon::ReadDoc::get(doc, &ROOT, "events")? {
        let events: Vec<LifecycleEvent> = hydrate_prop(doc, ROOT, "events")?;
        for event in events {
            if let Action::Resolved { photos, .. } = event.action {
                hashes.extend(photos);
            }
        }
    }
    hashes.sort();
    hashes.dedup();
    Ok(hashes)
}

/// Every photo hash the document names anywhere: all entries of its photo lists, removed ones
/// included, and the photos of its `Resolved` events. The relay keeps these as the document's
/// blob references and lets a device upload or read a photo only when a document in its grids
/// names it. Removed entries count because a photo can be removed on the phone before it was
/// ever synced, and the record keeps who added it; the relay must still accept that upload.
/// Strings that are not photo ids (a hostile device can write anything into a document) are
/// left out, so they can never name a file.
pub fn blob_references(doc: &DocView) -> Result<Vec<String>> {
    let mut hashes: Vec<String> = photos(doc)?.into_iter().map(|p| p.hash).collect();
    if let Some((Value::Object(ObjType::List), _)) = autosurgeon::ReadDoc::get(doc, &ROOT, "events")? {
        let events: Vec<LifecycleEvent> = hydrate_prop(doc, ROOT, "events")?;
        for event in events {
            if let Action::Resolved { photos, .. } = event.action {
                hashes.extend(photos);
            }
        }
    }
    hashes.retain(|h| gridwalk_protocol::validate_blob_id(h).is_ok());
    hashes.sort();
    hashes.dedup();
    Ok(hashes)
}

//! A read-only view of an Automerge document that reads each of its maps and lists once.
//!
//! autosurgeon hydrates a struct by asking the document for one field at a time, and an enum
//! stored as a map by asking for each variant's key in turn until one is there. Every such
//! question is a seek through Automerge's columnar op set, and a request's events ask many of
//! them per event, so indexing a received request was dominated by these seeks (the P2 pull of
//! `gridwalk-bench sync` measures it). [`DocView`] answers those questions from a table made
//! with one `map_range` or `list_range` pass over each object the first time it is asked about,
//! so the same hydration reads each object once. The answers are exactly the document's: the visible
//! (winning) value of every key and index, with its object id; anything the view does not keep
//! (text, parents, object types) goes straight to the document.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::RangeBounds;
use std::rc::Rc;

use automerge::{AutoCommit, AutomergeError, ChangeHash, ObjId, ObjType, Prop, Value};

type Entry = (Value<'static>, ObjId);

/// What the view has read of one object.
enum Object {
    Map(HashMap<String, Entry>),
    List(Vec<Entry>),
    /// Text, or an id the document does not know: asked of the document each time.
    Other,
}

/// A read-only view of `doc` for hydrating it (see the module comment). The document cannot
/// change while the view borrows it, so what the view has read stays true.
pub struct DocView<'d> {
    doc: &'d AutoCommit,
    objects: RefCell<HashMap<ObjId, Rc<Object>>>,
}

impl<'d> DocView<'d> {
    pub fn new(doc: &'d AutoCommit) -> Self {
        DocView { doc, objects: RefCell::default() }
    }

    /// The document itself, for what autosurgeon's reading does not cover (conflicting values).
    pub fn doc(&self) -> &'d AutoCommit {
        self.doc
    }

    fn object(&self, obj: &ObjId) -> Rc<Object> {
        if let Some(o) = self.objects.borrow().get(obj) {
            return o.clone();
        }
        let object = match automerge::ReadDoc::object_type(self.doc, obj) {
            Ok(ObjType::Map | ObjType::Table) => Object::Map(
                automerge::ReadDoc::map_range(self.doc, obj, ..)
                    .map(|item| {
                        let id = item.id();
                        (item.key.into_owned(), (item.value.into_value(), id))
                    })
                    .collect(),
            ),
            Ok(ObjType::List) => Object::List(
                automerge::ReadDoc::list_range(self.doc, obj, ..)
                    .map(|item| {
                        let id = item.id();
                        (item.value.into_value(), id)
                    })
                    .collect(),
            ),
            _ => Object::Other,
        };
        let object = Rc::new(object);
        self.objects.borrow_mut().insert(obj.clone(), object.clone());
        object
    }
}

impl autosurgeon::ReadDoc for DocView<'_> {
    type Parents<'a>
        = automerge::Parents<'a>
    where
        Self: 'a;

    fn get_heads(&self) -> Vec<ChangeHash> {
        autosurgeon::ReadDoc::get_heads(self.doc)
    }

    fn get<P: Into<Prop>>(&self, obj: &ObjId, prop: P) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        // Only maps and lists are kept; a key asked of a list, an index of a map, or anything of
        // a text or a missing object gets the document's own answer, error included.
        let prop = prop.into();
        match (&prop, &*self.object(obj)) {
            (Prop::Map(key), Object::Map(m)) => Ok(m.get(key).cloned()),
            (Prop::Seq(index), Object::List(l)) => Ok(l.get(*index).cloned()),
            _ => automerge::ReadDoc::get(self.doc, obj, prop),
        }
    }

    fn object_type<O: AsRef<ObjId>>(&self, obj: O) -> Option<ObjType> {
        autosurgeon::ReadDoc::object_type(self.doc, obj)
    }

    fn map_range<'a, O, R>(&'a self, obj: O, range: R) -> automerge::iter::MapRange<'a>
    where
        R: RangeBounds<String> + 'a,
        O: AsRef<ObjId>,
        R: RangeBounds<String>,
    {
        automerge::ReadDoc::map_range(self.doc, obj, range)
    }

    fn list_range<O: AsRef<ObjId>, R: RangeBounds<usize>>(&self, obj: O, range: R) -> automerge::iter::ListRange<'_> {
        automerge::ReadDoc::list_range(self.doc, obj, range)
    }

    fn length<O: AsRef<ObjId>>(&self, obj: O) -> usize {
        match &*self.object(obj.as_ref()) {
            Object::List(l) => l.len(),
            _ => automerge::ReadDoc::length(self.doc, obj),
        }
    }

    fn text<O: AsRef<ObjId>>(&self, obj: O) -> Result<String, AutomergeError> {
        automerge::ReadDoc::text(self.doc, obj)
    }

    fn parents<O: AsRef<ObjId>>(&self, obj: O) -> Result<Self::Parents<'_>, AutomergeError> {
        automerge::ReadDoc::parents(self.doc, obj)
    }

    fn is_empty(&self) -> bool {
        autosurgeon::ReadDoc::is_empty(self.doc)
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ScalarValue, ROOT};
    use autosurgeon::{hydrate, reconcile, Hydrate, Reconcile};

    use super::DocView;
    use crate::lifecycle::{Action, LifecycleEvent, Rating};
    use crate::time::Timestamp;

    #[derive(Debug, Clone, PartialEq, Reconcile, Hydrate)]
    struct Record {
        title: String,
        count: i64,
        tags: Vec<String>,
        events: Vec<LifecycleEvent>,
        note: Option<String>,
    }

    fn event(id: &str, lamport: u64, action: Action) -> LifecycleEvent {
        LifecycleEvent {
            id: id.into(),
            lamport,
            at: Timestamp::from_millis(1_700_000_000_000 + lamport as i64).unwrap(),
            by: "w1".into(),
            device: "phone-1".into(),
            action,
        }
    }

    /// Two replicas edit the same keys and lists concurrently; every answer the view gives,
    /// and the hydrated whole, must be the document's own, conflicts and all.
    #[test]
    fn a_view_answers_exactly_as_the_document_it_reads_even_after_conflicting_edits() {
        let mut a = AutoCommit::new();
        let first = Record {
            title: "路灯不亮".into(),
            count: 1,
            tags: vec!["streetlight".into()],
            events: vec![event("e1", 1, Action::Collected)],
            note: None,
        };
        reconcile(&mut a, &first).unwrap();
        let mut b = a.fork().with_actor(automerge::ActorId::random());

        let mut on_a = first.clone();
        on_a.title = "村道路灯不亮".into();
        on_a.tags.push("night".into());
        on_a.events.push(event("e2", 2, Action::Rated { rating: Rating::Satisfied, comment: String::new() }));
        reconcile(&mut a, &on_a).unwrap();
        let mut on_b = first.clone();
        on_b.title = "马厩村路灯".into();
        on_b.count = 7;
        on_b.note = Some("已上报".into());
        on_b.events.push(event("e3", 2, Action::Rated { rating: Rating::NotSatisfied, comment: "灯还是不亮".into() }));
        reconcile(&mut b, &on_b).unwrap();
        // A key written as a map on one side and a scalar on the other.
        a.put_object(ROOT, "extra", ObjType::Map).unwrap();
        b.put(ROOT, "extra", ScalarValue::Int(3)).unwrap();
        a.merge(&mut b).unwrap();

        let view = DocView::new(&a);
        let through_view: Record = hydrate(&view).unwrap();
        let direct: Record = hydrate(&a).unwrap();
        assert_eq!(through_view, direct);
        assert_eq!(through_view.events.len(), 3, "both concurrent events are kept");

        for key in ["title", "count", "tags", "events", "note", "extra", "missing"] {
            let d = automerge::ReadDoc::get(&a, ROOT, key).unwrap();
            let v = autosurgeon::ReadDoc::get(&view, &ROOT, key).unwrap();
            assert_eq!(v, d, "key {key}");
        }
        let (_, events) = automerge::ReadDoc::get(&a, ROOT, "events").unwrap().unwrap();
        assert_eq!(autosurgeon::ReadDoc::length(&view, &events), automerge::ReadDoc::length(&a, &events));
        for i in 0..4 {
            assert_eq!(
                autosurgeon::ReadDoc::get(&view, &events, i).unwrap(),
                automerge::ReadDoc::get(&a, &events, i).unwrap(),
                "event {i}"
            );
        }
        // A key asked of a list is the document's answer too, not the view's guess.
        assert_eq!(
            autosurgeon::ReadDoc::get(&view, &events, "title").is_ok(),
            automerge::ReadDoc::get(&a, &events, "title").is_ok()
        );
    }
}

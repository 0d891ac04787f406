//! Recording meetings and reading them back. See [`crate::meeting`].

use automerge::ROOT;
use autosurgeon::{hydrate_prop, reconcile_prop};
use serde::Serialize;

use super::{index, reference, Store};
use crate::docs::{self, DocHeader, DocKind};
use crate::error::{CoreError, Result};
use crate::lifecycle::Action;
use crate::meeting::MeetingBody;
use crate::ActionContext;

/// A meeting with its header.
#[derive(Debug, Clone, Serialize)]
pub struct MeetingView {
    pub header: DocHeader,
    pub body: MeetingBody,
}

/// One row of the meeting list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeetingSummary {
    pub id: String,
    pub grid: String,
    pub kind: String,
    pub held_at: i64,
    pub place: String,
    pub topic: String,
    pub participants: i64,
    pub requests: i64,
    pub decisions: i64,
    pub created_by: String,
}

impl Store {
    /// Records a meeting in `grid`. Each decision that names a request is appended to that
    /// request's lifecycle as a `MeetingDecision`, in the same transaction: the meeting and its
    /// decisions are recorded together or not at all.
    pub fn record_meeting(&self, ctx: &ActionContext, grid: &str, body: MeetingBody) -> Result<String> {
        self.may(ctx, gridwalk_doc::permissions::Step::Meeting, None)?;
        if body.topic.trim().is_empty() {
            return Err(CoreError::invalid("topic", "say what the meeting was about"));
        }
        if body.participants.iter().any(|p| p.name.trim().is_empty()) {
            return Err(CoreError::invalid("participants", "every participant needs a name"));
        }
        if body.decisions.iter().any(|d| d.decision.trim().is_empty()) {
            return Err(CoreError::invalid("decisions", "a decision cannot be empty"));
        }
        for r in body.decisions.iter().filter_map(|d| d.request.as_ref()) {
            if !body.requests.contains(r) {
                return Err(CoreError::invalid(
                    "decisions",
                    format!("a decision names request {r}, which the meeting did not discuss"),
                ));
            }
        }
        self.atomically(|conn| {
            reference::require_grid(conn, grid)?;
            for r in &body.requests {
                if index::grid_of_request(conn, r)?.is_none() {
                    return Err(CoreError::NotFound { kind: "request", id: r.clone() });
                }
            }
            let id = ctx.new_id();
            let header = DocHeader::new(ctx, &id, DocKind::Meeting, grid);
            let mut doc = docs::new_doc(ctx, &header)?;
            reconcile_prop(&mut doc, ROOT, "body", &body)?;
            docs::commit(&mut doc, ctx.at, "record meeting");
            Self::insert_new_document(conn, &header, &mut doc, ctx.at, true)?;
            index::index_meeting(conn, &header, &body)?;
            for d in &body.decisions {
                if let Some(request) = &d.request {
                    self.act(
                        ctx,
                        request,
                        Action::MeetingDecision { meeting: id.clone(), decision: d.decision.trim().to_string() },
                    )?;
                }
            }
            Ok(id)
        })
    }

    pub fn meeting(&self, id: &str) -> Result<MeetingView> {
        let Some((DocKind::Meeting, _, am)) = Self::load_automerge(&self.conn, id)? else {
            return Err(CoreError::NotFound { kind: "meeting", id: id.to_string() });
        };
        Ok(MeetingView { header: docs::read_header(&am)?, body: hydrate_prop(&am, ROOT, "body")? })
    }

    /// Meetings, newest first; of one grid when given.
    pub fn list_meetings(&self, grid: Option<&str>, limit: usize) -> Result<Vec<MeetingSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, grid, kind, held_at, place, topic, participants, requests, decisions, created_by
               FROM meeting_index WHERE ?1 IS NULL OR grid = ?1 ORDER BY held_at DESC, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![grid, limit as i64], |r| {
            Ok(MeetingSummary {
                id: r.get(0)?,
                grid: r.get(1)?,
                kind: r.get(2)?,
                held_at: r.get(3)?,
                place: r.get(4)?,
                topic: r.get(5)?,
                participants: r.get(6)?,
                requests: r.get(7)?,
                decisions: r.get(8)?,
                created_by: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::demo::{generate, DemoConfig};
    use crate::lifecycle::Status;
    use crate::meeting::{Decision, MeetingKind, Participant, ParticipantRole};
    use crate::store::{Identity, RequestFilter};
    use crate::time::Timestamp;

    fn hall() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            Store::create(dir.path().join("hall.db"), Identity { device: "hall".into(), walker: "staff".into() })
                .unwrap();
        let until = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let cfg = DemoConfig {
            villages: 1,
            households: 40,
            enterprises: 0,
            enterprise_grids: 0,
            requests: 40,
            visits: 10,
            days: 60,
            ..DemoConfig::street(3, until)
        };
        generate(&mut s, &cfg).unwrap();
        (dir, s)
    }

    fn body(requests: Vec<String>, decisions: Vec<Decision>) -> MeetingBody {
        MeetingBody {
            kind: MeetingKind::Deliberation,
            held_at: Timestamp::from_millis(1_800_000_000_000).unwrap(),
            place: "马社村委会".into(),
            topic: "闲置太阳能路灯再利用".into(),
            participants: vec![
                Participant { name: "李书记".into(), role: ParticipantRole::Instructor, department: None },
                Participant { name: "张大爷".into(), role: ParticipantRole::ResidentRep, department: None },
            ],
            requests,
            decisions,
        }
    }

    fn open_request(s: &Store, status: Status) -> (String, String) {
        let r = s
            .list_requests(&RequestFilter { statuses: vec![status], limit: 1, ..RequestFilter::default() })
            .unwrap()
            .pop()
            .unwrap();
        (r.id, r.grid)
    }

    #[test]
    fn a_meeting_is_listed_and_its_decision_joins_the_requests_history() {
        let (_dir, s) = hall();
        let (request, grid) = open_request(&s, Status::Assigned);
        let ctx = s.context(Timestamp::from_millis(1_800_000_000_000).unwrap());
        let decision =
            Decision { request: Some(request.clone()), decision: "利用约50盏闲置太阳能路灯".into() };
        let id = s.record_meeting(&ctx, &grid, body(vec![request.clone()], vec![decision])).unwrap();
        let list = s.list_meetings(Some(&grid), 10).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].id.as_str(), list[0].participants, list[0].decisions), (id.as_str(), 2, 1));
        assert_eq!(s.meeting(&id).unwrap().body.participants[1].role, ParticipantRole::ResidentRep);
        let history = s.request(&request).unwrap().history;
        let last = history.last().unwrap();
        assert_eq!(
            last.event.action,
            Action::MeetingDecision { meeting: id.clone(), decision: "利用约50盏闲置太阳能路灯".into() }
        );
        assert!(s.check().unwrap().index_matches_documents);
    }

    #[test]
    fn a_meeting_whose_decision_cannot_be_recorded_is_not_recorded_at_all() {
        let (_dir, s) = hall();
        let (closed, grid) = open_request(&s, Status::Closed);
        let ctx = s.context(Timestamp::from_millis(1_800_000_000_000).unwrap());
        let outbox = s.outbox_len().unwrap();
        let err = s
            .record_meeting(
                &ctx,
                &grid,
                body(vec![closed.clone()], vec![Decision { request: Some(closed), decision: "再议".into() }]),
            )
            .unwrap_err();
        assert_eq!(err.code(), "invalid_transition");
        assert!(s.list_meetings(None, 10).unwrap().is_empty());
        assert_eq!(s.outbox_len().unwrap(), outbox);
        let undiscussed = s.record_meeting(
            &ctx,
            &grid,
            body(vec![], vec![Decision { request: Some("r-x".into()), decision: "x".into() }]),
        );
        assert_eq!(undiscussed.unwrap_err().code(), "invalid_input");
        let unknown = s.record_meeting(&ctx, &grid, body(vec!["r-missing".into()], vec![]));
        assert_eq!(unknown.unwrap_err().code(), "not_found");
    }
}

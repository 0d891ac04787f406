//! The closed loop (闭环) of a request, as an append-only list of events.
//!
//! Nobody ever overwrites a request's status. Every action — triage, assignment, a progress note,
//! the resolution, the doorstep feedback, the resident's rating — is appended as a
//! [`LifecycleEvent`]. The current [`RequestState`] is a pure fold over those events in a fixed
//! order: by `lamport` (one more than the highest event the author had seen, so an event always
//! sorts after every event it could have known about), then by event id. Every replica that holds
//! the same events therefore derives the same status, owner and deadline. An event that is not
//! valid at its place in that order (two people rated the same fix while offline) stays in the
//! history and is marked as not applied; the fold never drops or rewrites anything.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::model::Level;
use crate::time::Timestamp;

/// The resident's verdict after a fix (评价).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// 满意
    Satisfied,
    /// 基本满意
    Basically,
    /// 不满意: reopens the request.
    NotSatisfied,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Satisfied => "satisfied",
            Rating::Basically => "basically",
            Rating::NotSatisfied => "not_satisfied",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim() {
            "satisfied" | "满意" => Rating::Satisfied,
            "basically" | "basically_satisfied" | "基本满意" => Rating::Basically,
            "not_satisfied" | "unsatisfied" | "不满意" => Rating::NotSatisfied,
            _ => return None,
        })
    }
}

/// The outcome of 研判 (assessment / triage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum TriageDecision {
    /// Accept for handling.
    Accept,
    /// A duplicate of another request; that one carries on.
    MergeInto { target: String },
    /// Not a matter for the hall; the reason is told to the resident.
    Reject { reason: String },
    /// Settled on the spot (当场解决).
    SolvedOnSpot { note: String },
}

/// 交办: who handles it, by when, at which tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Assignment {
    /// Department (责任科室) id.
    pub department: String,
    /// The responsible person, when one is named.
    pub person: Option<String>,
    pub deadline: Timestamp,
    pub level: Level,
}

/// One step of the closed loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Action {
    /// 收集: the request was received. Always the first event, written with the document.
    Collected,
    /// 研判
    Triaged { decision: TriageDecision },
    /// 交办
    Assigned { assignment: Assignment },
    /// Handed to another office or person, or given a new deadline.
    Reassigned { assignment: Assignment, reason: String },
    /// Raised to a higher tier (三级联动).
    Escalated { level: Level, department: Option<String>, reason: String },
    /// 办理: a progress report.
    Progress { note: String },
    /// 办结: what was done; "after" photos as evidence.
    Resolved { note: String, photos: Vec<String> },
    /// 反馈: the resident was told, usually on the next visit.
    FeedbackGiven { note: String },
    /// 评价
    Rated { rating: Rating, comment: String },
    /// Opened again by the hall (the resident's "not satisfied" reopens by itself).
    Reopened { reason: String },
    /// Closed for good.
    Closed { note: String },
    /// A decision taken at a grid deliberation meeting (议事) about this request.
    MeetingDecision { meeting: String, decision: String },
}

impl Action {
    /// The verb used in messages and the history, e.g. "rate".
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Collected => "collect",
            Action::Triaged { .. } => "triage",
            Action::Assigned { .. } => "assign",
            Action::Reassigned { .. } => "reassign",
            Action::Escalated { .. } => "escalate",
            Action::Progress { .. } => "add progress to",
            Action::Resolved { .. } => "resolve",
            Action::FeedbackGiven { .. } => "give feedback on",
            Action::Rated { .. } => "rate",
            Action::Reopened { .. } => "reopen",
            Action::Closed { .. } => "close",
            Action::MeetingDecision { .. } => "record a meeting decision on",
        }
    }
}

/// One event in a request's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct LifecycleEvent {
    /// Random id; the final tie-break between concurrent events.
    pub id: String,
    /// One more than the highest `lamport` among the events its author had seen.
    pub lamport: u64,
    /// The author's device time (device clocks may be wrong; the relay adds its own).
    pub at: Timestamp,
    /// Who acted (walker or staff id).
    pub by: String,
    /// From which device.
    pub device: String,
    pub action: Action,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Collected, waiting for triage (待研判).
    New,
    /// Accepted, not yet assigned (已受理).
    Accepted,
    /// With an office (办理中).
    Assigned,
    /// 已办结, the resident not yet told.
    Resolved,
    /// The resident was told; waiting for a rating.
    FeedbackGiven,
    /// Rated satisfied or basically satisfied.
    Rated,
    Closed,
    Rejected,
    /// Merged into another request.
    Merged,
    /// Reopened after "not satisfied" or by the hall.
    Reopened,
}

pub const ALL_STATUSES: [Status; 10] = [
    Status::New,
    Status::Accepted,
    Status::Assigned,
    Status::Resolved,
    Status::FeedbackGiven,
    Status::Rated,
    Status::Closed,
    Status::Rejected,
    Status::Merged,
    Status::Reopened,
];

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Accepted => "accepted",
            Status::Assigned => "assigned",
            Status::Resolved => "resolved",
            Status::FeedbackGiven => "feedback_given",
            Status::Rated => "rated",
            Status::Closed => "closed",
            Status::Rejected => "rejected",
            Status::Merged => "merged",
            Status::Reopened => "reopened",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        ALL_STATUSES.iter().copied().find(|st| st.as_str() == s.trim())
    }
    /// Still being worked on: counts towards overdue.
    pub fn is_open(self) -> bool {
        matches!(self, Status::New | Status::Accepted | Status::Assigned | Status::Reopened)
    }
    /// Counts as 办结 for the resolution rate.
    pub fn is_resolved(self) -> bool {
        matches!(self, Status::Resolved | Status::FeedbackGiven | Status::Rated | Status::Closed)
    }
}

/// What the fold derives from the events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestState {
    pub status: Status,
    /// Who answers for the request now: the first receiver (首问责任制) until it is assigned,
    /// then the assigned person, or the department when no person is named.
    pub owner: String,
    pub first_receiver: String,
    pub department: Option<String>,
    pub assignee: Option<String>,
    pub level: Option<Level>,
    pub deadline: Option<Timestamp>,
    pub merged_into: Option<String>,
    pub rating: Option<Rating>,
    pub resolved_at: Option<Timestamp>,
    /// When the reporter was last told the outcome (反馈), until the request is reopened. A
    /// duplicate merged into another request keeps its status: its own reporter is owed the
    /// outcome as much as the other's, and this says she has had it.
    pub told_at: Option<Timestamp>,
    pub reopen_count: u32,
    /// Device time of the newest applied event.
    pub updated_at: Timestamp,
    /// Ids of events that were not valid at their place in the order (kept, not applied).
    pub not_applied: Vec<String>,
}

impl RequestState {
    /// Open, with a deadline that has passed at `now`.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.status.is_open() && self.deadline.is_some_and(|d| d < now)
    }
}

/// Why an action is not allowed in a status; `None` when it is.
pub fn refusal(status: Status, action: &Action) -> Option<&'static str> {
    use Status::*;
    let ok = match action {
        Action::Collected => false,
        Action::Triaged { .. } => status == New,
        Action::Assigned { .. } => matches!(status, Accepted | Reopened),
        Action::Reassigned { .. } => status == Assigned,
        Action::Escalated { .. } => matches!(status, Accepted | Assigned | Reopened),
        Action::Progress { .. } => matches!(status, Accepted | Assigned | Reopened),
        Action::Resolved { .. } => matches!(status, Accepted | Assigned | Reopened),
        // A merged duplicate's reporter is told the outcome of the request it went into; the
        // duplicate stays merged (`content_refusal` lets her be told once).
        Action::FeedbackGiven { .. } => matches!(status, Resolved | Merged),
        Action::Rated { .. } => matches!(status, Resolved | FeedbackGiven),
        Action::Reopened { .. } => matches!(status, Resolved | FeedbackGiven | Rated | Closed | Rejected),
        Action::Closed { .. } => matches!(status, Resolved | FeedbackGiven | Rated | Rejected | Merged),
        Action::MeetingDecision { .. } => !matches!(status, Closed | Merged),
    };
    if ok {
        return None;
    }
    Some(match action {
        Action::Collected => "a request is collected only once, when it is raised",
        Action::Triaged { .. } => "only a new request can be triaged",
        Action::Assigned { .. } => {
            "it must be accepted (or reopened) before it is assigned; use reassign to change an office"
        }
        Action::Reassigned { .. } => "only an assigned request can be reassigned",
        Action::Escalated { .. } | Action::Progress { .. } | Action::Resolved { .. } => {
            "it must be accepted and not yet resolved"
        }
        Action::FeedbackGiven { .. } => "feedback follows a resolution (or a merge into another request)",
        Action::Rated { .. } => "a rating needs a resolved request",
        Action::Reopened { .. } => "only a finished request can be reopened",
        Action::Closed { .. } => "only a resolved, rated, rejected or merged request can be closed",
        Action::MeetingDecision { .. } => "the request is already closed",
    })
}

/// Extra checks that depend on the action's content, not only on the status.
fn content_refusal(state: &RequestState, action: &Action) -> Option<&'static str> {
    match action {
        Action::Escalated { level, .. } if state.level.is_some_and(|l| *level <= l) => {
            Some("an escalation must go to a higher tier than the current one")
        }
        Action::FeedbackGiven { .. } if state.status == Status::Merged && state.told_at.is_some() => {
            Some("the reporter of this duplicate has already been told")
        }
        _ => None,
    }
}

/// Applies one event to a state. Returns `false`, leaving the state unchanged, when the event is
/// not valid there.
fn step(state: &mut RequestState, event: &LifecycleEvent) -> bool {
    if refusal(state.status, &event.action).is_some() || content_refusal(state, &event.action).is_some() {
        return false;
    }
    match &event.action {
        Action::Collected => unreachable!("refused above"),
        Action::Triaged { decision } => match decision {
            TriageDecision::Accept => state.status = Status::Accepted,
            TriageDecision::MergeInto { target } => {
                state.status = Status::Merged;
                state.merged_into = Some(target.clone());
            }
            TriageDecision::Reject { .. } => state.status = Status::Rejected,
            TriageDecision::SolvedOnSpot { .. } => {
                state.status = Status::Resolved;
                state.resolved_at = Some(event.at);
            }
        },
        Action::Assigned { assignment } | Action::Reassigned { assignment, .. } => {
            state.status = Status::Assigned;
            state.department = Some(assignment.department.clone());
            state.assignee = assignment.person.clone();
            state.deadline = Some(assignment.deadline);
            state.level = Some(assignment.level);
            state.owner = assignment.person.clone().unwrap_or_else(|| assignment.department.clone());
        }
        Action::Escalated { level, department, .. } => {
            state.level = Some(*level);
            if let Some(d) = department {
                state.department = Some(d.clone());
                if state.assignee.is_none() {
                    state.owner = d.clone();
                }
            }
        }
        Action::Progress { .. } | Action::MeetingDecision { .. } => {}
        Action::Resolved { .. } => {
            state.status = Status::Resolved;
            state.resolved_at = Some(event.at);
        }
        Action::FeedbackGiven { .. } => {
            if state.status != Status::Merged {
                state.status = Status::FeedbackGiven;
            }
            state.told_at = Some(event.at);
        }
        Action::Rated { rating, .. } => {
            state.rating = Some(*rating);
            if *rating == Rating::NotSatisfied {
                state.status = Status::Reopened;
                state.reopen_count += 1;
                state.resolved_at = None;
                state.told_at = None;
            } else {
                state.status = Status::Rated;
            }
        }
        Action::Reopened { .. } => {
            state.status = Status::Reopened;
            state.reopen_count += 1;
            state.resolved_at = None;
            state.told_at = None;
        }
        Action::Closed { .. } => state.status = Status::Closed,
    }
    state.updated_at = state.updated_at.max(event.at);
    true
}

/// Sorts events into the fold's order: causal (lamport), then by id.
pub fn fold_order(events: &mut [LifecycleEvent]) {
    events.sort_by(|a, b| a.lamport.cmp(&b.lamport).then_with(|| a.id.cmp(&b.id)));
}

/// Derives the state from all events, in any order given. `None` when there is no `Collected`
/// event to start from (a damaged document).
pub fn fold(events: &[LifecycleEvent]) -> Option<RequestState> {
    let mut ordered = events.to_vec();
    fold_order(&mut ordered);
    let first = ordered.first()?;
    if first.action != Action::Collected {
        return None;
    }
    let mut state = RequestState {
        status: Status::New,
        owner: first.by.clone(),
        first_receiver: first.by.clone(),
        department: None,
        assignee: None,
        level: None,
        deadline: None,
        merged_into: None,
        rating: None,
        resolved_at: None,
        told_at: None,
        reopen_count: 0,
        updated_at: first.at,
        not_applied: Vec::new(),
    };
    for event in &ordered[1..] {
        if !step(&mut state, event) {
            state.not_applied.push(event.id.clone());
        }
    }
    Some(state)
}

/// Checks an action against the current state before it is appended.
pub fn check(state: &RequestState, action: &Action) -> Result<(), &'static str> {
    match refusal(state.status, action).or_else(|| content_refusal(state, action)) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

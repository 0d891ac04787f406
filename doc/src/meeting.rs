//! 议事: grid deliberation meetings (网格议事会) and on-grid service days (驻网办事日) as
//! documents. A meeting records when and where it was held, who took part in which role, the
//! requests it discussed and what it decided. A decision about a request is also appended to
//! that request's lifecycle (`Action::MeetingDecision`), so the request's history shows it
//! (议事记录制).

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum MeetingKind {
    /// 网格议事会
    Deliberation,
    /// 驻网办事日: leaders and offices receive residents in the grid.
    ServiceDay,
}

impl MeetingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MeetingKind::Deliberation => "deliberation",
            MeetingKind::ServiceDay => "service_day",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deliberation" | "议事会" => Some(MeetingKind::Deliberation),
            "service_day" | "驻网办事日" => Some(MeetingKind::ServiceDay),
            _ => None,
        }
    }
}

/// The roles the seeds name at a grid meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantRole {
    /// 网格指导员
    Instructor,
    /// 网格长
    GridHead,
    /// 网格员
    Walker,
    /// 居民代表
    ResidentRep,
    /// 部门负责人
    DepartmentHead,
    Other,
}

impl ParticipantRole {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "instructor" => ParticipantRole::Instructor,
            "grid_head" => ParticipantRole::GridHead,
            "walker" => ParticipantRole::Walker,
            "resident_rep" => ParticipantRole::ResidentRep,
            "department_head" => ParticipantRole::DepartmentHead,
            "other" => ParticipantRole::Other,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Participant {
    pub name: String,
    pub role: ParticipantRole,
    /// The office a department head speaks for.
    pub department: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct Decision {
    /// The request the decision is about, if it is about one.
    pub request: Option<String>,
    pub decision: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct MeetingBody {
    pub kind: MeetingKind,
    pub held_at: Timestamp,
    pub place: String,
    pub topic: String,
    pub participants: Vec<Participant>,
    /// Requests discussed.
    pub requests: Vec<String>,
    pub decisions: Vec<Decision>,
}

//! Meetings (网格议事会, 驻网办事日): recording one, listing them; a decision about a request
//! becomes a lifecycle event on that request (the core does it in the same transaction).

use gridwalk_core::meeting::{Decision, MeetingBody, MeetingKind, Participant, ParticipantRole};
use gridwalk_core::store::MeetingView;
use gridwalk_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::commands::{context, invalid, out, parse};
use crate::{App, CommandResult};

#[derive(Debug, Clone, Deserialize, Serialize)]
struct ParticipantDto {
    name: String,
    role: String,
    #[serde(default)]
    department: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct DecisionDto {
    #[serde(default)]
    request: Option<String>,
    decision: String,
}

#[derive(Debug, Clone, Deserialize)]
struct NewMeetingArgs {
    grid: String,
    kind: String,
    held_at: i64,
    #[serde(default)]
    place: String,
    topic: String,
    #[serde(default)]
    participants: Vec<ParticipantDto>,
    #[serde(default)]
    requests: Vec<String>,
    #[serde(default)]
    decisions: Vec<DecisionDto>,
}

#[derive(Debug, Clone, Serialize)]
struct MeetingDto {
    id: String,
    grid: String,
    kind: String,
    held_at: i64,
    place: String,
    topic: String,
    participants: Vec<ParticipantDto>,
    requests: Vec<String>,
    decisions: Vec<DecisionDto>,
    created_by: String,
    created_at: i64,
}

#[derive(Debug, Clone, Deserialize)]
struct MeetingsArgs {
    #[serde(default)]
    grid: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
struct IdArgs {
    id: String,
}

fn role_name(role: ParticipantRole) -> &'static str {
    match role {
        ParticipantRole::Instructor => "instructor",
        ParticipantRole::GridHead => "grid_head",
        ParticipantRole::Walker => "walker",
        ParticipantRole::ResidentRep => "resident_rep",
        ParticipantRole::DepartmentHead => "department_head",
        ParticipantRole::Other => "other",
    }
}

fn dto(view: MeetingView) -> MeetingDto {
    MeetingDto {
        id: view.header.id,
        grid: view.header.grid,
        kind: view.body.kind.as_str().into(),
        held_at: view.body.held_at.millis(),
        place: view.body.place,
        topic: view.body.topic,
        participants: view
            .body
            .participants
            .into_iter()
            .map(|p| ParticipantDto { name: p.name, role: role_name(p.role).into(), department: p.department })
            .collect(),
        requests: view.body.requests,
        decisions: view
            .body
            .decisions
            .into_iter()
            .map(|d| DecisionDto { request: d.request, decision: d.decision })
            .collect(),
        created_by: view.header.created_by,
        created_at: view.header.created_at.millis(),
    }
}

pub(crate) fn dispatch(app: &App, name: &str, args: Value) -> CommandResult<Value> {
    match name {
        "record_meeting" => {
            let a: NewMeetingArgs = parse(args)?;
            let kind = MeetingKind::parse(&a.kind)
                .ok_or_else(|| invalid("kind", format!("'{}' is not deliberation or service_day", a.kind)))?;
            let participants = a
                .participants
                .into_iter()
                .map(|p| {
                    let role = ParticipantRole::parse(&p.role)
                        .ok_or_else(|| invalid("participants", format!("'{}' is not a meeting role", p.role)))?;
                    Ok(Participant {
                        name: p.name.trim().to_string(),
                        role,
                        department: p.department.filter(|d| !d.is_empty()),
                    })
                })
                .collect::<CommandResult<Vec<_>>>()?;
            let body = MeetingBody {
                kind,
                held_at: Timestamp::from_millis(a.held_at)?,
                place: a.place.trim().to_string(),
                topic: a.topic.trim().to_string(),
                participants,
                requests: a.requests,
                decisions: a
                    .decisions
                    .into_iter()
                    .map(|d| Decision { request: d.request.filter(|r| !r.is_empty()), decision: d.decision })
                    .collect(),
            };
            let store = app.store()?;
            let id = store.record_meeting(&context(app, &store)?, &a.grid, body)?;
            out(dto(store.meeting(&id)?))
        }
        "meetings" => {
            let a: MeetingsArgs = parse(args)?;
            let store = app.store()?;
            let list = store.list_meetings(a.grid.as_deref(), a.limit.unwrap_or(50).min(500))?;
            let mut meetings = Vec::with_capacity(list.len());
            for m in list {
                meetings.push(dto(store.meeting(&m.id)?));
            }
            out(meetings)
        }
        "meeting" => {
            let a: IdArgs = parse(args)?;
            out(dto(app.store()?.meeting(&a.id)?))
        }
        other => crate::hall::dispatch(app, other, args),
    }
}

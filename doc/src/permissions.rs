//! Who may do what: the one permission table of the closed loop.
//!
//! Resolution, on-time and satisfaction rates are what village cadres are assessed on, so a
//! step of the loop counts only when someone entitled to take it took it. This table is checked
//! twice: by the device's core before it writes (`CoreError::Forbidden`), and by the relay on
//! every push, for every event and document a push adds, whatever app sent it (403
//! `forbidden_action`). Neither copies it: both call [`permitted`].
//!
//! | step                                   | walker 网格员 | hall 服务中心 | office 责任科室 | admin | leader |
//! |----------------------------------------|---------------|---------------|------------------|-------|--------|
//! | record a visit (走访)                   | yes           | yes           |                  |       |        |
//! | raise a request (收集)                  | yes           | yes           |                  |       |        |
//! | edit a request's description, place…   | first receiver| yes           |                  |       |        |
//! | triage: accept, merge, reject (研判)    |               | yes           |                  |       |        |
//! | solve on the spot (当场解决)            | first receiver| yes           |                  |       |        |
//! | assign, reassign, escalate (交办)       |               | yes           |                  |       |        |
//! | report progress (办理)                  | yes           | yes           | its office's     |       |        |
//! | resolve (办结)                          |               | yes           | its office's     |       |        |
//! | feedback on the doorstep (反馈)         | yes           | yes           |                  |       |        |
//! | record the resident's rating (评价)     | yes           | yes           |                  |       |        |
//! | reopen, close                           |               | yes           |                  |       |        |
//! | meeting decisions, meetings (议事)      |               | yes           |                  |       |        |
//! | publish a grid's roster (reference data)|               | yes           |                  | yes   |        |
//!
//! "First receiver" is 首问责任制: whoever first received a request owns it until it is
//! assigned, so a walker may settle on the spot, or correct, only a request she received
//! herself. "Its office's": office staff act only on requests assigned to their office. A
//! leader reads and changes nothing. Grid scope (a walker acts only in her grids) is checked
//! separately, where documents are stored and relayed.

use crate::lifecycle::{Action, RequestState, TriageDecision};
use crate::model::Role;

/// One kind of step, as the table above names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    RecordVisit,
    RaiseRequest,
    EditRequest,
    Triage,
    SolveOnSpot,
    Assign,
    Progress,
    Resolve,
    Feedback,
    Rate,
    ReopenOrClose,
    Meeting,
    PublishRoster,
}

impl Step {
    pub const ALL: [Step; 13] = [
        Step::RecordVisit,
        Step::RaiseRequest,
        Step::EditRequest,
        Step::Triage,
        Step::SolveOnSpot,
        Step::Assign,
        Step::Progress,
        Step::Resolve,
        Step::Feedback,
        Step::Rate,
        Step::ReopenOrClose,
        Step::Meeting,
        Step::PublishRoster,
    ];

    /// The step a lifecycle action is.
    pub fn of(action: &Action) -> Step {
        match action {
            Action::Collected => Step::RaiseRequest,
            Action::Triaged { decision: TriageDecision::SolvedOnSpot { .. } } => Step::SolveOnSpot,
            Action::Triaged { .. } => Step::Triage,
            Action::Assigned { .. } | Action::Reassigned { .. } | Action::Escalated { .. } => Step::Assign,
            Action::Progress { .. } => Step::Progress,
            Action::Resolved { .. } => Step::Resolve,
            Action::FeedbackGiven { .. } => Step::Feedback,
            Action::Rated { .. } => Step::Rate,
            Action::Reopened { .. } | Action::Closed { .. } => Step::ReopenOrClose,
            Action::MeetingDecision { .. } => Step::Meeting,
        }
    }

    /// The step in the domain's words, for messages.
    pub fn words(self) -> &'static str {
        match self {
            Step::RecordVisit => "record a visit",
            Step::RaiseRequest => "raise a request",
            Step::EditRequest => "edit a request",
            Step::Triage => "triage (accept, merge or reject) a request",
            Step::SolveOnSpot => "settle a request on the spot",
            Step::Assign => "assign, reassign or escalate a request",
            Step::Progress => "report progress on a request",
            Step::Resolve => "resolve a request",
            Step::Feedback => "give feedback on a request",
            Step::Rate => "record a rating",
            Step::ReopenOrClose => "reopen or close a request",
            Step::Meeting => "record a meeting or its decisions",
            Step::PublishRoster => "publish a grid's roster",
        }
    }
}

/// Who acts: the role of the device or signed-in person, the person, and for office staff
/// their office (责任科室).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub role: Role,
    pub person: &'a str,
    pub office: Option<&'a str>,
}

/// What the table says of a role and a step, before looking at the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Always,
    /// Only a request this person first received (首问责任制).
    FirstReceiver,
    /// Only a request assigned to this person's office.
    OwnOffice,
    Never,
}

/// The table: one entry per role and step.
pub fn grant(role: Role, step: Step) -> Grant {
    use Grant::*;
    use Step::*;
    match (role, step) {
        (Role::Hall, _) => Always,
        (Role::Walker, RecordVisit | RaiseRequest | Progress | Feedback | Rate) => Always,
        (Role::Walker, EditRequest | SolveOnSpot) => FirstReceiver,
        (Role::Office, Progress | Resolve) => OwnOffice,
        (Role::Admin, PublishRoster) => Always,
        _ => Never,
    }
}

/// A step someone may not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{person} ({role}) may not {what}: {why}")]
pub struct Forbidden {
    pub person: String,
    pub role: &'static str,
    pub what: &'static str,
    pub why: &'static str,
}

/// May `actor` take `step`, on a request in `state` where the step concerns one (`None` for
/// visits, meetings, rosters and a request being raised)?
pub fn permitted(actor: &Actor, step: Step, state: Option<&RequestState>) -> Result<(), Forbidden> {
    let refuse = |why: &'static str| {
        Err(Forbidden { person: actor.person.to_string(), role: actor.role.as_str(), what: step.words(), why })
    };
    match grant(actor.role, step) {
        Grant::Always => Ok(()),
        Grant::Never => refuse("the role does not allow it"),
        Grant::FirstReceiver => match state {
            Some(s) if s.first_receiver == actor.person && s.department.is_none() => Ok(()),
            Some(s) if s.department.is_some() => refuse("the request is assigned; its office answers for it now"),
            _ => refuse("only the person who first received the request may (首问责任制)"),
        },
        Grant::OwnOffice => match (state.and_then(|s| s.department.as_deref()), actor.office) {
            (Some(dept), Some(office)) if dept == office => Ok(()),
            _ => refuse("the request is not assigned to this office"),
        },
    }
}

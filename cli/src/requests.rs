//! `gridwalk request ...` and `gridwalk export requests`: raising requests (诉求), taking them
//! through the closed loop (闭环), and reading, searching and exporting them.

use anyhow::Result;
use gridwalk_core::docs::{Reporter, Source};
use gridwalk_core::export::{export_requests, ExportFormat};
use gridwalk_core::lifecycle::{Action, Assignment, Status, TriageDecision};
use gridwalk_core::model::category;
use gridwalk_core::store::{NewRequest, RequestFilter, RequestSort, RequestSummary, RequestView};
use gridwalk_core::{CoreError, Store};
use serde_json::json;

use crate::args::{
    AssignmentArgs, ExportRequestsArgs, PageArgs, RaiseArgs, RequestCommand, RequestFilterArgs, SortOrder,
};
use crate::table::{clip, fields, time_text, Table};
use crate::visits::{end_of, parse_gps};
use crate::{invalid, parse_time, Env};

pub fn run(env: &Env, command: RequestCommand) -> Result<()> {
    match command {
        RequestCommand::Raise(args) => raise(env, args),
        RequestCommand::Accept { id } => act(env, &id, triage(TriageDecision::Accept)),
        RequestCommand::Merge { id, into } => act(env, &id, triage(TriageDecision::MergeInto { target: into })),
        RequestCommand::Reject { id, reason } => act(env, &id, triage(TriageDecision::Reject { reason })),
        RequestCommand::SolveOnSpot { id, note } => act(env, &id, triage(TriageDecision::SolvedOnSpot { note })),
        RequestCommand::Assign { id, assignment } => {
            let assignment = assignment_of(assignment)?;
            act(env, &id, Action::Assigned { assignment })
        }
        RequestCommand::Reassign { id, assignment, reason } => {
            let assignment = assignment_of(assignment)?;
            act(env, &id, Action::Reassigned { assignment, reason })
        }
        RequestCommand::Escalate { id, level, department, reason } => {
            act(env, &id, Action::Escalated { level, department, reason })
        }
        RequestCommand::Progress { id, note } => act(env, &id, Action::Progress { note }),
        RequestCommand::Resolve { id, note, photos } => act(env, &id, Action::Resolved { note, photos }),
        RequestCommand::Feedback { id, note } => act(env, &id, Action::FeedbackGiven { note }),
        RequestCommand::Rate { id, rating, comment } => act(env, &id, Action::Rated { rating, comment }),
        RequestCommand::Reopen { id, reason } => act(env, &id, Action::Reopened { reason }),
        RequestCommand::Close { id, note } => act(env, &id, Action::Closed { note }),
        RequestCommand::MeetingDecision { id, meeting, decision } => {
            act(env, &id, Action::MeetingDecision { meeting, decision })
        }
        RequestCommand::List(args) => list(env, &args.filter, args.search.clone(), &args.page),
        RequestCommand::Search(args) => list(env, &args.filter, Some(args.text.clone()), &args.page),
        RequestCommand::Show { id } => show(env, &id),
    }
}

fn triage(decision: TriageDecision) -> Action {
    Action::Triaged { decision }
}

fn assignment_of(args: AssignmentArgs) -> Result<Assignment> {
    Ok(Assignment {
        deadline: parse_time("deadline", &args.deadline, true)?,
        department: args.department,
        person: args.person,
        level: args.level,
    })
}

/// The Chinese label of a category code, or the code itself when it is not one we know.
fn category_label(code: &str) -> String {
    category(code).map(|c| c.zh.to_string()).unwrap_or_else(|| code.to_string())
}

fn raise(env: &Env, args: RaiseArgs) -> Result<()> {
    let gps = args.gps.as_deref().map(parse_gps).transpose()?;
    let reporter = match (args.reporter.reporter, args.reporter.enterprise, args.reporter.anonymous) {
        (Some(name), _, _) => Reporter::Resident { name, phone: args.phone, household: args.household },
        (_, Some(id), _) => Reporter::Enterprise { id, contact: args.contact },
        (None, None, true) => Reporter::Anonymous,
        (None, None, false) => unreachable!("clap requires one kind of reporter"),
    };
    let source = args.source.unwrap_or(if args.visit.is_some() { Source::Visit } else { Source::WalkIn });
    let store = env.open()?;
    // A resident's problem is usually at their door: take the household's address unless the
    // walker gave another one.
    let address = match (&args.address, &reporter) {
        (Some(address), _) => address.clone(),
        (None, Reporter::Resident { household: Some(h), .. }) => store
            .households(&args.grid)?
            .into_iter()
            .find(|household| household.id == *h)
            .map(|household| household.address)
            .unwrap_or_default(),
        (None, _) => String::new(),
    };
    let request = NewRequest {
        id: None,
        grid: args.grid,
        micro_grid: args.micro_grid,
        reporter,
        address,
        gps,
        category: args.category,
        description: args.description,
        urgency: args.urgency,
        source,
        visit: args.visit,
    };
    let id = store.raise_request(&env.context(&store), request)?;
    env.emit(&json!({ "id": id }), || id.clone())
}

fn act(env: &Env, id: &str, action: Action) -> Result<()> {
    let store = env.open()?;
    let event = store.act(&env.context(&store), id, action)?;
    let status = store.request(id)?.state.status;
    env.emit(&json!({ "id": id, "event": event, "status": status }), || {
        format!("{id}: {}; now {}", describe_action(&event.action), status.as_str())
    })
}

/// A request filter from the command line, checked as far as it can be without the store.
fn filter_of(env: &Env, args: &RequestFilterArgs, text: Option<String>) -> Result<RequestFilter> {
    if let Some(code) = &args.category {
        if category(code).is_none() {
            return Err(
                invalid("category", format!("'{code}' is not a category; `gridwalk categories` lists them")).into()
            );
        }
    }
    Ok(RequestFilter {
        grids: args.grids.clone(),
        statuses: args.statuses.clone(),
        category: args.category.clone(),
        department: args.department.clone(),
        overdue_at: args.overdue.then_some(env.now),
        owed_feedback: args.owed_feedback,
        text,
        created_from: args.from.as_deref().map(|t| parse_time("from", t, false)).transpose()?,
        created_before: args.to.as_deref().map(|t| end_of(t, "to")).transpose()?,
        sort: match args.sort {
            SortOrder::Updated => RequestSort::UpdatedDesc,
            SortOrder::Deadline => RequestSort::DeadlineAsc,
            SortOrder::Created => RequestSort::CreatedDesc,
        },
        limit: 0,
        offset: 0,
    })
}

/// Grids and departments named in a filter must exist: a typo should say so, not list nothing.
fn check_filter_references(store: &Store, filter: &RequestFilter) -> Result<()> {
    if !filter.grids.is_empty() {
        let grids = store.grids()?;
        if let Some(unknown) = filter.grids.iter().find(|g| !grids.iter().any(|a| a.id == **g)) {
            return Err(CoreError::UnknownGrid(unknown.clone()).into());
        }
    }
    if let Some(department) = &filter.department {
        if !store.departments()?.iter().any(|d| d.id == *department) {
            return Err(CoreError::NotFound { kind: "department", id: department.clone() }.into());
        }
    }
    Ok(())
}

fn list(env: &Env, args: &RequestFilterArgs, text: Option<String>, page: &PageArgs) -> Result<()> {
    let filter =
        RequestFilter { limit: page.limit as usize, offset: page.offset as usize, ..filter_of(env, args, text)? };
    let store = env.open()?;
    check_filter_references(&store, &filter)?;
    let rows = store.list_requests(&filter)?;
    let total = store.count_requests(&filter)?;
    env.emit(&rows, || {
        let mut table = Table::new(&[
            "ID",
            "GRID",
            "CATEGORY",
            "STATUS",
            "URGENCY",
            "DEPARTMENT",
            "OWNER",
            "DEADLINE",
            "UPDATED",
            "DESCRIPTION",
        ]);
        for r in &rows {
            table.row(summary_cells(r, env));
        }
        let shown = if rows.is_empty() {
            format!("0 of {total} requests")
        } else {
            let first = filter.offset + 1;
            format!("{first}-{} of {total} requests", filter.offset + rows.len())
        };
        format!("{}\n{shown}", table.render())
    })
}

fn summary_cells(r: &RequestSummary, env: &Env) -> Vec<String> {
    let open = Status::parse(&r.status).is_some_and(Status::is_open);
    let mut deadline = time_text(r.deadline);
    if open && r.deadline.is_some_and(|d| d < env.now.millis()) {
        deadline.push_str(" overdue");
    }
    vec![
        r.id.clone(),
        r.grid.clone(),
        category_label(&r.category),
        r.status.clone(),
        r.urgency.clone(),
        r.department.clone().unwrap_or_default(),
        r.owner.clone(),
        deadline,
        time_text(Some(r.updated_at)),
        clip(&r.description, 40),
    ]
}

fn show(env: &Env, id: &str) -> Result<()> {
    let store = env.open()?;
    let view = store.request(id)?;
    env.emit(&view, || describe_request(&view, env))
}

fn describe_request(view: &RequestView, env: &Env) -> String {
    let (h, b, s) = (&view.header, &view.body, &view.state);
    let reporter = match &b.reporter {
        Reporter::Anonymous => "anonymous (匿名)".to_string(),
        Reporter::Resident { name, phone, household } => {
            let mut parts = vec![name.clone()];
            parts.extend(phone.clone());
            parts.extend(household.as_ref().map(|h| format!("household {h}")));
            parts.join(", ")
        }
        Reporter::Enterprise { id, contact } => match contact {
            Some(c) => format!("enterprise {id}, contact {c}"),
            None => format!("enterprise {id}"),
        },
    };
    let source = match &b.visit {
        Some(visit) => format!("{} (visit {visit})", b.source.as_str()),
        None => b.source.as_str().to_string(),
    };
    let body = fields(&[
        ("grid", h.grid.clone()),
        ("micro-grid", b.micro_grid.clone().unwrap_or_default()),
        ("category", format!("{} ({})", category_label(&b.category), b.category)),
        ("urgency", b.urgency.as_str().to_string()),
        ("source", source),
        ("reporter", reporter),
        ("address", b.place.address.clone()),
        ("gps", b.place.gps.map(|g| format!("{},{}", g.lat, g.lon)).unwrap_or_default()),
        ("description", b.description.clone()),
        ("raised", format!("{} by {} on {}", h.created_at.display(), h.created_by, h.device)),
    ]);
    let deadline =
        s.deadline.map(|d| if s.is_overdue(env.now) { format!("{} (overdue)", d.display()) } else { d.display() });
    let state = fields(&[
        ("status", s.status.as_str().to_string()),
        ("owner", s.owner.clone()),
        ("first receiver", s.first_receiver.clone()),
        ("department", s.department.clone().unwrap_or_default()),
        ("person", s.assignee.clone().unwrap_or_default()),
        ("level", s.level.map(|l| l.as_str().to_string()).unwrap_or_default()),
        ("deadline", deadline.unwrap_or_default()),
        ("merged into", s.merged_into.clone().unwrap_or_default()),
        ("rating", s.rating.map(|r| r.as_str().to_string()).unwrap_or_default()),
        ("resolved", s.resolved_at.map(|t| t.display()).unwrap_or_default()),
        ("reopened", if s.reopen_count > 0 { format!("{} times", s.reopen_count) } else { String::new() }),
        ("updated", s.updated_at.display()),
    ]);
    // Device clocks may be wrong, so the relay's first receipt of each step is shown beside it.
    let mut history = Table::new(&["#", "DEVICE TIME", "RELAY RECEIVED", "BY", "DEVICE", "APPLIED", "ACTION"]);
    for (i, entry) in view.history.iter().enumerate() {
        let e = &entry.event;
        history.row(vec![
            (i + 1).to_string(),
            e.at.display(),
            entry.relay_received_at.map(|t| time_text(Some(t))).unwrap_or_else(|| "not yet".into()),
            e.by.clone(),
            e.device.clone(),
            if entry.applied { "yes" } else { "NOT APPLIED" }.to_string(),
            describe_action(&e.action),
        ]);
    }
    format!(
        "Request {}  [{}]\n{body}\n\nState\n{state}\n\nHistory, in fold order\n{}",
        h.id,
        s.status.as_str(),
        history.render()
    )
}

/// One step of the closed loop in a line, with the seeds' name for it.
fn describe_action(action: &Action) -> String {
    let assignment_text = |a: &Assignment| {
        let who = match &a.person {
            Some(p) => format!("{} ({p})", a.department),
            None => a.department.clone(),
        };
        format!("{who}, {} level, deadline {}", a.level.as_str(), a.deadline.display())
    };
    let with_note = |label: &str, note: &str| {
        if note.trim().is_empty() {
            label.to_string()
        } else {
            format!("{label}: {note}")
        }
    };
    match action {
        Action::Collected => "收集 collected".to_string(),
        Action::Triaged { decision } => match decision {
            TriageDecision::Accept => "研判 accepted".to_string(),
            TriageDecision::MergeInto { target } => format!("研判 merged into {target}"),
            TriageDecision::Reject { reason } => format!("研判 rejected: {reason}"),
            TriageDecision::SolvedOnSpot { note } => format!("研判 solved on the spot: {note}"),
        },
        Action::Assigned { assignment } => {
            format!("交办 assigned to {}", assignment_text(assignment))
        }
        Action::Reassigned { assignment, reason } => {
            format!("reassigned to {}: {reason}", assignment_text(assignment))
        }
        Action::Escalated { level, department, reason } => match department {
            Some(d) => format!("escalated to {} level, {d}: {reason}", level.as_str()),
            None => format!("escalated to {} level: {reason}", level.as_str()),
        },
        Action::Progress { note } => format!("办理 progress: {note}"),
        Action::Resolved { note, photos } if photos.is_empty() => format!("办结 resolved: {note}"),
        Action::Resolved { note, photos } => {
            format!("办结 resolved: {note} (photos {})", photos.join(", "))
        }
        Action::FeedbackGiven { note } => with_note("反馈 resident told", note),
        Action::Rated { rating, comment } => with_note(&format!("评价 rated {}", rating.as_str()), comment),
        Action::Reopened { reason } => format!("reopened: {reason}"),
        Action::Closed { note } => with_note("closed", note),
        Action::MeetingDecision { meeting, decision } => format!("议事 {meeting}: {decision}"),
    }
}

pub fn export(env: &Env, args: ExportRequestsArgs) -> Result<()> {
    let format = match args.format {
        Some(format) => format,
        None => args
            .out
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| ExportFormat::parse(&e.to_ascii_lowercase()))
            .ok_or_else(|| invalid("format", "give --format csv, xlsx or json, or an --out file ending in one"))?,
    };
    let filter = filter_of(env, &args.filter, args.search.clone())?;
    let store = env.open()?;
    check_filter_references(&store, &filter)?;
    let report = export_requests(&store, &env.context(&store), &filter, format, &args.out)?;
    env.emit(&report, || format!("wrote {} requests to {}", report.requests, report.file))
}

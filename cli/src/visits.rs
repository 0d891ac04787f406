//! `gridwalk visit ...`: recording and reading visits (走访).

use anyhow::Result;
use gridwalk_core::docs::{GeoPoint, VisitTarget};
use gridwalk_core::store::{NewVisit, VisitFilter, VisitView};
use gridwalk_core::Timestamp;
use serde_json::json;

use crate::args::{RecordVisitArgs, VisitCommand, VisitListArgs};
use crate::table::{clip, fields, time_text, Table};
use crate::{invalid, parse_time, Env};

pub fn run(env: &Env, command: VisitCommand) -> Result<()> {
    match command {
        VisitCommand::Record(args) => record(env, args),
        VisitCommand::List(args) => list(env, &args),
        VisitCommand::Show { id } => show(env, &id),
    }
}

/// Reads `LAT,LON` (a full-width comma works too) and checks it is a place on Earth.
pub fn parse_gps(text: &str) -> Result<GeoPoint> {
    let not_a_position =
        || anyhow::Error::from(invalid("gps", format!("'{text}' is not a position; write it as 30.7,121.0")));
    let (lat, lon) = text.split_once([',', '，']).ok_or_else(not_a_position)?;
    let number = |s: &str| s.trim().parse::<f64>().map_err(|_| not_a_position());
    let point = GeoPoint { lat: number(lat)?, lon: number(lon)?, accuracy_m: None };
    point.validate()?;
    Ok(point)
}

fn record(env: &Env, args: RecordVisitArgs) -> Result<()> {
    let target = match (args.target.household, args.target.enterprise, args.target.place) {
        (Some(id), _, _) => VisitTarget::Household { id },
        (_, Some(id), _) => VisitTarget::Enterprise { id },
        (_, _, Some(address)) => VisitTarget::Place { address },
        (None, None, None) => unreachable!("clap requires one visit target"),
    };
    let visited_at = args.at.as_deref().map(|t| parse_time("at", t, false)).transpose()?;
    let gps = args.gps.as_deref().map(parse_gps).transpose()?;
    let visit = NewVisit {
        id: None,
        grid: args.grid,
        micro_grid: args.micro_grid,
        target,
        kind: args.kind,
        visited_at,
        other_walkers: args.with,
        companions: args.companions,
        notes: args.notes,
        gps,
    };
    let store = env.open()?;
    let id = store.record_visit(&env.context(&store), visit)?;
    env.emit(&json!({ "id": id }), || id.clone())
}

fn list(env: &Env, args: &VisitListArgs) -> Result<()> {
    let from = args.from.as_deref().map(|t| parse_time("from", t, false)).transpose()?;
    let before = args.to.as_deref().map(|t| end_of(t, "to")).transpose()?;
    let filter = VisitFilter {
        grid: args.grid.clone(),
        target: args.household.clone(),
        walker: args.walker.clone(),
        from,
        before,
        limit: args.page.limit as usize,
        offset: args.page.offset as usize,
    };
    let store = env.open()?;
    let visits = store.list_visits(&filter)?;
    env.emit(&visits, || {
        let mut table = Table::new(&["ID", "VISITED", "GRID", "KIND", "TO", "WALKERS", "REQUESTS", "NOTES"]);
        for v in &visits {
            let to = match &v.target_id {
                Some(id) => format!("{} {id}", v.target_kind),
                None => v.target_kind.clone(),
            };
            table.row(vec![
                v.id.clone(),
                time_text(Some(v.visited_at)),
                v.grid.clone(),
                v.kind.clone(),
                to,
                v.walkers.clone(),
                v.request_count.to_string(),
                clip(&v.notes, 40),
            ]);
        }
        format!("{}\n{} visits", table.render(), visits.len())
    })
}

/// The moment just after `text` ends: an inclusive "to" date becomes an exclusive bound.
pub fn end_of(text: &str, field: &str) -> Result<Timestamp> {
    let last = parse_time(field, text, true)?;
    Ok(Timestamp(last.0 + chrono::Duration::seconds(1)))
}

fn show(env: &Env, id: &str) -> Result<()> {
    let store = env.open()?;
    let view = store.visit(id)?;
    env.emit(&view, || describe(&view))
}

fn describe(view: &VisitView) -> String {
    let (h, b) = (&view.header, &view.body);
    let target = match &b.target {
        VisitTarget::Household { id } => format!("household {id}"),
        VisitTarget::Enterprise { id } => format!("enterprise {id}"),
        VisitTarget::Place { address } => format!("place {address}"),
    };
    let text = fields(&[
        ("grid", h.grid.clone()),
        ("micro-grid", b.micro_grid.clone().unwrap_or_default()),
        ("to", target),
        ("kind", b.kind.as_str().to_string()),
        ("visited", b.visited_at.display()),
        ("walkers", b.walkers.join(", ")),
        ("companions", b.companions.join(", ")),
        ("gps", b.gps.map(|g| format!("{},{}", g.lat, g.lon)).unwrap_or_default()),
        ("notes", b.notes.clone()),
        ("requests", b.requests_raised.join(", ")),
        ("recorded", format!("{} by {} on {}", h.created_at.display(), h.created_by, h.device)),
    ]);
    format!("Visit {}\n{text}", h.id)
}

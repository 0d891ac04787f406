//! The store itself and its reference data: `init`, `import`, `demo`, `index`, and the lists of
//! grids, households, departments and categories.

use std::path::Path;

use anyhow::Result;
use gridwalk_core::demo::{self, DemoConfig};
use gridwalk_core::import::{import_file, ImportKind};
use gridwalk_core::model::{Level, CATEGORIES};
use gridwalk_core::store::Identity;
use gridwalk_core::{CoreError, Store};
use serde::Serialize;

use crate::args::{DemoArgs, IndexCommand};
use crate::table::{time_text, Table};
use crate::{Env, Failure};

/// The seeds' rule: every grid and household is walked at least once every two weeks.
const VISIT_EVERY_DAYS: i64 = 14;

pub fn init(
    env: &Env,
    device: String,
    walker: String,
    role: Option<gridwalk_core::model::Role>,
    office: Option<String>,
) -> Result<()> {
    let identity = Identity { device, walker };
    let store = Store::create(&env.store_path, identity)?;
    if let Some(role) = role {
        store.set_role(role)?;
    }
    if let Some(office) = &office {
        store.set_office(office)?;
    }
    let identity = store.identity();
    let role = store.role()?;
    env.emit(
        &serde_json::json!({ "store": store.path(), "device": identity.device, "walker": identity.walker, "role": role.as_str() }),
        || {
            format!(
                "created {} for {} ({}) on device {}",
                store.path().display(),
                identity.walker,
                role.as_str(),
                identity.device
            )
        },
    )
}

pub fn import(env: &Env, kind: ImportKind, file: &Path) -> Result<()> {
    let mut store = env.open()?;
    let report = import_file(&mut store, kind, file)?;
    env.emit(&report, || format!("imported {} rows from {}", report.rows, report.file))
}

pub fn demo(env: &Env, args: &DemoArgs) -> Result<()> {
    let street = DemoConfig::street(args.seed, env.now.0);
    let config = DemoConfig {
        villages: args.villages.unwrap_or(street.villages),
        households: args.households.unwrap_or(street.households),
        enterprises: args.enterprises.unwrap_or(street.enterprises),
        enterprise_grids: args.enterprise_grids.unwrap_or(street.enterprise_grids),
        requests: args.requests.unwrap_or(street.requests),
        visits: args.visits.unwrap_or(street.visits),
        days: args.days.unwrap_or(street.days),
        ..street
    };
    let mut store = env.open()?;
    let report = demo::generate(&mut store, &config)?;
    env.emit(&report, || {
        format!(
            "demo town: {} grids, {} micro-grids, {} households, {} enterprises, {} walkers, {} departments, {} visits, {} requests",
            report.grids,
            report.micro_grids,
            report.households,
            report.enterprises,
            report.walkers,
            report.departments,
            report.visits,
            report.requests
        )
    })
}

pub fn index(env: &Env, command: IndexCommand) -> Result<()> {
    let store = env.open()?;
    match command {
        IndexCommand::Rebuild => {
            let documents = store.rebuild_index()?;
            env.emit(&serde_json::json!({ "documents": documents }), || {
                format!("rebuilt the index from {documents} documents")
            })
        }
        IndexCommand::Check => {
            let report = store.check()?;
            env.emit(&report, || {
                let mut text = format!(
                    "integrity: {}\ndocuments: {}\nindex rows: {}\nindex matches documents: {}\ndamaged documents: {}",
                    report.integrity,
                    report.documents,
                    report.index_rows,
                    if report.index_matches_documents { "yes" } else { "no" },
                    report.damaged.len()
                );
                // Named one by one: the hall asks whoever wrote them, or the relay's admin, about each.
                for d in &report.damaged {
                    text.push_str(&format!("\n  {}: its {} cannot be read ({})", d.doc_id, d.field, d.message));
                }
                text
            })?;
            if report.integrity != "ok" {
                return Err(Failure {
                    code: "check_failed",
                    message: format!("the database is damaged: {}", report.integrity),
                }
                .into());
            }
            if !report.index_matches_documents {
                return Err(Failure {
                    code: "check_failed",
                    message: "the index does not match the documents; run `gridwalk index rebuild`".into(),
                }
                .into());
            }
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct GridRow {
    id: String,
    name: String,
    parent: Option<String>,
    enterprise_grid: bool,
    last_visited_at: Option<i64>,
    overdue_for_visit: bool,
}

pub fn grids(env: &Env) -> Result<()> {
    let store = env.open()?;
    let last_visits = store.grid_last_visits()?;
    let cutoff = env.now.millis() - VISIT_EVERY_DAYS * 86_400_000;
    let rows: Vec<GridRow> = store
        .grids()?
        .into_iter()
        .map(|area| {
            let last = last_visits.iter().find(|(id, _)| *id == area.id).map(|(_, at)| *at);
            GridRow {
                overdue_for_visit: last.is_none_or(|t| t < cutoff),
                last_visited_at: last,
                id: area.id,
                name: area.name,
                parent: area.parent,
                enterprise_grid: area.enterprise_grid,
            }
        })
        .collect();
    env.emit(&rows, || {
        let mut table = Table::new(&["", "ID", "NAME", "PARENT", "TYPE", "LAST VISIT"]);
        for g in &rows {
            table.row(vec![
                visit_mark(g.overdue_for_visit),
                g.id.clone(),
                g.name.clone(),
                g.parent.clone().unwrap_or_default(),
                if g.enterprise_grid { "企业网格" } else { "网格" }.to_string(),
                time_text(g.last_visited_at),
            ]);
        }
        format!("{}\n{} grids; {}", table.render(), rows.len(), visit_legend())
    })
}

fn visit_mark(overdue: bool) -> String {
    if overdue { "*" } else { "" }.to_string()
}

fn visit_legend() -> String {
    format!("* not visited within {VISIT_EVERY_DAYS} days")
}

pub fn households(env: &Env, grid: &str) -> Result<()> {
    let store = env.open()?;
    if !store.grids()?.iter().any(|a| a.id == grid) {
        return Err(CoreError::UnknownGrid(grid.to_string()).into());
    }
    let places = store.places_by_last_visit(grid, env.now, VISIT_EVERY_DAYS)?;
    env.emit(&places, || {
        let mut table = Table::new(&["", "ID", "KIND", "NAME", "ADDRESS", "LAST VISIT"]);
        for p in &places {
            table.row(vec![
                visit_mark(p.overdue_for_visit),
                p.id.clone(),
                p.kind.clone(),
                p.name.clone(),
                p.address.clone(),
                time_text(p.last_visited_at),
            ]);
        }
        let due = places.iter().filter(|p| p.overdue_for_visit).count();
        format!(
            "{}\n{} households and enterprises, {due} due for a visit; {}",
            table.render(),
            places.len(),
            visit_legend()
        )
    })
}

pub fn departments(env: &Env) -> Result<()> {
    let store = env.open()?;
    let departments = store.departments()?;
    env.emit(&departments, || {
        let mut table = Table::new(&["ID", "NAME", "LEVEL"]);
        for d in &departments {
            let level = match d.level {
                Level::Village => "village 村级",
                Level::Town => "town 镇级",
                Level::County => "county 县级",
            };
            table.row(vec![d.id.clone(), d.name.clone(), level.to_string()]);
        }
        table.render()
    })
}

pub fn publish_rosters(env: &Env, grids: &[String]) -> Result<()> {
    let store = env.open()?;
    let report = store.publish_rosters(&env.context(&store), grids)?;
    env.emit(&report, || {
        format!(
            "rosters published: {} new, {} changed, {} unchanged; the next sync sends them",
            report.created, report.updated, report.unchanged
        )
    })
}

/// Needs no store: the file carries everything it is checked against.
pub fn verify_evidence(env: &Env, file: &std::path::Path) -> Result<()> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let report = gridwalk_core::evidence::verify_evidence(&text)?;
    env.emit(&report, || {
        let time = |ms: i64| gridwalk_core::Timestamp::from_millis(ms).map(|t| t.display()).unwrap_or_default();
        let mut out = format!(
            "the evidence holds: request {} ({}), {} receipts received by the relay from {} to {}, status {}\n\
             the relay's chain head when exported: receipt {} {} (compare it with the relay's own: a file whose chain was recomputed passes every check here but that one)\n",
            report.number.as_deref().unwrap_or("-"),
            report.document,
            report.receipts,
            time(report.first_received_at),
            time(report.last_received_at),
            report.status.as_deref().unwrap_or("-"),
            report.head_seq,
            report.head_chain,
        );
        for s in &report.steps {
            out.push_str(&format!("  {}  {} by {} on {}\n", time(s.at), s.step, s.by, s.device));
        }
        out.trim_end().to_string()
    })
}

pub fn staff(env: &Env) -> Result<()> {
    let store = env.open()?;
    let staff = store.staff()?;
    env.emit(&staff, || {
        let mut table = Table::new(&["ID", "NAME", "ROLE", "PIN"]);
        for s in &staff {
            table.row(vec![s.id.clone(), s.name.clone(), s.role.clone(), if s.has_pin { "set" } else { "-" }.into()]);
        }
        table.render()
    })
}

pub fn set_pin(env: &Env, person: &str, pin: &str, my_pin: &str) -> Result<()> {
    let store = env.open()?;
    let request = store.staff_pin_request(&env.context(&store), person, pin, my_pin)?;
    change_staff_at_relay(&store, &request)?;
    env.emit(&serde_json::json!({ "person": person, "pin": "set" }), || {
        format!("PIN set for {person} at the relay; the other hall PCs learn it on their next sync")
    })
}

pub fn set_staff_office(env: &Env, person: &str, office: &str, my_pin: &str) -> Result<()> {
    let store = env.open()?;
    let request = store.staff_office_request(&env.context(&store), person, office, my_pin)?;
    change_staff_at_relay(&store, &request)?;
    env.emit(&serde_json::json!({ "person": person, "office": office }), || {
        format!("{person} now resolves what is assigned to {office}")
    })
}

/// Asks the relay to change the staff list, then pulls the change into this store.
fn change_staff_at_relay(store: &Store, request: &gridwalk_core::sync::protocol::StaffChangeRequest) -> Result<()> {
    let link = store.relay_link()?.ok_or(gridwalk_core::CoreError::NotJoined)?;
    gridwalk_transport::client::change_staff(&link, request)?;
    gridwalk_transport::client::sync_over_http(store, &std::sync::atomic::AtomicBool::new(false), &mut |_| {})?;
    Ok(())
}

/// The categories are fixed in the core, so this needs no store.
pub fn categories(env: &Env) -> Result<()> {
    env.emit(&CATEGORIES, || {
        let mut table = Table::new(&["CODE", "类别", "CATEGORY"]);
        for c in CATEGORIES {
            table.row(vec![c.code.to_string(), c.zh.to_string(), c.en.to_string()]);
        }
        table.render()
    })
}

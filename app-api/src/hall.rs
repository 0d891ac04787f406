//! The hall console's commands: the inbox, triage help, the monthly list and its export, the
//! dashboard with the list behind each figure, and the admin's read-only lists. Each is a
//! translation onto `gridwalk_core::report` and the store; the definitions of every figure live
//! in the core (`core/src/report/mod.rs`).

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use gridwalk_core::lifecycle::Status;
use gridwalk_core::report::{self, DashboardQuery, Drill, Month, Scope};
use gridwalk_core::store::{RequestFilter, RequestSort, RequestSummary, Store};
use gridwalk_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::commands::{invalid, out, parse};
use crate::dto::{RequestPage, RequestRow};
use crate::{App, CommandError, CommandResult};

pub(crate) fn dispatch(app: &App, name: &str, args: Value) -> CommandResult<Value> {
    match name {
        "inbox" => out(inbox(app, parse(args)?)?),
        "duplicates" => out(duplicates(app, parse(args)?)?),
        "dashboard" => dashboard(app, parse(args)?),
        "kpi_changes" => kpi_changes(app, parse(args)?),
        "drill" => drill(app, args),
        "monthly_list" => monthly(app, parse(args)?),
        "export_monthly_xlsx" => out(export_monthly(app, parse(args)?)?),
        "admin_lists" => out(admin_lists(app)?),
        "admin_save_department" => out(admin_save_department(app, parse(args)?)?),
        "admin_assign_walker" => out(admin_assign_walker(app, parse(args)?)?),
        "admin_save_quick_phrases" => out(admin_save_quick_phrases(app, parse(args)?)?),
        other => crate::commands::unknown(other),
    }
}

// ----- shared ----------------------------------------------------------------------------------

fn names(store: &Store) -> CommandResult<HashMap<String, String>> {
    Ok(store.walkers()?.into_iter().map(|w| (w.id, w.name)).collect())
}

/// A list row with the owner as a display name where this device knows her.
fn row(s: RequestSummary, now: i64, names: &HashMap<String, String>) -> RequestRow {
    let overdue = Status::parse(&s.status).is_some_and(|st| st.is_open()) && s.deadline.is_some_and(|d| d < now);
    RequestRow {
        owner: names.get(&s.owner).cloned().unwrap_or(s.owner),
        id: s.id,
        grid: s.grid,
        status: s.status,
        category: s.category,
        urgency: s.urgency,
        department: s.department,
        deadline: s.deadline,
        updated_at: s.updated_at,
        created_at: s.created_at,
        address: s.address,
        description: s.description,
        overdue,
        number: s.number,
    }
}

fn time_arg(field: &str, ms: Option<i64>) -> CommandResult<Option<Timestamp>> {
    ms.map(|m| Timestamp::from_millis(m).map_err(|e| invalid(field, e.to_string()))).transpose()
}

// ----- inbox -----------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct InboxArgs {
    grid: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// Requests waiting for the hall: new ones and reopened ones, newest first.
fn inbox(app: &App, a: InboxArgs) -> CommandResult<RequestPage> {
    let store = app.store()?;
    let now = app.now().millis();
    let filter = RequestFilter {
        grids: a.grid.into_iter().collect(),
        statuses: vec![Status::New, Status::Reopened],
        sort: RequestSort::CreatedDesc,
        limit: a.limit.unwrap_or(50).clamp(1, 500),
        offset: a.offset.unwrap_or(0),
        ..RequestFilter::default()
    };
    let names = names(&store)?;
    let total = store.count_requests(&filter)?;
    let items = store.list_requests(&filter)?.into_iter().map(|s| row(s, now, &names)).collect();
    Ok(RequestPage { items, total })
}

// ----- duplicates ------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct DuplicatesArgs {
    id: String,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Candidate {
    #[serde(flatten)]
    row: RequestRow,
    /// 0..1: how alike place and text are.
    score: f64,
    place_similarity: f64,
    text_similarity: f64,
}

/// The character bigrams of a text, ignoring spaces and punctuation (Chinese has no words to
/// split on; two characters are what a place or a problem is usually named by).
fn bigrams(text: &str) -> HashSet<(char, char)> {
    let chars: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).flat_map(|c| c.to_lowercase()).collect();
    if chars.len() == 1 {
        return HashSet::from([(chars[0], ' ')]);
    }
    chars.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Dice coefficient of two texts' bigrams: 1 for the same text, 0 for nothing in common.
pub(crate) fn similarity(a: &str, b: &str) -> f64 {
    let (x, y) = (bigrams(a), bigrams(b));
    if x.is_empty() || y.is_empty() {
        return 0.0;
    }
    let common = x.intersection(&y).count();
    2.0 * common as f64 / (x.len() + y.len()) as f64
}

/// Likely duplicates of a request: open requests of the same grid and category (not the request
/// itself), ranked by how alike their address and description are, the most alike first.
fn duplicates(app: &App, a: DuplicatesArgs) -> CommandResult<Vec<Candidate>> {
    let store = app.store()?;
    let now = app.now().millis();
    let view = store.request(&a.id)?;
    let names = names(&store)?;
    let filter = RequestFilter {
        grids: vec![view.header.grid.clone()],
        category: Some(view.body.category.clone()),
        statuses: vec![Status::New, Status::Accepted, Status::Assigned, Status::Reopened],
        sort: RequestSort::CreatedDesc,
        limit: 500,
        ..RequestFilter::default()
    };
    let address = &view.body.place.address;
    let description = &view.body.description;
    let mut out: Vec<Candidate> = store
        .list_requests(&filter)?
        .into_iter()
        .filter(|s| s.id != a.id)
        .map(|s| {
            let place_similarity = similarity(address, &s.address);
            let text_similarity = similarity(description, &s.description);
            let score = 0.5 * place_similarity + 0.5 * text_similarity;
            Candidate { row: row(s, now, &names), score, place_similarity, text_similarity }
        })
        .filter(|c| c.score > 0.0)
        .collect();
    out.sort_by(|x, y| y.score.total_cmp(&x.score).then(y.row.created_at.cmp(&x.row.created_at)));
    out.truncate(a.limit.unwrap_or(5).clamp(1, 50));
    Ok(out)
}

// ----- dashboard and drilling down ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct DashboardArgs {
    #[serde(default = "all")]
    scope: Scope,
    from: Option<i64>,
    to: Option<i64>,
}

fn all() -> Scope {
    Scope::All
}

fn query(app: &App, a: &DashboardArgs) -> CommandResult<DashboardQuery> {
    Ok(DashboardQuery {
        scope: a.scope.clone(),
        from: time_arg("from", a.from)?,
        to: time_arg("to", a.to)?,
        now: app.now(),
    })
}

fn dashboard(app: &App, a: DashboardArgs) -> CommandResult<Value> {
    let store = app.store()?;
    let q = query(app, &a)?;
    out(report::dashboard(&store, &q)?)
}

/// The dashboard's headline figures a week and a month before now, for the change beside each
/// KPI. Asked apart from the dashboard: it folds the requests that changed since then again, so
/// the dashboard itself stays as quick as its running counts. That costs what the month's
/// activity costs (about 3 s for a whole 100k-request city, `gridwalk-bench report`), so the
/// answer is kept for the hour: the dashboard asks again after every sync, and "a week ago"
/// measured from a moment within the same hour says the same.
fn kpi_changes(app: &App, a: DashboardArgs) -> CommandResult<Value> {
    const HOUR_MS: i64 = 3_600_000;
    let q = query(app, &a)?;
    let store = app.store()?;
    // The store is part of what was asked: a device enrolled again has another one.
    let key = format!("{}|{:?}|{:?}|{:?}|{}", store.identity().device, a.scope, a.from, a.to, q.now.millis() / HOUR_MS);
    if let Ok(kept) = app.kpi_changes.lock() {
        if let Some((k, v)) = kept.as_ref() {
            if *k == key {
                return Ok(v.clone());
            }
        }
    }
    let value = out(report::kpi_changes(&store, &q)?)?;
    if let Ok(mut kept) = app.kpi_changes.lock() {
        *kept = Some((key, value.clone()));
    }
    Ok(value)
}

#[derive(Debug, Deserialize)]
struct PageArgs {
    limit: Option<usize>,
    offset: Option<usize>,
}

/// The list behind one figure: `{scope, from?, to?, what, measure?, slice?, limit?, offset?}`,
/// `what` and its fields as `report::Drill` reads them.
fn drill(app: &App, args: Value) -> CommandResult<Value> {
    let args = if args.is_null() { json!({}) } else { args };
    let d: DashboardArgs = parse(args.clone())?;
    let page: PageArgs = parse(args.clone())?;
    let mut what = args;
    if let Some(map) = what.as_object_mut() {
        for key in ["scope", "from", "to", "limit", "offset"] {
            map.remove(key);
        }
    }
    let what: Drill = parse(what)?;
    let store = app.store()?;
    let q = query(app, &d)?;
    let list = report::drill(&store, &q, &what)?;
    let total = list.ids.len();
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(50).clamp(1, 500);
    let ids: Vec<String> = list.ids.iter().skip(offset).take(limit).cloned().collect();
    let now = app.now();
    let items: Vec<Value> = match list.kind {
        "request" => {
            let names = names(&store)?;
            let mut items = Vec::new();
            for id in &ids {
                let v = store.request(id)?;
                items.push(
                    serde_json::to_value(RequestRow {
                        id: v.header.id.clone(),
                        grid: v.header.grid.clone(),
                        status: v.state.status.as_str().into(),
                        category: v.body.category.clone(),
                        urgency: v.body.urgency.as_str().into(),
                        department: v.state.department.clone(),
                        owner: names.get(&v.state.owner).cloned().unwrap_or_else(|| v.state.owner.clone()),
                        deadline: v.state.deadline.map(|t| t.millis()),
                        updated_at: v.state.updated_at.millis(),
                        created_at: v.header.created_at.millis(),
                        address: v.body.place.address.clone(),
                        description: v.body.description.clone(),
                        overdue: v.state.is_overdue(now),
                        number: v.body.number.clone(),
                    })
                    .unwrap_or(Value::Null),
                );
            }
            items
        }
        "grid" => {
            let areas: HashMap<String, _> = store.areas()?.into_iter().map(|a| (a.id.clone(), a)).collect();
            let last: HashMap<String, i64> = store.grid_last_visits()?.into_iter().collect();
            ids.iter()
                .map(|id| {
                    let area = areas.get(id);
                    let village =
                        area.and_then(|a| a.parent.as_ref()).and_then(|p| areas.get(p)).map(|v| v.name.clone());
                    json!({ "id": id, "name": area.map(|a| a.name.clone()).unwrap_or_else(|| id.clone()),
                            "village": village, "last_visited_at": last.get(id) })
                })
                .collect()
        }
        _ => {
            // Households or enterprises: their names and last visits from the grids of the scope.
            let wanted: HashSet<&String> = ids.iter().collect();
            let grids = match &d.scope {
                Scope::Grid(g) => vec![g.clone()],
                Scope::Village(v) => {
                    store.areas()?.into_iter().filter(|a| a.parent.as_deref() == Some(v)).map(|a| a.id).collect()
                }
                Scope::All => store.grids()?.into_iter().map(|a| a.id).collect(),
            };
            let mut found = HashMap::new();
            for g in grids {
                for p in store.places_by_last_visit(&g, now, report::COVERAGE_DAYS)? {
                    if wanted.contains(&p.id) {
                        found.insert(p.id.clone(), p);
                    }
                }
            }
            ids.iter()
                .map(|id| match found.get(id) {
                    Some(p) => json!({ "id": p.id, "name": p.name, "address": p.address, "grid": p.grid,
                                       "last_visited_at": p.last_visited_at }),
                    None => json!({ "id": id, "name": id, "address": "", "grid": null, "last_visited_at": null }),
                })
                .collect()
        }
    };
    Ok(json!({ "kind": list.kind, "total": total, "ids": list.ids, "items": items }))
}

// ----- the monthly list ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct MonthlyArgs {
    month: String,
    #[serde(default = "all")]
    scope: Scope,
}

fn monthly(app: &App, a: MonthlyArgs) -> CommandResult<Value> {
    let store = app.store()?;
    let month = Month::parse(&a.month)?;
    out(report::monthly_list(&store, &a.scope, month, app.now())?)
}

#[derive(Debug, Serialize)]
struct ExportedFile {
    /// Where the file was saved on this device.
    path: String,
    file_name: String,
    sheets: Vec<String>,
    requests: usize,
    data_base64: String,
}

/// A file name from a scope's name: no path separators or characters Windows refuses.
fn safe_name(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| if "/\\:*?\"<>|".contains(c) || c.is_control() || c.is_whitespace() { '_' } else { c })
        .collect();
    let s = s.trim_matches(|c| c == '.' || c == '_').to_string();
    if s.is_empty() {
        "list".into()
    } else {
        s.chars().take(60).collect()
    }
}

fn export_monthly(app: &App, a: MonthlyArgs) -> CommandResult<ExportedFile> {
    let store = app.store()?;
    let month = Month::parse(&a.month)?;
    let list = report::monthly_list(&store, &a.scope, month, app.now())?;
    let ctx = crate::commands::context(app, &store)?;
    let dir = app.data_dir().join("exports");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CommandError::new("io", format!("cannot create {}: {e}", dir.display())))?;
    let file_name = format!("驻网办事清单_{}_{}.xlsx", safe_name(&list.scope_name), month.key());
    let path = dir.join(&file_name);
    let written = report::export_monthly_xlsx(&store, &ctx, &list, &path)?;
    drop(store);
    let bytes =
        std::fs::read(&path).map_err(|e| CommandError::new("io", format!("cannot read {}: {e}", path.display())))?;
    Ok(ExportedFile {
        path: path.display().to_string(),
        file_name,
        sheets: written.sheets,
        requests: written.requests,
        data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

// ----- admin -----------------------------------------------------------------------------------

/// The reference lists as the hall keeps them: villages with their grids, offices, walkers with
/// their grids. Read-only for now.
fn admin_lists(app: &App) -> CommandResult<Value> {
    let store = app.store()?;
    let areas = store.areas()?;
    let villages: Vec<Value> = areas
        .iter()
        .filter(|a| a.kind.as_str() == "village")
        .map(|v| {
            let grids: Vec<Value> = areas
                .iter()
                .filter(|g| g.kind.as_str() == "grid" && g.parent.as_deref() == Some(&v.id))
                .map(|g| json!({ "id": g.id, "name": g.name, "enterprise_grid": g.enterprise_grid }))
                .collect();
            json!({ "id": v.id, "name": v.name, "grids": grids })
        })
        .collect();
    let grids: Vec<Value> = areas
        .iter()
        .filter(|g| g.kind.as_str() == "grid")
        .map(|g| {
            let village =
                g.parent.as_ref().and_then(|p| areas.iter().find(|a| &a.id == p && a.kind.as_str() == "village"));
            json!({ "id": g.id, "name": g.name, "enterprise_grid": g.enterprise_grid,
                    "village": village.map(|v| v.id.clone()), "village_name": village.map(|v| v.name.clone()) })
        })
        .collect();
    let departments: Vec<Value> = store
        .departments()?
        .into_iter()
        .map(|d| json!({ "id": d.id, "name": d.name, "level": d.level.as_str() }))
        .collect();
    let walkers: Vec<Value> = store
        .walkers()?
        .into_iter()
        .map(|w| json!({ "id": w.id, "name": w.name, "phone": w.phone, "role": w.role, "work_group": w.work_group, "grids": w.grids }))
        .collect();
    // Records this device holds but cannot read (written by an older relay or a bug): the hall
    // sees how many and which, to ask about each.
    let damaged = store.damaged_documents()?;
    Ok(json!({ "villages": villages, "grids": grids, "departments": departments, "walkers": walkers,
               "damaged": damaged }))
}

// ----- admin writes -----------------------------------------------------------------------------

/// Only a hall or admin device changes who does what; a walker's phone is refused before
/// anything is written.
fn require_hall(store: &Store) -> CommandResult<()> {
    match store.relay_link()? {
        Some(link) if link.role == "hall" || link.role == "admin" => Ok(()),
        Some(_) => {
            Err(CommandError::new("forbidden", "only a hall or admin device changes offices and grid assignments"))
        }
        None => Err(CommandError::new("not_enrolled", "enrol this device first")),
    }
}

#[derive(Debug, Deserialize)]
struct SaveDepartmentArgs {
    /// Absent for a new office: the id is made here.
    id: Option<String>,
    name: String,
    level: String,
}

fn admin_save_department(app: &App, a: SaveDepartmentArgs) -> CommandResult<Value> {
    let store = app.store()?;
    require_hall(&store)?;
    let level = gridwalk_core::model::Level::parse(&a.level)
        .ok_or_else(|| invalid("level", format!("'{}' is not village, town or county", a.level)))?;
    let id = match a.id.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => format!("dept-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
    };
    let ctx = crate::commands::context(app, &store)?;
    let published =
        store.save_department(&ctx, &gridwalk_core::model::Department { id: id.clone(), name: a.name, level })?;
    // The republished rosters are waiting to go up: the sync worker looks now.
    app.sync.nudge();
    Ok(json!({ "id": id, "published": published }))
}

#[derive(Debug, Deserialize)]
struct AssignWalkerArgs {
    walker: String,
    grids: Vec<String>,
}

fn admin_assign_walker(app: &App, a: AssignWalkerArgs) -> CommandResult<Value> {
    let store = app.store()?;
    require_hall(&store)?;
    let ctx = crate::commands::context(app, &store)?;
    let published = store.assign_walker_grids(&ctx, &a.walker, &a.grids)?;
    // The republished rosters are waiting to go up: the sync worker looks now.
    app.sync.nudge();
    Ok(json!({ "walker": a.walker, "published": published }))
}

#[derive(Debug, Deserialize)]
struct QuickPhrasesArgs {
    phrases: Vec<String>,
}

/// The hall's quick phrases for visit notes, sent to every grid's phones in its roster.
fn admin_save_quick_phrases(app: &App, a: QuickPhrasesArgs) -> CommandResult<Value> {
    let store = app.store()?;
    require_hall(&store)?;
    let ctx = crate::commands::context(app, &store)?;
    let published = store.save_quick_phrases(&ctx, &a.phrases)?;
    // The republished rosters are waiting to go up: the sync worker looks now.
    app.sync.nudge();
    Ok(json!({ "phrases": store.quick_phrases()?, "published": published }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_of_texts() {
        assert_eq!(similarity("马社村3组路灯", "马社村3组路灯"), 1.0);
        assert_eq!(similarity("abc", ""), 0.0);
        assert!(
            similarity("马社村3组门口路灯不亮", "马社村3组路灯坏了")
                > similarity("马社村3组门口路灯不亮", "新华路垃圾桶满溢")
        );
        assert_eq!(safe_name("马社村/3:组"), "马社村_3_组");
    }
}

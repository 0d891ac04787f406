//! `gridwalk report ...`: the leader's dashboard, the list behind any of its figures, and the
//! monthly list (驻网办事清单) on screen or as XLSX. All from the index (see `gridwalk_core::report`);
//! `--now` sets the moment overdue and visit coverage are judged at.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use gridwalk_core::report::{self, DashboardQuery, Drill, Measure, Month, Scope, Slice};
use gridwalk_core::Timestamp;
use serde_json::json;

use crate::table::{clip, time_text, Table};
use crate::{invalid, parse_time, Env};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Resolution, on-time and satisfaction rates; counts by category, office, grid and month;
    /// overdue requests; grids, households and enterprises not walked within 14 days.
    Dashboard(DashboardArgs),
    /// The ids behind one figure of the dashboard (the same scope and period options).
    Drill(DrillArgs),
    /// The monthly list (驻网办事清单) of a grid, a village or the whole street.
    Monthly(MonthlyArgs),
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// One grid.
    #[arg(long, conflicts_with = "village")]
    pub grid: Option<String>,
    /// The grids of one village (村/社区).
    #[arg(long)]
    pub village: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        match (&self.grid, &self.village) {
            (Some(g), _) => Scope::Grid(g.clone()),
            (None, Some(v)) => Scope::Village(v.clone()),
            (None, None) => Scope::All,
        }
    }
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Only requests raised on or after this day, e.g. 2026-10-01.
    #[arg(long)]
    pub from: Option<String>,
    /// Only requests raised on or before this day (the whole day counts).
    #[arg(long)]
    pub to: Option<String>,
}

impl DashboardArgs {
    fn query(&self, now: Timestamp) -> Result<DashboardQuery> {
        let from = self.from.as_deref().map(|t| parse_time("from", t, false)).transpose()?;
        // The end of the given day, exclusive: one second after 23:59:59.
        let to = self
            .to
            .as_deref()
            .map(|t| parse_time("to", t, true))
            .transpose()?
            .map(|t| Timestamp(t.0 + chrono::Duration::seconds(1)));
        Ok(DashboardQuery { scope: self.scope.scope(), from, to, now })
    }
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub dashboard: DashboardArgs,
    /// total, untriaged, handled, resolved, unresolved, resolved_with_deadline, on_time, late,
    /// rated, satisfied, not_satisfied, overdue; or grids_not_walked,
    /// enterprise_grids_not_walked, households_not_visited, enterprises_not_visited.
    pub figure: String,
    /// Within one category (code).
    #[arg(long)]
    pub category: Option<String>,
    /// Within one office (department id); `none` for requests not assigned yet.
    #[arg(long)]
    pub department: Option<String>,
    /// Within one grid of the scope.
    #[arg(long = "in-grid")]
    pub in_grid: Option<String>,
    /// Raised in this month, e.g. 2026-10.
    #[arg(long)]
    pub month: Option<String>,
    /// Resolved in this month, e.g. 2026-10.
    #[arg(long)]
    pub resolved_in: Option<String>,
}

#[derive(Debug, Args)]
pub struct MonthlyArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// The month, e.g. 2026-10.
    #[arg(long)]
    pub month: String,
    /// Also write the list as an XLSX workbook: a summary sheet and a sheet per grid.
    #[arg(long)]
    pub xlsx: Option<PathBuf>,
}

pub fn run(env: &Env, command: ReportCommand) -> Result<()> {
    match command {
        ReportCommand::Dashboard(args) => dashboard(env, &args),
        ReportCommand::Drill(args) => drill(env, &args),
        ReportCommand::Monthly(args) => monthly(env, &args),
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "—".into())
}

fn dashboard(env: &Env, args: &DashboardArgs) -> Result<()> {
    let q = args.query(env.now)?;
    let store = env.open()?;
    let d = report::dashboard(&store, &q)?;
    env.emit(&d, || {
        let f = &d.figures;
        let c = &d.coverage;
        let mut out = vec![
            format!(
                "办结率 resolution   {}  ({} of {} handled; {} raised, {} awaiting triage)",
                percent(f.resolution_rate),
                f.resolved,
                f.handled,
                f.total,
                f.untriaged
            ),
            format!("按期办结 on time    {}  ({} of {} with a deadline)", percent(f.on_time_rate), f.on_time, f.resolved_with_deadline),
            format!("满意率 satisfied    {}  ({} of {} rated)", percent(f.satisfaction_rate), f.satisfied, f.rated),
            format!("逾期 overdue        {}", f.overdue),
            format!(
                "走访覆盖 coverage   {} of {} grids, {} of {} enterprise grids, {} of {} households, {} of {} enterprises not walked within {} days",
                c.grids_not_walked,
                c.grids,
                c.enterprise_grids_not_walked,
                c.enterprise_grids,
                c.households_not_visited,
                c.households,
                c.enterprises_not_visited,
                c.enterprises,
                c.days
            ),
        ];
        for (title, rows) in [("类别 category", &d.by_category), ("责任科室 office", &d.by_department), ("网格 grid", &d.by_grid)] {
            let mut t = Table::new(&[title, "raised", "resolved", "办结率", "overdue", "满意率"]);
            for b in rows {
                t.row(vec![
                    clip(&b.label, 24),
                    b.figures.total.to_string(),
                    b.figures.resolved.to_string(),
                    percent(b.figures.resolution_rate),
                    b.figures.overdue.to_string(),
                    percent(b.figures.satisfaction_rate),
                ]);
            }
            out.push(String::new());
            out.push(t.render());
        }
        let mut t = Table::new(&["月份 month", "raised", "resolved of them", "办结率", "resolved that month"]);
        for p in &d.by_month {
            t.row(vec![
                p.month.clone(),
                p.figures.total.to_string(),
                p.figures.resolved.to_string(),
                percent(p.figures.resolution_rate),
                p.resolved_in_month.to_string(),
            ]);
        }
        out.push(String::new());
        out.push(t.render());
        out.join("\n")
    })
}

fn drill(env: &Env, args: &DrillArgs) -> Result<()> {
    let q = args.dashboard.query(env.now)?;
    let what = match args.figure.as_str() {
        "grids_not_walked" => Drill::GridsNotWalked,
        "enterprise_grids_not_walked" => Drill::EnterpriseGridsNotWalked,
        "households_not_visited" => Drill::HouseholdsNotVisited,
        "enterprises_not_visited" => Drill::EnterprisesNotVisited,
        other => {
            let measure = Measure::parse(other)
                .ok_or_else(|| invalid("figure", format!("'{other}' is not a figure of the dashboard")))?;
            let slices = [
                args.category.clone().map(Slice::Category),
                args.department.clone().map(|d| Slice::Department(if d == "none" { None } else { Some(d) })),
                args.in_grid.clone().map(Slice::Grid),
                args.month.as_deref().map(|m| Month::parse(m).map(|m| Slice::Month(m.key()))).transpose()?,
                args.resolved_in
                    .as_deref()
                    .map(|m| Month::parse(m).map(|m| Slice::ResolvedInMonth(m.key())))
                    .transpose()?,
            ];
            let mut given = slices.into_iter().flatten();
            let slice = given.next().unwrap_or(Slice::All);
            if given.next().is_some() {
                return Err(invalid(
                    "slice",
                    "give at most one of --category, --department, --in-grid, --month, --resolved-in",
                )
                .into());
            }
            Drill::Requests { measure, slice }
        }
    };
    let store = env.open()?;
    let list = report::drill(&store, &q, &what)?;
    env.emit(&json!({ "figure": what, "kind": list.kind, "count": list.ids.len(), "ids": list.ids }), || {
        let mut lines = vec![format!("{} {}(s)", list.ids.len(), list.kind)];
        lines.extend(list.ids.iter().cloned());
        lines.join("\n")
    })
}

fn monthly(env: &Env, args: &MonthlyArgs) -> Result<()> {
    let month = Month::parse(&args.month)?;
    let store = env.open()?;
    let list = report::monthly_list(&store, &args.scope.scope(), month, env.now)?;
    let written = match &args.xlsx {
        Some(path) => Some(report::export_monthly_xlsx(&store, &env.context(&store), &list, path)?),
        None => None,
    };
    let value = json!({ "list": &list, "xlsx": &written });
    env.emit(&value, || {
        let mut out =
            vec![format!("{} {} 驻网办事清单: {} requests", list.scope_name, list.month.label(), list.rows.len())];
        let mut t = Table::new(&["网格", "类别", "责任科室", "期限", "完成情况", "诉求"]);
        for r in &list.rows {
            t.row(vec![
                clip(&r.grid_name, 16),
                r.category_name.clone(),
                r.department_name.clone(),
                time_text(r.deadline),
                r.completion_name.to_string(),
                clip(&r.description, 30),
            ]);
        }
        out.push(t.render());
        let mut s = Table::new(&["网格", "总数", "已办结", "办理中", "已逾期", "待研判", "办结率"]);
        for g in list.grids.iter().chain(std::iter::once(&list.total)) {
            s.row(vec![
                clip(&g.grid_name, 16),
                g.total.to_string(),
                g.resolved.to_string(),
                g.in_progress.to_string(),
                g.overdue.to_string(),
                g.untriaged.to_string(),
                percent(g.resolution_rate),
            ]);
        }
        out.push(String::new());
        out.push(s.render());
        if let Some(w) = &written {
            out.push(format!("wrote {} ({} sheets)", w.file, w.sheets.len()));
        }
        out.join("\n")
    })
}

//! Reports for the hall console and the leader: the dashboard (办结率, on-time and satisfaction
//! rates, counts by category, office and grid, the monthly trend, visit coverage), the list behind
//! every figure, and the monthly list (驻网办事清单) with its XLSX export.
//!
//! Everything here is computed from the index tables (`request_index`, `last_visit`) and the
//! reference tables (`areas`, `households`, `enterprises`, `departments`), never by loading a
//! document, so a report costs what the rows it reads cost. The moment "now" is always a
//! parameter: nothing here reads a clock.
//!
//! # The request set of a report
//!
//! A dashboard looks at the requests of its [`Scope`] (the whole store, one village's grids, or
//! one grid) whose creation time lies in `[from, to)` when those bounds are given. Every figure
//! is counted over that set; "resolved in month m" is also counted within it.
//!
//! # Definitions
//!
//! A request's state comes from the lifecycle fold as the index holds it:
//!
//! - **resolved (已办结)**: it has a resolution time (`resolved_at`): resolved by an office or solved
//!   on the spot at triage, and not reopened since. Feedback, a satisfied rating or closing after
//!   the resolution keep it resolved; reopening (by the hall or a "not satisfied" rating) takes it
//!   back out until it is resolved again.
//! - **handled (受理)**: accepted for handling — it is resolved, or it is open after triage
//!   (`accepted`, `assigned`, `reopened`). Requests still waiting for triage (`new`), rejected,
//!   merged into another request, and closed after a rejection or merge are not handled.
//! - **办结率 (resolution rate)** = resolved / handled.
//! - **on time (按期办结)**: resolved with a deadline, and resolved at or before that deadline (the
//!   deadline of the latest assignment). **On-time rate** = on time / resolved with a deadline;
//!   requests solved on the spot have no deadline and are in neither count.
//! - **rated**: the request has a rating (its latest applied one). **满意率 (satisfaction rate)** =
//!   rated satisfied or basically satisfied / rated.
//! - **overdue (逾期)**: still open (`new`, `accepted`, `assigned`, `reopened`) with a deadline before
//!   `now` (as `RequestState::is_overdue`).
//! - **months** are calendar months in China Standard Time (UTC+8, which has had no daylight
//!   saving since 1991), keyed `YYYY-MM`.
//! - **visit coverage**: a grid, household or enterprise is covered when its latest visit is at
//!   or after `now - 14 days` ([`COVERAGE_DAYS`]). Household grids and enterprise grids
//!   (企业网格) are counted separately.
//!
//! Every number in a [`Dashboard`] names the list behind it as a [`Drill`]; [`drill`] returns
//! that list (request ids, or grid, household or enterprise ids) with the same predicates.

mod monthly;

pub use monthly::{
    export_monthly_xlsx, monthly_list, write_monthly_xlsx, Completion, GridSummary, Month, MonthlyList, MonthlyRow,
    XlsxReport, GRID_HEADERS, SUMMARY_HEADERS, SUMMARY_SHEET,
};

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::model::category;
use crate::store::Store;
use crate::time::Timestamp;

/// A grid, household or enterprise is covered when visited within this many days before `now`.
pub const COVERAGE_DAYS: i64 = 14;

/// China Standard Time, in milliseconds east of UTC: months of reports are calendar months there.
pub(crate) const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// Which part of the street a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Scope {
    /// Everything in the store: the whole street or town.
    All,
    /// The grids whose parent is this village (村/社区).
    Village(String),
    /// One grid (household or enterprise grid).
    Grid(String),
}

/// What a dashboard is asked for.
#[derive(Debug, Clone)]
pub struct DashboardQuery {
    pub scope: Scope,
    /// Only requests created at or after this moment.
    pub from: Option<Timestamp>,
    /// Only requests created before this moment.
    pub to: Option<Timestamp>,
    /// The moment overdue and coverage are judged at.
    pub now: Timestamp,
}

impl DashboardQuery {
    pub fn new(scope: Scope, now: Timestamp) -> Self {
        DashboardQuery { scope, from: None, to: None, now }
    }
}

/// The counts one set of requests gives, with the three rates derived from them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Every request of the set (raised).
    pub total: i64,
    /// Waiting for triage (待研判).
    pub untriaged: i64,
    /// Accepted for handling: the resolution rate's denominator.
    pub handled: i64,
    pub resolved: i64,
    /// Handled and not resolved (in progress, 办理中).
    pub unresolved: i64,
    /// Resolved, with a deadline: the on-time rate's denominator.
    pub resolved_with_deadline: i64,
    pub on_time: i64,
    pub late: i64,
    pub rated: i64,
    /// Satisfied or basically satisfied.
    pub satisfied: i64,
    pub not_satisfied: i64,
    pub overdue: i64,
    /// resolved / handled (办结率); `None` when nothing was handled.
    pub resolution_rate: Option<f64>,
    /// on_time / resolved_with_deadline.
    pub on_time_rate: Option<f64>,
    /// satisfied / rated (满意率).
    pub satisfaction_rate: Option<f64>,
}

fn ratio(num: i64, den: i64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.total += o.total;
        self.untriaged += o.untriaged;
        self.handled += o.handled;
        self.resolved += o.resolved;
        self.unresolved += o.unresolved;
        self.resolved_with_deadline += o.resolved_with_deadline;
        self.on_time += o.on_time;
        self.late += o.late;
        self.rated += o.rated;
        self.satisfied += o.satisfied;
        self.not_satisfied += o.not_satisfied;
        self.overdue += o.overdue;
    }

    fn finish(mut self) -> Self {
        self.resolution_rate = ratio(self.resolved, self.handled);
        self.on_time_rate = ratio(self.on_time, self.resolved_with_deadline);
        self.satisfaction_rate = ratio(self.satisfied, self.rated);
        self
    }

    /// The count a measure gives.
    pub fn get(&self, measure: Measure) -> i64 {
        match measure {
            Measure::Total => self.total,
            Measure::Untriaged => self.untriaged,
            Measure::Handled => self.handled,
            Measure::Resolved => self.resolved,
            Measure::Unresolved => self.unresolved,
            Measure::ResolvedWithDeadline => self.resolved_with_deadline,
            Measure::OnTime => self.on_time,
            Measure::Late => self.late,
            Measure::Rated => self.rated,
            Measure::Satisfied => self.satisfied,
            Measure::NotSatisfied => self.not_satisfied,
            Measure::Overdue => self.overdue,
        }
    }
}

/// One row of a breakdown (by category, office or grid).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// Category code, department id or grid id; `None` for requests with no office yet.
    pub key: Option<String>,
    /// For people: the category's Chinese label, the office's or the grid's name.
    pub label: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// One month of the trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthPoint {
    /// `YYYY-MM`, China Standard Time.
    pub month: String,
    /// Raised that month (and their handled, resolved... counts now): `Slice::Month`.
    #[serde(flatten)]
    pub figures: Figures,
    /// Requests of the set resolved that month, whenever raised: `Slice::ResolvedInMonth`.
    pub resolved_in_month: i64,
}

/// Visit coverage at `now`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Coverage {
    pub days: i64,
    /// Visits at or after this moment (milliseconds) count.
    pub since: i64,
    /// Household grids in scope.
    pub grids: i64,
    pub grids_not_walked: i64,
    pub enterprise_grids: i64,
    pub enterprise_grids_not_walked: i64,
    pub households: i64,
    pub households_not_visited: i64,
    pub enterprises: i64,
    pub enterprises_not_visited: i64,
}

/// The leader's dashboard for one scope and period.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub scope: Scope,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub now: i64,
    pub figures: Figures,
    pub by_category: Vec<Breakdown>,
    pub by_department: Vec<Breakdown>,
    pub by_grid: Vec<Breakdown>,
    pub by_month: Vec<MonthPoint>,
    pub coverage: Coverage,
}

/// Which count of a request set (see the module documentation for each definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Total,
    Untriaged,
    Handled,
    Resolved,
    Unresolved,
    ResolvedWithDeadline,
    OnTime,
    Late,
    Rated,
    Satisfied,
    NotSatisfied,
    Overdue,
}

pub const ALL_MEASURES: [Measure; 12] = [
    Measure::Total,
    Measure::Untriaged,
    Measure::Handled,
    Measure::Resolved,
    Measure::Unresolved,
    Measure::ResolvedWithDeadline,
    Measure::OnTime,
    Measure::Late,
    Measure::Rated,
    Measure::Satisfied,
    Measure::NotSatisfied,
    Measure::Overdue,
];

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Total => "total",
            Measure::Untriaged => "untriaged",
            Measure::Handled => "handled",
            Measure::Resolved => "resolved",
            Measure::Unresolved => "unresolved",
            Measure::ResolvedWithDeadline => "resolved_with_deadline",
            Measure::OnTime => "on_time",
            Measure::Late => "late",
            Measure::Rated => "rated",
            Measure::Satisfied => "satisfied",
            Measure::NotSatisfied => "not_satisfied",
            Measure::Overdue => "overdue",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_MEASURES.iter().copied().find(|m| m.as_str() == s.trim().replace('-', "_"))
    }

    /// The predicate on a `request_index` row, as SQL. `now` is the parameter holding `now`.
    fn sql(self, now: &str) -> String {
        const HANDLED: &str = "(status IN ('accepted', 'assigned', 'reopened') OR resolved_at IS NOT NULL)";
        match self {
            Measure::Total => "1".into(),
            Measure::Untriaged => "status = 'new'".into(),
            Measure::Handled => HANDLED.into(),
            Measure::Resolved => "resolved_at IS NOT NULL".into(),
            Measure::Unresolved => "(status IN ('accepted', 'assigned', 'reopened') AND resolved_at IS NULL)".into(),
            Measure::ResolvedWithDeadline => "(resolved_at IS NOT NULL AND deadline IS NOT NULL)".into(),
            Measure::OnTime => "(resolved_at IS NOT NULL AND deadline IS NOT NULL AND resolved_at <= deadline)".into(),
            Measure::Late => "(resolved_at IS NOT NULL AND deadline IS NOT NULL AND resolved_at > deadline)".into(),
            Measure::Rated => "rating IS NOT NULL".into(),
            Measure::Satisfied => "rating IN ('satisfied', 'basically')".into(),
            Measure::NotSatisfied => "rating = 'not_satisfied'".into(),
            Measure::Overdue => format!(
                "(status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL AND deadline < {now})"
            ),
        }
    }
}

/// Which part of a dashboard's request set a figure counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "key")]
pub enum Slice {
    /// The whole set (the headline figures).
    All,
    Category(String),
    /// An office; `None`: not assigned to any office yet.
    Department(Option<String>),
    Grid(String),
    /// Raised in this month (`YYYY-MM`).
    Month(String),
    /// Resolved in this month (`YYYY-MM`).
    ResolvedInMonth(String),
}

/// The list behind one figure of a dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "what")]
pub enum Drill {
    /// Requests: `measure` within `slice`, e.g. the overdue requests of one office.
    Requests {
        measure: Measure,
        slice: Slice,
    },
    /// Household grids not walked within the coverage window.
    GridsNotWalked,
    EnterpriseGridsNotWalked,
    HouseholdsNotVisited,
    EnterprisesNotVisited,
}

/// What a drill returns: ids of requests (oldest first), or of grids, households or enterprises
/// (least recently visited first, never visited first of all).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillList {
    /// `request`, `grid`, `household` or `enterprise`.
    pub kind: &'static str,
    pub ids: Vec<String>,
}

// ----- SQL building --------------------------------------------------------------------------

/// A statement's text with its positional parameters.
#[derive(Default)]
struct Sql {
    params: Vec<Value>,
}

impl Sql {
    /// Adds a parameter; its placeholder.
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    fn bind_list(&mut self, values: &[String]) -> String {
        values.iter().map(|v| self.bind(v.clone())).collect::<Vec<_>>().join(", ")
    }
}

/// The grids a scope names, `None` for all. Checks that the village or grid exists.
pub(crate) fn scope_grids(store: &Store, scope: &Scope) -> Result<Option<Vec<String>>> {
    let conn = store.connection();
    match scope {
        Scope::All => Ok(None),
        Scope::Grid(g) => {
            let kind: Option<String> =
                conn.prepare_cached("SELECT kind FROM areas WHERE id = ?1")?.query_row([g], |r| r.get(0)).optional()?;
            if kind.as_deref() != Some("grid") {
                return Err(CoreError::UnknownGrid(g.clone()));
            }
            Ok(Some(vec![g.clone()]))
        }
        Scope::Village(v) => {
            let kind: Option<String> =
                conn.prepare_cached("SELECT kind FROM areas WHERE id = ?1")?.query_row([v], |r| r.get(0)).optional()?;
            if kind.as_deref() != Some("village") {
                return Err(CoreError::NotFound { kind: "village", id: v.clone() });
            }
            let grids = conn
                .prepare_cached("SELECT id FROM areas WHERE parent = ?1 AND kind = 'grid' ORDER BY id")?
                .query_map([v], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(Some(grids))
        }
    }
}

/// `grid IN (...)` for the scope (or nothing), on `column`.
fn scope_clause(sql: &mut Sql, grids: &Option<Vec<String>>, column: &str) -> Option<String> {
    grids.as_ref().map(|g| if g.is_empty() { "0".to_string() } else { format!("{column} IN ({})", sql.bind_list(g)) })
}

/// The request set's conditions: scope and creation period.
fn set_clauses(sql: &mut Sql, grids: &Option<Vec<String>>, q: &DashboardQuery) -> Vec<String> {
    period_clauses(sql, grids, q.from.map(|t| t.millis()), q.to.map(|t| t.millis()))
}

/// Scope, and creation in `[from, to)` (milliseconds) where given.
fn period_clauses(sql: &mut Sql, grids: &Option<Vec<String>>, from: Option<i64>, to: Option<i64>) -> Vec<String> {
    let mut clauses = Vec::new();
    clauses.extend(scope_clause(sql, grids, "grid"));
    // The unary plus keeps SQLite from answering a grid's request set through the index on
    // creation time alone (a scan of the whole period across every grid) when the scope names
    // grids; a whole-street query has no grid condition and may still use it.
    let created = if grids.is_some() { "+created_at" } else { "created_at" };
    if let Some(from) = from {
        clauses.push(format!("{created} >= {}", sql.bind(from)));
    }
    if let Some(to) = to {
        clauses.push(format!("{created} < {}", sql.bind(to)));
    }
    clauses
}

fn where_sql(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    }
}

/// SQL giving a millisecond column's month, `YYYY-MM` in China Standard Time.
fn month_sql(column: &str) -> String {
    format!("strftime('%Y-%m', ({column} + {CST_OFFSET_MS}) / 1000, 'unixepoch')")
}

/// The first moment of a `YYYY-MM` month and of the month after it (milliseconds).
pub(crate) fn month_bounds(month: &str) -> Result<(i64, i64)> {
    let m = Month::parse(month)?;
    Ok(m.bounds())
}

// ----- the dashboard -------------------------------------------------------------------------

/// How a creation period is counted: whole months from the running counts (`request_tally`),
/// and the part-months at either end, if any, from the request rows themselves.
#[derive(Debug, Default, PartialEq)]
struct PeriodPlan {
    /// Whole months `[first, end)` as `YYYY-MM` keys (`None`: unbounded on that side), or no
    /// whole month at all.
    months: Option<(Option<String>, Option<String>)>,
    /// Creation-time ranges `[from, to)` in milliseconds counted row by row.
    edges: Vec<(Option<i64>, Option<i64>)>,
}

impl PeriodPlan {
    fn new(from: Option<Timestamp>, to: Option<Timestamp>) -> PeriodPlan {
        // The first whole month starts at or after `from`; the whole months end where the month
        // holding `to` starts.
        let first = from.map(|f| {
            let m = Month::of(f);
            let (start, next) = m.bounds();
            if start == f.millis() {
                (m, start)
            } else {
                (m.next(), next)
            }
        });
        let end = to.map(|t| {
            let m = Month::of(t);
            (m, m.bounds().0)
        });
        let (from, to) = (from.map(|t| t.millis()), to.map(|t| t.millis()));
        if let (Some((first_month, _)), Some((end_month, _))) = (first, end) {
            if first_month >= end_month {
                // No whole month inside: everything is counted row by row.
                return PeriodPlan { months: None, edges: vec![(from, to)] };
            }
        }
        let mut edges = Vec::new();
        if let (Some(f), Some((_, start))) = (from, first) {
            if f < start {
                edges.push((Some(f), Some(start)));
            }
        }
        if let (Some(t), Some((_, start))) = (to, end) {
            if start < t {
                edges.push((Some(start), Some(t)));
            }
        }
        PeriodPlan { months: Some((first.map(|(m, _)| m.key()), end.map(|(m, _)| m.key()))), edges }
    }
}

/// The dashboard's counts as they are gathered, before labels and rates.
#[derive(Default)]
struct Tallies {
    total: Figures,
    by_category: BTreeMap<String, Figures>,
    by_department: BTreeMap<Option<String>, Figures>,
    by_grid: BTreeMap<String, Figures>,
    by_month: BTreeMap<String, Figures>,
    resolved_in: BTreeMap<String, i64>,
}

impl Tallies {
    /// Adds one row of a running-count table (`request_tally`, `request_deadline_tally`): the
    /// whole store's (area `*`) total, category or office counts, or a grid's (`dim` 'all'),
    /// which is also the headline and the month for a scope that names its grids.
    #[allow(clippy::too_many_arguments)]
    fn add_counted(
        &mut self,
        table: &str,
        scope_names_grids: bool,
        area: String,
        dim: &str,
        key: String,
        month: String,
        f: &Figures,
    ) -> Result<()> {
        match dim {
            "all" if area != "*" => {
                if scope_names_grids {
                    self.total.add(f);
                    by_add(&mut self.by_month, month, f);
                }
                by_add(&mut self.by_grid, area, f);
            }
            "all" => {
                self.total.add(f);
                by_add(&mut self.by_month, month, f);
            }
            "category" => by_add(&mut self.by_category, key, f),
            "department" => by_add(&mut self.by_department, (!key.is_empty()).then_some(key), f),
            other => return Err(CoreError::invalid(table, format!("unknown breakdown '{other}'"))),
        }
        Ok(())
    }
}

/// The eleven stored counts of a `request_tally` row or a grouped query, from column `at` on,
/// in `ALL_MEASURES` order without `overdue`.
fn figures_from(r: &rusqlite::Row, at: usize) -> rusqlite::Result<Figures> {
    Ok(Figures {
        total: r.get(at)?,
        untriaged: r.get(at + 1)?,
        handled: r.get(at + 2)?,
        resolved: r.get(at + 3)?,
        unresolved: r.get(at + 4)?,
        resolved_with_deadline: r.get(at + 5)?,
        on_time: r.get(at + 6)?,
        late: r.get(at + 7)?,
        rated: r.get(at + 8)?,
        satisfied: r.get(at + 9)?,
        not_satisfied: r.get(at + 10)?,
        ..Figures::default()
    })
}

const TALLY_COUNTS: &str = "total, untriaged, handled, resolved, unresolved, resolved_with_deadline, \
                            on_time, late, rated, satisfied, not_satisfied";

/// Which rows of a running-count table a scope reads, as conditions with their parameters:
/// - the whole street: the store's rows (area `*`) for the headline, the trend and the
///   breakdowns, and each grid's totals (dim `all`) for the breakdown by grid (the only `all`
///   rows besides the store's: a village keeps no totals of its own);
/// - a village: its own rows (area = the village) for the breakdowns by category and office,
///   and its grids' totals for the headline, the trend and the breakdown by grid;
/// - a grid: its rows.
///
/// A scope with no grids reads nothing.
fn tally_areas(grids: &Option<Vec<String>>, village: Option<&str>) -> Vec<(Vec<String>, Vec<Value>)> {
    match (grids, village) {
        (None, _) => vec![
            (vec!["area = '*'".to_string()], Vec::new()),
            (vec!["dim = 'all'".to_string(), "area != '*'".to_string()], Vec::new()),
        ],
        (Some(g), _) if g.is_empty() => Vec::new(),
        (Some(g), Some(v)) => {
            let mut own = Sql::default();
            let own_c =
                vec![format!("area = {}", own.bind(v.to_string())), "dim IN ('category', 'department')".to_string()];
            let mut of_grids = Sql::default();
            let grid_c = vec![format!("area IN ({})", of_grids.bind_list(g)), "dim = 'all'".to_string()];
            vec![(own_c, own.params), (grid_c, of_grids.params)]
        }
        (Some(g), None) => {
            let mut sql = Sql::default();
            let c = vec![format!("area IN ({})", sql.bind_list(g))];
            vec![(c, sql.params)]
        }
    }
}

/// Adds the running counts of the whole months `first..end` to `t`.
fn add_tallied_months(
    store: &Store,
    grids: &Option<Vec<String>>,
    village: Option<&str>,
    first: &Option<String>,
    end: &Option<String>,
    t: &mut Tallies,
) -> Result<()> {
    let conn = store.connection();
    let month_clauses = |sql: &mut Sql, column: &str| {
        let mut c = Vec::new();
        if let Some(f) = first {
            c.push(format!("{column} >= {}", sql.bind(f.clone())));
        }
        if let Some(e) = end {
            c.push(format!("{column} < {}", sql.bind(e.clone())));
        }
        c
    };
    // Either way the rows read grow with months, categories, offices and grids, not with
    // requests.
    let mut queries = Vec::new();
    for (mut c, params) in tally_areas(grids, village) {
        let mut sql = Sql { params };
        c.push("total != 0".to_string());
        c.extend(month_clauses(&mut sql, "month"));
        queries.push((
            format!("SELECT area, dim, key, month, {TALLY_COUNTS} FROM request_tally {}", where_sql(&c)),
            sql.params,
        ));
    }
    for (text, params) in queries {
        let mut stmt = conn.prepare_cached(&text)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(r) = rows.next()? {
            let area: String = r.get(0)?;
            let dim: String = r.get(1)?;
            let key: String = r.get(2)?;
            let month: String = r.get(3)?;
            let f = figures_from(r, 4)?;
            t.add_counted("request_tally", grids.is_some(), area, &dim, key, month, &f)?;
        }
    }

    let mut sql = Sql::default();
    let mut c = match (grids, village) {
        (None, _) => vec!["area = '*'".to_string()],
        (Some(g), _) if g.is_empty() => return Ok(()),
        (Some(_), Some(v)) => vec![format!("area = {}", sql.bind(v.to_string()))],
        (Some(g), None) => vec![format!("area IN ({})", sql.bind_list(g))],
    };
    c.extend(month_clauses(&mut sql, "month"));
    let text =
        format!("SELECT resolved_month, SUM(n) FROM request_resolved_tally {} GROUP BY resolved_month", where_sql(&c));
    add_resolved_in(store, &text, &sql, t)
}

/// Adds the rows of a `(month, count)` query to the resolutions by month.
fn add_resolved_in(store: &Store, text: &str, sql: &Sql, t: &mut Tallies) -> Result<()> {
    let mut stmt = store.connection().prepare_cached(text)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (m, n) = row?;
        *t.resolved_in.entry(m).or_default() += n;
    }
    Ok(())
}

fn by_add<K: Ord>(map: &mut BTreeMap<K, Figures>, key: K, f: &Figures) {
    map.entry(key).or_default().add(f);
}

/// Adds the requests of the scope raised in `[from, to)` to `t`, row by row (everything but
/// overdue, which [`add_overdue`] counts for the whole period).
fn add_rows(
    store: &Store,
    grids: &Option<Vec<String>>,
    from: Option<i64>,
    to: Option<i64>,
    t: &mut Tallies,
) -> Result<()> {
    let conn = store.connection();
    let mut sql = Sql::default();
    let clauses = period_clauses(&mut sql, grids, from, to);
    // Overdue, the one measure that reads `now`, is left out here.
    let sums: Vec<String> = ALL_MEASURES
        .iter()
        .filter(|m| **m != Measure::Overdue)
        .map(|m| format!("SUM(CASE WHEN {} THEN 1 ELSE 0 END)", m.sql("")))
        .collect();
    let text = format!(
        "SELECT grid, category, department, {month}, {sums} FROM request_index {where_sql}
         GROUP BY grid, category, department, 4",
        month = month_sql("created_at"),
        sums = sums.join(", "),
        where_sql = where_sql(&clauses),
    );
    {
        let mut stmt = conn.prepare_cached(&text)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        while let Some(r) = rows.next()? {
            let grid: String = r.get(0)?;
            let cat: String = r.get(1)?;
            let dept: Option<String> = r.get(2)?;
            let month: String = r.get(3)?;
            let f = figures_from(r, 4)?;
            t.total.add(&f);
            by_add(&mut t.by_category, cat, &f);
            by_add(&mut t.by_department, dept, &f);
            by_add(&mut t.by_grid, grid, &f);
            by_add(&mut t.by_month, month, &f);
        }
    }

    // Resolutions by the month they happened in.
    let mut sql = Sql::default();
    let mut clauses = period_clauses(&mut sql, grids, from, to);
    clauses.push("resolved_at IS NOT NULL".into());
    let text = format!(
        "SELECT {month}, COUNT(*) FROM request_index {where_sql} GROUP BY 1",
        month = month_sql("resolved_at"),
        where_sql = where_sql(&clauses),
    );
    add_resolved_in(store, &text, &sql, t)
}

/// Adds the overdue requests of the set. Overdue depends on `now`, so no count can simply be
/// kept of it; but a deadline that fell in an earlier month than `now`'s is past whatever `now`
/// is within its month. So for the whole months of the period, the open requests whose deadline
/// month is before now's month come from `request_deadline_tally`, and only those whose deadline
/// falls earlier in now's own month are read as rows. The part-months at the period's ends are
/// read as rows throughout.
fn add_overdue(
    store: &Store,
    grids: &Option<Vec<String>>,
    village: Option<&str>,
    q: &DashboardQuery,
    plan: &PeriodPlan,
    t: &mut Tallies,
) -> Result<()> {
    let now_month = Month::of(q.now);
    let (now_month_start, _) = now_month.bounds();
    if let Some((first, end)) = &plan.months {
        add_overdue_tallied(store, grids, village, first, end, &now_month.key(), t)?;
        let created = (
            first.as_deref().map(month_bounds).transpose()?.map(|(start, _)| start),
            end.as_deref().map(month_bounds).transpose()?.map(|(start, _)| start),
        );
        add_overdue_rows(store, grids, created, Some(now_month_start), q.now.millis(), t)?;
    }
    for (from, to) in &plan.edges {
        add_overdue_rows(store, grids, (*from, *to), None, q.now.millis(), t)?;
    }
    Ok(())
}

/// Adds the counted open requests raised in the whole months `first..end` whose deadline month
/// comes before `before_month`.
fn add_overdue_tallied(
    store: &Store,
    grids: &Option<Vec<String>>,
    village: Option<&str>,
    first: &Option<String>,
    end: &Option<String>,
    before_month: &str,
    t: &mut Tallies,
) -> Result<()> {
    // Either way the rows grow with months, categories, offices and grids, not with requests.
    for (mut c, params) in tally_areas(grids, village) {
        let mut sql = Sql { params };
        c.push(format!("deadline_month < {}", sql.bind(before_month.to_string())));
        if let Some(f) = first {
            c.push(format!("month >= {}", sql.bind(f.clone())));
        }
        if let Some(e) = end {
            c.push(format!("month < {}", sql.bind(e.clone())));
        }
        c.push("n != 0".into());
        let text = format!(
            "SELECT area, dim, key, month, SUM(n) FROM request_deadline_tally {} GROUP BY area, dim, key, month",
            where_sql(&c)
        );
        add_overdue_tally_rows(store, &text, &sql, grids, t)?;
    }
    Ok(())
}

/// Adds the rows of a `(area, dim, key, month, overdue)` query over `request_deadline_tally`.
fn add_overdue_tally_rows(
    store: &Store,
    text: &str,
    sql: &Sql,
    grids: &Option<Vec<String>>,
    t: &mut Tallies,
) -> Result<()> {
    let mut stmt = store.connection().prepare_cached(text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    while let Some(r) = rows.next()? {
        let area: String = r.get(0)?;
        let dim: String = r.get(1)?;
        let key: String = r.get(2)?;
        let month: String = r.get(3)?;
        let f = Figures { overdue: r.get(4)?, ..Figures::default() };
        t.add_counted("request_deadline_tally", grids.is_some(), area, &dim, key, month, &f)?;
    }
    Ok(())
}

/// Adds, row by row, the open requests raised in `created` (`[from, to)`, milliseconds) whose
/// deadline lies in `[deadline_from, now)`.
fn add_overdue_rows(
    store: &Store,
    grids: &Option<Vec<String>>,
    created: (Option<i64>, Option<i64>),
    deadline_from: Option<i64>,
    now: i64,
    t: &mut Tallies,
) -> Result<()> {
    if matches!(grids, Some(g) if g.is_empty()) {
        return Ok(());
    }
    let mut sql = Sql::default();
    let now = sql.bind(now);
    // These terms are the partial indexes' own, so the open requests with a deadline are read
    // through them alone (they cover every column read here): by deadline for the whole street,
    // by grid and deadline for a village or a grid. SQLite is told which, because left to itself
    // it reads the whole street's open requests by status and deadline, row by row.
    let index = if grids.is_some() {
        "INDEXED BY request_open_by_grid_deadline"
    } else {
        "INDEXED BY request_open_by_deadline"
    };
    let mut clauses = vec![
        "status IN ('new', 'accepted', 'assigned', 'reopened')".to_string(),
        "deadline IS NOT NULL".to_string(),
        format!("deadline < {now}"),
    ];
    if let Some(from) = deadline_from {
        clauses.push(format!("deadline >= {}", sql.bind(from)));
    }
    clauses.extend(period_clauses(&mut sql, grids, created.0, created.1));
    // The rows are counted here rather than grouped by SQLite: only the four breakdowns are
    // wanted, not every combination of them, and a row's month is found among the few months
    // seen so far instead of being formatted for every row.
    let text = format!(
        "SELECT grid, category, department, created_at FROM request_index {index} {where_sql}",
        where_sql = where_sql(&clauses),
    );
    let mut stmt = store.connection().prepare_cached(&text)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
    let mut count = OverdueCount::default();
    while let Some(r) = rows.next()? {
        let text =
            |i: usize| -> Result<Option<&str>> { Ok(r.get_ref(i)?.as_str_or_null().map_err(rusqlite::Error::from)?) };
        count.total += 1;
        bump(&mut count.by_grid, text(0)?.unwrap_or_default());
        bump(&mut count.by_category, text(1)?.unwrap_or_default());
        match text(2)? {
            Some(d) => bump(&mut count.by_department, d),
            None => count.unassigned += 1,
        }
        let created: i64 = r.get(3)?;
        let month = match count.months.iter().position(|(start, end, _, _)| (*start..*end).contains(&created)) {
            Some(i) => i,
            None => {
                let m = Month::of(Timestamp::from_millis(created)?);
                let (start, end) = m.bounds();
                count.months.push((start, end, m.key(), 0));
                count.months.len() - 1
            }
        };
        count.months[month].3 += 1;
    }
    let overdue = |n: i64| Figures { overdue: n, ..Figures::default() };
    t.total.add(&overdue(count.total));
    for (k, n) in count.by_grid {
        by_add(&mut t.by_grid, k, &overdue(n));
    }
    for (k, n) in count.by_category {
        by_add(&mut t.by_category, k, &overdue(n));
    }
    for (k, n) in count.by_department {
        by_add(&mut t.by_department, Some(k), &overdue(n));
    }
    if count.unassigned > 0 {
        by_add(&mut t.by_department, None, &overdue(count.unassigned));
    }
    for (_, _, k, n) in count.months {
        by_add(&mut t.by_month, k, &overdue(n));
    }
    Ok(())
}

/// Overdue requests counted row by row, per breakdown.
#[derive(Default)]
struct OverdueCount {
    total: i64,
    by_grid: std::collections::HashMap<String, i64>,
    by_category: std::collections::HashMap<String, i64>,
    by_department: std::collections::HashMap<String, i64>,
    /// With no office yet.
    unassigned: i64,
    /// Creation months seen: start and end (milliseconds), key, count.
    months: Vec<(i64, i64, String, i64)>,
}

fn bump(map: &mut std::collections::HashMap<String, i64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// The dashboard for `q`, from the running counts and the index.
pub fn dashboard(store: &Store, q: &DashboardQuery) -> Result<Dashboard> {
    check_period(q)?;
    let conn = store.connection();
    let grids = scope_grids(store, &q.scope)?;
    let village = match &q.scope {
        Scope::Village(v) => Some(v.as_str()),
        _ => None,
    };

    let plan = PeriodPlan::new(q.from, q.to);
    let mut t = Tallies::default();
    if let Some((first, end)) = &plan.months {
        add_tallied_months(store, &grids, village, first, end, &mut t)?;
    }
    for (from, to) in &plan.edges {
        add_rows(store, &grids, *from, *to, &mut t)?;
    }
    add_overdue(store, &grids, village, q, &plan, &mut t)?;
    let Tallies { total, by_category, by_department, by_grid, by_month, resolved_in } = t;
    // A group whose requests all left it (a request reassigned to another office) keeps a row of
    // zeros in the running counts; it is not part of the set.
    let by_category = by_category.into_iter().filter(|(_, f)| f.total != 0);
    let by_department = by_department.into_iter().filter(|(_, f)| f.total != 0);
    let by_grid = by_grid.into_iter().filter(|(_, f)| f.total != 0);
    let by_month: BTreeMap<String, Figures> = by_month.into_iter().filter(|(_, f)| f.total != 0).collect();
    let resolved_in: BTreeMap<String, i64> = resolved_in.into_iter().filter(|(_, n)| *n != 0).collect();

    let mut months: Vec<String> = by_month.keys().chain(resolved_in.keys()).cloned().collect();
    months.sort();
    months.dedup();
    let by_month = months
        .into_iter()
        .map(|m| MonthPoint {
            figures: by_month.get(&m).cloned().unwrap_or_default().finish(),
            resolved_in_month: resolved_in.get(&m).copied().unwrap_or(0),
            month: m,
        })
        .collect();

    let by_category = by_category
        .map(|(code, f)| Breakdown {
            label: category(&code).map(|c| c.zh.to_string()).unwrap_or_else(|| code.clone()),
            key: Some(code),
            figures: f.finish(),
        })
        .collect();
    let mut dept_name = conn.prepare_cached("SELECT name FROM departments WHERE id = ?1")?;
    let by_department = by_department
        .map(|(id, f)| {
            let label = match &id {
                Some(id) => dept_name.query_row([id], |r| r.get(0)).optional()?.unwrap_or_else(|| id.clone()),
                None => "未交办".to_string(),
            };
            Ok(Breakdown { key: id, label, figures: f.finish() })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut area_name = conn.prepare_cached("SELECT name FROM areas WHERE id = ?1")?;
    let by_grid = by_grid
        .map(|(id, f)| {
            let label = area_name.query_row([&id], |r| r.get(0)).optional()?.unwrap_or_else(|| id.clone());
            Ok(Breakdown { key: Some(id), label, figures: f.finish() })
        })
        .collect::<Result<Vec<_>>>()?;

    Ok(Dashboard {
        scope: q.scope.clone(),
        from: q.from.map(|t| t.millis()),
        to: q.to.map(|t| t.millis()),
        now: q.now.millis(),
        figures: total.finish(),
        by_category,
        by_department,
        by_grid,
        by_month,
        coverage: coverage(store, &grids, q.now)?,
    })
}

// ----- change since last week and last month ---------------------------------------------------

/// How far back "since last week" and "since last month" look.
pub const WEEK_MS: i64 = 7 * 86_400_000;
pub const MONTH_MS: i64 = 30 * 86_400_000;

/// The headline figures as they stood at an earlier moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiguresAt {
    /// The moment (milliseconds).
    pub at: i64,
    pub figures: Figures,
}

/// What each headline figure of a dashboard was a week and a month before its `now`, for the
/// change beside each KPI (比上周, 比上月). A bounded period moves back with it: "this month" a
/// week ago is the month-long window that ended a week ago, so the change compares like with
/// like rather than this month's requests with the few of them that existed then.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiChanges {
    pub week_ago: FiguresAt,
    pub month_ago: FiguresAt,
}

/// `q` as it was asked `back` milliseconds earlier: its period and its now moved back together.
pub fn query_back(q: &DashboardQuery, back: i64) -> Result<DashboardQuery> {
    let moved = |t: Timestamp| Timestamp::from_millis(t.millis() - back);
    Ok(DashboardQuery {
        scope: q.scope.clone(),
        from: q.from.map(moved).transpose()?,
        to: q.to.map(moved).transpose()?,
        now: moved(q.now)?,
    })
}

/// The headline figures of `q` a week and a month before `q.now` ([`query_back`]). Each request
/// that changed within the month is folded from its events once, for both.
pub fn kpi_changes(store: &Store, q: &DashboardQuery) -> Result<KpiChanges> {
    let mut events = EventsRead::default();
    let mut at = |back: i64| -> Result<FiguresAt> {
        let then = query_back(q, back)?;
        Ok(FiguresAt { at: then.now.millis(), figures: figures_as_of_with(store, &then, then.now, &mut events)? })
    };
    let month_ago = at(MONTH_MS)?;
    let week_ago = at(WEEK_MS)?;
    Ok(KpiChanges { week_ago, month_ago })
}

/// Requests' events read once for several moments.
#[derive(Default)]
struct EventsRead(std::collections::HashMap<String, Vec<crate::lifecycle::LifecycleEvent>>);

/// The headline figures of `q`'s scope and period as they stood at `at`: every request raised
/// by then, in the state its events up to then give, overdue judged at `at`.
///
/// The index holds only the present. A request nothing has happened to since `at` (its newest
/// applied event is no later) stood then as it stands now, so those are counted from the index
/// with `at` as now. The others, a week's or a month's worth, are folded again from their
/// events up to `at`. Both go through the same predicates as the dashboard ([`Measure::sql`]),
/// so the two cannot count differently. Events are placed by their device time, as the
/// history shows them.
pub fn figures_as_of(store: &Store, q: &DashboardQuery, at: Timestamp) -> Result<Figures> {
    figures_as_of_with(store, q, at, &mut EventsRead::default())
}

fn figures_as_of_with(store: &Store, q: &DashboardQuery, at: Timestamp, read: &mut EventsRead) -> Result<Figures> {
    check_period(q)?;
    let conn = store.connection();
    let grids = scope_grids(store, &q.scope)?;
    let sums = |sql: &mut Sql| -> String {
        let now = sql.bind(at.millis());
        ALL_MEASURES
            .iter()
            .map(|m| format!("COALESCE(SUM(CASE WHEN {} THEN 1 ELSE 0 END), 0)", m.sql(&now)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let read_figures = |r: &rusqlite::Row| -> rusqlite::Result<Figures> {
        let mut f = figures_from(r, 0)?;
        f.overdue = r.get(11)?;
        Ok(f)
    };

    // Unchanged since `at`.
    let mut sql = Sql::default();
    let sums_text = sums(&mut sql);
    let mut clauses = set_clauses(&mut sql, &grids, q);
    clauses.push(format!("created_at <= {}", sql.bind(at.millis())));
    clauses.push(format!("updated_at <= {}", sql.bind(at.millis())));
    let text = format!("SELECT {sums_text} FROM request_index {}", where_sql(&clauses));
    let mut total =
        conn.prepare_cached(&text)?.query_row(rusqlite::params_from_iter(sql.params.iter()), read_figures)?;

    // Changed since: folded again from their events up to `at`.
    let mut sql = Sql::default();
    let mut clauses = set_clauses(&mut sql, &grids, q);
    clauses.push(format!("created_at <= {}", sql.bind(at.millis())));
    clauses.push(format!("updated_at > {}", sql.bind(at.millis())));
    let text = format!("SELECT id FROM request_index {} ORDER BY id", where_sql(&clauses));
    let changed = conn
        .prepare_cached(&text)?
        .query_map(rusqlite::params_from_iter(sql.params.iter()), |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let mut then = Vec::new();
    for id in changed {
        if !read.0.contains_key(&id) {
            let events = store.request_events(&id)?;
            read.0.insert(id.clone(), events);
        }
        let events: Vec<_> = read.0[&id].iter().filter(|e| e.at <= at).cloned().collect();
        // A request whose first event is dated after `at` (a device clock behind) was not there.
        if let Some(state) = crate::lifecycle::fold(&events) {
            then.push(state);
        }
    }
    // Each chunk's rows go in as a VALUES list: four parameters a row, well within SQLite's
    // limit on parameters.
    for chunk in then.chunks(1000) {
        let mut sql = Sql::default();
        let sums_text = sums(&mut sql);
        let rows: Vec<String> = chunk
            .iter()
            .map(|s| {
                format!(
                    "({}, {}, {}, {})",
                    sql.bind(s.status.as_str().to_string()),
                    sql.bind(s.deadline.map(|d| d.millis())),
                    sql.bind(s.resolved_at.map(|d| d.millis())),
                    sql.bind(s.rating.map(|r| r.as_str().to_string())),
                )
            })
            .collect();
        let text = format!(
            "WITH request_then(status, deadline, resolved_at, rating) AS (VALUES {}) SELECT {sums_text} FROM request_then",
            rows.join(", ")
        );
        let part = conn.prepare(&text)?.query_row(rusqlite::params_from_iter(sql.params.iter()), read_figures)?;
        total.add(&part);
    }
    Ok(total.finish())
}

fn check_period(q: &DashboardQuery) -> Result<()> {
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from >= to {
            return Err(CoreError::invalid("period", "the period's start must come before its end"));
        }
    }
    Ok(())
}

fn coverage(store: &Store, grids: &Option<Vec<String>>, now: Timestamp) -> Result<Coverage> {
    let conn = store.connection();
    let since = now.millis() - COVERAGE_DAYS * 86_400_000;
    let mut out = Coverage { days: COVERAGE_DAYS, since, ..Default::default() };

    let mut sql = Sql::default();
    let since_p = sql.bind(since);
    let mut clauses = vec!["a.kind = 'grid'".to_string()];
    clauses.extend(scope_clause(&mut sql, grids, "a.id"));
    let text = format!(
        "SELECT a.enterprise_grid, COUNT(*),
                SUM(CASE WHEN lv.visited_at IS NULL OR lv.visited_at < {since_p} THEN 1 ELSE 0 END)
           FROM areas a LEFT JOIN last_visit lv ON lv.scope = 'grid' AND lv.id = a.id
          {} GROUP BY a.enterprise_grid",
        where_sql(&clauses)
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
        Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })?;
    for row in rows {
        let (enterprise, n, stale) = row?;
        if enterprise {
            out.enterprise_grids = n;
            out.enterprise_grids_not_walked = stale;
        } else {
            out.grids = n;
            out.grids_not_walked = stale;
        }
    }

    for (table, scope) in [("households", "household"), ("enterprises", "enterprise")] {
        let mut sql = Sql::default();
        let since_p = sql.bind(since);
        let clauses: Vec<String> = scope_clause(&mut sql, grids, "p.grid").into_iter().collect();
        let text = format!(
            "SELECT COUNT(*),
                    COALESCE(SUM(CASE WHEN lv.visited_at IS NULL OR lv.visited_at < {since_p} THEN 1 ELSE 0 END), 0)
               FROM {table} p LEFT JOIN last_visit lv ON lv.scope = '{scope}' AND lv.id = p.id {}",
            where_sql(&clauses)
        );
        let (n, stale): (i64, i64) = conn
            .prepare_cached(&text)?
            .query_row(rusqlite::params_from_iter(sql.params.iter()), |r| Ok((r.get(0)?, r.get(1)?)))?;
        if scope == "household" {
            out.households = n;
            out.households_not_visited = stale;
        } else {
            out.enterprises = n;
            out.enterprises_not_visited = stale;
        }
    }
    Ok(out)
}

// ----- drilling down -------------------------------------------------------------------------

/// The list behind one figure of the dashboard `q` gives.
pub fn drill(store: &Store, q: &DashboardQuery, what: &Drill) -> Result<DrillList> {
    check_period(q)?;
    let conn = store.connection();
    let grids = scope_grids(store, &q.scope)?;
    let (kind, text, params) = match what {
        Drill::Requests { measure, slice } => {
            let mut sql = Sql::default();
            let mut clauses = set_clauses(&mut sql, &grids, q);
            // `now` is bound only where it is used: SQLite counts parameters by the highest used.
            let now = if *measure == Measure::Overdue { sql.bind(q.now.millis()) } else { String::new() };
            clauses.push(measure.sql(&now));
            match slice {
                Slice::All => {}
                Slice::Category(c) => clauses.push(format!("category = {}", sql.bind(c.clone()))),
                Slice::Department(Some(d)) => clauses.push(format!("department = {}", sql.bind(d.clone()))),
                Slice::Department(None) => clauses.push("department IS NULL".into()),
                Slice::Grid(g) => clauses.push(format!("grid = {}", sql.bind(g.clone()))),
                Slice::Month(m) => {
                    let (start, end) = month_bounds(m)?;
                    clauses.push(format!("created_at >= {} AND created_at < {}", sql.bind(start), sql.bind(end)));
                }
                Slice::ResolvedInMonth(m) => {
                    let (start, end) = month_bounds(m)?;
                    clauses.push(format!("resolved_at >= {} AND resolved_at < {}", sql.bind(start), sql.bind(end)));
                }
            }
            let text = format!("SELECT id FROM request_index {} ORDER BY created_at, id", where_sql(&clauses));
            ("request", text, sql.params)
        }
        Drill::GridsNotWalked | Drill::EnterpriseGridsNotWalked => {
            let mut sql = Sql::default();
            let since = sql.bind(q.now.millis() - COVERAGE_DAYS * 86_400_000);
            let enterprise = i64::from(*what == Drill::EnterpriseGridsNotWalked);
            let mut clauses = vec![
                "a.kind = 'grid'".to_string(),
                format!("a.enterprise_grid = {enterprise}"),
                format!("(lv.visited_at IS NULL OR lv.visited_at < {since})"),
            ];
            clauses.extend(scope_clause(&mut sql, &grids, "a.id"));
            let text = format!(
                "SELECT a.id FROM areas a LEFT JOIN last_visit lv ON lv.scope = 'grid' AND lv.id = a.id
                  {} ORDER BY lv.visited_at IS NOT NULL, lv.visited_at, a.id",
                where_sql(&clauses)
            );
            ("grid", text, sql.params)
        }
        Drill::HouseholdsNotVisited | Drill::EnterprisesNotVisited => {
            let (table, scope) = if *what == Drill::HouseholdsNotVisited {
                ("households", "household")
            } else {
                ("enterprises", "enterprise")
            };
            let mut sql = Sql::default();
            let since = sql.bind(q.now.millis() - COVERAGE_DAYS * 86_400_000);
            let mut clauses = vec![format!("(lv.visited_at IS NULL OR lv.visited_at < {since})")];
            clauses.extend(scope_clause(&mut sql, &grids, "p.grid"));
            let text = format!(
                "SELECT p.id FROM {table} p LEFT JOIN last_visit lv ON lv.scope = '{scope}' AND lv.id = p.id
                  {} ORDER BY lv.visited_at IS NOT NULL, lv.visited_at, p.id",
                where_sql(&clauses)
            );
            (scope, text, sql.params)
        }
    };
    let mut stmt = conn.prepare(&text)?;
    let ids = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(DrillList { kind, ids })
}

/// The Chinese name of a request status, as lists and exports show it.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "new" => "待研判",
        "accepted" => "已受理",
        "assigned" => "办理中",
        "resolved" => "已办结",
        "feedback_given" => "已反馈",
        "rated" => "已评价",
        "closed" => "已归档",
        "rejected" => "不予受理",
        "merged" => "已合并",
        "reopened" => "重新办理",
        _ => "未知",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> Timestamp {
        // Hours in China Standard Time.
        Timestamp(chrono::Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap() - chrono::Duration::hours(8))
    }

    #[test]
    fn a_period_on_month_bounds_is_all_whole_months() {
        let plan = PeriodPlan::new(Some(at(2026, 4, 1, 0)), Some(at(2026, 7, 1, 0)));
        assert_eq!(plan.months, Some((Some("2026-04".into()), Some("2026-07".into()))));
        assert!(plan.edges.is_empty());
    }

    #[test]
    fn a_ragged_period_counts_its_part_months_from_rows() {
        let (from, to) = (at(2026, 4, 15, 10), at(2026, 6, 20, 0));
        let plan = PeriodPlan::new(Some(from), Some(to));
        assert_eq!(plan.months, Some((Some("2026-05".into()), Some("2026-06".into()))));
        assert_eq!(
            plan.edges,
            vec![
                (Some(from.millis()), Some(at(2026, 5, 1, 0).millis())),
                (Some(at(2026, 6, 1, 0).millis()), Some(to.millis())),
            ]
        );
    }

    #[test]
    fn a_period_inside_one_month_is_counted_from_rows_alone() {
        let (from, to) = (at(2026, 5, 3, 0), at(2026, 5, 20, 0));
        let plan = PeriodPlan::new(Some(from), Some(to));
        assert_eq!(plan, PeriodPlan { months: None, edges: vec![(Some(from.millis()), Some(to.millis()))] });
        // Two part-months side by side, no whole month between them.
        let (from, to) = (at(2026, 5, 3, 0), at(2026, 6, 20, 0));
        let plan = PeriodPlan::new(Some(from), Some(to));
        assert_eq!(plan.months, None);
        assert_eq!(plan.edges, vec![(Some(from.millis()), Some(to.millis()))]);
    }

    #[test]
    fn an_open_period_is_unbounded_on_its_open_side() {
        assert_eq!(PeriodPlan::new(None, None), PeriodPlan { months: Some((None, None)), edges: vec![] });
        let to = at(2026, 6, 20, 0);
        let plan = PeriodPlan::new(None, Some(to));
        assert_eq!(plan.months, Some((None, Some("2026-06".into()))));
        assert_eq!(plan.edges, vec![(Some(at(2026, 6, 1, 0).millis()), Some(to.millis()))]);
    }
}

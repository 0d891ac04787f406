//! The monthly list (驻网办事清单): what an on-grid service day (驻网办事日) works through in a
//! grid, a village or the whole street: every request raised that month, plus every request
//! from an earlier month that is still open (carried over, marked as such), classified by area
//! (village, grid, micro-grid), category, responsible office, deadline and completion status,
//! with a summary per grid; and its XLSX export (a summary sheet, then one sheet per grid).
//!
//! The summary's figures count the month's own requests; carried-over ones are counted apart
//! (`carried_over`), so a month's resolution rate is not changed by what came before it.
//! "Still open" is judged by the index, which holds each request's status now.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{Format, FormatAlign, FormatBorder, Workbook, Worksheet};
use serde::Serialize;

use super::{scope_clause, scope_grids, status_label, Scope, Sql, CST_OFFSET_MS};
use crate::error::{CoreError, Result};
use crate::model::category;
use crate::store::Store;
use crate::time::Timestamp;

/// A calendar month in China Standard Time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
}

impl Month {
    /// Reads `2026-10`, `2026/10`, `2026-10-05` (its month) or `2026年10月`.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let bad = || CoreError::invalid("month", format!("'{t}' is not a month; write it as 2026-10"));
        let cleaned = t.replace('年', "-").replace('月', "").replace('/', "-");
        let mut parts = cleaned.split('-').filter(|p| !p.is_empty());
        let year: i32 = parts.next().and_then(|y| y.trim().parse().ok()).ok_or_else(bad)?;
        let month: u32 = parts.next().and_then(|m| m.trim().parse().ok()).ok_or_else(bad)?;
        if let Some(day) = parts.next() {
            let day: u32 = day.trim().parse().map_err(|_| bad())?;
            NaiveDate::from_ymd_opt(year, month, day).ok_or_else(bad)?;
        }
        if parts.next().is_some() || !(1..=12).contains(&month) || !(1900..=9999).contains(&year) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    /// The month a moment falls in.
    pub fn of(t: Timestamp) -> Self {
        let local = t.0 + chrono::Duration::milliseconds(CST_OFFSET_MS);
        Month { year: local.year(), month: local.month() }
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    /// `2026-10`.
    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// `2026年10月`.
    pub fn label(self) -> String {
        format!("{}年{}月", self.year, self.month)
    }

    fn start_millis(self) -> i64 {
        let date = NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a checked month");
        date.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis() - CST_OFFSET_MS
    }

    /// Its first moment and the first moment of the next month, in milliseconds.
    pub fn bounds(self) -> (i64, i64) {
        (self.start_millis(), self.next().start_millis())
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

/// Where a request of the list stands, as the service day reads it (完成情况).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// 已办结: resolved (see the module documentation of `report`).
    Resolved,
    /// 办理中: accepted, with an office or reopened, deadline not passed.
    InProgress,
    /// 已逾期: open with its deadline passed at `now`.
    Overdue,
    /// 待研判: waiting for triage.
    Untriaged,
    /// 不予受理: rejected.
    Rejected,
    /// 已合并: merged into another request.
    Merged,
    /// 已关闭: closed after a rejection or merge, without a resolution.
    ClosedUnresolved,
}

impl Completion {
    pub fn label(self) -> &'static str {
        match self {
            Completion::Resolved => "已办结",
            Completion::InProgress => "办理中",
            Completion::Overdue => "已逾期",
            Completion::Untriaged => "待研判",
            Completion::Rejected => "不予受理",
            Completion::Merged => "已合并",
            Completion::ClosedUnresolved => "已关闭",
        }
    }

    /// From an index row's status, resolution and deadline.
    pub fn of(status: &str, resolved_at: Option<i64>, deadline: Option<i64>, now: Timestamp) -> Self {
        if resolved_at.is_some() {
            return Completion::Resolved;
        }
        match status {
            "new" if deadline.is_some_and(|d| d < now.millis()) => Completion::Overdue,
            "new" => Completion::Untriaged,
            "accepted" | "assigned" | "reopened" if deadline.is_some_and(|d| d < now.millis()) => Completion::Overdue,
            "accepted" | "assigned" | "reopened" => Completion::InProgress,
            "rejected" => Completion::Rejected,
            "merged" => Completion::Merged,
            _ => Completion::ClosedUnresolved,
        }
    }
}

/// One request of the monthly list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthlyRow {
    pub id: String,
    /// The number people read (`261205-7-3`), for requests raised since numbers exist.
    pub number: Option<String>,
    /// The grid's village (村/社区); `None` for an enterprise grid under the street.
    pub village: Option<String>,
    pub village_name: String,
    pub grid: String,
    pub grid_name: String,
    pub enterprise_grid: bool,
    pub micro_grid: Option<String>,
    pub micro_grid_name: String,
    pub category: String,
    pub category_name: String,
    pub urgency: String,
    pub department: Option<String>,
    pub department_name: String,
    /// village, town or county (三级联动).
    pub level: Option<String>,
    pub deadline: Option<i64>,
    pub status: String,
    pub status_name: &'static str,
    pub completion: Completion,
    pub completion_name: &'static str,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    pub address: String,
    pub description: String,
    /// Raised in an earlier month and still open: carried over to this month's list.
    pub carried_over: bool,
}

/// One grid's line of the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GridSummary {
    pub grid: String,
    pub grid_name: String,
    pub village: Option<String>,
    pub village_name: String,
    pub enterprise_grid: bool,
    pub total: i64,
    pub resolved: i64,
    pub in_progress: i64,
    pub overdue: i64,
    pub untriaged: i64,
    /// Rejected, merged, or closed after either.
    pub not_handled: i64,
    /// resolved / (total - untriaged - not_handled), as the dashboard's 办结率.
    pub resolution_rate: Option<f64>,
    /// Requests from earlier months still open, listed with this month's (not in `total`).
    pub carried_over: i64,
}

/// The monthly list of a scope.
#[derive(Debug, Clone, Serialize)]
pub struct MonthlyList {
    pub scope: Scope,
    /// The scope's name: the street's, the village's or the grid's.
    pub scope_name: String,
    pub month: Month,
    /// Requests created in `[from, to)` (milliseconds) are listed, and those created before
    /// `from` that are still open (marked `carried_over`).
    pub from: i64,
    pub to: i64,
    pub now: i64,
    /// Ordered by village, grid, creation time (carried-over requests first in their grid).
    pub rows: Vec<MonthlyRow>,
    /// Every grid of the scope, with or without requests this month, in the rows' order.
    pub grids: Vec<GridSummary>,
    /// The whole scope.
    pub total: GridSummary,
}

fn summarise(s: &mut GridSummary, c: Completion) {
    s.total += 1;
    match c {
        Completion::Resolved => s.resolved += 1,
        Completion::InProgress => s.in_progress += 1,
        Completion::Overdue => s.overdue += 1,
        Completion::Untriaged => s.untriaged += 1,
        Completion::Rejected | Completion::Merged | Completion::ClosedUnresolved => s.not_handled += 1,
    }
}

fn finish(s: &mut GridSummary) {
    let handled = s.resolved + s.in_progress + s.overdue;
    // An overdue request still waiting for triage is not handled yet.
    s.resolution_rate = (handled > 0).then(|| s.resolved as f64 / handled as f64);
}

/// The monthly list of `scope` for `month`, judged at `now`, from the index.
pub fn monthly_list(store: &Store, scope: &Scope, month: Month, now: Timestamp) -> Result<MonthlyList> {
    let conn = store.connection();
    let grids = scope_grids(store, scope)?;
    let (from, to) = month.bounds();

    // The grids of the scope with their villages: every one gets a summary line.
    let mut sql = Sql::default();
    let mut clauses = vec!["g.kind = 'grid'".to_string()];
    clauses.extend(scope_clause(&mut sql, &grids, "g.id"));
    let text = format!(
        "SELECT g.id, g.name, g.enterprise_grid, v.id, v.name, v.kind
           FROM areas g LEFT JOIN areas v ON v.id = g.parent
          WHERE {} ORDER BY g.enterprise_grid, v.id, g.id",
        clauses.join(" AND ")
    );
    let mut summaries: Vec<GridSummary> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(&text)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |r| {
            let parent_kind: Option<String> = r.get(5)?;
            let is_village = parent_kind.as_deref() == Some("village");
            Ok(GridSummary {
                grid: r.get(0)?,
                grid_name: r.get(1)?,
                enterprise_grid: r.get(2)?,
                village: if is_village { r.get(3)? } else { None },
                village_name: if is_village {
                    r.get::<_, Option<String>>(4)?.unwrap_or_default()
                } else {
                    String::new()
                },
                ..Default::default()
            })
        })?;
        for row in rows {
            summaries.push(row?);
        }
    }
    let position: BTreeMap<String, usize> = summaries.iter().enumerate().map(|(i, s)| (s.grid.clone(), i)).collect();

    let mut sql = Sql::default();
    let mut clauses = Vec::new();
    clauses.extend(scope_clause(&mut sql, &grids, "r.grid"));
    // See `set_clauses`: with grids named, a grid's rows come from the grid's index.
    let created = if grids.is_some() { "+r.created_at" } else { "r.created_at" };
    // This month's requests, and those of earlier months still open (carried over).
    let (from_a, to_b, from_c) = (sql.bind(from), sql.bind(to), sql.bind(from));
    clauses.push(format!(
        "(({created} >= {from_a} AND {created} < {to_b}) OR ({created} < {from_c} AND r.status IN ('new', 'accepted', 'assigned', 'reopened')))"
    ));
    let text = format!(
        "SELECT r.id, r.grid, r.micro_grid, m.name, r.category, r.urgency, r.department, d.name, r.level,
                r.deadline, r.status, r.created_at, r.resolved_at, r.address, r.description, r.number
           FROM request_index r
           LEFT JOIN areas m ON m.id = r.micro_grid
           LEFT JOIN departments d ON d.id = r.department
          WHERE {}",
        clauses.join(" AND ")
    );
    let mut rows: Vec<MonthlyRow> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(&text)?;
        let mut q = stmt.query(rusqlite::params_from_iter(sql.params.iter()))?;
        while let Some(r) = q.next()? {
            let grid: String = r.get(1)?;
            let cat: String = r.get(4)?;
            let department: Option<String> = r.get(6)?;
            let status: String = r.get(10)?;
            let deadline: Option<i64> = r.get(9)?;
            let resolved_at: Option<i64> = r.get(12)?;
            let completion = Completion::of(&status, resolved_at, deadline, now);
            let area = position.get(&grid).map(|&i| &summaries[i]);
            rows.push(MonthlyRow {
                id: r.get(0)?,
                number: r.get(15)?,
                village: area.and_then(|a| a.village.clone()),
                village_name: area.map(|a| a.village_name.clone()).unwrap_or_default(),
                grid_name: area.map(|a| a.grid_name.clone()).unwrap_or_else(|| grid.clone()),
                enterprise_grid: area.is_some_and(|a| a.enterprise_grid),
                grid,
                micro_grid: r.get(2)?,
                micro_grid_name: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                category_name: category(&cat).map(|c| c.zh.to_string()).unwrap_or_else(|| cat.clone()),
                category: cat,
                urgency: r.get(5)?,
                department_name: r.get::<_, Option<String>>(7)?.or_else(|| department.clone()).unwrap_or_default(),
                department,
                level: r.get(8)?,
                deadline,
                status_name: status_label(&status),
                status,
                completion,
                completion_name: completion.label(),
                created_at: r.get(11)?,
                resolved_at,
                address: r.get(13)?,
                description: r.get(14)?,
                carried_over: r.get::<_, i64>(11)? < from,
            });
        }
    }
    // The order of the summary (enterprise grids last, then village, then grid), then time.
    rows.sort_by(|a, b| {
        let pa = position.get(&a.grid).copied().unwrap_or(usize::MAX);
        let pb = position.get(&b.grid).copied().unwrap_or(usize::MAX);
        (pa, &a.grid, a.created_at, &a.id).cmp(&(pb, &b.grid, b.created_at, &b.id))
    });

    let mut total = GridSummary { grid: String::new(), grid_name: "合计".into(), ..Default::default() };
    for row in &rows {
        if row.carried_over {
            if let Some(&i) = position.get(&row.grid) {
                summaries[i].carried_over += 1;
            }
            total.carried_over += 1;
            continue;
        }
        if let Some(&i) = position.get(&row.grid) {
            summarise(&mut summaries[i], row.completion);
        }
        summarise(&mut total, row.completion);
    }
    summaries.iter_mut().for_each(finish);
    finish(&mut total);

    let scope_name = match scope {
        Scope::All => conn
            .query_row("SELECT name FROM areas WHERE kind = 'town' ORDER BY id LIMIT 1", [], |r| r.get(0))
            .unwrap_or_else(|_| "全部".to_string()),
        Scope::Village(id) | Scope::Grid(id) => {
            conn.query_row("SELECT name FROM areas WHERE id = ?1", [id], |r| r.get(0)).unwrap_or_else(|_| id.clone())
        }
    };
    Ok(MonthlyList {
        scope: scope.clone(),
        scope_name,
        month,
        from,
        to,
        now: now.millis(),
        rows,
        grids: summaries,
        total,
    })
}

// ----- XLSX ----------------------------------------------------------------------------------

/// What `write_monthly_xlsx` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct XlsxReport {
    pub file: String,
    /// The sheet names, summary first.
    pub sheets: Vec<String>,
    pub requests: usize,
}

/// The summary sheet's name.
pub const SUMMARY_SHEET: &str = "汇总";

/// Column headers of a grid's sheet (after the title row).
pub const GRID_HEADERS: [&str; 17] = [
    "序号",
    "编号",
    "村/社区",
    "网格",
    "微网格",
    "诉求类别",
    "诉求内容",
    "地址",
    "紧急程度",
    "责任科室",
    "层级",
    "提出时间",
    "办理期限",
    "办结时间",
    "办理状态",
    "完成情况",
    "往月结转",
];

/// Column headers of the summary sheet (after the title row).
pub const SUMMARY_HEADERS: [&str; 10] = [
    "村/社区",
    "网格",
    "诉求总数",
    "已办结",
    "办理中",
    "已逾期",
    "待研判",
    "不予受理/合并",
    "办结率",
    "往月结转未办结",
];

fn time_text(ms: Option<i64>) -> String {
    ms.and_then(|m| Timestamp::from_millis(m).ok()).map(|t| t.display()).unwrap_or_default()
}

fn urgency_label(u: &str) -> &str {
    match u {
        "low" => "低",
        "normal" => "一般",
        "high" => "较急",
        "urgent" => "紧急",
        other => other,
    }
}

fn level_label(l: Option<&str>) -> &str {
    match l {
        Some("village") => "村级",
        Some("town") => "镇级",
        Some("county") => "县级",
        Some(other) => other,
        None => "",
    }
}

/// A sheet name Excel accepts: at most 31 characters, none of `[]:*?/\`, not starting or ending
/// with an apostrophe, and unique in the workbook (case-insensitively).
fn sheet_name(wanted: &str, taken: &mut HashSet<String>) -> String {
    let clean: String = wanted
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect::<String>()
        .trim_matches('\'')
        .to_string();
    let clean = if clean.trim().is_empty() { "网格".to_string() } else { clean };
    let mut n = 1;
    loop {
        let suffix = if n == 1 { String::new() } else { format!("({n})") };
        let room = 31 - suffix.chars().count();
        let candidate: String = clean.chars().take(room).collect::<String>() + &suffix;
        if taken.insert(candidate.to_lowercase()) {
            return candidate;
        }
        n += 1;
    }
}

fn xerr(e: rust_xlsxwriter::XlsxError) -> CoreError {
    CoreError::Export(e.to_string())
}

/// Writes `list` as a workbook: the summary sheet (汇总) with a line per grid and a total, then a
/// sheet per grid with requests that month, named after the grid. Each sheet starts with a title
/// row, then its headers. Written to a temporary name and renamed, so a failed export never
/// leaves half a file.
/// `write_monthly_xlsx`, recorded in the store's access log (who, when, which month and scope):
/// what the hall console and the command line call.
pub fn export_monthly_xlsx(
    store: &crate::Store,
    ctx: &crate::ActionContext,
    list: &MonthlyList,
    path: &Path,
) -> Result<XlsxReport> {
    let written = write_monthly_xlsx(list, path)?;
    let detail = format!("{} requests in {} sheets to {}", written.requests, written.sheets.len(), path.display());
    let subject = format!("{} {}", list.scope_name, list.month.key());
    if let Err(e) = store.record_access(ctx, crate::store::access::AccessKind::ExportMonthly, &subject, &detail) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(written)
}

pub fn write_monthly_xlsx(list: &MonthlyList, path: &Path) -> Result<XlsxReport> {
    let file_name =
        path.file_name().ok_or_else(|| CoreError::Export(format!("{} is not a file name", path.display())))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".partial");
    let tmp = path.with_file_name(tmp_name);
    let written = build_workbook(list, &tmp).and_then(|sheets| {
        std::fs::rename(&tmp, path)?;
        Ok(sheets)
    });
    match written {
        Ok(sheets) => Ok(XlsxReport { file: path.display().to_string(), sheets, requests: list.rows.len() }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(CoreError::Export(format!("cannot write {}: {e}", path.display())))
        }
    }
}

fn build_workbook(list: &MonthlyList, tmp: &Path) -> Result<Vec<String>> {
    let mut book = Workbook::new();
    let title = Format::new().set_bold().set_font_size(14);
    let head = Format::new()
        .set_bold()
        .set_align(FormatAlign::Center)
        .set_border(FormatBorder::Thin)
        .set_background_color(rust_xlsxwriter::Color::RGB(0xDDEBF7));
    let cell = Format::new().set_border(FormatBorder::Thin).set_text_wrap();
    let percent = Format::new().set_border(FormatBorder::Thin).set_num_format("0.0%");
    let mut taken = HashSet::new();
    let mut names = Vec::new();

    // The summary.
    let sheet = book.add_worksheet();
    let name = sheet_name(SUMMARY_SHEET, &mut taken);
    sheet.set_name(&name).map_err(xerr)?;
    names.push(name);
    sheet
        .write_string_with_format(0, 0, format!("{} {} 驻网办事清单汇总", list.scope_name, list.month.label()), &title)
        .map_err(xerr)?;
    write_headers(sheet, &SUMMARY_HEADERS, &head)?;
    let lines = list.grids.iter().chain(std::iter::once(&list.total));
    for (i, s) in lines.enumerate() {
        let row = i as u32 + 2;
        let village = if s.enterprise_grid { "企业网格" } else { s.village_name.as_str() };
        sheet.write_string_with_format(row, 0, village, &cell).map_err(xerr)?;
        sheet.write_string_with_format(row, 1, &s.grid_name, &cell).map_err(xerr)?;
        for (c, n) in
            [s.total, s.resolved, s.in_progress, s.overdue, s.untriaged, s.not_handled].into_iter().enumerate()
        {
            sheet.write_number_with_format(row, c as u16 + 2, n as f64, &cell).map_err(xerr)?;
        }
        match s.resolution_rate {
            Some(r) => sheet.write_number_with_format(row, 8, r, &percent).map_err(xerr)?,
            None => sheet.write_string_with_format(row, 8, "—", &cell).map_err(xerr)?,
        };
        sheet.write_number_with_format(row, 9, s.carried_over as f64, &cell).map_err(xerr)?;
    }
    sheet.set_column_width(0, 14).map_err(xerr)?;
    sheet.set_column_width(1, 22).map_err(xerr)?;
    sheet.set_column_range_width(2, 9, 12).map_err(xerr)?;
    sheet.set_freeze_panes(2, 0).map_err(xerr)?;
    sheet.set_landscape();
    sheet.set_paper_size(9); // A4

    // A sheet per grid with requests.
    let mut start = 0;
    while start < list.rows.len() {
        let grid = &list.rows[start].grid;
        let end = start + list.rows[start..].iter().take_while(|r| &r.grid == grid).count();
        let rows = &list.rows[start..end];
        let sheet = book.add_worksheet();
        let name = sheet_name(&rows[0].grid_name, &mut taken);
        sheet.set_name(&name).map_err(xerr)?;
        names.push(name);
        let place = if rows[0].village_name.is_empty() {
            rows[0].grid_name.clone()
        } else {
            format!("{} {}", rows[0].village_name, rows[0].grid_name)
        };
        sheet
            .write_string_with_format(0, 0, format!("{place} {} 驻网办事清单", list.month.label()), &title)
            .map_err(xerr)?;
        write_headers(sheet, &GRID_HEADERS, &head)?;
        for (i, r) in rows.iter().enumerate() {
            let row = i as u32 + 2;
            sheet.write_number_with_format(row, 0, (i + 1) as f64, &cell).map_err(xerr)?;
            let village = if r.enterprise_grid { "企业网格" } else { r.village_name.as_str() };
            let texts: [&str; 16] = [
                r.number.as_deref().unwrap_or(&r.id),
                village,
                &r.grid_name,
                &r.micro_grid_name,
                &r.category_name,
                &r.description,
                &r.address,
                urgency_label(&r.urgency),
                &r.department_name,
                level_label(r.level.as_deref()),
                &time_text(Some(r.created_at)),
                &time_text(r.deadline),
                &time_text(r.resolved_at),
                r.status_name,
                r.completion_name,
                if r.carried_over { "是" } else { "" },
            ];
            for (c, t) in texts.iter().enumerate() {
                sheet.write_string_with_format(row, c as u16 + 1, *t, &cell).map_err(xerr)?;
            }
        }
        for (c, w) in [5.0, 12.0, 10.0, 18.0, 18.0, 10.0, 40.0, 24.0, 8.0, 14.0, 6.0, 16.0, 16.0, 16.0, 9.0, 9.0, 9.0]
            .into_iter()
            .enumerate()
        {
            sheet.set_column_width(c as u16, w).map_err(xerr)?;
        }
        sheet.set_freeze_panes(2, 0).map_err(xerr)?;
        sheet.set_landscape();
        sheet.set_paper_size(9);
        start = end;
    }
    book.save(tmp).map_err(xerr)?;
    Ok(names)
}

fn write_headers(sheet: &mut Worksheet, headers: &[&str], format: &Format) -> Result<()> {
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string_with_format(1, c as u16, *h, format).map_err(xerr)?;
    }
    Ok(())
}

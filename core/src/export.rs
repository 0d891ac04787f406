//! Exports of requests: CSV and XLSX from the index (one row per request, Chinese headers, as a
//! hall hands them on), JSON with each request's full document (header, body, derived state and
//! history).

use std::path::Path;

use rust_xlsxwriter::{Format, Workbook};
use serde::Serialize;

use crate::error::{CoreError, Result};
use crate::model::category;
use crate::store::access::AccessKind;
use crate::store::{RequestFilter, RequestSummary, Store};
use crate::time::Timestamp;
use crate::ActionContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Csv,
    Xlsx,
    Json,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "csv" => ExportFormat::Csv,
            "xlsx" => ExportFormat::Xlsx,
            "json" => ExportFormat::Json,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub file: String,
    pub format: ExportFormat,
    pub requests: usize,
}

const HEADERS: [&str; 10] =
    ["编号", "网格", "类别", "状态", "紧急程度", "责任科室", "责任人", "期限", "地址", "诉求内容"];

fn time_text(ms: Option<i64>) -> String {
    ms.and_then(|m| Timestamp::from_millis(m).ok()).map(|t| t.display()).unwrap_or_default()
}

fn row(r: &RequestSummary) -> [String; 10] {
    [
        // The number people read; the id only for requests raised before numbers existed.
        r.number.clone().unwrap_or_else(|| r.id.clone()),
        r.grid.clone(),
        category(&r.category).map(|c| c.zh.to_string()).unwrap_or_else(|| r.category.clone()),
        r.status.clone(),
        r.urgency.clone(),
        r.department.clone().unwrap_or_default(),
        r.owner.clone(),
        time_text(r.deadline),
        r.address.clone(),
        r.description.clone(),
    ]
}

fn all_matching(store: &Store, filter: &RequestFilter) -> Result<Vec<RequestSummary>> {
    let mut out = Vec::new();
    let mut page = RequestFilter { limit: 1000, offset: 0, ..filter.clone() };
    loop {
        let rows = store.list_requests(&page)?;
        let n = rows.len();
        out.extend(rows);
        if n < page.limit {
            return Ok(out);
        }
        page.offset += n;
    }
}

/// Writes the requests matching `filter` to `path`. The file is written to a temporary name and
/// renamed, so a failed export never leaves half a file.
pub fn export_requests(
    store: &Store,
    ctx: &ActionContext,
    filter: &RequestFilter,
    format: ExportFormat,
    path: &Path,
) -> Result<ExportReport> {
    let rows = all_matching(store, filter)?;
    let file_name =
        path.file_name().ok_or_else(|| CoreError::Export(format!("{} is not a file name", path.display())))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".partial");
    let tmp = path.with_file_name(tmp_name);
    let written = write_rows(store, &rows, format, &tmp).and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::Export(format!("cannot write {}: {e}", path.display())));
    }
    // No export without its line in the access log: a file whose line cannot be written goes.
    let scope = if filter.grids.is_empty() { "all grids".to_string() } else { filter.grids.join(",") };
    let detail = format!("{} requests as {format:?} to {}", rows.len(), path.display());
    if let Err(e) = store.record_access(ctx, AccessKind::ExportRequests, &scope, &detail) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(ExportReport { file: path.display().to_string(), format, requests: rows.len() })
}

fn write_rows(store: &Store, rows: &[RequestSummary], format: ExportFormat, tmp: &Path) -> Result<()> {
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_path(tmp).map_err(|e| CoreError::Export(e.to_string()))?;
            w.write_record(HEADERS).map_err(|e| CoreError::Export(e.to_string()))?;
            for r in rows {
                w.write_record(row(r)).map_err(|e| CoreError::Export(e.to_string()))?;
            }
            w.flush()?;
        }
        ExportFormat::Xlsx => {
            let mut book = Workbook::new();
            let sheet = book.add_worksheet();
            sheet.set_name("诉求").map_err(|e| CoreError::Export(e.to_string()))?;
            let bold = Format::new().set_bold();
            for (c, h) in HEADERS.iter().enumerate() {
                sheet.write_string_with_format(0, c as u16, *h, &bold).map_err(|e| CoreError::Export(e.to_string()))?;
            }
            for (i, r) in rows.iter().enumerate() {
                for (c, v) in row(r).iter().enumerate() {
                    sheet.write_string(i as u32 + 1, c as u16, v).map_err(|e| CoreError::Export(e.to_string()))?;
                }
            }
            book.save(tmp).map_err(|e| CoreError::Export(e.to_string()))?;
        }
        ExportFormat::Json => {
            let views = rows.iter().map(|r| store.request(&r.id)).collect::<Result<Vec<_>>>()?;
            let text = serde_json::to_string_pretty(&views).map_err(|e| CoreError::Export(e.to_string()))?;
            std::fs::write(tmp, text)?;
        }
    }
    Ok(())
}

/// What `export_reference` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceExport {
    pub dir: String,
    pub areas: usize,
    pub households: usize,
    pub enterprises: usize,
    pub departments: usize,
    pub walkers: usize,
}

/// Writes the reference lists a device needs — areas, households, enterprises, departments,
/// walkers — as CSV files in the same shape `gridwalk import` reads. With `grids`, only those
/// grids (and the villages and town above them) are included: what a walker's phone should hold.
pub fn export_reference(store: &Store, ctx: &ActionContext, dir: &Path, grids: &[String]) -> Result<ReferenceExport> {
    let report = write_reference(store, dir, grids)?;
    let scope = if grids.is_empty() { "all grids".to_string() } else { grids.join(",") };
    let detail = format!(
        "{} households, {} enterprises, {} walkers as CSV to {}",
        report.households, report.enterprises, report.walkers, report.dir
    );
    store.record_access(ctx, AccessKind::ExportReference, &scope, &detail)?;
    Ok(report)
}

fn write_reference(store: &Store, dir: &Path, grids: &[String]) -> Result<ReferenceExport> {
    use std::collections::BTreeSet;
    std::fs::create_dir_all(dir)?;
    let areas = store.areas()?;
    let wanted_grids: BTreeSet<String> = if grids.is_empty() {
        store.grids()?.into_iter().map(|a| a.id).collect()
    } else {
        for g in grids {
            if !areas.iter().any(|a| &a.id == g && a.kind == crate::model::AreaKind::Grid) {
                return Err(CoreError::UnknownGrid(g.clone()));
            }
        }
        grids.iter().cloned().collect()
    };
    // Keep each wanted grid, its micro-grids, and every area above it.
    let mut keep: BTreeSet<String> = wanted_grids.clone();
    for a in &areas {
        if a.kind == crate::model::AreaKind::MicroGrid && a.parent.as_ref().is_some_and(|p| wanted_grids.contains(p)) {
            keep.insert(a.id.clone());
        }
    }
    for g in &wanted_grids {
        let mut parent = areas.iter().find(|a| &a.id == g).and_then(|a| a.parent.clone());
        while let Some(p) = parent {
            keep.insert(p.clone());
            parent = areas.iter().find(|a| a.id == p).and_then(|a| a.parent.clone());
        }
    }
    let csv_err = |e: csv::Error| CoreError::Export(e.to_string());
    let write = |name: &str, header: &[&str], rows: Vec<Vec<String>>| -> Result<usize> {
        let path = dir.join(name);
        let mut w = csv::Writer::from_path(&path).map_err(csv_err)?;
        w.write_record(header).map_err(csv_err)?;
        let n = rows.len();
        for r in rows {
            w.write_record(r).map_err(csv_err)?;
        }
        w.flush()?;
        Ok(n)
    };
    // Parents before children, so the file imports in order.
    let depth = |k: crate::model::AreaKind| k as u8;
    let mut kept: Vec<&crate::model::Area> = areas.iter().filter(|a| keep.contains(&a.id)).collect();
    kept.sort_by_key(|a| (depth(a.kind), a.id.clone()));
    let areas_n = write(
        "areas.csv",
        &["id", "kind", "name", "parent", "enterprise_grid"],
        kept.iter()
            .map(|a| {
                vec![
                    a.id.clone(),
                    a.kind.as_str().into(),
                    a.name.clone(),
                    a.parent.clone().unwrap_or_default(),
                    u8::from(a.enterprise_grid).to_string(),
                ]
            })
            .collect(),
    )?;
    let mut households = Vec::new();
    let mut enterprises = Vec::new();
    for g in &wanted_grids {
        for h in store.households(g)? {
            households.push(vec![
                h.id,
                h.grid,
                h.micro_grid.unwrap_or_default(),
                h.address,
                h.head_name,
                h.phone.unwrap_or_default(),
                h.members.to_string(),
                h.tags.join(";"),
            ]);
        }
        for e in store.enterprises(g)? {
            enterprises.push(vec![
                e.id,
                e.grid,
                e.name,
                e.address,
                e.contact.unwrap_or_default(),
                e.phone.unwrap_or_default(),
                e.scale.unwrap_or_default(),
                e.tags.join(";"),
            ]);
        }
    }
    let households_n = write(
        "households.csv",
        &["id", "grid", "micro_grid", "address", "head_name", "phone", "members", "tags"],
        households,
    )?;
    let enterprises_n =
        write("enterprises.csv", &["id", "grid", "name", "address", "contact", "phone", "scale", "tags"], enterprises)?;
    let departments_n = write(
        "departments.csv",
        &["id", "name", "level"],
        store.departments()?.into_iter().map(|d| vec![d.id, d.name, d.level.as_str().into()]).collect(),
    )?;
    let walkers_n = write(
        "walkers.csv",
        &["id", "name", "phone", "role", "work_group", "grids"],
        store
            .walkers()?
            .into_iter()
            .filter(|w| grids.is_empty() || w.grids.iter().any(|g| wanted_grids.contains(g)))
            .map(|w| {
                let gs: Vec<String> = w.grids.into_iter().filter(|g| wanted_grids.contains(g)).collect();
                vec![w.id, w.name, w.phone.unwrap_or_default(), w.role.as_str().into(), String::new(), gs.join(";")]
            })
            .collect(),
    )?;
    Ok(ReferenceExport {
        dir: dir.display().to_string(),
        areas: areas_n,
        households: households_n,
        enterprises: enterprises_n,
        departments: departments_n,
        walkers: walkers_n,
    })
}

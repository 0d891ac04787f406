//! Exports of requests: CSV and XLSX from the index (one row per request, Chinese headers, as a
//! hall hands them on), JSON with each request's full document (header, body, derived state and
//! history).

use std::path::Path;

use rust_xlsxwriter::{Format, Workbook};
use serde::Serialize;

use crate::error::{CoreError, Result};
use crate::model::category;
use crate::store::{RequestFilter, RequestSummary, Store};
use crate::time::Timestamp;

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

const HEADERS: [&str; 10] = ["编号", "网格", "类别", "状态", "紧急程度", "责任科室", "责任人", "期限", "地址", "诉求内容"];

fn time_text(ms: Option<i64>) -> String {
    ms.and_then(|m| Timestamp::from_millis(m).ok())
        .map(|t| t.display())
        .unwrap_or_default()
}

fn row(r: &RequestSummary) -> [String; 10] {
    [
        r.id.clone(),
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
    let mut page = RequestFilter {
        limit: 1000,
        offset: 0,
        ..filter.clone()
    };
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
pub fn export_requests(store: &Store, filter: &RequestFilter, format: ExportFormat, path: &Path) -> Result<ExportReport> {
    let rows = all_matching(store, filter)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| CoreError::Export(format!("{} is not a file name", path.display())))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(".partial");
    let tmp = path.with_file_name(tmp_name);
    let written = write_rows(store, &rows, format, &tmp).and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::Export(format!("cannot write {}: {e}", path.display())));
    }
    Ok(ExportReport {
        file: path.display().to_string(),
        format,
        requests: rows.len(),
    })
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
                sheet
                    .write_string_with_format(0, c as u16, *h, &bold)
                    .map_err(|e| CoreError::Export(e.to_string()))?;
            }
            for (i, r) in rows.iter().enumerate() {
                for (c, v) in row(r).iter().enumerate() {
                    sheet
                        .write_string(i as u32 + 1, c as u16, v)
                        .map_err(|e| CoreError::Export(e.to_string()))?;
                }
            }
            book.save(tmp).map_err(|e| CoreError::Export(e.to_string()))?;
        }
        ExportFormat::Json => {
            let views = rows
                .iter()
                .map(|r| store.request(&r.id))
                .collect::<Result<Vec<_>>>()?;
            let text = serde_json::to_string_pretty(&views).map_err(|e| CoreError::Export(e.to_string()))?;
            std::fs::write(tmp, text)?;
        }
    }
    Ok(())
}

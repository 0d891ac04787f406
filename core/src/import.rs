//! Importing reference lists (areas, households, enterprises, departments, walkers) from the CSV
//! and XLSX files halls already keep. A file is imported whole or not at all: every row is read
//! and checked, then all are written in one transaction; the first bad row is reported with its
//! line number and nothing is written.

use std::collections::HashMap;
use std::path::Path;

use calamine::{open_workbook_auto, Data, Reader};
use serde::Serialize;

use crate::error::{CoreError, Result};
use crate::model::{Area, AreaKind, Department, Enterprise, Household, Level, Role, Walker};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    Areas,
    Households,
    Enterprises,
    Departments,
    Walkers,
}

impl ImportKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "areas" | "grids" => ImportKind::Areas,
            "households" => ImportKind::Households,
            "enterprises" => ImportKind::Enterprises,
            "departments" => ImportKind::Departments,
            "walkers" => ImportKind::Walkers,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub kind: ImportKind,
    pub file: String,
    pub rows: usize,
}

/// A row with its line number in the file (1-based, the header being line 1).
struct Row {
    line: u64,
    cells: HashMap<String, String>,
}

/// Column names accepted for each field: English first, then the Chinese a hall's sheet uses.
const ALIASES: &[(&str, &[&str])] = &[
    ("id", &["id", "编号", "代码"]),
    ("kind", &["kind", "类型", "层级"]),
    ("name", &["name", "名称", "姓名", "企业名称"]),
    ("parent", &["parent", "上级", "上级编号"]),
    ("enterprise_grid", &["enterprise_grid", "企业网格"]),
    ("grid", &["grid", "网格", "网格编号"]),
    ("micro_grid", &["micro_grid", "微网格"]),
    ("address", &["address", "地址", "住址"]),
    ("head_name", &["head_name", "户主", "户主姓名"]),
    ("phone", &["phone", "电话", "联系电话"]),
    ("members", &["members", "人数", "家庭人数"]),
    ("tags", &["tags", "标签", "特殊人群"]),
    ("contact", &["contact", "联系人"]),
    ("scale", &["scale", "规模", "企业规模"]),
    ("level", &["level", "级别"]),
    ("role", &["role", "角色"]),
    ("work_group", &["work_group", "工作组"]),
    ("grids", &["grids", "负责网格"]),
];

fn canonical(header: &str) -> String {
    let h = header.trim().trim_start_matches('\u{feff}');
    for (name, aliases) in ALIASES {
        if aliases.iter().any(|a| a.eq_ignore_ascii_case(h)) {
            return name.to_string();
        }
    }
    h.to_lowercase()
}

fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let file = path.display().to_string();
    if !path.is_file() {
        return Err(CoreError::ImportFile { file, message: "no such file".into() });
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" | "txt" => read_csv(path, &file),
        "xlsx" | "xlsm" | "xls" | "ods" => read_sheet(path, &file),
        other => Err(CoreError::ImportFile {
            file,
            message: format!("'.{other}' files cannot be imported; save the list as .csv or .xlsx"),
        }),
    }
}

fn read_csv(path: &Path, file: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| CoreError::ImportFile { file: file.to_string(), message: e.to_string() })?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| CoreError::ImportFile { file: file.to_string(), message: e.to_string() })?
        .iter()
        .map(canonical)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            let message = match e.kind() {
                csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                    format!("has {len} fields, the header has {expected_len}")
                }
                csv::ErrorKind::Utf8 { .. } => "is not UTF-8 text; save the file as UTF-8 CSV".into(),
                _ => e.to_string(),
            };
            CoreError::BadImportRow { file: file.to_string(), line, message }
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cells = headers.iter().cloned().zip(record.iter().map(|c| c.trim().to_string())).collect();
        rows.push(Row { line, cells });
    }
    Ok(rows)
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_string(),
        Data::Float(f) if f.fract() == 0.0 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn read_sheet(path: &Path, file: &str) -> Result<Vec<Row>> {
    let bad = |message: String| CoreError::ImportFile { file: file.to_string(), message };
    let mut book = open_workbook_auto(path).map_err(|e| bad(e.to_string()))?;
    let sheet = book.sheet_names().first().cloned().ok_or_else(|| bad("the workbook has no sheets".into()))?;
    let range = book.worksheet_range(&sheet).map_err(|e| bad(e.to_string()))?;
    let start_row = range.start().map(|(r, _)| r as u64).unwrap_or(0);
    let mut iter = range.rows();
    let headers: Vec<String> = match iter.next() {
        Some(h) => h.iter().map(|c| canonical(&cell_text(c))).collect(),
        None => return Ok(Vec::new()),
    };
    let mut rows = Vec::new();
    for (i, r) in iter.enumerate() {
        let texts: Vec<String> = r.iter().map(cell_text).collect();
        if texts.iter().all(|t| t.is_empty()) {
            continue;
        }
        rows.push(Row { line: start_row + i as u64 + 2, cells: headers.iter().cloned().zip(texts).collect() });
    }
    Ok(rows)
}

impl Row {
    fn required(&self, file: &str, field: &str) -> Result<String> {
        match self.cells.get(field) {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            Some(_) => Err(self.bad(file, format!("the column '{field}' is empty"))),
            None => Err(self.bad(file, format!("the file has no '{field}' column"))),
        }
    }
    fn optional(&self, field: &str) -> Option<String> {
        self.cells.get(field).filter(|v| !v.is_empty()).cloned()
    }
    fn list(&self, field: &str) -> Vec<String> {
        self.optional(field)
            .map(|v| {
                v.split([',', ';', '、', '，', '；']).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
            })
            .unwrap_or_default()
    }
    fn bad(&self, file: &str, message: String) -> CoreError {
        CoreError::BadImportRow { file: file.to_string(), line: self.line, message }
    }
}

fn truthy(v: Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "yes" | "是" | "TRUE"))
}

enum Parsed {
    Area(Area),
    Household(Household),
    Enterprise(Enterprise),
    Department(Department),
    Walker(Walker),
}

fn parse_row(kind: ImportKind, row: &Row, file: &str) -> Result<Parsed> {
    Ok(match kind {
        ImportKind::Areas => {
            let kind_text = row.required(file, "kind")?;
            let area_kind = AreaKind::parse(&kind_text).ok_or_else(|| {
                row.bad(file, format!("'{kind_text}' is not an area kind (town, village, grid, micro_grid)"))
            })?;
            Parsed::Area(Area {
                id: row.required(file, "id")?,
                kind: area_kind,
                name: row.required(file, "name")?,
                parent: row.optional("parent"),
                enterprise_grid: truthy(row.optional("enterprise_grid")),
            })
        }
        ImportKind::Households => {
            let members = match row.optional("members") {
                Some(m) => {
                    m.parse::<u32>().map_err(|_| row.bad(file, format!("members '{m}' is not a whole number")))?
                }
                None => 1,
            };
            Parsed::Household(Household {
                id: row.required(file, "id")?,
                grid: row.required(file, "grid")?,
                micro_grid: row.optional("micro_grid"),
                address: row.required(file, "address")?,
                head_name: row.required(file, "head_name")?,
                phone: row.optional("phone"),
                members,
                tags: row.list("tags"),
            })
        }
        ImportKind::Enterprises => Parsed::Enterprise(Enterprise {
            id: row.required(file, "id")?,
            grid: row.required(file, "grid")?,
            name: row.required(file, "name")?,
            address: row.required(file, "address")?,
            contact: row.optional("contact"),
            phone: row.optional("phone"),
            scale: row.optional("scale"),
            tags: row.list("tags"),
        }),
        ImportKind::Departments => {
            let level_text = row.optional("level").unwrap_or_else(|| "town".into());
            Parsed::Department(Department {
                id: row.required(file, "id")?,
                name: row.required(file, "name")?,
                level: Level::parse(&level_text)
                    .ok_or_else(|| row.bad(file, format!("'{level_text}' is not a level (village, town, county)")))?,
            })
        }
        ImportKind::Walkers => {
            let role_text = row.optional("role").unwrap_or_else(|| "walker".into());
            Parsed::Walker(Walker {
                id: row.required(file, "id")?,
                name: row.required(file, "name")?,
                phone: row.optional("phone"),
                role: Role::parse(&role_text).ok_or_else(|| {
                    row.bad(file, format!("'{role_text}' is not a role (walker, hall, admin, leader)"))
                })?,
                work_group: row.optional("work_group"),
                grids: row.list("grids"),
            })
        }
    })
}

/// Imports one list file into the store, whole or not at all.
pub fn import_file(store: &mut Store, kind: ImportKind, path: &Path) -> Result<ImportReport> {
    let file = path.display().to_string();
    let rows = read_rows(path)?;
    let parsed =
        rows.iter().map(|row| parse_row(kind, row, &file).map(|p| (row.line, p))).collect::<Result<Vec<_>>>()?;
    store.bulk(|store| {
        for (line, item) in &parsed {
            let result = match item {
                Parsed::Area(a) => store.put_area(a),
                Parsed::Household(h) => store.put_household(h),
                Parsed::Enterprise(e) => store.put_enterprise(e),
                Parsed::Department(d) => store.put_department(d),
                Parsed::Walker(w) => store.put_walker(w),
            };
            result.map_err(|e| CoreError::BadImportRow { file: file.clone(), line: *line, message: e.to_string() })?;
        }
        Ok(())
    })?;
    Ok(ImportReport { kind, file, rows: parsed.len() })
}

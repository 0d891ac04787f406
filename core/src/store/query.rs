//! Lists, filters and search. Everything here reads only the index tables, never a document, so
//! a list of a hundred thousand requests costs what its first page costs.

use rusqlite::types::Value;
use serde::Serialize;

use super::Store;
use crate::docs::GeoPoint;
use crate::error::{CoreError, Result};
use crate::lifecycle::Status;
use crate::time::Timestamp;

/// Order of a request list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestSort {
    /// Most recently changed first.
    #[default]
    UpdatedDesc,
    /// Earliest deadline first (the overdue view puts the latest-late first by this).
    DeadlineAsc,
    CreatedDesc,
}

#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Any of these grids (empty: all).
    pub grids: Vec<String>,
    /// Any of these statuses (empty: all).
    pub statuses: Vec<Status>,
    pub category: Option<String>,
    pub department: Option<String>,
    /// Only open requests whose deadline passed before this moment.
    pub overdue_at: Option<Timestamp>,
    /// Substring of address or description (Chinese works: trigram index, or a scan below three
    /// characters).
    pub text: Option<String>,
    pub created_from: Option<Timestamp>,
    pub created_before: Option<Timestamp>,
    /// Only requests whose reporter is owed the outcome (待反馈): resolved and not yet told, or
    /// a duplicate merged into a request that is resolved, its own reporter not yet told.
    pub owed_feedback: bool,
    pub sort: RequestSort,
    pub limit: usize,
    pub offset: usize,
}

/// One row of a request list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSummary {
    pub id: String,
    pub grid: String,
    pub status: String,
    pub category: String,
    pub urgency: String,
    pub department: Option<String>,
    pub owner: String,
    pub deadline: Option<i64>,
    pub updated_at: i64,
    pub created_at: i64,
    pub address: String,
    pub description: String,
    /// The number people read (`261205-7-3`); `None` for requests raised before numbers.
    pub number: Option<String>,
}

pub(crate) const SUMMARY_COLUMNS: &str =
    "id, grid, status, category, urgency, department, owner, deadline, updated_at, created_at, address, description, number";

pub(crate) fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestSummary> {
    Ok(RequestSummary {
        id: r.get(0)?,
        grid: r.get(1)?,
        status: r.get(2)?,
        category: r.get(3)?,
        urgency: r.get(4)?,
        department: r.get(5)?,
        owner: r.get(6)?,
        deadline: r.get(7)?,
        updated_at: r.get(8)?,
        created_at: r.get(9)?,
        address: r.get(10)?,
        description: r.get(11)?,
        number: r.get(12)?,
    })
}

#[derive(Debug, Clone, Default)]
pub struct VisitFilter {
    pub grid: Option<String>,
    /// Household or enterprise id.
    pub target: Option<String>,
    pub walker: Option<String>,
    pub from: Option<Timestamp>,
    pub before: Option<Timestamp>,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisitSummary {
    pub id: String,
    pub grid: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    pub kind: String,
    pub visited_at: i64,
    pub created_by: String,
    pub walkers: String,
    pub notes: String,
    pub request_count: i64,
    /// Where it was recorded, when the walker's phone could say.
    pub gps: Option<GeoPoint>,
}

/// A household or enterprise with the date it was last visited.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisitedPlace {
    pub id: String,
    pub kind: String,
    pub grid: String,
    pub name: String,
    pub address: String,
    pub last_visited_at: Option<i64>,
    /// Not visited within `stale_days` before `now`.
    pub overdue_for_visit: bool,
}

/// A request whose reporter is owed the outcome (see [`RequestFilter::owed_feedback`]).
const OWED_FEEDBACK: &str = "(status = 'resolved' OR (status = 'merged' AND told_at IS NULL AND merged_into IN \
     (SELECT t.id FROM request_index t WHERE t.resolved_at IS NOT NULL)))";

fn where_clause(filter: &RequestFilter, params: &mut Vec<Value>) -> Result<String> {
    let mut clauses: Vec<String> = Vec::new();
    let placeholders = |values: Vec<Value>, params: &mut Vec<Value>| {
        let start = params.len();
        params.extend(values);
        (start + 1..=params.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
    };
    if !filter.grids.is_empty() {
        let p = placeholders(filter.grids.iter().cloned().map(Value::Text).collect(), params);
        clauses.push(format!("grid IN ({p})"));
    }
    if !filter.statuses.is_empty() {
        let p = placeholders(filter.statuses.iter().map(|s| Value::Text(s.as_str().into())).collect(), params);
        clauses.push(format!("status IN ({p})"));
    }
    if let Some(c) = &filter.category {
        let p = placeholders(vec![Value::Text(c.clone())], params);
        clauses.push(format!("category = {p}"));
    }
    if let Some(d) = &filter.department {
        let p = placeholders(vec![Value::Text(d.clone())], params);
        clauses.push(format!("department = {p}"));
    }
    if let Some(now) = filter.overdue_at {
        let p = placeholders(vec![Value::Integer(now.millis())], params);
        clauses.push(format!(
            "status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL AND deadline < {p}"
        ));
    }
    if filter.owed_feedback {
        clauses.push(OWED_FEEDBACK.to_string());
    }
    if let Some(t) = filter.created_from {
        let p = placeholders(vec![Value::Integer(t.millis())], params);
        clauses.push(format!("created_at >= {p}"));
    }
    if let Some(t) = filter.created_before {
        let p = placeholders(vec![Value::Integer(t.millis())], params);
        clauses.push(format!("created_at < {p}"));
    }
    if let Some(text) = &filter.text {
        let text = text.trim();
        if text.is_empty() {
            return Err(CoreError::invalid("search", "the search text is empty"));
        }
        if crate::numbers::looks_like_number(text) {
            // A request number, or its start (`261205-7`): every number that begins so.
            let upper = text.to_ascii_uppercase();
            // '~' sorts after every letter and digit: [from, to) is "starts with the text".
            let from = placeholders(vec![Value::Text(upper.clone())], params);
            let to = placeholders(vec![Value::Text(format!("{upper}~"))], params);
            clauses.push(format!("(number >= {from} AND number < {to})"));
        } else if text.chars().count() >= 3 {
            // A quoted FTS5 string is matched as a phrase of trigrams: a substring search.
            let phrase = format!("\"{}\"", text.replace('"', "\"\""));
            let p = placeholders(vec![Value::Text(phrase)], params);
            clauses.push(format!("rowid IN (SELECT rowid FROM request_fts WHERE request_fts MATCH {p})"));
        } else {
            // Trigrams cannot match one or two characters (路灯); scan the text instead.
            let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let p = placeholders(vec![Value::Text(format!("%{escaped}%"))], params);
            clauses.push(format!("(address LIKE {p} ESCAPE '\\' OR description LIKE {p} ESCAPE '\\')"));
        }
    }
    Ok(if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) })
}

impl Store {
    /// A page of requests matching `filter`, from the index alone.
    pub fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<RequestSummary>> {
        let mut params = Vec::new();
        let where_sql = where_clause(filter, &mut params)?;
        let order = match filter.sort {
            RequestSort::UpdatedDesc => "updated_at DESC, id",
            RequestSort::DeadlineAsc => "deadline IS NULL, deadline ASC, id",
            RequestSort::CreatedDesc => "created_at DESC, id",
        };
        let limit = if filter.limit == 0 { 50 } else { filter.limit };
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM request_index {where_sql} ORDER BY {order} LIMIT {limit} OFFSET {}",
            filter.offset
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), summary_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The duplicates merged into request `id` (研判: merged), oldest first. Their reporters are
    /// owed feedback as much as the request's own.
    pub fn duplicates_of(&self, id: &str) -> Result<Vec<RequestSummary>> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM request_index WHERE merged_into = ?1 ORDER BY created_at, id");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([id], summary_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many requests match `filter` (limit and offset ignored).
    pub fn count_requests(&self, filter: &RequestFilter) -> Result<i64> {
        let mut params = Vec::new();
        let where_sql = where_clause(filter, &mut params)?;
        let sql = format!("SELECT COUNT(*) FROM request_index {where_sql}");
        Ok(self.conn.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(params), |r| r.get(0))?)
    }

    pub fn list_visits(&self, filter: &VisitFilter) -> Result<Vec<VisitSummary>> {
        let mut clauses = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        let mut add = |clause: &str, v: Value, params: &mut Vec<Value>| {
            params.push(v);
            clauses.push(clause.replace('?', &format!("?{}", params.len())));
        };
        if let Some(g) = &filter.grid {
            add("v.grid = ?", Value::Text(g.clone()), &mut params);
        }
        if let Some(t) = &filter.target {
            add("v.target_id = ?", Value::Text(t.clone()), &mut params);
        }
        if let Some(w) = &filter.walker {
            add("v.id IN (SELECT visit_id FROM visit_walkers WHERE walker = ?)", Value::Text(w.clone()), &mut params);
        }
        if let Some(t) = filter.from {
            add("v.visited_at >= ?", Value::Integer(t.millis()), &mut params);
        }
        if let Some(t) = filter.before {
            add("v.visited_at < ?", Value::Integer(t.millis()), &mut params);
        }
        let where_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let limit = if filter.limit == 0 { 50 } else { filter.limit };
        let sql = format!(
            "SELECT id, grid, target_kind, target_id, kind, visited_at, created_by, walkers, notes,
                request_count, lat, lon, accuracy_m FROM visit_index v {where_sql}
             ORDER BY visited_at DESC, id LIMIT {limit} OFFSET {}",
            filter.offset
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            Ok(VisitSummary {
                id: r.get(0)?,
                grid: r.get(1)?,
                target_kind: r.get(2)?,
                target_id: r.get(3)?,
                kind: r.get(4)?,
                visited_at: r.get(5)?,
                created_by: r.get(6)?,
                walkers: r.get(7)?,
                notes: r.get(8)?,
                request_count: r.get(9)?,
                gps: match (r.get::<_, Option<f64>>(10)?, r.get::<_, Option<f64>>(11)?) {
                    (Some(lat), Some(lon)) => Some(GeoPoint { lat, lon, accuracy_m: r.get(12)? }),
                    _ => None,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Households and enterprises of a grid with their last visit; those not visited within
    /// `stale_days` of `now` are marked (and listed first).
    pub fn places_by_last_visit(&self, grid: &str, now: Timestamp, stale_days: i64) -> Result<Vec<VisitedPlace>> {
        super::reference::require_grid(&self.conn, grid)?;
        let cutoff = now.millis() - stale_days * 86_400_000;
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, kind, grid, name, address, last FROM (
                SELECT h.id AS id, 'household' AS kind, h.grid AS grid, h.head_name AS name,
                       h.address AS address, lv.visited_at AS last
                  FROM households h LEFT JOIN last_visit lv ON lv.scope = 'household' AND lv.id = h.id
                 WHERE h.grid = ?1
                UNION ALL
                SELECT e.id, 'enterprise', e.grid, e.name, e.address, lv.visited_at
                  FROM enterprises e LEFT JOIN last_visit lv ON lv.scope = 'enterprise' AND lv.id = e.id
                 WHERE e.grid = ?1)
             ORDER BY last IS NOT NULL, last, id",
        )?;
        let rows = stmt.query_map([grid], |r| {
            let last: Option<i64> = r.get(5)?;
            Ok(VisitedPlace {
                id: r.get(0)?,
                kind: r.get(1)?,
                grid: r.get(2)?,
                name: r.get(3)?,
                address: r.get(4)?,
                last_visited_at: last,
                overdue_for_visit: last.is_none_or(|t| t < cutoff),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last visit to each grid (grid id, millis); grids never visited are absent.
    pub fn grid_last_visits(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, visited_at FROM last_visit WHERE scope = 'grid' ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

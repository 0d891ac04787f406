//! The list indexes beside the documents. Every function here writes only derived rows: they can
//! all be thrown away and rebuilt from the documents (`Store::rebuild_index`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::docs::{DocHeader, Reporter, RequestBody, VisitBody, VisitTarget};
use crate::error::Result;
use crate::lifecycle::RequestState;

/// Text the full-text index holds for a request.
pub(crate) fn request_search_text(body: &RequestBody) -> String {
    format!("{}\n{}", body.place.address, body.description)
}

pub(crate) fn index_request(
    conn: &Connection,
    header: &DocHeader,
    body: &RequestBody,
    state: &RequestState,
    event_count: usize,
) -> Result<()> {
    let household = match &body.reporter {
        Reporter::Resident { household, .. } => household.clone(),
        _ => None,
    };
    // An upsert, not INSERT OR REPLACE: the row keeps its rowid, which keys its search entry.
    let rowid: i64 = conn
        .prepare_cached(
            "INSERT INTO request_index (id, grid, micro_grid, status, category, urgency,
                source, department, owner, level, deadline, resolved_at, rating, reopen_count,
                created_at, created_by, updated_at, address, description, household, visit,
                event_count, merged_into, number, told_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                ?19, ?20, ?21, ?22, ?23, ?24, ?25)
             ON CONFLICT (id) DO UPDATE SET grid = excluded.grid, micro_grid = excluded.micro_grid,
                status = excluded.status, category = excluded.category, urgency = excluded.urgency,
                source = excluded.source, department = excluded.department, owner = excluded.owner,
                level = excluded.level, deadline = excluded.deadline,
                resolved_at = excluded.resolved_at, rating = excluded.rating,
                reopen_count = excluded.reopen_count, created_at = excluded.created_at,
                created_by = excluded.created_by, updated_at = excluded.updated_at,
                address = excluded.address, description = excluded.description,
                household = excluded.household, visit = excluded.visit,
                event_count = excluded.event_count, merged_into = excluded.merged_into,
                number = excluded.number, told_at = excluded.told_at
             RETURNING rowid",
        )?
        .query_row(
            params![
                header.id,
                header.grid,
                body.micro_grid,
                state.status.as_str(),
                body.category,
                body.urgency.as_str(),
                body.source.as_str(),
                state.department,
                state.owner,
                state.level.map(|l| l.as_str()),
                state.deadline.map(|d| d.millis()),
                state.resolved_at.map(|d| d.millis()),
                state.rating.map(|r| r.as_str()),
                state.reopen_count,
                header.created_at.millis(),
                header.created_by,
                state.updated_at.millis(),
                body.place.address,
                body.description,
                household,
                body.visit,
                event_count as i64,
                state.merged_into,
                body.number,
                state.told_at.map(|t| t.millis()),
            ],
            |r| r.get(0),
        )?;
    // A first pull that left the search entries to its end makes every one of them there.
    if super::sync_state::search_entries_deferred(conn)? {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM request_fts WHERE rowid = ?1")?.execute([rowid])?;
    conn.prepare_cached("INSERT INTO request_fts (rowid, body) VALUES (?1, ?2)")?
        .execute(params![rowid, request_search_text(body)])?;
    Ok(())
}

pub(crate) fn index_visit(conn: &Connection, header: &DocHeader, body: &VisitBody) -> Result<()> {
    let (target_kind, target_id) = match &body.target {
        VisitTarget::Household { id } => ("household", Some(id.as_str())),
        VisitTarget::Enterprise { id } => ("enterprise", Some(id.as_str())),
        VisitTarget::Place { .. } => ("place", None),
    };
    let at = body.visited_at.millis();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO visit_index (id, grid, micro_grid, target_kind, target_id, kind,
            visited_at, created_by, walkers, notes, request_count, lat, lon, accuracy_m)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        header.id,
        header.grid,
        body.micro_grid,
        target_kind,
        target_id,
        body.kind.as_str(),
        at,
        header.created_by,
        body.walkers.join(","),
        body.notes,
        body.requests_raised.len() as i64,
        body.gps.map(|g| g.lat),
        body.gps.map(|g| g.lon),
        body.gps.and_then(|g| g.accuracy_m),
    ])?;
    conn.prepare_cached("DELETE FROM visit_walkers WHERE visit_id = ?1")?.execute([&header.id])?;
    let mut walker_row =
        conn.prepare_cached("INSERT OR IGNORE INTO visit_walkers (walker, visited_at, visit_id) VALUES (?1, ?2, ?3)")?;
    for walker in &body.walkers {
        walker_row.execute(params![walker, at, header.id])?;
    }
    let mut last = conn.prepare_cached(
        "INSERT INTO last_visit (scope, id, grid, visited_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (scope, id) DO UPDATE SET visited_at = MAX(visited_at, excluded.visited_at)",
    )?;
    last.execute(params!["grid", header.grid, header.grid, at])?;
    if let Some(id) = target_id {
        last.execute(params![target_kind, id, header.grid, at])?;
    }
    Ok(())
}

/// Every derived row, in a fixed order, as text: two stores (or one store before and after a
/// rebuild) have equal indexes exactly when their dumps are equal.
pub(crate) fn dump(conn: &Connection) -> Result<Vec<String>> {
    let queries = [
        "SELECT 'request', * FROM request_index ORDER BY id",
        "SELECT 'visit', * FROM visit_index ORDER BY id",
        "SELECT 'visit_walker', * FROM visit_walkers ORDER BY walker, visited_at, visit_id",
        "SELECT 'last_visit', * FROM last_visit ORDER BY scope, id",
        "SELECT 'fts', r.id, f.body FROM request_fts f JOIN request_index r ON r.rowid = f.rowid ORDER BY r.id",
        "SELECT 'meeting', * FROM meeting_index ORDER BY id",
        // Counts that went back to zero stay as rows where they once were not; whether a
        // replica has such a row depends on the order it saw changes in, not on what it holds.
        "SELECT 'tally', * FROM request_tally WHERE total != 0 ORDER BY area, dim, key, month",
        "SELECT 'resolved_tally', * FROM request_resolved_tally WHERE n != 0 ORDER BY area, month, resolved_month",
        "SELECT 'deadline_tally', * FROM request_deadline_tally WHERE n != 0 ORDER BY area, dim, key, month, deadline_month",
    ];
    let mut out = Vec::new();
    for sql in queries {
        let mut stmt = conn.prepare(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let mut line = String::new();
            for i in 0..columns {
                let v: rusqlite::types::Value = row.get(i)?;
                line.push_str(&format!("{v:?}|"));
            }
            out.push(line);
        }
    }
    Ok(out)
}

/// Takes a document's rows out of the index, as if it had never been indexed: its request row
/// (the running-count triggers take it out of the counts) and search entry, its visit rows and
/// the last-visit dates they made, its meeting row. For a document that can no longer be read.
pub(crate) fn unindex(conn: &Connection, id: &str) -> Result<()> {
    let rowid: Option<i64> = conn
        .prepare_cached("SELECT rowid FROM request_index WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(rowid) = rowid {
        conn.prepare_cached("DELETE FROM request_fts WHERE rowid = ?1")?.execute([rowid])?;
        conn.prepare_cached("DELETE FROM request_index WHERE id = ?1")?.execute([id])?;
    }
    let visit: Option<(String, String, Option<String>)> = conn
        .prepare_cached("SELECT grid, target_kind, target_id FROM visit_index WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((grid, target_kind, target_id)) = visit {
        conn.prepare_cached("DELETE FROM visit_walkers WHERE visit_id = ?1")?.execute([id])?;
        conn.prepare_cached("DELETE FROM visit_index WHERE id = ?1")?.execute([id])?;
        // The last-visit dates become the latest of the remaining visits, or none.
        let grid_latest: Option<i64> = conn
            .prepare_cached("SELECT MAX(visited_at) FROM visit_index WHERE grid = ?1")?
            .query_row([&grid], |r| r.get(0))?;
        reset_last_visit(conn, "grid", &grid, &grid, grid_latest)?;
        if let Some(target) = target_id {
            let target_latest: Option<i64> = conn
                .prepare_cached("SELECT MAX(visited_at) FROM visit_index WHERE target_id = ?1 AND target_kind = ?2")?
                .query_row(params![target, target_kind], |r| r.get(0))?;
            reset_last_visit(conn, &target_kind, &target, &grid, target_latest)?;
        }
    }
    conn.prepare_cached("DELETE FROM meeting_index WHERE id = ?1")?.execute([id])?;
    Ok(())
}

fn reset_last_visit(conn: &Connection, scope: &str, id: &str, grid: &str, latest: Option<i64>) -> Result<()> {
    conn.prepare_cached("DELETE FROM last_visit WHERE scope = ?1 AND id = ?2")?.execute(params![scope, id])?;
    if let Some(at) = latest {
        conn.prepare_cached("INSERT INTO last_visit (scope, id, grid, visited_at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![scope, id, grid, at])?;
    }
    Ok(())
}

pub(crate) fn clear(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "DELETE FROM request_index; DELETE FROM visit_index; DELETE FROM visit_walkers;
         DELETE FROM last_visit; DELETE FROM request_fts; DELETE FROM meeting_index;
         DELETE FROM request_tally; DELETE FROM request_resolved_tally;
         DELETE FROM request_deadline_tally;",
    )?;
    Ok(())
}

pub(crate) fn grid_of_request(conn: &Connection, id: &str) -> Result<Option<String>> {
    Ok(conn.prepare_cached("SELECT grid FROM request_index WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?)
}

pub(crate) fn index_meeting(conn: &Connection, header: &DocHeader, body: &crate::meeting::MeetingBody) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meeting_index (id, grid, kind, held_at, place, topic, participants, requests, decisions, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, held_at = excluded.held_at, place = excluded.place,
            topic = excluded.topic, participants = excluded.participants, requests = excluded.requests,
            decisions = excluded.decisions",
    )?
    .execute(rusqlite::params![
        header.id,
        header.grid,
        body.kind.as_str(),
        body.held_at.millis(),
        body.place,
        body.topic,
        body.participants.len() as i64,
        body.requests.len() as i64,
        body.decisions.len() as i64,
        header.created_by,
    ])?;
    Ok(())
}

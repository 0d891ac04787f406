//! The store's schema, as migrations applied by `rusqlite_migration` (the version lives in
//! SQLite's `user_version`). Never edit a released migration: add a new one.

use rusqlite_migration::{HookResult, Migrations, M};

/// Version 1: reference data, documents with their incremental chunks, the outbox and the list
/// indexes.
const V1: &str = r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE areas (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('town', 'village', 'grid', 'micro_grid')),
    name TEXT NOT NULL,
    parent TEXT REFERENCES areas(id),
    enterprise_grid INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX areas_by_parent ON areas(parent);

CREATE TABLE households (
    id TEXT PRIMARY KEY,
    grid TEXT NOT NULL REFERENCES areas(id),
    micro_grid TEXT REFERENCES areas(id),
    address TEXT NOT NULL,
    head_name TEXT NOT NULL,
    phone TEXT,
    members INTEGER NOT NULL DEFAULT 1,
    tags TEXT NOT NULL DEFAULT ''
);
CREATE INDEX households_by_grid ON households(grid);

CREATE TABLE enterprises (
    id TEXT PRIMARY KEY,
    grid TEXT NOT NULL REFERENCES areas(id),
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    contact TEXT,
    phone TEXT,
    scale TEXT,
    tags TEXT NOT NULL DEFAULT ''
);
CREATE INDEX enterprises_by_grid ON enterprises(grid);

CREATE TABLE departments (id TEXT PRIMARY KEY, name TEXT NOT NULL, level TEXT NOT NULL);
CREATE TABLE work_groups (id TEXT PRIMARY KEY, name TEXT NOT NULL, leader TEXT);
CREATE TABLE walkers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    phone TEXT,
    role TEXT NOT NULL,
    work_group TEXT REFERENCES work_groups(id)
);
CREATE TABLE walker_grids (
    walker TEXT NOT NULL REFERENCES walkers(id),
    grid TEXT NOT NULL REFERENCES areas(id),
    PRIMARY KEY (walker, grid)
) WITHOUT ROWID;

-- One row per document: a full Automerge save, plus the incremental chunks saved since.
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    grid TEXT NOT NULL,
    snapshot BLOB NOT NULL,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
CREATE TABLE doc_chunks (
    doc_id TEXT NOT NULL REFERENCES documents(id),
    seq INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
) WITHOUT ROWID;

-- Local changes a relay has not acknowledged yet.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    bytes BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE request_index (
    id TEXT PRIMARY KEY,
    grid TEXT NOT NULL,
    micro_grid TEXT,
    status TEXT NOT NULL,
    category TEXT NOT NULL,
    urgency TEXT NOT NULL,
    source TEXT NOT NULL,
    department TEXT,
    owner TEXT NOT NULL,
    level TEXT,
    deadline INTEGER,
    resolved_at INTEGER,
    rating TEXT,
    reopen_count INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    address TEXT NOT NULL,
    description TEXT NOT NULL,
    household TEXT,
    visit TEXT,
    event_count INTEGER NOT NULL
);
CREATE INDEX request_by_grid_status_updated ON request_index(grid, status, updated_at DESC, id);
CREATE INDEX request_by_grid_updated ON request_index(grid, updated_at DESC, id);
CREATE INDEX request_by_status_deadline ON request_index(status, deadline);
CREATE INDEX request_by_category_updated ON request_index(category, updated_at DESC, id);
CREATE INDEX request_by_department_status ON request_index(department, status, updated_at DESC);
CREATE INDEX request_by_updated ON request_index(updated_at DESC, id);
CREATE INDEX request_by_created ON request_index(created_at);

CREATE TABLE visit_index (
    id TEXT PRIMARY KEY,
    grid TEXT NOT NULL,
    micro_grid TEXT,
    target_kind TEXT NOT NULL,
    target_id TEXT,
    kind TEXT NOT NULL,
    visited_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    walkers TEXT NOT NULL,
    notes TEXT NOT NULL,
    request_count INTEGER NOT NULL
);
CREATE INDEX visit_by_grid_date ON visit_index(grid, visited_at DESC);
CREATE INDEX visit_by_target_date ON visit_index(target_id, visited_at DESC);
CREATE INDEX visit_by_date ON visit_index(visited_at DESC);

CREATE TABLE visit_walkers (
    walker TEXT NOT NULL,
    visited_at INTEGER NOT NULL,
    visit_id TEXT NOT NULL,
    PRIMARY KEY (walker, visited_at, visit_id)
) WITHOUT ROWID;
"#;

/// Version 2: last-visit dates per household, enterprise and grid (coverage, the 14-day mark),
/// and full-text search over requests that works for Chinese (FTS5 trigram tokens), both filled
/// from what version 1 already indexed.
const V2: &str = r#"
CREATE TABLE last_visit (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    grid TEXT NOT NULL,
    visited_at INTEGER NOT NULL,
    PRIMARY KEY (scope, id)
) WITHOUT ROWID;
CREATE INDEX last_visit_by_grid ON last_visit(grid, scope);
INSERT INTO last_visit (scope, id, grid, visited_at)
    SELECT 'grid', grid, grid, MAX(visited_at) FROM visit_index GROUP BY grid;
INSERT INTO last_visit (scope, id, grid, visited_at)
    SELECT target_kind, target_id, grid, MAX(visited_at) FROM visit_index
    WHERE target_id IS NOT NULL GROUP BY target_kind, target_id;

CREATE VIRTUAL TABLE request_fts USING fts5(id UNINDEXED, body, tokenize = 'trigram');
INSERT INTO request_fts (id, body)
    SELECT id, address || char(10) || description FROM request_index;
"#;

/// Version 3: photos (issue 4). One row per stored photo, with its thumbnail; the files are
/// content-addressed beside the store. `acknowledged_at` is set when the relay has confirmed it
/// holds the photo durably: only then may garbage collection delete a photo no document needs.
const V3: &str = r#"
CREATE TABLE photos (
    hash TEXT PRIMARY KEY CHECK (length(hash) = 64),
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    thumb_hash TEXT NOT NULL CHECK (length(thumb_hash) = 64),
    thumb_bytes INTEGER NOT NULL,
    thumb_width INTEGER NOT NULL,
    thumb_height INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    acknowledged_at INTEGER
) WITHOUT ROWID;
CREATE INDEX photos_by_thumb ON photos(thumb_hash);
CREATE INDEX photos_unacknowledged ON photos(created_at) WHERE acknowledged_at IS NULL;
"#;

/// Version 4: when the relay first saw each change (shown beside device time), looked up by the
/// change's Automerge hash.
const V4: &str = r#"
CREATE TABLE relay_receipts (
    hash BLOB PRIMARY KEY,
    doc_id TEXT NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX relay_receipts_by_doc ON relay_receipts(doc_id);
"#;

/// Version 5: photos this device's documents need but it does not hold yet (attached on another
/// device and merged in by sync), so a sync downloads exactly those without reading every
/// document. Filled as pulled documents are applied; for a store that already holds documents,
/// the hook below fills it once from all of them.
const V5: &str = r#"
CREATE TABLE photo_wanted (hash TEXT PRIMARY KEY CHECK (length(hash) = 64));
"#;

fn fill_photo_wanted(tx: &rusqlite::Transaction) -> HookResult {
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM documents")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        // A document that does not load is reported by `check`; it must not stop the upgrade.
        let Ok(Some((_, _, doc))) = super::Store::load_automerge(tx, &id) else {
            continue;
        };
        super::Store::note_wanted_photos(tx, &doc)?;
    }
    Ok(())
}

/// Version 6: the search index is keyed by the request row's rowid instead of an unindexed id
/// column, so replacing one request's entry is a lookup rather than a scan of every entry (at a
/// hundred thousand requests the scan made each new request cost tens of milliseconds).
const V6: &str = r#"
DROP TABLE request_fts;
CREATE VIRTUAL TABLE request_fts USING fts5(body, tokenize = 'trigram');
INSERT INTO request_fts (rowid, body)
    SELECT rowid, address || char(10) || description FROM request_index;
"#;

/// Version 7: the walker's list — a grid's requests in one status, newest first — is read from one
/// covering index. A page then reads a few adjacent index pages instead of fifty table rows
/// scattered through the file, so its cost stays flat as the town grows to 100k requests.
const V7: &str = r#"
DROP INDEX request_by_grid_status_updated;
CREATE INDEX request_page_by_grid_status ON request_index(
    grid, status, updated_at DESC, id,
    category, urgency, department, owner, deadline, created_at, address, description);
"#;

/// Version 8: re-indexing a visit deletes its walker rows by visit id; without an index on it that
/// scanned every walker row of every visit (22 ms a visit at 78k rows).
const V8: &str = r#"
CREATE INDEX visit_walkers_by_visit ON visit_walkers(visit_id);
"#;

/// Version 9: half-filled forms (drafts) kept in the store, so a form survives the app being
/// killed at any moment. A draft is the UI's own JSON; it never syncs.
const V9: &str = r#"
CREATE TABLE drafts (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"#;

/// Version 10: meetings (议事会, 驻网办事日) listed from an index like visits and requests.
const V10: &str = r#"
CREATE TABLE meeting_index (
    id TEXT PRIMARY KEY,
    grid TEXT NOT NULL,
    kind TEXT NOT NULL,
    held_at INTEGER NOT NULL,
    place TEXT NOT NULL,
    topic TEXT NOT NULL,
    participants INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    decisions INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX meeting_by_grid_time ON meeting_index(grid, held_at DESC);
"#;

pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up_with_hook(V5, fill_photo_wanted),
        M::up(V6),
        M::up(V7),
        M::up(V8),
        M::up(V9),
        M::up(V10),
    ])
}

/// The schema version a fresh store is created at.
pub const LATEST_VERSION: usize = 10;

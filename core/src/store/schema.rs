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
    let ids: Vec<String> =
        tx.prepare("SELECT id FROM documents")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for id in ids {
        // A document that does not load is reported by `check`; it must not stop the upgrade.
        let Ok(Some((_, _, doc))) = super::Store::load_automerge(tx, &id) else {
            continue;
        };
        super::Store::note_wanted_photos(tx, &super::Store::photos_named(&crate::doc_view::DocView::new(&doc)))?;
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

/// What a `request_tally` row inserted over an existing one does: adds its counts to it.
macro_rules! tally_add_on_conflict {
    () => {
        "             ON CONFLICT (area, dim, key, month) DO UPDATE SET
                total = total + excluded.total,
                untriaged = untriaged + excluded.untriaged,
                handled = handled + excluded.handled,
                resolved = resolved + excluded.resolved,
                unresolved = unresolved + excluded.unresolved,
                resolved_with_deadline = resolved_with_deadline + excluded.resolved_with_deadline,
                on_time = on_time + excluded.on_time,
                late = late + excluded.late,
                rated = rated + excluded.rated,
                satisfied = satisfied + excluded.satisfied,
                not_satisfied = not_satisfied + excluded.not_satisfied;"
    };
}

/// No area arms beyond the store's and the grid's (versions 11 and 12).
macro_rules! no_more_areas {
    ($row:literal, $what:ident) => {
        ""
    };
}

/// The area arms of the row's village (version 13): the parent of its grid, when `areas` knows
/// the grid and its parent (a village; for an enterprise grid, the town, whose counts no report
/// reads). `breakdowns` gives `(area, dim, key)` arms, by category and by office only: a
/// village's totals are read from its grids' (dim `all`), so that the grids' totals stay the
/// only `all` rows besides the store's, which the whole street's breakdown by grid reads.
/// `area` gives the area alone, for the resolutions by month.
macro_rules! village_areas {
    ($row:literal, breakdowns) => {
        concat!(
            " UNION ALL SELECT v.parent, b.dim, b.key FROM areas v, (SELECT 'category' AS dim, ",
            $row,
            ".category AS key
                   UNION ALL SELECT 'department', COALESCE(",
            $row,
            ".department, '')) AS b
               WHERE v.id = ",
            $row,
            ".grid AND v.kind = 'grid' AND v.parent IS NOT NULL"
        )
    };
    ($row:literal, area) => {
        concat!(
            " UNION ALL SELECT v.parent FROM areas v WHERE v.id = ",
            $row,
            ".grid AND v.kind = 'grid' AND v.parent IS NOT NULL"
        )
    };
}

/// The rows one `request_index` row adds to `request_tally` (sign 1, the new row) or takes
/// away from it (sign -1, the old row): the whole store's and its grid's totals, by category and
/// by office, in the month (China Standard Time) it was raised. Each count is the predicate of
/// the same name in `report::Measure::sql`; `report` tests compare the two over a generated town.
macro_rules! tally_rows {
    ($row:literal, $sign:literal) => {
        tally_rows!($row, $sign, no_more_areas)
    };
    // `$more` names a macro giving more area arms for a row (version 13: the grid's village).
    ($row:literal, $sign:literal, $more:ident) => {
        concat!(
            "INSERT INTO request_tally (area, dim, key, month, total, untriaged, handled, resolved,
                unresolved, resolved_with_deadline, on_time, late, rated, satisfied, not_satisfied)
             SELECT a.area, a.dim, a.key, m.month, ",
            $sign,
            ", ",
            $sign,
            " * m.untriaged, ",
            $sign,
            " * m.handled, ",
            $sign,
            " * m.resolved, ",
            $sign,
            " * m.unresolved, ",
            $sign,
            " * m.resolved_with_deadline, ",
            $sign,
            " * m.on_time, ",
            $sign,
            " * m.late, ",
            $sign,
            " * m.rated, ",
            $sign,
            " * m.satisfied, ",
            $sign,
            " * m.not_satisfied
             FROM (SELECT
                    strftime('%Y-%m', (",
            $row,
            ".created_at + 28800000) / 1000, 'unixepoch') AS month,
                    COALESCE(",
            $row,
            ".status = 'new', 0) AS untriaged,
                    COALESCE(",
            $row,
            ".status IN ('accepted', 'assigned', 'reopened') OR ",
            $row,
            ".resolved_at IS NOT NULL, 0) AS handled,
                    COALESCE(",
            $row,
            ".resolved_at IS NOT NULL, 0) AS resolved,
                    COALESCE(",
            $row,
            ".status IN ('accepted', 'assigned', 'reopened') AND ",
            $row,
            ".resolved_at IS NULL, 0) AS unresolved,
                    COALESCE(",
            $row,
            ".resolved_at IS NOT NULL AND ",
            $row,
            ".deadline IS NOT NULL, 0) AS resolved_with_deadline,
                    COALESCE(",
            $row,
            ".resolved_at IS NOT NULL AND ",
            $row,
            ".deadline IS NOT NULL AND ",
            $row,
            ".resolved_at <= ",
            $row,
            ".deadline, 0) AS on_time,
                    COALESCE(",
            $row,
            ".resolved_at IS NOT NULL AND ",
            $row,
            ".deadline IS NOT NULL AND ",
            $row,
            ".resolved_at > ",
            $row,
            ".deadline, 0) AS late,
                    COALESCE(",
            $row,
            ".rating IS NOT NULL, 0) AS rated,
                    COALESCE(",
            $row,
            ".rating IN ('satisfied', 'basically'), 0) AS satisfied,
                    COALESCE(",
            $row,
            ".rating = 'not_satisfied', 0) AS not_satisfied) AS m,
                  (SELECT '*' AS area, 'all' AS dim, '' AS key
                   UNION ALL SELECT '*', 'category', ",
            $row,
            ".category
                   UNION ALL SELECT '*', 'department', COALESCE(",
            $row,
            ".department, '')
                   UNION ALL SELECT ",
            $row,
            ".grid, 'all', ''
                   UNION ALL SELECT ",
            $row,
            ".grid, 'category', ",
            $row,
            ".category
                   UNION ALL SELECT ",
            $row,
            ".grid, 'department', COALESCE(",
            $row,
            ".department, '')",
            $more!($row, breakdowns),
            ") AS a
             WHERE true
",
            tally_add_on_conflict!(),
            "
             INSERT INTO request_resolved_tally (area, month, resolved_month, n)
             SELECT a.area,
                    strftime('%Y-%m', (",
            $row,
            ".created_at + 28800000) / 1000, 'unixepoch'),
                    strftime('%Y-%m', (",
            $row,
            ".resolved_at + 28800000) / 1000, 'unixepoch'),
                    ",
            $sign,
            "
             FROM (SELECT '*' AS area UNION ALL SELECT ",
            $row,
            ".grid",
            $more!($row, area),
            ") AS a
             WHERE ",
            $row,
            ".resolved_at IS NOT NULL
             ON CONFLICT (area, month, resolved_month) DO UPDATE SET n = n + excluded.n;"
        )
    };
}

/// Version 11: running counts of requests for the dashboard, kept by triggers on
/// `request_index`, so a street-wide dashboard reads a few hundred counts per month instead of
/// every request. `area` is `*` for the whole store or a grid id; `dim` is `all`, `category` or
/// `department` (key `''`: no office yet); `month` is the month the request was raised. Counts
/// that depend on the moment they are read at (overdue) are not kept: they come from the
/// open requests with a deadline.
const V11: &str = concat!(
    "CREATE TABLE request_tally (
        area TEXT NOT NULL,
        dim TEXT NOT NULL,
        key TEXT NOT NULL,
        month TEXT NOT NULL,
        total INTEGER NOT NULL,
        untriaged INTEGER NOT NULL,
        handled INTEGER NOT NULL,
        resolved INTEGER NOT NULL,
        unresolved INTEGER NOT NULL,
        resolved_with_deadline INTEGER NOT NULL,
        on_time INTEGER NOT NULL,
        late INTEGER NOT NULL,
        rated INTEGER NOT NULL,
        satisfied INTEGER NOT NULL,
        not_satisfied INTEGER NOT NULL,
        PRIMARY KEY (area, dim, key, month)
    ) WITHOUT ROWID;
    CREATE INDEX request_tally_by_dim_month ON request_tally(dim, month);
    CREATE TABLE request_resolved_tally (
        area TEXT NOT NULL,
        month TEXT NOT NULL,
        resolved_month TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (area, month, resolved_month)
    ) WITHOUT ROWID;
    CREATE INDEX request_open_by_deadline ON request_index(deadline)
        WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL;
    -- Requests indexed before this version are taken out before the triggers exist and put back
    -- after, each with its rowid (which keys its search entry), so each is counted once.
    CREATE TEMP TABLE tally_backfill AS SELECT rowid AS rid, * FROM request_index;
    DELETE FROM request_index;
    CREATE TRIGGER request_tally_insert AFTER INSERT ON request_index BEGIN ",
    tally_rows!("NEW", "1"),
    " END;
    CREATE TRIGGER request_tally_delete AFTER DELETE ON request_index BEGIN ",
    tally_rows!("OLD", "-1"),
    " END;
    CREATE TRIGGER request_tally_update AFTER UPDATE ON request_index
    WHEN OLD.grid IS NOT NEW.grid OR OLD.status IS NOT NEW.status OR OLD.category IS NOT NEW.category
      OR OLD.department IS NOT NEW.department OR OLD.deadline IS NOT NEW.deadline
      OR OLD.resolved_at IS NOT NEW.resolved_at OR OLD.rating IS NOT NEW.rating
      OR OLD.created_at IS NOT NEW.created_at
    BEGIN ",
    tally_rows!("OLD", "-1"),
    tally_rows!("NEW", "1"),
    " END;
    INSERT INTO request_index (rowid, id, grid, micro_grid, status, category, urgency, source, department, owner, level, deadline, resolved_at, rating, reopen_count, created_at, created_by, updated_at, address, description, household, visit, event_count)
        SELECT rid, id, grid, micro_grid, status, category, urgency, source, department, owner, level, deadline, resolved_at, rating, reopen_count, created_at, created_by, updated_at, address, description, household, visit, event_count FROM tally_backfill;
    DROP TABLE tally_backfill;"
);

/// The rows one `request_index` row adds to `request_deadline_tally` (sign 1) or takes away from
/// it (sign -1): an open request with a deadline, counted by the month it was raised and the
/// month its deadline falls in (both China Standard Time), for the whole store and its grid, in
/// total, by category and by office.
macro_rules! deadline_tally_rows {
    ($row:literal, $sign:literal) => {
        deadline_tally_rows!($row, $sign, no_more_areas)
    };
    // `$more` names a macro giving more area arms for a row (version 13: the grid's village).
    ($row:literal, $sign:literal, $more:ident) => {
        concat!(
            "INSERT INTO request_deadline_tally (area, dim, key, month, deadline_month, n)
             SELECT a.area, a.dim, a.key,
                    strftime('%Y-%m', (",
            $row,
            ".created_at + 28800000) / 1000, 'unixepoch'),
                    strftime('%Y-%m', (",
            $row,
            ".deadline + 28800000) / 1000, 'unixepoch'), ",
            $sign,
            "
             FROM (SELECT '*' AS area, 'all' AS dim, '' AS key
                   UNION ALL SELECT '*', 'category', ",
            $row,
            ".category
                   UNION ALL SELECT '*', 'department', COALESCE(",
            $row,
            ".department, '')
                   UNION ALL SELECT ",
            $row,
            ".grid, 'all', ''
                   UNION ALL SELECT ",
            $row,
            ".grid, 'category', ",
            $row,
            ".category
                   UNION ALL SELECT ",
            $row,
            ".grid, 'department', COALESCE(",
            $row,
            ".department, '')",
            $more!($row, breakdowns),
            ") AS a
             WHERE ",
            $row,
            ".status IN ('new', 'accepted', 'assigned', 'reopened') AND ",
            $row,
            ".deadline IS NOT NULL
             ON CONFLICT (area, dim, key, month, deadline_month) DO UPDATE SET n = n + excluded.n;"
        )
    };
}

/// Version 12: running counts of open requests with a deadline, by the month the deadline falls
/// in, so overdue (逾期) at `now` is a sum of counts for the deadline months before now's month
/// plus the open requests whose deadline falls earlier in now's month, read through an index.
/// Before, a busy street's dashboard read every overdue request. Areas, breakdowns and creation
/// months are those of `request_tally`. The requests already indexed are counted set-wise here;
/// the triggers keep the counts from then on.
const V12: &str = concat!(
    "CREATE TABLE request_deadline_tally (
        area TEXT NOT NULL,
        dim TEXT NOT NULL,
        key TEXT NOT NULL,
        month TEXT NOT NULL,
        deadline_month TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (area, dim, key, month, deadline_month)
    ) WITHOUT ROWID;
    CREATE INDEX request_deadline_tally_by_dim_month ON request_deadline_tally(dim, month);
    -- The open requests with a deadline, for overdue in now's month: covering indexes (they
    -- hold every column the dashboard reads of them), by deadline for the whole street and by
    -- grid and deadline for a village or a grid. The first replaces version 11's index on the
    -- deadline alone.
    DROP INDEX request_open_by_deadline;
    CREATE INDEX request_open_by_deadline ON request_index(deadline, grid, category, department, created_at, status)
        WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL;
    CREATE INDEX request_open_by_grid_deadline ON request_index(grid, deadline, category, department, created_at, status)
        WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL;
    INSERT INTO request_deadline_tally (area, dim, key, month, deadline_month, n)
    SELECT area, dim, key, month, deadline_month, COUNT(*) FROM (
        SELECT '*' AS area, 'all' AS dim, '' AS key,
               strftime('%Y-%m', (created_at + 28800000) / 1000, 'unixepoch') AS month,
               strftime('%Y-%m', (deadline + 28800000) / 1000, 'unixepoch') AS deadline_month
          FROM request_index WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL
        UNION ALL SELECT '*', 'category', category,
               strftime('%Y-%m', (created_at + 28800000) / 1000, 'unixepoch'),
               strftime('%Y-%m', (deadline + 28800000) / 1000, 'unixepoch')
          FROM request_index WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL
        UNION ALL SELECT '*', 'department', COALESCE(department, ''),
               strftime('%Y-%m', (created_at + 28800000) / 1000, 'unixepoch'),
               strftime('%Y-%m', (deadline + 28800000) / 1000, 'unixepoch')
          FROM request_index WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL
        UNION ALL SELECT grid, 'all', '',
               strftime('%Y-%m', (created_at + 28800000) / 1000, 'unixepoch'),
               strftime('%Y-%m', (deadline + 28800000) / 1000, 'unixepoch')
          FROM request_index WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL
        UNION ALL SELECT grid, 'category', category,
               strftime('%Y-%m', (created_at + 28800000) / 1000, 'unixepoch'),
               strftime('%Y-%m', (deadline + 28800000) / 1000, 'unixepoch')
          FROM request_index WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL
        UNION ALL SELECT grid, 'department', COALESCE(department, ''),
               strftime('%Y-%m', (created_at + 28800000) / 1000, 'unixepoch'),
               strftime('%Y-%m', (deadline + 28800000) / 1000, 'unixepoch')
          FROM request_index WHERE status IN ('new', 'accepted', 'assigned', 'reopened') AND deadline IS NOT NULL
    ) GROUP BY area, dim, key, month, deadline_month;
    CREATE TRIGGER request_deadline_tally_insert AFTER INSERT ON request_index BEGIN ",
    deadline_tally_rows!("NEW", "1"),
    " END;
    CREATE TRIGGER request_deadline_tally_delete AFTER DELETE ON request_index BEGIN ",
    deadline_tally_rows!("OLD", "-1"),
    " END;
    CREATE TRIGGER request_deadline_tally_update AFTER UPDATE ON request_index
    WHEN OLD.grid IS NOT NEW.grid OR OLD.status IS NOT NEW.status OR OLD.category IS NOT NEW.category
      OR OLD.department IS NOT NEW.department OR OLD.deadline IS NOT NEW.deadline
      OR OLD.created_at IS NOT NEW.created_at
    BEGIN ",
    deadline_tally_rows!("OLD", "-1"),
    deadline_tally_rows!("NEW", "1"),
    " END;"
);

/// The three triggers that keep one running-count table from `request_index` (version 13 on):
/// a new row adds its counts, a deleted row takes them away, and an update that changes what is
/// counted (`$when`) does both. `$rows` gives the rows' statements, `$more` their extra areas.
macro_rules! request_index_triggers {
    ($name:literal, $rows:ident, $more:ident, $when:literal) => {
        concat!(
            "CREATE TRIGGER ",
            $name,
            "_insert AFTER INSERT ON request_index BEGIN ",
            $rows!("NEW", "1", $more),
            " END;
            CREATE TRIGGER ",
            $name,
            "_delete AFTER DELETE ON request_index BEGIN ",
            $rows!("OLD", "-1", $more),
            " END;
            CREATE TRIGGER ",
            $name,
            "_update AFTER UPDATE ON request_index WHEN ",
            $when,
            " BEGIN ",
            $rows!("OLD", "-1", $more),
            $rows!("NEW", "1", $more),
            " END;"
        )
    };
}

/// The counts of one grid's breakdown rows (by category and office) and resolutions in the three
/// running-count tables, added to (sign 1) or taken from (sign -1) its village's rows, when
/// `$when` holds: a grid arriving in `areas` under a village, leaving it, or moving to another
/// village (version 13).
macro_rules! village_move {
    ($grid:literal, $village:literal, $sign:literal, $when:literal) => {
        concat!(
            "INSERT INTO request_tally (area, dim, key, month, total, untriaged, handled, resolved,
                unresolved, resolved_with_deadline, on_time, late, rated, satisfied, not_satisfied)
             SELECT ",
            $village,
            ", dim, key, month, ",
            $sign,
            " * total, ",
            $sign,
            " * untriaged, ",
            $sign,
            " * handled, ",
            $sign,
            " * resolved, ",
            $sign,
            " * unresolved, ",
            $sign,
            " * resolved_with_deadline, ",
            $sign,
            " * on_time, ",
            $sign,
            " * late, ",
            $sign,
            " * rated, ",
            $sign,
            " * satisfied, ",
            $sign,
            " * not_satisfied
             FROM request_tally WHERE area = ",
            $grid,
            " AND dim != 'all' AND total != 0 AND ",
            $when,
            "
",
            tally_add_on_conflict!(),
            "
             INSERT INTO request_resolved_tally (area, month, resolved_month, n)
             SELECT ",
            $village,
            ", month, resolved_month, ",
            $sign,
            " * n
             FROM request_resolved_tally WHERE area = ",
            $grid,
            " AND n != 0 AND ",
            $when,
            "
             ON CONFLICT (area, month, resolved_month) DO UPDATE SET n = n + excluded.n;
             INSERT INTO request_deadline_tally (area, dim, key, month, deadline_month, n)
             SELECT ",
            $village,
            ", dim, key, month, deadline_month, ",
            $sign,
            " * n
             FROM request_deadline_tally WHERE area = ",
            $grid,
            " AND dim != 'all' AND n != 0 AND ",
            $when,
            "
             ON CONFLICT (area, dim, key, month, deadline_month) DO UPDATE SET n = n + excluded.n;"
        )
    };
}

/// Version 13: running counts per village (area = the village's id) by category and by office,
/// and its resolutions by month, besides the store's and each grid's, so a village's dashboard
/// reads about as many counts as the street's instead of every breakdown of each of its grids
/// (its totals are its grids' totals, which it reads anyway for its breakdown by grid).
///
/// A village's counts are always the sum of the counts of the grids `areas` puts under it: a
/// request's counts go to its grid's village when `areas` knows it, and a grid that arrives in
/// `areas` (a roster synced after the requests), leaves it or moves to another village carries
/// its grid counts with it, by triggers on `areas`. The villages of the requests already
/// counted are filled in set-wise from their grids' counts.
const V13: &str = concat!(
    "DROP TRIGGER request_tally_insert;
    DROP TRIGGER request_tally_delete;
    DROP TRIGGER request_tally_update;
    DROP TRIGGER request_deadline_tally_insert;
    DROP TRIGGER request_deadline_tally_delete;
    DROP TRIGGER request_deadline_tally_update;
    INSERT INTO request_tally (area, dim, key, month, total, untriaged, handled, resolved,
        unresolved, resolved_with_deadline, on_time, late, rated, satisfied, not_satisfied)
    SELECT a.parent, t.dim, t.key, t.month, SUM(t.total), SUM(t.untriaged), SUM(t.handled),
        SUM(t.resolved), SUM(t.unresolved), SUM(t.resolved_with_deadline), SUM(t.on_time),
        SUM(t.late), SUM(t.rated), SUM(t.satisfied), SUM(t.not_satisfied)
      FROM request_tally t JOIN areas a ON a.id = t.area AND a.kind = 'grid' AND a.parent IS NOT NULL
     WHERE t.dim != 'all' AND t.total != 0
     GROUP BY a.parent, t.dim, t.key, t.month;
    INSERT INTO request_resolved_tally (area, month, resolved_month, n)
    SELECT a.parent, t.month, t.resolved_month, SUM(t.n)
      FROM request_resolved_tally t JOIN areas a ON a.id = t.area AND a.kind = 'grid' AND a.parent IS NOT NULL
     WHERE t.n != 0
     GROUP BY a.parent, t.month, t.resolved_month;
    INSERT INTO request_deadline_tally (area, dim, key, month, deadline_month, n)
    SELECT a.parent, t.dim, t.key, t.month, t.deadline_month, SUM(t.n)
      FROM request_deadline_tally t JOIN areas a ON a.id = t.area AND a.kind = 'grid' AND a.parent IS NOT NULL
     WHERE t.dim != 'all' AND t.n != 0
     GROUP BY a.parent, t.dim, t.key, t.month, t.deadline_month;
    ",
    request_index_triggers!(
        "request_tally",
        tally_rows,
        village_areas,
        "OLD.grid IS NOT NEW.grid OR OLD.status IS NOT NEW.status OR OLD.category IS NOT NEW.category
          OR OLD.department IS NOT NEW.department OR OLD.deadline IS NOT NEW.deadline
          OR OLD.resolved_at IS NOT NEW.resolved_at OR OLD.rating IS NOT NEW.rating
          OR OLD.created_at IS NOT NEW.created_at"
    ),
    request_index_triggers!(
        "request_deadline_tally",
        deadline_tally_rows,
        village_areas,
        "OLD.grid IS NOT NEW.grid OR OLD.status IS NOT NEW.status OR OLD.category IS NOT NEW.category
          OR OLD.department IS NOT NEW.department OR OLD.deadline IS NOT NEW.deadline
          OR OLD.created_at IS NOT NEW.created_at"
    ),
    "
    CREATE TRIGGER village_tally_grid_added AFTER INSERT ON areas BEGIN ",
    village_move!("NEW.id", "NEW.parent", "1", "NEW.kind = 'grid' AND NEW.parent IS NOT NULL"),
    " END;
    CREATE TRIGGER village_tally_grid_removed AFTER DELETE ON areas BEGIN ",
    village_move!("OLD.id", "OLD.parent", "-1", "OLD.kind = 'grid' AND OLD.parent IS NOT NULL"),
    " END;
    CREATE TRIGGER village_tally_grid_moved AFTER UPDATE OF kind, parent ON areas
    WHEN OLD.kind IS NOT NEW.kind OR OLD.parent IS NOT NEW.parent
    BEGIN ",
    village_move!("OLD.id", "OLD.parent", "-1", "OLD.kind = 'grid' AND OLD.parent IS NOT NULL"),
    village_move!("NEW.id", "NEW.parent", "1", "NEW.kind = 'grid' AND NEW.parent IS NOT NULL"),
    " END;"
);

/// Version 14: the indexes a device's first pull builds once its rows are in (`deferred_index`),
/// with the statement that makes each. A device that holds nothing yet receives every document
/// of its scope; maintained row by row, each insertion lands in a random place of a growing
/// B-tree and dirties a page the next commit writes, where building them once the rows are in
/// sorts each index once (P2 of `gridwalk-bench sync` times the pull). While a name is listed, its
/// index does not exist; `Store::build_deferred_indexes` makes them and empties the list in one
/// transaction, at the end of the pull and whenever the store is opened.
const V14: &str = r#"
CREATE TABLE deferred_index (
    name TEXT PRIMARY KEY,
    sql TEXT NOT NULL
);
"#;

/// Version 15: relay receipts kept by document, then change hash. A request's history looks
/// up the receipts of one document's changes, and a pulled document brings the receipts of all
/// of its changes at once: keyed by document, they sit together, where keyed by hash alone each
/// went to a random place of the table (and a second index by document beside it).
const V15: &str = r#"
CREATE TABLE relay_receipts_by_document (
    doc_id TEXT NOT NULL,
    hash BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (doc_id, hash)
) WITHOUT ROWID;
INSERT INTO relay_receipts_by_document (doc_id, hash, received_at)
    SELECT doc_id, hash, received_at FROM relay_receipts;
DROP TABLE relay_receipts;
ALTER TABLE relay_receipts_by_document RENAME TO relay_receipts;
"#;

/// Version 16: documents this device holds but cannot read (an older relay accepted them, or a
/// bug wrote them). They stay in `documents`, so later changes still merge into them and sync
/// goes on, but they have no index rows: lists, reports and rebuilds pass them by, and the hall
/// sees them listed here with the part that cannot be read.
const V16: &str = r#"
CREATE TABLE damaged_documents (
    doc_id TEXT PRIMARY KEY,
    field TEXT NOT NULL,
    message TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Version 17: which request a merged duplicate went into, so the request it went into can
/// list its duplicates (and their reporters, who are owed feedback too). Filled for the merged
/// requests already here by the hook below.
const V17: &str = r#"
ALTER TABLE request_index ADD COLUMN merged_into TEXT;
CREATE INDEX request_by_merged_into ON request_index(merged_into) WHERE merged_into IS NOT NULL;
"#;

/// Version 18: where a visit was recorded, beside it in the index, so a place's visits show it
/// without opening documents. The hook below reads it from the visits already here (the index
/// must equal what the documents imply, or `index check` would fail after the upgrade).
const V18: &str = r#"
ALTER TABLE visit_index ADD COLUMN lat REAL;
ALTER TABLE visit_index ADD COLUMN lon REAL;
ALTER TABLE visit_index ADD COLUMN accuracy_m REAL;
"#;

/// Version 19: photos taken with a request or visit wait here, as the camera wrote them, until
/// the background worker has shrunk them and attached them. Saving a request therefore takes no
/// longer than writing its record and these bytes; a walker on a doorstep moves on at once, and
/// an app killed meanwhile finds its photos still waiting when it starts again. `failed_code` and
/// `failed_message` are set when processing failed (a damaged file), and cleared by a retry.
const V19: &str = r#"
CREATE TABLE photo_queue (
    id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    role TEXT NOT NULL,
    file_name TEXT NOT NULL,
    bytes BLOB NOT NULL,
    lat REAL,
    lon REAL,
    accuracy_m REAL,
    actor TEXT NOT NULL,
    device TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failed_code TEXT,
    failed_message TEXT
);
CREATE INDEX photo_queue_by_doc ON photo_queue(doc_id);
"#;

fn fill_visit_gps(tx: &rusqlite::Transaction) -> HookResult {
    let ids: Vec<String> =
        tx.prepare("SELECT id FROM visit_index")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for id in ids {
        let Ok(Some((_, _, doc))) = super::Store::load_automerge(tx, &id) else {
            continue;
        };
        let Ok(body) = crate::docs::VisitDocument::from_automerge(doc).body() else {
            continue;
        };
        if let Some(g) = body.gps {
            tx.execute(
                "UPDATE visit_index SET lat = ?2, lon = ?3, accuracy_m = ?4 WHERE id = ?1",
                rusqlite::params![id, g.lat, g.lon, g.accuracy_m],
            )?;
        }
    }
    Ok(())
}

/// Version 20: each request's short number (`gridwalk_doc::numbers`), beside it in the index,
/// so lists show it and a typed number finds its request. The hook copies it from the requests
/// already here that have one (raised on a newer device before this one upgraded).
const V20: &str = r#"
ALTER TABLE request_index ADD COLUMN number TEXT;
CREATE INDEX request_by_number ON request_index(number) WHERE number IS NOT NULL;
"#;

/// Version 21: hall staff who may sign in on a hall PC, each with the Argon2id hash of her PIN
/// (never the PIN). Set by an admin on a hall PC and received by the others in the staff roster.
/// The people themselves (name, role) stay in `walkers`.
const V21: &str = r#"
CREATE TABLE staff_pins (
    person TEXT PRIMARY KEY,
    office TEXT,
    pin_hash TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Version 22: who last set each staff member's entry (her PIN, her office): the relay accepts
/// an entry set by an admin, or a PIN set by its own person, and nothing else. Entries from
/// before it name nobody.
/// Version 23: the access log (issue 14): full phone numbers shown and data exported, by whom
/// and when (`store::access`).
const V23: &str = r#"
CREATE TABLE access_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    person TEXT NOT NULL,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

const V22: &str = r#"
ALTER TABLE staff_pins ADD COLUMN set_by TEXT NOT NULL DEFAULT '';
"#;

/// Version 24 (issue 16):
/// - `request_index.told_at`: when the reporter was told the outcome. A merged duplicate keeps
///   its status when its own reporter is told, so this is how lists find the duplicates whose
///   reporters are still owed it. The hook fills it from the requests already here.
/// - `quick_phrases`: the hall's quick phrases for visit notes (常用语), published to every
///   grid's phones in its roster. None means the app's built-in ones.
const V24: &str = r#"
ALTER TABLE request_index ADD COLUMN told_at INTEGER;
CREATE INDEX request_owed_feedback ON request_index(merged_into) WHERE status = 'merged' AND told_at IS NULL;
CREATE TABLE quick_phrases (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Version 25 (issue 14): `access_log.sent_at`, when the relay took the line. Every device's
/// reveals and exports reach the relay, where the admin reads them all, not only her own PC's.
const V25: &str = r#"
ALTER TABLE access_log ADD COLUMN sent_at INTEGER;
CREATE INDEX access_log_unsent ON access_log(seq) WHERE sent_at IS NULL;
"#;

fn fill_told_at(tx: &rusqlite::Transaction) -> HookResult {
    // The whole row again, not only the new column: a feedback step on a merged duplicate that
    // the older rule left unapplied applies now, and moves the row's `updated_at` with it.
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM request_index WHERE status IN ('feedback_given', 'rated', 'closed', 'merged')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        // A document that does not load is reported by `check`; it must not stop the upgrade.
        let Ok(Some((kind, _, doc))) = super::Store::load_automerge(tx, &id) else {
            continue;
        };
        if super::Store::reindex(tx, kind, &doc).is_err() {
            continue;
        }
    }
    // The hall's quick phrases as the newest grid roster here carries them: a hall PC that
    // pulled them before it could keep them must not publish its empty list over them.
    let rosters: Vec<String> = tx
        .prepare("SELECT id FROM documents WHERE id LIKE 'roster-%' AND id != ?1")?
        .query_map([crate::roster::staff_roster_id()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut newest: Option<(crate::time::Timestamp, Vec<String>)> = None;
    for id in rosters {
        let Ok(Some((_, _, doc))) = super::Store::load_automerge(tx, &id) else {
            continue;
        };
        let Ok(body) = autosurgeon::hydrate_prop::<_, crate::roster::RosterBody, _, _>(&doc, automerge::ROOT, "body")
        else {
            continue;
        };
        if newest.as_ref().is_none_or(|(at, _)| body.published_at > *at) {
            newest = Some((body.published_at, body.quick_phrases));
        }
    }
    if let Some((_, phrases)) = newest {
        for (position, text) in crate::roster::offered_quick_phrases(&phrases).iter().enumerate() {
            tx.execute(
                "INSERT OR IGNORE INTO quick_phrases (id, text, position) VALUES (?1, ?1, ?2)",
                rusqlite::params![text, position as i64],
            )?;
        }
    }
    Ok(())
}

fn fill_request_numbers(tx: &rusqlite::Transaction) -> HookResult {
    let ids: Vec<String> =
        tx.prepare("SELECT id FROM request_index")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for id in ids {
        // A document that does not load is reported by `check`; it must not stop the upgrade.
        let Ok(Some((_, _, doc))) = super::Store::load_automerge(tx, &id) else {
            continue;
        };
        let Ok(body) = crate::docs::RequestDocument::from_automerge(doc).body() else {
            continue;
        };
        if let Some(number) = body.number {
            tx.execute("UPDATE request_index SET number = ?2 WHERE id = ?1", rusqlite::params![id, number])?;
        }
    }
    Ok(())
}

fn fill_merged_into(tx: &rusqlite::Transaction) -> HookResult {
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM request_index WHERE status = 'merged'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        // A document that does not load is reported by `check`; it must not stop the upgrade.
        let Ok(Some((_, _, doc))) = super::Store::load_automerge(tx, &id) else {
            continue;
        };
        let Ok(state) = crate::docs::RequestDocument::from_automerge(doc).state() else {
            continue;
        };
        tx.execute(
            "UPDATE request_index SET merged_into = ?2 WHERE id = ?1",
            rusqlite::params![id, state.merged_into],
        )?;
    }
    Ok(())
}

/// Every running count (`request_tally`, `request_resolved_tally`, `request_deadline_tally`)
/// counted afresh, set-wise, from `request_index` and `areas`: what the triggers of version 13
/// add up row by row, for a first pull that drops the triggers while its rows go in (see
/// `sync_state`). Each arm is one of the triggers' areas: the whole store (`*`), the request's
/// grid, and the grid's village where `areas` knows it; each count is the trigger's predicate of
/// the same name. `report` tests compare the two over a generated town.
pub(crate) const RECOUNT_RUNNING_COUNTS: &str = r#"
DELETE FROM request_tally;
DELETE FROM request_resolved_tally;
DELETE FROM request_deadline_tally;
WITH r AS (
    SELECT i.grid AS grid, v.parent AS village, i.category AS category,
           COALESCE(i.department, '') AS department,
           strftime('%Y-%m', (i.created_at + 28800000) / 1000, 'unixepoch') AS month,
           COALESCE(i.status = 'new', 0) AS untriaged,
           COALESCE(i.status IN ('accepted', 'assigned', 'reopened') OR i.resolved_at IS NOT NULL, 0) AS handled,
           COALESCE(i.resolved_at IS NOT NULL, 0) AS resolved,
           COALESCE(i.status IN ('accepted', 'assigned', 'reopened') AND i.resolved_at IS NULL, 0) AS unresolved,
           COALESCE(i.resolved_at IS NOT NULL AND i.deadline IS NOT NULL, 0) AS resolved_with_deadline,
           COALESCE(i.resolved_at IS NOT NULL AND i.deadline IS NOT NULL AND i.resolved_at <= i.deadline, 0) AS on_time,
           COALESCE(i.resolved_at IS NOT NULL AND i.deadline IS NOT NULL AND i.resolved_at > i.deadline, 0) AS late,
           COALESCE(i.rating IS NOT NULL, 0) AS rated,
           COALESCE(i.rating IN ('satisfied', 'basically'), 0) AS satisfied,
           COALESCE(i.rating = 'not_satisfied', 0) AS not_satisfied
      FROM request_index i
      LEFT JOIN areas v ON v.id = i.grid AND v.kind = 'grid' AND v.parent IS NOT NULL
)
INSERT INTO request_tally (area, dim, key, month, total, untriaged, handled, resolved,
    unresolved, resolved_with_deadline, on_time, late, rated, satisfied, not_satisfied)
SELECT area, dim, key, month, COUNT(*), SUM(untriaged), SUM(handled), SUM(resolved),
       SUM(unresolved), SUM(resolved_with_deadline), SUM(on_time), SUM(late), SUM(rated),
       SUM(satisfied), SUM(not_satisfied)
  FROM (SELECT '*' AS area, 'all' AS dim, '' AS key, r.* FROM r
        UNION ALL SELECT '*', 'category', category, r.* FROM r
        UNION ALL SELECT '*', 'department', department, r.* FROM r
        UNION ALL SELECT grid, 'all', '', r.* FROM r
        UNION ALL SELECT grid, 'category', category, r.* FROM r
        UNION ALL SELECT grid, 'department', department, r.* FROM r
        UNION ALL SELECT village, 'category', category, r.* FROM r WHERE village IS NOT NULL
        UNION ALL SELECT village, 'department', department, r.* FROM r WHERE village IS NOT NULL)
 GROUP BY area, dim, key, month;
WITH r AS (
    SELECT i.grid AS grid, v.parent AS village,
           strftime('%Y-%m', (i.created_at + 28800000) / 1000, 'unixepoch') AS month,
           strftime('%Y-%m', (i.resolved_at + 28800000) / 1000, 'unixepoch') AS resolved_month
      FROM request_index i
      LEFT JOIN areas v ON v.id = i.grid AND v.kind = 'grid' AND v.parent IS NOT NULL
     WHERE i.resolved_at IS NOT NULL
)
INSERT INTO request_resolved_tally (area, month, resolved_month, n)
SELECT area, month, resolved_month, COUNT(*)
  FROM (SELECT '*' AS area, month, resolved_month FROM r
        UNION ALL SELECT grid, month, resolved_month FROM r
        UNION ALL SELECT village, month, resolved_month FROM r WHERE village IS NOT NULL)
 GROUP BY area, month, resolved_month;
WITH r AS (
    SELECT i.grid AS grid, v.parent AS village, i.category AS category,
           COALESCE(i.department, '') AS department,
           strftime('%Y-%m', (i.created_at + 28800000) / 1000, 'unixepoch') AS month,
           strftime('%Y-%m', (i.deadline + 28800000) / 1000, 'unixepoch') AS deadline_month
      FROM request_index i
      LEFT JOIN areas v ON v.id = i.grid AND v.kind = 'grid' AND v.parent IS NOT NULL
     WHERE i.status IN ('new', 'accepted', 'assigned', 'reopened') AND i.deadline IS NOT NULL
)
INSERT INTO request_deadline_tally (area, dim, key, month, deadline_month, n)
SELECT area, dim, key, month, deadline_month, COUNT(*)
  FROM (SELECT '*' AS area, 'all' AS dim, '' AS key, month, deadline_month FROM r
        UNION ALL SELECT '*', 'category', category, month, deadline_month FROM r
        UNION ALL SELECT '*', 'department', department, month, deadline_month FROM r
        UNION ALL SELECT grid, 'all', '', month, deadline_month FROM r
        UNION ALL SELECT grid, 'category', category, month, deadline_month FROM r
        UNION ALL SELECT grid, 'department', department, month, deadline_month FROM r
        UNION ALL SELECT village, 'category', category, month, deadline_month FROM r WHERE village IS NOT NULL
        UNION ALL SELECT village, 'department', department, month, deadline_month FROM r WHERE village IS NOT NULL)
 GROUP BY area, dim, key, month, deadline_month;
"#;

/// Every request's search entry made afresh from `request_index`, in one statement, for a first
/// pull that leaves them to its end. The text is `index::request_search_text`'s: the address,
/// a line break, the description.
pub(crate) const REFILL_SEARCH_INDEX: &str = r#"
DELETE FROM request_fts;
INSERT INTO request_fts (rowid, body) SELECT rowid, address || char(10) || description FROM request_index;
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
        M::up(V11),
        M::up(V12),
        M::up(V13),
        M::up(V14),
        M::up(V15),
        M::up(V16),
        M::up_with_hook(V17, fill_merged_into),
        M::up_with_hook(V18, fill_visit_gps),
        M::up(V19),
        M::up_with_hook(V20, fill_request_numbers),
        M::up(V21),
        M::up(V22),
        M::up(V23),
        M::up_with_hook(V24, fill_told_at),
        M::up(V25),
    ])
}

/// The schema version a fresh store is created at.
pub const LATEST_VERSION: usize = 25;

//! What the store keeps for sync: the relay it joined, the pull cursor, relay receipt times, and
//! applying a pulled page in one transaction.

use rusqlite::{params, Connection, OptionalExtension};

use super::{schema, NewDocument, Store};
use crate::error::{CoreError, Result};
use crate::sync::protocol::PulledDoc;

/// A page with at least this many documents new here has them read on helper threads; for
/// fewer, starting threads costs more than it saves.
const READ_AHEAD_FROM: usize = 8;

/// A first pull (the store holds no document and no cursor yet) whose first page brings at least
/// this many documents leaves the work that does not have to happen row by row to its end
/// ([`defer_first_pull_work`]).
const DEFER_INDEXES_FROM: usize = 100;

/// The tables whose secondary indexes a first pull builds at its end rather than row by row.
/// None of these indexes serves a statement that writing a pulled document runs (which then
/// would scan its table for every document); `visit_walkers`'s does, so it stays.
const DEFERRABLE_INDEX_TABLES: [&str; 2] = ["request_index", "visit_index"];

/// Indexes kept while a first pull runs: the reports name them (`INDEXED BY`), so they must
/// exist for a report to run at all, and they hold only the open requests with a deadline.
const INDEXES_KEPT_DURING_A_FIRST_PULL: [&str; 2] = ["request_open_by_deadline", "request_open_by_grid_deadline"];

/// The tables whose triggers keep the running counts, and only those (`schema`, versions 11 to
/// 13): a first pull drops the triggers and counts everything once at its end
/// ([`schema::RECOUNT_RUNNING_COUNTS`]).
const RUNNING_COUNT_TRIGGER_TABLES: [&str; 2] = ["request_index", "areas"];

/// The name under which `deferred_index` lists the running counts' recount.
const RECOUNT_NAME: &str = "running counts";

/// The name under which `deferred_index` lists the search entries' refill. While it is listed,
/// indexing a request writes no search entry (see [`search_entries_deferred`]).
const SEARCH_REFILL_NAME: &str = "request_fts";

/// Runs what a first pull left to its end (its indexes, running counts and search entries), in
/// one transaction; the number of statements run. Lists and reports give the same answers with
/// or without the indexes, only slower; the counts and search entries are whole again after it.
pub(crate) fn build_deferred_indexes(conn: &Connection) -> Result<usize> {
    let waiting: i64 = conn.query_row("SELECT COUNT(*) FROM deferred_index", [], |r| r.get(0))?;
    if waiting == 0 {
        return Ok(0);
    }
    let tx = conn.unchecked_transaction()?;
    let deferred: Vec<String> = tx
        .prepare("SELECT sql FROM deferred_index ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // The order does not matter: nothing here writes `request_index` or `areas`, whose triggers
    // are among the statements.
    for sql in &deferred {
        tx.execute_batch(sql)?;
    }
    tx.execute("DELETE FROM deferred_index", [])?;
    tx.commit()?;
    Ok(deferred.len())
}

/// Whether a first pull has left the requests' search entries to its end: indexing a request
/// then writes none, since the refill makes every one.
pub(crate) fn search_entries_deferred(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM deferred_index WHERE name = ?1)")?
        .query_row([SEARCH_REFILL_NAME], |r| r.get(0))?)
}

/// Leaves to the end of a first pull what is cheaper done once over every row than row by row:
/// the list indexes (dropped, each listed with its statement), the running counts (their
/// triggers dropped and listed, with the set-wise recount) and the search entries (the
/// refill). Part of the first page's transaction, so either all of it happens or none.
fn defer_first_pull_work(conn: &Connection) -> Result<()> {
    let quoted = |names: &[&str]| names.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    // `sql` is NULL for the indexes behind PRIMARY KEY and UNIQUE, which stay.
    let indexes: Vec<(String, String)> = conn
        .prepare(&format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
               AND tbl_name IN ({}) AND name NOT IN ({})",
            quoted(&DEFERRABLE_INDEX_TABLES),
            quoted(&INDEXES_KEPT_DURING_A_FIRST_PULL)
        ))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let triggers: Vec<(String, String)> = conn
        .prepare(&format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ({})",
            quoted(&RUNNING_COUNT_TRIGGER_TABLES)
        ))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut listed = conn.prepare("INSERT INTO deferred_index (name, sql) VALUES (?1, ?2)")?;
    for (name, sql) in &indexes {
        listed.execute(params![name, sql])?;
        conn.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
    }
    for (name, sql) in &triggers {
        listed.execute(params![name, sql])?;
        conn.execute_batch(&format!("DROP TRIGGER \"{}\"", name.replace('"', "\"\"")))?;
    }
    listed.execute(params![RECOUNT_NAME, schema::RECOUNT_RUNNING_COUNTS])?;
    listed.execute(params![SEARCH_REFILL_NAME, schema::REFILL_SEARCH_INDEX])?;
    Ok(())
}

/// At most this many helper threads read a page's new documents (Automerge's load and the index
/// rows), besides the store's thread that writes them; never more than the machine's cores.
const MAX_READERS: usize = 2;

/// The relay this device joined.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RelayLink {
    pub url: String,
    pub device_id: String,
    #[serde(skip)]
    pub token: String,
    pub role: String,
    pub grids: Vec<String>,
    /// The walker the hall enrolled this device for, if it named one.
    pub walker: Option<String>,
    /// This device's short number on the relay, part of the request numbers it gives.
    pub device_number: Option<u32>,
    /// The relay said at enrolment that its hall's staff sign in (see `sign_in_required`).
    #[serde(skip)]
    pub staff_sign_in: bool,
    /// The relay's public signing key from the enrolment (hex): a revocation must carry its
    /// signature before this device wipes itself. `None` for an enrolment with an older relay.
    #[serde(skip)]
    pub relay_key: Option<String>,
}

/// What moving a walker's phone to other grids did (`Store::move_to_grids`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct GridMove {
    pub removed_grids: Vec<String>,
    pub added_grids: Vec<String>,
    /// Documents of the grids left, forgotten.
    pub documents_forgotten: usize,
    /// Of those, changes that had not reached the relay yet: the relay no longer takes them
    /// from this device (kept, they would stop every later sync).
    pub unsent_changes_dropped: usize,
}

impl Store {
    /// The relay says this walker's phone now serves `grids` (the hall moved her). The records
    /// of a grid she left are forgotten: its documents with their outbox entries and receipts,
    /// its households and enterprises, and its index rows (the index is rebuilt); their photo
    /// files go with the next garbage collection. A grid she now serves is pulled whole: the
    /// pull cursor starts again, and what is already here is recognised by its hashes.
    pub fn move_to_grids(&self, grids: &[String]) -> Result<GridMove> {
        use std::collections::BTreeSet;
        let Some(link) = self.relay_link()? else { return Err(CoreError::NotJoined) };
        let old: BTreeSet<String> = link.grids.iter().cloned().collect();
        let new: BTreeSet<String> = grids.iter().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect();
        if old == new || new.is_empty() {
            return Ok(GridMove::default());
        }
        let removed: Vec<String> = old.difference(&new).cloned().collect();
        let added: Vec<String> = new.difference(&old).cloned().collect();
        let mut report = GridMove { removed_grids: removed.clone(), added_grids: added.clone(), ..GridMove::default() };
        self.atomically(|conn| {
            for grid in &removed {
                let ids: Vec<String> = conn
                    .prepare("SELECT id FROM documents WHERE grid = ?1")?
                    .query_map([grid], |r| r.get(0))?
                    .collect::<std::result::Result<_, _>>()?;
                for id in &ids {
                    report.unsent_changes_dropped += conn.execute("DELETE FROM outbox WHERE doc_id = ?1", [id])?;
                    conn.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [id])?;
                    conn.execute("DELETE FROM relay_receipts WHERE doc_id = ?1", [id])?;
                    conn.execute("DELETE FROM damaged_documents WHERE doc_id = ?1", [id])?;
                    conn.execute("DELETE FROM documents WHERE id = ?1", [id])?;
                }
                report.documents_forgotten += ids.len();
                for id in &ids {
                    // Camera photos still waiting to be shrunk for those records.
                    conn.execute("DELETE FROM photo_queue WHERE doc_id = ?1", [id])?;
                }
                // Half-filled forms about its households and enterprises.
                conn.execute(
                    "DELETE FROM drafts WHERE EXISTS (SELECT 1 FROM households h WHERE h.grid = ?1 AND drafts.key LIKE '%' || h.id)
                        OR EXISTS (SELECT 1 FROM enterprises e WHERE e.grid = ?1 AND drafts.key LIKE '%' || e.id)",
                    [grid],
                )?;
                conn.execute("DELETE FROM households WHERE grid = ?1", [grid])?;
                conn.execute("DELETE FROM enterprises WHERE grid = ?1", [grid])?;
                conn.execute("DELETE FROM walker_grids WHERE grid = ?1", [grid])?;
                // The grid itself and its micro-grids: nothing can be recorded there any more
                // (a form left open, a draft), which the relay would refuse and so stop every
                // later sync.
                conn.execute("DELETE FROM areas WHERE parent = ?1 AND kind = 'micro_grid'", [grid])?;
                conn.execute("DELETE FROM areas WHERE id = ?1", [grid])?;
            }
            // Colleagues who walk none of the grids still here, and photos no record here names
            // any more: those not yet sent would be refused (the relay no longer takes them from
            // this phone), and asking again at every sync would never end. Their files go with
            // the garbage collection that follows.
            conn.execute(
                "DELETE FROM walkers WHERE id NOT IN (SELECT walker FROM walker_grids) AND id != ?1",
                [&self.identity.walker],
            )?;
            let needed = Self::referenced_photos(conn)?;
            let hashes: Vec<String> =
                conn.prepare("SELECT hash FROM photos")?.query_map([], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?;
            for hash in hashes.iter().filter(|h| !needed.contains(*h)) {
                conn.execute("DELETE FROM photos WHERE hash = ?1 AND acknowledged_at IS NULL", [hash])?;
            }
            let wanted: Vec<String> = conn
                .prepare("SELECT hash FROM photo_wanted")?
                .query_map([], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?;
            for hash in wanted.iter().filter(|h| !needed.contains(*h)) {
                conn.execute("DELETE FROM photo_wanted WHERE hash = ?1", [hash])?;
            }
            self.set_meta("relay_grids", &new.iter().cloned().collect::<Vec<_>>().join(","))?;
            if !added.is_empty() {
                conn.execute("DELETE FROM meta WHERE key = 'relay_cursor'", [])?;
            }
            // In the same transaction: no index row ever names a forgotten document.
            self.rebuild_index()?;
            Ok(())
        })?;
        if report.unsent_changes_dropped > 0 {
            tracing::warn!(
                ?removed,
                dropped = report.unsent_changes_dropped,
                "changes of a grid this phone left were dropped"
            );
        }
        Ok(report)
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
        Ok(())
    }

    /// Remembers the relay this device enrolled with.
    pub fn set_relay_link(&self, link: &RelayLink) -> Result<()> {
        self.atomically(|_| {
            self.set_meta("relay_url", &link.url)?;
            self.set_meta("relay_device_id", &link.device_id)?;
            self.set_meta("relay_token", &link.token)?;
            self.set_meta("relay_role", &link.role)?;
            self.set_meta("relay_grids", &link.grids.join(","))?;
            self.set_meta("relay_walker", link.walker.as_deref().unwrap_or(""))?;
            match link.device_number {
                Some(n) => self.set_meta("relay_device_number", &n.to_string())?,
                None => {
                    self.conn.execute("DELETE FROM meta WHERE key = 'relay_device_number'", [])?;
                }
            }
            if link.staff_sign_in {
                self.set_sign_in_required_by_relay()?;
            }
            match &link.relay_key {
                Some(key) => self.set_meta("relay_key", key)?,
                None => {
                    self.conn.execute("DELETE FROM meta WHERE key = 'relay_key'", [])?;
                }
            }
            // A new relay means a new history of cursors.
            self.conn.execute("DELETE FROM meta WHERE key = 'relay_cursor'", [])?;
            Ok(())
        })
    }

    pub fn relay_link(&self) -> Result<Option<RelayLink>> {
        let (Some(url), Some(device_id), Some(token)) =
            (self.meta("relay_url")?, self.meta("relay_device_id")?, self.meta("relay_token")?)
        else {
            return Ok(None);
        };
        Ok(Some(RelayLink {
            url,
            device_id,
            token,
            role: self.meta("relay_role")?.unwrap_or_default(),
            grids: self
                .meta("relay_grids")?
                .unwrap_or_default()
                .split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
            walker: self.meta("relay_walker")?.filter(|w| !w.is_empty()),
            device_number: self.meta("relay_device_number")?.and_then(|n| n.parse().ok()),
            staff_sign_in: self.sign_in_required()?,
            relay_key: self.meta("relay_key")?,
        }))
    }

    /// Keeps the relay's public signing key, for a device enrolled before relays signed (see
    /// `RelayLink::relay_key`); the first one kept stays.
    pub fn set_relay_key(&self, key: &str) -> Result<()> {
        if self.meta("relay_key")?.is_none() {
            self.set_meta("relay_key", key)?;
        }
        Ok(())
    }

    /// The name this device was enrolled under (what the hall sees), when it was given one.
    pub fn device_name(&self) -> Result<Option<String>> {
        self.meta("device_name")
    }

    pub fn set_device_name(&self, name: &str) -> Result<()> {
        self.set_meta("device_name", name)
    }

    pub fn pull_cursor(&self) -> Result<String> {
        Ok(self.meta("relay_cursor")?.unwrap_or_default())
    }

    /// When the last sync finished (milliseconds), if ever.
    pub fn last_sync(&self) -> Result<Option<i64>> {
        Ok(self.meta("last_sync_at")?.and_then(|v| v.parse().ok()))
    }

    pub fn set_last_sync(&self, at_millis: i64) -> Result<()> {
        self.set_meta("last_sync_at", &at_millis.to_string())
    }

    /// Applies one pulled page — every document, its receipts and the new cursor — in one
    /// transaction: a device that dies mid-page simply pulls the page again.
    ///
    /// Documents new here (all of them, for a new device) are loaded and read on a helper
    /// thread, in page order, while this thread writes the ones before them, so a first sync
    /// uses a phone's or a PC's second core (`gridwalk-bench sync`'s P2 measures it). Documents
    /// already here are merged on this thread, since merging needs the stored document.
    pub fn apply_pull_page(&self, docs: &[PulledDoc], cursor: &str) -> Result<usize> {
        // A no-op sync ends with an empty page at the cursor the device already holds; writing
        // it would cost a transaction and an fsync for nothing.
        if docs.is_empty() && self.pull_cursor()? == cursor {
            return Ok(0);
        }
        let first_pull = docs.len() >= DEFER_INDEXES_FROM
            && self.pull_cursor()?.is_empty()
            && self.conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM documents)", [], |r| r.get::<_, bool>(0))?;
        self.atomically(|conn| {
            if first_pull {
                defer_first_pull_work(conn)?;
            }
            let mut held = Vec::with_capacity(docs.len());
            for d in docs {
                // Garbage is refused before anything is read or written.
                crate::docs::split_chunks(&d.bytes)?;
                held.push(
                    conn.prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?
                        .query_row([&d.doc_id], |_| Ok(()))
                        .optional()?
                        .is_some(),
                );
            }
            let new_docs = held.iter().filter(|h| !**h).count();
            std::thread::scope(|scope| {
                let readers = if new_docs >= READ_AHEAD_FROM {
                    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_READERS)
                } else {
                    0
                };
                // Reader `r` reads the new documents whose place among them is `r` modulo the
                // number of readers, and the store's thread takes them from each reader in turn,
                // so they are written in page order.
                let mut inboxes = Vec::with_capacity(readers);
                for r in 0..readers {
                    let (send, inbox) = std::sync::mpsc::sync_channel::<Result<NewDocument>>(32);
                    inboxes.push(inbox);
                    let held = &held;
                    scope.spawn(move || {
                        let new_here = docs.iter().zip(held).filter(|(_, h)| !**h);
                        let mine = new_here.enumerate().filter(|(k, _)| k % readers == r);
                        for (_, (d, _)) in mine {
                            // A closed channel means the writer stopped on an error.
                            if send.send(NewDocument::read(&d.doc_id, &d.bytes)).is_err() {
                                return;
                            }
                        }
                    });
                }
                let mut new_seen = 0;
                let mut changed = 0;
                // No savepoint per document: any error rolls the whole page back, and a savepoint
                // would make the search index flush its pending entries to disk for each document.
                for (d, held) in docs.iter().zip(&held) {
                    let applied = if *held {
                        let received = self.decode_remote(&d.doc_id, &d.bytes)?;
                        Self::merge_remote(conn, &d.doc_id, &d.bytes, received)?
                    } else {
                        let new = if readers > 0 {
                            let inbox = &inboxes[new_seen % readers];
                            inbox.recv().map_err(|_| CoreError::invalid("sync", "the document reader stopped"))?
                        } else {
                            NewDocument::read(&d.doc_id, &d.bytes)
                        };
                        new_seen += 1;
                        match new {
                            Ok(new) => Self::store_new_document(conn, new)?,
                            // Changes to a document already set aside whole (its header could not
                            // be read, so it was never stored) cannot be loaded on their own;
                            // they stay with the relay and the pull goes on.
                            Err(_) if Self::listed_damaged(conn, &d.doc_id)? => false,
                            Err(e) => return Err(e),
                        }
                    };
                    if applied {
                        changed += 1;
                    }
                    let mut insert = conn.prepare_cached(
                        "INSERT OR IGNORE INTO relay_receipts (doc_id, hash, received_at) VALUES (?1, ?2, ?3)",
                    )?;
                    for r in &d.receipts {
                        insert.execute(params![d.doc_id, &r.hash[..], r.received_at])?;
                    }
                }
                self.set_meta("relay_cursor", cursor)?;
                Ok(changed)
            })
        })
    }

    /// Builds the list indexes a first pull left to build at its end (see `schema` version 14);
    /// the number built, 0 when none were waiting.
    pub fn build_deferred_indexes(&self) -> Result<usize> {
        build_deferred_indexes(&self.conn)
    }

    /// Records receipts for changes this device pushed itself (the push response's time).
    pub fn record_receipts(&self, doc_id: &str, hashes: &[[u8; 32]], received_at: i64) -> Result<()> {
        let mut insert = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO relay_receipts (doc_id, hash, received_at) VALUES (?1, ?2, ?3)")?;
        for h in hashes {
            insert.execute(params![doc_id, &h[..], received_at])?;
        }
        Ok(())
    }

    /// When the relay first received change `hash` of document `doc_id`, if it said.
    pub(crate) fn receipt_of(&self, doc_id: &str, hash: &[u8; 32]) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT received_at FROM relay_receipts WHERE doc_id = ?1 AND hash = ?2")?
            .query_row(params![doc_id, &hash[..]], |r| r.get(0))
            .optional()?)
    }
}

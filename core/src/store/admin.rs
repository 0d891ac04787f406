//! The admin's changes to who does what: offices (责任科室) and the grids each walker looks
//! after. The hall PC is a device like any other: a change is written into this store's
//! reference tables and the rosters it touches are republished in the same transaction, so it
//! reaches the walkers' phones and the other hall devices through the relay like any document.

use super::{reference, PublishReport, Store};
use crate::error::{CoreError, Result};
use crate::model::Department;
use crate::ActionContext;

/// Longest office name accepted (characters).
const MAX_NAME_CHARS: usize = 40;

impl Store {
    /// The hall's quick phrases for visit notes, in its order; empty when it set none (the app
    /// then offers its built-in ones).
    pub fn quick_phrases(&self) -> Result<Vec<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT text FROM quick_phrases ORDER BY position")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?)
    }

    /// Sets the hall's quick phrases (常用语) for visit notes, replacing the list, and
    /// republishes every grid's roster so the phones get them. Blank lines are dropped and a
    /// phrase given twice is kept once; an empty list brings back the app's built-in phrases.
    pub fn save_quick_phrases(&self, ctx: &ActionContext, phrases: &[String]) -> Result<PublishReport> {
        use gridwalk_doc::roster::{MAX_QUICK_PHRASES, MAX_QUICK_PHRASE_CHARS};
        let mut clean: Vec<String> = Vec::new();
        for p in phrases.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            if p.chars().count() > MAX_QUICK_PHRASE_CHARS {
                return Err(CoreError::invalid(
                    "quick_phrases",
                    format!("a quick phrase has at most {MAX_QUICK_PHRASE_CHARS} characters: {p}"),
                ));
            }
            if !clean.iter().any(|c| c == p) {
                clean.push(p.to_string());
            }
        }
        if clean.len() > MAX_QUICK_PHRASES {
            return Err(CoreError::invalid("quick_phrases", format!("at most {MAX_QUICK_PHRASES} quick phrases")));
        }
        self.atomically(|conn| {
            conn.prepare_cached("DELETE FROM quick_phrases")?.execute([])?;
            for (position, text) in clean.iter().enumerate() {
                conn.prepare_cached("INSERT INTO quick_phrases (id, text, position) VALUES (?1, ?1, ?2)")?
                    .execute(rusqlite::params![text, position as i64])?;
            }
            self.publish_rosters(ctx, &[])
        })
    }

    /// Adds an office, or renames it or changes its level. Every grid's roster lists every
    /// office, so each roster is republished (the unchanged ones write nothing).
    pub fn save_department(&self, ctx: &ActionContext, department: &Department) -> Result<PublishReport> {
        let id = department.id.trim();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(CoreError::invalid("id", "an office id is 1 to 64 letters, digits, '-' or '_'"));
        }
        let name = department.name.trim();
        if name.is_empty() {
            return Err(CoreError::invalid("name", "the office needs a name"));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(CoreError::invalid("name", format!("an office name has at most {MAX_NAME_CHARS} characters")));
        }
        // Two offices of one name could not be told apart in the assignment list.
        if let Some(same) = self.departments()?.into_iter().find(|d| d.name == name && d.id != id) {
            return Err(CoreError::invalid("name", format!("the office {} already has this name", same.id)));
        }
        let clean = Department { id: id.to_string(), name: name.to_string(), level: department.level };
        self.atomically(|_| {
            self.put_department(&clean)?;
            self.publish_rosters(ctx, &[])
        })
    }

    /// Sets the grids a walker looks after (none: she looks after no grid for now). The rosters
    /// of the grids she joins and of those she leaves are republished, so each grid's phones
    /// learn who walks it.
    pub fn assign_walker_grids(&self, ctx: &ActionContext, walker: &str, grids: &[String]) -> Result<PublishReport> {
        let mut wanted: Vec<String> = grids.iter().map(|g| g.trim().to_string()).filter(|g| !g.is_empty()).collect();
        wanted.sort();
        wanted.dedup();
        self.atomically(|conn| {
            let mut w = self
                .walkers()?
                .into_iter()
                .find(|w| w.id == walker)
                .ok_or_else(|| CoreError::NotFound { kind: "walker", id: walker.to_string() })?;
            for g in &wanted {
                reference::require_grid(conn, g)?;
            }
            let mut touched: Vec<String> = w.grids.iter().chain(wanted.iter()).cloned().collect();
            touched.sort();
            touched.dedup();
            w.grids = wanted.clone();
            self.put_walker(&w)?;
            if touched.is_empty() {
                return Ok(PublishReport::default());
            }
            self.publish_rosters(ctx, &touched)
        })
    }
}

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

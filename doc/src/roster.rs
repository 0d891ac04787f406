//! 网格名册, a grid's roster: the reference lists a walker needs for her grid (the area chain, its
//! micro-grids, households, enterprises, the offices and the grid's walkers) as one Automerge
//! document per grid.
//!
//! Reference data is maintained at the hall in plain tables (see [`crate::model`]). Publishing a
//! roster copies a grid's slice of those tables into its document, so it reaches exactly the
//! devices entitled to that grid through the same relay, scope checks and sync as visits and
//! requests. A device that receives a roster writes it back into its own reference tables. The
//! hall publishes a whole list at a time; lists are keyed by id, so publishing again changes only
//! what changed, and a concurrent publication from a second hall PC merges field by field.

use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};

use crate::model::{Area, Department, Enterprise, Household, Walker};
use crate::time::Timestamp;

/// Every grid's roster has this id, so publishing twice updates one document.
pub fn roster_id(grid: &str) -> String {
    format!("roster-{grid}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct RosterBody {
    /// The grid itself, its ancestors (village, town) and its micro-grids, parents first.
    pub areas: Vec<Area>,
    pub households: Vec<Household>,
    pub enterprises: Vec<Enterprise>,
    /// Every office (责任科室): a walker shows who handles her requests.
    pub departments: Vec<Department>,
    /// The walkers of this grid; each lists only this grid, since a phone knows no other.
    pub walkers: Vec<Walker>,
    /// When the hall last published a change to this roster.
    pub published_at: Timestamp,
}

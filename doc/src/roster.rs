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

use crate::model::{Area, Department, Enterprise, Household, Role, Walker};
use crate::time::Timestamp;

/// Every grid's roster has this id, so publishing twice updates one document.
pub fn roster_id(grid: &str) -> String {
    format!("roster-{grid}")
}

/// The "grid" of the staff roster: no area has it, so no walker's phone is ever entitled to it,
/// while hall and admin devices (which see every grid) receive it.
pub const STAFF_GRID: &str = "_hall";

/// The hall's staff roster: who may sign in on a hall PC, with the salted slow hash of each
/// person's PIN, so a hall PC can check a PIN with no relay in reach. It is a roster document
/// of the `_hall` grid whose other lists are empty.
pub fn staff_roster_id() -> String {
    roster_id(STAFF_GRID)
}

/// At most this many quick phrases, each at most [`MAX_QUICK_PHRASE_CHARS`] characters: they are
/// buttons above a note box on a phone, not a document.
pub const MAX_QUICK_PHRASES: usize = 24;
pub const MAX_QUICK_PHRASE_CHARS: usize = 40;

/// The most a roster's quick phrases may hold at all, which the relay enforces: far above what
/// the hall's form allows, so that two hall PCs' edits merged into one longer list never stick
/// in an outbox, and far below what could weigh on a phone.
pub const MAX_QUICK_PHRASES_HELD: usize = 200;
pub const MAX_QUICK_PHRASE_HELD_CHARS: usize = 200;

/// Why a roster's quick phrases cannot be taken (`None`: they can).
pub fn quick_phrases_refusal(phrases: &[String]) -> Option<String> {
    if phrases.len() > MAX_QUICK_PHRASES_HELD {
        return Some(format!("{} quick phrases; a roster holds at most {MAX_QUICK_PHRASES_HELD}", phrases.len()));
    }
    phrases
        .iter()
        .find(|p| p.chars().count() > MAX_QUICK_PHRASE_HELD_CHARS)
        .map(|_| format!("a quick phrase has at most {MAX_QUICK_PHRASE_HELD_CHARS} characters"))
}

/// What a phone offers of a roster's quick phrases: the first [`MAX_QUICK_PHRASES`], each cut at
/// [`MAX_QUICK_PHRASE_CHARS`] characters, blank ones and repeats left out.
pub fn offered_quick_phrases(phrases: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in phrases {
        let p: String = p.trim().chars().take(MAX_QUICK_PHRASE_CHARS).collect();
        if !p.is_empty() && !out.contains(&p) {
            out.push(p);
        }
        if out.len() == MAX_QUICK_PHRASES {
            break;
        }
    }
    out
}

/// A member of the hall's staff who may sign in, as the staff roster lists her.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Reconcile, Hydrate)]
pub struct StaffMember {
    /// The person's id, as events name her (`by`). The key that two hall PCs' concurrent
    /// changes to the list merge by, person by person.
    #[key]
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The office (责任科室) she works for, for office staff.
    pub office: Option<String>,
    /// The PIN's Argon2id hash in PHC form (salt and parameters inside); never the PIN.
    pub pin_hash: String,
    /// Who last set this entry: an admin, or the person herself when she changed her own PIN.
    /// The relay judges a change to the entry by it, entry by entry, so that two hall PCs
    /// changing different people's entries at once are each judged by their own person.
    /// Entries from before it name nobody.
    #[serde(default)]
    #[autosurgeon(missing = "Default::default")]
    pub set_by: String,
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
    /// The hall's staff by name (no grids, no PINs), so that a phone shows who triaged or
    /// assigned its requests by name. Rosters published before it have no such list.
    #[serde(default)]
    #[autosurgeon(missing = "Default::default")]
    pub people: Vec<Walker>,
    /// The staff who may sign in on a hall PC: filled only in the staff roster (grid `_hall`).
    /// Rosters published before staff sign-in existed have no such list.
    #[serde(default)]
    #[autosurgeon(missing = "Default::default")]
    pub staff: Vec<StaffMember>,
    /// The hall's quick phrases for visit notes (常用语), in the order the hall put them. Empty:
    /// the app's built-in ones. Rosters published before them have none.
    #[serde(default)]
    #[autosurgeon(missing = "Default::default")]
    pub quick_phrases: Vec<String>,
    /// When the hall last published a change to this roster.
    pub published_at: Timestamp,
    /// Who published that change (the person signed in, not the PC): the relay judges a change
    /// to the staff roster by it (only an admin changes the list; anyone changes her own PIN).
    /// Rosters published before it name nobody; the header's creator stands in.
    #[serde(default)]
    #[autosurgeon(missing = "Default::default")]
    pub published_by: String,
}

//! Hall staff who sign in on a shared hall PC: people, not devices.
//!
//! Several staff share the service hall's PC, so the PC acting as one device says nothing about
//! who triaged or assigned a request. Each staff member is a person in `walkers` (with the role
//! hall, admin, office or leader) whom an admin gives a PIN. Only the PIN's Argon2id hash is
//! kept (`staff_pins`), and the admin's PC publishes every hash in the staff roster (a roster
//! document of the `_hall` grid, which only hall and admin devices receive), so that any hall PC
//! can check a PIN with the relay out of reach. The app keeps who signed in and acts in her
//! name; the relay refuses a hall device's events that name anyone not on the roster.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::Store;
use crate::error::{CoreError, Result};
use crate::model::Role;
use crate::roster::{RosterBody, StaffMember, STAFF_GRID};
use crate::ActionContext;
use gridwalk_doc::permissions::Forbidden;

/// The meta key under which a device keeps the relay's word that its hall's staff sign in.
const STAFF_SIGN_IN_META: &str = "staff_sign_in";
/// The meta key of the wrong PINs typed in a row here: "count,last millisecond".
const WRONG_PINS_META: &str = "wrong_pins";

/// A staff member as the sign-in screen lists her.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffEntry {
    pub id: String,
    pub name: String,
    pub role: String,
    pub has_pin: bool,
}

/// The PIN hashing rule lives in `gridwalk_doc::pin`, shared with the relay.
pub fn hash_pin(pin: &str) -> Result<String> {
    gridwalk_doc::pin::hash_pin(pin).map_err(|e| CoreError::invalid("pin", e.to_string()))
}

pub use gridwalk_doc::pin::pin_matches;

impl Store {
    /// The people who may work at the hall (every role but walker), with whether each has a PIN.
    pub fn staff(&self) -> Result<Vec<StaffEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT w.id, w.name, w.role, p.person IS NOT NULL FROM walkers w
               LEFT JOIN staff_pins p ON p.person = w.id
              WHERE w.role != 'walker' ORDER BY w.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StaffEntry { id: r.get(0)?, name: r.get(1)?, role: r.get(2)?, has_pin: r.get(3)? })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Whether staff must sign in on this device before acting: once any PIN is held here, or
    /// once the relay said at enrolment that its hall has a staff roster (a hall PC enrolled
    /// after PINs were given must not act as itself until its first pull brings them).
    pub fn sign_in_required(&self) -> Result<bool> {
        let pins: bool = self.conn.query_row("SELECT EXISTS (SELECT 1 FROM staff_pins)", [], |r| r.get(0))?;
        Ok(pins || self.meta(STAFF_SIGN_IN_META)?.is_some_and(|v| v == "1"))
    }

    /// Wrong PINs typed in a row on this device, and when the last one was (milliseconds since
    /// the epoch). Kept in the store, so that restarting the app gives no fresh tries.
    pub fn wrong_pins(&self) -> Result<(u32, Option<i64>)> {
        let Some(text) = self.meta(WRONG_PINS_META)? else { return Ok((0, None)) };
        let mut parts = text.split(',');
        let count = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        Ok((count, parts.next().and_then(|t| t.parse().ok())))
    }

    /// Counts one more wrong PIN typed at `at`, or with `None` clears the count (a right PIN).
    pub fn record_wrong_pin(&self, at: Option<i64>) -> Result<()> {
        match at {
            Some(at) => {
                let (count, _) = self.wrong_pins()?;
                self.set_meta(WRONG_PINS_META, &format!("{},{at}", count.saturating_add(1)))
            }
            None => {
                self.conn.execute("DELETE FROM meta WHERE key = ?1", [WRONG_PINS_META])?;
                Ok(())
            }
        }
    }

    /// Records the relay's word at enrolment that its hall's staff sign in.
    pub fn set_sign_in_required_by_relay(&self) -> Result<()> {
        self.set_meta(STAFF_SIGN_IN_META, "1")
    }

    /// Checks a staff member's PIN against the hash held here. `Ok(None)` when she has no PIN
    /// or the PIN is wrong; her name and role when it is right.
    pub fn verify_staff_pin(&self, person: &str, pin: &str) -> Result<Option<StaffEntry>> {
        let row: Option<(String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT w.name, w.role, p.pin_hash FROM staff_pins p JOIN walkers w ON w.id = p.person
                  WHERE p.person = ?1",
            )?
            .query_row([person], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(row.filter(|(_, _, hash)| pin_matches(pin, hash)).map(|(name, role, _)| StaffEntry {
            id: person.to_string(),
            name,
            role,
            has_pin: true,
        }))
    }

    /// Gives a staff member a PIN, or a new one. Only an admin gives anyone a PIN; a staff member
    /// changes her own by typing her old one. (Were any hall user able to set a colleague's PIN,
    /// she could then sign in as that colleague.) The very first PIN goes to an admin, so that
    /// someone can still give PINs once they are in force. One action: the hash is
    /// stored and the staff roster published, in one transaction, so every hall PC learns it on
    /// its next sync; the relay applies the same rule to that roster.
    pub fn set_staff_pin(&self, ctx: &ActionContext, person: &str, pin: &str, old_pin: Option<&str>) -> Result<()> {
        let (acting, _) = self.acting_role(ctx)?;
        let refuse = |why: &'static str| {
            CoreError::Forbidden(Forbidden { person: ctx.actor.clone(), role: acting.as_str(), what: "set a PIN", why })
        };
        if acting == Role::Walker {
            return Err(refuse("a walker's phone belongs to its walker; PINs are for staff at the hall"));
        }
        let hash = hash_pin(pin)?;
        // Whose PIN an admin may set is checked against the admin's own role as a person, also
        // before any PIN exists (when the PC still acts in its own role).
        let actor_role = self
            .conn
            .query_row("SELECT role FROM walkers WHERE id = ?1", [&ctx.actor], |r| r.get::<_, String>(0))
            .optional()?
            .and_then(|r| Role::parse(&r));
        let held: Option<String> = self
            .conn
            .query_row("SELECT pin_hash FROM staff_pins WHERE person = ?1", [person], |r| r.get(0))
            .optional()?;
        let own = ctx.actor == person;
        if !self.sign_in_required()? {
            // The first PIN of all: before it, every hall PC acts in its own role (the relay too),
            // so whoever is at one may give it, but only to an admin, who then gives the others.
            if Self::staff_role_of(&self.conn, person)? != Role::Admin {
                return Err(CoreError::invalid(
                    "first_pin",
                    "the first PIN goes to an admin, who then signs in and gives the others theirs",
                ));
            }
        } else {
            match (actor_role, own, &held) {
                (Some(Role::Admin), _, _) => {}
                (_, true, Some(old_hash)) => match old_pin {
                    Some(old) if pin_matches(old.trim(), old_hash) => {}
                    Some(_) => return Err(CoreError::invalid("old_pin", "the old PIN is not right")),
                    None => return Err(CoreError::invalid("old_pin", "type your old PIN to change it")),
                },
                _ => {
                    return Err(refuse(
                        "only an admin gives staff their PINs; a staff member changes her own with her old PIN",
                    ))
                }
            }
        }
        self.atomically(|conn| {
            Self::staff_role_of(conn, person)?;
            conn.prepare_cached(
                "INSERT INTO staff_pins (person, pin_hash, set_by) VALUES (?1, ?2, ?3)
                 ON CONFLICT (person) DO UPDATE SET pin_hash = excluded.pin_hash, set_by = excluded.set_by",
            )?
            .execute(params![person, hash, ctx.actor])?;
            Self::publish_staff_roster(conn, ctx)
        })
    }

    /// An admin records which office (责任科室) a member of office staff works for: signed in on
    /// a hall PC she then resolves what is assigned to that office, and nothing else.
    pub fn set_staff_office(&self, ctx: &ActionContext, person: &str, office: &str) -> Result<()> {
        let (acting, _) = self.acting_role(ctx)?;
        if acting != Role::Admin {
            return Err(CoreError::Forbidden(Forbidden {
                person: ctx.actor.clone(),
                role: acting.as_str(),
                what: "set a staff member's office",
                why: "only an admin changes the staff list",
            }));
        }
        self.atomically(|conn| {
            if Self::staff_role_of(conn, person)? != Role::Office {
                return Err(CoreError::invalid("person", format!("{person} is not office staff")));
            }
            crate::store::reference::require_department(conn, office)?;
            let changed = conn
                .prepare_cached("UPDATE staff_pins SET office = ?2, set_by = ?3 WHERE person = ?1")?
                .execute(params![person, office, ctx.actor])?;
            if changed == 0 {
                return Err(CoreError::invalid("person", format!("give {person} a PIN first")));
            }
            Self::publish_staff_roster(conn, ctx)
        })
    }

    /// The role of someone who may be given a PIN: any role but walker.
    fn staff_role_of(conn: &Connection, person: &str) -> Result<Role> {
        let role: Option<String> =
            conn.query_row("SELECT role FROM walkers WHERE id = ?1", [person], |r| r.get(0)).optional()?;
        match role.as_deref().and_then(Role::parse) {
            None => Err(CoreError::NotFound { kind: "person", id: person.to_string() }),
            Some(Role::Walker) => Err(CoreError::invalid(
                "person",
                format!("{person} is a walker, who acts on her own phone; only hall staff sign in with a PIN"),
            )),
            Some(role) => Ok(role),
        }
    }

    /// Writes the staff roster document from the tables (creating it the first time) and puts
    /// it in the outbox, inside the caller's transaction.
    pub(crate) fn publish_staff_roster(conn: &Connection, ctx: &ActionContext) -> Result<()> {
        let mut stmt = conn.prepare_cached(
            "SELECT w.id, w.name, w.role, p.office, p.pin_hash, p.set_by FROM staff_pins p
               JOIN walkers w ON w.id = p.person ORDER BY w.id",
        )?;
        let staff = stmt
            .query_map([], |r| {
                let role: String = r.get(2)?;
                Ok(StaffMember {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    role: Role::parse(&role).unwrap_or(Role::Hall),
                    office: r.get(3)?,
                    pin_hash: r.get(4)?,
                    set_by: r.get(5)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // Everyone the hall knows, by name and role (no grids, no phone numbers): the relay judges
        // a hall device's steps by the role of the person each names, and refuses a stranger.
        let people = conn
            .prepare_cached("SELECT id, name, role FROM walkers ORDER BY id")?
            .query_map([], |r| {
                let role: String = r.get(2)?;
                Ok(crate::model::Walker {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    phone: None,
                    role: Role::parse(&role).unwrap_or(Role::Walker),
                    work_group: None,
                    grids: Vec::new(),
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let body = RosterBody {
            areas: Vec::new(),
            households: Vec::new(),
            enterprises: Vec::new(),
            departments: Vec::new(),
            walkers: Vec::new(),
            people,
            staff,
            published_at: ctx.at,
            published_by: ctx.actor.clone(),
        };
        // Only the `_hall` grid's roster carries PIN hashes: no walker's phone is entitled to it.
        Self::put_roster(conn, ctx, STAFF_GRID, body)?;
        Ok(())
    }

    /// Writes a received staff roster into this device's tables: the people (name, role) and
    /// their PIN hashes; whoever it no longer lists can no longer sign in here.
    pub(crate) fn apply_staff(conn: &Connection, people: &[crate::model::Walker], staff: &[StaffMember]) -> Result<()> {
        for p in people {
            conn.prepare_cached(
                "INSERT INTO walkers (id, name, phone, role, work_group) VALUES (?1, ?2, NULL, ?3, NULL)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role",
            )?
            .execute(params![p.id, p.name, p.role.as_str()])?;
        }
        conn.execute("DELETE FROM staff_pins", [])?;
        for s in staff {
            conn.prepare_cached(
                "INSERT INTO walkers (id, name, phone, role, work_group) VALUES (?1, ?2, NULL, ?3, NULL)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role",
            )?
            .execute(params![s.id, s.name, s.role.as_str()])?;
            // Upsert: a list merged from two hall PCs' changes may name someone twice.
            conn.prepare_cached(
                "INSERT INTO staff_pins (person, office, pin_hash, set_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (person) DO UPDATE
                 SET office = excluded.office, pin_hash = excluded.pin_hash, set_by = excluded.set_by",
            )?
            .execute(params![s.id, s.office, s.pin_hash, s.set_by])?;
        }
        Ok(())
    }
}

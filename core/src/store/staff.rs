//! Hall staff who sign in on a shared hall PC: people, not devices.
//!
//! Several staff share the service hall's PC, so the PC acting as one device says nothing about
//! who triaged or assigned a request. Each staff member is a person (with the role hall, admin,
//! office or leader) on the hall's staff list, which the relay keeps (`gridwalk_relay::staff`):
//! its operator names the first admin, and an admin signed in on a hall PC adds people and
//! gives their PINs there, each change asked with her own PIN (`sync::client::change_staff`).
//! Only Argon2id hashes are kept, and every hall PC receives the list in the staff roster (a
//! roster document of the `_hall` grid, which no walker's phone is entitled to), so that a PIN
//! is checked by the PC when the relay is out of reach. The app keeps who signed in and acts in
//! her name, in her own role; the relay refuses a hall device's events that name anyone not on
//! the list.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::Store;
use crate::error::{CoreError, Result};
use crate::model::Role;
use crate::roster::{RosterBody, StaffMember, STAFF_GRID};
use crate::ActionContext;

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

    /// What to ask the relay (`sync::client::change_staff`) so that `person` gets the PIN
    /// `new_pin`, asked by the person acting in `ctx` with her own PIN: with the name and role
    /// this PC knows when she is not on the staff list yet (an admin adds her so). Whether the
    /// asker may is the relay's to say: an admin anyone's, everyone else only her own.
    pub fn staff_pin_request(
        &self,
        ctx: &ActionContext,
        person: &str,
        new_pin: &str,
        my_pin: &str,
    ) -> Result<gridwalk_protocol::StaffChangeRequest> {
        gridwalk_doc::pin::check_pin_shape(new_pin).map_err(|e| CoreError::invalid("pin", e.to_string()))?;
        let on_list: bool =
            self.conn
                .query_row("SELECT EXISTS (SELECT 1 FROM staff_pins WHERE person = ?1)", [person], |r| r.get(0))?;
        let (name, role) = if on_list {
            (None, None)
        } else {
            let role = Self::staff_role_of(&self.conn, person)?;
            let name: String = self.conn.query_row("SELECT name FROM walkers WHERE id = ?1", [person], |r| r.get(0))?;
            (Some(name), Some(role.as_str().to_string()))
        };
        Ok(gridwalk_protocol::StaffChangeRequest {
            actor: ctx.actor.clone(),
            actor_pin: my_pin.to_string(),
            person: person.to_string(),
            name,
            role,
            new_pin: Some(new_pin.to_string()),
            office: None,
            remove: false,
        })
    }

    /// What to ask the relay so that a member of office staff resolves what is assigned to
    /// `office` (an admin's change).
    pub fn staff_office_request(
        &self,
        ctx: &ActionContext,
        person: &str,
        office: &str,
        my_pin: &str,
    ) -> Result<gridwalk_protocol::StaffChangeRequest> {
        crate::store::reference::require_department(&self.conn, office)?;
        if Self::staff_role_of(&self.conn, person)? != Role::Office {
            return Err(CoreError::invalid("person", format!("{person} is not office staff")));
        }
        Ok(gridwalk_protocol::StaffChangeRequest {
            actor: ctx.actor.clone(),
            actor_pin: my_pin.to_string(),
            person: person.to_string(),
            name: None,
            role: None,
            new_pin: None,
            office: Some(office.to_string()),
            remove: false,
        })
    }

    /// The role of someone who may be on the staff list: any role but walker.
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

    /// Brings the staff roster's `people` (everyone the hall knows, by name and role; no grids,
    /// no phone numbers) up to date with this PC's tables, inside the caller's transaction: the
    /// relay judges a hall device's steps by the role of the person each names, and refuses a
    /// stranger. The staff list itself (who signs in, with which PIN) is the relay's
    /// (`gridwalk_relay::staff`) and is kept as received; before the relay started one there
    /// is nothing to bring up to date.
    pub(crate) fn publish_staff_roster(conn: &Connection, ctx: &ActionContext) -> Result<()> {
        let Some((_, _, doc)) = Self::load_automerge(conn, &gridwalk_doc::roster::staff_roster_id())? else {
            return Ok(());
        };
        let mut body: RosterBody = autosurgeon::hydrate_prop(&doc, automerge::ROOT, "body")?;
        body.people = conn
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

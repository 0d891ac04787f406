//! Hall staff who sign in on a shared hall PC: people, not devices.
//!
//! Several staff share the service hall's PC, so the PC acting as one device says nothing about
//! who triaged or assigned a request. Each staff member is a person in `walkers` (with the role
//! hall, admin, office or leader) whom an admin gives a PIN. Only the PIN's Argon2id hash is
//! kept (`staff_pins`), and the admin's PC publishes every hash in the staff roster (a roster
//! document of the `_hall` grid, which only hall and admin devices receive), so that any hall PC
//! can check a PIN with the relay out of reach. The app keeps who signed in and acts in her
//! name; the relay refuses a hall device's events that name anyone not on the roster.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::Store;
use crate::error::{CoreError, Result};
use crate::model::Role;
use crate::roster::{RosterBody, StaffMember, STAFF_GRID};
use crate::ActionContext;

/// A staff member as the sign-in screen lists her.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffEntry {
    pub id: String,
    pub name: String,
    pub role: String,
    pub has_pin: bool,
}

/// Argon2id with 19 MiB and two passes (OWASP's first recommended setting): about 50 ms to
/// check one PIN on a hall PC, and the same for every guess of whoever copied the hashes. A
/// PIN of four to eight digits is weak however it is hashed, which is why wrong PINs are also
/// slowed down where they are typed (the app) and the hashes never leave hall devices.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn check_pin_shape(pin: &str) -> Result<()> {
    if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CoreError::invalid("pin", "a PIN is 4 to 8 digits"));
    }
    Ok(())
}

/// The PHC string of `pin`'s Argon2id hash with a fresh random salt.
pub fn hash_pin(pin: &str) -> Result<String> {
    check_pin_shape(pin)?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| CoreError::invalid("pin", e.to_string()))?;
    let hash = hasher().hash_password(pin.as_bytes(), &salt).map_err(|e| CoreError::invalid("pin", e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `pin` matches the PHC string `hash`. A hash that does not parse matches nothing.
pub fn pin_matches(pin: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    hasher().verify_password(pin.as_bytes(), &parsed).is_ok()
}

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

    /// Whether staff must sign in on this device before acting: once any PIN is set here.
    pub fn sign_in_required(&self) -> Result<bool> {
        Ok(self.conn.query_row("SELECT EXISTS (SELECT 1 FROM staff_pins)", [], |r| r.get(0))?)
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

    /// An admin (or hall staff) gives a staff member a PIN, or a new one. One action: the hash
    /// is stored and the staff roster published, in one transaction, so every hall PC learns it
    /// on its next sync.
    pub fn set_staff_pin(&self, ctx: &ActionContext, person: &str, pin: &str) -> Result<()> {
        self.may(ctx, gridwalk_doc::permissions::Step::PublishRoster, None)?;
        let hash = hash_pin(pin)?;
        self.atomically(|conn| {
            let role: Option<String> =
                conn.query_row("SELECT role FROM walkers WHERE id = ?1", [person], |r| r.get(0)).optional()?;
            match role.as_deref().and_then(Role::parse) {
                None => return Err(CoreError::NotFound { kind: "person", id: person.to_string() }),
                Some(Role::Walker) => {
                    return Err(CoreError::invalid(
                        "person",
                        format!("{person} is a walker, who acts on her own phone; only hall staff sign in with a PIN"),
                    ))
                }
                Some(_) => {}
            }
            conn.prepare_cached(
                "INSERT INTO staff_pins (person, pin_hash) VALUES (?1, ?2)
                 ON CONFLICT (person) DO UPDATE SET pin_hash = excluded.pin_hash",
            )?
            .execute(params![person, hash])?;
            Self::publish_staff_roster(conn, ctx)
        })
    }

    /// Writes the staff roster document from the tables (creating it the first time) and puts
    /// it in the outbox, inside the caller's transaction.
    pub(crate) fn publish_staff_roster(conn: &Connection, ctx: &ActionContext) -> Result<()> {
        let mut stmt = conn.prepare_cached(
            "SELECT w.id, w.name, w.role, p.office, p.pin_hash FROM staff_pins p JOIN walkers w ON w.id = p.person
              ORDER BY w.id",
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
                "INSERT INTO staff_pins (person, office, pin_hash) VALUES (?1, ?2, ?3)
                 ON CONFLICT (person) DO UPDATE SET office = excluded.office, pin_hash = excluded.pin_hash",
            )?
            .execute(params![s.id, s.office, s.pin_hash])?;
        }
        Ok(())
    }
}

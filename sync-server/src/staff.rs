//! The hall's staff list — who may sign in on a hall PC, in which role and office, with which PIN
//! hash — kept by the relay itself.
//!
//! A hall PC is shared, and the relay cannot see who sits at it: whatever a PC pushes in a
//! person's name is that PC's word. Were the staff list a document the PCs write, any PC's
//! token could rewrite a colleague's PIN hash (or raise her own role) and then sign in as her
//! everywhere. So no device writes it. The relay's operator names the first admin
//! (`gridwalk-relay staff add-admin`), and every later change is asked of the relay
//! (`POST /v1/staff/change`) by a person together with her own PIN, which the relay checks
//! against the list before it writes: an admin adds people, gives or resets PINs, sets offices
//! and takes people off; anyone else only gives herself a new PIN. The relay writes the change
//! into the staff roster document (`gridwalk_doc::roster::staff_roster_id`) like any other
//! change, receipt chain included, and every hall PC receives it by its next pull; devices may
//! change only that document's `people` (names and roles of everyone the hall knows).

use std::sync::OnceLock;

use automerge::{ActorId, AutoCommit, ROOT};
use autosurgeon::{hydrate_prop, reconcile_prop};
use gridwalk_doc::doc_view::DocView;
use gridwalk_doc::docs::{commit, DocHeader, DocKind};
use gridwalk_doc::incoming;
use gridwalk_doc::model::Role as PersonRole;
use gridwalk_doc::pin::{hash_pin, pin_matches};
use gridwalk_doc::roster::{staff_roster_id, RosterBody, StaffMember, STAFF_GRID};
use gridwalk_doc::time::Timestamp;
use gridwalk_protocol::{
    DocChanges, IssueEnrollmentRequest, IssueEnrollmentResponse, PushRequest, StaffChangeRequest, StaffChangeResponse,
    StaffSignInResponse, PROTOCOL_VERSION,
};

use crate::relay::{Relay, RelayError, RelayResult};
use crate::store::{Device, Role};

/// Who the relay's own writes are by, in the receipt chain and the staff list.
pub const RELAY_WRITER: &str = "relay";

/// The longest person id the relay looks at: ids are short; anything longer is refused before
/// it costs a hash or a rate-limit entry.
const MAX_PERSON_ID: usize = 100;

/// A hash checked when the name is on no list, so that the answer takes as long as for a real
/// person and does not tell who is on the list.
fn stand_in_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_pin("00000000").unwrap_or_default())
}

fn staff_entry(m: &StaffMember) -> StaffSignInResponse {
    StaffSignInResponse { person: m.id.clone(), name: m.name.clone(), role: m.role.as_str().to_string() }
}

/// How long an enrolment code issued at a hall PC works: 30 minutes.
pub const CONSOLE_CODE_TTL_MS: i64 = 30 * 60_000;

fn refused(why: impl Into<String>) -> RelayError {
    RelayError::new(403, "staff_change_forbidden", why)
}

fn wrong_pin() -> RelayError {
    RelayError::new(401, "wrong_pin", "that name and PIN do not match")
}

impl Relay {
    /// The staff roster document as stored, and its body; `None` before the operator named an
    /// admin.
    fn staff_roster(&self) -> RelayResult<Option<(AutoCommit, RosterBody)>> {
        Ok(self.staff_roster_at()?.map(|(doc, body, _)| (doc, body)))
    }

    /// The staff roster with the version it was read at (its last sequence number).
    fn staff_roster_at(&self) -> RelayResult<Option<(AutoCommit, RosterBody, i64)>> {
        let Some(stored) = self.store().load_doc(&staff_roster_id())? else { return Ok(None) };
        let last_seq = stored.last_seq;
        let doc = AutoCommit::load(&stored.snapshot)
            .map_err(|e| RelayError::new(500, "damaged_document", format!("the staff roster does not load: {e}")))?;
        match incoming::read_whole(&stored.id, &DocView::new(&doc)) {
            Ok(incoming::Readable::Roster { body, .. }) => Ok(Some((doc, body, last_seq))),
            _ => Err(RelayError::new(500, "damaged_document", "the staff roster does not read as one")),
        }
    }

    /// The staff list as the relay holds it (empty before the operator named an admin).
    pub fn staff_list(&self) -> RelayResult<Vec<StaffMember>> {
        Ok(self.staff_roster()?.map(|(_, body)| body.staff).unwrap_or_default())
    }

    /// Checks `pin` against `person`'s entry, taking as long whether or not she is on the list.
    fn checked_member(body: &RosterBody, person: &str, pin: &str) -> RelayResult<StaffMember> {
        if person.len() > MAX_PERSON_ID {
            return Err(RelayError::bad("bad_person", format!("a person id has at most {MAX_PERSON_ID} characters")));
        }
        match body.staff.iter().find(|m| m.id == person) {
            Some(m) if pin_matches(pin, &m.pin_hash) => Ok(m.clone()),
            Some(_) => Err(wrong_pin()),
            None => {
                let _ = pin_matches(pin, stand_in_hash());
                Err(wrong_pin())
            }
        }
    }

    /// The person asking for a change to the staff list (or for an enrolment code), as the list
    /// holds her with her PIN: 404 `no_staff_roster` before the operator named an admin, 401
    /// `wrong_pin` when the name and PIN do not match.
    pub(crate) fn asker(&self, person: &str, pin: &str) -> RelayResult<StaffMember> {
        let Some((_, body)) = self.staff_roster()? else {
            return Err(RelayError::new(
                404,
                "no_staff_roster",
                "this hall has no staff list yet: the relay's operator names the first admin \
                 (gridwalk-relay staff add-admin)",
            ));
        };
        Self::checked_member(&body, person, pin)
    }

    /// Checks a staff member's PIN for a hall or admin device, against the newest staff list
    /// (see `gridwalk_protocol::StaffSignInRequest`). 401 `wrong_pin` when she is not on it or
    /// the PIN does not match, in the same words and time either way.
    pub fn verify_staff_pin(&self, device: &Device, person: &str, pin: &str) -> RelayResult<StaffSignInResponse> {
        if device.role == Role::Walker {
            return Err(RelayError::new(
                403,
                "forbidden",
                "a walker's phone belongs to its walker; staff sign in only on hall PCs",
            ));
        }
        let Some((_, body)) = self.staff_roster()? else {
            return Err(RelayError::new(404, "no_staff_roster", "this hall has given nobody a PIN yet"));
        };
        Ok(staff_entry(&Self::checked_member(&body, person, pin)?))
    }

    /// An admin at a hall PC issues a one-time enrolment code (the hall console shows it as a QR
    /// code), after the relay has checked her PIN against its staff list: the same power the
    /// relay's operator has with `gridwalk-relay enroll`, so no less than an admin's.
    pub fn issue_enrollment(
        &self,
        device: &Device,
        req: &IssueEnrollmentRequest,
    ) -> RelayResult<IssueEnrollmentResponse> {
        if device.role == Role::Walker {
            return Err(RelayError::new(403, "enrolment_forbidden", "a walker's phone does not enrol other devices"));
        }
        let name = req.device_name.trim();
        if name.chars().count() > MAX_PERSON_ID {
            return Err(RelayError::bad(
                "invalid_input",
                format!("a device name has at most {MAX_PERSON_ID} characters"),
            ));
        }
        if req.grids.len() > 200 || req.grids.iter().any(|g| g.trim().is_empty() || g.len() > MAX_PERSON_ID) {
            return Err(RelayError::bad("invalid_input", "grids are 1 to 100 characters each, at most 200 of them"));
        }
        let (role, walker) = match req.role.as_str() {
            "walker" => match req.walker.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
                Some(w) if w.len() <= MAX_PERSON_ID => (Role::Walker, Some(w)),
                _ => {
                    return Err(RelayError::bad(
                        "invalid_input",
                        "a walker's phone is enrolled for a walker, by her id",
                    ))
                }
            },
            "hall" => (Role::Hall, None),
            other => {
                return Err(RelayError::bad(
                    "invalid_input",
                    format!("'{other}' is not walker or hall; admin devices are enrolled at the relay itself"),
                ))
            }
        };
        let actor = self.asker(&req.actor, &req.actor_pin)?;
        if actor.role != PersonRole::Admin {
            return Err(RelayError::new(
                403,
                "enrolment_forbidden",
                format!("{} is no admin: only an admin enrols new devices", req.actor),
            ));
        }
        let grids = if role == Role::Walker { req.grids.clone() } else { Vec::new() };
        // A code shown on a hall screen is scanned there and then: it stops working soon, so a
        // screen left open does not hand a walker's grids to whoever passes by later.
        let (code, expires_at) = self.create_enrollment_within(name, role, &grids, walker, CONSOLE_CODE_TTL_MS)?;
        tracing::info!(by = %req.actor, device = %device.id, name, role = role.as_str(), "enrolment code issued at a hall PC");
        Ok(IssueEnrollmentResponse { code, expires_at })
    }

    /// The relay's operator names an admin, with her PIN: the first of the staff list (which this
    /// creates), or another, or the same again when she forgot her PIN. Only whoever runs the
    /// relay's command line can do this.
    pub fn add_admin(&self, person: &str, name: &str, pin: &str) -> RelayResult<()> {
        if person.trim().is_empty() || person.len() > MAX_PERSON_ID || name.trim().is_empty() {
            return Err(RelayError::bad("bad_person", "an admin needs an id of 1 to 100 characters and a name"));
        }
        let pin_hash = hash_pin(pin).map_err(|e| RelayError::bad("bad_pin", e.to_string()))?;
        let member = StaffMember {
            id: person.to_string(),
            name: name.to_string(),
            role: PersonRole::Admin,
            office: None,
            pin_hash,
            set_by: RELAY_WRITER.to_string(),
        };
        self.write_staff_list(RELAY_WRITER, |body| {
            body.staff.retain(|m| m.id != member.id);
            body.staff.push(member.clone());
            body.staff.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(())
        })
    }

    /// A change to the staff list asked for by a person with her own PIN (see the module).
    pub fn change_staff(&self, device: &Device, req: &StaffChangeRequest) -> RelayResult<StaffChangeResponse> {
        if device.role == Role::Walker {
            return Err(refused("a walker's phone does not change the hall's staff list"));
        }
        if req.person.trim().is_empty() || req.person.len() > MAX_PERSON_ID {
            return Err(RelayError::bad("bad_person", format!("a person id has 1 to {MAX_PERSON_ID} characters")));
        }
        let too_long = [&req.name, &req.office].into_iter().flatten().any(|t| t.chars().count() > MAX_PERSON_ID);
        if too_long {
            return Err(RelayError::bad(
                "bad_person",
                format!("a name or office has at most {MAX_PERSON_ID} characters"),
            ));
        }
        let actor = self.asker(&req.actor, &req.actor_pin)?;
        let own_pin_only = req.actor == req.person
            && req.new_pin.is_some()
            && req.name.is_none()
            && req.role.is_none()
            && req.office.is_none()
            && !req.remove;
        if actor.role != PersonRole::Admin && !own_pin_only {
            return Err(refused(format!(
                "{} may change only her own PIN; an admin gives, resets and takes away everyone else's",
                req.actor
            )));
        }
        let pin_hash = match &req.new_pin {
            Some(pin) => Some(hash_pin(pin.trim()).map_err(|e| RelayError::bad("bad_pin", e.to_string()))?),
            None => None,
        };
        let role = match &req.role {
            Some(r) => match PersonRole::parse(r) {
                Some(PersonRole::Walker) | None => {
                    return Err(RelayError::bad(
                        "bad_role",
                        format!(
                            "'{r}' is not a staff role: hall, admin, office or leader (walkers use their own phones)"
                        ),
                    ))
                }
                Some(role) => Some(role),
            },
            None => None,
        };
        let mut result = None;
        self.write_staff_list(&actor.id, |body| {
            // Decided again on the list as it now stands: the asker must still be on it as she was.
            if !body.staff.iter().any(|m| m.id == actor.id && m.pin_hash == actor.pin_hash && m.role == actor.role) {
                return Err(RelayError::new(
                    409,
                    "staff_list_changed",
                    "your own entry changed meanwhile; sign in again",
                ));
            }
            let index = body.staff.iter().position(|m| m.id == req.person);
            if req.remove {
                let Some(i) = index else {
                    return Err(RelayError::new(
                        404,
                        "not_on_staff_list",
                        format!("{} is not on the staff list", req.person),
                    ));
                };
                let admins = body.staff.iter().filter(|m| m.role == PersonRole::Admin).count();
                if body.staff[i].role == PersonRole::Admin && admins == 1 {
                    return Err(RelayError::bad("last_admin", "the last admin stays: name another admin first"));
                }
                body.staff.retain(|m| m.id != req.person);
                return Ok(());
            }
            let entry = match index {
                Some(i) => &mut body.staff[i],
                None => {
                    let (Some(name), Some(role), Some(pin_hash)) = (&req.name, role, &pin_hash) else {
                        return Err(RelayError::bad(
                            "bad_person",
                            format!("{} is not on the staff list: add her with her name, role and a PIN", req.person),
                        ));
                    };
                    // Kept in id order, as the list is everywhere else.
                    let at = body.staff.partition_point(|m| m.id < req.person);
                    body.staff.insert(
                        at,
                        StaffMember {
                            id: req.person.clone(),
                            name: name.clone(),
                            role,
                            office: None,
                            pin_hash: pin_hash.clone(),
                            set_by: actor.id.clone(),
                        },
                    );
                    &mut body.staff[at]
                }
            };
            if let Some(name) = &req.name {
                entry.name = name.clone();
            }
            if let Some(role) = role {
                if entry.role == PersonRole::Admin && role != PersonRole::Admin && entry.id == actor.id {
                    return Err(RelayError::bad("last_admin", "an admin does not take her own admin role away"));
                }
                entry.role = role;
            }
            if let Some(office) = &req.office {
                entry.office = Some(office.clone()).filter(|o| !o.trim().is_empty());
            }
            if let Some(hash) = &pin_hash {
                entry.pin_hash = hash.clone();
            }
            entry.set_by = actor.id.clone();
            result = Some(staff_entry(entry));
            Ok(())
        })?;
        Ok(StaffChangeResponse { person: result })
    }

    /// Writes a change to the staff list as the relay's own change to the staff roster document
    /// (creating it the first time), stored like any push: validated whole, chained, durable
    /// before this returns. Compare and swap: `edit` is decided on the list as stored, and if
    /// another write changed it meanwhile (another relay on the same database), the list is
    /// read again and `edit` decided again, never merged onto a list it did not see — two
    /// admins taking each other off at once must not leave the hall with none.
    fn write_staff_list(&self, by: &str, mut edit: impl FnMut(&mut RosterBody) -> RelayResult<()>) -> RelayResult<()> {
        for _ in 0..8 {
            match self.write_staff_list_once(by, &mut edit) {
                Err(e) if e.code == "conflict" => continue,
                other => return other,
            }
        }
        Err(RelayError::new(503, "busy", "the staff list kept changing; try again"))
    }

    fn write_staff_list_once(
        &self,
        by: &str,
        edit: &mut impl FnMut(&mut RosterBody) -> RelayResult<()>,
    ) -> RelayResult<()> {
        let at = Timestamp::from_millis(self.now()).map_err(|e| RelayError::new(500, "internal", e.to_string()))?;
        let internal = |e: &dyn std::fmt::Display| RelayError::new(500, "internal", format!("staff list: {e}"));
        // A fresh actor for every write: several relays on one database may write at once.
        let (mut doc, mut body, heads, read_at) = match self.staff_roster_at()? {
            Some((doc, body, last_seq)) => {
                let mut doc = doc.with_actor(ActorId::random());
                let heads = doc.get_heads();
                (doc, body, heads, Some(last_seq))
            }
            None => {
                let mut doc = AutoCommit::new().with_actor(ActorId::random());
                let ctx = gridwalk_doc::ActionContext::new(by, RELAY_WRITER, at);
                let header = DocHeader::new(&ctx, &staff_roster_id(), DocKind::Roster, STAFF_GRID);
                reconcile_prop(&mut doc, ROOT, "header", &header).map_err(|e| internal(&e))?;
                let body = RosterBody {
                    areas: Vec::new(),
                    households: Vec::new(),
                    enterprises: Vec::new(),
                    departments: Vec::new(),
                    walkers: Vec::new(),
                    people: Vec::new(),
                    staff: Vec::new(),
                    quick_phrases: Vec::new(),
                    published_at: at,
                    published_by: by.to_string(),
                };
                (doc, body, Vec::new(), None)
            }
        };
        // Only the staff list is the relay's to write: who published the roster's people, and
        // when, are the hall PCs' (a relay write there would race a PC's publication, and the
        // relay judge the PC's people change by whoever won).
        edit(&mut body)?;
        reconcile_prop(&mut doc, ROOT, "body", &body).map_err(|e| internal(&e))?;
        commit(&mut doc, at, "staff list");
        // The body read back as written: nothing of the edit was lost on the way.
        let written: RosterBody = hydrate_prop(&doc, ROOT, "body").map_err(|e| internal(&e))?;
        if written.staff != body.staff {
            return Err(internal(&"the staff list did not read back as written"));
        }
        let bytes: Vec<u8> = doc.get_changes(&heads).iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
        let writer = Device {
            id: RELAY_WRITER.to_string(),
            name: RELAY_WRITER.to_string(),
            role: Role::Admin,
            grids: Vec::new(),
            walker: None,
            number: None,
            leaving: Vec::new(),
        };
        let req =
            PushRequest { version: PROTOCOL_VERSION, docs: vec![DocChanges { doc_id: staff_roster_id(), bytes }] };
        // Stored only onto the version it was decided on (see `write_staff_list`).
        self.push_within(&writer, &req, 1, Some(read_at))?;
        Ok(())
    }
}

//! Publishing grid rosters from the reference tables, and writing a received roster back into
//! them. See [`crate::roster`] for why rosters are documents.

use std::collections::HashSet;

use automerge::{AutoCommit, ROOT};
use autosurgeon::{hydrate_prop, reconcile_prop};
use rusqlite::{params, Connection};

use super::Store;
use crate::docs::{self, DocHeader, DocKind};
use crate::error::{CoreError, Result};
use crate::model::{AreaKind, Walker};
use crate::roster::{roster_id, RosterBody};
use crate::time::Timestamp;
use crate::ActionContext;

/// What one publication did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PublishReport {
    /// Rosters created for grids that had none.
    pub created: usize,
    /// Rosters whose lists changed since the last publication.
    pub updated: usize,
    /// Rosters already up to date (nothing is written or sent for them).
    pub unchanged: usize,
}

impl Store {
    /// Builds a grid's roster body from this store's reference tables.
    pub fn roster_from_tables(&self, grid: &str, at: Timestamp) -> Result<RosterBody> {
        let all = self.areas()?;
        let the_grid = all
            .iter()
            .find(|a| a.id == grid && a.kind == AreaKind::Grid)
            .cloned()
            .ok_or_else(|| CoreError::UnknownGrid(grid.to_string()))?;
        // The chain up to the town first, so a device can insert parents before children.
        let mut chain = vec![the_grid.clone()];
        let mut parent = the_grid.parent.clone();
        while let Some(p) = parent {
            let Some(area) = all.iter().find(|a| a.id == p) else { break };
            if chain.iter().any(|a| a.id == area.id) {
                break; // a cycle in hand-made data must not hang publishing
            }
            chain.push(area.clone());
            parent = area.parent.clone();
        }
        chain.reverse();
        chain
            .extend(all.iter().filter(|a| a.kind == AreaKind::MicroGrid && a.parent.as_deref() == Some(grid)).cloned());
        let walkers = self
            .walkers()?
            .into_iter()
            .filter(|w| w.grids.iter().any(|g| g == grid))
            .map(|w| Walker { grids: vec![grid.to_string()], work_group: None, ..w })
            .collect();
        Ok(RosterBody {
            areas: chain,
            households: self.households(grid)?,
            enterprises: self.enterprises(grid)?,
            departments: self.departments()?,
            walkers,
            people: self
                .walkers()?
                .into_iter()
                .filter(|w| w.role != crate::model::Role::Walker)
                .map(|w| Walker { grids: Vec::new(), work_group: None, phone: None, ..w })
                .collect(),
            staff: Vec::new(),
            quick_phrases: self.quick_phrases()?,
            published_at: at,
            published_by: String::new(),
        })
    }

    /// Writes `body` as grid `grid`'s roster document (`roster-<grid>`), creating it the first
    /// time, inside the caller's transaction; it goes to the outbox when it changed. The
    /// publication time changes only with the lists, so publishing an unchanged roster writes and
    /// sends nothing. The one place rosters (grid rosters and the staff roster) are written.
    pub(crate) fn put_roster(
        conn: &Connection,
        ctx: &ActionContext,
        grid: &str,
        mut body: RosterBody,
    ) -> Result<RosterWrite> {
        let id = roster_id(grid);
        body.published_by = ctx.actor.clone();
        match Self::load_automerge(conn, &id)? {
            None => {
                let header = DocHeader::new(ctx, &id, DocKind::Roster, grid);
                let mut doc = docs::new_doc(ctx, &header)?;
                reconcile_prop(&mut doc, ROOT, "body", &body)?;
                docs::commit(&mut doc, ctx.at, "publish roster");
                Self::insert_new_document(conn, &header, &mut doc, ctx.at, true)?;
                Ok(RosterWrite::Created)
            }
            Some((kind, stored_grid, mut doc)) => {
                if kind != DocKind::Roster || stored_grid != grid {
                    return Err(CoreError::DamagedDocument { id, message: format!("expected grid {grid}'s roster") });
                }
                let old: RosterBody = hydrate_prop(&doc, ROOT, "body")?;
                // Who publishes and when change only with the lists.
                body.published_at = old.published_at;
                body.published_by = old.published_by.clone();
                if old == body {
                    return Ok(RosterWrite::Unchanged);
                }
                body.published_at = ctx.at;
                body.published_by = ctx.actor.clone();
                doc.set_actor(docs::actor_for_device(&ctx.device));
                let before = doc.get_heads();
                reconcile_prop(&mut doc, ROOT, "body", &body)?;
                docs::commit(&mut doc, ctx.at, "publish roster");
                Self::save_changes(conn, &id, &mut doc, &before, ctx.at, true)?;
                Ok(RosterWrite::Updated)
            }
        }
    }

    /// Publishes the rosters of the given grids (every grid when empty) in one transaction:
    /// each becomes or updates its grid's roster document and goes to the outbox when it changed.
    pub fn publish_rosters(&self, ctx: &ActionContext, grids: &[String]) -> Result<PublishReport> {
        self.may(ctx, gridwalk_doc::permissions::Step::PublishRoster, None)?;
        let grids: Vec<String> =
            if grids.is_empty() { self.grids()?.into_iter().map(|g| g.id).collect() } else { grids.to_vec() };
        self.atomically(|conn| {
            let mut report = PublishReport::default();
            for grid in &grids {
                let body = self.roster_from_tables(grid, ctx.at)?;
                match Self::put_roster(conn, ctx, grid, body)? {
                    RosterWrite::Created => report.created += 1,
                    RosterWrite::Updated => report.updated += 1,
                    RosterWrite::Unchanged => report.unchanged += 1,
                }
                // The roster's own tables already hold these rows: nothing to re-index.
            }
            // Once the hall has a staff roster, it names everyone (the relay judges a hall
            // device's steps by the person's role): keep it up with the people published here.
            Self::publish_staff_roster(conn, ctx)?;
            Ok(report)
        })
    }

    /// Writes a roster document's lists into this device's reference tables, replacing the
    /// grid's households and enterprises so removals reach the phone too.
    pub(crate) fn apply_roster(conn: &Connection, doc: &AutoCommit) -> Result<()> {
        let header = docs::read_header(doc)?;
        let body: RosterBody = hydrate_prop(doc, ROOT, "body")?;
        let grid = header.grid;
        if grid == gridwalk_doc::roster::STAFF_GRID && header.id == gridwalk_doc::roster::staff_roster_id() {
            return Self::apply_staff(conn, &body.people, &body.staff);
        }
        let order = |k: AreaKind| match k {
            AreaKind::Town => 0,
            AreaKind::Village => 1,
            AreaKind::Grid => 2,
            AreaKind::MicroGrid => 3,
        };
        let mut areas = body.areas.clone();
        areas.sort_by_key(|a| order(a.kind));
        for a in &areas {
            conn.prepare_cached(
                "INSERT INTO areas (id, kind, name, parent, enterprise_grid) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                    parent = excluded.parent, enterprise_grid = excluded.enterprise_grid",
            )?
            .execute(params![a.id, a.kind.as_str(), a.name, a.parent, a.enterprise_grid])?;
        }
        for d in &body.departments {
            conn.prepare_cached(
                "INSERT INTO departments (id, name, level) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, level = excluded.level",
            )?
            .execute(params![d.id, d.name, d.level.as_str()])?;
        }
        let keep: HashSet<&str> = body.households.iter().map(|h| h.id.as_str()).collect();
        drop_unlisted(
            conn,
            "SELECT id FROM households WHERE grid = ?1",
            "DELETE FROM households WHERE id = ?1 AND grid = ?2",
            &grid,
            &keep,
        )?;
        for h in body.households.iter().filter(|h| h.grid == grid) {
            conn.prepare_cached(
                "INSERT INTO households (id, grid, micro_grid, address, head_name, phone, members, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET grid = excluded.grid, micro_grid = excluded.micro_grid,
                    address = excluded.address, head_name = excluded.head_name, phone = excluded.phone,
                    members = excluded.members, tags = excluded.tags",
            )?
            .execute(params![
                h.id,
                h.grid,
                h.micro_grid,
                h.address,
                h.head_name,
                h.phone,
                h.members,
                h.tags.join(",")
            ])?;
        }
        let keep: HashSet<&str> = body.enterprises.iter().map(|e| e.id.as_str()).collect();
        drop_unlisted(
            conn,
            "SELECT id FROM enterprises WHERE grid = ?1",
            "DELETE FROM enterprises WHERE id = ?1 AND grid = ?2",
            &grid,
            &keep,
        )?;
        for e in body.enterprises.iter().filter(|e| e.grid == grid) {
            conn.prepare_cached(
                "INSERT INTO enterprises (id, grid, name, address, contact, phone, scale, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET grid = excluded.grid, name = excluded.name,
                    address = excluded.address, contact = excluded.contact, phone = excluded.phone,
                    scale = excluded.scale, tags = excluded.tags",
            )?
            .execute(params![
                e.id,
                e.grid,
                e.name,
                e.address,
                e.contact,
                e.phone,
                e.scale,
                e.tags.join(",")
            ])?;
        }
        // Every grid's roster carries the hall's one list; the latest received stands.
        conn.prepare_cached("DELETE FROM quick_phrases")?.execute([])?;
        for (position, text) in gridwalk_doc::roster::offered_quick_phrases(&body.quick_phrases).iter().enumerate() {
            conn.prepare_cached("INSERT OR IGNORE INTO quick_phrases (id, text, position) VALUES (?1, ?1, ?2)")?
                .execute(params![text, position as i64])?;
        }
        // The roster names everyone who walks this grid now: whoever it no longer names has
        // left the grid (an admin moved her), here as on the device that published it.
        let walking: HashSet<&str> = body.walkers.iter().map(|w| w.id.as_str()).collect();
        drop_unlisted(
            conn,
            "SELECT walker FROM walker_grids WHERE grid = ?1",
            "DELETE FROM walker_grids WHERE walker = ?1 AND grid = ?2",
            &grid,
            &walking,
        )?;
        for p in &body.people {
            // The hall's staff, by name only: they walk no grid.
            conn.prepare_cached(
                "INSERT INTO walkers (id, name, phone, role, work_group) VALUES (?1, ?2, NULL, ?3, NULL)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role",
            )?
            .execute(params![p.id, p.name, p.role.as_str()])?;
        }
        for w in &body.walkers {
            // The hall's own walker rows keep their work group; a phone learns only the name.
            conn.prepare_cached(
                "INSERT INTO walkers (id, name, phone, role, work_group) VALUES (?1, ?2, ?3, ?4, NULL)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, phone = excluded.phone, role = excluded.role",
            )?
            .execute(params![w.id, w.name, w.phone, w.role.as_str()])?;
            conn.prepare_cached("INSERT OR IGNORE INTO walker_grids (walker, grid) VALUES (?1, ?2)")?
                .execute(params![w.id, grid])?;
        }
        Ok(())
    }
}

/// What writing a roster did.
pub(crate) enum RosterWrite {
    Created,
    Updated,
    Unchanged,
}

/// Deletes the grid's rows that `list` finds and `keep` does not name: a roster lists everything
/// of its grid, so what it leaves out was removed where it was published. `delete` takes the
/// row's id as ?1 and the grid as ?2.
fn drop_unlisted(conn: &Connection, list: &str, delete: &str, grid: &str, keep: &HashSet<&str>) -> Result<()> {
    let existing: Vec<String> =
        conn.prepare_cached(list)?.query_map([grid], |r| r.get(0))?.collect::<std::result::Result<_, _>>()?;
    for id in existing.iter().filter(|id| !keep.contains(id.as_str())) {
        conn.prepare_cached(delete)?.execute(params![id, grid])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::demo::{generate, DemoConfig};
    use crate::store::Identity;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn hall() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            Store::create(dir.path().join("hall.db"), Identity { device: "hall".into(), walker: "staff".into() })
                .unwrap();
        let until = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let cfg = DemoConfig {
            villages: 2,
            households: 60,
            enterprises: 6,
            enterprise_grids: 1,
            requests: 10,
            visits: 10,
            days: 30,
            ..DemoConfig::street(7, until)
        };
        generate(&mut s, &cfg).unwrap();
        (dir, s)
    }

    fn phone(dir: &tempfile::TempDir) -> Store {
        Store::create(dir.path().join("phone.db"), Identity { device: "phone".into(), walker: "w1".into() }).unwrap()
    }

    #[test]
    fn a_published_roster_gives_a_phone_exactly_its_grids_lists_and_removals_follow() {
        let (dir, hall) = hall();
        let grid = hall.grids().unwrap().into_iter().find(|g| !g.enterprise_grid).unwrap().id;
        let ctx = hall.context(at(1_800_000_000_000));
        let report = hall.publish_rosters(&ctx, &[]).unwrap();
        assert_eq!(report.created, hall.grids().unwrap().len());
        let phone = phone(&dir);
        phone.apply_remote(&roster_id(&grid), &hall.document_bytes(&roster_id(&grid)).unwrap()).unwrap();
        assert_eq!(phone.households(&grid).unwrap(), hall.households(&grid).unwrap());
        assert!(!phone.households(&grid).unwrap().is_empty());
        assert_eq!(phone.departments().unwrap(), hall.departments().unwrap());
        // Only this grid: no other grid's households reach the phone.
        let others: i64 = phone
            .connection()
            .query_row("SELECT COUNT(*) FROM households WHERE grid <> ?1", [&grid], |r| r.get(0))
            .unwrap();
        assert_eq!(others, 0);
        assert!(phone.grids().unwrap().iter().any(|g| g.id == grid));

        // Publishing again without a change writes nothing.
        let outbox = hall.outbox_len().unwrap();
        let again = hall.publish_rosters(&hall.context(at(1_800_000_100_000)), std::slice::from_ref(&grid)).unwrap();
        assert_eq!(again, PublishReport { created: 0, updated: 0, unchanged: 1 });
        assert_eq!(hall.outbox_len().unwrap(), outbox);

        // The hall removes a household and renames another; the phone follows.
        let gone = hall.households(&grid).unwrap()[0].id.clone();
        hall.connection().execute("DELETE FROM households WHERE id = ?1", [&gone]).unwrap();
        let mut renamed = hall.households(&grid).unwrap()[0].clone();
        renamed.head_name = "李新名".into();
        hall.put_household(&renamed).unwrap();
        let third = hall.publish_rosters(&hall.context(at(1_800_000_200_000)), std::slice::from_ref(&grid)).unwrap();
        assert_eq!(third.updated, 1);
        phone.apply_remote(&roster_id(&grid), &hall.document_bytes(&roster_id(&grid)).unwrap()).unwrap();
        assert_eq!(phone.households(&grid).unwrap(), hall.households(&grid).unwrap());
        assert!(phone.households(&grid).unwrap().iter().all(|h| h.id != gone));
    }

    #[test]
    fn rebuilding_the_hall_index_leaves_its_reference_tables_alone() {
        let (_dir, hall) = hall();
        let grid = hall.grids().unwrap().into_iter().find(|g| !g.enterprise_grid).unwrap().id;
        hall.publish_rosters(&hall.context(at(1_800_000_000_000)), std::slice::from_ref(&grid)).unwrap();
        // A household added after publishing must not be removed by re-applying the old roster.
        let mut extra = hall.households(&grid).unwrap()[0].clone();
        extra.id = "h-added-later".into();
        hall.put_household(&extra).unwrap();
        hall.rebuild_index().unwrap();
        assert!(hall.households(&grid).unwrap().iter().any(|h| h.id == "h-added-later"));
        assert!(hall.check().unwrap().index_matches_documents);
    }

    #[test]
    fn publishing_an_unknown_grid_is_refused_and_writes_nothing() {
        let (_dir, hall) = hall();
        let outbox = hall.outbox_len().unwrap();
        let err = hall.publish_rosters(&hall.context(at(1_800_000_000_000)), &["nowhere".into()]).unwrap_err();
        assert_eq!(err.code(), "unknown_grid");
        assert_eq!(hall.outbox_len().unwrap(), outbox);
    }
}

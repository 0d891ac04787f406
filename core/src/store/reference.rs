//! Reference data: areas, households, enterprises, departments, work groups and walkers.

use rusqlite::{params, Connection, OptionalExtension};

use super::Store;
use crate::error::{CoreError, Result};
use crate::model::{Area, AreaKind, Department, Enterprise, Household, Level, Role, Walker, WorkGroup};

fn area_kind(conn: &Connection, id: &str) -> Result<Option<(AreaKind, Option<String>)>> {
    let row: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT kind, parent FROM areas WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(k, p)| AreaKind::parse(&k).map(|k| (k, p))))
}

pub(crate) fn require_grid(conn: &Connection, grid: &str) -> Result<()> {
    match area_kind(conn, grid)? {
        Some((AreaKind::Grid, _)) => Ok(()),
        _ => Err(CoreError::UnknownGrid(grid.to_string())),
    }
}

pub(crate) fn require_micro_grid(conn: &Connection, grid: &str, micro: &str) -> Result<()> {
    match area_kind(conn, micro)? {
        Some((AreaKind::MicroGrid, Some(parent))) if parent == grid => Ok(()),
        Some((AreaKind::MicroGrid, _)) => {
            Err(CoreError::invalid("micro_grid", format!("micro-grid {micro} does not belong to grid {grid}")))
        }
        _ => Err(CoreError::NotFound { kind: "micro-grid", id: micro.to_string() }),
    }
}

fn grid_of(conn: &Connection, table: &str, id: &str) -> Result<Option<String>> {
    let sql = format!("SELECT grid FROM {table} WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], |r| r.get(0)).optional()?)
}

/// The phone number on a household's or an enterprise's row: `None` when there is no such row,
/// `Some(None)` when it has no number.
pub(crate) fn phone_of(conn: &Connection, table: &str, id: &str) -> Result<Option<Option<String>>> {
    let sql = format!("SELECT phone FROM {table} WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], |r| r.get(0)).optional()?)
}

pub(crate) fn require_enterprise(conn: &Connection, id: &str) -> Result<()> {
    grid_of(conn, "enterprises", id)?
        .map(|_| ())
        .ok_or_else(|| CoreError::NotFound { kind: "enterprise", id: id.to_string() })
}

pub(crate) fn require_household_in(conn: &Connection, id: &str, grid: &str) -> Result<()> {
    match grid_of(conn, "households", id)? {
        Some(g) if g == grid => Ok(()),
        Some(g) => Err(CoreError::invalid("household", format!("household {id} is in grid {g}, not in {grid}"))),
        None => Err(CoreError::NotFound { kind: "household", id: id.to_string() }),
    }
}

pub(crate) fn require_enterprise_in(conn: &Connection, id: &str, grid: &str) -> Result<()> {
    match grid_of(conn, "enterprises", id)? {
        Some(g) if g == grid => Ok(()),
        Some(g) => Err(CoreError::invalid("enterprise", format!("enterprise {id} is in grid {g}, not in {grid}"))),
        None => Err(CoreError::NotFound { kind: "enterprise", id: id.to_string() }),
    }
}

pub(crate) fn require_department(conn: &Connection, id: &str) -> Result<()> {
    let found: Option<String> =
        conn.prepare_cached("SELECT id FROM departments WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
    found.map(|_| ()).ok_or_else(|| CoreError::NotFound { kind: "department", id: id.to_string() })
}

fn tags_text(tags: &[String]) -> String {
    tags.join(",")
}

fn tags_of(text: String) -> Vec<String> {
    text.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect()
}

impl Store {
    pub fn put_area(&self, area: &Area) -> Result<()> {
        if let Some(parent) = &area.parent {
            let expected = match area.kind {
                AreaKind::Town => None,
                AreaKind::Village => Some(AreaKind::Town),
                AreaKind::Grid => None, // a grid hangs under a village, or an enterprise grid under the town
                AreaKind::MicroGrid => Some(AreaKind::Grid),
            };
            match area_kind(&self.conn, parent)? {
                None => return Err(CoreError::NotFound { kind: "parent area", id: parent.clone() }),
                Some((k, _)) if expected.is_some_and(|e| e != k) => {
                    return Err(CoreError::invalid(
                        "parent",
                        format!("a {} cannot sit under a {}", area.kind.as_str(), k.as_str()),
                    ))
                }
                _ => {}
            }
        }
        self.conn
            .prepare_cached(
                "INSERT INTO areas (id, kind, name, parent, enterprise_grid) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                    parent = excluded.parent, enterprise_grid = excluded.enterprise_grid",
            )?
            .execute(params![area.id, area.kind.as_str(), area.name, area.parent, area.enterprise_grid])?;
        Ok(())
    }

    pub fn put_household(&self, h: &Household) -> Result<()> {
        require_grid(&self.conn, &h.grid)?;
        if let Some(mg) = &h.micro_grid {
            require_micro_grid(&self.conn, &h.grid, mg)?;
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO households (id, grid, micro_grid, address, head_name, phone,
                    members, tags) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                h.id,
                h.grid,
                h.micro_grid,
                h.address,
                h.head_name,
                h.phone,
                h.members,
                tags_text(&h.tags)
            ])?;
        Ok(())
    }

    pub fn put_enterprise(&self, e: &Enterprise) -> Result<()> {
        require_grid(&self.conn, &e.grid)?;
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO enterprises (id, grid, name, address, contact, phone, scale, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![e.id, e.grid, e.name, e.address, e.contact, e.phone, e.scale, tags_text(&e.tags)])?;
        Ok(())
    }

    pub fn put_department(&self, d: &Department) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO departments (id, name, level) VALUES (?1, ?2, ?3)")?
            .execute(params![d.id, d.name, d.level.as_str()])?;
        Ok(())
    }

    pub fn put_work_group(&self, g: &WorkGroup) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO work_groups (id, name, leader) VALUES (?1, ?2, ?3)")?
            .execute(params![g.id, g.name, g.leader])?;
        Ok(())
    }

    pub fn put_walker(&self, w: &Walker) -> Result<()> {
        for g in &w.grids {
            require_grid(&self.conn, g)?;
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO walkers (id, name, phone, role, work_group) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![w.id, w.name, w.phone, w.role.as_str(), w.work_group])?;
        self.conn.prepare_cached("DELETE FROM walker_grids WHERE walker = ?1")?.execute([&w.id])?;
        for g in &w.grids {
            self.conn
                .prepare_cached("INSERT INTO walker_grids (walker, grid) VALUES (?1, ?2)")?
                .execute(params![w.id, g])?;
        }
        Ok(())
    }

    pub fn areas(&self) -> Result<Vec<Area>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, kind, name, parent, enterprise_grid FROM areas ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            let kind: String = r.get(1)?;
            Ok(Area {
                id: r.get(0)?,
                kind: AreaKind::parse(&kind).unwrap_or(AreaKind::Grid),
                name: r.get(2)?,
                parent: r.get(3)?,
                enterprise_grid: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn grids(&self) -> Result<Vec<Area>> {
        Ok(self.areas()?.into_iter().filter(|a| a.kind == AreaKind::Grid).collect())
    }

    pub fn households(&self, grid: &str) -> Result<Vec<Household>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, grid, micro_grid, address, head_name, phone, members, tags FROM households
             WHERE grid = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([grid], |r| {
            Ok(Household {
                id: r.get(0)?,
                grid: r.get(1)?,
                micro_grid: r.get(2)?,
                address: r.get(3)?,
                head_name: r.get(4)?,
                phone: r.get(5)?,
                members: r.get(6)?,
                tags: tags_of(r.get(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn enterprises(&self, grid: &str) -> Result<Vec<Enterprise>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, grid, name, address, contact, phone, scale, tags FROM enterprises
             WHERE grid = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([grid], |r| {
            Ok(Enterprise {
                id: r.get(0)?,
                grid: r.get(1)?,
                name: r.get(2)?,
                address: r.get(3)?,
                contact: r.get(4)?,
                phone: r.get(5)?,
                scale: r.get(6)?,
                tags: tags_of(r.get(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn departments(&self) -> Result<Vec<Department>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, name, level FROM departments ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            let level: String = r.get(2)?;
            Ok(Department { id: r.get(0)?, name: r.get(1)?, level: Level::parse(&level).unwrap_or(Level::Town) })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn walkers(&self) -> Result<Vec<Walker>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, name, phone, role, work_group FROM walkers ORDER BY id")?;
        let mut walkers = stmt
            .query_map([], |r| {
                let role: String = r.get(3)?;
                Ok(Walker {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    phone: r.get(2)?,
                    role: Role::parse(&role).unwrap_or(Role::Walker),
                    work_group: r.get(4)?,
                    grids: Vec::new(),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut grids = self.conn.prepare_cached("SELECT grid FROM walker_grids WHERE walker = ?1 ORDER BY grid")?;
        for w in &mut walkers {
            w.grids = grids.query_map([&w.id], |r| r.get(0))?.collect::<Result<_, _>>()?;
        }
        Ok(walkers)
    }
}

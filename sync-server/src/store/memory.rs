//! A relay store in memory, for the deterministic tests: the same behaviour as the SQLite
//! store, proved by the same conformance suite, with nothing on disk. Its one mutex plays the
//! part of a database's write lock and is held for the data work of one call only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

use super::*;

#[derive(Default)]
pub struct MemoryRelayStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    enrollments: HashMap<[u8; 32], PendingEnrollment>,
    devices: Vec<StoredDevice>,
    docs: BTreeMap<String, StoredDoc>,
    /// Every change; a change's sequence number is its place here plus one.
    changes: Vec<StoredChange>,
    change_keys: BTreeSet<(String, [u8; 32])>,
    /// (blob hash, grid, document).
    blob_refs: BTreeSet<(String, String, String)>,
    /// (blob hash, grid) where the photo may be read.
    blob_grants: BTreeSet<(String, String)>,
    /// The receipt chain's value at the last change.
    chain: Option<[u8; 32]>,
    settings: BTreeMap<String, String>,
    /// By old device.
    handovers: BTreeMap<String, Handover>,
    /// By (device, its numbering).
    access: BTreeMap<(String, i64), StoredAccess>,
}

struct PendingEnrollment {
    enrollment: Enrollment,
    expires_at: i64,
    /// The device it made and the key the enrolling app sent, once used.
    used: Option<(String, Option<[u8; 32]>)>,
}

struct StoredDevice {
    device: Device,
    number: i64,
    token_hash: [u8; 32],
    enrolled_at: i64,
    last_seen_at: Option<i64>,
    revoked_at: Option<i64>,
    wiped_at: Option<i64>,
}

struct StoredChange {
    row: ChangeRow,
    grid: String,
    device: String,
}

fn in_scope(scope: Option<&[String]>, grid: &str) -> bool {
    scope.is_none_or(|grids| grids.iter().any(|g| g == grid))
}

impl MemoryRelayStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every call finishes its change before it lets go, so a poisoned lock holds whole data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RelayStore for MemoryRelayStore {
    fn create_enrollment(
        &self,
        code_hash: &[u8; 32],
        e: &Enrollment,
        _created_at: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.state()
            .enrollments
            .insert(*code_hash, PendingEnrollment { enrollment: e.clone(), expires_at, used: None });
        Ok(())
    }

    fn redeem_enrollment(
        &self,
        code_hash: &[u8; 32],
        device_id: &str,
        token_hash: &[u8; 32],
        now: i64,
        device_key_hash: Option<&[u8; 32]>,
    ) -> StoreResult<Option<Redeemed>> {
        let mut state = self.state();
        let Some(pending) = state.enrollments.get_mut(code_hash) else { return Ok(None) };
        if pending.expires_at <= now {
            return Ok(None);
        }
        let e = pending.enrollment.clone();
        if let Some((existing, key)) = &pending.used {
            // The same app asking again: its device gets a fresh token.
            if key.is_none() || key.as_ref() != device_key_hash {
                return Ok(None);
            }
            let existing = existing.clone();
            return Ok(match state.devices.iter_mut().find(|d| d.device.id == existing && d.revoked_at.is_none()) {
                Some(d) => {
                    d.token_hash = *token_hash;
                    Some(Redeemed { enrollment: e, device_id: existing, device_number: d.number })
                }
                None => None,
            });
        }
        pending.used = Some((device_id.to_string(), device_key_hash.copied()));
        let device_number = state.devices.iter().map(|d| d.number).max().unwrap_or(0) + 1;
        state.devices.push(StoredDevice {
            number: device_number,
            device: Device {
                id: device_id.to_string(),
                name: e.device_name.clone(),
                role: e.role,
                grids: e.grids.clone(),
                walker: e.walker.clone(),
                number: u32::try_from(device_number).ok(),
                leaving: Vec::new(),
            },
            token_hash: *token_hash,
            enrolled_at: now,
            last_seen_at: None,
            revoked_at: None,
            wiped_at: None,
        });
        Ok(Some(Redeemed { enrollment: e, device_id: device_id.to_string(), device_number }))
    }

    fn device_walker(&self, id: &str) -> StoreResult<Option<String>> {
        let state = self.state();
        Ok(state
            .devices
            .iter()
            .find(|d| d.device.id == id && d.device.role == Role::Walker)
            .and_then(|d| d.device.walker.clone()))
    }

    fn device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<Device>> {
        let state = self.state();
        Ok(state.devices.iter().find(|d| &d.token_hash == token_hash && d.revoked_at.is_none()).map(|d| Device {
            grids: {
                let mut g = d.device.grids.clone();
                g.sort();
                g
            },
            ..d.device.clone()
        }))
    }

    fn touch_device(&self, id: &str, now: i64) -> StoreResult<()> {
        let mut state = self.state();
        if let Some(d) = state.devices.iter_mut().find(|d| d.device.id == id) {
            if d.last_seen_at.is_none_or(|seen| seen <= now - LAST_SEEN_RESOLUTION_MS) {
                d.last_seen_at = Some(now);
            }
        }
        Ok(())
    }

    fn set_device_grids(&self, id: &str, grids: &[String], now: i64) -> StoreResult<bool> {
        let mut state = self.state();
        match state.devices.iter_mut().find(|d| d.device.id == id && d.revoked_at.is_none()) {
            Some(d) => {
                let mut grids = grids.to_vec();
                grids.sort();
                grids.dedup();
                for g in d.device.grids.iter().filter(|g| !grids.contains(g)) {
                    if !d.device.leaving.iter().any(|l| &l.grid == g) {
                        d.device.leaving.push(LeavingGrid { grid: g.clone(), since: now });
                    }
                }
                d.device.leaving.retain(|l| !grids.contains(&l.grid));
                d.device.leaving.sort_by(|a, b| a.grid.cmp(&b.grid));
                d.device.grids = grids;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn finish_leaving(&self, id: &str, holds: &[String]) -> StoreResult<bool> {
        let mut holds = holds.to_vec();
        holds.sort();
        holds.dedup();
        let mut state = self.state();
        match state.devices.iter_mut().find(|d| d.device.id == id) {
            Some(d)
                if !d.device.leaving.is_empty() && {
                    let mut serves = d.device.grids.clone();
                    serves.sort();
                    serves == holds
                } =>
            {
                d.device.leaving.clear();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn revoked_device_by_token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<String>> {
        let state = self.state();
        Ok(state
            .devices
            .iter()
            .find(|d| &d.token_hash == token_hash && d.revoked_at.is_some())
            .map(|d| d.device.id.clone()))
    }

    fn record_wipe(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut state = self.state();
        match state.devices.iter_mut().find(|d| d.device.id == id && d.revoked_at.is_some() && d.wiped_at.is_none()) {
            Some(d) => {
                d.wiped_at = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn devices(&self) -> StoreResult<Vec<DeviceInfo>> {
        let state = self.state();
        let mut devices: Vec<DeviceInfo> = state
            .devices
            .iter()
            .map(|d| DeviceInfo {
                id: d.device.id.clone(),
                number: Some(d.number),
                name: d.device.name.clone(),
                role: d.device.role.as_str().to_string(),
                grids: {
                    let mut g = d.device.grids.clone();
                    g.sort();
                    g
                },
                enrolled_at: d.enrolled_at,
                last_seen_at: d.last_seen_at,
                revoked_at: d.revoked_at,
                wiped_at: d.wiped_at,
                leaving_grids: d.device.leaving.clone(),
            })
            .collect();
        devices.sort_by(|a, b| (a.enrolled_at, &a.id).cmp(&(b.enrolled_at, &b.id)));
        Ok(devices)
    }

    fn revoke(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut state = self.state();
        match state.devices.iter_mut().find(|d| d.device.id == id && d.revoked_at.is_none()) {
            Some(d) => {
                d.revoked_at = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn load_doc(&self, id: &str) -> StoreResult<Option<StoredDoc>> {
        Ok(self.state().docs.get(id).cloned())
    }

    fn store_push(&self, writes: &[DocWrite], device: &str, received_at: i64) -> StoreResult<u32> {
        let mut state = self.state();
        // Checked for every document before anything is written: all or nothing.
        for w in writes {
            if state.docs.get(&w.id).map(|d| d.last_seq) != w.base_last_seq {
                return Err(StoreError::Conflict { doc: w.id.clone() });
            }
        }
        let mut stored = 0u32;
        for w in writes {
            let mut first = None;
            let mut last = None;
            for c in &w.new_changes {
                if !state.change_keys.insert((w.id.clone(), c.hash)) {
                    continue;
                }
                let seq = state.changes.len() as i64 + 1;
                let prev = state.chain.unwrap_or(chain::GENESIS);
                state.chain = Some(chain::link(&prev, seq, &w.id, &c.hash, device, received_at));
                state.changes.push(StoredChange {
                    row: ChangeRow { seq, doc_id: w.id.clone(), hash: c.hash, bytes: c.bytes.clone(), received_at },
                    grid: w.grid.clone(),
                    device: device.to_string(),
                });
                stored += 1;
                first.get_or_insert(seq);
                last = Some(seq);
            }
            let Some(last) = last else { continue };
            let doc = state.docs.entry(w.id.clone()).or_insert_with(|| StoredDoc {
                id: w.id.clone(),
                grid: w.grid.clone(),
                kind: w.kind.clone(),
                snapshot: Vec::new(),
                first_seq: first.unwrap_or(last),
                last_seq: last,
            });
            doc.snapshot = w.snapshot.clone();
            doc.last_seq = last;
            state.blob_refs.retain(|(_, _, doc)| doc != &w.id);
            for hash in &w.blob_refs {
                state.blob_refs.insert((hash.clone(), w.grid.clone(), w.id.clone()));
            }
        }
        Ok(stored)
    }

    fn max_seq(&self) -> StoreResult<i64> {
        Ok(self.state().changes.len() as i64)
    }

    fn changes_since(
        &self,
        after_seq: i64,
        scope: Option<&[String]>,
        except_device: &str,
        limit: usize,
    ) -> StoreResult<Vec<ChangeRow>> {
        let state = self.state();
        let start = after_seq.clamp(0, state.changes.len() as i64) as usize;
        Ok(state.changes[start..]
            .iter()
            .filter(|c| c.device != except_device && in_scope(scope, &c.grid))
            .take(limit)
            .map(|c| c.row.clone())
            .collect())
    }

    fn docs_after(
        &self,
        after_id: &str,
        scope: Option<&[String]>,
        except_device: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredDoc>> {
        let state = self.state();
        let by_others: BTreeSet<&str> =
            state.changes.iter().filter(|c| c.device != except_device).map(|c| c.row.doc_id.as_str()).collect();
        Ok(state
            .docs
            .range::<str, _>((std::ops::Bound::Excluded(after_id), std::ops::Bound::Unbounded))
            .map(|(_, d)| d)
            .filter(|d| in_scope(scope, &d.grid) && by_others.contains(d.id.as_str()))
            .take(limit)
            .cloned()
            .collect())
    }

    fn receipts(&self, doc_id: &str) -> StoreResult<Vec<([u8; 32], i64)>> {
        Ok(self
            .state()
            .changes
            .iter()
            .filter(|c| c.row.doc_id == doc_id)
            .map(|c| (c.row.hash, c.row.received_at))
            .collect())
    }

    fn doc_changes(&self, doc_id: &str) -> StoreResult<Vec<ChangeRow>> {
        Ok(self.state().changes.iter().filter(|c| c.row.doc_id == doc_id).map(|c| c.row.clone()).collect())
    }

    fn blob_referenced(&self, hash: &str, scope: Option<&[String]>) -> StoreResult<bool> {
        Ok(self.state().blob_refs.iter().any(|(h, grid, _)| h == hash && in_scope(scope, grid)))
    }

    fn blob_grids(&self, hash: &str) -> StoreResult<Vec<String>> {
        let grids: BTreeSet<String> =
            self.state().blob_refs.iter().filter(|(h, _, _)| h == hash).map(|(_, g, _)| g.clone()).collect();
        Ok(grids.into_iter().collect())
    }

    fn grant_blob(&self, hash: &str, grids: &[String]) -> StoreResult<()> {
        let mut state = self.state();
        for g in grids {
            state.blob_grants.insert((hash.to_string(), g.clone()));
        }
        Ok(())
    }

    fn blob_granted(&self, hash: &str, scope: Option<&[String]>) -> StoreResult<bool> {
        Ok(self.state().blob_grants.iter().any(|(h, grid)| h == hash && in_scope(scope, grid)))
    }

    fn backup(&self, _to: &Path) -> StoreResult<()> {
        Err(StoreError::Unsupported("an in-memory relay store has nothing to back up"))
    }

    fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        Ok(self.state().settings.entry(key.to_string()).or_insert_with(|| value.to_string()).clone())
    }

    fn insert_handover(&self, handover: &Handover) -> StoreResult<Handover> {
        Ok(self.state().handovers.entry(handover.from_device.clone()).or_insert_with(|| handover.clone()).clone())
    }

    fn handovers(&self) -> StoreResult<Vec<Handover>> {
        let mut all: Vec<Handover> = self.state().handovers.values().cloned().collect();
        all.sort_by(|a, b| (a.requested_at, &a.from_device).cmp(&(b.requested_at, &b.from_device)));
        Ok(all)
    }

    fn update_handover(&self, expected: HandoverState, next: &Handover) -> StoreResult<bool> {
        let mut state = self.state();
        match state.handovers.get_mut(&next.from_device) {
            Some(h) if h.state == expected => {
                *h = next.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn store_access(
        &self,
        device: &str,
        lines: &[gridwalk_protocol::AccessLine],
        received_at: i64,
    ) -> StoreResult<u32> {
        let mut state = self.state();
        let mut new = 0;
        for l in lines {
            if let std::collections::btree_map::Entry::Vacant(slot) = state.access.entry((device.to_string(), l.seq)) {
                slot.insert(StoredAccess { device_id: device.to_string(), line: l.clone(), received_at });
                new += 1;
            }
        }
        Ok(new)
    }

    fn access_log(&self, limit: usize) -> StoreResult<Vec<StoredAccess>> {
        let mut all: Vec<StoredAccess> = self.state().access.values().cloned().collect();
        all.sort_by(|a, b| {
            (b.received_at, b.line.at)
                .cmp(&(a.received_at, a.line.at))
                .then((&a.device_id, b.line.seq).cmp(&(&b.device_id, a.line.seq)))
        });
        all.truncate(limit);
        Ok(all)
    }

    fn stats(&self) -> StoreResult<Stats> {
        let state = self.state();
        Ok(Stats {
            devices: state.devices.iter().filter(|d| d.revoked_at.is_none()).count() as i64,
            revoked_devices: state.devices.iter().filter(|d| d.revoked_at.is_some()).count() as i64,
            documents: state.docs.len() as i64,
            changes: state.changes.len() as i64,
            change_bytes: state.changes.iter().map(|c| c.row.bytes.len() as i64).sum(),
            snapshot_bytes: state.docs.values().map(|d| d.snapshot.len() as i64).sum(),
        })
    }
}

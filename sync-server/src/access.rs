//! Every device's access log at the relay (issue 14): who saw a resident's full phone number on
//! her phone, who exported residents' data on which hall PC. Each device sends its lines as it
//! syncs (`POST /v1/access-log`); the admin reads all of them at any hall PC
//! (`GET /v1/access-log`), not only the lines of the PC she sits at.
//!
//! A line is the device's word, checked for shape only, with one exception: a walker's phone
//! speaks for its walker alone, so a line naming anyone else is refused, as her pushes are.

use gridwalk_protocol::{AccessLogEntry, AccessLogPush, ACCESS_KINDS};

use crate::relay::{Relay, RelayError, RelayResult};
use crate::store::{Device, Role};

/// The most lines one request carries; a device with more sends them in turns.
pub const MAX_ACCESS_LINES: usize = 500;

/// How far ahead of the relay's clock a line may be dated.
const MAX_CLOCK_AHEAD_MS: i64 = 24 * 3_600_000;

impl Relay {
    /// Keeps a device's access-log lines (each once); returns how many were new.
    pub fn store_access(&self, device: &Device, push: &AccessLogPush) -> RelayResult<u32> {
        let bad = |why: String| RelayError::bad("bad_access_line", why);
        let now = self.now();
        if push.lines.len() > MAX_ACCESS_LINES {
            return Err(bad(format!("at most {MAX_ACCESS_LINES} lines at a time")));
        }
        for l in &push.lines {
            if l.seq <= 0 {
                return Err(bad(format!("line {}: a line's number is positive", l.seq)));
            }
            // A device's clock may be off by a little, never by a day: lines dated ahead would
            // otherwise sit at the top of the admin's list over everyone else's.
            if l.at > now + MAX_CLOCK_AHEAD_MS {
                return Err(bad(format!("line {}: it is dated more than a day ahead of the relay's clock", l.seq)));
            }
            if !ACCESS_KINDS.contains(&l.kind.as_str()) {
                return Err(bad(format!(
                    "line {}: '{}' is no kind of access this relay knows",
                    l.seq,
                    l.kind.chars().take(40).collect::<String>()
                )));
            }
            if l.person.trim().is_empty() || l.person.chars().count() > 100 {
                return Err(bad(format!("line {}: who did it is 1 to 100 characters", l.seq)));
            }
            if l.subject.chars().count() > 300 || l.detail.chars().count() > 1000 {
                return Err(bad(format!("line {}: its subject or detail is too long", l.seq)));
            }
            if let Some(walker) = device.walker.as_deref().filter(|_| device.role == Role::Walker) {
                if l.person != walker {
                    return Err(RelayError::new(
                        403,
                        "forbidden_action",
                        format!("line {}: this phone belongs to {walker} and speaks for her or him alone", l.seq),
                    ));
                }
            }
        }
        Ok(self.store().store_access(&device.id, &push.lines, self.now())?)
    }

    /// The newest `limit` lines of every device, newest first, for a hall PC (whose console
    /// shows them to its admin). A walker's phone reads none. The relay cannot see who sits at
    /// a hall PC, so any hall PC's token reads the list; it names people, devices and record
    /// ids, never a phone number, and a hall PC holds every resident's record anyway.
    pub fn access_log(&self, device: &Device, limit: usize) -> RelayResult<Vec<AccessLogEntry>> {
        if device.role == Role::Walker {
            return Err(RelayError::new(403, "forbidden", "the access log is read at a hall PC, by its admin"));
        }
        let devices = self.devices()?;
        let rows = self.store().access_log(limit.clamp(1, 5000))?;
        Ok(rows
            .into_iter()
            .map(|a| AccessLogEntry {
                device_name: devices.iter().find(|d| d.id == a.device_id).map(|d| d.name.clone()).unwrap_or_default(),
                device_id: a.device_id,
                line: a.line,
                received_at: a.received_at,
            })
            .collect())
    }
}

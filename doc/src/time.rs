//! Time. Domain logic never reads a clock: the moment of an action arrives in an
//! [`ActionContext`](crate::ActionContext), and only binaries (CLI, app, relay) own a
//! [`SystemClock`]. Device clocks may be wrong, so every event keeps the device's time as it was,
//! and (with sync) the time the relay first saw it.

use autosurgeon::{Hydrate, HydrateError, Reconcile, Reconciler};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

use crate::error::{DocError, Result};

/// The zone dates are shown and entered in unless a user picks another.
pub const DISPLAY_TZ: Tz = chrono_tz::Asia::Shanghai;

/// Something that says what time it is. Only binaries hold one.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests and the demo generator.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = at;
    }
    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// A moment, kept in documents as an Automerge timestamp (milliseconds since the Unix epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Result<Self> {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .map(Timestamp)
            .ok_or_else(|| DocError::invalid("time", format!("{ms} ms is out of range")))
    }
    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
    /// Local wall-clock text in the display zone, e.g. `2026-11-20 14:05`.
    pub fn display(&self) -> String {
        self.0.with_timezone(&DISPLAY_TZ).format("%Y-%m-%d %H:%M").to_string()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Timestamp(value)
    }
}

impl Reconcile for Timestamp {
    type Key<'a> = autosurgeon::reconcile::NoKey;
    fn reconcile<R: Reconciler>(&self, mut reconciler: R) -> Result<(), R::Error> {
        reconciler.timestamp(self.millis())
    }
}

impl Hydrate for Timestamp {
    fn hydrate_timestamp(t: i64) -> Result<Self, HydrateError> {
        DateTime::<Utc>::from_timestamp_millis(t)
            .map(Timestamp)
            .ok_or_else(|| HydrateError::unexpected("a timestamp in range", t.to_string()))
    }
    fn hydrate_int(t: i64) -> Result<Self, HydrateError> {
        Self::hydrate_timestamp(t)
    }
}

/// Parses a date or date-time typed by a person or a script. Accepts RFC 3339
/// (`2026-11-20T10:00:00+08:00`), or `YYYY-MM-DD[ HH:MM[:SS]]` / `YYYY-MM-DDTHH:MM` read in
/// the display zone (Asia/Shanghai). A bare date means the end of that day when `end_of_day` is
/// set (deadlines), else its start.
pub fn parse_user_time(field: &str, text: &str, end_of_day: bool) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = |naive: NaiveDateTime| {
        DISPLAY_TZ
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| DocError::invalid(field, format!("'{text}' does not exist locally")))
    };
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(text, fmt) {
            return local(n);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let n = if end_of_day { d.and_hms_opt(23, 59, 59) } else { d.and_hms_opt(0, 0, 0) }.expect("valid time of day");
        return local(n);
    }
    Err(DocError::invalid(field, format!("'{text}' is not a date; write it as 2026-11-20 or 2026-11-20 14:30")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_dates_are_read_in_shanghai_time() {
        let t = parse_user_time("at", "2026-11-20", false).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-19T16:00:00+00:00");
        let end = parse_user_time("deadline", "2026-11-20", true).unwrap();
        assert_eq!(end.to_rfc3339(), "2026-11-20T15:59:59+00:00");
    }

    #[test]
    fn nonsense_dates_are_refused_with_the_field_name() {
        let err = parse_user_time("deadline", "2026-13-45", true).unwrap_err();
        assert!(err.to_string().contains("deadline"), "{err}");
    }
}

//! The access log (issue 14): who saw a resident's full phone number, and who took residents'
//! data off the device (an XLSX, CSV or JSON export, the reference lists, a request's evidence
//! folder), with when and what. Written in the same store, so it is encrypted like everything
//! else. Each line also goes to the relay (`unsent_access`, `mark_access_sent`, sent by the
//! app's sync worker), so the admin reads every device's lines, the walkers' reveals and every
//! hall PC's exports, not only her own PC's (`access_log` shows the local lines when the relay is
//! out of reach).

use rusqlite::params;
use serde::Serialize;

use super::{reference, Store};
use crate::docs::Reporter;
use crate::error::{CoreError, Result};
use crate::ActionContext;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// A full phone number shown on tap.
    RevealPhone,
    /// Requests written to a file (CSV, XLSX or JSON).
    ExportRequests,
    /// The monthly list (驻网办事清单) as XLSX.
    ExportMonthly,
    /// The reference lists (households, enterprises…) as CSV.
    ExportReference,
    /// A request's evidence folder: its document, history and photos.
    ExportEvidence,
}

impl AccessKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKind::RevealPhone => "reveal_phone",
            AccessKind::ExportRequests => "export_requests",
            AccessKind::ExportMonthly => "export_monthly",
            AccessKind::ExportReference => "export_reference",
            AccessKind::ExportEvidence => "export_evidence",
        }
    }
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessEntry {
    pub seq: i64,
    pub at: i64,
    pub person: String,
    pub device: String,
    pub kind: String,
    /// Whose data: `household:<id>`, `request:<id>`, or the export's scope.
    pub subject: String,
    /// What exactly: the file written and how many records.
    pub detail: String,
}

/// Whose phone number a reveal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneOf {
    Household,
    Enterprise,
    /// A request's resident reporter.
    Request,
}

impl Store {
    /// Records one access, in its own transaction (or the caller's).
    pub fn record_access(&self, ctx: &ActionContext, kind: AccessKind, subject: &str, detail: &str) -> Result<()> {
        self.atomically(|conn| {
            conn.prepare_cached(
                "INSERT INTO access_log (at, person, device, kind, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![ctx.at.millis(), ctx.actor, ctx.device, kind.as_str(), subject, detail])?;
            Ok(())
        })
    }

    /// The newest `limit` entries, newest first.
    pub fn access_log(&self, limit: usize) -> Result<Vec<AccessEntry>> {
        self.access_lines("ORDER BY seq DESC", limit)
    }

    /// Lines the relay has not taken yet, oldest first, at most `limit`.
    pub fn unsent_access(&self, limit: usize) -> Result<Vec<AccessEntry>> {
        self.access_lines("WHERE sent_at IS NULL ORDER BY seq", limit)
    }

    /// At most `limit` lines, chosen and ordered by `tail` (a fixed clause, never user input).
    fn access_lines(&self, tail: &'static str, limit: usize) -> Result<Vec<AccessEntry>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT seq, at, person, device, kind, subject, detail FROM access_log {tail} LIMIT ?1"
        ))?;
        let rows = stmt
            .query_map([limit.min(i64::MAX as usize) as i64], |r| {
                Ok(AccessEntry {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    person: r.get(2)?,
                    device: r.get(3)?,
                    kind: r.get(4)?,
                    subject: r.get(5)?,
                    detail: r.get(6)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows)
    }

    /// The relay took the lines up to `seq` (durably): they are not sent again.
    pub fn mark_access_sent(&self, up_to_seq: i64, at: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE access_log SET sent_at = ?2 WHERE seq <= ?1 AND sent_at IS NULL",
            params![up_to_seq, at],
        )?)
    }

    /// A resident's full phone number, shown because someone tapped to see it: recorded in the
    /// access log in the same transaction, so no number is shown without its line.
    pub fn reveal_phone(&self, ctx: &ActionContext, of: PhoneOf, id: &str) -> Result<Option<String>> {
        let not_found = |kind: &'static str| CoreError::NotFound { kind, id: id.to_string() };
        let (phone, subject) = match of {
            PhoneOf::Household => (
                reference::phone_of(&self.conn, "households", id)?.ok_or_else(|| not_found("household"))?,
                format!("household:{id}"),
            ),
            PhoneOf::Enterprise => (
                reference::phone_of(&self.conn, "enterprises", id)?.ok_or_else(|| not_found("enterprise"))?,
                format!("enterprise:{id}"),
            ),
            PhoneOf::Request => {
                let phone = match self.request(id)?.body.reporter {
                    Reporter::Resident { phone, .. } => phone,
                    Reporter::Enterprise { .. } | Reporter::Anonymous => None,
                };
                (phone, format!("request:{id}"))
            }
        };
        if phone.is_some() {
            self.record_access(ctx, AccessKind::RevealPhone, &subject, "")?;
        }
        Ok(phone)
    }
}

#[cfg(test)]
mod tests {
    use super::AccessKind;

    #[test]
    fn every_kind_of_access_is_one_the_relay_takes() {
        let ours = [
            AccessKind::RevealPhone,
            AccessKind::ExportRequests,
            AccessKind::ExportMonthly,
            AccessKind::ExportReference,
            AccessKind::ExportEvidence,
        ];
        let names: Vec<&str> = ours.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, gridwalk_protocol::ACCESS_KINDS, "the device's kinds and the relay's are one list");
    }
}

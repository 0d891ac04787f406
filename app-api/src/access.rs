//! The access log across devices (issue 14): each device's lines go to the relay as it syncs,
//! and the admin's page on a hall PC reads every device's lines from there, so a walker's
//! reveals and the other hall PCs' exports are in front of her too. Out of reach of the relay
//! it shows this device's own lines.

use gridwalk_core::store::{RelayLink, Store};
use gridwalk_transport::client;
use serde::Serialize;

use crate::commands::context;
use crate::{App, CommandError, CommandResult};

/// The most lines sent in one request (the relay's limit is higher).
const SEND_AT_ONCE: usize = 200;

/// One line as the admin's page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRow {
    pub seq: i64,
    pub at: i64,
    pub person: String,
    pub device: String,
    /// The device's name, as the hall enrolled it.
    pub device_name: String,
    pub kind: String,
    pub subject: String,
    pub detail: String,
}

/// Sends this device's unsent lines to the relay, a few hundred at a time, and marks them sent
/// once it has them. Called by the sync worker; a failure is tried again at the next round.
pub(crate) fn send_lines(store: &Store, link: &RelayLink, now: i64) {
    loop {
        let lines = match store.unsent_access(SEND_AT_ONCE) {
            Ok(lines) if !lines.is_empty() => lines,
            Ok(_) => return,
            Err(e) => return tracing::warn!("cannot read the access log to send: {e}"),
        };
        let last = lines.iter().map(|l| l.seq).max().unwrap_or(0);
        let count = lines.len();
        let wire = lines
            .into_iter()
            .map(|l| gridwalk_core::sync::protocol::AccessLine {
                seq: l.seq,
                at: l.at,
                person: l.person,
                kind: l.kind,
                subject: l.subject,
                detail: l.detail,
            })
            .collect();
        if let Err(e) = client::push_access_log(link, wire) {
            return tracing::warn!("the access log waits for the relay: {e}");
        }
        if let Err(e) = store.mark_access_sent(last, now) {
            return tracing::warn!("cannot mark the access log sent: {e}");
        }
        if count < SEND_AT_ONCE {
            return;
        }
    }
}

/// The access log for the admin: every device's lines from the relay, with this device's lines
/// not sent yet; this device's own when the relay is out of reach.
pub(crate) fn access_log(app: &App, limit: usize) -> CommandResult<Vec<AccessRow>> {
    let (link, local, unsent, me) = {
        let store = app.store()?;
        let ctx = context(app, &store)?;
        if store.acting_role(&ctx)?.0 != gridwalk_core::model::Role::Admin {
            return Err(CommandError::new("forbidden", "only an admin reads the access log"));
        }
        let me = store.device_name()?.unwrap_or_default();
        (store.relay_link()?, store.access_log(limit)?, store.unsent_access(limit)?, me)
    };
    let own = |l: gridwalk_core::store::access::AccessEntry| AccessRow {
        seq: l.seq,
        at: l.at,
        person: l.person,
        device_name: me.clone(),
        device: l.device,
        kind: l.kind,
        subject: l.subject,
        detail: l.detail,
    };
    let from_relay = match &link {
        Some(link) if link.role != "walker" => match client::fetch_access_log(link, limit) {
            Ok(rows) => Some((link.device_id.clone(), rows)),
            Err(e) => {
                tracing::warn!("the relay's access log is out of reach; this PC's own is shown: {e}");
                None
            }
        },
        _ => None,
    };
    let Some((device_id, rows)) = from_relay else {
        return Ok(local.into_iter().map(own).collect());
    };
    let mut out: Vec<AccessRow> = rows
        .into_iter()
        .map(|r| AccessRow {
            seq: r.line.seq,
            at: r.line.at,
            person: r.line.person,
            device: r.device_id,
            device_name: r.device_name,
            kind: r.line.kind,
            subject: r.line.subject,
            detail: r.line.detail,
        })
        .collect();
    // This PC's lines the relay does not have yet are shown too, under this PC (once: a line
    // sent a moment ago may be on the relay before it is marked sent here).
    let on_relay: std::collections::HashSet<(String, i64)> = out.iter().map(|r| (r.device.clone(), r.seq)).collect();
    out.extend(
        unsent
            .into_iter()
            .filter(|l| !on_relay.contains(&(device_id.clone(), l.seq)))
            .map(|l| AccessRow { device: device_id.clone(), ..own(l) }),
    );
    out.sort_by(|a, b| b.at.cmp(&a.at).then(b.seq.cmp(&a.seq)));
    out.truncate(limit);
    Ok(out)
}

//! The device's sync client talking to an in-process relay.

use gridwalk_core::sync::protocol::{self, PushRequest};
use gridwalk_relay::blobs::ByteRange;
use gridwalk_relay::relay::{Relay, RelayError};

/// A transport that hands messages straight to an in-process relay, through the same byte
/// encoding HTTP uses. The deterministic tests run sync over it. It lives with the tests, not in
/// the relay, because it speaks the device's `Transport` trait and the relay does not link the
/// device's core.
pub struct InMemoryTransport<'r> {
    pub relay: &'r Relay,
    pub token: String,
    /// Messages to fail before they reach the relay (a dropped request).
    pub drop_requests: Vec<bool>,
    /// Replies to lose after the relay handled the request (a dropped response).
    pub drop_replies: Vec<bool>,
    sent: usize,
}

impl<'r> InMemoryTransport<'r> {
    pub fn new(relay: &'r Relay, token: impl Into<String>) -> Self {
        InMemoryTransport { relay, token: token.into(), drop_requests: Vec::new(), drop_replies: Vec::new(), sent: 0 }
    }
}

fn to_core(e: RelayError) -> gridwalk_core::CoreError {
    gridwalk_core::CoreError::Relay { status: e.status, code: e.code.to_string(), message: e.message }
}

impl gridwalk_transport::client::Transport for InMemoryTransport<'_> {
    fn send(
        &mut self,
        message: &gridwalk_transport::client::Outgoing,
    ) -> Result<gridwalk_transport::client::Incoming, gridwalk_transport::client::SyncFailure> {
        self.deliver(message).map_err(Into::into)
    }
}

impl InMemoryTransport<'_> {
    /// One message through the relay, its refusal as the core's error.
    fn deliver(
        &mut self,
        message: &gridwalk_transport::client::Outgoing,
    ) -> gridwalk_core::Result<gridwalk_transport::client::Incoming> {
        use gridwalk_transport::client::{Incoming, Outgoing};
        let n = self.sent;
        self.sent += 1;
        if self.drop_requests.get(n).copied().unwrap_or(false) {
            return Err(gridwalk_core::CoreError::Network("request dropped".into()));
        }
        let device = self.relay.authenticate(&self.token).map_err(to_core)?;
        let reply = match message {
            Outgoing::Push(req) => {
                let wire = protocol::encode(req);
                let req: PushRequest = protocol::decode(&wire)?;
                let resp = self.relay.push(&device, &req).map_err(to_core)?;
                Incoming::Pushed(protocol::decode(&protocol::encode(&resp))?)
            }
            Outgoing::Pull { cursor, limit } => {
                let resp = self.relay.pull(&device, cursor, *limit).map_err(to_core)?;
                Incoming::Pulled(protocol::decode(&protocol::encode(&resp))?)
            }
            Outgoing::BlobStatus { hash } => {
                Incoming::BlobStatus(self.relay.blob_status(&device, hash).map_err(to_core)?)
            }
            Outgoing::BlobUpload { hash, offset, total, bytes } => {
                Incoming::BlobStatus(self.relay.put_blob(&device, hash, *offset, *total, bytes).map_err(to_core)?)
            }
            Outgoing::BlobDownload { hash, offset, max_len } => {
                let last = offset.saturating_add((*max_len).max(1) - 1);
                let slice =
                    self.relay.read_blob(&device, hash, Some(ByteRange::FromTo(*offset, last))).map_err(to_core)?;
                Incoming::BlobBytes(protocol::BlobBytes { start: slice.start, total: slice.total, bytes: slice.bytes })
            }
        };
        if self.drop_replies.get(n).copied().unwrap_or(false) {
            return Err(gridwalk_core::CoreError::Network("reply lost".into()));
        }
        Ok(reply)
    }
}

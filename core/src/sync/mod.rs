//! Sync with the service hall's relay: the protocol both sides speak, and the store as the sync
//! session's store (the session is `gridwalk-sync`, the HTTP client `gridwalk-transport`).

mod store;
// The wire types are shared with the relay through their own crate.
pub use gridwalk_protocol as protocol;

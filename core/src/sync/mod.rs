//! Sync with the service hall's relay: the protocol both sides speak, and the device's client.

pub mod client;
mod store;
// The wire types are shared with the relay through their own crate.
pub use gridwalk_protocol as protocol;

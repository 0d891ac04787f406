//! Sync with the service hall's relay: the protocol both sides speak, and the device's client.

pub mod client;
pub mod protocol;

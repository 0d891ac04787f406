//! Sync with the service hall's relay: the protocol both sides speak, and (with issue 3) the
//! device's client.

pub mod protocol;

//! The service hall's relay: enrols devices, authenticates every call, stores pushed changes
//! durably before acknowledging them, and hands each device what its grids entitle it to.

pub mod access;
pub mod backup;
pub mod blobs;
pub mod handover;
pub mod http;
pub mod relay;
pub mod signing;
pub mod staff;
pub mod store;

//! Helpers shared by the workspace's tests and benchmarks that need real servers.

pub mod pg;

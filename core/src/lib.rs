//! Gridwalk's core: the domain of grid walking (grids, households, visits, requests and their
//! closed loop) and the local store that keeps it on a device.
//!
//! Nothing here draws a window, serves HTTP or reads the clock: the moment of every action comes
//! in through an [`ActionContext`]. See `ARCHITECTURE.md` at the repository root for the map.

pub mod demo;
pub mod error;
pub mod evidence;
pub mod export;
pub mod import;
pub mod photo;
pub mod report;
pub mod search;
pub mod store;
pub mod sync;

// The documents themselves live in `gridwalk-doc`, which the relay shares; they are re-exported
// here under their old paths so the store, the app and the CLI name them as before.
pub use gridwalk_doc::{doc_view, docs, lifecycle, meeting, model, numbers, pin, privacy, roster, time, ActionContext};

pub use error::{CoreError, Result};
pub use store::Store;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};

//! The device's network: the real sync transport (`client::HttpTransport`, reqwest), enrolment
//! and the short requests to the relay (sign-in, staff changes, enrolment codes, the device's
//! grids, a wipe's confirmation). The session itself is `gridwalk-sync` (a state machine that
//! owns no I/O, over the `SyncStore` trait the core's `Store` implements), so the core does no
//! network I/O at all: the layering check keeps reqwest and tokio out of it.

pub mod client;

//! `gridwalk-relay`, the service hall's relay. Its sync protocol, enrolment and storage are the
//! subject of issue 3; until they land this binary says so plainly instead of pretending to
//! serve.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "gridwalk-relay {}: the relay server is not built yet (issue 3). \
         Use the `gridwalk` command line on a local store meanwhile.",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}

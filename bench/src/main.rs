//! `gridwalk-bench`: benchmark commands that print JSON. Each measures Gridwalk side by side, in
//! the same run, against the anchor its issue names. They are commands, not timed tests: these
//! machines are noisy, so figures are medians over many runs and read as ratios.

mod encryption;
mod load;
mod p4;
mod photo;
mod report;
mod sync;
mod tap;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "gridwalk-bench", about = "Gridwalk benchmarks (JSON on stdout)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// P4: first page of requests by grid + status on a small and a large town, against raw SQL;
    /// and one request creation against a raw INSERT of the same bytes.
    P4(p4::Args),
    /// Photo ingest (issue 4) against ImageMagick and libvips on the same file.
    Photo(photo::Args),
    /// Sync (issue 3): hall burst, a new device's pull and a no-op sync, against samod.
    Sync(sync::Args),
    /// Reports (issue 6): the dashboard and the monthly list on a small and a large town, and the
    /// grid's figures from documents beside them.
    Report(report::Args),
    /// Tap to saved (issue 16): a request with 12 MP photos saved through the app's command, the
    /// photos processed in the background, against processing them before the answer.
    Tap(tap::Args),
    /// P6 (issue 15): 500 phones' day against one relay on SQLite, one on PostgreSQL, three on
    /// one PostgreSQL, and samod.
    Load(load::Args),
    /// Encryption at rest (issue 14): P2, P4, request creation and photo ingest on an encrypted
    /// store against a plain one, side by side in one run.
    Encryption(encryption::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.command {
        Command::P4(args) => p4::run(&args)?,
        Command::Photo(args) => photo::run(&args)?,
        Command::Sync(args) => sync::run(&args)?,
        Command::Report(args) => report::run(&args)?,
        Command::Tap(args) => tap::run(&args)?,
        Command::Load(args) => load::run(&args)?,
        Command::Encryption(args) => encryption::run(&args)?,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

//! The flags.

use std::fmt;
use std::path::PathBuf;

use anyhow::Context;

/// Burst benchmark: replays an Attio import or bulk edit — N `record.updated` deliveries over
/// M people — through `attio-relay dev`, with stand-in Attio and HubSpot servers on loopback
/// that enforce the documented limits (Attio 100 reads and 25 writes per clock second, 429
/// with Retry-After; HubSpot 190 requests per rolling 10 s, 429 TEN_SECONDLY_ROLLING; search
/// 5/s), and measures how fast every record's final values reach HubSpot.
///
/// Each delivery is signed as Attio signs it (Attio-Signature over the raw body) with its own
/// Idempotency-Key, sent after its update was made in the Attio stand-in. Every record has a
/// version that changes with each update, shown in its job title, so the run knows when
/// HubSpot holds the final values.
///
/// Designs (--design), each on fresh stand-ins and a fresh dev server, one after the other:
/// "relay" is `attio-relay dev` with its own consumers; "reference" is the same dev server
/// with its consumers off and this tool's simple consumer on its queue: one Attio GET and one
/// HubSpot PATCH per event, paced at both limits.
///
/// Measured per design: drain time (first send → every record's final values in HubSpot),
/// the bound the limits and ingest allow (max of ingest time, M records read at 500 per query
/// and 100 queries/s, M records written at 100 per batch upsert within HubSpot's window),
/// their ratio, Attio and HubSpot requests per event, 429s per API, per-record freshness
/// p50/p99 (last update sent → that value visible in HubSpot) and dead letters. Exits
/// non-zero when a design does not drain, leaves a record at a stale value, dead-letters
/// anything, or calls something the stand-ins do not serve.
///
/// The default is a smoke run (200 events over 50 people). The run:
/// `--events 5000 --records 1000` at `--rate full` and at `--rate 25` (Attio's send rate).
#[derive(Debug, clap::Parser)]
#[command(name = "burst", version)]
pub struct BurstArgs {
    /// N: record.updated deliveries to send.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub events: u64,
    /// M: distinct people they update (each gets N/M updates, in shuffled order).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub records: u64,
    /// Deliveries per second ("25" is Attio's documented send rate per target), or "full" to
    /// send as fast as ingest answers over --concurrency connections.
    #[arg(long, default_value = "full", value_parser = parse_rate)]
    pub rate: Rate,
    /// Which designs to run: relay, reference or both.
    #[arg(long, value_enum, default_value = "both")]
    pub design: Designs,
    /// Deliveries in flight at once when sending.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Messages the reference consumer handles at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub reference_workers: u64,
    /// Give up on a design after this many seconds (counted as not drained).
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub max_duration: u64,
    /// Seed of the update order (the same stream for every design).
    #[arg(long, default_value_t = 13)]
    pub seed: u64,
    /// The attio-relay binary (default: the one beside this tool in target/<profile>/;
    /// build it with `cargo build -p attio-relay`).
    #[arg(long, value_name = "PATH")]
    pub relay_bin: Option<PathBuf>,
    /// Print one JSON summary on stdout instead of progress and the table.
    #[arg(long)]
    pub json: bool,
}

/// The sending rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Full,
    PerSecond(f64),
}

impl Rate {
    pub fn per_second(self) -> Option<f64> {
        match self {
            Self::Full => None,
            Self::PerSecond(rate) => Some(rate),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("full speed"),
            Self::PerSecond(rate) => write!(f, "{rate}/s"),
        }
    }
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("full") {
        return Ok(Rate::Full);
    }
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 10_000.0 => Ok(Rate::PerSecond(rate)),
        _ => Err(format!(
            "{text:?}: give deliveries per second (e.g. 25) or \"full\""
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Designs {
    Relay,
    Reference,
    Both,
}

/// One design of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    Relay,
    Reference,
}

impl fmt::Display for Design {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Relay => "relay",
            Self::Reference => "reference",
        })
    }
}

impl BurstArgs {
    pub fn designs(&self) -> Vec<Design> {
        match self.design {
            Designs::Relay => vec![Design::Relay],
            Designs::Reference => vec![Design::Reference],
            Designs::Both => vec![Design::Relay, Design::Reference],
        }
    }

    pub fn relay_bin(&self) -> anyhow::Result<PathBuf> {
        let path = match &self.relay_bin {
            Some(path) => path.clone(),
            None => std::env::current_exe()
                .context("cannot find this tool's path")?
                .with_file_name(format!("attio-relay{}", std::env::consts::EXE_SUFFIX)),
        };
        anyhow::ensure!(
            path.exists(),
            "{} does not exist: build it with `cargo build -p attio-relay` (same profile as \
             this tool) or pass --relay-bin",
            path.display()
        );
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_flags_are_consistent() {
        BurstArgs::command().debug_assert();
    }

    #[test]
    fn rates_are_a_number_or_full() {
        assert_eq!(parse_rate("full"), Ok(Rate::Full));
        assert_eq!(parse_rate(" 25 "), Ok(Rate::PerSecond(25.0)));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        let args = BurstArgs::try_parse_from(["burst", "--design", "relay"]).unwrap();
        assert_eq!(args.designs(), [Design::Relay]);
        assert_eq!((args.events, args.records), (200, 50));
    }
}

//! The flags, and the check that keeps the load on this machine.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;

/// Bounded load test on loopback: deliveries/s and p50/p90/p99 latency, with duplicates
/// mixed in, and a check that nothing was lost or queued twice.
///
/// By default it needs no AWS and no servers: it serves the ingest router `attio-relay dev`
/// serves in this process on 127.0.0.1 (a temporary SQLite data folder, consumers off) and
/// drives it over real HTTP with a keep-alive client at a fixed --concurrency. Every delivery is
/// the --sample with a fresh record id and its own Idempotency-Key, signed with the body-only
/// scheme (Attio-Signature) and a generated dev secret. A share of extra requests (--duplicates)
/// re-send an already acknowledged delivery byte for byte with the same key, as Attio's
/// retries do; they must be answered 200 "duplicate".
///
/// Measured: deliveries/s (acknowledged deliveries per second of wall time), requests/s
/// (all answered requests, duplicates included), answers by status, and latency p50, p90,
/// p99 and max — exact, from the sorted round-trip time of every answered request, measured
/// at the client (signing happens before the clock starts). The client and the server share
/// this machine's cores, so compare runs on one machine, not across machines.
///
/// Verified afterwards by reading the queues back from SQLite: lost = acknowledged (2xx)
/// deliveries with no queued message, duplicates_queued = deliveries queued more than once.
/// The command exits non-zero when either is above 0, or when any answer is neither 2xx nor
/// a documented retry-later answer (409, 503).
///
/// Bounded: at most --deliveries plus their duplicates, --concurrency requests in flight,
/// and --max-duration seconds (then it stops sending, abandons what is in flight and says
/// so). Loopback only: --url may name an already running relay (`attio-relay dev`, or a
/// `cargo lambda watch` Function URL such as http://127.0.0.1:9000/lambda-url/ingest/),
/// but any host other than 127.0.0.0/8, ::1 or localhost is refused, and no proxy is used.
/// With --url, give --data-dir (the dev server's folder) to verify against its SQLite file
/// — with its consumers off, since they delete what they handle; without --data-dir the
/// verification is skipped and the summary says so.
#[derive(Debug, clap::Parser)]
#[command(name = "load", version)]
pub struct LoadArgs {
    /// Distinct deliveries to send (each its own Idempotency-Key and record id).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub deliveries: u64,
    /// Requests in flight at once (each worker waits for its answer before sending again).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Extra requests that re-send an already acknowledged delivery with the same
    /// Idempotency-Key, as a share of --deliveries (0.2 with 5000 deliveries: 1000 extra
    /// requests), mixed in at random. 0 to 10.
    #[arg(long, default_value_t = 0.2, value_parser = parse_duplicate_share)]
    pub duplicates: f64,
    /// Hard bound on the run in seconds: no request is started after it, and requests still
    /// in flight are abandoned (counted as "cut off") when it is reached.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_duration: u64,
    /// The delivery to vary (default: a record.updated delivery built into the binary).
    #[arg(long, value_name = "FILE")]
    pub sample: Option<PathBuf>,
    /// Print one JSON summary on stdout instead of the report (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Load an already running relay instead of an in-process one, e.g. `attio-relay dev` at
    /// http://127.0.0.1:8787/ or a `cargo lambda watch` Function URL. Loopback hosts only.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Secret the relay at --url accepts (default: the dev secret saved in --data-dir).
    #[arg(long, requires = "url")]
    pub secret: Option<String>,
    /// Data folder of the `attio-relay dev` server at --url: its SQLite file is read to verify
    /// nothing was lost or queued twice. Without it the verification is skipped.
    #[arg(long, value_name = "DIR", requires = "url")]
    pub data_dir: Option<PathBuf>,
}

/// Accepts a share of duplicates between 0 and 10 (Attio retries a message about 10 times).
fn parse_duplicate_share(text: &str) -> Result<f64, String> {
    let share: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number (e.g. 0.2)"))?;
    if (0.0..=10.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!(
            "{share} is out of range: give a share from 0 to 10"
        ))
    }
}

/// Parses --url and refuses anything but a loopback host: a load test must never leave the
/// machine it runs on.
pub fn loopback_url(raw: &str) -> anyhow::Result<reqwest::Url> {
    let url = reqwest::Url::parse(raw)
        .with_context(|| format!("--url {raw:?} is not a URL (e.g. http://127.0.0.1:8787/)"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https"),
        "--url {raw:?} is not http(s): give the relay's URL, e.g. http://127.0.0.1:8787/"
    );
    let host = url.host_str().unwrap_or_default();
    let loopback = match host.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    };
    anyhow::ensure!(
        loopback,
        "refusing to load {host:?}: `load` only targets loopback addresses \
         (127.0.0.1, ::1, localhost) so a load test never leaves this machine. Run the relay \
         locally (`attio-relay dev`, or `cargo lambda watch`) and point --url at it, or leave \
         --url out to load an in-process dev server"
    );
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_flags_are_consistent() {
        LoadArgs::command().debug_assert();
    }

    #[test]
    fn out_of_range_shares_are_refused() {
        assert_eq!(parse_duplicate_share(" 0.5 "), Ok(0.5));
        assert!(parse_duplicate_share("10.5").is_err());
        assert!(parse_duplicate_share("lots").is_err());
        assert!(LoadArgs::try_parse_from(["load", "--secret", "s"]).is_err());
    }

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in [
            "http://127.0.0.1:8787/",
            "http://127.0.0.2:1/x",
            "http://[::1]:9000/lambda-url/ingest/",
            "http://localhost:8787/",
        ] {
            assert!(loopback_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1/",
            "https://example.com/",
            "http://[2001:db8::1]/",
            "ftp://127.0.0.1/",
        ] {
            assert!(loopback_url(refused).is_err(), "{refused}");
        }
    }
}

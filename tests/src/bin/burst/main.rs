//! `burst`: how fast an Attio import or bulk edit drains through the relay, against the bound
//! the documented rate limits allow, beside the one-GET-one-PATCH-per-event reference design.
//! A tool of the tests crate, not of the operator CLI:
//!
//! ```text
//! cargo build -p attio-relay -p integration-tests --bin burst
//! target/debug/burst --events 5000 --records 1000 --rate full
//! ```
//!
//! It drives the real `attio-relay dev` (a child process, as a user runs it) at stand-in
//! Attio and HubSpot servers served from this process on loopback, so whatever the relay's
//! consumers do — one GET per record today, batched queries once they land — is measured
//! unchanged. The stand-ins enforce the documented limits and count every call, because the
//! question is not "how fast is the code" but "how close to the limits' ceiling does it drain".
//!
//! The shape: [`limits`] (clock-second and rolling-window counting), [`attio`] and
//! [`hubspot`] (the stand-ins), [`plan`] (the event stream and sending it), [`reference`]
//! (the reference consumer), [`run`] (one design's run), [`report`] (bound, metrics, table).

mod args;
mod attio;
mod hubspot;
mod limits;
mod plan;
mod reference;
mod report;
mod run;

use std::sync::Arc;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args::BurstArgs::parse();
    let plan = Arc::new(plan::Plan::new(
        usize::try_from(args.events)?,
        usize::try_from(args.records)?,
        args.seed,
    ));
    if !args.json {
        eprintln!(
            "burst: {} record.updated deliveries over {} people at {}; designs: {}",
            args.events,
            args.records,
            args.rate,
            args.designs()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut results = Vec::new();
    for design in args.designs() {
        results.push(run::run_design(design, &args, Arc::clone(&plan)).await?);
    }
    let problems: Vec<String> = results
        .iter()
        .flat_map(report::DesignResult::problems)
        .collect();
    if args.json {
        let summary = serde_json::json!({
            "events": args.events, "records": args.records, "rate": args.rate.to_string(),
            "designs": results, "ok": problems.is_empty(), "problems": problems,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", report::table(&results));
        for problem in &problems {
            println!("problem: {problem}");
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{} problem(s): {}",
        problems.len(),
        problems.join("; ")
    );
    Ok(())
}

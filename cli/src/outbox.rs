//! `attio-relay outbox`: the CRM calls the local consumers wrote instead of sending.

use std::path::PathBuf;

use relay_crm::{OutboxEntry, OutboxSink};

#[derive(Debug, clap::Args)]
pub struct OutboxArgs {
    /// Folder of the local run (as given to `attio-relay dev`).
    #[arg(long, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Print each entry as one JSON line (for scripts) instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: OutboxArgs) -> anyhow::Result<()> {
    let sink = OutboxSink::new(crate::dev::outbox_file(&args.data_dir));
    let entries = sink.entries()?;
    if entries.is_empty() {
        println!(
            "{} is empty: run `attio-relay dev` with ATTIO_API_TOKEN set and send a delivery",
            sink.path().display()
        );
    }
    for entry in entries {
        if args.json {
            println!("{}", serde_json::to_string(&entry)?);
            continue;
        }
        match entry {
            OutboxEntry::Upsert { object, records } => {
                for r in records {
                    println!(
                        "upsert  {object:<9} attio_record_id={} {:?}",
                        r.attio_record_id, r.properties
                    );
                }
            }
            OutboxEntry::Create {
                object,
                id,
                properties,
                associations,
            } => {
                println!("create  {object:<9} {id} {properties:?} associations={associations:?}");
            }
            OutboxEntry::Update {
                object,
                id,
                properties,
            } => println!("update  {object:<9} {id} {properties:?}"),
            OutboxEntry::Archive { object, id } => println!("archive {object:<9} {id}"),
            OutboxEntry::Merge {
                object,
                primary,
                duplicate,
            } => {
                println!("merge   {object:<9} {duplicate} into {primary}");
            }
            OutboxEntry::Associate {
                from,
                from_id,
                to,
                to_id,
            } => println!("link    {from:<9} {from_id} -> {to} {to_id}"),
            OutboxEntry::Dissociate {
                from,
                from_id,
                to,
                to_id,
            } => println!("unlink  {from:<9} {from_id} -> {to} {to_id}"),
        }
    }
    Ok(())
}

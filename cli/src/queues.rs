//! `attio-relay queues`: what is on the local (SQLite) queues.

use std::path::PathBuf;

use anyhow::Context;
use relay_embedded::LocalDb;
use relay_queue::SqliteQueue;

#[derive(Debug, clap::Args)]
pub struct QueuesArgs {
    /// Folder of the local run (as given to `attio-relay dev`).
    #[arg(long, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Also print every message (event type, idempotency key, receive count, body).
    #[arg(long)]
    pub show: bool,
}

pub async fn run(args: QueuesArgs) -> anyhow::Result<()> {
    let path = crate::dev::database_file(&args.data_dir);
    anyhow::ensure!(
        path.exists(),
        "{} does not exist yet: run `attio-relay dev` and send a delivery first",
        path.display()
    );
    let queue = SqliteQueue::new(
        LocalDb::open(&path).with_context(|| format!("cannot open {}", path.display()))?,
        5,
    );
    let depths = queue.depths().await?;
    if depths.is_empty() {
        println!("all local queues are empty");
    }
    for (name, depth) in &depths {
        println!("{name:<16} {depth} message(s)");
        if args.show {
            for message in queue.peek(name).await? {
                println!(
                    "  - {:<26} key={} receives={}",
                    message.attributes.event_type,
                    message.attributes.idempotency_key,
                    message.receive_count
                );
                println!("    {}", message.body);
            }
        }
    }
    Ok(())
}

//! One queue-admin abstraction for the operator commands (`dlq`, `status`) and the dev
//! dashboard: depths, bounded peeks, one message, replay from a DLQ to its source queue, purge.
//!
//! ```text
//! QueueArgs (--local/--data-dir | --stage/--queue-prefix/--endpoint-url)
//!     └─ QueueAdmin::connect ── the one place the backend is chosen
//!          ├─ QueueAdmin::Sqs(SqsAdmin)      aws-sdk-sqs; replay = receive → send → journal → delete
//!          └─ QueueAdmin::Local(LocalAdmin)  the dev run's SQLite queues; replay = one transaction
//! ```
//!
//! An enum with methods rather than a trait: the operations are async, there are exactly two
//! backends, and callers hold one value whose backend the flags decided (as svix-server's
//! `queue` module does). Commands never branch on the backend themselves; what differs between
//! the backends (queue names, how a replay is made safe, what a purge can count) stays behind
//! these methods, and the outcome types carry it back for printing.

mod journal;
mod sqlite;
mod sqs;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use relay_events::EventFamily;
use serde::Serialize;

pub use sqlite::{LocalAdmin, SqliteQueue};
pub use sqs::{JournalledReplay, SqsAdmin};

/// Where the queues are: the flags `dlq` and `status` share. Global, so they may be given
/// before or after a `dlq` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// Stage whose queues (and idempotency table) to use: attio-relay-<stage>-<family>[-dlq].
    #[arg(long, global = true, default_value = "dev")]
    pub stage: String,
    /// Resource name prefix, instead of attio-relay-<stage>.
    #[arg(long = "queue-prefix", visible_alias = "prefix", global = true)]
    pub prefix: Option<String>,
    /// Endpoint for SQS and DynamoDB (an emulator); credentials and region come from the AWS
    /// environment.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Use the local run's queues (attio-relay dev, SQLite in --data-dir) instead of AWS.
    #[arg(long, global = true)]
    pub local: bool,
    /// Folder of the local run, and of the replay journal.
    #[arg(long, global = true, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
}

impl QueueArgs {
    /// The resource name prefix on AWS.
    pub fn resource_prefix(&self) -> String {
        self.prefix
            .clone()
            .unwrap_or_else(|| format!("attio-relay-{}", self.stage))
    }
}

/// The queue admin of one backend.
#[derive(Debug, Clone)]
pub enum QueueAdmin {
    Sqs(SqsAdmin),
    Local(LocalAdmin),
}

/// One family's queue and the DLQ its failures land in, named as the backend names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePair {
    pub family: EventFamily,
    pub source: String,
    pub dlq: String,
}

/// How full one queue is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Depth {
    pub queue: String,
    pub visible: u64,
    /// Received and not yet deleted (SQS only: the local queue does not report it).
    pub in_flight: u64,
    /// Age of the oldest message (exact locally; the oldest of a sample on SQS).
    pub oldest_age_secs: Option<u64>,
}

/// One message as shown to operators. SQS gives every field only if the sender set it, hence
/// the options; the JSON shape is what `dlq list --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueMessage {
    pub queue: String,
    pub message_id: String,
    pub event_type: Option<String>,
    pub idempotency_key: Option<String>,
    pub receive_count: Option<u32>,
    pub failure_reason: Option<String>,
    /// Send time, milliseconds since the epoch, as SQS reports it (a string).
    pub sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Which dead letters to replay: all of them, or those of one event type and/or these ids.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub event_type: Option<String>,
    pub ids: HashSet<String>,
}

impl Selector {
    pub fn matches(&self, message_id: Option<&str>, event_type: Option<&str>) -> bool {
        let id_ok = self.ids.is_empty() || message_id.is_some_and(|id| self.ids.contains(id));
        let type_ok = self
            .event_type
            .as_deref()
            .is_none_or(|t| event_type == Some(t));
        id_ok && type_ok
    }
}

/// What a replay should do.
#[derive(Debug, Clone)]
pub struct ReplayRequest<'a> {
    pub selector: Selector,
    /// SQS only: let SQS move every message itself (StartMessageMoveTask), ignoring the
    /// selector. Locally a replay is one transaction already.
    pub native: bool,
    /// SQS only: seconds a received message stays hidden while it is replayed.
    pub visibility_timeout: i32,
    /// SQS only: where the replay journal lives.
    pub journal_dir: &'a Path,
    /// Draw a progress bar on stderr (long SQS replays).
    pub progress: bool,
}

/// What a replay did. Untagged: each backend keeps the JSON shape it has always printed.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Replayed {
    /// SQS: sent, journalled and deleted batch by batch (or handed to an SQS move task).
    Journalled(JournalledReplay),
    /// Local: moved back in one transaction, so there is nothing to resume.
    Moved { replayed: usize },
}

impl Replayed {
    /// Messages the source queue refused; they are still in the DLQ.
    pub fn refused(&self) -> usize {
        match self {
            Self::Journalled(summary) => summary.refused,
            Self::Moved { .. } => 0,
        }
    }

    /// Messages now back on their source queue (those finished from an interrupted run too).
    pub fn count(&self) -> usize {
        match self {
            Self::Journalled(summary) => summary.replayed + summary.resumed,
            Self::Moved { replayed } => *replayed,
        }
    }
}

impl fmt::Display for Replayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Journalled(summary) => summary.fmt(f),
            Self::Moved { replayed } => write!(f, "replayed {replayed} message(s)"),
        }
    }
}

/// What a purge deleted: exact locally, SQS's approximate depth before purging on AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub count: u64,
    pub approximate: bool,
}

impl fmt::Display for Purged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let about = if self.approximate { "about " } else { "" };
        write!(f, "purged {about}{} message(s)", self.count)
    }
}

impl QueueAdmin {
    /// Chooses the backend from the flags: the only place that does.
    pub async fn connect(args: &QueueArgs) -> anyhow::Result<Self> {
        if args.local {
            return Ok(Self::Local(LocalAdmin::open(&args.data_dir)?));
        }
        Ok(Self::Sqs(
            SqsAdmin::connect(args.endpoint_url.as_deref(), args.resource_prefix()).await,
        ))
    }

    /// Every family's queue pair, or only `family`'s.
    pub fn pairs(&self, family: Option<EventFamily>) -> Vec<QueuePair> {
        // The local run has the `hubspot` queue (dev's HubSpot ingest); the SAM stack does not
        // yet, so the AWS side lists the Attio families only.
        let every: &[EventFamily] = match self {
            Self::Sqs(_) => &EventFamily::ALL,
            Self::Local(_) => &EventFamily::EVERY,
        };
        let families = family.map_or_else(|| every.to_vec(), |f| vec![f]);
        families
            .into_iter()
            .map(|family| match self {
                Self::Sqs(sqs) => sqs.pair(family),
                Self::Local(local) => local.pair(family),
            })
            .collect()
    }

    /// How the DLQs are named, for messages that mention all of them.
    pub fn dlqs_described(&self) -> String {
        match self {
            Self::Sqs(sqs) => format!("{}-*-dlq", sqs.prefix()),
            Self::Local(_) => "the local DLQs".to_owned(),
        }
    }

    /// The depth of each named queue, in the order given.
    pub async fn depths(&self, queues: &[String]) -> anyhow::Result<Vec<Depth>> {
        match self {
            Self::Sqs(sqs) => {
                let mut depths = Vec::with_capacity(queues.len());
                for name in queues {
                    depths.push(sqs.depth(name).await?);
                }
                Ok(depths)
            }
            Self::Local(local) => local.depths(queues).await,
        }
    }

    /// Up to `max` messages of `queue`, oldest first where the backend knows the order, left
    /// on the queue. On SQS each is received and made visible again, which counts as a
    /// receive: peek DLQs, not live queues.
    pub async fn peek(
        &self,
        queue: &str,
        max: usize,
        with_body: bool,
    ) -> anyhow::Result<Vec<QueueMessage>> {
        match self {
            Self::Sqs(sqs) => sqs.peek(queue, max, with_body).await,
            Self::Local(local) => local.peek(queue, max, with_body).await,
        }
    }

    /// The message `message_id` of `queue`, whole, if it is there. On SQS the search reads
    /// at most `limit` messages (each read counts as a receive and hides it for a moment);
    /// locally it reads the whole queue, which costs nothing.
    pub async fn find(
        &self,
        queue: &str,
        message_id: &str,
        limit: usize,
    ) -> anyhow::Result<Option<QueueMessage>> {
        match self {
            Self::Sqs(sqs) => sqs.find(queue, message_id, limit).await,
            Self::Local(local) => Ok(local
                .peek(queue, usize::MAX, true)
                .await?
                .into_iter()
                .find(|m| m.message_id == message_id)),
        }
    }

    /// How many messages `queue` holds (visible and in flight), and whether that count is
    /// SQS's approximation.
    pub async fn total(&self, queue: &str) -> anyhow::Result<(u64, bool)> {
        match self {
            // The counts only: a depth would also sample (receive) the messages.
            Self::Sqs(sqs) => Ok((sqs.total(queue).await?, true)),
            Self::Local(local) => {
                let depth = local.depths(&[queue.to_owned()]).await?;
                Ok((depth.first().map_or(0, |d| d.visible + d.in_flight), false))
            }
        }
    }

    /// Sends the selected dead letters of `pair.dlq` back to `pair.source` (DLQ redrive).
    pub async fn replay(
        &self,
        pair: &QueuePair,
        request: &ReplayRequest<'_>,
    ) -> anyhow::Result<Replayed> {
        match self {
            Self::Sqs(sqs) => Ok(Replayed::Journalled(sqs.replay(pair, request).await?)),
            Self::Local(local) => Ok(Replayed::Moved {
                replayed: local.replay(pair, &request.selector).await?,
            }),
        }
    }

    /// Deletes every message in `queue`.
    pub async fn purge(&self, queue: &str) -> anyhow::Result<Purged> {
        match self {
            Self::Sqs(sqs) => sqs.purge(queue).await,
            Self::Local(local) => local.purge(queue).await,
        }
    }
}

/// Whole seconds from `sent_ms` to `now_ms`, never negative.
pub(crate) fn age_secs(now_ms: i64, sent_ms: i64) -> u64 {
    u64::try_from((now_ms - sent_ms).max(0) / 1000).unwrap_or(0)
}

/// The wall clock in milliseconds since the epoch: the ages shown are relative to it.
pub(crate) use relay_events::clock::unix_now_millis as now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_without_filters_takes_everything() {
        let all = Selector::default();
        assert!(all.matches(Some("m1"), Some("note.created")));
        assert!(all.matches(None, None));
    }

    #[test]
    fn a_selector_needs_both_the_type_and_one_of_the_ids() {
        let selector = Selector {
            event_type: Some("task.updated".into()),
            ids: ["m1".to_owned()].into(),
        };
        assert!(selector.matches(Some("m1"), Some("task.updated")));
        assert!(!selector.matches(Some("m2"), Some("task.updated")));
        assert!(!selector.matches(Some("m1"), Some("task.created")));
        assert!(!selector.matches(Some("m1"), None));
        assert!(!selector.matches(None, Some("task.updated")));
    }

    #[test]
    fn outcomes_print_as_they_always_have() {
        assert_eq!(
            Replayed::Moved { replayed: 2 }.to_string(),
            "replayed 2 message(s)"
        );
        assert_eq!(
            serde_json::to_value(Replayed::Moved { replayed: 2 }).ok(),
            Some(serde_json::json!({"replayed": 2}))
        );
        let purged = Purged {
            count: 3,
            approximate: true,
        };
        assert_eq!(purged.to_string(), "purged about 3 message(s)");
        let exact = Purged {
            approximate: false,
            ..purged
        };
        assert_eq!(exact.to_string(), "purged 3 message(s)");
    }

    #[test]
    fn ages_are_whole_seconds_and_never_negative() {
        assert_eq!(age_secs(10_999, 1_000), 9);
        assert_eq!(age_secs(1_000, 5_000), 0);
    }
}

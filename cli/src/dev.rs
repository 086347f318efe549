//! `attio-relay dev`: the ingest handler behind a local HTTP server, on embedded storage.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};

use crate::dashboard::Dashboard;
use crate::sync_args::{CrmTarget, SyncArgs};
use relay_crm::CrmSink;
use relay_embedded::LocalDb;
use relay_events::EventFamily;
use relay_idempotency::SqliteIdempotencyStore;
use relay_ingest::http::Transport;
use relay_ingest::hubspot::{HubSpotIngest, StaticHubSpotSecrets};
use relay_ingest::{IngestConfig, IngestService, StaticSecrets, parse_secret_list};
use relay_mappings::{SqliteConflicts, SqliteMappings};
use relay_queue::SqliteQueue;
use relay_ratelimit::SqliteBudget;
use relay_signature::{SchemePolicy, Verifier, WebhookSecret};
use relay_sync::two_way::{HubspotHandler, TwoWaySettings};
use relay_sync::{
    ListEntriesHandler, NotesHandler, RecordsHandler, SchemaAware, SyncContext, TasksHandler,
};

/// The service the dev server runs: production logic over the embedded adapters.
pub type LocalIngest = IngestService<SqliteIdempotencyStore, SqliteQueue, StaticSecrets>;

/// The HubSpot webhook ingest the dev server runs when `HUBSPOT_APP_SECRET` is set.
pub type LocalHubSpotIngest =
    HubSpotIngest<SqliteIdempotencyStore, SqliteQueue, StaticHubSpotSecrets>;

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Address to listen on (loopback by default: this is a development server).
    #[arg(long, default_value = "127.0.0.1:8787", env = "ATTIO_RELAY_ADDR")]
    pub addr: SocketAddr,
    /// Folder for the SQLite file and the generated dev secret.
    #[arg(long, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Webhook secrets to accept, comma-separated (default: a generated dev secret, saved in
    /// the data folder and printed at start).
    #[arg(long, env = "ATTIO_WEBHOOK_SECRETS", hide_env_values = true)]
    pub secrets: Option<String>,
    /// Which signature schemes to accept: "either" or "timestamped".
    #[arg(long, default_value = "either", env = "SIGNATURE_POLICY")]
    pub policy: SchemePolicy,
    /// HubSpot app client secrets, comma-separated (rotation): when set, `POST /hubspot/webhooks`
    /// takes HubSpot webhooks (v3 signature) onto the `hubspot` queue, where they are parked.
    #[arg(long, env = "HUBSPOT_APP_SECRET", hide_env_values = true)]
    pub hubspot_app_secret: Option<String>,
    /// The webhook URL as registered in HubSpot, when it is not the URL requests arrive on
    /// (a tunnel that rewrites the Host): HubSpot signs the URL it called.
    #[arg(long, env = "HUBSPOT_TARGET_URL")]
    pub hubspot_target_url: Option<String>,
    /// Receives before a local message moves to its dead-letter queue.
    #[arg(long, default_value_t = 5)]
    pub max_receive_count: u32,
    /// Most records per records batch, each with every event pooled for it (100 fill one
    /// HubSpot batch upsert). Lambda's counterpart, the template's RecordsBatchSize, counts
    /// events: there a batch is one receive.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub records_batch_size: u16,
    /// How long a records batch keeps gathering once an event is visible, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub records_window_ms: u64,
    /// Batches each family's consumer runs at once, so Attio reads and HubSpot writes overlap.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub batches_in_flight: u16,
    /// The relay's HubSpot app id: HubSpot events whose `sourceId` names it are the relay's own
    /// writes coming back, dropped unread by the `hubspot` queue's consumer (two-way sync).
    #[arg(long, env = "HUBSPOT_APP_ID")]
    pub hubspot_app_id: Option<String>,
    /// The id of the relay's Attio API token: Attio events with it as actor are the relay's
    /// own writes coming back, dropped by the records consumer (two-way sync).
    #[arg(long, env = "ATTIO_TOKEN_ID")]
    pub attio_token_id: Option<String>,
    /// What a person deleting a synced object in HubSpot does in Attio: `ignore` (default)
    /// or `delete` (the Attio record is deleted; Attio has no archive for records).
    #[arg(long, env = "HUBSPOT_DELETIONS", default_value = "ignore", value_parser = relay_sync::two_way::HubspotDeletions::parse)]
    pub hubspot_deletions: relay_sync::two_way::HubspotDeletions,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// The dev secret file inside the data folder, shared with `send`.
pub fn secret_file(data_dir: &Path) -> PathBuf {
    data_dir.join("dev-secret")
}

/// The SQLite file inside the data folder, shared with `queues`.
pub fn database_file(data_dir: &Path) -> PathBuf {
    data_dir.join("relay.sqlite")
}

/// Reads the dev secret, creating one on first use.
fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<WebhookSecret> {
    let path = secret_file(data_dir);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Some(secret) = WebhookSecret::new(text)
    {
        return Ok(secret);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let value = format!("whsec_dev_{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&path, &value).with_context(|| format!("cannot write {}", path.display()))?;
    WebhookSecret::new(value).context("generated secret is empty")
}

/// The local outbox file inside the data folder, shared with `outbox`.
pub fn outbox_file(data_dir: &Path) -> PathBuf {
    data_dir.join("crm-outbox.jsonl")
}

/// What `dev` runs: the ingest service, and the database its queues live in.
pub struct LocalRun {
    pub ingest: Arc<LocalIngest>,
    /// The HubSpot ingest, when HubSpot app secrets are configured.
    pub hubspot: Option<Arc<LocalHubSpotIngest>>,
    pub secrets: Vec<WebhookSecret>,
    pub db: LocalDb,
    pub queue: SqliteQueue,
}

/// Builds the service the dev server runs, and the secrets it accepts.
pub fn local_service(args: &DevArgs) -> anyhow::Result<LocalRun> {
    let secrets = match &args.secrets {
        Some(list) => {
            let secrets = parse_secret_list(list);
            anyhow::ensure!(
                !secrets.is_empty(),
                "--secrets is empty: give at least one secret"
            );
            secrets
        }
        None => vec![load_or_create_secret(&args.data_dir)?],
    };
    let db = LocalDb::open(&database_file(&args.data_dir)).with_context(|| {
        format!(
            "cannot open the local database in {}",
            args.data_dir.display()
        )
    })?;
    let queue = SqliteQueue::new(db.clone(), args.max_receive_count);
    let service = IngestService::new(
        SqliteIdempotencyStore::new(db.clone()),
        queue.clone(),
        StaticSecrets::new(Verifier::new(secrets.clone(), args.policy)),
        IngestConfig::default(),
    );
    let hubspot = match &args.hubspot_app_secret {
        None => None,
        Some(list) => {
            let secrets = parse_secret_list(list);
            anyhow::ensure!(
                !secrets.is_empty(),
                "HUBSPOT_APP_SECRET is empty: give the HubSpot app's client secret"
            );
            Some(Arc::new(
                HubSpotIngest::new(
                    SqliteIdempotencyStore::new(db.clone()),
                    queue.clone(),
                    StaticHubSpotSecrets::new(secrets),
                    IngestConfig::default(),
                )
                .with_target_url(args.hubspot_target_url.clone()),
            ))
        }
    };
    Ok(LocalRun {
        ingest: Arc::new(service),
        hubspot,
        secrets,
        db,
        queue,
    })
}

/// What `start_consumers` started, for the banner.
pub struct Started {
    pub consumers: String,
    /// What happens to the `hubspot` queue's events.
    pub hubspot_queue: String,
}

/// Starts the consumers in-process when an Attio token is configured; says what it did.
///
/// Two-way sync is on when the field mapping sends a property back (`both` or
/// `hubspot_to_attio`) and HubSpot is reachable (`HUBSPOT_TOKEN`, `HUBSPOT_API_URL`): the
/// records consumer then goes through the SQLite ledger and conflicts table, and a fifth
/// poller consumes the `hubspot` queue. With the outbox there is no HubSpot to read objects
/// from, so the `hubspot` queue stays parked (said at startup) and the records consumer
/// leaves `both` properties out of what it writes: without HubSpot's side it cannot tell a
/// change from an echo (`SyncContext::needs_two_way`).
fn start_consumers(args: &DevArgs, run: &LocalRun) -> anyhow::Result<Started> {
    let Some(token) = &args.sync.attio_token else {
        return Ok(Started {
            consumers: "off (set ATTIO_API_TOKEN to sync queued events)".into(),
            hubspot_queue: "parked (no consumers: ATTIO_API_TOKEN is not set)".into(),
        });
    };
    // One budget per API in the SQLite file: every consumer here, and a `backfill` or
    // `reconcile` run on the same data folder, draw from it.
    let mut sync = args.sync.clone();
    sync.budgets = crate::sync_args::open_budgets(Arc::new(SqliteBudget::new(run.db.clone())))?;
    let (fields, attio) = (sync.fields()?, sync.attio(token, None)?);
    let flows_back = fields.flows_back();
    let mappings = SqliteMappings::new(run.db.clone());
    Ok(match sync.crm(&args.data_dir)? {
        CrmTarget::HubSpot(sink) => {
            let mut ctx = SyncContext::new(attio, sink.clone(), mappings.clone(), fields);
            let consumers = format!("on, writing to HubSpot at {}", args.sync.hubspot_api_url);
            if !flows_back {
                spawn_consumers(&run.queue, Arc::new(ctx), args);
                return Ok(Started {
                    consumers,
                    hubspot_queue: "parked (no mapped property flows back: give one direction = \"both\" or \"hubspot_to_attio\")".into(),
                });
            }
            let settings = TwoWaySettings {
                hubspot_app_id: args.hubspot_app_id.clone(),
                attio_token_id: args.attio_token_id.clone(),
                deletions: args.hubspot_deletions,
            };
            let mut unset = Vec::new();
            if settings.hubspot_app_id.is_none() {
                unset.push("HUBSPOT_APP_ID");
            }
            if settings.attio_token_id.is_none() {
                unset.push("ATTIO_TOKEN_ID");
            }
            ctx = ctx.with_two_way(
                mappings,
                SqliteConflicts::new(run.db.clone()),
                sink,
                settings,
            );
            let ctx = Arc::new(ctx);
            spawn_consumers(&run.queue, Arc::clone(&ctx), args);
            spawn_hubspot_consumer(&run.queue, ctx, args);
            let mut hubspot_queue =
                "synced back to Attio (two-way: ledger and conflicts in the SQLite file)"
                    .to_owned();
            if !unset.is_empty() {
                hubspot_queue.push_str(&format!(
                    "; {} not set: the relay's own changes are told by the ledger alone",
                    unset.join(" and ")
                ));
            }
            Started {
                consumers,
                hubspot_queue,
            }
        }
        CrmTarget::Outbox(sink) => {
            let consumers = format!(
                "on, writing CRM calls to {} (no HUBSPOT_TOKEN)",
                sink.path().display()
            );
            spawn_consumers(
                &run.queue,
                Arc::new(SyncContext::new(attio, sink, mappings, fields)),
                args,
            );
            let hubspot_queue = if flows_back {
                "parked: the mapping sends properties back, but without HUBSPOT_TOKEN (the outbox) the relay cannot read HubSpot objects, and the records consumer leaves the both-way properties out; set HUBSPOT_TOKEN and HUBSPOT_API_URL"
            } else {
                "parked (no HUBSPOT_TOKEN, and no mapped property flows back)"
            };
            Started {
                consumers,
                hubspot_queue: hubspot_queue.into(),
            }
        }
    })
}

/// The `hubspot` queue's poller: the same runner and batch shape as the small families (10 a
/// batch, as the template's `HubspotSyncFunction` takes); two batches never share a HubSpot
/// object (`consumers::subjects`).
fn spawn_hubspot_consumer<S>(
    queue: &SqliteQueue,
    ctx: Arc<SyncContext<S, SqliteMappings>>,
    args: &DevArgs,
) where
    S: CrmSink + 'static,
{
    use crate::consumers::{Polling, poll_forever};
    let polling = Polling {
        in_flight: usize::from(args.batches_in_flight),
        ..Polling::SMALL
    };
    match HubspotHandler::new(ctx) {
        Ok(handler) => {
            tokio::spawn(poll_forever(
                queue.clone(),
                EventFamily::Hubspot,
                handler,
                polling,
            ));
        }
        // Only spawned with two-way on; the queue stays parked if that ever changes.
        Err(err) => tracing::error!(error = %err, "the hubspot queue stays parked"),
    }
}

/// One poller per family, each handler inside [`SchemaAware`] as in Lambda: attribute events
/// drop the shared schema cache, and the generation lives in the SQLite file. Records take
/// full batches with a short window; every family keeps `--batches-in-flight` batches going.
fn spawn_consumers<S>(queue: &SqliteQueue, ctx: Arc<SyncContext<S, SqliteMappings>>, args: &DevArgs)
where
    S: CrmSink + 'static,
{
    use crate::consumers::{Polling, poll_forever};
    let in_flight = usize::from(args.batches_in_flight);
    let records = Polling::records(
        usize::from(args.records_batch_size),
        std::time::Duration::from_millis(args.records_window_ms),
        in_flight,
    );
    let others = Polling {
        in_flight,
        ..Polling::SMALL
    };
    tokio::spawn(poll_forever(
        queue.clone(),
        EventFamily::Records,
        SchemaAware::new(Arc::clone(&ctx), RecordsHandler::new(Arc::clone(&ctx))),
        records,
    ));
    tokio::spawn(poll_forever(
        queue.clone(),
        EventFamily::ListEntries,
        SchemaAware::new(Arc::clone(&ctx), ListEntriesHandler::new(Arc::clone(&ctx))),
        others,
    ));
    tokio::spawn(poll_forever(
        queue.clone(),
        EventFamily::Notes,
        SchemaAware::new(Arc::clone(&ctx), NotesHandler::new(Arc::clone(&ctx))),
        others,
    ));
    tokio::spawn(poll_forever(
        queue.clone(),
        EventFamily::Tasks,
        SchemaAware::new(Arc::clone(&ctx), TasksHandler::new(Arc::clone(&ctx))),
        others,
    ));
}

/// The dev server's routes: the shared ingest adapter (any other path is a delivery), plus
/// GET /healthz answering "ok", the dashboard, and `/hubspot/webhooks` when HubSpot is on.
pub fn router(
    service: Arc<LocalIngest>,
    hubspot: Option<Arc<LocalHubSpotIngest>>,
    dashboard: Dashboard,
) -> Router {
    let pages = Router::new()
        .route("/_relay", get(crate::dashboard::page))
        .route("/_relay/replay", post(crate::dashboard::replay))
        .with_state(dashboard);
    let mut app = relay_ingest::http::router(service, Transport::Socket)
        .route("/healthz", get(|| async { "ok" }))
        .merge(pages);
    if let Some(hubspot) = hubspot {
        let limit = hubspot
            .config()
            .max_body_bytes
            .saturating_mul(relay_ingest::http::SOCKET_BODY_FACTOR);
        app = app.merge(
            Router::new()
                .route(
                    relay_ingest::hubspot::WEBHOOK_PATH,
                    axum::routing::any(hubspot_webhook),
                )
                .layer(axum::extract::DefaultBodyLimit::max(limit))
                .with_state(hubspot),
        );
    }
    app
}

/// `/hubspot/webhooks`: the URL HubSpot called is rebuilt from the Host header (http, or
/// `X-Forwarded-Proto` behind a tunnel) because the v3 signature covers it.
async fn hubspot_webhook(
    axum::extract::State(service): axum::extract::State<Arc<LocalHubSpotIngest>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = relay_ingest::hubspot::request_url(&headers, "http", path);
    let request = relay_ingest::hubspot::HubSpotIngestRequest {
        method: &method,
        uri: &url,
        headers: &headers,
        body: &body,
    };
    relay_ingest::hubspot::respond(&service, request)
        .await
        .map(axum::body::Body::from)
        .into_response()
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    relay_logging::init_text();
    let run = local_service(&args)?;
    let started = start_consumers(&args, &run)?;
    let (service, secrets) = (Arc::clone(&run.ingest), run.secrets.clone());
    let hubspot = run.hubspot.clone();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (is another dev server running?)",
                args.addr
            )
        })?;
    let addr = listener.local_addr()?;

    println!("attio-relay dev server listening on http://{addr}/");
    println!("  storage : {}", database_file(&args.data_dir).display());
    match &args.secrets {
        Some(_) => println!(
            "  secrets : {} from --secrets/ATTIO_WEBHOOK_SECRETS",
            secrets.len()
        ),
        None => println!(
            "  secret  : {}   (saved in {})",
            secrets[0].expose(),
            secret_file(&args.data_dir).display()
        ),
    }
    println!("  policy  : {}", args.policy);
    println!("  consumers: {}", started.consumers);
    match &hubspot {
        Some(_) => println!(
            "  hubspot : http://{addr}{} (events {})",
            relay_ingest::hubspot::WEBHOOK_PATH,
            started.hubspot_queue
        ),
        None => println!("  hubspot : off (set HUBSPOT_APP_SECRET to take HubSpot webhooks)"),
    }
    println!("  dashboard: http://{addr}/_relay");
    println!();
    println!("Send a signed sample delivery from another terminal:");
    println!("  cargo run -p attio-relay -- send events/deliveries/record-updated.json");
    if hubspot.is_some() {
        println!("and a HubSpot request, signed with the app secret (HUBSPOT_APP_SECRET):");
        println!("  cargo run -p attio-relay -- send-hubspot events/hubspot/contact-changes.json");
    }
    println!("Then see it on the local queue:");
    println!("  cargo run -p attio-relay -- status --local --show");
    println!("and what the consumers sent to the CRM:");
    println!("  cargo run -p attio-relay -- outbox");

    let dashboard = Dashboard::new(run.db.clone(), run.queue.clone());
    axum::serve(listener, router(service, hubspot, dashboard))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("dev server failed")
}

//! Where the load goes: the ingest router served in this process over a temporary SQLite
//! database, or a relay already running on loopback (`--url`), and whether what it queued can
//! be read back.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use relay_embedded::LocalDb;
use relay_idempotency::SqliteIdempotencyStore;
use relay_ingest::http::{Transport, router};
use relay_ingest::{IngestConfig, IngestService, StaticSecrets, parse_secret_list};
use relay_queue::SqliteQueue;
use relay_signature::{SchemePolicy, Verifier, WebhookSecret};

use crate::args::{LoadArgs, loopback_url};

/// Files `attio-relay dev` keeps in its `--data-dir`: the generated dev secret and the SQLite
/// database. The test that loads a real `attio-relay dev` through `--data-dir` keeps these in
/// step with the CLI.
const DEV_SECRET_FILE: &str = "dev-secret";
const DEV_DATABASE_FILE: &str = "relay.sqlite";

/// Receives before a local message moves to its dead-letter queue, as `attio-relay dev`'s
/// default. Nothing receives during a run; it only has to be a valid queue setting.
const MAX_RECEIVE_COUNT: u32 = 5;

/// Where the load goes, and whether what was queued can be read back.
pub struct Target {
    pub url: reqwest::Url,
    pub description: String,
    pub secret: WebhookSecret,
    /// The queue to read back for verification; `Err` skips it (with the reason).
    pub queue: Result<SqliteQueue, String>,
    pub server: Option<InProcessServer>,
}

impl Target {
    /// The relay at `--url`, or one started in this process.
    pub async fn for_args(args: &LoadArgs) -> anyhow::Result<Self> {
        match &args.url {
            Some(url) => running(args, url),
            None => in_process().await,
        }
    }
}

/// The ingest router served from this process; stopped (and its data folder removed) on drop.
pub struct InProcessServer {
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _data_dir: tempfile::TempDir,
}

impl InProcessServer {
    /// Stops the server; reports it if it had already failed on its own (e.g. accept errors).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        match self.task.take() {
            Some(task) if task.is_finished() => task
                .await
                .context("the in-process dev server panicked")?
                .context("the in-process dev server failed"),
            Some(task) => {
                task.abort();
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Serves the production ingest service over the embedded SQLite adapters, through the same
/// HTTP adapter as `attio-relay dev`, on an ephemeral loopback port, a temporary data folder
/// and a generated dev secret — with no consumers, so everything ingest queued is still there
/// to count.
async fn in_process() -> anyhow::Result<Target> {
    let data_dir = tempfile::Builder::new()
        .prefix("attio-relay-load-")
        .tempdir()
        .context("cannot create a temporary data folder (is the temp dir writable? set TMPDIR)")?;
    let secret = WebhookSecret::new(format!("whsec_dev_{}", uuid::Uuid::new_v4().simple()))
        .context("generated secret is empty")?;
    let path = data_dir.path().join(DEV_DATABASE_FILE);
    let db = LocalDb::open(&path).with_context(|| {
        format!(
            "cannot open the local database in {}",
            data_dir.path().display()
        )
    })?;
    let queue = SqliteQueue::new(db.clone(), MAX_RECEIVE_COUNT);
    let service = IngestService::new(
        SqliteIdempotencyStore::new(db),
        queue.clone(),
        StaticSecrets::new(Verifier::new(
            vec![secret.clone()],
            SchemePolicy::AcceptEither,
        )),
        IngestConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .context("cannot listen on 127.0.0.1 for the in-process dev server")?;
    let addr = listener.local_addr()?;
    let app = router(Arc::new(service), Transport::Socket);
    // Stopped by dropping (aborting) the task: verification reads SQLite before that, and
    // requests abandoned at --max-duration need not finish.
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = reqwest::Url::parse(&format!("http://{addr}/"))?;
    Ok(Target {
        description: format!("the in-process dev server at {url} (temporary SQLite)"),
        url,
        secret,
        queue: Ok(queue),
        server: Some(InProcessServer {
            task: Some(task),
            _data_dir: data_dir,
        }),
    })
}

/// A relay that is already running at `--url`, verified through `--data-dir` when given.
fn running(args: &LoadArgs, raw_url: &str) -> anyhow::Result<Target> {
    let url = loopback_url(raw_url)?;
    let secret = match (&args.secret, &args.data_dir) {
        (Some(list), _) => parse_secret_list(list)
            .into_iter()
            .next()
            .context("--secret is empty: give the secret the relay at --url accepts")?,
        (None, Some(dir)) => saved_secret(dir)?,
        (None, None) => anyhow::bail!(
            "--url needs --secret (the webhook secret the relay accepts) or --data-dir (the \
             folder of the `attio-relay dev` server, where its dev secret is saved)"
        ),
    };
    let queue = match &args.data_dir {
        Some(dir) => Ok(saved_queue(dir)?),
        None => Err(
            "no --data-dir: the relay at --url keeps its queues elsewhere, so what \
                     was queued was not read back"
                .to_owned(),
        ),
    };
    Ok(Target {
        description: format!("{url}"),
        url,
        secret,
        queue,
        server: None,
    })
}

/// The dev secret `attio-relay dev` saved in its data folder.
fn saved_secret(dir: &Path) -> anyhow::Result<WebhookSecret> {
    let path = dir.join(DEV_SECRET_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no --secret given and {} is missing: pass --secret, or the --data-dir of the `attio-relay dev` server at --url",
            path.display()
        )
    })?;
    parse_secret_list(&text)
        .into_iter()
        .next()
        .with_context(|| format!("{} is empty: pass --secret", path.display()))
}

/// The queues of the `attio-relay dev` server whose data folder is `dir`.
fn saved_queue(dir: &Path) -> anyhow::Result<SqliteQueue> {
    let path = dir.join(DEV_DATABASE_FILE);
    anyhow::ensure!(
        path.exists(),
        "{} does not exist: --data-dir must be the folder the `attio-relay dev` server at --url uses",
        path.display()
    );
    let db = LocalDb::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(SqliteQueue::new(db, MAX_RECEIVE_COUNT))
}

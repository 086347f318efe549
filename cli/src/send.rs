//! `attio-relay send`: sign a delivery file the way Attio does and POST it.

use std::path::PathBuf;

use anyhow::Context;
use relay_ingest::parse_secret_list;
use relay_signature::{
    LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body, sign_timestamped,
};

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The delivery to send, byte for byte (e.g. events/deliveries/record-updated.json).
    pub file: PathBuf,
    /// Where to POST it.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8787/",
        env = "ATTIO_RELAY_URL"
    )]
    pub url: String,
    /// Secret to sign with (default: the first of ATTIO_WEBHOOK_SECRETS, else the dev server's
    /// generated secret in the data folder).
    #[arg(long, env = "ATTIO_WEBHOOK_SECRETS", hide_env_values = true)]
    pub secret: Option<String>,
    /// Folder where `attio-relay dev` saved its secret.
    #[arg(long, default_value_os_t = crate::default_data_dir(), env = "ATTIO_RELAY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Use the timestamped scheme (X-Attio-Timestamp, signature over "{ts}.{body}").
    #[arg(long)]
    pub timestamped: bool,
    /// The Idempotency-Key header, which Attio repeats on every retry of one message. Default: a
    /// new key for this run, so `--times` sends one message and its retries.
    #[arg(long, conflicts_with = "no_idempotency_key")]
    pub idempotency_key: Option<String>,
    /// Send no Idempotency-Key: every copy is then queued (ingest dedupes on the header only).
    #[arg(long)]
    pub no_idempotency_key: bool,
    /// Send the same signed request this many times (to watch deduplication).
    #[arg(long, default_value_t = 1)]
    pub times: u32,
}

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let secret = match &args.secret {
        Some(list) => parse_secret_list(list).into_iter().next(),
        None => {
            let path = crate::dev::secret_file(&args.data_dir);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no --secret given and {} is missing: start `attio-relay dev` first or pass --secret",
                    path.display()
                )
            })?;
            parse_secret_list(&text).into_iter().next()
        }
    }
    .context("the secret is empty")?;

    let client = reqwest::Client::new();
    let mut refused = 0;
    let idempotency_key = match (&args.idempotency_key, args.no_idempotency_key) {
        (_, true) => None,
        (Some(key), false) => Some(key.clone()),
        (None, false) => Some(format!(
            "send-{}-{}",
            relay_events::clock::unix_now_millis(),
            std::process::id()
        )),
    };
    for attempt in 1..=args.times.max(1) {
        let mut request = client
            .post(&args.url)
            .header("content-type", "application/json");
        let signature = if args.timestamped {
            let ts = relay_events::clock::unix_now();
            request = request.header(TIMESTAMP_HEADER, ts.to_string());
            sign_timestamped(&secret, ts, &body)
        } else {
            sign_body(&secret, &body)
        };
        request = request
            .header(SIGNATURE_HEADER, &signature)
            .header(LEGACY_SIGNATURE_HEADER, &signature);
        if let Some(key) = &idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.body(body.clone()).send().await.with_context(|| {
            format!("cannot reach {} (is `attio-relay dev` running?)", args.url)
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        println!("[{attempt}] {status} {text}");
        if !status.is_success() {
            refused += 1;
        }
    }
    anyhow::ensure!(
        refused == 0,
        "{refused} of {} request(s) were not accepted (see the answers above)",
        args.times.max(1)
    );
    Ok(())
}

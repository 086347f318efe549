//! `attio-relay send-hubspot`: sign a HubSpot webhook request file the way HubSpot does (v3) and
//! POST it, to try `POST /hubspot/webhooks` without a HubSpot app or a tunnel.
//!
//! Its own command rather than a flag on `send`: everything but the file differs — the secret
//! (the app's client secret, `HUBSPOT_APP_SECRET`, not the Attio webhook secret), the URL (the
//! signature covers it), the headers and what repeating a request means (HubSpot has no
//! request id: each repeat is signed afresh, as HubSpot's retries are, and dedupe is per event).
//!
//! v3, as HubSpot documents it
//! (<https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests#validate-the-v3-request-signature>):
//! `X-HubSpot-Signature-v3` = base64 HMAC-SHA256, keyed with the client secret, of method +
//! URL + raw body + `X-HubSpot-Request-Timestamp` (unix milliseconds).

use std::path::PathBuf;

use anyhow::Context;
use relay_ingest::parse_secret_list;
use relay_signature::hubspot::{SIGNATURE_V3_HEADER, TIMESTAMP_HEADER, sign_v3};

#[derive(Debug, clap::Args)]
pub struct SendHubSpotArgs {
    /// The request body to send, byte for byte: a JSON array of HubSpot events (e.g.
    /// events/hubspot/contact-changes.json).
    pub file: PathBuf,
    /// Where to POST it.
    #[arg(long, default_value = "http://127.0.0.1:8787/hubspot/webhooks")]
    pub url: String,
    /// The URL to sign when the relay checks another one than --url (the URL registered in
    /// HubSpot; `dev --hubspot-target-url` reads the same variable). Default: --url.
    #[arg(long, env = "HUBSPOT_TARGET_URL")]
    pub target_url: Option<String>,
    /// The app's client secret to sign with (of a comma-separated list, the first: the one
    /// HubSpot signs with after a rotation).
    #[arg(long, env = "HUBSPOT_APP_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Send the request this many times, each signed afresh as HubSpot's retries are (the
    /// relay queues each event once).
    #[arg(long, default_value_t = 1)]
    pub times: u32,
    /// Date the timestamp this many seconds back (over 300: refused as stale, 401).
    #[arg(long, default_value_t = 0)]
    pub age_secs: u32,
}

/// The URL as the relay rebuilds it from the request: parsed and serialised the way the client
/// sends it (a default port dropped, an empty path made `/`), so the signature covers what the
/// relay sees in the Host header and the request line.
fn signed_url(url: &str) -> anyhow::Result<String> {
    Ok(reqwest::Url::parse(url)
        .with_context(|| format!("{url} is not a URL"))?
        .to_string())
}

pub async fn run(args: SendHubSpotArgs) -> anyhow::Result<()> {
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let secret = parse_secret_list(&args.secret)
        .into_iter()
        .next()
        .context("the HubSpot app secret is empty")?;
    let url = signed_url(&args.url)?;
    let signed = match &args.target_url {
        Some(target) if !target.trim().is_empty() => signed_url(target.trim())?,
        _ => url.clone(),
    };

    let client = reqwest::Client::new();
    let mut refused = 0;
    for attempt in 1..=args.times.max(1) {
        let timestamp = relay_events::clock::unix_now_millis() - i64::from(args.age_secs) * 1000;
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .header(
                SIGNATURE_V3_HEADER,
                sign_v3(&secret, "POST", &signed, &body, timestamp),
            )
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .body(body.clone())
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach {url} (is `attio-relay dev` running with HUBSPOT_APP_SECRET?)"
                )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_url_is_the_one_the_relay_rebuilds_from_the_request() {
        // reqwest sends no default port in Host and `/` for an empty path; the relay rebuilds
        // the URL from those, so the signature must cover the same text.
        assert_eq!(
            signed_url("http://127.0.0.1:80/hubspot/webhooks").unwrap(),
            "http://127.0.0.1/hubspot/webhooks"
        );
        assert_eq!(
            signed_url("http://localhost:8787").unwrap(),
            "http://localhost:8787/"
        );
        assert_eq!(
            signed_url("https://relay.example.com/hubspot/webhooks?stage=dev").unwrap(),
            "https://relay.example.com/hubspot/webhooks?stage=dev"
        );
        assert!(signed_url("not a url").is_err());
    }
}

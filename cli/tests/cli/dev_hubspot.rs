//! `attio-relay dev` with `HUBSPOT_APP_SECRET`: a HubSpot webhook signed as HubSpot signs it
//! (v3, over the URL it called) is queued once on the `hubspot` queue and parked there; a
//! forged or stale one gets 401.

use relay_signature::WebhookSecret;
use relay_signature::hubspot::sign_v3;

use crate::{relay, repo_file};

pub(crate) const APP_SECRET: &str = "hs-dev-test-app-secret";

/// POSTs `body` to `url` with v3 headers signed with `secret` at `ts_ms`; status and body.
pub(crate) async fn post(url: &str, secret: &str, ts_ms: i64, body: &[u8]) -> (u16, String) {
    let secret = WebhookSecret::new(secret).expect("secret");
    let signature = sign_v3(&secret, "POST", url, body, ts_ms);
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", ts_ms.to_string())
        .body(body.to_vec())
        .send()
        .await
        .expect("dev server answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

pub(crate) fn now_ms() -> i64 {
    relay_events::clock::unix_now_millis()
}

#[tokio::test]
async fn a_signed_hubspot_request_is_queued_once_and_a_forged_one_gets_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8 path");
    let server = relay().start_dev(
        dir.path(),
        &["--hubspot-app-secret", &format!("old-secret,{APP_SECRET}")],
    );
    let url = format!("{}hubspot/webhooks", server.url);
    let body = std::fs::read(repo_file("events/hubspot/contact-changes.json")).expect("sample");

    let (status, answer) = post(&url, APP_SECRET, now_ms(), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(r#""status":"queued""#) && answer.contains(r#""events":3"#),
        "{answer}"
    );
    // HubSpot's retry of the same request, freshly signed: nothing queued again.
    let (status, answer) = post(&url, APP_SECRET, now_ms(), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""status":"duplicate""#), "{answer}");

    for (secret, ts, what) in [
        ("not-the-app-secret", now_ms(), "forged"),
        (APP_SECRET, now_ms() - 6 * 60 * 1000, "stale"),
    ] {
        let (status, answer) = post(&url, secret, ts, &body).await;
        assert_eq!(status, 401, "{what}: {answer}");
    }

    let (ok, out) = {
        let out = relay().run(&["status", "--local", "--show", "--json", "--data-dir", data]);
        (out.ok, out.text())
    };
    assert!(ok, "{out}");
    let status: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let parked = status["messages"]["hubspot"]
        .as_array()
        .expect("hubspot queue shown");
    assert_eq!(parked.len(), 3, "{status}");
    assert!(out.contains("contact.propertyChange"), "{out}");
}

#[test]
fn without_the_secret_the_route_is_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = relay().start_dev(dir.path(), &[]);
    let url = format!("{}hubspot/webhooks", server.url);
    let out = relay().run(&[
        "status",
        "--local",
        "--data-dir",
        dir.path().to_str().expect("utf8"),
    ]);
    assert!(out.ok, "{}", out.text());
    // The Attio fallback answers it: an unsigned POST is a 401 from the Attio verifier, not a
    // HubSpot answer (no HubSpot code path runs without an app secret).
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let text = rt.block_on(async {
        reqwest::Client::new()
            .post(&url)
            .body("[]")
            .send()
            .await
            .expect("answer")
            .text()
            .await
            .expect("text")
    });
    assert!(text.contains("Attio-Signature"), "{text}");
}

/// `send-hubspot` signs a sample as HubSpot does: queued once however often it is sent, and
/// refused (non-zero exit, the 401 shown) when signed with another secret or a stale timestamp.
#[test]
fn send_hubspot_signs_the_sample_as_hubspot_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8 path");
    let server = relay().start_dev(dir.path(), &["--hubspot-app-secret", APP_SECRET]);
    let url = format!("{}hubspot/webhooks", server.url);
    let sample = repo_file("events/hubspot/contact-changes.json");
    // Without the variables a user may have set: the secret comes from --secret only.
    let cli = relay()
        .without("HUBSPOT_APP_SECRET")
        .without("HUBSPOT_TARGET_URL");
    let send = |extra: &[&str]| {
        let mut args = vec!["send-hubspot", sample.as_str(), "--url", url.as_str()];
        args.extend_from_slice(extra);
        cli.run(&args)
    };

    // The current secret first, as after a rotation; each repeat is signed afresh.
    let secrets = format!("{APP_SECRET},an-older-secret");
    let out = send(&["--secret", &secrets, "--times", "2"]);
    let text = out.text();
    assert!(out.ok, "{text}");
    assert!(
        text.contains("[1] 200 OK") && text.contains(r#""status":"queued","events":3"#),
        "{text}"
    );
    assert!(
        text.contains("[2] 200 OK") && text.contains(r#""status":"duplicate""#),
        "{text}"
    );

    for (extra, what) in [
        (vec!["--secret", "not-the-app-secret"], "forged"),
        (vec!["--secret", APP_SECRET, "--age-secs", "400"], "stale"),
    ] {
        let out = send(&extra);
        let text = out.text();
        assert!(!out.ok, "{what}: {text}");
        assert!(text.contains("[1] 401"), "{what}: {text}");
    }

    let out = relay().run(&["status", "--local", "--show", "--json", "--data-dir", data]);
    assert!(out.ok, "{}", out.text());
    let status: serde_json::Value = serde_json::from_str(out.text().trim()).expect("json");
    assert_eq!(
        status["messages"]["hubspot"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
}

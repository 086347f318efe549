//! The HubSpot v3 verifier against vectors computed by `openssl dgst -sha256 -hmac ... -binary |
//! openssl base64` (events/signatures/generate-hubspot.sh), not by this crate: a bug shared by
//! signer and verifier (or by the URI decoder and the signer) cannot hide here.

use std::path::PathBuf;

use relay_signature::WebhookSecret;
use relay_signature::hubspot::{HubSpotRequest, HubSpotVerifier, HubSpotVerifyError, sign_v3};

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    secret: String,
    method: String,
    uri: String,
    body_file: String,
    timestamp_ms: i64,
    signature: String,
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

#[test]
fn every_openssl_vector_verifies_and_matches_our_signer() {
    let text = std::fs::read_to_string(events_dir().join("signatures/hubspot-vectors.json"))
        .expect("events/signatures/hubspot-vectors.json");
    let all: Vec<Vector> = serde_json::from_str(&text).expect("vectors parse");
    assert!(all.len() >= 4, "expected the checked-in vectors");
    assert!(
        all.iter().any(|v| v.uri.contains('%')),
        "an encoded-URI vector"
    );
    for v in all {
        let body = std::fs::read(events_dir().join(&v.body_file)).expect("body file");
        let secret = WebhookSecret::new(v.secret.as_str()).expect("secret");
        let ts = v.timestamp_ms.to_string();
        let request = HubSpotRequest {
            method: &v.method,
            uri: &v.uri,
            body: &body,
            signature: Some(&v.signature),
            timestamp: Some(&ts),
        };
        // Rotation: the vector's secret among others.
        let verifier = HubSpotVerifier::new(vec![
            WebhookSecret::new("some-other-app-secret").expect("secret"),
            secret.clone(),
        ]);
        let now = v.timestamp_ms + 1_000;
        assert_eq!(
            verifier.verify(&request, now),
            Ok(v.timestamp_ms),
            "{}",
            v.name
        );
        assert_eq!(
            sign_v3(&secret, &v.method, &v.uri, &body, v.timestamp_ms),
            v.signature,
            "{}: our signer disagrees with openssl",
            v.name
        );

        // Another secret, a changed body, or the same request past HubSpot's 5 minutes: refused.
        let other = HubSpotVerifier::new(vec![WebhookSecret::new("someone-else").expect("secret")]);
        assert_eq!(
            other.verify(&request, now),
            Err(HubSpotVerifyError::Mismatch),
            "{}",
            v.name
        );
        let mut tampered = body.clone();
        tampered.push(b' ');
        let changed = HubSpotRequest {
            body: &tampered,
            ..request
        };
        assert_eq!(
            verifier.verify(&changed, now),
            Err(HubSpotVerifyError::Mismatch),
            "{}",
            v.name
        );
        assert!(
            matches!(
                verifier.verify(&request, v.timestamp_ms + 300_001),
                Err(HubSpotVerifyError::StaleTimestamp { .. })
            ),
            "{}",
            v.name
        );
    }
}

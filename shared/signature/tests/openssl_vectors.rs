//! The verifier against vectors computed by `openssl dgst -sha256 -hmac` (events/signatures/),
//! not by this crate: a bug shared by signer and verifier cannot hide here.

use std::path::PathBuf;

use relay_signature::{
    SchemePolicy, SignedRequest, Verified, Verifier, VerifyError, WebhookSecret, sign_body,
    sign_timestamped,
};

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    secret: String,
    body_file: String,
    timestamp: Option<i64>,
    signature: String,
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(events_dir().join("signatures/vectors.json"))
        .expect("events/signatures/vectors.json");
    serde_json::from_str(&text).expect("vectors parse")
}

#[test]
fn every_openssl_vector_verifies_and_matches_our_signer() {
    let all = vectors();
    assert!(all.len() >= 6, "expected the checked-in vectors");
    assert!(all.iter().any(|v| v.timestamp.is_some()));
    for v in all {
        let body = std::fs::read(events_dir().join(&v.body_file)).expect("body file");
        let secret = WebhookSecret::new(v.secret.as_str()).expect("secret");
        let ts_text = v.timestamp.map(|t| t.to_string());
        let request = SignedRequest {
            signature: Some(&v.signature),
            timestamp: ts_text.as_deref(),
            body: &body,
        };
        // Verify "now" = the vector's own timestamp, so fixed vectors stay fresh.
        let now = v.timestamp.unwrap_or(0);
        let verifier = Verifier::new(vec![secret.clone()], SchemePolicy::AcceptEither);
        let expected = match v.timestamp {
            Some(timestamp) => Verified::Timestamped { timestamp },
            None => Verified::BodyOnly,
        };
        assert_eq!(verifier.verify(&request, now), Ok(expected), "{}", v.name);

        let ours = match v.timestamp {
            Some(ts) => sign_timestamped(&secret, ts, &body),
            None => sign_body(&secret, &body),
        };
        assert_eq!(
            ours, v.signature,
            "{}: our signer disagrees with openssl",
            v.name
        );

        // The same signature under another secret, or over a changed body, must fail.
        let other = Verifier::new(
            vec![WebhookSecret::new("whsec_someone_else").expect("secret")],
            SchemePolicy::AcceptEither,
        );
        assert_eq!(
            other.verify(&request, now),
            Err(VerifyError::Mismatch),
            "{}",
            v.name
        );
        let mut tampered = body.clone();
        tampered.push(b'\n');
        let changed = SignedRequest {
            body: &tampered,
            ..request
        };
        assert_eq!(
            verifier.verify(&changed, now),
            Err(VerifyError::Mismatch),
            "{}",
            v.name
        );
    }
}

//! Proof that a webhook request came from HubSpot: the v3 request signature.
//!
//! HubSpot's rule (<https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests#validate-the-v3-request-signature>,
//! same text for new-platform apps at
//! <https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation>):
//!
//! * `X-HubSpot-Signature-v3` is the **base64** HMAC-SHA256, keyed with the app's client secret,
//!   of the UTF-8 string `method + URI + body + X-HubSpot-Request-Timestamp` (no separators);
//! * the timestamp is Unix **milliseconds**; a request older than 5 minutes is refused (replay);
//! * the URI is the full URL HubSpot called — scheme, host, path and query in their original
//!   order — with the URL-encoded characters of the docs' table decoded first (`%3A` → `:`,
//!   `%2F` → `/`, `%3F` → `?`, `%40` → `@`, `%21` → `!`, `%24` → `$`, `%27` → `'`, `%28` → `(`,
//!   `%29` → `)`, `%2A` → `*`, `%2C` → `,`, `%3B` → `;`), and nothing else decoded.
//!
//! HubSpot's own SDK does the same (`hubspot/utils/signature.py` in hubspot-api-python:
//! timestamp in milliseconds, 300 s window). A timestamp more than [`DEFAULT_FUTURE_SKEW_MS`]
//! ahead of our clock is refused too (the docs say nothing; a far-future stamp would otherwise
//! make a captured request replayable for as long).
//!
//! Several secrets may be valid at once (rotation); each is tried, in constant time, even after
//! a match. The body and URI are fed to the MAC as received, never re-serialised.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use http::HeaderMap;

use crate::{HmacSha256, WebhookSecret};

/// The v3 signature header (header names are case-insensitive; `http` stores them lower-case).
pub const SIGNATURE_V3_HEADER: &str = "x-hubspot-signature-v3";
/// Unix milliseconds covered by the v3 signature.
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
/// HubSpot's documented window: older requests are refused.
pub const DEFAULT_TOLERANCE_MS: i64 = 5 * 60 * 1000;
/// How far ahead of our clock a timestamp may be.
pub const DEFAULT_FUTURE_SKEW_MS: i64 = 60 * 1000;

/// Length of a base64-encoded SHA-256 MAC (32 bytes → 44 characters with padding).
const BASE64_MAC_LEN: usize = 44;

/// The URL-encoded characters HubSpot's docs say to decode in the URI before signing, and
/// nothing else: decoding `%25` or `%20` would sign a different string than HubSpot did.
const DECODED: [(&str, char); 12] = [
    ("3A", ':'),
    ("2F", '/'),
    ("3F", '?'),
    ("40", '@'),
    ("21", '!'),
    ("24", '$'),
    ("27", '\''),
    ("28", '('),
    ("29", ')'),
    ("2A", '*'),
    ("2C", ','),
    ("3B", ';'),
];

/// Why a HubSpot request was refused. Messages never include secrets or signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubSpotVerifyError {
    #[error("missing X-HubSpot-Signature-v3 header")]
    MissingSignature,
    #[error("X-HubSpot-Signature-v3 is not a base64 SHA-256 MAC")]
    MalformedSignature,
    #[error("missing X-HubSpot-Request-Timestamp header")]
    MissingTimestamp,
    #[error("X-HubSpot-Request-Timestamp is not unix milliseconds")]
    MalformedTimestamp,
    #[error("timestamp is {age_ms} ms old, more than the {tolerance_ms} ms HubSpot allows")]
    StaleTimestamp { age_ms: i64, tolerance_ms: i64 },
    #[error("timestamp is {ahead_ms} ms in the future, more than the {allowed_ms} ms allowed skew")]
    FutureTimestamp { ahead_ms: i64, allowed_ms: i64 },
    #[error("signature does not match any configured HubSpot app secret")]
    Mismatch,
}

impl HubSpotVerifyError {
    /// A stable, machine-readable code for responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::MalformedSignature => "malformed_signature",
            Self::MissingTimestamp => "missing_timestamp",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::FutureTimestamp { .. } => "future_timestamp",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

/// The parts of a HubSpot request its signature covers, borrowed as received.
#[derive(Debug, Clone, Copy)]
pub struct HubSpotRequest<'a> {
    /// `POST` for webhooks; upper-case as sent.
    pub method: &'a str,
    /// The full URL HubSpot called (`https://host/path?query`), not yet decoded.
    pub uri: &'a str,
    pub body: &'a [u8],
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
}

impl<'a> HubSpotRequest<'a> {
    /// Reads the signature and timestamp headers; a header that is not visible ASCII counts as
    /// malformed.
    pub fn from_headers(
        method: &'a str,
        uri: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Result<Self, HubSpotVerifyError> {
        let read = |name: &str, err: HubSpotVerifyError| match headers.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(|v| Some(v.trim())).map_err(|_| err),
        };
        Ok(Self {
            method,
            uri,
            body,
            signature: read(SIGNATURE_V3_HEADER, HubSpotVerifyError::MalformedSignature)?,
            timestamp: read(TIMESTAMP_HEADER, HubSpotVerifyError::MalformedTimestamp)?,
        })
    }
}

/// Verifies HubSpot v3 signatures against a set of app secrets.
#[derive(Debug, Clone)]
pub struct HubSpotVerifier {
    secrets: Vec<WebhookSecret>,
    tolerance_ms: i64,
    future_skew_ms: i64,
}

impl HubSpotVerifier {
    /// A verifier with HubSpot's 5-minute window and 60 s of future skew.
    pub fn new(secrets: Vec<WebhookSecret>) -> Self {
        Self {
            secrets,
            tolerance_ms: DEFAULT_TOLERANCE_MS,
            future_skew_ms: DEFAULT_FUTURE_SKEW_MS,
        }
    }

    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// Checks `request` at wall-clock `now_ms` (Unix milliseconds); returns the signed
    /// timestamp. Freshness is checked before the MAC so a stale replay is named as such.
    pub fn verify(
        &self,
        request: &HubSpotRequest<'_>,
        now_ms: i64,
    ) -> Result<i64, HubSpotVerifyError> {
        let signature = request
            .signature
            .ok_or(HubSpotVerifyError::MissingSignature)?;
        let expected = decode_signature(signature)?;
        let text = request
            .timestamp
            .ok_or(HubSpotVerifyError::MissingTimestamp)?;
        let timestamp = parse_millis(text)?;
        let age = now_ms.saturating_sub(timestamp);
        if age > self.tolerance_ms {
            return Err(HubSpotVerifyError::StaleTimestamp {
                age_ms: age,
                tolerance_ms: self.tolerance_ms,
            });
        }
        if -age > self.future_skew_ms {
            return Err(HubSpotVerifyError::FutureTimestamp {
                ahead_ms: -age,
                allowed_ms: self.future_skew_ms,
            });
        }
        let uri = decode_uri(request.uri);
        // Every secret is tried even after a match so timing does not reveal which matched.
        let mut matched = false;
        for secret in &self.secrets {
            let mut mac = secret.mac();
            feed(&mut mac, request.method, &uri, request.body, text);
            matched |= mac.verify_slice(&expected).is_ok();
        }
        if matched {
            Ok(timestamp)
        } else {
            Err(HubSpotVerifyError::Mismatch)
        }
    }
}

fn feed(mac: &mut HmacSha256, method: &str, uri: &str, body: &[u8], timestamp: &str) {
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
}

/// The URI as HubSpot signs it: only the docs' table of percent-encodings decoded (either hex
/// case), everything else kept byte for byte.
pub fn decode_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let candidate = rest.get(at + 1..at + 3);
        match candidate.and_then(|hex| {
            DECODED
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(hex))
        }) {
            Some((_, ch)) => {
                out.push(*ch);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_signature(signature: &str) -> Result<Vec<u8>, HubSpotVerifyError> {
    if signature.len() != BASE64_MAC_LEN {
        return Err(HubSpotVerifyError::MalformedSignature);
    }
    STANDARD
        .decode(signature)
        .map_err(|_| HubSpotVerifyError::MalformedSignature)
}

fn parse_millis(text: &str) -> Result<i64, HubSpotVerifyError> {
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HubSpotVerifyError::MalformedTimestamp);
    }
    text.parse()
        .map_err(|_| HubSpotVerifyError::MalformedTimestamp)
}

/// The v3 signature HubSpot would send: used by tests and the CLI to sign sample requests.
pub fn sign_v3(
    secret: &WebhookSecret,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: i64,
) -> String {
    let mut mac = secret.mac();
    feed(
        &mut mac,
        method,
        &decode_uri(uri),
        body,
        &timestamp_ms.to_string(),
    );
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const NOW: i64 = 1_763_000_000_000;
    const URI: &str = "https://relay.example.com/hubspot/webhooks?stage=dev";

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::new(s).unwrap()
    }

    fn verifier() -> HubSpotVerifier {
        HubSpotVerifier::new(vec![secret("old-app-secret"), secret("new-app-secret")])
    }

    fn request<'a>(sig: &'a str, ts: &'a str, uri: &'a str, body: &'a [u8]) -> HubSpotRequest<'a> {
        HubSpotRequest {
            method: "POST",
            uri,
            body,
            signature: Some(sig),
            timestamp: Some(ts),
        }
    }

    #[test]
    fn a_signature_from_any_configured_secret_verifies_inside_the_window() {
        let body = br#"[{"eventId":1}]"#;
        for key in ["old-app-secret", "new-app-secret"] {
            let ts = NOW - 299_999;
            let sig = sign_v3(&secret(key), "POST", URI, body, ts);
            let text = ts.to_string();
            assert_eq!(
                verifier().verify(&request(&sig, &text, URI, body), NOW),
                Ok(ts)
            );
        }
    }

    #[test]
    fn method_uri_body_and_timestamp_are_all_covered() {
        let body = br#"[{"eventId":1}]"#;
        let sig = sign_v3(&secret("new-app-secret"), "POST", URI, body, NOW);
        let ts = NOW.to_string();
        let v = verifier();
        let other_ts = (NOW - 1).to_string();
        for (method, uri, body, ts) in [
            ("PUT", URI, &body[..], ts.as_str()),
            (
                "POST",
                "https://relay.example.com/hubspot/webhooks",
                &body[..],
                &ts,
            ),
            ("POST", URI, br#"[{"eventId":2}]"#, &ts),
            ("POST", URI, &body[..], &other_ts),
        ] {
            let req = HubSpotRequest {
                method,
                ..request(&sig, ts, uri, body)
            };
            assert_eq!(v.verify(&req, NOW), Err(HubSpotVerifyError::Mismatch));
        }
        let unknown = sign_v3(&secret("someone-else"), "POST", URI, body, NOW);
        assert_eq!(
            v.verify(&request(&unknown, &ts, URI, body), NOW),
            Err(HubSpotVerifyError::Mismatch)
        );
    }

    #[test]
    fn stale_and_far_future_timestamps_are_refused_even_with_a_valid_mac() {
        let body = b"[]";
        let stale = NOW - 300_001;
        let sig = sign_v3(&secret("new-app-secret"), "POST", URI, body, stale);
        let text = stale.to_string();
        assert_eq!(
            verifier().verify(&request(&sig, &text, URI, body), NOW),
            Err(HubSpotVerifyError::StaleTimestamp {
                age_ms: 300_001,
                tolerance_ms: 300_000
            })
        );
        let future = NOW + 60_001;
        let sig = sign_v3(&secret("new-app-secret"), "POST", URI, body, future);
        let text = future.to_string();
        assert_eq!(
            verifier().verify(&request(&sig, &text, URI, body), NOW),
            Err(HubSpotVerifyError::FutureTimestamp {
                ahead_ms: 60_001,
                allowed_ms: 60_000
            })
        );
    }

    #[test]
    fn only_the_documented_encodings_are_decoded() {
        assert_eq!(
            decode_uri("https://h/p%3Fa%3ab%2F%40%21%24%27%28%29%2A%2C%3B?q=%20%25%3D"),
            "https://h/p?a:b/@!$'()*,;?q=%20%25%3D"
        );
        assert_eq!(decode_uri("https://h/%"), "https://h/%");
        assert_eq!(decode_uri("https://h/%3"), "https://h/%3");
        // A URL HubSpot sent encoded verifies against the signature over the decoded form.
        let body = b"[]";
        let sig = sign_v3(
            &secret("new-app-secret"),
            "POST",
            "https://h/x?at=a:b",
            body,
            NOW,
        );
        let ts = NOW.to_string();
        assert_eq!(
            verifier().verify(&request(&sig, &ts, "https://h/x?at=a%3Ab", body), NOW),
            Ok(NOW)
        );
    }

    #[test]
    fn malformed_inputs_are_named() {
        let v = verifier();
        let headers = HeaderMap::new();
        let req = HubSpotRequest::from_headers("POST", URI, &headers, b"[]").unwrap();
        assert_eq!(
            v.verify(&req, NOW),
            Err(HubSpotVerifyError::MissingSignature)
        );
        let sig = sign_v3(&secret("new-app-secret"), "POST", URI, b"[]", NOW);
        let no_ts = HubSpotRequest {
            signature: Some(&sig),
            ..req
        };
        assert_eq!(
            v.verify(&no_ts, NOW),
            Err(HubSpotVerifyError::MissingTimestamp)
        );
        for bad in ["abc", &"!".repeat(44), &hex::encode([0u8; 32])] {
            assert_eq!(
                v.verify(&request(bad, "1", URI, b"[]"), NOW),
                Err(HubSpotVerifyError::MalformedSignature),
                "{bad}"
            );
        }
        for ts in ["", "-5", "12.5", "soon", "9999999999999999"] {
            assert_eq!(
                v.verify(&request(&sig, ts, URI, b"[]"), NOW),
                Err(HubSpotVerifyError::MalformedTimestamp),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn headers_are_read_by_name_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert("X-HubSpot-Signature-V3", HeaderValue::from_static("sig"));
        headers.insert(
            "X-HubSpot-Request-Timestamp",
            HeaderValue::from_static("12"),
        );
        let req = HubSpotRequest::from_headers("POST", URI, &headers, b"").unwrap();
        assert_eq!((req.signature, req.timestamp), (Some("sig"), Some("12")));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let shown = format!("{:?}", verifier());
        assert!(!shown.contains("app-secret"), "{shown}");
    }
}

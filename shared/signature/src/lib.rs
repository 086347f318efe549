//! Proof that a webhook request came from Attio.
//!
//! Two schemes are verified, both HMAC-SHA256 keyed with the webhook secret string and sent as
//! lower-case hex in `Attio-Signature` (and the identical `X-Attio-Signature`):
//!
//! * **body-only** — Attio's documented scheme: the MAC covers the raw body exactly as received.
//!   It has no replay protection, so a [`SchemePolicy::RequireTimestamped`] deployment refuses it.
//! * **timestamped** — `X-Attio-Timestamp` carries unix seconds and the MAC covers
//!   `"{timestamp}.{raw body}"`, using the header text verbatim. Requests older than the tolerance
//!   (or too far in the future) are refused even when the MAC matches.
//!
//! Several secrets may be valid at once so a secret can be rotated without dropping deliveries.
//! Comparison is constant time (`hmac`'s `verify_slice`). Nothing here ever re-serialises the
//! body: callers pass the bytes exactly as they arrived.
//!
//! [`hubspot`] verifies HubSpot's v3 request signature (the HubSpot → Attio direction) in the
//! same style: several secrets, constant time, the clock passed in.
//!
//! This crate has no AWS or HTTP-server dependency; it only reads an [`http::HeaderMap`].

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

pub mod hubspot;

type HmacSha256 = Hmac<Sha256>;

/// The header Attio documents for the signature.
pub const SIGNATURE_HEADER: &str = "attio-signature";
/// The legacy header that carries the same value as [`SIGNATURE_HEADER`].
pub const LEGACY_SIGNATURE_HEADER: &str = "x-attio-signature";
/// Unix seconds covered by the timestamped scheme.
pub const TIMESTAMP_HEADER: &str = "x-attio-timestamp";

/// Default age after which a timestamped request is refused (seconds).
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// Default clock skew allowed for timestamps in the future (seconds).
pub const DEFAULT_FUTURE_SKEW_SECS: u64 = 60;

/// Length of a hex-encoded SHA-256 MAC.
const HEX_MAC_LEN: usize = 64;

/// One webhook signing secret. Its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret; `None` when it is empty or only whitespace.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into().trim().to_owned();
        (!value.is_empty()).then_some(Self(value))
    }

    /// The secret as Attio uses it: the string's bytes are the HMAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as KeyInit>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret(<{} bytes redacted>)", self.0.len())
    }
}

/// Which schemes a deployment accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemePolicy {
    /// Timestamped when `X-Attio-Timestamp` is present, body-only otherwise (Attio's default today).
    #[default]
    AcceptEither,
    /// Refuse requests without a timestamp: replay protection for every delivery.
    RequireTimestamped,
}

impl FromStr for SchemePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "either" | "any" | "accept-either" => Ok(Self::AcceptEither),
            "timestamped" | "require-timestamped" => Ok(Self::RequireTimestamped),
            other => Err(format!(
                "unknown signature policy {other:?}: use \"either\" or \"timestamped\""
            )),
        }
    }
}

impl fmt::Display for SchemePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AcceptEither => "either",
            Self::RequireTimestamped => "timestamped",
        })
    }
}

/// Which scheme a request was verified under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    BodyOnly,
    Timestamped { timestamp: i64 },
}

impl Verified {
    /// The signed timestamp, when the request carried one.
    pub fn timestamp(&self) -> Option<i64> {
        match self {
            Self::BodyOnly => None,
            Self::Timestamped { timestamp } => Some(*timestamp),
        }
    }
}

/// Why a request was refused. Messages never include secrets or full signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing Attio-Signature header")]
    MissingSignature,
    #[error("Attio-Signature and X-Attio-Signature disagree")]
    ConflictingSignatureHeaders,
    #[error("signature is not {HEX_MAC_LEN} hex characters")]
    MalformedSignature,
    #[error("missing X-Attio-Timestamp header: this endpoint requires timestamped signatures")]
    MissingTimestamp,
    #[error("X-Attio-Timestamp is not unix seconds")]
    MalformedTimestamp,
    #[error("timestamp is {age_secs}s old, more than the {tolerance_secs}s tolerance")]
    StaleTimestamp { age_secs: u64, tolerance_secs: u64 },
    #[error("timestamp is {ahead_secs}s in the future, more than the {allowed_secs}s allowed skew")]
    FutureTimestamp { ahead_secs: u64, allowed_secs: u64 },
    #[error("signature does not match any configured secret")]
    Mismatch,
}

impl VerifyError {
    /// A stable, machine-readable code for responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::ConflictingSignatureHeaders => "conflicting_signatures",
            Self::MalformedSignature => "malformed_signature",
            Self::MissingTimestamp => "missing_timestamp",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::StaleTimestamp { .. } => "stale_timestamp",
            Self::FutureTimestamp { .. } => "future_timestamp",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

/// The parts of a request that signatures cover, borrowed from the request as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> SignedRequest<'a> {
    /// Reads the signature and timestamp headers. Both signature headers may be present but
    /// must then agree; a header that is not visible ASCII counts as malformed.
    pub fn from_headers(headers: &'a HeaderMap, body: &'a [u8]) -> Result<Self, VerifyError> {
        let read = |name: &str| -> Result<Option<&'a str>, VerifyError> {
            match headers.get(name) {
                None => Ok(None),
                Some(value) => value
                    .to_str()
                    .map(|v| Some(v.trim()))
                    .map_err(|_| VerifyError::MalformedSignature),
            }
        };
        let signature = match (read(SIGNATURE_HEADER)?, read(LEGACY_SIGNATURE_HEADER)?) {
            (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
                return Err(VerifyError::ConflictingSignatureHeaders);
            }
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        let timestamp = match headers.get(TIMESTAMP_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map(str::trim)
                    .map_err(|_| VerifyError::MalformedTimestamp)?,
            ),
        };
        Ok(Self {
            signature,
            timestamp,
            body,
        })
    }
}

/// Verifies requests against a set of secrets under one policy.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<WebhookSecret>,
    policy: SchemePolicy,
    tolerance_secs: u64,
    future_skew_secs: u64,
}

impl Verifier {
    /// A verifier with the default tolerance (300 s) and future skew (60 s).
    pub fn new(secrets: Vec<WebhookSecret>, policy: SchemePolicy) -> Self {
        Self {
            secrets,
            policy,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            future_skew_secs: DEFAULT_FUTURE_SKEW_SECS,
        }
    }

    /// How old a timestamp may be.
    pub fn with_tolerance_secs(mut self, secs: u64) -> Self {
        self.tolerance_secs = secs;
        self
    }

    /// How far ahead of our clock a timestamp may be.
    pub fn with_future_skew_secs(mut self, secs: u64) -> Self {
        self.future_skew_secs = secs;
        self
    }

    pub fn policy(&self) -> SchemePolicy {
        self.policy
    }

    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// Checks `request` at wall-clock `now_unix` (seconds). Freshness is checked before the MAC
    /// so a stale replay is reported as such; both must pass.
    pub fn verify(
        &self,
        request: &SignedRequest<'_>,
        now_unix: i64,
    ) -> Result<Verified, VerifyError> {
        let signature = request.signature.ok_or(VerifyError::MissingSignature)?;
        let expected = decode_signature(signature)?;

        match request.timestamp {
            None if self.policy == SchemePolicy::RequireTimestamped => {
                Err(VerifyError::MissingTimestamp)
            }
            None => {
                self.match_any(&expected, |mac| mac.update(request.body))?;
                Ok(Verified::BodyOnly)
            }
            Some(text) => {
                let timestamp = parse_timestamp(text)?;
                self.check_freshness(timestamp, now_unix)?;
                self.match_any(&expected, |mac| {
                    mac.update(text.as_bytes());
                    mac.update(b".");
                    mac.update(request.body);
                })?;
                Ok(Verified::Timestamped { timestamp })
            }
        }
    }

    fn check_freshness(&self, timestamp: i64, now_unix: i64) -> Result<(), VerifyError> {
        let delta = now_unix.saturating_sub(timestamp);
        if delta > 0 && delta.unsigned_abs() > self.tolerance_secs {
            return Err(VerifyError::StaleTimestamp {
                age_secs: delta.unsigned_abs(),
                tolerance_secs: self.tolerance_secs,
            });
        }
        if delta < 0 && delta.unsigned_abs() > self.future_skew_secs {
            return Err(VerifyError::FutureTimestamp {
                ahead_secs: delta.unsigned_abs(),
                allowed_secs: self.future_skew_secs,
            });
        }
        Ok(())
    }

    /// True when any secret's MAC over the message equals `expected` (constant-time compare).
    fn match_any(
        &self,
        expected: &[u8],
        feed: impl Fn(&mut HmacSha256),
    ) -> Result<(), VerifyError> {
        // Every secret is tried even after a match so timing does not reveal which one matched.
        let mut matched = false;
        for secret in &self.secrets {
            let mut mac = secret.mac();
            feed(&mut mac);
            matched |= mac.verify_slice(expected).is_ok();
        }
        if matched {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

fn decode_signature(signature: &str) -> Result<Vec<u8>, VerifyError> {
    if signature.len() != HEX_MAC_LEN {
        return Err(VerifyError::MalformedSignature);
    }
    hex::decode(signature).map_err(|_| VerifyError::MalformedSignature)
}

fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    text.parse().map_err(|_| VerifyError::MalformedTimestamp)
}

/// Hex HMAC-SHA256 of the raw body: Attio's documented scheme. Used by the CLI's `send` and tests.
pub fn sign_body(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Hex HMAC-SHA256 of `"{timestamp}.{body}"`: the timestamped scheme.
pub fn sign_timestamped(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The first characters of a signature, safe to log for correlation.
pub fn redact(signature: &str) -> String {
    let prefix: String = signature.chars().take(8).collect();
    format!("{prefix}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const NOW: i64 = 1_763_000_000;

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::new(s).unwrap()
    }

    fn verifier(policy: SchemePolicy) -> Verifier {
        Verifier::new(vec![secret("old-secret"), secret("new-secret")], policy)
    }

    fn request<'a>(sig: Option<&'a str>, ts: Option<&'a str>, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            signature: sig,
            timestamp: ts,
            body,
        }
    }

    #[test]
    fn body_only_signature_from_any_configured_secret_verifies() {
        let body = br#"{"webhook_id":"w","events":[]}"#;
        for key in ["old-secret", "new-secret"] {
            let sig = sign_body(&secret(key), body);
            let got =
                verifier(SchemePolicy::AcceptEither).verify(&request(Some(&sig), None, body), NOW);
            assert_eq!(got, Ok(Verified::BodyOnly));
        }
    }

    #[test]
    fn signature_from_an_unknown_secret_is_refused() {
        let body = b"{}";
        let sig = sign_body(&secret("someone-else"), body);
        let got =
            verifier(SchemePolicy::AcceptEither).verify(&request(Some(&sig), None, body), NOW);
        assert_eq!(got, Err(VerifyError::Mismatch));
    }

    #[test]
    fn a_single_changed_body_byte_breaks_the_signature() {
        let sig = sign_body(&secret("new-secret"), br#"{"a":1}"#);
        let got = verifier(SchemePolicy::AcceptEither)
            .verify(&request(Some(&sig), None, br#"{"a":2}"#), NOW);
        assert_eq!(got, Err(VerifyError::Mismatch));
    }

    #[test]
    fn timestamped_signature_verifies_inside_the_tolerance() {
        let body = b"{}";
        let ts = NOW - 299;
        let sig = sign_timestamped(&secret("new-secret"), ts, body);
        let ts_text = ts.to_string();
        let got = verifier(SchemePolicy::RequireTimestamped)
            .verify(&request(Some(&sig), Some(&ts_text), body), NOW);
        assert_eq!(got, Ok(Verified::Timestamped { timestamp: ts }));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_even_with_a_valid_mac() {
        let body = b"{}";
        let v = verifier(SchemePolicy::AcceptEither);
        let stale = NOW - 301;
        let sig = sign_timestamped(&secret("new-secret"), stale, body);
        let text = stale.to_string();
        assert_eq!(
            v.verify(&request(Some(&sig), Some(&text), body), NOW),
            Err(VerifyError::StaleTimestamp {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        let future = NOW + 61;
        let sig = sign_timestamped(&secret("new-secret"), future, body);
        let text = future.to_string();
        assert_eq!(
            v.verify(&request(Some(&sig), Some(&text), body), NOW),
            Err(VerifyError::FutureTimestamp {
                ahead_secs: 61,
                allowed_secs: 60
            })
        );
    }

    #[test]
    fn a_body_only_mac_does_not_pass_as_timestamped() {
        let body = b"{}";
        let sig = sign_body(&secret("new-secret"), body);
        let ts = NOW.to_string();
        let got =
            verifier(SchemePolicy::AcceptEither).verify(&request(Some(&sig), Some(&ts), body), NOW);
        assert_eq!(got, Err(VerifyError::Mismatch));
    }

    #[test]
    fn require_timestamped_refuses_body_only_requests() {
        let body = b"{}";
        let sig = sign_body(&secret("new-secret"), body);
        let got = verifier(SchemePolicy::RequireTimestamped)
            .verify(&request(Some(&sig), None, body), NOW);
        assert_eq!(got, Err(VerifyError::MissingTimestamp));
    }

    #[test]
    fn malformed_inputs_are_named() {
        let v = verifier(SchemePolicy::AcceptEither);
        assert_eq!(
            v.verify(&request(None, None, b"{}"), NOW),
            Err(VerifyError::MissingSignature)
        );
        assert_eq!(
            v.verify(&request(Some("abc"), None, b"{}"), NOW),
            Err(VerifyError::MalformedSignature)
        );
        let not_hex = "z".repeat(64);
        assert_eq!(
            v.verify(&request(Some(&not_hex), None, b"{}"), NOW),
            Err(VerifyError::MalformedSignature)
        );
        let sig = "a".repeat(64);
        for ts in ["", "-5", "12.5", "soon", "99999999999999"] {
            assert_eq!(
                v.verify(&request(Some(&sig), Some(ts), b"{}"), NOW),
                Err(VerifyError::MalformedTimestamp),
                "timestamp {ts:?}"
            );
        }
    }

    #[test]
    fn headers_are_read_from_either_name_and_must_agree() {
        let sig = "a".repeat(64);
        let other = "b".repeat(64);
        let mut headers = HeaderMap::new();
        headers.insert(
            LEGACY_SIGNATURE_HEADER,
            HeaderValue::from_str(&sig).unwrap(),
        );
        let req = SignedRequest::from_headers(&headers, b"").unwrap();
        assert_eq!(req.signature, Some(sig.as_str()));

        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&other).unwrap());
        assert_eq!(
            SignedRequest::from_headers(&headers, b"").unwrap_err(),
            VerifyError::ConflictingSignatureHeaders
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let v = verifier(SchemePolicy::AcceptEither);
        let shown = format!("{v:?}");
        assert!(
            !shown.contains("old-secret") && !shown.contains("new-secret"),
            "{shown}"
        );
        assert!(WebhookSecret::new("   ").is_none());
    }

    #[test]
    fn redact_keeps_only_a_prefix() {
        assert_eq!(redact(&"f".repeat(64)), "ffffffff…");
    }
}

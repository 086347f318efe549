//! Structured requests against `relay_signature::Verifier`, checked against an independent
//! model built on the `hmac`/`sha2` crates directly.
//!
//! 1. Any secrets, policy, tolerance, skew, signature and timestamp header values (raw bytes,
//!    through `SignedRequest::from_headers` or set directly), body and clock: the verifier never
//!    panics, and its answer equals the model's — the scheme rules in the crate docs (signature
//!    is 64 hex characters; timestamp is 1-12 digits of unix seconds, MAC'd as the header text
//!    verbatim; freshness before the MAC; any configured secret may match). The signature is
//!    either arbitrary or a correct MAC of the body or of "{timestamp}.{body}", so the `Ok`
//!    paths are reached too.
//! 2. Oracle, body-only: a MAC computed with `hmac` over the body with one configured secret
//!    verifies `Ok(BodyOnly)` at any clock, equals `sign_body`, and fails with `Mismatch` once one
//!    body byte is flipped or one signature nibble changes.
//! 3. Oracle, timestamped: a MAC over "{ts}.{body}" verifies inside the tolerance window and is
//!    refused as stale / future outside it, with the exact age; a flipped body byte fails.

#![no_main]

use std::num::NonZeroU8;

use arbitrary::Arbitrary;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use relay_signature::{
    DEFAULT_FUTURE_SKEW_SECS, DEFAULT_TOLERANCE_SECS, LEGACY_SIGNATURE_HEADER, SIGNATURE_HEADER,
    SchemePolicy, SignedRequest, TIMESTAMP_HEADER, Verified, Verifier, VerifyError, WebhookSecret,
    sign_body, sign_timestamped,
};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Most secrets a deployment would configure at once while rotating; more only slows the run.
const MAX_SECRETS: usize = 4;

#[derive(Debug, Arbitrary)]
enum Policy {
    AcceptEither,
    RequireTimestamped,
}

/// What goes in the signature header.
#[derive(Debug, Arbitrary)]
enum Signature {
    Absent,
    Raw(Vec<u8>),
    /// A correct body-only MAC with configured secret `pick` (or an unconfigured key when none).
    BodyOnly {
        pick: u8,
        upper: bool,
    },
    /// A correct MAC over "{timestamp as the verifier will see it}.{body}".
    Timestamped {
        pick: u8,
        upper: bool,
    },
}

#[derive(Debug, Arbitrary)]
enum Legacy {
    Absent,
    Same,
    /// The same signature in upper case: the two headers compare case-insensitively.
    OtherCase,
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Transport {
    /// `SignedRequest` built field by field: no trimming, any UTF-8 text.
    Direct,
    /// Header values through `SignedRequest::from_headers`, as ingest reads them.
    Headers {
        pad_signature: bool,
        pad_timestamp: bool,
        legacy: Legacy,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    secrets: Vec<String>,
    policy: Policy,
    policy_text: String,
    tolerance_secs: Option<u64>,
    future_skew_secs: Option<u64>,
    signature: Signature,
    timestamp: Option<Vec<u8>>,
    transport: Transport,
    body: Vec<u8>,
    now: i64,
    oracle: Oracle,
}

/// Inputs of the two explicit oracles.
#[derive(Debug, Arbitrary)]
struct Oracle {
    pick: u8,
    /// Unix seconds, reduced to the 12 digits the verifier accepts.
    ts: u64,
    /// Leading zeros on the timestamp text (still at most 12 characters).
    zero_pad: u8,
    /// `now - ts`.
    offset: i32,
    flip_at: u16,
    flip_xor: NonZeroU8,
    nibble_at: u8,
}

fuzz_target!(|input: Input| {
    // Policy names: parse never panics; what parses prints back to itself.
    if let Ok(policy) = input.policy_text.parse::<SchemePolicy>() {
        assert_eq!(policy.to_string().parse::<SchemePolicy>(), Ok(policy));
    }

    let secrets: Vec<WebhookSecret> = input
        .secrets
        .iter()
        .take(MAX_SECRETS)
        .filter_map(|raw| {
            let secret = WebhookSecret::new(raw.as_str());
            // Documented: None when empty or only whitespace.
            assert_eq!(secret.is_none(), raw.trim().is_empty(), "{raw:?}");
            secret
        })
        .collect();
    let policy = match input.policy {
        Policy::AcceptEither => SchemePolicy::AcceptEither,
        Policy::RequireTimestamped => SchemePolicy::RequireTimestamped,
    };
    let tolerance = input.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS);
    let skew = input.future_skew_secs.unwrap_or(DEFAULT_FUTURE_SKEW_SECS);
    let mut verifier = Verifier::new(secrets.clone(), policy);
    if let Some(secs) = input.tolerance_secs {
        verifier = verifier.with_tolerance_secs(secs);
    }
    if let Some(secs) = input.future_skew_secs {
        verifier = verifier.with_future_skew_secs(secs);
    }
    assert_eq!(verifier.policy(), policy);
    assert_eq!(verifier.secret_count(), secrets.len());

    // Debug output never shows a secret: it does not change when each secret is replaced by
    // another of the same length.
    let stand_ins: Vec<WebhookSecret> = secrets
        .iter()
        .map(|s| WebhookSecret::new("x".repeat(s.expose().len())).expect("non-empty"))
        .collect();
    assert_eq!(
        format!("{verifier:?}"),
        format!(
            "{:?}",
            Verifier::new(stand_ins, policy)
                .with_tolerance_secs(tolerance)
                .with_future_skew_secs(skew)
        )
    );

    let model = Model {
        secrets: &secrets,
        policy,
        tolerance,
        skew,
    };
    chaos(&input, &verifier, &model);
    oracle_body_only(&input, &model);
    oracle_timestamped(&input, &model);
});

/// Part 1: arbitrary requests; the verifier's answer must be the model's.
fn chaos(input: &Input, verifier: &Verifier, model: &Model<'_>) {
    let body = input.body.as_slice();
    let key_for = |pick: u8| -> Vec<u8> {
        if model.secrets.is_empty() {
            b"a key that is not configured".to_vec()
        } else {
            model.secrets[usize::from(pick) % model.secrets.len()]
                .expose()
                .as_bytes()
                .to_vec()
        }
    };
    // The MAC the signature header carries, given the timestamp text the verifier will see.
    let signature_text = |timestamp_seen: Option<&str>| -> Option<Vec<u8>> {
        match &input.signature {
            Signature::Absent => None,
            Signature::Raw(bytes) => Some(bytes.clone()),
            Signature::BodyOnly { pick, upper } => {
                Some(hex_case(&mac(&key_for(*pick), &[body]), *upper).into_bytes())
            }
            Signature::Timestamped { pick, upper } => {
                let text = timestamp_seen.unwrap_or("").as_bytes();
                Some(hex_case(&mac(&key_for(*pick), &[text, b".", body]), *upper).into_bytes())
            }
        }
    };

    match &input.transport {
        Transport::Direct => {
            let timestamp = input
                .timestamp
                .as_ref()
                .map(|t| String::from_utf8_lossy(t).into_owned());
            let signature = signature_text(timestamp.as_deref())
                .map(|s| String::from_utf8_lossy(&s).into_owned());
            let request = SignedRequest {
                signature: signature.as_deref(),
                timestamp: timestamp.as_deref(),
                body,
            };
            check(verifier, model, &request, input.now);
        }
        Transport::Headers {
            pad_signature,
            pad_timestamp,
            legacy,
        } => {
            let mut headers = HeaderMap::new();
            let mut timestamp_seen = None;
            if let Some(value) = input
                .timestamp
                .as_ref()
                .and_then(|t| header_value(t, *pad_timestamp))
            {
                timestamp_seen = value.to_str().ok().map(|s| s.trim().to_owned());
                headers.insert(TIMESTAMP_HEADER, value);
            }
            let signature = signature_text(timestamp_seen.as_deref());
            if let Some(value) = signature
                .as_ref()
                .and_then(|s| header_value(s, *pad_signature))
            {
                headers.insert(SIGNATURE_HEADER, value);
            }
            let legacy_bytes = match legacy {
                Legacy::Absent => None,
                Legacy::Same => signature.clone(),
                Legacy::OtherCase => signature.as_ref().map(|s| s.to_ascii_uppercase()),
                Legacy::Raw(bytes) => Some(bytes.clone()),
            };
            if let Some(value) = legacy_bytes.and_then(|s| header_value(&s, false)) {
                headers.insert(LEGACY_SIGNATURE_HEADER, value);
            }

            match SignedRequest::from_headers(&headers, body) {
                Ok(request) => {
                    // The signature is one of the two headers, trimmed.
                    let read = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::trim)
                    };
                    assert_eq!(
                        request.signature,
                        read(SIGNATURE_HEADER).or(read(LEGACY_SIGNATURE_HEADER))
                    );
                    assert_eq!(request.timestamp, timestamp_seen.as_deref());
                    check(verifier, model, &request, input.now);
                }
                Err(err) => {
                    assert!(
                        matches!(
                            err,
                            VerifyError::MalformedSignature
                                | VerifyError::ConflictingSignatureHeaders
                                | VerifyError::MalformedTimestamp
                        ),
                        "from_headers: {err:?}"
                    );
                    if err == VerifyError::ConflictingSignatureHeaders {
                        let a = headers[SIGNATURE_HEADER].to_str().expect("read").trim();
                        let b = headers[LEGACY_SIGNATURE_HEADER]
                            .to_str()
                            .expect("read")
                            .trim();
                        assert!(!a.eq_ignore_ascii_case(b));
                    }
                    let _ = (err.code(), err.to_string());
                }
            }
        }
    }
}

/// Part 2: a correct body-only MAC verifies; one changed byte does not.
fn oracle_body_only(input: &Input, model: &Model<'_>) {
    let secrets = oracle_secrets(model);
    let verifier = Verifier::new(secrets.clone(), SchemePolicy::AcceptEither)
        .with_tolerance_secs(model.tolerance)
        .with_future_skew_secs(model.skew);
    let secret = &secrets[usize::from(input.oracle.pick) % secrets.len()];
    let body = input.body.as_slice();
    let signature = hex::encode(mac(secret.expose().as_bytes(), &[body]));
    assert_eq!(signature, sign_body(secret, body), "sign_body disagrees");

    let request = |signature: &str, body: &[u8]| {
        verifier.verify(
            &SignedRequest {
                signature: Some(signature),
                timestamp: None,
                body,
            },
            input.now,
        )
    };
    assert_eq!(request(&signature, body), Ok(Verified::BodyOnly));

    // One body byte flipped (or one byte added to an empty body).
    let mut tampered = body.to_vec();
    if tampered.is_empty() {
        tampered.push(input.oracle.flip_xor.get());
    } else {
        let at = usize::from(input.oracle.flip_at) % tampered.len();
        tampered[at] ^= input.oracle.flip_xor.get();
    }
    assert_eq!(
        request(&signature, &tampered),
        Err(VerifyError::Mismatch),
        "a changed body still verifies"
    );

    // One signature nibble changed.
    let mut forged = signature.clone().into_bytes();
    let at = usize::from(input.oracle.nibble_at) % forged.len();
    forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("hex");
    assert_eq!(request(&forged, body), Err(VerifyError::Mismatch));

    // A body-only MAC does not pass as timestamped, and the strict policy refuses it.
    let now_text = (input.oracle.ts % 1_000_000_000_000).to_string();
    let as_timestamped = Verifier::new(secrets.clone(), SchemePolicy::AcceptEither).verify(
        &SignedRequest {
            signature: Some(&signature),
            timestamp: Some(&now_text),
            body,
        },
        now_text.parse().expect("digits"),
    );
    assert_eq!(as_timestamped, Err(VerifyError::Mismatch));
    let strict = Verifier::new(secrets, SchemePolicy::RequireTimestamped).verify(
        &SignedRequest {
            signature: Some(&signature),
            timestamp: None,
            body,
        },
        input.now,
    );
    assert_eq!(strict, Err(VerifyError::MissingTimestamp));
}

/// Part 3: a correct timestamped MAC verifies inside the window and only there.
fn oracle_timestamped(input: &Input, model: &Model<'_>) {
    let secrets = oracle_secrets(model);
    let secret = &secrets[usize::from(input.oracle.pick) % secrets.len()];
    let body = input.body.as_slice();
    let ts = (input.oracle.ts % 1_000_000_000_000) as i64;
    let width = usize::from(input.oracle.zero_pad % 13);
    let text = format!("{ts:0width$}");
    let now = ts + i64::from(input.oracle.offset);
    let signature = hex::encode(mac(
        secret.expose().as_bytes(),
        &[text.as_bytes(), b".", body],
    ));
    if text == ts.to_string() {
        assert_eq!(signature, sign_timestamped(secret, ts, body));
    }

    let expected = match i64::from(input.oracle.offset) {
        age if age > 0 && age.unsigned_abs() > model.tolerance => {
            Err(VerifyError::StaleTimestamp {
                age_secs: age.unsigned_abs(),
                tolerance_secs: model.tolerance,
            })
        }
        age if age < 0 && age.unsigned_abs() > model.skew => Err(VerifyError::FutureTimestamp {
            ahead_secs: age.unsigned_abs(),
            allowed_secs: model.skew,
        }),
        _ => Ok(Verified::Timestamped { timestamp: ts }),
    };
    for policy in [SchemePolicy::AcceptEither, SchemePolicy::RequireTimestamped] {
        let verifier = Verifier::new(secrets.clone(), policy)
            .with_tolerance_secs(model.tolerance)
            .with_future_skew_secs(model.skew);
        let verify = |body: &[u8]| {
            verifier.verify(
                &SignedRequest {
                    signature: Some(&signature),
                    timestamp: Some(&text),
                    body,
                },
                now,
            )
        };
        assert_eq!(verify(body), expected, "{policy} ts={text:?} now={now}");
        let mut tampered = body.to_vec();
        tampered.push(input.oracle.flip_xor.get());
        let tampered_expected = match expected {
            Ok(_) => Err(VerifyError::Mismatch),
            ref refused => refused.clone(),
        };
        assert_eq!(verify(&tampered), tampered_expected);
    }
}

/// The configured secrets, or one stand-in so the oracles always have a key.
fn oracle_secrets(model: &Model<'_>) -> Vec<WebhookSecret> {
    if model.secrets.is_empty() {
        vec![WebhookSecret::new("whsec_fuzz_oracle").expect("secret")]
    } else {
        model.secrets.to_vec()
    }
}

/// The verification rules, written from the crate docs against `hmac` directly.
struct Model<'a> {
    secrets: &'a [WebhookSecret],
    policy: SchemePolicy,
    tolerance: u64,
    skew: u64,
}

impl Model<'_> {
    fn expect(&self, request: &SignedRequest<'_>, now: i64) -> Result<Verified, VerifyError> {
        let signature = request.signature.ok_or(VerifyError::MissingSignature)?;
        if signature.len() != 64 {
            return Err(VerifyError::MalformedSignature);
        }
        let expected = hex::decode(signature).map_err(|_| VerifyError::MalformedSignature)?;
        let matches = |parts: &[&[u8]]| {
            self.secrets
                .iter()
                .any(|s| mac(s.expose().as_bytes(), parts) == expected)
        };
        let Some(text) = request.timestamp else {
            if self.policy == SchemePolicy::RequireTimestamped {
                return Err(VerifyError::MissingTimestamp);
            }
            return if matches(&[request.body]) {
                Ok(Verified::BodyOnly)
            } else {
                Err(VerifyError::Mismatch)
            };
        };
        if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifyError::MalformedTimestamp);
        }
        let timestamp: i64 = text.parse().expect("at most 12 digits");
        // The age in seconds, clamped to i64 as the verifier's saturating subtraction does (it
        // only differs from the true age for clocks some 292 billion years off).
        let age = (i128::from(now) - i128::from(timestamp))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        let age_secs = u64::try_from(age.unsigned_abs()).expect("fits after the clamp");
        if age > 0 && age_secs > self.tolerance {
            return Err(VerifyError::StaleTimestamp {
                age_secs,
                tolerance_secs: self.tolerance,
            });
        }
        if age < 0 && age_secs > self.skew {
            return Err(VerifyError::FutureTimestamp {
                ahead_secs: age_secs,
                allowed_secs: self.skew,
            });
        }
        if matches(&[text.as_bytes(), b".", request.body]) {
            Ok(Verified::Timestamped { timestamp })
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

fn check(verifier: &Verifier, model: &Model<'_>, request: &SignedRequest<'_>, now: i64) {
    let got = verifier.verify(request, now);
    let want = model.expect(request, now);
    assert_eq!(got, want, "request {request:?} now {now}");
    if let Err(err) = &got {
        let _ = (err.code(), err.to_string());
    }
    if let Ok(verified) = got {
        assert_eq!(
            verified.timestamp(),
            request.timestamp.map(|t| t.parse().expect("digits"))
        );
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex_case(bytes: &[u8], upper: bool) -> String {
    if upper {
        hex::encode_upper(bytes)
    } else {
        hex::encode(bytes)
    }
}

/// A header value, optionally padded with the spaces `from_headers` trims; `None` when `http`
/// refuses the bytes (ingest never sees such a value).
fn header_value(bytes: &[u8], pad: bool) -> Option<HeaderValue> {
    if pad {
        let mut padded = b" \t".to_vec();
        padded.extend_from_slice(bytes);
        padded.extend_from_slice(b" ");
        HeaderValue::from_bytes(&padded).ok()
    } else {
        HeaderValue::from_bytes(bytes).ok()
    }
}

//! The stored list of webhook signing secrets, as `webhooks create|rotate|delete|retire` keep
//! it: which webhook each secret belongs to and when it was added, so an old or leaked secret
//! can be retired instead of staying valid forever.
//!
//! ```json
//! {"secrets": ["<newest>", "<older>"],
//!  "webhooks": [{"webhook_id": "…", "fingerprint": "3f9c…", "added_at": 1767225600}]}
//! ```
//!
//! `secrets` is what the ingest function reads (`relay_ingest::parse_secret_list`, which
//! ignores the other key), unchanged from before: a deployed function of any version reads a
//! list this module writes, and this module reads every form the ingest accepts (an older
//! list has no records: its secrets belong to no known webhook until retired). Each record
//! names its secret by a fingerprint — an HMAC keyed with the secret, so it identifies the
//! secret without revealing it — rather than by position, which a hand edit would shift.

use std::fmt;

use relay_events::clock::UnixSeconds;
use relay_signature::WebhookSecret;
use serde::{Deserialize, Serialize};

/// Which webhook a secret belongs to and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub webhook_id: String,
    pub fingerprint: String,
    /// Unix seconds; `None` when not known.
    #[serde(default)]
    pub added_at: Option<UnixSeconds>,
}

/// The secrets, newest first, and what is known about each. Debug never shows a secret.
#[derive(Clone, Default)]
pub struct SecretList {
    secrets: Vec<WebhookSecret>,
    records: Vec<SecretRecord>,
}

impl fmt::Debug for SecretList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretList")
            .field("secrets", &self.secrets.len())
            .field("records", &self.records)
            .finish()
    }
}

/// What retiring left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    pub removed: usize,
    pub remaining: usize,
}

/// The fingerprint of a secret: the first 16 hex digits of HMAC-SHA256(secret, a fixed label).
pub fn fingerprint(secret: &WebhookSecret) -> String {
    let mac = relay_signature::sign_body(secret, b"attio-relay webhook secret fingerprint");
    mac.chars().take(16).collect()
}

impl SecretList {
    /// Reads a stored list in any form the ingest function accepts.
    pub fn parse(text: &str) -> Self {
        #[derive(Deserialize)]
        struct Records {
            #[serde(default)]
            webhooks: Vec<SecretRecord>,
        }
        let secrets = relay_ingest::parse_secret_list(text);
        let records = serde_json::from_str::<Records>(text.trim())
            .map(|r| r.webhooks)
            .unwrap_or_default();
        let mut list = Self { secrets, records };
        list.prune();
        list
    }

    /// The JSON to store: `secrets` for the ingest function, `webhooks` for these commands.
    pub fn to_json(&self) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(WebhookSecret::expose).collect();
        serde_json::json!({ "secrets": secrets, "webhooks": self.records }).to_string()
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Puts `secret` first, recorded as `webhook_id`'s, added at `now`; the others stay
    /// valid (a rotation overlaps until the old secret is retired).
    pub fn add(&mut self, webhook_id: &str, secret: WebhookSecret, now: UnixSeconds) {
        let print = fingerprint(&secret);
        self.secrets.retain(|s| fingerprint(s) != print);
        self.records.retain(|r| r.fingerprint != print);
        self.secrets.insert(0, secret);
        self.records.insert(
            0,
            SecretRecord {
                webhook_id: webhook_id.to_owned(),
                fingerprint: print,
                added_at: Some(now),
            },
        );
    }

    /// Removes the secrets recorded as `webhook_id`'s (a deleted webhook's, which must stop
    /// verifying).
    pub fn retire_webhook(&mut self, webhook_id: &str) -> Retired {
        let prints: Vec<String> = self
            .records
            .iter()
            .filter(|r| r.webhook_id == webhook_id)
            .map(|r| r.fingerprint.clone())
            .collect();
        self.retain(|print| !prints.iter().any(|p| p == print))
    }

    /// Keeps only the secrets recorded as `keep`'s; every other one — an older webhook's, or
    /// one stored before secrets were recorded — stops verifying.
    pub fn retire_all_but(&mut self, keep: &str) -> Retired {
        let prints: Vec<String> = self
            .records
            .iter()
            .filter(|r| r.webhook_id == keep)
            .map(|r| r.fingerprint.clone())
            .collect();
        self.retain(|print| prints.iter().any(|p| p == print))
    }

    fn retain(&mut self, keep: impl Fn(&str) -> bool) -> Retired {
        let before = self.secrets.len();
        self.secrets.retain(|s| keep(&fingerprint(s)));
        self.prune();
        Retired {
            removed: before - self.secrets.len(),
            remaining: self.secrets.len(),
        }
    }

    /// Whether a secret is recorded as `webhook_id`'s.
    pub fn has_webhook(&self, webhook_id: &str) -> bool {
        self.records.iter().any(|r| r.webhook_id == webhook_id)
    }

    /// Secrets no record names (stored by hand or by an older version).
    pub fn unrecorded(&self) -> usize {
        self.secrets
            .iter()
            .filter(|s| {
                let print = fingerprint(s);
                !self.records.iter().any(|r| r.fingerprint == print)
            })
            .count()
    }

    /// One line per valid secret, newest first: fingerprint, webhook, when added. Never the
    /// secret.
    pub fn describe(&self) -> Vec<String> {
        self.secrets
            .iter()
            .map(|s| {
                let print = fingerprint(s);
                match self.records.iter().find(|r| r.fingerprint == print) {
                    Some(r) => format!(
                        "{print}  webhook {}  added {}",
                        r.webhook_id,
                        r.added_at
                            .map_or_else(|| "at an unknown time".to_owned(), added_at_text)
                    ),
                    None => format!("{print}  (no webhook recorded)"),
                }
            })
            .collect()
    }

    /// Drops records whose secret is no longer in the list (retired, or removed by hand).
    fn prune(&mut self) {
        let prints: Vec<String> = self.secrets.iter().map(fingerprint).collect();
        self.records.retain(|r| prints.contains(&r.fingerprint));
    }
}

/// Unix seconds as an HTTP date (UTC), for operators.
fn added_at_text(secs: UnixSeconds) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0).unsigned_abs());
    httpdate::fmt_http_date(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> WebhookSecret {
        WebhookSecret::new(value).expect("non-empty")
    }

    fn exposed(list: &SecretList) -> Vec<String> {
        list.secrets.iter().map(|s| s.expose().to_owned()).collect()
    }

    #[test]
    fn the_ingest_function_reads_exactly_the_secrets_of_the_stored_form() {
        let mut list = SecretList::parse(r#"{"secrets": ["whsec_old"]}"#);
        list.add("wh-new", secret("whsec_new"), 1_767_225_600);
        let stored = list.to_json();
        let read: Vec<String> = relay_ingest::parse_secret_list(&stored)
            .iter()
            .map(|s| s.expose().to_owned())
            .collect();
        assert_eq!(read, ["whsec_new", "whsec_old"]);
        assert!(
            !serde_json::from_str::<serde_json::Value>(&stored).expect("json")["webhooks"]
                .to_string()
                .contains("whsec"),
            "records never hold a secret: {stored}"
        );
    }

    #[test]
    fn every_older_form_is_read_with_no_webhook_known() {
        for text in [r#"{"secrets": ["a", "b"]}"#, r#"["a", "b"]"#, "a,b"] {
            let list = SecretList::parse(text);
            assert_eq!(exposed(&list), ["a", "b"], "{text}");
            assert_eq!(list.unrecorded(), 2);
        }
    }

    #[test]
    fn rotation_overlaps_until_the_old_secret_is_retired() {
        let mut list = SecretList::default();
        list.add("wh-1", secret("s1"), 100);
        list.add("wh-2", secret("s2"), 200);
        assert_eq!(
            exposed(&list),
            ["s2", "s1"],
            "both verify during the overlap"
        );

        let stored = SecretList::parse(&list.to_json());
        assert!(stored.has_webhook("wh-1") && stored.has_webhook("wh-2"));
        let mut stored = stored;
        assert_eq!(
            stored.retire_webhook("wh-1"),
            Retired {
                removed: 1,
                remaining: 1
            }
        );
        assert_eq!(exposed(&stored), ["s2"]);
        assert!(!stored.has_webhook("wh-1"), "its record goes with it");
        assert_eq!(
            stored.retire_webhook("wh-1").removed,
            0,
            "a second retire is a no-op"
        );
    }

    #[test]
    fn retire_all_but_removes_unrecorded_secrets_too() {
        let mut list = SecretList::parse(r#"{"secrets": ["legacy", "leaked"]}"#);
        list.add("wh-3", secret("fresh"), 300);
        let retired = list.retire_all_but("wh-3");
        assert_eq!(
            retired,
            Retired {
                removed: 2,
                remaining: 1
            }
        );
        assert_eq!(exposed(&list), ["fresh"]);
        assert_eq!(list.retire_all_but("wh-unknown").remaining, 0);
    }

    #[test]
    fn adding_a_stored_secret_again_moves_it_first_once() {
        let mut list = SecretList::default();
        list.add("wh-1", secret("s1"), 100);
        list.add("wh-2", secret("s2"), 200);
        list.add("wh-1", secret("s1"), 300);
        assert_eq!(exposed(&list), ["s1", "s2"]);
        assert_eq!(list.records.len(), 2);
        assert_eq!(list.records[0].added_at, Some(300));
    }

    #[test]
    fn descriptions_and_debug_never_show_a_secret() {
        let mut list = SecretList::parse(r#"{"secrets": ["whsec_legacy"]}"#);
        list.add("wh-9", secret("whsec_fresh"), 1_767_225_600);
        let lines = list.describe();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("webhook wh-9") && lines[0].contains("2026"),
            "{lines:?}"
        );
        assert!(lines[1].contains("no webhook recorded"), "{lines:?}");
        let shown = format!("{lines:?} {list:?}");
        assert!(!shown.contains("whsec_"), "{shown}");
        assert_eq!(fingerprint(&secret("a")).len(), 16);
        assert_ne!(fingerprint(&secret("a")), fingerprint(&secret("b")));
    }
}

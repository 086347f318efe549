//! [`AttioWriter`] over HTTP: the writes of the way back (HubSpot → Attio), for
//! [`AttioClient`] and [`CachedAttio`].
//!
//! * **Assert** — `PUT /v2/objects/{object}/records?matching_attribute={slug}` with
//!   `{"data": {"values": {…}}}`: the record whose unique `matching_attribute` holds the given
//!   value is updated, or created when none does
//!   (<https://docs.attio.com/rest-api/endpoint-reference/records/assert-a-record>).
//! * **Update** — `PUT /v2/objects/{object}/records/{record_id}` with the same body: the given
//!   attributes are overwritten, multiselect values included (`PATCH` would prepend to them,
//!   <https://docs.attio.com/rest-api/endpoint-reference/records/update-a-record-overwrite-multiselect-values>).
//! * **Delete** — `DELETE /v2/objects/{object}/records/{record_id}`, answered `200 {}`
//!   (<https://docs.attio.com/rest-api/endpoint-reference/records/delete-a-record>): only with
//!   `HUBSPOT_DELETIONS=delete`, for a HubSpot object deleted by a person. Attio documents no
//!   archive (or restore) for records, only this delete.
//!
//! **Why a failed write is simply sent again.** Both are `PUT`s that *set* values: sending one
//! twice leaves the record as sending it once does (Attio keeps no new historic value for a
//! value that did not change), so a 5xx, a timeout or a dropped connection after Attio applied
//! the write is retried like a read — unlike a webhook create, which is sent once.
//!
//! **Rate.** Writes draw from the client's write pacer, or from the deployment-wide
//! `attio-writes` budget when one is configured ([`crate::AttioConfig::write_budget`]): Attio
//! allows 25 writes per second per workspace, separately from the 100 reads
//! (<https://docs.attio.com/rest-api/guides/rate-limiting>). A 429 is waited out (its
//! `Retry-After` is an HTTP date) when the wait fits the call's budget, and halves the shared
//! write rate for every container.
//!
//! **Errors** classify as the reads' do ([`AttioError::is_permanent`]), from Attio's error body
//! `{status_code, type, code, message}` as the endpoint references show it: 404 `not_found`
//! ("Record with ID … not found", or the object) is permanent; 400 (`validation_type`,
//! `value_not_found` — e.g. "No attribute was found for matching_attribute slug/ID …",
//! `missing_value`) is permanent, with Attio's message kept in the error so an operator sees
//! which attribute was refused — but with the values in it redacted ([`redact_values`]): a
//! validation message can quote the email address or phone number it refused, and the error
//! text ends up in logs and in the dead-letter message's `failure_reason`; 409 `concurrent_write_conflict` ("The record was modified by
//! another request while this write was being validated. Please try again."), 408, 429 and
//! 5xx are transient and retried within the budget. A 401 re-reads the token once.

use reqwest::Method;

use crate::client::{Call, Kind};
use crate::writes::{AttioValues, AttioWriter};
use crate::{AttioApi, AttioClient, AttioError, CachedAttio, Record};

/// The body of both writes: `{"data": {"values": {…}}}`.
fn write_body(values: &AttioValues) -> serde_json::Value {
    serde_json::json!({ "data": { "values": values } })
}

fn to_bytes(body: &serde_json::Value) -> Result<Vec<u8>, AttioError> {
    serde_json::to_vec(body).map_err(|e| AttioError::Config {
        reason: format!("request body does not serialise: {e}"),
    })
}

/// Longest Attio error message kept in a write's error (the rest is cut): enough for the
/// attribute and the reason, not for a record's worth of values.
const MESSAGE_LIMIT: usize = 200;

/// A write's error with the personal data Attio's message may quote taken out (see the module
/// docs): every word that reads as an email address, a phone number or a domain becomes
/// `[redacted]`, and the message is cut at [`MESSAGE_LIMIT`] characters. Attribute slugs,
/// codes and the reason stay, so an operator still sees what was refused.
fn redact(err: AttioError) -> AttioError {
    match err {
        AttioError::Api {
            status,
            code,
            message,
            path,
        } => AttioError::Api {
            status,
            code,
            message: redact_values(&message),
            path,
        },
        AttioError::NotFound {
            path,
            code,
            message,
        } => AttioError::NotFound {
            path,
            code,
            message: redact_values(&message),
        },
        AttioError::BudgetExhausted {
            path,
            attempts,
            last,
        } => AttioError::BudgetExhausted {
            path,
            attempts,
            last: Box::new(redact(*last)),
        },
        other => other,
    }
}

/// `message` with emails, phone numbers and domains replaced, cut to [`MESSAGE_LIMIT`].
pub(crate) fn redact_values(message: &str) -> String {
    let text = redact_phones(message);
    fn personal(word: &str) -> bool {
        let domain_like = word.contains('.')
            && !word.contains('/')
            && word.split('.').all(|part| !part.is_empty())
            && word
                .rsplit('.')
                .next()
                .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        word.contains('@') || domain_like
    }
    let redacted: Vec<String> = text
        .split(' ')
        .map(|word| {
            let edge = |c: char| "\"'`,;:.!?()[]{}<>".contains(c);
            let inner = word.trim_matches(edge);
            if inner.is_empty() || !personal(inner) {
                return word.to_owned();
            }
            word.replacen(inner, "[redacted]", 1)
        })
        .collect();
    let text = redacted.join(" ");
    match text.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Runs of digits and phone punctuation (`+ - ( ) . ` and spaces) holding five digits or
/// more become `[redacted]`: a phone number written any way, split over words or not.
fn redact_phones(message: &str) -> String {
    let phone_char = |c: char| c.is_ascii_digit() || "+-(). ".contains(c);
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut n = 0;
    while n < chars.len() {
        if !(chars[n].is_ascii_digit() || chars[n] == '+' || chars[n] == '(') {
            out.push(chars[n]);
            n += 1;
            continue;
        }
        let mut end = n;
        while end < chars.len() && phone_char(chars[end]) {
            end += 1;
        }
        // Trailing punctuation and spaces belong to the sentence.
        let mut last = end;
        while last > n && !chars[last - 1].is_ascii_digit() && chars[last - 1] != ')' {
            last -= 1;
        }
        if last == n {
            out.push(chars[n]);
            n += 1;
            continue;
        }
        let run = &chars[n..last];
        if run.iter().filter(|c| c.is_ascii_digit()).count() >= 5 {
            out.push_str("[redacted]");
        } else {
            out.extend(run);
        }
        n = last;
    }
    out
}

impl AttioClient {
    /// `PUT /objects/{object}/records/{record_id}`: overwrites the given attributes of one
    /// record. Idempotent (a `PUT` of values), so transient failures are retried like a read's.
    pub async fn update_record(
        &self,
        object: &str,
        record_id: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let body = to_bytes(&write_body(values))?;
        self.call(Call {
            method: Method::PUT,
            segments: &["objects", object, "records", record_id],
            query: &[],
            body: Some(body),
            circuit: object,
            kind: Kind::Write,
            retry_transient: true,
        })
        .await
        .map_err(redact)
    }
}

impl AttioClient {
    /// `DELETE /objects/{object}/records/{record_id}`. Sent again on a transient failure like
    /// the `PUT`s: deleting a deleted record changes nothing (Attio answers it `not_found`,
    /// which the caller takes as done).
    pub async fn delete_record(&self, object: &str, record_id: &str) -> Result<(), AttioError> {
        // The answer is `{}`: no `data` to decode (a missing field reads as `None`).
        let _: Option<serde_json::Value> = self
            .call(Call {
                method: Method::DELETE,
                segments: &["objects", object, "records", record_id],
                query: &[],
                body: None,
                circuit: object,
                kind: Kind::Write,
                retry_transient: true,
            })
            .await
            .map_err(redact)?;
        Ok(())
    }
}

impl AttioWriter for AttioClient {
    async fn assert_record(
        &self,
        object: &str,
        matching_attribute: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let values = serde_json::Value::Object(values.clone());
        AttioClient::assert_record(self, object, matching_attribute, values)
            .await
            .map_err(redact)
    }

    async fn update_record(
        &self,
        object: &str,
        record_id: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        AttioClient::update_record(self, object, record_id, values).await
    }

    async fn delete_record(&self, object: &str, record_id: &str) -> Result<(), AttioError> {
        AttioClient::delete_record(self, object, record_id).await
    }
}

/// Object ids are turned into slugs through the schema cache first, as the sync does for
/// reads: paths, circuits and logs then name the object the way the field mapping does.
impl AttioWriter for CachedAttio {
    async fn assert_record(
        &self,
        object: &str,
        matching_attribute: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let slug = self.object_slug(object).await?;
        AttioWriter::assert_record(self.client(), &slug, matching_attribute, values).await
    }

    async fn update_record(
        &self,
        object: &str,
        record_id: &str,
        values: &AttioValues,
    ) -> Result<Record, AttioError> {
        let slug = self.object_slug(object).await?;
        AttioClient::update_record(self.client(), &slug, record_id, values).await
    }

    async fn delete_record(&self, object: &str, record_id: &str) -> Result<(), AttioError> {
        let slug = self.object_slug(object).await?;
        AttioClient::delete_record(self.client(), &slug, record_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::redact_values;

    #[test]
    fn emails_phones_and_domains_are_taken_out_of_attios_messages() {
        let message = r#"Invalid value "ada@analytical.example" for email_addresses; phone_numbers got +44 20 7946 0958 and (415) 555-0100, domains "analytical.example"."#;
        let shown = redact_values(message);
        for personal in ["ada@", "7946", "555-0100", "analytical.example"] {
            assert!(!shown.contains(personal), "{personal} in {shown}");
        }
        assert!(shown.contains("email_addresses"), "{shown}");
        assert!(shown.contains("Invalid value \"[redacted]\""), "{shown}");
        let kept = "No attribute was found for matching_attribute slug/ID \"e-mail\".";
        assert_eq!(redact_values(kept), kept, "slugs and reasons stay");
        let long = "x ".repeat(300);
        assert!(redact_values(&long).chars().count() <= 201);
    }
}

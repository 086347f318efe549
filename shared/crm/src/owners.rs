//! HubSpot owners: the users records and activities are assigned to (`hubspot_owner_id`).
//!
//! The owners API is read-only; an owner's `id` (not its `userId`) is the value to write:
//! "id: the ID of the owner. This value should be used ... when assigning an owner to a record
//! or activity. userId ... will result in an error if it is used to assign ownership"
//! (<https://developers.hubspot.com/docs/api-reference/crm-crm-owners-v3/guide>).
//! `GET /crm/v3/owners/` takes `email` (filter by email), `limit`, `after` (paging) and
//! `archived` (default false: only active owners, the only ones worth assigning), and needs the
//! `crm.objects.owners.read` scope
//! (<https://developers.hubspot.com/docs/api-reference/latest/crm/owners/get-owners.md>).
//!
//! The lookup filters by email and still checks each result's email itself (case-insensitive,
//! as email addresses are compared in practice) and follows `paging.next.after`, so a filter
//! the portal ignores or answers loosely can never assign the wrong owner. Nothing here is
//! cached: the sync caches owner ids per container with a TTL, negative answers included.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use crate::hubspot::OWNERS;
use crate::{CrmError, CrmId, HubSpotSink};

/// Owners per page (HubSpot's default is 100, its maximum 500).
const PAGE_LIMIT: usize = 100;
/// Pages read for one email before giving up: an email filter answers one page, so more is a
/// portal ignoring the filter, and reading all of a huge portal per lookup would spend the rate
/// budget the sync needs.
const MAX_PAGES: usize = 10;

#[derive(Debug, Deserialize)]
struct OwnersPage {
    #[serde(default)]
    results: Vec<Owner>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Owner {
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    archived: bool,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Debug, Deserialize)]
struct Next {
    after: String,
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass): an email may hold `+`,
/// which a query string would otherwise read as a space.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl HubSpotSink {
    /// The id of the active HubSpot owner whose email is `email`; `None` when there is none.
    pub(crate) async fn find_owner(&self, email: &str) -> Result<Option<CrmId>, CrmError> {
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut path = format!(
                "{OWNERS}/?email={}&limit={PAGE_LIMIT}&archived=false",
                encode(email)
            );
            if let Some(after) = &after {
                path.push_str(&format!("&after={}", encode(after)));
            }
            let (status, body) = self.call("read owners", Method::GET, &path, None).await?;
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let page: OwnersPage =
                serde_json::from_value(body).map_err(|e| CrmError::Unavailable {
                    operation: "read owners".into(),
                    message: format!("unexpected answer: {e}"),
                })?;
            let found = page.results.into_iter().find(|owner| {
                !owner.archived
                    && owner
                        .email
                        .as_deref()
                        .is_some_and(|e| e.trim().eq_ignore_ascii_case(email.trim()))
            });
            if let Some(owner) = found {
                return Ok(Some(CrmId(owner.id)));
            }
            match page.paging.and_then(|p| p.next) {
                Some(next) => after = Some(next.after),
                None => return Ok(None),
            }
        }
        tracing::warn!(
            pages = MAX_PAGES,
            "HubSpot owners lookup read its page limit without a match"
        );
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::{CrmSink, HubSpotConfig};

    fn sink(server: &MockServer) -> HubSpotSink {
        let mut config = HubSpotConfig::new("test-token");
        config.base_url = server.uri();
        config.backoff = Duration::from_millis(1);
        HubSpotSink::new(config).expect("sink")
    }

    fn owner(id: &str, email: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "email": email, "type": "PERSON", "firstName": "A", "lastName": "B",
            "userId": 9586504, "createdAt": "2019-12-25T13:01:35.228Z",
            "updatedAt": "2019-12-25T13:01:35.228Z", "archived": false
        })
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("ada+sales@example.com"), "ada%2Bsales%40example.com");
        assert_eq!(encode("a.b-c_d~e"), "a.b-c_d~e");
    }

    #[tokio::test]
    async fn filters_by_email_and_answers_the_owner_id_not_the_user_id() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/crm/v3/owners/"))
            .and(query_param("email", "ada+sales@example.com"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "results": [owner("41629779", "Ada+Sales@Example.com")]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let found = sink(&server)
            .owner_by_email("ada+sales@example.com")
            .await
            .expect("lookup");
        assert_eq!(found, Some(CrmId("41629779".into())));
    }

    #[tokio::test]
    async fn follows_paging_and_never_takes_an_owner_with_another_email() {
        let server = MockServer::start().await;
        // A portal that ignores the filter: two pages of everyone.
        Mock::given(method("GET"))
            .and(path("/crm/v3/owners/"))
            .and(query_param("after", "page2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "results": [owner("3", "grace@example.com")]
            })))
            // Both lookups read both pages: the match is on page 2, the miss reads to the end.
            .expect(2)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/crm/v3/owners/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "results": [owner("1", "linus@example.com"), owner("2", "ken@example.com")],
                "paging": {"next": {"after": "page2", "link": "https://api.hubapi.com/x"}}
            })))
            .mount(&server)
            .await;
        let sink = sink(&server);
        assert_eq!(
            sink.owner_by_email("grace@example.com")
                .await
                .expect("found"),
            Some(CrmId("3".into()))
        );
        assert_eq!(
            sink.owner_by_email("nobody@example.com")
                .await
                .expect("none"),
            None
        );
    }

    #[tokio::test]
    async fn an_empty_answer_is_no_owner_and_a_missing_scope_is_an_auth_error() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/crm/v3/owners/"))
            .and(query_param("email", "nobody@example.com"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "results": []
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/crm/v3/owners/"))
            .and(query_param("email", "ada@example.com"))
            .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
                "status": "error", "category": "MISSING_SCOPES",
                "message": "This app hasn't been granted all required scopes"
            })))
            .mount(&server)
            .await;
        let sink = sink(&server);
        assert_eq!(
            sink.owner_by_email("nobody@example.com").await.unwrap(),
            None
        );
        let err = sink.owner_by_email("ada@example.com").await.unwrap_err();
        assert_eq!(err.class(), crate::ErrorClass::Auth, "{err}");
    }
}

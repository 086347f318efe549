//! Workspace members: the people behind `workspace-member` actors (record owners, task
//! assignees, note authors). The sync reads a member's email address to find the HubSpot owner
//! with the same email.
//!
//! `GET /v2/workspace_members/{workspace_member_id}` answers `{data: {id: {workspace_id,
//! workspace_member_id}, first_name, last_name, avatar_url, email_address, created_at,
//! access_level}}` and needs the `user_management:read` scope
//! (<https://docs.attio.com/api-reference/workspace-members/get-a-workspace-member>). Attio
//! never deletes members ("so that you can successfully attribute past actions to suspended
//! workspace members", same page): a suspended member keeps its email, `access_level` says so.

use serde::Deserialize;

use crate::client::Call;
use crate::{AttioClient, AttioError};

/// The actor type whose id is a workspace member id
/// (<https://docs.attio.com/docs/actors>).
pub const WORKSPACE_MEMBER: &str = "workspace-member";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkspaceMemberId {
    pub workspace_id: String,
    pub workspace_member_id: String,
}

/// A workspace member as Attio returns it. Its email is personal data: callers log the member
/// id, not the address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WorkspaceMember {
    pub id: WorkspaceMemberId,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    pub email_address: String,
    /// `admin`, `member` or `suspended`.
    #[serde(default)]
    pub access_level: Option<String>,
}

impl AttioClient {
    /// `GET /workspace_members/{workspace_member_id}`; [`AttioError::NotFound`] for an id
    /// Attio does not know.
    pub async fn get_workspace_member(
        &self,
        workspace_member_id: &str,
    ) -> Result<WorkspaceMember, AttioError> {
        self.call(Call::get(
            &["workspace_members", workspace_member_id],
            "workspace_members",
        ))
        .await
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::{AttioApi, AttioConfig};

    #[tokio::test]
    async fn reads_a_member_and_answers_not_found_for_an_unknown_id() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/workspace_members/m1"))
            .and(header("authorization", "Bearer t"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": {
                    "id": {"workspace_id": "ws", "workspace_member_id": "m1"},
                    "first_name": "Susan", "last_name": "Kare", "avatar_url": null,
                    "email_address": "susan@example.com",
                    "created_at": "2022-11-21T13:22:49.061281000Z", "access_level": "suspended"
                }})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/workspace_members/gone"))
            .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
                "status_code": 404, "type": "invalid_request_error", "code": "not_found",
                "message": "Workspace member not found"
            })))
            .mount(&server)
            .await;
        let mut config = AttioConfig::new("t");
        config.base_url = server.uri();
        let client = AttioClient::new(config).expect("client");
        let member = AttioApi::workspace_member(&client, "m1")
            .await
            .expect("member");
        assert_eq!(member.email_address, "susan@example.com");
        assert_eq!(member.access_level.as_deref(), Some("suspended"));
        let gone = client.get_workspace_member("gone").await.unwrap_err();
        assert!(matches!(gone, AttioError::NotFound { .. }), "{gone:?}");
    }

    #[test]
    fn decodes_the_documented_answer() {
        let member: WorkspaceMember = serde_json::from_value(serde_json::json!({
            "id": {
                "workspace_id": "14beef7a-99f7-4534-a87e-70b564330a4c",
                "workspace_member_id": "50cf242c-7fa3-4cad-87d0-75b1af71c57b"
            },
            "first_name": "Susan",
            "last_name": "Kare",
            "avatar_url": "https://example.com/a.png",
            "email_address": "susan.kare@example.com",
            "created_at": "2022-11-21T13:22:49.061281000Z",
            "access_level": "member"
        }))
        .expect("member");
        assert_eq!(member.email_address, "susan.kare@example.com");
        assert_eq!(
            member.id.workspace_member_id,
            "50cf242c-7fa3-4cad-87d0-75b1af71c57b"
        );
        assert_eq!(member.access_level.as_deref(), Some("member"));
    }
}

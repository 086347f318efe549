//! The token on every HubSpot call, and what a 401 does.
//!
//! A private app's token can be rotated and the old one expired at once ("Rotate and expire
//! this token now", <https://developers.hubspot.com/docs/apps/legacy-apps/private-apps/overview>).
//! A warm container must not keep sending the old one: the token is read per call from its
//! [`relay_credentials::Credential`] (cached for a TTL), and a 401 — HubSpot refusing the token
//! (<https://developers.hubspot.com/docs/api-reference/error-handling>) — re-reads it once and
//! sends the call again with the new one. A refused request changed nothing, so resending is
//! safe even for a create. When the store still holds the refused token, the 401 stands and
//! the caller's failure rule holds the message (`ErrorClass::Auth`).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{HubSpotSink, Replay};
use crate::CrmError;

impl HubSpotSink {
    /// [`Self::call`] that hands every final answer back, 4xx included (a batch upsert reads
    /// the refusal's `context` to find the input and the existing object).
    pub(super) async fn call_raw(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), CrmError> {
        self.call_replaying(operation, method, path, body, Replay::Safe)
            .await
    }

    /// One call, retried as `replay` allows (a create is never replayed after it may have been
    /// applied), and sent once more with a re-read token after a 401.
    pub(super) async fn call_replaying(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        replay: Replay,
    ) -> Result<(StatusCode, Value), CrmError> {
        let token = self.config.token.current().await;
        let answer = self
            .send(&token, operation, method.clone(), path, body, replay)
            .await?;
        if answer.0 != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        match self.config.token.after_rejection(&token).await {
            Some(fresh) => {
                self.send(&fresh, operation, method, path, body, replay)
                    .await
            }
            None => Ok(answer),
        }
    }
}

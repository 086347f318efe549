//! The API tokens' store in Lambda: a Secrets Manager secret holding the token as plain text
//! (the SAM template's `attio-api-token` and `hubspot-token` secrets, named by
//! `ATTIO_API_TOKEN_SECRET_ARN` and `HUBSPOT_TOKEN_SECRET_ARN`). Read at cold start, again
//! every `TOKEN_CACHE_SECS`, and at once when an API answers 401 ([`relay_credentials`]).
//! `GetSecretValue` returns the `AWSCURRENT` version unless asked otherwise
//! (<https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html>),
//! so a `put-secret-value` is what the next read sees.

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use relay_credentials::{ReadFuture, StoreError, Token, TokenStore};

/// One secret, read with the function's role.
#[derive(Debug, Clone)]
pub struct SecretsManagerToken {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretsManagerToken {
    pub fn new(client: aws_sdk_secretsmanager::Client, arn: impl Into<String>) -> Self {
        Self {
            client,
            arn: arn.into(),
        }
    }
}

impl TokenStore for SecretsManagerToken {
    fn read(&self) -> ReadFuture<'_> {
        Box::pin(async move {
            let out = self
                .client
                .get_secret_value()
                .secret_id(&self.arn)
                .send()
                .await
                .map_err(|e| unavailable(&self.arn, e.into_service_error()))?;
            // The SDK's output redacts the value in Debug; only the text is kept here.
            Token::parse(out.secret_string().unwrap_or_default())
        })
    }

    fn describe(&self) -> String {
        format!("secret {}", self.arn)
    }
}

/// A missing secret or a role without access stays so until someone acts; throttling and
/// service errors may pass.
fn unavailable(arn: &str, err: GetSecretValueError) -> StoreError {
    let transient = !matches!(
        err,
        GetSecretValueError::ResourceNotFoundException(_)
            | GetSecretValueError::InvalidParameterException(_)
            | GetSecretValueError::InvalidRequestException(_)
            | GetSecretValueError::DecryptionFailure(_)
    ) && err.meta().code() != Some("AccessDeniedException");
    StoreError::Unavailable {
        message: format!("cannot read secret {arn}: {err}"),
        transient,
    }
}

//! Tenant documents kept in AWS Secrets Manager.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use webhook_core::tenants::SecretReader;

pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    pub fn new(aws: &aws_config::SdkConfig) -> Self {
        SecretsManager {
            client: aws_sdk_secretsmanager::Client::new(aws),
        }
    }
}

#[async_trait]
impl SecretReader for SecretsManager {
    async fn read(&self, secret_id: &str) -> Result<String, String> {
        let secret = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| format!("secret {secret_id}: {}", DisplayErrorContext(&e)))?;
        secret
            .secret_string()
            .map(str::to_string)
            .ok_or_else(|| format!("secret {secret_id} has no string value"))
    }
}

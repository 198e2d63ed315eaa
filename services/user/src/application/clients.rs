use std::sync::Arc;

use super::ports::{AccessToken, TokenIssuer};
use crate::domain::ServiceClient;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An unknown client or a wrong secret: one answer for both.
    #[error("the client id or secret is wrong")]
    InvalidClient,
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// The client credentials grant: a service of the fleet proves who it is and gets a token for
/// the one service it may call.
#[derive(Clone)]
pub struct ServiceClients<I> {
    clients: Arc<Vec<ServiceClient>>,
    issuer: I,
}

impl<I: TokenIssuer> ServiceClients<I> {
    pub fn new(clients: Vec<ServiceClient>, issuer: I) -> Self {
        Self {
            clients: Arc::new(clients),
            issuer,
        }
    }

    pub async fn issue_token(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<(AccessToken, &'static str), ClientError> {
        let Some(client) = self
            .clients
            .iter()
            .find(|c| c.id == client_id && c.has_secret(secret))
        else {
            tracing::warn!(client_id, "client credentials refused");
            return Err(ClientError::InvalidClient);
        };
        let token = self
            .issuer
            .issue_for_service(client)
            .await
            .map_err(ClientError::Internal)?;
        tracing::info!(
            client_id,
            audience = client.audience,
            "service token issued"
        );
        Ok((token, client.scope))
    }
}

//! Client operations: listing, reading, creating, replacing and deleting a
//! realm's clients, and reading or regenerating a client's secret.

use federa_protocol::Secret;

use super::{mask_client, not_found, AdminService};
use crate::error::BrokerError;
use crate::repr::ClientRepresentation;
use crate::validate::{self, MASK};

impl AdminService {
    /// The realm's clients, secrets masked, optionally only `client_id`.
    pub async fn list_clients(
        &self,
        realm: &str,
        client_id: Option<&str>,
    ) -> Result<Vec<ClientRepresentation>, BrokerError> {
        self.realm(realm).await?;
        let all = self.store.list_clients(realm).await?;
        Ok(all
            .into_iter()
            .filter(|c| client_id.is_none_or(|id| c.client_id.as_deref() == Some(id)))
            .map(mask_client)
            .collect())
    }

    /// One client, with its secret (as Keycloak shows it to admins).
    pub async fn get_client(&self, realm: &str, id: &str) -> Result<ClientRepresentation, BrokerError> {
        self.realm(realm).await?;
        self.store.get_client(realm, id).await?.ok_or_else(|| not_found("client", id))
    }

    /// Creates a client; returns its internal id.
    pub async fn create_client(&self, realm: &str, mut c: ClientRepresentation) -> Result<String, BrokerError> {
        self.writable_realm(realm).await?;
        validate::client(&mut c, "")?;
        let cid = c.client_id.clone().unwrap_or_default();
        if self.store.list_clients(realm).await?.iter().any(|x| x.client_id.as_deref() == Some(&cid)) {
            return Err(BrokerError::Conflict(format!("clientId {cid:?} already exists in realm {realm:?}")));
        }
        let id = c.id.clone().unwrap_or_default();
        if self.store.get_client(realm, &id).await?.is_some() {
            return Err(BrokerError::Conflict(format!("id {id:?} already exists")));
        }
        self.store.create_client(realm, &c).await?;
        self.audit(Some(realm), "ADMIN_CREATE", format!("clients/{id}")).await;
        Ok(id)
    }

    /// Replaces a client; a masked secret keeps the stored one.
    pub async fn update_client(&self, realm: &str, id: &str, mut c: ClientRepresentation) -> Result<(), BrokerError> {
        self.writable_realm(realm).await?;
        let existing = self.store.get_client(realm, id).await?.ok_or_else(|| not_found("client", id))?;
        if c.id.as_deref().is_some_and(|x| x != id) {
            return Err(BrokerError::invalid("id", "does not match the path"));
        }
        c.id = Some(id.to_owned());
        if c.secret.as_deref() == Some(MASK) || (c.secret.is_none() && c.public_client != Some(true)) {
            c.secret = existing.secret.clone();
        }
        validate::client(&mut c, "")?;
        let cid = c.client_id.clone().unwrap_or_default();
        if self
            .store
            .list_clients(realm)
            .await?
            .iter()
            .any(|x| x.client_id.as_deref() == Some(&cid) && x.id.as_deref() != Some(id))
        {
            return Err(BrokerError::Conflict(format!("clientId {cid:?} already exists in realm {realm:?}")));
        }
        self.store.update_client(realm, &c).await?;
        self.audit(Some(realm), "ADMIN_UPDATE", format!("clients/{id}")).await;
        Ok(())
    }

    /// Deletes a client.
    pub async fn delete_client(&self, realm: &str, id: &str) -> Result<(), BrokerError> {
        self.writable_realm(realm).await?;
        self.store.get_client(realm, id).await?.ok_or_else(|| not_found("client", id))?;
        self.store.delete_client(realm, id).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("clients/{id}")).await;
        Ok(())
    }

    /// A client's secret.
    pub async fn client_secret(&self, realm: &str, id: &str) -> Result<Secret, BrokerError> {
        let c = self.get_client(realm, id).await?;
        c.secret.map(Secret::new).ok_or_else(|| BrokerError::invalid("publicClient", "a public client has no secret"))
    }

    /// Generates a new secret for a confidential client.
    pub async fn regenerate_client_secret(&self, realm: &str, id: &str) -> Result<Secret, BrokerError> {
        self.writable_realm(realm).await?;
        let mut c = self.store.get_client(realm, id).await?.ok_or_else(|| not_found("client", id))?;
        if c.client_authenticator_type.as_deref() == Some("client-jwt") {
            return Err(BrokerError::invalid("clientAuthenticatorType", "a client-jwt client has keys, not a secret"));
        }
        if c.secret.is_none() {
            return Err(BrokerError::invalid("publicClient", "a public client has no secret"));
        }
        let secret = crate::keys::random_secret();
        c.secret = Some(secret.clone());
        self.store.update_client(realm, &c).await?;
        self.audit(Some(realm), "ADMIN_UPDATE", format!("clients/{id}/client-secret")).await;
        Ok(Secret::new(secret))
    }
}

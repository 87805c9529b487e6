//! Upstream identity provider operations: the providers themselves (their
//! client secrets masked in every read) and their mappers.

use super::{mask_idp, not_found, AdminService};
use crate::error::BrokerError;
use crate::repr::{IdentityProviderMapperRepresentation, IdentityProviderRepresentation};
use crate::validate::{self, MASK};

impl AdminService {
    /// The realm's upstream providers, secrets masked.
    pub async fn list_idps(&self, realm: &str) -> Result<Vec<IdentityProviderRepresentation>, BrokerError> {
        self.realm(realm).await?;
        Ok(self.store.list_idps(realm).await?.into_iter().map(mask_idp).collect())
    }

    /// One upstream provider, secret masked.
    pub async fn get_idp(&self, realm: &str, alias: &str) -> Result<IdentityProviderRepresentation, BrokerError> {
        self.realm(realm).await?;
        let idp = self.store.get_idp(realm, alias).await?.ok_or_else(|| not_found("identity provider", alias))?;
        Ok(mask_idp(idp))
    }

    /// Creates an upstream provider; returns its alias.
    pub async fn create_idp(&self, realm: &str, mut p: IdentityProviderRepresentation) -> Result<String, BrokerError> {
        self.writable_realm(realm).await?;
        validate::identity_provider(&mut p, "")?;
        if p.config.get("clientSecret").is_some_and(|s| s == MASK) {
            return Err(BrokerError::invalid("config.clientSecret", "is the mask, not a secret"));
        }
        let alias = p.alias.clone().unwrap_or_default();
        if self.store.get_idp(realm, &alias).await?.is_some() {
            return Err(BrokerError::Conflict(format!("identity provider alias {alias:?} already exists")));
        }
        self.store.create_idp(realm, &p).await?;
        self.audit(Some(realm), "ADMIN_CREATE", format!("identity-provider/instances/{alias}")).await;
        Ok(alias)
    }

    /// Replaces an upstream provider; a masked secret keeps the stored one.
    pub async fn update_idp(
        &self,
        realm: &str,
        alias: &str,
        mut p: IdentityProviderRepresentation,
    ) -> Result<(), BrokerError> {
        self.writable_realm(realm).await?;
        let existing = self.store.get_idp(realm, alias).await?.ok_or_else(|| not_found("identity provider", alias))?;
        if p.alias.as_deref().is_some_and(|a| a != alias) {
            return Err(BrokerError::invalid("alias", "an identity provider cannot be renamed"));
        }
        p.alias = Some(alias.to_owned());
        p.internal_id = existing.internal_id.clone();
        if p.config.get("clientSecret").is_some_and(|s| s == MASK) {
            match existing.config.get("clientSecret") {
                Some(s) => p.config.insert("clientSecret".into(), s.clone()),
                None => p.config.remove("clientSecret"),
            };
        }
        validate::identity_provider(&mut p, "")?;
        self.store.update_idp(realm, &p).await?;
        self.audit(Some(realm), "ADMIN_UPDATE", format!("identity-provider/instances/{alias}")).await;
        Ok(())
    }

    /// Deletes an upstream provider, its mappers and its links.
    pub async fn delete_idp(&self, realm: &str, alias: &str) -> Result<(), BrokerError> {
        self.writable_realm(realm).await?;
        self.store.get_idp(realm, alias).await?.ok_or_else(|| not_found("identity provider", alias))?;
        self.store.delete_idp(realm, alias).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("identity-provider/instances/{alias}")).await;
        Ok(())
    }

    pub(super) async fn idp_exists(&self, realm: &str, alias: &str) -> Result<(), BrokerError> {
        self.realm(realm).await?;
        self.store.get_idp(realm, alias).await?.ok_or_else(|| not_found("identity provider", alias))?;
        Ok(())
    }

    /// A provider's mappers.
    pub async fn list_mappers(
        &self,
        realm: &str,
        alias: &str,
    ) -> Result<Vec<IdentityProviderMapperRepresentation>, BrokerError> {
        self.idp_exists(realm, alias).await?;
        Ok(self.store.list_mappers(realm, alias).await?)
    }

    /// One mapper.
    pub async fn get_mapper(
        &self,
        realm: &str,
        alias: &str,
        id: &str,
    ) -> Result<IdentityProviderMapperRepresentation, BrokerError> {
        self.idp_exists(realm, alias).await?;
        self.store.get_mapper(realm, alias, id).await?.ok_or_else(|| not_found("mapper", id))
    }

    /// Creates a mapper; returns its id.
    pub async fn create_mapper(
        &self,
        realm: &str,
        alias: &str,
        mut m: IdentityProviderMapperRepresentation,
    ) -> Result<String, BrokerError> {
        self.writable_realm(realm).await?;
        self.idp_exists(realm, alias).await?;
        if m.identity_provider_alias.as_deref().is_some_and(|a| a != alias) {
            return Err(BrokerError::invalid("identityProviderAlias", "does not match the path"));
        }
        m.identity_provider_alias = Some(alias.to_owned());
        validate::mapper(&mut m, "")?;
        let existing = self.store.list_mappers(realm, alias).await?;
        if existing.iter().any(|x| x.name == m.name) {
            return Err(BrokerError::Conflict(format!("mapper name {:?} already exists", m.name)));
        }
        let id = m.id.clone().unwrap_or_default();
        self.store.create_mapper(realm, &m).await?;
        self.audit(Some(realm), "ADMIN_CREATE", format!("identity-provider/instances/{alias}/mappers/{id}")).await;
        Ok(id)
    }

    /// Replaces a mapper.
    pub async fn update_mapper(
        &self,
        realm: &str,
        alias: &str,
        id: &str,
        mut m: IdentityProviderMapperRepresentation,
    ) -> Result<(), BrokerError> {
        self.writable_realm(realm).await?;
        self.get_mapper(realm, alias, id).await?;
        if m.id.as_deref().is_some_and(|x| x != id) {
            return Err(BrokerError::invalid("id", "does not match the path"));
        }
        if m.identity_provider_alias.as_deref().is_some_and(|a| a != alias) {
            return Err(BrokerError::invalid("identityProviderAlias", "does not match the path"));
        }
        m.id = Some(id.to_owned());
        m.identity_provider_alias = Some(alias.to_owned());
        validate::mapper(&mut m, "")?;
        let existing = self.store.list_mappers(realm, alias).await?;
        if existing.iter().any(|x| x.name == m.name && x.id.as_deref() != Some(id)) {
            return Err(BrokerError::Conflict(format!("mapper name {:?} already exists", m.name)));
        }
        self.store.update_mapper(realm, &m).await?;
        self.audit(Some(realm), "ADMIN_UPDATE", format!("identity-provider/instances/{alias}/mappers/{id}")).await;
        Ok(())
    }

    /// Deletes a mapper.
    pub async fn delete_mapper(&self, realm: &str, alias: &str, id: &str) -> Result<(), BrokerError> {
        self.writable_realm(realm).await?;
        self.get_mapper(realm, alias, id).await?;
        self.store.delete_mapper(realm, alias, id).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("identity-provider/instances/{alias}/mappers/{id}")).await;
        Ok(())
    }
}

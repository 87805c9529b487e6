//! User operations: realm roles, users, their realm role mappings and their
//! links to upstream accounts.

use super::{not_found, AdminService};
use crate::error::BrokerError;
use crate::flow::sessions::UserSession;
use crate::repr::{FederatedIdentityRepresentation, RoleRepresentation, UserRepresentation, UserSessionRepresentation};
use crate::store::UserQuery;
use crate::validate;

impl AdminService {
    /// Realm roles.
    pub async fn list_roles(&self, realm: &str) -> Result<Vec<RoleRepresentation>, BrokerError> {
        self.realm(realm).await?;
        Ok(self.store.list_roles(realm).await?)
    }

    /// Creates a realm role; returns its name.
    pub async fn create_role(&self, realm: &str, mut r: RoleRepresentation) -> Result<String, BrokerError> {
        self.writable_realm(realm).await?;
        validate::role(&mut r, "")?;
        let name = r.name.clone().unwrap_or_default();
        if self.store.list_roles(realm).await?.iter().any(|x| x.name.as_deref() == Some(&name)) {
            return Err(BrokerError::Conflict(format!("role {name:?} already exists")));
        }
        self.store.create_role(realm, &r).await?;
        self.audit(Some(realm), "ADMIN_CREATE", format!("roles/{name}")).await;
        Ok(name)
    }

    /// Searches users.
    pub async fn search_users(&self, realm: &str, q: UserQuery) -> Result<Vec<UserRepresentation>, BrokerError> {
        self.realm(realm).await?;
        if q.first < 0 {
            return Err(BrokerError::invalid("first", "may not be negative"));
        }
        if q.max < 0 {
            return Err(BrokerError::invalid("max", "may not be negative"));
        }
        Ok(self.store.search_users(realm, &q).await?)
    }

    /// One user.
    pub async fn get_user(&self, realm: &str, id: &str) -> Result<UserRepresentation, BrokerError> {
        self.realm(realm).await?;
        self.store.get_user(realm, id).await?.ok_or_else(|| not_found("user", id))
    }

    async fn username_taken(&self, realm: &str, username: &str, except: Option<&str>) -> Result<bool, BrokerError> {
        let q = UserQuery { username: Some(username.to_owned()), first: 0, max: 2, exact: true, ..Default::default() };
        let found = self.store.search_users(realm, &q).await?;
        Ok(found.iter().any(|u| u.username.as_deref() == Some(username) && u.id.as_deref() != except))
    }

    /// Creates a user (users stay writable in file realms: sign-ins create them).
    pub async fn create_user(&self, realm: &str, mut u: UserRepresentation) -> Result<String, BrokerError> {
        self.realm(realm).await?;
        validate::user(&mut u, "", (self.clock)() * 1000)?;
        let roles = u.realm_roles.take();
        let links = u.federated_identities.take();
        if u.client_roles.take().is_some_and(|r| !r.is_empty()) {
            return Err(BrokerError::invalid("clientRoles", "grant client roles through role-mappings/clients"));
        }
        if roles.is_some_and(|r| !r.is_empty()) || links.is_some_and(|l| !l.is_empty()) {
            return Err(BrokerError::invalid(
                "realmRoles",
                "grant roles and links through role-mappings and federated-identity",
            ));
        }
        let username = u.username.clone().unwrap_or_default();
        if self.username_taken(realm, &username, None).await? {
            return Err(BrokerError::Conflict(format!("username {username:?} already exists")));
        }
        let id = u.id.clone().unwrap_or_default();
        if self.store.get_user(realm, &id).await?.is_some() {
            return Err(BrokerError::Conflict(format!("id {id:?} already exists")));
        }
        self.store.create_user(realm, &u).await?;
        self.audit(Some(realm), "ADMIN_CREATE", format!("users/{id}")).await;
        Ok(id)
    }

    /// Updates a user; absent fields keep their stored values, as in Keycloak.
    pub async fn update_user(&self, realm: &str, id: &str, u: UserRepresentation) -> Result<(), BrokerError> {
        let mut merged = self.get_user(realm, id).await?;
        if u.id.as_deref().is_some_and(|x| x != id) {
            return Err(BrokerError::invalid("id", "does not match the path"));
        }
        macro_rules! merge {
            ($($f:ident),*) => { $(if u.$f.is_some() { merged.$f = u.$f.clone(); })* };
        }
        merge!(username, email, email_verified, first_name, last_name, enabled, attributes);
        validate::user(&mut merged, "", 0)?;
        let username = merged.username.clone().unwrap_or_default();
        if self.username_taken(realm, &username, Some(id)).await? {
            return Err(BrokerError::Conflict(format!("username {username:?} already exists")));
        }
        self.store.update_user(realm, &merged).await?;
        self.audit(Some(realm), "ADMIN_UPDATE", format!("users/{id}")).await;
        Ok(())
    }

    /// Deletes a user.
    pub async fn delete_user(&self, realm: &str, id: &str) -> Result<(), BrokerError> {
        self.get_user(realm, id).await?;
        self.store.delete_user(realm, id).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("users/{id}")).await;
        Ok(())
    }

    /// A user's realm roles.
    pub async fn user_roles(&self, realm: &str, id: &str) -> Result<Vec<RoleRepresentation>, BrokerError> {
        self.get_user(realm, id).await?;
        Ok(self.store.user_roles(realm, id).await?)
    }

    async fn role_names(&self, realm: &str, roles: &[RoleRepresentation]) -> Result<Vec<String>, BrokerError> {
        let known = self.store.list_roles(realm).await?;
        let mut names = Vec::new();
        for (i, r) in roles.iter().enumerate() {
            let found = known
                .iter()
                .find(|k| (r.id.is_some() && k.id == r.id) || (r.id.is_none() && r.name.is_some() && k.name == r.name));
            match found.and_then(|k| k.name.clone()) {
                Some(n) => names.push(n),
                None if r.id.is_none() && r.name.is_none() => {
                    return Err(BrokerError::invalid(format!("[{i}].name"), "is required"))
                }
                None => {
                    return Err(BrokerError::NotFound(format!(
                        "role {:?} not found",
                        r.name.as_deref().or(r.id.as_deref()).unwrap_or_default()
                    )))
                }
            }
        }
        Ok(names)
    }

    /// Grants realm roles.
    pub async fn grant_roles(&self, realm: &str, id: &str, roles: &[RoleRepresentation]) -> Result<(), BrokerError> {
        self.get_user(realm, id).await?;
        let names = self.role_names(realm, roles).await?;
        self.store.grant_roles(realm, id, &names).await?;
        self.audit(Some(realm), "ADMIN_CREATE", format!("users/{id}/role-mappings/realm")).await;
        Ok(())
    }

    /// Revokes realm roles.
    pub async fn revoke_roles(&self, realm: &str, id: &str, roles: &[RoleRepresentation]) -> Result<(), BrokerError> {
        self.get_user(realm, id).await?;
        let names = self.role_names(realm, roles).await?;
        self.store.revoke_roles(realm, id, &names).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("users/{id}/role-mappings/realm")).await;
        Ok(())
    }

    /// The clientId a role-mapping path names: the internal id of a client
    /// of the realm (Keycloak's paths), else the clientId itself, since the
    /// `broker` client whose `read-token` Federa knows has no row.
    async fn client_of_path(&self, realm: &str, client: &str) -> Result<String, BrokerError> {
        Ok(match self.store.get_client(realm, client).await? {
            Some(c) => c.client_id.unwrap_or_default(),
            None => client.to_owned(),
        })
    }

    /// The names of client roles in a request body, each one Federa knows.
    fn client_role_names(client_id: &str, roles: &[RoleRepresentation]) -> Result<Vec<String>, BrokerError> {
        let mut names = Vec::new();
        for (i, r) in roles.iter().enumerate() {
            let name = r.name.clone().ok_or_else(|| BrokerError::invalid(format!("[{i}].name"), "is required"))?;
            if !crate::model::client_roles::is_known(client_id, &name) {
                return Err(BrokerError::NotFound(format!("role {name:?} of client {client_id:?} not found")));
            }
            names.push(name);
        }
        Ok(names)
    }

    /// A user's roles of a client (`GET .../role-mappings/clients/{client}`).
    pub async fn user_client_roles(
        &self,
        realm: &str,
        id: &str,
        client: &str,
    ) -> Result<Vec<RoleRepresentation>, BrokerError> {
        self.get_user(realm, id).await?;
        let client_id = self.client_of_path(realm, client).await?;
        let names = self.store.user_client_roles(realm, id, &client_id).await?;
        Ok(names
            .into_iter()
            .map(|n| RoleRepresentation { id: Some(format!("{client_id}/{n}")), name: Some(n), ..Default::default() })
            .collect())
    }

    /// Grants client roles.
    pub async fn grant_client_roles(
        &self,
        realm: &str,
        id: &str,
        client: &str,
        roles: &[RoleRepresentation],
    ) -> Result<(), BrokerError> {
        self.get_user(realm, id).await?;
        let client_id = self.client_of_path(realm, client).await?;
        let names = Self::client_role_names(&client_id, roles)?;
        self.store.grant_client_roles(realm, id, &client_id, &names).await?;
        self.audit(Some(realm), "ADMIN_CREATE", format!("users/{id}/role-mappings/clients/{client_id}")).await;
        Ok(())
    }

    /// Revokes client roles.
    pub async fn revoke_client_roles(
        &self,
        realm: &str,
        id: &str,
        client: &str,
        roles: &[RoleRepresentation],
    ) -> Result<(), BrokerError> {
        self.get_user(realm, id).await?;
        let client_id = self.client_of_path(realm, client).await?;
        let names = Self::client_role_names(&client_id, roles)?;
        self.store.revoke_client_roles(realm, id, &client_id, &names).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("users/{id}/role-mappings/clients/{client_id}")).await;
        Ok(())
    }

    /// A user's upstream links.
    pub async fn list_links(&self, realm: &str, id: &str) -> Result<Vec<FederatedIdentityRepresentation>, BrokerError> {
        self.get_user(realm, id).await?;
        Ok(self.store.list_links(realm, id).await?)
    }

    /// Links a user to an upstream account.
    pub async fn create_link(
        &self,
        realm: &str,
        id: &str,
        alias: &str,
        mut link: FederatedIdentityRepresentation,
    ) -> Result<(), BrokerError> {
        self.get_user(realm, id).await?;
        self.idp_exists(realm, alias).await?;
        if link.identity_provider.as_deref().is_some_and(|a| a != alias) {
            return Err(BrokerError::invalid("identityProvider", "does not match the path"));
        }
        link.identity_provider = Some(alias.to_owned());
        validate::federated_identity(&link, "")?;
        if self.store.list_links(realm, id).await?.iter().any(|l| l.identity_provider.as_deref() == Some(alias)) {
            return Err(BrokerError::Conflict(format!("user is already linked to {alias:?}")));
        }
        let subject = link.user_id.clone().unwrap_or_default();
        if self.store.find_user_by_link(realm, alias, &subject).await?.is_some() {
            return Err(BrokerError::Conflict(format!("upstream account {subject:?} of {alias:?} is already linked")));
        }
        self.store.create_link(realm, id, &link, None).await?;
        self.audit(Some(realm), "ADMIN_CREATE", format!("users/{id}/federated-identity/{alias}")).await;
        Ok(())
    }

    /// Removes a link.
    pub async fn delete_link(&self, realm: &str, id: &str, alias: &str) -> Result<(), BrokerError> {
        self.get_user(realm, id).await?;
        if !self.store.list_links(realm, id).await?.iter().any(|l| l.identity_provider.as_deref() == Some(alias)) {
            return Err(not_found("federated identity", alias));
        }
        self.store.delete_link(realm, id, alias).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("users/{id}/federated-identity/{alias}")).await;
        Ok(())
    }
}

/// A user's SSO session as Keycloak's admin API shows it.
pub fn user_session_representation(user: &UserRepresentation, s: &UserSession) -> UserSessionRepresentation {
    let start = s.sso.started() * 1000;
    UserSessionRepresentation {
        id: s.id.clone(),
        username: user.username.clone().unwrap_or_default(),
        user_id: s.sso.user_id.clone(),
        ip_address: s.sso.ip_address.clone(),
        start,
        last_access: s.sso.last_access() * 1000,
        clients: s.clients.iter().map(|c| (c.clone(), c.clone())).collect(),
    }
}

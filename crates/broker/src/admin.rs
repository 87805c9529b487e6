//! The admin operations: what the admin API, realm files and `federa import`
//! do to a realm. Rules live here once: validation, read-only file realms,
//! uniqueness, secret masking, signing keys for new realms, audit events.

use std::collections::BTreeSet;
use std::sync::Arc;

use federa_protocol::Secret;

use crate::error::BrokerError;
use crate::keys::generate_signing_key;
use crate::repr::{
    ClientRepresentation, FederatedIdentityRepresentation, IdentityProviderMapperRepresentation,
    IdentityProviderRepresentation, RealmRepresentation, RoleRepresentation, UserRepresentation,
};
use crate::store::{AuditEvent, RealmBundle, RealmRecord, Store, UserImport, UserQuery};
use crate::validate::{self, MASK};

/// Where a realm comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealmSource {
    /// The admin API or `federa import`: writable through the API.
    Api,
    /// A file in `realms.import_dir`: read-only through the API.
    File {
        /// The file's path, shown in refusals.
        path: String,
        /// A digest of its content.
        digest: String,
    },
}

/// What importing a realm did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The realm was created.
    Created,
    /// A file realm's configuration was replaced.
    Updated,
    /// A file realm was already loaded from the same content.
    Unchanged,
}

/// The admin operations over a [`Store`].
#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    clock: fn() -> i64,
    epoch: crate::flow::cache::ConfigEpoch,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn not_found(what: &str, name: &str) -> BrokerError {
    BrokerError::NotFound(format!("{what} {name:?} not found"))
}

/// Hides an identity provider's client secret, as Keycloak does in every read.
pub fn mask_idp(mut idp: IdentityProviderRepresentation) -> IdentityProviderRepresentation {
    if let Some(s) = idp.config.get_mut("clientSecret") {
        if !s.is_empty() {
            *s = MASK.to_owned();
        }
    }
    idp
}

/// Hides a client's secret, for list responses.
pub fn mask_client(mut c: ClientRepresentation) -> ClientRepresentation {
    if c.secret.is_some() {
        c.secret = Some(MASK.to_owned());
    }
    c
}

impl AdminService {
    /// An admin service over a store.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, clock: now, epoch: Default::default() }
    }

    /// The configuration epoch, bumped by every write; sign-in caches watch it.
    pub fn config_epoch(&self) -> crate::flow::cache::ConfigEpoch {
        self.epoch.clone()
    }

    /// The store, for the parts of Federa that read it directly.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn audit(&self, realm: Option<&str>, kind: &str, resource: String) {
        // Every successful write ends here: caches of configuration go stale.
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let event = AuditEvent {
            realm: realm.map(str::to_owned),
            kind: kind.to_owned(),
            resource,
            details: serde_json::Value::Null,
            time: (self.clock)(),
        };
        if let Err(e) = self.store.audit(event).await {
            log::warn!("could not record an audit event: {e}");
        }
    }

    /// The realm, or 404.
    async fn realm(&self, realm: &str) -> Result<RealmRecord, BrokerError> {
        self.store.get_realm(realm).await?.ok_or_else(|| not_found("realm", realm))
    }

    /// The realm, or 404, or 403 when a realm file declares it.
    async fn writable_realm(&self, realm: &str) -> Result<RealmRecord, BrokerError> {
        let r = self.realm(realm).await?;
        match &r.managed_by {
            Some(file) => Err(BrokerError::ReadOnly { realm: realm.to_owned(), file: file.clone() }),
            None => Ok(r),
        }
    }

    /// Validates a whole realm representation into a bundle, collecting the
    /// names of everything ignored into `ignored`.
    pub fn prepare_realm(
        &self,
        repr: RealmRepresentation,
        source: &RealmSource,
        ignored: &mut Vec<String>,
    ) -> Result<RealmBundle, BrokerError> {
        prepare_realm(repr, source, ignored, (self.clock)())
    }

    /// Creates a realm with everything nested in it, in one transaction.
    /// Returns the realm's name and the names of ignored fields.
    pub async fn create_realm(
        &self,
        repr: RealmRepresentation,
        source: RealmSource,
    ) -> Result<(String, Vec<String>), BrokerError> {
        let mut ignored = Vec::new();
        let bundle = self.prepare_realm(repr, &source, &mut ignored)?;
        let name = bundle.realm.repr.realm.clone().unwrap_or_default();
        if self.store.get_realm(&name).await?.is_some() {
            return Err(BrokerError::Conflict(format!("realm {name:?} already exists")));
        }
        self.store.create_realm(bundle).await?;
        self.audit(Some(&name), "ADMIN_CREATE", format!("realms/{name}")).await;
        Ok((name, ignored))
    }

    /// Loads a realm file: creates the realm, or replaces the configuration of
    /// a realm the same file declared before. A realm created through the API
    /// is never overwritten by a file.
    pub async fn load_realm_file(
        &self,
        repr: RealmRepresentation,
        path: &str,
        digest: &str,
    ) -> Result<(String, ImportOutcome, Vec<String>), BrokerError> {
        let source = RealmSource::File { path: path.to_owned(), digest: digest.to_owned() };
        let mut ignored = Vec::new();
        let name = repr.realm.clone().unwrap_or_default();
        match self.store.get_realm(name.trim()).await? {
            None => {
                let (name, ignored) = self.create_realm(repr, source).await?;
                Ok((name, ImportOutcome::Created, ignored))
            }
            Some(existing) if existing.managed_by.is_none() => Err(BrokerError::Conflict(format!(
                "realm {name:?} exists and was created through the admin API; the file {path} does not replace it"
            ))),
            Some(existing) if existing.source_digest.as_deref() == Some(digest) => {
                Ok((name, ImportOutcome::Unchanged, ignored))
            }
            Some(existing) => {
                let mut repr = repr;
                repr.id = existing.repr.id.clone();
                let bundle = self.prepare_realm(repr, &source, &mut ignored)?;
                self.store.replace_realm_config(bundle).await?;
                self.audit(Some(&name), "REALM_FILE_RELOAD", format!("realms/{name}")).await;
                Ok((name, ImportOutcome::Updated, ignored))
            }
        }
    }

    /// All realms' own fields.
    pub async fn list_realms(&self) -> Result<Vec<RealmRepresentation>, BrokerError> {
        Ok(self.store.list_realms().await?.into_iter().map(|r| r.repr).collect())
    }

    /// One realm's own fields.
    pub async fn get_realm(&self, realm: &str) -> Result<RealmRepresentation, BrokerError> {
        Ok(self.realm(realm).await?.repr)
    }

    /// Updates a realm's own fields; nested parts in the body are ignored.
    pub async fn update_realm(&self, realm: &str, mut repr: RealmRepresentation) -> Result<(), BrokerError> {
        let existing = self.writable_realm(realm).await?;
        if repr.realm.as_deref().is_some_and(|n| n != realm) {
            return Err(BrokerError::invalid("realm", "a realm cannot be renamed"));
        }
        repr.realm = Some(realm.to_owned());
        repr.id = existing.repr.id.clone();
        if repr.default_signature_algorithm.is_none() {
            repr.default_signature_algorithm = existing.repr.default_signature_algorithm.clone();
        }
        validate::realm(&mut repr)?;
        if repr.default_signature_algorithm != existing.repr.default_signature_algorithm {
            return Err(BrokerError::invalid(
                "defaultSignatureAlgorithm",
                "changing a realm's algorithm needs key rotation, which is not supported yet",
            ));
        }
        repr.clients = None;
        repr.identity_providers = None;
        repr.identity_provider_mappers = None;
        repr.roles = None;
        repr.users = None;
        self.store.update_realm(realm, &repr).await?;
        self.audit(Some(realm), "ADMIN_UPDATE", format!("realms/{realm}")).await;
        Ok(())
    }

    /// Deletes a realm and everything in it.
    pub async fn delete_realm(&self, realm: &str) -> Result<(), BrokerError> {
        self.writable_realm(realm).await?;
        self.store.delete_realm(realm).await?;
        self.audit(Some(realm), "ADMIN_DELETE", format!("realms/{realm}")).await;
        Ok(())
    }

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
        if c.secret.is_none() {
            return Err(BrokerError::invalid("publicClient", "a public client has no secret"));
        }
        let secret = crate::keys::random_secret();
        c.secret = Some(secret.clone());
        self.store.update_client(realm, &c).await?;
        self.audit(Some(realm), "ADMIN_UPDATE", format!("clients/{id}/client-secret")).await;
        Ok(Secret::new(secret))
    }

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

    async fn idp_exists(&self, realm: &str, alias: &str) -> Result<(), BrokerError> {
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

/// Validates a whole realm representation into a bundle ready to store,
/// collecting the names of everything ignored into `ignored`. Also used by
/// `federa check-config`, which has no database.
pub fn prepare_realm(
    mut repr: RealmRepresentation,
    source: &RealmSource,
    ignored: &mut Vec<String>,
    now: i64,
) -> Result<RealmBundle, BrokerError> {
    validate::realm(&mut repr)?;
    validate::ignored_names("", &repr.ignored, ignored);

    let mut clients = Vec::new();
    let mut client_ids = BTreeSet::new();
    for (i, mut c) in repr.clients.take().unwrap_or_default().into_iter().enumerate() {
        if c.protocol.as_deref().is_some_and(|p| p != "openid-connect") {
            ignored.push(format!(
                "clients[{i}] ({}, protocol {})",
                c.client_id.as_deref().unwrap_or("?"),
                c.protocol.as_deref().unwrap_or("?")
            ));
            continue;
        }
        let prefix = format!("clients[{i}].");
        validate::client(&mut c, &prefix)?;
        validate::ignored_names(&prefix, &c.ignored, ignored);
        if !client_ids.insert(c.client_id.clone()) {
            return Err(BrokerError::Conflict(format!("{prefix}clientId {:?} appears twice", c.client_id)));
        }
        clients.push(c);
    }

    let mut idps = Vec::new();
    let mut aliases = BTreeSet::new();
    for (i, mut p) in repr.identity_providers.take().unwrap_or_default().into_iter().enumerate() {
        let prefix = format!("identityProviders[{i}].");
        validate::identity_provider(&mut p, &prefix)?;
        if p.config.get("clientSecret").is_some_and(|s| s == MASK) {
            p.config.remove("clientSecret");
        }
        validate::ignored_names(&prefix, &p.ignored, ignored);
        if !aliases.insert(p.alias.clone().unwrap_or_default()) {
            return Err(BrokerError::Conflict(format!("{prefix}alias {:?} appears twice", p.alias)));
        }
        idps.push(p);
    }

    let mut mappers = Vec::new();
    for (i, mut m) in repr.identity_provider_mappers.take().unwrap_or_default().into_iter().enumerate() {
        let prefix = format!("identityProviderMappers[{i}].");
        validate::mapper(&mut m, &prefix)?;
        let alias = m.identity_provider_alias.clone().unwrap_or_default();
        if !aliases.contains(&alias) {
            return Err(BrokerError::invalid(
                format!("{prefix}identityProviderAlias"),
                format!("no identity provider {alias:?} in this realm"),
            ));
        }
        mappers.push(m);
    }

    let mut roles = Vec::new();
    let mut role_names = BTreeSet::new();
    if let Some(r) = repr.roles.take() {
        validate::ignored_names("roles.", &r.ignored, ignored);
        for (i, mut role) in r.realm.into_iter().enumerate() {
            let prefix = format!("roles.realm[{i}].");
            validate::role(&mut role, &prefix)?;
            if role_names.insert(role.name.clone().unwrap_or_default()) {
                roles.push(role);
            }
        }
    }

    let mut users = Vec::new();
    let mut usernames = BTreeSet::new();
    for (i, mut u) in repr.users.take().unwrap_or_default().into_iter().enumerate() {
        let prefix = format!("users[{i}].");
        validate::user(&mut u, &prefix, now * 1000)?;
        validate::ignored_names(&prefix, &u.ignored, ignored);
        if !usernames.insert(u.username.clone().unwrap_or_default()) {
            return Err(BrokerError::Conflict(format!("{prefix}username {:?} appears twice", u.username)));
        }
        let mut realm_roles = Vec::new();
        for name in u.realm_roles.take().unwrap_or_default() {
            if role_names.contains(&name) {
                realm_roles.push(name);
            } else {
                ignored.push(format!("{prefix}realmRoles {name:?} (no such realm role)"));
            }
        }
        let mut links = Vec::new();
        for (j, l) in u.federated_identities.take().unwrap_or_default().into_iter().enumerate() {
            let lp = format!("{prefix}federatedIdentities[{j}].");
            validate::federated_identity(&l, &lp)?;
            if !aliases.contains(l.identity_provider.as_deref().unwrap_or_default()) {
                return Err(BrokerError::invalid(
                    format!("{lp}identityProvider"),
                    format!("no identity provider {:?} in this realm", l.identity_provider),
                ));
            }
            links.push(l);
        }
        users.push(UserImport { user: u, realm_roles, links });
    }

    let alg = repr.default_signature_algorithm.clone().unwrap_or_else(|| "RS256".into());
    let keys = vec![generate_signing_key(&alg, now)?];
    let (managed_by, source_digest) = match source {
        RealmSource::Api => (None, None),
        RealmSource::File { path, digest } => (Some(path.clone()), Some(digest.clone())),
    };
    Ok(RealmBundle {
        realm: RealmRecord { repr, managed_by, source_digest },
        clients,
        identity_providers: idps,
        mappers,
        roles,
        users,
        keys,
    })
}

//! The storage Federa needs, as traits. `storage` implements them on diesel
//! (SQLite, PostgreSQL) and Redis; the broker and `web` see only these.
//!
//! One narrow trait per area ([`RealmStore`], [`ClientStore`],
//! [`UpstreamStore`], [`UserStore`], [`KeyStore`], [`AuditStore`]), so that a
//! test double implements only the area it needs and a reader sees what a flow
//! may touch; [`Store`] is all of them together, plus a ping.

mod error;
pub mod hot;

use std::time::Duration;

use async_trait::async_trait;
use federa_protocol::Secret;

pub use self::error::{Conflict, ConflictKind, Entity, StoreError, UniqueKey};
pub use self::hot::{
    apply_changes, user_state, CodeRedeemer, EntriesFor, Entry, EntryKind, GrantRefs, IssueFor, MapUser, Profile,
    Redeemed, Redemption, RefreshRedeemer, RefreshRefs, RefreshUse, RefreshUsed, RoleChange, SignIn, SignInWriter,
    SignedIn,
};
use crate::keys::SigningKey;
use crate::repr::{
    ClientRepresentation, FederatedIdentityRepresentation, IdentityProviderMapperRepresentation,
    IdentityProviderRepresentation, RealmRepresentation, RoleRepresentation, UserRepresentation,
};

/// A realm as stored: its own fields and, for realms declared in files, the file.
#[derive(Debug, Clone, PartialEq)]
pub struct RealmRecord {
    /// The realm's own fields (no nested parts).
    pub repr: RealmRepresentation,
    /// The realm file it comes from, when it is read-only.
    pub managed_by: Option<String>,
    /// A digest of that file's content, to skip unchanged files at start.
    pub source_digest: Option<String>,
}

/// A user with the links and role names an import carries.
#[derive(Debug, Clone, PartialEq)]
pub struct UserImport {
    /// The user.
    pub user: UserRepresentation,
    /// Names of realm roles to grant.
    pub realm_roles: Vec<String>,
    /// Upstream links.
    pub links: Vec<FederatedIdentityRepresentation>,
    /// Client roles to grant, (clientId, role name).
    pub client_roles: Vec<(String, String)>,
}

/// Everything a realm holds, validated, to be written in one transaction.
#[derive(Debug)]
pub struct RealmBundle {
    /// The realm.
    pub realm: RealmRecord,
    /// Its clients (with secrets in clear; storage encrypts them).
    pub clients: Vec<ClientRepresentation>,
    /// Its upstream providers (with `config.clientSecret` in clear).
    pub identity_providers: Vec<IdentityProviderRepresentation>,
    /// Their mappers.
    pub mappers: Vec<IdentityProviderMapperRepresentation>,
    /// Realm roles.
    pub roles: Vec<RoleRepresentation>,
    /// Users.
    pub users: Vec<UserImport>,
    /// Signing keys.
    pub keys: Vec<SigningKey>,
}

/// A user search (`GET .../users`).
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Substring of the username, case-insensitive.
    pub username: Option<String>,
    /// Substring of the email, case-insensitive.
    pub email: Option<String>,
    /// Offset.
    pub first: i64,
    /// Page size.
    pub max: i64,
    /// Match username and email exactly (Keycloak's `exact=true`), which the
    /// database answers from its indexes.
    pub exact: bool,
}

/// An audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The realm, when there is one.
    pub realm: Option<String>,
    /// What happened (`ADMIN_CREATE`, `LOGIN`...).
    pub kind: String,
    /// The resource (`clients/abc`).
    pub resource: String,
    /// Details, as JSON, never holding a secret.
    pub details: serde_json::Value,
    /// When, seconds since the epoch.
    pub time: i64,
}

/// Realms: their own fields, and whole realms written or removed at once.
#[async_trait]
pub trait RealmStore: Send + Sync {
    /// All realms.
    async fn list_realms(&self) -> Result<Vec<RealmRecord>, StoreError>;
    /// One realm by name.
    async fn get_realm(&self, realm: &str) -> Result<Option<RealmRecord>, StoreError>;
    /// Creates a realm with everything in it, all or nothing.
    async fn create_realm(&self, bundle: RealmBundle) -> Result<(), StoreError>;
    /// Replaces a file-declared realm's configuration (clients, providers,
    /// mappers), adds missing roles and users, keeps keys and existing users.
    async fn replace_realm_config(&self, bundle: RealmBundle) -> Result<(), StoreError>;
    /// Updates a realm's own fields.
    async fn update_realm(&self, realm: &str, repr: &RealmRepresentation) -> Result<(), StoreError>;
    /// Deletes a realm and everything in it.
    async fn delete_realm(&self, realm: &str) -> Result<(), StoreError>;
}

/// A realm's clients (downstream applications).
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// The realm's clients.
    async fn list_clients(&self, realm: &str) -> Result<Vec<ClientRepresentation>, StoreError>;
    /// A client by its OAuth `client_id`.
    async fn find_client(&self, realm: &str, client_id: &str) -> Result<Option<ClientRepresentation>, StoreError>;
    /// A client by internal id.
    async fn get_client(&self, realm: &str, id: &str) -> Result<Option<ClientRepresentation>, StoreError>;
    /// Creates a client.
    async fn create_client(&self, realm: &str, client: &ClientRepresentation) -> Result<(), StoreError>;
    /// Replaces a client.
    async fn update_client(&self, realm: &str, client: &ClientRepresentation) -> Result<(), StoreError>;
    /// Deletes a client.
    async fn delete_client(&self, realm: &str, id: &str) -> Result<(), StoreError>;
}

/// A realm's upstream identity providers and their mappers.
#[async_trait]
pub trait UpstreamStore: Send + Sync {
    /// The realm's upstream providers.
    async fn list_idps(&self, realm: &str) -> Result<Vec<IdentityProviderRepresentation>, StoreError>;
    /// A provider by alias.
    async fn get_idp(&self, realm: &str, alias: &str) -> Result<Option<IdentityProviderRepresentation>, StoreError>;
    /// Creates a provider.
    async fn create_idp(&self, realm: &str, idp: &IdentityProviderRepresentation) -> Result<(), StoreError>;
    /// Replaces a provider (same alias).
    async fn update_idp(&self, realm: &str, idp: &IdentityProviderRepresentation) -> Result<(), StoreError>;
    /// Deletes a provider, its mappers and its links.
    async fn delete_idp(&self, realm: &str, alias: &str) -> Result<(), StoreError>;

    /// A provider's mappers.
    async fn list_mappers(
        &self,
        realm: &str,
        alias: &str,
    ) -> Result<Vec<IdentityProviderMapperRepresentation>, StoreError>;
    /// A mapper by id.
    async fn get_mapper(
        &self,
        realm: &str,
        alias: &str,
        id: &str,
    ) -> Result<Option<IdentityProviderMapperRepresentation>, StoreError>;
    /// Creates a mapper.
    async fn create_mapper(&self, realm: &str, m: &IdentityProviderMapperRepresentation) -> Result<(), StoreError>;
    /// Replaces a mapper.
    async fn update_mapper(&self, realm: &str, m: &IdentityProviderMapperRepresentation) -> Result<(), StoreError>;
    /// Deletes a mapper.
    async fn delete_mapper(&self, realm: &str, alias: &str, id: &str) -> Result<(), StoreError>;
}

/// A realm's roles and users, with the users' role grants and upstream links.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Realm roles.
    async fn list_roles(&self, realm: &str) -> Result<Vec<RoleRepresentation>, StoreError>;
    /// Creates a realm role.
    async fn create_role(&self, realm: &str, role: &RoleRepresentation) -> Result<(), StoreError>;

    /// Searches users.
    async fn search_users(&self, realm: &str, q: &UserQuery) -> Result<Vec<UserRepresentation>, StoreError>;
    /// A user by id.
    async fn get_user(&self, realm: &str, id: &str) -> Result<Option<UserRepresentation>, StoreError>;
    /// Creates a user.
    async fn create_user(&self, realm: &str, user: &UserRepresentation) -> Result<(), StoreError>;
    /// Replaces a user.
    async fn update_user(&self, realm: &str, user: &UserRepresentation) -> Result<(), StoreError>;
    /// Deletes a user with their links and role mappings.
    async fn delete_user(&self, realm: &str, id: &str) -> Result<(), StoreError>;

    /// A user's realm roles.
    async fn user_roles(&self, realm: &str, user_id: &str) -> Result<Vec<RoleRepresentation>, StoreError>;
    /// Grants realm roles by name (already granted ones are kept).
    async fn grant_roles(&self, realm: &str, user_id: &str, names: &[String]) -> Result<(), StoreError>;
    /// Revokes realm roles by name.
    async fn revoke_roles(&self, realm: &str, user_id: &str, names: &[String]) -> Result<(), StoreError>;

    /// A user's upstream links.
    async fn list_links(&self, realm: &str, user_id: &str) -> Result<Vec<FederatedIdentityRepresentation>, StoreError>;
    /// Links a user to an upstream account, optionally with its tokens.
    async fn create_link(
        &self,
        realm: &str,
        user_id: &str,
        link: &FederatedIdentityRepresentation,
        token: Option<&Secret>,
    ) -> Result<(), StoreError>;
    /// Creates a user already linked to an upstream account, in one
    /// transaction (a sign-in's just-in-time user). An email address another
    /// user of the realm has is stored unverified; the answer says whether
    /// that happened.
    async fn create_linked_user(
        &self,
        realm: &str,
        user: &UserRepresentation,
        link: &FederatedIdentityRepresentation,
        token: Option<&Secret>,
    ) -> Result<bool, StoreError>;
    /// Removes a link.
    async fn delete_link(&self, realm: &str, user_id: &str, alias: &str) -> Result<(), StoreError>;
    /// The user linked to an upstream subject.
    async fn find_user_by_link(
        &self,
        realm: &str,
        alias: &str,
        subject: &str,
    ) -> Result<Option<UserRepresentation>, StoreError>;
    /// The upstream tokens stored on a user's link (`storeToken`), decrypted.
    async fn link_token(&self, realm: &str, user_id: &str, alias: &str) -> Result<Option<Secret>, StoreError>;
    /// Replaces the upstream tokens stored on a user's link; `false` when
    /// the user has no link to that provider.
    async fn set_link_token(&self, realm: &str, user_id: &str, alias: &str, token: &Secret)
        -> Result<bool, StoreError>;

    /// A user's roles of a client (named by its clientId).
    async fn user_client_roles(&self, realm: &str, user_id: &str, client_id: &str) -> Result<Vec<String>, StoreError>;
    /// Grants client roles by name (already granted ones are kept).
    async fn grant_client_roles(
        &self,
        realm: &str,
        user_id: &str,
        client_id: &str,
        names: &[String],
    ) -> Result<(), StoreError>;
    /// Revokes client roles by name.
    async fn revoke_client_roles(
        &self,
        realm: &str,
        user_id: &str,
        client_id: &str,
        names: &[String],
    ) -> Result<(), StoreError>;
}

/// A realm's signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The realm's signing keys, private halves decrypted.
    async fn signing_keys(&self, realm: &str) -> Result<Vec<SigningKey>, StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Records an audit event.
    async fn audit(&self, event: AuditEvent) -> Result<(), StoreError>;
}

/// Durable configuration and identities: realms and everything in them, the
/// sum of the narrow stores. Code that needs one area takes that area's trait.
#[async_trait]
pub trait Store: RealmStore + ClientStore + UpstreamStore + UserStore + KeyStore + AuditStore + Send + Sync {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Short-lived state: authorization flows, codes, SSO sessions, replay caches.
/// Expiry is the store's job: an expired entry is never returned.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Sets a value that lives for `ttl`.
    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Sets a value only when no live one exists; `false` when one did
    /// (replay caches).
    async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Reads a live value.
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Reads and removes a live value at once, so that only one caller ever
    /// gets it (single-use codes).
    async fn take(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Reads several live values at once, in the order of `keys` (one round
    /// trip on stores that override it: the token checks read a session, a
    /// refresh-token family and a revocation mark together).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get(k).await?);
        }
        Ok(out)
    }
    /// Removes a value.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Replaces a live value, keeping its expiry; `false` (and nothing
    /// written) when none is live, so an ended session is never revived.
    async fn replace(&self, key: &str, value: &str) -> Result<bool, StoreError>;
    /// Replaces a live value and makes it live `ttl` from now, at once;
    /// `false` (and nothing written) when none is live, so that something
    /// ended meanwhile (a revoked refresh-token family) is never revived.
    async fn renew(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Adds `member` to the set at `index_key`; the set (or, on the embedded
    /// store, the member) lives at least `ttl` from now. Adding a member twice
    /// keeps one. Secondary indexes of the SSO sessions: a member may outlive
    /// what it names, so readers check it.
    async fn index_add(&self, index_key: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;
    /// The live members of the set at `index_key` (unordered; empty when none).
    async fn index_members(&self, index_key: &str) -> Result<Vec<String>, StoreError>;
    /// Removes `member` from the set at `index_key` (nothing when absent).
    async fn index_remove(&self, index_key: &str, member: &str) -> Result<(), StoreError>;
    /// Removes the whole set at `index_key`.
    async fn index_delete(&self, index_key: &str) -> Result<(), StoreError>;

    /// Writes several entries; stores that can send them at once override it.
    async fn put_many(&self, entries: Vec<Entry>) -> Result<(), StoreError> {
        for e in entries {
            match e.kind {
                EntryKind::Value => self.put(&e.key, &e.value, e.ttl).await?,
                EntryKind::IndexMember => self.index_add(&e.key, &e.value, e.ttl).await?,
                EntryKind::Replace => {
                    self.replace(&e.key, &e.value).await?;
                }
                EntryKind::Renew => {
                    self.renew(&e.key, &e.value, e.ttl).await?;
                }
            }
        }
        Ok(())
    }

    /// A one-trip sign-in writer, when this store shares the database with
    /// the users (the embedded store); `None` makes the broker compose the
    /// separate stores.
    fn sign_in_writer(&self) -> Option<std::sync::Arc<dyn SignInWriter>> {
        None
    }

    /// A one-trip code redeemer, when this store shares the database with
    /// the users (the embedded store); `None` makes the broker compose the
    /// separate stores.
    fn redeemer(&self) -> Option<std::sync::Arc<dyn CodeRedeemer>> {
        None
    }

    /// A one-trip refresh-token user, when this store shares the database
    /// with the users (the embedded store); `None` makes the broker compose
    /// the separate stores.
    fn refresh_redeemer(&self) -> Option<std::sync::Arc<dyn RefreshRedeemer>> {
        None
    }
}

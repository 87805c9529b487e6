//! The token endpoint's one trip. Redeeming a code takes the code (single
//! use), records its use (so that a second presentation can revoke what the
//! first produced), and reads the SSO session and the user the tokens are
//! for. Where the session store lives in the database (the embedded
//! default), `storage` does all of it in one blocking call and one
//! transaction; [`Composed`] does it with the separate stores (Redis).
//!
//! The upstream callback's writes are the same kind of trip: once the ID
//! token is verified, [`SignInWriter`] finds or creates the user and link,
//! applies the sync mode and writes the SSO session and the code, in one
//! transaction on the embedded store, or one database transaction and one
//! session-store batch (a Redis pipeline) otherwise.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use federa_mappers::{Change, UserState};
use federa_protocol::Secret;

use super::{SessionStore, Store, StoreError};
use crate::repr::{FederatedIdentityRepresentation, UserRepresentation};

/// What a stored code grant points at, read from its JSON by the broker's
/// parser (storage does not know the grant's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRefs {
    /// The session-store key of the SSO session that issued the code.
    pub session_key: String,
    /// The user's id.
    pub user_id: String,
    /// The session's set of clients that received tokens, and the grant's
    /// client: recorded with the redemption when the session is alive (the
    /// client took part in the session whether or not this request's checks
    /// pass).
    pub client_index: (String, String),
}

/// The entries a redemption writes with a live session, made from the
/// grant's JSON and the session's value: the refresh token and its family,
/// issued in the same trip (a failed exchange leaves them unused: their
/// secret is never sent).
pub type IssueFor = Arc<dyn Fn(&str, &str) -> Vec<Entry> + Send + Sync>;

/// A code to redeem.
#[derive(Clone)]
pub struct Redemption {
    /// The realm.
    pub realm: String,
    /// The session-store key of the code.
    pub code_key: String,
    /// The key under which its use is recorded.
    pub used_key: String,
    /// The record of its use (the access token's `jti`).
    pub used_value: String,
    /// How long that record lives.
    pub used_ttl: Duration,
    /// Reads what a grant (its JSON) of a realm points at.
    pub refs: fn(realm: &str, grant: &str) -> Option<GrantRefs>,
    /// How long the client's index member lives (the session's lifetime).
    pub index_ttl: Duration,
    /// What to write as well when the code and its session are live.
    pub issue: Option<IssueFor>,
}

impl std::fmt::Debug for Redemption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redemption")
            .field("realm", &self.realm)
            .field("code_key", &self.code_key)
            .field("used_key", &self.used_key)
            .field("used_ttl", &self.used_ttl)
            .field("index_ttl", &self.index_ttl)
            .field("issue", &self.issue.is_some())
            .finish_non_exhaustive()
    }
}

/// What redeeming found.
#[derive(Debug, Default)]
pub struct Redeemed {
    /// The grant, when the code was live (it is now gone).
    pub grant: Option<String>,
    /// When the code was not live: the record of an earlier use, taken.
    pub previous_use: Option<String>,
    /// The SSO session's value, when it is still alive.
    pub session: Option<String>,
    /// The user, when they exist, with the names of their realm roles in
    /// `realm_roles` (for the tokens' `realm_access`).
    pub user: Option<UserRepresentation>,
}

/// Redeems authorization codes.
#[async_trait]
pub trait CodeRedeemer: Send + Sync {
    /// Takes the code, records its use, and reads its session and user.
    async fn redeem_code(&self, r: Redemption) -> Result<Redeemed, StoreError>;
}

/// Redemption over the separate stores: one session-store call for the code
/// and its use, then the session and the user read at once.
pub struct Composed {
    /// The durable store (users).
    pub store: Arc<dyn Store>,
    /// The session store (codes, sessions).
    pub sessions: Arc<dyn SessionStore>,
}

#[async_trait]
impl CodeRedeemer for Composed {
    async fn redeem_code(&self, r: Redemption) -> Result<Redeemed, StoreError> {
        let Some(grant) = self.sessions.take(&r.code_key).await? else {
            let previous_use = self.sessions.take(&r.used_key).await?;
            return Ok(Redeemed { previous_use, ..Redeemed::default() });
        };
        let Some(refs) = (r.refs)(&r.realm, &grant) else {
            return Ok(Redeemed { grant: Some(grant), ..Redeemed::default() });
        };
        let (used, session, user, roles) = tokio::join!(
            self.sessions.put(&r.used_key, &r.used_value, r.used_ttl),
            self.sessions.get(&refs.session_key),
            self.store.get_user(&r.realm, &refs.user_id),
            self.store.user_roles(&r.realm, &refs.user_id),
        );
        used?;
        let roles: Vec<String> = roles?.into_iter().filter_map(|r| r.name).collect();
        let user = user?.map(|mut u| {
            u.realm_roles = Some(roles);
            u
        });
        let session = session?;
        if let Some(live) = &session {
            let (index, client) = refs.client_index.clone();
            let mut entries = vec![Entry { key: index, value: client, ttl: r.index_ttl, kind: EntryKind::IndexMember }];
            entries.extend(r.issue.as_ref().map(|issue| issue(&grant, live)).unwrap_or_default());
            self.sessions.put_many(entries).await?;
        }
        Ok(Redeemed { grant: Some(grant), previous_use: None, session, user })
    }
}

/// A refresh token to use: its grant taken (single use) and, in the same
/// trip where the store allows, what the grant needs read.
#[derive(Debug, Clone)]
pub struct RefreshUse {
    /// The realm.
    pub realm: String,
    /// The session-store key of the token's grant.
    pub token_key: String,
    /// The key of its use mark, taken when the grant is gone.
    pub used_key: String,
    /// What a grant (its JSON) of a realm needs read.
    pub refs: fn(realm: &str, grant: &str) -> Option<RefreshRefs>,
}

/// What a refresh grant needs read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRefs {
    /// Session-store keys (the family, the SSO session).
    pub keys: Vec<String>,
    /// The user's id.
    pub user_id: String,
}

/// What using a refresh token found.
#[derive(Debug, Default)]
pub struct RefreshUsed {
    /// The grant, when the token was live (it is now gone).
    pub grant: Option<String>,
    /// When the token was not live: its use mark, taken.
    pub mark: Option<String>,
    /// The values of [`RefreshRefs::keys`], in order.
    pub found: Vec<Option<String>>,
    /// The user, when they exist.
    pub user: Option<UserRepresentation>,
}

/// Uses refresh tokens.
#[async_trait]
pub trait RefreshRedeemer: Send + Sync {
    /// Takes the token's grant (or, when it is gone, its use mark) and reads
    /// what the grant needs.
    async fn use_refresh(&self, r: RefreshUse) -> Result<RefreshUsed, StoreError>;
}

#[async_trait]
impl RefreshRedeemer for Composed {
    async fn use_refresh(&self, r: RefreshUse) -> Result<RefreshUsed, StoreError> {
        let Some(grant) = self.sessions.take(&r.token_key).await? else {
            let mark = self.sessions.take(&r.used_key).await?;
            return Ok(RefreshUsed { mark, ..RefreshUsed::default() });
        };
        let Some(refs) = (r.refs)(&r.realm, &grant) else {
            return Ok(RefreshUsed { grant: Some(grant), ..RefreshUsed::default() });
        };
        let (found, user, roles) = tokio::join!(
            self.sessions.get_many(&refs.keys),
            self.store.get_user(&r.realm, &refs.user_id),
            self.store.user_roles(&r.realm, &refs.user_id)
        );
        let roles: Vec<String> = roles?.into_iter().filter_map(|r| r.name).collect();
        let user = user?.map(|mut u| {
            u.realm_roles = Some(roles);
            u
        });
        Ok(RefreshUsed { grant: Some(grant), mark: None, found: found?, user })
    }
}

/// A short-lived entry to write to the session store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// How long it lives.
    pub ttl: Duration,
    /// What the write does.
    pub kind: EntryKind,
}

/// How an [`Entry`] is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EntryKind {
    /// `value` replaces whatever `key` held ([`SessionStore::put`]).
    #[default]
    Value,
    /// `value` is a member added to the index at `key`
    /// ([`SessionStore::index_add`]).
    IndexMember,
    /// `value` replaces a live value at `key`, keeping its expiry; nothing
    /// is written when none is live ([`SessionStore::replace`]).
    Replace,
    /// `value` replaces a live value at `key`, which then lives `ttl` from
    /// now; nothing is written when none is live ([`SessionStore::renew`]).
    Renew,
}

/// What the upstream says of the user, ready to store (email lowercased and
/// well-formed, verified only as the provider's `trustEmail` allows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// The email address.
    pub email: Option<String>,
    /// Whether it is verified (before the shared-address rule).
    pub email_verified: bool,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
}

impl Profile {
    /// Writes the profile over a user's fields.
    pub fn apply(&self, u: &mut UserRepresentation) {
        u.email = self.email.clone();
        u.email_verified = Some(self.email.is_some() && self.email_verified);
        u.first_name = self.first_name.clone();
        u.last_name = self.last_name.clone();
    }
}

/// The session entries to write for a user id.
pub type EntriesFor = Arc<dyn Fn(&str) -> Vec<Entry> + Send + Sync>;

/// The provider's mappers, run inside the sign-in write on the user as
/// stored (or as about to be created): what they change.
pub type MapUser = Arc<dyn Fn(&UserState) -> Vec<Change> + Send + Sync>;

/// The mappers' input for a user: `roles` are the names of the realm roles
/// granted to them.
pub fn user_state(u: &UserRepresentation, first_login: bool, roles: Vec<String>) -> UserState {
    UserState {
        first_login,
        username: u.username.clone().unwrap_or_default(),
        email: u.email.clone(),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        attributes: u.attributes.clone().unwrap_or_default(),
        roles: roles.into_iter().collect(),
    }
}

/// A role change, in the order the mappers made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// Grant the realm role of that name.
    Grant(String),
    /// Revoke it.
    Revoke(String),
}

/// Applies the mappers' changes to the user's fields and attributes (an
/// email address a mapper sets is stored unverified, unless it is the one
/// the profile already verified), and returns the role changes, in order,
/// for the writer to apply; `true` when the user's fields changed.
pub fn apply_changes(u: &mut UserRepresentation, changes: Vec<Change>) -> (bool, Vec<RoleChange>) {
    let mut roles = Vec::new();
    let mut changed = false;
    for c in changes {
        changed |= !matches!(c, Change::GrantRole(_) | Change::RevokeRole(_));
        match c {
            Change::SetAttribute { name, values } => {
                u.attributes.get_or_insert_with(Default::default).insert(name, values);
            }
            Change::RemoveAttribute(name) => {
                if let Some(a) = u.attributes.as_mut() {
                    a.remove(&name);
                }
            }
            Change::SetEmail(v) => {
                if u.email.as_deref() != Some(v.as_str()) {
                    u.email = Some(v);
                    u.email_verified = Some(false);
                }
            }
            Change::SetFirstName(v) => u.first_name = Some(v),
            Change::SetLastName(v) => u.last_name = Some(v),
            Change::SetUsername(v) => u.username = Some(v),
            Change::GrantRole(r) => roles.push(RoleChange::Grant(r)),
            Change::RevokeRole(r) => roles.push(RoleChange::Revoke(r)),
        }
    }
    if u.attributes.as_ref().is_some_and(|a| a.is_empty()) {
        u.attributes = None;
    }
    (changed, roles)
}

/// Everything an upstream callback writes once the ID token is verified.
pub struct SignIn {
    /// The realm.
    pub realm: String,
    /// The provider's alias.
    pub alias: String,
    /// The upstream subject.
    pub subject: String,
    /// The upstream's profile.
    pub profile: Profile,
    /// Overwrite a linked user's profile (`syncMode` FORCE).
    pub force: bool,
    /// The user to create at a first sign-in (id set, profile applied);
    /// `None` when the provider's first-login policy lets nobody new in.
    pub new_user: Option<UserRepresentation>,
    /// At a first sign-in without `new_user` (`federa-known-users`): the
    /// username of the existing user to link (the upstream's
    /// `preferred_username`). Refused ([`SignedIn::NotKnown`]) when no user
    /// has it, or when that user is already linked to another subject of
    /// the provider.
    pub link_username: Option<String>,
    /// The link to create with a new user.
    pub link: FederatedIdentityRepresentation,
    /// The upstream tokens to keep on the link (`storeToken`): written with
    /// a new link and replacing the stored ones at every later sign-in.
    pub token: Option<Secret>,
    /// Client roles (clientId, role) to grant a user this sign-in creates
    /// (`addReadTokenRoleOnCreate`).
    pub grant_on_create: Vec<(String, String)>,
    /// The session entries (the SSO session, the code) for the user's id.
    pub entries: EntriesFor,
    /// The provider's mappers (`None` when it has none): their changes are
    /// written with the user, in the same transaction where the store
    /// allows it.
    pub mappers: Option<MapUser>,
}

/// What a sign-in wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIn {
    /// The user signed in; their entries are written.
    User {
        /// The user's id.
        user_id: String,
        /// Created by this sign-in.
        created: bool,
        /// Their address was stored unverified because another user has it.
        email_unverified: bool,
        /// Roles the mappers named that the realm does not have (skipped).
        skipped_roles: Vec<String>,
    },
    /// The linked user is disabled; nothing was written.
    Disabled,
    /// No user is linked and the first-login policy refuses; nothing was written.
    FirstLoginRefused,
    /// No user is linked and `link_username` names no user that may be
    /// linked (`federa-known-users`); nothing was written.
    NotKnown,
}

/// Writes what a verified upstream callback produces.
#[async_trait]
pub trait SignInWriter: Send + Sync {
    /// Finds the linked user (or creates them with their link), applies the
    /// sync mode, and writes the session entries.
    async fn sign_in(&self, s: SignIn) -> Result<SignedIn, StoreError>;
}

#[async_trait]
impl SignInWriter for Composed {
    async fn sign_in(&self, s: SignIn) -> Result<SignedIn, StoreError> {
        let (user_id, created, email_unverified, roles) = match self
            .store
            .find_user_by_link(&s.realm, &s.alias, &s.subject)
            .await?
        {
            Some(u) if u.enabled == Some(false) => return Ok(SignedIn::Disabled),
            Some(mut u) => {
                let mut unverified = false;
                if s.force {
                    s.profile.apply(&mut u);
                }
                let mut roles = Vec::new();
                let mut mapped = false;
                if let Some(map) = &s.mappers {
                    let id = u.id.clone().unwrap_or_default();
                    let granted = self.store.user_roles(&s.realm, &id).await?;
                    let state = user_state(&u, false, granted.into_iter().filter_map(|r| r.name).collect());
                    (mapped, roles) = apply_changes(&mut u, map(&state));
                    let renamed = u.username.clone().filter(|n| *n != state.username);
                    if let Some(name) = renamed {
                        let q = super::UserQuery {
                            username: Some(name.clone()),
                            max: 1,
                            exact: true,
                            ..Default::default()
                        };
                        if !self.store.search_users(&s.realm, &q).await?.is_empty() {
                            log::warn!(
                                "realm {:?}: a mapper of {:?} renames {:?} to a username another user holds; the name is kept",
                                s.realm,
                                s.alias,
                                state.username
                            );
                            u.username = Some(state.username);
                        }
                    }
                }
                if s.force || mapped {
                    if let (Some(email), Some(true)) = (u.email.clone(), u.email_verified) {
                        let q =
                            super::UserQuery { email: Some(email.clone()), max: 2, exact: true, ..Default::default() };
                        let others = self.store.search_users(&s.realm, &q).await?;
                        if others.iter().any(|o| o.email.as_deref() == Some(email.as_str()) && o.id != u.id) {
                            u.email_verified = Some(false);
                            unverified = true;
                        }
                    }
                    self.store.update_user(&s.realm, &u).await?;
                }
                let user_id = u.id.unwrap_or_default();
                if let Some(token) = &s.token {
                    self.store.set_link_token(&s.realm, &user_id, &s.alias, token).await?;
                }
                (user_id, false, unverified, roles)
            }
            None => match (s.new_user, s.link_username) {
                (Some(mut user), _) => {
                    let mut roles = Vec::new();
                    if let Some(map) = &s.mappers {
                        let changes = map(&user_state(&user, true, Vec::new()));
                        (_, roles) = apply_changes(&mut user, changes);
                    }
                    let unverified = self.store.create_linked_user(&s.realm, &user, &s.link, s.token.as_ref()).await?;
                    let user_id = user.id.unwrap_or_default();
                    for (client, role) in &s.grant_on_create {
                        self.store.grant_client_roles(&s.realm, &user_id, client, std::slice::from_ref(role)).await?;
                    }
                    (user_id, true, unverified, roles)
                }
                (None, Some(username)) => {
                    let q = super::UserQuery { username: Some(username), max: 1, exact: true, ..Default::default() };
                    let Some(user) = self.store.search_users(&s.realm, &q).await?.into_iter().next() else {
                        return Ok(SignedIn::NotKnown);
                    };
                    if user.enabled == Some(false) {
                        return Ok(SignedIn::Disabled);
                    }
                    let user_id = user.id.unwrap_or_default();
                    let links = self.store.list_links(&s.realm, &user_id).await?;
                    if links.iter().any(|l| l.identity_provider.as_deref() == Some(s.alias.as_str())) {
                        return Ok(SignedIn::NotKnown);
                    }
                    self.store.create_link(&s.realm, &user_id, &s.link, s.token.as_ref()).await?;
                    // An existing user linked by federa-known-users: the
                    // provider's mappers apply from its next sign-in.
                    (user_id, false, false, Vec::new())
                }
                (None, None) => return Ok(SignedIn::FirstLoginRefused),
            },
        };
        let mut skipped_roles = Vec::new();
        if !roles.is_empty() {
            // Not atomic with the user's write: the separate stores have no
            // shared transaction. Roles the realm lacks are skipped.
            let known: Vec<String> =
                self.store.list_roles(&s.realm).await?.into_iter().filter_map(|r| r.name).collect();
            for change in roles {
                match change {
                    RoleChange::Grant(r) if known.contains(&r) => {
                        self.store.grant_roles(&s.realm, &user_id, std::slice::from_ref(&r)).await?
                    }
                    RoleChange::Revoke(r) if known.contains(&r) => {
                        self.store.revoke_roles(&s.realm, &user_id, std::slice::from_ref(&r)).await?
                    }
                    RoleChange::Grant(r) | RoleChange::Revoke(r) => skipped_roles.push(r),
                }
            }
        }
        self.sessions.put_many((s.entries)(&user_id)).await?;
        Ok(SignedIn::User { user_id, created, email_unverified, skipped_roles })
    }
}

//! [`StoreError`], and what a refused write collided with: a caller tells
//! "username taken" from "already linked" by the rule that was broken, not by
//! the wording of a database message.

use std::fmt;

/// A storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The write would break a rule of the schema; says which.
    #[error("{0}")]
    Conflict(Conflict),
    /// The row to change does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database or cache failed.
    #[error("storage backend: {0}")]
    Backend(String),
}

impl StoreError {
    /// The uniqueness rule the write broke, when it broke one.
    pub fn unique_key(&self) -> Option<UniqueKey> {
        match self {
            Self::Conflict(Conflict { kind: ConflictKind::Unique(key), .. }) => Some(*key),
            _ => None,
        }
    }

    /// Whether the write referred to a row that does not exist.
    pub fn is_foreign_key(&self) -> bool {
        matches!(self, Self::Conflict(Conflict { kind: ConflictKind::ForeignKey, .. }))
    }
}

/// A write the schema refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Which rule.
    pub kind: ConflictKind,
    /// The database's own words, for logs; never shown to a client.
    pub message: String,
}

impl Conflict {
    /// A conflict of `kind`, with the database's message.
    pub fn new(kind: ConflictKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// Says what collided, in words fit for an admin (the database's message is
/// left out: it names tables and values).
impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ConflictKind::Unique(key) => write!(f, "{key} already exists"),
            ConflictKind::ForeignKey => f.write_str("refers to something that does not exist"),
        }
    }
}

/// The kind of rule a write broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A uniqueness rule (a unique key or a primary key).
    Unique(UniqueKey),
    /// A reference to a row that does not exist.
    ForeignKey,
}

/// The uniqueness rules of the schema, one per unique key or primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueKey {
    /// The internal id (primary key) of a thing.
    Id(Entity),
    /// A realm's name.
    RealmName,
    /// A client's OAuth `clientId`, within its realm.
    ClientId,
    /// An identity provider's alias, within its realm.
    IdpAlias,
    /// A mapper's name, within its provider.
    MapperName,
    /// A realm role's name, within its realm.
    RoleName,
    /// A username, within its realm.
    Username,
    /// A role already granted to the user.
    RoleGrant,
    /// A user's link to a provider: one per user and provider.
    UserLink,
    /// An upstream account (provider and subject): linked to one user only.
    FederatedLink,
    /// A rule this version does not recognise (a newer schema's).
    Unrecognised,
}

impl fmt::Display for UniqueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(entity) => write!(f, "{entity} with this id"),
            Self::RealmName => f.write_str("a realm with this name"),
            Self::ClientId => f.write_str("a client with this clientId"),
            Self::IdpAlias => f.write_str("an identity provider with this alias"),
            Self::MapperName => f.write_str("a mapper with this name"),
            Self::RoleName => f.write_str("a role with this name"),
            Self::Username => f.write_str("a user with this username"),
            Self::RoleGrant => f.write_str("this role mapping"),
            Self::UserLink => f.write_str("a link from this user to this identity provider"),
            Self::FederatedLink => f.write_str("a link to this upstream account"),
            Self::Unrecognised => f.write_str("a unique value"),
        }
    }
}

/// The things the store keeps, as named in a conflict on their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// A realm.
    Realm,
    /// A client.
    Client,
    /// An upstream identity provider.
    IdentityProvider,
    /// A provider's mapper.
    Mapper,
    /// A realm role.
    Role,
    /// A user.
    User,
    /// A signing key (its `kid`).
    SigningKey,
    /// An audit event.
    AuditEvent,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Realm => "a realm",
            Self::Client => "a client",
            Self::IdentityProvider => "an identity provider",
            Self::Mapper => "a mapper",
            Self::Role => "a role",
            Self::User => "a user",
            Self::SigningKey => "a signing key",
            Self::AuditEvent => "an audit event",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_names_its_rule_not_the_database_message() {
        let e = StoreError::Conflict(Conflict::new(
            ConflictKind::Unique(UniqueKey::Username),
            "UNIQUE constraint failed: users.realm_id, users.username",
        ));
        assert_eq!(e.to_string(), "a user with this username already exists");
        assert_eq!(e.unique_key(), Some(UniqueKey::Username));
        assert!(!e.is_foreign_key());
        let fk = StoreError::Conflict(Conflict::new(ConflictKind::ForeignKey, "FOREIGN KEY constraint failed"));
        assert_eq!(fk.unique_key(), None);
        assert!(fk.is_foreign_key());
        assert_eq!(StoreError::NotFound("x".into()).unique_key(), None);
    }
}

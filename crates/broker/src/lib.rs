//! Federa's broker: the model of realms, clients, upstream identity providers
//! and users (Keycloak's representations), their validation, the admin
//! operations, and the store traits that `storage` implements. No HTTP, no SQL.

pub mod admin;
pub mod error;
pub mod flow;
pub mod keys;
pub mod model;
pub mod repr;
pub mod store;
pub mod validate;

pub use admin::{AdminService, ImportOutcome, RealmSource};
pub use error::BrokerError;
pub use store::{
    AuditStore, ClientStore, Conflict, ConflictKind, KeyStore, RealmStore, SessionStore, Store, StoreError, UniqueKey,
    UpstreamStore, UserStore,
};

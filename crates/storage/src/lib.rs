//! Federa's storage: the broker's [`Store`](federa_broker::Store) and its
//! narrow per-area traits on diesel (SQLite by default, PostgreSQL in
//! production; one code path), and its
//! [`SessionStore`](federa_broker::SessionStore) either embedded in that
//! database or on Redis. Row structs never leave this crate; secrets are
//! encrypted with the master key before they reach a row.

pub mod crypto;
pub mod db;
mod rows;
mod schema;
pub mod sessions;
mod store;

pub use crypto::MasterKey;
pub use db::{DatabaseUrl, DbPool};
pub use sessions::{EmbeddedSessions, RedisSessions};
pub use store::DbStore;

/// Why storage could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The database cannot be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Encryption or decryption failed.
    #[error("encryption at rest: {0}")]
    Crypto(String),
    /// A query failed.
    #[error("database: {0}")]
    Query(String),
}

impl From<StorageError> for federa_broker::StoreError {
    fn from(e: StorageError) -> Self {
        federa_broker::StoreError::Backend(e.to_string())
    }
}

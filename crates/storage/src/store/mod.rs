//! [`DbStore`]: the broker's [`Store`] on diesel, one code path for SQLite and
//! PostgreSQL. Blocking diesel work runs on tokio's blocking pool, never on
//! the async workers.
//!
//! Each narrow store trait has its own module ([`realms`], [`clients`],
//! [`upstreams`], [`users`], [`keys`], [`audit`]); this one holds the pool,
//! the ways work reaches it, and the helpers they share.

mod audit;
mod clients;
mod errors;
pub(crate) mod hot;
mod keys;
mod realms;
mod upstreams;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use federa_broker::{Store, StoreError};

use self::errors::db_err;
use crate::crypto::MasterKey;
use crate::db::{self, Conn, DbPool, WriteGate};
use crate::schema::{
    self, audit_events, federated_identities, identity_providers, idp_mappers, realm_keys, realm_roles,
    user_role_mappings,
};
use crate::sessions::EmbeddedSessions;
use crate::StorageError;

/// The durable store.
#[derive(Clone)]
pub struct DbStore {
    pool: DbPool,
    key: Arc<MasterKey>,
    gate: WriteGate,
}

type Res<T> = Result<T, StoreError>;

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored JSON: {e}"))
}

/// Serialises a representation into its JSON column.
fn to_json<T: serde::Serialize>(v: &T) -> Res<String> {
    serde_json::to_string(v).map_err(json_err)
}

/// Reads a representation back from its JSON column.
fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Res<T> {
    serde_json::from_str(s).map_err(json_err)
}

/// The internal id of the realm named `name`; not found when there is none.
fn realm_id(c: &mut Conn, name: &str) -> Res<String> {
    schema::realms::table
        .filter(schema::realms::name.eq(name))
        .select(schema::realms::id)
        .first::<String>(c)
        .optional()
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("realm {name:?} not found")))
}

/// Seconds since the epoch.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl DbStore {
    /// Opens the database named by `url` with the master key. Nothing is
    /// migrated yet: call [`DbStore::migrate`].
    pub fn open(url: &str, key: MasterKey) -> Result<Self, StorageError> {
        let gate = WriteGate::for_url(url)?;
        Ok(Self { pool: db::pool(url)?, key: Arc::new(key), gate })
    }

    /// Runs pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize, StorageError> {
        let mut c = self.pool.get().map_err(|e| StorageError::Connect(e.to_string()))?;
        db::migrate(&mut c)
    }

    /// The session store kept in this database.
    pub fn embedded_sessions(&self) -> EmbeddedSessions {
        let mut sessions = EmbeddedSessions::new(self.pool.clone(), self.gate.clone());
        sessions.key = Some(self.key.clone());
        sessions
    }

    /// Counts the rows of every table, for tests that check nothing changed.
    pub async fn row_counts(&self) -> Res<Vec<(&'static str, i64)>> {
        self.run(|c, _| {
            Ok(vec![
                ("realms", schema::realms::table.count().get_result(c).map_err(db_err)?),
                ("clients", schema::clients::table.count().get_result(c).map_err(db_err)?),
                ("identity_providers", identity_providers::table.count().get_result(c).map_err(db_err)?),
                ("idp_mappers", idp_mappers::table.count().get_result(c).map_err(db_err)?),
                ("realm_roles", realm_roles::table.count().get_result(c).map_err(db_err)?),
                ("users", schema::users::table.count().get_result(c).map_err(db_err)?),
                ("user_role_mappings", user_role_mappings::table.count().get_result(c).map_err(db_err)?),
                ("federated_identities", federated_identities::table.count().get_result(c).map_err(db_err)?),
                ("user_client_roles", schema::user_client_roles::table.count().get_result(c).map_err(db_err)?),
                ("realm_keys", realm_keys::table.count().get_result(c).map_err(db_err)?),
                ("audit_events", audit_events::table.count().get_result(c).map_err(db_err)?),
            ])
        })
        .await
    }

    /// Runs blocking diesel work on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Res<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &MasterKey) -> Res<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let key = self.key.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get().map_err(|e| StoreError::Backend(format!("database pool: {e}")))?;
            f(&mut c, &key)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("blocking task: {e}")))?
    }

    /// Runs blocking diesel work that writes, one writer at a time on SQLite.
    async fn run_write<T, F>(&self, f: F) -> Res<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &MasterKey) -> Res<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let key = self.key.clone();
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = gate.lock();
            let mut c = pool.get().map_err(|e| StoreError::Backend(format!("database pool: {e}")))?;
            f(&mut c, &key)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("blocking task: {e}")))?
    }

    /// Runs blocking diesel work in one transaction.
    async fn tx<T, F>(&self, f: F) -> Res<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &MasterKey) -> Res<T> + Send + 'static,
    {
        self.run_write(move |c, key| {
            let mut out = None;
            let result = c.transaction::<_, TxError, _>(|c| {
                out = Some(f(c, key).map_err(TxError::Store)?);
                Ok(())
            });
            match result {
                Ok(()) => out.ok_or_else(|| StoreError::Backend("transaction produced nothing".into())),
                Err(TxError::Store(e)) => Err(e),
                Err(TxError::Diesel(e)) => Err(db_err(e)),
            }
        })
        .await
    }
}

/// A transaction's error: the store's own, or diesel's from begin/commit.
enum TxError {
    Store(StoreError),
    Diesel(DieselError),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Diesel(e)
    }
}

#[async_trait]
impl Store for DbStore {
    async fn ping(&self) -> Res<()> {
        self.run(|c, _| diesel::connection::SimpleConnection::batch_execute(c, "SELECT 1").map_err(db_err)).await
    }
}

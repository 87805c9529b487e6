//! The two session stores behind the broker's [`SessionStore`]: `embedded`
//! (a table in Federa's database, so it survives a restart with nothing else
//! to run) and Redis. Both enforce expiry themselves: an expired entry is never
//! returned, whatever the caller does.

use std::time::Duration;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use federa_broker::store::EntryKind;
use federa_broker::{SessionStore, StoreError};

use crate::db::{Conn, DbPool, WriteGate};
use crate::rows::{IndexRow, SessionRow};
use crate::schema::{session_entries, session_index};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2).max(1)
}

/// Sessions kept in Federa's own database.
#[derive(Clone)]
pub struct EmbeddedSessions {
    pub(crate) pool: DbPool,
    pub(crate) gate: WriteGate,
    /// The master key, when built by [`crate::DbStore::embedded_sessions`]:
    /// then a sign-in's user, link and session rows go in one transaction.
    pub(crate) key: Option<std::sync::Arc<crate::MasterKey>>,
}

impl EmbeddedSessions {
    /// Sessions in the database behind `pool`, writing through `gate`.
    pub fn new(pool: DbPool, gate: WriteGate) -> Self {
        Self { pool, gate, key: None }
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T, DieselError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get().map_err(backend)?;
            f(&mut c).map_err(backend)
        })
        .await
        .map_err(backend)?
    }

    async fn run_write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T, DieselError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = gate.lock();
            let mut c = pool.get().map_err(backend)?;
            f(&mut c).map_err(backend)
        })
        .await
        .map_err(backend)?
    }

    /// Deletes expired entries; returns how many. Reads never return expired
    /// entries anyway; this only reclaims space.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        self.run_write(move |c| {
            let members = diesel::delete(session_index::table.filter(session_index::expires_at.le(now))).execute(c)?;
            let entries =
                diesel::delete(session_entries::table.filter(session_entries::expires_at.le(now))).execute(c)?;
            Ok(entries + members)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for EmbeddedSessions {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| session_entries::table.count().get_result::<i64>(c)).await.map(|_| ())
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let row = SessionRow { key: key.to_owned(), value: value.to_owned(), expires_at: now_ms() + ttl_ms(ttl) };
        self.run_write(move |c| {
            c.transaction(|c| {
                diesel::delete(session_entries::table.filter(session_entries::key.eq(&row.key))).execute(c)?;
                diesel::insert_into(session_entries::table).values(&row).execute(c)
            })
        })
        .await
        .map(|_| ())
    }

    async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_ms();
        let row = SessionRow { key: key.to_owned(), value: value.to_owned(), expires_at: now + ttl_ms(ttl) };
        let pool = self.pool.clone();
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = gate.lock();
            let mut c = pool.get().map_err(backend)?;
            let inserted = c.transaction(|c| {
                // An expired entry counts as absent.
                diesel::delete(
                    session_entries::table
                        .filter(session_entries::key.eq(&row.key).and(session_entries::expires_at.le(now))),
                )
                .execute(c)?;
                diesel::insert_into(session_entries::table).values(&row).execute(c)
            });
            match inserted {
                Ok(_) => Ok(true),
                Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
                Err(e) => Err(backend(e)),
            }
        })
        .await
        .map_err(backend)?
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        let now = now_ms();
        self.run(move |c| {
            session_entries::table
                .filter(session_entries::key.eq(&key).and(session_entries::expires_at.gt(now)))
                .select(session_entries::value)
                .first(c)
                .optional()
        })
        .await
    }

    async fn take(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        let now = now_ms();
        self.run_write(move |c| {
            c.transaction(|c| {
                let value: Option<String> = session_entries::table
                    .filter(session_entries::key.eq(&key).and(session_entries::expires_at.gt(now)))
                    .select(session_entries::value)
                    .first(c)
                    .optional()?;
                // Only the caller whose delete removed the row gets the value:
                // a concurrent taker deletes nothing and gets None.
                let deleted =
                    diesel::delete(session_entries::table.filter(session_entries::key.eq(&key))).execute(c)?;
                Ok(if deleted == 1 { value } else { None })
            })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run_write(move |c| diesel::delete(session_entries::table.filter(session_entries::key.eq(&key))).execute(c))
            .await
            .map(|_| ())
    }

    async fn replace(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        let now = now_ms();
        let updated = self
            .run_write(move |c| {
                diesel::update(
                    session_entries::table
                        .filter(session_entries::key.eq(&key).and(session_entries::expires_at.gt(now))),
                )
                .set(session_entries::value.eq(&value))
                .execute(c)
            })
            .await?;
        Ok(updated == 1)
    }

    async fn renew(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        let now = now_ms();
        let expires_at = now + ttl_ms(ttl);
        let updated = self
            .run_write(move |c| {
                diesel::update(
                    session_entries::table
                        .filter(session_entries::key.eq(&key).and(session_entries::expires_at.gt(now))),
                )
                .set((session_entries::value.eq(&value), session_entries::expires_at.eq(expires_at)))
                .execute(c)
            })
            .await?;
        Ok(updated == 1)
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let wanted = keys.to_vec();
        let now = now_ms();
        let found: Vec<(String, String)> = self
            .run(move |c| {
                session_entries::table
                    .filter(session_entries::key.eq_any(&wanted).and(session_entries::expires_at.gt(now)))
                    .select((session_entries::key, session_entries::value))
                    .load(c)
            })
            .await?;
        Ok(keys.iter().map(|k| found.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())).collect())
    }

    async fn index_add(&self, index_key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let row = IndexRow { key: index_key.to_owned(), member: member.to_owned(), expires_at: now_ms() + ttl_ms(ttl) };
        self.run_write(move |c| c.transaction(|c| crate::store::hot::index_row(c, row))).await
    }

    async fn index_members(&self, index_key: &str) -> Result<Vec<String>, StoreError> {
        let key = index_key.to_owned();
        let now = now_ms();
        self.run(move |c| {
            session_index::table
                .filter(session_index::key.eq(&key).and(session_index::expires_at.gt(now)))
                .select(session_index::member)
                .load(c)
        })
        .await
    }

    async fn index_remove(&self, index_key: &str, member: &str) -> Result<(), StoreError> {
        let (key, member) = (index_key.to_owned(), member.to_owned());
        self.run_write(move |c| {
            diesel::delete(
                session_index::table.filter(session_index::key.eq(&key).and(session_index::member.eq(&member))),
            )
            .execute(c)
        })
        .await
        .map(|_| ())
    }

    async fn index_delete(&self, index_key: &str) -> Result<(), StoreError> {
        let key = index_key.to_owned();
        self.run_write(move |c| diesel::delete(session_index::table.filter(session_index::key.eq(&key))).execute(c))
            .await
            .map(|_| ())
    }

    fn sign_in_writer(&self) -> Option<std::sync::Arc<dyn federa_broker::store::SignInWriter>> {
        self.key.is_some().then(|| std::sync::Arc::new(self.clone()) as _)
    }

    async fn put_many(&self, entries: Vec<federa_broker::store::Entry>) -> Result<(), StoreError> {
        let now = now_ms();
        self.run_write(move |c| {
            c.transaction(|c| {
                for e in entries {
                    crate::store::hot::write_entry(c, e, now)?;
                }
                Ok(())
            })
        })
        .await
    }

    fn redeemer(&self) -> Option<std::sync::Arc<dyn federa_broker::store::CodeRedeemer>> {
        // The sessions share the database with the users: one trip redeems a code.
        Some(std::sync::Arc::new(self.clone()))
    }

    fn refresh_redeemer(&self) -> Option<std::sync::Arc<dyn federa_broker::store::RefreshRedeemer>> {
        // Likewise, one trip uses a refresh token.
        Some(std::sync::Arc::new(self.clone()))
    }
}

/// Sessions on Redis; keys carry a prefix so that several deployments (or
/// test runs) can share one server.
#[derive(Clone)]
pub struct RedisSessions {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisSessions {
    /// Connects to `url` (`redis://...`); every key gets `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| backend(format!("sessions.url: {e}")))?;
        let conn = redis::aio::ConnectionManager::new(client).await.map_err(backend)?;
        Ok(Self { conn, prefix: prefix.to_owned() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Adds a member to an index set in `pipe`. The set lives as long as
    /// its longest-lived member: NX sets a first expiry, GT only lengthens
    /// it (Redis 7).
    fn index_add_to(&self, pipe: &mut redis::Pipeline, index_key: &str, member: &str, ttl: Duration) {
        let (key, ttl) = (self.index_key(index_key), ttl_ms(ttl));
        pipe.cmd("SADD").arg(&key).arg(member).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl).arg("NX").ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl).arg("GT").ignore();
    }

    /// Index sets live apart from the entries (`idx:`), so that an index
    /// and an entry of the same name never meet.
    fn index_key(&self, key: &str) -> String {
        format!("{}idx:{key}", self.prefix)
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ()).map_err(backend)
    }

    async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async::<()>(&mut c)
            .await
            .map_err(backend)
    }

    async fn put_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut c)
            .await
            .map_err(backend)?;
        Ok(set.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("GET").arg(self.key(key)).query_async(&mut c).await.map_err(backend)
    }

    async fn take(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("GETDEL").arg(self.key(key)).query_async(&mut c).await.map_err(backend)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("DEL").arg(self.key(key)).query_async::<()>(&mut c).await.map_err(backend)
    }

    async fn replace(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("XX")
            .arg("KEEPTTL")
            .query_async(&mut c)
            .await
            .map_err(backend)?;
        Ok(set.is_some())
    }

    async fn renew(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("XX")
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut c)
            .await
            .map_err(backend)?;
        Ok(set.is_some())
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.key(k));
        }
        cmd.query_async(&mut c).await.map_err(backend)
    }

    async fn index_add(&self, index_key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.index_add_to(&mut pipe, index_key, member, ttl);
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await.map_err(backend)
    }

    async fn index_members(&self, index_key: &str) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("SMEMBERS").arg(self.index_key(index_key)).query_async(&mut c).await.map_err(backend)
    }

    async fn index_remove(&self, index_key: &str, member: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("SREM").arg(self.index_key(index_key)).arg(member).query_async::<()>(&mut c).await.map_err(backend)
    }

    async fn index_delete(&self, index_key: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("DEL").arg(self.index_key(index_key)).query_async::<()>(&mut c).await.map_err(backend)
    }

    async fn put_many(&self, entries: Vec<federa_broker::store::Entry>) -> Result<(), StoreError> {
        // One round trip, applied together (MULTI/EXEC).
        let mut pipe = redis::pipe();
        pipe.atomic();
        for e in &entries {
            match e.kind {
                EntryKind::Value => {
                    pipe.cmd("SET").arg(self.key(&e.key)).arg(&e.value).arg("PX").arg(ttl_ms(e.ttl)).ignore();
                }
                EntryKind::IndexMember => self.index_add_to(&mut pipe, &e.key, &e.value, e.ttl),
                EntryKind::Replace => {
                    pipe.cmd("SET").arg(self.key(&e.key)).arg(&e.value).arg("XX").arg("KEEPTTL").ignore();
                }
                EntryKind::Renew => {
                    pipe.cmd("SET").arg(self.key(&e.key)).arg(&e.value).arg("XX").arg("PX").arg(ttl_ms(e.ttl)).ignore();
                }
            }
        }
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await.map_err(backend)
    }
}

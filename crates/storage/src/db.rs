//! The connection: one diesel `MultiConnection` over SQLite and PostgreSQL,
//! an r2d2 pool, the per-connection SQLite settings, and the embedded
//! migrations. The backend is chosen here, once, from the database URL.

use diesel::connection::SimpleConnection as _;
use diesel::r2d2::{ManageConnection, Pool, PooledConnection};
use diesel::{Connection as _, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness as _};

use crate::StorageError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum Conn {
    /// PostgreSQL.
    Pg(PgConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

/// Which database, parsed from `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH`: a file, created when missing.
    Sqlite(String),
    /// `postgres://...` or `postgresql://...`.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `postgres://...` or `postgresql://...`.
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StorageError::Config("database.url: sqlite:// needs a file path".into()));
            }
            Ok(Self::Sqlite(path.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else {
            Err(StorageError::Config("database.url: must start with sqlite://, postgres:// or postgresql://".into()))
        }
    }
}

/// Opens connections for the pool and applies SQLite's settings to each.
#[derive(Debug, Clone)]
pub struct Manager {
    url: DatabaseUrl,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                PgConnection::establish(url).map(Conn::Pg).map_err(diesel::r2d2::Error::ConnectionError)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConnection::establish(path).map_err(diesel::r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the one writer; NORMAL is durable
                // across application crashes, which is what WAL promises.
                c.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(Conn::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut Conn) -> bool {
        false
    }
}

/// One writer at a time on SQLite. SQLite allows one write transaction per
/// file; connections that race for it get SQLITE_BUSY (at once, when a read
/// transaction tries to become a write one) or sleep in the busy handler.
/// Taking turns in-process instead keeps writes short and latency flat.
/// PostgreSQL needs no gate.
#[derive(Clone, Debug, Default)]
pub struct WriteGate(Option<std::sync::Arc<std::sync::Mutex<()>>>);

impl WriteGate {
    /// The gate a database URL needs.
    pub fn for_url(url: &str) -> Result<Self, StorageError> {
        Ok(match DatabaseUrl::parse(url)? {
            DatabaseUrl::Sqlite(_) => Self(Some(std::sync::Arc::new(std::sync::Mutex::new(())))),
            DatabaseUrl::Postgres(_) => Self(None),
        })
    }

    /// Waits for this thread's turn to write (on SQLite); the turn ends when
    /// the guard drops. A poisoned lock still serialises: the data it guards is
    /// the database, which keeps its own integrity.
    pub fn lock(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.0.as_ref().map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// The pool type.
pub type DbPool = Pool<Manager>;
/// A pooled connection.
pub type PooledConn = PooledConnection<Manager>;

/// Builds a pool; fails when the database cannot be reached.
pub fn pool(url: &str) -> Result<DbPool, StorageError> {
    let url = DatabaseUrl::parse(url)?;
    let size = match url {
        DatabaseUrl::Sqlite(_) => 8,
        DatabaseUrl::Postgres(_) => 16,
    };
    Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        // No query on every checkout: a broken connection shows on its first
        // real query (and r2d2 drops it), and the hot path saves a round trip.
        .test_on_check_out(false)
        .connection_timeout(std::time::Duration::from_secs(10))
        .build(Manager { url })
        .map_err(|e| StorageError::Connect(e.to_string()))
}

/// Runs pending migrations; returns how many ran.
pub fn migrate(conn: &mut Conn) -> Result<usize, StorageError> {
    let ran = match conn {
        Conn::Pg(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
        Conn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
    };
    ran.map_err(|e| StorageError::Migration(e.to_string()))
}

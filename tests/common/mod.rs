//! Shared helpers for Federa's end-to-end tests: real databases (a fresh
//! SQLite file, or a fresh PostgreSQL database when
//! `FEDERA_TEST_DATABASE_URL` names a server), a real Redis when
//! `FEDERA_TEST_REDIS_URL` does, and the app state the server builds.
//!
//! A variant whose service is not configured is skipped: it says so on
//! stderr and, when `FEDERA_TEST_SKIP_LOG` names a file (`make test` sets it),
//! appends a line there, so `make test` can list the skipped variants at the
//! end. With `FEDERA_TEST_REQUIRE_SERVICES=1` (`.ci/run` sets it) such a
//! variant fails instead: CI cannot pass by skipping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bad_idp;
pub mod browser;
pub mod logs;
pub mod upstream;
pub mod world;

use std::sync::Arc;

use diesel::{Connection as _, RunQueryDsl as _};
use federa_broker::{AdminService, SessionStore};
use federa_storage::{DbStore, MasterKey, RedisSessions};
use federa_web::metrics::Metrics;
use federa_web::AppState;

/// The admin token every test app accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-7b0c1a2e";

/// The master key of every test database.
pub const MASTER_KEY: [u8; 32] = [0x42; 32];

/// The environment variable naming a PostgreSQL server for the tests.
pub const PG_ENV: &str = "FEDERA_TEST_DATABASE_URL";
/// The environment variable naming a Redis server for the tests.
pub const REDIS_ENV: &str = "FEDERA_TEST_REDIS_URL";
/// The environment variable that, set to `1`, makes a variant whose service
/// is not configured fail instead of being skipped.
pub const REQUIRE_ENV: &str = "FEDERA_TEST_REQUIRE_SERVICES";
/// The environment variable naming a file each skipped variant appends a line to.
pub const SKIP_LOG_ENV: &str = "FEDERA_TEST_SKIP_LOG";

/// The value of a service variable, `None` when unset or empty.
fn service_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// Whether skipping is forbidden (`FEDERA_TEST_REQUIRE_SERVICES` set, and not to `0`).
pub fn services_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Records that `test` (named `binary::test path`, so it can be rerun by
/// name) does not run on `backend` because `var` is unset, or fails the test
/// when skipping is forbidden.
fn skip(test: &str, backend: &str, var: &str) {
    assert!(
        !services_required(),
        "{test} ({backend}): {var} is not set, and {REQUIRE_ENV} forbids skipping; set {var} (see README.md, Test)"
    );
    let line = format!("SKIPPED {test} ({backend}): {var} is not set");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV).filter(|p| !p.is_empty()) {
        use std::io::Write as _;
        // One append of one whole line: test binaries run one after another,
        // and the threads of one binary do not interleave a single write.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{SKIP_LOG_ENV}={}: {e}", std::path::Path::new(&path).display()));
        file.write_all(format!("{line}\n").as_bytes()).unwrap();
    }
}

/// The database kind of a [`TestDb`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// The path of a fixture under tests/fixtures.
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A database of its own for one test, removed afterwards.
pub struct TestDb {
    /// The `database.url` to open.
    pub url: String,
    /// The SQLite file, when SQLite.
    pub sqlite_path: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh SQLite file in a temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("federa.db");
        Self { url: format!("sqlite://{}", path.display()), sqlite_path: Some(path), _dir: Some(dir), pg: None }
    }

    /// A fresh PostgreSQL database, or `None` when no server is configured
    /// (the test is then skipped, or fails under `FEDERA_TEST_REQUIRE_SERVICES`).
    pub fn postgres(test: &str) -> Option<Self> {
        let Some(admin_url) = service_url(PG_ENV) else {
            skip(test, "PostgreSQL", PG_ENV);
            return None;
        };
        Some(Self::create_pg(admin_url))
    }

    fn create_pg(admin_url: String) -> Self {
        let name = format!("federa_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = diesel::PgConnection::establish(&admin_url).expect("connect to the PostgreSQL test server");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut c).unwrap();
        let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Self { url: format!("{base}/{name}"), sqlite_path: None, _dir: None, pg: Some((admin_url, name)) }
    }

    /// Another fresh database on the same backend and server.
    pub fn another(&self) -> Self {
        match &self.pg {
            Some((admin_url, _)) => Self::create_pg(admin_url.clone()),
            None => Self::sqlite(),
        }
    }

    /// Which backend this database is on.
    pub fn backend(&self) -> Backend {
        if self.pg.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// The names in the `realms` table, sorted, read with a connection of
    /// the test's own rather than through Federa: proof of where rows went.
    pub fn realm_names(&self) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        // Sorted here: the two backends collate differently.
        let query = diesel::sql_query("SELECT name FROM realms");
        let rows: Vec<Row> = match (&self.pg, &self.sqlite_path) {
            (Some(_), _) => query.load(&mut diesel::PgConnection::establish(&self.url).unwrap()).unwrap(),
            (None, Some(path)) => {
                query.load(&mut diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap()).unwrap()
            }
            (None, None) => unreachable!("a TestDb is SQLite or PostgreSQL"),
        };
        let mut names: Vec<String> = rows.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    /// Opens and migrates the database.
    pub fn store(&self) -> DbStore {
        let store = DbStore::open(&self.url, MasterKey::new(MASTER_KEY)).unwrap();
        store.migrate().unwrap();
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.pg {
            if let Ok(mut c) = diesel::PgConnection::establish(admin_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c);
            }
        }
    }
}

/// A Redis session store under a prefix of its own, or `None` when no server
/// is configured (the test is then skipped, or fails under
/// `FEDERA_TEST_REQUIRE_SERVICES`).
pub async fn redis_sessions(test: &str) -> Option<RedisSessions> {
    let Some(url) = service_url(REDIS_ENV) else {
        skip(test, "Redis", REDIS_ENV);
        return None;
    };
    let prefix = format!("federa-test:{}:", uuid::Uuid::new_v4().simple());
    Some(RedisSessions::connect(&url, &prefix).await.expect("connect to the Redis test server"))
}

/// The app state over a store, with embedded sessions.
pub fn state(store: &DbStore) -> actix_web::web::Data<AppState> {
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    state_with(store, sessions, "http://federa.test")
}

/// The app state over a store and a session store, with a public URL.
pub fn state_with(
    store: &DbStore,
    sessions: Arc<dyn SessionStore>,
    public_url: &str,
) -> actix_web::web::Data<AppState> {
    let store: Arc<dyn federa_broker::Store> = Arc::new(store.clone());
    let http = reqwest::Client::new();
    let admin = AdminService::new(store.clone());
    let epoch = admin.config_epoch();
    actix_web::web::Data::new(AppState {
        admin,
        broker: federa_broker::flow::Broker::new(store, sessions.clone(), http.clone(), public_url, epoch),
        themes: Arc::new(federa_web::pages::Themes::load(None).unwrap()),
        sessions,
        admin_token: federa_protocol::Secret::new(ADMIN_TOKEN),
        http,
        metrics: Metrics::new().unwrap(),
        public_url: public_url.into(),
    })
}

/// Builds the app on a state, as the server does, without a socket.
#[macro_export]
macro_rules! app {
    ($state:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data($state.clone())
                .wrap(actix_web::middleware::from_fn(federa_web::metrics::metrics_middleware))
                .configure(federa_web::configure),
        )
        .await
    };
}

/// Sends a request with the admin token and returns the status, the
/// `Location` header and the JSON body (Null when empty).
#[macro_export]
macro_rules! call {
    ($app:expr, $method:ident, $path:expr) => {
        $crate::call!($app, $method, $path, serde_json::Value::Null)
    };
    ($app:expr, $method:ident, $path:expr, $body:expr) => {{
        let mut req = actix_web::test::TestRequest::default()
            .method(actix_web::http::Method::$method)
            .uri(&$path)
            .insert_header(("Authorization", format!("Bearer {}", $crate::ADMIN_TOKEN)));
        let body: serde_json::Value = $body;
        if !body.is_null() {
            req = req.set_json(&body);
        }
        let resp = actix_web::test::call_service(&$app, req.to_request()).await;
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = actix_web::test::read_body(resp).await;
        let json: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, location, json)
    }};
}

/// A Federa server on a real socket (127.0.0.1, a free port), for flows that
/// a browser and upstream providers drive over HTTP.
pub struct RunningFedera {
    /// `http://127.0.0.1:<port>`, the public URL.
    pub base: String,
    /// Its state, for direct checks of the store.
    pub state: actix_web::web::Data<AppState>,
    handle: actix_web::dev::ServerHandle,
}

impl RunningFedera {
    /// Starts Federa over `store` and `sessions` in a thread of its own.
    pub fn start(store: &DbStore, sessions: Arc<dyn SessionStore>) -> Self {
        Self::start_at(store, sessions, "127.0.0.1:0")
    }

    /// Starts Federa on a given address (to restart an instance in place).
    pub fn start_at(store: &DbStore, sessions: Arc<dyn SessionStore>, addr: &str) -> Self {
        let listener = std::net::TcpListener::bind(addr).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = state_with(store, sessions, &base);
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        std::thread::spawn(move || {
            let sys = actix_web::rt::System::new();
            sys.block_on(async move {
                let server = actix_web::HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(server_state.clone())
                        .wrap(actix_web::middleware::from_fn(federa_web::metrics::metrics_middleware))
                        .configure(federa_web::configure)
                })
                .workers(2)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx.recv().unwrap();
        Self { base, state, handle }
    }

    /// Stops the server and waits until it has stopped.
    pub async fn shutdown(self) {
        self.handle.stop(true).await;
    }

    /// The admin API base.
    pub fn admin(&self) -> String {
        format!("{}/admin/realms", self.base)
    }
}

impl Drop for RunningFedera {
    fn drop(&mut self) {
        // Stopping is asynchronous; the thread ends with the server.
        drop(self.handle.stop(false));
    }
}

/// Runs `async fn $name(db: TestDb)` (in scope where the macro is used) as
/// two tests: `$name::sqlite`, and `$name::postgres` (skipped, saying so,
/// without FEDERA_TEST_DATABASE_URL), each on a database of its own.
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::TestDb::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::TestDb::postgres(concat!(module_path!(), "::postgres")) else {
                    return;
                };
                super::$name(db).await;
            }
        }
    };
}

//! Wiring: opens storage and sessions, loads realm files, and runs the HTTP
//! server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{middleware, web, App, HttpServer};
use base64::Engine as _;
use federa_broker::flow::Broker;
use federa_broker::{AdminService, ImportOutcome, RealmSource, SessionStore};
use federa_protocol::Secret;
use federa_storage::{DatabaseUrl, DbStore, MasterKey, RedisSessions};
use federa_web::metrics::Metrics;
use federa_web::pages::Themes;
use federa_web::AppState;
use rand::RngCore as _;

use crate::config::Settings;
use crate::realm_files;

/// Where the generated master key is kept when none is configured: beside
/// the SQLite file, or in the working folder for PostgreSQL.
fn key_file_path(settings: &Settings) -> PathBuf {
    match DatabaseUrl::parse(&settings.database.url) {
        Ok(DatabaseUrl::Sqlite(path)) => {
            let p = Path::new(&path);
            p.with_file_name(format!(
                "{}.key",
                p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "federa".into())
            ))
        }
        _ => PathBuf::from("federa.key"),
    }
}

fn master_key(settings: &Settings) -> Result<MasterKey, String> {
    if let Some(bytes) = settings.keys.master_key_bytes() {
        return Ok(MasterKey::new(bytes));
    }
    let path = key_file_path(settings);
    let engine = base64::engine::general_purpose::STANDARD;
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = engine.decode(text.trim()).map_err(|e| format!("{}: not base64: {e}", path.display()))?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| format!("{}: the master key must be 32 bytes", path.display()))?;
        log::warn!("using the generated master key in {}; production must set keys.master_key", path.display());
        return Ok(MasterKey::new(bytes));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    write_private(&path, &engine.encode(bytes))?;
    log::warn!(
        "generated a master key in {}; keep it with the database, and set keys.master_key in production",
        path.display()
    );
    Ok(MasterKey::new(bytes))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn open_store(settings: &Settings, migrate: bool) -> Result<DbStore, String> {
    let store = DbStore::open(&settings.database.url, master_key(settings)?).map_err(|e| e.to_string())?;
    if migrate {
        let n = store.migrate().map_err(|e| e.to_string())?;
        if n > 0 {
            log::info!("ran {n} database migration(s)");
        }
    }
    Ok(store)
}

/// `federa migrate`.
pub fn migrate_only(settings: &Settings) -> Result<(), String> {
    open_store(settings, true).map(|_| ())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

/// `federa import FILE...`: every file in its own transaction; stops at the
/// first failure.
pub fn import(settings: &Settings, files: &[PathBuf]) -> Result<(), String> {
    let store = open_store(settings, true)?;
    let admin = AdminService::new(Arc::new(store));
    runtime()?.block_on(async {
        for path in files {
            let file = realm_files::read(path)?;
            let (name, ignored) =
                admin.create_realm(file.repr, RealmSource::Api).await.map_err(|e| format!("{}: {e}", file.path))?;
            realm_files::warn_ignored(&file.path, &name, &ignored);
            println!("imported realm {name:?} from {}", file.path);
        }
        Ok(())
    })
}

async fn load_import_dir(admin: &AdminService, dir: &Path) -> Result<(), String> {
    for path in realm_files::list_dir(dir)? {
        let file = realm_files::read(&path)?;
        let (name, outcome, ignored) = admin
            .load_realm_file(file.repr, &file.path, &file.digest)
            .await
            .map_err(|e| format!("{}: {e}", file.path))?;
        realm_files::warn_ignored(&file.path, &name, &ignored);
        match outcome {
            ImportOutcome::Created => log::info!("realm {name:?} created from {}", file.path),
            ImportOutcome::Updated => log::info!("realm {name:?} reloaded from {}", file.path),
            ImportOutcome::Unchanged => log::info!("realm {name:?} unchanged in {}", file.path),
        }
    }
    Ok(())
}

/// Logs, at start, every identity provider whose token signatures are not
/// verified (`validateSignature` = "false"): an opt-out of a check is loud.
async fn warn_unverified_upstreams(store: &dyn federa_broker::Store) {
    let realms = match store.list_realms().await {
        Ok(r) => r,
        Err(e) => {
            log::warn!("could not list realms to check their identity providers: {e}");
            return;
        }
    };
    for realm in realms {
        let name = realm.repr.realm.clone().unwrap_or_default();
        for idp in store.list_idps(&name).await.unwrap_or_default() {
            if idp.config.get("validateSignature").map(|v| v.trim()) == Some("false") {
                log::warn!(
                    "realm {name:?}: identity provider {:?}: validateSignature is false: the signatures of its tokens are NOT verified",
                    idp.alias.as_deref().unwrap_or_default()
                );
            }
        }
    }
}

/// `federa serve`.
pub fn serve(settings: Settings, migrate: bool) -> Result<(), String> {
    let started = std::time::Instant::now();
    let store = open_store(&settings, migrate)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let sessions: Arc<dyn SessionStore> = if settings.sessions.is_embedded() {
            let embedded = store.embedded_sessions();
            let purger = embedded.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    if let Err(e) = purger.purge_expired().await {
                        log::warn!("could not purge expired sessions: {e}");
                    }
                }
            });
            Arc::new(embedded)
        } else {
            Arc::new(RedisSessions::connect(&settings.sessions.url, "federa:").await.map_err(|e| e.to_string())?)
        };
        let store: Arc<dyn federa_broker::Store> = Arc::new(store);
        let admin = AdminService::new(store.clone());
        if let Some(dir) = &settings.realms.import_dir {
            load_import_dir(&admin, dir).await?;
        }
        let admin_token = match &settings.admin.token {
            Some(t) => t.duplicate(),
            None => {
                let t = federa_broker::keys::random_secret();
                // Printed once, on purpose: it is the only way to reach the
                // admin API when none is configured.
                log::warn!("no admin.token configured; generated admin token for this run: {t}");
                Secret::new(t)
            }
        };
        let metrics = Metrics::new().map_err(|e| e.to_string())?;
        // Upstream endpoints are called as configured; a redirect there is a
        // misconfiguration to report, not to follow with a client secret.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        // Bound before the state is built, so that with port 0 and no
        // public URL the issuer names the port actually bound.
        let listener = std::net::TcpListener::bind(settings.server.listen)
            .map_err(|e| format!("server.listen {}: {e}", settings.server.listen))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let public_url = match settings.server.public_url {
            Some(_) => settings.public_url(),
            None => format!("http://{bound}"),
        };
        let themes = Arc::new(Themes::load(settings.themes.dir.as_deref()).map_err(|e| format!("themes.dir: {e}"))?);
        let broker = Broker::new(store.clone(), sessions.clone(), http.clone(), &public_url, admin.config_epoch());
        broker.spawn_upstream_refresh(federa_broker::flow::upstream::REFRESH_EVERY);
        broker.spawn_backchannel_sweeper(federa_broker::flow::backchannel::SWEEP_EVERY);
        warn_unverified_upstreams(store.as_ref()).await;
        let state = web::Data::new(AppState {
            admin,
            broker,
            themes,
            sessions,
            admin_token,
            http,
            metrics,
            public_url: public_url.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(federa_web::metrics::metrics_middleware))
                .configure(federa_web::configure)
        })
        .listen(listener)
        .map_err(|e| format!("server.listen {bound}: {e}"))?;
        log::info!("listening on http://{bound} (public URL {public_url}), ready in {:?}", started.elapsed());
        server.run().await.map_err(|e| e.to_string())
    })
}

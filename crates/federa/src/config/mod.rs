//! Server configuration: one typed [`Settings`] value, loaded once at start.
//!
//! Settings come from four layers, each overriding the one before it:
//! built-in defaults, the TOML file, the environment (`FEDERA_<SECTION>_<KEY>`,
//! and `RUST_LOG` for `log.level`), and command-line flags ([`Overrides`]).
//! [`load`] reports every problem it finds, each with where it came from (file
//! and 1-based line, environment variable or flag), so that `federa
//! check-config` can list them all at once instead of one per run.
//!
//! Each setting is described once, in the table in `table.rs` (its names,
//! flag, default, documentation and checker); the `layers` module reads the
//! file, the environment and the flags by that table, and a unit test keeps
//! the table in docs/CONFIGURATION.md in step with it. A `FEDERA_` variable
//! that is not a setting is a warning ([`Severity::Warning`]): Kubernetes sets
//! several in every pod when a Service is named `federa`.
//!
//! Secret values never appear in a [`ConfigProblem`] message or in `Debug`
//! output: they are held in [`Secret`], and messages about them describe what
//! is wrong without quoting the value.

mod env_names;
mod layers;
mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use url::Url;

use layers::{read_env, read_file, read_flags, resolve, Problems, Values};
use table::decode_master_key;

/// The address the server binds to when nothing else is configured.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The database used when nothing else is configured: `./federa.db`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://federa.db";

/// The session store used when nothing else is configured.
pub const EMBEDDED_SESSIONS: &str = "embedded";

/// The log filter used when nothing else is configured.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// The whole server configuration, validated.
#[derive(Debug, Default)]
pub struct Settings {
    /// The `[server]` section.
    pub server: ServerSettings,
    /// The `[database]` section.
    pub database: DatabaseSettings,
    /// The `[sessions]` section.
    pub sessions: SessionSettings,
    /// The `[admin]` section.
    pub admin: AdminSettings,
    /// The `[keys]` section.
    pub keys: KeySettings,
    /// The `[realms]` section.
    pub realms: RealmSettings,
    /// The `[themes]` section.
    pub themes: ThemeSettings,
    /// The `[log]` section.
    pub log: LogSettings,
}

impl Settings {
    /// The public URL with no trailing slash: `server.public_url`, or
    /// `http://<listen>` when it is not set.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.server.listen),
        }
    }
}

/// The `[server]` section.
#[derive(Debug)]
pub struct ServerSettings {
    /// The address to bind to (`server.listen`), 127.0.0.1:8080 by default.
    pub listen: SocketAddr,
    /// The base of every issuer and redirect URI (`server.public_url`), an
    /// absolute http or https URL without query or fragment; `None` means
    /// `http://<listen>`.
    pub public_url: Option<Url>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { listen: DEFAULT_LISTEN, public_url: None }
    }
}

/// The `[database]` section.
#[derive(Debug)]
pub struct DatabaseSettings {
    /// The database (`database.url`): `sqlite://PATH`, `postgres://...` or
    /// `postgresql://...`. It may hold a password, so it is never logged whole.
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self { url: DEFAULT_DATABASE_URL.to_owned() }
    }
}

/// The `[sessions]` section.
#[derive(Debug)]
pub struct SessionSettings {
    /// The session store (`sessions.url`): `embedded` (kept in the database),
    /// or a `redis://` or `rediss://` URL.
    pub url: String,
}

impl SessionSettings {
    /// Whether sessions are kept in the database rather than in Redis.
    pub fn is_embedded(&self) -> bool {
        self.url == EMBEDDED_SESSIONS
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self { url: EMBEDDED_SESSIONS.to_owned() }
    }
}

/// The `[admin]` section.
#[derive(Debug, Default)]
pub struct AdminSettings {
    /// The bearer token of the admin API, whether it was given directly
    /// (`admin.token`) or read from `admin.token_file`; `None` means the server
    /// generates one.
    pub token: Option<Secret>,
    /// The file the token was read from, when it came from one.
    pub token_file: Option<PathBuf>,
}

/// The `[keys]` section.
#[derive(Debug, Default)]
pub struct KeySettings {
    /// The master key as base64 text, whether it was given directly
    /// (`keys.master_key`) or read from `keys.master_key_file`; [`load`] has
    /// checked that it decodes to exactly 32 bytes. `None` means the server
    /// uses a generated key kept beside the database.
    pub master_key: Option<Secret>,
    /// The file the master key was read from, when it came from one.
    pub master_key_file: Option<PathBuf>,
}

impl KeySettings {
    /// The 32 bytes of the master key, or `None` when no key is configured.
    ///
    /// A key built by [`load`] always decodes; a key that was put into
    /// `master_key` by hand and does not decode to 32 bytes also gives `None`.
    pub fn master_key_bytes(&self) -> Option<[u8; 32]> {
        self.master_key.as_ref().and_then(|key| decode_master_key(key.expose()).ok())
    }
}

/// The `[realms]` section.
#[derive(Debug, Default)]
pub struct RealmSettings {
    /// The folder of realm files loaded at start (`realms.import_dir`), if any.
    pub import_dir: Option<PathBuf>,
}

/// The `[themes]` section.
#[derive(Debug, Default)]
pub struct ThemeSettings {
    /// A folder of login themes (`themes.dir`), each a folder of handlebars
    /// templates overriding the built-in `default` theme's; a realm picks one
    /// by its `loginTheme`.
    pub dir: Option<PathBuf>,
}

/// The `[log]` section.
#[derive(Debug)]
pub struct LogSettings {
    /// The log filter (`log.level`, or `RUST_LOG`), in `env_logger` syntax.
    pub level: String,
    /// The shape of each log line (`log.format`).
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: DEFAULT_LOG_LEVEL.to_owned(), format: LogFormat::default() }
    }
}

/// The shape of each log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (`text`), the default.
    #[default]
    Text,
    /// One JSON object per line (`json`), for log collectors.
    Json,
}

/// Secrets are the protocol crate's [`Secret`]: never printed, compared in constant time.
pub use federa_protocol::Secret;

/// Settings given on the command line; they override every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`: overrides `server.listen`.
    pub listen: Option<SocketAddr>,
    /// `--public-url`: overrides `server.public_url`.
    pub public_url: Option<String>,
    /// `--database-url`: overrides `database.url`.
    pub database_url: Option<String>,
    /// `--sessions-url`: overrides `sessions.url`.
    pub sessions_url: Option<String>,
    /// `--import-dir`: overrides `realms.import_dir`.
    pub import_dir: Option<PathBuf>,
}

/// One thing wrong with the configuration, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where the value came from: the file's path, `environment FEDERA_X` or `flag --x`.
    pub source: String,
    /// The 1-based line in the file, when the problem is in the file.
    pub line: Option<usize>,
    /// The setting, such as `server.listen`; empty when the problem is not about one
    /// setting (a syntax error, an unreadable file, an unknown environment variable).
    pub key: String,
    /// What is wrong. It never contains the value of a secret.
    pub message: String,
    /// Whether it stops the server.
    pub severity: Severity,
}

/// Whether a [`ConfigProblem`] stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration cannot be used.
    Error,
    /// The server starts and logs it (an unknown `FEDERA_` environment
    /// variable); `check-config` still reports it as a problem.
    Warning,
}

impl ConfigProblem {
    /// Whether it stops the server.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigProblem {}

/// What [`load`] returns when nothing stops the server.
#[derive(Debug)]
pub struct Loaded {
    /// The settings.
    pub settings: Settings,
    /// Everything found that does not stop the server, each with
    /// [`Severity::Warning`]: `FEDERA_` environment variables that are not
    /// settings. `serve` logs them and starts; `check-config` reports them as
    /// problems.
    pub warnings: Vec<ConfigProblem>,
}

/// Loads the settings: defaults < `file` < `env` < `overrides`.
///
/// `env` is the process environment as `(name, value)` pairs (pass
/// `std::env::vars()`); taking it as an argument keeps tests away from the
/// real environment. Variables that do not start with `FEDERA_` are ignored,
/// except `RUST_LOG`, and except that any variable may be referred to as
/// `${env:NAME}` in a string value of the file or of a `FEDERA_` variable.
/// An empty `FEDERA_` variable counts as not set. A `FEDERA_` variable that
/// is not a setting is a warning, not an error (Kubernetes sets
/// `FEDERA_PORT` and others for a Service named `federa`).
///
/// Within one layer, setting both a secret and its `*_file` key is a problem;
/// a later layer that sets either one replaces both from earlier layers, so
/// the environment can swap a token in the file for a token file.
///
/// Only the values that win are substituted and validated, so an environment
/// variable or flag can stand in for a broken value in the file. Unknown
/// sections, unknown keys, wrong types and syntax errors are reported in every
/// layer.
///
/// When some error is found, every error and warning is returned, ordered by
/// layer and then by line; otherwise the settings and the warnings.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
) -> Result<Loaded, Vec<ConfigProblem>> {
    let env: BTreeMap<String, String> = env.into_iter().collect();
    let mut problems = Problems::default();

    let mut values = Values::default();
    if let Some(path) = file {
        let layer = read_file(path, &mut problems);
        layer.check_exclusive(&mut problems);
        values.merge(layer);
    }
    let layer = read_env(&env, &mut problems);
    layer.check_exclusive(&mut problems);
    values.merge(layer);
    values.merge(read_flags(overrides));

    let settings = resolve(values, &env, &mut problems);
    let found = problems.finish();
    if found.iter().any(ConfigProblem::is_error) {
        Err(found)
    } else {
        Ok(Loaded { settings, warnings: found })
    }
}

#[cfg(test)]
mod tests;

//! Server configuration: one typed [`Settings`] value, loaded once at start.
//!
//! Settings come from four layers, each overriding the one before it:
//! built-in defaults, the TOML file, the environment (`FEDERA_<SECTION>_<KEY>`,
//! and `RUST_LOG` for `log.level`), and command-line flags ([`Overrides`]).
//! [`load`] reports every problem it finds, each with where it came from (file
//! and 1-based line, environment variable or flag), so that `federa
//! check-config` can list them all at once instead of one per run.
//!
//! Secret values never appear in a [`ConfigProblem`] message or in `Debug`
//! output: they are held in [`Secret`], and messages about them describe what
//! is wrong without quoting the value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use toml_edit::ImDocument;
use url::Url;

/// The address the server binds to when nothing else is configured.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The database used when nothing else is configured: `./federa.db`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://federa.db";

/// The session store used when nothing else is configured.
pub const EMBEDDED_SESSIONS: &str = "embedded";

/// The log filter used when nothing else is configured.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Environment variables with the `FEDERA_` prefix that are not settings but
/// are read elsewhere (the command line takes `--config` from `FEDERA_CONFIG`),
/// so they must not be reported as unknown settings.
const NON_SETTING_ENV: &[&str] = &["FEDERA_CONFIG"];

/// The environment variable that also sets `log.level`, as most Rust programs expect.
const RUST_LOG: &str = "RUST_LOG";

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

/// Loads the settings: defaults < `file` < `env` < `overrides`.
///
/// `env` is the process environment as `(name, value)` pairs (pass
/// `std::env::vars()`); taking it as an argument keeps tests away from the
/// real environment. Variables that do not start with `FEDERA_` are ignored,
/// except `RUST_LOG`, and except that any variable may be referred to as
/// `${env:NAME}` in a string value of the file or of a `FEDERA_` variable.
/// An empty `FEDERA_` variable counts as not set.
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
/// Every problem found is returned, ordered by layer and then by line.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
) -> Result<Settings, Vec<ConfigProblem>> {
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

    let settings = resolve(values, overrides, &env, &mut problems);
    problems.finish().map(|()| settings)
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// The TOML file.
    File,
    /// The environment.
    Environment,
    /// A command-line flag.
    Flag,
}

/// The place a value was read from, precise enough to point a user at it.
#[derive(Debug, Clone)]
struct Origin {
    /// The layer the value belongs to.
    stage: Stage,
    /// The file's path, `environment NAME` or `flag --name`.
    source: String,
    /// The 1-based line in the file, for values from the file.
    line: Option<usize>,
}

/// A value as written, before substitution and validation.
#[derive(Debug, Clone)]
struct Given {
    /// The text as written.
    text: String,
    /// Where it was written.
    origin: Origin,
}

/// Every setting a user can write, in the order of the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `server.listen`.
    ServerListen,
    /// `server.public_url`.
    ServerPublicUrl,
    /// `database.url`.
    DatabaseUrl,
    /// `sessions.url`.
    SessionsUrl,
    /// `admin.token`.
    AdminToken,
    /// `admin.token_file`.
    AdminTokenFile,
    /// `keys.master_key`.
    KeysMasterKey,
    /// `keys.master_key_file`.
    KeysMasterKeyFile,
    /// `realms.import_dir`.
    RealmsImportDir,
    /// `themes.dir`.
    ThemesDir,
    /// `log.level`.
    LogLevel,
    /// `log.format`.
    LogFormat,
}

/// The number of settings, for the fixed-size table in [`Values`].
const FIELD_COUNT: usize = 12;

impl Field {
    /// Every setting, in the order of [`Field`]'s discriminants.
    const ALL: [Field; FIELD_COUNT] = [
        Field::ServerListen,
        Field::ServerPublicUrl,
        Field::DatabaseUrl,
        Field::SessionsUrl,
        Field::AdminToken,
        Field::AdminTokenFile,
        Field::KeysMasterKey,
        Field::KeysMasterKeyFile,
        Field::RealmsImportDir,
        Field::ThemesDir,
        Field::LogLevel,
        Field::LogFormat,
    ];

    /// The section and key names in the TOML file.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Field::ServerListen => ("server", "listen"),
            Field::ServerPublicUrl => ("server", "public_url"),
            Field::DatabaseUrl => ("database", "url"),
            Field::SessionsUrl => ("sessions", "url"),
            Field::AdminToken => ("admin", "token"),
            Field::AdminTokenFile => ("admin", "token_file"),
            Field::KeysMasterKey => ("keys", "master_key"),
            Field::KeysMasterKeyFile => ("keys", "master_key_file"),
            Field::RealmsImportDir => ("realms", "import_dir"),
            Field::ThemesDir => ("themes", "dir"),
            Field::LogLevel => ("log", "level"),
            Field::LogFormat => ("log", "format"),
        }
    }

    /// The dotted name used in messages, such as `server.listen`.
    fn key(self) -> String {
        let (section, name) = self.names();
        format!("{section}.{name}")
    }

    /// The environment variable, `FEDERA_<SECTION>_<KEY>` in upper case.
    fn env_name(self) -> String {
        let (section, name) = self.names();
        format!("FEDERA_{section}_{name}").to_ascii_uppercase()
    }

    /// The setting with this section and key in the file, if there is one.
    fn find(section: &str, name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.names() == (section, name))
    }

    /// Whether some setting lives in this section.
    fn is_section(section: &str) -> bool {
        Field::ALL.into_iter().any(|field| field.names().0 == section)
    }
}

/// Pairs of a secret and the file that may hold it instead; at most one of
/// each pair may be set in a layer.
const EXCLUSIVE: [(Field, Field); 2] =
    [(Field::AdminToken, Field::AdminTokenFile), (Field::KeysMasterKey, Field::KeysMasterKeyFile)];

/// The values one layer sets, or the merge of several layers.
#[derive(Debug, Default)]
struct Values([Option<Given>; FIELD_COUNT]);

impl Values {
    /// Records a value, replacing any earlier one in the same layer.
    fn set(&mut self, field: Field, given: Given) {
        self.0[field as usize] = Some(given);
    }

    /// Takes a value out, leaving it unset.
    fn take(&mut self, field: Field) -> Option<Given> {
        self.0[field as usize].take()
    }

    /// Whether the value is set.
    fn has(&self, field: Field) -> bool {
        self.0[field as usize].is_some()
    }

    /// Reports every secret that is set both directly and as a file.
    fn check_exclusive(&self, problems: &mut Problems) {
        for (secret, file) in EXCLUSIVE {
            if let (Some(_), Some(given)) = (&self.0[secret as usize], &self.0[file as usize]) {
                problems.at(&given.origin, &file.key(), format!("{} is also set; set only one of them", secret.key()));
            }
        }
    }

    /// Lays `upper` over `self`. A secret or its file in `upper` replaces both
    /// from `self`, so that a later layer can switch from one to the other.
    fn merge(&mut self, mut upper: Values) {
        for (secret, file) in EXCLUSIVE {
            if upper.has(secret) || upper.has(file) {
                self.take(secret);
                self.take(file);
            }
        }
        for field in Field::ALL {
            if let Some(given) = upper.take(field) {
                self.set(field, given);
            }
        }
    }
}

/// The problems found so far, with the layer each belongs to for ordering.
#[derive(Debug, Default)]
struct Problems(Vec<(Stage, ConfigProblem)>);

impl Problems {
    /// Records a problem with a value from `origin`.
    fn at(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        self.push(origin.stage, &origin.source, origin.line, key, message);
    }

    /// Records a problem.
    fn push(&mut self, stage: Stage, source: &str, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.0.push((
            stage,
            ConfigProblem { source: source.to_owned(), line, key: key.to_owned(), message: message.into() },
        ));
    }

    /// `Ok` when nothing was found, else every problem, ordered by layer, then
    /// by line and source, and otherwise in the order they were found.
    fn finish(mut self) -> Result<(), Vec<ConfigProblem>> {
        if self.0.is_empty() {
            return Ok(());
        }
        self.0.sort_by(|(a_stage, a), (b_stage, b)| (a_stage, a.line, &a.source).cmp(&(b_stage, b.line, &b.source)));
        Err(self.0.into_iter().map(|(_, problem)| problem).collect())
    }
}

/// The 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|byte| **byte == b'\n').count() + 1
}

/// Reads the TOML file into a layer, reporting syntax errors, unknown
/// sections and keys, and values that are not strings.
fn read_file(path: &Path, problems: &mut Problems) -> Values {
    let source = path.display().to_string();
    let mut values = Values::default();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            problems.push(Stage::File, &source, None, "", format!("cannot read the configuration file: {error}"));
            return values;
        }
    };
    let document = match ImDocument::parse(text.as_str()) {
        Ok(document) => document,
        Err(error) => {
            // Only the short message is kept: the full rendering quotes the
            // offending line, which may hold a secret.
            let line = error.span().map(|span| line_of(&text, span.start));
            problems.push(Stage::File, &source, line, "", format!("invalid TOML: {}", error.message().trim()));
            return values;
        }
    };
    let line = |span: Option<std::ops::Range<usize>>| span.map(|span| line_of(&text, span.start));

    let root = document.as_table();
    for (section, item) in root.iter() {
        let section_line = line(root.key(section).and_then(|key| key.span()));
        if !Field::is_section(section) {
            let message = if item.is_table_like() { "unknown section" } else { "unknown key" };
            problems.push(Stage::File, &source, section_line, section, message);
            continue;
        }
        let Some(table) = item.as_table_like() else {
            problems.push(
                Stage::File,
                &source,
                line(item.span()).or(section_line),
                section,
                format!("expected a table, found {}", item.type_name()),
            );
            continue;
        };
        for (name, value) in table.iter() {
            let key_line = line(table.key(name).and_then(|key| key.span()));
            let Some(field) = Field::find(section, name) else {
                problems.push(Stage::File, &source, key_line, &format!("{section}.{name}"), "unknown key");
                continue;
            };
            let value_line = line(value.span()).or(key_line);
            match value.as_str() {
                Some(text) => values.set(
                    field,
                    Given {
                        text: text.to_owned(),
                        origin: Origin { stage: Stage::File, source: source.clone(), line: value_line },
                    },
                ),
                None => problems.push(
                    Stage::File,
                    &source,
                    value_line,
                    &field.key(),
                    format!("expected a string, found {}", value.type_name()),
                ),
            }
        }
    }
    values
}

/// Reads the environment into a layer, reporting `FEDERA_` variables that
/// are not settings.
fn read_env(env: &BTreeMap<String, String>, problems: &mut Problems) -> Values {
    let mut values = Values::default();
    let given = |name: &str, text: &str| Given {
        text: text.to_owned(),
        origin: Origin { stage: Stage::Environment, source: format!("environment {name}"), line: None },
    };
    for (name, text) in env {
        if !name.starts_with("FEDERA_") || NON_SETTING_ENV.contains(&name.as_str()) {
            continue;
        }
        match Field::ALL.into_iter().find(|field| field.env_name() == *name) {
            Some(_) if text.is_empty() => {}
            Some(field) => values.set(field, given(name, text)),
            None => problems.push(Stage::Environment, &format!("environment {name}"), None, "", "unknown setting"),
        }
    }
    // `FEDERA_LOG_LEVEL` is the more specific name, so it wins over `RUST_LOG`.
    if !values.has(Field::LogLevel) {
        if let Some(text) = env.get(RUST_LOG).filter(|text| !text.is_empty()) {
            values.set(Field::LogLevel, given(RUST_LOG, text));
        }
    }
    values
}

/// The string flags as a layer; `--listen` and `--import-dir` are already
/// typed and are applied in [`resolve`].
fn read_flags(overrides: &Overrides) -> Values {
    let mut values = Values::default();
    let flags = [
        (Field::ServerPublicUrl, "--public-url", &overrides.public_url),
        (Field::DatabaseUrl, "--database-url", &overrides.database_url),
        (Field::SessionsUrl, "--sessions-url", &overrides.sessions_url),
    ];
    for (field, flag, value) in flags {
        if let Some(text) = value {
            values.set(
                field,
                Given {
                    text: text.clone(),
                    origin: Origin { stage: Stage::Flag, source: format!("flag {flag}"), line: None },
                },
            );
        }
    }
    values
}

/// Replaces every `${env:NAME}` in `text` with the variable's value. On
/// failure, returns one message per missing or malformed reference; the
/// messages name variables but never quote values.
fn substitute(text: &str, env: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
    const OPEN: &str = "${env:";
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            errors.push("unterminated ${env:NAME} reference".to_owned());
            rest = "";
            break;
        };
        let name = &after[..end];
        let well_formed = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            errors.push(format!("invalid environment variable name {name:?} in ${{env:...}}"));
        } else if let Some(value) = env.get(name) {
            out.push_str(value);
        } else {
            errors.push(format!("environment variable {name} is not set"));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The final text of a setting after substitution, with its origin; `None`
/// when it is not set or its substitution failed (which is then reported).
fn winning(
    values: &mut Values,
    field: Field,
    env: &BTreeMap<String, String>,
    problems: &mut Problems,
) -> Option<(String, Origin)> {
    let given = values.take(field)?;
    // Flags come from the shell, which has already expanded what it should.
    if given.origin.stage == Stage::Flag {
        return Some((given.text, given.origin));
    }
    match substitute(&given.text, env) {
        Ok(text) => Some((text, given.origin)),
        Err(messages) => {
            for message in messages {
                problems.at(&given.origin, &field.key(), message);
            }
            None
        }
    }
}

/// Reads a secret from a file, trimmed; reports an unreadable or empty file.
fn read_secret_file(path: &Path, origin: &Origin, key: &str, problems: &mut Problems) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => {
            problems.at(origin, key, format!("the file {:?} is empty", path.display().to_string()));
            None
        }
        Ok(text) => Some(text.trim().to_owned()),
        Err(error) => {
            problems.at(origin, key, format!("cannot read {:?}: {error}", path.display().to_string()));
            None
        }
    }
}

/// A non-empty path from a setting, or a problem.
fn path_value(text: String, origin: &Origin, key: &str, problems: &mut Problems) -> Option<PathBuf> {
    if text.is_empty() {
        problems.at(origin, key, "must not be empty");
        None
    } else {
        Some(PathBuf::from(text))
    }
}

/// Decodes a master key: standard base64, padding optional, exactly 32 bytes.
/// The error describes the problem without quoting the key.
fn decode_master_key(text: &str) -> Result<[u8; 32], String> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = ENGINE
        .decode(text.trim())
        .map_err(|_| "must be 32 bytes in standard base64, but is not valid base64".to_owned())?;
    let length = bytes.len();
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| format!("must be 32 bytes in standard base64, but decodes to {length} bytes"))
}

/// Checks `server.public_url`: an absolute http or https URL with a host and
/// no credentials, query or fragment.
fn parse_public_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("invalid URL {text:?}: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must be an http or https URL"));
    }
    if url.host().is_none() {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".to_owned());
    }
    if url.query().is_some() {
        return Err(format!("{text:?} must not have a query"));
    }
    if url.fragment().is_some() {
        return Err(format!("{text:?} must not have a fragment"));
    }
    Ok(url)
}

/// Checks `database.url`. Messages never quote the URL: it may hold a password.
fn check_database_url(text: &str) -> Result<(), String> {
    if let Some(path) = text.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("sqlite:// needs a file path, such as sqlite://federa.db".to_owned());
        }
        return Ok(());
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return Url::parse(text).map(|_| ()).map_err(|error| format!("not a valid PostgreSQL URL: {error}"));
    }
    match text.split_once("://") {
        Some((scheme, _)) => {
            Err(format!("unsupported scheme {scheme:?}; expected sqlite://, postgres:// or postgresql://"))
        }
        None => Err("must start with sqlite://, postgres:// or postgresql://".to_owned()),
    }
}

/// Checks `sessions.url`. Messages never quote the URL: it may hold a password.
fn check_sessions_url(text: &str) -> Result<(), String> {
    if text == EMBEDDED_SESSIONS {
        return Ok(());
    }
    if text.starts_with("redis://") || text.starts_with("rediss://") {
        return Url::parse(text).map(|_| ()).map_err(|error| format!("not a valid Redis URL: {error}"));
    }
    Err("must be \"embedded\" or a redis:// or rediss:// URL".to_owned())
}

/// Parses `log.format`.
fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("invalid log format {other:?}; expected \"text\" or \"json\"")),
    }
}

/// Substitutes and validates the winning value of every setting, and builds
/// the [`Settings`]. Invalid values are reported and left at their defaults.
fn resolve(
    mut values: Values,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
    problems: &mut Problems,
) -> Settings {
    let mut settings = Settings::default();

    // Typed flags win outright, so the values they replace are not checked.
    if let Some(listen) = overrides.listen {
        values.take(Field::ServerListen);
        settings.server.listen = listen;
    }
    if let Some(dir) = &overrides.import_dir {
        values.take(Field::RealmsImportDir);
        settings.realms.import_dir = Some(dir.clone());
    }

    let mut take = |field: Field, problems: &mut Problems| winning(&mut values, field, env, problems);

    if let Some((text, origin)) = take(Field::ServerListen, problems) {
        match text.parse() {
            Ok(listen) => settings.server.listen = listen,
            Err(_) => problems.at(&origin, &Field::ServerListen.key(), format!("invalid socket address {text:?}")),
        }
    }

    if let Some((text, origin)) = take(Field::ServerPublicUrl, problems) {
        match parse_public_url(&text) {
            Ok(url) => settings.server.public_url = Some(url),
            Err(message) => problems.at(&origin, &Field::ServerPublicUrl.key(), message),
        }
    }

    if let Some((text, origin)) = take(Field::DatabaseUrl, problems) {
        match check_database_url(&text) {
            Ok(()) => settings.database.url = text,
            Err(message) => problems.at(&origin, &Field::DatabaseUrl.key(), message),
        }
    }

    if let Some((text, origin)) = take(Field::SessionsUrl, problems) {
        match check_sessions_url(&text) {
            Ok(()) => settings.sessions.url = text,
            Err(message) => problems.at(&origin, &Field::SessionsUrl.key(), message),
        }
    }

    let token = take(Field::AdminToken, problems);
    let token_file = take(Field::AdminTokenFile, problems);
    if let Some((text, origin)) = token {
        if text.is_empty() {
            problems.at(&origin, &Field::AdminToken.key(), "must not be empty");
        } else {
            settings.admin.token = Some(Secret::new(text));
        }
    } else if let Some((text, origin)) = token_file {
        let key = Field::AdminTokenFile.key();
        if let Some(path) = path_value(text, &origin, &key, problems) {
            if let Some(token) = read_secret_file(&path, &origin, &key, problems) {
                settings.admin.token = Some(Secret::new(token));
            }
            settings.admin.token_file = Some(path);
        }
    }

    let master_key = take(Field::KeysMasterKey, problems);
    let master_key_file = take(Field::KeysMasterKeyFile, problems);
    if let Some((text, origin)) = master_key {
        match decode_master_key(&text) {
            Ok(_) => settings.keys.master_key = Some(Secret::new(text.trim().to_owned())),
            Err(message) => problems.at(&origin, &Field::KeysMasterKey.key(), message),
        }
    } else if let Some((text, origin)) = master_key_file {
        let key = Field::KeysMasterKeyFile.key();
        if let Some(path) = path_value(text, &origin, &key, problems) {
            if let Some(master_key) = read_secret_file(&path, &origin, &key, problems) {
                match decode_master_key(&master_key) {
                    Ok(_) => settings.keys.master_key = Some(Secret::new(master_key)),
                    Err(message) => {
                        problems.at(&origin, &key, format!("the key in {:?} {message}", path.display().to_string()))
                    }
                }
            }
            settings.keys.master_key_file = Some(path);
        }
    }

    if let Some((text, origin)) = take(Field::RealmsImportDir, problems) {
        settings.realms.import_dir = path_value(text, &origin, &Field::RealmsImportDir.key(), problems);
    }

    if let Some((text, origin)) = take(Field::ThemesDir, problems) {
        settings.themes.dir = path_value(text, &origin, &Field::ThemesDir.key(), problems);
    }

    if let Some((text, origin)) = take(Field::LogLevel, problems) {
        if text.trim().is_empty() {
            problems.at(&origin, &Field::LogLevel.key(), "must not be empty");
        } else {
            settings.log.level = text;
        }
    }

    if let Some((text, origin)) = take(Field::LogFormat, problems) {
        match parse_log_format(&text) {
            Ok(format) => settings.log.format = format,
            Err(message) => problems.at(&origin, &Field::LogFormat.key(), message),
        }
    }

    settings
}

#[cfg(test)]
mod tests;

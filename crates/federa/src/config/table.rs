//! The table of settings: each setting Federa accepts is described here once,
//! with its names, its flag, its default and how its text is checked and
//! stored. The file reader, the environment reader, the flags, the problem
//! messages and the table in docs/CONFIGURATION.md all follow from it.

use std::path::{Path, PathBuf};

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use url::Url;

use super::{LogFormat, Overrides, Secret, Settings, EMBEDDED_SESSIONS};

/// One setting.
pub(super) struct Setting {
    /// The section in the TOML file, such as `server`.
    pub section: &'static str,
    /// The key in that section, such as `listen`.
    pub name: &'static str,
    /// Another environment variable that also sets it, with less weight than
    /// `FEDERA_<SECTION>_<KEY>` (`RUST_LOG`, as most Rust programs expect).
    pub alias: Option<&'static str>,
    /// The command-line flag that overrides it, if any.
    pub flag: Option<Flag>,
    /// For a `*_file` setting, the dotted key of the secret it holds instead.
    /// Only one of the two may be set in a layer; a later layer that sets
    /// either replaces both; when both win, the direct secret is used.
    pub file_of: Option<&'static str>,
    /// Whether the value is a secret. Messages about secrets never quote them
    /// (every checker below keeps to that); the documentation marks them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub secret: bool,
    /// The default, as the documentation states it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub default: &'static str,
    /// What the setting is for, one sentence for the documentation.
    #[cfg_attr(not(test), allow(dead_code))]
    pub doc: &'static str,
    /// Checks the text (after `${env:NAME}` substitution) and stores the value
    /// in the settings; the error is the problem's message.
    pub apply: fn(&mut Settings, String) -> Result<(), String>,
}

/// A command-line flag that overrides a setting.
pub(super) struct Flag {
    /// The flag as typed, such as `--listen`.
    pub long: &'static str,
    /// The flag's value in [`Overrides`], as text.
    pub read: fn(&Overrides) -> Option<String>,
}

impl Setting {
    /// The dotted name used in messages, such as `server.listen`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    /// The environment variable, `FEDERA_<SECTION>_<KEY>` in upper case.
    pub fn env_name(&self) -> String {
        format!("FEDERA_{}_{}", self.section, self.name).to_ascii_uppercase()
    }
}

/// Every setting, in the order of the documentation. Problems about values are
/// reported in this order within a layer and line.
pub(super) const SETTINGS: &[Setting] = &[
    Setting {
        section: "server",
        name: "listen",
        alias: None,
        flag: Some(Flag { long: "--listen", read: |flags| flags.listen.map(|listen| listen.to_string()) }),
        file_of: None,
        secret: false,
        default: "`127.0.0.1:8080`",
        doc: "The address to bind to; port 0 picks a free port.",
        apply: |settings, text| {
            settings.server.listen = text.parse().map_err(|_| format!("invalid socket address {text:?}"))?;
            Ok(())
        },
    },
    Setting {
        section: "server",
        name: "public_url",
        alias: None,
        flag: Some(Flag { long: "--public-url", read: |flags| flags.public_url.clone() }),
        file_of: None,
        secret: false,
        default: "`http://<listen>` (the bound port when listen uses port 0)",
        doc: "The base of every issuer and redirect URI: http or https, no query or fragment.",
        apply: |settings, text| {
            settings.server.public_url = Some(parse_public_url(&text)?);
            Ok(())
        },
    },
    Setting {
        section: "database",
        name: "url",
        alias: None,
        flag: Some(Flag { long: "--database-url", read: |flags| flags.database_url.clone() }),
        file_of: None,
        secret: false,
        default: "`sqlite://federa.db`",
        doc: "`sqlite://PATH`, `postgres://...` or `postgresql://...`; never logged, as it may hold a password.",
        apply: |settings, text| {
            check_database_url(&text)?;
            settings.database.url = text;
            Ok(())
        },
    },
    Setting {
        section: "sessions",
        name: "url",
        alias: None,
        flag: Some(Flag { long: "--sessions-url", read: |flags| flags.sessions_url.clone() }),
        file_of: None,
        secret: false,
        default: "`embedded`",
        doc: "`embedded` (kept in the database), or a `redis://` or `rediss://` URL.",
        apply: |settings, text| {
            check_sessions_url(&text)?;
            settings.sessions.url = text;
            Ok(())
        },
    },
    Setting {
        section: "admin",
        name: "token",
        alias: None,
        flag: None,
        file_of: None,
        secret: true,
        default: "generated, printed once",
        doc: "The bearer token of the admin API.",
        apply: |settings, text| {
            if text.is_empty() {
                return Err("must not be empty".to_owned());
            }
            settings.admin.token = Some(Secret::new(text));
            Ok(())
        },
    },
    Setting {
        section: "admin",
        name: "token_file",
        alias: None,
        flag: None,
        file_of: Some("admin.token"),
        secret: false,
        default: "none",
        doc: "A file holding `admin.token` (trimmed).",
        apply: |settings, text| {
            let path = non_empty_path(text)?;
            settings.admin.token_file = Some(path.clone());
            settings.admin.token = Some(Secret::new(read_secret_file(&path)?));
            Ok(())
        },
    },
    Setting {
        section: "keys",
        name: "master_key",
        alias: None,
        flag: None,
        file_of: None,
        secret: true,
        default: "generated into `<database>.key` beside a SQLite file (`./federa.key` for PostgreSQL)",
        doc: "32 bytes in standard base64 that encrypt stored secrets and signing keys.",
        apply: |settings, text| {
            decode_master_key(&text)?;
            settings.keys.master_key = Some(Secret::new(text.trim().to_owned()));
            Ok(())
        },
    },
    Setting {
        section: "keys",
        name: "master_key_file",
        alias: None,
        flag: None,
        file_of: Some("keys.master_key"),
        secret: false,
        default: "none",
        doc: "A file holding `keys.master_key` (trimmed).",
        apply: |settings, text| {
            let path = non_empty_path(text)?;
            settings.keys.master_key_file = Some(path.clone());
            let key = read_secret_file(&path)?;
            decode_master_key(&key)
                .map_err(|message| format!("the key in {:?} {message}", path.display().to_string()))?;
            settings.keys.master_key = Some(Secret::new(key));
            Ok(())
        },
    },
    Setting {
        section: "realms",
        name: "import_dir",
        alias: None,
        flag: Some(Flag {
            long: "--import-dir",
            read: |flags| flags.import_dir.as_ref().map(|dir| dir.to_string_lossy().into_owned()),
        }),
        file_of: None,
        secret: false,
        default: "none",
        doc: "A folder of realm files (`*.json`) loaded at start, read-only through the admin API.",
        apply: |settings, text| {
            settings.realms.import_dir = Some(non_empty_path(text)?);
            Ok(())
        },
    },
    Setting {
        section: "themes",
        name: "dir",
        alias: None,
        flag: None,
        file_of: None,
        secret: false,
        default: "none: only the built-in `default` theme",
        doc: "A folder of login themes, each a folder of templates (see below).",
        apply: |settings, text| {
            settings.themes.dir = Some(non_empty_path(text)?);
            Ok(())
        },
    },
    Setting {
        section: "log",
        name: "level",
        alias: Some("RUST_LOG"),
        flag: None,
        file_of: None,
        secret: false,
        default: "`info`",
        doc: "The log filter, in `env_logger` syntax.",
        apply: |settings, text| {
            if text.trim().is_empty() {
                return Err("must not be empty".to_owned());
            }
            settings.log.level = text;
            Ok(())
        },
    },
    Setting {
        section: "log",
        name: "format",
        alias: None,
        flag: None,
        file_of: None,
        secret: false,
        default: "`text`",
        doc: "`text`, or `json` for one JSON object per line.",
        apply: |settings, text| {
            settings.log.format = parse_log_format(&text)?;
            Ok(())
        },
    },
];

/// The index in [`SETTINGS`] of the setting with this dotted key.
pub(super) fn index_of(key: &str) -> Option<usize> {
    SETTINGS.iter().position(|setting| setting.key() == key)
}

/// The table of settings in docs/CONFIGURATION.md, one row per setting.
#[cfg(test)]
pub(super) fn markdown_table() -> String {
    let mut out = String::from("| key | environment | flag | default | meaning |\n| --- | --- | --- | --- | --- |\n");
    for setting in SETTINGS {
        let mut environment = format!("`{}`", setting.env_name());
        if let Some(alias) = setting.alias {
            environment.push_str(&format!(" (or `{alias}`)"));
        }
        let flag = setting.flag.as_ref().map(|flag| format!("`{}`", flag.long)).unwrap_or_default();
        let secret = if setting.secret { " Secret: never logged." } else { "" };
        out.push_str(&format!(
            "| `{}` | {environment} | {flag} | {} | {}{secret} |\n",
            setting.key(),
            setting.default,
            setting.doc
        ));
    }
    out
}

/// Reads a secret from a file, trimmed; an unreadable or empty file is an error.
fn read_secret_file(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Err(format!("the file {:?} is empty", path.display().to_string())),
        Ok(text) => Ok(text.trim().to_owned()),
        Err(error) => Err(format!("cannot read {:?}: {error}", path.display().to_string())),
    }
}

/// A non-empty path.
fn non_empty_path(text: String) -> Result<PathBuf, String> {
    if text.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(PathBuf::from(text))
    }
}

/// Decodes a master key: standard base64, padding optional, exactly 32 bytes.
/// The error describes the problem without quoting the key.
pub(super) fn decode_master_key(text: &str) -> Result<[u8; 32], String> {
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
pub(super) fn check_database_url(text: &str) -> Result<(), String> {
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
pub(super) fn check_sessions_url(text: &str) -> Result<(), String> {
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

//! Realm files: Keycloak realm exports read from `realms.import_dir` at start
//! (read-only through the admin API afterwards), by `federa import`, and by
//! `federa check-config`. `${env:NAME}` in any string takes a secret from the
//! environment.

use std::path::{Path, PathBuf};

use federa_broker::admin::prepare_realm;
use federa_broker::model::Notice;
use federa_broker::repr::RealmRepresentation;
use federa_broker::{validate, RealmSource};
use sha2::Digest as _;

use crate::config::Settings;

/// A parsed realm file.
pub struct RealmFile {
    /// Where it was read from.
    pub path: String,
    /// The realm, `${env:...}` expanded.
    pub repr: RealmRepresentation,
    /// SHA-256 of the file's bytes, hex.
    pub digest: String,
    /// Settings it holds that Federa stores but does not honour yet.
    pub notices: Vec<Notice>,
}

/// Reads and parses one realm file; errors name the file and, for JSON
/// errors, the line.
pub fn read(path: &Path) -> Result<RealmFile, String> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    // Parsed once straight into the representation, so that a wrong type is
    // reported with its line and column.
    serde_json::from_slice::<RealmRepresentation>(&bytes).map_err(|e| format!("{shown}:{}: {e}", e.line()))?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{shown}:{}: {e}", e.line()))?;
    validate::expand_env(&mut value, &|name| std::env::var(name).ok()).map_err(|e| format!("{shown}: {e}"))?;
    let repr: RealmRepresentation = serde_json::from_value(value).map_err(|e| format!("{shown}: {e}"))?;
    let notices = federa_broker::model::realm_notices(&repr);
    let name = repr.realm.clone().unwrap_or_default();
    for n in &notices {
        log::warn!("{shown}: realm {name:?}: {n}");
    }
    Ok(RealmFile { path: shown, repr, digest: hex::encode(sha2::Sha256::digest(&bytes)), notices })
}

/// The `*.json` files of a folder, sorted by name.
pub fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("realms.import_dir {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Logs the one warning about what a realm file carried that Federa ignores.
pub fn warn_ignored(path: &str, realm: &str, ignored: &[String]) {
    if !ignored.is_empty() {
        log::warn!("{path}: realm {realm:?}: ignored {} unsupported field(s): {}", ignored.len(), ignored.join(", "));
    }
}

/// `federa check-config`: the settings already loaded; now every realm file.
pub fn check(settings: &Settings) -> Result<(), String> {
    if let Some(dir) = &settings.themes.dir {
        // Loading renders every page of every theme, so a broken template is found here.
        federa_web::pages::Themes::load(Some(dir)).map_err(|e| format!("themes.dir {}: {e}", dir.display()))?;
    }
    let Some(dir) = &settings.realms.import_dir else {
        println!("configuration OK");
        return Ok(());
    };
    let mut problems = Vec::new();
    let files = list_dir(dir)?;
    for path in &files {
        match read(path) {
            Err(e) => problems.push(e),
            Ok(file) => {
                let name = file.repr.realm.clone().unwrap_or_default();
                for n in &file.notices {
                    // Most notices name settings without effect yet; some
                    // (validateSignature false) name a check turned off.
                    println!("{}: realm {name:?}: warning: {n}", file.path);
                }
                let source = RealmSource::File { path: file.path.clone(), digest: file.digest.clone() };
                let mut ignored = Vec::new();
                if let Err(e) = prepare_realm(file.repr, &source, &mut ignored, 0) {
                    problems.push(format!("{}: {e}", file.path));
                }
            }
        }
    }
    if problems.is_empty() {
        println!("configuration OK; {} realm file(s) OK", files.len());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        Err(format!("{} problem(s) in realm files", problems.len()))
    }
}

//! The layers of configuration (the TOML file, the environment, the flags),
//! each read into [`Values`] by following the table of settings, then merged,
//! substituted and checked into [`Settings`].

use std::collections::BTreeMap;
use std::path::Path;

use toml_edit::ImDocument;

use super::env_names::unknown_variable;
use super::table::{index_of, SETTINGS};
use super::{ConfigProblem, Overrides, Settings, Severity};

/// Environment variables with the `FEDERA_` prefix that are not settings but
/// are read elsewhere (the command line takes `--config` from `FEDERA_CONFIG`),
/// so they must not be reported as unknown settings.
pub(super) const NON_SETTING_ENV: &[&str] = &["FEDERA_CONFIG"];

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
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

/// The values one layer sets, or the merge of several layers, by index in
/// [`SETTINGS`].
#[derive(Debug)]
pub(super) struct Values(Vec<Option<Given>>);

impl Default for Values {
    fn default() -> Self {
        Self(vec![None; SETTINGS.len()])
    }
}

/// The pairs of a secret and the `*_file` setting that may hold it instead,
/// as indexes in [`SETTINGS`].
fn exclusive_pairs() -> impl Iterator<Item = (usize, usize)> {
    SETTINGS
        .iter()
        .enumerate()
        .filter_map(|(file, setting)| setting.file_of.and_then(index_of).map(|secret| (secret, file)))
}

impl Values {
    /// Records a value, replacing any earlier one in the same layer.
    fn set(&mut self, index: usize, given: Given) {
        self.0[index] = Some(given);
    }

    /// Takes a value out, leaving it unset.
    fn take(&mut self, index: usize) -> Option<Given> {
        self.0[index].take()
    }

    /// Whether the value is set.
    fn has(&self, index: usize) -> bool {
        self.0[index].is_some()
    }

    /// Reports every secret that is set both directly and as a file.
    pub(super) fn check_exclusive(&self, problems: &mut Problems) {
        for (secret, file) in exclusive_pairs() {
            if let (Some(_), Some(given)) = (&self.0[secret], &self.0[file]) {
                let message = format!("{} is also set; set only one of them", SETTINGS[secret].key());
                problems.at(&given.origin, &SETTINGS[file].key(), message);
            }
        }
    }

    /// Lays `upper` over `self`. A secret or its file in `upper` replaces both
    /// from `self`, so that a later layer can switch from one to the other.
    pub(super) fn merge(&mut self, mut upper: Values) {
        for (secret, file) in exclusive_pairs() {
            if upper.has(secret) || upper.has(file) {
                self.take(secret);
                self.take(file);
            }
        }
        for index in 0..SETTINGS.len() {
            if let Some(given) = upper.take(index) {
                self.set(index, given);
            }
        }
    }
}

/// The problems and warnings found so far, with the layer each belongs to for
/// ordering.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<(Stage, ConfigProblem)>);

impl Problems {
    /// Records a problem with a value from `origin`.
    fn at(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        self.push(origin.stage, &origin.source, origin.line, key, message);
    }

    /// Records a problem.
    fn push(&mut self, stage: Stage, source: &str, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.record(stage, Severity::Error, source, line, key, message.into());
    }

    /// Records a problem or a warning.
    fn record(
        &mut self,
        stage: Stage,
        severity: Severity,
        source: &str,
        line: Option<usize>,
        key: &str,
        message: String,
    ) {
        self.0.push((stage, ConfigProblem { source: source.to_owned(), line, key: key.to_owned(), message, severity }));
    }

    /// Every problem and warning, ordered by layer, then by line and source,
    /// and otherwise in the order they were found.
    pub(super) fn finish(mut self) -> Vec<ConfigProblem> {
        self.0.sort_by(|(a_stage, a), (b_stage, b)| (a_stage, a.line, &a.source).cmp(&(b_stage, b.line, &b.source)));
        self.0.into_iter().map(|(_, problem)| problem).collect()
    }
}

/// The 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes().iter().take(offset).filter(|byte| **byte == b'\n').count() + 1
}

/// Reads the TOML file into a layer, reporting syntax errors, unknown
/// sections and keys, and values that are not strings.
pub(super) fn read_file(path: &Path, problems: &mut Problems) -> Values {
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
        if !SETTINGS.iter().any(|setting| setting.section == section) {
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
            let key = format!("{section}.{name}");
            let Some(index) = index_of(&key) else {
                problems.push(Stage::File, &source, key_line, &key, "unknown key");
                continue;
            };
            let value_line = line(value.span()).or(key_line);
            match value.as_str() {
                Some(text) => values.set(
                    index,
                    Given {
                        text: text.to_owned(),
                        origin: Origin { stage: Stage::File, source: source.clone(), line: value_line },
                    },
                ),
                None => problems.push(
                    Stage::File,
                    &source,
                    value_line,
                    &key,
                    format!("expected a string, found {}", value.type_name()),
                ),
            }
        }
    }
    values
}

/// Reads the environment into a layer. `FEDERA_` variables that are not
/// settings are warnings, not problems: they do not stop the server, since
/// Kubernetes sets several (`FEDERA_PORT`, `FEDERA_SERVICE_HOST`, ...) in
/// every pod when a Service is named `federa`. Their values are never read.
pub(super) fn read_env(env: &BTreeMap<String, String>, problems: &mut Problems) -> Values {
    let mut values = Values::default();
    let given = |name: &str, text: &str| Given {
        text: text.to_owned(),
        origin: Origin { stage: Stage::Environment, source: format!("environment {name}"), line: None },
    };
    for (name, text) in env {
        if !name.starts_with("FEDERA_") || NON_SETTING_ENV.contains(&name.as_str()) {
            continue;
        }
        match SETTINGS.iter().position(|setting| setting.env_name() == *name) {
            Some(_) if text.is_empty() => {}
            Some(index) => values.set(index, given(name, text)),
            None => problems.record(
                Stage::Environment,
                Severity::Warning,
                &format!("environment {name}"),
                None,
                "",
                unknown_variable(name),
            ),
        }
    }
    // `FEDERA_<SECTION>_<KEY>` is the more specific name, so it wins over an alias.
    for (index, setting) in SETTINGS.iter().enumerate() {
        let Some(alias) = setting.alias else { continue };
        if !values.has(index) {
            if let Some(text) = env.get(alias).filter(|text| !text.is_empty()) {
                values.set(index, given(alias, text));
            }
        }
    }
    values
}

/// The flags as a layer.
pub(super) fn read_flags(overrides: &Overrides) -> Values {
    let mut values = Values::default();
    for (index, setting) in SETTINGS.iter().enumerate() {
        let Some(flag) = &setting.flag else { continue };
        if let Some(text) = (flag.read)(overrides) {
            values.set(
                index,
                Given {
                    text,
                    origin: Origin { stage: Stage::Flag, source: format!("flag {}", flag.long), line: None },
                },
            );
        }
    }
    values
}

/// Replaces every `${env:NAME}` in `text` with the variable's value. On
/// failure, returns one message per missing or malformed reference; the
/// messages name variables but never quote values.
pub(super) fn substitute(text: &str, env: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
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
    given: Option<Given>,
    key: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Problems,
) -> Option<(String, Origin)> {
    let given = given?;
    // Flags come from the shell, which has already expanded what it should.
    if given.origin.stage == Stage::Flag {
        return Some((given.text, given.origin));
    }
    match substitute(&given.text, env) {
        Ok(text) => Some((text, given.origin)),
        Err(messages) => {
            for message in messages {
                problems.at(&given.origin, key, message);
            }
            None
        }
    }
}

/// Substitutes and checks the winning value of every setting, and builds the
/// [`Settings`]. Only winning values are checked, so a later layer can stand
/// in for a broken value in an earlier one. Invalid values are reported and
/// left at their defaults.
pub(super) fn resolve(mut values: Values, env: &BTreeMap<String, String>, problems: &mut Problems) -> Settings {
    let mut settings = Settings::default();
    // Whether each setting's value won; a secret comes before its file in
    // [`SETTINGS`], so its entry is known when the file is reached.
    let mut won = vec![false; SETTINGS.len()];
    for (index, setting) in SETTINGS.iter().enumerate() {
        let key = setting.key();
        let Some((text, origin)) = winning(values.take(index), &key, env, problems) else { continue };
        won[index] = true;
        // When a secret and its file both win (a problem already reported),
        // the secret is used.
        if setting.file_of.and_then(index_of).is_some_and(|secret| won[secret]) {
            continue;
        }
        if let Err(message) = (setting.apply)(&mut settings, text) {
            problems.at(&origin, &key, message);
        }
    }
    settings
}

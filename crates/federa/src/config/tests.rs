//! Unit tests of configuration loading: layers, problems and their lines, secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::layers::substitute;
use super::table::{check_database_url, check_sessions_url};
use super::*;
use std::io::Write as _;

/// A 32-byte key in standard base64 with padding.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Builds an environment from string pairs.
fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

/// Writes `text` to a fresh temporary file.
fn file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

/// [`super::load`], for the tests that expect no warnings: the settings, or
/// the problems.
fn load(file: Option<&Path>, vars: Vec<(String, String)>, flags: &Overrides) -> Result<Settings, Vec<ConfigProblem>> {
    super::load(file, vars, flags).map(|loaded| {
        assert_eq!(loaded.warnings, [], "unexpected warnings");
        loaded.settings
    })
}

/// Loads with a file and an environment, and no flags.
fn load_with(text: &str, vars: &[(&str, &str)]) -> Result<Settings, Vec<ConfigProblem>> {
    let file = file(text);
    load(Some(file.path()), env(vars), &Overrides::default())
}

/// Loads and expects problems.
fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<ConfigProblem> {
    match load_with(text, vars) {
        Ok(settings) => panic!("expected problems, got {settings:?}"),
        Err(problems) => problems,
    }
}

#[test]
fn defaults_with_nothing_set() {
    let settings = load(None, Vec::new(), &Overrides::default()).unwrap();
    assert_eq!(settings.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert!(settings.server.public_url.is_none());
    assert_eq!(settings.public_url(), "http://127.0.0.1:8080");
    assert_eq!(settings.database.url, "sqlite://federa.db");
    assert_eq!(settings.sessions.url, "embedded");
    assert!(settings.sessions.is_embedded());
    assert!(settings.admin.token.is_none());
    assert!(settings.admin.token_file.is_none());
    assert!(settings.keys.master_key.is_none());
    assert!(settings.keys.master_key_bytes().is_none());
    assert!(settings.realms.import_dir.is_none());
    assert_eq!(settings.log.level, "info");
    assert_eq!(settings.log.format, LogFormat::Text);
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let settings = load_with("", &[]).unwrap();
    assert_eq!(settings.public_url(), "http://127.0.0.1:8080");
}

#[test]
fn non_federa_variables_are_ignored() {
    let settings =
        load(None, env(&[("PATH", "/bin"), ("HOME", "/root"), ("FEDERA_CONFIG", "x.toml")]), &Overrides::default())
            .unwrap();
    assert_eq!(settings.log.level, "info");
}

#[test]
fn file_then_environment_then_flags() {
    let file = file(
        r#"
[server]
listen = "0.0.0.0:1000"
public_url = "https://file.example/"

[database]
url = "sqlite://file.db"

[sessions]
url = "redis://file:6379"

[realms]
import_dir = "/file/realms"

[log]
level = "debug"
format = "json"
"#,
    );
    let vars = env(&[
        ("FEDERA_SERVER_LISTEN", "0.0.0.0:2000"),
        ("FEDERA_DATABASE_URL", "postgres://env/db"),
        ("FEDERA_SESSIONS_URL", "rediss://env:6379"),
        ("RUST_LOG", "warn,federa=trace"),
    ]);
    let flags = Overrides {
        listen: Some("127.0.0.1:3000".parse().unwrap()),
        database_url: Some("postgresql://flag/db".to_owned()),
        import_dir: Some(PathBuf::from("/flag/realms")),
        ..Overrides::default()
    };
    let settings = load(Some(file.path()), vars, &flags).unwrap();
    assert_eq!(settings.server.listen, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(settings.public_url(), "https://file.example");
    assert_eq!(settings.database.url, "postgresql://flag/db");
    assert_eq!(settings.sessions.url, "rediss://env:6379");
    assert!(!settings.sessions.is_embedded());
    assert_eq!(settings.realms.import_dir, Some(PathBuf::from("/flag/realms")));
    assert_eq!(settings.log.level, "warn,federa=trace");
    assert_eq!(settings.log.format, LogFormat::Json);
}

#[test]
fn federa_log_level_wins_over_rust_log() {
    let settings =
        load(None, env(&[("RUST_LOG", "warn"), ("FEDERA_LOG_LEVEL", "debug")]), &Overrides::default()).unwrap();
    assert_eq!(settings.log.level, "debug");
}

#[test]
fn an_empty_environment_variable_counts_as_unset() {
    let settings = load_with("[server]\nlisten = \"0.0.0.0:1000\"\n", &[("FEDERA_SERVER_LISTEN", "")]).unwrap();
    assert_eq!(settings.server.listen, "0.0.0.0:1000".parse().unwrap());
}

#[test]
fn a_later_layer_can_replace_a_broken_value() {
    let file = file("[server]\nlisten = \"abc\"\npublic_url = \"${env:MISSING}\"\n");
    let flags = Overrides { listen: Some("127.0.0.1:3000".parse().unwrap()), ..Overrides::default() };
    let vars = env(&[("FEDERA_SERVER_PUBLIC_URL", "https://env.example")]);
    let settings = load(Some(file.path()), vars, &flags).unwrap();
    assert_eq!(settings.server.listen, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(settings.public_url(), "https://env.example");
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = r#"[server]
listen = "abc"

database.url = "mysql://root:hunter2@db/federa"
[log]
level = "info"
format = "xml"
"#;
    let file = file(text);
    let problems = load(Some(file.path()), Vec::new(), &Overrides::default()).unwrap_err();
    let source = file.path().display().to_string();
    let found: Vec<(Option<usize>, &str)> =
        problems.iter().map(|problem| (problem.line, problem.key.as_str())).collect();
    assert_eq!(found, [(Some(2), "server.listen"), (Some(4), "server.database"), (Some(7), "log.format"),]);
    assert!(problems.iter().all(|problem| problem.source == source));
    assert_eq!(problems[0].to_string(), format!("{source}:2: server.listen: invalid socket address \"abc\""));
    assert_eq!(problems[1].message, "unknown key");
    assert_eq!(
        problems[2].to_string(),
        format!("{source}:7: log.format: invalid log format \"xml\"; expected \"text\" or \"json\"")
    );
}

#[test]
fn invalid_values_in_distinct_sections_are_reported_together() {
    let text = "[database]\nurl = \"mysql://root:hunter2@db/federa\"\n\n[sessions]\nurl = \"memcached://x\"\n\n[server]\npublic_url = \"https://x.example/?a=b\"\n";
    let problems = problems(text, &[]);
    let lines: Vec<Option<usize>> = problems.iter().map(|problem| problem.line).collect();
    assert_eq!(lines, [Some(2), Some(5), Some(8)]);
    assert_eq!(problems[0].key, "database.url");
    assert!(problems[0].message.contains("\"mysql\""), "{}", problems[0]);
    // The database URL may hold a password, so it is never quoted.
    assert!(!problems[0].message.contains("hunter2"));
    assert_eq!(problems[1].key, "sessions.url");
    assert_eq!(problems[2].key, "server.public_url");
    assert!(problems[2].message.contains("query"));
}

#[test]
fn unknown_keys_and_sections_are_problems() {
    let text = "[server]\nlisten = \"127.0.0.1:9000\"\nlisen = \"x\"\n\n[tls]\ncert = \"a.pem\"\nname = \"x\"\n";
    let problems = problems(text, &[]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        (problems[0].line, problems[0].key.as_str(), problems[0].message.as_str()),
        (Some(3), "server.lisen", "unknown key")
    );
    assert_eq!(
        (problems[1].line, problems[1].key.as_str(), problems[1].message.as_str()),
        (Some(5), "tls", "unknown section")
    );
}

#[test]
fn unknown_federa_variables_are_warnings_naming_the_variable_only() {
    let vars = env(&[("FEDERA_SERVER_LISTN", "s3cret"), ("FEDERA_LOG_FORMAT", "json"), ("FEDERA_NOPE", "x")]);
    let loaded = super::load(None, vars, &Overrides::default()).unwrap();
    assert_eq!(loaded.settings.log.format, LogFormat::Json);
    let shown: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "environment FEDERA_NOPE: unknown setting",
            "environment FEDERA_SERVER_LISTN: unknown setting; did you mean FEDERA_SERVER_LISTEN?",
        ]
    );
    assert!(loaded.warnings.iter().all(|warning| !warning.is_error()));
}

#[test]
fn kubernetes_service_variables_are_warnings_and_set_nothing() {
    let vars = env(&[
        ("FEDERA_SERVICE_HOST", "10.0.0.1"),
        ("FEDERA_SERVICE_PORT", "8080"),
        ("FEDERA_SERVICE_PORT_HTTP", "8080"),
        ("FEDERA_PORT", "tcp://10.0.0.1:8080"),
        ("FEDERA_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
        ("FEDERA_PORT_8080_TCP_PROTO", "tcp"),
        ("FEDERA_PORT_8080_TCP_PORT", "8080"),
        ("FEDERA_PORT_8080_TCP_ADDR", "10.0.0.1"),
    ]);
    let names: Vec<String> = vars.iter().map(|(name, _)| name.clone()).collect();
    let loaded = super::load(None, vars, &Overrides::default()).unwrap();
    assert_eq!(loaded.settings.server.listen, DEFAULT_LISTEN);
    assert_eq!(loaded.warnings.len(), names.len(), "{:?}", loaded.warnings);
    for name in &names {
        let warning = loaded.warnings.iter().find(|warning| warning.source == format!("environment {name}")).unwrap();
        assert_eq!(warning.severity, Severity::Warning);
        assert!(warning.message.contains("Kubernetes"), "{warning}");
        assert!(!warning.to_string().contains("10.0.0.1") && !warning.to_string().contains("tcp:"), "{warning}");
    }
}

#[test]
fn warnings_are_listed_with_the_errors() {
    let vars = env(&[("FEDERA_PORT", "tcp://10.0.0.1:8080"), ("FEDERA_SERVER_LISTEN", "abc")]);
    let problems = super::load(None, vars, &Overrides::default()).unwrap_err();
    let found: Vec<(&str, Severity)> =
        problems.iter().map(|problem| (problem.source.as_str(), problem.severity)).collect();
    assert_eq!(
        found,
        [("environment FEDERA_PORT", Severity::Warning), ("environment FEDERA_SERVER_LISTEN", Severity::Error)]
    );
}

#[test]
fn wrong_types_are_problems() {
    let problems = problems("[server]\nlisten = 8080\n[log]\nformat = [\"json\"]\nserver = 1\n", &[]);
    let found: Vec<(Option<usize>, &str, &str)> =
        problems.iter().map(|problem| (problem.line, problem.key.as_str(), problem.message.as_str())).collect();
    assert_eq!(
        found,
        [
            (Some(2), "server.listen", "expected a string, found integer"),
            (Some(4), "log.format", "expected a string, found array"),
            (Some(5), "log.server", "unknown key"),
        ]
    );
}

#[test]
fn a_section_that_is_not_a_table_is_a_problem() {
    let problems = problems("log = \"debug\"\n", &[]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, Some(1));
    assert_eq!(problems[0].key, "log");
    assert_eq!(problems[0].message, "expected a table, found string");
}

#[test]
fn a_syntax_error_is_one_problem_with_its_line() {
    let problems = problems("[server]\nlisten = \"127.0.0.1:80\"\ntoken = \"s3cret\n", &[]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, Some(3));
    assert!(problems[0].message.starts_with("invalid TOML"));
    assert!(!problems[0].to_string().contains("s3cret"));
}

#[test]
fn an_unreadable_configuration_file_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let problems = load(Some(&path), Vec::new(), &Overrides::default()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].source, path.display().to_string());
    assert_eq!(problems[0].line, None);
}

#[test]
fn env_references_are_substituted() {
    let text = "[admin]\ntoken = \"${env:ADMIN_TOKEN}\"\n[database]\nurl = \"postgres://federa:${env:DB_PASSWORD}@${env:DB_HOST}/federa\"\n";
    let settings = load_with(
        text,
        &[
            ("ADMIN_TOKEN", "t0ken"),
            ("DB_PASSWORD", "pw"),
            ("DB_HOST", "db"),
            ("FEDERA_SESSIONS_URL", "redis://${env:DB_HOST}:6379"),
        ],
    )
    .unwrap();
    assert_eq!(settings.admin.token.unwrap().expose(), "t0ken");
    assert_eq!(settings.database.url, "postgres://federa:pw@db/federa");
    assert_eq!(settings.sessions.url, "redis://db:6379");
}

#[test]
fn a_missing_env_reference_is_a_problem_naming_it() {
    let text = "[admin]\ntoken = \"${env:ADMIN_TOKEN}\"\n\n[log]\nlevel = \"${env:LEVEL\"\n";
    let problems = problems(text, &[("OTHER", "x")]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].line, Some(2));
    assert_eq!(problems[0].key, "admin.token");
    assert_eq!(problems[0].message, "environment variable ADMIN_TOKEN is not set");
    assert_eq!(problems[1].line, Some(5));
    assert_eq!(problems[1].key, "log.level");
    assert!(problems[1].message.contains("unterminated"));
}

#[test]
fn substitution_handles_text_around_references() {
    let vars: BTreeMap<String, String> = env(&[("A", "1"), ("B", "${env:A}")]).into_iter().collect();
    assert_eq!(substitute("x${env:A}y${env:A}", &vars).unwrap(), "x1y1");
    // Substituted text is not expanded again.
    assert_eq!(substitute("${env:B}", &vars).unwrap(), "${env:A}");
    assert_eq!(substitute("$A ${other}", &vars).unwrap(), "$A ${other}");
    assert_eq!(substitute("${env:1X}", &vars).unwrap_err(), ["invalid environment variable name \"1X\" in ${env:...}"]);
}

#[test]
fn token_file_is_read_and_trimmed() {
    let token = file("  from-file\n");
    let text = format!("[admin]\ntoken_file = {:?}\n", token.path().display().to_string());
    let settings = load_with(&text, &[]).unwrap();
    assert_eq!(settings.admin.token.as_ref().unwrap().expose(), "from-file");
    assert_eq!(settings.admin.token_file.as_deref(), Some(token.path()));
}

#[test]
fn an_unreadable_token_file_is_a_problem_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-token");
    let path_text = path.display().to_string();
    let problems = problems(&format!("\n[admin]\ntoken_file = {path_text:?}\n"), &[]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, Some(3));
    assert_eq!(problems[0].key, "admin.token_file");
    assert!(problems[0].message.contains(&path_text), "{}", problems[0]);
}

#[test]
fn token_and_token_file_together_are_a_problem() {
    let token = file("from-file");
    let text = format!("[admin]\ntoken = \"direct\"\ntoken_file = {:?}\n", token.path().display().to_string());
    let problems = problems(&text, &[]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, Some(3));
    assert!(!problems[0].to_string().contains("direct"));
}

#[test]
fn a_token_file_in_the_environment_replaces_a_token_in_the_file() {
    let token = file("from-file\n");
    let vars = [("FEDERA_ADMIN_TOKEN_FILE", token.path().to_str().unwrap())];
    let settings = load_with("[admin]\ntoken = \"direct\"\n", &vars).unwrap();
    assert_eq!(settings.admin.token.unwrap().expose(), "from-file");
}

#[test]
fn a_good_master_key_is_accepted_with_or_without_padding() {
    for key in [KEY, KEY.trim_end_matches('=')] {
        let settings = load(None, env(&[("FEDERA_KEYS_MASTER_KEY", key)]), &Overrides::default()).unwrap();
        let bytes = settings.keys.master_key_bytes().unwrap();
        assert_eq!(bytes[0], 0);
        assert_eq!(bytes[31], 31);
    }
}

#[test]
fn a_master_key_file_is_read_and_checked() {
    let key = file(&format!("{KEY}\n"));
    let text = format!("[keys]\nmaster_key_file = {:?}\n", key.path().display().to_string());
    let settings = load_with(&text, &[]).unwrap();
    assert_eq!(settings.keys.master_key.as_ref().unwrap().expose(), KEY);
    assert_eq!(settings.keys.master_key_file.as_deref(), Some(key.path()));

    let short = file("c2hvcnQta2V5\n");
    let text = format!("[keys]\nmaster_key_file = {:?}\n", short.path().display().to_string());
    let problems = problems(&text, &[]);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("decodes to 9 bytes"), "{}", problems[0]);
    assert!(!problems[0].message.contains("c2hvcnQta2V5"));
}

#[test]
fn a_bad_master_key_is_a_problem_that_does_not_show_it() {
    let problems = problems("[keys]\nmaster_key = \"c2hvcnQta2V5\"\n", &[]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, Some(2));
    assert_eq!(problems[0].key, "keys.master_key");
    assert!(problems[0].message.contains("32 bytes"));
    assert!(!problems[0].to_string().contains("c2hvcnQta2V5"));

    let problems =
        load(None, env(&[("FEDERA_KEYS_MASTER_KEY", "not base64 at all!")]), &Overrides::default()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].source, "environment FEDERA_KEYS_MASTER_KEY");
    assert!(problems[0].message.contains("not valid base64"));
    assert!(!problems[0].message.contains("at all"));
}

#[test]
fn secret_debug_does_not_show_the_value() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "Secret(***)");
    let settings = Settings {
        admin: AdminSettings { token: Some(Secret::new("hunter2")), token_file: None },
        ..Settings::default()
    };
    assert!(!format!("{settings:?}").contains("hunter2"));
    assert_eq!(secret.expose(), "hunter2");
}

#[test]
fn public_url_is_validated_and_loses_its_trailing_slash() {
    let settings = load_with("[server]\npublic_url = \"https://id.example/federa/\"\n", &[]).unwrap();
    assert_eq!(settings.public_url(), "https://id.example/federa");

    let listen = load(None, env(&[("FEDERA_SERVER_LISTEN", "[::1]:9000")]), &Overrides::default()).unwrap();
    assert_eq!(listen.public_url(), "http://[::1]:9000");

    for bad in [
        "id.example",
        "ftp://id.example",
        "https://id.example/#top",
        "https://id.example/?x",
        "https://user:pw@id.example/",
    ] {
        let flags = Overrides { public_url: Some(bad.to_owned()), ..Overrides::default() };
        let problems = load(None, Vec::new(), &flags).unwrap_err();
        assert_eq!(problems.len(), 1, "{bad}");
        assert_eq!(problems[0].source, "flag --public-url");
        assert_eq!(problems[0].key, "server.public_url");
    }
}

#[test]
fn database_and_session_urls_are_validated() {
    assert!(check_database_url("sqlite://federa.db").is_ok());
    assert!(check_database_url("sqlite:///var/lib/federa/federa.db").is_ok());
    assert!(check_database_url("postgres://u:p@db:5432/federa").is_ok());
    assert!(check_database_url("postgresql://db/federa").is_ok());
    assert!(check_database_url("sqlite://").is_err());
    assert!(check_database_url("federa.db").is_err());
    assert!(check_database_url("mysql://db").is_err());

    assert!(check_sessions_url("embedded").is_ok());
    assert!(check_sessions_url("redis://localhost:6379/0").is_ok());
    assert!(check_sessions_url("rediss://cache.example").is_ok());
    assert!(check_sessions_url("Embedded").is_err());
    assert!(check_sessions_url("memcached://x").is_err());
}

#[test]
fn environment_problems_have_no_line() {
    let problems =
        load(None, env(&[("FEDERA_SERVER_LISTEN", "abc"), ("FEDERA_LOG_FORMAT", "yaml")]), &Overrides::default())
            .unwrap_err();
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "environment FEDERA_LOG_FORMAT: log.format: invalid log format \"yaml\"; expected \"text\" or \"json\"",
            "environment FEDERA_SERVER_LISTEN: server.listen: invalid socket address \"abc\"",
        ]
    );
}

#[test]
fn problems_are_ordered_file_then_environment_then_flags() {
    let file = file("[log]\nformat = \"xml\"\n");
    let flags = Overrides { database_url: Some("mysql://x".to_owned()), ..Overrides::default() };
    let problems = super::load(Some(file.path()), env(&[("FEDERA_NOPE", "1")]), &flags).unwrap_err();
    let sources: Vec<&str> = problems.iter().map(|problem| problem.source.as_str()).collect();
    assert_eq!(sources, [file.path().to_str().unwrap(), "environment FEDERA_NOPE", "flag --database-url",]);
}

#[test]
fn a_secret_comes_before_its_file_in_the_table() {
    // `resolve` relies on it to prefer the secret when both win.
    for (index, setting) in table::SETTINGS.iter().enumerate() {
        if let Some(secret) = setting.file_of {
            assert!(table::index_of(secret).is_some_and(|secret| secret < index), "{}", setting.key());
        }
    }
}

#[test]
fn the_documented_table_is_the_table_of_settings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIGURATION.md");
    let docs = std::fs::read_to_string(&path).unwrap();
    let expected = table::markdown_table();
    assert!(
        docs.contains(&expected),
        "{} must hold the table of settings as config/table.rs describes them:\n\n{expected}",
        path.display()
    );
}

#[test]
fn invalid_flags_are_problems_naming_the_flag() {
    let flags = Overrides { import_dir: Some(PathBuf::new()), ..Overrides::default() };
    let problems = load(None, Vec::new(), &flags).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].to_string(), "flag --import-dir: realms.import_dir: must not be empty");
}

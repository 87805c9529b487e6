//! The `federa` binary as users run it: `serve` with no configuration,
//! realm files, `import`, `migrate` and `check-config`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_federa");

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

/// A `federa` command in `dir` with no FEDERA_* variable from the caller.
fn federa(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("FEDERA_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

/// A running server and everything it logged up to "listening".
struct Server {
    child: Child,
    base: String,
    log: Vec<String>,
    rest: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `federa serve` and waits (on its log, not a timer) until it listens.
    fn start(mut cmd: Command) -> Server {
        // Port 0: the test must not depend on 8080 being free.
        cmd.arg("serve").env("FEDERA_SERVER_LISTEN", "127.0.0.1:0").stderr(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        loop {
            let line = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not start; its log: {log:#?}")
            });
            log.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                let base = rest.split_whitespace().next().unwrap().to_owned();
                return Server { child, base, log, rest: rx };
            }
        }
    }

    fn admin_token(&self) -> String {
        let line = self.log.iter().find(|l| l.contains("generated admin token")).expect("the token is printed");
        line.rsplit(": ").next().unwrap().trim().to_owned()
    }

    fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let resp =
            reqwest::blocking::Client::new().get(format!("{}{path}", self.base)).bearer_auth(token).send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(serde_json::Value::Null))
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let resp = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(serde_json::Value::Null))
    }

    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.extend(self.rest.try_iter());
        self.log
    }
}

#[test]
fn serve_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(federa(dir.path()));
    let (status, body) = server.get("/health/ready", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "UP");
    assert_eq!(server.get("/health/live", "").0, 200);

    let token = server.admin_token();
    assert!(token.len() >= 32, "{token:?}");
    assert_eq!(server.get("/admin/realms", &token).0, 200);
    assert_eq!(server.get("/admin/realms", "not-the-token").0, 401);
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.base)).unwrap().text().unwrap();
    assert!(metrics.contains("federa_http_requests_total"), "{metrics}");

    // The embedded default: a SQLite file and a generated master key beside it.
    assert!(dir.path().join("federa.db").exists());
    assert!(dir.path().join("federa.key").exists());
    let log = server.stop();
    let printed = log.iter().filter(|l| l.contains(&token)).count();
    assert_eq!(printed, 1, "the admin token must be printed exactly once: {log:#?}");
    assert!(log.iter().any(|l| l.contains("production") && l.contains("master key")), "{log:#?}");

    // A restart keeps the key and the data; a new token is printed.
    let server = Server::start(federa(dir.path()));
    let token2 = server.admin_token();
    assert_eq!(server.get("/admin/realms", &token2).0, 200);
    server.stop();
}

#[test]
fn realm_files_are_loaded_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let realms = dir.path().join("realms");
    std::fs::create_dir(&realms).unwrap();
    let mut realm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("realm-acme.json")).unwrap()).unwrap();
    realm["identityProviders"][1]["config"]["clientSecret"] = serde_json::json!("${env:PARTNERS_SECRET}");
    std::fs::write(realms.join("acme.json"), serde_json::to_vec(&realm).unwrap()).unwrap();

    let mut cmd = federa(dir.path());
    cmd.env("FEDERA_REALMS_IMPORT_DIR", &realms)
        .env("FEDERA_ADMIN_TOKEN", "file-test-token-123")
        .env("PARTNERS_SECRET", "from-env");
    let server = Server::start(cmd);
    let t = "file-test-token-123";
    let (s, r) = server.get("/admin/realms/acme", t);
    assert_eq!((s, r["displayName"].clone()), (200, serde_json::json!("ACME Corporation")));
    let (s, idps) = server.get("/admin/realms/acme/identity-provider/instances", t);
    assert_eq!(s, 200);
    assert_eq!(idps.as_array().unwrap().len(), 2);

    // Writes to the realm's configuration are refused, naming the file.
    let attempts = [
        (reqwest::Method::PUT, "/admin/realms/acme", serde_json::json!({"displayName": "x"})),
        (reqwest::Method::DELETE, "/admin/realms/acme", serde_json::Value::Null),
        (reqwest::Method::POST, "/admin/realms/acme/clients", serde_json::json!({"clientId": "new"})),
        (reqwest::Method::DELETE, "/admin/realms/acme/identity-provider/instances/partners", serde_json::Value::Null),
    ];
    for (method, path, body) in attempts {
        let (s, err) = server.send(method.clone(), path, t, body);
        assert_eq!(s, 403, "{method} {path}: {err}");
        assert!(err["errorMessage"].as_str().unwrap().contains("acme.json"), "{err}");
    }
    let (_, r) = server.get("/admin/realms/acme", t);
    assert_eq!(r["displayName"], "ACME Corporation");
    // Users stay writable: sign-ins create them.
    let (s, _) =
        server.send(reqwest::Method::POST, "/admin/realms/acme/users", t, serde_json::json!({"username": "carol"}));
    assert_eq!(s, 201);
    let log = server.stop();
    assert!(
        log.iter().any(|l| l.contains("ignored") && l.contains("sslRequired")),
        "one warning lists what was ignored: {log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("from-env")), "a secret reached the log");

    // A restart with an unchanged file keeps the runtime user; a changed file reloads.
    realm["displayName"] = serde_json::json!("ACME Inc.");
    std::fs::write(realms.join("acme.json"), serde_json::to_vec(&realm).unwrap()).unwrap();
    let mut cmd = federa(dir.path());
    cmd.env("FEDERA_REALMS_IMPORT_DIR", &realms).env("FEDERA_ADMIN_TOKEN", t).env("PARTNERS_SECRET", "from-env");
    let server = Server::start(cmd);
    let (_, r) = server.get("/admin/realms/acme", t);
    assert_eq!(r["displayName"], "ACME Inc.");
    let (_, users) = server.get("/admin/realms/acme/users?username=carol", t);
    assert_eq!(users.as_array().unwrap().len(), 1);
    server.stop();
}

#[test]
fn import_and_migrate_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = federa(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = federa(dir.path())
        .args(["import"])
        .arg(fixture("realm-acme.json"))
        .arg(fixture("keycloak-exports/02-bcgov-chefs.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported realm \"chefs\""));

    // The imported realms are ordinary, writable realms.
    let mut cmd = federa(dir.path());
    cmd.env("FEDERA_ADMIN_TOKEN", "import-test-token-456");
    let server = Server::start(cmd);
    let t = "import-test-token-456";
    let (s, idps) = server.get("/admin/realms/chefs/identity-provider/instances", t);
    assert_eq!(s, 200);
    assert_eq!(idps.as_array().unwrap().len(), 3);
    let (s, _) = server.send(reqwest::Method::PUT, "/admin/realms/acme", t, serde_json::json!({"displayName": "y"}));
    assert_eq!(s, 204);
    server.stop();

    // Importing an existing realm fails and says why.
    let out = federa(dir.path()).arg("import").arg(fixture("realm-acme.json")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn check_config_lists_every_problem_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("federa.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"not-an-address\"\n\n[database]\nurl = \"mysql://x\"\n\n[sessions]\nurll = \"embedded\"\n",
    )
    .unwrap();
    let out = federa(dir.path()).args(["check-config", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["federa.toml:2", "server.listen", "federa.toml:5", "database.url", "federa.toml:8", "urll"] {
        assert!(err.contains(needle), "{needle:?} missing in {err}");
    }

    // A good configuration with a bad realm file.
    let realms = dir.path().join("realms");
    std::fs::create_dir(&realms).unwrap();
    std::fs::write(&config, format!("[realms]\nimport_dir = \"{}\"\n", realms.display())).unwrap();
    std::fs::write(realms.join("good.json"), std::fs::read(fixture("realm-acme.json")).unwrap()).unwrap();
    let out = federa(dir.path()).args(["check-config", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(
        realms.join("bad.json"),
        r#"{"realm": "bad", "identityProviders": [{"alias": "x", "providerId": "oidc", "config": {"clientId": "c", "tokenUrl": "nope", "authorizationUrl": "https://a/b"}}]}"#,
    )
    .unwrap();
    std::fs::write(realms.join("broken.json"), "{\n  \"realm\": \"b\",\n  \"enabled\": \"maybe\"\n}\n").unwrap();
    let out = federa(dir.path()).args(["check-config", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json") && err.contains("identityProviders[0].config.tokenUrl"), "{err}");
    assert!(err.contains("broken.json:3"), "{err}");
}

#[test]
fn a_realm_picks_its_login_theme_from_the_themes_folder() {
    let dir = tempfile::tempdir().unwrap();
    let themes = dir.path().join("themes");
    std::fs::create_dir_all(themes.join("acme")).unwrap();
    let default_login =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../themes/default/login.hbs")).unwrap();
    let acme_login = default_login.replace("<h1>Sign in</h1>", "<h1>Sign in to ACME-THEME-MARKER</h1>");
    assert_ne!(acme_login, default_login);
    std::fs::write(themes.join("acme").join("login.hbs"), acme_login).unwrap();

    let t = "theme-test-token-789";
    let mut cmd = federa(dir.path());
    cmd.env("FEDERA_THEMES_DIR", &themes).env("FEDERA_ADMIN_TOKEN", t);
    let server = Server::start(cmd);
    let idp = |alias: &str| {
        serde_json::json!({"alias": alias, "providerId": "oidc",
            "config": {"clientId": "c", "authorizationUrl": "https://up.test/auth", "tokenUrl": "https://up.test/token"}})
    };
    for (realm, theme) in [("branded", Some("acme")), ("plain", None)] {
        let mut body = serde_json::json!({
            "realm": realm,
            "clients": [{"clientId": "app", "secret": "s3cret-app", "redirectUris": ["http://app.test/cb"]}],
            "identityProviders": [idp("one"), idp("two")]
        });
        if let Some(theme) = theme {
            body["loginTheme"] = serde_json::json!(theme);
        }
        assert_eq!(server.send(reqwest::Method::POST, "/admin/realms", t, body).0, 201);
        let page = reqwest::blocking::get(format!(
            "{}/realms/{realm}/protocol/openid-connect/auth?client_id=app&redirect_uri=http%3A%2F%2Fapp.test%2Fcb&response_type=code&scope=openid",
            server.base
        ))
        .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let html = page.text().unwrap();
        assert_eq!(html.contains("ACME-THEME-MARKER"), theme.is_some(), "{realm}: {html}");
        assert!(html.contains("data-idp=\"one\"") && html.contains("data-idp=\"two\""), "{html}");
    }
    server.stop();

    // check-config loads the themes, so a broken one is reported before start.
    std::fs::write(themes.join("acme").join("login.hbs"), "{{#if}}").unwrap();
    let out = federa(dir.path()).arg("check-config").env("FEDERA_THEMES_DIR", &themes).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("themes.dir"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// What Kubernetes sets in every pod of a namespace with a Service named `federa`.
const KUBERNETES_SERVICE_LINKS: [(&str, &str); 8] = [
    ("FEDERA_SERVICE_HOST", "10.0.0.1"),
    ("FEDERA_SERVICE_PORT", "8080"),
    ("FEDERA_SERVICE_PORT_HTTP", "8080"),
    ("FEDERA_PORT", "tcp://10.0.0.1:8080"),
    ("FEDERA_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
    ("FEDERA_PORT_8080_TCP_PROTO", "tcp"),
    ("FEDERA_PORT_8080_TCP_PORT", "8080"),
    ("FEDERA_PORT_8080_TCP_ADDR", "10.0.0.1"),
];

#[test]
fn kubernetes_service_variables_are_warnings_for_serve_and_problems_for_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = federa(dir.path());
    cmd.envs(KUBERNETES_SERVICE_LINKS);
    let server = Server::start(cmd);
    let (status, body) = server.get("/health/ready", "");
    assert_eq!(status, 200, "{body}");
    let log = server.stop();
    for (name, _) in KUBERNETES_SERVICE_LINKS {
        // The colon keeps FEDERA_PORT from matching FEDERA_PORT_8080_TCP.
        let needle = format!("environment {name}:");
        let lines: Vec<&String> = log.iter().filter(|line| line.contains(&needle)).collect();
        assert_eq!(lines.len(), 1, "one warning for {name}: {log:#?}");
        assert!(lines[0].contains("WARN") && lines[0].contains("ignored"), "{}", lines[0]);
    }
    assert!(!log.iter().any(|line| line.contains("10.0.0.1")), "a value reached the log: {log:#?}");

    let out = federa(dir.path()).arg("check-config").envs(KUBERNETES_SERVICE_LINKS).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for (name, _) in KUBERNETES_SERVICE_LINKS {
        let prefix = format!("environment {name}: unknown setting");
        assert!(err.lines().any(|line| line.starts_with(&prefix)), "{name} missing in {err}");
    }
    assert!(err.contains("8 configuration problem(s)"), "{err}");

    // A misspelt setting is named with the setting it probably meant.
    let out = federa(dir.path()).arg("check-config").env("FEDERA_SERVER_LISTN", "127.0.0.1:1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment FEDERA_SERVER_LISTN: unknown setting; did you mean FEDERA_SERVER_LISTEN?"),
        "{err}"
    );
    let out = federa(dir.path()).arg("check-config").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_provider_without_signature_validation_is_named_by_check_config_and_at_every_start() {
    let dir = tempfile::tempdir().unwrap();
    let realms = dir.path().join("realms");
    std::fs::create_dir(&realms).unwrap();
    let file = realms.join("lax.json");
    std::fs::write(
        &file,
        r#"{"realm": "lax", "identityProviders": [{"alias": "unchecked", "providerId": "oidc",
            "config": {"clientId": "c", "issuer": "https://idp.test", "validateSignature": "false"}}]}"#,
    )
    .unwrap();
    let out = federa(dir.path()).arg("check-config").env("FEDERA_REALMS_IMPORT_DIR", &realms).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("config.validateSignature") && printed.contains("NOT verified"), "{printed}");

    // Imported into the database (no realm file at start): serve names it.
    let out = federa(dir.path()).arg("import").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = Server::start(federa(dir.path())).stop();
    assert!(log.iter().any(|l| l.contains("\"unchecked\"") && l.contains("validateSignature is false")), "{log:#?}");
}

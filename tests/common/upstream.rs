//! The real upstream OpenID Provider of the end-to-end tests: the npm package
//! `oidc-provider`, run by `tests/upstream/idp.mjs` in a Node.js process of
//! its own (see tests/upstream/README.md). It signs anyone in at once (as the
//! `login_hint`, else alice) and consents to everything.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long [`NodeIdp::start`] waits for the provider to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `oidc-provider`, stopped when dropped.
pub struct NodeIdp {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub issuer: String,
    child: Child,
    // Closing it makes idp.mjs exit, even when this process is killed.
    stdin: Option<ChildStdin>,
}

/// tests/upstream, where idp.mjs and its node_modules are.
pub fn upstream_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("upstream")
}

impl NodeIdp {
    /// Starts tests/upstream/idp.mjs on 127.0.0.1 and a free port, with
    /// these clients (a JSON array of oidc-provider client metadata:
    /// `client_id`, `client_secret`, `redirect_uris`,
    /// `token_endpoint_auth_method`, `post_logout_redirect_uris`,
    /// `backchannel_logout_uri`...), and waits (up to [`START_TIMEOUT`]) for
    /// its `LISTENING` line. Runs `$NODE` when set, else `node`. Panics when
    /// the npm dependencies are not installed, Node.js is missing or the
    /// provider does not start. Its stderr goes to the test's output.
    pub fn start(clients: serde_json::Value) -> NodeIdp {
        let dir = upstream_dir();
        if !dir.join("node_modules").join("oidc-provider").join("package.json").is_file() {
            panic!(
                "the upstream OpenID Provider's npm packages are not installed in {}: run `make test-deps` \
                 (or `npm ci --prefix tests/upstream`) first",
                dir.display()
            );
        }
        assert!(clients.is_array(), "NodeIdp::start takes a JSON array of client metadata, not {clients}");
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(&node)
            .arg(dir.join("idp.mjs"))
            .current_dir(&dir)
            .env("IDP_CLIENTS", clients.to_string())
            .env("IDP_PORT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{node}` (Node.js 18 or later must be installed): {e}"));
        let stdin = child.stdin.take();

        // stderr: to the test's (captured) output, and kept for a failure
        // message.
        let errors = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let kept = errors.clone();
        let stderr_thread = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[upstream idp.mjs] {line}");
                let mut kept = kept.lock().unwrap();
                if kept.len() < 64 * 1024 {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
        });

        // stdout: the LISTENING line, then drained until the process ends.
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("LISTENING ") {
                    Some(issuer) => {
                        let _ = tx.send(issuer.trim().to_owned());
                    }
                    None => eprintln!("[upstream idp.mjs stdout] {line}"),
                }
            }
        });

        match rx.recv_timeout(START_TIMEOUT) {
            Ok(issuer) => NodeIdp { issuer, child, stdin },
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // With the process gone, the thread reads its stderr to the end.
                let _ = stderr_thread.join();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => format!("did not listen within {START_TIMEOUT:?}"),
                    mpsc::RecvTimeoutError::Disconnected => format!("exited ({status:?})"),
                };
                let stderr = errors.lock().unwrap().clone();
                panic!("the upstream OpenID Provider (tests/upstream/idp.mjs) {why}; its stderr:\n{stderr}");
            }
        }
    }

    /// A URL on the provider: `issuer` + `path` (`/.well-known/openid-configuration`,
    /// `/auth`, `/token`, `/me`, `/session/end`, `/jwks`...).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

impl Drop for NodeIdp {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::{query_params, Browser};

    const REDIRECT: &str = "http://127.0.0.1:9/cb";

    fn clients() -> serde_json::Value {
        serde_json::json!([{
            "client_id": "rp",
            "client_secret": "rp-secret-rp-secret-rp-secret-00",
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": ["http://127.0.0.1:9/bye"],
            "token_endpoint_auth_method": "client_secret_basic",
        }])
    }

    fn authorize(idp: &NodeIdp, extra: &str) -> String {
        format!(
            "{}?client_id=rp&response_type=code&scope=openid%20profile%20email&redirect_uri={}&state=st-1&nonce=n-1{extra}",
            idp.url("/auth"),
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        )
    }

    fn claims(jwt: &str) -> serde_json::Value {
        use base64::Engine as _;
        let payload = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn node_idp_signs_in_and_issues_an_id_token() {
        let idp = NodeIdp::start(clients());
        let http = reqwest::Client::new();
        let discovery: serde_json::Value =
            http.get(idp.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
        assert_eq!(discovery["issuer"], idp.issuer.as_str());

        let browser = Browser::new();
        let page = browser.navigate(&authorize(&idp, "&login_hint=bob"), REDIRECT).await;
        assert!(page.hops.iter().any(|h| h.contains("/interaction/")), "{:#?}", page.hops);
        let params = query_params(&page.url);
        assert_eq!(params.get("state").map(String::as_str), Some("st-1"));
        assert_eq!(params.get("iss"), Some(&idp.issuer));
        let code = params.get("code").unwrap_or_else(|| panic!("no code in {}", page.url));

        let resp = http
            .post(discovery["token_endpoint"].as_str().unwrap())
            .basic_auth("rp", Some("rp-secret-rp-secret-rp-secret-00"))
            .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let tokens: serde_json::Value = resp.json().await.unwrap();
        let id = claims(tokens["id_token"].as_str().expect("an id_token"));
        assert_eq!(id["sub"], "sub-bob");
        assert_eq!(id["email"], "bob@upstream.test");
        assert_eq!(id["preferred_username"], "bob");
        assert_eq!(id["nonce"], "n-1");
        assert_eq!(id["aud"], "rp");

        // The upstream keeps its session: prompt=none now succeeds.
        let page = browser.navigate(&authorize(&idp, "&prompt=none"), REDIRECT).await;
        assert!(query_params(&page.url).contains_key("code"), "{}", page.url);

        // A fresh browser, told the user refuses.
        let page = Browser::new().navigate(&authorize(&idp, "&login_hint=denied"), REDIRECT).await;
        assert_eq!(query_params(&page.url).get("error").map(String::as_str), Some("access_denied"));

        // Signing out submits the confirmation by itself and ends the session.
        let page = browser
            .navigate(
                &idp.url("/session/end?client_id=rp&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fbye&state=l"),
                "http://127.0.0.1:9/bye",
            )
            .await;
        assert_eq!(query_params(&page.url).get("state").map(String::as_str), Some("l"), "{:#?}", page.hops);
        let page = browser.navigate(&authorize(&idp, "&prompt=none"), REDIRECT).await;
        assert_eq!(query_params(&page.url).get("error").map(String::as_str), Some("login_required"));
    }
}

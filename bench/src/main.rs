//! Federa's benchmark harness (`make bench`).
//!
//! In one run, on one machine (load generator and upstreams included), it:
//!
//! 1. starts the release `federa serve` in a fresh temporary folder (SQLite
//!    and embedded sessions, the defaults) and measures the time from spawn
//!    to the first 200 of `/health/ready`, then its idle RSS;
//! 2. starts the fast in-process upstream (`BadIdp`, good mode, ES256) and
//!    sets up a realm `bench` through the admin API;
//! 3. measures full brokered sign-ins per second through it, each one a new
//!    user created just in time (`login_hint` names a new upstream account);
//! 4. the same through the real upstream, node `oidc-provider`;
//! 5. measures authorization_code exchanges per second alone, on codes
//!    minted beforehand through the SSO path;
//! 6. reads the RSS after the load and at its peak (VmHWM);
//! 7. writes the results to `--out` (docs/PERFORMANCE.md) and stdout.
//!
//! Cookies and connections: each virtual user (VU) keeps one `reqwest`
//! client (no cookie store, no automatic redirects) for its whole run, so its
//! keep-alive connections to Federa and the upstream are reused from one
//! sign-in to the next. Each sign-in has a fresh, empty
//! `reqwest::cookie::Jar` of its own, which the harness applies by hand: the
//! `Cookie` header of every request comes from the jar, and every response's
//! `Set-Cookie` headers go into it (paths, expiry and removal as a browser
//! would). Redirects are followed by hand.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Parser;
use federa_tests::bad_idp::{BadIdp, Misbehaviour};
use federa_tests::upstream::NodeIdp;
use reqwest::cookie::CookieStore as _;
use reqwest::header::{HeaderValue, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{json, Value};
use sha2::Digest as _;

const ADMIN_TOKEN: &str = "bench-admin-token-3f9a0c6e2b7d41a8";
const REALM: &str = "bench";
const APP: &str = "app";
const APP_SECRET: &str = "bench-app-secret-8d1f2a";
const APP_CB: &str = "http://app.bench/cb";
const FAST_ALIAS: &str = "fast";
const FAST_SECRET: &str = "bench-fast-upstream-secret-5e0b";
const NODE_ALIAS: &str = "node";
const NODE_SECRET: &str = "bench-node-upstream-secret-7a4c19e2d05b";
const UPSTREAM_CLIENT: &str = "federa";
const SCOPE: &str = "openid profile email";
/// How many requests one sign-in may make before it counts as failed.
const MAX_HOPS: usize = 20;
/// How many distinct failure reasons are kept for the report.
const KEPT_REASONS: usize = 5;

#[derive(Parser, Debug)]
#[command(about = "Federa's benchmark harness: see docs/PERFORMANCE.md")]
struct Args {
    /// The federa binary (a release build).
    #[arg(long)]
    federa: PathBuf,
    /// Where to write the report.
    #[arg(long, default_value = "docs/PERFORMANCE.md")]
    out: PathBuf,
    /// Virtual users for brokered sign-ins through the fast upstream.
    #[arg(long, default_value_t = 32)]
    vus: usize,
    /// Warm-up before measuring, seconds (fast upstream).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured duration, seconds (fast upstream).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Virtual users for brokered sign-ins through oidc-provider.
    #[arg(long, default_value_t = 8)]
    node_vus: usize,
    /// Warm-up before measuring, seconds (oidc-provider).
    #[arg(long, default_value_t = 1.0)]
    node_warmup: f64,
    /// Measured duration, seconds (oidc-provider).
    #[arg(long, default_value_t = 5.0)]
    node_duration: f64,
    /// Authorization codes minted, then exchanged.
    #[arg(long, default_value_t = 20_000)]
    codes: usize,
    /// Concurrent minters, and concurrent exchangers.
    #[arg(long, default_value_t = 32)]
    code_workers: usize,
    /// Skip the oidc-provider run (no Node.js needed).
    #[arg(long)]
    skip_node: bool,
}

// ---------------------------------------------------------------------------
// Small helpers.

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A PKCE pair: (verifier, S256 challenge).
fn pkce() -> (String, String) {
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A short, readable version of a response body for a failure reason.
fn snippet(body: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut s = words.join(" ");
    // Error pages carry a support reference of their own: drop it, so that
    // equal failures group together.
    if let Some(at) = s.find("give this reference: ") {
        s.truncate(at + "give this reference: ".len());
        s.push('…');
    }
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The path (and host, for other hosts than Federa) of a URL, for messages.
fn short(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}:{}{}", u.host_str().unwrap_or(""), u.port().unwrap_or(0), u.path()),
        Err(_) => url.to_owned(),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[i] as f64 / 1000.0)
}

/// `VmRSS` / `VmHWM` of a process, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------
// Failure bookkeeping.

#[derive(Default)]
struct Failures {
    count: AtomicUsize,
    reasons: Mutex<Vec<(String, usize)>>,
    /// How long each failed attempt took, microseconds.
    latencies: Mutex<Vec<u64>>,
}

impl Failures {
    fn add(&self, reason: String, took: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.latencies.lock().unwrap().push(micros(took));
        let mut reasons = self.reasons.lock().unwrap();
        if let Some(r) = reasons.iter_mut().find(|(r, _)| *r == reason) {
            r.1 += 1;
        } else if reasons.len() < KEPT_REASONS {
            reasons.push((reason, 1));
        }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn reasons(&self) -> Vec<(String, usize)> {
        self.reasons.lock().unwrap().clone()
    }

    /// The median and largest time a failed attempt took, milliseconds.
    fn latency_ms(&self) -> Option<(f64, f64)> {
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort_unstable();
        Some((percentile_ms(&l, 50.0)?, percentile_ms(&l, 100.0)?))
    }
}

// ---------------------------------------------------------------------------
// The federa process.

struct FederaProcess {
    child: Child,
    pid: u32,
    base: String,
    dir: PathBuf,
    time_to_ready: Duration,
    log: Arc<Mutex<LogSummary>>,
}

/// Federa's warning and error lines, grouped by message (the text after
/// the logger's `[time LEVEL target]` prefix).
#[derive(Default)]
struct LogSummary {
    warnings: usize,
    errors: usize,
    /// (level and target, message) → count, in order of first appearance.
    messages: Vec<(String, usize)>,
}

/// How many distinct log messages are kept.
const KEPT_MESSAGES: usize = 10;

impl LogSummary {
    fn add(&mut self, line: &str) {
        let is_error = line.contains(" ERROR ");
        if is_error {
            self.errors += 1;
        } else if line.contains(" WARN ") {
            self.warnings += 1;
        } else {
            return;
        }
        // `[2026-01-01T00:00:00Z ERROR federa_broker::flow] message`
        let key = match (line.find(' '), line.find("] ")) {
            (Some(a), Some(b)) if a < b => {
                format!("{} {}", line[a + 1..b].split_whitespace().collect::<Vec<_>>().join(" "), &line[b + 2..])
            }
            _ => line.to_owned(),
        };
        if let Some(m) = self.messages.iter_mut().find(|(k, _)| *k == key) {
            m.1 += 1;
        } else if self.messages.len() < KEPT_MESSAGES {
            eprintln!("[federa] {line}");
            self.messages.push((key, 1));
        }
    }
}

impl FederaProcess {
    async fn start(binary: &Path) -> FederaProcess {
        let binary = std::fs::canonicalize(binary)
            .unwrap_or_else(|e| panic!("{}: {e} (build it with `cargo build --release -p federa`)", binary.display()));
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("federa-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        // Built before the clock starts.
        let poller = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let log = Arc::new(Mutex::new(LogSummary::default()));

        let started = Instant::now();
        let mut child = Command::new(&binary)
            .arg("serve")
            .current_dir(&dir)
            .env_clear()
            .env("FEDERA_SERVER_LISTEN", "127.0.0.1:0")
            .env("FEDERA_ADMIN_TOKEN", ADMIN_TOKEN)
            // Warnings and errors only, but for the one start-up line that
            // gives the bound address.
            .env("RUST_LOG", "warn,federa::serve=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let pid = child.id();
        let stderr = child.stderr.take().unwrap();
        let kept = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                    continue;
                }
                kept.lock().unwrap().add(&line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("federa did not log its `listening on` line within 30 s");
            }
        };
        let ready = format!("{base}/health/ready");
        let time_to_ready = loop {
            if let Ok(r) = poller.get(&ready).send().await {
                if r.status().as_u16() == 200 {
                    break started.elapsed();
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{ready} did not answer 200 within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        FederaProcess { child, pid, base, dir, time_to_ready, log }
    }

    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS").unwrap_or(0)
    }

    fn hwm_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmHWM").unwrap_or(0)
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for FederaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// Admin set-up.

async fn admin(http: &reqwest::Client, base: &str, path: &str, body: Value) {
    let url = format!("{base}/admin/realms{path}");
    let resp = http.post(&url).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert!((200..300).contains(&status), "POST {url}: {status} {text}");
}

async fn create_realm(http: &reqwest::Client, base: &str, fast: &BadIdp) {
    let realm = json!({
        "realm": REALM,
        "displayName": "Benchmark",
        "clients": [{"clientId": APP, "secret": APP_SECRET, "redirectUris": [APP_CB]}],
        "identityProviders": [{
            "alias": FAST_ALIAS, "displayName": "Fast upstream", "providerId": "oidc",
            "config": {
                "issuer": fast.issuer, "clientId": UPSTREAM_CLIENT, "clientSecret": FAST_SECRET,
                "clientAuthMethod": "client_secret_basic", "defaultScope": SCOPE, "loginHint": "true"
            }
        }]
    });
    admin(http, base, "", realm).await;
}

async fn add_node_idp(http: &reqwest::Client, base: &str, node: &NodeIdp) {
    let idp = json!({
        "alias": NODE_ALIAS, "displayName": "oidc-provider", "providerId": "oidc",
        "config": {
            "issuer": node.issuer, "clientId": UPSTREAM_CLIENT, "clientSecret": NODE_SECRET,
            "clientAuthMethod": "client_secret_basic", "defaultScope": SCOPE, "loginHint": "true"
        }
    });
    admin(http, base, &format!("/{REALM}/identity-provider/instances"), idp).await;
}

// ---------------------------------------------------------------------------
// One sign-in.

/// What every sign-in needs to know.
struct Target {
    /// `{federa}/realms/bench`.
    issuer: String,
    auth: String,
    token: String,
}

impl Target {
    fn new(federa: &str) -> Target {
        let issuer = format!("{federa}/realms/{REALM}");
        Target {
            auth: format!("{issuer}/protocol/openid-connect/auth"),
            token: format!("{issuer}/protocol/openid-connect/token"),
            issuer,
        }
    }

    fn endpoint(&self, alias: &str) -> String {
        format!("{}/broker/{alias}/endpoint", self.issuer)
    }

    /// An authorization request for the app; returns (URL, state, verifier).
    fn auth_url(&self, idp_hint: Option<&str>, login_hint: Option<&str>) -> (String, String, String) {
        let (verifier, challenge) = pkce();
        let state = random_b64(16);
        let nonce = random_b64(16);
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", APP)
            .append_pair("redirect_uri", APP_CB)
            .append_pair("response_type", "code")
            .append_pair("scope", SCOPE)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(h) = idp_hint {
            q.append_pair("kc_idp_hint", h);
        }
        if let Some(h) = login_hint {
            q.append_pair("login_hint", h);
        }
        (format!("{}?{}", self.auth, q.finish()), state, verifier)
    }
}

/// The per-VU client: keep-alive connections, no cookie store, no redirects.
fn vu_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .user_agent("federa-bench/1")
        .build()
        .unwrap()
}

/// GETs `url` and follows redirects by hand with the sign-in's own cookie
/// jar, until a URL that starts with [`APP_CB`] (not requested). Returns the
/// requested URLs and the app's callback URL.
async fn navigate(
    client: &reqwest::Client,
    jar: &reqwest::cookie::Jar,
    start: String,
) -> Result<(Vec<String>, url::Url), String> {
    let mut hops: Vec<String> = Vec::new();
    let mut current = url::Url::parse(&start).map_err(|e| format!("{start}: {e}"))?;
    loop {
        if current.as_str().starts_with(APP_CB) {
            return Ok((hops, current));
        }
        if hops.len() >= MAX_HOPS {
            return Err(format!("no redirect to the app after {MAX_HOPS} requests (last {})", short(current.as_str())));
        }
        hops.push(current.to_string());
        let mut req = client.get(current.clone());
        if let Some(cookies) = jar.cookies(&current) {
            req = req.header(COOKIE, cookies);
        }
        let resp = req.send().await.map_err(|e| format!("GET {}: {e}", short(current.as_str())))?;
        let status = resp.status().as_u16();
        let mut set = resp.headers().get_all(SET_COOKIE).iter();
        jar.set_cookies(&mut set, &current);
        let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // Read to the end, so the connection goes back to the pool.
        let body = resp.text().await.unwrap_or_default();
        match (status, location) {
            (300..=399, Some(loc)) => {
                current = current.join(&loc).map_err(|e| format!("bad Location {loc:?}: {e}"))?;
            }
            _ => return Err(format!("GET {}: {status} {}", short(current.as_str()), snippet(&body))),
        }
    }
}

/// Reads the code from the app's callback, checking state and iss.
fn code_from(callback: &url::Url, state: &str, issuer: &str) -> Result<String, String> {
    if let Some(e) = query_param(callback, "error") {
        let d = query_param(callback, "error_description").unwrap_or_default();
        return Err(format!("the app received error={e} ({d})"));
    }
    if query_param(callback, "state").as_deref() != Some(state) {
        return Err("the app received a wrong state".into());
    }
    if query_param(callback, "iss").as_deref() != Some(issuer) {
        return Err("the app received a wrong iss".into());
    }
    query_param(callback, "code").ok_or_else(|| "the app received no code".into())
}

/// The token request of the app; checks for a 200 with an ID token.
async fn exchange(client: &reqwest::Client, target: &Target, code: &str, verifier: &str) -> Result<(), String> {
    let resp = client
        .post(&target.token)
        .basic_auth(APP, Some(APP_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP_CB),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .map_err(|e| format!("POST token: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("POST token: reading the body: {e}"))?;
    if status != 200 {
        return Err(format!("POST token: {status} {}", snippet(&String::from_utf8_lossy(&body))));
    }
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("POST token: not JSON: {e}"))?;
    if !json["id_token"].is_string() || !json["access_token"].is_string() {
        return Err("POST token: 200 without id_token and access_token".into());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Upstream {
    Fast,
    Node,
}

/// One full brokered sign-in of a new user, with a fresh cookie jar:
/// Federa auth → upstream → Federa callback → app (code) → token.
async fn brokered_login(
    client: &reqwest::Client,
    target: &Target,
    upstream: Upstream,
    upstream_issuer: &str,
    login_hint: &str,
) -> Result<reqwest::cookie::Jar, String> {
    let alias = match upstream {
        Upstream::Fast => FAST_ALIAS,
        Upstream::Node => NODE_ALIAS,
    };
    let jar = reqwest::cookie::Jar::default();
    let (url, state, verifier) = target.auth_url(Some(alias), Some(login_hint));
    let (hops, callback) = navigate(client, &jar, url).await?;
    let endpoint = target.endpoint(alias);
    let route_ok = match upstream {
        // Federa auth → upstream /authorize → Federa callback, nothing else.
        Upstream::Fast => {
            hops.len() == 3
                && hops[1].starts_with(&format!("{upstream_issuer}/authorize"))
                && hops[2].starts_with(&endpoint)
        }
        // Through oidc-provider's interaction redirects, then the callback.
        Upstream::Node => {
            hops.len() >= 3
                && hops[1].starts_with(upstream_issuer)
                && hops.last().is_some_and(|h| h.starts_with(&endpoint))
        }
    };
    if !route_ok {
        let path: Vec<String> = hops.iter().map(|h| short(h)).collect();
        return Err(format!("unexpected redirect chain: {}", path.join(" → ")));
    }
    let code = code_from(&callback, &state, &target.issuer)?;
    exchange(client, target, &code, &verifier).await?;
    Ok(jar)
}

// ---------------------------------------------------------------------------
// Sign-in load.

struct LoadResult {
    vus: usize,
    warmup: Duration,
    measured: Duration,
    successes: usize,
    /// Microseconds of the successful sign-ins completed in the window, sorted.
    latencies: Vec<u64>,
    failures: Arc<Failures>,
    warmup_successes: usize,
    /// Every successful sign-in, warm-up and stragglers included.
    all_successes: usize,
}

impl LoadResult {
    fn per_second(&self) -> f64 {
        self.successes as f64 / self.measured.as_secs_f64()
    }
}

async fn login_load(
    target: Arc<Target>,
    upstream: Upstream,
    upstream_issuer: String,
    vus: usize,
    warmup: Duration,
    measured: Duration,
) -> LoadResult {
    let failures = Arc::new(Failures::default());
    let start = Instant::now();
    let window_start = start + warmup;
    let end = window_start + measured;
    let prefix = match upstream {
        Upstream::Fast => "f",
        Upstream::Node => "n",
    };
    let mut tasks = Vec::new();
    for vu in 0..vus {
        let target = target.clone();
        let failures = failures.clone();
        let upstream_issuer = upstream_issuer.clone();
        tasks.push(tokio::spawn(async move {
            let client = vu_client();
            let mut latencies = Vec::new();
            let mut warm = 0usize;
            let mut all = 0usize;
            let mut i = 0usize;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let hint = format!("{prefix}{vu}x{i}");
                i += 1;
                let result = brokered_login(&client, &target, upstream, &upstream_issuer, &hint).await;
                let t1 = Instant::now();
                all += usize::from(result.is_ok());
                match result {
                    Ok(_) if t1 < window_start => warm += 1,
                    Ok(_) if t1 <= end => latencies.push(micros(t1 - t0)),
                    Ok(_) => {}
                    Err(reason) => failures.add(reason, t1 - t0),
                }
            }
            (latencies, warm, all)
        }));
    }
    let mut latencies = Vec::new();
    let mut warmup_successes = 0;
    let mut all_successes = 0;
    for t in tasks {
        let (l, w, a) = t.await.unwrap();
        latencies.extend(l);
        warmup_successes += w;
        all_successes += a;
    }
    latencies.sort_unstable();
    LoadResult {
        vus,
        warmup,
        measured,
        successes: latencies.len(),
        latencies,
        failures,
        warmup_successes,
        all_successes,
    }
}

// ---------------------------------------------------------------------------
// Code exchanges.

struct ExchangeResult {
    minted: usize,
    mint_elapsed: Duration,
    mint_failures: Arc<Failures>,
    exchanged: usize,
    exchange_elapsed: Duration,
    latencies: Vec<u64>,
    failures: Arc<Failures>,
    oldest_code_age: Duration,
}

async fn code_exchanges(target: Arc<Target>, fast_issuer: &str, codes: usize, workers: usize) -> ExchangeResult {
    // One user signs in; its SSO session cookie mints every code.
    let client = vu_client();
    let jar = brokered_login(&client, &target, Upstream::Fast, fast_issuer, "code-minter")
        .await
        .unwrap_or_else(|e| panic!("the code minter could not sign in: {e}"));
    let auth = url::Url::parse(&target.auth).unwrap();
    let session: HeaderValue = jar.cookies(&auth).expect("an SSO session cookie after sign-in");
    assert!(session.to_str().unwrap_or("").contains("FEDERA_SESSION="), "no FEDERA_SESSION cookie: {session:?}");

    // Mint.
    let mint_failures = Arc::new(Failures::default());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (target, next, failures, session) = (target.clone(), next.clone(), mint_failures.clone(), session.clone());
        tasks.push(tokio::spawn(async move {
            let client = vu_client();
            let mut minted = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < codes {
                let (url, state, verifier) = target.auth_url(None, None);
                let t0 = Instant::now();
                let result = async {
                    let resp = client
                        .get(&url)
                        .header(COOKIE, session.clone())
                        .send()
                        .await
                        .map_err(|e| format!("GET auth: {e}"))?;
                    let status = resp.status().as_u16();
                    let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let body = resp.text().await.unwrap_or_default();
                    let loc = match (status, location) {
                        (302, Some(loc)) if loc.starts_with(APP_CB) => loc,
                        (s, loc) => return Err(format!("GET auth (SSO): {s} {loc:?} {}", snippet(&body))),
                    };
                    let cb = url::Url::parse(&loc).map_err(|e| format!("bad Location: {e}"))?;
                    code_from(&cb, &state, &target.issuer)
                }
                .await;
                match result {
                    Ok(code) => minted.push((Instant::now(), code, verifier)),
                    Err(reason) => failures.add(reason, t0.elapsed()),
                }
            }
            minted
        }));
    }
    let mut minted = Vec::with_capacity(codes);
    for t in tasks {
        minted.extend(t.await.unwrap());
    }
    let mint_elapsed = started.elapsed();
    // Oldest first: the codes live 60 s.
    minted.sort_by_key(|(at, _, _)| *at);
    let count = minted.len();
    let first_minted = minted.first().map(|(at, _, _)| *at);
    let minted = Arc::new(minted);

    // Exchange.
    let failures = Arc::new(Failures::default());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (target, next, failures, minted) = (target.clone(), next.clone(), failures.clone(), minted.clone());
        tasks.push(tokio::spawn(async move {
            let client = vu_client();
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, code, verifier)) = minted.get(i) else { break };
                let t0 = Instant::now();
                match exchange(&client, &target, code, verifier).await {
                    Ok(()) => latencies.push(micros(t0.elapsed())),
                    Err(reason) => failures.add(reason, t0.elapsed()),
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let exchange_elapsed = started.elapsed();
    latencies.sort_unstable();
    ExchangeResult {
        minted: count,
        mint_elapsed,
        mint_failures,
        exchanged: latencies.len(),
        exchange_elapsed,
        latencies,
        failures,
        oldest_code_age: first_minted.map(|at| at.elapsed()).unwrap_or_default(),
    }
}

/// Failed sign-ins, which may or may not have created their user.
fn count_failed_logins(fast: &LoadResult, node: Option<&LoadResult>) -> usize {
    fast.failures.count() + node.map_or(0, |r| r.failures.count())
}

// ---------------------------------------------------------------------------
// The report.

struct Machine {
    cpus: usize,
    cpu_model: String,
    memory: String,
}

fn machine() -> Machine {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.split_whitespace().next()?.parse().ok()))
        })
        .map(|kib: u64| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    Machine { cpus, cpu_model, memory }
}

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// The short commit, and whether the server's sources differ from it.
fn git_commit() -> String {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--", "crates", "migrations", "themes"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("`{commit}`, with uncommitted changes to the server's sources (crates/, migrations/, themes/)")
    } else {
        format!("`{commit}`")
    }
}

/// How many users the realm has (every brokered sign-in creates one).
async fn user_count(http: &reqwest::Client, base: &str) -> Option<usize> {
    let url = format!("{base}/admin/realms/{REALM}/users?briefRepresentation=true&max=1000000");
    let resp = http.get(&url).bearer_auth(ADMIN_TOKEN).send().await.ok()?;
    let users: Value = resp.json().await.ok()?;
    users.as_array().map(Vec::len)
}

/// Today (UTC) as YYYY-MM-DD, from the system clock.
fn today() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

enum Goal {
    AtLeast(f64),
    Below(f64),
    Zero,
    None,
}

struct Row {
    metric: String,
    value: Option<f64>,
    unit: &'static str,
    decimals: usize,
    target: Goal,
}

impl Row {
    fn new(metric: &str, value: Option<f64>, unit: &'static str, decimals: usize, target: Goal) -> Row {
        Row { metric: metric.to_owned(), value, unit, decimals, target }
    }

    fn result(&self) -> String {
        match self.value {
            Some(v) if self.unit.is_empty() => format!("{v:.*}", self.decimals),
            Some(v) => format!("{v:.*} {}", self.decimals, self.unit),
            None => "not measured".into(),
        }
    }

    fn target(&self) -> String {
        let unit = if self.unit.is_empty() { String::new() } else { format!(" {}", self.unit) };
        match self.target {
            Goal::AtLeast(t) => format!("≥ {t}{unit}"),
            Goal::Below(t) => format!("< {t}{unit}"),
            Goal::Zero => "0".into(),
            Goal::None => "—".into(),
        }
    }

    fn verdict(&self) -> &'static str {
        match (&self.target, self.value) {
            (Goal::None, _) => "—",
            (_, None) => "missed",
            (Goal::AtLeast(t), Some(v)) if v >= *t => "met",
            (Goal::Below(t), Some(v)) if v < *t => "met",
            (Goal::Zero, Some(v)) if v.abs() < 0.5 => "met",
            _ => "missed",
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from("| metric | result | target | met? |\n| --- | ---: | ---: | --- |\n");
    for r in rows {
        let _ = writeln!(s, "| {} | {} | {} | {} |", r.metric, r.result(), r.target(), r.verdict());
    }
    s
}

fn failure_lines(name: &str, f: &Failures) -> String {
    let mut s = String::new();
    let reasons = f.reasons();
    if f.count() == 0 {
        let _ = writeln!(s, "- {name}: no failures.");
    } else {
        let took = f
            .latency_ms()
            .map(|(p50, max)| format!(" (a failed attempt took {p50:.1} ms at the median, {max:.0} ms at most)"))
            .unwrap_or_default();
        let _ = writeln!(s, "- {name}: **{} failed**{took}; first reasons:", f.count());
        for (r, n) in reasons {
            let _ = writeln!(s, "  - {n} × `{}`", r.replace('`', "'"));
        }
    }
    s
}

// ---------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));

    eprintln!("federa-bench: starting {}", args.federa.display());
    let mut federa = FederaProcess::start(&args.federa).await;
    eprintln!("federa-bench: {} ready in {:?}", federa.base, federa.time_to_ready);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = federa.rss_kib();

    let fast =
        tokio::task::spawn_blocking(|| BadIdp::start(Misbehaviour::None, UPSTREAM_CLIENT, FAST_SECRET)).await.unwrap();
    let http = reqwest::Client::new();
    create_realm(&http, &federa.base, &fast).await;
    let target = Arc::new(Target::new(&federa.base));

    eprintln!(
        "federa-bench: brokered sign-ins through the fast upstream: {} VUs, {}s warm-up, {}s",
        args.vus, args.warmup, args.duration
    );
    let fast_run = login_load(
        target.clone(),
        Upstream::Fast,
        fast.issuer.clone(),
        args.vus,
        secs(args.warmup),
        secs(args.duration),
    )
    .await;
    eprintln!("federa-bench:   {:.0}/s, {} failures", fast_run.per_second(), fast_run.failures.count());

    let node_run = if args.skip_node {
        None
    } else {
        let callback = target.endpoint(NODE_ALIAS);
        let node = tokio::task::spawn_blocking(move || {
            NodeIdp::start(json!([{
                "client_id": UPSTREAM_CLIENT,
                "client_secret": NODE_SECRET,
                "redirect_uris": [callback],
                "token_endpoint_auth_method": "client_secret_basic",
            }]))
        })
        .await
        .unwrap();
        add_node_idp(&http, &federa.base, &node).await;
        eprintln!(
            "federa-bench: brokered sign-ins through oidc-provider: {} VUs, {}s warm-up, {}s",
            args.node_vus, args.node_warmup, args.node_duration
        );
        let run = login_load(
            target.clone(),
            Upstream::Node,
            node.issuer.clone(),
            args.node_vus,
            secs(args.node_warmup),
            secs(args.node_duration),
        )
        .await;
        eprintln!("federa-bench:   {:.0}/s, {} failures", run.per_second(), run.failures.count());
        drop(node);
        Some(run)
    };

    eprintln!(
        "federa-bench: minting {} codes through the SSO path, then exchanging them ({} workers)",
        args.codes, args.code_workers
    );
    let ex = code_exchanges(target.clone(), &fast.issuer, args.codes, args.code_workers).await;
    let rss_after = federa.rss_kib();
    let rss_peak = federa.hwm_kib();
    eprintln!(
        "federa-bench:   minted {} in {:?}, exchanged {} in {:?}, {} failures",
        ex.minted,
        ex.mint_elapsed,
        ex.exchanged,
        ex.exchange_elapsed,
        ex.failures.count() + ex.mint_failures.count()
    );
    let users = user_count(&http, &federa.base).await;
    // One user per successful sign-in, plus the code minter; a failed
    // sign-in may or may not have created its user.
    let least_users = fast_run.all_successes + node_run.as_ref().map_or(0, |r| r.all_successes) + 1;
    let most_users = least_users + count_failed_logins(&fast_run, node_run.as_ref());
    let alive = federa.still_running();
    drop(fast);

    // -----------------------------------------------------------------------
    let exchanges_per_s = ex.exchanged as f64 / ex.exchange_elapsed.as_secs_f64().max(1e-9);
    let mints_per_s = ex.minted as f64 / ex.mint_elapsed.as_secs_f64().max(1e-9);
    let total_failures = fast_run.failures.count()
        + node_run.as_ref().map_or(0, |r| r.failures.count())
        + ex.mint_failures.count()
        + ex.failures.count();
    let ready_ms = federa.time_to_ready.as_secs_f64() * 1000.0;
    let rows = vec![
        Row::new("brokered logins/s (fast ES256 upstream)", Some(fast_run.per_second()), "", 0, Goal::AtLeast(1000.0)),
        Row::new("login p50 (fast upstream)", percentile_ms(&fast_run.latencies, 50.0), "ms", 1, Goal::None),
        Row::new("login p99 (fast upstream)", percentile_ms(&fast_run.latencies, 99.0), "ms", 1, Goal::Below(50.0)),
        Row::new(
            "brokered logins/s (oidc-provider upstream)",
            node_run.as_ref().map(LoadResult::per_second),
            "",
            0,
            Goal::None,
        ),
        Row::new(
            "login p50 (oidc-provider upstream)",
            node_run.as_ref().and_then(|r| percentile_ms(&r.latencies, 50.0)),
            "ms",
            1,
            Goal::None,
        ),
        Row::new(
            "login p99 (oidc-provider upstream)",
            node_run.as_ref().and_then(|r| percentile_ms(&r.latencies, 99.0)),
            "ms",
            1,
            Goal::None,
        ),
        Row::new("code exchanges/s", Some(exchanges_per_s), "", 0, Goal::AtLeast(2500.0)),
        Row::new("exchange p50", percentile_ms(&ex.latencies, 50.0), "ms", 1, Goal::None),
        Row::new("exchange p99", percentile_ms(&ex.latencies, 99.0), "ms", 1, Goal::Below(50.0)),
        Row::new("RSS idle", Some(mib(rss_idle)), "MiB", 1, Goal::Below(20.0)),
        Row::new("RSS right after the load", Some(mib(rss_after)), "MiB", 1, Goal::None),
        Row::new("RSS peak (VmHWM)", Some(mib(rss_peak)), "MiB", 1, Goal::Below(60.0)),
        Row::new("time to ready", Some(ready_ms), "ms", 0, Goal::Below(200.0)),
        Row::new("failed sign-ins, mints and exchanges", Some(total_failures as f64), "", 0, Goal::Zero),
    ];
    let table = table(&rows);

    let m = machine();
    let mut doc = String::new();
    let _ = writeln!(doc, "# Performance\n");
    let _ = writeln!(
        doc,
        "Generated by `make bench` (the `federa-bench` harness in `bench/`); do not edit the numbers by hand.\n"
    );
    let _ = writeln!(doc, "- Date: {} (UTC)", today());
    let _ = writeln!(doc, "- Commit: {}", git_commit());
    let _ = writeln!(doc, "- Machine: {} CPUs ({}), {} memory", m.cpus, m.cpu_model, m.memory);
    let _ = writeln!(doc, "- Command: `make bench`");
    let _ = writeln!(
        doc,
        "- Everything on this one machine: the release `federa serve` (SQLite and embedded sessions, the \
         defaults, in a fresh temporary folder; `RUST_LOG=warn,federa::serve=info`), the load generator, the fast \
         upstream (in the generator's process) and the oidc-provider upstream (Node.js).\n"
    );
    let _ = writeln!(doc, "## Settings\n");
    let _ = writeln!(
        doc,
        "- Brokered sign-ins, fast upstream (`federa_tests::bad_idp::BadIdp`, ES256, a new user per sign-in): \
         {} virtual users, {:.0} s warm-up, then {:.0} s measured.",
        fast_run.vus,
        fast_run.warmup.as_secs_f64(),
        fast_run.measured.as_secs_f64()
    );
    match &node_run {
        Some(r) => {
            let _ = writeln!(
                doc,
                "- Brokered sign-ins, oidc-provider upstream (`federa_tests::upstream::NodeIdp`, RS256, a new user \
                 per sign-in): {} virtual users, {:.0} s warm-up, then {:.0} s measured.",
                r.vus,
                r.warmup.as_secs_f64(),
                r.measured.as_secs_f64()
            );
        }
        None => {
            let _ = writeln!(doc, "- Brokered sign-ins, oidc-provider upstream: skipped (`--skip-node`).");
        }
    }
    let _ = writeln!(
        doc,
        "- Code exchanges: {} codes minted through the SSO path by {} concurrent minters ({:.0} codes/s), then \
         exchanged by {} concurrent workers; the oldest code was {:.0} s old when the last exchange ended (codes \
         live 60 s).",
        ex.minted,
        args.code_workers,
        mints_per_s,
        args.code_workers,
        ex.oldest_code_age.as_secs_f64()
    );
    let _ = writeln!(
        doc,
        "- A sign-in: GET Federa's authorization endpoint (client `app`, `kc_idp_hint`, a unique `login_hint`, \
         PKCE S256, state, nonce, scope `{SCOPE}`) → the upstream → Federa's `/broker/{{alias}}/endpoint` (code \
         exchange upstream, ID token validation, userinfo, user created) → 302 to the app with a code (not \
         requested) → POST the token endpoint (client_secret_basic, code_verifier) → 200 with an RS256 ID token \
         and RS256 JWT access token. Its latency runs from the first request to the token response; logins/s \
         counts the sign-ins that succeeded within the measured window.\n"
    );
    let _ = writeln!(doc, "## Results\n");
    doc.push_str(&table);
    doc.push('\n');
    let _ = writeln!(doc, "Failures (any unexpected status or redirect):\n");
    doc.push_str(&failure_lines("sign-ins through the fast upstream", &fast_run.failures));
    if let Some(r) = &node_run {
        doc.push_str(&failure_lines("sign-ins through oidc-provider", &r.failures));
    }
    doc.push_str(&failure_lines("SSO code mints", &ex.mint_failures));
    doc.push_str(&failure_lines("code exchanges", &ex.failures));
    let log_summary = {
        let log = federa.log.lock().unwrap();
        let mut s = format!(
            "- Federa's log (`RUST_LOG=warn`): {} warning line(s), {} error line(s){}",
            log.warnings,
            log.errors,
            if alive { "" } else { "; **the process had exited before the end**" }
        );
        if log.messages.is_empty() {
            s.push_str(".\n");
        } else {
            s.push_str(", by message:\n");
            for (m, n) in &log.messages {
                let _ = writeln!(s, "  - {n} × `{}`", m.replace('`', "'"));
            }
        }
        s
    };
    doc.push_str(&log_summary);
    let expected =
        if most_users == least_users { format!("{least_users}") } else { format!("{least_users} to {most_users}") };
    let users_line = format!(
        "- Users in the realm at the end: {}, expected {expected} (one per successful sign-in, and the code \
         minter){}.\n",
        users.map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
        match users {
            Some(n) if (least_users..=most_users).contains(&n) => "",
            _ => ": **mismatch**",
        }
    );
    doc.push_str(&users_line);
    doc.push('\n');
    let _ = writeln!(doc, "## Load generator\n");
    let _ = writeln!(
        doc,
        "The generator is a tokio program in the same process as the fast upstream. Each virtual user keeps one \
         `reqwest` client for its whole run (no cookie store, no automatic redirects), so its keep-alive \
         connections to Federa and to the upstream are reused from one sign-in to the next; no client is built \
         per sign-in. Each sign-in has a fresh, empty `reqwest::cookie::Jar` of its own, applied by hand: every \
         request's `Cookie` header comes from that jar and every response's `Set-Cookie` goes into it (paths, \
         expiry and removal as a browser keeps them), so Federa's `FEDERA_FLOW`/`FEDERA_SESSION` and \
         oidc-provider's interaction and session cookies never leak from one sign-in to the next. Redirects are \
         followed by hand. Code minters send the one signed-in user's `FEDERA_SESSION` cookie; exchangers send \
         none.\n"
    );
    // The profile notes are written by hand from `perf` runs; a new run keeps them.
    const NOTES: &str = "## Where the time goes";
    let kept = std::fs::read_to_string(&args.out)
        .ok()
        .and_then(|old| old.find(NOTES).map(|i| old[i..].to_owned()))
        .unwrap_or_else(|| format!("{NOTES}\n\nNo profile notes yet.\n"));
    doc.push_str(&kept);

    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&args.out, &doc).unwrap_or_else(|e| panic!("{}: {e}", args.out.display()));

    println!("{table}");
    print!("{}", failure_lines("sign-ins through the fast upstream", &fast_run.failures));
    if let Some(r) = &node_run {
        print!("{}", failure_lines("sign-ins through oidc-provider", &r.failures));
    }
    print!("{}", failure_lines("SSO code mints", &ex.mint_failures));
    print!("{}", failure_lines("code exchanges", &ex.failures));
    print!("{log_summary}");
    print!("{users_line}");
    println!(
        "(fast warm-up: {} sign-ins; oidc-provider warm-up: {} sign-ins)",
        fast_run.warmup_successes,
        node_run.as_ref().map_or(0, |r| r.warmup_successes)
    );
    println!("wrote {}", args.out.display());
    drop(federa);
}

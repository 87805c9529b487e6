//! The token endpoint's other grants, side by side with a peer:
//!
//! - client_credentials at Federa (a service-account client, an RS256 JWT
//!   access token) and at node `oidc-provider` (tests/upstream/cc-bench.mjs:
//!   the npm package the tests install, JWT access tokens signed RS256, one
//!   cluster worker per core), under the same load generator, the same
//!   number of workers and the same window;
//! - refresh grants at Federa (each one rotates its refresh token), on
//!   refresh tokens from codes minted through the SSO path.
//!
//! Closed loops give the peak rates; open loops at a fraction of them give
//! latency from each scheduled start ([`crate::open_loop::run`]).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::flow::{vu_client, Target};
use crate::load::Minted;
use crate::process::{clk_tck, stat_ticks, CpuSample, CpuUse};
use crate::util::{http_error, micros, snippet, Failures};
use crate::verify::TokenCheck;
use crate::{ADMIN_TOKEN, APP, APP_CB, APP_SECRET, REALM};

/// Federa's service-account client.
pub const SVC: &str = "svc";
const SVC_SECRET: &str = "bench-svc-secret-4b7e19d0c2a8";
/// oidc-provider's client (cc-bench.mjs).
const NODE_CC_CLIENT: &str = "bench";
const NODE_CC_SECRET: &str = "bench-node-cc-secret-0f3a9e5b7c21d864";
const NODE_SCOPE: &str = "api";
const NODE_AUDIENCE: &str = "https://api.bench.test/";

/// A closed loop's result.
pub struct GrantRun {
    pub workers: usize,
    pub measured: Duration,
    /// Microseconds of the grants completed in the window, sorted.
    pub latencies: Vec<u64>,
    pub failures: Arc<Failures>,
    /// The CPU over the window (`federa` is the server's: Federa, or the
    /// whole oidc-provider cluster).
    pub cpu: CpuUse,
}

impl GrantRun {
    pub fn successes(&self) -> usize {
        self.latencies.len()
    }

    pub fn per_second(&self) -> f64 {
        self.successes() as f64 / self.measured.as_secs_f64().max(1e-9)
    }
}

/// Creates the service-account client in the bench realm.
pub async fn create_service_client(http: &reqwest::Client, base: &str) {
    let url = format!("{base}/admin/realms/{REALM}/clients");
    let body = json!({"clientId": SVC, "secret": SVC_SECRET, "serviceAccountsEnabled": true,
                      "standardFlowEnabled": false});
    let resp = http.post(&url).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    assert!((200..300).contains(&status), "POST {url}: {status} {}", resp.text().await.unwrap_or_default());
}

/// The CPU ticks of a process and its descendants (oidc-provider's cluster:
/// the primary and its workers).
fn tree_ticks(pid: u32) -> u64 {
    let mut total = stat_ticks(&format!("/proc/{pid}/stat")).unwrap_or(0);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    for task in tasks {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
            total += tree_ticks(child);
        }
    }
    total
}

/// Who serves the grants: Federa's pid (its CPU via [`CpuSample`]), or a
/// process tree (oidc-provider's cluster).
#[derive(Clone, Copy)]
pub enum Server {
    Federa(u32),
    Tree(u32),
}

impl Server {
    fn window(self, from: Instant, to: Instant) -> std::thread::JoinHandle<CpuUse> {
        std::thread::spawn(move || {
            std::thread::sleep(from.saturating_duration_since(Instant::now()));
            let pid = match self {
                Server::Federa(p) | Server::Tree(p) => p,
            };
            let tree = || match self {
                Server::Federa(_) => 0,
                Server::Tree(p) => tree_ticks(p),
            };
            let (start, t0) = (CpuSample::take(pid), tree());
            std::thread::sleep(to.saturating_duration_since(Instant::now()));
            let (end, t1) = (CpuSample::take(pid), tree());
            let mut used = start.until(&end);
            if let Server::Tree(_) = self {
                used.federa = t1.saturating_sub(t0) as f64 / clk_tck() as f64;
            }
            used
        })
    }
}

/// Runs `op` from `workers` workers as fast as they go, for `warmup` then
/// `measured`; counts the grants that end inside the window.
pub async fn closed_loop<F, Fut>(
    workers: usize,
    warmup: Duration,
    measured: Duration,
    server: Server,
    op: F,
) -> GrantRun
where
    F: Fn(reqwest::Client) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (reqwest::Client, Result<(), String>)> + Send + 'static,
{
    let failures = Arc::new(Failures::default());
    let start = Instant::now();
    let window_start = start + warmup;
    let end = window_start + measured;
    let cpu = server.window(window_start, end);
    let op = Arc::new(op);
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (op, failures) = (op.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = vu_client();
            let mut latencies = Vec::new();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let (c, result) = op(client).await;
                client = c;
                let t1 = Instant::now();
                match result {
                    Ok(()) if t1 >= window_start && t1 <= end => latencies.push(micros(t1 - t0)),
                    Ok(()) => {}
                    Err(reason) => failures.add(reason, t1 - t0),
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort_unstable();
    GrantRun { workers, measured, latencies, failures, cpu: cpu.join().unwrap() }
}

/// One client_credentials grant at Federa; a sample of the tokens is verified.
pub async fn federa_client_credentials(
    client: &reqwest::Client,
    target: &Target,
    check: &TokenCheck,
) -> Result<(), String> {
    let resp = client
        .post(target.token_url())
        .basic_auth(SVC, Some(SVC_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| format!("POST token (client_credentials): {}", http_error(e)))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("POST token: reading the body: {e}"))?;
    if status != 200 {
        return Err(format!("POST token (client_credentials): {status} {}", snippet(&String::from_utf8_lossy(&body))));
    }
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("POST token: not JSON: {e}"))?;
    let access = json["access_token"].as_str().ok_or("client_credentials: 200 without an access_token")?;
    check.sample_access(access, &format!("service-account-{SVC}"), SVC, Some(SVC))
}

/// oidc-provider's client_credentials server (cc-bench.mjs), stopped when dropped.
pub struct NodeCc {
    pub issuer: String,
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl NodeCc {
    /// Starts `workers` cluster workers and waits for the LISTENING line.
    pub fn start(workers: usize) -> NodeCc {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/upstream/cc-bench.mjs");
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(&node)
            .arg(&script)
            .current_dir(script.parent().unwrap())
            .env("CC_CLIENT_ID", NODE_CC_CLIENT)
            .env("CC_CLIENT_SECRET", NODE_CC_SECRET)
            .env("CC_WORKERS", workers.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{node}` {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(issuer.trim().to_owned());
                }
            }
        });
        let issuer = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("cc-bench.mjs did not listen within 60 s (run `make test-deps`)")
        });
        NodeCc { issuer, pid: child.id(), child, stdin }
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }
}

impl Drop for NodeCc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // The primary stops its workers when its stdin closes.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client_credentials grant at oidc-provider; a sample verified against its JWKS.
pub async fn node_client_credentials(
    client: &reqwest::Client,
    token_url: &str,
    check: &TokenCheck,
) -> Result<(), String> {
    let resp = client
        .post(token_url)
        .basic_auth(NODE_CC_CLIENT, Some(NODE_CC_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", NODE_SCOPE)])
        .send()
        .await
        .map_err(|e| format!("POST oidc-provider token: {}", http_error(e)))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("POST oidc-provider token: reading the body: {e}"))?;
    if status != 200 {
        return Err(format!("POST oidc-provider token: {status} {}", snippet(&String::from_utf8_lossy(&body))));
    }
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("oidc-provider token: not JSON: {e}"))?;
    let access = json["access_token"].as_str().ok_or("oidc-provider: 200 without an access_token")?;
    check.sample_access(access, NODE_CC_CLIENT, NODE_CC_CLIENT, Some(NODE_AUDIENCE))
}

/// Refresh tokens to rotate, shared by the workers: each grant takes one and
/// puts back the one it got.
pub struct RefreshPool {
    tokens: Mutex<Vec<String>>,
    /// Whether a refresh response carried an ID token (a second signature).
    pub with_id_token: std::sync::atomic::AtomicBool,
}

impl RefreshPool {
    fn take(&self) -> Option<String> {
        self.tokens.lock().unwrap().pop()
    }

    fn put(&self, t: String) {
        self.tokens.lock().unwrap().insert(0, t);
    }

    pub fn len(&self) -> usize {
        self.tokens.lock().unwrap().len()
    }
}

/// Exchanges minted codes for refresh tokens.
pub async fn refresh_pool(target: &Arc<Target>, minted: Vec<Minted>, failures: &Failures) -> Arc<RefreshPool> {
    let client = vu_client();
    let mut tokens = Vec::with_capacity(minted.len());
    for m in minted {
        let t0 = Instant::now();
        let resp = client
            .post(target.token_url())
            .basic_auth(APP, Some(APP_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &m.code),
                ("redirect_uri", APP_CB),
                ("code_verifier", &m.verifier),
            ])
            .send()
            .await;
        match resp {
            Ok(r) if r.status().as_u16() == 200 => {
                let json: Value = r.json().await.unwrap_or(Value::Null);
                match json["refresh_token"].as_str() {
                    Some(t) => tokens.push(t.to_owned()),
                    None => failures.add("a code exchange gave no refresh_token".into(), t0.elapsed()),
                }
            }
            Ok(r) => failures.add(format!("code exchange for a refresh token: {}", r.status()), t0.elapsed()),
            Err(e) => failures.add(format!("code exchange for a refresh token: {}", http_error(e)), t0.elapsed()),
        }
    }
    Arc::new(RefreshPool { tokens: Mutex::new(tokens), with_id_token: false.into() })
}

/// One refresh grant (rotating: the new refresh token goes back to the pool).
pub async fn refresh(
    client: &reqwest::Client,
    target: &Target,
    pool: &RefreshPool,
    check: &TokenCheck,
) -> Result<(), String> {
    let token = pool.take().ok_or("no refresh token left in the pool")?;
    let resp = client
        .post(target.token_url())
        .basic_auth(APP, Some(APP_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
        .send()
        .await
        .map_err(|e| format!("POST token (refresh): {}", http_error(e)))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| format!("POST token: reading the body: {e}"))?;
    if status != 200 {
        return Err(format!("POST token (refresh): {status} {}", snippet(&String::from_utf8_lossy(&body))));
    }
    let json: Value = serde_json::from_slice(&body).map_err(|e| format!("POST token (refresh): not JSON: {e}"))?;
    let new = json["refresh_token"].as_str().ok_or("refresh: 200 without a new refresh_token")?;
    if new == token {
        return Err("refresh: the refresh token was not rotated".into());
    }
    pool.put(new.to_owned());
    let access = json["access_token"].as_str().ok_or("refresh: 200 without an access_token")?;
    match json["id_token"].as_str() {
        Some(id) => {
            pool.with_id_token.store(true, std::sync::atomic::Ordering::Relaxed);
            check.sample_refreshed(id, access)
        }
        None => Ok(()),
    }
}

/// Everything this module measures in one run.
pub struct Grants {
    pub cc: GrantRun,
    /// oidc-provider's run and its cluster workers.
    pub node_cc: Option<(GrantRun, usize)>,
    /// `None` when no refresh token could be had.
    pub refresh: Option<GrantRun>,
    /// RS256 signatures per refresh grant (2 with an ID token, else 1).
    pub refresh_sigs: f64,
    pub open_cc: crate::open_loop::OpenLoopResult,
    pub open_refresh: Option<crate::open_loop::OpenLoopResult>,
    /// Getting refresh tokens: code mints and exchanges that failed.
    pub setup_failures: Arc<Failures>,
}

impl Grants {
    pub fn failures(&self) -> usize {
        self.cc.failures.count()
            + self.node_cc.as_ref().map_or(0, |(r, _)| r.failures.count())
            + self.refresh.as_ref().map_or(0, |r| r.failures.count())
            + self.open_cc.failures.count()
            + self.open_refresh.as_ref().map_or(0, |r| r.failures.count())
            + self.setup_failures.count()
    }
}

/// What [`run`] needs.
pub struct Setup<'a> {
    pub http: &'a reqwest::Client,
    pub base: &'a str,
    pub target: &'a Arc<Target>,
    pub check: &'a Arc<TokenCheck>,
    pub federa_pid: u32,
    pub session: &'a reqwest::header::HeaderValue,
    pub workers: usize,
    pub warmup: Duration,
    pub measured: Duration,
    pub refresh_tokens: usize,
    pub open_fraction: f64,
    pub open_duration: Duration,
    pub skip_node: bool,
}

/// The closed loops, then the open loops.
pub async fn run(s: Setup<'_>) -> Grants {
    create_service_client(s.http, s.base).await;
    let server = Server::Federa(s.federa_pid);

    eprintln!("federa-bench: client_credentials at Federa: {} workers, {:?}", s.workers, s.measured);
    let (target, check) = (s.target.clone(), s.check.clone());
    let cc = closed_loop(s.workers, s.warmup, s.measured, server, move |client| {
        let (target, check) = (target.clone(), check.clone());
        async move {
            let r = federa_client_credentials(&client, &target, &check).await;
            (client, r)
        }
    })
    .await;
    eprintln!("federa-bench:   {:.0}/s, {} failures", cc.per_second(), cc.failures.count());

    let node_cc = if s.skip_node {
        None
    } else {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let node = tokio::task::spawn_blocking(move || NodeCc::start(workers)).await.unwrap();
        let node_check =
            Arc::new(TokenCheck::fetch_from(s.http, &node.jwks_url(), &node.issuer, s.check.every()).await);
        eprintln!(
            "federa-bench: client_credentials at oidc-provider ({workers} cluster workers): {} workers, {:?}",
            s.workers, s.measured
        );
        let token_url: Arc<str> = node.token_url().into();
        let run = closed_loop(s.workers, s.warmup, s.measured, Server::Tree(node.pid), move |client| {
            let (token_url, check) = (token_url.clone(), node_check.clone());
            async move {
                let r = node_client_credentials(&client, &token_url, &check).await;
                (client, r)
            }
        })
        .await;
        eprintln!("federa-bench:   {:.0}/s, {} failures", run.per_second(), run.failures.count());
        drop(node);
        Some((run, workers))
    };

    eprintln!("federa-bench: {} refresh tokens from codes minted through the SSO path", s.refresh_tokens);
    let setup_failures = Arc::new(Failures::default());
    let mint = crate::load::mint(s.target, s.session, s.refresh_tokens, s.workers).await;
    for _ in 0..mint.failures.count() {
        setup_failures.add("minting a code for a refresh token failed".into(), Duration::ZERO);
    }
    let pool = refresh_pool(s.target, mint.codes, &setup_failures).await;
    let refresh_run = if pool.len() < s.workers {
        eprintln!("federa-bench:   only {} refresh tokens: no refresh runs", pool.len());
        None
    } else {
        eprintln!("federa-bench: refresh grants (rotating): {} workers, {:?}", s.workers, s.measured);
        let (target, check, p) = (s.target.clone(), s.check.clone(), pool.clone());
        let run = closed_loop(s.workers, s.warmup, s.measured, server, move |client| {
            let (target, check, pool) = (target.clone(), check.clone(), p.clone());
            async move {
                let r = refresh(&client, &target, &pool, &check).await;
                (client, r)
            }
        })
        .await;
        eprintln!("federa-bench:   {:.0}/s, {} failures", run.per_second(), run.failures.count());
        Some(run)
    };
    let refresh_sigs = if pool.with_id_token.load(std::sync::atomic::Ordering::Relaxed) { 2.0 } else { 1.0 };

    let clients: Arc<Vec<reqwest::Client>> = Arc::new((0..s.workers.max(1)).map(|_| vu_client()).collect());
    let cc_rate = s.open_fraction * cc.per_second();
    eprintln!("federa-bench: open-loop client_credentials at {cc_rate:.0}/s for {:?}", s.open_duration);
    let open_cc = crate::open_loop::run(cc_rate, s.open_duration, s.federa_pid, |i| {
        let (target, check, clients) = (s.target.clone(), s.check.clone(), clients.clone());
        async move { federa_client_credentials(&clients[i % clients.len()], &target, &check).await }
    })
    .await;
    let open_refresh = match &refresh_run {
        Some(r) => {
            let rate = s.open_fraction * r.per_second();
            eprintln!("federa-bench: open-loop refresh grants at {rate:.0}/s for {:?}", s.open_duration);
            Some(
                crate::open_loop::run(rate, s.open_duration, s.federa_pid, |i| {
                    let (target, check, clients, pool) =
                        (s.target.clone(), s.check.clone(), clients.clone(), pool.clone());
                    async move { refresh(&clients[i % clients.len()], &target, &pool, &check).await }
                })
                .await,
            )
        }
        None => None,
    };
    Grants { cc, node_cc, refresh: refresh_run, refresh_sigs, open_cc, open_refresh, setup_failures }
}

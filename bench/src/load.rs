//! The closed-loop runs: virtual users that start their next operation as
//! soon as the last one ends, for the peak rate. Brokered sign-ins through an
//! upstream, and code exchanges on codes minted beforehand through the SSO
//! path. Federa's CPU time is sampled at the edges of each measured window.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::CookieStore as _;
use reqwest::header::{HeaderValue, COOKIE, LOCATION};

use crate::flow::{brokered_login, code_from, exchange, vu_client, Target, Upstream};
use crate::process::{CpuSample, CpuUse};
use crate::util::{http_error, micros, snippet, Failures};
use crate::verify::TokenCheck;
use crate::APP_CB;

pub struct LoadResult {
    pub vus: usize,
    pub warmup: Duration,
    pub measured: Duration,
    pub successes: usize,
    /// Microseconds of the successful sign-ins completed in the window, sorted.
    pub latencies: Vec<u64>,
    pub failures: Arc<Failures>,
    pub warmup_successes: usize,
    /// Every successful sign-in, warm-up and stragglers included.
    pub all_successes: usize,
    /// The CPU used over the measured window.
    pub cpu: CpuUse,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.successes as f64 / self.measured.as_secs_f64()
    }
}

/// Samples the CPU counters at `from` and at `to`, on a thread of its own
/// so that a busy runtime cannot delay the samples.
fn cpu_window(pid: u32, from: Instant, to: Instant) -> std::thread::JoinHandle<CpuUse> {
    std::thread::spawn(move || {
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let start = CpuSample::take(pid);
        std::thread::sleep(to.saturating_duration_since(Instant::now()));
        start.until(&CpuSample::take(pid))
    })
}

pub struct LoginLoad {
    pub target: Arc<Target>,
    pub check: Arc<TokenCheck>,
    pub federa_pid: u32,
    pub upstream: Upstream,
    pub upstream_issuer: String,
}

impl LoginLoad {
    pub async fn closed_loop(&self, vus: usize, warmup: Duration, measured: Duration) -> LoadResult {
        let failures = Arc::new(Failures::default());
        let start = Instant::now();
        let window_start = start + warmup;
        let end = window_start + measured;
        let cpu = cpu_window(self.federa_pid, window_start, end);
        let prefix = match self.upstream {
            Upstream::Fast => "f",
            Upstream::Node => "n",
        };
        let mut tasks = Vec::new();
        for vu in 0..vus {
            let (target, check, failures) = (self.target.clone(), self.check.clone(), failures.clone());
            let (upstream, upstream_issuer) = (self.upstream, self.upstream_issuer.clone());
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
                    let result = brokered_login(&client, &target, upstream, &upstream_issuer, &hint, &check).await;
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
            cpu: cpu.join().unwrap(),
        }
    }
}

// ---------------------------------------------------------------------------
// Code exchanges.

/// A code ready to exchange.
pub struct Minted {
    pub at: Instant,
    pub code: String,
    pub verifier: String,
    pub nonce: String,
}

pub struct Mint {
    /// Oldest first.
    pub codes: Vec<Minted>,
    pub elapsed: Duration,
    pub failures: Arc<Failures>,
}

/// Signs one user in; its SSO session cookie then mints every code.
pub async fn sso_session(target: &Target, fast_issuer: &str, check: &TokenCheck) -> HeaderValue {
    let client = vu_client();
    let jar = brokered_login(&client, target, Upstream::Fast, fast_issuer, "code-minter", check)
        .await
        .unwrap_or_else(|e| panic!("the code minter could not sign in: {e}"));
    let auth = url::Url::parse(&target.auth).unwrap();
    let session: HeaderValue = jar.cookies(&auth).expect("an SSO session cookie after sign-in");
    assert!(session.to_str().unwrap_or("").contains("FEDERA_SESSION="), "no FEDERA_SESSION cookie: {session:?}");
    session
}

/// Mints `codes` codes through the SSO path with `workers` concurrent minters.
pub async fn mint(target: &Arc<Target>, session: &HeaderValue, codes: usize, workers: usize) -> Mint {
    let failures = Arc::new(Failures::default());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (target, next, failures, session) = (target.clone(), next.clone(), failures.clone(), session.clone());
        tasks.push(tokio::spawn(async move {
            let client = vu_client();
            let mut minted = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < codes {
                let req = target.auth_request(None, None);
                let t0 = Instant::now();
                let result = async {
                    let resp = client
                        .get(&req.url)
                        .header(COOKIE, session.clone())
                        .send()
                        .await
                        .map_err(|e| format!("GET auth: {}", http_error(e)))?;
                    let status = resp.status().as_u16();
                    let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let body = resp.text().await.unwrap_or_default();
                    let loc = match (status, location) {
                        (302, Some(loc)) if loc.starts_with(APP_CB) => loc,
                        (s, loc) => return Err(format!("GET auth (SSO): {s} {loc:?} {}", snippet(&body))),
                    };
                    let cb = url::Url::parse(&loc).map_err(|e| format!("bad Location: {e}"))?;
                    code_from(&cb, &req.state, &target.issuer)
                }
                .await;
                match result {
                    Ok(code) => {
                        minted.push(Minted { at: Instant::now(), code, verifier: req.verifier, nonce: req.nonce })
                    }
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
    let elapsed = started.elapsed();
    // Oldest first: the codes live 60 s.
    minted.sort_by_key(|m| m.at);
    Mint { codes: minted, elapsed, failures }
}

pub struct ExchangeResult {
    pub exchanged: usize,
    pub elapsed: Duration,
    /// Microseconds, sorted.
    pub latencies: Vec<u64>,
    pub failures: Arc<Failures>,
    pub oldest_code_age: Duration,
    /// The CPU used while the exchanges ran.
    pub cpu: CpuUse,
}

impl ExchangeResult {
    pub fn per_second(&self) -> f64 {
        self.exchanged as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Exchanges every minted code, `workers` at a time, as fast as they go.
pub async fn exchange_closed_loop(
    target: &Arc<Target>,
    check: &Arc<TokenCheck>,
    federa_pid: u32,
    minted: Vec<Minted>,
    workers: usize,
) -> ExchangeResult {
    let first_minted = minted.first().map(|m| m.at);
    let minted = Arc::new(minted);
    let failures = Arc::new(Failures::default());
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_start = CpuSample::take(federa_pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (target, check, next, failures, minted) =
            (target.clone(), check.clone(), next.clone(), failures.clone(), minted.clone());
        tasks.push(tokio::spawn(async move {
            let client = vu_client();
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(m) = minted.get(i) else { break };
                let t0 = Instant::now();
                match exchange(&client, &target, &m.code, &m.verifier, &m.nonce, &check).await {
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
    let elapsed = started.elapsed();
    let cpu = cpu_start.until(&CpuSample::take(federa_pid));
    latencies.sort_unstable();
    ExchangeResult {
        exchanged: latencies.len(),
        elapsed,
        latencies,
        failures,
        oldest_code_age: first_minted.map(|at| at.elapsed()).unwrap_or_default(),
        cpu,
    }
}

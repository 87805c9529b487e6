//! The open-loop runs: operations start on a fixed schedule (a constant
//! offered rate), whether or not the earlier ones have finished, and each
//! one's latency runs from its scheduled start, so that time spent queueing
//! (in Federa or in the generator) is counted rather than hidden, as a closed
//! loop hides it by slowing its own arrivals.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flow::{brokered_login, exchange, vu_client, Target, Upstream};
use crate::load::Minted;
use crate::process::{CpuSample, CpuUse};
use crate::util::{micros, Failures};
use crate::verify::TokenCheck;

/// An operation that started this much after its scheduled time counts as
/// started late (the generator could not keep up); its latency still runs
/// from the scheduled time.
pub const LATE_AFTER: Duration = Duration::from_millis(5);

/// Clients shared by the open-loop sign-ins (each is a connection pool).
const CLIENTS: usize = 32;

pub struct OpenLoopResult {
    /// Offered operations per second.
    pub rate: f64,
    /// The length of the schedule.
    pub duration: Duration,
    pub offered: usize,
    /// Microseconds from each successful operation's scheduled start to its
    /// end, sorted.
    pub latencies: Vec<u64>,
    pub failures: Arc<Failures>,
    /// Operations that started more than [`LATE_AFTER`] after their time.
    pub late: usize,
    pub max_late: Duration,
    /// The most operations in flight at once (queueing shows here).
    pub max_in_flight: usize,
    /// The slowest operation that was scheduled in each second of the
    /// schedule, ms (failures included): where a stall happened.
    pub worst_by_second: Vec<f64>,
    /// The CPU used from the first scheduled start until the last operation ended.
    pub cpu: CpuUse,
}

impl OpenLoopResult {
    pub fn successes(&self) -> usize {
        self.latencies.len()
    }
}

/// Runs `op(i)` for i = 0, 1, … at `rate` per second for `duration`.
pub async fn run<F, Fut>(rate: f64, duration: Duration, federa_pid: u32, op: F) -> OpenLoopResult
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let n = (rate * duration.as_secs_f64()).round() as usize;
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-9));
    let failures = Arc::new(Failures::default());
    let cpu_start = CpuSample::take(federa_pid);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let (mut late, mut max_late) = (0usize, Duration::ZERO);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut max_in_flight = 0usize;
    for i in 0..n {
        let scheduled = start + period * u32::try_from(i).unwrap_or(u32::MAX);
        if Instant::now() < scheduled {
            tokio::time::sleep_until(scheduled.into()).await;
        }
        let behind = Instant::now().saturating_duration_since(scheduled);
        late += usize::from(behind > LATE_AFTER);
        max_late = max_late.max(behind);
        max_in_flight = max_in_flight.max(in_flight.fetch_add(1, Ordering::Relaxed) + 1);
        let fut = op(i);
        let (failures, in_flight) = (failures.clone(), in_flight.clone());
        let second = scheduled.saturating_duration_since(start).as_secs();
        tasks.push(tokio::spawn(async move {
            let result = fut.await;
            let took = scheduled.elapsed();
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let ok = match result {
                Ok(()) => true,
                Err(reason) => {
                    failures.add(reason, took);
                    false
                }
            };
            (second, micros(took), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    let mut worst_by_second: Vec<f64> = Vec::new();
    for t in tasks {
        let (second, took, ok) = t.await.unwrap();
        let at = usize::try_from(second).unwrap_or(usize::MAX);
        if worst_by_second.len() <= at {
            worst_by_second.resize(at + 1, 0.0);
        }
        worst_by_second[at] = worst_by_second[at].max(took as f64 / 1000.0);
        if ok {
            latencies.push(took);
        }
    }
    let cpu = cpu_start.until(&CpuSample::take(federa_pid));
    latencies.sort_unstable();
    OpenLoopResult {
        rate,
        duration,
        offered: n,
        latencies,
        failures,
        late,
        max_late,
        max_in_flight,
        worst_by_second,
        cpu,
    }
}

/// Brokered sign-ins of new users through `upstream`, at `rate` per second.
pub async fn sign_ins(
    target: &Arc<Target>,
    check: &Arc<TokenCheck>,
    federa_pid: u32,
    (upstream, upstream_issuer): (Upstream, &str),
    rate: f64,
    duration: Duration,
) -> OpenLoopResult {
    let clients: Arc<Vec<reqwest::Client>> = Arc::new((0..CLIENTS).map(|_| vu_client()).collect());
    let upstream_issuer: Arc<str> = upstream_issuer.into();
    run(rate, duration, federa_pid, |i| {
        let (target, check, clients, upstream_issuer) =
            (target.clone(), check.clone(), clients.clone(), upstream_issuer.clone());
        async move {
            let client = &clients[i % clients.len()];
            let hint = format!("o{i}");
            brokered_login(client, &target, upstream, &upstream_issuer, &hint, &check).await.map(|_| ())
        }
    })
    .await
}

/// Exchanges of the minted codes, oldest first, at `rate` per second for as
/// long as `rate` × `duration` codes last.
pub async fn exchanges(
    target: &Arc<Target>,
    check: &Arc<TokenCheck>,
    federa_pid: u32,
    minted: Vec<Minted>,
    rate: f64,
    duration: Duration,
) -> OpenLoopResult {
    let duration = duration.min(Duration::from_secs_f64(minted.len() as f64 / rate.max(1e-9)));
    let clients: Arc<Vec<reqwest::Client>> = Arc::new((0..CLIENTS).map(|_| vu_client()).collect());
    let minted = Arc::new(minted);
    run(rate, duration, federa_pid, |i| {
        let (target, check, clients, minted) = (target.clone(), check.clone(), clients.clone(), minted.clone());
        async move {
            let client = &clients[i % clients.len()];
            let m = minted.get(i).ok_or("no code left to exchange")?;
            exchange(client, &target, &m.code, &m.verifier, &m.nonce, &check).await
        }
    })
    .await
}

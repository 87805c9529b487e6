//! Federa's benchmark harness (`make bench`).
//!
//! In one run, on one machine (load generator and upstreams included), it:
//!
//! 1. starts the release `federa serve` in a fresh temporary folder (SQLite
//!    and embedded sessions, the defaults) and measures the time from spawn
//!    to the first 200 of `/health/ready`, then its idle RSS;
//! 2. starts the fast in-process upstream (`BadIdp`, good mode, ES256), sets
//!    up a realm `bench` through the admin API and reads its JWK Set;
//! 3. measures the CPU cost of one RSA-2048 signature (RS256, josekit) on
//!    one thread of its own ([`cost`]);
//! 4. measures full brokered sign-ins per second through the fast upstream
//!    in a closed loop, each one a new user created just in time, and
//!    Federa's CPU time over the measured window ([`load`]);
//! 5. the same through the real upstream, node `oidc-provider`;
//! 6. measures authorization_code exchanges alone, on codes minted
//!    beforehand through the SSO path, in a closed loop;
//! 7. runs sign-ins, then exchanges, in an open loop at a fraction (70 %) of
//!    the closed loops' peak rates, latency measured from each scheduled
//!    start ([`open_loop`]);
//! 8. measures the client_credentials grant at Federa and at node
//!    `oidc-provider` side by side, and rotating refresh grants, closed then
//!    open loop ([`grants`]);
//! 9. measures the signature cost again, reads the RSS after the load and at
//!    its peak (VmHWM);
//! 10. writes the results to `--out` (docs/PERFORMANCE.md) and stdout.
//!
//! Throughout, one token response in `--verify-every` is verified
//! ([`verify`]); a response that fails makes its operation fail, and any
//! such failure makes the harness exit with status 2.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cost;
mod flow;
mod grants;
mod load;
mod open_loop;
mod process;
mod prose;
mod report;
mod summary;
mod util;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::flow::{Target, Upstream};
use crate::load::LoginLoad;
use crate::process::FederaProcess;
use crate::verify::TokenCheck;

const ADMIN_TOKEN: &str = "bench-admin-token-3f9a0c6e2b7d41a8";
const REALM: &str = "bench";
const APP: &str = "app";
const APP_SECRET: &str = "bench-app-secret-8d1f2a";
const APP_CB: &str = "http://app.bench/cb";
const FAST_ALIAS: &str = "fast";
const NODE_ALIAS: &str = "node";
const SCOPE: &str = "openid profile email";

#[derive(Parser, Debug)]
#[command(about = "Federa's benchmark harness: see docs/PERFORMANCE.md")]
pub struct Args {
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
    /// Authorization codes minted, then exchanged in the closed loop.
    #[arg(long, default_value_t = 20_000)]
    codes: usize,
    /// Concurrent minters, and concurrent exchangers.
    #[arg(long, default_value_t = 32)]
    code_workers: usize,
    /// The open loops' offered rate, as a fraction of the closed loop's peak.
    #[arg(long, default_value_t = 0.7)]
    open_fraction: f64,
    /// Each open loop's schedule, seconds.
    #[arg(long, default_value_t = 10.0)]
    open_duration: f64,
    /// RS256 signatures timed for the signature cost (twice per run).
    #[arg(long, default_value_t = 2000)]
    signatures: usize,
    /// One token response in this many is verified.
    #[arg(long, default_value_t = 50)]
    verify_every: usize,
    /// Measured duration of each grant's closed loop (client_credentials at
    /// Federa and at oidc-provider, refresh), seconds.
    #[arg(long, default_value_t = 5.0)]
    grant_duration: f64,
    /// Refresh tokens rotated by the refresh runs.
    #[arg(long, default_value_t = 400)]
    refresh_tokens: usize,
    /// Skip the oidc-provider runs (no Node.js needed).
    #[arg(long)]
    skip_node: bool,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));

    eprintln!("federa-bench: starting {}", args.federa.display());
    let mut federa = FederaProcess::start(&args.federa).await;
    eprintln!("federa-bench: {} ready in {:?}", federa.base, federa.time_to_ready);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle = federa.rss_kib();

    let fast = tokio::task::spawn_blocking(flow::fast_upstream).await.unwrap();
    let http = reqwest::Client::new();
    flow::create_realm(&http, &federa.base, &fast).await;
    let target = Arc::new(Target::new(&federa.base));
    let check = Arc::new(TokenCheck::fetch(&http, &target, args.verify_every).await);
    eprintln!("federa-bench: realm keys {}", check.key_summary());

    let n = args.signatures;
    let sig_before = tokio::task::spawn_blocking(move || cost::measure(n)).await.unwrap();
    eprintln!("federa-bench: one RS256 signature: {:.0} µs of CPU", sig_before.cpu_us);

    eprintln!(
        "federa-bench: brokered sign-ins through the fast upstream: {} VUs, {}s warm-up, {}s",
        args.vus, args.warmup, args.duration
    );
    let fast_load = LoginLoad {
        target: target.clone(),
        check: check.clone(),
        federa_pid: federa.pid,
        upstream: Upstream::Fast,
        upstream_issuer: fast.issuer.clone(),
    };
    let fast_run = fast_load.closed_loop(args.vus, secs(args.warmup), secs(args.duration)).await;
    eprintln!("federa-bench:   {:.0}/s, {} failures", fast_run.per_second(), fast_run.failures.count());

    let node_run = if args.skip_node {
        None
    } else {
        let callback = target.endpoint(NODE_ALIAS);
        let node = tokio::task::spawn_blocking(move || flow::node_upstream(callback)).await.unwrap();
        flow::add_node_idp(&http, &federa.base, &node).await;
        eprintln!(
            "federa-bench: brokered sign-ins through oidc-provider: {} VUs, {}s warm-up, {}s",
            args.node_vus, args.node_warmup, args.node_duration
        );
        let load = LoginLoad { upstream: Upstream::Node, upstream_issuer: node.issuer.clone(), ..fast_load };
        let run = load.closed_loop(args.node_vus, secs(args.node_warmup), secs(args.node_duration)).await;
        eprintln!("federa-bench:   {:.0}/s, {} failures", run.per_second(), run.failures.count());
        drop(node);
        Some(run)
    };

    eprintln!(
        "federa-bench: minting {} codes through the SSO path, then exchanging them ({} workers)",
        args.codes, args.code_workers
    );
    let session = load::sso_session(&target, &fast.issuer, &check).await;
    let mint = load::mint(&target, &session, args.codes, args.code_workers).await;
    let (minted, mint_elapsed, mint_failures) = (mint.codes.len(), mint.elapsed, mint.failures);
    eprintln!("federa-bench:   minted {minted} in {mint_elapsed:?}; exchanging them");
    let ex = load::exchange_closed_loop(&target, &check, federa.pid, mint.codes, args.code_workers).await;
    eprintln!(
        "federa-bench:   exchanged {} in {:?}, {} failures",
        ex.exchanged,
        ex.elapsed,
        ex.failures.count() + mint_failures.count()
    );

    // Every closed loop is done: the peak so far is theirs.
    let rss_closed_peak = federa.hwm_kib();

    let open_rate = args.open_fraction * fast_run.per_second();
    eprintln!("federa-bench: open-loop sign-ins at {open_rate:.0}/s for {}s", args.open_duration);
    let open_logins = open_loop::sign_ins(
        &target,
        &check,
        federa.pid,
        (Upstream::Fast, &fast.issuer),
        open_rate,
        secs(args.open_duration),
    )
    .await;
    eprintln!(
        "federa-bench:   p99 {:?} ms, {} failures",
        util::percentile_ms(&open_logins.latencies, 99.0),
        open_logins.failures.count()
    );

    let open_ex_rate = args.open_fraction * ex.per_second();
    let open_codes = (open_ex_rate * args.open_duration).ceil() as usize;
    eprintln!("federa-bench: minting {open_codes} codes, then open-loop exchanges at {open_ex_rate:.0}/s");
    let open_mint = load::mint(&target, &session, open_codes, args.code_workers).await;
    let open_ex =
        open_loop::exchanges(&target, &check, federa.pid, open_mint.codes, open_ex_rate, secs(args.open_duration))
            .await;
    eprintln!(
        "federa-bench:   p99 {:?} ms, {} failures",
        util::percentile_ms(&open_ex.latencies, 99.0),
        open_ex.failures.count()
    );

    let grants = grants::run(grants::Setup {
        http: &http,
        base: &federa.base,
        target: &target,
        check: &check,
        federa_pid: federa.pid,
        session: &session,
        workers: args.code_workers,
        warmup: secs(args.warmup.min(1.0)),
        measured: secs(args.grant_duration),
        refresh_tokens: args.refresh_tokens,
        open_fraction: args.open_fraction,
        open_duration: secs(args.open_duration),
        skip_node: args.skip_node,
    })
    .await;

    let sig_after = tokio::task::spawn_blocking(move || cost::measure(n)).await.unwrap();
    eprintln!("federa-bench: one RS256 signature: {:.0} µs of CPU", sig_after.cpu_us);
    let rss_after = federa.rss_kib();
    let rss_peak = federa.hwm_kib();
    let users = flow::user_count(&http, &federa.base).await;
    let alive = federa.still_running();
    drop(fast);

    let results = summary::Results {
        args: &args,
        time_to_ready: federa.time_to_ready,
        rss: (rss_idle, rss_closed_peak, rss_after, rss_peak),
        sig: (sig_before, sig_after),
        fast: &fast_run,
        node: node_run.as_ref(),
        open_logins: &open_logins,
        mint: (minted, mint_elapsed, &mint_failures),
        open_mint: (open_mint.elapsed, &open_mint.failures),
        ex: &ex,
        open_ex: &open_ex,
        grants: &grants,
        check: &check,
        users,
        alive,
        log: federa.log.lock().unwrap().clone(),
    };
    let (doc, stdout) = results.render();
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&args.out, &doc).unwrap_or_else(|e| panic!("{}: {e}", args.out.display()));
    print!("{stdout}");
    println!("wrote {}", args.out.display());
    drop(federa);
    if check.failures.count() > 0 {
        eprintln!("federa-bench: {} SAMPLED TOKEN RESPONSE(S) FAILED VERIFICATION", check.failures.count());
        std::process::exit(2);
    }
}

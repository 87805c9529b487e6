//! The machine's cost of one RSA-2048 signature (RS256), measured in the
//! harness with the library Federa signs with (josekit over OpenSSL), on one
//! thread, in the same run as the load: the yardstick that Federa's CPU per
//! operation is compared against.

use std::time::Instant;

use josekit::jws::{JwsSigner as _, RS256};
use serde_json::{json, Map, Value};

/// What `n` signatures cost, in microseconds each.
#[derive(Clone, Copy)]
pub struct SignatureCost {
    pub n: usize,
    /// CPU time of the signing thread per raw RS256 signature of a
    /// token-sized input (`josekit` `RS256` signer).
    pub cpu_us: f64,
    /// Wall time per raw signature (higher when the cores are shared).
    pub wall_us: f64,
    /// CPU time per whole token as Federa makes one
    /// (`federa_protocol::TokenSigner::sign`: header and claims serialised,
    /// base64url, signature).
    pub token_cpu_us: f64,
}

/// This thread's CPU time in nanoseconds: `/proc/thread-self/schedstat`
/// (nanoseconds on the CPU), else `/proc/thread-self/stat` (clock ticks).
fn thread_cpu_ns() -> u64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok())
        .filter(|&ns| ns > 0);
    if let Some(ns) = schedstat {
        return ns;
    }
    let ticks = std::fs::read_to_string("/proc/thread-self/stat").ok().and_then(|t| {
        let rest = &t[t.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    });
    ticks.unwrap_or(0) * 1_000_000_000 / crate::process::clk_tck()
}

/// Claims the size and shape of Federa's access token.
fn claims() -> Map<String, Value> {
    let v = json!({
        "iss": "http://127.0.0.1:40000/realms/bench",
        "sub": "5f0c2f0e-9d7b-4c63-a0a4-6f3a8b1d2e4c",
        "aud": "app",
        "exp": 1_800_000_300,
        "iat": 1_800_000_000,
        "jti": "Yk3vQmZr8N2pX5tLw7cB1dHs9fJ0aE4uGqR6",
        "client_id": "app",
        "scope": "openid profile email",
        "auth_time": 1_800_000_000,
        "sid": "bS4kP9wQ2zX7nV1mL8cR5tY3hJ6gF0dA",
    });
    v.as_object().cloned().unwrap_or_default()
}

/// Measures `n` signatures of each kind on a thread of its own, after a
/// short warm-up.
pub fn measure(n: usize) -> SignatureCost {
    std::thread::spawn(move || {
        // As Federa makes a realm's key (federa_broker::keys).
        let pair = RS256.generate_key_pair(2048).unwrap();
        let pem = pair.to_pem_private_key();
        let signer = RS256.signer_from_pem(&pem).unwrap();
        let token_signer = federa_protocol::TokenSigner::from_pem("RS256", "bench-kid", &pem).unwrap();
        let claims = claims();
        // The signing input of a real token: header.payload, base64url.
        let sample = token_signer.sign("at+jwt", &claims).unwrap();
        let input = sample.rsplit_once('.').map(|(i, _)| i.to_owned()).unwrap();

        for _ in 0..n / 20 + 1 {
            std::hint::black_box(signer.sign(input.as_bytes()).unwrap());
        }
        let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
        for _ in 0..n {
            std::hint::black_box(signer.sign(input.as_bytes()).unwrap());
        }
        let (cpu1, wall) = (thread_cpu_ns(), wall0.elapsed());
        for _ in 0..n {
            std::hint::black_box(token_signer.sign("at+jwt", &claims).unwrap());
        }
        let cpu2 = thread_cpu_ns();
        let per = |ns: u64| ns as f64 / 1000.0 / n.max(1) as f64;
        SignatureCost {
            n,
            cpu_us: per(cpu1.saturating_sub(cpu0)),
            wall_us: per(u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX)),
            token_cpu_us: per(cpu2.saturating_sub(cpu1)),
        }
    })
    .join()
    .unwrap()
}

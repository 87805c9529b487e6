//! Small helpers shared by the harness: random values, URL bits, failure
//! bookkeeping and percentiles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::Digest as _;

/// How many distinct failure reasons are kept for the report.
const KEPT_REASONS: usize = 5;

pub fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// A short, readable version of a response body for a failure reason.
pub fn snippet(body: &str) -> String {
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
pub fn short(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}:{}{}", u.host_str().unwrap_or(""), u.port().unwrap_or(0), u.path()),
        Err(_) => url.to_owned(),
    }
}

/// A request error with its causes, without the URL (so that equal failures
/// group together).
pub fn http_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[i] as f64 / 1000.0)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Failed attempts of one kind: how many, the first few distinct reasons,
/// and how long each took.
#[derive(Default)]
pub struct Failures {
    count: AtomicUsize,
    reasons: Mutex<Vec<(String, usize)>>,
    /// How long each failed attempt took, microseconds.
    latencies: Mutex<Vec<u64>>,
}

impl Failures {
    pub fn add(&self, reason: String, took: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.latencies.lock().unwrap().push(micros(took));
        let mut reasons = self.reasons.lock().unwrap();
        if let Some(r) = reasons.iter_mut().find(|(r, _)| *r == reason) {
            r.1 += 1;
        } else if reasons.len() < KEPT_REASONS {
            reasons.push((reason, 1));
        }
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn reasons(&self) -> Vec<(String, usize)> {
        self.reasons.lock().unwrap().clone()
    }

    /// The median and largest time a failed attempt took, milliseconds.
    pub fn latency_ms(&self) -> Option<(f64, f64)> {
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort_unstable();
        Some((percentile_ms(&l, 50.0)?, percentile_ms(&l, 100.0)?))
    }
}

//! The federa process under test, and what `/proc` says about it: memory
//! (`VmRSS`, `VmHWM`) and CPU time (`utime` + `stime`), plus the CPU time of
//! this process and of the whole machine over the same window, so that a
//! report can say who else was using the two cores.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::ADMIN_TOKEN;

/// How many distinct log messages are kept.
const KEPT_MESSAGES: usize = 10;

pub struct FederaProcess {
    child: Child,
    pub pid: u32,
    pub base: String,
    dir: PathBuf,
    pub time_to_ready: Duration,
    pub log: Arc<Mutex<LogSummary>>,
}

/// Federa's warning and error lines, grouped by message (the text after
/// the logger's `[time LEVEL target]` prefix).
#[derive(Default, Clone)]
pub struct LogSummary {
    pub warnings: usize,
    pub errors: usize,
    /// (level and target, message) → count, in order of first appearance.
    pub messages: Vec<(String, usize)>,
}

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
    pub async fn start(binary: &Path) -> FederaProcess {
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

    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS").unwrap_or(0)
    }

    pub fn hwm_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmHWM").unwrap_or(0)
    }

    pub fn still_running(&mut self) -> bool {
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

/// `VmRSS` / `VmHWM` of a process, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Clock ticks per second of `/proc`'s CPU counters (`getconf CLK_TCK`).
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// `utime + stime` of a process (all its threads), in clock ticks, from
/// `/proc/<pid>/stat` (fields 14 and 15; the command name in field 2 may
/// hold spaces, so fields are counted after its closing parenthesis).
pub fn stat_ticks(path: &str) -> Option<u64> {
    stat_text_ticks(&std::fs::read_to_string(path).ok()?)
}

fn stat_text_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The machine's busy and total ticks over all CPUs, from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already
    // counted in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The CPU counters at one instant.
#[derive(Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    federa: u64,
    harness: u64,
    busy: u64,
    total: u64,
}

impl CpuSample {
    pub fn take(federa_pid: u32) -> CpuSample {
        let (busy, total) = machine_ticks().unwrap_or((0, 0));
        CpuSample {
            at: Instant::now(),
            federa: stat_ticks(&format!("/proc/{federa_pid}/stat")).unwrap_or(0),
            harness: stat_ticks("/proc/self/stat").unwrap_or(0),
            busy,
            total,
        }
    }

    /// The CPU used from `self` to `end`.
    pub fn until(&self, end: &CpuSample) -> CpuUse {
        let secs = |ticks: u64| ticks as f64 / clk_tck() as f64;
        CpuUse {
            wall: end.at.saturating_duration_since(self.at).as_secs_f64(),
            federa: secs(end.federa.saturating_sub(self.federa)),
            harness: secs(end.harness.saturating_sub(self.harness)),
            busy: secs(end.busy.saturating_sub(self.busy)),
            total: secs(end.total.saturating_sub(self.total)),
        }
    }
}

/// CPU seconds used over one measured window.
#[derive(Clone, Copy, Default)]
pub struct CpuUse {
    /// The window's length, seconds.
    pub wall: f64,
    /// Federa's own CPU seconds.
    pub federa: f64,
    /// This process's: the load generator and the in-process fast upstream.
    pub harness: f64,
    /// Every CPU's busy seconds, whatever ran.
    pub busy: f64,
    /// Every CPU's seconds, busy or idle.
    pub total: f64,
}

impl CpuUse {
    /// Federa's CPU milliseconds per operation.
    pub fn federa_ms_per(&self, ops: usize) -> Option<f64> {
        (ops > 0 && self.wall > 0.0).then(|| self.federa * 1000.0 / ops as f64)
    }

    /// Cores used by everything else: other processes on the machine.
    pub fn others(&self) -> f64 {
        (self.busy - self.federa - self.harness).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime cutime ...; the name holds ") 9 9 (".
        let line = "42 (a) 9 9 (b) S 1 42 42 0 -1 4194304 10 0 0 0 150 25 7 3 20 0 4";
        assert_eq!(stat_text_ticks(line), Some(175));
        assert_eq!(stat_text_ticks("42 (short) S 1"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_the_machine_has_more() {
        let own = stat_ticks("/proc/self/stat");
        let (busy, total) = machine_ticks().unwrap();
        assert!(own.is_some());
        assert!(busy <= total && total > 0);
    }
}

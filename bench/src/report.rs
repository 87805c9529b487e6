//! The report: a table of targets with measured values and verdicts, the
//! CPU accounting of each window, failures, and the hand-written profile
//! notes of the previous report, kept as they are.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::Failures;

/// The heading from which the old report's hand-written notes are kept.
pub const NOTES: &str = "## Where the time goes";

pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
}

pub fn machine() -> Machine {
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
pub fn git_commit() -> String {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--", "crates", "migrations", "themes"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("`{commit}`, with uncommitted changes to the server's sources (crates/, migrations/, themes/)")
    } else {
        format!("`{commit}`")
    }
}

/// Today (UTC) as YYYY-MM-DD, from the system clock.
pub fn today() -> String {
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

pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
    Below(f64),
    Zero,
    None,
}

pub struct Row {
    metric: String,
    value: Option<f64>,
    unit: &'static str,
    decimals: usize,
    target: Goal,
}

impl Row {
    pub fn new(metric: &str, value: Option<f64>, unit: &'static str, decimals: usize, target: Goal) -> Row {
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
            Goal::AtMost(t) => format!("≤ {t}{unit}"),
            Goal::Below(t) => format!("< {t}{unit}"),
            Goal::Zero => "0".into(),
            Goal::None => "—".into(),
        }
    }

    /// `met`, `missed`, or `—` for a figure without a target.
    pub fn verdict(&self) -> &'static str {
        match (&self.target, self.value) {
            (Goal::None, _) => "—",
            (_, None) => "missed",
            (Goal::AtLeast(t), Some(v)) if v >= *t => "met",
            (Goal::AtMost(t), Some(v)) if v <= *t => "met",
            (Goal::Below(t), Some(v)) if v < *t => "met",
            (Goal::Zero, Some(v)) if v.abs() < 0.5 => "met",
            _ => "missed",
        }
    }

    pub fn has_target(&self) -> bool {
        !matches!(self.target, Goal::None)
    }

    pub fn metric(&self) -> &str {
        &self.metric
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut s = String::from("| metric | result | target | met? |\n| --- | ---: | ---: | --- |\n");
    for r in rows {
        let _ = writeln!(s, "| {} | {} | {} | {} |", r.metric, r.result(), r.target(), r.verdict());
    }
    s
}

pub fn failure_lines(name: &str, f: &Failures) -> String {
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

/// One line of the CPU table: where the cores went over one window.
pub struct CpuLine<'a> {
    pub run: &'a str,
    pub ops: usize,
    pub cpu: crate::process::CpuUse,
    /// Signatures per operation, and the cost of one in ms.
    pub sigs: Option<(f64, f64)>,
}

pub fn cpu_table(lines: &[CpuLine<'_>]) -> String {
    let mut s = String::from(
        "| window | length | operations ok | Federa CPU | Federa per operation | of which beyond its signatures | \
         generator and fast upstream | other processes | idle |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for l in lines {
        let c = &l.cpu;
        let cores = |secs: f64| if c.wall > 0.0 { format!("{:.2} cores", secs / c.wall) } else { "—".into() };
        let per = c.federa_ms_per(l.ops);
        let beyond = match (per, l.sigs) {
            (Some(p), Some((n, sig))) => format!("{:.2} ms", p - n * sig),
            _ => "—".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.1} s | {} | {} | {} | {beyond} | {} | {} | {} |",
            l.run,
            c.wall,
            l.ops,
            cores(c.federa),
            per.map_or_else(|| "—".into(), |p| format!("{p:.2} ms")),
            cores(c.harness),
            cores(c.others()),
            cores((c.total - c.busy).max(0.0)),
        );
    }
    s
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

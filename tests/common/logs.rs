//! Federa's log records, kept in memory for the tests that check why
//! something was refused: the reason of a refused sign-in is logged, never
//! shown to the browser. The servers of the tests run in the test process, so
//! one logger installed for the process sees them all; a test picks its own
//! records by a marker only it uses (an upstream alias, say).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Mutex, OnceLock};

/// Records of Federa's crates at `Info` and above, as `LEVEL target: message`.
struct Capture {
    lines: Mutex<Vec<String>>,
}

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info && metadata.target().starts_with("federa")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture { lines: Mutex::new(Vec::new()) }));
        log::set_logger(capture).expect("no other logger in the test process");
        log::set_max_level(log::LevelFilter::Info);
        capture
    })
}

/// Starts keeping Federa's log records (once per process; later calls do nothing).
pub fn start() {
    capture();
}

/// The records kept so far that contain `marker`, oldest first.
pub fn containing(marker: &str) -> Vec<String> {
    let lines = capture().lines.lock().unwrap_or_else(|e| e.into_inner());
    lines.iter().filter(|l| l.contains(marker)).cloned().collect()
}

//! Logging through env_logger: `RUST_LOG` (or `log.level`) filters, and
//! `log.format = json` writes one JSON object per line for collectors.

use std::io::Write as _;

use crate::config::{LogFormat, LogSettings};

/// Installs the logger once, at start.
pub fn init(settings: &LogSettings) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&settings.level);
    if settings.format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    // A second init (in tests) keeps the first logger.
    let _ = builder.try_init();
}

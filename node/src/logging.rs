//! Log output on stderr: human-readable lines by default, or one JSON object per line
//! (`log_format = "json"`, or `PORTCULLIS_LOG_FORMAT=json`) for log shippers.
//!
//! Events go through `tracing`; `PORTCULLIS_LOG` takes a filter (default `info`). In
//! JSON mode a panic is logged as a JSON `error` event too, so that every line a node
//! writes to stderr parses.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable holding the log filter.
pub const FILTER_VAR: &str = "PORTCULLIS_LOG";
/// The variable that sets `log_format` (read early, to report a refused configuration).
pub const FORMAT_VAR: &str = "PORTCULLIS_LOG_FORMAT";
/// The filter when `PORTCULLIS_LOG` is unset or unreadable.
const DEFAULT_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Timestamp, level, target and message with its fields, for people.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the
    /// event's fields at the top level, and the span it ran in.
    Json,
}

impl LogFormat {
    /// The names the setting accepts.
    pub const NAMES: &'static str = "\"text\" or \"json\"";

    /// Parses a setting value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The format `PORTCULLIS_LOG_FORMAT` asks for, before any configuration is read.
    pub fn from_env() -> Self {
        std::env::var(FORMAT_VAR)
            .ok()
            .and_then(|v| Self::parse(v.trim()))
            .unwrap_or_default()
    }
}

/// Installs the process-wide subscriber writing to stderr. Call once, early.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env(FILTER_VAR).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init();
        }
        LogFormat::Json => {
            builder.json().flatten_event(true).with_ansi(false).init();
            std::panic::set_hook(Box::new(|info| {
                let location = info.location().map(ToString::to_string);
                tracing::error!(panic = %info, location, "panic");
            }));
        }
    }
}

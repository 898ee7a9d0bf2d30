//! Tracing setup: logs on stderr (stdout is kept for command output: `serve`'s banner goes there, so that with
//! `--log-format json` every line on stderr is one JSON object), filtered by `RUST_LOG`: plain text without
//! colour codes (whatever the terminal or `NO_COLOR`), or JSON lines (`--log-format json`, `WXKIT_LOG_FORMAT=json`)
//! for log shippers.
//!
//! Log lines often carry what a client sent (a push's field names in a parse error, a code). Every line passes
//! through [`escape_line`]: control characters become visible escapes, so no input can forge a log line (a `\n`)
//! or drive the operator's terminal (ANSI escapes).

use std::io::{self, Write};
use tracing_subscriber::EnvFilter;

/// The log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Installs the global subscriber once; later calls are no-ops (tests spawn many apps in one process).
pub fn init(default_filter: &str) {
    init_with(default_filter, LogFormat::Text);
}

/// [`init`] for tests: lines go through the test harness's output capture, so a passing test prints nothing from
/// the servers it started and a failing one shows what they said (`cargo test` and `cargo nextest` alike).
pub fn init_for_tests(default_filter: &str) {
    // A test process connects to PostgreSQL too: OpenSSL without its exit-time cleanup (see `db::init_tls`).
    crate::db::init_tls();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(default_filter))
        .with_writer(|| EscapingWriter(tracing_subscriber::fmt::TestWriter::new()))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Libraries whose debug and trace output dumps what passes through them (WebSocket frames carrying a one-time login
/// ticket, HTTP/2 frames, request heads with tokens): capped at `info` whatever `RUST_LOG` asks for.
pub const CAPPED_TARGETS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "h2",
    "hyper",
    "hyper_util",
    "actix_http",
    "rustls",
];

/// The filter of `RUST_LOG` (or `default_filter`), with [`CAPPED_TARGETS`] capped at `info`.
pub fn filter(default_filter: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    for target in CAPPED_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// [`init`] with a format.
pub fn init_with(default_filter: &str, format: LogFormat) {
    let filter = filter(default_filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| EscapingWriter(io::stderr()))
        // Never colour codes: log files and shippers want plain text, and NO_COLOR asks for it.
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        // The request's span (method, path, request id) once per line, not repeated as a list of spans.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// One formatted log line with control characters (other than its final newline) escaped as `\n`, `\r`, `\t`,
/// `\0` or `\xNN`.
///
/// ```
/// assert_eq!(wxkit::telemetry::escape_line(b"a\nb\x1b[31m\0\n"), b"a\\nb\\x1b[31m\\0\n".to_vec());
/// ```
pub fn escape_line(line: &[u8]) -> Vec<u8> {
    let (body, newline) = match line.strip_suffix(b"\n") {
        Some(b) => (b, true),
        None => (line, false),
    };
    let mut out = Vec::with_capacity(line.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0 => out.extend_from_slice(b"\\0"),
            0x01..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    if newline {
        out.push(b'\n');
    }
    out
}

/// A writer that escapes each line it is given (tracing's formatter writes one event per `write_all`).
struct EscapingWriter<W: Write>(W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape_line(buf))?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(&escape_line(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

//! Logging: a `tracing` subscriber writing to stderr. `-q` shows errors only, the default
//! warnings, `-v` info, `-vv` debug, `-vvv` trace (HTTP); `TERMINUS_BATCH_LOG` (an
//! `EnvFilter`) overrides them. Secrets never reach a log line: they are held in types whose
//! `Debug` prints `<redacted>`, and headers are never logged.
//!
//! While the live display draws on the terminal, a log line is written with the display
//! set aside ([`draw_logs_around`]): written past it, the line would strand the display's
//! frame on screen.

use std::io::Write;
use std::sync::{Mutex, PoisonError};

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The live display's bar, while one is drawn.
static DISPLAY: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Writes log lines with `bar` set aside while it is drawn (`None`: straight to stderr).
pub fn draw_logs_around(bar: Option<ProgressBar>) {
    *DISPLAY.lock().unwrap_or_else(PoisonError::into_inner) = bar;
}

/// One log event, buffered and written whole when the subscriber drops it.
struct Event(Vec<u8>);

impl Write for Event {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        // Logging is best effort: a closed stderr must not stop the run.
        let write = || {
            let _shown = std::io::stderr().write_all(&bytes);
        };
        let display = DISPLAY.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match display {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Event;

    fn make_writer(&'a self) -> Self::Writer {
        Event(Vec::new())
    }
}

/// Installs the subscriber once; later calls are ignored.
pub fn init(verbose: u8, quiet: bool, filter: Option<&str>) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // Our crates at the chosen level, others' at `warn`. The workspace's library crates are all
    // named `tb_…`, and a directive's target matches every target it is a prefix of.
    let directive = format!("terminus_batch={level},tb_={level},warn");
    let filter = filter.and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new(directive));
    // A second installation (tests calling main twice) is harmless; keep the first.
    let _already_set = tracing_subscriber::fmt()
        .with_writer(Stderr)
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .try_init();
}

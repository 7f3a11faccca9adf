//! Logging: a `tracing` subscriber writing to stderr. `-q` shows errors only, the default
//! warnings, `-v` info, `-vv` debug, `-vvv` trace (HTTP); `TERMINUS_BATCH_LOG` (an
//! `EnvFilter`) overrides them. Secrets never reach a log line: they are held in types whose
//! `Debug` prints `<redacted>`, and headers are never logged.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber once; later calls are ignored.
pub fn init(verbose: u8, quiet: bool, filter: Option<&str>) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let directive = format!("terminus_batch={level},warn");
    let filter = filter.and_then(|f| EnvFilter::try_new(f).ok()).unwrap_or_else(|| EnvFilter::new(directive));
    // A second installation (tests calling main twice) is harmless; keep the first.
    let _already_set = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .try_init();
}

//! The run's watchdogs: an API gone silent, Ctrl-C and SIGTERM, and a fence another run took
//! over; each halts or drains the executor and never returns.

use super::{CancellationToken, Fence, Halt};

/// Halts the run once no request has had any answer from the API for its silence limit
/// (see [`tb_operations::api::ApiClient::silence_limit`]): each new task would only wait
/// out its own budget against it. The tasks in flight end as their requests do.
pub(super) async fn watch_api(client: &tb_operations::api::ApiClient, halt: &Halt) -> std::convert::Infallible {
    let limit = client.silence_limit();
    loop {
        let next = match client.silent_for() {
            Some(silent) if silent >= limit => {
                halt.halt(format!(
                    "the API at {} has not answered for {}",
                    client.config().base,
                    humantime::format_duration(std::time::Duration::from_secs(silent.as_secs().max(1)))
                ));
                return std::future::pending().await;
            }
            Some(silent) => limit.saturating_sub(silent),
            None => limit,
        };
        // Looked at again by when the silence could reach the limit.
        tokio::time::sleep(next.max(std::time::Duration::from_millis(100))).await;
    }
}

/// First Ctrl-C (or SIGTERM) drains the run; the second stops waiting for tasks in flight.
pub(super) async fn watch_signals(drain: CancellationToken, abort: CancellationToken) -> std::convert::Infallible {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for token in [drain, abort] {
        #[cfg(unix)]
        {
            let terminate = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminate => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        token.cancel();
    }
    std::future::pending().await
}

/// Halts the run once its fence is told the lock or a lease was lost.
pub(super) async fn watch_fence(fence: &Fence, halt: &Halt) -> std::convert::Infallible {
    let lost = fence.wait().await;
    // What was lost and to whom is the run's to say (`RunOutcome::fenced`); the tasks not
    // started share one cause.
    halt.halt(fenced_reason(&lost).to_owned());
    std::future::pending().await
}

/// Why a fenced run started nothing more, in words that name no target.
pub(super) fn fenced_reason(lost: &tb_state::fence::Lost) -> &'static str {
    match lost {
        tb_state::fence::Lost::TakenOver { .. } => "another run took over this run's lock or a lease",
        tb_state::fence::Lost::Unproven { .. } => "this run could not prove it still held its lock or a lease",
    }
}

//! A caught panic's payload as text, for the internal errors the executor and the poller
//! report. Depends on nothing in the crate.

/// A panic's payload as text.
#[must_use]
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

//! An error and its sources on one line. Errors in this workspace say what failed and keep
//! why as their `source()`, never repeating it in their own message; wherever an error is
//! shown to people (the command line, a task's message), it is shown with its sources.

use std::error::Error;

/// `error: its source: that one's source`, each said once.
#[must_use]
pub fn one_line(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write the journal in {dir}")]
    struct Write {
        dir: String,
        source: std::io::Error,
    }

    #[test]
    fn each_source_follows_once() {
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let e = Write { dir: "state/runs/r".into(), source: full };
        assert_eq!(one_line(&e), "cannot write the journal in state/runs/r: No space left on device");
    }
}

//! Colour for terminals: ANSI SGR codes around a status word, or nothing. Whether to colour
//! is decided once by the command line (`--color`, `NO_COLOR`, whether the stream is a
//! terminal) and passed in; nothing here looks at the environment.

use tb_core::events::Status;

/// Paints text when `enabled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paint {
    pub enabled: bool,
}

impl Paint {
    #[must_use]
    pub const fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.enabled { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }

    #[must_use]
    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }

    #[must_use]
    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }

    #[must_use]
    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }

    #[must_use]
    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    #[must_use]
    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }

    /// A status's colour: failed red, skipped and cancelled yellow, unchanged dim,
    /// succeeded green.
    #[must_use]
    pub fn status(self, status: Status, text: &str) -> String {
        match status {
            Status::Failed => self.red(text),
            Status::Skipped | Status::Cancelled => self.yellow(text),
            Status::Unchanged => self.dim(text),
            Status::Succeeded => self.green(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_only_when_enabled() {
        assert_eq!(Paint::new(false).status(Status::Failed, "failed"), "failed");
        assert_eq!(Paint::new(true).status(Status::Failed, "failed"), "\x1b[31mfailed\x1b[0m");
        assert_eq!(Paint::new(true).status(Status::Unchanged, "unchanged"), "\x1b[2munchanged\x1b[0m");
        assert_eq!(Paint::new(true).status(Status::Skipped, "skipped"), "\x1b[33mskipped\x1b[0m");
    }
}

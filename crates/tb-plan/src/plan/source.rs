//! [`PlanSource`]: the bytes every span of a plan points into.

use std::sync::Arc;

use sha2::{Digest, Sha256};

/// A plan's path (as the user wrote it) and its full text.
#[derive(Clone, Debug)]
pub struct PlanSource {
    pub path: String,
    pub text: Arc<str>,
}

impl PlanSource {
    #[must_use]
    pub fn new(path: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        Self { path: path.into(), text: text.into() }
    }

    /// Hex sha256 of the text: identifies the exact plan a saved plan or a run came from.
    #[must_use]
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(self.text.as_bytes()))
    }

    /// 1-based line and column (in characters) of a byte offset, for messages without snippets.
    #[must_use]
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

use tb_core::hex::hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let s = PlanSource::new("p.yml", "a: 1\nbb: 2\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(5), (2, 1));
        assert_eq!(s.line_col(8), (2, 4));
        assert_eq!(s.line_col(999), (3, 1));
    }
}

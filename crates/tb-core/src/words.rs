//! Counted nouns for messages people read: `1 commit`, `3 commits`, never `1 commit(s)`.
//! Imports nothing internal.

use std::fmt::Display;

/// `n` and `noun`, made plural with an `s` unless `n` is one.
#[must_use]
pub fn counted<N: Display + PartialEq + From<u8> + Copy>(n: N, noun: &str) -> String {
    if n == N::from(1) { format!("{n} {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(1_usize, "commit"), "1 commit");
        assert_eq!(counted(0_u64, "commit"), "0 commits");
        assert_eq!(counted(12_u32, "composer update"), "12 composer updates");
    }
}

//! Shell-style wildcards for site names and environment ids: `*` (any run of characters) and
//! `?` (one character). Names are short and patterns simple, so a small matcher beats a
//! dependency; it runs in O(pattern × name) without recursion.

/// True when `text` contains a wildcard character.
#[must_use]
pub fn is_glob(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// True when `name` matches `pattern` in full.
#[must_use]
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Position of the last `*` seen and the name index it was tried at: classic backtracking
    // over a single star, which is enough because stars absorb any run.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("acme-*", "acme-web"));
        assert!(matches("*", ""));
        assert!(matches("ci-?", "ci-1"));
        assert!(!matches("ci-?", "ci-12"));
        assert!(matches("*-web*", "acme-web-2"));
        assert!(!matches("legacy-*", "acme-legacy-1"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
    }
}

//! [`Endpoint`]: what a run talks to, the simulator with its world or the API at a base URL.
//! The journal header and a saved plan record it with the user id, so a resume or a saved
//! plan never crosses targets. Imports nothing internal.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a run talks to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// The built-in simulator, serving the world with this name and text hash.
    Simulator { world: String, world_sha256: String },
    /// The Pantheon API at this base URL.
    Api { base: String },
}

impl Endpoint {
    /// Whether two runs talk to the same thing: the same world (by content, whatever its
    /// path was spelled), or the same API base URL.
    #[must_use]
    pub fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Simulator { world_sha256: a, .. }, Self::Simulator { world_sha256: b, .. }) => a == b,
            (Self::Api { base: a }, Self::Api { base: b }) => a.trim_end_matches('/') == b.trim_end_matches('/'),
            _ => false,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Simulator { world, world_sha256 } => {
                write!(f, "the simulator of {world} (sha256 {})", world_sha256.get(..12).unwrap_or(world_sha256))
            }
            Self::Api { base } => write!(f, "the Pantheon API at {base}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_world_by_content_and_the_same_api_by_url() {
        let sim = |name: &str, hash: &str| Endpoint::Simulator { world: name.into(), world_sha256: hash.into() };
        let api = |base: &str| Endpoint::Api { base: base.into() };
        assert!(sim("w.yml", "ab").same_as(&sim("./w.yml", "ab")));
        assert!(!sim("w.yml", "ab").same_as(&sim("w.yml", "cd")));
        assert!(api("https://terminus.pantheon.io:443/api/").same_as(&api("https://terminus.pantheon.io:443/api")));
        assert!(!api("https://terminus.pantheon.io:443/api/").same_as(&sim("w", "ab")));
        assert!(sim("w", "abcdef0123456789").to_string().contains("abcdef012345"));
    }
}

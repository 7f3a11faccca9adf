//! Where runs keep their state, as the user named it: a directory, or an object-store URL.
//! Read by the plan's validation (`settings.state`) and opened by `state`; a leaf, so the two
//! need not import each other.

use std::fmt;
use std::path::PathBuf;

/// Where the state is, as the user named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    Url(url::Url),
}

impl Location {
    /// A directory on this machine (not an object store).
    #[must_use]
    pub fn is_dir(&self) -> bool {
        matches!(self, Self::Dir(_))
    }

    /// Reads a state location: a URL with a known object-store scheme, else a directory. A
    /// text that looks like a URL of another scheme is refused, rather than taken for a
    /// directory named `scheme:`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once("://") {
            Some((scheme, _))
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                let url = url::Url::parse(text).map_err(|e| format!("the state location {text} is not a URL: {e}"))?;
                match url.scheme() {
                    "s3" | "gs" | "az" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(Self::Url(url)),
                    "s3" | "gs" | "az" => Err(format!("the state location {text} names no bucket")),
                    other => Err(format!(
                        "the state location {text} has the scheme `{other}`; use a directory, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
                    )),
                }
            }
            _ => Ok(Self::Dir(PathBuf::from(text))),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "{}", dir.display()),
            Self::Url(url) => write!(f, "{url}"),
        }
    }
}

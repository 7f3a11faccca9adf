//! Identifier newtypes shared by every stage: [`JobId`], [`TaskId`] and [`RunId`].
//!
//! Imports nothing internal, so every module may depend on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The name of a job, as written under `jobs:` in the plan.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one task: the job, then its target and matrix coordinates in brackets,
/// e.g. `deploy-live[acme-web.live]` or `add-domains[acme-web.live,domain=a.example]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct TaskId(String);

impl std::ops::Deref for TaskId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl TaskId {
    /// Builds the id from its parts. `target` is `site`, `site.env` or empty (account tasks);
    /// `coords` are the matrix coordinates in axis order.
    #[must_use]
    pub fn new(job: &JobId, target: &str, coords: &[(String, String)]) -> Self {
        let mut inside = String::from(target);
        for (axis, value) in coords {
            if !inside.is_empty() {
                inside.push(',');
            }
            inside.push_str(axis);
            inside.push('=');
            inside.push_str(value);
        }
        if inside.is_empty() { Self(job.as_str().to_owned()) } else { Self(format!("{job}[{inside}]")) }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_follow_the_design_notation() {
        let job = JobId::new("add-domains");
        let coords = [("domain".to_owned(), "a.example".to_owned())];
        assert_eq!(TaskId::new(&job, "acme-web.live", &coords).as_str(), "add-domains[acme-web.live,domain=a.example]");
        assert_eq!(TaskId::new(&JobId::new("redis"), "acme-web", &[]).as_str(), "redis[acme-web]");
        assert_eq!(TaskId::new(&JobId::new("orgs"), "", &[]).as_str(), "orgs");
    }
}

/// The id of one `apply`: its UTC start time, sortable, then a short random suffix, e.g.
/// `20261127T153012Z-7f3a`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// From a compact UTC stamp and a suffix.
    #[must_use]
    pub fn from_parts(stamp: &str, suffix: u16) -> Self {
        Self(format!("{stamp}-{suffix:04x}"))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

//! What `--resume` continues: the earlier run of the same plan (shard, run group) in the
//! state store, followed along its chain, and only against the same target as the same user.

use std::collections::{BTreeMap, BTreeSet};

use tb_core::endpoint::Endpoint;
use tb_state::journal;
use tb_state::journal::{Prior, RunJournal};

use crate::apply::{ApplyOptions, Resume};
use crate::{Refusal, RunError};

/// The run a resume continues, and what its whole chain left.
pub struct Earlier {
    pub(super) newest: RunJournal,
    pub(super) priors: BTreeMap<String, Prior>,
    /// The run `--resume=RUN` named, when a later run had resumed it since: the resume
    /// continues from that later run instead.
    pub(super) named: Option<String>,
    /// The run's journal records nothing past its header (cut, or the process died right
    /// after writing it): what it started is unknown, so every task it may have started
    /// first looks for such a workflow (from this time on, in unix seconds).
    pub(super) unknown_since: Option<f64>,
    /// Every workflow the chain recorded: never adopted as what a lost POST started.
    pub(super) known_workflows: BTreeSet<String>,
}

impl Earlier {
    /// The run this resume continues.
    #[must_use]
    pub fn run_id(&self) -> &str {
        &self.newest.header.run_id
    }

    /// The run `--resume=RUN` named, when a later run resumed it since and the resume
    /// continues from that one.
    #[must_use]
    pub fn passed_over(&self) -> Option<&str> {
        self.named.as_deref()
    }
}

/// The earlier run `--resume` continues, found before any API call (resolution included):
/// without one there is nothing to resume. `plan_keys` are [`PlanInput::keys`](crate::PlanInput::keys).
pub fn find_earlier(plan_keys: &[String], options: &ApplyOptions) -> Result<Option<Earlier>, RunError> {
    let Some(which) = &options.resume else { return Ok(None) };
    let named = match which {
        Resume::Newest | Resume::IfAny => None,
        Resume::Run(id) => Some(id.as_str()),
    };
    let whose = journal::Whose { plan_keys, shard: options.shard.as_deref(), group: options.run_group.as_deref() };
    let mut newest = match journal::find(&options.state, &whose, named) {
        Ok(found) => found,
        Err(journal::JournalError::NoRun { .. }) if matches!(which, Resume::IfAny) => return Ok(None),
        Err(e) => return Err(Refusal::Journal(e).into()),
    };
    // A run named by id that a later run resumed since: what that run did is not in the
    // named one's journal, so the resume starts from the newest run of its chain.
    let mut passed_over = None;
    if let Some(run) = named
        && let Some(later) = journal::newest_resume_of(&options.state, run)
    {
        passed_over = Some(run.to_owned());
        newest = later;
    }
    // Every run of the chain, not only the newest: a resume killed before it re-recorded
    // what it adopted still leaves the older runs' records.
    let older = journal::chain(&options.state, &newest);
    let priors = journal::chain_priors(older.iter().chain(std::iter::once(&newest)));
    let known_workflows = journal::chain_workflows(older.iter().chain(std::iter::once(&newest)));
    let unknown_since = journal::records_nothing(&newest).then(|| {
        let started = tb_core::timefmt::parse_compact(&newest.header.run_id).unwrap_or(0);
        #[expect(clippy::cast_precision_loss, reason = "unix seconds")]
        let started = started as f64;
        started
    });
    Ok(Some(Earlier { newest, priors, named: passed_over, unknown_since, known_workflows }))
}

/// A resume continues what an earlier run did only against the same target, as the same
/// user: anything else would mark tasks done that were never done there.
pub(super) fn same_target(journal: &RunJournal, endpoint: &Endpoint, user_id: &str) -> Result<(), RunError> {
    let run = &journal.header.run_id;
    match &journal.header.endpoint {
        Some(then) if then.same_as(endpoint) => {}
        Some(then) => {
            let (then, now) = (then.to_string(), endpoint.to_string());
            return Err(Refusal::ResumeOtherTarget { run: run.clone(), then, now }.into());
        }
        None => {
            return Err(Refusal::ResumeTargetUnknown { run: run.clone() }.into());
        }
    }
    match &journal.header.user_id {
        Some(then) if then == user_id => Ok(()),
        Some(then) => {
            Err(Refusal::ResumeOtherUser { run: run.clone(), then: then.clone(), now: user_id.to_owned() }.into())
        }
        None => Err(Refusal::ResumeUserUnknown { run: run.clone() }.into()),
    }
}

//! Workflows: starting one without ever starting it twice, and waiting for many with one
//! shared poller (DESIGN.md §5).
//!
//! **Starting.** The transport repeats the POST only after a 429 or a connection refused
//! before anything was sent ([`Repeat::OnlyIfRefused`](super::Repeat::OnlyIfRefused)). After any other failure (timeout,
//! reset, 5xx, an answer that is not a workflow) the request may have reached the platform,
//! so the client lists the site's workflows and adopts the newest one of the same type and
//! environment, started by this session's user no earlier than 120 s before the POST, not
//! claimed by another task, and, where the type takes an annotation, carrying our marker.
//! When none is there after a 5xx (the platform answered, so it is done with the request;
//! a gateway's 502 or 504 gets a second look after the backoff), the POST is sent again
//! within the request's budget of attempts and time; after a timeout or a reset, never.
//!
//! **Waiting.** [`Poller`] is a handle; [`PollerDriver::drive`] is the one loop that polls for
//! the whole run (the command drives it beside the executor, so nothing is detached). A site
//! with one workflow in flight is polled by id; a site with several gets one list request per
//! tick. The first poll is scheduled near the expected finish, learned from the `total_time`
//! of workflows of the same type seen finishing; never more often than the poll floor per
//! site. A type with no run time known is first looked up in a few site lists; when they
//! teach nothing (a cold platform), one waiter of the type scouts, polling as its workflow
//! runs, and the others are held for what its end teaches.

use serde_json::Value;

mod pace;
mod poller;
mod start;

pub use poller::{Poller, PollerDriver};
pub(crate) use start::ADOPT_WINDOW_SECS;

/// Where a workflow is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkflowScope {
    /// `POST sites/{site}/environments/{env}/workflows`.
    Env { site_id: String, env: String },
    /// `POST sites/{site}/workflows`; `env` is the `environment_id` param when the type has
    /// one (multidev create and delete), used to tell workflows apart when reconciling.
    Site { site_id: String, env: Option<String> },
}

impl WorkflowScope {
    #[must_use]
    pub fn site_id(&self) -> &str {
        match self {
            Self::Env { site_id, .. } | Self::Site { site_id, .. } => site_id,
        }
    }
}

/// A workflow to start.
#[derive(Clone, Debug)]
pub struct StartWorkflow {
    pub scope: WorkflowScope,
    /// The workflow type.
    pub kind: WorkflowType,
    /// `params`; `{}` when there are none.
    pub params: Value,
    /// Text our annotation carries (` [tb:<run>:<task>]`), matched when reconciling.
    pub marker: Option<String>,
}

/// The workflow types the operations start, by the names the platform gives them
/// (pantheon-api.md §4). The simulator keeps its own names, so the two stay independent
/// checks of each other and meet only on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkflowType {
    CreateEnvironment,
    Deploy,
    ClearCache,
    CloneFiles,
    CloneDatabase,
    CommitAndPushOnServerChanges,
    EnableOnServerDevelopment,
    EnableGitMode,
    LockEnvironment,
    UnlockEnvironment,
    EnableAddon,
    DoExport,
    RestoreCode,
    RestoreDatabase,
    RestoreFiles,
    CreateCloudDevelopmentEnvironment,
    DeleteCloudDevelopmentEnvironment,
    MergeCloudDevelopmentEnvironmentIntoDev,
    MergeDevIntoCloudDevelopmentEnvironment,
    ApplyUpstreamUpdates,
    DisableAddon,
    ClearCodeCache,
    RotateEnvironmentRandseed,
    Wipe,
    DisableSsl,
    SetPrimaryDomain,
    ChangeBackupSchedule,
    SwitchUpstream,
    EnableNewRelicForSite,
    DisableNewRelicForSite,
    AddSiteUserMembership,
    RemoveSiteUserMembership,
    UpdateSiteUserMembership,
    AddSiteOrganizationMembership,
    RemoveSiteOrganizationMembership,
    ChangeSiteServiceLevel,
    SyncCodeWithBuild,
}

impl WorkflowType {
    /// The platform's name of the type (`type` in workflow JSON).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateEnvironment => "create_environment",
            Self::Deploy => "deploy",
            Self::ClearCache => "clear_cache",
            Self::CloneFiles => "clone_files",
            Self::CloneDatabase => "clone_database",
            Self::CommitAndPushOnServerChanges => "commit_and_push_on_server_changes",
            Self::EnableOnServerDevelopment => "enable_on_server_development",
            Self::EnableGitMode => "enable_git_mode",
            Self::LockEnvironment => "lock_environment",
            Self::UnlockEnvironment => "unlock_environment",
            Self::EnableAddon => "enable_addon",
            Self::DoExport => "do_export",
            Self::RestoreCode => "restore_code",
            Self::RestoreDatabase => "restore_database",
            Self::RestoreFiles => "restore_files",
            Self::CreateCloudDevelopmentEnvironment => "create_cloud_development_environment",
            Self::DeleteCloudDevelopmentEnvironment => "delete_cloud_development_environment",
            Self::MergeCloudDevelopmentEnvironmentIntoDev => "merge_cloud_development_environment_into_dev",
            Self::MergeDevIntoCloudDevelopmentEnvironment => "merge_dev_into_cloud_development_environment",
            Self::ApplyUpstreamUpdates => "apply_upstream_updates",
            Self::DisableAddon => "disable_addon",
            Self::ClearCodeCache => "clear_code_cache",
            Self::RotateEnvironmentRandseed => "rotate_environment_randseed",
            Self::Wipe => "wipe",
            Self::DisableSsl => "disable_ssl",
            Self::SetPrimaryDomain => "set_primary_domain",
            Self::ChangeBackupSchedule => "change_backup_schedule",
            Self::SwitchUpstream => "switch_upstream",
            Self::EnableNewRelicForSite => "enable_new_relic_for_site",
            Self::DisableNewRelicForSite => "disable_new_relic_for_site",
            Self::AddSiteUserMembership => "add_site_user_membership",
            Self::RemoveSiteUserMembership => "remove_site_user_membership",
            Self::UpdateSiteUserMembership => "update_site_user_membership",
            Self::AddSiteOrganizationMembership => "add_site_organization_membership",
            Self::RemoveSiteOrganizationMembership => "remove_site_organization_membership",
            Self::ChangeSiteServiceLevel => "change_site_service_level",
            Self::SyncCodeWithBuild => "sync_code_with_build",
        }
    }
}

impl std::fmt::Display for WorkflowType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

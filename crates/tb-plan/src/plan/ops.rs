//! The operation catalogue (DESIGN.md §3.2): every operation a plan may `run`, with its scope,
//! environment rule, options (name, type, default), whether it starts a workflow, moves code,
//! or destroys data; and [`OperationSpec`], the typed, fully expanded operation a task carries.
//!
//! Names are terminus's command names and option names its flag names, so a Pantheon user
//! already knows them. Executing operations is `operations/`'s job; this file only describes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::template::Text;

/// Where an operation applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One task per site and environment; `on.env` is required.
    Env,
    /// One task per site; `on.env` is forbidden.
    Site,
    /// One task for the whole account; `on` is forbidden.
    Account,
}

/// Which environments an env-scoped operation accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvRule {
    Any,
    TestOrLive,
    DevOrMultidev,
    /// An existing multidev.
    Multidev,
    /// A multidev to create: a literal, valid multidev name (no glob).
    NewMultidev,
}

impl EnvRule {
    /// Whether a concrete environment id satisfies the rule.
    #[must_use]
    pub fn allows(self, env: &str) -> bool {
        let standard = matches!(env, "dev" | "test" | "live");
        match self {
            Self::Any => true,
            Self::TestOrLive => matches!(env, "test" | "live"),
            Self::DevOrMultidev => env == "dev" || !standard,
            Self::Multidev | Self::NewMultidev => !standard,
        }
    }

    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Any => "any environment",
            Self::TestOrLive => "test or live",
            Self::DevOrMultidev => "dev or a multidev",
            Self::Multidev => "a multidev",
            Self::NewMultidev => "the name of a new multidev",
        }
    }
}

/// When an operation destroys data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destructive {
    Never,
    Always,
    /// Only when this boolean option is true.
    WhenOption(&'static str),
}

/// What an operation does to the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Reads only.
    ReadOnly,
    /// Changes state with a direct request (no workflow).
    Direct,
    /// Starts a workflow.
    Workflow,
    /// Starts a workflow that changes an environment's code: never two at once per environment.
    CodeMoving,
}

/// The type of an option's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptType {
    /// Free text; templates allowed.
    Text,
    Bool,
    /// A backup element; `all` allowed or not.
    Element {
        all: bool,
    },
    /// Days, as `30` or `30d`.
    Days,
    /// An environment id.
    EnvId,
    /// `git` or `sftp`.
    Mode,
    /// What is kept of a remote command's output in files: `digest` or `report`.
    Output,
    /// A hostname; templates allowed.
    Domain,
    /// Only `${{ env.NAME }}`.
    Secret,
    /// A local directory; templates allowed.
    Dir,
    /// A name (organization, tag, file); templates allowed.
    Name,
    /// A day of the week, `sunday` … `saturday` (or `sun` … `sat`).
    Weekday,
    /// A duration: seconds (`180`) or with a unit (`3m`, `90s`, `1h`).
    Seconds,
    /// A command as a list of words (`[updb, -y]`), never a shell string.
    Words,
    /// A metrics period: `day`, `week` or `month`.
    Period,
    /// How many metrics data points: a number (at most 28 days, 12 weeks or 12 months) or
    /// `auto` (that most).
    Datapoints,
    /// HTTP status codes: one (`200`) or a list (`[200, 301]`), each 100 to 599.
    Statuses,
    /// A short duration to the millisecond: `800ms`, `2s`, or milliseconds as a number.
    Latency,
    /// Which of an environment's hosts a check asks: `platform` (`<env>-<site>.pantheonsite.io`)
    /// or `primary` (its primary domain).
    SiteHost,
}

impl OptType {
    /// Whether `${{ ... }}` may appear inside the value.
    #[must_use]
    pub fn takes_text(self) -> bool {
        matches!(self, Self::Text | Self::Domain | Self::Dir | Self::Name)
    }

    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Bool => "true or false",
            Self::Element { all: true } => "code, database, files or all",
            Self::Element { all: false } => "code, database or files",
            Self::Days => "a number of days (30 or 30d)",
            Self::EnvId => "an environment id",
            Self::Mode => "git or sftp",
            Self::Output => "digest or report",
            Self::Domain => "a domain name",
            Self::Secret => "`${{ env.NAME }}`",
            Self::Dir => "a directory",
            Self::Name => "a name",
            Self::Weekday => "a day of the week (sunday … saturday)",
            Self::Seconds => "a duration (180, 90s, 3m, 1h)",
            Self::Words => "a list of words, e.g. [updb, -y]",
            Self::Period => "day, week or month",
            Self::Datapoints => "a number of data points (1 to 28) or auto",
            Self::Statuses => "an HTTP status (200) or a list of them ([200, 301])",
            Self::Latency => "a duration to the millisecond (800ms, 2s)",
            Self::SiteHost => "platform or primary",
        }
    }
}

/// One option of an operation.
#[derive(Clone, Copy, Debug)]
pub struct OptSpec {
    pub name: &'static str,
    pub ty: OptType,
    pub required: bool,
    /// The default, as documentation shows it.
    pub default: Option<&'static str>,
}

const fn opt(name: &'static str, ty: OptType, default: Option<&'static str>) -> OptSpec {
    OptSpec { name, ty, required: false, default }
}

const fn req(name: &'static str, ty: OptType) -> OptSpec {
    OptSpec { name, ty, required: true, default: None }
}

macro_rules! operations {
    ($( $variant:ident = $name:literal, $scope:ident, $envs:ident, $effect:ident, $destructive:expr, $est:literal, [$($opt:expr),* $(,)?]; )*) => {
        /// Every operation a plan may run.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum OperationKind { $($variant),* }

        impl OperationKind {
            /// Every operation, in catalogue order.
            pub const ALL: &'static [OperationKind] = &[$(Self::$variant),*];

            /// The terminus command name.
            #[must_use]
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            #[must_use]
            pub fn scope(self) -> Scope {
                match self { $(Self::$variant => Scope::$scope),* }
            }

            #[must_use]
            pub fn env_rule(self) -> EnvRule {
                match self { $(Self::$variant => EnvRule::$envs),* }
            }

            #[must_use]
            pub fn effect(self) -> Effect {
                match self { $(Self::$variant => Effect::$effect),* }
            }

            #[must_use]
            pub fn destructive(self) -> Destructive {
                match self { $(Self::$variant => $destructive),* }
            }

            /// A typical duration in seconds, for the plan's time estimate.
            #[must_use]
            pub fn estimate_secs(self) -> u64 {
                match self { $(Self::$variant => $est),* }
            }

            #[must_use]
            pub fn options(self) -> &'static [OptSpec] {
                match self { $(Self::$variant => { const OPTIONS: &[OptSpec] = &[$($opt),*]; OPTIONS }),* }
            }
        }
    };
}

use Destructive::{Always, Never, WhenOption};
use OptType::{
    Bool, Datapoints, Days, Dir, Domain, Element, EnvId, Latency, Mode, Name, Output, Period, Seconds, Secret,
    SiteHost, Statuses, Weekday, Words,
};

operations! {
    EnvDeploy = "env:deploy", Env, TestOrLive, CodeMoving, WhenOption("sync-content"), 120,
        [opt("note", OptType::Text, Some("Deploy from Terminus")), opt("updatedb", Bool, Some("false")),
         opt("cc", Bool, Some("false")), opt("sync-content", Bool, Some("false"))];
    EnvClearCache = "env:clear-cache", Env, Any, Workflow, Never, 30, [];
    EnvWake = "env:wake", Env, Any, ReadOnly, Never, 2, [];
    EnvCloneContent = "env:clone-content", Env, Any, CodeMoving, Always, 240,
        [req("from-env", EnvId), opt("db-only", Bool, Some("false")), opt("files-only", Bool, Some("false")),
         opt("updatedb", Bool, Some("false")), opt("cc", Bool, Some("false"))];
    EnvCommit = "env:commit", Env, DevOrMultidev, Workflow, Never, 60,
        [opt("message", OptType::Text, Some("Terminus commit."))];
    BackupCreate = "backup:create", Env, Any, Workflow, Never, 300,
        [opt("element", Element { all: true }, Some("all")), opt("keep-for", Days, Some("365"))];
    BackupGet = "backup:get", Env, Any, ReadOnly, Never, 60,
        [opt("element", Element { all: false }, Some("files")), opt("file", Name, None), req("to", Dir)];
    BackupRestore = "backup:restore", Env, Any, Workflow, Always, 300,
        [opt("element", Element { all: true }, Some("all")), opt("file", Name, None)];
    MultidevCreate = "multidev:create", Env, NewMultidev, Workflow, Never, 300,
        [opt("from-env", EnvId, Some("dev")), opt("no-db", Bool, Some("false")), opt("no-files", Bool, Some("false"))];
    MultidevDelete = "multidev:delete", Env, Multidev, Workflow, Always, 120,
        [opt("delete-branch", Bool, Some("false"))];
    MultidevMergeToDev = "multidev:merge-to-dev", Env, Multidev, CodeMoving, Never, 120,
        [opt("updatedb", Bool, Some("false"))];
    MultidevMergeFromDev = "multidev:merge-from-dev", Env, Multidev, CodeMoving, Never, 120,
        [opt("updatedb", Bool, Some("false"))];
    DomainAdd = "domain:add", Env, Any, Direct, Never, 2, [req("domain", Domain)];
    DomainRemove = "domain:remove", Env, Any, Direct, Always, 2, [req("domain", Domain)];
    ConnectionSet = "connection:set", Env, DevOrMultidev, Workflow, WhenOption("discard-changes"), 30,
        [req("mode", Mode), opt("discard-changes", Bool, Some("false"))];
    UpstreamUpdatesApply = "upstream:updates:apply", Env, DevOrMultidev, CodeMoving, Never, 120,
        [opt("updatedb", Bool, Some("false")), opt("accept-upstream", Bool, Some("false"))];
    LockEnable = "lock:enable", Env, Any, Workflow, Never, 30, [req("username", OptType::Text), req("password", Secret)];
    LockDisable = "lock:disable", Env, Any, Workflow, Always, 30, [];
    RedisEnable = "redis:enable", Site, Any, Workflow, Never, 30, [];
    SolrEnable = "solr:enable", Site, Any, Workflow, Never, 30, [];
    RedisDisable = "redis:disable", Site, Any, Workflow, Never, 30, [];
    NewRelicEnable = "new-relic:enable", Site, Any, Workflow, Never, 30, [];
    SiteTeamAdd = "site:team:add", Site, Any, Workflow, Never, 30, [req("member", Name), opt("role", Name, Some("team_member"))];
    SiteTeamRemove = "site:team:remove", Site, Any, Workflow, Never, 30, [req("member", Name)];
    SiteTeamRole = "site:team:role", Site, Any, Workflow, Never, 30, [req("member", Name), req("role", Name)];
    SiteOrgAdd = "site:org:add", Site, Any, Workflow, Never, 30, [req("organization", Name)];
    SiteOrgRemove = "site:org:remove", Site, Any, Workflow, Never, 30, [req("organization", Name)];
    PlanSet = "plan:set", Site, Any, Workflow, Never, 60, [req("plan", Name)];
    EnvCodeRebuild = "env:code-rebuild", Env, DevOrMultidev, Workflow, Never, 120, [];
    EnvDiffstat = "env:diffstat", Env, Any, ReadOnly, Never, 1, [];
    ConnectionInfo = "connection:info", Env, Any, ReadOnly, Never, 1, [];
    LockInfo = "lock:info", Env, Any, ReadOnly, Never, 1, [];
    BackupAutomaticInfo = "backup:automatic:info", Env, Any, ReadOnly, Never, 1, [];
    UpstreamUpdatesList = "upstream:updates:list", Env, Any, ReadOnly, Never, 2, [];
    EnvMetrics = "env:metrics", Env, Any, ReadOnly, Never, 1, [opt("period", Period, Some("day")), opt("datapoints", Datapoints, Some("auto"))];
    NewRelicDisable = "new-relic:disable", Site, Any, Workflow, Never, 30, [];
    SolrDisable = "solr:disable", Site, Any, Workflow, Never, 30, [];
    SiteUpstreamClearCache = "site:upstream:clear-cache", Site, Any, Workflow, Never, 30, [];
    SiteUpstreamSet = "site:upstream:set", Site, Any, Workflow, Never, 60, [req("upstream", Name)];
    EnvRotateRandomSeed = "env:rotate-random-seed", Env, Any, Workflow, Never, 30, [];
    EnvWipe = "env:wipe", Env, Any, Workflow, Always, 120, [];
    HttpsRemove = "https:remove", Env, Any, Workflow, Always, 60, [];
    DomainPrimaryAdd = "domain:primary:add", Env, Any, Workflow, Never, 30, [req("domain", Domain)];
    DomainPrimaryRemove = "domain:primary:remove", Env, Any, Workflow, Never, 30, [];
    TagAdd = "tag:add", Site, Any, Direct, Never, 2, [req("org", Name), req("tag", Name)];
    TagRemove = "tag:remove", Site, Any, Direct, Never, 2, [req("org", Name), req("tag", Name)];
    SiteInfo = "site:info", Site, Any, ReadOnly, Never, 1, [];
    SiteTeamList = "site:team:list", Site, Any, ReadOnly, Never, 1, [];
    EnvInfo = "env:info", Env, Any, ReadOnly, Never, 1, [];
    EnvCodeLog = "env:code-log", Env, Any, ReadOnly, Never, 1, [];
    DomainList = "domain:list", Env, Any, ReadOnly, Never, 1, [];
    BackupList = "backup:list", Env, Any, ReadOnly, Never, 1, [];
    BackupAutomaticEnable = "backup:automatic:enable", Env, Any, Workflow, Never, 30,
        [opt("day", Weekday, None), opt("keep-for", Days, Some("32"))];
    BackupAutomaticDisable = "backup:automatic:disable", Env, Any, Direct, Never, 2, [];
    RemoteDrush = "remote:drush", Env, Any, Direct, Never, 30, [req("command", Words), opt("timeout", Seconds, Some("600")), opt("output", Output, Some("digest")), opt("idempotent", Bool, Some("false"))];
    RemoteWp = "remote:wp", Env, Any, Direct, Never, 30, [req("command", Words), opt("timeout", Seconds, Some("600")), opt("output", Output, Some("digest")), opt("idempotent", Bool, Some("false"))];
    WorkflowWait = "workflow:wait", Env, Any, ReadOnly, Never, 60,
        [opt("type", Name, None), opt("description", OptType::Text, Some("Sync code on <env>")), opt("max", Seconds, Some("180"))];
    UpstreamUpdatesStatus = "upstream:updates:status", Env, Any, ReadOnly, Never, 2, [];
    SiteList = "site:list", Account, Any, ReadOnly, Never, 3,
        [opt("org", Name, None), opt("tag", Name, None), opt("upstream", Name, None), opt("framework", Name, None)];
    OrgList = "org:list", Account, Any, ReadOnly, Never, 1, [];
    OrgSiteList = "org:site:list", Account, Any, ReadOnly, Never, 2, [req("org", Name), opt("tag", Name, None)];
    HttpCheck = "http:check", Env, Any, ReadOnly, Never, 2,
        [opt("path", OptType::Text, Some("/")), opt("status", Statuses, Some("200")), opt("contains", OptType::Text, None),
         opt("max-latency", Latency, None), opt("within", Seconds, Some("120")), opt("domain", SiteHost, Some("platform"))];
}

/// terminus's message for an operation it refuses on a frozen site (`requireSiteIsNotFrozen`).
pub const FROZEN_MESSAGE: &str = "This site is frozen. Its test and live environments and many commands will be unavailable while it remains frozen.";

/// Said of a remote command on a frozen site, before `ssh`: the platform serves no app server
/// for it, so the session could only fail, and as a connection error that would read "may have
/// run". (terminus does not check.)
pub const FROZEN_REMOTE_MESSAGE: &str =
    "the site is frozen: its environments serve no SSH, so the command cannot run; nothing ran";

impl OperationKind {
    /// Whether terminus refuses the operation on a frozen site before any request
    /// (`requireSiteIsNotFrozen`): these of the catalogue.
    #[must_use]
    pub fn refused_when_frozen(self) -> bool {
        matches!(
            self,
            Self::BackupCreate
                | Self::EnvClearCache
                | Self::EnvCloneContent
                | Self::EnvCodeLog
                | Self::EnvCommit
                | Self::EnvDeploy
                | Self::EnvInfo
                | Self::EnvWake
                | Self::MultidevCreate
                // terminus's WipeCommand, RotateRandomSeedCommand and CodeRebuildCommand check too.
                | Self::EnvWipe
                | Self::EnvRotateRandomSeed
                | Self::EnvCodeRebuild
        )
    }

    /// Looks an operation up by its terminus name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    #[must_use]
    pub fn option(self, name: &str) -> Option<&'static OptSpec> {
        self.options().iter().find(|o| o.name == name)
    }

    /// Whether the operation starts a workflow (and so counts against `per_site`).
    #[must_use]
    pub fn starts_workflow(self) -> bool {
        matches!(self.effect(), Effect::Workflow | Effect::CodeMoving)
    }

    #[must_use]
    pub fn is_read_only(self) -> bool {
        self.effect() == Effect::ReadOnly
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backup element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupElement {
    Code,
    Database,
    Files,
    All,
}

impl BackupElement {
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "code" => Some(Self::Code),
            "database" | "db" => Some(Self::Database),
            "files" => Some(Self::Files),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// A connection mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionMode {
    Git,
    Sftp,
}

/// A typed option value, after validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgValue {
    Text(Text),
    Bool(bool),
    Element(BackupElement),
    Days(u32),
    EnvId(String),
    Mode(ConnectionMode),
    /// Whether a remote command's output is kept in the reports (`report`) or only its
    /// digest (`digest`).
    KeepOutput(bool),
    /// The name of the process environment variable holding the secret.
    Secret(String),
    /// A day of the week, 0 for Sunday (PHP's `date('w')`, as terminus numbers them).
    Weekday(u8),
    /// A duration in seconds.
    Seconds(u64),
    /// A command's words.
    Words(Vec<String>),
    /// HTTP status codes a check accepts.
    Statuses(Vec<u16>),
    /// A duration in milliseconds.
    Millis(u64),
    /// A check asks the environment's primary domain (`true`) or its platform host.
    Primary(bool),
}

/// Commands that open an interactive shell on the app server: a plan runs unattended, so
/// `remote:drush` and `remote:wp` refuse them.
pub const SHELL_COMMANDS: &[&str] =
    &["ssh", "site:ssh", "sql:cli", "sql-cli", "sqlc", "php:cli", "php", "core:cli", "cli", "shell", "sql:connect"];

/// Checks a remote command's words: not empty, no control characters, and not one that
/// opens a shell.
///
/// # Errors
/// Why the words cannot be run.
pub fn check_words(words: &[String]) -> Result<(), String> {
    let Some(first) = words.first() else { return Err("the command is empty".to_owned()) };
    if words.iter().any(|w| w.chars().any(char::is_control)) {
        return Err("a word holds a control character (a newline?)".to_owned());
    }
    let opens_shell =
        SHELL_COMMANDS.contains(&first.as_str()) || (first == "db" && words.get(1).is_some_and(|w| w == "cli"));
    if opens_shell {
        return Err(format!("`{first}` opens an interactive shell, which an unattended run cannot answer"));
    }
    Ok(())
}

/// The days of the week by their number (0 is Sunday), as plans write them.
pub const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/// A scalar value from the plan (a literal, or one value of a matrix axis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Str(s) => f.write_str(s),
        }
    }
}

/// Converts a literal scalar to an option's type.
///
/// # Errors
/// A message saying what the option expects.
pub fn convert_scalar(ty: OptType, value: &Scalar) -> Result<ArgValue, String> {
    let expected = || format!("expected {}, found `{value}`", ty.describe());
    match (ty, value) {
        (OptType::Bool, Scalar::Bool(b)) => Ok(ArgValue::Bool(*b)),
        (OptType::Bool, Scalar::Int(i @ (0 | 1))) => Ok(ArgValue::Bool(*i == 1)),
        (OptType::Element { all }, Scalar::Str(s)) => match BackupElement::parse(s) {
            Some(BackupElement::All) if !all => {
                Err("`all` is not accepted here: choose code, database or files".to_owned())
            }
            Some(e) => Ok(ArgValue::Element(e)),
            None => Err(expected()),
        },
        (OptType::Days, Scalar::Int(i)) => days(*i).ok_or_else(expected),
        (OptType::Days, Scalar::Str(s)) => {
            s.strip_suffix('d').and_then(|n| n.parse::<i64>().ok()).and_then(days).ok_or_else(expected)
        }
        (OptType::EnvId, Scalar::Str(s)) => match check_env_id(s) {
            Ok(()) => Ok(ArgValue::EnvId(s.clone())),
            Err(why) => Err(why),
        },
        (OptType::Mode, Scalar::Str(s)) => match s.as_str() {
            "git" => Ok(ArgValue::Mode(ConnectionMode::Git)),
            "sftp" => Ok(ArgValue::Mode(ConnectionMode::Sftp)),
            _ => Err(expected()),
        },
        (OptType::Output, Scalar::Str(s)) => match s.as_str() {
            "digest" => Ok(ArgValue::KeepOutput(false)),
            "report" => Ok(ArgValue::KeepOutput(true)),
            _ => Err(expected()),
        },
        (OptType::Seconds, Scalar::Int(i)) => seconds(*i).ok_or_else(expected),
        (OptType::Seconds, Scalar::Str(s)) => humantime::parse_duration(s)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .and_then(seconds)
            .ok_or_else(expected),
        (OptType::Weekday, Scalar::Str(s)) => WEEKDAYS
            .iter()
            .position(|day| s == day || s.len() == 3 && day.starts_with(s.as_str()))
            .map(|n| ArgValue::Weekday(u8::try_from(n).unwrap_or(0)))
            .ok_or_else(expected),
        (OptType::Period, Scalar::Str(s)) if ["day", "week", "month"].contains(&s.as_str()) => {
            Ok(ArgValue::Text(Text::literal(s.clone())))
        }
        (OptType::Datapoints, Scalar::Str(s)) if s == "auto" => Ok(ArgValue::Text(Text::literal(s.clone()))),
        (OptType::Datapoints, Scalar::Int(i)) if (1..=28).contains(i) => {
            Ok(ArgValue::Text(Text::literal(i.to_string())))
        }
        (OptType::Domain, Scalar::Str(s)) => check_domain(s).map(|()| ArgValue::Text(Text::literal(s.clone()))),
        (OptType::Statuses, Scalar::Int(i)) => {
            http_status(*i).map(|s| ArgValue::Statuses(vec![s])).ok_or_else(expected)
        }
        (OptType::Latency, Scalar::Int(i)) => millis(*i).ok_or_else(expected),
        (OptType::Latency, Scalar::Str(s)) => humantime::parse_duration(s)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .and_then(millis)
            .ok_or_else(expected),
        (OptType::SiteHost, Scalar::Str(s)) if s == "platform" || s == "primary" => {
            Ok(ArgValue::Primary(s == "primary"))
        }
        (OptType::Text | OptType::Name | OptType::Dir, v) => Ok(ArgValue::Text(Text::literal(v.to_string()))),
        (OptType::Secret, _) => Err("a secret must come from the environment: write `${{ env.NAME }}`".to_owned()),
        _ => Err(expected()),
    }
}

/// One second to a day: long enough for any workflow, short enough to catch a typo.
fn seconds(i: i64) -> Option<ArgValue> {
    (1..=86_400).contains(&i).then(|| ArgValue::Seconds(u64::try_from(i).unwrap_or(180)))
}

/// An HTTP status code, 100 to 599.
#[must_use]
pub fn http_status(i: i64) -> Option<u16> {
    u16::try_from(i).ok().filter(|s| (100..=599).contains(s))
}

/// One millisecond to ten minutes: a latency bound longer than that is a typo.
fn millis(i: i64) -> Option<ArgValue> {
    (1..=600_000).contains(&i).then(|| ArgValue::Millis(u64::try_from(i).unwrap_or(1000)))
}

fn days(i: i64) -> Option<ArgValue> {
    // Pantheon keeps backups for at most a year or so; ten years is a safe sanity cap.
    (1..=3650).contains(&i).then(|| ArgValue::Days(u32::try_from(i).unwrap_or(365)))
}

/// Reserved words that cannot name a multidev.
pub const RESERVED_MULTIDEV: &[&str] =
    &["master", "settings", "team", "support", "multidev", "debug", "files", "tags", "billing"];

/// Checks an environment id: dev, test, live, or a valid multidev name.
///
/// # Errors
/// Why the name is not a valid environment id.
pub fn check_env_id(id: &str) -> Result<(), String> {
    if matches!(id, "dev" | "test" | "live") {
        return Ok(());
    }
    check_multidev_chars(id, false)
}

/// Checks an environment glob: the characters of a multidev name plus `*` and `?`.
///
/// # Errors
/// Why the pattern cannot match a valid environment id.
pub fn check_env_glob(pattern: &str) -> Result<(), String> {
    check_multidev_chars(pattern, true)
}

fn check_multidev_chars(id: &str, glob: bool) -> Result<(), String> {
    if id.is_empty() {
        return Err("an environment id cannot be empty".to_owned());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || (glob && matches!(c, '*' | '?'))))
    {
        return Err(format!("`{id}` has `{c}`: multidev names use lowercase letters, digits and `-`"));
    }
    if !glob {
        if id.starts_with('-') {
            return Err(format!("`{id}` starts with `-`: multidev names start with a letter or digit"));
        }
        if id.chars().count() > 11 {
            return Err(format!("`{id}` is {} characters long: multidev names have at most 11", id.chars().count()));
        }
        if RESERVED_MULTIDEV.contains(&id) {
            return Err(format!("`{id}` is reserved by Pantheon and cannot name a multidev"));
        }
    }
    Ok(())
}

/// Checks a hostname: dot-separated labels of letters, digits and `-`, at most 253 bytes.
///
/// # Errors
/// Why the text is not a domain name.
pub fn check_domain(domain: &str) -> Result<(), String> {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if domain.len() > 253 || !domain.contains('.') || !domain.split('.').all(ok_label) {
        return Err(format!("`{domain}` is not a domain name"));
    }
    Ok(())
}

/// A task's operation with every option typed and expanded (site, environment and matrix
/// values substituted; run id and process environment references kept symbolic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum OperationSpec {
    EnvDeploy {
        note: Text,
        updatedb: bool,
        cc: bool,
        sync_content: bool,
    },
    EnvClearCache,
    EnvWake,
    EnvCloneContent {
        from_env: String,
        db_only: bool,
        files_only: bool,
        updatedb: bool,
        cc: bool,
    },
    EnvCommit {
        message: Text,
    },
    BackupCreate {
        element: BackupElement,
        keep_for_days: u32,
    },
    BackupGet {
        element: BackupElement,
        file: Option<Text>,
        to: Text,
    },
    BackupRestore {
        element: BackupElement,
        file: Option<Text>,
    },
    MultidevCreate {
        from_env: String,
        no_db: bool,
        no_files: bool,
    },
    MultidevDelete {
        delete_branch: bool,
    },
    MultidevMergeToDev {
        updatedb: bool,
    },
    MultidevMergeFromDev {
        updatedb: bool,
    },
    DomainAdd {
        domain: Text,
    },
    DomainRemove {
        domain: Text,
    },
    ConnectionSet {
        mode: ConnectionMode,
        /// Switching to git throws away uncommitted SFTP changes: only when the plan says so.
        #[serde(default)]
        discard_changes: bool,
    },
    UpstreamUpdatesApply {
        updatedb: bool,
        accept_upstream: bool,
    },
    /// `password_env` names the process environment variable; the value is read at execution.
    LockEnable {
        username: Text,
        password_env: String,
    },
    LockDisable,
    RedisEnable,
    SolrEnable,
    RedisDisable,
    SolrDisable,
    /// `add_site_user_membership` `{user_email, role}`; a member already so is nothing to do.
    SiteTeamAdd {
        member: Text,
        role: Text,
    },
    /// `remove_site_user_membership` `{user_id}`; one not on the team is nothing to do.
    SiteTeamRemove {
        member: Text,
    },
    /// `update_site_user_membership` `{user_id, role}`.
    SiteTeamRole {
        member: Text,
        role: Text,
    },
    /// `add_site_organization_membership` `{organization_name, role: team_member}`; an
    /// organization already supporting the site is nothing to do.
    SiteOrgAdd {
        organization: Text,
    },
    /// `remove_site_organization_membership` `{organization_id}`; one not on the site is
    /// nothing to do.
    SiteOrgRemove {
        organization: Text,
    },
    /// `change_site_service_level` `{sku}`, the plan by SKU or id; the site's plan already is
    /// nothing to do.
    PlanSet {
        plan: Text,
    },
    /// `sync_code_with_build` `{converge: true, build_steps: {artifact_install: true}}`.
    EnvCodeRebuild,
    /// Reads into the report's `data`.
    EnvDiffstat,
    ConnectionInfo,
    LockInfo,
    BackupAutomaticInfo,
    UpstreamUpdatesList,
    /// `…/traffic?duration=` with the period (`day`, `week`, `month`) and data points (a
    /// number, or `auto`: the period's most).
    EnvMetrics {
        period: Text,
        datapoints: Text,
    },
    /// `enable_new_relic_for_site`, `{"converge": true}`.
    NewRelicEnable,
    NewRelicDisable,
    SiteUpstreamClearCache,
    /// The upstream by id, machine name or label (as terminus looks it up).
    SiteUpstreamSet {
        upstream: Text,
    },
    EnvRotateRandomSeed,
    EnvWipe,
    HttpsRemove,
    DomainPrimaryAdd {
        domain: Text,
    },
    DomainPrimaryRemove,
    TagAdd {
        org: Text,
        tag: Text,
    },
    TagRemove {
        org: Text,
        tag: Text,
    },
    SiteInfo,
    SiteTeamList,
    EnvInfo,
    EnvCodeLog,
    DomainList,
    BackupList,
    /// Daily backups kept 8 days and a weekly one kept `keep_for_days` on `day` (a random
    /// day when none is given, as terminus picks).
    BackupAutomaticEnable {
        day: Option<u8>,
        keep_for_days: u32,
    },
    BackupAutomaticDisable,
    /// A drush command on the environment's app server, over SSH, as terminus runs it.
    RemoteDrush {
        command: Vec<String>,
        timeout_secs: u64,
        /// `output: report`: its output goes into the reports (redacted), unless the
        /// command prints credentials.
        keep_output: bool,
        /// `idempotent: true`: running it twice does no harm, so a command that may have run
        /// (its end not seen) is run again by a retry or a resume.
        idempotent: bool,
    },
    /// A WP-CLI command, likewise.
    RemoteWp {
        command: Vec<String>,
        timeout_secs: u64,
        keep_output: bool,
        idempotent: bool,
    },
    /// Waits for a workflow the platform started on the environment (by type, or by its exact
    /// description, double quotes aside), started at most a minute before the task, for at
    /// most `max_secs`.
    WorkflowWait {
        kind: Option<Text>,
        description: Option<Text>,
        max_secs: u64,
    },
    UpstreamUpdatesStatus,
    SiteList {
        org: Option<Text>,
        tag: Option<Text>,
        upstream: Option<Text>,
        framework: Option<Text>,
    },
    OrgList,
    OrgSiteList {
        org: Text,
        tag: Option<Text>,
    },
    /// GETs the environment's site (no API request, no session) until it answers as
    /// expected or `within_secs` pass.
    HttpCheck {
        path: Text,
        statuses: Vec<u16>,
        contains: Option<Text>,
        max_latency_ms: Option<u64>,
        within_secs: u64,
        /// The primary domain, not the platform host.
        primary: bool,
    },
}

impl std::fmt::Display for ArgValue {
    /// As a plan would write it; a secret shows the variable that holds it, never a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(text) => write!(f, "{text}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Element(e) => f.write_str(match e {
                BackupElement::Code => "code",
                BackupElement::Database => "database",
                BackupElement::Files => "files",
                BackupElement::All => "all",
            }),
            Self::Days(n) => write!(f, "{n}"),
            Self::EnvId(env) => f.write_str(env),
            Self::Mode(ConnectionMode::Git) => f.write_str("git"),
            Self::Mode(ConnectionMode::Sftp) => f.write_str("sftp"),
            Self::KeepOutput(keep) => f.write_str(if *keep { "report" } else { "digest" }),
            Self::Secret(var) => write!(f, "${{{{ env.{var} }}}}"),
            Self::Weekday(n) => f.write_str(WEEKDAYS.get(usize::from(*n)).copied().unwrap_or("sunday")),
            Self::Seconds(n) => write!(f, "{n}s"),
            Self::Words(words) => write!(f, "[{}]", words.join(", ")),
            Self::Statuses(codes) if codes.len() == 1 => write!(f, "{}", codes[0]),
            Self::Statuses(codes) => {
                let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
                write!(f, "[{}]", codes.join(", "))
            }
            Self::Millis(ms) if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            Self::Millis(ms) => write!(f, "{ms}ms"),
            Self::Primary(primary) => f.write_str(if *primary { "primary" } else { "platform" }),
        }
    }
}

/// Typed option values by option name, as validation and expansion produce them.
pub type Args = BTreeMap<&'static str, ArgValue>;

struct ArgReader<'a>(&'a Args);

impl ArgReader<'_> {
    fn flag(&self, name: &str) -> bool {
        matches!(self.0.get(name), Some(ArgValue::Bool(true)))
    }
    fn text(&self, name: &str) -> Option<Text> {
        match self.0.get(name) {
            Some(ArgValue::Text(t)) => Some(t.clone()),
            _ => None,
        }
    }
    fn text_or(&self, name: &str, default: &str) -> Text {
        self.text(name).unwrap_or_else(|| Text::literal(default))
    }
    fn element(&self, default: BackupElement) -> BackupElement {
        match self.0.get("element") {
            Some(ArgValue::Element(e)) => *e,
            _ => default,
        }
    }
    fn env_id(&self, name: &str, default: &str) -> String {
        match self.0.get(name) {
            Some(ArgValue::EnvId(e)) => e.clone(),
            _ => default.to_owned(),
        }
    }
}

impl OperationSpec {
    /// A remote command's tool (`drush` or `wp`), its words, and whether its job says it is
    /// idempotent; `None` for every other operation.
    #[must_use]
    pub fn remote(&self) -> Option<(&'static str, &[String], bool)> {
        match self {
            Self::RemoteDrush { command, idempotent, .. } => Some(("drush", command, *idempotent)),
            Self::RemoteWp { command, idempotent, .. } => Some(("wp", command, *idempotent)),
            _ => None,
        }
    }

    /// The texts an operation sends, each of which may reference `${{ env.NAME }}`.
    fn texts(&self) -> Vec<&Text> {
        match self {
            Self::EnvDeploy { note, .. } => vec![note],
            Self::EnvCommit { message } => vec![message],
            Self::BackupGet { file, to, .. } => file.iter().chain(std::iter::once(to)).collect(),
            Self::BackupRestore { file, .. } => file.iter().collect(),
            Self::DomainAdd { domain } | Self::DomainRemove { domain } | Self::DomainPrimaryAdd { domain } => {
                vec![domain]
            }
            Self::LockEnable { username, .. } => vec![username],
            Self::TagAdd { org, tag } | Self::TagRemove { org, tag } => vec![org, tag],
            Self::SiteTeamAdd { member, role } | Self::SiteTeamRole { member, role } => vec![member, role],
            Self::SiteTeamRemove { member } => vec![member],
            Self::SiteOrgAdd { organization } | Self::SiteOrgRemove { organization } => vec![organization],
            Self::PlanSet { plan } => vec![plan],
            Self::EnvMetrics { period, datapoints } => vec![period, datapoints],
            Self::SiteList { org, tag, upstream, framework } => {
                [org, tag, upstream, framework].into_iter().flatten().collect()
            }
            Self::OrgSiteList { org, tag } => std::iter::once(org).chain(tag).collect(),
            Self::SiteUpstreamSet { upstream } => vec![upstream],
            Self::WorkflowWait { kind, description, .. } => kind.iter().chain(description).collect(),
            Self::HttpCheck { path, contains, .. } => std::iter::once(path).chain(contains).collect(),
            Self::EnvClearCache
            | Self::EnvWake
            | Self::EnvCloneContent { .. }
            | Self::BackupCreate { .. }
            | Self::MultidevCreate { .. }
            | Self::MultidevDelete { .. }
            | Self::MultidevMergeToDev { .. }
            | Self::MultidevMergeFromDev { .. }
            | Self::ConnectionSet { .. }
            | Self::UpstreamUpdatesApply { .. }
            | Self::LockDisable
            | Self::RedisEnable
            | Self::SolrEnable
            | Self::RedisDisable
            | Self::SolrDisable
            | Self::NewRelicEnable
            | Self::NewRelicDisable
            | Self::EnvCodeRebuild
            | Self::EnvDiffstat
            | Self::ConnectionInfo
            | Self::LockInfo
            | Self::BackupAutomaticInfo
            | Self::UpstreamUpdatesList
            | Self::SiteUpstreamClearCache
            | Self::EnvRotateRandomSeed
            | Self::EnvWipe
            | Self::HttpsRemove
            | Self::DomainPrimaryRemove
            | Self::SiteInfo
            | Self::SiteTeamList
            | Self::EnvInfo
            | Self::EnvCodeLog
            | Self::DomainList
            | Self::BackupList
            | Self::BackupAutomaticEnable { .. }
            | Self::BackupAutomaticDisable
            | Self::RemoteDrush { .. }
            | Self::RemoteWp { .. }
            | Self::UpstreamUpdatesStatus
            | Self::OrgList => Vec::new(),
        }
    }

    /// The process environment variables the operation reads when it runs: every
    /// `${{ env.NAME }}` in its texts and a lock password's variable.
    #[must_use]
    pub fn env_vars(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.texts().into_iter().flat_map(Text::env_vars).collect();
        if let Self::LockEnable { password_env, .. } = self {
            names.push(password_env);
        }
        names
    }

    /// Builds the typed operation from validated arguments; missing options take their
    /// documented defaults.
    #[must_use]
    #[expect(clippy::too_many_lines, reason = "the catalogue: one arm per operation, read in one place")]
    pub fn build(kind: OperationKind, args: &Args) -> Self {
        use OperationKind as K;
        let a = ArgReader(args);
        match kind {
            K::EnvDeploy => Self::EnvDeploy {
                note: a.text_or("note", "Deploy from Terminus"),
                updatedb: a.flag("updatedb"),
                cc: a.flag("cc"),
                sync_content: a.flag("sync-content"),
            },
            K::EnvClearCache => Self::EnvClearCache,
            K::EnvWake => Self::EnvWake,
            K::EnvCloneContent => Self::EnvCloneContent {
                from_env: a.env_id("from-env", "live"),
                db_only: a.flag("db-only"),
                files_only: a.flag("files-only"),
                updatedb: a.flag("updatedb"),
                cc: a.flag("cc"),
            },
            K::EnvCommit => Self::EnvCommit { message: a.text_or("message", "Terminus commit.") },
            K::BackupCreate => Self::BackupCreate {
                element: a.element(BackupElement::All),
                keep_for_days: match args.get("keep-for") {
                    Some(ArgValue::Days(d)) => *d,
                    _ => 365,
                },
            },
            K::BackupGet => Self::BackupGet {
                element: a.element(BackupElement::Files),
                file: a.text("file"),
                to: a.text_or("to", "."),
            },
            K::BackupRestore => Self::BackupRestore { element: a.element(BackupElement::All), file: a.text("file") },
            K::MultidevCreate => Self::MultidevCreate {
                from_env: a.env_id("from-env", "dev"),
                no_db: a.flag("no-db"),
                no_files: a.flag("no-files"),
            },
            K::MultidevDelete => Self::MultidevDelete { delete_branch: a.flag("delete-branch") },
            K::MultidevMergeToDev => Self::MultidevMergeToDev { updatedb: a.flag("updatedb") },
            K::MultidevMergeFromDev => Self::MultidevMergeFromDev { updatedb: a.flag("updatedb") },
            K::DomainAdd => Self::DomainAdd { domain: a.text_or("domain", "") },
            K::DomainRemove => Self::DomainRemove { domain: a.text_or("domain", "") },
            K::ConnectionSet => Self::ConnectionSet {
                mode: match args.get("mode") {
                    Some(ArgValue::Mode(m)) => *m,
                    _ => ConnectionMode::Git,
                },
                discard_changes: a.flag("discard-changes"),
            },
            K::UpstreamUpdatesApply => {
                Self::UpstreamUpdatesApply { updatedb: a.flag("updatedb"), accept_upstream: a.flag("accept-upstream") }
            }
            K::LockEnable => Self::LockEnable {
                username: a.text_or("username", ""),
                password_env: match args.get("password") {
                    Some(ArgValue::Secret(name)) => name.clone(),
                    _ => String::new(),
                },
            },
            K::LockDisable => Self::LockDisable,
            K::RedisEnable => Self::RedisEnable,
            K::SolrEnable => Self::SolrEnable,
            K::TagAdd => Self::TagAdd { org: a.text_or("org", ""), tag: a.text_or("tag", "") },
            K::TagRemove => Self::TagRemove { org: a.text_or("org", ""), tag: a.text_or("tag", "") },
            K::SiteInfo => Self::SiteInfo,
            K::SiteTeamList => Self::SiteTeamList,
            K::EnvInfo => Self::EnvInfo,
            K::EnvCodeLog => Self::EnvCodeLog,
            K::DomainList => Self::DomainList,
            K::BackupList => Self::BackupList,
            K::BackupAutomaticEnable => Self::BackupAutomaticEnable {
                day: match args.get("day") {
                    Some(ArgValue::Weekday(d)) => Some(*d),
                    _ => None,
                },
                keep_for_days: match args.get("keep-for") {
                    Some(ArgValue::Days(d)) => *d,
                    _ => 32,
                },
            },
            K::BackupAutomaticDisable => Self::BackupAutomaticDisable,
            K::RemoteDrush | K::RemoteWp => {
                let command = match args.get("command") {
                    Some(ArgValue::Words(words)) => words.clone(),
                    _ => Vec::new(),
                };
                let timeout_secs = match args.get("timeout") {
                    Some(ArgValue::Seconds(n)) => *n,
                    _ => 600,
                };
                let keep_output = matches!(args.get("output"), Some(ArgValue::KeepOutput(true)));
                let idempotent = matches!(args.get("idempotent"), Some(ArgValue::Bool(true)));
                if kind == K::RemoteDrush {
                    Self::RemoteDrush { command, timeout_secs, keep_output, idempotent }
                } else {
                    Self::RemoteWp { command, timeout_secs, keep_output, idempotent }
                }
            }
            K::WorkflowWait => Self::WorkflowWait {
                kind: a.text("type"),
                description: a.text("description"),
                max_secs: match args.get("max") {
                    Some(ArgValue::Seconds(n)) => *n,
                    _ => 180,
                },
            },
            K::UpstreamUpdatesStatus => Self::UpstreamUpdatesStatus,
            K::SiteList => Self::SiteList {
                org: a.text("org"),
                tag: a.text("tag"),
                upstream: a.text("upstream"),
                framework: a.text("framework"),
            },
            K::OrgList => Self::OrgList,
            K::OrgSiteList => Self::OrgSiteList { org: a.text_or("org", ""), tag: a.text("tag") },
            K::RedisDisable => Self::RedisDisable,
            K::SolrDisable => Self::SolrDisable,
            K::NewRelicEnable => Self::NewRelicEnable,
            K::SiteTeamAdd => {
                Self::SiteTeamAdd { member: a.text_or("member", ""), role: a.text_or("role", "team_member") }
            }
            K::SiteTeamRemove => Self::SiteTeamRemove { member: a.text_or("member", "") },
            K::SiteOrgAdd => Self::SiteOrgAdd { organization: a.text_or("organization", "") },
            K::SiteOrgRemove => Self::SiteOrgRemove { organization: a.text_or("organization", "") },
            K::PlanSet => Self::PlanSet { plan: a.text_or("plan", "") },
            K::EnvCodeRebuild => Self::EnvCodeRebuild,
            K::EnvDiffstat => Self::EnvDiffstat,
            K::ConnectionInfo => Self::ConnectionInfo,
            K::LockInfo => Self::LockInfo,
            K::BackupAutomaticInfo => Self::BackupAutomaticInfo,
            K::UpstreamUpdatesList => Self::UpstreamUpdatesList,
            K::EnvMetrics => {
                Self::EnvMetrics { period: a.text_or("period", "day"), datapoints: a.text_or("datapoints", "auto") }
            }
            K::SiteTeamRole => Self::SiteTeamRole { member: a.text_or("member", ""), role: a.text_or("role", "") },
            K::NewRelicDisable => Self::NewRelicDisable,
            K::SiteUpstreamClearCache => Self::SiteUpstreamClearCache,
            K::SiteUpstreamSet => Self::SiteUpstreamSet { upstream: a.text_or("upstream", "") },
            K::EnvRotateRandomSeed => Self::EnvRotateRandomSeed,
            K::EnvWipe => Self::EnvWipe,
            K::HttpsRemove => Self::HttpsRemove,
            K::DomainPrimaryAdd => Self::DomainPrimaryAdd { domain: a.text_or("domain", "") },
            K::DomainPrimaryRemove => Self::DomainPrimaryRemove,
            K::HttpCheck => Self::HttpCheck {
                path: a.text_or("path", "/"),
                statuses: match args.get("status") {
                    Some(ArgValue::Statuses(codes)) => codes.clone(),
                    _ => vec![200],
                },
                contains: a.text("contains"),
                max_latency_ms: match args.get("max-latency") {
                    Some(ArgValue::Millis(ms)) => Some(*ms),
                    _ => None,
                },
                within_secs: match args.get("within") {
                    Some(ArgValue::Seconds(n)) => *n,
                    _ => 120,
                },
                primary: matches!(args.get("domain"), Some(ArgValue::Primary(true))),
            },
        }
    }

    /// The catalogue entry of this operation.
    #[must_use]
    pub fn kind(&self) -> OperationKind {
        use OperationKind as K;
        match self {
            Self::EnvDeploy { .. } => K::EnvDeploy,
            Self::EnvClearCache => K::EnvClearCache,
            Self::EnvWake => K::EnvWake,
            Self::EnvCloneContent { .. } => K::EnvCloneContent,
            Self::EnvCommit { .. } => K::EnvCommit,
            Self::BackupCreate { .. } => K::BackupCreate,
            Self::BackupGet { .. } => K::BackupGet,
            Self::BackupRestore { .. } => K::BackupRestore,
            Self::MultidevCreate { .. } => K::MultidevCreate,
            Self::MultidevDelete { .. } => K::MultidevDelete,
            Self::MultidevMergeToDev { .. } => K::MultidevMergeToDev,
            Self::MultidevMergeFromDev { .. } => K::MultidevMergeFromDev,
            Self::DomainAdd { .. } => K::DomainAdd,
            Self::DomainRemove { .. } => K::DomainRemove,
            Self::ConnectionSet { .. } => K::ConnectionSet,
            Self::UpstreamUpdatesApply { .. } => K::UpstreamUpdatesApply,
            Self::LockEnable { .. } => K::LockEnable,
            Self::LockDisable => K::LockDisable,
            Self::RedisEnable => K::RedisEnable,
            Self::SolrEnable => K::SolrEnable,
            Self::TagAdd { .. } => K::TagAdd,
            Self::TagRemove { .. } => K::TagRemove,
            Self::SiteInfo => K::SiteInfo,
            Self::SiteTeamList => K::SiteTeamList,
            Self::EnvInfo => K::EnvInfo,
            Self::EnvCodeLog => K::EnvCodeLog,
            Self::DomainList => K::DomainList,
            Self::BackupList => K::BackupList,
            Self::BackupAutomaticEnable { .. } => K::BackupAutomaticEnable,
            Self::BackupAutomaticDisable => K::BackupAutomaticDisable,
            Self::WorkflowWait { .. } => K::WorkflowWait,
            Self::RemoteDrush { .. } => K::RemoteDrush,
            Self::RemoteWp { .. } => K::RemoteWp,
            Self::UpstreamUpdatesStatus => K::UpstreamUpdatesStatus,
            Self::SiteList { .. } => K::SiteList,
            Self::OrgList => K::OrgList,
            Self::OrgSiteList { .. } => K::OrgSiteList,
            Self::RedisDisable => K::RedisDisable,
            Self::SolrDisable => K::SolrDisable,
            Self::NewRelicEnable => K::NewRelicEnable,
            Self::SiteTeamAdd { .. } => K::SiteTeamAdd,
            Self::SiteTeamRemove { .. } => K::SiteTeamRemove,
            Self::SiteTeamRole { .. } => K::SiteTeamRole,
            Self::SiteOrgAdd { .. } => K::SiteOrgAdd,
            Self::SiteOrgRemove { .. } => K::SiteOrgRemove,
            Self::PlanSet { .. } => K::PlanSet,
            Self::EnvCodeRebuild => K::EnvCodeRebuild,
            Self::EnvDiffstat => K::EnvDiffstat,
            Self::ConnectionInfo => K::ConnectionInfo,
            Self::LockInfo => K::LockInfo,
            Self::BackupAutomaticInfo => K::BackupAutomaticInfo,
            Self::UpstreamUpdatesList => K::UpstreamUpdatesList,
            Self::EnvMetrics { .. } => K::EnvMetrics,
            Self::NewRelicDisable => K::NewRelicDisable,
            Self::SiteUpstreamClearCache => K::SiteUpstreamClearCache,
            Self::SiteUpstreamSet { .. } => K::SiteUpstreamSet,
            Self::EnvRotateRandomSeed => K::EnvRotateRandomSeed,
            Self::EnvWipe => K::EnvWipe,
            Self::HttpsRemove => K::HttpsRemove,
            Self::DomainPrimaryAdd { .. } => K::DomainPrimaryAdd,
            Self::DomainPrimaryRemove => K::DomainPrimaryRemove,
            Self::HttpCheck { .. } => K::HttpCheck,
        }
    }

    /// Whether this instance destroys data (some operations only with an option set).
    #[must_use]
    pub fn is_destructive(&self) -> bool {
        match self.kind().destructive() {
            Destructive::Never => false,
            Destructive::Always => true,
            Destructive::WhenOption(_) => matches!(
                self,
                Self::EnvDeploy { sync_content: true, .. } | Self::ConnectionSet { discard_changes: true, .. }
            ),
        }
    }
}

/// Why a command's output is never kept in a file, whatever its job says: it prints a
/// credential (README, `remote:drush`). `words` are the command's, after the tool.
#[must_use]
pub fn prints_credentials(tool: &str, words: &[String]) -> Option<&'static str> {
    let words: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    // A secret named anywhere, as a word or an option's value (`--constant=DB_PASSWORD`):
    // whatever reads it prints it.
    let names_a_secret = words.iter().skip(1).any(|w| {
        let value = w.split_once('=').map_or(w.as_str(), |(_, v)| v);
        [w.as_str(), value].iter().any(|v| {
            let v = v.trim_start_matches('-');
            // Options that only say "hide it" name no secret to print.
            !matches!(v, "show-passwords" | "no-password" | "skip-password")
                && tb_core::secret::looks_like_secret_name(v)
        })
    });
    // The command is the first word that is not an option (`drush -y uli`).
    let mut plain = words.iter().filter(|w| !w.starts_with('-')).map(String::as_str);
    let has = |flag: &str| words.iter().any(|w| w == flag || w.starts_with(&format!("{flag}=")));
    let secret_key = |key: Option<&str>| key.is_some_and(tb_core::secret::looks_like_secret_name);
    let found = match (tool, plain.next()) {
        ("drush", Some("uli" | "user:login" | "user-login")) => Some("a one-time login link"),
        ("drush", Some("sql-connect" | "sql:connect" | "sqlc" | "sql-conf" | "sql:conf")) => {
            Some("the database credentials")
        }
        ("drush", Some("php:eval" | "php-eval" | "eval" | "ev" | "php:script" | "php-script" | "scr")) => {
            Some("whatever the PHP code prints, settings and keys included")
        }
        ("drush", Some("status" | "st" | "core:status" | "core-status")) if has("--show-passwords") => {
            Some("the database password")
        }
        ("drush", Some("config:get" | "config-get" | "cget")) if plain.any(|w| secret_key(Some(w))) => {
            Some("a secret setting")
        }
        ("wp", Some("user")) => match plain.next() {
            Some("reset-password" | "create") => Some("new passwords"),
            Some("application-password") => Some("application passwords"),
            _ => None,
        },
        ("wp", Some("config")) => match plain.next() {
            Some("list") => Some("every constant, the database password included"),
            Some("get") if secret_key(plain.next()) => Some("a secret setting"),
            _ => None,
        },
        ("wp", Some("eval" | "eval-file")) => Some("whatever the PHP code prints, settings and keys included"),
        // A query of the users' table reads password hashes.
        ("drush", Some("sql-query" | "sql:query" | "sqlq"))
            if words.iter().any(|w| w.contains("users") || w.contains("pass")) =>
        {
            Some("password hashes")
        }
        _ => None,
    };
    found.or_else(|| names_a_secret.then_some("a secret it names"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_are_unique_and_options_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in OperationKind::ALL {
            assert!(seen.insert(kind.name()), "duplicate {kind}");
            assert_eq!(OperationKind::from_name(kind.name()), Some(*kind));
            for o in kind.options() {
                assert!(o.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{}", o.name);
            }
            // Every kind builds with no options (defaults) and maps back to itself.
            assert_eq!(OperationSpec::build(*kind, &Args::new()).kind(), *kind);
        }
        assert_eq!(OperationKind::ALL.len(), 62);
    }

    #[test]
    fn env_ids() {
        assert!(check_env_id("live").is_ok());
        assert!(check_env_id("ci-123").is_ok());
        assert!(check_env_id("feature-long-name").is_err());
        assert!(check_env_id("Feature").is_err());
        assert!(check_env_id("master").is_err());
        assert!(check_env_id("-x").is_err());
        assert!(check_env_glob("ci-*").is_ok());
        assert!(check_env_glob("CI-*").is_err());
    }

    #[test]
    fn scalars_convert_to_option_types() {
        assert_eq!(convert_scalar(OptType::Days, &Scalar::Str("30d".into())), Ok(ArgValue::Days(30)));
        assert_eq!(convert_scalar(OptType::Days, &Scalar::Int(90)), Ok(ArgValue::Days(90)));
        assert!(convert_scalar(OptType::Days, &Scalar::Int(-1)).is_err());
        assert!(convert_scalar(OptType::Element { all: false }, &Scalar::Str("all".into())).is_err());
        assert_eq!(
            convert_scalar(OptType::Element { all: true }, &Scalar::Str("db".into())),
            Ok(ArgValue::Element(BackupElement::Database))
        );
        assert!(convert_scalar(OptType::Bool, &Scalar::Str("yes".into())).is_err());
        assert!(convert_scalar(OptType::Domain, &Scalar::Str("not a domain".into())).is_err());
        assert!(convert_scalar(OptType::Secret, &Scalar::Str("hunter2".into())).is_err());
    }

    #[test]
    fn destructive_marks() {
        let deploy = |sync| OperationSpec::EnvDeploy {
            note: Text::literal("n"),
            updatedb: false,
            cc: false,
            sync_content: sync,
        };
        assert!(!deploy(false).is_destructive());
        assert!(deploy(true).is_destructive());
        assert!(OperationSpec::LockDisable.is_destructive());
    }
}

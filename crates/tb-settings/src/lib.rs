//! Settings: every knob of a run, resolved once into one typed [`Settings`] value.
//!
//! Layers merge left-wins (DESIGN.md §9): flags > `TERMINUS_BATCH_*` variables > the Go-port
//! names (`TERMINUS_MAX_CONCURRENT_*`, `TERMINUS_PARALLEL_PAGINATION`) and terminus's own
//! (`TERMINUS_HOST`, …) > plan `settings` > `~/.terminus/config.yml` > defaults. Each layer
//! is a [`Layer`] of `Option`s; [`Settings::resolve`] takes the first value set and records
//! which layer it came from, so `-v` can say why a value is what it is.
//!
//! The only reader of environment variables (through the [`EnvVars`] snapshot, whose names are
//! declared in [`env`](mod@env)) and of the config file; [`resolve`] assembles the layers, resolves
//! them once and gives a shard its share of the request rate. Imports only the plan model and
//! [`tb_core::secret`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use tb_core::env;
use tb_core::secret::Secret;
use tb_plan::plan::model::{Limit, OnFailure, PlanSettings};
use tb_plan::plan::parse::{Budgets, parse_yaml};
use tb_plan::plan::source::PlanSource;

/// The process environment, read once at startup.
#[derive(Clone, Debug, Default)]
pub struct EnvVars(BTreeMap<String, String>);

impl EnvVars {
    /// Snapshots the process environment (non-UTF-8 values are ignored).
    #[must_use]
    pub fn capture() -> Self {
        Self(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect())
    }

    #[must_use]
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// The variables an object-store state reads (each cloud's own names; see
    /// [`env::STATE_STORE_PREFIXES`]), with `AWS_DEFAULT_REGION` standing in for a missing
    /// `AWS_REGION` as the AWS tools do.
    #[must_use]
    pub fn state_store_vars(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(k, v)| !v.is_empty() && env::STATE_STORE_PREFIXES.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if self.get(env::AWS_REGION).is_none()
            && let Some(region) = self.get(env::AWS_DEFAULT_REGION)
        {
            vars.push((env::AWS_REGION.to_owned(), region.to_owned()));
        }
        vars
    }

    /// A variable's value; empty counts as unset, as shells make it easy to set one empty.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// A setting that could not be read, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct SettingsError {
    /// The variable, flag or file at fault.
    pub source_name: String,
    pub message: String,
}

impl SettingsError {
    fn new(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source_name: source_name.into(), message: message.into() }
    }
}

/// One layer of settings; `None` means "not set here".
#[derive(Clone, Debug, Default)]
pub struct Layer {
    pub concurrency: Option<usize>,
    pub per_site: Option<usize>,
    pub max_requests: Option<usize>,
    pub requests_per_second: Option<f64>,
    pub burst: Option<u32>,
    pub on_failure: Option<OnFailure>,
    pub max_failures: Option<Limit>,
    pub timeout: Option<Duration>,
    pub parallel_pagination: Option<bool>,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub request_attempts: Option<u32>,
    pub request_budget: Option<Duration>,
    pub retry_backoff: Option<Duration>,
    pub poll_interval: Option<Duration>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub protocol: Option<Protocol>,
    pub verify_tls: Option<bool>,
    pub cache_dir: Option<PathBuf>,
    pub tokens_dir: Option<PathBuf>,
    pub user: Option<String>,
    pub machine_token: Option<Secret>,
    /// For a layer read from the environment: which variable set each setting it sets.
    pub variables: Vec<(&'static str, &'static str)>,
}

/// How the API is spoken to (`TERMINUS_PROTOCOL`, the config file's `protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Https,
    /// Plain HTTP, which the client allows to this machine only (a simulator, a test).
    Http,
}

impl Protocol {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "https" => Ok(Self::Https),
            "http" => Ok(Self::Http),
            _ => Err("is not a protocol the API is spoken in (https, or http to 127.0.0.1)".to_owned()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Https => "https",
            Self::Http => "http",
        })
    }
}

/// Where a value came from, for `-vv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    /// The environment; once resolved, the variable that set the value.
    Env(Option<&'static str>),
    Plan,
    ConfigFile,
    Default,
}

impl Origin {
    /// The environment, before it is known which variable set a value.
    pub const ENV: Self = Self::Env(None);

    /// This origin for `field` of `layer`: an environment layer names the variable.
    fn of(self, layer: &Layer, field: &str) -> Self {
        match self {
            Self::Env(None) => Self::Env(layer.variables.iter().find(|(f, _)| *f == field).map(|(_, v)| *v)),
            other => other,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("flag"),
            Self::Env(Some(variable)) => write!(f, "environment ({variable})"),
            Self::Env(None) => f.write_str("environment"),
            Self::Plan => f.write_str("plan settings"),
            Self::ConfigFile => f.write_str("~/.terminus/config.yml"),
            Self::Default => f.write_str("default"),
        }
    }
}

/// Every setting of a run, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub concurrency: usize,
    pub per_site: usize,
    pub max_requests: usize,
    pub requests_per_second: f64,
    pub burst: u32,
    pub on_failure: OnFailure,
    pub max_failures: Option<Limit>,
    pub timeout: Option<Duration>,
    pub parallel_pagination: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub request_attempts: u32,
    pub request_budget: Duration,
    pub retry_backoff: Duration,
    /// Fixed workflow polling (terminus's way); `None` polls near the expected finish.
    pub poll_interval: Option<Duration>,
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub verify_tls: bool,
    pub cache_dir: PathBuf,
    pub tokens_dir: PathBuf,
    pub user: Option<String>,
    pub machine_token: Option<Secret>,
    /// (setting, shown value, origin) for every setting, in declaration order.
    pub origins: Vec<(&'static str, String, Origin)>,
}

/// Picks the first layer that sets a field, records its origin, and falls back to a default.
macro_rules! pick {
    ($layers:expr, $origins:expr, $field:ident, $default:expr) => {{
        let found = $layers.iter().find_map(|(origin, layer): &(Origin, Layer)| {
            layer.$field.clone().map(|v| (v, origin.of(layer, stringify!($field))))
        });
        let (value, origin) = found.unwrap_or_else(|| ($default, Origin::Default));
        $origins.push((stringify!($field), format!("{value:?}"), origin));
        value
    }};
}

/// [`pick!`] for a setting with no default: `none` when no layer sets it.
macro_rules! pick_optional {
    ($layers:expr, $origins:expr, $field:ident) => {{
        let found = $layers.iter().find_map(|(origin, layer): &(Origin, Layer)| {
            layer.$field.clone().map(|v| (v, origin.of(layer, stringify!($field))))
        });
        match found {
            Some((value, origin)) => {
                $origins.push((stringify!($field), format!("{value:?}"), origin));
                Some(value)
            }
            None => {
                $origins.push((stringify!($field), "none".to_owned(), Origin::Default));
                None
            }
        }
    }};
}

impl Settings {
    /// Merges layers, highest precedence first.
    ///
    /// # Errors
    /// Values that are out of range once merged (a zero concurrency, a rate of zero).
    pub fn resolve(layers: &[(Origin, Layer)], home: Option<&str>) -> Result<Self, SettingsError> {
        let mut o = Vec::new();
        let terminus_home = PathBuf::from(home.unwrap_or(".")).join(".terminus");
        let cache_dir: PathBuf = pick!(layers, o, cache_dir, terminus_home.join("cache"));
        let settings = Self {
            concurrency: pick!(layers, o, concurrency, 10),
            per_site: pick!(layers, o, per_site, 1),
            max_requests: pick!(layers, o, max_requests, 10),
            requests_per_second: pick!(layers, o, requests_per_second, 10.0),
            burst: pick!(layers, o, burst, 20),
            on_failure: pick!(layers, o, on_failure, OnFailure::Continue),
            max_failures: pick_optional!(layers, o, max_failures),
            timeout: pick_optional!(layers, o, timeout),
            parallel_pagination: pick!(layers, o, parallel_pagination, true),
            connect_timeout: pick!(layers, o, connect_timeout, Duration::from_secs(10)),
            read_timeout: pick!(layers, o, read_timeout, Duration::from_secs(60)),
            request_attempts: pick!(layers, o, request_attempts, 6),
            request_budget: pick!(layers, o, request_budget, Duration::from_secs(120)),
            retry_backoff: pick!(layers, o, retry_backoff, Duration::from_millis(500)),
            poll_interval: pick_optional!(layers, o, poll_interval),
            host: pick!(layers, o, host, "terminus.pantheon.io".to_owned()),
            port: pick!(layers, o, port, 443),
            protocol: pick!(layers, o, protocol, Protocol::Https),
            verify_tls: pick!(layers, o, verify_tls, true),
            tokens_dir: pick!(layers, o, tokens_dir, cache_dir.join("tokens")),
            cache_dir,
            user: pick_optional!(layers, o, user),
            // Its value prints as `<redacted>` (`Secret`'s `Debug`).
            machine_token: pick_optional!(layers, o, machine_token),
            origins: Vec::new(),
        };
        for (name, value) in [("concurrency", settings.concurrency), ("per_site", settings.per_site)] {
            if value == 0 {
                return Err(SettingsError::new(name, "must be at least 1"));
            }
        }
        if settings.max_requests == 0 {
            return Err(SettingsError::new("max_requests", "must be at least 1"));
        }
        if !(settings.requests_per_second.is_finite() && settings.requests_per_second > 0.0) {
            return Err(SettingsError::new("requests_per_second", "must be a positive number"));
        }
        if settings.request_attempts == 0 {
            return Err(SettingsError::new("request_attempts", "must be at least 1"));
        }
        Ok(Self { origins: o, ..settings })
    }

    /// The API root, `{protocol}://{host}:{port}/api/`.
    #[must_use]
    pub fn api_base(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}://{host}:{}/api/", self.protocol, self.port)
    }
}

impl Layer {
    /// `TERMINUS_BATCH_*` variables.
    ///
    /// # Errors
    /// A value that does not parse, naming the variable.
    pub fn from_batch_env(vars: &EnvVars) -> Result<Self, SettingsError> {
        Ok(Self {
            concurrency: parse_var(vars, env::CONCURRENCY, parse_count)?,
            per_site: parse_var(vars, env::PER_SITE, parse_count)?,
            max_requests: parse_var(vars, env::MAX_REQUESTS, parse_count)?,
            requests_per_second: parse_var(vars, env::REQUESTS_PER_SECOND, parse_rate)?,
            burst: parse_var(vars, env::BURST, |v| parse_count(v).map(|n| u32::try_from(n).unwrap_or(u32::MAX)))?,
            connect_timeout: parse_var(vars, env::CONNECT_TIMEOUT, parse_duration)?,
            read_timeout: parse_var(vars, env::READ_TIMEOUT, parse_duration)?,
            request_attempts: parse_var(vars, env::REQUEST_ATTEMPTS, |v| {
                parse_count(v).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            })?,
            request_budget: parse_var(vars, env::REQUEST_BUDGET, parse_duration)?,
            retry_backoff: parse_var(vars, env::RETRY_BACKOFF, parse_duration)?,
            poll_interval: parse_var(vars, env::POLL_INTERVAL, parse_duration)?,
            variables: set_by(
                vars,
                &[
                    ("concurrency", env::CONCURRENCY),
                    ("per_site", env::PER_SITE),
                    ("max_requests", env::MAX_REQUESTS),
                    ("requests_per_second", env::REQUESTS_PER_SECOND),
                    ("burst", env::BURST),
                    ("connect_timeout", env::CONNECT_TIMEOUT),
                    ("read_timeout", env::READ_TIMEOUT),
                    ("request_attempts", env::REQUEST_ATTEMPTS),
                    ("request_budget", env::REQUEST_BUDGET),
                    ("retry_backoff", env::RETRY_BACKOFF),
                    ("poll_interval", env::POLL_INTERVAL),
                ],
            ),
            ..Self::default()
        })
    }

    /// The Go-port names and terminus's own variables.
    ///
    /// # Errors
    /// A value that does not parse, naming the variable.
    pub fn from_terminus_env(vars: &EnvVars) -> Result<Self, SettingsError> {
        Ok(Self {
            concurrency: parse_var(vars, env::MAX_CONCURRENT_WORKFLOWS, parse_count)?,
            max_requests: parse_var(vars, env::MAX_CONCURRENT_REQUESTS, parse_count)?,
            parallel_pagination: parse_var(vars, env::PARALLEL_PAGINATION, parse_bool)?,
            host: vars.get(env::HOST).map(str::to_owned),
            port: parse_var(vars, env::PORT, |v| v.parse::<u16>().map_err(|_| "must be a port number".to_owned()))?,
            protocol: parse_var(vars, env::PROTOCOL, Protocol::parse)?,
            verify_tls: parse_var(vars, env::VERIFY_HOST_CERT, parse_bool)?,
            cache_dir: vars.get(env::CACHE_DIR).map(PathBuf::from),
            tokens_dir: vars.get(env::TOKENS_DIR).map(PathBuf::from),
            user: vars.get(env::USER).map(str::to_owned),
            machine_token: vars.get(env::MACHINE_TOKEN).map(Secret::new),
            variables: set_by(
                vars,
                &[
                    ("concurrency", env::MAX_CONCURRENT_WORKFLOWS),
                    ("max_requests", env::MAX_CONCURRENT_REQUESTS),
                    ("parallel_pagination", env::PARALLEL_PAGINATION),
                    ("host", env::HOST),
                    ("port", env::PORT),
                    ("protocol", env::PROTOCOL),
                    ("verify_tls", env::VERIFY_HOST_CERT),
                    ("cache_dir", env::CACHE_DIR),
                    ("tokens_dir", env::TOKENS_DIR),
                    ("user", env::USER),
                    ("machine_token", env::MACHINE_TOKEN),
                ],
            ),
            ..Self::default()
        })
    }

    /// The plan's `settings:` block.
    #[must_use]
    pub fn from_plan(plan: &PlanSettings) -> Self {
        Self {
            concurrency: plan.concurrency.map(|n| n as usize),
            per_site: plan.per_site.map(|n| n as usize),
            max_requests: plan.max_requests.map(|n| n as usize),
            requests_per_second: plan.requests_per_second,
            burst: plan.burst,
            on_failure: plan.on_failure,
            max_failures: plan.max_failures,
            timeout: plan.timeout,
            ..Self::default()
        }
    }

    /// terminus's `config.yml`: connection keys and the `performance:` block. Keys terminus
    /// knows and we do not are ignored.
    ///
    /// # Errors
    /// A file that is not YAML, or a known key with a wrong type.
    pub fn from_config_file(path: &str, text: &str) -> Result<Self, SettingsError> {
        #[derive(Deserialize, Default)]
        struct Performance {
            max_concurrent_workflows: Option<usize>,
            max_concurrent_requests: Option<usize>,
            requests_per_second: Option<f64>,
            burst_size: Option<u32>,
        }
        #[derive(Deserialize, Default)]
        struct ConfigFile {
            #[serde(default)]
            performance: Option<Performance>,
            host: Option<String>,
            port: Option<u16>,
            protocol: Option<String>,
            verify_host_cert: Option<bool>,
            cache_dir: Option<PathBuf>,
            tokens_dir: Option<PathBuf>,
            user: Option<String>,
        }
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let source = PlanSource::new(path, text);
        let file: ConfigFile = parse_yaml(&source, Budgets::WORLD).map_err(|e| SettingsError::new(path, e.message))?;
        let perf = file.performance.unwrap_or_default();
        Ok(Self {
            concurrency: perf.max_concurrent_workflows,
            max_requests: perf.max_concurrent_requests,
            requests_per_second: perf.requests_per_second,
            burst: perf.burst_size,
            host: file.host,
            port: file.port,
            protocol: file
                .protocol
                .map(|p| Protocol::parse(&p).map_err(|why| SettingsError::new(path, format!("protocol `{p}` {why}"))))
                .transpose()?,
            verify_tls: file.verify_host_cert,
            cache_dir: file.cache_dir,
            tokens_dir: file.tokens_dir,
            user: file.user,
            ..Self::default()
        })
    }
}

/// Of `(setting, variable)` pairs, those whose variable is set.
fn set_by(vars: &EnvVars, pairs: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    pairs.iter().copied().filter(|(_, variable)| vars.get(variable).is_some()).collect()
}

fn parse_var<T>(
    vars: &EnvVars,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, SettingsError> {
    vars.get(name).map(|v| parse(v.trim()).map_err(|why| SettingsError::new(name, format!("`{v}` {why}")))).transpose()
}

fn parse_count(v: &str) -> Result<usize, String> {
    v.parse::<usize>().map_err(|_| "is not a whole number".to_owned())
}

fn parse_rate(v: &str) -> Result<f64, String> {
    v.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0).ok_or_else(|| "is not a positive number".to_owned())
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v).map_err(|e| format!("is not a duration ({e}); write e.g. `30s` or `2m`"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("is not a boolean (true/false, 1/0)".to_owned()),
    }
}

/// Resolves settings once: flags > environment > plan > `~/.terminus/config.yml` > defaults,
/// then a shard's share of the request rate. Under `--simulate` nothing of terminus's own
/// configuration is read: not its config file, not its host or its login.
pub fn resolve(
    vars: &EnvVars,
    flags: Layer,
    plan: Option<&PlanSettings>,
    simulate: bool,
    shards: Option<u32>,
) -> Result<Settings, SettingsError> {
    let mut layers = vec![(Origin::Flag, flags), (Origin::ENV, Layer::from_batch_env(vars)?)];
    let mut terminus = Layer::from_terminus_env(vars)?;
    if simulate {
        terminus = Layer {
            concurrency: terminus.concurrency,
            max_requests: terminus.max_requests,
            parallel_pagination: terminus.parallel_pagination,
            ..Layer::default()
        };
    }
    layers.push((Origin::ENV, terminus));
    if let Some(plan) = plan {
        layers.push((Origin::Plan, Layer::from_plan(plan)));
    }
    if !simulate && let Some(home) = vars.get(env::HOME) {
        let path = PathBuf::from(home).join(".terminus").join("config.yml");
        // A missing config file is normal; an unreadable one is worth saying so.
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                layers.push((Origin::ConfigFile, Layer::from_config_file(&path.display().to_string(), &text)?));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SettingsError { source_name: path.display().to_string(), message: e.to_string() });
            }
        }
    }
    let mut settings = Settings::resolve(&layers, vars.get(env::HOME))?;
    // A shard of a plan (`--shard I/N`) takes 1/N of the request rate: the shards of a CI
    // matrix run side by side against one account's rate.
    if let Some(count) = shards.filter(|n| *n > 1) {
        settings.requests_per_second /= f64::from(count);
        if let Some(origin) = settings.origins.iter_mut().find(|(name, _, _)| *name == "requests_per_second") {
            origin.1 = format!("{} (1/{count} of {}, for the shard)", settings.requests_per_second, origin.1);
        }
    }
    for (name, value, origin) in &settings.origins {
        tracing::debug!(name, value = %value, from = %origin, "setting");
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_merge_left_wins_and_record_origins() {
        let vars = EnvVars::from_pairs([
            (env::CONCURRENCY, "30"),
            (env::MAX_CONCURRENT_WORKFLOWS, "5"),
            (env::MAX_CONCURRENT_REQUESTS, "4"),
            (env::HOST, "example.test"),
        ]);
        let plan = PlanSettings { concurrency: Some(7), burst: Some(3), ..PlanSettings::default() };
        let config =
            Layer::from_config_file("config.yml", "performance:\n  burst_size: 9\n  requests_per_second: 2.5\n")
                .unwrap();
        let layers = [
            (Origin::ENV, Layer::from_batch_env(&vars).unwrap()),
            (Origin::ENV, Layer::from_terminus_env(&vars).unwrap()),
            (Origin::Plan, Layer::from_plan(&plan)),
            (Origin::ConfigFile, config),
        ];
        let s = Settings::resolve(&layers, Some("/home/u")).unwrap();
        assert_eq!(s.concurrency, 30);
        assert_eq!(s.max_requests, 4);
        assert_eq!(s.burst, 3);
        assert!((s.requests_per_second - 2.5).abs() < f64::EPSILON);
        assert_eq!(s.api_base(), "https://example.test:443/api/");
        assert_eq!(s.tokens_dir, PathBuf::from("/home/u/.terminus/cache/tokens"));
        let origin = |name: &str| s.origins.iter().find(|(n, _, _)| *n == name).unwrap().2;
        assert_eq!(origin("concurrency"), Origin::Env(Some(env::CONCURRENCY)), "the variable is named");
        assert_eq!(origin("max_requests"), Origin::Env(Some(env::MAX_CONCURRENT_REQUESTS)));
        assert_eq!(origin("concurrency").to_string(), "environment (TERMINUS_BATCH_CONCURRENCY)");
        // Every setting is on the list, those with no default too.
        for name in ["max_failures", "timeout", "poll_interval", "user", "machine_token"] {
            assert_eq!(origin(name), Origin::Default, "{name}");
        }
        assert_eq!(origin("burst"), Origin::Plan);
        assert_eq!(origin("requests_per_second"), Origin::ConfigFile);
        assert_eq!(origin("per_site"), Origin::Default);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let vars = EnvVars::from_pairs([(env::REQUEST_BUDGET, "soon")]);
        let err = Layer::from_batch_env(&vars).unwrap_err();
        assert_eq!(err.source_name, env::REQUEST_BUDGET);
        assert!(err.to_string().contains("`soon` is not a duration"), "{err}");
        // A protocol is one of two, said where it is set.
        let ftp = EnvVars::from_pairs([(env::PROTOCOL, "ftp")]);
        let err = Layer::from_terminus_env(&ftp).unwrap_err();
        assert_eq!(err.source_name, env::PROTOCOL);
        assert!(err.to_string().contains("`ftp` is not a protocol"), "{err}");
        let http = EnvVars::from_pairs([(env::PROTOCOL, "HTTP")]);
        assert_eq!(Layer::from_terminus_env(&http).unwrap().protocol, Some(Protocol::Http));
        let zero = Layer { concurrency: Some(0), ..Layer::default() };
        assert!(Settings::resolve(&[(Origin::Flag, zero)], None).is_err());
    }

    #[test]
    fn the_machine_token_never_prints() {
        let vars = EnvVars::from_pairs([(env::MACHINE_TOKEN, "tok-123")]);
        let s = Settings::resolve(&[(Origin::ENV, Layer::from_terminus_env(&vars).unwrap())], None).unwrap();
        let (_, shown, from) = s.origins.iter().find(|(n, _, _)| *n == "machine_token").unwrap();
        assert_eq!((shown.as_str(), *from), ("<redacted>", Origin::Env(Some(env::MACHINE_TOKEN))));
        assert!(!format!("{s:?}").contains("tok-123"));
    }
}

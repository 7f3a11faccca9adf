//! Knobs: how the simulator misbehaves, set in the world file's `simulator:` block and
//! overridden by `simulate serve` flags. Every random choice is a hash of the seed and what
//! is being decided (the route and how many times it was asked, the workflow's site, env,
//! type and ordinal), never a shared random stream, so the same seed and world give the same
//! outcomes however concurrent requests interleave.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The simulator's behaviour.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    pub seed: u64,
    /// Multiplies every duration: workflow run times, latency, `Retry-After`, the poll
    /// floor, and divides the rate limit. `0.01` runs a 60 s workflow in 0.6 s.
    pub time_scale: f64,
    /// Request latency in seconds, uniform between the two (before scaling).
    pub latency: Latency,
    /// Workflow run time in seconds per type (before scaling); others take `default_duration`.
    pub workflow_durations: BTreeMap<String, f64>,
    pub default_duration: f64,
    /// Each workflow's run time varies by up to this fraction either way.
    pub duration_jitter: f64,
    /// Finished workflows each site already has in its list at start (its recent history,
    /// by a teammate, dated before the start), as on the platform; 0 for none.
    pub history: u32,
    /// Requests per second the API accepts before answering 429 (before scaling).
    pub rate_limit: Option<f64>,
    /// Seconds a 429 asks the client to wait (before scaling).
    pub retry_after: f64,
    /// Fraction of requests answered with a 5xx (without acting on them).
    pub error_rate: f64,
    /// Fraction of requests whose connection is dropped (after acting on them).
    pub drop_rate: f64,
    /// Fraction of requests refused with 429 and `Retry-After` (without acting on them).
    pub throttle_rate: f64,
    /// Fraction of workflows that fail.
    pub fail_workflow_rate: f64,
    /// Faults on exact requests.
    pub faults: Vec<FaultRule>,
    /// Seconds from login to the session's `expires_at`, as reported (may be negative: a
    /// session issued already expired, as some recordings show).
    pub session_expires_in: f64,
    /// Seconds a session is accepted before the API answers 401 (before scaling).
    pub session_lifetime: Option<f64>,
    /// Seconds the platform's clock runs ahead of this machine's (negative: behind), in its
    /// timestamps and its `Date` header: clock skew, which adoption must survive.
    pub clock_offset: f64,
    /// Seconds the `Date` header runs ahead of this machine's clock when something in front
    /// of the platform (a proxy, a CDN's edge) stamps the answers with its own clock rather
    /// than the platform's: the header then says nothing of the platform's timestamps.
    /// Default: the platform's own clock (`clock_offset`).
    pub date_offset: Option<f64>,
    /// SSH connections to the app servers closed before the server's greeting: the first
    /// this many, as a network that drops them (the command never runs).
    pub ssh_drops: u32,
    /// The app servers refuse the run's key until this file exists, as for a CI job whose
    /// key is not yet on the account: authentication fails and no command runs. (A file, as
    /// `hold`'s gate, so that a test mends the key between a run and its resume without
    /// changing the world, which a resume checks.)
    #[serde(default)]
    pub ssh_refuse_keys_until: Option<std::path::PathBuf>,
    /// The first this many sessions end after the command's output, before its exit status,
    /// as a connection reset once the command ran: the client cannot tell that it ended.
    #[serde(default)]
    pub ssh_cut_after_output: u32,
    /// Fraction of environments whose site breaks at a deploy: it answers 500 until a later
    /// deploy mends it (a failed `updb`, a missing variable).
    pub site_break_rate: f64,
    /// Seconds a site answers 503 after a deploy or a cache clear finishes, while it warms
    /// up (before scaling).
    pub site_warmup: f64,
    /// Workflows that do not finish until a file exists: a test's gate, so that what it
    /// checks happens while they run, on no clock.
    pub hold: Option<Hold>,
}

/// `hold: { until: FILE, types: [...] }`: workflows (of these types; every type when absent)
/// stay running until `FILE` exists (a path relative to the working directory); then each
/// finishes once its run time has passed, counted on from when it was last seen held.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub until: std::path::PathBuf,
    #[serde(default)]
    pub types: Option<Vec<String>>,
}

impl Hold {
    /// Whether the gate is still shut (its file does not exist yet).
    pub(crate) fn shut(&self) -> bool {
        !self.until.exists()
    }

    /// Whether `kind`'s workflows are held while the gate is shut.
    pub(crate) fn covers(&self, kind: &str) -> bool {
        self.types.as_ref().is_none_or(|t| t.iter().any(|k| k == kind))
    }
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub min: f64,
    pub max: f64,
}

/// A fault on matching requests: `status` answers with that code, `drop` closes the
/// connection without an answer, `html` answers with an HTML page, `fail_workflow` makes the
/// workflow the request starts fail.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// `GET`, `POST`, …; any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// A route pattern such as `sites/{site}/workflows` (see `GET /__sim/stats` for the
    /// names), or any when absent.
    #[serde(default)]
    pub route: Option<String>,
    /// Site name.
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    /// Workflow type, for workflow POSTs.
    #[serde(default, rename = "type")]
    pub workflow_type: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub drop: bool,
    #[serde(default)]
    pub fail_workflow: Option<String>,
    /// Answer with an HTML page (with `status`, default 200) instead of the API's JSON.
    #[serde(default)]
    pub html: bool,
    /// Whether the request is acted on before the fault (a lost answer) or not (a refusal).
    /// Default: drops after, statuses and delays before (a delay after acting holds the
    /// platform's answer, as a proxy would).
    #[serde(default)]
    pub processed: Option<bool>,
    /// Hold the answer this many seconds (before scaling): a slow endpoint.
    #[serde(default)]
    pub delay: Option<f64>,
    /// Skip this many matching requests first.
    #[serde(default)]
    pub after: u32,
    /// Then fault this many (default 1).
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

/// A rule that matches every request and does nothing yet: set the fields that matter.
impl Default for FaultRule {
    fn default() -> Self {
        Self {
            method: None,
            route: None,
            site: None,
            env: None,
            workflow_type: None,
            status: None,
            drop: false,
            fail_workflow: None,
            html: false,
            processed: None,
            delay: None,
            after: 0,
            times: one(),
        }
    }
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            seed: 0,
            time_scale: 1.0,
            latency: Latency { min: 0.0, max: 0.0 },
            workflow_durations: BTreeMap::new(),
            default_duration: 30.0,
            duration_jitter: 0.1,
            history: 8,
            rate_limit: None,
            retry_after: 1.0,
            error_rate: 0.0,
            drop_rate: 0.0,
            throttle_rate: 0.0,
            fail_workflow_rate: 0.0,
            faults: Vec::new(),
            session_expires_in: 28.0 * 24.0 * 3600.0,
            session_lifetime: None,
            clock_offset: 0.0,
            date_offset: None,
            ssh_drops: 0,
            ssh_refuse_keys_until: None,
            ssh_cut_after_output: 0,
            hold: None,
            site_break_rate: 0.0,
            site_warmup: 0.0,
        }
    }
}

/// Typical run times, in seconds, of the workflow types the operations start.
const DURATIONS: &[(&str, f64)] = &[
    ("deploy", 45.0),
    ("create_environment", 60.0),
    ("clear_cache", 15.0),
    ("do_export", 90.0),
    ("clone_database", 60.0),
    ("clone_files", 60.0),
    ("restore_code", 60.0),
    ("restore_files", 120.0),
    ("restore_database", 120.0),
    ("create_cloud_development_environment", 120.0),
    ("delete_cloud_development_environment", 40.0),
    ("merge_dev_into_cloud_development_environment", 45.0),
    ("merge_cloud_development_environment_into_dev", 45.0),
    ("apply_upstream_updates", 60.0),
    ("lock_environment", 20.0),
    ("unlock_environment", 20.0),
    ("enable_git_mode", 10.0),
    ("enable_on_server_development", 10.0),
    ("commit_and_push_on_server_changes", 30.0),
    ("set_primary_domain", 10.0),
    ("enable_addon", 20.0),
    ("disable_addon", 20.0),
];

impl Knobs {
    /// Checks ranges.
    ///
    /// # Errors
    /// A rate outside 0..=1, a non-positive time scale, or an inverted latency range.
    pub fn check(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
            ("throttle_rate", self.throttle_rate),
            ("fail_workflow_rate", self.fail_workflow_rate),
            ("site_break_rate", self.site_break_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, not {rate}"));
            }
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(format!("time_scale must be a positive number, not {}", self.time_scale));
        }
        if self.latency.min < 0.0 || self.latency.max < self.latency.min {
            return Err("latency needs 0 <= min <= max".to_owned());
        }
        if !(self.site_warmup.is_finite() && self.site_warmup >= 0.0) {
            return Err(format!("site_warmup must be a number of seconds, not {}", self.site_warmup));
        }
        if self.rate_limit.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err("rate_limit must be a positive number".to_owned());
        }
        for (name, offset) in [("clock_offset", Some(self.clock_offset)), ("date_offset", self.date_offset)] {
            if let Some(offset) = offset
                && !(offset.is_finite() && offset.abs() < 1e9)
            {
                return Err(format!("{name} must be a number of seconds, not {offset}"));
            }
        }
        Ok(())
    }

    /// Seconds of simulated time as real time.
    #[must_use]
    pub fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.time_scale).max(0.0))
    }

    /// A workflow type's run time before scaling, jittered by `roll` in 0..1.
    #[must_use]
    pub fn duration_of(&self, kind: &str, roll: f64) -> f64 {
        let base = self
            .workflow_durations
            .get(kind)
            .copied()
            .or_else(|| DURATIONS.iter().find(|(k, _)| *k == kind).map(|(_, d)| *d))
            .unwrap_or(self.default_duration);
        base * (1.0 + self.duration_jitter * (2.0 * roll - 1.0))
    }
}

/// A deterministic roll in 0..1 for `key` (`SplitMix64` over the seed and an FNV-1a hash).
#[must_use]
pub fn roll(seed: u64, key: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    #[expect(clippy::cast_precision_loss, reason = "53 bits of a 64-bit hash are plenty for a roll")]
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_are_deterministic_and_spread() {
        assert_eq!(roll(1, "a").to_bits(), roll(1, "a").to_bits());
        assert_ne!(roll(1, "a").to_bits(), roll(2, "a").to_bits());
        let hits = (0..10_000).filter(|i| roll(7, &format!("GET x#{i}")) < 0.1).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn durations_jitter_around_the_type() {
        let knobs = Knobs::default();
        assert!((knobs.duration_of("deploy", 0.5) - 45.0).abs() < 1e-9);
        assert!((knobs.duration_of("deploy", 0.0) - 40.5).abs() < 1e-9);
        assert!((knobs.duration_of("unknown", 0.5) - 30.0).abs() < 1e-9);
        assert!(Knobs { error_rate: 2.0, ..Knobs::default() }.check().is_err());
    }
}

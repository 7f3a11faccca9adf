//! The serde mirror of a plan file (version 1). No behaviour: every user-written value keeps
//! its location (`Spanned`), and the JSON Schema in `schemas/plan.schema.json` is generated
//! from these types. Unknown keys are not refused here, one at a time: `parse` collects every
//! one with its place, and the schema forbids them.
//!
//! Values whose shape varies (`on.sites`, `needs` entries, counts or percents, `with` values)
//! have hand-written visitors rather than untagged enums: serde buffers untagged content and
//! the locations inside would be lost (STYLE.md §2).
//!
//! Must not import anything but serde, schemars and the YAML crate's span type.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// A whole plan file.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(title = "terminus-batch plan", description = "A terminus-batch plan, version 1.")]
pub struct PlanRaw {
    /// Plan format version; must be 1.
    #[schemars(with = "u32")]
    pub version: Spanned<u32>,
    /// A name for the plan, shown in reports.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// How hard to push: concurrency, rate, failure policy, run timeout.
    #[serde(default)]
    pub settings: Option<SettingsRaw>,
    /// Named site selectors or site lists, used by `on.sites`.
    #[serde(default)]
    pub targets: SpannedMap<SitesRaw>,
    /// The jobs to run, in plan order.
    pub jobs: SpannedMap<JobRaw>,
}

/// The `settings:` block.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SettingsRaw {
    /// Tasks in flight for the whole run (default 10).
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub concurrency: Option<Spanned<u32>>,
    /// Workflow-starting tasks in flight per site (default 1).
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub per_site: Option<Spanned<u32>>,
    /// API requests open at once (default 10).
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub max_requests: Option<Spanned<u32>>,
    /// API request rate shared by the whole run, requests per second (default 10).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub requests_per_second: Option<Spanned<f64>>,
    /// Token bucket size (default 20).
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub burst: Option<Spanned<u32>>,
    /// `continue` (default) or `fail-fast`.
    #[serde(default)]
    #[schemars(with = "Option<OnFailureSchema>")]
    pub on_failure: Option<Spanned<String>>,
    /// Failure budget: a count or a percent of all tasks (`10%`).
    #[serde(default)]
    #[schemars(with = "Option<CountOrPercent>")]
    pub max_failures: Option<Spanned<CountOrPercent>>,
    /// Whole-run timeout, a humantime duration (`45m`, `2h 30m`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Where runs keep their state: a directory, or `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `az://container/prefix` (after `--state-dir` and
    /// `TERMINUS_BATCH_STATE_DIR`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub state: Option<Spanned<String>>,
    /// Webhooks told of the run's start or end (its URL is a secret: write
    /// `${{ env.NAME }}`).
    #[serde(default)]
    #[schemars(with = "Vec<NotifyRaw>")]
    pub notify: Vec<Spanned<NotifyRaw>>,
}

/// One webhook of `settings.notify`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NotifyRaw {
    /// Where to POST: an https URL, or `${{ env.NAME }}` holding one.
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// When: `start`, `success`, `failure`, `halt` (default: failure and halt).
    #[serde(default)]
    #[schemars(with = "Option<Vec<NotifyEventSchema>>")]
    pub events: Option<Vec<Spanned<String>>>,
    /// `slack` (an incoming webhook's `{"text": ...}`) or `json` (the run's summary);
    /// default `slack` for `hooks.slack.com`, `json` otherwise.
    #[serde(default)]
    #[schemars(with = "Option<NotifyFormatSchema>")]
    pub format: Option<Spanned<String>>,
}

/// Schema-only: the events a webhook may want.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[expect(dead_code, reason = "describes the accepted strings in the JSON Schema only")]
enum NotifyEventSchema {
    Start,
    Success,
    Failure,
    Halt,
}

/// Schema-only: the formats a webhook takes.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[expect(dead_code, reason = "describes the accepted strings in the JSON Schema only")]
enum NotifyFormatSchema {
    Slack,
    Json,
}

/// Schema-only: the values `on_failure` accepts.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[expect(dead_code, reason = "describes the accepted strings in the JSON Schema only")]
enum OnFailureSchema {
    Continue,
    FailFast,
}

/// Schema-only: the values `scope` of a need accepts.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[expect(dead_code, reason = "describes the accepted strings in the JSON Schema only")]
enum NeedScopeSchema {
    Site,
    All,
}

/// Schema-only: the operation names `run` accepts, from the catalogue.
struct OperationName;

impl JsonSchema for OperationName {
    fn schema_name() -> Cow<'static, str> {
        "OperationName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = super::ops::OperationKind::ALL.iter().map(|k| k.name()).collect();
        json_schema!({
            "description": "A terminus operation name (see the README's operations table).",
            "type": "string",
            "enum": names
        })
    }
}

/// One job.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct JobRaw {
    /// The operation, by its terminus command name (`env:deploy`, `backup:create`, ...).
    #[schemars(with = "OperationName")]
    pub run: Spanned<String>,
    /// Where the job runs: sites and environments. Omitted for account operations.
    #[serde(default)]
    #[schemars(with = "Option<OnRaw>")]
    pub on: Option<Spanned<OnRaw>>,
    /// Operation options, by terminus flag name (kebab-case). Values may use `${{ ... }}`.
    #[serde(default)]
    pub with: SpannedMap<Value>,
    /// Fan out over option values: each axis is a list; tasks are the product of the axes.
    #[serde(default)]
    pub matrix: SpannedMap<Value>,
    /// Jobs whose tasks on the same site must end well first.
    #[serde(default)]
    #[schemars(with = "Vec<NeedRaw>")]
    pub needs: Vec<Spanned<NeedRaw>>,
    /// `continue` or `fail-fast` for failures of this job's tasks.
    #[serde(default)]
    #[schemars(with = "Option<OnFailureSchema>")]
    pub on_failure: Option<Spanned<String>>,
    /// Failure budget for this job; may only tighten the run's.
    #[serde(default)]
    #[schemars(with = "Option<CountOrPercent>")]
    pub max_failures: Option<Spanned<CountOrPercent>>,
    /// Waves: a canary, then batches, each gating the next.
    #[serde(default)]
    #[schemars(with = "Option<RolloutRaw>")]
    pub rollout: Option<Spanned<RolloutRaw>>,
    /// Per-task timeout, all attempts together (humantime).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Retries of transient failures.
    #[serde(default)]
    #[schemars(with = "Option<RetriesRaw>")]
    pub retries: Option<Spanned<RetriesRaw>>,
}

/// `on:`: sites and environments.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct OnRaw {
    /// A target name, a list of site names and globs, or an inline selector.
    #[serde(default)]
    #[schemars(with = "Option<SitesRaw>")]
    pub sites: Option<Spanned<SitesRaw>>,
    /// An environment id, a glob, or a list of them.
    #[serde(default)]
    #[schemars(with = "Option<EnvsRaw>")]
    pub env: Option<Spanned<EnvsRaw>>,
}

/// Which sites: a target name, a list, or a selector.
#[derive(Debug)]
pub enum SitesRaw {
    /// A target name from `targets:`.
    Name(String),
    /// Site names and globs.
    List(Vec<Spanned<String>>),
    /// Sites chosen through the API listings.
    Selector(Box<SelectorRaw>),
}

/// An inline or named site selector.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SelectorRaw {
    /// Organization id, machine name or label.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub org: Option<Spanned<String>>,
    /// An organization tag (within `org` when given).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tag: Option<Spanned<String>>,
    /// Upstream id or label.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub upstream: Option<Spanned<String>>,
    /// Framework (`drupal8`, `wordpress`, ...).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub framework: Option<Spanned<String>>,
    /// Plan name (`basic`, `performance-small`, ...).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub plan: Option<Spanned<String>>,
    /// Site names or globs to leave out.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub exclude: Vec<Spanned<String>>,
}

/// Environments: one id or glob, or a list.
pub type EnvsRaw = OneOrMany<EnvId>;

/// One value, or a list of them (each with its location), as a plan may write either
/// (`env: live`, `env: [test, live]`).
#[derive(Debug)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<Spanned<T>>),
}

/// What a [`OneOrMany`] holds, in words: "expected …" in a message, and the schema's
/// description.
pub trait Described {
    const EXPECTING: &'static str;
    const DESCRIPTION: &'static str;
}

/// An environment id (or a glob of them), as `env` names it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct EnvId(pub String);

impl Described for EnvId {
    const EXPECTING: &'static str = "an environment id, a glob, or a list of them";
    const DESCRIPTION: &'static str = "An environment id (dev, test, live or a multidev), a glob, or a list of them.";
}

/// One `needs` entry: a job name, or a map with a scope and an optional flag.
#[derive(Debug)]
pub enum NeedRaw {
    Job(String),
    Full(NeedFullRaw),
}

/// The map form of a need.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NeedFullRaw {
    /// The needed job.
    #[schemars(with = "String")]
    pub job: Spanned<String>,
    /// `site` (default: tasks on the same site) or `all` (every task: a barrier).
    #[serde(default)]
    #[schemars(with = "Option<NeedScopeSchema>")]
    pub scope: Option<Spanned<String>>,
    /// When true, sites without a task of the needed job do not wait.
    #[serde(default)]
    pub optional: bool,
}

/// `rollout:` waves.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RolloutRaw {
    /// Size of the first wave (the canary): a count or a percent of the job's tasks.
    #[schemars(with = "CountOrPercent")]
    pub first: Spanned<CountOrPercent>,
    /// Size of each later wave (default: all the rest in one wave).
    #[serde(default)]
    #[schemars(with = "Option<CountOrPercent>")]
    pub then: Option<Spanned<CountOrPercent>>,
    /// Tasks of a wave that may fail or be skipped before later waves halt (default 0).
    #[serde(default)]
    #[schemars(with = "Option<CountOrPercent>")]
    pub max_failures: Option<Spanned<CountOrPercent>>,
    /// Jobs that check this job's sites (each needs this job, such as an `http:check`): a
    /// wave is over when their tasks on its sites are, and their failures count against it.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub checks: Vec<Spanned<String>>,
}

/// `retries:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RetriesRaw {
    /// Total number of tries, the first included.
    #[schemars(with = "u32", range(min = 1))]
    pub attempts: Spanned<u32>,
    /// First backoff, growing exponentially with jitter (humantime, default 10s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub backoff: Option<Spanned<String>>,
}

/// A count (`3`) or a percent (`25%`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum CountOrPercent {
    Count(u64),
    Percent(f64),
}

/// A scalar or list written in `with` or `matrix`. Maps are refused when read.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Spanned<Value>>),
}

impl Value {
    /// A short name of the value's type, for messages.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) => "an integer",
            Self::Float(_) => "a number",
            Self::Str(_) => "a string",
            Self::List(_) => "a list",
        }
    }
}

/// A YAML map whose keys keep their locations, in file order.
#[derive(Debug)]
pub struct SpannedMap<V>(pub Vec<Entry<V>>);

/// One entry of a [`SpannedMap`].
#[derive(Debug)]
pub struct Entry<V> {
    pub key: Spanned<String>,
    pub value: Spanned<V>,
}

impl<V> Default for SpannedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> SpannedMap<V> {
    pub fn iter(&self) -> impl Iterator<Item = &Entry<V>> {
        self.0.iter()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Entry<V>> {
        self.0.iter().find(|e| e.key.value == key)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SpannedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = SpannedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(SpannedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Spanned<V>>()?;
                    out.push(Entry { key, value });
                }
                Ok(SpannedMap(out))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for SpannedMap<V> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <BTreeMap<String, V>>::json_schema(generator)
    }
    fn inline_schema() -> bool {
        true
    }
}

/// Every element of a YAML list, each with its location.
fn collect_seq<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(mut seq: A) -> Result<Vec<Spanned<T>>, A::Error> {
    let mut out = Vec::new();
    while let Some(item) = seq.next_element::<Spanned<T>>()? {
        out.push(item);
    }
    Ok(out)
}

impl<'de> Deserialize<'de> for SitesRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SitesVisitor;
        impl<'de> Visitor<'de> for SitesVisitor {
            type Value = SitesRaw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target name, a list of site names, or a selector map")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SitesRaw::Name(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                collect_seq(seq).map(SitesRaw::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                SelectorRaw::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|s| SitesRaw::Selector(Box::new(s)))
            }
        }
        d.deserialize_any(SitesVisitor)
    }
}

impl JsonSchema for SitesRaw {
    fn schema_name() -> Cow<'static, str> {
        "Sites".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let selector = generator.subschema_for::<SelectorRaw>();
        json_schema!({
            "description": "A target name, a list of site names and globs, or a selector map.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } },
                selector
            ]
        })
    }
}

impl<'de, T: Deserialize<'de> + Described> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Described> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::new(v)).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                collect_seq(seq).map(OneOrMany::Many)
            }
        }
        d.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

impl<T: JsonSchema + Described> JsonSchema for OneOrMany<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("One_or_many_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<T>();
        json_schema!({
            "description": T::DESCRIPTION,
            "anyOf": [ one, { "type": "array", "items": one, "minItems": 1 } ]
        })
    }
    fn inline_schema() -> bool {
        true
    }
}

impl<'de> Deserialize<'de> for NeedRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NeedVisitor;
        impl<'de> Visitor<'de> for NeedVisitor {
            type Value = NeedRaw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a job name or a map with `job`, `scope` and `optional`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(NeedRaw::Job(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                NeedFullRaw::deserialize(de::value::MapAccessDeserializer::new(map)).map(NeedRaw::Full)
            }
        }
        d.deserialize_any(NeedVisitor)
    }
}

impl JsonSchema for NeedRaw {
    fn schema_name() -> Cow<'static, str> {
        "Need".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let full = generator.subschema_for::<NeedFullRaw>();
        json_schema!({
            "description": "A job name, or a map with `job`, `scope` (site|all) and `optional`.",
            "anyOf": [ { "type": "string" }, full ]
        })
    }
}

impl<'de> Deserialize<'de> for CountOrPercent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = CountOrPercent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count (3) or a percent (25%)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(CountOrPercent::Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(CountOrPercent::Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &"a count of zero or more"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let bad = || E::invalid_value(de::Unexpected::Str(v), &"a count (3) or a percent (25%)");
                let number = v.trim().strip_suffix('%').ok_or_else(bad)?;
                let pct: f64 = number.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&pct) {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &"a percent from 0% to 100%"));
                }
                Ok(CountOrPercent::Percent(pct))
            }
        }
        d.deserialize_any(CountVisitor)
    }
}

impl JsonSchema for CountOrPercent {
    fn schema_name() -> Cow<'static, str> {
        "CountOrPercent".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A count, or a percent such as \"25%\".",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*%$" }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar or a list of scalars")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v)
                    .map(Value::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"an integer below 2^63"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
                collect_seq(seq).map(Value::List)
            }
        }
        d.deserialize_any(ValueVisitor)
    }
}

impl JsonSchema for Value {
    fn schema_name() -> Cow<'static, str> {
        "Value".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A scalar, or a list of scalars (matrix axes).",
            "anyOf": [
                { "type": ["string", "number", "integer", "boolean", "null"] },
                { "type": "array", "items": { "type": ["string", "number", "integer", "boolean"] } }
            ]
        })
    }
}

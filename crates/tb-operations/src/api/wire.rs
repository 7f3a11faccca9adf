//! Wire types: the JSON bodies the Pantheon API returns, as pantheon-api.md describes them and
//! the recorded responses show them. Lenient by design: the platform adds fields freely, so
//! unknown keys are ignored and most keys are optional; what the client relies on is typed.
//!
//! Secrets (the session, signed URLs, the backup encryption passphrase, lock passwords) are
//! wrapped in [`Secret`], whose `Debug` prints `<redacted>`.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer};
use std::fmt;

use serde::{Deserialize, Serialize};

use tb_core::secret::Secret;

/// `POST authorize/machine-token` → the session (also terminus's `cache/session` file).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Session {
    #[serde(serialize_with = "Secret::serialize_exposed")]
    pub session: Secret,
    pub expires_at: i64,
    pub user_id: String,
}

/// `GET users/{uid}`.
#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub profile: Option<UserProfile>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct UserProfile {
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub full_name: Option<String>,
}

/// `GET site-names/{name}`.
#[derive(Clone, Debug, Deserialize)]
pub struct SiteName {
    pub id: String,
    pub name: String,
}

/// `GET sites/{site}?site_state=true` (and the `site` inside memberships).
#[derive(Clone, Debug, Deserialize)]
pub struct Site {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub framework: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default, deserialize_with = "truthy")]
    pub frozen: bool,
    #[serde(default)]
    pub service_level: Option<String>,
    #[serde(default)]
    pub plan_name: Option<String>,
    #[serde(default)]
    pub upstream: Option<serde_json::Value>,
    #[serde(default)]
    pub product: Option<serde_json::Value>,
}

/// One environment of `GET sites/{site}/environments` (an object keyed by env id) or
/// `GET sites/{site}/environments/{env}`.
#[derive(Clone, Debug, Deserialize)]
pub struct Environment {
    #[serde(default)]
    pub environment_created: Option<serde_json::Value>,
    #[serde(default)]
    pub dns_zone: Option<String>,
    #[serde(default)]
    pub on_server_development: Option<bool>,
    #[serde(default)]
    pub lock: Option<Lock>,
    #[serde(default)]
    pub target_ref: Option<String>,
    #[serde(default)]
    pub target_commit: Option<String>,
    #[serde(default)]
    pub php_version: Option<serde_json::Value>,
}

/// The environments of a site, by id.
pub type Environments = BTreeMap<String, Environment>;

/// An environment's lock; the password is a secret.
#[derive(Clone, Debug, Deserialize)]
pub struct Lock {
    #[serde(default, deserialize_with = "truthy")]
    pub locked: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
}

/// `GET …/environments/{env}/settings`.
#[derive(Clone, Debug, Deserialize)]
pub struct EnvSettings {
    #[serde(default, deserialize_with = "truthy")]
    pub is_initialized: bool,
    /// HTTPS on (`null` on an environment that never had it).
    #[serde(default, deserialize_with = "truthy")]
    pub ssl_enabled: bool,
}

/// One commit of `GET …/code-log` (newest first).
#[derive(Clone, Debug, Deserialize)]
pub struct Commit {
    pub hash: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub datetime: Option<String>,
}

/// One domain of `GET …/domains`.
#[derive(Clone, Debug, Deserialize)]
pub struct Domain {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub deletable: Option<bool>,
    #[serde(default)]
    pub primary: Option<bool>,
}

/// One entry of `GET …/backups/catalog`, keyed `<folder>_<element>`. Manifest entries have
/// no file name.
#[derive(Clone, Debug, Deserialize)]
pub struct BackupEntry {
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub folder: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub timestamp: Option<f64>,
    #[serde(default)]
    pub finish_time: Option<f64>,
    #[serde(default)]
    pub start_time: Option<f64>,
    #[serde(default)]
    pub ttl: Option<f64>,
}

impl BackupEntry {
    /// Finished: a size and a finish time or timestamp (pantheon-api.md §5.4).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.size.is_some_and(|s| s > 0) && (self.finish_time.is_some() || self.timestamp.is_some())
    }
}

/// The backup catalog. An empty catalog comes back as `[]` (or an empty body).
#[derive(Clone, Debug, Default)]
pub struct BackupCatalog(pub BTreeMap<String, BackupEntry>);

impl<'de> Deserialize<'de> for BackupCatalog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Map(BTreeMap<String, BackupEntry>),
            Empty(Vec<serde_json::Value>),
        }
        match Shape::deserialize(d)? {
            Shape::Map(m) => Ok(Self(m)),
            Shape::Empty(v) if v.is_empty() => Ok(Self::default()),
            Shape::Empty(_) => Err(de::Error::custom("a backup catalog list must be empty")),
        }
    }
}

/// `POST …/s3token` → a signed download URL (a secret, like the passphrase).
#[derive(Clone, Debug, Deserialize)]
pub struct S3Token {
    pub url: Secret,
    #[serde(default)]
    pub encryption_passphrase: Option<Secret>,
}

/// `GET sites/{site}/code-upstream-updates`; `{"has_code": false}` when there is no code.
#[derive(Clone, Debug, Deserialize)]
pub struct UpstreamUpdates {
    #[serde(default, deserialize_with = "truthy")]
    pub has_code: bool,
    #[serde(default)]
    pub behind: Option<u64>,
    #[serde(default)]
    pub ahead: Option<u64>,
    #[serde(default)]
    pub update_log: Option<serde_json::Value>,
    #[serde(default)]
    pub dev: Option<EnvUpstream>,
    #[serde(default)]
    pub test: Option<EnvUpstream>,
    #[serde(default)]
    pub live: Option<EnvUpstream>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EnvUpstream {
    #[serde(default, deserialize_with = "truthy")]
    pub is_up_to_date_with_upstream: bool,
}

/// A workflow (pantheon-api.md §4.3): `result` is null while it runs.
#[derive(Clone, Debug, Deserialize)]
pub struct Workflow {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub active_description: Option<String>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub created_at: Option<f64>,
    #[serde(default)]
    pub started_at: Option<f64>,
    #[serde(default)]
    pub finished_at: Option<f64>,
    #[serde(default)]
    pub total_time: Option<f64>,
    #[serde(default)]
    pub environment_id: Option<String>,
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    /// The params echoed back; may hold a lock password, so `Debug` redacts secret keys.
    #[serde(default)]
    pub params: Option<Params>,
    #[serde(default)]
    pub final_task: Option<FinalTask>,
}

impl Workflow {
    /// Finished means `result` is present and non-null (pantheon-api.md §4.4).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.result.is_some()
    }

    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.result.as_deref() == Some("succeeded")
    }

    /// Why a failed workflow failed: `final_task.reason`, then the last message, then
    /// `active_description` (DESIGN.md §6).
    #[must_use]
    pub fn failure_reason(&self) -> String {
        let task = self.final_task.as_ref();
        if let Some(reason) = task.and_then(|t| t.reason.as_ref()).and_then(reason_text) {
            return reason;
        }
        if let Some(message) = task.and_then(FinalTask::last_message) {
            return message;
        }
        self.active_description.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "Workflow failed.".to_owned())
    }
}

/// A workflow's `params`. `lock_environment` echoes the lock password here, so `Debug`
/// prints `<redacted>` for every key that names a secret.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Params(pub serde_json::Value);

impl Params {
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key)
    }
}

const SECRET_KEYS: &[&str] = &["password", "passphrase", "token", "secret", "session", "signature"];

fn redacted(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let secret = SECRET_KEYS.iter().any(|s| k.to_ascii_lowercase().contains(s));
                    (k.clone(), if secret { serde_json::Value::String("<redacted>".into()) } else { redacted(v) })
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", redacted(&self.0))
    }
}

/// `final_task` of a finished workflow.
#[derive(Clone, Debug, Deserialize)]
pub struct FinalTask {
    /// A string, or sometimes an object.
    #[serde(default)]
    pub reason: Option<serde_json::Value>,
    /// Keyed by ISO timestamp; an empty list when there are none.
    #[serde(default)]
    pub messages: Option<serde_json::Value>,
}

impl FinalTask {
    fn last_message(&self) -> Option<String> {
        let messages = self.messages.as_ref()?.as_object()?;
        let (_, last) = messages.iter().max_by(|a, b| a.0.cmp(b.0))?;
        last.get("message")?.as_str().filter(|m| !m.is_empty()).map(str::to_owned)
    }
}

fn reason_text(reason: &serde_json::Value) -> Option<String> {
    match reason {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Object(map) => map
            .get("message")
            .or_else(|| map.get("reason"))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        _ => None,
    }
}

/// `users/{uid}/memberships/sites` item.
#[derive(Clone, Debug, Deserialize)]
pub struct UserSiteMembership {
    pub id: String,
    #[serde(default)]
    pub role: Option<String>,
    pub site: Site,
}

/// `organizations/{org}/memberships/sites` item, with the organization's tags.
#[derive(Clone, Debug, Deserialize)]
pub struct OrgSiteMembership {
    pub id: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub site: Site,
}

/// `users/{uid}/memberships/organizations` item.
#[derive(Clone, Debug, Deserialize)]
pub struct UserOrgMembership {
    pub id: String,
    #[serde(default)]
    pub role: Option<String>,
    pub organization: Organization,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub profile: Option<OrgProfile>,
}

/// `name` is the label; `machine_name` the name (pantheon-api.md §5.10).
#[derive(Clone, Debug, Deserialize)]
pub struct OrgProfile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub machine_name: Option<String>,
}

/// `sites/{site}/memberships/users` item.
#[derive(Clone, Debug, Deserialize)]
pub struct SiteUserMembership {
    pub id: String,
    #[serde(default)]
    pub role: Option<String>,
    pub user: User,
}

/// Decodes an error body: a JSON string (most errors), or the text as sent.
#[must_use]
pub fn error_message(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::String(s)) => s.trim().to_owned(),
        _ => body.trim().to_owned(),
    }
}

/// Accepts booleans, 0/1 and null (`frozen`, `locked` and `is_initialized` vary in type).
fn truthy<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        serde_json::Value::String(s) => !s.is_empty() && s != "0" && s != "false",
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let session: Session =
            serde_json::from_str(r#"{"session":"abc:def:ghi","expires_at":1,"user_id":"u"}"#).unwrap();
        assert!(!format!("{session:?}").contains("abc"));
        assert_eq!(session.session.expose(), "abc:def:ghi");
    }

    #[test]
    fn failure_reasons_in_order() {
        let wf = |final_task: &str, active: &str| -> Workflow {
            serde_json::from_str(&format!(
                r#"{{"id":"w","type":"deploy","result":"failed","final_task":{final_task},"active_description":{active}}}"#
            ))
            .unwrap()
        };
        assert_eq!(wf(r#"{"reason":"boom"}"#, "null").failure_reason(), "boom");
        assert_eq!(
            wf(r#"{"reason":"","messages":{"2020-01-01":{"message":"old"},"2020-01-02":{"message":"new"}}}"#, "null")
                .failure_reason(),
            "new"
        );
        assert_eq!(wf("null", r#""Site needs to be paid for""#).failure_reason(), "Site needs to be paid for");
        assert_eq!(wf("null", "null").failure_reason(), "Workflow failed.");
    }

    #[test]
    fn lock_passwords_in_params_never_print() {
        let wf: Workflow = serde_json::from_str(
            r#"{"id":"w","type":"lock_environment","params":{"username":"u","password":"hunter2","nested":{"db_password":"x"}}}"#,
        )
        .unwrap();
        let shown = format!("{wf:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("\"x\""), "{shown}");
        assert_eq!(wf.params.unwrap().get("password").and_then(|v| v.as_str()), Some("hunter2"));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(error_message(r#""A site named x was not found.""#), "A site named x was not found.");
        assert_eq!(error_message("Not found.\n"), "Not found.");
    }
}

//! Starting a workflow without ever starting it twice: the POST, and after an answer that was
//! lost, the site's list read back for the workflow it may have started (see the module above).

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{StartWorkflow, WorkflowScope};
use crate::api::wire::Workflow;
use crate::api::{ApiClient, ApiError, ApiErrorKind, Repeat};

/// How far back a reconciled workflow's `created_at` (platform time) may be before the POST
/// (our time, moved to the platform's by its `Date` headers): the `Date` header's whole
/// seconds and request latency, with room to spare.
pub(crate) const ADOPT_WINDOW_SECS: f64 = 120.0;

impl ApiClient {
    /// Starts a workflow, never twice (see the module docs). `posted_at` is when the caller
    /// recorded the attempt (unix seconds), the lower bound for adopting.
    ///
    /// # Errors
    /// The platform refusing the workflow (4xx), or a failure after which no matching
    /// workflow exists.
    pub async fn start_workflow(&self, start: &StartWorkflow, posted_at: f64) -> Result<Workflow, ApiError> {
        let site = start.scope.site_id();
        let segments: Vec<&str> = match &start.scope {
            WorkflowScope::Env { env, .. } => vec!["sites", site, "environments", env, "workflows"],
            WorkflowScope::Site { .. } => vec!["sites", site, "workflows"],
        };
        let label = format!("POST /api/{}", segments.join("/"));
        let body = serde_json::json!({ "type": start.kind.as_str(), "params": start.params });
        let config = self.config();
        let began = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = crate::api::unix_now();
            let error = match self.send(Method::POST, &segments, &[], Some(&body), Repeat::OnlyIfRefused).await {
                // Any answer that is not a workflow (an HTML page from a proxy, a cut body)
                // says nothing of whether the platform acted: look for the workflow.
                Ok(reply) => match reply.json::<Workflow>(&label) {
                    Ok(workflow) => {
                        if let Some(created_at) = workflow.created_at {
                            self.observe_workflow_clock(created_at, sent, crate::api::unix_now());
                        }
                        self.claim(&workflow.id);
                        debug!(workflow = %workflow.id, kind = %start.kind, site, "workflow started");
                        return Ok(workflow);
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if !may_have_started(&error) {
                return Err(error);
            }
            info!(kind = %start.kind, site, "the workflow POST may have reached the platform ({error}); looking for it");
            let wait = crate::api::backoff(config.backoff, tries);
            match self.find_started(start, posted_at).await {
                Ok(Some(workflow)) => return Ok(workflow),
                Ok(None) if resend_when_absent(&error) => {}
                // Not found after a lost answer (the platform may still be acting), or the
                // list could not be read: never sent again blindly.
                Ok(None) => return Err(error),
                Err(list_error) => {
                    warn!("cannot list the site's workflows to reconcile: {list_error}");
                    return Err(error);
                }
            }
            // An error status the platform answered: it has finished with the request, and the
            // list shows it did not act, so the POST is sent again within the request's budget.
            if tries >= config.attempts || began.elapsed() + wait > config.budget {
                let last = Box::new(error.cause().clone());
                return Err(ApiError::new(&label, ApiErrorKind::Exhausted { attempts: tries, last }));
            }
            tokio::time::sleep(wait).await;
            // A gateway's error may come before the platform behind it has finished: look
            // once more before sending again.
            if gateway(&error)
                && let Ok(Some(workflow)) = self.find_started(start, posted_at).await
            {
                return Ok(workflow);
            }
            debug!(kind = %start.kind, site, attempt = tries + 1, "no workflow was started: sending the POST again");
        }
    }

    /// Looks for a workflow a POST of `start` at `posted_at` created, and claims it.
    pub async fn find_started(&self, start: &StartWorkflow, posted_at: f64) -> Result<Option<Workflow>, ApiError> {
        let user_id = self.user_id().await?;
        let list = self.workflows(start.scope.site_id()).await?;
        // `posted_at` is our clock; the workflows' `created_at` is the platform's. The list
        // just read told its clock (`Date`), so the window is compared in the platform's time.
        let posted_at = posted_at + self.platform_clock_offset();
        let found = list.into_iter().find(|w| matches_start(w, start, &user_id, posted_at) && !self.is_claimed(&w.id));
        Ok(found.filter(|w| self.claim(&w.id)).inspect(|w| debug!(workflow = %w.id, "adopted a started workflow")))
    }
}

/// An answer after which a POST is sent again when the site's list shows no workflow of it:
/// an error status (the platform answered, so it is done with the request). Never after a
/// timeout, a dropped connection or an answer that is not the API's, which leave the request
/// perhaps still being acted on.
pub(super) fn resend_when_absent(error: &ApiError) -> bool {
    matches!(error.cause(), ApiErrorKind::Status { code, .. } if *code >= 500)
}

/// A gateway's 5xx (502, 504): the platform behind it may answer later than the gateway did.
pub(super) fn gateway(error: &ApiError) -> bool {
    matches!(error.status(), Some(502 | 504))
}

/// A failure after which the platform may have created the workflow anyway.
pub(super) fn may_have_started(error: &ApiError) -> bool {
    match error.cause() {
        ApiErrorKind::Timeout { .. } | ApiErrorKind::Dropped { .. } | ApiErrorKind::Decode { .. } => true,
        ApiErrorKind::Status { code, .. } => *code >= 500,
        _ => false,
    }
}

pub(super) fn matches_start(w: &Workflow, start: &StartWorkflow, user_id: &str, posted_at: f64) -> bool {
    if w.kind != start.kind.as_str() || w.user_id.as_deref() != Some(user_id) {
        return false;
    }
    let param = |key: &str| w.params.as_ref().and_then(|p| p.get(key)).and_then(Value::as_str);
    let env_ok = match &start.scope {
        WorkflowScope::Env { env, .. } => w.environment_id.as_deref() == Some(env.as_str()),
        WorkflowScope::Site { env: Some(env), .. } => param("environment_id") == Some(env.as_str()),
        WorkflowScope::Site { env: None, .. } => true,
    };
    let annotation = param("annotation").or_else(|| {
        w.params.as_ref().and_then(|p| p.get("deploy")).and_then(|d| d.get("annotation")).and_then(Value::as_str)
    });
    // The marker names the first run and the task: a workflow carrying it is this task's, and
    // the ones earlier attempts started are known (claimed), so no clock is needed, which
    // matters when the platform's clock cannot be known (a proxy's `Date`). Without a
    // marker, the time bound keeps out older workflows of the same type.
    let marked = start.marker.as_deref().map(|marker| annotation.is_some_and(|a| a.contains(marker)));
    let recent = || w.created_at.is_some_and(|t| t >= posted_at - ADOPT_WINDOW_SECS);
    env_ok
        && match marked {
            Some(carries) => carries,
            None => recent(),
        }
}

// ---- the shared poller ------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::super::WorkflowType;
    use super::*;

    fn workflow(json: &str) -> Workflow {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn adoption_matches_type_env_user_window_and_marker() {
        let start = StartWorkflow {
            scope: WorkflowScope::Env { site_id: "s".into(), env: "live".into() },
            kind: WorkflowType::Deploy,
            params: Value::Null,
            marker: Some("[tb:r1:deploy[a.live]]".into()),
        };
        let ok = r#"{"id":"w","type":"deploy","user_id":"u","created_at":1000.0,"environment_id":"live",
            "params":{"annotation":"Weekly [tb:r1:deploy[a.live]]"}}"#;
        assert!(matches_start(&workflow(ok), &start, "u", 1050.0));
        assert!(!matches_start(&workflow(ok), &start, "other", 1050.0), "another user");
        assert!(matches_start(&workflow(ok), &start, "u", 1200.0), "its marker says it is ours, whatever the clocks");
        assert!(!matches_start(&workflow(&ok.replace("\"live\"", "\"test\"")), &start, "u", 1050.0));
        assert!(!matches_start(&workflow(&ok.replace("r1", "r2")), &start, "u", 1050.0), "another run's marker");
        let site = StartWorkflow {
            scope: WorkflowScope::Site { site_id: "s".into(), env: Some("ci-1".into()) },
            kind: WorkflowType::CreateCloudDevelopmentEnvironment,
            params: Value::Null,
            marker: None,
        };
        let md = r#"{"id":"w","type":"create_cloud_development_environment","user_id":"u","created_at":1000.0,
            "params":{"environment_id":"ci-1"}}"#;
        assert!(matches_start(&workflow(md), &site, "u", 1000.0));
        assert!(!matches_start(&workflow(md), &site, "u", 1200.0), "without a marker, too old");
        assert!(!matches_start(&workflow(&md.replace("ci-1", "ci-2")), &site, "u", 1000.0));
    }
}

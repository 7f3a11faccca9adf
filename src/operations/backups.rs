//! Backup operations: `backup:create` (pantheon-api.md §5.4).

use serde_json::json;

use super::api::workflows::{StartWorkflow, WorkflowScope};
use super::{OpContext, OpError, OpOutput, Ops, Target, env_of};
use crate::plan::ops::BackupElement;

/// `backup:create SITE.ENV [--element] [--keep-for]`: env workflow `do_export`.
pub(super) async fn create(
    ops: &Ops,
    target: &Target,
    element: BackupElement,
    keep_for_days: u32,
    ctx: &impl OpContext,
) -> Result<OpOutput, OpError> {
    let env = env_of(target)?;
    let all = element == BackupElement::All;
    let params = json!({
        "code": all || element == BackupElement::Code,
        "database": all || element == BackupElement::Database,
        "files": all || element == BackupElement::Files,
        "entry_type": "backup",
        "ttl": u64::from(keep_for_days) * 86_400,
    });
    let start = StartWorkflow {
        scope: WorkflowScope::Env { site_id: target.site_id.clone(), env: env.to_owned() },
        kind: "do_export".to_owned(),
        params,
        marker: None,
    };
    ops.run_workflow(&start, ctx).await?;
    Ok(OpOutput { changed: true, message: "backup created".to_owned(), data: None })
}

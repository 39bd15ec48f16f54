//! What wakes objects waiting for quota, and the Workspace whose usage changed: a Job
//! or Sandbox whose phase changed or that was deleted (room may have freed), and a
//! Workspace changed or deleted (its quotas may allow more, or no longer apply). The
//! waiting ones are all queued; admission lets only those first in line start.

use std::sync::Arc;

use serde_json::Value;
use tracing::warn;

use super::admission;
use crate::controller::Context;
use crate::controller::reconcile::read_status;
use crate::resources::job::JobStatus;
use crate::resources::sandbox::SandboxStatus;
use crate::resources::{Kind, ObjectKey};
use crate::store::{StoreError, WatchEvent, WatchEventType};

/// Called for every change the controllers see.
pub fn on_change(ctx: &Arc<Context>, event: &WatchEvent) {
    if !admission::enforced(ctx) {
        return;
    }
    let obj = &event.object;
    let deleted = event.type_ == WatchEventType::Deleted;
    let namespace = match obj.kind {
        Kind::Job | Kind::Sandbox => {
            if deleted {
                ctx.admitted.release(&obj.metadata.uid);
            } else if !phase_changed(event) {
                return;
            }
            obj.metadata.namespace.clone().unwrap_or_default()
        }
        Kind::Workspace => {
            if !deleted && spec_unchanged(event) {
                return;
            }
            if !deleted {
                ctx.queue.add(obj.key());
            }
            obj.metadata.name.clone()
        }
        _ => return,
    };
    let force = obj.kind == Kind::Workspace;
    let ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        if let Err(e) = wake_workspace(&ctx, &namespace, force).await {
            warn!(%namespace, error = %e, "cannot wake the objects waiting for quota");
        }
    });
}

fn phase(value: &Value) -> Option<&Value> {
    value.get("phase")
}

/// A phase change is what frees or takes room; other status writes do not.
fn phase_changed(event: &WatchEvent) -> bool {
    match event.previous.as_deref() {
        Some(before) => phase(&before.status) != phase(&event.object.status),
        None => true,
    }
}

fn spec_unchanged(event: &WatchEvent) -> bool {
    event
        .previous
        .as_deref()
        .is_some_and(|before| before.spec == event.object.spec)
}

/// Queues the workspace `namespace` (its usage) and every Job and Sandbox in it that
/// waits for quota. Without a Workspace there are no quotas, so nothing waits, unless
/// the Workspace was just deleted (`force`).
async fn wake_workspace(ctx: &Context, namespace: &str, force: bool) -> Result<(), StoreError> {
    let key = ObjectKey::new(Kind::Workspace, "", namespace);
    match ctx.store.get(&key).await? {
        Some(_) => ctx.queue.add(key),
        None if !force => return Ok(()),
        None => {}
    }
    let (jobs, _) = ctx.store.list(Kind::Job, Some(namespace)).await?;
    for job in jobs {
        if read_status::<JobStatus>(&job.key(), &job)
            .is_ok_and(|s| admission::job_waits_for_quota(&s))
        {
            ctx.queue.add(job.key());
        }
    }
    let (sandboxes, _) = ctx.store.list(Kind::Sandbox, Some(namespace)).await?;
    for sandbox in sandboxes {
        if read_status::<SandboxStatus>(&sandbox.key(), &sandbox)
            .is_ok_and(|s| admission::sandbox_waits_for_quota(&s))
        {
            ctx.queue.add(sandbox.key());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::Object;

    fn modified(before: &Object, after: &Object) -> WatchEvent {
        WatchEvent {
            type_: WatchEventType::Modified,
            object: after.clone(),
            previous: Some(Arc::new(before.clone())),
        }
    }

    #[test]
    fn only_a_phase_change_frees_or_takes_room() {
        let mut before = Object::new(Kind::Job, "team-a", "j", json!({}));
        before.status = json!({"phase": "Running", "summary": "step 1"});
        let mut progress = before.clone();
        progress.status = json!({"phase": "Running", "summary": "step 2"});
        assert!(!phase_changed(&modified(&before, &progress)));
        let mut done = before.clone();
        done.status = json!({"phase": "Succeeded"});
        assert!(phase_changed(&modified(&before, &done)));
    }

    #[test]
    fn a_workspace_status_write_wakes_nothing_and_a_quota_change_does() {
        let before = Object::new(
            Kind::Workspace,
            "",
            "team-a",
            json!({"quotas": {"concurrentJobs": 1}}),
        );
        let mut counted = before.clone();
        counted.status = json!({"members": 0});
        assert!(spec_unchanged(&modified(&before, &counted)));
        let raised = Object::new(
            Kind::Workspace,
            "",
            "team-a",
            json!({"quotas": {"concurrentJobs": 2}}),
        );
        assert!(!spec_unchanged(&modified(&before, &raised)));
    }
}

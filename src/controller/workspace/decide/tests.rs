use chrono::Utc;

use super::*;
use crate::controller::workspace::quota::{Demand, Limits, Member, Standing};
use crate::resources::workspace::{Member as WorkspaceMember, Quotas, Role, WorkspaceSpec};

fn observed(quotas: Option<Quotas>, members: Vec<Member>) -> Observed {
    let spec = WorkspaceSpec {
        quotas: quotas.clone(),
        members: vec![WorkspaceMember {
            name: "alice".into(),
            role: Role::Admin,
        }],
        ..Default::default()
    };
    Observed {
        generation: 3,
        workspace: Workspace {
            name: "team-a".into(),
            limits: quotas.as_ref().map(Limits::of).unwrap_or_default(),
            spec,
        },
        snapshot: Snapshot {
            members,
            run_starts: vec![],
        },
        status: WorkspaceStatus::default(),
        now: Utc::now(),
    }
}

fn job(name: &str, standing: Standing, cpu_millis: u64) -> Member {
    Member {
        uid: name.into(),
        created: Utc::now(),
        name: name.into(),
        standing,
        demand: Demand {
            jobs: 1,
            cpu_millis,
            ..Default::default()
        },
    }
}

#[test]
fn usage_counts_what_holds_against_each_quota_set() {
    let quotas = Quotas {
        concurrent_jobs: Some(2),
        cpu: Some("2".into()),
        ..Default::default()
    };
    let obs = observed(
        Some(quotas),
        vec![
            job("a", Standing::Holding, 600),
            job("b", Standing::Holding, 600),
            job("c", Standing::Waiting, 600),
            job("d", Standing::Idle, 600),
        ],
    );
    let d = decide(&obs);
    let usage = &d.status.usage;
    assert_eq!(usage.len(), 2, "{usage:?}");
    assert_eq!(usage["concurrentJobs"].used, "2");
    assert_eq!(usage["concurrentJobs"].hard, "2");
    assert_eq!(usage["cpu"].used, "1200m");
    assert_eq!(usage["cpu"].hard, "2");
    assert_eq!(
        d.status.summary.as_deref(),
        Some("concurrentJobs 2/2, cpu 1200m/2")
    );
    assert_eq!(d.status.members, 1);
    assert_eq!(d.status.waiting, 1);
    assert_eq!(d.status.observed_generation, Some(3));
    assert_eq!(d.status.conditions[0].status, ConditionStatus::True);
    assert_eq!(d.requeue_after, None);
}

#[test]
fn deciding_again_on_the_same_use_changes_nothing_so_nothing_is_written() {
    let quotas = Quotas {
        runs_per_hour: Some(10),
        ..Default::default()
    };
    let mut obs = observed(Some(quotas), vec![]);
    let first = decide(&obs);
    obs.status = first.status.clone();
    obs.now += chrono::TimeDelta::seconds(5);
    let second = decide(&obs);
    assert_eq!(first.status, second.status);
    assert_eq!(second.requeue_after, Some(RUN_WINDOW_RECOUNT));
}

#[test]
fn a_workspace_without_quotas_is_ready_with_no_usage() {
    let d = decide(&observed(None, vec![job("a", Standing::Holding, 0)]));
    assert!(d.status.usage.is_empty());
    assert_eq!(d.status.summary, None);
    assert!(d.status.conditions[0].message.contains("no quotas"));
}

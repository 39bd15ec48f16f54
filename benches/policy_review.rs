//! What one write's review by the live policies costs, without the server around it:
//! the bench's Workflow and Job reviewed by the 50 policies of `bench api`'s policy
//! phase, against the same write reviewed by none. `cargo bench --bench policy_review`.

use std::time::{Duration, Instant};

use orcaops::policy::PolicySet;
use orcaops::resources::{Kind, Object};
use serde_json::json;

fn policies(n: usize) -> Vec<Object> {
    (0..n)
        .map(|i| {
            let mut spec = json!({
                "mode": "Enforce",
                "workspaces": ["bench", "other-*"],
                "images": { "deny": [format!("*miner-{i}*")], "registries": ["docker.io"] },
                "commands": { "deny": [format!("*rm -rf /{i}*")] },
                "allowNetwork": ["none", "bridge"],
            });
            if i % 5 == 0 {
                spec["rules"] = json!([{
                    "name": "short-names",
                    "expression": "object.metadata.name.size() < 200",
                    "message": "names are short",
                }]);
            }
            Object::new(Kind::Policy, "", &format!("bench-{i}"), spec)
        })
        .collect()
}

/// Reviews per second of `obj` by `set`, over `time`.
fn rate(set: &PolicySet, obj: &Object, time: Duration) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < time {
        for _ in 0..100 {
            let review = set.review(obj, None);
            assert!(!review.refused(), "{:?}", review.violations);
            n += 1;
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let time = if std::env::args().any(|a| a == "--bench") {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(50)
    };
    let workflow = Object::new(
        Kind::Workflow,
        "bench",
        "wf-1",
        json!({ "schedule": "0 3 1 1 *", "jobs": [{ "name": "a", "job": { "image": "busybox:latest", "steps": [{ "name": "s", "run": "true" }] } }] }),
    );
    let job = Object::new(
        Kind::Job,
        "bench",
        "job-1",
        json!({ "image": "busybox:latest", "suspend": true, "steps": [{ "name": "main", "run": "echo hi" }] }),
    );
    let none = PolicySet::build(&[], &[]);
    let fifty = PolicySet::build(&policies(50), &[]);
    let no_cel = PolicySet::build(
        &policies(50)
            .into_iter()
            .map(|mut p| {
                p.spec.as_object_mut().unwrap().remove("rules");
                p
            })
            .collect::<Vec<_>>(),
        &[],
    );
    for (what, obj) in [("Workflow", &workflow), ("Job", &job)] {
        let per = |set: &PolicySet| 1e6 / rate(set, obj, time);
        println!(
            "review of a {what}: no policies {:.2} µs, 50 policies {:.1} µs, 50 policies without CEL rules {:.1} µs",
            per(&none),
            per(&fifty),
            per(&no_cel),
        );
    }
}

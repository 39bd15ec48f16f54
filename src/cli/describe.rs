//! `orcaops describe` and `orcaops history`: a resource as a person reads it.

use std::fmt::Write;

use reqwest::Method;

use super::output::{age, table, to_yaml};
use crate::client::{ApiClient, ClientError, exit, urlencode};
use crate::resources::job::{JobSpec, JobStatus};
use crate::resources::workspace::{WorkspaceDefaults, WorkspaceSpec, WorkspaceStatus};
use crate::resources::{Kind, Object, ObjectKey, keys};
use crate::store::Event;

fn ms(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| {
        format!(
            "{} ({} ago)",
            t.format("%Y-%m-%d %H:%M:%S UTC"),
            age(Some(t))
        )
    })
    .unwrap_or_else(|| "-".into())
}

/// A value as one table cell: its first line, at most 80 characters, `…` where cut.
fn one_line(value: &str) -> String {
    const MAX: usize = 80;
    let first = value.lines().next().unwrap_or_default();
    let cut = first.chars().count() > MAX || first.len() < value.trim_end_matches('\n').len();
    let mut shown: String = first.chars().take(MAX).collect();
    if cut {
        shown.push('…');
    }
    shown
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

pub async fn describe(client: &ApiClient, key: &ObjectKey) -> Result<u8, ClientError> {
    let obj = client.get_object(key).await?;
    let mut out = String::new();
    let m = &obj.metadata;
    let _ = writeln!(out, "Name:         {}", m.name);
    if let Some(ns) = &m.namespace {
        let _ = writeln!(out, "Workspace:    {ns}");
    }
    let _ = writeln!(out, "Kind:         {}", obj.kind);
    let _ = writeln!(out, "UID:          {}", m.uid);
    let _ = writeln!(out, "Generation:   {}", m.generation);
    let _ = writeln!(out, "Created:      {}", time(m.creation_timestamp));
    if let Some(source) = obj.source() {
        let _ = writeln!(out, "Source:       {source}");
    }
    for (title, map) in [("Labels:", &m.labels), ("Annotations:", &m.annotations)] {
        if !map.is_empty() {
            let _ = writeln!(out, "{title}");
            for (k, v) in map {
                let _ = writeln!(out, "  {k}={v}");
            }
        }
    }
    if obj.kind == Kind::Job {
        let defaults = workspace_defaults(client, m.namespace.as_deref()).await;
        describe_job_with(&mut out, &obj, defaults.as_ref());
    } else if obj.kind == Kind::Workspace {
        describe_workspace(&mut out, &obj);
    } else if obj.kind == Kind::Workflow {
        super::workflow::describe(&mut out, &obj);
    } else {
        let _ = writeln!(out, "Spec:");
        out.push_str(&indent(&to_yaml(&obj.spec), "  "));
        if !obj.status.is_null() {
            let _ = writeln!(out, "Status:");
            out.push_str(&indent(&to_yaml(&obj.status), "  "));
        }
    }
    let selector = urlencode(&format!(
        "involvedObject.kind={},involvedObject.name={}",
        key.kind, key.name
    ));
    let path = if key.namespace.is_empty() {
        format!("/api/v1/events?fieldSelector={selector}&limit=15")
    } else {
        format!(
            "/api/v1/namespaces/{}/events?fieldSelector={selector}&limit=15",
            key.namespace
        )
    };
    let events: Vec<Event> = client
        .json(Method::GET, &path, None)
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v.get("items").cloned().unwrap_or_default()).ok())
        .unwrap_or_default();
    let _ = writeln!(out, "Events:");
    if events.is_empty() {
        let _ = writeln!(out, "  <none>");
    } else {
        let mut rows = vec![vec![
            "TYPE".into(),
            "REASON".into(),
            "AGE".into(),
            "COUNT".into(),
            "MESSAGE".into(),
        ]];
        for e in events.iter().rev() {
            rows.push(vec![
                format!("{:?}", e.type_),
                e.reason.clone(),
                age(Some(e.last_timestamp)),
                e.count.to_string(),
                e.message.replace('\n', " "),
            ]);
        }
        out.push_str(&indent(&table(&rows), "  "));
    }
    print!("{out}");
    Ok(exit::OK)
}

/// The defaults of the workspace `namespace`, when it declares any.
async fn workspace_defaults(
    client: &ApiClient,
    namespace: Option<&str>,
) -> Option<WorkspaceDefaults> {
    let key = ObjectKey::new(Kind::Workspace, "", namespace?);
    let ws = client.get_object(&key).await.ok()?;
    let spec: WorkspaceSpec = serde_json::from_value(ws.spec).ok()?;
    spec.defaults
}

/// A Workspace: its quotas against what is in use (`status.usage`), its members, and
/// the defaults it gives, then its spec and status as YAML.
fn describe_workspace(out: &mut String, obj: &Object) {
    let status: WorkspaceStatus = serde_json::from_value(obj.status.clone()).unwrap_or_default();
    if !status.usage.is_empty() {
        let _ = writeln!(out, "Quotas:");
        let mut rows = vec![vec!["QUOTA".into(), "USED".into(), "HARD".into()]];
        for (quota, usage) in &status.usage {
            rows.push(vec![quota.clone(), usage.used.clone(), usage.hard.clone()]);
        }
        out.push_str(&indent(&table(&rows), "  "));
        if let Some(summary) = &status.summary {
            let _ = writeln!(out, "  Usage:        {summary}");
        }
        let _ = writeln!(out, "  Waiting:      {}", status.waiting);
    }
    let _ = writeln!(out, "Members:      {}", status.members);
    let _ = writeln!(out, "Spec:");
    out.push_str(&indent(&to_yaml(&obj.spec), "  "));
    if !obj.status.is_null() {
        let _ = writeln!(out, "Status:");
        out.push_str(&indent(&to_yaml(&obj.status), "  "));
    }
}

#[cfg(test)]
fn describe_job(out: &mut String, obj: &Object) {
    describe_job_with(out, obj, None);
}

/// A Job, with what its workspace's `defaults` fill in marked as such.
fn describe_job_with(out: &mut String, obj: &Object, defaults: Option<&WorkspaceDefaults>) {
    let mut spec: JobSpec = serde_json::from_value(obj.spec.clone()).unwrap_or_default();
    let defaulted = defaults
        .map(|d| d.apply_to_job(&mut spec, &obj.spec))
        .unwrap_or_default();
    let from_workspace = |yes: bool| if yes { " (workspace default)" } else { "" };
    let status: JobStatus = serde_json::from_value(obj.status.clone()).unwrap_or_default();
    let _ = writeln!(out, "Spec:");
    let _ = writeln!(out, "  Image:        {}", spec.image);
    if let Some(dir) = &spec.working_dir {
        let _ = writeln!(out, "  Working dir:  {dir}");
    }
    let _ = writeln!(
        out,
        "  Network:      {:?}{}",
        spec.network,
        from_workspace(defaulted.network)
    );
    if let Some(r) = &spec.resources {
        let _ = writeln!(
            out,
            "  Resources:    cpu={} memory={}{}",
            r.cpu.as_deref().unwrap_or("-"),
            r.memory.as_deref().unwrap_or("-"),
            from_workspace(defaulted.resources)
        );
    }
    if let Some(t) = spec.timeout_seconds {
        let _ = writeln!(
            out,
            "  Timeout:      {t}s{}",
            from_workspace(defaulted.timeout_seconds)
        );
    }
    if let Some(r) = &spec.retry {
        let _ = writeln!(
            out,
            "  Retry:        up to {} (backoff {}s, max {}s)",
            r.limit, r.backoff_seconds, r.max_backoff_seconds
        );
    }
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        let _ = writeln!(out, "  TTL:          {ttl}s after finishing");
    }
    if spec.suspend {
        let _ = writeln!(out, "  Suspended:    true");
    }
    for e in &spec.env {
        match e.secret_ref() {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "  Env:          {} from secret {} key {}",
                    e.name, r.name, r.key
                );
            }
            None => {
                let _ = writeln!(out, "  Env:          {}={}", e.name, e.value);
            }
        }
    }
    let _ = writeln!(out, "  Steps:");
    for (i, s) in spec.steps.iter().enumerate() {
        let what = match (&s.run, &s.command) {
            (Some(run), _) => {
                run.lines().next().unwrap_or("").to_string()
                    + if run.lines().count() > 1 { " …" } else { "" }
            }
            (_, Some(cmd)) => format!("{cmd:?}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "    {}. {}: {what}", i + 1, s.name);
    }
    for a in &spec.artifacts {
        let _ = writeln!(
            out,
            "  Artifact:     {} <- {}{}",
            a.name,
            a.path,
            if a.optional { " (optional)" } else { "" }
        );
    }
    let _ = writeln!(out, "Status:");
    let _ = writeln!(
        out,
        "  Phase:        {}",
        if obj.status.is_null() {
            "Pending"
        } else {
            status.phase.as_str()
        }
    );
    if let Some(run) = status.run {
        let _ = writeln!(
            out,
            "  Run:          {run} (attempt {})",
            status.attempt.unwrap_or(1)
        );
    }
    if let Some(s) = &status.summary {
        let _ = writeln!(out, "  Summary:      {s}");
    }
    let _ = writeln!(out, "  Started:      {}", time(status.start_time));
    let _ = writeln!(out, "  Completed:    {}", time(status.completion_time));
    if let Some(next) = status.next_attempt_time {
        let _ = writeln!(out, "  Next attempt: {}", next.format("%H:%M:%S UTC"));
    }
    if let Some(c) = &status.container {
        let _ = writeln!(out, "  Container:    {c}");
    }
    if let Some(run) = obj.metadata.annotations.get(keys::CANCEL) {
        let _ = writeln!(out, "  Cancel:       requested for run {run}");
    }
    if !status.steps.is_empty() {
        let _ = writeln!(out, "Steps:");
        let mut rows = vec![vec!["NAME".into(), "EXIT".into(), "DURATION".into()]];
        for s in &status.steps {
            rows.push(vec![
                s.name.clone(),
                s.exit_code.map_or("-".into(), |c| c.to_string()),
                ms(s.duration_ms),
            ]);
        }
        out.push_str(&indent(&table(&rows), "  "));
        for s in status.steps.iter().filter(|s| !s.errors.is_empty()) {
            let _ = writeln!(out, "  Errors in {}:", s.name);
            for e in &s.errors {
                let _ = writeln!(out, "    line {}: {}", e.line, e.text);
            }
        }
        for s in status.steps.iter().filter(|s| !s.output_tail.is_empty()) {
            let _ = writeln!(out, "  Output of {} (tail):", s.name);
            out.push_str(&indent(&s.output_tail, "    │ "));
        }
    }
    if let Some(usage) = &status.usage {
        let mut parts = Vec::new();
        if let Some(cpu) = usage.cpu_millis {
            parts.push(format!("{:.2} s CPU", cpu as f64 / 1000.0));
        }
        if let Some(peak) = usage.peak_memory_bytes {
            parts.push(format!("{:.1} MiB peak memory", peak as f64 / 1048576.0));
        }
        parts.push(format!("{} bytes of output", usage.output_bytes));
        let _ = writeln!(out, "Usage:        {} (last attempt)", parts.join(", "));
    }
    if !status.anomalies.is_empty() {
        let _ = writeln!(out, "Anomalies:");
        for a in &status.anomalies {
            let _ = writeln!(out, "  {} (run {}): {}", a.kind.as_str(), a.run, a.message);
        }
    }
    if !status.outputs.is_empty() {
        let _ = writeln!(out, "Outputs:");
        let mut rows = vec![vec!["KEY".into(), "VALUE".into()]];
        for (key, value) in &status.outputs {
            rows.push(vec![key.clone(), one_line(value)]);
        }
        out.push_str(&indent(&table(&rows), "  "));
    }
    if !status.artifacts.is_empty() {
        let _ = writeln!(out, "Artifacts:");
        let mut rows = vec![vec!["NAME".into(), "SIZE".into(), "SHA256".into()]];
        for a in &status.artifacts {
            rows.push(vec![a.name.clone(), a.size.to_string(), a.sha256.clone()]);
        }
        out.push_str(&indent(&table(&rows), "  "));
    }
    if !status.history.is_empty() {
        let _ = writeln!(
            out,
            "History ({} of {} runs):",
            status.history.len(),
            status.total_runs
        );
        let mut rows = vec![
            [
                "RUN", "GEN", "PHASE", "STARTED", "DURATION", "EXIT", "ATTEMPTS",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for h in &status.history {
            rows.push(vec![
                h.run.to_string(),
                h.generation.to_string(),
                h.phase.as_str().into(),
                age(h.start_time) + " ago",
                ms(h.duration_ms),
                h.exit_code.map_or("-".into(), |c| c.to_string()),
                h.attempts.to_string(),
            ]);
        }
        out.push_str(&indent(&table(&rows), "  "));
    }
    if !status.conditions.is_empty() {
        let _ = writeln!(out, "Conditions:");
        let mut rows = vec![
            ["TYPE", "STATUS", "REASON", "LAST TRANSITION"]
                .map(String::from)
                .to_vec(),
        ];
        for c in &status.conditions {
            rows.push(vec![
                format!("{:?}", c.type_),
                format!("{:?}", c.status),
                c.reason.clone(),
                age(Some(c.last_transition_time)) + " ago",
            ]);
        }
        out.push_str(&indent(&table(&rows), "  "));
    }
}

pub async fn history(client: &ApiClient, key: &ObjectKey) -> Result<u8, ClientError> {
    let runs = crate::client::run::job_runs(client, key).await?;
    if runs.is_empty() {
        eprintln!("job {} has no finished runs yet.", key.name);
        return Ok(exit::OK);
    }
    let mut rows = vec![
        [
            "RUN", "GEN", "PHASE", "STARTED", "DURATION", "EXIT", "ATTEMPTS", "SUMMARY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in &runs {
        let duration = match (r.start_time, r.completion_time) {
            (Some(s), Some(c)) => Some((c - s).num_milliseconds().max(0) as u64),
            _ => None,
        };
        rows.push(vec![
            r.run.to_string(),
            r.generation.to_string(),
            r.phase.as_str().into(),
            r.start_time
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            ms(duration),
            r.exit_code.map_or("-".into(), |c| c.to_string()),
            r.attempts.to_string(),
            r.summary.clone(),
        ]);
    }
    print!("{}", table(&rows));
    // The newest run the summariser explained (`serve --summarizer-url`).
    if let Some(r) = runs.iter().find(|r| r.explanation.is_some()) {
        println!(
            "\nWhy run {} failed (the summariser's words):\n  {}",
            r.run,
            r.explanation.as_deref().unwrap_or_default()
        );
    }
    let ok = runs
        .iter()
        .filter(|r| r.phase == crate::resources::job::JobPhase::Succeeded)
        .count();
    println!(
        "\n{} runs: {ok} succeeded, {} did not",
        runs.len(),
        runs.len() - ok
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_shows_its_outputs_one_line_each() {
        let mut obj = Object::new(
            Kind::Job,
            "default",
            "build",
            serde_json::json!({"image": "busybox", "steps": []}),
        );
        let status = JobStatus {
            outputs: [
                ("version".to_string(), "1.2".to_string()),
                ("notes".to_string(), "first\nsecond".to_string()),
                ("long".to_string(), "x".repeat(100)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        obj.status = serde_json::to_value(&status).unwrap();
        let mut out = String::new();
        describe_job(&mut out, &obj);
        let outputs = out.split_once("Outputs:\n").expect(&out).1;
        let rows: Vec<&str> = outputs.lines().take(4).collect();
        assert!(
            rows[0].contains("KEY") && rows[0].contains("VALUE"),
            "{out}"
        );
        assert!(
            rows[1].starts_with("  long") && rows[1].ends_with(&format!("{}…", "x".repeat(80))),
            "{out}"
        );
        assert!(
            rows[2].starts_with("  notes") && rows[2].ends_with("first…"),
            "{out}"
        );
        assert!(
            rows[3].starts_with("  version") && rows[3].ends_with("1.2"),
            "{out}"
        );
    }

    #[test]
    fn what_the_workspace_fills_in_is_marked_as_its_default() {
        let obj = Object::new(
            Kind::Job,
            "team-a",
            "j",
            serde_json::json!({"image": "busybox", "steps": [{"name": "s", "run": "true"}],
                               "resources": {"cpu": "1"}}),
        );
        let defaults = WorkspaceDefaults {
            timeout_seconds: Some(600),
            network: Some(crate::resources::job::JobNetwork::Bridge),
            resources: Some(crate::resources::common::Resources {
                cpu: Some("2".into()),
                memory: None,
            }),
            ..Default::default()
        };
        let mut out = String::new();
        describe_job_with(&mut out, &obj, Some(&defaults));
        assert!(
            out.contains("Timeout:      600s (workspace default)"),
            "{out}"
        );
        assert!(
            out.contains("Network:      Bridge (workspace default)"),
            "{out}"
        );
        // The job's own resources win, and are not marked.
        assert!(out.contains("Resources:    cpu=1 memory=-\n"), "{out}");
    }
}

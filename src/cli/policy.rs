//! `orcaops policy`: what the policies found (`report`), and what they would say of a
//! file before it is applied (`test`, a server-side dry run per document).

use clap::{Args, Subcommand};

use super::apply::{collect_files, load};
use super::output::{age, table};
use crate::client::{ApiClient, ClientError, exit};
use crate::resources::policy::{PolicySpec, PolicyStatus, ViolationEntry};
use crate::resources::{Kind, Object};

pub const AFTER_HELP: &str = "Examples:\n  \
    orcaops policy report\n  \
    orcaops policy report --policy no-latest-tags\n  \
    orcaops policy report --workspace team-a -o json\n  \
    orcaops policy test -f jobs/build.yaml\n  \
    orcaops policy test -f ci/ -n team-a\n\n\
    A Policy is checked on every door: the API (and so apply, run, MCP), the watched \
    folder, `orcaops sync`, and once more before a Job or Sandbox starts. Enforce refuses \
    the write (exit code 4); Warn accepts it and prints `Warning:` lines; Audit accepts it \
    and records it. `policy report` reads what each policy found from its status (counts \
    by action and rule, and the newest finding per rule and object); `policy test` sends \
    every document of the files as a server-side dry run (dryRun=All), prints what the \
    live policies say of each, and writes nothing. See docs/policies.md.";

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// What each policy found: refused, warned and audited counts, by rule, and the newest.
    Report(ReportArgs),
    /// Check files against the live policies without writing anything (exit 4 if refused).
    Test(TestArgs),
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Only this policy.
    #[arg(long, short = 'p')]
    pub policy: Option<String>,
    /// Only the policies covering this workspace, and only findings in it.
    #[arg(long, short = 'w')]
    pub workspace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_parser = ["table", "json"], default_value = "table")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// A YAML file, a directory (every .yaml/.yml under it), or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Workspace for objects that do not name one.
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace")]
    pub namespace: Option<String>,
}

pub async fn policy(client: &ApiClient, args: PolicyArgs) -> Result<u8, ClientError> {
    match args.command {
        PolicyCommand::Report(args) => report(client, args).await,
        PolicyCommand::Test(args) => test(client, args).await,
    }
}

/// One policy's report, filtered as asked.
struct Found {
    name: String,
    mode: String,
    status: PolicyStatus,
}

async fn report(client: &ApiClient, args: ReportArgs) -> Result<u8, ClientError> {
    let (policies, _) = client.list(Kind::Policy, None, None).await?;
    if let Some(name) = &args.policy
        && !policies.iter().any(|p| &p.metadata.name == name)
    {
        return Err(ClientError::usage(format!(
            "policy \"{name}\" not found; `orcaops get policies` lists them"
        )));
    }
    let mut found = Vec::new();
    for obj in &policies {
        if args
            .policy
            .as_ref()
            .is_some_and(|p| p != &obj.metadata.name)
        {
            continue;
        }
        let spec: PolicySpec = serde_json::from_value(obj.spec.clone()).unwrap_or_default();
        let mut status: PolicyStatus =
            serde_json::from_value(obj.status.clone()).unwrap_or_default();
        if let Some(ws) = &args.workspace {
            if !covers(client, obj, &spec, ws).await? {
                continue;
            }
            // Counts are the policy's; the findings listed are the workspace's.
            if let Some(report) = status.violations.as_mut() {
                report.recent.retain(|e| in_workspace(e, ws));
            }
        }
        found.push(Found {
            name: obj.metadata.name.clone(),
            mode: spec.mode.as_str().to_string(),
            status,
        });
    }
    if args.output == "json" {
        let value: Vec<_> = found
            .iter()
            .map(|f| {
                serde_json::json!({
                    "policy": f.name,
                    "mode": f.mode,
                    "violations": f.status.violations.clone().unwrap_or_default(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    if found.is_empty() {
        let scope = args
            .workspace
            .map(|w| format!(" covering workspace {w}"))
            .unwrap_or_default();
        println!("No policies{scope}.");
        return Ok(exit::OK);
    }
    print!("{}", summary_table(&found));
    for f in &found {
        let Some(report) = &f.status.violations else {
            continue;
        };
        if report.recent.is_empty() {
            continue;
        }
        println!("\n{} (newest first):", f.name);
        let mut rows = vec![vec![
            "RULE".into(),
            "OBJECT".into(),
            "ACTION".into(),
            "COUNT".into(),
            "LAST SEEN".into(),
            "DOOR".into(),
            "MESSAGE".into(),
        ]];
        rows.extend(report.recent.iter().map(|e| {
            vec![
                e.rule.clone(),
                e.object.clone(),
                e.action.clone(),
                e.count.to_string(),
                age(Some(e.last_seen)),
                e.door.clone(),
                format!("{}: {}", e.field, e.message),
            ]
        }));
        print!("{}", table(&rows));
    }
    Ok(exit::OK)
}

fn summary_table(found: &[Found]) -> String {
    let mut rows = vec![vec![
        "POLICY".into(),
        "MODE".into(),
        "REFUSED".into(),
        "WARNED".into(),
        "AUDITED".into(),
        "BY RULE".into(),
    ]];
    for f in found {
        let report = f.status.violations.clone().unwrap_or_default();
        let by_rule = report
            .by_rule
            .iter()
            .map(|(rule, n)| format!("{rule}={n}"))
            .collect::<Vec<_>>()
            .join(",");
        rows.push(vec![
            f.name.clone(),
            f.mode.clone(),
            report.refused.to_string(),
            report.warned.to_string(),
            report.audited.to_string(),
            if by_rule.is_empty() {
                "-".into()
            } else {
                by_rule
            },
        ]);
    }
    table(&rows)
}

/// Whether policy `obj` covers workspace `ws`: its patterns select it, or the Workspace
/// lists it.
async fn covers(
    client: &ApiClient,
    obj: &Object,
    spec: &PolicySpec,
    ws: &str,
) -> Result<bool, ClientError> {
    if crate::policy::Compiled::new(&obj.metadata.name, spec.clone()).selects(ws) {
        return Ok(true);
    }
    let key = crate::resources::ObjectKey::new(Kind::Workspace, "", ws);
    let Some(workspace) = client.find_object(&key).await? else {
        return Ok(false);
    };
    Ok(workspace
        .spec
        .get("policies")
        .and_then(|p| p.as_array())
        .is_some_and(|l| l.iter().any(|n| n.as_str() == Some(&obj.metadata.name))))
}

/// Whether a finding is about an object in workspace `ws` (`Kind/ws/name`).
fn in_workspace(entry: &ViolationEntry, ws: &str) -> bool {
    entry.object.split('/').nth(1) == Some(ws) && entry.object.split('/').count() == 3
}

async fn test(client: &ApiClient, args: TestArgs) -> Result<u8, ClientError> {
    let files = collect_files(&args.files)?;
    let (objects, errors) = load(&files, args.namespace.as_deref())?;
    for e in &errors {
        eprintln!("error: {e}");
    }
    if objects.is_empty() && errors.is_empty() {
        return Err(ClientError::usage("no objects found in the given files"));
    }
    let client = client.clone().keeping_warnings();
    let (mut refused, mut failed, mut warned) = (0, !errors.is_empty(), 0);
    for obj in &objects {
        let name = format!("{}.orcaops.dev/{}", obj.kind.singular(), obj.metadata.name);
        let answer = client.apply_with(obj, true).await;
        let warnings = client.take_warnings();
        match answer {
            Ok(_) if warnings.is_empty() => println!("{name}: allowed"),
            Ok(_) => {
                warned += 1;
                println!("{name}: allowed, with warnings");
                for w in &warnings {
                    println!("  warning: {w}");
                }
            }
            Err(ClientError::Policy(message)) => {
                refused += 1;
                println!("{name}: REFUSED");
                for line in message.lines().skip(1) {
                    println!("  {}", line.trim());
                }
            }
            Err(e @ ClientError::Unreachable(_)) => return Err(e),
            Err(e) => {
                failed = true;
                eprintln!("error: {name}: {e}");
            }
        }
    }
    println!(
        "\n{} object(s) checked: {} refused, {} with warnings; nothing was written",
        objects.len(),
        refused,
        warned
    );
    Ok(if failed {
        exit::USAGE
    } else if refused > 0 {
        exit::POLICY
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str) -> ViolationEntry {
        ViolationEntry {
            rule: "images.deny".into(),
            object: object.into(),
            field: "spec.image".into(),
            message: "m".into(),
            action: "refused".into(),
            door: "api".into(),
            count: 1,
            last_seen: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_finding_belongs_to_the_workspace_its_object_is_in() {
        assert!(in_workspace(&entry("Job/team-a/build"), "team-a"));
        assert!(!in_workspace(&entry("Job/team-b/build"), "team-a"));
        assert!(!in_workspace(&entry("Policy/team-a"), "team-a"));
    }
}

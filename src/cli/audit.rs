//! `orcaops audit`: check the audit log's chain (`verify`, on the files themselves), and
//! read it through the API (`tail`, `search`, `export`; server admins).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use reqwest::Method;

use super::output::table;
use crate::audit::{self, Entry};
use crate::client::{ApiClient, ClientError, exit, urlencode};

const LOG: &str = "/apis/orcaops.dev/v1alpha1/auditlog";

pub const AFTER_HELP: &str = "Examples:\n  \
    orcaops audit verify                      # the files of this machine's data dir\n  \
    orcaops audit verify --data-dir /var/lib/orcaops\n  \
    orcaops audit tail -n 50\n  \
    orcaops audit tail -f\n  \
    orcaops audit search --actor alice --verb delete --since 2026-12-01T00:00:00Z\n  \
    orcaops audit search --kind job --namespace team-a\n  \
    orcaops audit export > audit.jsonl\n\n\
    Every write, exec, cp, approve, reject, cancel and rerun, every key change and \
    Secret read, and every refused request (401, 403) is one entry: who (key, member, \
    agent), from where, when, what and the code answered. Each entry carries the \
    SHA-256 of the one before it and of itself, and the chain head is also kept in \
    audit/audit.head, so `verify` names the first entry edited, removed or reordered \
    (exit 0 with the count when intact, 1 when broken). tail, search and export read \
    through the API and take a server admin key. See docs/audit.md.";

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the whole chain of the log's files; name the first entry edited, removed or reordered.
    Verify(VerifyArgs),
    /// The newest entries; with -f, follow new ones as they come.
    Tail(TailArgs),
    /// Entries matching every filter given.
    Search(SearchArgs),
    /// Every entry (or those matching the filters) as JSON lines, oldest first.
    Export(SearchArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The server's data dir [default: $ORCAOPS_DATA_DIR or ~/.local/share/orcaops].
    #[arg(long, env = "ORCAOPS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    /// How many of the newest entries.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
    /// Keep printing new entries as they are recorded.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Args, Debug, Default)]
pub struct SearchArgs {
    /// A key (key:ID), a member or an agent label.
    #[arg(long)]
    pub actor: Option<String>,
    /// create, update, patch, delete, exec, cp, run, cancel, rerun, approve, reject, start,
    /// stop, read-secret, create-key, revoke-key, rotate-key, authenticate, ...
    #[arg(long)]
    pub verb: Option<String>,
    /// A kind or resource: job, jobs, sandbox, secrets, apikeys, ...
    #[arg(long)]
    pub kind: Option<String>,
    /// A workspace.
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace")]
    pub namespace: Option<String>,
    /// Entries at or after this time (RFC 3339, such as 2026-12-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Entries at or before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// At most this many, the newest.
    #[arg(long, default_value_t = 1_000)]
    pub limit: usize,
}

pub async fn audit(client: &ApiClient, args: AuditArgs) -> Result<u8, ClientError> {
    match args.command {
        AuditCommand::Verify(args) => verify(args),
        AuditCommand::Tail(args) => tail(client, args).await,
        AuditCommand::Search(args) => {
            let entries = fetch(client, &query(&args, None)).await?;
            print!("{}", entries_table(&entries));
            Ok(exit::OK)
        }
        AuditCommand::Export(args) => {
            let args = SearchArgs {
                limit: usize::MAX,
                ..args
            };
            for entry in fetch(client, &query(&args, None)).await? {
                println!("{}", serde_json::to_string(&entry).unwrap_or_default());
            }
            Ok(exit::OK)
        }
    }
}

fn verify(args: VerifyArgs) -> Result<u8, ClientError> {
    let data_dir = args.data_dir.unwrap_or_else(super::default_data_dir);
    let dir = data_dir.join(audit::DIR);
    if !dir.is_dir() {
        return Err(ClientError::usage(format!(
            "no audit log in {} (is --data-dir the server's data dir?)",
            data_dir.display()
        )));
    }
    match audit::verify(&dir).map_err(|e| ClientError::usage(e.to_string()))? {
        Ok(count) => {
            println!(
                "audit log intact: {count} entries, chain and head verified ({})",
                dir.display()
            );
            Ok(exit::OK)
        }
        Err(broken) => {
            eprintln!("audit log BROKEN at {broken}");
            Ok(exit::USAGE)
        }
    }
}

fn query(args: &SearchArgs, after: Option<u64>) -> String {
    let mut params = Vec::new();
    let mut add = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            params.push(format!("{name}={}", urlencode(&v)));
        }
    };
    add("actor", args.actor.clone());
    add("verb", args.verb.clone());
    add("kind", args.kind.clone());
    add("namespace", args.namespace.clone());
    add("since", args.since.map(|t| t.to_rfc3339()));
    add("until", args.until.map(|t| t.to_rfc3339()));
    add("afterSeq", after.map(|s| s.to_string()));
    if args.limit != usize::MAX {
        add("limit", Some(args.limit.to_string()));
    }
    params.join("&")
}

async fn fetch(client: &ApiClient, query: &str) -> Result<Vec<Entry>, ClientError> {
    let value = client
        .json(Method::GET, &format!("{LOG}?{query}"), None)
        .await?;
    serde_json::from_value(value["items"].clone())
        .map_err(|e| ClientError::usage(format!("unexpected answer from the audit log: {e}")))
}

async fn tail(client: &ApiClient, args: TailArgs) -> Result<u8, ClientError> {
    let search = SearchArgs {
        limit: args.lines,
        ..Default::default()
    };
    let entries = fetch(client, &query(&search, None)).await?;
    print!("{}", entries_table(&entries));
    if !args.follow {
        return Ok(exit::OK);
    }
    let mut last = entries.last().map_or(0, |e| e.seq);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let search = SearchArgs {
            limit: 1_000,
            ..Default::default()
        };
        for entry in fetch(client, &query(&search, Some(last))).await? {
            println!("{}", row(&entry).join("   "));
            last = entry.seq;
        }
    }
}

fn row(e: &Entry) -> Vec<String> {
    let who = match (&e.member, &e.agent) {
        (Some(m), Some(a)) => format!("{} ({m}, {a})", e.actor),
        (Some(m), None) => format!("{} ({m})", e.actor),
        _ => e.actor.clone(),
    };
    let what = [e.resource.as_str(), e.namespace.as_str(), e.name.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    vec![
        e.seq.to_string(),
        e.time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        who,
        e.verb.clone(),
        if what.is_empty() { "-".into() } else { what },
        e.code.to_string(),
        if e.remote.is_empty() {
            "-".into()
        } else {
            e.remote.clone()
        },
    ]
}

fn entries_table(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "No entries.\n".into();
    }
    let mut rows = vec![
        ["SEQ", "TIME", "WHO", "VERB", "WHAT", "CODE", "FROM"]
            .map(String::from)
            .to_vec(),
    ];
    rows.extend(entries.iter().map(row));
    table(&rows)
}

//! `orcaops key`: API keys for the members of a workspace, and server admin keys.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::output::{age, table};
use crate::client::format::age_since;
use crate::client::urlencode;
use crate::client::{ApiClient, ClientError, exit};

const KEYS: &str = "/apis/orcaops.dev/v1alpha1/apikeys";

pub const AFTER_HELP: &str = "Examples:\n  \
    orcaops key create --workspace team-a --member alice --expires 30d\n  \
    orcaops key create --workspace team-a --member ci-bot --agent claude-code\n  \
    orcaops key list --workspace team-a\n  \
    orcaops key rotate 3f9a0c12d4e5 --grace 1h\n  \
    orcaops key revoke 3f9a0c12d4e5\n\n\
    A key acts as a member of one workspace, with the role spec.members of that \
    Workspace gives the member (admin, developer or viewer); the role is read on every \
    request, so editing the Workspace changes what the key may do at once. The key is \
    printed once, at create and rotate; the server keeps only its SHA-256. Send it as \
    `Authorization: Bearer KEY` (curl -H, kubectl --token, orcaops --token or \
    ORCAOPS_TOKEN). On the server's own machine the CLI uses the server admin key in \
    <data-dir>/admin.key by itself. Managing keys takes an admin of the workspace or a \
    server admin key. See docs/security.md.";

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Make a key for a member of a workspace and print it (once).
    Create(CreateArgs),
    /// List keys: id, member, state, created, expires and last used; never the key.
    List(ListArgs),
    /// Revoke a key: it stops working at once.
    Revoke(IdArgs),
    /// Replace a key with a new one; the old one keeps working for --grace.
    Rotate(RotateArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The workspace the key acts in.
    #[arg(long, short = 'w', required_unless_present = "server_admin")]
    pub workspace: Option<String>,
    /// The member the key acts as; spec.members of the Workspace must list it.
    #[arg(long)]
    pub member: String,
    /// How long the key works, such as 12h, 30d; forever without it.
    #[arg(long)]
    pub expires: Option<String>,
    /// An agent label: objects created with the key get annotation orcaops.dev/created-by=AGENT, and `get --created-by AGENT` finds them.
    #[arg(long)]
    pub agent: Option<String>,
    /// A key with every right in every workspace (takes a server admin key).
    #[arg(long, conflicts_with = "workspace")]
    pub server_admin: bool,
    /// Print only the key, for scripts: KEY=$(orcaops key create ... -q).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only the keys of this workspace (a workspace admin sees their own workspace's).
    #[arg(long, short = 'w')]
    pub workspace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_parser = ["table", "json"], default_value = "table")]
    pub output: String,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The key's id, as `key list` shows it.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// The key's id, as `key list` shows it.
    pub id: String,
    /// How long the old key keeps working, such as 10m or 1h (default: it stops at once).
    #[arg(long, default_value = "0")]
    pub grace: String,
    /// Print only the new key.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub async fn key(client: &ApiClient, args: KeyArgs) -> Result<u8, ClientError> {
    match args.command {
        KeyCommand::Create(a) => {
            let mut body = json!({ "member": a.member });
            if let Some(ws) = a.workspace {
                body["workspace"] = json!(ws);
            }
            if a.server_admin {
                body["serverAdmin"] = json!(true);
            }
            if let Some(expires) = a.expires {
                body["expires"] = json!(expires);
            }
            if let Some(agent) = a.agent {
                body["agent"] = json!(agent);
            }
            let answer = post(client, KEYS, &body).await?;
            print_new(&answer, a.quiet);
        }
        KeyCommand::List(a) => {
            let path = match &a.workspace {
                Some(ws) => format!("{KEYS}?workspace={}", urlencode(ws)),
                None => KEYS.to_string(),
            };
            let list = client.json(Method::GET, &path, None).await?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            if a.output == "json" {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else if items.is_empty() {
                println!("No API keys found.");
            } else {
                print!("{}", table(&list_rows(&items)));
            }
        }
        KeyCommand::Revoke(a) => {
            let path = format!("{KEYS}/{}", urlencode(&a.id));
            client.json(Method::DELETE, &path, None).await?;
            println!("apikey/{} revoked", a.id);
        }
        KeyCommand::Rotate(a) => {
            let path = format!("{KEYS}/{}/rotate", urlencode(&a.id));
            let answer = post(client, &path, &json!({ "grace": a.grace })).await?;
            print_new(&answer, a.quiet);
            if !a.quiet {
                let until = answer["replaces"]["expiresAt"].as_str().unwrap_or("now");
                println!("The old key {} works until {until}.", a.id);
            }
        }
    }
    Ok(exit::OK)
}

async fn post(client: &ApiClient, path: &str, body: &Value) -> Result<Value, ClientError> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    client
        .json(Method::POST, path, Some(("application/json", bytes)))
        .await
}

fn print_new(answer: &Value, quiet: bool) {
    let key = answer["key"].as_str().unwrap_or_default();
    if quiet {
        println!("{key}");
        return;
    }
    let id = answer["id"].as_str().unwrap_or("?");
    let whom = match answer["workspace"].as_str() {
        Some(ws) => format!(
            "member {} of workspace {ws} (role {})",
            answer["member"].as_str().unwrap_or("?"),
            answer["role"].as_str().unwrap_or("?")
        ),
        None => format!("server admin {}", answer["member"].as_str().unwrap_or("?")),
    };
    let expires = answer["expiresAt"].as_str().unwrap_or("never");
    println!("apikey/{id} created for {whom}; expires {expires}");
    println!();
    println!("  {key}");
    println!();
    println!("This is the only time the key is shown: the server keeps only its hash. Use it with");
    println!(
        "  orcaops --token KEY ..., ORCAOPS_TOKEN=KEY, kubectl --token KEY, or curl -H 'Authorization: Bearer KEY'"
    );
}

fn when(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn list_rows(items: &[Value]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "ID",
            "WORKSPACE",
            "MEMBER",
            "AGENT",
            "STATE",
            "CREATED",
            "EXPIRES",
            "LAST USED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for k in items {
        let text = |f: &str| k[f].as_str().unwrap_or("-").to_string();
        let expires = match when(&k["expiresAt"]) {
            None => "never".to_string(),
            Some(t) if t > Utc::now() => format!("in {}", age_since(Utc::now(), t)),
            Some(t) => format!("{} ago", age(Some(t))),
        };
        rows.push(vec![
            text("id"),
            k["workspace"]
                .as_str()
                .unwrap_or("(server admin)")
                .to_string(),
            text("member"),
            text("agent"),
            text("state"),
            format!("{} ago", age(when(&k["createdAt"]))),
            expires,
            when(&k["lastUsedAt"]).map_or("never".into(), |t| format!("{} ago", age(Some(t)))),
        ]);
    }
    rows
}

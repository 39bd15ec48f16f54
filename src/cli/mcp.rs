//! `orcaops mcp`: the MCP server over stdio, for agents such as Claude Code. It talks to
//! the server at `--server`, or, when none answers, to an embedded store and controller,
//! as `orcaops run` does. stdout carries the protocol; everything else goes to stderr.

use std::path::PathBuf;

use clap::Args;

use super::serve::LocalMode;
use crate::client::{ApiClient, ClientError, exit};

#[derive(Args, Debug)]
#[command(
    after_help = "Set up Claude Code with:\n  claude mcp add orcaops -- orcaops mcp\n\n\
    With no server at --server, an embedded store and controller run inside this process\n\
    (data in --data-dir) and stop when the client disconnects. `orcaops serve` also serves\n\
    the same tools over streamable HTTP at http://127.0.0.1:7700/mcp. See docs/agents.md."
)]
pub struct McpArgs {
    /// Always use an embedded store and controller, even when a server answers.
    #[arg(long)]
    pub embedded: bool,
    /// Data dir of the embedded store [default: $ORCAOPS_DATA_DIR or ~/.local/share/orcaops].
    #[arg(long, env = "ORCAOPS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// How many objects the embedded controller reconciles at once.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
}

pub async fn mcp(server: &str, token: Option<String>, args: McpArgs) -> Result<u8, ClientError> {
    let mut client = ApiClient::new(server)?.with_token(token);
    let mut embedded = None;
    if args.embedded || !client.is_up().await {
        let data_dir = args.data_dir.unwrap_or_else(super::default_data_dir);
        let local = LocalMode::start(
            data_dir.clone(),
            None,
            "127.0.0.1:0".parse().expect("an address"),
            args.workers,
        )
        .await?;
        eprintln!(
            "orcaops mcp: {}embedded store and controller (data in {}, API on http://{})",
            if args.embedded {
                ""
            } else {
                "no server answers; using an "
            },
            data_dir.display(),
            local.addr
        );
        client = ApiClient::new(&format!("http://{}", local.addr))?;
        embedded = Some(local);
    } else {
        eprintln!("orcaops mcp: serving tools for {server} over stdio");
    }
    let result = crate::mcp::serve_stdio(client).await;
    if let Some(local) = embedded {
        local.stop().await;
    }
    result.map_err(|e| ClientError::usage(format!("the MCP session ended with an error: {e}")))?;
    Ok(exit::OK)
}

//! The client side of the HTTP API, shared by the CLI and the MCP tools: requests and
//! their errors, a watch that survives reconnects, one run-and-wait for a Job, the wire
//! types of sandbox exec and files, and the few formatters both print with.

mod api;
pub mod compare;
mod error;
pub mod format;
pub mod run;
pub mod secrets;
pub mod ui;
mod watch;
pub mod wire;
pub mod workflow;

pub use api::{ApiClient, collection_path, object_path, urlencode, warning_text};
pub use error::ClientError;
pub use watch::{Change, ResumingWatch};

/// Exit codes, as docs/cli.md lists them. They live here because a [`ClientError`] says
/// which one ends the command.
pub mod exit {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 1;
    pub const FAILED: u8 = 2;
    pub const TIMED_OUT: u8 = 3;
    pub const POLICY: u8 = 4;
    pub const UNREACHABLE: u8 = 5;
}

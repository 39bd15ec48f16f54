//! What can go wrong talking to the API (or setting up to), each case with the exit code
//! the CLI ends with, so callers match on what happened instead of reading flags.

use super::exit;
use crate::server::{POLICY_VIOLATION, Status};

#[derive(thiserror::Error, Debug)]
pub enum ClientError {
    /// Something the user can fix: an argument, a file, the configuration.
    #[error("{0}")]
    Usage(String),
    /// The server (or Docker, or the cluster) cannot be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered 404.
    #[error("{0}")]
    NotFound(String),
    /// The server answered 410: the resourceVersion asked for is too old; list again.
    #[error("{0}")]
    Gone(String),
    /// The server refused the request with another status.
    #[error("{message}")]
    Api { status: u16, message: String },
    /// What was asked for ended badly (a job deleted while it ran): exit 2.
    #[error("{0}")]
    Failed(String),
    /// A policy refused the write (a 403 whose causes are policy violations): exit 4.
    #[error("{0}")]
    Policy(String),
}

impl ClientError {
    pub fn usage(message: impl Into<String>) -> Self {
        ClientError::Usage(message.into())
    }

    pub fn unreachable(message: impl Into<String>) -> Self {
        ClientError::Unreachable(message.into())
    }

    /// The error for a refused request: the server's `Status` message, by its HTTP code.
    pub fn from_status(code: u16, status: Status) -> Self {
        let by_policy = status
            .details
            .causes
            .iter()
            .any(|c| c.reason == POLICY_VIOLATION);
        if code == 403 && by_policy {
            return ClientError::Policy(status.message);
        }
        ClientError::refused(code, status.message)
    }

    /// A refusal with a message of our own (a HEAD answer has no body to read one from).
    pub fn refused(code: u16, message: String) -> Self {
        match code {
            404 => ClientError::NotFound(message),
            410 => ClientError::Gone(message),
            status => ClientError::Api { status, message },
        }
    }

    /// The process exit code this error ends the command with.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable(_) => exit::UNREACHABLE,
            ClientError::Failed(_) => exit::FAILED,
            ClientError::Policy(_) => exit::POLICY,
            // The server refusing a request is, for the CLI, a usage error: what was
            // asked for does not exist or is not allowed.
            ClientError::Usage(_)
            | ClientError::NotFound(_)
            | ClientError::Gone(_)
            | ClientError::Api { .. } => exit::USAGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_by_their_code() {
        assert!(matches!(
            ClientError::refused(404, "no".into()),
            ClientError::NotFound(_)
        ));
        assert!(matches!(
            ClientError::refused(410, "old".into()),
            ClientError::Gone(_)
        ));
        let conflict = ClientError::refused(409, "exists".into());
        assert!(matches!(conflict, ClientError::Api { status: 409, .. }));
        assert_eq!(conflict.exit_code(), exit::USAGE);
        assert_eq!(conflict.to_string(), "exists");
    }

    #[test]
    fn exit_codes_follow_the_case() {
        assert_eq!(ClientError::usage("x").exit_code(), exit::USAGE);
        assert_eq!(ClientError::unreachable("x").exit_code(), exit::UNREACHABLE);
        assert_eq!(ClientError::Failed("x".into()).exit_code(), exit::FAILED);
    }
}

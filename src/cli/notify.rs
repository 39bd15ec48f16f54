//! The flags of the server-wide notification endpoints (`serve` and `operator`; see
//! [`crate::notifications`]), in a block of their own.

use std::path::PathBuf;

use clap::Args;

use crate::client::ClientError;
use crate::notifications::{Settings, SigningKey};
use crate::resources::workspace::notification_url;

#[derive(Args, Debug, Clone, Default)]
pub struct NotifyArgs {
    /// POST a JSON notification to URL (an http:// endpoint) when a Job run fails or times out, a run is anomalous, a workflow node waits for approval, or a sandbox is about to expire, in every workspace; each delivery is retried with backoff and its outcome is an event on the object (Notified, NotificationFailed). Repeat for more endpoints (ORCAOPS_NOTIFY_URL: comma-separated). A Workspace adds endpoints of its own with spec.notifications.
    #[arg(long = "notify-url", value_name = "URL", env = "ORCAOPS_NOTIFY_URL", value_delimiter = ',', value_parser = url)]
    pub urls: Vec<url::Url>,
    /// A file holding the key that signs the bodies sent to --notify-url: each carries X-Orcaops-Signature-256: sha256=<hex HMAC-SHA256 of the body under the key>, as GitHub signs webhooks (a trailing newline in the file is not part of the key). Without it, bodies are sent unsigned and receivers cannot tell them from forgeries.
    #[arg(
        long = "notify-secret-file",
        value_name = "FILE",
        env = "ORCAOPS_NOTIFY_SECRET_FILE"
    )]
    pub secret_file: Option<PathBuf>,
}

fn url(text: &str) -> Result<url::Url, String> {
    notification_url(text).map_err(|(message, fix)| format!("{message}; {fix}"))
}

impl NotifyArgs {
    /// The settings, with the signing key read; an unreadable or empty key file is a
    /// usage error naming the flag.
    pub fn settings(&self) -> Result<Settings, ClientError> {
        let key = match &self.secret_file {
            None => None,
            Some(path) => {
                let text = std::fs::read(path).map_err(|e| {
                    ClientError::usage(format!(
                        "--notify-secret-file {}: {e}; point it at a file holding the signing key",
                        path.display()
                    ))
                })?;
                let key = text.trim_ascii_end().to_vec();
                if key.is_empty() {
                    return Err(ClientError::usage(format!(
                        "--notify-secret-file {}: the file is empty; write the signing key into it (e.g. openssl rand -hex 32 > {})",
                        path.display(),
                        path.display()
                    )));
                }
                Some(SigningKey(key))
            }
        };
        Ok(Settings {
            urls: self.urls.clone(),
            key,
            ..Settings::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        notify: NotifyArgs,
    }

    #[test]
    fn urls_repeat_and_the_key_file_loses_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "s3cr3t\n").unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "--notify-url",
            "http://a.internal/hook",
            "--notify-url",
            "http://b.internal:9000/",
            "--notify-secret-file",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let settings = cli.notify.settings().unwrap();
        let urls: Vec<&str> = settings.urls.iter().map(|u| u.as_str()).collect();
        assert_eq!(urls, ["http://a.internal/hook", "http://b.internal:9000/"]);
        assert_eq!(settings.key, Some(SigningKey(b"s3cr3t".to_vec())));
    }

    #[test]
    fn a_bad_url_or_key_file_is_refused_with_the_fix() {
        let error = Cli::try_parse_from(["x", "--notify-url", "alerts.internal"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("http://"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let cli =
            Cli::try_parse_from(["x", "--notify-secret-file", empty.to_str().unwrap()]).unwrap();
        let error = cli.notify.settings().unwrap_err().to_string();
        assert!(error.contains("the file is empty"), "{error}");
    }
}

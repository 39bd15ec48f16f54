//! The dashboard, seen from a client: a one-time login link for the browser.

use reqwest::Method;

use super::{ApiClient, ClientError};

/// A new one-time login link to the dashboard of the server `client` talks to. Needs a
/// server admin key (on the server's own machine, the CLI finds it by itself).
pub async fn login_link(client: &ApiClient) -> Result<String, ClientError> {
    let answer = client.json(Method::POST, "/ui/login-link", None).await?;
    answer
        .get("url")
        .and_then(|u| u.as_str())
        .map(str::to_string)
        .ok_or_else(|| ClientError::usage("the server's answer to /ui/login-link has no url"))
}

//! The policies' word on a REST write (and so on the CLI's and MCP's): an Enforce
//! violation refuses it with a 403 `Status`, reason `Forbidden`, one cause per violation;
//! a Warn violation lets it through with a `Warning` header per finding, which kubectl
//! and the CLI print; an Audit one is only recorded. A dry run is reviewed alike and
//! recorded nowhere.

use axum::http::{HeaderValue, StatusCode, header::WARNING};
use axum::response::Response;

use super::AppState;
use super::error::{ApiError, POLICY_VIOLATION, StatusCause};
use crate::policy::{Door, Review};
use crate::resources::Object;

/// What a write may carry back: the Warn policies' findings.
#[derive(Debug, Default)]
#[must_use = "a Warn policy's findings must reach the caller"]
pub(super) struct Warnings(Vec<String>);

impl Warnings {
    /// Adds one `Warning: 299 - "…"` header per finding to `response`.
    pub(super) fn attach(self, mut response: Response) -> Response {
        for text in self.0 {
            if let Ok(value) = HeaderValue::from_str(&warning_header(&text)) {
                response.headers_mut().append(WARNING, value);
            }
        }
        response
    }
}

/// Reviews `obj` (replacing `old`; None for a create) against the live policies. Refused:
/// the 403 to answer. Otherwise the warnings to send with the answer. Unless `dry_run`,
/// what was found goes into the policies' reports.
pub(super) async fn police(
    state: &AppState,
    obj: &Object,
    old: Option<&Object>,
    dry_run: bool,
) -> Result<Warnings, ApiError> {
    let review = state.policies.review(obj, old).await?;
    if review.violations.is_empty() {
        return Ok(Warnings::default());
    }
    if !dry_run {
        state.policies.record(&review, obj, &Door::Api, false);
    }
    if review.refused() {
        return Err(refusal(&review, obj));
    }
    Ok(Warnings(review.warnings().map(|v| v.line()).collect()))
}

/// The 403 for what an Enforce policy refuses: the message names every violation, and
/// each is a cause (its field, its line, reason `PolicyViolation`).
pub(super) fn refusal(review: &Review, obj: &Object) -> ApiError {
    let mut err = ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        review.refusal_message(obj),
    );
    err.details.name = obj.metadata.name.clone();
    err.details.kind = obj.kind.plural().into();
    err.details.causes = review
        .refusals()
        .map(|v| StatusCause {
            field: v.field.clone(),
            message: v.line(),
            reason: POLICY_VIOLATION.into(),
        })
        .collect();
    err
}

/// An RFC 7234 warning with code 299 ("miscellaneous persistent warning"), as Kubernetes
/// sends them: the text quoted, its quotes and backslashes escaped, and only printable
/// ASCII (anything else becomes `?`), so that every client can read the header.
fn warning_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("299 - \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '\t' | '\n' | '\r' => out.push(' '),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::warning_text;

    #[test]
    fn warning_headers_are_ascii_quoted_and_read_back_by_the_client() {
        let text = r#"policy p, rule images.deny: spec.image: "busybox:latest" matches "*:latest" — pin it"#;
        let header = warning_header(text);
        assert!(header.is_ascii());
        assert!(header.starts_with("299 - \"") && header.ends_with('"'));
        assert!(HeaderValue::from_str(&header).is_ok());
        assert_eq!(
            warning_text(&header),
            text.replace('—', "?"),
            "the CLI prints what the server meant"
        );
        assert_eq!(warning_header("a\nb"), "299 - \"a b\"");
    }
}

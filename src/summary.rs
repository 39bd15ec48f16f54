//! The optional summariser: given an OpenAI-compatible chat endpoint (`serve
//! --summarizer-url`), a failed run's extracted errors and output tails are sent to it,
//! and its few sentences on why the run failed go into the run record
//! (`explanation`). Off by default; when the endpoint is down or slow, nothing else
//! changes (see [`crate::controller::explain`]).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::controller::explain::Explainer;
use crate::records::RunRecord;

/// The most of a run's text one request carries.
pub const PROMPT_BYTES: usize = 8 << 10;
/// The longest explanation kept.
pub const EXPLANATION_CHARS: usize = 1200;
/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

const SYSTEM: &str = "You explain why a job run failed, for the engineer who owns it. \
Answer in at most three sentences of plain text: name the failing step, the likely \
cause, and what to check first. Do not repeat the whole log; do not use markdown.";

/// Where and how to ask.
#[derive(Clone, Debug)]
pub struct SummarizerConfig {
    /// The endpoint's base URL (`http://127.0.0.1:8080/v1`), or its full
    /// `…/chat/completions` URL.
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …` when given.
    pub api_key: Option<String>,
}

impl SummarizerConfig {
    /// Checks the URL, with an error that says what to give.
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| {
            format!(
                "--summarizer-url {:?}: {e}; give the endpoint's base URL, such as http://127.0.0.1:8080/v1",
                self.url
            )
        })?;
        if url.scheme() != "http" {
            return Err(format!(
                "--summarizer-url {:?}: only http:// is supported; put a TLS proxy in front of an https endpoint",
                self.url
            ));
        }
        if self.model.trim().is_empty() {
            return Err("--summarizer-model is empty: name the model the endpoint serves".into());
        }
        Ok(())
    }

    fn completions_url(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        }
    }
}

/// What the summariser is told about a failed run: what ended how, each step's exit
/// code, the extracted error lines, and the output tails of the steps that failed,
/// within [`PROMPT_BYTES`].
pub fn prompt(record: &RunRecord) -> String {
    let mut out = format!(
        "Job {}/{} run {} ended {}: {}\n",
        record.namespace,
        record.name,
        record.run,
        record.phase.as_str(),
        record.summary
    );
    if let Some(ctx) = &record.context {
        let _ = writeln!(out, "Image: {}", ctx.image);
    }
    for step in &record.steps {
        let _ = writeln!(
            out,
            "Step {}: exit code {}",
            step.name,
            step.exit_code.map_or("-".into(), |c| c.to_string())
        );
        for e in &step.errors {
            let _ = writeln!(out, "  error at line {}: {}", e.line, e.text);
        }
    }
    for step in record
        .steps
        .iter()
        .filter(|s| s.exit_code.is_some_and(|c| c != 0) && !s.output_tail.is_empty())
    {
        let _ = writeln!(
            out,
            "Last output of step {}:\n{}",
            step.name,
            step.output_tail.trim_end()
        );
    }
    cut(&mut out, PROMPT_BYTES);
    out
}

fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// The answer's text from a chat completion (`choices[0].message.content`).
pub fn answer(body: &Value) -> Result<String, String> {
    let text = body
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| "the answer has no choices[0].message.content".to_string())?;
    let mut text = text.trim().to_string();
    if text.is_empty() {
        return Err("the answer is empty".into());
    }
    if text.chars().count() > EXPLANATION_CHARS {
        text = text.chars().take(EXPLANATION_CHARS).collect::<String>() + "…";
    }
    Ok(text)
}

/// Asks an OpenAI-compatible endpoint.
pub struct Summarizer {
    config: SummarizerConfig,
    http: reqwest::Client,
}

impl Summarizer {
    pub fn new(config: SummarizerConfig) -> Result<Self, String> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the summariser's HTTP client: {e}"))?;
        Ok(Summarizer { config, http })
    }
}

#[async_trait::async_trait]
impl Explainer for Summarizer {
    async fn explain(&self, record: &RunRecord) -> Result<String, String> {
        let body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt(record)},
            ],
            "max_tokens": 300,
            "temperature": 0.2,
        });
        let url = self.config.completions_url();
        let mut request = self.http.post(&url).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let text: String = text.chars().take(300).collect();
            return Err(format!("{url} answered {status}: {text}"));
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| format!("{url} did not answer JSON: {e}"))?;
        answer(&value)
    }
}

/// Gives the controllers of `ctx` the summariser `config` names.
pub fn install(ctx: &crate::controller::Context, config: SummarizerConfig) -> Result<(), String> {
    let url = config.url.clone();
    let summarizer = Summarizer::new(config)?;
    let _ = ctx.explainer.set(std::sync::Arc::new(summarizer));
    tracing::info!(%url, "failed runs are explained by the summariser");
    Ok(())
}

#[cfg(test)]
mod tests;

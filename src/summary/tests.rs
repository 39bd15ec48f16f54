use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::*;
use crate::resources::job::{ErrorLine, JobPhase, StepStatus};

fn failed_run() -> RunRecord {
    RunRecord {
        uid: "u1".into(),
        namespace: "team-a".into(),
        name: "build".into(),
        run: 4,
        generation: 1,
        phase: JobPhase::Failed,
        attempts: 1,
        start_time: None,
        completion_time: None,
        exit_code: Some(2),
        summary: "step test exited with code 2".into(),
        steps: vec![
            StepStatus {
                name: "compile".into(),
                exit_code: Some(0),
                start_time: None,
                duration_ms: Some(10),
                output_tail: "compiled 12 files\n".into(),
                errors: Vec::new(),
            },
            StepStatus {
                name: "test".into(),
                exit_code: Some(2),
                start_time: None,
                duration_ms: Some(20),
                output_tail: "running 3 tests\nthread 'main' panicked at src/lib.rs:4:5\n".into(),
                errors: vec![ErrorLine {
                    line: 2,
                    text: "thread 'main' panicked at src/lib.rs:4:5".into(),
                }],
            },
        ],
        artifacts: Vec::new(),
        outputs: Default::default(),
        usage: None,
        anomalies: Vec::new(),
        context: None,
        explanation: None,
    }
}

#[test]
fn the_prompt_names_the_run_its_steps_errors_and_the_failed_steps_output_only() {
    let text = prompt(&failed_run());
    assert!(
        text.starts_with("Job team-a/build run 4 ended Failed: step test exited with code 2\n")
    );
    assert!(text.contains("Step compile: exit code 0"));
    assert!(text.contains("  error at line 2: thread 'main' panicked at src/lib.rs:4:5"));
    assert!(text.contains("Last output of step test:\nrunning 3 tests"));
    // The step that succeeded lends no output.
    assert!(!text.contains("compiled 12 files"));

    let mut long = failed_run();
    long.steps[1].output_tail = "é".repeat(PROMPT_BYTES);
    assert!(prompt(&long).len() <= PROMPT_BYTES);
}

#[test]
fn an_answer_is_its_first_choice_trimmed_and_bounded() {
    let body = json!({"choices": [{"message": {"role": "assistant", "content": "  The test step panicked.  "}}]});
    assert_eq!(answer(&body).unwrap(), "The test step panicked.");
    assert!(
        answer(&json!({"choices": []}))
            .unwrap_err()
            .contains("choices[0]")
    );
    assert!(answer(&json!({"choices": [{"message": {"content": " "}}]})).is_err());
    let long = json!({"choices": [{"message": {"content": "x".repeat(5000)}}]});
    assert_eq!(
        answer(&long).unwrap().chars().count(),
        EXPLANATION_CHARS + 1
    );
}

#[test]
fn only_an_http_url_and_a_model_are_taken() {
    let config = |url: &str, model: &str| SummarizerConfig {
        url: url.into(),
        model: model.into(),
        api_key: None,
    };
    assert!(config("http://127.0.0.1:8080/v1", "m").validate().is_ok());
    assert!(
        config("not a url", "m")
            .validate()
            .unwrap_err()
            .contains("base URL")
    );
    assert!(
        config("https://api.example/v1", "m")
            .validate()
            .unwrap_err()
            .contains("http://")
    );
    assert!(
        config("http://h/v1", " ")
            .validate()
            .unwrap_err()
            .contains("--summarizer-model")
    );
    assert_eq!(
        config("http://h/v1/", "m").completions_url(),
        "http://h/v1/chat/completions"
    );
    assert_eq!(
        config("http://h/v1/chat/completions", "m").completions_url(),
        "http://h/v1/chat/completions"
    );
}

/// What the fake endpoint was sent: the Authorization header and the body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// An OpenAI-compatible endpoint on a real socket that answers `status` with `reply`.
async fn endpoint(status: StatusCode, reply: Value) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(
                move |State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| {
                    let reply = reply.clone();
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(String::from);
                        seen.lock().unwrap().push((auth, body));
                        (status, Json(reply))
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test]
async fn a_failed_run_is_explained_by_the_endpoint_with_its_errors() {
    let (url, seen) = endpoint(
        StatusCode::OK,
        json!({"choices": [{"message": {"role": "assistant", "content": "Step test panicked at src/lib.rs:4."}}]}),
    )
    .await;
    let summarizer = Summarizer::new(SummarizerConfig {
        url,
        model: "tiny".into(),
        api_key: Some("sk-test".into()),
    })
    .unwrap();
    let text = summarizer.explain(&failed_run()).await.unwrap();
    assert_eq!(text, "Step test panicked at src/lib.rs:4.");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "tiny");
    assert_eq!(body["messages"][0]["role"], "system");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("panicked at src/lib.rs:4:5"), "{user}");
}

#[tokio::test]
async fn an_endpoint_that_fails_or_is_gone_gives_an_error_naming_it() {
    let (url, _) = endpoint(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "overloaded"}),
    )
    .await;
    let summarizer = Summarizer::new(SummarizerConfig {
        url: url.clone(),
        model: "tiny".into(),
        api_key: None,
    })
    .unwrap();
    let err = summarizer.explain(&failed_run()).await.unwrap_err();
    assert!(err.contains("503") && err.contains("overloaded"), "{err}");

    // Nothing listens on a port just released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone = Summarizer::new(SummarizerConfig {
        url: format!("http://127.0.0.1:{port}/v1"),
        model: "tiny".into(),
        api_key: None,
    })
    .unwrap();
    let err = gone.explain(&failed_run()).await.unwrap_err();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

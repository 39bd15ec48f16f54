//! The optional summariser, end to end (the real `orcaops` binary, real Docker, and an
//! OpenAI-compatible endpoint on a real socket): a failed run's errors are sent to it
//! and its words land in the run record; a succeeded run is not sent; and with the
//! endpoint down, a failed run is recorded as it would be without a summariser.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);

/// A chat-completions endpoint that answers every request with `answer`, and keeps the
/// bodies it was sent.
fn chat_endpoint(answer: &str) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let reply = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": answer}}],
    })
    .to_string();
    let kept = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            assert!(
                request_line.starts_with("POST /v1/chat/completions "),
                "{request_line}"
            );
            kept.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

const BROKEN: &str = "  steps:\n    - name: compile\n      run: 'echo compiling; echo \"error: v2 is broken\"; exit 3'\n";

#[test]
fn a_failed_run_is_explained_in_its_record_and_a_succeeded_one_is_not_sent() {
    let (url, seen) = chat_endpoint("The compile step failed: v2 is broken.");
    let server = Server::start_with_env(&[
        ("ORCAOPS_SUMMARIZER_URL", &url),
        ("ORCAOPS_SUMMARIZER_MODEL", "tiny"),
    ]);
    server.write("broken.yaml", &job_yaml("broken", BROKEN));
    server.wait_phase("broken", "Failed", T);
    // The explanation follows the run's end; nothing waits for it.
    let runs = wait_until(T, "the run's explanation", || {
        let runs = server.job_runs("broken");
        runs.pointer("/items/0/explanation")
            .is_some_and(Value::is_string)
            .then_some(runs)
    });
    assert_eq!(
        runs["items"][0]["explanation"], "The compile step failed: v2 is broken.",
        "{runs}"
    );
    assert_eq!(runs["items"][0]["phase"], "Failed");
    {
        let bodies = seen.lock().unwrap();
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert_eq!(bodies[0]["model"], "tiny");
        let user = bodies[0]["messages"][1]["content"].as_str().unwrap();
        assert!(
            user.contains("Job default/broken run 1 ended Failed")
                && user.contains("error at line 2: error: v2 is broken"),
            "{user}"
        );
    }
    let history = server.cli_ok(&["history", "job", "broken"]);
    assert!(
        history.contains(
            "Why run 1 failed (the summariser's words):\n  The compile step failed: v2 is broken."
        ),
        "{history}"
    );

    server.write(
        "fine.yaml",
        &job_yaml("fine", "  steps:\n    - name: a\n      run: echo ok\n"),
    );
    server.wait_phase("fine", "Succeeded", T);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(seen.lock().unwrap().len(), 1, "a succeeded run is not sent");
    let fine = server.job_runs("fine");
    assert!(fine.pointer("/items/0/explanation").is_none(), "{fine}");
}

#[test]
fn with_the_summariser_down_a_failed_run_is_recorded_as_without_it() {
    let url = format!("http://127.0.0.1:{}/v1", free_port());
    let server = Server::start_with_env(&[("ORCAOPS_SUMMARIZER_URL", &url)]);
    server.write("broken.yaml", &job_yaml("broken", BROKEN));
    let job = server.wait_phase("broken", "Failed", T);
    assert!(
        job.pointer("/status/summary")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("v2 is broken")),
        "{job}"
    );
    let log = wait_until(T, "the summariser's failure in the log", || {
        let log = server.log();
        log.contains("the summariser did not explain the run")
            .then_some(log)
    });
    assert!(
        log.contains(&url.replace("/v1", "")),
        "the log names the endpoint: {}",
        tail(&log, 20)
    );
    let runs = server.job_runs("broken");
    assert_eq!(runs["items"][0]["phase"], "Failed", "{runs}");
    assert!(runs.pointer("/items/0/explanation").is_none(), "{runs}");
    // And the server goes on: another run of the same job is recorded too.
    server.cli_ok(&["rerun", "job", "broken"]);
    server.wait_job("broken", "ends its run 2", T, |job| {
        job.pointer("/status/history/0/run") == Some(&Value::from(2))
    });
}

//! `/metrics` of a real `orcaops serve` that ran a real Job in Docker, read by the real
//! Prometheus tools (Debian's `prometheus` package, installed by ./scripts/setup.sh):
//! `promtool check metrics` on the text, and a Prometheus server that scrapes the serve
//! and answers a query over its HTTP API.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, free_port, job_yaml, tail, wait_until};
use serde_json::Value;

/// The path of `tool`, or a failure that says how to get it.
fn require(tool: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    assert!(
        found.status.success() && !path.is_empty(),
        "this test needs `{tool}` (Debian's prometheus package): run ./scripts/setup.sh, which installs it without starting its service"
    );
    path
}

/// GET `url` with `accept` and the server admin key of `server`; returns (status,
/// content type, body).
fn get(server: &Server, url: &str, accept: Option<&str>) -> (u16, String, String) {
    let http = server.http();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut request = http.get(url);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.expect("the request is answered");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    })
}

/// Runs `name` (one short step) in `server` until it succeeds.
fn run_job(server: &Server, name: &str) {
    server.write(
        &format!("{name}.yaml"),
        &job_yaml(
            name,
            "  steps:\n    - name: main\n      run: sleep 0.3; echo measured\n",
        ),
    );
    server.wait_phase(name, "Succeeded", Duration::from_secs(60));
}

/// The value of the sample `line_start` (a metric name with its labels) in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[test]
fn promtool_accepts_the_metrics_of_a_serve_that_ran_a_job() {
    let promtool = require("promtool");
    let server = Server::start();
    run_job(&server, "metrics-hello");
    // One request to a path no route has, and one that names an object.
    assert_eq!(
        get(&server, &format!("{}/no/such/path", server.url), None).0,
        404
    );
    let job_path = format!(
        "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs/metrics-hello",
        server.url
    );
    assert_eq!(get(&server, &job_path, None).0, 200);

    let (status, content_type, text) = get(&server, &format!("{}/metrics", server.url), None);
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let labels = r#"{workspace="default",job_name="metrics-hello",phase="Succeeded"}"#;
    assert_eq!(
        sample(
            &text,
            &format!("orcaops_job_run_duration_seconds_count{labels}")
        ),
        Some(1.0),
        "one run of the job:\n{text}"
    );
    let took = sample(
        &text,
        &format!("orcaops_job_run_duration_seconds_sum{labels}"),
    )
    .unwrap();
    assert!(
        (0.3..30.0).contains(&took),
        "the run took at least its sleep: {took}"
    );
    assert_eq!(
        sample(&text, r#"orcaops_objects{kind="Job",phase="Succeeded"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"orcaops_docker_call_duration_seconds_count{operation="create_container",outcome="answered"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "the Docker gate timed the container's create:\n{text}"
    );
    let route = "/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}/{name}";
    assert!(
        sample(
            &text,
            &format!(r#"orcaops_api_requests_total{{method="GET",route="{route}",code="200"}}"#)
        )
        .is_some_and(|n| n >= 1.0),
        "requests are counted by route template:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"orcaops_api_requests_total{method="GET",route="_unmatched",code="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    let by_raw_path: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("orcaops_api_") && l.contains("metrics-hello"))
        .collect();
    assert!(by_raw_path.is_empty(), "raw paths leaked: {by_raw_path:?}");

    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics refused the exposition ({}):\n{}{}\n--- the text:\n{text}",
        checked.status,
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// A Prometheus server on a loopback port, with its config and storage in a temporary
/// directory; killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Prometheus scraping `target` with the bearer key in `key_file`.
    fn scraping(target: &str, key_file: &std::path::Path) -> Prometheus {
        let binary = require("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: orcaops\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['{target}']\n",
                key_file.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The instant vector `query` evaluates to, or None when Prometheus is not up yet.
    fn query(&self, query: &str) -> Option<Vec<Value>> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let answer: Value = runtime.block_on(async {
            let response = reqwest::Client::new()
                .get(format!(
                    "{}/api/v1/query?query={}",
                    self.url,
                    encoded(query)
                ))
                .send()
                .await
                .ok()?;
            response.json().await.ok()
        })?;
        (answer["status"] == "success").then(|| {
            answer["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
    }
}

/// `text` percent-encoded for a query string.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[test]
fn a_real_prometheus_scrapes_serve_and_sees_the_job_run() {
    require("prometheus");
    let server = Server::start();
    run_job(&server, "metrics-scraped");
    let prometheus = Prometheus::scraping(
        &format!("127.0.0.1:{}", server.port),
        &server.data_dir.join("admin.key"),
    );

    let query = r#"orcaops_job_run_duration_seconds_count{job="orcaops",workspace="default",job_name="metrics-scraped",phase="Succeeded"}"#;
    let mut last = None;
    let found = common::poll(Duration::from_secs(45), || {
        let result = prometheus.query(query)?;
        last = Some(result.clone());
        result.into_iter().next()
    });
    let Some(series) = found else {
        panic!(
            "Prometheus never had the job's run; last answer {last:?}\nprometheus log:\n{}\nserve log:\n{}",
            tail(&prometheus.log(), 30),
            tail(&server.log(), 30)
        );
    };
    assert_eq!(series["value"][1], "1", "one run: {series}");

    // The scrape itself is healthy, and Prometheus read the API's own counters too.
    let up = wait_until(Duration::from_secs(10), "the target is up", || {
        prometheus.query(r#"up{job="orcaops"}"#)?.into_iter().next()
    });
    assert_eq!(up["value"][1], "1", "{up}");
    // A scrape is counted once answered, so the next scrape is the first to show one.
    let requests = wait_until(
        Duration::from_secs(10),
        "Prometheus has the scrapes' own request counter",
        || {
            prometheus
                .query(r#"sum(orcaops_api_requests_total{route="/metrics",code="200"})"#)?
                .into_iter()
                .next()
        },
    );
    let scrapes: f64 = requests["value"][1].as_str().unwrap().parse().unwrap();
    assert!(scrapes >= 1.0, "{requests}");
}

/// A serve that, when dropped, stops and then removes every container it made (by its
/// instance label): a killed serve leaves its warm pool running.
struct PoolServer(Server);

impl PoolServer {
    /// The instance label of this serve's containers, read from one it lists.
    fn instance(&self) -> Option<String> {
        let url = format!("{}/apis/orcaops.dev/v1alpha1/containers", self.0.url);
        let listed: Value = serde_json::from_str(&get(&self.0, &url, None).2).ok()?;
        let id = listed["items"].as_array()?.first()?["id"]
            .as_str()?
            .to_string();
        let inspected = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{index .Config.Labels \"orcaops.dev/instance\"}}",
                &id,
            ])
            .output()
            .ok()?;
        let instance = String::from_utf8_lossy(&inspected.stdout)
            .trim()
            .to_string();
        (!instance.is_empty()).then_some(instance)
    }
}

impl Drop for PoolServer {
    fn drop(&mut self) {
        let instance = self.instance();
        self.0.kill();
        if let Some(instance) = instance {
            for id in common::containers_with_label("orcaops.dev/instance", &instance) {
                Command::new("docker")
                    .args(["rm", "-f", &id])
                    .stdout(Stdio::null())
                    .status()
                    .ok();
            }
        }
    }
}

#[test]
fn warm_pool_depth_and_a_claim_show_in_the_metrics() {
    let pool_server = PoolServer(Server::start());
    let server = &pool_server.0;
    server.write(
        "template.yaml",
        "apiVersion: orcaops.dev/v1alpha1\nkind: SandboxTemplate\nmetadata:\n  name: metrics-shell\nspec:\n  network: none\n  warmPool:\n    size: 1\n  services:\n    - name: shell\n      image: busybox:latest\n      command: [\"sleep\", \"infinity\"]\n",
    );
    let metrics = format!("{}/metrics", server.url);
    let ready = r#"orcaops_warm_pool_ready{workspace="default",template="metrics-shell"}"#;
    wait_until(Duration::from_secs(60), "the pool has a ready slot", || {
        (sample(&get(server, &metrics, None).2, ready) == Some(1.0)).then_some(())
    });
    server.write(
        "sandbox.yaml",
        "apiVersion: orcaops.dev/v1alpha1\nkind: Sandbox\nmetadata:\n  name: metrics-agent\nspec:\n  templateRef: metrics-shell\n",
    );
    let hit = r#"orcaops_warm_pool_claim_duration_seconds_count{outcome="hit"}"#;
    let text = wait_until(Duration::from_secs(60), "the claim is counted", || {
        let text = get(server, &metrics, None).2;
        (sample(&text, hit) == Some(1.0)).then_some(text)
    });
    assert_eq!(
        sample(&text, r#"orcaops_objects{kind="Sandbox",phase="Ready"}"#),
        Some(1.0),
        "the claimed sandbox is Ready:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"orcaops_warm_pool_claim_duration_seconds_count{outcome="miss"}"#
        ),
        None
    );
}

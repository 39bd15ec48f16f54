//! The server killed with SIGKILL at random points while 100 one-step Jobs, 10
//! multi-step Jobs with retries and 3 Workflows (two diamonds and a matrix; see
//! [`crate::workflows`]) are created and run, and started again on the same data dir
//! each time. Afterwards: no Job lost (each reaches a final phase with exactly one run
//! recorded), no attempt made twice (Docker's own event log has one create and one start
//! per run and attempt), no step run twice in an attempt (each step prints a line once;
//! the attempt's log has it at most once), and every Workflow ended with one Job per
//! node, none run twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::dockerd::{PrivateDockerd, tail};
use crate::serve::{API, ChaosServer, job, phase};
use crate::workflows;

const ONE_STEP: usize = 100;
const MULTI_STEP: usize = 10;
const KILLS: usize = 20;
/// How long all Jobs may take to finish once the kills are over.
const SETTLE: Duration = Duration::from_secs(240);

/// `ORCAOPS_CHAOS_SEED` (decimal or 0x…) or one from the clock; printed either way.
pub fn seed() -> u64 {
    let seed = match std::env::var("ORCAOPS_CHAOS_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("ORCAOPS_CHAOS_SEED={s:?} is not a number"))
        }
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("chaos seed: {seed:#x} (replay with ORCAOPS_CHAOS_SEED={seed:#x})");
    seed
}

/// The Jobs: names and bodies, in the order they are created (shuffled by the seed).
fn jobs(rng: &mut fastrand::Rng) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for i in 0..ONE_STEP {
        let name = format!("one-{i}");
        let body = job(
            &name,
            &[("only", &format!("echo ran-{name}-only"))],
            json!({}),
        );
        all.push((name, body));
    }
    for i in 0..MULTI_STEP {
        let name = format!("multi-{i}");
        // The last step fails two times in three, so most of these are retried; the
        // retry limit lets most of them succeed in the end.
        let flaky = format!(
            "echo ran-{name}-flaky; r=$(od -An -N1 -tu1 /dev/urandom); [ $((r % 3)) -eq 0 ] || {{ echo flaky-fails; exit 3; }}"
        );
        let body = job(
            &name,
            &[
                ("first", &format!("echo ran-{name}-first")),
                ("second", &format!("sleep 1; echo ran-{name}-second")),
                ("flaky", &flaky),
            ],
            json!({"retry": {"limit": 4, "backoffSeconds": 1, "maxBackoffSeconds": 2}}),
        );
        all.push((name, body));
    }
    rng.shuffle(&mut all);
    all
}

pub fn run() {
    let mut rng = fastrand::Rng::with_seed(seed());
    let daemon = PrivateDockerd::start();
    let tmp = tempfile::tempdir().unwrap();
    let events = EventLog::start(&daemon, tmp.path().join("events.jsonl"));
    let mut server = ChaosServer::start(tmp.path(), &tmp.path().join("data"), &daemon.host(), &[]);
    let jobs = jobs(&mut rng);
    let flows = workflows::planned();
    let url = server.url.clone();
    // Written at the first start; the same key works after every restart.
    let key = server.key();

    // Creates go on in the background, each retried until the server acknowledges it
    // (201) or says it exists (409: an earlier try got in before a kill). The Workflows
    // go in among the first Jobs, so that their nodes run while the kills go on.
    let creator = {
        let mut creates: Vec<(&str, String, Value)> = jobs
            .iter()
            .map(|(name, body)| ("jobs", name.clone(), body.clone()))
            .collect();
        for flow in &flows {
            let at = rng.usize(..20);
            creates.insert(at, ("workflows", flow.name.clone(), flow.body.clone()));
        }
        std::thread::spawn(move || create_all(&url, &key, &creates))
    };

    // The kills: each after a random time up, from 0.2 s to 3 s.
    let started = Instant::now();
    let mut uptimes = Vec::new();
    let mut killed_at = Vec::new();
    for kill in 0..KILLS {
        let uptime = Duration::from_millis(rng.u64(200..3000));
        uptimes.push(uptime);
        std::thread::sleep(uptime);
        server.kill();
        killed_at.push(chrono::Utc::now());
        eprintln!(
            "kill {} of {KILLS} after {uptime:?} up ({:?} in)",
            kill + 1,
            started.elapsed()
        );
        server.start_again();
    }
    creator.join().expect("the creates finished");
    eprintln!(
        "{KILLS} kills in {:?}; waiting for every job to finish",
        started.elapsed()
    );

    // 0 lost: every Job and Workflow reaches a final phase.
    let settle = Instant::now();
    let mut finals: BTreeMap<String, Value> = BTreeMap::new();
    let mut flow_finals: BTreeMap<String, Value> = BTreeMap::new();
    while finals.len() < jobs.len() || flow_finals.len() < flows.len() {
        for obj in server.list("jobs") {
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            let ours = jobs.iter().any(|(n, _)| *n == name);
            if ours && matches!(phase(&obj), "Succeeded" | "Failed") {
                finals.insert(name, obj);
            }
        }
        for obj in server.list("workflows") {
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            if workflows::is_final(&obj) {
                flow_finals.insert(name, obj);
            }
        }
        if settle.elapsed() > SETTLE {
            let missing: Vec<&String> = jobs
                .iter()
                .map(|(n, _)| n)
                .chain(flows.iter().map(|f| &f.name))
                .filter(|n| !finals.contains_key(*n) && !flow_finals.contains_key(*n))
                .collect();
            panic!(
                "{} jobs never finished within {SETTLE:?} of the last kill: {missing:?}\nserver log tail:\n{}",
                missing.len(),
                tail(&server.log(), 60)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "all {} jobs and {} workflows final after {:?}",
        jobs.len(),
        flows.len(),
        settle.elapsed()
    );

    // What Docker made: one create and one start per (job uid, run, attempt).
    let made = events.stop();

    let mut retried = 0;
    let mut problems = Vec::new();
    for (name, _) in &jobs {
        let obj = &finals[name];
        let uid = obj["metadata"]["uid"].as_str().unwrap();
        let runs = server.get(&format!("{API}/jobs/{name}/runs"));
        assert!(runs.ok(), "runs of {name}: {runs:?}");
        let runs = runs.body["items"].as_array().cloned().unwrap_or_default();
        if runs.len() != 1 {
            problems.push(format!("{name}: {} run records, not 1", runs.len()));
            continue;
        }
        let attempts = runs[0]["attempts"].as_u64().unwrap_or(0) as u32;
        if name.starts_with("one-") && phase(obj) != "Succeeded" {
            problems.push(format!(
                "{name}: {} ({})",
                phase(obj),
                obj["status"]["summary"]
            ));
        }
        if attempts > 1 {
            retried += 1;
        }
        for attempt in 1..=attempts {
            let key = (uid.to_string(), 1, attempt);
            let (creates, starts) = made.get(&key).copied().unwrap_or((0, 0));
            if creates != 1 || starts != 1 {
                problems.push(format!(
                    "{name} attempt {attempt}: {creates} containers created and {starts} started, not 1 and 1"
                ));
            }
            let log = server.get(&format!("{API}/jobs/{name}/log?run=1&attempt={attempt}"));
            let text = log.body.as_str().map(String::from).unwrap_or_default();
            for step in ["only", "first", "second", "flaky"] {
                let line = format!("ran-{name}-{step}");
                let times = text.lines().filter(|l| l.trim() == line).count();
                if times > 1 {
                    problems.push(format!(
                        "{name} attempt {attempt}: step {step} ran {times} times"
                    ));
                }
            }
            if name.starts_with("one-")
                && !text.lines().any(|l| l.trim() == format!("ran-{name}-only"))
            {
                problems.push(format!(
                    "{name} attempt {attempt}: its output lacks the step's line: {text:?}"
                ));
            }
        }
        let extra: Vec<_> = made
            .keys()
            .filter(|(u, run, attempt)| u == uid && (*run != 1 || *attempt > attempts))
            .collect();
        if !extra.is_empty() {
            problems.push(format!(
                "{name}: containers of attempts it never recorded: {extra:?}"
            ));
        }
    }
    let mut kills_mid_workflow = 0;
    for flow in &flows {
        let wf = &flow_finals[&flow.name];
        problems.extend(workflows::problems(&server, flow, wf, &made));
        let kills = workflows::kills_during(wf, &killed_at);
        eprintln!("workflow {}: {kills} kills while it ran", flow.name);
        kills_mid_workflow += kills;
    }
    assert!(
        problems.is_empty(),
        "after {KILLS} kills:\n{}\nserver log tail:\n{}",
        problems.join("\n"),
        tail(&server.log(), 40)
    );
    assert!(
        retried > 0,
        "no multi-step job was retried; the retry path went untested"
    );
    assert!(
        kills_mid_workflow > 0,
        "no kill fell while a workflow ran; the workflows went untested"
    );
    eprintln!(
        "0 lost, 0 duplicated; {retried} jobs retried; {} workflows with one job per node; uptimes {uptimes:?}",
        flows.len()
    );

    // Every container is removed once its result is recorded.
    let wait = Instant::now();
    loop {
        let left = daemon.orcaops_leftovers();
        if left.is_empty() {
            break;
        }
        assert!(
            wait.elapsed() < Duration::from_secs(60),
            "containers left after every job finished: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(server);
}

/// Creates each `(plural, name, body)` in order.
fn create_all(url: &str, key: &str, creates: &[(&str, String, Value)]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for (plural, name, body) in creates {
        let started = Instant::now();
        loop {
            let code = rt.block_on(async {
                match http
                    .post(format!("{url}{API}/{plural}"))
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(resp) => resp.status().as_u16(),
                    Err(_) => 0,
                }
            });
            if code == 201 || code == 200 || code == 409 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "creating {plural}/{name} never succeeded (last answer {code})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `docker events` for Job containers, written to a file as they happen (the daemon
/// keeps only its last 256 events for `--since`).
struct EventLog {
    child: std::process::Child,
    path: std::path::PathBuf,
}

impl EventLog {
    fn start(daemon: &PrivateDockerd, path: std::path::PathBuf) -> EventLog {
        let child = std::process::Command::new("docker")
            .args(["events", "--filter", "type=container"])
            .args(["--filter", "label=orcaops.dev/kind=Job"])
            .args(["--format", "{{json .}}"])
            .env("DOCKER_HOST", daemon.host())
            .stdout(std::fs::File::create(&path).unwrap())
            .spawn()
            .expect("docker events runs");
        EventLog { child, path }
    }

    /// `(uid, run, attempt)` → (containers created, containers started).
    fn stop(mut self) -> BTreeMap<(String, u32, u32), (u32, u32)> {
        // Events up to now are written within a moment.
        std::thread::sleep(Duration::from_secs(2));
        self.child.kill().ok();
        self.child.wait().ok();
        let text = std::fs::read_to_string(&self.path).unwrap();
        let mut made: BTreeMap<(String, u32, u32), (u32, u32)> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let event: Value = serde_json::from_str(line).unwrap();
            let attrs = &event["Actor"]["Attributes"];
            let field = |k: &str| attrs[k].as_str().unwrap_or_default().to_string();
            let key = (
                field("orcaops.dev/uid"),
                field("orcaops.dev/run").parse().unwrap_or(0),
                field("orcaops.dev/attempt").parse().unwrap_or(0),
            );
            let entry = made.entry(key).or_default();
            match event["Action"].as_str() {
                Some("create") => entry.0 += 1,
                Some("start") => entry.1 += 1,
                _ => {}
            }
        }
        made
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

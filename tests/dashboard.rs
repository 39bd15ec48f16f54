//! The web dashboard at `/ui/`, in a real headless Chromium (Debian's chromium and
//! chromedriver) against the real binary and real Docker: login and its refusals, a
//! job going live in the list, its log and artifact, a workflow's DAG and an approval,
//! and a sandbox's exec console. The HTTP side of the login (cookies, one-time links,
//! the CSRF header, SSE watches) is checked without a browser first.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{Server, job_yaml};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(60);

/// A client that keeps no cookies and follows no redirects: what each answer says.
fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn one_time_link(server: &Server) -> String {
    let link = server.cli_ok(&["ui", "--print"]).trim().to_string();
    assert!(
        link.starts_with(&format!("{}/ui/login?once=", server.url)),
        "`orcaops ui --print` gives a login link of this server: {link}"
    );
    link
}

/// The cookie a login answer sets, as `name=value`.
fn cookie_of(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .unwrap_or_else(|| panic!("a login sets a cookie: {:?}", response.headers()))
        .to_str()
        .unwrap()
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "the cookie is {attribute}: {set}");
    }
    set.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_cookies_and_one_time_links_over_http() {
    let server = Server::start();
    let http = bare();

    // A page without a cookie is the login page, 401, with nothing else in it.
    let page = http
        .get(format!("{}/ui/jobs", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let body = page.text().await.unwrap();
    assert!(body.contains("name=\"key\""), "the login form: {body}");
    assert!(
        body.contains("value=\"/ui/jobs\""),
        "login returns to the page asked for: {body}"
    );

    // `serve` printed a one-time link of its own at start-up.
    let printed = common::wait_until(WAIT, "the printed dashboard link", || {
        server
            .log()
            .lines()
            .find_map(|l| l.split("Dashboard: ").nth(1).map(str::to_string))
    });
    let printed = printed.split_whitespace().next().unwrap().to_string();
    assert!(
        printed.starts_with(&format!("{}/ui/login?once=", server.url)),
        "{printed}"
    );
    let by_printed = http.get(&printed).send().await.unwrap();
    assert_eq!(by_printed.status(), 303, "the printed link logs in");

    // The one-time link logs in once, with a cookie scoped to this server's port.
    let link = one_time_link(&server);
    let first = http.get(&link).send().await.unwrap();
    assert_eq!(first.status(), 303, "{:?}", first.text().await);
    assert_eq!(first.headers()["location"], "/ui/");
    let cookie = cookie_of(&first);
    assert!(
        cookie.starts_with(&format!("orcaops-key-{}=orca_admin_", server.port)),
        "{cookie}"
    );
    let again = http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 401);
    assert!(again.text().await.unwrap().contains("used already"));

    // The cookie authenticates the app's pages and the API's reads...
    let app = http
        .get(format!("{}/ui/jobs", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(app.status(), 200);
    assert!(app.text().await.unwrap().contains("/ui/assets/app.js"));
    let session: Value = http
        .get(format!("{}/ui/session", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["admin"], true, "{session}");

    // ...but a write with it alone is refused: it must carry the dashboard's header.
    let jobs = format!(
        "{}/apis/orcaops.dev/v1alpha1/namespaces/default/jobs",
        server.url
    );
    let job = json!({"apiVersion": "orcaops.dev/v1alpha1", "kind": "Job",
        "metadata": {"name": "by-cookie"},
        "spec": {"image": common::IMAGE, "suspend": true, "steps": [{"name": "s", "run": "true"}]}});
    let refused = http
        .post(&jobs)
        .header("cookie", &cookie)
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("x-orcaops-csrf"));
    let created = http
        .post(&jobs)
        .header("cookie", &cookie)
        .header("x-orcaops-csrf", "1")
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);

    // A cookie of another port, or a wrong key, proves nothing.
    let other = cookie.replacen(&format!("orcaops-key-{}", server.port), "orcaops-key-1", 1);
    let denied = http
        .get(&jobs)
        .header("cookie", other)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let bad = format!("{}/ui/?token=orca_admin_{}", server.url, "0".repeat(64));
    let bad = http.get(bad).send().await.unwrap();
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers().get("set-cookie").is_none(),
        "a bad key sets no cookie"
    );
    let text = bad.text().await.unwrap();
    assert!(
        text.contains("not valid") && !text.contains("by-cookie"),
        "{text}"
    );

    // `?token=` with a good key logs in and leaves the URL; `next` never leaves the site.
    let good = http
        .get(format!(
            "{}/ui/jobs?token={}&ns=default",
            server.url,
            server.key()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 303);
    assert_eq!(good.headers()["location"], "/ui/jobs?ns=default");
    let form = http
        .post(format!("{}/ui/login", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "key={}&next=https%3A%2F%2Fevil.example%2F",
            server.key()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(form.headers()["location"], "/ui/");

    // Assets are compressed for browsers that take gzip, and revalidated by ETag.
    let script = http
        .get(format!("{}/ui/assets/app.js", server.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-encoding"], "gzip");
    let etag = script.headers()["etag"].to_str().unwrap().to_string();
    let cached = http
        .get(format!("{}/ui/assets/app.js", server.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    // A watch asked for as server-sent events: one `data:` event per watch event.
    let mut sse = http
        .get(format!("{jobs}?watch=true"))
        .header("cookie", &cookie)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let chunk = tokio::time::timeout(Duration::from_secs(10), sse.chunk())
        .await
        .expect("the watch sends the current job")
        .unwrap()
        .unwrap();
    let chunk = String::from_utf8_lossy(&chunk);
    let event = chunk.strip_prefix("data: ").expect("an SSE data line");
    let event: Value = serde_json::from_str(event.trim_end()).unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "by-cookie");

    // Logging out clears the cookie.
    let out = http
        .post(format!("{}/ui/logout", server.url))
        .header("cookie", &cookie)
        .header("origin", &server.url)
        .send()
        .await
        .unwrap();
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

/// A browser logged in to `server` by a one-time link, as `orcaops ui` opens it.
async fn logged_in(server: &Server) -> Browser {
    let browser = Browser::start(1280, 900).await;
    browser.goto(&one_time_link(server)).await;
    browser.wait_ready().await;
    assert!(
        browser.url().await.ends_with("/ui/"),
        "the link lands on the overview: {}",
        browser.url().await
    );
    browser
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_shows_the_login_page_not_data() {
    let server = Server::start();
    server.write(
        "quiet.yaml",
        &job_yaml(
            "quiet-job",
            "  suspend: true\n  steps:\n    - name: s\n      run: echo hidden\n",
        ),
    );
    common::wait_until(WAIT, "quiet-job", || server.job("quiet-job"));
    let browser = Browser::start(1280, 900).await;

    let wrong = format!("orca_admin_{}", "ab".repeat(32));
    browser
        .goto(&format!("{}/ui/jobs?token={wrong}", server.url))
        .await;
    let error = browser
        .wait_text("[data-testid='login-error']", WAIT, |t| !t.is_empty())
        .await;
    assert!(error.contains("not valid"), "{error}");
    let page = browser
        .run("return document.documentElement.outerHTML;", json!([]))
        .await;
    assert!(
        !page.as_str().unwrap().contains("quiet-job"),
        "no data on the login page"
    );

    // A key typed into the form: a wrong one is refused again, the right one lets in.
    browser.type_into("#key", "orca_nope_0").await;
    browser.click("[data-testid='login'] [type='submit']").await;
    browser
        .wait_text("[data-testid='login-error']", WAIT, |t| {
            t.contains("not valid")
        })
        .await;
    browser.type_into("#key", &server.key()).await;
    browser.click("[data-testid='login'] [type='submit']").await;
    browser.wait_ready().await;
    let row = "[data-testid='row-job-default-quiet-job']";
    browser
        .wait(WAIT, "the job's row after login", || async {
            (browser.count(row).await == 1).then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_goes_live_in_the_list_with_its_log_and_artifact() {
    let server = Server::start();
    let browser = logged_in(&server).await;
    browser
        .wait(WAIT, "the overview", || async {
            (browser.count("[data-testid='overview']").await == 1).then_some(())
        })
        .await;
    browser
        .goto(&format!("{}/ui/jobs?ns=default", server.url))
        .await;
    browser.wait_ready().await;
    // A mark on the page: still there at the end means the list never reloaded.
    browser.run("window.__stayed = 'yes';", json!([])).await;

    server.write(
        "live.yaml",
        &job_yaml(
            "live",
            "  workingDir: /work\n  steps:\n    - name: hello\n      run: |\n        echo dashboard-says-hello\n        sleep 3\n        mkdir -p out && echo artifact-body > out/a.txt\n  artifacts:\n    - name: a\n      path: /work/out/a.txt\n",
        ),
    );
    let phase = "[data-testid='row-job-default-live'] [data-testid='phase']";
    browser
        .wait_text(phase, WAIT, |t| t.contains("Running"))
        .await;
    browser
        .wait_text(phase, WAIT, |t| t.contains("Succeeded"))
        .await;
    let stayed = browser
        .run("return window.__stayed || null;", json!([]))
        .await;
    assert_eq!(stayed, "yes", "the list updated without a reload");

    // The job's page: its log, and its artifact with a checksum that matches.
    browser
        .click("[data-testid='row-job-default-live'] a")
        .await;
    browser.wait_ready().await;
    assert!(browser.url().await.ends_with("/ui/jobs/default/live"));
    browser
        .wait_text("[data-testid='job-phase']", WAIT, |t| {
            t.contains("Succeeded")
        })
        .await;
    browser
        .wait_text("[data-testid='log']", WAIT, |t| {
            t.contains("dashboard-says-hello")
        })
        .await;
    let shown = browser
        .wait_text("[data-testid='checksum-a']", WAIT, |t| t.trim().len() >= 64)
        .await;
    let want = hex(&Sha256::digest(b"artifact-body\n"));
    assert!(shown.contains(&want), "shown {shown}, want {want}");
    let downloaded = browser
        .run_async(
            "const done = arguments[arguments.length - 1];
             const a = document.querySelector(\"[data-testid='artifact-a']\");
             fetch(a.href).then(r => r.arrayBuffer())
               .then(b => crypto.subtle.digest('SHA-256', b))
               .then(d => done([...new Uint8Array(d)].map(x => x.toString(16).padStart(2, '0')).join('')))
               .catch(e => done('error: ' + e));",
            json!([]),
        )
        .await;
    assert_eq!(
        downloaded,
        want.as_str(),
        "the downloaded artifact's sha256"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const GATED: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: gated
spec:
  jobs:
    - name: build
      job: {image: busybox:latest, steps: [{name: s, run: 'sleep 2; echo built'}]}
    - name: test
      needs: [build]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo tested'}]}
    - name: deploy
      needs: [test]
      approval: {message: 'Ship it?'}
      job: {image: busybox:latest, steps: [{name: s, run: 'echo deploying'}]}
    - name: after
      needs: [deploy]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo after'}]}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_dag_changes_colour_and_an_approval_clicked_lets_it_go_on() {
    let server = Server::start();
    let browser = logged_in(&server).await;
    server.write("gated.yaml", GATED);
    common::wait_until(WAIT, "the workflow", || server.workflow("gated"));
    browser
        .goto(&format!("{}/ui/workflows/default/gated", server.url))
        .await;
    browser.wait_ready().await;
    assert_eq!(browser.count("[data-testid='dag']").await, 1, "an SVG DAG");
    browser
        .wait(WAIT, "every node drawn", || async {
            (browser
                .count("[data-testid='dag'] [data-testid^='node-']")
                .await
                == 4)
                .then_some(())
        })
        .await;
    let phase = |node: &'static str| {
        let browser = &browser;
        async move {
            browser
                .attribute(&format!("[data-testid='node-{node}']"), "data-phase")
                .await
                .unwrap_or_default()
        }
    };
    let fill = |node: &'static str| {
        let browser = &browser;
        async move {
            browser
                .run(
                    "const g = document.querySelector(arguments[0]);
                     const shape = g && g.querySelector('rect, circle, path, polygon');
                     return shape ? getComputedStyle(shape).fill : null;",
                    json!([format!("[data-testid='node-{node}']")]),
                )
                .await
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    browser
        .wait(WAIT, "deploy waiting for approval", || async {
            (phase("deploy").await == "WaitingApproval").then_some(())
        })
        .await;
    assert_eq!(phase("build").await, "Succeeded");
    let (waiting, succeeded) = (fill("deploy").await, fill("build").await);
    assert!(
        !waiting.is_empty() && waiting != succeeded,
        "phases have colours: {waiting} vs {succeeded}"
    );

    browser.click("[data-testid='approve-deploy']").await;
    browser
        .wait(WAIT, "the approved workflow to finish", || async {
            (phase("after").await == "Succeeded").then_some(())
        })
        .await;
    assert_eq!(phase("deploy").await, "Succeeded");
    assert_eq!(
        fill("deploy").await,
        succeeded,
        "deploy took the colour of success"
    );
    let wf = server.workflow("gated").unwrap();
    assert_eq!(wf["status"]["phase"], "Succeeded", "{wf}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_exec_through_the_console_prints_42() {
    let server = Server::start();
    let browser = logged_in(&server).await;
    server.write(
        "box.yaml",
        "apiVersion: orcaops.dev/v1alpha1\nkind: Sandbox\nmetadata:\n  name: box\nspec:\n  ttlSeconds: 3600\n  network: none\n  services:\n    - name: shell\n      image: busybox:latest\n      command: [sleep, infinity]\n",
    );
    common::wait_until(WAIT, "the sandbox Ready", || {
        common::get_in(&server, "sandboxes", "default", "box")
            .filter(|s| s["status"]["phase"] == "Ready")
    });
    browser
        .goto(&format!("{}/ui/sandboxes/default/box", server.url))
        .await;
    browser.wait_ready().await;
    let expires = browser
        .wait_text("[data-testid='expires']", WAIT, |t| !t.trim().is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = browser
        .text("[data-testid='expires']")
        .await
        .unwrap_or_default();
    assert_ne!(expires, later, "the expiry counts down live");

    browser
        .type_into("[data-testid='exec-command']", "echo $((6 * 7))")
        .await;
    browser.click("[data-testid='exec-run']").await;
    browser
        .wait_text("[data-testid='exec-output']", WAIT, |t| t.contains("42"))
        .await;
    browser
        .wait_text("[data-testid='exec-exit']", WAIT, |t| t.contains('0'))
        .await;
}

const DEMO_WORKFLOW: &str = r#"apiVersion: orcaops.dev/v1alpha1
kind: Workflow
metadata:
  name: release
spec:
  jobs:
    - name: checkout
      job: {image: busybox:latest, steps: [{name: s, run: 'echo checked out'}]}
    - name: test
      needs: [checkout]
      matrix: {shard: ["1", "2", "3"]}
      job: {image: busybox:latest, steps: [{name: s, run: 'echo shard ${{ matrix.shard }}; sleep 1'}]}
    - name: lint
      needs: [checkout]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo lint ok'}]}
    - name: package
      needs: [test, lint]
      job: {image: busybox:latest, steps: [{name: s, run: 'echo packaged'}]}
    - name: deploy
      needs: [package]
      approval: {message: 'Deploy to production?'}
      job: {image: busybox:latest, steps: [{name: s, run: 'echo deploying'}]}
"#;

/// Screenshots of the overview, a job, a workflow DAG and a sandbox, as a person sees
/// them: saved into `ORCAOPS_SCREENSHOTS` (scripts/screenshots.sh sets docs/images), or
/// a temporary dir when it is unset; each must be a real, non-blank PNG.
#[tokio::test(flavor = "multi_thread")]
async fn screenshots_of_the_main_pages() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = std::env::var_os("ORCAOPS_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&out).unwrap();

    server.write(
        "build.yaml",
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/build-with-artifact.yaml"
        ))
        .unwrap(),
    );
    server.write("broken.yaml", &job_yaml("flaky-tests", "  steps:\n    - name: unit\n      run: |\n        echo 'running 42 tests'\n        echo 'FAIL: test_login (expected 200, got 500)' >&2\n        exit 1\n"));
    server.write("slow.yaml", &job_yaml("nightly-report", "  steps:\n    - name: crunch\n      run: for i in $(seq 1 600); do echo row $i; sleep 1; done\n"));
    server.write("release.yaml", DEMO_WORKFLOW);
    server.write(
        "box.yaml",
        "apiVersion: orcaops.dev/v1alpha1\nkind: Sandbox\nmetadata:\n  name: agent-scratch\nspec:\n  ttlSeconds: 3600\n  idleTimeoutSeconds: 900\n  network: none\n  services:\n    - name: shell\n      image: busybox:latest\n      command: [sleep, infinity]\n",
    );
    server.wait_phase("build-report", "Succeeded", WAIT);
    server.wait_phase("flaky-tests", "Failed", WAIT);
    common::wait_until(WAIT, "the release workflow waiting", || {
        server
            .workflow("release")
            .filter(|w| w["status"]["phase"] == "WaitingApproval")
    });
    common::wait_until(WAIT, "the sandbox Ready", || {
        common::get_in(&server, "sandboxes", "default", "agent-scratch")
            .filter(|s| s["status"]["phase"] == "Ready")
    });

    let browser = Browser::start(1280, 800).await;
    browser.goto(&one_time_link(&server)).await;
    let pages = [
        ("overview", "/ui/".to_string()),
        ("job", "/ui/jobs/default/build-report".to_string()),
        ("workflow", "/ui/workflows/default/release".to_string()),
        ("sandbox", "/ui/sandboxes/default/agent-scratch".to_string()),
    ];
    for (name, path) in pages {
        browser.goto(&format!("{}{path}", server.url)).await;
        browser.wait_ready().await;
        if name == "sandbox" {
            browser
                .type_into("[data-testid='exec-command']", "uname -a; echo $((6 * 7))")
                .await;
            browser.click("[data-testid='exec-run']").await;
            browser
                .wait_text("[data-testid='exec-output']", WAIT, |t| t.contains("42"))
                .await;
        }
        // Let live data and layout settle before the picture.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let png = browser.screenshot().await;
        assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG");
        assert!(
            png.len() > 20_000,
            "{name}: {} bytes is a blank page",
            png.len()
        );
        std::fs::write(out.join(format!("{name}.png")), &png).unwrap();
    }
}

/// A workflow of 482 nodes (a 480-way matrix between two nodes) stays readable: the
/// matrix is one group node, which expands into every combination on a click.
#[tokio::test(flavor = "multi_thread")]
async fn a_500_node_workflow_is_grouped_and_expands() {
    let server = Server::start();
    let a: Vec<String> = (0..24).map(|i| i.to_string()).collect();
    let b: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    server.write(
        "wide.yaml",
        &format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: wide\nspec:\n  jobs:\n    - name: gate\n      approval: {{message: 'Start the sweep?'}}\n      job: {{image: busybox:latest, steps: [{{name: s, run: 'true'}}]}}\n    - name: sweep\n      needs: [gate]\n      matrix: {{a: [{}], b: [{}]}}\n      job: {{image: busybox:latest, steps: [{{name: s, run: 'true'}}]}}\n    - name: report\n      needs: [sweep]\n      job: {{image: busybox:latest, steps: [{{name: s, run: 'true'}}]}}\n",
            a.join(","),
            b.join(",")
        ),
    );
    common::wait_until(WAIT, "the workflow waiting", || {
        server
            .workflow("wide")
            .filter(|w| w["status"]["phase"] == "WaitingApproval")
    });
    let browser = logged_in(&server).await;
    browser
        .goto(&format!("{}/ui/workflows/default/wide", server.url))
        .await;
    browser.wait_ready().await;
    let nodes = "[data-testid='dag'] [data-testid^='node-']";
    browser
        .wait(WAIT, "the gate and the report drawn", || async {
            (browser.count("[data-testid='node-gate']").await == 1
                && browser.count("[data-testid='node-report']").await == 1)
                .then_some(())
        })
        .await;
    assert_eq!(
        browser.count("[data-testid='group-sweep']").await,
        1,
        "the matrix is one group"
    );
    assert_eq!(
        browser.count(nodes).await,
        2,
        "only the gate and the report besides the group"
    );
    let label = browser
        .text("[data-testid='group-sweep']")
        .await
        .unwrap_or_default();
    assert!(
        label.contains("480"),
        "the group says how many it holds: {label}"
    );
    if let Some(dir) = std::env::var_os("ORCAOPS_SCREENSHOTS") {
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::fs::write(
            std::path::Path::new(&dir).join("workflow-500.png"),
            browser.screenshot().await,
        )
        .unwrap();
    }

    browser.click("[data-testid='group-sweep']").await;
    browser
        .wait(WAIT, "every combination drawn", || async {
            (browser.count(nodes).await == 482).then_some(())
        })
        .await;
    assert_eq!(
        browser
            .attribute("[data-testid='node-sweep-a-23-b-19']", "data-phase")
            .await
            .as_deref(),
        Some("Pending")
    );
}

/// Two runs of a workflow side by side: a node that failed in one run and succeeded in
/// the other shows both phases in its row.
#[tokio::test(flavor = "multi_thread")]
async fn two_workflow_runs_side_by_side() {
    let server = Server::start();
    let workflow = |second: &str| {
        format!(
            "apiVersion: orcaops.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: twice\nspec:\n  jobs:\n    - name: first\n      job: {{image: busybox:latest, steps: [{{name: s, run: 'echo one'}}]}}\n    - name: second\n      needs: [first]\n      job: {{image: busybox:latest, steps: [{{name: s, run: '{second}'}}]}}\n"
        )
    };
    server.write("twice.yaml", &workflow("exit 1"));
    common::wait_until(WAIT, "run 1 failed", || {
        server
            .workflow("twice")
            .filter(|w| w["status"]["phase"] == "Failed")
    });
    server.write("twice.yaml", &workflow("echo fixed"));
    common::wait_until(WAIT, "a later run succeeded", || {
        server
            .workflow("twice")
            .filter(|w| w["status"]["phase"] == "Succeeded")
    });
    let run = common::wait_until(WAIT, "the run number", || {
        server
            .workflow("twice")
            .and_then(|w| w["status"]["run"].as_u64())
    });
    let browser = logged_in(&server).await;
    browser
        .goto(&format!(
            "{}/ui/workflows/default/twice/compare?a=1&b={run}",
            server.url
        ))
        .await;
    browser.wait_ready().await;
    assert_eq!(browser.count("[data-testid='compare-workflow']").await, 1);
    let row = browser
        .wait_text("[data-testid='compare-node-second']", WAIT, |t| {
            !t.is_empty()
        })
        .await;
    assert!(row.contains("Failed") && row.contains("Succeeded"), "{row}");
    let first = browser
        .text("[data-testid='compare-node-first']")
        .await
        .unwrap_or_default();
    assert!(first.matches("Succeeded").count() >= 2, "{first}");
}

//! Who may do what, against a real `orcaops serve`: every role, every verb, in its own
//! workspace and in another, plus no key, a malformed key, a wrong key, an expired key
//! and a revoked key. Every cell is asserted, and where the answer is 403 the test checks
//! that nothing changed. Then 10,000 random `Authorization` headers, all refused, and
//! the server still answering; and the agent label of a key on what it creates.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BASE: &str = "/apis/orcaops.dev/v1alpha1";

/// A suspended Job: it never starts a container, so the matrix is quick.
fn job(name: &str) -> Value {
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"image": "busybox:latest", "suspend": true, "steps": [{"name": "s", "run": "true"}]},
    })
}

fn workspace(name: &str, members: &[(&str, &str)]) -> Value {
    let members: Vec<Value> = members
        .iter()
        .map(|(name, role)| json!({"name": name, "role": role}))
        .collect();
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": name},
        "spec": {"members": members},
    })
}

struct Api {
    url: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            url: server.url.clone(),
            http: reqwest::Client::new(),
            rt: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    /// Sends a request with `auth` as its Authorization header (none when None).
    fn send(
        &self,
        auth: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let mut request = self.http.request(method, format!("{}{path}", self.url));
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.expect("the server answers");
            let code = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (
                code,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    fn ok(&self, auth: &str, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (code, answer) = self.send(Some(auth), method.clone(), path, body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: {code} {answer}"
        );
        answer
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// One request of the matrix: its verb, and what to send for workspace `ws` by caller
/// `who` (the names of the objects it touches are the caller's own, so no cell disturbs
/// another).
fn request(verb: &str, ws: &str, who: &str) -> (Method, String, Option<Value>) {
    let ns = format!("{BASE}/namespaces/{ws}");
    match verb {
        "get" => (Method::GET, format!("{ns}/jobs/fixture"), None),
        "list" => (Method::GET, format!("{ns}/jobs"), None),
        "watch" => (
            Method::GET,
            format!("{ns}/jobs?watch=true&timeoutSeconds=1"),
            None,
        ),
        "create" => (
            Method::POST,
            format!("{ns}/jobs"),
            Some(job(&format!("made-{who}"))),
        ),
        "delete" => (Method::DELETE, format!("{ns}/jobs/victim-{who}"), None),
        "logs" => (Method::GET, format!("{ns}/jobs/fixture/log"), None),
        "exec" => (
            Method::POST,
            format!("{ns}/sandboxes/nowhere/exec"),
            Some(json!({"command": ["true"]})),
        ),
        "cp" => (
            Method::GET,
            format!("{ns}/sandboxes/nowhere/files?path=/etc/hostname"),
            None,
        ),
        "cancel" => (Method::POST, format!("{ns}/jobs/fixture/cancel"), None),
        "approve" => (
            Method::POST,
            format!("{ns}/workflows/nowhere/approve"),
            Some(json!({"node": "gate"})),
        ),
        "secrets" => (
            Method::GET,
            format!("/api/v1/namespaces/{ws}/secrets"),
            None,
        ),
        "keys" => (Method::GET, format!("{BASE}/apikeys?workspace={ws}"), None),
        other => panic!("no request for {other}"),
    }
}

const VERBS: [&str; 12] = [
    "get", "list", "watch", "create", "delete", "logs", "exec", "cp", "cancel", "approve",
    "secrets", "keys",
];

/// Whether the role allows the verb in its own workspace (docs/security.md).
fn allowed(role: &str, verb: &str) -> bool {
    match role {
        "admin" => true,
        "developer" => !matches!(verb, "secrets" | "keys"),
        "viewer" => matches!(verb, "get" | "list" | "watch" | "logs"),
        other => panic!("no role {other}"),
    }
}

#[test]
fn every_role_and_verb_in_its_own_workspace_and_another() {
    let server = Server::start();
    let api = Api::new(&server);
    let admin = bearer(&server.key());
    for (name, members) in [
        (
            "team-a",
            vec![("ada", "admin"), ("dev", "developer"), ("vic", "viewer")],
        ),
        ("team-b", vec![("bob", "admin")]),
    ] {
        api.ok(
            &admin,
            Method::POST,
            &format!("{BASE}/workspaces"),
            Some(&workspace(name, &members)),
        );
    }
    let create_key = |body: Value| -> String {
        let answer = api.ok(
            &admin,
            Method::POST,
            &format!("{BASE}/apikeys"),
            Some(&body),
        );
        let key = answer["key"]
            .as_str()
            .expect("the key is in the answer")
            .to_string();
        assert!(key.starts_with("orca_"), "{answer}");
        key
    };
    let mut callers: Vec<(String, Option<&str>, Option<String>)> =
        vec![("server-admin".into(), None, Some(admin.clone()))];
    for (member, role) in [("ada", "admin"), ("dev", "developer"), ("vic", "viewer")] {
        let key = create_key(json!({"workspace": "team-a", "member": member}));
        callers.push((format!("{role}-{member}"), Some(role), Some(bearer(&key))));
    }
    // The refused ones: no key, not a key, a well-formed key nobody made, an expired key
    // and a revoked key (both once valid for ada, the admin).
    let expired = create_key(json!({"workspace": "team-a", "member": "ada", "expires": "1s"}));
    let revoked = create_key(json!({"workspace": "team-a", "member": "ada"}));
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    api.ok(
        &admin,
        Method::DELETE,
        &format!("{BASE}/apikeys/{revoked_id}"),
        None,
    );
    let forged = format!("orca_admin_{}", "0".repeat(64));
    callers.push(("no-key".into(), None, None));
    callers.push(("malformed".into(), None, Some("Bearer hunter2".into())));
    callers.push((
        "basic-auth".into(),
        None,
        Some("Basic YWRtaW46YWRtaW4=".into()),
    ));
    callers.push(("wrong-key".into(), None, Some(bearer(&forged))));
    callers.push(("expired".into(), None, Some(bearer(&expired))));
    callers.push(("revoked".into(), None, Some(bearer(&revoked))));
    std::thread::sleep(Duration::from_millis(1100));

    // What every cell may touch: a fixture and one victim per caller, in both workspaces.
    for ws in ["team-a", "team-b"] {
        let jobs = format!("{BASE}/namespaces/{ws}/jobs");
        api.ok(&admin, Method::POST, &jobs, Some(&job("fixture")));
        for (who, _, _) in &callers {
            api.ok(
                &admin,
                Method::POST,
                &jobs,
                Some(&job(&format!("victim-{who}"))),
            );
        }
    }
    // What a caller could change: each Job's spec, labels and annotations (the controller
    // writes status meanwhile, which is not the callers' doing).
    let snapshot = |ws: &str| -> BTreeMap<String, Value> {
        let list = api.ok(
            &admin,
            Method::GET,
            &format!("{BASE}/namespaces/{ws}/jobs"),
            None,
        );
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                (
                    j["metadata"]["name"].as_str().unwrap().to_string(),
                    json!([
                        j["spec"],
                        j["metadata"]["labels"],
                        j["metadata"]["annotations"]
                    ]),
                )
            })
            .collect()
    };
    let before_b = snapshot("team-b");

    let mut table = vec![format!(
        "{:<18} {:<7} {}",
        "caller",
        "ws",
        VERBS.map(|v| format!("{v:>8}")).join("")
    )];
    let mut failures = Vec::new();
    for (who, role, auth) in &callers {
        for (ws, own) in [("team-a", true), ("team-b", false)] {
            let mut row = format!("{who:<18} {ws:<7} ");
            for verb in VERBS {
                let (method, path, body) = request(verb, ws, who);
                let (code, answer) =
                    api.send(auth.as_deref(), method.clone(), &path, body.as_ref());
                row.push_str(&format!("{code:>8}"));
                let expect = match (who.as_str(), role) {
                    ("server-admin", _) => "allowed",
                    (_, None) => "401",
                    (_, Some(role)) if own && allowed(role, verb) => "allowed",
                    _ => "403",
                };
                let good = match expect {
                    "allowed" => code != 401 && code != 403 && code < 500,
                    "401" => code == 401 && answer["reason"] == "Unauthorized",
                    _ => code == 403 && answer["reason"] == "Forbidden",
                };
                if !good {
                    failures.push(format!(
                        "{who} {verb} in {ws}: expected {expect}, got {code} {answer}"
                    ));
                }
                if code == 403 {
                    let message = answer["message"].as_str().unwrap_or_default();
                    if !message.contains(ws) && verb != "keys" {
                        failures.push(format!(
                            "{who} {verb} in {ws}: the 403 does not name the workspace: {message}"
                        ));
                    }
                }
                // A refused delete left its victim; an allowed one removed it.
                if verb == "delete" {
                    let victim = format!("{BASE}/namespaces/{ws}/jobs/victim-{who}");
                    let (still, _) = api.send(Some(&admin), Method::GET, &victim, None);
                    let gone = still == 404;
                    if gone != (expect == "allowed") {
                        failures.push(format!(
                            "{who} delete in {ws}: answered {code}, victim gone: {gone}"
                        ));
                    }
                }
                if verb == "create" {
                    let made = format!("{BASE}/namespaces/{ws}/jobs/made-{who}");
                    let (exists, _) = api.send(Some(&admin), Method::GET, &made, None);
                    if (exists == 200) != (expect == "allowed") {
                        failures.push(format!(
                            "{who} create in {ws}: answered {code}, object exists: {}",
                            exists == 200
                        ));
                    }
                }
            }
            table.push(row);
        }
    }
    println!("access matrix (HTTP codes):\n{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Of team-b, only what the server admin did changed: its own create and delete.
    let after_b = snapshot("team-b");
    let mut expected = before_b.clone();
    expected.remove("victim-server-admin");
    let mut after_without_admin = after_b.clone();
    after_without_admin.remove("made-server-admin");
    // The admin's cancel of the fixture is a write too; compare the rest exactly.
    expected.remove("fixture");
    after_without_admin.remove("fixture");
    assert_eq!(
        after_without_admin, expected,
        "team-b changed beyond the server admin's writes"
    );
}

/// 64 random hex digits: the shape of a key's secret.
fn hex64(rng: &mut fastrand::Rng) -> String {
    (0..64)
        .map(|_| char::from_digit(rng.u32(..16), 16).unwrap())
        .collect()
}

#[test]
fn ten_thousand_random_authorization_headers_are_all_refused() {
    let server = Server::start();
    let api = Api::new(&server);
    let admin = server.key();
    let id = admin.split('_').nth(1).unwrap().to_string();
    let mut rng = fastrand::Rng::with_seed(0x0a7_4e11);
    let path = format!("{BASE}/namespaces/default/jobs");
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    let (mut sent, mut skipped) = (0, 0);
    let headers: Vec<Vec<u8>> = (0..10_000)
        .map(|i| match i % 6 {
            // Random bytes.
            0 => (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect(),
            // Random printable text after Bearer.
            1 => format!(
                "Bearer {}",
                (0..rng.usize(0..120))
                    .map(|_| rng.alphanumeric())
                    .collect::<String>()
            )
            .into_bytes(),
            // Well-formed keys with random ids and secrets.
            2 => format!("Bearer orca_{:012x}_{}", rng.u64(..) >> 16, hex64(&mut rng)).into_bytes(),
            // The admin key's id with a wrong secret.
            3 => format!("Bearer orca_{id}_{}", hex64(&mut rng)).into_bytes(),
            // The admin key, mangled by one character.
            4 => {
                let mut key = format!("Bearer {admin}").into_bytes();
                let at = rng.usize(7..key.len());
                key[at] = if key[at] == b'0' { b'1' } else { b'0' };
                key
            }
            // Other schemes, and the key without one.
            _ => [
                format!("Basic {admin}"),
                admin.clone(),
                format!("Token {admin}"),
                format!("Bearer  {admin}x"),
            ][rng.usize(..4)]
            .clone()
            .into_bytes(),
        })
        .collect();
    api.rt.block_on(async {
        let http = reqwest::Client::new();
        for chunk in headers.chunks(50) {
            let answers = futures::future::join_all(chunk.iter().map(|header| {
                let value = reqwest::header::HeaderValue::from_bytes(header);
                let http = http.clone();
                let url = format!("{}{path}", api.url);
                async move {
                    let value = value.ok()?;
                    let response = http
                        .get(url)
                        .header("Authorization", value)
                        .send()
                        .await
                        .ok()?;
                    Some(response.status().as_u16())
                }
            }))
            .await;
            for answer in answers {
                match answer {
                    Some(code) => {
                        sent += 1;
                        *codes.entry(code).or_default() += 1;
                    }
                    // Bytes no HTTP header may carry: the client cannot send them.
                    None => skipped += 1,
                }
            }
        }
    });
    println!(
        "{sent} random Authorization headers sent ({skipped} not sendable as a header): codes {codes:?}"
    );
    assert!(sent > 8_000, "too few were sent: {sent}");
    assert_eq!(
        codes.keys().copied().collect::<Vec<_>>(),
        vec![401],
        "every one is refused with 401"
    );
    // The server still answers, and the real key still works.
    let (code, _) = api.send(Some(&bearer(&admin)), Method::GET, &path, None);
    assert_eq!(code, 200);
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// A server whose Workspace `default` lists the member `ci` with `role`, and a key made
/// for `ci` with the `extra` flags of `key create`: (server, api, admin's bearer, key).
fn server_with_ci(role: &str, extra: &[&str]) -> (Server, Api, String, String) {
    let server = Server::start();
    let api = Api::new(&server);
    let admin = bearer(&server.key());
    api.ok(
        &admin,
        Method::POST,
        &format!("{BASE}/workspaces"),
        Some(&workspace("default", &[("ci", role)])),
    );
    let create = ["key", "create", "-w", "default", "--member", "ci", "-q"];
    let key = server.cli_ok(&[&create[..], extra].concat());
    (server, api, admin, key.trim().to_string())
}

#[test]
fn an_agents_key_marks_what_it_creates_and_get_filters_by_it() {
    let (server, api, admin, made) = server_with_ci("developer", &["--agent", "claude-code"]);
    let agent = bearer(made.trim());
    let jobs = format!("{BASE}/namespaces/default/jobs");
    // The body cannot claim another creator: the server's word wins.
    let mut forged = job("by-agent");
    forged["metadata"]["annotations"] = json!({"orcaops.dev/created-by": "someone-else"});
    let created = api.ok(&agent, Method::POST, &jobs, Some(&forged));
    assert_eq!(
        created["metadata"]["annotations"]["orcaops.dev/created-by"],
        "claude-code"
    );
    api.ok(&admin, Method::POST, &jobs, Some(&job("by-person")));
    let listed = server.cli_ok(&["get", "jobs", "--created-by", "claude-code"]);
    assert!(listed.contains("by-agent"), "{listed}");
    assert!(!listed.contains("by-person"), "{listed}");
    let by_admin = server.cli_ok(&["get", "jobs", "--created-by", "local-admin"]);
    assert!(
        by_admin.contains("by-person") && !by_admin.contains("by-agent"),
        "{by_admin}"
    );
    // key list shows the key, never its secret; the store holds only its hash.
    let list = server.cli_ok(&["key", "list"]);
    assert!(
        list.contains("claude-code") && list.contains("ci"),
        "{list}"
    );
    let secret = made.trim().rsplit('_').next().unwrap();
    assert!(!list.contains(secret), "{list}");
    let mut db = std::fs::read(server.data_dir.join("orcaops.db")).unwrap();
    db.extend(std::fs::read(server.data_dir.join("orcaops.db-wal")).unwrap_or_default());
    let needle = secret.as_bytes();
    assert!(
        !db.windows(needle.len()).any(|w| w == needle),
        "the key's secret is in the database"
    );
}

#[test]
fn keys_rotate_with_a_grace_period_and_expire() {
    let (server, api, _admin, old) = server_with_ci("viewer", &[]);
    let id = old.split('_').nth(1).unwrap().to_string();
    let jobs = format!("{BASE}/namespaces/default/jobs");
    assert_eq!(
        api.send(Some(&bearer(&old)), Method::GET, &jobs, None).0,
        200
    );
    let new = server
        .cli_ok(&["key", "rotate", &id, "--grace", "2s", "-q"])
        .trim()
        .to_string();
    assert_ne!(new, old);
    // Both work during the grace period; then only the new one.
    assert_eq!(
        api.send(Some(&bearer(&old)), Method::GET, &jobs, None).0,
        200
    );
    assert_eq!(
        api.send(Some(&bearer(&new)), Method::GET, &jobs, None).0,
        200
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (code, answer) = api.send(Some(&bearer(&old)), Method::GET, &jobs, None);
    assert_eq!(code, StatusCode::UNAUTHORIZED.as_u16(), "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("rotated"),
        "{answer}"
    );
    assert_eq!(
        api.send(Some(&bearer(&new)), Method::GET, &jobs, None).0,
        200
    );
    // A member the Workspace no longer lists loses access at once, key or not.
    // Outside the watched folder: this Workspace was made through the API.
    let file = server.data_dir.parent().unwrap().join("workspace.yaml");
    std::fs::write(
        &file,
        "apiVersion: orcaops.dev/v1alpha1\nkind: Workspace\nmetadata:\n  name: default\nspec:\n  members: []\n",
    )
    .unwrap();
    server.cli_ok(&["apply", "-f", file.to_str().unwrap()]);
    let refused = common::wait_until(
        Duration::from_secs(10),
        "the removed member is refused",
        || {
            let (code, answer) = api.send(Some(&bearer(&new)), Method::GET, &jobs, None);
            (code == 403).then_some(answer)
        },
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not a member"),
        "{refused}"
    );
}

#[test]
fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    // One request a second, bursts of ten.
    let server = Server::start_with_env(&[("ORCAOPS_RATE_LIMIT", "1")]);
    let api = Api::new(&server);
    let key = bearer(&server.key());
    let path = format!("{BASE}/namespaces/default/jobs");
    let answers: Vec<(u16, Option<String>)> = api.rt.block_on(async {
        let mut answers = Vec::new();
        for _ in 0..30 {
            let response = api
                .http
                .get(format!("{}{path}", api.url))
                .header("Authorization", &key)
                .send()
                .await
                .unwrap();
            let retry = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            answers.push((response.status().as_u16(), retry));
        }
        answers
    });
    let limited: Vec<_> = answers.iter().filter(|(code, _)| *code == 429).collect();
    assert!(
        !limited.is_empty(),
        "no 429 in 30 quick requests at 1/s: {answers:?}"
    );
    assert!(
        answers.iter().take(5).all(|(code, _)| *code == 200),
        "{answers:?}"
    );
    for (_, retry) in &limited {
        let secs: u64 = retry
            .as_deref()
            .expect("a 429 says when to retry")
            .parse()
            .unwrap();
        assert!((1..=2).contains(&secs), "{retry:?}");
    }
    // A request without a valid key is refused before it counts against any key.
    let (code, _) = api.send(Some("Bearer nope"), Method::GET, &path, None);
    assert_eq!(code, 401);
    std::thread::sleep(Duration::from_millis(2100));
    let (code, _) = api.send(Some(&key), Method::GET, &path, None);
    assert_eq!(code, 200, "the bucket refills");
}

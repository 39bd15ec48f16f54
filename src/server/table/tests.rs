use super::*;
use axum::http::HeaderValue;

const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn accept(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
    headers
}

fn metadata_request() -> TableRequest {
    TableRequest {
        version: "v1",
        include: IncludeObject::Metadata,
    }
}

fn now() -> DateTime<Utc> {
    "2025-01-01T12:00:00Z".parse().unwrap()
}

fn job(name: &str, status: Value) -> Value {
    json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": "7",
            "labels": { "team": "a" },
            "creationTimestamp": "2025-01-01T11:56:48Z",
        },
        "spec": { "image": "busybox:latest", "steps": [{ "name": "s", "run": "true" }] },
        "status": status,
    })
}

#[test]
fn kubectl_accept_header_asks_for_a_v1_table_with_metadata() {
    let t = requested(&accept(KUBECTL_ACCEPT), Some("limit=500")).unwrap();
    assert_eq!(t, Some(metadata_request()));
    let t = requested(&accept(KUBECTL_ACCEPT), Some("includeObject=Object")).unwrap();
    assert_eq!(t.unwrap().include, IncludeObject::Object);
    assert_eq!(requested(&accept("application/json"), None).unwrap(), None);
    assert_eq!(requested(&HeaderMap::new(), None).unwrap(), None);
    let beta = requested(
        &accept("application/json;as=Table;g=meta.k8s.io;v=v1beta1"),
        None,
    )
    .unwrap();
    assert_eq!(beta.unwrap().version, "v1beta1");
    assert!(requested(&accept(KUBECTL_ACCEPT), Some("includeObject=All")).is_err());
}

#[test]
fn job_rows_carry_the_crd_columns() {
    let list = json!({
        "apiVersion": "orcaops.dev/v1alpha1",
        "kind": "JobList",
        "metadata": { "resourceVersion": "9", "continue": "abc" },
        "items": [
            job("a", json!({ "phase": "Succeeded", "totalRuns": 2, "attempt": 1, "summary": "1 step ok" })),
            job("b", Value::Null),
        ],
    });
    let table = convert(&list, metadata_request(), now()).unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        table["metadata"],
        json!({ "resourceVersion": "9", "continue": "abc" })
    );
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Name", "Phase", "Runs", "Attempt", "Summary", "Anomaly", "Age"
        ]
    );
    assert_eq!(table["columnDefinitions"][4]["priority"], 1);
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    assert_eq!(
        table["rows"][0]["cells"],
        json!(["a", "Succeeded", 2, 1, "1 step ok", null, "3m12s"])
    );
    assert_eq!(
        table["rows"][1]["cells"],
        json!(["b", null, null, null, null, null, "3m12s"])
    );
    let object = &table["rows"][0]["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(object["metadata"]["labels"]["team"], "a");
    assert!(object.get("spec").is_none());
}

#[test]
fn one_object_is_a_one_row_table_and_include_object_is_honoured() {
    let request = TableRequest {
        version: "v1",
        include: IncludeObject::Object,
    };
    let table = convert(&job("a", Value::Null), request, now()).unwrap();
    assert_eq!(table["metadata"]["resourceVersion"], "7");
    assert_eq!(table["rows"].as_array().unwrap().len(), 1);
    assert_eq!(table["rows"][0]["object"]["kind"], "Job");
    let none = TableRequest {
        version: "v1",
        include: IncludeObject::None,
    };
    let table = convert(&job("a", Value::Null), none, now()).unwrap();
    assert!(table["rows"][0].get("object").is_none());
}

#[test]
fn bodies_that_are_not_objects_pass_unchanged() {
    assert!(
        convert(
            &json!({ "kind": "RunList", "items": [] }),
            metadata_request(),
            now()
        )
        .is_none()
    );
    assert!(convert(&json!({ "kind": "Status" }), metadata_request(), now()).is_none());
    assert!(convert(&json!([1, 2]), metadata_request(), now()).is_none());
}

#[test]
fn cells_follow_the_column_type() {
    let v = json!({ "a": { "b": [ { "c": 3.7 } ] }, "s": 5, "t": "x" });
    assert_eq!(find(&v, ".a.b[0].c"), Some(&json!(3.7)));
    assert_eq!(find(&v, "{.a.b[0].c}"), Some(&json!(3.7)));
    assert_eq!(find(&v, ".a.missing"), None);
    assert_eq!(cell("integer", find(&v, ".a.b[0].c"), now()), json!(3));
    assert_eq!(cell("number", find(&v, ".s"), now()), json!(5.0));
    assert_eq!(cell("string", find(&v, ".s"), now()), json!("5"));
    assert_eq!(cell("boolean", find(&v, ".t"), now()), Value::Null);
    assert_eq!(
        cell("date", Some(&json!("yesterday")), now()),
        json!("<invalid>")
    );
}

#[test]
fn durations_read_as_kubectl_prints_them() {
    let d = chrono::TimeDelta::seconds;
    assert_eq!(human_duration(d(-5)), "<invalid>");
    assert_eq!(human_duration(d(0)), "0s");
    assert_eq!(human_duration(d(119)), "119s");
    assert_eq!(human_duration(d(180)), "3m");
    assert_eq!(human_duration(d(192)), "3m12s");
    assert_eq!(human_duration(d(45 * 60)), "45m");
    assert_eq!(human_duration(d(5 * 3600 + 120)), "5h2m");
    assert_eq!(human_duration(d(30 * 3600)), "30h");
    assert_eq!(human_duration(d(3 * 86400 + 7200)), "3d2h");
    assert_eq!(human_duration(d(40 * 86400)), "40d");
    assert_eq!(human_duration(d(3 * 365 * 86400 + 86400)), "3y1d");
}

#[test]
fn events_get_the_kubectl_event_columns() {
    let list = json!({
        "apiVersion": "v1",
        "kind": "EventList",
        "items": [{
            "involvedObject": { "kind": "Job", "namespace": "default", "name": "hello", "uid": "u" },
            "type": "Normal",
            "reason": "Started",
            "message": "run 1 started",
            "count": 1,
            "firstTimestamp": "2025-01-01T11:59:00Z",
            "lastTimestamp": "2025-01-01T11:59:30Z",
        }],
    });
    let table = convert(&list, metadata_request(), now()).unwrap();
    assert_eq!(
        table["rows"][0]["cells"],
        json!([
            "30s",
            "Normal",
            "Started",
            "job/hello",
            "run 1 started",
            1,
            "60s"
        ])
    );
    assert_eq!(
        table["rows"][0]["object"]["metadata"]["namespace"],
        "default"
    );
    assert!(table["rows"][0]["object"]["metadata"]["name"].is_string());
}

#[test]
fn watch_lines_become_one_row_tables_and_bookmarks_pass() {
    let event = json!({ "type": "MODIFIED", "object": job("a", json!({ "phase": "Running" })) });
    let line = format!("{event}\n");
    let out: Value =
        serde_json::from_slice(&convert_event_line(line.as_bytes(), metadata_request())).unwrap();
    assert_eq!(out["type"], "MODIFIED");
    assert_eq!(out["object"]["kind"], "Table");
    assert_eq!(out["object"]["rows"][0]["cells"][1], "Running");
    let bookmark = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Job\",\"metadata\":{\"resourceVersion\":\"3\"}}}\n";
    assert_eq!(
        convert_event_line(bookmark.as_bytes(), metadata_request()),
        bookmark.as_bytes()
    );
    assert_eq!(
        convert_event_line(b"garbage\n", metadata_request()),
        b"garbage\n"
    );
}

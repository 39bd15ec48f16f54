//! The latency of every Kubernetes API call the process makes, timed in one place: a
//! tower layer on the client that the store, the pod runtime and the Lease share.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{Request, Uri};
use tower::{Layer, Service};

use crate::metrics::CallLatency;

/// The process's Kubernetes call latency (one client per process; `/metrics` exports it
/// once the operator registers it).
pub fn call_latency() -> CallLatency {
    static CALLS: OnceLock<CallLatency> = OnceLock::new();
    CALLS.get_or_init(CallLatency::default).clone()
}

/// Times each request through the service it wraps, until the response headers.
#[derive(Clone)]
pub struct TimedLayer(pub CallLatency);

impl<S> Layer<S> for TimedLayer {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            latency: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    latency: CallLatency,
}

impl<S, B> Service<Request<B>> for Timed<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let operation = operation(request.method().as_str(), request.uri());
        let latency = self.latency.clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            let outcome = if answer.is_ok() {
                "answered"
            } else {
                "unreachable"
            };
            latency.observe_named(operation, outcome, started.elapsed());
            answer
        })
    }
}

/// `VERB resource[/subresource]` of a request: `get jobs`, `list pods`, `watch jobs`,
/// `patch jobs/status`, `get pods/log`. Resource names come from the API's paths, a
/// set fixed by the code; anything unexpected is `_other`.
pub fn operation(method: &str, uri: &Uri) -> String {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/GROUP/VERSION/...
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    }
    .unwrap_or(&[]);
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named, sub) = match rest {
        [] => ("_other", false, None),
        [resource] => (*resource, false, None),
        [resource, _] => (*resource, true, None),
        [resource, _, sub, ..] => (*resource, true, Some(*sub)),
    };
    let plain = |s: &str| s.len() <= 40 && s.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    let resource = if plain(resource) { resource } else { "_other" };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match (method, named, watch) {
        ("GET", _, true) => "watch",
        ("GET", false, _) => "list",
        ("GET", true, _) => "get",
        ("POST", ..) => "create",
        ("PUT", ..) => "update",
        ("PATCH", ..) => "patch",
        ("DELETE", false, _) => "deletecollection",
        ("DELETE", true, _) => "delete",
        _ => "_other",
    };
    match sub {
        Some(sub) if plain(sub) => format!("{verb} {resource}/{sub}"),
        Some(_) => format!("{verb} {resource}/_other"),
        None => format!("{verb} {resource}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, uri: &str) -> String {
        operation(method, &uri.parse().unwrap())
    }

    #[test]
    fn operations_name_the_verb_and_resource_never_the_object() {
        let jobs = "/apis/orcaops.dev/v1alpha1/namespaces/team-a/jobs";
        assert_eq!(op("GET", jobs), "list jobs");
        assert_eq!(
            op("GET", &format!("{jobs}?watch=true&resourceVersion=5")),
            "watch jobs"
        );
        assert_eq!(op("GET", &format!("{jobs}/build")), "get jobs");
        assert_eq!(
            op("PATCH", &format!("{jobs}/build/status")),
            "patch jobs/status"
        );
        assert_eq!(
            op("GET", "/api/v1/namespaces/a/pods/p-1/log?follow=true"),
            "get pods/log"
        );
        assert_eq!(op("DELETE", "/api/v1/namespaces/a/pods/p-1"), "delete pods");
        assert_eq!(op("GET", "/apis/orcaops.dev/v1alpha1/jobs"), "list jobs");
        assert_eq!(
            op(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/orcaops-operator"
            ),
            "update leases"
        );
        assert_eq!(op("GET", "/version"), "list _other");
        assert_eq!(op("GET", "/api/v1/namespaces/a/Weird_Name"), "list _other");
    }

    #[tokio::test]
    async fn every_call_through_the_client_is_timed() {
        let (mock, mut handle) = tower_test::mock::pair::<
            Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let latency = CallLatency::default();
        let client = kube::Client::new(TimedLayer(latency.clone()).layer(mock), "default");
        let server = tokio::spawn(async move {
            let (request, reply) = handle.next_request().await.expect("a request");
            assert_eq!(request.uri().path(), "/api/v1/namespaces/default/pods");
            let body = serde_json::json!({"apiVersion": "v1", "kind": "PodList",
                "metadata": {"resourceVersion": "1"}, "items": []});
            reply.send_response(
                http::Response::builder()
                    .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        });
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::default_namespaced(client);
        pods.list(&Default::default()).await.unwrap();
        server.await.unwrap();
        let metrics = crate::metrics::Metrics::new();
        metrics.register_kube_calls(latency);
        let text = metrics.encode();
        assert!(
            text.contains(r#"orcaops_kube_call_duration_seconds_count{operation="list pods",outcome="answered"} 1"#),
            "{text}"
        );
    }
}

//! Label values with a bound: each distinct value is a time series kept for the life of
//! the process (and of Prometheus's retention), so names that people and agents choose
//! (workspaces, jobs) are let in up to a limit, and the rest share one value.

use std::collections::HashSet;
use std::sync::Mutex;

/// The label value of everything past a bound.
pub const OTHER: &str = "_other";
/// Distinct workspaces labelled by name in the run histogram; later ones are `_other`.
pub const MAX_WORKSPACES: usize = 20;
/// Distinct jobs (workspace and name) labelled by name in the run histogram; later ones
/// are `_other`.
pub const MAX_JOBS: usize = 100;
/// The route label of a request no route matched (an unknown path).
pub const UNMATCHED: &str = "_unmatched";

/// The first `max` distinct keys keep their own label value, first come first served,
/// for the life of the process; every later key gets [`OTHER`].
pub struct BoundedNames {
    max: usize,
    admitted: Mutex<HashSet<String>>,
}

impl BoundedNames {
    pub fn new(max: usize) -> Self {
        BoundedNames {
            max,
            admitted: Mutex::new(HashSet::new()),
        }
    }

    /// The label value for `key` (what makes it distinct, e.g. `workspace/job`): `value`
    /// when `key` was admitted or there is room for it, else [`OTHER`].
    pub fn label(&self, key: &str, value: &str) -> String {
        let mut admitted = self.admitted.lock().expect("label bound lock");
        if admitted.contains(key) {
            return value.to_string();
        }
        if admitted.len() < self.max {
            admitted.insert(key.to_string());
            return value.to_string();
        }
        OTHER.to_string()
    }
}

/// The HTTP methods the API answers keep their name; anything else is [`OTHER`] (a
/// client can send any token as a method).
pub fn bounded_method(method: &str) -> &str {
    match method {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
        _ => OTHER,
    }
}

/// The route label of a request: its route template as axum matched it, with the tail
/// of a nested service (MCP at `/mcp`) written as `{*rest}`; [`UNMATCHED`] without one.
pub fn route_label(route: Option<&str>) -> String {
    let Some(route) = route else {
        return UNMATCHED.to_string();
    };
    // axum names the tail of a nested service with a private parameter.
    match route.find("{*__private__axum_nest_tail_param}") {
        Some(at) => format!("{}{{*rest}}", &route[..at]),
        None => route.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_bound_share_other() {
        let jobs = BoundedNames::new(2);
        assert_eq!(jobs.label("a/build", "build"), "build");
        assert_eq!(jobs.label("b/build", "build"), "build");
        assert_eq!(jobs.label("a/test", "test"), OTHER, "the third key");
        assert_eq!(
            jobs.label("a/build", "build"),
            "build",
            "admitted ones stay"
        );
        assert_eq!(jobs.label("b/build", "build"), "build");
        assert_eq!(jobs.label("c/deploy", "deploy"), OTHER);
    }

    #[test]
    fn methods_are_bounded() {
        assert_eq!(bounded_method("PATCH"), "PATCH");
        assert_eq!(bounded_method("get"), OTHER, "methods are case-sensitive");
        assert_eq!(bounded_method("PROPFIND"), OTHER);
    }

    #[test]
    fn routes_are_templates_and_nested_tails_are_named() {
        let template = "/apis/orcaops.dev/v1alpha1/namespaces/{ns}/{plural}/{name}";
        assert_eq!(route_label(Some(template)), template);
        assert_eq!(route_label(None), UNMATCHED);
        assert_eq!(
            route_label(Some("/mcp/{*__private__axum_nest_tail_param}")),
            "/mcp/{*rest}"
        );
    }
}

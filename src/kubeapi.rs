//! What every user of the Kubernetes API client shares, whatever layer it is in: how
//! its errors read to a person, and whether a request never arrived. The store, the
//! pod runtime and the operator all talk to the API; none of them owns this.

#[cfg(test)]
pub(crate) mod mock;
pub mod timing;

/// Whether the request never got an answer (connection refused, DNS, TLS, timeout), as
/// opposed to an answer that refused it.
pub fn is_unreachable(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// A Kubernetes error for a person: the API server's message and reason, or what kept
/// the request from arriving.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.reason.is_empty() => {
            format!("the Kubernetes API answered {}: {}", s.code, s.message)
        }
        kube::Error::Api(s) => format!(
            "the Kubernetes API answered {} {}: {}",
            s.code, s.reason, s.message
        ),
        e if is_unreachable(e) => format!("cannot reach the Kubernetes API: {e}"),
        e => format!("Kubernetes client error: {e}"),
    }
}

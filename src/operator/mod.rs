//! Cluster mode's process (`orcaops operator`): leader election among replicas, and the
//! metrics and health endpoints ([`http`]).

pub mod http;
pub mod lease;
pub mod metrics;

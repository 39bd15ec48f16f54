//! Cluster mode's process (`orcaops operator`): leader election among replicas, and the
//! metrics and health endpoints.

pub mod lease;

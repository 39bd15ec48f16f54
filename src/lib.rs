//! orcaops: a Kubernetes-style declarative reconciler for sandboxed execution.
//!
//! Sources write desired state into a store; controllers drive runtimes toward it.

pub mod audit;
pub mod cli;
pub mod client;
pub mod controller;
pub mod kubeapi;
pub mod mcp;
pub mod metrics;
pub mod notifications;
pub mod operator;
pub mod policy;
pub mod records;
pub mod resources;
pub mod runtime;
pub mod server;
pub mod source;
pub mod store;
pub mod summary;

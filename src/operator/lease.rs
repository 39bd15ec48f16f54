//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator
//! replicas exactly one acts.
//!
//! As client-go's leader election: a replica takes the Lease when nobody holds it or
//! the holder stopped renewing it (`renewTime + leaseDurationSeconds` is past), and
//! then renews it every few seconds. Every write carries the `resourceVersion` read, so
//! of two replicas racing for the Lease the API server lets exactly one win (the other
//! gets 409). A leader that cannot renew for [`LeaseConfig::renew_deadline`] steps
//! down before the Lease can expire, so that two leaders never overlap.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The Lease the replicas share.
pub const LEASE_NAME: &str = "orcaops-operator";

/// Where the namespace of a pod's service account is mounted.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Who holds the Lease: the pod's name.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// How often the leader renews it.
    pub renew_period: Duration,
    /// How long the leader keeps acting while renewals fail; shorter than
    /// `lease_duration`, so it stops before another replica may take over.
    pub renew_deadline: Duration,
    /// How often a standby looks whether the Lease is free.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// 15 s leases renewed every 5 s; a leader that cannot renew for 10 s steps down.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseConfig {
            name: LEASE_NAME.to_string(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The operator's own namespace: `--namespace`, else `POD_NAMESPACE` (the downward API),
/// else the service account's namespace file, else the client's default namespace.
pub fn own_namespace(flag: Option<&str>, client: &Client) -> String {
    if let Some(ns) = flag.filter(|ns| !ns.is_empty()) {
        return ns.to_string();
    }
    if let Ok(ns) = std::env::var("POD_NAMESPACE")
        && !ns.is_empty()
    {
        return ns;
    }
    if let Ok(ns) = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
        && !ns.trim().is_empty()
    {
        return ns.trim().to_string();
    }
    client.default_namespace().to_string()
}

/// Who this replica is: `POD_NAME`, else the host name with a random suffix (two
/// processes on one machine must not both believe they hold the Lease).
pub fn own_identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME")
        && !name.is_empty()
    {
        return name;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "orcaops".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// Takes and keeps the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

/// What one look at the Lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// This replica holds the Lease (just taken or renewed).
    Leading,
    /// Another replica holds it and renews it.
    HeldBy(String),
    /// Another replica wrote the Lease first (409): it won this round.
    LostRace,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// One round: create the Lease when absent, renew it when ours, take it over when
    /// expired; otherwise leave it.
    pub async fn try_acquire_or_renew(&self, now: DateTime<Utc>) -> kube::Result<Observation> {
        let config = &self.config;
        let Some(current) = self.api.get_opt(&config.name).await? else {
            let lease = self.lease(None, now, now, 0);
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Observation::Leading),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Observation::LostRace),
                Err(e) => Err(e),
            };
        };
        let held = LeaseState::of(&current);
        let ours = held.holder.as_deref() == Some(config.identity.as_str());
        let lease = if ours {
            self.lease(
                Some(&current),
                held.acquired.unwrap_or(now),
                now,
                held.transitions,
            )
        } else if let Some(holder) = held.holder.as_ref().filter(|_| !held.expired(now)) {
            return Ok(Observation::HeldBy(holder.clone()));
        } else {
            self.lease(Some(&current), now, now, held.transitions + 1)
        };
        match self
            .api
            .replace(&config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Observation::Leading),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Observation::LostRace),
            Err(e) => Err(e),
        }
    }

    /// Lets the Lease go on shutdown, so that a standby takes over at once rather than
    /// after it expires. Only when it is still ours; best effort.
    pub async fn release(&self) {
        let Ok(Some(current)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let held = LeaseState::of(&current);
        if held.holder.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        let mut lease = current.clone();
        let spec = lease.spec.get_or_insert_default();
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            warn!(error = %e, "cannot release the Lease; it expires by itself");
        }
    }

    /// The Lease held by this replica, from `current` (its resourceVersion guards the write).
    fn lease(
        &self,
        current: Option<&Lease>,
        acquired: DateTime<Utc>,
        renewed: DateTime<Utc>,
        transitions: i32,
    ) -> Lease {
        let config = &self.config;
        let value = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": config.name,
                "namespace": config.namespace,
                "resourceVersion": current.and_then(|c| c.metadata.resource_version.clone()),
            },
            "spec": {
                "holderIdentity": config.identity,
                "leaseDurationSeconds": config.lease_duration.as_secs(),
                "acquireTime": micro_time(acquired),
                "renewTime": micro_time(renewed),
                "leaseTransitions": transitions,
            },
        });
        serde_json::from_value(value).expect("a Lease built from valid fields")
    }

    /// Runs the election until `shutdown`: the receiver says whether this replica leads
    /// now. It starts false; it turns true once the Lease is ours, and false again when
    /// another replica wins it or renewing fails past the deadline.
    pub fn run(self, shutdown: CancellationToken) -> (watch::Receiver<bool>, JoinHandle<()>) {
        let (leading, receiver) = watch::channel(false);
        let task = tokio::spawn(async move {
            let config = self.config.clone();
            let mut last_renewed: Option<tokio::time::Instant> = None;
            loop {
                let observed = self.try_acquire_or_renew(Utc::now()).await;
                let was = *leading.borrow();
                let now_leading = match observed {
                    Ok(Observation::Leading) => {
                        last_renewed = Some(tokio::time::Instant::now());
                        true
                    }
                    Ok(Observation::HeldBy(holder)) => {
                        if was {
                            warn!(%holder, "another replica holds the Lease; stepping down");
                        }
                        false
                    }
                    Ok(Observation::LostRace) => false,
                    Err(e) => {
                        let within =
                            last_renewed.is_some_and(|at| at.elapsed() < config.renew_deadline);
                        warn!(error = %e, leading = was && within, "cannot read or write the Lease");
                        was && within
                    }
                };
                if now_leading != was {
                    match now_leading {
                        true => {
                            info!(identity = %config.identity, lease = %config.name, namespace = %config.namespace, "leading")
                        }
                        false => warn!(identity = %config.identity, "no longer leading"),
                    }
                    leading.send_replace(now_leading);
                }
                let wait = if now_leading {
                    config.renew_period
                } else {
                    config.retry_period
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if *leading.borrow() {
                leading.send_replace(false);
                self.release().await;
            }
        });
        (receiver, task)
    }
}

/// What a Lease says, read through JSON (its times are jiff's; the application's are chrono's).
#[derive(Debug, Default)]
struct LeaseState {
    holder: Option<String>,
    acquired: Option<DateTime<Utc>>,
    renewed: Option<DateTime<Utc>>,
    duration_secs: i64,
    transitions: i32,
}

impl LeaseState {
    fn of(lease: &Lease) -> LeaseState {
        let Some(spec) = lease.spec.as_ref() else {
            return LeaseState::default();
        };
        let time = |t: Option<String>| {
            t.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        LeaseState {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            acquired: time(spec.acquire_time.as_ref().map(|t| t.0.to_string())),
            renewed: time(spec.renew_time.as_ref().map(|t| t.0.to_string())),
            duration_secs: i64::from(spec.lease_duration_seconds.unwrap_or(0)),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// Past `renewTime + leaseDurationSeconds` (a Lease never renewed has expired).
    fn expired(&self, now: DateTime<Utc>) -> bool {
        match self.renewed {
            Some(renewed) => renewed + chrono::TimeDelta::seconds(self.duration_secs) < now,
            None => true,
        }
    }
}

/// A MicroTime as the API server writes it.
fn micro_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests;

//! `env[].valueFrom.secretKeyRef`: the Secret keys a container's env reads, resolved
//! through [`SecretValues`] when the container is created, and only then.
//!
//! Observe asks only whether every reference resolves ([`missing`]): a Job whose Secret
//! or key is missing stays Pending with the `SecretMissing` condition and looks again
//! shortly. The values are read by [`resolve_job`] just before the attempt starts and go
//! to the runtime as plain env; they are never in a status, event, log line or error.
//! On a cluster the answer is [`SecretValue::Native`]: the reference stays, and the pod
//! reads the Secret itself.

use std::fmt;
use std::time::Duration;

use crate::resources::common::EnvVar;
use crate::resources::job::JobSpec;
use crate::store::StoreError;
use crate::store::secrets::{SecretValue, SecretValues};

/// How often a Job waiting for a Secret looks again.
pub const SECRET_RECHECK: Duration = Duration::from_secs(2);

/// A reference that does not resolve, and why. It names the secret and key, never a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMissing {
    pub namespace: String,
    pub secret: String,
    pub key: String,
    pub variable: String,
    pub why: MissingWhy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingWhy {
    NoSecret,
    NoKey,
    NotText,
}

impl fmt::Display for SecretMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SecretMissing {
            namespace,
            secret,
            key,
            variable,
            why,
        } = self;
        match why {
            MissingWhy::NoSecret => write!(
                f,
                "env {variable} reads key {key} of secret {secret}, and there is no secret {secret} in namespace {namespace}; create it with kubectl create secret generic {secret} --from-literal={key}=VALUE -n {namespace}"
            ),
            MissingWhy::NoKey => write!(
                f,
                "env {variable} reads key {key} of secret {secret}, and secret {secret} has no key {key} in namespace {namespace}; add it (kubectl create secret generic {secret} --from-literal={key}=VALUE -n {namespace} --dry-run=client -o yaml | kubectl apply -f -) or fix valueFrom.secretKeyRef.key"
            ),
            MissingWhy::NotText => write!(
                f,
                "env {variable} reads key {key} of secret {secret} in namespace {namespace}, and its value is not UTF-8 text, which an environment variable must be; store it as text (or base64 it yourself)"
            ),
        }
    }
}

/// Every variable of a Job that reads a secret: its own env, and its services'.
fn job_env(spec: &JobSpec) -> impl Iterator<Item = &EnvVar> {
    spec.env
        .iter()
        .chain(spec.services.iter().flat_map(|s| s.env.iter()))
}

async fn lookup(
    values: &dyn SecretValues,
    namespace: &str,
    var: &EnvVar,
) -> Result<Result<Option<SecretValue>, SecretMissing>, StoreError> {
    let Some(reference) = var.secret_ref() else {
        return Ok(Ok(None));
    };
    let answer = values
        .secret_value(namespace, &reference.name, &reference.key)
        .await?;
    let why = match answer {
        SecretValue::NoSecret => MissingWhy::NoSecret,
        SecretValue::NoKey => MissingWhy::NoKey,
        SecretValue::NotText => MissingWhy::NotText,
        found @ (SecretValue::Found(_) | SecretValue::Native) => return Ok(Ok(Some(found))),
    };
    Ok(Err(SecretMissing {
        namespace: namespace.to_string(),
        secret: reference.name.clone(),
        key: reference.key.clone(),
        variable: var.name.clone(),
        why,
    }))
}

/// The first reference of the Job's env that does not resolve, if one does not.
pub async fn missing(
    values: &dyn SecretValues,
    namespace: &str,
    spec: &JobSpec,
) -> Result<Option<SecretMissing>, StoreError> {
    for var in job_env(spec) {
        if let Err(missing) = lookup(values, namespace, var).await? {
            return Ok(Some(missing));
        }
    }
    Ok(None)
}

/// `env` with every secret reference replaced by its value (kept as a reference where
/// the runtime reads it natively).
pub async fn resolve(
    values: &dyn SecretValues,
    namespace: &str,
    env: &[EnvVar],
) -> Result<Result<Vec<EnvVar>, SecretMissing>, StoreError> {
    let mut resolved = Vec::with_capacity(env.len());
    for var in env {
        match lookup(values, namespace, var).await? {
            Err(missing) => return Ok(Err(missing)),
            Ok(Some(SecretValue::Found(value))) => {
                resolved.push(EnvVar::plain(var.name.clone(), value));
            }
            Ok(_) => resolved.push(var.clone()),
        }
    }
    Ok(Ok(resolved))
}

/// The spec an attempt starts with: the Job's, with the secrets of its env and its
/// services' env resolved. Only for the runtime's container creation.
pub async fn resolve_job(
    values: &dyn SecretValues,
    namespace: &str,
    spec: &JobSpec,
) -> Result<Result<JobSpec, SecretMissing>, StoreError> {
    if job_env(spec).all(|v| v.secret_ref().is_none()) {
        return Ok(Ok(spec.clone()));
    }
    let mut resolved = spec.clone();
    resolved.env = match resolve(values, namespace, &spec.env).await? {
        Ok(env) => env,
        Err(missing) => return Ok(Err(missing)),
    };
    for service in &mut resolved.services {
        service.env = match resolve(values, namespace, &service.env).await? {
            Ok(env) => env,
            Err(missing) => return Ok(Err(missing)),
        };
    }
    Ok(Ok(resolved))
}

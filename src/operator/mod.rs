//! Cluster mode's process (`orcaops operator`): leader election among replicas
//! ([`lease`]), acting only while leading ([`while_leading`]), and the metrics and health
//! endpoints ([`http`], [`metrics`]).

pub mod http;
pub mod lease;
pub mod metrics;

use std::future::Future;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Runs `act` for as long as this replica leads: started (with a fresh token) each time
/// `leading` turns true, its token cancelled and the task awaited when it turns false,
/// and for good at `shutdown`. A replica that never leads never acts.
pub async fn while_leading<F, Fut>(
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
    mut act: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            led = leading.wait_for(|l| *l) => if led.is_err() { return },
        }
        info!("leading: starting the controllers");
        let term = shutdown.child_token();
        let task = tokio::spawn(act(term.clone()));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = leading.wait_for(|l| !*l) => info!("no longer leading: stopping the controllers"),
        }
        term.cancel();
        let _ = task.await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Counts the terms started and the terms ended.
    fn counting() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)))
    }

    #[tokio::test]
    async fn a_standby_never_acts() {
        let (_lead, leading) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let (started, _) = counting();
        let count = started.clone();
        let running = tokio::spawn(while_leading(leading, shutdown.clone(), move |_| {
            count.fetch_add(1, Ordering::SeqCst);
            async {}
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_controllers_run_only_while_leading() {
        let (lead, leading) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let (started, ended) = counting();
        let (s, e) = (started.clone(), ended.clone());
        let running = tokio::spawn(while_leading(leading, shutdown.clone(), move |term| {
            s.fetch_add(1, Ordering::SeqCst);
            let e = e.clone();
            async move {
                term.cancelled().await;
                e.fetch_add(1, Ordering::SeqCst);
            }
        }));
        let settle = || tokio::time::sleep(Duration::from_millis(30));
        lead.send_replace(true);
        settle().await;
        assert_eq!(
            (started.load(Ordering::SeqCst), ended.load(Ordering::SeqCst)),
            (1, 0)
        );
        lead.send_replace(false);
        settle().await;
        assert_eq!(
            (started.load(Ordering::SeqCst), ended.load(Ordering::SeqCst)),
            (1, 1)
        );
        lead.send_replace(true);
        settle().await;
        shutdown.cancel();
        running.await.unwrap();
        assert_eq!(
            (started.load(Ordering::SeqCst), ended.load(Ordering::SeqCst)),
            (2, 2)
        );
    }
}

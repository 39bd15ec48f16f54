use std::sync::Arc;

use super::*;

fn gate(max_calls: usize, max_containers: usize) -> Arc<Gate> {
    Arc::new(Gate::new(DockerLimits {
        max_calls,
        call_timeout: Duration::from_secs(5),
        max_containers,
    }))
}

#[tokio::test]
async fn gated_calls_never_exceed_the_limit_and_are_served_in_order() {
    let gate = gate(2, 64);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (gate, in_flight, most, order) = (
            Arc::clone(&gate),
            Arc::clone(&in_flight),
            Arc::clone(&most),
            Arc::clone(&order),
        );
        tasks.push(tokio::spawn(async move {
            gate.call("create_container", Lane::Gated, async {
                order.lock().unwrap().push(i);
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, BollardError>(i)
            })
            .await
        }));
        // Queue them in a known order.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for task in tasks {
        assert!(task.await.unwrap().unwrap().is_ok());
    }
    assert_eq!(most.load(Ordering::SeqCst), 2, "at most 2 in flight");
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

/// The 500-sandbox burst: hundreds of lists and inspects at once stalled the daemon,
/// while reads must not wait behind slow removals either.
#[tokio::test]
async fn reads_have_a_bounded_lane_of_their_own() {
    let gate = gate(1, 64);
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let removal = {
        let gate = Arc::clone(&gate);
        tokio::spawn(async move {
            gate.call("remove_container", Lane::Gated, async {
                released.await.ok();
                Ok::<_, BollardError>(())
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        gate.load(),
        (1, 0),
        "the removal holds the only gated permit"
    );
    let read = gate.call("inspect_container", Lane::Read, async {
        Ok::<_, BollardError>(())
    });
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .expect("a read does not wait behind a removal")
        .unwrap()
        .unwrap();

    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let reads: Vec<_> = (0..12)
        .map(|_| {
            let (gate, in_flight, most) =
                (Arc::clone(&gate), Arc::clone(&in_flight), Arc::clone(&most));
            tokio::spawn(async move {
                gate.call("list_containers", Lane::Read, async {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, BollardError>(())
                })
                .await
            })
        })
        .collect();
    for read in reads {
        assert!(read.await.unwrap().unwrap().is_ok());
    }
    assert_eq!(most.load(Ordering::SeqCst), READS_PER_CALL, "reads at once");
    release.send(()).unwrap();
    assert!(removal.await.unwrap().unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_deadline_fails_naming_it_and_marks_the_daemon_unavailable() {
    let gate = gate(2, 64);
    let result = gate
        .call("start_container", Lane::Gated, async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, BollardError>(())
        })
        .await;
    let error = result.unwrap_err().to_string();
    assert!(error.contains("start_container"), "{error}");
    assert!(error.contains("5s"), "{error}");
    assert!(matches!(gate.health(), Health::Unavailable { .. }));
    // An answer, even a refusal, means it answers again.
    let refused = gate
        .call("inspect_container", Lane::Read, async {
            Err::<(), _>(BollardError::DockerResponseServerError {
                status_code: 404,
                message: "no such container".into(),
            })
        })
        .await;
    assert!(refused.unwrap().is_err());
    assert_eq!(gate.health(), Health::Answering);
}

#[test]
fn a_container_that_ended_during_the_last_outage_ended_with_the_daemon() {
    let gate = gate(1, 64);
    let before = Utc::now() - chrono::TimeDelta::minutes(10);
    assert_eq!(gate.went_away_around(Utc::now()), None, "no outage yet");
    gate.unavailable("cannot connect");
    let Health::Unavailable { since, .. } = gate.health() else {
        panic!("unavailable")
    };
    // While it is away, and after it answers again, until the slack runs out.
    assert_eq!(gate.went_away_around(Utc::now()), Some(since));
    assert_eq!(gate.went_away_around(before), None);
    gate.answered();
    assert_eq!(gate.went_away_around(Utc::now()), Some(since));
    assert_eq!(gate.went_away_around(before), None);
    let later = Utc::now() + chrono::TimeDelta::minutes(10);
    assert_eq!(gate.went_away_around(later), None);
}

#[tokio::test]
async fn a_probe_success_does_not_clear_an_unavailability() {
    let gate = gate(1, 64);
    gate.unavailable("create_container timed out");
    gate.probe("ping", async { Ok::<_, BollardError>(()) })
        .await
        .unwrap();
    assert!(matches!(gate.health(), Health::Unavailable { .. }));
}

#[test]
fn containers_above_the_limit_wait_in_line_and_go_in_order() {
    let gate = gate(8, 2);
    gate.reserve("a").unwrap().fill("c1");
    gate.reserve("b").unwrap().fill("c2");
    let refused = gate.reserve("c").err().unwrap();
    assert_eq!(
        refused.to_string(),
        "2 of 2 containers in use on this server; it starts when one ends; raise --max-containers to allow more"
    );
    assert!(gate.reserve("d").is_err());
    gate.ended("c1");
    assert_eq!(gate.next_in_line(), ["c"]);
    // d came later: it waits although there is room.
    assert!(gate.reserve("d").is_err());
    gate.reserve("c").unwrap().fill("c3");
    assert_eq!(gate.containers(), (2, 2));
    gate.ended("c2");
    gate.reserve("d").unwrap().fill("c4");
    assert!(gate.next_in_line().is_empty());
}

#[test]
fn a_slot_not_filled_is_given_back() {
    let gate = gate(8, 1);
    let mut room = gate.room();
    drop(gate.reserve("a").unwrap());
    assert_eq!(gate.containers(), (0, 1));
    assert!(room.has_changed().unwrap());
    room.mark_unchanged();
    gate.reserve("a").unwrap().fill("x");
    gate.recount(HashSet::new());
    assert_eq!(gate.containers(), (0, 1));
    assert!(room.has_changed().unwrap());
}

#[test]
fn zero_limits_are_refused_naming_the_flag() {
    let limits = DockerLimits {
        max_containers: 0,
        ..DockerLimits::default()
    };
    assert!(limits.validate().unwrap_err().contains("--max-containers"));
    assert!(DockerLimits::default().validate().is_ok());
}

use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("a time")
}

fn job(cpu_millis: u64) -> Demand {
    Demand {
        jobs: 1,
        cpu_millis,
        memory_bytes: 0,
        sandboxes: 0,
        runs: 1,
    }
}

fn member(name: &str, created: i64, standing: Standing, demand: Demand) -> Member {
    Member {
        uid: format!("uid-{name}"),
        created: t(created),
        name: name.into(),
        standing,
        demand,
    }
}

fn applicant(name: &str, created: i64, demand: Demand) -> Applicant<'static> {
    Applicant {
        uid: Box::leak(format!("uid-{name}").into_boxed_str()),
        name: Box::leak(name.to_string().into_boxed_str()),
        created: t(created),
        what: "job",
        demand,
    }
}

fn jobs(n: u32) -> Limits {
    Limits::of(&Quotas {
        concurrent_jobs: Some(n),
        ..Default::default()
    })
}

#[test]
fn a_job_waits_while_the_concurrent_jobs_are_all_in_use_and_says_so() {
    let snapshot = Snapshot {
        members: vec![
            member("a", 0, Standing::Holding, job(0)),
            member("b", 1, Standing::Holding, job(0)),
        ],
        run_starts: vec![],
    };
    let refusal = admit(
        "team-a",
        &jobs(2),
        &snapshot,
        &applicant("c", 2, job(0)),
        t(10),
    )
    .expect_err("no room");
    assert_eq!(refusal.dim, Dim::ConcurrentJobs);
    assert_eq!(
        refusal.message,
        "workspace team-a: concurrentJobs 2/2 in use; starts when one ends"
    );
    assert_eq!(refusal.retry_after, None);
}

#[test]
fn waiting_jobs_start_in_creation_order() {
    // One slot free; "b" (older) and "c" wait: only "b" may take it.
    let snapshot = Snapshot {
        members: vec![
            member("a", 0, Standing::Holding, job(0)),
            member("b", 1, Standing::Waiting, job(0)),
            member("c", 2, Standing::Waiting, job(0)),
        ],
        run_starts: vec![],
    };
    let limits = jobs(2);
    assert_eq!(
        admit("w", &limits, &snapshot, &applicant("b", 1, job(0)), t(10)),
        Ok(())
    );
    let refusal =
        admit("w", &limits, &snapshot, &applicant("c", 2, job(0)), t(10)).expect_err("behind b");
    assert!(
        refusal.message.contains("1/2 in use, 1 more waiting ahead"),
        "{}",
        refusal.message
    );
    // Same second: the name decides.
    let tied = Snapshot {
        members: vec![member("x", 5, Standing::Waiting, job(0))],
        run_starts: vec![],
    };
    assert!(admit("w", &jobs(1), &tied, &applicant("y", 5, job(0)), t(10)).is_err());
    let tied = Snapshot {
        members: vec![member("y", 5, Standing::Waiting, job(0))],
        run_starts: vec![],
    };
    assert_eq!(
        admit("w", &jobs(1), &tied, &applicant("x", 5, job(0)), t(10)),
        Ok(())
    );
}

#[test]
fn the_cpu_quota_counts_what_holders_requested() {
    let limits = Limits::of(&Quotas {
        cpu: Some("1".into()),
        ..Default::default()
    });
    let snapshot = Snapshot {
        members: vec![member("a", 0, Standing::Holding, job(600))],
        run_starts: vec![],
    };
    let refusal =
        admit("w", &limits, &snapshot, &applicant("b", 1, job(600)), t(5)).expect_err("1200m > 1");
    assert_eq!(
        refusal.message,
        "workspace w: cpu 600m/1 in use, this job asks for 600m; starts when room frees up"
    );
    assert_eq!(
        admit("w", &limits, &snapshot, &applicant("b", 1, job(400)), t(5)),
        Ok(())
    );
    // A job asking for no cpu is not held back by a cpu quota.
    assert_eq!(
        admit("w", &limits, &snapshot, &applicant("b", 1, job(0)), t(5)),
        Ok(())
    );
}

#[test]
fn a_job_that_can_never_fit_says_so_and_does_not_block_the_line() {
    let limits = Limits::of(&Quotas {
        cpu: Some("1".into()),
        ..Default::default()
    });
    let big = member("big", 0, Standing::Waiting, job(2000));
    let refusal = admit(
        "w",
        &limits,
        &Snapshot::default(),
        &applicant("big", 0, job(2000)),
        t(5),
    )
    .expect_err("too big");
    assert!(
        refusal.message.contains("never starts"),
        "{}",
        refusal.message
    );
    assert!(
        refusal.message.contains("spec.quotas.cpu"),
        "{}",
        refusal.message
    );
    let snapshot = Snapshot {
        members: vec![big],
        run_starts: vec![],
    };
    assert_eq!(
        admit(
            "w",
            &limits,
            &snapshot,
            &applicant("small", 1, job(500)),
            t(5)
        ),
        Ok(())
    );
}

#[test]
fn runs_per_hour_counts_the_last_hour_and_says_when_room_comes() {
    let limits = Limits::of(&Quotas {
        runs_per_hour: Some(2),
        ..Default::default()
    });
    let now = t(4000);
    let snapshot = Snapshot {
        members: vec![],
        // One is more than an hour old and no longer counts.
        run_starts: vec![t(0), t(1000), t(3000)],
    };
    let refusal = admit("w", &limits, &snapshot, &applicant("j", 3500, job(0)), now)
        .expect_err("2 runs within the hour");
    assert_eq!(refusal.dim, Dim::RunsPerHour);
    assert!(
        refusal
            .message
            .contains("runsPerHour 2/2 started in the last hour"),
        "{}",
        refusal.message
    );
    // The oldest counted run (t=1000) leaves the window at t=4600.
    assert_eq!(refusal.retry_after, Some(Duration::from_secs(600)));
    // A retry of a run already counted is not a new run.
    let retry = Demand { runs: 0, ..job(0) };
    assert_eq!(
        admit("w", &limits, &snapshot, &applicant("j", 3500, retry), now),
        Ok(())
    );
}

#[test]
fn sandboxes_count_against_their_own_quota_and_share_cpu_with_jobs() {
    let limits = Limits::of(&Quotas {
        sandboxes: Some(1),
        concurrent_jobs: Some(5),
        ..Default::default()
    });
    let sandbox = Demand {
        sandboxes: 1,
        ..Default::default()
    };
    let snapshot = Snapshot {
        members: vec![member("s1", 0, Standing::Holding, sandbox)],
        run_starts: vec![],
    };
    let mut second = applicant("s2", 1, sandbox);
    second.what = "sandbox";
    let refusal = admit("w", &limits, &snapshot, &second, t(5)).expect_err("one sandbox");
    assert_eq!(
        refusal.message,
        "workspace w: sandboxes 1/1 in use; starts when one is stopped or deleted"
    );
    // A job is not held back by the sandbox quota.
    assert_eq!(
        admit("w", &limits, &snapshot, &applicant("j", 2, job(0)), t(5)),
        Ok(())
    );
}

#[test]
fn quantities_read_as_people_write_them() {
    assert_eq!(format_cpu(1500), "1500m");
    assert_eq!(format_cpu(2000), "2");
    assert_eq!(format_memory(512 << 20), "512Mi");
    assert_eq!(format_memory(3 << 30), "3Gi");
    assert_eq!(format_memory(1000), "1000");
    assert!(jobs(0).concurrent_jobs.is_some());
    assert!(Limits::default().is_empty());
}

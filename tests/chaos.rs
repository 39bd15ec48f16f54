//! The chaos suite (issue 11, section 10): the real `orcaops serve` and real Docker under
//! the faults that broke it before: the Docker daemon restarted under a running job and a
//! ready sandbox, the server killed with SIGKILL at random points (among Jobs and
//! Workflows), a data dir that fills
//! up, and a burst of sandboxes. Each test runs against a Docker daemon of its own
//! ([`dockerd::PrivateDockerd`]) so that restarting it, or flooding it, touches no one
//! else's containers.
//!
//! Slow and heavy, so not part of `cargo test --tests`: `scripts/test.sh` runs it after
//! everything else with `cargo test --test chaos -- --test-threads=1`. Needs root and
//! Docker (`scripts/setup.sh`). See docs/testing.md, "Chaos suite".

#[path = "chaos/burst.rs"]
mod burst;
mod common;
#[path = "chaos/diskfull.rs"]
mod diskfull;
#[path = "chaos/dockerd.rs"]
mod dockerd;
#[path = "chaos/kill9.rs"]
mod kill9;
#[path = "chaos/restart.rs"]
mod restart;
#[path = "chaos/serve.rs"]
mod serve;
#[path = "chaos/workflows.rs"]
mod workflows;

#[test]
fn dockerd_restarted_with_sigterm_mid_job_and_mid_sandbox() {
    restart::run(dockerd::Stop::Term);
}

#[test]
fn dockerd_killed_with_sigkill_mid_job_and_mid_sandbox() {
    restart::run(dockerd::Stop::Kill);
}

#[test]
fn server_killed_with_sigkill_at_random_points_loses_and_repeats_nothing() {
    kill9::run();
}

#[test]
fn a_full_data_dir_refuses_writes_then_recovers_without_a_restart() {
    diskfull::run();
}

#[test]
fn a_burst_of_sandboxes_three_times_keeps_docker_answering() {
    burst::run();
}

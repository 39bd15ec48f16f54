//! What an attempt that ended before its steps finished says about how it ended.
//!
//! The exit code of the runner (a `/bin/sh` script) tells most of it: 127 before any step
//! started is a shell that is not there; 137 is SIGKILL, from the kernel when the
//! container went over its memory limit (Docker says `OOMKilled`) or from outside
//! orcaops (`docker kill`, `docker stop` that ran out of patience); another code above
//! 128 is another signal. Guessing "is /bin/sh in the image?" for all of them sent
//! people looking for a shell in images that had one. What happens next (a retry under
//! `spec.retry`, or the run failing) is said by the summary around this message.

use crate::runtime::runner::StepProgress;

/// Why the runner ended with `exit_code` before a step finished; `oom` is Docker's
/// `OOMKilled`, `progress` the steps' markers read from the output.
pub fn before_steps_finished(
    exit_code: Option<i64>,
    oom: bool,
    progress: &[StepProgress],
) -> String {
    let running = progress
        .iter()
        .position(|step| step.started_at.is_some() && step.exit_code.is_none());
    let during = match running {
        Some(step) => format!(" during step {}", step + 1),
        None => String::new(),
    };
    let Some(code) = exit_code else {
        return "the container ended without an exit code".to_string();
    };
    let started = progress.iter().any(|step| step.started_at.is_some());
    match code {
        127 if !started => "the container exited with 127 before any step started: its command was not found (is /bin/sh in the image?)".to_string(),
        137 if oom => format!(
            "the container was killed{during}: it went over its memory limit (raise spec.resources.memory)"
        ),
        137 => format!(
            "the container was killed from outside orcaops (signal 9, exit 137){during}, e.g. by `docker kill` or `docker rm -f`"
        ),
        143 => format!(
            "the container was stopped from outside orcaops (signal 15, exit 143){during}, e.g. by `docker stop`"
        ),
        code if code > 128 && code < 160 => format!(
            "the container was killed by signal {} (exit {code}){during}",
            code - 128
        ),
        code => format!("the container exited with {code}{during} before a step finished"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn started() -> StepProgress {
        StepProgress {
            started_at: Some(Utc::now()),
            ..Default::default()
        }
    }

    #[test]
    fn a_kill_from_outside_is_not_blamed_on_the_shell() {
        let message = before_steps_finished(Some(137), false, &[started()]);
        assert_eq!(
            message,
            "the container was killed from outside orcaops (signal 9, exit 137) during step 1, e.g. by `docker kill` or `docker rm -f`"
        );
        assert!(!message.contains("/bin/sh"));
    }

    #[test]
    fn out_of_memory_says_so() {
        let message = before_steps_finished(Some(137), true, &[started()]);
        assert!(message.contains("memory limit"), "{message}");
    }

    #[test]
    fn only_127_before_any_step_suspects_the_shell() {
        assert!(before_steps_finished(Some(127), false, &[]).contains("/bin/sh"));
        let in_step = before_steps_finished(Some(127), false, &[started()]);
        assert!(!in_step.contains("/bin/sh"), "{in_step}");
        assert!(!before_steps_finished(Some(1), false, &[]).contains("/bin/sh"));
    }

    #[test]
    fn other_signals_and_codes_are_named() {
        assert!(before_steps_finished(Some(143), false, &[]).contains("signal 15"));
        assert!(before_steps_finished(Some(130), false, &[]).contains("signal 2"));
        assert_eq!(
            before_steps_finished(Some(3), false, &[]),
            "the container exited with 3 before a step finished"
        );
        assert_eq!(
            before_steps_finished(None, false, &[]),
            "the container ended without an exit code"
        );
    }
}

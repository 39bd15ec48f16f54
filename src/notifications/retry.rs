//! When a delivery is done, worth trying again, or given up. Pure.

use std::time::Duration;

/// How deliveries are tried: one attempt, then one more after each wait of `backoff`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    pub backoff: Vec<Duration>,
    /// How long one attempt may take, answer included.
    pub attempt_timeout: Duration,
}

impl Default for Retry {
    /// Five attempts, 1, 2, 4 and 8 seconds apart, 10 seconds each.
    fn default() -> Self {
        Retry {
            backoff: [1, 2, 4, 8].map(Duration::from_secs).to_vec(),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// The wait before attempt `attempt + 1`, after `attempt` (from 1) failed, if any
    /// attempt is left.
    pub fn wait_after(&self, attempt: usize) -> Option<Duration> {
        self.backoff.get(attempt.checked_sub(1)?).copied()
    }
}

/// What one attempt got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The endpoint answered with this status code.
    Status(u16),
    /// No answer: no connection, or none within the attempt's timeout.
    Unreachable(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt: the endpoint may be back soon.
    Retry,
    /// The endpoint refused the body; sending it again would not change that.
    GiveUp,
}

/// 2xx is delivered; 408, 429, 5xx and no answer are retried; any other code is final.
pub fn verdict(answer: &Answer) -> Verdict {
    match answer {
        Answer::Status(200..=299) => Verdict::Delivered,
        Answer::Status(408 | 429 | 500..=599) | Answer::Unreachable(_) => Verdict::Retry,
        Answer::Status(_) => Verdict::GiveUp,
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status(code) => match reqwest::StatusCode::from_u16(*code)
                .ok()
                .and_then(|s| s.canonical_reason())
            {
                Some(reason) => write!(f, "{code} {reason}"),
                None => write!(f, "{code}"),
            },
            Answer::Unreachable(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_delivered_busy_or_gone_is_retried_and_a_refusal_is_final() {
        for (answer, expected) in [
            (Answer::Status(200), Verdict::Delivered),
            (Answer::Status(204), Verdict::Delivered),
            (Answer::Status(408), Verdict::Retry),
            (Answer::Status(429), Verdict::Retry),
            (Answer::Status(500), Verdict::Retry),
            (Answer::Status(503), Verdict::Retry),
            (
                Answer::Unreachable("connection refused".into()),
                Verdict::Retry,
            ),
            (Answer::Status(400), Verdict::GiveUp),
            (Answer::Status(401), Verdict::GiveUp),
            (Answer::Status(404), Verdict::GiveUp),
            (Answer::Status(301), Verdict::GiveUp),
        ] {
            assert_eq!(verdict(&answer), expected, "{answer}");
        }
    }

    #[test]
    fn the_default_schedule_is_five_attempts_doubling_from_a_second() {
        let retry = Retry::default();
        let waits: Vec<u64> = (1..=5)
            .map_while(|n| retry.wait_after(n))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(retry.wait_after(5), None);
    }

    #[test]
    fn an_answer_reads_with_its_reason() {
        assert_eq!(Answer::Status(503).to_string(), "503 Service Unavailable");
        assert_eq!(Answer::Status(299).to_string(), "299");
    }
}

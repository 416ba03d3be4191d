//! What a try that did not succeed means for an outbox entry, the same for every
//! outbox: given up (refused, or out of tries), or tried again at a time, where a rate
//! limit waits as long as it asked without counting as a try.

use std::time::Duration;

use conjunction_protocol::Timestamp;

use crate::call::Failure;

use super::{backoff, later};

/// How an outbox tries again.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Tries before giving up, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles with each retry.
    pub backoff_base_ms: u64,
    /// Longest delay between two tries, in milliseconds.
    pub backoff_max_ms: u64,
    /// What a try is called where a person reads it ("attempts", "tries").
    pub noun: &'static str,
}

/// What the outbox does with an entry after a try that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// It leaves the outbox, with why.
    GaveUp(String),
    /// It is tried again at `due`, having been tried `tries` times.
    Retry {
        due: Timestamp,
        tries: u32,
        error: String,
    },
}

/// How a try went, as the outboxes count it in their metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    Succeeded,
    GaveUp,
    RateLimited,
    Retry,
}

impl Tally {
    /// Its outcome label in an outbox's metric, where succeeding and giving up are
    /// said in that outbox's own words ("delivered", "sent"; "failed", "gave_up").
    pub fn label(self, succeeded: &'static str, gave_up: &'static str) -> &'static str {
        match self {
            Tally::Succeeded => succeeded,
            Tally::GaveUp => gave_up,
            Tally::RateLimited => "rate_limited",
            Tally::Retry => "retry",
        }
    }
}

impl Next {
    /// How this counts, for an entry tried `tries_before` times before.
    pub fn tally(&self, tries_before: u32) -> Tally {
        match self {
            Next::GaveUp(_) => Tally::GaveUp,
            Next::Retry { tries, .. } if *tries == tries_before => Tally::RateLimited,
            Next::Retry { .. } => Tally::Retry,
        }
    }
}

/// What follows `failure` for an entry tried `tries_before` times before this try.
pub fn judge(tries_before: u32, failure: Failure, retries: &Retries) -> Next {
    let tries = tries_before + 1;
    match failure {
        Failure::Refused(reason) => Next::GaveUp(reason),
        Failure::RateLimited { error, wait } => Next::Retry {
            due: later(wait),
            tries: tries_before,
            error: format!("{error} (rate limited; waiting {}s)", wait.as_secs()),
        },
        Failure::Transient { error, .. } if tries >= retries.max_attempts => Next::GaveUp(format!(
            "gave up after {tries} {}; last: {error}",
            retries.noun
        )),
        Failure::Transient { error, retry_after } => {
            let wait = backoff(retries.backoff_base_ms, retries.backoff_max_ms, tries)
                .max(retry_after.unwrap_or_default())
                .min(Duration::from_millis(retries.backoff_max_ms.max(1)));
            Next::Retry {
                due: later(wait),
                tries,
                error,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRIES: Retries = Retries {
        max_attempts: 3,
        backoff_base_ms: 100,
        backoff_max_ms: 1_000,
        noun: "tries",
    };

    fn transient(retry_after: Option<Duration>) -> Failure {
        Failure::Transient {
            error: "503".into(),
            retry_after,
        }
    }

    #[test]
    fn a_refusal_gives_up_at_once_and_a_transient_failure_after_the_last_try() {
        assert_eq!(
            judge(0, Failure::Refused("403".into()), &RETRIES),
            Next::GaveUp("403".into())
        );
        let Next::Retry { tries, error, .. } = judge(1, transient(None), &RETRIES) else {
            panic!("the second try of three is retried");
        };
        assert_eq!((tries, error.as_str()), (2, "503"));
        assert_eq!(
            judge(2, transient(None), &RETRIES),
            Next::GaveUp("gave up after 3 tries; last: 503".into())
        );
    }

    #[test]
    fn a_rate_limit_waits_as_asked_and_is_not_a_try() {
        let next = judge(
            2,
            Failure::RateLimited {
                error: "429".into(),
                wait: Duration::from_secs(30),
            },
            &RETRIES,
        );
        assert_eq!(next.tally(2), Tally::RateLimited);
        let Next::Retry { due, tries, error } = next else {
            panic!("a rate limit is waited out");
        };
        assert_eq!(tries, 2);
        assert_eq!(error, "429 (rate limited; waiting 30s)");
        let wait = due.0.saturating_sub(later(Duration::ZERO).0);
        assert!((29_000..=30_000).contains(&wait), "{wait} ms");
    }

    #[test]
    fn a_retry_after_is_waited_within_the_longest_back_off() {
        let at = |after| match judge(0, transient(Some(after)), &RETRIES) {
            Next::Retry { due, .. } => due.0.saturating_sub(later(Duration::ZERO).0),
            other => panic!("{other:?}"),
        };
        assert!((400..=500).contains(&at(Duration::from_millis(500))));
        assert!(at(Duration::from_secs(60)) <= 1_000);
    }
}

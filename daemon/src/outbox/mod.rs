//! The outboxes: what the writer committed to be sent, sent at least once with retries
//! that survive a restart. One [`worker`] runs each outbox over its [`worker::Sender`]:
//! [`triggers`] to CI systems, [`notices`] on chat and mail channels. They share the
//! schedule of entries (by when they are due and by when they first came), the
//! back-off between tries, and the [`judge`]ment of a try that did not succeed.

pub mod forges;
pub mod judge;
pub mod notices;
pub mod triggers;
pub mod worker;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use conjunction_protocol::{BuildId, Timestamp};
use rand::Rng;

/// The delay before try `tries + 1` of an outbox entry: `base_ms` doubled with each
/// try, capped at `max_ms`, with jitter in the upper half so that entries failing
/// together do not retry together.
pub fn backoff(base_ms: u64, max_ms: u64, tries: u32) -> Duration {
    let exp = base_ms
        .saturating_mul(1u64 << tries.saturating_sub(1).min(32))
        .min(max_ms);
    let jittered = rand::rng().random_range(exp / 2..=exp.max(1));
    Duration::from_millis(jittered)
}

/// The moment `wait` from now.
pub fn later(wait: Duration) -> Timestamp {
    Timestamp::from_system_time(SystemTime::now() + wait)
}

/// Waits until `due`, or forever when nothing is due: the sleep arm of an outbox's
/// loop, which wakes it for the next entry.
pub async fn until(due: Option<Timestamp>) {
    match due {
        Some(due) => {
            let wait = due
                .to_system_time()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::time::sleep(wait).await
        }
        None => std::future::pending().await,
    }
}

/// An entry of an outbox: its key (at most one entry per key is scheduled) and when
/// it is due.
pub trait Entry: Clone {
    fn key(&self) -> BuildId;
    fn due(&self) -> Timestamp;
    /// Makes it the entry of a retry at `due`, tried `tries` times, the last with
    /// `error`.
    fn retry(&mut self, due: Timestamp, tries: u32, error: &str);
    /// Makes it due at `due`, as it was otherwise (it was not tried).
    fn postpone(&mut self, due: Timestamp);

    /// The entry to schedule again when the writer recorded a retry, as `retry` says.
    fn again(&mut self, retry: Option<(Timestamp, u32, &str)>) -> Option<Self> {
        let (due, tries, error) = retry?;
        self.retry(due, tries, error);
        Some(self.clone())
    }
}

/// Entries ordered by due time, and by when they first came (for the age of the
/// oldest, which a retry does not reset).
pub struct Schedule<E> {
    by_due: BTreeSet<(Timestamp, BuildId)>,
    by_arrival: BTreeSet<(Timestamp, BuildId)>,
    arrived: HashMap<BuildId, Timestamp>,
    entries: HashMap<BuildId, E>,
}

impl<E> Default for Schedule<E> {
    fn default() -> Self {
        Self {
            by_due: BTreeSet::new(),
            by_arrival: BTreeSet::new(),
            arrived: HashMap::new(),
            entries: HashMap::new(),
        }
    }
}

impl<E: Entry> Schedule<E> {
    pub fn insert(&mut self, entry: E) {
        let key = entry.key();
        if let Some(old) = self.entries.remove(&key) {
            self.by_due.remove(&(old.due(), key));
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.arrived.entry(key) {
            let now = Timestamp::from_system_time(SystemTime::now());
            slot.insert(now);
            self.by_arrival.insert((now, key));
        }
        self.by_due.insert((entry.due(), key));
        self.entries.insert(key, entry);
    }

    /// Entries waiting for their time (not those taken to be tried).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn next_due(&self) -> Option<Timestamp> {
        self.by_due.first().map(|(due, _)| *due)
    }

    /// Takes the entry due first.
    pub fn pop_first(&mut self) -> Option<E> {
        let (_, key) = self.by_due.pop_first()?;
        self.entries.remove(&key)
    }

    /// When the entry waiting longest came, taken or not.
    pub fn oldest(&self) -> Option<Timestamp> {
        self.by_arrival.first().map(|(at, _)| *at)
    }

    /// The entry `key` left the outbox (done with, or given up).
    pub fn done(&mut self, key: BuildId) {
        if let Some(at) = self.arrived.remove(&key) {
            self.by_arrival.remove(&(at, key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct E(u128, u64);

    impl Entry for E {
        fn key(&self) -> BuildId {
            BuildId(ulid::Ulid(self.0))
        }
        fn due(&self) -> Timestamp {
            Timestamp(self.1)
        }
        fn retry(&mut self, due: Timestamp, _: u32, _: &str) {
            self.1 = due.0;
        }
        fn postpone(&mut self, due: Timestamp) {
            self.1 = due.0;
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_stays_capped() {
        for _ in 0..50 {
            let first = backoff(100, 1_000, 1).as_millis();
            assert!((50..=100).contains(&first), "{first}");
            let third = backoff(100, 1_000, 3).as_millis();
            assert!((200..=400).contains(&third), "{third}");
            assert!(backoff(100, 1_000, 30).as_millis() <= 1_000);
        }
    }

    #[test]
    fn entries_come_out_by_due_time_and_a_retry_keeps_its_first_arrival() {
        let mut s = Schedule::default();
        s.insert(E(1, 30));
        std::thread::sleep(Duration::from_millis(2));
        s.insert(E(2, 10));
        let first = s.oldest().unwrap();
        // Entry 1 again, due later: one entry, its arrival unchanged.
        s.insert(E(1, 50));
        assert_eq!((s.len(), s.oldest()), (2, Some(first)));
        assert_eq!(s.pop_first().map(|e| e.0), Some(2));
        assert_eq!(s.next_due(), Some(Timestamp(50)));
        // Taken is not done: it is still the oldest until it leaves the outbox.
        assert_eq!(s.pop_first().map(|e| e.0), Some(1));
        assert_eq!(s.len(), 0);
        assert_eq!(s.oldest(), Some(first));
        s.done(BuildId(ulid::Ulid(1)));
        assert!(s.oldest().is_some(), "entry 2 was taken but is not done");
        s.done(BuildId(ulid::Ulid(2)));
        assert_eq!(s.oldest(), None);
    }
}

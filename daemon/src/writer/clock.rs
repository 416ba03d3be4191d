//! The time as the writer's periodic work (retention) reads it: the system's, or a
//! test's own.

/// The time, as retention reads it.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> conjunction_protocol::Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self::new(
            || conjunction_protocol::Timestamp::from_system_time(std::time::SystemTime::now()),
        )
    }

    pub fn new(now: impl Fn() -> conjunction_protocol::Timestamp + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(now))
    }

    pub fn now(&self) -> conjunction_protocol::Timestamp {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

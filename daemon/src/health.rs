//! What `/healthz` reports: whether the writer can still change anything.

use std::sync::{Arc, OnceLock};

use crate::writer::Fault;

/// Shared between the writer, which records its fault, and the API, which reports it.
#[derive(Clone, Default)]
pub struct Health {
    fault: Arc<OnceLock<Fault>>,
}

impl Health {
    /// Records why the writer stopped; the first fault is the one kept.
    pub fn fail(&self, fault: &Fault) {
        let _ = self.fault.set(fault.clone());
    }

    /// Why the writer stopped, once it has.
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.get()
    }
}

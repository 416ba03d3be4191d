//! The shared vocabulary of conjunction.
//!
//! Everything the daemon, the command line and the terminal UI say to each other is
//! defined here: identifiers, projects, builds and their states, reports, the trigger
//! payload sent to CI systems, and the websocket messages. The crate does no I/O and
//! nothing async; it only names things and checks that they are well formed.

pub mod access;
pub mod audit;
pub mod candidate;
pub mod ci;
pub mod error;
pub mod forge;
pub mod http_url;
pub mod id;
pub mod identity;
pub mod impact;
mod json;
pub mod limits;
pub mod node;
pub mod notify;
pub mod project;
pub mod releases;
pub mod report;
pub mod state;
pub mod text;
pub mod time;
pub mod tree;
pub mod trigger;
pub mod verdict;
pub mod ws;

pub use candidate::Candidate;
pub use ci::{CiKind, Run, SourceSpec, SourceView};
pub use error::{ApiError, EntryError, ValidationError};
pub use id::{BuildId, ProjectId};
pub use node::{BlockedBy, Bump, Node, NodeState, RootEvent, RootSummary, StateKind};
pub use project::{
    Contact, Dependency, Package, Project, ProjectEntry, ProjectSpec, TriggerSpec, TriggerView,
};
pub use report::{ManifestFile, Report, ReportAck, ReportState};
pub use time::Timestamp;
pub use verdict::{Baseline, Verdict};

/// The version of the wire protocol (HTTP bodies and websocket messages).
///
/// It goes up by one whenever a message changes in a way an older client would
/// misread; clients compare it with the `hello` message they receive.
pub const PROTOCOL_VERSION: u32 = 2;

//! Websocket messages between the daemon's live feed (`GET /v1/ws`) and its clients.

use serde::{Deserialize, Serialize};

use crate::id::{BuildId, ProjectId};
use crate::node::{Node, RootEvent, RootSummary};
use crate::project::Project;
use crate::time::Timestamp;

/// A committed change with its place in the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at: Timestamp,
    pub change: Change,
}

/// What changed. Every variant carries the whole new state of what it names, so a
/// client applies it by replacing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    ProjectUpserted {
        project: Project,
    },
    ProjectDeleted {
        project: ProjectId,
    },
    /// A new root event; its nodes follow as `node_changed` events.
    RootCreated {
        root: RootSummary,
    },
    /// A root event's summary changed: its version, commit or ref (reported by the
    /// root build), its notes (when the cascade was planned), or how many of its nodes
    /// are in each state. Sent at most once per root event and commit, after the
    /// `node_changed` events of that commit, so a client that does not hold an event's
    /// nodes still keeps its counts current.
    RootChanged {
        root: RootSummary,
    },
    NodeChanged {
        node: Node,
    },
}

/// Messages from the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The first message on every connection.
    Hello {
        protocol: u32,
        daemon: String,
        /// Whom the connection's token speaks for. Left out by daemons before people's
        /// tokens, whose feeds took operator tokens only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<crate::access::CallerView>,
    },
    /// The whole current picture: sent first, or when `since` is too old to resume from.
    Snapshot {
        seq: u64,
        projects: Vec<Project>,
        /// Recent root events, newest first.
        roots: Vec<RootSummary>,
        /// The nodes of the newest of those events, as many whole events as fit a
        /// budget of nodes, newest first. The nodes of the others are read with
        /// `GET /v1/roots/{id}`; their later changes arrive as events like any other.
        events: Vec<RootEvent>,
    },
    Event(Box<Event>),
    /// A rebuild asked for on this connection was accepted.
    RebuildStarted {
        build: BuildId,
        attempt: u32,
        seq: u64,
    },
    /// Something the client sent was refused; the connection stays open.
    Error {
        error: String,
        message: String,
    },
}

/// Messages from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Rebuild { build: BuildId },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_for_clients_in_other_languages() {
        let msg = ServerMessage::Event(Box::new(Event {
            seq: 7,
            at: Timestamp(0),
            change: Change::ProjectDeleted {
                project: ProjectId::parse("acme/app").unwrap(),
            },
        }));
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["type"], "event");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["change"]["kind"], "project_deleted");
        assert_eq!(serde_json::from_value::<ServerMessage>(json).unwrap(), msg);
    }
}

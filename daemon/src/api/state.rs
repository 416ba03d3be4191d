//! What every handler can reach.

use crate::auth::OperatorTokens;
use crate::health::Health;
use crate::hub::Hub;
use crate::store::Store;

use super::feed::FeedConfig;
use crate::writer::{SharedGraph, WriterHandle};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: WriterHandle,
    pub hub: Hub,
    pub graph: SharedGraph,
    pub operators: OperatorTokens,
    pub shutdown: crate::shutdown::Shutdown,
    pub feed: FeedConfig,
    /// The environments releases are promoted through, in order.
    pub environments: std::sync::Arc<crate::planner::Environments>,
    pub health: Health,
    pub feed_room: std::sync::Arc<super::feed::FeedRoom>,
    /// How long a client may take to send a body.
    pub body_timeout: std::time::Duration,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// `/metrics` is served (to operator tokens, and to this token when set).
    pub metrics_on: bool,
    pub metrics_token: Option<std::sync::Arc<crate::auth::OperatorTokens>>,
    pub feed_limit: usize,
    pub database_path: std::path::PathBuf,
    /// Reports with CI id tokens (OIDC).
    pub id_tokens: std::sync::Arc<crate::oidc::IdTokens>,
    /// What people's tokens may read.
    pub access: crate::auth::AccessConfig,
    /// When each person's token was last written down as used.
    pub last_used: std::sync::Arc<crate::auth::LastUsed>,
    /// The ids of people's tokens as they are revoked, so that their feeds close.
    pub revoked: tokio::sync::broadcast::Sender<String>,
    /// Sends notices on their channels, for a maintainer's test of them.
    pub channels: std::sync::Arc<crate::channels::Channels>,
    /// Sends the writes a follower takes on to the daemon that writes.
    pub forward: reqwest::Client,
}

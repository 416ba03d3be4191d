//! What every handler can reach.

use tokio::sync::watch;

use crate::auth::OperatorTokens;
use crate::config::FeedConfig;
use crate::health::Health;
use crate::hub::Hub;
use crate::store::Store;
use crate::writer::{SharedGraph, WriterHandle};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub writer: WriterHandle,
    pub hub: Hub,
    pub graph: SharedGraph,
    pub operators: OperatorTokens,
    pub shutdown: watch::Receiver<bool>,
    pub feed: FeedConfig,
    pub health: Health,
}

//! Errors shared by every part: validation failures and the JSON error body.

use serde::{Deserialize, Serialize};

/// A field that is not well formed. The message is a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// The JSON path of the offending field, such as `contacts[0].email`.
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The body of every refusal the daemon sends: a stable machine-readable code and a
/// sentence for the person reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub message: String,
}

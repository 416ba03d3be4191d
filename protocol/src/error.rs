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
    /// For a request that carries a list (`PUT /v1/projects`): every entry that was
    /// refused, each with its own code and sentence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<EntryError>,
}

impl ApiError {
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
            entries: Vec::new(),
        }
    }
}

/// One refused entry of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryError {
    /// The entry's place in the list, from 0.
    pub index: usize,
    /// The entry's project id, when it had a readable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub error: String,
    pub message: String,
}

//! The conjunction command line (and, next, its terminal UI).
//!
//! It speaks only HTTP and the websocket feed to the daemon, through [`client`].

pub mod apply;
pub mod cli;
pub mod client;
pub mod config;
pub mod tree;

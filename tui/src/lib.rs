//! The conjunction command line and terminal UI.
//!
//! Both speak only HTTP ([`client`]) and the websocket feed ([`connection`]) to the
//! daemon. The terminal UI is split the usual way: [`app`] holds the state and its
//! update function, [`keys`] maps key presses to actions, [`ui`] draws, and
//! [`terminal`] runs the loop that feeds them. `demo` (the `demo` feature, on by
//! default) starts a daemon and simulated CI systems in-process and opens the UI on
//! them; without it the client carries no server. [`discover`] reads a tree of
//! checkouts' manifests into a projects file, on disk only.

pub mod app;
pub mod apply;
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
#[cfg(feature = "demo")]
pub mod demo;
pub mod discover;
pub mod keys;
pub mod model;
pub mod terminal;
pub mod tree;
pub mod ui;

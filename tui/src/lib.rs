//! The conjunction command line and terminal UI.
//!
//! Both speak only HTTP ([`client`]) and the websocket feed ([`connection`]) to the
//! daemon. The terminal UI is split the usual way: [`app`] holds the state and its
//! update function, [`keys`] maps key presses to actions, [`ui`] draws, and
//! [`terminal`] runs the loop that feeds them. [`demo`] starts a daemon and a
//! simulated CI in-process and opens the UI on them.

pub mod app;
pub mod apply;
pub mod cli;
pub mod client;
pub mod config;
pub mod connection;
pub mod demo;
pub mod keys;
pub mod model;
pub mod sample;
pub mod terminal;
pub mod tree;
pub mod ui;

//! Simulated parties, on loopback, for the demo and the tests: a CI behind
//! conjunction's generic webhook trigger ([`webhook`]), the four native CI systems'
//! APIs with the webhooks they send ([`native`]), a chat that takes what a Slack
//! incoming webhook would ([`chat`]), the forges an upstream's results are written to
//! ([`forge`]), the demo's projects and how their CI treats
//! them ([`catalog`]), and the terminal UI's sample data ([`sample`]). Nothing here
//! is part of the daemon or the client a user installs.

pub mod catalog;
pub mod chat;
pub mod forge;
pub mod native;
pub mod oidc;
pub mod sample;
pub mod webhook;

//! Notifications, pure: who is told what ([`route`]), what a notice says
//! ([`message`]), and one file per channel with its format within that channel's
//! documented limits. Sending them is [`crate::channels`]'s; the notice outbox is
//! [`crate::outbox::notices`].

pub mod discord;
pub mod email;
pub mod irc;
pub mod matrix;
pub mod message;
pub mod route;
pub mod slack;
pub mod webhook;

//! The conjunction daemon.

pub mod planner;

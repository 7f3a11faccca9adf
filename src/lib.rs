//! terminus-batch: declarative batch jobs against the Pantheon hosting platform.
//!
//! Data flows one way (STYLE.md §2): a plan file is parsed and validated ([`plan`]), its
//! targets resolved ([`resolve`]), expanded into tasks ([`expand`]) and built into a
//! [`graph::TaskGraph`]; [`run`] takes a plan through those stages and applies it with the
//! [`executor`] and the [`operations`] into a typed outcome. The command line in [`cli`] maps
//! arguments to [`run`] and renders what it returns.

#![recursion_limit = "256"]

pub mod backoff;
pub mod cause;
pub mod cli;
pub mod endpoint;
pub mod events;
pub mod executor;
pub mod expand;
pub mod glob;
pub mod graph;
pub mod hex;
pub mod ids;
pub mod location;
pub mod operations;
pub mod panics;
pub mod plan;
pub mod redact;
pub mod report;
pub mod resolve;
pub mod run;
pub mod secret;
pub mod settings;
pub mod shard;
pub mod simulator;
pub mod state;
pub mod telemetry;
pub mod timefmt;

//! The built-in Pantheon simulator (DESIGN.md §7): a faithful API on 127.0.0.1 for
//! `--simulate`, `simulate serve` and the tests. The same paths, shapes, status codes and
//! quirks as pantheon-api.md; workflows that finish later and change the world; knobs for
//! latency, durations, rate limits and faults, all seeded; counters at `GET /__sim/stats`.
//!
//! Builds its own JSON from the spec (`state`); imports nothing from operations, so a
//! client bug cannot hide behind the same bug here.

// The simulator builds its JSON with large `json!` literals (a site, a workflow).
#![recursion_limit = "256"]

pub mod knobs;
pub(crate) mod routes;
pub mod server;
pub mod sites;
pub mod ssh;
pub(crate) mod state;
pub mod world;

pub use knobs::{FaultRule, Knobs};
pub use server::{RecordedRequest, Simulator, Stats};
pub use sites::SiteAccess;
pub use ssh::SshAccess;
pub use world::World;

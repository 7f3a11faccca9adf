//! A run, from a plan to its outcome, as a library (as `nextest-runner` sits under
//! `cargo-nextest`): [`prepare`](prepare::prepare) a plan (settings, connection, resolution,
//! expansion, graph), preview it ([`refresh`]), save it ([`saved`]), and apply it
//! ([`apply`]: checks, lock, journal, resume, the executor adapter) into a typed
//! [`RunOutcome`].
//!
//! Nothing here parses arguments or prints: the command line (`cli`) maps its flags to these
//! types and renders what comes back. Failures before a run are a [`RunError`], whose
//! variant the command line maps to an exit status.

pub mod apply;
pub mod auth;
pub mod connect;
pub mod document;
mod error;
pub mod forecast;
pub mod history;
pub mod notify;
pub mod outcome;
pub mod prepare;
pub mod refresh;
pub mod saved;

pub use connect::Connection;
pub use error::{Refusal, RunError, StateError, Unreachable};
pub use outcome::{RunOutcome, Verdict};
pub use prepare::{PlanInput, Platform, Prepared, Targeting, prepare, prepare_on};

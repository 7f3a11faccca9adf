//! The pieces every other crate of terminus-batch shares, and nothing else: identifiers
//! ([`ids`]), the events of a run and the sink that consumes them ([`events`]), why a task did
//! not succeed ([`cause`]), the task DAG ([`graph`]), what a run talks to ([`endpoint`]) and
//! where its state lives ([`location`]), the environment variables the tool reads ([`env`](mod@env)),
//! values that never print ([`secret`], [`redact`]), an error with its sources
//! on one line ([`chain`]), and small helpers (`backoff`, `glob`,
//! `hex`, `panics`, `timefmt`, `words`).
//!
//! A leaf of the workspace: it depends on no other crate of it, so every crate may depend on it.

pub mod backoff;
pub mod cause;
pub mod chain;
pub mod endpoint;
pub mod env;
pub mod events;
pub mod glob;
pub mod graph;
pub mod hex;
pub mod ids;
pub mod location;
pub mod panics;
pub mod redact;
pub mod secret;
pub mod timefmt;
pub mod words;

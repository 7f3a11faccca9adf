//! Operations against Pantheon. This stage so far holds the API client's wire types
//! ([`api::wire`]); executing operations arrives with the executor.
//!
//! Knows Pantheon; must not import the graph, the executor, events or reports.

pub mod api;

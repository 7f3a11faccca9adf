//! The plan language and what it becomes before anything runs: the plan file parsed with
//! spans and validated ([`plan`]), its targets resolved through a [`resolve::SiteSource`]
//! ([`resolve`]), expanded into tasks ([`expand`]), and split into shards ([`shard`]).
//!
//! Pure: no HTTP, no state, no clock. It depends only on `tb-core`; the API listings reach
//! [`resolve`] through the `SiteSource` trait, implemented by the run and the simulator.

pub mod expand;
pub mod plan;
pub mod resolve;
pub mod shard;

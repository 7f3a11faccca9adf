//! Integration tests: one binary, one module per area. They run the real binary (see
//! `support`) or the library's stages directly; nothing here touches the network.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::needless_range_loop,
    clippy::unnested_or_patterns,
    clippy::duplicate_mod,
    reason = "test code: a failed expectation is the test failing; index loops mirror the math; routes read as (method, path) pairs; the bench's workloads, run here, share the tests' S3 server"
)]

mod apply;
mod architecture;
mod auth;
mod bench;
mod catalogue;
mod checks;
mod client;
mod diagnostics;
mod examples;
mod fidelity;
mod fixtures;
mod fleet;
mod fuzz;
mod never_twice;
mod notify;
mod operations;
mod operator;
mod own_faults;
mod properties;
mod readme;
mod refresh;
mod remote_hosts;
mod remote_secrets;
mod reports;
mod resilience;
mod seams;
mod secrets;
mod shapes;
mod sharding;
mod simulator;
mod support;
mod team_state;
mod terminal;

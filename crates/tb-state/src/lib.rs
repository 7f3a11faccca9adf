//! A run's state, shared by every run that names the same store: the journal (what each run
//! did, for `--resume` and `runs`), the plan lock, and the environment leases. All of it
//! lives in one [`store::Store`], a directory or an object-store prefix; the run asks this
//! module for what it needs and knows no paths.
//!
//! Consumes events like a reporter; never imports the executor or operations.

pub mod fence;
pub mod journal;
pub mod lease;
pub mod lock;
pub mod store;

pub use store::{Store, StoreError};

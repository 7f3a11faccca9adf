//! terminus-batch's command line: clap's types, one handler per command, the one error type
//! printed once, exit codes, report files and shell completion. A run itself is the library
//! `tb_run` (as nextest-runner is to cargo-nextest); this crate maps arguments to it and renders
//! what it returns. ARCHITECTURE.md names each crate of the workspace and why it is one.

pub mod cli;

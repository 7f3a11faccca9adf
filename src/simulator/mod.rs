//! The built-in Pantheon simulator (DESIGN.md §7). This issue ships its [`world`] format,
//! which also serves as the resolution source behind `--simulate`.

pub mod world;

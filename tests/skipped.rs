//! The last lines of `cargo test`: which tests this run skipped because a tool they drive is
//! missing, and how to run them (see `it/support/tools.rs`). Cargo runs test targets in the
//! order of their names, so this one runs after `it`; it has no harness of its own, so its lines
//! are the run's last.

#![allow(clippy::print_stdout, reason = "a report printed at the end of the test run is this target's job")]

#[allow(dead_code, unused_imports, unused_macros, reason = "this target reads the skip records; the tests write them")]
#[path = "it/support/tools.rs"]
mod tools;

use std::collections::BTreeMap;

use tools::Tool;

fn main() {
    // nextest lists each binary's tests first: this one has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let file = tools::record_file(std::os::unix::process::parent_id());
    let records = std::fs::read_to_string(&file).unwrap_or_default();
    let _removed = std::fs::remove_file(&file);
    // Records of runs that ended before reaching this target (a failure stops cargo) go too.
    if let Ok(entries) = std::fs::read_dir(tools::records_dir()) {
        for entry in entries.flatten() {
            let stale = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            if stale.is_some_and(|age| age.as_secs() > 24 * 3600) {
                let _removed = std::fs::remove_file(entry.path());
            }
        }
    }

    let mut by_tool: BTreeMap<&str, (Tool, Vec<&str>, &str)> = BTreeMap::new();
    for line in records.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(key), Some(test), why) = (fields.next(), fields.next(), fields.next().unwrap_or("")) else {
            continue;
        };
        let Some(tool) = Tool::from_key(key) else { continue };
        let entry = by_tool.entry(key).or_insert((tool, Vec::new(), why));
        entry.1.push(test);
    }
    let skipped: usize = by_tool.values().map(|(_, tests, _)| tests.len()).sum();
    if skipped == 0 {
        println!("no test was skipped for a missing tool");
        return;
    }
    let plural = if skipped == 1 { "test was" } else { "tests were" };
    println!();
    println!("{skipped} {plural} SKIPPED (counted as passed above): a tool they drive is missing on this machine");
    for (tool, mut tests, why) in by_tool.into_values() {
        tests.sort_unstable();
        println!("  {}: {} skipped, because {why}; to get it: {}", tool.describe(), tests.len(), tool.remedy());
        for test in tests {
            println!("      {test}");
        }
    }
    println!(
        "To run them: install what is named above (as root; .ci/run does), then `cargo test --locked` again. Under CI=true a missing tool fails its tests instead."
    );
}

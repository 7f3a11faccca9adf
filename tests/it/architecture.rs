//! Module boundaries (STYLE.md §2), checked by reading `use crate::` lines: data flows one
//! way, so an upstream stage never imports a downstream one.

use std::path::Path;

use crate::support::repo;

/// (module path prefix, modules it must not import).
const RULES: &[(&str, &[&str])] = &[
    ("src/plan/", &["crate::expand", "crate::resolve", "crate::cli", "crate::simulator"]),
    ("src/resolve.rs", &["crate::expand", "crate::cli", "crate::simulator"]),
    ("src/expand.rs", &["crate::cli", "crate::simulator"]),
    ("src/graph/", &["crate::plan", "crate::expand", "crate::resolve", "crate::cli", "crate::simulator"]),
    ("src/ids.rs", &["crate::"]),
    ("src/endpoint.rs", &["crate::"]),
    // The run as a library: never the command line, whatever it prints or parses.
    ("src/run/", &["crate::cli", "clap::", "Io<"]),
    (
        "src/journal/",
        &[
            "crate::executor",
            "crate::operations",
            "crate::cli",
            "crate::run",
            "crate::simulator",
            "crate::report",
            "crate::expand",
            "crate::graph",
            "crate::resolve",
        ],
    ),
    (
        "src/shard.rs",
        &["crate::cli", "crate::run", "crate::executor", "crate::operations", "crate::simulator", "crate::journal"],
    ),
    // The command line maps arguments to the library and renders: it never drives the
    // executor or writes the journal itself.
    ("src/cli/", &["crate::executor", "crate::journal", "crate::operations", "crate::resolve"]),
    ("src/secret.rs", &["crate::"]),
    (
        "src/settings/",
        &["crate::operations", "crate::cli", "crate::simulator", "crate::expand", "crate::graph", "crate::resolve"],
    ),
    ("src/telemetry.rs", &["crate::"]),
    (
        "src/events.rs",
        &[
            "crate::plan",
            "crate::expand",
            "crate::graph",
            "crate::executor",
            "crate::operations",
            "crate::report",
            "crate::cli",
            "crate::simulator",
        ],
    ),
    (
        "src/executor/",
        &[
            "crate::plan",
            "crate::expand",
            "crate::resolve",
            "crate::operations",
            "crate::report",
            "crate::cli",
            "crate::simulator",
            "crate::settings",
        ],
    ),
    (
        "src/report/",
        &[
            "crate::executor",
            "crate::graph",
            "crate::operations",
            "crate::cli",
            "crate::simulator",
            "crate::plan",
            "crate::expand",
        ],
    ),
    ("src/simulator/", &["crate::cli", "crate::expand", "crate::graph", "crate::operations"]),
    (
        "src/operations/",
        &[
            "crate::cli",
            "crate::expand",
            "crate::graph",
            "crate::resolve",
            "crate::simulator",
            "crate::executor",
            "crate::events",
            "crate::report",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn stages_import_only_downstream() {
    let root = repo();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut violations = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap();
        for (prefix, forbidden) in RULES {
            if !relative.starts_with(prefix) {
                continue;
            }
            for line in text.lines().filter(|l| l.contains("crate::") || l.contains("clap::") || l.contains("Io<")) {
                for f in *forbidden {
                    if line.contains(f) {
                        violations.push(format!("{relative}: `{}` imports {f}", line.trim()));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "boundary violations:\n{}", violations.join("\n"));
}

#[test]
fn only_plan_parse_and_raw_touch_the_yaml_crate() {
    let root = repo();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for file in files {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap();
        // validate.rs and world.rs read spans of parsed values (`Spanned`), nothing else.
        let allowed = ["src/plan/parse.rs", "src/plan/raw.rs", "src/plan/validate.rs", "src/simulator/world.rs"];
        assert!(
            !text.contains("serde_saphyr") || allowed.contains(&relative.as_str()),
            "{relative} uses the YAML crate directly; go through plan::parse"
        );
    }
}

#[test]
fn the_simulator_state_never_reaches_back_into_its_routes() {
    // routes answer requests from the state; the state never calls a route (no cycle).
    let text = std::fs::read_to_string(repo().join("src/simulator/state.rs")).unwrap();
    assert!(!text.contains("routes::"), "src/simulator/state.rs reaches into routes");
}

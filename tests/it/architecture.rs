//! The workspace's boundaries (STYLE.md §2), as ARCHITECTURE.md states them: data flows one
//! way, so an upstream stage never uses a downstream one. Between crates the compiler keeps
//! them, and these tests keep what the compiler cannot: that each crate's `Cargo.toml` lists
//! exactly the crates the map says, that no crate re-exports another (a re-export would walk
//! through a boundary), and the rules between modules of one crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo;

fn architecture() -> String {
    std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap()
}

/// The rows of the first table under `## {heading}`, as cells.
fn table(heading: &str) -> Vec<Vec<String>> {
    let text = architecture();
    let section = text
        .split(&format!("## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has a {heading} section"));
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

/// The backticked names of a cell: "`a`, `b`" is [a, b].
fn names(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every crate's directory, by its name: the root package and `crates/*`.
fn crate_dirs() -> BTreeMap<String, PathBuf> {
    let mut dirs = BTreeMap::from([("terminus-batch".to_owned(), repo())]);
    for entry in std::fs::read_dir(repo().join("crates")).unwrap() {
        let path = entry.unwrap().path();
        dirs.insert(path.file_name().unwrap().to_string_lossy().into_owned(), path);
    }
    dirs
}

/// The product's source files, every crate's `src/`, with their paths from the repository.
fn product_files() -> Vec<(String, String)> {
    let root = repo();
    let mut files = Vec::new();
    for dir in crate_dirs().values() {
        rust_files(&dir.join("src"), &mut files);
    }
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"), text)
        })
        .collect()
}

/// The workspace crates a `Cargo.toml` section lists (`tb-… .workspace = true` or a table).
fn workspace_crates(manifest: &str, section: &str) -> BTreeSet<String> {
    let body = manifest.split(&format!("\n[{section}]\n")).nth(1).unwrap_or_default();
    let body = body.split("\n[").next().unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with("tb-"))
        .map(|l| l.split(['.', ' ', '=']).next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn each_crate_uses_exactly_the_crates_the_map_lists() {
    let rows = table("Crates");
    let dirs = crate_dirs();
    let listed: BTreeSet<String> = rows.iter().map(|r| names(&r[0])[0].clone()).collect();
    let present: BTreeSet<String> = dirs.keys().cloned().collect();
    assert_eq!(listed, present, "ARCHITECTURE.md's Crates table and the workspace's crates differ");
    let mut above = BTreeSet::new();
    let mut wrong = Vec::new();
    for row in &rows {
        let name = names(&row[0])[0].clone();
        let uses: BTreeSet<String> =
            if row[2].contains("every crate above") { above.clone() } else { names(&row[2]).into_iter().collect() };
        // The map is in dependency order: a crate uses only crates above it, so no cycle.
        assert!(uses.is_subset(&above), "{name} uses a crate listed below it: {uses:?}");
        let manifest = std::fs::read_to_string(dirs[&name].join("Cargo.toml")).unwrap();
        let actual = workspace_crates(&manifest, "dependencies");
        if actual != uses {
            wrong.push(format!("{name}: Cargo.toml lists {actual:?}, the map {uses:?}"));
        }
        // A library crate's tests see only what its code may: no workspace crate for tests alone.
        if name != "terminus-batch" {
            let dev = workspace_crates(&manifest, "dev-dependencies");
            assert!(dev.is_empty(), "{name}'s tests use {dev:?}, which its code may not");
        }
        above.insert(name);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_crate_re_exports_another() {
    let mut found = Vec::new();
    for (path, text) in product_files() {
        for line in text.lines().map(str::trim) {
            let export = line.strip_prefix("pub use ").or_else(|| line.strip_prefix("pub(crate) use "));
            if export.is_some_and(|e| e.trim_start_matches("::").starts_with("tb_")) {
                found.push(format!("{path}: {line}"));
            }
        }
    }
    assert!(found.is_empty(), "re-exports walk through a boundary:\n{}", found.join("\n"));
}

#[test]
fn modules_of_one_crate_keep_their_rules() {
    let rules: Vec<(String, Vec<String>)> =
        table("Boundaries").iter().map(|r| (names(&r[0])[0].clone(), names(&r[1]))).collect();
    assert!(rules.len() > 10, "the table was read: {rules:?}");
    let files = product_files();
    let mut violations = Vec::new();
    for (prefix, forbidden) in &rules {
        let matching: Vec<_> = files.iter().filter(|(p, _)| p.starts_with(prefix.as_str())).collect();
        assert!(!matching.is_empty(), "the Boundaries row `{prefix}` names no file");
        for (path, text) in matching {
            for line in text.lines() {
                for f in forbidden.iter().filter(|f| line.contains(f.as_str())) {
                    violations.push(format!("{path}: `{}` names {f}", line.trim()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "boundary violations:\n{}", violations.join("\n"));
}

#[test]
fn only_plan_parse_and_raw_touch_the_yaml_crate() {
    // validate.rs and world.rs read spans of parsed values (`Spanned`), nothing else.
    let allowed = [
        "crates/tb-plan/src/plan/parse.rs",
        "crates/tb-plan/src/plan/raw.rs",
        "crates/tb-plan/src/plan/validate.rs",
        "crates/tb-simulator/src/world.rs",
    ];
    for (path, text) in product_files() {
        assert!(
            !text.contains("serde_saphyr") || allowed.contains(&path.as_str()),
            "{path} uses the YAML crate directly; go through plan::parse"
        );
    }
}

#[test]
fn every_module_is_on_the_map() {
    let map = architecture();
    for dir in crate_dirs().values() {
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        let modules = lib
            .lines()
            .filter_map(|l| ["pub mod ", "pub(crate) mod ", "mod "].iter().find_map(|p| l.strip_prefix(p)))
            .map(|m| m.trim_end_matches(';'))
            .filter(|m| !m.contains('{'));
        for module in modules {
            assert!(
                map.contains(&format!("`{module}`")),
                "ARCHITECTURE.md does not name the module `{module}` ({})",
                dir.display()
            );
        }
    }
}

/// `tb_core::env` declares every environment variable the tool reads (ARCHITECTURE.md, code
/// map): outside it, no code names one by a literal (each goes through its constant), and
/// nothing reads the process's environment with a literal name. Test modules may.
#[test]
fn environment_variables_are_read_by_their_declared_names_only() {
    let declared_file = "crates/tb-core/src/env.rs";
    let files = product_files();
    let text = &files.iter().find(|(p, _)| p == declared_file).expect("the declarations").1;
    // Every quoted name in a `pub const` of it, single or a list (prefixes such as `AWS_` too).
    let mut declared: Vec<String> = Vec::new();
    let mut in_const = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("pub const ") && line.contains("&str") {
            in_const = true;
        }
        if in_const {
            declared.extend(line.split('"').skip(1).step_by(2).map(str::to_owned));
            if line.ends_with(';') {
                in_const = false;
            }
        }
    }
    assert!(declared.len() > 30 && declared.iter().any(|d| d == "GITHUB_STEP_SUMMARY"), "{declared:?}");
    let mut found = Vec::new();
    for (path, text) in files.iter().filter(|(p, _)| p != declared_file) {
        // The product's code, not its test module (a `#[cfg(test)]` item elsewhere is checked).
        let tests_start = ["#[cfg(test)]\nmod ", "#[cfg(test)]\npub(crate) mod "]
            .iter()
            .filter_map(|m| text.find(m))
            .min()
            .unwrap_or(text.len());
        for (number, line) in text[..tests_start].lines().enumerate() {
            let literal_read = ["env::var(\"", "env::var_os(\"", "vars.get(\""].iter().any(|p| line.contains(p));
            let named = declared.iter().find(|name| line.contains(&format!("\"{name}\"")));
            if literal_read || named.is_some() {
                found.push(format!("{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "read by a literal name outside {declared_file}:\n{}", found.join("\n"));
}

/// The binary `cargo build` and `cargo install` make carries nothing of the tests: tokio's
/// `test-util` (a clock the tests pause) is enabled only by dev-dependencies, which resolver 3
/// keeps out of a normal build. Asks cargo itself what a normal build of the binary enables.
#[test]
fn the_product_is_built_without_the_tests_clock() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["tree", "--locked", "--offline", "-p", "terminus-batch", "-e", "normal,features", "-i", "tokio"])
        .current_dir(repo())
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(tree.contains("tokio feature \"rt-multi-thread\""), "the tree was read:\n{tree}");
    assert!(!tree.contains("test-util"), "the product's build enables tokio's test-util:\n{tree}");
}

//! Module boundaries (STYLE.md §2), checked by reading `use crate::` lines: data flows one
//! way, so an upstream stage never imports a downstream one.

use std::path::Path;

use crate::support::repo;

/// The boundary table of ARCHITECTURE.md ("## Boundaries"): (path prefix, what files under it
/// must not import). The document is the rule, so the map cannot drift from the territory.
fn rules() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let section = text.split("## Boundaries").nth(1).expect("ARCHITECTURE.md has a Boundaries section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let code = |cell: &str| -> Vec<String> {
        cell.split(',').map(|c| c.trim().trim_matches('`').to_owned()).filter(|c| !c.is_empty()).collect()
    };
    let rules: Vec<(String, Vec<String>)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').collect();
            (cells[0].trim().trim_matches('`').to_owned(), code(cells[1]))
        })
        .collect();
    assert!(rules.len() > 10, "the table was read: {rules:?}");
    rules
}

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
    let rules = rules();
    let mut violations = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap();
        for (prefix, forbidden) in &rules {
            if !relative.starts_with(prefix.as_str()) {
                continue;
            }
            for line in text.lines().filter(|l| l.contains("crate::") || l.contains("clap::") || l.contains("Io<")) {
                for f in forbidden {
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

#[test]
fn every_module_is_on_the_map() {
    let map = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let lib = std::fs::read_to_string(repo().join("src/lib.rs")).unwrap();
    for module in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')) {
        assert!(map.contains(&format!("`{module}`")), "ARCHITECTURE.md does not name the module `{module}`");
    }
}

/// `settings/env.rs` declares every environment variable the tool reads (ARCHITECTURE.md,
/// code map): outside it, no code names one by a literal (each goes through its constant), and
/// nothing reads the process's environment with a literal name. Test modules may.
#[test]
fn environment_variables_are_read_by_their_declared_names_only() {
    let declared_file = repo().join("src/settings/env.rs");
    // Every quoted name in a `pub const` of it, single or a list (prefixes such as `AWS_` too).
    let text = std::fs::read_to_string(&declared_file).unwrap();
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
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut found = Vec::new();
    for file in files.iter().filter(|f| **f != declared_file) {
        let text = std::fs::read_to_string(file).unwrap();
        // The product's code, not its test module (a `#[cfg(test)]` item elsewhere is checked).
        let tests_start = ["#[cfg(test)]\nmod ", "#[cfg(test)]\npub(crate) mod "]
            .iter()
            .filter_map(|m| text.find(m))
            .min()
            .unwrap_or(text.len());
        let code = &text[..tests_start];
        for (number, line) in code.lines().enumerate() {
            let literal_read = ["env::var(\"", "env::var_os(\"", "vars.get(\""].iter().any(|p| line.contains(p));
            let named = declared.iter().find(|name| line.contains(&format!("\"{name}\"")));
            if literal_read || named.is_some() {
                found.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "read by a literal name outside settings/env.rs:\n{}", found.join("\n"));
}

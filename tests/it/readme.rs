//! Every command the README shows runs as shown: the main command, the quickstart's commands
//! (on the quickstart's own plan) and every inline example that runs against `--simulate`.
//! The one that needs the real API is run without a login and must say so (exit 3).

use crate::support::{Test, repo};

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The lines of every fenced block of `lang`, in order.
fn blocks(text: &str, lang: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = (info.trim() == lang).then(Vec::new).or(Some(vec!["\u{0}".to_owned()])),
            (Some(_), Some(_)) => {
                if let Some(block) = current.take().filter(|b| b.first().is_none_or(|l| l != "\u{0}")) {
                    out.push(block);
                }
            }
            (Some(block), None) => block.push(line.to_owned()),
            (None, None) => {}
        }
    }
    out
}

/// A command line split as a POSIX shell would split these (quotes, no expansion).
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, ' ') => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    out
}

/// `cmd   # comment` → `cmd`.
fn without_comment(line: &str) -> &str {
    line.split(" #").next().unwrap_or(line).trim()
}

#[test]
fn the_main_command_runs_as_shown() {
    let text = readme();
    let sh = blocks(&text, "sh");
    let main = sh[0].iter().map(|l| without_comment(l)).find(|l| l.starts_with("cargo run --locked -- ")).unwrap();
    let args = words(main.trim_start_matches("cargo run --locked -- "));
    assert_eq!(args[..2], ["apply", "examples/weekly-release.yml"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Run from the repository as shown; the journal goes to a scratch directory, not the tree.
    let state = tempfile::tempdir().unwrap();
    let out =
        Test::new().in_dir(&repo()).env("TERMINUS_BATCH_STATE_DIR", state.path().to_str().unwrap()).args(&args).run();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let total = out.stdout.lines().find(|l| l.starts_with("total ")).unwrap_or_default();
    assert_eq!(total.split_whitespace().nth(1), Some("88"), "{}", out.stdout);
}

#[test]
fn the_quickstart_runs_as_shown() {
    let text = readme();
    let plan = blocks(&text, "yaml").into_iter().next().unwrap().join("\n");
    assert!(plan.starts_with("version: 1"), "{plan}");
    let t = Test::new().file("release.yml", &plan);
    let commands: Vec<String> = blocks(&text, "sh")
        .iter()
        .flatten()
        .map(|l| without_comment(l).to_owned())
        .filter(|l| l.starts_with("terminus-batch "))
        .collect();
    assert!(commands.len() >= 5, "{commands:?}");
    for command in commands {
        let args = words(command.trim_start_matches("terminus-batch "));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = Test::new().in_dir(t.path()).args(&args).run();
        if args.contains(&"--simulate") || args[0] == "validate" {
            assert_eq!(out.code, 0, "`{command}`: {}{}", out.stdout, out.stderr);
        } else {
            // The one that runs for real: without a login it stops before any call.
            assert_eq!(out.code, 3, "`{command}`: {}", out.stderr);
            assert!(out.stderr.contains("no login is at hand"), "`{command}`: {}", out.stderr);
        }
    }
    assert!(t.path().join("run.html").is_file(), "the quickstart's report was written");
}

#[test]
fn every_inline_example_against_the_simulator_runs_as_shown() {
    let text = readme();
    let mut examples: Vec<String> = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        let command = span.trim_start_matches("terminus-batch ");
        let words = words(command);
        // A placeholder (`PLAN`, `OP`), an alternative (`a|b`), an optional part (`[--x]`) or a
        // fragment (`apply --simulate`) is syntax, not a command to run.
        let placeholder = |w: &String| w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_');
        let runnable = command.contains("--simulate")
            && ["run ", "plan ", "apply ", "graph ", "validate "].iter().any(|c| command.starts_with(c))
            && words.get(1).is_some_and(|w| !w.starts_with("--"))
            && !words.iter().any(placeholder)
            && !command.contains(['[', '|', '\n']);
        if runnable && !examples.contains(&command.to_owned()) {
            examples.push(command.to_owned());
        }
    }
    assert!(examples.len() >= 4, "{examples:?}");
    assert!(examples.iter().any(|e| e.starts_with("run env:deploy --on acme-web.test,acme-blog.test")), "{examples:?}");
    for example in &examples {
        let args = words(example);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = Test::new().args(&args).run();
        assert_eq!(out.code, 0, "`{example}`: {}{}", out.stdout, out.stderr);
    }
}

#[test]
fn words_split_as_a_shell_would() {
    assert_eq!(
        words("run x --on 'acme-*.live' --with note=\"a b\""),
        ["run", "x", "--on", "acme-*.live", "--with", "note=a b"]
    );
}

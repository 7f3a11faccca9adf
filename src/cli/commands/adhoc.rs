//! `run OP [--on TARGETS] [--with KEY=VALUE]...`: an ad-hoc batch. The arguments become a
//! one-job plan (one job per environment when targets name several), which then goes
//! through exactly what `apply` does; `--dry-run` prints the plan and its dry run.
//!
//! The plan is written as YAML whose every scalar is JSON-encoded, so no value can change
//! its structure, and errors point into a text the user can see with `--dry-run`.

use std::collections::BTreeMap;

use crate::cli::error::{CommandError, CommandResult};
use crate::cli::{AdhocArgs, Io, PlanArgs, PlanFormat};
use tb_plan::plan::PlanSource;
use tb_plan::plan::ops::{OperationKind, OptType};
use tb_run::PlanInput;

pub(super) fn handle(args: &AdhocArgs, io: &mut Io<'_>) -> CommandResult {
    let text = plan_text(&args.operation, &args.on, &args.with).map_err(CommandError::invalid)?;
    let source = PlanSource::new(format!("<run {}>", args.operation), text.clone());
    if args.dry_run {
        io.stdout.write_all(text.as_bytes())?;
        writeln!(io.stdout)?;
        let plan_args = PlanArgs {
            plan: std::path::PathBuf::from(&source.path),
            targeting: crate::cli::TargetingArgs {
                simulate: args.targeting.simulate,
                world: args.targeting.world.clone(),
                only: args.targeting.only.clone(),
                sites: args.targeting.sites.clone(),
                shard: args.targeting.shard,
            },
            format: PlanFormat::Text,
            out: None,
            refresh: false,
            detailed_exitcode: false,
            shards: 4,
        };
        return super::plan::show(PlanInput::Generated(source), &plan_args, io).map_err(|e| from_command_line(e, args));
    }
    super::apply::apply_plan(PlanInput::Generated(source), std::path::Path::new("."), &args.targeting, &args.exec, io)
        .map_err(|e| from_command_line(e, args))
}

/// The plan `run` builds is text the user never wrote: its errors (every plan error of this
/// command is of that plan) speak of the command line, not of a line and column in that text.
fn from_command_line(error: CommandError, args: &AdhocArgs) -> CommandError {
    let CommandError::Plan { errors, .. } = error else { return error };
    let mut command = format!("run {}", args.operation);
    if !args.on.is_empty() {
        command.push_str(&format!(" --on {}", args.on.join(",")));
    }
    for pair in &args.with {
        command.push_str(&format!(" --with {}", shown(pair)));
    }
    let lines: Vec<String> = errors
        .iter()
        .map(|e| match &e.help {
            Some(help) => format!("{}\n  help: {help}", e.message),
            None => e.message.clone(),
        })
        .collect();
    CommandError::invalid(format!("`{command}`: {}", lines.join("\nerror: ")))
}

/// `KEY=VALUE` as an error may echo it: the value of a secret option (of any operation, so
/// that a misspelt operation is covered too) is never shown, unless it names the environment
/// variable that holds the secret.
fn shown(pair: &str) -> String {
    let Some((key, value)) = pair.split_once('=') else { return pair.to_owned() };
    let secret =
        OperationKind::ALL.iter().flat_map(|kind| kind.options()).any(|o| o.name == key && o.ty == OptType::Secret);
    if secret && !value.trim_start().starts_with("${{") { format!("{key}=<redacted>") } else { pair.to_owned() }
}

/// A value as JSON: a YAML flow collection or quoted scalar read as YAML (`[updb, -y]`,
/// `[cset, system.site, name, "My Site, Inc"]`, `{a: 1}`, `"25"`), else a plain scalar, whole
/// (so that `Release: weekly` stays a note, not a mapping).
fn value(text: &str) -> Result<String, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with(['[', '{', '"', '\'']) {
        return tb_plan::plan::parse::flow_value(trimmed).map(|v| v.to_string());
    }
    Ok(scalar(text))
}

/// A YAML scalar as JSON: booleans, numbers and null as such, anything else a string.
fn scalar(value: &str) -> String {
    let json = match value {
        "true" => serde_json::Value::Bool(true),
        "false" => serde_json::Value::Bool(false),
        "null" | "~" => serde_json::Value::Null,
        v => match (v.parse::<i64>(), v.parse::<f64>()) {
            (Ok(n), _) => serde_json::Value::from(n),
            (_, Ok(x)) if x.is_finite() && v.chars().any(|c| c.is_ascii_digit()) => serde_json::Value::from(x),
            _ => serde_json::Value::String(v.to_owned()),
        },
    };
    json.to_string()
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The plan text for `OP --on TARGETS --with K=V…`.
fn plan_text(operation: &str, on: &[String], with: &[String]) -> Result<String, String> {
    let mut options = Vec::new();
    for pair in with {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("--with {pair}: write KEY=VALUE"))?;
        if key.is_empty() {
            return Err(format!("--with {pair}: the key is empty"));
        }
        let value = self::value(value).map_err(|e| format!("--with {}: not YAML: {e}", shown(pair)))?;
        options.push(format!("{}: {}", quote(key), value));
    }
    // Sites per environment: `site.env` entries grouped by env, bare sites under none.
    let mut by_env: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for target in on.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let (site, env) = match target.split_once('.') {
            Some((s, e)) if !s.is_empty() && !e.is_empty() => (s, Some(e.to_owned())),
            Some(_) => return Err(format!("--on {target}: write site or site.env")),
            None => (target, None),
        };
        let sites = by_env.entry(env).or_default();
        if !sites.iter().any(|s| s == site) {
            sites.push(site.to_owned());
        }
    }
    let base: String = operation.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let mut text = format!("version: 1\nname: {}\njobs:\n", quote(&format!("run {operation}")));
    let with = if options.is_empty() { String::new() } else { format!("    with: {{ {} }}\n", options.join(", ")) };
    if by_env.is_empty() {
        text.push_str(&format!("  {}:\n    run: {}\n{with}", quote(&base), quote(operation)));
        return Ok(text);
    }
    let several = by_env.len() > 1;
    for (env, sites) in &by_env {
        let name = match (env, several) {
            (Some(e), true) => {
                let e: String = e.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
                format!("{base}-{e}")
            }
            _ => base.clone(),
        };
        let sites: Vec<String> = sites.iter().map(|s| quote(s)).collect();
        let env_part = env.as_ref().map(|e| format!(", env: {}", quote(e))).unwrap_or_default();
        text.push_str(&format!(
            "  {}:\n    run: {}\n    on: {{ sites: [{}]{env_part} }}\n{with}",
            quote(&name),
            quote(operation),
            sites.join(", ")
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_as_yaml() {
        assert_eq!(scalar("true"), "true");
        assert_eq!(scalar("30"), "30");
        assert_eq!(scalar("1.5"), "1.5");
        assert_eq!(scalar("Release 1"), "\"Release 1\"");
        assert_eq!(scalar("a: {b}"), "\"a: {b}\"", "no YAML structure sneaks in");
        assert_eq!(scalar("inf"), "\"inf\"");
    }

    #[test]
    fn targets_group_by_environment() {
        let text =
            plan_text("env:deploy", &["a.test".into(), "b.test".into(), "c.live".into()], &["note=Go".into()]).unwrap();
        assert_eq!(
            text,
            "version: 1\nname: \"run env:deploy\"\njobs:\n  \"env-deploy-live\":\n    run: \"env:deploy\"\n    on: { sites: [\"c\"], env: \"live\" }\n    with: { \"note\": \"Go\" }\n  \"env-deploy-test\":\n    run: \"env:deploy\"\n    on: { sites: [\"a\", \"b\"], env: \"test\" }\n    with: { \"note\": \"Go\" }\n"
        );
        let account = plan_text("org:list", &[], &[]).unwrap();
        assert!(account.ends_with("  \"org-list\":\n    run: \"org:list\"\n"), "{account}");
        assert!(plan_text("x", &[".live".into()], &[]).is_err());
        assert!(plan_text("x", &[], &["novalue".into()]).is_err());
    }
}

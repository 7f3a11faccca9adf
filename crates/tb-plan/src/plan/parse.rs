//! Plan text → [`PlanRaw`]. The only place that drives the YAML parser: it sets the input
//! budgets and turns the parser's errors into [`PlanError`]s with stable codes.

use miette::SourceSpan;
use serde_saphyr::{Budget, Error as YamlError, Location, Options, Spanned};

use super::error::{ErrorCode, PlanError, did_you_mean};
use super::raw::PlanRaw;
use super::source::PlanSource;

/// Largest plan accepted, in bytes. Real plans are a few kilobytes; a megabyte is generous
/// and keeps parsing far under a second.
pub const MAX_PLAN_BYTES: usize = 1 << 20;
/// Parser events (scalars, map and list starts) accepted in one plan.
pub const MAX_YAML_EVENTS: usize = 200_000;
/// Alias uses (`*name`) accepted in one plan; an alias bomb needs many.
pub const MAX_YAML_ALIASES: usize = 1_000;
/// Nesting depth accepted; plans are at most a handful of levels deep.
pub const MAX_YAML_DEPTH: usize = 64;

/// Parses a plan's text, refusing oversized input before the parser sees it.
///
/// # Errors
/// A [`PlanError`] with the code of what went wrong and the location of the offending text.
pub fn parse(source: &PlanSource) -> Result<(PlanRaw, Vec<PlanError>), Vec<PlanError>> {
    // The structs take unknown keys without a word, so that one misspelt key does not hide
    // every other mistake: they are found here, every one, by walking the same document.
    let tree: serde_json::Value = parse_yaml(source, Budgets::PLAN).map_err(|e| vec![e])?;
    let mut paths = Vec::new();
    unknown_keys(&tree, &mut Vec::new(), &mut paths);
    let mut unknown: Vec<PlanError> = paths.iter().map(|path| unknown_key(source, path)).collect();
    match parse_yaml::<PlanRaw>(source, Budgets::PLAN) {
        Ok(raw) => Ok((raw, unknown)),
        Err(e) => {
            unknown.push(e);
            unknown.sort_by_key(PlanError::offset);
            Err(unknown)
        }
    }
}

/// Collects the path (`jobs.deploy.setings`) of every key no map of the plan accepts.
fn unknown_keys<'a>(value: &'a serde_json::Value, path: &mut Vec<&'a str>, out: &mut Vec<String>) {
    let serde_json::Value::Object(map) = value else { return };
    let parent: Vec<&str> = path.clone();
    let known = known_keys(&parent);
    for (key, child) in map {
        let generic: Vec<&str> = parent.iter().copied().chain(std::iter::once(key.as_str())).collect();
        match known {
            Some(keys) if !keys.contains(&key.as_str()) => out.push(generic.join(".")),
            _ => {}
        }
        // Descend where the plan has maps of known keys.
        let descend = match parent.as_slice() {
            [] => matches!(key.as_str(), "settings" | "targets" | "jobs"),
            ["targets" | "jobs"] => true,
            ["jobs", _] => matches!(key.as_str(), "on" | "rollout" | "retries" | "needs"),
            ["jobs", _, "on"] => key == "sites",
            _ => false,
        };
        if !descend {
            continue;
        }
        path.push(key.as_str());
        match child {
            serde_json::Value::Array(items) if key == "needs" => {
                for item in items {
                    path.push("needs[]");
                    unknown_keys(item, path, out);
                    path.pop();
                }
            }
            _ => unknown_keys(child, path, out),
        }
        path.pop();
    }
}

/// An unknown key at `path` (`jobs.deploy.setings`), located in the text: each segment is
/// looked for as a mapping key after the previous one.
fn unknown_key(source: &PlanSource, path: &str) -> PlanError {
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty() && *s != "needs[]").collect();
    let text = &source.text;
    let mut from = 0;
    let mut found = None;
    for segment in &segments {
        found = key_at(text, segment, from);
        match found {
            Some(at) => from = at + segment.len(),
            None => break,
        }
    }
    let key = segments.last().copied().unwrap_or(path);
    let parent = &segments[..segments.len().saturating_sub(1)];
    let place =
        if parent.is_empty() { "at the top of the plan".to_owned() } else { format!("in `{}`", parent.join(".")) };
    let mut error = PlanError::new(ErrorCode::UnknownKey, format!("unknown key `{key}`")).help_opt(
        known_keys(parent).and_then(|keys| {
            did_you_mean(key, keys.iter().copied()).or_else(|| Some(format!("expected one of: {}", keys.join(", "))))
        }),
    );
    if let Some(at) = found {
        error = error.at(SourceSpan::new(at.into(), key.len()), format!("not a known key {place}"));
    }
    error
}

/// Where `key` next appears as a mapping key (`key:` at a line's start or after `{`/`,`).
fn key_at(text: &str, key: &str, from: usize) -> Option<usize> {
    let mut start = from;
    while let Some(rel) = text.get(start..)?.find(key) {
        let at = start + rel;
        let before = text[..at].trim_end_matches([' ', '\t', '"', '\'']);
        let after = text[at + key.len()..].trim_start_matches(['"', '\'']).trim_start_matches([' ', '\t']);
        let starts = before.is_empty() || before.ends_with(['\n', '{', ',']);
        if starts && after.starts_with(':') {
            return Some(at);
        }
        start = at + key.len();
    }
    None
}

/// The keys a map at `parent` accepts, for the did-you-mean.
fn known_keys(parent: &[&str]) -> Option<&'static [&'static str]> {
    const TOP: &[&str] = &["version", "name", "settings", "targets", "jobs"];
    const SETTINGS: &[&str] = &[
        "concurrency",
        "per_site",
        "max_requests",
        "requests_per_second",
        "burst",
        "on_failure",
        "max_failures",
        "timeout",
        "state",
        "notify",
    ];
    const NOTIFY: &[&str] = &["url", "events", "format"];
    const JOB: &[&str] =
        &["run", "on", "with", "matrix", "needs", "on_failure", "max_failures", "rollout", "timeout", "retries"];
    const ON: &[&str] = &["sites", "env"];
    const ROLLOUT: &[&str] = &["first", "then", "max_failures", "checks"];
    const RETRIES: &[&str] = &["attempts", "backoff"];
    const SELECTOR: &[&str] = &["org", "tag", "upstream", "framework", "plan", "exclude"];
    const NEED: &[&str] = &["job", "scope", "optional"];
    match parent {
        [] => Some(TOP),
        ["settings"] => Some(SETTINGS),
        ["settings", "notify", "notify[]"] => Some(NOTIFY),
        ["jobs", _] => Some(JOB),
        ["jobs", _, "on"] => Some(ON),
        ["jobs", _, "rollout"] => Some(ROLLOUT),
        ["jobs", _, "retries"] => Some(RETRIES),
        ["targets", _] | ["jobs", _, "on", "sites"] => Some(SELECTOR),
        ["jobs", _, "needs", "needs[]"] => Some(NEED),
        _ => None,
    }
}

/// Input budgets for one kind of YAML file.
#[derive(Clone, Copy, Debug)]
pub struct Budgets {
    pub bytes: usize,
    pub events: usize,
}

impl Budgets {
    /// Plans: hand-written, a few kilobytes.
    pub const PLAN: Self = Self { bytes: MAX_PLAN_BYTES, events: MAX_YAML_EVENTS };
    /// Simulator worlds: generated for benchmarks with tens of thousands of sites.
    pub const WORLD: Self = Self { bytes: 64 << 20, events: 20_000_000 };
}

/// Parses any YAML document under the given budgets (plans, world files).
///
/// # Errors
/// As [`parse`].
pub fn parse_yaml<T: serde::de::DeserializeOwned>(source: &PlanSource, budgets: Budgets) -> Result<T, PlanError> {
    check_size(source, budgets.bytes)?;
    serde_saphyr::from_str_with_options(&source.text, options(budgets.events)).map_err(|e| convert(&e, source))
}

fn check_size(source: &PlanSource, max: usize) -> Result<(), PlanError> {
    if source.text.len() > max {
        return Err(PlanError::new(
            ErrorCode::TooLarge,
            format!("{} is {} bytes, over the limit of {} bytes", source.path, source.text.len(), max),
        )
        .help("split the work into several plans"));
    }
    Ok(())
}

fn options(max_events: usize) -> Options {
    let mut budget = Budget::default();
    budget.max_events = max_events;
    budget.max_aliases = MAX_YAML_ALIASES;
    budget.max_anchors = MAX_YAML_ALIASES;
    budget.max_depth = MAX_YAML_DEPTH;
    budget.max_documents = 1;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = max_events;
    options.with_snippet = false;
    options
}

/// A value written on the command line (`run --with KEY=VALUE`) that is a YAML flow
/// collection or a quoted scalar (`[echo, "25", 'a b']`, `{a: 1}`, `"My Site, Inc"`), as JSON:
/// read as a plan reads it, within the plan's budgets.
pub fn flow_value(text: &str) -> Result<serde_json::Value, String> {
    serde_saphyr::from_str_with_options::<serde_json::Value>(text, options(1000)).map_err(|e| {
        let message = e.to_string();
        message.lines().next().unwrap_or("not YAML").to_owned()
    })
}

/// The source span of a spanned value: its byte offset and length, at least one byte wide
/// so a label always shows.
#[must_use]
pub fn span_of<T>(value: &Spanned<T>) -> SourceSpan {
    location_span(value.referenced, None)
}

/// The byte offset of a 1-based line and column (in characters) in `text`.
fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
    let start: usize = text.split_inclusive('\n').take(line.checked_sub(1)?).map(str::len).sum();
    let rest = text.get(start..)?;
    let within = rest.char_indices().nth(column.saturating_sub(1)).map_or(rest.len(), |(i, _)| i);
    Some(start + within)
}

fn location_span(location: Location, text: Option<&str>) -> SourceSpan {
    let span = location.span();
    // Some errors (a syntax error met by the scanner) carry a line and column but no byte
    // offset: compute it, rather than point at the start of the file.
    let fallback = || {
        let line = usize::try_from(location.line()).ok()?;
        let column = usize::try_from(location.column()).ok()?;
        offset_of(text?, line, column).and_then(|o| u64::try_from(o).ok())
    };
    let offset = span.byte_offset().or_else(fallback).unwrap_or(0);
    let len = span.byte_len().unwrap_or(0).max(1);
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let len = usize::try_from(len).unwrap_or(1);
    SourceSpan::new(offset.into(), len)
}

fn convert(error: &YamlError, source: &PlanSource) -> PlanError {
    let inner = error.without_snippet();
    let span = inner
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| location_span(l, Some(&source.text)))
        .map(|s| clamp(s, source.text.len()));
    // An error met while replaying an alias carries the original error inside.
    let mut inner = inner;
    while let YamlError::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    let (code, message, label, help) = match inner {
        YamlError::SerdeUnknownField { field, expected, .. } => (
            ErrorCode::UnknownKey,
            format!("unknown key `{field}`"),
            "not a known key here".to_owned(),
            did_you_mean(field, expected.iter().copied())
                .or_else(|| Some(format!("expected one of: {}", expected.join(", ")))),
        ),
        YamlError::SerdeMissingField { field, .. } => (
            ErrorCode::MissingKey,
            format!("missing key `{field}`"),
            format!("`{field}` is required in this map"),
            None,
        ),
        YamlError::DuplicateMappingKey { key, .. } => (
            ErrorCode::DuplicateKey,
            match key {
                Some(k) => format!("duplicate key `{k}`"),
                None => "duplicate key".to_owned(),
            },
            "defined again here".to_owned(),
            Some("each key may appear once per map; remove or rename one".to_owned()),
        ),
        YamlError::SerdeInvalidType { .. } | YamlError::SerdeInvalidValue { .. } => {
            (ErrorCode::WrongType, strip_position(&inner.to_string()), "wrong type".to_owned(), None)
        }
        YamlError::InvalidScalar { ty, .. } => {
            let found = span.and_then(|s| source.text.get(s.offset()..s.offset() + s.len())).unwrap_or("this value");
            (
                ErrorCode::WrongType,
                format!("expected {}, found `{found}`", describe_type(ty)),
                "wrong type".to_owned(),
                None,
            )
        }
        YamlError::SerdeUnknownVariant { variant, expected, .. } => (
            ErrorCode::BadValue,
            format!("unknown value `{variant}`"),
            "not accepted here".to_owned(),
            did_you_mean(variant, expected.iter().copied()),
        ),
        YamlError::Budget { breach, .. } => (
            ErrorCode::TooLarge,
            format!("{} exceeds the parser budget: {}", source.path, describe_breach(breach)),
            "budget exceeded here".to_owned(),
            Some(format!(
                "plans are limited to {MAX_YAML_EVENTS} YAML events, {MAX_YAML_ALIASES} aliases and depth {MAX_YAML_DEPTH}"
            )),
        ),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. }
        | YamlError::AliasReplayCounterOverflow { .. } => (
            ErrorCode::TooLarge,
            format!("{} expands aliases beyond the parser budget", source.path),
            "alias expanded here".to_owned(),
            Some("write the values out, or use fewer nested aliases".to_owned()),
        ),
        YamlError::Message { .. } => {
            (ErrorCode::WrongType, strip_position(&inner.to_string()), "invalid value".to_owned(), None)
        }
        _ => (
            ErrorCode::Syntax,
            format!("invalid YAML: {}", strip_position(&inner.to_string())),
            "here".to_owned(),
            None,
        ),
    };
    let mut error = PlanError::new(code, message).help_opt(help);
    // An unclosed `{` or `[` is where the mistake is; the parser notices it later.
    // (A mismatched bracket is named by the parser's own message, at the right place.)
    let opener = (code == ErrorCode::Syntax && !error.message.contains("mismatched bracket"))
        .then(|| unclosed_bracket(&source.text, span.map_or(source.text.len(), |s| s.offset())))
        .flatten();
    if let Some((at, bracket)) = opener {
        let close = if bracket == '{' { '}' } else { ']' };
        error = error
            .at(SourceSpan::new(at.into(), 1), format!("this `{bracket}` is never closed"))
            .help(format!("close it with `{close}`, or write its entries as indented lines"));
    }
    if let Some(span) = span {
        error = error.at(span, if opener.is_some() { "the parser gave up here".to_owned() } else { label });
    }
    error
}

/// The innermost `{` or `[` still open at byte `upto`, outside quotes and comments.
fn unclosed_bracket(text: &str, upto: usize) -> Option<(usize, char)> {
    let mut open: Vec<(usize, char)> = Vec::new();
    for line_start in text.split_inclusive('\n').scan(0, |at, l| {
        let start = *at;
        *at += l.len();
        Some((start, l))
    }) {
        let (start, line) = line_start;
        let mut quote: Option<char> = None;
        for (i, c) in line.char_indices() {
            let at = start + i;
            if at >= upto {
                return open.last().copied();
            }
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,

                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if i == 0 || line[..i].ends_with([' ', '\t']) => break,
                (None, '{' | '[') => open.push((at, c)),
                (None, '}' | ']') => {
                    open.pop();
                }
                _ => {}
            }
        }
    }
    open.last().copied()
}

fn describe_breach(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Events { .. } => format!("more than {MAX_YAML_EVENTS} YAML events once aliases are expanded"),
        B::Aliases { .. } => format!("more than {MAX_YAML_ALIASES} aliases"),
        B::Anchors { .. } => format!("more than {MAX_YAML_ALIASES} anchors"),
        B::Depth { .. } => format!("nesting deeper than {MAX_YAML_DEPTH}"),
        B::Documents { .. } => "more than one YAML document".to_owned(),
        other => format!("{other:?}"),
    }
}

/// A user's word for a Rust scalar type.
fn describe_type(ty: &str) -> &'static str {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number of zero or more",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "bool" => "true or false",
        "char" => "a single character",
        _ => "another type",
    }
}

/// The parser appends " at line L, column C" to its messages; the diagnostic shows the
/// location itself.
fn strip_position(message: &str) -> String {
    let trimmed = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    let trimmed = trimmed.strip_prefix("invalid type: ").map_or(trimmed, |rest| rest);
    trimmed.to_owned()
}

fn clamp(span: SourceSpan, len: usize) -> SourceSpan {
    let offset = span.offset().min(len.saturating_sub(1));
    let length = span.len().min(len.saturating_sub(offset)).max(usize::from(len > 0));
    SourceSpan::new(offset.into(), length)
}

/// A plan's `settings.state` alone, read before the plan is prepared (the state holds what
/// `--resume` continues); `None` when the plan does not parse (its errors are reported, with
/// their places, when it is).
#[must_use]
pub fn state_setting(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Top {
        settings: Option<StateOnly>,
    }
    #[derive(serde::Deserialize)]
    struct StateOnly {
        state: Option<String>,
    }
    let top: Top = serde_saphyr::from_str(text).ok()?;
    top.settings?.state.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key tables the unknown-key walk uses are the raw types' own keys, as the schema
    /// (generated from them) lists them.
    #[test]
    fn known_keys_are_the_raw_types_keys() {
        let schema = serde_json::to_value(schemars::schema_for!(PlanRaw)).unwrap();
        let keys = |props: &serde_json::Value| {
            let mut k: Vec<String> = props.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let table = |parent: &[&str]| {
            let mut k: Vec<String> = known_keys(parent).unwrap().iter().map(|s| (*s).to_owned()).collect();
            k.sort();
            k
        };
        let def = |name: &str| keys(&schema["$defs"][name]["properties"]);
        assert_eq!(table(&[]), keys(&schema["properties"]));
        assert_eq!(table(&["settings"]), def("SettingsRaw"));
        assert_eq!(table(&["jobs", "j"]), def("JobRaw"));
        assert_eq!(table(&["jobs", "j", "on"]), def("OnRaw"));
        assert_eq!(table(&["jobs", "j", "rollout"]), def("RolloutRaw"));
        assert_eq!(table(&["jobs", "j", "retries"]), def("RetriesRaw"));
        assert_eq!(table(&["targets", "t"]), def("SelectorRaw"));
        assert_eq!(table(&["jobs", "j", "needs", "needs[]"]), def("NeedFullRaw"));
    }

    /// The raw plan, or the first error (unknown keys included).
    fn parse_text(text: &str) -> Result<PlanRaw, PlanError> {
        match parse(&PlanSource::new("t.yml", text)) {
            Ok((raw, unknown)) if unknown.is_empty() => Ok(raw),
            Ok((_, mut errors)) | Err(mut errors) => Err(errors.remove(0)),
        }
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let e = parse_text("version: 1\njobs:\n  a:\n    run: env:wake\n    neds: [b]\n").unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownKey);
        assert_eq!(e.help.as_deref(), Some("did you mean `needs`?"));
        assert_eq!(e.labels[0].span.offset(), 44);
    }

    #[test]
    fn duplicate_job_is_refused() {
        let e = parse_text("version: 1\njobs:\n  a: {run: env:wake}\n  a: {run: env:wake}\n").unwrap_err();
        assert_eq!(e.code, ErrorCode::DuplicateKey);
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from(
            "version: 1\njobs:\n  a:\n    run: env:wake\n    with:\n      x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
        );
        for i in 1..12 {
            let prev = i - 1;
            let refs = vec![format!("*a{prev}"); 9].join(", ");
            text.push_str(&format!("      x{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let e = parse_text(&text).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(e.code, ErrorCode::TooLarge, "{e:?}");
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let text = "#".repeat(MAX_PLAN_BYTES + 1);
        assert_eq!(parse_text(&text).unwrap_err().code, ErrorCode::TooLarge);
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = parse_text("version: 1\njobs: {a: [}\n").unwrap_err();
        assert_eq!(e.code, ErrorCode::Syntax);
        assert!(!e.labels.is_empty());
    }
}

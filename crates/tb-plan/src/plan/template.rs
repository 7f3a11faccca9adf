//! `${{ ... }}` interpolation in `with` values: parsing templates and the [`Text`] they
//! become once a task's site, environment and matrix values are known.
//!
//! `${{ run.id }}` and `${{ env.NAME }}` stay symbolic in [`Text`]: the run id exists only
//! when a run starts, and process environment values (secrets) must never enter a plan,
//! a saved plan, a report or the journal. They are substituted at execution time.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A name a template may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Var {
    Site,
    Env,
    RunId,
    Matrix(String),
    ProcessEnv(String),
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Site => f.write_str("site"),
            Self::Env => f.write_str("env"),
            Self::RunId => f.write_str("run.id"),
            Self::Matrix(n) => write!(f, "matrix.{n}"),
            Self::ProcessEnv(n) => write!(f, "env.{n}"),
        }
    }
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Lit(String),
    Var {
        var: Var,
        /// Byte range of the whole `${{ ... }}` within the string.
        start: usize,
        end: usize,
    },
}

/// A parsed template string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

/// Why a template string is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte range within the string.
    pub start: usize,
    pub end: usize,
    pub message: String,
    pub help: Option<String>,
    pub unknown_name: bool,
}

/// The names every template may use, for suggestions.
pub const KNOWN_NAMES: &[&str] = &["site", "env", "run.id", "matrix.", "env."];

impl Template {
    /// Parses `text`, splitting literal text from `${{ name }}` references.
    ///
    /// # Errors
    /// An unclosed `${{`, an empty reference or an unknown name.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = 0;
        while let Some(found) = text[rest..].find("${{") {
            let start = rest + found;
            if start > rest {
                segments.push(Segment::Lit(text[rest..start].to_owned()));
            }
            let Some(close) = text[start + 3..].find("}}") else {
                return Err(TemplateError {
                    start,
                    end: text.len(),
                    message: "unclosed `${{`".to_owned(),
                    help: Some("close the reference with `}}`".to_owned()),
                    unknown_name: false,
                });
            };
            let end = start + 3 + close + 2;
            let inner = text[start + 3..start + 3 + close].trim();
            let var = parse_var(inner).map_err(|(message, help, unknown_name)| TemplateError {
                start,
                end,
                message,
                help,
                unknown_name,
            })?;
            segments.push(Segment::Var { var, start, end });
            rest = end;
        }
        if rest < text.len() {
            segments.push(Segment::Lit(text[rest..].to_owned()));
        }
        Ok(Self { segments })
    }

    /// The variables the template references.
    pub fn vars(&self) -> impl Iterator<Item = (&Var, usize, usize)> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var { var, start, end } => Some((var, *start, *end)),
            Segment::Lit(_) => None,
        })
    }

    /// True when the template is exactly one reference with no literal text around it.
    #[must_use]
    pub fn single_var(&self) -> Option<&Var> {
        match self.segments.as_slice() {
            [Segment::Var { var, .. }] => Some(var),
            _ => None,
        }
    }

    #[must_use]
    pub fn is_literal(&self) -> bool {
        self.vars().next().is_none()
    }
}

fn parse_var(inner: &str) -> Result<Var, (String, Option<String>, bool)> {
    let ident_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match inner {
        "" => Err(("empty `${{ }}` reference".to_owned(), None, false)),
        "site" => Ok(Var::Site),
        "env" => Ok(Var::Env),
        "run.id" => Ok(Var::RunId),
        _ => {
            if let Some(name) = inner.strip_prefix("matrix.")
                && ident_ok(name)
            {
                return Ok(Var::Matrix(name.to_owned()));
            }
            if let Some(name) = inner.strip_prefix("env.")
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Ok(Var::ProcessEnv(name.to_owned()));
            }
            let suggestion = super::error::did_you_mean(inner, ["site", "env", "run.id"])
                .or_else(|| Some("known names: `site`, `env`, `run.id`, `matrix.NAME`, `env.NAME`".to_owned()));
            Err((format!("unknown name `{inner}` in `${{{{ }}}}`"), suggestion, true))
        }
    }
}

/// Text after expansion: literal, with run id and process environment references left
/// symbolic until execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(pub Vec<TextPart>);

/// A piece of [`Text`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextPart {
    Lit(String),
    RunId,
    Env(String),
}

impl Text {
    #[must_use]
    pub fn literal(s: impl Into<String>) -> Self {
        Self(vec![TextPart::Lit(s.into())])
    }

    /// The literal string, when the text has no symbolic part.
    #[must_use]
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                TextPart::Lit(s) => out.push_str(s),
                TextPart::RunId | TextPart::Env(_) => return None,
            }
        }
        Some(out)
    }

    /// Names of the process environment variables the text reads.
    pub fn env_vars(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            TextPart::Env(name) => Some(name.as_str()),
            _ => None,
        })
    }
}

impl fmt::Display for Text {
    /// Shows symbolic parts as their reference, never a value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.0 {
            match part {
                TextPart::Lit(s) => f.write_str(s)?,
                TextPart::RunId => f.write_str("${{ run.id }}")?,
                TextPart::Env(n) => write!(f, "${{{{ env.{n} }}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_and_references() {
        let t = Template::parse("Weekly ${{ run.id }} on ${{site}}.${{ env }}").unwrap();
        let vars: Vec<String> = t.vars().map(|(v, _, _)| v.to_string()).collect();
        assert_eq!(vars, ["run.id", "site", "env"]);
        assert!(Template::parse("plain").unwrap().is_literal());
        assert_eq!(Template::parse("${{ matrix.domain }}").unwrap().single_var(), Some(&Var::Matrix("domain".into())));
    }

    #[test]
    fn rejects_unknown_and_unclosed() {
        let e = Template::parse("x ${{ stie }}").unwrap_err();
        assert!(e.unknown_name);
        assert_eq!((e.start, e.end), (2, 13));
        assert_eq!(e.help.as_deref(), Some("did you mean `site`?"));
        let e = Template::parse("${{ site").unwrap_err();
        assert!(!e.unknown_name);
        assert!(Template::parse("${{ }}").is_err());
        assert!(Template::parse("${{ env.A-B }}").is_err());
    }

    #[test]
    fn text_never_shows_values() {
        let t = Text(vec![TextPart::Lit("p=".into()), TextPart::Env("PW".into())]);
        assert_eq!(t.to_string(), "p=${{ env.PW }}");
        assert_eq!(t.as_literal(), None);
    }
}

//! Reports: [`summary::RunReport`] folds a run's events; each format renders it to bytes
//! (JSON, `JUnit`, Markdown, HTML, the final table) with no clock, no environment and a stable
//! order; [`live`] shows progress while the run goes. Reporters only consume events: they
//! never call the executor, the graph or the API.

pub mod data;
pub mod html;
pub mod json;
pub mod junit;
pub mod live;
pub mod markdown;
pub mod notify;
pub mod paint;
pub mod summary;
pub mod table;
pub mod telemetry;

use std::fmt;
use std::str::FromStr;

pub use summary::RunReport;

/// A `--report` file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Junit,
    Markdown,
    Html,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "junit" => Ok(Self::Junit),
            "markdown" | "md" => Ok(Self::Markdown),
            "html" => Ok(Self::Html),
            other => Err(format!("unknown report format `{other}` (json, junit, markdown, html)")),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Junit => "junit",
            Self::Markdown => "markdown",
            Self::Html => "html",
        })
    }
}

/// Renders a report in `format`.
#[must_use]
pub fn render(report: &RunReport, format: Format) -> String {
    match format {
        Format::Json => json::render(report),
        Format::Junit => junit::render(report),
        Format::Markdown => markdown::render(report),
        Format::Html => html::render(report),
    }
}

/// Escapes text for HTML and XML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

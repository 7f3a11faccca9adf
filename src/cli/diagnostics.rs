//! The only builder of miette reports: renders plan diagnostics against their source text,
//! and other errors as one line, to the writer it is given (stderr in production).

use std::io::{self, Write};

use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};

use crate::plan::{PlanError, PlanSource};

/// How diagnostics are drawn.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

impl Style {
    /// Colour only on a terminal and without `NO_COLOR`; the width of the terminal or 100.
    #[must_use]
    pub fn detect(stderr_is_tty: bool, no_color: bool, columns: Option<usize>) -> Self {
        Self { color: stderr_is_tty && !no_color, width: columns.unwrap_or(100).clamp(60, 200) }
    }
}

struct WithSource<'a> {
    error: &'a PlanError,
    source: NamedSource<String>,
}

impl std::fmt::Debug for WithSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.error, f)
    }
}

impl std::fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.error, f)
    }
}

impl std::error::Error for WithSource<'_> {}

impl miette::Diagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        self.error.code()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        miette::Diagnostic::help(self.error)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.error.labels()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
}

/// Writes every diagnostic, then a count line.
///
/// # Errors
/// Only the writer's errors.
pub fn write_plan_errors(
    out: &mut dyn Write,
    source: &PlanSource,
    errors: &[PlanError],
    style: Style,
) -> io::Result<()> {
    let theme = if style.color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(style.width).with_context_lines(1);
    for (i, error) in errors.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let diagnostic = WithSource { error, source: NamedSource::new(&source.path, source.text.to_string()) };
        let mut text = String::new();
        if handler.render_report(&mut text, &diagnostic).is_err() {
            text = format!("error[{}]: {}\n", error.code, error.message);
        }
        write!(out, "{text}")?;
        if !text.ends_with('\n') {
            writeln!(out)?;
        }
    }
    let n = errors.len();
    writeln!(out, "error: {} has {n} problem{}", source.path, if n == 1 { "" } else { "s" })
}

/// Writes a one-line error.
///
/// # Errors
/// Only the writer's errors.
pub fn write_error(out: &mut dyn Write, message: &str) -> io::Result<()> {
    writeln!(out, "error: {message}")
}

//! The only builder of miette reports: renders plan diagnostics against their source text,
//! and other errors as one line, to the writer it is given (stderr in production).

use std::io::{self, Write};

use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};

use crate::cli::ColorChoice;
use tb_core::words::counted;
use tb_plan::plan::{PlanError, PlanSource};

/// How output is drawn.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Colour on stderr (diagnostics, progress).
    pub color: bool,
    /// Colour on stdout (the final table).
    pub color_out: bool,
    /// stderr is a terminal: progress is drawn as bars.
    pub terminal: bool,
    pub width: usize,
}

/// Which standard streams are terminals.
#[derive(Clone, Copy, Debug)]
pub struct Terminals {
    pub stderr: bool,
    pub stdout: bool,
}

impl Style {
    /// `--color auto` colours a stream that is a terminal unless `NO_COLOR` is set
    /// (<https://no-color.org>); `always` and `never` are what they say, whatever the
    /// environment. The width is the terminal's (`COLUMNS`) or 100.
    #[must_use]
    pub fn detect(choice: ColorChoice, terminals: Terminals, no_color: bool, columns: Option<usize>) -> Self {
        let colour = |tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && !no_color,
        };
        Self {
            color: colour(terminals.stderr),
            color_out: colour(terminals.stdout),
            terminal: terminals.stderr,
            width: columns.unwrap_or(100).clamp(60, 200),
        }
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
    writeln!(out, "error: {} has {}", source.path, counted(n, "problem"))
}

/// Writes a one-line error.
///
/// # Errors
/// Only the writer's errors.
pub fn write_error(out: &mut dyn Write, message: &str) -> io::Result<()> {
    writeln!(out, "error: {message}")
}

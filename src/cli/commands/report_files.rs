//! `--report FORMAT=PATH` files: parsed, checked before any API call, and written at the end.
//!
//! A path is written where it leads: through a symlink to its target (the link stays), into a
//! regular file by a temporary file renamed over it, and straight into a pipe or a character
//! device (`/dev/stdout`, a FIFO a reader waits on), which are never replaced. Anything else
//! (a directory, a block device, a socket) is refused before the run.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::cli::Io;
use crate::cli::diagnostics::write_error;
use tb_report::{Format, RunReport, render};

use crate::cli::error::CommandError;

/// The reports `--report FORMAT=PATH` names, each checked writable before any run, so that
/// none is lost at its end.
pub(super) fn reports_to_write(specs: &[String]) -> Result<Vec<(Format, String)>, CommandError> {
    let reports = parse_reports(specs).map_err(CommandError::invalid)?;
    for (format, path) in &reports {
        probe_writable(path).map_err(|source| CommandError::ReportFile {
            format: format.to_string(),
            path: path.clone(),
            source,
        })?;
    }
    Ok(reports)
}

/// `FORMAT=PATH` pairs, one per `--report`, or several in one value separated by commas
/// (`html=a.html,md=b.md`). A comma starts another report only where `FORMAT=` follows it, so
/// a path may hold a comma; a path that still holds `,FORMAT=` (a format misspelled) is
/// refused, never written to a file of that name.
pub(super) fn parse_reports(specs: &[String]) -> Result<Vec<(Format, String)>, String> {
    let mut reports = Vec::new();
    for spec in specs {
        for piece in split_reports(spec) {
            let (format, path) = piece
                .split_once('=')
                .ok_or_else(|| format!("--report {spec}: write FORMAT=PATH, e.g. json=report.json"))?;
            let format = format.parse::<Format>().map_err(|e| format!("--report {spec}: {e}"))?;
            if path.is_empty() {
                return Err(format!("--report {spec}: the path is empty (use - for stdout)"));
            }
            if let Some((_, tail)) = path.split_once(',').filter(|(_, tail)| tail.contains('=')) {
                return Err(format!(
                    "--report {spec}: `{tail}` after a comma is not FORMAT=PATH (formats: json, junit, markdown, \
                     html); pass one --report per file"
                ));
            }
            reports.push((format, path.to_owned()));
        }
    }
    Ok(reports)
}

/// `spec` cut at each comma that a known `FORMAT=` follows.
fn split_reports(spec: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (at, _) in spec.match_indices(',') {
        let next = &spec[at + 1..];
        let starts_report = next.split_once('=').is_some_and(|(format, _)| format.parse::<Format>().is_ok());
        if starts_report {
            pieces.push(&spec[start..at]);
            start = at + 1;
        }
    }
    pieces.push(&spec[start..]);
    pieces
}

/// Where a report path leads.
#[derive(Debug, PartialEq, Eq)]
enum Destination {
    /// A regular file (or none yet) at this real path, symlinks followed: written to a
    /// temporary file beside it, then renamed over it.
    File(PathBuf),
    /// A pipe or a character device: opened and written as it is, never replaced.
    Stream(PathBuf),
}

/// The most symlinks followed to a report's file, as the kernel's own limit.
const MAX_LINKS: usize = 40;

fn destination(path: &Path) -> io::Result<Destination> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => return Ok(Destination::File(std::fs::canonicalize(path)?)),
        Ok(meta) if meta.is_dir() => return Err(io::Error::other("it is a directory")),
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileTypeExt as _;
                let kind = meta.file_type();
                if kind.is_fifo() || kind.is_char_device() {
                    return Ok(Destination::Stream(path.to_owned()));
                }
            }
            let _ = meta;
            return Err(io::Error::other("it is not a regular file, a pipe or a character device"));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // No file there yet: where a (dangling) symlink points, or the path itself.
    let mut at = path.to_owned();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(Destination::File(at)),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Creates `path`'s directory and a file beside it, then removes that file: a report path
/// that cannot be written is found before the run, not after.
pub(super) fn probe_writable(path: &str) -> io::Result<()> {
    if path == "-" {
        return Ok(());
    }
    // A pipe is not opened before the end (that would wait for its reader).
    let Destination::File(path) = destination(Path::new(path))? else { return Ok(()) };
    let path = path.as_path();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let probe = temp_beside(path);
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

fn temp_beside(path: &Path) -> std::path::PathBuf {
    path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("report")))
}

/// Writes to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temp_beside(path);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Writes each report; says on stderr which could not be written. `false` when one could not.
pub(super) fn write_reports(report: &RunReport, reports: &[(Format, String)], io: &mut Io<'_>) -> bool {
    let mut all = true;
    for (format, path) in reports {
        let text = render(report, *format);
        let written = if path == "-" {
            io.stdout.write_all(text.as_bytes()).and_then(|()| io.stdout.flush())
        } else {
            write_to(Path::new(path), text.as_bytes())
        };
        if let Err(e) = written {
            all = false;
            let shown = if path == "-" { "stdout" } else { path.as_str() };
            let _shown = write_error(io.stderr, &format!("cannot write the {format} report to {shown}: {e}"));
        }
    }
    all
}

/// Writes `bytes` where `path` leads (see [`Destination`]).
fn write_to(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match destination(path)? {
        Destination::File(real) => write_atomically(&real, bytes),
        Destination::Stream(stream) => {
            let mut out = std::fs::OpenOptions::new().write(true).open(stream)?;
            out.write_all(bytes)?;
            out.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_specs_parse_or_name_the_problem() {
        let ok = parse_reports(&["json=out.json".into(), "html=-".into()]).unwrap();
        assert_eq!(ok, [(Format::Json, "out.json".to_owned()), (Format::Html, "-".to_owned())]);
        assert!(parse_reports(&["xml=a".into()]).unwrap_err().contains("unknown report format `xml`"));
        assert!(parse_reports(&["json".into()]).unwrap_err().contains("FORMAT=PATH"));
        // Several in one value, and a comma inside a path.
        let several = parse_reports(&["html=a.html,md=b.md".into(), "json=out,1.json".into()]).unwrap();
        assert_eq!(
            several,
            vec![
                (Format::Html, "a.html".to_owned()),
                (Format::Markdown, "b.md".to_owned()),
                (Format::Json, "out,1.json".to_owned())
            ]
        );
        // A misspelled format after a comma is refused, never a file named `a.html,mdd=b.md`.
        let err = parse_reports(&["html=a.html,mdd=b.md".into()]).unwrap_err();
        assert!(err.contains("mdd=b.md") && err.contains("one --report per file"), "{err}");
    }

    #[test]
    fn a_symlink_leads_to_its_target_and_devices_are_written_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        // Dangling: the file is made where the link points.
        assert_eq!(destination(&link).unwrap(), Destination::File(target.clone()));
        write_to(&link, b"one").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        write_to(&link, b"two").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays");
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(destination(Path::new("/dev/null")).unwrap(), Destination::Stream("/dev/null".into()));
        write_to(Path::new("/dev/null"), b"x").unwrap();
        assert!(destination(dir.path()).unwrap_err().to_string().contains("directory"));
    }
}

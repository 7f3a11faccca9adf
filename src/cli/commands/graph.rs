//! `graph PLAN --format dot|mermaid|json`: the task graph.

use std::io;

use super::prepare;
use crate::cli::exit::ExitStatus;
use crate::cli::{GraphArgs, GraphFormat, Io};
use crate::graph::render;

pub(super) fn run(args: &GraphArgs, io: &mut Io<'_>) -> io::Result<ExitStatus> {
    let mut prepared = match prepare(&args.plan, &args.targets, io)? {
        Ok(p) => p,
        Err(status) => return Ok(status),
    };
    if let Some(connection) = prepared.connection.take() {
        connection.close();
    }
    let text = match args.format {
        GraphFormat::Dot => render::dot(&prepared.graph),
        GraphFormat::Mermaid => render::mermaid(&prepared.graph),
        GraphFormat::Json => render::json(&prepared.graph),
    };
    io.stdout.write_all(text.as_bytes())?;
    Ok(ExitStatus::Success)
}

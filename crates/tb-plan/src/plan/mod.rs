//! The plan language: source text, its serde mirror, parsing, the validated model and the
//! operation catalogue.
//!
//! Must not import async code, HTTP, the executor or the graph. Entry points: [`parse::parse`]
//! then [`validate::validate`], or [`load`] for both.

pub mod error;
pub mod model;
pub mod ops;
pub mod parse;
pub mod raw;
pub mod source;
pub mod template;
pub mod validate;

pub use error::{ErrorCode, PlanError};
pub use source::PlanSource;

/// Parses and validates a plan, returning every error found.
///
/// # Errors
/// The parse error (YAML syntax, wrong type, unknown or duplicate key, budget), or every
/// validation error at once.
pub fn load(source: &PlanSource) -> Result<model::Plan, Vec<PlanError>> {
    let (raw, mut unknown) = parse::parse(source)?;
    // Unknown keys and every validation error, in one report.
    match validate::validate(&raw) {
        Ok(plan) if unknown.is_empty() => Ok(plan),
        Ok(_) => Err(unknown),
        Err(mut errors) => {
            errors.append(&mut unknown);
            errors.sort_by_key(PlanError::offset);
            Err(errors)
        }
    }
}

//! [`PlanError`]: one diagnostic about a plan, with a stable [`ErrorCode`], the span of the
//! offending value, extra labels (a cycle labels every edge) and a help line.
//!
//! Rendering happens at the edge (`cli::diagnostics`); this type only carries data.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, SourceSpan};

/// Every kind of plan diagnostic. The string form (`plan::unknown_need`) is stable: users
/// search for it and tests snapshot it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    Syntax,
    WrongType,
    UnknownKey,
    DuplicateKey,
    MissingKey,
    TooLarge,
    BadVersion,
    BadValue,
    UnknownOperation,
    BadOption,
    MissingOption,
    UnknownVariable,
    BadTemplate,
    ScopeMismatch,
    EnvNotAllowed,
    BadEnvId,
    UnknownTarget,
    UnknownSite,
    NoTargets,
    UnknownNeed,
    UnmatchedNeed,
    Cycle,
    BadMatrix,
    LoosenedLimit,
    TooManyTasks,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: &'static [ErrorCode] = &[
        Self::Syntax,
        Self::WrongType,
        Self::UnknownKey,
        Self::DuplicateKey,
        Self::MissingKey,
        Self::TooLarge,
        Self::BadVersion,
        Self::BadValue,
        Self::UnknownOperation,
        Self::BadOption,
        Self::MissingOption,
        Self::UnknownVariable,
        Self::BadTemplate,
        Self::ScopeMismatch,
        Self::EnvNotAllowed,
        Self::BadEnvId,
        Self::UnknownTarget,
        Self::UnknownSite,
        Self::NoTargets,
        Self::UnknownNeed,
        Self::UnmatchedNeed,
        Self::Cycle,
        Self::BadMatrix,
        Self::LoosenedLimit,
        Self::TooManyTasks,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "plan::syntax",
            Self::WrongType => "plan::wrong_type",
            Self::UnknownKey => "plan::unknown_key",
            Self::DuplicateKey => "plan::duplicate_key",
            Self::MissingKey => "plan::missing_key",
            Self::TooLarge => "plan::too_large",
            Self::BadVersion => "plan::bad_version",
            Self::BadValue => "plan::bad_value",
            Self::UnknownOperation => "plan::unknown_operation",
            Self::BadOption => "plan::bad_option",
            Self::MissingOption => "plan::missing_option",
            Self::UnknownVariable => "plan::unknown_variable",
            Self::BadTemplate => "plan::bad_template",
            Self::ScopeMismatch => "plan::scope_mismatch",
            Self::EnvNotAllowed => "plan::env_not_allowed",
            Self::BadEnvId => "plan::bad_env_id",
            Self::UnknownTarget => "plan::unknown_target",
            Self::UnknownSite => "plan::unknown_site",
            Self::NoTargets => "plan::no_targets",
            Self::UnknownNeed => "plan::unknown_need",
            Self::UnmatchedNeed => "plan::unmatched_need",
            Self::Cycle => "plan::cycle",
            Self::BadMatrix => "plan::bad_matrix",
            Self::LoosenedLimit => "plan::loosened_limit",
            Self::TooManyTasks => "plan::too_many_tasks",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A labelled region of the plan text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: SourceSpan,
    pub text: String,
}

/// One diagnostic about a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    pub code: ErrorCode,
    pub message: String,
    /// The first label is the primary location; a plan error without a location (rare:
    /// a budget hit before parsing) has none.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl PlanError {
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), labels: Vec::new(), help: None }
    }

    #[must_use]
    pub fn at(mut self, span: SourceSpan, text: impl Into<String>) -> Self {
        self.labels.push(Label { span, text: text.into() });
        self
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Byte offset of the primary label, used to sort diagnostics in file order.
    #[must_use]
    pub fn offset(&self) -> usize {
        self.labels.first().map_or(0, |l| l.span.offset())
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PlanError {}

impl Diagnostic for PlanError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().enumerate().map(|(i, l)| {
            if i == 0 {
                LabeledSpan::new_primary_with_span(Some(l.text.clone()), l.span)
            } else {
                LabeledSpan::new_with_span(Some(l.text.clone()), l.span)
            }
        })))
    }
}

/// A "did you mean" help line: the closest candidate by edit distance, when close enough.
#[must_use]
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(word, candidate);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_namespaced() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(code.as_str().starts_with("plan::"));
            assert!(seen.insert(code.as_str()), "duplicate {code}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("deploy-tset", ["deploy-test", "backup"]).as_deref(),
            Some("did you mean `deploy-test`?")
        );
        assert_eq!(did_you_mean("zzz", ["deploy-test", "backup"]), None);
    }
}

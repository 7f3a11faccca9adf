//! [`ApiError`]: why a request failed, with the request that failed (method and path, never a
//! header, a token or a signed URL's query).

use std::fmt;
use std::time::Duration;
use tb_core::cause::ErrorClass;

use tb_core::cause::{Cause, Fault};

/// A failed API request. Shown as its [`Cause`] (the status first, the request as a route
/// naming no id), then what the API said.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ApiError {
    /// `METHOD /api/path` as sent (signed download URLs show only their path).
    pub request: String,
    pub kind: ApiErrorKind,
}

/// What went wrong.
#[derive(Debug, Clone)]
pub enum ApiErrorKind {
    /// The API answered with an error status; `message` is its body, decoded.
    Status { code: u16, message: String },
    /// The platform refused the machine token, or there is none to log in with.
    Auth { message: String },
    /// No connection could be opened (refused, DNS, TLS): the request was never sent.
    Connect { message: String },
    /// No answer within the read timeout: the request may have reached the API.
    Timeout { after: Duration },
    /// The connection closed or reset after the request was sent.
    Dropped { message: String },
    /// The answer was not the JSON the endpoint returns.
    Decode { message: String },
    /// The address or settings do not allow the request (plain http to a remote host).
    Config { message: String },
    /// Retries stopped: the per-request budget of attempts or time ran out.
    Exhausted { attempts: u32, last: Box<ApiErrorKind> },
    /// A bug in this program met while handling the request (a panic in the poller).
    Internal { message: String },
}

impl fmt::Display for ApiErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { code, message } if message.is_empty() => write!(f, "HTTP {code}"),
            Self::Status { code, message } => write!(f, "HTTP {code}: {message}"),
            Self::Auth { message } => write!(f, "authentication failed: {message}"),
            Self::Connect { message } => write!(f, "cannot connect: {message}"),
            Self::Timeout { after } => {
                write!(
                    f,
                    "no answer within {} (the request may have reached the API)",
                    humantime::format_duration(*after)
                )
            }
            Self::Dropped { message } => write!(f, "connection lost after the request was sent: {message}"),
            Self::Decode { message } => write!(f, "unexpected answer: {message}"),
            Self::Config { message } => f.write_str(message),
            Self::Internal { message } => write!(f, "internal error: {message}"),
            Self::Exhausted { attempts: 1, last } => write!(f, "{last}"),
            Self::Exhausted { attempts, last } => write!(f, "{last} (gave up after {attempts} attempts)"),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_cause())?;
        match self.cause() {
            ApiErrorKind::Status { message, .. }
            | ApiErrorKind::Auth { message }
            | ApiErrorKind::Connect { message }
            | ApiErrorKind::Dropped { message }
            | ApiErrorKind::Decode { message }
            | ApiErrorKind::Internal { message }
                if !message.is_empty() =>
            {
                write!(f, ": {message}")?;
            }
            ApiErrorKind::Timeout { after } => {
                write!(
                    f,
                    " (none within {}; the request may have reached the API)",
                    humantime::format_duration(*after)
                )?;
            }
            ApiErrorKind::Auth { .. } | ApiErrorKind::Internal { .. } => write!(f, " ({})", self.route())?,
            _ => {}
        }
        if let ApiErrorKind::Exhausted { attempts, .. } = &self.kind
            && *attempts > 1
        {
            write!(f, " (gave up after {attempts} attempts)")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// The request as a route: `POST /api/sites/{site}/environments/{env}/workflows`.
    #[must_use]
    pub fn route(&self) -> String {
        tb_core::cause::route(&self.request)
    }

    /// What went wrong, as the reports group it.
    #[must_use]
    pub fn as_cause(&self) -> Cause {
        let request = self.route();
        match self.cause() {
            ApiErrorKind::Status { code: 401, .. } | ApiErrorKind::Auth { .. } => Cause::Auth,
            ApiErrorKind::Status { code, .. } => Cause::Http { status: *code, request },
            ApiErrorKind::Connect { .. } => Cause::NoAnswer { request, fault: Fault::Connect },
            ApiErrorKind::Timeout { .. } => Cause::NoAnswer { request, fault: Fault::Timeout },
            ApiErrorKind::Dropped { .. } => Cause::NoAnswer { request, fault: Fault::Dropped },
            ApiErrorKind::Decode { .. } => Cause::BadAnswer { request },
            ApiErrorKind::Config { message } => Cause::Failed { reason: message.clone() },
            ApiErrorKind::Internal { .. } | ApiErrorKind::Exhausted { .. } => Cause::Internal,
        }
    }

    pub fn new(request: impl Into<String>, kind: ApiErrorKind) -> Self {
        Self { request: request.into(), kind }
    }

    /// The innermost cause, looking through [`ApiErrorKind::Exhausted`].
    #[must_use]
    pub fn cause(&self) -> &ApiErrorKind {
        let mut kind = &self.kind;
        while let ApiErrorKind::Exhausted { last, .. } = kind {
            kind = last;
        }
        kind
    }

    /// The HTTP status, when the API answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self.cause() {
            ApiErrorKind::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Worth trying again later (a task-level retry): the platform was busy or unreachable,
    /// as opposed to refusing the request for what it is.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self.cause() {
            ApiErrorKind::Status { code, .. } => matches!(code, 408 | 429) || *code >= 500,
            ApiErrorKind::Connect { .. } | ApiErrorKind::Timeout { .. } | ApiErrorKind::Dropped { .. } => true,
            ApiErrorKind::Auth { .. }
            | ApiErrorKind::Decode { .. }
            | ApiErrorKind::Config { .. }
            | ApiErrorKind::Internal { .. }
            | ApiErrorKind::Exhausted { .. } => false,
        }
    }

    /// How this error is classed: [`Self::is_internal`], else [`Self::is_transient`].
    #[must_use]
    pub fn class(&self) -> ErrorClass {
        if self.is_internal() {
            ErrorClass::Internal
        } else if self.is_transient() {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        }
    }

    /// A bug of ours, not the platform's answer: the run ends with an internal error.
    #[must_use]
    pub fn is_internal(&self) -> bool {
        matches!(self.cause(), ApiErrorKind::Internal { .. })
    }

    /// Authentication failed (exit 3 before any task starts).
    #[must_use]
    pub fn is_auth(&self) -> bool {
        matches!(self.cause(), ApiErrorKind::Auth { .. }) || self.status() == Some(401)
    }

    /// The API could not be reached at all.
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        matches!(self.cause(), ApiErrorKind::Connect { .. } | ApiErrorKind::Timeout { .. })
    }

    /// The platform's answer was "not found".
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

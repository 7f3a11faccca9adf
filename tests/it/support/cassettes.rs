//! The recorded Pantheon responses (PHP-VCR cassettes in `tests/fixtures`, copied from the
//! shared recordings): each interaction is a request and its response.

use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct Interaction {
    pub(crate) request: Request,
    pub(crate) response: Response,
}

#[derive(Deserialize)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) url: String,
}

#[derive(Deserialize)]
pub(crate) struct Response {
    pub(crate) status: Status,
    #[serde(default)]
    pub(crate) body: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Status {
    pub(crate) code: String,
}

//! RFC 9457 problem details: every error the fleet answers is `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One invalid member of a request body, located by a JSON pointer (RFC 9457 §3 example).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvalidParam {
    pub pointer: String,
    pub detail: String,
}

/// An RFC 9457 problem document, served as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<InvalidParam>,
    /// Sent as the `Retry-After` header (seconds), not in the body.
    #[serde(skip)]
    retry_after: Option<u64>,
}

/// What a request told to come back after a database hiccup waits: a fast restart is over
/// within about a second.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 1;

impl Problem {
    /// A problem whose type is the status itself (`about:blank`), titled with its reason phrase.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// Tells the client when to try again (the `Retry-After` header).
    pub fn with_retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// The body parsed but some values break the rules: one entry per invalid member.
    pub fn invalid(errors: Vec<InvalidParam>) -> Self {
        let detail = if errors.len() == 1 {
            "The request has an invalid value.".to_owned()
        } else {
            format!("The request has {} invalid values.", errors.len())
        };
        Self {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
        }
    }

    /// Logs the cause and answers 500 without revealing it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The request failed on our side; it is safe to retry.",
        )
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after;
        let mut response = (status, axum::Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_a_header_not_a_member_of_the_document() {
        let schema = serde_json::to_value(<Problem as utoipa::PartialSchema>::schema()).unwrap();
        let members: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert!(!members.iter().any(|m| m.contains("retry")), "{members:?}");
    }
}

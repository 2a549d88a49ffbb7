//! The one place where errors become HTTP answers: RFC 9457 `application/problem+json` with a
//! stable snake_case `code`. The table in [`ApiError::status_and_code`] is the whole mapping.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use civitas_core::authz::Denied;
use civitas_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthenticated,
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("{kind} {id} already exists")]
    Duplicate { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    /// An `If-Match` that does not name the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the search query cannot be read: {0}")]
    SearchSyntax(String),
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than the {0} bytes allowed")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    /// Something went wrong inside civitas. Its details are logged, never shown to the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The error table: HTTP status and stable code for every error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Duplicate { .. } => (StatusCode::CONFLICT, "duplicate"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::InvalidField { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::SearchSyntax(_) => (StatusCode::BAD_REQUEST, "search_syntax"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> ApiError {
        ApiError::InvalidField {
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> ApiError {
        ApiError::Internal(error.into())
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, code) = self.status_and_code();
        debug_assert_eq!(
            civitas_core::problems::find(code).and_then(|known| known.status),
            Some(status.as_u16()),
            "{code} is not in civitas_core::problems with this status"
        );
        Problem {
            problem_type: format!("/docs/problems#{code}"),
            title: status.canonical_reason().unwrap_or("error").to_lowercase(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: code.to_owned(),
            field: match self {
                ApiError::InvalidField { field, .. } => Some(field.clone()),
                _ => None,
            },
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case error code, e.g. `invalid_field`.
    pub code: String,
    /// The input field at fault, for `invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "internal error");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).expect("problems serialize");
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if matches!(self, ApiError::Unauthenticated) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { kind, id } => ApiError::NotFound { kind, id },
            StoreError::Duplicate { kind, id } => ApiError::Duplicate { kind, id },
            StoreError::Invalid { field, message } => ApiError::InvalidField { field, message },
            StoreError::Conflict(message) => ApiError::Conflict(message),
            stale @ StoreError::Stale { .. } => ApiError::PreconditionFailed(stale.to_string()),
            // The store was handed over to another node's ledger: this node is out of service.
            handed_over @ StoreError::LedgerNotOwned { .. } => {
                ApiError::Unavailable(handed_over.to_string())
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl ApiError {
    /// An error of a component that answers `anyhow` (the gateway): a store error inside it keeps
    /// its meaning (a bad cursor stays a 422), anything else is internal.
    pub fn from_component(error: anyhow::Error) -> ApiError {
        match error.downcast::<StoreError>() {
            Ok(store) => store.into(),
            Err(other) => ApiError::Internal(other),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> ApiError {
        ApiError::Forbidden(denied.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use civitas_core::problems::{Listener, PROBLEM_TYPES, find};

    use super::*;

    /// The error table and the problem types the API documents at `/docs/problems` agree both
    /// ways: every error's code is documented with its status, and every code documented for the
    /// API is one an error has.
    #[test]
    fn every_error_is_a_documented_problem_type() {
        let errors = [
            ApiError::Unauthenticated,
            ApiError::InvalidCredentials,
            ApiError::Forbidden("x".into()),
            ApiError::NotFound {
                kind: "x",
                id: "y".into(),
            },
            ApiError::NoRoute("/x".into()),
            ApiError::MethodNotAllowed("PUT".into()),
            ApiError::Duplicate {
                kind: "x",
                id: "y".into(),
            },
            ApiError::Conflict("x".into()),
            ApiError::PreconditionFailed("x".into()),
            ApiError::invalid("x", "y"),
            ApiError::MalformedJson("x".into()),
            ApiError::SearchSyntax("x".into()),
            ApiError::UnsupportedMediaType,
            ApiError::PayloadTooLarge(1),
            ApiError::Unavailable("x".into()),
            ApiError::internal(anyhow::anyhow!("x")),
        ];
        let mut codes = BTreeSet::new();
        for error in &errors {
            let (status, code) = error.status_and_code();
            assert_eq!(
                find(code).and_then(|known| known.status),
                Some(status.as_u16()),
                "{code}"
            );
            assert_eq!(
                error.problem().problem_type,
                format!("/docs/problems#{code}")
            );
            codes.insert(code);
        }
        let documented: BTreeSet<&str> = PROBLEM_TYPES
            .iter()
            .filter(|known| known.listener != Listener::Gateway)
            .map(|known| known.code)
            .collect();
        assert_eq!(codes, documented);
    }
}

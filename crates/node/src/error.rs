//! One error type for every handler, answered as `application/problem+json` (RFC 9457) with a
//! stable `code`. Client errors explain themselves; server errors are logged once and hidden.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use store::{Refusal, StoreError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds, for 429 and 503 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    pub fn account_not_found() -> ApiError {
        ApiError::not_found("account_not_found", "no such account among yours")
    }

    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %what, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the bank could not complete the request; it was logged",
        )
    }

    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }
}

/// The answer to a business refusal: missing things are 404, taken names 409, the rest 422.
impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        let status = match refusal {
            Refusal::AccountNotFound | Refusal::PixKeyNotFound | Refusal::InvitationNotFound => {
                StatusCode::NOT_FOUND
            }
            Refusal::DuplicateDocument | Refusal::DuplicateUsername | Refusal::DuplicatePixKey => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, refusal.code(), refusal.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::IdempotencyKeyReused => ApiError::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request; use a new key",
            ),
            StoreError::Overloaded => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the bank is busy; retry shortly with the same Idempotency-Key",
            )
            .with_retry_after(1),
            StoreError::AuditInProgress => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "audit_in_progress",
                "an audit of the whole ledger is already running; retry when it ends",
            )
            .with_retry_after(1),
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the bank is shutting down",
            ),
            other => ApiError::internal(other),
        }
    }
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl ApiError {
    /// The problem document this error is answered with.
    pub fn problem(&self) -> wire::Problem {
        wire::Problem {
            kind: format!(
                "https://interbank.dev/problems/{}",
                self.code.replace('_', "-")
            ),
            title: title(self.status).to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_string(),
        }
    }

    /// The problem for an error answer made below the handlers (by axum, hyper or a layer) that
    /// came without one: its status, a stable code for that status, and `detail`.
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> ApiError {
        let code = match status.as_u16() {
            400 => "bad_request",
            401 => "unauthenticated",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            408 => "request_timeout",
            411 => "length_required",
            413 => "body_too_large",
            414 => "uri_too_long",
            415 => "unsupported_media_type",
            422 => "invalid_request",
            429 => "too_many_requests",
            431 => "headers_too_large",
            503 => "unavailable",
            500..=599 => "internal_error",
            _ => "request_refused",
        };
        let detail = detail.into();
        let detail = if detail.trim().is_empty() {
            title(status).to_string()
        } else {
            detail
        };
        ApiError::new(status, code, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut response = (self.status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

//! Request extractors: JSON bodies whose every failure is a problem+json answer, the customer
//! behind a bearer token, and the bank's operator.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use store::CustomerRecord;

/// A JSON body, parsed at the edge. `canonical` is the body re-serialised with sorted keys, so
/// an idempotent retry that only reorders fields or whitespace is recognised as the same request.
pub struct ApiJson<T> {
    pub value: T,
    pub canonical: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!(
                            "request bodies are at most {} bytes ({} for /transfers/batch)",
                            crate::BODY_BYTES_MAX,
                            crate::BATCH_BODY_BYTES_MAX
                        ),
                    )
                } else {
                    ApiError::bad_request("unreadable_body", rejection.body_text())
                }
            })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {error}"),
            )
        })?;
        let canonical = value.to_string();
        let typed = serde_path_to_error::deserialize(value).map_err(|error| {
            let path = error.path().to_string();
            ApiError::unprocessable(
                "invalid_request",
                format!("{} (at `{path}`)", error.into_inner()),
            )
        })?;
        Ok(ApiJson {
            value: typed,
            canonical,
        })
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "log in first: send Authorization: Bearer <token> from POST /api/v1/sessions",
        )
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))
}

/// The customer whose session token came with the request.
pub struct Caller(pub CustomerRecord);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let customer = state.caller(sha256(token.as_bytes())).await?;
        customer.map(Caller).ok_or_else(|| {
            ApiError::unauthorized("the session token is unknown or expired; log in again")
        })
    }
}

/// The bank's operator, who holds the token from the bank's configuration.
pub struct Operator;

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        // Comparing digests keeps the comparison's time independent of where the tokens differ.
        if sha256(token.as_bytes()) == sha256(state.operator_token.as_bytes()) {
            Ok(Operator)
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "operator_only",
                "this needs the bank's operator token",
            ))
        }
    }
}

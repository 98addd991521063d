//! Request extractors: JSON bodies whose every failure is a problem+json answer, the customer
//! behind a bearer token, and the bank's operator.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use store::{CustomerId, CustomerRecord, Idempotency};

/// A JSON body, parsed at the edge straight into its type, and the digest that names the request
/// for its `Idempotency-Key`.
pub struct ApiJson<T> {
    pub value: T,
    pub fingerprint: Fingerprint,
}

/// What names a request for its `Idempotency-Key`: a digest of its method, path and body, with
/// the body as its type serialises it again, so a retry that only reorders fields or changes
/// whitespace is the same request. Comparing two digests cannot fail: nothing about a request is
/// parsed again inside the store's writer.
#[derive(Clone)]
pub struct Fingerprint {
    digest: [u8; 32],
}

impl Fingerprint {
    /// A request without a body (`DELETE /path`), named by its text alone.
    pub fn of_text(text: &str) -> Fingerprint {
        Fingerprint {
            digest: sha256(text.as_bytes()),
        }
    }

    fn of_body<T: Serialize>(method_path: &str, value: &T) -> Fingerprint {
        let mut hasher = Sha256::new();
        hasher.update(method_path.as_bytes());
        // Every request type is plain data (strings, numbers, lists, maps with string keys), for
        // which serde_json's writer has no failing case; a hasher never fails to take bytes.
        serde_json::to_writer(&mut hasher, value).expect("request types serialise");
        Fingerprint {
            digest: hasher.finalize().into(),
        }
    }

    pub fn idempotency(&self, scope: CustomerId, key: String) -> Idempotency {
        Idempotency {
            scope,
            key,
            fingerprint: self.digest,
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Serialize> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let method_path = format!("{} {} ", request.method(), request.uri().path());
        let bytes = read_body(request).await?;
        let value = parse(&bytes)?;
        Ok(ApiJson {
            fingerprint: Fingerprint::of_body(&method_path, &value),
            value,
        })
    }
}

/// A request body, up to the route's limit (`DefaultBodyLimit`: 413 `body_too_large` beyond),
/// each piece of it arriving within [`BODY_IDLE_TIMEOUT`](crate::BODY_IDLE_TIMEOUT) of the one before: a client that
/// announces more bytes than it sends is answered 408 `body_timeout` then, not held until the
/// request's time runs out. The bound is on silence, not on the whole body, so a large bulk
/// request that keeps arriving is read to its end.
pub async fn read_body(request: Request) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = axum::RequestExt::into_limited_body(request);
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(crate::BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request's body stopped arriving for {} s before its end (is Content-Length right?)",
                        crate::BODY_IDLE_TIMEOUT.as_secs()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(body_error(error)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        // One piece, the common case, is kept as it came; more are joined.
        match &first {
            None => first = Some(data),
            Some(bytes) => {
                if rest.is_empty() {
                    rest.extend_from_slice(bytes);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(rest)
    })
}

fn body_error(error: axum::Error) -> ApiError {
    let error = error.into_inner();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "request bodies are at most {} bytes ({} for /transfers/batch)",
                    crate::BODY_BYTES_MAX,
                    crate::BATCH_BODY_BYTES_MAX
                ),
            );
        }
        source = cause.source();
    }
    ApiError::bad_request(
        "unreadable_body",
        format!("the request's body could not be read: {error}"),
    )
}

/// The body in one pass, into its type. Any body that is not JSON is `malformed_json` (400),
/// even where a field before the fault was already of the wrong type; valid JSON of the wrong
/// shape is `invalid_request` (422) naming the field. A body that parses is read once, without
/// tracking where the parser is; only a refused one is read again to name the field.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let malformed = |error: serde_json::Error| {
        ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {error}"),
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => {
            deserializer.end().map_err(malformed)?;
            Ok(value)
        }
        Err(error) => {
            if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                return Err(malformed(syntax));
            }
            let path = error.path().to_string();
            Err(ApiError::unprocessable(
                "invalid_request",
                format!("{} (at `{path}`)", error.into_inner()),
            ))
        }
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
            // A token that names no live session: expired, logged out, or guessed.
            let call = format!("{} {}", parts.method, parts.uri.path());
            let client = crate::limits::Client::of_parts(parts);
            state
                .trail
                .record("session_refused", Some(client), None, &call);
            ApiError::unauthorized("the session token is unknown or expired; log in again")
        })
    }
}

/// The bank's operator, who holds the token from the bank's configuration.
pub struct Operator;

impl Operator {
    /// Whether the request's bearer token is the operator's (an error if it has no bearer token).
    pub fn is(parts: &Parts, state: &AppState) -> Result<bool, ApiError> {
        let token = bearer(parts)?;
        // Comparing digests keeps the comparison's time independent of where the tokens differ.
        Ok(sha256(token.as_bytes()) == sha256(state.operator_token.as_bytes()))
    }
}

/// Whether the bank's operator made the request; anyone else, with a token or without, is not.
pub struct MaybeOperator(pub bool);

impl FromRequestParts<Arc<AppState>> for MaybeOperator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        Ok(MaybeOperator(Operator::is(parts, state).unwrap_or(false)))
    }
}

impl FromRequestParts<Arc<AppState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let client = crate::limits::Client::of_parts(parts);
        let call = format!("{} {}", parts.method, parts.uri.path());
        let is = Operator::is(parts, state).inspect_err(|_| {
            state
                .trail
                .record("operator_refused", Some(client), None, &call);
        })?;
        if is {
            state
                .trail
                .record("operator_call", Some(client), Some("operator"), &call);
            Ok(Operator)
        } else {
            state
                .trail
                .record("operator_refused", Some(client), None, &call);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "operator_only",
                "this needs the bank's operator token",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Serialize)]
    struct Pay {
        amount: String,
        note: Option<String>,
    }

    fn code(body: &str) -> &'static str {
        parse::<Pay>(body.as_bytes()).unwrap_err().code
    }

    #[test]
    fn a_body_is_malformed_or_of_the_wrong_shape() {
        let pay: Pay = parse(br#"{"note": null, "amount": "1.00"}"#).unwrap();
        assert_eq!(pay.amount, "1.00");
        assert_eq!(code(r#"{"amount": "1.00""#), "malformed_json");
        assert_eq!(code(r#"{"amount": "1.00"} trailing"#), "malformed_json");
        // Not JSON, even though the first field was already of the wrong type.
        assert_eq!(code(r#"{"amount": 5, oops}"#), "malformed_json");
        assert_eq!(code(r#"{"amount": 5}"#), "invalid_request");
        assert_eq!(code(r#"{"note": "x"}"#), "invalid_request");
        assert_eq!(code(r#"{"amount": "1", "amount": "2"}"#), "invalid_request");
        let error = parse::<Pay>(br#"{"amount": 5}"#).unwrap_err();
        assert!(error.detail.contains("at `amount`"), "{}", error.detail);
    }

    fn fingerprint(body: &str) -> Fingerprint {
        let value: Pay = parse(body.as_bytes()).unwrap();
        Fingerprint::of_body("POST /api/v1/pay ", &value)
    }

    #[test]
    fn a_fingerprint_names_the_request_not_its_spelling() {
        let one = fingerprint(r#"{"amount": "1.00", "note": "rent"}"#);
        let reordered = fingerprint(r#"{ "note":"rent",   "amount":"1.00" }"#);
        let other = fingerprint(r#"{"amount": "1.01", "note": "rent"}"#);
        assert_eq!(one.digest, reordered.digest);
        assert_ne!(one.digest, other.digest);
        let stored = one.idempotency(7, "k".into());
        assert!(stored.matches(&reordered.digest));
        assert!(!stored.matches(&other.digest));
    }
}

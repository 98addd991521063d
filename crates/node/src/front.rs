//! A *front*: a `bankd` of a bank in a consortium whose duties another process of the bank holds
//! (several on one PostgreSQL ledger). The interbank engine runs at the holder: it coordinates
//! the bank's payments and answers the other banks, whose messages (and the directory's Raft
//! traffic) come to whichever of the bank's addresses they reach. So a front passes on to the
//! holder, as they came, every request from another bank (`/interbank/…`) and the customers'
//! payments and packages, and serves everything else itself (logins, accounts, statements,
//! deposits, Pix keys: the shared ledger and directory file make it the same bank).

use crate::INTERBANK_BODY_BYTES_MAX;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Set on a request a front passed on: the process it reaches serves it or refuses it, and never
/// passes it on again (two processes that each took the other for the holder would loop).
pub const PASSED_ON: &str = "x-bankd-passed-on";

/// The longest a passed-on request may take at the holder (within the front's own bound,
/// `app::time_bound`).
const PASS_ON_TIMEOUT: Duration = crate::HANDLER_TIMEOUT;

/// What this process does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Serve,
    /// To the process holding the bank's duties.
    PassOn,
    /// Passed on by a front that took this process for the holder, which it no longer is.
    NotHolder,
}

/// Where `request` is served, at a process that `may_be_front` (a bank of a consortium on
/// PostgreSQL: `AppState::may_be_front`) and holds the duties or not (`holder`).
pub fn route(request: &Request, may_be_front: bool, holder: bool) -> Route {
    if !may_be_front || holder || !only_at_holder(request.method(), request.uri().path()) {
        return Route::Serve;
    }
    if request.headers().contains_key(PASSED_ON) {
        Route::NotHolder
    } else {
        Route::PassOn
    }
}

/// What only the holder serves: what other banks send, and what may start an interbank
/// transaction.
fn only_at_holder(method: &Method, path: &str) -> bool {
    path.starts_with("/interbank/")
        || (*method == Method::POST && matches!(path, "/api/v1/transfers" | "/api/v1/packages"))
}

/// The answer of a process asked for what only the holder serves when no holder can be reached.
fn unavailable(detail: String) -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "duty_holder_unavailable",
        detail,
    )
    .with_retry_after(1)
    .into_response()
}

/// Answers a request passed on to a process that does not hold the duties (any more).
pub fn not_holder() -> Response {
    unavailable(
        "this bankd does not hold its bank's duties now; retry with the same Idempotency-Key"
            .to_owned(),
    )
}

/// Headers that belong to one connection, not to the request or answer passed on (and those
/// the client or server of the next connection sets itself).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::CONTENT_LENGTH,
];

/// `headers` without [`HOP_BY_HOP`].
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers
}

/// Passes `request` on to the process holding the bank's duties and answers what it answered.
/// One it cannot reach is a 503: the request may or may not have been served there, and the same
/// Idempotency-Key retried says which (other banks resend on their own).
pub async fn pass_on(state: &AppState, request: Request) -> Response {
    let Some(holder) = state.interbank.duties.holder_address() else {
        return unavailable("no bankd of this bank holds its duties now; retry shortly".to_owned());
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, INTERBANK_BODY_BYTES_MAX).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a request is at most {INTERBANK_BODY_BYTES_MAX} bytes"),
        )
        .into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let outgoing = state
        .interbank
        .http()
        .request(parts.method, format!("{holder}{path}"))
        .timeout(PASS_ON_TIMEOUT)
        .headers(end_to_end(parts.headers))
        .header(PASSED_ON, "1")
        .body(body);
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(error) => {
            return unavailable(format!(
                "the bankd holding this bank's duties ({holder}) did not answer: {error}"
            ));
        }
    };
    let status = answer.status();
    let mut headers = end_to_end(answer.headers().clone());
    headers.remove(header::DATE);
    let body = match answer.bytes().await {
        Ok(body) => body,
        Err(error) => {
            return unavailable(format!(
                "the bankd holding this bank's duties ({holder}) broke off its answer: {error}"
            ));
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, passed_on: bool) -> Request {
        let mut request = Request::builder().method(method).uri(path);
        if passed_on {
            request = request.header(PASSED_ON, "1");
        }
        request.body(Body::empty()).unwrap()
    }

    #[test]
    fn a_front_passes_on_what_only_the_holder_serves() {
        let passed = [
            (Method::POST, "/interbank/v1/messages"),
            (Method::POST, "/interbank/v1/directory"),
            (Method::GET, "/interbank/v1/pix-keys/x"),
            (Method::POST, "/api/v1/transfers"),
            (Method::POST, "/api/v1/packages"),
        ];
        for (method, path) in passed {
            let plain = request(method.clone(), path, false);
            assert_eq!(route(&plain, true, false), Route::PassOn, "{path}");
            assert_eq!(route(&plain, true, true), Route::Serve, "{path}");
            assert_eq!(route(&plain, false, false), Route::Serve, "{path}");
            let again = request(method, path, true);
            assert_eq!(route(&again, true, false), Route::NotHolder, "{path}");
            assert_eq!(route(&again, true, true), Route::Serve, "{path}");
        }
        let served = [
            (Method::GET, "/api/v1/transfers/abc"),
            (Method::POST, "/api/v1/sessions"),
            (Method::POST, "/api/v1/customers"),
            (Method::POST, "/api/v1/accounts/10000001/1-0/deposits"),
            (Method::GET, "/health"),
            (Method::POST, "/internal/v1/directory"),
        ];
        for (method, path) in served {
            assert_eq!(
                route(&request(method, path, false), true, false),
                Route::Serve,
                "{path}"
            );
        }
    }
}

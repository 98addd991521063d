//! The router: every route of the public API, the middleware around it (clock stamp, time
//! limit, metrics, body limit, panics as problems), and the OpenAPI document generated from the
//! handlers' annotations.

use crate::error::ApiError;
use crate::routes::{accounts, customers, interbank, payments, pix, system};
use crate::state::AppState;
use crate::{AUDIT_PATH, AUDIT_TIMEOUT, BODY_BYTES_MAX, HANDLER_TIMEOUT, INTERBANK_BODY_BYTES_MAX};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "Interbank", description = "One bank's public API in a Pix-like consortium. Amounts are strings with two decimals; errors are application/problem+json with a stable `code`."),
    paths(
        customers::register, customers::login, customers::logout, customers::me,
        accounts::open, accounts::get, accounts::statement, accounts::deposit, accounts::withdraw,
        pix::add, pix::list, pix::lookup, pix::remove,
        payments::transfer, payments::get_transfer, payments::package, payments::batch,
        system::health, system::metrics, system::audit, system::consortium,
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/customers", post(customers::register))
        .route("/sessions", post(customers::login))
        .route("/sessions/current", delete(customers::logout))
        .route("/me", get(customers::me))
        .route("/accounts", post(accounts::open))
        .route("/accounts/{bank}/{number}", get(accounts::get))
        .route(
            "/accounts/{bank}/{number}/statement",
            get(accounts::statement),
        )
        .route(
            "/accounts/{bank}/{number}/deposits",
            post(accounts::deposit),
        )
        .route(
            "/accounts/{bank}/{number}/withdrawals",
            post(accounts::withdraw),
        )
        .route("/pix-keys", post(pix::add).get(pix::list))
        .route("/pix-keys/{key}", get(pix::lookup).delete(pix::remove))
        .route("/transfers", post(payments::transfer))
        .route(
            "/transfers/batch",
            post(payments::batch).layer(DefaultBodyLimit::max(crate::BATCH_BODY_BYTES_MAX)),
        )
        .route("/transfers/{id}", get(payments::get_transfer))
        .route("/packages", post(payments::package))
        .route("/consortium", get(system::consortium))
        .route("/audit", get(system::audit))
        .route("/openapi.json", get(system::openapi));
    // Envelopes of many protocol messages are larger than any customer's request.
    let banks = Router::new()
        .route(crate::interbank::MESSAGES_PATH, post(interbank::messages))
        .route(crate::interbank::HEARTBEAT_PATH, post(interbank::messages))
        .route(
            &format!("{}/{{key}}", crate::interbank::PIX_KEYS_PATH),
            get(interbank::pix_key),
        )
        .route(
            &format!("{}/{{document}}/accounts", crate::interbank::CUSTOMERS_PATH),
            get(interbank::customer_accounts),
        )
        .route(
            &format!(
                "{}/{{document}}/accounts/{{number}}",
                crate::interbank::CUSTOMERS_PATH
            ),
            get(interbank::customer_account),
        )
        .route(
            &format!(
                "{}/{{document}}/accounts/{{number}}/statement",
                crate::interbank::CUSTOMERS_PATH
            ),
            get(interbank::customer_statement),
        )
        .layer(DefaultBodyLimit::max(INTERBANK_BODY_BYTES_MAX));
    let customers = Router::new()
        .nest("/api/v1", api)
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX));
    Router::new()
        .merge(customers)
        .merge(banks)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            stamp_and_bound,
        ))
        .layer(CatchPanicLayer::custom(panic_as_problem))
        // A 5xx here is usually a bank saying another is unavailable, not this one failing:
        // logged as a warning (real failures are logged as errors where they happen).
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint; see /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

fn panic_as_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}

/// How long a request to `path` may take: the audit reads the whole ledger, everything else is
/// answered within [`HANDLER_TIMEOUT`].
pub fn time_bound(path: &str) -> Duration {
    if path == AUDIT_PATH {
        AUDIT_TIMEOUT
    } else {
        HANDLER_TIMEOUT
    }
}

/// Bounds every request in time ([`time_bound`]), stamps every answer with the node's clock
/// (`X-Clock`), and counts it. A request that runs out of time is answered 503; a command it had
/// queued still completes, and a retry with the same Idempotency-Key returns its outcome.
async fn stamp_and_bound(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let bound = time_bound(request.uri().path());
    let mut response = match tokio::time::timeout(bound, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the bank did not answer in time; retry with the same Idempotency-Key",
        )
        .with_retry_after(1)
        .into_response(),
    };
    let stamp = state.clock.tick();
    if let Ok(value) = HeaderValue::from_str(&stamp.to_string()) {
        response.headers_mut().insert("x-clock", value);
    }
    state
        .metrics
        .observe_request(&method, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_alone_may_take_longer_than_a_request() {
        assert_eq!(time_bound("/api/v1/transfers"), HANDLER_TIMEOUT);
        assert_eq!(time_bound("/api/v1/audit/x"), HANDLER_TIMEOUT);
        assert_eq!(time_bound("/api/v1/audit"), AUDIT_TIMEOUT);
        assert!(AUDIT_TIMEOUT >= 60 * HANDLER_TIMEOUT);
    }
}

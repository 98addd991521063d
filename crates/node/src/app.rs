//! The router: every route of the public API, the middleware around it (clock stamp, time
//! limit, metrics, body limit, panics as problems), and the OpenAPI document generated from the
//! handlers' annotations.

use crate::error::ApiError;
use crate::routes::{accounts, customers, interbank, payments, pix, system};
use crate::state::AppState;
use crate::{AUDIT_PATH, AUDIT_TIMEOUT, BODY_BYTES_MAX, HANDLER_TIMEOUT, INTERBANK_BODY_BYTES_MAX};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Service, ServiceBuilder};
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

/// The bank's HTTP service: every route, inside the middleware.
pub fn router(
    state: Arc<AppState>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let api = Router::new()
        .route("/api/v1/customers", post(customers::register))
        .route("/api/v1/sessions", post(customers::login))
        .route("/api/v1/sessions/current", delete(customers::logout))
        .route("/api/v1/me", get(customers::me))
        .route("/api/v1/accounts", post(accounts::open))
        .route("/api/v1/accounts/{bank}/{number}", get(accounts::get))
        .route(
            "/api/v1/accounts/{bank}/{number}/statement",
            get(accounts::statement),
        )
        .route(
            "/api/v1/accounts/{bank}/{number}/deposits",
            post(accounts::deposit),
        )
        .route(
            "/api/v1/accounts/{bank}/{number}/withdrawals",
            post(accounts::withdraw),
        )
        .route("/api/v1/pix-keys", post(pix::add).get(pix::list))
        .route(
            "/api/v1/pix-keys/{key}",
            get(pix::lookup).delete(pix::remove),
        )
        .route("/api/v1/transfers", post(payments::transfer))
        .route(
            "/api/v1/transfers/batch",
            post(payments::batch).layer(DefaultBodyLimit::max(crate::BATCH_BODY_BYTES_MAX)),
        )
        .route("/api/v1/transfers/{id}", get(payments::get_transfer))
        .route("/api/v1/packages", post(payments::package))
        .route("/api/v1/consortium", get(system::consortium))
        .route("/api/v1/audit", get(system::audit))
        .route("/api/v1/openapi.json", get(system::openapi));
    // Envelopes of many protocol messages are larger than any customer's request.
    let banks = Router::new()
        .route(crate::interbank::MESSAGES_PATH, post(interbank::messages))
        .route(crate::interbank::HEARTBEAT_PATH, post(interbank::messages))
        .route(
            crate::directory::DIRECTORY_PATH,
            post(crate::directory::receive),
        )
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
    let routes = Router::new()
        .merge(api)
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .merge(banks)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // The middleware wraps the router once, outside it: `Router::layer` would wrap every route
    // on its own, and each such layer costs every request a boxed clone of the route's service.
    ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        // A 5xx here is usually a bank saying another is unavailable, not this one failing:
        // logged as a warning (real failures are logged as errors where they happen).
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(CatchPanicLayer::custom(panic_as_problem))
        .layer_fn(|inner| Stamp {
            inner,
            state: state.clone(),
        })
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .service(routes)
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
///
/// A tower service of its own rather than `axum::middleware::from_fn`, which boxes a clone of the
/// whole service below it for every request.
#[derive(Clone)]
struct Stamp<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for Stamp<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let bound = time_bound(request.uri().path());
        let answer = self.inner.call(request);
        let state = self.state.clone();
        Box::pin(async move {
            let mut response = match tokio::time::timeout(bound, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
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
            Ok(response)
        })
    }
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

//! The router: every route of the public API, the middleware around it (clock stamp, time
//! limit, metrics, body limit, panics as problems), and the OpenAPI document generated from the
//! handlers' annotations.

use crate::error::ApiError;
use crate::routes::{accounts, customers, interbank, invitations, payments, pix, system, trail};
use crate::state::AppState;
use crate::{AUDIT_PATH, AUDIT_TIMEOUT, BODY_BYTES_MAX, HANDLER_TIMEOUT, INTERBANK_BODY_BYTES_MAX};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
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
        invitations::list, invitations::accept, invitations::decline,
        trail::events,
    ),
    modifiers(&BearerAuth, &Exact),
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

/// What every operation shares, written once here rather than on each handler: errors are
/// `application/problem+json`; the statuses every route of a kind may answer (400 for a body,
/// path or query that cannot be read, 401 without a valid session, 408 and 413 for a body, 503
/// when the bank or one it needs cannot answer now); `X-Clock` on every answer and
/// `Retry-After` where it is sent; and the shapes of path parameters and `Idempotency-Key`.
struct Exact;

/// Patterns of the values the API takes, as `wire`'s schemas state them.
pub const BANK_PATTERN: &str = "^[0-9]{8}$";
pub const ACCOUNT_NUMBER_PATTERN: &str = "^[0-9]{1,10}-?[0-9]$";
pub const E2E_PATTERN: &str = "^E[0-9]{20}[0-9A-Z]{11}$";

impl utoipa::Modify for Exact {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Operation, ParameterIn};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{
            ContentBuilder, HeaderBuilder, Ref, RefOr, Required, ResponseBuilder,
        };
        let text = |pattern: Option<&str>, max: Option<usize>| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(pattern)
                .min_length(Some(1))
                .max_length(max)
                .build()
        };
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let header = |description: &str, schema: Type| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(schema))
                .description(Some(description))
                .build()
        };
        let shared = |operation: &mut Operation| {
            let parameters = operation.parameters.get_or_insert_with(Vec::new);
            let reads_path = parameters
                .iter()
                .any(|p| p.parameter_in == ParameterIn::Path);
            let reads_query = parameters
                .iter()
                .any(|p| p.parameter_in == ParameterIn::Query);
            for parameter in parameters.iter_mut() {
                let schema = match (parameter.parameter_in.clone(), parameter.name.as_str()) {
                    (ParameterIn::Path, "bank") => text(Some(BANK_PATTERN), Some(8)),
                    (ParameterIn::Path, "number") => text(Some(ACCOUNT_NUMBER_PATTERN), Some(12)),
                    (ParameterIn::Path, "id") => text(Some(E2E_PATTERN), Some(32)),
                    (ParameterIn::Path, "key") => text(None, Some(77)),
                    (ParameterIn::Header, "Idempotency-Key") => {
                        text(None, Some(crate::state::IDEMPOTENCY_KEY_LEN_MAX))
                    }
                    _ => continue,
                };
                parameter.schema = Some(RefOr::T(schema.into()));
                if parameter.parameter_in == ParameterIn::Path {
                    parameter.required = Required::True;
                }
            }
            let has_body = operation.request_body.is_some();
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let responses = &mut operation.responses.responses;
            // Every error documented on a handler is a problem document.
            for (status, response) in responses.iter_mut() {
                if let RefOr::T(response) = response
                    && (status.starts_with('4') || status.starts_with('5'))
                    && let Some(content) = response.content.shift_remove("application/json")
                {
                    response
                        .content
                        .insert("application/problem+json".to_string(), content);
                }
            }
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(problem(description)));
            };
            if has_body || reads_path || reads_query {
                add(
                    "400",
                    "malformed_json (the body is not JSON), unreadable_body, invalid_path, invalid_query",
                );
            }
            if secured {
                add(
                    "401",
                    "unauthenticated: no bearer token, or one unknown or expired",
                );
            }
            if has_body {
                add(
                    "408",
                    "body_timeout: the body stopped arriving before its Content-Length",
                );
                add(
                    "413",
                    "body_too_large: more than 64 KiB (4 MiB for /transfers/batch)",
                );
                add(
                    "422",
                    "invalid_request: JSON of the wrong shape (the field is named)",
                );
            }
            add(
                "503",
                "timeout, overloaded, shutting_down, bank_unavailable (a bank it needs), too_many_connections, duty_holder_unavailable (one of several bankd of the bank, whose duty holder it cannot reach now); with Retry-After",
            );
            for (status, response) in responses.iter_mut() {
                if let RefOr::T(response) = response {
                    response.headers.insert(
                        "X-Clock".to_string(),
                        header(
                            "the bank's hybrid logical clock when it answered: `physical_ms.logical`",
                            Type::String,
                        ),
                    );
                    if status == "503" || status == "429" {
                        response.headers.insert(
                            "Retry-After".to_string(),
                            header("seconds to wait before retrying", Type::Integer),
                        );
                    }
                }
            }
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                shared(operation);
            }
        }
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
    router_with(state, |routes| routes)
}

/// The bank's HTTP service with routes of the caller's added inside the same middleware (tests
/// add a route that panics).
pub fn router_with(
    state: Arc<AppState>,
    extend: impl FnOnce(Router<Arc<AppState>>) -> Router<Arc<AppState>>,
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
        .route("/api/v1/audit/events", get(trail::events))
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/api/v1/invitations", get(invitations::list))
        .route("/api/v1/invitations/{id}/accept", post(invitations::accept))
        .route(
            "/api/v1/invitations/{id}/decline",
            post(invitations::decline),
        );
    // Envelopes of many protocol messages are larger than any customer's request.
    let banks = Router::new()
        .route(crate::interbank::MESSAGES_PATH, post(interbank::messages))
        .route(crate::interbank::HEARTBEAT_PATH, post(interbank::messages))
        .route(
            crate::directory::DIRECTORY_PATH,
            post(crate::directory::receive),
        )
        .route(
            crate::directory::SIBLING_PATH,
            post(crate::directory::receive_sibling),
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
        .merge(banks);
    let routes = extend(routes)
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
        // Inside the stamp, so a panic's 500 is stamped and counted like any answer.
        .layer_fn(|inner| Stamp {
            inner,
            state: state.clone(),
        })
        .map_response(IntoResponse::into_response)
        .layer(CatchPanicLayer::custom(panic_as_problem))
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

/// What [`Stamp`] does with a request (`crate::front::route`): the router's answer here, or
/// what the holder of the bank's duties answers.
enum Work<F> {
    Here(F),
    /// Boxed: a request is large beside the router's future.
    PassOn(Box<Request>),
    NotHolder,
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
        let state = self.state.clone();
        let route = crate::front::route(
            &request,
            state.may_be_front,
            state.may_be_front && state.interbank.duties.held(),
        );
        let work = match route {
            crate::front::Route::Serve => Work::Here(self.inner.call(request)),
            crate::front::Route::PassOn => Work::PassOn(Box::new(request)),
            crate::front::Route::NotHolder => Work::NotHolder,
        };
        Box::pin(async move {
            let answer = async {
                match work {
                    Work::Here(here) => here.await,
                    Work::PassOn(request) => Ok(crate::front::pass_on(&state, *request).await),
                    Work::NotHolder => Ok(crate::front::not_holder()),
                }
            };
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
            if is_error_without_problem(&response) {
                response = as_problem(response).await;
            }
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

/// An error answer made below the handlers (an axum rejection, a layer) without a problem body.
fn is_error_without_problem(response: &Response) -> bool {
    let status = response.status();
    (status.is_client_error() || status.is_server_error())
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|value| value.as_bytes() != b"application/problem+json")
}

/// The same answer as a problem: its status, a code for that status, its text as the detail, and
/// the headers that say what to do next.
async fn as_problem(response: Response) -> Response {
    /// The longest text kept as a detail; rejections' texts are a line.
    const DETAIL_BYTES_MAX: usize = 1024;
    let (parts, body) = response.into_parts();
    let detail = axum::body::to_bytes(body, DETAIL_BYTES_MAX)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .unwrap_or_default();
    let mut problem = ApiError::for_status(parts.status, detail).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_answer_without_a_problem_becomes_one() {
        let plain = Response::builder()
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(header::RETRY_AFTER, "3")
            .body(axum::body::Body::from("length limit exceeded"))
            .unwrap();
        assert!(is_error_without_problem(&plain));
        let problem = as_problem(plain).await;
        assert_eq!(problem.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!is_error_without_problem(&problem));
        assert_eq!(problem.headers()[header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(problem.into_body(), 4096)
            .await
            .unwrap();
        let problem: wire::Problem = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem.code, "body_too_large");
        assert_eq!(problem.detail, "length limit exceeded");
        let empty = Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(axum::body::Body::empty())
            .unwrap();
        let body = axum::body::to_bytes(as_problem(empty).await.into_body(), 4096)
            .await
            .unwrap();
        let problem: wire::Problem = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (problem.code.as_str(), problem.detail.as_str()),
            ("bad_request", "Bad Request")
        );
        let ok = Response::new(axum::body::Body::empty());
        assert!(!is_error_without_problem(&ok));
    }

    #[test]
    fn the_audit_alone_may_take_longer_than_a_request() {
        assert_eq!(time_bound("/api/v1/transfers"), HANDLER_TIMEOUT);
        assert_eq!(time_bound("/api/v1/audit/x"), HANDLER_TIMEOUT);
        assert_eq!(time_bound("/api/v1/audit"), AUDIT_TIMEOUT);
        assert!(AUDIT_TIMEOUT >= 60 * HANDLER_TIMEOUT);
    }
}

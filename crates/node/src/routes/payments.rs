//! Money between accounts: transfers by Pix key or account, packages of operations that commit
//! all together or not at all, and looking a payment up by its end-to-end id.

use super::{ApiPath, amount, body_account, description, destination, outcome_body, respond};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use ledger::EndToEndId;
use std::sync::Arc;
use store::{Command, Operation, OperationKind, PACKAGE_OPERATIONS_MAX};

#[utoipa::path(post, path = "/api/v1/transfers", tag = "payments", security(("bearer" = [])), request_body = wire::TransferRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "committed, or aborted with a reason such as insufficient_funds", body = wire::Transfer),
              (status = 404, description = "account_not_found, pix_key_not_found", body = wire::Problem),
              (status = 422, description = "invalid_amount, same_account, invalid_destination, unknown_bank", body = wire::Problem)))]
pub async fn transfer(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    uri: Uri,
    headers: HeaderMap,
    body: ApiJson<wire::TransferRequest>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let from = body_account(&state, "from", &request.from)?;
    let to = destination(&state, "to", &request.to)?;
    let amount = amount("amount", &request.amount)?;
    let description = description(request.description)?;
    let command = Command::Transfer {
        actor: customer.id,
        from,
        to,
        amount,
        description,
        e2e: state.new_e2e(),
    };
    let executed = state
        .execute(
            customer.id,
            &headers,
            &format!("POST {} {}", uri.path(), body.canonical),
            command,
        )
        .await?;
    Ok(respond(executed))
}

#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "the end-to-end id")),
    responses((status = 200, description = "a transfer (or a package, by its id) with its status", body = wire::Transfer),
              (status = 404, description = "transfer_not_found", body = wire::Problem)))]
pub async fn get_transfer(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::not_found(
            "transfer_not_found",
            "no such transfer among your accounts'",
        )
    };
    let e2e = EndToEndId::parse(&id).ok_or_else(not_found)?;
    let outcome = state
        .store
        .payment(customer.id, &e2e)
        .await?
        .ok_or_else(not_found)?;
    outcome_body(&outcome)
}

#[utoipa::path(post, path = "/api/v1/packages", tag = "payments", security(("bearer" = [])), request_body = wire::PackageRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, description = "committed, or aborted with each operation's result", body = wire::Package),
              (status = 422, description = "a malformed operation (its index is in the detail), package_empty, package_too_large", body = wire::Problem)))]
pub async fn package(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    uri: Uri,
    headers: HeaderMap,
    body: ApiJson<wire::PackageRequest>,
) -> Result<Response, ApiError> {
    let requests = body.value.operations;
    if requests.is_empty() {
        return Err(ApiError::unprocessable(
            "package_empty",
            "a package has at least one operation",
        ));
    }
    if requests.len() > PACKAGE_OPERATIONS_MAX {
        return Err(ApiError::unprocessable(
            "package_too_large",
            format!("a package has at most {PACKAGE_OPERATIONS_MAX} operations"),
        ));
    }
    let mut operations = Vec::with_capacity(requests.len());
    for (index, op) in requests.into_iter().enumerate() {
        let field = format!("operations[{index}]");
        let kind = match (op.kind.as_str(), &op.to) {
            ("deposit", None) => OperationKind::Deposit,
            ("withdrawal", None) => OperationKind::Withdrawal,
            ("transfer", Some(to)) => {
                OperationKind::Transfer(destination(&state, &format!("{field}.to"), to)?)
            }
            ("transfer", None) => {
                return Err(ApiError::unprocessable(
                    "invalid_destination",
                    format!("`{field}.to` is required for a transfer"),
                ));
            }
            ("deposit" | "withdrawal", Some(_)) => {
                return Err(ApiError::unprocessable(
                    "invalid_operation",
                    format!("`{field}.to` is only for transfers"),
                ));
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_operation",
                    format!("`{field}.type` is deposit, withdrawal or transfer"),
                ));
            }
        };
        operations.push(Operation {
            kind,
            account: body_account(&state, &format!("{field}.account"), &op.account)?,
            amount: amount(&format!("{field}.amount"), &op.amount)?,
            description: description(op.description)?,
        });
    }
    let command = Command::Package {
        actor: customer.id,
        operations,
        e2e: state.new_e2e(),
    };
    let executed = state
        .execute(
            customer.id,
            &headers,
            &format!("POST {} {}", uri.path(), body.canonical),
            command,
        )
        .await?;
    Ok(respond(executed))
}

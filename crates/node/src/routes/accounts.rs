//! Accounts: open one, read it, read its statement, deposit and withdraw cash.

use super::{
    ApiPath, ApiQuery, account_wire, amount, description, entry_wire, path_account, respond,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use ledger::{AccountKind, AccountNumber, BankCode};
use serde::Deserialize;
use std::sync::Arc;
use store::Command;

pub const STATEMENT_PAGE_DEFAULT: usize = 20;
pub const STATEMENT_PAGE_MAX: usize = 100;

#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", security(("bearer" = [])), request_body = wire::OpenAccount,
    params(("Idempotency-Key" = Option<String>, Header, description = "replays the first answer")),
    responses((status = 201, body = wire::Account),
              (status = 422, description = "opening_deposit_too_small, holder_kind_mismatch, invalid_amount; a joint account's co-holders are invited (GET /api/v1/invitations) and hold it once they accept", body = wire::Problem)))]
pub async fn open(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    headers: HeaderMap,
    body: ApiJson<wire::OpenAccount>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let kind = AccountKind::parse(&request.kind)
        .filter(|kind| kind.is_customer())
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_account_kind",
                "`kind` is individual, company or joint",
            )
        })?;
    let opening_deposit = amount("opening_deposit", &request.opening_deposit)?;
    let co_holders = request
        .co_holders
        .iter()
        .map(|name| super::customers::username(name))
        .collect::<Result<Vec<_>, _>>()?;
    known_here(&state, &co_holders).await;
    let command = Command::OpenAccount {
        actor: customer.id,
        kind,
        co_holders,
        opening_deposit,
        e2e: state.new_e2e(),
    };
    let executed = state
        .execute(customer.id, &headers, &body.fingerprint, command)
        .await?;
    // Every holder is listed in the consortium's directory, which alone says who may use the
    // account from another bank (a replay lists nothing twice).
    if let store::Outcome::Account(account) = &executed.outcome
        && let Some(number) = AccountNumber::parse(&account.number)
    {
        let holders: Vec<String> = account.holders.iter().map(|h| h.username.clone()).collect();
        crate::directory::list_account(&state, &holders, number).await;
    }
    Ok(respond(executed))
}

/// Takes in here (as a login would) each co-holder the directory knows who has no record at this
/// bank yet, such as a person registered at another bank who never logged in here: their
/// invitation then reaches them when they log in here. A name the directory does not know stays
/// an invitation to no one, as before; nothing of this shows in the answer.
async fn known_here(state: &AppState, co_holders: &[String]) {
    for username in co_holders {
        if !matches!(state.store.login_record(username).await, Ok(None)) {
            continue;
        }
        let Ok(Some(customer)) = state.interbank.directory.customer_by_username(username) else {
            continue;
        };
        if let Err(error) = super::customers::local_customer(state, customer).await {
            tracing::warn!(
                username,
                code = error.code,
                "a co-holder cannot be taken in here"
            );
        }
    }
}

#[utoipa::path(get, path = "/api/v1/accounts/{bank}/{number}", tag = "accounts", security(("bearer" = [])),
    params(("bank" = String, Path, description = "the bank's 8-digit code"), ("number" = String, Path, description = "e.g. 100001-2")),
    responses((status = 200, body = wire::Account), (status = 404, description = "account_not_found (also for accounts of others)", body = wire::Problem)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath((bank, number)): ApiPath<(String, String)>,
) -> Result<Json<wire::Account>, ApiError> {
    let bank = BankCode::parse(&bank).ok_or_else(ApiError::account_not_found)?;
    if bank != state.bank && state.interbank.link(bank).is_some() {
        let number = AccountNumber::parse(&number).ok_or_else(ApiError::account_not_found)?;
        return forwarded(&state, &customer, bank, &format!("/accounts/{number}"))
            .await
            .map(Json);
    }
    let number = path_account(&state, bank.as_str(), &number)?;
    let account = state
        .store
        .account(customer.id, number)
        .await?
        .ok_or_else(ApiError::account_not_found)?;
    Ok(Json(account_wire(&account)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// Entries per page, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` from the previous page.
    #[param(value_type = Option<String>, pattern = "^[1-9][0-9]{0,17}$")]
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/accounts/{bank}/{number}/statement", tag = "accounts", security(("bearer" = [])),
    params(("bank" = String, Path), ("number" = String, Path), StatementQuery),
    responses((status = 200, body = wire::Statement), (status = 404, body = wire::Problem), (status = 422, description = "invalid_limit, invalid_cursor", body = wire::Problem)))]
pub async fn statement(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath((bank, number)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<Json<wire::Statement>, ApiError> {
    let bank = BankCode::parse(&bank).ok_or_else(ApiError::account_not_found)?;
    if bank != state.bank && state.interbank.link(bank).is_some() {
        let number = AccountNumber::parse(&number).ok_or_else(ApiError::account_not_found)?;
        // Checked here as for an account of this bank (the other bank would refuse it too, but
        // its refusal would reach the customer as that bank being unavailable).
        let page = query.page()?;
        let path = format!("/accounts/{number}/statement?{}", page.query());
        return forwarded(&state, &customer, bank, &path).await.map(Json);
    }
    let number = path_account(&state, bank.as_str(), &number)?;
    statement_page(&state, customer.id, number, query)
        .await
        .map(Json)
}

/// A statement page asked for: how many entries, and before which one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Page {
    pub limit: usize,
    #[serde(rename = "cursor", skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
}

impl Page {
    /// The page as a query string, as another bank reads it.
    pub fn query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

impl StatementQuery {
    /// The page, or 422 `invalid_limit` / `invalid_cursor`.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = match self.limit.as_deref().filter(|l| !l.is_empty()) {
            None => STATEMENT_PAGE_DEFAULT,
            Some(text) => text
                .parse()
                .ok()
                .filter(|n| (1..=STATEMENT_PAGE_MAX).contains(n))
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_limit",
                        format!("`limit` is 1 to {STATEMENT_PAGE_MAX}"),
                    )
                })?,
        };
        let before = match &self.cursor {
            None => None,
            Some(text) => Some(text.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_cursor",
                    "`cursor` is a next_cursor from a previous page",
                )
            })?),
        };
        Ok(Page { limit, before })
    }
}

/// A page of an account's statement as `viewer` may see it.
pub async fn statement_page(
    state: &AppState,
    viewer: store::CustomerId,
    number: AccountNumber,
    query: StatementQuery,
) -> Result<wire::Statement, ApiError> {
    let Page { limit, before } = query.page()?;
    // One extra row tells whether there is a next page.
    let mut entries = state
        .store
        .statement(viewer, number, before, limit + 1)
        .await?
        .ok_or_else(ApiError::account_not_found)?;
    let next_cursor = (entries.len() > limit).then(|| entries[limit - 1].id.to_string());
    entries.truncate(limit);
    Ok(wire::Statement {
        entries: entries.iter().map(entry_wire).collect(),
        next_cursor,
    })
}

/// An account the customer holds at another bank, read there on their behalf.
pub(crate) async fn forwarded<T: serde::de::DeserializeOwned>(
    state: &AppState,
    customer: &store::CustomerRecord,
    bank: BankCode,
    path: &str,
) -> Result<T, ApiError> {
    let path = format!(
        "{}/{}{path}",
        crate::interbank::CUSTOMERS_PATH,
        customer.document
    );
    match state.interbank.forward_get(bank, &path).await {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(ApiError::account_not_found()),
        Err(error) => Err(crate::interbank::unavailable(state, bank, &error)),
    }
}

#[derive(Clone, Copy)]
enum Cash {
    Deposit,
    Withdrawal,
}

async fn cash(
    state: Arc<AppState>,
    customer: store::CustomerRecord,
    (bank, number): (String, String),
    headers: HeaderMap,
    body: ApiJson<wire::MoneyRequest>,
    direction: Cash,
) -> Result<Response, ApiError> {
    let fingerprint = body.fingerprint;
    if let Some(other) =
        BankCode::parse(&bank).filter(|b| *b != state.bank && state.interbank.link(*b).is_some())
    {
        let kind = match direction {
            Cash::Deposit => "deposit",
            Cash::Withdrawal => "withdrawal",
        };
        let op = wire::OperationRequest {
            kind: kind.into(),
            account: wire::AccountRef {
                bank: other.to_string(),
                number,
            },
            amount: body.value.amount,
            to: None,
            description: body.value.description,
        };
        return crate::routes::payments::cash_elsewhere(
            &state,
            &customer,
            &headers,
            &fingerprint,
            op,
        )
        .await;
    }
    let number = path_account(&state, &bank, &number)?;
    let amount = amount("amount", &body.value.amount)?;
    let description = description(body.value.description)?;
    let e2e = state.new_e2e();
    let command = match direction {
        Cash::Deposit => Command::Deposit {
            actor: customer.id,
            account: number,
            amount,
            description,
            e2e,
        },
        Cash::Withdrawal => Command::Withdraw {
            actor: customer.id,
            account: number,
            amount,
            description,
            e2e,
        },
    };
    let executed = state
        .execute(customer.id, &headers, &fingerprint, command)
        .await?;
    Ok(respond(executed))
}

#[utoipa::path(post, path = "/api/v1/accounts/{bank}/{number}/deposits", tag = "accounts", security(("bearer" = [])), request_body = wire::MoneyRequest,
    params(("bank" = String, Path), ("number" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = wire::StatementEntry), (status = 404, body = wire::Problem), (status = 422, description = "invalid_amount, amount_not_positive, amount_too_large", body = wire::Problem)))]
pub async fn deposit(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath(path): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: ApiJson<wire::MoneyRequest>,
) -> Result<Response, ApiError> {
    cash(state, customer, path, headers, body, Cash::Deposit).await
}

#[utoipa::path(post, path = "/api/v1/accounts/{bank}/{number}/withdrawals", tag = "accounts", security(("bearer" = [])), request_body = wire::MoneyRequest,
    params(("bank" = String, Path), ("number" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = wire::StatementEntry), (status = 404, body = wire::Problem), (status = 422, description = "insufficient_funds, invalid_amount", body = wire::Problem)))]
pub async fn withdraw(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath(path): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: ApiJson<wire::MoneyRequest>,
) -> Result<Response, ApiError> {
    cash(state, customer, path, headers, body, Cash::Withdrawal).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<&str>, cursor: Option<&str>) -> StatementQuery {
        StatementQuery {
            limit: limit.map(String::from),
            cursor: cursor.map(String::from),
        }
    }

    #[test]
    fn a_page_is_checked_and_forwarded_as_a_query_string() {
        let page = query(None, None).page().unwrap();
        assert_eq!(page.query(), format!("limit={STATEMENT_PAGE_DEFAULT}"));
        let page = query(Some("5"), Some("17")).page().unwrap();
        assert_eq!(page.query(), "limit=5&cursor=17");
        for (limit, cursor, code) in [
            (Some("5&cursor=1"), None, "invalid_limit"),
            (Some("0"), None, "invalid_limit"),
            (Some("101"), None, "invalid_limit"),
            (Some("-1"), None, "invalid_limit"),
            (None, Some("1&limit=100"), "invalid_cursor"),
            (None, Some("0"), "invalid_cursor"),
            (None, Some(""), "invalid_cursor"),
        ] {
            let error = query(limit, cursor).page().unwrap_err();
            assert_eq!(error.code, code, "{limit:?} {cursor:?}");
        }
    }
}

//! Invitations to hold a joint account: the opener names its co-holders (`POST /accounts`), and
//! each holds it, and shows on it, only once they accept here. Until then the invited customer's
//! name is shown to no one, and an invitation to a username that is no customer here looks like
//! any other pending one.

use super::{ApiPath, respond};
use crate::error::ApiError;
use crate::extract::{Caller, Fingerprint};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use std::sync::Arc;
use store::{Command, InvitationRecord};

fn invitation_wire(record: &InvitationRecord) -> wire::Invitation {
    wire::Invitation {
        id: record.id.to_string(),
        account: wire::AccountRef {
            bank: record.bank.clone(),
            number: record.account_number.clone(),
        },
        from: wire::Holder {
            username: record.inviter.username.clone(),
            name: record.inviter.name.clone(),
        },
        to: record.username.clone(),
        status: record.status.clone(),
    }
}

#[utoipa::path(get, path = "/api/v1/invitations", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, description = "joint-account invitations you received and sent, oldest first", body = wire::Invitations)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
) -> Result<Json<wire::Invitations>, ApiError> {
    let records = state.store.invitations_of(customer.id).await?;
    let (received, sent): (Vec<_>, Vec<_>) = records.iter().partition(|r| r.received);
    Ok(Json(wire::Invitations {
        received: received.into_iter().map(invitation_wire).collect(),
        sent: sent.into_iter().map(invitation_wire).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/invitations/{id}/accept", tag = "accounts", security(("bearer" = [])),
    params(("id" = String, Path, description = "the invitation's id"), ("Idempotency-Key" = Option<String>, Header, description = "replays the first answer")),
    responses((status = 201, description = "you now hold the account", body = wire::Account),
              (status = 404, description = "invitation_not_found (also others' and answered ones)", body = wire::Problem),
              (status = 422, description = "holder_kind_mismatch: the account has its maximum of holders", body = wire::Problem)))]
pub async fn accept(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath(id): ApiPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    answer(&state, customer.id, &id, &uri, &headers, true).await
}

#[utoipa::path(post, path = "/api/v1/invitations/{id}/decline", tag = "accounts", security(("bearer" = [])),
    params(("id" = String, Path, description = "the invitation's id"), ("Idempotency-Key" = Option<String>, Header, description = "replays the first answer")),
    responses((status = 204, description = "declined"),
              (status = 404, description = "invitation_not_found (also others' and answered ones)", body = wire::Problem)))]
pub async fn decline(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath(id): ApiPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    answer(&state, customer.id, &id, &uri, &headers, false).await
}

async fn answer(
    state: &AppState,
    actor: store::CustomerId,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    accept: bool,
) -> Result<Response, ApiError> {
    let invitation = id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::not_found("invitation_not_found", "no such invitation waiting for you")
    })?;
    let executed = state
        .execute(
            actor,
            headers,
            &Fingerprint::of_text(&format!("POST {}", uri.path())),
            Command::AnswerInvitation {
                actor,
                invitation,
                accept,
            },
        )
        .await?;
    // The co-holder who accepts holds the account from now on: the directory lists them too,
    // so they see and use it from any bank.
    if let store::Outcome::Account(account) = &executed.outcome
        && let Some(number) = ledger::AccountNumber::parse(&account.number)
        && let Some(customer) = state.store.customer(actor).await?
    {
        crate::directory::list_account(state, &[customer.username], number).await;
    }
    Ok(respond(executed))
}

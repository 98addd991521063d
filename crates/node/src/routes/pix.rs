//! Pix keys: register one on an account you hold, list yours, look one up, remove one.

use super::{ApiPath, body_account, pix_key_wire, respond};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, Fingerprint};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use ledger::{PixKey, PixKeyType};
use std::sync::Arc;
use store::Command;

fn parse_key(text: &str) -> Result<PixKey, ApiError> {
    PixKey::parse_any(text).map_err(|_| ApiError::not_found("pix_key_not_found", "no such Pix key"))
}

#[utoipa::path(post, path = "/api/v1/pix-keys", tag = "pix", security(("bearer" = [])), request_body = wire::AddPixKey,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = wire::PixKey), (status = 409, description = "duplicate_pix_key", body = wire::Problem),
              (status = 422, description = "invalid_pix_key, pix_key_limit_reached, pix_key_not_your_document", body = wire::Problem)))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    headers: HeaderMap,
    body: ApiJson<wire::AddPixKey>,
) -> Result<Response, ApiError> {
    let request = body.value;
    let account = body_account(&state, "account", &request.account)?;
    let kind = PixKeyType::parse(&request.kind).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_pix_key_type",
            "`type` is cpf, cnpj, email, phone or random",
        )
    })?;
    let key = match (kind, request.value) {
        (PixKeyType::Random, None) => PixKey::parse_typed(kind, &uuid::Uuid::new_v4().to_string())
            .expect("a v4 UUID is a random key"),
        (PixKeyType::Random, Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_pix_key",
                "the bank generates random keys: send no `value`",
            ));
        }
        (_, None) => {
            return Err(ApiError::unprocessable(
                "invalid_pix_key",
                "`value` is required for this key type",
            ));
        }
        (_, Some(value)) => PixKey::parse_typed(kind, &value)
            .map_err(|error| ApiError::unprocessable(error.code(), format!("`value`: {error}")))?,
    };
    let command = Command::AddPixKey {
        actor: customer.id,
        account,
        key,
    };
    let executed = state
        .execute(customer.id, &headers, &body.fingerprint, command)
        .await?;
    Ok(respond(executed))
}

#[utoipa::path(get, path = "/api/v1/pix-keys", tag = "pix", security(("bearer" = [])),
    responses((status = 200, description = "every key on accounts you hold", body = wire::PixKeys)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
) -> Result<Json<wire::PixKeys>, ApiError> {
    let keys = state.store.pix_keys_of(customer.id).await?;
    Ok(Json(wire::PixKeys {
        keys: keys.iter().map(|k| pix_key_wire(k, true)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/pix-keys/{key}", tag = "pix", security(("bearer" = [])),
    params(("key" = String, Path, description = "CPF, CNPJ, e-mail, +55 phone or random UUID")),
    responses((status = 200, description = "the holder's name, bank and masked document, from this bank or another of the consortium; never the account or balance", body = wire::PixKey),
              (status = 404, description = "pix_key_not_found", body = wire::Problem),
              (status = 429, description = "too_many_requests: more lookups than a customer may make (PIX_LOOKUPS_BURST_MAX, then one a second), with Retry-After", body = wire::Problem)))]
pub async fn lookup(
    State(state): State<Arc<AppState>>,
    client: crate::limits::Client,
    Caller(customer): Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<wire::PixKey>, ApiError> {
    // Each answer names a person: unlimited, lookups would list the consortium's customers.
    if let Err(refused) = state
        .limits
        .pix_lookup(customer.id, std::time::Instant::now())
    {
        state.trail.record(
            "lookup_throttled",
            Some(client),
            Some(&customer.username),
            refused.code,
        );
        return Err(refused);
    }
    let key = parse_key(&key)?;
    if let Some(record) = state.store.pix_key(&key).await? {
        return Ok(Json(pix_key_wire(&record, false)));
    }
    // Not here: the other banks of the consortium are asked.
    let found = state.interbank.find_pix_key(&key).await.ok_or_else(|| {
        ApiError::not_found("pix_key_not_found", "no such Pix key in the consortium")
    })?;
    Ok(Json(wire::PixKey {
        key: found.key,
        kind: found.key_type,
        bank: found.bank,
        holder_name: found.holder_name,
        document_masked: found.document_masked,
        account: None,
    }))
}

#[utoipa::path(delete, path = "/api/v1/pix-keys/{key}", tag = "pix", security(("bearer" = [])),
    params(("key" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, description = "pix_key_not_found (also for others' keys)", body = wire::Problem)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Caller(customer): Caller,
    ApiPath(key): ApiPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    let executed = state
        .execute(
            customer.id,
            &headers,
            &Fingerprint::of_text(&format!("DELETE {}", uri.path())),
            Command::DeletePixKey {
                actor: customer.id,
                key,
            },
        )
        .await?;
    Ok(respond(executed))
}

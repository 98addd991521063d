//! The node itself: health, metrics, the operator's audit, the consortium view, the OpenAPI
//! document.

use crate::error::ApiError;
use crate::extract::{MaybeOperator, Operator};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use ledger::amount::format_cents;
use std::sync::Arc;

/// 200 while the bank can serve; 503 `writer_stopped` once its store's writer has stopped for
/// good (no write could be made durable, so no request that changes anything can succeed), so a
/// load balancer or a peer stops sending it work.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, body = wire::Health),
              (status = 503, description = "writer_stopped: the bank cannot make anything durable", body = wire::Problem)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Result<Json<wire::Health>, ApiError> {
    if !state.store.is_writing() {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "writer_stopped",
            "the bank's store has stopped taking writes; restart the node",
        ));
    }
    Ok(Json(wire::Health {
        status: "ok".into(),
        bank: state.bank.to_string(),
        name: state.name.clone(),
        duties: state.interbank.duties.held(),
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "system", security(("bearer" = [])),
    responses((status = 200, description = "the ledger's totals and every local invariant check", body = wire::Audit),
              (status = 403, description = "operator_only", body = wire::Problem),
              (status = 429, description = "audit_in_progress: one audit runs at a time", body = wire::Problem)))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    _operator: Operator,
) -> Result<Json<wire::Audit>, ApiError> {
    let report = state.store.audit().await?;
    // Whether this ledger is all in the directory (`listing`): conflicts for the operator fail it.
    let migration = state.listing.check();
    let ok = report.ok() && migration.ok;
    Ok(Json(wire::Audit {
        bank: state.bank.to_string(),
        clock: report.clock,
        accounts: report.accounts,
        totals: wire::LedgerTotals {
            debits_pending: format_cents(report.totals.debits_pending),
            debits_posted: format_cents(report.totals.debits_posted),
            credits_pending: format_cents(report.totals.credits_pending),
            credits_posted: format_cents(report.totals.credits_posted),
        },
        customer_balances: format_cents(report.customer_balances_cents),
        cash_in: format_cents(report.cash_in_cents),
        cash_out: format_cents(report.cash_out_cents),
        settlement: report
            .settlement
            .iter()
            .map(|(bank, cents)| wire::SettlementPosition {
                bank: bank.clone(),
                position: format_cents(*cents),
            })
            .collect(),
        checks: report
            .checks
            .into_iter()
            .map(|c| wire::Check {
                name: c.name.to_string(),
                ok: c.ok,
                detail: c.detail,
            })
            .chain(std::iter::once(migration))
            .collect(),
        ok,
    }))
}

/// The banks and their status for anyone; this bank's settlement positions (what it owes and is
/// owed) only for its operator. The positions are a read of a few rows, not the audit.
#[utoipa::path(get, path = "/api/v1/consortium", tag = "system",
    responses((status = 200, description = "every bank of the consortium; with the operator's token, this bank's settlement position with each", body = wire::ConsortiumView)))]
pub async fn consortium(
    State(state): State<Arc<AppState>>,
    MaybeOperator(operator): MaybeOperator,
) -> Result<Json<wire::ConsortiumView>, ApiError> {
    let banks = state
        .peers
        .iter()
        .map(|peer| {
            let link =
                ledger::BankCode::parse(&peer.code).and_then(|code| state.interbank.link(code));
            let (status, since, rtt_ms) = match link.map(|link| link.health()) {
                Some(health) => (
                    health.status.as_str(),
                    Some(super::rfc3339(health.since_ms)),
                    health.rtt_ms,
                ),
                None => ("up", Some(super::rfc3339(state.started_ms)), None),
            };
            wire::BankStatus {
                code: peer.code.clone(),
                name: peer.name.clone(),
                url: peer.url.clone(),
                status: status.into(),
                since,
                rtt_ms,
            }
        })
        .collect();
    let settlement = if operator {
        let positions = state.store.settlement().await?;
        Some(
            positions
                .into_iter()
                .map(|(bank, cents)| wire::SettlementPosition {
                    bank,
                    position: format_cents(cents),
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(Json(wire::ConsortiumView {
        bank: state.bank.to_string(),
        banks,
        settlement,
        directory: Some(crate::directory::status(&state.interbank.directory)),
    }))
}

pub async fn openapi() -> impl IntoResponse {
    Json(crate::app::openapi())
}

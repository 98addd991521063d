//! The security trail, for the operator: `GET /api/v1/audit/events` (see `crate::trail`).

use super::ApiQuery;
use crate::error::ApiError;
use crate::extract::Operator;
use crate::state::AppState;
use crate::trail::TRAIL_READ_MAX;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::sync::Arc;

/// Events answered when the request names no `limit`.
pub const TRAIL_READ_DEFAULT: usize = 100;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// The newest events to answer, 1 to 1,000 (default 100).
    pub limit: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit/events", tag = "system", security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, description = "the newest events of the bank's security trail, oldest first", body = wire::SecurityEvents),
              (status = 403, description = "operator_only", body = wire::Problem),
              (status = 422, description = "invalid_limit", body = wire::Problem)))]
pub async fn events(
    State(state): State<Arc<AppState>>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<wire::SecurityEvents>, ApiError> {
    let limit = match query.limit.filter(|l| !l.is_empty()) {
        None => TRAIL_READ_DEFAULT,
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=TRAIL_READ_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_limit",
                    format!("`limit` is 1 to {TRAIL_READ_MAX}"),
                )
            })?,
    };
    let events = state
        .trail
        .newest(limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(events))
}

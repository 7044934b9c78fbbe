//! A sandbox of the providers' APIs, served by the dev server itself under
//! `/_sandbox/<provider>/…`, so that enrichment works offline: each provider's documented
//! routes and token exchange from its test kit, answered with made-up fixture data labelled
//! `"sandbox": true`. Like the provider, it takes only the API credentials of the tenants in
//! `devserver.toml` (yours to change; the server reads them at start), so a request with
//! another tenant's key or none is refused (401), and so is any method, path or query the
//! provider does not document (404).

use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub(crate) async fn answer(
    State(state): State<AppState>,
    Path((provider, path)): Path<(String, String)>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{}", path.trim_start_matches('/'));
    let answer = state.sandbox.answer(
        &provider,
        method.as_str(),
        &path,
        query.as_deref().unwrap_or_default(),
        &headers,
        &body,
    );
    let mut body = answer.body;
    if let Some(object) = body.as_object_mut() {
        object.insert("sandbox".into(), true.into());
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

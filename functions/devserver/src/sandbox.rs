//! A sandbox of the providers' detail APIs, served by the dev server itself under
//! `/_sandbox/<provider>/…`, so that enrichment works offline. Every answer is made-up
//! fixture data shaped like the provider's objects; it is labelled `"sandbox": true`.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub async fn answer(
    Path((provider, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let has_key = ["x-api-key", "authorization", "apikey"]
        .iter()
        .any(|name| headers.get(*name).is_some_and(|v| !v.is_empty()));
    if !has_key {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "missing API key" })),
        )
            .into_response();
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match fixture(&provider, &segments) {
        Some(mut body) => {
            body["sandbox"] = Value::Bool(true);
            Json(body).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "not found", "sandbox": true })),
        )
            .into_response(),
    }
}

fn fixture(provider: &str, segments: &[&str]) -> Option<Value> {
    Some(match (provider, segments) {
        ("magicline", ["v1", "customers", id]) => json!({
            "id": id.parse::<i64>().ok()?,
            "customerNumber": format!("S-{id}"),
            "firstName": "Mia",
            "lastName": "Sandbox",
            "email": "mia.sandbox@example.com",
            "dateOfBirth": "1990-04-12",
            "customerStatus": "MEMBER",
            "studioId": 1001,
            "createdDateTime": "2026-11-25T18:00:00.000+01:00",
        }),
        ("egym", ["v2", "accounts", id]) => json!({
            "accountId": id,
            "firstName": "Ben",
            "lastName": "Sandbox",
            "email": "ben.sandbox@example.com",
            "membershipStatus": "ACTIVE",
            "gymLocationId": "gym-berlin-01",
            "lastActivity": "2026-11-25T18:00:00Z",
        }),
        ("timify", ["v1", collection, id]) => json!({
            "id": id,
            "type": collection,
            "companyId": "company-5f1e",
            "name": format!("Sandbox {collection}"),
            "updatedAt": "2026-11-25T18:00:00.000Z",
        }),
        ("flybuy", ["api", "v1", "orders", id]) => json!({
            "data": {
                "type": "order",
                "id": id.parse::<i64>().ok()?,
                "state": "ready",
                "customer_state": "nearby",
                "site_id": 43,
                "partner_identifier": "24667",
                "customer_name": "Sandbox Customer",
                "customer_car_type": "Demo Hatchback",
                "customer_license_plate": "DEMO-123",
                "eta_at": "2026-11-25T17:15:33.645Z",
                "updated_at": "2026-11-25T17:55:20.442Z",
            }
        }),
        ("waitwhile", ["v2", "visits", id]) => json!({
            "id": id,
            "locationId": "loc-downtown",
            "state": "WAITING",
            "firstName": "Demo",
            "lastName": "Sandbox",
            "partySize": 2,
            "position": 3,
            "updated": "2026-11-25T18:00:00.000Z",
        }),
        ("waitwhile", ["v2", "messages", id]) => json!({
            "id": id,
            "channel": "SMS",
            "deliveryStatus": "DELIVERED",
            "updated": "2026-11-25T18:00:00.000Z",
        }),
        ("waitwhile", ["v2", "locations", id, "status"]) => json!({
            "id": id,
            "numWaiting": 4,
            "isWaitlistOpen": true,
        }),
        ("waitwhile", ["v2", "locations", id]) => json!({
            "id": id,
            "name": "Sandbox Location",
            "timezone": "Europe/Berlin",
        }),
        _ => return None,
    })
}

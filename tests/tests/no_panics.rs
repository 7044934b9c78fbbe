//! Property tests: no input makes a verifier, a parser or the whole ingest path panic or answer
//! anything but its documented statuses. Arbitrary headers and bytes, every provider.

use bytes::Bytes;
use proptest::prelude::*;
use shared::providers::flybuy::token_from_authorization;
use shared::{Ingest, IngestSettings};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every provider's real handler on the in-memory store and queue.
fn handlers() -> Vec<(String, Ingest)> {
    let memory = adapter_memory::Memory::new(5, shared::clock::system());
    shared::providers::all()
        .into_iter()
        .map(|provider| {
            let name = provider.name().to_string();
            let ingest = Ingest::new(
                provider,
                e2e::demo_tenants(&name),
                memory.ports.clone(),
                IngestSettings::default(),
            );
            (name, ingest)
        })
        .collect()
}

const HEADER_NAMES: [&str; 8] = [
    "x-api-key",
    "authorization",
    "x-waitwhile-signature",
    "x-timify-secret",
    "x-webhook-token",
    "content-type",
    "x-anything",
    "apikey",
];

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Visible ASCII, the usual shape of credentials.
        proptest::collection::vec(0x20u8..0x7f, 0..80),
        // Anything a header value may carry (obs-text included).
        proptest::collection::vec(any::<u8>(), 0..80),
        Just(br#"Token token="FBDEMO41TOKEN""#.to_vec()),
        Just(b"ml-demo-key-1001-new".to_vec()),
        Just(b"application/json".to_vec()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        // JSON-ish text around the envelopes' field names.
        proptest::collection::vec(
            prop_oneof![
                Just("{"),
                Just("}"),
                Just("["),
                Just("]"),
                Just(","),
                Just(":"),
                Just("null"),
                Just("\"uuid\""),
                Just("\"entityId\""),
                Just("\"payload\""),
                Just("\"type\""),
                Just("\"timestamp\""),
                Just("\"accountId\""),
                Just("\"data\""),
                Just("\"id\""),
                Just("\"updated_at\""),
                Just("\"event\""),
                Just("1e400"),
                Just("-0"),
                Just("\"x\""),
                Just("99999999999999999999"),
                Just("true")
            ],
            0..40
        )
        .prop_map(|parts| parts.concat().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn flybuy_token_parser_never_panics(value in any::<String>()) {
        let _ = token_from_authorization(&value);
    }

    #[test]
    fn every_parser_accepts_or_refuses_any_bytes(bytes in body()) {
        for provider in shared::providers::all() {
            let tenants = e2e::demo_tenants(provider.name());
            let tenant = tenants.iter().next().unwrap();
            if let Ok(event) = provider.parse(tenant, &bytes) {
                prop_assert!(!event.dedup_suffix.is_empty());
            }
        }
    }

    #[test]
    fn the_ingest_path_answers_any_request_with_a_documented_status(
        method in prop_oneof![Just("POST"), Just("GET"), Just("PUT"), Just("OPTIONS")],
        headers in proptest::collection::vec((0..HEADER_NAMES.len(), header_value()), 0..5),
        body in body(),
        query in prop_oneof![
            Just(String::new()),
            Just("tenant=loc-downtown".to_string()),
            Just("tenant=%00".to_string()),
            "[a-z=&]{0,20}"
        ],
    ) {
        let runtime = runtime();
        for (provider, ingest) in handlers() {
            let mut request = http::Request::builder()
                .method(method)
                .uri(format!("https://example.test/webhooks/{provider}?{query}"));
            for (name, value) in &headers {
                if let Ok(value) = http::HeaderValue::from_bytes(value) {
                    request = request.header(HEADER_NAMES[*name], value);
                }
            }
            let request = request.body(Bytes::from(body.clone())).unwrap();
            let response = runtime.block_on(ingest.handle(request));
            let status = response.status().as_u16();
            prop_assert!(
                [200, 202, 400, 401, 405, 409, 413, 415].contains(&status),
                "{provider}: {status}"
            );
            prop_assert!(serde_json::from_slice::<serde_json::Value>(response.body()).is_ok());
        }
    }
}

//! Property tests: no input makes a verifier, a parser or the whole ingest path panic or answer
//! anything but its documented statuses. Arbitrary headers and bytes, every provider.

use std::sync::LazyLock;

use bytes::Bytes;
use proptest::prelude::*;
use testkit::Kit;
use webhook_core::providers::flybuy::token_from_authorization;
use webhook_core::{Ingest, IngestSettings};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every provider's real handler, with its kit's demo tenants, on the in-memory store and queue.
fn handlers() -> Vec<(String, Ingest)> {
    let memory = adapter_memory::Memory::new(5, webhook_core::clock::system());
    webhook_core::providers::all()
        .into_iter()
        .map(|provider| {
            let kit = Kit::of(provider.as_ref());
            let ingest = Ingest::new(
                provider,
                kit.tenants(tests::NO_API),
                memory.ports.clone(),
                IngestSettings::default(),
            );
            (kit.name().to_string(), ingest)
        })
        .collect()
}

/// What the kits know: header names and values of real deliveries from every demo tenant,
/// the APIs' header names, `?tenant=` queries, and the envelopes' field names.
struct Known {
    header_names: Vec<String>,
    header_values: Vec<Vec<u8>>,
    queries: Vec<String>,
    fields: Vec<String>,
}

static KNOWN: LazyLock<Known> = LazyLock::new(|| {
    let mut known = Known {
        header_names: vec!["x-anything".into()],
        header_values: Vec::new(),
        queries: Vec::new(),
        fields: Vec::new(),
    };
    for kit in Kit::all() {
        known.header_names.extend(kit.api().headers.keys().cloned());
        for tenant in kit.tenants(tests::NO_API).iter() {
            known.queries.push(format!("tenant={}", tenant.id));
            let secret = tenant.webhook_secrets.first().map_or("", |s| s.expose());
            for (name, value) in kit.unique(1, tenant, secret).headers() {
                known.header_names.push(name.to_string());
                known.header_values.push(value.as_bytes().to_vec());
            }
        }
        let body: serde_json::Value = serde_json::from_str(&kit.unique_body(1)).unwrap();
        field_names(&body, &mut known.fields);
    }
    for list in [
        &mut known.header_names,
        &mut known.queries,
        &mut known.fields,
    ] {
        list.sort();
        list.dedup();
    }
    known
});

fn kit_status(provider: &str) -> u16 {
    Kit::of(webhook_core::providers::by_name(provider).unwrap().as_ref()).accepted_status()
}

fn field_names(value: &serde_json::Value, names: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, item) in fields {
                names.push(format!("{name:?}"));
                field_names(item, names);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| field_names(item, names)),
        _ => {}
    }
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Visible ASCII, the usual shape of credentials.
        proptest::collection::vec(0x20u8..0x7f, 0..80),
        // Anything a header value may carry (obs-text included).
        proptest::collection::vec(any::<u8>(), 0..80),
        proptest::sample::select(KNOWN.header_values.clone()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let syntax = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "1e400",
        "-0",
        "\"x\"",
        "99999999999999999999",
        "true",
    ];
    let words: Vec<String> = syntax
        .iter()
        .map(|s| s.to_string())
        .chain(KNOWN.fields.clone())
        .collect();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        // JSON-ish text around the envelopes' field names.
        proptest::collection::vec(proptest::sample::select(words), 0..40)
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
        for provider in webhook_core::providers::all() {
            let tenants = Kit::of(provider.as_ref()).tenants(tests::NO_API);
            let tenant = tenants.iter().next().unwrap();
            if let Ok(event) = provider.parse(tenant, &bytes) {
                prop_assert!(!event.dedup_suffix.is_empty());
            }
        }
    }

    #[test]
    fn the_ingest_path_answers_any_request_with_a_documented_status(
        method in prop_oneof![Just("POST"), Just("GET"), Just("PUT"), Just("OPTIONS")],
        headers in proptest::collection::vec((0..KNOWN.header_names.len(), header_value()), 0..5),
        body in body(),
        query in prop_oneof![
            Just(String::new()),
            proptest::sample::select(KNOWN.queries.clone()),
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
                    request = request.header(KNOWN.header_names[*name].as_str(), value);
                }
            }
            let request = request.body(Bytes::from(body.clone())).unwrap();
            let response = runtime.block_on(ingest.handle(request));
            let status = response.status().as_u16();
            let answer: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            // The bodies stay far under the size limit, and the in-memory store and queue never
            // fail (no 422, no 503): a request is refused for its method or its credential, or
            // kept, new (the kit's accepted status) or a duplicate (200).
            let allowed = if method == "POST" {
                vec![200, kit_status(&provider), 401]
            } else {
                vec![405]
            };
            prop_assert!(allowed.contains(&status), "{provider} {method}: {status} {answer}");
            match status {
                405 => prop_assert_eq!(&answer, &serde_json::json!({ "error": "method not allowed, use POST" })),
                401 => prop_assert_eq!(&answer, &serde_json::json!({ "error": "unauthorized" })),
                _ => {}
            }
        }
    }
}

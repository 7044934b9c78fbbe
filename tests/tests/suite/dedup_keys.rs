//! Dedup keys keep every digit: for every provider, deliveries made from its kit's unique
//! template with two different integers (beyond 2^53 and 2^64, negative) are both accepted
//! under keys one of whose parts is the integer's exact text (within the template's text
//! around it), and the same delivery again is a duplicate — through the real handler.

use std::collections::BTreeSet;

use adapter_memory::Memory;
use proptest::prelude::*;
use testkit::Kit;
use webhook_core::{Ingest, IngestSettings};

/// An integer as a sender may write it: up to 40 digits, either sign. With the templates' text
/// around it a key part stays under the 200 bytes beyond which it would be hashed.
fn integer() -> impl Strategy<Value = String> {
    (any::<bool>(), "[1-9][0-9]{0,39}")
        .prop_map(|(negative, digits)| format!("{}{digits}", if negative { "-" } else { "" }))
}

/// What the handler answered one delivery, and the key of the record it added, if any (TIMIFY
/// answers `{}` whatever happened, so the key is read from the store).
struct Answer {
    status: u16,
    body: serde_json::Value,
    added: Option<String>,
}

fn deliver(
    runtime: &tokio::runtime::Runtime,
    ingest: &Ingest,
    memory: &Memory,
    kit: &Kit,
    seq: &str,
) -> Answer {
    let keys = || -> BTreeSet<String> {
        memory
            .store
            .records()
            .into_iter()
            .map(|record| record.key)
            .collect()
    };
    let before = keys();
    let tenants = kit.tenants(tests::NO_API);
    let tenant = tenants.iter().next().unwrap();
    let secret = tenant.webhook_secrets[0].expose();
    let response = runtime.block_on(ingest.handle(kit.unique_with(seq, tenant, secret)));
    let added: Vec<String> = keys().difference(&before).cloned().collect();
    assert!(added.len() <= 1, "{}: one delivery, {added:?}", kit.name());
    Answer {
        status: response.status().as_u16(),
        body: serde_json::from_slice(response.body()).unwrap(),
        added: added.into_iter().next(),
    }
}

/// Where the kit's unique template puts the integer: each text holding `{seq}` (a number
/// field is `{seq}` alone). Found through a marker that a JSON number holds exactly.
fn seq_texts(kit: &Kit) -> Vec<String> {
    const MARKER: &str = "918273645546372819";
    let tenants = kit.tenants(tests::NO_API);
    let tenant = tenants.iter().next().unwrap();
    let request = kit.unique_with(MARKER, tenant, tenant.webhook_secrets[0].expose());
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    let mut texts = Vec::new();
    let mut stack = vec![&body];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(text) if text.contains(MARKER) => {
                texts.push(text.replace(MARKER, "{seq}"))
            }
            serde_json::Value::Number(number) if number.to_string() == MARKER => {
                texts.push("{seq}".into())
            }
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(fields) => stack.extend(fields.values()),
            _ => {}
        }
    }
    assert!(
        !texts.is_empty(),
        "{}: the template holds {{seq}}",
        kit.name()
    );
    texts
}

/// The parts of a key (`<provider>#<tenant>#<parts>`), `%23` and `%25` unescaped.
fn parts(key: &str) -> Vec<String> {
    key.split('#')
        .map(|part| part.replace("%23", "#").replace("%25", "%"))
        .collect()
}

fn handlers() -> Vec<(Kit, Ingest, Memory)> {
    webhook_core::providers::all()
        .into_iter()
        .map(|provider| {
            let kit = Kit::of(provider.as_ref());
            let memory = Memory::new(5, webhook_core::clock::system());
            let ingest = Ingest::new(
                provider,
                kit.tenants(tests::NO_API),
                memory.ports.clone(),
                IngestSettings::default(),
            );
            (kit, ingest, memory)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn different_numbers_are_different_deliveries_and_the_same_one_is_counted_once(
        a in integer(),
        b in integer(),
    ) {
        prop_assume!(a != b);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for (kit, ingest, memory) in handlers() {
            let name = kit.name();
            let texts = seq_texts(&kit);
            let mut keys = Vec::new();
            for seq in [&a, &b] {
                let answer = deliver(&runtime, &ingest, &memory, &kit, seq);
                prop_assert_eq!(answer.status, kit.accepted_status(), "{}: {} is new: {}", name, seq, &answer.body);
                let key = answer.added.unwrap_or_else(|| panic!("{name}: {seq} stored nothing"));
                if let Some(id) = answer.body.get("id") {
                    prop_assert_eq!(id, &serde_json::Value::from(key.as_str()), "{}", name);
                    prop_assert_eq!(&answer.body["status"], "accepted", "{}", name);
                }
                let exact: Vec<String> = texts.iter().map(|t| t.replace("{seq}", seq)).collect();
                prop_assert!(
                    parts(&key).iter().any(|part| exact.contains(part)),
                    "{}: a part of {} is exactly one of {:?}", name, key, exact
                );
                keys.push(key);
            }
            let again = deliver(&runtime, &ingest, &memory, &kit, &a);
            prop_assert_eq!(again.status, 200, "{}: {} again", name, &a);
            prop_assert_eq!(again.added, None, "{}: {} again stores nothing", name, &a);
            if again.body.as_object().is_some_and(|answer| !answer.is_empty()) {
                prop_assert_eq!(&again.body["status"], "duplicate", "{}", name);
                prop_assert_eq!(&again.body["id"], &serde_json::Value::from(keys[0].as_str()), "{}", name);
            }
            prop_assert_ne!(&keys[0], &keys[1], "{}", name);
        }
    }
}

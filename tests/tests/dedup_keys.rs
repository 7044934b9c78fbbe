//! Dedup keys keep every digit: for every provider, deliveries made from its kit's unique
//! template with two different integers (beyond 2^53 and 2^64, negative) never share a key,
//! and the same delivery always gets the same one — through the real handler.

use adapter_memory::Memory;
use proptest::prelude::*;
use shared::{Ingest, IngestSettings};
use testkit::Kit;

/// An integer as a sender may write it: up to 40 digits, either sign.
fn integer() -> impl Strategy<Value = String> {
    (any::<bool>(), "[1-9][0-9]{0,39}")
        .prop_map(|(negative, digits)| format!("{}{digits}", if negative { "-" } else { "" }))
}

/// The key the handler answers for the kit's unique delivery made with `seq`.
fn key(runtime: &tokio::runtime::Runtime, ingest: &Ingest, kit: &Kit, seq: &str) -> String {
    let tenants = kit.tenants(e2e::NO_API);
    let tenant = tenants.iter().next().unwrap();
    let secret = tenant.webhook_secrets[0].expose();
    let response = runtime.block_on(ingest.handle(kit.unique_with(seq, tenant, secret)));
    let answer: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    answer["id"]
        .as_str()
        .map(str::to_string)
        // TIMIFY answers `{}`: the key is the one stored last.
        .unwrap_or_default()
}

fn handlers() -> Vec<(Kit, Ingest, Memory)> {
    shared::providers::all()
        .into_iter()
        .map(|provider| {
            let kit = Kit::of(provider.as_ref());
            let memory = Memory::new(5, shared::clock::system());
            let ingest = Ingest::new(
                provider,
                kit.tenants(e2e::NO_API),
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
            key(&runtime, &ingest, &kit, &a);
            key(&runtime, &ingest, &kit, &b);
            prop_assert_eq!(memory.store.len(), 2, "{}: {} and {} stored apart", kit.name(), &a, &b);
            key(&runtime, &ingest, &kit, &a);
            prop_assert_eq!(memory.store.len(), 2, "{}: {} again is the same delivery", kit.name(), &a);
            let keys: Vec<String> = memory.store.records().into_iter().map(|r| r.key).collect();
            prop_assert!(
                keys.iter().any(|k| k.contains(a.trim_start_matches('-'))),
                "{}: a key keeps every digit of {}: {:?}", kit.name(), &a, keys
            );
        }
    }
}

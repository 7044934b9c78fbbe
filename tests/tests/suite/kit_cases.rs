//! Every test-kit case through the real handler and processor (in-memory store and queue, the
//! fake provider API serving each provider's documented API): the webhook answers the case's
//! status, and where the case says what processing must do, the processor does exactly that —
//! these API calls in this order with the documented headers (the fake refuses any other path,
//! query or credential), an erasure without a call, or nothing.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::Memory;
use testkit::{Case, Expect, Kit};
use tests::fake_api::FakeApi;
use webhook_core::fetch::DetailClient;
use webhook_core::model::{InboundMessage, Record, Status};
use webhook_core::ports::QueueConsumer;
use webhook_core::process::{Processor, ProcessorSettings, ProviderTenants};
use webhook_core::providers::Provider;
use webhook_core::tenants::TenantSource;
use webhook_core::{Ingest, IngestSettings};

/// A fresh store, queue, handler and processor for one case, so that no case sees another's
/// records (an erasure, a duplicate).
struct Run {
    memory: Memory,
    ingest: Ingest,
    processor: Processor,
}

fn run(provider: &Arc<dyn Provider>, kit: &Kit, api: &FakeApi) -> Run {
    let memory = Memory::new(5, webhook_core::clock::system());
    let ingest = Ingest::new(
        provider.clone(),
        kit.tenants(&api.base_url),
        memory.ports.clone(),
        IngestSettings::default(),
    );
    let processor = Processor::new(
        vec![ProviderTenants {
            provider: provider.clone(),
            tenants: TenantSource::fixed(kit.tenants(&api.base_url)),
        }],
        memory.ports.clone(),
        DetailClient::new(Duration::from_secs(2), webhook_core::clock::system()),
        ProcessorSettings::default(),
    );
    Run {
        memory,
        ingest,
        processor,
    }
}

/// Delivers `case`; processes what it stored where the case says what processing must do.
async fn check(run: &Run, kit: &Kit, case: &Case, api: &FakeApi) -> Result<(), String> {
    let status = run.ingest.handle(kit.request(case)).await.status().as_u16();
    if status != kit.status(case) {
        return Err(format!("answered {status}, want {}", kit.status(case)));
    }
    let Some(expect) = &case.process else {
        return Ok(());
    };
    let record = run.memory.store.records().pop().ok_or("nothing stored")?;
    let before = api.api_calls(kit.name()).len();
    // Processed from the record, not from the message the handler sent.
    run.memory.queue.clear();
    let message = InboundMessage {
        id: case.name.clone(),
        body: serde_json::to_string(&record.message()).unwrap(),
        receive_count: 1,
        receipt_handle: None,
    };
    run.processor.process(&message).await;
    // An event naming a list is fanned out: its items come through the queue.
    let queue = run.memory.queue.as_ref();
    loop {
        let batch = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        run.processor.process_received(queue, batch).await.unwrap();
    }
    let calls = api.api_calls(kit.name()).split_off(before);
    let after = run
        .memory
        .store
        .records()
        .into_iter()
        .find(|r| r.key == record.key)
        .ok_or("the record is gone")?;
    processed_as_expected(expect, &after, &calls)
}

fn processed_as_expected(expect: &Expect, record: &Record, calls: &[String]) -> Result<(), String> {
    let state = format!("{:?} ({:?})", record.status, record.last_error);
    if record.status != Status::Processed {
        return Err(format!("not processed: {state}; calls {calls:?}"));
    }
    let expected: Vec<String> = match expect {
        Expect::Erase if !record.body.is_empty() => {
            return Err(format!("not erased: {state}; calls {calls:?}"))
        }
        Expect::Erase => Vec::new(),
        Expect::Calls(expected) => expected.iter().map(ToString::to_string).collect(),
    };
    if calls != expected {
        return Err(format!("called {calls:?}, want {expected:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kit_case_is_answered_and_processed_as_its_kit_says() {
    let api = FakeApi::start().await;
    let mut failures = Vec::new();
    let mut processed = 0;
    for provider in webhook_core::providers::all() {
        let kit = Kit::of(provider.as_ref());
        for case in kit.cases() {
            let outcome = check(&run(&provider, &kit, &api), &kit, case, &api).await;
            processed += usize::from(case.process.is_some());
            if let Err(problem) = outcome {
                failures.push(format!("{}/{}: {problem}", kit.name(), case.name));
            }
        }
    }
    assert!(processed > 0, "the kits say what processing must do");
    assert!(failures.is_empty(), "{failures:#?}");
}

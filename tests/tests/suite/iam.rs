//! Each Lambda function's AWS calls, taken from its code, against its own IAM statements in
//! template.yaml. Every function of the template runs its real `main` (the Lambda glue's cold
//! start: tenants from Secrets Manager, warm-up calls; then its handler) with the environment
//! the template gives it, on the AWS adapters, against the local endpoint through a proxy that
//! writes every call down, along the paths that call something different: a webhook function
//! accepts, answers a duplicate, keeps a large body apart, quarantines, spills when the store
//! fails and releases its lease when the queue fails; the sweeper fails to send, then sends;
//! the processor stores spilled deliveries, claims, reads bodies kept apart, erases and runs
//! the second erasure pass, queues a delayed copy on a 429, delays a retry on a 503, finishes
//! and publishes. Each call (its `X-Amz-Target` and the table, index, queue, bus or secret it
//! names, as an ARN) must be allowed by a statement of that function's role, its
//! `dynamodb:LeadingKeys` condition included; and each permission granted must be used by a
//! call, but for what the Lambda service itself does with the role (logs, the SQS event source).

use rusty_fork::rusty_fork_test;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{Expect, Kit};
use tests::fake_api::{Behavior, FakeApi};
use tests::lambda::{apigw_event, Function, Main};
use tests::proxy::{AwsCall, Recorder};
use tests::{root, unique_name, Backend};

/// What the Lambda service itself does with a role, never the code: the runtime's log writes,
/// active tracing's segments (sent by Lambda's X-Ray daemon), and for a function on a queue the
/// SQS event source's polling and deleting.
fn used_by_the_service(kind: &Kind) -> &'static [&'static str] {
    match kind {
        Kind::Processor => &[
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        ],
        _ => &[
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
        ],
    }
}

/// What a bootstrap's `main` runs: the call its `source` (`functions/lambda/src/bin/<binary>.rs`,
/// without whitespace) makes, and the same as a function. A webhook function's binary is `<provider>-webhook` and runs that
/// provider's type (`run_webhook(webhook_core::providers::Egym)` for `egym`).
fn main_of(binary: &str, source: &str) -> (String, Main) {
    use lambda::{run_processor, run_sweeper, run_webhook_of, start};
    match binary {
        "processor" => (
            "run_processor()".into(),
            Box::new(|| start(run_processor())),
        ),
        "sweeper" => ("run_sweeper()".into(), Box::new(|| start(run_sweeper()))),
        webhook => {
            let provider = webhook_core::providers::all()
                .into_iter()
                .find(|p| binary == format!("{}-webhook", p.name()))
                .unwrap_or_else(|| {
                    panic!("{webhook}: no provider of providers::all() is named so")
                });
            let runs = source
                .split("lambda::start(lambda::")
                .nth(1)
                .and_then(|rest| rest.strip_suffix(")}"))
                .unwrap_or_default()
                .to_string();
            let named = runs
                .strip_prefix("run_webhook(webhook_core::providers::")
                .and_then(|rest| rest.strip_suffix(')'));
            assert_eq!(
                named.map(str::to_lowercase).as_deref(),
                Some(provider.name()),
                "functions/lambda/src/bin/{binary}.rs runs {runs}"
            );
            (runs, Box::new(move || start(run_webhook_of(provider))))
        }
    }
}

/// The resources the test stands up in place of the template's, and the template's values
/// resolved against them.
struct Stack {
    template: Value,
    /// What `Ref` gives, by logical id (a table's name, a queue's URL, a secret's ARN …).
    refs: BTreeMap<String, String>,
    /// What `Fn::GetAtt <id>.Arn` gives.
    arns: BTreeMap<String, String>,
}

impl Stack {
    fn resolve(&self, value: &Value) -> String {
        if let Some(text) = value.as_str() {
            return text.to_string();
        }
        if let Some(number) = value.as_number() {
            return number.to_string();
        }
        if let Some(name) = value.get("Ref").and_then(Value::as_str) {
            return self.reference(name);
        }
        if let Some([id, attribute]) = value
            .get("Fn::GetAtt")
            .and_then(|v| v.as_array())
            .map(Vec::as_slice)
        {
            return self.attribute(id.as_str().unwrap(), attribute.as_str().unwrap());
        }
        if let Some(text) = value.get("Fn::Sub").and_then(Value::as_str) {
            return self.substitute(text);
        }
        if let Some([condition, then, otherwise]) = value
            .get("Fn::If")
            .and_then(|v| v.as_array())
            .map(Vec::as_slice)
        {
            let branch = if self.condition(condition.as_str().unwrap()) {
                then
            } else {
                otherwise
            };
            return self.resolve(branch);
        }
        panic!("a template value this test cannot resolve: {value}")
    }

    fn reference(&self, name: &str) -> String {
        match name {
            "AWS::StackName" => "iam-test".into(),
            "AWS::Region" => "us-east-1".into(),
            "AWS::AccountId" => "123456789012".into(),
            _ => match (
                self.refs.get(name),
                &self.template["Parameters"][name]["Default"],
            ) {
                (Some(physical), _) => physical.clone(),
                (None, Value::Null) => format!("unresolved:{name}"),
                (None, default) => self.resolve(default),
            },
        }
    }

    fn attribute(&self, id: &str, attribute: &str) -> String {
        match (attribute, self.arns.get(id)) {
            ("Arn", Some(arn)) => arn.clone(),
            _ => format!("unresolved:{id}.{attribute}"),
        }
    }

    fn substitute(&self, text: &str) -> String {
        let mut resolved = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            resolved.push_str(&rest[..start]);
            let end = rest[start..].find('}').unwrap() + start;
            let inner = &rest[start + 2..end];
            match inner.split_once('.') {
                Some((id, attribute)) => resolved.push_str(&self.attribute(id, attribute)),
                None => resolved.push_str(&self.reference(inner)),
            }
            rest = &rest[end + 1..];
        }
        resolved + rest
    }

    fn condition(&self, name: &str) -> bool {
        let condition = &self.template["Conditions"][name];
        match condition.get("Fn::Equals").and_then(Value::as_array) {
            Some(pair) => self.resolve(&pair[0]) == self.resolve(&pair[1]),
            None => panic!("condition {name}: this test evaluates Fn::Equals only: {condition}"),
        }
    }

    /// The ARN of the resource a call names (a table's name, a queue's URL, a bus's name or a
    /// secret's ARN or name).
    fn arn_named(&self, name: &str) -> String {
        if self.arns.values().any(|arn| arn == name) {
            return name.to_string();
        }
        self.refs
            .iter()
            .find(|(_, physical)| *physical == name)
            .and_then(|(id, _)| self.arns.get(id))
            .cloned()
            .unwrap_or_else(|| format!("unknown:{name}"))
    }

    /// Stands a resource up for the template's `id`: what its `Ref` and its `Arn` give.
    fn stand_in(&mut self, id: &str, reference: &str, arn: String) {
        self.refs.insert(id.into(), reference.into());
        self.arns.insert(id.into(), arn);
    }

    fn resource(&self, id: &str) -> &Value {
        &self.template["Resources"][id]
    }

    /// The environment the template gives a function: its globals and its own variables.
    fn environment(&self, id: &str) -> Vec<(String, String)> {
        let globals = &self.template["Globals"]["Function"]["Environment"]["Variables"];
        let own = &self.resource(id)["Properties"]["Environment"]["Variables"];
        let mut variables = BTreeMap::new();
        for scope in [globals, own] {
            for (name, value) in scope.as_object().into_iter().flatten() {
                variables.insert(name.clone(), self.resolve(value));
            }
        }
        variables.into_iter().collect()
    }
}

/// One call as IAM sees it.
#[derive(Debug)]
struct Request {
    action: String,
    resource: String,
    /// The partition keys of the items it reads or writes (`dynamodb:LeadingKeys`).
    keys: Option<Vec<String>>,
}

/// A call as IAM authorises it: one request per resource it touches.
fn as_requests(call: &AwsCall, stack: &Stack) -> Vec<Request> {
    let (api, operation) = call
        .target
        .split_once('.')
        .unwrap_or_else(|| panic!("a call without X-Amz-Target: {call:?}"));
    let body = &call.request;
    let named = |value: &Value| stack.arn_named(value.as_str().unwrap_or_default());
    let on = |service: &str, resource: String| {
        vec![Request {
            action: format!("{service}:{operation}"),
            resource,
            keys: None,
        }]
    };
    match api {
        "DynamoDB_20120810" => dynamodb_requests(operation, body, stack),
        "AmazonSQS" => on("sqs", named(&body["QueueUrl"])),
        "secretsmanager" => on("secretsmanager", named(&body["SecretId"])),
        "AWSEvents" => list(&body["Entries"])
            .iter()
            .flat_map(|entry| on("events", named(&entry["EventBusName"])))
            .collect(),
        other => panic!("an AWS API this test does not know: {other} ({call:?})"),
    }
}

/// DynamoDB's requests: a batch's per table, a transaction's items as the single-item actions
/// they are authorised as; with the partition keys of the items they name.
fn dynamodb_requests(operation: &str, body: &Value, stack: &Stack) -> Vec<Request> {
    let pk = |item: &Value| item["pk"]["S"].as_str().unwrap_or_default().to_string();
    let table = |name: &str| stack.arn_named(name);
    let single = |action: &str, body: &Value| {
        let mut resource = table(body["TableName"].as_str().unwrap_or_default());
        if let Some(index) = body["IndexName"].as_str() {
            resource = format!("{resource}/index/{index}");
        }
        let item = body.get("Key").or(body.get("Item"));
        Request {
            action: format!("dynamodb:{action}"),
            resource,
            keys: item.map(|item| vec![pk(item)]),
        }
    };
    match operation {
        "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, items)| {
                let items: Vec<Value> = match items.get("Keys") {
                    Some(keys) => list(keys),
                    None => list(items)
                        .iter()
                        .filter_map(|write| {
                            let put = write.get("PutRequest").map(|put| &put["Item"]);
                            put.or(write.get("DeleteRequest").map(|delete| &delete["Key"]))
                                .cloned()
                        })
                        .collect(),
                };
                Request {
                    action: format!("dynamodb:{operation}"),
                    resource: table(name),
                    keys: Some(items.iter().map(pk).collect()),
                }
            })
            .collect(),
        "TransactWriteItems" | "TransactGetItems" => list(&body["TransactItems"])
            .iter()
            .flat_map(|item| {
                item.as_object()
                    .unwrap()
                    .iter()
                    .map(|(kind, inner)| (kind.clone(), inner.clone()))
            })
            .map(|(kind, inner)| match kind.as_str() {
                "ConditionCheck" => single("ConditionCheckItem", &inner),
                kind => single(&format!("{kind}Item"), &inner),
            })
            .collect(),
        _ => vec![single(operation, body)],
    }
}

/// `*` and `?` as IAM reads them in actions, resources and `StringLike`.
fn like(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// One `Allow` statement, resolved.
#[derive(Debug)]
struct Statement {
    actions: Vec<String>,
    resources: Vec<String>,
    /// `ForAllValues:StringLike` patterns of `dynamodb:LeadingKeys`, if the statement has them.
    leading_keys: Option<Vec<String>>,
}

impl Statement {
    fn allows(&self, request: &Request) -> bool {
        let action = self
            .actions
            .iter()
            .any(|a| like(&a.to_lowercase(), &request.action.to_lowercase()));
        let resource = self.resources.iter().any(|r| like(r, &request.resource));
        let keys = match (&self.leading_keys, &request.keys) {
            (None, _) => true,
            (Some(patterns), Some(keys)) => keys
                .iter()
                .all(|key| patterns.iter().any(|pattern| like(pattern, key))),
            (Some(_), None) => false,
        };
        action && resource && keys
    }
}

fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// The statements of a function's role: its own `Role`'s inline policies, or its SAM
/// `Policies` (inline statements only), `Fn::If` branches resolved.
fn statements_of(stack: &Stack, function: &str) -> Vec<Statement> {
    let properties = &stack.resource(function)["Properties"];
    let documents: Vec<Value> = match properties.get("Role") {
        Some(role) => {
            let role = role["Fn::GetAtt"][0].as_str().unwrap();
            list(&stack.resource(role)["Properties"]["Policies"])
                .iter()
                .map(|policy| policy["PolicyDocument"].clone())
                .collect()
        }
        None => list(&properties["Policies"]),
    };
    let mut statements = Vec::new();
    for document in documents {
        assert!(
            document.get("Statement").is_some(),
            "{function}: a policy this test cannot read: {document}"
        );
        for statement in list(&document["Statement"]) {
            let statement = match statement.get("Fn::If").and_then(Value::as_array) {
                Some(branches) => {
                    let chosen = if stack.condition(branches[0].as_str().unwrap()) {
                        &branches[1]
                    } else {
                        &branches[2]
                    };
                    if chosen == &json!({ "Ref": "AWS::NoValue" }) {
                        continue;
                    }
                    chosen.clone()
                }
                None => statement,
            };
            assert_eq!(statement["Effect"], "Allow", "{function}: {statement}");
            let leading_keys = match &statement["Condition"] {
                Value::Null => None,
                condition => {
                    let patterns = &condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                    assert_eq!(
                        condition,
                        &json!({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": patterns } }),
                        "{function}: the only condition this test evaluates"
                    );
                    Some(list(patterns).iter().map(|p| stack.resolve(p)).collect())
                }
            };
            statements.push(Statement {
                actions: list(&statement["Action"])
                    .iter()
                    .map(|a| stack.resolve(a))
                    .collect(),
                resources: list(&statement["Resource"])
                    .iter()
                    .map(|r| stack.resolve(r))
                    .collect(),
                leading_keys,
            });
        }
    }
    statements
}

/// What every function of the template is and called, by logical id, and the stack it ran on.
struct Recorded {
    stack: Stack,
    calls: BTreeMap<String, (Kind, Vec<AwsCall>)>,
}

static RECORDED: LazyLock<Recorded> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(record())
});

/// Invokes a webhook function with `event`, checks the answer's status, and returns its body.
async fn deliver(function: &Function, event: Value, status: u16, what: &str) -> Value {
    let answer = function.invoke(event).await;
    assert_eq!(answer["statusCode"], status, "{what}: {answer}");
    serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
}

/// A webhook function's paths, with its provider's kit.
async fn run_webhook(function: &Function, kit: &Kit, recorder: &Recorder) {
    let tenants = kit.tenants(tests::NO_API);
    let tenant = tenants.iter().next().unwrap();
    let secret = tenant.webhook_secrets[0].expose();
    let unique = |seq: &str| apigw_event(&kit.unique_with(seq, tenant, secret));
    let (name, accepted) = (kit.name(), kit.accepted_status());
    // Long enough that the body is kept in an item of its own.
    let (large, spilled) = ("9".repeat(1200), "8".repeat(1200));
    deliver(function, unique("1"), accepted, name).await;
    deliver(function, unique("1"), 200, name).await;
    deliver(function, unique(&large), accepted, name).await;
    let read = |path: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(root().join("events").join(path)).unwrap())
            .unwrap()
    };
    let manifest = read("manifest.json");
    let quarantined = manifest
        .as_object()
        .unwrap()
        .iter()
        .find(|(file, entry)| file.starts_with(&format!("{name}/")) && entry["quarantined"] == true)
        .map(|(file, _)| file.as_str())
        .unwrap_or_else(|| panic!("events/manifest.json: no quarantined event of {name}"));
    deliver(function, read(quarantined), accepted, quarantined).await;
    for case in kit
        .cases()
        .iter()
        .filter(|c| c.process == Some(Expect::Erase))
    {
        let event = apigw_event(&kit.request(case));
        deliver(function, event, kit.status(case), &case.name).await;
    }

    // A large body is written with its record in one transaction.
    recorder.fail("DynamoDB_20120810.PutItem");
    recorder.fail("DynamoDB_20120810.TransactWriteItems");
    let body = deliver(function, unique(&spilled), accepted, name).await;
    recorder.restore();
    assert!(
        body == json!({}) || body["stored"] == false,
        "{name}: {body}"
    );

    recorder.fail("AmazonSQS.SendMessage");
    let body = deliver(function, unique("2"), accepted, name).await;
    recorder.restore();
    assert!(
        body == json!({}) || body["queued"] == false,
        "{name}: {body}"
    );
}

/// The sweeper's paths: the send fails (the lease is released), then succeeds.
async fn run_sweeper(function: &Function, recorder: &Recorder, unsent: usize) {
    recorder.fail("AmazonSQS.SendMessage");
    let report = function.invoke(json!({})).await;
    recorder.restore();
    let stuck = json!({ "stuck": 0, "requeued": 0 });
    let with_stuck = |mut report: Value| {
        report
            .as_object_mut()
            .unwrap()
            .extend(stuck.as_object().unwrap().clone());
        report
    };
    assert_eq!(
        report,
        with_stuck(json!({ "enqueued": 0, "failed": unsent }))
    );
    let report = function.invoke(json!({})).await;
    assert_eq!(
        report,
        with_stuck(json!({ "enqueued": unsent, "failed": 0 }))
    );
}

/// Hands what is visible to the processor as the SQS event source does (outside the
/// function's role), deleting what it does not report failed. Messages received, failed.
async fn pump(processor: &Function, backend: &Backend) -> (usize, usize) {
    let received = backend
        .sqs
        .receive_message()
        .queue_url(&backend.queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(30)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    if received.is_empty() {
        return (0, 0);
    }
    let records: Vec<Value> = received
        .iter()
        .map(|message| {
            let count = message
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .cloned()
                .unwrap_or_else(|| "1".into());
            json!({
                "messageId": message.message_id(), "receiptHandle": message.receipt_handle(),
                "body": message.body(), "attributes": { "ApproximateReceiveCount": count },
                "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
            })
        })
        .collect();
    let answer = processor.invoke(json!({ "Records": records })).await;
    let failed: Vec<&str> = answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|failure| failure["itemIdentifier"].as_str().unwrap())
        .collect();
    for message in &received {
        if !failed.contains(&message.message_id().unwrap()) {
            backend
                .sqs
                .delete_message()
                .queue_url(&backend.queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    (received.len(), failed.len())
}

/// Pumps until `done(received, failed)` holds for a round, within `within`.
async fn pump_until(
    processor: &Function,
    backend: &Backend,
    within: Duration,
    mut done: impl FnMut(usize, usize) -> bool,
) {
    let started = Instant::now();
    loop {
        let (received, failed) = pump(processor, backend).await;
        if done(received, failed) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the queue did not get there within {within:?}"
        );
        if received == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The processor's paths, over what the webhook functions and the sweeper queued.
async fn run_processor(function: &Function, backend: &Backend, api: &FakeApi, recorder: &Recorder) {
    // Every fetch answered 429: a delayed copy of each message waits out the rate limit.
    api.set(
        "/",
        Behavior::TooManyRequests {
            retry_after: Some("1".into()),
        },
    );
    for _ in 0..10 {
        if pump(function, backend).await.0 == 0 {
            break;
        }
    }
    // Then 503: the copies come back and their retry is delayed.
    api.clear();
    api.set("/", Behavior::Status(503));
    pump_until(function, backend, Duration::from_secs(20), |_, failed| {
        failed > 0
    })
    .await;
    api.clear();
    let mut idle = Instant::now();
    pump_until(function, backend, Duration::from_secs(60), |received, _| {
        if received > 0 {
            idle = Instant::now();
        }
        idle.elapsed() > Duration::from_secs(3)
    })
    .await;
    // The second erasure pass comes 60 s later: its messages, as the processor sent them.
    let again: Vec<Value> = recorder
        .calls()
        .iter()
        .filter(|call| call.target == "AmazonSQS.SendMessage")
        .map(|call| call.request["MessageBody"].as_str().unwrap().to_string())
        .filter(|body| serde_json::from_str::<Value>(body).unwrap()["erase_again"] == true)
        .enumerate()
        .map(|(n, body)| {
            json!({
                "messageId": format!("second-pass-{n}"), "body": body,
                "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {},
                "eventSource": "aws:sqs",
            })
        })
        .collect();
    assert!(
        !again.is_empty(),
        "an erasure ran and queued its second pass"
    );
    let answer = function.invoke(json!({ "Records": again })).await;
    assert_eq!(answer["batchItemFailures"], json!([]));
}

/// What a function of the template is, from what invokes it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Behind the HTTP API, at `/webhooks/<provider>`.
    Webhook(String),
    /// On a schedule.
    Sweeper,
    /// On the work queue.
    Processor,
}

impl Kind {
    fn of(id: &str, resource: &Value) -> Kind {
        let events = resource["Properties"]["Events"].as_object();
        let event = events
            .and_then(|events| events.values().next())
            .unwrap_or_else(|| panic!("{id}: nothing invokes it"));
        match event["Type"].as_str().unwrap() {
            "HttpApi" => {
                let path = event["Properties"]["Path"].as_str().unwrap();
                Kind::Webhook(path.trim_start_matches("/webhooks/").to_string())
            }
            "ScheduleV2" => Kind::Sweeper,
            "SQS" => Kind::Processor,
            other => panic!("{id}: invoked by {other}, which this test does not drive"),
        }
    }
}

async fn record() -> Recorded {
    let template = tests::template();
    let backend = Backend::new().await;
    let aws = tests::local_aws().await;
    let api = FakeApi::start().await;
    let mut stack = Stack {
        template,
        refs: BTreeMap::new(),
        arns: BTreeMap::new(),
    };
    let table = backend.dynamodb.describe_table().table_name(&backend.table);
    let table_arn = table
        .send()
        .await
        .unwrap()
        .table
        .unwrap()
        .table_arn
        .unwrap();
    stack.stand_in("EventsTable", &backend.table, table_arn);
    let queue_arn = tests::queue_arn(&backend.sqs, &backend.queue_url).await;
    stack.stand_in("WorkQueue", &backend.queue_url, queue_arn);
    let bus = unique_name("bus");
    let events = aws_sdk_eventbridge::Client::new(&aws);
    let created = events.create_event_bus().name(&bus).send().await.unwrap();
    stack.stand_in("EventBus", &bus, created.event_bus_arn.unwrap());
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    for provider in webhook_core::providers::all() {
        // Split as deployed: what the webhook function verifies with, and the API access only
        // the processor reads.
        let mut tenants: Value =
            serde_json::from_str(&Kit::of(provider.as_ref()).tenants_json(&api.base_url)).unwrap();
        let access: Vec<Value> = tenants["tenants"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .filter_map(|tenant| {
                let api = tenant.as_object_mut().unwrap().remove("api")?;
                Some(json!({ "id": tenant["id"], "api": api }))
            })
            .collect();
        let function = tests::function_id(provider.name());
        for (kind, document) in [
            ("TenantsSecret", tenants),
            ("ApiSecret", json!({ "tenants": access })),
        ] {
            let id = function.replace("WebhookFunction", kind);
            let secret = secrets
                .create_secret()
                .name(unique_name(&id))
                .secret_string(document.to_string());
            let arn = secret.send().await.unwrap().arn.unwrap();
            stack.stand_in(&id, &arn.clone(), arn);
        }
    }

    let recorder = Recorder::start(tests::proxy::local_aws_address()).await;
    let mut functions: Vec<(Kind, String, Value)> =
        tests::resources_of_type(&stack.template, "AWS::Serverless::Function")
            .into_iter()
            .map(|(id, resource)| (Kind::of(id, resource), id.to_string(), resource.clone()))
            .collect();
    // Webhook functions first, then the sweeper, then the processor: each finds what the ones
    // before it left.
    functions.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut calls = BTreeMap::new();
    let mut webhooks = 0;
    for (kind, id, resource) in functions {
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap();
        let source =
            std::fs::read_to_string(root().join(format!("functions/lambda/src/bin/{binary}.rs")))
                .unwrap();
        let source: String = source.split_whitespace().collect();
        let (runs, main) = main_of(binary, &source);
        assert!(
            source.contains(&format!("lambda::start(lambda::{runs})")),
            "functions/lambda/src/bin/{binary}.rs runs {runs}"
        );
        let mut environment = stack.environment(&id);
        for (name, value) in &mut environment {
            match name.as_str() {
                // Through the proxy that writes the calls down.
                "AWS_ENDPOINT_URL" => *value = recorder.url.clone(),
                // Quiet: log and metric lines go to standard output, and call no AWS API.
                "RUST_LOG" => *value = "off".into(),
                "METRICS_NAMESPACE" => value.clear(),
                _ => {}
            }
        }
        // A failed fetch comes back after 1 s, 2 s … instead of 10 s, 20 s ….
        environment.push(("RETRY_BACKOFF_SECONDS".into(), "1".into()));
        let function = Function::start(&id, &environment, main).await;
        match &kind {
            Kind::Webhook(provider) => {
                let provider = webhook_core::providers::by_name(provider).unwrap();
                run_webhook(&function, &Kit::of(provider.as_ref()), &recorder).await;
                webhooks += 1;
            }
            Kind::Sweeper => run_sweeper(&function, &recorder, webhooks).await,
            Kind::Processor => run_processor(&function, &backend, &api, &recorder).await,
        }
        drop(function);
        calls.insert(id, (kind, recorder.take()));
    }
    Recorded { stack, calls }
}

rusty_fork_test! {
    // Each in a process of its own: the functions' real `main` reads the process's environment,
    // which the test sets.
    #[test]
    fn every_aws_call_of_every_function_is_allowed_by_its_own_statements() {
        let recorded = &*RECORDED;
        let mut refused = BTreeSet::new();
        for (function, (_, calls)) in &recorded.calls {
            let statements = statements_of(&recorded.stack, function);
            for request in calls
                .iter()
                .flat_map(|call| as_requests(call, &recorded.stack))
            {
                if !statements
                    .iter()
                    .any(|statement| statement.allows(&request))
                {
                    refused.insert(format!(
                        "{function}: {} on {} (keys {:?})",
                        request.action, request.resource, request.keys
                    ));
                }
            }
        }
        assert!(
            refused.is_empty(),
            "calls template.yaml does not allow:\n{}",
            refused.into_iter().collect::<Vec<_>>().join("\n")
        );
    }

    #[test]
    fn every_permission_a_function_is_granted_is_used_by_its_code() {
        let recorded = &*RECORDED;
        let mut unused = BTreeSet::new();
        for (function, (kind, calls)) in &recorded.calls {
            let requests: Vec<Request> = calls
                .iter()
                .flat_map(|call| as_requests(call, &recorded.stack))
                .collect();
            for statement in statements_of(&recorded.stack, function) {
                for action in &statement.actions {
                    if used_by_the_service(kind).contains(&action.as_str()) {
                        continue;
                    }
                    for resource in &statement.resources {
                        let single = Statement {
                            actions: vec![action.clone()],
                            resources: vec![resource.clone()],
                            leading_keys: statement.leading_keys.clone(),
                        };
                        if !requests.iter().any(|request| single.allows(request)) {
                            unused.insert(format!("{function}: {action} on {resource}"));
                        }
                    }
                }
            }
        }
        assert!(
            unused.is_empty(),
            "granted but never called:\n{}",
            unused.into_iter().collect::<Vec<_>>().join("\n")
        );
    }
}

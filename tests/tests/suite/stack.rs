//! The deployed stack as template.yaml declares it, read as data: every function's permissions
//! are scoped to what its code calls (a webhook function to its own provider's records, the
//! processor to its own queue, the sweeper without reads, writes of new records or events), every
//! function logs to a group of its own kept for `LogRetentionDays` and runs on `Architecture`,
//! the sweeper's schedule is named after the stack, and the alarms the README promises watch
//! the stack's own metric namespace.

use std::collections::BTreeSet;

use serde_json::{json, Value};

/// Every provider: the prefix of its resources' logical ids (`Magicline`) and its name.
fn providers() -> Vec<(String, String)> {
    webhook_core::providers::all()
        .iter()
        .map(|provider| {
            let name = provider.name().to_string();
            let prefix = tests::function_id(&name)
                .trim_end_matches("WebhookFunction")
                .to_string();
            (prefix, name)
        })
        .collect()
}

/// Single-item reads and writes: all a webhook function does with the table.
const ITEM_ACTIONS: [&str; 3] = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
];

/// Every function's logical id: one webhook function per provider, the sweeper, the processor.
fn functions() -> Vec<String> {
    let mut functions: Vec<String> = providers()
        .into_iter()
        .map(|(prefix, _)| format!("{prefix}WebhookFunction"))
        .collect();
    functions.extend([
        "SweeperFunction".to_string(),
        "ProcessorFunction".to_string(),
    ]);
    functions
}

fn template() -> Value {
    tests::template()
}

fn resources(t: &Value) -> &serde_json::Map<String, Value> {
    t["Resources"].as_object().expect("Resources")
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["Resources"]
        .get(name)
        .unwrap_or_else(|| panic!("resource {name} exists"))
}

fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

/// A value or a list of values, as a list.
fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn actions(statement: &Value) -> Vec<String> {
    list(&statement["Action"])
        .iter()
        .map(|a| a.as_str().expect("actions are plain strings").to_string())
        .collect()
}

/// A policy document's statements; a statement under `!If` counts with both of its branches.
fn statements(document: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    for statement in list(&document["Statement"]) {
        match statement.get("Fn::If") {
            Some(branches) => found.extend(
                branches.as_array().expect("!If [condition, then, else]")[1..]
                    .iter()
                    .filter(|branch| **branch != reference("AWS::NoValue"))
                    .cloned(),
            ),
            None => found.push(statement),
        }
    }
    found
}

/// Every statement of a role's inline policies.
fn role_statements(t: &Value, role: &str) -> Vec<Value> {
    list(&resource(t, role)["Properties"]["Policies"])
        .iter()
        .flat_map(|policy| statements(&policy["PolicyDocument"]))
        .collect()
}

/// Every statement a function's role holds but its logging and tracing: its own `Role`'s
/// inline policies, or the inline
/// statements of its SAM `Policies` (which may hold nothing else: no managed policy, no SAM
/// policy template, whose resources this test could not see).
fn function_statements(t: &Value, function: &str) -> Vec<Value> {
    let properties = &resource(t, function)["Properties"];
    if let Some(role) = properties.get("Role") {
        assert!(
            properties.get("Policies").is_none(),
            "{function}: Role and Policies"
        );
        let role_name = role["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{function}: Role is !GetAtt <a role of this stack>.Arn"));
        let role = resource(t, role_name);
        assert_eq!(role["Type"], "AWS::IAM::Role");
        assert!(
            role["Properties"].get("ManagedPolicyArns").is_none(),
            "{function}: no managed policies on its role"
        );
        // Its own log group only: checked in the log groups' test; its trace segments in the
        // tracing test.
        let bookkeeping = |a: &String| a.starts_with("logs:") || a.starts_with("xray:");
        return role_statements(t, role_name)
            .into_iter()
            .filter(|statement| !actions(statement).iter().all(bookkeeping))
            .collect();
    }
    list(&properties["Policies"])
        .iter()
        .flat_map(|policy| {
            assert!(
                policy.get("Statement").is_some(),
                "{function}: only inline statements in Policies, found {policy}"
            );
            statements(policy)
        })
        .collect()
}

/// The statements of `function` that allow an action of `service` (`dynamodb`, `sqs` …).
fn on_service(statements: &[Value], service: &str) -> Vec<Value> {
    statements
        .iter()
        .filter(|s| {
            actions(s)
                .iter()
                .any(|a| a.starts_with(&format!("{service}:")))
        })
        .cloned()
        .collect()
}

fn all_actions(statements: &[Value]) -> BTreeSet<String> {
    statements.iter().flat_map(actions).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_webhook_function_stores_only_its_own_providers_records() {
    let t = template();
    for (resource_prefix, provider) in providers() {
        let function = format!("{resource_prefix}WebhookFunction");
        let statements = function_statements(&t, &function);
        for statement in &statements {
            assert_eq!(statement["Effect"], "Allow", "{function}: {statement}");
        }

        let dynamodb = on_service(&statements, "dynamodb");
        assert!(!dynamodb.is_empty(), "{function} stores records");
        for statement in &dynamodb {
            assert_eq!(
                statement["Resource"],
                get_att("EventsTable", "Arn"),
                "{function}: the table only, no index"
            );
            assert!(
                set(&ITEM_ACTIONS).is_superset(&actions(statement).into_iter().collect()),
                "{function}: single-item reads and writes only: {statement}"
            );
            assert_eq!(
                statement["Condition"],
                json!({ "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [format!("{provider}#*")] } }),
                "{function}: only keys that start with {provider}#"
            );
        }
        assert_eq!(all_actions(&dynamodb), set(&ITEM_ACTIONS));

        let sqs = on_service(&statements, "sqs");
        for statement in &sqs {
            assert_eq!(
                statement["Resource"],
                get_att("WorkQueue", "Arn"),
                "{function}"
            );
        }
        assert!(all_actions(&sqs).contains("sqs:SendMessage"), "{function}");
        assert!(
            set(&["sqs:SendMessage", "sqs:GetQueueAttributes"]).is_superset(&all_actions(&sqs)),
            "{function}: sends, never receives or deletes"
        );

        let secrets = on_service(&statements, "secretsmanager");
        let own_secret = reference(&format!("{resource_prefix}TenantsSecret"));
        for statement in &secrets {
            assert_eq!(
                list(&statement["Resource"]),
                vec![own_secret.clone()],
                "{function}: its own tenants only"
            );
        }

        let services: BTreeSet<String> = all_actions(&statements)
            .iter()
            .map(|a| a.split(':').next().unwrap().to_string())
            .collect();
        assert_eq!(
            services,
            set(&["dynamodb", "secretsmanager", "sqs"]),
            "{function}"
        );
    }
}

#[test]
fn no_data_permission_is_on_every_resource() {
    let t = template();
    let mut documents: Vec<(String, Value)> = Vec::new();
    for (name, r) in resources(&t) {
        let properties = &r["Properties"];
        match r["Type"].as_str().unwrap() {
            "AWS::Serverless::Function" => {
                for statement in function_statements(&t, name) {
                    documents.push((name.clone(), statement));
                }
                let polls_a_queue = properties["Events"]
                    .as_object()
                    .into_iter()
                    .flat_map(|events| events.values())
                    .any(|event| event["Type"] == "SQS");
                // Without a role of its own, SAM gives an SQS-triggered function
                // AWSLambdaSQSQueueExecutionRole: receive and delete on every queue.
                assert!(
                    !polls_a_queue || properties.get("Role").is_some(),
                    "{name} polls SQS with a role SAM would widen"
                );
            }
            "AWS::IAM::Role" => {
                for policy in list(&properties["Policies"]) {
                    for statement in statements(&policy["PolicyDocument"]) {
                        documents.push((name.clone(), statement));
                    }
                }
            }
            "AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy" => {
                for statement in statements(&properties["PolicyDocument"]) {
                    documents.push((name.clone(), statement));
                }
            }
            _ => {}
        }
    }
    assert!(documents.len() > 20, "the template's statements were found");
    for (owner, statement) in documents {
        let data = actions(&statement).iter().any(|a| {
            a.starts_with("dynamodb:") || a.starts_with("sqs:") || a.starts_with("events:")
        });
        if !data {
            continue;
        }
        assert!(
            statement.get("NotResource").is_none() && statement.get("NotAction").is_none(),
            "{owner}: {statement}"
        );
        for resource in list(&statement["Resource"]) {
            let text = resource
                .as_str()
                .or_else(|| resource["Fn::Sub"].as_str())
                .unwrap_or("");
            assert!(
                !text.contains('*'),
                "{owner}: a wildcard resource in {statement}"
            );
            assert!(
                resource.is_object(),
                "{owner}: a resource of this stack, not a literal ARN: {statement}"
            );
        }
    }
}

#[test]
fn the_processor_receives_from_its_own_queue_and_publishes_to_its_own_bus() {
    let t = template();
    let statements = function_statements(&t, "ProcessorFunction");

    let sqs = on_service(&statements, "sqs");
    for statement in &sqs {
        assert_eq!(
            list(&statement["Resource"]),
            vec![get_att("WorkQueue", "Arn")],
            "the work queue only (never the dead-letter queue): {statement}"
        );
    }
    assert_eq!(
        all_actions(&sqs),
        set(&[
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
            "sqs:SendMessage",
        ])
    );

    let dynamodb = on_service(&statements, "dynamodb");
    for statement in &dynamodb {
        let resource = &statement["Resource"];
        if actions(statement) == ["dynamodb:Query"] {
            assert_eq!(
                resource,
                &json!([
                    { "Fn::Sub": "${EventsTable.Arn}/index/by_subject" },
                    { "Fn::Sub": "${EventsTable.Arn}/index/by_attention" }
                ]),
                "the indexes an erasure reads"
            );
        } else {
            assert_eq!(resource, &get_att("EventsTable", "Arn"));
            let reads_and_writes = set(&ITEM_ACTIONS)
                .union(&set(&["dynamodb:BatchGetItem"]))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>();
            assert!(
                reads_and_writes.is_superset(&actions(statement).into_iter().collect()),
                "{statement}"
            );
        }
    }
    assert_eq!(
        all_actions(&dynamodb),
        set(&[
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query"
        ])
    );

    let events = on_service(&statements, "events");
    assert_eq!(events.len(), 1);
    assert_eq!(actions(&events[0]), ["events:PutEvents"]);
    assert_eq!(events[0]["Resource"], get_att("EventBus", "Arn"));

    let logs = on_service(&statements, "logs");
    for statement in &logs {
        assert_eq!(statement["Resource"], get_att("ProcessorLogGroup", "Arn"));
    }

    let secrets = on_service(&statements, "secretsmanager");
    let expected: BTreeSet<String> = providers()
        .iter()
        .flat_map(|(prefix, _)| {
            ["TenantsSecret", "ApiSecret"].map(|kind| format!("{prefix}{kind}"))
        })
        .map(|name| reference(&name).to_string())
        .collect();
    let granted: BTreeSet<String> = secrets
        .iter()
        .flat_map(|s| list(&s["Resource"]))
        .map(|r| r.to_string())
        .collect();
    assert_eq!(granted, expected);
}

#[test]
fn downstream_events_go_to_the_stacks_own_bus_when_enabled() {
    let t = template();
    let bus = resource(&t, "EventBus");
    assert_eq!(bus["Type"], "AWS::Events::EventBus");
    assert_eq!(
        bus["Properties"]["Name"],
        json!({ "Fn::Sub": "${AWS::StackName}-events" })
    );
    assert_eq!(t["Parameters"]["PublishProcessedEvents"]["Default"], "true");
    assert_eq!(
        t["Conditions"]["PublishEvents"],
        json!({ "Fn::Equals": [reference("PublishProcessedEvents"), "true"] })
    );
    assert_eq!(
        resource(&t, "ProcessorFunction")["Properties"]["Environment"]["Variables"]
            ["EVENT_BUS_NAME"],
        json!({ "Fn::If": ["PublishEvents", reference("EventBus"), ""] })
    );
    // The permission exists only when publishing is on.
    let role = &resource(&t, "ProcessorRole")["Properties"]["Policies"];
    let conditional = list(role)
        .iter()
        .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
        .filter_map(|s| s.get("Fn::If").cloned())
        .collect::<Vec<_>>();
    assert_eq!(conditional.len(), 1);
    assert_eq!(conditional[0][0], "PublishEvents");
    assert_eq!(conditional[0][1]["Action"], "events:PutEvents");
    assert_eq!(conditional[0][2], reference("AWS::NoValue"));
}

#[test]
fn the_sweeper_only_finds_takes_over_and_queues() {
    let t = template();
    let statements = function_statements(&t, "SweeperFunction");
    assert_eq!(
        all_actions(&statements),
        set(&[
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "sqs:SendMessage",
            "sqs:GetQueueAttributes",
        ]),
        "no PutItem, DeleteItem, GetItem, Scan or events"
    );
    for statement in &statements {
        let expected = match actions(statement).as_slice() {
            [query] if query == "dynamodb:Query" => json!([
                { "Fn::Sub": "${EventsTable.Arn}/index/pending_by_lease" },
                { "Fn::Sub": "${EventsTable.Arn}/index/by_attention" },
            ]),
            [update] if update == "dynamodb:UpdateItem" => {
                let keys =
                    &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                let providers: Vec<String> = webhook_core::providers::all()
                    .iter()
                    .map(|p| format!("{}#*", p.name()))
                    .collect();
                assert_eq!(keys, &json!(providers), "records of every provider only");
                get_att("EventsTable", "Arn")
            }
            _ => get_att("WorkQueue", "Arn"),
        };
        assert_eq!(statement["Resource"], expected, "{statement}");
    }
}

#[test]
fn the_api_writes_an_access_log_without_headers_or_bodies() {
    let t = template();
    let settings = &resource(&t, "WebhookApi")["Properties"]["AccessLogSettings"];
    assert_eq!(
        settings["DestinationArn"],
        get_att("ApiAccessLogGroup", "Arn")
    );
    let group = &resource(&t, "ApiAccessLogGroup")["Properties"];
    assert_eq!(group["RetentionInDays"], reference("LogRetentionDays"));
    let format = settings["Format"].as_str().unwrap();
    let line: Value = serde_json::from_str(format).expect("one JSON line per request");
    for field in ["requestId", "ip", "route", "status", "latencyMs", "error"] {
        assert!(line.get(field).is_some(), "{field}");
    }
    for secret in ["header", "$input", "authorizer", "requestOverride", "body"] {
        assert!(!format.contains(secret), "{secret} in {format}");
    }
}

#[test]
fn the_sweepers_schedule_is_named_after_the_stack() {
    let t = template();
    let events = resource(&t, "SweeperFunction")["Properties"]["Events"]
        .as_object()
        .unwrap();
    let schedules: Vec<&Value> = events
        .values()
        .filter(|e| e["Type"] == "ScheduleV2")
        .collect();
    assert_eq!(schedules.len(), 1);
    let name = schedules[0]["Properties"]["Name"]["Fn::Sub"]
        .as_str()
        .expect("Name: !Sub \"…${AWS::StackName}…\"");
    assert!(name.contains("${AWS::StackName}"), "{name}");
    // Schedule names take 64 characters: the suffix leaves room for the stack's name.
    assert!(name.replace("${AWS::StackName}", "").len() <= 10, "{name}");
}

#[test]
fn every_function_logs_to_a_group_of_its_own_kept_for_the_retention_parameter() {
    let t = template();
    let retention = &t["Parameters"]["LogRetentionDays"];
    assert_eq!(retention["Default"], 30);
    let mut groups = BTreeSet::new();
    for function in functions() {
        let group_name = resource(&t, &function)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{function}: LoggingConfig.LogGroup is !Ref <a log group>"))
            .to_string();
        let group = resource(&t, &group_name);
        assert_eq!(group["Type"], "AWS::Logs::LogGroup", "{function}");
        // A role of its own: SAM's basic execution policy would allow every log group.
        let properties = &resource(&t, &function)["Properties"];
        assert!(properties.get("Policies").is_none(), "{function}");
        let role = properties["Role"]["Fn::GetAtt"][0].as_str().unwrap();
        let granted: Vec<Value> = list(&resource(&t, role)["Properties"]["Policies"])
            .iter()
            .flat_map(|policy| statements(&policy["PolicyDocument"]))
            .filter(|statement| actions(statement).iter().any(|a| a.starts_with("logs:")))
            .collect();
        assert_eq!(granted.len(), 1, "{function}");
        assert_eq!(
            actions(&granted[0]),
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            "{function}"
        );
        assert_eq!(
            granted[0]["Resource"],
            get_att(&group_name, "Arn"),
            "{function}: its own group only"
        );
        assert_eq!(
            group["Properties"]["RetentionInDays"],
            reference("LogRetentionDays"),
            "{function}"
        );
        let path = group["Properties"]["LogGroupName"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{group_name}: LogGroupName is a !Sub"));
        assert!(
            path.starts_with("/aws/lambda/${AWS::StackName}/"),
            "{group_name}: {path}"
        );
        assert!(groups.insert(group_name), "{function} shares a log group");
    }
    let all_groups = resources(&t)
        .values()
        .filter(|r| r["Type"] == "AWS::Logs::LogGroup")
        .count();
    assert_eq!(
        all_groups,
        functions().len() + 1,
        "and the API's access log"
    );
}

#[test]
fn every_function_runs_on_the_architecture_parameter() {
    let t = template();
    let parameter = &t["Parameters"]["Architecture"];
    assert_eq!(parameter["Default"], "arm64");
    assert_eq!(parameter["AllowedValues"], json!(["arm64", "x86_64"]));
    assert_eq!(
        t["Globals"]["Function"]["Architectures"],
        json!([reference("Architecture")])
    );
    let functions: Vec<&String> = resources(&t)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(functions.len(), self::functions().len());
    for name in functions {
        let properties = &resource(&t, name)["Properties"];
        assert!(
            properties.get("Architectures").is_none(),
            "{name} overrides Architectures"
        );
        assert_eq!(
            resource(&t, name)["Metadata"]["BuildMethod"],
            "rust-cargolambda",
            "{name}"
        );
    }
}

#[test]
fn the_api_throttles_every_route() {
    let t = template();
    let settings = &resource(&t, "WebhookApi")["Properties"]["DefaultRouteSettings"];
    assert_eq!(
        settings["ThrottlingRateLimit"],
        reference("ApiThrottlingRateLimit")
    );
    assert_eq!(
        settings["ThrottlingBurstLimit"],
        reference("ApiThrottlingBurstLimit")
    );
    assert_eq!(t["Parameters"]["ApiThrottlingRateLimit"]["Default"], 100);
    assert_eq!(t["Parameters"]["ApiThrottlingBurstLimit"]["Default"], 200);
}

/// One metric an alarm reads: namespace, name, dimensions (name → value), statistic.
#[derive(Debug, Clone)]
struct Watched {
    namespace: Value,
    name: String,
    dimensions: Vec<(String, Value)>,
    stat: String,
}

impl Watched {
    fn dimension(&self, name: &str) -> Option<&Value> {
        self.dimensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

fn dimensions(value: &Value) -> Vec<(String, Value)> {
    list(value)
        .iter()
        .map(|d| (d["Name"].as_str().unwrap().to_string(), d["Value"].clone()))
        .collect()
}

/// Every metric `alarm` reads, directly or in metric math.
fn watched(alarm: &Value) -> Vec<Watched> {
    let p = &alarm["Properties"];
    if let Some(name) = p["MetricName"].as_str() {
        return vec![Watched {
            namespace: p["Namespace"].clone(),
            name: name.to_string(),
            dimensions: dimensions(&p["Dimensions"]),
            stat: p["Statistic"].as_str().unwrap_or_default().to_string(),
        }];
    }
    list(&p["Metrics"])
        .iter()
        .filter_map(|m| m.get("MetricStat"))
        .map(|stat| Watched {
            namespace: stat["Metric"]["Namespace"].clone(),
            name: stat["Metric"]["MetricName"].as_str().unwrap().to_string(),
            dimensions: dimensions(&stat["Metric"]["Dimensions"]),
            stat: stat["Stat"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn alarms(t: &Value) -> Vec<(String, Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect()
}

/// The alarms with a metric that `matches`.
fn alarms_on(t: &Value, matches: impl Fn(&Watched) -> bool) -> Vec<String> {
    alarms(t)
        .into_iter()
        .filter(|(_, alarm)| watched(alarm).iter().any(&matches))
        .map(|(name, _)| name)
        .collect()
}

fn stack_namespace() -> Value {
    json!({ "Fn::Sub": "Webhooks/${AWS::StackName}" })
}

#[test]
fn every_alarm_tells_the_alarm_topic_and_ignores_missing_data() {
    let t = template();
    let alarms = alarms(&t);
    assert!(alarms.len() >= 8, "{} alarms", alarms.len());
    for (name, alarm) in alarms {
        let p = &alarm["Properties"];
        assert!(
            list(&p["AlarmActions"]).contains(&reference("AlarmTopic")),
            "{name} tells AlarmTopic"
        );
        // The one alarm on a count that stops coming when the sweeper stops running.
        let missing = if name == "SweeperNotRunningAlarm" {
            "breaching"
        } else {
            "notBreaching"
        };
        assert_eq!(p["TreatMissingData"], missing, "{name}");
        assert!(p["AlarmDescription"].is_string(), "{name} says what to do");
        // Metric math in alarms reads at most 10 metrics.
        assert!(list(&p["Metrics"]).len() <= 11, "{name}");
    }
}

#[test]
fn the_stacks_own_metrics_raise_the_alarms_the_readme_names() {
    let t = template();
    assert_eq!(
        t["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"],
        stack_namespace()
    );
    for (metric, outcome) in [
        ("Webhooks", "quarantined"),
        ("Webhooks", "spilled"),
        ("Processed", "failed"),
    ] {
        let found = alarms_on(&t, |w| {
            w.namespace == stack_namespace()
                && w.name == metric
                && w.stat == "Sum"
                && w.dimensions == [("Outcome".to_string(), json!(outcome))]
        });
        assert_eq!(found.len(), 1, "one alarm on {metric}{{Outcome={outcome}}}");
        let p = &resource(&t, &found[0])["Properties"];
        assert_eq!(p["Threshold"], 0, "{metric} {outcome}: any");
        assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold");
    }
    // Records unfinished a day later, counted by every run of the sweeper: above none, and
    // no count at all (a sweeper that stopped).
    let stuck = alarms_on(&t, |w| {
        w.namespace == stack_namespace()
            && w.name == "Swept"
            && w.dimension("Outcome") == Some(&json!("stuck"))
    });
    assert_eq!(stuck, ["StuckEventsAlarm", "SweeperNotRunningAlarm"]);
    let erasure = alarms_on(&t, |w| {
        w.name == "Processed" && w.dimension("Outcome") == Some(&json!("erasure_pass_failed"))
    });
    assert_eq!(erasure.len(), 1, "a failed second erasure pass");
    let refused = alarms_on(&t, |w| {
        w.name == "Published" && w.dimension("Publication") == Some(&json!("refused"))
    });
    assert_eq!(refused.len(), 1, "a publication refused for good");
    // A run of 401s: every provider's, beside what it accepted.
    let refused: BTreeSet<String> = alarms(&t)
        .iter()
        .filter(|(name, _)| name.starts_with("UnauthorizedRunAlarm"))
        .flat_map(|(_, alarm)| watched(alarm))
        .filter(|w| w.name == "Webhooks" && w.dimension("Outcome") == Some(&json!("unauthorized")))
        .filter_map(|w| {
            w.dimension("Provider")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let providers: BTreeSet<String> = webhook_core::providers::all()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(refused, providers, "a run of 401s on any provider");
    // The sweeper: its errors and the records it could not queue.
    let sweeper = alarms_on(&t, |w| {
        w.namespace == stack_namespace()
            && w.name == "Swept"
            && w.dimension("Outcome") == Some(&json!("failed"))
    });
    assert_eq!(sweeper.len(), 1);
    assert!(watched(resource(&t, &sweeper[0])).iter().any(|w| {
        w.name == "Errors" && w.dimension("FunctionName") == Some(&reference("SweeperFunction"))
    }));
}

#[test]
fn queues_functions_and_the_api_raise_alarms() {
    let t = template();
    let dead_letter = alarms_on(&t, |w| {
        w.namespace == "AWS/SQS"
            && w.name == "ApproximateNumberOfMessagesVisible"
            && w.dimension("QueueName") == Some(&get_att("DeadLetterQueue", "QueueName"))
    });
    assert_eq!(
        dead_letter.len(),
        2,
        "dead-letter queue not empty, and every new arrival"
    );
    let expressions: Vec<String> = dead_letter
        .iter()
        .flat_map(|name| list(&resource(&t, name)["Properties"]["Metrics"]))
        .filter_map(|m| m["Expression"].as_str().map(str::to_string))
        .collect();
    assert_eq!(expressions, ["DIFF(FILL(depth, 0))"]);
    let expiring = alarms_on(&t, |w| {
        w.namespace == "AWS/SQS"
            && w.name == "ApproximateAgeOfOldestMessage"
            && w.dimension("QueueName") == Some(&get_att("DeadLetterQueue", "QueueName"))
    });
    assert_eq!(expiring.len(), 1, "the oldest dead letter");
    let retention = &resource(&t, "DeadLetterQueue")["Properties"]["MessageRetentionPeriod"];
    let threshold = &resource(&t, &expiring[0])["Properties"]["Threshold"];
    assert!(
        threshold.as_i64().unwrap() < retention.as_i64().unwrap() - 86_400,
        "{threshold}: told a day or more before SQS deletes it"
    );

    let age = alarms_on(&t, |w| {
        w.namespace == "AWS/SQS"
            && w.name == "ApproximateAgeOfOldestMessage"
            && w.dimension("QueueName") == Some(&get_att("WorkQueue", "QueueName"))
    });
    assert_eq!(age.len(), 1, "oldest work-queue message");
    assert_eq!(
        resource(&t, &age[0])["Properties"]["Threshold"],
        reference("QueueAgeAlarmSeconds")
    );
    assert_eq!(t["Parameters"]["QueueAgeAlarmSeconds"]["Default"], 900);

    for metric in ["Errors", "Throttles"] {
        let covered: BTreeSet<String> = alarms(&t)
            .iter()
            .flat_map(|(_, alarm)| watched(alarm))
            .filter(|w| w.namespace == "AWS/Lambda" && w.name == metric && w.stat == "Sum")
            .filter_map(|w| w.dimension("FunctionName").cloned())
            .map(|f| f["Ref"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            covered,
            functions().into_iter().collect(),
            "{metric} of every function"
        );
    }

    let api = alarms_on(&t, |w| {
        w.namespace == "AWS/ApiGateway"
            && w.name == "5xx"
            && w.dimensions == [("ApiId".to_string(), reference("WebhookApi"))]
    });
    assert_eq!(api.len(), 1, "API 5xx");
}

#[test]
fn the_dashboard_shows_the_same_figures_and_its_url_is_an_output() {
    let t = template();
    let body = resource(&t, "Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody: !Sub");
    for figure in [
        r#"{\"Webhooks/${AWS::StackName}\",Outcome} MetricName=\"Webhooks\""#,
        r#"{\"Webhooks/${AWS::StackName}\",Provider} MetricName=\"AckLatency\"', 'p50'"#,
        r#"{\"Webhooks/${AWS::StackName}\",Provider} MetricName=\"AckLatency\"', 'p99'"#,
        r#"{\"Webhooks/${AWS::StackName}\",Outcome} MetricName=\"Processed\""#,
        r#"{\"Webhooks/${AWS::StackName}\",Provider} MetricName=\"FetchLatency\""#,
        r#""ApproximateNumberOfMessagesVisible", "QueueName", "${WorkQueue.QueueName}""#,
        r#""ApproximateAgeOfOldestMessage", "QueueName", "${WorkQueue.QueueName}""#,
        r#""ApproximateNumberOfMessagesVisible", "QueueName", "${DeadLetterQueue.QueueName}""#,
        r#""AWS/ApiGateway", "4xx", "ApiId", "${WebhookApi}""#,
        r#""AWS/ApiGateway", "5xx", "ApiId", "${WebhookApi}""#,
    ] {
        assert!(body.contains(figure), "the dashboard shows {figure}");
    }
    for function in functions() {
        for metric in ["Errors", "Throttles"] {
            let line = format!(r#""AWS/Lambda", "{metric}", "FunctionName", "${{{function}}}""#);
            assert!(body.contains(&line), "the dashboard shows {line}");
        }
    }
    // The body is JSON once CloudFormation has substituted it.
    let substituted = body
        .replace("${!", "$[")
        .replace("${QueueAgeAlarmSeconds}", "900");
    let mut plain = String::new();
    let mut rest = substituted.as_str();
    while let Some(start) = rest.find("${") {
        plain.push_str(&rest[..start]);
        plain.push('x');
        rest = &rest[start + rest[start..].find('}').unwrap() + 1..];
    }
    plain.push_str(rest);
    let parsed: Value = serde_json::from_str(&plain).expect("the dashboard body is JSON");
    assert!(parsed["widgets"].as_array().unwrap().len() >= 10);

    let url = t["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert!(url.contains("#dashboards:name=${Dashboard}"), "{url}");
}

#[test]
fn the_outputs_the_code_and_the_readme_rely_on_exist() {
    let t = template();
    let outputs = t["Outputs"].as_object().unwrap();
    let mut expected = vec![
        "EventsTableName".to_string(),
        "WorkQueueUrl".to_string(),
        "DeadLetterQueueUrl".to_string(),
        "DeadLetterQueueArn".to_string(),
        "AlarmTopicArn".to_string(),
        "DashboardUrl".to_string(),
        "EventBusName".to_string(),
        "EventBusArn".to_string(),
    ];
    for (prefix, _) in providers() {
        expected.push(format!("{prefix}WebhookUrl"));
        expected.push(format!("{prefix}TenantsSecretArn"));
    }
    for name in expected {
        assert!(outputs.contains_key(&name), "output {name}");
    }
}

/// X-Ray active tracing on every function, and each function's own role lets it send its
/// segments (SAM adds no permission to a role the template gives).
#[test]
fn every_function_is_traced_and_may_send_its_traces() {
    let t = template();
    assert_eq!(t["Globals"]["Function"]["Tracing"], "Active");
    for function in functions() {
        let role = resource(&t, &function)["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap()
            .to_string();
        let actions = all_actions(&role_statements(&t, &role));
        assert!(
            actions.contains("xray:PutTraceSegments")
                && actions.contains("xray:PutTelemetryRecords"),
            "{function}: {actions:?}"
        );
    }
}

/// The first sighting of a provider's contract changing, counted without dimensions, raises
/// one alarm.
#[test]
fn a_contract_change_raises_an_alarm() {
    let t = template();
    let found = alarms_on(&t, |w| {
        w.namespace == stack_namespace()
            && w.name == "ContractChanged"
            && w.stat == "Sum"
            && w.dimensions.is_empty()
    });
    assert_eq!(found, ["ContractChangedAlarm"]);
}

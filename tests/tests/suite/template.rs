//! template.yaml against what the code and the sample files assume: the events table that the
//! tests and tools create (`adapter_aws::create_table`) is the one the stack declares (keys,
//! attribute definitions, indexes), and events/env.json sets only variables the template
//! declares for each function, since `sam local --env-vars` ignores any other, and every
//! declared variable that names a resource, since `sam local` makes of `!Ref` the logical id.
//! The optional custom domain gives every webhook URL output its name. The template is read by
//! scripts/cfn.py (PyYAML with CloudFormation's tags).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use tests::{demo_env, local_aws, resources_of_type, template, unique_name};

/// (attribute name, type or key type) pairs, in order.
type Pairs = Vec<(String, String)>;

/// An index: name, key schema, projection type, non-key attributes.
type Index = (String, Pairs, String, Vec<String>);

/// A table's keys and indexes in one comparable shape: attribute definitions as a set, key
/// schemas in order, indexes by name with their projection (non-key attributes as a set).
fn table_shape(
    attributes: &[(String, String)],
    key: Pairs,
    indexes: Vec<Index>,
    billing: &str,
) -> Value {
    let attributes: BTreeSet<_> = attributes.iter().cloned().collect();
    let indexes: BTreeMap<_, _> = indexes
        .into_iter()
        .map(|(name, key, projection, non_key)| {
            let non_key: BTreeSet<_> = non_key.into_iter().collect();
            (
                name,
                json!({ "key": key, "projection": projection, "non_key_attributes": non_key }),
            )
        })
        .collect();
    json!({
        "attribute_definitions": attributes,
        "key_schema": key,
        "global_secondary_indexes": indexes,
        "billing_mode": billing,
    })
}

fn pairs(list: &Value, name: &str, kind: &str) -> Pairs {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    (
                        item[name].as_str().unwrap_or_default().to_string(),
                        item[kind].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn template_table_shape(properties: &Value) -> Value {
    assert!(
        properties.get("LocalSecondaryIndexes").is_none(),
        "the EventsTable declares local secondary indexes; compare them here too"
    );
    let indexes = properties["GlobalSecondaryIndexes"]
        .as_array()
        .map(|indexes| {
            indexes
                .iter()
                .map(|index| {
                    let projection = &index["Projection"];
                    let non_key = projection["NonKeyAttributes"]
                        .as_array()
                        .map(|names| {
                            names
                                .iter()
                                .map(|n| n.as_str().unwrap().to_string())
                                .collect()
                        })
                        .unwrap_or_default();
                    (
                        index["IndexName"].as_str().unwrap().to_string(),
                        pairs(&index["KeySchema"], "AttributeName", "KeyType"),
                        projection["ProjectionType"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        non_key,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    table_shape(
        &pairs(
            &properties["AttributeDefinitions"],
            "AttributeName",
            "AttributeType",
        ),
        pairs(&properties["KeySchema"], "AttributeName", "KeyType"),
        indexes,
        properties["BillingMode"].as_str().unwrap_or("PROVISIONED"),
    )
}

async fn created_table_shape() -> Value {
    let client = aws_sdk_dynamodb::Client::new(&local_aws().await);
    let name = unique_name("template-table");
    adapter_aws::create_table(&client, &name)
        .await
        .expect("create_table");
    let table = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe_table")
        .table
        .expect("a table description");
    client.delete_table().table_name(&name).send().await.ok();
    assert!(
        table.local_secondary_indexes().is_empty(),
        "create_table makes local secondary indexes; compare them here too"
    );
    let key = |elements: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Pairs {
        elements
            .iter()
            .map(|e| {
                (
                    e.attribute_name().to_string(),
                    e.key_type().as_str().to_string(),
                )
            })
            .collect()
    };
    let attributes: Pairs = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_string(),
                a.attribute_type().as_str().to_string(),
            )
        })
        .collect();
    let indexes = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let projection = index.projection();
            (
                index.index_name().unwrap_or_default().to_string(),
                key(index.key_schema()),
                projection
                    .and_then(|p| p.projection_type())
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                projection
                    .map(|p| p.non_key_attributes().to_vec())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let billing = table
        .billing_mode_summary()
        .and_then(|summary| summary.billing_mode())
        .map(|mode| mode.as_str().to_string())
        .unwrap_or_else(|| "PROVISIONED".to_string());
    table_shape(&attributes, key(table.key_schema()), indexes, &billing)
}

#[tokio::test]
async fn the_table_the_code_creates_is_the_table_the_template_declares() {
    let template = template();
    let tables = resources_of_type(&template, "AWS::DynamoDB::Table");
    assert_eq!(
        tables.len(),
        1,
        "one DynamoDB table in template.yaml, found {:?}",
        tables.keys()
    );
    let (name, table) = tables.into_iter().next().unwrap();
    let declared = template_table_shape(&table["Properties"]);
    let created = created_table_shape().await;
    for shape in [&declared, &created] {
        assert!(
            shape["key_schema"]
                .as_array()
                .is_some_and(|k| !k.is_empty())
                && shape["attribute_definitions"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty()),
            "a table without keys: {shape}"
        );
    }
    assert_eq!(
        declared["global_secondary_indexes"]
            .as_object()
            .map(Map::len),
        table["Properties"]["GlobalSecondaryIndexes"]
            .as_array()
            .map(Vec::len)
            .or(Some(0)),
        "every declared index has a name"
    );
    for part in [
        "attribute_definitions",
        "key_schema",
        "global_secondary_indexes",
        "billing_mode",
    ] {
        assert_eq!(
            created[part], declared[part],
            "{part}: adapter_aws::create_table (left) differs from template.yaml's {name} (right)"
        );
    }
}

/// The variables template.yaml declares for a function: Globals, then its own.
fn declared_variables(template: &Value, function: &str) -> Map<String, Value> {
    let mut declared = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(own) =
        template["Resources"][function]["Properties"]["Environment"]["Variables"].as_object()
    {
        declared.extend(own.clone());
    }
    declared
}

fn functions(template: &Value) -> Vec<String> {
    resources_of_type(template, "AWS::Serverless::Function")
        .into_keys()
        .map(String::from)
        .collect()
}

#[test]
fn env_json_sets_only_variables_the_template_declares() {
    let template = template();
    let env = demo_env();
    let functions = functions(&template);
    let mut undeclared = Vec::new();
    for (key, variables) in env.as_object().expect("events/env.json is an object") {
        // `Parameters` applies to every function.
        let targets: Vec<&String> = if key == "Parameters" {
            functions.iter().collect()
        } else {
            assert!(
                functions.contains(key),
                "events/env.json names {key}, which is no function of template.yaml"
            );
            vec![key]
        };
        for function in targets {
            let declared = declared_variables(&template, function);
            for name in variables.as_object().expect("variables").keys() {
                if !declared.contains_key(name) {
                    undeclared.push(format!("{function}: {name}"));
                }
            }
        }
    }
    assert!(
        undeclared.is_empty(),
        "events/env.json sets variables template.yaml does not declare for the function, which \
         `sam local --env-vars` ignores (declare them, as `\"\"` if they have no value in AWS):\n{}",
        undeclared.join("\n")
    );
}

/// True if `value` names a resource: a `Ref` to one, a `Fn::GetAtt`, or `${Name}` in a `Fn::Sub`.
fn names_a_resource(value: &Value, resources: &Map<String, Value>) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| names_a_resource(item, resources)),
        Value::Object(fields) => {
            if let Some(Value::String(target)) = fields.get("Ref") {
                if resources.contains_key(target) {
                    return true;
                }
            }
            if fields.contains_key("Fn::GetAtt") {
                return true;
            }
            let sub = match fields.get("Fn::Sub") {
                Some(Value::String(text)) => Some(text.as_str()),
                Some(Value::Array(items)) => items.first().and_then(Value::as_str),
                _ => None,
            };
            if let Some(text) = sub {
                let named = text.split("${").skip(1).filter_map(|rest| {
                    let name = rest.split('}').next()?;
                    (!name.starts_with('!')).then(|| name.split('.').next().unwrap_or(name))
                });
                if named.into_iter().any(|name| resources.contains_key(name)) {
                    return true;
                }
            }
            fields
                .values()
                .any(|item| names_a_resource(item, resources))
        }
        _ => false,
    }
}

#[test]
fn env_json_points_every_function_at_the_local_endpoint_and_its_resources() {
    let template = template();
    let env = demo_env();
    let resources = template["Resources"].as_object().unwrap();
    let mut missing = Vec::new();
    for function in functions(&template) {
        let set = |name: &str| {
            env.get(&function)
                .and_then(|variables| variables.get(name))
                .or_else(|| env.get("Parameters").and_then(|v| v.get(name)))
                .is_some()
        };
        if !set("AWS_ENDPOINT_URL") {
            missing.push(format!("{function}: AWS_ENDPOINT_URL"));
        }
        for (name, value) in declared_variables(&template, &function) {
            if names_a_resource(&value, resources) && !set(&name) {
                missing.push(format!("{function}: {name} = {value}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "under `sam local` these would be a logical id or empty (run scripts/make_events.py, \
         which sets them to scripts/local-aws's resources):\n{}",
        missing.join("\n")
    );
}

/// With `DomainName` (and its certificate) every webhook URL output names the custom domain,
/// which is mapped to the HTTP API, so a re-created API keeps the URLs registered at the
/// providers; without, the domain's resources do not exist and the URLs are API Gateway's.
#[test]
fn a_custom_domain_gives_the_webhook_urls_a_name_of_their_own() {
    let template = tests::template();
    let condition = &template["Conditions"]["HasDomain"]["Fn::And"];
    let named =
        |parameter: &str| json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": parameter }, ""] }] });
    assert_eq!(
        condition,
        &json!([named("DomainName"), named("CertificateArn")])
    );
    for parameter in ["DomainName", "CertificateArn"] {
        assert_eq!(
            template["Parameters"][parameter]["Default"], "",
            "optional: {parameter}"
        );
    }
    let resources = &template["Resources"];
    let domain = &resources["WebhookDomain"];
    assert_eq!(domain["Condition"], "HasDomain");
    assert_eq!(
        domain["Properties"]["DomainName"],
        json!({ "Ref": "DomainName" })
    );
    assert_eq!(
        domain["Properties"]["DomainNameConfigurations"][0]["CertificateArn"],
        json!({ "Ref": "CertificateArn" })
    );
    let mapping = &resources["WebhookDomainMapping"];
    assert_eq!(mapping["Condition"], "HasDomain");
    assert_eq!(
        mapping["Properties"]["ApiId"],
        json!({ "Ref": "WebhookApi" })
    );
    assert_eq!(
        mapping["Properties"]["DomainName"],
        json!({ "Ref": "WebhookDomain" })
    );
    for provider in webhook_core::providers::all() {
        let name = provider.name();
        let output = format!(
            "{}WebhookUrl",
            tests::function_id(name).trim_end_matches("WebhookFunction")
        );
        let value = &template["Outputs"][&output]["Value"]["Fn::If"];
        assert_eq!(value[0], "HasDomain", "{output}");
        assert_eq!(
            value[1],
            json!({ "Fn::Sub": format!("https://${{DomainName}}/webhooks/{name}") }),
            "{output}"
        );
        let fallback = value[2]["Fn::Sub"].as_str().unwrap_or_default();
        assert!(
            fallback.contains("execute-api") && fallback.ends_with(&format!("/webhooks/{name}")),
            "{output}"
        );
    }
    assert_eq!(
        template["Outputs"]["CustomDomainTarget"]["Condition"],
        "HasDomain"
    );
}

//! A provider is the five edits CONTRIBUTING.md names, and the rest follows: each of them is
//! there for every provider (the providers of `providers::all()` and of the test kits alike),
//! and a sixth provider's kit in a copy of the project gives a template with every part of it,
//! which cfn-lint takes.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use tests::{python, resources_of_type, root, template_at, unique_name};

/// The files CONTRIBUTING.md's "Adding a provider" lists, `<name>` as written there.
fn the_five_edits() -> Vec<String> {
    let guide = std::fs::read_to_string(root().join("CONTRIBUTING.md")).unwrap();
    let section = guide
        .split("### Adding a provider")
        .nth(1)
        .expect("CONTRIBUTING.md: ### Adding a provider");
    let edits: Vec<String> = section
        .lines()
        .filter_map(|line| {
            let (number, rest) = line.split_once(". `")?;
            number.parse::<u32>().ok()?;
            Some(rest.split('`').next()?.to_string())
        })
        .collect();
    assert_eq!(edits.len(), 5, "{edits:?}");
    edits
}

fn kit_names() -> BTreeSet<String> {
    std::fs::read_dir(root().join("shared/testkit/data"))
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect()
}

#[test]
fn every_provider_is_made_of_the_five_edits() {
    let providers: BTreeSet<String> = webhook_core::providers::all()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(
        providers,
        kit_names(),
        "providers::all() and shared/testkit/data/ name the same providers"
    );
    for name in &providers {
        for edit in the_five_edits() {
            // A file of its own exists; a shared file names it.
            let path = root().join(edit.replace("<name>", name));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", path.display()));
            if !edit.contains("<name>") {
                assert!(
                    text.contains(name.as_str()),
                    "{name}: {edit} does not name it"
                );
            }
        }
    }
}

#[test]
fn a_sixth_providers_kit_gives_the_template_all_its_parts() {
    let copy = std::env::temp_dir().join(unique_name("sixth-provider"));
    let kits = copy.join("shared/testkit/data");
    std::fs::create_dir_all(&kits).unwrap();
    std::fs::copy(root().join("template.yaml"), copy.join("template.yaml")).unwrap();
    for name in kit_names() {
        let file = format!("{name}.json");
        std::fs::copy(
            root().join("shared/testkit/data").join(&file),
            kits.join(file),
        )
        .unwrap();
    }
    let mut sixth: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("shared/testkit/data/egym.json")).unwrap(),
    )
    .unwrap();
    sixth["order"] = 6.into();
    sixth["template"] = serde_json::json!({
        "title": "Sixth",
        "tenant_example": r#"{"id": "<club>", "webhook_secrets": ["<secret>"]}"#,
        "auth": "a header secret per club",
        "register": "Register this URL at Sixth."
    });
    std::fs::write(kits.join("sixth.json"), sixth.to_string()).unwrap();

    run(Command::new(python())
        .arg(root().join("scripts/make_template.py"))
        .arg("--root")
        .arg(&copy));
    let template = template_at(&copy.join("template.yaml"));
    let resources = &template["Resources"];

    let function = &resources["SixthWebhookFunction"];
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"],
        "sixth-webhook"
    );
    assert_eq!(
        function["Properties"]["Events"]["Webhook"]["Properties"]["Path"],
        "/webhooks/sixth"
    );
    for id in [
        "SixthTenantsSecret",
        "SixthApiSecret",
        "SixthWebhookLogGroup",
        "SixthWebhookRole",
    ] {
        assert!(resources[id].is_object(), "{id}");
    }
    let text = |value: &Value| value.to_string();
    assert!(
        text(&resources["SweeperRole"]).contains("sixth#*"),
        "the sweeper may update its records"
    );
    let processor = text(&resources["ProcessorRole"]);
    assert!(processor.contains("SixthTenantsSecret") && processor.contains("SixthApiSecret"));
    let variables = &resources["ProcessorFunction"]["Properties"]["Environment"]["Variables"];
    assert!(
        variables["SIXTH_TENANTS_SECRET_ID"].is_object(),
        "{variables}"
    );
    assert!(variables["SIXTH_API_SECRET_ID"].is_object(), "{variables}");
    // Two metrics a provider: the sixth's alarm is a second one, and no alarm takes over 10.
    assert!(text(&resources["UnauthorizedRunAlarm2"]).contains("\"sixth\""));
    for (id, alarm) in resources_of_type(&template, "AWS::CloudWatch::Alarm") {
        let metrics = alarm["Properties"]["Metrics"].as_array().map_or(0, |m| {
            m.iter().filter(|q| q.get("MetricStat").is_some()).count()
        });
        assert!(metrics <= 10, "{id}: {metrics} metrics");
    }
    assert!(text(&resources["FunctionErrorsAlarm"]).contains("SixthWebhookFunction"));
    assert!(text(&resources["FunctionThrottlesAlarm"]).contains("SixthWebhookFunction"));
    let dashboard = text(&resources["Dashboard"]);
    assert!(dashboard.contains("SixthWebhookFunction"));
    assert!(
        dashboard.contains("UnauthorizedRunAlarm2.Arn"),
        "its alarm on the dashboard"
    );
    for output in [
        "SixthWebhookUrl",
        "SixthTenantsSecretArn",
        "SixthApiSecretArn",
    ] {
        assert!(template["Outputs"][output].is_object(), "{output}");
    }

    let venv_lint = python().with_file_name("cfn-lint");
    let lint = if venv_lint.exists() {
        venv_lint
    } else {
        "cfn-lint".into()
    };
    run(Command::new(lint).arg(copy.join("template.yaml")));
    std::fs::remove_dir_all(&copy).unwrap();
}

fn run(command: &mut Command) {
    let output = command
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

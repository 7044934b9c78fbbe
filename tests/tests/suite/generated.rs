//! The generated files (events/, devserver.toml, the event table of events/README.md, tests/hostile/) are
//! what the test kits' data says: `scripts/make_events.py --check` and `scripts/make_hostile.py
//! --check` name every file that drifted.

use std::process::Command;

use tests::{python, root};

fn check(script: &str) {
    let output = Command::new(python())
        .arg(root().join("scripts").join(script))
        .arg("--check")
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{script}: cannot run {:?}: {e}", python()));
    assert!(
        output.status.success(),
        "{script} --check: generated files differ from the kit data; run scripts/{script}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn events_devserver_toml_and_the_readme_table_are_what_the_kits_say() {
    check("make_events.py");
}

#[test]
fn the_hostile_corpus_is_what_the_kits_say() {
    check("make_hostile.py");
}

#[test]
fn the_templates_per_provider_parts_are_what_the_kits_say() {
    check("make_template.py");
}

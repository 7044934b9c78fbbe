//! Embeds every `data/<provider>.json` as a (name, text) table, so that a provider's kit is
//! found by its name and no code lists the providers.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let data = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("data");
    println!("cargo:rerun-if-changed={}", data.display());
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .expect("shared/testkit/data")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut table = String::from("pub static DATA: &[(&str, &str)] = &[\n");
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_stem().unwrap().to_str().unwrap();
        writeln!(
            table,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    table.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("data.rs");
    std::fs::write(out, table).unwrap();
}

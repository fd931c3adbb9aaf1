//! Records the versions of the measured libraries, as locked, for the machine line.

fn main() {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    for name in ["popen", "subprocess", "duct"] {
        let needle = format!("name = \"{name}\"\nversion = \"");
        let version = text
            .find(&needle)
            .map(|i| &text[i + needle.len()..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        println!(
            "cargo:rustc-env=BENCH_VERSION_{}={version}",
            name.to_uppercase()
        );
    }
}

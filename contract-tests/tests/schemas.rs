//! The event schemas in `shared-events/schemas/` against their last committed version: a change
//! a consumer reading the committed version would not survive fails, naming event and field.
//!
//! The baseline is `HEAD` (or the revision in `SCHEMA_BASELINE`, e.g. `main` on a branch), so
//! this catches an incompatible change before it is committed; in a clean checkout (CI) the
//! baseline equals the working tree and the proof of the rules is their own unit tests
//! (`contract_tests::schema_compat`). Without git or a commit (a source tarball) the check is
//! skipped with the reason printed.

use std::path::{Path, PathBuf};
use std::process::Command;

use contract_tests::schema_compat::incompatibilities;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .current_dir(workspace())
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn event_schemas_stay_compatible_with_the_last_commit() {
    let baseline = std::env::var("SCHEMA_BASELINE").unwrap_or_else(|_| "HEAD".to_owned());
    let Some(committed) = git(&[
        "ls-tree",
        "--name-only",
        &baseline,
        "shared-events/schemas/",
    ]) else {
        println!("skipped: no git history to compare with (no git, or no {baseline})");
        return;
    };
    let schemas = workspace().join("shared-events/schemas");
    let mut problems = Vec::new();
    let mut compared = 0;
    for path in committed.lines().filter(|p| p.ends_with(".json")) {
        let name = Path::new(path).file_stem().unwrap().to_string_lossy();
        let old: serde_json::Value = serde_json::from_str(
            &git(&["show", &format!("{baseline}:{path}")]).expect("a listed file can be shown"),
        )
        .expect("a committed schema is JSON");
        let Ok(current) = std::fs::read_to_string(schemas.join(format!("{name}.json"))) else {
            problems.push(format!("{name}: removed"));
            continue;
        };
        let new: serde_json::Value = serde_json::from_str(&current).expect("a schema is JSON");
        problems.extend(incompatibilities(&name, &old, &new));
        compared += 1;
    }
    assert!(
        compared > 0 || !problems.is_empty(),
        "no schemas at {baseline}"
    );
    assert!(
        problems.is_empty(),
        "event schemas changed incompatibly since {baseline} (add a new event type instead; \
         contract-tests/README.md):\n  {}",
        problems.join("\n  ")
    );
}

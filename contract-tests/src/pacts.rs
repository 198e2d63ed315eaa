//! The committed pact files, `contract-tests/pacts/<consumer>-<provider>.json`. A consumer test
//! builds its pact and compares it with the committed file: a difference fails the test (the
//! contract changed without being committed), and `UPDATE_PACTS=1` writes the new one instead.
//! Provider verification always reads the committed file.

use std::path::{Path, PathBuf};

use pact_models::PactSpecification;
use pact_models::pact::Pact;

/// Where the pact files live.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pacts")
}

/// The committed pact between `consumer` and `provider`.
pub fn file(consumer: &str, provider: &str) -> PathBuf {
    dir().join(format!("{consumer}-{provider}.json"))
}

/// A scratch folder for what pact_consumer writes on its own (the mock server and the message
/// iterator write a pact when they finish): the committed files are written only here.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("fleet-contract-tests")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

/// The pact as committed: V4 JSON, pretty, with a trailing newline.
pub fn render(pact: &dyn Pact) -> String {
    let json = pact
        .to_json(PactSpecification::V4)
        .expect("a pact renders as V4 JSON");
    let mut text = serde_json::to_string_pretty(&json).expect("JSON renders");
    text.push('\n');
    text
}

/// Compares `pact` with the committed file; with `UPDATE_PACTS=1`, writes it instead.
pub fn check_committed(pact: &dyn Pact) {
    let path = file(&pact.consumer().name, &pact.provider().name);
    let rendered = render(pact);
    if std::env::var("UPDATE_PACTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(dir()).expect("create the pacts folder");
        std::fs::write(&path, &rendered).expect("write the pact");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{} differs from what the consumer test states: the contract changed. Review the \
         change, run the consumer tests with UPDATE_PACTS=1 and commit the pact with the change \
         (contract-tests/README.md).",
        path.display()
    );
}

/// Whether pact's usage metrics are off. pact_consumer and pact_verifier report runs to the Pact
/// foundation unless `PACT_DO_NOT_TRACK` is `true`; `.cargo/config.toml` sets it for every test,
/// and each test checks it, so the tests never call out.
pub fn assert_no_tracking() {
    assert_eq!(
        std::env::var("PACT_DO_NOT_TRACK").as_deref(),
        Ok("true"),
        "PACT_DO_NOT_TRACK must be true (set in .cargo/config.toml) so pact sends no metrics"
    );
}

//! Schemathesis against the gateway's merged OpenAPI document: requests generated from the
//! document, valid and not, sent with a real token, once as a customer and once as the manager
//! (each role reaches operations the other is refused at the gateway). Every answer must be no
//! 5xx, a status, content type and body the document describes, and, for every error, a problem
//! document (`gateway/tests/fuzz/hooks.py`). Bounded and seeded, so a run is short and repeatable;
//! nothing but the local fleet is contacted.
//!
//! schemathesis comes from `scripts/fuzz-tools.sh` (pinned in `scripts/fuzz-requirements.txt`),
//! found through `FLEET_SCHEMATHESIS`, which `scripts/test.sh` exports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::Fleet;

/// Test cases per operation and phase: enough to find the shapes the document does not
/// describe, few enough that both runs stay around a minute on a busy machine.
const MAX_EXAMPLES: u32 = 40;
/// The same requests on every run; change it to explore further.
const SEED: u64 = 20_240_601;
/// A run that takes longer than this is stopped and fails.
const RUN_LIMIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread")]
async fn fuzzing_the_gateways_api_finds_no_server_error_undocumented_answer_or_bare_error() {
    let schemathesis = schemathesis();
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let rented = fleet.book(&manager, 300).await;
    let spare = fleet.book(&manager, 200).await;
    let customer = fleet.sign_up().await;
    let rental = fleet.rent(&customer, &rented).await;
    let rental_id = rental["id"].as_str().unwrap().to_owned();
    let payments: Value = fleet
        .get(
            &format!("/api/v1/payments?rentalId={rental_id}"),
            &customer.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let payment_id = payments["items"][0]["id"].as_str().unwrap().to_owned();
    // Real resources for the ids in paths and queries, so that some requests get past "not
    // found" into the handlers (the rest are generated).
    let ids = [
        rented.as_str(),
        spare.as_str(),
        &rental_id,
        &payment_id,
        &customer.id.to_string(),
    ]
    .map(str::to_owned);

    let mut failed = Vec::new();
    for (who, token) in [("customer", &customer.token), ("manager", &manager)] {
        if let Err(summary) = run(&schemathesis, &fleet, who, token, &ids).await {
            failed.push(format!("as the {who}: {summary}"));
        }
    }
    assert!(
        failed.is_empty(),
        "schemathesis found failures (its output is above):\n{}",
        failed.join("\n")
    );
}

/// The schemathesis executable (openapi-spec-validator is beside it), or a failure that says
/// how to get it.
pub fn schemathesis() -> PathBuf {
    let path = std::env::var_os("FLEET_SCHEMATHESIS").map(PathBuf::from);
    match path {
        Some(path) if path.is_file() => path,
        Some(path) => panic!(
            "FLEET_SCHEMATHESIS={} is not a file: run `scripts/fuzz-tools.sh` again",
            path.display()
        ),
        None => panic!(
            "FLEET_SCHEMATHESIS is not set: install schemathesis with \
             `export FLEET_SCHEMATHESIS=\"$(scripts/fuzz-tools.sh)\"` (scripts/test.sh does it)"
        ),
    }
}

/// One bounded schemathesis run as `who`: Ok, or what it reported.
async fn run(
    schemathesis: &Path,
    fleet: &Fleet,
    who: &str,
    token: &str,
    ids: &[String],
) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("fleet-fuzz-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, config_toml(ids)).unwrap();
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/hooks.py");
    let junit = dir.join("junit.xml");

    let started = Instant::now();
    let mut command = tokio::process::Command::new(schemathesis);
    command
        .current_dir(&dir)
        .env("SCHEMATHESIS_HOOKS", &hooks)
        // No proxy: the fleet is local, and nothing else may be reached.
        .env("NO_PROXY", "*")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .args(["run", &fleet.url("/api/v1/openapi.json")])
        .args(["--url", &fleet.gateway.base_url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&junit)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {RUN_LIMIT:?} as the {who}"))
        .expect("run schemathesis");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("--- schemathesis as the {who} ({took:.1?}) ---\n{stdout}{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    if output.status.success() {
        Ok(())
    } else {
        let summary = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no output");
        Err(format!("{} ({summary})", output.status))
    }
}

/// The run's settings: which checks, how many cases, the seed, and the real ids mixed into the
/// generated ones.
fn config_toml(ids: &[String]) -> String {
    let ids = ids
        .iter()
        .map(|id| format!("\"{id}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"seed = {SEED}
workers = 1
request-timeout = 10
suppress-health-check = ["too_slow"]

[generation]
max-examples = {MAX_EXAMPLES}
database = "none"

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
error_is_a_problem_document.enabled = true

[dictionaries.ids]
values = [{ids}]

[parameters]
"path.id" = {{ dictionary = "ids", probability = 0.5 }}
"path.userId" = {{ dictionary = "ids", probability = 0.5 }}
"query.rentalId" = {{ dictionary = "ids", probability = 0.5 }}
"query.customerId" = {{ dictionary = "ids", probability = 0.5 }}
"query.bookId" = {{ dictionary = "ids", probability = 0.5 }}
"body.bookId" = {{ dictionary = "ids", probability = 0.5 }}
"#
    )
}

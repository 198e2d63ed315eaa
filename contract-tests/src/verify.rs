//! Provider verification with pact_verifier: a committed pact replayed against a real provider
//! over HTTP, or each of a pact's messages asked of a message provider that builds it with the
//! producer's own code. The result keeps the verifier's words, so a test can check what failed.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pact_verifier::callback_executors::HttpRequestProviderStateExecutor;
use pact_verifier::verification_result::VerificationMismatchResult;
use pact_verifier::{
    FilterInfo, NullRequestFilterExecutor, PactSource, ProviderInfo, ProviderTransport,
    VerificationOptions, verify_provider_async,
};

/// What a verification run found.
#[derive(Debug)]
pub struct Verification {
    pub passed: bool,
    /// Every mismatch or error, as `<interaction>: <what>`.
    pub failures: Vec<String>,
    /// The verifier's output, then the failures.
    pub report: String,
}

impl Verification {
    /// Panics with the report unless every interaction passed.
    pub fn assert_passed(&self) {
        assert!(self.passed, "verification failed:\n{}", self.report);
    }

    /// Panics unless verification failed with exactly `expected`, nothing more.
    pub fn assert_failed_with(&self, expected: &[&str]) {
        assert!(!self.passed, "verification passed:\n{}", self.report);
        assert_eq!(self.failures, expected, "\n{}", self.report);
    }
}

async fn run(
    pact: &Path,
    provider: &str,
    transport: ProviderTransport,
    state_change_url: Option<String>,
    headers: &[(&str, &str)],
) -> Verification {
    crate::pacts::assert_no_tracking();
    assert!(pact.exists(), "no pact at {}", pact.display());
    #[allow(deprecated)] // the deprecated fields are the ones transports replace
    let provider_info = ProviderInfo {
        name: provider.to_owned(),
        host: "127.0.0.1".to_owned(),
        transports: vec![transport],
        ..ProviderInfo::default()
    };
    let options = VerificationOptions::<NullRequestFilterExecutor> {
        coloured_output: false,
        request_timeout: 10_000,
        custom_headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        ..VerificationOptions::default()
    };
    let states = Arc::new(HttpRequestProviderStateExecutor {
        state_change_url,
        state_change_teardown: false,
        state_change_body: true,
        retries: 0,
    });
    let result = verify_provider_async(
        provider_info,
        vec![PactSource::File(pact.display().to_string())],
        FilterInfo::None,
        vec![],
        &options,
        None,
        &states,
        None,
    )
    .await
    .expect("the verifier runs");
    let mut failures = Vec::new();
    for (interaction, mismatch) in &result.errors {
        match mismatch {
            VerificationMismatchResult::Mismatches { mismatches, .. } => failures.extend(
                mismatches
                    .iter()
                    .map(|m| format!("{interaction}: {}", m.description())),
            ),
            VerificationMismatchResult::Error { error, .. } => {
                failures.push(format!("{interaction}: error: {error}"))
            }
        }
    }
    let report = format!("{}\n{}", result.output.join("\n"), failures.join("\n"));
    Verification {
        passed: result.result && result.errors.is_empty(),
        failures,
        report,
    }
}

/// Replays `pact` against the HTTP provider at `port` on 127.0.0.1, each request with `headers`
/// on top (the credentials a pact states only the shape of); provider states are posted to
/// `state_change_url`.
pub async fn http_provider(
    pact: &Path,
    provider: &str,
    port: u16,
    state_change_url: Option<String>,
    headers: &[(&str, &str)],
) -> Verification {
    let transport = ProviderTransport {
        transport: "http".to_owned(),
        port: Some(port),
        path: None,
        scheme: Some("http".to_owned()),
    };
    run(pact, provider, transport, state_change_url, headers).await
}

/// Verifies the messages of `pact`: for each, the verifier asks a message provider served here,
/// which answers what `produce` builds for the message's description (None: no such message).
pub async fn message_provider<F>(pact: &Path, provider: &str, produce: F) -> Verification
where
    F: Fn(&str) -> Option<serde_json::Value> + Send + Sync + 'static,
{
    let produce = Arc::new(produce);
    // The verifier posts `{"description": ..., "providerStates": [...]}` and reads the message
    // from the answer's body.
    let app = axum::Router::new().fallback(move |Json(request): Json<serde_json::Value>| {
        let produce = produce.clone();
        async move {
            let description = request["description"].as_str().unwrap_or_default();
            match produce(description) {
                Some(message) => Json(message).into_response(),
                None => no_such_message(description),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let transport = ProviderTransport {
        transport: "message".to_owned(),
        port: Some(port),
        path: None,
        scheme: Some("http".to_owned()),
    };
    let verification = run(pact, provider, transport, None, &[]).await;
    server.abort();
    verification
}

fn no_such_message(description: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("the provider builds no message {description:?}"),
    )
        .into_response()
}

//! What tests check on any process: its probes, its metrics, its problem answers.

use std::time::{Duration, Instant};

use sqlx::PgPool;

/// `base_url/metrics`: a process's Prometheus exposition (`base_url` its operations port).
pub async fn scrape(client: &reqwest::Client, base_url: &str) -> String {
    let response = client
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("scrape {base_url}/metrics: {e}"));
    assert_eq!(response.status(), 200, "{base_url}/metrics");
    response.text().await.unwrap()
}

/// `/livez` and `/readyz` answer 200 on the API port and on the operations port.
pub async fn assert_probes_answer(client: &reqwest::Client, api: &str, ops: &str) {
    for base in [api, ops] {
        for probe in ["/livez", "/readyz"] {
            let response = client.get(format!("{base}{probe}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{base}{probe}");
        }
    }
}

/// `/metrics` is 404 (a problem) on the API port `api` and 200 on the operations port `ops`,
/// with series labelled `service`; the probes answer on both.
pub async fn assert_operations_port(client: &reqwest::Client, api: &str, ops: &str, service: &str) {
    assert_probes_answer(client, api, ops).await;
    let on_api = client.get(format!("{api}/metrics")).send().await.unwrap();
    assert_problem(on_api, 404).await;
    let metrics = scrape(client, ops).await;
    let labelled = format!("service=\"{service}\"");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("process_resident_memory_bytes")
                && line.contains(&labelled)),
        "no process_resident_memory_bytes{{{labelled}}} in {ops}/metrics:\n{metrics}"
    );
}

/// The sum of the Prometheus samples whose line starts with `series`.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Checks that `response` is an RFC 9457 problem with `status`, and returns it.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status, "{:?}", response.text().await);
    assert_eq!(
        response.headers()["content-type"],
        fleet_http::problem::CONTENT_TYPE
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status);
    assert!(
        problem["title"].is_string() && problem["detail"].is_string(),
        "{problem}"
    );
    problem
}

/// Waits until `query` (one that lists what is wrong: a row each, one text column) returns no
/// row, as events and background work settle; panics with `what` and the rows left after `wait`.
pub async fn assert_settles(pool: &PgPool, what: &str, query: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let rows: Vec<(String,)> = sqlx::query_as(query)
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if rows.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let rows: Vec<String> = rows.into_iter().map(|(row,)| row).collect();
            panic!("{what}:\n  {}", rows.join("\n  "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

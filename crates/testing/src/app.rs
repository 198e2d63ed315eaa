//! A service inside the test process: its world (database and broker) and its replicas.

use std::time::Duration;

use shared_events::{CloudEvent, DomainEvent};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    TestDatabase, TestIdentity, TestKafka, assert_operations_port, assert_probes_answer,
    http_client, http_client_with, init_logs, scrape, service_env, wait_ready,
};

/// How long tests wait for something that should happen soon.
pub const WAIT: Duration = Duration::from_secs(20);

/// A service's world in a test: a database of its own holding the service's role and schema, and
/// a broker. Replicas of the service run in it.
pub struct TestWorld {
    pub db: TestDatabase,
    pub kafka: TestKafka,
    /// Issues access tokens; services under test check them against its keys.
    pub identity: TestIdentity,
    pub database_url: String,
    /// The service's Kafka principal, named after its database role.
    pub principal: &'static str,
    schema: String,
}

impl TestWorld {
    pub async fn new(role: &str, schema: &str) -> Self {
        Self::with_kafka(role, schema, TestKafka::start().await).await
    }

    /// The same, with a broker the test controls (see [`TestKafka::own`]).
    pub async fn with_kafka(role: &str, schema: &str, kafka: TestKafka) -> Self {
        Self::on(role, schema, TestDatabase::create().await, kafka).await
    }

    /// The same, on `db` (one with a locale of its own, say).
    pub async fn on(role: &str, schema: &str, db: TestDatabase, kafka: TestKafka) -> Self {
        init_logs();
        let database_url = db.add_service(role, schema).await;
        Self {
            identity: TestIdentity::start().await,
            db,
            kafka,
            database_url,
            principal: crate::principal_of_role(role),
            schema: schema.to_owned(),
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = service_env(self.principal, &self.database_url, &self.kafka);
        env.extend(self.identity.env());
        env
    }

    /// The service's broker settings alone (with its credentials), as its `dlq` command needs.
    pub fn kafka_env(&self) -> Vec<(String, String)> {
        self.kafka.env_as(self.principal)
    }

    /// The test settings with `extra` added (an `extra` value replaces the default).
    pub fn env_with(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.env();
        env.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// A superuser pool on the test's database.
    pub fn pool(&self) -> &PgPool {
        &self.db.admin
    }

    /// Rows in one of the service's tables.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}.{table}", self.schema))
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Outbox events not published yet.
    pub async fn unsent(&self) -> i64 {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}.outbox WHERE sent_at IS NULL",
            self.schema
        ))
        .fetch_one(self.pool())
        .await
        .unwrap()
    }

    /// Publishes `event` as service `source` would, returning its event id.
    pub async fn publish<E: DomainEvent>(&self, source: &str, event: E) -> Uuid {
        let envelope = CloudEvent::new(source, event);
        self.publish_envelope(&envelope).await;
        envelope.id
    }

    /// Publishes a prepared envelope (to deliver the same event id twice, say).
    pub async fn publish_envelope<E: DomainEvent>(&self, envelope: &CloudEvent<E>) {
        let payload = serde_json::to_vec(envelope).unwrap();
        self.kafka
            .send(E::TOPIC, &envelope.data.key(), &payload)
            .await;
    }
}

/// A replica of a service running in the test's process, on a random port, with its operations
/// port (probes and `/metrics`) on another.
pub struct TestApp {
    pub address: String,
    /// The operations port's base URL: `/livez`, `/readyz` and `/metrics`.
    pub ops_address: String,
    pub client: reqwest::Client,
    stop: tokio_util::sync::CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Runs `service` without waiting for it to be ready.
    pub fn start(service: fleet_service::Service) -> Self {
        let address = format!("http://127.0.0.1:{}", service.port());
        let ops_address = format!("http://127.0.0.1:{}", service.ops_port());
        let stop = service.stop_token();
        let running = tokio::spawn(service.run());
        Self {
            address,
            ops_address,
            client: http_client(),
            stop,
            running: Some(running),
        }
    }

    /// Every request of this app's client carries `token` unless it sets its own.
    pub fn signed_in_as(mut self, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .expect("a token is ASCII");
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        self.client = http_client_with(headers);
        self
    }

    /// Runs `service` and waits until it is ready.
    pub async fn spawn(service: fleet_service::Service) -> Self {
        let app = Self::start(service);
        wait_ready(&app.ops_address, WAIT).await;
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `path` on the operations port.
    pub fn ops_url(&self, path: &str) -> String {
        format!("{}{path}", self.ops_address)
    }

    /// The Prometheus exposition, from the operations port.
    pub async fn metrics(&self) -> String {
        scrape(&self.client, &self.ops_address).await
    }

    /// `/livez` and `/readyz` both answer 200, on the API port and on the operations port.
    pub async fn assert_probes_answer(&self) {
        assert_probes_answer(&self.client, &self.address, &self.ops_address).await;
    }

    /// `/metrics` answers only on the operations port, 200 with the series of `service`; on the
    /// API port it is 404. The probes answer on both.
    pub async fn assert_operations_port(&self, service: &str) {
        assert_operations_port(&self.client, &self.address, &self.ops_address, service).await;
    }

    /// The service's OpenAPI 3 document, checked to describe every one of `paths`.
    pub async fn api_document(&self, paths: &[&str]) -> serde_json::Value {
        let response = self
            .client
            .get(self.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let doc: serde_json::Value = response.json().await.unwrap();
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{doc}"
        );
        for path in paths {
            assert!(
                doc["paths"][path].is_object(),
                "{path} missing from {:?}",
                doc["paths"]
            );
        }
        doc
    }

    /// Starts shutting down, as SIGTERM does.
    pub fn begin_stop(&self) {
        self.stop.cancel();
    }

    /// Shuts down as SIGTERM does and waits until the service has stopped.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }
}

//! The transactional outbox. [`enqueue`] writes an event in the caller's transaction, so it
//! exists if and only if the change that causes it commits; the [`Relay`] publishes unsent
//! events in order and marks them sent. A crash between publishing and marking re-publishes on
//! restart (at least once); consumers deduplicate by event id.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared_events::{CloudEvent, DomainEvent};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::kafka::Kafka;
use fleet_telemetry::metrics::Metrics;

/// Structured-mode CloudEvents over Kafka carry this content type.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// Writes `event`, from service `source`, to the outbox inside the caller's transaction.
pub async fn enqueue<E: DomainEvent>(
    conn: &mut PgConnection,
    source: &str,
    event: E,
) -> Result<Uuid, sqlx::Error> {
    let key = event.key();
    // The event continues the trace of the request (or event) that caused it.
    let envelope =
        CloudEvent::new(source, event).with_traceparent(fleet_telemetry::trace::outgoing());
    let payload = serde_json::to_string(&envelope).expect("events always serialize");
    sqlx::query(
        "INSERT INTO outbox (event_id, topic, key, payload, traceparent) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(envelope.id)
    .bind(E::TOPIC.name())
    .bind(key)
    .bind(payload)
    .bind(&envelope.traceparent)
    .execute(conn)
    .await?;
    Ok(envelope.id)
}

pub struct Relay {
    pub pool: PgPool,
    pub producer: FutureProducer,
    pub kafka: Kafka,
    pub metrics: Metrics,
    pub batch_size: u32,
    /// The pause after a pass that found nothing.
    pub poll_interval: Duration,
    /// The pause after a pass that published something: more is likely on its way.
    pub busy_poll_interval: Duration,
}

#[derive(sqlx::FromRow)]
struct Pending {
    id: i64,
    topic: String,
    key: String,
    payload: String,
    traceparent: Option<String>,
}

impl Relay {
    /// Publishes until `shutdown`, then flushes what is left (for a few seconds at most).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let pause = match self.relay_batch().await {
                Ok(sent) => {
                    failures = 0;
                    // A full batch means more may be waiting: go again at once. While events keep
                    // coming, look again soon, so they wait a short poll rather than the idle one.
                    if sent == self.batch_size as usize {
                        Duration::ZERO
                    } else if sent > 0 {
                        self.busy_poll_interval.min(self.poll_interval)
                    } else {
                        self.poll_interval
                    }
                }
                Err(e) => {
                    failures += 1;
                    // Unsent events stay in the outbox whatever failed: waiting is all there is
                    // to do. A database away is told apart in the log, and retried on the same
                    // schedule as the consumers.
                    if let Some(cause) = fleet_database::transient_cause(&e) {
                        let wait = fleet_database::outage_backoff(failures).max(self.poll_interval);
                        tracing::warn!(error = %cause, tries = failures, retry_in_ms = wait.as_millis() as u64, "database unavailable; the outbox relay waits for it");
                        wait
                    } else {
                        let wait = (self.poll_interval * 2u32.saturating_pow(failures.min(6)))
                            .min(Duration::from_secs(5));
                        tracing::warn!(error = %format!("{e:#}"), failures, retry_in_ms = wait.as_millis() as u64, "outbox relay pass failed; retrying");
                        wait
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let flush = async {
            while let Ok(sent) = self.relay_batch().await {
                if sent == 0 {
                    break;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), flush)
            .await
            .is_err()
        {
            tracing::warn!(
                "outbox not fully flushed at shutdown; the next start publishes the rest"
            );
        }
    }

    /// One pass: publishes up to a batch of unsent events in id order and marks the published
    /// ones sent. Returns how many were published. Only one relay per schema works at a time (an
    /// advisory lock), which keeps events of one key in order across replicas.
    pub async fn relay_batch(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        if !fleet_database::take_turn(&mut tx, "outbox-relay").await? {
            return Ok(0);
        }
        let pending: Vec<Pending> = sqlx::query_as(
            "SELECT id, topic, key, payload, traceparent FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(self.batch_size))
        .fetch_all(&mut *tx)
        .await?;
        if pending.is_empty() {
            self.metrics.outbox_backlog.set(0);
            self.metrics.outbox_oldest_unsent_age.set(0.0);
            return Ok(0);
        }

        // Enqueue the whole batch before awaiting any delivery: one round trip, not one per event.
        let topics: Vec<String> = pending.iter().map(|p| self.kafka.name(&p.topic)).collect();
        let publishes: Vec<_> = pending
            .iter()
            .zip(&topics)
            .map(|(event, topic)| {
                fleet_telemetry::trace::publish_span(topic, event.traceparent.as_deref())
            })
            .collect();
        let batch = fleet_telemetry::trace::relay_span(
            pending.len(),
            publishes.iter().map(|(span, _)| span),
        );
        let deliveries = pending.iter().zip(&topics).zip(&publishes).map(
            |((event, topic), (span, traceparent))| {
                let mut headers = OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some(CLOUDEVENTS_JSON),
                });
                if let Some(traceparent) = traceparent {
                    headers = headers.insert(Header {
                        key: fleet_telemetry::trace::TRACEPARENT,
                        value: Some(traceparent.as_str()),
                    });
                }
                let record = FutureRecord::to(topic)
                    .key(&event.key)
                    .payload(&event.payload)
                    .headers(headers);
                self.producer
                    .send(record, Duration::from_secs(5))
                    .instrument(span.clone())
            },
        );
        let outcomes = join_all(deliveries).instrument(batch.clone()).await;
        drop(publishes); // the publish spans end with the batch's deliveries; the batch's after marking

        // Mark the delivered prefix only: what follows a failure is sent again, after it.
        let mut sent = Vec::new();
        let mut failure = None;
        for (event, outcome) in pending.iter().zip(outcomes) {
            match outcome {
                Ok(_) => sent.push(event.id),
                Err((e, _)) => {
                    failure = Some(anyhow::anyhow!(
                        "outbox event {} not delivered: {e}",
                        event.id
                    ));
                    break;
                }
            }
        }
        sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)")
            .bind(&sent)
            .execute(&mut *tx)
            .await?;
        // What is left, for the backlog and staleness alerts.
        let (backlog, oldest_age): (i64, f64) = sqlx::query_as(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 \
             FROM outbox WHERE sent_at IS NULL",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.metrics.outbox_backlog.set(backlog);
        if !sent.is_empty() {
            self.metrics.outbox_pass_events.observe(sent.len() as f64);
        }
        self.metrics.outbox_oldest_unsent_age.set(oldest_age);
        for event in &pending[..sent.len()] {
            self.metrics
                .outbox_published
                .with_label_values(&[&event.topic])
                .inc();
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(sent.len()),
        }
    }
}

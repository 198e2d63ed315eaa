//! The idempotent consumer. Each event's effect and its id in the `inbox` table commit in one
//! transaction, so a redelivered event has no second effect; the offset is stored only after
//! that commit. An event that cannot be parsed, or still fails after bounded retries, goes to
//! `<topic>.dlq` with the reason and the partition moves on.

use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared_events::{DecodeError, RawEvent};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use fleet_telemetry::metrics::Metrics;
use fleet_telemetry::trace::TraceParent;

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event can never be applied (it breaks the contract): dead-letter it now.
    #[error("{0}")]
    Rejected(String),
    /// It may work on a later try.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Failed(e.into())
    }
}

impl From<DecodeError> for HandlerError {
    fn from(e: DecodeError) -> Self {
        HandlerError::Rejected(e.to_string())
    }
}

/// Applies one event inside the transaction that also records it in the inbox.
pub trait EventHandler: Send + Sync + 'static {
    fn handle(
        &self,
        conn: &mut PgConnection,
        event: &RawEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

enum Outcome {
    Applied,
    Duplicate,
}

pub struct InboxConsumer<H> {
    pub pool: PgPool,
    pub consumer: crate::kafka::Consumer,
    pub dlq_producer: FutureProducer,
    pub handler: H,
    pub max_retries: u32,
    /// At most this many events already waiting are applied in one transaction.
    pub batch_size: usize,
    pub metrics: Metrics,
    /// The consumer group, for the dead-letter headers.
    pub group: String,
    /// This service's replay topic, whose entries count as from their origin topic.
    pub replay_topic: String,
}

impl<H: EventHandler> InboxConsumer<H> {
    /// Consumes until `shutdown`; the events in hand are finished first, then offsets are
    /// committed.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(self.batch_size);
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => break,
                message = self.consumer.recv() => message,
            };
            match message {
                Ok(message) => batch.push(message),
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            // What the client already holds joins the batch; nothing is waited for.
            while batch.len() < self.batch_size {
                match self.consumer.recv().now_or_never() {
                    Some(Ok(message)) => batch.push(message),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "consumer error");
                        break;
                    }
                    None => break,
                }
            }
            let finished = self.process_batch(&batch, &shutdown).await;
            batch.clear();
            if !finished {
                break; // shutting down mid-retry: the event is left for the next owner
            }
        }
        drop(batch);
        // Committing and closing (leaving the group) wait on the broker: do it off the async
        // threads, so an unreachable broker cannot stall the rest of the shutdown.
        let consumer = self.consumer;
        let closed = tokio::task::spawn_blocking(move || {
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "no offsets committed at shutdown");
            }
            drop(consumer);
        });
        let _ = closed.await;
    }

    /// Applies the batch in one transaction when it can (several events, each parsed and applied
    /// without error), else one event at a time with retries and dead letters. Offsets are stored
    /// only for what is done. Returns false when it gave up because of shutdown.
    async fn process_batch(
        &self,
        batch: &[BorrowedMessage<'_>],
        shutdown: &CancellationToken,
    ) -> bool {
        if batch.len() > 1 && self.apply_together(batch).await {
            batch.iter().for_each(|message| self.stored(message));
            return true;
        }
        for message in batch {
            if !self.process(message, shutdown).await {
                return false;
            }
            self.stored(message);
        }
        true
    }

    /// The topic an event belongs to: its own, or for one replayed by `dlq replay` the topic it
    /// first came on (only this service can write its replay topic, so the header is its own).
    fn origin<'m>(&self, message: &'m BorrowedMessage<'_>) -> &'m str {
        let topic = message.topic();
        if topic != self.replay_topic {
            return topic;
        }
        message
            .headers()
            .and_then(|headers| {
                headers
                    .iter()
                    .find(|h| h.key == shared_events::topic::REPLAY_ORIGIN)
                    .and_then(|h| std::str::from_utf8(h.value?).ok())
            })
            .unwrap_or(topic)
    }

    fn stored(&self, message: &BorrowedMessage<'_>) {
        if let Err(e) = self.consumer.store_offset_from_message(message) {
            tracing::warn!(error = %e, "cannot store offset; the event may be seen again");
        }
    }

    /// Every event of the batch in one transaction: one BEGIN and one COMMIT for all of them,
    /// instead of one each. False (nothing applied) when any event cannot be parsed or fails:
    /// then the caller goes one event at a time, which retries or dead-letters the culprit.
    async fn apply_together(&self, batch: &[BorrowedMessage<'_>]) -> bool {
        let started = Instant::now();
        let mut events = Vec::with_capacity(batch.len());
        for message in batch {
            match RawEvent::from_slice(message.payload().unwrap_or_default()) {
                Ok(event) => {
                    let (span, trace) = event_span(message, &event);
                    events.push((message, event, span, trace));
                }
                Err(_) => return false,
            }
        }
        let applied = async {
            let mut tx = self.pool.begin().await?;
            let mut outcomes = Vec::with_capacity(events.len());
            for (message, event, span, trace) in &events {
                let one = record_and_handle(&self.handler, &mut tx, self.origin(message), event);
                let outcome = fleet_telemetry::trace::within(trace.clone(), one)
                    .instrument(span.clone())
                    .await?;
                outcomes.push(outcome);
            }
            tx.commit().await?;
            Ok::<_, HandlerError>(outcomes)
        }
        .await;
        match applied {
            Ok(outcomes) => {
                self.metrics
                    .consumer_batch_events
                    .observe(outcomes.len() as f64);
                for ((message, event, span, _), outcome) in events.iter().zip(outcomes) {
                    let _entered = span.enter();
                    self.done(self.origin(message), event, outcome, started);
                }
                true
            }
            Err(e) => {
                tracing::debug!(events = batch.len(), error = %e, "a batch failed; applying its events one at a time");
                false
            }
        }
    }

    /// The metrics and log line of an event applied or found a duplicate.
    fn done(&self, topic: &str, event: &RawEvent, outcome: Outcome, started: Instant) {
        self.metrics
            .event_processing
            .with_label_values(&[topic])
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Outcome::Applied => {
                let lag = (chrono::Utc::now() - event.time).as_seconds_f64().max(0.0);
                self.metrics
                    .event_lag
                    .with_label_values(&[topic])
                    .observe(lag);
                tracing::info!(lag_ms = (lag * 1000.0) as u64, "event applied");
                self.metrics
                    .events_consumed
                    .with_label_values(&[topic, "applied"])
                    .inc();
            }
            Outcome::Duplicate => {
                tracing::debug!(event_id = %event.id, "duplicate event ignored");
                self.metrics
                    .events_consumed
                    .with_label_values(&[topic, "duplicate"])
                    .inc();
            }
        }
    }

    /// One event, retried while it fails. Returns false when it gave up because of shutdown
    /// (nothing was stored or dead-lettered).
    async fn process(&self, message: &BorrowedMessage<'_>, shutdown: &CancellationToken) -> bool {
        let event = match RawEvent::from_slice(message.payload().unwrap_or_default()) {
            Ok(event) => event,
            Err(e) => return self.dead_letter(message, &e.to_string(), shutdown).await,
        };
        let (span, trace) = event_span(message, &event);
        fleet_telemetry::trace::within(trace, self.process_event(message, &event, shutdown))
            .instrument(span)
            .await
    }

    async fn process_event(
        &self,
        message: &BorrowedMessage<'_>,
        event: &RawEvent,
        shutdown: &CancellationToken,
    ) -> bool {
        let topic = self.origin(message);
        let started = Instant::now();
        let mut attempt = 0;
        // Tries in a row that the database's absence stopped.
        let mut outage = 0;
        loop {
            let error = match self.apply(topic, event).await {
                Ok(outcome) => {
                    self.metrics.consumer_batch_events.observe(1.0);
                    self.done(topic, event, outcome, started);
                    return true;
                }
                Err(HandlerError::Rejected(reason)) => {
                    return self.dead_letter(message, &reason, shutdown).await;
                }
                Err(HandlerError::Failed(e)) => e,
            };
            // A database that is away (restarting, failing over) or busy is not the event's
            // fault: wait for it, however long, without spending the event's retries.
            if let Some(cause) = fleet_database::transient_cause(&error) {
                outage += 1;
                let wait = fleet_database::outage_backoff(outage);
                tracing::warn!(tries = outage, retry_in_ms = wait.as_millis() as u64, error = %cause, "database unavailable; the event waits for it");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            outage = 0;
            attempt += 1;
            if attempt > self.max_retries {
                let reason = format!("failed after {} attempts: {error:#}", attempt);
                return self.dead_letter(message, &reason, shutdown).await;
            }
            tracing::warn!(event_id = %event.id, attempt, error = %format!("{error:#}"), "event failed; retrying");
            let backoff = Duration::from_millis(100 * 2u64.pow(attempt.min(6)));
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }

    async fn apply(&self, topic: &str, event: &RawEvent) -> Result<Outcome, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let outcome = record_and_handle(&self.handler, &mut tx, topic, event).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Publishes the message, untouched, to `<topic>.dlq` with the reason in its headers. Never
    /// gives up (the event must not be lost) except for shutdown.
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        // A replayed event that fails again goes back to its origin's dead letters.
        let origin = self.origin(message);
        let dlq = shared_events::topic::dlq_of(origin);
        tracing::error!(
            topic = origin,
            partition = message.partition(),
            offset = message.offset(),
            reason,
            "dead-lettering event"
        );
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original
                .iter()
                .filter(|h| h.key != shared_events::topic::REPLAY_ORIGIN)
            {
                headers = headers.insert(Header {
                    key: header.key,
                    value: header.value,
                });
            }
        }
        let headers = headers
            .insert(Header {
                key: "dlq-reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "dlq-topic",
                value: Some(origin),
            })
            .insert(Header {
                key: "dlq-partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "dlq-offset",
                value: Some(&offset),
            })
            .insert(Header {
                key: "dlq-consumer-group",
                value: Some(&self.group),
            });
        loop {
            let mut record = FutureRecord::to(&dlq).headers(headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            let delivery = self.dlq_producer.send(record, Duration::from_secs(5));
            match delivery.await {
                Ok(_) => {
                    self.metrics
                        .events_dead_lettered
                        .with_label_values(&[origin])
                        .inc();
                    self.metrics
                        .events_consumed
                        .with_label_values(&[origin, "dead_lettered"])
                        .inc();
                    return true;
                }
                Err((e, _)) => tracing::warn!(error = %e, dlq, "cannot dead-letter yet; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// The event's span, continuing the producer's trace (the Kafka header, else the envelope's
/// attribute), so the event's effects and logs belong to the request that caused it.
fn event_span(message: &BorrowedMessage<'_>, event: &RawEvent) -> (tracing::Span, TraceParent) {
    let header = message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == fleet_telemetry::trace::TRACEPARENT)
            .and_then(|h| std::str::from_utf8(h.value?).ok())
            .and_then(TraceParent::parse)
    });
    let span = tracing::info_span!(
        "event",
        topic = message.topic(),
        event_type = %event.event_type,
        event_id = %event.id,
        trace_id = tracing::field::Empty,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    let remote = header.or_else(|| event.traceparent.as_deref().and_then(TraceParent::parse));
    let name = || format!("consume {}", event.event_type);
    let trace = match fleet_telemetry::trace::adopt(&span, "consumer", name, remote) {
        Some(trace) if fleet_telemetry::trace::exporting() => trace,
        Some(trace) => trace.child(),
        None => TraceParent::start(),
    };
    span.record("trace_id", trace.trace_id());
    (span, trace)
}

/// Records the event in the inbox and, the first time, applies it, in the caller's transaction.
async fn record_and_handle<H: EventHandler>(
    handler: &H,
    conn: &mut PgConnection,
    topic: &str,
    event: &RawEvent,
) -> Result<Outcome, HandlerError> {
    let first_time = sqlx::query(
        "INSERT INTO inbox (event_id, topic, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(event.id)
    .bind(topic)
    .bind(&event.event_type)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !first_time {
        return Ok(Outcome::Duplicate);
    }
    handler.handle(conn, event).await?;
    Ok(Outcome::Applied)
}

//! Retention: sent outbox rows and processed inbox rows are deleted once older than their
//! configured age, a small batch per transaction so that no lock is held for long and the relay
//! and the consumers go on meanwhile.
//!
//! An inbox row is what makes a redelivered event a duplicate, so it must be kept as long as its
//! event can reach the same consumer group again (docs/operations.md, "Retention"):
//! - a crash or rebalance redelivers what was not yet committed: seconds;
//! - topics that expire events (`KAFKA_TOPIC_RETENTION_HOURS`) can be read again from their
//!   start when a group's offsets are lost: the inbox must outlast them ([`RetentionConfig::read`]
//!   refuses a shorter one);
//! - a dead letter replayed (`<service> dlq replay`): the command refuses events older than the
//!   inbox's age;
//! - `view rebuild` empties view's inbox with its boards.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use fleet_config::Env;
use fleet_telemetry::metrics::Metrics;

/// A table retention prunes: its key, and the time that makes a row old enough.
struct Table {
    name: &'static str,
    key: &'static str,
    time: &'static str,
}

/// A row without `sent_at` is an unsent event: never old enough.
const OUTBOX: Table = Table {
    name: "outbox",
    key: "id",
    time: "sent_at",
};
const INBOX: Table = Table {
    name: "inbox",
    key: "event_id",
    time: "processed_at",
};

#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// How long a sent event stays in the outbox (for inspection; nothing reads it again).
    pub outbox: Duration,
    /// How long a processed event id stays in the inbox; `None` keeps it for ever.
    pub inbox: Option<Duration>,
    pub interval: Duration,
    pub batch_size: u32,
}

const HOUR: u64 = 3600;

impl RetentionConfig {
    /// `OUTBOX_RETENTION_HOURS` (default 24), `INBOX_RETENTION_HOURS` (default 720, 30 days; 0
    /// keeps every row), `KAFKA_TOPIC_RETENTION_HOURS` (how long the topics keep events; default
    /// 0, for ever, as the fleet creates them), `RETENTION_INTERVAL_MS` (default 60 s),
    /// `RETENTION_BATCH_SIZE` (default 1,000).
    pub fn read(env: &mut Env) -> Self {
        let outbox_hours: u64 = env.or("OUTBOX_RETENTION_HOURS", 24);
        let inbox_hours: u64 = env.or("INBOX_RETENTION_HOURS", 720);
        let topic_hours: u64 = env.or("KAFKA_TOPIC_RETENTION_HOURS", 0);
        let config = Self {
            outbox: Duration::from_secs(outbox_hours * HOUR),
            inbox: (inbox_hours > 0).then(|| Duration::from_secs(inbox_hours * HOUR)),
            interval: env.millis("RETENTION_INTERVAL_MS", 60_000),
            batch_size: env.or("RETENTION_BATCH_SIZE", 1_000),
        };
        if outbox_hours == 0 {
            env.invalid("OUTBOX_RETENTION_HOURS must be at least 1");
        }
        if config.batch_size == 0 || config.interval.is_zero() {
            env.invalid("RETENTION_BATCH_SIZE and RETENTION_INTERVAL_MS must be at least 1");
        }
        // Offsets lost on topics that expire events re-read up to their whole retention: the
        // inbox must still know every event that can come back, with a day to spare.
        if inbox_hours > 0 && topic_hours > 0 && inbox_hours < topic_hours + 24 {
            env.invalid(format!(
                "INBOX_RETENTION_HOURS={inbox_hours} must be at least KAFKA_TOPIC_RETENTION_HOURS \
                 + 24 ({}): an event the topics still hold can be delivered again, and only the \
                 inbox makes it a duplicate",
                topic_hours + 24
            ));
        }
        if inbox_hours > 0 && inbox_hours < 24 {
            env.invalid(format!(
                "INBOX_RETENTION_HOURS={inbox_hours} must be at least 24 (or 0, to keep every row)"
            ));
        }
        config
    }
}

/// Prunes the service's outbox and inbox every `interval` until shutdown.
pub struct Retention {
    pub pool: PgPool,
    pub metrics: Metrics,
    pub config: RetentionConfig,
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub inbox: u64,
}

impl Retention {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            match self.pass(&stop).await {
                Ok(pruned) if pruned != Pruned::default() => {
                    tracing::info!(
                        outbox = pruned.outbox,
                        inbox = pruned.inbox,
                        "retention pruned old rows"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "retention pass failed; trying again later")
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }

    /// Deletes every row old enough, batch by batch, then records the tables' sizes.
    pub async fn pass(&self, stop: &CancellationToken) -> Result<Pruned, sqlx::Error> {
        let pruned = Pruned {
            outbox: self.prune(&OUTBOX, Some(self.config.outbox), stop).await?,
            inbox: self.prune(&INBOX, self.config.inbox, stop).await?,
        };
        for table in [OUTBOX, INBOX] {
            let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
                .bind(table.name)
                .fetch_one(&self.pool)
                .await?;
            self.metrics
                .table_size
                .with_label_values(&[table.name])
                .set(bytes);
        }
        Ok(pruned)
    }

    /// Deletes `table`'s rows older than `age` (none when `age` is `None`); how many.
    async fn prune(
        &self,
        table: &Table,
        age: Option<Duration>,
        stop: &CancellationToken,
    ) -> Result<u64, sqlx::Error> {
        let Some(age) = age else { return Ok(0) };
        let mut pruned = 0;
        loop {
            let deleted = self.delete_batch(table, age).await?;
            pruned += deleted;
            self.metrics
                .retention_deleted
                .with_label_values(&[table.name])
                .inc_by(deleted);
            if deleted < u64::from(self.config.batch_size) || stop.is_cancelled() {
                return Ok(pruned);
            }
            // Let the relay and the consumers have the database between batches.
            tokio::task::yield_now().await;
        }
    }

    /// One short transaction. Replicas take turns (an advisory lock) rather than queue on the
    /// same rows.
    async fn delete_batch(&self, table: &Table, age: Duration) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if !fleet_database::take_turn(&mut tx, "retention").await? {
            return Ok(0);
        }
        // The database's clock decides what is old, as it wrote the times.
        let Table { name, key, time } = table;
        let deleted = sqlx::query(&format!(
            "DELETE FROM {name} WHERE {key} IN (SELECT {key} FROM {name} \
             WHERE {time} < now() - make_interval(secs => $1) ORDER BY {time} LIMIT $2)"
        ))
        .bind(age.as_secs_f64())
        .bind(i64::from(self.config.batch_size))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<RetentionConfig, String> {
        let mut env = Env::from_pairs(pairs.iter().copied());
        let config = RetentionConfig::read(&mut env);
        env.finish().map(|()| config).map_err(|e| e.to_string())
    }

    #[test]
    fn the_inbox_outlasts_the_topics() {
        let defaults = read(&[]).unwrap();
        assert_eq!(defaults.outbox, Duration::from_secs(24 * HOUR));
        assert_eq!(defaults.inbox, Some(Duration::from_secs(720 * HOUR)));
        assert_eq!(read(&[("INBOX_RETENTION_HOURS", "0")]).unwrap().inbox, None);
        let err = read(&[
            ("KAFKA_TOPIC_RETENTION_HOURS", "168"),
            ("INBOX_RETENTION_HOURS", "168"),
        ])
        .unwrap_err();
        assert!(
            err.contains("at least KAFKA_TOPIC_RETENTION_HOURS + 24 (192)"),
            "{err}"
        );
        read(&[
            ("KAFKA_TOPIC_RETENTION_HOURS", "168"),
            ("INBOX_RETENTION_HOURS", "192"),
        ])
        .unwrap();
        let err = read(&[("INBOX_RETENTION_HOURS", "1")]).unwrap_err();
        assert!(err.contains("at least 24"), "{err}");
    }
}

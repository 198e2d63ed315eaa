//! Reading the dead-letter topics: what `list` shows and what `replay` sends back.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Message, Offset, TopicPartitionList};
use shared_events::topic::{REPLAY_ORIGIN, dlq_of, replay_of};
use shared_events::{RawEvent, Topic};

use super::*;

/// One entry of a dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Every header in order, the dead-letter ones included.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// When it was dead-lettered.
    pub timestamp: Option<DateTime<Utc>>,
    /// The CloudEvents envelope, when the payload is one.
    pub event: Option<RawEvent>,
}

impl DeadLetter {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| std::str::from_utf8(value.as_deref()?).ok())
    }

    pub fn group(&self) -> Option<&str> {
        self.header(CONSUMER_GROUP)
    }

    pub fn position(&self) -> String {
        format!("{}:{}", self.partition, self.offset)
    }

    /// The headers the event had on its origin topic.
    pub fn original_headers(&self) -> Option<OwnedHeaders> {
        let kept: Vec<_> = self
            .headers
            .iter()
            .filter(|(key, _)| !DEAD_LETTER_HEADERS.contains(&key.as_str()))
            .collect();
        if kept.is_empty() {
            return None;
        }
        let mut headers = OwnedHeaders::new_with_capacity(kept.len());
        for (key, value) in kept {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        Some(headers)
    }

    /// The oldest the event can be: its own time, else when it was dead-lettered.
    fn born(&self) -> Option<DateTime<Utc>> {
        self.event.as_ref().map(|e| e.time).or(self.timestamp)
    }

    /// Has the inbox of a consumer that applied it perhaps forgotten it already?
    pub(super) fn too_old(&self, retention: Option<Duration>, now: DateTime<Utc>) -> bool {
        let Some(retention) = retention else {
            return false;
        };
        let window = retention.saturating_sub(RETENTION_MARGIN);
        match self.born() {
            Some(born) => (now - born).to_std().is_ok_and(|age| age > window),
            None => true, // no way to tell: refuse rather than risk a second effect
        }
    }

    /// Its position and event, in a line.
    fn summary(&self) -> String {
        match &self.event {
            Some(e) => format!(
                "{} event={} type={} time={}",
                self.position(),
                e.id,
                e.event_type,
                e.time.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            None => format!(
                "{} event=- type=- (the payload is not a CloudEvents envelope)",
                self.position()
            ),
        }
    }

    /// Everything `list` shows of it, in a line.
    fn describe(&self) -> String {
        let origin = match (
            self.header(ORIGIN_TOPIC),
            self.header(ORIGIN_PARTITION),
            self.header(ORIGIN_OFFSET),
        ) {
            (Some(topic), Some(partition), Some(offset)) => {
                format!("{topic}[{partition}]@{offset}")
            }
            (topic, _, _) => topic.unwrap_or("-").to_owned(),
        };
        format!(
            "{} origin={origin} group={} reason={:?}",
            self.summary(),
            self.group().unwrap_or("-"),
            self.header(REASON).unwrap_or("-"),
        )
    }
}

/// A dead-letter topic as read.
#[derive(Debug)]
pub struct DeadLetters {
    /// The dead-letter topic's name on the cluster.
    pub name: String,
    /// Its origin topic's name on the cluster.
    pub origin: String,
    /// False when the topic does not exist (nothing was ever dead-lettered there).
    pub exists: bool,
    pub letters: Vec<DeadLetter>,
}

/// Prints the dead letters of `topics`: only `service`'s, or with `all_groups` every group's.
///
/// By default only the service's own are listed: a topic's DLQ is shared by all its consumers
/// (`rental.events.dlq` by four services), and an operator asking one service wants what that
/// service can replay; the others' are counted and `--all-groups` shows them, each with its
/// group, for the operator to replay with their own service's command.
pub async fn list(
    config: &DlqConfig,
    service: &str,
    topics: &[Topic],
    all_groups: bool,
) -> anyhow::Result<()> {
    let group = config.kafka.name(service);
    let now = Utc::now();
    for queue in read(config, service, topics).await? {
        let (mine, others): (Vec<_>, Vec<_>) = queue
            .letters
            .iter()
            .partition(|l| l.group() == Some(group.as_str()));
        if queue.letters.is_empty() {
            let why = if queue.exists {
                ""
            } else {
                " (the topic does not exist yet)"
            };
            println!("{}: empty{why}", queue.name);
            continue;
        }
        let others = match (others.len(), all_groups) {
            (0, _) => String::new(),
            (n, true) => format!(", {n} of other consumer groups"),
            (n, false) => format!(", {n} of other consumer groups (--all-groups lists them)"),
        };
        println!("{}: {} of {group}{others}", queue.name, mine.len());
        for letter in &queue.letters {
            let ours = letter.group() == Some(group.as_str());
            if !ours && !all_groups {
                continue;
            }
            let mark = if !ours {
                "  [another service's]"
            } else if letter.too_old(config.inbox_retention, now) {
                "  [older than the inbox retention: not replayable]"
            } else {
                ""
            };
            println!("  {}{mark}", letter.describe());
        }
    }
    Ok(())
}

/// Publishes the selected dead letters of `service` to their origin topics, each as it first
/// arrived, and waits until the broker has them all. Nothing is published unless every named
/// entry exists, is this service's and is young enough for the inboxes to recognise it; `--all`
/// passes over those too old.
pub async fn replay(
    config: &DlqConfig,
    service: &str,
    topics: &[Topic],
    selection: &Selection,
    dry_run: bool,
) -> anyhow::Result<()> {
    let group = config.kafka.name(service);
    let queues = read(config, service, topics).await?;
    let now = Utc::now();
    let (old, chosen): (Vec<_>, Vec<_>) = select(&queues, &group, selection)?
        .into_iter()
        .partition(|(_, l)| l.too_old(config.inbox_retention, now));
    let old: Vec<String> = old
        .iter()
        .map(|(q, l)| format!("{} {}", q.name, l.position()))
        .collect();
    // The dead-letter topics keep entries for ever: `--all` passes over the old ones (list marks
    // them), or it could never be used again once one was there; a named one is refused.
    if !old.is_empty() && *selection == Selection::All {
        println!(
            "not replayed, older than the inbox retention: {}",
            old.join(", ")
        );
    } else if !old.is_empty() {
        bail!(
            "nothing replayed: {} older than the inbox retention less {}h (INBOX_RETENTION_HOURS): a consumer that applied it may have forgotten it and would apply it again; repair its effect by hand",
            old.join(", "),
            RETENTION_MARGIN.as_secs() / 3600
        );
    }
    if chosen.is_empty() {
        println!("nothing to replay");
        return Ok(());
    }
    if dry_run {
        for (queue, letter) in &chosen {
            let origin = letter.header(ORIGIN_TOPIC).unwrap_or(&queue.origin);
            println!(
                "would replay {} {} to {} (as from {origin})",
                queue.name,
                letter.summary(),
                config.kafka.name(&replay_of(service))
            );
        }
        println!("dry run: nothing replayed");
        return Ok(());
    }
    let producer = config
        .kafka
        .producer()
        .context("cannot create the Kafka producer")?;
    // Not to the origin topic, which only its owner may write, but to this service's replay
    // topic, which its consumer reads as from the origin (docs/operations.md, "Dead letters").
    let replay_topic = config.kafka.name(&replay_of(service));
    let mut replayed = 0;
    for (queue, letter) in &chosen {
        let origin = letter.header(ORIGIN_TOPIC).unwrap_or(&queue.origin);
        // Partitioned by its key, as on its origin topic.
        let mut record = FutureRecord::<[u8], [u8]>::to(&replay_topic);
        if let Some(key) = &letter.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &letter.payload {
            record = record.payload(payload.as_slice());
        }
        let headers = letter
            .original_headers()
            .unwrap_or_else(OwnedHeaders::new)
            .insert(Header {
                key: REPLAY_ORIGIN,
                value: Some(origin),
            });
        record = record.headers(headers);
        let delivered = producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(e, _)| e)
            .with_context(|| {
                format!(
                    "cannot replay {} {} to {replay_topic} ({replayed} replayed before it)",
                    queue.name,
                    letter.position()
                )
            })?;
        replayed += 1;
        println!(
            "replayed {} {} to {replay_topic}[{}]@{} (as from {origin})",
            queue.name,
            letter.summary(),
            delivered.partition,
            delivered.offset
        );
    }
    println!(
        "{replayed} replayed; a consumer that has applied an event already ignores it (its inbox knows the event id)"
    );
    Ok(())
}

/// The entries `selection` names among `queues`, each with its queue; an error names every
/// selected event id or position that is missing or another group's.
pub(super) fn select<'a>(
    queues: &'a [DeadLetters],
    group: &str,
    selection: &Selection,
) -> anyhow::Result<Vec<(&'a DeadLetters, &'a DeadLetter)>> {
    let all = || {
        queues
            .iter()
            .flat_map(|q| q.letters.iter().map(move |l| (q, l)))
    };
    let ours = |l: &DeadLetter| l.group() == Some(group);
    let mut problems = Vec::new();
    let chosen: Vec<_> = match selection {
        Selection::All => {
            // A dead letter replayed before the fix comes back as a second copy: one is enough.
            let mut seen = HashSet::new();
            all()
                .filter(|(_, l)| ours(l))
                .filter(|(_, l)| l.event.as_ref().is_none_or(|e| seen.insert(e.id)))
                .collect()
        }
        Selection::Events(ids) => {
            let mut chosen = Vec::new();
            for id in ids {
                let copies: Vec<_> = all()
                    .filter(|(_, l)| l.event.as_ref().is_some_and(|e| e.id == *id))
                    .collect();
                match copies.iter().find(|(_, l)| ours(l)) {
                    Some(copy) => chosen.push(*copy),
                    None => problems.push(match copies.first() {
                        Some((_, l)) => format!(
                            "event {id} was dead-lettered by {}, not {group}: replay it with that service's command",
                            l.group().unwrap_or("an unknown group")
                        ),
                        None => format!("no dead letter of event {id}"),
                    }),
                }
            }
            chosen
        }
        Selection::Offsets(positions) => {
            let mut chosen = Vec::new();
            for (partition, offset) in positions {
                match all().find(|(_, l)| l.partition == *partition && l.offset == *offset) {
                    Some(found) if ours(found.1) => chosen.push(found),
                    Some((_, l)) => problems.push(format!(
                        "{partition}:{offset} was dead-lettered by {}, not {group}: replay it with that service's command",
                        l.group().unwrap_or("an unknown group")
                    )),
                    None => problems.push(format!("no dead letter at {partition}:{offset}")),
                }
            }
            chosen
        }
    };
    if !problems.is_empty() {
        bail!("nothing replayed: {}", problems.join("; "));
    }
    Ok(chosen)
}

/// Reads the dead-letter topic of each of `topics` from its start to its end as of now, outside
/// any consumer group: nothing is committed and no group is joined.
pub async fn read(
    config: &DlqConfig,
    service: &str,
    topics: &[Topic],
) -> anyhow::Result<Vec<DeadLetters>> {
    let origins: Vec<String> = topics.iter().map(|t| config.kafka.topic(*t)).collect();
    let consumer: BaseConsumer = config
        .kafka
        .client_config()
        // librdkafka delivers assigned partitions through a group's queue; this group is never
        // joined (no subscribe) and never given an offset.
        .set(
            "group.id",
            config.kafka.name(&format!("{service}.dlq-reader")),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50")
        .create()
        .context("cannot create the Kafka consumer")?;
    let brokers = config.kafka.brokers().to_owned();
    let timeout = config.read_timeout;
    // librdkafka's calls block: keep them off the async threads.
    tokio::task::spawn_blocking(move || read_to_end(&consumer, &brokers, &origins, timeout)).await?
}

fn read_to_end(
    consumer: &BaseConsumer,
    brokers: &str,
    origins: &[String],
    timeout: Duration,
) -> anyhow::Result<Vec<DeadLetters>> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut queues = Vec::new();
    let mut assignment = TopicPartitionList::new();
    // (queue, partition) → the end as of now: what is read.
    let mut ends = BTreeMap::new();
    for (index, origin) in origins.iter().enumerate() {
        let name = dlq_of(origin);
        let metadata = until(deadline, || consumer.fetch_metadata(Some(&name), left()))
            .with_context(|| {
                format!("cannot read the metadata of {name} from Kafka at {brokers}")
            })?;
        let partitions = match metadata.topics().iter().find(|t| t.name() == name) {
            None => None,
            Some(t) => match t.error() {
                None => Some(t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>()),
                Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => None,
                Some(e) => bail!("cannot read {name}: {}", RDKafkaErrorCode::from(e)),
            },
        };
        let exists = partitions.as_ref().is_some_and(|p| !p.is_empty());
        for partition in partitions.unwrap_or_default() {
            let (low, high) = until(deadline, || {
                consumer.fetch_watermarks(&name, partition, left())
            })
            .with_context(|| format!("cannot read the offsets of {name}[{partition}]"))?;
            if high > low {
                assignment.add_partition_offset(&name, partition, Offset::Offset(low))?;
                ends.insert((index, partition), high);
            }
        }
        queues.push(DeadLetters {
            name,
            origin: origin.clone(),
            exists,
            letters: Vec::new(),
        });
    }
    if ends.is_empty() {
        return Ok(queues);
    }
    consumer.assign(&assignment)?;
    let names: Vec<String> = queues.iter().map(|q| q.name.clone()).collect();
    let index_of = |topic: &str| names.iter().position(|name| name == topic);
    // Dead letters are written without transactions, so a partition's offsets have no gaps: it
    // is read once the offset before its end has arrived.
    let mut last_error = None;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            let unread: Vec<String> = ends
                .keys()
                .map(|(q, p)| format!("{}[{p}]", queues[*q].name))
                .collect();
            bail!(
                "timed out after {timeout:?} (DLQ_TIMEOUT_MS) reading {}{}",
                unread.join(", "),
                last_error.map(|e| format!(": {e}")).unwrap_or_default()
            );
        }
        let message = match consumer.poll(left().min(Duration::from_millis(200))) {
            None => continue,
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                last_error = Some(e);
                continue;
            }
        };
        let Some(index) = index_of(message.topic()) else {
            continue;
        };
        let key = (index, message.partition());
        let Some(&end) = ends.get(&key) else {
            continue;
        };
        if message.offset() >= end {
            ends.remove(&key);
            continue;
        }
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        queues[index].letters.push(DeadLetter {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: message
                .timestamp()
                .to_millis()
                .and_then(DateTime::from_timestamp_millis),
            event: message.payload().and_then(|p| RawEvent::from_slice(p).ok()),
        });
        if message.offset() + 1 >= end {
            ends.remove(&key);
        }
    }
    for queue in &mut queues {
        queue.letters.sort_by_key(|l| (l.partition, l.offset));
    }
    Ok(queues)
}

/// Calls `read` until it succeeds or `deadline` passes: a partition just created has no leader
/// for a moment, and a leader moves when a broker restarts.
fn until<T>(deadline: Instant, mut read: impl FnMut() -> KafkaResult<T>) -> KafkaResult<T> {
    loop {
        match read() {
            Err(e) if Instant::now() + RETRY_PAUSE < deadline => {
                tracing::debug!(error = %e, "retrying");
                std::thread::sleep(RETRY_PAUSE);
            }
            done => return done,
        }
    }
}

const RETRY_PAUSE: Duration = Duration::from_millis(200);

//! `<service> dlq`: the operator's way back for events the inbox consumer dead-lettered
//! ([`crate::inbox`]). `list` shows what is in the dead-letter topics of the topics a service
//! consumes; once the cause is fixed, `replay` publishes the chosen entries to their origin topic
//! again, byte for byte as they first arrived.
//!
//! Replaying is safe because every consumer of the origin topic deduplicates by event id in its
//! inbox: a consumer that applied the event already ignores the copy, and replaying an entry
//! twice has no second effect. That holds only while the inbox still remembers the event, so
//! entries older than the inbox retention (`INBOX_RETENTION_HOURS`, less a margin) are refused.
//!
//! Only broker settings are needed: no database, no token keys. Every broker call is bounded.

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
use shared_events::{RawEvent, Topic, topic::dlq_of};
use uuid::Uuid;

use crate::kafka::Kafka;
use fleet_config::{ConfigError, Env};

/// The headers the inbox consumer adds when it dead-letters an event; a replay drops exactly
/// these and keeps every other header.
pub const REASON: &str = "dlq-reason";
pub const ORIGIN_TOPIC: &str = "dlq-topic";
pub const ORIGIN_PARTITION: &str = "dlq-partition";
pub const ORIGIN_OFFSET: &str = "dlq-offset";
pub const CONSUMER_GROUP: &str = "dlq-consumer-group";
const DEAD_LETTER_HEADERS: [&str; 5] = [
    REASON,
    ORIGIN_TOPIC,
    ORIGIN_PARTITION,
    ORIGIN_OFFSET,
    CONSUMER_GROUP,
];

/// A replayed event must reach every consumer group while the inbox rows of the groups that
/// applied it are still kept: this much of the inbox retention is left for their lag.
const RETENTION_MARGIN: Duration = Duration::from_secs(3600);

/// What `<service> dlq` needs: `KAFKA_BROKERS` (required), `KAFKA_TOPIC_PREFIX`,
/// `KAFKA_MESSAGE_TIMEOUT_MS` (30000, how long a replayed event may take to be delivered),
/// `DLQ_TIMEOUT_MS` (10000, how long reading the dead-letter topics may take in all) and the
/// retention settings ([`crate::retention::RetentionConfig`]), which must be the consumers' own.
#[derive(Debug, Clone)]
pub struct DlqConfig {
    pub kafka: Kafka,
    pub read_timeout: Duration,
    /// How long consumers keep a processed event id; `None` for ever.
    pub inbox_retention: Option<Duration>,
}

impl DlqConfig {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let brokers: String = env.required("KAFKA_BROKERS");
        let prefix: String = env.or("KAFKA_TOPIC_PREFIX", String::new());
        let message_timeout = env.millis("KAFKA_MESSAGE_TIMEOUT_MS", 30_000);
        let security = crate::kafka::KafkaSecurity::read(&mut env);
        let read_timeout = env.millis("DLQ_TIMEOUT_MS", 10_000);
        // The consumers' own retention settings, read and checked as they read them.
        let inbox_retention = crate::retention::RetentionConfig::read(&mut env).inbox;
        if read_timeout.is_zero() || message_timeout.is_zero() {
            env.invalid("DLQ_TIMEOUT_MS and KAFKA_MESSAGE_TIMEOUT_MS must be at least 1");
        }
        env.finish()?;
        Ok(Self {
            kafka: Kafka::with_settings(&brokers, &prefix, message_timeout, security),
            read_timeout,
            inbox_retention,
        })
    }
}

/// The help text of `<service> dlq`.
pub fn usage(service: &str) -> String {
    let pad = " ".repeat(service.len());
    format!(
        "usage: {service} dlq list [--topic T] [--all-groups]
       {pad}     the dead letters of the topics {service} consumes, read up to now: each
       {pad}     entry's partition:offset, event id and type, origin, consumer group and
       {pad}     reason; --all-groups adds those other services dead-lettered
       {service} dlq replay (--all | --event ID... | --offset P:O...) [--topic T] [--dry-run]
       {pad}     once the cause is fixed: publish {service}'s entries to their origin topic
       {pad}     again, as they first arrived (each inbox ignores an event it has applied)
       {pad}     --topic T: only the dead letters of topic T (needed with --offset when
       {pad}     {service} consumes several topics); --dry-run: say what would be replayed
configuration from the environment: KAFKA_BROKERS, KAFKA_TOPIC_PREFIX, KAFKA_MESSAGE_TIMEOUT_MS,
DLQ_TIMEOUT_MS, INBOX_RETENTION_HOURS (the consumers' own: older entries are not replayed)"
    )
}

/// When the process's first argument is `dlq`, runs the dead-letter command of `service`, which
/// consumes `topics`, and exits with its status (0 done, 1 failed, 2 misused); otherwise returns
/// at once. Call it first in `main`.
pub async fn run_if_asked(service: &str, topics: &[Topic]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("dlq") {
        return;
    }
    fleet_config::print_env_if_asked(|env| DlqConfig::from_env(env).map(drop));
    std::process::exit(run(service, topics, &args[1..], Env::from_process()).await);
}

/// `<service> dlq <args>`; returns the exit status.
pub async fn run(service: &str, topics: &[Topic], args: &[String], env: Env) -> i32 {
    let command = match Command::parse(args, topics) {
        Ok(Command::Help) => {
            println!("{}", usage(service));
            return 0;
        }
        Ok(command) => command,
        Err(e) => {
            eprintln!("{service} dlq: {e}\n{}", usage(service));
            return 2;
        }
    };
    let config = match DlqConfig::from_env(env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{service} dlq: {e}");
            return 2;
        }
    };
    let done = match command {
        Command::Help => Ok(()),
        Command::List { topic, all_groups } => {
            list(&config, service, &chosen(topics, topic), all_groups).await
        }
        Command::Replay {
            selection,
            topic,
            dry_run,
        } => {
            replay(
                &config,
                service,
                &chosen(topics, topic),
                &selection,
                dry_run,
            )
            .await
        }
    };
    match done {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{service} dlq: {e:#}");
            1
        }
    }
}

fn chosen(topics: &[Topic], only: Option<Topic>) -> Vec<Topic> {
    match only {
        Some(topic) => vec![topic],
        None => topics.to_vec(),
    }
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every entry of this service's group, one copy per event id.
    All,
    /// One copy of each of these events.
    Events(Vec<Uuid>),
    /// Exactly these dead-letter partition:offset positions.
    Offsets(Vec<(i32, i64)>),
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    List {
        topic: Option<Topic>,
        all_groups: bool,
    },
    Replay {
        selection: Selection,
        topic: Option<Topic>,
        dry_run: bool,
    },
}

impl Command {
    fn parse(args: &[String], consumed: &[Topic]) -> Result<Self, String> {
        let (verb, mut rest) = match args.split_first() {
            None => return Err("say list or replay".into()),
            Some((verb, rest)) => (verb.as_str(), rest.iter().map(String::as_str).peekable()),
        };
        if matches!(verb, "-h" | "--help" | "help") {
            return Ok(Command::Help);
        }
        let (mut topic, mut all_groups, mut dry_run, mut all) = (None, false, false, false);
        let (mut events, mut offsets) = (Vec::new(), Vec::new());
        while let Some(arg) = rest.next() {
            match arg {
                "-h" | "--help" => return Ok(Command::Help),
                "--topic" => {
                    let name = rest.next().ok_or("--topic needs a topic name")?;
                    // The DLQ's name is accepted too: it is what an operator sees in `list`.
                    let name = name.strip_suffix(".dlq").unwrap_or(name);
                    let found = consumed.iter().find(|t| t.name() == name).ok_or_else(|| {
                        let names: Vec<&str> = consumed.iter().map(|t| t.name()).collect();
                        format!(
                            "not a topic this service consumes: {name} (it consumes {})",
                            names.join(", ")
                        )
                    })?;
                    topic = Some(*found);
                }
                "--all-groups" if verb == "list" => all_groups = true,
                "--dry-run" if verb == "replay" => dry_run = true,
                "--all" if verb == "replay" => all = true,
                "--event" if verb == "replay" => {
                    let before = events.len();
                    while let Some(id) = rest.next_if(|a| !a.starts_with("--")) {
                        events.push(
                            id.parse::<Uuid>()
                                .map_err(|e| format!("event id {id:?}: {e}"))?,
                        );
                    }
                    if events.len() == before {
                        return Err("--event needs at least one event id".into());
                    }
                }
                "--offset" if verb == "replay" => {
                    let before = offsets.len();
                    while let Some(position) = rest.next_if(|a| !a.starts_with("--")) {
                        offsets.push(parse_position(position)?);
                    }
                    if offsets.len() == before {
                        return Err("--offset needs at least one PARTITION:OFFSET".into());
                    }
                }
                other => return Err(format!("unexpected {other:?}")),
            }
        }
        match verb {
            "list" => Ok(Command::List { topic, all_groups }),
            "replay" => {
                let selection = match (all, events.is_empty(), offsets.is_empty()) {
                    (true, true, true) => Selection::All,
                    (false, false, true) => Selection::Events(events),
                    (false, true, false) => {
                        if topic.is_none() && consumed.len() > 1 {
                            return Err("--offset needs --topic: this service consumes several topics, each with its own dead letters".into());
                        }
                        Selection::Offsets(offsets)
                    }
                    _ => return Err("replay needs exactly one of --all, --event, --offset".into()),
                };
                Ok(Command::Replay {
                    selection,
                    topic,
                    dry_run,
                })
            }
            other => Err(format!("unknown command {other:?}")),
        }
    }
}

fn parse_position(position: &str) -> Result<(i32, i64), String> {
    let invalid = || format!("{position:?} is not PARTITION:OFFSET");
    let (partition, offset) = position.split_once(':').ok_or_else(invalid)?;
    Ok((
        partition.parse().map_err(|_| invalid())?,
        offset.parse().map_err(|_| invalid())?,
    ))
}

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
    fn too_old(&self, retention: Option<Duration>, now: DateTime<Utc>) -> bool {
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
                "would replay {} {} to {origin}",
                queue.name,
                letter.summary()
            );
        }
        println!("dry run: nothing replayed");
        return Ok(());
    }
    let producer = config
        .kafka
        .producer()
        .context("cannot create the Kafka producer")?;
    let mut replayed = 0;
    for (queue, letter) in &chosen {
        let origin = letter.header(ORIGIN_TOPIC).unwrap_or(&queue.origin);
        // Back to the event's partition: where its key's later events are too.
        let partition = letter
            .header(ORIGIN_PARTITION)
            .and_then(|p| p.parse::<i32>().ok());
        let mut record = FutureRecord::<[u8], [u8]>::to(origin);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(key) = &letter.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &letter.payload {
            record = record.payload(payload.as_slice());
        }
        if let Some(headers) = letter.original_headers() {
            record = record.headers(headers);
        }
        let delivered = producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(e, _)| e)
            .with_context(|| {
                format!(
                    "cannot replay {} {} to {origin} ({replayed} replayed before it)",
                    queue.name,
                    letter.position()
                )
            })?;
        replayed += 1;
        println!(
            "replayed {} {} to {origin}[{}]@{}",
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
fn select<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn letter(partition: i32, offset: i64, group: &str, event: Option<RawEvent>) -> DeadLetter {
        DeadLetter {
            partition,
            offset,
            key: Some(b"book-1".to_vec()),
            payload: Some(b"{}".to_vec()),
            headers: vec![
                ("traceparent".into(), Some(b"00-abc".to_vec())),
                (REASON.into(), Some(b"no book".to_vec())),
                (ORIGIN_TOPIC.into(), Some(b"rental.events".to_vec())),
                (ORIGIN_PARTITION.into(), Some(b"2".to_vec())),
                (ORIGIN_OFFSET.into(), Some(b"7".to_vec())),
                (CONSUMER_GROUP.into(), Some(group.as_bytes().to_vec())),
            ],
            timestamp: Some(Utc::now()),
            event,
        }
    }

    fn event(id: Uuid, age: chrono::Duration) -> RawEvent {
        RawEvent {
            specversion: "1.0".into(),
            id,
            event_type: "BookRented".into(),
            source: "rental".into(),
            subject: "book-1".into(),
            time: Utc::now() - age,
            datacontenttype: "application/json".into(),
            correlationid: None,
            traceparent: None,
            data: serde_json::json!({}),
        }
    }

    fn queue(letters: Vec<DeadLetter>) -> Vec<DeadLetters> {
        vec![DeadLetters {
            name: "rental.events.dlq".into(),
            origin: "rental.events".into(),
            exists: true,
            letters,
        }]
    }

    #[test]
    fn the_command_line_is_parsed() {
        let one = [Topic::Rental];
        let id = Uuid::new_v4();
        assert_eq!(
            Command::parse(&args("list --all-groups"), &one),
            Ok(Command::List {
                topic: None,
                all_groups: true
            })
        );
        assert_eq!(
            Command::parse(&args(&format!("replay --event {id} --dry-run")), &one),
            Ok(Command::Replay {
                selection: Selection::Events(vec![id]),
                topic: None,
                dry_run: true
            })
        );
        assert_eq!(
            Command::parse(
                &args("replay --offset 0:3 1:4 --topic rental.events.dlq"),
                &one
            ),
            Ok(Command::Replay {
                selection: Selection::Offsets(vec![(0, 3), (1, 4)]),
                topic: Some(Topic::Rental),
                dry_run: false
            })
        );
        assert_eq!(
            Command::parse(&args("replay --help"), &one),
            Ok(Command::Help)
        );
        for wrong in [
            "",
            "replay",
            "replay --all --event",
            "replay --all --offset 0:1",
            "replay --offset 3",
            "replay --event not-an-id",
            "list --topic book.events",
            "list --dry-run",
            "purge",
        ] {
            assert!(Command::parse(&args(wrong), &one).is_err(), "{wrong:?}");
        }
        let err = Command::parse(&args("replay --offset 0:1"), &Topic::ALL).unwrap_err();
        assert!(err.contains("--offset needs --topic"), "{err}");
    }

    #[test]
    fn a_replay_keeps_the_original_headers_and_drops_the_dead_letter_ones() {
        let headers = letter(0, 0, "book-management", None)
            .original_headers()
            .unwrap();
        let kept: Vec<(String, Option<Vec<u8>>)> = headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(kept, vec![("traceparent".into(), Some(b"00-abc".to_vec()))]);
    }

    #[test]
    fn only_the_services_own_entries_are_selected_and_unknown_ones_refused() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let queues = queue(vec![
            letter(
                0,
                0,
                "book-management",
                Some(event(a, chrono::Duration::zero())),
            ),
            letter(0, 1, "payment", Some(event(b, chrono::Duration::zero()))),
            // The same event dead-lettered again after a replay before the fix.
            letter(
                0,
                2,
                "book-management",
                Some(event(a, chrono::Duration::zero())),
            ),
        ]);
        let all = select(&queues, "book-management", &Selection::All).unwrap();
        assert_eq!(all.len(), 1, "one copy per event, only its own");
        assert_eq!(all[0].1.offset, 0);

        let err = select(&queues, "book-management", &Selection::Events(vec![b]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dead-lettered by payment"), "{err}");
        let unknown = Uuid::new_v4();
        let err = select(
            &queues,
            "book-management",
            &Selection::Events(vec![a, unknown]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("no dead letter of event {unknown}")),
            "{err}"
        );
        let err = select(
            &queues,
            "book-management",
            &Selection::Offsets(vec![(3, 9)]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no dead letter at 3:9"), "{err}");
        let picked = select(
            &queues,
            "book-management",
            &Selection::Offsets(vec![(0, 2)]),
        )
        .unwrap();
        assert_eq!(picked[0].1.offset, 2);
    }

    #[test]
    fn entries_the_inbox_may_have_forgotten_are_too_old() {
        let retention = Some(Duration::from_secs(720 * 3600));
        let now = Utc::now();
        let young = letter(
            0,
            0,
            "g",
            Some(event(Uuid::new_v4(), chrono::Duration::days(29))),
        );
        let old = letter(
            0,
            0,
            "g",
            Some(event(Uuid::new_v4(), chrono::Duration::days(30))),
        );
        assert!(!young.too_old(retention, now));
        assert!(old.too_old(retention, now));
        assert!(
            !old.too_old(None, now),
            "an inbox kept for ever forgets nothing"
        );
        let mut unknown_age = letter(0, 0, "g", None);
        unknown_age.timestamp = None;
        assert!(unknown_age.too_old(retention, now));
    }

    #[test]
    fn the_command_needs_only_the_broker() {
        let config = DlqConfig::from_env(Env::from_pairs([
            ("KAFKA_BROKERS", "k:9092"),
            ("KAFKA_TOPIC_PREFIX", "staging."),
        ]))
        .unwrap();
        assert_eq!(
            config.kafka.name("book-management"),
            "staging.book-management"
        );
        assert_eq!(
            config.inbox_retention,
            Some(Duration::from_secs(720 * 3600))
        );
        let err = DlqConfig::from_env(Env::from_pairs([("INBOX_RETENTION_HOURS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("KAFKA_BROKERS is required"), "{err}");
    }
}

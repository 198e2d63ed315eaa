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

use std::time::Duration;

use shared_events::Topic;
use uuid::Uuid;

use crate::kafka::Kafka;
use fleet_config::{ConfigError, Env};

mod letters;
pub use letters::*;

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

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rdkafka::message::Headers;
    use shared_events::RawEvent;

    use super::letters::select;
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

//! TLS to PostgreSQL and SASL_SSL to Kafka through the kit's own configuration, as a deployment
//! reaches a managed server: `DATABASE_URL` with `sslmode=verify-full`, `KAFKA_SECURITY_PROTOCOL`
//! `SASL_SSL`; and the signing keys fetched over HTTPS (`JWKS_URL`, `JWKS_CA_FILE`). The servers are the test command's (scripts/lib/tls.sh): a CA made for the run
//! signs a certificate for the name `localhost` alone; PostgreSQL lets role `fleet_tls` in over
//! TLS only, and the broker has a SASL_SSL listener with PLAIN credentials.

use std::time::Duration;

use fleet_config::Env;
use fleet_messaging::kafka::Kafka;
use fleet_service::KitConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

fn given(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests through scripts/test.sh, which makes a CA and \
             serves PostgreSQL and Kafka over TLS with it (scripts/lib/tls.sh)"
        )
    })
}

/// A service's configuration from these variables on top of a minimal valid set.
fn config(vars: &[(&str, String)]) -> Result<KitConfig, fleet_config::ConfigError> {
    let mut pairs: Vec<(String, String)> = vec![
        (
            "DATABASE_URL".into(),
            "postgres://unused@localhost/unused".into(),
        ),
        ("KAFKA_BROKERS".into(), "localhost:1".into()),
    ];
    pairs.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let mut env = Env::from_pairs(pairs);
    let config = KitConfig::read(&mut env, "public");
    env.finish().map(|()| config)
}

/// The TLS version of this connection as the server sees it, `None` over plain text.
async fn database_tls(url: String) -> Result<Option<String>, sqlx::Error> {
    let config = config(&[("DATABASE_URL", url)]).expect("valid configuration");
    let pool = fleet_database::pool(&config.database)?;
    let (ssl, version): (bool, Option<String>) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    Ok(ssl.then_some(version).flatten())
}

#[tokio::test]
async fn postgres_verify_full_reaches_a_server_our_ca_signed_over_tls() {
    let url = given("FLEET_TLS_PG_URL");
    let ca = given("FLEET_TLS_CA");
    let version = database_tls(format!("{url}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .expect("verify-full with the server's CA connects");
    let version = version.expect("the connection is encrypted");
    assert!(version.starts_with("TLSv1."), "{version}");
}

#[tokio::test]
async fn postgres_verify_full_refuses_another_ca_a_wrong_name_and_plain_text() {
    let url = given("FLEET_TLS_PG_URL");
    let ca = given("FLEET_TLS_CA");
    let other_ca = given("FLEET_TLS_OTHER_CA");

    // A certificate no CA we trust signed (the web PKI's roots included).
    let err = database_tls(format!("{url}?sslmode=verify-full&sslrootcert={other_ca}"))
        .await
        .expect_err("another CA's trust refuses the server");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    let err = database_tls(format!("{url}?sslmode=verify-full"))
        .await
        .expect_err("the public roots alone refuse a private CA");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    // The certificate names `localhost`; the same server by address is not who it says (and by
    // name it connects: the test above).
    let by_address = url.replace("@localhost:", "@127.0.0.1:");
    assert_ne!(by_address, url);
    let err = database_tls(format!("{by_address}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .expect_err("verify-full checks the name");
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");

    // The server requires TLS of this role, as a managed server requires secure transport.
    let err = database_tls(format!("{url}?sslmode=disable"))
        .await
        .expect_err("plain text is refused");
    assert!(
        err.to_string().contains("no encryption"),
        "refused by pg_hba.conf for want of TLS: {err}"
    );
}

/// The Kafka settings of the SASL_SSL listener, changed by `tweak`.
fn kafka(prefix: &str, tweak: impl FnOnce(&mut Vec<(&'static str, String)>)) -> Kafka {
    let mut vars = vec![
        ("KAFKA_BROKERS", given("FLEET_TLS_KAFKA_BROKERS")),
        ("KAFKA_TOPIC_PREFIX", prefix.to_owned()),
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL".to_owned()),
        ("KAFKA_SASL_MECHANISM", "PLAIN".to_owned()),
        ("KAFKA_SASL_USERNAME", given("FLEET_TLS_KAFKA_USERNAME")),
        ("KAFKA_SASL_PASSWORD", given("FLEET_TLS_KAFKA_PASSWORD")),
        ("KAFKA_SSL_CA_LOCATION", given("FLEET_TLS_CA")),
    ];
    tweak(&mut vars);
    Kafka::new(&config(&vars).expect("valid Kafka settings").messaging)
}

fn set(vars: &mut Vec<(&'static str, String)>, name: &'static str, value: String) {
    vars.retain(|(n, _)| *n != name);
    vars.push((name, value));
}

/// Whether a client with these settings gets the cluster's metadata.
async fn reaches(kafka: &Kafka) -> Result<(), String> {
    let client: BaseConsumer = kafka.client_config().create().map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        client
            .fetch_metadata(None, Duration::from_secs(5))
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

/// Under `--kafka mock` (librdkafka's mock broker) there is no SASL_SSL listener to reach.
fn mock_broker() -> bool {
    std::env::var("FLEET_KAFKA").as_deref() == Ok("mock")
}

#[tokio::test]
async fn kafka_sasl_ssl_carries_an_event_from_the_kits_producer_to_its_consumer() {
    if mock_broker() {
        eprintln!("--kafka mock: no SASL_SSL listener in this run");
        return;
    }
    let prefix = format!("tls-{}.", uuid::Uuid::new_v4());
    let kafka = kafka(&prefix, |_| {});
    let topic = kafka.name("events");

    // The admin protocol over the same listener: how the topic Job would create topics.
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create().unwrap();
    for result in admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create the topic over SASL_SSL")
    {
        result.expect("topic created");
    }

    let producer = kafka.producer().expect("producer");
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("over TLS"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered over SASL_SSL");

    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", kafka.name("tls-test"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("an event within 30 s")
        .expect("a message");
    assert_eq!(message.payload(), Some(&b"over TLS"[..]));
}

#[tokio::test]
async fn kafka_sasl_ssl_refuses_a_wrong_password_another_ca_a_wrong_name_and_plain_text() {
    if mock_broker() {
        eprintln!("--kafka mock: no SASL_SSL listener in this run");
        return;
    }
    // The settings as given work: each refusal below is the one thing changed.
    reaches(&kafka("tls.", |_| {}))
        .await
        .expect("the right settings reach the broker");

    let wrong_password = kafka("tls.", |v| set(v, "KAFKA_SASL_PASSWORD", "guess".into()));
    let err = reaches(&wrong_password)
        .await
        .expect_err("a wrong password");
    assert!(!err.is_empty());

    let other_ca = kafka("tls.", |v| {
        set(v, "KAFKA_SSL_CA_LOCATION", given("FLEET_TLS_OTHER_CA"))
    });
    reaches(&other_ca).await.expect_err("another CA");

    let by_address = kafka("tls.", |v| {
        let brokers = given("FLEET_TLS_KAFKA_BROKERS").replace("localhost:", "127.0.0.1:");
        set(v, "KAFKA_BROKERS", brokers)
    });
    reaches(&by_address)
        .await
        .expect_err("the certificate names localhost, not its address");

    let plain = kafka("tls.", |v| {
        v.retain(|(n, _)| n.starts_with("KAFKA_BROKERS") || *n == "KAFKA_TOPIC_PREFIX")
    });
    reaches(&plain)
        .await
        .expect_err("plain text to a TLS listener");
}

#[test]
fn half_configured_security_is_refused_at_start() {
    let err = config(&[("KAFKA_SECURITY_PROTOCOL", "SASL_SSL".into())])
        .expect_err("SASL without credentials");
    assert!(err.to_string().contains("KAFKA_SASL_USERNAME"), "{err}");
    let err = config(&[
        ("KAFKA_SASL_USERNAME", "fleet".into()),
        ("KAFKA_SASL_PASSWORD", "secret".into()),
    ])
    .expect_err("credentials a plain-text client would never send");
    assert!(err.to_string().contains("sends no credentials"), "{err}");
    let err = config(&[("KAFKA_SECURITY_PROTOCOL", "TLS".into())]).expect_err("no such protocol");
    assert!(err.to_string().contains("SASL_SSL"), "{err}");
    let debug = format!(
        "{:?}",
        config(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL".into()),
            ("KAFKA_SASL_USERNAME", "fleet".into()),
            ("KAFKA_SASL_PASSWORD", "hunter2-secret".into()),
        ])
        .unwrap()
    );
    assert!(!debug.contains("hunter2-secret"), "{debug}");
}

/// A JWKS served over HTTPS with the test CA's certificate for `localhost` (the test command's
/// server.pem and server.key, beside FLEET_TLS_CA): its URL, and how many TLS handshakes failed.
async fn jwks_over_https() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{ServerConfig, crypto::aws_lc_rs};

    let dir = std::path::PathBuf::from(given("FLEET_TLS_CA"))
        .parent()
        .unwrap()
        .to_owned();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config =
        ServerConfig::builder_with_provider(std::sync::Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/.well-known/jwks.json",
        listener.local_addr().unwrap().port()
    );
    let key = fleet_auth::keys::RsaPrivateKey::generate().unwrap();
    let body = serde_json::to_string(&fleet_auth::JwkSet {
        keys: vec![key.jwk().clone()],
    })
    .unwrap();
    let refused = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = refused.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (acceptor, body, counted) = (acceptor.clone(), body.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    counted.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                // One request per connection: read its head, answer, close.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, refused)
}

/// Token checks against `url` with `ca`, running until the test ends.
fn jwks_keys(url: &str, ca: String) -> fleet_auth::RemoteKeys {
    let mut env = Env::from_pairs([("JWKS_URL", url.to_owned()), ("JWKS_CA_FILE", ca)]);
    let config = fleet_auth::AuthConfig::read(&mut env);
    env.finish().expect("valid JWKS settings");
    let keys = fleet_auth::RemoteKeys::new(config).unwrap();
    tokio::spawn(keys.clone().run(
        fleet_http::health::Readiness::default(),
        tokio_util::sync::CancellationToken::new(),
    ));
    keys
}

#[tokio::test]
async fn jwks_over_https_is_fetched_with_the_ca_of_jwks_ca_file_and_no_other() {
    let (url, refused) = jwks_over_https().await;
    let keys = jwks_keys(&url, given("FLEET_TLS_CA"));
    fleet_testing::eventually("the keys over HTTPS", Duration::from_secs(30), || {
        let held = keys.holds_keys();
        async move { held.then_some(()) }
    })
    .await;
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Another CA: the handshake fails, and no keys are held.
    let (url, refused) = jwks_over_https().await;
    let keys = jwks_keys(&url, given("FLEET_TLS_OTHER_CA"));
    fleet_testing::eventually("a refused handshake", Duration::from_secs(30), || {
        let n = refused.load(std::sync::atomic::Ordering::SeqCst);
        async move { (n > 0).then_some(()) }
    })
    .await;
    assert!(!keys.holds_keys());
}

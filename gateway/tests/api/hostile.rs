//! Hostile traffic against the fleet's servers (the kit's, so every service's and the
//! gateway's): clients that never finish their headers, more connections than the cap, and
//! made-up methods. What holds: memory and series stay bounded, and other clients are served.

use std::time::{Duration, Instant};

use reqwest::Method;
use service_kit::testing::{ServiceProcess, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::Fleet;

fn address(process: &ServiceProcess) -> &str {
    process.base_url.trim_start_matches("http://")
}

/// The process's exported series (lines of samples) and its resident memory.
async fn series_and_rss(fleet: &Fleet, process: &ServiceProcess) -> (usize, f64) {
    let metrics = fleet
        .client
        .get(format!("{}/metrics", process.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = metrics.lines().filter(|l| !l.starts_with('#')).count();
    (series, sample(&metrics, "process_resident_memory_bytes"))
}

/// Reads what the server sends until it closes the connection (or `within` passes: None).
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut answer = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut answer)).await {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn clients_that_never_finish_their_headers_are_closed_and_keep_no_one_out() {
    let fleet = Fleet::start_with(&[("HTTP_HEADER_READ_TIMEOUT_MS", "3000")]).await;
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut stream = TcpStream::connect(address(&fleet.gateway)).await.unwrap();
        stream
            .write_all(b"GET /api/v1/books HTTP/1.1\r\nHost: fleet\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    let opened = Instant::now();

    let asked = Instant::now();
    let answer = fleet.client.get(fleet.url("/livez")).send().await.unwrap();
    let took = asked.elapsed();
    assert_eq!(answer.status(), 200);
    assert!(
        took < Duration::from_secs(2),
        "a new client waited {took:?}"
    );

    // Each slow connection is closed once the time-out has passed, and not long after.
    for stream in &mut slow {
        let left = Duration::from_secs(10).saturating_sub(opened.elapsed());
        assert!(
            until_closed(stream, left).await.is_some(),
            "a slow connection still open {:?} after it began",
            opened.elapsed()
        );
    }
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= Duration::from_millis(2900),
        "{closed_after:?}"
    );
    eprintln!(
        "500 slow connections: a new client answered in {took:?}; all closed {closed_after:?} after they began"
    );
}

#[tokio::test]
async fn beyond_the_connection_cap_a_client_is_answered_503_at_once() {
    let fleet = Fleet::start_with(&[("HTTP_MAX_CONNECTIONS", "50")]).await;
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(TcpStream::connect(address(&fleet.gateway)).await.unwrap());
    }
    // The ones beyond the cap get their answer at once; the others wait for a request.
    let answers = futures::future::join_all(
        held.iter_mut()
            .map(|stream| until_closed(stream, Duration::from_millis(500))),
    )
    .await;
    let mut refused = 0;
    for answer in answers.into_iter().flatten() {
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("Retry-After: 1"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        refused += 1;
    }
    assert!(
        (10..=20).contains(&refused),
        "{refused} of 60 refused with a cap of 50"
    );
    drop(held);

    // Once they are gone, the server serves again, and counted what it refused.
    let metrics = fleet
        .client
        .get(format!("{}/metrics", fleet.gateway.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&metrics, "http_connections_refused_total"),
        refused as f64
    );
}

/// Requests with made-up methods `from..to` (405), then 20 whose method is longer than the
/// largest head a server reads (431).
async fn scan(fleet: &Fleet, process: &ServiceProcess, from: usize, to: usize) {
    for i in from..to {
        let method =
            Method::from_bytes(format!("SCAN{i}{}", "X".repeat(i % 200)).as_bytes()).unwrap();
        let answer = fleet
            .client
            .request(method, format!("{}/livez", process.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 405);
    }
    for _ in 0..20 {
        let mut stream = TcpStream::connect(address(process)).await.unwrap();
        let head = format!(
            "{} /livez HTTP/1.1\r\nHost: fleet\r\n\r\n",
            "M".repeat(60_000)
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let answer = until_closed(&mut stream, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
}

#[tokio::test]
async fn made_up_methods_add_no_series_and_no_memory() {
    let fleet = Fleet::start().await;
    for process in [&fleet.gateway, &fleet.user] {
        // The first scrape adds the series of /metrics itself; the warm-up those of `OTHER`.
        series_and_rss(&fleet, process).await;
        scan(&fleet, process, 0, 50).await;
        let before = series_and_rss(&fleet, process).await;
        scan(&fleet, process, 50, 1050).await;
        let after = series_and_rss(&fleet, process).await;
        assert_eq!(
            after.0, before.0,
            "series grew with the methods clients made up"
        );
        let grown = (after.1 - before.1) / 1e6;
        assert!(grown < 8.0, "RSS grew {grown:.1} MB");
        eprintln!(
            "{}: 1,000 made-up methods and 20 60 kB ones: {} series before and after, RSS {:.1} → {:.1} MB",
            process.base_url,
            before.0,
            before.1 / 1e6,
            after.1 / 1e6
        );
    }
}

#[tokio::test]
async fn a_sign_in_storm_is_answered_fast_and_keeps_memory_bounded() {
    let fleet = Fleet::start().await;
    let (_, rss_before) = series_and_rss(&fleet, &fleet.user).await;
    let attempt = || async {
        fleet
            .client
            .post(fleet.url("/api/v1/auth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", "nobody@fleet.example"),
                ("password", "guess guess guess"),
            ])
            .send()
            .await
            .unwrap()
    };
    let started = Instant::now();
    let answers = futures::future::join_all((0..300).map(|_| attempt())).await;
    let took = started.elapsed();
    let (mut refused, mut locked, mut busy) = (0, 0, 0);
    for answer in answers {
        match answer.status().as_u16() {
            400 => refused += 1,
            // After a few failures the address is locked out: no more password checks.
            429 => {
                assert!(answer.headers().contains_key("retry-after"));
                locked += 1;
            }
            503 => {
                assert_eq!(answer.headers()["retry-after"], "1");
                busy += 1;
            }
            other => panic!("a sign-in answered {other}: {:?}", answer.text().await),
        }
    }
    assert!(refused > 0, "some attempts were checked");
    let (_, rss_after) = series_and_rss(&fleet, &fleet.user).await;
    let rss_mb = rss_after / 1e6;
    // One hash of 19 MiB a CPU at a time, whatever the rate: the service and its workers'
    // memory stay well under a 256 Mi pod limit (the report that led here measured 2.9 GB).
    assert!(
        rss_mb < 120.0,
        "the user service holds {rss_mb:.0} MB after the storm ({:.0} MB before; {refused} checked, {locked} locked out, {busy} refused)",
        rss_before / 1e6
    );
    // The storm is over at once, and signing in works.
    fleet.sign_in(crate::helpers::MANAGER_EMAIL).await;
    eprintln!(
        "300 concurrent sign-ins in {took:?}: {refused} checked (400), {locked} locked out \
         (429), {busy} refused (503); user RSS {:.1} → {rss_mb:.1} MB",
        rss_before / 1e6
    );
}

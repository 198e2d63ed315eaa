//! Replicas behind one Service address, as Kubernetes runs them: kube-proxy picks a replica per
//! connection, not per request, and clients keep connections alive. Two things follow, each
//! shown here with a stand-in for that address ([`ServiceAddress`]):
//! - replicas added under load get their share of it within seconds, because every connection
//!   retires after a bounded age (`HTTP_CONNECTION_MAX_AGE_MS`) with an answer that says so;
//! - a request sent on a pooled connection just as its replica closes it (a rolling restart) is
//!   not a client error: reads and keyed rents are sent again, and rental answers a rent it
//!   already made with the same rental.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_testing::{ServiceProcess, fleet_binary};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Fleet, answered};

/// What the stand-in does to the next request sent on a connection that already carried one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The request never reaches the replica: its connection is closed as it arrives, as a
    /// stopping replica closes an idle connection at the moment a request goes out on it.
    CloseBeforeForwarding,
    /// The replica gets and serves the request, and the connection is closed before the answer
    /// gets back.
    CloseAfterForwarding,
}

/// A Service's virtual address: each new connection goes to the next replica in turn, bytes
/// flow unchanged, until [`ServiceAddress::arm`] sets a fault for one request.
struct ServiceAddress {
    url: String,
    replicas: Arc<Mutex<Vec<SocketAddr>>>,
    fault: Arc<Mutex<Option<Fault>>>,
    stop: CancellationToken,
}

impl ServiceAddress {
    async fn start(replicas: &[&ServiceProcess]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let this = Self {
            url,
            replicas: Arc::new(Mutex::new(Vec::new())),
            fault: Arc::default(),
            stop: CancellationToken::new(),
        };
        for replica in replicas {
            this.add(replica);
        }
        let (replicas, fault, stop) =
            (this.replicas.clone(), this.fault.clone(), this.stop.clone());
        tokio::spawn(async move {
            let next = AtomicUsize::new(0);
            loop {
                let client = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap().0,
                    () = stop.cancelled() => return,
                };
                let replica = {
                    let replicas = replicas.lock().unwrap();
                    replicas[next.fetch_add(1, Ordering::Relaxed) % replicas.len()]
                };
                tokio::spawn(carry(client, replica, fault.clone(), stop.clone()));
            }
        });
        this
    }

    fn add(&self, replica: &ServiceProcess) {
        let address = replica
            .base_url
            .trim_start_matches("http://")
            .parse()
            .unwrap();
        self.replicas.lock().unwrap().push(address);
    }

    fn arm(&self, fault: Fault) {
        *self.fault.lock().unwrap() = Some(fault);
    }

    fn armed(&self) -> bool {
        self.fault.lock().unwrap().is_some()
    }
}

impl Drop for ServiceAddress {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One client connection and its replica's, copying both ways, with the fault applied to the
/// first request sent after the connection carried one.
async fn carry(
    client: TcpStream,
    replica: SocketAddr,
    fault: Arc<Mutex<Option<Fault>>>,
    stop: CancellationToken,
) {
    let Ok(upstream) = TcpStream::connect(replica).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_replica, mut to_replica) = upstream.into_split();
    let cut = stop.child_token();
    let swallow_answer = Arc::new(AtomicBool::new(false));
    let requests = {
        let (cut, swallow_answer) = (cut.clone(), swallow_answer.clone());
        async move {
            let (mut buf, mut carried) = (vec![0u8; 16 * 1024], false);
            loop {
                let n = match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let fault = if carried {
                    fault.lock().unwrap().take()
                } else {
                    None
                };
                carried = true;
                match fault {
                    Some(Fault::CloseBeforeForwarding) => break,
                    Some(Fault::CloseAfterForwarding) => {
                        swallow_answer.store(true, Ordering::SeqCst)
                    }
                    None => {}
                }
                if to_replica.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            cut.cancel();
        }
    };
    let answers = {
        let cut = cut.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match from_replica.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if swallow_answer.load(Ordering::SeqCst)
                    || to_client.write_all(&buf[..n]).await.is_err()
                {
                    break;
                }
            }
            cut.cancel();
        }
    };
    // Either side ending ends both: dropping the halves closes the sockets.
    tokio::select! {
        () = async { tokio::join!(requests, answers); } => {}
        () = cut.cancelled() => {}
    }
}

#[tokio::test]
async fn a_rent_on_a_pooled_connection_its_replica_closes_is_no_client_error_and_no_double_rent() {
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let customer = fleet.sign_up().await;
    let rental = ServiceAddress::start(&[&fleet.rental]).await;
    let gateway = fleet
        .another_gateway(&[("UPSTREAM_RENTAL", &rental.url)])
        .await;
    let rent = |book: String| {
        let (client, url, token) = (
            fleet.client.clone(),
            format!("{}/api/v1/rentals", gateway.base_url),
            customer.token.clone(),
        );
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"bookId": book}))
                .send()
                .await
                .unwrap()
        }
    };
    let rentals_of = |book: String| {
        let sql = format!("SELECT count(*) FROM rental.rentals WHERE book_id = '{book}'");
        let db = fleet.db.admin.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    // A first rent leaves the gateway a pooled connection to the replica.
    let first = fleet.book(&manager, 300).await;
    assert_eq!(rent(first).await.status(), 201);

    for fault in [Fault::CloseBeforeForwarding, Fault::CloseAfterForwarding] {
        let book = fleet.book(&manager, 300).await;
        rental.arm(fault);
        let answer = rent(book.clone()).await;
        assert!(
            !rental.armed(),
            "{fault:?}: the rent went out on the pooled connection"
        );
        assert_eq!(answer.status(), 201, "{fault:?}: {:?}", answer.text().await);
        let rented: Value = answer.json().await.unwrap();
        assert_eq!(rented["bookId"], book.as_str());
        assert_eq!(
            rentals_of(book).await,
            1,
            "{fault:?}: one rental, however often sent"
        );
    }
    assert_eq!(
        fleet.count("payment.payments").await,
        3,
        "one payment per rent"
    );

    // What may have taken effect and carries no key is not sent again: the client learns the
    // connection broke, and nothing happened twice.
    let book = fleet.book(&manager, 300).await;
    let rented: Value = rent(book).await.json().await.unwrap();
    let cancel = format!(
        "{}/api/v1/rentals/{}/cancel",
        gateway.base_url,
        rented["id"].as_str().unwrap()
    );
    rental.arm(Fault::CloseAfterForwarding);
    let answer = fleet
        .client
        .post(&cancel)
        .bearer_auth(&customer.token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 502);
}

#[tokio::test]
async fn replicas_added_under_load_get_their_share_within_seconds() {
    let fleet = Fleet::start().await;
    let customer = fleet.sign_up().await;
    let books = ServiceAddress::start(&[&fleet.books]).await;
    let gateway = fleet
        .another_gateway(&[("UPSTREAM_BOOK_MANAGEMENT", &books.url)])
        .await;

    // Eight clients reading the catalogue as fast as it answers, through keep-alive connections.
    let stop = CancellationToken::new();
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, token, stop) = (
                fleet.client.clone(),
                format!("{}/api/v1/books", gateway.base_url),
                customer.token.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut failures = 0;
                while !stop.is_cancelled() {
                    let ok = client.get(&url).bearer_auth(&token).send().await;
                    failures += usize::from(!ok.is_ok_and(|r| r.status() == 200));
                }
                failures
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The autoscaler adds two replicas; the Service sends new connections to all three.
    let mut added = Vec::new();
    for _ in 0..2 {
        added.push(ServiceProcess::spawn(&fleet_binary("book-management"), &fleet.books_env).await);
    }
    let replicas = [&fleet.books, &added[0], &added[1]];
    let at = Instant::now();
    for replica in &replicas[1..] {
        books.add(replica);
    }
    let counts = async || {
        let mut counts = Vec::new();
        for replica in replicas {
            counts.push(answered(&fleet, &replica.ops_base_url).await);
        }
        counts
    };
    // Each second's share of the requests, per replica.
    let mut before = counts().await;
    let mut timeline = Vec::new();
    for _ in 0..9 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counts().await;
        let served: Vec<f64> = now.iter().zip(&before).map(|(n, b)| n - b).collect();
        let total: f64 = served.iter().sum();
        timeline.push((
            at.elapsed().as_secs_f64(),
            served.iter().map(|s| s / total).collect::<Vec<_>>(),
            total,
        ));
        before = now;
    }
    stop.cancel();
    let mut failures = 0;
    for client in load {
        failures += client.await.unwrap();
    }
    for (seconds, shares, total) in &timeline {
        let shares: Vec<String> = shares
            .iter()
            .map(|s| format!("{:.0} %", s * 100.0))
            .collect();
        eprintln!(
            "{seconds:4.1} s after the replicas were added: {total:.0} requests, shares {shares:?}"
        );
    }
    assert_eq!(failures, 0, "no request failed while the replicas joined");
    // Connections retire after HTTP_CONNECTION_MAX_AGE_MS (5 s by default): from then on every
    // replica serves its part (a third, give or take), not the first replica all of it.
    for (seconds, shares, _) in timeline.iter().filter(|(s, ..)| *s > 6.5) {
        for (replica, share) in shares.iter().enumerate() {
            assert!(
                *share > 0.15,
                "{seconds:.1} s after they were added, replica {replica} served {:.0} %: {timeline:?}",
                share * 100.0
            );
        }
    }
}

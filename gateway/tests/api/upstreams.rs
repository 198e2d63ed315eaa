use std::time::Duration;

use fleet_testing::{ReservedPort, ServiceProcess, fleet_binary};

use crate::helpers::{Fleet, answered, refused};

#[tokio::test]
async fn requests_are_balanced_across_replicas_and_a_dead_address_is_skipped() {
    let fleet = Fleet::start().await;
    let customer = fleet.sign_up().await;
    // A second replica of book-management, in the same schema, as a Deployment scales it.
    let mut second =
        ServiceProcess::spawn(&fleet_binary("book-management"), &fleet.books_env).await;
    let closed = closed_port();
    let nobody = format!("http://127.0.0.1:{}", closed.port());
    let addresses = format!("{},{nobody},{}", fleet.books.base_url, second.base_url);
    let gateway = fleet
        .another_gateway(&[("UPSTREAM_BOOK_MANAGEMENT", &addresses)])
        .await;
    let get = || fleet.get_at(&gateway.base_url, "/api/v1/books", &customer.token);
    for _ in 0..20 {
        assert_eq!(get().await.status(), 200);
    }
    let (first, other) = (
        answered(&fleet, &fleet.books.ops_base_url).await,
        answered(&fleet, &second.ops_base_url).await,
    );
    assert_eq!(first + other, 20.0);
    assert!(first >= 5.0 && other >= 5.0, "{first} and {other}");

    // A replica that goes away mid-run costs no request.
    second.kill().await;
    for _ in 0..20 {
        assert_eq!(get().await.status(), 200);
    }
}

#[tokio::test]
async fn an_unreachable_service_is_a_502_and_a_silent_one_a_504() {
    let fleet = Fleet::start().await;
    let customer = fleet.sign_up().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    // Accepts connections and never answers, as a hung process would.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let closed = closed_port();
    let unreachable = format!("http://127.0.0.1:{}", closed.port());
    let gateway = fleet
        .another_gateway(&[
            ("UPSTREAM_BOOK_MANAGEMENT", &unreachable),
            ("UPSTREAM_RENTAL", &silent_url),
            ("UPSTREAM_TIMEOUT_MS", "300"),
        ])
        .await;
    let at = gateway.base_url.as_str();
    let books = fleet.get_at(at, "/api/v1/books", &customer.token).await;
    let problem = refused(books, 502).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("book-management")
    );
    let started = std::time::Instant::now();
    let rental = format!("/api/v1/rentals/{}", uuid::Uuid::new_v4());
    let problem = refused(fleet.get_at(at, &rental, &customer.token).await, 504).await;
    assert!(problem["detail"].as_str().unwrap().contains("rental"));
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A port nothing listens on, held so that nothing will while the test runs.
fn closed_port() -> ReservedPort {
    ReservedPort::new()
}

//! The HTTP contract between rental (consumer) and payment (provider): rental's real
//! `PaymentClient` states it against pact's mock server, and the committed pact is replayed
//! against the real payment binary, with its own database and broker, provider states set up
//! through payment's test-only hook (feature `provider-states`). Each request carries rental's
//! token: the pact states its shape (a bearer token), the verification brings a valid one.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::Utc;
use contract_tests::events::uuid;
use contract_tests::{pacts, verify};
use fleet_auth::ClientCredentials;
use fleet_testing::{
    ServiceProcess, TEST_RENTAL_CLIENT_SECRET, TestDatabase, TestIdentity, TestKafka, fleet_binary,
    rental_token, service_env,
};
use pact_consumer::prelude::*;
use pact_consumer::{json_pattern, term};
use payment::adapters::provider_states::{DECLINES_ABOVE, NO_PAYMENT, RENTAL_PAID};
use rental::adapters::payment::{PaymentClient, PaymentSettings};
use rental::application::{PaymentGateway, PaymentOutcome, PaymentRecord};
use rental::domain::{Rental, RentalStatus};
use serde_json::json;
use uuid::Uuid;

const CUSTOMER: &str = "0192f1c4-7c3a-7000-8000-00000000c001";
/// One rental per interaction, so each interaction's state is its own on one provider.
const NEW_RENTAL: &str = "0192f1c4-7c3a-7000-8000-00000000a001";
const REPEATED_RENTAL: &str = "0192f1c4-7c3a-7000-8000-00000000a002";
const DECLINED_RENTAL: &str = "0192f1c4-7c3a-7000-8000-00000000a003";
const PAID_RENTAL: &str = "0192f1c4-7c3a-7000-8000-00000000a004";
const UNPAID_RENTAL: &str = "0192f1c4-7c3a-7000-8000-00000000a005";
const PAYMENT: &str = "0192f1c4-7c3a-7000-8000-00000000b001";
const FEE: u32 = 450;
/// payment declines amounts above this in the verification run (PAYMENT_DECLINE_AMOUNT_ABOVE).
const DECLINE_LIMIT: u32 = 1000;
const EXPENSIVE: u32 = 5000;

const INTERNAL_PAYMENTS: &str = "/internal/v1/payments";
/// Any bearer token: which one is valid is the provider's business, not the contract's.
const BEARER: &str = r"^Bearer [A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+$";

fn as_rental() -> pact_consumer::patterns::Term<pact_consumer::patterns::StringPattern> {
    term!(
        BEARER,
        "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZW50YWwifQ.c2lnbmF0dXJl"
    )
}
const REPEAT: &str = "a repeat of the same payment request";

fn pay_body(rental: &str, amount: u32) -> JsonPattern {
    json_pattern!({"rentalId": rental, "userId": CUSTOMER, "amount": amount})
}

fn payment_body(status: &str) -> JsonPattern {
    json_pattern!({"id": uuid(PAYMENT), "status": status})
}

fn paid(rental: &str) -> serde_json::Value {
    json!({"rentalId": rental, "userId": CUSTOMER, "amount": FEE})
}

/// What rental expects of payment.
fn pact() -> PactBuilder {
    let mut builder = PactBuilder::new_v4("rental", "payment");
    builder.with_output_dir(pacts::scratch_dir());
    builder
        .interaction("a payment for a new rental", "", |mut i| {
            i.given_with_params(NO_PAYMENT, &json!({"rentalId": NEW_RENTAL}));
            i.request
                .post()
                .path(INTERNAL_PAYMENTS)
                .header("Authorization", as_rental())
                .content_type("application/json")
                .json_body(pay_body(NEW_RENTAL, FEE));
            i.response.created().json_body(payment_body("APPROVED"));
            i
        })
        .interaction(REPEAT, "", |mut i| {
            i.given_with_params(RENTAL_PAID, &paid(REPEATED_RENTAL));
            i.request
                .post()
                .path(INTERNAL_PAYMENTS)
                .header("Authorization", as_rental())
                .content_type("application/json")
                .json_body(pay_body(REPEATED_RENTAL, FEE));
            i.response.ok().json_body(payment_body("APPROVED"));
            i
        })
        .interaction("a payment that is declined", "", |mut i| {
            i.given_with_params(DECLINES_ABOVE, &json!({"limit": DECLINE_LIMIT}));
            i.request
                .post()
                .path(INTERNAL_PAYMENTS)
                .header("Authorization", as_rental())
                .content_type("application/json")
                .json_body(pay_body(DECLINED_RENTAL, EXPENSIVE));
            i.response.created().json_body(payment_body("DECLINED"));
            i
        })
        .interaction("a lookup of a paid rental's payment", "", |mut i| {
            i.given_with_params(RENTAL_PAID, &paid(PAID_RENTAL));
            i.request
                .get()
                .path(INTERNAL_PAYMENTS)
                .header("Authorization", as_rental())
                .query_param("rentalId", PAID_RENTAL);
            i.response
                .ok()
                .json_body(json_pattern!({"items": [payment_body("APPROVED")]}));
            i
        })
        .interaction("a lookup of an unpaid rental", "", |mut i| {
            i.given_with_params(NO_PAYMENT, &json!({"rentalId": UNPAID_RENTAL}));
            i.request
                .get()
                .path(INTERNAL_PAYMENTS)
                .header("Authorization", as_rental())
                .query_param("rentalId", UNPAID_RENTAL);
            i.response.ok().json_body(json_pattern!({"items": []}));
            i
        });
    builder
}

fn rental(id: &str, fee: u32) -> Rental {
    Rental {
        id: id.parse().unwrap(),
        book_id: Uuid::new_v4(),
        user_id: CUSTOMER.parse().unwrap(),
        rental_fee: fee,
        status: RentalStatus::PaymentPending,
        payment_id: None,
        created_at: Utc::now(),
        rented_at: None,
        due_at: None,
        cancelled_at: None,
        returned_at: None,
    }
}

/// rental's real client, as its configuration builds it, pointed at `base_url`, getting its
/// token from `identity` as it would from the user service.
fn payment_client(base_url: &str, identity: &TestIdentity) -> PaymentClient {
    let settings = PaymentSettings {
        base_urls: vec![base_url.to_owned()],
        timeout: Duration::from_secs(5),
        max_concurrent_calls: 8,
        failure_rate: 0.5,
        window: Duration::from_secs(10),
        minimum_calls: 100,
        open_for: Duration::from_secs(1),
        half_open_calls: 1,
        credentials: ClientCredentials::new(
            identity.token_url(),
            "rental",
            TEST_RENTAL_CLIENT_SECRET.to_owned(),
        ),
    };
    PaymentClient::new(settings, &prometheus::Registry::new()).expect("the client builds")
}

#[tokio::test]
async fn rental_pays_and_looks_up_payments_as_its_pact_with_payment_states() {
    pacts::assert_no_tracking();
    let builder = pact();
    let server = builder.start_mock_server(None, None);
    let identity = TestIdentity::start().await;
    let client = payment_client(server.url().as_str(), &identity);
    let approved = PaymentOutcome::Approved {
        payment_id: PAYMENT.parse().unwrap(),
    };

    assert_eq!(
        client.pay(&rental(NEW_RENTAL, FEE)).await,
        Ok(approved.clone())
    );
    assert_eq!(
        client.pay(&rental(REPEATED_RENTAL, FEE)).await,
        Ok(approved)
    );
    assert_eq!(
        client.pay(&rental(DECLINED_RENTAL, EXPENSIVE)).await,
        Ok(PaymentOutcome::Declined)
    );
    assert_eq!(
        client.find(PAID_RENTAL.parse().unwrap()).await.unwrap(),
        Some(PaymentRecord {
            id: PAYMENT.parse().unwrap(),
            approved: true
        })
    );
    assert_eq!(
        client.find(UNPAID_RENTAL.parse().unwrap()).await.unwrap(),
        None
    );
    // Every interaction was used, and used as stated (the mock server panics otherwise).
    drop(server);
    pacts::check_committed(&*builder.build());
}

/// The real payment binary on a fresh database and broker, declining above the limit the pact's
/// decline names; its `/_test/provider-states` comes with the test build's features.
async fn payment_provider() -> ServiceProcess {
    let db = TestDatabase::create().await;
    let database_url = db.add_service("payment_svc", "payment").await;
    let kafka = TestKafka::start().await;
    let mut env = service_env("payment", &database_url, &kafka);
    env.extend(TestIdentity::start().await.env());
    env.push((
        "PAYMENT_DECLINE_AMOUNT_ABOVE".into(),
        DECLINE_LIMIT.to_string(),
    ));
    ServiceProcess::spawn(&fleet_binary("payment"), &env).await
}

fn port_of(base_url: &str) -> u16 {
    base_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a base URL with a port")
}

fn states_url(payment: &ServiceProcess) -> Option<String> {
    Some(format!("{}/_test/provider-states", payment.base_url))
}

#[tokio::test]
async fn payment_honours_its_pact_with_rental() {
    let payment = payment_provider().await;
    verify::http_provider(
        &pacts::file("rental", "payment"),
        "payment",
        port_of(&payment.base_url),
        states_url(&payment),
        &[("Authorization", &format!("Bearer {}", rental_token()))],
    )
    .await
    .assert_passed();
}

/// A stand-in for payment that differs from it in one thing: a repeated payment request is
/// answered 201 instead of 200. It forwards every request to the real payment.
async fn answering_201_to_repeats(payment: &ServiceProcess) -> u16 {
    async fn forward(State(upstream): State<String>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let url = format!("{upstream}{}", parts.uri);
        let answer = reqwest::Client::new()
            .request(parts.method.clone(), url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .expect("payment answers");
        let mut status = answer.status();
        if parts.method == "POST"
            && parts.uri.path() == INTERNAL_PAYMENTS
            && status == reqwest::StatusCode::OK
        {
            status = reqwest::StatusCode::CREATED; // the break
        }
        let mut response = Response::builder().status(status);
        for (name, value) in answer.headers() {
            response = response.header(name, value);
        }
        response
            .body(Body::from(answer.bytes().await.unwrap()))
            .unwrap()
    }
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(payment.base_url.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test]
async fn a_payment_that_answers_201_to_a_repeated_request_fails_verification() {
    let payment = payment_provider().await;
    let stand_in = answering_201_to_repeats(&payment).await;
    let verification = verify::http_provider(
        &pacts::file("rental", "payment"),
        "payment",
        stand_in,
        states_url(&payment),
        &[("Authorization", &format!("Bearer {}", rental_token()))],
    )
    .await;
    // Only the repeat broke, and the report says how; every other interaction still passes
    // through the stand-in.
    verification.assert_failed_with(&[&format!(
        "Verifying a pact between rental and payment Given {RENTAL_PAID} - {REPEAT}: \
         expected 200 but was 201"
    )]);
}

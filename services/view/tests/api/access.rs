//! Who reads what, the filters, the pages, and the problems bad queries get.

use std::collections::HashSet;

use uuid::Uuid;

use crate::helpers::*;

const RENTALS: &str = "/api/v1/views/rentals";
const BOOKS: &str = "/api/v1/views/books";

async fn told() -> (World, App, Story) {
    let world = World::new().await;
    let app = world.spawn().await;
    let story = Story::new();
    world.publish_all(&story.events).await;
    world.applied(story.count()).await;
    (world, app, story)
}

fn id_list(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(Uuid::to_string).collect()
}

#[tokio::test]
async fn a_customer_sees_only_their_own_rentals_and_a_manager_sees_all() {
    let (world, app, story) = told().await;
    let ursula = world.customer_token(story.ursula);
    let ursulas = id_list(&[story.cancelled.id, story.returned.id]);

    let own = page(&app, RENTALS, Some(&ursula)).await;
    assert_eq!(ids(own["items"].as_array().unwrap()), ursulas);
    assert!(own["next"].is_null());
    let named = page(
        &app,
        &format!("{RENTALS}?customerId={}", story.ursula),
        Some(&ursula),
    )
    .await;
    assert_eq!(named, own);
    let filtered = page(&app, &format!("{RENTALS}?status=RETURNED"), Some(&ursula)).await;
    assert_eq!(
        ids(filtered["items"].as_array().unwrap()),
        id_list(&[story.returned.id])
    );

    // Someone else's: refused in the list, not found by id (as unknown).
    let others = get(
        &app,
        &format!("{RENTALS}?customerId={}", story.octavia),
        Some(&ursula),
    )
    .await;
    let problem = assert_problem(others, 403).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("own"),
        "{problem}"
    );
    let octavias = get(
        &app,
        &format!("{RENTALS}/{}", story.overdue.id),
        Some(&ursula),
    )
    .await;
    let hidden = assert_problem(octavias, 404).await;
    let unknown = get(
        &app,
        &format!("{RENTALS}/{}", Uuid::now_v7()),
        Some(&ursula),
    )
    .await;
    let unknown = assert_problem(unknown, 404).await;
    assert_eq!(
        hidden["title"], unknown["title"],
        "someone else's rental looks like no rental"
    );
    let mine = page(
        &app,
        &format!("{RENTALS}/{}", story.cancelled.id),
        Some(&ursula),
    )
    .await;
    assert_eq!(mine["status"], "CANCELLED");

    // The book board is the managers'.
    assert_problem(get(&app, BOOKS, Some(&ursula)).await, 403).await;

    // A manager sees every rental, anyone's by id, and the book board.
    let manager = world.manager_token();
    let all = page(&app, RENTALS, Some(&manager)).await;
    assert_eq!(
        ids(all["items"].as_array().unwrap()),
        id_list(&[
            story.cancelled.id,
            story.returned.id,
            story.overdue.id,
            story.rented.id
        ])
    );
    let octavias = page(
        &app,
        &format!("{RENTALS}/{}", story.overdue.id),
        Some(&manager),
    )
    .await;
    assert_eq!(octavias["customerName"], "Octavia");
    let books = page(&app, BOOKS, Some(&manager)).await;
    assert_eq!(books["items"].as_array().unwrap().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn without_a_valid_token_nothing_is_answered() {
    let (world, app, story) = told().await;
    let anonymous = reqwest::Client::new();
    let expired = world.identity.sign(serde_json::json!({
        "sub": story.ursula.to_string(), "roles": ["customer"],
        "iss": fleet_testing::TEST_ISSUER, "aud": fleet_testing::TEST_AUDIENCE,
        "iat": 1_000, "exp": 2_000,
    }));
    for path in [
        RENTALS.to_owned(),
        format!("{RENTALS}/{}", story.cancelled.id),
        BOOKS.to_owned(),
    ] {
        let response = anonymous.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{path}");
        assert_problem(response, 401).await;
        let response = anonymous
            .get(app.url(&path))
            .bearer_auth(&expired)
            .send()
            .await
            .unwrap();
        assert_problem(response, 401).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_manager_filters_by_customer_book_and_status() {
    let (_world, app, story) = told().await;
    let list = |query: String| {
        let app = &app;
        async move {
            let page = page(app, &format!("{RENTALS}?{query}"), None).await;
            ids(page["items"].as_array().unwrap())
        }
    };
    assert_eq!(
        list(format!("customerId={}", story.octavia)).await,
        id_list(&[story.overdue.id])
    );
    assert_eq!(
        list(format!("bookId={}", story.dispossessed)).await,
        id_list(&[story.cancelled.id, story.returned.id, story.rented.id])
    );
    assert_eq!(
        list("status=RENTED".into()).await,
        id_list(&[story.overdue.id, story.rented.id])
    );
    assert_eq!(
        list(format!("status=RENTED&bookId={}", story.dispossessed)).await,
        id_list(&[story.rented.id])
    );
    assert_eq!(
        list(format!("status=CANCELLED&customerId={}", story.ann)).await,
        Vec::<String>::new()
    );
    assert_eq!(
        list(format!("bookId={}", story.parable)).await,
        Vec::<String>::new()
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_are_stable_without_duplicates_or_gaps() {
    let world = World::new().await;
    let app = world.spawn().await;
    let (ursula, octavia) = (Uuid::now_v7(), Uuid::now_v7());
    let mut events = Vec::new();
    for n in 0..23 {
        // Every third rental is Octavia's; each rental its own book.
        let customer = if n % 3 == 0 { octavia } else { ursula };
        let rental = Rental::new(Uuid::now_v7(), customer, 0);
        events.push(rental.rented());
        events.push(rental.approved());
    }
    world.publish_all(&events).await;
    world.applied(events.len() as i64).await;

    let everything = page(&app, &format!("{RENTALS}?limit=100"), None).await;
    let everything = ids(everything["items"].as_array().unwrap());
    assert_eq!(everything.len(), 23);
    let mut sorted = everything.clone();
    sorted.sort();
    assert_eq!(everything, sorted, "in rental id order");
    for limit in [1, 5, 7, 23] {
        let paged = ids(&every_page(&app, RENTALS, limit, None).await);
        assert_eq!(paged, everything, "pages of {limit}");
    }

    // A customer's pages hold their own rentals only, each once.
    let token = world.customer_token(ursula);
    let own = ids(&every_page(&app, RENTALS, 4, Some(&token)).await);
    assert_eq!(own.len(), 15);
    assert_eq!(own.iter().collect::<HashSet<_>>().len(), 15);

    // A page is not changed by rentals that come after it.
    let first = page(&app, &format!("{RENTALS}?limit=5"), None).await;
    let later = Rental::new(Uuid::now_v7(), ursula, 0);
    world.publish_all(&[later.rented()]).await;
    world.applied(events.len() as i64 + 1).await;
    let again = page(&app, &format!("{RENTALS}?limit=5"), None).await;
    assert_eq!(first["items"], again["items"]);
    assert_eq!(first["next"], again["next"]);
    let last = page(
        &app,
        &format!("{RENTALS}?limit=100&after={}", everything[22]),
        None,
    )
    .await;
    assert_eq!(
        ids(last["items"].as_array().unwrap()),
        vec![later.id.to_string()]
    );

    // The book board pages the same way: every book a rental named, each once.
    let books = ids(&every_page(&app, BOOKS, 4, None).await);
    assert_eq!(books.len(), 24);
    let mut sorted = books.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(books, sorted);
    app.stop().await;
}

#[tokio::test]
async fn overdue_is_a_rented_rental_past_its_due_date() {
    let (world, app, story) = told().await;
    let line = |id: Uuid| {
        let app = &app;
        async move { page(app, &format!("{RENTALS}/{id}"), None).await }
    };
    assert_eq!(line(story.overdue.id).await["overdue"], true);
    assert_eq!(line(story.rented.id).await["overdue"], false, "not due yet");
    assert_eq!(line(story.returned.id).await["overdue"], false, "returned");
    assert_eq!(
        line(story.cancelled.id).await["overdue"],
        false,
        "cancelled"
    );

    // Returned late: no longer overdue.
    world.publish_all(&[story.overdue.returned()]).await;
    world.applied(story.count() + 1).await;
    let returned = line(story.overdue.id).await;
    assert_eq!(returned["status"], "RETURNED");
    assert_eq!(returned["overdue"], false);
    app.stop().await;
}

#[tokio::test]
async fn bad_query_values_are_problems() {
    let world = World::new().await;
    let app = world.spawn().await;
    for path in [
        format!("{RENTALS}?limit=0"),
        format!("{RENTALS}?limit=101"),
        format!("{RENTALS}?limit=many"),
        format!("{RENTALS}?status=LOST"),
        format!("{RENTALS}?status=rented"),
        format!("{RENTALS}?customerId=ursula"),
        format!("{RENTALS}?bookId=1"),
        format!("{RENTALS}?after=yesterday"),
        format!("{RENTALS}?colour=blue"),
        format!("{RENTALS}/not-a-uuid"),
        format!("{BOOKS}?limit=0"),
        format!("{BOOKS}?after=x"),
        format!("{BOOKS}?status=RENTED"),
    ] {
        let problem = assert_problem(get(&app, &path, None).await, 400).await;
        assert_eq!(problem["title"], "Bad Request", "{path}: {problem}");
    }
    let problem = assert_problem(
        get(&app, &format!("{RENTALS}?status=LOST"), None).await,
        400,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("RENTED"),
        "names the statuses: {problem}"
    );
    app.stop().await;
}

//! Who reads what: a customer their own points, a manager anyone's; nothing without a valid
//! token; a customer who has earned nothing reads a zero balance; pages; bad queries.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

/// Ursula and Octavia, one completed rental each.
async fn two_customers(world: &World) -> (Uuid, Uuid) {
    let (ursula, octavia) = (Uuid::now_v7(), Uuid::now_v7());
    let (hers, theirs) = (Rental::new(ursula, 300, 4), Rental::new(octavia, 700, 4));
    world
        .publish_all(&[
            hers.rented(),
            theirs.rented(),
            hers.returned(),
            theirs.returned(),
        ])
        .await;
    world.applied(4).await;
    (ursula, octavia)
}

#[tokio::test]
async fn a_customer_reads_only_their_own_points_and_a_manager_reads_anyones() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (ursula, octavia) = two_customers(&world).await;
    let token = world.customer_token(ursula);

    let mine = statement(&app, MY_POINTS, &token).await;
    assert_eq!(balance(&mine), 30);
    let by_id = statement(&app, &format!("/api/v1/points/{ursula}"), &token).await;
    assert_eq!(by_id, mine, "their own, by id");

    let others = get(&app, &format!("/api/v1/points/{octavia}"), Some(&token)).await;
    let problem = assert_problem(others, 403).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("own"),
        "{problem}"
    );
    let nobodys = get(
        &app,
        &format!("/api/v1/points/{}", Uuid::now_v7()),
        Some(&token),
    )
    .await;
    assert_problem(nobodys, 403).await;

    let manager = world.manager_token();
    let octavias = statement(&app, &format!("/api/v1/points/{octavia}"), &manager).await;
    assert_eq!(octavias["userId"], octavia.to_string());
    assert_eq!(balance(&octavias), 70);
    assert_eq!(balance(&points_of(&world, &app, ursula).await), 30);
    app.stop().await;
}

#[tokio::test]
async fn without_a_valid_token_nothing_is_answered() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let (ursula, _) = two_customers(&world).await;
    let expired = world.identity.sign(json!({
        "sub": ursula.to_string(), "roles": ["customer"],
        "iss": fleet_testing::TEST_ISSUER, "aud": fleet_testing::TEST_AUDIENCE,
        "iat": 1_000, "exp": 2_000,
    }));
    // Not even a malformed id or query is looked at before the token.
    for path in [
        MY_POINTS.to_owned(),
        format!("/api/v1/points/{ursula}"),
        "/api/v1/points/not-a-uuid".to_owned(),
        format!("{MY_POINTS}?limit=0"),
    ] {
        let response = get(&app, &path, None).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{path}");
        assert_problem(response, 401).await;
        let response = get(&app, &path, Some(&expired)).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#,
            "{path}"
        );
        assert_problem(response, 401).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_customer_without_points_has_a_zero_balance_and_an_empty_history() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    two_customers(&world).await;
    // Ann has a rental under way: it has earned nothing yet.
    let ann = Uuid::now_v7();
    world
        .publish_all(&[Rental::new(ann, 500, 0).rented()])
        .await;
    world.applied(5).await;

    let nothing = |customer: Uuid| json!({"userId": customer, "balance": 0, "history": [], "limit": 20, "offset": 0});
    let token = world.customer_token(ann);
    for path in [MY_POINTS.to_owned(), format!("/api/v1/points/{ann}")] {
        assert_eq!(statement(&app, &path, &token).await, nothing(ann), "{path}");
    }
    // A customer points has never heard of, as a manager reads them.
    let stranger = Uuid::now_v7();
    assert_eq!(points_of(&world, &app, stranger).await, nothing(stranger));
    app.stop().await;
}

#[tokio::test]
async fn the_history_is_newest_first_in_pages() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let ursula = Uuid::now_v7();
    let rentals: Vec<Rental> = (0..7)
        .map(|n| Rental::new(ursula, 100 * (n + 1), 30 - i64::from(n)))
        .collect();
    let events: Vec<Event> = rentals
        .iter()
        .flat_map(|rental| [rental.rented(), rental.returned()])
        .collect();
    world.publish_all(&events).await;
    world.applied(events.len()).await;
    let token = world.customer_token(ursula);

    let newest_first: Vec<String> = rentals.iter().rev().map(|r| r.id.to_string()).collect();
    let all = statement(&app, &format!("{MY_POINTS}?limit=100"), &token).await;
    assert_eq!(rental_ids(&all), newest_first);
    assert_eq!(balance(&all), (1..=7).map(|n| 10 * n).sum::<u64>());
    assert_eq!(statement(&app, MY_POINTS, &token).await, {
        let mut default = all.clone();
        default["limit"] = json!(20);
        default
    });

    let mut paged = Vec::new();
    for offset in [0, 3, 6] {
        let page = statement(
            &app,
            &format!("{MY_POINTS}?limit=3&offset={offset}"),
            &token,
        )
        .await;
        assert_eq!(page["limit"], 3);
        assert_eq!(page["offset"], offset);
        assert_eq!(balance(&page), balance(&all), "the balance is every page's");
        paged.extend(rental_ids(&page));
    }
    assert_eq!(paged, newest_first);
    let beyond = statement(&app, &format!("{MY_POINTS}?offset=7"), &token).await;
    assert!(history(&beyond).is_empty());
    assert_eq!(balance(&beyond), balance(&all));
    app.stop().await;
}

#[tokio::test]
async fn bad_query_values_and_ids_are_problems() {
    let world = World::new().await;
    let app = world.spawn(&[]).await;
    let manager = world.manager_token();
    let someone = Uuid::now_v7();
    for path in [
        format!("{MY_POINTS}?limit=0"),
        format!("{MY_POINTS}?limit=101"),
        format!("{MY_POINTS}?limit=many"),
        format!("{MY_POINTS}?limit=-1"),
        format!("{MY_POINTS}?offset=-1"),
        format!("{MY_POINTS}?offset=x"),
        format!("{MY_POINTS}?colour=blue"),
        format!("/api/v1/points/{someone}?limit=0"),
        format!("/api/v1/points/{someone}?after=x"),
        "/api/v1/points/not-a-uuid".to_owned(),
        "/api/v1/points/12345".to_owned(),
    ] {
        let problem = assert_problem(get(&app, &path, Some(&manager)).await, 400).await;
        assert_eq!(problem["title"], "Bad Request", "{path}: {problem}");
    }
    let problem = assert_problem(
        get(&app, &format!("{MY_POINTS}?limit=101"), Some(&manager)).await,
        400,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("between 1 and 100"),
        "{problem}"
    );
    app.stop().await;
}

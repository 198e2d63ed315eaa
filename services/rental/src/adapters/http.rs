//! The rental REST API (docs/design.md §3, §5) and its OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use fleet_auth::Caller;
use fleet_database::DatabaseProblem;
use fleet_http::api::{Json, Path};
use fleet_http::problem::{InvalidParam, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::{
    PaymentGateway, RentError, RentalStore, Rentals, RentalsError, StoreError,
};
use crate::domain::{IdempotencyKey, Rental};

pub const RENTALS: &str = "/api/v1/rentals";

/// Handlers see the use cases and how long to tell a customer to wait before paying again.
#[derive(Clone)]
pub struct Api<S, P> {
    pub rentals: Rentals<S, P>,
    pub retry_after_secs: u64,
}

pub fn routes<S: RentalStore, P: PaymentGateway>(api: Api<S, P>) -> Router {
    Router::new()
        .route(RENTALS, post(rent::<S, P>))
        .route("/api/v1/rentals/{id}", get(get_rental::<S, P>))
        .route("/api/v1/rentals/{id}/cancel", post(cancel::<S, P>))
        .route("/api/v1/rentals/{id}/return", post(return_book::<S, P>))
        .with_state(api)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rental",
        description = "Customers rent, cancel and return books. Renting pays at once, through payment."
    ),
    paths(rent, get_rental, cancel, return_book),
    components(schemas(RentBook, RentalView, Problem, InvalidParam))
)]
pub struct ApiDoc;

/// The book to rent; the customer is the caller.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RentBook {
    book_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RentalView {
    pub id: Uuid,
    pub book_id: Uuid,
    pub user_id: Uuid,
    pub rental_fee: u32,
    #[schema(pattern = "^(PAYMENT_PENDING|RENTED|RETURNED|EXPIRED|CANCELLED|PAYMENT_FAILED)$")]
    pub status: String,
    pub payment_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub rented_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
}

impl From<Rental> for RentalView {
    fn from(r: Rental) -> Self {
        Self {
            id: r.id,
            book_id: r.book_id,
            user_id: r.user_id,
            rental_fee: r.rental_fee,
            status: r.status.as_str().to_owned(),
            payment_id: r.payment_id,
            created_at: r.created_at,
            rented_at: r.rented_at,
            due_at: r.due_at,
            cancelled_at: r.cancelled_at,
            returned_at: r.returned_at,
        }
    }
}

impl From<RentalsError> for Problem {
    fn from(e: RentalsError) -> Self {
        match e {
            RentalsError::NotFound(_) => Problem::not_found(e.to_string()),
            RentalsError::Rule(_) => Problem::conflict(e.to_string()),
            RentalsError::Store(StoreError::Unavailable(e)) => Problem::database(e),
            RentalsError::Store(e @ (StoreError::BookTaken | StoreError::LimitReached)) => {
                Problem::internal(e)
            }
        }
    }
}

fn rent_problem(e: RentError, retry_after_secs: u64) -> Response {
    match e {
        RentError::UnknownBook(_) => Problem::not_found(e.to_string()).into_response(),
        RentError::BookTaken | RentError::LimitReached(_) | RentError::Rule(_) => {
            Problem::conflict(e.to_string()).into_response()
        }
        RentError::Declined => Problem::new(
            StatusCode::PAYMENT_REQUIRED,
            "The payment was declined; nothing was charged.",
        )
        .into_response(),
        RentError::PaymentUnavailable(reason) => {
            tracing::warn!(%reason, "rent answered 503");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Payment is unavailable right now and nothing was charged; please pay again in a moment.",
            )
            .with_retry_after(retry_after_secs)
            .into_response()
        }
        RentError::KeyReused => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response()
        }
        RentError::KeyInFlight => Problem::conflict(e.to_string())
            .with_retry_after(1)
            .into_response(),
        RentError::Store(e) => Problem::database(e).into_response(),
    }
}

/// The `Idempotency-Key` header, when the client sent one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let invalid = |e: &dyn std::fmt::Display| Problem::new(StatusCode::BAD_REQUEST, e.to_string());
    let text = value
        .to_str()
        .map_err(|_| invalid(&crate::domain::InvalidIdempotencyKey))?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|e| invalid(&e))
}

/// The header that makes a rent safe to send again (IETF httpapi's draft of that name).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[utoipa::path(post, path = "/api/v1/rentals", request_body = RentBook, tag = "rentals",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes the rent safe to send again: the same key (1 to 255 visible ASCII characters, a UUID say) gets the rental the first rent with it made, not a second one. A rent that failed frees its key. The gateway gives every rent one that has none")),
    responses(
        (status = 201, description = "Rented and paid (or, with an Idempotency-Key already used, the rental that rent made)", body = RentalView, headers(("Location" = String))),
        (status = 400, description = "An invalid Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Payment declined", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such book", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The book is rented or retired, the customer holds as many active rentals as they may, or the rent with this Idempotency-Key is still being paid for (with Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, or an Idempotency-Key already used to rent another book", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Payment or the database unavailable for a moment; try again after Retry-After seconds", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64))),
    ))]
async fn rent<S: RentalStore, P: PaymentGateway>(
    State(api): State<Api<S, P>>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<RentBook>,
) -> Response {
    let key = match idempotency_key(&headers) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    match api
        .rentals
        .rent(caller.user_id, body.book_id, key.as_ref())
        .await
    {
        Ok(rental) => {
            let location = format!("{RENTALS}/{}", rental.id);
            (
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(RentalView::from(rental)),
            )
                .into_response()
        }
        Err(e) => rent_problem(e, api.retry_after_secs),
    }
}

#[utoipa::path(get, path = "/api/v1/rentals/{id}", tag = "rentals", params(("id" = Uuid, Path)),
    responses((status = 200, body = RentalView), (status = 404, description = "No such rental of the caller's", body = Problem, content_type = "application/problem+json")))]
async fn get_rental<S: RentalStore, P: PaymentGateway>(
    State(api): State<Api<S, P>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<RentalView>, Problem> {
    Ok(Json(
        api.rentals
            .rental(id, caller.user_id, caller.has_role("manager"))
            .await?
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/rentals/{id}/cancel", tag = "rentals", params(("id" = Uuid, Path)),
    responses((status = 200, body = RentalView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not RENTED, past the window for a change of mind, or past the due date", body = Problem, content_type = "application/problem+json")))]
async fn cancel<S: RentalStore, P: PaymentGateway>(
    State(api): State<Api<S, P>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<RentalView>, Problem> {
    Ok(Json(api.rentals.cancel(id, caller.user_id).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/rentals/{id}/return", tag = "rentals", params(("id" = Uuid, Path)),
    responses((status = 200, body = RentalView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not RENTED (an EXPIRED rental has already gone back), or past the due date", body = Problem, content_type = "application/problem+json")))]
async fn return_book<S: RentalStore, P: PaymentGateway>(
    State(api): State<Api<S, P>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<RentalView>, Problem> {
    Ok(Json(
        api.rentals.return_book(id, caller.user_id).await?.into(),
    ))
}

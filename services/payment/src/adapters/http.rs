//! Payment's REST API and its OpenAPI document. The public reads (docs/design.md §5.2: owner,
//! manager) live under `/api/v1` and check the caller's access token. Paying, the lookup by rental
//! and the refund are rental's, service to service, under `/internal/v1`: the gateway only routes
//! `/api/v1`, and each call must carry rental's own token (client credentials, audience `payment`,
//! scope `payments`), so neither a customer nor another pod can pay or refund.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use fleet_auth::{Caller, ServiceCaller};
use fleet_database::DatabaseProblem;
use fleet_http::api::{InvalidFields, Json, Path, Query};
use fleet_http::problem::{InvalidParam, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::{PaymentStore, Payments, PaymentsError, Reader, Settlement, StoreError};
use crate::domain::{Amount, Payment, PaymentError, PaymentId, ValueError};

/// The public reads, for owners and managers; a new payment's Location points here.
pub const PAYMENTS: &str = "/api/v1/payments";
/// rental's way in: paying, looking up and refunding.
pub const INTERNAL_PAYMENTS: &str = "/internal/v1/payments";
/// The scope rental's token must hold for the internal endpoints.
pub const PAYMENTS_SCOPE: &str = "payments";
/// The only client the internal endpoints serve.
pub const RENTAL_CLIENT: &str = "rental";

/// The rental service, proven by its token; any other caller is 401 (no or a bad token) or 403.
pub struct RentalService;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RentalService {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let caller = ServiceCaller::from_request_parts(parts, state).await?;
        if caller.is(RENTAL_CLIENT, PAYMENTS_SCOPE) {
            Ok(RentalService)
        } else {
            tracing::warn!(client_id = %caller.client_id, scopes = ?caller.scopes, "a service without the payments scope called an internal endpoint");
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                format!("Only rental may call this (client {RENTAL_CLIENT:?}, scope {PAYMENTS_SCOPE:?})."),
            )
            .into_response())
        }
    }
}

pub fn routes<S: PaymentStore>(payments: Payments<S>) -> Router {
    Router::new()
        .route(PAYMENTS, get(find_payments::<S>))
        .route("/api/v1/payments/{id}", get(get_payment::<S>))
        .route(INTERNAL_PAYMENTS, get(look_up_payments::<S>).post(pay::<S>))
        .route(
            "/internal/v1/payments/{id}/refund",
            post(refund_payment::<S>),
        )
        .with_state(payments)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "payment",
        description = "Payments of rentals: owners and managers read them; rental pays, looks up and refunds them (internal)."
    ),
    paths(find_payments, get_payment, pay, look_up_payments, refund_payment),
    components(schemas(PayForRental, PaymentView, PaymentList, Problem, InvalidParam)),
    tags(
        (name = "payments", description = "Public reads, with an access token: a customer sees their own payments, a manager every one."),
        (name = "internal", description = "Service to service, for rental only: rental's access token from the client credentials grant (audience payment, scope payments). The gateway never routes /internal/ paths."),
    )
)]
pub struct ApiDoc;

/// A rental to pay for. The rental id is the idempotency key: sending the same request again
/// answers the payment already made. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PayForRental {
    #[schema(value_type = Uuid)]
    rental_id: String,
    /// The customer who rents.
    #[schema(value_type = Uuid)]
    user_id: String,
    /// In the smallest currency unit, 0 to 1,000,000.
    amount: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub id: Uuid,
    pub rental_id: Uuid,
    pub user_id: Uuid,
    pub amount: u32,
    #[schema(pattern = "^(APPROVED|DECLINED|REFUNDED)$")]
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Null until refunded.
    pub refunded_at: Option<DateTime<Utc>>,
}

impl From<Payment> for PaymentView {
    fn from(payment: Payment) -> Self {
        Self {
            id: payment.id.0,
            rental_id: payment.rental_id,
            user_id: payment.user_id,
            amount: payment.amount.value(),
            status: payment.status.as_str().to_owned(),
            created_at: payment.created_at,
            refunded_at: payment.refunded_at,
        }
    }
}

/// A rental's payment: no item, or one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentList {
    pub items: Vec<PaymentView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindQuery {
    /// The rental whose payment to find (required).
    rental_id: Uuid,
}

/// Who the caller reads as: a manager reads every payment, anyone else only their own.
fn reader(caller: &Caller) -> Reader {
    if caller.has_role("manager") {
        Reader::Manager
    } else {
        Reader::Customer(caller.user_id)
    }
}

/// A rental's payment, if any, as the list both lookups answer.
fn payment_list(payment: Option<Payment>) -> Json<PaymentList> {
    Json(PaymentList {
        items: payment.into_iter().map(PaymentView::from).collect(),
    })
}

impl From<PaymentsError> for Problem {
    fn from(e: PaymentsError) -> Self {
        match e {
            PaymentsError::NotFound(_) => Problem::not_found(e.to_string()),
            PaymentsError::RentalIdReused(_) | PaymentsError::Rule(PaymentError::Declined) => {
                Problem::conflict(e.to_string())
            }
            PaymentsError::Store(StoreError::Unavailable(e)) => Problem::database(e),
        }
    }
}

/// An id in a request body: a UUID, never the nil one (no rental or customer has it).
fn id(field: &str, raw: &str) -> Result<Uuid, ValueError> {
    match Uuid::try_parse(raw.trim()) {
        Ok(id) if !id.is_nil() => Ok(id),
        Ok(_) => Err(ValueError(format!("{field} must not be the nil UUID"))),
        Err(_) => Err(ValueError(format!("{field} must be a UUID"))),
    }
}

#[utoipa::path(get, path = "/api/v1/payments", params(FindQuery), tag = "payments",
    responses(
        (status = 200, description = "The rental's payment, if it has one and it is the caller's (a manager's: any)", body = PaymentList),
        (status = 400, description = "rentalId missing or not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn find_payments<S: PaymentStore>(
    State(payments): State<Payments<S>>,
    caller: Caller,
    Query(query): Query<FindQuery>,
) -> Result<Json<PaymentList>, Problem> {
    let payment = payments
        .payment_of_rental(reader(&caller), query.rental_id)
        .await?;
    Ok(payment_list(payment))
}

#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = PaymentView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment of the caller's (a manager's: none at all)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_payment<S: PaymentStore>(
    State(payments): State<Payments<S>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<PaymentView>, Problem> {
    let payment = payments.payment(reader(&caller), PaymentId(id)).await?;
    Ok(Json(payment.into()))
}

#[utoipa::path(post, path = "/internal/v1/payments", request_body = PayForRental, tag = "internal",
    description = "Internal: rental pays for a rental; the rental id is the idempotency key. The gateway never routes it.",
    responses(
        (status = 201, description = "Paid now: approved or declined; Location is the public path", body = PaymentView, headers(("Location" = String))),
        (status = 200, description = "The rental was already paid for by this same request", body = PaymentView),
        (status = 401, description = "No token, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A token, but not rental's", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The rental id was used for another customer or amount", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values or unknown fields", body = Problem, content_type = "application/problem+json"),
    ))]
async fn pay<S: PaymentStore>(
    State(payments): State<Payments<S>>,
    _rental: RentalService,
    Json(body): Json<PayForRental>,
) -> Result<Response, Problem> {
    let mut fields = InvalidFields::default();
    let rental_id = fields.check("rentalId", id("rentalId", &body.rental_id));
    let user_id = fields.check("userId", id("userId", &body.user_id));
    let amount = fields.check("amount", Amount::parse(body.amount));
    let (Some(rental_id), Some(user_id), Some(amount)) = (rental_id, user_id, amount) else {
        return Err(fields.into_problem());
    };
    Ok(match payments.settle(rental_id, user_id, amount).await? {
        Settlement::New(payment) => {
            // Where the payment is read: the public path, the only one the gateway routes.
            let location = format!("{PAYMENTS}/{}", payment.id);
            (
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(PaymentView::from(payment)),
            )
                .into_response()
        }
        Settlement::Repeated(payment) => Json(PaymentView::from(payment)).into_response(),
    })
}

#[utoipa::path(get, path = "/internal/v1/payments", params(FindQuery), tag = "internal",
    description = "Internal: rental's reconciler finds a rental's payment, whoever paid it. The gateway never routes it.",
    responses(
        (status = 200, description = "The rental's payment, if it has one", body = PaymentList),
        (status = 401, description = "No token, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A token, but not rental's", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "rentalId missing or not a UUID", body = Problem, content_type = "application/problem+json"),
    ))]
async fn look_up_payments<S: PaymentStore>(
    State(payments): State<Payments<S>>,
    _rental: RentalService,
    Query(query): Query<FindQuery>,
) -> Result<Json<PaymentList>, Problem> {
    Ok(payment_list(payments.for_rental(query.rental_id).await?))
}

#[utoipa::path(post, path = "/internal/v1/payments/{id}/refund", tag = "internal", params(("id" = Uuid, Path)),
    description = "Internal: rental's reconciler refunds a payment. The gateway never routes it.",
    responses(
        (status = 200, description = "Refunded (refunding again changes nothing)", body = PaymentView),
        (status = 401, description = "No token, or not a valid one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A token, but not rental's", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The payment was declined: nothing to refund", body = Problem, content_type = "application/problem+json"),
    ))]
async fn refund_payment<S: PaymentStore>(
    State(payments): State<Payments<S>>,
    _rental: RentalService,
    Path(id): Path<Uuid>,
) -> Result<Json<PaymentView>, Problem> {
    Ok(Json(payments.refund(PaymentId(id)).await?.into()))
}

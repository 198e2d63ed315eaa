//! Payment's REST API and its OpenAPI document. `POST /payments` and the refund are internal
//! (rental calls them; the gateway never routes them); the reads are public (DESIGN.md §5).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_kit::http::{InvalidFields, Json, Path, Query};
use service_kit::problem::{InvalidParam, Problem};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::{PaymentStore, Payments, PaymentsError, Settlement};
use crate::domain::{Amount, Payment, PaymentError, PaymentId, ValueError};

pub const PAYMENTS: &str = "/api/v1/payments";

pub fn routes<S: PaymentStore>(payments: Payments<S>) -> Router {
    Router::new()
        .route(PAYMENTS, get(find_payments::<S>).post(pay::<S>))
        .route("/api/v1/payments/{id}", get(get_payment::<S>))
        .route("/api/v1/payments/{id}/refund", post(refund_payment::<S>))
        .with_state(payments)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "payment",
        description = "Payments of rentals: rental pays and refunds (internal); owners and managers read them."
    ),
    paths(pay, find_payments, get_payment, refund_payment),
    components(schemas(PayForRental, PaymentView, PaymentList, Problem, InvalidParam))
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

impl From<PaymentsError> for Problem {
    fn from(e: PaymentsError) -> Self {
        match e {
            PaymentsError::NotFound(_) => Problem::not_found(e.to_string()),
            PaymentsError::RentalIdReused(_) | PaymentsError::Rule(PaymentError::Declined) => {
                Problem::conflict(e.to_string())
            }
            PaymentsError::Store(e) => Problem::internal(e),
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

#[utoipa::path(post, path = "/api/v1/payments", request_body = PayForRental, tag = "payments",
    description = "Internal: rental calls it; the gateway does not route it.",
    responses(
        (status = 201, description = "Paid now: approved or declined", body = PaymentView, headers(("Location" = String))),
        (status = 200, description = "The rental was already paid for by this same request", body = PaymentView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The rental id was used for another customer or amount", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values or unknown fields", body = Problem, content_type = "application/problem+json"),
    ))]
async fn pay<S: PaymentStore>(
    State(payments): State<Payments<S>>,
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

#[utoipa::path(get, path = "/api/v1/payments", params(FindQuery), tag = "payments",
    responses(
        (status = 200, description = "The rental's payment, if it has one", body = PaymentList),
        (status = 400, description = "rentalId missing or not a UUID", body = Problem, content_type = "application/problem+json"),
    ))]
async fn find_payments<S: PaymentStore>(
    State(payments): State<Payments<S>>,
    Query(query): Query<FindQuery>,
) -> Result<Json<PaymentList>, Problem> {
    let payment = payments.for_rental(query.rental_id).await?;
    Ok(Json(PaymentList {
        items: payment.into_iter().map(PaymentView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = PaymentView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_payment<S: PaymentStore>(
    State(payments): State<Payments<S>>,
    Path(id): Path<Uuid>,
) -> Result<Json<PaymentView>, Problem> {
    Ok(Json(payments.payment(PaymentId(id)).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/payments/{id}/refund", tag = "payments", params(("id" = Uuid, Path)),
    description = "Internal: rental's reconciler calls it; the gateway does not route it.",
    responses(
        (status = 200, description = "Refunded (refunding again changes nothing)", body = PaymentView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The payment was declined: nothing to refund", body = Problem, content_type = "application/problem+json"),
    ))]
async fn refund_payment<S: PaymentStore>(
    State(payments): State<Payments<S>>,
    Path(id): Path<Uuid>,
) -> Result<Json<PaymentView>, Problem> {
    Ok(Json(payments.refund(PaymentId(id)).await?.into()))
}

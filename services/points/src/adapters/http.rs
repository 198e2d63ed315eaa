//! Points' REST API (docs/design.md §5) and its OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use fleet_auth::Caller;
use fleet_database::DatabaseProblem;
use fleet_http::api::{Json, Path, Query};
use fleet_http::problem::{InvalidParam, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::{Page, PointsStore, Statement, StatementError, Statements, StoreError};
use crate::domain::Credit;

pub const MY_POINTS: &str = "/api/v1/points/me";
pub const CUSTOMER_POINTS: &str = "/api/v1/points/{userId}";

/// Entries per page unless asked, and at most.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

pub fn routes<S: PointsStore>(statements: Statements<S>) -> Router {
    Router::new()
        .route(MY_POINTS, get(get_my_points::<S>))
        .route(CUSTOMER_POINTS, get(get_customer_points::<S>))
        .with_state(statements)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "points",
        description = "Points customers earn when a rental completes (returned or expired; none for a cancelled one): a customer reads their own balance and history, a manager anyone's. Built from rental.events, so it may trail rental by a moment."
    ),
    paths(get_my_points, get_customer_points),
    components(schemas(PointsView, EarningView, Problem, InvalidParam))
)]
pub struct ApiDoc;

/// A customer's points: the balance and a page of the history that makes it up. Named
/// `PointsStatement` in the document: the gateway's merged document holds every service's
/// schemas under one set of names.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = PointsStatement)]
#[serde(rename_all = "camelCase")]
pub struct PointsView {
    pub user_id: Uuid,
    /// Every point earned so far.
    pub balance: u64,
    /// Newest first.
    pub history: Vec<EarningView>,
    pub limit: u32,
    pub offset: u32,
}

/// What one completed rental earned.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = PointsEarning)]
#[serde(rename_all = "camelCase")]
pub struct EarningView {
    pub rental_id: Uuid,
    pub book_id: Uuid,
    pub points: u64,
    /// The fee the points were earned on, in the smallest currency unit.
    pub rental_fee: u32,
    /// How the rental completed: returned by the customer, or expired at its due date.
    #[schema(pattern = "^(RETURNED|EXPIRED)$")]
    pub reason: String,
    /// When the rental completed.
    pub earned_at: DateTime<Utc>,
}

impl From<Credit> for EarningView {
    fn from(credit: Credit) -> Self {
        Self {
            rental_id: credit.rental_id,
            book_id: credit.book_id,
            points: credit.points.value(),
            rental_fee: credit.rental_fee,
            reason: credit.reason.as_str().to_owned(),
            earned_at: credit.earned_at,
        }
    }
}

impl PointsView {
    fn of(statement: Statement, page: Page) -> Self {
        Self {
            user_id: statement.customer_id,
            balance: statement.balance.value(),
            history: statement
                .history
                .into_iter()
                .map(EarningView::from)
                .collect(),
            limit: page.limit,
            offset: page.offset,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1 to 100, default 20.
    limit: Option<u32>,
    /// How many of the newest entries to skip; default 0.
    offset: Option<u32>,
}

impl HistoryQuery {
    fn page(&self) -> Result<Page, Problem> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::bad_request(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(Page {
            limit,
            offset: self.offset.unwrap_or(0),
        })
    }
}

impl From<StatementError> for Problem {
    fn from(e: StatementError) -> Self {
        match e {
            StatementError::OthersPoints => Problem::new(StatusCode::FORBIDDEN, e.to_string()),
            StatementError::Store(StoreError::Unavailable(e)) => Problem::database(e),
        }
    }
}

async fn statement<S: PointsStore>(
    statements: &Statements<S>,
    caller: &Caller,
    customer_id: Uuid,
    query: &HistoryQuery,
) -> Result<Json<PointsView>, Problem> {
    let page = query.page()?;
    let statement = statements
        .statement(caller.reader(), customer_id, page)
        .await?;
    Ok(Json(PointsView::of(statement, page)))
}

#[utoipa::path(get, path = "/api/v1/points/me", operation_id = "get_my_points", params(HistoryQuery), tag = "points",
    responses(
        (status = 200, description = "The caller's balance and a page of their history, newest first (balance 0 and no history before their first completed rental)", body = PointsView),
        (status = 400, description = "A query value is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_my_points<S: PointsStore>(
    State(statements): State<Statements<S>>,
    caller: Caller,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<PointsView>, Problem> {
    statement(&statements, &caller, caller.user_id, &query).await
}

#[utoipa::path(get, path = "/api/v1/points/{userId}", operation_id = "get_customer_points", tag = "points",
    params(("userId" = Uuid, Path, description = "The customer"), HistoryQuery),
    responses(
        (status = 200, description = "The customer's balance and a page of their history, newest first (balance 0 and no history for a customer who has earned nothing)", body = PointsView),
        (status = 400, description = "The user id is not a UUID, or a query value is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer asked for someone else's points", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_customer_points<S: PointsStore>(
    State(statements): State<Statements<S>>,
    // Before the path and the query: without a valid token nothing else is looked at.
    caller: Caller,
    Path(customer_id): Path<Uuid>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<PointsView>, Problem> {
    statement(&statements, &caller, customer_id, &query).await
}

//! The boards' REST API (docs/design.md §5) and its OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use fleet_auth::{Caller, Manager};
use fleet_database::DatabaseProblem;
use fleet_http::api::{Json, Path, Query};
use fleet_http::problem::{InvalidParam, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::{Board, BoardError, BoardStore, Page, Reader, RentalFilter, StoreError};
use crate::domain::{BookLine, RentalLine, RentalStatus};

pub const RENTALS: &str = "/api/v1/views/rentals";
pub const BOOKS: &str = "/api/v1/views/books";

pub fn routes<S: BoardStore>(board: Board<S>) -> Router {
    Router::new()
        .route(RENTALS, get(list_rentals::<S>))
        .route("/api/v1/views/rentals/{id}", get(get_rental::<S>))
        .route(BOOKS, get(list_books::<S>))
        .with_state(board)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "view",
        description = "The read side: the rental status board (a customer sees their own rentals, a manager every one) and the book board (managers). Built from the fleet's events, so it may trail the other services by a moment."
    ),
    paths(list_rentals, get_rental, list_books),
    components(schemas(
        RentalView,
        RentalPage,
        BookView,
        BookPage,
        RenterView,
        StatusParam,
        Problem,
        InvalidParam
    ))
)]
pub struct ApiDoc;

/// A line of the rental status board. Fields are null until the event that brings them has
/// reached the view. The board's schemas are named `RentalBoardLine`, `BookBoardLine`, … in the
/// document: rental's `RentalView` and book-management's `BookView` are other shapes, and the
/// gateway's merged document holds them all under one set of names.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = RentalBoardLine)]
#[serde(rename_all = "camelCase")]
pub struct RentalView {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: Option<String>,
    pub book_id: Option<Uuid>,
    pub book_title: Option<String>,
    /// In the smallest currency unit.
    pub rental_fee: Option<u32>,
    /// Null while only the payment's events have arrived.
    #[schema(pattern = "^(RENTED|RETURNED|EXPIRED|CANCELLED)$")]
    pub status: Option<String>,
    #[schema(pattern = "^(APPROVED|REFUNDED)$")]
    pub payment_status: Option<String>,
    pub payment_id: Option<Uuid>,
    pub rented_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
    /// RENTED and past its due date, at the time of the answer.
    pub overdue: bool,
}

impl RentalView {
    fn of(line: RentalLine) -> Self {
        let overdue = line.rental.overdue(line.read_at);
        let r = line.rental;
        Self {
            id: r.id,
            customer_id: r.customer_id,
            customer_name: line.customer_name,
            book_id: r.book_id,
            book_title: line.book_title,
            rental_fee: r.rental_fee,
            status: r.status.map(|s| s.as_str().to_owned()),
            payment_status: r.payment_status.map(|s| s.as_str().to_owned()),
            payment_id: r.payment_id,
            rented_at: r.rented_at,
            due_at: r.due_at,
            returned_at: r.returned_at,
            cancelled_at: r.cancelled_at,
            refunded_at: r.refunded_at,
            overdue,
        }
    }
}

/// One page of the rental status board; pass `next` as `after` for the following one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = RentalBoardPage)]
pub struct RentalPage {
    pub items: Vec<RentalView>,
    pub next: Option<Uuid>,
}

/// A line of the book board. Title, author and fee are null for a book the view has only seen
/// named by a rental so far.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = BookBoardLine)]
#[serde(rename_all = "camelCase")]
pub struct BookView {
    pub id: Uuid,
    pub title: Option<String>,
    pub author: Option<String>,
    pub rental_fee: Option<u32>,
    #[schema(pattern = "^(AVAILABLE|RENTED|RETIRED)$")]
    pub status: String,
    /// Who holds the book; null unless it is RENTED.
    pub current_renter: Option<RenterView>,
    pub times_rented: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenterView {
    pub rental_id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: Option<String>,
}

impl From<BookLine> for BookView {
    fn from(line: BookLine) -> Self {
        let status = line.availability().as_str().to_owned();
        let details = line.book.details;
        Self {
            id: line.book.id,
            title: details.as_ref().map(|d| d.title.clone()),
            author: details.as_ref().map(|d| d.author.clone()),
            rental_fee: details.as_ref().map(|d| d.rental_fee),
            status,
            current_renter: line.renter.map(|r| RenterView {
                rental_id: r.rental_id,
                customer_id: r.customer_id,
                customer_name: r.customer_name,
            }),
            times_rented: line.times_rented,
        }
    }
}

/// One page of the book board; pass `next` as `after` for the following one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = BookBoardPage)]
pub struct BookPage {
    pub items: Vec<BookView>,
    pub next: Option<Uuid>,
}

/// A rental status to filter by.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusParam {
    Rented,
    Returned,
    Expired,
    Cancelled,
}

impl From<StatusParam> for RentalStatus {
    fn from(status: StatusParam) -> Self {
        match status {
            StatusParam::Rented => RentalStatus::Rented,
            StatusParam::Returned => RentalStatus::Returned,
            StatusParam::Expired => RentalStatus::Expired,
            StatusParam::Cancelled => RentalStatus::Cancelled,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RentalQuery {
    /// Only this customer's rentals. A customer may name only themselves (else 403) and gets
    /// their own without it.
    customer_id: Option<Uuid>,
    /// Only rentals of this book.
    book_id: Option<Uuid>,
    /// Only rentals in this status.
    status: Option<StatusParam>,
    /// The last rental id of the previous page.
    after: Option<Uuid>,
    /// 1 to 100, default 20.
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The last book id of the previous page.
    after: Option<Uuid>,
    /// 1 to 100, default 20.
    limit: Option<u32>,
}

fn page(after: Option<Uuid>, limit: Option<u32>) -> Result<Page, Problem> {
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 100"));
    }
    Ok(Page { after, limit })
}

/// The cursor of the page after `items`: the last id of a full page (as book-management pages).
fn next<T>(items: &[T], page: Page, id: impl Fn(&T) -> Uuid) -> Option<Uuid> {
    (items.len() == page.limit as usize)
        .then(|| items.last().map(id))
        .flatten()
}

/// Who the caller reads as: a manager reads every rental, anyone else only their own.
fn reader(caller: &Caller) -> Reader {
    if caller.has_role("manager") {
        Reader::Manager
    } else {
        Reader::Customer(caller.user_id)
    }
}

impl From<BoardError> for Problem {
    fn from(e: BoardError) -> Self {
        match e {
            BoardError::OthersRentals => Problem::new(StatusCode::FORBIDDEN, e.to_string()),
            BoardError::NotFound(_) => Problem::not_found(e.to_string()),
            BoardError::Store(StoreError::Unavailable(e)) => Problem::database(e),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/views/rentals", operation_id = "list_rental_board", params(RentalQuery), tag = "views",
    responses(
        (status = 200, description = "A page of the rental status board, in rental id order", body = RentalPage),
        (status = 400, description = "A query value is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer asked for someone else's rentals", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_rentals<S: BoardStore>(
    State(board): State<Board<S>>,
    caller: Caller,
    Query(query): Query<RentalQuery>,
) -> Result<Json<RentalPage>, Problem> {
    let page = page(query.after, query.limit)?;
    let filter = RentalFilter {
        customer_id: query.customer_id,
        book_id: query.book_id,
        status: query.status.map(RentalStatus::from),
    };
    let rentals = board.rentals(reader(&caller), filter, page).await?;
    let next = next(&rentals, page, |r| r.rental.id);
    Ok(Json(RentalPage {
        items: rentals.into_iter().map(RentalView::of).collect(),
        next,
    }))
}

#[utoipa::path(get, path = "/api/v1/views/rentals/{id}", operation_id = "get_rental_board_line", tag = "views", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The rental's line of the board", body = RentalView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such rental of the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_rental<S: BoardStore>(
    State(board): State<Board<S>>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<RentalView>, Problem> {
    let rental = board.rental(reader(&caller), id).await?;
    Ok(Json(RentalView::of(rental)))
}

#[utoipa::path(get, path = "/api/v1/views/books", operation_id = "list_book_board", params(PageQuery), tag = "views",
    responses(
        (status = 200, description = "A page of the book board, in book id order", body = BookPage),
        (status = 400, description = "A query value is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a manager", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_books<S: BoardStore>(
    State(board): State<Board<S>>,
    _manager: Manager,
    Query(query): Query<PageQuery>,
) -> Result<Json<BookPage>, Problem> {
    let page = page(query.after, query.limit)?;
    let books = board.books(page).await?;
    let next = next(&books, page, |b| b.book.id);
    Ok(Json(BookPage {
        items: books.into_iter().map(BookView::from).collect(),
        next,
    }))
}

//! The catalogue's REST API (docs/design.md §5) and its OpenAPI document.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use fleet_auth::{Caller, Manager};
use fleet_database::DatabaseProblem;
use fleet_http::api::{InvalidFields, Json, Path, Query};
use fleet_http::problem::{InvalidParam, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::{BookStore, Catalogue, CatalogueError, Page, StoreError};
use crate::domain::{Author, Book, BookChanges, BookError, BookId, RentalFee, Title};

pub const BOOKS: &str = "/api/v1/books";

pub fn routes<S: BookStore>(catalogue: Catalogue<S>) -> Router {
    Router::new()
        .route(BOOKS, get(list_books::<S>).post(register_book::<S>))
        .route(
            "/api/v1/books/{id}",
            get(get_book::<S>)
                .patch(update_book::<S>)
                .delete(retire_book::<S>),
        )
        .with_state(catalogue)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "book-management",
        description = "The catalogue: managers register, update and retire books; anyone signed in reads it."
    ),
    paths(register_book, list_books, get_book, update_book, retire_book),
    components(schemas(RegisterBook, UpdateBook, BookView, BookPage, Problem, InvalidParam))
)]
pub struct ApiDoc;

/// A book to register. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterBook {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    author: String,
    /// In the smallest currency unit, 0 to 1,000,000.
    #[schema(minimum = 0, maximum = 1_000_000)]
    rental_fee: i64,
}

/// The fields to change; at least one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBook {
    #[schema(min_length = 1, max_length = 200)]
    title: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    author: Option<String>,
    #[schema(minimum = 0, maximum = 1_000_000)]
    rental_fee: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookView {
    pub id: Uuid,
    pub title: String,
    pub author: String,
    pub rental_fee: u32,
    #[schema(pattern = "^(AVAILABLE|RENTED|RETIRED)$")]
    pub status: String,
    pub times_rented: u32,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Book> for BookView {
    fn from(book: Book) -> Self {
        Self {
            id: book.id.0,
            title: book.title.as_str().to_owned(),
            author: book.author.as_str().to_owned(),
            rental_fee: book.rental_fee.amount(),
            status: book.status.as_str().to_owned(),
            times_rented: book.times_rented,
            registered_at: book.registered_at,
            updated_at: book.updated_at,
        }
    }
}

/// One page of the catalogue; pass `next` as `after` for the following one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookPage {
    pub items: Vec<BookView>,
    pub next: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The last book id of the previous page.
    after: Option<Uuid>,
    /// 1 to 100, default 20.
    limit: Option<u32>,
}

impl From<CatalogueError> for Problem {
    fn from(e: CatalogueError) -> Self {
        match e {
            CatalogueError::NotFound(_) => Problem::not_found(e.to_string()),
            CatalogueError::Rule(BookError::Rented | BookError::Retired) => {
                Problem::conflict(e.to_string())
            }
            CatalogueError::Store(StoreError::Unavailable(e)) => Problem::database(e),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/books", request_body = RegisterBook, tag = "books",
    responses(
        (status = 201, description = "Registered", body = BookView, headers(("Location" = String))),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a manager", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values or unknown fields", body = Problem, content_type = "application/problem+json"),
    ))]
async fn register_book<S: BookStore>(
    State(catalogue): State<Catalogue<S>>,
    _manager: Manager,
    Json(body): Json<RegisterBook>,
) -> Result<Response, Problem> {
    let mut fields = InvalidFields::default();
    let title = fields.check("title", Title::parse(&body.title));
    let author = fields.check("author", Author::parse(&body.author));
    let fee = fields.check("rentalFee", RentalFee::parse(body.rental_fee));
    let (Some(title), Some(author), Some(fee)) = (title, author, fee) else {
        return Err(fields.into_problem());
    };
    let book = catalogue.register(title, author, fee).await?;
    let location = format!("{BOOKS}/{}", book.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(BookView::from(book)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/books", params(ListQuery), tag = "books",
    responses((status = 200, body = BookPage), (status = 400, body = Problem, content_type = "application/problem+json")))]
async fn list_books<S: BookStore>(
    State(catalogue): State<Catalogue<S>>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<BookPage>, Problem> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 100"));
    }
    let books = catalogue
        .books(Page {
            after: query.after.map(BookId),
            limit,
        })
        .await?;
    let next = (books.len() == limit as usize)
        .then(|| books.last().map(|b| b.id.0))
        .flatten();
    Ok(Json(BookPage {
        items: books.into_iter().map(BookView::from).collect(),
        next,
    }))
}

#[utoipa::path(get, path = "/api/v1/books/{id}", tag = "books", params(("id" = Uuid, Path)),
    responses((status = 200, body = BookView), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_book<S: BookStore>(
    State(catalogue): State<Catalogue<S>>,
    _caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<BookView>, Problem> {
    Ok(Json(catalogue.book(BookId(id)).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/books/{id}", tag = "books", params(("id" = Uuid, Path)), request_body = UpdateBook,
    responses(
        (status = 200, body = BookView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The book is retired", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_book<S: BookStore>(
    State(catalogue): State<Catalogue<S>>,
    _manager: Manager,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateBook>,
) -> Result<Json<BookView>, Problem> {
    let mut fields = InvalidFields::default();
    if body.title.is_none() && body.author.is_none() && body.rental_fee.is_none() {
        fields.reject("give at least one of title, author, rentalFee");
    }
    let changes = BookChanges {
        title: body
            .title
            .and_then(|t| fields.check("title", Title::parse(&t))),
        author: body
            .author
            .and_then(|a| fields.check("author", Author::parse(&a))),
        rental_fee: body
            .rental_fee
            .and_then(|f| fields.check("rentalFee", RentalFee::parse(f))),
    };
    fields.finish()?;
    Ok(Json(catalogue.update(BookId(id), changes).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/books/{id}", tag = "books", params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Retired (retiring again changes nothing)", body = BookView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The book is rented", body = Problem, content_type = "application/problem+json"),
    ))]
async fn retire_book<S: BookStore>(
    State(catalogue): State<Catalogue<S>>,
    _manager: Manager,
    Path(id): Path<Uuid>,
) -> Result<Json<BookView>, Problem> {
    Ok(Json(catalogue.retire(BookId(id)).await?.into()))
}

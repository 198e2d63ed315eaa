//! user's REST API (DESIGN.md §5): registration, the OAuth2 token endpoint (RFC 6749 §4.3),
//! the JWKS (RFC 7517), the caller's profile; and its OpenAPI document.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use service_kit::http::{InvalidFields, Json, Path};
use service_kit::problem::{InvalidParam, Problem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::{
    AccountStore, Accounts, AccountsError, PasswordHasher, StoreError, TokenIssuer,
};
use crate::domain::{Account, Email, Name, Password, Role, UserId};
use service_kit::auth::{Jwk, JwkSet, TokenError, TokenVerifier, Unauthorized};

pub const USERS: &str = "/api/v1/users";
pub const TOKEN: &str = "/api/v1/auth/token";
pub const JWKS: &str = "/.well-known/jwks.json";

/// Handlers see the use cases, the verifier of the tokens they are shown, and the public keys.
#[derive(Clone)]
pub struct Api<S, H, I> {
    pub accounts: Accounts<S, H, I>,
    pub verifier: Arc<TokenVerifier>,
    pub jwks: Arc<JwkSet>,
}

pub fn routes<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(api: Api<S, H, I>) -> Router {
    Router::new()
        .route(USERS, post(register::<S, H, I>))
        .route("/api/v1/users/me", get(me::<S, H, I>))
        .route("/api/v1/users/{id}", get(user::<S, H, I>))
        .route(TOKEN, post(token::<S, H, I>))
        .route(JWKS, get(jwks::<S, H, I>))
        .with_state(api)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "user",
        description = "Customers register and sign in (OAuth2 password grant), getting RS256 access tokens checked with the JWKS; everyone signed in reads their own profile."
    ),
    paths(register, token, jwks, me, user),
    components(schemas(
        RegisterUser, UserView, TokenRequest, GrantType, TokenResponse, OAuthError,
        OAuthErrorCode, JwkSet, Jwk, Problem, InvalidParam
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// A customer to register. Unknown fields are refused.
// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterUser {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// A plausible address, at most 254 characters; it is the username when signing in, and
    /// no two accounts share one, whatever its case.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// At least 10 characters; not one character repeated, not the email or its name part,
    /// not one of the most common passwords. Never stored or shown: only its Argon2id hash is.
    #[schema(format = Password, min_length = 10)]
    password: String,
}

/// An account, as its owner (or a manager) sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    #[schema(pattern = "^(CUSTOMER|MANAGER)$")]
    pub role: String,
    /// Books rented and not yet returned or cancelled.
    pub active_rentals: u32,
}

impl From<Account> for UserView {
    fn from(account: Account) -> Self {
        Self {
            id: account.id.0,
            name: account.name.as_str().to_owned(),
            email: account.email.as_str().to_owned(),
            role: account.role.as_str().to_owned(),
            active_rentals: account.active_rentals,
        }
    }
}

impl From<AccountsError> for Problem {
    fn from(e: AccountsError) -> Self {
        match e {
            AccountsError::EmailTaken => {
                Problem::conflict("An account with this email already exists; sign in instead.")
            }
            AccountsError::NotFound(_) => Problem::not_found(e.to_string()),
            AccountsError::InvalidGrant => Problem::new(StatusCode::UNAUTHORIZED, e.to_string()),
            AccountsError::Store(StoreError::Unavailable(e)) => Problem::database(e),
            AccountsError::SignInLocked(wait) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
                    .with_retry_after(wait.as_secs().max(1))
            }
            AccountsError::Busy => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).with_retry_after(1)
            }
            AccountsError::Internal(e) => Problem::internal(format!("{e:#}")),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/users", request_body = RegisterUser, tag = "users",
    responses(
        (status = 201, description = "Registered as a customer; UserRegistered is published", body = UserView, headers(("Location" = String))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An account has this email, in some case", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid values, missing or unknown fields; `errors` points at each", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many passwords being hashed at once, or the database away; try again after Retry-After", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64))),
    ))]
async fn register<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(
    State(api): State<Api<S, H, I>>,
    Json(body): Json<RegisterUser>,
) -> Result<Response, Problem> {
    let mut fields = InvalidFields::default();
    let name = fields.check("name", Name::parse(&body.name));
    let email = fields.check("email", Email::parse(&body.email));
    let password = fields.check("password", Password::parse(&body.password, &body.email));
    let (Some(name), Some(email), Some(password)) = (name, email, password) else {
        return Err(fields.into_problem());
    };
    let account = api.accounts.register(name, email, password).await?;
    let location = format!("{USERS}/{}", account.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserView::from(account)),
    )
        .into_response())
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 401, description = "No token (`WWW-Authenticate: Bearer`), or an invalid, expired or foreign one (`Bearer error=\"invalid_token\"`)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn me<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(
    State(api): State<Api<S, H, I>>,
    headers: HeaderMap,
) -> Result<Json<UserView>, Response> {
    let caller = api
        .verifier
        .authenticate(&headers)
        .map_err(IntoResponse::into_response)?;
    match api.accounts.account(UserId(caller.user_id)).await {
        Ok(account) => Ok(Json(account.into())),
        // Signed by us for an account that is not here (a database reset under a kept key).
        Err(AccountsError::NotFound(_)) => {
            Err(Unauthorized::Invalid(TokenError::Subject).into_response())
        }
        Err(e) => Err(Problem::from(e).into_response()),
    }
}

/// One account: its owner and managers may read it; to anyone else it does not exist.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or an invalid one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account, or not the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
async fn user<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(
    State(api): State<Api<S, H, I>>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Json<UserView>, Response> {
    let caller = api
        .verifier
        .authenticate(&headers)
        .map_err(IntoResponse::into_response)?;
    let id = UserId(id);
    // 404 rather than 403, so a customer cannot tell which ids exist.
    if caller.user_id != id.0 && !caller.has_role(Role::Manager.claim()) {
        return Err(Problem::from(AccountsError::NotFound(id)).into_response());
    }
    let account = api
        .accounts
        .account(id)
        .await
        .map_err(|e| Problem::from(e).into_response())?;
    Ok(Json(account.into()))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    description = "The public keys that check access tokens (RFC 7517). A token's header `kid` names its key.",
    responses(
        (status = 200, body = JwkSet, headers(("Cache-Control" = String, description = "public, max-age=300"))),
    ))]
async fn jwks<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(
    State(api): State<Api<S, H, I>>,
) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(api.jwks.as_ref().clone()),
    )
        .into_response()
}

// --- the OAuth2 token endpoint --------------------------------------------------------------

/// The only grant this endpoint knows: RFC 6749 §4.3, the resource owner password grant.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Password,
}

/// An access token request (RFC 6749 §4.3.2), form-encoded. Each parameter at most once;
/// unknown parameters are ignored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub grant_type: GrantType,
    /// The account's email.
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
    /// Accepted and ignored: a token carries the account's own roles.
    pub scope: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// An RS256 JWT: `sub` (the user id), `roles`, `iss`, `aud`, `iat`, `exp`; header `kid`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// RFC 6749 §5.2's error codes, as far as this endpoint uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// A parameter is missing or repeated, or the body is not form-encoded.
    InvalidRequest,
    /// The email or the password is wrong (one answer for both).
    InvalidGrant,
    /// A grant type other than `password`.
    UnsupportedGrantType,
}

/// An error from the token endpoint (RFC 6749 §5.2): plain JSON, not a problem document,
/// because the RFC fixes this format for OAuth2 clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    pub error_description: String,
}

impl OAuthError {
    fn new(error: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        no_store((StatusCode::BAD_REQUEST, axum::Json(self)).into_response())
    }
}

/// Token responses must never be cached (RFC 6749 §5.1), errors included.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The credentials of a password grant request. No `Debug`: it holds a password.
struct PasswordGrant {
    username: String,
    password: String,
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Reads a token request as RFC 6749 §3.2 and §4.3.2 have it.
fn password_grant(headers: &HeaderMap, body: &[u8]) -> Result<PasswordGrant, OAuthError> {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM));
    if !form_encoded {
        return Err(OAuthError::invalid_request(format!(
            "Send the parameters as {FORM}."
        )));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(OAuthError::invalid_request("The body is not UTF-8."));
    }
    let mut grant_type = None;
    let mut username = None;
    let mut password = None;
    let mut scope = None;
    for (name, value) in form_urlencoded::parse(body) {
        let slot = match name.as_ref() {
            "grant_type" => &mut grant_type,
            "username" => &mut username,
            "password" => &mut password,
            "scope" => &mut scope,
            _ => continue, // RFC 6749 §3.2: unrecognised parameters are ignored
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "{name} is given more than once."
            )));
        }
    }
    let present = |name: &str, value: Option<String>| match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(OAuthError::invalid_request(format!("{name} is missing."))),
    };
    let grant_type = present("grant_type", grant_type)?;
    if grant_type != "password" {
        return Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            "Only the password grant (grant_type=password) is supported.",
        ));
    }
    Ok(PasswordGrant {
        username: present("username", username)?,
        password: present("password", password)?,
    })
}

#[utoipa::path(post, path = "/api/v1/auth/token", tag = "tokens",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    description = "OAuth2 token endpoint, resource owner password grant (RFC 6749 §4.3). Errors are RFC 6749 §5.2 JSON, not problem documents.",
    responses(
        (status = 200, description = "Signed in", body = TokenResponse, headers(("Cache-Control" = String, description = "no-store"), ("Pragma" = String, description = "no-cache"))),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_grant", body = OAuthError, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 429, description = "Too many failed sign-ins with this address (whether an account has it or not): locked out until Retry-After", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64), ("Cache-Control" = String, description = "no-store"))),
        (status = 503, description = "Too many passwords being checked at once, or the database away; try again after Retry-After", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64))),
    ))]
async fn token<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(
    State(api): State<Api<S, H, I>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return OAuthError::invalid_request(format!(
                "The body cannot be read: {}",
                rejection.body_text()
            ))
            .into_response();
        }
    };
    let grant = match password_grant(&headers, &body) {
        Ok(grant) => grant,
        Err(error) => return error.into_response(),
    };
    match api
        .accounts
        .issue_token(&grant.username, grant.password)
        .await
    {
        Ok(token) => no_store(
            axum::Json(TokenResponse {
                access_token: token.token,
                token_type: "Bearer".to_owned(),
                expires_in: token.expires_in,
            })
            .into_response(),
        ),
        Err(AccountsError::InvalidGrant) => OAuthError::new(
            OAuthErrorCode::InvalidGrant,
            "The email or the password is wrong.",
        )
        .into_response(),
        Err(e) => no_store(Problem::from(e).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<PasswordGrant, OAuthError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        password_grant(&headers, body.as_bytes())
    }

    fn refused(body: &str) -> (OAuthErrorCode, String) {
        let error = form(body).err().expect("refused");
        (error.error, error.error_description)
    }

    #[test]
    fn a_password_grant_is_read_and_decoded() {
        let grant =
            form("grant_type=password&username=u%40example.org&password=a+b%26c&scope=x&foo=1")
                .ok()
                .unwrap();
        assert_eq!(grant.username, "u@example.org");
        assert_eq!(grant.password, "a b&c");
    }

    #[test]
    fn missing_and_repeated_parameters_are_invalid_requests() {
        use OAuthErrorCode::*;
        assert_eq!(
            refused("username=u&password=p"),
            (InvalidRequest, "grant_type is missing.".into())
        );
        assert_eq!(
            refused("grant_type=password&password=p"),
            (InvalidRequest, "username is missing.".into())
        );
        assert_eq!(
            refused("grant_type=password&username=u&password="),
            (InvalidRequest, "password is missing.".into())
        );
        assert_eq!(
            refused("grant_type=password&username=u&username=v&password=p"),
            (InvalidRequest, "username is given more than once.".into())
        );
        assert_eq!(
            refused("grant_type=client_credentials").0,
            UnsupportedGrantType
        );
    }

    #[test]
    fn only_a_form_is_read() {
        let mut headers = HeaderMap::new();
        let body = b"grant_type=password&username=u&password=p";
        assert!(password_grant(&headers, body).is_err(), "no content type");
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let error = password_grant(&headers, body).err().unwrap();
        assert_eq!(error.error, OAuthErrorCode::InvalidRequest);
        headers.insert(header::CONTENT_TYPE, FORM.parse().unwrap());
        assert!(password_grant(&headers, body).is_ok());
        assert!(password_grant(&headers, b"grant_type=password&username=\xff").is_err());
    }

    #[test]
    fn oauth_errors_have_the_rfc_shape() {
        let json =
            serde_json::to_value(OAuthError::new(OAuthErrorCode::UnsupportedGrantType, "no"))
                .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "unsupported_grant_type", "error_description": "no"})
        );
    }
}

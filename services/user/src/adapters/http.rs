//! user's REST API (docs/design.md §5): registration, the OAuth2 token endpoint (RFC 6749 §4.3),
//! the JWKS (RFC 7517), the caller's profile; and its OpenAPI document.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fleet_database::DatabaseProblem;
use fleet_http::api::{InvalidFields, Json, Path};
use fleet_http::client_address;
use fleet_http::problem::{InvalidParam, Problem};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::{
    AccessToken, AccountStore, Accounts, AccountsError, ClientError, PasswordHasher,
    ServiceClients, StoreError, TokenIssuer,
};
use crate::domain::{Account, ClientAddress, Email, Name, Password, Role, UserId};
use fleet_auth::{Jwk, JwkSet, TokenError, TokenVerifier, Unauthorized};

pub const USERS: &str = "/api/v1/users";
pub const TOKEN: &str = "/api/v1/auth/token";
pub const JWKS: &str = "/.well-known/jwks.json";

/// Handlers see the use cases, the verifier of the tokens they are shown, and the public keys.
#[derive(Clone)]
pub struct Api<S, H, I> {
    pub accounts: Accounts<S, H, I>,
    pub clients: ServiceClients<I>,
    pub verifier: Arc<TokenVerifier>,
    pub jwks: Arc<JwkSet>,
    /// The proxies (the gateway) whose `X-Forwarded-For` names the client of a sign-in.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
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
            AccountsError::RegistrationsBusy(wait) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
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
        (status = 503, description = "The service's registrations budget is spent, too many passwords are being hashed at once, or the database is away; try again after Retry-After", body = Problem, content_type = "application/problem+json",
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

/// The grants this endpoint knows: RFC 6749 §4.3, the resource owner password grant, for
/// people; §4.4, the client credentials grant, for services of the fleet.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Password,
    ClientCredentials,
}

/// An access token request (RFC 6749 §4.3.2, §4.4.2), form-encoded. Each parameter at most
/// once; unknown parameters are ignored. A client credentials request authenticates the client
/// with HTTP Basic (RFC 6749 §2.3.1): `Authorization: Basic base64(client_id:client_secret)`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    pub grant_type: GrantType,
    /// The account's email (password grant).
    pub username: Option<String>,
    /// The account's password (password grant).
    #[schema(format = Password)]
    pub password: Option<String>,
    /// Accepted and ignored: a token carries the account's own roles, or the client's one scope.
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
    /// What a service's token allows (client credentials grant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// RFC 6749 §5.2's error codes, as far as this endpoint uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// A parameter is missing or repeated, or the body is not form-encoded.
    InvalidRequest,
    /// The email or the password is wrong (one answer for both).
    InvalidGrant,
    /// A grant type other than `password` or `client_credentials`.
    UnsupportedGrantType,
    /// The client id or secret of a client credentials request is wrong or missing (401).
    InvalidClient,
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
        // RFC 6749 §5.2: a failed client authentication is 401 with the scheme to use.
        if self.error == OAuthErrorCode::InvalidClient {
            let mut response = (StatusCode::UNAUTHORIZED, axum::Json(self)).into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="token""#),
            );
            return no_store(response);
        }
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

/// A token request as read. No `Debug`: it holds a password.
enum Grant {
    Password {
        username: String,
        password: String,
    },
    /// The client authenticates with HTTP Basic, read apart.
    ClientCredentials,
}

/// The client id and secret of HTTP Basic client authentication (RFC 6749 §2.3.1: each
/// form-urlencoded, then joined by a colon and base64-encoded). No `Debug`: it holds a secret.
struct ClientAuthentication {
    id: String,
    secret: String,
}

fn client_authentication(headers: &HeaderMap) -> Result<ClientAuthentication, OAuthError> {
    use base64::Engine;
    let refused = || {
        OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "Authenticate the client with HTTP Basic: its id and secret.",
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(refused)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(refused());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(refused)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(refused)?;
    let unescape = |part: &str| -> String {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(ClientAuthentication {
        id: unescape(id),
        secret: unescape(secret),
    })
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Reads a token request as RFC 6749 §3.2, §4.3.2 and §4.4.2 have it.
fn grant(headers: &HeaderMap, body: &[u8]) -> Result<Grant, OAuthError> {
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
    match present("grant_type", grant_type)?.as_str() {
        "password" => Ok(Grant::Password {
            username: present("username", username)?,
            password: present("password", password)?,
        }),
        "client_credentials" => Ok(Grant::ClientCredentials),
        _ => Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            "Only the password grant (grant_type=password) and, for services, the client \
             credentials grant (grant_type=client_credentials) are supported.",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/token", tag = "tokens",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    description = "OAuth2 token endpoint: the resource owner password grant (RFC 6749 §4.3) for people, the client credentials grant (§4.4, client authenticated with HTTP Basic) for services of the fleet. Errors are RFC 6749 §5.2 JSON, not problem documents.",
    responses(
        (status = 200, description = "Signed in", body = TokenResponse, headers(("Cache-Control" = String, description = "no-store"), ("Pragma" = String, description = "no-cache"))),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_grant", body = OAuthError, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "invalid_client: a client credentials request whose client id or secret is wrong or missing", body = OAuthError,
            headers(("WWW-Authenticate" = String, description = "Basic realm=\"token\""), ("Cache-Control" = String, description = "no-store"))),
        (status = 429, description = "Too many failed sign-ins with this address from this client (whether an account has it or not): refused until Retry-After. Other clients are not", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64), ("Cache-Control" = String, description = "no-store"))),
        (status = 503, description = "Too many passwords being checked at once, or the database away; try again after Retry-After", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64))),
    ))]
async fn token<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(
    State(api): State<Api<S, H, I>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    let (username, password) = match grant(&headers, &body) {
        Ok(Grant::Password { username, password }) => (username, password),
        Ok(Grant::ClientCredentials) => return client_credentials(&api.clients, &headers).await,
        Err(error) => return error.into_response(),
    };
    let forwarded_for = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok());
    let client = client_address::client(peer.ip(), forwarded_for, &api.trusted_proxies);
    let client = ClientAddress::new(client_address::bucket(client));
    match api.accounts.issue_token(&username, password, client).await {
        Ok(token) => granted(token, None),
        Err(AccountsError::InvalidGrant) => OAuthError::new(
            OAuthErrorCode::InvalidGrant,
            "The email or the password is wrong.",
        )
        .into_response(),
        Err(e) => no_store(Problem::from(e).into_response()),
    }
}

fn granted(token: AccessToken, scope: Option<&str>) -> Response {
    no_store(
        axum::Json(TokenResponse {
            access_token: token.token,
            token_type: "Bearer".to_owned(),
            expires_in: token.expires_in,
            scope: scope.map(str::to_owned),
        })
        .into_response(),
    )
}

async fn client_credentials<I: TokenIssuer>(
    clients: &ServiceClients<I>,
    headers: &HeaderMap,
) -> Response {
    let client = match client_authentication(headers) {
        Ok(client) => client,
        Err(error) => return error.into_response(),
    };
    match clients.issue_token(&client.id, &client.secret).await {
        Ok((token, scope)) => granted(token, Some(scope)),
        Err(ClientError::InvalidClient) => OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "The client id or secret is wrong.",
        )
        .into_response(),
        Err(ClientError::Internal(e)) => {
            no_store(Problem::internal(format!("{e:#}")).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<Grant, OAuthError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        grant(&headers, body.as_bytes())
    }

    fn refused(body: &str) -> (OAuthErrorCode, String) {
        let error = form(body).err().expect("refused");
        (error.error, error.error_description)
    }

    #[test]
    fn a_password_grant_is_read_and_decoded() {
        let Ok(Grant::Password { username, password }) =
            form("grant_type=password&username=u%40example.org&password=a+b%26c&scope=x&foo=1")
        else {
            panic!("a password grant")
        };
        assert_eq!(username, "u@example.org");
        assert_eq!(password, "a b&c");
        assert!(matches!(
            form("grant_type=client_credentials&scope=payments"),
            Ok(Grant::ClientCredentials)
        ));
    }

    #[test]
    fn a_client_authenticates_with_http_basic_each_part_form_encoded() {
        use base64::Engine;
        let basic = |credentials: &str| {
            let mut headers = HeaderMap::new();
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            headers.insert(
                header::AUTHORIZATION,
                format!("Basic {encoded}").parse().unwrap(),
            );
            client_authentication(&headers)
        };
        let client = basic("rental:a%3Ab+c").ok().unwrap();
        assert_eq!(
            (client.id.as_str(), client.secret.as_str()),
            ("rental", "a:b c")
        );
        assert!(basic("no colon").is_err());
        assert!(client_authentication(&HeaderMap::new()).is_err());
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer a.b.c".parse().unwrap());
        let error = client_authentication(&bearer).err().unwrap();
        assert_eq!(error.error, OAuthErrorCode::InvalidClient);
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Basic realm="token""#
        );
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
        assert_eq!(refused("grant_type=implicit").0, UnsupportedGrantType);
    }

    #[test]
    fn only_a_form_is_read() {
        let mut headers = HeaderMap::new();
        let body = b"grant_type=password&username=u&password=p";
        assert!(grant(&headers, body).is_err(), "no content type");
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let error = grant(&headers, body).err().unwrap();
        assert_eq!(error.error, OAuthErrorCode::InvalidRequest);
        headers.insert(header::CONTENT_TYPE, FORM.parse().unwrap());
        assert!(grant(&headers, body).is_ok());
        assert!(grant(&headers, b"grant_type=password&username=\xff").is_err());
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

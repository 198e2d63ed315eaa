//! Who is calling. Until token verification lands (the identity and gateway work), the caller is
//! read from the `X-User-Id` and `X-User-Roles` headers, which only a trusted hop in front of the
//! service may set: run the services behind that hop, never exposed as they are now.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::problem::Problem;

pub const USER_ID: &str = "x-user-id";
pub const USER_ROLES: &str = "x-user-roles";

/// The signed-in customer or manager making the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Uuid,
    pub manager: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let unauthorized = |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, detail);
        let user_id = parts
            .headers
            .get(USER_ID)
            .ok_or_else(|| unauthorized("Sign in first: the request names no caller."))?
            .to_str()
            .ok()
            .and_then(|v| Uuid::try_parse(v.trim()).ok())
            .ok_or_else(|| unauthorized("The caller's id is not a UUID."))?;
        let manager = parts
            .headers
            .get(USER_ROLES)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|roles| {
                roles
                    .split(',')
                    .any(|r| r.trim().eq_ignore_ascii_case("manager"))
            });
        Ok(Self { user_id, manager })
    }
}

//! The axum extractors a handler names to say who may call it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fleet_http::Problem;

use crate::{Caller, Principal, RemoteKeys, ServiceCaller};

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        remote_keys(parts)
            .map_err(IntoResponse::into_response)?
            .authenticate(&parts.headers)
            .await
            .map_err(IntoResponse::into_response)
    }
}

fn remote_keys(parts: &axum::http::request::Parts) -> Result<RemoteKeys, Problem> {
    parts
        .extensions
        .get::<RemoteKeys>()
        .cloned()
        .ok_or_else(|| Problem::internal("no RemoteKeys: the service did not call with_auth"))
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ServiceCaller {
    type Rejection = Response;

    /// A person's token, however valid, is 403 here: these routes are for services.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let keys = remote_keys(parts).map_err(IntoResponse::into_response)?;
        match keys.principal(&parts.headers).await {
            Ok(Principal::Service(service)) => Ok(service),
            Ok(Principal::User(_)) => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "Only services of the fleet may call this, with a token of their own.",
            )
            .into_response()),
            Err(unauthorized) => Err(unauthorized.into_response()),
        }
    }
}

/// A signed-in manager; anyone else signed in gets 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager(pub Caller);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Manager {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.has_role("manager") {
            Ok(Manager(caller))
        } else {
            Err(Problem::new(StatusCode::FORBIDDEN, "Only a manager may do this.").into_response())
        }
    }
}

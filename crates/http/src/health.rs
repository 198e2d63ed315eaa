//! `/livez` says the process runs; `/readyz` says it should get traffic: migrations done,
//! database reachable, access tokens checkable (where it checks them), not draining.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fleet_telemetry::metrics::Metrics;
use futures::future::BoxFuture;
use serde_json::json;

use crate::problem::Problem;

#[derive(Clone, Default)]
pub struct Readiness {
    migrated: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    /// Set while a process that checks tokens holds no signing keys yet.
    awaiting_keys: Arc<AtomicBool>,
}

impl Readiness {
    /// The process checks access tokens: it is not ready until [`Readiness::set_keys_held`].
    pub fn await_keys(&self) {
        self.awaiting_keys.store(true, Ordering::SeqCst);
    }

    pub fn set_keys_held(&self) {
        self.awaiting_keys.store(false, Ordering::SeqCst);
    }

    pub fn set_migrated(&self) {
        self.migrated.store(true, Ordering::SeqCst);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::SeqCst)
    }
}

/// The service's database as readiness and `/metrics` see it; a process without one (the
/// gateway) is ready unless draining.
pub trait Database: Send + Sync + 'static {
    /// Whether it answers a trivial query now.
    fn reachable(&self) -> BoxFuture<'_, bool>;
    /// Sets the gauges read at scrape time (its pool's use).
    fn record(&self, metrics: &Metrics);
}

#[derive(Clone)]
pub struct HealthState {
    pub readiness: Readiness,
    pub database: Option<Arc<dyn Database>>,
}

pub async fn livez() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

pub async fn readyz(State(state): State<HealthState>) -> Response {
    let unready =
        |detail: &str| Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail).into_response();
    if state.readiness.draining.load(Ordering::SeqCst) {
        return unready("Shutting down.");
    }
    if state.readiness.awaiting_keys.load(Ordering::SeqCst) {
        return unready("The signing keys are not fetched yet: access tokens cannot be checked.");
    }
    let Some(database) = &state.database else {
        return axum::Json(json!({"status": "ready"})).into_response();
    };
    if !state.readiness.is_migrated() {
        return unready("Database migrations have not run yet.");
    }
    let ping = tokio::time::timeout(Duration::from_secs(2), database.reachable()).await;
    match ping {
        Ok(true) => axum::Json(json!({"status": "ready"})).into_response(),
        _ => unready("The database is unreachable."),
    }
}

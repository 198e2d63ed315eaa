//! Provider states for the contract tests (feature `provider-states`, never in production
//! builds): the pact verifier asks for a state before it replays an interaction, and this hook
//! brings it about through payment's own use cases. It lives outside `/api/v1`, so the gateway
//! could not route it even if a build had it.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use fleet_http::api::Json;
use fleet_http::problem::Problem;
use serde::Deserialize;
use uuid::Uuid;

use crate::application::{PaymentStore, Payments, Settings};
use crate::domain::Amount;

/// Where the verifier posts state changes.
pub const PROVIDER_STATES: &str = "/_test/provider-states";

/// A state the contracts of payment's consumers name (`contract-tests/pacts/`).
pub const RENTAL_PAID: &str = "the rental is paid";
pub const NO_PAYMENT: &str = "the rental has no payment";
pub const DECLINES_ABOVE: &str = "payments above a limit are declined";

/// The pact verifier's state change request (its default: state and params in a JSON body).
#[derive(Debug, Deserialize)]
struct StateChange {
    state: String,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Clone)]
struct Hook<S> {
    payments: Payments<S>,
    settings: Settings,
}

pub fn routes<S: PaymentStore>(payments: Payments<S>, settings: Settings) -> Router {
    Router::new()
        .route(PROVIDER_STATES, post(change_state::<S>))
        .with_state(Hook { payments, settings })
}

fn param<T: serde::de::DeserializeOwned>(change: &StateChange, name: &str) -> Result<T, Problem> {
    let value = change.params.get(name).cloned().unwrap_or_default();
    serde_json::from_value(value).map_err(|e| {
        Problem::bad_request(format!("state {:?}: parameter {name}: {e}", change.state))
    })
}

async fn change_state<S: PaymentStore>(
    State(hook): State<Hook<S>>,
    Json(change): Json<StateChange>,
) -> Result<Json<serde_json::Value>, Problem> {
    // Every interaction runs against one fresh database: nothing to tear down.
    if change.action.as_deref() == Some("teardown") {
        return Ok(Json(serde_json::json!({})));
    }
    match change.state.as_str() {
        RENTAL_PAID => {
            let rental_id: Uuid = param(&change, "rentalId")?;
            let user_id: Uuid = param(&change, "userId")?;
            let amount = Amount::parse(param(&change, "amount")?)
                .map_err(|e| Problem::bad_request(e.to_string()))?;
            // Paid as rental pays: through the use case, so the payment is a real one.
            hook.payments.settle(rental_id, user_id, amount).await?;
        }
        NO_PAYMENT => {
            let rental_id: Uuid = param(&change, "rentalId")?;
            if hook.payments.for_rental(rental_id).await?.is_some() {
                return Err(Problem::conflict(format!(
                    "rental {rental_id} already has a payment"
                )));
            }
        }
        DECLINES_ABOVE => {
            // A matter of configuration (PAYMENT_DECLINE_AMOUNT_ABOVE): checked, not changed.
            let limit: u32 = param(&change, "limit")?;
            let declines = |amount: u32| {
                Amount::parse(amount.into()).is_ok_and(|a| hook.settings.decline.declines(a))
            };
            if declines(limit) || !declines(limit + 1) {
                return Err(Problem::conflict(format!(
                    "start payment with PAYMENT_DECLINE_AMOUNT_ABOVE={limit} for this state"
                )));
            }
        }
        other => {
            return Err(Problem::bad_request(format!(
                "unknown provider state {other:?}"
            )));
        }
    }
    Ok(Json(serde_json::json!({})))
}

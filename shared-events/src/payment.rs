use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainEvent, Topic, topic_events};

/// Payment approved the fee of a rental.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentApproved {
    pub payment_id: Uuid,
    pub rental_id: Uuid,
    pub user_id: Uuid,
    pub amount: u32,
    pub approved_at: DateTime<Utc>,
}

/// Payment refunded a rental's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    pub payment_id: Uuid,
    pub rental_id: Uuid,
    pub user_id: Uuid,
    pub amount: u32,
    pub refunded_at: DateTime<Utc>,
}

macro_rules! payment_event {
    ($event:ident) => {
        impl DomainEvent for $event {
            const TYPE: &'static str = stringify!($event);
            const TOPIC: Topic = Topic::Payment;
            fn key(&self) -> String {
                self.rental_id.to_string()
            }
            fn subject(&self) -> Uuid {
                self.payment_id
            }
            fn correlation_id(&self) -> Option<Uuid> {
                Some(self.rental_id)
            }
        }
    };
}
payment_event!(PaymentApproved);
payment_event!(PaymentRefunded);

topic_events!(
    /// Everything published on `payment.events`.
    PaymentEvent { PaymentApproved, PaymentRefunded }
);

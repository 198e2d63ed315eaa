use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainEvent, Topic, topic_events};

/// A customer registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRegistered {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
}

impl DomainEvent for UserRegistered {
    const TYPE: &'static str = "UserRegistered";
    const TOPIC: Topic = Topic::User;
    fn key(&self) -> String {
        self.user_id.to_string()
    }
    fn subject(&self) -> Uuid {
        self.user_id
    }
}

topic_events!(
    /// Everything published on `user.events`.
    UserEvent { UserRegistered }
);

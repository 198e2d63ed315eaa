use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainEvent;

pub const SPEC_VERSION: &str = "1.0";
const JSON: &str = "application/json";

/// A CloudEvents 1.0 event in structured JSON mode, with the fleet's extension attributes
/// `correlationid` and `traceparent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEvent<T = serde_json::Value> {
    pub specversion: String,
    /// Unique per event: consumers deduplicate on it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The publishing service.
    pub source: String,
    /// The aggregate id.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// W3C trace context of the change that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: T,
}

/// An event as it comes off a topic, before its `data` is decoded.
pub type RawEvent = CloudEvent<serde_json::Value>;

impl<E: DomainEvent> CloudEvent<E> {
    /// Wraps a domain event, giving it a fresh id and the current time.
    pub fn new(source: &str, event: E) -> Self {
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id: Uuid::new_v4(),
            event_type: E::TYPE.to_owned(),
            source: source.to_owned(),
            subject: event.subject().to_string(),
            time: Utc::now(),
            datacontenttype: JSON.to_owned(),
            correlationid: event.correlation_id().map(|id| id.to_string()),
            traceparent: None,
            data: event,
        }
    }

    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a CloudEvents JSON envelope: {0}")]
    Envelope(serde_json::Error),
    #[error("unsupported specversion {0:?}, expected {SPEC_VERSION}")]
    SpecVersion(String),
    #[error("{event_type} data does not match its schema: {source}")]
    Data {
        event_type: String,
        source: serde_json::Error,
    },
}

impl RawEvent {
    /// Parses a structured-mode CloudEvent.
    pub fn from_slice(payload: &[u8]) -> Result<Self, DecodeError> {
        let event: RawEvent = serde_json::from_slice(payload).map_err(DecodeError::Envelope)?;
        if event.specversion != SPEC_VERSION {
            return Err(DecodeError::SpecVersion(event.specversion));
        }
        Ok(event)
    }

    /// Decodes `data` into one of a topic's events; `Ok(None)` for an event type the topic's
    /// consumers do not know (a newer producer), which they skip rather than reject.
    pub fn decode<T: TopicEvents>(&self) -> Result<Option<T>, DecodeError> {
        T::decode(&self.event_type, &self.data).map_err(|source| DecodeError::Data {
            event_type: self.event_type.clone(),
            source,
        })
    }
}

/// The events of one topic, decodable from their CloudEvents `type` and `data`.
pub trait TopicEvents: Sized {
    const TYPES: &'static [&'static str];
    fn decode(
        event_type: &str,
        data: &serde_json::Value,
    ) -> Result<Option<Self>, serde_json::Error>;
}

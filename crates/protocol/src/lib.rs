//! The wire contract of mqtt-home: every topic name and every payload type, defined once.
//!
//! Daemons, tests, the control CLI and the scenario runner all build topics with [`Topics`] and
//! encode payloads with the [`Payload`] trait; whatever reads the home's topics decodes with
//! [`Message::decode`] (a topic and its bytes → one typed [`Message`], or an [`Unreadable`] that
//! says why) and, to keep the home's state, applies messages to one [`HomeState`]. So a topic
//! string, a field name or a topic's payload type is written exactly once in the code base. `docs/protocol.md` documents the same contract for
//! people pointing their own tools at the broker.
//!
//! Decoding is strict and total: any byte string yields either a typed message or a
//! [`DecodeError`] that says what was wrong. Commands also accept the bare words a person types
//! into `mosquitto_pub` (`ON`, `OFF`, `50`, `ARM_AWAY`).
//!
//! This crate depends on serde and jiff (times) only: nothing async, nothing MQTT-client specific.

mod device;
pub mod discovery;
mod home;
mod lighting;
mod message;
mod payload;
mod security;
mod time;
mod topics;

pub use device::{Announce, Availability, Condition, DeviceKind, Health, HealthState};
pub use home::{Change, Heard, HomeState, Presence, SensorHeard};
pub use lighting::{
    COLOR_TEMP_RANGE_K, CircadianPhase, CircadianReading, ColorMode, Effect, Flash, LightCommand, LightSource,
    LightState, MAX_TRANSITION_S, Power,
};
pub use message::{Message, Unreadable, Why, clip};
pub use payload::{DecodeError, Payload};
pub use security::{
    AlarmCommand, AlarmState, ArmMode, Cause, ContactState, MotionState, PanelAction, PanelCommand, PanelEvent,
    PanelEventKind, PanelLeader, PanelSnapshot, PanelState, PanelStatus, Refusal, SensorKind, SensorReading,
    SensorState, SirenState, Tone,
};
pub use time::Timestamp;
pub use topics::{DEFAULT_TOPIC_ROOT, IdError, Qos, Topic, TopicError, Topics, validate_id};

/// The version every daemon announces, taken from the workspace version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

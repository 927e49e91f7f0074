//! The security controller: an alarm panel people can trust.
//!
//! - [`panel`]: the decisions, a pure state machine on a fake-able clock.
//! - [`config`]: zones, delays, users, bounds (EN 50131).
//! - [`codes`]: PIN hashing (Argon2id).
//! - [`run`]: the MQTT edge — sensors, availability and commands in; status, events and siren
//!   commands out; the panel persisted atomically to its state file before anything is published.

pub mod codes;
pub mod config;
pub mod panel;

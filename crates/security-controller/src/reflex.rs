//! The panel's reflex: a reading that sounds the siren at once has the siren's command written
//! by the MQTT link the moment the reading is read, before the panel steps (see
//! `device_runtime::link::reflex` for why, and when the link asks).
//!
//! The answer is the step's own: [`House::sounds_at_once`], which a property test holds to
//! `Panel::step` (yes only when the step's first action is that siren ON). What the link cannot
//! see is ruled out here: a command whose code is being checked may disarm before the reading
//! is stepped, so while one waits there is no reflex. A deadline due (the step's first work) is
//! ruled out by `sounds_at_once` itself.
//!
//! A panel of a standby pair has none: its publishes wait on its lease (see `pair.rs`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use device_runtime::Outgoing;
use device_runtime::link::Reflex;
use protocol::{AlarmCommand, Message, Power, Timestamp, Topic, Topics};

use crate::house::House;

/// The panel's state, as its step and its link's reflex both read it.
#[derive(Debug)]
pub struct Shared {
    pub house: House,
    /// A command waits for its code to be checked, or is being checked.
    pub codes_waiting: bool,
}

/// The state behind a lock: the link's task reads it between the panel's steps.
#[derive(Debug, Clone)]
pub struct PanelReflex(pub Arc<Mutex<Shared>>);

impl PanelReflex {
    pub fn new(house: House) -> PanelReflex {
        PanelReflex(Arc::new(Mutex::new(Shared { house, codes_waiting: false })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Reflex for PanelReflex {
    fn fire(&self, topics: &Topics, topic: &str, payload: &[u8], now: Timestamp) -> Option<Outgoing> {
        let Ok(parsed) = topics.parse(topic) else { return None };
        let Topic::Sensor { kind, id } = &parsed else { return None };
        {
            let shared = self.lock();
            if shared.codes_waiting || !shared.house.sounds_at_once(*kind, id, now) {
                return None;
            }
        }
        // Read as the step reads it: a payload it could not read is a trouble, not a trip.
        let Ok(Message::Sensor { id, reading, .. }) = Message::from_payload(parsed, payload) else { return None };
        if !reading.state.is_active() {
            return None;
        }
        Some(Outgoing::new(Topic::AlarmControl, &siren(None, true, format!("alarm triggered by {id}"))))
    }
}

/// The siren's command, with the panel's term when it is one of a pair.
pub fn siren(term: Option<u64>, on: bool, reason: String) -> AlarmCommand {
    AlarmCommand { term, ..AlarmCommand::siren(if on { Power::On } else { Power::Off }, Some(reason)) }
}

//! The light controller: listens to the sun's phase, the motion sensors of its rooms, manual
//! commands, bulb availability and the alarm panel, and commands each bulb.
//!
//! The decisions are in [`decide`], a pure state machine tested without a broker; this module is
//! the MQTT edge around it: it turns messages into [`decide::Input`]s, keeps the clock, and
//! publishes each [`decide::BulbCommand`] on `<root>/lights/<id>/set`.

pub mod config;
pub mod decide;
pub mod simulation;

use device_runtime::{Act, Device, DeviceSpec, Shutdown};
use protocol::{
    ArmMode, Availability, DeviceKind, LightSource, Message, PanelState, Payload, Power, Qos, SensorKind, Timestamp,
    Topic, Topics, Unreadable,
};

pub use config::Config;
use decide::{Action, Controller, Input};

/// The controller as a [`Device`]: messages become [`decide::Input`]s, commands go to the bulbs.
pub struct LightDevice {
    config: Config,
    controller: Controller,
}

impl LightDevice {
    pub fn new(config: Config) -> LightDevice {
        let controller = Controller::new(&config);
        LightDevice { config, controller }
    }

    fn step(&mut self, input: Input, now: Timestamp) -> Vec<Act<LoadHistory>> {
        let actions;
        (self.controller, actions) = std::mem::take(&mut self.controller).step(&self.config, input, now);
        let mut acts = Vec::with_capacity(actions.len() * 2);
        for action in actions {
            match action {
                Action::Command { command, why } => {
                    acts.push(Act::publish(Topic::LightSet(command.bulb().to_owned()), &command.to_light_command()));
                    acts.push(Act::Note(format!("{why} → {}", command.describe())));
                }
                Action::Note(note) => acts.push(Act::Note(note)),
                Action::LoadHistory { bulbs } => acts.push(Act::Job(LoadHistory(bulbs))),
            }
        }
        acts
    }
}

/// Reading last week's light of these bulbs from the recorder's database: off the runtime's
/// thread (SQLite reads block).
#[derive(Debug)]
pub struct LoadHistory(Vec<String>);

/// Last week's light of each bulb, as this week's plan; a bulb without history has an empty
/// plan. A database that cannot be read is one log line, and every bulb follows the evening.
fn load_plans(
    config: &config::Simulation,
    bulbs: &[String],
    now: Timestamp,
) -> std::collections::BTreeMap<String, simulation::Plan> {
    let week_ago = Timestamp(now.0.saturating_sub(simulation::WEEK.as_millis() as u64));
    let store = match store::Store::open_read_only(&config.history) {
        Ok(store) => Some(store),
        Err(e) => {
            tracing::warn!(
                "presence simulation without history ({e}); the rooms follow an evening pattern. \
                 Point [simulation] history at the recorder's database to replay last week"
            );
            None
        }
    };
    bulbs
        .iter()
        .map(|bulb| {
            // A day before the week too: the light in force when the week began.
            let query = store::Query {
                since: Timestamp(week_ago.0.saturating_sub(24 * 3_600_000)),
                until: Some(now),
                device: Some(bulb.clone()),
                kind: Some(store::Kind::Light),
                limit: None,
            };
            let rows = store.as_ref().map(|s| s.history(&query)).transpose().unwrap_or_else(|e| {
                tracing::warn!("presence simulation: cannot read {bulb}'s history: {e}");
                None
            });
            let states: Vec<(Timestamp, u8)> = rows
                .unwrap_or_default()
                .iter()
                .filter_map(|row| {
                    let state = protocol::LightState::decode(row.payload.as_bytes()).ok()?;
                    let level = if state.state == Power::On { state.brightness } else { 0 };
                    Some((row.received, level))
                })
                .collect();
            (bulb.clone(), simulation::replay(bulb, &states, now, config.jitter_min))
        })
        .collect()
}

impl Device for LightDevice {
    type Job = LoadHistory;

    fn spec(&self) -> DeviceSpec {
        let config = &self.config;
        let topics = Topics::new(&config.mqtt.topic_root);
        let mut spec = DeviceSpec::new(DeviceKind::LightController);
        spec.capabilities = ["circadian", "motion", "manual_override", "alarm"].map(String::from).to_vec();
        let mut subscriptions = vec![topics.name(&Topic::Circadian), topics.all_availability()];
        for room in &config.rooms {
            for sensor in &room.motion_sensors {
                subscriptions.push(topics.name(&Topic::Sensor { kind: SensorKind::Motion, id: sensor.clone() }));
            }
            for bulb in &room.bulbs {
                subscriptions.push(topics.name(&Topic::LightSet(bulb.clone())));
            }
        }
        if config.follow_alarm || config.rooms.iter().any(|r| r.simulate_presence) {
            subscriptions.push(topics.name(&Topic::PanelStatus));
        }
        if config.adapt_only_lit {
            let bulbs = config.rooms.iter().flat_map(|r| r.bulbs.iter());
            subscriptions.extend(bulbs.map(|b| topics.name(&Topic::LightState(b.clone()))));
        }
        subscriptions.sort();
        subscriptions.dedup();
        spec.subscriptions = subscriptions.into_iter().map(|s| (s, Qos::AtLeastOnce)).collect();
        spec
    }

    fn on_message(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Act<LoadHistory>> {
        if let Ok(Message::PanelStatus(status)) = &message {
            let away = status.mode == Some(ArmMode::Away)
                && matches!(status.state, PanelState::ArmedAway | PanelState::Pending | PanelState::Triggered);
            let mut acts = self.step(Input::Alarm { triggered: status.state == PanelState::Triggered }, now);
            acts.extend(self.step(Input::Away { away }, now));
            return acts;
        }
        match to_input(&self.config, message) {
            Some(input) => self.step(input, now),
            None => Vec::new(),
        }
    }

    async fn run_job(&mut self, LoadHistory(bulbs): LoadHistory) -> Vec<Act<LoadHistory>> {
        let config = self.config.simulation.clone();
        let now = Timestamp::now();
        let plans = tokio::task::spawn_blocking(move || load_plans(&config, &bulbs, now)).await.unwrap_or_default();
        self.step(Input::Plans(plans), Timestamp::now())
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        self.controller.next_deadline()
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<LoadHistory>> {
        self.step(Input::Tick, now)
    }
}

/// Runs the controller until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mqtt = config.mqtt.clone();
    device_runtime::runner::run(LightDevice::new(config), &mqtt, shutdown).await
}

/// Reads one message as an input; anything unusable is logged once and ignored.
fn to_input(config: &Config, message: Result<Message, Unreadable>) -> Option<Input> {
    let is_bulb = |id: &str| config.rooms.iter().any(|r| r.bulbs.iter().any(|b| b == id));
    let is_motion = |id: &str| config.rooms.iter().any(|r| r.motion_sensors.iter().any(|s| s == id));
    match message {
        Ok(Message::Circadian(r)) => Some(Input::Phase(r.phase)),
        Ok(Message::Sensor { kind: SensorKind::Motion, id, reading }) => {
            Some(Input::Motion { sensor: id, active: reading.state.is_active() })
        }
        // The bulb logs bad commands itself; here only manual ones matter.
        Ok(Message::LightSet { id, command }) if command.source_or_manual() == LightSource::Manual => {
            Some(Input::ManualCommand { bulb: id })
        }
        Ok(Message::LightState { id, state }) if config.adapt_only_lit && is_bulb(&id) => {
            Some(Input::BulbReport { bulb: id, on: state.state == Power::On, source: state.source })
        }
        Ok(Message::Availability { id, availability: Availability::Online }) if is_bulb(&id) => {
            Some(Input::BulbOnline { bulb: id })
        }
        Ok(Message::Availability { id, availability: Availability::Offline }) if is_motion(&id) => {
            Some(Input::SensorOffline { sensor: id })
        }
        Err(e) if !matches!(e.parsed, Some(Topic::LightSet(_))) => {
            tracing::warn!("ignored a message on {}: {}; see docs/protocol.md for the payload", e.topic, e.why);
            None
        }
        other => {
            tracing::debug!("ignored a message ({other:?}): not one this controller uses");
            None
        }
    }
}

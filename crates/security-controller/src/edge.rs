//! The MQTT edge of the panel: messages in, [`Panel::step`], actions out.
//!
//! Sensor readings go straight to the panel; commands queue at the [`Keypad`], whose thread checks
//! their codes, so a flood of wrong codes never stands between a window and the siren. The siren
//! command is published before the state file is written (the panel orders its actions so); the
//! write happens on a blocking thread while the link goes on reading.

use std::collections::VecDeque;

use device_runtime::{DeviceSpec, Inbound, Link, Publisher, Shutdown};
use protocol::{
    AlarmCommand, Availability, DeviceKind, PanelCommand, PanelEvent, PanelEventKind, Payload, Power, Qos, SensorKind,
    SensorReading, Timestamp, Topic, Topics,
};

use crate::Config;
use crate::keypad::Keypad;
use crate::panel::{Action, Input, Panel};
use crate::state_file;

/// Runs the panel until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let panel = match state_file::load(&config.state_file) {
        Ok(Some(saved)) => {
            let status = saved.status(&config.panel, now, &config.mqtt.id);
            tracing::info!("resumed from {}: {}", config.state_file.display(), status.state);
            saved.resumed(now)
        }
        Ok(None) => {
            tracing::info!("no state file at {}: starting disarmed", config.state_file.display());
            Panel::new()
        }
        Err(e) => {
            refuse_to_start(&config, &e).await;
            return Err(e);
        }
    };
    if config.panel.users.is_empty() {
        tracing::warn!("no users in [panel.users]: nobody can disarm; add one with `security-controller hash-pin`");
    }

    let topics = Topics::new(&config.mqtt.topic_root);
    let mut link = Link::start(&config.mqtt, spec(&topics), shutdown.clone())?;
    let mut keypad = Keypad::start(config.panel.users.clone())?;
    let edge = Edge { config: &config, publisher: link.publisher.clone() };
    // Save once now: a state file that cannot be written shows as a trouble from the start.
    let mut panel = edge.apply(panel, Input::Tick, true).await;

    loop {
        let wake = panel.next_deadline(&config.panel).map(|t| tokio::time::Instant::now() + t.since(Timestamp::now()));
        let input = tokio::select! {
            () = shutdown.wait() => break,
            () = sleep_until(wake) => Some(Input::Tick),
            command = keypad.checked() => Some(Input::Command(command)),
            inbound = link.inbox.recv() => match inbound {
                None => break,
                Some(Inbound::Connected { .. }) => {
                    edge.execute(panel.on_connected(&config.panel, Timestamp::now(), &config.mqtt.id)).await;
                    None
                }
                Some(Inbound::Message { topic, payload }) => match to_input(&topics, &topic, &payload) {
                    Some(Incoming::Command(command)) => {
                        keypad.push(command);
                        None
                    }
                    Some(Incoming::Input(input)) => Some(input),
                    None => None,
                },
            },
        };
        if let Some(input) = input {
            panel = edge.apply(panel, input, false).await;
        }
        // Commands that need no check (no code, or locked out) go straight on, in their turn.
        while let Some(command) = keypad.next_ready(panel.locked_out(Timestamp::now())) {
            panel = edge.apply(panel, Input::Command(command), false).await;
        }
    }
    link.finish().await;
    Ok(())
}

/// What the panel subscribes to and announces.
fn spec(topics: &Topics) -> DeviceSpec {
    let mut spec = DeviceSpec::new(DeviceKind::SecurityController);
    spec.capabilities =
        ["arm_away", "arm_home", "arm_night", "disarm", "trigger", "duress", "supervision"].map(String::from).to_vec();
    let mut subscriptions: Vec<String> = SensorKind::ALL.iter().map(|k| topics.all_sensors(*k)).collect();
    subscriptions.push(topics.all_availability());
    subscriptions.push(topics.name(&Topic::PanelSet));
    spec.subscriptions = subscriptions.into_iter().map(|s| (s, Qos::AtLeastOnce)).collect();
    spec.command_topics = vec![topics.name(&Topic::PanelSet)];
    spec.state_topics = vec![topics.name(&Topic::PanelStatus), topics.name(&Topic::PanelEvents)];
    spec
}

/// Carries out the panel's actions.
struct Edge<'a> {
    config: &'a Config,
    publisher: Publisher,
}

impl Edge<'_> {
    /// Steps the panel with `input` and carries out what it decides, in order. How a save went is
    /// the panel's next input when it failed, or when it succeeded after failures. `save` forces
    /// a save (at start).
    async fn apply(&self, mut panel: Panel, input: Input, mut save: bool) -> Panel {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let mut actions;
            (panel, actions) = panel.step(&self.config.panel, input, Timestamp::now(), &self.config.mqtt.id);
            if std::mem::take(&mut save) && !actions.contains(&Action::Persist) {
                actions.insert(0, Action::Persist);
            }
            for action in actions {
                if action == Action::Persist {
                    let outcome = self.save(&panel).await;
                    if outcome.is_err() || panel.save_trouble.is_some() {
                        inputs.push_back(Input::Saved(outcome));
                    }
                } else {
                    self.execute(vec![action]).await;
                }
            }
        }
        panel
    }

    /// Publishes what the actions say; a `Persist` here (on connect there is none) is ignored.
    async fn execute(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Persist => {}
                Action::Event(event) => {
                    tracing::info!("{}: {}", event.event.as_str(), event.message);
                    send(&self.publisher, &Topic::PanelEvents, &event).await;
                }
                Action::PublishStatus(status) => send(&self.publisher, &Topic::PanelStatus, &status).await,
                Action::Siren { on, reason } => {
                    tracing::info!("siren {}: {reason}", if on { "ON" } else { "OFF" });
                    let command = AlarmCommand { state: if on { Power::On } else { Power::Off }, reason: Some(reason) };
                    send(&self.publisher, &Topic::AlarmControl, &command).await;
                }
            }
        }
    }

    /// Writes the state file. fsync takes milliseconds on a disk (10–100 ms on an SD card): off the
    /// runtime's thread, so the MQTT link keeps reading and acknowledging meanwhile.
    async fn save(&self, panel: &Panel) -> Result<(), String> {
        let (path, snapshot) = (self.config.state_file.clone(), panel.clone());
        match tokio::task::spawn_blocking(move || state_file::save(&path, &snapshot)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(e) => Err(format!("saving the panel state failed: {e}")),
        }
    }
}

/// A panel that cannot start says why where people look, before it exits: an event on the
/// broker, and its availability `offline`. A retained status left by an earlier run would
/// otherwise say `armed_away` while nothing guards the house.
async fn refuse_to_start(config: &Config, error: &anyhow::Error) {
    let shutdown = Shutdown::new();
    let topics = Topics::new(&config.mqtt.topic_root);
    let mut spec = spec(&topics);
    spec.subscriptions.clear();
    let Ok(mut link) = Link::start(&config.mqtt, spec, shutdown.clone()) else { return };
    let connected = async {
        while let Some(inbound) = link.inbox.recv().await {
            if matches!(inbound, Inbound::Connected { .. }) {
                return true;
            }
        }
        false
    };
    if tokio::time::timeout(REFUSAL_WAIT, connected).await == Ok(true) {
        let event = PanelEvent {
            event: PanelEventKind::Trouble,
            mode: None,
            user: None,
            sensors: vec![config.mqtt.id.clone()],
            message: format!("the panel cannot start and is not guarding anything: {error:#}"),
            device_id: config.mqtt.id.clone(),
            ts: Timestamp::now(),
        };
        // The link's goodbye then publishes `offline`, behind the event.
        send(&link.publisher, &Topic::PanelEvents, &event).await;
    } else {
        tracing::warn!("could not reach the broker within {REFUSAL_WAIT:?} to say that the panel cannot start");
    }
    shutdown.trigger();
    link.finish().await;
}

/// How long a panel that cannot start tries to reach the broker to say so.
const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A message for the panel: a command for the keypad, or an input for the panel itself.
enum Incoming {
    Command(PanelCommand),
    Input(Input),
}

async fn send<P: Payload>(publisher: &Publisher, topic: &Topic, payload: &P) {
    if let Err(e) = publisher.send(topic, payload).await {
        tracing::error!("{e}");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads one message; anything unusable is logged once (never with a code) and ignored.
fn to_input(topics: &Topics, topic: &str, payload: &[u8]) -> Option<Incoming> {
    let parsed = match topics.parse(topic) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("ignored a message: {e}");
            return None;
        }
    };
    match parsed {
        // A zero-length (retained) publish is how MQTT clears a topic: the sensor is taken out.
        Topic::Sensor { kind, id } if payload.is_empty() => Some(Incoming::Input(Input::SensorCleared { kind, id })),
        Topic::Availability(_) if payload.is_empty() => None,
        Topic::Sensor { kind, id } => match SensorReading::decode_for(kind, payload) {
            Ok(reading) => Some(Incoming::Input(Input::Sensor { kind, id, state: reading.state })),
            Err(e) => {
                tracing::warn!("ignored a message on {topic}: {e}; see docs/protocol.md");
                None
            }
        },
        Topic::Availability(id) => match Availability::decode(payload) {
            Ok(a) => Some(Incoming::Input(Input::Availability { id, online: a == Availability::Online })),
            Err(e) => {
                tracing::warn!("ignored a message on {topic}: {e}");
                None
            }
        },
        Topic::PanelSet => match PanelCommand::decode(payload) {
            Ok(command) => {
                let code = if command.code.is_some() { "with a code" } else { "without a code" };
                tracing::info!(
                    "command {} {code}{}",
                    command.action.as_str(),
                    if command.force { ", forced" } else { "" }
                );
                Some(Incoming::Command(command))
            }
            // Decode errors of panel commands never quote the payload: it may hold a PIN.
            Err(e) => {
                tracing::warn!(
                    "ignored a message on {topic}: {e}; send {{\"action\":\"DISARM\",\"code\":\"…\"}} or a bare ARM_AWAY"
                );
                None
            }
        },
        _ => None,
    }
}

//! The MQTT edge of the panel: the [`Panel`] as a [`Device`] on the runner every daemon shares.
//!
//! Sensor readings go straight to the panel; commands queue at the [`Keypad`], whose thread checks
//! their codes, so a flood of wrong codes never stands between a window and the siren. The siren
//! command is published before the state file is written (the panel orders its actions so); the
//! write is a [`Save`] job, done on a blocking thread, whose outcome is the panel's next input.

use device_runtime::metrics::Metric;
use device_runtime::{Act, Device, DeviceSpec, Link, Publisher, Shutdown};
use protocol::{
    AlarmCommand, Availability, DeviceKind, Message, PanelCommand, PanelEvent, PanelEventKind, PanelLeader,
    PanelSnapshot, PanelState, Payload, Power, Qos, SensorKind, Timestamp, Topic, Topics, Unreadable,
};

use crate::Config;
use crate::house::{House, Saved};
use crate::keypad::Keypad;
use crate::pair::Holder;
use crate::panel::{Action, Input};
use crate::reflex::{self, PanelReflex};
use crate::schedule;
use crate::state_file;

/// Runs the panel until `shutdown`: on its own, or as one of a pair (`standby = true`, see
/// [`crate::pair`]).
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    if config.standby {
        return crate::pair::run(config, shutdown).await;
    }
    run_panel(config, shutdown, None).await
}

/// Runs the panel until `shutdown`; with `holder`, as the active one of a pair, which `shutdown`
/// also stops when it is deposed.
pub(crate) async fn run_panel(config: Config, shutdown: Shutdown, holder: Option<Holder>) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let saved = match state_file::load(&config.state_file) {
        Ok(saved) => saved,
        Err(e) => {
            refuse_to_start(&config, &e).await;
            return Err(e);
        }
    };
    let resumed = saved.is_some();
    let house = House::new(&config.panel, saved, &config.mqtt.id);
    if resumed {
        let status = house.house_status(now);
        tracing::info!("resumed from {}: {}", config.state_file.display(), status.state);
    } else {
        tracing::info!("no state file at {}: starting disarmed", config.state_file.display());
    }
    if config.panel.users.is_empty() {
        tracing::warn!("no users in [panel.users]: nobody can disarm; add one with `security-controller hash-pin`");
    }
    let keypad = Keypad::start(config.panel.users.clone())?;
    let writer = state_file::Writer::start(config.state_file.clone())?;
    let mqtt = config.mqtt.clone();
    let topics = Topics::new(&config.mqtt.topic_root);
    let term = holder.as_ref().map(|h| h.term);
    let device = PanelDevice {
        config,
        topics,
        shared: PanelReflex::new(house),
        keypad,
        writer,
        event_ids: EventIds::new(),
        term,
        holder,
        held: Vec::new(),
        deposed: shutdown.clone(),
        silenced: false,
        reflexed: false,
    };
    device_runtime::runner::run(device, &mqtt, shutdown).await
}

/// The ids of the events this run of the panel publishes: `<run>-<n>`, a random number drawn at
/// start (so a restarted panel never repeats an id) and a count from 1.
#[derive(Debug)]
struct EventIds {
    run: u64,
    count: u64,
}

impl EventIds {
    fn new() -> EventIds {
        EventIds { run: fastrand::u64(..), count: 0 }
    }

    fn next(&mut self) -> String {
        self.count += 1;
        format!("{:016x}-{}", self.run, self.count)
    }
}

/// Writing the state file: the one job the runner cannot do for the panel.
#[derive(Debug)]
pub struct Save(Saved);

/// The panel, its keypad and its configuration, as the runner sees them.
struct PanelDevice {
    config: Config,
    topics: Topics,
    /// The house, shared with the link's reflex (see `reflex.rs`).
    shared: PanelReflex,
    keypad: Keypad,
    writer: state_file::Writer,
    event_ids: EventIds,
    /// As the active panel of a pair: its term (on every siren command) and its lease.
    term: Option<u64>,
    holder: Option<Holder>,
    /// Publishes held back while this panel is not sure it still holds the lease (paused past
    /// it, or cut off): sent once its renewal comes back, dropped if it was deposed.
    held: Vec<Act<Save>>,
    /// Triggered when this panel is deposed: the runner stops and the pair follows again.
    deposed: Shutdown,
    /// Deposed: from then on nothing is published, whatever the runner still hands over before
    /// it stops (a reading, our own late renewal coming back).
    silenced: bool,
    /// The link sent the siren's ON as a reflex to the reading being stepped (see `reflex.rs`):
    /// the step's own siren ON is not published again.
    reflexed: bool,
}

impl PanelDevice {
    /// Steps the panel, then lets through the commands whose turn has come and need no check.
    fn step(&mut self, input: Input, now: Timestamp) -> Vec<Act<Save>> {
        let mut acts = self.step_one(input, now);
        if std::mem::take(&mut self.reflexed) && !self.shared.lock().house.sounding() {
            // `House::sounds_at_once` said this reading sounds the siren first, and the step did
            // not (a deadline stepped first may have sounded it already: that is fine): a bug.
            // The siren must not go on sounding for nothing.
            tracing::error!("the siren was sent ON ahead of a reading that did not sound it: sending OFF");
            acts.insert(0, Act::publish(Topic::AlarmControl, &self.siren(false, "a reflex in error".to_owned())));
        }
        acts.extend(self.step_ready(now));
        acts
    }

    /// The siren's command, with this panel's term when it is one of a pair.
    fn siren(&self, on: bool, reason: String) -> AlarmCommand {
        reflex::siren(self.term, on, reason)
    }

    /// Commands without a check to wait for go straight on, in their turn.
    fn step_ready(&mut self, now: Timestamp) -> Vec<Act<Save>> {
        let mut acts = Vec::new();
        loop {
            let locked_out = self.shared.lock().house.locked_out(now);
            let Some((area, command)) = self.keypad.next_ready(locked_out) else { break };
            let actions = self.shared.lock().house.command(area.as_deref(), command, now);
            acts.extend(self.acts(actions));
        }
        self.shared.lock().codes_waiting = self.keypad.waiting() > 0;
        acts
    }

    fn step_one(&mut self, input: Input, now: Timestamp) -> Vec<Act<Save>> {
        let actions = self.shared.lock().house.step(input, now);
        self.acts(actions)
    }

    /// What the runner does for each of the panel's actions. The log lines follow what they tell
    /// of, so the siren command is out before anything is written to the log or the disk.
    fn acts(&mut self, actions: Vec<Action>) -> Vec<Act<Save>> {
        let acts = self.acts_of(actions);
        self.gate(acts)
    }

    /// As the active panel of a pair not sure of its lease: publishes wait (see `held`); deposed,
    /// they are dropped.
    fn gate(&mut self, acts: Vec<Act<Save>>) -> Vec<Act<Save>> {
        if self.silenced {
            return acts.into_iter().filter(|a| !matches!(a, Act::Publish(_))).collect();
        }
        match &self.holder {
            Some(holder) if !holder.may_act(Timestamp::now()) => {
                if self.held.is_empty() {
                    tracing::warn!(
                        "my lease has not come back within {} s: holding back until it does",
                        self.config.lease_s
                    );
                }
                let (publishes, rest): (Vec<_>, Vec<_>) = acts.into_iter().partition(|a| matches!(a, Act::Publish(_)));
                self.held.extend(publishes);
                rest
            }
            _ => acts,
        }
    }

    fn acts_of(&mut self, actions: Vec<Action>) -> Vec<Act<Save>> {
        let mut acts = Vec::with_capacity(actions.len() * 2);
        for action in actions {
            match action {
                Action::Persist => {
                    let snapshot = self.shared.lock().house.snapshot();
                    if let Some(holder) = &self.holder {
                        let state = serde_json::to_value(&snapshot).unwrap_or_default();
                        let snapshot =
                            PanelSnapshot { holder: holder.me.clone(), term: holder.term, state, ts: Timestamp::now() };
                        acts.push(Act::publish(Topic::PanelSnapshot, &snapshot));
                    }
                    acts.push(Act::Job(Save(snapshot)));
                }
                Action::Event(mut event) => {
                    event.id = Some(self.event_ids.next());
                    acts.push(Act::publish(Topic::PanelEvents, &event));
                    acts.push(Act::Note(format!("{}: {}", event.event.as_str(), event.message)));
                    let area = event.area.as_deref().unwrap_or_default();
                    acts.push(Act::count(EVENTS, &[("event", event.event.as_str()), ("area", area)], 1));
                }
                Action::PublishStatus(status) => {
                    let topic = status.area.clone().map_or(Topic::PanelStatus, Topic::AreaStatus);
                    acts.push(Act::publish(topic, &status));
                    let area = status.area.as_deref().unwrap_or_default();
                    for state in STATES {
                        let on = i64::from(state == status.state);
                        acts.push(Act::gauge(STATE, &[("area", area), ("state", state.as_str())], on));
                    }
                }
                Action::Siren { on, reason } => {
                    let note = format!("siren {}: {reason}", if on { "ON" } else { "OFF" });
                    // Already on the wire when it was this step's reflex.
                    if !(on && std::mem::take(&mut self.reflexed)) {
                        acts.push(Act::publish(Topic::AlarmControl, &self.siren(on, reason)));
                    }
                    acts.push(Act::Note(note));
                    acts.push(Act::count(SIREN_COMMANDS, &[("state", if on { "ON" } else { "OFF" })], 1));
                }
                Action::Sound { tone, on, duration_s } => {
                    let command = AlarmCommand {
                        state: if on { Power::On } else { Power::Off },
                        reason: Some(tone.as_str().to_owned()),
                        tone: Some(tone),
                        duration_s,
                        term: self.term,
                    };
                    acts.push(Act::publish(Topic::Sound, &command));
                }
            }
        }
        acts
    }
}

/// The panel's state, one series per area and state: 1 for the state it is in, 0 for the others.
pub const STATE: Metric = Metric::gauge(
    "mqtt_home_panel_state",
    "1 for the state the panel (or an area: label area) is in, 0 for the others",
);
pub const EVENTS: Metric = Metric::counter("mqtt_home_panel_events", "The panel's events, by kind and area");
pub const SIREN_COMMANDS: Metric =
    Metric::counter("mqtt_home_siren_commands", "Siren commands the panel sent, ON and OFF");
const STATES: [PanelState; 7] = [
    PanelState::Disarmed,
    PanelState::Arming,
    PanelState::ArmedHome,
    PanelState::ArmedAway,
    PanelState::ArmedNight,
    PanelState::Pending,
    PanelState::Triggered,
];

impl Device for PanelDevice {
    type Job = Save;

    fn spec(&self) -> DeviceSpec {
        let mut spec = spec(&self.topics, &self.config);
        if self.holder.is_some() {
            spec.subscriptions.push((self.topics.name(&Topic::PanelLeader), Qos::AtLeastOnce));
        } else {
            spec.reflex = Some(std::sync::Arc::new(self.shared.clone()));
        }
        spec
    }

    /// Saves once at start: a state file that cannot be written shows as a trouble from the start.
    /// The active panel of a pair also claims its term and publishes its snapshot.
    fn on_start(&mut self, now: Timestamp) -> Vec<Act<Save>> {
        let mut acts = self.renewal(now);
        acts.extend(self.acts_of(vec![Action::Persist]));
        acts
    }

    fn on_connected(&mut self, now: Timestamp) -> Vec<Act<Save>> {
        let actions = self.shared.lock().house.on_connected(now);
        self.acts(actions)
    }

    /// A tracked person's presence topic is not the home's own: it arrives here.
    fn on_foreign(&mut self, foreign: Unreadable, now: Timestamp) -> Vec<Act<Save>> {
        match self.config.panel.presence.person_of(&foreign.topic) {
            Some(person) => {
                let home = schedule::is_home(&foreign.raw);
                self.step(Input::Presence { person: person.to_owned(), home }, now)
            }
            None => {
                tracing::warn!("ignored a message: {}", foreign.why);
                Vec::new()
            }
        }
    }

    fn on_reflex(&mut self) {
        self.reflexed = true;
    }

    fn on_message(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Act<Save>> {
        if let Ok(Message::PanelLeader(claim)) = &message {
            return self.on_claim(claim, now);
        }
        match to_input(message) {
            Some(Incoming::Command(area, command)) => {
                self.keypad.push(area, command);
                self.step_ready(now)
            }
            Some(Incoming::Input(input)) => self.step(input, now),
            None => Vec::new(),
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        let renewal = self.holder.as_ref().map(Holder::next_deadline);
        self.shared.lock().house.next_deadline().into_iter().chain(renewal).min()
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<Save>> {
        let mut acts = self.renewal(now);
        acts.extend(self.step(Input::Tick, now));
        acts
    }

    async fn wake(&mut self) -> Vec<Act<Save>> {
        let (area, command) = self.keypad.checked().await;
        let now = Timestamp::now();
        let mut acts = {
            let actions = self.shared.lock().house.command(area.as_deref(), command, now);
            self.acts(actions)
        };
        acts.extend(self.step_ready(now));
        acts
    }

    /// fsync takes milliseconds on a disk (10–100 ms on an SD card): off the runtime's thread, so
    /// the MQTT link keeps reading and acknowledging meanwhile, and at a lower priority than the
    /// broker and the siren (see [`state_file::Writer`]). A failure, and the first success after
    /// failures, is the panel's next input.
    async fn run_job(&mut self, Save(snapshot): Save) -> Vec<Act<Save>> {
        let outcome = self.writer.save(snapshot).await;
        if outcome.is_ok() && !self.shared.lock().house.save_trouble() {
            return Vec::new();
        }
        self.step(Input::Saved(outcome), Timestamp::now())
    }
}

impl PanelDevice {
    /// The lease's renewal, when one is due (the active panel of a pair only).
    fn renewal(&mut self, now: Timestamp) -> Vec<Act<Save>> {
        if self.silenced {
            return Vec::new();
        }
        let claim = self.holder.as_mut().and_then(|h| h.renewal(now));
        claim.map(|c| Act::publish(Topic::PanelLeader, &c)).into_iter().collect()
    }

    /// A claim on the leader topic: our renewal back (what was held back goes), or a higher term
    /// (deposed: what was held back is dropped, and the panel stops).
    fn on_claim(&mut self, claim: &PanelLeader, now: Timestamp) -> Vec<Act<Save>> {
        let Some(holder) = &mut self.holder else { return Vec::new() };
        if self.silenced {
            return Vec::new();
        }
        if holder.on_claim(claim, now) {
            tracing::warn!(
                "deposed: {} holds term {} (mine was {}); dropping {} held-back publishes",
                claim.holder,
                claim.term,
                holder.term,
                self.held.len()
            );
            self.held.clear();
            self.silenced = true;
            self.deposed.trigger();
            return Vec::new();
        }
        if !self.held.is_empty() && holder.may_act(now) {
            tracing::info!("my lease came back: sending {} held-back publishes", self.held.len());
            return std::mem::take(&mut self.held);
        }
        Vec::new()
    }
}

/// What the panel subscribes to and announces.
fn spec(topics: &Topics, config: &Config) -> DeviceSpec {
    let mut spec = DeviceSpec::new(DeviceKind::SecurityController);
    spec.capabilities =
        ["arm_away", "arm_home", "arm_night", "disarm", "trigger", "duress", "supervision"].map(String::from).to_vec();
    let mut subscriptions: Vec<String> = SensorKind::ALL.iter().map(|k| topics.all_sensors(*k)).collect();
    subscriptions.push(topics.all_availability());
    subscriptions.push(topics.all_conditions());
    subscriptions.extend(config.panel.presence.people.values().cloned());
    subscriptions.push(topics.name(&Topic::PanelSet));
    let areas: Vec<&str> = config.panel.areas.iter().map(|a| a.name.as_str()).collect();
    subscriptions.extend(areas.iter().map(|a| topics.name(&Topic::AreaSet((*a).to_owned()))));
    spec.subscriptions = subscriptions.into_iter().map(|s| (s, Qos::AtLeastOnce)).collect();
    spec.command_topics = vec![topics.name(&Topic::PanelSet)];
    spec.command_topics.extend(areas.iter().map(|a| topics.name(&Topic::AreaSet((*a).to_owned()))));
    spec.state_topics = vec![topics.name(&Topic::PanelStatus), topics.name(&Topic::PanelEvents)];
    spec.state_topics.extend(areas.iter().map(|a| topics.name(&Topic::AreaStatus((*a).to_owned()))));
    spec.discovery = protocol::discovery::panel(topics, config.panel.code_arm_required, &areas);
    spec
}

/// A panel that cannot start says why where people look, before it exits: an event on the
/// broker, and its availability `offline`. A retained status left by an earlier run would
/// otherwise say `armed_away` while nothing guards the house.
async fn refuse_to_start(config: &Config, error: &anyhow::Error) {
    let shutdown = Shutdown::new();
    let topics = Topics::new(&config.mqtt.topic_root);
    let mut spec = spec(&topics, config);
    spec.subscriptions.clear();
    let Ok(mut link) = Link::start(&config.mqtt, spec, shutdown.clone()) else { return };
    if link.connected(REFUSAL_WAIT).await {
        let event = PanelEvent {
            reason: None,
            cause: None,
            event: PanelEventKind::Trouble,
            id: Some(EventIds::new().next()),
            mode: None,
            user: None,
            sensors: vec![config.mqtt.id.clone()],
            message: format!("the panel cannot start and is not guarding anything: {error:#}"),
            area: None,
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

/// A message for the panel: a command for the keypad (to an area, or the house), or an input for
/// the panel itself.
enum Incoming {
    Command(Option<String>, PanelCommand),
    Input(Input),
}

async fn send<P: Payload>(publisher: &Publisher, topic: &Topic, payload: &P) {
    if let Err(e) = publisher.send(topic, payload).await {
        tracing::error!("{e}");
    }
}

/// Reads one message; anything unusable is logged once (never with a code) and ignored.
/// The topic's name is made only for a log line: most messages need none.
fn to_input(message: Result<Message, Unreadable>) -> Option<Incoming> {
    match message {
        // A zero-length (retained) publish is how MQTT clears a topic: the sensor is taken out.
        Ok(Message::Cleared(Topic::Sensor { kind, id })) => Some(Incoming::Input(Input::SensorCleared { kind, id })),
        Ok(Message::Sensor { kind, id, reading }) => {
            Some(Incoming::Input(Input::Sensor { kind, id, state: reading.state }))
        }
        Ok(Message::Availability { id, availability }) => {
            Some(Incoming::Input(Input::Availability { id, online: availability == Availability::Online }))
        }
        Ok(Message::Condition { id, condition }) => Some(Incoming::Input(Input::Condition { id, condition })),
        // A device taken out (`mqtt-home forget`): whatever its condition said no longer holds.
        Ok(Message::Cleared(Topic::Condition(id))) => {
            let condition = protocol::Condition {
                battery: None,
                battery_low: None,
                tamper: None,
                linkquality: None,
                last_seen: None,
                device_id: id.clone(),
                ts: Timestamp(0),
            };
            Some(Incoming::Input(Input::Condition { id, condition }))
        }
        Ok(Message::PanelSet(command)) => Some(command_for(None, command)),
        Ok(Message::AreaSet { area, command }) => Some(command_for(Some(area), command)),
        Ok(_) => None,
        Err(e) => unreadable(e),
    }
}

/// A command for the keypad, to `area` or the house; logged without its code.
fn command_for(area: Option<String>, command: PanelCommand) -> Incoming {
    let code = if command.code.is_some() { "with a code" } else { "without a code" };
    // The panel's answer (an event) is logged at info; a flood of commands is not doubled.
    tracing::debug!(
        "command {}{} {code}{}",
        command.action.as_str(),
        area.as_deref().map(|a| format!(" to {a}")).unwrap_or_default(),
        if command.force { ", forced" } else { "" }
    );
    Incoming::Command(area, command)
}

/// A sensor's unreadable reading is a trouble until it sends a good one; an unreadable command is
/// answered with a refusal event, as a wrong code is; anything else is a log line.
fn unreadable(e: Unreadable) -> Option<Incoming> {
    match e.parsed {
        Some(Topic::Sensor { kind, id }) => {
            tracing::warn!(
                "unreadable message on {} (a trouble until it sends a reading): {}; see docs/protocol.md",
                e.topic,
                e.why
            );
            Some(Incoming::Input(Input::Unreadable { kind, id, error: e.why.to_string() }))
        }
        // Decode errors of panel commands never quote the payload: it may hold a PIN.
        Some(Topic::PanelSet | Topic::AreaSet(_)) => {
            let how = "send {\"action\":\"DISARM\",\"code\":\"<PIN>\"} (the code as a string) or a bare ARM_AWAY";
            tracing::warn!("refused a message on {}: {}; {how}", e.topic, e.why);
            Some(Incoming::Input(Input::UnreadableCommand { error: format!("{}; {how}", e.why) }))
        }
        _ => {
            tracing::warn!("ignored a message on {}: {}", e.topic, e.why);
            None
        }
    }
}

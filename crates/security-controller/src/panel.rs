//! The alarm panel's decisions: a pure state machine, `(panel, input, now) -> (panel, actions)`.
//!
//! Nothing here reads a clock, touches a file, checks a PIN or speaks MQTT: `now` comes in, actions
//! go out, and the edge (`edge.rs`) publishes, persists and schedules the next [`Input::Tick`]. Codes
//! arrive already checked ([`Code`], by the keypad thread). Deadlines are wall-clock [`Timestamp`]s
//! so that a [`Panel`] read back from its state file after a crash continues where it stopped — an
//! entry delay that ran out while the controller was down triggers the alarm at the first tick
//! after the restart.
//!
//! What is saved is what a restart needs and nothing that grows with the sensors ever seen: the arm
//! state and its deadlines, bypasses, trip counts, wrong codes and lockout. Sensors are relearned
//! from their retained readings after a restart (fail secure: an open one trips again).
//!
//! States follow Home Assistant's panel: `disarmed` → `arming` (exit delay) → `armed_<mode>` →
//! `pending` (entry delay) → `triggered` (siren time) → back to `armed_<mode>` or `disarmed`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use protocol::{
    ArmMode, Cause, PanelAction, PanelEvent, PanelEventKind, PanelState, PanelStatus, Refusal, SensorKind, SensorState,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::config::{PanelConfig, User, Zone};
pub use crate::keypad::{Code, Command};
use crate::people::Right;
use crate::schedule::{self, AutoArm};
use crate::sounds;

/// Who arms when a schedule does, in `changed_by` and events.
pub const SCHEDULE: &str = "schedule";

/// Who arms when the last tracked person leaves.
pub const PRESENCE: &str = "presence";

/// The sensor id used when the alarm is raised by a `TRIGGER` command.
pub const PANIC: &str = "panel";

/// At most one `code_refused` event in this time while locked out; the others are counted.
pub const REFUSAL_EVENT_GAP: Duration = Duration::from_secs(1);

/// How long after a failed save it is tried again (the state is kept in memory meanwhile).
pub const SAVE_RETRY: Duration = Duration::from_secs(5);

/// Where the panel is in its cycle. Deadlines are absolute, so they survive a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Arm {
    Disarmed,
    /// The exit delay: leave now. `from` is the mode still in force meanwhile when switching
    /// from one armed mode to a stricter one (home → away): its perimeter stays armed.
    Arming {
        mode: ArmMode,
        until: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<ArmMode>,
    },
    Armed {
        mode: ArmMode,
    },
    /// The entry delay: disarm before `until`.
    Pending {
        mode: ArmMode,
        until: Timestamp,
        sensor: String,
    },
    /// The siren sounds until `until`. `mode` is `None` when tripped while disarmed (24 h zone, panic).
    Triggered {
        mode: Option<ArmMode>,
        until: Timestamp,
        sensor: String,
    },
}

/// What the panel knows of one sensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorInfo {
    pub kind: SensorKind,
    /// `OPEN` or `MOTION`.
    pub active: bool,
    pub online: bool,
    /// When its availability went `offline`; a trouble once that lasts `offline_grace_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<Timestamp>,
    pub last_seen: Timestamp,
    pub trouble: bool,
}

impl SensorInfo {
    /// A sensor first heard of at `now`: closed, online, no trouble.
    fn new(kind: SensorKind, now: Timestamp) -> SensorInfo {
        SensorInfo { kind, active: false, online: true, offline_since: None, last_seen: now, trouble: false }
    }

    /// Whether a reading of `state` only repeats what is known of this sensor: it changes nothing
    /// but when it was last heard.
    fn heartbeat(&self, kind: SensorKind, state: SensorState) -> bool {
        self.kind == kind
            && self.active == state.is_active()
            && self.online
            && self.offline_since.is_none()
            && !self.trouble
    }
}

/// Codes refused during a lockout since the last `code_refused` event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals {
    pub unreported: u32,
    pub last_event: Option<Timestamp>,
}

/// The state file could not be written: a trouble until a save succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveTrouble {
    pub error: String,
    pub retry_at: Timestamp,
}

/// The panel. Serialized, it is the state file: only what must survive a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Panel {
    pub arm: Arm,
    /// Sensors ignored until disarm: forced arming, or a swinger past `swinger_limit`.
    pub bypassed: BTreeSet<String>,
    /// How often each sensor has tripped the alarm (or started the entry delay) in this arming.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trips: BTreeMap<String, u32>,
    /// What the panel knows of each sensor: relearned from retained readings after a restart.
    #[serde(skip)]
    pub sensors: BTreeMap<String, SensorInfo>,
    /// Set while the state file cannot be written.
    #[serde(skip)]
    pub save_trouble: Option<SaveTrouble>,
    /// Codes refused during a lockout, and when the last `code_refused` event went out.
    #[serde(skip)]
    pub refusals: Refusals,
    /// Times of recent wrong codes, within the window.
    pub wrong_codes: Vec<Timestamp>,
    pub lockout_until: Option<Timestamp>,
    pub changed_by: Option<String>,
    pub last_trigger: Option<(String, Timestamp)>,
    /// When supervision (every sensor's silence and absence) is next looked at: once a second at
    /// most, not on every input, so a reading costs the same with 10 or 10 000 sensors.
    #[serde(skip)]
    pub next_supervision: Timestamp,
    /// The earliest a sensor can go silent or stay offline too long, as of the last full step.
    /// Never later than the truth (a heartbeat only moves its own sensor's deadline later), so
    /// waking then is never too late, and finding it needs no look at every sensor.
    #[serde(skip)]
    pub supervision_due: Option<Timestamp>,
    /// The sensors that are open, in trouble or offline: the only ones a status names, so that
    /// building one looks at these, not at every sensor. Kept by [`Panel::note`].
    #[serde(skip)]
    pub notable: BTreeSet<String>,
    /// The next scheduled arming (`[[panel.schedules]]`), planned at the first step and after each.
    /// Not saved: a restart plans again (a cancellation is forgotten: fail secure).
    #[serde(skip)]
    pub auto_arm: Option<AutoArm>,
    #[serde(skip)]
    pub schedule_planned: bool,
    /// Devices with a low battery, a weak radio or an open tamper switch, from their retained
    /// conditions (relearned after a restart, as sensors are).
    #[serde(skip)]
    pub upkeep: BTreeMap<String, Upkeep>,
    /// Whether each tracked person is home, from their retained presence topics.
    #[serde(skip)]
    pub people_home: BTreeMap<String, bool>,
    /// Presence armed the panel from disarmed, and nothing since (a code, an alarm) took that
    /// arming over: only then may an arrival disarm it (`disarm_on_arrival`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub presence_armed: bool,
}

/// When a sensor goes silent past its zone's window or has been offline past the grace; none
/// for one already in trouble (it is reported) or not supervised.
fn deadline(config: &PanelConfig, id: &str, s: &SensorInfo) -> Option<Timestamp> {
    if s.trouble {
        return None;
    }
    let window = config.supervision_s(config.zone(s.kind, id), id);
    let silent = (window > 0).then(|| s.last_seen.plus(Duration::from_secs(window) + Duration::from_millis(1)));
    let offline =
        s.offline_since.map(|t| t.plus(Duration::from_secs(config.offline_grace_s) + Duration::from_millis(1)));
    silent.into_iter().chain(offline).min()
}

/// How often supervision looks at every sensor.
const SUPERVISION_EVERY: Duration = Duration::from_secs(1);

/// What the panel hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A keypad command, its code checked.
    Command(Command),
    Sensor {
        kind: SensorKind,
        id: String,
        state: SensorState,
    },
    /// A reading on a sensor's topic that cannot be read (`error` says why): a trouble, never
    /// only a log line.
    Unreadable {
        kind: SensorKind,
        id: String,
        error: String,
    },
    /// A message on the command topic that cannot be read (`error` says why, never quoting it:
    /// it may hold a PIN): refused with an event, as a wrong code is, so whoever sent it is told.
    UnreadableCommand {
        error: String,
    },
    /// A zero-length retained publish on a sensor's topic: how MQTT takes a device out.
    SensorCleared {
        kind: SensorKind,
        id: String,
    },
    /// How the last save of the state file went (the edge reports failures, and success after one).
    Saved(Result<(), String>),
    /// A device's availability (Last Will); only sensors the panel knows are concerned.
    Availability {
        id: String,
        online: bool,
    },
    /// A tracked person's presence: home or away (`None`: not known, e.g. the topic was cleared).
    Presence {
        person: String,
        home: Option<bool>,
    },
    /// A device's battery, radio and tamper switch (`devices/<id>/condition`).
    Condition {
        id: String,
        condition: protocol::Condition,
    },
    /// Time passed: deadlines and supervision windows may have run out.
    Tick,
}

/// What the panel makes of a device's condition; a device with none of these is not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upkeep {
    pub battery_low: bool,
    pub weak_radio: bool,
    /// The tamper switch is open: a trouble, and an alarm while armed.
    pub tampered: bool,
}

/// What the edge must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish this status (retained).
    PublishStatus(PanelStatus),
    /// Publish this event.
    Event(PanelEvent),
    /// Turn the siren on or off.
    Siren { on: bool, reason: String },
    /// Play (or stop) a sound short of the alarm: beeps, a chime, a chirp ([`crate::sounds`]).
    Sound { tone: protocol::Tone, on: bool, duration_s: Option<u64> },
    /// The saved state changed: write it (atomically). It comes before everything it goes with,
    /// except a siren ON: the siren never waits for a disk (see ARCHITECTURE.md).
    Persist,
}

impl Default for Panel {
    fn default() -> Self {
        Panel::new()
    }
}

/// Collects the events of one step.
struct Events<'a> {
    device_id: &'a str,
    now: Timestamp,
    list: Vec<PanelEvent>,
    /// Sensors with `chime = true` that opened while disarmed.
    chimed: Vec<String>,
}

impl Events<'_> {
    fn push(
        &mut self,
        event: PanelEventKind,
        mode: Option<ArmMode>,
        user: Option<&str>,
        sensors: Vec<String>,
        message: String,
    ) {
        self.list.push(PanelEvent {
            event,
            // Numbered as they are published (the edge's `EventIds`): the panel's steps stay pure.
            id: None,
            mode,
            user: user.map(str::to_owned),
            sensors,
            reason: None,
            cause: None,
            message,
            area: None,
            device_id: self.device_id.to_owned(),
            ts: self.now,
        });
    }

    /// What the last event pushed is about (a tamper, a low battery): what a monitoring centre
    /// reports by a code of its own.
    fn because(&mut self, cause: Cause) {
        if let Some(event) = self.list.last_mut() {
            event.cause = Some(cause);
        }
    }

    /// `user`, whose code was right, may not do `what`: why, in the event and its sentence.
    fn refused(&mut self, user: &User, what: &str, reason: Refusal, mode: Option<ArmMode>) {
        let by = user.shown_name();
        let why = match reason {
            Refusal::NotPermitted => "not permitted".to_owned(),
            Refusal::OutsideHours => "outside their hours".to_owned(),
            Refusal::Expired => {
                format!("their code expired after {}", user.valid_until.map_or(String::new(), |d| d.to_string()))
            }
            Refusal::NotYetValid => {
                format!("their code is valid from {}", user.valid_from.map_or(String::new(), |d| d.to_string()))
            }
        };
        self.push(PanelEventKind::Refused, mode, Some(by), vec![], format!("{by} may not {what}: {why}"));
        if let Some(event) = self.list.last_mut() {
            event.reason = Some(reason);
        }
    }

    /// A trouble of sensor (or panel) `id`.
    fn trouble(&mut self, id: &str, message: String) {
        self.push(PanelEventKind::Trouble, None, None, vec![id.to_owned()], message);
    }
}

/// What something opening or moving does in the panel's state (see [`Panel::response`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    Nothing,
    /// The alarm at once, in `mode` (none: a 24-hour zone while disarmed); `why` names the rule.
    Alarm {
        mode: Option<ArmMode>,
        why: &'static str,
    },
    /// The entry delay of `mode`.
    EntryDelay {
        mode: ArmMode,
        delay_s: u64,
    },
}

impl Panel {
    pub fn new() -> Panel {
        Panel {
            arm: Arm::Disarmed,
            bypassed: BTreeSet::new(),
            trips: BTreeMap::new(),
            sensors: BTreeMap::new(),
            save_trouble: None,
            refusals: Refusals::default(),
            wrong_codes: Vec::new(),
            lockout_until: None,
            changed_by: None,
            last_trigger: None,
            next_supervision: Timestamp(0),
            supervision_due: None,
            notable: BTreeSet::new(),
            auto_arm: None,
            schedule_planned: false,
            upkeep: BTreeMap::new(),
            people_home: BTreeMap::new(),
            presence_armed: false,
        }
    }

    /// The panel read back from its state file after the controller was down. Sensors are not in
    /// the file: the retained readings that arrive next say what is open, and an open sensor then
    /// trips as if it had just opened (bypassed ones excepted). Trusting a saved "open" instead
    /// could miss a window closed and reopened while the panel was down; their silence counts from
    /// the reading, not from before the outage.
    pub fn resumed(mut self) -> Panel {
        self.sensors.clear();
        self.save_trouble = None;
        self.next_supervision = Timestamp(0);
        self.supervision_due = None;
        self.notable.clear();
        self.auto_arm = None;
        self.schedule_planned = false;
        self.upkeep.clear();
        self.people_home.clear();
        self
    }

    /// The panel as the state file holds it: without what is relearned after a restart (the
    /// sensors and what is derived from them), so a save costs the same with 10 sensors or 10 000.
    pub fn snapshot(&self) -> Panel {
        Panel {
            arm: self.arm.clone(),
            bypassed: self.bypassed.clone(),
            trips: self.trips.clone(),
            wrong_codes: self.wrong_codes.clone(),
            lockout_until: self.lockout_until,
            changed_by: self.changed_by.clone(),
            last_trigger: self.last_trigger.clone(),
            presence_armed: self.presence_armed,
            ..Panel::new()
        }
    }

    /// What the state file holds, to tell whether a step changed it. A heartbeat, a motion, a
    /// new sensor cost no fsync; an opening that matters changes the arm state.
    fn saved(&self) -> impl PartialEq + use<> {
        (
            self.arm.clone(),
            self.bypassed.clone(),
            self.trips.clone(),
            self.wrong_codes.clone(),
            self.lockout_until,
            self.changed_by.clone(),
            self.last_trigger.clone(),
            self.presence_armed,
        )
    }

    /// Whether something that runs with the clock is due at `now`: a delay or the siren time run
    /// out, a lockout over, a failed save to retry, supervision to look at.
    fn due(&self, now: Timestamp) -> bool {
        let arm_deadline = match &self.arm {
            Arm::Arming { until, .. } | Arm::Pending { until, .. } | Arm::Triggered { until, .. } => Some(*until),
            Arm::Disarmed | Arm::Armed { .. } => None,
        };
        self.supervision_finds(now)
            || self.schedule_deadline().is_some_and(|t| t <= now)
            || arm_deadline.is_some_and(|t| t <= now)
            || self.lockout_until.is_some_and(|t| t <= now)
            || self.save_trouble.as_ref().is_some_and(|t| t.retry_at <= now)
    }

    /// Whether supervision should look at the sensors now: a second after it last did, or at
    /// once if the clock was set back (the last look then seems to lie in the future, and waiting
    /// for it would leave every sensor unsupervised for as long as the clock went back).
    fn supervision_is_due(&self, now: Timestamp) -> bool {
        now >= self.next_supervision || self.next_supervision > now.plus(SUPERVISION_EVERY)
    }

    /// Whether supervision, looking at `now`, could find anything: a sensor past its window or
    /// grace (`supervision_due` is never later than the earliest of those), or a clock set back.
    /// Once a second it looks anyway; a look that finds nothing changes nothing but its time.
    fn supervision_finds(&self, now: Timestamp) -> bool {
        let clock_back = self.next_supervision > now.plus(SUPERVISION_EVERY);
        clock_back || (self.supervision_is_due(now) && self.supervision_due.is_some_and(|due| due <= now))
    }

    /// Whether codes are refused at `now` without being checked.
    pub fn locked_out(&self, now: Timestamp) -> bool {
        self.lockout_until.is_some_and(|t| t > now)
    }

    /// What to do on (re)connecting to the broker: the retained status again, and the siren again
    /// if the alarm is on (the siren or the broker may have restarted mid-alarm).
    pub fn on_connected(&self, config: &PanelConfig, now: Timestamp, device_id: &str) -> Vec<Action> {
        let mut actions = vec![Action::PublishStatus(self.status(config, now, device_id))];
        if let Arm::Triggered { sensor, .. } = &self.arm {
            actions.push(Action::Siren { on: true, reason: format!("alarm triggered by {sensor}") });
        }
        actions
    }

    /// Takes one input at `now`.
    pub fn step(mut self, config: &PanelConfig, input: Input, now: Timestamp, device_id: &str) -> (Panel, Vec<Action>) {
        if let Input::Sensor { kind, id, state } = &input
            && !self.due(now)
        {
            // The most common inputs by far: a sensor saying again what the panel knows, and (as
            // the retained readings arrive after a start) a sensor first heard of closed and still.
            // Each is a sign of life and nothing else, so it costs no status and no look at every
            // sensor: a reading costs the same with 10 sensors or 10 000.
            match self.sensors.get_mut(id) {
                Some(info) if info.heartbeat(*kind, *state) => {
                    info.last_seen = now;
                    #[cfg(test)]
                    self.check_indexes(config);
                    return (self, Vec::new());
                }
                None if !state.is_active() => {
                    self.sensors.insert(id.clone(), SensorInfo::new(*kind, now));
                    let window = config.supervision_s(config.zone(*kind, id), id);
                    if window > 0 {
                        let silent = now.plus(Duration::from_secs(window) + Duration::from_millis(1));
                        self.supervision_due = Some(self.supervision_due.map_or(silent, |due| due.min(silent)));
                    }
                    #[cfg(test)]
                    self.check_indexes(config);
                    return (self, Vec::new());
                }
                _ => {}
            }
        }
        let saved_before = self.saved();
        let status_before = self.status_key(config);
        let was_sounding = matches!(self.arm, Arm::Triggered { .. });
        let mut events = Events { device_id, now, list: Vec::new(), chimed: Vec::new() };
        let arm_before = self.arm.clone();
        let mut persist = self.expire(config, now, &mut events);
        self.follow_schedule(config, now, &mut events);
        let touched = match &input {
            Input::Sensor { id, .. }
            | Input::Unreadable { id, .. }
            | Input::SensorCleared { id, .. }
            | Input::Availability { id, .. } => Some(id.clone()),
            Input::Tick
            | Input::Command(_)
            | Input::UnreadableCommand { .. }
            | Input::Saved(_)
            | Input::Condition { .. }
            | Input::Presence { .. } => None,
        };
        match input {
            Input::Tick => {}
            Input::Command(command) => self.command(config, command, now, &mut events),
            Input::Sensor { kind, id, state } => self.sensor(config, kind, id, state, now, &mut events),
            Input::Unreadable { kind, id, error } => self.unreadable(kind, id, &error, now, &mut events),
            Input::UnreadableCommand { error } => events.push(
                PanelEventKind::CodeRefused,
                None,
                None,
                vec![],
                format!("a command it could not read was refused: {error}"),
            ),
            Input::SensorCleared { kind, id } => self.cleared(config, kind, &id, now, &mut events),
            Input::Availability { id, online } => self.availability(config, &id, online, now, &mut events),
            Input::Saved(outcome) => self.saved_outcome(outcome, now, &mut events),
            Input::Condition { id, condition } => self.condition(config, id, &condition, now, &mut events),
            Input::Presence { person, home } => self.presence(config, person, home, now, &mut events),
        }
        if let Some(id) = &touched {
            self.note(id);
            // Only this sensor's deadlines moved: the earliest of all is the earlier of the two.
            if let Some(due) = self.sensor_deadline(config, id) {
                self.supervision_due = Some(self.supervision_due.map_or(due, |d| d.min(due)));
            }
        }
        if self.supervision_is_due(now) {
            self.supervise(config, now, &mut events);
            self.next_supervision = now.plus(SUPERVISION_EVERY);
            self.supervision_due = self.supervision_deadline(config);
        }

        let mut actions = Vec::new();
        persist |= self.saved() != saved_before;
        let sounding = matches!(self.arm, Arm::Triggered { .. });
        if sounding && !was_sounding {
            // Siren first: the one action that never waits for the disk. A panel killed before the
            // save that follows comes back in its older, armed state and the retained reading of
            // the sensor that tripped trips it again.
            let sensor = self.last_trigger.as_ref().map_or(PANIC, |(s, _)| s.as_str());
            actions.push(Action::Siren { on: true, reason: format!("alarm triggered by {sensor}") });
        }
        if persist {
            actions.push(Action::Persist);
        }
        if was_sounding && !sounding {
            let reason = if matches!(self.arm, Arm::Disarmed) { "disarmed" } else { "siren time over" };
            actions.push(Action::Siren { on: false, reason: reason.to_owned() });
        }
        // The status goes out when it changed, not with every event: a flood of refused codes
        // must not double into a flood of identical statuses.
        let status_changed = status_before != self.status_key(config);
        actions.extend(sounds::of_step(&config.sounds, &arm_before, &self.arm, &events.list, &events.chimed, now));
        actions.extend(events.list.into_iter().map(Action::Event));
        if status_changed {
            actions.push(Action::PublishStatus(self.status(config, now, device_id)));
        }
        #[cfg(test)]
        self.check_indexes(config);
        (self, actions)
    }

    /// In every unit test, after every full step: the indexes that spare a pass over the sensors
    /// say what such a pass would.
    #[cfg(test)]
    fn check_indexes(&self, config: &PanelConfig) {
        let notable: BTreeSet<String> =
            self.sensors.iter().filter(|(_, s)| s.active || s.trouble || !s.online).map(|(id, _)| id.clone()).collect();
        assert_eq!(self.notable, notable, "the notable sensors");
        if let Some(earliest) = self.supervision_deadline(config) {
            assert!(
                self.supervision_due.is_some_and(|due| due <= earliest),
                "supervision_due {:?} is later than a sensor's deadline {earliest:?}",
                self.supervision_due
            );
        }
    }

    /// The earliest time a [`Input::Tick`] can change anything.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let arm = match &self.arm {
            Arm::Arming { until, .. } | Arm::Pending { until, .. } | Arm::Triggered { until, .. } => Some(*until),
            Arm::Disarmed | Arm::Armed { .. } => None,
        };
        // Supervision looks at the sensors at most once a second (see `next_supervision`).
        let supervision = self.supervision_due.map(|due| due.max(self.next_supervision));
        let lockout = self.lockout_until;
        let save_retry = self.save_trouble.as_ref().map(|t| t.retry_at);
        arm.into_iter().chain(supervision).chain(lockout).chain(save_retry).chain(self.schedule_deadline()).min()
    }

    /// When the schedule next needs a step: at once until it is planned, then its warning, then
    /// its arming.
    fn schedule_deadline(&self) -> Option<Timestamp> {
        if !self.schedule_planned {
            return Some(Timestamp(0));
        }
        let plan = self.auto_arm.as_ref()?;
        let warning = plan.warn_at.filter(|_| !plan.warned && plan.cancelled_by.is_none());
        Some(warning.map_or(plan.at, |w| w.min(plan.at)))
    }

    /// The earliest a sensor goes silent past its zone's window or stays offline past the grace.
    fn supervision_deadline(&self, config: &PanelConfig) -> Option<Timestamp> {
        self.sensors.iter().filter_map(|(id, s)| deadline(config, id, s)).min()
    }

    /// When sensor `id` goes silent or has been offline too long, if it is supervised and well.
    fn sensor_deadline(&self, config: &PanelConfig, id: &str) -> Option<Timestamp> {
        self.sensors.get(id).and_then(|s| deadline(config, id, s))
    }

    /// Keeps [`Panel::notable`] true of sensor `id` after a change to it (or its removal).
    fn note(&mut self, id: &str) {
        match self.sensors.get(id) {
            Some(s) if s.active || s.trouble || !s.online => {
                self.notable.insert(id.to_owned());
            }
            _ => {
                self.notable.remove(id);
            }
        }
    }

    /// The notable sensors with what the panel knows of each.
    fn notable_sensors(&self) -> impl Iterator<Item = (&String, &SensorInfo)> {
        self.notable.iter().filter_map(|id| self.sensors.get_key_value(id))
    }

    /// The status message.
    pub fn status(&self, config: &PanelConfig, now: Timestamp, device_id: &str) -> PanelStatus {
        let (state, mode, until) = match &self.arm {
            Arm::Disarmed => (PanelState::Disarmed, None, None),
            Arm::Arming { mode, until, .. } => (PanelState::Arming, Some(*mode), Some(*until)),
            Arm::Armed { mode } => (mode.armed_state(), Some(*mode), None),
            Arm::Pending { mode, until, .. } => (PanelState::Pending, Some(*mode), Some(*until)),
            Arm::Triggered { mode, until, .. } => (PanelState::Triggered, *mode, Some(*until)),
        };
        let seconds_until = |t: Timestamp| t.since(now).as_millis().div_ceil(1000) as u64;
        PanelStatus {
            state,
            mode,
            ready: self.blockers(config).is_empty(),
            open_sensors: self.open_sensors(config),
            bypassed: self.bypassed.iter().cloned().collect(),
            troubles: self.troubles(device_id),
            warnings: self.warnings(),
            delay_remaining_s: until.map(seconds_until),
            last_trigger: self.last_trigger.as_ref().map(|(s, _)| s.clone()),
            last_trigger_ts: self.last_trigger.as_ref().map(|(_, t)| *t),
            changed_by: self.changed_by.clone(),
            lockout_remaining_s: self.lockout_until.filter(|t| *t > now).map(seconds_until),
            area: None,
            areas: BTreeMap::new(),
            device_id: device_id.to_owned(),
            ts: now,
        }
    }

    /// What a status shows, without the parts that change with the clock alone.
    fn status_key(&self, config: &PanelConfig) -> PanelStatus {
        let mut s = self.status(config, Timestamp(0), "");
        s.delay_remaining_s = None;
        s.lockout_remaining_s = self.lockout_until.map(|_| 0);
        s
    }

    /// Entry and perimeter sensors that are open now.
    fn open_sensors(&self, config: &PanelConfig) -> Vec<String> {
        self.notable_sensors()
            .filter(|(id, s)| s.active && config.zone(s.kind, id).blocks_arming())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Sensors in trouble, and the panel itself (`device_id`) while it cannot save its state.
    fn troubles(&self, device_id: &str) -> Vec<String> {
        let mut troubles = self.sensor_troubles();
        if self.save_trouble.is_some() {
            troubles.push(device_id.to_owned());
        }
        troubles
    }

    fn sensor_troubles(&self) -> Vec<String> {
        let mut troubles: BTreeSet<String> =
            self.notable_sensors().filter(|(_, s)| s.trouble).map(|(id, _)| id.clone()).collect();
        troubles.extend(self.upkeep.iter().filter(|(_, u)| u.tampered).map(|(id, _)| id.clone()));
        troubles.into_iter().collect()
    }

    /// Low batteries and weak radios, one line each.
    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (id, upkeep) in &self.upkeep {
            if upkeep.battery_low {
                warnings.push(format!("{id}: battery low"));
            }
            if upkeep.weak_radio {
                warnings.push(format!("{id}: weak radio"));
            }
        }
        warnings
    }

    /// A device's condition: a warning when its battery runs low or its radio weakens (once, and
    /// `restored` when it is well again), never blocking arming; an open tamper switch is a
    /// trouble, and while armed an alarm (bypassed sensors excepted).
    fn condition(
        &mut self,
        config: &PanelConfig,
        id: String,
        condition: &protocol::Condition,
        now: Timestamp,
        events: &mut Events<'_>,
    ) {
        let new = Upkeep {
            battery_low: condition.battery_low == Some(true)
                || condition.battery.is_some_and(|b| b <= config.low_battery_percent),
            weak_radio: condition.linkquality.is_some_and(|q| q <= config.weak_linkquality),
            tampered: condition.tamper == Some(true),
        };
        let old = self.upkeep.get(&id).copied().unwrap_or_default();
        if new == Upkeep::default() {
            self.upkeep.remove(&id);
        } else {
            self.upkeep.insert(id.clone(), new);
        }
        let what = condition.summary();
        let sensors = vec![id.clone()];
        if new.battery_low && !old.battery_low {
            events.push(PanelEventKind::Warning, None, None, sensors.clone(), format!("{id}: battery low ({what})"));
            events.because(Cause::BatteryLow);
        }
        if new.weak_radio && !old.weak_radio {
            events.push(PanelEventKind::Warning, None, None, sensors.clone(), format!("{id}: weak radio ({what})"));
            events.because(Cause::WeakRadio);
        }
        let battery_back = old.battery_low && !new.battery_low;
        if battery_back || (old.weak_radio && !new.weak_radio) {
            events.push(PanelEventKind::Restored, None, None, sensors.clone(), format!("{id}: {what}"));
            events.because(if battery_back { Cause::BatteryLow } else { Cause::WeakRadio });
        }
        if new.tampered && !old.tampered {
            events.trouble(&id, format!("{id}: tamper switch open"));
            events.because(Cause::Tamper);
            let armed = match self.arm {
                Arm::Armed { mode } | Arm::Pending { mode, .. } | Arm::Arming { from: Some(mode), .. } => Some(mode),
                _ => None,
            };
            if let Some(mode) = armed.filter(|_| !self.bypassed.contains(&id))
                && !matches!(self.arm, Arm::Triggered { .. })
            {
                self.trigger(config, Some(mode), &id, now, events, &format!("{id} tamper switch open (tamper)"));
                events.because(Cause::Tamper);
            }
        }
        if old.tampered && !new.tampered {
            events.push(PanelEventKind::Restored, None, None, sensors, format!("{id}: tamper switch closed"));
            events.because(Cause::Tamper);
        }
    }

    /// What keeps the panel from arming: open entry/perimeter sensors and sensors in trouble. A
    /// panel that cannot save still arms: protection now beats a state file.
    fn blockers(&self, config: &PanelConfig) -> Vec<String> {
        let mut b: BTreeSet<String> = self.open_sensors(config).into_iter().collect();
        b.extend(self.sensor_troubles());
        // Offline but still within its grace: not in trouble yet, not ready either.
        b.extend(self.notable_sensors().filter(|(_, s)| !s.online).map(|(id, _)| id.clone()));
        // Bypassed for this arming: they keep nothing from arming again (a switch, a schedule).
        b.retain(|id| !self.bypassed.contains(id));
        b.into_iter().collect()
    }

    /// Follows the deadlines that have passed; true when a failed save is due to be tried again.
    fn expire(&mut self, config: &PanelConfig, now: Timestamp, events: &mut Events<'_>) -> bool {
        if self.lockout_until.is_some_and(|t| t <= now) {
            self.lockout_until = None;
            let unreported = std::mem::take(&mut self.refusals).unreported;
            if unreported > 0 {
                let message = format!("lockout over; {unreported} more codes were refused since the last report");
                events.push(PanelEventKind::CodeRefused, None, None, vec![], message);
            }
        }
        let retry_save = match &mut self.save_trouble {
            Some(trouble) if trouble.retry_at <= now => {
                trouble.retry_at = now.plus(SAVE_RETRY);
                true
            }
            _ => false,
        };
        let window = Duration::from_secs(config.wrong_code_window_s);
        self.wrong_codes.retain(|t| now.since(*t) < window);
        // Several deadlines may have passed while the controller was down: follow them in order,
        // each from its own deadline, not from `now`.
        loop {
            match self.arm.clone() {
                Arm::Arming { mode, until, .. } if until <= now => {
                    self.arm = Arm::Armed { mode };
                    let by = self.changed_by.clone();
                    events.push(PanelEventKind::Armed, Some(mode), by.as_deref(), vec![], format!("armed {mode}"));
                }
                Arm::Pending { mode, until, sensor } if until <= now => {
                    self.trigger(config, Some(mode), &sensor, until, events, "entry delay ran out");
                }
                Arm::Triggered { mode, until, sensor } if until <= now => {
                    let message = format!("siren time over ({} s) after {sensor}", config.trigger_time_s);
                    events.push(PanelEventKind::AlarmEnded, mode, None, vec![sensor], message);
                    match mode {
                        Some(mode) if !config.disarm_after_trigger => self.arm = Arm::Armed { mode },
                        _ => self.disarm(),
                    }
                }
                _ => break,
            }
        }
        retry_save
    }

    fn saved_outcome(&mut self, outcome: Result<(), String>, now: Timestamp, events: &mut Events<'_>) {
        match (outcome, &mut self.save_trouble) {
            (Ok(()), None) => {}
            (Ok(()), Some(_)) => {
                self.save_trouble = None;
                let id = events.device_id.to_owned();
                events.push(PanelEventKind::Restored, None, None, vec![id], "the panel state is saved again".into());
            }
            (Err(error), Some(trouble)) => trouble.error = error,
            (Err(error), None) => {
                let message = format!(
                    "cannot save the panel state ({error}); it is kept in memory and saving is retried every {} s, \
                     but a restart now would resume an older state",
                    SAVE_RETRY.as_secs()
                );
                self.save_trouble = Some(SaveTrouble { error, retry_at: now.plus(SAVE_RETRY) });
                let id = events.device_id.to_owned();
                events.trouble(&id, message);
            }
        }
    }

    fn trigger(
        &mut self,
        config: &PanelConfig,
        mode: Option<ArmMode>,
        sensor: &str,
        at: Timestamp,
        events: &mut Events<'_>,
        why: &str,
    ) {
        self.arm = Arm::Triggered {
            mode,
            until: at.plus(Duration::from_secs(config.trigger_time_s)),
            sensor: sensor.to_owned(),
        };
        // After an intrusion, only a code disarms: never an arrival.
        self.presence_armed = false;
        self.last_trigger = Some((sensor.to_owned(), at));
        self.count_trip(config, mode, sensor, events);
        events.push(
            PanelEventKind::Triggered,
            mode,
            None,
            vec![sensor.to_owned()],
            format!("alarm triggered by {sensor}: {why}"),
        );
    }

    /// Counts a trip of `sensor` in this arming; at `swinger_limit` trips it is bypassed until
    /// disarm, so one faulty or swinging sensor cannot re-sound the siren for ever.
    fn count_trip(&mut self, config: &PanelConfig, mode: Option<ArmMode>, sensor: &str, events: &mut Events<'_>) {
        if config.swinger_limit == 0 || sensor == PANIC {
            return;
        }
        let trips = self.trips.entry(sensor.to_owned()).or_insert(0);
        *trips += 1;
        let trips = *trips;
        if trips >= config.swinger_limit && self.bypassed.insert(sensor.to_owned()) {
            let message = format!("{sensor} bypassed until disarm: {trips} trips in this arming (swinger_limit)");
            events.push(PanelEventKind::Bypassed, mode, None, vec![sensor.to_owned()], message);
        }
    }

    fn disarm(&mut self) {
        self.arm = Arm::Disarmed;
        self.bypassed.clear();
        self.trips.clear();
        self.presence_armed = false;
    }

    /// The armed mode in force, if any: armed, its entry delay, an alarm while armed, or the mode
    /// being switched from during a switch's exit delay.
    fn armed_mode(&self) -> Option<ArmMode> {
        match &self.arm {
            Arm::Armed { mode } | Arm::Pending { mode, .. } => Some(*mode),
            Arm::Triggered { mode, .. } | Arm::Arming { from: mode, .. } => *mode,
            Arm::Disarmed => None,
        }
    }

    /// Takes a checked code: the user it belongs to, or the refusal already recorded as events.
    fn check_code<'c>(
        &mut self,
        config: &'c PanelConfig,
        code: Code,
        now: Timestamp,
        events: &mut Events<'_>,
    ) -> Option<&'c User> {
        if let Some(until) = self.lockout_until {
            self.refuse_in_lockout(until, now, events);
            return None;
        }
        let user = match code {
            Code::User(i) => config.users.get(i),
            Code::Missing | Code::Wrong => None,
            Code::Unchecked => {
                // The lockout ended between the keypad's look and this step: not a wrong code.
                events.push(PanelEventKind::CodeRefused, None, None, vec![], "code not checked; try again".into());
                return None;
            }
        };
        match user {
            // The count of wrong codes is reset by the caller once the user's right is checked:
            // a right code refused (expired, outside its hours) must not wipe it.
            Some(user) => Some(user),
            None => {
                self.wrong_codes.push(now);
                let count = self.wrong_codes.len() as u32;
                let what = if code == Code::Missing { "no code given" } else { "wrong code" };
                events.push(
                    PanelEventKind::WrongCode,
                    None,
                    None,
                    vec![],
                    format!("{what} ({count} of {} allowed)", config.max_wrong_codes),
                );
                if count >= config.max_wrong_codes {
                    self.lockout_until = Some(now.plus(Duration::from_secs(config.lockout_s)));
                    self.wrong_codes.clear();
                    events.push(
                        PanelEventKind::Lockout,
                        None,
                        None,
                        vec![],
                        format!("{count} wrong codes: keypad locked out for {} s", config.lockout_s),
                    );
                }
                None
            }
        }
    }

    /// One `code_refused` event a second at most while locked out, counting the others: a person
    /// retrying sees an answer each time, a brute-force flood does not become a flood of events.
    fn refuse_in_lockout(&mut self, until: Timestamp, now: Timestamp, events: &mut Events<'_>) {
        let quiet = self.refusals.last_event.is_some_and(|t| now.since(t) < REFUSAL_EVENT_GAP);
        if quiet {
            self.refusals.unreported += 1;
            return;
        }
        let left = until.since(now).as_secs().max(1);
        let more = match std::mem::take(&mut self.refusals.unreported) {
            0 => String::new(),
            n => format!(" ({n} more refused since the last report)"),
        };
        self.refusals.last_event = Some(now);
        events.push(
            PanelEventKind::CodeRefused,
            None,
            None,
            vec![],
            format!("keypad locked out for {left} more s{more}"),
        );
    }

    fn command(&mut self, config: &PanelConfig, command: Command, now: Timestamp, events: &mut Events<'_>) {
        match command.action {
            PanelAction::Trigger => {
                if !matches!(self.arm, Arm::Triggered { .. }) {
                    let mode = self.armed_mode();
                    self.trigger(config, mode, PANIC, now, events, "TRIGGER command (panic)");
                }
            }
            PanelAction::Disarm => self.disarm_by(config, command, now, events),
            action => {
                if let Some(mode) = action.arm_mode() {
                    self.arm_by(config, command, mode, now, events);
                }
            }
        }
    }

    /// DISARM with a code: ends an alarm (and says so), and a duress code is told apart silently.
    fn disarm_by(&mut self, config: &PanelConfig, command: Command, now: Timestamp, events: &mut Events<'_>) {
        let Some(user) = self.check_code(config, command.code, now, events) else { return };
        let allowed = config.allow(user, Right::Disarm, now);
        if matches!(self.arm, Arm::Disarmed) && !user.duress {
            if allowed.is_ok() {
                self.wrong_codes.clear();
            }
            self.cancel_auto_arm(config, user, now, events);
            return;
        }
        if let Err(reason) = allowed {
            events.refused(user, "disarm", reason, self.armed_mode());
            return;
        }
        self.wrong_codes.clear();
        let mode = self.armed_mode();
        let alarm = match &self.arm {
            Arm::Triggered { sensor, .. } => Some(sensor.clone()),
            _ => None,
        };
        self.disarm();
        self.changed_by = Some(user.shown_name().to_owned());
        let by = user.shown_name();
        if let Some(sensor) = alarm {
            // Whoever was told of the alarm is told it is over, as when the siren time runs out;
            // before the disarm, as a monitoring centre reads it (restore, then opening: Home
            // Assistant's `sia` panel takes a restore for "back to the state before the alarm").
            let message = format!("alarm after {sensor} ended: disarmed by {by}");
            events.push(PanelEventKind::AlarmEnded, mode, Some(by), vec![sensor], message);
        }
        events.push(PanelEventKind::Disarmed, mode, Some(by), vec![], format!("disarmed by {by}"));
        if user.duress {
            // Silent: no siren, nothing visible on the status; a monitoring station listens for it.
            let message = format!("duress code used by {}", user.name);
            events.push(PanelEventKind::Duress, mode, Some(&user.name), vec![], message);
        }
    }

    /// An ARM_* command. From disarmed: a code when one is required (or given), not with a sensor
    /// open unless forced (then those are bypassed), then the exit delay or armed at once. While
    /// armed, a switch of mode ([`Panel::switch_to`]).
    fn arm_by(
        &mut self,
        config: &PanelConfig,
        command: Command,
        mode: ArmMode,
        now: Timestamp,
        events: &mut Events<'_>,
    ) {
        let in_force = match &self.arm {
            Arm::Disarmed => None,
            Arm::Armed { mode } | Arm::Arming { from: Some(mode), .. } => Some(*mode),
            Arm::Arming { from: None, .. } => None,
            Arm::Pending { .. } | Arm::Triggered { .. } => {
                let state = self.status(config, now, "").state;
                let message = format!("cannot arm {mode} while {state}: disarm first");
                events.push(PanelEventKind::FailedToArm, Some(mode), None, vec![], message);
                return;
            }
        };
        let target = match &self.arm {
            Arm::Armed { mode } | Arm::Arming { mode, .. } => Some(*mode),
            _ => None,
        };
        if target == Some(mode) {
            // Already armed, or arming, in this mode: nothing changes, and whoever asked is told.
            let state = self.status(config, now, "").state;
            let message = format!("already {state} ({mode}): nothing to change");
            events.push(PanelEventKind::FailedToArm, Some(mode), None, vec![], message);
            return;
        }
        // A laxer mode lowers the protection: like a disarm, it always takes a code.
        // Lower than what is in force, or than what is being armed: it lowers the protection, so
        // like a disarm it takes a code, of someone who may disarm.
        let laxer = in_force.into_iter().chain(target).any(|m| strictness(mode) < strictness(m));
        let user = if laxer || config.code_arm_required || command.code != Code::Missing {
            match self.check_code(config, command.code, now, events) {
                Some(user) => Some(user),
                None => return,
            }
        } else {
            None
        };
        if let Some(user) = user
            && !self.may_arm(config, user, mode, laxer, now, events)
        {
            return;
        }
        let by = user.map(User::shown_name);
        // A person's arming takes over from presence's: an arrival no longer disarms it.
        self.presence_armed = false;
        match in_force {
            Some(from) if strictness(mode) <= strictness(from) => self.switch_down(from, mode, by, events),
            _ => {
                if self.bypass_blockers(config, command.force, mode, user, now, events) {
                    self.start_exit_delay(config, mode, in_force, by, now, events);
                }
            }
        }
    }

    /// Whether `user`, whose code was right, may arm `mode` now (and disarm, when that lowers the
    /// protection); says why not in a `refused` event. A yes resets the wrong codes.
    fn may_arm(
        &mut self,
        config: &PanelConfig,
        user: &User,
        mode: ArmMode,
        laxer: bool,
        now: Timestamp,
        events: &mut Events<'_>,
    ) -> bool {
        let lowering = if laxer { config.allow(user, Right::Disarm, now) } else { Ok(()) };
        if let Err(reason) = config.allow(user, Right::arm(mode), now).and(lowering) {
            events.refused(user, &format!("arm {mode}"), reason, self.armed_mode());
            return false;
        }
        self.wrong_codes.clear();
        true
    }

    /// To a laxer mode (or back to the one in force during a switch's exit delay): at once.
    fn switch_down(&mut self, from: ArmMode, mode: ArmMode, by: Option<&str>, events: &mut Events<'_>) {
        self.arm = Arm::Armed { mode };
        self.changed_by = by.map(str::to_owned);
        let who = by.map(|u| format!(" by {u}")).unwrap_or_default();
        let message = if from == mode {
            format!("stays armed {mode}{who}")
        } else {
            format!("switched from {from} to {mode}{who}")
        };
        events.push(PanelEventKind::Armed, Some(mode), by, vec![], message);
    }

    /// Whether arming may go on: ready, or forced by someone who may bypass (the open sensors are
    /// then bypassed for this arming). Says why not in an event.
    fn bypass_blockers(
        &mut self,
        config: &PanelConfig,
        force: bool,
        mode: ArmMode,
        user: Option<&User>,
        now: Timestamp,
        events: &mut Events<'_>,
    ) -> bool {
        let by = user.map(User::shown_name);
        let blockers = self.blockers(config);
        if blockers.is_empty() {
            return true;
        }
        if !force {
            let message = format!("failed to arm {mode}: not ready ({}); use force to bypass", blockers.join(", "));
            events.push(PanelEventKind::FailedToArm, Some(mode), by, blockers, message);
            return false;
        }
        if user.is_none() && !matches!(self.arm, Arm::Disarmed) {
            // Bypassing a sensor of the mode in force lowers the protection: never without a code.
            let message = format!("failed to arm {mode}: bypassing {} while armed takes a code", blockers.join(", "));
            events.push(PanelEventKind::FailedToArm, Some(mode), None, blockers, message);
            return false;
        }
        if let Some(user) = user
            && let Err(reason) = config.allow(user, Right::Bypass, now)
        {
            events.refused(user, &format!("bypass {} to arm {mode}", blockers.join(", ")), reason, self.armed_mode());
            return false;
        }
        let message = format!("bypassed for this arming: {}", blockers.join(", "));
        events.push(PanelEventKind::Bypassed, Some(mode), by, blockers.clone(), message);
        self.bypassed.extend(blockers);
        true
    }

    /// Plans the next scheduled arming, warns before it, and arms when it is due (unless cancelled,
    /// or missed by more than [`schedule::MISSED_AFTER`] while the panel was down).
    fn follow_schedule(&mut self, config: &PanelConfig, now: Timestamp, events: &mut Events<'_>) {
        if !self.schedule_planned {
            self.schedule_planned = true;
            self.auto_arm = schedule::next(&config.schedules, &config.time_zone, now);
        }
        let Some(plan) = &mut self.auto_arm else { return };
        let warn = !plan.warned && plan.cancelled_by.is_none() && plan.warn_at.is_some_and(|w| w <= now);
        if warn && now < plan.at {
            plan.warned = true;
            let local = config.time_zone.local(plan.at);
            let minutes = plan.at.since(now).as_secs().div_ceil(60);
            let message = format!(
                "arming {} at {:02}:{:02} (in {minutes} min); disarm with a code to cancel",
                plan.mode,
                local.hour(),
                local.minute()
            );
            events.push(PanelEventKind::AutoArmWarning, Some(plan.mode), None, vec![], message);
        }
        if plan.at > now {
            return;
        }
        let plan = plan.clone();
        self.auto_arm = schedule::next(&config.schedules, &config.time_zone, plan.at);
        if plan.cancelled_by.is_some() {
            return;
        }
        if now.since(plan.at) > schedule::MISSED_AFTER {
            let message = format!("the scheduled arming {} was missed: the panel was not running then", plan.mode);
            events.push(PanelEventKind::FailedToArm, Some(plan.mode), None, vec![], message);
            return;
        }
        self.arm_automatically(config, plan.mode, SCHEDULE, now, events);
    }

    /// An arming by a schedule or by presence (`by`): like an ARM_* without a code; never forced. Nothing
    /// when someone is arming already or the mode in force is as strict; after the alarm's
    /// entry delay or during the alarm, not at all.
    fn arm_automatically(
        &mut self,
        config: &PanelConfig,
        mode: ArmMode,
        by: &str,
        now: Timestamp,
        events: &mut Events<'_>,
    ) {
        let in_force = match &self.arm {
            Arm::Disarmed => None,
            Arm::Armed { mode } => Some(*mode),
            Arm::Arming { .. } | Arm::Pending { .. } | Arm::Triggered { .. } => return,
        };
        if in_force.is_some_and(|m| strictness(m) >= strictness(mode)) {
            return;
        }
        if self.bypass_blockers(config, false, mode, None, now, events) {
            self.start_exit_delay(config, mode, in_force, Some(by), now, events);
        }
    }

    /// A tracked person came or went. When the last one known leaves (every tracked person heard
    /// of, all away), `[panel.presence] arm` arms as a schedule does: never forced, only raising
    /// the mode, by [`PRESENCE`].
    fn presence(
        &mut self,
        config: &PanelConfig,
        person: String,
        home: Option<bool>,
        now: Timestamp,
        events: &mut Events<'_>,
    ) {
        let everybody_away =
            |p: &Panel| config.presence.people.keys().all(|name| p.people_home.get(name) == Some(&false));
        let was_away = everybody_away(self);
        // Only a departure seen (home, then away) counts: after a restart the retained "not_home"
        // of everybody arrives again, and a panel disarmed with everybody away must stay so.
        let left = self.people_home.get(&person) == Some(&true) && home == Some(false);
        let arrived = self.people_home.get(&person) == Some(&false) && home == Some(true);
        match home {
            Some(home) => self.people_home.insert(person.clone(), home),
            None => self.people_home.remove(&person),
        };
        if arrived && config.presence.disarm_on_arrival {
            self.disarm_on_arrival(&person, events);
        }
        let Some(mode) = config.presence.arm else { return };
        if left && !was_away && everybody_away(self) {
            let from_disarmed = matches!(self.arm, Arm::Disarmed);
            self.arm_automatically(config, mode, PRESENCE, now, events);
            self.presence_armed = from_disarmed && !matches!(self.arm, Arm::Disarmed);
        }
    }

    /// `[panel.presence] disarm_on_arrival`: a tracked person seen arriving (away, then home)
    /// disarms a panel that presence armed, and only that: armed by a person's code, it takes a
    /// code; in an alarm, it takes a code (a phone in a thief's pocket must not silence the siren).
    fn disarm_on_arrival(&mut self, person: &str, events: &mut Events<'_>) {
        let mode = match &self.arm {
            Arm::Armed { mode } | Arm::Pending { mode, .. } | Arm::Arming { mode, .. } if self.presence_armed => *mode,
            _ => return,
        };
        self.disarm();
        self.changed_by = Some(PRESENCE.to_owned());
        let message = format!("disarmed by presence: {person} arrived");
        events.push(PanelEventKind::Disarmed, Some(mode), Some(PRESENCE), vec![], message);
    }

    /// A right code while disarmed, in a scheduled arming's warning: cancels that arming.
    fn cancel_auto_arm(&mut self, config: &PanelConfig, user: &User, now: Timestamp, events: &mut Events<'_>) {
        let Some(plan) = self.auto_arm.as_mut().filter(|p| p.warned && p.cancelled_by.is_none()) else { return };
        let mode = plan.mode;
        if let Err(reason) = config.allow(user, Right::Disarm, now) {
            events.refused(user, &format!("cancel the scheduled arming {mode}"), reason, None);
            return;
        }
        let by = user.shown_name().to_owned();
        plan.cancelled_by = Some(by.clone());
        let message = format!("the scheduled arming {mode} was cancelled by {by}");
        events.push(PanelEventKind::AutoArmCancelled, Some(mode), Some(&by), vec![], message);
    }

    /// Arms in `mode` after its exit delay (at once without one); `from` stays in force meanwhile.
    fn start_exit_delay(
        &mut self,
        config: &PanelConfig,
        mode: ArmMode,
        from: Option<ArmMode>,
        by: Option<&str>,
        now: Timestamp,
        events: &mut Events<'_>,
    ) {
        if from.is_none() {
            self.trips.clear();
        }
        self.changed_by = by.map(str::to_owned);
        let who = by.map(|u| format!(" by {u}")).unwrap_or_default();
        let switching = from.map(|f| format!(" (switching from {f})")).unwrap_or_default();
        let delay = config.exit_delay_s.get(mode);
        if delay == 0 {
            self.arm = Arm::Armed { mode };
            events.push(PanelEventKind::Armed, Some(mode), by, vec![], format!("armed {mode}{who}{switching}"));
        } else {
            self.arm = Arm::Arming { mode, until: now.plus(Duration::from_secs(delay)), from };
            let message = format!("arming {mode}{who}{switching}: exit delay {delay} s");
            events.push(PanelEventKind::Arming, Some(mode), by, vec![], message);
        }
    }

    fn sensor(
        &mut self,
        config: &PanelConfig,
        kind: SensorKind,
        id: String,
        state: SensorState,
        now: Timestamp,
        events: &mut Events<'_>,
    ) {
        let info = self.sensors.entry(id.clone()).or_insert_with(|| SensorInfo::new(kind, now));
        let was_active = info.active;
        info.kind = kind;
        info.active = state.is_active();
        info.last_seen = now;
        info.online = true;
        info.offline_since = None;
        if info.trouble {
            info.trouble = false;
            events.push(PanelEventKind::Restored, None, None, vec![id.clone()], format!("{id} reports again"));
        }
        // Only the moment something opens or moves counts; a heartbeat of OPEN is not a new trip.
        if !state.is_active() || was_active || self.bypassed.contains(&id) {
            return;
        }
        if matches!(self.arm, Arm::Disarmed) && config.sensors.get(&id).is_some_and(|s| s.chime) {
            events.chimed.push(id.clone());
        }
        let zone = config.zone(kind, &id);
        self.trip(config, zone, &id, now, events, &format!("{kind} {id} {}", state.as_str().to_lowercase()));
    }

    /// A sensor sent what cannot be read: a trouble (it keeps the panel from arming unforced)
    /// until it sends a reading again. It is no sign of life: `last_seen` stays, so a sensor heard
    /// of only through unreadable readings is supervised from the first of them and goes silent.
    fn unreadable(&mut self, kind: SensorKind, id: String, error: &str, now: Timestamp, events: &mut Events<'_>) {
        let info = self.sensors.entry(id.clone()).or_insert_with(|| SensorInfo::new(kind, now));
        if info.trouble {
            return;
        }
        info.trouble = true;
        events.trouble(&id, format!("unreadable readings from {id}: {error}"));
    }

    /// A sensor's retained reading was cleared. One only learned from the broker is forgotten; one
    /// listed in `[panel.sensors]` is a trouble (and, armed, a tamper where its zone says so):
    /// clearing a sensor while armed is what a saboteur would do.
    fn cleared(&mut self, config: &PanelConfig, kind: SensorKind, id: &str, now: Timestamp, events: &mut Events<'_>) {
        if config.sensors.contains_key(id) {
            let info = self.sensors.entry(id.to_owned()).or_insert_with(|| SensorInfo::new(kind, now));
            if info.trouble {
                return;
            }
            info.trouble = true;
            info.active = false;
            let message = format!("{id}: its reading was cleared, but it is listed in [panel.sensors]");
            events.trouble(id, message);
            self.tamper(config, kind, id, now, events, "was cleared");
        } else if self.sensors.remove(id).is_some() {
            self.bypassed.remove(id);
            self.trips.remove(id);
            let message = format!("{kind} {id} removed: its reading was cleared");
            events.push(PanelEventKind::Removed, None, None, vec![id.to_owned()], message);
        }
    }

    fn trip(
        &mut self,
        config: &PanelConfig,
        zone: Zone,
        id: &str,
        now: Timestamp,
        events: &mut Events<'_>,
        what: &str,
    ) {
        match self.response(config, zone) {
            Response::Nothing => {}
            Response::Alarm { mode, why } => self.trigger(config, mode, id, now, events, &format!("{what} ({why})")),
            Response::EntryDelay { mode, delay_s } => {
                self.arm = Arm::Pending { mode, until: now.plus(Duration::from_secs(delay_s)), sensor: id.to_owned() };
                events.push(
                    PanelEventKind::EntryStarted,
                    Some(mode),
                    None,
                    vec![id.to_owned()],
                    format!("{what}: entry delay {delay_s} s"),
                );
            }
        }
    }

    /// What something opening or moving in `zone` does now: the one rule [`Panel::trip`]
    /// follows and [`Panel::sounds_at_once`] asks.
    fn response(&self, config: &PanelConfig, zone: Zone) -> Response {
        if zone == Zone::TwentyFourHour {
            if matches!(self.arm, Arm::Triggered { .. }) {
                return Response::Nothing;
            }
            return Response::Alarm { mode: self.armed_mode(), why: "24h zone" };
        }
        match &self.arm {
            // A switch's exit delay (home → away): people are leaving through the entry doors and
            // the rooms, but the perimeter of the mode in force stays armed.
            Arm::Arming { from: Some(mode), .. } if zone == Zone::Perimeter => {
                Response::Alarm { mode: Some(*mode), why: "perimeter" }
            }
            Arm::Disarmed | Arm::Arming { .. } | Arm::Triggered { .. } => Response::Nothing,
            Arm::Armed { mode } => match zone {
                Zone::Entry => match config.entry_delay_s.get(*mode) {
                    0 => Response::Alarm { mode: Some(*mode), why: "entry, no delay" },
                    delay_s => Response::EntryDelay { mode: *mode, delay_s },
                },
                Zone::Perimeter => Response::Alarm { mode: Some(*mode), why: "perimeter" },
                Zone::Interior if *mode == ArmMode::Away => Response::Alarm { mode: Some(*mode), why: "interior" },
                Zone::Interior | Zone::TwentyFourHour => Response::Nothing,
            },
            // During the entry delay, someone walking in is expected; a window is not.
            Arm::Pending { mode, .. } if zone == Zone::Perimeter => {
                Response::Alarm { mode: Some(*mode), why: "perimeter" }
            }
            Arm::Pending { .. } => Response::Nothing,
        }
    }

    /// Whether an opening (or movement) of sensor `id` read at `now` sounds the siren before
    /// anything else [`Panel::step`] does: its first action the siren ON. Asked before the step,
    /// so that the siren's command can be on the wire before the panel does the rest (see
    /// `edge.rs`, the reflex). Conservative: false whenever something time-driven is due, which
    /// the step does first.
    pub fn sounds_at_once(&self, config: &PanelConfig, kind: SensorKind, id: &str, now: Timestamp) -> bool {
        let was_active = self.sensors.get(id).is_some_and(|info| info.active);
        !self.due(now)
            && !was_active
            && !self.bypassed.contains(id)
            && matches!(self.response(config, config.zone(kind, id)), Response::Alarm { .. })
    }

    fn availability(&mut self, config: &PanelConfig, id: &str, online: bool, now: Timestamp, events: &mut Events<'_>) {
        let Some(info) = self.sensors.get_mut(id) else { return };
        info.online = online;
        if online {
            info.last_seen = now;
            info.offline_since = None;
            if info.trouble {
                info.trouble = false;
                events.push(PanelEventKind::Restored, None, None, vec![id.to_owned()], format!("{id} is back online"));
            }
            return;
        }
        // A broker restart sends every device's Last Will, and the devices reconnect seconds
        // later: only an absence that outlasts the grace is a trouble (see `supervise`). Without
        // a grace it is one at once; this sensor is checked alone, not every sensor (10 000 Last
        // Wills must not cost 10 000 passes over 10 000 sensors).
        if info.offline_since.is_none() {
            info.offline_since = Some(now);
        }
        if config.offline_grace_s == 0 && !info.trouble {
            info.trouble = true;
            let kind = info.kind;
            events.trouble(id, format!("{id} went offline"));
            self.tamper(config, kind, id, now, events, "went offline");
        }
    }

    fn supervise(&mut self, config: &PanelConfig, now: Timestamp, events: &mut Events<'_>) {
        let grace = Duration::from_secs(config.offline_grace_s);
        let offline: Vec<(String, SensorKind)> = self
            .sensors
            .iter()
            .filter(|(_, s)| !s.trouble && s.offline_since.is_some_and(|t| now.since(t) >= grace))
            .map(|(id, s)| (id.clone(), s.kind))
            .collect();
        for (id, kind) in offline {
            if let Some(info) = self.sensors.get_mut(&id) {
                info.trouble = true;
            }
            self.note(&id);
            let message = if grace.is_zero() {
                format!("{id} went offline")
            } else {
                format!("{id} offline for more than {} s", grace.as_secs())
            };
            events.trouble(&id, message);
            self.tamper(config, kind, &id, now, events, "went offline");
        }

        let silent: Vec<(String, SensorKind, u64)> = self
            .sensors
            .iter()
            .filter(|(_, s)| !s.trouble)
            .filter_map(|(id, s)| {
                let window = config.supervision_s(config.zone(s.kind, id), id);
                (window > 0 && now.since(s.last_seen) > Duration::from_secs(window))
                    .then(|| (id.clone(), s.kind, window))
            })
            .collect();
        for (id, kind, window) in silent {
            if let Some(info) = self.sensors.get_mut(&id) {
                info.trouble = true;
            }
            self.note(&id);
            events.trouble(&id, format!("{id} silent for more than {window} s"));
            self.tamper(config, kind, &id, now, events, "went silent");
        }
    }

    /// Losing a sensor while armed triggers where its zone says so.
    fn tamper(
        &mut self,
        config: &PanelConfig,
        kind: SensorKind,
        id: &str,
        now: Timestamp,
        events: &mut Events<'_>,
        what: &str,
    ) {
        let zone = config.zone(kind, id);
        if !config.zones.get(zone).tamper_triggers || self.bypassed.contains(id) {
            return;
        }
        if let Arm::Armed { mode } | Arm::Pending { mode, .. } | Arm::Arming { from: Some(mode), .. } = self.arm {
            self.trigger(config, Some(mode), id, now, events, &format!("{id} {what} (tamper)"));
        }
    }
}

/// How much a mode protects: home < night < away. A switch to a stricter mode runs its exit delay
/// (the mode in force stays meanwhile); one to a laxer mode takes a code, as a disarm does.
fn strictness(mode: ArmMode) -> u8 {
    match mode {
        ArmMode::Home => 0,
        ArmMode::Night => 1,
        ArmMode::Away => 2,
    }
}

#[cfg(test)]
mod reflex_tests;
#[cfg(test)]
mod tests;

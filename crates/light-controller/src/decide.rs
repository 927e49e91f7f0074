//! The light controller's decisions: a pure function of (state, input, now) → (state, actions).
//!
//! For each bulb the wanted light is, in order of precedence:
//! 1. the alarm is triggered → 100 %, flashing (`alarm`);
//! 2. a manual command was seen less than `manual_override_min` ago → leave the bulb alone;
//! 3. the panel armed away and the room simulating presence → its plan (`simulation`);
//! 4. motion in its room now, or less than `motion_timeout_s` ago → the motion level (`motion`);
//! 5. the current circadian phase's level (`circadian`), off at 0 %.
//!
//! A command is sent only when the wanted light differs from what was last sent to that bulb, so
//! repeated readings (heartbeats, retained messages after a reconnect) cause no traffic. Each
//! decision is a [`BulbCommand`] value, applied to a bulb by the MQTT edge.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use protocol::{CircadianPhase, Effect, LightCommand, LightSource, Power, Timestamp};

use crate::config::{Config, Level};
use crate::simulation::{self, Plan};

/// The bulbs of the rooms that simulate presence.
fn simulated_bulbs(config: &Config) -> Vec<String> {
    config.rooms.iter().filter(|r| r.simulate_presence).flat_map(|r| r.bulbs.iter().cloned()).collect()
}

/// What the controller hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Phase(CircadianPhase),
    Motion {
        sensor: String,
        active: bool,
    },
    /// A motion sensor went offline (Last Will): its last `MOTION` no longer holds.
    SensorOffline {
        sensor: String,
    },
    /// Someone other than this controller commanded a bulb (source `manual`).
    ManualCommand {
        bulb: String,
    },
    /// A bulb announced itself `online`: it may have lost its setting.
    BulbOnline {
        bulb: String,
    },
    /// A bulb reported its state (read with `adapt_only_lit`): on or off, and who set it.
    BulbReport {
        bulb: String,
        on: bool,
        source: LightSource,
    },
    /// The alarm panel is (or is no longer) triggered.
    Alarm {
        triggered: bool,
    },
    /// The alarm panel is (or is no longer) armed away: presence simulation starts or stops.
    Away {
        away: bool,
    },
    /// Last week's light, as this week's plan per simulated bulb (from the recorder's history;
    /// an empty plan: no history, the evening pattern).
    Plans(BTreeMap<String, Plan>),
    /// Time passed; deadlines may have expired.
    Tick,
}

/// A command for one bulb — the value the edge turns into a `LightCommand` on `<root>/lights/<id>/set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulbCommand {
    SetBrightness { bulb: String, brightness: u8, color_temp_k: Option<u16>, source: LightSource },
    TurnOff { bulb: String, source: LightSource },
    Flash { bulb: String },
}

impl BulbCommand {
    pub fn bulb(&self) -> &str {
        match self {
            BulbCommand::SetBrightness { bulb, .. }
            | BulbCommand::TurnOff { bulb, .. }
            | BulbCommand::Flash { bulb } => bulb,
        }
    }

    /// The wire form of this command.
    pub fn to_light_command(&self) -> LightCommand {
        match self {
            BulbCommand::SetBrightness { brightness, color_temp_k, source, .. } => {
                LightCommand::set(*brightness, *color_temp_k, *source)
            }
            BulbCommand::TurnOff { source, .. } => LightCommand::off(*source),
            BulbCommand::Flash { .. } => LightCommand {
                state: Some(Power::On),
                brightness: Some(100),
                effect: Some(Effect::Flash),
                source: Some(LightSource::Alarm),
                ..LightCommand::default()
            },
        }
    }

    /// How a person reads it: `kitchen light 50 %`.
    pub fn describe(&self) -> String {
        match self {
            BulbCommand::SetBrightness { bulb, brightness, color_temp_k: Some(k), .. } => {
                format!("{bulb} light {brightness} % {k} K")
            }
            BulbCommand::SetBrightness { bulb, brightness, color_temp_k: None, .. } => {
                format!("{bulb} light {brightness} %")
            }
            BulbCommand::TurnOff { bulb, .. } => format!("{bulb} light off"),
            BulbCommand::Flash { bulb } => format!("{bulb} light 100 % flashing"),
        }
    }
}

/// What the controller does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `command`, because of `why`.
    Command { command: BulbCommand, why: String },
    /// Something worth a log line that sends nothing.
    Note(String),
    /// Read the week before `now` of these bulbs' light from the recorder's history, and come
    /// back with [`Input::Plans`].
    LoadHistory { bulbs: Vec<String> },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RoomState {
    active_sensors: BTreeSet<String>,
    motion_until: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct BulbState {
    manual_until: Option<Timestamp>,
    sent: Option<BulbCommand>,
    /// Whether the bulb is on by a person's or a phase's doing, from its reports; motion and the
    /// alarm do not change it, so that when they end the bulb goes back to what it was.
    lit: bool,
}

/// Everything the controller remembers. The default knows no rooms (see [`Controller::new`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controller {
    phase: Option<CircadianPhase>,
    alarm: bool,
    /// Armed away: the simulated rooms follow their plans.
    away: bool,
    /// Each simulated bulb's changes still to come while away (see [`crate::simulation`]).
    plans: BTreeMap<String, Plan>,
    /// Each simulated bulb's light now, from the changes that came due.
    simulated: BTreeMap<String, u8>,
    /// The simulated bulbs that have last week's history to follow (the others: the evening).
    replaying: BTreeSet<String>,
    /// When the plans run out and are loaded again (a week after they were made).
    plans_until: Option<Timestamp>,
    rooms: Vec<RoomState>,
    bulbs: BTreeMap<String, BulbState>,
}

impl Controller {
    pub fn new(config: &Config) -> Controller {
        Controller {
            phase: None,
            alarm: false,
            away: false,
            plans: BTreeMap::new(),
            simulated: BTreeMap::new(),
            replaying: BTreeSet::new(),
            plans_until: None,
            rooms: vec![RoomState::default(); config.rooms.len()],
            bulbs: config
                .rooms
                .iter()
                .flat_map(|r| r.bulbs.iter())
                .map(|b| (b.clone(), BulbState::default()))
                .collect(),
        }
    }

    pub fn phase(&self) -> Option<CircadianPhase> {
        self.phase
    }

    /// The earliest time a [`Input::Tick`] can change anything.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let motion = self.rooms.iter().filter_map(|r| r.motion_until);
        let manual = self.bulbs.values().filter_map(|b| b.manual_until);
        let simulation = self.plans.values().filter_map(|p| p.first().map(|(t, _)| *t)).chain(self.plans_until);
        motion.chain(manual).chain(simulation.filter(|_| self.away)).min()
    }

    /// Takes one input at `now` and returns the new state and what to do.
    pub fn step(mut self, config: &Config, input: Input, now: Timestamp) -> (Controller, Vec<Action>) {
        let mut notes = Vec::new();
        let why = match input {
            Input::Phase(phase) => {
                if self.phase == Some(phase) {
                    return (self, notes);
                }
                self.phase = Some(phase);
                self.plan_evening(config, phase, now);
                format!("circadian phase {phase}")
            }
            Input::Away { away } => {
                if self.away == away {
                    return (self, notes);
                }
                self.away = away;
                self.plans.clear();
                self.simulated.clear();
                self.replaying.clear();
                self.plans_until = None;
                let bulbs = simulated_bulbs(config);
                if away && !bulbs.is_empty() {
                    notes.push(Action::LoadHistory { bulbs });
                }
                if away { "armed away: presence simulation".to_owned() } else { "no longer armed away".to_owned() }
            }
            Input::Plans(plans) => {
                if !self.away {
                    return (self, notes);
                }
                self.replaying = plans.iter().filter(|(_, p)| !p.is_empty()).map(|(b, _)| b.clone()).collect();
                for (bulb, plan) in plans {
                    let all = self.plans.entry(bulb).or_default();
                    all.extend(plan);
                    all.sort_by_key(|(t, _)| *t);
                }
                self.plans_until = Some(now.plus(simulation::WEEK));
                // Armed away in the evening: the bulbs without history begin their evening now.
                if self.phase == Some(CircadianPhase::Sunset) {
                    self.plan_evening(config, CircadianPhase::Sunset, now);
                }
                self.advance_plans(now);
                "presence simulation planned".to_owned()
            }
            Input::Motion { sensor, active } => {
                let timeout = Duration::from_secs(config.motion_timeout_s);
                for (room, state) in config.rooms.iter().zip(&mut self.rooms) {
                    if !room.motion_sensors.contains(&sensor) {
                        continue;
                    }
                    if active {
                        state.active_sensors.insert(sensor.clone());
                        state.motion_until = None;
                    } else if state.active_sensors.remove(&sensor) && state.active_sensors.is_empty() {
                        // Only the end of motion starts the timeout, not a heartbeat of NO_MOTION.
                        state.motion_until = Some(now.plus(timeout));
                    }
                }
                if active { format!("motion at {sensor}") } else { format!("no motion at {sensor}") }
            }
            Input::SensorOffline { sensor } => {
                for state in &mut self.rooms {
                    if state.active_sensors.remove(&sensor) && state.active_sensors.is_empty() {
                        state.motion_until = Some(now);
                    }
                }
                format!("motion sensor {sensor} went offline")
            }
            Input::ManualCommand { bulb } => {
                if let Some(state) = self.bulbs.get_mut(&bulb)
                    && config.manual_override_min > 0
                {
                    state.manual_until = Some(now.plus(Duration::from_secs(config.manual_override_min * 60)));
                    // After the pause the controller must send again whatever it wants.
                    state.sent = None;
                    notes.push(Action::Note(format!(
                        "manual command on {bulb}: automation paused for {} min",
                        config.manual_override_min
                    )));
                }
                return (self, notes);
            }
            Input::BulbReport { bulb, on, source } => {
                let Some(state) = self.bulbs.get_mut(&bulb) else { return (self, notes) };
                if matches!(source, LightSource::Motion | LightSource::Alarm) || state.lit == on {
                    return (self, notes);
                }
                state.lit = on;
                // Switched on: it takes the phase's level now (unless a manual command paused it).
                format!("{bulb} switched {}", if on { "on" } else { "off" })
            }
            Input::BulbOnline { bulb } => {
                match self.bulbs.get_mut(&bulb) {
                    Some(state) => state.sent = None,
                    None => return (self, notes),
                }
                format!("{bulb} came online")
            }
            Input::Alarm { triggered } => {
                if self.alarm == triggered || !config.follow_alarm {
                    self.alarm = triggered;
                    return (self, notes);
                }
                self.alarm = triggered;
                if triggered { "alarm triggered".to_owned() } else { "alarm ended".to_owned() }
            }
            Input::Tick => {
                let mut whys = Vec::new();
                if self.away && self.plans_until.is_some_and(|t| t <= now) {
                    self.plans_until = None;
                    notes.push(Action::LoadHistory { bulbs: simulated_bulbs(config) });
                }
                whys.extend(self.advance_plans(now).into_iter().map(|(bulb, level)| {
                    format!(
                        "presence simulation: {bulb} {}",
                        if level == 0 { "off".to_owned() } else { format!("{level} %") }
                    )
                }));
                for (room, state) in config.rooms.iter().zip(&mut self.rooms) {
                    if state.motion_until.is_some_and(|t| t <= now) {
                        state.motion_until = None;
                        whys.push(format!("no motion in {} for {} s", room.name, config.motion_timeout_s));
                    }
                }
                for (bulb, state) in &mut self.bulbs {
                    if state.manual_until.is_some_and(|t| t <= now) {
                        state.manual_until = None;
                        whys.push(format!("manual override on {bulb} ended"));
                    }
                }
                whys.join(", ")
            }
        };
        let actions = self.reconcile(config, now, &why);
        notes.extend(actions);
        (self, notes)
    }

    /// Without history, a simulated bulb follows the evening: on a while after sunset, off a
    /// while after the night phase begins, each by its own day's jitter.
    fn plan_evening(&mut self, config: &Config, phase: CircadianPhase, now: Timestamp) {
        if !self.away {
            return;
        }
        let (after, level) = match phase {
            CircadianPhase::Sunset => (simulation::EVENING_ON_AFTER, config.levels.sunset.brightness.max(1)),
            CircadianPhase::Night => (simulation::EVENING_OFF_AFTER, 0),
            CircadianPhase::Sunrise | CircadianPhase::Morning => return,
        };
        for bulb in simulated_bulbs(config) {
            if self.replaying.contains(&bulb) {
                continue;
            }
            let at = now.plus(after);
            let at = Timestamp(at.0.saturating_add_signed(simulation::shift(&bulb, at, config.simulation.jitter_min)));
            let plan = self.plans.entry(bulb).or_default();
            plan.push((at, level));
            plan.sort_by_key(|(t, _)| *t);
        }
    }

    /// Takes the plans' changes that came due by `now`: the last of each bulb's is its light now.
    /// The bulbs whose light changed, and to what.
    fn advance_plans(&mut self, now: Timestamp) -> Vec<(String, u8)> {
        let mut changed = Vec::new();
        for (bulb, plan) in &mut self.plans {
            let due = plan.iter().take_while(|(t, _)| *t <= now).count();
            if due == 0 {
                continue;
            }
            let level = plan[due - 1].1;
            plan.drain(..due);
            if self.simulated.insert(bulb.clone(), level) != Some(level) {
                changed.push((bulb.clone(), level));
            }
        }
        changed
    }

    /// Sends each bulb what it should show, where that differs from what it was last sent.
    fn reconcile(&mut self, config: &Config, now: Timestamp, why: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        for (room, state) in config.rooms.iter().zip(&self.rooms) {
            let motion = !state.active_sensors.is_empty() || state.motion_until.is_some_and(|t| t > now);
            for bulb in &room.bulbs {
                let Some(bulb_state) = self.bulbs.get_mut(bulb) else { continue };
                let simulated =
                    (self.away && room.simulate_presence).then(|| self.simulated.get(bulb).copied().unwrap_or(0));
                let wanted = wanted(config, bulb, self.alarm, self.phase, motion, simulated, bulb_state, now);
                if let Some(command) = wanted
                    && bulb_state.sent.as_ref() != Some(&command)
                {
                    bulb_state.sent = Some(command.clone());
                    actions.push(Action::Command { command, why: why.to_owned() });
                }
            }
        }
        actions
    }
}

#[expect(clippy::too_many_arguments, reason = "each precedence rule's input, in the order of the module's list")]
fn wanted(
    config: &Config,
    bulb: &str,
    alarm: bool,
    phase: Option<CircadianPhase>,
    motion: bool,
    simulated: Option<u8>,
    state: &BulbState,
    now: Timestamp,
) -> Option<BulbCommand> {
    if alarm && config.follow_alarm {
        return Some(BulbCommand::Flash { bulb: bulb.to_owned() });
    }
    if state.manual_until.is_some_and(|t| t > now) {
        return None;
    }
    if let Some(brightness) = simulated {
        let bulb = bulb.to_owned();
        let source = LightSource::Simulation;
        let color_temp_k = phase.and_then(|p| config.levels.of(p).color_temp_k);
        return Some(if brightness == 0 {
            BulbCommand::TurnOff { bulb, source }
        } else {
            BulbCommand::SetBrightness { bulb, brightness, color_temp_k, source }
        });
    }
    if config.adapt_only_lit && !motion && !state.lit {
        // Off, and nobody switched it on: leave it, unless it is still lit by a motion that ended.
        // (or by the alarm's flashing, which ended too)
        let motion_lit = matches!(
            state.sent,
            Some(BulbCommand::SetBrightness { source: LightSource::Motion, .. } | BulbCommand::Flash { .. })
        );
        return motion_lit.then(|| BulbCommand::TurnOff { bulb: bulb.to_owned(), source: LightSource::Motion });
    }
    let phase_level = phase.map(|p| config.levels.of(p));
    let (level, source) = if motion {
        let motion = config.levels.motion;
        let color_temp_k = motion.color_temp_k.or(phase_level.and_then(|l| l.color_temp_k));
        (Level { brightness: motion.brightness, color_temp_k }, LightSource::Motion)
    } else {
        (phase_level?, LightSource::Circadian)
    };
    let bulb = bulb.to_owned();
    Some(if level.brightness == 0 {
        BulbCommand::TurnOff { bulb, source }
    } else {
        BulbCommand::SetBrightness { bulb, brightness: level.brightness, color_temp_k: level.color_temp_k, source }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Room;

    const T0: Timestamp = Timestamp(1_000_000);

    fn at(secs: u64) -> Timestamp {
        T0.plus(Duration::from_secs(secs))
    }

    fn config() -> Config {
        Config {
            rooms: vec![
                Room {
                    name: "kitchen".into(),
                    bulbs: vec!["kitchen".into()],
                    motion_sensors: vec!["k-pir".into()],
                    simulate_presence: true,
                },
                Room {
                    name: "hall".into(),
                    bulbs: vec!["hall".into(), "porch".into()],
                    motion_sensors: vec!["h-pir".into()],
                    simulate_presence: false,
                },
            ],
            ..Config::default()
        }
    }

    /// Runs `inputs` in order from a fresh controller and returns the commands of the last one.
    fn run(config: &Config, inputs: &[(u64, Input)]) -> (Controller, Vec<Action>) {
        let mut c = Controller::new(config);
        let mut last = vec![];
        for (secs, input) in inputs {
            (c, last) = c.step(config, input.clone(), at(*secs));
        }
        (c, last)
    }

    fn brightness_of(actions: &[Action], bulb: &str) -> Option<(u8, LightSource)> {
        actions.iter().find_map(|a| match a {
            Action::Command { command: BulbCommand::SetBrightness { bulb: b, brightness, source, .. }, .. }
                if b == bulb =>
            {
                Some((*brightness, *source))
            }
            _ => None,
        })
    }

    fn commands(actions: &[Action]) -> usize {
        actions.iter().filter(|a| matches!(a, Action::Command { .. })).count()
    }

    #[test]
    fn each_phase_sets_its_level_on_every_bulb() {
        let c = config();
        for (phase, expected) in [
            (CircadianPhase::Sunrise, 50),
            (CircadianPhase::Morning, 100),
            (CircadianPhase::Sunset, 30),
            (CircadianPhase::Night, 5),
        ] {
            let (_, actions) = run(&c, &[(0, Input::Phase(phase))]);
            assert_eq!(commands(&actions), 3, "{phase}");
            for bulb in ["kitchen", "hall", "porch"] {
                assert_eq!(brightness_of(&actions, bulb), Some((expected, LightSource::Circadian)), "{phase} {bulb}");
            }
            let Action::Command { why, .. } = &actions[0] else { panic!() };
            assert_eq!(why, &format!("circadian phase {phase}"));
        }
    }

    #[test]
    fn a_repeated_phase_sends_nothing() {
        let (_, actions) =
            run(&config(), &[(0, Input::Phase(CircadianPhase::Sunset)), (5, Input::Phase(CircadianPhase::Sunset))]);
        assert!(actions.is_empty());
    }

    #[test]
    fn motion_lights_its_room_then_returns_after_the_timeout() {
        let c = config();
        let night = (0, Input::Phase(CircadianPhase::Night));
        let motion = (10, Input::Motion { sensor: "k-pir".into(), active: true });
        let (_, actions) = run(&c, &[night.clone(), motion.clone()]);
        assert_eq!(brightness_of(&actions, "kitchen"), Some((100, LightSource::Motion)));
        assert_eq!(commands(&actions), 1, "only the kitchen");

        let no_motion = (20, Input::Motion { sensor: "k-pir".into(), active: false });
        let (ctl, actions) = run(&c, &[night.clone(), motion.clone(), no_motion.clone()]);
        assert!(actions.is_empty(), "stays lit during the timeout");
        assert_eq!(ctl.next_deadline(), Some(at(20 + 60)));

        let (_, actions) = run(&c, &[night.clone(), motion.clone(), no_motion.clone(), (79, Input::Tick)]);
        assert!(actions.is_empty(), "one second early");
        let (_, actions) = run(&c, &[night, motion, no_motion, (80, Input::Tick)]);
        assert_eq!(brightness_of(&actions, "kitchen"), Some((5, LightSource::Circadian)));
        let Action::Command { why, .. } = &actions[0] else { panic!() };
        assert_eq!(why, "no motion in kitchen for 60 s");
    }

    #[test]
    fn a_no_motion_heartbeat_does_not_restart_the_timeout() {
        let c = config();
        let (ctl, _) = run(
            &c,
            &[
                (0, Input::Phase(CircadianPhase::Night)),
                (1, Input::Motion { sensor: "k-pir".into(), active: true }),
                (2, Input::Motion { sensor: "k-pir".into(), active: false }),
                (30, Input::Motion { sensor: "k-pir".into(), active: false }),
            ],
        );
        assert_eq!(ctl.next_deadline(), Some(at(62)));
    }

    #[test]
    fn motion_takes_the_phase_colour_temperature() {
        let (_, actions) = run(
            &config(),
            &[(0, Input::Phase(CircadianPhase::Night)), (1, Input::Motion { sensor: "h-pir".into(), active: true })],
        );
        let temps: Vec<Option<u16>> = actions
            .iter()
            .map(|a| match a {
                Action::Command { command: BulbCommand::SetBrightness { color_temp_k, .. }, .. } => *color_temp_k,
                _ => panic!("{a:?}"),
            })
            .collect();
        assert_eq!(temps, [Some(2200), Some(2200)], "hall and porch, night's warm white");
    }

    #[test]
    fn a_manual_command_pauses_automation_for_that_bulb_only() {
        let c = config();
        let steps = [
            (0, Input::Phase(CircadianPhase::Morning)),
            (10, Input::ManualCommand { bulb: "kitchen".into() }),
            (20, Input::Phase(CircadianPhase::Sunset)),
        ];
        let (ctl, actions) = run(&c, &steps);
        assert_eq!(brightness_of(&actions, "kitchen"), None, "paused");
        assert_eq!(brightness_of(&actions, "hall"), Some((30, LightSource::Circadian)));
        assert_eq!(ctl.next_deadline(), Some(at(10 + 30 * 60)));
        let mut more = steps.to_vec();
        more.push((10 + 30 * 60, Input::Tick));
        let (_, actions) = run(&c, &more);
        assert_eq!(brightness_of(&actions, "kitchen"), Some((30, LightSource::Circadian)));
        assert_eq!(commands(&actions), 1);
    }

    #[test]
    fn the_alarm_flashes_every_bulb_and_automation_resumes_after() {
        let c = config();
        let steps = vec![(0, Input::Phase(CircadianPhase::Night)), (5, Input::Alarm { triggered: true })];
        let (_, actions) = run(&c, &steps);
        assert_eq!(commands(&actions), 3);
        assert!(actions.iter().all(|a| matches!(a, Action::Command { command: BulbCommand::Flash { .. }, .. })));
        let mut more = steps.clone();
        more.push((6, Input::Motion { sensor: "k-pir".into(), active: true }));
        assert!(run(&c, &more).1.is_empty(), "motion does not interrupt the alarm");
        more.push((7, Input::Alarm { triggered: false }));
        let (_, actions) = run(&c, &more);
        assert_eq!(brightness_of(&actions, "kitchen"), Some((100, LightSource::Motion)));
        assert_eq!(brightness_of(&actions, "hall"), Some((5, LightSource::Circadian)));
    }

    #[test]
    fn the_alarm_is_ignored_when_not_followed() {
        let c = Config { follow_alarm: false, ..config() };
        let (_, actions) = run(&c, &[(0, Input::Phase(CircadianPhase::Night)), (5, Input::Alarm { triggered: true })]);
        assert!(actions.is_empty());
    }

    #[test]
    fn a_bulb_coming_online_gets_its_level_again() {
        let c = config();
        let (_, actions) =
            run(&c, &[(0, Input::Phase(CircadianPhase::Sunrise)), (9, Input::BulbOnline { bulb: "porch".into() })]);
        assert_eq!(commands(&actions), 1);
        assert_eq!(brightness_of(&actions, "porch"), Some((50, LightSource::Circadian)));
    }

    #[test]
    fn an_offline_motion_sensor_releases_its_room() {
        let c = config();
        let (_, actions) = run(
            &c,
            &[
                (0, Input::Phase(CircadianPhase::Night)),
                (1, Input::Motion { sensor: "k-pir".into(), active: true }),
                (2, Input::SensorOffline { sensor: "k-pir".into() }),
            ],
        );
        assert_eq!(brightness_of(&actions, "kitchen"), Some((5, LightSource::Circadian)));
    }

    #[test]
    fn zero_brightness_turns_the_bulb_off_and_nothing_is_sent_before_a_phase() {
        let mut c = config();
        c.levels.night.brightness = 0;
        let (_, actions) = run(&c, &[(0, Input::Phase(CircadianPhase::Night))]);
        assert!(actions.iter().all(|a| matches!(a, Action::Command { command: BulbCommand::TurnOff { .. }, .. })));
        let (_, actions) = run(&c, &[(0, Input::BulbOnline { bulb: "kitchen".into() })]);
        assert!(actions.is_empty());
        let (_, actions) = run(&c, &[(0, Input::Motion { sensor: "unknown".into(), active: true })]);
        assert!(actions.is_empty());
    }

    fn report(bulb: &str, on: bool, source: LightSource) -> Input {
        Input::BulbReport { bulb: bulb.into(), on, source }
    }

    #[test]
    fn with_adapt_only_lit_a_phase_adapts_lit_bulbs_and_leaves_dark_ones_dark() {
        let c = Config { adapt_only_lit: true, ..config() };
        let sunset = (0, Input::Phase(CircadianPhase::Sunset));
        // Nobody switched anything on: a phase change sends nothing.
        let (_, actions) = run(&c, std::slice::from_ref(&sunset));
        assert_eq!(commands(&actions), 0, "{actions:?}");
        // Someone switched the hall on: the next phase adapts it, and only it.
        let (_, actions) = run(
            &c,
            &[sunset.clone(), (1, report("hall", true, LightSource::Manual)), (2, Input::Phase(CircadianPhase::Night))],
        );
        assert_eq!(brightness_of(&actions, "hall"), Some((5, LightSource::Circadian)));
        assert_eq!(brightness_of(&actions, "kitchen"), None);
        assert_eq!(commands(&actions), 1, "{actions:?}");
        // Switched off again: left off at the next phase.
        let (_, actions) = run(
            &c,
            &[
                (0, report("hall", true, LightSource::Manual)),
                (1, report("hall", false, LightSource::Manual)),
                (2, Input::Phase(CircadianPhase::Morning)),
            ],
        );
        assert_eq!(commands(&actions), 0, "{actions:?}");
        // Switched on while automation is not paused (manual_override_min = 0): adapted at once.
        let c0 = Config { manual_override_min: 0, ..c.clone() };
        let (_, actions) = run(&c0, &[sunset.clone(), (1, report("hall", true, LightSource::Manual))]);
        assert_eq!(brightness_of(&actions, "hall"), Some((30, LightSource::Circadian)));
        // Without the setting, every phase sets every bulb, whatever they report (the default).
        let (_, actions) = run(&config(), &[(0, report("hall", false, LightSource::Manual)), sunset]);
        assert_eq!(brightness_of(&actions, "hall"), Some((30, LightSource::Circadian)));
    }

    #[test]
    fn with_adapt_only_lit_motion_lights_a_dark_room_and_leaves_it_dark_after() {
        let c = Config { adapt_only_lit: true, ..config() };
        let steps = [
            (0, Input::Phase(CircadianPhase::Night)),
            (1, Input::Motion { sensor: "h-pir".into(), active: true }),
            // The bulb's report of the motion's command does not count as someone switching it on.
            (2, report("hall", true, LightSource::Motion)),
            (3, Input::Motion { sensor: "h-pir".into(), active: false }),
        ];
        let (_, actions) = run(&c, &steps[..2]);
        assert_eq!(brightness_of(&actions, "hall"), Some((100, LightSource::Motion)));
        let (controller, _) = run(&c, &steps);
        let (_, actions) = controller.step(&c, Input::Tick, at(3 + c.motion_timeout_s));
        let off = actions
            .iter()
            .any(|a| matches!(a, Action::Command { command: BulbCommand::TurnOff { bulb, .. }, .. } if bulb == "hall"));
        assert!(off, "dark again after the motion: {actions:?}");
        // A lit room goes back to its phase level instead.
        let mut lit = vec![(0, report("hall", true, LightSource::Manual))];
        lit.extend(steps);
        let (controller, _) = run(&c, &lit);
        let (_, actions) = controller.step(&c, Input::Tick, at(3 + c.motion_timeout_s));
        assert_eq!(brightness_of(&actions, "hall"), Some((5, LightSource::Circadian)));
    }

    #[test]
    fn with_adapt_only_lit_a_dark_bulb_goes_dark_again_after_the_alarm() {
        let c = Config { adapt_only_lit: true, ..config() };
        let steps = [
            (0, Input::Phase(CircadianPhase::Night)),
            (1, Input::Alarm { triggered: true }),
            (2, Input::Alarm { triggered: false }),
        ];
        let (_, actions) = run(&c, &steps);
        let off = actions
            .iter()
            .any(|a| matches!(a, Action::Command { command: BulbCommand::TurnOff { bulb, .. }, .. } if bulb == "hall"));
        assert!(off, "{actions:?}");
    }

    #[test]
    fn commands_go_on_the_wire_as_the_contract_says() {
        let flash = BulbCommand::Flash { bulb: "k".into() }.to_light_command();
        assert_eq!(
            (flash.brightness, flash.effect, flash.source),
            (Some(100), Some(Effect::Flash), Some(LightSource::Alarm))
        );
        let set = BulbCommand::SetBrightness {
            bulb: "k".into(),
            brightness: 30,
            color_temp_k: Some(2700),
            source: LightSource::Circadian,
        };
        assert_eq!(set.to_light_command(), LightCommand::set(30, Some(2700), LightSource::Circadian));
        assert_eq!(set.describe(), "k light 30 % 2700 K");
    }

    fn step_all(c: Controller, config: &Config, inputs: &[(u64, Input)]) -> (Controller, Vec<Action>) {
        let mut c = c;
        let mut all = vec![];
        for (secs, input) in inputs {
            let actions;
            (c, actions) = c.step(config, input.clone(), at(*secs));
            all.extend(actions);
        }
        (c, all)
    }

    fn sent_to(actions: &[Action], bulb: &str) -> Vec<(u8, LightSource)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Command { command: BulbCommand::SetBrightness { bulb: b, brightness, source, .. }, .. }
                    if b == bulb =>
                {
                    Some((*brightness, *source))
                }
                Action::Command { command: BulbCommand::TurnOff { bulb: b, source }, .. } if b == bulb => {
                    Some((0, *source))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn armed_away_a_simulating_room_replays_its_plan_and_stops_when_disarmed() {
        let c = config();
        let (ctl, actions) = run(&c, &[(0, Input::Phase(CircadianPhase::Night)), (1, Input::Away { away: true })]);
        assert!(actions.contains(&Action::LoadHistory { bulbs: vec!["kitchen".into()] }), "{actions:?}");
        assert_eq!(sent_to(&actions, "kitchen"), [(0, LightSource::Simulation)], "dark until the plan says");
        assert!(sent_to(&actions, "hall").is_empty(), "a room without simulate_presence is left as it is");
        let plan = vec![(at(100), 60), (at(200), 0)];
        let (ctl, _) = step_all(ctl, &c, &[(2, Input::Plans([("kitchen".to_owned(), plan)].into()))]);
        assert_eq!(ctl.next_deadline(), Some(at(100)));
        let (ctl, actions) = step_all(ctl, &c, &[(100, Input::Tick)]);
        assert_eq!(sent_to(&actions, "kitchen"), [(60, LightSource::Simulation)]);
        let (ctl, actions) = step_all(ctl, &c, &[(150, Input::Away { away: false })]);
        assert_eq!(sent_to(&actions, "kitchen"), [(5, LightSource::Circadian)], "disarmed: back to the phase at once");
        assert_eq!(ctl.next_deadline(), None, "the plan is gone");
        // A plan that arrives after the disarm is too late: ignored.
        let (_, actions) =
            step_all(ctl, &c, &[(151, Input::Plans([("kitchen".to_owned(), vec![(at(300), 80)])].into()))]);
        assert!(sent_to(&actions, "kitchen").is_empty());
    }

    #[test]
    fn without_history_a_simulating_room_follows_the_evening() {
        let c = config();
        let inputs = [
            (0, Input::Phase(CircadianPhase::Morning)),
            (1, Input::Away { away: true }),
            (2, Input::Plans([("kitchen".to_owned(), vec![])].into())),
            (10, Input::Phase(CircadianPhase::Sunset)),
        ];
        let (ctl, _) = run(&c, &inputs);
        let on_at = ctl.next_deadline().unwrap();
        let after = on_at.since(at(10)).as_secs();
        assert!((5 * 60..=35 * 60).contains(&after), "on {after} s after sunset: 20 min ± 15");
        let (ctl, actions) = ctl.step(&c, Input::Tick, on_at);
        assert_eq!(sent_to(&actions, "kitchen"), [(30, LightSource::Simulation)], "the sunset level");
        let (ctl, _) = step_all(ctl, &c, &[(20_000, Input::Phase(CircadianPhase::Night))]);
        let off_at = ctl.next_deadline().unwrap();
        let after = off_at.since(at(20_000)).as_secs();
        assert!((75 * 60..=105 * 60).contains(&after), "off {after} s after night began: 90 min ± 15");
        let (_, actions) = ctl.step(&c, Input::Tick, off_at);
        assert_eq!(sent_to(&actions, "kitchen"), [(0, LightSource::Simulation)]);
        // Armed away when the sunset has already begun: the evening begins from then.
        let inputs = [
            (0, Input::Phase(CircadianPhase::Sunset)),
            (100, Input::Away { away: true }),
            (101, Input::Plans([("kitchen".to_owned(), vec![])].into())),
        ];
        let (ctl, _) = run(&c, &inputs);
        let after = ctl.next_deadline().unwrap().since(at(101)).as_secs();
        assert!((5 * 60..=35 * 60).contains(&after), "on {after} s after arming in the evening");
    }
}

//! A panel with several areas: one [`Panel`] per area, each its own state machine, and what they
//! share — one siren, one count of wrong codes, one state file, one status for the whole house.
//!
//! Pure, as the panel is: `(house, input, now) -> actions`. Without `[[panel.areas]]` the house is
//! one panel and every input goes straight to it, its status and events as they always were. With
//! areas, each input goes to the areas it concerns (a sensor to those it guards; the clock and
//! presence to all), each area's status and events carry its name, and the house adds:
//!
//! - **The house status** on the panel's own topic: triggered if any area is, else pending, else
//!   arming, else the laxest state of the areas (`disarmed` while any is), with each area's state
//!   in `areas`. So the lights, Home Assistant's house panel and old readers see an alarm anywhere.
//! - **A command to the house** (`security/panel/set`) goes to every area its user may use, in
//!   order, and stops at the first that refuses the code: a wrong code counts once, not per area.
//! - **One siren**: an area's "siren off" is held back while another area still sounds it.
//! - **One brute-force limit**: after a command, the wrong codes and the lockout of the area that
//!   took it are every area's, so trying the areas one by one gains nothing.

use std::collections::{BTreeMap, HashMap};

use protocol::{ArmMode, PanelEventKind, PanelState, PanelStatus, SensorKind, Timestamp, Tone};
use serde::{Deserialize, Serialize};

use crate::config::PanelConfig;
use crate::keypad::{Code, Command};
use crate::panel::{Action, Arm, Input, Panel};

/// One area: its name (none for a panel without areas), its configuration and its panel.
#[derive(Debug, Clone)]
pub struct AreaPanel {
    pub name: Option<String>,
    pub config: PanelConfig,
    pub panel: Panel,
}

/// The areas one input goes to.
enum Targets {
    One(usize),
    /// In order; never empty.
    Many(Vec<usize>),
}

/// What the state file holds: one panel, or one per area by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Saved {
    Areas { areas: BTreeMap<String, Panel> },
    One(Box<Panel>),
}

/// The panel's areas and what they share.
#[derive(Debug, Clone)]
pub struct House {
    pub areas: Vec<AreaPanel>,
    /// The areas each sensor listed in `[[panel.areas]]` guards; an unlisted one guards the first.
    guards: HashMap<String, Vec<usize>>,
    /// The house status last published (with areas), to publish it only when it changes.
    house_status: Option<PanelStatus>,
    device_id: String,
}

impl House {
    /// The house of `config`, each area resumed from `saved` where it holds one.
    pub fn new(config: &PanelConfig, saved: Option<Saved>, device_id: &str) -> House {
        let configs = config.area_configs();
        let mut saved = match saved {
            None => BTreeMap::new(),
            Some(Saved::One(panel)) => {
                // Areas added to a panel that had none: every area is where the panel was (an
                // armed house split in two must not come back half disarmed).
                configs.iter().map(|c| (c.area.clone().unwrap_or_default(), (*panel).clone())).collect()
            }
            Some(Saved::Areas { areas }) if configs.len() == 1 && configs[0].area.is_none() => {
                // Areas taken out again: the one panel resumes as the most protected area was.
                let strictest = areas.into_values().max_by_key(protection);
                strictest.map(|panel| (String::new(), panel)).into_iter().collect()
            }
            Some(Saved::Areas { areas }) => areas,
        };
        let areas = configs
            .into_iter()
            .map(|config| {
                let key = config.area.clone().unwrap_or_default();
                let panel = saved.remove(&key).map(Panel::resumed).unwrap_or_default();
                AreaPanel { name: config.area.clone(), config, panel }
            })
            .collect();
        for name in saved.keys() {
            tracing::warn!(
                "the state file holds area `{name}`, which [[panel.areas]] no longer has: dropped (a renamed area \
                 starts disarmed under its new name)"
            );
        }
        let mut guards: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, area) in config.areas.iter().enumerate() {
            for sensor in &area.sensors {
                guards.entry(sensor.clone()).or_default().push(i);
            }
        }
        House { areas, guards, house_status: None, device_id: device_id.to_owned() }
    }

    /// Whether the panel serves several areas.
    pub fn has_areas(&self) -> bool {
        self.areas[0].name.is_some()
    }

    /// The state file's content.
    pub fn snapshot(&self) -> Saved {
        if !self.has_areas() {
            return Saved::One(Box::new(self.areas[0].panel.snapshot()));
        }
        let areas = self.areas.iter().map(|a| (a.name.clone().unwrap_or_default(), a.panel.snapshot())).collect();
        Saved::Areas { areas }
    }

    /// Whether codes are refused at `now` without being checked (the lockout is shared).
    pub fn locked_out(&self, now: Timestamp) -> bool {
        self.areas.iter().any(|a| a.panel.locked_out(now))
    }

    /// The state file cannot be written: a trouble of the first area's.
    pub fn save_trouble(&self) -> bool {
        self.areas[0].panel.save_trouble.is_some()
    }

    /// The earliest time a tick can change anything in any area.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.areas.iter().filter_map(|a| a.panel.next_deadline()).min()
    }

    /// On (re)connecting: every area's status and siren again, and the house's status.
    pub fn on_connected(&mut self, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        for i in 0..self.areas.len() {
            let area = &self.areas[i];
            let actions = area.panel.on_connected(&area.config, now, &self.device_id);
            self.label(i, actions, &mut out);
        }
        self.house_status = None;
        self.finish(now, out)
    }

    /// Takes one input that is not a command.
    pub fn step(&mut self, input: Input, now: Timestamp) -> Vec<Action> {
        if !self.has_areas() {
            return self.step_area(0, input, now);
        }
        // The most common input by far is one reading for one area: no copy, no list.
        let (first, more) = match self.targets(&input) {
            Targets::One(i) => (i, Vec::new()),
            Targets::Many(list) => (list[0], list[1..].to_vec()),
        };
        let mut out = Vec::new();
        if more.is_empty() {
            out = self.step_area(first, input, now);
        } else {
            out.extend(self.step_area(first, input.clone(), now));
            for i in more {
                out.extend(self.step_area(i, input.clone(), now));
            }
        }
        if out.is_empty() {
            return out;
        }
        self.finish(now, out)
    }

    /// Whether any area is in its alarm.
    pub fn sounding(&self) -> bool {
        self.areas.iter().any(|a| matches!(a.panel.arm, Arm::Triggered { .. }))
    }

    /// Whether an opening (or movement) of sensor `id` read at `now` sounds the siren before
    /// anything else [`House::step`] does (see [`Panel::sounds_at_once`]): in any of its areas.
    pub fn sounds_at_once(&self, kind: SensorKind, id: &str, now: Timestamp) -> bool {
        let sounds = |i: usize| {
            let area = &self.areas[i];
            area.panel.sounds_at_once(&area.config, kind, id, now)
        };
        self.guarding(id).iter().any(|&i| sounds(i))
    }

    /// The areas sensor `id` goes to: those that guard it, else the first.
    fn guarding(&self, id: &str) -> &[usize] {
        self.guards.get(id).map_or(&[0], Vec::as_slice)
    }

    /// Takes a command, its code checked: to `area`, or (none) to the house.
    pub fn command(&mut self, area: Option<&str>, command: Command, now: Timestamp) -> Vec<Action> {
        if !self.has_areas() {
            return self.step_area(0, Input::Command(command), now);
        }
        let targets: Vec<usize> = match area {
            Some(name) => match self.areas.iter().position(|a| a.name.as_deref() == Some(name)) {
                Some(i) => vec![i],
                None => {
                    tracing::warn!("a command for area `{name}`, which [[panel.areas]] does not have: ignored");
                    return Vec::new();
                }
            },
            None => self.house_targets(&command),
        };
        let mut out: Vec<Action> = Vec::new();
        for i in targets {
            let mut actions = self.step_area(i, Input::Command(command.clone()), now);
            let refused = actions.iter().any(|a| matches!(a, Action::Event(e) if code_refused(e.event)));
            // A duress code used on the house is one silent alarm, not one per area.
            let duress_told = out.iter().any(|a| matches!(a, Action::Event(e) if e.event == PanelEventKind::Duress));
            actions.retain(|a| !(duress_told && matches!(a, Action::Event(e) if e.event == PanelEventKind::Duress)));
            out.extend(actions);
            self.share_codes(i);
            if refused {
                break;
            }
        }
        self.finish(now, out)
    }

    /// The areas a command to the house goes to: those its user may use (all of them without a
    /// user); when there are none, the first, which then says why not.
    fn house_targets(&self, command: &Command) -> Vec<usize> {
        let Code::User(u) = command.code else { return (0..self.areas.len()).collect() };
        let serves = |a: &AreaPanel| a.config.users.get(u).is_some_and(|user| user.serves(a.name.as_deref()));
        let targets: Vec<usize> = (0..self.areas.len()).filter(|i| serves(&self.areas[*i])).collect();
        if targets.is_empty() { vec![0] } else { targets }
    }

    /// The areas an input concerns.
    fn targets(&self, input: &Input) -> Targets {
        let id = match input {
            Input::Sensor { id, .. }
            | Input::Unreadable { id, .. }
            | Input::SensorCleared { id, .. }
            | Input::Availability { id, .. }
            | Input::Condition { id, .. } => id,
            Input::Tick | Input::Presence { .. } | Input::Command(_) => {
                return Targets::Many((0..self.areas.len()).collect());
            }
            // The state file and the command topic are the house's: its first area reports them.
            Input::Saved(_) | Input::UnreadableCommand { .. } => return Targets::One(0),
        };
        match self.guarding(id) {
            [one] => Targets::One(*one),
            list => Targets::Many(list.to_vec()),
        }
    }

    /// Steps area `i`; its actions, labelled with the area.
    fn step_area(&mut self, i: usize, input: Input, now: Timestamp) -> Vec<Action> {
        let area = &mut self.areas[i];
        let actions;
        (area.panel, actions) = std::mem::take(&mut area.panel).step(&area.config, input, now, &self.device_id);
        if actions.is_empty() || !self.has_areas() {
            return actions;
        }
        let mut out = Vec::with_capacity(actions.len());
        self.label(i, actions, &mut out);
        out
    }

    /// Names area `i` in its events and statuses.
    fn label(&self, i: usize, actions: Vec<Action>, out: &mut Vec<Action>) {
        let name = &self.areas[i].name;
        for mut action in actions {
            match &mut action {
                Action::Event(event) => event.area.clone_from(name),
                Action::PublishStatus(status) => status.area.clone_from(name),
                Action::Siren { .. } | Action::Sound { .. } | Action::Persist => {}
            }
            out.push(action);
        }
    }

    /// The wrong codes of area `i` (which just took a command) become every area's, and the
    /// latest lockout of any area holds in all: one area's empty state never lifts a lockout.
    fn share_codes(&mut self, i: usize) {
        let wrong_codes = self.areas[i].panel.wrong_codes.clone();
        let lockout_until = self.areas.iter().filter_map(|a| a.panel.lockout_until).max();
        for area in &mut self.areas {
            area.panel.wrong_codes.clone_from(&wrong_codes);
            area.panel.lockout_until = lockout_until;
        }
    }

    /// What the areas' actions become for the house: one save, the siren off only when no area
    /// sounds it, and the house's status when it changed.
    fn finish(&mut self, now: Timestamp, actions: Vec<Action>) -> Vec<Action> {
        if !self.has_areas() {
            return actions;
        }
        let sounding = self.sounding();
        let mut out = Vec::with_capacity(actions.len() + 1);
        // The siren never waits for a disk: an area's alarm goes out before another area's save.
        out.extend(actions.iter().filter(|a| matches!(a, Action::Siren { on: true, .. })).take(1).cloned());
        let mut persist = false;
        let mut status_changed = false;
        for action in actions {
            match action {
                Action::Persist if persist => {}
                Action::Persist => {
                    persist = true;
                    out.push(Action::Persist);
                }
                Action::Siren { on: false, .. } if sounding => {}
                // One area's delay over: its beeps stop only if no other area is in that delay.
                Action::Sound { tone: Tone::ExitBeeps, on: false, .. }
                    if self.any_arm(|a| matches!(a, Arm::Arming { .. })) => {}
                Action::Sound { tone: Tone::EntryBeeps, on: false, .. }
                    if self.any_arm(|a| matches!(a, Arm::Pending { .. })) => {}
                Action::Siren { on: true, .. } => {}
                // A chime of a sensor in two areas, beeps of two areas arming at once: once.
                Action::Sound { .. } if out.contains(&action) => {}
                Action::PublishStatus(status) => {
                    status_changed = true;
                    out.push(Action::PublishStatus(status));
                }
                action => out.push(action),
            }
        }
        if status_changed || self.house_status.is_none() {
            let status = self.house_status(now);
            let key = |s: &PanelStatus| PanelStatus {
                delay_remaining_s: None,
                lockout_remaining_s: None,
                ts: now,
                ..s.clone()
            };
            if self.house_status.as_ref().map(key) != Some(key(&status)) {
                self.house_status = Some(status.clone());
                out.push(Action::PublishStatus(status));
            }
        }
        out
    }

    /// Whether any area's arm state is such.
    fn any_arm(&self, such: impl Fn(&Arm) -> bool) -> bool {
        self.areas.iter().any(|a| such(&a.panel.arm))
    }

    /// The whole house in one status (see the module's header).
    pub fn house_status(&self, now: Timestamp) -> PanelStatus {
        let statuses: Vec<(String, PanelStatus)> = self
            .areas
            .iter()
            .map(|a| (a.name.clone().unwrap_or_default(), a.panel.status(&a.config, now, &self.device_id)))
            .collect();
        combine(&statuses, now, &self.device_id)
    }
}

/// How much a saved panel protects: an alarm, then an entry delay, then the strictest mode armed.
fn protection(panel: &Panel) -> u8 {
    let mode = |m: ArmMode| match m {
        ArmMode::Home => 2,
        ArmMode::Night => 3,
        ArmMode::Away => 4,
    };
    match &panel.arm {
        Arm::Disarmed => 0,
        Arm::Arming { from: None, .. } => 1,
        Arm::Arming { from: Some(m), .. } | Arm::Armed { mode: m } => mode(*m),
        Arm::Pending { .. } => 5,
        Arm::Triggered { .. } => 6,
    }
}

/// Whether an event says a command's code was not taken (wrong, missing, locked out, unchecked).
fn code_refused(kind: PanelEventKind) -> bool {
    matches!(kind, PanelEventKind::WrongCode | PanelEventKind::CodeRefused | PanelEventKind::Lockout)
}

/// How much an armed state protects, to find the laxest.
fn strictness(state: PanelState) -> u8 {
    match state {
        PanelState::Disarmed => 0,
        PanelState::ArmedHome => 1,
        PanelState::ArmedNight => 2,
        PanelState::ArmedAway => 3,
        PanelState::Arming | PanelState::Pending | PanelState::Triggered => 4,
    }
}

/// The areas' statuses as one: the most urgent state, else the laxest (see the module's header).
pub fn combine(statuses: &[(String, PanelStatus)], now: Timestamp, device_id: &str) -> PanelStatus {
    let states: Vec<PanelState> = statuses.iter().map(|(_, s)| s.state).collect();
    let urgent = [PanelState::Triggered, PanelState::Pending, PanelState::Arming];
    let state = urgent
        .into_iter()
        .find(|u| states.contains(u))
        .or_else(|| states.iter().copied().min_by_key(|s| strictness(*s)))
        .unwrap_or(PanelState::Disarmed);
    let leading = statuses.iter().map(|(_, s)| s).find(|s| s.state == state);
    let union = |field: fn(&PanelStatus) -> &Vec<String>| {
        let mut all: Vec<String> = statuses.iter().flat_map(|(_, s)| field(s).iter().cloned()).collect();
        all.sort();
        all.dedup();
        all
    };
    let last_trigger =
        statuses.iter().filter_map(|(_, s)| s.last_trigger.clone().zip(s.last_trigger_ts)).max_by_key(|(_, t)| *t);
    let modes: Vec<Option<ArmMode>> = statuses.iter().map(|(_, s)| s.mode).collect();
    let mode = if modes.windows(2).all(|w| w[0] == w[1]) {
        modes.first().copied().flatten()
    } else {
        leading.and_then(|s| s.mode)
    };
    PanelStatus {
        state,
        mode,
        ready: statuses.iter().all(|(_, s)| s.ready),
        open_sensors: union(|s| &s.open_sensors),
        bypassed: union(|s| &s.bypassed),
        troubles: union(|s| &s.troubles),
        warnings: union(|s| &s.warnings),
        delay_remaining_s: statuses
            .iter()
            .filter(|(_, s)| s.state == state)
            .filter_map(|(_, s)| s.delay_remaining_s)
            .min(),
        last_trigger: last_trigger.as_ref().map(|(s, _)| s.clone()),
        last_trigger_ts: last_trigger.map(|(_, t)| t),
        changed_by: leading.and_then(|s| s.changed_by.clone()),
        lockout_remaining_s: statuses.iter().filter_map(|(_, s)| s.lockout_remaining_s).max(),
        area: None,
        areas: statuses.iter().map(|(name, s)| (name.clone(), s.state)).collect(),
        device_id: device_id.to_owned(),
        ts: now,
    }
}

#[cfg(test)]
mod tests;

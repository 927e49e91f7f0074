//! Several areas on one panel, table by table, on a fake clock.

use std::sync::OnceLock;
use std::time::Duration;

use protocol::{PanelAction, PanelEventKind as E, Refusal, SensorKind, Tone};

use super::*;
use crate::codes;
use crate::config::{Area, ModeDelays, User};
use crate::people::HomeZone;

const T0: Timestamp = Timestamp(1_800_000_000_000);
const ID: &str = "security-controller";

fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

/// alice may use every area; gina only the garage.
fn users() -> Vec<User> {
    static USERS: OnceLock<Vec<User>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            let hash = |pin| codes::hash_pin_with(pin, codes::test_params()).unwrap();
            vec![
                User::new("alice", hash("1234")),
                User { areas: Some(vec!["garage".into()]), ..User::new("gina", hash("7777")) },
            ]
        })
        .clone()
}

/// Two areas: the house (front door, its windows, the hallway motion) and the garage (its door
/// and the hallway motion, which both share). Unlisted sensors guard the house, the first.
fn config() -> PanelConfig {
    let mut garage = Area::new("garage", &["garage-door", "garage-window", "hallway"]);
    garage.exit_delay_s = Some(ModeDelays { away: 0, home: 0, night: 0 });
    PanelConfig {
        exit_delay_s: ModeDelays { away: 30, home: 10, night: 0 },
        entry_delay_s: ModeDelays { away: 20, home: 20, night: 0 },
        trigger_time_s: 180,
        users: users(),
        time_zone: HomeZone::named("UTC").unwrap(),
        areas: vec![Area::new("house", &["front", "hallway"]), garage],
        ..PanelConfig::default()
    }
}

fn command(action: PanelAction, code: Option<&str>) -> Command {
    Command { action, force: false, code: crate::keypad::identify(&users(), code) }
}

fn open(kind: SensorKind, id: &str) -> Input {
    Input::Sensor { kind, id: id.into(), state: kind.active() }
}

fn state(house: &House, area: usize) -> PanelState {
    let a = &house.areas[area];
    a.panel.status(&a.config, at(0), ID).state
}

/// The events as `(area, kind)`.
fn events(actions: &[Action]) -> Vec<(Option<String>, E)> {
    actions
        .iter()
        .filter_map(|a| if let Action::Event(e) = a { Some((e.area.clone(), e.event)) } else { None })
        .collect()
}

fn sirens(actions: &[Action]) -> Vec<bool> {
    actions.iter().filter_map(|a| if let Action::Siren { on, .. } = a { Some(*on) } else { None }).collect()
}

/// The statuses published, as `(area, state)`; `None` is the house's.
fn statuses(actions: &[Action]) -> Vec<(Option<String>, PanelState)> {
    actions
        .iter()
        .filter_map(|a| if let Action::PublishStatus(s) = a { Some((s.area.clone(), s.state)) } else { None })
        .collect()
}

fn area(name: &str) -> Option<String> {
    Some(name.to_owned())
}

#[test]
fn without_areas_the_house_is_the_one_panel_as_before() {
    let config = PanelConfig { users: users(), ..PanelConfig::default() };
    let mut house = House::new(&config, None, ID);
    assert!(!house.has_areas());
    let actions = house.command(None, command(PanelAction::ArmAway, None), at(0));
    assert_eq!(events(&actions), [(None, E::Arming)]);
    assert_eq!(statuses(&actions), [(None, PanelState::Arming)], "one status, on the panel's own topic");
    assert!(matches!(house.snapshot(), Saved::One(_)), "the state file keeps its format");
}

#[test]
fn each_area_arms_on_its_own_and_the_house_shows_the_laxest() {
    let mut house = House::new(&config(), None, ID);
    let first = house.on_connected(at(0));
    assert_eq!(
        statuses(&first),
        [(area("house"), PanelState::Disarmed), (area("garage"), PanelState::Disarmed), (None, PanelState::Disarmed)]
    );
    let actions = house.command(Some("garage"), command(PanelAction::ArmAway, None), at(1));
    assert_eq!(events(&actions), [(area("garage"), E::Armed)], "the garage's own delays: none");
    assert_eq!(state(&house, 0), PanelState::Disarmed);
    assert_eq!(state(&house, 1), PanelState::ArmedAway);
    let status = house.house_status(at(1));
    assert_eq!(status.state, PanelState::Disarmed, "the house is not armed while the house area is not");
    assert_eq!(status.areas["garage"], PanelState::ArmedAway);
    assert_eq!(statuses(&actions), [(area("garage"), PanelState::ArmedAway), (None, PanelState::Disarmed)]);
}

#[test]
fn a_sensor_trips_only_the_armed_areas_it_guards() {
    let mut house = House::new(&config(), None, ID);
    house.command(Some("garage"), command(PanelAction::ArmAway, None), at(0));
    // The front door guards only the house, which is disarmed: nothing.
    let actions = house.step(open(SensorKind::Door, "front"), at(1));
    assert!(events(&actions).is_empty());
    assert!(sirens(&actions).is_empty());
    // The hallway guards both; only the garage is armed: its alarm, not the house's.
    let actions = house.step(open(SensorKind::Motion, "hallway"), at(2));
    assert_eq!(events(&actions), [(area("garage"), E::Triggered)]);
    assert_eq!(sirens(&actions), [true]);
    assert_eq!(house.house_status(at(2)).state, PanelState::Triggered, "an alarm anywhere is the house's");
    // A sensor no area lists guards the first area.
    assert!(matches!(house.targets(&open(SensorKind::Window, "attic")), Targets::One(0)));
    assert!(matches!(house.targets(&open(SensorKind::Motion, "hallway")), Targets::Many(ref l) if l == &[0, 1]));
}

#[test]
fn the_shared_siren_stops_only_when_no_area_sounds_it() {
    let mut house = House::new(&config(), None, ID);
    house.command(None, command(PanelAction::ArmAway, Some("1234")), at(0));
    house.step(Input::Tick, at(30));
    assert_eq!((state(&house, 0), state(&house, 1)), (PanelState::ArmedAway, PanelState::ArmedAway));
    let actions = house.step(open(SensorKind::Window, "garage-window"), at(31));
    assert_eq!((events(&actions), sirens(&actions)), (vec![(area("garage"), E::Triggered)], vec![true]));
    let actions = house.step(open(SensorKind::Window, "attic"), at(32));
    assert_eq!(events(&actions), [(area("house"), E::Triggered)]);
    // The garage disarmed: the house still sounds, so the siren stays on.
    let actions = house.command(Some("garage"), command(PanelAction::Disarm, Some("7777")), at(62));
    assert_eq!(events(&actions), [(area("garage"), E::AlarmEnded), (area("garage"), E::Disarmed)]);
    assert!(sirens(&actions).is_empty(), "held back: the house area still sounds");
    let actions = house.command(Some("house"), command(PanelAction::Disarm, Some("1234")), at(63));
    assert_eq!(sirens(&actions), [false]);
}

#[test]
fn a_code_works_only_in_its_areas() {
    let mut house = House::new(&config(), None, ID);
    house.command(None, command(PanelAction::ArmAway, None), at(0));
    house.step(Input::Tick, at(30));
    let actions = house.command(Some("house"), command(PanelAction::Disarm, Some("7777")), at(31));
    let refused: Vec<_> = actions
        .iter()
        .filter_map(|a| if let Action::Event(e) = a { Some((e.area.clone(), e.event, e.reason)) } else { None })
        .collect();
    assert_eq!(refused, [(area("house"), E::Refused, Some(Refusal::NotPermitted))]);
    assert_eq!(state(&house, 0), PanelState::ArmedAway);
    // To the house, gina's code disarms the areas it works in and leaves the others armed.
    let actions = house.command(None, command(PanelAction::Disarm, Some("7777")), at(32));
    assert_eq!(events(&actions), [(area("garage"), E::Disarmed)]);
    assert_eq!((state(&house, 0), state(&house, 1)), (PanelState::ArmedAway, PanelState::Disarmed));
}

#[test]
fn arming_the_house_arms_every_area_and_a_wrong_code_counts_once() {
    let config = PanelConfig { code_arm_required: true, max_wrong_codes: 3, ..config() };
    let mut house = House::new(&config, None, ID);
    let actions = house.command(None, command(PanelAction::ArmNight, Some("1234")), at(0));
    assert_eq!(events(&actions), [(area("house"), E::Armed), (area("garage"), E::Armed)]);
    house.command(None, command(PanelAction::Disarm, Some("1234")), at(1));
    let actions = house.command(None, command(PanelAction::Disarm, Some("0000")), at(2));
    assert_eq!(events(&actions), [(area("house"), E::WrongCode)], "refused once, not once per area");
    assert_eq!(house.areas[1].panel.wrong_codes.len(), 1, "the garage counts it too");
    // Trying the areas one by one gains nothing: the third wrong code locks every area out.
    house.command(Some("garage"), command(PanelAction::Disarm, Some("0001")), at(3));
    let actions = house.command(Some("house"), command(PanelAction::Disarm, Some("0002")), at(4));
    assert!(events(&actions).contains(&(area("house"), E::Lockout)), "{:?}", events(&actions));
    assert!(house.locked_out(at(5)));
    assert!(house.areas.iter().all(|a| a.panel.locked_out(at(5))));
}

#[test]
fn the_state_file_keeps_each_area_and_a_panel_without_areas_becomes_the_first() {
    let mut house = House::new(&config(), None, ID);
    house.command(Some("garage"), command(PanelAction::ArmHome, None), at(0));
    let saved = house.snapshot();
    let back = House::new(&config(), Some(saved), ID);
    assert_eq!((state(&back, 0), state(&back, 1)), (PanelState::Disarmed, PanelState::ArmedHome));
    // Upgrading: every area is where the one panel was (an armed house split in two stays armed).
    let mut one = Panel::new();
    one.arm = Arm::Armed { mode: ArmMode::Away };
    let upgraded = House::new(&config(), Some(Saved::One(Box::new(one))), ID);
    assert_eq!((state(&upgraded, 0), state(&upgraded, 1)), (PanelState::ArmedAway, PanelState::ArmedAway));
    // Areas taken out again: the one panel is the most protected area, whatever its name.
    let mut areas = BTreeMap::new();
    areas.insert("aaa".to_owned(), Panel::new());
    let mut armed = Panel::new();
    armed.arm = Arm::Armed { mode: ArmMode::Night };
    areas.insert("house".to_owned(), armed);
    let single = PanelConfig { users: users(), ..PanelConfig::default() };
    let downgraded = House::new(&single, Some(Saved::Areas { areas }), ID);
    assert_eq!(state(&downgraded, 0), PanelState::ArmedNight);
}

#[test]
fn one_areas_delay_ending_leaves_the_other_areas_beeps_on_and_duress_is_told_once() {
    let mut config = config();
    config.areas[1].exit_delay_s = Some(ModeDelays { away: 10, home: 0, night: 0 });
    let mut house = House::new(&config, None, ID);
    house.command(None, command(PanelAction::ArmAway, None), at(0));
    // The garage's exit delay ends at 10 s, the house's at 30 s: the beeps go on until then.
    let actions = house.step(Input::Tick, at(10));
    assert!(!actions.iter().any(|a| matches!(a, Action::Sound { on: false, .. })), "{actions:?}");
    let actions = house.step(Input::Tick, at(30));
    assert!(actions.iter().any(|a| matches!(a, Action::Sound { tone: Tone::ExitBeeps, on: false, .. })));
    let duress = User { duress: true, shows_as: Some("alice".into()), ..users()[0].clone() };
    let config = PanelConfig { users: vec![users()[0].clone(), duress], ..config };
    let mut house = House::new(&config, None, ID);
    house.command(None, Command { action: PanelAction::ArmAway, force: false, code: Code::Missing }, at(0));
    let actions =
        house.command(None, Command { action: PanelAction::Disarm, force: false, code: Code::User(1) }, at(40));
    let told = events(&actions).iter().filter(|(_, e)| *e == E::Duress).count();
    assert_eq!(told, 1, "one silent alarm for the house: {actions:?}");
}

#[test]
fn the_house_status_combines_the_areas() {
    let status = |state: PanelState, ready: bool, open: &[&str]| PanelStatus {
        state,
        mode: None,
        ready,
        open_sensors: open.iter().map(|s| (*s).to_owned()).collect(),
        bypassed: vec![],
        troubles: vec![],
        warnings: vec![],
        delay_remaining_s: None,
        last_trigger: None,
        last_trigger_ts: None,
        changed_by: None,
        lockout_remaining_s: None,
        area: None,
        areas: BTreeMap::new(),
        device_id: ID.into(),
        ts: T0,
    };
    use PanelState as S;
    let rows: &[(&[PanelState], PanelState)] = &[
        (&[S::Disarmed, S::Disarmed], S::Disarmed),
        (&[S::ArmedAway, S::ArmedAway], S::ArmedAway),
        (&[S::ArmedAway, S::Disarmed], S::Disarmed),
        (&[S::ArmedAway, S::ArmedHome], S::ArmedHome),
        (&[S::ArmedNight, S::Arming], S::Arming),
        (&[S::Arming, S::Pending], S::Pending),
        (&[S::Pending, S::Triggered], S::Triggered),
        (&[S::Disarmed, S::Triggered], S::Triggered),
    ];
    for (areas, expected) in rows {
        let named: Vec<(String, PanelStatus)> =
            areas.iter().enumerate().map(|(i, s)| (format!("a{i}"), status(*s, true, &[]))).collect();
        assert_eq!(combine(&named, T0, ID).state, *expected, "{areas:?}");
    }
    let named = vec![
        ("a".to_owned(), status(S::Disarmed, false, &["front", "hall"])),
        ("b".to_owned(), status(S::Disarmed, true, &["hall"])),
    ];
    let house = combine(&named, T0, ID);
    assert!(!house.ready);
    assert_eq!(house.open_sensors, ["front", "hall"], "each sensor once");
    assert_eq!(house.areas.len(), 2);
}

#[test]
fn the_siren_goes_out_before_any_area_saves() {
    // A side door guards both; the garage has no entry delay: the house starts its entry delay
    // (a save) as the garage sounds the siren, in one step.
    let mut config = config();
    config.areas[0].sensors.push("side-door".into());
    config.areas[1].sensors.push("side-door".into());
    config.areas[1].entry_delay_s = Some(ModeDelays { away: 0, home: 0, night: 0 });
    let mut house = House::new(&config, None, ID);
    house.command(None, command(PanelAction::ArmAway, None), at(0));
    house.step(Input::Tick, at(30));
    let actions = house.step(open(SensorKind::Door, "side-door"), at(31));
    assert!(matches!(actions[0], Action::Siren { on: true, .. }), "{actions:?}");
    assert_eq!(sirens(&actions), [true], "one siren command for the house");
    assert_eq!(actions.iter().filter(|a| **a == Action::Persist).count(), 1, "one save for the house");
    assert_eq!(
        events(&actions),
        [(area("house"), E::EntryStarted), (area("garage"), E::Triggered)],
        "each area as its own delays say"
    );
}

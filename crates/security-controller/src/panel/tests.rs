//! The panel's transitions, table by table, on a fake clock.

use std::sync::OnceLock;

use protocol::PanelEventKind as E;

use super::*;
use crate::codes;
use crate::config::{ModeDelays, SensorConfig, ZoneRule};
use crate::people::{Day, HomeZone, Hours};

const T0: Timestamp = Timestamp(1_800_000_000_000);
const ID: &str = "security-controller";

fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

/// Hashes are slow even with cheap parameters: make them once.
fn users() -> Vec<User> {
    static USERS: OnceLock<Vec<User>> = OnceLock::new();
    USERS
        .get_or_init(|| {
            let hash = |pin| codes::hash_pin_with(pin, codes::test_params()).unwrap();
            vec![
                User::new("alice", hash("1234")),
                User { duress: true, shows_as: Some("alice".into()), ..User::new("bob", hash("9999")) },
                // T0 is Friday 2027-01-15 08:00 UTC: her hour starts at T0.
                User {
                    may: Some(vec![Right::ArmAway, Right::Disarm]),
                    hours: vec![Hours {
                        days: vec![Day::Fri],
                        from: "08:00".parse().unwrap(),
                        until: "09:00".parse().unwrap(),
                    }],
                    valid_until: Some(jiff::civil::date(2027, 1, 31)),
                    ..User::new("cleaner", hash("5555"))
                },
            ]
        })
        .clone()
}

fn config() -> PanelConfig {
    PanelConfig {
        exit_delay_s: ModeDelays { away: 30, home: 10, night: 0 },
        entry_delay_s: ModeDelays { away: 20, home: 20, night: 0 },
        trigger_time_s: 180,
        users: users(),
        time_zone: HomeZone::named("UTC").unwrap(),
        ..PanelConfig::default()
    }
}

/// A command as the keypad hands it over: its code checked against the test users.
fn cmd(action: PanelAction, code: Option<&str>, force: bool) -> Input {
    Input::Command(Command { action, force, code: crate::keypad::identify(&users(), code) })
}

fn arm_away() -> Input {
    cmd(PanelAction::ArmAway, None, false)
}

fn disarm(code: &str) -> Input {
    cmd(PanelAction::Disarm, Some(code), false)
}

fn open(kind: SensorKind, id: &str) -> Input {
    Input::Sensor { kind, id: id.into(), state: kind.active() }
}

fn close(kind: SensorKind, id: &str) -> Input {
    Input::Sensor { kind, id: id.into(), state: kind.idle() }
}

/// Runs `(seconds, input)` steps from a new panel; returns the panel and every action, in order.
fn run(config: &PanelConfig, steps: &[(u64, Input)]) -> (Panel, Vec<Action>) {
    run_from(Panel::new(), config, steps)
}

fn run_from(mut panel: Panel, config: &PanelConfig, steps: &[(u64, Input)]) -> (Panel, Vec<Action>) {
    let mut all = Vec::new();
    for (secs, input) in steps {
        let actions;
        (panel, actions) = panel.step(config, input.clone(), at(*secs), ID);
        all.extend(actions);
    }
    (panel, all)
}

fn events(actions: &[Action]) -> Vec<E> {
    actions.iter().filter_map(|a| if let Action::Event(e) = a { Some(e.event) } else { None }).collect()
}

/// Each event's kind and what it is about (a tamper, a low battery), for a monitoring centre.
fn causes(actions: &[Action]) -> Vec<(E, Option<Cause>)> {
    actions.iter().filter_map(|a| if let Action::Event(e) = a { Some((e.event, e.cause)) } else { None }).collect()
}

fn sirens(actions: &[Action]) -> Vec<bool> {
    actions.iter().filter_map(|a| if let Action::Siren { on, .. } = a { Some(*on) } else { None }).collect()
}

fn state(panel: &Panel, config: &PanelConfig, secs: u64) -> PanelState {
    panel.status(config, at(secs), ID).state
}

#[test]
fn arming_runs_the_exit_delay_then_arms() {
    let c = config();
    let (p, actions) = run(&c, &[(0, arm_away())]);
    assert_eq!(state(&p, &c, 0), PanelState::Arming);
    assert_eq!(p.status(&c, at(5), ID).delay_remaining_s, Some(25));
    assert_eq!(p.next_deadline(), Some(at(30)));
    assert_eq!(events(&actions), [E::Arming]);
    assert!(actions.contains(&Action::Persist));

    let (p, actions) = run_from(p, &c, &[(29, Input::Tick)]);
    assert_eq!(state(&p, &c, 29), PanelState::Arming);
    assert!(actions.is_empty(), "nothing changes before the deadline: {actions:?}");
    let (p, actions) = run_from(p, &c, &[(30, Input::Tick)]);
    assert_eq!(state(&p, &c, 30), PanelState::ArmedAway);
    assert_eq!(events(&actions), [E::Armed]);
}

#[test]
fn zero_exit_delay_arms_at_once() {
    let c = config();
    let (p, actions) = run(&c, &[(0, cmd(PanelAction::ArmNight, None, false))]);
    assert_eq!(state(&p, &c, 0), PanelState::ArmedNight);
    assert_eq!(events(&actions), [E::Armed]);
}

#[test]
fn intrusion_through_a_perimeter_window_while_armed_away_sounds_the_siren() {
    let c = config();
    let (p, actions) = run(&c, &[(0, arm_away()), (30, Input::Tick), (40, open(SensorKind::Window, "kitchen-window"))]);
    assert_eq!(state(&p, &c, 40), PanelState::Triggered);
    assert_eq!(sirens(&actions), [true]);
    let status = p.status(&c, at(40), ID);
    assert_eq!(status.last_trigger.as_deref(), Some("kitchen-window"));
    assert_eq!(status.delay_remaining_s, Some(180));
}

#[test]
fn entry_door_then_right_code_within_the_delay_means_no_alarm() {
    let c = config();
    let (p, actions) = run(
        &c,
        &[
            (0, arm_away()),
            (30, Input::Tick),
            (100, open(SensorKind::Door, "front")),
            (110, disarm("1234")),
            (200, Input::Tick),
        ],
    );
    assert_eq!(state(&p, &c, 200), PanelState::Disarmed);
    assert!(sirens(&actions).is_empty());
    assert_eq!(events(&actions), [E::Arming, E::Armed, E::EntryStarted, E::Disarmed]);
    assert_eq!(p.changed_by.as_deref(), Some("alice"));
}

#[test]
fn the_entry_delay_running_out_triggers() {
    let c = config();
    let steps = [(0, arm_away()), (30, Input::Tick), (100, open(SensorKind::Door, "front"))];
    let (p, _) = run(&c, &steps);
    assert_eq!(state(&p, &c, 100), PanelState::Pending);
    assert_eq!(p.next_deadline(), Some(at(120)));
    let (p, actions) = run_from(p, &c, &[(120, Input::Tick)]);
    assert_eq!(state(&p, &c, 120), PanelState::Triggered);
    assert_eq!(sirens(&actions), [true]);
}

#[test]
fn interior_motion_triggers_in_away_only_and_follows_the_entry_delay() {
    let c = config();
    let (p, actions) = run(&c, &[(0, arm_away()), (30, Input::Tick), (40, open(SensorKind::Motion, "hall-motion"))]);
    assert_eq!((state(&p, &c, 40), sirens(&actions)), (PanelState::Triggered, vec![true]));

    let home = cmd(PanelAction::ArmHome, None, false);
    let (p, actions) = run(&c, &[(0, home), (10, Input::Tick), (40, open(SensorKind::Motion, "hall-motion"))]);
    assert_eq!((state(&p, &c, 40), sirens(&actions)), (PanelState::ArmedHome, vec![]));

    // Walking in through the front door sets the hall motion off: still the entry delay.
    let (p, _) = run(
        &c,
        &[
            (0, arm_away()),
            (30, Input::Tick),
            (100, open(SensorKind::Door, "front")),
            (102, open(SensorKind::Motion, "hall-motion")),
        ],
    );
    assert_eq!(state(&p, &c, 102), PanelState::Pending);
    // A window during the entry delay is an intrusion all the same.
    let (p, _) = run_from(p, &c, &[(103, open(SensorKind::Window, "bedroom-window"))]);
    assert_eq!(state(&p, &c, 103), PanelState::Triggered);
}

#[test]
fn trips_during_the_exit_delay_are_ignored() {
    let c = config();
    let (p, actions) = run(
        &c,
        &[
            (0, arm_away()),
            (5, open(SensorKind::Door, "front")),
            (8, close(SensorKind::Door, "front")),
            (9, open(SensorKind::Motion, "m")),
        ],
    );
    assert_eq!(state(&p, &c, 9), PanelState::Arming);
    assert!(sirens(&actions).is_empty());
}

#[test]
fn only_the_opening_edge_trips_a_sensor() {
    let c = config();
    let (p, _) = run(&c, &[(0, open(SensorKind::Motion, "m")), (1, cmd(PanelAction::ArmNight, None, false))]);
    // A heartbeat repeating MOTION while armed (night ignores interior anyway) and repeating OPEN:
    let (p, actions) = run_from(p, &c, &[(5, open(SensorKind::Motion, "m"))]);
    assert!(sirens(&actions).is_empty());
    assert_eq!(state(&p, &c, 5), PanelState::ArmedNight);
}

#[test]
fn wrong_codes_lock_the_keypad_and_the_right_code_is_refused_until_it_ends() {
    let c = config();
    let mut steps = vec![(0, arm_away()), (30, Input::Tick)];
    for i in 0..5 {
        steps.push((40 + i, disarm("0000")));
    }
    let (p, actions) = run(&c, &steps);
    assert_eq!(events(&actions).iter().filter(|e| **e == E::WrongCode).count(), 5);
    assert_eq!(events(&actions).last(), Some(&E::Lockout));
    let status = p.status(&c, at(44), ID);
    assert_eq!(status.lockout_remaining_s, Some(90));
    assert_eq!(status.state, PanelState::ArmedAway);

    let (p, actions) = run_from(p, &c, &[(60, disarm("1234"))]);
    assert_eq!(events(&actions), [E::CodeRefused]);
    assert_eq!(state(&p, &c, 60), PanelState::ArmedAway);
    assert!(p.lockout_until.is_some(), "the lockout is part of the persisted panel");

    let (p, actions) = run_from(p, &c, &[(44 + 90, disarm("1234"))]);
    assert_eq!(events(&actions), [E::Disarmed]);
    assert_eq!(state(&p, &c, 134), PanelState::Disarmed);
}

#[test]
fn wrong_codes_outside_the_window_do_not_add_up() {
    let c = config();
    let steps: Vec<(u64, Input)> = (0..5).map(|i| (i * 100, disarm("0000"))).collect();
    let (p, actions) = run(&c, &steps);
    assert!(!events(&actions).contains(&E::Lockout));
    assert_eq!(p.lockout_until, None);
}

#[test]
fn a_right_code_resets_the_wrong_code_count() {
    let c = config();
    let mut steps: Vec<(u64, Input)> = (0..4).map(|i| (i, disarm("0000"))).collect();
    steps.push((5, disarm("1234")));
    steps.extend((6..10).map(|i| (i, disarm("0000"))));
    let (_, actions) = run(&c, &steps);
    assert!(!events(&actions).contains(&E::Lockout));
}

#[test]
fn arming_with_a_window_open_fails_and_force_bypasses_it_for_this_arming_only() {
    let c = config();
    let (p, actions) = run(&c, &[(0, open(SensorKind::Window, "kitchen-window")), (1, arm_away())]);
    assert_eq!(state(&p, &c, 1), PanelState::Disarmed);
    let failed = actions.iter().find_map(|a| match a {
        Action::Event(e) if e.event == E::FailedToArm => Some(e.clone()),
        _ => None,
    });
    assert_eq!(failed.unwrap().sensors, ["kitchen-window"]);
    let status = p.status(&c, at(1), ID);
    assert!(!status.ready);
    assert_eq!(status.open_sensors, ["kitchen-window"]);

    let (p, actions) = run_from(p, &c, &[(2, cmd(PanelAction::ArmAway, None, true)), (32, Input::Tick)]);
    assert_eq!(state(&p, &c, 32), PanelState::ArmedAway);
    assert_eq!(events(&actions), [E::Bypassed, E::Arming, E::Armed]);
    assert_eq!(p.status(&c, at(32), ID).bypassed, ["kitchen-window"]);
    // The bypassed window closing and opening again does not trip.
    let (p, actions) = run_from(
        p,
        &c,
        &[(40, close(SensorKind::Window, "kitchen-window")), (41, open(SensorKind::Window, "kitchen-window"))],
    );
    assert!(sirens(&actions).is_empty());
    let (p, _) = run_from(p, &c, &[(50, disarm("1234"))]);
    assert!(p.bypassed.is_empty(), "bypasses end with the arming");
}

#[test]
fn a_duress_code_disarms_visibly_and_reports_silently() {
    let c = config();
    let (p, actions) =
        run(&c, &[(0, arm_away()), (30, Input::Tick), (100, open(SensorKind::Door, "front")), (105, disarm("9999"))]);
    assert_eq!(state(&p, &c, 105), PanelState::Disarmed);
    assert_eq!(events(&actions)[events(&actions).len() - 2..], [E::Disarmed, E::Duress]);
    assert!(sirens(&actions).is_empty());
    let status = p.status(&c, at(105), ID);
    assert_eq!(status.changed_by.as_deref(), Some("alice"), "status looks like a normal disarm");
    let disarmed = actions.iter().find_map(|a| match a {
        Action::Event(e) if e.event == E::Disarmed => Some(e.clone()),
        _ => None,
    });
    assert_eq!(disarmed.unwrap().message, "disarmed by alice");
}

#[test]
fn the_24h_zone_triggers_even_when_disarmed_and_ends_disarmed() {
    let mut c = config();
    c.sensors.insert(
        "panic-button".into(),
        SensorConfig { zone: Some(Zone::TwentyFourHour), supervision_s: None, chime: false },
    );
    let (p, actions) = run(&c, &[(0, open(SensorKind::Door, "panic-button"))]);
    assert_eq!(state(&p, &c, 0), PanelState::Triggered);
    assert_eq!(sirens(&actions), [true]);
    let (p, actions) = run_from(p, &c, &[(180, Input::Tick)]);
    assert_eq!(state(&p, &c, 180), PanelState::Disarmed);
    assert_eq!(sirens(&actions), [false]);
}

#[test]
fn the_siren_time_ends_back_in_the_armed_mode_or_disarmed() {
    let c = config();
    let steps = [(0, arm_away()), (30, Input::Tick), (40, open(SensorKind::Window, "w"))];
    let (p, _) = run(&c, &steps);
    let (p, actions) = run_from(p, &c, &[(219, Input::Tick)]);
    assert_eq!((state(&p, &c, 219), sirens(&actions)), (PanelState::Triggered, vec![]));
    let (p, actions) = run_from(p, &c, &[(220, Input::Tick)]);
    assert_eq!((state(&p, &c, 220), sirens(&actions)), (PanelState::ArmedAway, vec![false]));
    assert_eq!(events(&actions), [E::AlarmEnded]);

    let c = PanelConfig { disarm_after_trigger: true, ..config() };
    let (p, _) = run(&c, &steps);
    let (p, _) = run_from(p, &c, &[(220, Input::Tick)]);
    assert_eq!(state(&p, &c, 220), PanelState::Disarmed);
}

#[test]
fn disarming_during_the_alarm_stops_the_siren() {
    let c = config();
    let (p, actions) =
        run(&c, &[(0, arm_away()), (30, Input::Tick), (40, open(SensorKind::Window, "w")), (50, disarm("1234"))]);
    assert_eq!(state(&p, &c, 50), PanelState::Disarmed);
    assert_eq!(sirens(&actions), [true, false]);
    // Whoever was told of the alarm hears that it is over, and from whom.
    let kinds = events(&actions);
    assert_eq!(kinds[kinds.len() - 2..], [E::AlarmEnded, E::Disarmed]);
    let ended = actions.iter().find_map(|a| match a {
        Action::Event(e) if e.event == E::AlarmEnded => Some(e.clone()),
        _ => None,
    });
    let ended = ended.unwrap();
    assert_eq!(
        (ended.message.as_str(), ended.sensors.as_slice()),
        ("alarm after w ended: disarmed by alice", &["w".to_owned()][..])
    );

    // Disarming an armed panel that is not sounding ends no alarm.
    let (_, actions) = run(&c, &[(0, arm_away()), (30, Input::Tick), (50, disarm("1234"))]);
    assert!(!events(&actions).contains(&E::AlarmEnded));
}

#[test]
fn a_trigger_command_is_a_panic_button() {
    let c = config();
    let (p, actions) = run(&c, &[(0, cmd(PanelAction::Trigger, None, false))]);
    assert_eq!(state(&p, &c, 0), PanelState::Triggered);
    assert_eq!(p.status(&c, at(0), ID).last_trigger.as_deref(), Some(PANIC));
    assert_eq!(sirens(&actions), [true]);
}

#[test]
fn a_sensor_going_offline_while_armed_is_trouble_and_tamper_where_configured() {
    let c = config();
    let prelude =
        [(0, close(SensorKind::Window, "w")), (1, close(SensorKind::Motion, "m")), (2, arm_away()), (32, Input::Tick)];
    let c = PanelConfig { offline_grace_s: 0, ..c };
    let mut steps = prelude.to_vec();
    steps.push((40, Input::Availability { id: "w".into(), online: false }));
    let (p, actions) = run(&c, &steps);
    assert!(events(&actions).contains(&E::Trouble));
    assert_eq!(state(&p, &c, 40), PanelState::Triggered, "perimeter: tamper triggers");

    let mut steps = prelude.to_vec();
    steps.push((40, Input::Availability { id: "m".into(), online: false }));
    let (p, actions) = run(&c, &steps);
    assert_eq!(state(&p, &c, 40), PanelState::ArmedAway, "interior: trouble only");
    assert_eq!(p.status(&c, at(40), ID).troubles, ["m"]);
    assert!(!p.status(&c, at(40), ID).ready);
    let (p, actions2) = run_from(p, &c, &[(50, Input::Availability { id: "m".into(), online: true })]);
    assert!(events(&actions).contains(&E::Trouble) && events(&actions2).contains(&E::Restored));
    assert!(p.status(&c, at(50), ID).troubles.is_empty());
    // Devices the panel does not know (bulbs, controllers) are none of its business.
    let (_, actions) = run_from(p, &c, &[(60, Input::Availability { id: "kitchen".into(), online: false })]);
    assert!(actions.is_empty());
}

/// The test config with perimeter sensors supervised every `secs`, and no tamper.
fn perimeter_supervised(secs: u64) -> PanelConfig {
    PanelConfig {
        zones: crate::config::ZoneRules {
            perimeter: ZoneRule { tamper_triggers: false, supervision_s: secs },
            ..crate::config::ZoneRules::default()
        },
        ..config()
    }
}

#[test]
fn a_silent_sensor_becomes_trouble_through_ticks() {
    let c = perimeter_supervised(60);
    let (p, _) = run(&c, &[(0, close(SensorKind::Window, "w"))]);
    assert_eq!(p.next_deadline(), Some(at(60).plus(Duration::from_millis(1))));
    let (p, actions) = run_from(p, &c, &[(60, Input::Tick)]);
    assert!(actions.is_empty(), "exactly the window is still fine");
    let (p, actions) = run_from(p, &c, &[(61, Input::Tick)]);
    assert_eq!(events(&actions), [E::Trouble]);
    let (p, actions) = run_from(p, &c, &[(62, arm_away())]);
    assert_eq!(events(&actions), [E::FailedToArm], "not ready while a sensor is in trouble");
    let (p, actions) = run_from(p, &c, &[(70, close(SensorKind::Window, "w"))]);
    assert_eq!(events(&actions), [E::Restored]);
    assert!(p.status(&c, at(70), ID).ready);
}

#[test]
fn unreadable_readings_are_a_trouble_until_the_sensor_reads_again() {
    let c = perimeter_supervised(60);
    let ajar = || Input::Unreadable { kind: SensorKind::Window, id: "w".into(), error: "`ajar` is not JSON".into() };
    // A sensor heard of only through unreadable readings: known, in trouble, once (not per message).
    let (p, actions) = run(&c, &[(0, ajar())]);
    assert_eq!(events(&actions), [E::Trouble]);
    let trouble = actions.iter().find_map(|a| if let Action::Event(e) = a { Some(e.message.clone()) } else { None });
    assert_eq!(trouble.as_deref(), Some("unreadable readings from w: `ajar` is not JSON"));
    assert_eq!(p.status(&c, at(0), ID).troubles, ["w"]);
    let (p, actions) = run_from(p, &c, &[(1, ajar()), (2, ajar())]);
    assert!(events(&actions).is_empty(), "one trouble, not one a message: {actions:?}");
    let (p, actions) = run_from(p, &c, &[(3, arm_away())]);
    assert_eq!(events(&actions), [E::FailedToArm], "not ready while a sensor cannot be read");
    // A reading again: restored, and supervised from then on like any sensor.
    let (p, actions) = run_from(p, &c, &[(10, close(SensorKind::Window, "w"))]);
    assert_eq!(events(&actions), [E::Restored]);
    assert!(p.status(&c, at(10), ID).troubles.is_empty());
    let (_, actions) = run_from(p, &c, &[(71, Input::Tick)]);
    assert_eq!(events(&actions), [E::Trouble], "silent past its window");
}

#[test]
fn a_sensor_that_only_sends_unreadable_readings_is_supervised_from_the_first() {
    let (p, _) =
        run(&config(), &[(0, Input::Unreadable { kind: SensorKind::Door, id: "d".into(), error: "x".into() })]);
    let info = &p.sensors["d"];
    assert_eq!((info.kind, info.last_seen, info.trouble), (SensorKind::Door, at(0), true));
}

#[test]
fn restart_mid_entry_delay_triggers_when_the_delay_ran_out_meanwhile() {
    let c = config();
    let (p, _) = run(&c, &[(0, arm_away()), (30, Input::Tick), (100, open(SensorKind::Door, "front"))]);
    let saved = serde_json::to_string(&p).unwrap();
    // The controller is killed here and comes back 60 s later.
    let restored: Panel = serde_json::from_str(&saved).unwrap();
    assert_eq!(restored, p.clone().resumed(), "all but the sensors, relearned from the broker");
    assert_eq!(state(&restored, &c, 160), PanelState::Pending, "status alone does not move time");
    let (p, actions) = run_from(restored, &c, &[(160, Input::Tick)]);
    assert_eq!(state(&p, &c, 160), PanelState::Triggered);
    assert_eq!(sirens(&actions), [true]);
    // The siren time counts from the end of the entry delay, not from the restart.
    assert_eq!(p.next_deadline(), Some(at(120 + 180)));
}

#[test]
fn restart_after_everything_expired_lands_back_armed() {
    let c = config();
    let (p, _) = run(&c, &[(0, arm_away()), (30, Input::Tick), (100, open(SensorKind::Door, "front"))]);
    let restored: Panel = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    let (p, actions) = run_from(restored, &c, &[(500, Input::Tick)]);
    assert_eq!(state(&p, &c, 500), PanelState::ArmedAway);
    assert_eq!(events(&actions), [E::Triggered, E::AlarmEnded]);
    assert!(sirens(&actions).is_empty(), "a siren that would already be over is not started");
}

#[test]
fn an_armed_panel_restarts_armed() {
    let c = config();
    let (p, _) = run(&c, &[(0, arm_away()), (30, Input::Tick)]);
    let restored: Panel = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    let (p, actions) = run_from(restored, &c, &[(5000, Input::Tick)]);
    assert_eq!(state(&p, &c, 5000), PanelState::ArmedAway);
    assert!(actions.is_empty());
}

#[test]
fn arming_needs_a_code_when_configured() {
    let c = PanelConfig { code_arm_required: true, ..config() };
    let (p, actions) = run(&c, &[(0, arm_away())]);
    assert_eq!((state(&p, &c, 0), events(&actions)), (PanelState::Disarmed, vec![E::WrongCode]));
    let (p, _) = run(&c, &[(0, cmd(PanelAction::ArmAway, Some("1234"), false))]);
    assert_eq!(p.changed_by.as_deref(), Some("alice"));
    assert_eq!(state(&p, &c, 0), PanelState::Arming);
}

#[test]
fn disarm_needs_a_code_and_arming_again_in_the_same_mode_changes_nothing_but_says_so() {
    let c = config();
    let (p, actions) =
        run(&c, &[(0, cmd(PanelAction::ArmNight, None, false)), (1, cmd(PanelAction::Disarm, None, false))]);
    assert_eq!(state(&p, &c, 1), PanelState::ArmedNight);
    assert_eq!(events(&actions), [E::Armed, E::WrongCode]);
    let (p, actions) = run_from(p, &c, &[(2, cmd(PanelAction::ArmNight, None, false))]);
    assert_eq!(state(&p, &c, 2), PanelState::ArmedNight);
    assert_eq!(events(&actions), [E::FailedToArm], "told, and nothing else: {actions:?}");
    // The same during an exit delay: it is not started again.
    let (p, _) = run(&c, &[(0, arm_away()), (10, arm_away())]);
    assert_eq!(p.next_deadline(), Some(at(30)));
}

fn refusals(actions: &[Action]) -> Vec<(Option<String>, Option<protocol::Refusal>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) if e.event == E::Refused => Some((e.user.clone(), e.reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stricter_mode_runs_its_exit_delay_with_the_perimeter_of_the_old_mode_still_armed() {
    let c = config();
    let home = || cmd(PanelAction::ArmHome, None, false);
    // Home → away without a code: arming needs none here.
    let (p, actions) = run(&c, &[(0, home()), (10, Input::Tick), (20, arm_away())]);
    assert_eq!(state(&p, &c, 20), PanelState::Arming);
    assert_eq!(p.arm, Arm::Arming { mode: ArmMode::Away, until: at(50), from: Some(ArmMode::Home) });
    assert_eq!(events(&actions), [E::Arming, E::Armed, E::Arming]);
    // Leaving through the front door and the hall is what the exit delay is for.
    let (q, actions) =
        run_from(p.clone(), &c, &[(25, open(SensorKind::Door, "front")), (26, open(SensorKind::Motion, "hall"))]);
    assert_eq!((state(&q, &c, 26), sirens(&actions)), (PanelState::Arming, vec![]));
    let (q, _) = run_from(q, &c, &[(27, close(SensorKind::Door, "front")), (50, Input::Tick)]);
    assert_eq!(state(&q, &c, 50), PanelState::ArmedAway);
    // A window is not: home's perimeter stays armed through the switch.
    let (q, actions) = run_from(p, &c, &[(30, open(SensorKind::Window, "kitchen-window"))]);
    assert_eq!((state(&q, &c, 30), sirens(&actions)), (PanelState::Triggered, vec![true]));
    assert!(matches!(q.arm, Arm::Triggered { mode: Some(ArmMode::Home), .. }));
}

#[test]
fn a_laxer_mode_takes_a_code_and_comes_at_once() {
    let c = config();
    let home = |code| cmd(PanelAction::ArmHome, code, false);
    let (p, _) = run(&c, &[(0, arm_away()), (30, Input::Tick)]);
    assert_eq!(state(&p, &c, 30), PanelState::ArmedAway);
    let (p, actions) = run_from(p, &c, &[(40, home(None))]);
    assert_eq!((state(&p, &c, 40), events(&actions)), (PanelState::ArmedAway, vec![E::WrongCode]));
    let (p, actions) = run_from(p, &c, &[(41, home(Some("1234")))]);
    assert_eq!(state(&p, &c, 41), PanelState::ArmedHome);
    assert_eq!(events(&actions), [E::Armed]);
    assert_eq!(p.changed_by.as_deref(), Some("alice"));
    let message = actions.iter().find_map(|a| if let Action::Event(e) = a { Some(e.message.clone()) } else { None });
    assert_eq!(message.as_deref(), Some("switched from away to home by alice"));
    // Back during a switch's exit delay: lower than the mode being armed, so a code (someone may
    // have come in through an entry door the switch does not watch), then at once.
    let (p, actions) = run_from(p, &c, &[(50, arm_away()), (55, home(None))]);
    assert_eq!(events(&actions), [E::Arming, E::WrongCode]);
    let (p, _) = run_from(p, &c, &[(56, home(Some("1234")))]);
    assert_eq!((state(&p, &c, 56), p.next_deadline()), (PanelState::ArmedHome, None));
}

#[test]
fn no_switch_during_the_entry_delay_or_the_alarm() {
    let c = config();
    let (p, _) = run(&c, &[(0, arm_away()), (30, Input::Tick), (40, open(SensorKind::Door, "front"))]);
    assert_eq!(state(&p, &c, 40), PanelState::Pending);
    let (p, actions) = run_from(p, &c, &[(41, cmd(PanelAction::ArmHome, Some("1234"), false))]);
    assert_eq!((state(&p, &c, 41), events(&actions)), (PanelState::Pending, vec![E::FailedToArm]));
    let (p, actions) = run_from(p, &c, &[(61, Input::Tick), (62, cmd(PanelAction::ArmNight, Some("1234"), false))]);
    assert_eq!(state(&p, &c, 62), PanelState::Triggered);
    assert_eq!(events(&actions), [E::Triggered, E::FailedToArm]);
}

#[test]
fn a_switch_in_progress_survives_a_restart() {
    let c = config();
    let (p, _) = run(&c, &[(0, cmd(PanelAction::ArmHome, None, false)), (10, Input::Tick), (20, arm_away())]);
    let saved = serde_json::to_string(&p.snapshot()).unwrap();
    assert!(saved.contains(r#""from":"home""#), "{saved}");
    let back: Panel = serde_json::from_str(&saved).unwrap();
    assert_eq!(back.resumed().arm, p.arm);
    // A state file of a panel from before mode switching reads as before.
    let old: Panel = serde_json::from_str(r#"{"arm":{"state":"arming","mode":"away","until":1},"bypassed":[],"wrong_codes":[],"lockout_until":null,"changed_by":null,"last_trigger":null}"#).unwrap();
    assert!(matches!(old.arm, Arm::Arming { mode: ArmMode::Away, from: None, .. }), "{:?}", old.arm);
}

#[test]
fn a_right_code_outside_its_hours_or_rights_is_refused_with_the_reason_and_is_no_wrong_code() {
    let c = config();
    let cleaner = |action, secs: u64| (secs, cmd(action, Some("5555"), false));
    let (p, actions) = run(&c, &[(0, arm_away()), (30, Input::Tick), cleaner(PanelAction::Disarm, 3599)]);
    assert_eq!(state(&p, &c, 3599), PanelState::Disarmed, "in her hour");
    assert_eq!(events(&actions).last(), Some(&E::Disarmed));

    let (p, actions) = run_from(p, &c, &[cleaner(PanelAction::ArmHome, 3599)]);
    assert_eq!(state(&p, &c, 3599), PanelState::Disarmed);
    assert_eq!(refusals(&actions), [(Some("cleaner".into()), Some(protocol::Refusal::NotPermitted))]);

    let (p, actions) = run_from(p, &c, &[cleaner(PanelAction::ArmAway, 3600)]);
    assert_eq!(state(&p, &c, 3600), PanelState::Disarmed);
    assert_eq!(refusals(&actions), [(Some("cleaner".into()), Some(protocol::Refusal::OutsideHours))]);
    assert!(p.wrong_codes.is_empty(), "a right code is not a wrong one");

    // Arming past the window with a window open needs the bypass right she does not have.
    let (p, actions) = run_from(
        p,
        &c,
        &[(3601, open(SensorKind::Window, "w")), (3602, cmd(PanelAction::ArmAway, Some("5555"), true))],
    );
    assert_eq!(refusals(&actions).len(), 1);
    assert_eq!(state(&p, &c, 3602), PanelState::Disarmed);
    let (p, actions) = run_from(p, &c, &[(3603, cmd(PanelAction::ArmAway, Some("1234"), true))]);
    assert_eq!(events(&actions), [E::Bypassed, E::Arming], "alice may bypass");

    // Her last day was the 31st: three weeks later (a Friday, 08:01) her hour says "expired".
    let three_weeks = 21 * 86_400;
    let (p, actions) = run_from(
        p,
        &c,
        &[(3604, cmd(PanelAction::Disarm, Some("1234"), false)), cleaner(PanelAction::ArmAway, three_weeks + 60)],
    );
    assert_eq!(refusals(&actions), [(Some("cleaner".into()), Some(protocol::Refusal::Expired))]);
    let message = actions.iter().find_map(|a| match a {
        Action::Event(e) if e.event == E::Refused => Some(e.message.clone()),
        _ => None,
    });
    assert_eq!(message.as_deref(), Some("cleaner may not arm away: their code expired after 2027-01-31"));
    assert_eq!(state(&p, &c, three_weeks + 60), PanelState::Disarmed);
}

#[test]
fn no_event_or_status_ever_contains_a_code() {
    let c = config();
    let (_, actions) = run(&c, &[(0, arm_away()), (1, disarm("7531")), (2, disarm("9999")), (3, disarm("1234"))]);
    let text = format!("{actions:?}");
    for pin in ["7531", "9999", "1234"] {
        assert!(!text.contains(pin), "{pin} leaked: {text}");
    }
}

#[test]
fn status_is_published_on_changes_not_on_idle_ticks() {
    let c = config();
    let (p, actions) = run(&c, &[(0, close(SensorKind::Door, "front"))]);
    assert!(actions.is_empty(), "a closed door changes nothing visible: {actions:?}");
    let (p, actions) = run_from(p, &c, &[(5, Input::Tick)]);
    assert!(actions.is_empty());
    let (_, actions) = run_from(p, &c, &[(6, open(SensorKind::Door, "front"))]);
    assert!(actions.iter().any(|a| matches!(a, Action::PublishStatus(s) if s.open_sensors == ["front"] && !s.ready)));
}

#[test]
fn a_long_controller_outage_is_not_mistaken_for_silent_sensors() {
    let c = config();
    let (p, _) = run(&c, &[(0, close(SensorKind::Door, "front")), (1, arm_away()), (31, Input::Tick)]);
    let restored: Panel = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    // Down for an hour: the sensors were not silent, the controller was deaf. The door's
    // retained reading is the first thing it hears.
    let resumed = restored.resumed();
    let (p, actions) = run_from(resumed, &c, &[(3600, Input::Tick), (3600, close(SensorKind::Door, "front"))]);
    assert_eq!(state(&p, &c, 3600), PanelState::ArmedAway);
    assert!(actions.is_empty(), "{actions:?}");
    // Without a word from it within its window, the door is in trouble (and tamper) after all.
    let (p, _) = run_from(p, &c, &[(3600 + 601, Input::Tick)]);
    assert_eq!(state(&p, &c, 4201), PanelState::Triggered);
}

/// A broker restart fires every device's Last Will and the devices reconnect seconds later:
/// that is not a tamper. An absence that outlasts the grace is.
#[test]
fn going_offline_is_a_trouble_only_after_the_grace() {
    let c = PanelConfig { offline_grace_s: 30, ..config() };
    let prelude = [(0, close(SensorKind::Window, "w")), (2, arm_away()), (32, Input::Tick)];
    let offline = (40, Input::Availability { id: "w".into(), online: false });

    let mut steps = prelude.to_vec();
    steps.extend([offline.clone(), (45, Input::Availability { id: "w".into(), online: true })]);
    let (p, actions) = run(&c, &steps);
    assert_eq!(state(&p, &c, 45), PanelState::ArmedAway);
    assert!(!events(&actions).contains(&E::Trouble));
    assert!(p.next_deadline().is_some_and(|t| t > at(600)), "only silence supervision is left");

    let mut steps = prelude.to_vec();
    steps.push(offline.clone());
    let (p, _) = run(&c, &steps);
    assert_eq!(state(&p, &c, 40), PanelState::ArmedAway, "within the grace");
    assert!(!p.status(&c, at(40), ID).ready, "an offline sensor is not ready to arm");
    assert_eq!(p.next_deadline(), Some(at(70).plus(Duration::from_millis(1))));
    let (p, actions) = run_from(p, &c, &[(70, Input::Tick)]);
    assert_eq!(events(&actions), [E::Trouble, E::Triggered]);
    assert_eq!(state(&p, &c, 70), PanelState::Triggered);

    // A reading counts as being back, too.
    let mut steps = prelude.to_vec();
    steps.extend([offline, (50, close(SensorKind::Window, "w")), (80, Input::Tick)]);
    let (p, actions) = run(&c, &steps);
    assert_eq!(state(&p, &c, 80), PanelState::ArmedAway);
    assert!(!events(&actions).contains(&E::Trouble));
}

/// Heartbeats, new sensors and openings that change nothing of the panel's own cost no fsync; an
/// arming, an entry delay do. The state file does not grow with the sensors ever seen.
#[test]
fn only_what_a_restart_needs_is_persisted() {
    let c = config();
    let persists = |a: &[Action]| a.iter().filter(|a| matches!(a, Action::Persist)).count();
    let (p, actions) = run(&c, &[(0, close(SensorKind::Door, "front"))]);
    assert_eq!(persists(&actions), 0, "a new sensor");
    let (p, actions) = run_from(p, &c, &[(60, close(SensorKind::Door, "front"))]);
    assert_eq!(persists(&actions), 0, "a heartbeat");
    let (p, actions) =
        run_from(p, &c, &[(61, open(SensorKind::Door, "front")), (62, close(SensorKind::Door, "front"))]);
    assert_eq!(persists(&actions), 0, "a door opening while disarmed");
    let (p, actions) = run_from(p, &c, &[(70, arm_away()), (100, Input::Tick)]);
    assert_eq!(persists(&actions), 2, "arming, armed");
    let (_, actions) = run_from(p, &c, &[(110, open(SensorKind::Door, "front"))]);
    assert_eq!(persists(&actions), 1, "the entry delay starts");
}

/// After a restart the retained readings say what is open: a window still open after its alarm
/// ended trips again rather than being trusted as "already open" from the file.
#[test]
fn a_restart_relearns_sensors_fail_secure() {
    let c = config();
    let steps =
        [(0, close(SensorKind::Window, "w")), (1, arm_away()), (31, Input::Tick), (40, open(SensorKind::Window, "w"))];
    let (p, _) = run(&c, &steps);
    let (p, _) = run_from(p, &c, &[(40 + 180, Input::Tick)]);
    assert_eq!(state(&p, &c, 220), PanelState::ArmedAway, "the siren time is over");
    let p = p.resumed();
    let (p, actions) = run_from(p, &c, &[(300, open(SensorKind::Window, "w"))]);
    assert_eq!(state(&p, &c, 300), PanelState::Triggered);
    assert_eq!(sirens(&actions), [true]);
}

/// The siren never waits for the disk: its command comes before the save, and the status (what
/// a crash could undo) after it.
#[test]
fn the_siren_comes_before_the_save_and_the_status_after() {
    let c = config();
    let (p, _) = run(&c, &[(0, close(SensorKind::Window, "w")), (1, arm_away()), (31, Input::Tick)]);
    let (_, actions) = run_from(p, &c, &[(40, open(SensorKind::Window, "w"))]);
    let siren = actions.iter().position(|a| matches!(a, Action::Siren { on: true, .. })).unwrap();
    let persist = actions.iter().position(|a| *a == Action::Persist).unwrap();
    let status = actions.iter().position(|a| matches!(a, Action::PublishStatus(_))).unwrap();
    assert!(siren < persist && persist < status, "{actions:?}");
    // Everything else still waits for the save: disarming is durable before the siren stops.
    let (p, _) = run(&c, &[(0, close(SensorKind::Window, "w")), (1, arm_away()), (31, Input::Tick)]);
    let (_, actions) = run_from(p, &c, &[(40, open(SensorKind::Window, "w")), (41, disarm("1234"))]);
    let off = actions.iter().position(|a| matches!(a, Action::Siren { on: false, .. })).unwrap();
    assert_eq!(actions[off - 1], Action::Persist, "{actions:?}");
}

/// A sensor that keeps tripping is bypassed after `swinger_limit` trips until disarm, and says so.
#[test]
fn a_swinging_sensor_is_bypassed_after_the_limit_until_disarm() {
    let c = PanelConfig { swinger_limit: 3, disarm_after_trigger: false, ..config() };
    let mut steps = vec![(0, close(SensorKind::Motion, "m")), (1, arm_away()), (31, Input::Tick)];
    // Each trip sounds the siren for 180 s; after it the panel is armed again and the sensor moves again.
    for n in 0..4u64 {
        let t = 40 + n * 200;
        steps.extend([
            (t, open(SensorKind::Motion, "m")),
            (t + 1, close(SensorKind::Motion, "m")),
            (t + 181, Input::Tick),
        ]);
    }
    let (p, actions) = run(&c, &steps);
    assert_eq!(sirens(&actions), [true, false, true, false, true, false], "three alarms, not four");
    let bypass = actions.iter().find_map(|a| match a {
        Action::Event(e) if e.event == E::Bypassed => Some(e.clone()),
        _ => None,
    });
    let bypass = bypass.expect("a bypassed event");
    assert_eq!(bypass.sensors, ["m"]);
    assert!(bypass.message.contains("3 trips"), "{}", bypass.message);
    assert_eq!(p.status(&c, at(900), ID).bypassed, ["m"]);
    // Disarm clears the bypass and the count.
    let (p, _) = run_from(p, &c, &[(900, disarm("1234"))]);
    assert!(p.bypassed.is_empty() && p.trips.is_empty());

    let unlimited = PanelConfig { swinger_limit: 0, ..c };
    let (_, actions) = run(&unlimited, &steps);
    assert_eq!(sirens(&actions).len(), 8, "swinger_limit = 0 lets every trip through");
}

/// A zero-length retained reading takes a learned sensor out; a configured one becomes a trouble
/// (and, armed in a tamper zone, an alarm).
#[test]
fn a_cleared_sensor_is_removed_unless_configured() {
    let mut c = config();
    c.sensors.insert("front".into(), SensorConfig::default());
    let clear = |kind, id: &str| Input::SensorCleared { kind, id: id.into() };
    let (p, actions) = run(
        &c,
        &[
            (0, close(SensorKind::Door, "ghost")),
            (1, open(SensorKind::Window, "w")),
            (2, clear(SensorKind::Door, "ghost")),
        ],
    );
    assert_eq!(events(&actions), [E::Removed]);
    assert!(!p.sensors.contains_key("ghost"));
    // A ghost that stays open no longer keeps the panel from being ready once it is cleared.
    let (p, _) = run_from(p, &c, &[(3, clear(SensorKind::Window, "w"))]);
    assert!(p.status(&c, at(3), ID).ready);
    let (_, actions) = run_from(p.clone(), &c, &[(4, clear(SensorKind::Window, "never-seen"))]);
    assert!(actions.is_empty(), "clearing an unknown sensor changes nothing");

    let (p, _) = run_from(p, &c, &[(10, close(SensorKind::Door, "front")), (11, arm_away()), (41, Input::Tick)]);
    let (p, actions) = run_from(p, &c, &[(50, clear(SensorKind::Door, "front"))]);
    assert_eq!(events(&actions), [E::Trouble, E::Triggered], "a configured sensor cleared while armed");
    assert_eq!(p.status(&c, at(50), ID).troubles, ["front"]);
    assert!(p.sensors.contains_key("front"));
}

/// A save that fails is a trouble with an event, retried on a deadline, and restored when it works.
#[test]
fn a_failed_save_is_a_trouble_until_a_save_works() {
    let c = config();
    let (p, actions) = run(&c, &[(0, Input::Saved(Err("disk full".into())))]);
    assert_eq!(events(&actions), [E::Trouble]);
    let status = p.status(&c, at(0), ID);
    assert_eq!(status.troubles, [ID], "the panel itself is in trouble");
    assert!(status.ready, "a panel that cannot save still arms");
    assert_eq!(p.next_deadline(), Some(at(5)));
    let (p, actions) = run_from(p, &c, &[(3, Input::Saved(Err("still full".into())))]);
    assert!(actions.is_empty(), "one trouble, not one per failure: {actions:?}");
    let (p, actions) = run_from(p, &c, &[(5, Input::Tick)]);
    assert_eq!(actions, [Action::Persist], "the save is tried again");
    let (p, actions) = run_from(p, &c, &[(5, Input::Saved(Ok(())))]);
    assert_eq!(events(&actions), [E::Restored]);
    assert!(p.status(&c, at(5), ID).troubles.is_empty());
    assert_eq!(p.next_deadline(), None);
}

/// A code that arrives while locked out is refused without being checked; the lockout ends on time.
#[test]
fn locked_out_codes_are_not_checked() {
    let c = PanelConfig { max_wrong_codes: 2, lockout_s: 60, ..config() };
    let (p, _) = run(&c, &[(0, arm_away()), (1, disarm("0000")), (2, disarm("0001"))]);
    assert!(p.locked_out(at(2)) && p.locked_out(at(61)) && !p.locked_out(at(62)));
    let unchecked = Input::Command(Command { action: PanelAction::Disarm, force: false, code: Code::Unchecked });
    let (p, actions) = run_from(p, &c, &[(10, unchecked)]);
    assert_eq!(events(&actions), [E::CodeRefused]);
    assert_eq!(state(&p, &c, 10), PanelState::Arming);
}

/// The state file holds what a restart needs; a thousand sensors seen do not make it bigger.
#[test]
fn the_state_file_does_not_grow_with_the_sensors_seen() {
    let c = config();
    let (p, _) = run(&c, &[(0, arm_away())]);
    let small = serde_json::to_vec(&p).unwrap().len();
    let steps: Vec<(u64, Input)> = (0..1000).map(|i| (1, close(SensorKind::Motion, &format!("m{i}")))).collect();
    let (p, actions) = run_from(p, &c, &steps);
    assert_eq!(p.sensors.len(), 1000);
    assert!(!actions.contains(&Action::Persist), "no save per new sensor");
    assert_eq!(serde_json::to_vec(&p).unwrap().len(), small);
}

/// A brute-force flood during a lockout is one `code_refused` event a second, not one per code;
/// the next event says how many were refused in between.
#[test]
fn a_flood_of_codes_in_a_lockout_is_one_event_a_second() {
    let c = PanelConfig { max_wrong_codes: 2, lockout_s: 60, ..config() };
    let (p, _) = run(&c, &[(0, arm_away()), (1, disarm("0000")), (2, disarm("0001"))]);
    let flood: Vec<(u64, Input)> = (0..200).map(|_| (3, disarm("0002"))).collect();
    let (p, actions) = run_from(p, &c, &flood);
    assert_eq!(events(&actions), [E::CodeRefused], "200 codes in one second");
    assert!(actions.iter().all(|a| !matches!(a, Action::PublishStatus(_))), "nothing on the status changed");
    let (p, actions) = run_from(p, &c, &[(4, disarm("1234"))]);
    let refused = actions.iter().find_map(|a| if let Action::Event(e) = a { Some(e.message.clone()) } else { None });
    assert!(refused.is_some_and(|m| m.contains("199 more refused")), "{actions:?}");
    // What is still unreported when the lockout ends is said then.
    let (_, actions) = run_from(p, &c, &[(4, disarm("0003")), (62, Input::Tick)]);
    let over = actions.iter().any(|a| matches!(a, Action::Event(e) if e.message.contains("lockout over; 1 more")));
    assert!(over, "{actions:?}");
}

/// A reading that repeats what the panel knows is a sign of life and nothing else: no status, no
/// event, no save. But it never hides what the clock has made due: an exit delay that ran out
/// while only heartbeats came still arms the panel on the next of them.
#[test]
fn a_heartbeat_changes_nothing_but_when_the_sensor_was_heard() {
    let c = config();
    let (p, _) = run(&c, &[(0, close(SensorKind::Window, "w")), (0, close(SensorKind::Door, "front"))]);
    let (p, actions) = run_from(p, &c, &[(0, close(SensorKind::Window, "w"))]);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(p.sensors["w"].last_seen, at(0));
    let (p, actions) = run_from(p, &c, &[(5, close(SensorKind::Window, "w"))]);
    assert_eq!(p.sensors["w"].last_seen, at(5));
    assert!(actions.is_empty(), "{actions:?}");
    // A sensor first heard of closed (a retained reading after a start) is learned, quietly.
    let (p, actions) = run_from(p, &c, &[(5, close(SensorKind::Window, "new"))]);
    assert!(actions.is_empty() && p.sensors.contains_key("new"), "{actions:?}");

    // Arming: the 30 s exit delay runs out at 36 s; the heartbeat at 37 s is where the clock is read.
    let (p, _) = run_from(p, &c, &[(6, arm_away())]);
    assert_eq!(state(&p, &c, 6), PanelState::Arming);
    let (p, actions) = run_from(p, &c, &[(37, close(SensorKind::Window, "w"))]);
    assert_eq!(state(&p, &c, 37), PanelState::ArmedAway);
    assert_eq!(events(&actions), [E::Armed]);

    // What changes is never a heartbeat: the window opening while armed trips at once.
    let (p, actions) = run_from(p, &c, &[(38, open(SensorKind::Window, "w"))]);
    assert_eq!(state(&p, &c, 38), PanelState::Triggered);
    assert_eq!(sirens(&actions), [true]);
}

/// Supervision looks at every sensor at most once a second, and still finds the silent one.
#[test]
fn supervision_is_paced_and_still_finds_a_silent_sensor() {
    let c = config();
    let (p, _) = run(&c, &[(0, close(SensorKind::Window, "w")), (0, close(SensorKind::Door, "front"))]);
    assert_eq!(p.next_supervision, at(1));
    // The runner wakes the panel when the first sensor can have gone silent, not before.
    assert_eq!(p.next_deadline(), Some(at(600).plus(Duration::from_millis(1))));
    // The door keeps reporting; the window falls silent past its zone's 600 s window.
    let (p, actions) =
        run_from(p, &c, &[(300, close(SensorKind::Door, "front")), (601, close(SensorKind::Door, "front"))]);
    assert_eq!(events(&actions), [E::Trouble]);
    assert!(p.sensors["w"].trouble && !p.sensors["front"].trouble);

    // The clock set back an hour: supervision does not wait for the hour to come round again.
    let (p, _) = run(&c, &[(3600, close(SensorKind::Window, "w")), (3600, close(SensorKind::Door, "front"))]);
    let steps = [
        (10, close(SensorKind::Window, "w")),
        (10, close(SensorKind::Door, "front")),
        (611, close(SensorKind::Door, "front")),
    ];
    let (p, actions) = run_from(p, &c, &steps);
    assert_eq!(events(&actions), [E::Trouble], "the window went silent after the clock was set back");
    assert!(p.sensors["w"].trouble);
}

/// What is saved is the same whether the panel knows its sensors or not: a save never carries
/// (nor costs) the sensors.
#[test]
fn the_snapshot_saves_what_the_panel_saves() {
    let c = config();
    let (p, _) = run(
        &c,
        &[
            (0, close(SensorKind::Window, "w")),
            (0, arm_away()),
            (30, Input::Tick),
            (40, open(SensorKind::Door, "front")),
        ],
    );
    assert!(!p.sensors.is_empty());
    let snapshot = p.snapshot();
    assert!(snapshot.sensors.is_empty() && snapshot.notable.is_empty());
    assert_eq!(serde_json::to_string(&snapshot).unwrap(), serde_json::to_string(&p).unwrap());
}

/// The test config with one schedule: `mode` every day at `at` (T0 is 08:00 UTC), warned 5 min before.
fn scheduled(mode: ArmMode, at: &str) -> PanelConfig {
    let schedule = crate::schedule::Schedule {
        arm: mode,
        at: at.parse().unwrap(),
        days: Day::ALL.to_vec(),
        warn_min: 5,
        areas: vec![],
    };
    PanelConfig { schedules: vec![schedule], ..config() }
}

fn messages(actions: &[Action]) -> Vec<String> {
    actions.iter().filter_map(|a| if let Action::Event(e) = a { Some(e.message.clone()) } else { None }).collect()
}

#[test]
fn a_schedule_warns_then_arms_and_plans_the_next_day() {
    let c = scheduled(ArmMode::Night, "08:10");
    let (p, actions) = run(&c, &[(0, Input::Tick)]);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(p.next_deadline(), Some(at(300)), "the warning at 08:05");
    let (p, actions) = run_from(p, &c, &[(300, Input::Tick)]);
    assert_eq!(events(&actions), [E::AutoArmWarning]);
    assert_eq!(messages(&actions), ["arming night at 08:10 (in 5 min); disarm with a code to cancel"]);
    assert_eq!(p.next_deadline(), Some(at(600)));
    let (p, actions) = run_from(p, &c, &[(600, Input::Tick)]);
    assert_eq!(state(&p, &c, 600), PanelState::ArmedNight);
    assert_eq!(events(&actions), [E::Armed]);
    assert_eq!(p.changed_by.as_deref(), Some(SCHEDULE));
    assert_eq!(p.next_deadline(), Some(at(86_400 + 300)), "tomorrow's warning");
}

#[test]
fn a_right_code_in_the_warning_cancels_that_arming_only() {
    let c = scheduled(ArmMode::Night, "08:10");
    let (p, _) = run(&c, &[(0, Input::Tick), (300, Input::Tick)]);
    let (p, actions) = run_from(p, &c, &[(400, disarm("1234"))]);
    assert_eq!(events(&actions), [E::AutoArmCancelled]);
    assert_eq!(messages(&actions), ["the scheduled arming night was cancelled by alice"]);
    let (p, actions) = run_from(p, &c, &[(600, Input::Tick)]);
    assert_eq!((state(&p, &c, 600), events(&actions)), (PanelState::Disarmed, vec![]));
    // The next day's arming is not cancelled.
    let (p, _) = run_from(p, &c, &[(86_400 + 300, Input::Tick), (86_400 + 600, Input::Tick)]);
    assert_eq!(state(&p, &c, 86_400 + 600), PanelState::ArmedNight);
    // A wrong code cancels nothing (and counts as one); a code before the warning neither.
    let (p, actions) = run(&c, &[(0, Input::Tick), (100, disarm("1234")), (300, Input::Tick), (400, disarm("0000"))]);
    assert_eq!(events(&actions), [E::AutoArmWarning, E::WrongCode]);
    let (p, _) = run_from(p, &c, &[(600, Input::Tick)]);
    assert_eq!(state(&p, &c, 600), PanelState::ArmedNight);
}

#[test]
fn a_user_outside_their_hours_cannot_cancel_a_scheduled_arming() {
    // The cleaner's hour is 08:00-09:00 on Fridays; this arming is at 09:30, warned at 09:25.
    let c = scheduled(ArmMode::Away, "09:30");
    let (p, actions) =
        run(&c, &[(0, Input::Tick), (5_100, Input::Tick), (5_200, cmd(PanelAction::Disarm, Some("5555"), false))]);
    assert_eq!(refusals(&actions), [(Some("cleaner".into()), Some(protocol::Refusal::OutsideHours))]);
    let (p, _) = run_from(p, &c, &[(5_400, Input::Tick)]);
    assert_eq!(state(&p, &c, 5_400), PanelState::Arming, "armed away after its exit delay");
}

#[test]
fn a_scheduled_arming_is_never_forced_and_only_ever_raises_the_mode() {
    // Not ready: a window is open. It fails, says why, and tomorrow is planned.
    let c = scheduled(ArmMode::Night, "08:10");
    let (p, actions) = run(&c, &[(0, open(SensorKind::Window, "w")), (600, Input::Tick)]);
    assert_eq!(state(&p, &c, 600), PanelState::Disarmed);
    assert_eq!(events(&actions), [E::FailedToArm]);
    assert_eq!(p.auto_arm.as_ref().map(|a| a.at), Some(at(86_400 + 600)), "tomorrow is planned");
    // Armed home, a schedule for away: a switch, away's exit delay with home still armed.
    let c = scheduled(ArmMode::Away, "08:10");
    let (p, _) = run(&c, &[(0, cmd(PanelAction::ArmHome, None, false)), (10, Input::Tick), (600, Input::Tick)]);
    assert_eq!(p.arm, Arm::Arming { mode: ArmMode::Away, until: at(630), from: Some(ArmMode::Home) });
    // Armed away, a schedule for night: away is stricter, nothing happens.
    let c = scheduled(ArmMode::Night, "08:10");
    let (p, _) = run(&c, &[(0, arm_away()), (30, Input::Tick)]);
    let (p, actions) = run_from(p, &c, &[(600, Input::Tick)]);
    assert_eq!((state(&p, &c, 600), events(&actions)), (PanelState::ArmedAway, vec![]));
}

#[test]
fn a_scheduled_arming_missed_while_the_panel_was_down_is_not_made_up_for() {
    let c = scheduled(ArmMode::Night, "08:10");
    let (p, actions) = run(&c, &[(0, Input::Tick), (600 + 301, Input::Tick)]);
    assert_eq!(state(&p, &c, 901), PanelState::Disarmed);
    assert_eq!(events(&actions), [E::FailedToArm]);
    assert!(messages(&actions)[0].contains("missed"), "{actions:?}");
    // Within five minutes it is still made.
    let (p, _) = run(&c, &[(0, Input::Tick), (600 + 299, Input::Tick)]);
    assert_eq!(state(&p, &c, 899), PanelState::ArmedNight);
}

fn condition(id: &str, battery: Option<u8>, tamper: Option<bool>, linkquality: Option<u8>) -> Input {
    let condition = protocol::Condition {
        battery,
        battery_low: None,
        tamper,
        linkquality,
        last_seen: None,
        device_id: id.into(),
        ts: T0,
    };
    Input::Condition { id: id.into(), condition }
}

#[test]
fn a_low_battery_and_a_weak_radio_warn_once_and_never_keep_the_panel_from_arming() {
    let c = config();
    let (p, actions) = run(&c, &[(0, condition("front", Some(9), Some(false), Some(120)))]);
    assert_eq!(causes(&actions), [(E::Warning, Some(Cause::BatteryLow))]);
    assert_eq!(messages(&actions), ["front: battery low (battery 9 %, tamper closed, link quality 120)"]);
    let status = p.status(&c, at(0), ID);
    assert_eq!((status.warnings, status.ready), (vec!["front: battery low".to_owned()], true));
    // The same again: no second warning; the radio weakening: one more.
    let (p, actions) = run_from(p, &c, &[(1, condition("front", Some(8), Some(false), Some(110)))]);
    assert!(events(&actions).is_empty(), "{actions:?}");
    let (p, actions) = run_from(p, &c, &[(2, condition("front", Some(8), Some(false), Some(12)))]);
    assert_eq!(causes(&actions), [(E::Warning, Some(Cause::WeakRadio))]);
    let (p, actions) = run_from(p, &c, &[(3, arm_away())]);
    assert_eq!(events(&actions), [E::Arming], "warnings never block arming");
    // A new battery: restored, and the warning is gone from the status.
    let (p, actions) = run_from(p, &c, &[(4, condition("front", Some(100), Some(false), Some(12)))]);
    assert_eq!(causes(&actions), [(E::Restored, Some(Cause::BatteryLow))]);
    assert_eq!(p.status(&c, at(4), ID).warnings, ["front: weak radio"]);
}

#[test]
fn an_open_tamper_switch_is_a_trouble_disarmed_and_an_alarm_armed() {
    let c = config();
    // Disarmed: a trouble, which keeps the panel from arming unforced, until the switch closes.
    let (p, actions) = run(&c, &[(0, condition("front", None, Some(true), None))]);
    assert_eq!((causes(&actions), sirens(&actions)), (vec![(E::Trouble, Some(Cause::Tamper))], vec![]));
    assert_eq!(p.status(&c, at(0), ID).troubles, ["front"]);
    let (p, actions) = run_from(p, &c, &[(1, arm_away())]);
    assert_eq!(events(&actions), [E::FailedToArm]);
    let (p, actions) = run_from(p, &c, &[(2, condition("front", None, Some(false), None)), (3, arm_away())]);
    assert_eq!(causes(&actions), [(E::Restored, Some(Cause::Tamper)), (E::Arming, None)]);
    // Armed: the siren.
    let (p, actions) = run_from(p, &c, &[(33, Input::Tick), (40, condition("front", None, Some(true), None))]);
    assert_eq!(state(&p, &c, 40), PanelState::Triggered);
    assert_eq!(sirens(&actions), [true]);
    assert!(causes(&actions).contains(&(E::Triggered, Some(Cause::Tamper))), "{actions:?}");
    assert!(matches!(&p.arm, Arm::Triggered { sensor, .. } if sensor == "front"));
}

fn tracked(arm: Option<ArmMode>) -> PanelConfig {
    let people = [("alice", "ha/alice"), ("bob", "ha/bob")].map(|(n, t)| (n.to_owned(), t.to_owned())).into();
    PanelConfig { presence: crate::schedule::Presence { arm, people, disarm_on_arrival: false }, ..config() }
}

fn person(name: &str, home: Option<bool>) -> Input {
    Input::Presence { person: name.into(), home }
}

#[test]
fn the_last_tracked_person_leaving_arms_once_and_never_past_an_open_window() {
    let c = tracked(Some(ArmMode::Away));
    // Bob is not known yet: alice leaving arms nothing; bob, seen home, leaving too does.
    let (p, actions) =
        run(&c, &[(0, person("alice", Some(true))), (0, person("bob", Some(true))), (1, person("alice", Some(false)))]);
    assert!(events(&actions).is_empty(), "{actions:?}");
    let (p, actions) = run_from(p, &c, &[(2, person("bob", Some(false)))]);
    assert_eq!((state(&p, &c, 2), events(&actions)), (PanelState::Arming, vec![E::Arming]));
    assert_eq!(p.changed_by.as_deref(), Some(PRESENCE));
    // Already all away: another "not_home" arms nothing again (alice disarmed meanwhile).
    let (p, _) = run_from(p, &c, &[(3, disarm("1234"))]);
    let (p, actions) = run_from(p, &c, &[(4, person("bob", Some(false)))]);
    assert_eq!((state(&p, &c, 4), events(&actions)), (PanelState::Disarmed, vec![]));
    // Someone comes home and leaves again, with a window open: it fails and says why.
    let (p, actions) = run_from(
        p,
        &c,
        &[(5, person("bob", Some(true))), (6, open(SensorKind::Window, "w")), (7, person("bob", Some(false)))],
    );
    assert_eq!((state(&p, &c, 7), events(&actions)), (PanelState::Disarmed, vec![E::FailedToArm]));
    // After a restart everybody's retained "not_home" arrives again: no departure was seen, the
    // panel someone disarmed stays disarmed.
    let (p, actions) = run(&c, &[(0, person("alice", Some(false))), (1, person("bob", Some(false)))]);
    assert_eq!((state(&p, &c, 1), events(&actions)), (PanelState::Disarmed, vec![]));
    // Without `arm`, presence is only tracked.
    let (p, actions) = run(&tracked(None), &[(0, person("alice", Some(false))), (1, person("bob", Some(false)))]);
    assert_eq!((state(&p, &c, 1), events(&actions)), (PanelState::Disarmed, vec![]));
}

#[test]
fn an_arrival_disarms_only_what_presence_armed_and_never_an_alarm() {
    let mut c = tracked(Some(ArmMode::Away));
    c.presence.disarm_on_arrival = true;
    let leave = [(0, person("alice", Some(true))), (0, person("bob", Some(true))), (1, person("alice", Some(false)))];
    let (p, _) = run(&c, &leave);
    let (p, _) = run_from(p, &c, &[(2, person("bob", Some(false))), (40, Input::Tick)]);
    assert_eq!(state(&p, &c, 40), PanelState::ArmedAway);
    let (back, actions) = run_from(p.clone(), &c, &[(50, person("bob", Some(true)))]);
    assert_eq!((state(&back, &c, 50), events(&actions)), (PanelState::Disarmed, vec![E::Disarmed]));
    assert_eq!(back.changed_by.as_deref(), Some(PRESENCE));
    // In an alarm, an arrival silences nothing, nor after the siren time, back armed.
    let (alarm, _) = run_from(p, &c, &[(45, open(SensorKind::Window, "w"))]);
    let (alarm, _) = run_from(alarm, &c, &[(50, person("bob", Some(true)))]);
    assert_eq!(state(&alarm, &c, 50), PanelState::Triggered);
    let (alarm, _) = run_from(alarm, &c, &[(51, person("bob", Some(false))), (400, Input::Tick)]);
    let (alarm, _) = run_from(alarm, &c, &[(401, person("bob", Some(true)))]);
    assert_eq!(state(&alarm, &c, 401), PanelState::ArmedAway, "after an intrusion only a code disarms");
    // Armed home with a code, raised to away by presence: an arrival takes nothing back.
    let (p, _) = run(&c, &[(0, person("alice", Some(true))), (0, person("bob", Some(true)))]);
    let (p, _) = run_from(p, &c, &[(1, cmd(PanelAction::ArmHome, Some("1234"), false)), (20, Input::Tick)]);
    let (p, _) =
        run_from(p, &c, &[(21, person("alice", Some(false))), (22, person("bob", Some(false))), (60, Input::Tick)]);
    assert_eq!(state(&p, &c, 60), PanelState::ArmedAway);
    let (p, _) = run_from(p, &c, &[(61, person("bob", Some(true)))]);
    assert_eq!(state(&p, &c, 61), PanelState::ArmedAway, "armed with a code first: an arrival does not disarm");
    // Armed by alice's code: an arrival changes nothing (and off by default, nothing at all).
    let (p, _) = run(&c, &[(0, person("bob", Some(false))), (1, arm_away()), (40, Input::Tick)]);
    let (p, _) = run_from(p, &c, &[(50, person("bob", Some(true)))]);
    assert_eq!(state(&p, &c, 50), PanelState::ArmedAway);
    let off = tracked(Some(ArmMode::Away));
    let (p, _) = run(&off, &leave);
    let (p, _) =
        run_from(p, &off, &[(2, person("bob", Some(false))), (40, Input::Tick), (50, person("bob", Some(true)))]);
    assert_eq!(state(&p, &off, 50), PanelState::ArmedAway);
}

#[test]
fn a_right_code_refused_neither_counts_nor_clears_the_wrong_codes() {
    let c = config();
    let three_weeks = 21 * 86_400;
    let (p, _) = run(
        &c,
        &[
            (three_weeks, arm_away()),
            (three_weeks + 30, Input::Tick),
            (three_weeks + 31, disarm("0000")),
            (three_weeks + 32, disarm("0001")),
            // The cleaner's code expired: refused, and the two wrong codes still count.
            (three_weeks + 33, cmd(PanelAction::Disarm, Some("5555"), false)),
        ],
    );
    assert_eq!(p.wrong_codes.len(), 2);
}

#[test]
fn lowering_the_protection_takes_a_code_with_the_right_to_disarm() {
    let c = config();
    let home = |code| cmd(PanelAction::ArmHome, code, false);
    // During away's exit delay (from disarmed, or switching from home), home without a code is refused.
    let (p, actions) = run(&c, &[(0, arm_away()), (5, home(None))]);
    assert_eq!((events(&actions), p.next_deadline()), (vec![E::Arming, E::WrongCode], Some(at(30))));
    let (p, _) = run(&c, &[(0, home(None)), (10, Input::Tick), (20, arm_away()), (25, home(None))]);
    assert!(matches!(p.arm, Arm::Arming { mode: ArmMode::Away, .. }), "{:?}", p.arm);
    // The cleaner may arm away but not disarm: she cannot switch away down to home either.
    let mut limited = c.clone();
    limited.users[2].may = Some(vec![Right::ArmAway, Right::ArmHome, Right::ArmNight]);
    limited.users[2].hours.clear();
    let (p, actions) =
        run(&limited, &[(0, arm_away()), (30, Input::Tick), (40, cmd(PanelAction::ArmHome, Some("5555"), false))]);
    assert_eq!(state(&p, &limited, 40), PanelState::ArmedAway);
    assert_eq!(refusals(&actions), [(Some("cleaner".into()), Some(protocol::Refusal::NotPermitted))]);
}

#[test]
fn bypassing_while_armed_takes_a_code_and_bypassed_sensors_block_nothing_after() {
    let c = config();
    let (p, _) =
        run(&c, &[(0, close(SensorKind::Window, "w")), (1, cmd(PanelAction::ArmHome, None, false)), (11, Input::Tick)]);
    let (p, actions) = run_from(
        p,
        &c,
        &[(12, Input::Availability { id: "w".into(), online: false }), (13, cmd(PanelAction::ArmAway, None, true))],
    );
    assert!(events(&actions).contains(&E::FailedToArm), "{actions:?}");
    assert!(p.bypassed.is_empty() && state(&p, &c, 13) == PanelState::ArmedHome);
    // A window open and bypassed at arming keeps nothing from a later raise.
    let (p, _) =
        run(&c, &[(0, open(SensorKind::Window, "w")), (1, cmd(PanelAction::ArmHome, None, true)), (11, Input::Tick)]);
    let (p, actions) = run_from(p, &c, &[(12, arm_away())]);
    assert_eq!(events(&actions), [E::Arming]);
    assert!(p.bypassed.contains("w"));
}

/// The sounds of each step, as `(tone, on, seconds)`.
fn sounds(actions: &[Action]) -> Vec<(protocol::Tone, bool, Option<u64>)> {
    actions
        .iter()
        .filter_map(
            |a| if let Action::Sound { tone, on, duration_s } = a { Some((*tone, *on, *duration_s)) } else { None },
        )
        .collect()
}

#[test]
fn beeps_run_through_the_delays_and_stop_when_a_delay_ends_early() {
    use protocol::Tone::{EntryBeeps, ExitBeeps};
    let c = config();
    let (p, actions) = run(&c, &[(0, arm_away())]);
    assert_eq!(sounds(&actions), [(ExitBeeps, true, Some(30))], "through the exit delay");
    let (_, actions) = run_from(p.clone(), &c, &[(12, disarm("1234"))]);
    assert_eq!(sounds(&actions), [(ExitBeeps, false, None)], "disarmed during it: they stop");
    let (p, actions) = run_from(p, &c, &[(30, Input::Tick)]);
    assert_eq!(sounds(&actions), [(ExitBeeps, false, None)], "armed: they stop at the deadline too");
    let (p, actions) = run_from(p, &c, &[(40, open(SensorKind::Door, "front"))]);
    assert_eq!(sounds(&actions), [(EntryBeeps, true, Some(20))], "through the entry delay");
    let (_, actions) = run_from(p.clone(), &c, &[(45, disarm("1234"))]);
    assert_eq!(sounds(&actions), [(EntryBeeps, false, None)]);
    let (_, actions) = run_from(p, &c, &[(60, Input::Tick)]);
    assert_eq!(sounds(&actions), [(EntryBeeps, false, None)], "the alarm takes over");
    assert_eq!(sirens(&actions), [true]);
    let quiet = PanelConfig { sounds: crate::sounds::Sounds { exit_beeps: false, ..Default::default() }, ..config() };
    assert_eq!(sounds(&run(&quiet, &[(0, arm_away())]).1), [], "beeps can be turned off");
}

#[test]
fn a_chime_sensor_chimes_while_disarmed_and_chirps_confirm_when_asked_for() {
    use protocol::Tone::{ArmChirp, Chime, DisarmChirp};
    let mut c = config();
    c.sensors.insert("shop-door".into(), SensorConfig { chime: true, ..SensorConfig::default() });
    let (p, actions) = run(&c, &[(0, open(SensorKind::Door, "shop-door"))]);
    assert_eq!(sounds(&actions), [(Chime, true, None)]);
    let (p, actions) =
        run_from(p, &c, &[(1, close(SensorKind::Door, "shop-door")), (2, open(SensorKind::Door, "front"))]);
    assert_eq!(sounds(&actions), [], "a closing, and a door without chime, are silent");
    let (_, actions) = run_from(p, &c, &[(3, close(SensorKind::Door, "front")), (4, arm_away())]);
    assert!(!sounds(&actions).iter().any(|s| s.0 == ArmChirp), "no chirps unless asked for");
    c.sounds.chirps = true;
    c.exit_delay_s.away = 0;
    let (p, actions) = run(&c, &[(0, arm_away())]);
    assert_eq!(sounds(&actions), [(ArmChirp, true, None)]);
    let (_, actions) = run_from(p, &c, &[(5, disarm("1234"))]);
    assert_eq!(sounds(&actions), [(DisarmChirp, true, None)]);
}

//! [`Panel::sounds_at_once`] against [`Panel::step`], on random days of a home: whenever it
//! says yes, the step's first action is the siren ON for that sensor (the reflex never sounds a
//! siren the panel would not); and whenever nothing time-driven is due and the step sounds the
//! siren first for an opening, it said yes (the reflex is not missing cases).

use proptest::prelude::*;

use super::*;
use crate::config::{ModeDelays, SensorConfig};

const T0: Timestamp = Timestamp(1_800_000_000_000);
const ID: &str = "security-controller";

/// The sensors of the random days: each kind in its default zone, a door on the perimeter and
/// a window in a 24-hour zone.
const SENSORS: [(SensorKind, &str); 5] = [
    (SensorKind::Door, "front"),
    (SensorKind::Window, "hall-window"),
    (SensorKind::Motion, "hall-motion"),
    (SensorKind::Door, "cellar"),
    (SensorKind::Window, "smoke-vent"),
];

/// Delays as shipped, or none at all with a short siren and a swinger limit of 2. The cellar
/// door is supervised (silent for 30 s is a trouble) and a sensor offline for 5 s is one: days
/// where supervision finds something, and days where its once-a-second look finds nothing.
fn config(quick: bool) -> PanelConfig {
    let mut config = if quick {
        PanelConfig {
            exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            entry_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            trigger_time_s: 5,
            swinger_limit: 2,
            allow_demo_timings: true,
            ..PanelConfig::default()
        }
    } else {
        PanelConfig {
            exit_delay_s: ModeDelays { away: 30, home: 10, night: 0 },
            entry_delay_s: ModeDelays { away: 20, home: 20, night: 0 },
            trigger_time_s: 60,
            ..PanelConfig::default()
        }
    };
    // The panel never sees a code, only whose it was (`Code::User(0)`): the hash is not read.
    config.users = vec![User::new("alice", "not read".to_owned())];
    config.offline_grace_s = 5;
    let zoned = |zone| SensorConfig { zone: Some(zone), supervision_s: None, chime: false };
    let supervised = SensorConfig { supervision_s: Some(30), ..zoned(Zone::Perimeter) };
    config.sensors.insert("cellar".into(), supervised);
    config.sensors.insert("smoke-vent".into(), zoned(Zone::TwentyFourHour));
    config
}

/// Input number `n` of the random days: a sensor opening or closing, an arming (plain or
/// forced; the panel needs no code to arm here), a disarm with the right code or a wrong one, a
/// panic, the cellar door going offline or coming back, a tick.
fn input(n: usize) -> Input {
    use crate::keypad::Code;
    let command = |action, force| Input::Command(Command { action, force, code: Code::Missing });
    match n {
        0..10 => {
            let (kind, id) = SENSORS[n / 2];
            let state = if n.is_multiple_of(2) { kind.active() } else { kind.idle() };
            Input::Sensor { kind, id: id.into(), state }
        }
        10 => command(PanelAction::ArmAway, false),
        11 => command(PanelAction::ArmHome, false),
        12 => command(PanelAction::ArmNight, true),
        13 => Input::Command(Command { action: PanelAction::Disarm, force: false, code: Code::User(0) }),
        14 => Input::Command(Command { action: PanelAction::Disarm, force: false, code: Code::Wrong }),
        15 => command(PanelAction::Trigger, false),
        16 | 17 => Input::Availability { id: "cellar".into(), online: n == 17 },
        _ => Input::Tick,
    }
}

/// Checks every sensor's opening against the step at `now`, on copies of `panel`.
fn check(panel: &Panel, config: &PanelConfig, now: Timestamp) -> Result<(), TestCaseError> {
    for (kind, id) in SENSORS {
        let fast = panel.sounds_at_once(config, kind, id, now);
        let opening = Input::Sensor { kind, id: id.into(), state: kind.active() };
        let (_, actions) = panel.clone().step(config, opening, now, ID);
        let reason = format!("alarm triggered by {id}");
        let siren_first = matches!(actions.first(), Some(Action::Siren { on: true, reason: r }) if *r == reason);
        if fast {
            prop_assert!(siren_first, "said {id} sounds at once in {:?}, but the step did {actions:?}", panel.arm);
        }
        if !panel.due(now) && siren_first {
            prop_assert!(fast, "{id} sounded the siren first in {:?}, but it was not said to", panel.arm);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn the_reflex_says_yes_exactly_when_the_step_sounds_the_siren_first(
        quick in any::<bool>(),
        day in prop::collection::vec((0u64..40, 0usize..20), 1..80),
    ) {
        let config = config(quick);
        let mut panel = Panel::new();
        let mut now = T0;
        for (wait, n) in day {
            now = now.plus(Duration::from_secs(wait));
            check(&panel, &config, now)?;
            (panel, _) = panel.step(&config, input(n), now, ID);
        }
    }
}
